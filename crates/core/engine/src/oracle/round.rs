//! The engine side of the oracle: applying a certified round, the guards, staleness, and fault
//! evidence. See the module documentation of [`crate::oracle`].

use super::{
    aggregate, check_round, distance_bps, Aggregate, FaultEvidence, FeedState, GuardKind,
    OpenGuard, OracleRoundError, SignedObservation, FAULT_RECORDS_MAX, PRICE_MICROS_MAX,
};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::engine::Engine;
use crate::event::{Event, RejectReason};

impl From<OracleRoundError> for RejectReason {
    fn from(e: OracleRoundError) -> Self {
        match e {
            OracleRoundError::NotConfigured => RejectReason::OracleNotConfigured,
            OracleRoundError::TooMany { .. } => RejectReason::OracleTooManyObservations,
            OracleRoundError::WrongRound(_) => RejectReason::OracleWrongRound,
            OracleRoundError::NotMember(_) => RejectReason::OracleNotMember,
            OracleRoundError::Duplicate(_) => RejectReason::OracleDuplicateSigner,
            OracleRoundError::OutOfRange(_) => RejectReason::OracleValueOutOfRange,
            OracleRoundError::QuorumNotMet { .. } => RejectReason::OracleQuorumNotMet,
            OracleRoundError::BadSignatures(_) => RejectReason::OracleBadSignature,
        }
    }
}

impl Engine {
    /// Applies a proposed oracle round, or refuses it whole without changing any state.
    pub(crate) fn oracle_round(
        &mut self,
        underlying: u16,
        round: u64,
        observations: &[SignedObservation],
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let u = usize::from(underlying);
        if !self.config.oracle.enabled() {
            return Err(RejectReason::OracleNotConfigured);
        }
        if u >= self.config.underlyings.len() {
            return Err(RejectReason::UnknownUnderlying);
        }
        let roster = self.oracle_roster();
        let members = check_round(&roster, underlying, round, observations)?;
        if round <= self.state.oracle.feeds[u].last_round {
            return Err(RejectReason::OracleWrongRound);
        }
        let now = self.state.time_ms;
        let cfg = &self.config.oracle;
        for o in observations {
            let t = o.observation.time_ms;
            if t > now.saturating_add(cfg.observation_skew_max_ms)
                || now.saturating_sub(t) > cfg.observation_age_max_ms
            {
                return Err(RejectReason::OracleValueOutOfRange);
            }
        }
        // Signatures last: the cheap rules above refuse malformed rounds first. Strict single
        // verification under the cached seat holders' keys (the same check as
        // `SignedObservation::verify`, without decompressing each key again). A holder's key
        // that does not decompress (a newcomer's is checked by its admission, so none should)
        // refuses the round.
        let cache = &mut self.state.oracle.member_keys;
        cache.resize(roster.seats(), None);
        for (seat, cached) in cache.iter_mut().enumerate() {
            let holder = roster.holder(seat).copied();
            if cached.as_ref().map(|(bytes, _)| *bytes) != holder {
                *cached = holder.and_then(|bytes| {
                    let key = VerifyingKey::from_bytes(&bytes).ok()?;
                    (!key.is_weak()).then_some((bytes, key))
                });
            }
        }
        let keys = &self.state.oracle.member_keys;
        let forged = observations.iter().zip(&members).any(|(o, &m)| {
            keys[m].as_ref().is_none_or(|(_, key)| {
                key.verify_strict(
                    &o.observation.signed_message(),
                    &Signature::from_bytes(&o.signature),
                )
                .is_err()
            })
        });
        if forged {
            return Err(RejectReason::OracleBadSignature);
        }
        let plain: Vec<_> = observations.iter().map(|o| o.observation).collect();
        let agg = aggregate(&plain).expect("a round that met its quorum has observations");
        self.certify(u, round, agg, out);
        self.record_faults(u, round, &agg, observations, &members, out);
        Ok(())
    }

    /// Applies a certified aggregate: clamp, index, EMA, guards.
    fn certify(&mut self, u: usize, round: u64, agg: Aggregate, out: &mut Vec<Event>) {
        let cfg = &self.config.oracle;
        let now = self.state.time_ms;
        let price = agg.price_micros;
        let previous = self.state.index[u];
        let feed = &self.state.oracle.feeds[u];
        let mut tripped: Vec<(GuardKind, i64, i64)> = Vec::with_capacity(GuardKind::ALL.len());
        let applied = match previous {
            Some(prev) => {
                let gap = distance_bps(price, prev, prev);
                if gap > i64::from(cfg.clamp_bps) {
                    tripped.push((GuardKind::Clamp, gap, i64::from(cfg.clamp_bps)));
                }
                let width =
                    i64::try_from(i128::from(prev) * i128::from(cfg.clamp_bps) / super::BPS)
                        .expect("a fraction of an i64 price fits an i64");
                price.clamp((prev - width).max(1), (prev + width).min(PRICE_MICROS_MAX))
            }
            None => price,
        };
        if let Some(ema) = feed.ema_micros {
            let jump = distance_bps(price, ema, ema);
            if jump > i64::from(cfg.jump_bps) {
                tripped.push((GuardKind::Jump, jump, i64::from(cfg.jump_bps)));
            }
        }
        if agg.sources < cfg.sources_min {
            tripped.push((
                GuardKind::Sources,
                i64::from(agg.sources),
                i64::from(cfg.sources_min),
            ));
        }
        let width_bps = distance_bps(agg.confidence_micros, 0, price);
        if width_bps > i64::from(cfg.confidence_max_bps) {
            tripped.push((
                GuardKind::Confidence,
                width_bps,
                i64::from(cfg.confidence_max_bps),
            ));
        }
        let ema = match (feed.ema_micros, feed.last_certified_ms) {
            (Some(ema), Some(last)) => {
                let dt = i128::from(now.saturating_sub(last));
                let tau = i128::from(cfg.jump_ema_ms);
                let step = (i128::from(applied) - i128::from(ema)) * dt / (dt + tau);
                i64::try_from(i128::from(ema) + step).expect("the EMA stays between two prices")
            }
            _ => applied,
        };
        let close_after = cfg.healthy_rounds_to_close;
        let underlying = u16::try_from(u).expect("underlying indices fit u16");
        let feed = &mut self.state.oracle.feeds[u];
        feed.last_round = round;
        feed.last_certified_ms = Some(now);
        feed.last_aggregate = Some(agg);
        feed.ema_micros = Some(ema);
        let mut closed = false;
        for kind in GuardKind::ALL {
            let trip = tripped.iter().find(|t| t.0 == kind).copied();
            closed |= update_guard(feed, underlying, kind, trip, now, close_after, out);
        }
        if closed {
            // Accounts skipped while the guard was open are checked again at the end of the batch.
            self.state.marks_moved = true;
        }
        out.push(Event::OracleCertified {
            underlying,
            round,
            aggregate_micros: price,
            confidence_micros: agg.confidence_micros,
            signers: agg.count,
            index_micros: applied,
        });
        self.set_index(u, applied);
        out.push(Event::IndexUpdated {
            underlying,
            price_micros: applied,
        });
    }

    /// Counts deviant rounds per member and records evidence when a streak reaches the bound.
    fn record_faults(
        &mut self,
        u: usize,
        round: u64,
        agg: &Aggregate,
        observations: &[SignedObservation],
        members: &[usize],
        out: &mut Vec<Event>,
    ) {
        let cfg = &self.config.oracle;
        let (bound, k) = (i64::from(cfg.fault_deviation_bps), cfg.fault_rounds);
        let now = self.state.time_ms;
        let underlying = u16::try_from(u).expect("underlying indices fit u16");
        let state = &mut self.state.oracle;
        for (o, &m) in observations.iter().zip(members) {
            let deviation = distance_bps(
                o.observation.price_micros,
                agg.price_micros,
                agg.price_micros,
            );
            let streak = &mut state.feeds[u].deviant_rounds[m];
            if deviation <= bound {
                *streak = 0;
                continue;
            }
            *streak = streak.saturating_add(1);
            if *streak != k {
                continue;
            }
            let evidence = FaultEvidence {
                node: o.node,
                underlying,
                round,
                rounds: k,
                aggregate_micros: agg.price_micros,
                deviation_bps: deviation,
                time_ms: now,
                observation: *o,
            };
            if state.faults.len() == FAULT_RECORDS_MAX {
                state.faults.pop_front();
                state.faults_dropped += 1;
            }
            state.faults.push_back(evidence);
            out.push(Event::OracleFault { evidence });
        }
    }

    /// Opens the staleness guard of every feed with no certified round within `stale_ms`.
    /// Runs at the end of every batch, before liquidation.
    pub(crate) fn check_oracle_staleness(&mut self, out: &mut Vec<Event>) {
        if !self.config.oracle.enabled() {
            return;
        }
        let now = self.state.time_ms;
        let limit = self.config.oracle.stale_ms;
        for (u, feed) in self.state.oracle.feeds.iter_mut().enumerate() {
            let Some(last) = feed.last_certified_ms else {
                continue;
            };
            let age = now.saturating_sub(last);
            if age <= limit {
                continue;
            }
            let observed = i64::try_from(age).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let underlying = u16::try_from(u).expect("underlying indices fit u16");
            update_guard(
                feed,
                underlying,
                GuardKind::Stale,
                Some((GuardKind::Stale, observed, limit)),
                now,
                u32::MAX,
                out,
            );
        }
    }

    /// Who holds each oracle seat now ([`OracleRoster`]): the genesis seats, following the
    /// sentinel's membership when the oracle committee is the sentinel's committee.
    pub fn oracle_roster(&self) -> super::OracleRoster {
        let oracle = &self.config.oracle;
        match &self.state.membership {
            Some(membership) if self.config.sentinel.members == oracle.members => {
                super::OracleRoster::following(oracle, membership.members())
            }
            _ => super::OracleRoster::genesis(oracle),
        }
    }

    /// Moves the deviance streaks with their holders when the seats change (called when an
    /// epoch begins, the only time they do): a holder that moved to another seat keeps its
    /// streak, and a holder new to the seats starts from zero, so a newcomer does not inherit
    /// its predecessor's record and nobody sheds its own by being re-seated.
    pub(crate) fn oracle_seats_changed(&mut self, before: &super::OracleRoster) {
        let after = self.oracle_roster();
        if after == *before {
            return;
        }
        for feed in &mut self.state.oracle.feeds {
            let streaks: Vec<u32> = (0..after.seats())
                .map(|seat| {
                    after
                        .holder(seat)
                        .and_then(|holder| before.seat_of(holder))
                        .and_then(|old| feed.deviant_rounds.get(old).copied())
                        .unwrap_or(0)
                })
                .collect();
            for (seat, streak) in streaks.into_iter().enumerate() {
                if let Some(slot) = feed.deviant_rounds.get_mut(seat) {
                    *slot = streak;
                }
            }
        }
    }

    /// Whether any guard of `underlying` is open (never with no committee).
    pub(crate) fn guarded(&self, underlying: usize) -> bool {
        self.state
            .oracle
            .feeds
            .get(underlying)
            .is_some_and(|f| !f.guards.is_empty())
    }

    /// Whether an account (or the fund) holds a position on a guarded underlying.
    pub(crate) fn holds_guarded(&self, account: &crate::account::Account) -> bool {
        account.positions.keys().any(|id| {
            let inst = &self.config.instruments[id.0 as usize];
            self.guarded(usize::from(inst.underlying))
        })
    }

    /// The oracle state of an underlying: last round, aggregate, EMA, open guards.
    pub fn oracle_feed(&self, underlying: u16) -> Option<&FeedState> {
        self.state.oracle.feeds.get(usize::from(underlying))
    }

    /// The open guards of an underlying (empty when none, or with no committee).
    pub fn oracle_guards(&self, underlying: u16) -> &[OpenGuard] {
        self.oracle_feed(underlying)
            .map_or(&[][..], |f| f.guards.as_slice())
    }

    /// Recorded fault evidence, oldest first (at most [`FAULT_RECORDS_MAX`]), and how many older
    /// records were dropped to keep that bound.
    pub fn oracle_faults(&self) -> (impl Iterator<Item = &FaultEvidence>, u64) {
        (
            self.state.oracle.faults.iter(),
            self.state.oracle.faults_dropped,
        )
    }
}

/// Applies one round's verdict for one guard: open it, keep it open, count a healthy round, or
/// close it after `close_after` healthy rounds. `trip` is `(kind, observed, limit)` when tripped.
/// Returns whether it closed.
fn update_guard(
    feed: &mut FeedState,
    underlying: u16,
    kind: GuardKind,
    trip: Option<(GuardKind, i64, i64)>,
    now: u64,
    close_after: u32,
    out: &mut Vec<Event>,
) -> bool {
    let at = feed.guards.iter().position(|g| g.kind == kind);
    match (trip, at) {
        (Some((_, observed, _)), Some(i)) => {
            let g = &mut feed.guards[i];
            g.observed = observed;
            g.healthy_rounds = 0;
        }
        (Some((_, observed, limit_value)), None) => {
            let guard = OpenGuard {
                kind,
                opened_ms: now,
                observed,
                limit: limit_value,
                healthy_rounds: 0,
            };
            let pos = feed.guards.partition_point(|g| g.kind < kind);
            feed.guards.insert(pos, guard);
            out.push(Event::OracleGuardOpened {
                underlying,
                guard: kind,
                observed,
                limit: limit_value,
            });
        }
        (None, Some(i)) => {
            let g = &mut feed.guards[i];
            g.healthy_rounds += 1;
            if g.healthy_rounds >= close_after {
                let opened_ms = g.opened_ms;
                feed.guards.remove(i);
                out.push(Event::OracleGuardClosed {
                    underlying,
                    guard: kind,
                    opened_ms,
                });
                return true;
            }
        }
        (None, None) => {}
    }
    false
}
