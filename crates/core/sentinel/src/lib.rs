//! The sentinel's rules (issue #13): how evidence against a committee member becomes a replicated
//! decision to quarantine it, and how the committee's trust state moves from epoch to epoch.
//!
//! Four parts, all sans-IO and deterministic so that every replica (and the simulator) reaches
//! the same answer from the same input:
//! - [`accusation`]: a member's signed statement that another member misbehaved on some
//!   [`Grounds`], and [`SelfProof`], the trait of evidence that convicts on its own because it
//!   carries the accused's own conflicting signatures (the engine's oracle equivocation is one);
//! - [`membership`]: the committee's replicated trust state and the one check every replica runs on
//!   a [`Quarantine`] decision before applying it: f+1 distinct members' accusations or one
//!   self-proof, never more than f members quarantined at once, and removal at the next epoch;
//! - [`watch`]: what one node does locally: counting its own evidence per peer until the policy
//!   says to accuse ([`Watch`]), and gathering the accusations of others, checked before they are
//!   stored, until they carry a decision ([`AccusationPool`]);
//! - [`admit`]: members joining at the next epoch: a removed member re-admitted, or a newcomer
//!   taking a quarantined or removed member's seat on an operator quorum's approval, both on f+1
//!   distinct members' signed [`Affirmation`]s of a fresh affirming appraisal and a clean audit.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accusation;
pub mod admit;
pub mod membership;
pub mod policy;
pub mod watch;

#[cfg(test)]
mod test_support;

pub use accusation::{verify_strict, Accusation, Grounds, SelfProof};
pub use admit::{Admit, Affirmation, Approval, OperatorKey, Operators, OperatorsError, Seat};
pub use membership::{EpochChange, EpochKey, Membership, Quarantine, Refusal, Trust};
pub use policy::{Policy, PolicyError};
pub use watch::{AccusationPool, Offer, Silence, Watch};

/// A committee member's Ed25519 public key, the identity accusations name.
pub type MemberKey = [u8; 32];

/// How many faulty members a committee of `n` tolerates: `⌊(n − 1) / 3⌋`.
pub fn faults_tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 3
}
