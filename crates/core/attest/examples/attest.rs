//! Stand-alone front end for the attestation commands until the `bulwark` binary wires them in:
//! `cargo run -p bulwark-attest --example attest -- quote --tcti ... ` or `-- bench`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// `bulwark attest ...`
    #[command(flatten)]
    Attest(bulwark_attest::cli::AttestCommand),
    /// `bulwark bench attest`
    Bench,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Attest(command) => bulwark_attest::run(bulwark_attest::AttestArgs { command }),
        Command::Bench => {
            bulwark_attest::run_bench();
            std::process::ExitCode::SUCCESS
        }
    }
}
