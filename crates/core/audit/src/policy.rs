//! Loading Wazuh SCA policies (4.x and 5.x dialects) into compiled [`Policy`] values.
//!
//! The YAML is deserialized straight into typed structs (no intermediate value tree) because parsing
//! dominates the cost of a scan. Rule syntax is checked during deserialization so that a malformed rule
//! is reported with its YAML line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::rule::{check_syntax, PatternCache, Rule};

/// Errors loading a policy. Each names the file; parse errors name the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{file}: cannot read the policy: {reason}")]
    Read {
        /// Policy file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The YAML is not a valid policy (syntax, missing key, wrong type, bad rule syntax).
    #[error("{file}:{line}:{column}: {what}")]
    Malformed {
        /// Policy file.
        file: String,
        /// 1-based line (0 when the parser gave no location).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        what: String,
    },
}

/// Check condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Every rule must be found.
    All,
    /// At least one rule must be found.
    Any,
    /// No rule may be found.
    None,
}

/// How much a failed check matters for the node's trust.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational hardening.
    Low,
    /// The default for checks that state none (all stock Wazuh checks).
    #[default]
    Medium,
    /// Important; counts in the score.
    High,
    /// A failure makes the node untrusted at once (bulwark extension key `severity: critical`).
    Critical,
}

/// A compiled check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Check id (unique within the policy).
    pub id: u64,
    /// `title` (4.x) or `name` (5.x).
    pub title: String,
    /// Description, if any.
    pub description: Option<String>,
    /// Remediation, if any.
    pub remediation: Option<String>,
    /// Compliance mapping, normalized from either dialect to `framework → ids`.
    pub compliance: BTreeMap<String, Vec<String>>,
    /// MITRE ATT&CK mapping (5.x): `tactic|technique|subtechnique → ids`.
    pub mitre: BTreeMap<String, Vec<String>>,
    /// Combination of rule outcomes.
    pub condition: Condition,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Severity (extension; default medium).
    pub severity: Severity,
}

/// Requirements that decide whether a policy applies to the host at all.
#[derive(Debug, Clone)]
pub struct Requirements {
    /// Title or name.
    pub title: String,
    /// Condition over the rules.
    pub condition: Condition,
    /// Rules.
    pub rules: Vec<Rule>,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `policy.id`.
    pub id: String,
    /// `policy.name` (or the id when absent).
    pub name: String,
    /// The file it was loaded from, as given.
    pub file: String,
    /// Applicability requirements.
    pub requirements: Option<Requirements>,
    /// Checks in file order.
    pub checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    policy: RawMeta,
    #[serde(default)]
    requirements: Option<RawRequirements>,
    #[serde(default)]
    variables: Option<BTreeMap<String, Scalar>>,
    checks: Vec<RawCheck>,
}

#[derive(Deserialize)]
struct RawMeta {
    id: Scalar,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawRequirements {
    #[serde(alias = "name")]
    title: String,
    condition: Condition,
    rules: Vec<RuleText>,
}

#[derive(Deserialize)]
struct RawCheck {
    id: u64,
    #[serde(alias = "name")]
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    remediation: Option<String>,
    #[serde(default)]
    compliance: Option<RawCompliance>,
    #[serde(default)]
    mitre: Option<BTreeMap<String, RawMitre>>,
    condition: Condition,
    rules: Vec<RuleText>,
    #[serde(default)]
    severity: Option<Severity>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCompliance {
    List(Vec<BTreeMap<String, Vec<Scalar>>>),
    Map(BTreeMap<String, Vec<Scalar>>),
}

#[derive(Deserialize)]
struct RawMitre {
    #[serde(default)]
    id: Vec<Scalar>,
}

/// Any YAML scalar, kept as its string form (compliance ids such as `1.1` parse as numbers).
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A rule string whose syntax was checked while parsing (so errors carry the YAML location).
struct RuleText(String);

impl<'de> Deserialize<'de> for RuleText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_syntax(&s).map_err(de::Error::custom)?;
        Ok(RuleText(s))
    }
}

/// Replaces each declared `$name` in `text` (longest names first, so `$a` never eats `$ab`).
fn expand(text: &str, vars: &[(String, String)]) -> String {
    if vars.is_empty() || !text.contains('$') {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    for (name, value) in vars {
        if out.contains(name.as_str()) {
            out = out.replace(name.as_str(), value);
        }
    }
    out
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i + 1)
}

/// Parses one policy document. `file` is used only in errors and reports.
pub fn parse_policy(
    text: &str,
    file: &str,
    patterns: &mut PatternCache,
) -> Result<Policy, PolicyError> {
    let raw: RawPolicyFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column, what) = yaml_error_parts(&e);
        PolicyError::Malformed {
            file: file.to_owned(),
            line,
            column,
            what,
        }
    })?;
    let malformed = |needle: &str, what: String| PolicyError::Malformed {
        file: file.to_owned(),
        line: line_of(text, needle),
        column: 0,
        what,
    };

    let mut vars: Vec<(String, String)> = raw
        .variables
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            (
                if k.starts_with('$') {
                    k
                } else {
                    format!("${k}")
                },
                v.0,
            )
        })
        .collect();
    vars.sort_by_key(|v| std::cmp::Reverse(v.0.len()));

    let mut compile = |rules: Vec<RuleText>| -> Result<Vec<Rule>, PolicyError> {
        rules
            .into_iter()
            .map(|r| {
                Rule::parse(&expand(&r.0, &vars), patterns)
                    .map_err(|e| malformed(&r.0, format!("after variable expansion: {e}")))
            })
            .collect()
    };

    let requirements = match raw.requirements {
        Some(r) => Some(Requirements {
            title: r.title,
            condition: r.condition,
            rules: compile(r.rules)?,
        }),
        None => None,
    };

    let mut seen = std::collections::HashSet::new();
    let mut checks = Vec::with_capacity(raw.checks.len());
    for c in raw.checks {
        if !seen.insert(c.id) {
            return Err(malformed(
                &format!("id: {}", c.id),
                format!("duplicate check id {}", c.id),
            ));
        }
        if c.rules.is_empty() {
            return Err(malformed(
                &format!("id: {}", c.id),
                format!("check {} has no rules", c.id),
            ));
        }
        let compliance = match c.compliance {
            None => BTreeMap::new(),
            Some(RawCompliance::Map(m)) => m
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(|s| s.0).collect()))
                .collect(),
            Some(RawCompliance::List(l)) => l
                .into_iter()
                .flatten()
                .map(|(k, v)| (k, v.into_iter().map(|s| s.0).collect()))
                .collect(),
        };
        let mitre = c
            .mitre
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.id.into_iter().map(|s| s.0).collect()))
            .collect();
        checks.push(Check {
            id: c.id,
            title: c.title,
            description: c.description,
            remediation: c.remediation,
            compliance,
            mitre,
            condition: c.condition,
            rules: compile(c.rules)?,
            severity: c.severity.unwrap_or_default(),
        });
    }
    let id = raw.policy.id.0;
    Ok(Policy {
        name: raw.policy.name.unwrap_or_else(|| id.clone()),
        id,
        file: file.to_owned(),
        requirements,
        checks,
    })
}

/// Splits a YAML error into 1-based line and column (0 when the parser gave no location) and a short
/// message: serde_yaml_ng appends "at line L column C" itself, which the caller reports separately.
/// Shared by policies and role manifests.
pub(crate) fn yaml_error_parts(error: &serde_yaml_ng::Error) -> (usize, usize, String) {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let what = error.to_string();
    let what = what.split(" at line ").next().unwrap_or(&what).to_owned();
    (line, column, what)
}

/// Largest policy file accepted (the biggest stock policy is under 1 MiB).
pub const POLICY_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const V4: &str = r#"
policy:
  id: "p4"
  file: "p4.yml"
  name: "Four"
requirements:
  title: "Linux"
  condition: all
  rules:
    - "f:/etc/os-release"
variables:
  $sshd_file: /etc/ssh/sshd_config
checks:
  - id: 1
    title: "Root login off"
    compliance:
      - cis: ["5.2.8"]
      - pci_dss: [2.2, "8.1"]
    condition: all
    rules:
      - 'f:$sshd_file -> r:^\s*PermitRootLogin\s+no'
"#;

    const V5: &str = r#"
policy: { id: p5, name: Five }
checks:
  - id: 2
    name: "Named check"
    compliance: { cis: ["1.1"], nist_800_53: ["CM-6"] }
    mitre:
      tactic: { id: ["TA0005"], name: ["Stealth"] }
      technique: { id: ["T1036"], name: ["Masquerading"] }
    condition: any
    severity: critical
    rules: ["c:sshd -T -> r:permitrootlogin no"]
"#;

    #[test]
    fn reads_both_dialects() {
        let mut pc = PatternCache::default();
        let p4 = parse_policy(V4, "p4.yml", &mut pc).unwrap();
        assert_eq!(p4.checks[0].title, "Root login off");
        assert_eq!(p4.checks[0].compliance["pci_dss"], ["2.2", "8.1"]);
        assert_eq!(p4.checks[0].rules[0].targets, ["/etc/ssh/sshd_config"]);
        assert_eq!(p4.requirements.as_ref().unwrap().title, "Linux");
        let p5 = parse_policy(V5, "p5.yml", &mut pc).unwrap();
        assert_eq!(p5.checks[0].title, "Named check");
        assert_eq!(p5.checks[0].mitre["technique"], ["T1036"]);
        assert_eq!(p5.checks[0].severity, Severity::Critical);
        assert_eq!(p5.checks[0].condition, Condition::Any);
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let mut pc = PatternCache::default();
        let bad_cond = V5.replace("condition: any", "condition: some");
        let e = parse_policy(&bad_cond, "p5.yml", &mut pc).unwrap_err();
        let PolicyError::Malformed {
            file, line, what, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(file, "p5.yml");
        assert_eq!(*line, 10, "{e}");
        assert!(what.contains("some"), "{e}");

        let bad_rule = V4.replace("'f:$sshd_file", "'q:$sshd_file");
        let e = parse_policy(&bad_rule, "p4.yml", &mut pc).unwrap_err();
        assert!(
            matches!(
                &e,
                PolicyError::Malformed {
                    line: 21,
                    column: 7,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("unknown rule type"), "{e}");

        let e = parse_policy("policy: [", "x.yml", &mut pc).unwrap_err();
        assert!(matches!(e, PolicyError::Malformed { line: 1, .. }), "{e}");
        let e = parse_policy("policy: {id: a}\n", "x.yml", &mut pc).unwrap_err();
        assert!(e.to_string().contains("checks"), "{e}");
        let dup = V5.replace(
            "checks:\n",
            "checks:\n  - {id: 2, title: t, condition: all, rules: ['f:/a']}\n",
        );
        let e = parse_policy(&dup, "d.yml", &mut pc).unwrap_err();
        assert!(e.to_string().contains("duplicate check id 2"), "{e}");
    }
}
