//! The machine side of bulwark's configuration audit.
//!
//! `bulwark_audit` decides (policies, rules, evaluation, trust, signed reports) and touches
//! nothing. This crate is what touches the audited machine:
//! - [`machine`]: [`machine::RootedHost`], the `Host` over a directory tree, running commands for
//!   real (no shell, timeout, output cap) or answering them from a fixture;
//! - [`clock`]: the machine's clock that paces whole-tree walks;
//! - [`load`]: policies and role manifests read from files, size-bounded;
//! - [`watch`] and [`agent`]: agent mode, inotify re-checks on a schedule with signed snapshots;
//! - [`cli`]: `bulwark audit`.

#![warn(missing_docs)]

pub mod agent;
pub mod cli;
pub mod clock;
pub mod load;
pub mod machine;
pub mod watch;

pub use cli::{run, AuditArgs, OutputFormat};
