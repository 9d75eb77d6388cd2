//! One replica's application: the simplex automaton, relay and reporter in front of a bulwark
//! engine.
//!
//! The actor keeps three things apart:
//! - **speculative states**: for every block it checked (or proposed), the engine state after
//!   it, forked from the parent's. A vote needs only these; nothing here is final.
//! - **the committed engine**: executes finalized blocks only, in height order, exactly once
//!   per height (height = committed height + 1 is asserted), and must reach the same root as
//!   the speculative run of the same block.
//! - **the block store**: every block seen, by digest, pruned below the committed height.
//!
//! A block is refused (verify answers `false`) when it is malformed, does not extend the parent
//! simplex named, has the wrong height, runs time backwards, carries client signatures that do
//! not verify, or claims a parent state root that differs from this replica's own execution of
//! the parent. Missing data (the block or an ancestor not yet received) keeps the answer
//! pending, and the actor asks its peers for the missing block by digest (a minimal stand-in
//! for marshal's backfill: any peer holding the block answers on the block channel).

use crate::block::Block;
pub use crate::check::Refusal;
use crate::check::{check_and_execute, execute, Parent};
use crate::evidence::{EvidenceLog, Kind};
use crate::held::{Entry, Held};
use crate::log::{Log, LogError, Record};
use crate::mempool::TxKey;
use crate::snapshots;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::SystemCommand;
use bulwark_engine::snapshot::StateRoot;
use bulwark_engine::{Engine, Event};
use commonware_actor::Feedback;
use commonware_codec::DecodeExt as _;
use commonware_codec::Encode as _;
use commonware_consensus::simplex::types::Attributable as _;
use commonware_consensus::simplex::types::{Activity, Context};
use commonware_consensus::simplex::Plan;
use commonware_consensus::Viewable as _;
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519;
use commonware_cryptography::sha256::Digest;
use commonware_macros::select;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, IoBuf, Spawner, Storage, Supervisor};
use commonware_utils::channel::fallible::OneshotExt as _;
use commonware_utils::channel::{mpsc, oneshot};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// The p2p identity of a replica.
pub type PublicKey = ed25519::PublicKey;
/// The consensus signing scheme: BLS12-381 threshold, signatures in G1 (the smaller ones).
pub type Scheme =
    commonware_consensus::simplex::scheme::bls12381_threshold::standard::Scheme<PublicKey, MinSig>;
/// What simplex hands the automaton.
pub type ConsensusContext = Context<Digest, PublicKey>;

/// Blocks further than this above the committed height are not stored.
pub const BLOCKS_AHEAD_MAX: u64 = 1_024;
/// How often missing blocks are requested again.
pub const FETCH_RETRY: Duration = Duration::from_millis(250);
/// Most digests requested per retry.
pub const FETCH_DIGESTS_MAX: usize = 16;

pub use crate::mempool::Mempool;

/// Figures the replica keeps for status output.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client transactions finalized since start.
    pub finalized_txs: u64,
    /// Submit-to-finalized latency of the most recent transactions clients submitted to this
    /// node, milliseconds (at most [`LATENCIES_KEPT`]).
    pub latencies_ms: std::collections::VecDeque<u32>,
    /// Oracle rounds finalized since start.
    pub oracle_rounds: u64,
    /// Observation-to-finalized latency of the most recent oracle rounds, milliseconds: from
    /// the round's start (when members observe) to this replica committing the block that
    /// carries it (at most [`LATENCIES_KEPT`]).
    pub oracle_latencies_ms: std::collections::VecDeque<u32>,
    /// The snapshot height this replica restored its engine from at start (None: replayed
    /// from genesis).
    pub restored_snapshot: Option<u64>,
    /// The height of the newest snapshot this replica wrote since start.
    pub last_snapshot: Option<u64>,
}

/// How many latency samples [`Stats`] keeps.
pub const LATENCIES_KEPT: usize = 20_000;

/// Shared status figures.
pub type SharedStats = Arc<Mutex<Stats>>;

/// What one finalized height did at this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Height of the block.
    pub height: u64,
    /// Its digest.
    pub digest: Digest,
    /// The state root after executing it.
    pub root: StateRoot,
    /// Transactions in the block.
    pub txs: usize,
    /// Fills it produced.
    pub fills: usize,
    /// Whether money was conserved after it (DESIGN invariant 7).
    pub conserved: bool,
    /// Whether this replica holds the block's own finalization certificate (otherwise a
    /// descendant's certificate covers it).
    pub certified: bool,
}

/// The committed log of one replica, shared with the test harness.
pub type Ledger = Arc<Mutex<Vec<Committed>>>;

/// Deliberate misbehaviour, for tests of the refusal path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Honest.
    None,
    /// Proposes blocks whose parent root has one bit flipped.
    WrongRoot,
}

/// Configuration of one replica's application.
pub struct Config {
    /// The genesis engine (height 0) and its digest.
    pub genesis: (Engine, Digest),
    /// The venue's epoch in the runtime's clock, milliseconds since the UNIX epoch.
    pub venue_epoch_ms: u64,
    /// Where pending client transactions come from.
    pub mempool: Mempool,
    /// Where committed heights are recorded.
    pub ledger: Ledger,
    /// Counts blocks this replica refused.
    pub refused: Arc<AtomicU64>,
    /// Most transactions per proposed block.
    pub block_txs_max: usize,
    /// Threads for client-signature verification.
    pub verify_threads: usize,
    /// Capacity of the mailbox from simplex.
    pub mailbox_size: usize,
    /// Misbehaviour for tests.
    pub fault: Fault,
    /// Signed oracle observations to certify rounds from when proposing (None: blocks carry
    /// no oracle rounds).
    pub oracle: Option<crate::oracle_feed::SharedPool>,
    /// Status figures.
    pub stats: SharedStats,
    /// Where fault evidence against peers is recorded.
    pub evidence: EvidenceLog,
    /// The committee in participant-index order (names the signer of a reported vote).
    pub participants: Vec<PublicKey>,
    /// The committed engine after every height, shared with queries (the node's endpoint).
    /// Replaced (not mutated) after each height, so readers never block execution for long.
    pub view: Arc<Mutex<Arc<Engine>>>,
    /// Storage partition of the finalized log (unique per node).
    pub log_partition: String,
    /// Storage partition of the blocks this replica vouched for and has not committed
    /// (unique per node; see [`crate::held`]).
    pub held_partition: String,
    /// Storage partition of engine snapshots (unique per node; see [`crate::snapshots`]).
    pub snapshot_partition: String,
    /// Write a snapshot every this many committed heights (0: never; a restart then replays
    /// the whole log).
    pub snapshot_every: u64,
    /// How many committed heights the ledger keeps (the newest).
    pub ledger_kept: usize,
}

enum Message {
    Propose {
        context: ConsensusContext,
        response: oneshot::Sender<Digest>,
    },
    Verify {
        context: ConsensusContext,
        digest: Digest,
        response: oneshot::Sender<bool>,
    },
    Broadcast {
        digest: Digest,
        recipients: Recipients<PublicKey>,
    },
    Finalized {
        digest: Digest,
        certificate: Vec<u8>,
    },
}

/// The handle simplex holds: automaton, relay and reporter in one.
#[derive(Clone)]
pub struct Mailbox {
    sender: mpsc::Sender<Message>,
    /// Broadcasts and finalizations must not be lost and the trait calls are synchronous, so
    /// they go through an unbounded queue. It is bounded in practice by simplex itself (one
    /// broadcast per own proposal, one finalization per view); a real node replaces this with
    /// an overflow policy that coalesces finalizations (only the highest matters).
    events: mpsc::UnboundedSender<Message>,
    evidence: EvidenceLog,
    participants: Arc<Vec<PublicKey>>,
}

impl Mailbox {
    fn record_vote_fault(&self, kind: Kind, signer: u32, view: u64) {
        // Threshold votes are not attributable to a third party; the signer index is what
        // simplex reports, unverified.
        if let Some(peer) = self.participants.get(signer as usize) {
            self.evidence.record(
                kind,
                peer,
                view,
                "reported by simplex, unverified (threshold vote)",
            );
        }
    }

    fn post(&self, message: Message) -> Feedback {
        match self.events.send(message) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

impl Automaton for Mailbox {
    type Context = ConsensusContext;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Digest> {
        let (response, receiver) = oneshot::channel();
        // A failed send drops `response`, which simplex reads as "no proposal".
        let _ = self
            .sender
            .send(Message::Propose { context, response })
            .await;
        receiver
    }

    async fn verify(&mut self, context: Self::Context, digest: Digest) -> oneshot::Receiver<bool> {
        let (response, receiver) = oneshot::channel();
        let _ = self
            .sender
            .send(Message::Verify {
                context,
                digest,
                response,
            })
            .await;
        receiver
    }
}

/// Every block is fully checked before the vote, so certification adds nothing: the trait's
/// defaults (no pipelined handoff, certify = true) are what we want.
impl CertifiableAutomaton for Mailbox {}

impl Relay for Mailbox {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, digest: Digest, plan: Plan<PublicKey>) -> Feedback {
        let recipients = match plan {
            Plan::Prepare { .. } | Plan::Propose { .. } => Recipients::All,
            Plan::Forward { recipients, .. } => recipients,
        };
        self.post(Message::Broadcast { digest, recipients })
    }
}

impl Reporter for Mailbox {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Activity::Finalization(finalization) => self.post(Message::Finalized {
                digest: finalization.proposal.payload,
                certificate: finalization.encode().to_vec(),
            }),
            Activity::ConflictingNotarize(fault) => {
                self.record_vote_fault(
                    Kind::ConflictingNotarize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            Activity::ConflictingFinalize(fault) => {
                self.record_vote_fault(
                    Kind::ConflictingFinalize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            Activity::NullifyFinalize(fault) => {
                self.record_vote_fault(
                    Kind::NullifyFinalize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            _ => Feedback::Ok,
        }
    }
}

/// A block's execution forked from its parent's.
struct Speculative {
    height: u64,
    time_ms: u64,
    engine: Arc<Engine>,
    root: StateRoot,
    fills: usize,
    oracle_faults: Vec<bulwark_engine::oracle::FaultEvidence>,
}

/// The replica's application actor.
pub struct Replica<E: Clock + Spawner + Supervisor + Storage> {
    context: E,
    config: Config,
    mailbox: mpsc::Receiver<Message>,
    events: mpsc::UnboundedReceiver<Message>,
    blocks: HashMap<Digest, (Block, Vec<u8>)>,
    speculative: HashMap<Digest, Speculative>,
    invalid: HashSet<Digest>,
    pending_verifies: Vec<(ConsensusContext, Digest, oneshot::Sender<bool>)>,
    pending_proposals: Vec<(ConsensusContext, oneshot::Sender<Digest>)>,
    finalized_pending: Vec<Digest>,
    /// Finalization certificates received, by the digest they certify, until committed.
    certificates: HashMap<Digest, Vec<u8>>,
    /// The committed state: shared with the speculative state of the committed block and with
    /// the query view (an `Arc`, so committing a height copies nothing).
    committed: Arc<Engine>,
    committed_root: StateRoot,
    committed_height: u64,
    committed_digest: Digest,
    /// Blocks something waits for, requested from peers every [`FETCH_RETRY`].
    missing: HashSet<Digest>,
    /// When each missing block was last requested.
    requested: HashMap<Digest, SystemTime>,
    /// Where every committed block lives in the finalized log, to answer peers that fall
    /// behind.
    archive: HashMap<Digest, u64>,
    /// The durable finalized log.
    log: Log<E::Blob>,
    /// Blocks this replica proposed or voted for, above the committed height, on disk.
    held: Held<E::Blob>,
}

/// Whether a block's post-state is known.
enum Lookup {
    Ready,
    Missing(Digest),
    Invalid(Refusal),
}

impl<E: Clock + Spawner + Supervisor + Storage> Replica<E> {
    /// Opens the finalized log, rebuilds the committed engine by replaying it, and returns the
    /// actor with the mailbox to hand simplex (as automaton, relay and reporter).
    pub async fn init(context: E, config: Config) -> Result<(Self, Mailbox), LogError> {
        let (sender, mailbox) = mpsc::channel(config.mailbox_size);
        let (events_sender, events) = mpsc::unbounded_channel();
        let (genesis, genesis_digest) = config.genesis.clone();
        let evidence = config.evidence.clone();
        let participants = Arc::new(config.participants.clone());
        // Replay from the newest usable snapshot (or from genesis): a snapshot is usable when
        // the log goes past it and the next logged block names its root.
        let mut candidates = snapshots::heights(&context, &config.snapshot_partition)
            .await?
            .into_iter();
        let mut from = None;
        let Replayed {
            log,
            engine: committed,
            root: committed_root,
            digest: committed_digest,
            archive,
            executed: replayed,
        } = loop {
            if from.is_none() {
                // The next candidate that restores: a damaged one, or one the storage cannot
                // read, is skipped with a warning (only restart time is lost).
                for height in candidates.by_ref() {
                    match snapshots::load(&context, &config.snapshot_partition, height).await {
                        Ok(Some(restored)) => {
                            from = Some(restored);
                            break;
                        }
                        Ok(None) => {}
                        Err(error) => warn!(height, %error, "snapshot not readable; skipped"),
                    }
                }
            }
            let base = from.as_ref().map(|r: &snapshots::Restored| r.height);
            match replay(
                &context,
                &config.log_partition,
                &genesis,
                genesis_digest,
                from.take(),
            )
            .await
            {
                Ok(replay) => {
                    if let Some(height) = base {
                        info!(
                            snapshot = height,
                            replayed = replay.executed.len(),
                            "restored the engine from a snapshot and replayed the log after it"
                        );
                        config
                            .stats
                            .lock()
                            .expect("the stats lock must not be poisoned")
                            .restored_snapshot = Some(height);
                    }
                    break replay;
                }
                Err(Replay::Unusable(why)) => {
                    warn!(
                        snapshot = base,
                        "snapshot not used ({why}); trying an older one, or genesis"
                    );
                }
                // After a snapshot, a replay error may be the snapshot's (a state that does not
                // replay as the log says): fall back. From genesis it is the log's own.
                Err(Replay::Log(error)) if base.is_some() => {
                    warn!(
                        snapshot = base,
                        %error,
                        "the log does not replay from this snapshot; trying an older one, or genesis"
                    );
                }
                Err(Replay::Log(error)) => return Err(error),
            }
        };
        let committed_height = log.height();
        // What this replica vouched for before it stopped: it must still be able to produce
        // those blocks (a leader may have to build on one of them).
        let (held, held_blocks) =
            Held::open(&context, &config.held_partition, committed_height).await?;
        if !held_blocks.is_empty() {
            debug!(blocks = held_blocks.len(), "reloaded held blocks");
        }
        let blocks: HashMap<Digest, (Block, Vec<u8>)> = held_blocks
            .into_iter()
            .filter(|(_, block, _)| block.height <= committed_height + BLOCKS_AHEAD_MAX)
            .map(|(digest, block, bytes)| (digest, (block, bytes)))
            .collect();
        {
            // The ledger outlives restarts in tests: a replayed height must match what was
            // recorded when it was first committed (nothing lost, nothing executed twice).
            let mut ledger = config
                .ledger
                .lock()
                .expect("the ledger lock must not be poisoned");
            for entry in replayed {
                match ledger.binary_search_by_key(&entry.height, |c| c.height) {
                    Ok(at) => assert_eq!(
                        (ledger[at].digest, ledger[at].root),
                        (entry.digest, entry.root),
                        "replaying the log must reproduce every committed height"
                    ),
                    Err(_) => ledger.push(entry),
                }
            }
            let excess = ledger.len().saturating_sub(config.ledger_kept);
            ledger.drain(..excess);
        }
        if committed_height > 0 {
            debug!(height = committed_height, "replayed the finalized log");
        }
        let committed = Arc::new(committed);
        *config
            .view
            .lock()
            .expect("the view lock must not be poisoned") = committed.clone();
        let mut speculative = HashMap::new();
        speculative.insert(
            committed_digest,
            Speculative {
                height: committed_height,
                time_ms: committed.time_ms(),
                engine: committed.clone(),
                root: committed_root,
                fills: 0,
                oracle_faults: Vec::new(),
            },
        );
        let replica = Replica {
            context,
            config,
            mailbox,
            events,
            blocks,
            speculative,
            invalid: HashSet::new(),
            pending_verifies: Vec::new(),
            pending_proposals: Vec::new(),
            finalized_pending: Vec::new(),
            certificates: HashMap::new(),
            committed,
            committed_root,
            committed_height,
            committed_digest,
            missing: HashSet::new(),
            requested: HashMap::new(),
            archive,
            log,
            held,
        };
        Ok((
            replica,
            Mailbox {
                sender,
                events: events_sender,
                evidence,
                participants,
            },
        ))
    }

    /// Runs the actor; `blocks` carries whole blocks (broadcasts and answers to requests),
    /// `requests` carries requests for a block by digest.
    pub fn start<S, R, RS, RR>(self, blocks: (S, R), requests: (RS, RR)) -> Handle<()>
    where
        E: Send + 'static,
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
        RS: Sender<PublicKey = PublicKey>,
        RR: Receiver<PublicKey = PublicKey>,
    {
        let spawner = self.context.child("actor");
        spawner.spawn(move |_| self.run(blocks, requests))
    }

    async fn run<S, R, RS, RR>(
        mut self,
        (mut sender, mut receiver): (S, R),
        (mut request_sender, mut request_receiver): (RS, RR),
    ) where
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
        RS: Sender<PublicKey = PublicKey>,
        RR: Receiver<PublicKey = PublicKey>,
    {
        let mut next_fetch = self.context.current() + FETCH_RETRY;
        loop {
            let fetch_timer = self.context.sleep_until(next_fetch);
            select! {
                _ = fetch_timer => {
                    next_fetch = self.context.current() + FETCH_RETRY;
                },
                request = request_receiver.recv() => {
                    let Ok((peer, bytes)) = request else {
                        debug!("request channel closed; replica stops");
                        return;
                    };
                    self.answer_request(peer, bytes.as_ref(), &mut sender).await;
                },
                message = self.mailbox.recv() => {
                    let Some(message) = message else {
                        debug!("simplex dropped the mailbox; replica stops");
                        return;
                    };
                    self.handle(message, &mut sender);
                },
                event = self.events.recv() => {
                    let Some(event) = event else {
                        return;
                    };
                    self.handle(event, &mut sender);
                },
                received = receiver.recv() => {
                    let Ok((peer, bytes)) = received else {
                        debug!("block channel closed; replica stops");
                        return;
                    };
                    self.receive_block(&peer, bytes.as_ref());
                },
            }
            self.progress().await;
            self.request_missing(&mut request_sender);
        }
    }

    /// Asks every peer for missing blocks not requested within [`FETCH_RETRY`] (one digest per
    /// message, at most [`FETCH_DIGESTS_MAX`] at a time).
    fn request_missing<RS: Sender<PublicKey = PublicKey>>(&mut self, request_sender: &mut RS) {
        let now = self.context.current();
        let missing = &self.missing;
        self.requested.retain(|digest, _| missing.contains(digest));
        let mut sent = 0;
        for digest in &self.missing {
            if sent == FETCH_DIGESTS_MAX {
                break;
            }
            let due = self
                .requested
                .get(digest)
                .is_none_or(|at| now.duration_since(*at).unwrap_or(Duration::ZERO) >= FETCH_RETRY);
            if due {
                request_sender.send(Recipients::All, IoBuf::from(digest.0.to_vec()), false);
                self.requested.insert(*digest, now);
                sent += 1;
            }
        }
    }

    /// Answers a peer's request for a block we hold; anything else is ignored.
    async fn answer_request<S: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        request: &[u8],
        sender: &mut S,
    ) {
        let Ok(digest) = <[u8; 32]>::try_from(request) else {
            self.config.evidence.record(
                Kind::MalformedRequest,
                &peer,
                0,
                format!("{} bytes", request.len()),
            );
            return;
        };
        let digest = Digest(digest);
        if let Some((_, bytes)) = self.blocks.get(&digest) {
            sender.send(Recipients::One(peer), IoBuf::from(bytes.clone()), false);
            return;
        }
        let Some(&offset) = self.archive.get(&digest) else {
            return;
        };
        match self.log.read_at_offset(offset).await {
            Ok(Some(record)) => {
                sender.send(Recipients::One(peer), IoBuf::from(record.block), false);
            }
            Ok(None) => warn!(?digest, offset, "archived block is past the end of the log"),
            Err(error) => warn!(?digest, %error, "cannot read an archived block"),
        }
    }

    fn now_ms(&self) -> u64 {
        let since_unix = self
            .context
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since_unix.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.config.venue_epoch_ms)
    }

    fn handle<S: Sender<PublicKey = PublicKey>>(&mut self, message: Message, sender: &mut S) {
        match message {
            Message::Propose { context, response } => {
                self.pending_proposals.push((context, response));
            }
            Message::Verify {
                context,
                digest,
                response,
            } => self.pending_verifies.push((context, digest, response)),
            Message::Broadcast { digest, recipients } => {
                let Some((_, bytes)) = self.blocks.get(&digest) else {
                    warn!(?digest, "asked to broadcast a block we do not hold");
                    return;
                };
                let sent = sender.send(recipients, IoBuf::from(bytes.clone()), false);
                debug!(?digest, peers = sent.len(), "broadcast block");
            }
            Message::Finalized {
                digest,
                certificate,
            } => {
                if !self.archive.contains_key(&digest) {
                    self.certificates.insert(digest, certificate);
                    self.finalized_pending.push(digest);
                }
            }
        }
    }

    fn receive_block(&mut self, peer: &PublicKey, bytes: &[u8]) {
        // Stored by digest only: a block becomes relevant when simplex asks about its digest,
        // so a peer cannot make us adopt anything by sending it.
        match Block::decode(bytes) {
            Ok(block) => {
                // Bounded: nothing at or below the committed height, nothing far ahead of it.
                if block.height <= self.committed_height
                    || block.height > self.committed_height + BLOCKS_AHEAD_MAX
                {
                    return;
                }
                let digest = Block::digest_of(bytes);
                self.blocks
                    .entry(digest)
                    .or_insert_with(|| (block, bytes.to_vec()));
            }
            Err(error) => {
                // Evidence for the sentinel later; today only logged.
                self.config
                    .evidence
                    .record(Kind::MalformedBlock, peer, 0, error.to_string());
            }
        }
    }

    /// Retries everything waiting on data, until nothing changes.
    async fn progress(&mut self) {
        // Rebuilt from what still waits, so abandoned requests stop being fetched.
        self.missing.clear();
        self.answer_proposals().await;
        self.answer_verifies().await;
        if let Err(error) = self.commit_finalized().await {
            // The disk failed under a finalized height: this node cannot go on safely.
            panic!("cannot persist a finalized height: {error}");
        }
    }

    /// Makes the post-state of `digest` known if its block and every ancestor back to a known
    /// state are present, checking each on the way.
    fn lookup(&mut self, digest: Digest) -> Lookup {
        let mut chain = Vec::new();
        let mut cursor = digest;
        loop {
            if self.invalid.contains(&cursor) {
                return Lookup::Invalid(Refusal::Root);
            }
            if self.speculative.contains_key(&cursor) {
                break;
            }
            let Some((block, _)) = self.blocks.get(&cursor) else {
                return Lookup::Missing(cursor);
            };
            if block.height <= self.committed_height {
                // Below the committed height only the committed chain matters, and this is not it.
                return Lookup::Invalid(Refusal::Height {
                    got: block.height,
                    want: self.committed_height + 1,
                });
            }
            chain.push(cursor);
            cursor = block.parent;
        }
        let now_ms = self.now_ms();
        for digest in chain.into_iter().rev() {
            let (block, _) = &self.blocks[&digest];
            let parent = &self.speculative[&block.parent];
            let mempool = &self.config.mempool;
            let on = Parent {
                engine: &parent.engine,
                root: &parent.root,
                height: parent.height,
                time_ms: parent.time_ms,
            };
            match check_and_execute(on, block, now_ms, self.config.verify_threads, &|txs| {
                mempool.holds(txs)
            }) {
                Ok(executed) => {
                    let height = block.height;
                    let time_ms = block.time_ms;
                    self.speculative.insert(
                        digest,
                        Speculative {
                            height,
                            time_ms,
                            engine: Arc::new(executed.engine),
                            root: executed.root,
                            fills: executed.fills,
                            oracle_faults: executed.oracle_faults,
                        },
                    );
                }
                Err(refusal) => {
                    self.invalid.insert(digest);
                    self.config.refused.fetch_add(1, Ordering::Relaxed);
                    warn!(?digest, %refusal, "refused block");
                    return Lookup::Invalid(refusal);
                }
            }
        }
        Lookup::Ready
    }

    /// Writes `digests` and their uncommitted ancestors to the held blocks (synced). False
    /// when the disk failed: the replica then must not vouch for them.
    ///
    /// Ancestors are written before their descendants: a crash during the append keeps a
    /// prefix of the records, so a surviving block never lacks a parent that `hold` would then
    /// skip as already held.
    async fn hold(&mut self, digests: &[Digest]) -> bool {
        let mut entries = Vec::new();
        for digest in digests {
            let mut chain = Vec::new();
            let mut cursor = *digest;
            while cursor != self.committed_digest && !self.held.holds(&cursor) {
                let Some((block, bytes)) = self.blocks.get(&cursor) else {
                    break;
                };
                if block.height <= self.committed_height {
                    break;
                }
                chain.push(Entry {
                    digest: cursor,
                    height: block.height,
                    bytes,
                });
                cursor = block.parent;
            }
            entries.extend(chain.into_iter().rev());
        }
        match self.held.keep(&self.context, &entries).await {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "cannot keep blocks on disk; not vouching for them");
                false
            }
        }
    }

    async fn answer_verifies(&mut self) {
        let pending = std::mem::take(&mut self.pending_verifies);
        // Verified blocks are written to disk (one sync for all) before any vote for them.
        let mut verified = Vec::new();
        for (context, digest, response) in pending {
            if response.is_closed() {
                continue;
            }
            let Some((block, _)) = self.blocks.get(&digest) else {
                self.missing.insert(digest);
                self.pending_verifies.push((context, digest, response));
                continue;
            };
            let view = context.round.view().get();
            if block.parent != context.parent.1 || block.view != view {
                self.config.evidence.record(
                    Kind::RefusedProposal,
                    &context.leader,
                    view,
                    "block does not match its consensus context",
                );
                response.send_lossy(false);
                continue;
            }
            match self.lookup(digest) {
                Lookup::Ready => verified.push((digest, response)),
                Lookup::Invalid(refusal) => {
                    if self.invalid.contains(&digest) {
                        self.config.evidence.record(
                            Kind::RefusedProposal,
                            &context.leader,
                            view,
                            refusal.to_string(),
                        );
                    }
                    response.send_lossy(false);
                }
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.pending_verifies.push((context, digest, response));
                }
            }
        }
        if verified.is_empty() {
            return;
        }
        let digests: Vec<Digest> = verified.iter().map(|(digest, _)| *digest).collect();
        // On a disk failure the answers are dropped, not `false`: simplex then treats the
        // proposals as ignored, not as invalid (the leader did nothing wrong).
        if self.hold(&digests).await {
            for (_, response) in verified {
                response.send_lossy(true);
            }
        }
    }

    async fn answer_proposals(&mut self) {
        let pending = std::mem::take(&mut self.pending_proposals);
        for (context, response) in pending {
            if response.is_closed() {
                continue;
            }
            let parent_digest = context.parent.1;
            match self.lookup(parent_digest) {
                Lookup::Ready => {}
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.pending_proposals.push((context, response));
                    continue;
                }
                // Simplex asked us to build on a parent we refuse; decline by dropping.
                Lookup::Invalid(_) => continue,
            }
            let block = self.build(&context);
            let bytes = block.encode();
            let digest = Block::digest_of(&bytes);
            self.blocks.insert(digest, (block, bytes));
            if self.config.fault == Fault::None {
                // Our own proposal must verify: execute it now so children can build on it.
                if !matches!(self.lookup(digest), Lookup::Ready) {
                    panic!("a replica's own proposal must pass its own checks");
                }
            }
            // On disk before simplex sends it: a proposal is this replica's vote for it.
            if self.hold(&[digest]).await {
                response.send_lossy(digest);
            }
        }
    }

    fn build(&self, context: &ConsensusContext) -> Block {
        let parent_digest = context.parent.1;
        let parent = &self.speculative[&parent_digest];
        // Transactions already in uncommitted ancestors must not be proposed again.
        let mut included = HashSet::new();
        let mut cursor = parent_digest;
        while cursor != self.committed_digest {
            let Some((block, _)) = self.blocks.get(&cursor) else {
                break;
            };
            included.extend(block.txs.iter().map(TxKey::of));
            cursor = block.parent;
        }
        let txs: Vec<SignedTx> = self
            .config
            .mempool
            .take(self.config.block_txs_max, &included);
        let mut parent_root = parent.root;
        if self.config.fault == Fault::WrongRoot {
            parent_root[0] ^= 1;
        }
        let rounds = match &self.config.oracle {
            Some(pool) => pool
                .lock()
                .expect("the oracle pool lock must not be poisoned")
                .certified(&parent.engine),
            None => Vec::new(),
        };
        Block {
            height: parent.height + 1,
            view: context.round.view().get(),
            time_ms: self.now_ms().max(parent.time_ms),
            parent: parent_digest,
            parent_root,
            rounds,
            txs,
        }
    }

    /// Executes finalized blocks in height order on the committed engine, once per height.
    async fn commit_finalized(&mut self) -> Result<(), LogError> {
        let pending = std::mem::take(&mut self.finalized_pending);
        for digest in pending {
            // Collect the chain from the committed tip up to `digest`.
            if self.archive.contains_key(&digest) || digest == self.committed_digest {
                continue;
            }
            let mut chain = Vec::new();
            let mut cursor = digest;
            let mut complete = true;
            let mut stale = false;
            while cursor != self.committed_digest {
                let Some((block, _)) = self.blocks.get(&cursor) else {
                    self.missing.insert(cursor);
                    complete = false;
                    break;
                };
                if block.height <= self.committed_height {
                    assert!(
                        chain.is_empty(),
                        "finalized blocks must extend the committed chain (safety)"
                    );
                    stale = true;
                    break;
                }
                chain.push(cursor);
                cursor = block.parent;
            }
            if stale || chain.is_empty() {
                // Already committed (finalizations of ancestors can arrive after descendants').
                continue;
            }
            if !complete {
                // Pruned blocks are below the committed height, so a missing block here is one
                // not received yet; a real node fetches it (marshal's backfill).
                self.finalized_pending.push(digest);
                continue;
            }
            match self.lookup(digest) {
                Lookup::Ready => {}
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.finalized_pending.push(digest);
                    continue;
                }
                Lookup::Invalid(refusal) => {
                    panic!("a finalized block must pass this replica's checks ({refusal}): the state diverged")
                }
            }
            for digest in chain.into_iter().rev() {
                self.commit(digest).await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, digest: Digest) -> Result<(), LogError> {
        let (block, bytes) = &self.blocks[&digest];
        let certificate = self.certificates.remove(&digest);
        let certified = certificate.is_some();
        let offset = self.log.offset_of_next();
        self.log
            .append(&Record {
                height: block.height,
                block: bytes.clone(),
                certificate,
            })
            .await?;
        self.archive.insert(digest, offset);
        assert_eq!(
            block.height,
            self.committed_height + 1,
            "finalized blocks must be executed in height order, once per height"
        );
        assert_eq!(
            block.parent_root, self.committed_root,
            "a finalized block's parent root must equal the committed root"
        );
        // The block was executed (once) when it was checked; committing adopts that state.
        let speculative = &self.speculative[&digest];
        self.committed = speculative.engine.clone();
        self.committed_root = speculative.root;
        let root = speculative.root;
        let fills = speculative.fills;
        // Oracle faults the committed block completed: the deviating member, with its own
        // signed observation, recorded for the sentinel (the same evidence is in the engine
        // state under the root, derived from the signed rounds in the block log).
        for fault in &speculative.oracle_faults {
            match PublicKey::decode(fault.node.to_vec()) {
                Ok(member) => self.config.evidence.record(
                    Kind::OracleFault,
                    &member,
                    block.height,
                    serde_json::to_string(fault).unwrap_or_default(),
                ),
                Err(_) => warn!("oracle fault evidence names a key that is not ed25519"),
            }
        }
        let conserved = self.committed.totals().conserved();
        assert!(conserved, "money must be conserved after every block");
        {
            let keys: Vec<TxKey> = block.txs.iter().map(TxKey::of).collect();
            let outcome = self.config.mempool.commit(&keys, self.context.current());
            let committed = &self.committed;
            self.config
                .mempool
                .remove_stale(block.txs.iter().map(|tx| tx.account), |account| {
                    committed.account(account).map(|a| a.nonce + 1)
                });
            let mut stats = self
                .config
                .stats
                .lock()
                .expect("the stats lock must not be poisoned");
            stats.finalized_txs += block.txs.len() as u64;
            let now_ms = u64::try_from(
                self.context
                    .current()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX);
            for round in &block.rounds {
                if let SystemCommand::OracleRound { round, .. } = round {
                    let observed = self.config.venue_epoch_ms
                        + round.saturating_mul(crate::oracle_feed::ROUND_MS);
                    stats.oracle_rounds += 1;
                    if stats.oracle_latencies_ms.len() == LATENCIES_KEPT {
                        stats.oracle_latencies_ms.pop_front();
                    }
                    stats.oracle_latencies_ms.push_back(
                        u32::try_from(now_ms.saturating_sub(observed)).unwrap_or(u32::MAX),
                    );
                }
            }
            for latency in outcome.latencies {
                if stats.latencies_ms.len() == LATENCIES_KEPT {
                    stats.latencies_ms.pop_front();
                }
                stats
                    .latencies_ms
                    .push_back(u32::try_from(latency.as_millis()).unwrap_or(u32::MAX));
            }
        }
        *self
            .config
            .view
            .lock()
            .expect("the view lock must not be poisoned") = self.committed.clone();
        {
            let mut ledger = self
                .config
                .ledger
                .lock()
                .expect("the ledger lock must not be poisoned");
            ledger.push(Committed {
                height: block.height,
                digest,
                root,
                txs: block.txs.len(),
                fills,
                conserved,
                certified,
            });
            let excess = ledger.len().saturating_sub(self.config.ledger_kept);
            ledger.drain(..excess);
        }
        self.committed_height = block.height;
        self.committed_digest = digest;
        self.prune();
        if let Err(error) = self
            .held
            .release(&self.context, self.committed_height)
            .await
        {
            // Only space is lost: the segments are removed on a later release or restart.
            warn!(%error, "cannot remove held blocks below the committed height");
        }
        let every = self.config.snapshot_every;
        if every > 0 && self.committed_height.is_multiple_of(every) {
            let height = self.committed_height;
            match snapshots::save(
                &self.context,
                &self.config.snapshot_partition,
                height,
                &self.committed,
            )
            .await
            {
                Ok(()) => {
                    self.config
                        .stats
                        .lock()
                        .expect("the stats lock must not be poisoned")
                        .last_snapshot = Some(height);
                }
                // Only restart time is lost: the log still replays from an older snapshot.
                Err(error) => warn!(height, %error, "cannot write an engine snapshot"),
            }
        }
        Ok(())
    }

    /// Forgets blocks and states that can no longer matter: everything below the committed
    /// height, and the committed height's losing forks.
    fn prune(&mut self) {
        let height = self.committed_height;
        let keep = self.committed_digest;
        self.speculative
            .retain(|digest, state| state.height > height || *digest == keep);
        self.blocks
            .retain(|digest, (block, _)| block.height > height || *digest == keep);
        self.certificates.retain(|digest, _| {
            self.blocks.contains_key(digest) || self.finalized_pending.contains(digest)
        });
    }
}

/// Why a replay from a snapshot did not work.
enum Replay {
    /// The snapshot does not fit the log (the log ends before it goes past it, or the next
    /// block names another root): replay from an older snapshot or from genesis.
    Unusable(&'static str),
    /// The log itself cannot be read or does not replay.
    Log(LogError),
}

/// What a replay rebuilt.
struct Replayed<B: commonware_runtime::Blob> {
    /// The open log, positioned after its last intact record.
    log: Log<B>,
    /// The committed engine and its state root.
    engine: Engine,
    root: StateRoot,
    /// The digest of the last logged block (the genesis digest for an empty log).
    digest: Digest,
    /// Where each logged block starts in the log.
    archive: HashMap<Digest, u64>,
    /// The heights executed (those after the snapshot, or all).
    executed: Vec<Committed>,
}

/// Opens the finalized log and rebuilds the committed engine: from `from` (a snapshot, whose
/// heights are read for their links and offsets only) or from genesis.
async fn replay<S: Storage>(
    storage: &S,
    partition: &str,
    genesis: &Engine,
    genesis_digest: Digest,
    from: Option<snapshots::Restored>,
) -> Result<Replayed<S::Blob>, Replay> {
    let base = from.as_ref().map_or(0, |r| r.height);
    let mut snapshot = from;
    let mut committed = genesis.clone();
    // The root after the last executed height, carried from one height to the next (each
    // root costs a serialization of the whole state).
    let mut root = genesis.state_root();
    let mut committed_digest = genesis_digest;
    let mut archive = HashMap::new();
    let mut offset = 0u64;
    let mut replayed = Vec::new();
    let mut unusable = None;
    let opened = Log::open(storage, partition, |record| {
        let (height, parent, _) = Block::header(&record.block).map_err(|e| e.to_string())?;
        if height != record.height || parent != committed_digest {
            return Err("the block does not extend the log before it".into());
        }
        let digest = Block::digest_of(&record.block);
        archive.insert(digest, offset);
        offset += record.encoded_len() as u64;
        committed_digest = digest;
        if height <= base {
            // Covered by the snapshot: checked and executed when it was first committed;
            // only its links are read.
            return Ok(());
        }
        let block = Block::decode(&record.block).map_err(|e| e.to_string())?;
        if let Some(restored) = snapshot.take() {
            if block.parent_root != restored.root {
                unusable = Some("the next logged block names another parent root");
                return Err("the snapshot does not fit the log".into());
            }
            committed = restored.engine;
            root = restored.root;
        }
        if block.parent_root != root {
            return Err("the block's parent root differs from the replayed state".into());
        }
        let mut events = Vec::new();
        execute(&mut committed, &block, &mut events);
        root = committed.state_root();
        replayed.push(Committed {
            height: block.height,
            digest,
            root,
            txs: block.txs.len(),
            fills: count_fills(&events),
            conserved: committed.totals().conserved(),
            certified: record.certificate.is_some(),
        });
        Ok(())
    })
    .await;
    if let Some(why) = unusable {
        return Err(Replay::Unusable(why));
    }
    let log = opened.map_err(Replay::Log)?;
    if snapshot.is_some() {
        // Nothing after the snapshot was logged (or the log was cut shorter): its root is
        // not confirmed by any logged block.
        return Err(Replay::Unusable("the log does not go past it"));
    }
    Ok(Replayed {
        log,
        engine: committed,
        root,
        digest: committed_digest,
        archive,
        executed: replayed,
    })
}

fn count_fills(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|event| matches!(event, Event::Fill { .. }))
        .count()
}
