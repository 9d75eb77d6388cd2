//! Genesis ceremony and reshares: the committee's BLS12-381 threshold key, generated jointly by
//! the committee, then moved to a new committee at an epoch boundary with the same group key.
//!
//! Every one of the `n = 3f + 1` participants runs one [`Ceremony`]. It is a sans-IO state machine
//! over commonware's Joint-Feldman DKG ([`feldman_desmedt`]): bytes from an authenticated peer go
//! in through [`Ceremony::receive`], bytes to send come out as [`Outgoing`], and the randomness is
//! the caller's. Nobody ever holds the group secret; each node ends with its own [`Share`] and the
//! public [`Sharing`] that simplex's `bls12381_threshold` scheme takes.
//!
//! # Rounds
//!
//! 1. **Dealing.** Each node deals: it sends every other node that node's private evaluation of a
//!    fresh random polynomial, together with the public commitment to the polynomial. A dealing goes
//!    only to the player it is for ([`To::One`]).
//! 2. **Ack.** A node that checks a dealing against its commitment signs an ack and sends it back to
//!    the dealer only.
//! 3. **Log.** A dealer that holds acks from *all* `n` players signs its dealer log and broadcasts it
//!    ([`To::All`]). The primitive would let a dealer finalize earlier and publish ("reveal") the
//!    shares of players that did not ack; genesis never does, because it waits for everyone, so every
//!    accepted log carries `n` acks and no reveals, and a log with reveals is refused.
//! 4. **Echo.** A node holding valid logs from all `n` dealers broadcasts an echo: the digest of the
//!    ordered set of logs it holds. A node completes only once it holds the same digest from all `n`
//!    participants, itself included; it then derives its share from those logs
//!    ([`Player::finalize`]). Any differing echo aborts the ceremony with
//!    [`DkgError::Disagreement`].
//!
//! # Reshare
//!
//! [`Ceremony::reshare`] runs the same four rounds for an epoch boundary: the *dealers* are members
//! of the previous committee that hold a share of it (at least its quorum, n − f), each dealing a
//! polynomial whose constant term is its previous share, and the *players* are the new committee.
//! The group public key (the venue's identity) stays the same; the new shares interpolate only
//! with each other, so a share of the previous epoch (a removed member's included) no longer signs
//! anything the new polynomial verifies. Every dealer is also a player (a member who leaves simply
//! does not deal); a newcomer is a player only. The same unanimity applies, among the players.
//!
//! # Unanimity, on purpose
//!
//! Genesis needs every node online and chooses safety over liveness: a single silent or lying node
//! stalls or aborts the ceremony, and operators rerun it (with a fresh namespace, see
//! [`Ceremony::new`]). In exchange, no node can finish with a key that another honest node does not
//! hold, and no honest share is ever revealed. A node that aborts sends nothing further, so its peers
//! may be left waiting on it; [`Ceremony::status`] says on whom.
//!
//! # Not resumable
//!
//! The ceremony lives in memory. A node that restarts mid-ceremony cannot rejoin: its fresh dealing
//! would contradict the one its peers already acked. Rerun the whole ceremony instead, and persist
//! only the result ([`Completed::encode`]).
//!
//! # Transport
//!
//! `receive` trusts the `from` it is given: the transport must authenticate peers by their ed25519
//! key and keep dealings confidential (commonware-p2p's authenticated, encrypted channels do both).
//! Anything else a peer controls is checked here; every refusal is a typed [`DkgError`] and leaves the
//! ceremony exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;

use bytes::BufMut;

use commonware_codec::{
    Buf, Copying, Decode, Encode, EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write,
};
use commonware_cryptography::{
    bls12381::{
        dkg::feldman_desmedt::{
            self, Dealer, DealerLog, DealerLogSummary, DealerMessageError, DealerPrivMsg,
            DealerPubMsg, Info, Logs, Output, Player, PlayerAck, PlayerAckError, Reveal,
            SignedDealerLog,
        },
        primitives::{
            group::Share,
            sharing::{Mode, ModeVersion, Sharing},
            variant::MinSig,
        },
    },
    ed25519,
    transcript::{Summary, Transcript, Version},
    Signer,
};
use commonware_parallel::Sequential;
use commonware_utils::{ordered::Set, N3f1};
use rand_core::CryptoRng;
use thiserror::Error;

mod completed;
mod error;
mod message;

pub use completed::Completed;
pub use error::DkgError;
use message::Message;

/// A participant's identity: the ed25519 key its transport authenticates.
pub type PublicKey = ed25519::PublicKey;

/// Round number handed to the primitive for genesis; a reshare into epoch `e` is round `e`.
const GENESIS_ROUND: u64 = 0;
/// Domain of the echo digest. Changing it is a breaking change.
const ECHO_NAMESPACE: &[u8] = b"bulwark/dkg/genesis/echo/v1";
/// Domain of the noise that randomizes batch verification of logs at the end.
const VERIFY_NAMESPACE: &[u8] = b"bulwark/dkg/genesis/verify/v1";
/// Format version of [`Completed::encode`].
const COMPLETED_FORMAT: u8 = 1;

/// Where an [`Outgoing`] message must be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    /// Every participant except this node. The ceremony delivers its own messages internally.
    All,
    /// Exactly this participant, and nobody else: dealings carry a private share.
    One(PublicKey),
}

/// Bytes this node must send. Delivery must be reliable: the ceremony never retransmits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipients.
    pub to: To,
    /// The framed message, to hand unchanged to the recipients' [`Ceremony::receive`].
    pub bytes: Vec<u8>,
}

/// The kind of a ceremony message, as named in errors and in the wire tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A dealer's commitment and one player's private share.
    Dealing = 0,
    /// A player's signed acknowledgement of a dealing.
    Ack = 1,
    /// A dealer's signed log of acks.
    Log = 2,
    /// A node's digest of the full set of logs it holds.
    Echo = 3,
}

/// Coarse progress of a ceremony.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Exchanging dealings and acks.
    Dealing,
    /// Own dealing fully acked; collecting every dealer's log.
    Logs,
    /// Own echo sent; collecting every participant's echo.
    Echoes,
    /// Done: [`Ceremony::completed`] holds the key.
    Completed,
    /// Ended without a key; `receive` returns the reason.
    Aborted,
}

/// A snapshot of what the ceremony holds and whom it waits for, for progress output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Coarse progress.
    pub stage: Stage,
    /// Committee size `n` (the players).
    pub participants: usize,
    /// Dealers in this round (`n` at genesis; the continuing members in a reshare).
    pub dealers: usize,
    /// Dealings accepted (as a player), own included.
    pub dealings: usize,
    /// Acks accepted for own dealing, own included.
    pub acks: usize,
    /// Dealer logs accepted, own included.
    pub logs: usize,
    /// Echoes held, own included.
    pub echoes: usize,
    /// Participants whose message for the current stage is still missing.
    pub waiting_on: Vec<PublicKey>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, d) = (self.participants, self.dealers);
        write!(
            f,
            "stage={:?} dealings={}/{d} acks={}/{n} logs={}/{d} echoes={}/{n}",
            self.stage, self.dealings, self.acks, self.logs, self.echoes
        )?;
        if !self.waiting_on.is_empty() {
            write!(f, " waiting_on=[")?;
            for (i, key) in self.waiting_on.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                write!(f, "{sep}{key}")?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

/// Why a ceremony ended without a key; kept so every later `receive` reports it again.
#[derive(Clone, Debug)]
enum Abort {
    Disagreement {
        peer: Box<PublicKey>,
        ours: [u8; 32],
        theirs: [u8; 32],
    },
    Finalize(String),
}

impl Abort {
    fn error(&self) -> DkgError {
        match self {
            Self::Disagreement { peer, ours, theirs } => DkgError::Disagreement {
                peer: peer.clone(),
                ours: *ours,
                theirs: *theirs,
            },
            Self::Finalize(reason) => DkgError::Finalize {
                reason: reason.clone(),
            },
        }
    }
}

/// Who takes part in one round of the primitive.
struct Round {
    number: u64,
    previous: Option<Output<MinSig, PublicKey>>,
    dealers: Set<PublicKey>,
    players: Set<PublicKey>,
}

/// Whether the ceremony is still running, and how it ended.
enum Outcome {
    Running,
    Completed(Box<Completed>),
    Aborted(Abort),
}

/// One node's side of the genesis key ceremony. See the module docs for the protocol.
pub struct Ceremony {
    namespace: Vec<u8>,
    round: u64,
    me: PublicKey,
    /// The players: the committee this round produces shares for.
    participants: Set<PublicKey>,
    /// Who deals: all participants at genesis, the continuing members in a reshare.
    dealers: Set<PublicKey>,
    n: NonZeroU32,
    max_message_bytes: usize,
    info: Info<MinSig, PublicKey>,
    /// Own dealer, until it holds every ack and signs its log (never, for a newcomer).
    dealer: Option<Dealer<MinSig, ed25519::PrivateKey>>,
    /// Players whose ack of own dealing was accepted.
    acks: BTreeSet<PublicKey>,
    /// Own player, until it derives the share.
    player: Option<Player<MinSig, ed25519::PrivateKey>>,
    /// Dealers whose dealing own player accepted.
    dealings: BTreeSet<PublicKey>,
    logs: BTreeMap<PublicKey, DealerLog<MinSig, PublicKey>>,
    /// Own echo, once every log is held.
    echo: Option<Summary>,
    /// Echoes held, own included.
    echoes: BTreeMap<PublicKey, Summary>,
    /// Drawn from the caller's rng at start; seeds the batch-verification noise at the end.
    verify_seed: [u8; 32],
    outcome: Outcome,
}

impl fmt::Debug for Ceremony {
    // Dealers and players hold secrets; show only identity and progress.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ceremony")
            .field("me", &self.me)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

fn participant_count(participants: &Set<PublicKey>) -> Result<NonZeroU32, DkgError> {
    u32::try_from(participants.len())
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| DkgError::Setup {
            reason: format!("unusable participant count {}", participants.len()),
        })
}

impl Ceremony {
    /// Starts this node's side of the genesis ceremony and returns the dealings to send.
    ///
    /// `namespace` separates this ceremony from every other: all participants must pass the same
    /// bytes, and a rerun after an aborted attempt must use new bytes (e.g. append an attempt
    /// counter), or the peers' old messages would still verify. `participants` is the whole
    /// committee, `me` included. `rng` must be a cryptographic generator; the ceremony draws all
    /// its randomness here, so the same rng state reproduces the same messages.
    pub fn new(
        namespace: &[u8],
        me: ed25519::PrivateKey,
        participants: Set<PublicKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<Outgoing>), DkgError> {
        let round = Round {
            number: GENESIS_ROUND,
            previous: None,
            dealers: participants.clone(),
            players: participants,
        };
        Self::start(namespace, round, None, me, rng)
    }

    /// Starts this node's side of a reshare into `epoch` (at least 1) and returns the dealings to
    /// send.
    ///
    /// `previous` is the committee output of the epoch that ends (public: a newcomer takes it
    /// from the log); `share` is this node's share of it, needed when it deals. `dealers` are the
    /// members of the previous committee that deal (at least its quorum), every one of them also
    /// in `players`, the new committee. Use the namespace of genesis: the epoch and the previous
    /// output separate reshares from each other and from genesis.
    #[allow(clippy::too_many_arguments)]
    pub fn reshare(
        namespace: &[u8],
        epoch: u64,
        previous: Output<MinSig, PublicKey>,
        share: Option<Share>,
        me: ed25519::PrivateKey,
        dealers: Set<PublicKey>,
        players: Set<PublicKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<Outgoing>), DkgError> {
        if epoch == GENESIS_ROUND {
            return Err(DkgError::Setup {
                reason: "a reshare is into epoch 1 or later; epoch 0 is genesis".into(),
            });
        }
        if let Some(leaving) = dealers.iter().find(|d| players.position(d).is_none()) {
            return Err(DkgError::Setup {
                reason: format!(
                    "dealer {leaving} is not in the new committee: a member who leaves does not deal"
                ),
            });
        }
        let round = Round {
            number: epoch,
            previous: Some(previous),
            dealers,
            players,
        };
        Self::start(namespace, round, share, me, rng)
    }

    fn start(
        namespace: &[u8],
        round: Round,
        share: Option<Share>,
        me: ed25519::PrivateKey,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<Outgoing>), DkgError> {
        let Round {
            number,
            previous,
            dealers,
            players: participants,
        } = round;
        let me_public = me.public_key();
        if participants.position(&me_public).is_none() {
            return Err(DkgError::NotParticipant {
                me: Box::new(me_public),
            });
        }
        let n = participant_count(&participants)?;
        let setup = |e: feldman_desmedt::Error| DkgError::Setup {
            reason: e.to_string(),
        };
        let info = Info::new::<N3f1>(
            namespace,
            number,
            previous,
            Mode::NonZeroCounter,
            Reveal::V1,
            dealers.clone(),
            participants.clone(),
        )
        .map_err(setup)?;
        let mut player = Player::new(info.clone(), me.clone()).map_err(setup)?;
        let mut out = Vec::new();
        let mut acks = BTreeSet::new();
        let mut dealings = BTreeSet::new();
        let dealer = if dealers.position(&me_public).is_some() {
            let (mut dealer, commitment, shares) =
                Dealer::start::<N3f1>(&mut *rng, info.clone(), me, share).map_err(setup)?;
            let mut own_share = None;
            for (to, share) in shares {
                if to == me_public {
                    own_share = Some(share);
                } else {
                    let dealing = Message::Dealing {
                        commitment: commitment.clone(),
                        share,
                    };
                    out.push(dealing.to(To::One(to)));
                }
            }
            let own_share =
                own_share.expect("Dealer::start must deal to every player, this node too");
            let own_ack = player
                .dealer_message::<N3f1>(me_public.clone(), commitment, own_share)
                .expect("own dealing must verify against own commitment")
                .expect("own dealing must be the first dealing from this dealer");
            dealer
                .receive_player_ack(me_public.clone(), own_ack)
                .expect("own ack must verify for own dealing");
            acks.insert(me_public.clone());
            dealings.insert(me_public.clone());
            Some(dealer)
        } else {
            None
        };
        let mut verify_seed = [0u8; 32];
        rng.fill_bytes(&mut verify_seed);

        let mut ceremony = Self {
            namespace: namespace.to_vec(),
            round: number,
            me: me_public,
            participants,
            dealers,
            n,
            max_message_bytes: Message::max_size(n),
            info,
            dealer,
            acks,
            player: Some(player),
            dealings,
            logs: BTreeMap::new(),
            echo: None,
            echoes: BTreeMap::new(),
            verify_seed,
            outcome: Outcome::Running,
        };
        // A committee of one needs no peer: it completes right here.
        ceremony.advance(&mut out)?;
        Ok((ceremony, out))
    }

    /// Handles `bytes` received from participant `from` and returns what to send in response.
    ///
    /// `from` must be authenticated by the transport. A refused message returns an error and
    /// changes nothing. Once the ceremony has ended, every call returns [`DkgError::Concluded`] or
    /// the reason it aborted.
    pub fn receive(&mut self, from: &PublicKey, bytes: &[u8]) -> Result<Vec<Outgoing>, DkgError> {
        match &self.outcome {
            Outcome::Running => {}
            Outcome::Completed(_) => return Err(DkgError::Concluded),
            Outcome::Aborted(abort) => return Err(abort.error()),
        }
        if *from == self.me {
            return Err(DkgError::FromSelf);
        }
        if self.participants.position(from).is_none() {
            return Err(DkgError::UnknownSender {
                from: Box::new(from.clone()),
            });
        }
        if bytes.len() > self.max_message_bytes {
            return Err(DkgError::Oversized {
                from: Box::new(from.clone()),
                len: bytes.len(),
                max: self.max_message_bytes,
            });
        }
        let message =
            Message::decode_cfg(Copying(bytes), &self.n).map_err(|source| DkgError::Malformed {
                from: Box::new(from.clone()),
                source,
            })?;
        let duplicate = |kind| DkgError::Duplicate {
            from: Box::new(from.clone()),
            kind,
        };

        if !self.in_role(from, &message) {
            return Err(DkgError::NotInRole {
                from: Box::new(from.clone()),
                kind: message.kind(),
            });
        }
        let mut out = Vec::new();
        match message {
            Message::Dealing { commitment, share } => {
                if self.dealings.contains(from) {
                    return Err(duplicate(Kind::Dealing));
                }
                let player = self
                    .player
                    .as_mut()
                    .expect("player must exist while the ceremony runs");
                // The primitive leaves the player untouched when it refuses a dealing.
                match player.dealer_message::<N3f1>(from.clone(), commitment, share) {
                    Ok(Some(ack)) => {
                        self.dealings.insert(from.clone());
                        out.push(Message::Ack(ack).to(To::One(from.clone())));
                    }
                    Ok(None) => return Err(duplicate(Kind::Dealing)),
                    Err(source) => {
                        return Err(DkgError::InvalidDealing {
                            from: Box::new(from.clone()),
                            source,
                        });
                    }
                }
            }
            Message::Ack(ack) => {
                // Once the dealer has signed its log every participant has acked, so any ack
                // arriving then is a repeat.
                let Some(dealer) = self.dealer.as_mut() else {
                    return Err(duplicate(Kind::Ack));
                };
                if self.acks.contains(from) {
                    return Err(duplicate(Kind::Ack));
                }
                dealer
                    .receive_player_ack(from.clone(), ack)
                    .map_err(|source| DkgError::InvalidAck {
                        from: Box::new(from.clone()),
                        source,
                    })?;
                self.acks.insert(from.clone());
            }
            Message::Log(signed) => {
                if self.logs.contains_key(from) {
                    return Err(duplicate(Kind::Log));
                }
                let (signer, log) =
                    signed
                        .check(&self.info)
                        .ok_or_else(|| DkgError::InvalidLogSignature {
                            from: Box::new(from.clone()),
                        })?;
                if signer != *from {
                    return Err(DkgError::WrongSender {
                        from: Box::new(from.clone()),
                        signer: Box::new(signer),
                    });
                }
                if !self.is_complete(&log) {
                    return Err(DkgError::IncompleteLog {
                        from: Box::new(from.clone()),
                    });
                }
                self.logs.insert(signer, log);
            }
            Message::Echo(digest) => {
                if self.echoes.contains_key(from) {
                    return Err(duplicate(Kind::Echo));
                }
                self.echoes.insert(from.clone(), digest);
            }
        }
        self.advance(&mut out)?;
        Ok(out)
    }

    /// The key material, once every participant has echoed the same logs.
    pub fn completed(&self) -> Option<&Completed> {
        match &self.outcome {
            Outcome::Completed(completed) => Some(completed),
            Outcome::Running | Outcome::Aborted(_) => None,
        }
    }

    /// What the ceremony holds and whom it is waiting for.
    pub fn status(&self) -> Status {
        let missing = |have: &dyn Fn(&PublicKey) -> bool| -> Vec<PublicKey> {
            self.participants
                .iter()
                .filter(|p| !have(p))
                .cloned()
                .collect()
        };
        let (stage, waiting_on) = match &self.outcome {
            Outcome::Completed(_) => (Stage::Completed, Vec::new()),
            Outcome::Aborted(_) => (Stage::Aborted, Vec::new()),
            Outcome::Running if self.echo.is_some() => {
                (Stage::Echoes, missing(&|p| self.echoes.contains_key(p)))
            }
            Outcome::Running
                if self.dealer.is_some() || self.dealings.len() < self.dealers.len() =>
            {
                let dealing_missing = |p: &PublicKey| {
                    self.dealers.position(p).is_some() && !self.dealings.contains(p)
                };
                let ack_missing = |p: &PublicKey| self.dealer.is_some() && !self.acks.contains(p);
                (
                    Stage::Dealing,
                    missing(&|p| !dealing_missing(p) && !ack_missing(p)),
                )
            }
            Outcome::Running => (
                Stage::Logs,
                missing(&|p| self.dealers.position(p).is_none() || self.logs.contains_key(p)),
            ),
        };
        Status {
            stage,
            participants: self.n(),
            dealers: self.dealers.len(),
            dealings: self.dealings.len(),
            acks: self.acks.len(),
            logs: self.logs.len(),
            echoes: self.echoes.len(),
            waiting_on,
        }
    }

    fn n(&self) -> usize {
        self.participants.len()
    }

    /// Whether `from`'s role in this round sends `message` to this node: dealings come from
    /// dealers, acks from players to a dealer, logs from dealers; every participant echoes.
    fn in_role(&self, from: &PublicKey, message: &Message) -> bool {
        let dealer = |p: &PublicKey| self.dealers.position(p).is_some();
        match message {
            Message::Dealing { .. } | Message::Log(_) => dealer(from),
            Message::Ack(_) => dealer(&self.me),
            Message::Echo(_) => true,
        }
    }

    /// A log genesis accepts: results for every participant, all of them acks.
    fn is_complete(&self, log: &DealerLog<MinSig, PublicKey>) -> bool {
        match log.summary() {
            DealerLogSummary::Ok { acks, reveals } => {
                reveals.is_empty() && acks == self.participants
            }
            DealerLogSummary::TooManyReveals => false,
        }
    }

    /// Digest of the held logs, in dealer order, bound to this ceremony's namespace (and, for a
    /// reshare, its epoch).
    fn digest(&self) -> Summary {
        let mut transcript = Transcript::new(ECHO_NAMESPACE, Version::V1);
        transcript.commit(self.namespace.as_slice());
        if self.round != GENESIS_ROUND {
            transcript.commit(self.round.to_be_bytes().as_slice());
        }
        for (dealer, log) in &self.logs {
            transcript.commit(dealer.encode());
            transcript.commit(log.encode());
        }
        transcript.summarize()
    }

    /// Takes every step the held messages allow, appending what to send to `out`.
    fn advance(&mut self, out: &mut Vec<Outgoing>) -> Result<(), DkgError> {
        let n = self.n();
        if self.acks.len() == n {
            if let Some(dealer) = self.dealer.take() {
                let signed = dealer.finalize::<N3f1>();
                let (signer, log) = signed
                    .clone()
                    .check(&self.info)
                    .expect("own signed log must verify");
                self.logs.insert(signer, log);
                out.push(Message::Log(signed).to(To::All));
            }
        }
        if self.echo.is_none() && self.logs.len() == self.dealers.len() {
            let digest = self.digest();
            self.echo = Some(digest);
            self.echoes.insert(self.me.clone(), digest);
            out.push(Message::Echo(digest).to(To::All));
        }
        let Some(ours) = self.echo else {
            return Ok(());
        };
        if let Some((peer, theirs)) = self.echoes.iter().find(|(_, d)| **d != ours) {
            let abort = Abort::Disagreement {
                peer: Box::new(peer.clone()),
                ours: summary_bytes(&ours),
                theirs: summary_bytes(theirs),
            };
            return Err(self.abort(abort));
        }
        if self.echoes.len() == n {
            self.finalize(ours)?;
        }
        Ok(())
    }

    fn abort(&mut self, abort: Abort) -> DkgError {
        let error = abort.error();
        self.outcome = Outcome::Aborted(abort);
        error
    }

    /// Derives the share from the logs everyone echoed.
    fn finalize(&mut self, agreed: Summary) -> Result<(), DkgError> {
        let player = self
            .player
            .take()
            .expect("player must exist until the ceremony ends");
        let mut logs = Logs::<MinSig, PublicKey, N3f1>::new(self.info.clone());
        for (dealer, log) in &self.logs {
            logs.record(dealer.clone(), log.clone());
        }
        let mut noise = Transcript::new(VERIFY_NAMESPACE, Version::V1);
        noise.commit(self.verify_seed.as_slice());
        let mut rng = noise.noise(b"finalize");
        match player.finalize::<N3f1>(&mut rng, logs, &Sequential) {
            Ok((output, share)) => {
                self.outcome = Outcome::Completed(Box::new(Completed {
                    output,
                    share,
                    transcript: summary_bytes(&agreed),
                }));
                Ok(())
            }
            Err(e) => Err(self.abort(Abort::Finalize(e.to_string()))),
        }
    }
}

fn summary_bytes(summary: &Summary) -> [u8; 32] {
    <[u8; 32]>::try_from(summary.as_ref()).expect("a transcript summary must be 32 bytes")
}

#[cfg(test)]
mod tests;
