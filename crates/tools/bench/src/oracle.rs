//! `bulwark bench oracle`: one JSON line per figure on stdout,
//! `{"bench","metric","value","unit","peer","peer_value","ratio"}`, progress on stderr.
//!
//! The capture files are read with [`bulwark_venues::read_capture`]; the oracle core is sans-IO.
//!
//! Figures:
//! - per round of n = 4, 7, 31 observations: aggregation alone (no signatures), the node's
//!   pre-check [`verify_oracle_round`] (one batch equation), and the engine applying the round
//!   (rules, one strict verification per observation, aggregation, guards, index), each against
//!   the physical bound of n single `verify_strict` calls measured in the same process;
//! - on the real captures (when `../shared/data/market` exists): the deviation of the certified
//!   index from each venue's mid, p50 / p99 / max in bps, with four nodes weighting the three
//!   venues differently.
//!
//! Observation→certified latency through the committee is not printed: the committee does not
//! exist yet, and a number without it would be fake.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulwark_engine::command::SystemCommand;
use bulwark_engine::oracle::{
    aggregate, verify_oracle_round, Observation, OracleConfig, SignedObservation,
};
use bulwark_engine::{Command, Engine, EngineConfig, Event};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::Value;

use bulwark_api::stats::percentile;
use bulwark_oracle::node::{NodeConfig, OracleNode};
use bulwark_oracle::proposer::RoundBuilder;
use bulwark_oracle::replay::{Replay, VenueQuote};
use bulwark_venues::{read_capture, shared_data_dir};

/// How much work the bench does.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Rounds timed per committee size.
    pub rounds: usize,
    /// The shared data directory (`<repo>/../shared/data`); `None` looks it up.
    pub data_dir: Option<PathBuf>,
    /// Capture seconds replayed at most.
    pub capture_seconds_max: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            rounds: 2_000,
            data_dir: None,
            capture_seconds_max: u64::MAX,
        }
    }
}

/// Runs every oracle figure with the default sizes.
pub fn run_bench() {
    run_bench_with(&BenchOptions::default());
}

/// Runs every oracle figure; returns the lines it printed.
pub fn run_bench_with(options: &BenchOptions) -> Vec<Value> {
    let mut lines = Vec::new();
    for n in [4usize, 7, 31] {
        eprintln!("bench oracle: aggregation, n = {n}");
        aggregation_figures(n, options.rounds.max(1), &mut lines);
    }
    eprintln!(
        "bench oracle: observation→certified latency through the committee is not measured: \
         the committee (consensus, issue 3) does not exist yet"
    );
    let dir = options.data_dir.clone().or_else(shared_data_dir);
    match dir.map(|d| d.join("market")).filter(|d| d.is_dir()) {
        Some(market) => capture_figures(&market, options.capture_seconds_max, &mut lines),
        None => eprintln!(
            "bench oracle: ../shared/data/market not found; skipping the capture deviation figures"
        ),
    }
    lines
}

fn emit(lines: &mut Vec<Value>, metric: String, value: f64, unit: &str, peer: Option<(&str, f64)>) {
    lines.push(crate::report::figure(
        "oracle",
        &metric,
        Some(value),
        unit,
        peer.map(|p| p.0),
        peer.map(|p| p.1),
    ));
}

fn committee(n: usize, seed: u8) -> (Vec<SigningKey>, OracleConfig) {
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            let mut bytes = [seed; 32];
            bytes[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SigningKey::from_bytes(&bytes)
        })
        .collect();
    let config = OracleConfig {
        members: keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
        f: u32::try_from((n - 1) / 3).unwrap_or(0),
        ..OracleConfig::default()
    };
    (keys, config)
}

fn signed_round(keys: &[SigningKey], round: u64, time_ms: u64) -> Vec<SignedObservation> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let o = Observation {
                feed: 0,
                round,
                price_micros: 60_000_000_000 + (i as i64 % 7) * 1_000_000,
                confidence_micros: 3_000_000,
                time_ms,
                sources: 3,
            };
            SignedObservation::sign(o, k)
        })
        .collect()
}

fn aggregation_figures(n: usize, rounds: usize, lines: &mut Vec<Value>) {
    let (keys, config) = committee(n, 7);
    let prepared: Vec<Vec<SignedObservation>> = (0..rounds)
        .map(|r| signed_round(&keys, r as u64 + 1, (r as u64 + 1) * 1_000))
        .collect();

    // The physical bound: n single strict verifications.
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let start = Instant::now();
    for round in &prepared {
        for (o, k) in round.iter().zip(&verifying) {
            let ok = k.verify_strict(
                &o.observation.signed_message(),
                &Signature::from_bytes(&o.signature),
            );
            black_box(ok.is_ok());
        }
    }
    let bound_us = per_round_us(start, rounds);
    let peer = Some(("ed25519_verify_strict_x_n", bound_us));

    let plain: Vec<Vec<Observation>> = prepared
        .iter()
        .map(|r| r.iter().map(|o| o.observation).collect())
        .collect();
    let start = Instant::now();
    for round in &plain {
        black_box(aggregate(black_box(round)));
    }
    emit(
        lines,
        format!("aggregate_only_n{n}"),
        per_round_us(start, rounds),
        "us/round",
        None,
    );

    let start = Instant::now();
    for (r, round) in prepared.iter().enumerate() {
        let ok = verify_oracle_round(&config, 0, r as u64 + 1, round);
        black_box(ok.is_ok());
    }
    emit(
        lines,
        format!("verify_oracle_round_batch_n{n}"),
        per_round_us(start, rounds),
        "us/round",
        peer,
    );

    let mut engine = Engine::new(EngineConfig {
        oracle: config,
        ..EngineConfig::default()
    });
    let batches: Vec<Vec<Command>> = prepared
        .into_iter()
        .enumerate()
        .map(|(r, observations)| {
            vec![Command::System(SystemCommand::OracleRound {
                underlying: 0,
                round: r as u64 + 1,
                observations,
            })]
        })
        .collect();
    let mut out = Vec::new();
    let mut refused = 0usize;
    let start = Instant::now();
    for (r, batch) in batches.iter().enumerate() {
        out.clear();
        engine.execute((r as u64 + 1) * 1_000, batch, &mut out);
        refused += usize::from(out.iter().any(|e| matches!(e, Event::Rejected { .. })));
    }
    let value = per_round_us(start, rounds);
    if refused > 0 {
        eprintln!("bench oracle: {refused} rounds refused by the engine (a bench bug)");
    }
    emit(
        lines,
        format!("engine_oracle_round_n{n}"),
        value,
        "us/round",
        peer,
    );
}

fn per_round_us(start: Instant, rounds: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / rounds as f64
}

const CAPTURES: [(&str, &str); 3] = [
    ("spot_btcusdt", "spot_btcusdt_20240808.gz"),
    ("usdm_btcusdt", "usdm_btcusdt_20240808.gz"),
    ("cm_btcusd_perp", "cm_btcusd_perp_20240808.gz"),
];

/// Replays the three captures through four nodes and one engine; prints deviation figures.
fn capture_figures(dir: &Path, seconds_max: u64, lines: &mut Vec<Value>) {
    let Some(stream) = read_stream(dir) else {
        return;
    };
    let Some(&(t0, _, _)) = stream.first() else {
        return;
    };
    let (keys, config) = committee(4, 9);
    let weights = [[1, 1, 1], [2, 2, 1], [1, 2, 2], [2, 1, 2]];
    let nodes: Vec<OracleNode> = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let cfg = NodeConfig {
                weights: weights[i].to_vec(),
                ..NodeConfig::equal(3)
            };
            OracleNode::new(cfg, k)
        })
        .collect();
    let roster = bulwark_engine::oracle::OracleRoster::genesis(&config);
    let mut engine = Engine::new(EngineConfig {
        oracle: config.clone(),
        ..EngineConfig::default()
    });
    let mut quotes = [VenueQuote::default(); 3];
    let mut deviations: [Vec<i64>; 3] = Default::default();
    let mut next_round_ms = t0 + 1_000;
    let mut round = 0u64;
    let (mut certified, mut guard_opens) = (0usize, 0usize);
    let mut out = Vec::new();
    let end_ms = t0.saturating_add(seconds_max.saturating_mul(1_000));
    let mut events = stream.iter().peekable();
    while next_round_ms <= end_ms {
        while let Some((t, venue, m)) = events.next_if(|e| e.0 <= next_round_ms) {
            quotes[*venue].apply(*t, m);
        }
        if events.peek().is_none() {
            break;
        }
        let now = next_round_ms - t0;
        let sources: Vec<_> = quotes
            .iter()
            .map(|q| {
                q.source().map(|mut s| {
                    s.time_ms = s.time_ms.saturating_sub(t0);
                    s
                })
            })
            .collect();
        round += 1;
        let mut builder = RoundBuilder::new(0, round);
        for node in &nodes {
            if let Some(o) = node.observe(&sources, 0, round, now) {
                let _ = builder.offer(&roster, o);
            }
        }
        if let Ok(cmd) = builder.finish(&roster) {
            out.clear();
            engine.execute(now, &[Command::System(cmd)], &mut out);
            certified += 1;
            for e in &out {
                if let Event::OracleGuardOpened {
                    guard,
                    observed,
                    limit,
                    ..
                } = e
                {
                    guard_opens += 1;
                    eprintln!(
                        "bench oracle: capture round {round}: {guard:?} guard opened ({observed} against {limit})"
                    );
                }
            }
            if let Some(index) = engine.index_price(0) {
                for (v, s) in sources.iter().enumerate() {
                    if let Some(s) = s.filter(|s| now.saturating_sub(s.time_ms) <= 2_000) {
                        let d = (i128::from(index) - i128::from(s.price_micros)).abs() * 100_000
                            / i128::from(s.price_micros);
                        deviations[v].push(i64::try_from(d).unwrap_or(i64::MAX));
                    }
                }
            }
        }
        next_round_ms += 1_000;
    }
    eprintln!("bench oracle: {round} capture rounds");
    emit_capture_figures(lines, certified, guard_opens, &mut deviations);
}

/// Every capture's venue messages, merged in time order (time, venue, message); `None` when a
/// capture cannot be read (said on stderr).
fn read_stream(dir: &Path) -> Option<Vec<(u64, usize, bulwark_oracle::binance::VenueMessage)>> {
    let mut stream: Vec<(u64, usize, bulwark_oracle::binance::VenueMessage)> = Vec::new();
    for (venue, (name, file)) in CAPTURES.iter().enumerate() {
        eprintln!("bench oracle: reading {name}");
        let reader = match read_capture(&dir.join(file)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bench oracle: cannot read {file}: {e}; skipping the capture figures");
                return None;
            }
        };
        let mut replay = Replay::new();
        for line in reader.flatten() {
            if let Some((t, m)) = replay.line(&line) {
                stream.push((t, venue, m));
            }
        }
        eprintln!(
            "bench oracle: {name}: {} lines refused, {} unsupported",
            replay.refused, replay.unsupported
        );
    }
    stream.sort_by_key(|e| (e.0, e.1));
    Some(stream)
}

/// The capture figures: rounds certified, guards opened, and the certified index's deviation
/// from each venue (p50, p99, max).
fn emit_capture_figures(
    lines: &mut Vec<Value>,
    certified: usize,
    guard_opens: usize,
    deviations: &mut [Vec<i64>; 3],
) {
    emit(
        lines,
        "capture_rounds_certified".into(),
        certified as f64,
        "rounds",
        None,
    );
    emit(
        lines,
        "capture_guard_opens".into(),
        guard_opens as f64,
        "count",
        None,
    );
    for (v, (name, _)) in CAPTURES.iter().enumerate() {
        let d = &mut deviations[v];
        if d.is_empty() {
            continue;
        }
        d.sort_unstable();
        // Deviations are kept in tenths of a basis point.
        let at = |p: u32| percentile(d, p).map_or(0.0, |v| v as f64 / 10.0);
        emit(
            lines,
            format!("capture_index_deviation_p50_{name}"),
            at(50),
            "bps",
            None,
        );
        emit(
            lines,
            format!("capture_index_deviation_p99_{name}"),
            at(99),
            "bps",
            None,
        );
        emit(
            lines,
            format!("capture_index_deviation_max_{name}"),
            at(100),
            "bps",
            None,
        );
    }
}
