//! Stand-alone driver until the `bulwark` binary wires the subcommands:
//! `cargo run --release -p bulwark-audit --example audit -- audit --policy FILE...` or `... -- bench`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One scan (the arguments of `bulwark audit`).
    Audit(bulwark_audit::AuditArgs),
    /// The JSON-lines benchmark of `bulwark bench audit`.
    Bench,
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Audit(args) => bulwark_audit::run(args),
        Cmd::Bench => {
            bulwark_audit::run_bench();
            ExitCode::SUCCESS
        }
    }
}
