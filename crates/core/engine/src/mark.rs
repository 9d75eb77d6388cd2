//! Index, mark prices and funding.
//!
//! - Perpetual mark = index + EMA of the book's basis (mid − index), the EMA and each sample
//!   clamped to `basis_band_bps` of the index, so a thin or manipulated book moves the mark by at
//!   most that band.
//! - Option mark = Black–Scholes at the index with the volatility implied by the book's mid when
//!   both sides quote (clamped to 5 %–500 %), else the instrument's parameter.
//! - Funding: the time-weighted average premium (mark − index) / index since the last exchange,
//!   clamped to the instrument's cap, paid per lot from longs to shorts when positive. The payment
//!   per lot is rounded toward zero once, so the two sides' payments cancel exactly.
//! - Funding pauses while an oracle guard is open on the perpetual's underlying (the rule is
//!   *skip*, not defer): no premium accrues for any batch interval that ends while a guard is open
//!   (the mark and basis EMA still update), and a scheduled exchange that falls due while a guard
//!   is open is skipped — nothing is paid, the premium accrued so far in that interval is
//!   discarded, the next exchange is scheduled one interval later as usual, and
//!   [`Event::FundingPaused`] names the first open guard. The first exchange after the guards close
//!   averages only the premium accrued while no guard was open. So a doubtful index never moves
//!   money through funding, and the outcome depends only on the batch times and the guard state
//!   at each batch's end.

use crate::engine::Engine;
use crate::event::Event;
use crate::instrument::InstrumentKind;
use crate::pricing;

const YEAR_MS: f64 = 365.0 * 86_400_000.0;
const VOL_MIN: f64 = 0.05;
const VOL_MAX: f64 = 5.0;

/// An option's mark and risk, for reports (never used to decide a fill).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionRisk {
    /// Mark in ticks.
    pub mark: i64,
    /// Volatility behind the mark (implied from the book or the instrument's parameter).
    pub vol: f64,
    /// Black–Scholes price and Greeks per unit of underlying, in micros (see
    /// [`pricing::Greeks`] for the units of each).
    pub greeks: pricing::Greeks,
}

impl Engine {
    /// An option's mark, volatility and Greeks at the current index and time; `None` for
    /// perpetuals, expired options, or before the first index price.
    pub fn option_risk(&self, instrument: crate::command::InstrumentId) -> Option<OptionRisk> {
        let i = instrument.0 as usize;
        let inst = self.config.instruments.get(i)?;
        let InstrumentKind::Option {
            right,
            strike_micros,
            expiry_ms,
            ..
        } = inst.kind
        else {
            return None;
        };
        let market = &self.state.markets[i];
        if market.closed {
            return None;
        }
        let index = self.state.index[usize::from(inst.underlying)]?;
        let years = expiry_ms.saturating_sub(self.state.time_ms) as f64 / YEAR_MS;
        let vol = f64::from(market.vol_ppm) / 1e6;
        let greeks =
            pricing::black_scholes(right, index as f64, strike_micros as f64, years, vol, 0.0)
                .ok()?;
        Some(OptionRisk {
            mark: self.state.marks[i]?,
            vol,
            greeks,
        })
    }

    /// Applies a new index price: records a TWAP sample and re-marks the underlying's instruments.
    pub(crate) fn set_index(&mut self, underlying: usize, price_micros: i64) {
        self.state.index[underlying] = Some(price_micros);
        let now = self.state.time_ms;
        let window = self.config.twap_window_ms;
        let samples = &mut self.state.index_states[underlying].samples;
        match samples.back_mut() {
            Some(last) if last.0 == now => last.1 = price_micros,
            _ => samples.push_back((now, price_micros)),
        }
        // Keep one sample at or before the window's start so the average covers the whole window.
        while samples.len() > 1 && samples[1].0 <= now.saturating_sub(window) {
            samples.pop_front();
        }
        for i in 0..self.config.instruments.len() {
            if usize::from(self.config.instruments[i].underlying) == underlying {
                self.remark(i);
            }
        }
    }

    /// Advances basis EMAs and premium sums by `elapsed_ms`, then re-marks every instrument.
    pub(crate) fn update_marks(&mut self, elapsed_ms: u64) {
        for i in 0..self.config.instruments.len() {
            let inst = &self.config.instruments[i];
            if !inst.is_perpetual() || elapsed_ms == 0 {
                self.remark(i);
                continue;
            }
            let Some(index) = self.state.index[usize::from(inst.underlying)] else {
                continue;
            };
            let index_ticks = inst.micros_to_ticks(index);
            let width = self.basis_width(index_ticks);
            let paused = self.guarded(usize::from(inst.underlying));
            let market = &mut self.state.markets[i];
            let sample = match (market.book.best_bid(), market.book.best_ask()) {
                (Some((b, _)), Some((a, _))) => ((b + a) / 2 - index_ticks).clamp(-width, width),
                _ => 0,
            };
            let tau = i128::from(self.config.basis_ema_ms);
            let dt = i128::from(elapsed_ms);
            let step = (i128::from(sample) - i128::from(market.basis_ema)) * dt / (dt + tau);
            market.basis_ema = i64::try_from(i128::from(market.basis_ema) + step)
                .expect("the EMA stays between its bounded samples");
            self.remark(i);
            let mark =
                self.state.marks[i].expect("remark sets a perpetual mark when an index exists");
            if index_ticks > 0 && !paused {
                let premium_ppm =
                    i128::from(mark - index_ticks) * 1_000_000 / i128::from(index_ticks);
                let market = &mut self.state.markets[i];
                market.premium_sum_ppm += premium_ppm * dt;
                market.premium_samples += i64::try_from(elapsed_ms).unwrap_or(i64::MAX);
            }
        }
    }

    fn basis_width(&self, index_ticks: i64) -> i64 {
        let w = i128::from(index_ticks) * i128::from(self.config.basis_band_bps) / 10_000;
        i64::try_from(w).expect("a fraction of an i64 fits an i64")
    }

    fn set_mark(&mut self, i: usize, mark: i64) {
        if self.state.marks[i] != Some(mark) {
            self.state.marks[i] = Some(mark);
            self.state.marks_moved = true;
        }
    }

    /// Recomputes one instrument's mark from the index (no-op before the first index price).
    fn remark(&mut self, i: usize) {
        let inst = &self.config.instruments[i];
        let Some(index) = self.state.index[usize::from(inst.underlying)] else {
            return;
        };
        let market = &mut self.state.markets[i];
        if market.closed {
            return;
        }
        match inst.kind {
            InstrumentKind::Perpetual { .. } => {
                let index_ticks = inst.micros_to_ticks(index);
                let w = self.basis_width(index_ticks);
                let basis = self.state.markets[i].basis_ema.clamp(-w, w);
                self.set_mark(i, (index_ticks + basis).max(1));
            }
            InstrumentKind::Option {
                right,
                strike_micros,
                expiry_ms,
                vol_ppm,
            } => {
                let years = expiry_ms.saturating_sub(self.state.time_ms) as f64 / YEAR_MS;
                let spot = index as f64;
                let strike = strike_micros as f64;
                let tick = inst.tick_size_micros;
                let implied = match (market.book.best_bid(), market.book.best_ask()) {
                    (Some((b, _)), Some((a, _))) if years > 0.0 => {
                        let mid = (b + a) as f64 / 2.0 * tick as f64;
                        pricing::implied_vol(right, spot, strike, years, 0.0, mid)
                            .ok()
                            .map(|v| v.clamp(VOL_MIN, VOL_MAX))
                    }
                    _ => None,
                };
                let vol = implied.unwrap_or(f64::from(vol_ppm) / 1e6);
                market.vol_ppm = libm::round(vol * 1e6) as u32;
                if let Ok(m) = pricing::mark_ticks(right, index, strike_micros, years, vol, tick) {
                    self.set_mark(i, m.max(0));
                }
            }
        }
    }

    /// Exchanges funding on every perpetual whose interval has ended.
    pub(crate) fn exchange_funding(&mut self, out: &mut Vec<Event>) {
        let now = self.state.time_ms;
        for i in 0..self.config.instruments.len() {
            let inst = &self.config.instruments[i];
            let InstrumentKind::Perpetual {
                funding_interval_ms,
                funding_rate_max_ppm,
                ..
            } = inst.kind
            else {
                continue;
            };
            let guard = self
                .state
                .oracle
                .feeds
                .get(usize::from(inst.underlying))
                .and_then(|f| f.guards.first())
                .map(|g| g.kind);
            let market = &mut self.state.markets[i];
            if market.next_funding_ms > now {
                continue;
            }
            let funding_ms = market.next_funding_ms;
            while market.next_funding_ms <= now {
                market.next_funding_ms += funding_interval_ms;
            }
            let samples = std::mem::take(&mut market.premium_samples);
            let sum = std::mem::take(&mut market.premium_sum_ppm);
            if let Some(guard) = guard {
                out.push(Event::FundingPaused {
                    instrument: inst.id,
                    guard,
                    funding_ms,
                });
                continue;
            }
            let (Some(mark), true) = (self.state.marks[i], samples > 0) else {
                continue;
            };
            let max = i128::from(funding_rate_max_ppm);
            let rate = (sum / i128::from(samples)).clamp(-max, max);
            let per_lot = i128::from(mark) * inst.notional_per_tick_lot * rate / 1_000_000;
            let id = inst.id;
            let mut paid = 0i128;
            let holders = self.state.holders_of(id);
            for h in holders {
                let acct = self.state.holder_mut(h);
                let payment = i128::from(acct.position(id).qty) * per_lot;
                acct.cash -= payment;
                paid += payment.max(0);
            }
            self.state.marks_moved = true;
            out.push(Event::Funding {
                instrument: id,
                rate_ppm: i64::try_from(rate).expect("the rate is clamped to an i64 cap"),
                paid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{
        AccountId, ClientCommand, Command, InstrumentId, LimitOrder, Side, SystemCommand,
    };
    use crate::oracle::{GuardKind, OpenGuard};
    use crate::{Engine, EngineConfig};

    fn quote(side: Side, price: i64) -> Command {
        Command::Client {
            account: AccountId(1),
            nonce: 0,
            command: ClientCommand::Limit(LimitOrder {
                instrument: InstrumentId(0),
                side,
                price,
                qty: 1,
                tif: Default::default(),
                post_only: false,
                reduce_only: false,
                stp: Default::default(),
                client_order_id: 0,
            }),
        }
    }

    /// The skip rule's first half: no premium accrues for a batch interval that ends while a
    /// guard is open, and accrual resumes once it has closed.
    #[test]
    fn no_premium_accrues_while_a_guard_is_open() {
        let mut e = Engine::new(EngineConfig::default());
        let setup = [
            Command::System(SystemCommand::IndexPrice {
                underlying: 0,
                price_micros: 60_000_000_000,
            }),
            Command::System(SystemCommand::OpenAccount {
                account: AccountId(1),
                public_key: [1; 32],
            }),
            Command::System(SystemCommand::Deposit {
                account: AccountId(1),
                amount: 1_000_000_000_000,
            }),
            quote(Side::Buy, 601_700),
            quote(Side::Sell, 601_900),
        ];
        let mut out = Vec::new();
        e.execute(0, &setup, &mut out);
        e.execute(1_000, &[], &mut out);
        let accrued = |e: &Engine| {
            let m = &e.state.markets[0];
            (m.premium_samples, m.premium_sum_ppm)
        };
        let healthy = accrued(&e);
        assert_eq!(healthy.0, 1_000);
        assert!(healthy.1 > 0, "the quotes make the mark rich");

        e.state.oracle.feeds[0].guards.push(OpenGuard {
            kind: GuardKind::Stale,
            opened_ms: 1_000,
            observed: 0,
            limit: 0,
            healthy_rounds: 0,
        });
        e.execute(5_000, &[], &mut out);
        assert_eq!(accrued(&e), healthy, "paused while guarded");

        e.state.oracle.feeds[0].guards.clear();
        e.execute(6_000, &[], &mut out);
        assert_eq!(accrued(&e).0, 2_000, "resumes after the guard closes");
    }
}
