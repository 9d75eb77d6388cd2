//! `bulwark sim`: seeded scenario simulations that print a JSON outcome — the committee
//! scenarios of `bulwark-sim` (the whole committee on the deterministic runtime) and the oracle
//! scenarios of `bulwark-oracle` (n oracle nodes and one engine, with an in-process proposer
//! standing in for the committee; the outcome says so).

use std::process::ExitCode;

use bulwark_oracle::scenario::{self, Kind, ScenarioConfig, SCENARIOS};

/// Arguments of `bulwark sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Scenario name (see --list).
    #[arg(long, required_unless_present_any = ["list", "nemesis"])]
    scenario: Option<String>,
    /// Run the nemesis scenario over many seeds (--seeds from --first-seed) and print one JSON
    /// summary: faults by kind, violations by checker (all must be 0), the worst recovery.
    #[arg(long, conflicts_with_all = ["scenario", "list"])]
    nemesis: bool,
    /// With --nemesis: how many seeds.
    #[arg(long, default_value_t = 10, requires = "nemesis", value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// With --nemesis: the first seed.
    #[arg(long, default_value_t = 1, requires = "nemesis")]
    first_seed: u64,
    /// Seed of the simulation; the same seed gives the same outcome.
    #[arg(long, default_value_t = 1, conflicts_with = "nemesis")]
    seed: u64,
    /// Committee size, n = 3f + 1 (4, 7, 10, ...).
    #[arg(long, default_value_t = 4)]
    nodes: u32,
    /// List the scenarios and what each does.
    #[arg(long)]
    list: bool,
}

/// Runs one scenario and prints its outcome as one JSON line (exit 1 if an invariant broke).
pub fn run(args: SimArgs) -> ExitCode {
    if args.list {
        for (name, what) in bulwark_sim::COMMITTEE_SCENARIOS {
            println!("{name:<16} committee: {what}");
        }
        for (name, what) in bulwark_sim::MEMBER_SCENARIOS {
            println!("{name:<16} member: {what}");
        }
        for name in SCENARIOS {
            println!("{name:<16} oracle: n oracle nodes and one engine");
        }
        return ExitCode::SUCCESS;
    }
    let name = args.scenario.unwrap_or_default();
    if args.nodes < 4 || !(args.nodes - 1).is_multiple_of(3) {
        eprintln!(
            "bulwark sim: --nodes must be 3f + 1 with f >= 1 (4, 7, 10, ...), got {}",
            args.nodes
        );
        return ExitCode::from(2);
    }
    if args.nemesis {
        if args.nodes > 31 {
            eprintln!(
                "bulwark sim: --nemesis runs 4 to 31 members, got {}",
                args.nodes
            );
            return ExitCode::from(2);
        }
        return nemesis(args.first_seed, args.seeds, args.nodes as usize);
    }
    if let Some(scenario) = bulwark_sim::named(&name, args.seed, args.nodes as usize) {
        let outcome = bulwark_sim::run(scenario);
        let report = bulwark_sim::Report::new(&name, &scenario, &outcome);
        return print_report(&report, report.held);
    }
    match bulwark_sim::run_member_attack(&name, args.seed, args.nodes as usize) {
        Some(Ok(report)) => return print_report(&report, report.held),
        Some(Err(why)) => {
            eprintln!("bulwark sim: {why}");
            return ExitCode::from(2);
        }
        None => {}
    }
    let Some(kind) = Kind::parse(&name) else {
        let committee: Vec<&str> = bulwark_sim::COMMITTEE_SCENARIOS
            .iter()
            .chain(bulwark_sim::MEMBER_SCENARIOS)
            .map(|(name, _)| *name)
            .collect();
        eprintln!(
            "bulwark sim: unknown scenario {name:?}; known: {}, {} (or --list)",
            SCENARIOS.join(", "),
            committee.join(", ")
        );
        return ExitCode::from(2);
    };
    let config = ScenarioConfig {
        f: (args.nodes - 1) / 3,
        ..ScenarioConfig::new(kind, args.seed)
    };
    let outcome = scenario::run_with(config);
    println!("{outcome}");
    ExitCode::SUCCESS
}

/// `bulwark sim --nemesis`: the nemesis scenario over `seeds` seeds, a line on stderr per
/// seed, then the summary as one JSON line (exit 1 when any seed broke an invariant).
fn nemesis(first_seed: u64, seeds: u64, nodes: usize) -> ExitCode {
    eprintln!(
        "bulwark sim --nemesis: {seeds} seeds from {first_seed}, {nodes} members, {} steps each",
        bulwark_sim::NEMESIS_STEPS
    );
    let started = std::time::Instant::now();
    let mut done = 0u64;
    let sweep = bulwark_sim::nemesis::sweep(first_seed, seeds, nodes, |seed, report| {
        done += 1;
        match report {
            Some(r) => eprintln!(
                "  [{done}/{seeds}] seed {seed}: {}, recovery {} ms, {:.0} s simulated ({:.0} s so far)",
                if r.held { "held" } else { "VIOLATION" },
                r.nemesis
                    .as_ref()
                    .and_then(|n| n.recovery_ms)
                    .map_or_else(|| "none".to_string(), |ms| ms.to_string()),
                r.summary.as_ref().map_or(0.0, |s| s.virtual_ms as f64 / 1000.0),
                started.elapsed().as_secs_f64()
            ),
            None => eprintln!("  [{done}/{seeds}] seed {seed}: the run PANICKED (see above)"),
        }
    });
    let wall_s = started.elapsed().as_secs_f64();
    let mut line = serde_json::to_value(&sweep).expect("a sweep must serialize");
    line["simulated_hours"] = serde_json::json!(sweep.simulated_ms as f64 / 3_600_000.0);
    line["wall_seconds"] = serde_json::json!(wall_s);
    line["held"] = serde_json::json!(sweep.held());
    println!("{line}");
    if sweep.held() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints `report` as one JSON line; exit 1 when the promise did not hold.
fn print_report(report: &impl serde::Serialize, held: bool) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string(report).expect("a report must serialize")
    );
    if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
