//! The measured-launch event log: what a launcher extended into [`LAUNCH_PCR`], in order.
//!
//! [`LAUNCH_PCR`] cannot be reset after boot, so once a launcher has extended it with the digest of
//! a tampered binary, no sequence of commands brings it back to a value an honest launch gives:
//! the binary can only extend it further. The PCR alone says nothing about how many launches
//! happened, so the launcher also keeps this log (as Linux IMA keeps its measurement list) and the
//! node sends it with every quote. The verifier replays the log from zero; the replay must equal
//! the quoted PCR value (the log may not hide an event), and every event must be a digest the
//! manifest allows for its kind (no event may be a tampered binary).
//!
//! The log itself is not trusted: it is a claim that the signed PCR value checks.

use crate::evidence::AppMeasurements;
use crate::hexbytes::{HexBytes, Sha256Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The PCR a launcher measures the node into.
///
/// PC-client PCRs 0–15 reset only when the platform resets, at any locality; 16 and 23 reset from
/// software's locality 0, and 17–22 from the localities of dynamic launch, so none of those can
/// hold a measurement that a measured binary must not undo. Firmware and the boot loader use 0–9, IMA 10, systemd-stub
/// 11–13 and shim 14; bulwark takes 15 and requires that nothing else on the host extends it
/// (on systemd hosts: no `systemd-pcrmachine` or `systemd-pcrfs` units), since the verifier
/// replays it from zero and refuses any event it does not know.
pub const LAUNCH_PCR: u8 = 15;

/// Most events one log may hold: about 340 launches between platform resets. A launcher refuses
/// to launch beyond it (the host must reboot), so evidence never needs more.
pub const LAUNCH_EVENTS_MAX: usize = 1024;

/// What an event measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The node binary (the first event of every launch).
    Binary,
    /// The node's configuration (its genesis).
    Config,
    /// The policy the node runs (its operator set or manifest).
    Policy,
}

/// One extension of [`LAUNCH_PCR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchEvent {
    /// What was measured.
    pub kind: EventKind,
    /// Its SHA-256, the value extended.
    pub digest: Sha256Digest,
}

/// Why a log is not one an honest launcher writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// More than [`LAUNCH_EVENTS_MAX`] events.
    #[error("the launch log has {count} events, at most {LAUNCH_EVENTS_MAX}")]
    TooLong {
        /// Events found.
        count: usize,
    },
    /// No launch at all.
    #[error("the launch log is empty: nothing was measured")]
    Empty,
    /// A launch that is not binary, config, policy in that order.
    #[error("launch log event {index} is a {found:?}, but a launch measures binary, config and policy in that order")]
    Shape {
        /// Index of the offending event.
        index: usize,
        /// Its kind.
        found: EventKind,
    },
    /// A line of the log file is not an event.
    #[error("launch log line {line} is not an event: {reason}")]
    Line {
        /// One-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// The events a launch of `measured` appends, in order.
pub fn launch_events(measured: &AppMeasurements) -> [LaunchEvent; 3] {
    [
        LaunchEvent {
            kind: EventKind::Binary,
            digest: measured.binary,
        },
        LaunchEvent {
            kind: EventKind::Config,
            digest: measured.config,
        },
        LaunchEvent {
            kind: EventKind::Policy,
            digest: measured.policy,
        },
    ]
}

/// `PCR := SHA-256(PCR ‖ digest)` for each event, from `start`.
pub fn replay_from<'a>(
    start: [u8; 32],
    events: impl IntoIterator<Item = &'a LaunchEvent>,
) -> [u8; 32] {
    events.into_iter().fold(start, |pcr, event| {
        let mut hasher = Sha256::new();
        hasher.update(pcr);
        hasher.update(event.digest.as_bytes());
        hasher.finalize().into()
    })
}

/// The value [`LAUNCH_PCR`] holds after a platform reset and then `events`.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a LaunchEvent>) -> [u8; 32] {
    replay_from([0; 32], events)
}

/// Checks that `events` is one or more launches (binary, config, policy), each possibly followed
/// by measured changes of the configuration or policy, and returns what is measured last: the
/// binary, configuration and policy the node runs now.
pub fn check_shape(events: &[LaunchEvent]) -> Result<AppMeasurements, LogError> {
    if events.len() > LAUNCH_EVENTS_MAX {
        return Err(LogError::TooLong {
            count: events.len(),
        });
    }
    let first = events.first().ok_or(LogError::Empty)?;
    if first.kind != EventKind::Binary {
        return Err(LogError::Shape {
            index: 0,
            found: first.kind,
        });
    }
    let mut current = AppMeasurements {
        binary: first.digest,
        config: HexBytes([0; 32]),
        policy: HexBytes([0; 32]),
    };
    let mut index = 0;
    while index < events.len() {
        let event = events[index];
        match event.kind {
            EventKind::Binary => {
                // A launch: exactly config then policy must follow.
                for (offset, kind) in [(1, EventKind::Config), (2, EventKind::Policy)] {
                    match events.get(index + offset) {
                        Some(next) if next.kind == kind => {}
                        Some(next) => {
                            return Err(LogError::Shape {
                                index: index + offset,
                                found: next.kind,
                            })
                        }
                        None => {
                            return Err(LogError::Shape {
                                index,
                                found: EventKind::Binary,
                            })
                        }
                    }
                }
                current = AppMeasurements {
                    binary: event.digest,
                    config: events[index + 1].digest,
                    policy: events[index + 2].digest,
                };
                index += 3;
            }
            EventKind::Config => {
                current.config = event.digest;
                index += 1;
            }
            EventKind::Policy => {
                current.policy = event.digest;
                index += 1;
            }
        }
    }
    Ok(current)
}

/// The values [`LAUNCH_PCR`] takes after `log` and then 0, 1, … `count - 1` further launches of
/// `measured`: what a secret sealed now may unseal under.
pub fn predicted(log: &[LaunchEvent], measured: &AppMeasurements, count: usize) -> Vec<[u8; 32]> {
    let mut value = replay(log);
    let more = launch_events(measured);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(value);
        value = replay_from(value, &more);
    }
    out
}

/// Parses a log file: one JSON event per line, blank lines ignored. Bounded by
/// [`LAUNCH_EVENTS_MAX`]; the shape is not checked here (see [`check_shape`]).
pub fn parse_log(text: &str) -> Result<Vec<LaunchEvent>, LogError> {
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if events.len() == LAUNCH_EVENTS_MAX {
            return Err(LogError::TooLong {
                count: events.len() + 1,
            });
        }
        let event: LaunchEvent = serde_json::from_str(line).map_err(|e| LogError::Line {
            line: number + 1,
            reason: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// One log-file line for `event`, newline included.
pub fn log_line(event: &LaunchEvent) -> String {
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn measured(tag: u8) -> AppMeasurements {
        AppMeasurements::from_contents(&[tag], b"config", b"policy")
    }

    #[test]
    fn replay_of_one_launch_is_the_application_value() {
        let m = measured(1);
        assert_eq!(replay(&launch_events(&m)), m.app_pcr_value());
    }

    #[test]
    fn shapes_an_honest_launcher_writes_pass_and_others_do_not() {
        let a = launch_events(&measured(1));
        let b = launch_events(&measured(2));
        let two: Vec<_> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(check_shape(&two).unwrap(), measured(2));
        let mut changed = a.to_vec();
        changed.push(LaunchEvent {
            kind: EventKind::Policy,
            digest: HexBytes([9; 32]),
        });
        assert_eq!(check_shape(&changed).unwrap().policy, HexBytes([9; 32]));
        assert_eq!(check_shape(&[]), Err(LogError::Empty));
        assert!(matches!(
            check_shape(&a[1..]),
            Err(LogError::Shape { index: 0, .. })
        ));
        assert!(matches!(
            check_shape(&a[..2]),
            Err(LogError::Shape { index: 0, .. })
        ));
        let swapped = [a[0], a[2], a[1]];
        assert!(matches!(
            check_shape(&swapped),
            Err(LogError::Shape { index: 1, .. })
        ));
        let long = vec![a[0]; LAUNCH_EVENTS_MAX + 1];
        assert!(matches!(check_shape(&long), Err(LogError::TooLong { .. })));
    }

    #[test]
    fn predictions_follow_repeated_launches() {
        let m = measured(1);
        let log = launch_events(&m).to_vec();
        let values = predicted(&log, &m, 3);
        assert_eq!(values[0], replay(&log));
        let twice: Vec<_> = log.iter().chain(log.iter()).copied().collect();
        assert_eq!(values[1], replay(&twice));
        assert_ne!(values[1], values[2]);
    }

    #[test]
    fn log_files_round_trip_and_bad_lines_are_named() {
        let events = launch_events(&measured(3));
        let text: String = events.iter().map(log_line).collect();
        assert_eq!(parse_log(&format!("{text}\n")).unwrap(), events.to_vec());
        let bad = format!("{text}{{\"kind\":\"kernel\",\"digest\":\"00\"}}\n");
        assert!(matches!(
            parse_log(&bad),
            Err(LogError::Line { line: 4, .. })
        ));
        let huge: String =
            std::iter::repeat_n(log_line(&events[0]), LAUNCH_EVENTS_MAX + 1).collect();
        assert!(matches!(parse_log(&huge), Err(LogError::TooLong { .. })));
    }
}
