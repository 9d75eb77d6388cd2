//! Deposits: a chain's payment to the vault is credited only when n − f members signed that they
//! observed the same deposit, each watching its own chain source.
//!
//! A member's node key signs an [`Attestation`] of an [`ObservedDeposit`] (chain, transaction,
//! output, account, amount). A [`DepositPool`] gathers them per outpoint until n − f distinct
//! members attested the *same* deposit, and then yields a [`DepositCertificate`], which a block
//! carries and every replica checks with [`DepositCertificate::check`], the one rule. f members
//! with lying chain sources cannot credit anything; a member that signs two different deposits
//! for one outpoint is refused with [`PoolError::Equivocation`], which carries both signatures
//! as its own proof (the consensus crate's deposit feed turns it into a quarantine:
//! `bulwark_engine::deposit::DepositEquivocation` is a sentinel self-proof).
//!
//! [`ChainSource`] is what a member watches; [`SimulatedChain`] is the deterministic one for
//! tests and the development committee (it says so in its name). A real watcher implements the
//! trait: `deposits(from_height)` returns every deposit to the vault confirmed in blocks at or
//! above `from_height` up to its confirmed tip, in chain order, and the tip it looked at.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

pub use bulwark_engine::deposit::{
    quorum, CertificateError, DepositCertificate, MemberSignature, ObservedDeposit, Outpoint,
    DEPOSIT_NAMESPACE,
};
use bulwark_engine::AccountId;

use crate::Chain;

/// Most outpoints a pool tracks before it is credited or dropped (bounds what members can make it
/// hold: each member may open at most [`DepositPool::per_member_max`] of them).
pub const OPEN_OUTPOINTS_MAX: usize = 4_096;

/// Most outpoints one member may have attested that no quorum confirmed yet (fewer in a
/// committee larger than 16: see [`DepositPool::per_member_max`]).
pub const OPEN_PER_MEMBER_MAX: usize = 256;

/// Length of an [`Attestation`]'s gossip frame.
pub const ATTESTATION_BYTES: usize = 1 + 32 + 4 + 8 + 8 + 32 + 64;

fn short(key: &[u8; 32]) -> String {
    hex::encode(&key[..8])
}

/// A member's signed statement that it observed `deposit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// What it observed.
    pub deposit: ObservedDeposit,
    /// Who (its Ed25519 node key).
    pub member: [u8; 32],
    /// Its signature over [`ObservedDeposit::signed_message`].
    pub signature: MemberSignature,
}

impl Attestation {
    /// Signs with the member's node key.
    pub fn sign(key: &SigningKey, deposit: ObservedDeposit) -> Self {
        let member = key.verifying_key().to_bytes();
        Self {
            deposit,
            member,
            signature: MemberSignature {
                member,
                signature: key.sign(&deposit.signed_message()).to_bytes(),
            },
        }
    }

    /// The gossip frame: chain u8 ‖ txid 32 ‖ output u32 ‖ account u64 ‖ amount i64 ‖ member
    /// 32 ‖ signature 64 (big-endian), [`ATTESTATION_BYTES`] in all.
    pub fn encode(&self) -> Vec<u8> {
        let d = &self.deposit;
        let mut out = Vec::with_capacity(ATTESTATION_BYTES);
        out.push(d.chain);
        out.extend_from_slice(&d.txid);
        out.extend_from_slice(&d.output.to_be_bytes());
        out.extend_from_slice(&d.account.0.to_be_bytes());
        out.extend_from_slice(&d.amount.to_be_bytes());
        out.extend_from_slice(&self.member);
        out.extend_from_slice(&self.signature.signature);
        out
    }

    /// Reads [`Attestation::encode`]: exactly [`ATTESTATION_BYTES`], nothing checked but the
    /// shape (the pool checks the rest before it stores anything).
    pub fn decode(bytes: &[u8]) -> Result<Self, PoolError> {
        let bytes: &[u8; ATTESTATION_BYTES] = bytes
            .try_into()
            .map_err(|_| PoolError::Malformed(bytes.len()))?;
        let take = |at: usize, n: usize| &bytes[at..at + n];
        let array32 = |at| -> [u8; 32] { take(at, 32).try_into().expect("32 bytes") };
        let u32_at = |at| u32::from_be_bytes(take(at, 4).try_into().expect("4 bytes"));
        let u64_at = |at| u64::from_be_bytes(take(at, 8).try_into().expect("8 bytes"));
        let member = array32(53);
        Ok(Self {
            deposit: ObservedDeposit {
                chain: bytes[0],
                txid: array32(1),
                output: u32_at(33),
                account: AccountId(u64_at(37)),
                amount: i64::from_be_bytes(take(45, 8).try_into().expect("8 bytes")),
            },
            member,
            signature: MemberSignature {
                member,
                signature: take(85, 64).try_into().expect("64 bytes"),
            },
        })
    }

    fn verifies(&self) -> bool {
        self.signature.member == self.member
            && self
                .deposit
                .verifies(&self.member, &self.signature.signature)
    }
}

/// Why an attestation is refused before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The signer is not a member of the committee.
    #[error("{0} is not a member")]
    NotAMember(String),
    /// The signature does not verify.
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    /// The member signed two different deposits for one outpoint: both signatures convict it.
    #[error("{member} signed two different deposits for one outpoint")]
    Equivocation {
        /// The member.
        member: String,
        /// The first deposit it signed, with its signature.
        first: Box<Attestation>,
        /// The second.
        second: Box<Attestation>,
    },
    /// The outpoint was credited already.
    #[error("the deposit at this outpoint was credited already")]
    Credited,
    /// The member has too many unconfirmed outpoints open, or the pool is full.
    #[error("too many unconfirmed deposits are open ({0})")]
    Full(&'static str),
    /// The amount is not positive.
    #[error("amount {0} is not positive")]
    Amount(i64),
    /// The bytes are not an attestation frame.
    #[error("an attestation frame is {ATTESTATION_BYTES} bytes, not {0}")]
    Malformed(usize),
}

/// One node's collection of attestations, per outpoint, until a quorum agrees.
#[derive(Debug, Clone)]
pub struct DepositPool {
    members: BTreeSet<[u8; 32]>,
    quorum: usize,
    open: BTreeMap<Outpoint, BTreeMap<[u8; 32], Attestation>>,
    credited: BTreeSet<Outpoint>,
}

impl DepositPool {
    /// A pool for the committee `members`.
    pub fn new(members: &[[u8; 32]]) -> Self {
        Self {
            members: members.iter().copied().collect(),
            quorum: quorum(members.len()),
            open: BTreeMap::new(),
            credited: BTreeSet::new(),
        }
    }

    /// Most open outpoints one member may hold: [`OPEN_PER_MEMBER_MAX`], and no more than an
    /// n-th of [`OPEN_OUTPOINTS_MAX`], so f hostile members can never fill the pool against
    /// the honest ones.
    pub fn per_member_max(&self) -> usize {
        OPEN_PER_MEMBER_MAX.min(OPEN_OUTPOINTS_MAX / self.members.len().max(1))
    }

    /// Outpoints waiting for a quorum.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// The committee changed (a new epoch): the quorum follows it, and attestations of members
    /// that left are dropped (a certificate counts current members only).
    pub fn set_members(&mut self, members: &[[u8; 32]]) {
        self.members = members.iter().copied().collect();
        self.quorum = quorum(members.len());
        for by_member in self.open.values_mut() {
            by_member.retain(|member, _| self.members.contains(member));
        }
        self.open.retain(|_, by_member| !by_member.is_empty());
    }

    /// Every certificate the open attestations make under the current committee (after
    /// [`DepositPool::set_members`] the quorum may be met by attestations already held).
    pub fn certified(&self) -> Vec<DepositCertificate> {
        let mut out = Vec::new();
        for by_member in self.open.values() {
            let mut tally: BTreeMap<ObservedDeposit, Vec<MemberSignature>> = BTreeMap::new();
            for attestation in by_member.values() {
                tally
                    .entry(attestation.deposit)
                    .or_default()
                    .push(attestation.signature);
            }
            for (deposit, signatures) in tally {
                if signatures.len() >= self.quorum {
                    // Sorted by member: the pool's map is ordered by member key.
                    out.push(DepositCertificate {
                        deposit,
                        signatures,
                    });
                }
            }
        }
        out
    }

    /// The outpoints waiting for a quorum.
    pub fn open_outpoints(&self) -> Vec<Outpoint> {
        self.open.keys().copied().collect()
    }

    /// Whether `outpoint` is known credited.
    pub fn is_credited(&self, outpoint: &Outpoint) -> bool {
        self.credited.contains(outpoint)
    }

    /// Marks `outpoint` credited (a block carried its certificate): later attestations for it
    /// are refused and its open attestations dropped.
    pub fn credited(&mut self, outpoint: Outpoint) {
        self.open.remove(&outpoint);
        self.credited.insert(outpoint);
    }

    /// Takes one attestation, checked before it is stored. Returns the certificate when this
    /// attestation completed a quorum of members agreeing on the same deposit.
    pub fn add(
        &mut self,
        attestation: Attestation,
    ) -> Result<Option<DepositCertificate>, PoolError> {
        let member = attestation.member;
        if !self.members.contains(&member) {
            return Err(PoolError::NotAMember(short(&member)));
        }
        if attestation.deposit.amount <= 0 {
            return Err(PoolError::Amount(attestation.deposit.amount));
        }
        if !attestation.verifies() {
            return Err(PoolError::BadSignature(short(&member)));
        }
        let outpoint = attestation.deposit.outpoint();
        if self.credited.contains(&outpoint) {
            return Err(PoolError::Credited);
        }
        if let Some(seen) = self.open.get(&outpoint).and_then(|m| m.get(&member)) {
            if seen.deposit == attestation.deposit {
                return Ok(None);
            }
            return Err(PoolError::Equivocation {
                member: short(&member),
                first: Box::new(*seen),
                second: Box::new(attestation),
            });
        }
        if !self.open.contains_key(&outpoint) {
            if self.open.len() >= OPEN_OUTPOINTS_MAX {
                return Err(PoolError::Full("the pool"));
            }
            let mine = self
                .open
                .values()
                .filter(|by| by.contains_key(&member))
                .count();
            if mine >= self.per_member_max() {
                return Err(PoolError::Full("this member's"));
            }
        }
        let by_member = self.open.entry(outpoint).or_default();
        by_member.insert(member, attestation);
        let agreeing: Vec<&Attestation> = by_member
            .values()
            .filter(|a| a.deposit == attestation.deposit)
            .collect();
        if agreeing.len() < self.quorum {
            return Ok(None);
        }
        // Sorted by member: the pool's map is ordered by member key.
        let signatures = agreeing.iter().map(|a| a.signature).collect();
        Ok(Some(DepositCertificate {
            deposit: attestation.deposit,
            signatures,
        }))
    }
}

/// What a member watches for deposits to the vault.
pub trait ChainSource {
    /// Every deposit to the vault confirmed in blocks `from_height ..= tip`, in chain order,
    /// and the tip looked at (the next call starts at `tip + 1`).
    fn deposits(&mut self, from_height: u64) -> Result<(Vec<ObservedDeposit>, u64), ChainError>;
}

/// A chain source failed (the caller retries later; nothing is attested).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain source: {0}")]
pub struct ChainError(pub String);

/// The DEVELOPMENT chain: a deterministic sequence of deposits from a seed, one block per call
/// to [`SimulatedChain::mine`], paying the given accounts. Tests, the simulator and `up` use it;
/// a production node watches a real chain.
#[derive(Debug, Clone)]
pub struct SimulatedChain {
    chain: Chain,
    seed: u64,
    accounts: Vec<u64>,
    blocks: Vec<Vec<ObservedDeposit>>,
}

impl SimulatedChain {
    /// A chain with no blocks yet.
    pub fn new(chain: Chain, seed: u64, accounts: Vec<u64>) -> Self {
        Self {
            chain,
            seed,
            accounts,
            blocks: Vec::new(),
        }
    }

    /// Mines the next block: one deposit to each of up to two accounts, amounts from the seed.
    /// Returns its height.
    pub fn mine(&mut self) -> u64 {
        let height = self.blocks.len() as u64;
        let mut block = Vec::new();
        for slot in 0..2u64 {
            if self.accounts.is_empty() {
                break;
            }
            let mix = splitmix(self.seed ^ height.wrapping_mul(0x9e37_79b9) ^ slot);
            let account = self.accounts[(mix % self.accounts.len() as u64) as usize];
            let mut txid = [0u8; 32];
            for (i, chunk) in txid.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&splitmix(mix ^ i as u64).to_le_bytes());
            }
            block.push(ObservedDeposit {
                chain: self.chain.code(),
                txid,
                output: slot as u32,
                account: AccountId(account),
                amount: 1_000_000 + (mix % 9_000_000) as i64,
            });
        }
        self.blocks.push(block);
        height
    }
}

impl ChainSource for SimulatedChain {
    fn deposits(&mut self, from_height: u64) -> Result<(Vec<ObservedDeposit>, u64), ChainError> {
        let Some(tip) = (self.blocks.len() as u64).checked_sub(1) else {
            return Ok((Vec::new(), 0));
        };
        let from = usize::try_from(from_height).unwrap_or(usize::MAX);
        let deposits = self.blocks.iter().skip(from).flatten().copied().collect();
        Ok((deposits, tip))
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    fn members(keys: &[SigningKey]) -> Vec<[u8; 32]> {
        keys.iter().map(|k| k.verifying_key().to_bytes()).collect()
    }

    #[test]
    fn honest_members_certify_what_their_chains_show_and_f_liars_cannot() {
        for n in [4u8, 7] {
            let keys = keys(n);
            let members = members(&keys);
            let f = usize::from(n - 1) / 3;
            let mut chain = SimulatedChain::new(Chain::Ed25519, 11, vec![1, 2, 3]);
            chain.mine();
            chain.mine();
            let (deposits, tip) = chain.deposits(0).unwrap();
            assert_eq!((deposits.len(), tip), (4, 1));
            assert_eq!(chain.deposits(1).unwrap().0, deposits[2..].to_vec());
            let real = deposits[0];
            let mut pool = DepositPool::new(&members);
            // f liars attest a deposit that never happened, and a bigger amount for a real one.
            let fake = ObservedDeposit {
                txid: [0xee; 32],
                ..real
            };
            let inflated = ObservedDeposit {
                amount: real.amount * 100,
                ..real
            };
            for key in &keys[..f] {
                assert_eq!(pool.add(Attestation::sign(key, fake)).unwrap(), None);
                assert_eq!(pool.add(Attestation::sign(key, inflated)).unwrap(), None);
            }
            // The honest members: the real deposit reaches n - f only with all of them.
            let mut certificate = None;
            for (i, key) in keys[f..].iter().enumerate() {
                let out = pool.add(Attestation::sign(key, real)).unwrap();
                if i + 1 < quorum(members.len()) {
                    assert_eq!(out, None, "n = {n}: no quorum yet after {} honest", i + 1);
                } else if certificate.is_none() {
                    certificate = out;
                }
            }
            let certificate = certificate.expect("n - f honest members certify it");
            assert_eq!(certificate.deposit, real);
            certificate.check(&members).unwrap();
            // The liars' versions never reach a quorum; a liar's equivocation convicts it.
            assert!(matches!(
                pool.add(Attestation::sign(&keys[0], real)),
                Err(PoolError::Equivocation { .. })
            ));
            pool.credited(real.outpoint());
            assert_eq!(
                pool.add(Attestation::sign(&keys[n as usize - 1], real)),
                Err(PoolError::Credited)
            );
        }
    }

    #[test]
    fn after_a_committee_change_held_attestations_certify_under_the_new_quorum() {
        let keys = keys(7);
        let members = members(&keys);
        let mut pool = DepositPool::new(&members);
        let deposit = ObservedDeposit {
            chain: Chain::Bitcoin.code(),
            txid: [8; 32],
            output: 1,
            account: AccountId(2),
            amount: 40,
        };
        // Four of seven: short of n - f = 5. Member 6 (leaving) attested another amount.
        for key in &keys[..4] {
            assert_eq!(pool.add(Attestation::sign(key, deposit)).unwrap(), None);
        }
        let other = ObservedDeposit {
            amount: 41,
            ..deposit
        };
        assert_eq!(pool.add(Attestation::sign(&keys[6], other)).unwrap(), None);
        assert!(pool.certified().is_empty());
        // The committee shrinks to the four (n - f = 3): the held attestations certify at once,
        // and the leaver's attestation is gone.
        pool.set_members(&members[..4]);
        let certified = pool.certified();
        assert_eq!(certified.len(), 1);
        assert_eq!(certified[0].deposit, deposit);
        assert_eq!(certified[0].signatures.len(), 4);
        certified[0].check(&members[..4]).unwrap();
        assert!(matches!(
            pool.add(Attestation::sign(&keys[6], deposit)),
            Err(PoolError::NotAMember(_))
        ));
    }

    #[test]
    fn the_pool_is_bounded_per_member_and_refuses_outsiders_and_forgeries() {
        let keys = keys(4);
        let members = members(&keys);
        let mut pool = DepositPool::new(&members);
        let deposit = |i: u32| ObservedDeposit {
            chain: Chain::Ed25519.code(),
            txid: [3; 32],
            output: i,
            account: AccountId(1),
            amount: 10,
        };
        for i in 0..OPEN_PER_MEMBER_MAX as u32 {
            pool.add(Attestation::sign(&keys[0], deposit(i))).unwrap();
        }
        assert_eq!(
            pool.add(Attestation::sign(&keys[0], deposit(9_999))),
            Err(PoolError::Full("this member's"))
        );
        // Another member can still attest (and confirm) the same outpoints.
        assert_eq!(
            pool.add(Attestation::sign(&keys[1], deposit(0))).unwrap(),
            None
        );
        let outsider = SigningKey::from_bytes(&[42; 32]);
        assert!(matches!(
            pool.add(Attestation::sign(&outsider, deposit(1))),
            Err(PoolError::NotAMember(_))
        ));
        let mut forged = Attestation::sign(&keys[2], deposit(1));
        forged.deposit.amount = 11;
        assert!(matches!(pool.add(forged), Err(PoolError::BadSignature(_))));
        let mut borrowed = Attestation::sign(&keys[2], deposit(1));
        borrowed.member = members[3];
        assert!(matches!(
            pool.add(borrowed),
            Err(PoolError::BadSignature(_))
        ));
        let negative = Attestation::sign(
            &keys[2],
            ObservedDeposit {
                amount: -5,
                ..deposit(2)
            },
        );
        assert_eq!(pool.add(negative), Err(PoolError::Amount(-5)));
        assert_eq!(pool.open(), OPEN_PER_MEMBER_MAX);
        // In the largest committee the share per member shrinks: f members fill at most a third.
        let big: Vec<[u8; 32]> = (0..64u8)
            .map(|i| {
                SigningKey::from_bytes(&[i + 100; 32])
                    .verifying_key()
                    .to_bytes()
            })
            .collect();
        let pool = DepositPool::new(&big);
        assert_eq!(pool.per_member_max(), OPEN_OUTPOINTS_MAX / 64);
        assert!(21 * pool.per_member_max() < OPEN_OUTPOINTS_MAX / 2);
    }
}
