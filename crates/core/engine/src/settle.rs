//! Option expiry: cash settlement at the time-weighted average index.
//!
//! At the first batch at or after an option's expiry, its resting orders and stops are cancelled and every
//! position is paid its intrinsic value at the TWAP of the index over `twap_window_ms` before the
//! batch. The intrinsic value per lot is rounded down once, so longs receive exactly what shorts
//! pay. An option whose underlying has no index yet waits for one.

use std::collections::VecDeque;

use crate::book::Resting;
use crate::engine::Engine;
use crate::event::{CancelReason, Event};
use crate::instrument::{InstrumentKind, OptionRight};
use crate::orders::dropped;

/// Time-weighted average of `samples` over `[now − window, now]`; each sample's price holds until
/// the next sample. `None` when there are no samples.
pub fn twap(samples: &VecDeque<(u64, i64)>, now: u64, window: u64) -> Option<i64> {
    let start = now.saturating_sub(window);
    let last = samples.back()?;
    let mut weighted = 0i128;
    let mut total = 0i128;
    for (k, &(t, price)) in samples.iter().enumerate() {
        let until = samples.get(k + 1).map_or(now, |s| s.0).min(now);
        let from = t.max(start);
        if until > from {
            let d = i128::from(until - from);
            weighted += i128::from(price) * d;
            total += d;
        }
    }
    if total == 0 {
        return Some(last.1);
    }
    Some(i64::try_from(weighted / total).expect("an average of i64 prices fits an i64"))
}

impl Engine {
    /// Settles every option whose expiry has passed.
    pub(crate) fn expire_options(&mut self, out: &mut Vec<Event>) {
        let now = self.state.time_ms;
        for i in 0..self.config.instruments.len() {
            let inst = &self.config.instruments[i];
            let InstrumentKind::Option {
                right,
                strike_micros,
                expiry_ms,
                ..
            } = inst.kind
            else {
                continue;
            };
            if self.state.markets[i].closed || expiry_ms > now {
                continue;
            }
            let u = usize::from(inst.underlying);
            let Some(settlement) = twap(
                &self.state.index_states[u].samples,
                now,
                self.config.twap_window_ms,
            ) else {
                continue;
            };
            let id = inst.id;
            let book = &mut self.state.markets[i].book;
            let resting: Vec<Resting> = book.orders().collect();
            for r in &resting {
                book.cancel(r.id);
            }
            for r in &resting {
                dropped(&mut self.state, id, r, CancelReason::Expiry, out);
            }
            let intrinsic = match right {
                OptionRight::Call => (settlement - strike_micros).max(0),
                OptionRight::Put => (strike_micros - settlement).max(0),
            };
            let per_lot = i128::from(intrinsic) * i128::from(inst.lot_size_nanos) / 1_000_000_000;
            let holders = self.state.holders_of(id);
            let mut paid = 0i128;
            for h in holders {
                let acct = self.state.holder_mut(h);
                let qty = acct.positions.remove(&id).map_or(0, |p| p.qty);
                let amount = i128::from(qty) * per_lot;
                acct.cash += amount;
                paid += amount.max(0);
            }
            self.cancel_stops_on(id, CancelReason::Expiry, out);
            self.state.markets[i].closed = true;
            self.state.marks_moved = true;
            out.push(Event::Settled {
                instrument: id,
                settlement_price_micros: settlement,
                paid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twap_weights_by_time() {
        let s: VecDeque<(u64, i64)> = [(0, 100), (50, 200)].into_iter().collect();
        assert_eq!(twap(&s, 100, 100), Some(150));
        assert_eq!(twap(&s, 100, 50), Some(200));
        let one: VecDeque<(u64, i64)> = [(100, 7)].into_iter().collect();
        assert_eq!(twap(&one, 100, 10), Some(7));
        assert_eq!(twap(&VecDeque::new(), 100, 10), None);
    }
}
