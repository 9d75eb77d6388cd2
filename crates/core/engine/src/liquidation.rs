//! Liquidation, the insurance fund, and auto-deleveraging.
//!
//! At the end of every batch, each account whose equity at mark is below its maintenance
//! requirement is liquidated, in account-id order:
//! 1. its resting orders are cancelled;
//! 2. position by position (instrument-id order), immediate-or-cancel orders of
//!    `liquidation_step_bps` of the position, limited to mark ± `liquidation_band_bps`, trade on the
//!    book; after each step the account is re-checked and liquidation stops once it is back at or
//!    above maintenance;
//! 3. what the book cannot absorb is taken over whole: by the insurance fund at the bankruptcy
//!    price (the mark when equity is still positive) if the fund's equity stays non-negative, else
//!    by auto-deleveraging opposite positions ranked by profit × leverage at the same price;
//! 4. a negative cash balance left with no positions is covered by the fund's cash as far as it
//!    goes.
//!
//! Every step emits an [`Event::Liquidation`] naming the equity and maintenance that caused it.
//! The fund trades as [`INSURANCE_FUND`] and unwinds the positions it holds through the book, one
//! immediate-or-cancel attempt per batch.

use crate::command::{AccountId, InstrumentId, SelfTradePrevention, Side, TimeInForce};
use crate::engine::{Engine, INSURANCE_FUND};
use crate::event::{CancelReason, Event, LiquidationVia};
use crate::margin::{standing, Standing};
use crate::orders::Order;

impl Engine {
    /// Liquidates every account below maintenance. When no mark moved in this batch, only the
    /// accounts whose cash or positions changed can have fallen below maintenance, so only those
    /// are checked; otherwise every account with a position is.
    pub(crate) fn liquidate(&mut self, out: &mut Vec<Event>) {
        // Whatever liquidation itself touches is collected afresh for the next batch's check.
        let mut touched = std::mem::take(&mut self.state.touched);
        let view = self.view();
        touched.sort_unstable();
        touched.dedup();
        let accounts = &self.state.accounts;
        let scope: Box<dyn Iterator<Item = (&AccountId, &crate::account::Account)>> =
            if self.state.marks_moved {
                Box::new(accounts.iter())
            } else {
                Box::new(touched.iter().filter_map(|id| accounts.get_key_value(id)))
            };
        let candidates: Vec<AccountId> = scope
            .filter(|(_, a)| !a.positions.is_empty())
            // An open oracle guard pauses liquidation of anyone exposed to that underlying.
            .filter(|(_, a)| !self.holds_guarded(a))
            .filter(|(_, a)| standing(a, view, false, None).is_ok_and(|s| s.equity < s.maintenance))
            .map(|(id, _)| *id)
            .collect();
        for id in candidates {
            self.liquidate_account(id, out);
        }
    }

    fn standing_of(&self, id: AccountId) -> Option<Standing> {
        let acct = self.state.holder(id)?;
        standing(acct, self.view(), false, None).ok()
    }

    fn liquidate_account(&mut self, id: AccountId, out: &mut Vec<Event>) {
        self.cancel_all(id, None, CancelReason::Liquidation, out);
        let positions: Vec<(InstrumentId, i64)> = self.state.accounts[&id]
            .positions
            .iter()
            .map(|(k, p)| (*k, p.qty))
            .collect();
        for (inst, original) in positions {
            let i = inst.0 as usize;
            let step = (i128::from(original.abs()) * i128::from(self.config.liquidation_step_bps)
                / 10_000)
                .max(1);
            let step = i64::try_from(step).expect("a step is a fraction of an i64 position");
            loop {
                let Some(st) = self.standing_of(id) else {
                    return;
                };
                if st.equity >= st.maintenance {
                    return;
                }
                let pos = self.state.accounts[&id].position(inst).qty;
                if pos == 0 {
                    break;
                }
                let Some(order) = self.closing_order(id, i, pos, step.min(pos.abs())) else {
                    break;
                };
                let first = out.len();
                let filled = self.run_order(order, out);
                if filled > 0 {
                    let price = average_fill_price(&out[first..], order.id);
                    out.push(Event::Liquidation {
                        account: id,
                        instrument: inst,
                        qty: -pos.signum() * filled,
                        price,
                        via: LiquidationVia::Book,
                        equity: st.equity,
                        maintenance: st.maintenance,
                    });
                    continue;
                }
                self.take_over(id, inst, st, out);
                break;
            }
        }
        self.cover_deficit(id);
    }

    /// Moves a whole position that the book could not absorb to the fund or, failing that, to
    /// auto-deleveraged counterparties.
    fn take_over(&mut self, id: AccountId, inst: InstrumentId, st: Standing, out: &mut Vec<Event>) {
        let i = inst.0 as usize;
        let Some(mark) = self.state.marks[i] else {
            return;
        };
        let q = self.state.accounts[&id].position(inst).qty;
        let n = self.config.instruments[i].notional_per_tick_lot;
        let price = if st.equity >= 0 {
            mark
        } else {
            // Closing q lots at p changes equity by q × (p − m) × n; the bankruptcy price is where
            // equity reaches zero, rounded against the liquidated account.
            let denom = i128::from(q.abs()) * n;
            let shift = (-st.equity + denom - 1) / denom;
            let shift = i64::try_from(shift).unwrap_or(i64::MAX / 2);
            if q > 0 {
                mark.saturating_add(shift)
            } else {
                mark.saturating_sub(shift).max(1)
            }
        };
        let fund_equity = self.standing_of(INSURANCE_FUND).map_or(0, |s| s.equity);
        let fund_gain = i128::from(q) * i128::from(mark - price) * n;
        if fund_equity + fund_gain >= 0 {
            self.transfer(id, INSURANCE_FUND, inst, q, price);
            out.push(Event::Liquidation {
                account: id,
                instrument: inst,
                qty: -q,
                price,
                via: LiquidationVia::InsuranceFund,
                equity: st.equity,
                maintenance: st.maintenance,
            });
            return;
        }
        let mut ranked = self.deleverage_ranking(inst, q.signum(), id, mark);
        let mut left = q.abs();
        for (_, other, their) in ranked.drain(..) {
            if left == 0 {
                break;
            }
            let take = left.min(their.abs());
            left -= take;
            self.transfer(id, other, inst, q.signum() * take, price);
            out.push(Event::Deleveraged {
                account: other,
                instrument: inst,
                qty: q.signum() * take,
                price,
            });
            out.push(Event::Liquidation {
                account: id,
                instrument: inst,
                qty: -q.signum() * take,
                price,
                via: LiquidationVia::AutoDeleverage,
                equity: st.equity,
                maintenance: st.maintenance,
            });
        }
    }

    /// Opposite positions (sign −`sign`), best score first: profit ratio × leverage, both in
    /// integers; ties by account id.
    fn deleverage_ranking(
        &self,
        inst: InstrumentId,
        sign: i64,
        exclude: AccountId,
        mark: i64,
    ) -> Vec<(i128, AccountId, i64)> {
        let n = self.config.instruments[inst.0 as usize].notional_per_tick_lot;
        let view = self.view();
        let mut ranked: Vec<(i128, AccountId, i64)> = self
            .state
            .accounts
            .iter()
            .filter(|(k, _)| **k != exclude)
            .filter_map(|(k, a)| {
                let p = a.positions.get(&inst)?;
                (p.qty.signum() == -sign).then_some(())?;
                let notional = i128::from(p.qty) * i128::from(mark) * n;
                let profit = notional - p.cost;
                let equity = standing(a, view, false, None)
                    .map_or(1, |s| s.equity)
                    .max(1);
                let ratio_ppm = profit.saturating_mul(1_000_000) / p.cost.abs().max(1);
                let leverage_milli = notional.abs().saturating_mul(1_000) / equity;
                Some((ratio_ppm.saturating_mul(leverage_milli), *k, p.qty))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(p) = self.state.insurance.positions.get(&inst) {
            if p.qty.signum() == -sign {
                ranked.push((i128::MIN, INSURANCE_FUND, p.qty));
            }
        }
        ranked
    }

    /// An immediate-or-cancel order that closes `qty` lots of a position of `position` lots,
    /// limited to mark ± `liquidation_band_bps` (and to the instrument's band); `None` before the
    /// instrument has a mark.
    fn closing_order(
        &mut self,
        owner: AccountId,
        i: usize,
        position: i64,
        qty: i64,
    ) -> Option<Order> {
        let (mark, band) = (self.state.marks[i]?, self.band(i)?);
        let width =
            i64::try_from(i128::from(mark) * i128::from(self.config.liquidation_band_bps) / 10_000)
                .expect("a band is a fraction of an i64 mark")
                .max(1);
        let side = if position > 0 { Side::Sell } else { Side::Buy };
        let limit = match side {
            Side::Sell => (mark - width).max(1),
            Side::Buy => mark + width,
        };
        let id = crate::command::OrderId(self.state.next_order_id);
        self.state.next_order_id += 1;
        Some(Order {
            id,
            owner,
            instrument: i,
            side,
            limit,
            qty,
            tif: TimeInForce::Ioc,
            stp: SelfTradePrevention::CancelResting,
            band,
        })
    }

    /// Moves `q` lots (signed, as held by `from`) from `from` to `to` at `price`, without fees.
    fn transfer(&mut self, from: AccountId, to: AccountId, inst: InstrumentId, q: i64, price: i64) {
        let instrument = &self.config.instruments[inst.0 as usize];
        self.state
            .holder_mut(from)
            .apply_trade(instrument, -q, price);
        self.state.holder_mut(to).apply_trade(instrument, q, price);
        self.state.touched.extend([from, to]);
    }

    /// Covers a liquidated account's negative cash from the fund, as far as the fund's cash goes.
    fn cover_deficit(&mut self, id: AccountId) {
        let acct = &self.state.accounts[&id];
        if !acct.positions.is_empty() || acct.cash >= 0 {
            return;
        }
        let cover = (-acct.cash).min(self.state.insurance.cash.max(0));
        self.state.insurance.cash -= cover;
        self.state.holder_mut(id).cash += cover;
    }

    /// One immediate-or-cancel attempt per fund position to unwind it through the book.
    pub(crate) fn unwind_insurance(&mut self, out: &mut Vec<Event>) {
        let held: Vec<(InstrumentId, i64)> = self
            .state
            .insurance
            .positions
            .iter()
            .map(|(k, p)| (*k, p.qty))
            .collect();
        for (inst, q) in held {
            let i = inst.0 as usize;
            let underlying = usize::from(self.config.instruments[i].underlying);
            if self.state.markets[i].closed || self.guarded(underlying) {
                continue;
            }
            let Some(order) = self.closing_order(INSURANCE_FUND, i, q, q.abs()) else {
                continue;
            };
            self.run_order(order, out);
        }
    }
}

fn average_fill_price(events: &[Event], order: crate::command::OrderId) -> i64 {
    let (mut value, mut lots) = (0i128, 0i128);
    for e in events {
        if let Event::Fill {
            taker_order,
            price,
            qty,
            ..
        } = e
        {
            if *taker_order == order {
                value += i128::from(*price) * i128::from(*qty);
                lots += i128::from(*qty);
            }
        }
    }
    if lots == 0 {
        return 0;
    }
    i64::try_from(value / lots).expect("an average of i64 prices fits an i64")
}
