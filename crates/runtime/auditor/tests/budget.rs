//! Walk budgets on real fixture trees: pacing changes how long a scan takes, never what it reports.
#![allow(clippy::unwrap_used)]

mod common;

use std::num::NonZeroU64;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_audit::agent::{Auditor, Schedule};
use bulwark_audit::budget::{Budget, Clock, PaceStats};
use bulwark_audit::manifest::Manifest;
use bulwark_audit::policy::parse_policy;
use bulwark_audit::rule::PatternCache;
use bulwark_audit::{COMMITTEE_NODE_MANIFEST, COMMITTEE_NODE_POLICY};
use bulwark_auditor::agent::{run_loop, AgentConfig};
use bulwark_auditor::clock::SystemClock;
use bulwark_auditor::AuditArgs;
use clap::Parser;
use common::Variant;
use ed25519_dalek::SigningKey;

/// Checks whose rules walk trees: the whole root, `/usr`, a small directory, a missing one.
const WALKS: &str = r#"
policy: { id: walks, name: Walks }
checks:
  - { id: 1, title: "usb-storage blacklisted somewhere", condition: any,
      rules: ['d:/ -> r:\.conf$ -> r:^blacklist\s+usb-storage'] }
  - { id: 2, title: "no rootshell under /usr", condition: none, rules: ['d:/usr -> rootshell'] }
  - { id: 3, title: "drop-ins forbid root login", condition: all,
      rules: ['d:/etc/ssh -> r:\.conf$ -> r:^PermitRootLogin\s+no'] }
  - { id: 4, title: "missing directory", condition: all, rules: ['d:/nope -> x'] }
  - { id: 5, title: "unit files anywhere", condition: any,
      rules: ['d:/ -> r:\.service$ -> r:^WantedBy=multi-user'] }
"#;

/// Every reading of the clock advances it by `tick` (a stand-in for the work done between two
/// readings), and a sleep advances it by exactly the time asked: the pacing decisions of a scan over
/// a given tree are then the same on every run and machine.
struct TickClock {
    now: Mutex<Duration>,
    tick: Duration,
}

impl TickClock {
    fn new(tick: Duration) -> Self {
        Self {
            now: Mutex::new(Duration::ZERO),
            tick,
        }
    }
}

impl Clock for TickClock {
    fn now(&self) -> Duration {
        let mut now = self.now.lock().unwrap();
        *now += self.tick;
        *now
    }
    fn sleep(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
    }
}

fn auditor() -> Auditor {
    let mut patterns = PatternCache::default();
    let policies = vec![
        parse_policy(COMMITTEE_NODE_POLICY, "committee-node.yml", &mut patterns).unwrap(),
        parse_policy(WALKS, "walks.yml", &mut patterns).unwrap(),
    ];
    let manifest = Manifest::parse(COMMITTEE_NODE_MANIFEST, "committee-node.manifest.yml").unwrap();
    Auditor::new(policies, vec![], Some(manifest))
}

fn tight_budget() -> Budget {
    Budget::new(10)
        .unwrap()
        .with_entries_per_s_max(NonZeroU64::new(2_000))
        .with_read_bytes_per_s_max(NonZeroU64::new(20_000))
}

/// The pacing invariant, up to what a governor may leave unpaid when the last walk ends: less than
/// one slice of work (so `100 / percent` slices of CPU debt) and less than one slice of rate debt.
fn assert_within(budget: Budget, s: PaceStats) {
    let slice = Duration::from_millis(u64::from(budget.slice_ms().get()));
    let percent = u32::from(budget.cpu_percent_max());
    let walked = s.busy + s.slept;
    assert!(
        s.busy * 100 / percent <= walked + slice * 100 / percent,
        "{s:?}"
    );
    let per_s = |n: u64, rate: Option<NonZeroU64>| {
        rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(n as f64 / r.get() as f64)
        })
    };
    assert!(
        per_s(s.entries, budget.entries_per_s_max()) <= walked + slice,
        "{s:?}"
    );
    assert!(
        per_s(s.read_bytes, budget.read_bytes_per_s_max()) <= walked + slice,
        "{s:?}"
    );
}

#[test]
fn a_paced_scan_reports_exactly_what_an_unpaced_one_does() {
    for variant in [Variant::Passing, Variant::Failing] {
        let dir = common::tree(variant);
        let host = common::host(dir.path(), variant);
        let mut free = auditor();
        let mut paced = auditor();
        paced.set_pace(
            tight_budget(),
            Arc::new(TickClock::new(Duration::from_millis(1))),
        );

        let (expected, _) = free.scan(&host, 7);
        let (got, _) = paced.scan(&host, 7);
        assert_eq!(got, expected, "{variant:?}");
        let walks = got.policies.iter().find(|p| p.id == "walks").unwrap();
        assert_eq!(walks.checks.len(), 5);
        let setuid = &got.policies.last().unwrap().checks;
        assert!(setuid.iter().any(|c| c.id == 5), "the setuid walk ran");

        let f = free.last_pace().unwrap();
        let p = paced.last_pace().unwrap();
        assert_eq!((f.entries, f.read_bytes), (p.entries, p.read_bytes));
        assert!(p.entries > 50 && p.read_bytes > 0, "{p:?}");
        assert_eq!(
            (f.sleeps, f.slept),
            (0, Duration::ZERO),
            "unlimited never sleeps"
        );
        assert!(p.sleeps > 0, "{p:?}");
        assert_within(tight_budget(), p);

        // Re-checks are paced too, with the same verdicts.
        common::write(
            dir.path(),
            "/etc/ssh/sshd_config.d/20-extra.conf",
            "PermitRootLogin no\n",
        );
        let changed = ["/etc/ssh/sshd_config.d/20-extra.conf".to_owned()];
        assert_eq!(
            paced.recheck(&host, &changed, 8),
            free.recheck(&host, &changed, 8)
        );
        assert_eq!(paced.last_report(), free.last_report());
    }
}

#[test]
fn the_system_clock_really_sleeps() {
    let dir = common::tree(Variant::Failing);
    let host = common::host(dir.path(), Variant::Failing);
    let budget = Budget::new(100)
        .unwrap()
        .with_entries_per_s_max(NonZeroU64::new(2_000));
    let mut free = auditor();
    let (expected, _) = free.scan(&host, 1);
    let mut paced = auditor();
    paced.set_pace(budget, Arc::new(SystemClock));
    let started = Instant::now();
    let (got, _) = paced.scan(&host, 1);
    let elapsed = started.elapsed();
    assert_eq!(got, expected);
    let s = paced.last_pace().unwrap();
    // A lower bound only: sleeping never ends early, so this holds on any machine.
    let floor = Duration::from_secs_f64(s.entries as f64 / 2_000.0) - Duration::from_millis(10);
    assert!(elapsed >= floor, "{elapsed:?} < {floor:?} for {s:?}");
    assert!(s.slept >= floor, "{s:?}");
}

#[test]
fn the_agent_loop_paces_with_its_configured_budget() {
    let dir = common::tree(Variant::Passing);
    let host = common::host(dir.path(), Variant::Passing);
    let mut a = auditor();
    let clock = Mutex::new(0u64);
    let now = || {
        let mut t = clock.lock().unwrap();
        *t += 400_000;
        *t
    };
    let config = AgentConfig {
        schedule: Schedule::default_with_seed(1),
        snapshot_every_scans: 1,
        debounce: Duration::from_millis(10),
        budget: Budget::agent_default(),
        clock: Arc::new(TickClock::new(Duration::from_millis(1))),
    };
    let key = SigningKey::from_bytes(&[5u8; 32]);
    run_loop(&mut a, &host, config, None, &key, &now, &mut |_| {
        ControlFlow::Break(())
    });
    let s = a.last_pace().unwrap();
    assert!(s.sleeps > 0, "{s:?}");
    assert_within(Budget::agent_default(), s);
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    audit: AuditArgs,
}

#[test]
fn cli_flags_set_the_budget() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["audit", "--policy", "p.yml"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|c| c.audit.budget().unwrap())
    };
    assert_eq!(
        parse(&[]).unwrap(),
        Budget::unlimited(),
        "one-shot scans are unlimited"
    );
    let b = parse(&[
        "--io-budget-percent",
        "20",
        "--io-budget-entries-per-s",
        "5000",
        "--io-budget-read-bytes-per-s",
        "1048576",
    ])
    .unwrap();
    assert_eq!(b.cpu_percent_max(), 20);
    assert_eq!(b.entries_per_s_max(), NonZeroU64::new(5_000));
    assert_eq!(b.read_bytes_per_s_max(), NonZeroU64::new(1 << 20));
    for bad in [
        &["--io-budget-percent", "0"][..],
        &["--io-budget-percent", "101"],
        &["--io-budget-entries-per-s", "0"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}
