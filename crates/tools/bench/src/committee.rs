//! Benchmarks that run a committee of node processes on loopback (through `bulwark-devnet`):
//! `bench committee`, the tamper→cut-off part of `bench attest`, and the committee part of
//! `bench oracle`.

use crate::report::emit;
use bulwark_devnet::{run_committee, CommitteeError, CommitteeOptions, RunFigures};
use bulwark_node::client::Client;
use bulwark_testkit::client_key;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Signatures one core verifies per second in batches of 1 000 (the engine's verify_batch).
pub(crate) fn single_core_verify_rate() -> f64 {
    let key = client_key(0, 1);
    let txs: Vec<bulwark_engine::codec::SignedTx> = (0..1_000)
        .map(|k| bulwark_testkit::signed_flow_order(0, 1, k, k + 1, 600_000))
        .collect();
    let public = key.verifying_key().to_bytes();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = bulwark_engine::codec::verify_batch(&txs, |_| Some(public));
    }
    (rounds * txs.len()) as f64 / started.elapsed().as_secs_f64()
}

/// `bulwark bench committee`: two runs of 4 node processes on loopback, each with a fresh
/// committee: at `rate` (the goal's 5 000 orders/s by default) for throughput and latency, then
/// offered `saturate` orders/s for the most the committee finalizes, compared with the
/// machine's bound measured in the same run.
pub fn run_bench(duration: u64, rate: u64, saturate: u64, base_port: u16) -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let verify = single_core_verify_rate();
    let bound = verify * cores / 4.0;
    line("single_core_verify_rate", verify, "signatures/s", "", None);
    let mut agree = true;
    for (phase, offered, port) in [
        ("goal_rate", rate, base_port),
        ("saturated", saturate, base_port + 300),
    ] {
        let data = std::env::temp_dir().join(format!(
            "bulwark-bench-committee-{}-{phase}",
            std::process::id()
        ));
        let options = CommitteeOptions {
            data: data.clone(),
            nodes: 4,
            candidates: 0,
            duration: Some(Duration::from_secs(duration.max(8))),
            rate: offered,
            seed: 1,
            fresh: true,
            base_port: port,
            status: true,
            admission_interval_ms: 1_000,
            tpm: false,
            oracle: None,
            tamper: None,
        };
        eprintln!("bench committee ({phase}): 4 node processes on loopback, {offered} orders/s offered for {duration} s");
        let result = run_committee(&options, Arc::new(AtomicBool::new(false)));
        let _ = std::fs::remove_dir_all(&data);
        let figures = match result {
            Ok(figures) => figures,
            Err(error) => {
                eprintln!("bench committee: {error}");
                return ExitCode::from(2);
            }
        };
        agree &= figures.roots_agree;
        phase_figures(phase, offered, bound, &figures);
    }
    if agree {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench committee: the nodes' state roots DIVERGED, or no height was reported by two nodes (see roots_compared)");
        ExitCode::from(1)
    }
}

/// One `committee` figure.
fn line(metric: &str, value: f64, unit: &str, peer: &str, peer_value: Option<f64>) {
    emit(
        "committee",
        metric,
        value,
        unit,
        peer_value.map(|peer_value| (peer, peer_value)),
    );
}

/// The figures of one phase (`goal_rate` or `saturated`), offered `offered` orders/s, against
/// the verify `bound`.
fn phase_figures(phase: &str, offered: u64, bound: f64, figures: &RunFigures) {
    line(
        &format!("{phase}_offered"),
        offered as f64,
        "orders/s",
        "",
        None,
    );
    // Accepted and refused apart: a refused order is in a block but did nothing.
    line(
        &format!("{phase}_finalized_accepted_orders_per_s"),
        figures.accepted_per_s,
        "orders/s",
        "bound: 1-core batch verify rate x cores / 4 replicas",
        Some(bound),
    );
    line(
        &format!("{phase}_finalized_rejected_orders_per_s"),
        figures.rejected_per_s,
        "orders/s",
        "",
        None,
    );
    if phase == "goal_rate" {
        line(
            "goal_rate_finalized_accepted_vs_goal",
            figures.accepted_per_s,
            "orders/s",
            "goal 5000 orders/s",
            Some(5_000.0),
        );
    }
    line(
        &format!("{phase}_roots_compared"),
        figures.roots_compared as f64,
        "heights",
        "",
        None,
    );
    if let Some(p50) = figures.p50_ms {
        line(
            &format!("{phase}_submit_to_finalized_p50"),
            p50,
            "ms",
            "goal (at most)",
            Some(50.0),
        );
    }
    if let Some(p99) = figures.p99_ms {
        line(
            &format!("{phase}_submit_to_finalized_p99"),
            p99,
            "ms",
            "goal (at most)",
            Some(250.0),
        );
    }
    line(
        &format!("{phase}_height"),
        figures.height as f64,
        "blocks",
        "",
        None,
    );
    if let Some(p50) = figures.oracle_p50_ms {
        line(
            &format!("{phase}_oracle_observation_to_finalized_p50"),
            p50,
            "ms",
            "one round",
            Some(1_000.0),
        );
    }
    if let Some(p99) = figures.oracle_p99_ms {
        line(
            &format!("{phase}_oracle_observation_to_finalized_p99"),
            p99,
            "ms",
            "one round",
            Some(1_000.0),
        );
    }
}

/// Milliseconds from a tamper to each peer's cut-off, two ways.
#[derive(Debug, Clone, Default)]
pub struct CutoffDelays {
    /// To the peer's admission decision (its status's `cut_off_at_ms`).
    pub decision: Vec<f64>,
    /// To the moment the kernel shows no connection between the peer and the victim.
    pub closed: Vec<f64>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why [`cutoff_delays`] could not measure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CutoffError {
    /// The committee cannot be provisioned or launched.
    #[error(transparent)]
    Committee(#[from] CommitteeError),
    /// Not every node reported a finalized height in time; see the node logs.
    #[error("the committee did not start within 120 s")]
    StartTimeout,
    /// The victim's policy file cannot be read or changed.
    #[error("{}: {source}", .path.display())]
    Tamper {
        /// The policy file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A peer did not report the tampered node as cut off in time.
    #[error("node {victim} was not cut off within 30 s")]
    NotCutOff {
        /// The tampered node.
        victim: usize,
    },
}

/// Tamper→cut-off: a 4-node committee with attested admission at `interval_ms`; the policy
/// file one node measures is changed while it runs (its next evidence carries a different
/// application measurement), and each peer's cut-off time (from its status) is compared with
/// the moment of the change. Two tampers (node 3, then node 2) give five delays, in ms. With
/// `tpm`, every node quotes from its own software TPM and the change reaches the quote as a
/// logged extension of the launch PCR.
pub fn cutoff_delays(
    base_port: u16,
    interval_ms: u64,
    tpm: bool,
) -> Result<CutoffDelays, CutoffError> {
    let data = std::env::temp_dir().join(format!(
        "bulwark-bench-cutoff-{}-{}",
        std::process::id(),
        if tpm { "tpm" } else { "dev" }
    ));
    let options = CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        candidates: 0,
        duration: None,
        rate: 0,
        seed: 1,
        fresh: true,
        base_port,
        status: false,
        admission_interval_ms: interval_ms,
        tpm,
        oracle: None,
        tamper: None,
    };
    let result = (|| {
        let launched = bulwark_devnet::launch(&options)?;
        let endpoints = launched.endpoints.clone();
        let status = |i: usize| {
            Client::connect(endpoints[i], Duration::from_millis(300))
                .ok()
                .and_then(|mut c| c.status().ok())
        };
        let started = Instant::now();
        while !(0..4).all(|i| status(i).is_some_and(|s| s.height > 0)) {
            if started.elapsed() > Duration::from_secs(120) {
                return Err(CutoffError::StartTimeout);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut delays = CutoffDelays::default();
        let pids = launched.pids();
        let p2p = |i: usize| (pids[i], base_port + i as u16);
        let mut excluded: Vec<usize> = Vec::new();
        for victim in [3usize, 2] {
            excluded.push(victim);
            let observers: Vec<usize> = (0..4).filter(|i| !excluded.contains(i)).collect();
            // Let a fresh round of appraisals pass, then change the victim's measured policy.
            std::thread::sleep(Duration::from_millis(interval_ms + 300));
            let policy = launched.node_dir(victim).join("operators.json");
            let tamper_error = |source| CutoffError::Tamper {
                path: policy.clone(),
                source,
            };
            let mut text = std::fs::read_to_string(&policy).map_err(tamper_error)?;
            text.push('\n');
            let tampered_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            std::fs::write(&policy, text).map_err(tamper_error)?;
            let waiting = Instant::now();
            let mut cut: HashMap<usize, u64> = HashMap::new();
            let mut closed: HashMap<usize, u64> = HashMap::new();
            while cut.len() < observers.len() || closed.len() < observers.len() {
                if waiting.elapsed() > Duration::from_secs(30) {
                    return Err(CutoffError::NotCutOff { victim });
                }
                // The kernel's view: the first moment no connection joins observer and victim
                // (polled every 5 ms; the victim keeps redialing, and each redial is refused
                // at the handshake).
                for &observer in &observers {
                    if !closed.contains_key(&observer)
                        && !crate::connections::connected(p2p(observer), p2p(victim))
                    {
                        closed.insert(observer, unix_ms());
                    }
                }
                for &observer in &observers {
                    if cut.contains_key(&observer) {
                        continue;
                    }
                    let Some(status) = status(observer) else {
                        continue;
                    };
                    let victim_name = format!("dc-{victim}/");
                    let at = status.admission.as_ref().and_then(|peers| {
                        peers
                            .iter()
                            .find(|(name, _)| name.starts_with(&victim_name))
                            .and_then(|(_, peer)| peer.cut_off_at_ms)
                    });
                    if let Some(at) = at {
                        cut.insert(observer, at);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            for at in cut.values() {
                delays.decision.push(at.saturating_sub(tampered_at) as f64);
            }
            for at in closed.values() {
                delays.closed.push(at.saturating_sub(tampered_at) as f64);
            }
        }
        drop(launched);
        Ok(delays)
    })();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// `bulwark bench attest`: the attestation crate's appraisal figures, then tamper→cut-off on a
/// committee at a 1 s re-attestation interval.
pub fn run_attest_bench(base_port: u16) -> ExitCode {
    crate::attest::run_bench();
    let interval_ms = 1_000u64;
    eprintln!(
        "bench attest: tamper→cut-off on 4 node processes, re-attestation every {interval_ms} ms"
    );
    let mut code = ExitCode::SUCCESS;
    for (mode, tpm) in [("dev", false), ("tpm", true)] {
        if tpm && !(bulwark_attestor::launch::available() && bulwark_testkit::swtpm::installed()) {
            eprintln!("bench attest: TPM tamper→cut-off SKIPPED: needs swtpm and a build with --features bulwark-attestor/tpm");
            continue;
        }
        eprintln!("bench attest: {mode} evidence");
        match cutoff_delays(base_port + if tpm { 400 } else { 0 }, interval_ms, tpm) {
            Ok(delays) if !delays.closed.is_empty() => {
                let goal = (interval_ms + 200) as f64;
                let goal_name = "goal: one interval + 200 ms (Keylime anchor: ~2300 ms at a 2 s interval, no removal)";
                let suffix = if tpm { "_tpm" } else { "_dev" };
                // To the closed connection (the figure the goal is about), and to the
                // admission decision that precedes it.
                for (what, values) in [
                    ("connection_closed", &delays.closed),
                    ("decision", &delays.decision),
                ] {
                    let max = values.iter().copied().fold(0.0, f64::max);
                    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                    for (stat, value) in [("max", max), ("mean", mean)] {
                        emit(
                            "attest",
                            &format!("tamper_to_{what}_{stat}{suffix}"),
                            value,
                            "ms",
                            Some((goal_name, goal)),
                        );
                    }
                }
                eprintln!(
                    "bench attest: {mode}: to the closed connection (ms): {:?}; to the decision (ms): {:?}",
                    delays.closed, delays.decision
                );
            }
            Ok(_) => code = ExitCode::from(2),
            Err(error) => {
                eprintln!("bench attest: {mode} tamper→cut-off: {error}");
                code = ExitCode::from(2);
            }
        }
    }
    code
}

/// `bulwark bench oracle`: the oracle crate's figures (aggregation cost, capture deviation),
/// then observation→certified→finalized latency through a 4-node committee.
pub fn run_oracle_bench(base_port: u16, duration: u64) -> ExitCode {
    crate::oracle::run_bench();
    let data = std::env::temp_dir().join(format!("bulwark-bench-oracle-{}", std::process::id()));
    let options = CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        candidates: 0,
        duration: Some(Duration::from_secs(duration.max(8))),
        rate: 500,
        seed: 1,
        fresh: true,
        base_port,
        status: false,
        admission_interval_ms: 1_000,
        tpm: false,
        oracle: None,
        tamper: None,
    };
    eprintln!(
        "bench oracle: observation→finalized latency through 4 node processes for {duration} s"
    );
    let result = run_committee(&options, Arc::new(AtomicBool::new(false)));
    let _ = std::fs::remove_dir_all(&data);
    match result {
        Ok(figures) => {
            for (metric, value) in [
                (
                    "committee_observation_to_finalized_p50",
                    figures.oracle_p50_ms,
                ),
                (
                    "committee_observation_to_finalized_p99",
                    figures.oracle_p99_ms,
                ),
            ] {
                match value {
                    Some(value) => emit(
                        "oracle",
                        metric,
                        value,
                        "ms",
                        Some(("one round (1 000 ms)", 1_000.0)),
                    ),
                    None => eprintln!("bench oracle: no oracle round was finalized for {metric}"),
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench oracle: committee: {error}");
            ExitCode::from(2)
        }
    }
}
