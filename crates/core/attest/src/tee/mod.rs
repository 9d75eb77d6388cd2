//! Confidential-VM evidence: AMD SEV-SNP reports and Intel TDX quotes, verified to the vendors' roots
//! in pure Rust. Sans-IO: reports, certificates, collateral and the time are passed in.

pub(crate) mod appraise;
pub mod snp;
pub mod tdx;
