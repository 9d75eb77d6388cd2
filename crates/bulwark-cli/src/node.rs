//! `bulwark node --config FILE`: one committee member (see docs/node.md).

use bulwark_node::node::keystore::Migration;
use std::path::Path;
use std::process::ExitCode;

/// `bulwark node --config FILE [--migrate-secrets]`.
pub fn run(config: &Path, migrate_secrets: bool) -> ExitCode {
    init_tracing();
    // The keystore logs every file it migrates.
    let migration = if migrate_secrets {
        Migration::Seal
    } else {
        Migration::Refuse
    };
    match bulwark_node::node::run(config, migration) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark node: {error}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    init_tracing_default("info");
}

/// Tracing to stderr at `RUST_LOG`, else at `default`.
pub(crate) fn init_tracing_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Stderr: a command's stdout is its output (the bench's JSON lines, the port lines).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
