//! The vault's threshold keys.
//!
//! Two keys, each split among the committee with FROST (the ZF `frost-*` crates, one version):
//! a Bitcoin taproot key ([`Chain::Bitcoin`], BIP340 signatures over the BIP341 key-path sighash
//! of a real transaction built with rust-bitcoin) and an Ed25519 key ([`Chain::Ed25519`]).
//!
//! Sans-IO and deterministic: nothing here opens a file, reads a clock or draws OS randomness.
//! Randomness comes in as a seed; what must reach the disk before a message leaves the member
//! (a used nonce, a withdrawal's watermark) is handed back to the caller as a value to persist.
//!
//! Deposits are credited by n − f members' attestations ([`deposit`]). Start at [`keygen`] (the DKG without a dealer, and the refresh that moves the shares on
//! without a removed member), then [`release`] (the only door to a signature share: a withdrawal
//! the ledger authorized, paying exactly what it says, once), [`signing`] (nonces, shares,
//! aggregation) and [`taproot`] (the transaction and its sighash).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod deposit;
pub mod keygen;
pub mod placement;
pub mod release;
pub mod repair;
pub mod round;
pub mod signing;
pub mod taproot;

use serde::{Deserialize, Serialize};

/// The taproot ciphersuite: FROST(secp256k1, SHA-256) with BIP340 challenges and the BIP341
/// tweak applied to the group key after key generation.
pub type Taproot = frost_secp256k1_tr::Secp256K1Sha256TR;

/// The Ed25519 ciphersuite: FROST(Ed25519, SHA-512), RFC 9591.
pub type Ed25519 = frost_ed25519::Ed25519Sha512;

/// Which of the vault's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Chain {
    /// The Bitcoin taproot key (`frost-secp256k1-tr`).
    Bitcoin,
    /// The Ed25519 key (`frost-ed25519`), for chains that sign with Ed25519.
    Ed25519,
}

impl Chain {
    /// Every chain, in code order.
    pub const ALL: [Chain; 2] = [Chain::Bitcoin, Chain::Ed25519];

    /// The name configs, logs and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            Chain::Bitcoin => "bitcoin",
            Chain::Ed25519 => "ed25519",
        }
    }

    /// The byte that stands for it in signed and hashed messages.
    pub fn code(self) -> u8 {
        match self {
            Chain::Bitcoin => 1,
            Chain::Ed25519 => 2,
        }
    }
}

/// A member's place in the vault's committee, its FROST identifier: 1 ..= n for the genesis
/// committee (its order), [`newcomer_number`] for a member that joined later. Members keep their
/// number across refreshes, so a removed member's number is not reused.
pub type Member = u16;

/// The first number a member that was not in the genesis committee may get.
pub const NEWCOMER_FIRST: Member = 1024;

/// The vault number of a member that joined after genesis (a replacement): derived from its
/// public key alone, so every member computes it alike without any history, and it stays the
/// same in every epoch. Two keys of one committee that land on the same number are told apart
/// by the node, which refuses to start the second (`docs/vault.md`).
pub fn newcomer_number(public_key: &[u8]) -> Member {
    use bitcoin::hashes::{sha256, Hash as _, HashEngine as _};
    let mut engine = sha256::Hash::engine();
    engine.input(b"bulwark/vault/newcomer-number/v1");
    engine.input(public_key);
    let digest = sha256::Hash::from_engine(engine).to_byte_array();
    let span = Member::MAX - NEWCOMER_FIRST;
    NEWCOMER_FIRST + u16::from_be_bytes([digest[0], digest[1]]) % span
}

/// Largest committee the vault supports (bounds every map a peer's message can grow).
pub const MEMBERS_MAX: usize = 64;

/// The signing threshold for `n` members: n − f with f = ⌊(n − 1) / 3⌋, so the f members the
/// committee tolerates as hostile cannot sign alone (t > f), and the n − f honest ones can sign
/// without them.
pub fn threshold(n: usize) -> u16 {
    let f = n.saturating_sub(1) / 3;
    (n - f) as u16
}

/// Why the vault refused something. Crypto failures are opaque on purpose: they say which step
/// failed, not why, so they leak nothing about a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The committee is too small, too large, or the threshold does not fit it.
    #[error("committee of {n} with threshold {t}: {reason}")]
    Committee {
        /// Members.
        n: usize,
        /// Threshold.
        t: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A message came from (or names) a member that is not part of this ceremony.
    #[error("member {0} is not part of this ceremony")]
    NotAParticipant(Member),
    /// A member sent the same round's message twice with different content.
    #[error("member {member} sent two different round {round} messages")]
    Conflicting {
        /// Who.
        member: Member,
        /// Which round.
        round: u8,
    },
    /// A message arrived for a round this ceremony is not in.
    #[error("a round {round} message arrived while the ceremony is {state}")]
    OutOfOrder {
        /// Its round.
        round: u8,
        /// Where the ceremony is.
        state: &'static str,
    },
    /// A peer's bytes exceed the bound for their kind.
    #[error("{what} is {len} bytes, more than {max}")]
    TooLong {
        /// What.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A peer's bytes do not decode as what they claim to be.
    #[error("{0} does not decode")]
    Malformed(&'static str),
    /// A FROST step failed (a share does not match its commitment, a proof of knowledge does not
    /// verify, a signature share is invalid): the step is named, the reason is not.
    #[error("FROST {0} failed")]
    Crypto(&'static str),
}
