//! Attestation for bulwark nodes.
//!
//! A node proves what it runs with evidence — a TPM 2.0 quote over its boot PCRs and the launch
//! PCR its launcher extended with the hashes of its binary, config and policy (with the event log
//! that replays to it, see [`launch`]), an AMD SEV-SNP report or an Intel TDX
//! quote (verified to the vendors' roots, see [`tee`]), or (on laptops) a loudly insecure development
//! attestation. A verifier appraises that evidence against a reference-value manifest
//! signed by M of N operators, with a single-use nonce bound to the node's TLS key and the epoch, and
//! issues a short-lived signed appraisal.
//!
//! Everything that decides — manifest checks, nonce bookkeeping, quote parsing and signature checks,
//! appraisal — is sans-IO: time, randomness and previous state are passed in. Nothing here touches a
//! TPM, a file or the clock: the node's own TPM and the `bulwark attest` commands are in the runtime
//! crate `bulwark-attestor`.

// The test-only switch must never reach an optimized (release) build.
#[cfg(all(feature = "recorded-samples", not(debug_assertions)))]
compile_error!("the `recorded-samples` feature is TEST ONLY (it lets recorded SEV-SNP/TDX samples pass with their own report data); a release build must not enable it");

pub mod appraisal;
mod canonical;
pub mod dev;
pub mod evidence;
pub mod hexbytes;
pub mod launch;
pub mod manifest;
pub mod nonce;
pub mod tee;
pub mod time;
pub mod tpm;
pub mod verifier;
