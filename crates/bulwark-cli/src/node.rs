//! `bulwark node --config FILE`: one committee member (see docs/node.md).

use std::path::Path;
use std::process::ExitCode;

/// `bulwark node --config FILE`.
pub fn run(config: &Path) -> ExitCode {
    init_tracing();
    match bulwark_node::node::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark node: {error}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
