//! Agent mode: inotify re-checks, the run loop with signed snapshots, and the CLI's exit codes.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bulwark_audit::agent::{Auditor, Schedule};
use bulwark_audit::budget::Budget;
use bulwark_audit::policy::parse_policy;
use bulwark_audit::report::Outcome;
use bulwark_audit::rule::PatternCache;
use bulwark_audit::sign::verify_report;
use bulwark_audit::COMMITTEE_NODE_POLICY;
use bulwark_auditor::agent::{run_loop, AgentConfig, AgentEvent};
use bulwark_auditor::clock::SystemClock;
use bulwark_auditor::watch::FileWatch;
use bulwark_auditor::{AuditArgs, OutputFormat};
use common::Variant;
use ed25519_dalek::SigningKey;

fn auditor() -> Auditor {
    let p = parse_policy(
        COMMITTEE_NODE_POLICY,
        "committee-node.yml",
        &mut PatternCache::default(),
    )
    .unwrap();
    Auditor::new(vec![p], vec![], None)
}

#[test]
fn a_changed_file_is_rechecked_within_a_second() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut a = auditor();
    a.scan(&host, 1);
    let watch = FileWatch::new(dir.path(), &a.watched_paths()).unwrap();
    assert!(watch.dirs > 0);
    let t0 = Instant::now();
    common::write(
        dir.path(),
        "/etc/ssh/sshd_config.d/10-bulwark.conf",
        "PermitRootLogin yes\n",
    );
    let changed = watch.wait(Duration::from_secs(5), Duration::from_millis(20));
    assert!(
        changed.contains(&"/etc/ssh/sshd_config.d/10-bulwark.conf".to_owned()),
        "{changed:?}"
    );
    let diff = a.recheck(&host, &changed, 2);
    let elapsed = t0.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "re-check took {elapsed:?}"
    );
    let ids: Vec<u64> = diff.iter().map(|c| c.check).collect();
    // Root login flips; the drop-in no longer sets PasswordAuthentication or MaxAuthTries either, so
    // the main file's `PasswordAuthentication yes` and the default MaxAuthTries 6 now apply.
    assert_eq!(ids, [900001, 900003, 900004], "{diff:?}");
    assert!(diff.iter().all(|c| c.after == Some(Outcome::Failed)));
    // Unrelated files in a watched directory are filtered out.
    common::write(dir.path(), "/etc/ssh/moduli", "x\n");
    let later = watch.wait(Duration::from_millis(300), Duration::from_millis(10));
    assert!(!later.iter().any(|p| p.ends_with("moduli")), "{later:?}");
}

#[test]
fn run_loop_emits_changes_and_verifiable_signed_snapshots() {
    let dir = common::tree(Variant::Failing);
    let host = common::host(dir.path(), Variant::Failing);
    let mut a = auditor();
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let clock = Cell::new(1_000u64);
    let now = || {
        clock.set(clock.get() + 400_000); // every call advances past one scan period
        clock.get()
    };
    let mut events = Vec::new();
    let config = AgentConfig {
        schedule: Schedule::default_with_seed(1),
        snapshot_every_scans: 2,
        debounce: Duration::from_millis(10),
        budget: Budget::agent_default(),
        clock: std::sync::Arc::new(SystemClock),
    };
    run_loop(&mut a, &host, config, None, &key, &now, &mut |ev| {
        events.push(ev);
        if events.len() >= 4 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    // Scan 1: all results are changes, then a snapshot; scan 2: no change, no snapshot;
    // scan 3: no change, snapshot; ...
    assert!(
        matches!(&events[0], AgentEvent::Changes { changes, .. } if changes.len() == 24),
        "{:?}",
        events[0]
    );
    let AgentEvent::Snapshot(s) = &events[1] else {
        panic!("{:?}", events[1])
    };
    let report = verify_report(s).unwrap();
    assert_eq!(report.node.as_deref(), Some(s.node.as_str()));
    assert!(report
        .summary()
        .critical_failures
        .iter()
        .any(|c| c.check == 900001));
    assert!(
        events[2..]
            .iter()
            .all(|e| matches!(e, AgentEvent::Snapshot(_))),
        "only snapshots once stable"
    );
}

fn args(policies: Vec<std::path::PathBuf>, root: &std::path::Path) -> AuditArgs {
    AuditArgs {
        policy: policies,
        root: root.to_path_buf(),
        format: OutputFormat::Json,
        commands_fixture: None,
        manifest: None,
        rule: None,
        no_intrinsic_commands: false,
        command_timeout_ms: 1000,
        command_output_max: 1 << 20,
        io_budget_percent: None,
        io_budget_entries_per_s: None,
        io_budget_read_bytes_per_s: None,
    }
}

#[test]
fn cli_exit_codes_and_malformed_policies() {
    let pass = common::tree(Variant::Passing);
    let fail = common::tree(Variant::Failing);
    let pdir = tempfile::tempdir().unwrap();
    let good = pdir.path().join("good.yml");
    std::fs::write(&good, "policy: {id: g}\nchecks:\n  - {id: 1, title: t, condition: all, rules: ['sysctl:net.ipv4.ip_forward -> 0']}\n").unwrap();
    let bad = pdir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "policy: {id: b}\nchecks:\n  - {id: 1, title: t, condition: maybe, rules: ['f:/x']}\n",
    )
    .unwrap();
    let code = |a: AuditArgs| format!("{:?}", bulwark_auditor::run(a));
    let exit = |n: u8| format!("{:?}", std::process::ExitCode::from(n));
    assert_eq!(code(args(vec![good.clone()], pass.path())), exit(0));
    assert_eq!(code(args(vec![good.clone()], fail.path())), exit(1));
    assert_eq!(
        code(args(vec![bad.clone(), good.clone()], pass.path())),
        exit(2)
    );
    assert_eq!(
        code(args(vec![pdir.path().join("missing.yml")], pass.path())),
        exit(2)
    );
    let mut one = args(vec![], pass.path());
    one.rule = Some("sshd:permitrootlogin -> no".into());
    assert_eq!(code(one.clone()), exit(0));
    one.root = fail.path().to_path_buf();
    assert_eq!(code(one), exit(1));
    for f in [OutputFormat::Text, OutputFormat::Junit, OutputFormat::Sarif] {
        let mut a = args(vec![good.clone()], fail.path());
        a.format = f;
        assert_eq!(code(a), exit(1));
    }
    // A walk budget changes the pace, not the verdict; an impossible one is a usage error.
    let mut paced = args(vec![good.clone()], fail.path());
    paced.io_budget_percent = Some(50);
    paced.io_budget_entries_per_s = std::num::NonZeroU64::new(1_000_000);
    assert_eq!(code(paced.clone()), exit(1));
    paced.io_budget_percent = Some(0);
    assert_eq!(code(paced), exit(2));
}
