//! bulwark's node-local configuration audit.
//!
//! The agent evaluates CIS-style policies written in the Wazuh SCA YAML format (4.x and 5.x
//! dialects), bulwark's native typed checks (sysctl, effective sshd config, file modes, listening
//! sockets, kernel modules, packages, mounts, systemd units) and a role manifest (what an image may
//! run), turns the results into a trust level for the sentinel, and emits signed reports.
//!
//! The crate is sans-IO: policies parse from text, and every rule is evaluated through the
//! [`host::Host`] trait, so tests run against fixture trees and fixture command outputs. Whole-tree
//! walks are paced by a [`budget::Governor`] over an injected [`budget::Clock`]. What touches the
//! machine (the directory tree and commands of the audited host, the clock, file watches, the
//! agent's loop, policy files and `bulwark audit`) is the runtime crate `bulwark-auditor`.
//!
//! Start reading at [`policy`] (the format), then [`eval`] (semantics), then [`trust`].

#![warn(missing_docs)]

pub mod agent;
pub mod budget;
pub mod eval;
pub mod format;
pub mod host;
pub mod intrinsic;
pub mod manifest;
pub mod native;
pub mod policy;
pub mod report;
pub mod rule;
pub mod sign;
pub mod sshd;
pub mod systemd;
pub mod trust;

/// bulwark's committee-node baseline policy (SCA YAML with bulwark native rules), as shipped in
/// `policies/committee-node.yml`.
pub const COMMITTEE_NODE_POLICY: &str = include_str!("../policies/committee-node.yml");

/// bulwark's committee-node role manifest, as shipped in `policies/committee-node.manifest.yml`.
pub const COMMITTEE_NODE_MANIFEST: &str = include_str!("../policies/committee-node.manifest.yml");
