//! The shipped committee-node baseline and manifest on passing and failing fixture hosts, mutation
//! tests, trust, and the stock policies against the same hosts.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use bulwark_audit::agent::{changes, Auditor};
use bulwark_audit::manifest::Manifest;
use bulwark_audit::policy::Policy;
use bulwark_audit::report::{Outcome, Report};
use bulwark_audit::rule::PatternCache;
use bulwark_audit::trust::{TrustLevel, TrustPolicy, TrustTracker};
use bulwark_auditor::load::{load_manifest, load_policy};
use common::Variant;

fn baseline() -> Policy {
    load_policy(
        &common::manifest_dir().join("policies/committee-node.yml"),
        &mut PatternCache::default(),
    )
    .unwrap()
}

fn manifest() -> Manifest {
    load_manifest(&common::manifest_dir().join("policies/committee-node.manifest.yml")).unwrap()
}

fn failed(report: &Report) -> BTreeSet<(String, u64)> {
    report
        .policies
        .iter()
        .flat_map(|p| {
            p.checks
                .iter()
                .filter(|c| c.outcome == Outcome::Failed)
                .map(|c| (p.id.clone(), c.id))
        })
        .collect()
}

fn scan(v: Variant) -> Report {
    let dir = common::tree(v);
    let host = common::host(dir.path(), v);
    Auditor::new(vec![baseline()], vec![], Some(manifest()))
        .scan(&host, 1)
        .0
}

#[test]
fn passing_host_passes_everything() {
    if !common::running_as_root() {
        println!("SKIP: ownership checks expect files owned by uid 0; run as root");
        return;
    }
    let r = scan(Variant::Passing);
    let s = r.summary();
    assert_eq!(
        failed(&r),
        BTreeSet::new(),
        "{}",
        bulwark_audit::format::text(&r)
    );
    assert_eq!(s.not_applicable, 0, "{}", bulwark_audit::format::text(&r));
    assert_eq!(s.score_bp, Some(10_000));
    let mut t = TrustTracker::new(TrustPolicy::default());
    t.observe(s, 1);
    assert_eq!(t.state(1).level, TrustLevel::Trusted);
}

#[test]
fn failing_host_fails_exactly_the_drifted_checks() {
    let r = scan(Variant::Failing);
    let mut want: BTreeSet<(String, u64)> = [
        900001, // PermitRootLogin yes
        900020, // ip_forward 1
        900030, // /etc/shadow 0644
        900041, // usb_storage loaded
        900042, // inetutils-telnetd installed
    ]
    .into_iter()
    .map(|id| ("bulwark_committee_node".to_owned(), id))
    .collect();
    for id in [1, 2, 4, 5] {
        // listener 8080, avahi enabled, usb_storage loaded, setuid rootshell
        want.insert(("manifest:committee-node".to_owned(), id));
    }
    if !common::running_as_root() {
        // Ownership checks fail everywhere when the fixture is not owned by root.
        return;
    }
    assert_eq!(failed(&r), want, "{}", bulwark_audit::format::text(&r));
    let s = r.summary();
    let critical: BTreeSet<u64> = s.critical_failures.iter().map(|c| c.check).collect();
    assert_eq!(critical, [1, 5, 900001].into());
    let mut t = TrustTracker::new(TrustPolicy::default());
    t.observe(s, 1);
    let state = t.state(1);
    assert_eq!(state.level, TrustLevel::Untrusted);
    assert!(
        state
            .reasons
            .iter()
            .any(|r| r.contains("Root cannot log in")),
        "{:?}",
        state.reasons
    );
    let text = bulwark_audit::format::text(&r);
    assert!(
        text.contains("unexpected listener: tcp 0.0.0.0:8080"),
        "{text}"
    );
    assert!(text.contains("/usr/local/bin/rootshell"), "{text}");
}

#[test]
fn flipping_permit_root_login_changes_exactly_one_check() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut auditor = Auditor::new(vec![baseline()], vec![], Some(manifest()));
    let (before, _) = auditor.scan(&host, 1);
    common::write(
        dir.path(),
        "/etc/ssh/sshd_config.d/10-bulwark.conf",
        "PermitRootLogin yes\nPasswordAuthentication no\nMaxAuthTries 3\n",
    );

    // Full rescan: only 900001 changes.
    let (after, diff) = auditor.scan(&host, 2);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(
        (diff[0].check, diff[0].before, diff[0].after),
        (900001, Some(Outcome::Passed), Some(Outcome::Failed))
    );
    assert_eq!(changes(Some(&before), &after), diff);

    // Targeted re-check of the changed file flips it back the same way.
    common::write(
        dir.path(),
        "/etc/ssh/sshd_config.d/10-bulwark.conf",
        "PermitRootLogin no\nPasswordAuthentication no\nMaxAuthTries 3\n",
    );
    let diff = auditor.recheck(&host, &["/etc/ssh/sshd_config.d/10-bulwark.conf".into()], 3);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(
        (diff[0].check, diff[0].after),
        (900001, Some(Outcome::Passed))
    );
    // And a re-check of an unrelated file changes nothing.
    assert!(auditor
        .recheck(&host, &["/etc/hostname".into()], 4)
        .is_empty());
    // The main file's own `PermitRootLogin yes` comes after the Include: the drop-in still wins.
    assert!(auditor
        .recheck(&host, &["/etc/ssh/sshd_config".into()], 5)
        .is_empty());
}

#[test]
fn stock_policies_on_fixture_hosts_and_root_login_mutation() {
    let Some(stock) = common::stock_dir() else {
        return;
    };
    let mut pc = PatternCache::default();
    let policies: Vec<Policy> = [
        "wazuh-main/debian__cis_debian12.yml",
        "wazuh-main/generic__sca_distro_independent_linux.yml",
        "wazuh-v4.14.7/cis_debian12.yml",
    ]
    .iter()
    .map(|f| load_policy(&stock.join(f), &mut pc).unwrap())
    .collect();
    // Checks whose rules mention PermitRootLogin at all: the only ones allowed to change.
    let mentions: BTreeSet<(String, u64)> = policies
        .iter()
        .flat_map(|p| {
            p.checks
                .iter()
                .filter(|c| {
                    c.rules
                        .iter()
                        .any(|r| r.text.to_ascii_lowercase().contains("permitrootlogin"))
                })
                .map(|c| (p.id.clone(), c.id))
        })
        .collect();
    assert!(!mentions.is_empty());

    let pass_dir = common::tree(Variant::Passing);
    let fail_dir = common::tree(Variant::Passing);
    // The failing tree differs from the passing one only in root login (file and `sshd -T`).
    common::write(
        fail_dir.path(),
        "/etc/ssh/sshd_config.d/10-bulwark.conf",
        "PermitRootLogin yes\nPasswordAuthentication no\nMaxAuthTries 3\n",
    );
    let pass = Auditor::new(policies.clone(), vec![], None)
        .scan(&common::host(pass_dir.path(), Variant::Passing), 1)
        .0;
    let fail = Auditor::new(policies, vec![], None)
        .scan(&common::host(fail_dir.path(), Variant::Failing), 1)
        .0;
    for p in &pass.policies {
        assert!(
            matches!(p.status, bulwark_audit::report::PolicyStatus::Evaluated),
            "{} {:?}",
            p.id,
            p.status
        );
        assert!(p.passed + p.failed > 0, "{} decided nothing", p.id);
    }
    let diff: BTreeSet<(String, u64)> = changes(Some(&pass), &fail)
        .into_iter()
        .map(|c| (c.policy, c.check))
        .collect();
    assert!(
        !diff.is_empty(),
        "flipping root login must change something"
    );
    assert!(
        diff.is_subset(&mentions),
        "unexpected changes: {:?}",
        diff.difference(&mentions).collect::<Vec<_>>()
    );
    // The 5.x debian check (`sshd -T -> r:^PermitRootLogin\s+no`) and the generic one both flip.
    assert!(diff.contains(&("cis_debian12".into(), 33173)), "{diff:?}");
    assert!(
        diff.contains(&("sca_distro_independent_linux".into(), 36147)),
        "{diff:?}"
    );
}

#[test]
fn a_requirement_file_change_reevaluates_the_whole_policy() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut auditor = Auditor::new(vec![baseline()], vec![], None);
    auditor.scan(&host, 1);
    common::write(dir.path(), "/etc/os-release", "NAME=unknown\n");
    let diff = auditor.recheck(&host, &["/etc/os-release".into()], 2);
    assert_eq!(
        diff.len(),
        baseline().checks.len(),
        "every check disappears: {diff:?}"
    );
    assert!(diff.iter().all(|c| c.after.is_none()));
    common::write(dir.path(), "/etc/os-release", "ID=debian\n");
    let diff = auditor.recheck(&host, &["/etc/os-release".into()], 3);
    assert!(
        diff.iter().all(|c| c.before.is_none() && c.after.is_some()),
        "{diff:?}"
    );
}
