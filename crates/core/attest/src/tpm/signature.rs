//! `TPMT_SIGNATURE` (TPM 2.0 Part 2, §11.3.4) and its verification with RustCrypto.

use super::public::PublicKey;
use super::wire::Reader;
use super::{TpmError, TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_ALG_SHA256};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256};

const ECC_PARAMETER_MAX: usize = 66;
const RSA_SIGNATURE_MAX: usize = 512;

/// A parsed `TPMT_SIGNATURE`. Only SHA-256 signatures are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// ECDSA over P-256.
    Ecdsa {
        /// r, left-padded to 32 bytes.
        r: [u8; 32],
        /// s, left-padded to 32 bytes.
        s: [u8; 32],
    },
    /// RSASSA-PKCS1-v1_5.
    RsaSsa(Vec<u8>),
    /// RSASSA-PSS (salt length equal to the digest length, as TPMs following FIPS 186 produce).
    RsaPss(Vec<u8>),
}

fn pad32(bytes: &[u8]) -> Result<[u8; 32], TpmError> {
    // A TPM may emit a 33-byte parameter with a leading zero; anything longer is not a P-256 scalar.
    let trimmed = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => &[][..],
    };
    if trimmed.len() > 32 {
        return Err(TpmError::InvalidKey("ECDSA parameter longer than 32 bytes"));
    }
    let mut out = [0u8; 32];
    out[32 - trimmed.len()..].copy_from_slice(trimmed);
    Ok(out)
}

impl TpmSignature {
    /// Parses a marshalled `TPMT_SIGNATURE`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes, "TPMT_SIGNATURE");
        let alg = r.u16("sigAlg")?;
        let hash = r.u16("hash")?;
        if hash != TPM_ALG_SHA256 {
            return Err(TpmError::Unsupported {
                what: "signature hash",
                value: hash,
            });
        }
        let signature = match alg {
            TPM_ALG_ECDSA => {
                let r_bytes = pad32(r.tpm2b(ECC_PARAMETER_MAX, "signatureR")?)?;
                let s_bytes = pad32(r.tpm2b(ECC_PARAMETER_MAX, "signatureS")?)?;
                Self::Ecdsa {
                    r: r_bytes,
                    s: s_bytes,
                }
            }
            TPM_ALG_RSASSA => Self::RsaSsa(r.tpm2b(RSA_SIGNATURE_MAX, "sig")?.to_vec()),
            TPM_ALG_RSAPSS => Self::RsaPss(r.tpm2b(RSA_SIGNATURE_MAX, "sig")?.to_vec()),
            other => {
                return Err(TpmError::Unsupported {
                    what: "signature algorithm",
                    value: other,
                })
            }
        };
        r.finish()?;
        Ok(signature)
    }

    /// Marshals the signature (for tests and simulators).
    pub fn to_bytes(&self) -> Vec<u8> {
        use super::wire::put_tpm2b;
        let mut out = Vec::new();
        let alg = match self {
            Self::Ecdsa { .. } => TPM_ALG_ECDSA,
            Self::RsaSsa(_) => TPM_ALG_RSASSA,
            Self::RsaPss(_) => TPM_ALG_RSAPSS,
        };
        out.extend_from_slice(&alg.to_be_bytes());
        out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        match self {
            Self::Ecdsa { r, s } => {
                put_tpm2b(&mut out, r);
                put_tpm2b(&mut out, s);
            }
            Self::RsaSsa(sig) | Self::RsaPss(sig) => put_tpm2b(&mut out, sig),
        }
        out
    }

    fn algorithm(&self) -> u16 {
        match self {
            Self::Ecdsa { .. } => TPM_ALG_ECDSA,
            Self::RsaSsa(_) => TPM_ALG_RSASSA,
            Self::RsaPss(_) => TPM_ALG_RSAPSS,
        }
    }

    /// Verifies this signature over `message` (hashed here with SHA-256) under `key`. Failure is opaque.
    pub fn verify(&self, key: &PublicKey, message: &[u8]) -> Result<(), TpmError> {
        let digest = Sha256::digest(message);
        match (self, key) {
            (Self::Ecdsa { r, s }, PublicKey::EccP256 { x, y }) => {
                let point =
                    p256::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| TpmError::InvalidKey("P-256 point not on the curve"))?;
                let mut rs = [0u8; 64];
                rs[..32].copy_from_slice(r);
                rs[32..].copy_from_slice(s);
                let signature =
                    p256::ecdsa::Signature::from_slice(&rs).map_err(|_| TpmError::BadSignature)?;
                key.verify_prehash(&digest, &signature)
                    .map_err(|_| TpmError::BadSignature)
            }
            (Self::RsaSsa(sig) | Self::RsaPss(sig), PublicKey::Rsa { modulus, exponent }) => {
                let key = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(modulus),
                    rsa::BigUint::from(*exponent),
                )
                .map_err(|_| TpmError::InvalidKey("RSA public key rejected"))?;
                let result = if matches!(self, Self::RsaSsa(_)) {
                    key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, sig)
                } else {
                    key.verify(rsa::Pss::new::<Sha256>(), &digest, sig)
                };
                result.map_err(|_| TpmError::BadSignature)
            }
            (_, PublicKey::EccP256 { .. }) => Err(TpmError::SignatureKeyMismatch {
                signature: self.algorithm(),
                key: "ECC P-256",
            }),
            (_, PublicKey::Rsa { .. }) => Err(TpmError::SignatureKeyMismatch {
                signature: self.algorithm(),
                key: "RSA",
            }),
        }
    }
}
