//! Quorum-certified oracle prices: signed observations, the oracle committee, the round rules,
//! the guards that pause liquidations on a doubtful price, and fault evidence.
//!
//! # Flow
//!
//! Each committee node observes its venues and signs an [`Observation`] (feed, round, price,
//! confidence, time, number of venue sources) under [`OBSERVATION_NAMESPACE`]. The block proposer
//! collects them into one [`crate::command::SystemCommand::OracleRound`] per feed and round. The
//! node calls [`verify_oracle_round`] on a proposed round before handing the block to the engine
//! (as it calls [`crate::codec::verify_batch`] for client transactions), and the engine applies
//! the round: it re-checks every rule (membership, duplicates, feed and round, value ranges,
//! observation age, quorum of `2f + 1`), aggregates by median with a Pyth-style confidence
//! ([`aggregate`]), clamps the move, updates the index and the guards, and records fault evidence.
//!
//! # Does the engine verify signatures?
//!
//! Yes: the engine checks each observation's signature (`verify_strict`, one at a time) after the
//! cheap structural checks passed. A round carries at most [`ORACLE_ROUND_OBSERVATIONS_MAX`]
//! observations (in practice `n ≤ 31`), and rounds arrive about once a second per feed, against
//! thousands of client orders per block, so this costs well under a millisecond per second of
//! venue time (see `bulwark bench oracle`). In exchange, invariant 4 ("no price with fewer than
//! 2f+1 member signatures") holds inside the replicated state machine itself, and any verifier that
//! replays the block log gets it without trusting the node's pre-check. The check sits in the
//! system-command path, never in the order-matching path. Single verification (not a batch
//! equation) is used so that acceptance never depends on how observations were grouped.
//!
//! # Guards
//!
//! Per underlying, each [`GuardKind`] opens when its condition trips and closes only by rule,
//! after [`OracleConfig::healthy_rounds_to_close`] consecutive certified rounds in which its
//! condition did not trip. While any guard of an underlying is open, on that underlying's
//! instruments: accounts holding a position there are not liquidated, the insurance fund does not
//! unwind there, new orders that are not reduce-only are refused with
//! [`crate::event::RejectReason::OracleGuardOpen`], amends other than a size reduction are refused,
//! and withdrawals by accounts with a position there are refused. Cancels and reduce-only orders
//! continue. Stops on those instruments are not triggered (they rest, report
//! [`crate::event::Event::StopHeld`], and trigger by rule once every guard has closed; see
//! [`crate::stops`]), and funding on those perpetuals is skipped (see [`crate::mark`]).
//!
//! With no committee configured ([`OracleConfig::members`] empty, the default) none of this
//! applies: the unsigned [`crate::command::SystemCommand::IndexPrice`] is the development path. With
//! a committee, unsigned index prices are refused.

pub mod aggregate;
mod round;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use aggregate::{aggregate, Aggregate};

/// The signing namespace of oracle observations. Part of the protocol: changing it invalidates
/// every signature.
pub const OBSERVATION_NAMESPACE: &[u8] = b"bulwark/oracle/observation/v1";

/// Most oracle committee members (and so most observations in one round).
pub const ORACLE_MEMBERS_MAX: usize = 64;

/// Most observations one [`crate::command::SystemCommand::OracleRound`] may carry.
pub const ORACLE_ROUND_OBSERVATIONS_MAX: usize = ORACLE_MEMBERS_MAX;

/// Most fault-evidence records the engine keeps; the oldest is dropped (and counted) beyond it.
pub const FAULT_RECORDS_MAX: usize = 256;

/// The largest index or observed price, micros: bounded so that notional arithmetic cannot
/// overflow.
pub const PRICE_MICROS_MAX: i64 = 1_000_000_000_000_000;

const BPS: i128 = 10_000;

/// What one oracle node saw for one feed in one round. The signature covers
/// [`OBSERVATION_NAMESPACE`], the frame version byte and these fields in declaration order
/// (see [`crate::codec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Observation {
    /// The feed: the engine's underlying index.
    pub feed: u16,
    /// The round number; certified rounds of a feed strictly increase.
    pub round: u64,
    /// The node's price, micros per unit of underlying.
    pub price_micros: i64,
    /// The node's confidence half-width, micros (0 ≤ confidence ≤ price).
    pub confidence_micros: i64,
    /// When the node formed it, milliseconds on the venue's clock.
    pub time_ms: u64,
    /// How many fresh venue sources the node's price rests on (at least 1).
    pub sources: u8,
}

/// An [`Observation`] signed by a committee member's Ed25519 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedObservation {
    /// The signer's public key; must be a current member to count.
    pub node: [u8; 32],
    /// What it saw.
    pub observation: Observation,
    /// Ed25519 signature (`R || s`) over the observation's signed message.
    #[serde(with = "signature_serde")]
    pub signature: [u8; 64],
}

impl SignedObservation {
    /// Signs `observation` with `key`.
    pub fn sign(observation: Observation, key: &ed25519_dalek::SigningKey) -> SignedObservation {
        use ed25519_dalek::Signer;
        let signature = key.sign(&observation.signed_message()).to_bytes();
        SignedObservation {
            node: key.verifying_key().to_bytes(),
            observation,
            signature,
        }
    }

    /// Checks the signature under `node` (strict verification: no malleable or small-order
    /// inputs). Opaque on failure.
    pub fn verify(&self) -> Result<(), BadSignature> {
        bulwark_sentinel::verify_strict(
            &self.node,
            &self.observation.signed_message(),
            &self.signature,
        )
        .map_err(|_| BadSignature)
    }
}

/// Two different observations one member signed for the same feed and round. A member observes
/// once per round, so this shows it told different members different prices: evidence that
/// convicts on its own (`bulwark_sentinel::SelfProof`), whoever reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleEquivocation {
    /// One observation.
    pub first: SignedObservation,
    /// Another, for the same feed and round.
    pub second: SignedObservation,
}

impl bulwark_sentinel::SelfProof for OracleEquivocation {
    fn kind(&self) -> &'static str {
        "oracle-equivocation"
    }

    fn check(&self, accused: &[u8; 32]) -> Result<(), bulwark_sentinel::accusation::ProofError> {
        use bulwark_sentinel::accusation::ProofError;
        for part in [&self.first, &self.second] {
            if &part.node != accused {
                return Err(ProofError::NotTheAccused {
                    signer: hex_key(&part.node),
                });
            }
        }
        let (a, b) = (&self.first.observation, &self.second.observation);
        if a.feed != b.feed || a.round != b.round {
            return Err(ProofError::NoConflict(
                "observations for different feeds or rounds",
            ));
        }
        if a == b {
            return Err(ProofError::NoConflict("the same observation twice"));
        }
        for part in [&self.first, &self.second] {
            part.verify().map_err(|_| ProofError::BadSignature)?;
        }
        Ok(())
    }
}

fn hex_key(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signature did not verify (deliberately opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the observation's signature does not verify")]
pub struct BadSignature;

/// The oracle committee and the guard parameters. Part of [`crate::EngineConfig`], so part of
/// the state root. `members` are the genesis seats; when they are the sentinel's committee, who
/// holds them follows its epoch changes ([`OracleRoster`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OracleConfig {
    /// Members' Ed25519 public keys, distinct. Empty: no committee, unsigned index prices.
    pub members: Vec<[u8; 32]>,
    /// Byzantine members tolerated; `members.len() ≥ 3f + 1`, and a round needs `2f + 1`.
    pub f: u32,
    /// Per-round clamp: the index moves at most this many basis points per certified round.
    pub clamp_bps: u32,
    /// Jump breaker: the aggregate may differ from the index EMA by at most this many bps.
    pub jump_bps: u32,
    /// Time constant of the index EMA the jump breaker compares against, milliseconds.
    pub jump_ema_ms: u64,
    /// Staleness: the guard opens when no round was certified for longer than this, ms.
    pub stale_ms: u64,
    /// An observation older than this (against the batch time) is out of range, ms.
    pub observation_age_max_ms: u64,
    /// An observation from further in the future than this is out of range, ms.
    pub observation_skew_max_ms: u64,
    /// The median number of venue sources behind the observations must be at least this.
    pub sources_min: u8,
    /// The aggregate confidence may be at most this many bps of the price.
    pub confidence_max_bps: u32,
    /// A guard closes after this many consecutive healthy certified rounds.
    pub healthy_rounds_to_close: u32,
    /// A member's observation further than this many bps from the aggregate is deviant.
    pub fault_deviation_bps: u32,
    /// Deviant in this many consecutive rounds of a feed produces fault evidence.
    pub fault_rounds: u32,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            members: Vec::new(),
            f: 0,
            clamp_bps: 50,
            jump_bps: 500,
            jump_ema_ms: 10_000,
            stale_ms: 5_000,
            observation_age_max_ms: 5_000,
            observation_skew_max_ms: 1_000,
            sources_min: 2,
            confidence_max_bps: 100,
            healthy_rounds_to_close: 3,
            fault_deviation_bps: 100,
            fault_rounds: 10,
        }
    }
}

impl OracleConfig {
    /// Whether a committee is configured (else the unsigned development path applies).
    pub fn enabled(&self) -> bool {
        !self.members.is_empty()
    }

    /// Signatures a round needs: `2f + 1`.
    pub fn quorum(&self) -> usize {
        2 * self.f as usize + 1
    }

    /// Checks the committee and the guard parameters.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !self.enabled() {
            return Ok(());
        }
        if self.members.len() > ORACLE_MEMBERS_MAX {
            return Err("oracle committee larger than ORACLE_MEMBERS_MAX");
        }
        if self.members.len() < 3 * self.f as usize + 1 {
            return Err("oracle committee needs at least 3f + 1 members");
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].contains(m) {
                return Err("oracle committee members must be distinct");
            }
            match VerifyingKey::from_bytes(m) {
                Ok(key) if !key.is_weak() => {}
                _ => return Err("oracle committee member is not a usable Ed25519 key"),
            }
        }
        if self.clamp_bps == 0
            || self.clamp_bps > 10_000
            || self.jump_bps == 0
            || self.jump_ema_ms == 0
            || self.stale_ms == 0
            || self.observation_age_max_ms == 0
            || self.sources_min == 0
            || self.confidence_max_bps == 0
            || self.healthy_rounds_to_close == 0
            || self.fault_deviation_bps == 0
            || self.fault_rounds == 0
        {
            return Err("oracle bounds, windows and counts must be positive");
        }
        Ok(())
    }
}

/// Why a proposed oracle round was refused by [`verify_oracle_round`]. Indices are positions in
/// the observation slice. The engine refuses the same rounds with the matching
/// [`crate::event::RejectReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OracleRoundError {
    /// No committee is configured; index prices come unsigned.
    #[error("no oracle committee is configured")]
    NotConfigured,
    /// More observations than [`ORACLE_ROUND_OBSERVATIONS_MAX`].
    #[error("{count} observations exceed the limit of {max}")]
    TooMany {
        /// Observations given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An observation is for another feed or round than the command's.
    #[error("observation {0} is for another feed or round")]
    WrongRound(usize),
    /// The signer is not a current committee member.
    #[error("observation {0} is not signed by a committee member")]
    NotMember(usize),
    /// A member signed twice in the round.
    #[error("observation {0} repeats a signer")]
    Duplicate(usize),
    /// Price, confidence or source count out of range.
    #[error("observation {0} has an out-of-range price, confidence or source count")]
    OutOfRange(usize),
    /// Fewer than `2f + 1` distinct members.
    #[error("{count} distinct signers, {needed} needed")]
    QuorumNotMet {
        /// Distinct valid signers.
        count: usize,
        /// `2f + 1`.
        needed: usize,
    },
    /// These signatures (ascending indices) do not verify.
    #[error("the signatures of observations {0:?} do not verify")]
    BadSignatures(Vec<usize>),
}

/// Who holds each seat of the oracle committee, and how many signatures a round needs.
///
/// The genesis fills the seats with [`OracleConfig::members`], in order. When the oracle
/// committee is the sentinel's committee (as every genesis bulwark writes makes it), the seats
/// follow its membership: a member removed at an epoch change leaves its seat vacant, and a
/// newcomer admitted into the committee takes a vacant seat, so that the committee that
/// finalizes blocks is also the one that certifies prices ([`OracleRoster::following`]). The
/// quorum stays `2f + 1` of the genesis seats whoever holds them: a vacant seat counts against
/// it, never for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleRoster {
    seats: Vec<Option<[u8; 32]>>,
    quorum: usize,
}

impl OracleRoster {
    /// The genesis seats: every configured member in its own seat.
    pub fn genesis(config: &OracleConfig) -> Self {
        OracleRoster {
            seats: config.members.iter().copied().map(Some).collect(),
            quorum: config.quorum(),
        }
    }

    /// The seats of the committee whose current members are `members` (the sentinel's
    /// membership, of which the genesis seats `config.members` were the first members): each
    /// genesis member still in `members` keeps its seat; the others' seats are vacant, and the
    /// members that were not in the genesis take the vacant seats in seat order, in ascending
    /// key order. A pure function of its arguments, so every replica computes the same seats.
    /// Members beyond the vacant seats (which the sentinel's "never more members than seats"
    /// rule excludes) get none.
    pub fn following(config: &OracleConfig, members: &[[u8; 32]]) -> Self {
        let mut seats: Vec<Option<[u8; 32]>> = config
            .members
            .iter()
            .map(|m| members.contains(m).then_some(*m))
            .collect();
        let mut newcomers: Vec<[u8; 32]> = members
            .iter()
            .filter(|m| !config.members.contains(m))
            .copied()
            .collect();
        newcomers.sort_unstable();
        newcomers.dedup();
        let mut newcomers = newcomers.into_iter();
        for seat in seats.iter_mut().filter(|s| s.is_none()) {
            match newcomers.next() {
                Some(key) => *seat = Some(key),
                None => break,
            }
        }
        OracleRoster {
            seats,
            quorum: config.quorum(),
        }
    }

    /// The seat `node` holds, if any.
    pub fn seat_of(&self, node: &[u8; 32]) -> Option<usize> {
        self.seats.iter().position(|s| s.as_ref() == Some(node))
    }

    /// Who holds seat `seat` (`None`: vacant or beyond the seats).
    pub fn holder(&self, seat: usize) -> Option<&[u8; 32]> {
        self.seats.get(seat).and_then(Option::as_ref)
    }

    /// Seats, held or vacant.
    pub fn seats(&self) -> usize {
        self.seats.len()
    }

    /// Seats held.
    pub fn held(&self) -> usize {
        self.seats.iter().flatten().count()
    }

    /// Signatures a round needs: `2f + 1` of the genesis seats.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Whether a committee is configured at all.
    pub fn enabled(&self) -> bool {
        !self.seats.is_empty()
    }
}

/// Checks a proposed round without engine state against the genesis seats
/// ([`OracleRoster::genesis`]); see [`verify_oracle_round_in`], which a replica calls with the
/// parent state's seats.
pub fn verify_oracle_round(
    config: &OracleConfig,
    underlying: u16,
    round: u64,
    observations: &[SignedObservation],
) -> Result<Vec<usize>, OracleRoundError> {
    verify_oracle_round_in(
        &OracleRoster::genesis(config),
        underlying,
        round,
        observations,
    )
}

/// Checks a proposed round without engine state: committee configured, bounded count, feed and
/// round of each observation, seat holders of `roster`, no duplicate signer, value ranges, a
/// quorum of `2f + 1`, and every signature (one Ed25519 batch equation; on failure each is
/// checked alone to name the culprits). The engine additionally checks the round against the
/// last certified one and each observation's age against the batch time.
///
/// Returns the seat of each observation, in order.
///
/// The engine verifies each signature alone (`verify_strict`). The two agree on every signature
/// except one that its own signer deliberately malformed (a torsion component or a non-canonical
/// `R`), which a batch equation may accept and the engine refuses; a proposer that keeps only
/// observations passing [`SignedObservation::verify`] (as `bulwark_oracle::proposer` does) never
/// proposes such a round.
pub fn verify_oracle_round_in(
    roster: &OracleRoster,
    underlying: u16,
    round: u64,
    observations: &[SignedObservation],
) -> Result<Vec<usize>, OracleRoundError> {
    let members = check_round(roster, underlying, round, observations)?;
    let mut keys = Vec::with_capacity(observations.len());
    for (i, o) in observations.iter().enumerate() {
        match VerifyingKey::from_bytes(&o.node) {
            Ok(k) if !k.is_weak() => keys.push(k),
            _ => return Err(OracleRoundError::BadSignatures(vec![i])),
        }
    }
    let messages: Vec<Vec<u8>> = observations
        .iter()
        .map(|o| o.observation.signed_message())
        .collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<Signature> = observations
        .iter()
        .map(|o| Signature::from_bytes(&o.signature))
        .collect();
    if ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok() {
        return Ok(members);
    }
    let bad: Vec<usize> = observations
        .iter()
        .enumerate()
        .filter(|(_, o)| o.verify().is_err())
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() {
        // Every signature verifies alone (strictly); the batch equation refused a deliberately
        // malformed encoding. The engine verifies one at a time and would accept, so accept.
        return Ok(members);
    }
    Err(OracleRoundError::BadSignatures(bad))
}

/// The structural rules shared by [`verify_oracle_round_in`] and the engine; returns the seat
/// of each observation.
pub(crate) fn check_round(
    roster: &OracleRoster,
    underlying: u16,
    round: u64,
    observations: &[SignedObservation],
) -> Result<Vec<usize>, OracleRoundError> {
    if !roster.enabled() {
        return Err(OracleRoundError::NotConfigured);
    }
    if observations.len() > ORACLE_ROUND_OBSERVATIONS_MAX {
        return Err(OracleRoundError::TooMany {
            count: observations.len(),
            max: ORACLE_ROUND_OBSERVATIONS_MAX,
        });
    }
    let mut seen = [false; ORACLE_MEMBERS_MAX];
    let mut members = Vec::with_capacity(observations.len());
    for (i, o) in observations.iter().enumerate() {
        let obs = &o.observation;
        if obs.feed != underlying || obs.round != round {
            return Err(OracleRoundError::WrongRound(i));
        }
        let m = roster
            .seat_of(&o.node)
            .filter(|m| *m < ORACLE_MEMBERS_MAX)
            .ok_or(OracleRoundError::NotMember(i))?;
        if seen[m] {
            return Err(OracleRoundError::Duplicate(i));
        }
        seen[m] = true;
        if obs.price_micros <= 0
            || obs.price_micros > PRICE_MICROS_MAX
            || obs.confidence_micros < 0
            || obs.confidence_micros > obs.price_micros
            || obs.sources == 0
        {
            return Err(OracleRoundError::OutOfRange(i));
        }
        members.push(m);
    }
    if members.len() < roster.quorum() {
        return Err(OracleRoundError::QuorumNotMet {
            count: members.len(),
            needed: roster.quorum(),
        });
    }
    Ok(members)
}

/// A guard that pauses liquidations and risk-increasing orders on one underlying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuardKind {
    /// No round certified within `stale_ms` (observed: age in ms).
    Stale,
    /// The aggregate moved beyond the per-round clamp, so the index lags it (observed: bps).
    Clamp,
    /// The aggregate is beyond `jump_bps` from the index EMA (observed: bps).
    Jump,
    /// The median observation rests on fewer than `sources_min` venues (observed: sources).
    Sources,
    /// The aggregate confidence is wider than `confidence_max_bps` (observed: bps).
    Confidence,
}

impl GuardKind {
    /// Every guard, in state order.
    pub const ALL: [GuardKind; 5] = [
        GuardKind::Stale,
        GuardKind::Clamp,
        GuardKind::Jump,
        GuardKind::Sources,
        GuardKind::Confidence,
    ];
}

/// An open guard and why it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenGuard {
    /// Which guard.
    pub kind: GuardKind,
    /// When it opened, engine milliseconds.
    pub opened_ms: u64,
    /// The latest value that tripped it (units per [`GuardKind`]).
    pub observed: i64,
    /// The configured limit it was compared against (same units).
    pub limit: i64,
    /// Consecutive healthy rounds so far; it closes at `healthy_rounds_to_close`.
    pub healthy_rounds: u32,
}

/// The oracle state of one underlying (part of the state root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    /// The last certified round (0 before the first).
    pub last_round: u64,
    /// When the last round was certified, engine milliseconds.
    pub last_certified_ms: Option<u64>,
    /// The last round's aggregate (before clamping).
    pub last_aggregate: Option<Aggregate>,
    /// EMA of the applied index, micros (the jump breaker's reference).
    pub ema_micros: Option<i64>,
    /// Open guards, at most one per kind, in [`GuardKind`] order.
    pub guards: Vec<OpenGuard>,
    /// Per seat (genesis committee order): the holder's consecutive deviant rounds.
    pub deviant_rounds: Vec<u32>,
}

/// Evidence that a member's observations sat beyond `fault_deviation_bps` of the aggregate for
/// `fault_rounds` consecutive certified rounds. The member's own signed observation of the last
/// of those rounds is included, so the evidence cannot be repudiated; the aggregate is itself
/// backed by the round's quorum in the block log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvidence {
    /// The member's public key.
    pub node: [u8; 32],
    /// Which underlying.
    pub underlying: u16,
    /// The round that completed the streak.
    pub round: u64,
    /// Consecutive deviant rounds.
    pub rounds: u32,
    /// The round's aggregate, micros.
    pub aggregate_micros: i64,
    /// The member's deviation from it, bps.
    pub deviation_bps: i64,
    /// When, engine milliseconds.
    pub time_ms: u64,
    /// The member's signed observation of that round.
    pub observation: SignedObservation,
}

/// The oracle part of the replicated state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OracleState {
    /// Per underlying.
    pub feeds: Vec<FeedState>,
    /// Fault evidence, oldest first, at most [`FAULT_RECORDS_MAX`].
    pub faults: std::collections::VecDeque<FaultEvidence>,
    /// Evidence records dropped to keep the bound.
    pub faults_dropped: u64,
    /// The seat holders' decompressed keys, per seat, with the key bytes they came from: a
    /// cache derived from the configuration and the membership (not state, not hashed), an
    /// entry rebuilt whenever its seat's holder differs, e.g. after a restore.
    #[serde(skip)]
    pub member_keys: Vec<Option<([u8; 32], VerifyingKey)>>,
}

impl OracleState {
    pub(crate) fn new(underlyings: usize, members: usize) -> Self {
        OracleState {
            feeds: vec![
                FeedState {
                    deviant_rounds: vec![0; members],
                    ..FeedState::default()
                };
                underlyings
            ],
            faults: std::collections::VecDeque::new(),
            faults_dropped: 0,
            member_keys: Vec::new(),
        }
    }
}

/// |a − b| in bps of `reference` (> 0), saturating.
pub(crate) fn distance_bps(a: i64, b: i64, reference: i64) -> i64 {
    let d = (i128::from(a) - i128::from(b)).abs() * BPS / i128::from(reference.max(1));
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// Hex in human-readable formats (JSON), raw bytes otherwise (snapshots).
mod signature_serde {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
            s.serialize_str(&hex)
        } else {
            s.serialize_bytes(sig)
        }
    }

    struct SigVisitor;

    impl<'de> Visitor<'de> for SigVisitor {
        type Value = [u8; 64];

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a 64-byte signature (128 hex digits or 64 bytes)")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<[u8; 64], E> {
            let bytes = v.as_bytes();
            if bytes.len() != 128 {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            let mut out = [0u8; 64];
            for (i, pair) in bytes.chunks(2).enumerate() {
                let text = std::str::from_utf8(pair).map_err(|_| E::custom("not hex"))?;
                out[i] = u8::from_str_radix(text, 16).map_err(|_| E::custom("not hex"))?;
            }
            Ok(out)
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; 64], E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
            let mut out = [0u8; 64];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(A::Error::invalid_length(65, &self));
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(SigVisitor)
        } else {
            d.deserialize_bytes(SigVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u8) -> [u8; 32] {
        [i; 32]
    }

    fn config(members: &[u8]) -> OracleConfig {
        OracleConfig {
            members: members.iter().map(|i| k(*i)).collect(),
            f: 1,
            ..OracleConfig::default()
        }
    }

    fn holders(roster: &OracleRoster) -> Vec<Option<u8>> {
        (0..roster.seats())
            .map(|s| roster.holder(s).map(|key| key[0]))
            .collect()
    }

    #[test]
    fn seats_follow_the_members_and_newcomers_fill_vacant_seats_in_order() {
        let config = config(&[1, 2, 3, 4]);
        let all = OracleRoster::following(&config, &[k(4), k(3), k(2), k(1)]);
        assert_eq!(all, OracleRoster::genesis(&config));
        // Member 2 removed: its seat is vacant, and the quorum stays 2f + 1 = 3.
        let removed = OracleRoster::following(&config, &[k(1), k(3), k(4)]);
        assert_eq!(holders(&removed), [Some(1), None, Some(3), Some(4)]);
        assert_eq!((removed.held(), removed.quorum()), (3, 3));
        // Two removed, two newcomers: the lower key takes the lower vacant seat.
        let two = OracleRoster::following(&config, &[k(1), k(9), k(4), k(7)]);
        assert_eq!(holders(&two), [Some(1), Some(7), Some(9), Some(4)]);
        assert_eq!(two.seat_of(&k(9)), Some(2));
        assert_eq!(two.seat_of(&k(2)), None);
        // Member 2 re-admitted takes its own seat back; the newcomer moves to the other one.
        let back = OracleRoster::following(&config, &[k(1), k(2), k(4), k(9)]);
        assert_eq!(holders(&back), [Some(1), Some(2), Some(9), Some(4)]);
        // More members than seats (which the sentinel never allows): the extra holds none.
        let crowded = OracleRoster::following(&config, &[k(1), k(2), k(3), k(4), k(5)]);
        assert_eq!(crowded.seat_of(&k(5)), None);
        // No committee: nothing to hold.
        assert!(!OracleRoster::genesis(&OracleConfig::default()).enabled());
    }
}
