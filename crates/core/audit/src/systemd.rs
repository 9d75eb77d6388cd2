//! systemd unit state read from unit files and symlinks under the audited root, the way
//! `systemctl is-enabled` reports it without a running systemd.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::host::{FileKind, Host, HostError};
use crate::native::NativeError;

/// State of a unit, named as `systemctl is-enabled` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Linked from a `*.wants`, `*.requires` or `*.upholds` directory under `/etc/systemd/system`
    /// (for a template, any instance is linked).
    Enabled,
    /// Has `WantedBy=`/`RequiredBy=`/`UpheldBy=`/`Alias=` in `[Install]` but is not linked.
    Disabled,
    /// No `[Install]` directives: started only as a dependency.
    Static,
    /// Only `Also=` in `[Install]`.
    Indirect,
    /// The unit file is a symlink to `/dev/null`.
    Masked,
    /// The name is a symlink to a unit file of another name.
    Alias,
    /// The name is a symlink to a unit file of the same name elsewhere.
    Linked,
    /// Produced by a generator (found under `/run/systemd/generator*`).
    Generated,
}

impl UnitState {
    /// The word `systemctl is-enabled` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Static => "static",
            Self::Indirect => "indirect",
            Self::Masked => "masked",
            Self::Alias => "alias",
            Self::Linked => "linked",
            Self::Generated => "generated",
        }
    }
}

/// Unit search path in systemd's order of precedence.
const UNIT_PATH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
];
const ETC_UNITS: &str = "/etc/systemd/system";

/// Names linked from `*.wants`/`*.requires`/`*.upholds` directories under `/etc/systemd/system`.
pub fn enabled_units(host: &dyn Host) -> Result<BTreeSet<String>, NativeError> {
    let mut out = BTreeSet::new();
    let entries = match host.read_dir(ETC_UNITS) {
        Ok(e) => e,
        Err(HostError::NotFound(_)) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for d in entries.iter().filter(|e| {
        e.kind == FileKind::Dir
            && (e.name.ends_with(".wants")
                || e.name.ends_with(".requires")
                || e.name.ends_with(".upholds"))
    }) {
        for link in host.read_dir(&format!("{ETC_UNITS}/{}", d.name))? {
            out.insert(link.name);
        }
    }
    Ok(out)
}

/// Directive names present in the `[Install]` section.
fn install_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_install = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if in_install && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((k, v)) = line.split_once('=') {
                if !v.trim().is_empty() {
                    keys.insert(k.trim().to_owned());
                }
            }
        }
    }
    keys
}

/// State of one unit; `None` when no unit file of that name exists.
pub fn unit_state(host: &dyn Host, name: &str) -> Result<Option<UnitState>, NativeError> {
    if name.is_empty() || name.contains('/') {
        return Ok(None);
    }
    // An instance (`getty@tty1.service`) without a file of its own uses its template's file.
    let template = name.split_once('@').and_then(|(pre, post)| {
        post.rsplit_once('.')
            .map(|(_, ext)| format!("{pre}@.{ext}"))
    });
    let mut found = None;
    'search: for candidate in std::iter::once(name.to_owned()).chain(template.clone()) {
        for dir in UNIT_PATH {
            let path = format!("{dir}/{candidate}");
            match host.metadata(&path, false) {
                Ok(m) => {
                    found = Some((*dir, path, m, candidate));
                    break 'search;
                }
                Err(HostError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let Some((dir, path, meta, file_name)) = found else {
        return Ok(None);
    };
    if meta.kind == FileKind::Symlink {
        let target = host.read_link(&path)?;
        if target == "/dev/null" {
            return Ok(Some(UnitState::Masked));
        }
        if target.rsplit('/').next() != Some(file_name.as_str()) {
            return Ok(Some(UnitState::Alias));
        }
        if dir == ETC_UNITS {
            return Ok(Some(UnitState::Linked));
        }
    }
    if dir.starts_with("/run/systemd/generator") {
        return Ok(Some(UnitState::Generated));
    }
    let enabled = enabled_units(host)?;
    let is_template = name.contains("@.");
    let linked = enabled.contains(name)
        || (is_template
            && name.split_once("@.").is_some_and(|(pre, ext)| {
                enabled
                    .iter()
                    .any(|e| e.starts_with(&format!("{pre}@")) && e.ends_with(&format!(".{ext}")))
            }));
    if linked {
        return Ok(Some(UnitState::Enabled));
    }
    let text = String::from_utf8_lossy(&host.read_file(&path)?).into_owned();
    let keys = install_keys(&text);
    let installs = ["WantedBy", "RequiredBy", "UpheldBy", "Alias"]
        .iter()
        .any(|k| keys.contains(*k));
    Ok(Some(if installs {
        UnitState::Disabled
    } else if keys.contains("Also") {
        UnitState::Indirect
    } else {
        UnitState::Static
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section_keys() {
        let k =
            install_keys("[Unit]\nWantedBy=x\n[Install]\n# c\nWantedBy=multi-user.target\nAlso=\n");
        assert_eq!(k, ["WantedBy".to_owned()].into());
    }
}
