//! `TPMT_PUBLIC` (TPM 2.0 Part 2, §12.2.4) for RSA and ECC keys, and the object name derived from it.

use super::wire::{put_tpm2b, Reader};
use super::{TpmError, TPM_ALG_ECC, TPM_ALG_NULL, TPM_ALG_RSA, TPM_ALG_SHA256, TPM_ECC_NIST_P256};
use sha2::{Digest as _, Sha256};

const POLICY_MAX: usize = 64;
const RSA_MODULUS_MAX: usize = 512;
const ECC_COORDINATE_MAX: usize = 66;
/// Largest `TPMT_PUBLIC` bulwark parses.
const PUBLIC_LEN_MAX: usize = 1_024;

/// `TPMA_OBJECT` bits checked on attestation keys.
pub(crate) mod attribute {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}

/// The public key inside a `TPMT_PUBLIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key.
    Rsa {
        /// Big-endian modulus.
        modulus: Vec<u8>,
        /// Public exponent (a TPM's 0 already replaced by 65537).
        exponent: u32,
    },
    /// A NIST P-256 key.
    EccP256 {
        /// Affine x, big-endian, left-padded to 32 bytes.
        x: [u8; 32],
        /// Affine y, big-endian, left-padded to 32 bytes.
        y: [u8; 32],
    },
}

/// A parsed `TPMT_PUBLIC`, keeping its exact bytes (the name is a hash of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmPublic {
    /// `nameAlg`; bulwark accepts only SHA-256.
    pub name_alg: u16,
    /// `objectAttributes` (TPMA_OBJECT).
    pub attributes: u32,
    /// `authPolicy`.
    pub auth_policy: Vec<u8>,
    /// Symmetric algorithm of a storage key (`TPM_ALG_NULL` for signing keys), with key bits and mode.
    pub symmetric: (u16, u16, u16),
    /// Signing or encryption scheme and its hash (`TPM_ALG_NULL` when unrestricted).
    pub scheme: (u16, u16),
    /// The public key.
    pub key: PublicKey,
    bytes: Vec<u8>,
}

fn left_pad_32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], TpmError> {
    if bytes.len() > 32 {
        return Err(TpmError::InvalidKey(what));
    }
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(bytes);
    Ok(out)
}

impl TpmPublic {
    /// Parses a marshalled `TPMT_PUBLIC` (no TPM2B size prefix).
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        if bytes.len() > PUBLIC_LEN_MAX {
            return Err(TpmError::FieldTooLong {
                field: "TPMT_PUBLIC",
                len: bytes.len(),
                max: PUBLIC_LEN_MAX,
            });
        }
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        let kind = r.u16("type")?;
        let name_alg = r.u16("nameAlg")?;
        if name_alg != TPM_ALG_SHA256 {
            return Err(TpmError::Unsupported {
                what: "nameAlg",
                value: name_alg,
            });
        }
        let attributes = r.u32("objectAttributes")?;
        let auth_policy = r.tpm2b(POLICY_MAX, "authPolicy")?.to_vec();
        let sym_alg = r.u16("symmetric.algorithm")?;
        let symmetric = if sym_alg == TPM_ALG_NULL {
            (sym_alg, 0, 0)
        } else {
            (
                sym_alg,
                r.u16("symmetric.keyBits")?,
                r.u16("symmetric.mode")?,
            )
        };
        let scheme_alg = r.u16("scheme.scheme")?;
        let scheme = if scheme_alg == TPM_ALG_NULL {
            (scheme_alg, 0)
        } else {
            (scheme_alg, r.u16("scheme.hashAlg")?)
        };
        let key = match kind {
            TPM_ALG_RSA => {
                let _key_bits = r.u16("rsa.keyBits")?;
                let exponent = match r.u32("rsa.exponent")? {
                    0 => 65_537,
                    e => e,
                };
                let modulus = r.tpm2b(RSA_MODULUS_MAX, "unique.rsa")?.to_vec();
                if modulus.len() < 256 {
                    return Err(TpmError::InvalidKey("RSA modulus shorter than 2048 bits"));
                }
                PublicKey::Rsa { modulus, exponent }
            }
            TPM_ALG_ECC => {
                let curve = r.u16("ecc.curveID")?;
                if curve != TPM_ECC_NIST_P256 {
                    return Err(TpmError::Unsupported {
                        what: "ECC curve",
                        value: curve,
                    });
                }
                let kdf = r.u16("ecc.kdf")?;
                if kdf != TPM_ALG_NULL {
                    let _ = r.u16("ecc.kdf.hashAlg")?;
                }
                let x = left_pad_32(
                    r.tpm2b(ECC_COORDINATE_MAX, "unique.ecc.x")?,
                    "ECC x too long",
                )?;
                let y = left_pad_32(
                    r.tpm2b(ECC_COORDINATE_MAX, "unique.ecc.y")?,
                    "ECC y too long",
                )?;
                PublicKey::EccP256 { x, y }
            }
            other => {
                return Err(TpmError::Unsupported {
                    what: "object type",
                    value: other,
                })
            }
        };
        r.finish()?;
        Ok(Self {
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            key,
            bytes: bytes.to_vec(),
        })
    }

    /// The exact marshalled bytes this was parsed from.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The object's TPM name: `nameAlg ‖ SHA-256(TPMT_PUBLIC)`.
    pub fn name(&self) -> Vec<u8> {
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&self.bytes));
        name
    }

    /// Checks the attributes of an attestation key: created inside this TPM and unable to leave it
    /// (fixedTPM, fixedParent, sensitiveDataOrigin), restricted to signing TPM-generated data, and not a
    /// decryption key.
    pub fn check_attestation_key(&self) -> Result<(), TpmError> {
        use attribute::*;
        let fail = |reason| TpmError::NotAnAttestationKey {
            attributes: self.attributes,
            reason,
        };
        for (bit, reason) in [
            (
                FIXED_TPM,
                "fixedTPM is clear: the key may exist outside the TPM",
            ),
            (
                FIXED_PARENT,
                "fixedParent is clear: the key may be duplicated",
            ),
            (
                SENSITIVE_DATA_ORIGIN,
                "sensitiveDataOrigin is clear: the key was imported",
            ),
            (
                RESTRICTED,
                "restricted is clear: the key can sign forged attestations",
            ),
            (SIGN, "sign is clear"),
        ] {
            if self.attributes & bit == 0 {
                return Err(fail(reason));
            }
        }
        if self.attributes & DECRYPT != 0 {
            return Err(fail("decrypt is set"));
        }
        Ok(())
    }

    /// Marshals a public area (for tests and simulators). `symmetric` and `scheme` as in the fields.
    pub fn encode(
        attributes: u32,
        auth_policy: &[u8],
        symmetric: (u16, u16, u16),
        scheme: (u16, u16),
        key: &PublicKey,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let kind = match key {
            PublicKey::Rsa { .. } => TPM_ALG_RSA,
            PublicKey::EccP256 { .. } => TPM_ALG_ECC,
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        put_tpm2b(&mut out, auth_policy);
        out.extend_from_slice(&symmetric.0.to_be_bytes());
        if symmetric.0 != TPM_ALG_NULL {
            out.extend_from_slice(&symmetric.1.to_be_bytes());
            out.extend_from_slice(&symmetric.2.to_be_bytes());
        }
        out.extend_from_slice(&scheme.0.to_be_bytes());
        if scheme.0 != TPM_ALG_NULL {
            out.extend_from_slice(&scheme.1.to_be_bytes());
        }
        match key {
            PublicKey::Rsa { modulus, exponent } => {
                let bits = u16::try_from(modulus.len() * 8).expect("RSA modulus fits u16 bits");
                out.extend_from_slice(&bits.to_be_bytes());
                let e = if *exponent == 65_537 { 0 } else { *exponent };
                out.extend_from_slice(&e.to_be_bytes());
                put_tpm2b(&mut out, modulus);
            }
            PublicKey::EccP256 { x, y } => {
                out.extend_from_slice(&TPM_ECC_NIST_P256.to_be_bytes());
                out.extend_from_slice(&TPM_ALG_NULL.to_be_bytes());
                put_tpm2b(&mut out, x);
                put_tpm2b(&mut out, y);
            }
        }
        out
    }
}

/// Attributes of a well-formed attestation key (fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, restricted, sign).
pub const AK_ATTRIBUTES: u32 = attribute::FIXED_TPM
    | attribute::FIXED_PARENT
    | attribute::SENSITIVE_DATA_ORIGIN
    | (1 << 6)
    | attribute::RESTRICTED
    | attribute::SIGN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::TPM_ALG_ECDSA;

    #[test]
    fn ecc_round_trip_name_and_attributes() {
        let key = PublicKey::EccP256 {
            x: [1; 32],
            y: [2; 32],
        };
        let bytes = TpmPublic::encode(
            AK_ATTRIBUTES,
            &[],
            (TPM_ALG_NULL, 0, 0),
            (TPM_ALG_ECDSA, TPM_ALG_SHA256),
            &key,
        );
        let public = TpmPublic::parse(&bytes).expect("parses");
        assert_eq!(public.key, key);
        assert_eq!(public.name().len(), 34);
        assert_eq!(&public.name()[..2], &[0, 0x0b]);
        assert!(public.check_attestation_key().is_ok());
        for len in 0..bytes.len() {
            assert!(TpmPublic::parse(&bytes[..len]).is_err());
        }
        let unrestricted = TpmPublic::encode(
            AK_ATTRIBUTES & !attribute::RESTRICTED,
            &[],
            (TPM_ALG_NULL, 0, 0),
            (TPM_ALG_ECDSA, TPM_ALG_SHA256),
            &key,
        );
        assert!(matches!(
            TpmPublic::parse(&unrestricted)
                .expect("parses")
                .check_attestation_key(),
            Err(TpmError::NotAnAttestationKey { .. })
        ));
    }
}
