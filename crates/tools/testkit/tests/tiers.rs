//! The dependency rules of the workspace's tiers (ARCHITECTURE.md):
//! - every crate lives in `crates/core`, `crates/runtime`, `crates/tools` or is `bulwark-cli`;
//! - a core crate depends only on core crates, and on nothing that does I/O (tokio, file
//!   watchers, process control, device access, TLS, the terminal), not even optionally;
//! - a runtime crate depends on no tool crate, and `bulwark-testkit` is only ever a
//!   dev-dependency of core and runtime crates;
//! - no core source file reads a clock, opens a file or socket, sleeps, reads the environment or
//!   starts a process (unit tests at the bottom of a file may).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates (by name prefix) that do I/O and must not be a core crate's required dependency.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio-",
    "notify",
    "nix",
    "tss-esapi",
    "cryptoki",
    "ctrlc",
    "tracing-subscriber",
    "tungstenite",
    "webpki-roots",
    "rustls",
];

/// Uses that mean a clock read, a file, a socket, a process or a sleep.
const FORBIDDEN: &[&str] = &[
    "std::fs::",
    "use std::fs",
    "std::io::stdin",
    "std::io::stdout",
    "OsRng",
    "File::open",
    "File::create",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "std::process::Command",
    "Command::new",
    "tokio::",
    "SystemTime::now",
    "Instant::now",
    "thread::sleep",
    "std::env::var",
    "std::env::current_dir",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Core,
    Runtime,
    Tools,
    Cli,
}

fn tier_of(root: &Path, manifest: &str) -> Option<Tier> {
    let relative = Path::new(manifest).strip_prefix(root.join("crates")).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "core" => Some(Tier::Core),
        "runtime" => Some(Tier::Runtime),
        "tools" => Some(Tier::Tools),
        "bulwark-cli" => Some(Tier::Cli),
        _ => None,
    }
}

#[test]
fn crates_stand_in_tiers_and_depend_downwards_only() {
    let root = workspace_root();
    let metadata = metadata();
    let packages = metadata["packages"].as_array().unwrap();
    let tiers: Vec<(String, Tier)> = packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            let tier = tier_of(&root, p["manifest_path"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{name} is in no tier folder"));
            (name, tier)
        })
        .collect();
    let tier = |name: &str| tiers.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    let mut violations = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        let own = tier(name).unwrap();
        for dependency in package["dependencies"].as_array().unwrap() {
            let dep = dependency["name"].as_str().unwrap();
            let dev = dependency["kind"].as_str() == Some("dev");
            let optional = dependency["optional"].as_bool().unwrap_or(false);
            if dev {
                continue;
            }
            match (own, tier(dep)) {
                (Tier::Core, Some(Tier::Core)) => {}
                (Tier::Core | Tier::Runtime, Some(Tier::Tools)) => {
                    violations.push(format!("{name} ({own:?}) depends on tool crate {dep}"))
                }
                (Tier::Core, Some(other)) => {
                    violations.push(format!("{name} (Core) depends on {dep} ({other:?})"))
                }
                (_, Some(Tier::Cli)) => violations.push(format!("{name} depends on the CLI")),
                _ => {}
            }
            let io = IO_CRATES
                .iter()
                .any(|io| dep == *io || (io.ends_with('-') && dep.starts_with(io)));
            if own == Tier::Core && io {
                violations.push(format!(
                    "core crate {name} depends on {dep}, which does I/O{}",
                    if optional { " (even optionally)" } else { "" }
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    for expected in [
        "bulwark-engine",
        "bulwark-consensus",
        "bulwark-api",
        "bulwark-custody",
        "bulwark-sentinel",
    ] {
        assert_eq!(tier(expected), Some(Tier::Core), "{expected}");
    }
    for expected in [
        "bulwark-node",
        "bulwark-attestor",
        "bulwark-auditor",
        "bulwark-venues",
    ] {
        assert_eq!(tier(expected), Some(Tier::Runtime), "{expected}");
    }
    assert_eq!(tier("bulwark-sim"), Some(Tier::Tools));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code before its first `#[cfg(test)]` (unit tests sit at the bottom of a file and
/// may use the clock and temp files); a file that is all tests (`tests.rs`) has none.
fn production_code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn core_code_reads_no_clock_file_socket_or_process() {
    let crates = workspace_root().join("crates");
    let mut files = Vec::new();
    rust_files(&crates.join("core"), &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&crates)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if relative.contains("/tests/") || relative.contains("/benches/") {
            continue;
        }
        let code = production_code(&file);
        let uses: Vec<&str> = FORBIDDEN
            .iter()
            .copied()
            .filter(|pattern| code.contains(pattern))
            .collect();
        if !uses.is_empty() {
            violations.push(format!("{relative}: {uses:?}"));
        }
    }
    assert!(
        violations.is_empty(),
        "core code must not touch the world (pass time, storage and randomness in): {violations:#?}"
    );
}
