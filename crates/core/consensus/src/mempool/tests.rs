//! Unit tests of the mempool: bounds, dedup, conflicts, verification, fairness, eviction.
#![allow(clippy::unwrap_used)]

use super::*;
use bulwark_engine::ClientCommand;
use ed25519_dalek::SigningKey;

fn signing_key(account: u64) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(account).unwrap() + 1; 32])
}

fn keys(account: AccountId) -> Option<[u8; 32]> {
    (account.0 < 100).then(|| signing_key(account.0).verifying_key().to_bytes())
}

fn tx(account: u64, nonce: u64) -> SignedTx {
    tx_with(account, nonce, None)
}

fn tx_with(account: u64, nonce: u64, instrument: Option<u32>) -> SignedTx {
    SignedTx::sign(
        AccountId(account),
        nonce,
        ClientCommand::MassCancel {
            instrument: instrument.map(bulwark_engine::InstrumentId),
        },
        &signing_key(account),
    )
}

fn pool(txs_max: usize, account_txs_max: usize) -> Mempool {
    Mempool::new(MempoolConfig {
        txs_max,
        account_txs_max,
        verify_threads: 2,
    })
}

fn key(account: u64, nonce: u64) -> TxKey {
    TxKey {
        account: AccountId(account),
        nonce,
    }
}

#[test]
fn accepts_verified_transactions() {
    let pool = pool(10, 10);
    let outcome = pool.insert_batch(vec![tx(1, 1), tx(1, 2), tx(2, 1)], &keys, Origin::Peer);
    assert_eq!(outcome.accepted, 3);
    assert_eq!(outcome.duplicates, 0);
    assert!(outcome.refused.is_empty());
    assert_eq!(pool.len(), 3);
    assert!(pool.contains(key(1, 2)));
}

#[test]
fn bounds_total_and_per_account() {
    let pool = pool(3, 2);
    let outcome = pool.insert_batch(
        vec![tx(1, 1), tx(1, 2), tx(1, 3), tx(2, 1), tx(3, 1)],
        &keys,
        Origin::Peer,
    );
    assert_eq!(outcome.accepted, 3);
    assert_eq!(
        outcome.refused,
        vec![(2, Refusal::AccountFull), (4, Refusal::PoolFull)]
    );
    assert_eq!(pool.len(), 3);
    // The bounds hold across batches too.
    let outcome = pool.insert_batch(vec![tx(4, 1)], &keys, Origin::Peer);
    assert_eq!(outcome.refused, vec![(0, Refusal::PoolFull)]);
    pool.remove(&[key(1, 1)]);
    let outcome = pool.insert_batch(vec![tx(1, 3), tx(4, 1)], &keys, Origin::Peer);
    assert_eq!(outcome.accepted, 1);
    assert_eq!(outcome.refused, vec![(1, Refusal::PoolFull)]);
    assert_eq!(pool.len(), 3);
}

#[test]
fn dedups_and_refuses_conflicts() {
    let pool = pool(10, 10);
    let outcome = pool.insert_batch(vec![tx(1, 1), tx(1, 1)], &keys, Origin::Peer);
    assert_eq!((outcome.accepted, outcome.duplicates), (1, 1));
    let outcome = pool.insert_batch(
        vec![
            tx(1, 1),
            tx_with(1, 1, Some(7)),
            tx(1, 2),
            tx_with(1, 2, Some(7)),
        ],
        &keys,
        Origin::Peer,
    );
    assert_eq!((outcome.accepted, outcome.duplicates), (1, 1));
    assert_eq!(
        outcome.refused,
        vec![(1, Refusal::Conflict), (3, Refusal::Conflict)]
    );
    // The first one stays.
    assert_eq!(pool.take(10, |_| false), vec![tx(1, 1), tx(1, 2)]);
}

#[test]
fn refuses_bad_signatures_unknown_accounts_and_zero_nonces() {
    let pool = pool(10, 10);
    let mut forged = tx(1, 2);
    forged.signature[0] ^= 1;
    let mut other_key = tx(2, 1);
    other_key.account = AccountId(3);
    let outcome = pool.insert_batch(
        vec![tx(1, 1), forged, tx(200, 1), tx(1, 0), other_key, tx(1, 3)],
        &keys,
        Origin::Peer,
    );
    assert_eq!(outcome.accepted, 2);
    assert_eq!(
        outcome.refused,
        vec![
            (1, Refusal::BadSignature),
            (2, Refusal::UnknownAccount),
            (3, Refusal::ZeroNonce),
            (4, Refusal::BadSignature),
        ]
    );
    assert!(!pool.contains(key(1, 2)));
    assert!(pool.contains(key(1, 3)));
}

#[test]
fn refuses_an_unusable_key_for_that_account_only() {
    let pool = pool(10, 10);
    let lookup = |account: AccountId| {
        if account.0 == 2 {
            Some([0u8; 32]) // small-order point: weak
        } else {
            keys(account)
        }
    };
    let outcome = pool.insert_batch(vec![tx(1, 1), tx(2, 1), tx(2, 2)], &lookup, Origin::Peer);
    assert_eq!(outcome.accepted, 1);
    assert_eq!(
        outcome.refused,
        vec![(1, Refusal::InvalidKey), (2, Refusal::InvalidKey)]
    );
}

#[test]
fn verifies_large_batches_in_parallel() {
    let pool = pool(1000, 1000);
    let mut txs: Vec<SignedTx> = (1..=300).map(|nonce| tx(nonce % 5, nonce)).collect();
    txs[150].signature[10] ^= 0x40;
    let outcome = pool.insert_batch(txs, &keys, Origin::Peer);
    assert_eq!(outcome.accepted, 299);
    assert_eq!(outcome.refused, vec![(150, Refusal::BadSignature)]);
}

struct Committed;
impl Keys for Committed {
    fn public_key(&self, account: AccountId) -> Option<[u8; 32]> {
        keys(account)
    }
    fn next_nonce(&self, _: AccountId) -> u64 {
        5
    }
}

#[test]
fn refuses_stale_nonces_and_evicts_them_later() {
    let pool = pool(10, 10);
    let outcome = pool.insert_batch(vec![tx(1, 4), tx(1, 5)], &Committed, Origin::Peer);
    assert_eq!(outcome.accepted, 1);
    assert_eq!(
        outcome.refused,
        vec![(0, Refusal::StaleNonce { nonce: 4, next: 5 })]
    );

    pool.insert_batch(
        vec![tx(1, 6), tx(1, 9), tx(2, 1), tx(3, 3)],
        &keys,
        Origin::Peer,
    );
    assert_eq!(pool.len(), 5);
    let accounts = [1, 2, 3].map(AccountId);
    let evicted = pool.remove_stale(accounts, |account| match account.0 {
        1 => Some(7),
        2 => None,
        _ => Some(1),
    });
    assert_eq!(evicted, 3);
    assert_eq!(pool.len(), 2);
    assert!(pool.contains(key(1, 9)));
    assert!(pool.contains(key(3, 3)));
    assert_eq!(pool.account_len(AccountId(2)), 0);
}

#[test]
fn take_is_round_robin_in_nonce_order() {
    let pool = pool(100, 100);
    let mut txs = Vec::new();
    for nonce in 1..=3 {
        txs.push(tx(1, nonce));
    }
    txs.push(tx(2, 10));
    for nonce in [7, 5] {
        txs.push(tx(3, nonce));
    }
    pool.insert_batch(txs, &keys, Origin::Peer);
    let keys_of = |txs: Vec<SignedTx>| -> Vec<(u64, u64)> {
        txs.iter().map(|t| (t.account.0, t.nonce)).collect()
    };
    assert_eq!(
        keys_of(pool.take(100, |_| false)),
        vec![(1, 1), (2, 10), (3, 5), (1, 2), (3, 7), (1, 3)]
    );
    // The next call starts with the next account.
    assert_eq!(
        keys_of(pool.take(3, |_| false)),
        vec![(2, 10), (3, 5), (1, 1)]
    );
    assert_eq!(keys_of(pool.take(2, |_| false)), vec![(3, 5), (1, 1)]);
    let exclude: HashSet<TxKey> = [key(1, 1), key(3, 5), key(2, 10)].into_iter().collect();
    assert_eq!(
        keys_of(pool.take(10, |tx| exclude.contains(&TxKey::of(tx)))),
        vec![(1, 2), (3, 7), (1, 3)]
    );
    // Skipped ones (here: account 1's nonce 2) are passed over, the ones after them are not.
    assert_eq!(
        keys_of(pool.take(10, |tx| (tx.account.0, tx.nonce) == (1, 2))),
        vec![(2, 10), (3, 5), (1, 1), (3, 7), (1, 3)]
    );
    assert!(pool.take(0, |_| false).is_empty());
    assert_eq!(pool.len(), 6, "take leaves transactions pending");
}

#[test]
fn take_does_not_starve_accounts_under_a_flood() {
    let pool = pool(1000, 1000);
    let flood: Vec<SignedTx> = (1..=200).map(|nonce| tx(1, nonce)).collect();
    pool.insert_batch(flood, &keys, Origin::Peer);
    pool.insert_batch(vec![tx(9, 1)], &keys, Origin::Peer);
    let taken = pool.take(2, |_| false);
    assert!(taken.iter().any(|t| t.account == AccountId(9)));
}

#[test]
fn commit_reports_latency_of_local_submissions_only() {
    let pool = pool(10, 10);
    let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    pool.insert_batch(
        vec![tx(1, 1), tx(1, 2)],
        &keys,
        Origin::Client { arrived: start },
    );
    pool.insert_batch(vec![tx(2, 1)], &keys, Origin::Peer);
    let committed = start + Duration::from_millis(250);
    let outcome = pool.commit(&[key(1, 2), key(2, 1), key(5, 5)], committed);
    assert_eq!(outcome.removed, 2);
    assert_eq!(outcome.latencies, vec![Duration::from_millis(250)]);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.remove(&[key(1, 1), key(1, 1)]), 1);
    assert!(pool.is_empty());
}

#[test]
fn clones_share_one_pool_across_threads() {
    let pool = pool(1000, 1000);
    let handles: Vec<_> = (0..4u64)
        .map(|account| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let txs = (1..=20).map(|nonce| tx(account, nonce)).collect();
                pool.insert_batch(txs, &keys, Origin::Peer).accepted
            })
        })
        .collect();
    let accepted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(accepted, 80);
    assert_eq!(pool.len(), 80);
}
