//! A bulwark committee node: the engine replicated under commonware simplex.
//!
//! Start at [`replica`]: the automaton, relay and reporter simplex drives, the speculative
//! execution behind each vote, and the committed engine that executes finalized blocks in
//! height order. [`check`] holds the pure per-block checks and execution, [`block`] the block
//! format, [`genesis`] the venue's genesis state, [`log`] the durable finalized log and
//! [`verify`] the replay verifier anyone can run on it. [`committee`] wires a member over any
//! runtime and network; clients reach a node through [`server`] ([`wire`] protocol, [`client`])
//! into the bounded [`mempool`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod block;
pub mod check;
pub mod client;
pub mod committee;
pub mod dkg;
pub mod evidence;
pub mod genesis;
pub mod held;
pub mod log;
pub mod mempool;
pub mod node;
pub mod oracle_feed;
pub mod replica;
pub mod server;
pub mod snapshots;
pub mod verify;
pub mod wire;
