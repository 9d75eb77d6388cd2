//! The gateway's side of the committee: transactions go to every node's endpoint, and a
//! transaction's outcome is believed only once `quorum` (f + 1) nodes report the same receipt
//! for it, so no single node can make the gateway acknowledge an order that was not finalized
//! or report a refusal that did not happen.
//!
//! One follower thread per node long-polls its receipts; only receipts of transactions the
//! gateway is waiting for are tallied (the tally is bounded by what the sessions have in
//! flight). A waiter gets the agreed events on its channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

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

struct Pending {
    waiter: Sender<Outcome>,
    /// Per node that reported: the height and the events it reported.
    reports: Vec<(usize, u64, Vec<ReceiptEvent>)>,
}

/// The committee as the gateway sees it.
pub struct Upstream {
    nodes: Vec<SocketAddr>,
    quorum: usize,
    submitters: Vec<Mutex<Option<Client>>>,
    pending: Mutex<HashMap<(AccountId, u64), Pending>>,
    instruments: RwLock<Vec<InstrumentAnswer>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    /// The committee at `nodes`, believing `quorum` agreeing receipts.
    pub fn new(nodes: Vec<SocketAddr>, quorum: usize, stop: Arc<AtomicBool>) -> Arc<Upstream> {
        Arc::new(Upstream {
            submitters: nodes.iter().map(|_| Mutex::new(None)).collect(),
            nodes,
            quorum,
            pending: Mutex::new(HashMap::new()),
            instruments: RwLock::new(Vec::new()),
            stop,
        })
    }

    /// Starts one receipt follower per node.
    pub fn follow(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        (0..self.nodes.len())
            .map(|index| {
                let upstream = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("receipts-{index}"))
                    .spawn(move || upstream.follow_node(index))
                    .expect("a receipt follower thread starts")
            })
            .collect()
    }

    fn follow_node(&self, index: usize) {
        let addr = self.nodes[index];
        let mut client: Option<Client> = None;
        let mut cursor: Option<(u64, u32)> = None;
        while !self.stop.load(Ordering::Relaxed) {
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
                let _ = done.waiter.send(Outcome {
                    account,
                    nonce,
                    height,
                    events,
                });
            }
        } else if entry.reports.len() >= self.nodes.len() {
            // Every node reported and no outcome has a quorum: some node lies.
            warn!(account = account.0, nonce, "nodes disagree on a receipt");
        }
    }

    /// Submits `tx` to every node; its agreed outcome goes to `waiter`. Fails when no node took
    /// it (the reasons the nodes gave).
    pub fn submit(&self, tx: &SignedTx, waiter: Sender<Outcome>) -> Result<(), String> {
        let key = (tx.account, tx.nonce);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Pending {
                    waiter,
                    reports: Vec::new(),
                },
            );
        let mut refusals = Vec::new();
        let mut taken = false;
        for (index, slot) in self.submitters.iter().enumerate() {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Client::connect(self.nodes[index], REQUEST_TIMEOUT).ok();
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            match client.submit(std::slice::from_ref(tx)) {
                Ok(outcome) if outcome.refused.is_empty() => taken = true,
                Ok(outcome) => refusals.extend(outcome.refused.into_iter().map(|r| r.reason)),
                Err(error) => {
                    debug!(node = %self.nodes[index], %error, "submit failed");
                    *slot = None;
                }
            }
        }
        if taken {
            Ok(())
        } else {
            self.forget(tx.account, tx.nonce);
            refusals.dedup();
            Err(if refusals.is_empty() {
                "no node of the committee is reachable".to_string()
            } else {
                refusals.join("; ")
            })
        }
    }

    /// Stops waiting for a transaction.
    pub fn forget(&self, account: AccountId, nonce: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(account, nonce));
    }

    /// The account's registered key as the first answering node has it. (A lying node can
    /// only make the gateway try a logon the committee then refuses: the grant is checked
    /// again by every replica.)
    pub fn account_key(&self, account: AccountId) -> Option<[u8; 32]> {
        for addr in &self.nodes {
            let Ok(mut client) = Client::connect(*addr, REQUEST_TIMEOUT) else {
                continue;
            };
            match client.account(account) {
                Ok(answer) => {
                    return hex::decode(&answer.public_key)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok());
                }
                Err(bulwark_node::client::ClientError::Node { .. }) => return None,
                Err(_) => continue,
            }
        }
        None
    }

    /// The venue's instruments, as the first node's status gave them.
    pub fn instruments(&self) -> Vec<InstrumentAnswer> {
        self.instruments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
