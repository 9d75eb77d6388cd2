//! The kill switch: a file in the gateway's data directory, `kill-switch`, that the operator
//! writes with `bulwark gateway --config FILE --kill all|ACCOUNT` (and clears with
//! `--release`). The gateway reads it every [`POLL`]. While it names an account (or `all`),
//! that account's sessions get every new order refused at once, their resting orders are
//! cancelled once when the switch engages, and cancels still pass.
//!
//! ```text
//! # bulwark gateway kill switch
//! all
//! account 17
//! ```
//!
//! A file that cannot be read or does not parse engages the switch for everyone: a switch the
//! operator meant to throw must not fail open.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// How often the gateway reads the file.
pub const POLL: Duration = Duration::from_millis(250);
/// The file's name in the data directory.
pub const FILE: &str = "kill-switch";

/// What the switch holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engaged {
    /// Every account.
    pub all: bool,
    /// These accounts.
    pub accounts: BTreeSet<u64>,
}

impl Engaged {
    /// Whether `account` may not place new orders.
    pub fn covers(&self, account: u64) -> bool {
        self.all || self.accounts.contains(&account)
    }

    /// Parses the file's text; the message says which line is wrong.
    pub fn parse(text: &str) -> Result<Engaged, String> {
        let mut engaged = Engaged::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line == "all" {
                engaged.all = true;
                continue;
            }
            let account = line
                .strip_prefix("account ")
                .and_then(|a| a.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "line {}: expected `all` or `account N`, got {line:?}",
                        n + 1
                    )
                })?;
            engaged.accounts.insert(account);
        }
        Ok(engaged)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = String::from("# bulwark gateway kill switch\n");
        if self.all {
            text.push_str("all\n");
        }
        for account in &self.accounts {
            text.push_str(&format!("account {account}\n"));
        }
        text
    }
}

/// The switch as the gateway holds it.
pub struct KillSwitch {
    path: PathBuf,
    state: RwLock<Engaged>,
    /// Bumped on every change, so sessions notice without locking.
    generation: AtomicU64,
}

impl KillSwitch {
    /// The switch whose file is in `data_dir`, read once now.
    pub fn new(data_dir: &Path) -> KillSwitch {
        let switch = KillSwitch {
            path: data_dir.join(FILE),
            state: RwLock::default(),
            generation: AtomicU64::new(0),
        };
        switch.reload();
        switch
    }

    /// Reads the file again.
    pub fn reload(&self) {
        let next = match std::fs::read_to_string(&self.path) {
            Ok(text) => Engaged::parse(&text).unwrap_or_else(|error| {
                tracing::error!(path = %self.path.display(), %error, "kill switch file does not parse: engaged for every account");
                Engaged { all: true, accounts: BTreeSet::new() }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Engaged::default(),
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "kill switch file unreadable: engaged for every account");
                Engaged { all: true, accounts: BTreeSet::new() }
            }
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if *state != next {
            tracing::warn!(all = next.all, accounts = ?next.accounts, "kill switch changed");
            *state = next;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The change counter.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `account` may not place new orders.
    pub fn covers(&self, account: u64) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .covers(account)
    }

    /// A session's view of the switch: when it changed since `seen`, `killed` follows whether
    /// it covers `account` (a session not logged on looks later); true once, when it newly
    /// covers the account, for the session to cancel its orders.
    pub fn newly_engaged(&self, account: Option<u64>, seen: &mut u64, killed: &mut bool) -> bool {
        let generation = self.generation();
        let Some(account) = account.filter(|_| generation != *seen) else {
            return false;
        };
        *seen = generation;
        let covered = self.covers(account);
        let newly = covered && !*killed;
        *killed = covered;
        newly
    }
}

/// Changes the switch in `data_dir` (the operator's command): engages `all` or `accounts`, or
/// with `release` clears them (`all` with `release` clears everything). Written atomically.
pub fn set(data_dir: &Path, all: bool, accounts: &[u64], release: bool) -> Result<Engaged, String> {
    let path = data_dir.join(FILE);
    let mut engaged = match std::fs::read_to_string(&path) {
        Ok(text) => Engaged::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Engaged::default(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if release {
        if all {
            engaged = Engaged::default();
        }
        for account in accounts {
            engaged.accounts.remove(account);
        }
    } else {
        engaged.all |= all;
        engaged.accounts.extend(accounts.iter().copied());
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, engaged.render())
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(engaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_engages_releases_and_fails_closed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let switch = KillSwitch::new(dir.path());
        assert!(!switch.covers(1));
        let g0 = switch.generation();
        set(dir.path(), false, &[1, 2], false).expect("engaged");
        switch.reload();
        assert!(switch.covers(1) && switch.covers(2) && !switch.covers(3));
        assert!(switch.generation() > g0);
        set(dir.path(), false, &[1], true).expect("released");
        switch.reload();
        assert!(!switch.covers(1) && switch.covers(2));
        set(dir.path(), true, &[], false).expect("all");
        switch.reload();
        assert!(switch.covers(99));
        set(dir.path(), true, &[], true).expect("all released");
        switch.reload();
        assert!(!switch.covers(2));
        // A damaged file engages it for everyone.
        std::fs::write(dir.path().join(FILE), "acount 3\n").expect("writes");
        switch.reload();
        assert!(switch.covers(12345));
        let error = set(dir.path(), false, &[4], false).expect_err("refused");
        assert!(error.contains("line 1"), "{error}");
    }
}
