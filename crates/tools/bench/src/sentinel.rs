//! `bulwark bench sentinel`: two runs of 4 node processes on loopback with the same load, each
//! with a fresh committee and a 1 s re-attestation interval. In the second, node 3's binary is
//! replaced by a tampered copy `tamper_at` seconds in; the figures are the wall time from its
//! tampered start to the committee's state showing it removed (out of the participant set, the
//! goal is under 5 s), and the finalized orders/s of that run (which includes the quarantine,
//! the reshare and the epoch change) against the run without it (the goal is at least 80 %).
//!
//! First, in one process: `admit_check_us` at n = 4, 7 and 31, the one rule every replica applies
//! to a replacement in a block (`Membership::check_admit`: the seat, f+1 affirmations, two of
//! three operators' approvals), against the same number of bare strict Ed25519 verifications
//! (what the rule cannot avoid).

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
        candidates: 0,
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

/// Microseconds for one replica's check of a replacement at committee size `n` (member n − 1
/// quarantined, its seat taken on f+1 affirmations and two of three operators' approvals), and
/// for the same number of bare strict verifications (best of 200).
fn admit_check(n: u8) -> (f64, f64) {
    use bulwark_sentinel::membership::{Evidence, Quarantine};
    use bulwark_sentinel::{
        Accusation, Admit, Affirmation, Approval, Grounds, Membership, Operators, Policy, Seat,
    };
    use ed25519_dalek::SigningKey;
    let best_us = |mut f: Box<dyn FnMut() -> bool + '_>| {
        let mut best = f64::MAX;
        for _ in 0..200 {
            let start = std::time::Instant::now();
            assert!(std::hint::black_box(f()), "the bench's inputs are valid");
            best = best.min(start.elapsed().as_secs_f64() * 1e6);
        }
        best
    };
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let operators: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[200 + i; 32]))
        .collect();
    let mut membership = Membership::new(
        0,
        keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
        Policy::default(),
    )
    .and_then(|m| {
        m.with_operators(Operators {
            keys: operators
                .iter()
                .map(|k| k.verifying_key().to_bytes())
                .collect(),
            quorum: 2,
        })
    })
    .expect("a valid committee");
    let f = membership.f();
    let seat = keys[usize::from(n) - 1].verifying_key().to_bytes();
    let accusations = (0..=f)
        .map(|i| Accusation::sign(&keys[i], seat, Grounds::Silence, 0, 1_000))
        .collect();
    let quarantine: Quarantine<bulwark_engine::sentinel::Proof> = Quarantine {
        member: seat,
        epoch: 0,
        evidence: Evidence::Accusations(accusations),
    };
    membership
        .apply(&quarantine, 1_000)
        .expect("f + 1 accusers");
    let candidate = SigningKey::from_bytes(&[250; 32])
        .verifying_key()
        .to_bytes();
    let admit = Admit {
        candidate,
        epoch: 0,
        affirmations: (0..=f)
            .map(|i| Affirmation::sign(&keys[i], candidate, 0, 1_000, ([1; 32], [2; 32])))
            .collect(),
        seat: Seat::Replace {
            replaces: seat,
            approvals: operators[..2]
                .iter()
                .map(|k| Approval::sign(k, &candidate, &seat, 0))
                .collect(),
        },
    };
    let check_us = best_us(Box::new(|| membership.check_admit(&admit, 1_000).is_ok()));
    let Seat::Replace { approvals, .. } = &admit.seat else {
        unreachable!("a replacement")
    };
    let verify_us = best_us(Box::new(|| {
        admit.affirmations.iter().all(|a| a.verify().is_ok())
            && approvals
                .iter()
                .all(|a| a.verify(&candidate, &seat, 0).is_ok())
    }));
    (check_us, verify_us)
}

/// Runs the benchmark; prints its figures.
pub fn run_bench(duration: u64, rate: u64, tamper_at: u64, base_port: u16) -> ExitCode {
    for n in [4u8, 7, 31] {
        let (check_us, verify_us) = admit_check(n);
        line(
            &format!("admit_check_us_n{n}"),
            check_us,
            "us",
            Some(("f + 1 + 2 strict Ed25519 verifications", verify_us)),
        );
    }
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
