//! What the console page shows: one [`View`] of the committee as a part sees it, sampled every
//! second, and the [`Timeline`] of security events drawn from consecutive views.
//!
//! The view is built from the same snapshot as the status answer and the metrics; the page
//! only draws it. Text in a view that a peer could have chosen (appraisal reasons, evidence
//! details) is bounded here and escaped by the page (it sets `textContent`, never HTML).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Longest text of one reason or evidence detail kept in a view, bytes.
pub const TEXT_MAX: usize = 240;
/// Security events the timeline keeps (oldest dropped first).
pub const EVENTS_KEPT: usize = 200;
/// Activity entries (liquidations, withdrawals) it keeps.
pub const ACTIVITY_KEPT: usize = 50;
/// Evidence records a view carries (the newest).
pub const EVIDENCE_SHOWN: usize = 20;

/// The committee as one part sees it now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// What serves it, e.g. `node node-0 (dc-0)` or `bulwark up`.
    pub title: String,
    /// Whose evidence log numbers [`View::evidence`] (a node and when it started): numbers from
    /// two sources are not compared.
    #[serde(default)]
    pub source: String,
    /// When it was taken, Unix ms.
    pub time_ms: u64,
    /// Newest finalized height (the highest among the nodes, for `up`).
    pub height: u64,
    /// Committee epoch.
    pub epoch: u64,
    /// Client transactions finalized since the serving part started (a counter: the page
    /// draws its rate).
    pub orders_finalized: u64,
    /// Submit-to-finalized p50 and p99, ms, of the recent window.
    pub latency_p50_ms: Option<u32>,
    /// p99.
    pub latency_p99_ms: Option<u32>,
    /// Every member and former member, with its trust.
    pub members: Vec<MemberView>,
    /// The certified index per underlying.
    pub index: Vec<IndexView>,
    /// Liquidation steps finalized since start.
    pub liquidation_steps: u64,
    /// Withdrawals the committed state recorded.
    pub withdrawals_requested: u64,
    /// Of those, signed by the vault (as this part knows).
    pub withdrawals_signed: u64,
    /// Chain deposits credited.
    pub deposits_credited: u64,
    /// The newest fault evidence records, newest last.
    pub evidence: Vec<EvidenceView>,
    /// Security events (trust changes, cut-offs, epoch changes, evidence), oldest first
    /// (filled by the [`Timeline`]).
    pub events: Vec<Event>,
    /// Liquidations and withdrawals as they happen, oldest first (filled by the [`Timeline`]).
    #[serde(default)]
    pub activity: Vec<Event>,
}

/// One member's trust, as the serving part sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its key, hex (the first 16 digits name it in the status).
    pub key: String,
    /// Its data center.
    pub data_center: String,
    /// The sentinel's decision: `admitted`, `suspected`, `quarantined`, `removed`, `joining`,
    /// or `candidate` (listed, never seated).
    pub sentinel: String,
    /// The newest evidence record against it, as the reason behind a decision: its kind and
    /// number.
    #[serde(default)]
    pub sentinel_reason: Option<(String, u64)>,
    /// The last appraisal of its attestation (`affirming`, `warning`, `contraindicated`), if
    /// any; `self` for the serving node.
    pub appraisal: Option<String>,
    /// The reasons behind that appraisal.
    pub reasons: Vec<String>,
    /// Whether it is cut off (a contraindicated appraisal).
    pub cut_off: bool,
    /// Its audit as last read: `clean` or what failed, if known.
    pub audit: Option<String>,
    /// Fault evidence recorded against it since start.
    pub evidence: u64,
    /// Its own finalized height, when the serving part knows it (`up` asks every node).
    pub height: Option<u64>,
    /// Whether it answered the serving part just now (`up` only).
    pub reachable: Option<bool>,
}

/// One underlying's certified index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexView {
    /// Its name, e.g. `BTC`.
    pub underlying: String,
    /// The index in quote units (absent before the first certified round).
    pub price: Option<f64>,
    /// The last certified round.
    pub round: Option<u64>,
    /// Guards open on it (`stale`, `clamp`, `jump`, `sources`, `confidence`).
    pub guards: Vec<String>,
    /// The venues behind it as the serving node observes them (null with the synthetic feed).
    pub venues: serde_json::Value,
}

/// One fault evidence record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceView {
    /// Its number since the serving node started: `/evidence/<id>` serves the whole record.
    pub id: u64,
    /// Its kind, e.g. `refused_proposal`.
    pub kind: String,
    /// Against whom (key, hex).
    pub peer: String,
    /// The consensus view or height it concerns.
    pub view: u64,
    /// What the node saw (bounded to [`TEXT_MAX`]).
    pub detail: String,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When the serving part saw it, Unix ms.
    pub at_ms: u64,
    /// `quarantined`, `removed`, `suspected`, `admitted`, `joining`, `cut_off`, `readmitted`,
    /// `epoch`, `evidence`, `liquidation`, `withdrawal`, `signed`.
    pub kind: String,
    /// The member it concerns (key prefix), if any.
    pub member: Option<String>,
    /// What happened, in words.
    pub text: String,
    /// The evidence record it rests on (`/evidence/<id>`), if any.
    pub evidence: Option<u64>,
}

/// `text` cut to at most [`TEXT_MAX`] bytes on a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= TEXT_MAX {
        return text.to_string();
    }
    let mut end = TEXT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The events drawn from consecutive views: member state changes, cut-offs and readmissions,
/// epoch changes and new evidence (bounded to [`EVENTS_KEPT`]); liquidations and withdrawals
/// apart, as activity (bounded to [`ACTIVITY_KEPT`]).
#[derive(Debug, Default)]
pub struct Timeline {
    last: Option<View>,
    events: VecDeque<Event>,
    activity: VecDeque<Event>,
}

impl Timeline {
    /// Compares `view` with the previous one, records what changed, and fills `view.events`.
    pub fn observe(&mut self, view: &mut View) {
        let now = view.time_ms;
        if let Some(last) = self.last.take() {
            let before: BTreeMap<&str, &MemberView> =
                last.members.iter().map(|m| (m.key.as_str(), m)).collect();
            for member in &view.members {
                let short = member.key.chars().take(16).collect::<String>();
                let name = format!("{} {}", member.data_center, short);
                let old = before.get(member.key.as_str());
                let (old_state, old_cut) =
                    old.map_or(("", false), |m| (m.sentinel.as_str(), m.cut_off));
                // `unknown`: the serving part could not tell (no node answered `up`).
                let known = |state: &str| !state.is_empty() && state != "unknown";
                if known(old_state) && known(&member.sentinel) && old_state != member.sentinel {
                    let evidence = view
                        .evidence
                        .iter()
                        .rev()
                        .find(|e| e.peer.starts_with(&short))
                        .map(|e| e.id);
                    // A member is removed only after its quarantine; when both fell between
                    // two samples, the quarantine is told first.
                    if member.sentinel == "removed" && old_state != "quarantined" {
                        self.push(Event {
                            at_ms: now,
                            kind: "quarantined".into(),
                            member: Some(short.clone()),
                            text: format!("{name}: quarantined by the committee"),
                            evidence,
                        });
                    }
                    self.push(Event {
                        at_ms: now,
                        kind: member.sentinel.clone(),
                        member: Some(short.clone()),
                        text: format!("{name}: {old_state} → {}", member.sentinel),
                        evidence,
                    });
                }
                if member.cut_off != old_cut && old.is_some() {
                    let (kind, text) = if member.cut_off {
                        (
                            "cut_off",
                            format!("{name} cut off: {}", member.reasons.join(", ")),
                        )
                    } else {
                        (
                            "readmitted",
                            format!("{name} admitted again (affirming appraisal)"),
                        )
                    };
                    self.push(Event {
                        at_ms: now,
                        kind: kind.into(),
                        member: Some(short.clone()),
                        text: bounded(&text),
                        evidence: None,
                    });
                }
            }
            if view.epoch != last.epoch {
                self.push(Event {
                    at_ms: now,
                    kind: "epoch".into(),
                    member: None,
                    text: format!("epoch {} → {}", last.epoch, view.epoch),
                    evidence: None,
                });
            }
            // Evidence numbers and activity counts are compared only within one source (a
            // node's evidence log and its counters since start).
            let same_source = view.source == last.source;
            let seen = last.evidence.last().map_or(0, |e| e.id);
            let mut fresh: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
            for record in view.evidence.iter().filter(|e| same_source && e.id > seen) {
                let short: String = record.peer.chars().take(16).collect();
                let entry = fresh.entry((short, record.kind.clone())).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(record.id);
            }
            // One event per peer and kind a sample: a peer that floods evidence cannot push the
            // trust changes off the timeline.
            for ((short, kind), (count, newest)) in fresh {
                let times = if count > 1 {
                    format!("{count} × ")
                } else {
                    String::new()
                };
                self.push(Event {
                    at_ms: now,
                    kind: "evidence".into(),
                    member: Some(short.clone()),
                    text: format!("{times}{kind} against {short}"),
                    evidence: Some(newest),
                });
            }
            let counts = [
                (
                    "liquidation",
                    last.liquidation_steps,
                    view.liquidation_steps,
                    "liquidation steps finalized",
                ),
                (
                    "withdrawal",
                    last.withdrawals_requested,
                    view.withdrawals_requested,
                    "withdrawals recorded",
                ),
                (
                    "signed",
                    last.withdrawals_signed,
                    view.withdrawals_signed,
                    "withdrawals signed by the vault",
                ),
            ];
            for (kind, before, after, what) in counts {
                if same_source && after > before {
                    self.push_activity(Event {
                        at_ms: now,
                        kind: kind.into(),
                        member: None,
                        text: format!("{} {what} (total {after})", after - before),
                        evidence: None,
                    });
                }
            }
        }
        view.events = self.events.iter().cloned().collect();
        view.activity = self.activity.iter().cloned().collect();
        let mut kept = view.clone();
        kept.events.clear();
        kept.activity.clear();
        self.last = Some(kept);
    }

    fn push(&mut self, event: Event) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn push_activity(&mut self, event: Event) {
        if self.activity.len() == ACTIVITY_KEPT {
            self.activity.pop_front();
        }
        self.activity.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: &str, sentinel: &str) -> MemberView {
        MemberView {
            key: key.into(),
            data_center: "dc-3".into(),
            sentinel: sentinel.into(),
            ..MemberView::default()
        }
    }

    #[test]
    fn a_quarantine_and_an_epoch_change_reach_the_timeline_with_their_evidence() {
        let mut timeline = Timeline::default();
        let key = "ab".repeat(32);
        let mut first = View {
            time_ms: 1,
            members: vec![member(&key, "admitted")],
            ..View::default()
        };
        timeline.observe(&mut first);
        assert!(first.events.is_empty(), "nothing happened yet");
        let mut second = View {
            time_ms: 2,
            epoch: 1,
            members: vec![member(&key, "quarantined")],
            evidence: vec![EvidenceView {
                id: 7,
                kind: "refused_proposal".into(),
                peer: key.clone(),
                view: 9,
                detail: "bad root".into(),
            }],
            ..View::default()
        };
        timeline.observe(&mut second);
        let kinds: Vec<&str> = second.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["quarantined", "epoch", "evidence"]);
        // Straight to removed (quarantine and epoch change between two samples): the
        // quarantine is told first.
        let mut jump = Timeline::default();
        let mut before = View {
            members: vec![member(&key, "suspected")],
            ..View::default()
        };
        jump.observe(&mut before);
        let mut after = View {
            members: vec![member(&key, "removed")],
            ..View::default()
        };
        jump.observe(&mut after);
        let kinds: Vec<&str> = after.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["quarantined", "removed"]);
        // A state nobody could tell (`up` with no node answering) is no event either way.
        let mut blind = View {
            members: vec![member(&key, "unknown")],
            ..View::default()
        };
        jump.observe(&mut blind);
        let mut again = after.clone();
        jump.observe(&mut again);
        assert_eq!(again.events.len(), 2);
        assert_eq!(second.events[0].evidence, Some(7));
        assert!(second.events[0].text.contains("admitted → quarantined"));
        assert!(second.activity.is_empty());
        let mut paid = second.clone();
        paid.time_ms = 3;
        paid.withdrawals_requested = 2;
        timeline.observe(&mut paid);
        assert_eq!(
            paid.events.len(),
            3,
            "activity stays off the security timeline"
        );
        assert_eq!(paid.activity.len(), 1);
        assert!(paid.activity[0].text.contains("2 withdrawals recorded"));
        // The same view again adds nothing.
        let second = paid;
        let mut third = second.clone();
        third.time_ms = 4;
        timeline.observe(&mut third);
        assert_eq!(third.events.len(), 3);
        assert_eq!(third.activity.len(), 1);
    }

    #[test]
    fn a_flood_of_evidence_is_one_event_and_another_sources_numbers_are_not_compared() {
        let mut timeline = Timeline::default();
        let key = "ef".repeat(32);
        let record = |id| EvidenceView {
            id,
            kind: "malformed_gossip".into(),
            peer: key.clone(),
            view: 0,
            detail: String::new(),
        };
        let mut first = View {
            source: "node-0@1".into(),
            ..View::default()
        };
        timeline.observe(&mut first);
        let mut flood = View {
            source: "node-0@1".into(),
            evidence: (1..=20).map(record).collect(),
            withdrawals_requested: 3,
            ..View::default()
        };
        timeline.observe(&mut flood);
        assert_eq!(flood.events.len(), 1, "{:?}", flood.events);
        assert!(flood.events[0].text.starts_with("20 × malformed_gossip"));
        assert_eq!(flood.events[0].evidence, Some(20));
        assert_eq!(flood.activity.len(), 1);
        // Another node's log (or the same node restarted): its numbers and counters are its
        // own, so nothing is announced from comparing them.
        let mut other = View {
            source: "node-1@5".into(),
            evidence: (1..=30).map(record).collect(),
            withdrawals_requested: 9,
            ..View::default()
        };
        timeline.observe(&mut other);
        assert_eq!(other.events.len(), 1);
        assert_eq!(other.activity.len(), 1);
    }

    #[test]
    fn the_timeline_and_texts_are_bounded() {
        let mut timeline = Timeline::default();
        for i in 0..(EVENTS_KEPT as u64 + 50) {
            let mut view = View {
                time_ms: i,
                epoch: i,
                ..View::default()
            };
            timeline.observe(&mut view);
            assert!(view.events.len() <= EVENTS_KEPT);
        }
        let long = "é".repeat(TEXT_MAX);
        let cut = bounded(&long);
        assert!(cut.len() <= TEXT_MAX + "…".len());
        assert!(cut.ends_with('…'));
    }
}
