//! Chain deposits through the committee: every member watches its own chain source, signs an
//! attestation for each deposit it sees and gossips it; the block proposer puts each deposit
//! that n − f current members attested alike into its block (as
//! `SystemCommand::ChainDeposit`), and every replica checks it (`check::check_and_execute`)
//! before the engine credits it, once per outpoint.
//!
//! [`DepositFeed`] is the pure part: the vault's bounded attestation pool
//! (`bulwark_vault::deposit::DepositPool`) and the certificates it completed, kept until a
//! committed block credits them. It follows the committed engine: the committee of the current
//! epoch, and the outpoints credited already.
//!
//! A member that signs two different deposits for one outpoint convicts itself: the pool
//! refuses the second attestation with both signatures, the feed keeps them as a
//! `DepositEquivocation`, and the proposer puts the quarantine into its block like an oracle
//! equivocation's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bulwark_engine::command::SystemCommand;
use bulwark_engine::deposit::{DepositCertificate, DepositEquivocation, Outpoint};
use bulwark_engine::Engine;
use bulwark_vault::deposit::{Attestation, DepositPool, PoolError};

/// Most chain deposits one block carries (they share the block's system-command slots with
/// oracle rounds and the sentinel's decisions).
pub const BLOCK_DEPOSITS_MAX: usize = 2;

/// The attestations a member gathered and the certificates they completed.
pub struct DepositFeed {
    pool: DepositPool,
    members: Vec<[u8; 32]>,
    /// Completed certificates by outpoint, until a committed block credits them (bounded by
    /// the pool's open outpoints: one certificate per open outpoint).
    ready: BTreeMap<Outpoint, DepositCertificate>,
    /// One equivocation proof per member (bounded by the committee), until the member is no
    /// longer admitted.
    equivocations: BTreeMap<[u8; 32], DepositEquivocation>,
}

/// The feed shared by the chain watcher, the gossip receiver and the proposer.
pub type SharedDeposits = Arc<Mutex<DepositFeed>>;

impl DepositFeed {
    /// A feed for the committee of `engine` (empty without a sentinel committee: nothing can be
    /// certified).
    pub fn new(engine: &Engine) -> Self {
        let members = members_of(engine);
        let mut feed = Self {
            pool: DepositPool::new(&members),
            members,
            ready: BTreeMap::new(),
            equivocations: BTreeMap::new(),
        };
        feed.committed(engine);
        feed
    }

    /// Offers one attestation (this member's own or a peer's): checked by the pool before it is
    /// stored. A certificate it completes waits for the proposer.
    pub fn offer(&mut self, attestation: Attestation) -> Result<(), PoolError> {
        match self.pool.add(attestation) {
            Ok(Some(certificate)) => {
                self.ready
                    .insert(certificate.deposit.outpoint(), certificate);
            }
            Ok(None) => {}
            Err(PoolError::Equivocation {
                member,
                first,
                second,
            }) => {
                // The pool checked both signatures and that the signer is a member.
                self.equivocations
                    .entry(first.member)
                    .or_insert(DepositEquivocation {
                        member: first.member,
                        first: first.deposit,
                        first_signature: first.signature.signature,
                        second: second.deposit,
                        second_signature: second.signature.signature,
                    });
                return Err(PoolError::Equivocation {
                    member,
                    first,
                    second,
                });
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// The quarantines to propose: one per member this feed holds a deposit equivocation of,
    /// that `next` (the parent's trust state, shared with the block's other sources of
    /// quarantines) still accepts at `now_ms`, applied to it in turn. (`next` may be a branch
    /// that is never finalized, so nothing is dropped here: [`DepositFeed::committed`] drops the
    /// proofs against members the committed state no longer admits.)
    pub fn propose_into(
        &self,
        next: &mut bulwark_sentinel::Membership,
        now_ms: u64,
    ) -> Vec<SystemCommand> {
        let epoch = next.epoch();
        let admitted: Vec<[u8; 32]> = self
            .equivocations
            .keys()
            .filter(|member| next.is_admitted(member))
            .copied()
            .collect();
        let decisions = admitted.into_iter().filter_map(|member| {
            let proof = self.equivocations.get(&member)?;
            Some(bulwark_engine::sentinel::Decision {
                member,
                epoch,
                evidence: bulwark_sentinel::membership::Evidence::SelfProof(Box::new(
                    bulwark_engine::sentinel::Proof::DepositEquivocation(*proof),
                )),
            })
        });
        crate::sentinel_feed::in_turn(next, decisions, now_ms)
    }

    /// Deposit equivocation proofs held.
    pub fn equivocations(&self) -> usize {
        self.equivocations.len()
    }

    /// Whether `outpoint` is known credited (a member need not attest it again).
    pub fn is_credited(&self, outpoint: &Outpoint) -> bool {
        self.pool.is_credited(outpoint)
    }

    /// Certificates for a block on `parent` (the engine after the block's parent) whose earlier
    /// system commands leave the trust state `membership`: at most [`BLOCK_DEPOSITS_MAX`], none
    /// credited in `parent`, each passing the one rule against `membership` and paying an
    /// account that exists, in outpoint order.
    pub fn propose(
        &self,
        parent: &Engine,
        membership: &bulwark_sentinel::Membership,
    ) -> Vec<SystemCommand> {
        self.ready
            .values()
            .filter(|c| !parent.deposit_credited(&c.deposit.outpoint()))
            .filter(|c| parent.account(c.deposit.account).is_some())
            .map(|c| {
                // Only members in good standing count: a quarantined member's signature is left
                // out (the quorum may still hold without it).
                let mut c = c.clone();
                c.signatures.retain(|s| membership.is_admitted(&s.member));
                c
            })
            .filter(|c| c.check_in(membership).is_ok())
            .take(BLOCK_DEPOSITS_MAX)
            .map(|c| SystemCommand::ChainDeposit(Box::new(c)))
            .collect()
    }

    /// Follows a committed `engine`: the pool takes the epoch's committee, and every outpoint
    /// the engine credited leaves the feed for good.
    pub fn committed(&mut self, engine: &Engine) {
        if let Some(membership) = engine.membership() {
            self.equivocations
                .retain(|member, _| membership.is_admitted(member));
        }
        let members = members_of(engine);
        if members != self.members {
            self.pool.set_members(&members);
            self.members = members;
            // Certificates made under the old committee are made again from the attestations
            // of the members that stayed (resends are duplicates and would not rebuild them).
            self.ready = self
                .pool
                .certified()
                .into_iter()
                .map(|c| (c.deposit.outpoint(), c))
                .collect();
        }
        let credited: Vec<Outpoint> = self
            .ready
            .keys()
            .chain(self.pool.open_outpoints().iter())
            .filter(|o| engine.deposit_credited(o))
            .copied()
            .collect();
        for outpoint in credited {
            self.ready.remove(&outpoint);
            self.pool.credited(outpoint);
        }
    }

    /// Most open attestations one member may have in the pool (a member attests no more than
    /// this at once).
    pub fn per_member_max(&self) -> usize {
        self.pool.per_member_max()
    }

    /// Outpoints waiting for a quorum, and certificates waiting for a block.
    pub fn status(&self) -> (usize, usize) {
        (self.pool.open(), self.ready.len())
    }
}

fn members_of(engine: &Engine) -> Vec<[u8; 32]> {
    engine
        .membership()
        .map(|m| m.members().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_engine::deposit::ObservedDeposit;
    use bulwark_engine::sentinel::SentinelConfig;
    use bulwark_engine::{AccountId, Command, EngineConfig};
    use ed25519_dalek::SigningKey;

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    fn engine(keys: &[SigningKey]) -> Engine {
        let config = EngineConfig {
            sentinel: SentinelConfig {
                members: keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
                policy: bulwark_sentinel::Policy::default(),
                ..Default::default()
            },
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(config);
        let mut events = Vec::new();
        engine.execute(
            0,
            &[Command::System(SystemCommand::OpenAccount {
                account: AccountId(1),
                public_key: [0; 32],
            })],
            &mut events,
        );
        engine
    }

    fn deposit(txid: u8, account: u64) -> ObservedDeposit {
        ObservedDeposit {
            chain: 1,
            txid: [txid; 32],
            output: 0,
            account: AccountId(account),
            amount: 5_000_000,
        }
    }

    #[test]
    fn a_member_signing_two_deposits_for_one_outpoint_is_quarantined_on_its_own_signatures() {
        let keys = keys(4);
        let mut engine = engine(&keys);
        let mut feed = DepositFeed::new(&engine);
        let real = deposit(3, 1);
        let inflated = ObservedDeposit {
            amount: real.amount * 100,
            ..real
        };
        feed.offer(Attestation::sign(&keys[3], real)).unwrap();
        assert!(matches!(
            feed.offer(Attestation::sign(&keys[3], inflated)),
            Err(PoolError::Equivocation { .. })
        ));
        // An honest member's two attestations of the same deposit are no conflict.
        feed.offer(Attestation::sign(&keys[0], real)).unwrap();
        feed.offer(Attestation::sign(&keys[0], real)).unwrap();
        assert_eq!(feed.equivocations(), 1);
        let mut next = engine.membership().unwrap().clone();
        let rounds = feed.propose_into(&mut next, engine.time_ms());
        let [SystemCommand::Quarantine(decision)] = rounds.as_slice() else {
            panic!("one quarantine: {rounds:?}");
        };
        let liar = keys[3].verifying_key().to_bytes();
        assert_eq!(decision.member, liar);
        // Every replica's engine applies it: the liar is quarantined on the proof alone.
        let mut events = Vec::new();
        engine.execute(
            engine.time_ms(),
            &[Command::System(rounds[0].clone())],
            &mut events,
        );
        assert!(
            events.iter().any(|e| matches!(e, bulwark_engine::Event::Quarantined { member, .. } if *member == liar)),
            "{events:?}"
        );
        // Once it is no longer admitted, it is never proposed again, and the committed state
        // drops the proof.
        let mut next = engine.membership().unwrap().clone();
        assert!(feed.propose_into(&mut next, engine.time_ms()).is_empty());
        assert_eq!(feed.equivocations(), 1);
        feed.committed(&engine);
        assert_eq!(feed.equivocations(), 0);
    }

    #[test]
    fn a_deposit_n_minus_f_attested_is_proposed_once_and_f_liars_propose_nothing() {
        for n in [4u8, 7] {
            let keys = keys(n);
            let f = usize::from(n - 1) / 3;
            let mut engine = engine(&keys);
            let mut feed = DepositFeed::new(&engine);
            // f liars attest a deposit no chain shows.
            for key in &keys[..f] {
                feed.offer(Attestation::sign(key, deposit(9, 1))).unwrap();
            }
            assert!(
                feed.propose(&engine, engine.membership().unwrap())
                    .is_empty(),
                "n = {n}: f liars"
            );
            // The real one, by the n - f others; and one to an account that does not exist.
            for key in &keys[f..] {
                feed.offer(Attestation::sign(key, deposit(1, 1))).unwrap();
                feed.offer(Attestation::sign(key, deposit(2, 77))).unwrap();
            }
            let proposed = feed.propose(&engine, engine.membership().unwrap());
            assert_eq!(proposed.len(), 1, "n = {n}: {proposed:?}");
            let SystemCommand::ChainDeposit(certificate) = &proposed[0] else {
                panic!("a chain deposit");
            };
            assert_eq!(certificate.deposit, deposit(1, 1));
            // The engine credits it; the committed feed forgets it and refuses it again.
            let mut events = Vec::new();
            engine.execute(
                1,
                &proposed
                    .into_iter()
                    .map(Command::System)
                    .collect::<Vec<_>>(),
                &mut events,
            );
            assert!(engine.deposit_credited(&deposit(1, 1).outpoint()));
            feed.committed(&engine);
            assert!(feed
                .propose(&engine, engine.membership().unwrap())
                .is_empty());
            assert!(feed.is_credited(&deposit(1, 1).outpoint()));
            assert!(matches!(
                feed.offer(Attestation::sign(&keys[0], deposit(1, 1))),
                Err(PoolError::Credited)
            ));
        }
    }

    #[test]
    fn a_quarantined_members_signature_is_left_out_of_a_proposed_certificate() {
        use bulwark_sentinel::membership::{Evidence, Quarantine};
        use bulwark_sentinel::{Accusation, Grounds};
        let keys = keys(4);
        let mut engine = engine(&keys);
        let mut feed = DepositFeed::new(&engine);
        for key in &keys {
            feed.offer(Attestation::sign(key, deposit(1, 1))).unwrap();
        }
        let accused = keys[3].verifying_key().to_bytes();
        let quarantine = SystemCommand::Quarantine(Box::new(Quarantine {
            member: accused,
            epoch: 0,
            evidence: Evidence::Accusations(
                keys[..2]
                    .iter()
                    .map(|k| Accusation::sign(k, accused, Grounds::Silence, 0, 4))
                    .collect(),
            ),
        }));
        let mut events = Vec::new();
        engine.execute(5, &[Command::System(quarantine)], &mut events);
        let membership = engine.membership().unwrap();
        assert!(!membership.is_admitted(&accused), "{events:?}");
        let proposed = feed.propose(&engine, membership);
        let [SystemCommand::ChainDeposit(certificate)] = proposed.as_slice() else {
            panic!("one deposit: {proposed:?}");
        };
        assert_eq!(certificate.signatures.len(), 3);
        assert!(certificate.signatures.iter().all(|s| s.member != accused));
        certificate.check_in(membership).unwrap();
    }

    #[test]
    fn a_stranger_or_a_forged_attestation_is_refused_before_it_is_stored() {
        let keys = keys(4);
        let engine = engine(&keys);
        let mut feed = DepositFeed::new(&engine);
        let stranger = SigningKey::from_bytes(&[99; 32]);
        assert!(matches!(
            feed.offer(Attestation::sign(&stranger, deposit(1, 1))),
            Err(PoolError::NotAMember(_))
        ));
        let mut forged = Attestation::sign(&keys[0], deposit(1, 1));
        forged.deposit.amount *= 10;
        assert!(matches!(
            feed.offer(forged),
            Err(PoolError::BadSignature(_))
        ));
        assert_eq!(feed.status(), (0, 0));
        // The gossip frame round-trips and refuses every other length.
        let honest = Attestation::sign(&keys[1], deposit(3, 1));
        let bytes = honest.encode();
        assert_eq!(Attestation::decode(&bytes).unwrap(), honest);
        for len in [0, bytes.len() - 1, bytes.len() + 1] {
            let mut other = bytes.clone();
            other.resize(len, 0);
            assert!(matches!(
                Attestation::decode(&other),
                Err(PoolError::Malformed(_))
            ));
        }
    }
}
