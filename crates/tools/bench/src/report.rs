//! The one output format every benchmark shares.

use serde::Serialize;

/// One measured figure, printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct Figure<'a> {
    /// Which benchmark (`engine`, `committee`, ...).
    pub bench: &'a str,
    /// What was measured.
    pub metric: String,
    /// Our value (`None`: not measured this run; the reason is on stderr).
    pub value: Option<f64>,
    /// Its unit (`ops/s`, `ns`, `bytes`, ...).
    pub unit: &'a str,
    /// The peer or bound measured in the same run, if any.
    pub peer: Option<&'a str>,
    /// The peer's value in the same unit.
    pub peer_value: Option<f64>,
    /// Always `value / peer_value`: for rates (ops/s) above 1 means we beat the peer; for costs
    /// (time, bytes) below 1 does.
    pub ratio: Option<f64>,
}

impl Figure<'_> {
    /// Prints the figure as one line on stdout.
    pub fn print(&self) {
        println!(
            "{}",
            serde_json::to_string(self).expect("a figure must serialize")
        );
    }
}

/// Prints one figure, with `ratio = value / peer_value` when a peer or bound was measured
/// (and is not zero).
pub fn emit(bench: &str, metric: &str, value: f64, unit: &str, peer: Option<(&str, f64)>) {
    figure(
        bench,
        metric,
        Some(value),
        unit,
        peer.map(|(name, _)| name),
        peer.map(|(_, peer_value)| peer_value),
    );
}

/// Prints one figure whose value or peer value may be missing (not measured this run), and
/// returns it as JSON for callers that check their own figures.
pub fn figure(
    bench: &str,
    metric: &str,
    value: Option<f64>,
    unit: &str,
    peer: Option<&str>,
    peer_value: Option<f64>,
) -> serde_json::Value {
    let ratio = match (value, peer_value) {
        (Some(value), Some(peer_value)) if peer_value != 0.0 => Some(value / peer_value),
        _ => None,
    };
    let figure = Figure {
        bench,
        metric: metric.to_string(),
        value,
        unit,
        peer,
        peer_value,
        ratio,
    };
    figure.print();
    serde_json::to_value(&figure).expect("a figure must serialize")
}
