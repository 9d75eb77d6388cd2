//! Helpers of the metrics checks: what `docs/metrics.md` documents.
#![allow(dead_code)]

use std::path::Path;

/// Fails on a metric family `docs/metrics.md` does not list (by its name, or a counter's with
/// `_total`).
pub fn every_family_is_documented(names: &[String]) {
    let documented = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
    )
    .unwrap();
    for name in names {
        assert!(
            documented.contains(&format!("`{name}`"))
                || documented.contains(&format!("`{name}_total`")),
            "{name} is served but docs/metrics.md does not list it"
        );
    }
}
