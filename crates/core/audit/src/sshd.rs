//! Effective `sshd_config`: the global settings sshd would apply, read through a [`Host`].
//!
//! Semantics follow sshd(8): keywords are case-insensitive; for most keywords the *first* value
//! obtained wins; `Include` is expanded in place (globs sorted, relative paths under `/etc/ssh`);
//! lines after the first `Match` belong to conditional blocks and do not change the global settings.
//! Keywords not set take the OpenSSH default from a small built-in table.

use std::collections::BTreeMap;

use crate::host::{FileKind, Host, HostError};

/// Default path of the server configuration.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// Include nesting limit (sshd uses 16).
const INCLUDE_DEPTH_MAX: usize = 16;

/// Errors reading the sshd configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshdError {
    /// The main file or an included file could not be read.
    #[error("sshd config: {0}")]
    Host(#[from] HostError),
    /// Includes nest deeper than sshd allows (probably a loop).
    #[error("sshd config: Include nested deeper than {INCLUDE_DEPTH_MAX} at {0}")]
    IncludeDepth(String),
}

/// OpenSSH (9.x) defaults for the keywords audits usually ask about.
const DEFAULTS: &[(&str, &str)] = &[
    ("permitrootlogin", "prohibit-password"),
    ("passwordauthentication", "yes"),
    ("permitemptypasswords", "no"),
    ("pubkeyauthentication", "yes"),
    ("kbdinteractiveauthentication", "yes"),
    ("hostbasedauthentication", "no"),
    ("ignorerhosts", "yes"),
    ("x11forwarding", "no"),
    ("allowtcpforwarding", "yes"),
    ("allowagentforwarding", "yes"),
    ("permituserenvironment", "no"),
    ("permittunnel", "no"),
    ("gatewayports", "no"),
    ("maxauthtries", "6"),
    ("maxsessions", "10"),
    ("maxstartups", "10:30:100"),
    ("logingracetime", "120"),
    ("clientaliveinterval", "0"),
    ("clientalivecountmax", "3"),
    ("loglevel", "INFO"),
    ("usepam", "no"),
    ("usedns", "no"),
    ("strictmodes", "yes"),
    ("port", "22"),
];

/// Keywords where every occurrence adds a value instead of the first one winning.
const MULTI: &[&str] = &[
    "port",
    "listenaddress",
    "hostkey",
    "acceptenv",
    "allowusers",
    "denyusers",
    "allowgroups",
    "denygroups",
    "subsystem",
];

/// The effective global configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshdConfig {
    explicit: BTreeMap<String, Vec<String>>,
}

impl SshdConfig {
    /// Reads `/etc/ssh/sshd_config` (and its includes) from the host.
    pub fn read(host: &dyn Host) -> Result<Self, SshdError> {
        let mut cfg = Self::default();
        let mut in_match = false;
        cfg.read_file(host, SSHD_CONFIG, 0, &mut in_match)?;
        Ok(cfg)
    }

    /// Parses one configuration text with no includes (for tests and single-file use).
    pub fn parse(text: &str) -> Self {
        let mut cfg = Self::default();
        let mut in_match = false;
        for line in text.lines() {
            if let Some((key, value)) = split_line(line) {
                if key == "match" {
                    in_match = true;
                } else if !in_match && key != "include" {
                    cfg.set(key, value);
                }
            }
        }
        cfg
    }

    fn read_file(
        &mut self,
        host: &dyn Host,
        path: &str,
        depth: usize,
        in_match: &mut bool,
    ) -> Result<(), SshdError> {
        if depth > INCLUDE_DEPTH_MAX {
            return Err(SshdError::IncludeDepth(path.to_owned()));
        }
        let bytes = host.read_file(path)?;
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let Some((key, value)) = split_line(line) else {
                continue;
            };
            match key.as_str() {
                "match" => *in_match = true,
                // Includes inside a Match block are conditional too; skip them like other Match lines.
                "include" if !*in_match => {
                    for pattern in value.split_whitespace() {
                        let pattern = if pattern.starts_with('/') {
                            pattern.to_owned()
                        } else {
                            format!("/etc/ssh/{pattern}")
                        };
                        for file in glob(host, &pattern)? {
                            self.read_file(host, &file, depth + 1, in_match)?;
                        }
                    }
                }
                _ if *in_match => {}
                _ => self.set(key, value),
            }
        }
        Ok(())
    }

    fn set(&mut self, key: String, value: String) {
        let multi = MULTI.contains(&key.as_str());
        let slot = self.explicit.entry(key).or_default();
        if multi || slot.is_empty() {
            slot.push(value);
        }
    }

    /// Effective value(s) of `keyword` (case-insensitive): explicit values, else the default.
    pub fn values(&self, keyword: &str) -> Vec<String> {
        let key = keyword.to_ascii_lowercase();
        if let Some(v) = self.explicit.get(&key) {
            return v.clone();
        }
        DEFAULTS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| vec![(*v).to_owned()])
            .unwrap_or_default()
    }

    /// First effective value of `keyword`, lowercased for yes/no style comparisons.
    pub fn value(&self, keyword: &str) -> Option<String> {
        self.values(keyword).into_iter().next()
    }
}

/// `Keyword value...` or `Keyword=value`; comments and blank lines give `None`.
fn split_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let value = rest.trim_matches('"').to_owned();
    Some((key, value))
}

/// Expands `*` and `?` in the final path component, sorted; a plain path is returned if it exists.
fn glob(host: &dyn Host, pattern: &str) -> Result<Vec<String>, SshdError> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let dir = if dir.is_empty() { "/" } else { dir };
    if !name.contains(['*', '?']) {
        return Ok(match host.metadata(pattern, true) {
            Ok(_) => vec![pattern.to_owned()],
            Err(HostError::NotFound(_)) => vec![],
            Err(e) => return Err(e.into()),
        });
    }
    let entries = match host.read_dir(dir) {
        Ok(e) => e,
        Err(HostError::NotFound(_)) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    Ok(entries
        .into_iter()
        .filter(|e| e.kind != FileKind::Dir && wildcard(name.as_bytes(), e.name.as_bytes()))
        .map(|e| format!("{}/{}", dir.trim_end_matches('/'), e.name))
        .collect())
}

/// Shell-style `*`/`?` match.
pub(crate) fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_value_wins_and_match_blocks_are_conditional() {
        let c = SshdConfig::parse(
            "# c\nPermitRootLogin no\npermitrootlogin yes\nPort 22\nPort=2222\n\
             Match User bob\n  PasswordAuthentication no\n",
        );
        assert_eq!(c.value("PermitRootLogin").unwrap(), "no");
        assert_eq!(c.values("port"), ["22", "2222"]);
        assert_eq!(
            c.value("passwordauthentication").unwrap(),
            "yes",
            "default, Match ignored"
        );
        assert_eq!(c.value("maxauthtries").unwrap(), "6");
        assert_eq!(c.value("nosuchkeyword"), None);
    }

    #[test]
    fn wildcard_matches_like_a_shell() {
        assert!(wildcard(b"*.conf", b"50-cloud.conf"));
        assert!(!wildcard(b"*.conf", b"x.conf.bak"));
        assert!(wildcard(b"a?c", b"abc"));
    }
}
