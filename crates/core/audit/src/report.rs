//! Results of a scan. Every type here serializes deterministically (fixed field order, ordered maps,
//! integers only: the score is in basis points) so the JSON form is the canonical signed form.

use serde::{Deserialize, Serialize};

use crate::policy::Severity;

/// Outcome of one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOutcome {
    /// The rule's condition holds (after `not`).
    Found,
    /// It does not.
    NotFound,
    /// It could not be decided (missing file for a content rule, unreadable file, command not run,
    /// bad regex, registry rule on Linux).
    Invalid,
}

/// Result of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    /// Rule text after variable expansion.
    pub rule: String,
    /// Outcome.
    pub outcome: RuleOutcome,
    /// Why it is invalid, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check's condition is met.
    Passed,
    /// It is not.
    Failed,
    /// It could not be decided (an invalid rule and nothing else decisive).
    NotApplicable,
}

/// Result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check id.
    pub id: u64,
    /// Check title.
    pub title: String,
    /// Severity of a failure.
    pub severity: Severity,
    /// Outcome.
    pub outcome: Outcome,
    /// A short reason: the first invalid rule's reason when not applicable, the offending items for
    /// manifest checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per-rule results in rule order.
    pub rules: Vec<RuleResult>,
}

/// Whether a policy was evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PolicyStatus {
    /// Checks were evaluated.
    Evaluated,
    /// The requirements did not pass; no check was evaluated.
    RequirementsNotMet {
        /// Requirements title and outcome.
        reason: String,
    },
    /// The policy could not be loaded.
    Error {
        /// The load error (file, line, what).
        message: String,
    },
}

/// Result of one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// Policy id (the file name for policies that failed to load).
    pub id: String,
    /// Policy name.
    pub name: String,
    /// Source file.
    pub file: String,
    /// Evaluated, skipped or broken.
    #[serde(flatten)]
    pub status: PolicyStatus,
    /// Passed checks.
    pub passed: u32,
    /// Failed checks.
    pub failed: u32,
    /// Not applicable checks.
    pub not_applicable: u32,
    /// passed / (passed + failed) in basis points (10000 = 100 %); `None` with no decided check.
    pub score_bp: Option<u32>,
    /// Check results in policy order.
    pub checks: Vec<CheckResult>,
}

impl PolicyResult {
    /// Builds a result from check results, computing counts and score.
    pub fn from_checks(id: String, name: String, file: String, checks: Vec<CheckResult>) -> Self {
        let mut r = Self {
            id,
            name,
            file,
            status: PolicyStatus::Evaluated,
            passed: 0,
            failed: 0,
            not_applicable: 0,
            score_bp: None,
            checks,
        };
        r.recount();
        r
    }

    /// A policy that could not be loaded.
    pub fn error(file: String, message: String) -> Self {
        Self {
            id: file.clone(),
            name: file.clone(),
            file,
            status: PolicyStatus::Error { message },
            passed: 0,
            failed: 0,
            not_applicable: 0,
            score_bp: None,
            checks: Vec::new(),
        }
    }

    /// Recomputes counts and score from `checks` (after a partial re-check).
    pub fn recount(&mut self) {
        let count = |o| self.checks.iter().filter(|c| c.outcome == o).count() as u32;
        self.passed = count(Outcome::Passed);
        self.failed = count(Outcome::Failed);
        self.not_applicable = count(Outcome::NotApplicable);
        self.score_bp = score_bp(self.passed, self.failed);
    }
}

/// passed / (passed + failed) in basis points.
pub fn score_bp(passed: u32, failed: u32) -> Option<u32> {
    let decided = u64::from(passed) + u64::from(failed);
    (decided > 0).then(|| (u64::from(passed) * 10_000 / decided) as u32)
}

/// A full scan report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Format version of this structure (1).
    pub version: u32,
    /// Node identity (hex Ed25519 public key) when the report is meant to be signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Scan time, milliseconds since the Unix epoch, from the injected clock.
    pub generated_at_ms: u64,
    /// Per-policy results, in the order the policies were given.
    pub policies: Vec<PolicyResult>,
}

/// A reference to one check, for summaries and change lists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckRef {
    /// Policy id.
    pub policy: String,
    /// Check id.
    pub check: u64,
    /// Check title.
    pub title: String,
}

/// Totals over a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed checks.
    pub passed: u32,
    /// Failed checks.
    pub failed: u32,
    /// Not applicable checks.
    pub not_applicable: u32,
    /// Overall score in basis points.
    pub score_bp: Option<u32>,
    /// Failed checks of critical severity.
    pub critical_failures: Vec<CheckRef>,
    /// Policies that failed to load.
    pub policy_errors: u32,
}

impl Report {
    /// Totals, the overall score and the critical failures. The counts saturate: a report
    /// read from a peer carries whatever counters it signed.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for p in &self.policies {
            s.passed = s.passed.saturating_add(p.passed);
            s.failed = s.failed.saturating_add(p.failed);
            s.not_applicable = s.not_applicable.saturating_add(p.not_applicable);
            if matches!(p.status, PolicyStatus::Error { .. }) {
                s.policy_errors = s.policy_errors.saturating_add(1);
            }
            for c in &p.checks {
                if c.outcome == Outcome::Failed && c.severity == Severity::Critical {
                    s.critical_failures.push(CheckRef {
                        policy: p.id.clone(),
                        check: c.id,
                        title: c.title.clone(),
                    });
                }
            }
        }
        s.score_bp = score_bp(s.passed, s.failed);
        s
    }

    /// Canonical bytes: compact JSON of this structure (the form that is signed).
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("report serialization must not fail: no maps with non-string keys")
    }
}
