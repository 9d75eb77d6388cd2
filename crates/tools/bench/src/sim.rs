//! `bulwark bench sim`: how much search a machine buys with the nemesis on (issue #16), a
//! VOPR-style figure: simulated seconds per wall second at n = 4 and 7 (against real time, 1
//! s/s), and nemesis seeds per minute. Every seed must also hold every invariant: a violation
//! fails the bench.

use std::process::ExitCode;
use std::time::Instant;

use crate::report::{emit, figure};

/// Runs `seeds` nemesis seeds from seed 1 at n = 4 and at n = 7.
pub fn run_bench(seeds: u64) -> ExitCode {
    let mut held = true;
    for n in [4usize, 7] {
        eprintln!(
            "bench sim: the nemesis at n = {n}, {seeds} seeds of {} steps",
            bulwark_sim::NEMESIS_STEPS
        );
        let started = Instant::now();
        let sweep = bulwark_sim::nemesis::sweep(1, seeds, n, |seed, report| {
            eprintln!(
                "  seed {seed}: {} ({:.0} s wall so far)",
                match report {
                    Some(r) if r.held => "held",
                    Some(_) => "VIOLATION",
                    None => "PANICKED",
                },
                started.elapsed().as_secs_f64()
            );
        });
        let wall_s = started.elapsed().as_secs_f64().max(1e-9);
        let simulated_s = sweep.simulated_ms as f64 / 1000.0;
        emit(
            "sim",
            &format!("simulated seconds per wall second, nemesis, n={n}"),
            simulated_s / wall_s,
            "s/s",
            Some(("real time", 1.0)),
        );
        emit(
            "sim",
            &format!("nemesis seeds per minute, n={n}"),
            sweep.seeds_run as f64 * 60.0 / wall_s,
            "seeds/min",
            None,
        );
        // A seed that never recovered has no recovery time: the figure is then not measured.
        figure(
            "sim",
            &format!("worst recovery after the last heal, n={n}"),
            (sweep.unrecovered == 0).then_some(sweep.worst_recovery_ms as f64),
            "ms",
            Some("recovery bound"),
            Some(bulwark_sim::nemesis::RECOVERY_BOUND.as_millis() as f64),
        );
        if !sweep.held() {
            eprintln!(
                "bench sim: VIOLATIONS at n = {n}: {:?}; replay: {:?}",
                sweep.violations, sweep.failed
            );
            held = false;
        }
    }
    if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
