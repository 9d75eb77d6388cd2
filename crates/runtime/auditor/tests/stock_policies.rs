//! Every Linux policy in the shared Wazuh data set must load (skipped with a message when the data
//! set is absent: it is not part of this repository).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bulwark_audit::rule::{Pattern, PatternCache, RuleKind};
use bulwark_auditor::load::load_policy;

fn data_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/sca-policies");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "SKIP: {} is absent; stock-policy tests not run",
            d.display()
        );
        None
    }
}

fn policy_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["wazuh-main", "wazuh-v4.14.7"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_linux_policy_loads() {
    let Some(dir) = data_dir() else { return };
    let mut pc = PatternCache::default();
    let (mut checks, mut rules, mut invalid_patterns) = (0usize, 0usize, 0usize);
    let files = policy_files(&dir);
    assert!(
        files.len() >= 40,
        "expected the 41 shared policies, found {}",
        files.len()
    );
    let mut errors = Vec::new();
    for f in &files {
        match load_policy(f, &mut pc) {
            Ok(p) => {
                checks += p.checks.len();
                for c in &p.checks {
                    rules += c.rules.len();
                    for r in &c.rules {
                        assert!(
                            !r.kind.is_native(),
                            "stock rule parsed as native: {}",
                            r.text
                        );
                        if let Some(terms) = &r.content {
                            for t in terms {
                                if let bulwark_audit::rule::Term::Regex { pattern, .. } = t {
                                    if matches!(**pattern, Pattern::Invalid(_)) {
                                        invalid_patterns += 1;
                                    }
                                }
                            }
                        }
                        let _ = r.kind == RuleKind::Registry;
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(
        errors.is_empty(),
        "policies failed to load:\n{}",
        errors.join("\n")
    );
    println!(
        "{} policies, {checks} checks, {rules} rules, {invalid_patterns} regex terms invalid",
        files.len()
    );
    assert!(checks > 5_000);
}

#[test]
fn every_linux_policy_evaluates_on_a_fixture_host() {
    #[path = "common/mod.rs"]
    mod common;
    let Some(dir) = data_dir() else { return };
    let host_dir = common::tree(common::Variant::Passing);
    let host = common::host(host_dir.path(), common::Variant::Passing);
    let mut pc = PatternCache::default();
    let mut evaluated = 0;
    for f in policy_files(&dir) {
        let p = load_policy(&f, &mut pc).unwrap();
        let r = bulwark_audit::eval::Scan::new(&host).policy(&p);
        if matches!(r.status, bulwark_audit::report::PolicyStatus::Evaluated) {
            evaluated += 1;
            assert_eq!(r.checks.len(), p.checks.len());
        }
    }
    // The fixture is a Debian 12 host: at least cis_debian12 (both dialects) and the
    // distro-independent policy apply.
    assert!(evaluated >= 3, "only {evaluated} policies applied");
}
