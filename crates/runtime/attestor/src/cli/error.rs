//! What can stop a `bulwark attest` command, each with the file or option it concerns.

use bulwark_attest::appraisal::AppraisalError;
use bulwark_attest::evidence::EvidenceError;
use bulwark_attest::hexbytes::HexError;
use bulwark_attest::manifest::ManifestError;
use bulwark_attest::nonce::NonceError;
use bulwark_attest::time::TimeError;
use bulwark_attest::tpm::{EkCertError, TpmError};
use bulwark_attest::verifier::VerifierError;
use std::path::PathBuf;

/// Why a `bulwark attest` command failed (exit code 2). A refused appraisal or manifest is not an
/// error: the command reports it and exits with 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestCliError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A key file could not be created; it must not exist yet.
    #[error("cannot create {} (it must not exist yet): {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document is larger than any bulwark writes.
    #[error("{} is larger than 256 KiB", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A JSON document does not parse as what the option takes.
    #[error("{} is not valid: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// An evidence file is not evidence.
    #[error("{}: {source}", path.display())]
    Evidence {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: EvidenceError,
    },
    /// A file's contents are not of the expected form.
    #[error("{} {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What it should have been.
        reason: &'static str,
    },
    /// An option that takes 32 bytes in hex got something else.
    #[error("{option}: {source} (give 64 hex digits)")]
    Hex {
        /// The option.
        option: &'static str,
        /// Why.
        #[source]
        source: HexError,
    },
    /// A `--pcr` entry is not `INDEX=HEX`.
    #[error("--pcr {entry:?}: {reason}")]
    Pcr {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--at` is not a time.
    #[error("--at {0}")]
    Time(#[from] TimeError),
    /// A manifest or operator set is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The verifier refused an enrollment.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// The nonce could not be entered as fresh.
    #[error(transparent)]
    Nonce(#[from] NonceError),
    /// The appraisal this command signed does not verify: a bug, not bad input.
    #[error("internal: own appraisal does not verify: {0}")]
    OwnAppraisal(#[source] AppraisalError),
    /// The `--ca` file holds no usable EK certificate authorities.
    #[error("{}: {source}", path.display())]
    EkAnchors {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: EkCertError,
    },
    /// This TPM's EK certificate does not chain to the given authorities or does not certify its EK.
    #[error("this TPM's EK certificate is not accepted: {0}")]
    EkRefused(#[source] EkCertError),
    /// A structure the TPM returned does not parse.
    #[error(transparent)]
    TpmStructure(#[from] TpmError),
    /// The TPM could not be opened.
    #[cfg(feature = "tpm")]
    #[error("{0}; is the TPM (or swtpm) running and the TCTI right?")]
    TpmOpen(#[source] crate::device::DeviceError),
    /// A TPM command failed.
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    Tpm(#[from] crate::device::DeviceError),
    /// Measured launch, the launch log or the node's TPM failed.
    #[error(transparent)]
    Launch(#[from] crate::launch::LaunchError),
    /// The command needs a TPM and this build has no TPM support.
    #[error("this build has no TPM support: rebuild with the `tpm` feature of bulwark-attestor (`--features bulwark-attestor/tpm`; needs Debian libtss2-dev, pkg-config, clang)")]
    NoTpmSupport,
}
