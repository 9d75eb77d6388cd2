//! From audit reports to a trust level the sentinel and the status output read.
//!
//! Rules, in order of precedence:
//! 1. a failed check of [`Severity::Critical`](crate::policy::Severity::Critical) (an unexpected listener, root SSH login) makes the node
//!    [`TrustLevel::Untrusted`] at once, whatever the score;
//! 2. otherwise the score uses hysteresis: a trusted node becomes untrusted when the score drops
//!    below `untrusted_below_bp`, and an untrusted one recovers only at `trusted_from_bp` or more, so a
//!    score hovering at one threshold does not flap;
//! 3. a node whose last report is older than `report_age_ms_max`, that has no report yet, or whose
//!    report is mostly not applicable (`not_applicable_bp_max`) or had policy load errors is
//!    [`TrustLevel::Degraded`] (unless rule 1 or 2 already made it untrusted).
//!
//! Time is passed in (milliseconds); nothing here reads a clock.

use serde::{Deserialize, Serialize};

use crate::report::{CheckRef, Summary};

/// Thresholds. Scores are basis points (10000 = 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPolicy {
    /// A trusted node falls to untrusted below this score.
    pub untrusted_below_bp: u32,
    /// An untrusted node recovers at or above this score (must be ≥ `untrusted_below_bp`).
    pub trusted_from_bp: u32,
    /// Reports older than this make the node degraded.
    pub report_age_ms_max: u64,
    /// More not-applicable checks than this share of all checks makes the node degraded.
    pub not_applicable_bp_max: u32,
}

impl Default for TrustPolicy {
    /// 80 % to fall, 90 % to recover; a report may be 3 scan periods old (15 min); at most half of
    /// the checks may be undecided.
    fn default() -> Self {
        Self {
            untrusted_below_bp: 8_000,
            trusted_from_bp: 9_000,
            report_age_ms_max: 15 * 60 * 1000,
            not_applicable_bp_max: 5_000,
        }
    }
}

/// The node's audit trust level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustLevel {
    /// Fresh, decisive report, no critical failure, score above the threshold.
    Trusted,
    /// Stale, missing or mostly undecided evidence.
    Degraded,
    /// A critical failure or a score below the threshold.
    Untrusted,
}

/// What the sentinel and `bulwark status` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// The level.
    pub level: TrustLevel,
    /// Human-readable reasons for the level (empty when trusted).
    pub reasons: Vec<String>,
    /// Score of the last report.
    pub score_bp: Option<u32>,
    /// Critical failures in the last report.
    pub critical_failures: Vec<CheckRef>,
    /// Time of the last report, if any.
    pub last_report_ms: Option<u64>,
}

/// Tracks trust across reports (keeps the hysteresis state).
#[derive(Debug, Clone)]
pub struct TrustTracker {
    policy: TrustPolicy,
    score_ok: bool,
    last: Option<(u64, Summary)>,
}

impl TrustTracker {
    /// A tracker with no report yet (degraded until the first one).
    pub fn new(policy: TrustPolicy) -> Self {
        assert!(
            policy.trusted_from_bp >= policy.untrusted_below_bp,
            "trust policy must have trusted_from_bp >= untrusted_below_bp for hysteresis"
        );
        Self {
            policy,
            score_ok: true,
            last: None,
        }
    }

    /// Takes a new report summary produced at `at_ms`.
    pub fn observe(&mut self, summary: Summary, at_ms: u64) {
        if let Some(score) = summary.score_bp {
            if self.score_ok && score < self.policy.untrusted_below_bp {
                self.score_ok = false;
            } else if !self.score_ok && score >= self.policy.trusted_from_bp {
                self.score_ok = true;
            }
        }
        self.last = Some((at_ms, summary));
    }

    /// The state as of `now_ms`.
    pub fn state(&self, now_ms: u64) -> AuditState {
        let Some((at, s)) = &self.last else {
            return AuditState {
                level: TrustLevel::Degraded,
                reasons: vec!["no audit report yet".into()],
                score_bp: None,
                critical_failures: Vec::new(),
                last_report_ms: None,
            };
        };
        let mut untrusted = Vec::new();
        let mut degraded = Vec::new();
        for c in &s.critical_failures {
            untrusted.push(format!(
                "critical check failed: {} {} {}",
                c.policy, c.check, c.title
            ));
        }
        if !self.score_ok {
            untrusted.push(format!(
                "score {} bp below threshold (recovers at {} bp)",
                s.score_bp.unwrap_or(0),
                self.policy.trusted_from_bp
            ));
        }
        let age = now_ms.saturating_sub(*at);
        if age > self.policy.report_age_ms_max {
            degraded.push(format!("last report is {age} ms old"));
        }
        let total = u64::from(s.passed) + u64::from(s.failed) + u64::from(s.not_applicable);
        if total == 0 {
            degraded.push("report decided no check".into());
        } else if u64::from(s.not_applicable) * 10_000
            > u64::from(self.policy.not_applicable_bp_max) * total
        {
            degraded.push(format!(
                "{} of {total} checks not applicable",
                s.not_applicable
            ));
        }
        if s.policy_errors > 0 {
            degraded.push(format!("{} policies failed to load", s.policy_errors));
        }
        let (level, reasons) = if !untrusted.is_empty() {
            untrusted.extend(degraded);
            (TrustLevel::Untrusted, untrusted)
        } else if !degraded.is_empty() {
            (TrustLevel::Degraded, degraded)
        } else {
            (TrustLevel::Trusted, Vec::new())
        };
        AuditState {
            level,
            reasons,
            score_bp: s.score_bp,
            critical_failures: s.critical_failures.clone(),
            last_report_ms: Some(*at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(passed: u32, failed: u32, na: u32) -> Summary {
        Summary {
            passed,
            failed,
            not_applicable: na,
            score_bp: crate::report::score_bp(passed, failed),
            ..Summary::default()
        }
    }

    #[test]
    fn hysteresis_critical_stale_and_invalid() {
        let mut t = TrustTracker::new(TrustPolicy::default());
        assert_eq!(t.state(0).level, TrustLevel::Degraded, "no report yet");
        t.observe(summary(95, 5, 0), 0);
        assert_eq!(t.state(0).level, TrustLevel::Trusted);
        t.observe(summary(85, 15, 0), 1);
        assert_eq!(
            t.state(1).level,
            TrustLevel::Trusted,
            "85 % is above the fall threshold"
        );
        t.observe(summary(79, 21, 0), 2);
        assert_eq!(t.state(2).level, TrustLevel::Untrusted);
        t.observe(summary(85, 15, 0), 3);
        assert_eq!(
            t.state(3).level,
            TrustLevel::Untrusted,
            "85 % is below the recovery threshold"
        );
        t.observe(summary(90, 10, 0), 4);
        assert_eq!(t.state(4).level, TrustLevel::Trusted);

        let mut crit = summary(100, 1, 0);
        crit.critical_failures.push(CheckRef {
            policy: "p".into(),
            check: 1,
            title: "root".into(),
        });
        t.observe(crit, 5);
        assert_eq!(
            t.state(5).level,
            TrustLevel::Untrusted,
            "critical failure at 99 %"
        );

        t.observe(summary(100, 0, 0), 6);
        assert_eq!(t.state(6).level, TrustLevel::Trusted);
        let stale = 6 + TrustPolicy::default().report_age_ms_max + 1;
        assert_eq!(t.state(stale).level, TrustLevel::Degraded);
        t.observe(summary(10, 0, 11), 7);
        assert_eq!(
            t.state(7).level,
            TrustLevel::Degraded,
            "mostly not applicable"
        );
    }
}
