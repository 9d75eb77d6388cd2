//! Oracle rounds through the committee: every member observes each underlying once per round
//! and gossips its signed observation; the block proposer puts the newest round that 2f+1
//! members signed into its block (as `SystemCommand::OracleRound`), and every replica checks
//! it (`check::check_and_execute`) before the engine executes it.
//!
//! [`OraclePool`] is the pure part: it keeps valid observations per (underlying, round), only
//! for rounds in a window around the receiver's clock, so what it holds is bounded and no
//! member can occupy it with rounds from the far future. A member observes either real venues
//! (the node's `SourcedFeed`: live WebSocket adapters or capture replay, from its
//! `[[oracle]]` configuration) or, by default, [`SyntheticFeed`], the DEVELOPMENT price source of
//! `bulwark up`: a seeded path that every member computes identically from the round number.

use bulwark_engine::command::SystemCommand;
use bulwark_engine::oracle::{OracleConfig, OracleEquivocation, OracleRoster, SignedObservation};
use bulwark_engine::Engine;
use bulwark_oracle::node::{NodeConfig as ObserverConfig, OracleNode, SourceQuote};
use bulwark_oracle::proposer::{check_observation, Dropped, RoundBuilder};
use bulwark_oracle::synthetic::{Synthetic, SyntheticParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Rounds kept per underlying behind the receiver's current round (older ones are dropped).
pub const ROUNDS_KEPT: usize = 16;
/// Rounds ahead of the receiver's current round an observation may be for: the clock skew
/// between honest members this tolerates, in rounds. Anything further ahead is dropped as
/// [`Dropped::Implausible`], evidence against the member that sent it.
pub const FUTURE_ROUNDS: u64 = 5;
/// Length of a round, milliseconds of venue time.
pub const ROUND_MS: u64 = 1_000;

/// The oracle round a Unix time (ms) falls in: whole [`ROUND_MS`] since the venue's epoch. Every
/// member observes, and every pool judges plausibility, by this one rule.
pub fn round_at(unix_ms: u64, venue_epoch_ms: u64) -> u64 {
    unix_ms.saturating_sub(venue_epoch_ms) / ROUND_MS
}

/// Signed observations waiting to form certified rounds.
pub struct OraclePool {
    /// Who holds the seats as of the newest committed state this pool has seen
    /// ([`OraclePool::follow`]); the genesis seats until then.
    roster: OracleRoster,
    underlyings: u16,
    rounds: BTreeMap<(u16, u64), RoundBuilder>,
    /// Per member, two different observations it signed for one round (at most one proof per
    /// member, so bounded by the committee), until the engine has quarantined it.
    equivocations: BTreeMap<[u8; 32], OracleEquivocation>,
}

/// The pool shared by the feed, the gossip receiver and the proposer.
pub type SharedPool = Arc<Mutex<OraclePool>>;

impl OraclePool {
    /// An empty pool for the engine's oracle committee and `underlyings` feeds.
    pub fn new(config: OracleConfig, underlyings: u16) -> Self {
        OraclePool {
            roster: OracleRoster::genesis(&config),
            underlyings,
            rounds: BTreeMap::new(),
            equivocations: BTreeMap::new(),
        }
    }

    /// Offers one observation (from this member or a peer) at `now_round`, the receiver's
    /// current round by its own clock; returns why it was dropped. Nothing is stored unless the
    /// round lies in the window (`ROUNDS_KEPT` behind to `FUTURE_ROUNDS` ahead of `now_round`),
    /// a committee member signed it and its values are in range; rounds that fall behind the
    /// window are dropped from the pool.
    pub fn offer(&mut self, observation: SignedObservation, now_round: u64) -> Result<(), Dropped> {
        let (feed, round) = (observation.observation.feed, observation.observation.round);
        if feed >= self.underlyings {
            return Err(Dropped::WrongRound);
        }
        let oldest = now_round.saturating_sub(ROUNDS_KEPT as u64 - 1);
        if round > now_round.saturating_add(FUTURE_ROUNDS) {
            return Err(Dropped::Implausible {
                round,
                ahead: round - now_round,
            });
        }
        if round < oldest {
            return Err(Dropped::WrongRound);
        }
        let member = check_observation(&self.roster, &observation)?;
        let stale: Vec<(u16, u64)> = self
            .rounds
            .range((feed, 0)..(feed, oldest))
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            self.rounds.remove(&key);
        }
        let builder = self
            .rounds
            .entry((feed, round))
            .or_insert_with(|| RoundBuilder::new(feed, round));
        match builder.kept_by(&observation.node).copied() {
            Some(kept) if kept != observation => {
                self.note_equivocation(kept, observation);
                Err(Dropped::Equivocation)
            }
            Some(_) => Err(Dropped::Duplicate),
            None => builder.insert_checked(member, observation),
        }
    }

    /// Follows the seats of a newly committed state: observations from signers that no longer
    /// hold a seat are dropped, and from then on only the new holders' are kept. Returns whether
    /// the seats changed.
    pub fn follow(&mut self, committed: &Engine) -> bool {
        let roster = committed.oracle_roster();
        if roster == self.roster {
            return false;
        }
        for builder in self.rounds.values_mut() {
            builder.reseat(&roster);
        }
        self.roster = roster;
        true
    }

    /// Keeps `first` and `second`, two valid observations one member signed for one round, as
    /// the proof against it (the first proof per member is kept).
    fn note_equivocation(&mut self, first: SignedObservation, second: SignedObservation) {
        self.equivocations
            .entry(first.node)
            .or_insert(OracleEquivocation { first, second });
    }

    /// Compares the observations in a finalized block's certified rounds with the ones this pool
    /// received: a member that showed this node another signed observation for the same round
    /// than the one the proposer certified equivocated. (Both were checked: the block's by every
    /// replica, this pool's before it was stored.)
    pub fn note_certified(&mut self, commands: &[SystemCommand]) {
        for command in commands {
            let SystemCommand::OracleRound {
                underlying,
                round,
                observations,
            } = command
            else {
                continue;
            };
            let Some(builder) = self.rounds.get(&(*underlying, *round)) else {
                continue;
            };
            let conflicts: Vec<(SignedObservation, SignedObservation)> = observations
                .iter()
                .filter_map(|certified| {
                    builder
                        .kept_by(&certified.node)
                        .filter(|kept| *kept != certified)
                        .map(|kept| (*kept, *certified))
                })
                .collect();
            for (kept, certified) in conflicts {
                self.note_equivocation(kept, certified);
            }
        }
    }

    /// The quarantines to propose: one per equivocating member that `next` (the parent's trust
    /// state, shared with the other sources of quarantines in the same block) still accepts at
    /// `now_ms`, applied to it in turn so that the block never carries more than the rule
    /// allows. Proofs against members no longer admitted are dropped.
    pub fn propose_into(
        &mut self,
        next: &mut bulwark_sentinel::Membership,
        now_ms: u64,
    ) -> Vec<SystemCommand> {
        self.equivocations
            .retain(|member, _| next.is_admitted(member));
        let epoch = next.epoch();
        let decisions =
            self.equivocations
                .iter()
                .map(|(member, proof)| bulwark_engine::sentinel::Decision {
                    member: *member,
                    epoch,
                    evidence: bulwark_sentinel::membership::Evidence::SelfProof(Box::new(
                        bulwark_engine::sentinel::Proof::OracleEquivocation(*proof),
                    )),
                });
        crate::sentinel_feed::in_turn(next, decisions, now_ms)
    }

    /// Equivocation proofs held.
    pub fn equivocations(&self) -> usize {
        self.equivocations.len()
    }

    /// For each underlying, the newest round after `engine`'s last certified one that 2f+1
    /// members signed, as engine commands.
    pub fn certified(&self, engine: &Engine) -> Vec<SystemCommand> {
        // The seats of the state the block executes on, which a replica checks it against.
        let roster = engine.oracle_roster();
        let quorum = roster.quorum();
        let mut out = Vec::new();
        for underlying in 0..self.underlyings {
            let last = engine.oracle_last_round(underlying).unwrap_or(u64::MAX);
            let newest = self
                .rounds
                .range((underlying, 0)..=(underlying, u64::MAX))
                .rev()
                .filter(|((_, round), builder)| *round > last && builder.len() >= quorum)
                .find_map(|(_, builder)| {
                    // Under the parent's seats, which may already be past an epoch change this
                    // pool has not committed: a signer without a seat there is left out.
                    let mut builder = builder.clone();
                    builder.reseat(&roster);
                    (builder.len() >= quorum)
                        .then(|| builder.finish(&roster).ok())
                        .flatten()
                });
            out.extend(newest);
        }
        out
    }

    /// Rounds held (all underlyings).
    pub fn len(&self) -> usize {
        self.rounds.len()
    }

    /// Whether no round is held.
    pub fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }
}

/// The DEVELOPMENT price source: per underlying, a seeded jump-diffusion path stepped once
/// per round from the venue's epoch, seen through three synthetic "venues" a few bps apart.
pub struct SyntheticFeed {
    paths: Vec<(Synthetic, u64)>,
    observer: OracleNode,
}

impl SyntheticFeed {
    /// Paths starting at `start_micros` per underlying; observations signed with `key`.
    pub fn new(start_micros: &[i64], seed: u64, key: ed25519_dalek::SigningKey) -> Self {
        let paths = start_micros
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let params = SyntheticParams {
                    start_micros: *start,
                    ..SyntheticParams::default()
                };
                (Synthetic::new(params, seed.wrapping_add(i as u64)), 0)
            })
            .collect();
        SyntheticFeed {
            paths,
            observer: OracleNode::new(ObserverConfig::equal(3), key),
        }
    }

    /// This member's signed observations of `round` (venue time `now_ms`), one per underlying.
    pub fn observe(&mut self, round: u64, now_ms: u64) -> Vec<SignedObservation> {
        let mut out = Vec::new();
        for (underlying, (path, at)) in self.paths.iter_mut().enumerate() {
            while *at < round {
                path.step(ROUND_MS);
                *at += 1;
            }
            let mid = path.price_micros();
            let quotes: Vec<Option<SourceQuote>> = [-2i64, 0, 3]
                .iter()
                .map(|bps| {
                    Some(SourceQuote {
                        price_micros: mid + mid / 10_000 * bps,
                        half_spread_micros: mid / 20_000,
                        time_ms: now_ms,
                    })
                })
                .collect();
            out.extend(
                self.observer
                    .observe(&quotes, underlying as u16, round, now_ms),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_engine::EngineConfig;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_quorum_of_members_certifies_and_the_engine_accepts_it() {
        let (keys, oracle) = committee();
        let mut engine = Engine::new(EngineConfig {
            oracle: oracle.clone(),
            ..EngineConfig::default()
        });
        let mut pool = OraclePool::new(oracle, 2);
        let mut feeds: Vec<SyntheticFeed> = keys
            .iter()
            .map(|k| SyntheticFeed::new(&[60_000_000_000, 3_000_000_000], 7, k.clone()))
            .collect();
        // Two members: no quorum yet.
        for feed in feeds.iter_mut().take(2) {
            for observation in feed.observe(1, 1_000) {
                pool.offer(observation, 1).unwrap();
            }
        }
        assert!(pool.certified(&engine).is_empty());
        for feed in feeds.iter_mut().skip(2) {
            for observation in feed.observe(1, 1_000) {
                pool.offer(observation, 1).unwrap();
            }
        }
        let rounds = pool.certified(&engine);
        assert_eq!(rounds.len(), 2, "one round per underlying");
        let commands: Vec<_> = rounds
            .into_iter()
            .map(bulwark_engine::Command::System)
            .collect();
        let mut events = Vec::new();
        engine.execute(1_000, &commands, &mut events);
        assert!(
            engine.index_price(0).is_some() && engine.index_price(1).is_some(),
            "{events:?}"
        );
        assert_eq!(engine.oracle_last_round(0), Some(1));
        assert!(
            pool.certified(&engine).is_empty(),
            "nothing newer than round 1"
        );
        // A non-member's observation is dropped.
        let mut outsider =
            SyntheticFeed::new(&[60_000_000_000], 7, SigningKey::from_bytes(&[99; 32]));
        let observation = outsider.observe(2, 2_000).remove(0);
        assert_eq!(pool.offer(observation, 2), Err(Dropped::NotMember));
    }

    /// What `pool` proposes on top of `engine` (nothing without a sentinel committee).
    fn quarantines(pool: &mut OraclePool, engine: &Engine) -> Vec<SystemCommand> {
        match engine.membership() {
            Some(membership) => pool.propose_into(&mut membership.clone(), engine.time_ms()),
            None => Vec::new(),
        }
    }

    /// An engine whose sentinel watches the oracle committee, as genesis builds it.
    fn with_sentinel(oracle: &OracleConfig) -> Engine {
        Engine::new(EngineConfig {
            oracle: oracle.clone(),
            sentinel: bulwark_engine::sentinel::SentinelConfig {
                members: oracle.members.clone(),
                ..Default::default()
            },
            ..EngineConfig::default()
        })
    }

    /// A member that signs two observations for one round is caught whether both reach this
    /// pool or one reaches it and the other is certified in a block; the quarantine it proposes
    /// passes the engine's rule, never more than f at once, and an honest repeat or another
    /// member's observation convicts no one.
    #[test]
    fn an_equivocating_member_becomes_a_quarantine_and_an_honest_one_does_not() {
        let (keys, oracle) = committee();
        let signer = |i: usize| {
            bulwark_oracle::node::OracleNode::new(
                bulwark_oracle::node::NodeConfig::equal(3),
                keys[i].clone(),
            )
        };
        let mut feeds: Vec<SyntheticFeed> = keys
            .iter()
            .map(|k| SyntheticFeed::new(&[60_000_000_000], 7, k.clone()))
            .collect();
        let mut pool = OraclePool::new(oracle.clone(), 1);
        let engine = with_sentinel(&oracle);
        // Everyone honest, and repeats of the same observation: nothing.
        for feed in &mut feeds {
            let observation = feed.observe(1, 1_000).remove(0);
            pool.offer(observation, 1).unwrap();
            assert_eq!(pool.offer(observation, 1), Err(Dropped::Duplicate));
        }
        assert!(quarantines(&mut pool, &engine).is_empty());
        // Member 3 sends this pool a second, different observation for round 1.
        let mut second = feeds[3].observe(1, 1_000).remove(0).observation;
        second.price_micros += 1;
        assert_eq!(
            pool.offer(signer(3).sign(second), 1),
            Err(Dropped::Equivocation)
        );
        let proposed = quarantines(&mut pool, &engine);
        assert_eq!(proposed.len(), 1);
        let mut replica = engine.clone();
        let mut events = Vec::new();
        let commands: Vec<_> = proposed
            .into_iter()
            .map(bulwark_engine::Command::System)
            .collect();
        replica.execute(1_000, &commands, &mut events);
        assert!(events.contains(&bulwark_engine::Event::Quarantined {
            member: keys[3].verifying_key().to_bytes(),
            epoch: 0
        }));
        // Once the engine holds it, the pool proposes it no more.
        assert!(quarantines(&mut pool, &replica).is_empty());
        assert_eq!(pool.equivocations(), 0);

        // Member 2 showed this pool one observation for round 2 and the proposer another: the
        // finalized block convicts it. A second equivocator (member 1) in the same round is
        // not proposed at once: f = 1.
        let mut pool = OraclePool::new(oracle.clone(), 1);
        for feed in &mut feeds {
            pool.offer(feed.observe(2, 2_000).remove(0), 2).unwrap();
        }
        let mut certified: Vec<SignedObservation> = Vec::new();
        for (i, feed) in feeds.iter_mut().enumerate() {
            let mut observation = feed.observe(2, 2_000).remove(0);
            if i == 1 || i == 2 {
                let mut other = observation.observation;
                other.price_micros += 7;
                observation = signer(i).sign(other);
            }
            certified.push(observation);
        }
        pool.note_certified(&[SystemCommand::OracleRound {
            underlying: 0,
            round: 2,
            observations: certified,
        }]);
        assert_eq!(pool.equivocations(), 2);
        assert_eq!(
            quarantines(&mut pool, &engine).len(),
            1,
            "never more than f at once"
        );
        // Without a sentinel committee nothing is proposed.
        let plain = Engine::new(EngineConfig {
            oracle: oracle.clone(),
            ..EngineConfig::default()
        });
        assert!(quarantines(&mut pool, &plain).is_empty());
    }

    /// Four oracle members and their committee configuration (f = 1).
    fn committee() -> (Vec<SigningKey>, OracleConfig) {
        let keys: Vec<SigningKey> = (0..4)
            .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
            .collect();
        let oracle = OracleConfig {
            members: keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
            f: 1,
            ..OracleConfig::default()
        };
        (keys, oracle)
    }

    /// A member that signs observations for rounds far ahead of the clock (2^63, u64::MAX)
    /// cannot take the pool: they are refused as implausible before anything is stored, so
    /// rounds keep certifying; an unsigned far-future one stores nothing either, and near
    /// u64::MAX nothing overflows.
    #[test]
    fn far_future_rounds_cannot_stop_certification() {
        let (keys, oracle) = committee();
        let mut engine = Engine::new(EngineConfig {
            oracle: oracle.clone(),
            ..EngineConfig::default()
        });
        let mut pool = OraclePool::new(oracle, 1);
        let mut feeds: Vec<SyntheticFeed> = keys
            .iter()
            .map(|k| SyntheticFeed::new(&[60_000_000_000], 7, k.clone()))
            .collect();
        let signer = bulwark_oracle::node::OracleNode::new(
            bulwark_oracle::node::NodeConfig::equal(3),
            keys[1].clone(),
        );
        let honest = feeds[1].observe(1, 1_000).remove(0);
        for round in [1u64 << 63, u64::MAX - 1, u64::MAX] {
            let mut forged = honest.observation;
            forged.round = round;
            let signed = signer.sign(forged);
            assert!(
                matches!(pool.offer(signed, 1), Err(Dropped::Implausible { .. })),
                "round {round}"
            );
            let mut unsigned = signed;
            unsigned.signature = [0; 64];
            assert!(matches!(
                pool.offer(unsigned, 1),
                Err(Dropped::Implausible { .. })
            ));
        }
        // Within the window but badly signed: refused, and nothing is stored for it.
        let mut unsigned = feeds[0].observe(3, 3_000).remove(0);
        unsigned.signature = [0; 64];
        assert_eq!(pool.offer(unsigned, 1), Err(Dropped::BadSignature));
        assert!(pool.is_empty());
        // The committee goes on certifying round after round, the pool staying bounded.
        for round in 1..=40u64 {
            for feed in &mut feeds {
                for observation in feed.observe(round, round * 1_000) {
                    pool.offer(observation, round).unwrap();
                }
            }
            let commands: Vec<_> = pool
                .certified(&engine)
                .into_iter()
                .map(bulwark_engine::Command::System)
                .collect();
            engine.execute(round * 1_000, &commands, &mut Vec::new());
            assert_eq!(engine.oracle_last_round(0), Some(round));
            assert!(pool.len() <= ROUNDS_KEPT, "{} rounds held", pool.len());
        }
        // A round just inside the skew allowance is kept; one past it is not.
        let ahead = feeds[2].observe(40 + FUTURE_ROUNDS, 45_000).remove(0);
        assert_eq!(pool.offer(ahead, 40), Ok(()));
        let beyond = feeds[3].observe(41 + FUTURE_ROUNDS, 46_000).remove(0);
        assert_eq!(
            pool.offer(beyond, 40),
            Err(Dropped::Implausible {
                round: 41 + FUTURE_ROUNDS,
                ahead: 1 + FUTURE_ROUNDS
            })
        );
    }
}
