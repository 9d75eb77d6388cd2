//! EK certificates: checks that an endorsement key belongs to a TPM its manufacturer certified.
//!
//! Credential activation proves that an AK lives in the same TPM as a given EK. It says nothing
//! about whether that EK is a real TPM's: an operator in a third-party data center could hand
//! in the EK of a software TPM. TPM manufacturers certify each EK with an X.509 certificate
//! kept in the TPM's NV memory (RSA 2048 EK at [`EK_CERT_NV_RSA`]); the verifier checks it was
//! signed by a CA certificate the operators trust (the manufacturer's issuing CA, from a PEM
//! file), that it is within its validity period, and that its key is exactly the EK in
//! question.
//!
//! Every certificate in the trusted file is a trust anchor: put the manufacturer's issuing CA
//! there (an EK certificate is checked against its direct issuer only). Extensions are not
//! interpreted: the TCG EK profile's subject-alternative-name (TPM manufacturer, model,
//! version) is informational here. Signatures: RSA PKCS#1 v1.5 with SHA-256, SHA-384 or
//! SHA-512, and ECDSA P-256 with SHA-256 and P-384 with SHA-384.

use super::public::{PublicKey, TpmPublic};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::spki::ObjectIdentifier;
use x509_cert::Certificate;

/// NV index of the RSA 2048 EK certificate (TCG EK Credential Profile, low range).
pub const EK_CERT_NV_RSA: u32 = 0x01c0_0002;

/// Most certificates a trusted-CA file may hold.
pub const ANCHORS_MAX: usize = 64;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why an EK certificate is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EkCertError {
    /// The trusted-CA file is not usable.
    #[error("trusted EK CA file: {0}")]
    Anchors(String),
    /// The certificate does not parse as DER X.509.
    #[error("the EK certificate does not parse: {0}")]
    Malformed(String),
    /// No trusted CA has the certificate's issuer name.
    #[error("the EK certificate's issuer {issuer:?} is not among the trusted EK CAs")]
    UnknownIssuer {
        /// The issuer's distinguished name.
        issuer: String,
    },
    /// The signature algorithm is not one bulwark checks.
    #[error("the EK certificate is signed with {0}, which bulwark does not check")]
    UnsupportedAlgorithm(String),
    /// A trusted CA has the issuer's name but its key does not verify the signature.
    #[error("the EK certificate's signature does not verify under the trusted CA {issuer:?} (or that CA's key does not fit the signature algorithm)")]
    BadSignature {
        /// The issuer's distinguished name.
        issuer: String,
    },
    /// The certificate or its issuer is not valid at the time of the check.
    #[error("{which} is not valid at {at} (valid from {not_before} to {not_after}, UNIX seconds)")]
    Expired {
        /// "the EK certificate" or "its issuer".
        which: &'static str,
        /// Time of the check.
        at: u64,
        /// Start of validity.
        not_before: u64,
        /// End of validity.
        not_after: u64,
    },
    /// The certified key is not the EK.
    #[error("the EK certificate certifies a different key than this EK")]
    KeyMismatch,
}

/// The CA certificates trusted to certify EKs.
#[derive(Clone, Debug)]
pub struct EkAnchors {
    certificates: Vec<Certificate>,
}

impl EkAnchors {
    /// Reads every `CERTIFICATE` block of a PEM text. At least one, at most [`ANCHORS_MAX`].
    pub fn from_pem(text: &str) -> Result<Self, EkCertError> {
        use base64::Engine as _;
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let mut certificates = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let body = &rest[start + BEGIN.len()..];
            let end = body.find(END).ok_or_else(|| {
                EkCertError::Anchors("a certificate block has no END line".into())
            })?;
            let encoded: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    EkCertError::Anchors(format!("certificate {}: {e}", certificates.len() + 1))
                })?;
            let certificate = Certificate::from_der(&der).map_err(|e| {
                EkCertError::Anchors(format!("certificate {}: {e}", certificates.len() + 1))
            })?;
            certificates.push(certificate);
            if certificates.len() > ANCHORS_MAX {
                return Err(EkCertError::Anchors(format!(
                    "more than {ANCHORS_MAX} certificates"
                )));
            }
            rest = &body[end + END.len()..];
        }
        if certificates.is_empty() {
            return Err(EkCertError::Anchors(
                "no PEM CERTIFICATE block in it".into(),
            ));
        }
        Ok(EkAnchors { certificates })
    }

    /// How many CA certificates are trusted.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Always false: a set of anchors holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

fn validity(certificate: &Certificate) -> (u64, u64) {
    let validity = &certificate.tbs_certificate.validity;
    (
        validity.not_before.to_unix_duration().as_secs(),
        validity.not_after.to_unix_duration().as_secs(),
    )
}

fn check_time(certificate: &Certificate, which: &'static str, at: u64) -> Result<(), EkCertError> {
    let (not_before, not_after) = validity(certificate);
    if at < not_before || at > not_after {
        return Err(EkCertError::Expired {
            which,
            at,
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// Verifies `signature` over `message` with the key of `issuer` under algorithm `algorithm`.
/// `Ok(false)`: a supported algorithm whose signature does not verify.
fn verify_signature(
    issuer: &Certificate,
    algorithm: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, EkCertError> {
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let key_bytes = spki.subject_public_key.raw_bytes();
    let rsa_digest: Option<(rsa::Pkcs1v15Sign, Vec<u8>)> = if algorithm == SHA256_WITH_RSA {
        Some((
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            Sha256::digest(message).to_vec(),
        ))
    } else if algorithm == SHA384_WITH_RSA {
        Some((
            rsa::Pkcs1v15Sign::new::<Sha384>(),
            Sha384::digest(message).to_vec(),
        ))
    } else if algorithm == SHA512_WITH_RSA {
        Some((
            rsa::Pkcs1v15Sign::new::<Sha512>(),
            Sha512::digest(message).to_vec(),
        ))
    } else {
        None
    };
    if let Some((scheme, digest)) = rsa_digest {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Ok(false);
        }
        let Ok(key) = rsa::RsaPublicKey::from_pkcs1_der(key_bytes) else {
            return Ok(false);
        };
        return Ok(key.verify(scheme, &digest, signature).is_ok());
    }
    if algorithm == ECDSA_WITH_SHA256 {
        use p256::ecdsa::signature::Verifier as _;
        let (Ok(key), Ok(signature)) = (
            p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes),
            p256::ecdsa::DerSignature::from_bytes(signature),
        ) else {
            return Ok(false);
        };
        return Ok(key.verify(message, &signature).is_ok());
    }
    if algorithm == ECDSA_WITH_SHA384 {
        use p384::ecdsa::signature::Verifier as _;
        let (Ok(key), Ok(signature)) = (
            p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes),
            p384::ecdsa::DerSignature::from_bytes(signature),
        ) else {
            return Ok(false);
        };
        return Ok(key.verify(message, &signature).is_ok());
    }
    Err(EkCertError::UnsupportedAlgorithm(algorithm.to_string()))
}

/// True when the certificate's subject key is exactly `ek`'s public key.
fn certifies(certificate: &Certificate, ek: &TpmPublic) -> bool {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    let spki = &certificate.tbs_certificate.subject_public_key_info;
    match &ek.key {
        PublicKey::Rsa { modulus, exponent } => {
            if spki.algorithm.oid != RSA_ENCRYPTION {
                return false;
            }
            let Ok(key) = rsa::RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
            else {
                return false;
            };
            key.n().to_bytes_be() == rsa::BigUint::from_bytes_be(modulus).to_bytes_be()
                && key.e() == &rsa::BigUint::from(*exponent)
        }
        PublicKey::EccP256 { x, y } => {
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            spki.subject_public_key.raw_bytes() == point.as_slice()
        }
    }
}

/// Checks that `der` is an EK certificate for `ek`, signed by one of `anchors`, valid at `at`
/// (UNIX seconds); returns the issuer's distinguished name.
pub fn verify_ek_certificate(
    der: &[u8],
    ek: &TpmPublic,
    anchors: &EkAnchors,
    at: u64,
) -> Result<String, EkCertError> {
    let certificate =
        Certificate::from_der(der).map_err(|e| EkCertError::Malformed(e.to_string()))?;
    // The outer algorithm is not covered by the signature: it must repeat the signed one.
    if certificate.signature_algorithm != certificate.tbs_certificate.signature {
        return Err(EkCertError::Malformed(
            "the outer and the signed signature algorithms differ".into(),
        ));
    }
    let algorithm = certificate.signature_algorithm.oid;
    let tbs = certificate
        .tbs_certificate
        .to_der()
        .map_err(|e| EkCertError::Malformed(e.to_string()))?;
    let signature = certificate
        .signature
        .as_bytes()
        .ok_or_else(|| EkCertError::Malformed("the signature is not whole bytes".into()))?;
    let issuer_name = certificate.tbs_certificate.issuer.to_string();
    // Several anchors may carry the issuer's name (a CA and its renewal): any one that
    // verifies the signature and is valid now will do.
    let mut refusal = Some(EkCertError::UnknownIssuer {
        issuer: issuer_name.clone(),
    });
    for anchor in &anchors.certificates {
        if anchor.tbs_certificate.subject != certificate.tbs_certificate.issuer {
            continue;
        }
        if !verify_signature(anchor, algorithm, &tbs, signature)? {
            if matches!(refusal, Some(EkCertError::UnknownIssuer { .. })) {
                refusal = Some(EkCertError::BadSignature {
                    issuer: issuer_name.clone(),
                });
            }
            continue;
        }
        match check_time(anchor, "its issuer", at) {
            Ok(()) => {
                refusal = None;
                break;
            }
            Err(expired) => refusal = Some(expired),
        }
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    check_time(&certificate, "the EK certificate", at)?;
    if !certifies(&certificate, ek) {
        return Err(EkCertError::KeyMismatch);
    }
    Ok(issuer_name)
}

/// The DER certificate inside an EK certificate NV index's contents: some TPMs store it behind
/// the TCG header (`10 01`, then a 2-byte length) or padded after its end. Returns exactly the
/// outer DER `SEQUENCE`.
pub fn ek_certificate_der(nv: &[u8]) -> Result<&[u8], EkCertError> {
    let malformed =
        |what: &str| EkCertError::Malformed(format!("EK certificate NV contents: {what}"));
    let mut bytes = nv;
    if bytes.len() >= 4 && bytes[0] == 0x10 && bytes[1] == 0x01 {
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        bytes = bytes
            .get(4..4 + len)
            .ok_or_else(|| malformed("the TCG header's length runs past the end"))?;
    }
    // The outer SEQUENCE: tag 0x30, then a definite length (short form, or 1 to 4 length bytes).
    if bytes.first() != Some(&0x30) {
        return Err(malformed("no DER SEQUENCE at the start"));
    }
    let first = *bytes.get(1).ok_or_else(|| malformed("truncated length"))?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(malformed("unsupported length encoding"));
        }
        let digits = bytes
            .get(2..2 + count)
            .ok_or_else(|| malformed("truncated length"))?;
        let len = digits
            .iter()
            .fold(0usize, |acc, digit| (acc << 8) | usize::from(*digit));
        (2 + count, len)
    };
    bytes
        .get(..header + len)
        .ok_or_else(|| malformed("the certificate runs past the end"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nv_contents_are_trimmed_to_the_der_certificate() {
        // A short-form and a long-form SEQUENCE, bare, padded, and behind the TCG header.
        let short = [0x30, 0x03, 0x02, 0x01, 0x05];
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0xaa, 0x100));
        for der in [&short[..], &long[..]] {
            assert_eq!(ek_certificate_der(der).unwrap(), der);
            let mut padded = der.to_vec();
            padded.extend([0xff; 7]);
            assert_eq!(ek_certificate_der(&padded).unwrap(), der);
            let mut headed = vec![0x10, 0x01];
            headed.extend((der.len() as u16).to_be_bytes());
            headed.extend(der);
            headed.extend([0; 3]);
            assert_eq!(ek_certificate_der(&headed).unwrap(), der);
        }
        for bad in [
            &[][..],
            &[0x31, 0x00][..],
            &[0x30][..],
            &[0x30, 0x85, 1, 2, 3, 4, 5][..],
            &[0x30, 0x80][..],
            &[0x30, 0x82, 0x01][..],
            &[0x30, 0x05, 0x00][..],
            &[0x10, 0x01, 0x00, 0x09, 0x30, 0x00][..],
        ] {
            assert!(
                matches!(ek_certificate_der(bad), Err(EkCertError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_anchor_files_are_refused_with_a_reason() {
        for (text, want) in [
            ("", "no PEM CERTIFICATE block"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", "no END line"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "certificate 1",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate 1",
            ),
        ] {
            let error = EkAnchors::from_pem(text).unwrap_err().to_string();
            assert!(error.contains(want), "{text:?}: {error}");
        }
    }
}
