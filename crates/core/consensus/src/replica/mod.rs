//! One replica's application: the simplex automaton, relay and reporter in front of a bulwark
//! engine.
//!
//! The actor keeps three things apart:
//! - **speculative states**: for every block it checked (or proposed), the engine state after
//!   it, forked from the parent's. A vote needs only these; nothing here is final.
//! - **the committed engine**: executes finalized blocks only, in height order, exactly once
//!   per height (height = committed height + 1 is asserted), and must reach the same root as
//!   the speculative run of the same block.
//! - **the block store**: every block seen, by digest, pruned below the committed height; at
//!   most [`UNSOLICITED_BLOCKS_PER_PEER`] blocks per peer that nobody asked for, and known-invalid
//!   digests forgotten once committed past.
//!
//! A block is refused (verify answers `false`) when it is malformed, does not extend the parent
//! simplex named, has the wrong height, runs time backwards, carries client signatures that do
//! not verify, or claims a parent state root that differs from this replica's own execution of
//! the parent. Missing data (the block or an ancestor not yet received) keeps the answer
//! pending, and the actor asks its peers for the missing block by digest (a minimal stand-in
//! for marshal's backfill: any peer holding the block answers on the block channel).

use crate::block::Block;
use crate::check::epoch_of;
pub use crate::check::Refusal;
use crate::check::{check_and_execute, execute, execute_with_receipts, Parent};
use crate::epoch::{key_digest, load_boundary, save_boundary, EpochStart, Reshare, SharedShares};
use crate::evidence::{EvidenceLog, Kind};
use crate::held::{Entry, Held};
use crate::log::{Log, LogError, Record};
use crate::mempool::TxKey;
use crate::snapshots;
use bulwark_custody::dkg::Completed;
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
use commonware_cryptography::Signer as _;
use commonware_macros::select;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, IoBuf, Spawner, Storage, Supervisor};
use commonware_utils::channel::fallible::OneshotExt as _;
use commonware_utils::channel::{mpsc, oneshot};
use commonware_utils::ordered::Set;
use rand_core::CryptoRng;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, error, info, warn};

mod actor;
mod catchup;
mod commit;
mod mailbox;
mod restore;
mod speculate;
mod watch;

use commit::count_fills;
pub use mailbox::Mailbox;
use mailbox::Message;
pub use watch::{SharedVotes, Votes};

/// The committed engine and the height it is at, always replaced together, so an answer read
/// from it can say how fresh it is (the gateway's reads count only answers at or above what a
/// session has already seen).
#[derive(Clone)]
pub struct CommittedView {
    /// The last committed height (0 before the first block).
    pub height: u64,
    /// The engine after that height.
    pub engine: Arc<Engine>,
}

impl CommittedView {
    /// The view before any block.
    pub fn genesis(engine: Engine) -> Self {
        CommittedView {
            height: 0,
            engine: Arc::new(engine),
        }
    }
}

/// The p2p identity of a replica.
pub type PublicKey = ed25519::PublicKey;
/// The consensus signing scheme: BLS12-381 threshold, signatures in G1 (the smaller ones).
pub type Scheme =
    commonware_consensus::simplex::scheme::bls12381_threshold::standard::Scheme<PublicKey, MinSig>;
/// What simplex hands the automaton.
pub type ConsensusContext = Context<Digest, PublicKey>;

/// Blocks further than this above the committed height are not stored.
pub const BLOCKS_AHEAD_MAX: u64 = 1_024;
/// Blocks a peer may have in this replica's store that nobody asked it for (broadcast
/// proposals). An honest peer has a few at a time, until they commit or lose; beyond this the
/// peer's oldest such block not yet executed is dropped (and fetched again if it is needed).
pub const UNSOLICITED_BLOCKS_PER_PEER: usize = 32;
/// How often missing blocks are requested again.
pub const FETCH_RETRY: Duration = Duration::from_millis(250);
/// Most digests requested per retry.
pub const FETCH_DIGESTS_MAX: usize = 16;

pub use crate::mempool::Mempool;

/// Figures the replica keeps for status output.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client transactions finalized since start (accepted or refused by the engine).
    pub finalized_txs: u64,
    /// Of those, the ones the engine refused when it executed them.
    pub finalized_rejected: u64,
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
    /// Blocks in the store now.
    pub blocks_held: usize,
    /// Unsolicited blocks dropped because their sender was over [`UNSOLICITED_BLOCKS_PER_PEER`].
    pub blocks_dropped: u64,
    /// Blocks known to be invalid, remembered until the committed height passes them.
    pub invalid_held: usize,
    /// Submit-to-finalized latency of this node's clients' transactions (every one since
    /// start, unlike the window in `latencies_ms`).
    pub submit_latency: bulwark_api::stats::LatencyHistogram,
    /// Observation-to-finalized latency of oracle rounds.
    pub oracle_latency: bulwark_api::stats::LatencyHistogram,
    /// Time to check and execute one proposed or fetched block against its parent.
    pub block_check: bulwark_api::stats::LatencyHistogram,
    /// Time to verify one finalization certificate a peer sent in catch-up.
    pub certificate_check: bulwark_api::stats::LatencyHistogram,
    /// Refusals and liquidation steps in the finalized blocks since start.
    pub tally: crate::check::Tally,
    /// Why the replica stopped on its own (its disk failed under a finalized height), if it
    /// did: the member's consensus stopped with it, and the node must exit.
    pub halted: Option<String>,
}

/// At most this many receipts of the blocks replayed at a start are told (the newest heights'):
/// replaying from genesis must not hold a whole log's receipts in memory.
pub const REPLAYED_RECEIPTS_MAX: usize = 200_000;

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

/// Where a replica hands each finalized block's receipts.
pub type ReceiptSink = Arc<dyn Fn(u64, &[crate::check::Receipt]) + Send + Sync>;

/// Deliberate misbehaviour, for tests of the refusal path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Honest.
    None,
    /// Proposes blocks whose parent root has one bit flipped.
    WrongRoot,
    /// Honest in consensus, but answers every catch-up request with forged records: a
    /// certificate with a flipped byte, a block with a flipped byte, a certificate moved from
    /// the record before ([`crate::catchup`]).
    ForgedCatchUp,
    /// Honest otherwise, but puts the transactions of the block it last committed into every
    /// block it proposes again (the engine refuses them as stale nonces).
    ReplayTxs,
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
    /// Chain deposit attestations to propose certified deposits from (None: blocks this member
    /// proposes carry no deposits; it still checks and executes the ones others propose).
    pub deposits: Option<crate::deposit_feed::SharedDeposits>,
    /// The sentinel's accusations and decisions (None: blocks carry no quarantine decided by
    /// accusations).
    pub sentinel: Option<crate::sentinel_feed::SharedSentinel>,
    /// Status figures.
    pub stats: SharedStats,
    /// Where fault evidence against peers is recorded.
    pub evidence: EvidenceLog,
    /// The genesis committee in participant-index order (the committee while no sentinel
    /// committee is configured; later epochs take theirs from the trust state).
    pub participants: Vec<PublicKey>,
    /// This member's p2p key, which it deals and acks reshares with.
    pub signer: ed25519::PrivateKey,
    /// Where this member keeps its share of each epoch's key (epoch 0 included).
    pub shares: SharedShares,
    /// Storage partition of the epoch boundaries (unique per node; see
    /// [`crate::epoch::save_boundary`]).
    pub epoch_partition: String,
    /// The committed engine after every height and that height, shared with queries (the
    /// node's endpoint). Replaced (not mutated) after each height, so readers never block
    /// execution for long.
    pub view: Arc<Mutex<CommittedView>>,
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
    /// Told each finalized block's receipts, in height order (the node's endpoint serves them
    /// to gateways; a server of receipts keeps the first one of each (account, nonce), see
    /// [`crate::check::Receipt::is_stale_refusal`]). At a start, the
    /// blocks replayed from the log are told first (the newest [`REPLAYED_RECEIPTS_MAX`]
    /// receipts' worth of them; those the snapshot covers are not), so a sink that lives
    /// longer than the replica sees those heights again, with the same receipts.
    pub receipts: Option<ReceiptSink>,
    /// The group public key (the venue's identity, the same in every epoch): the certificates
    /// of records peers send in catch-up are checked against it (None: this replica never
    /// catches up from certificates, only from its own consensus).
    pub identity: Option<crate::verify::Identity>,
}

/// A block's execution forked from its parent's.
struct Speculative {
    height: u64,
    time_ms: u64,
    engine: Arc<Engine>,
    root: StateRoot,
    fills: usize,
    oracle_faults: Vec<bulwark_engine::oracle::FaultEvidence>,
    receipts: Vec<crate::check::Receipt>,
    tally: crate::check::Tally,
}

/// The replica's application actor.
pub struct Replica<E: Clock + Spawner + Supervisor + Storage + CryptoRng> {
    context: E,
    config: Config,
    mailbox: mpsc::Receiver<Message>,
    events: mpsc::UnboundedReceiver<Message>,
    blocks: HashMap<Digest, (Block, Vec<u8>)>,
    speculative: HashMap<Digest, Speculative>,
    /// Blocks known to be invalid, with their height (forgotten once committed past).
    invalid: HashMap<Digest, u64>,
    /// Per peer, the unsolicited blocks it sent that may still be in the store, oldest first.
    unsolicited: HashMap<PublicKey, std::collections::VecDeque<Digest>>,
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
    /// Where each committed height starts in the finalized log, and whether its record holds a
    /// certificate (index: height - 1), to answer catch-up requests by height.
    offsets: Vec<(u64, bool)>,
    /// Blocks from catch-up answers without a certificate, waiting for a certified descendant
    /// to link them (at most [`crate::catchup::BUFFER_MAX`], oldest first in `catchup_order`).
    catchup_buffer: HashMap<Digest, (Block, Vec<u8>)>,
    catchup_order: std::collections::VecDeque<Digest>,
    /// Catch-up: when to ask which peer for certified records.
    follower: crate::catchup::Follower,
    /// The certificate verifier of the group key (None: no catch-up).
    catchup_verifier: Option<Scheme>,
    /// When each peer's catch-up request was last answered (at most one per
    /// [`crate::catchup::ANSWER_GAP`]).
    answered: HashMap<PublicKey, SystemTime>,
    /// When each peer's output request was last answered (the same bound).
    answered_outputs: HashMap<PublicKey, SystemTime>,
    /// A joining candidate's collection of the ending epoch's public output, while it waits for
    /// one (see [`crate::catchup::OutputCollector`]).
    output_wanted: Option<crate::catchup::OutputCollector>,
    /// When the members are asked for the output next.
    next_output_ask: SystemTime,
    /// The ending epoch's public output a joining candidate accepted, with its epoch.
    joining_output: Option<(
        u64,
        commonware_cryptography::bls12381::dkg::feldman_desmedt::Output<MinSig, PublicKey>,
    )>,
    /// The durable finalized log.
    log: Log<E::Blob>,
    /// Blocks this replica proposed or voted for, above the committed height, on disk.
    held: Held<E::Blob>,
    /// This member's share of the current epoch's key (None: it left the committee, or lost it).
    keys: Option<Completed>,
    /// The reshare attempts into the next epoch while one is due: the current attempt and the
    /// earlier ones that completed here (an epoch change may carry any of their keys).
    reshares: Vec<Reshare>,
    /// The attempts into the epoch that just began, still answering peers that have not
    /// completed (a member needs its share to sign) until the epoch's first block is final.
    finishing: Vec<Reshare>,
    /// When the reshare's messages are sent again.
    next_resend: SystemTime,
    /// When the evidence log and the reported votes are read next.
    next_watch: SystemTime,
    /// Whether the reshare has new messages to send now.
    reshare_due: bool,
    /// Where a new epoch is announced to the orchestrator.
    epochs: mpsc::UnboundedSender<EpochStart>,
    /// The digest of the block that began the current epoch.
    epoch_boundary: Digest,
    /// Shares below this epoch are deleted.
    pruned_below: u64,
    /// The sentinel's inputs and this member's accusations.
    watcher: watch::Watcher,
    /// The votes simplex reported (for silence).
    votes: SharedVotes,
}

/// The epoch a member starts in and where the next ones are announced.
pub struct Epochs {
    /// The epoch of the committed state at start.
    pub current: EpochStart,
    /// Every epoch that begins later, in order.
    pub next: mpsc::UnboundedReceiver<EpochStart>,
}

/// A member's answer on a block's epoch change.
enum EpochVote {
    /// No epoch change, or one whose key a completed reshare here gave.
    Yes,
    /// No reshare here gave its key (yet): another attempt may still complete with it.
    Wait,
}

/// Whether a block's post-state is known.
enum Lookup {
    Ready,
    Missing(Digest),
    Invalid(Refusal),
}

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Runs the actor; `blocks` carries whole blocks (broadcasts and answers to requests),
    /// `requests` carries requests for a block by digest, `reshare` the reshare ceremonies,
    /// `accusations` the sentinel's accusations, `catchup` certified records by height
    /// ([`crate::catchup`]).
    pub fn start<S, R, RS, RR, XS, XR>(
        self,
        blocks: (S, R),
        requests: (RS, RR),
        reshare: (XS, XR),
        accusations: (XS, XR),
        catchup: (XS, XR),
    ) -> Handle<()>
    where
        E: Send + 'static,
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
        RS: Sender<PublicKey = PublicKey>,
        RR: Receiver<PublicKey = PublicKey>,
        XS: Sender<PublicKey = PublicKey>,
        XR: Receiver<PublicKey = PublicKey>,
    {
        let spawner = self.context.child("actor");
        spawner.spawn(move |_| self.run(blocks, requests, reshare, accusations, catchup))
    }
}
