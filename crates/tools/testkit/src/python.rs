//! The Python that runs the real counterparties of the FIX tests and bench (QuickFIX's binding,
//! `cryptography` for the Ed25519 logon).

use std::process::{Command, Stdio};

/// The first of `python3.11`, `python3` that imports every module of `modules`.
pub fn python_with(modules: &[&str]) -> Option<String> {
    let import = format!("import {}", modules.join(", "));
    ["python3.11", "python3"]
        .into_iter()
        .find(|candidate| {
            Command::new(candidate)
                .args(["-c", &import])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_string)
}
