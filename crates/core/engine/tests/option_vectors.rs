//! Golden vectors for `bulwark_engine::pricing`, generated with QuantLib's AnalyticEuropeanEngine.
//!
//! Source, conventions and how to regenerate: `tests/vectors/README.md`. Every vector is checked
//! for price and all five Greeks, and for an implied-volatility round trip.
//!
//! Tolerance: `|ours − quantlib| ≤ ABS_PER_SCALE · scale + REL · |quantlib|`, where `scale` is the
//! natural size of the quantity for that option (spot for money-valued figures, 1 for delta,
//! 1/spot for gamma). The absolute part is needed because QuantLib's normal CDF is computed as
//! `½(1 + erf x)`, which loses relative accuracy far in the lower tail; ours uses `erfc`.

use bulwark_engine::instrument::OptionRight;
use bulwark_engine::pricing::{black_scholes, implied_vol, Greeks};
use serde::Deserialize;

const VECTORS_JSON: &str = include_str!("vectors/options_quantlib.json");

/// Relative part of the tolerance.
const REL: f64 = 1e-12;
/// Absolute part of the tolerance, as a multiple of the quantity's natural scale.
const ABS_PER_SCALE: f64 = 1e-14;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    source: String,
    command: String,
    #[allow(dead_code)] // Documentation for readers of the JSON; nothing to check.
    conventions: serde_json::Value,
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    right: OptionRight,
    spot: f64,
    strike: f64,
    days: u32,
    years: f64,
    vol: f64,
    rate: f64,
    price: f64,
    delta: f64,
    gamma: f64,
    vega: f64,
    theta: f64,
    rho: f64,
}

impl Vector {
    /// Actual/365 Fixed, computed as QuantLib does, rather than trusting the JSON float parser
    /// to the last ulp.
    fn years(&self) -> f64 {
        f64::from(self.days) / 365.0
    }

    fn expected(&self) -> Greeks {
        Greeks {
            price: self.price,
            delta: self.delta,
            gamma: self.gamma,
            vega: self.vega,
            theta: self.theta,
            rho: self.rho,
        }
    }
}

fn vectors() -> VectorFile {
    serde_json::from_str(VECTORS_JSON).expect("options_quantlib.json must parse")
}

fn within(ours: f64, theirs: f64, scale: f64) -> bool {
    (ours - theirs).abs() <= ABS_PER_SCALE * scale + REL * theirs.abs()
}

#[test]
fn header_names_source_and_command() {
    let file = vectors();
    assert!(file.source.starts_with("QuantLib "), "{}", file.source);
    assert!(file.command.contains("scripts/gen_option_vectors.py"));
    assert!(file.vectors.len() >= 50, "{} vectors", file.vectors.len());
    for v in &file.vectors {
        assert!(
            (v.years() - v.years).abs() <= f64::EPSILON * v.years,
            "{v:?}"
        );
    }
}

#[test]
fn price_and_greeks_match_quantlib() {
    let mut failures = Vec::new();
    for (i, v) in vectors().vectors.iter().enumerate() {
        let ours = black_scholes(v.right, v.spot, v.strike, v.years(), v.vol, v.rate)
            .expect("every vector's inputs are in range");
        let theirs = v.expected();
        let money = v.spot;
        for (name, a, b, scale) in [
            ("price", ours.price, theirs.price, money),
            ("delta", ours.delta, theirs.delta, 1.0),
            ("gamma", ours.gamma, theirs.gamma, 1.0 / v.spot),
            ("vega", ours.vega, theirs.vega, money),
            ("theta", ours.theta, theirs.theta, money),
            ("rho", ours.rho, theirs.rho, money),
        ] {
            if !within(a, b, scale) {
                failures.push(format!("#{i} {name}: ours {a:e}, QuantLib {b:e}; {v:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Feeding QuantLib's price back gives a volatility that reprices within the price tolerance,
/// and equals the vector's volatility as closely as the price determines it (price error / vega).
#[test]
fn implied_vol_round_trips_on_every_vector() {
    let mut failures = Vec::new();
    for (i, v) in vectors().vectors.iter().enumerate() {
        let years = v.years();
        let vol = match implied_vol(v.right, v.spot, v.strike, years, v.rate, v.price) {
            Ok(vol) => vol,
            Err(e) => {
                failures.push(format!("#{i}: {e}; {v:?}"));
                continue;
            }
        };
        let repriced = black_scholes(v.right, v.spot, v.strike, years, vol, v.rate)
            .expect("an implied vol is a valid input")
            .price;
        let price_tolerance = ABS_PER_SCALE * v.spot + REL * v.price;
        if (repriced - v.price).abs() > price_tolerance {
            failures.push(format!("#{i}: vol {vol} reprices to {repriced:e}; {v:?}"));
        }
        if v.vega > 0.0 && (vol - v.vol).abs() > 1e-12 + price_tolerance / v.vega {
            failures.push(format!("#{i}: implied vol {vol}, expected {}", v.vol));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
