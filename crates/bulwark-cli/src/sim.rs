//! `bulwark sim`: seeded scenario simulations that print a JSON outcome.
//!
//! Today the oracle scenarios run n oracle nodes and one engine in this process, with an
//! in-process proposer standing in for the committee (the outcome says so). The committee
//! simulation arrives with consensus.

use std::process::ExitCode;

use bulwark_oracle::scenario::{self, Kind, ScenarioConfig, SCENARIOS};

/// Arguments of `bulwark sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Scenario name: oracle-collusion, venue-spike, feed-blackout or genuine-crash.
    #[arg(long)]
    scenario: String,
    /// Seed of the simulated market and keys; the same seed gives the same outcome.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Oracle committee size, n = 3f + 1 (4, 7, 10, ...).
    #[arg(long, default_value_t = 4)]
    nodes: u32,
}

/// Runs one scenario and prints its outcome as one JSON line.
pub fn run(args: SimArgs) -> ExitCode {
    let Some(kind) = Kind::parse(&args.scenario) else {
        eprintln!(
            "bulwark sim: unknown scenario {:?}; known: {}",
            args.scenario,
            SCENARIOS.join(", ")
        );
        return ExitCode::from(2);
    };
    if args.nodes < 4 || !(args.nodes - 1).is_multiple_of(3) {
        eprintln!(
            "bulwark sim: --nodes must be 3f + 1 with f >= 1 (4, 7, 10, ...), got {}",
            args.nodes
        );
        return ExitCode::from(2);
    }
    let config = ScenarioConfig {
        f: (args.nodes - 1) / 3,
        ..ScenarioConfig::new(kind, args.seed)
    };
    let outcome = scenario::run_with(config);
    println!("{outcome}");
    ExitCode::SUCCESS
}
