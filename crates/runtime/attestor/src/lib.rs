//! The machine side of bulwark attestation.
//!
//! `bulwark_attest` decides (manifests, nonces, quote checks, appraisal) and touches nothing. This
//! crate is what touches the machine:
//! - [`device`] (feature `tpm`): a real TPM 2.0 through `tss-esapi`;
//! - [`launch`]: the node's own TPM at run time (measured launch, quotes, credential activation,
//!   sealing), compiled with or without the feature so callers need none of their own;
//! - [`tsm`]: SEV-SNP reports and TDX quotes from a confidential VM's configfs-tsm;
//! - [`cli`]: the `bulwark attest ...` commands, which read and write files and read the clock.
//!
//! A private swtpm for tests, `up --tpm` and the bench is `bulwark_testkit::swtpm`.

pub mod cli;
#[cfg(feature = "tpm")]
pub mod device;
pub mod launch;
pub mod tsm;

pub use cli::{run, AttestArgs};
