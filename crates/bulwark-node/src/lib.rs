//! A bulwark committee node: the engine replicated under commonware simplex.
//!
//! Start at [`replica`]: the automaton, relay and reporter simplex drives, the speculative
//! execution behind each vote, and the committed engine that executes finalized blocks in
//! height order. [`check`] holds the pure per-block checks and execution, [`block`] the block
//! format, [`genesis`] the venue's genesis state.

#![forbid(unsafe_code)]

pub mod block;
pub mod check;
pub mod committee;
pub mod genesis;
pub mod log;
pub mod replica;
