//! Accounts, positions and the cash effects of a trade.
//!
//! A perpetual position keeps a signed `cost` (Σ lots × price × notional per tick-lot at entry), so
//! its unrealized profit at mark is `qty × mark × n − cost`. Closing realizes profit into cash. An
//! option position pays or receives the premium in cash at the trade; its value at mark counts in
//! equity but never in what may be withdrawn.
//!
//! Money is conserved exactly: for every trade, Σ over both sides of (cash − perpetual cost) is
//! unchanged, fees move cash into the fee pool, and funding and settlement move whole per-lot
//! amounts between sides whose lots sum to zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{InstrumentId, Side};
use crate::instrument::Instrument;

/// A position in one instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Signed lots: positive long, negative short.
    pub qty: i64,
    /// Signed entry value in micros (qty × entry price × notional per tick-lot).
    pub cost: i128,
}

/// What an account has resting on one instrument (for margin on open orders).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrders {
    /// Resting buy lots.
    pub buy_qty: i64,
    /// Resting sell lots.
    pub sell_qty: i64,
    /// Σ price × lots of resting buys (reserved premium for options).
    pub buy_ticks_lots: i128,
    /// Number of resting orders.
    pub count: u32,
}

impl OpenOrders {
    /// Adds (`sign` = 1) or removes (`sign` = −1) resting lots.
    pub fn adjust(&mut self, side: Side, price: i64, qty: i64, sign: i64) {
        match side {
            Side::Buy => {
                self.buy_qty += sign * qty;
                self.buy_ticks_lots += i128::from(sign) * i128::from(price) * i128::from(qty);
            }
            Side::Sell => self.sell_qty += sign * qty,
        }
        debug_assert!(
            self.buy_qty >= 0 && self.sell_qty >= 0,
            "open lots must stay non-negative"
        );
    }

    /// True when nothing rests.
    pub fn is_empty(&self) -> bool {
        self.buy_qty == 0 && self.sell_qty == 0
    }
}

/// A trading account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The client's Ed25519 key that signs its transactions.
    pub public_key: [u8; 32],
    /// Highest accepted nonce.
    pub nonce: u64,
    /// Cash collateral in micros (realized profit included). May be negative after a loss the
    /// insurance fund could not cover.
    pub cash: i128,
    /// Open positions (zero positions are removed).
    pub positions: BTreeMap<InstrumentId, Position>,
    /// Resting orders by instrument (empty entries are removed).
    pub open: BTreeMap<InstrumentId, OpenOrders>,
    /// Resting (untriggered) stops, over all instruments.
    pub stops: u32,
    /// Open trading sessions by slot (at most [`crate::session::SESSIONS_MAX`]).
    pub sessions: BTreeMap<u8, crate::session::SessionKey>,
    /// The logon time of the newest session opened: a grant must be newer (no replay).
    pub last_logon_ms: u64,
}

impl Account {
    /// Position in an instrument (zero if none).
    pub fn position(&self, instrument: InstrumentId) -> Position {
        self.positions.get(&instrument).copied().unwrap_or_default()
    }

    /// Records a change of resting orders.
    pub fn adjust_open(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: i64,
        qty: i64,
        sign: i64,
    ) {
        let entry = self.open.entry(instrument).or_default();
        entry.adjust(side, price, qty, sign);
        if sign > 0 {
            entry.count += 1;
        }
        if entry.is_empty() {
            self.open.remove(&instrument);
        }
    }

    /// Records that one resting order left the book entirely (after `adjust_open` removed its lots).
    pub fn order_closed(&mut self, instrument: InstrumentId) {
        if let Some(entry) = self.open.get_mut(&instrument) {
            entry.count = entry.count.saturating_sub(1);
        }
    }

    /// Applies a trade of `dq` signed lots at `price` ticks: moves premium for options, realizes
    /// profit for perpetuals. Returns the realized profit (micros) for perpetuals.
    pub fn apply_trade(&mut self, inst: &Instrument, dq: i64, price: i64) -> i128 {
        let n = inst.notional_per_tick_lot;
        let pos = self.positions.entry(inst.id).or_default();
        let mut realized = 0i128;
        if !inst.is_perpetual() {
            self.cash -= i128::from(dq) * i128::from(price) * n;
            pos.qty += dq;
            pos.cost += i128::from(dq) * i128::from(price) * n;
        } else if pos.qty == 0 || pos.qty.signum() == dq.signum() {
            pos.qty += dq;
            pos.cost += i128::from(dq) * i128::from(price) * n;
        } else {
            let held = i128::from(pos.qty.abs());
            let closed = i128::from(dq.abs()).min(held);
            let cost_removed = pos.cost * closed / held;
            let value = i128::from(pos.qty.signum()) * closed * i128::from(price) * n;
            realized = value - cost_removed;
            self.cash += realized;
            pos.cost -= cost_removed;
            let closed_lots =
                i64::try_from(closed).expect("closed lots are bounded by an i64 position");
            pos.qty -= pos.qty.signum() * closed_lots;
            let rest = dq - dq.signum() * closed_lots;
            if rest != 0 {
                debug_assert_eq!(pos.qty, 0, "a flip must first close the whole position");
                pos.qty = rest;
                pos.cost = i128::from(rest) * i128::from(price) * n;
            }
        }
        if pos.qty == 0 {
            if inst.is_perpetual() {
                debug_assert_eq!(
                    pos.cost, 0,
                    "a closed perpetual position must have no cost left"
                );
            }
            self.positions.remove(&inst.id);
        }
        realized
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::default_listing;

    #[test]
    fn realize_and_flip() {
        let (_, list) = default_listing();
        let perp = &list[0];
        let mut a = Account::default();
        a.apply_trade(perp, 10, 1000);
        assert_eq!(a.position(perp.id).cost, 10 * 1000 * 100);
        let r = a.apply_trade(perp, -4, 1100);
        assert_eq!(r, 4 * 100 * 100);
        assert_eq!(a.position(perp.id).qty, 6);
        a.apply_trade(perp, -10, 900);
        let p = a.position(perp.id);
        assert_eq!(p.qty, -4);
        assert_eq!(p.cost, -4 * 900 * 100);
        assert_eq!(a.cash, 4 * 100 * 100 - 6 * 100 * 100);
        a.apply_trade(perp, 4, 900);
        assert!(a.positions.is_empty());
    }

    #[test]
    fn conservation_of_cash_minus_cost() {
        let (_, list) = default_listing();
        let perp = &list[0];
        let (mut a, mut b) = (Account::default(), Account::default());
        let trades = [
            (7i64, 1000i64),
            (-3, 1200),
            (-9, 800),
            (11, 950),
            (-6, 1001),
        ];
        for (dq, p) in trades {
            a.apply_trade(perp, dq, p);
            b.apply_trade(perp, -dq, p);
            let sum = a.cash - a.position(perp.id).cost + b.cash - b.position(perp.id).cost;
            assert_eq!(sum, 0);
        }
    }
}
