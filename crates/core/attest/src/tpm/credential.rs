//! The verifier's half of credential activation (TPM2_MakeCredential, TPM 2.0 Part 1 §24), computed
//! in pure Rust against the endorsement key's public area.
//!
//! The verifier picks a random credential and wraps it so that only the TPM holding the EK private key
//! can unwrap it, and only for an object whose name is the AK's name. When the node returns the
//! credential, the verifier knows the AK lives in the same TPM as the EK. Doing this without a TPM on
//! the verifier side means the verifier needs neither a TPM nor the C library.
//!
//! Supported: an RSA EK (the TCG default RSA 2048 template: OAEP-SHA256 seed encryption, AES-128-CFB
//! symmetric). An ECC EK would need ECDH seed derivation and is refused with an error.

use super::public::{PublicKey, TpmPublic};
use super::wire::put_tpm2b;
use super::{TpmError, TPM_ALG_AES, TPM_ALG_CFB};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;

/// What the node hands to TPM2_ActivateCredential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialChallenge {
    /// Contents of the `TPM2B_ID_OBJECT` (integrity HMAC then encrypted credential).
    pub credential_blob: Vec<u8>,
    /// Contents of the `TPM2B_ENCRYPTED_SECRET` (the seed, RSA-OAEP encrypted to the EK).
    pub encrypted_secret: Vec<u8>,
}

/// KDFa (TPM 2.0 Part 1 §11.4.10.2) with HMAC-SHA256: `bits` bits derived from `key`, `label` (a NUL is
/// appended), `context_u` and `context_v`.
pub fn kdf_a(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let len = usize::try_from(bits.div_ceil(8)).expect("bits fits usize");
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Wraps `credential` (at most 32 bytes) for the TPM holding `ek`, bound to the object named `ak_name`.
pub fn make_credential(
    ek: &TpmPublic,
    ak_name: &[u8],
    credential: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<CredentialChallenge, TpmError> {
    if credential.is_empty() || credential.len() > 32 {
        return Err(TpmError::Credential("credential must be 1 to 32 bytes"));
    }
    let PublicKey::Rsa { modulus, exponent } = &ek.key else {
        return Err(TpmError::Credential(
            "only RSA endorsement keys are supported; create the EK from the RSA 2048 template",
        ));
    };
    if ek.symmetric != (TPM_ALG_AES, 128, TPM_ALG_CFB) {
        return Err(TpmError::Credential(
            "EK symmetric parameters must be AES-128-CFB",
        ));
    }
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from(*exponent),
    )
    .map_err(|_| TpmError::InvalidKey("RSA public key rejected"))?;

    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    let encrypted_secret = key
        .encrypt(
            rng,
            rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0"),
            seed.as_ref(),
        )
        .map_err(|_| TpmError::Credential("RSA-OAEP encryption of the seed failed"))?;

    // Keys derived from the seed are as secret as the seed: wiped on drop too.
    let sym_key = zeroize::Zeroizing::new(kdf_a(seed.as_ref(), "STORAGE", ak_name, &[], 128));
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    put_tpm2b(&mut enc_identity, credential);
    {
        use cfb_mode::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
        let encryptor = cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &[0u8; 16])
            .expect("AES-128 key and IV are 16 bytes");
        encryptor.encrypt(&mut enc_identity);
    }
    let hmac_key = zeroize::Zeroizing::new(kdf_a(seed.as_ref(), "INTEGRITY", &[], &[], 256));
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&hmac_key).expect("HMAC takes any key length");
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer_hmac = mac.finalize().into_bytes();

    let mut credential_blob = Vec::with_capacity(2 + 32 + enc_identity.len());
    put_tpm2b(&mut credential_blob, &outer_hmac);
    credential_blob.extend_from_slice(&enc_identity);
    Ok(CredentialChallenge {
        credential_blob,
        encrypted_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_a_lengths_and_labels() {
        let a = kdf_a(b"key", "STORAGE", b"name", &[], 128);
        assert_eq!(a.len(), 16);
        let b = kdf_a(b"key", "INTEGRITY", b"name", &[], 128);
        assert_ne!(a, b);
        let long = kdf_a(b"key", "STORAGE", b"name", &[], 512);
        assert_eq!(long.len(), 64);
        // The bit length is part of every block, so a shorter output is not a prefix of a longer one.
        assert_ne!(&long[..16], &a[..]);
    }
}
