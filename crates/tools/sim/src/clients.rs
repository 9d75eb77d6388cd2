//! Tracked clients (issue #16): clients that keep what the committee told them, and the
//! checkers that hold the committee to it.
//!
//! Besides the order flow's clients (which hand every transaction to every pool), [`TRACKED`]
//! more accounts trade as a venue client does through a node's endpoint:
//! - One transaction at a time, sent to one member that is up: its endpoint. The endpoint
//!   checks it against its own committed state, and relays what it accepted (here: offers it
//!   to every other member's pool, each checking it against its own committed state). The
//!   client moves to the next member after each receipt, as behind a load balancer.
//! - The client then asks its endpoint for the transaction's receipt. With none after
//!   [`RESEND_MS`], it sends the same bytes to the next member that is up. The engine executes
//!   each (account, nonce) once, so a resend is never executed twice. (The relay goes straight
//!   into the pools, not over the simulated network: partitions do not drop it.)
//! - A node keeps the receipts it serves in memory. At a restart its replica tells again the
//!   blocks it replays from its log, but not those its snapshot covers, so a restarted member
//!   may not answer for a transaction it committed before. A client that finds its nonce used
//!   in a read without a receipt knows its transaction was finalized (it sends one at a time)
//!   and takes that as its verdict (`decided_by_nonce`).
//! - Every tick the client also reads its account's next nonce from its endpoint's committed
//!   state. It keeps a floor: the highest height it has seen in a read or a receipt. An answer
//!   below the floor is stale (a member that is behind, or one that lost its log tail). The
//!   client refuses it, counts it and moves to the next member.
//!
//! The replica tells each finalized block's receipts as it commits the block, to a sink that
//! serves them at the member's endpoint and records them for the checkers ([`Told`], kept over
//! the whole run). A height the member replays at a restart, or commits again after losing it
//! with its disk, is told again, and must be told the same. A transaction finalized again later
//! (a hostile proposer's replay) is refused by the engine as a stale nonce; the endpoint
//! withholds that refusal (the first receipt stands, as in the node's receipt log), and any
//! other second receipt that differs is a violation.
//!
//! At the end of every run the clients stop sending new transactions, and the run waits at most
//! [`DRAIN`] for what they have in flight ([`crate::world::World::drain_clients`]). Then
//! [`check`] requires:
//! - every transaction an endpoint accepted was told by some member: the engine executed it or
//!   refused it in a finalized block (`ack_lost`);
//! - no transaction the endpoint refused was executed (`refused_executed`);
//! - a member tells each transaction once, at one height with one outcome, including after it
//!   lost heights and committed them again (`receipt_changed`);
//! - every member that tells a transaction's receipt tells the same height and outcome
//!   (`receipt_disagrees`);
//! - every read a client took agrees with the receipts: at height h, the account's next nonce is
//!   one past the highest nonce with a receipt at or below h (`read_inconsistent`);
//! - no client is left without a verdict when the drain ends (`undecided`).
//!
//! Reads are monotonic per client because the client refuses answers below its floor: that is
//! the client's rule, counted (`stale_refused`), not something a checker could catch. A refusal
//! at the first send is never relayed, so `refused_executed` guards the model more than the
//! committee.
#![allow(clippy::unwrap_used)] // a poisoned lock is a simulator bug: crash, with the seed.

use crate::check::Violation;
use bulwark_consensus::check::{Receipt, BLOCK_RECEIPT_ACCOUNT};
use bulwark_consensus::mempool::{Keys, Mempool, Origin};
use bulwark_consensus::replica::{CommittedView, ReceiptSink};
use bulwark_engine::codec::SignedTx;
use bulwark_engine::{AccountId, Engine, Event};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// How many tracked clients trade beside the order flow's.
pub const TRACKED: u64 = 2;
/// How long a tracked client waits for a receipt before it sends the same transaction to the
/// next member, virtual milliseconds.
pub const RESEND_MS: u64 = 2_000;
/// How long the end of a run waits for the tracked clients' transactions in flight.
pub const DRAIN: Duration = Duration::from_secs(30);

/// What one member's endpoint told clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Told {
    /// Each transaction's receipt by (account, nonce): its height, and its events (kept for
    /// the tracked accounts only; empty for the others).
    pub receipts: BTreeMap<(u64, u64), (u64, Vec<Event>)>,
    /// Transactions told again differently: (account, nonce, first height, later height).
    pub changed: Vec<(u64, u64, u64, u64)>,
    /// Receipts told again the same: a height replayed from the log at a restart, or committed
    /// again after a damaged disk lost it.
    pub retold: u64,
    /// Stale-nonce refusals of transactions that already had a receipt: replays (a hostile
    /// proposer put a finalized transaction into a later block). The endpoint withholds them,
    /// as the node's receipt log does, and the first receipt stands.
    pub replays: u64,
}

/// One member's [`Told`] (the checkers' record of every receipt it ever told), shared by its
/// replica (through [`sink`]) and the run.
pub(crate) type SharedTold = Arc<Mutex<Told>>;

/// What one member's endpoint serves now: each transaction's receipt height, by (account,
/// nonce). A node keeps these in memory: a restart empties them
/// ([`crate::world::World::launch`]), and only the blocks it replays from its log are told
/// again.
pub(crate) type SharedServed = Arc<Mutex<BTreeMap<(u64, u64), u64>>>;

/// The replica's receipt sink: it serves each receipt at the member's endpoint (the first one
/// of a transaction stands) and records it into `told`, with the events of the accounts in
/// `tracked`.
pub(crate) fn sink(
    told: SharedTold,
    served: SharedServed,
    tracked: RangeInclusive<u64>,
) -> ReceiptSink {
    Arc::new(move |height: u64, receipts: &[Receipt]| {
        let mut told = told.lock().unwrap();
        let mut served = served.lock().unwrap();
        for receipt in receipts {
            if receipt.account == BLOCK_RECEIPT_ACCOUNT {
                continue;
            }
            served
                .entry((receipt.account.0, receipt.nonce))
                .or_insert(height);
            let events = if tracked.contains(&receipt.account.0) {
                receipt.events.clone()
            } else {
                Vec::new()
            };
            let key = (receipt.account.0, receipt.nonce);
            match told.receipts.get(&key) {
                // A replay's refusal, withheld at the endpoint (`served` keeps the first).
                Some(first) if first.0 < height && receipt.is_stale_refusal() => {
                    told.replays += 1;
                }
                Some(first) if *first != (height, events.clone()) => {
                    let first = first.0;
                    told.changed.push((key.0, key.1, first, height));
                }
                Some(_) => told.retold += 1,
                None => {
                    told.receipts.insert(key, (height, events));
                }
            }
        }
    })
}

/// What one tracked client was told over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct History {
    /// Its account.
    pub account: u64,
    /// Nonces an endpoint accepted, with when it first did (virtual ms since the epoch).
    pub accepted: BTreeMap<u64, u64>,
    /// Nonces refused when first sent (never accepted anywhere), with why.
    pub refused: BTreeMap<u64, String>,
    /// Receipts it got: nonce → (height, member that told it).
    pub decided: BTreeMap<u64, (u64, usize)>,
    /// Reads it took, in order: (member, height, the account's next nonce there). A read
    /// equal to the one before it is not repeated.
    pub reads: Vec<(usize, u64, u64)>,
    /// Answers below its floor that it refused.
    pub stale_refused: u64,
    /// Transactions sent again for want of a receipt.
    pub resends: u64,
    /// Verdicts learned from a read (the nonce used) for want of a receipt: every member
    /// that had it restarted since.
    pub decided_by_nonce: u64,
}

/// The tracked clients' side of a run, for the checkers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clients {
    /// Each tracked client's history.
    pub histories: Vec<History>,
    /// Each member's receipts.
    pub told: Vec<Told>,
    /// Transactions still without a verdict when the drain ended: (account, nonce).
    pub undecided: Vec<(u64, u64)>,
}

/// What the tracked clients did, in a run's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientTally {
    /// Transactions an endpoint accepted.
    pub accepted: u64,
    /// Transactions refused when first sent.
    pub refused: u64,
    /// Receipts the clients got.
    pub decided: u64,
    /// Reads taken (distinct in a row).
    pub reads: u64,
    /// Stale answers refused by the clients' floors.
    pub stale_refused: u64,
    /// Transactions sent again.
    pub resends: u64,
    /// Verdicts learned from a read for want of a receipt.
    pub decided_by_nonce: u64,
    /// Replays the engine refused at a later height, whose refusals the endpoints withheld
    /// (over every member; the first receipt stands).
    pub replays_refused: u64,
}

impl ClientTally {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ClientTally) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.decided += other.decided;
        self.reads += other.reads;
        self.stale_refused += other.stale_refused;
        self.resends += other.resends;
        self.decided_by_nonce += other.decided_by_nonce;
        self.replays_refused += other.replays_refused;
    }
}

impl Clients {
    /// Counts over every tracked client.
    pub fn tally(&self) -> ClientTally {
        let mut tally = ClientTally::default();
        for h in &self.histories {
            tally.accepted += h.accepted.len() as u64;
            tally.refused += h.refused.len() as u64;
            tally.decided += h.decided.len() as u64;
            tally.reads += h.reads.len() as u64;
            tally.stale_refused += h.stale_refused;
            tally.resends += h.resends;
            tally.decided_by_nonce += h.decided_by_nonce;
        }
        tally.replays_refused = self.told.iter().map(|t| t.replays).sum();
        tally
    }
}

/// Checks what the tracked clients were told against what the members finalized and told.
pub fn check(clients: &Clients) -> Result<(), Violation> {
    if let Some(&(account, nonce)) = clients.undecided.first() {
        return Err(Violation::Undecided { account, nonce });
    }
    for (member, told) in clients.told.iter().enumerate() {
        if let Some(&(account, nonce, first, again)) = told.changed.first() {
            return Err(Violation::ReceiptChanged {
                member,
                account,
                nonce,
                first,
                again,
            });
        }
    }
    // Every member's receipt of a transaction against the first member's that has one.
    let mut first: BTreeMap<(u64, u64), &(u64, Vec<Event>)> = BTreeMap::new();
    for (member, told) in clients.told.iter().enumerate() {
        for (key, receipt) in &told.receipts {
            let reference = *first.entry(*key).or_insert(receipt);
            if reference != receipt {
                return Err(Violation::ReceiptDisagrees {
                    member,
                    account: key.0,
                    nonce: key.1,
                });
            }
        }
    }
    for history in &clients.histories {
        let account = history.account;
        let height_of = |nonce: u64| first.get(&(account, nonce)).map(|r| r.0);
        for &nonce in history.accepted.keys() {
            if height_of(nonce).is_none() {
                return Err(Violation::AckLost { account, nonce });
            }
        }
        for &nonce in history.refused.keys() {
            if let Some(height) = height_of(nonce) {
                return Err(Violation::RefusedExecuted {
                    account,
                    nonce,
                    height,
                });
            }
        }
        // The account's receipts by height: at height h its next nonce is one past the
        // highest nonce executed at or below h.
        let mut by_height: Vec<(u64, u64)> = first
            .range((account, 0)..=(account, u64::MAX))
            .map(|(key, receipt)| (receipt.0, key.1))
            .collect();
        by_height.sort_unstable();
        for &(member, height, next_nonce) in &history.reads {
            let expected = 1 + by_height
                .iter()
                .take_while(|(h, _)| *h <= height)
                .map(|(_, nonce)| *nonce)
                .max()
                .unwrap_or(0);
            if next_nonce != expected {
                return Err(Violation::ReadInconsistent {
                    account,
                    member,
                    height,
                    next_nonce,
                    expected,
                });
            }
        }
    }
    Ok(())
}

/// A member's committed engine as the pool's [`Keys`]: registered keys and used nonces.
struct ViewKeys<'a>(&'a Engine);

impl Keys for ViewKeys<'_> {
    fn public_key(&self, account: AccountId) -> Option<[u8; 32]> {
        self.0.key_of(account)
    }

    fn next_nonce(&self, account: AccountId) -> u64 {
        self.0.next_nonce(account)
    }
}

/// What the tracked clients reach of the committee.
pub(crate) struct Line {
    /// Every member's current pool.
    pub(crate) mempools: Arc<Mutex<Vec<Mempool>>>,
    /// Which members are up (their endpoint answers).
    pub(crate) up: Arc<Mutex<Vec<bool>>>,
    /// What every member's endpoint serves.
    pub(crate) served: Vec<SharedServed>,
    /// Every member's committed state.
    pub(crate) views: Vec<Arc<Mutex<CommittedView>>>,
    /// Set at the end of a run: send nothing new.
    pub(crate) draining: Arc<AtomicBool>,
    /// Signs client `account`'s transaction with nonce `nonce`.
    pub(crate) sign: fn(u64, u64) -> SignedTx,
}

/// A transaction without a receipt yet.
struct Pending {
    tx: SignedTx,
    sent_ms: u64,
}

/// One tracked client.
pub(crate) struct Client {
    /// What it was told so far (its account included).
    history: History,
    endpoint: usize,
    nonce: u64,
    pending: Option<Pending>,
    floor: u64,
}

impl Client {
    /// Tracked client `index` trading as `account`, starting at member `index`.
    pub(crate) fn new(index: usize, account: u64, members: usize) -> Client {
        Client {
            history: History {
                account,
                ..History::default()
            },
            endpoint: index % members,
            nonce: 0,
            pending: None,
            floor: 0,
        }
    }

    /// The next member after the endpoint that is up (the endpoint itself if it is the only
    /// one).
    fn next_endpoint(&mut self, up: &[bool]) {
        let n = up.len();
        if let Some(next) = (1..=n)
            .map(|step| (self.endpoint + step) % n)
            .find(|m| up[*m])
        {
            self.endpoint = next;
        }
    }

    /// One step at virtual time `now_ms`: look for the pending receipt (or send again), read,
    /// and send the next transaction.
    pub(crate) fn tick(&mut self, line: &Line, now_ms: u64) {
        let up = line.up.lock().unwrap().clone();
        if !up.iter().any(|u| *u) {
            return;
        }
        if !up[self.endpoint] {
            self.next_endpoint(&up);
        }
        // The receipt, if the endpoint has it.
        if let Some(pending) = &self.pending {
            let nonce = pending.tx.nonce;
            let served = line.served[self.endpoint]
                .lock()
                .unwrap()
                .get(&(self.history.account, nonce))
                .copied();
            if let Some(height) = served {
                self.history.decided.insert(nonce, (height, self.endpoint));
                self.floor = self.floor.max(height);
                self.pending = None;
                // Behind a load balancer: the next transaction goes to the next member.
                self.next_endpoint(&up);
            }
        }
        // The read.
        let read = {
            let view = line.views[self.endpoint].lock().unwrap();
            (
                self.endpoint,
                view.height,
                view.engine.next_nonce(AccountId(self.history.account)),
            )
        };
        if read.1 < self.floor {
            self.history.stale_refused += 1;
            self.next_endpoint(&up);
        } else {
            self.floor = read.1;
            if self.history.reads.last() != Some(&read) {
                self.history.reads.push(read);
            }
            // Its nonce used, but no receipt: the member restarted since and forgot it (a
            // node keeps receipts in memory, and its snapshot's heights are not told again). The
            // client knows the transaction was finalized; what it did, only the account's
            // orders and positions can say.
            if let Some(pending) = &self.pending {
                if read.2 > pending.tx.nonce {
                    self.history
                        .decided
                        .insert(pending.tx.nonce, (read.1, read.0));
                    self.history.decided_by_nonce += 1;
                    self.pending = None;
                    self.next_endpoint(&up);
                }
            }
        }
        // No verdict in time: the same bytes to the next member.
        if let Some(pending) = &self.pending {
            if now_ms >= pending.sent_ms + RESEND_MS {
                let tx = pending.tx.clone();
                self.next_endpoint(&up);
                self.history.resends += 1;
                self.send(line, tx, now_ms);
            }
        }
        if self.pending.is_none() && !line.draining.load(Ordering::Relaxed) {
            self.nonce += 1;
            let tx = (line.sign)(self.history.account, self.nonce);
            self.send(line, tx, now_ms);
        }
    }

    /// The nonce of the transaction still waiting for its verdict, if any.
    pub(crate) fn pending_nonce(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.tx.nonce)
    }

    /// What this client was told so far.
    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    /// Sends `tx` to the endpoint; what it accepted, it relays to every other pool.
    fn send(&mut self, line: &Line, tx: SignedTx, now_ms: u64) {
        let nonce = tx.nonce;
        let pools = line.mempools.lock().unwrap().clone();
        let outcome = {
            let view = line.views[self.endpoint].lock().unwrap();
            pools[self.endpoint].insert_batch(
                vec![tx.clone()],
                &ViewKeys(&view.engine),
                Origin::Client {
                    arrived: UNIX_EPOCH + Duration::from_millis(now_ms),
                },
            )
        };
        let resend = self.pending.is_some();
        match outcome.refused.first() {
            None => {
                self.history.accepted.entry(nonce).or_insert(now_ms);
                // Each member takes the relay against its own committed state, as the node's
                // gossip receiver does.
                for (member, pool) in pools.iter().enumerate() {
                    if member != self.endpoint {
                        let view = line.views[member].lock().unwrap();
                        pool.insert_batch(vec![tx.clone()], &ViewKeys(&view.engine), Origin::Peer);
                    }
                }
                self.pending = Some(Pending {
                    tx,
                    sent_ms: now_ms,
                });
            }
            // A resend the endpoint refuses (its nonce used there: the receipt is on its
            // way; or the pool full): the client keeps waiting and sends again later.
            Some(_) if resend => {
                if let Some(pending) = &mut self.pending {
                    pending.sent_ms = now_ms;
                }
            }
            Some((_, why)) => {
                // Refused on its first send: the client is told so and moves on.
                self.history.refused.insert(nonce, why.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(height: u64, account: u64, nonce: u64, events: Vec<Event>) -> Receipt {
        Receipt {
            height,
            account: AccountId(account),
            nonce,
            events,
        }
    }

    /// The sink keeps the first receipt of each transaction, counts one told again the same
    /// and a replay refused later, and records one told again at another height or with other
    /// events; it keeps events for tracked accounts only and skips the block's own receipt.
    #[test]
    fn the_sink_keeps_each_receipt_once_and_records_a_changed_one() {
        let told = SharedTold::default();
        let served = SharedServed::default();
        let sink = sink(told.clone(), served.clone(), 5..=6);
        let event = Event::Rejected {
            account: Some(AccountId(5)),
            client_order_id: 1,
            reason: bulwark_engine::RejectReason::InvalidSize,
        };
        let replay = Event::Rejected {
            account: Some(AccountId(5)),
            client_order_id: 1,
            reason: bulwark_engine::RejectReason::StaleNonce,
        };
        let block_receipt = receipt(3, BLOCK_RECEIPT_ACCOUNT.0, 0, Vec::new());
        sink(
            3,
            &[
                receipt(3, 5, 1, vec![event.clone()]),
                receipt(3, 1, 7, vec![event.clone()]),
                block_receipt,
            ],
        );
        sink(3, &[receipt(3, 5, 1, vec![event.clone()])]);
        {
            let told = told.lock().unwrap();
            assert_eq!(told.receipts.len(), 2);
            assert_eq!(told.receipts[&(5, 1)], (3, vec![event.clone()]));
            assert_eq!(told.receipts[&(1, 7)], (3, Vec::new()));
            assert_eq!(told.retold, 1);
            assert!(told.changed.is_empty());
        }
        // The same transactions proposed again later and refused as replays: withheld.
        sink(
            5,
            &[
                receipt(5, 5, 1, vec![replay.clone()]),
                receipt(5, 1, 7, vec![replay.clone()]),
            ],
        );
        {
            let told = told.lock().unwrap();
            assert_eq!(told.replays, 2);
            assert!(told.changed.is_empty());
            assert_eq!(told.receipts[&(5, 1)], (3, vec![event.clone()]));
        }
        // A stale-nonce refusal of a nonce never told (skipped by a higher one) is its verdict.
        sink(5, &[receipt(5, 5, 2, vec![replay])]);
        sink(4, &[receipt(4, 5, 1, vec![event.clone()])]);
        sink(3, &[receipt(3, 5, 1, Vec::new())]);
        let told = told.lock().unwrap();
        assert_eq!(told.replays, 2);
        assert_eq!(told.receipts[&(5, 2)].0, 5);
        assert_eq!(told.changed, vec![(5, 1, 3, 4), (5, 1, 3, 3)]);
        // The endpoint serves the first receipt of each.
        assert_eq!(
            *served.lock().unwrap(),
            [((1, 7), 3), ((5, 1), 3), ((5, 2), 5)]
                .into_iter()
                .collect()
        );
        assert_eq!(told.receipts[&(5, 1)], (3, vec![event]));
    }

    /// A client whose reads and receipts agree holds; each kind of disagreement is caught.
    #[test]
    fn the_client_checker_catches_each_broken_promise() {
        let mut told = Told::default();
        told.receipts.insert((9, 1), (4, Vec::new()));
        told.receipts.insert((9, 2), (6, Vec::new()));
        let history = History {
            account: 9,
            accepted: [(1, 100), (2, 200)].into_iter().collect(),
            refused: [(3, "the pool is full".to_string())].into_iter().collect(),
            decided: [(1, (4, 0)), (2, (6, 1))].into_iter().collect(),
            reads: vec![(0, 3, 1), (0, 4, 2), (1, 5, 2), (1, 6, 3), (1, 9, 3)],
            stale_refused: 1,
            resends: 0,
            decided_by_nonce: 0,
        };
        let good = Clients {
            histories: vec![history],
            told: vec![told.clone(), told],
            undecided: Vec::new(),
        };
        assert_eq!(check(&good), Ok(()));

        let mut undecided = good.clone();
        undecided.undecided.push((9, 3));
        assert_eq!(
            check(&undecided),
            Err(Violation::Undecided {
                account: 9,
                nonce: 3
            })
        );

        let mut lost = good.clone();
        for told in &mut lost.told {
            told.receipts.remove(&(9, 2));
        }
        lost.histories[0].reads.truncate(3);
        assert_eq!(
            check(&lost),
            Err(Violation::AckLost {
                account: 9,
                nonce: 2
            })
        );

        let mut refused = good.clone();
        refused.histories[0].refused.insert(2, "full".into());
        refused.histories[0].accepted.remove(&2);
        assert_eq!(
            check(&refused),
            Err(Violation::RefusedExecuted {
                account: 9,
                nonce: 2,
                height: 6
            })
        );

        let mut disagrees = good.clone();
        disagrees.told[1].receipts.insert((9, 2), (7, Vec::new()));
        assert_eq!(
            check(&disagrees),
            Err(Violation::ReceiptDisagrees {
                member: 1,
                account: 9,
                nonce: 2
            })
        );

        let mut changed = good.clone();
        changed.told[1].changed.push((9, 2, 6, 7));
        assert_eq!(
            check(&changed),
            Err(Violation::ReceiptChanged {
                member: 1,
                account: 9,
                nonce: 2,
                first: 6,
                again: 7
            })
        );

        // A read that missed the client's own write, and one that saw it too early.
        for (at, read) in [(2, (1, 5, 1)), (0, (0, 3, 2))] {
            let mut inconsistent = good.clone();
            inconsistent.histories[0].reads[at] = read;
            assert!(
                matches!(
                    check(&inconsistent),
                    Err(Violation::ReadInconsistent { .. })
                ),
                "{read:?}"
            );
        }
    }
}
