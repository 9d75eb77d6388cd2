//! The committee's replicated trust state, and the one check every replica runs on a quarantine.
//!
//! A member is quarantined by a [`Quarantine`] decision that carries its own evidence: either one
//! [`SelfProof`] (the accused's own conflicting signatures) or accusations from at least f+1
//! distinct admitted members, all for this epoch and recent together. Fewer than f+1 members cannot
//! remove anyone, so f colluding members accusing an honest one achieve nothing. At most
//! [`crate::Policy::quarantine_limit`] (never above f) members are quarantined at once, and never so
//! many that fewer than [`crate::Policy::min_members`] remain. A quarantined member still counts in
//! this epoch's committee (the consensus instance runs with fixed participants); it is left out at
//! the next epoch ([`Membership::end_epoch`]) and its record stays.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::accusation::{Accusation, Grounds, ProofError, SelfProof};
use crate::policy::{Policy, PolicyError};
use crate::{faults_tolerated, MemberKey};

/// Largest committee the sentinel tracks.
pub const MEMBERS_MAX: usize = 64;

/// Most accusations a decision needs at the largest committee (f + 1): a decision carrying more is
/// not needed, and encoders may refuse it.
pub const ACCUSATIONS_MAX: usize = (MEMBERS_MAX - 1) / 3 + 1;

/// A member's standing.
// Externally tagged (serde's default): the engine keeps this under its root in postcard, which
// cannot read internally tagged enums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// A participant in good standing.
    Admitted,
    /// Convicted in `epoch` at `at_ms`; leaves the committee at the next epoch.
    Quarantined {
        /// The epoch of the decision.
        epoch: u64,
        /// The venue time of the decision, milliseconds.
        at_ms: u64,
        /// What convicted it.
        cause: Cause,
    },
    /// Left the committee when `epoch` began.
    Removed {
        /// The first epoch without it.
        epoch: u64,
        /// What convicted it.
        cause: Cause,
    },
}

/// What a quarantine rested on, kept with the member's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Accusations by these members, on these grounds.
    Accusations {
        /// The accusers, sorted.
        accusers: Vec<MemberKey>,
        /// The grounds they named, sorted, distinct.
        grounds: Vec<Grounds>,
    },
    /// A self-proof of this kind.
    SelfProof {
        /// Its [`SelfProof::kind`], e.g. `oracle-equivocation`.
        kind: String,
    },
}

/// What a quarantine decision carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Evidence<P> {
    /// Accusations against the member, at least f+1 distinct accusers.
    Accusations(Vec<Accusation>),
    /// One self-proving piece.
    SelfProof(Box<P>),
}

/// The decision to quarantine `member` in `epoch`, with the evidence every replica checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine<P> {
    /// Who.
    pub member: MemberKey,
    /// In which epoch.
    pub epoch: u64,
    /// Why.
    pub evidence: Evidence<P>,
}

/// Why a quarantine (or an accusation) is refused. Every replica refuses the same input for the
/// same reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The policy is unusable.
    #[error("sentinel policy: {0}")]
    Policy(#[from] PolicyError),
    /// The committee is empty, too large or lists a key twice.
    #[error("committee: {0}")]
    Committee(String),
    /// The decision or accusation is for another epoch.
    #[error("for epoch {found}, but this is epoch {current}")]
    WrongEpoch {
        /// Its epoch.
        found: u64,
        /// The committee's.
        current: u64,
    },
    /// The accused is not a member this epoch.
    #[error("{0} is not a member of this epoch's committee")]
    NotAMember(String),
    /// The accused is already quarantined (or removed).
    #[error("{0} is already quarantined")]
    AlreadyQuarantined(String),
    /// The quarantine limit is reached: liveness first.
    #[error("{quarantined} members are quarantined already, the most at once for {n} members")]
    LimitReached {
        /// How many are.
        quarantined: usize,
        /// Committee size.
        n: usize,
    },
    /// Removing the member would leave fewer than `min_members`.
    #[error("removing it would leave {left} members, fewer than min_members = {min}")]
    TooFewLeft {
        /// Who would be left.
        left: usize,
        /// The policy's floor.
        min: usize,
    },
    /// More accusations than members.
    #[error("{0} accusations, more than the committee's members")]
    TooManyAccusations(usize),
    /// An accusation names another accused than the decision.
    #[error("accusation {0} names another member")]
    OtherAccused(usize),
    /// An accuser is not an admitted member (outsiders and quarantined members do not count).
    #[error("accuser {0} is not an admitted member")]
    AccuserNotAdmitted(String),
    /// A member accused itself.
    #[error("{0} accused itself")]
    SelfAccusation(String),
    /// One accuser appears twice.
    #[error("accuser {0} appears twice")]
    DuplicateAccuser(String),
    /// An accusation is older than the window, or from a time not reached yet.
    #[error("accusation at {at_ms} ms is not within {window_ms} ms up to {now_ms} ms")]
    Stale {
        /// Its time.
        at_ms: u64,
        /// The time of the check.
        now_ms: u64,
        /// The policy's window.
        window_ms: u64,
    },
    /// An accusation's signature does not verify.
    #[error("accusation by {0} does not verify")]
    BadSignature(String),
    /// Fewer distinct accusers than f+1.
    #[error("{have} distinct accusers, {need} needed (f+1)")]
    TooFewAccusers {
        /// How many.
        have: usize,
        /// f+1.
        need: usize,
    },
    /// An epoch change while nobody is quarantined: the committee would stay the same.
    #[error("no member is quarantined, so no epoch change is due")]
    NoChangeDue,
    /// An epoch change names another committee than the one the trust state leaves.
    #[error("the next committee is {expected} members without the quarantined ones; the change names {found}")]
    WrongCommittee {
        /// Members the trust state leaves for the next epoch.
        expected: usize,
        /// Members the change names.
        found: usize,
    },
    /// The self-proof does not convict the accused.
    #[error("self-proof: {0}")]
    Proof(#[from] ProofError),
}

fn short(key: &MemberKey) -> String {
    hex::encode(&key[..8])
}

/// What [`Membership::end_epoch`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochChange {
    /// The epoch that begins.
    pub epoch: u64,
    /// Its members, sorted: the participants its consensus instance runs with, and the players
    /// of the reshare.
    pub members: Vec<MemberKey>,
    /// Who left.
    pub removed: Vec<MemberKey>,
}

/// The committee's replicated trust state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    epoch: u64,
    members: Vec<MemberKey>,
    trust: BTreeMap<MemberKey, Trust>,
    policy: Policy,
    /// The commitment to this epoch's threshold key (the reshare's public output); `None` at
    /// genesis.
    key: Option<EpochKey>,
}

/// What the committee agreed on when an epoch began: the digest of the reshare's public output,
/// which every player compared with its own before voting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochKey {
    /// Digest of the new sharing and its players.
    pub digest: [u8; 32],
}

impl Membership {
    /// The committee at `epoch` (0 at genesis): `members` distinct, at most [`MEMBERS_MAX`].
    pub fn new(epoch: u64, mut members: Vec<MemberKey>, policy: Policy) -> Result<Self, Refusal> {
        policy.validate()?;
        members.sort_unstable();
        if members.is_empty() || members.len() > MEMBERS_MAX {
            return Err(Refusal::Committee(format!(
                "{} members: 1..={MEMBERS_MAX}",
                members.len()
            )));
        }
        if members.windows(2).any(|w| w[0] == w[1]) {
            return Err(Refusal::Committee("a key is listed twice".into()));
        }
        let trust = members.iter().map(|m| (*m, Trust::Admitted)).collect();
        Ok(Self {
            epoch,
            members,
            trust,
            policy,
            key: None,
        })
    }

    /// The commitment to this epoch's threshold key; `None` in the genesis epoch.
    pub fn key(&self) -> Option<&EpochKey> {
        self.key.as_ref()
    }

    /// The next epoch's committee, sorted: this epoch's members without the quarantined ones.
    pub fn next_members(&self) -> Vec<MemberKey> {
        self.members
            .iter()
            .filter(|m| !matches!(self.trust.get(*m), Some(Trust::Quarantined { .. })))
            .copied()
            .collect()
    }

    /// Whether the next epoch's committee differs from this one (someone is quarantined).
    pub fn change_due(&self) -> bool {
        self.quarantined() > 0
    }

    /// Since when (venue time of the newest quarantine) the next committee has been what it is;
    /// `None` when no change is due.
    pub fn change_due_since(&self) -> Option<u64> {
        self.members
            .iter()
            .filter_map(|m| match self.trust.get(m) {
                Some(Trust::Quarantined { at_ms, .. }) => Some(*at_ms),
                _ => None,
            })
            .max()
    }

    /// The one check of an epoch change, the same for the proposer and every replica: `epoch`
    /// is the next one and `members` is exactly [`Membership::next_members`].
    pub fn check_epoch(&self, epoch: u64, members: &[MemberKey]) -> Result<(), Refusal> {
        if !self.change_due() {
            return Err(Refusal::NoChangeDue);
        }
        if epoch != self.epoch + 1 {
            return Err(Refusal::WrongEpoch {
                found: epoch,
                current: self.epoch,
            });
        }
        let expected = self.next_members();
        if members != expected.as_slice() {
            return Err(Refusal::WrongCommittee {
                expected: expected.len(),
                found: members.len(),
            });
        }
        Ok(())
    }

    /// Checks an epoch change and, when it passes, ends this epoch with `key` as the next one's
    /// commitment. On refusal nothing changes.
    pub fn begin_epoch(
        &mut self,
        epoch: u64,
        members: &[MemberKey],
        key: EpochKey,
    ) -> Result<EpochChange, Refusal> {
        self.check_epoch(epoch, members)?;
        let change = self.end_epoch();
        self.key = Some(key);
        Ok(change)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// This epoch's members, sorted (quarantined ones included until the epoch ends).
    pub fn members(&self) -> &[MemberKey] {
        &self.members
    }

    /// The policy every replica applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A member's (or former member's) standing.
    pub fn trust(&self, member: &MemberKey) -> Option<&Trust> {
        self.trust.get(member)
    }

    /// Every record, members and former members.
    pub fn records(&self) -> impl Iterator<Item = (&MemberKey, &Trust)> {
        self.trust.iter()
    }

    /// How many members are quarantined now.
    pub fn quarantined(&self) -> usize {
        self.members
            .iter()
            .filter(|m| matches!(self.trust.get(*m), Some(Trust::Quarantined { .. })))
            .count()
    }

    /// f for this epoch's committee.
    pub fn f(&self) -> usize {
        faults_tolerated(self.members.len())
    }

    /// Whether `member` is in this epoch's committee and in good standing (not quarantined).
    pub fn is_admitted(&self, member: &MemberKey) -> bool {
        matches!(self.trust.get(member), Some(Trust::Admitted)) && self.members.contains(member)
    }

    /// The rule for one accusation, the same in the pool that gathers them and in the check of a
    /// decision: this epoch, an admitted accuser other than the accused, within the window up to
    /// `now_ms`, signed by the accuser.
    pub fn check_accusation(&self, accusation: &Accusation, now_ms: u64) -> Result<(), Refusal> {
        if accusation.epoch != self.epoch {
            return Err(Refusal::WrongEpoch {
                found: accusation.epoch,
                current: self.epoch,
            });
        }
        if accusation.accuser == accusation.accused {
            return Err(Refusal::SelfAccusation(short(&accusation.accuser)));
        }
        if !self.is_admitted(&accusation.accuser) {
            return Err(Refusal::AccuserNotAdmitted(short(&accusation.accuser)));
        }
        let window_ms = self.policy.window_ms;
        if accusation.at_ms > now_ms || now_ms - accusation.at_ms > window_ms {
            return Err(Refusal::Stale {
                at_ms: accusation.at_ms,
                now_ms,
                window_ms,
            });
        }
        accusation
            .verify()
            .map_err(|_| Refusal::BadSignature(short(&accusation.accuser)))
    }

    /// Whether `member` may be quarantined now at all (a member, not yet quarantined, within the
    /// limits), whatever the evidence.
    pub fn check_target(&self, member: &MemberKey, epoch: u64) -> Result<(), Refusal> {
        if epoch != self.epoch {
            return Err(Refusal::WrongEpoch {
                found: epoch,
                current: self.epoch,
            });
        }
        match self.trust.get(member) {
            Some(Trust::Admitted) if self.members.contains(member) => {}
            Some(Trust::Quarantined { .. } | Trust::Removed { .. }) => {
                return Err(Refusal::AlreadyQuarantined(short(member)))
            }
            _ => return Err(Refusal::NotAMember(short(member))),
        }
        let n = self.members.len();
        let quarantined = self.quarantined();
        if quarantined >= self.policy.quarantine_limit(n) {
            return Err(Refusal::LimitReached { quarantined, n });
        }
        let left = n - quarantined - 1;
        if left < self.policy.min_members {
            return Err(Refusal::TooFewLeft {
                left,
                min: self.policy.min_members,
            });
        }
        Ok(())
    }

    /// The check every replica runs on a decision at `now_ms`, before applying it. Returns what
    /// the record will keep.
    pub fn check<P: SelfProof>(
        &self,
        decision: &Quarantine<P>,
        now_ms: u64,
    ) -> Result<Cause, Refusal> {
        self.check_target(&decision.member, decision.epoch)?;
        match &decision.evidence {
            Evidence::SelfProof(proof) => {
                proof.check(&decision.member)?;
                Ok(Cause::SelfProof {
                    kind: proof.kind().into(),
                })
            }
            Evidence::Accusations(accusations) => {
                if accusations.len() > self.members.len() {
                    return Err(Refusal::TooManyAccusations(accusations.len()));
                }
                let mut accusers = BTreeSet::new();
                let mut grounds = BTreeSet::new();
                for (i, accusation) in accusations.iter().enumerate() {
                    if accusation.accused != decision.member {
                        return Err(Refusal::OtherAccused(i));
                    }
                    self.check_accusation(accusation, now_ms)?;
                    if !accusers.insert(accusation.accuser) {
                        return Err(Refusal::DuplicateAccuser(short(&accusation.accuser)));
                    }
                    grounds.insert(accusation.grounds);
                }
                let need = self.f() + 1;
                if accusers.len() < need {
                    return Err(Refusal::TooFewAccusers {
                        have: accusers.len(),
                        need,
                    });
                }
                Ok(Cause::Accusations {
                    accusers: accusers.into_iter().collect(),
                    grounds: grounds.into_iter().collect(),
                })
            }
        }
    }

    /// Checks and applies a decision at `now_ms`; on refusal nothing changes.
    pub fn apply<P: SelfProof>(
        &mut self,
        decision: &Quarantine<P>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let cause = self.check(decision, now_ms)?;
        self.trust.insert(
            decision.member,
            Trust::Quarantined {
                epoch: self.epoch,
                at_ms: now_ms,
                cause,
            },
        );
        Ok(())
    }

    /// Ends the epoch: the quarantined members are removed (their records stay) and the next
    /// epoch's committee is the rest.
    pub fn end_epoch(&mut self) -> EpochChange {
        let next = self.epoch + 1;
        let mut removed = Vec::new();
        for member in &self.members {
            if let Some(Trust::Quarantined { cause, .. }) = self.trust.get(member).cloned() {
                self.trust
                    .insert(*member, Trust::Removed { epoch: next, cause });
                removed.push(*member);
            }
        }
        self.members.retain(|m| !removed.contains(m));
        self.epoch = next;
        EpochChange {
            epoch: next,
            members: self.members.clone(),
            removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{committee, id, key, DoubleSign};

    type Decision = Quarantine<DoubleSign>;

    fn accusations(by: &[u8], accused: u8, epoch: u64, now_ms: u64) -> Evidence<DoubleSign> {
        Evidence::Accusations(
            by.iter()
                .map(|i| Accusation::sign(&key(*i), id(accused), Grounds::Silence, epoch, now_ms))
                .collect(),
        )
    }

    fn decision(member: u8, evidence: Evidence<DoubleSign>) -> Decision {
        Quarantine {
            member: id(member),
            epoch: 0,
            evidence,
        }
    }

    #[test]
    fn f_plus_one_accusers_quarantine_and_the_next_epoch_leaves_the_member_out() {
        for n in [4u8, 7] {
            let mut m = committee(n);
            let f = m.f() as u8;
            let accusers: Vec<u8> = (0..=f).collect();
            let q = decision(n - 1, accusations(&accusers, n - 1, 0, 10));
            assert!(m.apply(&q, 12).is_ok(), "n = {n}");
            assert!(matches!(
                m.trust(&id(n - 1)),
                Some(Trust::Quarantined { at_ms: 12, .. })
            ));
            // Still a participant until the epoch ends, then gone, its record kept.
            assert_eq!(m.members().len(), usize::from(n));
            let change = m.end_epoch();
            assert_eq!(change.epoch, 1);
            assert_eq!(change.removed, vec![id(n - 1)]);
            assert_eq!(change.members.len(), usize::from(n) - 1);
            assert!(!change.members.contains(&id(n - 1)));
            assert!(matches!(
                m.trust(&id(n - 1)),
                Some(Trust::Removed { epoch: 1, .. })
            ));
        }
    }

    #[test]
    fn f_members_accusing_an_honest_one_achieve_nothing() {
        for n in [4u8, 7] {
            let m = committee(n);
            let f = m.f() as u8;
            // The f colluders are the last f members; they accuse member 0.
            let colluders: Vec<u8> = (n - f..n).collect();
            let q = decision(0, accusations(&colluders, 0, 0, 10));
            assert_eq!(
                m.check(&q, 10),
                Err(Refusal::TooFewAccusers {
                    have: usize::from(f),
                    need: usize::from(f) + 1
                })
            );
            // Repeating an accuser does not make up the number.
            let mut twice = colluders.clone();
            twice.push(colluders[0]);
            let q = decision(0, accusations(&twice, 0, 0, 10));
            assert!(matches!(m.check(&q, 10), Err(Refusal::DuplicateAccuser(_))));
            // Nor does the accused's own signature, an outsider's, or a forged one.
            let mut with_self = colluders.clone();
            with_self.push(0);
            assert!(matches!(
                m.check(&decision(0, accusations(&with_self, 0, 0, 10)), 10),
                Err(Refusal::SelfAccusation(_))
            ));
            let mut with_outsider = colluders.clone();
            with_outsider.push(200);
            assert!(matches!(
                m.check(&decision(0, accusations(&with_outsider, 0, 0, 10)), 10),
                Err(Refusal::AccuserNotAdmitted(_))
            ));
            let Evidence::Accusations(mut forged) =
                accusations(&(1..=f + 1).collect::<Vec<_>>(), 0, 0, 10)
            else {
                unreachable!()
            };
            forged[0].signature[0] ^= 1;
            assert!(matches!(
                m.check(&decision(0, Evidence::Accusations(forged)), 10),
                Err(Refusal::BadSignature(_))
            ));
        }
    }

    #[test]
    fn accusations_count_only_in_their_epoch_and_window() {
        let m = committee(4);
        let q = decision(3, accusations(&[0, 1], 3, 0, 10));
        assert!(m.check(&q, 10).is_ok());
        assert!(m.check(&q, 610).is_ok());
        assert!(matches!(m.check(&q, 611), Err(Refusal::Stale { .. })));
        // From a time not reached yet.
        assert!(matches!(m.check(&q, 9), Err(Refusal::Stale { .. })));
        let other_epoch = decision(3, accusations(&[0, 1], 3, 1, 10));
        assert!(matches!(
            m.check(&other_epoch, 10),
            Err(Refusal::WrongEpoch { .. })
        ));
        // An accusation of someone else does not count against this member.
        let Evidence::Accusations(mut mixed) = accusations(&[0], 3, 0, 10) else {
            unreachable!()
        };
        mixed.push(Accusation::sign(&key(1), id(2), Grounds::Silence, 0, 10));
        assert_eq!(
            m.check(&decision(3, Evidence::Accusations(mixed)), 10),
            Err(Refusal::OtherAccused(1))
        );
    }

    #[test]
    fn never_more_than_f_at_once_and_a_quarantined_member_accuses_no_one() {
        let mut m = committee(7);
        assert!(m
            .apply(&decision(6, accusations(&[0, 1, 2], 6, 0, 5)), 5)
            .is_ok());
        // The quarantined member's accusations no longer count.
        assert!(matches!(
            m.check(&decision(5, accusations(&[6, 0, 1], 5, 0, 5)), 5),
            Err(Refusal::AccuserNotAdmitted(_))
        ));
        assert!(m
            .apply(&decision(5, accusations(&[0, 1, 2], 5, 0, 5)), 5)
            .is_ok());
        assert_eq!(
            m.check(&decision(4, accusations(&[0, 1, 2], 4, 0, 5)), 5),
            Err(Refusal::LimitReached {
                quarantined: 2,
                n: 7
            })
        );
        // Twice is refused.
        assert!(matches!(
            m.check(&decision(6, accusations(&[0, 1, 2], 6, 0, 5)), 5),
            Err(Refusal::AlreadyQuarantined(_))
        ));
        let change = m.end_epoch();
        assert_eq!(change.members.len(), 5);
        // At n = 5, f = 1; and a removed member is no target.
        assert!(matches!(
            m.check(
                &Decision {
                    member: id(6),
                    epoch: 1,
                    evidence: accusations(&[0, 1], 6, 1, 5)
                },
                5
            ),
            Err(Refusal::AlreadyQuarantined(_))
        ));
    }

    #[test]
    fn a_self_proof_convicts_alone_and_a_framed_one_does_not() {
        let mut m = committee(4);
        let proof = |signer: u8, values| {
            Evidence::SelfProof(Box::new(DoubleSign::by(&key(signer), 4, values)))
        };
        // Member 2's proof does not convict member 3; nor does a proof without a conflict, or
        // one whose signature was edited.
        assert!(matches!(
            m.check(&decision(3, proof(2, [1, 2])), 1),
            Err(Refusal::Proof(ProofError::NotTheAccused { .. }))
        ));
        assert!(matches!(
            m.check(&decision(3, proof(3, [1, 1])), 1),
            Err(Refusal::Proof(ProofError::NoConflict(_)))
        ));
        let mut edited = DoubleSign::by(&key(3), 4, [1, 2]);
        edited.values[1].0 = 9;
        assert_eq!(
            m.check(&decision(3, Evidence::SelfProof(Box::new(edited))), 1),
            Err(Refusal::Proof(ProofError::BadSignature))
        );
        assert!(m.apply(&decision(3, proof(3, [1, 2])), 1).is_ok());
        assert!(matches!(
            m.trust(&id(3)),
            Some(Trust::Quarantined {
                cause: Cause::SelfProof { .. },
                ..
            })
        ));
    }

    #[test]
    fn the_committee_never_shrinks_below_min_members() {
        let policy = Policy {
            min_members: 4,
            ..Policy::default()
        };
        let m = Membership::new(0, (0..4).map(id).collect(), policy).expect("committee");
        assert_eq!(
            m.check(&decision(3, accusations(&[0, 1], 3, 0, 1)), 1),
            Err(Refusal::TooFewLeft { left: 3, min: 4 })
        );
        assert!(matches!(
            Membership::new(0, vec![id(0), id(0)], Policy::default()),
            Err(Refusal::Committee(_))
        ));
        assert!(matches!(
            Membership::new(0, vec![], Policy::default()),
            Err(Refusal::Committee(_))
        ));
    }

    #[test]
    fn an_epoch_change_must_name_the_next_epoch_and_exactly_the_members_left() {
        let mut m = committee(4);
        let key = EpochKey { digest: [7; 32] };
        let q = decision(3, accusations(&[0, 1], 3, 0, 10));
        m.apply(&q, 10).expect("f + 1 accusers quarantine");
        assert!(m.change_due());
        let left = m.next_members();
        assert_eq!(left.len(), 3);
        assert!(!left.contains(&id(3)));
        let before = m.clone();
        assert!(matches!(
            m.begin_epoch(2, &left, key),
            Err(Refusal::WrongEpoch {
                found: 2,
                current: 0
            })
        ));
        assert!(matches!(
            m.begin_epoch(1, m.members().to_vec().as_slice(), key),
            Err(Refusal::WrongCommittee {
                expected: 3,
                found: 4
            })
        ));
        assert!(matches!(
            m.begin_epoch(1, &left[..2], key),
            Err(Refusal::WrongCommittee { .. })
        ));
        assert_eq!(m, before, "a refused change changes nothing");
        let change = m.begin_epoch(1, &left, key).expect("the right change");
        assert_eq!(change.removed, vec![id(3)]);
        assert_eq!(m.epoch(), 1);
        assert_eq!(m.key(), Some(&key));
        assert!(!m.change_due());
        assert!(matches!(
            m.trust(&id(3)),
            Some(Trust::Removed { epoch: 1, .. })
        ));
        // With nobody quarantined, no further change is due.
        let members = m.members().to_vec();
        assert_eq!(m.begin_epoch(2, &members, key), Err(Refusal::NoChangeDue));
    }
}
