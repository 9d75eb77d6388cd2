//! The one output format every benchmark shares.

use serde::Serialize;

/// One measured figure, printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct Figure<'a> {
    /// Which benchmark (`engine`, `committee`, ...).
    pub bench: &'a str,
    /// What was measured.
    pub metric: String,
    /// Our value.
    pub value: f64,
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
