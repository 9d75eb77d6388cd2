//! Attestation for bulwark nodes.
//!
//! A node proves what it runs with evidence — a TPM 2.0 quote over its boot PCRs and the application
//! PCR holding the hashes of its binary, config and policy, an AMD SEV-SNP report or an Intel TDX
//! quote (verified to the vendors' roots, see [`tee`]), or (on laptops) a loudly insecure development
//! attestation. A verifier appraises that evidence against a reference-value manifest
//! signed by M of N operators, with a single-use nonce bound to the node's TLS key and the epoch, and
//! issues a short-lived signed appraisal.
//!
//! Everything that decides — manifest checks, nonce bookkeeping, quote parsing and signature checks,
//! appraisal — is sans-IO: time, randomness and previous state are passed in. Only `tpm::device` (feature
//! `tpm`), [`launch`] (the node's own TPM, through it) and the [`cli`] touch a TPM, files or the clock (a private swtpm for tests and `up --tpm` is `bulwark_testkit::swtpm`).

pub mod appraisal;
mod canonical;
pub mod cli;
pub mod dev;
pub mod evidence;
pub mod hexbytes;
pub mod launch;
pub mod manifest;
pub mod nonce;
pub mod tee;
pub mod tpm;
pub mod verifier;

pub use cli::{run, AttestArgs};
