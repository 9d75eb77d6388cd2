//! Agent mode: scheduled scans, change detection, re-checks of rules whose files changed, and the
//! periodic signed snapshot.
//!
//! [`Auditor`] and [`Schedule`] are sans-IO (time and randomness are passed in; the clock that paces
//! whole-tree walks is an injected [`Clock`]). The blocking driver a node runs on a thread, which
//! scans on schedule and re-checks on file events, is `bulwark_auditor::agent::run_loop`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::budget::{Budget, Clock, PaceStats, Unpaced};
use crate::eval::Scan;
use crate::host::Host;
use crate::manifest::Manifest;
use crate::policy::{Policy, PolicyError, Severity};
use crate::report::{Outcome, PolicyResult, Report};
use crate::rule::{Rule, RuleKind};

/// Default scan period: 5 minutes.
pub const SCAN_PERIOD_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// Default jitter: ±20 % of the period.
pub const SCAN_JITTER_BP_DEFAULT: u32 = 2_000;

/// Scan times with seeded jitter, so nodes do not scan in lockstep and a seed reproduces a run.
#[derive(Debug, Clone)]
pub struct Schedule {
    period_ms: u64,
    jitter_bp: u32,
    state: u64,
}

impl Schedule {
    /// `period_ms ± jitter_bp/10000 · period_ms`, uniformly, from a SplitMix64 stream seeded by `seed`.
    pub fn new(period_ms: u64, jitter_bp: u32, seed: u64) -> Self {
        assert!(
            jitter_bp <= 10_000,
            "schedule jitter must be at most 100 % of the period"
        );
        Self {
            period_ms,
            jitter_bp,
            state: seed,
        }
    }

    /// The default 5-minute, ±20 % schedule.
    pub fn default_with_seed(seed: u64) -> Self {
        Self::new(SCAN_PERIOD_MS_DEFAULT, SCAN_JITTER_BP_DEFAULT, seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Delay until the next scan.
    pub fn next_delay_ms(&mut self) -> u64 {
        let spread = self.period_ms * u64::from(self.jitter_bp) / 10_000;
        let offset = if spread == 0 {
            0
        } else {
            self.next_u64() % (2 * spread + 1)
        };
        self.period_ms - spread + offset
    }
}

/// One check whose outcome changed between two reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Policy id.
    pub policy: String,
    /// Check id.
    pub check: u64,
    /// Check title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Outcome before (`None`: the check is new).
    pub before: Option<Outcome>,
    /// Outcome now (`None`: the check disappeared).
    pub after: Option<Outcome>,
}

/// Checks whose outcome differs between `prev` and `next` (all of them when there is no `prev`).
pub fn changes(prev: Option<&Report>, next: &Report) -> Vec<Change> {
    let index = |r: &Report| {
        r.policies
            .iter()
            // Keyed by file too: two policies may share an id (the 4.x and 5.x cis_debian12 do).
            .flat_map(|p| {
                p.checks.iter().map(move |c| {
                    (
                        (p.id.clone(), p.file.clone(), c.id),
                        (c.title.clone(), c.severity, c.outcome),
                    )
                })
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = prev.map(index).unwrap_or_default();
    let after = index(next);
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.into_iter()
        .filter_map(|k| {
            let b = before.get(&k);
            let a = after.get(&k);
            if b.map(|x| x.2) == a.map(|x| x.2) {
                return None;
            }
            let (title, severity, _) = a
                .or(b)
                .expect("a key comes from one of the two maps")
                .clone();
            Some(Change {
                policy: k.0,
                check: k.2,
                title,
                severity,
                before: b.map(|x| x.2),
                after: a.map(|x| x.2),
            })
        })
        .collect()
}

/// Whether `rule` reads `path` (a path inside the audited root), so a change to it needs a re-check.
///
/// Command rules are matched when the command line names the path, or `sshd -T` for `/etc/ssh/...`;
/// other command side effects are caught by the next scheduled scan.
pub fn rule_reads(rule: &Rule, path: &str) -> bool {
    let under = |dir: &str| path.starts_with(&format!("{}/", dir.trim_end_matches('/')));
    match rule.kind {
        RuleKind::File | RuleKind::Stat => rule.targets.iter().any(|t| t == path),
        RuleKind::Dir => rule
            .targets
            .iter()
            .any(|t| t.trim_end_matches('/') == path || under(t)),
        RuleKind::Sshd => under("/etc/ssh"),
        RuleKind::Blacklist => under("/etc/modprobe.d"),
        RuleKind::Package => path == "/var/lib/dpkg/status",
        RuleKind::Unit => under("/etc/systemd/system") || under("/lib/systemd/system"),
        RuleKind::Command => {
            // `Rule::parse` gives a command rule exactly one target; a hand-built one may have none.
            let Some(cmd) = rule.targets.first() else {
                return false;
            };
            cmd.split_whitespace()
                .any(|w| w.trim_matches(['\'', '"']) == path)
                || (under("/etc/ssh") && cmd.starts_with("sshd "))
        }
        RuleKind::Process
        | RuleKind::Registry
        | RuleKind::Sysctl
        | RuleKind::Listen
        | RuleKind::Module
        | RuleKind::Mount => false,
    }
}

/// Paths worth watching for `rule` (files it reads, or directories it searches).
fn watch_paths(rule: &Rule, out: &mut BTreeSet<String>) {
    match rule.kind {
        RuleKind::File | RuleKind::Stat | RuleKind::Dir => out.extend(rule.targets.iter().cloned()),
        RuleKind::Sshd => {
            out.insert("/etc/ssh/sshd_config".into());
            out.insert("/etc/ssh/sshd_config.d".into());
        }
        RuleKind::Blacklist => {
            out.insert("/etc/modprobe.d".into());
        }
        RuleKind::Package => {
            out.insert("/var/lib/dpkg/status".into());
        }
        RuleKind::Command => {
            let Some(cmd) = rule.targets.first() else {
                return;
            };
            for w in cmd.split_whitespace() {
                let w = w.trim_matches(['\'', '"']);
                if w.starts_with("/etc/") && !w.contains(['*', '?', '$']) {
                    out.insert(w.to_owned());
                }
            }
            if cmd.starts_with("sshd ") {
                out.insert("/etc/ssh/sshd_config".into());
            }
        }
        _ => {}
    }
}

/// Holds the loaded policies and the last report; produces full scans and targeted re-checks.
pub struct Auditor {
    policies: Vec<Policy>,
    load_errors: Vec<PolicyError>,
    manifest: Option<Manifest>,
    last: Option<Report>,
    intrinsics: bool,
    budget: Budget,
    clock: Arc<dyn Clock>,
    last_pace: Option<PaceStats>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("policies", &self.policies.len())
            .field("load_errors", &self.load_errors)
            .field("manifest", &self.manifest.as_ref().map(|m| &m.role))
            .field("intrinsics", &self.intrinsics)
            .field("budget", &self.budget)
            .field("last_pace", &self.last_pace)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor over loaded policies; `load_errors` are reported in every report as broken policies.
    pub fn new(
        policies: Vec<Policy>,
        load_errors: Vec<PolicyError>,
        manifest: Option<Manifest>,
    ) -> Self {
        Self {
            policies,
            load_errors,
            manifest,
            last: None,
            intrinsics: true,
            budget: Budget::unlimited(),
            clock: Arc::new(Unpaced),
            last_pace: None,
        }
    }

    /// Turns the native answers to common commands ([`crate::intrinsic`]) on (default) or off.
    pub fn set_intrinsic_commands(&mut self, on: bool) {
        self.intrinsics = on;
    }

    /// Paces the whole-tree walks of later scans and re-checks with `budget`, timed by `clock`
    /// (the machine's in production, a fake in tests). Until this is called walks are not paced:
    /// [`Budget::unlimited`] on a clock that never moves.
    pub fn set_pace(&mut self, budget: Budget, clock: Arc<dyn Clock>) {
        self.budget = budget;
        self.clock = clock;
    }

    /// Pacing of the last scan or re-check: entries and bytes walked, time worked and slept.
    pub fn last_pace(&self) -> Option<PaceStats> {
        self.last_pace
    }

    /// The last full or updated report.
    pub fn last_report(&self) -> Option<&Report> {
        self.last.as_ref()
    }

    /// A full scan at `now_ms`; returns the report and the changes since the previous one.
    pub fn scan(&mut self, host: &dyn Host, now_ms: u64) -> (Report, Vec<Change>) {
        let clock = Arc::clone(&self.clock);
        let mut scan = Scan::new(host)
            .with_intrinsic_commands(self.intrinsics)
            .with_budget(self.budget, &*clock);
        let mut policies: Vec<PolicyResult> = self
            .load_errors
            .iter()
            .map(|e| {
                let file = match e {
                    PolicyError::Read { file, .. } | PolicyError::Malformed { file, .. } => {
                        file.clone()
                    }
                };
                PolicyResult::error(file, e.to_string())
            })
            .collect();
        policies.extend(self.policies.iter().map(|p| scan.policy(p)));
        if let Some(m) = &self.manifest {
            policies.push(m.evaluate_paced(host, scan.governor()));
        }
        self.last_pace = Some(scan.pace_stats());
        let report = Report {
            version: 1,
            node: None,
            generated_at_ms: now_ms,
            policies,
        };
        let diff = changes(self.last.as_ref(), &report);
        self.last = Some(report.clone());
        (report, diff)
    }

    /// Paths (inside the root) whose changes should trigger a re-check.
    pub fn watched_paths(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in &self.policies {
            for r in p.requirements.iter().flat_map(|req| &req.rules) {
                watch_paths(r, &mut out);
            }
            for c in &p.checks {
                for r in &c.rules {
                    watch_paths(r, &mut out);
                }
            }
        }
        out
    }

    /// Re-evaluates only the checks that read one of `changed` (a whole policy when its requirements
    /// read one) and returns the changes. Without a previous report this is a full scan.
    pub fn recheck(&mut self, host: &dyn Host, changed: &[String], now_ms: u64) -> Vec<Change> {
        let Some(prev) = self.last.clone() else {
            return self.scan(host, now_ms).1;
        };
        let mut next = prev.clone();
        next.generated_at_ms = now_ms;
        let clock = Arc::clone(&self.clock);
        let mut scan = Scan::new(host)
            .with_intrinsic_commands(self.intrinsics)
            .with_budget(self.budget, &*clock);
        for policy in &self.policies {
            let Some(result) = next
                .policies
                .iter_mut()
                .find(|r| r.id == policy.id && r.file == policy.file)
            else {
                continue;
            };
            let reads = |rules: &[Rule]| {
                rules
                    .iter()
                    .any(|r| changed.iter().any(|p| rule_reads(r, p)))
            };
            // A change to what the requirements read can make the policy (in)applicable: redo it whole.
            if policy
                .requirements
                .as_ref()
                .is_some_and(|req| reads(&req.rules))
            {
                *result = scan.policy(policy);
                continue;
            }
            if !matches!(result.status, crate::report::PolicyStatus::Evaluated) {
                continue;
            }
            let mut touched = false;
            for check in &policy.checks {
                if reads(&check.rules) {
                    if let Some(slot) = result.checks.iter_mut().find(|c| c.id == check.id) {
                        *slot = scan.check(check);
                        touched = true;
                    }
                }
            }
            if touched {
                result.recount();
            }
        }
        self.last_pace = Some(scan.pace_stats());
        let diff = changes(Some(&prev), &next);
        self.last = Some(next);
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_seeded_and_bounded() {
        let mut a = Schedule::default_with_seed(7);
        let mut b = Schedule::default_with_seed(7);
        let da: Vec<u64> = (0..100).map(|_| a.next_delay_ms()).collect();
        let db: Vec<u64> = (0..100).map(|_| b.next_delay_ms()).collect();
        assert_eq!(da, db, "same seed, same schedule");
        assert!(da.iter().all(|d| (240_000..=360_000).contains(d)));
        assert!(
            da.iter().collect::<BTreeSet<_>>().len() > 90,
            "jitter actually varies"
        );
        let mut c = Schedule::default_with_seed(8);
        assert_ne!(da[0], c.next_delay_ms());
        assert_eq!(Schedule::new(1000, 0, 1).next_delay_ms(), 1000);
    }
}
