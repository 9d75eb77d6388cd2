//! Aggregation of one round's observations: a median price and a Pyth-style confidence, in
//! integers, independent of the observations' order.
//!
//! - Price: the median of the observed prices (the mean of the two middle ones, rounded down, for
//!   an even count). With at most `f` faulty observations among at least `2f + 1`, the median lies
//!   between two honest observations.
//! - Confidence: the median over observations of `|pᵢ − P| + cᵢ`: each node's own confidence
//!   widened by its distance from the aggregate (Pyth widens the aggregate's interval by the
//!   publishers' dispersion in the same spirit). Unlike Pyth's 25/75 % quantiles of the 3n
//!   `p ± c` votes, a median stays honest while fewer than half the observations are faulty, so
//!   `f` colluders out of `3f + 1` cannot widen it by themselves.
//! - Sources: the median number of venues behind an observation (lower median).

use serde::{Deserialize, Serialize};

use super::Observation;

/// One round's aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Median price, micros.
    pub price_micros: i64,
    /// Confidence half-width, micros.
    pub confidence_micros: i64,
    /// Median venue-source count.
    pub sources: u8,
    /// Observations aggregated.
    pub count: u32,
}

/// Aggregates observations (any order); `None` for an empty slice. Prices and confidences must be
/// in the ranges the round rules enforce (positive, at most [`super::PRICE_MICROS_MAX`]).
pub fn aggregate(observations: &[Observation]) -> Option<Aggregate> {
    if observations.is_empty() {
        return None;
    }
    let mut prices: Vec<i64> = observations.iter().map(|o| o.price_micros).collect();
    let price = median(&mut prices);
    let mut widths: Vec<i64> = observations
        .iter()
        .map(|o| {
            (o.price_micros - price)
                .saturating_abs()
                .saturating_add(o.confidence_micros)
        })
        .collect();
    let confidence = median(&mut widths);
    let mut sources: Vec<u8> = observations.iter().map(|o| o.sources).collect();
    sources.sort_unstable();
    Some(Aggregate {
        price_micros: price,
        confidence_micros: confidence,
        sources: sources[(sources.len() - 1) / 2],
        count: u32::try_from(observations.len()).unwrap_or(u32::MAX),
    })
}

/// The median of a non-empty slice (sorts it); the mean of the middle two, rounded down, for an
/// even length.
fn median(values: &mut [i64]) -> i64 {
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        let sum = i128::from(values[n / 2 - 1]) + i128::from(values[n / 2]);
        i64::try_from(sum.div_euclid(2)).expect("the mean of two i64 values fits an i64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(price: i64, conf: i64) -> Observation {
        Observation {
            feed: 0,
            round: 1,
            price_micros: price,
            confidence_micros: conf,
            time_ms: 0,
            sources: 3,
        }
    }

    #[test]
    fn median_resists_f_outliers() {
        let a = aggregate(&[obs(100, 1), obs(101, 1), obs(99, 1), obs(120, 0)]).expect("some");
        assert_eq!(a.price_micros, 100);
        // Widths: 1, 2, 2, 20 → median (2 + 2) / 2.
        assert_eq!(a.confidence_micros, 2);
        let b = aggregate(&[
            obs(100, 1),
            obs(101, 1),
            obs(99, 1),
            obs(100, 2),
            obs(102, 1),
            obs(150, 0),
            obs(150, 0),
        ])
        .expect("some");
        assert_eq!(b.price_micros, 101);
        assert!(b.confidence_micros <= 3, "{b:?}");
    }

    #[test]
    fn order_does_not_matter() {
        let mut v = vec![obs(5, 1), obs(9, 0), obs(7, 2), obs(6, 1), obs(100, 5)];
        let a = aggregate(&v);
        v.reverse();
        assert_eq!(a, aggregate(&v));
        assert_eq!(aggregate(&[]), None);
    }
}
