//! Unit tests of the option pricing functions.

#![allow(clippy::unwrap_used)]

use super::*;
use OptionRight::{Call, Put};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn textbook_value() {
    // Hull, Options, Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10 %, σ=20 %,
    // T=0.5 → call 4.76, put 0.81.
    let c = black_scholes(Call, 42.0, 40.0, 0.5, 0.2, 0.1).unwrap();
    let p = black_scholes(Put, 42.0, 40.0, 0.5, 0.2, 0.1).unwrap();
    assert!((c.price - 4.7594).abs() < 1e-4, "{c:?}");
    assert!((p.price - 0.8086).abs() < 1e-4, "{p:?}");
}

#[test]
fn put_call_parity() {
    for &(s, k, t, v, r) in &[
        (100.0, 100.0, 1.0, 0.2, 0.05),
        (100.0, 60.0, 0.1, 0.9, -0.01),
        (0.35, 0.5, 3.0, 1.5, 0.1),
        (64_000.0, 70_000.0, 7.0 / 365.0, 0.6, 0.0),
    ] {
        let c = black_scholes(Call, s, k, t, v, r).unwrap();
        let p = black_scholes(Put, s, k, t, v, r).unwrap();
        let kd = k * libm::exp(-r * t);
        assert!(close(c.price - p.price, s - kd, 1e-13), "price {s} {k}");
        assert!(close(c.delta - p.delta, 1.0, 1e-15));
        assert!(close(c.gamma, p.gamma, 1e-15));
        assert!(close(c.vega, p.vega, 1e-15));
        assert!(close(c.theta - p.theta, -r * kd, 1e-12));
        assert!(close(c.rho - p.rho, t * kd, 1e-12));
    }
}

#[test]
fn monotone_in_vol_and_spot() {
    for right in [Call, Put] {
        let mut last = black_scholes(right, 100.0, 110.0, 0.5, 0.01, 0.03)
            .unwrap()
            .price;
        for i in 2..=200 {
            let p = black_scholes(right, 100.0, 110.0, 0.5, 0.01 * f64::from(i), 0.03)
                .unwrap()
                .price;
            assert!(p > last, "{right:?} vol step {i}");
            last = p;
        }
        let mut last = black_scholes(right, 50.0, 100.0, 0.25, 0.4, 0.03)
            .unwrap()
            .price;
        for i in 1..=200 {
            let p = black_scholes(right, 50.0 + f64::from(i), 100.0, 0.25, 0.4, 0.03)
                .unwrap()
                .price;
            match right {
                Call => assert!(p > last, "call spot step {i}"),
                Put => assert!(p < last, "put spot step {i}"),
            }
            last = p;
        }
    }
}

#[test]
fn greeks_match_finite_differences() {
    let (s, k, t, v, r) = (100.0, 95.0, 0.75, 0.35, 0.04);
    for right in [Call, Put] {
        let g = black_scholes(right, s, k, t, v, r).unwrap();
        let p = |s, t, v, r| black_scholes(right, s, k, t, v, r).unwrap().price;
        let h = 1e-4;
        let delta = (p(s + h, t, v, r) - p(s - h, t, v, r)) / (2.0 * h);
        let gamma = (p(s + h, t, v, r) - 2.0 * g.price + p(s - h, t, v, r)) / (h * h);
        let vega = (p(s, t, v + h, r) - p(s, t, v - h, r)) / (2.0 * h);
        let theta = -(p(s, t + h, v, r) - p(s, t - h, v, r)) / (2.0 * h);
        let rho = (p(s, t, v, r + h) - p(s, t, v, r - h)) / (2.0 * h);
        assert!(close(g.delta, delta, 1e-8), "{right:?} delta");
        assert!(close(g.gamma, gamma, 1e-5), "{right:?} gamma");
        assert!(close(g.vega, vega, 1e-7), "{right:?} vega");
        assert!(close(g.theta, theta, 1e-7), "{right:?} theta");
        assert!(close(g.rho, rho, 1e-7), "{right:?} rho");
    }
}

#[test]
fn implied_vol_round_trip() {
    for right in [Call, Put] {
        for &k in &[50.0, 90.0, 100.0, 110.0, 200.0] {
            for &t in &[1.0 / 365.0, 0.25, 2.0] {
                for &v in &[0.05, 0.3, 1.0, 4.0] {
                    let g = black_scholes(right, 100.0, k, t, v, 0.02).unwrap();
                    let iv = implied_vol(right, 100.0, k, t, 0.02, g.price);
                    let Ok(iv) = iv else {
                        // Only a price equal to its lower bound is expected to fail, and
                        // that returns Ok(0) instead; anything else is a bug.
                        panic!("{right:?} k={k} t={t} v={v}: {iv:?}");
                    };
                    let back = black_scholes(right, 100.0, k, t, iv, 0.02).unwrap();
                    assert!(
                        (back.price - g.price).abs() <= 1e-12 * (1.0 + g.price),
                        "{right:?} k={k} t={t} v={v} iv={iv}"
                    );
                    if g.vega > 1e-3 {
                        assert!((iv - v).abs() <= 1e-9, "{right:?} k={k} t={t} v={v} {iv}");
                    }
                }
            }
        }
    }
}

#[test]
fn implied_vol_bounds() {
    let err = implied_vol(Call, 100.0, 90.0, 1.0, 0.0, 9.0).unwrap_err();
    assert!(matches!(
        err,
        PricingError::PriceOutsideArbitrageBounds { .. }
    ));
    let err = implied_vol(Call, 100.0, 90.0, 1.0, 0.0, 100.0).unwrap_err();
    assert!(matches!(
        err,
        PricingError::PriceOutsideArbitrageBounds { .. }
    ));
    let err = implied_vol(Put, 100.0, 90.0, 1.0, 0.0, -1.0).unwrap_err();
    assert!(matches!(
        err,
        PricingError::PriceOutsideArbitrageBounds { .. }
    ));
    let err = implied_vol(Put, 100.0, 90.0, 1.0, 0.0, 89.999_999).unwrap_err();
    assert!(matches!(err, PricingError::ImpliedVolAboveMax { .. }));
    assert_eq!(implied_vol(Call, 100.0, 90.0, 1.0, 0.0, 10.0), Ok(0.0));
    assert_eq!(implied_vol(Put, 100.0, 90.0, 1.0, 0.0, 0.0), Ok(0.0));
    // At expiry only the intrinsic value is consistent.
    assert_eq!(implied_vol(Call, 100.0, 90.0, 0.0, 0.0, 10.0), Ok(0.0));
    let err = implied_vol(Call, 100.0, 90.0, 0.0, 0.0, 10.5).unwrap_err();
    assert!(matches!(err, PricingError::ImpliedVolAboveMax { .. }));
    let err = implied_vol(Call, 100.0, 90.0, 1.0, 0.0, f64::NAN).unwrap_err();
    assert_eq!(err, PricingError::NonFinite { input: "price" });
}

#[test]
fn zero_time_and_zero_vol_are_intrinsic() {
    let c = black_scholes(Call, 110.0, 100.0, 0.0, 0.5, 0.05).unwrap();
    assert_eq!(
        c,
        Greeks {
            price: 10.0,
            delta: 1.0,
            gamma: 0.0,
            vega: 0.0,
            theta: -5.0,
            rho: 0.0,
        }
    );
    let p = black_scholes(Put, 110.0, 100.0, 0.0, 0.5, 0.05).unwrap();
    assert_eq!((p.price, p.delta, p.theta), (0.0, 0.0, 0.0));
    let atm = black_scholes(Put, 100.0, 100.0, 0.0, 0.5, 0.0).unwrap();
    assert_eq!((atm.price, atm.delta), (0.0, -0.5));

    // Zero vol: the forward intrinsic value, with discounting.
    let t = 2.0;
    let kd = 100.0 * libm::exp(-0.05 * t);
    let c = black_scholes(Call, 95.0, 100.0, t, 0.0, 0.05).unwrap();
    assert_eq!(c.price, 95.0 - kd);
    assert_eq!(c.delta, 1.0);
    assert_eq!(c.rho, t * kd);
    let p = black_scholes(Put, 95.0, 100.0, t, 0.0, 0.05).unwrap();
    assert_eq!((p.price, p.delta, p.rho), (0.0, 0.0, 0.0));

    // The smooth formulas approach the degenerate ones.
    let near = black_scholes(Call, 95.0, 100.0, t, 1e-9, 0.05).unwrap();
    assert!(close(near.price, c.price, 1e-14));
    assert!(close(near.theta, c.theta, 1e-14));
}

#[test]
fn garbage_inputs_are_typed_errors() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let cases = [
        (nan, 100.0, 1.0, 0.2, 0.0, "spot"),
        (100.0, inf, 1.0, 0.2, 0.0, "strike"),
        (100.0, 100.0, nan, 0.2, 0.0, "years"),
        (100.0, 100.0, 1.0, -inf, 0.0, "vol"),
        (100.0, 100.0, 1.0, 0.2, nan, "rate"),
    ];
    for (s, k, t, v, r, input) in cases {
        assert_eq!(
            black_scholes(Call, s, k, t, v, r),
            Err(PricingError::NonFinite { input })
        );
    }
    let out_of_range = [
        (-1.0, 100.0, 1.0, 0.2, 0.0, "spot"),
        (0.0, 100.0, 1.0, 0.2, 0.0, "spot"),
        (100.0, 0.0, 1.0, 0.2, 0.0, "strike"),
        (100.0, 1e21, 1.0, 0.2, 0.0, "strike"),
        (100.0, 100.0, -1e-9, 0.2, 0.0, "years"),
        (100.0, 100.0, 101.0, 0.2, 0.0, "years"),
        (100.0, 100.0, 1.0, -0.2, 0.0, "vol"),
        (100.0, 100.0, 1.0, 10.5, 0.0, "vol"),
        (100.0, 100.0, 1.0, 0.2, 1.5, "rate"),
    ];
    for (s, k, t, v, r, input) in out_of_range {
        match black_scholes(Put, s, k, t, v, r) {
            Err(PricingError::OutOfRange { input: got, .. }) => assert_eq!(got, input),
            other => panic!("{input}: {other:?}"),
        }
    }
    assert!(implied_vol(Call, -1.0, 100.0, 1.0, 0.0, 1.0).is_err());
    // Subnormal vol × sqrt(years) at the money: gamma would be infinite.
    assert_eq!(
        black_scholes(Call, 1e-20, 1e-20, 1.0, 5e-324, 0.0),
        Err(PricingError::NotRepresentable)
    );
}

#[test]
fn extreme_inputs_stay_finite() {
    for right in [Call, Put] {
        for &(s, k) in &[(MONEY_MIN, MONEY_MAX), (MONEY_MAX, MONEY_MIN), (1.0, 1.0)] {
            for &(t, v) in &[(YEARS_MAX, VOL_MAX), (1e-300, 1e-10), (YEARS_MAX, 1e-12)] {
                for r in [-RATE_ABS_MAX, RATE_ABS_MAX] {
                    let g = black_scholes(right, s, k, t, v, r).unwrap();
                    assert!(g.price >= 0.0, "{right:?} {s} {k} {t} {v} {r}");
                }
            }
        }
    }
}

#[test]
fn marks_round_to_ticks() {
    // 100 USD index, 100 USD strike, 30 days, 60 % vol: premium ≈ 6.8658 USD.
    let spot = 100_000_000;
    let g = black_scholes(Call, 100e6, 100e6, 30.0 / 365.0, 0.6, 0.0).unwrap();
    let ticks = mark_ticks(Call, spot, spot, 30.0 / 365.0, 0.6, 10_000).unwrap();
    assert_eq!(ticks, libm::round(g.price / 10_000.0) as i64);
    assert!((ticks * 10_000 - g.price as i64).abs() <= 5_000);
    // Deep out of the money rounds to zero; at expiry it is the intrinsic value.
    assert_eq!(mark_ticks(Put, spot, 1_000_000, 0.01, 0.3, 1), Ok(0));
    assert_eq!(
        mark_ticks(Put, spot, 2 * spot, 0.0, 0.3, 1_000_000),
        Ok(100)
    );
    assert_eq!(
        mark_ticks(Call, 0, spot, 0.1, 0.3, 1),
        Err(PricingError::NotPositive {
            input: "spot_micros",
            value: 0
        })
    );
    assert_eq!(
        mark_ticks(Call, spot, spot, 0.1, 0.3, -5),
        Err(PricingError::NotPositive {
            input: "tick_size_micros",
            value: -5
        })
    );
    assert!(matches!(
        mark_ticks(Call, i64::MAX, 1, 0.1, 0.3, 1),
        Err(PricingError::MarkOutOfRange { .. })
    ));
    assert_eq!(
        mark_ticks(Call, i64::MAX, 1, 0.1, 0.3, 2),
        Ok(4_611_686_018_427_387_904)
    );
}
