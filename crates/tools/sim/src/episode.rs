//! The sentinel's episodes (issue #13): from the first evidence against a member to its removal
//! at an epoch change, watched from outside the committee every 50 virtual ms; then what the
//! reshare left behind (the group identity, and whether an old share still signs).
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::world::{unix_ms, World};
use bulwark_consensus::epoch::{committee_of, key_digest, ShareStore as _};
use bulwark_sentinel::Trust;
use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::primitives::ops::threshold;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_runtime::{Clock, Spawner, Supervisor};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the monitor looks.
const TICK: Duration = Duration::from_millis(50);
/// The message the old-share check signs.
const PROBE: &[u8] = b"bulwark/sim/old-share-probe";

/// What the monitor saw, in virtual milliseconds since the run began.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Episode {
    /// When an honest member first held evidence against anyone, or the committee first
    /// quarantined someone, whichever came first.
    pub first_evidence_ms: Option<u64>,
    /// When the most advanced member's state first quarantined someone.
    pub quarantined_ms: Option<u64>,
    /// When the most advanced member's state first removed someone (its epoch began).
    pub removed_ms: Option<u64>,
    /// Who left the committee (replica index) and the first epoch without it.
    pub removed: Vec<(usize, u64)>,
    /// The epoch the most advanced member is in at the end.
    pub epoch: u64,
    /// Heights the most advanced member finalized from the first evidence to the end of the
    /// run.
    pub blocks_during: u64,
    /// The longest virtual time, after the first evidence, in which no member finalized a new
    /// height (the committee must never stop).
    pub longest_stall_ms: u64,
    /// The committee's public key at genesis, hex.
    pub identity_before: String,
    /// The public key of the key the remaining members hold at the end, hex (must equal the
    /// genesis one).
    pub identity_after: Option<String>,
    /// Whether a signature made with a removed member's genesis share verifies under the genesis
    /// sharing (the check's control: it must).
    pub old_share_verified_before: Option<bool>,
    /// Whether it verifies under the sharing of the epoch at the end (it must not).
    pub old_share_verifies_after: Option<bool>,
    /// Removed members that are members again at the end (re-admitted), with the epoch at the
    /// end.
    pub readmitted: Vec<(usize, u64)>,
    /// Every removal the monitor saw (member key, epoch without it), re-admitted ones included.
    #[serde(skip)]
    pub(crate) removals_seen: Vec<([u8; 32], u64)>,
}

/// The shared record the monitor writes.
pub(crate) type SharedEpisode = Arc<Mutex<Episode>>;

impl World {
    /// Starts the monitor.
    pub(crate) fn watch_episode(&self) -> SharedEpisode {
        let episode = SharedEpisode::default();
        let record = episode.clone();
        let views = self.views.clone();
        let evidence = self.evidence.clone();
        let ledgers = self.ledgers.clone();
        let started = unix_ms(&self.context);
        self.context
            .child("episode")
            .spawn(move |context| async move {
                let mut best = 0u64;
                let mut best_at = started;
                let mut at_evidence = None;
                loop {
                    context.sleep(TICK).await;
                    let now = unix_ms(&context);
                    let heights: Vec<u64> = ledgers
                        .iter()
                        .map(|l| l.lock().unwrap().last().map_or(0, |c| c.height))
                        .collect();
                    let (newest, height) = heights
                        .iter()
                        .copied()
                        .enumerate()
                        .max_by_key(|(_, h)| *h)
                        .unwrap_or((0, 0));
                    let engine = views[newest].lock().unwrap().engine.clone();
                    let mut episode = record.lock().unwrap();
                    let since = now - started;
                    let trust: Vec<&Trust> = engine
                        .membership()
                        .map(|m| m.records().map(|(_, t)| t).collect())
                        .unwrap_or_default();
                    if let Some(membership) = engine.membership() {
                        for (key, trust) in membership.records() {
                            if let Trust::Removed { epoch, .. } = trust {
                                if !episode.removals_seen.iter().any(|(k, _)| k == key) {
                                    episode.removals_seen.push((*key, *epoch));
                                }
                            }
                        }
                    }
                    let quarantined = trust.iter().any(|t| !matches!(t, Trust::Admitted));
                    let removed = trust.iter().any(|t| matches!(t, Trust::Removed { .. }));
                    let evidence_seen = evidence.iter().any(|log| log.total() > 0);
                    if episode.first_evidence_ms.is_none() && (evidence_seen || quarantined) {
                        episode.first_evidence_ms = Some(since);
                        at_evidence = Some(height);
                    }
                    if episode.quarantined_ms.is_none() && quarantined {
                        episode.quarantined_ms = Some(since);
                    }
                    if episode.removed_ms.is_none() && removed {
                        episode.removed_ms = Some(since);
                    }
                    if height > best {
                        best = height;
                        best_at = now;
                    } else if at_evidence.is_some() {
                        episode.longest_stall_ms = episode.longest_stall_ms.max(now - best_at);
                    }
                    if let Some(from) = at_evidence {
                        episode.blocks_during = height - from;
                    }
                }
            });
        episode
    }

    /// The end of an episode: who left, the identity the remaining members hold, and whether a
    /// removed member's genesis share still signs.
    pub(crate) fn close_episode(&self, episode: &SharedEpisode) -> Episode {
        let mut out = episode.lock().unwrap().clone();
        out.identity_before = hex::encode(self.output.public().public().encode());
        let engine = self.views[self.newest()].lock().unwrap().engine.clone();
        let Some(membership) = engine.membership() else {
            return out;
        };
        out.epoch = membership.epoch();
        let mut removals = out.removals_seen.clone();
        for (key, trust) in membership.records() {
            if let Trust::Removed { epoch, .. } = trust {
                if !removals.iter().any(|(k, _)| k == key) {
                    removals.push((*key, *epoch));
                }
            }
        }
        for (key, epoch) in removals {
            for replica in self.replicas_of(&[key]) {
                out.removed.push((replica, epoch));
                if membership.members().contains(&key) {
                    out.readmitted.push((replica, out.epoch));
                }
            }
        }
        out.removed.sort_unstable();
        out.readmitted.sort_unstable();
        // The key a remaining member holds for the epoch at the end.
        let participants = committee_of(membership.members());
        let remaining =
            (0..self.scenario.n).find(|i| participants.iter().any(|p| *p == self.by_index[*i]));
        let Some(remaining) = remaining else {
            return out;
        };
        let agreed = membership.key().map(|k| k.digest);
        let Ok(stored) = self.key_shares[remaining].load(out.epoch, &participants) else {
            return out;
        };
        let Some(now) = stored
            .into_iter()
            .find(|c| agreed.is_none_or(|digest| digest == key_digest(&c.output)))
        else {
            return out;
        };
        out.identity_after = Some(hex::encode(now.output.public().public().encode()));
        if let Some((removed, _)) = out.removed.first() {
            let old = self.share_of(*removed);
            let partial = threshold::sign_message::<MinSig>(&old, PROBE, PROBE);
            out.old_share_verified_before = Some(
                threshold::verify_message::<MinSig>(self.output.public(), PROBE, PROBE, &partial)
                    .is_ok(),
            );
            out.old_share_verifies_after = Some(
                threshold::verify_message::<MinSig>(now.output.public(), PROBE, PROBE, &partial)
                    .is_ok(),
            );
        }
        out
    }
}
