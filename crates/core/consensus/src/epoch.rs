//! Epochs: the committee's threshold key moves to the next committee, and consensus follows it.
//!
//! An epoch ends when a finalized block applies `SystemCommand::NewEpoch`. The way there:
//! 1. A quarantine (or an admission) is finalized (the sentinel's decision). Every member that
//!    stays starts a [`Reshare`] into the next epoch as soon as it commits that block: the
//!    dealers are the members that stay (`Membership::staying`), the players the next committee
//!    (`Membership::next_members`: the dealers and the joining candidates, who play with only
//!    the ending epoch's public output, [`Reshare::join`]), each dealer deals its share of the
//!    current key, and the ceremony (`bulwark_custody::dkg::Ceremony::reshare`, unanimous
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
    map: Arc<Mutex<SharesByAttempt>>,
}

/// Encoded shares by (epoch, attempt).
type SharesByAttempt = BTreeMap<(u64, u16), Vec<u8>>;

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

/// The digest an epoch change carries: SHA-256 over [`KEY_NAMESPACE`] and the whole encoded
/// public output (the public polynomial, the players, the dealers, the summary and the revealed
/// shares: everything a later reshare's transcript commits to, so a joining candidate that takes
/// an output with this digest holds exactly the one the dealers reshare from). Equal at every
/// player whose reshare completed: their outputs are byte-identical.
pub fn key_digest(output: &Output<MinSig, PublicKey>) -> [u8; 32] {
    Sha256::hash(&[KEY_NAMESPACE, output.encode().as_ref()]).0
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
    /// epoch) into `epoch`: it deals, as one of `dealers` (the members that stay), and plays, as
    /// one of `players` (the next committee: the dealers and the joining candidates).
    pub fn start(
        epoch: u64,
        attempt: u16,
        current: &Completed,
        signer: ed25519::PrivateKey,
        dealers: Set<PublicKey>,
        players: Set<PublicKey>,
    ) -> Result<Self, DkgError> {
        Self::begin(
            epoch,
            attempt,
            (current.output.clone(), Some(current.share.clone())),
            signer,
            dealers,
            players,
        )
    }

    /// Starts a joining candidate's side of `attempt`: it holds no share of the ending epoch's
    /// key, so it only plays, checking the dealings against `previous` (the ending epoch's
    /// public output, whose digest the log holds: [`key_digest`]).
    pub fn join(
        epoch: u64,
        attempt: u16,
        previous: Output<MinSig, PublicKey>,
        signer: ed25519::PrivateKey,
        dealers: Set<PublicKey>,
        players: Set<PublicKey>,
    ) -> Result<Self, DkgError> {
        Self::begin(epoch, attempt, (previous, None), signer, dealers, players)
    }

    fn begin(
        epoch: u64,
        attempt: u16,
        (previous, share): (Output<MinSig, PublicKey>, Option<Share>),
        signer: ed25519::PrivateKey,
        dealers: Set<PublicKey>,
        players: Set<PublicKey>,
    ) -> Result<Self, DkgError> {
        let mut rng = dealing_rng(&signer, epoch, attempt, &players);
        let (ceremony, first) = Ceremony::reshare(
            DKG_NAMESPACE,
            round_of(epoch, attempt),
            previous,
            share,
            signer,
            dealers.clone(),
            players.clone(),
            &mut rng,
        )?;
        info!(
            epoch,
            attempt,
            dealers = dealers.len(),
            players = players.len(),
            "reshare started"
        );
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
    use commonware_cryptography::bls12381::primitives::ops::threshold;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use commonware_cryptography::Signer as _;
    use commonware_utils::N3f1;
    use rand_core::SeedableRng as _;

    const PROBE: &[u8] = b"bulwark/test/epoch/probe";

    /// Whether `share` (of some epoch) is a share of `output`'s key at its own index: a share of an
    /// older epoch is not, so it can sign nothing the new epoch verifies.
    pub fn share_fits(output: &Output<MinSig, PublicKey>, share: &Share) -> bool {
        matches!(output.public().partial_public(share.index), Ok(public) if public == share.public::<MinSig>())
    }

    /// A genesis committee of `n` (trusted dealer, for the test) and each member's share.
    fn genesis(n: u64) -> (Vec<ed25519::PrivateKey>, Vec<Completed>) {
        let mut signers: Vec<ed25519::PrivateKey> =
            (0..n).map(ed25519::PrivateKey::from_seed).collect();
        signers.sort_by_key(|s| s.public_key());
        let players = Set::from_iter_dedup(signers.iter().map(|s| s.public_key()));
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(n);
        let (output, shares) =
            deal::<MinSig, PublicKey, N3f1>(&mut rng, Mode::NonZeroCounter, players).unwrap();
        let completed = signers
            .iter()
            .map(|s| Completed {
                output: output.clone(),
                share: shares.get_value(&s.public_key()).unwrap().clone(),
                transcript: [0; 32],
            })
            .collect();
        (signers, completed)
    }

    /// Runs `reshares` (member index, reshare) to the end by delivering every framed message
    /// to the members it is addressed to, eight times over (as the resend does).
    fn exchange(
        signers: &[ed25519::PrivateKey],
        reshares: &mut [(usize, Reshare)],
        stores: &[SharedShares],
    ) {
        for _ in 0..8 {
            let mut frames = Vec::new();
            for (from, reshare) in reshares.iter() {
                let me = signers[*from].public_key();
                for (to, frame) in reshare.outbox(&me) {
                    frames.push((*from, to, frame));
                }
            }
            for (from, to, frame) in frames {
                let sender = signers[from].public_key();
                for (index, reshare) in reshares.iter_mut() {
                    let key = signers[*index].public_key();
                    let addressed = match &to {
                        Recipients::All => key != sender,
                        Recipients::Some(keys) => keys.contains(&key),
                        Recipients::One(one) => *one == key,
                    };
                    if addressed && reshare.takes(&frame) {
                        // Repeats are expected: everything is sent again each round.
                        let _ = reshare.receive(&sender, &frame, &stores[*index]);
                    }
                }
            }
        }
    }

    fn stores(n: usize) -> Vec<SharedShares> {
        (0..n)
            .map(|_| Arc::new(Mutex::new(MemoryShares::default())) as SharedShares)
            .collect()
    }

    #[test]
    fn a_newcomer_takes_a_seat_with_only_the_public_output_and_signs_for_the_same_identity() {
        let (mut signers, genesis) = genesis(4);
        // Member 3 leaves; the newcomer (index 4) takes its seat. 0, 1 and 2 deal; all four play.
        signers.push(ed25519::PrivateKey::from_seed(40));
        let dealers = Set::from_iter_dedup(signers[..3].iter().map(|s| s.public_key()));
        let players = Set::from_iter_dedup([0, 1, 2, 4].iter().map(|i| signers[*i].public_key()));
        let stores = stores(5);
        let mut reshares: Vec<(usize, Reshare)> = (0..3)
            .map(|i| {
                let reshare = Reshare::start(
                    1,
                    0,
                    &genesis[i],
                    signers[i].clone(),
                    dealers.clone(),
                    players.clone(),
                )
                .unwrap();
                (i, reshare)
            })
            .collect();
        let joiner = Reshare::join(
            1,
            0,
            genesis[0].output.clone(),
            signers[4].clone(),
            dealers.clone(),
            players.clone(),
        )
        .unwrap();
        reshares.push((4, joiner));
        // The leaving member cannot deal into the new committee.
        assert!(Reshare::start(
            1,
            0,
            &genesis[3],
            signers[3].clone(),
            Set::from_iter_dedup([0, 1, 3].iter().map(|i| signers[*i].public_key())),
            players.clone(),
        )
        .is_err());
        exchange(&signers, &mut reshares, &stores);
        let outputs: Vec<Completed> = reshares
            .iter()
            .map(|(_, r)| r.completed().expect("every player completes").clone())
            .collect();
        let key = key_digest(&outputs[0].output);
        assert!(outputs.iter().all(|c| key_digest(&c.output) == key));
        // Every player holds the very same public output, byte for byte: one a peer hands a
        // later joiner can be checked against a digest of its whole encoding.
        assert!(outputs
            .iter()
            .all(|c| c.output.encode() == outputs[0].output.encode()));
        assert_eq!(
            outputs[0].output.public().public(),
            genesis[0].output.public().public()
        );
        // The newcomer's share is a share of the new sharing, stored under epoch 1.
        let newcomer = &outputs[3];
        assert!(share_fits(&outputs[0].output, &newcomer.share));
        assert_eq!(
            stores[4].lock().unwrap().load(1, &players).unwrap(),
            vec![newcomer.clone()]
        );
        // With two of the staying members, the newcomer's partial signature makes a threshold
        // signature the group identity verifies; the leaving member's old share does not fit.
        let partials: Vec<_> = [&outputs[0], &outputs[1], newcomer]
            .iter()
            .map(|c| threshold::sign_message::<MinSig>(&c.share, PROBE, PROBE))
            .collect();
        let signature = threshold::recover::<MinSig, _>(
            outputs[0].output.public(),
            &partials,
            &commonware_parallel::Sequential,
        )
        .unwrap();
        assert!(
            commonware_cryptography::bls12381::primitives::ops::verify_message::<MinSig>(
                outputs[0].output.public().public(),
                PROBE,
                PROBE,
                &signature
            )
            .is_ok()
        );
        assert!(!share_fits(&outputs[0].output, &genesis[3].share));
    }

    #[test]
    fn a_reshare_without_a_member_keeps_the_identity_and_voids_the_old_shares() {
        let (signers, genesis) = genesis(4);
        // Member 3 leaves; 0, 1 and 2 deal and play.
        let players = Set::from_iter_dedup(signers[..3].iter().map(|s| s.public_key()));
        let stores = stores(4);
        let mut reshares: Vec<(usize, Reshare)> = (0..3)
            .map(|i| {
                let reshare = Reshare::start(
                    1,
                    0,
                    &genesis[i],
                    signers[i].clone(),
                    players.clone(),
                    players.clone(),
                )
                .unwrap();
                (i, reshare)
            })
            .collect();
        exchange(&signers, &mut reshares, &stores);
        let outputs: Vec<Completed> = reshares
            .iter()
            .map(|(_, r)| r.completed().expect("every player completes").clone())
            .collect();
        let key = key_digest(&outputs[0].output);
        assert!(outputs.iter().all(|c| key_digest(&c.output) == key));
        // The same group key: the venue's identity does not change.
        assert_eq!(
            outputs[0].output.public().public(),
            genesis[0].output.public().public()
        );
        // Each share is stored under epoch 1, attempt 0.
        for (i, store) in stores.iter().take(3).enumerate() {
            let stored = store.lock().unwrap().load(1, &players).unwrap();
            assert_eq!(stored, vec![outputs[i].clone()]);
        }
        // The leaving member's genesis share signs nothing the new sharing verifies; it did
        // under the old one (the check can fail).
        let old = threshold::sign_message::<MinSig>(&genesis[3].share, PROBE, PROBE);
        assert!(threshold::verify_message::<MinSig>(
            genesis[0].output.public(),
            PROBE,
            PROBE,
            &old
        )
        .is_ok());
        assert!(threshold::verify_message::<MinSig>(
            outputs[0].output.public(),
            PROBE,
            PROBE,
            &old
        )
        .is_err());
        assert!(!share_fits(&outputs[0].output, &genesis[3].share));
        // Nor does a staying member's old share.
        assert!(!share_fits(&outputs[0].output, &genesis[0].share));
        assert!(share_fits(&outputs[0].output, &outputs[0].share));
    }

    #[test]
    fn a_member_that_restarts_mid_reshare_deals_the_same_polynomial_and_the_reshare_completes() {
        let (signers, genesis) = genesis(4);
        let players = Set::from_iter_dedup(signers[..3].iter().map(|s| s.public_key()));
        let first = Reshare::start(
            1,
            0,
            &genesis[0],
            signers[0].clone(),
            players.clone(),
            players.clone(),
        )
        .unwrap();
        let again = Reshare::start(
            1,
            0,
            &genesis[0],
            signers[0].clone(),
            players.clone(),
            players.clone(),
        )
        .unwrap();
        let me = signers[0].public_key();
        let frames =
            |r: &Reshare| -> Vec<Vec<u8>> { r.outbox(&me).into_iter().map(|(_, f)| f).collect() };
        assert_eq!(
            frames(&first),
            frames(&again),
            "the same dealing after a restart"
        );
        // Another attempt (or epoch) deals another polynomial, under another tag.
        let next = Reshare::start(
            1,
            1,
            &genesis[0],
            signers[0].clone(),
            players.clone(),
            players.clone(),
        )
        .unwrap();
        assert_ne!(frames(&first), frames(&next));
        assert!(!next.takes(&first.outbox(&me)[0].1));
        // Members 1 and 2 hold member 0's first dealing; member 0 restarts with a fresh start
        // of the same attempt: everyone still completes.
        let stores = stores(3);
        let mut reshares: Vec<(usize, Reshare)> = vec![(0, first)];
        for i in 1..3 {
            reshares.push((
                i,
                Reshare::start(
                    1,
                    0,
                    &genesis[i],
                    signers[i].clone(),
                    players.clone(),
                    players.clone(),
                )
                .unwrap(),
            ));
        }
        // Member 0's first dealings reach 1 and 2, and they ack.
        let frames = reshares[0].1.outbox(&me);
        for (i, store) in stores.iter().enumerate().skip(1) {
            for (_, frame) in &frames {
                let _ = reshares[i].1.receive(&me, frame, store);
            }
        }
        reshares[0].1 = again;
        exchange(&signers, &mut reshares, &stores);
        assert!(reshares.iter().all(|(_, r)| r.completed().is_some()));
    }

    #[test]
    fn frames_for_another_epoch_or_attempt_are_not_taken() {
        let (signers, genesis) = genesis(4);
        let players = Set::from_iter_dedup(signers[..3].iter().map(|s| s.public_key()));
        let stores = stores(1);
        let mut reshare = Reshare::start(
            2,
            0,
            &genesis[0],
            signers[0].clone(),
            players.clone(),
            players.clone(),
        )
        .unwrap();
        let sender = signers[1].public_key();
        assert!(matches!(
            reshare.receive(&sender, &[0; 3], &stores[0]),
            Err(ReshareRefusal::Short(3))
        ));
        let mut frame = 1u64.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0; 8]);
        assert!(matches!(
            reshare.receive(&sender, &frame, &stores[0]),
            Err(ReshareRefusal::OtherReshare(1))
        ));
        // Garbage after a right header is the ceremony's to refuse, as evidence.
        let mut garbage = reshare.outbox(&signers[0].public_key())[0].1[..FRAME_HEADER].to_vec();
        garbage.extend_from_slice(&[0xff; 40]);
        assert!(matches!(
            reshare.receive(&sender, &garbage, &stores[0]),
            Err(ReshareRefusal::Ceremony(_))
        ));
        assert!(reshare.completed().is_none());
        assert_eq!(attempt_at(1_000, 1_000 + RESHARE_ATTEMPT_MS - 1), 0);
        assert_eq!(attempt_at(1_000, 1_000 + 2 * RESHARE_ATTEMPT_MS), 2);
        assert_eq!(
            attempt_at(5_000, 1_000),
            0,
            "a clock behind the decision is attempt 0"
        );
        assert_eq!(attempt_at(0, u64::MAX), u16::MAX);
    }

    #[test]
    fn boundaries_round_trip_and_a_damaged_one_reads_as_missing() {
        use commonware_runtime::{deterministic, Runner as _};
        deterministic::Runner::default().start(|context| async move {
            let digest = Digest([7; 32]);
            assert_eq!(load_boundary(&context, "epochs", 1).await.unwrap(), None);
            save_boundary(&context, "epochs", 1, &digest).await.unwrap();
            assert_eq!(
                load_boundary(&context, "epochs", 1).await.unwrap(),
                Some(digest)
            );
            let (blob, _) = context.open("epochs", &1u64.to_be_bytes()).await.unwrap();
            blob.write_at(0, vec![8u8], WriteOptions::SYNC)
                .await
                .unwrap();
            drop(blob);
            assert_eq!(load_boundary(&context, "epochs", 1).await.unwrap(), None);
        });
    }
}
