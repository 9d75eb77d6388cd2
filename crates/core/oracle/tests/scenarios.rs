//! The oracle scenarios: each asserts the outcome the design promises.
#![allow(clippy::unwrap_used)]

use bulwark_oracle::scenario::{self, Kind, ScenarioConfig};
use serde_json::Value;

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn common(outcome: &Value) {
    assert_eq!(int(&outcome["erroneous_liquidations"]), 0, "{outcome:#}");
    assert_eq!(
        outcome["required_liquidations"], outcome["required_liquidations_executed"],
        "{outcome:#}"
    );
    assert_eq!(int(&outcome["rounds_rejected"]), 0, "{outcome:#}");
    // The index never moves by more than the 50 bps clamp per round.
    assert!(int(&outcome["max_index_step_bps"]) <= 50, "{outcome:#}");
    assert!(outcome["replication"]
        .as_str()
        .unwrap()
        .contains("not in the loop"));
}

fn guard_opened_within(outcome: &Value, from_s: i64, to_s: i64) -> bool {
    outcome["guard_open_intervals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| (from_s..to_s).contains(&int(&g["opened_s"])))
}

#[test]
fn oracle_collusion_moves_nothing_and_names_the_colluders() {
    for (seed, f) in [(1, 1), (2, 1), (3, 2)] {
        let outcome = scenario::run_with(ScenarioConfig {
            f,
            ..ScenarioConfig::new(Kind::OracleCollusion, seed)
        });
        common(&outcome);
        assert_eq!(int(&outcome["nodes"]), 3 * i64::from(f) + 1);
        assert_eq!(int(&outcome["required_liquidations"]), 0, "{outcome:#}");
        assert!(
            int(&outcome["max_index_deviation_unguarded_bps"]) <= 10,
            "{outcome:#}"
        );
        assert!(!guard_opened_within(&outcome, 60, 121), "{outcome:#}");
        let mut accused: Vec<i64> = outcome["fault_evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| int(&e["node"]))
            .collect();
        accused.sort_unstable();
        let colluders: Vec<i64> = (0..i64::from(f)).collect();
        assert_eq!(accused, colluders, "{outcome:#}");
        for e in outcome["fault_evidence"].as_array().unwrap() {
            assert!(int(&e["deviation_bps"]) >= 1_900, "{e}");
        }
    }
}

#[test]
fn venue_spike_is_not_followed() {
    for seed in [1, 2, 3] {
        let outcome = scenario::run("venue-spike", seed);
        common(&outcome);
        assert_eq!(int(&outcome["required_liquidations"]), 0, "{outcome:#}");
        assert!(
            int(&outcome["max_index_deviation_unguarded_bps"]) <= 10,
            "{outcome:#}"
        );
        assert!(!guard_opened_within(&outcome, 60, 81), "{outcome:#}");
        assert!(outcome["fault_evidence"].as_array().unwrap().is_empty());
    }
}

#[test]
fn feed_blackout_pauses_then_resolves_by_the_rules() {
    for seed in [1, 2, 3] {
        let outcome = scenario::run("feed-blackout", seed);
        common(&outcome);
        let intervals = outcome["guard_open_intervals"].as_array().unwrap();
        let stale = intervals
            .iter()
            .find(|g| g["guard"] == "stale")
            .unwrap_or_else(|| panic!("no staleness guard: {outcome:#}"));
        // Venues stop at 60 s; nodes drop sources after 2 s, the engine waits 5 s more.
        assert!((62..=70).contains(&int(&stale["opened_s"])), "{outcome:#}");
        let closed = int(&stale["closed_s"]);
        assert!((90..=100).contains(&closed), "{outcome:#}");
        let checks = &outcome["guard_checks"];
        assert_eq!(checks["guards_open"][0]["guard"], "stale", "{checks:#}");
        assert_eq!(checks["cancel_accepted"], true, "{checks:#}");
        assert_eq!(checks["reduce_only_accepted"], true, "{checks:#}");
        assert_eq!(
            checks["risk_increasing_order"]["rejected"], "oracle_guard_open",
            "{checks:#}"
        );
        // The real 6 % fall makes liquidations due; they wait for the guards, then happen.
        assert!(int(&outcome["required_liquidations"]) >= 2, "{outcome:#}");
        let last_close = intervals
            .iter()
            .filter(|g| (60..=120).contains(&int(&g["opened_s"])))
            .map(|g| int(&g["closed_s"]))
            .max()
            .unwrap();
        for l in outcome["liquidations"].as_array().unwrap() {
            assert!(int(&l["round"]) >= last_close, "{outcome:#}");
        }
        // The protective stop: the honest run triggers it during the fall; the faulted run
        // holds it while a guard is open and triggers it once the last one has closed.
        let stop = &outcome["stop"];
        assert!(!stop["held"].as_array().unwrap().is_empty(), "{outcome:#}");
        assert_eq!(int(&stop["triggered_s"]), last_close, "{outcome:#}");
        assert!(
            (60..=90).contains(&int(&stop["honest_triggered_s"])),
            "{outcome:#}"
        );
    }
}

/// An independent count: an account is liquidated exactly when, at the lowest certified index,
/// its equity (cash + lots × P / 1000 − entry cost, in micros for 0.001 BTC lots) is below the
/// 1 % maintenance of its notional.
fn independent_liquidations(outcome: &Value) -> Vec<i64> {
    let p = i128::from(int(&outcome["min_index_micros"]));
    outcome["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            let s = &a["after_setup"];
            let (cash, lots, cost) = (
                i128::from(int(&s["cash_micros"])),
                i128::from(int(&s["position_lots"])),
                i128::from(int(&s["entry_cost_micros"])),
            );
            let notional = lots * p / 1_000;
            cash + notional - cost < notional / 100
        })
        .map(|a| int(&a["account"]))
        .collect()
}

#[test]
fn genuine_crash_liquidates_exactly_the_under_margined() {
    for seed in [1, 2, 3] {
        let outcome = scenario::run("genuine-crash", seed);
        common(&outcome);
        let liquidated: Vec<i64> = outcome["liquidated_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(int)
            .collect();
        assert_eq!(
            liquidated,
            independent_liquidations(&outcome),
            "{outcome:#}"
        );
        // By design: maintenance lines 2, 3, 5, 7 % below entry are crossed by an 8 % fall;
        // 10 % and beyond are not.
        assert_eq!(liquidated, vec![1, 2, 3, 4], "{outcome:#}");
        assert_eq!(int(&outcome["required_liquidations_executed"]), 4);
        assert!(!guard_opened_within(&outcome, 60, 121), "{outcome:#}");
    }
}

#[test]
fn outcomes_are_deterministic_and_names_checked() {
    assert_eq!(
        scenario::run("venue-spike", 9),
        scenario::run("venue-spike", 9)
    );
    let unknown = scenario::run("moon", 1);
    assert!(unknown["error"].as_str().unwrap().contains("moon"));
    assert_eq!(unknown["known"].as_array().unwrap().len(), 4);
}
