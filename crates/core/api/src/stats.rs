//! The one percentile every latency figure uses (node status, `up`'s status line, benches), and
//! the latency histogram the metrics expose.

/// The `p`-th percentile (0–100) of `sorted` by nearest rank: the element at
/// `len × p / 100`, clamped to the last; `None` when empty. `sorted` must be ascending.
pub fn percentile<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let at = (sorted.len() * p.min(100) as usize / 100).min(last);
    Some(sorted[at])
}

/// Upper bounds of the latency histograms, microseconds: 0.5 ms to 10 s. Samples above the last
/// bound count in `+Inf`.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram kept as plain counts (non-cumulative, one per bound of
/// [`LATENCY_BOUNDS_US`] and one more for `+Inf`), so that a core crate can keep one and the
/// operator port (`bulwark-console`) can encode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; LATENCY_BOUNDS_US.len() + 1],
            sum_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Counts one sample of `us` microseconds.
    pub fn observe_us(&mut self, us: u64) {
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// Sum of the samples, microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Samples per bucket, not cumulative: one per bound of [`LATENCY_BOUNDS_US`], then `+Inf`.
    pub fn counts(&self) -> &[u64; LATENCY_BOUNDS_US.len() + 1] {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_clamped() {
        assert_eq!(percentile::<u32>(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(51));
        assert_eq!(percentile(&values, 99), Some(100));
        assert_eq!(percentile(&values, 100), Some(100));
        assert_eq!(percentile(&values, 0), Some(1));
    }

    #[test]
    fn a_sample_lands_in_the_first_bucket_that_holds_it() {
        let mut histogram = LatencyHistogram::default();
        histogram.observe_us(500);
        histogram.observe_us(501);
        histogram.observe_us(u64::MAX);
        assert_eq!(histogram.counts()[0], 1);
        assert_eq!(histogram.counts()[1], 1);
        assert_eq!(histogram.counts()[LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(histogram.count(), 3);
        assert_eq!(histogram.sum_us(), u64::MAX);
    }
}
