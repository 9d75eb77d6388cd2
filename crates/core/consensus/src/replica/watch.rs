//! The sentinel's inputs at a replica: this member's own evidence (the evidence log, and the
//! votes simplex reports, for silence) turned into signed accusations, sent to every member on
//! [`crate::committee::CHANNEL_ACCUSATIONS`]; and the accusations of others, checked against the
//! committed trust state before the sentinel keeps them.

use super::*;
use crate::evidence::Evidence;
use bulwark_engine::codec::{decode_accusation, encode_accusation};
use bulwark_sentinel::{Accusation, Grounds, Silence};

/// Most own accusations kept for resending (one per member and grounds suffices).
const OWN_ACCUSATIONS_MAX: usize = 256;

/// The votes simplex reported, per member, for the newest epoch it reported any in.
#[derive(Debug, Default)]
pub struct Votes {
    epoch: u64,
    top: u64,
    last: HashMap<PublicKey, u64>,
}

/// Shared between every epoch's mailbox and the replica.
pub type SharedVotes = Arc<Mutex<Votes>>;

impl Votes {
    /// `member` voted in `view` of `epoch`; a newer epoch starts over, an older one is ignored.
    pub(super) fn voted(&mut self, epoch: u64, member: &PublicKey, view: u64) {
        if epoch < self.epoch {
            return;
        }
        if epoch > self.epoch {
            *self = Votes {
                epoch,
                ..Votes::default()
            };
        }
        self.top = self.top.max(view);
        let last = self.last.entry(member.clone()).or_default();
        *last = (*last).max(view);
    }
}

/// The sentinel's state at the replica.
#[derive(Default)]
pub(super) struct Watcher {
    /// Evidence records already read.
    seen: u64,
    /// Silence per member, for the epoch it was built for.
    silence: Option<(u64, Silence)>,
    /// The members of the epoch `silence` was built for (the committee before a change).
    silence_members: Vec<[u8; 32]>,
    /// This member's accusations, resent with the reshare until their member leaves.
    own: Vec<Accusation>,
    /// Whether `own` has something not sent yet.
    due: bool,
}

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Turns new evidence and silence into accusations (sent with [`Replica::send_accusations`]).
    pub(super) fn watch(&mut self) {
        let Some(sentinel) = self.config.sentinel.clone() else {
            return;
        };
        let Some(membership) = self.committed.membership() else {
            return;
        };
        let (records, seen) = self.config.evidence.since(self.watcher.seen);
        self.watcher.seen = seen;
        let mut observed: Vec<([u8; 32], Grounds)> = records
            .iter()
            .filter_map(|Evidence { kind, peer, .. }| {
                let grounds = kind.grounds()?;
                let key: [u8; 32] = hex::decode(peer).ok()?.try_into().ok()?;
                Some((key, grounds))
            })
            .collect();
        let epoch = membership.epoch();
        let votes = self
            .votes
            .lock()
            .expect("the votes lock must not be poisoned");
        if votes.epoch == epoch && votes.top > 0 {
            let previous = std::mem::take(&mut self.watcher.silence_members);
            let silence = match &mut self.watcher.silence {
                Some((built, silence)) if *built == epoch => silence,
                // A change seen here: members that joined at it get a second stretch. At start
                // (no committee seen before) everyone is counted alike.
                slot @ Some(_) => {
                    &mut slot
                        .insert((
                            epoch,
                            Silence::after_change(membership, votes.top, &previous),
                        ))
                        .1
                }
                slot @ None => &mut slot.insert((epoch, Silence::new(membership, votes.top))).1,
            };
            self.watcher.silence_members = membership.members().to_vec();
            for (member, view) in &votes.last {
                let key: [u8; 32] = member.as_ref().try_into().unwrap_or([0; 32]);
                silence.voted(&key, *view);
            }
            let me: [u8; 32] = self
                .config
                .signer
                .public_key()
                .as_ref()
                .try_into()
                .unwrap_or([0; 32]);
            observed.extend(
                silence
                    .silent(votes.top)
                    .into_iter()
                    .filter(|member| *member != me)
                    .map(|member| (member, Grounds::Silence)),
            );
        }
        drop(votes);
        if observed.is_empty() {
            return;
        }
        let mut sentinel = sentinel
            .lock()
            .expect("the sentinel lock must not be poisoned");
        for (peer, grounds) in observed {
            if let Some(accusation) = sentinel.observe(&self.committed, peer, grounds) {
                info!(
                    accused = hex::encode(&peer[..8]),
                    ?grounds,
                    "this member accuses"
                );
                if self.watcher.own.len() == OWN_ACCUSATIONS_MAX {
                    self.watcher.own.remove(0);
                }
                self.watcher.own.push(accusation);
                self.watcher.due = true;
            }
        }
    }

    /// An accusation from `peer`: decoded, then checked against the committed trust state
    /// before the sentinel keeps it.
    pub(super) fn receive_accusation(&mut self, peer: &PublicKey, bytes: &[u8]) {
        let Some(sentinel) = &self.config.sentinel else {
            return;
        };
        let accusation = match decode_accusation(bytes) {
            Ok(accusation) => accusation,
            Err(error) => {
                self.config
                    .evidence
                    .record(Kind::MalformedAccusation, peer, 0, error.to_string());
                return;
            }
        };
        let offered = sentinel
            .lock()
            .expect("the sentinel lock must not be poisoned")
            .offer(&self.committed, accusation);
        if let Err(refusal) = offered {
            // Stale or for another epoch is normal around an epoch change; only a bad signature
            // is the sender's fault, if it signed it (a forwarded one proves nothing about it).
            if matches!(refusal, bulwark_sentinel::Refusal::BadSignature(_))
                && accusation.accuser.as_slice() == peer.as_ref()
            {
                self.config.evidence.record(
                    Kind::MalformedAccusation,
                    peer,
                    accusation.epoch,
                    refusal.to_string(),
                );
            }
            debug!(%refusal, "accusation not kept");
        }
    }

    /// Sends this member's new accusations to every member now, and all that still count every
    /// [`crate::epoch::RESEND_EVERY`] (with the reshare's resend).
    pub(super) fn send_accusations<AS: Sender<PublicKey = PublicKey>>(
        &mut self,
        sender: &mut AS,
        resend: bool,
    ) {
        if !self.watcher.due && !resend {
            return;
        }
        self.watcher.due = false;
        if let Some(membership) = self.committed.membership() {
            let epoch = membership.epoch();
            self.watcher
                .own
                .retain(|a| a.epoch == epoch && membership.is_admitted(&a.accused));
        }
        for accusation in &self.watcher.own {
            sender.send(
                Recipients::All,
                IoBuf::from(encode_accusation(accusation)),
                false,
            );
        }
    }
}
