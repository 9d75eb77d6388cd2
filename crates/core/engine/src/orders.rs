//! Client requests: placing, matching, cancelling and amending orders, and withdrawals.
//!
//! Every request is checked completely before anything changes, so a rejected request leaves the
//! state as it was (its nonce aside). Matching is delegated to [`crate::book::Book`]; this module
//! turns what the book did into cash, positions, fees and events.

use crate::book::{BookEvent, Incoming, Resting};
use crate::command::{
    AccountId, ClientCommand, InstrumentId, LimitOrder, OrderId, SelfTradePrevention, Side,
    TimeInForce,
};
use crate::engine::{Engine, State};
use crate::event::{CancelReason, Event, RejectReason};
use crate::instrument::Instrument;
use crate::margin::standing;

/// A validated order ready to match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order {
    pub id: OrderId,
    pub owner: AccountId,
    pub instrument: usize,
    pub side: Side,
    pub limit: i64,
    pub qty: i64,
    pub tif: TimeInForce,
    pub stp: SelfTradePrevention,
    pub band: (i64, i64),
}

fn client_order_id(cmd: &ClientCommand) -> u64 {
    match cmd {
        ClientCommand::Limit(o) => o.client_order_id,
        ClientCommand::Stop(o) => o.client_order_id,
        ClientCommand::Market {
            client_order_id, ..
        } => *client_order_id,
        _ => 0,
    }
}

fn ceil_ppm(value: i128, ppm: u32) -> i128 {
    let x = value.abs() * i128::from(ppm);
    (x + 999_999) / 1_000_000
}

impl Engine {
    /// Executes one client request (under an account's id or a session's).
    pub(crate) fn client(
        &mut self,
        account: AccountId,
        nonce: u64,
        cmd: &ClientCommand,
        out: &mut Vec<Event>,
    ) {
        let result = match account.as_session() {
            Some((owner, slot)) => self.session_client(owner, slot, nonce, cmd, out),
            None => self.own_client(account, nonce, cmd, out),
        };
        if let Err(reason) = result {
            out.push(Event::Rejected {
                account: Some(account.as_session().map_or(account, |(owner, _)| owner)),
                client_order_id: client_order_id(cmd),
                reason,
            });
        }
    }

    /// A request under the account's own id, signed by its registered key.
    fn own_client(
        &mut self,
        account: AccountId,
        nonce: u64,
        cmd: &ClientCommand,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let acct = self
            .state
            .accounts
            .get_mut(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        if nonce != 0 {
            if nonce <= acct.nonce {
                return Err(RejectReason::StaleNonce);
            }
            acct.nonce = nonce;
        }
        match cmd {
            ClientCommand::Withdraw {
                amount,
                destination,
                chain,
            } => self.withdraw(account, *amount, *destination, *chain, out),
            // A session is opened under its own id, with the logon signature.
            ClientCommand::OpenSession(_) => Err(RejectReason::OutsideSessionScope),
            ClientCommand::CloseSession {
                slot,
                cancel_placed,
            } => self.revoke_session(account, *slot, *cancel_placed, out),
            trade => self.trade(account, trade, out),
        }
    }

    /// Orders, stops, cancels, amends and mass cancels: what an account and its sessions may
    /// both do.
    pub(crate) fn trade(
        &mut self,
        account: AccountId,
        cmd: &ClientCommand,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        match cmd {
            ClientCommand::Limit(o) => self.place(account, o, false, None, out),
            ClientCommand::Stop(o) => self.place_stop(account, o, out),
            ClientCommand::Market {
                instrument,
                side,
                qty,
                reduce_only,
                client_order_id,
            } => {
                let o = LimitOrder {
                    instrument: *instrument,
                    side: *side,
                    price: 0,
                    qty: *qty,
                    tif: TimeInForce::Ioc,
                    post_only: false,
                    reduce_only: *reduce_only,
                    stp: SelfTradePrevention::default(),
                    client_order_id: *client_order_id,
                };
                self.place(account, &o, true, None, out)
            }
            ClientCommand::Cancel {
                instrument,
                order_id,
            } => self.cancel(account, *instrument, *order_id, out),
            ClientCommand::Amend {
                instrument,
                order_id,
                price,
                qty,
                expect_qty,
            } => self.amend(
                account,
                *instrument,
                *order_id,
                (*price, *qty),
                *expect_qty,
                out,
            ),
            ClientCommand::MassCancel { instrument } => {
                self.cancel_all(account, *instrument, CancelReason::MassCancel, out);
                Ok(())
            }
            ClientCommand::Withdraw { .. }
            | ClientCommand::OpenSession(_)
            | ClientCommand::CloseSession { .. } => Err(RejectReason::OutsideSessionScope),
            // Only a session has a silence to bound.
            ClientCommand::SessionHeartbeat { .. } => Err(RejectReason::BadHeartbeat),
        }
    }

    /// The price band around the mark: fills happen only inside it.
    pub(crate) fn band(&self, instrument: usize) -> Option<(i64, i64)> {
        let inst = &self.config.instruments[instrument];
        let mark = self.state.marks[instrument]?;
        let width = (i128::from(mark) * i128::from(inst.band_bps) / 10_000)
            .max(i128::from(inst.band_ticks_min));
        let width = i64::try_from(width).expect("a band is a fraction of an i64 mark");
        Some((
            mark.saturating_sub(width).max(1),
            mark.saturating_add(width),
        ))
    }

    fn open_instrument(&self, instrument: InstrumentId) -> Result<usize, RejectReason> {
        let i = instrument.0 as usize;
        if i >= self.config.instruments.len() {
            return Err(RejectReason::UnknownInstrument);
        }
        if self.state.markets[i].closed {
            return Err(RejectReason::InstrumentClosed);
        }
        Ok(i)
    }

    /// Checks and places an order. `id` is `None` for a new order (numbered here) and the stop's
    /// id for a triggered stop.
    pub(crate) fn place(
        &mut self,
        account: AccountId,
        o: &LimitOrder,
        market: bool,
        id: Option<OrderId>,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let i = self.open_instrument(o.instrument)?;
        let inst = &self.config.instruments[i];
        if o.qty <= 0 || o.qty > inst.order_lots_max {
            return Err(RejectReason::InvalidSize);
        }
        if !o.reduce_only && self.guarded(usize::from(inst.underlying)) {
            return Err(RejectReason::OracleGuardOpen);
        }
        let band = self.band(i).ok_or(RejectReason::NoMarkPrice)?;
        let price = if market {
            match o.side {
                Side::Buy => band.1,
                Side::Sell => band.0,
            }
        } else {
            if o.price <= 0 {
                return Err(RejectReason::InvalidPrice);
            }
            if o.price < band.0 || o.price > band.1 {
                return Err(RejectReason::OutsideBand);
            }
            o.price
        };
        let acct = &self.state.accounts[&account];
        let mut qty = o.qty;
        let mut tif = o.tif;
        if o.reduce_only {
            let pos = acct.position(o.instrument).qty;
            if pos == 0 || pos.signum() == o.side.sign() {
                return Err(RejectReason::ReduceOnlyWouldIncrease);
            }
            qty = qty.min(pos.abs());
            // A reduce-only remainder never rests, so it can never come to increase a position.
            if tif == TimeInForce::Gtc {
                tif = TimeInForce::Ioc;
            }
        }
        let resting = acct.open.get(&o.instrument).map_or(0, |e| e.count);
        if tif == TimeInForce::Gtc && resting >= self.config.orders_per_account_max {
            return Err(RejectReason::TooManyOrders);
        }
        if !o.reduce_only {
            let view = self.view();
            let before = standing(acct, view, true, None).map_err(|_| RejectReason::NoMarkPrice)?;
            let after = standing(acct, view, true, Some((i, o.side.sign() * qty, price)))
                .map_err(|_| RejectReason::NoMarkPrice)?;
            if after.initial > before.initial && after.equity < after.initial {
                return Err(RejectReason::InsufficientMargin);
            }
        }
        let book = &self.state.markets[i].book;
        if o.post_only && book.would_cross(o.side, price) {
            return Err(RejectReason::PostOnlyWouldTrade);
        }
        let order = Order {
            id: id.unwrap_or(OrderId(self.state.next_order_id)),
            owner: account,
            instrument: i,
            side: o.side,
            limit: price,
            qty,
            tif,
            stp: o.stp,
            band,
        };
        if tif == TimeInForce::Fok && book.fillable(&order.incoming()) < qty {
            return Err(RejectReason::FillOrKillUnfilled);
        }
        if id.is_none() {
            self.state.next_order_id += 1;
        }
        out.push(Event::Accepted {
            order_id: order.id,
            account,
            instrument: o.instrument,
            client_order_id: o.client_order_id,
            side: o.side,
            price,
            qty,
        });
        self.run_order(order, out);
        Ok(())
    }

    /// Matches an accepted order, settles its fills, and rests or drops the remainder.
    /// Returns the lots filled.
    pub(crate) fn run_order(&mut self, order: Order, out: &mut Vec<Event>) -> i64 {
        let mut events = std::mem::take(&mut self.scratch);
        events.clear();
        let inc = order.incoming();
        let outcome = self.state.markets[order.instrument]
            .book
            .match_incoming(&inc, &mut events);
        let inst = &self.config.instruments[order.instrument];
        for ev in &events {
            match *ev {
                BookEvent::Fill { maker, qty } => {
                    settle_fill(&mut self.state, inst, &maker, &order, qty, out);
                }
                BookEvent::Removed { maker, self_trade } => {
                    let reason = if self_trade {
                        CancelReason::SelfTrade
                    } else {
                        CancelReason::OutsideBand
                    };
                    dropped(&mut self.state, inst.id, &maker, reason, out);
                }
            }
        }
        self.scratch = events;
        let remaining = order.qty - outcome.filled;
        if remaining > 0 {
            if order.tif == TimeInForce::Gtc && !outcome.incoming_cancelled {
                self.state.markets[order.instrument].book.insert(Resting {
                    id: order.id,
                    owner: order.owner,
                    side: order.side,
                    price: order.limit,
                    qty: remaining,
                    reduce_only: false,
                    session: self.acting_session,
                });
                self.state.holder_mut(order.owner).adjust_open(
                    inst.id,
                    order.side,
                    order.limit,
                    remaining,
                    1,
                );
            } else {
                out.push(Event::Cancelled {
                    order_id: order.id,
                    account: order.owner,
                    instrument: inst.id,
                    remaining,
                    reason: if outcome.incoming_cancelled {
                        CancelReason::SelfTrade
                    } else {
                        CancelReason::ImmediateRemainder
                    },
                });
            }
        }
        outcome.filled
    }

    fn owned_order(
        &self,
        account: AccountId,
        instrument: InstrumentId,
        id: OrderId,
    ) -> Result<Resting, RejectReason> {
        let i = instrument.0 as usize;
        let book = &self
            .state
            .markets
            .get(i)
            .ok_or(RejectReason::UnknownInstrument)?
            .book;
        match book.order(id) {
            Some(r) if r.owner == account => Ok(r),
            _ => Err(RejectReason::UnknownOrder),
        }
    }

    fn cancel(
        &mut self,
        account: AccountId,
        instrument: InstrumentId,
        id: OrderId,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let r = match self.owned_order(account, instrument, id) {
            Err(RejectReason::UnknownOrder) if self.cancel_stop(account, instrument, id, out) => {
                return Ok(());
            }
            other => other?,
        };
        self.state.markets[instrument.0 as usize].book.cancel(id);
        dropped(
            &mut self.state,
            instrument,
            &r,
            CancelReason::Requested,
            out,
        );
        Ok(())
    }

    /// Cancels every resting order of `account` (on one instrument or all), then its stops there.
    pub(crate) fn cancel_all(
        &mut self,
        account: AccountId,
        instrument: Option<InstrumentId>,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        self.cancel_placed_by(account, instrument, None, reason, out);
    }

    /// [`Engine::cancel_all`], only of what `session` placed when given
    /// ([`crate::book::Resting::session`]).
    pub(crate) fn cancel_placed_by(
        &mut self,
        account: AccountId,
        instrument: Option<InstrumentId>,
        session: Option<u64>,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        let Some(acct) = self.state.holder(account) else {
            return;
        };
        let ids: Vec<InstrumentId> = acct
            .open
            .keys()
            .copied()
            .filter(|i| instrument.is_none_or(|x| x == *i))
            .collect();
        for inst in ids {
            let book = &mut self.state.markets[inst.0 as usize].book;
            let mut mine = book.orders_of(account);
            mine.retain(|r| session.is_none_or(|s| s == r.session));
            for r in &mine {
                book.cancel(r.id);
            }
            for r in &mine {
                dropped(&mut self.state, inst, r, reason, out);
            }
        }
        self.cancel_stops_of(account, instrument, session, reason, out);
    }

    fn amend(
        &mut self,
        account: AccountId,
        instrument: InstrumentId,
        id: OrderId,
        (price, qty): (i64, i64),
        expect_qty: Option<i64>,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let i = self.open_instrument(instrument)?;
        let old = self.owned_order(account, instrument, id)?;
        if expect_qty.is_some_and(|expected| expected != old.qty) {
            return Err(RejectReason::AmendStale);
        }
        let inst = &self.config.instruments[i];
        if qty <= 0 || qty > inst.order_lots_max {
            return Err(RejectReason::InvalidSize);
        }
        if price <= 0 {
            return Err(RejectReason::InvalidPrice);
        }
        let band = self.band(i).ok_or(RejectReason::NoMarkPrice)?;
        if price < band.0 || price > band.1 {
            return Err(RejectReason::OutsideBand);
        }
        let shrink_only = price == old.price && qty <= old.qty;
        if !shrink_only && self.guarded(usize::from(inst.underlying)) {
            return Err(RejectReason::OracleGuardOpen);
        }
        if shrink_only {
            if qty < old.qty {
                self.state.markets[i].book.reduce(id, qty);
                self.state.holder_mut(account).adjust_open(
                    instrument,
                    old.side,
                    price,
                    old.qty - qty,
                    -1,
                );
            }
            out.push(Event::Amended {
                order_id: id,
                price,
                qty,
                kept_priority: true,
            });
            return Ok(());
        }
        let acct = &self.state.accounts[&account];
        let mut without = acct.clone();
        without.adjust_open(instrument, old.side, old.price, old.qty, -1);
        let view = self.view();
        let before = standing(acct, view, true, None).map_err(|_| RejectReason::NoMarkPrice)?;
        let after = standing(
            &without,
            view,
            true,
            Some((i, old.side.sign() * qty, price)),
        )
        .map_err(|_| RejectReason::NoMarkPrice)?;
        if after.initial > before.initial && after.equity < after.initial {
            return Err(RejectReason::InsufficientMargin);
        }
        self.state.markets[i].book.cancel(id);
        let acct = self.state.holder_mut(account);
        acct.adjust_open(instrument, old.side, old.price, old.qty, -1);
        acct.order_closed(instrument);
        out.push(Event::Amended {
            order_id: id,
            price,
            qty,
            kept_priority: false,
        });
        let order = Order {
            id,
            owner: account,
            instrument: i,
            side: old.side,
            limit: price,
            qty,
            tif: TimeInForce::Gtc,
            stp: SelfTradePrevention::default(),
            band,
        };
        // The order stays the placing session's, whoever amends it.
        let acting = std::mem::replace(&mut self.acting_session, old.session);
        self.run_order(order, out);
        self.acting_session = acting;
        Ok(())
    }

    fn withdraw(
        &mut self,
        account: AccountId,
        amount: i64,
        destination: [u8; 32],
        chain: crate::command::PayoutChain,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        if amount <= 0 {
            return Err(RejectReason::InvalidAmount);
        }
        if !chain.valid_destination(&destination) {
            return Err(RejectReason::InvalidDestination);
        }
        // Below this a payout is dust on the chain (and every withdrawal costs the vault a
        // signing round and a ledger record).
        if amount < crate::command::WITHDRAWAL_MIN_MICROS {
            return Err(RejectReason::InvalidAmount);
        }
        let amount = i128::from(amount);
        let acct = &self.state.accounts[&account];
        if self.holds_guarded(acct) {
            return Err(RejectReason::OracleGuardOpen);
        }
        let st = standing(acct, self.view(), true, None).map_err(|_| RejectReason::NoMarkPrice)?;
        if st.withdrawable() < amount {
            return Err(RejectReason::InsufficientFunds);
        }
        self.state.holder_mut(account).cash -= amount;
        self.state.net_deposits -= amount;
        let withdrawal_id = self.state.next_withdrawal_id;
        self.state.next_withdrawal_id += 1;
        self.state.withdrawals.insert(
            withdrawal_id,
            crate::engine::Withdrawal {
                account,
                chain,
                destination,
                amount: u64::try_from(amount).expect("checked positive and from an i64"),
                requested_ms: self.state.time_ms,
                proposer: self.proposer,
            },
        );
        out.push(Event::WithdrawalRequested {
            withdrawal_id,
            account,
            amount,
            destination,
            chain,
        });
        Ok(())
    }
}

impl Order {
    pub(crate) fn incoming(&self) -> Incoming {
        Incoming {
            id: self.id,
            owner: self.owner,
            side: self.side,
            limit: self.limit,
            qty: self.qty,
            stp: self.stp,
            band_low: self.band.0,
            band_high: self.band.1,
        }
    }
}

/// Books one fill: positions, cash, fees, the maker's open orders, and the event.
fn settle_fill(
    state: &mut State,
    inst: &Instrument,
    maker: &Resting,
    taker: &Order,
    qty: i64,
    out: &mut Vec<Event>,
) {
    assert!(
        (taker.band.0..=taker.band.1).contains(&maker.price),
        "fills must stay inside the band around the mark (invariant 2)"
    );
    let value = i128::from(maker.price) * i128::from(qty) * inst.notional_per_tick_lot;
    let maker_fee = ceil_ppm(value, inst.maker_fee_ppm);
    let taker_fee = ceil_ppm(value, inst.taker_fee_ppm);
    let dq = maker.side.sign() * qty;
    let m = state.holder_mut(maker.owner);
    m.apply_trade(inst, dq, maker.price);
    m.cash -= maker_fee;
    m.adjust_open(inst.id, maker.side, maker.price, qty, -1);
    if qty == maker.qty {
        m.order_closed(inst.id);
    }
    let t = state.holder_mut(taker.owner);
    t.apply_trade(inst, -dq, maker.price);
    t.cash -= taker_fee;
    state.fee_pool += maker_fee + taker_fee;
    state.touched.push(maker.owner);
    state.touched.push(taker.owner);
    out.push(Event::Fill {
        instrument: inst.id,
        maker_order: maker.id,
        taker_order: taker.id,
        maker: maker.owner,
        taker: taker.owner,
        taker_side: taker.side,
        price: maker.price,
        qty,
        maker_fee,
        taker_fee,
    });
}

/// Books a resting order that left the book without trading.
pub(crate) fn dropped(
    state: &mut State,
    instrument: InstrumentId,
    r: &Resting,
    reason: CancelReason,
    out: &mut Vec<Event>,
) {
    let acct = state.holder_mut(r.owner);
    acct.adjust_open(instrument, r.side, r.price, r.qty, -1);
    acct.order_closed(instrument);
    out.push(Event::Cancelled {
        order_id: r.id,
        account: r.owner,
        instrument,
        remaining: r.qty,
        reason,
    });
}
