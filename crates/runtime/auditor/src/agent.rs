//! The audit agent's loop: a scan at start and on schedule, re-checks of the rules whose files
//! changed, and a signed snapshot every few scans. [`run_loop`] blocks; a node runs it on a thread.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bulwark_audit::agent::{Auditor, Change, Schedule};
use bulwark_audit::budget::{Budget, Clock};
use bulwark_audit::host::Host;
use bulwark_audit::sign::{sign_report, SignedReport};
use ed25519_dalek::SigningKey;

use crate::watch::FileWatch;

/// What the agent loop hands to the node.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// Checks whose outcome changed (from a scan or a re-check), with the time they were seen.
    Changes {
        /// Milliseconds since the epoch.
        at_ms: u64,
        /// The changes.
        changes: Vec<Change>,
    },
    /// A periodic full report, signed with the node key.
    Snapshot(SignedReport),
}

/// Agent loop settings.
#[derive(Clone)]
pub struct AgentConfig {
    /// Scan schedule.
    pub schedule: Schedule,
    /// Emit a signed full snapshot every this many scans (1 = every scan).
    pub snapshot_every_scans: u32,
    /// How long to collect further file events after the first before re-checking.
    pub debounce: Duration,
    /// Pace of whole-tree walks in scans and re-checks; [`Budget::agent_default`] (20 % of one
    /// core, 20 000 entries/s, 16 MiB/s) unless the node's configuration says otherwise.
    pub budget: Budget,
    /// The clock the budget is timed with: [`crate::clock::SystemClock`] in production, a fake in
    /// tests.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("schedule", &self.schedule)
            .field("snapshot_every_scans", &self.snapshot_every_scans)
            .field("debounce", &self.debounce)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Runs the agent until `sink` returns `Break`: a scan at start and on schedule, re-checks on file
/// events, signed snapshots every `snapshot_every_scans` scans. `now_ms` is the injected clock.
pub fn run_loop(
    auditor: &mut Auditor,
    host: &dyn Host,
    mut config: AgentConfig,
    watch: Option<&FileWatch>,
    key: &SigningKey,
    now_ms: &dyn Fn() -> u64,
    sink: &mut dyn FnMut(AgentEvent) -> ControlFlow<()>,
) {
    auditor.set_pace(config.budget, Arc::clone(&config.clock));
    let mut scans: u32 = 0;
    loop {
        let at = now_ms();
        let (mut report, diff) = auditor.scan(host, at);
        if send_changes(sink, at, diff).is_break() {
            return;
        }
        if scans.is_multiple_of(config.snapshot_every_scans.max(1)) {
            let signed = sign_report(&mut report, key);
            if sink(AgentEvent::Snapshot(signed)).is_break() {
                return;
            }
        }
        scans = scans.wrapping_add(1);
        let due = at.saturating_add(config.schedule.next_delay_ms());
        loop {
            let now = now_ms();
            if now >= due {
                break;
            }
            let wait = Duration::from_millis(due - now);
            let changed = match watch {
                Some(w) => w.wait(wait, config.debounce),
                None => {
                    std::thread::sleep(wait);
                    Vec::new()
                }
            };
            if changed.is_empty() {
                continue;
            }
            let at = now_ms();
            let diff = auditor.recheck(host, &changed, at);
            if send_changes(sink, at, diff).is_break() {
                return;
            }
        }
    }
}

/// Passes a non-empty diff to `sink` as [`AgentEvent::Changes`]; an empty one is not sent.
fn send_changes(
    sink: &mut dyn FnMut(AgentEvent) -> ControlFlow<()>,
    at_ms: u64,
    changes: Vec<Change>,
) -> ControlFlow<()> {
    if changes.is_empty() {
        return ControlFlow::Continue(());
    }
    sink(AgentEvent::Changes { at_ms, changes })
}
