//! `bulwark engine run` end to end: events, bad lines, summary, snapshot and restore.
#![allow(clippy::unwrap_used)]

mod common;

use common::run;

const KEY: &str = "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]";

fn input() -> String {
    let mut s = String::new();
    for a in 1..=2 {
        s += &format!("{{\"type\":\"open_account\",\"account\":{a},\"public_key\":{KEY}}}\n");
        s += &format!("{{\"type\":\"deposit\",\"account\":{a},\"amount\":100000000000}}\n");
    }
    s += "{\"type\":\"index_price\",\"underlying\":0,\"price_micros\":60000000000}\n";
    s += "{\"batch\":{\"time_ms\":1000}}\n";
    s += "{\"type\":\"limit\",\"account\":1,\"instrument\":0,\"side\":\"sell\",\"price\":600000,\"qty\":10}\n";
    s += "garbage that is not json\n";
    s += "{\"type\":\"limit\",\"account\":2,\"instrument\":0,\"side\":\"buy\",\"price\":600100,\"qty\":4,\"tif\":\"ioc\"}\n";
    s += "{\"type\":\"teleport\",\"account\":2}\n";
    s += "{\"type\":\"limit\",\"account\":2,\"instrument\":0,\"side\":\"up\",\"price\":1,\"qty\":1}\n";
    s += &"x".repeat(100_000);
    s += "\n# a comment\n\n";
    s
}

#[test]
fn replays_reports_bad_lines_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input()).unwrap();
    let snap = dir.path().join("snap.bin");
    let (code, stdout, stderr) = run(&[
        "engine",
        "run",
        "--input",
        path.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "skipped lines give exit 1: {stderr}");
    for n in [8, 10, 11, 12] {
        assert!(
            stderr.contains(&format!("line {n}:")),
            "line {n} reported: {stderr}"
        );
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fills = lines.iter().filter(|v| v["event"] == "fill").count();
    assert_eq!(fills, 1);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["bad_lines"], 4);
    assert_eq!(summary["money_conserved"], true);
    assert_eq!(summary["open_interest"][0]["lots"], 4);
    let root = summary["state_root"].as_str().unwrap().to_owned();
    assert_eq!(root.len(), 64);

    // Restoring the snapshot and replaying nothing gives the same root.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (code, stdout, _) = run(&[
        "engine",
        "run",
        "--input",
        empty.to_str().unwrap(),
        "--restore",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"]["state_root"], root.as_str());

    // The same input twice gives the same root (determinism across processes).
    let (_, again, _) = run(&["engine", "run", "--input", path.to_str().unwrap()]);
    let last: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"]["state_root"], root.as_str());
}

#[test]
fn missing_input_and_bad_snapshot_are_errors() {
    let (code, _, stderr) = run(&["engine", "run", "--input", "/nonexistent/file.jsonl"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot open --input"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"BWSNAP\x01garbage").unwrap();
    let (code, _, stderr) = run(&[
        "engine",
        "run",
        "--input",
        "-",
        "--restore",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--restore"), "{stderr}");
}

#[test]
fn up_runs_saves_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "up",
        "--single",
        "--duration",
        "1",
        "--rate",
        "2000",
        "--data",
        data.to_str().unwrap(),
    ];
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("DEVELOPMENT MODE") && stderr.contains("SYNTHETIC"),
        "{stderr}"
    );
    assert!(stderr.contains("new venue"), "{stderr}");
    assert!(data.join("engine.snapshot").exists());
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resumed saved venue"), "{stderr}");
    std::fs::write(data.join("engine.snapshot"), b"corrupt").unwrap();
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 2);
    assert!(stderr.contains("--fresh"), "{stderr}");
}

/// Every example line of docs/engine-input.md, placeholders filled in: a batch marker, the
/// system inputs, then the client requests (each JSON object in doc order; continuation lines
/// joined, `a|b|c` alternatives taken as `a`, trailing comments dropped).
fn documented_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/engine-input.md"),
    )
    .unwrap();
    let mut examples = Vec::new();
    let mut current = String::new();
    for line in doc.lines() {
        let Some(code) = line.strip_prefix("    ") else {
            continue;
        };
        let code = code.trim();
        if current.is_empty() && !code.starts_with('{') {
            continue;
        }
        current.push_str(code);
        let depth: i64 = current
            .chars()
            .map(|c| match c {
                '{' | '[' => 1,
                '}' | ']' => -1,
                _ => 0,
            })
            .sum();
        if depth == 0 {
            let end = current.rfind('}').unwrap() + 1;
            examples.push(current[..end].to_string());
            current.clear();
        }
    }
    let alternative = regex_free_first_alternative;
    examples
        .into_iter()
        .map(|e| {
            alternative(
                &e.replace("[32 bytes as numbers]", KEY)
                    .replace("\"128 hex digits\"", &format!("\"{}\"", "00".repeat(64)))
                    .replace("\"64 hex digits\"", &format!("\"{}\"", "00".repeat(32))),
            )
        })
        .collect()
}

/// `"a|b|c"` → `"a"` in every string literal.
fn regex_free_first_alternative(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        if i % 2 == 1 {
            out.push_str(part.split('|').next().unwrap());
        } else {
            out.push_str(part);
        }
    }
    out
}

#[test]
fn every_documented_command_is_accepted() {
    let examples = documented_examples();
    let types: Vec<String> = examples
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| v["type"].as_str().map(str::to_string))
        .collect();
    for ty in [
        "open_account",
        "oracle_round",
        "limit",
        "stop",
        "amend",
        "withdraw",
    ] {
        assert!(
            types.iter().any(|t| t == ty),
            "the doc shows {ty}: {types:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.jsonl");
    std::fs::write(&path, examples.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = run(&["engine", "run", "--input", path.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "every documented line parses: {stderr}\n{examples:#?}"
    );
    assert!(!stderr.contains("line "), "no line skipped: {stderr}");
    assert!(stdout.contains("\"summary\"") || !stdout.is_empty());
}
