//! `bulwark bench sentinel`: two runs of 4 node processes on loopback with the same load, each
//! with a fresh committee and a 1 s re-attestation interval. In the second, node 3's binary is
//! replaced by a tampered copy `tamper_at` seconds in; the figures are the wall time from its
//! tampered start to the committee's state showing it removed (out of the participant set, the
//! goal is under 5 s), and the finalized orders/s of that run (which includes the quarantine,
//! the reshare and the epoch change) against the run without it (the goal is at least 80 %).

use crate::report::emit;
use bulwark_devnet::{run_committee, CommitteeOptions, RunFigures};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// One `sentinel` figure.
fn line(metric: &str, value: f64, unit: &str, peer: Option<(&str, f64)>) {
    emit("sentinel", metric, value, unit, peer);
}

fn run(
    phase: &str,
    duration: u64,
    rate: u64,
    port: u16,
    tamper: Option<(usize, Duration)>,
) -> Option<RunFigures> {
    let data = std::env::temp_dir().join(format!(
        "bulwark-bench-sentinel-{}-{phase}",
        std::process::id()
    ));
    let options = CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        duration: Some(Duration::from_secs(duration)),
        rate,
        seed: 1,
        fresh: true,
        base_port: port,
        status: true,
        admission_interval_ms: 1_000,
        tpm: false,
        oracle: None,
        tamper,
    };
    eprintln!("bench sentinel ({phase}): 4 node processes on loopback, {rate} orders/s offered for {duration} s");
    let result = run_committee(&options, Arc::new(AtomicBool::new(false)));
    let _ = std::fs::remove_dir_all(&data);
    match result {
        Ok(figures) => Some(figures),
        Err(error) => {
            eprintln!("bench sentinel ({phase}): {error}");
            None
        }
    }
}

/// Runs the benchmark; prints its figures.
pub fn run_bench(duration: u64, rate: u64, tamper_at: u64, base_port: u16) -> ExitCode {
    let duration = duration.max(tamper_at + 10);
    let Some(plain) = run("without_tamper", duration, rate, base_port, None) else {
        return ExitCode::from(2);
    };
    let Some(tampered) = run(
        "tamper_node_3",
        duration,
        rate,
        base_port + 300,
        Some((3, Duration::from_secs(tamper_at))),
    ) else {
        return ExitCode::from(2);
    };
    match tampered.tamper_to_removed_s {
        Some(seconds) => line(
            "tamper_to_removed",
            seconds,
            "s",
            Some(("goal: 5 s at n = 4, 1 s re-attestation", 5.0)),
        ),
        None => {
            eprintln!(
                "bench sentinel: node 3 was not removed within the run (epoch {} at the end)",
                tampered.epoch
            );
            crate::report::figure("sentinel", "tamper_to_removed", None, "s", None, None);
        }
    }
    line("epoch_at_end", tampered.epoch as f64, "epoch", None);
    line(
        "finalized_orders_per_s_through_reshare",
        tampered.accepted_per_s,
        "orders/s",
        Some((
            "same run without the tamper (goal: ratio >= 0.8)",
            plain.accepted_per_s,
        )),
    );
    if !(plain.roots_agree && tampered.roots_agree) {
        eprintln!("bench sentinel: the nodes' state roots DIVERGED, or no height was compared");
        return ExitCode::from(1);
    }
    if tampered.tamper_to_removed_s.is_none() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
