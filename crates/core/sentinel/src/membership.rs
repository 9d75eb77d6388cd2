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
use crate::admit::{Admit, Affirmation, OperatorKey, Operators, OperatorsError, Seat};
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
        /// The venue time of the decision that convicted it, milliseconds (the re-admission
        /// hold counts from here).
        at_ms: u64,
        /// What convicted it.
        cause: Cause,
    },
    /// Admitted by an [`Admit`] in `epoch` at `at_ms`; joins the committee at the next epoch
    /// (a player of the reshare), or lapses (a re-admitted member is removed again, a newcomer
    /// held out) after [`Policy::join_lapse_ms`] if the epoch change does not come.
    Joining {
        /// The epoch of the decision.
        epoch: u64,
        /// The venue time of the decision, milliseconds.
        at_ms: u64,
        /// Who affirmed it, sorted.
        affirmers: Vec<MemberKey>,
        /// For a replacement: whose seat it takes.
        replaces: Option<MemberKey>,
        /// For a replacement: the operators that approved, sorted.
        approvers: Vec<OperatorKey>,
        /// A re-admitted member's removal: the epoch it left and its cause (not a nested
        /// record, so no trust state nests); `None` for a newcomer.
        previous: Option<(u64, Cause)>,
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
    /// The operator set is unusable.
    #[error(transparent)]
    Operators(#[from] OperatorsError),
    /// A re-admission names someone that is not a removed member.
    #[error("{0} is not a removed member: only a removed member is re-admitted")]
    NotRemoved(String),
    /// A re-admission of a member convicted by its own signatures: its key signed conflicting
    /// statements, so the key itself is compromised (and the same proof would convict it
    /// again). The machine may come back only as a newcomer with a new key.
    #[error("{0} was convicted by its own signatures: its key cannot come back (replace it with a new key)")]
    OwnSignatures(String),
    /// A re-admission before the policy's hold time since the conviction.
    #[error("re-admission is allowed from {from_ms} ms (the hold after the conviction), now {now_ms} ms")]
    HoldNotOver {
        /// Earliest venue time.
        from_ms: u64,
        /// The time of the check.
        now_ms: u64,
    },
    /// A replacement names a candidate that is, was or is about to be a member.
    #[error("{0} is, was or is joining as a member: a replacement is a newcomer")]
    NotANewcomer(String),
    /// A replacement names a seat that is not vacant (its member is in good standing, unknown,
    /// or another candidate is taking it).
    #[error("the seat of {0} is not vacant")]
    SeatNotVacant(String),
    /// The next committee would have more members than the genesis committee's seats.
    #[error("the next committee has {next} members already, as many as the {seats} seats")]
    NoSeat {
        /// Members of the next committee so far.
        next: usize,
        /// Seats (the genesis committee's size).
        seats: usize,
    },
    /// Too many candidates are joining at once.
    #[error("{joining} candidates are joining already, the most at once for {n} members")]
    JoinLimit {
        /// How many are.
        joining: usize,
        /// Committee size.
        n: usize,
    },
    /// More affirmations than members.
    #[error("{0} affirmations, more than the committee's members")]
    TooManyAffirmations(usize),
    /// An affirmation names another candidate than the admission.
    #[error("affirmation {0} names another candidate")]
    OtherCandidate(usize),
    /// An affirmer is not an admitted member.
    #[error("affirmer {0} is not an admitted member")]
    AffirmerNotAdmitted(String),
    /// One affirmer appears twice.
    #[error("affirmer {0} appears twice")]
    DuplicateAffirmer(String),
    /// An affirmation's signature does not verify.
    #[error("affirmation by {0} does not verify")]
    BadAffirmation(String),
    /// An affirmation made at or before the candidate's conviction or lapsed join.
    #[error("affirmation at {at_ms} ms is not after {since_ms} ms, the conviction or lapse it must follow")]
    AffirmationTooOld {
        /// Its time.
        at_ms: u64,
        /// The conviction's or the lapse's.
        since_ms: u64,
    },
    /// Fewer distinct affirmers than f+1 of the genesis committee's seats.
    #[error("{have} distinct affirmers, {need} needed (f+1 of the seats)")]
    TooFewAffirmers {
        /// How many.
        have: usize,
        /// f+1.
        need: usize,
    },
    /// A replacement while no operator is configured.
    #[error("no operators are configured, so no replacement can be approved")]
    NoOperators,
    /// More approvals than operators.
    #[error("{0} approvals, more than the configured operators")]
    TooManyApprovals(usize),
    /// An approval by a key that is not a configured operator.
    #[error("approval by {0}, which is not a configured operator")]
    NotAnOperator(String),
    /// One operator approved twice.
    #[error("operator {0} appears twice")]
    DuplicateOperator(String),
    /// An approval's signature does not verify.
    #[error("approval by operator {0} does not verify")]
    BadApproval(String),
    /// Fewer distinct operators than the quorum.
    #[error("{have} distinct operators approved, {need} needed")]
    TooFewApprovals {
        /// How many.
        have: usize,
        /// The quorum.
        need: usize,
    },
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
    /// Who joined.
    pub joined: Vec<MemberKey>,
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
    /// The genesis committee's size: the committee never grows beyond it.
    seats: usize,
    /// Who approves replacements.
    operators: Operators,
    /// Newcomers whose join lapsed, with the venue time of the lapse: held out like a removed
    /// member, and only affirmations made after the lapse count for them. Kept until both the
    /// hold and the accusation window have passed since (bounded by the admissions that lapse).
    lapsed: BTreeMap<MemberKey, u64>,
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
            seats: members.len(),
            members,
            trust,
            policy,
            key: None,
            operators: Operators::default(),
            lapsed: BTreeMap::new(),
        })
    }

    /// The same committee with `operators` approving replacements (checked first).
    pub fn with_operators(mut self, operators: Operators) -> Result<Self, Refusal> {
        operators.validate()?;
        self.operators = operators;
        Ok(self)
    }

    /// Who approves replacements.
    pub fn operators(&self) -> &Operators {
        &self.operators
    }

    /// The seats: the genesis committee's size, which the committee never grows beyond.
    pub fn seats(&self) -> usize {
        self.seats
    }

    /// The commitment to this epoch's threshold key; `None` in the genesis epoch.
    pub fn key(&self) -> Option<&EpochKey> {
        self.key.as_ref()
    }

    /// The members of this epoch that stay in the next one, sorted: the members without the
    /// quarantined ones. They hold shares of this epoch's key, so they are the reshare's dealers.
    pub fn staying(&self) -> Vec<MemberKey> {
        self.members
            .iter()
            .filter(|m| !matches!(self.trust.get(*m), Some(Trust::Quarantined { .. })))
            .copied()
            .collect()
    }

    /// The candidates joining at the next epoch, sorted.
    pub fn joining(&self) -> Vec<MemberKey> {
        self.trust
            .iter()
            .filter(|(_, trust)| matches!(trust, Trust::Joining { .. }))
            .map(|(member, _)| *member)
            .collect()
    }

    /// The next epoch's committee, sorted: this epoch's members without the quarantined ones,
    /// with the joining candidates. They are the reshare's players.
    pub fn next_members(&self) -> Vec<MemberKey> {
        let mut next = self.staying();
        next.extend(self.joining());
        next.sort_unstable();
        next
    }

    /// Whether the next epoch's committee differs from this one (someone is quarantined or
    /// joining).
    pub fn change_due(&self) -> bool {
        self.quarantined() > 0 || !self.joining().is_empty()
    }

    /// Since when (venue time of the newest quarantine or admission) the next committee has
    /// been what it is; `None` when no change is due.
    pub fn change_due_since(&self) -> Option<u64> {
        self.trust
            .iter()
            .filter_map(|(member, trust)| match trust {
                Trust::Quarantined { at_ms, .. } if self.members.contains(member) => Some(*at_ms),
                Trust::Joining { at_ms, .. } => Some(*at_ms),
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
            if let Some(Trust::Quarantined { cause, at_ms, .. }) = self.trust.get(member).cloned() {
                self.trust.insert(
                    *member,
                    Trust::Removed {
                        epoch: next,
                        at_ms,
                        cause,
                    },
                );
                removed.push(*member);
            }
        }
        self.members.retain(|m| !removed.contains(m));
        let joined = self.joining();
        for member in &joined {
            self.trust.insert(*member, Trust::Admitted);
        }
        self.members.extend(joined.iter().copied());
        self.members.sort_unstable();
        self.epoch = next;
        EpochChange {
            epoch: next,
            members: self.members.clone(),
            removed,
            joined,
        }
    }

    /// Lets the joins decided at or before `now_ms - join_lapse_ms` lapse: the epoch change did
    /// not come in time (a candidate that never showed up stalls the reshare, which is unanimous
    /// among its players), so the candidate goes back to its record before and the next
    /// committee is what it was without it. Returns who lapsed. Every replica calls it with the
    /// same venue time, so all agree.
    pub fn lapse_joins(&mut self, now_ms: u64) -> Vec<MemberKey> {
        let lapse_ms = self.policy.join_lapse_ms;
        let lapsed: Vec<MemberKey> = self
            .trust
            .iter()
            .filter(|(_, trust)| {
                matches!(trust, Trust::Joining { at_ms, .. } if now_ms.saturating_sub(*at_ms) >= lapse_ms)
            })
            .map(|(member, _)| *member)
            .collect();
        for member in &lapsed {
            match self.trust.remove(member) {
                // A re-admitted member is removed again, and its hold counts from the lapse: the
                // same admission cannot be replayed to stall the next epoch change once more.
                Some(Trust::Joining {
                    previous: Some((epoch, cause)),
                    ..
                }) => {
                    self.trust.insert(
                        *member,
                        Trust::Removed {
                            epoch,
                            at_ms: now_ms,
                            cause,
                        },
                    );
                }
                // A newcomer is held out the same way.
                _ => {
                    self.lapsed.insert(*member, now_ms);
                }
            }
        }
        let keep_ms = self.policy.readmit_hold_ms.max(self.policy.window_ms);
        self.lapsed
            .retain(|_, at_ms| now_ms.saturating_sub(*at_ms) < keep_ms);
        lapsed
    }

    /// The rule for one affirmation, the same in a pool that gathers them and in the check of an
    /// admission: this epoch, an admitted affirmer, within the window up to `now_ms`, signed.
    pub fn check_affirmation(&self, affirmation: &Affirmation, now_ms: u64) -> Result<(), Refusal> {
        if affirmation.epoch != self.epoch {
            return Err(Refusal::WrongEpoch {
                found: affirmation.epoch,
                current: self.epoch,
            });
        }
        if !self.is_admitted(&affirmation.affirmer) {
            return Err(Refusal::AffirmerNotAdmitted(short(&affirmation.affirmer)));
        }
        let window_ms = self.policy.window_ms;
        if affirmation.at_ms > now_ms || now_ms - affirmation.at_ms > window_ms {
            return Err(Refusal::Stale {
                at_ms: affirmation.at_ms,
                now_ms,
                window_ms,
            });
        }
        affirmation
            .verify()
            .map_err(|_| Refusal::BadAffirmation(short(&affirmation.affirmer)))
    }

    /// The check every replica runs on an admission at `now_ms`, before applying it: the
    /// candidate's standing fits the seat, a seat is free, f+1 distinct admitted members affirm
    /// it, and for a replacement the operator quorum approves. Returns the record it will keep.
    pub fn check_admit(&self, admit: &Admit, now_ms: u64) -> Result<Trust, Refusal> {
        if admit.epoch != self.epoch {
            return Err(Refusal::WrongEpoch {
                found: admit.epoch,
                current: self.epoch,
            });
        }
        let candidate = &admit.candidate;
        let joining = self.joining().len();
        let limit = self.policy.quarantine_limit(self.members.len()).max(1);
        if joining >= limit {
            return Err(Refusal::JoinLimit {
                joining,
                n: self.members.len(),
            });
        }
        let next = self.next_members().len();
        if next >= self.seats {
            return Err(Refusal::NoSeat {
                next,
                seats: self.seats,
            });
        }
        let (replaces, approvers, previous, since) = match &admit.seat {
            Seat::Readmit => {
                let Some(Trust::Removed {
                    epoch,
                    at_ms,
                    cause,
                }) = self.trust.get(candidate)
                else {
                    return Err(Refusal::NotRemoved(short(candidate)));
                };
                if matches!(cause, Cause::SelfProof { .. }) {
                    return Err(Refusal::OwnSignatures(short(candidate)));
                }
                let from_ms = at_ms.saturating_add(self.policy.readmit_hold_ms);
                if now_ms < from_ms {
                    return Err(Refusal::HoldNotOver { from_ms, now_ms });
                }
                (
                    None,
                    Vec::new(),
                    Some((*epoch, cause.clone())),
                    Some(*at_ms),
                )
            }
            Seat::Replace {
                replaces,
                approvals,
            } => {
                if self.trust.contains_key(candidate) {
                    return Err(Refusal::NotANewcomer(short(candidate)));
                }
                let lapsed_at = self.lapsed.get(candidate).copied();
                if let Some(at_ms) = lapsed_at {
                    let from_ms = at_ms.saturating_add(self.policy.readmit_hold_ms);
                    if now_ms < from_ms {
                        return Err(Refusal::HoldNotOver { from_ms, now_ms });
                    }
                }
                let vacant = matches!(
                    self.trust.get(replaces),
                    Some(Trust::Quarantined { .. } | Trust::Removed { .. })
                ) && !self.trust.values().any(|trust| {
                    matches!(trust, Trust::Joining { replaces: Some(seat), .. } if seat == replaces)
                });
                if !vacant {
                    return Err(Refusal::SeatNotVacant(short(replaces)));
                }
                let approvers = self.check_approvals(candidate, replaces, approvals)?;
                (Some(*replaces), approvers, None, lapsed_at)
            }
        };
        // No more than a decision can carry on the wire, nor than there are members.
        if admit.affirmations.len() > self.members.len().min(ACCUSATIONS_MAX) {
            return Err(Refusal::TooManyAffirmations(admit.affirmations.len()));
        }
        let mut affirmers = BTreeSet::new();
        for (i, affirmation) in admit.affirmations.iter().enumerate() {
            if affirmation.candidate != *candidate {
                return Err(Refusal::OtherCandidate(i));
            }
            self.check_affirmation(affirmation, now_ms)?;
            if let Some(since_ms) = since {
                // Made before the conviction or the lapse: it vouches for the member as it was.
                if affirmation.at_ms <= since_ms {
                    return Err(Refusal::AffirmationTooOld {
                        at_ms: affirmation.at_ms,
                        since_ms,
                    });
                }
            }
            if !affirmers.insert(affirmation.affirmer) {
                return Err(Refusal::DuplicateAffirmer(short(&affirmation.affirmer)));
            }
        }
        // f + 1 of the genesis committee's seats, not of the committee now: members removed
        // (even honest ones, for silence) do not lower the bar the f members an attacker may
        // hold must not reach on their own.
        let need = crate::faults_tolerated(self.seats) + 1;
        if affirmers.len() < need {
            return Err(Refusal::TooFewAffirmers {
                have: affirmers.len(),
                need,
            });
        }
        Ok(Trust::Joining {
            epoch: self.epoch,
            at_ms: now_ms,
            affirmers: affirmers.into_iter().collect(),
            replaces,
            approvers,
            previous,
        })
    }

    fn check_approvals(
        &self,
        candidate: &MemberKey,
        replaces: &MemberKey,
        approvals: &[crate::admit::Approval],
    ) -> Result<Vec<OperatorKey>, Refusal> {
        if !self.operators.enabled() {
            return Err(Refusal::NoOperators);
        }
        if approvals.len() > self.operators.keys.len() {
            return Err(Refusal::TooManyApprovals(approvals.len()));
        }
        let mut approvers = BTreeSet::new();
        for approval in approvals {
            if !self.operators.keys.contains(&approval.operator) {
                return Err(Refusal::NotAnOperator(short(&approval.operator)));
            }
            if !approvers.insert(approval.operator) {
                return Err(Refusal::DuplicateOperator(short(&approval.operator)));
            }
            approval
                .verify(candidate, replaces, self.epoch)
                .map_err(|_| Refusal::BadApproval(short(&approval.operator)))?;
        }
        if approvers.len() < self.operators.quorum {
            return Err(Refusal::TooFewApprovals {
                have: approvers.len(),
                need: self.operators.quorum,
            });
        }
        Ok(approvers.into_iter().collect())
    }

    /// Checks and applies an admission at `now_ms`; on refusal nothing changes.
    pub fn admit(&mut self, admit: &Admit, now_ms: u64) -> Result<(), Refusal> {
        let record = self.check_admit(admit, now_ms)?;
        self.trust.insert(admit.candidate, record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admit::Approval;
    use crate::test_support::{committee, id, key, DoubleSign};
    use ed25519_dalek::SigningKey;

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

    fn affirmations(by: &[u8], candidate: MemberKey, epoch: u64, at_ms: u64) -> Vec<Affirmation> {
        by.iter()
            .map(|i| Affirmation::sign(&key(*i), candidate, epoch, at_ms, ([1; 32], [2; 32])))
            .collect()
    }

    fn operator(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[100 + i; 32])
    }

    /// `committee(n)` with three operators, two of whom approve a replacement.
    fn with_operators(n: u8) -> Membership {
        committee(n)
            .with_operators(Operators {
                keys: (0..3)
                    .map(|i| operator(i).verifying_key().to_bytes())
                    .collect(),
                quorum: 2,
            })
            .expect("operators")
    }

    fn replace(
        candidate: u8,
        replaces: u8,
        epoch: u64,
        ops: &[u8],
        by: &[u8],
        at_ms: u64,
    ) -> Admit {
        Admit {
            candidate: id(candidate),
            epoch,
            affirmations: affirmations(by, id(candidate), epoch, at_ms),
            seat: Seat::Replace {
                replaces: id(replaces),
                approvals: ops
                    .iter()
                    .map(|i| Approval::sign(&operator(*i), &id(candidate), &id(replaces), epoch))
                    .collect(),
            },
        }
    }

    /// Member 3 of 4 quarantined at 10 ms and removed at epoch 1 (key [7; 32]).
    fn removed_member_3(m: &mut Membership) {
        m.apply(&decision(3, accusations(&[0, 1], 3, 0, 10)), 10)
            .expect("quarantined");
        let left = m.next_members();
        m.begin_epoch(1, &left, EpochKey { digest: [7; 32] })
            .expect("removed");
    }

    #[test]
    fn a_newcomer_takes_a_vacant_seat_on_affirmations_and_an_operator_quorum() {
        let mut m = with_operators(4);
        removed_member_3(&mut m);
        assert_eq!(m.members().len(), 3);
        // Two affirmations (f + 1 of the four seats, though n = 3 now); two of three operators.
        let admit = replace(9, 3, 1, &[0, 2], &[0, 1], 20);
        let before = m.clone();
        m.admit(&admit, 20).expect("admitted");
        assert!(matches!(
            m.trust(&id(9)),
            Some(Trust::Joining { replaces: Some(seat), .. }) if *seat == id(3)
        ));
        assert!(m.change_due());
        assert_eq!(m.next_members().len(), 4);
        assert!(m.next_members().contains(&id(9)));
        assert_eq!(
            m.staying(),
            before.members().to_vec(),
            "the dealers are the members"
        );
        // Joining is not being a member: it accuses and affirms nobody yet.
        assert!(!m.is_admitted(&id(9)));
        let next = m.next_members();
        let change = m
            .begin_epoch(2, &next, EpochKey { digest: [8; 32] })
            .expect("epoch 2");
        assert_eq!(change.joined, vec![id(9)]);
        assert!(change.removed.is_empty());
        assert!(m.is_admitted(&id(9)));
        assert_eq!(m.members().len(), 4);
        // The seat is filled: no further join fits the four seats.
        let mut again = with_operators(4);
        removed_member_3(&mut again);
        again.admit(&admit, 20).expect("admitted");
        assert_eq!(
            again.check_admit(&replace(8, 3, 1, &[0, 1], &[0, 1], 20), 20),
            Err(Refusal::JoinLimit { joining: 1, n: 3 })
        );
        // Once the newcomer sits in the seat, the removed member finds none to come back to.
        let hold = m.policy().readmit_hold_ms;
        let now = 10 + hold;
        let readmit = Admit {
            candidate: id(3),
            epoch: 2,
            affirmations: affirmations(&[0, 1], id(3), 2, now),
            seat: Seat::Readmit,
        };
        assert_eq!(
            m.check_admit(&readmit, now),
            Err(Refusal::NoSeat { next: 4, seats: 4 })
        );
    }

    #[test]
    fn a_replacement_without_the_operator_quorum_or_affirmations_is_refused() {
        let mut m = with_operators(7);
        m.apply(&decision(6, accusations(&[0, 1, 2], 6, 0, 10)), 10)
            .expect("quarantined");
        // At n = 7, f = 2: three affirmers, two operators.
        let good = replace(9, 6, 0, &[0, 1], &[0, 1, 2], 20);
        assert!(
            m.check_admit(&good, 20).is_ok(),
            "{:?}",
            m.check_admit(&good, 20)
        );
        type Expected = fn(&Refusal) -> bool;
        let cases: Vec<(Admit, Expected)> = vec![
            // One operator is not a quorum, nor is one operator twice.
            (replace(9, 6, 0, &[0], &[0, 1, 2], 20), |r| {
                matches!(r, Refusal::TooFewApprovals { have: 1, need: 2 })
            }),
            (replace(9, 6, 0, &[0, 0], &[0, 1, 2], 20), |r| {
                matches!(r, Refusal::DuplicateOperator(_))
            }),
            // f colluding members cannot vouch a node in, nor can one of them twice.
            (replace(9, 6, 0, &[0, 1], &[4, 5], 20), |r| {
                matches!(r, Refusal::TooFewAffirmers { have: 2, need: 3 })
            }),
            (replace(9, 6, 0, &[0, 1], &[4, 5, 5], 20), |r| {
                matches!(r, Refusal::DuplicateAffirmer(_))
            }),
            // The quarantined member affirms nobody; the seat of a member in good standing is
            // not vacant; a member is not a newcomer.
            (replace(9, 6, 0, &[0, 1], &[6, 0, 1], 20), |r| {
                matches!(r, Refusal::AffirmerNotAdmitted(_))
            }),
            (replace(9, 5, 0, &[0, 1], &[0, 1, 2], 20), |r| {
                matches!(r, Refusal::SeatNotVacant(_))
            }),
            (replace(4, 6, 0, &[0, 1], &[0, 1, 2], 20), |r| {
                matches!(r, Refusal::NotANewcomer(_))
            }),
            (replace(9, 6, 1, &[0, 1], &[0, 1, 2], 20), |r| {
                matches!(r, Refusal::WrongEpoch { .. })
            }),
        ];
        for (admit, expected) in cases {
            let refusal = m.check_admit(&admit, 20).expect_err("refused");
            assert!(expected(&refusal), "{refusal:?}");
        }
        assert!(matches!(
            m.check_admit(&good, 20 + 601),
            Err(Refusal::Stale { .. })
        ));
        // An approval by a key that is not an operator's, and one edited after signing.
        let mut outsider = good.clone();
        if let Seat::Replace { approvals, .. } = &mut outsider.seat {
            approvals[0] = Approval::sign(&key(0), &id(9), &id(6), 0);
        }
        assert!(matches!(
            m.check_admit(&outsider, 20),
            Err(Refusal::NotAnOperator(_))
        ));
        let mut edited = good.clone();
        if let Seat::Replace { approvals, .. } = &mut edited.seat {
            approvals[1].signature[3] ^= 1;
        }
        assert!(matches!(
            m.check_admit(&edited, 20),
            Err(Refusal::BadApproval(_))
        ));
        // An approval for another candidate does not carry over.
        let mut moved = replace(9, 6, 0, &[0, 1], &[0, 1, 2], 20);
        moved.candidate = id(8);
        for affirmation in &mut moved.affirmations {
            *affirmation = Affirmation::sign(&key(0), id(8), 0, 20, ([1; 32], [2; 32]));
        }
        assert!(m.check_admit(&moved, 20).is_err());
        // Without operators, no replacement at all.
        let mut bare = committee(7);
        bare.apply(&decision(6, accusations(&[0, 1, 2], 6, 0, 10)), 10)
            .expect("quarantined");
        assert_eq!(bare.check_admit(&good, 20), Err(Refusal::NoOperators));
        // A refused admission changes nothing.
        let before = m.clone();
        assert!(m
            .admit(&replace(9, 6, 0, &[0], &[0, 1, 2], 20), 20)
            .is_err());
        assert_eq!(m, before);
    }

    #[test]
    fn a_removed_member_comes_back_only_after_the_hold_on_f_plus_one_affirmations() {
        let mut m = committee(7);
        m.apply(&decision(6, accusations(&[0, 1, 2], 6, 0, 10)), 10)
            .expect("quarantined");
        let readmit = |by: &[u8], epoch, at_ms| Admit {
            candidate: id(6),
            epoch,
            affirmations: affirmations(by, id(6), epoch, at_ms),
            seat: Seat::Readmit,
        };
        // Quarantined is not removed yet: it must leave first.
        assert!(matches!(
            m.check_admit(&readmit(&[0, 1, 2], 0, 20), 20),
            Err(Refusal::NotRemoved(_))
        ));
        let next = m.next_members();
        m.begin_epoch(1, &next, EpochKey { digest: [7; 32] })
            .expect("epoch 1");
        // Three affirmers (f + 1 of the seven seats, though n = 6 now). The hold (an hour)
        // counts from the conviction at 10.
        let hold = m.policy().readmit_hold_ms;
        let early = 10 + hold - 1;
        assert_eq!(
            m.check_admit(&readmit(&[0, 1, 2], 1, early), early),
            Err(Refusal::HoldNotOver {
                from_ms: 10 + hold,
                now_ms: early
            })
        );
        let now = 10 + hold;
        assert!(matches!(
            m.check_admit(&readmit(&[0, 1], 1, now), now),
            Err(Refusal::TooFewAffirmers { have: 2, need: 3 })
        ));
        // A member in good standing is not "re-admitted".
        let mut other = readmit(&[0, 1, 2], 1, now);
        other.candidate = id(5);
        other.affirmations = affirmations(&[0, 1, 2], id(5), 1, now);
        assert!(matches!(
            m.check_admit(&other, now),
            Err(Refusal::NotRemoved(_))
        ));
        m.admit(&readmit(&[0, 1, 2], 1, now), now)
            .expect("re-admitted");
        // A member convicted by its own signatures never comes back with that key.
        let mut forger = committee(4);
        forger
            .apply(
                &decision(
                    3,
                    Evidence::SelfProof(Box::new(DoubleSign::by(&key(3), 4, [1, 2]))),
                ),
                10,
            )
            .expect("quarantined");
        let next = forger.next_members();
        forger
            .begin_epoch(1, &next, EpochKey { digest: [7; 32] })
            .expect("epoch 1");
        let back = Admit {
            candidate: id(3),
            epoch: 1,
            affirmations: affirmations(&[0, 1], id(3), 1, now),
            seat: Seat::Readmit,
        };
        assert!(matches!(
            forger.check_admit(&back, now),
            Err(Refusal::OwnSignatures(_))
        ));
        assert!(matches!(
            m.trust(&id(6)),
            Some(Trust::Joining {
                previous: Some(_),
                replaces: None,
                ..
            })
        ));
        // Twice is refused (it is joining, not removed).
        assert!(m.check_admit(&readmit(&[0, 1, 2], 1, now), now).is_err());
        let next = m.next_members();
        assert_eq!(next.len(), 7);
        let change = m
            .begin_epoch(2, &next, EpochKey { digest: [8; 32] })
            .expect("epoch 2");
        assert_eq!(change.joined, vec![id(6)]);
        assert!(m.is_admitted(&id(6)));
    }

    #[test]
    fn a_join_that_does_not_come_lapses_and_the_same_admission_cannot_be_replayed() {
        let mut m = with_operators(4);
        removed_member_3(&mut m);
        let admit = replace(9, 3, 1, &[0, 1], &[0, 1], 20);
        m.admit(&admit, 20).expect("admitted");
        let lapse = m.policy().join_lapse_ms;
        let hold = m.policy().readmit_hold_ms;
        assert!(m.lapse_joins(20 + lapse - 1).is_empty());
        let lapsed_at = 20 + lapse;
        assert_eq!(m.lapse_joins(lapsed_at), vec![id(9)]);
        assert_eq!(m.trust(&id(9)), None, "a newcomer leaves no trust record");
        assert!(!m.change_due());
        // Replaying the very admission (or a fresh one) is held off for the hold...
        assert_eq!(
            m.check_admit(&admit, lapsed_at),
            Err(Refusal::HoldNotOver {
                from_ms: lapsed_at + hold,
                now_ms: lapsed_at
            })
        );
        // ...and after it, affirmations made before the lapse do not count.
        let later = lapsed_at + hold;
        let stale_but_in_window = replace(9, 3, 1, &[0, 1], &[0, 1], lapsed_at);
        let long_window = Membership {
            policy: Policy {
                window_ms: 86_400_000,
                ..m.policy().clone()
            },
            ..m.clone()
        };
        assert_eq!(
            long_window.check_admit(&stale_but_in_window, later),
            Err(Refusal::AffirmationTooOld {
                at_ms: lapsed_at,
                since_ms: lapsed_at
            })
        );
        assert!(m
            .check_admit(&replace(9, 3, 1, &[0, 1], &[0, 1], later), later)
            .is_ok());
        // A re-admitted member that does not come goes back to removed, its hold restarted.
        let now = 10 + hold;
        let readmit = |at_ms| Admit {
            candidate: id(3),
            epoch: 1,
            affirmations: affirmations(&[0, 1], id(3), 1, at_ms),
            seat: Seat::Readmit,
        };
        let mut back = with_operators(4);
        removed_member_3(&mut back);
        back.admit(&readmit(now), now).expect("re-admitted");
        assert_eq!(back.lapse_joins(now + lapse), vec![id(3)]);
        assert!(matches!(
            back.trust(&id(3)),
            Some(Trust::Removed { epoch: 1, at_ms, .. }) if *at_ms == now + lapse
        ));
        assert!(matches!(
            back.check_admit(&readmit(now + lapse), now + lapse),
            Err(Refusal::HoldNotOver { .. })
        ));
    }

    /// f + 1 counts the genesis seats: after honest members are removed (for silence, say), the
    /// f members an attacker may hold still cannot vouch anyone in.
    #[test]
    fn affirmations_needed_follow_the_seats_not_the_shrunken_committee() {
        let mut m = committee(7);
        // Two honest members (5, 6) removed; members 3 and 4 are the attacker's (f = 2 of 7).
        for member in [6, 5] {
            m.apply(
                &decision(member, accusations(&[0, 1, 2], member, 0, 10)),
                10,
            )
            .expect("quarantined");
        }
        let next = m.next_members();
        m.begin_epoch(1, &next, EpochKey { digest: [7; 32] })
            .expect("epoch 1");
        assert_eq!((m.members().len(), m.f()), (5, 1));
        let now = 10 + m.policy().readmit_hold_ms;
        let by_attacker = Admit {
            candidate: id(6),
            epoch: 1,
            affirmations: affirmations(&[3, 4], id(6), 1, now),
            seat: Seat::Readmit,
        };
        assert_eq!(
            m.check_admit(&by_attacker, now),
            Err(Refusal::TooFewAffirmers { have: 2, need: 3 })
        );
        // More affirmations than a decision carries on the wire are refused before anything.
        let mut flood = by_attacker.clone();
        flood.affirmations = affirmations(&[0, 1, 2, 3, 4], id(6), 1, now);
        flood
            .affirmations
            .extend(affirmations(&[0; ACCUSATIONS_MAX], id(6), 1, now));
        assert!(matches!(
            m.check_admit(&flood, now),
            Err(Refusal::TooManyAffirmations(_))
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
