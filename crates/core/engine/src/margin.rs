//! Cross margin: one account's equity and its initial and maintenance requirements at mark.
//!
//! - Perpetuals: the initial rate comes from the tier that the position's notional falls in;
//!   maintenance is half the initial rate (half the initial margin at that tier's maximum
//!   leverage). With open orders, the exposure is the larger of the position plus all resting buys
//!   and the position minus all resting sells.
//! - Options: a long pays its premium up front and needs no margin; resting buys reserve their
//!   premium. A short needs, per unit of underlying, `max(15 % × S − OTM, 10 % × S) + mark` initial
//!   and `max(7.5 % × S − OTM, 5 % × S) + mark` maintenance, where `S` is the index and `OTM` the
//!   amount by which the option is out of the money.
//! - Equity = cash + perpetual unrealized profit + option value at mark (negative for shorts).

use crate::account::Account;
use crate::instrument::{Instrument, InstrumentKind, OptionRight};

const BPS: i128 = 10_000;
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// What margin needs from the market: instruments, marks and index prices.
#[derive(Debug, Clone, Copy)]
pub struct MarketView<'a> {
    /// The listing.
    pub instruments: &'a [Instrument],
    /// Mark price per instrument in ticks, once known.
    pub marks: &'a [Option<i64>],
    /// Index price per underlying in micros, once known.
    pub index: &'a [Option<i64>],
}

/// An account's standing at mark, all in micros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Cash plus unrealized profit plus option value.
    pub equity: i128,
    /// The unrealized part of equity (perpetual profit and option value).
    pub unrealized: i128,
    /// Initial requirement.
    pub initial: i128,
    /// Maintenance requirement.
    pub maintenance: i128,
}

impl Standing {
    /// What may be withdrawn: cash, less unrealized losses, less the initial requirement.
    /// Unrealized profit never counts.
    pub fn withdrawable(&self) -> i128 {
        let cash = self.equity - self.unrealized;
        cash + self.unrealized.min(0) - self.initial
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    debug_assert!(b > 0, "divisor must be positive");
    -((-a).div_euclid(b))
}

fn tier_bps(inst: &Instrument, notional: i128) -> i128 {
    match &inst.kind {
        InstrumentKind::Perpetual { tiers, .. } => tiers
            .iter()
            .find(|t| notional <= t.notional_max_micros)
            .or(tiers.last())
            .map_or(BPS, |t| i128::from(t.initial_bps)),
        InstrumentKind::Option { .. } => BPS,
    }
}

/// Initial and maintenance per lot of a short option, micros.
fn short_option_per_lot(inst: &Instrument, spot: i64, mark_ticks: i64) -> (i128, i128) {
    let InstrumentKind::Option {
        right,
        strike_micros,
        ..
    } = inst.kind
    else {
        return (0, 0);
    };
    let s = i128::from(spot);
    let k = i128::from(strike_micros);
    let otm = match right {
        OptionRight::Call => (k - s).max(0),
        OptionRight::Put => (s - k).max(0),
    };
    let mark = i128::from(mark_ticks) * i128::from(inst.tick_size_micros);
    let im_unit = (s * 1_500 / BPS - otm).max(s * 1_000 / BPS) + mark;
    let mm_unit = (s * 750 / BPS - otm).max(s * 500 / BPS) + mark;
    let lot = i128::from(inst.lot_size_nanos);
    (
        ceil_div(im_unit * lot, NANOS_PER_UNIT),
        ceil_div(mm_unit * lot, NANOS_PER_UNIT),
    )
}

/// Why a standing could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMark;

/// Computes an account's standing. With `with_orders`, resting orders count toward the initial
/// requirement as if they filled (worst side for perpetuals). `extra` adds one hypothetical
/// resting order `(instrument index, signed lots, price ticks)`.
pub fn standing(
    acct: &Account,
    view: MarketView<'_>,
    with_orders: bool,
    extra: Option<(usize, i64, i64)>,
) -> Result<Standing, NoMark> {
    let mut st = Standing {
        equity: acct.cash,
        ..Standing::default()
    };
    // Instruments with a position or resting orders, in id order, visited once each.
    let mut ids: Vec<usize> = acct.positions.keys().map(|i| i.0 as usize).collect();
    if with_orders {
        ids.extend(acct.open.keys().map(|i| i.0 as usize));
    }
    if let Some((i, _, _)) = extra {
        ids.push(i);
    }
    ids.sort_unstable();
    ids.dedup();
    for i in ids {
        let inst = view.instruments.get(i).ok_or(NoMark)?;
        let mark = view.marks.get(i).copied().flatten().ok_or(NoMark)?;
        let pos = acct.position(inst.id);
        let mut open = if with_orders {
            acct.open.get(&inst.id).copied().unwrap_or_default()
        } else {
            Default::default()
        };
        if let Some((j, dq, price)) = extra {
            if j == i {
                let side = if dq > 0 {
                    crate::command::Side::Buy
                } else {
                    crate::command::Side::Sell
                };
                open.adjust(side, price, dq.abs(), 1);
            }
        }
        let n = inst.notional_per_tick_lot;
        let value = i128::from(pos.qty) * i128::from(mark) * n;
        match inst.kind {
            InstrumentKind::Perpetual { .. } => {
                let upnl = value - pos.cost;
                st.equity += upnl;
                st.unrealized += upnl;
                let exposure = (i128::from(pos.qty) + i128::from(open.buy_qty))
                    .abs()
                    .max((i128::from(pos.qty) - i128::from(open.sell_qty)).abs());
                let notional = exposure * i128::from(mark) * n;
                st.initial += ceil_div(notional * tier_bps(inst, notional), BPS);
                let held = i128::from(pos.qty).abs() * i128::from(mark) * n;
                st.maintenance += ceil_div(held * tier_bps(inst, held), 2 * BPS);
            }
            InstrumentKind::Option { .. } => {
                st.equity += value;
                st.unrealized += value;
                let spot = view
                    .index
                    .get(usize::from(inst.underlying))
                    .copied()
                    .flatten()
                    .ok_or(NoMark)?;
                let (im_lot, mm_lot) = short_option_per_lot(inst, spot, mark);
                let short_now = i128::from((-pos.qty).max(0));
                let short_worst = i128::from((open.sell_qty - pos.qty).max(0));
                st.initial += short_worst * im_lot + open.buy_ticks_lots * n;
                st.maintenance += short_now * mm_lot;
            }
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::default_listing;

    #[test]
    fn perp_tiers_and_half_maintenance() {
        let (_, list) = default_listing();
        let mut marks = vec![None; list.len()];
        marks[0] = Some(600_000); // 60 000 USD
        let index = [Some(60_000_000_000), Some(3_000_000_000)];
        let view = MarketView {
            instruments: &list,
            marks: &marks,
            index: &index,
        };
        let mut a = Account {
            cash: 10_000_000_000,
            ..Default::default()
        };
        a.apply_trade(&list[0], 1_000, 600_000); // 1 BTC
        let st = standing(&a, view, false, None).expect("marks are set");
        assert_eq!(st.equity, 10_000_000_000);
        assert_eq!(st.initial, 60_000_000_000 * 200 / 10_000);
        assert_eq!(st.maintenance, st.initial / 2);
        assert_eq!(st.withdrawable(), 10_000_000_000 - st.initial);
    }

    #[test]
    fn unrealized_profit_is_not_withdrawable() {
        let (_, list) = default_listing();
        let mut marks = vec![None; list.len()];
        marks[0] = Some(660_000);
        let index = [Some(66_000_000_000), None];
        let view = MarketView {
            instruments: &list,
            marks: &marks,
            index: &index,
        };
        let mut a = Account {
            cash: 1_000_000_000,
            ..Default::default()
        };
        a.apply_trade(&list[0], 1_000, 600_000);
        let st = standing(&a, view, false, None).expect("marks are set");
        assert_eq!(st.unrealized, 6_000_000_000);
        assert_eq!(st.withdrawable(), 1_000_000_000 - st.initial);
    }

    #[test]
    fn short_option_margin_follows_the_formula() {
        let (_, list) = default_listing();
        let call = &list[2]; // 55 000 call, 7 days
        let mut marks = vec![None; list.len()];
        marks[2] = Some(5_500); // 5 500 USD premium
        let index = [Some(60_000_000_000), None];
        let view = MarketView {
            instruments: &list,
            marks: &marks,
            index: &index,
        };
        let mut a = Account::default();
        a.apply_trade(call, -100, 5_500); // short 1 BTC of calls
        let st = standing(&a, view, false, None).expect("marks are set");
        // ITM call: max(0.15 × 60 000 − 0, 6 000) + 5 500 = 14 500 USD per BTC.
        assert_eq!(st.initial, 14_500_000_000);
        assert_eq!(st.maintenance, (4_500 + 5_500) * 1_000_000);
        assert_eq!(st.equity, 5_500_000_000 - 5_500_000_000);
    }
}
