//! Helpers shared by the CLI's end-to-end tests.
#![allow(clippy::unwrap_used)]

use std::process::Command;

pub mod gateway;
pub mod metrics;

/// Runs the built `bulwark` binary with `args` (stdin closed) and returns its exit code, stdout
/// and stderr.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_with(args, &[])
}

/// [`run`] with environment variables set for the command (and the processes it starts).
pub fn run_with(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
