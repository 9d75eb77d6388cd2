//! The bulwark engine replicated under commonware simplex (BLS12-381 threshold).
//!
//! Sans-IO in commonware's sense: every module reaches time, storage and the network only
//! through commonware's runtime traits (`Clock`, `Storage`, `Spawner`, p2p `Sender`/`Receiver`),
//! so the whole committee runs under the seeded deterministic runtime in `bulwark-sim` and under
//! tokio in `bulwark-node` with the same code.
//!
//! Start at [`replica`]: the automaton, relay and reporter simplex drives, the speculative
//! execution behind each vote, and the committed engine that executes finalized blocks in
//! height order. [`check`] holds the pure per-block checks and execution, [`block`] the block
//! format, [`genesis`] the venue's genesis state, [`log`] the durable finalized log, [`held`]
//! the blocks voted for, [`snapshots`] the engine snapshots and [`verify`] the replay verifier
//! anyone can run on the log. [`committee`] wires a member over any runtime and network;
//! transactions wait in the bounded [`mempool`]; [`oracle_feed`] forms certified oracle rounds;
//! [`admission`] decides which peers may connect; [`evidence`] records what peers did wrong;
//! [`epoch`] moves the threshold key to the next committee when the sentinel removes a member;
//! [`catchup`] lets a replica outside the current epoch's consensus follow the log on
//! certificates alone.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod block;
pub mod catchup;
pub mod check;
pub mod committee;
pub mod deposit_feed;
pub mod epoch;
pub mod evidence;
pub mod genesis;
pub mod held;
pub mod log;
pub mod mempool;
pub mod oracle_feed;
pub mod replica;
pub mod sentinel_feed;
pub mod snapshots;
pub mod verify;
