//! The placement rule: no data center may hold t shares or more, so a data center that falls
//! (seized, flooded, or run by one hostile operator) cannot sign alone.

use std::collections::BTreeMap;

/// A data center holds as many shares as the threshold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data center {data_center:?} would hold {count} vault shares; t = {threshold} may not share one (refusing to start)")]
pub struct PlacementError {
    /// The over-full data center.
    pub data_center: String,
    /// Shares in it.
    pub count: usize,
    /// The signing threshold.
    pub threshold: u16,
}

/// Checks that no data center in `data_centers` (one entry per share holder) appears
/// `threshold` times or more.
pub fn check(data_centers: &[&str], threshold: u16) -> Result<(), PlacementError> {
    let mut per_center: BTreeMap<&str, usize> = BTreeMap::new();
    for center in data_centers {
        *per_center.entry(center).or_default() += 1;
    }
    match per_center
        .into_iter()
        .find(|(_, count)| *count >= usize::from(threshold))
    {
        Some((center, count)) => Err(PlacementError {
            data_center: center.to_string(),
            count,
            threshold,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_center_with_t_shares_is_refused() {
        let t = crate::threshold(4);
        assert!(check(&["a", "b", "c", "d"], t).is_ok());
        assert!(check(&["a", "a", "b", "c"], t).is_ok(), "2 < t = 3");
        let refused = check(&["a", "a", "a", "b"], t).expect_err("3 = t");
        assert_eq!((refused.data_center.as_str(), refused.count), ("a", 3));
        assert!(check(&["x"; 7], crate::threshold(7)).is_err());
        assert!(check(&[], 2).is_ok());
    }
}
