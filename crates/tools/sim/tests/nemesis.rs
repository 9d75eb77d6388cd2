//! The nemesis (issue #16) plays the attacker with every fault it has, mixed over one long run
//! per seed, and loses: no divergence, no money created, every height executed once, every log
//! verifying, nobody honest accused, and the committee finalizing again within the bound after
//! the last heal.
#![allow(clippy::unwrap_used)]

use bulwark_sim::nemesis::sweep;

#[test]
fn the_nemesis_breaks_no_invariant_and_the_committee_comes_back() {
    let mut seen = Vec::new();
    let sweep = sweep(1, 3, 4, |seed, report| {
        seen.push((seed, report.map(|r| r.held)));
    });
    eprintln!("{sweep:?}");
    assert!(
        sweep.held(),
        "violations {:?}; replay with {:?}",
        sweep.violations,
        sweep.failed
    );
    assert_eq!(
        seen,
        vec![(1, Some(true)), (2, Some(true)), (3, Some(true))]
    );
    assert_eq!(sweep.seeds_run, 3);
    // The schedule really injected faults, of several kinds, and the recovery was measured.
    let injected: u64 = sweep.faults.values().sum();
    assert!(
        injected >= 3 * u64::from(bulwark_sim::NEMESIS_STEPS),
        "{:?}",
        sweep.faults
    );
    assert!(sweep.faults.len() >= 4, "{:?}", sweep.faults);
    assert!(sweep.worst_recovery_ms > 0);
    assert!(sweep.simulated_ms > 0);
}

#[test]
fn a_nemesis_run_replays_exactly_from_its_seed() {
    let run = || {
        let scenario = bulwark_sim::named("nemesis", 5, 4).unwrap();
        let outcome = bulwark_sim::run(scenario);
        let nemesis = outcome.nemesis.clone().unwrap();
        let last: Vec<_> = outcome
            .ledgers
            .iter()
            .map(|l| l.last().map(|c| (c.height, c.digest, c.root)))
            .collect();
        (nemesis.faults, nemesis.recovery_ms, nemesis.heights, last)
    };
    let first = run();
    assert!(first.0.values().sum::<u64>() >= u64::from(bulwark_sim::NEMESIS_STEPS));
    assert_eq!(run(), first);
}
