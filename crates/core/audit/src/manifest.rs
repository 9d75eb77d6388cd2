//! Role manifests: what a host of a given role may run. Anything outside the manifest fails.
//!
//! A manifest is a YAML document; every section is optional and an absent section is not checked:
//!
//! ```yaml
//! role: committee-node
//! listen:                    # PROTO/PORT or PROTO/FIRST-LAST; PROTO is tcp or udp
//!   - tcp/22
//!   - tcp/7100-7103
//! allow_loopback_listeners: true   # default true: sockets bound to 127.0.0.0/8 or ::1 are not judged
//! services:                  # enabled systemd units; `*` and `?` wildcards
//!   - ssh.service
//!   - "getty@*.service"
//! packages: ["*"]            # installed dpkg packages; wildcards
//! modules: [ext4, "nf_*"]    # loaded kernel modules (`-` and `_` are the same)
//! setuid:                    # files with setuid/setgid bits allowed under setuid_scan
//!   - /usr/bin/passwd
//! setuid_scan: [/usr/bin, /usr/sbin, /usr/lib, /bin, /sbin, /opt]
//! setuid_entries_max: 200000 # entry bound; exceeding it makes the check not applicable
//! ```
//!
//! Each section becomes one check of a pseudo-policy `manifest:<role>` with fixed ids and severities:
//! 1 listeners (critical), 2 services (high), 3 packages (high), 4 kernel modules (high),
//! 5 setuid binaries (critical).

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::budget::Governor;
use crate::host::Host;
use crate::native::{self, Proto};
use crate::policy::Severity;
use crate::report::{CheckResult, Outcome, PolicyResult, RuleOutcome, RuleResult};
use crate::sshd::wildcard;

/// Largest manifest file accepted (the shipped committee-node manifest is about 2 KiB).
pub const MANIFEST_BYTES_MAX: u64 = 1024 * 1024;

/// Errors loading a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{file}: cannot read the manifest: {reason}")]
    Read {
        /// Manifest file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The document is not a valid manifest.
    #[error("{file}:{line}:{column}: {what}")]
    Malformed {
        /// Manifest file.
        file: String,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// What is wrong.
        what: String,
    },
}

/// An allowed port range for one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    /// Protocol.
    pub proto: Proto,
    /// First allowed port.
    pub first: u16,
    /// Last allowed port (inclusive).
    pub last: u16,
}

/// Why a `listen` entry is not `PROTO/PORT` or `PROTO/FIRST-LAST`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortRuleError {
    /// No `/` between protocol and ports.
    #[error("`{0}`: expected PROTO/PORT")]
    Shape(String),
    /// The protocol is neither `tcp` nor `udp`.
    #[error("`{0}`: protocol must be tcp or udp")]
    Protocol(String),
    /// A port is not a number from 0 to 65535.
    #[error("`{entry}`: bad port `{port}`")]
    Port {
        /// The entry.
        entry: String,
        /// The part that is not a port.
        port: String,
    },
    /// The range's first port is above its last.
    #[error("`{0}`: empty range")]
    EmptyRange(String),
}

impl std::str::FromStr for PortRule {
    type Err = PortRuleError;
    fn from_str(s: &str) -> Result<Self, PortRuleError> {
        let (proto, ports) = s
            .split_once('/')
            .ok_or_else(|| PortRuleError::Shape(s.to_owned()))?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(PortRuleError::Protocol(s.to_owned())),
        };
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        let port = |p: &str| {
            p.parse::<u16>().map_err(|_| PortRuleError::Port {
                entry: s.to_owned(),
                port: p.to_owned(),
            })
        };
        let (first, last) = (port(a)?, port(b)?);
        if first > last {
            return Err(PortRuleError::EmptyRange(s.to_owned()));
        }
        Ok(Self { proto, first, last })
    }
}

impl<'de> Deserialize<'de> for PortRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn default_true() -> bool {
    true
}

fn default_entries_max() -> usize {
    200_000
}

/// A parsed role manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Role name.
    pub role: String,
    /// Allowed listeners.
    #[serde(default)]
    pub listen: Option<Vec<PortRule>>,
    /// Whether loopback listeners are exempt.
    #[serde(default = "default_true")]
    pub allow_loopback_listeners: bool,
    /// Allowed enabled units (wildcards).
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Allowed installed packages (wildcards).
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// Allowed loaded kernel modules (wildcards).
    #[serde(default)]
    pub modules: Option<Vec<String>>,
    /// Allowed setuid/setgid files (exact paths).
    #[serde(default)]
    pub setuid: Option<Vec<String>>,
    /// Directories walked for setuid files.
    #[serde(default)]
    pub setuid_scan: Vec<String>,
    /// Entry bound for the setuid scan (its pace is the scan's [`crate::budget::Budget`]).
    #[serde(default = "default_entries_max")]
    pub setuid_entries_max: usize,
}

impl Manifest {
    /// Parses a manifest document; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ManifestError> {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column, what) = crate::policy::yaml_error_parts(&e);
            ManifestError::Malformed {
                file: file.to_owned(),
                line,
                column,
                what,
            }
        })
    }

    /// Evaluates the manifest against a host as a pseudo-policy `manifest:<role>`, walking at full
    /// speed.
    pub fn evaluate(&self, host: &dyn Host) -> PolicyResult {
        self.evaluate_paced(host, &mut Governor::unlimited())
    }

    /// [`Manifest::evaluate`] with the setuid walk paced by `governor` (a scan's, so the walk shares
    /// that scan's budget).
    pub fn evaluate_paced(&self, host: &dyn Host, governor: &mut Governor<'_>) -> PolicyResult {
        let mut checks = Vec::new();
        if let Some(allowed) = &self.listen {
            let found = native::listeners(host).map(|ls| {
                ls.into_iter()
                    .filter(|l| !(self.allow_loopback_listeners && l.is_loopback()))
                    .filter(|l| {
                        !allowed
                            .iter()
                            .any(|r| r.proto == l.proto && (r.first..=r.last).contains(&l.port))
                    })
                    .map(|l| l.line())
                    .collect()
            });
            checks.push(section(
                1,
                "Only allowed ports listen",
                Severity::Critical,
                "listener",
                found,
            ));
        }
        if let Some(allowed) = &self.services {
            let found =
                crate::systemd::enabled_units(host).map(|u| outside(u, allowed, |s| s.to_owned()));
            checks.push(section(
                2,
                "Only allowed services are enabled",
                Severity::High,
                "service",
                found,
            ));
        }
        if let Some(allowed) = &self.packages {
            let found = native::installed_packages(host)
                .map(|p| outside(p.into_keys().collect(), allowed, |s| s.to_owned()));
            checks.push(section(
                3,
                "Only allowed packages are installed",
                Severity::High,
                "package",
                found,
            ));
        }
        if let Some(allowed) = &self.modules {
            let found =
                native::loaded_modules(host).map(|m| outside(m, allowed, native::module_key));
            checks.push(section(
                4,
                "Only allowed kernel modules are loaded",
                Severity::High,
                "module",
                found,
            ));
        }
        if let Some(allowed) = &self.setuid {
            let found =
                native::setuid_files(host, &self.setuid_scan, self.setuid_entries_max, governor)
                    .map(|files| files.into_iter().filter(|f| !allowed.contains(f)).collect());
            checks.push(section(
                5,
                "Only allowed setuid/setgid binaries",
                Severity::Critical,
                "setuid",
                found,
            ));
        }
        PolicyResult::from_checks(
            format!("manifest:{}", self.role),
            format!("Role manifest for {}", self.role),
            String::new(),
            checks,
        )
    }
}

/// Items not matched by any allow pattern (patterns normalized with `norm`).
fn outside(
    items: BTreeSet<String>,
    allowed: &[String],
    norm: impl Fn(&str) -> String,
) -> Vec<String> {
    let pats: Vec<String> = allowed.iter().map(|p| norm(p)).collect();
    items
        .into_iter()
        .filter(|i| {
            !pats
                .iter()
                .any(|p| wildcard(p.as_bytes(), norm(i).as_bytes()))
        })
        .collect()
}

fn section(
    id: u64,
    title: &str,
    severity: Severity,
    what: &str,
    found: Result<Vec<String>, native::NativeError>,
) -> CheckResult {
    let (outcome, reason, rules) = match found {
        Err(e) => (
            Outcome::NotApplicable,
            Some(e.to_string()),
            vec![RuleResult {
                rule: format!("manifest:{what}"),
                outcome: RuleOutcome::Invalid,
                reason: Some(e.to_string()),
            }],
        ),
        Ok(extra) if extra.is_empty() => (Outcome::Passed, None, Vec::new()),
        Ok(extra) => (
            Outcome::Failed,
            Some(format!("unexpected {what}: {}", extra.join(", "))),
            extra
                .into_iter()
                .map(|e| RuleResult {
                    rule: format!("manifest:{what} {e}"),
                    outcome: RuleOutcome::Found,
                    reason: None,
                })
                .collect(),
        ),
    };
    CheckResult {
        id,
        title: title.to_owned(),
        severity,
        outcome,
        reason,
        rules,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn port_rules_parse() {
        let r: PortRule = "tcp/7100-7103".parse().unwrap();
        assert_eq!((r.proto, r.first, r.last), (Proto::Tcp, 7100, 7103));
        assert_eq!(
            "sctp/1".parse::<PortRule>(),
            Err(PortRuleError::Protocol("sctp/1".into()))
        );
        assert_eq!(
            "tcp/9-1".parse::<PortRule>(),
            Err(PortRuleError::EmptyRange("tcp/9-1".into()))
        );
        assert!(matches!(
            "tcp/x".parse::<PortRule>(),
            Err(PortRuleError::Port { .. })
        ));
        assert_eq!(
            "7100".parse::<PortRule>(),
            Err(PortRuleError::Shape("7100".into()))
        );
        let e = Manifest::parse("role: x\nlisten: [tcp/abc]\n", "m.yml").unwrap_err();
        assert!(matches!(e, ManifestError::Malformed { line: 2, .. }), "{e}");
        assert!(
            Manifest::parse("role: x\nlistne: []\n", "m.yml").is_err(),
            "typos are errors"
        );
    }

    #[test]
    fn wildcards_and_module_names() {
        let items: BTreeSet<String> = ["nf_tables", "ext4", "usb_storage"]
            .map(String::from)
            .into();
        let out = outside(items, &["nf-*".into(), "ext4".into()], native::module_key);
        assert_eq!(out, ["usb_storage"]);
    }
}
