//! European option pricing: Black–Scholes–Merton without dividends, its Greeks, implied volatility,
//! and the fixed-point mark the engine stores.
//!
//! Determinism: every transcendental function (`exp`, `log`, `sqrt`, `erfc`, `round`) comes from
//! pure-Rust `libm`, never from the platform's math library, so the same inputs give the same bits
//! on every target. The rest is IEEE-754 `+ - × ÷`, which is exact-rounded everywhere. A result of
//! this module is a mark or a risk figure; it never decides a fill.
//!
//! Units and conventions, shared by every function here:
//! - `spot` and `strike` are in the same money unit per unit of underlying (any unit: the model is
//!   homogeneous, so micros in gives micros out);
//! - `years` is time to expiry in years (the engine uses Actual/365 Fixed);
//! - `vol` is the annualised volatility as a fraction (0.6 = 60 %);
//! - `rate` is the continuously compounded risk-free rate as a fraction per year (0.05 = 5 %).
//!
//! Every input is range-checked (see the `*_MAX` constants) so that no intermediate value can
//! overflow; anything else is a typed [`PricingError`], never a panic or a NaN.

use thiserror::Error;

use crate::instrument::OptionRight;

/// Largest accepted volatility (1000 % a year); also the upper end of the implied-vol search.
pub const VOL_MAX: f64 = 10.0;
/// Largest accepted time to expiry, in years.
pub const YEARS_MAX: f64 = 100.0;
/// Largest accepted absolute risk-free rate (continuously compounded, per year). Rates may be
/// negative.
pub const RATE_ABS_MAX: f64 = 1.0;
/// Smallest accepted spot or strike. Keeps `ln(spot / strike)` within ±93.
pub const MONEY_MIN: f64 = 1e-20;
/// Largest accepted spot or strike; above `i64::MAX`, so every positive micros amount fits.
pub const MONEY_MAX: f64 = 1e20;
/// Upper bound on the iterations [`implied_vol`] performs before giving up.
pub const IMPLIED_VOL_ITERATIONS_MAX: u32 = 100;

/// `1 / sqrt(2π)`.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Price and sensitivities of one option under Black–Scholes–Merton.
///
/// Money-valued fields are in the unit of the `spot` and `strike` given. All sensitivities are
/// per **one whole unit** of the input, not per percent or per day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Greeks {
    /// Premium, in money per unit of underlying. Never below the no-arbitrage lower bound.
    pub price: f64,
    /// ∂price/∂spot, dimensionless: in [0, 1] for a call, [−1, 0] for a put.
    pub delta: f64,
    /// ∂²price/∂spot², per unit of money.
    pub gamma: f64,
    /// ∂price/∂vol, money per 1.00 of volatility (divide by 100 for "per vol point").
    pub vega: f64,
    /// ∂price/∂t as calendar time passes, money per year (divide by 365 for "per day"); this is
    /// −∂price/∂years, usually negative for a long option.
    pub theta: f64,
    /// ∂price/∂rate, money per 1.00 of rate (divide by 100 for "per percentage point").
    pub rho: f64,
}

/// Why a price, an implied volatility or a mark could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[non_exhaustive]
pub enum PricingError {
    /// An input is NaN or infinite.
    #[error("{input} is not a finite number")]
    NonFinite {
        /// Name of the offending argument.
        input: &'static str,
    },
    /// A floating-point input is outside the range this module accepts.
    #[error("{input} = {value} is outside the accepted range [{min}, {max}]")]
    OutOfRange {
        /// Name of the offending argument.
        input: &'static str,
        /// The value given.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// A fixed-point input (spot, strike or tick size in micros) is zero or negative.
    #[error("{input} = {value} must be positive")]
    NotPositive {
        /// Name of the offending argument.
        input: &'static str,
        /// The value given.
        value: i64,
    },
    /// The option price cannot come from any volatility: it is below the discounted intrinsic
    /// value or not below the price of the underlying (call) or of the discounted strike (put).
    #[error("option price {price} is outside the no-arbitrage bounds [{lower}, {upper})")]
    PriceOutsideArbitrageBounds {
        /// The price given.
        price: f64,
        /// The lowest arbitrage-free price (reached at zero volatility).
        lower: f64,
        /// The supremum of arbitrage-free prices (never reached).
        upper: f64,
    },
    /// The option price is arbitrage-free but needs a volatility above [`VOL_MAX`], or the option
    /// is at expiry and its price is not its intrinsic value.
    #[error("option price {price} needs a volatility above the maximum; at most {price_max}")]
    ImpliedVolAboveMax {
        /// The price given.
        price: f64,
        /// The price at [`VOL_MAX`].
        price_max: f64,
    },
    /// The implied-volatility search ran out of iterations. Not expected for valid inputs; reported
    /// rather than returning an unconverged value.
    #[error("implied volatility did not converge in {iterations} iterations")]
    NoConvergence {
        /// Iterations performed.
        iterations: u32,
    },
    /// The inputs are in range but so extreme together (e.g. a subnormal `vol × sqrt(years)`) that
    /// a Greek is not a finite number.
    #[error("a price or Greek is not representable as a finite number for these inputs")]
    NotRepresentable,
    /// The premium, in ticks, does not fit in an `i64`.
    #[error("mark of {ticks} ticks does not fit in i64")]
    MarkOutOfRange {
        /// The rounded premium in ticks.
        ticks: f64,
    },
}

/// Prices a European option under Black–Scholes–Merton with no dividends, and returns its Greeks.
///
/// Inputs (units in the [module docs](self)): `spot` and `strike` in [[`MONEY_MIN`],
/// [`MONEY_MAX`]], `years` in [0, [`YEARS_MAX`]], `vol` in [0, [`VOL_MAX`]], `rate` in
/// [−[`RATE_ABS_MAX`], [`RATE_ABS_MAX`]]; NaN and infinities are refused.
///
/// When `vol × sqrt(years)` is zero (at expiry or with zero volatility) the option is worth its
/// forward intrinsic value, `max(spot − strike·e^(−rate·years), 0)` for a call, and the Greeks are
/// the limits of the smooth formulas away from the money: delta is 0 or ±1 (±½ exactly at the
/// discounted strike), gamma and vega are 0, theta and rho carry only the discounting of the
/// strike. At the money those limits are unbounded or differ (gamma, and theta when `vol > 0`);
/// this function reports the finite parts, 0 for gamma and vega.
///
/// # Errors
/// [`PricingError::NonFinite`] or [`PricingError::OutOfRange`] for an input outside the ranges
/// above; [`PricingError::NotRepresentable`] if the inputs combine so that a Greek overflows.
pub fn black_scholes(
    right: OptionRight,
    spot: f64,
    strike: f64,
    years: f64,
    vol: f64,
    rate: f64,
) -> Result<Greeks, PricingError> {
    check_market(spot, strike, years, rate)?;
    checked("vol", vol, 0.0, VOL_MAX)?;
    let greeks = bsm(right, spot, strike, years, vol, rate);
    let all = [
        greeks.price,
        greeks.delta,
        greeks.gamma,
        greeks.vega,
        greeks.theta,
        greeks.rho,
    ];
    if all.iter().all(|x| x.is_finite()) {
        Ok(greeks)
    } else {
        Err(PricingError::NotRepresentable)
    }
}

/// Finds the volatility at which [`black_scholes`] gives `price`.
///
/// Inputs as for [`black_scholes`]; `price` is in the same money unit as `spot`. The search is a
/// Newton iteration kept inside a bracket `[0, VOL_MAX]` that shrinks at every step, falling back
/// to bisection whenever Newton would leave the bracket or stops halving its step; it performs at
/// most [`IMPLIED_VOL_ITERATIONS_MAX`] iterations and is fully deterministic. It stops when the
/// step falls below about 1e-15 (absolute) plus 8 ulps of the volatility, or the price matches
/// exactly. A price equal to the lower no-arbitrage bound returns 0.
///
/// Where vega is tiny (deep out of the money, very short expiry) many volatilities give the same
/// floating-point price; the one returned reproduces `price` to rounding, not the original vol.
///
/// # Errors
/// Input errors as for [`black_scholes`]; [`PricingError::PriceOutsideArbitrageBounds`] when no
/// volatility can give `price`; [`PricingError::ImpliedVolAboveMax`] when it needs more than
/// [`VOL_MAX`]; [`PricingError::NoConvergence`] if the iteration bound is hit.
pub fn implied_vol(
    right: OptionRight,
    spot: f64,
    strike: f64,
    years: f64,
    rate: f64,
    price: f64,
) -> Result<f64, PricingError> {
    check_market(spot, strike, years, rate)?;
    if !price.is_finite() {
        return Err(PricingError::NonFinite { input: "price" });
    }
    let strike_discounted = strike * libm::exp(-rate * years);
    let (lower, upper) = match right {
        OptionRight::Call => ((spot - strike_discounted).max(0.0), spot),
        OptionRight::Put => ((strike_discounted - spot).max(0.0), strike_discounted),
    };
    if !(price >= lower && price < upper) {
        return Err(PricingError::PriceOutsideArbitrageBounds {
            price,
            lower,
            upper,
        });
    }
    if price == lower {
        return Ok(0.0);
    }
    let price_max = bsm(right, spot, strike, years, VOL_MAX, rate).price;
    if price > price_max {
        return Err(PricingError::ImpliedVolAboveMax { price, price_max });
    }
    if price == price_max {
        return Ok(VOL_MAX);
    }

    // Invariant: price(lo) < target < price(hi). Start from the inflection point of price(vol)
    // (Manaster & Koehler), from which plain Newton converges monotonically; at the forward that
    // point is 0, so use the at-the-money approximation price ≈ 0.4·spot·vol·sqrt(years) instead.
    let (mut lo, mut hi) = (0.0_f64, VOL_MAX);
    let log_moneyness = libm::log(spot / strike) + rate * years;
    let mut vol = libm::sqrt(2.0 * log_moneyness.abs() / years);
    if !(vol > lo && vol < hi) {
        vol = price / (FRAC_1_SQRT_2PI * spot * libm::sqrt(years));
    }
    if !(vol > lo && vol < hi) {
        vol = 0.5 * (lo + hi);
    }
    let mut step_before_last = hi - lo;
    let mut step_last = hi - lo;
    for _ in 0..IMPLIED_VOL_ITERATIONS_MAX {
        let greeks = bsm(right, spot, strike, years, vol, rate);
        let error = greeks.price - price;
        if error == 0.0 {
            return Ok(vol);
        }
        if error < 0.0 {
            lo = vol;
        } else {
            hi = vol;
        }
        let newton = vol - error / greeks.vega;
        let next = if greeks.vega > 0.0
            && newton > lo
            && newton < hi
            && (newton - vol).abs() <= 0.5 * step_before_last
        {
            newton
        } else {
            0.5 * (lo + hi)
        };
        let step = (next - vol).abs();
        let tolerance = 1e-15 + 8.0 * f64::EPSILON * next;
        if step <= tolerance || hi - lo <= tolerance {
            return Ok(next);
        }
        step_before_last = step_last;
        step_last = step;
        vol = next;
    }
    Err(PricingError::NoConvergence {
        iterations: IMPLIED_VOL_ITERATIONS_MAX,
    })
}

/// The engine's option mark: the Black–Scholes premium in whole ticks of the instrument.
///
/// `spot_micros` is the underlying's index price and `strike_micros` the strike, both in micros
/// per unit of underlying; `tick_size_micros` is the instrument's tick in the same unit; `years`
/// and `vol` as for [`black_scholes`]. The rate is zero: premiums and strikes settle in the same
/// stable coin at expiry, so the venue marks against an undiscounted forward equal to the index.
///
/// The premium in micros divided by the tick is rounded to the nearest integer, halves away from
/// zero (`libm::round`), so the result times `tick_size_micros` is the mark in micros. The result
/// is never negative.
///
/// # Errors
/// [`PricingError::NotPositive`] for a spot, strike or tick size ≤ 0; errors of
/// [`black_scholes`] for `years` or `vol`; [`PricingError::MarkOutOfRange`] if the tick count
/// does not fit in an `i64`.
pub fn mark_ticks(
    right: OptionRight,
    spot_micros: i64,
    strike_micros: i64,
    years: f64,
    vol: f64,
    tick_size_micros: i64,
) -> Result<i64, PricingError> {
    for (input, value) in [
        ("spot_micros", spot_micros),
        ("strike_micros", strike_micros),
        ("tick_size_micros", tick_size_micros),
    ] {
        if value <= 0 {
            return Err(PricingError::NotPositive { input, value });
        }
    }
    // i64 → f64 rounds to nearest-even per IEEE-754: deterministic, and exact below 2^53 micros.
    let greeks = black_scholes(
        right,
        spot_micros as f64,
        strike_micros as f64,
        years,
        vol,
        0.0,
    )?;
    let ticks = libm::round(greeks.price / tick_size_micros as f64);
    // 2^63 is exactly representable; every f64 in [0, 2^63) converts to i64 without loss.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    if (0.0..I64_END).contains(&ticks) {
        Ok(ticks as i64)
    } else {
        Err(PricingError::MarkOutOfRange { ticks })
    }
}

/// Validates the inputs shared by pricing and implied volatility.
fn check_market(spot: f64, strike: f64, years: f64, rate: f64) -> Result<(), PricingError> {
    checked("spot", spot, MONEY_MIN, MONEY_MAX)?;
    checked("strike", strike, MONEY_MIN, MONEY_MAX)?;
    checked("years", years, 0.0, YEARS_MAX)?;
    checked("rate", rate, -RATE_ABS_MAX, RATE_ABS_MAX)?;
    Ok(())
}

fn checked(input: &'static str, value: f64, min: f64, max: f64) -> Result<(), PricingError> {
    if !value.is_finite() {
        Err(PricingError::NonFinite { input })
    } else if !(min..=max).contains(&value) {
        Err(PricingError::OutOfRange {
            input,
            value,
            min,
            max,
        })
    } else {
        Ok(())
    }
}

/// Standard normal cumulative distribution. Uses `erfc` so that the lower tail keeps its relative
/// accuracy (no `1 + erf(x)` cancellation).
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2)
}

/// Standard normal density.
fn normal_pdf(x: f64) -> f64 {
    FRAC_1_SQRT_2PI * libm::exp(-0.5 * x * x)
}

/// The formulas, on inputs already validated. Call and put share one shape:
/// with `n1 = N(±d1)`, `n2 = N(±d2)` (+ for a call, − for a put) and `s = ±1`,
/// price = s·(spot·n1 − K·n2), delta = s·n1, theta = decay − s·rate·K·n2, rho = s·years·K·n2,
/// where K is the discounted strike and decay = −spot·φ(d1)·vol / (2·sqrt(years)).
fn bsm(right: OptionRight, spot: f64, strike: f64, years: f64, vol: f64, rate: f64) -> Greeks {
    let strike_discounted = strike * libm::exp(-rate * years);
    let sqrt_years = libm::sqrt(years);
    let std_dev = vol * sqrt_years;
    let sign = match right {
        OptionRight::Call => 1.0,
        OptionRight::Put => -1.0,
    };
    let (n1, n2, gamma, vega, decay) = if std_dev > 0.0 {
        let d1 = (libm::log(spot / strike) + rate * years) / std_dev + 0.5 * std_dev;
        let d2 = d1 - std_dev;
        let pdf_d1 = normal_pdf(d1);
        (
            normal_cdf(sign * d1),
            normal_cdf(sign * d2),
            pdf_d1 / (spot * std_dev),
            spot * pdf_d1 * sqrt_years,
            -spot * pdf_d1 * vol / (2.0 * sqrt_years),
        )
    } else {
        // N(±d) degenerates to a step at the discounted strike; the density terms vanish.
        let in_the_money = match (sign * (spot - strike_discounted)).partial_cmp(&0.0) {
            Some(core::cmp::Ordering::Greater) => 1.0,
            Some(core::cmp::Ordering::Less) => 0.0,
            _ => 0.5,
        };
        (in_the_money, in_the_money, 0.0, 0.0, 0.0)
    };
    let intrinsic = (sign * (spot - strike_discounted)).max(0.0);
    Greeks {
        // Rounding in the difference of two nearly equal terms (deep out of the money, tiny
        // std_dev) could dip below the bound the true price always respects.
        price: (sign * (spot * n1 - strike_discounted * n2)).max(intrinsic),
        delta: sign * n1,
        gamma,
        vega,
        theta: decay - sign * rate * strike_discounted * n2,
        rho: sign * years * strike_discounted * n2,
    }
}

#[cfg(test)]
mod tests;
