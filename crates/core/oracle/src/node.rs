//! One oracle node's observation of one feed: a weighted median over its venue sources.
//!
//! Per round: sources older than [`NodeConfig::staleness_ms`] are dropped; the price is the
//! weighted median of the fresh sources (the lowest price at which the cumulative weight reaches
//! half the total), so a venue whose weight is below half of the fresh total cannot move it
//! alone; each source price is then clamped to within [`NodeConfig::outlier_bps`] of that median,
//! and the confidence is the larger of the weighted mean absolute deviation of the clamped prices
//! and the weighted median half-spread. All integer arithmetic.

use bulwark_engine::oracle::{Observation, SignedObservation};
use ed25519_dalek::SigningKey;

/// One venue's current quote as a node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceQuote {
    /// Mid (or last trade) price, micros.
    pub price_micros: i64,
    /// Half the bid-ask spread, micros (0 when only a trade is known).
    pub half_spread_micros: i64,
    /// When the venue last updated it, ms.
    pub time_ms: u64,
}

/// A node's observation rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Weight per source (same order as the quotes given to [`observe`]); 0 ignores a source.
    pub weights: Vec<u32>,
    /// A source older than this at observation time is dropped, ms.
    pub staleness_ms: u64,
    /// Source prices are clamped to the median ± this many bps for the confidence.
    pub outlier_bps: u32,
    /// Fewest fresh sources to observe at all.
    pub sources_min: usize,
}

impl NodeConfig {
    /// Equal weights over `sources` venues, 2 s staleness, 100 bps outlier clamp, one source
    /// minimum.
    pub fn equal(sources: usize) -> Self {
        NodeConfig {
            weights: vec![1; sources],
            staleness_ms: 2_000,
            outlier_bps: 100,
            sources_min: 1,
        }
    }
}

/// Forms an unsigned observation from `quotes` (one per source, `None` when a source never
/// quoted) at `now_ms`, or `None` when fewer than `sources_min` sources are fresh.
pub fn observe(
    config: &NodeConfig,
    quotes: &[Option<SourceQuote>],
    feed: u16,
    round: u64,
    now_ms: u64,
) -> Option<Observation> {
    let mut fresh: Vec<(i64, i64, u64)> = quotes
        .iter()
        .zip(&config.weights)
        .filter_map(|(q, &w)| {
            let q = (*q)?;
            let fresh = w > 0
                && q.price_micros > 0
                && now_ms.saturating_sub(q.time_ms) <= config.staleness_ms;
            fresh.then_some((q.price_micros, q.half_spread_micros.max(0), u64::from(w)))
        })
        .collect();
    if fresh.is_empty() || fresh.len() < config.sources_min {
        return None;
    }
    let median = weighted_median(&mut fresh.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>());
    let width = i128::from(median) * i128::from(config.outlier_bps) / 10_000;
    let (low, high) = (i128::from(median) - width, i128::from(median) + width);
    let total: u128 = fresh.iter().map(|f| u128::from(f.2)).sum();
    let deviation: u128 = fresh
        .iter()
        .map(|f| {
            let clamped = i128::from(f.0).clamp(low, high);
            (clamped - i128::from(median)).unsigned_abs() * u128::from(f.2)
        })
        .sum::<u128>()
        / total;
    fresh.sort_unstable_by_key(|f| f.1);
    let spread = weighted_median(&mut fresh.iter().map(|f| (f.1, f.2)).collect::<Vec<_>>());
    let confidence = i64::try_from(deviation)
        .unwrap_or(i64::MAX)
        .max(spread)
        .min(median);
    Some(Observation {
        feed,
        round,
        price_micros: median,
        confidence_micros: confidence,
        time_ms: now_ms,
        sources: u8::try_from(fresh.len()).unwrap_or(u8::MAX),
    })
}

/// The lowest value at which the cumulative weight reaches half the total (sorts the slice).
/// The slice must be non-empty with a positive total weight.
fn weighted_median(values: &mut [(i64, u64)]) -> i64 {
    values.sort_unstable();
    let total: u128 = values.iter().map(|v| u128::from(v.1)).sum();
    let mut cumulative = 0u128;
    for &(value, weight) in values.iter() {
        cumulative += u128::from(weight);
        if cumulative * 2 >= total {
            return value;
        }
    }
    values.last().map_or(0, |v| v.0)
}

/// An oracle node: its observation rules and its signing key.
pub struct OracleNode {
    /// Observation rules.
    pub config: NodeConfig,
    key: SigningKey,
}

impl std::fmt::Debug for OracleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleNode")
            .field("config", &self.config)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl OracleNode {
    /// A node with `key` (ed25519-dalek zeroizes it on drop).
    pub fn new(config: NodeConfig, key: SigningKey) -> Self {
        OracleNode { config, key }
    }

    /// The node's public key (its committee identity).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Observes and signs, or `None` when too few sources are fresh.
    pub fn observe(
        &self,
        quotes: &[Option<SourceQuote>],
        feed: u16,
        round: u64,
        now_ms: u64,
    ) -> Option<SignedObservation> {
        let observation = observe(&self.config, quotes, feed, round, now_ms)?;
        Some(SignedObservation::sign(observation, &self.key))
    }

    /// Signs an arbitrary observation (for simulated faulty nodes and tests).
    pub fn sign(&self, observation: Observation) -> SignedObservation {
        SignedObservation::sign(observation, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(price: i64, t: u64) -> Option<SourceQuote> {
        Some(SourceQuote {
            price_micros: price,
            half_spread_micros: 1,
            time_ms: t,
        })
    }

    #[test]
    fn one_venue_below_half_weight_cannot_move_the_median() {
        let cfg = NodeConfig {
            weights: vec![2, 2, 1],
            ..NodeConfig::equal(3)
        };
        let o = observe(
            &cfg,
            &[q(1_000_000, 0), q(1_001_000, 0), q(1_300_000, 0)],
            0,
            1,
            0,
        );
        let o = o.expect("observes");
        assert_eq!(o.price_micros, 1_001_000);
        assert_eq!(o.sources, 3);
        // The spike is clamped to +1 %: deviation = (1 000 × 2 + 10 010 × 1) / 5.
        assert_eq!(o.confidence_micros, 2_402, "{o:?}");
    }

    #[test]
    fn stale_sources_are_dropped() {
        let cfg = NodeConfig::equal(3);
        let o = observe(&cfg, &[q(100, 0), q(200, 5_000), None], 0, 1, 5_000).expect("one fresh");
        assert_eq!((o.price_micros, o.sources), (200, 1));
        assert_eq!(observe(&cfg, &[q(100, 0), None, None], 0, 1, 5_000), None);
    }
}
