//! The receipts of finalized blocks this node committed, kept for gateways: what each client
//! transaction did (refused and why, accepted with the order's id, a session opened, ...).
//! Bounded: the newest [`RECEIPTS_KEPT`] are kept. A gateway asks from a cursor (height, index)
//! and may wait for the next block (a long poll), so it learns of a finalized order within a
//! block time without polling hard.

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use bulwark_api::answers::{ReceiptAnswer, ReceiptsAnswer, RECEIPTS_PER_ANSWER};
use bulwark_consensus::check::Receipt;

/// How many receipts a node keeps.
pub(crate) const RECEIPTS_KEPT: usize = 200_000;
/// Events per receipt of a block's own (liquidations, triggered stops, silenced sessions):
/// a larger one is split over several receipts, so a page stays within its frame.
pub(crate) const BLOCK_RECEIPT_EVENTS_MAX: usize = 512;
/// A page's budget in estimated JSON bytes (a receipt ~100, an event ~200), well inside the
/// 1 MiB frame; a page holds at least one receipt.
const PAGE_BYTES: usize = 512 * 1024;

#[derive(Default)]
struct Log {
    receipts: VecDeque<ReceiptAnswer>,
    /// The (account, nonce) of every transaction receipt in `receipts`: a later stale-nonce
    /// refusal of one of them is a replay and is not told (the first receipt stands).
    told: HashSet<(u64, u64)>,
    /// Replays withheld since start.
    withheld: u64,
    /// The newest height told (blocks without transactions too).
    height: u64,
}

/// The node's receipt log.
#[derive(Default)]
pub(crate) struct ReceiptLog {
    log: Mutex<Log>,
    grew: Condvar,
}

impl ReceiptLog {
    /// Records a finalized block's receipts (called by the replica, in height order). A
    /// transaction's stale-nonce refusal whose (account, nonce) already has a receipt here is
    /// a replay and is withheld: the first receipt stands, so a proposer that puts a finalized
    /// transaction into a later block cannot show a gateway an accepted order as refused. Its
    /// index is still used, so a receipt's (height, index) is the same at every node.
    pub(crate) fn push(&self, height: u64, receipts: &[Receipt]) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = 0u32;
        for receipt in receipts {
            let key = (receipt.account.0, receipt.nonce);
            if receipt.is_stale_refusal() && log.told.contains(&key) {
                log.withheld += 1;
                index = index.saturating_add(1);
                continue;
            }
            let events: Vec<_> = receipt
                .events
                .iter()
                .filter_map(bulwark_api::answers::ReceiptEvent::of)
                .collect();
            let own = receipt.account == bulwark_consensus::check::BLOCK_RECEIPT_ACCOUNT
                && receipt.nonce == 0;
            // A transaction's receipt is kept even when empty (its gateway waits for it); the
            // block's own only for what a gateway reports, in pieces of a bounded size.
            let pieces: Vec<Vec<_>> = if own {
                events
                    .chunks(BLOCK_RECEIPT_EVENTS_MAX)
                    .map(<[_]>::to_vec)
                    .collect()
            } else {
                log.told.insert(key);
                vec![events]
            };
            for events in pieces {
                log.receipts.push_back(ReceiptAnswer {
                    height,
                    index,
                    account: receipt.account.0,
                    nonce: receipt.nonce,
                    events,
                });
                index = index.saturating_add(1);
            }
        }
        let excess = log.receipts.len().saturating_sub(RECEIPTS_KEPT);
        let Log {
            receipts: kept,
            told,
            ..
        } = &mut *log;
        for dropped in kept.drain(..excess) {
            if dropped.account != bulwark_consensus::check::BLOCK_RECEIPT_ACCOUNT.0 {
                told.remove(&(dropped.account, dropped.nonce));
            }
        }
        log.height = log.height.max(height);
        drop(log);
        self.grew.notify_all();
    }

    /// Receipts from (`height`, `index`) on, at most [`RECEIPTS_PER_ANSWER`]; when there are none
    /// and the cursor is past the newest block, waits up to `wait` for one.
    pub(crate) fn since(&self, height: u64, index: u32, wait: Duration) -> ReceiptsAnswer {
        let deadline = Instant::now() + wait;
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        while log.height < height {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            log = self
                .grew
                .wait_timeout(log, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let start = log
            .receipts
            .partition_point(|r| (r.height, r.index) < (height, index));
        let mut budget = PAGE_BYTES;
        let receipts: Vec<ReceiptAnswer> = log
            .receipts
            .iter()
            .skip(start)
            .take(RECEIPTS_PER_ANSWER)
            .enumerate()
            .take_while(|(i, r)| {
                let cost = 100 + 200 * r.events.len();
                let fits = *i == 0 || cost <= budget;
                budget = budget.saturating_sub(cost);
                fits
            })
            .map(|(_, r)| r.clone())
            .collect();
        let more = start + receipts.len() < log.receipts.len();
        let next = match receipts.last() {
            Some(last) if more => (last.height, last.index + 1),
            // Everything up to the newest block was given.
            _ => (log.height.max(height.saturating_sub(1)) + 1, 0),
        };
        ReceiptsAnswer {
            height: log.height,
            oldest: log.receipts.front().map_or(0, |r| r.height),
            receipts,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_engine::AccountId;

    fn receipt(nonce: u64) -> Receipt {
        Receipt {
            height: 0,
            account: AccountId(1),
            nonce,
            events: Vec::new(),
        }
    }

    /// Each receipt of `answer` as (height, index, nonce, events).
    fn shape(answer: &ReceiptsAnswer) -> Vec<(u64, u32, u64, usize)> {
        answer
            .receipts
            .iter()
            .map(|r| (r.height, r.index, r.nonce, r.events.len()))
            .collect()
    }

    fn fill(n: u64) -> bulwark_engine::Event {
        bulwark_engine::Event::Fill {
            instrument: bulwark_engine::InstrumentId(0),
            maker_order: bulwark_engine::OrderId(n),
            taker_order: bulwark_engine::OrderId(n + 1),
            maker: AccountId(1),
            taker: AccountId(2),
            taker_side: bulwark_engine::Side::Buy,
            price: 10,
            qty: 1,
            maker_fee: 0,
            taker_fee: 0,
        }
    }

    #[test]
    fn a_blocks_own_receipt_keeps_what_gateways_report_in_bounded_pieces() {
        let log = ReceiptLog::default();
        let own = |events| Receipt {
            height: 0,
            account: bulwark_consensus::check::BLOCK_RECEIPT_ACCOUNT,
            nonce: 0,
            events,
        };
        // 1 100 fills (a liquidation sweeping a book) among index updates no gateway reports.
        let mut events: Vec<_> = (0..1_100).map(fill).collect();
        events.insert(
            3,
            bulwark_engine::Event::IndexUpdated {
                underlying: 0,
                price_micros: 1,
            },
        );
        log.push(5, &[receipt(1), own(events)]);
        // Only index updates: nothing kept.
        log.push(
            6,
            &[own(vec![bulwark_engine::Event::IndexUpdated {
                underlying: 0,
                price_micros: 2,
            }])],
        );
        let got = log.since(5, 0, Duration::ZERO);
        assert_eq!(
            shape(&got),
            [(5, 0, 1, 0), (5, 1, 0, 512), (5, 2, 0, 512), (5, 3, 0, 76)]
        );
        assert_eq!(got.next, (7, 0));
    }

    /// A stale-nonce refusal of a transaction that has a receipt here is a replay: withheld,
    /// its index skipped (the next receipt's index is the same as at a node that told it).
    /// One of a nonce never told (skipped by a higher one) is that transaction's verdict.
    #[test]
    fn a_replays_refusal_is_withheld_and_the_first_receipt_stands() {
        let log = ReceiptLog::default();
        let stale = |nonce| Receipt {
            events: vec![bulwark_engine::Event::Rejected {
                account: Some(AccountId(1)),
                client_order_id: 0,
                reason: bulwark_engine::RejectReason::StaleNonce,
            }],
            ..receipt(nonce)
        };
        log.push(1, &[receipt(1), receipt(3)]);
        log.push(2, &[stale(1), stale(2), receipt(4), stale(3)]);
        assert_eq!(
            shape(&log.since(1, 0, Duration::ZERO)),
            [(1, 0, 1, 0), (1, 1, 3, 0), (2, 1, 2, 1), (2, 2, 4, 0)]
        );
        assert_eq!(log.log.lock().expect("the receipt log lock").withheld, 2);
    }

    #[test]
    fn a_cursor_pages_through_blocks_and_waits_for_the_next() {
        let log = ReceiptLog::default();
        log.push(1, &[receipt(1), receipt(2)]);
        log.push(2, &[]);
        log.push(3, &[receipt(3)]);
        let all = log.since(1, 0, Duration::ZERO);
        let got: Vec<_> = all
            .receipts
            .iter()
            .map(|r| (r.height, r.index, r.nonce))
            .collect();
        assert_eq!(got, [(1, 0, 1), (1, 1, 2), (3, 0, 3)]);
        assert_eq!((all.height, all.oldest, all.next), (3, 1, (4, 0)));
        let rest = log.since(1, 1, Duration::ZERO);
        assert_eq!(rest.receipts.len(), 2);
        // Nothing past the newest block: waits, and wakes on the next one.
        let shared = std::sync::Arc::new(log);
        let pusher = std::sync::Arc::clone(&shared);
        let waiter = std::thread::spawn(move || shared.since(4, 0, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(50));
        pusher.push(4, &[receipt(4)]);
        let got = waiter.join().expect("the waiter ends");
        assert_eq!(got.receipts.len(), 1);
        assert_eq!(got.next, (5, 0));
        // A page ends mid-block and the cursor resumes inside it.
        let big = ReceiptLog::default();
        let many: Vec<Receipt> = (1..=(RECEIPTS_PER_ANSWER as u64 + 5))
            .map(receipt)
            .collect();
        big.push(7, &many);
        let first = big.since(0, 0, Duration::ZERO);
        assert_eq!(first.receipts.len(), RECEIPTS_PER_ANSWER);
        assert_eq!(first.next, (7, RECEIPTS_PER_ANSWER as u32));
        let second = big.since(first.next.0, first.next.1, Duration::ZERO);
        assert_eq!(second.receipts.len(), 5);
        assert_eq!(second.next, (8, 0));
        // Receipts with many events: a page stays within its byte budget (one per page here),
        // and a receipt over the budget alone still goes out.
        let heavy = ReceiptLog::default();
        let event = bulwark_engine::Event::SessionClosed {
            account: AccountId(1),
            slot: 0,
            expired: false,
        };
        let mut fat = receipt(1);
        fat.events = vec![event; 2000];
        heavy.push(9, &[fat.clone(), fat.clone(), fat]);
        let page = heavy.since(9, 0, Duration::ZERO);
        assert_eq!(page.receipts.len(), 1);
        assert_eq!(page.next, (9, 1));
        let rest = heavy.since(9, 2, Duration::ZERO);
        assert_eq!(rest.receipts.len(), 1);
        assert_eq!(rest.next, (10, 0));
    }
}
