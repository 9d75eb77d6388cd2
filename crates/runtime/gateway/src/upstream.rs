//! The gateway's side of the committee: transactions go to every node's endpoint, and a
//! transaction's outcome is believed only once `quorum` (f + 1) nodes report the same receipt
//! for it, so no single node can make the gateway acknowledge an order that was not finalized
//! or report a refusal that did not happen.
//!
//! Submitting never blocks a session: [`Upstream::submit`] puts the transaction on every node's
//! queue and returns. One sender thread per node drains its queue in batches; one follower
//! thread per node long-polls its receipts. Only receipts of transactions the gateway waits for
//! are tallied (the tally is bounded by what the sessions have in flight).
//!
//! Shedding (CoDel-style detection, decided at the door): a node's queue is standing when the
//! time its transactions waited stayed above [`SHED_TARGET`] for a whole [`SHED_INTERVAL`].
//! While fewer than `quorum` nodes' queues are free of a standing queue, new orders are refused
//! at once as a whole (never queued, and never shed from one node's queue only, which could let
//! a later transaction of the session overtake them). Cancels and session closes are never
//! shed. Every node queue is bounded; over the bound a transaction skips that node only.
//!
//! Verdicts reach the session on its channel: finalized (with the agreed events), refused by
//! every node, or expired ([`PENDING_TTL`] without a quorum of receipts).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulwark_api::answers::InstrumentAnswer;
use bulwark_api::answers::ReceiptEvent;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::AccountId;
use bulwark_node::client::Client;
use tracing::{debug, info, warn};

/// How long a receipts request waits at a node for the next block.
const RECEIPTS_WAIT_MS: u32 = 500;
/// Timeout of one request to a node (beyond a receipt wait).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Transactions sent to a node in one request.
const BATCH_MAX: usize = 64;
/// Requests a second a sender makes on its node connection, and its burst: under the node's
/// per-connection limit (100 a second, 200 at once), so under load transactions wait a few
/// milliseconds and go in batches instead of being refused.
const REQUESTS_PER_S: f64 = 80.0;
const REQUESTS_BURST: f64 = 100.0;
/// Transactions waiting for one node; at it, the node's queue counts as standing.
const NODE_QUEUE_MAX: usize = 8192;
/// The hard bound of a node's queue; over it, a transaction skips that node (which lets a
/// later transaction of its session overtake it there: a node this far behind is lost anyway).
const NODE_QUEUE_PROTECTED_MAX: usize = 4 * NODE_QUEUE_MAX;
/// Longest refusal reason passed on from a node (it goes into FIX Text).
const REASON_BYTES_MAX: usize = 200;
/// How often a follower asks its node for the instrument table again.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// The whole time a logon waits for the account's key from the nodes.
const ACCOUNT_KEY_WAIT: Duration = Duration::from_millis(1200);
/// Account keys confirmed by a quorum, kept this long.
const ACCOUNT_KEY_TTL: Duration = Duration::from_secs(60);
/// Agreed reads in flight at once in the gateway; over it a read is refused at once.
pub const READS_MAX: usize = 64;
/// Reads one node may hold open at once; over it, the node is not asked.
pub const READS_PER_NODE_MAX: usize = 16;
/// Most account keys kept (the cache is emptied when full).
const ACCOUNT_KEYS_MAX: usize = 100_000;
/// The queueing delay a node's queue may keep.
pub const SHED_TARGET: Duration = Duration::from_millis(20);
/// How long the delay must stay above the target before orders are shed.
pub const SHED_INTERVAL: Duration = Duration::from_millis(100);
/// How long the gateway waits for a transaction's receipts before its waiter hears
/// [`Verdict::Expired`].
pub const PENDING_TTL: Duration = Duration::from_secs(30);
/// How long an expired new order or logon ([`Class::Sheddable`]) is still followed: a quorum
/// of receipts that comes later (a committee slow to recover) still reaches its waiter as
/// [`Verdict::Finalized`]. Cancels and the other protected transactions are forgotten at
/// expiry: their callers retry or answer at once.
pub const LATE_TTL: Duration = Duration::from_secs(300);
/// The most expired transactions followed at once; past it the oldest are forgotten.
const LATE_MAX: usize = 16_384;
/// After a failed connect, how long a node's sender fails fast before trying again.
const RECONNECT_AFTER: Duration = Duration::from_millis(200);

/// Trades the tape keeps for sessions to read (the oldest are dropped).
const TAPE_TRADES_MAX: usize = 20_000;
/// Receipts with fills one node may have voted for that have no quorum yet; over it, the
/// node's oldest vote is dropped (a node reporting made-up heights cannot crowd out the others).
const TAPE_VOTES_PER_NODE_MAX: usize = 4096;
/// Receipts already published, remembered so that a late vote does not publish them again.
const TAPE_DONE_MAX: usize = 16_384;

/// A node's place among its open agreed reads, given back on drop (a panicking read, or a
/// thread that could not start, included).
struct OpenRead(Arc<AtomicUsize>);

impl Drop for OpenRead {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One trade the nodes agree on (a fill in a finalized client transaction's receipt that
/// `quorum` nodes report alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// The tape's own numbering, from 1.
    pub seq: u64,
    /// The block's height.
    pub height: u64,
    /// The instrument, when the receipt names it (its order's acceptance).
    pub instrument: Option<u32>,
    /// The incoming order's side, when the receipt names it.
    pub taker_side: Option<bulwark_engine::Side>,
    /// The resting order.
    pub maker_order: u64,
    /// The incoming order.
    pub taker_order: u64,
    /// Price, ticks.
    pub price: i64,
    /// Lots.
    pub qty: i64,
}

/// One node's report of a receipt with fills.
type Vote = (usize, Vec<ReceiptEvent>);

/// The votes for receipts with fills and the trades published.
#[derive(Default)]
struct Tape {
    /// Per receipt (height, index): each node's vote, the events it reported.
    votes: std::collections::BTreeMap<(u64, u32), Vec<Vote>>,
    per_node: Vec<VecDeque<(u64, u32)>>,
    done: std::collections::BTreeSet<(u64, u32)>,
    trades: VecDeque<Trade>,
    last: u64,
}

/// A finalized transaction's agreed outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The acting id.
    pub account: AccountId,
    /// The nonce.
    pub nonce: u64,
    /// The height it was finalized at.
    pub height: u64,
    /// What it did.
    pub events: Vec<ReceiptEvent>,
}

impl Outcome {
    /// Why the engine rejected the transaction, in words, or `fallback` when it did not say.
    pub fn rejection(&self, fallback: &str) -> String {
        self.events
            .iter()
            .find_map(|e| match e {
                ReceiptEvent::Rejected { reason } => Some(format!("{reason:?}")),
                _ => None,
            })
            .unwrap_or_else(|| fallback.to_string())
    }
}

/// What became of a submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `quorum` nodes reported it finalized with these events.
    Finalized(Outcome),
    /// No node took it: each refused or shed it, or could not be reached before sending.
    Refused {
        /// The nonce.
        nonce: u64,
        /// Why (the nodes' reasons).
        reason: String,
    },
    /// No quorum of receipts within [`PENDING_TTL`]; its fate is unknown to the gateway. The
    /// transaction is still followed for [`LATE_TTL`]: a later quorum sends
    /// [`Verdict::Finalized`] to the same waiter (a later refusal by every node,
    /// [`Verdict::Refused`]).
    Expired {
        /// The nonce.
        nonce: u64,
    },
}

/// A session's new orders whose verdict expired, by nonce: a late [`Verdict::Finalized`] is
/// still reported to the trader. Holds at most [`Late::MAX`]; past it the oldest is forgotten
/// (that order stays pending new, as it was before).
#[derive(Debug)]
pub(crate) struct Late<T> {
    /// By nonce: when it was kept, and the order.
    orders: std::collections::BTreeMap<u64, (Instant, T)>,
}

impl<T> Default for Late<T> {
    fn default() -> Self {
        Late {
            orders: std::collections::BTreeMap::new(),
        }
    }
}

impl<T> Late<T> {
    /// The most late orders one session keeps.
    pub(crate) const MAX: usize = 1024;

    /// Keeps `order` (transaction `nonce`) for a late verdict, as of `now`; forgets those kept
    /// longer than [`LATE_TTL`] (the gateway follows them no more).
    pub(crate) fn keep(&mut self, nonce: u64, order: T, now: Instant) {
        self.orders
            .retain(|_, (kept, _)| now.saturating_duration_since(*kept) < LATE_TTL);
        if self.orders.len() >= Self::MAX {
            self.orders.pop_first();
        }
        self.orders.insert(nonce, (now, order));
    }

    /// The order of transaction `nonce`, if it is kept; no longer kept afterwards.
    pub(crate) fn take(&mut self, nonce: u64) -> Option<T> {
        self.orders.remove(&nonce).map(|(_, order)| order)
    }
}

/// Whether the queues may shed a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// New orders and session opens: shed under a standing queue.
    Sheddable,
    /// Cancels and session closes: never shed, never refused for the queue's length.
    Protected,
}

/// Counters of the committee side.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// Copies of orders shed from a node's queue (a standing queue or a full one).
    pub shed: AtomicU64,
    /// Transactions refused as a whole (every node shed or refused them).
    pub refused: AtomicU64,
    /// Transactions that expired without a quorum of receipts.
    pub expired: AtomicU64,
}

struct Queued {
    tx: Arc<SignedTx>,
    at: Instant,
}

#[derive(Default)]
struct NodeQueue {
    items: Mutex<VecDeque<Queued>>,
    ready: Condvar,
    /// The node's queue is standing (its sender's shedder says so).
    standing: AtomicBool,
}

/// How a node failed a transaction.
enum Failure {
    /// It was not sent, or the node said no: the node does not have it.
    Definite(String),
    /// The request failed midway: the node may have it.
    Unknown,
}

struct Pending {
    waiter: Sender<Verdict>,
    since: Instant,
    /// Per node that reported: the height and the events it reported.
    reports: Vec<(usize, u64, Vec<ReceiptEvent>)>,
    /// Nodes that do not have it, with why.
    refused_by: Vec<(usize, String)>,
    /// Nodes whose request failed midway.
    unknown_at: Vec<usize>,
    /// Its waiter heard [`Verdict::Expired`]; still followed until [`LATE_TTL`].
    expired: bool,
    /// Followed past its expiry ([`Class::Sheddable`]: new orders, replaces, logons).
    follow_late: bool,
}

/// CoDel's standing-queue detector for one node's queue.
#[derive(Debug, Default)]
pub(crate) struct Shedder {
    above_since: Option<Instant>,
}

impl Shedder {
    /// Looks at one item's queueing delay; true when the queue is standing and this item waited
    /// longer than the target (shed it if it may be shed).
    pub(crate) fn standing(&mut self, sojourn: Duration, now: Instant) -> bool {
        if sojourn <= SHED_TARGET {
            self.above_since = None;
            return false;
        }
        let since = *self.above_since.get_or_insert(now);
        now.duration_since(since) >= SHED_INTERVAL
    }
}

/// The committee as the gateway sees it.
pub struct Upstream {
    nodes: Vec<SocketAddr>,
    quorum: usize,
    queues: Vec<NodeQueue>,
    pending: Mutex<HashMap<(AccountId, u64), Pending>>,
    /// Agreed reads in flight.
    reads: AtomicUsize,
    /// Per node, its agreed-read connections still open.
    reads_at: Vec<Arc<AtomicUsize>>,
    /// Per node, the instrument table it last gave, and the one believed.
    tables: RwLock<Tables>,
    /// Account keys a quorum gave alike, with when.
    keys: Mutex<HashMap<AccountId, ([u8; 32], Instant)>>,
    swept: Mutex<Instant>,
    stop: Arc<AtomicBool>,
    /// Counters.
    pub counters: UpstreamCounters,
    /// The trades `quorum` nodes report alike.
    tape: Mutex<Tape>,
}

impl Upstream {
    /// The committee at `nodes`, believing `quorum` agreeing receipts.
    pub fn new(nodes: Vec<SocketAddr>, quorum: usize, stop: Arc<AtomicBool>) -> Arc<Upstream> {
        let node_count = nodes.len();
        Arc::new(Upstream {
            queues: nodes.iter().map(|_| NodeQueue::default()).collect(),
            tables: RwLock::new(Tables {
                per_node: vec![None; nodes.len()],
                agreed: Arc::default(),
            }),
            keys: Mutex::new(HashMap::new()),
            reads_at: nodes.iter().map(|_| Arc::default()).collect(),
            nodes,
            quorum,
            pending: Mutex::new(HashMap::new()),
            reads: AtomicUsize::new(0),
            swept: Mutex::new(Instant::now()),
            stop,
            counters: UpstreamCounters::default(),
            tape: Mutex::new(Tape {
                per_node: vec![VecDeque::new(); node_count],
                ..Tape::default()
            }),
        })
    }

    /// Starts one sender and one receipt follower per node.
    pub fn start(self: &Arc<Self>) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut threads = Vec::new();
        for index in 0..self.nodes.len() {
            let upstream = Arc::clone(self);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("receipts-{index}"))
                    .spawn(move || upstream.follow_node(index))?,
            );
            let upstream = Arc::clone(self);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("submit-{index}"))
                    .spawn(move || upstream.send_node(index))?,
            );
        }
        Ok(threads)
    }

    fn follow_node(&self, index: usize) {
        let addr = self.nodes[index];
        let mut client: Option<Client> = None;
        let mut cursor: Option<(u64, u32)> = None;
        let mut asked: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.sweep();
            let Some(c) = client.as_mut() else {
                client = Client::connect(addr, REQUEST_TIMEOUT).ok();
                if client.is_none() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                continue;
            };
            // The instrument table (believed once `quorum` nodes give it alike), now and then;
            // the first time, also where to start: the node's next block (the gateway waits
            // only for what it submits).
            if cursor.is_none() || asked.is_none_or(|at| at.elapsed() >= STATUS_EVERY) {
                match c.status() {
                    Ok(status) => {
                        asked = Some(Instant::now());
                        self.tables.write().unwrap_or_else(|e| e.into_inner()).set(
                            index,
                            status.instruments,
                            self.quorum,
                        );
                        cursor.get_or_insert((status.height + 1, 0));
                    }
                    Err(error) => {
                        debug!(%addr, %error, "node status failed");
                        client = None;
                        continue;
                    }
                }
            }
            let Some((height, index_in)) = cursor else {
                continue;
            };
            match c.receipts(height, index_in, RECEIPTS_WAIT_MS) {
                Ok(answer) => {
                    for receipt in answer.receipts {
                        if receipt
                            .events
                            .iter()
                            .any(|e| matches!(e, ReceiptEvent::Fill { .. }))
                        {
                            self.tape_vote(index, receipt.height, receipt.index, &receipt.events);
                        }
                        self.report(
                            index,
                            AccountId(receipt.account),
                            receipt.nonce,
                            receipt.height,
                            receipt.events,
                        );
                    }
                    cursor = Some(answer.next);
                }
                Err(error) => {
                    debug!(%addr, %error, "receipts failed; reconnecting");
                    client = None;
                }
            }
        }
    }

    /// Drains node `index`'s queue in batches until `stop`.
    fn send_node(&self, index: usize) {
        let addr = self.nodes[index];
        let queue = &self.queues[index];
        let mut client: Option<Client> = None;
        let mut failed_connect: Option<Instant> = None;
        let mut shedder = Shedder::default();
        let (mut tokens, mut refilled) = (REQUESTS_BURST, Instant::now());
        loop {
            {
                let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                if items.is_empty() {
                    // Nothing waits: nothing stands.
                    queue.standing.store(false, Ordering::Relaxed);
                    shedder = Shedder::default();
                }
                while items.is_empty() && !self.stop.load(Ordering::Relaxed) {
                    items = queue
                        .ready
                        .wait_timeout(items, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            // One request's token; while it comes, the batch grows.
            tokens =
                (tokens + refilled.elapsed().as_secs_f64() * REQUESTS_PER_S).min(REQUESTS_BURST);
            refilled = Instant::now();
            if tokens < 1.0 {
                std::thread::sleep(Duration::from_secs_f64((1.0 - tokens) / REQUESTS_PER_S));
                continue;
            }
            tokens -= 1.0;
            let batch: Vec<Queued> = {
                let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                let n = items.len().min(BATCH_MAX);
                items.drain(..n).collect()
            };
            let now = Instant::now();
            let mut send = Vec::with_capacity(batch.len());
            {
                let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for queued in batch {
                    let standing = shedder.standing(now.duration_since(queued.at), now);
                    queue.standing.store(standing, Ordering::Relaxed);
                    // Settled meanwhile (a quorum of receipts, or expired): not sent again.
                    let key = (queued.tx.account, queued.tx.nonce);
                    if pending.get(&key).is_some_and(|p| !p.expired) {
                        send.push(queued.tx);
                    }
                }
            }
            if send.is_empty() {
                continue;
            }
            if client.is_none() {
                let recently = failed_connect.is_some_and(|at| at.elapsed() < RECONNECT_AFTER);
                if !recently {
                    client = Client::connect(addr, REQUEST_TIMEOUT).ok();
                    failed_connect = client.is_none().then(Instant::now);
                }
            }
            let Some(c) = client.as_mut() else {
                for tx in &send {
                    self.fail(
                        tx,
                        index,
                        Failure::Definite(format!("node {addr} unreachable")),
                    );
                }
                continue;
            };
            let txs: Vec<SignedTx> = send.iter().map(|tx| SignedTx::clone(tx)).collect();
            match c.submit(&txs) {
                Err(bulwark_node::client::ClientError::Node {
                    code: bulwark_api::wire::ErrorCode::RateLimited,
                    ..
                }) => {
                    // Not taken: back to the front of the queue, in order, a little later.
                    let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                    for tx in send.into_iter().rev() {
                        items.push_front(Queued { tx, at: now });
                    }
                    drop(items);
                    tokens = 0.0;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(outcome) => {
                    for refused in outcome.refused {
                        if let Some(tx) = send.get(refused.index as usize) {
                            self.fail(tx, index, Failure::Definite(refused.reason));
                        }
                    }
                }
                Err(error) => {
                    debug!(node = %addr, %error, "submit failed");
                    client = None;
                    for tx in &send {
                        self.fail(tx, index, Failure::Unknown);
                    }
                }
            }
        }
    }

    /// Node `node` does not have `tx` (or may not). When no node can have it, the waiter hears
    /// it was refused.
    fn fail(&self, tx: &SignedTx, node: usize, failure: Failure) {
        let key = (tx.account, tx.nonce);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = pending.get_mut(&key) else {
            return;
        };
        // Each node counts once, whatever it sends.
        if entry.refused_by.iter().any(|(n, _)| *n == node) || entry.unknown_at.contains(&node) {
            return;
        }
        match failure {
            // "Already used" or "conflicts": the node has this nonce, maybe this transaction.
            Failure::Definite(reason)
                if reason.contains("already used") || reason.contains("conflicts with") =>
            {
                entry.unknown_at.push(node)
            }
            Failure::Definite(reason) => entry.refused_by.push((node, clean_reason(&reason))),
            Failure::Unknown => entry.unknown_at.push(node),
        }
        if entry.refused_by.len() < self.nodes.len() {
            return;
        }
        if let Some(done) = pending.remove(&key) {
            let mut reasons: Vec<String> = done.refused_by.into_iter().map(|(_, r)| r).collect();
            reasons.sort();
            reasons.dedup();
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = done.waiter.send(Verdict::Refused {
                nonce: tx.nonce,
                reason: reasons.join("; "),
            });
        }
    }

    fn report(
        &self,
        node: usize,
        account: AccountId,
        nonce: u64,
        height: u64,
        events: Vec<ReceiptEvent>,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = pending.get_mut(&(account, nonce)) else {
            return;
        };
        if entry.reports.iter().any(|(n, _, _)| *n == node) {
            return;
        }
        let agreeing = 1 + entry
            .reports
            .iter()
            .filter(|(_, h, e)| *h == height && *e == events)
            .count();
        entry.reports.push((node, height, events.clone()));
        if agreeing >= self.quorum {
            if let Some(done) = pending.remove(&(account, nonce)) {
                if done.expired {
                    info!(
                        account = account.0,
                        nonce, height, "a quorum of receipts came after the wait expired"
                    );
                }
                let _ = done.waiter.send(Verdict::Finalized(Outcome {
                    account,
                    nonce,
                    height,
                    events,
                }));
            }
        } else if entry.reports.len() >= self.nodes.len() {
            // Every node reported and no outcome has a quorum: some node lies.
            warn!(account = account.0, nonce, "nodes disagree on a receipt");
        }
    }

    /// Ends the waits older than [`PENDING_TTL`] (the waiter hears [`Verdict::Expired`], once),
    /// and forgets the expired ones not followed late, older than [`LATE_TTL`] or past
    /// [`LATE_MAX`] (at most once a second, from any follower).
    fn sweep(&self) {
        let now = Instant::now();
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if now.saturating_duration_since(*swept) < Duration::from_secs(1) {
                return;
            }
            *swept = now;
        }
        self.sweep_at(now);
    }

    /// [`Upstream::sweep`] as of `now`.
    fn sweep_at(&self, now: Instant) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut late: Vec<(Instant, (AccountId, u64))> = Vec::new();
        let mut forget: Vec<(AccountId, u64)> = Vec::new();
        for (key, entry) in pending.iter_mut() {
            let age = now.saturating_duration_since(entry.since);
            if !entry.expired && age >= PENDING_TTL {
                entry.expired = true;
                self.counters.expired.fetch_add(1, Ordering::Relaxed);
                warn!(
                    account = key.0 .0,
                    nonce = key.1,
                    followed = entry.follow_late,
                    "no quorum of receipts within {PENDING_TTL:?}"
                );
                let _ = entry.waiter.send(Verdict::Expired { nonce: key.1 });
            }
            if entry.expired && (!entry.follow_late || age >= LATE_TTL) {
                forget.push(*key);
            } else if entry.expired {
                late.push((entry.since, *key));
            }
        }
        if late.len() > LATE_MAX {
            late.sort_unstable();
            forget.extend(late[..late.len() - LATE_MAX].iter().map(|(_, key)| *key));
        }
        for key in forget {
            pending.remove(&key);
        }
    }

    /// Whether new orders are shed now: fewer than `quorum` node queues are free of a standing
    /// queue.
    pub fn shedding(&self) -> bool {
        let free = self
            .queues
            .iter()
            .filter(|q| !q.standing.load(Ordering::Relaxed))
            .count();
        free < self.quorum
    }

    /// Queues `tx` for every node; its verdict goes to `waiter`. Never blocks on the network.
    /// A new order is refused at once (the verdict is already on `waiter`) while
    /// [`Upstream::shedding`].
    pub fn submit(&self, tx: &SignedTx, class: Class, waiter: Sender<Verdict>) {
        for queue in &self.queues {
            let length = queue.items.lock().unwrap_or_else(|e| e.into_inner()).len();
            if length >= NODE_QUEUE_MAX {
                queue.standing.store(true, Ordering::Relaxed);
            }
        }
        if class == Class::Sheddable && self.shedding() {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = waiter.send(Verdict::Refused {
                nonce: tx.nonce,
                reason: "shed: the committee's queues are standing; try again".into(),
            });
            return;
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (tx.account, tx.nonce),
                Pending {
                    waiter,
                    since: Instant::now(),
                    reports: Vec::new(),
                    refused_by: Vec::new(),
                    unknown_at: Vec::new(),
                    expired: false,
                    follow_late: class == Class::Sheddable,
                },
            );
        let tx = Arc::new(tx.clone());
        let at = Instant::now();
        for (index, queue) in self.queues.iter().enumerate() {
            let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if items.len() >= NODE_QUEUE_PROTECTED_MAX {
                drop(items);
                self.counters.shed.fetch_add(1, Ordering::Relaxed);
                let reason = "the committee's queue is full".to_string();
                self.fail(&tx, index, Failure::Definite(reason));
                continue;
            }
            items.push_back(Queued {
                tx: Arc::clone(&tx),
                at,
            });
            drop(items);
            queue.ready.notify_one();
        }
    }

    /// Sends the verdict of a transaction already submitted, and not yet expired, to `waiter`
    /// instead (false: its verdict, or its expiry, went to the first waiter already).
    pub fn rewait(&self, account: AccountId, nonce: u64, waiter: Sender<Verdict>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(&(account, nonce)) {
            Some(entry) if !entry.expired => {
                entry.waiter = waiter;
                true
            }
            _ => false,
        }
    }

    /// Stops waiting for a transaction.
    pub fn forget(&self, account: AccountId, nonce: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(account, nonce));
    }

    /// Whether the gateway's committee side was stopped.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// How many transactions the gateway waits for (not counting the expired ones it still
    /// follows).
    pub fn waiting(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|p| !p.expired)
            .count()
    }

    /// The account's registered key, believed once `quorum` nodes give the same one (asked of
    /// every node at once, for at most [`ACCOUNT_KEY_WAIT`] in all; a confirmed key is kept for
    /// [`ACCOUNT_KEY_TTL`]). `None` when the account is unknown or the nodes do not agree in
    /// time.
    pub fn account_key(&self, account: AccountId) -> Option<[u8; 32]> {
        {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((key, at)) = keys.get(&account) {
                if at.elapsed() < ACCOUNT_KEY_TTL {
                    return Some(*key);
                }
            }
        }
        // Only the node's refusal (an unknown account) votes "no such key"; busy or rate
        // limited says nothing.
        let answer = self.agreed(ACCOUNT_KEY_WAIT, move |client| {
            match client.account(account) {
                Ok(answer) => Some(
                    hex::decode(&answer.public_key)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok()),
                ),
                Err(bulwark_node::client::ClientError::Node {
                    code: bulwark_api::wire::ErrorCode::Refused,
                    ..
                }) => Some(None),
                Err(_) => None,
            }
        })?;
        if let Some(key) = answer {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() >= ACCOUNT_KEYS_MAX {
                keys.clear();
            }
            keys.insert(account, (key, Instant::now()));
        }
        answer
    }

    /// Node `node`'s receipt (`height`, `index`) with fills: published as trades once `quorum`
    /// nodes report the same events for it.
    fn tape_vote(&self, node: usize, height: u64, index: u32, events: &[ReceiptEvent]) {
        let key = (height, index);
        let mut tape = self.tape.lock().unwrap_or_else(|e| e.into_inner());
        let tape = &mut *tape;
        if tape.done.contains(&key) {
            return;
        }
        let votes = tape.votes.entry(key).or_default();
        if votes.iter().any(|(n, _)| *n == node) {
            return;
        }
        votes.push((node, events.to_vec()));
        let alike = votes.iter().filter(|(_, e)| e == events).count();
        if let Some(mine) = tape.per_node.get_mut(node) {
            mine.push_back(key);
            if mine.len() > TAPE_VOTES_PER_NODE_MAX {
                if let Some(oldest) = mine.pop_front() {
                    if let Some(votes) = tape.votes.get_mut(&oldest) {
                        votes.retain(|(n, _)| *n != node);
                        if votes.is_empty() {
                            tape.votes.remove(&oldest);
                        }
                    }
                }
            }
        }
        if alike < self.quorum {
            return;
        }
        tape.votes.remove(&key);
        tape.done.insert(key);
        while tape.done.len() > TAPE_DONE_MAX {
            tape.done.pop_first();
        }
        for event in events {
            if let ReceiptEvent::Fill {
                maker_order,
                taker_order,
                price,
                qty,
                instrument,
                taker_side,
            } = event
            {
                tape.last += 1;
                // Each fill names its own instrument and side: a block's own receipt holds
                // fills of several orders (triggered stops, liquidations).
                let trade = Trade {
                    seq: tape.last,
                    height,
                    instrument: *instrument,
                    taker_side: *taker_side,
                    maker_order: *maker_order,
                    taker_order: *taker_order,
                    price: *price,
                    qty: *qty,
                };
                tape.trades.push_back(trade);
                if tape.trades.len() > TAPE_TRADES_MAX {
                    tape.trades.pop_front();
                }
            }
        }
    }

    /// The newest trade's number on the tape (0 before any).
    pub fn tape_head(&self) -> u64 {
        self.tape.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Up to `max` trades after number `after`, oldest first (those the tape still keeps).
    pub fn trades_after(&self, after: u64, max: usize) -> Vec<Trade> {
        let tape = self.tape.lock().unwrap_or_else(|e| e.into_inner());
        if tape.last <= after {
            return Vec::new();
        }
        let first = tape.trades.front().map_or(0, |t| t.seq);
        let skip =
            usize::try_from(after.saturating_sub(first.saturating_sub(1))).unwrap_or(usize::MAX);
        tape.trades.iter().skip(skip).take(max).cloned().collect()
    }

    /// What `quorum` nodes answer alike to `ask` (asked of every node at once, each on a thread
    /// of its own, for at most `wait` in all); `None` when they do not agree in time or the
    /// gateway has [`READS_MAX`] reads in flight. `ask` returns `None` for an answer that votes
    /// for nothing (a node busy, unreachable or refusing), so no single node can make up a
    /// reply. When the read is over, every connection it opened is cut, so a node that answers
    /// a byte at a time keeps no thread; a node with [`READS_PER_NODE_MAX`] reads still open
    /// is not asked (it loses its vote, not the others theirs).
    pub fn agreed<T, F>(&self, wait: Duration, ask: F) -> Option<T>
    where
        T: PartialEq + Send + 'static,
        F: Fn(&mut Client) -> Option<T> + Send + Sync + 'static,
    {
        self.agreed_at(wait, 0, move |client| ask(client).map(|answer| (0, answer)))
            .map(|(_, answer)| answer)
    }

    /// [`Upstream::agreed`] for answers that say the committed height they reflect: `ask`
    /// returns (height, answer without its height). Only answers at `floor` or above vote
    /// (what a session has already seen, so a quorum of lagging nodes cannot show it an older
    /// state than its own acknowledgements); answers agree by content, whatever their heights,
    /// and the height given back is the least of the agreeing ones (at least `floor`).
    pub fn agreed_at<T, F>(&self, wait: Duration, floor: u64, ask: F) -> Option<(u64, T)>
    where
        T: PartialEq + Send + 'static,
        F: Fn(&mut Client) -> Option<(u64, T)> + Send + Sync + 'static,
    {
        if self.reads.fetch_add(1, Ordering::AcqRel) >= READS_MAX {
            self.reads.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let ask = Arc::new(ask);
        let (answers, from_nodes) = std::sync::mpsc::channel();
        let cutters: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        for (index, addr) in self.nodes.iter().copied().enumerate() {
            let open = Arc::clone(&self.reads_at[index]);
            if open.fetch_add(1, Ordering::AcqRel) >= READS_PER_NODE_MAX {
                open.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            let (answers, ask) = (answers.clone(), Arc::clone(&ask));
            let (cutters, done) = (Arc::clone(&cutters), Arc::clone(&done));
            // Gives the node's place back however the thread ends (a panic included), or at
            // once when the thread cannot start.
            let place = OpenRead(open);
            let spawned = std::thread::Builder::new()
                .name("agreed-read".into())
                .spawn(move || {
                    let _place = place;
                    if let Ok(mut client) = Client::connect(addr, REQUEST_TIMEOUT) {
                        if let Ok(cutter) = client.cutter() {
                            let mut cutters = cutters.lock().unwrap_or_else(|e| e.into_inner());
                            if done.load(Ordering::Acquire) {
                                let _ = cutter.shutdown(std::net::Shutdown::Both);
                            }
                            cutters.push(cutter);
                        }
                        if let Some(answer) = ask(&mut client) {
                            let _ = answers.send(answer);
                        }
                    }
                });
            drop(spawned);
        }
        drop(answers);
        let deadline = Instant::now() + wait;
        let mut tally = Tally::new(floor, self.quorum);
        let mut agreed = None;
        while let Ok((height, answer)) =
            from_nodes.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            agreed = tally.add(height, answer);
            if agreed.is_some() {
                break;
            }
        }
        // Whatever is still being read is cut now.
        let cutters = cutters.lock().unwrap_or_else(|e| e.into_inner());
        done.store(true, Ordering::Release);
        for cutter in cutters.iter() {
            let _ = cutter.shutdown(std::net::Shutdown::Both);
        }
        drop(cutters);
        self.reads.fetch_sub(1, Ordering::AcqRel);
        agreed
    }

    /// The venue's instruments: the table `quorum` nodes give alike; empty (every order
    /// refused as an unknown instrument) until they do, and while two different tables each
    /// have a quorum (an upgrade under way: no order is priced on a table in doubt).
    /// Sessions ask for it on every turn of their loops, so it is decided when a node's table
    /// changes, not here.
    pub fn instruments(&self) -> Arc<Vec<InstrumentAnswer>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&tables.agreed)
    }
}

/// One node's account answer for [`Upstream::agreed_at`]: its height, and the answer without
/// it (answers agree by content).
pub(crate) fn account_at(
    client: &mut Client,
    account: AccountId,
) -> Option<(u64, bulwark_api::answers::AccountAnswer)> {
    let mut answer = client.account(account).ok()?;
    Some((std::mem::take(&mut answer.height), answer))
}

/// One node's book answer for [`Upstream::agreed_at`], as [`account_at`].
pub(crate) fn book_at(
    client: &mut Client,
    instrument: bulwark_engine::InstrumentId,
    depth: u32,
) -> Option<(u64, bulwark_api::answers::BookAnswer)> {
    let mut answer = client.book(instrument, depth).ok()?;
    Some((std::mem::take(&mut answer.height), answer))
}

/// The votes of one agreed read: answers below `floor` do not vote, and an answer is decided
/// once `quorum` answers equal it. Each node answers once per read (one thread each).
struct Tally<T> {
    floor: u64,
    quorum: usize,
    seen: Vec<(u64, T)>,
}

impl<T: PartialEq> Tally<T> {
    fn new(floor: u64, quorum: usize) -> Self {
        Tally {
            floor,
            quorum,
            seen: Vec::new(),
        }
    }

    /// Counts one node's answer; the decided (least agreeing height, answer) once there is one.
    fn add(&mut self, height: u64, answer: T) -> Option<(u64, T)> {
        if height < self.floor {
            return None;
        }
        let alike = self.seen.iter().filter(|(_, a)| *a == answer);
        let (count, least) = alike.fold((1, height), |(n, h), (at, _)| (n + 1, h.min(*at)));
        if count >= self.quorum {
            return Some((least, answer));
        }
        self.seen.push((height, answer));
        None
    }
}

/// The nodes' instrument tables and the one `quorum` of them give alike.
struct Tables {
    per_node: Vec<Option<Vec<InstrumentAnswer>>>,
    agreed: Arc<Vec<InstrumentAnswer>>,
}

impl Tables {
    /// Node `index` gave `table`: the believed table is decided again if that changed it.
    fn set(&mut self, index: usize, table: Vec<InstrumentAnswer>, quorum: usize) {
        let Some(slot) = self.per_node.get_mut(index) else {
            return;
        };
        if slot.as_ref() == Some(&table) {
            return;
        }
        *slot = Some(table);
        let tables = &self.per_node;
        let mut agreed: Vec<&Vec<InstrumentAnswer>> = Vec::new();
        for table in tables.iter().flatten() {
            let alike = tables.iter().flatten().filter(|t| *t == table).count();
            if alike >= quorum && !agreed.contains(&table) {
                agreed.push(table);
            }
        }
        let believed = match agreed.as_slice() {
            [one] => (*one).clone(),
            _ => Vec::new(),
        };
        if *self.agreed != believed {
            self.agreed = Arc::new(believed);
        }
    }
}

/// A node's refusal reason as the trader may see it: printable, at most
/// [`REASON_BYTES_MAX`] bytes.
fn clean_reason(reason: &str) -> String {
    let mut clean: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.len() > REASON_BYTES_MAX {
        clean.truncate(REASON_BYTES_MAX);
    }
    clean
}

#[cfg(test)]
mod tests_reasons {
    #[test]
    fn a_reason_is_printable_and_short() {
        assert_eq!(super::clean_reason("bad\x01nonce"), "bad?nonce");
        assert_eq!(super::clean_reason(&"x".repeat(1000)).len(), 200);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trade_is_on_the_tape_once_quorum_nodes_report_it_alike() {
        let nodes: Vec<SocketAddr> = (0..4)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            .collect();
        let upstream = Upstream::new(nodes, 2, Arc::new(AtomicBool::new(true)));
        let fill = |price| ReceiptEvent::Fill {
            maker_order: 7,
            taker_order: 9,
            price,
            qty: 1,
            instrument: Some(1),
            taker_side: Some(bulwark_engine::Side::Sell),
        };
        let accepted = ReceiptEvent::Accepted {
            order_id: 9,
            instrument: 1,
            side: bulwark_engine::Side::Sell,
            price: 100,
            qty: 1,
            client_order_id: 0,
        };
        // A lying node alone publishes nothing, however often it says so.
        upstream.tape_vote(3, 10, 0, &[accepted.clone(), fill(1)]);
        upstream.tape_vote(3, 10, 0, &[accepted.clone(), fill(1)]);
        assert_eq!(upstream.tape_head(), 0);
        // It floods made-up receipts: the honest votes are not crowded out.
        upstream.tape_vote(0, 10, 0, &[accepted.clone(), fill(100)]);
        for h in 0..(TAPE_VOTES_PER_NODE_MAX as u64 + 10) {
            upstream.tape_vote(3, 1_000_000 + h, 0, &[fill(1)]);
        }
        upstream.tape_vote(1, 10, 0, &[accepted.clone(), fill(100)]);
        let trades = upstream.trades_after(0, 10);
        assert_eq!(trades.len(), 1);
        assert_eq!(
            (
                trades[0].seq,
                trades[0].instrument,
                trades[0].price,
                trades[0].maker_order
            ),
            (1, Some(1), 100, 7)
        );
        // A late vote does not publish it again.
        upstream.tape_vote(2, 10, 0, &[accepted, fill(100)]);
        assert_eq!(upstream.tape_head(), 1);
        assert!(upstream.trades_after(1, 10).is_empty());
        let votes = upstream
            .tape
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .votes
            .len();
        assert!(votes <= TAPE_VOTES_PER_NODE_MAX, "{votes}");
        // A block's own receipt (liquidations, triggered stops) holds fills of several
        // instruments and sides, with no Accepted: each trade is labelled by its own fill.
        let other = ReceiptEvent::Fill {
            maker_order: 20,
            taker_order: 21,
            price: 5,
            qty: 2,
            instrument: Some(0),
            taker_side: Some(bulwark_engine::Side::Buy),
        };
        for node in [0, 1] {
            upstream.tape_vote(node, 11, 3, &[fill(100), other.clone()]);
        }
        let labels: Vec<_> = upstream
            .trades_after(1, 10)
            .iter()
            .map(|t| (t.maker_order, t.instrument, t.taker_side))
            .collect();
        assert_eq!(
            labels,
            [
                (7, Some(1), Some(bulwark_engine::Side::Sell)),
                (20, Some(0), Some(bulwark_engine::Side::Buy))
            ]
        );
    }

    #[test]
    fn the_shedder_sheds_only_a_standing_queue() {
        let mut shedder = Shedder::default();
        let t0 = Instant::now();
        let slow = SHED_TARGET * 2;
        // A burst above the target is not a standing queue.
        assert!(!shedder.standing(slow, t0));
        assert!(!shedder.standing(slow, t0 + SHED_INTERVAL / 2));
        // Above the target for a whole interval: standing.
        assert!(shedder.standing(slow, t0 + SHED_INTERVAL));
        // One item under the target ends it.
        assert!(!shedder.standing(Duration::ZERO, t0 + SHED_INTERVAL * 2));
        assert!(!shedder.standing(slow, t0 + SHED_INTERVAL * 2));
    }

    fn tx(nonce: u64) -> SignedTx {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        SignedTx::sign(
            AccountId(1),
            nonce,
            bulwark_engine::ClientCommand::MassCancel { instrument: None },
            &key,
        )
    }

    #[test]
    fn a_read_counts_only_answers_at_the_floor_and_gives_the_least_agreeing_height() {
        // quorum 2 of 4; the session has seen height 10.
        let mut tally = Tally::new(10, 2);
        // Two lagging nodes agree on an older state: neither votes.
        assert_eq!(tally.add(8, "old"), None);
        assert_eq!(tally.add(9, "old"), None);
        // Two current nodes agree at different heights: decided at the lesser.
        assert_eq!(tally.add(12, "new"), None);
        assert_eq!(tally.add(11, "new"), Some((11, "new")));
        // A hostile node's inflated height does not lift the answer above an honest one's.
        let mut tally = Tally::new(0, 2);
        assert_eq!(tally.add(u64::MAX, "x"), None);
        assert_eq!(tally.add(3, "y"), None);
        assert_eq!(tally.add(5, "x"), Some((5, "x")));
    }

    /// The nonces of the Expired verdicts waiting on `verdicts`, ascending (the pending map
    /// is a hash map: a sweep tells them in no particular order).
    fn expired_nonces(verdicts: &std::sync::mpsc::Receiver<Verdict>) -> Vec<u64> {
        let mut nonces: Vec<u64> = std::iter::from_fn(|| verdicts.try_recv().ok())
            .map(|v| match v {
                Verdict::Expired { nonce } => nonce,
                other => panic!("only expiries were due: {other:?}"),
            })
            .collect();
        nonces.sort_unstable();
        nonces
    }

    #[test]
    fn an_expired_new_order_still_hears_a_late_quorum_until_the_late_bound() {
        let nodes: Vec<SocketAddr> = (1..=3)
            .map(|p| format!("127.0.0.1:{p}").parse().expect("addr"))
            .collect();
        let upstream = Upstream::new(nodes, 2, Arc::new(AtomicBool::new(false)));
        let (waiter, verdicts) = std::sync::mpsc::channel();
        let t0 = Instant::now();
        upstream.submit(&tx(1), Class::Sheddable, waiter.clone());
        upstream.submit(&tx(2), Class::Sheddable, waiter.clone());
        upstream.sweep_at(t0 + PENDING_TTL / 2);
        assert!(verdicts.try_recv().is_err(), "not expired yet");
        let expiry = t0 + PENDING_TTL + Duration::from_secs(1);
        upstream.sweep_at(expiry);
        assert_eq!(expired_nonces(&verdicts), vec![1, 2]);
        // Expired once only; no longer waiting, and no second waiter can take its verdict.
        upstream.sweep_at(expiry + Duration::from_secs(5));
        assert!(verdicts.try_recv().is_err());
        assert_eq!(upstream.waiting(), 0);
        let (other, _) = std::sync::mpsc::channel();
        assert!(!upstream.rewait(AccountId(1), 1, other));
        // A quorum that comes late still reaches the waiter, as finalized.
        let events = vec![ReceiptEvent::SessionClosed {
            slot: 9,
            expired: false,
        }];
        upstream.report(0, AccountId(1), 1, 40, events.clone());
        assert!(verdicts.try_recv().is_err(), "one node is no quorum");
        upstream.report(1, AccountId(1), 1, 40, events.clone());
        match verdicts.try_recv() {
            Ok(Verdict::Finalized(outcome)) => {
                assert_eq!((outcome.nonce, outcome.height), (1, 40));
                assert_eq!(outcome.events, events);
            }
            other => panic!("a late quorum must finalize: {other:?}"),
        }
        // Past the late bound a transaction is forgotten: its receipts reach nobody.
        upstream.sweep_at(t0 + LATE_TTL + Duration::from_secs(1));
        upstream.report(0, AccountId(1), 2, 41, events.clone());
        upstream.report(1, AccountId(1), 2, 41, events);
        assert!(upstream.pending.lock().expect("lock").is_empty());
        drop(waiter);
        assert_eq!(
            verdicts.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected),
            "no verdict, and no waiter kept"
        );
    }

    #[test]
    fn protected_transactions_are_forgotten_at_expiry_and_a_stale_wait_still_hears_it() {
        let nodes: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().expect("addr")];
        let upstream = Upstream::new(nodes, 1, Arc::new(AtomicBool::new(false)));
        let (waiter, verdicts) = std::sync::mpsc::channel();
        let t0 = Instant::now();
        upstream.submit(&tx(1), Class::Protected, waiter.clone());
        upstream.submit(&tx(2), Class::Sheddable, waiter);
        // A cancel's caller retries or answers at once: nothing of it is kept past expiry.
        upstream.sweep_at(t0 + PENDING_TTL + Duration::from_secs(1));
        assert_eq!(expired_nonces(&verdicts), vec![1, 2]);
        let pending = upstream.pending.lock().expect("lock");
        assert!(!pending.contains_key(&(AccountId(1), 1)));
        assert!(pending.contains_key(&(AccountId(1), 2)));
        drop(pending);
        // A sweep that first runs past the late bound (the process was stopped) still tells
        // the waiter before it forgets.
        let (waiter, verdicts) = std::sync::mpsc::channel();
        upstream.submit(&tx(3), Class::Sheddable, waiter);
        upstream.sweep_at(Instant::now() + LATE_TTL * 2);
        assert_eq!(verdicts.try_recv(), Ok(Verdict::Expired { nonce: 3 }));
        assert!(upstream.pending.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_session_keeps_its_late_orders_within_a_count_and_the_late_bound() {
        let t0 = Instant::now();
        let mut late = Late::default();
        for nonce in 0..(Late::<u64>::MAX as u64 + 3) {
            late.keep(nonce, nonce * 10, t0);
        }
        assert_eq!(late.orders.len(), Late::<u64>::MAX);
        assert_eq!(late.take(2), None, "the oldest were forgotten");
        assert_eq!(late.take(3), Some(30));
        assert_eq!(late.take(3), None, "taken once");
        // Kept longer than the gateway follows them: forgotten at the next keep.
        late.keep(5_000, 1, t0 + LATE_TTL);
        assert_eq!(late.orders.len(), 1);
        assert_eq!(late.take(5_000), Some(1));
    }

    #[test]
    fn a_transaction_is_refused_only_when_no_node_can_have_it() {
        let nodes: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
        ];
        let upstream = Upstream::new(nodes, 2, Arc::new(AtomicBool::new(false)));
        let (waiter, verdicts) = std::sync::mpsc::channel();
        // One node refuses, the other's request failed midway: it may have it, so no verdict.
        upstream.submit(&tx(1), Class::Protected, waiter.clone());
        upstream.fail(&tx(1), 0, Failure::Definite("no".into()));
        upstream.fail(&tx(1), 1, Failure::Unknown);
        assert!(verdicts.try_recv().is_err());
        assert_eq!(upstream.waiting(), 1);
        // One hostile node naming the same transaction many times still counts once; a node
        // that says the nonce is used may have it.
        upstream.submit(&tx(3), Class::Protected, waiter.clone());
        for _ in 0..4 {
            upstream.fail(&tx(3), 0, Failure::Definite("no".into()));
        }
        upstream.fail(
            &tx(3),
            1,
            Failure::Definite("nonce 3 is already used".into()),
        );
        assert!(verdicts.try_recv().is_err());
        // Both refuse: refused, with both reasons.
        upstream.submit(&tx(2), Class::Protected, waiter);
        upstream.fail(&tx(2), 0, Failure::Definite("full".into()));
        upstream.fail(&tx(2), 1, Failure::Definite("bad nonce".into()));
        assert_eq!(
            verdicts.try_recv().expect("a verdict"),
            Verdict::Refused {
                nonce: 2,
                reason: "bad nonce; full".into()
            }
        );
        // Receipts: one node alone is not believed; a second alike is.
        upstream.report(0, AccountId(1), 1, 9, Vec::new());
        assert!(verdicts.try_recv().is_err());
        upstream.report(0, AccountId(1), 1, 9, Vec::new());
        assert!(verdicts.try_recv().is_err(), "one node counts once");
        upstream.report(1, AccountId(1), 1, 9, Vec::new());
        assert!(matches!(
            verdicts.try_recv().expect("a verdict"),
            Verdict::Finalized(Outcome {
                nonce: 1,
                height: 9,
                ..
            })
        ));
        assert_eq!(upstream.waiting(), 1, "only tx 3 still waits");
    }

    #[test]
    fn new_orders_are_shed_at_the_door_while_too_few_queues_are_free_but_cancels_never() {
        let nodes: Vec<SocketAddr> = (1..=4)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let upstream = Upstream::new(nodes, 2, Arc::new(AtomicBool::new(false)));
        let (waiter, verdicts) = std::sync::mpsc::channel();
        for queue in &upstream.queues[..2] {
            queue.standing.store(true, Ordering::Relaxed);
        }
        // Two of four free: still a quorum.
        upstream.submit(&tx(1), Class::Sheddable, waiter.clone());
        assert!(verdicts.try_recv().is_err());
        upstream.queues[2].standing.store(true, Ordering::Relaxed);
        upstream.submit(&tx(2), Class::Sheddable, waiter.clone());
        assert!(matches!(
            verdicts.try_recv(),
            Ok(Verdict::Refused { nonce: 2, .. })
        ));
        upstream.submit(&tx(3), Class::Protected, waiter);
        assert!(verdicts.try_recv().is_err(), "a cancel is never shed");
        assert_eq!(upstream.waiting(), 2);
    }
}
