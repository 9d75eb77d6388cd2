//! A bulwark committee node as a process: tokio, authenticated p2p, the client endpoint, the
//! keystore on disk, attested admission against the node's TPM or the development attestor,
//! and the venue sources it observes.
//!
//! The protocol logic lives in the core crates: `bulwark-consensus` (replica, log, checks,
//! mempool, admission), `bulwark-custody` (DKG, sealed secrets) and `bulwark-api` (the client
//! protocol). Start at [`node::run`]: startup as named steps, then the tasks it spawns.
//! Clients reach a node through [`server`]; [`client`] is the blocking client the CLI uses.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod node;
pub mod server;
