//! Stop orders: held off the book until the mark crosses their trigger, then placed as ordinary
//! orders.
//!
//! # Rules
//!
//! - **Which price.** A stop triggers on its instrument's *mark* price in ticks — the price margin,
//!   liquidation and the price band are measured at — never on the last trade, so a thin or
//!   manipulated book cannot fire stops by itself. [`StopDirection::Rises`] triggers at
//!   `mark ≥ trigger_price`, [`StopDirection::Falls`] at `mark ≤ trigger_price`. A stop whose
//!   condition already holds when it is placed triggers at the end of that batch.
//! - **When and in what order.** Stops are evaluated once per batch, at the end, right after the
//!   marks are updated and before funding and liquidation (so a protective stop acts before the
//!   account is checked against maintenance). Every stop triggered in a batch triggers at the same
//!   engine time; they are placed in id order, which is placement order ([`OrderId`]s come from the
//!   same sequence as ordinary orders). Marks do not move while they are placed, so the set that
//!   triggers does not depend on what the earlier ones did.
//! - **What they become.** A triggered stop is placed through the ordinary order path, keeping its
//!   id: a stop-market becomes a market order (immediate-or-cancel at the band's edge), a
//!   stop-limit a good-till-cancelled limit order. Every check applies at that moment: price band,
//!   initial margin, reduce-only against the position then held, resting-order cap. A refusal ends
//!   the stop with [`Event::StopRejected`] and changes nothing else.
//! - **Oracle guards.** While any oracle guard is open on the instrument's underlying, its stops are
//!   not triggered: a stop whose condition holds emits [`Event::StopHeld`] (once, naming the
//!   guard) and keeps resting; once every guard has closed it triggers by the rules above if its
//!   condition still holds. Placing a stop that is not reduce-only is refused with
//!   [`RejectReason::OracleGuardOpen`] while a guard is open, like any new risk-increasing order;
//!   cancels always go through.
//! - **Cancelling.** [`crate::ClientCommand::Cancel`] with the stop's id removes it, and mass
//!   cancel removes an account's stops with its orders. Liquidation removes the liquidated
//!   account's stops; expiry removes an option's stops.
//! - **Bounded.** An account holds at most [`crate::EngineConfig::stops_per_account_max`] resting
//!   stops over all instruments ([`RejectReason::TooManyStops`] beyond it).

use serde::{Deserialize, Serialize};

use crate::command::{
    AccountId, InstrumentId, LimitOrder, OrderId, SelfTradePrevention, StopDirection, StopOrder,
    TimeInForce,
};
use crate::engine::Engine;
use crate::event::{CancelReason, Event, RejectReason};
use crate::oracle::GuardKind;

/// A resting stop (part of the state root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    /// Whose.
    pub owner: AccountId,
    /// What was asked for.
    pub order: StopOrder,
    /// When it was placed, engine milliseconds.
    pub placed_ms: u64,
    /// `Some(guard)` while its condition holds but an oracle guard keeps it from triggering.
    pub held_by: Option<GuardKind>,
    /// The trading session that placed it (its logon time), 0 for the account itself; the
    /// order it triggers carries it on.
    pub session: u64,
}

impl StopOrder {
    /// Whether a mark of `mark` ticks satisfies the trigger.
    pub fn crossed(&self, mark: i64) -> bool {
        match self.direction {
            StopDirection::Rises => mark >= self.trigger_price,
            StopDirection::Falls => mark <= self.trigger_price,
        }
    }
}

impl Engine {
    /// Accepts a stop order: checks it completely, numbers it, and rests it.
    pub(crate) fn place_stop(
        &mut self,
        account: AccountId,
        o: &StopOrder,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let i = o.instrument.0 as usize;
        let inst = self
            .config
            .instruments
            .get(i)
            .ok_or(RejectReason::UnknownInstrument)?;
        if self.state.markets[i].closed {
            return Err(RejectReason::InstrumentClosed);
        }
        if o.qty <= 0 || o.qty > inst.order_lots_max {
            return Err(RejectReason::InvalidSize);
        }
        if o.trigger_price <= 0 || o.limit_price.is_some_and(|p| p <= 0) {
            return Err(RejectReason::InvalidPrice);
        }
        if !o.reduce_only && self.guarded(usize::from(inst.underlying)) {
            return Err(RejectReason::OracleGuardOpen);
        }
        let acct = self
            .state
            .accounts
            .get_mut(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        if acct.stops >= self.config.stops_per_account_max {
            return Err(RejectReason::TooManyStops);
        }
        acct.stops += 1;
        let id = OrderId(self.state.next_order_id);
        self.state.next_order_id += 1;
        self.state.stops.insert(
            id,
            Stop {
                owner: account,
                order: o.clone(),
                placed_ms: self.state.time_ms,
                held_by: None,
                session: self.acting_session,
            },
        );
        out.push(Event::StopPlaced {
            order_id: id,
            account,
            instrument: o.instrument,
            client_order_id: o.client_order_id,
            side: o.side,
            direction: o.direction,
            trigger_price: o.trigger_price,
            limit_price: o.limit_price,
            qty: o.qty,
            reduce_only: o.reduce_only,
        });
        Ok(())
    }

    /// Cancels `account`'s stop `id` on `instrument`; `false` when it has no such stop.
    pub(crate) fn cancel_stop(
        &mut self,
        account: AccountId,
        instrument: InstrumentId,
        id: OrderId,
        out: &mut Vec<Event>,
    ) -> bool {
        let mine = self
            .state
            .stops
            .get(&id)
            .is_some_and(|s| s.owner == account && s.order.instrument == instrument);
        if mine {
            self.remove_stop(id, Some(CancelReason::Requested), out);
        }
        mine
    }

    /// Cancels every stop of `account` (on one instrument or all), in id order.
    pub(crate) fn cancel_stops_of(
        &mut self,
        account: AccountId,
        instrument: Option<InstrumentId>,
        session: Option<u64>,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        if self.state.holder(account).is_none_or(|a| a.stops == 0) {
            return;
        }
        let ids: Vec<OrderId> = self
            .state
            .stops
            .iter()
            .filter(|(_, s)| {
                s.owner == account
                    && instrument.is_none_or(|i| i == s.order.instrument)
                    && session.is_none_or(|x| x == s.session)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove_stop(id, Some(reason), out);
        }
    }

    /// Cancels every stop on `instrument` (at its expiry), in id order.
    pub(crate) fn cancel_stops_on(
        &mut self,
        instrument: InstrumentId,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        let ids: Vec<OrderId> = self
            .state
            .stops
            .iter()
            .filter(|(_, s)| s.order.instrument == instrument)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove_stop(id, Some(reason), out);
        }
    }

    /// Removes a resting stop, emitting [`Event::StopCancelled`] when `reason` is given.
    fn remove_stop(
        &mut self,
        id: OrderId,
        reason: Option<CancelReason>,
        out: &mut Vec<Event>,
    ) -> Stop {
        let stop = self
            .state
            .stops
            .remove(&id)
            .expect("a stop named by the engine must rest");
        let acct = self.state.holder_mut(stop.owner);
        acct.stops = acct
            .stops
            .checked_sub(1)
            .expect("an account's stop count must cover its resting stops");
        if let Some(reason) = reason {
            out.push(Event::StopCancelled {
                order_id: id,
                account: stop.owner,
                instrument: stop.order.instrument,
                reason,
            });
        }
        stop
    }

    /// Evaluates every resting stop against its instrument's mark (end of batch, after marks),
    /// holding those on a guarded underlying and placing the triggered ones in id order.
    pub(crate) fn trigger_stops(&mut self, out: &mut Vec<Event>) {
        if self.state.stops.is_empty() {
            return;
        }
        let mut fired: Vec<(OrderId, i64)> = Vec::new();
        let state = &mut self.state;
        for (id, stop) in state.stops.iter_mut() {
            let i = stop.order.instrument.0 as usize;
            let Some(mark) = state.marks[i] else {
                continue;
            };
            let crossed = stop.order.crossed(mark);
            let u = usize::from(self.config.instruments[i].underlying);
            let guard = state.oracle.feeds[u].guards.first().map(|g| g.kind);
            match (crossed, guard) {
                (false, _) => stop.held_by = None,
                (true, None) => fired.push((*id, mark)),
                (true, Some(kind)) => {
                    if stop.held_by.is_none() {
                        out.push(Event::StopHeld {
                            order_id: *id,
                            instrument: stop.order.instrument,
                            guard: kind,
                            mark,
                        });
                    }
                    stop.held_by = Some(kind);
                }
            }
        }
        for (id, mark) in fired {
            let stop = self.remove_stop(id, None, out);
            let o = &stop.order;
            out.push(Event::StopTriggered {
                order_id: id,
                account: stop.owner,
                instrument: o.instrument,
                mark,
                trigger_price: o.trigger_price,
            });
            let market = o.limit_price.is_none();
            let order = LimitOrder {
                instrument: o.instrument,
                side: o.side,
                price: o.limit_price.unwrap_or(0),
                qty: o.qty,
                tif: if market {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Gtc
                },
                post_only: false,
                reduce_only: o.reduce_only,
                stp: SelfTradePrevention::default(),
                client_order_id: o.client_order_id,
            };
            self.acting_session = stop.session;
            let placed = self.place(stop.owner, &order, market, Some(id), out);
            self.acting_session = 0;
            if let Err(reason) = placed {
                out.push(Event::StopRejected {
                    order_id: id,
                    account: stop.owner,
                    instrument: o.instrument,
                    client_order_id: o.client_order_id,
                    reason,
                });
            }
        }
    }

    /// A resting stop, if `id` names one.
    pub fn stop(&self, id: OrderId) -> Option<&Stop> {
        self.state.stops.get(&id)
    }

    /// Every resting stop, in id (evaluation) order.
    pub fn stops(&self) -> impl Iterator<Item = (&OrderId, &Stop)> {
        self.state.stops.iter()
    }
}
