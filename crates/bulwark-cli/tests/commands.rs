//! `bulwark sim` and `bulwark audit` through the binary: outcomes, exit codes, clear errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::run;

#[test]
fn sim_prints_a_json_outcome_and_refuses_bad_arguments() {
    let (code, stdout, stderr) = run(&["sim", "--scenario", "venue-spike", "--seed", "3"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["erroneous_liquidations"], 0, "{v}");
    let (code, _, stderr) = run(&["sim", "--scenario", "moon-landing"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("known: oracle-collusion"), "{stderr}");
    let (code, _, stderr) = run(&["sim", "--scenario", "venue-spike", "--nodes", "5"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("3f + 1"), "{stderr}");
}

#[test]
fn sim_runs_committee_scenarios_and_reports_who_played_the_attacker() {
    let (code, stdout, _) = run(&["sim", "--list"]);
    assert_eq!(code, 0);
    for name in [
        "wrong-root",
        "equivocator",
        "power-cut",
        "oracle-far-future",
        "venue-spike",
    ] {
        assert!(stdout.contains(name), "--list names {name}: {stdout}");
    }
    let (code, stdout, stderr) = run(&["sim", "--scenario", "wrong-root", "--seed", "3"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["held"], true, "{v}");
    assert_eq!(v["false_evidence"], 0, "{v}");
    assert_eq!(v["hostile"], serde_json::json!([0]), "{v}");
    assert!(v["evidence_against_hostile"].as_u64().unwrap() > 0, "{v}");
    assert!(v["summary"]["heights"].as_u64().unwrap() >= 25, "{v}");
    assert!(v["height_progress"].as_u64().unwrap() >= 25, "{v}");
    assert!(
        v["attack"].as_str().unwrap().contains("wrong parent root"),
        "{v}"
    );
    assert_eq!(
        v["replay"], "bulwark sim --scenario wrong-root --seed 3 --nodes 4",
        "{v}"
    );
}

#[test]
fn audit_reports_findings_and_errors_by_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
    std::fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin yes\n").unwrap();
    let policy = root.join("p.yml");
    std::fs::write(
        &policy,
        "policy:\n  id: t\n  file: p.yml\n  name: test\n  description: test\nchecks:\n  - id: 1\n    title: no root login\n    condition: none\n    rules:\n      - 'f:/etc/ssh/sshd_config -> r:^\\s*PermitRootLogin\\s+yes'\n",
    )
    .unwrap();
    let args = [
        "audit",
        "--policy",
        policy.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--format",
        "json",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 1, "a failed check is a finding: {stderr}");
    assert!(stdout.contains("\"failed\""), "{stdout}");
    std::fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&policy, "checks: [ {").unwrap();
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 2, "a malformed policy is an error: {stderr}");
    assert!(
        stderr.contains("p.yml"),
        "the error names the file: {stderr}"
    );
}

/// Every metric the shipped Grafana dashboard queries is one `docs/metrics.md` documents (a
/// dashboard over a name no node serves would show nothing, silently).
#[test]
fn the_dashboard_queries_only_documented_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
    let documented = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for panel in parsed["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("bulwark_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        // Histograms are documented by their family name, without `_bucket`.
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            documented.contains(&format!("`{family}`")),
            "the dashboard queries {name}, which docs/metrics.md does not list"
        );
    }
}
