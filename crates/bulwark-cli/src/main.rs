//! `bulwark`: the command-line entry point. Only this crate (and the node crates to come) touch
//! files, clocks and the terminal; the engine it drives is pure.

mod bench;
mod engine_run;
mod sim;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bulwark — the trust layer of a derivatives venue.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the venue locally (today: one engine with a synthetic market; the committee comes next).
    Up(up::UpArgs),
    /// Work with the derivatives engine directly.
    #[command(subcommand)]
    Engine(EngineCmd),
    /// Run a seeded scenario simulation and print its JSON outcome.
    Sim(sim::SimArgs),
    /// Attestation: TPM quotes, reference-value manifests, evidence appraisal.
    Attest(bulwark_attest::AttestArgs),
    /// Audit this host (or a directory tree) against CIS-style SCA policies and a role manifest.
    Audit(bulwark_audit::AuditArgs),
    /// Run a benchmark; prints one JSON line per figure.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Debug, Subcommand)]
enum EngineCmd {
    /// Execute a JSON-lines transaction file and print JSON-lines events and a summary.
    Run(engine_run::RunArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Matching core vs lobster, full engine throughput and latency, memory per resting order.
    Engine(bench::engine::EngineBenchArgs),
    /// Oracle aggregation cost per round and certified-index deviation on real captures.
    Oracle,
    /// Quotes appraised per second vs the bare signature-verification bound and tpm2_checkquote.
    Attest,
    /// Audit scan CPU time and peak memory vs lynis and OpenSCAP; re-check of one changed file.
    Audit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Top::Up(args) => up::run(args),
        Top::Engine(EngineCmd::Run(args)) => engine_run::run(args),
        Top::Sim(args) => sim::run(args),
        Top::Attest(args) => bulwark_attest::run(args),
        Top::Audit(args) => bulwark_audit::run(args),
        Top::Bench(BenchCmd::Attest) => {
            bulwark_attest::run_bench();
            ExitCode::SUCCESS
        }
        Top::Bench(BenchCmd::Oracle) => {
            bulwark_oracle::run_bench();
            ExitCode::SUCCESS
        }
        Top::Bench(BenchCmd::Engine(args)) => bench::engine::run(args),
        Top::Bench(BenchCmd::Audit) => {
            bulwark_audit::run_bench();
            ExitCode::SUCCESS
        }
    }
}
