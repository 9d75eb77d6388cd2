//! Certified catch-up: how a replica that does not hear the current epoch's consensus still
//! follows the finalized log.
//!
//! Who needs it: a member the sentinel removed (no simplex of the new epoch runs at it), a
//! member that was down across an epoch change for longer than
//! [`crate::committee::OLD_EPOCH_GRACE`] (nobody runs the consensus of the epoch it would have to
//! finish), and a node about to join the committee (issue #13).
//!
//! The rule: a replica that committed nothing for [`STALL`] asks one peer at a time, on
//! [`CHANNEL_CATCHUP`], for up to [`WINDOW`] records from its next height. It asks again, each
//! time the next peer in turn (so no single peer can hold it back, and the load is spread), as
//! soon as it committed the whole window or [`ASK_EVERY`] after the last ask. Once it commits
//! again it stops after a whole round of peers brought it nothing (it is caught up); while it
//! commits nothing it keeps asking every [`ASK_EVERY`]. The peer answers with each record as its
//! log holds it (the block and, when it has one, the block's finalization certificate); when no
//! record of the window carries a certificate (blocks finalized only through a descendant's), it
//! adds the first certified record after the window, so a window without certificates never
//! stalls a follower.
//!
//! Nothing in an answer is trusted. A record counts as final only through a certificate that
//! [`crate::verify::check_certificate`] accepts: canonical, certifying exactly the block's digest,
//! naming the block's epoch and verifying against the group public key (the genesis identity,
//! the same in every epoch): the same rule `bulwark verify` applies. A record without a
//! certificate is only a block, stored by digest and committed only when a certified
//! descendant's parent links reach it: until then it waits in a buffer of at most
//! [`BUFFER_MAX`] blocks (the oldest dropped first), never in the replica's block store. Every
//! committed block then goes through the checks and execution of any finalized block. A record
//! whose certificate fails, or bytes that are not a frame, are recorded as evidence against the
//! sender ([`crate::evidence::Kind::MalformedCatchUp`]); an answer nobody asked for (a late one
//! included) is dropped unread, so an honest but slow peer is not accused.
//!
//! Bounds: a request names at most [`WINDOW`] heights; each peer's requests are answered at most
//! once per [`ANSWER_GAP`], with at most [`ANSWER_BYTES_MAX`] of records; answers are taken only
//! from the peer asked, for the heights asked (and one certified record after them), one record
//! per height per request.
//!
//! A joining candidate needs one more thing: the ending epoch's public output (the public
//! polynomial the reshare's dealings are checked against; it holds no share of it). It asks the
//! current members for it ([`Frame::OutputRequest`]) and takes a copy only when
//! [`OutputCollector`] accepts it: it decodes canonically, its group key is the genesis identity,
//! its players are the current committee, and its digest is the one the log committed for the
//! epoch ([`crate::epoch::key_digest`], in the epoch change that began it); in the genesis epoch,
//! whose output no block commits to, f+1 distinct current members must have sent the identical
//! bytes (at most f of them lie).
//!
//! Frames (big-endian):
//!
//! ```text
//! request        := 0x01 | from u64 | count u16   (1 <= from, 1 <= count <= WINDOW)
//! answer         := 0x02 | record                 (the log's stored form, check included)
//! output request := 0x03 | epoch u64
//! output         := 0x04 | epoch u64 | output     (the encoded public output, at most OUTPUT_BYTES_MAX)
//! ```

use crate::block::Block;
use crate::log::{LogError, Record, RECORD_PAYLOAD_MAX};
use crate::replica::{PublicKey, Scheme};
use crate::verify::{check_certificate, CertificateError, Identity};
use commonware_codec::{Decode as _, Encode as _};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::Output;
use commonware_cryptography::bls12381::primitives::sharing::ModeVersion;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::sha256::Digest;
use commonware_utils::ordered::Set;
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

/// p2p channel of catch-up requests and answers.
pub const CHANNEL_CATCHUP: u64 = 12;
/// How long a replica commits nothing before it asks peers for certified records.
pub const STALL: Duration = Duration::from_secs(2);
/// How often a replica that is catching up asks again.
pub const ASK_EVERY: Duration = Duration::from_millis(500);
/// Most heights one request names.
pub const WINDOW: u16 = 128;
/// A peer's requests are answered at most once in this long.
pub const ANSWER_GAP: Duration = Duration::from_millis(500);
/// Most record bytes one answer sends (a window of maximal blocks would be far more).
pub const ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How far past a window without certificates an answerer looks for a certified record.
pub const TAIL_SCAN_MAX: u64 = 1_024;
/// Most uncertified blocks a follower keeps from answers, waiting for a certified descendant.
pub const BUFFER_MAX: usize = 64;
/// The largest frame: an answer holding a maximal record.
pub const FRAME_BYTES_MAX: usize = 1 + 4 + RECORD_PAYLOAD_MAX + 8;
/// The largest encoded public output a frame may carry (a committee of the largest size needs
/// a few tens of KiB).
pub const OUTPUT_BYTES_MAX: usize = 256 * 1024;

const TAG_REQUEST: u8 = 1;
const TAG_ANSWER: u8 = 2;
const TAG_OUTPUT_REQUEST: u8 = 3;
const TAG_OUTPUT: u8 = 4;

/// One catch-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// "Send me the records of heights `from .. from + count`."
    Request {
        /// The first height asked for.
        from: u64,
        /// How many heights.
        count: u16,
    },
    /// One record of the sender's finalized log.
    Answer(Record),
    /// "Send me the public output of `epoch`" (a joining candidate asks the members).
    OutputRequest {
        /// The epoch whose output is asked for (the one the sender's log is in).
        epoch: u64,
    },
    /// The sender's public output of `epoch`, encoded.
    Output {
        /// Its epoch.
        epoch: u64,
        /// The encoded output.
        output: Vec<u8>,
    },
}

/// Why bytes are not a catch-up frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// No bytes.
    #[error("empty frame")]
    Empty,
    /// The first byte names no frame.
    #[error("unknown frame tag {0}")]
    Tag(u8),
    /// A request of the wrong length.
    #[error("a request is 11 bytes, not {0}")]
    RequestLength(usize),
    /// A request for height 0, or for no heights or more than [`WINDOW`].
    #[error(
        "a request for {count} heights from {from} (at least height 1, 1 to {WINDOW} heights)"
    )]
    Request {
        /// The first height asked for.
        from: u64,
        /// How many.
        count: u16,
    },
    /// An answer's record is damaged.
    #[error("the answer's record: {0}")]
    Record(#[from] LogError),
    /// An output request of the wrong length.
    #[error("an output request is 9 bytes, not {0}")]
    OutputRequestLength(usize),
    /// An output frame too short for its epoch, or with an output over [`OUTPUT_BYTES_MAX`].
    #[error("an output frame of {0} bytes (9 to {max})", max = 9 + OUTPUT_BYTES_MAX)]
    OutputLength(usize),
}

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Frame::Request { from, count } => {
                let mut out = Vec::with_capacity(11);
                out.push(TAG_REQUEST);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
                out
            }
            Frame::Answer(record) => {
                let mut out = Vec::with_capacity(1 + record.encoded_len());
                out.push(TAG_ANSWER);
                out.extend_from_slice(&record.encode());
                out
            }
            Frame::OutputRequest { epoch } => {
                let mut out = Vec::with_capacity(9);
                out.push(TAG_OUTPUT_REQUEST);
                out.extend_from_slice(&epoch.to_be_bytes());
                out
            }
            Frame::Output { epoch, output } => {
                let mut out = Vec::with_capacity(9 + output.len());
                out.push(TAG_OUTPUT);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(output);
                out
            }
        }
    }

    /// Decodes a frame; nothing else decodes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (&tag, rest) = bytes.split_first().ok_or(FrameError::Empty)?;
        match tag {
            TAG_REQUEST => {
                let fixed: [u8; 10] = rest
                    .try_into()
                    .map_err(|_| FrameError::RequestLength(bytes.len()))?;
                let mut from = [0u8; 8];
                from.copy_from_slice(&fixed[..8]);
                let from = u64::from_be_bytes(from);
                let count = u16::from_be_bytes([fixed[8], fixed[9]]);
                if from == 0 || count == 0 || count > WINDOW {
                    return Err(FrameError::Request { from, count });
                }
                Ok(Frame::Request { from, count })
            }
            TAG_ANSWER => Ok(Frame::Answer(Record::decode(rest)?)),
            TAG_OUTPUT_REQUEST => {
                let epoch: [u8; 8] = rest
                    .try_into()
                    .map_err(|_| FrameError::OutputRequestLength(bytes.len()))?;
                Ok(Frame::OutputRequest {
                    epoch: u64::from_be_bytes(epoch),
                })
            }
            TAG_OUTPUT => {
                if rest.len() < 8 || rest.len() - 8 > OUTPUT_BYTES_MAX {
                    return Err(FrameError::OutputLength(bytes.len()));
                }
                let (epoch, output) = rest.split_at(8);
                let mut word = [0u8; 8];
                word.copy_from_slice(epoch);
                Ok(Frame::Output {
                    epoch: u64::from_be_bytes(word),
                    output: output.to_vec(),
                })
            }
            other => Err(FrameError::Tag(other)),
        }
    }
}

/// Why a record from an answer is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordRefusal {
    /// The record's bytes are not a block.
    #[error("height {height}: not a block: {reason}")]
    Block {
        /// The record's height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// The block's height is not the record's.
    #[error("a record of height {record} holds a block of height {block}")]
    Height {
        /// The record's height.
        record: u64,
        /// The block's.
        block: u64,
    },
    /// The certificate does not certify this block under the group key.
    #[error("height {height}: {error}")]
    Certificate {
        /// The record's height.
        height: u64,
        /// What is wrong with it.
        error: CertificateError,
    },
}

/// A record that passed [`check_record`].
#[derive(Debug)]
pub struct Checked {
    /// The block.
    pub block: Block,
    /// Its canonical bytes.
    pub bytes: Vec<u8>,
    /// Its digest.
    pub digest: Digest,
    /// Its finalization certificate, verified (None: the record carried none).
    pub certificate: Option<Vec<u8>>,
}

/// Checks one record of an answer: its block decodes and has the record's height; its
/// certificate, when it carries one, certifies this block under `verifier` (the group key).
pub fn check_record(
    record: Record,
    verifier: &Scheme,
    rng: &mut impl CryptoRng,
) -> Result<Checked, RecordRefusal> {
    let height = record.height;
    let block = Block::decode(&record.block).map_err(|e| RecordRefusal::Block {
        height,
        reason: e.to_string(),
    })?;
    if block.height != height {
        return Err(RecordRefusal::Height {
            record: height,
            block: block.height,
        });
    }
    let digest = Block::digest_of(&record.block);
    if let Some(certificate) = &record.certificate {
        check_certificate(certificate, &digest, block.epoch, verifier, rng)
            .map_err(|error| RecordRefusal::Certificate { height, error })?;
    }
    Ok(Checked {
        block,
        bytes: record.block,
        digest,
        certificate: record.certificate,
    })
}

/// Why a copy of an epoch's public output is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputRefusal {
    /// The sender is not a member of the current committee.
    #[error("the sender is not a member of the current committee")]
    NotAMember,
    /// The bytes are not the canonical encoding of a public output.
    #[error("not a public output: {0}")]
    Decode(String),
    /// Its group key is not the genesis identity.
    #[error("its group key is not the venue's identity")]
    Identity,
    /// Its players are not the current committee.
    #[error("its players are not the current committee")]
    Players,
    /// Its digest is not the one the log committed for the epoch.
    #[error("its digest is not the one the log committed for the epoch")]
    Digest,
}

/// A joining candidate's collection of copies of the ending epoch's public output (see the
/// module docs): at most one copy per current member.
#[derive(Debug)]
pub struct OutputCollector {
    epoch: u64,
    /// Each member's copy, by the member (genesis epoch only: later epochs take the first copy
    /// with the committed digest).
    copies: BTreeMap<PublicKey, Vec<u8>>,
    /// The members whose copy was looked at: each is decoded once (an honest member sends the
    /// same bytes every time).
    offered: std::collections::BTreeSet<PublicKey>,
}

impl OutputCollector {
    /// Collects the output of `epoch`.
    pub fn new(epoch: u64) -> Self {
        OutputCollector {
            epoch,
            copies: BTreeMap::new(),
            offered: std::collections::BTreeSet::new(),
        }
    }

    /// The epoch collected for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Offers `peer`'s copy `bytes`. `members` is the current committee, `identity` the group
    /// key, `digest` the key digest the log committed for the epoch (None in the genesis epoch:
    /// then f+1 members' identical copies are needed). Returns the output once accepted.
    pub fn offer(
        &mut self,
        peer: &PublicKey,
        bytes: &[u8],
        members: &Set<PublicKey>,
        identity: &Identity,
        digest: Option<[u8; 32]>,
    ) -> Result<Option<Output<MinSig, PublicKey>>, OutputRefusal> {
        if members.position(peer).is_none() {
            return Err(OutputRefusal::NotAMember);
        }
        if !self.offered.insert(peer.clone()) {
            return Ok(None);
        }
        let max = u32::try_from(members.len())
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(OutputRefusal::NotAMember)?;
        let output =
            Output::<MinSig, PublicKey>::decode_cfg(bytes.to_vec(), &(max, ModeVersion::v0()))
                .map_err(|e| OutputRefusal::Decode(e.to_string()))?;
        if output.encode().as_ref() != bytes {
            return Err(OutputRefusal::Decode("not canonical".into()));
        }
        if output.public().public() != identity {
            return Err(OutputRefusal::Identity);
        }
        if output.players() != members {
            return Err(OutputRefusal::Players);
        }
        match digest {
            Some(digest) => {
                if crate::epoch::key_digest(&output) != digest {
                    return Err(OutputRefusal::Digest);
                }
                Ok(Some(output))
            }
            None => {
                self.copies.insert(peer.clone(), bytes.to_vec());
                let same = self
                    .copies
                    .values()
                    .filter(|c| c.as_slice() == bytes)
                    .count();
                let f = (members.len() - 1) / 3;
                Ok((same > f).then_some(output))
            }
        }
    }
}

/// The request a follower has open.
#[derive(Debug, Clone)]
struct Asked {
    peer: PublicKey,
    from: u64,
    count: u16,
    at: SystemTime,
    /// The heights of the window a record was taken for already.
    taken: Vec<bool>,
    /// Whether the one record after the window was taken.
    tail_taken: bool,
}

/// What a record from a peer is to the follower's open request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Not asked for (another peer, a height outside the request, a second record for a
    /// height): dropped unread.
    No,
    /// A height of the window.
    Window,
    /// The one record after the window an answerer adds when the window holds no certificate:
    /// taken only with a certificate.
    Tail,
}

/// When to ask whom: the follower's side of catch-up, free of I/O.
#[derive(Debug)]
pub struct Follower {
    /// The committed height last seen, and when it last grew.
    height: u64,
    progress_at: SystemTime,
    asked: Option<Asked>,
    /// Which peer is asked next (an index into the peers, wrapping).
    turn: usize,
    /// Asks in a row that brought nothing.
    fruitless: usize,
}

impl Follower {
    /// A follower of a replica at committed `height` at `now`.
    pub fn new(height: u64, now: SystemTime) -> Self {
        Follower {
            height,
            progress_at: now,
            asked: None,
            turn: 0,
            fruitless: 0,
        }
    }

    /// Called with the committed `height` at `now`; returns the peer to ask and the request
    /// when one is due. `peers` are the ones that may be asked (never this replica).
    pub fn poll(
        &mut self,
        height: u64,
        now: SystemTime,
        peers: &[PublicKey],
    ) -> Option<(PublicKey, Frame)> {
        if height > self.height {
            self.height = height;
            self.progress_at = now;
        }
        if let Some(asked) = &self.asked {
            let consumed = height + 1 >= asked.from + u64::from(asked.count);
            if now < asked.at + ASK_EVERY && !consumed {
                return None;
            }
        }
        match &self.asked {
            Some(asked) if height >= asked.from => self.fruitless = 0,
            Some(_) => self.fruitless += 1,
            None => {}
        }
        let stalled = now >= self.progress_at + STALL;
        // Asking on while a round of peers has not all come back empty; after that, only once
        // nothing committed for STALL.
        let asking = self.asked.is_some() && self.fruitless < peers.len();
        if !asking && !stalled {
            self.asked = None;
            self.fruitless = 0;
            return None;
        }
        if peers.is_empty() {
            return None;
        }
        self.turn = self.turn.wrapping_add(1);
        let peer = peers[self.turn % peers.len()].clone();
        let from = height + 1;
        self.asked = Some(Asked {
            peer: peer.clone(),
            from,
            count: WINDOW,
            at: now,
            taken: vec![false; usize::from(WINDOW)],
            tail_taken: false,
        });
        Some((
            peer,
            Frame::Request {
                from,
                count: WINDOW,
            },
        ))
    }

    /// Whether a record of `height` from `peer` answers the open request: the first for a
    /// height of the window, or the first after it (then it is marked taken: a second one is
    /// not).
    pub fn take(&mut self, peer: &PublicKey, height: u64) -> Take {
        let Some(asked) = self.asked.as_mut() else {
            return Take::No;
        };
        if &asked.peer != peer || height < asked.from {
            return Take::No;
        }
        let Ok(index) = usize::try_from(height - asked.from) else {
            return Take::No;
        };
        if index >= usize::from(asked.count) {
            if asked.tail_taken {
                return Take::No;
            }
            asked.tail_taken = true;
            return Take::Tail;
        }
        match asked.taken.get_mut(index) {
            Some(taken) if !*taken => {
                *taken = true;
                Take::Window
            }
            _ => Take::No,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use commonware_cryptography::{ed25519, Signer as _};
    use std::time::UNIX_EPOCH;

    fn peers(n: u64) -> Vec<PublicKey> {
        (0..n)
            .map(|i| ed25519::PrivateKey::from_seed(i).public_key())
            .collect()
    }

    #[test]
    fn frames_round_trip_and_nothing_else_decodes() {
        let record = Record {
            height: 9,
            block: vec![1, 2, 3],
            certificate: Some(vec![4; 10]),
        };
        for frame in [
            Frame::Request { from: 1, count: 1 },
            Frame::Request {
                from: u64::MAX,
                count: WINDOW,
            },
            Frame::Answer(record.clone()),
        ] {
            assert_eq!(Frame::decode(&frame.encode()).unwrap(), frame);
        }
        assert!(matches!(Frame::decode(&[]), Err(FrameError::Empty)));
        assert!(matches!(Frame::decode(&[9, 0]), Err(FrameError::Tag(9))));
        assert!(matches!(
            Frame::decode(&[1, 0, 0]),
            Err(FrameError::RequestLength(3))
        ));
        for (from, count) in [(0, 1), (1, 0), (1, WINDOW + 1), (5, u16::MAX)] {
            let mut bytes = vec![1];
            bytes.extend_from_slice(&u64::to_be_bytes(from));
            bytes.extend_from_slice(&count.to_be_bytes());
            assert!(
                matches!(Frame::decode(&bytes), Err(FrameError::Request { .. })),
                "{from} {count}"
            );
        }
        let mut answer = Frame::Answer(record).encode();
        let last = answer.len() - 1;
        answer[last] ^= 1;
        assert!(matches!(Frame::decode(&answer), Err(FrameError::Record(_))));
    }

    /// A committee of `n` keys and a trusted dealer's output for it, from `seed`.
    fn output(n: u64, seed: u64) -> (Set<PublicKey>, Output<MinSig, PublicKey>) {
        use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
        use commonware_cryptography::bls12381::primitives::sharing::Mode;
        use rand_core::SeedableRng as _;
        let members = Set::from_iter_dedup(peers(n));
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let (output, _) = deal::<MinSig, PublicKey, commonware_utils::N3f1>(
            &mut rng,
            Mode::NonZeroCounter,
            members.clone(),
        )
        .unwrap();
        (members, output)
    }

    #[test]
    fn the_ending_epochs_output_is_taken_on_the_committed_digest_or_f_plus_one_copies() {
        let (members, real) = output(4, 1);
        let identity = *real.public().public();
        let bytes = real.encode().to_vec();
        let m: Vec<PublicKey> = members.iter().cloned().collect();
        let stranger = ed25519::PrivateKey::from_seed(99).public_key();
        // Later epochs: the first copy with the committed digest, nothing else (a fresh
        // collector per case: each member's copy is looked at once).
        let digest = crate::epoch::key_digest(&real);
        let offer = |peer: &PublicKey, bytes: &[u8], members: &Set<PublicKey>, digest| {
            OutputCollector::new(3).offer(peer, bytes, members, &identity, Some(digest))
        };
        assert_eq!(
            offer(&stranger, &bytes, &members, digest),
            Err(OutputRefusal::NotAMember)
        );
        assert_eq!(
            offer(&m[0], &bytes, &members, [7; 32]),
            Err(OutputRefusal::Digest)
        );
        assert!(matches!(
            offer(&m[0], &bytes[..bytes.len() - 1], &members, digest),
            Err(OutputRefusal::Decode(_))
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(offer(&m[0], &flipped, &members, digest).is_err());
        // Another committee's output (another group key) is refused whatever it claims.
        let (_, other) = output(4, 2);
        assert_eq!(
            offer(
                &m[0],
                &other.encode(),
                &members,
                crate::epoch::key_digest(&other)
            ),
            Err(OutputRefusal::Identity)
        );
        // The right key, but a committee it was not dealt to.
        let (fewer, _) = output(3, 1);
        let in_fewer = fewer.iter().next().unwrap().clone();
        assert!(offer(&in_fewer, &bytes, &fewer, digest).is_err());
        let mut later = OutputCollector::new(3);
        assert!(later
            .offer(&m[0], &flipped, &members, &identity, Some(digest))
            .is_err());
        // A member's copy is looked at once: after its forgery, its real copy is not taken.
        assert_eq!(
            later.offer(&m[0], &bytes, &members, &identity, Some(digest)),
            Ok(None)
        );
        assert_eq!(
            later
                .offer(&m[1], &bytes, &members, &identity, Some(digest))
                .unwrap(),
            Some(real.clone())
        );
        // Genesis: f + 1 = 2 members' identical copies; one member twice counts once.
        let mut genesis = OutputCollector::new(0);
        assert_eq!(
            genesis.offer(&m[0], &bytes, &members, &identity, None),
            Ok(None)
        );
        assert_eq!(
            genesis.offer(&m[0], &bytes, &members, &identity, None),
            Ok(None)
        );
        assert_eq!(
            genesis
                .offer(&m[2], &bytes, &members, &identity, None)
                .unwrap(),
            Some(real)
        );
    }

    #[test]
    fn a_follower_asks_only_when_stalled_and_moves_on_from_a_peer_that_gives_nothing() {
        let peers = peers(3);
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let mut follower = Follower::new(10, at(0));
        // Committing: nothing to ask.
        assert!(follower.poll(11, at(1_000), &peers).is_none());
        assert!(follower.poll(11, at(2_999), &peers).is_none());
        // Stalled for STALL: ask someone for the next WINDOW heights.
        let (first, frame) = follower.poll(11, at(3_000), &peers).unwrap();
        assert_eq!(
            frame,
            Frame::Request {
                from: 12,
                count: WINDOW
            }
        );
        let other = peers.iter().find(|p| **p != first).unwrap();
        assert_eq!(follower.take(other, 12), Take::No, "only the peer asked");
        assert_eq!(follower.take(&first, 12), Take::Window);
        assert_eq!(follower.take(&first, 12), Take::No, "one record per height");
        assert_eq!(
            follower.take(&first, 12 + u64::from(WINDOW) - 1),
            Take::Window
        );
        assert_eq!(follower.take(&first, 11), Take::No);
        // One record after the window, once.
        assert_eq!(follower.take(&first, u64::MAX), Take::Tail);
        assert_eq!(follower.take(&first, 12 + u64::from(WINDOW)), Take::No);
        // Not again before ASK_EVERY.
        assert!(follower.poll(11, at(3_100), &peers).is_none());
        // Nothing came: the next peer.
        let (second, _) = follower.poll(11, at(3_500), &peers).unwrap();
        assert_ne!(second, first);
        let whole = 11 + u64::from(WINDOW);
        let part = whole + 6;
        // It answered the whole window: ask again at once, the next peer in turn, from the new
        // height.
        let (third, frame) = follower.poll(whole, at(3_600), &peers).unwrap();
        assert_ne!(third, second);
        assert_ne!(third, first);
        assert_eq!(
            frame,
            Frame::Request {
                from: whole + 1,
                count: WINDOW
            }
        );
        // Part of a window: only after ASK_EVERY.
        assert!(follower.poll(part, at(3_700), &peers).is_none());
        assert!(follower.poll(part, at(4_100), &peers).is_some());
        // A whole round of peers brings nothing: caught up, stop asking.
        assert!(follower.poll(part, at(4_600), &peers).is_some());
        assert!(follower.poll(part, at(5_100), &peers).is_some());
        assert!(follower.poll(part, at(5_600), &peers).is_none());
        assert!(follower.poll(part, at(5_699), &peers).is_none());
        // Stalled again STALL after the last progress.
        assert!(follower.poll(part, at(5_700), &peers).is_some());
        // Nobody to ask: nothing.
        let mut alone = Follower::new(0, at(0));
        assert!(alone.poll(0, at(10_000), &[]).is_none());
    }
}
