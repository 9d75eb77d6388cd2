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
//! Shedding (CoDel-style): a node's queue is standing when the time its transactions waited
//! stayed above [`SHED_TARGET`] for a whole [`SHED_INTERVAL`]. While it stands, every new order
//! that waited longer than the target is shed from that node's queue instead of sent. Cancels
//! and session closes are never shed. An order is refused only when every node shed or refused
//! it; a slow node alone only loses its copy (the fast nodes carry the order).
//!
//! Verdicts reach the session on its channel: finalized (with the agreed events), refused by
//! every node, or expired ([`PENDING_TTL`] without a quorum of receipts).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulwark_api::answers::InstrumentAnswer;
use bulwark_api::answers::ReceiptEvent;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::AccountId;
use bulwark_node::client::Client;
use tracing::{debug, warn};

/// How long a receipts request waits at a node for the next block.
const RECEIPTS_WAIT_MS: u32 = 500;
/// Timeout of one request to a node (beyond a receipt wait).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Transactions sent to a node in one request.
const BATCH_MAX: usize = 64;
/// Sheddable transactions waiting for one node; over it, a new order skips that node.
const NODE_QUEUE_MAX: usize = 8192;
/// The queueing delay a node's queue may keep.
pub const SHED_TARGET: Duration = Duration::from_millis(20);
/// How long the delay must stay above the target before orders are shed.
pub const SHED_INTERVAL: Duration = Duration::from_millis(100);
/// How long the gateway waits for a transaction's receipts.
pub const PENDING_TTL: Duration = Duration::from_secs(30);
/// After a failed connect, how long a node's sender fails fast before trying again.
const RECONNECT_AFTER: Duration = Duration::from_millis(200);

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
    /// No quorum of receipts within [`PENDING_TTL`]; its fate is unknown to the gateway.
    Expired {
        /// The nonce.
        nonce: u64,
    },
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
    class: Class,
    at: Instant,
}

#[derive(Default)]
struct NodeQueue {
    items: Mutex<VecDeque<Queued>>,
    ready: Condvar,
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
    instruments: RwLock<Vec<InstrumentAnswer>>,
    swept: Mutex<Instant>,
    stop: Arc<AtomicBool>,
    /// Counters.
    pub counters: UpstreamCounters,
}

impl Upstream {
    /// The committee at `nodes`, believing `quorum` agreeing receipts.
    pub fn new(nodes: Vec<SocketAddr>, quorum: usize, stop: Arc<AtomicBool>) -> Arc<Upstream> {
        Arc::new(Upstream {
            queues: nodes.iter().map(|_| NodeQueue::default()).collect(),
            nodes,
            quorum,
            pending: Mutex::new(HashMap::new()),
            instruments: RwLock::new(Vec::new()),
            swept: Mutex::new(Instant::now()),
            stop,
            counters: UpstreamCounters::default(),
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
        while !self.stop.load(Ordering::Relaxed) {
            self.sweep();
            let Some(c) = client.as_mut() else {
                client = Client::connect(addr, REQUEST_TIMEOUT).ok();
                if client.is_none() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                continue;
            };
            // Start at the node's next block: the gateway waits only for what it submits.
            let (height, index_in) = match cursor {
                Some(at) => at,
                None => match c.status() {
                    Ok(status) => {
                        if !status.instruments.is_empty() {
                            *self.instruments.write().unwrap_or_else(|e| e.into_inner()) =
                                status.instruments;
                        }
                        (status.height + 1, 0)
                    }
                    Err(error) => {
                        debug!(%addr, %error, "node status failed");
                        client = None;
                        continue;
                    }
                },
            };
            match c.receipts(height, index_in, RECEIPTS_WAIT_MS) {
                Ok(answer) => {
                    for receipt in answer.receipts {
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
        loop {
            let batch: Vec<Queued> = {
                let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                while items.is_empty() && !self.stop.load(Ordering::Relaxed) {
                    items = queue
                        .ready
                        .wait_timeout(items, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let n = items.len().min(BATCH_MAX);
                items.drain(..n).collect()
            };
            let now = Instant::now();
            let mut send = Vec::with_capacity(batch.len());
            for queued in batch {
                let standing = shedder.standing(now.duration_since(queued.at), now);
                if standing && queued.class == Class::Sheddable {
                    self.counters.shed.fetch_add(1, Ordering::Relaxed);
                    let reason = "shed: the committee's queue is standing".to_string();
                    self.fail(&queued.tx, index, Failure::Definite(reason));
                } else {
                    send.push(queued.tx);
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
        match failure {
            Failure::Definite(reason) => entry.refused_by.push((node, reason)),
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

    /// Ends the waits older than [`PENDING_TTL`] (at most once a second, from any follower).
    fn sweep(&self) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.elapsed() < Duration::from_secs(1) {
                return;
            }
            *swept = Instant::now();
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<(AccountId, u64)> = pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= PENDING_TTL)
            .map(|(k, _)| *k)
            .collect();
        for key in old {
            if let Some(done) = pending.remove(&key) {
                self.counters.expired.fetch_add(1, Ordering::Relaxed);
                warn!(
                    account = key.0 .0,
                    nonce = key.1,
                    "no quorum of receipts within {PENDING_TTL:?}"
                );
                let _ = done.waiter.send(Verdict::Expired { nonce: key.1 });
            }
        }
    }

    /// Queues `tx` for every node; its verdict goes to `waiter`. Never blocks on the network.
    pub fn submit(&self, tx: &SignedTx, class: Class, waiter: Sender<Verdict>) {
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
                },
            );
        let tx = Arc::new(tx.clone());
        let at = Instant::now();
        for (index, queue) in self.queues.iter().enumerate() {
            let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if class == Class::Sheddable && items.len() >= NODE_QUEUE_MAX {
                drop(items);
                self.counters.shed.fetch_add(1, Ordering::Relaxed);
                let reason = "shed: the committee's queue is full".to_string();
                self.fail(&tx, index, Failure::Definite(reason));
                continue;
            }
            items.push_back(Queued {
                tx: Arc::clone(&tx),
                class,
                at,
            });
            drop(items);
            queue.ready.notify_one();
        }
    }

    /// Sends the verdict of a transaction already submitted to `waiter` instead.
    pub fn rewait(&self, account: AccountId, nonce: u64, waiter: Sender<Verdict>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(&(account, nonce)) {
            Some(entry) => {
                entry.waiter = waiter;
                true
            }
            None => false,
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

    /// How many transactions the gateway waits for.
    pub fn waiting(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The account's registered key, believed once `quorum` nodes give the same one. `None`
    /// when the account is unknown or the nodes do not agree.
    pub fn account_key(&self, account: AccountId) -> Option<[u8; 32]> {
        let mut answers: Vec<Option<[u8; 32]>> = Vec::new();
        for addr in &self.nodes {
            let Ok(mut client) = Client::connect(*addr, REQUEST_TIMEOUT) else {
                continue;
            };
            let answer = match client.account(account) {
                Ok(answer) => hex::decode(&answer.public_key)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok()),
                Err(bulwark_node::client::ClientError::Node { .. }) => None,
                Err(_) => continue,
            };
            answers.push(answer);
            let agreeing = answers.iter().filter(|a| **a == answer).count();
            if agreeing >= self.quorum {
                return answer;
            }
        }
        None
    }

    /// The venue's instruments, as the nodes' status gave them.
    pub fn instruments(&self) -> Vec<InstrumentAnswer> {
        self.instruments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(upstream.waiting(), 0);
    }
}
