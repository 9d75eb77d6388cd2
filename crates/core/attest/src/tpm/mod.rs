//! TPM 2.0 evidence, verified in pure Rust: `TPMS_ATTEST` quotes, `TPMT_PUBLIC` keys and names,
//! `TPMT_SIGNATURE` checks, PCR digests, and the verifier side of credential activation.
//!
//! Nothing here does I/O: talking to a real TPM is `bulwark_attestor::device` (feature `tpm`, through
//! `tss-esapi`).

mod attest;
mod credential;
mod ekcert;
mod public;
mod quote;
mod signature;
mod wire;

pub use attest::{ClockInfo, PcrSelection, QuoteAttest};
pub use credential::{kdf_a, make_credential, CredentialChallenge};
pub use ekcert::{
    ek_certificate_der, verify_ek_certificate, EkAnchors, EkCertError, ANCHORS_MAX, EK_CERT_NV_RSA,
};
pub use public::{PublicKey, TpmPublic, AK_ATTRIBUTES};
pub use quote::{pcr_digest, verify_quote, VerifiedQuote};
pub use signature::TpmSignature;

/// The boot PCRs quoted alongside [`crate::launch::LAUNCH_PCR`].
pub const BOOT_PCRS: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// `TPM_GENERATED_VALUE`, the magic that opens every structure a TPM signs.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_RSA`.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// `TPM_ALG_ECC`.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// `TPM_ALG_NULL`.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_RSASSA` (PKCS#1 v1.5).
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_RSAPSS`.
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
/// `TPM_ALG_ECDSA`.
pub const TPM_ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_AES`.
pub const TPM_ALG_AES: u16 = 0x0006;
/// `TPM_ALG_CFB`.
pub const TPM_ALG_CFB: u16 = 0x0043;
/// `TPM_ECC_NIST_P256`.
pub const TPM_ECC_NIST_P256: u16 = 0x0003;

/// Errors parsing or verifying TPM structures. Signature failures are deliberately opaque.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TpmError {
    /// The bytes end inside a field.
    #[error("{structure} truncated at {field} (offset {offset})")]
    Truncated {
        /// Structure being parsed.
        structure: &'static str,
        /// Field being read.
        field: &'static str,
        /// Byte offset.
        offset: usize,
    },
    /// A size field exceeds the structure's maximum.
    #[error("{field} is {len} bytes, at most {max} allowed")]
    FieldTooLong {
        /// Field.
        field: &'static str,
        /// Claimed length.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// Bytes left over after a complete structure.
    #[error("{extra} trailing bytes after {structure}")]
    TrailingBytes {
        /// Structure.
        structure: &'static str,
        /// Count of extra bytes.
        extra: usize,
    },
    /// The attestation does not start with `TPM_GENERATED_VALUE`: the TPM did not produce it.
    #[error("attestation magic is {found:#010x}, not TPM_GENERATED_VALUE: not produced by a TPM")]
    BadMagic {
        /// Magic found.
        found: u32,
    },
    /// The attestation is not a quote (e.g. a certify or time attestation).
    #[error("attestation type is {found:#06x}, expected TPM_ST_ATTEST_QUOTE (0x8018)")]
    NotAQuote {
        /// Type found.
        found: u16,
    },
    /// An algorithm, curve or scheme bulwark does not accept.
    #[error("unsupported {what}: {value:#06x}")]
    Unsupported {
        /// What was unsupported.
        what: &'static str,
        /// Its TPM identifier.
        value: u16,
    },
    /// The quote's extraData is not the qualifying data this verifier expects: the nonce, node key or
    /// epoch differs (a replay, stale evidence, or evidence made for another key).
    #[error("quote extraData {found} does not match expected qualifying data {expected}: wrong nonce, node key or epoch")]
    QualifyingDataMismatch {
        /// Hex of the expected qualifying data.
        expected: String,
        /// Hex of the quote's extraData.
        found: String,
    },
    /// The signature does not verify under the attestation key.
    #[error("quote signature does not verify under the attestation key")]
    BadSignature,
    /// The signature's algorithm does not match the key.
    #[error("signature algorithm {signature:#06x} does not fit a {key} key")]
    SignatureKeyMismatch {
        /// Signature algorithm.
        signature: u16,
        /// Key kind.
        key: &'static str,
    },
    /// The attestation key is malformed.
    #[error("attestation key invalid: {0}")]
    InvalidKey(&'static str),
    /// The key's object attributes are not those of a TPM-resident restricted signing key.
    #[error("key attributes {attributes:#010x} are not those of an attestation key: {reason}")]
    NotAnAttestationKey {
        /// Attributes found.
        attributes: u32,
        /// Which rule failed.
        reason: &'static str,
    },
    /// The quoted PCR set and the reported PCR values differ.
    #[error("quote selects PCRs {quoted:?} but evidence reports values for {reported:?}")]
    PcrSetMismatch {
        /// PCRs in the quote's selection.
        quoted: Vec<u8>,
        /// PCRs with reported values.
        reported: Vec<u8>,
    },
    /// The reported PCR values do not hash to the quote's pcrDigest: the values were altered.
    #[error(
        "reported PCR values hash to {computed}, quote's pcrDigest is {quoted}: PCR values altered"
    )]
    PcrDigestMismatch {
        /// Hex digest recomputed from the reported values.
        computed: String,
        /// Hex pcrDigest from the signed quote.
        quoted: String,
    },
    /// Credential activation could not be prepared.
    #[error("credential activation: {0}")]
    Credential(&'static str),
}
