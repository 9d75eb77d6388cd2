//! Epochs: the committee's threshold key moves to the next committee, and consensus follows it.
//!
//! An epoch ends when a finalized block applies `SystemCommand::NewEpoch`. The way there:
//! 1. A quarantine is finalized (the sentinel's decision). Every member that stays starts a
//!    [`Reshare`] into the next epoch as soon as it commits that block: the dealers and the
//!    players are the members left (`Membership::next_members`), each dealer deals its share of
//!    the current key, and the ceremony (`bulwark_custody::dkg::Ceremony::reshare`, unanimous
//!    among the players, with an echo round) runs on [`CHANNEL_RESHARE`] while the current
//!    epoch keeps finalizing blocks. A quarantined member is neither dealer nor player, so the
//!    new shares never reach it.
//! 2. A member whose reshare completed stores the new share ([`ShareStore`], durably) and, when
//!    it leads, proposes `NewEpoch { epoch, members, key }` with `key` = [`key_digest`] of its
//!    reshare's public output. A replica votes for that block only when its own reshare into the
//!    same epoch, for the same players, completed with the same digest (and its share is
//!    stored); until then its vote waits. So a finalized epoch change carries a key that f + 1
//!    honest players hold.
//! 3. The block that applies it is the last of its epoch: every later block names the new epoch
//!    (`Block::epoch`, checked against the parent's state), so the old epoch's consensus cannot
//!    extend it. Once a member commits it, its orchestrator starts the new epoch's simplex with
//!    the new participants and share, from that block (`committee::start_member`). The boundary
//!    digest is written to storage first ([`save_boundary`]) so a restart resumes the right
//!    epoch. Shares of older epochs are deleted once the first block of the new epoch commits.
//!
//! The group public key never changes (a reshare keeps the constant term), so `bulwark verify`
//! checks certificates of every epoch with the genesis identity alone.
//!
//! Limits (documented in `docs/sentinel.md`): the ceremony is unanimous among the players, so a
//! player that stops talking mid-reshare stalls it until the sentinel quarantines it too (the
//! reshare then restarts without it); a player that withholds its echo from some honest players
//! can leave them without the new share (they stay in the committee but cannot sign until an
//! operator restores them); and the removal takes effect only once the reshare completes.

use crate::log::{check_of, LogError};
use crate::replica::PublicKey;
use bulwark_custody::dkg::{Ceremony, Completed, DkgError, Outgoing, To};
use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::Output;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{ed25519, Hasher as _, Sha256};
use commonware_p2p::Recipients;
use commonware_runtime::{Blob as _, ReadOptions, Storage, WriteOptions};
use commonware_utils::ordered::Set;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, warn};

/// p2p channel of reshare ceremonies.
pub const CHANNEL_RESHARE: u64 = 8;
/// Namespace of the committee's DKG: genesis and every reshare (the epoch and the previous
/// output keep rounds apart). Changing it is a breaking change.
pub const DKG_NAMESPACE: &[u8] = b"bulwark/node/dkg/v1";
/// Domain of [`key_digest`]. Changing it is a breaking change.
pub const KEY_NAMESPACE: &[u8] = b"bulwark/node/epoch-key/v1";
/// Domain of the check on a stored boundary digest.
const BOUNDARY_NAMESPACE: &[u8] = b"bulwark/node/epoch-boundary/v1";
/// How often a member sends its reshare messages again until the epoch changes (the ceremony
/// itself never retransmits; a peer drops what it already has).
pub const RESEND_EVERY: Duration = Duration::from_secs(1);
/// Bytes before the ceremony's own message: the target epoch and a tag of the players.
const FRAME_HEADER: usize = 8 + 8;

/// Where a member keeps its share of each epoch's key. Writes must be durable when they
/// return: a member that voted for an epoch change must still hold the share after a crash.
pub trait ShareStore: Send + 'static {
    /// Every share stored for `epoch` (one per reshare attempt that completed here), each
    /// checked against the epoch's `players`.
    fn load(&self, epoch: u64, players: &Set<PublicKey>) -> Result<Vec<Completed>, String>;
    /// Stores the share a reshare `attempt` into `epoch` gave (genesis: epoch 0, attempt 0).
    fn store(&mut self, epoch: u64, attempt: u16, completed: &Completed) -> Result<(), String>;
    /// Deletes the shares of every epoch below `epoch`.
    fn prune(&mut self, epoch: u64) -> Result<(), String>;
}

/// A member's share store, shared between its replica and whoever seeds it.
pub type SharedShares = Arc<Mutex<dyn ShareStore>>;

/// DEVELOPMENT / SIMULATION stand-in: shares kept in memory, in their keystore encoding. A
/// clone shares the map, so a simulated member finds its shares again after a restart. A real
/// node seals each share with its keystore instead.
#[derive(Clone, Default)]
pub struct MemoryShares {
    map: Arc<Mutex<BTreeMap<(u64, u16), Vec<u8>>>>,
}

impl MemoryShares {
    /// The epochs that hold a share, ascending.
    pub fn epochs(&self) -> Vec<u64> {
        self.map
            .lock()
            .expect("the share map lock must not be poisoned")
            .keys()
            .map(|(epoch, _)| *epoch)
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .collect()
    }
}

impl ShareStore for MemoryShares {
    fn load(&self, epoch: u64, players: &Set<PublicKey>) -> Result<Vec<Completed>, String> {
        let map = self
            .map
            .lock()
            .expect("the share map lock must not be poisoned");
        map.range((epoch, 0)..=(epoch, u16::MAX))
            .map(|(_, bytes)| Completed::decode(bytes, players).map_err(|e| e.to_string()))
            .collect()
    }

    fn store(&mut self, epoch: u64, attempt: u16, completed: &Completed) -> Result<(), String> {
        self.map
            .lock()
            .expect("the share map lock must not be poisoned")
            .insert((epoch, attempt), completed.encode());
        Ok(())
    }

    fn prune(&mut self, epoch: u64) -> Result<(), String> {
        self.map
            .lock()
            .expect("the share map lock must not be poisoned")
            .retain(|(e, _), _| *e >= epoch);
        Ok(())
    }
}

/// The digest an epoch change carries: SHA-256 over [`KEY_NAMESPACE`], the new public
/// polynomial and the players. Equal at every player whose reshare completed.
pub fn key_digest(output: &Output<MinSig, PublicKey>) -> [u8; 32] {
    Sha256::hash(&[
        KEY_NAMESPACE,
        output.public().encode().as_ref(),
        output.players().encode().as_ref(),
    ])
    .0
}

/// The p2p key of a committee member named by its 32 key bytes (`None`: not an ed25519 point).
pub fn member_key(key: &[u8; 32]) -> Option<PublicKey> {
    use commonware_codec::DecodeExt as _;
    PublicKey::decode(key.to_vec()).ok()
}

/// The committee `keys` name, as a participant set (keys that are not ed25519 points left out).
pub fn committee_of(keys: &[[u8; 32]]) -> Set<PublicKey> {
    Set::from_iter_dedup(keys.iter().filter_map(member_key))
}

/// The 8-byte tag of an attempt and its players that frames reshare messages: a message for
/// another attempt (or other players) is dropped before the ceremony sees it.
fn attempt_tag(attempt: u16, players: &Set<PublicKey>) -> [u8; 8] {
    let digest = Sha256::hash(&[
        KEY_NAMESPACE,
        &attempt.to_be_bytes(),
        players.encode().as_ref(),
    ]);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest.0[..8]);
    tag
}

/// What a member's orchestrator needs to run an epoch's consensus.
#[derive(Clone, Debug)]
pub struct EpochStart {
    /// The epoch.
    pub epoch: u64,
    /// The digest of the block that began it (the genesis digest for epoch 0): the first
    /// block of the epoch builds on it.
    pub boundary: Digest,
    /// Its participants, in index order.
    pub participants: Set<PublicKey>,
    /// This member's share of its key; `None` when it is not a participant (it left) or lost
    /// its share.
    pub keys: Option<Completed>,
}

/// One member's reshare into the next epoch: the ceremony, the messages it sent (sent again
/// every [`RESEND_EVERY`] until the epoch changes) and whether its result is stored.
pub struct Reshare {
    epoch: u64,
    attempt: u16,
    players: Set<PublicKey>,
    tag: [u8; 8],
    ceremony: Ceremony,
    sent: Vec<Outgoing>,
    stored: bool,
    failed: Option<String>,
}

/// Why a reshare message from a peer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReshareRefusal {
    /// Shorter than the frame header.
    #[error("{0} bytes, shorter than the reshare frame header")]
    Short(usize),
    /// For another epoch or another set of players than the reshare running here (or none
    /// runs); an honest peer sends it again.
    #[error("for another reshare (epoch {0})")]
    OtherReshare(u64),
    /// The ceremony refused it.
    #[error(transparent)]
    Ceremony(#[from] DkgError),
}

/// How long (venue time) one reshare attempt may take before every member starts the next one:
/// a ceremony that aborted (a player sent a wrong echo) or stalled (a player stopped talking)
/// is abandoned, and the attempt number in every member's committed state moves on together.
pub const RESHARE_ATTEMPT_MS: u64 = 20_000;

/// The attempt due at venue time `now_ms` for a change due since `since_ms`.
pub fn attempt_at(since_ms: u64, now_ms: u64) -> u16 {
    u16::try_from(now_ms.saturating_sub(since_ms) / RESHARE_ATTEMPT_MS).unwrap_or(u16::MAX)
}

/// The DKG round of `attempt` into `epoch`: distinct for every epoch and attempt, never the
/// genesis round 0.
fn round_of(epoch: u64, attempt: u16) -> u64 {
    (epoch << 16) | u64::from(attempt)
}

/// The randomness of this member's dealing in one attempt: derived from its secret key and the
/// attempt, so a member that restarts mid-reshare deals exactly the same polynomial again (its
/// peers already acked it) and never reuses one across attempts.
fn dealing_rng(
    signer: &ed25519::PrivateKey,
    epoch: u64,
    attempt: u16,
    players: &Set<PublicKey>,
) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng as _;
    let secret = signer.encode();
    let seed = Sha256::hash(&[
        b"bulwark/node/reshare-dealing/v1".as_slice(),
        secret.as_ref(),
        &epoch.to_be_bytes(),
        &attempt.to_be_bytes(),
        players.encode().as_ref(),
    ]);
    rand_chacha::ChaCha20Rng::from_seed(seed.0)
}

impl Reshare {
    /// Starts this member's side of `attempt` at resharing `current` (its share of the ending
    /// epoch) into `epoch`, with `players` as dealers and players.
    pub fn start(
        epoch: u64,
        attempt: u16,
        current: &Completed,
        signer: ed25519::PrivateKey,
        players: Set<PublicKey>,
    ) -> Result<Self, DkgError> {
        let mut rng = dealing_rng(&signer, epoch, attempt, &players);
        let (ceremony, first) = Ceremony::reshare(
            DKG_NAMESPACE,
            round_of(epoch, attempt),
            current.output.clone(),
            Some(current.share.clone()),
            signer,
            players.clone(),
            players.clone(),
            &mut rng,
        )?;
        info!(epoch, attempt, players = players.len(), "reshare started");
        Ok(Reshare {
            epoch,
            attempt,
            tag: attempt_tag(attempt, &players),
            players,
            ceremony,
            sent: first,
            stored: false,
            failed: None,
        })
    }

    /// The epoch it reshares into.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next committee.
    pub fn players(&self) -> &Set<PublicKey> {
        &self.players
    }

    /// Its attempt number.
    pub fn attempt(&self) -> u16 {
        self.attempt
    }

    /// Whether it is a reshare into `epoch` for exactly `players`.
    pub fn is_for(&self, epoch: u64, players: &Set<PublicKey>) -> bool {
        self.epoch == epoch && self.players == *players
    }

    /// Whether `frame` is addressed to this attempt.
    pub fn takes(&self, frame: &[u8]) -> bool {
        frame.len() >= FRAME_HEADER
            && frame[..8] == self.epoch.to_be_bytes()
            && frame[8..FRAME_HEADER] == self.tag
    }

    /// The result, once the ceremony completed and the share was stored.
    pub fn completed(&self) -> Option<&Completed> {
        if self.stored {
            self.ceremony.completed()
        } else {
            None
        }
    }

    /// Why it cannot complete, if it cannot.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Progress, for logs and status.
    pub fn status(&self) -> String {
        self.ceremony.status().to_string()
    }

    /// Every message this member sent so far, framed, with its recipients.
    pub fn outbox(&self, me: &PublicKey) -> Vec<(Recipients<PublicKey>, Vec<u8>)> {
        self.sent
            .iter()
            .map(|outgoing| {
                let recipients = match &outgoing.to {
                    To::All => Recipients::Some(
                        self.players.iter().filter(|p| *p != me).cloned().collect(),
                    ),
                    To::One(peer) => Recipients::One(peer.clone()),
                };
                let mut frame = Vec::with_capacity(FRAME_HEADER + outgoing.bytes.len());
                frame.extend_from_slice(&self.epoch.to_be_bytes());
                frame.extend_from_slice(&self.tag);
                frame.extend_from_slice(&outgoing.bytes);
                (recipients, frame)
            })
            .collect()
    }

    /// Takes a framed message from an authenticated peer. Returns how many new messages this
    /// member must send (they are in [`Reshare::outbox`] too). Stores the result once the
    /// ceremony completes.
    pub fn receive(
        &mut self,
        from: &PublicKey,
        frame: &[u8],
        shares: &SharedShares,
    ) -> Result<usize, ReshareRefusal> {
        if frame.len() < FRAME_HEADER {
            return Err(ReshareRefusal::Short(frame.len()));
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&frame[..8]);
        let epoch = u64::from_be_bytes(epoch);
        if epoch != self.epoch || frame[8..FRAME_HEADER] != self.tag {
            return Err(ReshareRefusal::OtherReshare(epoch));
        }
        let out = match self.ceremony.receive(from, &frame[FRAME_HEADER..]) {
            Ok(out) => out,
            Err(error) => {
                if self.ceremony.status().stage == bulwark_custody::dkg::Stage::Aborted {
                    // Every later message repeats the abort: it says nothing about its sender.
                    if self.failed.is_none() {
                        warn!(epoch = self.epoch, attempt = self.attempt, %error, "reshare aborted; the next attempt starts when this one's time is up");
                        self.failed = Some(error.to_string());
                    }
                    return Ok(0);
                }
                return Err(error.into());
            }
        };
        let new = out.len();
        self.sent.extend(out);
        if !self.stored {
            if let Some(completed) = self.ceremony.completed() {
                let stored = shares
                    .lock()
                    .expect("the share store lock must not be poisoned")
                    .store(self.epoch, self.attempt, completed);
                match stored {
                    Ok(()) => {
                        self.stored = true;
                        info!(
                            epoch = self.epoch,
                            key = hex::encode(key_digest(&completed.output)),
                            "reshare completed; share stored"
                        );
                    }
                    Err(error) => {
                        warn!(epoch = self.epoch, %error, "cannot store the reshared share; not voting for the epoch change");
                        self.failed = Some(format!("cannot store the share: {error}"));
                    }
                }
            }
        }
        debug!(epoch = self.epoch, status = %self.ceremony.status(), "reshare message taken");
        Ok(new)
    }
}

/// Whether `share` (of some epoch) is a share of `output`'s key at its own index: a share of an
/// older epoch is not, so it can sign nothing the new epoch verifies.
pub fn share_fits(output: &Output<MinSig, PublicKey>, share: &Share) -> bool {
    matches!(output.public().partial_public(share.index), Ok(public) if public == share.public::<MinSig>())
}

/// Writes the digest of the block that began `epoch` (synced) under `partition`.
pub async fn save_boundary<S: Storage>(
    storage: &S,
    partition: &str,
    epoch: u64,
    boundary: &Digest,
) -> Result<(), LogError> {
    let mut bytes = boundary.0.to_vec();
    bytes.extend_from_slice(&check_of(BOUNDARY_NAMESPACE, &boundary.0));
    let (blob, _) = storage.open(partition, &epoch.to_be_bytes()).await?;
    blob.write_at(0, bytes, WriteOptions::SYNC).await?;
    Ok(())
}

/// Reads the digest of the block that began `epoch`; `Ok(None)` when it was never written or
/// is damaged.
pub async fn load_boundary<S: Storage>(
    storage: &S,
    partition: &str,
    epoch: u64,
) -> Result<Option<Digest>, LogError> {
    let (blob, size) = storage.open(partition, &epoch.to_be_bytes()).await?;
    let want = 32 + check_of(BOUNDARY_NAMESPACE, &[]).len();
    if size != want as u64 {
        return Ok(None);
    }
    let bytes = blob
        .read_at(0, want, ReadOptions::default())
        .await?
        .coalesce();
    let bytes: &[u8] = bytes.as_ref();
    let (digest, check) = bytes.split_at(32);
    if check != check_of(BOUNDARY_NAMESPACE, digest) {
        warn!(epoch, "stored epoch boundary is damaged");
        return Ok(None);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest);
    Ok(Some(Digest(out)))
}
