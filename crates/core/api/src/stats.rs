//! The one percentile every latency figure uses (node status, `up`'s status line, benches).

/// The `p`-th percentile (0–100) of `sorted` by nearest rank: the element at
/// `len × p / 100`, clamped to the last; `None` when empty. `sorted` must be ascending.
pub fn percentile<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let at = (sorted.len() * p.min(100) as usize / 100).min(last);
    Some(sorted[at])
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
}
