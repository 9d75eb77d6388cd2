//! The bounded pool of verified client transactions waiting for a block.
//!
//! Every transaction in the pool has passed signature verification under its account's registered
//! key and is keyed by [`TxKey`] (account, nonce). The pool holds at most
//! [`MempoolConfig::txs_max`] transactions, at most [`MempoolConfig::account_txs_max`] per
//! account, and at most one per key: the same bytes again are a duplicate (harmless, counted),
//! different bytes under a key already held are a conflict (refused; the first one stays).
//!
//! Cheap checks run first and under the lock (nonce, key lookup, dedup, bounds); the expensive
//! signature check runs outside the lock on what survived, then the survivors are inserted after
//! re-checking the bounds, since other submitters may have filled the pool meanwhile.
//!
//! The pool reads no clock: the caller passes arrival and commit instants, so tests are
//! deterministic and the node decides what "now" is.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bulwark_engine::codec::{verify_batch_parallel, SignedTx, VerifyError};
use bulwark_engine::AccountId;

/// Default bound on the pool's total transaction count.
pub const MEMPOOL_TXS_MAX: usize = 100_000;
/// Default bound on one account's pending transactions.
pub const MEMPOOL_ACCOUNT_TXS_MAX: usize = 256;

/// Where a transaction sits in the pool: its account and nonce. The engine accepts each
/// (account, nonce) at most once, so two transactions with the same key can never both commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxKey {
    /// Acting account.
    pub account: AccountId,
    /// The transaction's nonce.
    pub nonce: u64,
}

impl TxKey {
    /// The key of `tx`.
    pub fn of(tx: &SignedTx) -> TxKey {
        TxKey {
            account: tx.account,
            nonce: tx.nonce,
        }
    }
}

/// The pool's bounds and how hard it may work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Total transactions held; further inserts are refused with [`Refusal::PoolFull`]. 0 refuses
    /// everything.
    pub txs_max: usize,
    /// Transactions held per account; further inserts for that account are refused with
    /// [`Refusal::AccountFull`]. Keeps one account from crowding out the others.
    pub account_txs_max: usize,
    /// Threads [`Mempool::insert_batch`] may use for signature verification (0 counts as 1).
    pub verify_threads: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            txs_max: MEMPOOL_TXS_MAX,
            account_txs_max: MEMPOOL_ACCOUNT_TXS_MAX,
            verify_threads: 2,
        }
    }
}

/// What the pool needs to know about accounts, answered by the node from its committed engine
/// state. Must be `Sync`: verification asks from several threads.
///
/// Any `Fn(AccountId) -> Option<[u8; 32]> + Sync` closure is a `Keys` that knows nothing of
/// nonces (every nonce from 1 up is fresh).
pub trait Keys: Sync {
    /// The account's registered Ed25519 public key, or `None` when the account does not exist.
    fn public_key(&self, account: AccountId) -> Option<[u8; 32]>;

    /// The smallest nonce the engine would still accept for `account` (its last accepted nonce
    /// plus one). Transactions below it are refused as [`Refusal::StaleNonce`] without checking
    /// their signatures.
    fn next_nonce(&self, account: AccountId) -> u64 {
        let _ = account;
        1
    }
}

impl<F> Keys for F
where
    F: Fn(AccountId) -> Option<[u8; 32]> + Sync,
{
    fn public_key(&self, account: AccountId) -> Option<[u8; 32]> {
        self(account)
    }
}

/// How a transaction reached this node. Only transactions a client submitted here have an
/// arrival time, and so a submit-to-commit latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Submitted by a client to this node's endpoint at `arrived`.
    Client {
        /// When the submission was read off the wire.
        arrived: SystemTime,
    },
    /// Relayed by a peer or otherwise not measured.
    Peer,
}

/// Why one transaction of a batch was not taken into the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Nonce 0 is reserved for trusted local input.
    #[error("nonce 0 is reserved")]
    ZeroNonce,
    /// The account is not open (in the committed state this node knows).
    #[error("unknown account")]
    UnknownAccount,
    /// The account's registered key cannot verify anything (not a point, or a weak key).
    #[error("the account's registered key is unusable")]
    InvalidKey,
    /// The nonce is already used (committed) by the account.
    #[error("nonce {nonce} is already used; the next usable nonce is {next}")]
    StaleNonce {
        /// The transaction's nonce.
        nonce: u64,
        /// The smallest nonce still usable.
        next: u64,
    },
    /// The signature does not verify under the account's key.
    #[error("bad signature")]
    BadSignature,
    /// A different transaction with the same account and nonce is already pending (or earlier in
    /// the same batch); the first one stays.
    #[error("conflicts with a different pending transaction at the same account and nonce")]
    Conflict,
    /// The account already has [`MempoolConfig::account_txs_max`] pending transactions.
    #[error("the account has too many pending transactions")]
    AccountFull,
    /// The pool holds [`MempoolConfig::txs_max`] transactions.
    #[error("the mempool is full")]
    PoolFull,
    /// Verification failed in a way this version of the pool does not know.
    #[error("verification failed: {0}")]
    Verify(String),
}

/// The result of [`Mempool::insert_batch`]. Indices are positions in the batch given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Transactions newly taken into the pool.
    pub accepted: usize,
    /// Transactions whose exact bytes were already pending (or earlier in the batch; such a copy
    /// counts here even if the first one then fails verification, since it would fail alike).
    pub duplicates: usize,
    /// Transactions refused, ascending by index, each with why.
    pub refused: Vec<(usize, Refusal)>,
}

impl From<InsertOutcome> for bulwark_api::wire::SubmitOutcome {
    /// The client's view: counts (saturated at `u32::MAX`, far above any submit limit) and each
    /// refusal's reason as text.
    fn from(outcome: InsertOutcome) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        bulwark_api::wire::SubmitOutcome {
            accepted: count(outcome.accepted),
            duplicates: count(outcome.duplicates),
            refused: outcome
                .refused
                .into_iter()
                .map(|(index, refusal)| bulwark_api::wire::Refused {
                    index: count(index),
                    reason: refusal.to_string(),
                })
                .collect(),
        }
    }
}

/// The result of [`Mempool::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Pending transactions the commit removed.
    pub removed: usize,
    /// Submit-to-commit latency of each removed transaction that a client submitted to this node
    /// (see [`Origin::Client`]), in the order of the keys given.
    pub latencies: Vec<Duration>,
}

/// A thread-safe handle to a bounded pool of verified transactions; clones share the pool.
#[derive(Debug, Clone)]
pub struct Mempool {
    config: MempoolConfig,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct Entry {
    tx: SignedTx,
    arrived: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct State {
    /// Pending transactions per account, in nonce order. No account maps to an empty map.
    accounts: BTreeMap<AccountId, BTreeMap<u64, Entry>>,
    /// Σ over `accounts` of their lengths.
    len: usize,
    /// Where the next [`Mempool::take`] starts its round-robin, so that a `max` smaller than the
    /// number of accounts does not always favour the lowest account ids.
    cursor: Option<AccountId>,
}

/// What the cheap pre-check decided for one transaction of a batch.
enum Verdict {
    Refused(Refusal),
    Duplicate,
    /// Worth verifying.
    Candidate,
}

impl Mempool {
    /// An empty pool with these bounds.
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The pool's bounds.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pending transactions of `account`.
    pub fn account_len(&self, account: AccountId) -> usize {
        self.lock().accounts.get(&account).map_or(0, BTreeMap::len)
    }

    /// True when a transaction with this key is pending.
    pub fn contains(&self, key: TxKey) -> bool {
        self.lock()
            .accounts
            .get(&key.account)
            .is_some_and(|txs| txs.contains_key(&key.nonce))
    }

    /// For each transaction, whether the pool holds exactly it (same bytes): its signature was
    /// verified when it entered, so a block carrying it need not verify it again.
    pub fn holds(&self, txs: &[SignedTx]) -> Vec<bool> {
        let state = self.lock();
        txs.iter()
            .map(|tx| {
                state
                    .accounts
                    .get(&tx.account)
                    .and_then(|pending| pending.get(&tx.nonce))
                    .is_some_and(|entry| entry.tx == *tx)
            })
            .collect()
    }

    /// Checks and inserts a batch. Each transaction is refused, counted as a duplicate, or
    /// accepted, independently of the others: one bad signature does not sink the batch.
    ///
    /// Order of checks: nonce 0, unknown account, stale nonce, duplicate/conflict against the pool
    /// and earlier transactions of the batch, the bounds; then the signatures of the survivors
    /// (with [`verify_batch_parallel`], outside the lock); then the bounds again at insertion.
    /// A transaction is never inserted without a verified signature.
    pub fn insert_batch(
        &self,
        txs: Vec<SignedTx>,
        keys: &dyn Keys,
        origin: Origin,
    ) -> InsertOutcome {
        let mut outcome = InsertOutcome::default();
        let candidates = self.precheck(&txs, keys, &mut outcome);
        let verified = self.verify(&txs, candidates, keys, &mut outcome);

        let arrived = match origin {
            Origin::Client { arrived } => Some(arrived),
            Origin::Peer => None,
        };
        let mut state = self.lock();
        let mut txs: Vec<Option<SignedTx>> = txs.into_iter().map(Some).collect();
        for index in verified {
            let Some(tx) = txs.get_mut(index).and_then(Option::take) else {
                continue;
            };
            match state.admit(&tx, &self.config) {
                Verdict::Candidate => {
                    state.insert(Entry { tx, arrived });
                    outcome.accepted += 1;
                }
                Verdict::Duplicate => outcome.duplicates += 1,
                Verdict::Refused(refusal) => outcome.refused.push((index, refusal)),
            }
        }
        drop(state);
        outcome.refused.sort_by_key(|(index, _)| *index);
        outcome
    }

    /// Up to `max` pending transactions for the next block, passing over those `skip` names
    /// (e.g. already in a proposed ancestor, or whose nonce the parent state has used). Fair
    /// across accounts: round-robin over accounts in id order, starting after the account that
    /// started the previous call, one transaction per account per round; each account's
    /// transactions come out in nonce order. The pool is not changed except for the round-robin
    /// start: transactions stay until [`Mempool::commit`], [`Mempool::remove`] or
    /// [`Mempool::remove_stale`].
    pub fn take(&self, max: usize, mut skip: impl FnMut(&SignedTx) -> bool) -> Vec<SignedTx> {
        let mut state = self.lock();
        let mut out = Vec::with_capacity(max.min(state.len));
        if max == 0 || state.accounts.is_empty() {
            return out;
        }
        let start = state.cursor;
        let ordered = match start {
            Some(start) => state
                .accounts
                .range(start..)
                .chain(state.accounts.range(..start))
                .collect::<Vec<_>>(),
            None => state.accounts.iter().collect(),
        };
        let next_cursor = ordered.get(1).or(ordered.first()).map(|(id, _)| **id);
        let mut queues: Vec<_> = ordered.into_iter().map(|(_, txs)| txs.values()).collect();
        while out.len() < max && !queues.is_empty() {
            queues.retain_mut(|queue| {
                if out.len() >= max {
                    return true;
                }
                for entry in queue.by_ref() {
                    if !skip(&entry.tx) {
                        out.push(entry.tx.clone());
                        return true;
                    }
                }
                false
            });
        }
        state.cursor = next_cursor;
        out
    }

    /// Removes these transactions if pending; returns how many were.
    pub fn remove(&self, keys: &[TxKey]) -> usize {
        let mut state = self.lock();
        keys.iter()
            .filter(|key| state.remove(**key).is_some())
            .count()
    }

    /// Removes transactions that a finalized block carried, and reports the submit-to-commit
    /// latency (`committed - arrived`, zero if the clock went backwards) of those a client
    /// submitted here.
    pub fn commit(&self, keys: &[TxKey], committed: SystemTime) -> CommitOutcome {
        let mut state = self.lock();
        let mut outcome = CommitOutcome::default();
        for key in keys {
            if let Some(entry) = state.remove(*key) {
                outcome.removed += 1;
                if let Some(arrived) = entry.arrived {
                    outcome
                        .latencies
                        .push(committed.duration_since(arrived).unwrap_or_default());
                }
            }
        }
        outcome
    }

    /// Evicts, among `accounts`, every transaction the engine would now refuse as a replay:
    /// those whose nonce is below `next_nonce(account)`, and all of an account for which it
    /// returns `None` (no longer known). Call after each finalized block with the accounts it
    /// carried (only their nonces moved), so the cost follows the block, not the pool. Returns
    /// how many were evicted.
    pub fn remove_stale(
        &self,
        accounts: impl IntoIterator<Item = AccountId>,
        next_nonce: impl Fn(AccountId) -> Option<u64>,
    ) -> usize {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut evicted = 0;
        for account in accounts {
            let Some(txs) = state.accounts.get_mut(&account) else {
                continue;
            };
            let before = txs.len();
            match next_nonce(account) {
                Some(next) => *txs = txs.split_off(&next),
                None => txs.clear(),
            }
            evicted += before - txs.len();
            if txs.is_empty() {
                state.accounts.remove(&account);
            }
        }
        state.len -= evicted;
        evicted
    }

    /// Refuses what fails the cheap checks and counts duplicates; returns the indices worth
    /// verifying, ascending.
    fn precheck(
        &self,
        txs: &[SignedTx],
        keys: &dyn Keys,
        outcome: &mut InsertOutcome,
    ) -> Vec<usize> {
        let state = self.lock();
        // Earlier transactions of this batch that passed, by key, and how many per account: a
        // batch must not overfill the pool or an account on its own either.
        let mut batch: BTreeMap<TxKey, usize> = BTreeMap::new();
        let mut batch_per_account: BTreeMap<AccountId, usize> = BTreeMap::new();
        let mut candidates = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            let key = TxKey::of(tx);
            let verdict = if tx.nonce == 0 {
                Verdict::Refused(Refusal::ZeroNonce)
            } else if keys.public_key(tx.signer()).is_none() {
                Verdict::Refused(Refusal::UnknownAccount)
            } else if let Some(refusal) = stale(tx, keys) {
                Verdict::Refused(refusal)
            } else if let Some(&earlier) = batch.get(&key) {
                // txs[earlier] exists: it was recorded from this same slice.
                if txs.get(earlier) == Some(tx) {
                    Verdict::Duplicate
                } else {
                    Verdict::Refused(Refusal::Conflict)
                }
            } else {
                let extra_account = batch_per_account.get(&tx.account).copied().unwrap_or(0);
                state.admit_with(tx, &self.config, batch.len(), extra_account)
            };
            match verdict {
                Verdict::Refused(refusal) => outcome.refused.push((index, refusal)),
                Verdict::Duplicate => outcome.duplicates += 1,
                Verdict::Candidate => {
                    batch.insert(key, index);
                    *batch_per_account.entry(tx.account).or_insert(0) += 1;
                    candidates.push(index);
                }
            }
        }
        candidates
    }

    /// Verifies the signatures of `candidates` (ascending indices into `txs`); refuses the
    /// failures and returns the indices that verified, ascending.
    fn verify(
        &self,
        txs: &[SignedTx],
        mut candidates: Vec<usize>,
        keys: &dyn Keys,
        outcome: &mut InsertOutcome,
    ) -> Vec<usize> {
        let lookup = |account: AccountId| keys.public_key(account);
        // Each round either succeeds or removes at least one candidate, so this ends. Rounds
        // after the first happen only when the key source changed under us or a registered key
        // is unusable, both rare.
        loop {
            if candidates.is_empty() {
                return candidates;
            }
            let batch: Vec<SignedTx> = candidates
                .iter()
                .filter_map(|&index| txs.get(index).cloned())
                .collect();
            let error = match verify_batch_parallel(&batch, lookup, self.config.verify_threads) {
                Ok(()) => return candidates,
                Err(error) => error,
            };
            let (failed, refusal): (Vec<usize>, Refusal) = match error {
                VerifyError::BadSignatures(bad) => (bad, Refusal::BadSignature),
                VerifyError::ZeroNonce(at) => (vec![at], Refusal::ZeroNonce),
                VerifyError::UnknownAccount(at) => (vec![at], Refusal::UnknownAccount),
                VerifyError::InvalidKey(at) => {
                    // Every transaction of that account fails the same way.
                    let account = batch.get(at).map(|tx| tx.account);
                    let all = (0..batch.len())
                        .filter(|&i| batch.get(i).map(|tx| tx.account) == account)
                        .collect();
                    (all, Refusal::InvalidKey)
                }
                other => {
                    // A refusal this pool does not know: refuse what is left rather than guess.
                    let all = (0..batch.len()).collect();
                    (all, Refusal::Verify(other.to_string()))
                }
            };
            let failed: HashSet<usize> = failed.into_iter().collect();
            let mut kept = Vec::with_capacity(candidates.len());
            for (position, index) in candidates.into_iter().enumerate() {
                if failed.contains(&position) {
                    outcome.refused.push((index, refusal.clone()));
                } else {
                    kept.push(index);
                }
            }
            candidates = kept;
            if matches!(refusal, Refusal::BadSignature) {
                // Bad signatures are reported all at once, after every other check passed.
                return candidates;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("mempool lock must not be poisoned: no code panics while holding it")
    }
}

fn stale(tx: &SignedTx, keys: &dyn Keys) -> Option<Refusal> {
    let next = keys.next_nonce(tx.account);
    (tx.nonce < next).then_some(Refusal::StaleNonce {
        nonce: tx.nonce,
        next,
    })
}

impl State {
    /// What inserting `tx` now would do.
    fn admit(&self, tx: &SignedTx, config: &MempoolConfig) -> Verdict {
        self.admit_with(tx, config, 0, 0)
    }

    /// What inserting `tx` would do if `extra` more transactions (`extra_account` of them of
    /// `tx`'s account) were already in the pool.
    fn admit_with(
        &self,
        tx: &SignedTx,
        config: &MempoolConfig,
        extra: usize,
        extra_account: usize,
    ) -> Verdict {
        let account_txs = self.accounts.get(&tx.account);
        if let Some(entry) = account_txs.and_then(|txs| txs.get(&tx.nonce)) {
            return if entry.tx == *tx {
                Verdict::Duplicate
            } else {
                Verdict::Refused(Refusal::Conflict)
            };
        }
        let account_len = account_txs.map_or(0, BTreeMap::len);
        if account_len.saturating_add(extra_account) >= config.account_txs_max {
            Verdict::Refused(Refusal::AccountFull)
        } else if self.len.saturating_add(extra) >= config.txs_max {
            Verdict::Refused(Refusal::PoolFull)
        } else {
            Verdict::Candidate
        }
    }

    fn insert(&mut self, entry: Entry) {
        let previous = self
            .accounts
            .entry(entry.tx.account)
            .or_default()
            .insert(entry.tx.nonce, entry);
        assert!(
            previous.is_none(),
            "mempool insert must follow an admit that found the key free"
        );
        self.len += 1;
    }

    fn remove(&mut self, key: TxKey) -> Option<Entry> {
        let txs = self.accounts.get_mut(&key.account)?;
        let entry = txs.remove(&key.nonce)?;
        if txs.is_empty() {
            self.accounts.remove(&key.account);
        }
        self.len -= 1;
        Some(entry)
    }
}

#[cfg(test)]
mod tests;
