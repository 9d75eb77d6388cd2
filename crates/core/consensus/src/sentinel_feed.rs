//! The sentinel's side of a replica: this member's own evidence turned into signed accusations,
//! the accusations of others gathered until f+1 distinct members agree, the quarantines the
//! proposer adds to its block, and the admissions (re-admissions and replacements) submitted to
//! this member, checked before they are kept (see `docs/sentinel.md`).
//!
//! The rules are `bulwark_sentinel`'s and the trust state is the engine's (the newest committed
//! one): an accusation is checked by the same rule every replica applies to the decision, before
//! anything about it is stored.

use std::sync::{Arc, Mutex};

use bulwark_engine::command::SystemCommand;
use bulwark_engine::sentinel::Decision;
use bulwark_engine::Engine;
use bulwark_sentinel::{
    Accusation, AccusationPool, Admit, Grounds, Membership, Offer, Refusal, Watch,
};

/// Most admissions a member keeps for its proposals at once (each passed the rule when it came;
/// the rule itself lets at most f candidates join at once).
pub const ADMISSIONS_HELD_MAX: usize = 8;

/// One member's sentinel.
pub struct SentinelFeed {
    key: ed25519_dalek::SigningKey,
    epoch: Option<u64>,
    watch: Option<Watch>,
    pool: AccusationPool,
    decisions: Vec<Decision>,
    admissions: Vec<Admit>,
}

/// The feed shared by the evidence sources, the gossip receiver and the proposer.
pub type SharedSentinel = Arc<Mutex<SentinelFeed>>;

impl SentinelFeed {
    /// The sentinel of the member whose node key is `key`.
    pub fn new(key: ed25519_dalek::SigningKey) -> Self {
        SentinelFeed {
            key,
            epoch: None,
            watch: None,
            pool: AccusationPool::new(),
            decisions: Vec::new(),
            admissions: Vec::new(),
        }
    }

    fn watch(&mut self, membership: &Membership) -> &mut Watch {
        if self.epoch != Some(membership.epoch()) {
            self.epoch = Some(membership.epoch());
            self.watch = None;
            self.pool = AccusationPool::new();
            self.decisions.clear();
            self.admissions.clear();
        }
        let me = self.key.verifying_key().to_bytes();
        self.watch.get_or_insert_with(|| Watch::new(me, membership))
    }

    /// This member saw `grounds` against `peer`. With `engine` the newest committed state:
    /// returns the accusation to send every peer once the policy's threshold is reached (it is
    /// also offered here). `None` without a sentinel committee.
    pub fn observe(
        &mut self,
        engine: &Engine,
        peer: [u8; 32],
        grounds: Grounds,
    ) -> Option<Accusation> {
        let membership = engine.membership()?;
        let now_ms = engine.time_ms();
        if !self.watch(membership).observe(peer, grounds, now_ms) {
            return None;
        }
        let epoch = membership.epoch();
        let accusation = Accusation::sign(&self.key, peer, grounds, epoch, now_ms);
        // Our own accusation passes our own rule unless the target can no longer be quarantined.
        let _ = self.offer(engine, accusation);
        Some(accusation)
    }

    /// An accusation from a peer (or this member), checked against `engine`'s trust state at its
    /// time before anything is stored. A decision it completes is kept for the proposer.
    pub fn offer(&mut self, engine: &Engine, accusation: Accusation) -> Result<(), Refusal> {
        let Some(membership) = engine.membership() else {
            return Err(Refusal::Committee(
                "no sentinel committee is configured".into(),
            ));
        };
        self.watch(membership);
        match self.pool.offer::<bulwark_engine::sentinel::Proof>(
            accusation,
            membership,
            engine.time_ms(),
        )? {
            Offer::Held { .. } => {}
            Offer::Decides(decision) => {
                self.decisions.retain(|d| d.member != decision.member);
                self.decisions.push(*decision);
            }
        }
        Ok(())
    }

    /// An admission submitted to this member (by an operator, or gossiped), checked by the one
    /// rule against `engine`'s trust state at its time ([`check_admit`]) before it is kept for
    /// proposals ([`SentinelFeed::hold_admit`]).
    pub fn offer_admit(&mut self, engine: &Engine, admit: Admit) -> Result<(), AdmitOffer> {
        let checked = check_admit(engine, admit)?;
        self.hold_admit(engine, checked)
    }

    /// Keeps an admission [`check_admit`] accepted against `engine`'s state for proposals. A
    /// newer admission of the same candidate replaces the older one; beyond
    /// [`ADMISSIONS_HELD_MAX`] candidates it is refused, and so is one checked in another epoch.
    pub fn hold_admit(&mut self, engine: &Engine, checked: CheckedAdmit) -> Result<(), AdmitOffer> {
        let Some(membership) = engine.membership() else {
            return Err(no_committee());
        };
        if checked.epoch != membership.epoch() {
            return Err(AdmitOffer::Refused(Refusal::WrongEpoch {
                found: checked.epoch,
                current: membership.epoch(),
            }));
        }
        self.watch(membership);
        let admit = checked.admit;
        self.admissions.retain(|a| a.candidate != admit.candidate);
        if self.admissions.len() >= ADMISSIONS_HELD_MAX {
            return Err(AdmitOffer::Full);
        }
        self.admissions.push(admit);
        Ok(())
    }

    /// The admissions this member holds for its proposals.
    pub fn admissions(&self) -> &[Admit] {
        &self.admissions
    }

    /// The quarantines to add to a block at `now_ms`, applied in turn to `next` (the parent's
    /// trust state, shared with the other sources of quarantines) so that the block never
    /// carries one the check would refuse.
    pub fn propose_into(&mut self, next: &mut Membership, now_ms: u64) -> Vec<SystemCommand> {
        in_turn(next, self.decisions.iter().cloned(), now_ms)
    }

    /// The admissions to add to a block at `now_ms`, applied in turn to `next` (the trust state
    /// the block's quarantines leave). The proposer adds them only to a block that does not
    /// change the epoch: a join changes the next committee, so it would void the reshare that
    /// is ready.
    pub fn propose_admissions_into(
        &self,
        next: &mut Membership,
        now_ms: u64,
    ) -> Vec<SystemCommand> {
        self.admissions
            .iter()
            .filter(|admit| next.admit(admit, now_ms).is_ok())
            .map(|admit| SystemCommand::Admit(Box::new(admit.clone())))
            .collect()
    }

    /// The members this sentinel holds accusations against (its own or others'): suspected,
    /// not (yet) convicted.
    pub fn suspected(&self) -> Vec<[u8; 32]> {
        self.pool.accused().copied().collect()
    }

    /// Drops the decisions `engine` no longer needs (their member is not admitted any more).
    pub fn prune(&mut self, engine: &Engine) {
        if let Some(membership) = engine.membership() {
            self.decisions.retain(|d| membership.is_admitted(&d.member));
            self.pool.prune(membership, engine.time_ms());
            // Applied, stale or otherwise refused now: nothing more to propose.
            self.admissions
                .retain(|a| membership.check_admit(a, engine.time_ms()).is_ok());
        }
    }
}

/// An admission that passed the one rule against a committed state: only [`check_admit`] makes
/// one, so [`SentinelFeed::hold_admit`] never keeps an unchecked admission.
#[derive(Debug)]
pub struct CheckedAdmit {
    admit: Admit,
    epoch: u64,
    dropped: usize,
}

impl CheckedAdmit {
    /// How many of the submitted affirmations were dropped as not counting.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

fn no_committee() -> AdmitOffer {
    AdmitOffer::Refused(Refusal::Committee(
        "no sentinel committee is configured".into(),
    ))
}

/// Checks a submitted admission by the one rule against `engine`'s trust state at its time. It
/// needs no feed, so a caller runs its signature checks without holding the feed's lock.
/// Affirmations that do not count at that state (another candidate, a non-member, a bad
/// signature, out of the window) are dropped first: one of them would void the whole admission
/// at every replica, so a single hostile member could block an admission the others affirm.
pub fn check_admit(engine: &Engine, mut admit: Admit) -> Result<CheckedAdmit, AdmitOffer> {
    let Some(membership) = engine.membership() else {
        return Err(no_committee());
    };
    let (candidate, now_ms) = (admit.candidate, engine.time_ms());
    let submitted = admit.affirmations.len();
    admit
        .affirmations
        .retain(|a| a.candidate == candidate && membership.check_affirmation(a, now_ms).is_ok());
    membership
        .check_admit(&admit, now_ms)
        .map_err(AdmitOffer::Refused)?;
    Ok(CheckedAdmit {
        dropped: submitted - admit.affirmations.len(),
        epoch: membership.epoch(),
        admit,
    })
}

/// Why an admission submitted to a member was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitOffer {
    /// The sentinel's rule refuses it now.
    #[error("admission refused: {0}")]
    Refused(Refusal),
    /// The member holds [`ADMISSIONS_HELD_MAX`] admissions already.
    #[error("this member holds {ADMISSIONS_HELD_MAX} admissions already; submit again later")]
    Full,
}

/// The quarantine commands for those of `decisions` that `next` accepts, each applied to it in
/// turn at `now_ms`: what every source of quarantines adds to a block, so that the block's check
/// (which applies them in the same order) refuses none.
pub(crate) fn in_turn(
    next: &mut Membership,
    decisions: impl IntoIterator<Item = Decision>,
    now_ms: u64,
) -> Vec<SystemCommand> {
    decisions
        .into_iter()
        .filter(|decision| next.apply(decision, now_ms).is_ok())
        .map(|decision| SystemCommand::Quarantine(Box::new(decision)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_engine::command::Command;
    use bulwark_sentinel::membership::{Evidence, Quarantine};
    use bulwark_sentinel::{Affirmation, Approval, Operators, Policy, Seat};
    use ed25519_dalek::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i + 1; 32])
    }

    /// Four members, member 3 quarantined at 1 s, two of three operators approve.
    fn engine() -> Engine {
        let oracle = bulwark_engine::oracle::OracleConfig {
            members: (0..4).map(|i| key(i).verifying_key().to_bytes()).collect(),
            f: 1,
            ..Default::default()
        };
        let operators = Operators {
            keys: (0..3)
                .map(|i| key(50 + i).verifying_key().to_bytes())
                .collect(),
            quorum: 2,
        };
        let (mut engine, _) = crate::genesis::try_genesis_with(
            &[],
            &[60_000_000_000],
            oracle,
            (Policy::default(), operators),
        )
        .expect("genesis");
        let accused = key(3).verifying_key().to_bytes();
        let decision = Quarantine {
            member: accused,
            epoch: 0,
            evidence: Evidence::Accusations(
                (0..2)
                    .map(|i| Accusation::sign(&key(i), accused, Grounds::Silence, 0, 1_000))
                    .collect(),
            ),
        };
        let mut events = Vec::new();
        engine.execute(
            1_000,
            &[Command::System(SystemCommand::Quarantine(Box::new(
                decision,
            )))],
            &mut events,
        );
        engine
    }

    fn replacement(affirmers: &[u8]) -> Admit {
        let candidate = key(9).verifying_key().to_bytes();
        let seat = key(3).verifying_key().to_bytes();
        Admit {
            candidate,
            epoch: 0,
            affirmations: affirmers
                .iter()
                .map(|i| Affirmation::sign(&key(*i), candidate, 0, 1_000, ([1; 32], [2; 32])))
                .collect(),
            seat: Seat::Replace {
                replaces: seat,
                approvals: (50..52)
                    .map(|i| Approval::sign(&key(i), &candidate, &seat, 0))
                    .collect(),
            },
        }
    }

    #[test]
    fn a_submitted_admission_is_checked_before_it_is_kept_and_proposed_once() {
        let engine = engine();
        let mut feed = SentinelFeed::new(key(0));
        // One affirmation is fewer than f + 1: refused, nothing kept.
        assert!(matches!(
            feed.offer_admit(&engine, replacement(&[0])),
            Err(AdmitOffer::Refused(Refusal::TooFewAffirmers { .. }))
        ));
        assert!(feed.admissions().is_empty());
        feed.offer_admit(&engine, replacement(&[0, 1]))
            .expect("kept");
        // A hostile member's bad affirmation (a broken signature) beside two good ones is
        // dropped, and the admission still passes.
        let mut spoiled = replacement(&[0, 1]);
        let mut bad = replacement(&[2]).affirmations[0];
        bad.signature[0] ^= 1;
        spoiled.affirmations.insert(0, bad);
        let checked = check_admit(&engine, spoiled).expect("two good affirmations remain");
        assert_eq!(checked.dropped(), 1);
        // The same candidate again replaces, never duplicates.
        feed.offer_admit(&engine, replacement(&[1, 2]))
            .expect("kept");
        assert_eq!(feed.admissions().len(), 1);
        let mut next = engine.membership().cloned().expect("configured");
        assert!(feed.propose_into(&mut next, engine.time_ms()).is_empty());
        let rounds = feed.propose_admissions_into(&mut next, engine.time_ms());
        assert!(matches!(rounds.as_slice(), [SystemCommand::Admit(_)]));
        // Once it is applied, the feed drops it.
        let mut after = engine.clone();
        let mut events = Vec::new();
        after.execute(
            engine.time_ms(),
            &[Command::System(rounds[0].clone())],
            &mut events,
        );
        feed.prune(&after);
        assert!(feed.admissions().is_empty());
    }
}
