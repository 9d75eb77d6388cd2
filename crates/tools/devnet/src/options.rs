//! What a committee run is asked to do, and what it measured.

use std::path::PathBuf;
use std::time::Duration;

/// Options of the committee `up`.
#[derive(Debug, Clone)]
pub struct CommitteeOptions {
    /// Data directory (the committee lives in `<data>/committee`).
    pub data: PathBuf,
    /// Committee size.
    pub nodes: usize,
    /// Spare machines written as candidates (nodes `nodes..nodes + candidates`, listed in every
    /// configuration but not started and not in the genesis committee): a newcomer that can
    /// take a removed member's seat (`bulwark admin replace`). DEVELOPMENT attestor only.
    pub candidates: usize,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Client orders per second offered.
    pub rate: u64,
    /// Seed of the development client keys.
    pub seed: u64,
    /// Start over.
    pub fresh: bool,
    /// First p2p port; client ports start 100 above.
    pub base_port: u16,
    /// Print the status line.
    pub status: bool,
    /// Re-attestation interval of the nodes' attested admission, milliseconds.
    pub admission_interval_ms: u64,
    /// Attest with one software TPM (swtpm) per node instead of the DEVELOPMENT attestor
    /// (when the committee is created; a resumed committee keeps its mode).
    pub tpm: bool,
    /// Real price sources for underlying 0 (when the committee is created); `None` keeps the
    /// DEVELOPMENT synthetic feed.
    pub oracle: Option<bulwark_oracle::source::SourcesConfig>,
    /// Replace this node's binary by a tampered copy after this long (it restarts from the
    /// copy), so that the committee's sentinel removes it; `None`: nobody is tampered with.
    pub tamper: Option<(usize, Duration)>,
}

/// Sources for `up --oracle-capture` / `--oracle-url`: captures replayed at their recorded pace
/// and looped, or live WebSocket venues; `None` when neither is given (both: an error later,
/// from validation, names the conflict).
pub fn oracle_sources(
    captures: &[PathBuf],
    urls: &[String],
) -> Option<bulwark_oracle::source::SourcesConfig> {
    use bulwark_oracle::source::{SourceKind, SourcesConfig, VenueConfig};
    if captures.is_empty() && urls.is_empty() {
        return None;
    }
    let venue = |index: usize, url: Option<String>, capture: Option<PathBuf>| VenueConfig {
        name: format!("venue-{index}"),
        weight: 1,
        url,
        capture: capture.map(|path| std::path::absolute(&path).unwrap_or(path)),
        speed: 1,
        repeat: true,
    };
    let (source, venues) = if urls.is_empty() {
        (
            SourceKind::Capture,
            captures
                .iter()
                .enumerate()
                .map(|(i, path)| venue(i, None, Some(path.clone())))
                .collect(),
        )
    } else {
        (
            SourceKind::Live,
            urls.iter()
                .enumerate()
                .map(|(i, url)| venue(i, Some(url.clone()), None))
                .chain(
                    captures
                        .iter()
                        .enumerate()
                        .map(|(i, path)| venue(urls.len() + i, None, Some(path.clone()))),
                )
                .collect(),
        )
    };
    Some(SourcesConfig {
        source,
        venues,
        reconnect_initial_ms: 500,
        reconnect_max_ms: 30_000,
        connect_timeout_ms: 10_000,
        idle_timeout_ms: 30_000,
    })
}

/// What a committee run measured.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// Client orders finalized per second that the engine accepted, over the measured window.
    pub accepted_per_s: f64,
    /// Client orders finalized per second that the engine refused (in a block, doing nothing).
    pub rejected_per_s: f64,
    /// Submit-to-finalized p50 at the first node, ms.
    pub p50_ms: Option<f64>,
    /// Submit-to-finalized p99 at the first node, ms.
    pub p99_ms: Option<f64>,
    /// Whether the roots agreed: at least one height was reported by two or more nodes, and
    /// every pair of nodes agreed on the root at every height both reported.
    pub roots_agree: bool,
    /// Heights that two or more nodes reported (the heights whose roots were compared).
    pub roots_compared: u64,
    /// Highest height seen.
    pub height: u64,
    /// Oracle observation-to-finalized p50 at the first node, ms.
    pub oracle_p50_ms: Option<f64>,
    /// Oracle observation-to-finalized p99 at the first node, ms.
    pub oracle_p99_ms: Option<f64>,
    /// The epoch the most advanced node reached.
    pub epoch: u64,
    /// With `tamper`: wall seconds from the tampered binary's start to the committee's state
    /// showing the node removed (out of the participant set); `None` if that did not happen.
    pub tamper_to_removed_s: Option<f64>,
    /// Chain deposits the most advanced node's committed state credited (the DEVELOPMENT
    /// simulated chain's, each certified by n − f members through a block).
    pub deposits_credited: u64,
    /// Withdrawals the most advanced node's committed state recorded.
    pub withdrawals_requested: u64,
    /// Withdrawals the vault signed, as the node that holds the most checked signatures saw it.
    pub withdrawals_signed: u64,
    /// Signing rounds to a signature, as the node that coordinated the most saw them: (rounds,
    /// p50 ms, p99 ms) from its commit request to the checked signature.
    pub vault_rounds: Option<(u64, f64, f64)>,
    /// The same node's p50 round trip to its peers on the signing channel, ms.
    pub vault_rtt_ms: Option<f64>,
    /// The slowest node's p50 time to release a signature share once asked, and of that its
    /// synced writes, ms.
    pub vault_share_ms: Option<(f64, f64)>,
}
