//! The sentinel's side of a replica: this member's own evidence turned into signed accusations,
//! the accusations of others gathered until f+1 distinct members agree, and the quarantines the
//! proposer adds to its block (see `docs/sentinel.md`).
//!
//! The rules are `bulwark_sentinel`'s and the trust state is the engine's (the newest committed
//! one): an accusation is checked by the same rule every replica applies to the decision, before
//! anything about it is stored.

use std::sync::{Arc, Mutex};

use bulwark_engine::command::SystemCommand;
use bulwark_engine::sentinel::Decision;
use bulwark_engine::Engine;
use bulwark_sentinel::{Accusation, AccusationPool, Grounds, Membership, Offer, Refusal, Watch};

/// One member's sentinel.
pub struct SentinelFeed {
    key: ed25519_dalek::SigningKey,
    epoch: Option<u64>,
    watch: Option<Watch>,
    pool: AccusationPool,
    decisions: Vec<Decision>,
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
        }
    }

    fn watch(&mut self, membership: &Membership) -> &mut Watch {
        if self.epoch != Some(membership.epoch()) {
            self.epoch = Some(membership.epoch());
            self.watch = None;
            self.pool = AccusationPool::new();
            self.decisions.clear();
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
        match self
            .pool
            .offer::<bulwark_engine::oracle::OracleEquivocation>(
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

    /// The quarantines to add to a block at `now_ms`, applied in turn to `next` (the parent's
    /// trust state, shared with the other sources of quarantines) so that the block never
    /// carries one the check would refuse.
    pub fn propose_into(&mut self, next: &mut Membership, now_ms: u64) -> Vec<SystemCommand> {
        in_turn(next, self.decisions.iter().cloned(), now_ms)
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
        }
    }
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
