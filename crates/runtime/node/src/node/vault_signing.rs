//! The vault's signing between members over the p2p channel [`CHANNEL_SIGNING`]
//! (`docs/vault.md`): each withdrawal the ledger recorded is signed once, by t members, in a
//! round of two network round trips that one member coordinates.
//!
//! **Who coordinates.** For withdrawal `w`, recorded at venue time `r` in a block proposed by
//! holder number `p` of the h members holding the current shares, the coordinator at committed
//! venue time `now` is holder `(p + (now − r) / ROTATE_MS) mod h` (`p = w mod h` when the
//! proposer holds no current share): the proposer first, then one member at a time, the next one
//! after [`ROTATE_MS`] without a signature. At each epoch change the members that stay refresh
//! the shares first. A member answers a commit request only from the member whose turn it is by
//! its own committed state (or the one before it). Withdrawals are taken in id order, one round
//! at a time per node.
//!
//! **What a member signs.** Everything goes through the one rule of `bulwark_vault::release`
//! against the withdrawal its own committed engine recorded: `pledge` at the commit request (the
//! member then marks the transaction and takes the round's nonces out of its book), and
//! `prepare_pledged` at the sign request. The mark and the spent nonces are synced to disk
//! (sealed by the vault backend) once the commitments left and before the share exists. A
//! refusal that convicts the requester is recorded as `vault_request` evidence, which the
//! sentinel counts.
//!
//! **The record.** The coordinator checks the signature by the one rule
//! (`SignedWithdrawal::check`: libsecp256k1 BIP340 under the taproot output key, ed25519-dalek
//! strict) and sends it to every member, which checks it the same way before it stores it in
//! `<data_dir>/vault/signed.json` and shows it (`bulwark client withdrawals`).
//!
//! **Bitcoin inputs.** A DEVELOPMENT committee's vault outputs are the simulated chain's
//! deposits the ledger credited, plus the change of signed withdrawals, less what signed
//! withdrawals spent; every member computes the same set, so a retry by the next coordinator
//! builds the same transaction. A production node has no chain watcher yet: it does not
//! coordinate Bitcoin withdrawals (it still answers other coordinators), and says so.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, OutPoint, Txid};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::replica::PublicKey;
use bulwark_engine::Engine;
use bulwark_vault::deposit::{ChainSource as _, SimulatedChain};
use bulwark_vault::keygen::KeyShare;
use bulwark_vault::release::{
    pledge, prepare_pledged, Authorization, BitcoinBody, BitcoinPolicy, Refusal, VaultSuite,
    Watermarks,
};
use bulwark_vault::round::{self, Coordinator, Message, SignedWithdrawal, Step};
use bulwark_vault::signing::{NonceBook, SigningNonces};
use bulwark_vault::taproot::{self, Utxo};
use bulwark_vault::{Chain, Ed25519, Member, Taproot};
use bulwark_vaultstore::{Backend, VaultFiles};
use commonware_macros::select;
use commonware_p2p::Recipients;
use commonware_runtime::{Clock, IoBuf};
use commonware_utils::ordered::Set;
use tracing::{info, warn};

use super::vault_keys::VaultKeys;

mod peers;
mod repair;

/// p2p channel of the vault's signing rounds.
pub const CHANNEL_SIGNING: u64 = 13;

/// Venue time a coordinator has for a withdrawal before the next member takes over.
pub const ROTATE_MS: u64 = 10_000;

/// How long a coordinator waits for a round before it starts another with fresh nonces.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the task looks for work.
const TICK: Duration = Duration::from_millis(100);

/// Every this many ticks a member pings each peer on this channel (the round-trip figure).
const PING_TICKS: u64 = 20;

/// A member keeps at least this many unspent nonces per key, topping up in batches.
const NONCES_LOW: usize = 16;
const NONCES_BATCH: usize = 48;

/// Commit requests a coordinator may have answered per second (each marks and syncs).
const PLEDGES_PER_S: u32 = 5;

/// Rounds a member keeps nonces committed to at once (one per coordinator is live).
const PLEDGES_KEPT: usize = 16;

/// Withdrawals remembered as committed to again in this run.
const PLEDGES_REMEMBERED: usize = 4_096;

/// The engine's micros to the chain's smallest unit. DEVELOPMENT: one to one (the simulated
/// chain credits sats as micros); a real venue converts per asset.
const UNITS_PER_MICRO: u64 = 1;

/// The Bitcoin fee policy every member applies (sats).
pub const FEE_MIN_SATS: u64 = 1_000;
/// Smallest fee rate, sats per virtual byte.
pub const FEE_RATE_MIN_SAT_VB: u64 = 2;
/// Largest fee, sats.
pub const FEE_MAX_SATS: u64 = 100_000;

/// Evidence records per peer per second, at most.
const EVIDENCE_PER_PEER_S: u32 = 2;

/// Frames a peer may send per second on this channel before they are dropped unread.
const PEER_FRAMES_PER_S: u32 = 200;

/// Records kept: a signed withdrawal older than this many ids below the newest is forgotten
/// from memory and disk (the chain has it).
const SIGNED_KEPT: usize = 4_096;

/// The file of signed withdrawals under `<data_dir>/vault/`.
pub const SIGNED_FILE: &str = "signed.json";

/// What the node shows of the vault (the endpoint reads it).
#[derive(Debug, Default)]
pub struct Status {
    /// The vault's keys, once held.
    pub keys: Option<VaultKeys>,
    /// Checked signed withdrawals, with their messages.
    pub signed: BTreeMap<u64, (SignedWithdrawal, Vec<Vec<u8>>)>,
    /// Withdrawals this node released a share for or coordinates, not yet signed.
    pub signing: BTreeSet<u64>,
    /// The newest rounds this node coordinated to a signature: milliseconds from its commit
    /// request to the checked signature (at most [`ROUNDS_KEPT`]).
    pub round_ms: VecDeque<f64>,
    /// The newest round trips to peers on this channel, milliseconds (at most [`ROUNDS_KEPT`]).
    pub rtt_ms: VecDeque<f64>,
    /// The newest shares this node released as a signer: milliseconds from the sign request to
    /// the share (checks, synced files, round 2), at most [`ROUNDS_KEPT`].
    pub share_ms: VecDeque<f64>,
    /// Of those, the synced writes of the watermark and the spent nonces, milliseconds.
    pub sync_ms: VecDeque<f64>,
    /// Withdrawals this node recorded as signed since start (a count that only grows, for the
    /// metrics; `signed` keeps the newest).
    pub signed_total: u64,
    /// Rounds this node coordinated to a signature since start.
    pub rounds_total: u64,
}

/// Round latencies kept for the status.
pub const ROUNDS_KEPT: usize = 256;

/// The shared status.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Why the signing task stopped.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The vault's files cannot be read or written.
    #[error("vault files: {0}")]
    Store(String),
    /// The p2p network stopped.
    #[error("the p2p network stopped")]
    Network,
}

/// One key as this member holds it.
struct Key<C: VaultSuite> {
    share: KeyShare<C>,
    group_key: Vec<u8>,
    book: NonceBook<C>,
    marks: Watermarks,
    /// Per withdrawal, the round this member committed nonces to (the nonces are out of the
    /// book and recorded spent: they sign for that round alone, or for nothing).
    pledges: BTreeMap<u64, Pledge<C>>,
    /// Withdrawals this member bound at a commit request in this run (or before an epoch change
    /// in it) and released no share for since: it may commit to them again (an Ed25519
    /// withdrawal bound already is refused otherwise: its share may have left). When full, the
    /// lowest id is dropped, which only refuses more.
    repledgeable: BTreeSet<u64>,
    /// Commitments made per coordinator in the current second (each costs a synced write).
    pledge_budget: BTreeMap<Member, (u64, u32)>,
    /// The watermarks changed since they were last synced (a pledge's mark and spent nonces).
    unsynced: bool,
    /// How long the last synced write of a pledge took.
    last_sync: Option<(SystemTime, SystemTime)>,
}

/// The nonces a member committed to one coordinator's round for one withdrawal.
struct Pledge<C: VaultSuite> {
    coordinator: Member,
    round: u64,
    /// The transaction marked (txid; for Ed25519 the digest of the message).
    transaction: [u8; 32],
    /// (slot, nonces), in the order of the round's messages.
    nonces: Vec<(u64, SigningNonces<C>)>,
    at: SystemTime,
}

/// What a member answers to a commit request.
enum Commitment {
    /// Its commitments, one per message.
    Slots(Vec<(u64, Vec<u8>)>),
    /// Why not (the coordinator leaves it out of the round).
    Refused(Refusal),
    /// Nothing (too many requests this second, or no nonces).
    Nothing,
}

impl<C: VaultSuite> Key<C> {
    fn open(
        files: &mut VaultFiles<Backend>,
        epoch: u64,
        group_key: &[u8],
    ) -> Result<Self, SigningError> {
        let store = |e: bulwark_vaultstore::StoreError| SigningError::Store(e.to_string());
        let share = files
            .share::<C>(epoch, group_key)
            .map_err(store)?
            .ok_or_else(|| {
                SigningError::Store(format!("no {} share for epoch {epoch}", C::CHAIN.name()))
            })?;
        let mut book = files.nonces::<C>(epoch, group_key).map_err(store)?;
        let marks = files.watermarks(C::CHAIN, group_key).map_err(store)?;
        // Slots spent after the book was last written are in the watermarks.
        for slot in marks.spent(epoch) {
            let _ = book.spend(slot);
        }
        // A watermarks record that did not open (a write torn by a stop, or damage) may have
        // named more spent slots: none of the book's nonces is used (the next top-up makes new
        // ones under new slot numbers).
        if files.take_torn(C::CHAIN) {
            warn!(
                chain = C::CHAIN.name(),
                "the newest vault watermarks record does not open (a write cut by a stop, or damage): the older one is used, and every precomputed nonce is dropped"
            );
            book.clear();
        }
        Ok(Self {
            book,
            marks,
            share,
            group_key: group_key.to_vec(),
            pledges: BTreeMap::new(),
            repledgeable: BTreeSet::new(),
            pledge_budget: BTreeMap::new(),
            unsynced: false,
            last_sync: None,
        })
    }

    /// Keeps the book above [`NONCES_LOW`]; the new nonces reach the disk before any
    /// commitment to them leaves. The book written has no spent slot, so the watermarks may
    /// forget them afterwards (book first: a stop in between leaves them recorded twice).
    fn top_up(&mut self, files: &mut VaultFiles<Backend>, epoch: u64) -> Result<(), SigningError> {
        if self.book.unspent() >= NONCES_LOW {
            return Ok(());
        }
        let store = |e: bulwark_vaultstore::StoreError| SigningError::Store(e.to_string());
        let seed: [u8; 32] = rand::random();
        self.book.precompute(&self.share, NONCES_BATCH, seed);
        files
            .put_nonces::<C>(epoch, &self.group_key, &self.book)
            .map_err(store)?;
        if self.marks.spent_count() > 0 {
            self.marks.forget_spent_through(epoch);
            files
                .put_watermarks(C::CHAIN, &self.group_key, &self.marks)
                .map_err(store)?;
        }
        Ok(())
    }

    /// Round 1: commits nonces to `from`'s round `round` of `withdrawal` for `body` (`None`
    /// for Ed25519), if the transaction passes the one rule and the watermarks. The mark and the
    /// spent nonces are synced by [`Key::flush`], which the caller runs once the commitments
    /// are on their way (and [`Key::answer`] runs before any share leaves).
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        files: &mut VaultFiles<Backend>,
        epoch: u64,
        from: Member,
        (withdrawal, round, count): (u64, u64, usize),
        body: Option<&BitcoinBody>,
        authorization: Option<&Authorization>,
        policy: &BitcoinPolicy,
        now: SystemTime,
    ) -> Result<Commitment, SigningError> {
        let commitments = |nonces: &[(u64, SigningNonces<C>)]| -> Option<Vec<(u64, Vec<u8>)>> {
            nonces
                .iter()
                .map(|(slot, n)| n.commitments().serialize().ok().map(|c| (*slot, c)))
                .collect()
        };
        // The same request again (a resend): the same commitments, no new write.
        if let Some(pledge) = self.pledges.get(&withdrawal) {
            if pledge.coordinator == from && pledge.round == round {
                return Ok(
                    commitments(&pledge.nonces).map_or(Commitment::Nothing, Commitment::Slots)
                );
            }
        }
        let now_s = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let spent = self.pledge_budget.entry(from).or_insert((now_s, 0));
        if spent.0 != now_s {
            *spent = (now_s, 0);
        }
        if spent.1 >= PLEDGES_PER_S {
            return Ok(Commitment::Nothing);
        }
        let repledge = self.repledgeable.contains(&withdrawal);
        let transaction = match pledge::<C>(
            withdrawal,
            C::CHAIN,
            body,
            count,
            authorization,
            &self.marks,
            Some(policy),
            repledge,
        ) {
            Ok(transaction) => transaction,
            Err(refusal) => return Ok(Commitment::Refused(refusal)),
        };
        spent.1 += 1;
        self.top_up(files, epoch)?;
        let slots: Vec<u64> = self.book.slots().take(count).collect();
        if slots.len() < count {
            return Ok(Commitment::Nothing);
        }
        if !self.marks.bind(C::CHAIN, withdrawal, transaction) {
            return Ok(Commitment::Refused(Refusal::Attempts(withdrawal)));
        }
        // This withdrawal's earlier round and this coordinator's earlier round are over here:
        // their nonces are dropped (spent on disk, never used).
        self.pledges.remove(&withdrawal);
        self.pledges.retain(|_, p| p.coordinator != from);
        while self.pledges.len() >= PLEDGES_KEPT {
            let oldest = self
                .pledges
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.pledges.remove(&id),
                None => break,
            };
        }
        let mut nonces = Vec::with_capacity(count);
        for slot in slots {
            if let Ok(n) = self.book.spend(slot) {
                nonces.push((slot, n));
            }
        }
        self.marks
            .note_spent(epoch, nonces.iter().map(|(slot, _)| *slot));
        self.unsynced = true;
        let Some(out) = commitments(&nonces) else {
            return Ok(Commitment::Nothing);
        };
        if !self.repledgeable.contains(&withdrawal) {
            if self.repledgeable.len() >= PLEDGES_REMEMBERED {
                self.repledgeable.pop_first();
            }
            self.repledgeable.insert(withdrawal);
        }
        self.pledges.insert(
            withdrawal,
            Pledge {
                coordinator: from,
                round,
                transaction,
                nonces,
                at: now,
            },
        );
        Ok(Commitment::Slots(out))
    }

    /// Syncs the watermarks if a pledge changed them: one synced write for the mark and the
    /// spent nonces.
    fn flush(&mut self, files: &mut VaultFiles<Backend>) -> Result<(), SigningError> {
        if !self.unsynced {
            return Ok(());
        }
        let syncing = SystemTime::now();
        files
            .put_watermarks(C::CHAIN, &self.group_key, &self.marks)
            .map_err(|e| SigningError::Store(e.to_string()))?;
        self.unsynced = false;
        self.last_sync = Some((syncing, SystemTime::now()));
        Ok(())
    }

    /// Round 2: answers `from`'s sign request of round `round` with the nonces committed to
    /// that very round, for the transaction it marked then (after the synced write).
    fn answer(
        &mut self,
        files: &mut VaultFiles<Backend>,
        (from, round): (Member, u64),
        request: &bulwark_vault::release::SignRequest,
        authorization: Option<&Authorization>,
        policy: &BitcoinPolicy,
    ) -> Result<Result<Vec<Vec<u8>>, Refusal>, SigningError> {
        let id = request.withdrawal;
        // This round's nonces, used up here whatever the answer.
        let ours = self
            .pledges
            .get(&id)
            .is_some_and(|p| p.coordinator == from && p.round == round);
        let Some(mut pledge) = ours.then(|| self.pledges.remove(&id)).flatten() else {
            // Not this round's nonces (a restart between the two rounds, or a stale request).
            return Ok(Err(Refusal::Nonce {
                withdrawal: id,
                slot: request.packages.first().map_or(0, |(slot, _)| *slot),
            }));
        };
        self.flush(files)?;
        let prepared = prepare_pledged::<C>(
            request,
            authorization,
            &self.share,
            &|slot| {
                pledge
                    .nonces
                    .iter()
                    .find(|(s, _)| *s == slot)
                    .map(|(_, n)| *n.commitments())
            },
            Some(policy),
            &pledge.transaction,
        );
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut nonces = Vec::with_capacity(prepared.packages.len());
        for slot in prepared.slots() {
            match pledge.nonces.iter().position(|(s, _)| *s == slot) {
                Some(at) => nonces.push(pledge.nonces.swap_remove(at).1),
                None => {
                    return Ok(Err(Refusal::Nonce {
                        withdrawal: id,
                        slot,
                    }))
                }
            }
        }
        // The share leaves: never again for an Ed25519 withdrawal, and one more attempt at a
        // Bitcoin one's transaction (counted in memory, written with the next synced write).
        self.repledgeable.remove(&id);
        self.marks.count_release(C::CHAIN, id);
        Ok(prepared
            .sign(&nonces, &self.share)
            .map_err(|reason| Refusal::Package {
                withdrawal: id,
                reason,
            }))
    }
}

/// Ceremony frames sent: (recipient, `None` for every participant; frame).
type Outbox = Vec<(Option<Member>, Vec<u8>)>;

/// A refresh into `epoch` among `participants` (both keys at once).
struct Refreshing {
    epoch: u64,
    participants: BTreeSet<Member>,
    bitcoin: super::vault_keys::Run<Taproot>,
    ed25519: super::vault_keys::Run<Ed25519>,
    /// Every frame sent so far (resent each second until all participants confirmed).
    sent: Outbox,
    last_sent: SystemTime,
}

/// A round this node coordinates.
enum Active {
    Bitcoin(Coordinator<Taproot>),
    Ed25519(Coordinator<Ed25519>),
}

/// A step of this member's key for `chain` (the two keys' types differ).
macro_rules! with_key {
    ($signer:ident, $chain:expr, $key:ident => $body:expr) => {
        match $chain {
            Chain::Bitcoin => {
                let $key = &mut $signer.bitcoin;
                $body
            }
            Chain::Ed25519 => {
                let $key = &mut $signer.ed25519;
                $body
            }
        }
    };
}

/// Each coordinator step for whichever key the round signs with.
macro_rules! with_coordinator {
    ($active:expr, $c:ident => $body:expr) => {
        match $active {
            Active::Bitcoin($c) => $body,
            Active::Ed25519($c) => $body,
        }
    };
}

impl Active {
    fn round(&self) -> u64 {
        with_coordinator!(self, c => c.round())
    }

    fn commit_request(&self) -> Message {
        with_coordinator!(self, c => c.commit_request())
    }

    fn on_commitments(
        &mut self,
        from: Member,
        slots: &[(u64, Vec<u8>)],
    ) -> Result<Step, bulwark_vault::VaultError> {
        with_coordinator!(self, c => c.on_commitments(from, slots))
    }

    fn on_refused(&mut self, from: Member) -> bool {
        with_coordinator!(self, c => c.on_refused(from))
    }

    fn silent(&self) -> BTreeSet<Member> {
        with_coordinator!(self, c => c.silent())
    }

    /// A signer's shares: `Ok(Some(record))` once the round is done, and the members that
    /// failed it so far.
    fn on_shares(
        &mut self,
        from: Member,
        shares: &[Vec<u8>],
        bitcoin: &KeyShare<Taproot>,
        ed25519: &KeyShare<Ed25519>,
    ) -> (
        Result<Option<SignedWithdrawal>, bulwark_vault::VaultError>,
        BTreeSet<Member>,
    ) {
        fn step<C: VaultSuite>(
            c: &mut Coordinator<C>,
            from: Member,
            shares: &[Vec<u8>],
            share: &KeyShare<C>,
        ) -> (
            Result<Option<SignedWithdrawal>, bulwark_vault::VaultError>,
            BTreeSet<Member>,
        ) {
            let done = c.on_shares(from, shares, share).map(|step| match step {
                Step::Done(signatures) => Some(c.record(&signatures)),
                _ => None,
            });
            (done, c.failed().clone())
        }
        match self {
            Active::Bitcoin(c) => step(c, from, shares, bitcoin),
            Active::Ed25519(c) => step(c, from, shares, ed25519),
        }
    }
}

/// Milliseconds from `since` to `now` into a bounded list of samples.
fn push_sample(samples: &mut VecDeque<f64>, since: SystemTime, now: SystemTime) {
    let ms = now
        .duration_since(since)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1e3;
    samples.push_back(ms);
    while samples.len() > ROUNDS_KEPT {
        samples.pop_front();
    }
}

struct Running {
    round: Active,
    withdrawal: u64,
    started: SystemTime,
}

/// The DEVELOPMENT vault outputs: the simulated chain's credited deposits, change of signed
/// withdrawals, less what they spent.
struct DevWallet {
    chain: SimulatedChain,
    mined: u64,
    venue_epoch_ms: u64,
    deposits: Vec<Utxo>,
}

impl DevWallet {
    /// Mines the simulated chain up to venue time `venue_ms`.
    fn catch_up(&mut self, venue_ms: u64) {
        let target = venue_ms / super::deposits::CHAIN_BLOCK_MS;
        let from = self.mined;
        while self.mined < target {
            self.chain.mine();
            self.mined += 1;
        }
        if self.mined > from {
            if let Ok((deposits, _)) = self.chain.deposits(from) {
                self.deposits.extend(deposits.into_iter().map(|d| Utxo {
                    outpoint: OutPoint::new(Txid::from_byte_array(d.txid), d.output),
                    value: Amount::from_sat(u64::try_from(d.amount).unwrap_or(0)),
                }));
            }
        }
    }

    /// Unspent vault outputs in a fixed order every member computes alike.
    fn unspent(
        &self,
        engine: &Engine,
        signed: &BTreeMap<u64, (SignedWithdrawal, Vec<Vec<u8>>)>,
        vault: &bitcoin::ScriptBuf,
    ) -> Vec<Utxo> {
        let mut spent = BTreeSet::new();
        let mut change = Vec::new();
        for (record, _) in signed.values() {
            let Some(tx) = record
                .tx
                .as_deref()
                .and_then(|bytes| taproot::decode(bytes).ok())
            else {
                continue;
            };
            for input in &tx.input {
                spent.insert(input.previous_output);
            }
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if &output.script_pubkey == vault {
                    change.push(Utxo {
                        outpoint: OutPoint::new(txid, vout as u32),
                        value: output.value,
                    });
                }
            }
        }
        // Change first (signed withdrawals in id order), then deposits in chain order: a deposit
        // credited later lands at the end, so a retry takes the same leading outputs.
        change
            .iter()
            .chain(self.deposits.iter().filter(|u| {
                engine.deposit_credited(&(
                    Chain::Bitcoin.code(),
                    u.outpoint.txid.to_byte_array(),
                    u.outpoint.vout,
                ))
            }))
            .filter(|u| !spent.contains(&u.outpoint))
            .copied()
            .collect()
    }
}

/// The task's state.
struct Signer {
    me: Member,
    peers: peers::Peers,
    epoch: u64,
    files: VaultFiles<Backend>,
    bitcoin: Key<Taproot>,
    ed25519: Key<Ed25519>,
    ed25519_key: [u8; 32],
    policy: BitcoinPolicy,
    status: SharedStatus,
    evidence: EvidenceLog,
    signed_path: PathBuf,
    /// Records read from disk or from peers whose withdrawal this node's ledger does not show
    /// yet: checked once it does.
    unchecked: BTreeMap<u64, SignedWithdrawal>,
    running: Option<Running>,
    /// Members that failed a round, per withdrawal: left out of the next rounds.
    failed: BTreeMap<u64, BTreeSet<Member>>,
    wallet: Option<DevWallet>,
    next_round: u64,
    /// Every withdrawal below this id is signed.
    scan_from: u64,
    /// Frames per peer in the current second.
    budget: BTreeMap<Member, (u64, u32)>,
    /// Pings in flight: nonce → (peer, when sent). At most one per peer.
    pings: BTreeMap<u64, (Member, SystemTime)>,
    /// Evidence recorded per peer in the current second.
    evidence_budget: Mutex<BTreeMap<Member, (u64, u32)>>,
    /// The public record of the shares held (`keys.json`).
    keys: VaultKeys,
    /// Where `keys.json` lives.
    keys_path: PathBuf,
    /// The refresh into a new epoch, while it runs.
    refresh: Option<Refreshing>,
    /// The last refresh this member finished: its epoch and every frame it sent (answered again
    /// to a member that is still in it, at most once a second each).
    finished: Option<(u64, Outbox)>,
    answered: BTreeMap<Member, SystemTime>,
    /// This member's shares are void: it left the committee (the others refreshed without
    /// it), or a refresh failed. It signs nothing until restored.
    void: bool,
    said_no_wallet: bool,
    /// Repair: as a member left out of the current sharing, or as a helper.
    repair: repair::Repair,
}

impl Signer {
    fn member_of(&self, key: &PublicKey) -> Option<Member> {
        self.peers.member_of(key)
    }

    /// The members holding shares of the current epoch, in order.
    fn holders(&self) -> Vec<Member> {
        if self.keys.holders.is_empty() {
            (1..=self.keys.members).collect()
        } else {
            self.keys.holders.clone()
        }
    }

    /// Whose turn it is to coordinate withdrawal `id` at `now_ms` (venue time). Turn 0 is the
    /// member that proposed the block debiting it, when that member holds a share of the
    /// current epoch; each [`ROTATE_MS`] after the debit the next holder takes over (so a
    /// proposer that never coordinates delays the withdrawal by one turn), and a removed member
    /// never coordinates.
    fn coordinator(&self, id: u64, recorded: &bulwark_engine::Withdrawal, now_ms: u64) -> Member {
        let turn = now_ms.saturating_sub(recorded.requested_ms) / ROTATE_MS;
        let holders = self.holders();
        let count = holders.len().max(1) as u64;
        let proposer = recorded.proposer.and_then(|raw| {
            holders
                .iter()
                .position(|h| self.peers.key(*h).is_some_and(|key| key.as_ref() == raw))
        });
        let first = proposer.map_or(id % count, |at| at as u64);
        holders
            .get((first.wrapping_add(turn) % count) as usize)
            .copied()
            .unwrap_or(1)
    }

    /// Whether `from` coordinates withdrawal `id` now by this node's committed state, or did
    /// one turn ago (the members' states differ by a block or two).
    fn may_coordinate(&self, engine: &Engine, from: Member, id: u64) -> bool {
        let Some(recorded) = engine.withdrawal(id) else {
            return false;
        };
        let now_ms = engine.time_ms();
        from == self.coordinator(id, recorded, now_ms)
            || from == self.coordinator(id, recorded, now_ms.saturating_sub(ROTATE_MS))
    }

    fn authorization(engine: &Engine, id: u64) -> Option<Authorization> {
        engine
            .withdrawal(id)
            .and_then(|w| round::authorization(id, w, UNITS_PER_MICRO))
    }

    /// Records `vault_request` evidence against `from`, at most [`EVIDENCE_PER_PEER_S`] a
    /// second each (a member sending garbage as fast as it may would otherwise push every other
    /// kind out of the shared, bounded evidence record).
    fn record_evidence(&self, from: Member, detail: String) {
        let now_s = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        {
            let mut recent = self
                .evidence_budget
                .lock()
                .expect("the evidence budget lock must not be poisoned");
            let entry = recent.entry(from).or_insert((now_s, 0));
            if entry.0 != now_s {
                *entry = (now_s, 0);
            }
            if entry.1 >= EVIDENCE_PER_PEER_S {
                return;
            }
            entry.1 += 1;
        }
        if let Some(peer) = self.peers.key(from) {
            self.evidence.record(Kind::VaultRequest, peer, 0, detail);
        }
    }

    fn persist_signed(&self) {
        let json = {
            let status = self
                .status
                .lock()
                .expect("the vault status lock must not be poisoned");
            let records: Vec<&SignedWithdrawal> = status.signed.values().map(|(r, _)| r).collect();
            serde_json::to_vec(&records).expect("records serialize")
        };
        // Written after the lock is released: the endpoint does not wait for the sync.
        if let Err(error) = bulwark_vaultstore::files::write_private(&self.signed_path, &json) {
            warn!(%error, "could not store the signed withdrawals");
        }
    }

    /// Checks a record by the one rule against this node's ledger and keys; stores it if new.
    /// `Ok(false)`: the ledger does not show the withdrawal yet (kept to check later).
    fn accept(&mut self, engine: &Engine, record: SignedWithdrawal) -> Result<bool, Refusal> {
        let id = record.withdrawal;
        if self
            .status
            .lock()
            .expect("the vault status lock must not be poisoned")
            .signed
            .contains_key(&id)
        {
            return Ok(true);
        }
        let Some(authorization) = Self::authorization(engine, id) else {
            // Kept for when this ledger records it: only a few ids ahead of what it recorded
            // (a record for an id the ledger never reaches would stay forever).
            let window = engine.withdrawals_recorded() as u64 + 256;
            if self.unchecked.len() < 1_024 && id <= window {
                self.unchecked.insert(id, record);
            }
            return Ok(false);
        };
        let messages = record.check(&authorization, &self.ed25519_key, &self.policy)?;
        info!(
            withdrawal = id,
            chain = record.chain.name(),
            txid = record.txid().unwrap_or_default(),
            "withdrawal signed by the vault"
        );
        let mut status = self
            .status
            .lock()
            .expect("the vault status lock must not be poisoned");
        status.signing.remove(&id);
        if status.signed.insert(id, (record, messages)).is_none() {
            status.signed_total += 1;
        }
        self.failed.remove(&id);
        while status.signed.len() > SIGNED_KEPT {
            status.signed.pop_first();
        }
        drop(status);
        self.persist_signed();
        if self.running.as_ref().is_some_and(|r| r.withdrawal == id) {
            self.running = None;
        }
        Ok(true)
    }

    /// One frame from `from` (this member's own frames come here too). Returns the frames to
    /// send: (recipient, frame); `None` for every member.
    fn handle(
        &mut self,
        engine: &Engine,
        from: Member,
        message: Message,
        now: SystemTime,
    ) -> Result<Vec<(Option<Member>, Message)>, SigningError> {
        let mut out = Vec::new();
        match message {
            Message::Commit {
                epoch,
                chain,
                withdrawal,
                round,
                count,
                bitcoin,
            } => {
                // Shares of another epoch (a refresh this member has not finished, or one it
                // was left out of) make no share that combines: no commitments.
                if epoch != self.epoch || self.refresh.is_some() || self.void {
                    return Ok(out);
                }
                // Not the coordinator, or a withdrawal this ledger does not show (yet): no
                // commitments (they would only be spent on a round nobody may finish).
                if !self.may_coordinate(engine, from, withdrawal) {
                    return Ok(out);
                }
                // Signed already: the coordinator missed the record; it gets the record, not
                // nonces. A request for another chain than the ledger's gets nothing.
                if let Some((record, _)) = self
                    .status
                    .lock()
                    .expect("the vault status lock must not be poisoned")
                    .signed
                    .get(&withdrawal)
                {
                    out.push((Some(from), Message::Signed(record.clone())));
                    return Ok(out);
                }
                if Self::authorization(engine, withdrawal).is_none_or(|a| a.chain != chain) {
                    return Ok(out);
                }
                if usize::from(count) > taproot::INPUTS_MAX || count == 0 {
                    self.record_evidence(from, format!("commit request for {count} messages"));
                    return Ok(out);
                }
                let authorization = Self::authorization(engine, withdrawal);
                let request = (withdrawal, round, usize::from(count));
                let answer = with_key!(self, chain, key => key.commit(
                    &mut self.files,
                    self.epoch,
                    from,
                    request,
                    bitcoin.as_ref(),
                    authorization.as_ref(),
                    &self.policy,
                    now,
                ))?;
                match answer {
                    Commitment::Slots(slots) => out.push((
                        Some(from),
                        Message::Commitments {
                            chain,
                            withdrawal,
                            round,
                            slots,
                        },
                    )),
                    Commitment::Refused(refusal) => {
                        if refusal.is_evidence() {
                            warn!(coordinator = from, %refusal, "refused a vault commit request");
                            self.record_evidence(from, format!("commit request: {refusal}"));
                        }
                        out.push((
                            Some(from),
                            Message::Refused {
                                chain,
                                withdrawal,
                                round,
                                reason: round::reason(&refusal),
                            },
                        ));
                    }
                    Commitment::Nothing => {}
                }
            }
            Message::Commitments {
                withdrawal,
                round,
                slots,
                ..
            } => {
                let excluded = self
                    .failed
                    .get(&withdrawal)
                    .is_some_and(|f| f.contains(&from));
                let Some(running) = self.running.as_mut() else {
                    return Ok(out);
                };
                if running.withdrawal != withdrawal || excluded {
                    return Ok(out);
                }
                if running.round.round() != round {
                    return Ok(out);
                }
                match running.round.on_commitments(from, &slots) {
                    Ok(Step::Send(requests)) => {
                        out.extend(requests.into_iter().map(|(m, r)| (Some(m), r)));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        self.record_evidence(from, format!("commitments: {error}"));
                    }
                }
            }
            Message::Sign { round, request } => {
                // Only the coordinator's requests are answered: another member's transaction
                // for the same withdrawal would bind this member's watermark to it.
                if !self.may_coordinate(engine, from, request.withdrawal) {
                    return Ok(out);
                }
                let authorization = Self::authorization(engine, request.withdrawal);
                let answered = with_key!(self, request.chain, key => key.answer(
                    &mut self.files,
                    (from, round),
                    &request,
                    authorization.as_ref(),
                    &self.policy,
                ))?;
                match answered {
                    Ok(shares) => {
                        let mut status = self
                            .status
                            .lock()
                            .expect("the vault status lock must not be poisoned");
                        status.signing.insert(request.withdrawal);
                        push_sample(&mut status.share_ms, now, SystemTime::now());
                        drop(status);
                        out.push((
                            Some(from),
                            Message::Shares {
                                chain: request.chain,
                                withdrawal: request.withdrawal,
                                round,
                                shares,
                            },
                        ));
                    }
                    Err(refusal) => {
                        if refusal.is_evidence() {
                            warn!(coordinator = from, %refusal, "refused a vault signing request");
                            self.record_evidence(from, format!("sign request: {refusal}"));
                        }
                        out.push((
                            Some(from),
                            Message::Refused {
                                chain: request.chain,
                                withdrawal: request.withdrawal,
                                round,
                                reason: round::reason(&refusal),
                            },
                        ));
                    }
                }
            }
            Message::Shares {
                withdrawal,
                round,
                shares,
                ..
            } => {
                let Some(running) = self.running.as_mut() else {
                    return Ok(out);
                };
                if running.withdrawal != withdrawal {
                    return Ok(out);
                }
                if running.round.round() != round {
                    return Ok(out);
                }
                let (done, failed) = running.round.on_shares(
                    from,
                    &shares,
                    &self.bitcoin.share,
                    &self.ed25519.share,
                );
                let record = match done {
                    Ok(record) => record,
                    Err(error) => {
                        warn!(withdrawal, %error, ?failed, "a signing round failed; the next one leaves these members out");
                        for member in &failed {
                            self.record_evidence(
                                *member,
                                format!("signature share for withdrawal {withdrawal}: {error}"),
                            );
                        }
                        self.mark_failed(withdrawal, failed);
                        self.running = None;
                        None
                    }
                };
                if let Some(record) = record {
                    let started = self.running.as_ref().map(|r| r.started);
                    match self.accept(engine, record.clone()) {
                        Ok(_) => {
                            let proposed = engine
                                .withdrawal(withdrawal)
                                .and_then(|w| w.proposer)
                                .zip(self.peers.key(self.me))
                                .is_some_and(|(raw, key)| raw.as_slice() == key.as_ref());
                            info!(
                                "coordinated the signing of withdrawal {withdrawal} {}",
                                if proposed {
                                    "as the proposer of the block that debited it"
                                } else {
                                    "in its turn after the proposer's"
                                }
                            );
                            {
                                let mut status = self
                                    .status
                                    .lock()
                                    .expect("the vault status lock must not be poisoned");
                                status.rounds_total += 1;
                                if let Some(started) = started {
                                    push_sample(&mut status.round_ms, started, now);
                                }
                            }
                            out.push((None, Message::Signed(record)));
                        }
                        Err(refusal) => {
                            warn!(withdrawal, %refusal, "the combined signature does not check; starting again");
                            self.running = None;
                        }
                    }
                }
            }
            Message::Refused {
                withdrawal,
                round,
                reason,
                ..
            } => {
                let Some(running) = self.running.as_mut() else {
                    return Ok(out);
                };
                if running.withdrawal != withdrawal {
                    return Ok(out);
                }
                if running.round.round() == round && running.round.on_refused(from) {
                    info!(withdrawal, member = from, %reason, "a signer refused; the next round leaves it out");
                    self.mark_failed(withdrawal, [from]);
                    self.running = None;
                }
            }
            Message::Signed(record) => {
                let id = record.withdrawal;
                if let Err(refusal) = self.accept(engine, record) {
                    self.record_evidence(from, format!("signed withdrawal {id}: {refusal}"));
                }
            }
            Message::Ping { nonce } => out.push((Some(from), Message::Pong { nonce })),
            Message::Refresh { epoch, frame } => {
                out.extend(self.refresh_frame(from, epoch, &frame, now)?);
            }
            message @ (Message::Holding { .. }
            | Message::Vouch { .. }
            | Message::RepairAsk { .. }
            | Message::RepairDelta { .. }
            | Message::RepairSigma { .. }) => {
                out.extend(self.repair_message(from, message, now)?);
            }
            Message::Pong { nonce } => {
                if let Some((peer, sent)) = self.pings.remove(&nonce) {
                    if peer == from {
                        push_sample(
                            &mut self
                                .status
                                .lock()
                                .expect("the vault status lock must not be poisoned")
                                .rtt_ms,
                            sent,
                            now,
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// Starts a round if it is this member's turn for the lowest unsigned withdrawal.
    /// Starts the refresh when the committed committee moved to an epoch after the shares'
    /// (the members that stay: this epoch's members that hold the current shares), resends its
    /// frames each second, and stores the new shares once every participant confirmed the same
    /// keys and transcript. Returns frames to send.
    fn tick_refresh(
        &mut self,
        engine: &Engine,
        now: SystemTime,
    ) -> Result<Vec<(Option<Member>, Message)>, SigningError> {
        let mut out = Vec::new();
        let Some(membership) = engine.membership() else {
            return Ok(out);
        };
        let epoch = membership.epoch();
        if self.void || epoch <= self.epoch {
            return Ok(out);
        }
        if self.refresh.as_ref().is_some_and(|r| r.epoch == epoch) {
            let refresh = self.refresh.as_mut().expect("checked");
            if now
                .duration_since(refresh.last_sent)
                .unwrap_or(Duration::ZERO)
                >= Duration::from_secs(1)
            {
                refresh.last_sent = now;
                out.extend(refresh.sent.iter().map(|(to, frame)| {
                    (
                        *to,
                        Message::Refresh {
                            epoch,
                            frame: frame.clone(),
                        },
                    )
                }));
            }
            return Ok(out);
        }
        // A new epoch (or a later one while a refresh ran: start over into the newest).
        let committee = self.committee(membership);
        let holders: BTreeSet<Member> = self.holders().into_iter().collect();
        if !committee.contains(&self.me) {
            warn!(epoch, "this member left the committee: its vault shares are void once the others refresh; it signs nothing");
            self.void = true;
            self.running = None;
            return Ok(out);
        }
        let participants: BTreeSet<Member> = holders.intersection(&committee).copied().collect();
        if participants.len() < usize::from(self.bitcoin.share.threshold()) {
            warn!(epoch, staying = participants.len(), "fewer members that hold vault shares stay than the threshold: the vault cannot refresh and signs nothing (a repair needs t holders)");
            self.void = true;
            return Ok(out);
        }
        let store = |e: bulwark_vaultstore::StoreError| SigningError::Store(e.to_string());
        let mut seed = |chain: Chain| -> Result<[u8; 32], SigningError> {
            if let Some(seed) = self.files.dkg_seed(chain, epoch).map_err(store)? {
                return Ok(seed);
            }
            let seed: [u8; 32] = rand::random();
            self.files
                .put_dkg_seed(chain, epoch, &seed)
                .map_err(store)?;
            Ok(seed)
        };
        let (bitcoin_seed, ed25519_seed) = (seed(Chain::Bitcoin)?, seed(Chain::Ed25519)?);
        let ceremony = |e: super::vault_keys::VaultKeysError| SigningError::Store(e.to_string());
        let (bitcoin, first_bitcoin) = super::vault_keys::Run::<Taproot>::start_refresh(
            self.bitcoin.share.clone(),
            &participants,
            bitcoin_seed,
        )
        .map_err(ceremony)?;
        let (ed25519, first_ed25519) = super::vault_keys::Run::<Ed25519>::start_refresh(
            self.ed25519.share.clone(),
            &participants,
            ed25519_seed,
        )
        .map_err(ceremony)?;
        info!(epoch, participants = ?participants, "refreshing the vault's shares among the members that stay (signing pauses)");
        self.running = None;
        let sent = vec![(None, first_bitcoin), (None, first_ed25519)];
        out.extend(sent.iter().map(|(to, frame)| {
            (
                *to,
                Message::Refresh {
                    epoch,
                    frame: frame.clone(),
                },
            )
        }));
        self.refresh = Some(Refreshing {
            epoch,
            participants,
            bitcoin,
            ed25519,
            sent,
            last_sent: now,
        });
        Ok(out)
    }

    /// The member numbers of `membership`'s committee (its newcomers become peers).
    fn committee(&mut self, membership: &bulwark_sentinel::Membership) -> BTreeSet<Member> {
        self.peers.learn(membership.epoch(), membership.members())
    }

    /// A peer's refresh frame.
    fn refresh_frame(
        &mut self,
        from: Member,
        epoch: u64,
        frame: &[u8],
        now: SystemTime,
    ) -> Result<Vec<(Option<Member>, Message)>, SigningError> {
        let mut out = Vec::new();
        // A member still in a refresh this member finished: everything again, once a second.
        if let Some((done, sent)) = &self.finished {
            if *done == epoch {
                let due = self.answered.get(&from).is_none_or(|at| {
                    now.duration_since(*at).unwrap_or(Duration::ZERO) >= Duration::from_secs(1)
                });
                if due {
                    self.answered.insert(from, now);
                    out.extend(
                        sent.iter()
                            .filter(|(to, _)| to.is_none() || *to == Some(from))
                            .map(|(_, frame)| {
                                (
                                    Some(from),
                                    Message::Refresh {
                                        epoch,
                                        frame: frame.clone(),
                                    },
                                )
                            }),
                    );
                }
                return Ok(out);
            }
        }
        let Some(refresh) = self.refresh.as_mut().filter(|r| r.epoch == epoch) else {
            return Ok(out);
        };
        if !refresh.participants.contains(&from) || frame.len() < 2 {
            return Ok(out);
        }
        let mut produced = Vec::new();
        let result = match frame[1] {
            1 => refresh.bitcoin.take_frame(from, frame, &mut produced),
            2 => refresh.ed25519.take_frame(from, frame, &mut produced),
            _ => Err(bulwark_vault::VaultError::Malformed(
                "refresh frame (chain)",
            )),
        };
        match result {
            Ok(()) => {}
            Err(bulwark_vault::VaultError::OutOfOrder { .. }) => {}
            Err(
                error @ (bulwark_vault::VaultError::Conflicting { .. }
                | bulwark_vault::VaultError::Crypto(_)),
            ) => {
                warn!(epoch, member = from, %error, "the vault refresh failed: this member signs nothing until the refresh is run again");
                self.record_evidence(from, format!("vault refresh into epoch {epoch}: {error}"));
                self.refresh = None;
                self.void = true;
                return Ok(out);
            }
            Err(error) => {
                self.record_evidence(from, format!("vault refresh frame: {error}"));
                return Ok(out);
            }
        }
        for (to, bytes) in produced {
            out.push((
                to,
                Message::Refresh {
                    epoch,
                    frame: bytes.clone(),
                },
            ));
            refresh.sent.push((to, bytes));
        }
        // At most `MEMBERS_MAX` participants.
        let count = refresh.participants.len() as u16;
        let agreed = refresh
            .bitcoin
            .agreed(self.me, count)
            .and_then(|b| refresh.ed25519.agreed(self.me, count).map(|e| b && e));
        match agreed {
            Ok(true) => self.finish_refresh()?,
            Ok(false) => {}
            Err(error) => {
                warn!(epoch, %error, "the vault refresh failed: this member signs nothing until the refresh is run again");
                self.refresh = None;
                self.void = true;
            }
        }
        Ok(out)
    }

    /// Stores the refreshed shares (sealed), the record, fresh nonce books; deletes the old
    /// shares and nonces.
    fn finish_refresh(&mut self) -> Result<(), SigningError> {
        let mut refresh = self.refresh.take().expect("a refresh ran");
        let epoch = refresh.epoch;
        let bitcoin = refresh
            .bitcoin
            .share
            .take()
            .expect("agreed: the share exists");
        let ed25519 = refresh
            .ed25519
            .share
            .take()
            .expect("agreed: the share exists");
        let keys = self.install(epoch, bitcoin, ed25519)?;
        info!(epoch, holders = ?keys.holders, "vault shares refreshed: same keys, new shares; the old ones are deleted");
        self.finished = Some((epoch, std::mem::take(&mut refresh.sent)));
        self.answered.clear();
        Ok(())
    }

    /// Stores `epoch`'s shares (sealed), their record and fresh nonce books, deletes every
    /// older share and nonce, and signs with them from now on.
    fn install(
        &mut self,
        epoch: u64,
        bitcoin: KeyShare<Taproot>,
        ed25519: KeyShare<Ed25519>,
    ) -> Result<VaultKeys, SigningError> {
        let store = |e: bulwark_vaultstore::StoreError| SigningError::Store(e.to_string());
        if bitcoin.group_key() != self.bitcoin.group_key
            || ed25519.group_key() != self.ed25519.group_key
        {
            return Err(SigningError::Store(
                "new shares of another group key".into(),
            ));
        }
        let keys = super::vault_keys::store_shares(
            &mut self.files,
            &self.keys_path,
            epoch,
            &bitcoin,
            &ed25519,
        )
        .map_err(store)?;
        let mut bitcoin_key =
            Key::<Taproot>::open(&mut self.files, epoch, &self.bitcoin.group_key)?;
        let mut ed25519_key =
            Key::<Ed25519>::open(&mut self.files, epoch, &self.ed25519.group_key)?;
        bitcoin_key.top_up(&mut self.files, epoch)?;
        ed25519_key.top_up(&mut self.files, epoch)?;
        // What this run may commit to again stays so across the epoch change; which members
        // failed a round is of the old sharing, and is forgotten.
        bitcoin_key.repledgeable = std::mem::take(&mut self.bitcoin.repledgeable);
        ed25519_key.repledgeable = std::mem::take(&mut self.ed25519.repledgeable);
        self.failed.clear();
        self.bitcoin = bitcoin_key;
        self.ed25519 = ed25519_key;
        for chain in Chain::ALL {
            self.files.prune_before(chain, epoch).map_err(store)?;
            self.files.forget_dkg_seed(chain, epoch).map_err(store)?;
        }
        self.epoch = epoch;
        self.keys = keys.clone();
        self.void = false;
        self.status
            .lock()
            .expect("the vault status lock must not be poisoned")
            .keys = Some(keys.clone());
        Ok(keys)
    }

    fn start_round(&mut self, engine: &Engine, now: SystemTime) -> Option<Message> {
        if self.void
            || self.refresh.is_some()
            || engine.membership().is_some_and(|m| m.epoch() != self.epoch)
        {
            return None;
        }
        if let Some(running) = &self.running {
            if now
                .duration_since(running.started)
                .unwrap_or(Duration::ZERO)
                < ROUND_TIMEOUT
            {
                return None;
            }
            // The chosen signers that did not answer fail this withdrawal's rounds here.
            let silent = running.round.silent();
            info!(
                withdrawal = running.withdrawal,
                ?silent,
                "signing round timed out; starting another with fresh nonces, without the silent signers"
            );
            let withdrawal = running.withdrawal;
            self.mark_failed(withdrawal, silent);
            self.running = None;
        }
        // Re-check records that arrived before their withdrawal was committed here.
        let ready: Vec<u64> = self
            .unchecked
            .keys()
            .copied()
            .filter(|id| engine.withdrawal(*id).is_some())
            .collect();
        for id in ready {
            if let Some(record) = self.unchecked.remove(&id) {
                if let Err(refusal) = self.accept(engine, record) {
                    warn!(withdrawal = id, %refusal, "a stored or received signed withdrawal does not check; dropped");
                }
            }
        }
        if let Some(wallet) = self.wallet.as_mut() {
            let unix_ms = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            wallet.catch_up(unix_ms.saturating_sub(wallet.venue_epoch_ms));
        }
        // The lowest unsigned Bitcoin withdrawal (they are signed in order, so every coordinator
        // spends the same outputs), or any unsigned Ed25519 one, whose coordinator is this
        // member now.
        let mut candidate = None;
        let mut bitcoin_seen = false;
        {
            let status = self
                .status
                .lock()
                .expect("the vault status lock must not be poisoned");
            let mut pending = 0;
            for (id, recorded) in engine.withdrawals_from(self.scan_from) {
                if status.signed.contains_key(&id) {
                    if id == self.scan_from {
                        self.scan_from = id + 1;
                    }
                    continue;
                }
                let bitcoin = recorded.chain == bulwark_engine::PayoutChain::Bitcoin;
                if bitcoin && bitcoin_seen {
                    continue;
                }
                pending += 1;
                if pending > 64 {
                    break;
                }
                // Members that failed this withdrawal's rounds here are left out: with fewer
                // than t left this member cannot finish it (the next coordinator may).
                let holders = self.holders();
                let left_out = self.failed.get(&id).map_or(0, |failed| {
                    holders.iter().filter(|h| failed.contains(h)).count()
                });
                if holders.len().saturating_sub(left_out)
                    < usize::from(self.bitcoin.share.threshold())
                {
                    bitcoin_seen |= bitcoin;
                    continue;
                }
                bitcoin_seen |= bitcoin;
                if self.coordinator(id, recorded, engine.time_ms()) == self.me {
                    candidate = Some(id);
                    break;
                }
            }
        }
        let id = candidate?;
        let authorization = Self::authorization(engine, id)?;
        let round = self.next_round;
        self.next_round += 1;
        let active = match authorization.chain {
            Chain::Ed25519 => Active::Ed25519(
                Coordinator::new(
                    round,
                    self.epoch,
                    authorization,
                    None,
                    None,
                    &self.ed25519.share,
                )
                .map_err(|refusal| warn!(withdrawal = id, %refusal, "cannot coordinate"))
                .ok()?,
            ),
            Chain::Bitcoin => {
                let Some(wallet) = self.wallet.as_ref() else {
                    if !self.said_no_wallet {
                        warn!(withdrawal = id, "no chain watcher on this node: it does not coordinate Bitcoin withdrawals (it answers other coordinators)");
                        self.said_no_wallet = true;
                    }
                    return None;
                };
                let vault = taproot::vault_script(&self.policy.vault_key).ok()?;
                let utxos = wallet.unspent(
                    engine,
                    &self
                        .status
                        .lock()
                        .expect("the vault status lock must not be poisoned")
                        .signed,
                    &vault,
                );
                let body = match build(&utxos, &vault, &authorization) {
                    Ok(body) => body,
                    Err(reason) => {
                        warn!(withdrawal = id, %reason, "cannot build the withdrawal's transaction yet");
                        return None;
                    }
                };
                Active::Bitcoin(
                    Coordinator::new(
                        round,
                        self.epoch,
                        authorization,
                        Some(body),
                        Some(&self.policy),
                        &self.bitcoin.share,
                    )
                    .map_err(|refusal| warn!(withdrawal = id, %refusal, "cannot coordinate"))
                    .ok()?,
                )
            }
        };
        let commit = active.commit_request();
        info!("coordinating the signing of withdrawal {id} (round {round})");
        self.status
            .lock()
            .expect("the vault status lock must not be poisoned")
            .signing
            .insert(id);
        self.running = Some(Running {
            round: active,
            withdrawal: id,
            started: now,
        });
        Some(commit)
    }

    /// Syncs what the last commit requests marked, for both keys.
    fn flush(&mut self) -> Result<(), SigningError> {
        self.bitcoin.flush(&mut self.files)?;
        self.ed25519.flush(&mut self.files)?;
        for synced in [self.bitcoin.last_sync.take(), self.ed25519.last_sync.take()]
            .into_iter()
            .flatten()
        {
            push_sample(
                &mut self
                    .status
                    .lock()
                    .expect("the vault status lock must not be poisoned")
                    .sync_ms,
                synced.0,
                synced.1,
            );
        }
        Ok(())
    }

    /// Leaves `members` out of this coordinator's next rounds of `withdrawal` (at most 1 024
    /// withdrawals remembered).
    fn mark_failed(&mut self, withdrawal: u64, members: impl IntoIterator<Item = Member>) {
        let mut members = members.into_iter().peekable();
        if members.peek().is_none()
            || (self.failed.len() >= 1_024 && !self.failed.contains_key(&withdrawal))
        {
            return;
        }
        self.failed.entry(withdrawal).or_default().extend(members);
    }

    /// Whether `from` may send another frame this second.
    fn admit(&mut self, from: Member, now_s: u64) -> bool {
        let entry = self.budget.entry(from).or_insert((now_s, 0));
        if entry.0 != now_s {
            *entry = (now_s, 0);
        }
        entry.1 += 1;
        entry.1 <= PEER_FRAMES_PER_S
    }
}

/// The transaction for `authorization`: the fewest leading unspent outputs that cover the
/// amount and the fee (the fee the policy's rate asks of the signed size), change to the vault.
fn build(
    utxos: &[Utxo],
    vault: &bitcoin::ScriptBuf,
    authorization: &Authorization,
) -> Result<BitcoinBody, String> {
    let amount = authorization.amount;
    let mut chosen = Vec::new();
    let mut have = 0u64;
    for utxo in utxos {
        if chosen.len() == taproot::INPUTS_MAX {
            break;
        }
        chosen.push(*utxo);
        have = have.saturating_add(utxo.value.to_sat());
        if have >= amount.saturating_add(FEE_MAX_SATS.min(FEE_MIN_SATS * 4)) {
            break;
        }
    }
    let fee_for = |chosen: &[Utxo], fee: u64| {
        taproot::build(
            chosen,
            vault,
            &authorization.destination,
            Amount::from_sat(amount),
            Amount::from_sat(fee),
        )
    };
    let (draft, _) = fee_for(&chosen, FEE_MIN_SATS).map_err(|e| e.to_string())?;
    let fee = FEE_MIN_SATS.max(
        FEE_RATE_MIN_SAT_VB.saturating_mul(taproot::signed_vsize(&draft))
            + FEE_RATE_MIN_SAT_VB * 50,
    );
    let (tx, prevouts) = fee_for(&chosen, fee.min(FEE_MAX_SATS)).map_err(|e| e.to_string())?;
    Ok(BitcoinBody {
        tx: bitcoin::consensus::serialize(&tx),
        prevout_sats: prevouts.iter().map(|p| p.value.to_sat()).collect(),
    })
}

/// What the signing task needs from the node.
pub(super) struct Setup {
    pub(super) data_dir: PathBuf,
    pub(super) me: PublicKey,
    pub(super) participants: Set<PublicKey>,
    /// `None` on a node that joined after genesis and holds no share yet: it waits for a
    /// repair first.
    pub(super) keys: Option<VaultKeys>,
    pub(super) files: VaultFiles<Backend>,
    pub(super) view: Arc<Mutex<bulwark_consensus::replica::CommittedView>>,
    pub(super) status: SharedStatus,
    pub(super) evidence: EvidenceLog,
    /// DEVELOPMENT: the simulated chain's seed, accounts and venue epoch (the vault's outputs).
    pub(super) dev_chain: Option<(u64, Vec<u64>, u64)>,
}

fn load_signed(path: &Path) -> Vec<SignedWithdrawal> {
    let Ok(bytes) = bulwark_vaultstore::files::read_private(path) else {
        return Vec::new();
    };
    match serde_json::from_slice(&bytes) {
        Ok(records) => records,
        Err(error) => {
            warn!(path = %path.display(), %error, "the signed withdrawals file does not parse; it is rebuilt from the members");
            Vec::new()
        }
    }
}

/// Runs the signing for the life of the node.
pub(super) async fn run<E, S, R>(
    context: E,
    mut setup: Setup,
    (mut sender, mut receiver): (S, R),
) -> Result<(), SigningError>
where
    E: Clock,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let keys = match setup.keys.take() {
        Some(keys) => keys,
        None => repair::await_repair(&context, &mut setup, &mut sender, &mut receiver).await?,
    };
    let bad = |what: &str| SigningError::Store(format!("keys.json: {what}"));
    let bitcoin_key = hex::decode(&keys.bitcoin).map_err(|_| bad("bitcoin"))?;
    let ed25519_key: [u8; 32] = hex::decode(&keys.ed25519)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("ed25519"))?;
    let mut files = setup.files;
    let epoch = keys.epoch;
    let bitcoin = Key::<Taproot>::open(&mut files, epoch, &bitcoin_key)?;
    let ed25519 = Key::<Ed25519>::open(&mut files, epoch, &ed25519_key)?;
    let peers = peers::Peers::new(setup.participants.iter().cloned().collect());
    let me = peers.number(&setup.me);
    let signed_path = setup.data_dir.join("vault").join(SIGNED_FILE);
    let unchecked = load_signed(&signed_path)
        .into_iter()
        .map(|r| (r.withdrawal, r))
        .take(SIGNED_KEPT)
        .collect();
    let wallet = setup
        .dev_chain
        .map(|(seed, accounts, venue_epoch_ms)| DevWallet {
            chain: SimulatedChain::new(Chain::Bitcoin, seed, accounts),
            mined: 0,
            venue_epoch_ms,
            deposits: Vec::new(),
        });
    setup
        .status
        .lock()
        .expect("the vault status lock must not be poisoned")
        .keys = Some(keys.clone());
    let mut signer = Signer {
        me,
        peers,
        epoch,
        files,
        bitcoin,
        ed25519,
        ed25519_key,
        policy: BitcoinPolicy {
            vault_key: bitcoin_key
                .get(1..33)
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| bad("bitcoin key length"))?,
            fee_min_sats: FEE_MIN_SATS,
            fee_rate_min_sat_vb: FEE_RATE_MIN_SAT_VB,
            fee_max_sats: FEE_MAX_SATS,
        },
        status: setup.status,
        evidence: setup.evidence,
        signed_path,
        unchecked,
        running: None,
        failed: BTreeMap::new(),
        wallet,
        next_round: u64::from(rand::random::<u32>()) << 16,
        scan_from: 1,
        budget: BTreeMap::new(),
        pings: BTreeMap::new(),
        evidence_budget: Mutex::default(),
        keys,
        keys_path: super::vault_keys::keys_path(&setup.data_dir),
        refresh: None,
        finished: None,
        answered: BTreeMap::new(),
        void: false,
        said_no_wallet: false,
        repair: repair::Repair::default(),
    };
    signer.bitcoin.top_up(&mut signer.files, epoch)?;
    signer.ed25519.top_up(&mut signer.files, epoch)?;
    info!(member = me, "vault signing ready (p2p channel 13)");
    let view = setup.view;
    let mut queue: VecDeque<(Member, Option<Member>, Message)> = VecDeque::new();
    let mut ticks = 0u64;
    loop {
        let deadline = context.current() + TICK;
        select! {
            _ = context.sleep_until(deadline) => {
                ticks += 1;
                if ticks.is_multiple_of(PING_TICKS) {
                    // One ping in flight per peer; a lost one is forgotten at the next.
                    signer.pings.clear();
                    for peer in signer.peers.others(me) {
                        let nonce: u64 = rand::random();
                        signer.pings.insert(nonce, (peer, SystemTime::now()));
                        queue.push_back((me, Some(peer), Message::Ping { nonce }));
                    }
                }
                let engine = view.lock().expect("the view lock must not be poisoned").engine.clone();
                let mut ticked = signer.tick_refresh(&engine, SystemTime::now())?;
                let seen = engine
                    .membership()
                    .map(|membership| (membership.epoch(), signer.committee(membership)));
                ticked.extend(signer.tick_repair(seen, SystemTime::now()));
                for (to, message) in ticked {
                    let recipients = match to {
                        None => Recipients::All,
                        Some(to) => match signer.peers.key(to) {
                            Some(peer) => Recipients::One(peer.clone()),
                            None => continue,
                        },
                    };
                    sender.send(recipients, IoBuf::from(message.encode()), false);
                }
                if let Some(commit) = signer.start_round(&engine, context.current()) {
                    queue.push_back((me, None, commit));
                }
            },
            message = receiver.recv() => {
                let Ok((peer, bytes)) = message else {
                    return Err(SigningError::Network);
                };
                let Some(from) = signer.member_of(&peer) else { continue };
                let now = context.current();
                let now_s = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                if !signer.admit(from, now_s) {
                    continue;
                }
                match Message::decode(bytes.as_ref()) {
                    Ok(message) => queue.push_back((from, Some(me), message)),
                    Err(error) => signer.record_evidence(from, format!("signing frame: {error}")),
                }
            },
        }
        // Deliver: frames to this member are handled here, others go out.
        let engine = view
            .lock()
            .expect("the view lock must not be poisoned")
            .engine
            .clone();
        let mut steps = 0;
        while let Some((from, to, message)) = queue.pop_front() {
            steps += 1;
            if steps > 256 {
                break;
            }
            let out = match to {
                Some(to) if to != me => {
                    if let Some(peer) = signer.peers.key(to) {
                        sender.send(
                            Recipients::One(peer.clone()),
                            IoBuf::from(message.encode()),
                            false,
                        );
                    }
                    continue;
                }
                Some(_) => signer.handle(&engine, from, message, SystemTime::now())?,
                None => {
                    // To every member: out to the peers, and handled here.
                    sender.send(Recipients::All, IoBuf::from(message.encode()), false);
                    signer.handle(&engine, from, message, SystemTime::now())?
                }
            };
            // Frames for peers leave at once, before this member handles its own (its own
            // share takes two synced writes: the other signers work meanwhile).
            for (to, message) in out {
                match to {
                    // A record this member already took: out to the peers only.
                    None => {
                        sender.send(Recipients::All, IoBuf::from(message.encode()), false);
                    }
                    Some(to) if to != me => {
                        if let Some(peer) = signer.peers.key(to) {
                            sender.send(
                                Recipients::One(peer.clone()),
                                IoBuf::from(message.encode()),
                                false,
                            );
                        }
                    }
                    Some(to) => queue.push_back((me, Some(to), message)),
                }
            }
            // A commit request's mark and spent nonces reach the disk now, while the
            // commitments travel (a sign request waits for this write in `answer`).
            signer.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bulwark_engine::command::SystemCommand;
    use bulwark_engine::{AccountId, ClientCommand, Command, EngineConfig, PayoutChain};
    use bulwark_vault::keygen::local;
    use bulwark_vaultstore::keystore::KeystoreSealer;
    use commonware_cryptography::Signer as _;

    /// An engine that recorded one Ed25519 withdrawal (id 1) of 50 000 micros by account 1.
    pub(super) fn ledger(destination: [u8; 32]) -> Engine {
        ledger_on(destination, PayoutChain::Ed25519)
    }

    fn ledger_on(destination: [u8; 32], chain: PayoutChain) -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let batch = vec![
            Command::System(SystemCommand::IndexPrice {
                underlying: 0,
                price_micros: 60_000_000_000,
            }),
            Command::System(SystemCommand::OpenAccount {
                account: AccountId(1),
                public_key: [0; 32],
            }),
            Command::System(SystemCommand::Deposit {
                account: AccountId(1),
                amount: 1_000_000,
            }),
            Command::Client {
                account: AccountId(1),
                nonce: 1,
                command: ClientCommand::Withdraw {
                    amount: 50_000,
                    destination,
                    chain,
                },
            },
        ];
        let mut events = Vec::new();
        engine.execute(0, &batch, &mut events);
        assert!(engine.withdrawal(1).is_some(), "{events:?}");
        engine
    }

    #[test]
    fn the_proposer_of_the_debiting_block_coordinates_first_then_the_holders_in_turn() {
        let dir =
            std::env::temp_dir().join(format!("bulwark-vault-proposer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let members = members(&dir);
        let withdraw = |proposer: Option<[u8; 32]>| {
            let mut recorded = *ledger([3; 32]).withdrawal(1).unwrap();
            recorded.proposer = proposer;
            recorded
        };
        let raw = |seed: u64| -> [u8; 32] {
            commonware_cryptography::ed25519::PrivateKey::from_seed(seed)
                .public_key()
                .as_ref()
                .try_into()
                .unwrap()
        };
        // Member 4 (seed 3) proposed it: turn 0 is member 4, turn 1 wraps to member 1.
        let by_four = withdraw(Some(raw(3)));
        assert_eq!(members[0].coordinator(1, &by_four, 0), 4);
        assert_eq!(members[0].coordinator(1, &by_four, ROTATE_MS), 1);
        assert_eq!(members[0].coordinator(1, &by_four, 2 * ROTATE_MS + 5), 2);
        // A proposer that holds no share (not a member) or no block: the rotation by id.
        let by_stranger = withdraw(Some(raw(99)));
        assert_eq!(members[0].coordinator(1, &by_stranger, 0), 2);
        assert_eq!(members[0].coordinator(1, &withdraw(None), 0), 2);
        // A removed member that proposed it: the current holders only.
        let mut without_four = members;
        for member in &mut without_four {
            member.keys.holders = vec![1, 2, 3];
        }
        assert_eq!(without_four[0].coordinator(1, &by_four, 0), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A Bitcoin withdrawal (id 1) to the x-only key of `payee`, the four members with files in
    /// a fresh temp directory named after `name`, the withdrawal's authorization, the policy and
    /// the vault's script.
    struct BitcoinCase {
        dir: PathBuf,
        engine: Engine,
        members: Vec<Signer>,
        authorization: Authorization,
        policy: BitcoinPolicy,
        vault: bitcoin::ScriptBuf,
    }

    fn bitcoin_case(name: &str, payee: u8) -> BitcoinCase {
        let dir = std::env::temp_dir().join(format!("bulwark-vault-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let payee = bitcoin::secp256k1::Keypair::from_seckey_slice(&secp, &[payee; 32]).unwrap();
        let engine = ledger_on(
            payee.x_only_public_key().0.serialize(),
            PayoutChain::Bitcoin,
        );
        let members = members(&dir);
        let authorization = Signer::authorization(&engine, 1).unwrap();
        let policy = members[0].policy;
        let vault = taproot::vault_script(&policy.vault_key).unwrap();
        BitcoinCase {
            dir,
            engine,
            members,
            authorization,
            policy,
            vault,
        }
    }

    /// One vault output of `sats` at outpoint (`byte` × 32, 0).
    fn utxo(byte: u8, sats: u64) -> Utxo {
        Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([byte; 32]), 0),
            value: Amount::from_sat(sats),
        }
    }

    /// Four members' signing state over one seeded sharing of each key, files in `dir`.
    pub(super) fn members(dir: &Path) -> Vec<Signer> {
        let bitcoin = local::dkg::<Taproot>(4, [1; 32]).unwrap();
        let ed25519 = local::dkg::<Ed25519>(4, [2; 32]).unwrap();
        let participants: Vec<PublicKey> = (0..4u64)
            .map(|i| commonware_cryptography::ed25519::PrivateKey::from_seed(i).public_key())
            .collect();
        let bitcoin_key = bitcoin[&1].group_key();
        let ed25519_key: [u8; 32] = ed25519[&1].group_key().try_into().unwrap();
        (1..=4u16)
            .map(|m| {
                let data = dir.join(format!("m{m}"));
                std::fs::create_dir_all(&data).unwrap();
                let mut files = VaultFiles::open(
                    &data,
                    m,
                    Backend::Keystore(KeystoreSealer::development([m as u8; 32])),
                )
                .unwrap();
                files.put_share(0, &bitcoin[&m]).unwrap();
                files.put_share(0, &ed25519[&m]).unwrap();
                let mut bitcoin_share = Key::<Taproot>::open(&mut files, 0, &bitcoin_key).unwrap();
                let mut ed25519_share = Key::<Ed25519>::open(&mut files, 0, &ed25519_key).unwrap();
                bitcoin_share.top_up(&mut files, 0).unwrap();
                ed25519_share.top_up(&mut files, 0).unwrap();
                Signer {
                    me: m,
                    peers: peers::Peers::new(participants.clone()),
                    epoch: 0,
                    files,
                    bitcoin: bitcoin_share,
                    ed25519: ed25519_share,
                    ed25519_key,
                    policy: BitcoinPolicy {
                        vault_key: bitcoin_key[1..33].try_into().unwrap(),
                        fee_min_sats: FEE_MIN_SATS,
                        fee_rate_min_sat_vb: FEE_RATE_MIN_SAT_VB,
                        fee_max_sats: FEE_MAX_SATS,
                    },
                    status: Arc::default(),
                    evidence: EvidenceLog::default(),
                    signed_path: data.join(SIGNED_FILE),
                    unchecked: BTreeMap::new(),
                    running: None,
                    failed: BTreeMap::new(),
                    wallet: None,
                    next_round: u64::from(m) << 32,
                    scan_from: 1,
                    budget: BTreeMap::new(),
                    pings: BTreeMap::new(),
                    evidence_budget: Mutex::default(),
                    keys: super::super::vault_keys::record(0, &bitcoin[&m], &ed25519[&m]),
                    keys_path: data.join("keys.json"),
                    refresh: None,
                    finished: None,
                    answered: BTreeMap::new(),
                    void: false,
                    said_no_wallet: false,
                    repair: repair::Repair::default(),
                }
            })
            .collect()
    }

    /// Delivers frames between the members until none is left; `(from, to, frame)`.
    fn deliver(
        members: &mut [Signer],
        engine: &Engine,
        queue: VecDeque<(Member, Option<Member>, Message)>,
    ) {
        deliver_tampered(members, engine, queue, SystemTime::now(), |_, _, m| Some(m));
    }

    /// Delivers frames between the members until none is left, at `now`; `tamper` may change or
    /// drop a frame (from, to, frame). A frame for every member reaches the sender too (as the
    /// node's own loop does).
    pub(super) fn deliver_tampered(
        members: &mut [Signer],
        engine: &Engine,
        mut queue: VecDeque<(Member, Option<Member>, Message)>,
        now: SystemTime,
        mut tamper: impl FnMut(Member, Member, Message) -> Option<Message>,
    ) {
        while let Some((from, to, message)) = queue.pop_front() {
            let targets: Vec<Member> = match to {
                Some(to) => vec![to],
                None => (1..=4).collect(),
            };
            for target in targets {
                // Frames cross the wire encoded.
                let message = Message::decode(&message.encode()).unwrap();
                let Some(message) = tamper(from, target, message) else {
                    continue;
                };
                let member = &mut members[usize::from(target) - 1];
                let out = member.handle(engine, from, message, now).unwrap();
                // As the node's loop: the frames go, then the pledges' synced write.
                member.flush().unwrap();
                for (next, frame) in out {
                    queue.push_back((target, next, frame));
                }
            }
        }
    }

    pub(super) fn evidence(member: &Signer) -> Vec<String> {
        member
            .evidence
            .recent()
            .into_iter()
            .filter(|e| e.kind == Kind::VaultRequest)
            .map(|e| e.detail)
            .collect()
    }

    #[test]
    fn members_sign_a_recorded_withdrawal_once_and_a_forger_or_a_stranger_gets_nothing() {
        let dir =
            std::env::temp_dir().join(format!("bulwark-vault-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let destination = ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .to_bytes();
        let engine = ledger(destination);
        let mut members = members(&dir);
        // Withdrawal 1 at time 0: member (1 + 0) mod 4 + 1 = 2 coordinates.
        assert_eq!(
            members[0].coordinator(1, engine.withdrawal(1).unwrap(), engine.time_ms()),
            2
        );
        let authorization = Signer::authorization(&engine, 1).unwrap();

        // Member 3 is not the coordinator: its commit request gets no commitments.
        let stranger = Message::Commit {
            epoch: 0,
            chain: Chain::Ed25519,
            withdrawal: 1,
            round: 9,
            count: 1,
            bitcoin: None,
        };
        let out = members[0]
            .handle(&engine, 3, stranger, SystemTime::now())
            .unwrap();
        assert!(out.is_empty(), "a member out of turn gets no commitments");

        // The coordinator (member 2) forges: ten times the amount in its own package. Every
        // member it asks refuses and records evidence against member 2; no share leaves.
        let forged = Authorization {
            amount: authorization.amount * 10,
            ..authorization
        };
        let share = members[1].ed25519.share.clone();
        let mut coordinator =
            Coordinator::<Ed25519>::new(77, 0, forged, None, None, &share).unwrap();
        let mut requests = BTreeMap::new();
        for m in 1..=4u16 {
            let reply = members[usize::from(m) - 1]
                .handle(&engine, 2, coordinator.commit_request(), SystemTime::now())
                .unwrap();
            let Some((_, Message::Commitments { slots, .. })) = reply.into_iter().next() else {
                panic!("member {m} committed")
            };
            if let Step::Send(out) = coordinator.on_commitments(m, &slots).unwrap() {
                requests = out;
            }
        }
        assert_eq!(requests.len(), 3);
        for (m, request) in requests {
            let reply = members[usize::from(m) - 1]
                .handle(&engine, 2, request, SystemTime::now())
                .unwrap();
            assert!(
                matches!(reply.as_slice(), [(Some(2), Message::Refused { .. })]),
                "member {m} refused: {reply:?}"
            );
            let recorded = evidence(&members[usize::from(m) - 1]);
            assert_eq!(recorded.len(), 1, "member {m}: {recorded:?}");
            assert!(recorded[0].contains("another message"), "{}", recorded[0]);
        }

        // The honest round: member 2 starts it on its tick, and every member ends with the same
        // checked record; the signature verifies with ed25519-dalek under the vault's key.
        let commit = members[1]
            .start_round(&engine, SystemTime::now())
            .expect("member 2's turn");
        deliver(&mut members, &engine, VecDeque::from([(2, None, commit)]));
        let mut records = Vec::new();
        for member in &members {
            let status = member.status.lock().unwrap();
            let (record, messages) = status.signed.get(&1).expect("signed at every member");
            records.push(record.clone());
            let key = ed25519_dalek::VerifyingKey::from_bytes(&member.ed25519_key).unwrap();
            let signature = ed25519_dalek::Signature::from_slice(&record.signatures[0]).unwrap();
            key.verify_strict(&messages[0], &signature).unwrap();
        }
        assert!(records.windows(2).all(|w| w[0] == w[1]));
        let stored = load_signed(&members[0].signed_path);
        assert_eq!(stored, vec![records[0].clone()], "stored on disk");

        // Asked again (a coordinator that lost the record): the signers refuse, as signed once,
        // and that is not evidence; no second signature exists.
        let before: Vec<usize> = members.iter().map(|m| evidence(m).len()).collect();
        let mut again =
            Coordinator::<Ed25519>::new(78, 0, authorization, None, None, &share).unwrap();
        let mut requests = BTreeMap::new();
        for m in 1..=4u16 {
            let reply = members[usize::from(m) - 1]
                .handle(&engine, 2, again.commit_request(), SystemTime::now())
                .unwrap();
            if let Some((_, Message::Commitments { slots, .. })) = reply.into_iter().next() {
                if let Step::Send(out) = again.on_commitments(m, &slots).unwrap() {
                    requests = out;
                }
            }
        }
        for (m, request) in requests {
            let reply = members[usize::from(m) - 1]
                .handle(&engine, 2, request, SystemTime::now())
                .unwrap();
            assert!(
                matches!(reply.as_slice(), [(_, Message::Refused { .. })]),
                "{reply:?}"
            );
        }
        let after: Vec<usize> = members.iter().map(|m| evidence(m).len()).collect();
        assert_eq!(before, after);

        // A peer's record with a flipped signature is evidence, and changes nothing.
        let mut bad = records[0].clone();
        bad.signatures[0][3] ^= 1;
        members[0].status.lock().unwrap().signed.clear();
        let out = members[0]
            .handle(&engine, 4, Message::Signed(bad), SystemTime::now())
            .unwrap();
        assert!(out.is_empty());
        assert!(members[0].status.lock().unwrap().signed.is_empty());
        assert!(evidence(&members[0])
            .iter()
            .any(|e| e.contains("signed withdrawal 1")));

        // The signers spent nonces without writing their books: the synced watermarks carry
        // the spent slots, so a member that restarts never hands one out again.
        let ed25519_key = members[0].ed25519.group_key.clone();
        for member in &mut members {
            let reopened = Key::<Ed25519>::open(&mut member.files, 0, &ed25519_key).unwrap();
            assert_eq!(
                reopened.book.slots().collect::<Vec<_>>(),
                member.ed25519.book.slots().collect::<Vec<_>>(),
                "member {}: the book read back is the book in memory",
                member.me
            );
        }
        assert!(members.iter().any(|m| m.ed25519.marks.spent(0).count() > 0));
        // Once a book without them is written, the watermarks forget them.
        let member = &mut members[1];
        while member.ed25519.book.unspent() >= NONCES_LOW {
            let slot = member.ed25519.book.slots().next().unwrap();
            member.ed25519.book.spend(slot).unwrap();
            member.ed25519.marks.note_spent(0, [slot]);
        }
        member.ed25519.top_up(&mut member.files, 0).unwrap();
        assert_eq!(member.ed25519.marks.spent(0).count(), 0);
        let reopened = Key::<Ed25519>::open(&mut member.files, 0, &ed25519_key).unwrap();
        assert_eq!(
            reopened.book.slots().collect::<Vec<_>>(),
            member.ed25519.book.slots().collect::<Vec<_>>()
        );
        // A watermarks record that does not open (a torn write, or damage): the older one is
        // read, and no precomputed nonce is handed out again (whatever the lost record spent).
        let path = dir.join("m2").join("vault").join("ed25519.watermarks");
        let mut bytes = std::fs::read(&path).unwrap();
        let header = bulwark_vaultstore::files::TWO_REGION_HEADER;
        bytes[header + 4 + 10] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let reopened = Key::<Ed25519>::open(&mut member.files, 0, &ed25519_key).unwrap();
        assert_eq!(
            reopened.book.unspent(),
            0,
            "every nonce of the book is dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs a coordinator's round by hand: commit requests to every member, sign requests to
    /// the chosen; returns the shares each chosen signer sent (or `None` if it refused).
    fn round_by_hand<C: VaultSuite>(
        members: &mut [Signer],
        engine: &Engine,
        coordinator_member: Member,
        coordinator: &mut Coordinator<C>,
    ) -> BTreeMap<Member, Option<Vec<Vec<u8>>>> {
        let mut requests = BTreeMap::new();
        for m in 1..=4u16 {
            let reply = members[usize::from(m) - 1]
                .handle(
                    engine,
                    coordinator_member,
                    coordinator.commit_request(),
                    SystemTime::now(),
                )
                .unwrap();
            if let Some((_, Message::Commitments { slots, .. })) = reply.into_iter().next() {
                if let Step::Send(out) = coordinator.on_commitments(m, &slots).unwrap() {
                    requests = out;
                }
            }
        }
        requests
            .into_iter()
            .map(|(m, request)| {
                let reply = members[usize::from(m) - 1]
                    .handle(engine, coordinator_member, request, SystemTime::now())
                    .unwrap();
                let shares = match reply.into_iter().next() {
                    Some((_, Message::Shares { shares, .. })) => Some(shares),
                    _ => None,
                };
                (m, shares)
            })
            .collect()
    }

    /// The two rounds as a member sees them: the commit request marks the transaction and spends
    /// the nonces in memory, the synced write follows (the node's loop runs it once the
    /// commitments left; a sign request runs it first if it has not), and a sign request is
    /// answered only for the round and the transaction committed to.
    #[test]
    fn a_member_signs_only_the_round_and_the_transaction_it_committed_to_after_the_synced_write() {
        let BitcoinCase {
            dir,
            engine,
            mut members,
            authorization,
            policy,
            vault,
        } = bitcoin_case("pledge", 0x46);
        let body = build(&[utxo(7, 90_000)], &vault, &authorization).unwrap();
        let other = build(&[utxo(8, 95_000)], &vault, &authorization).unwrap();
        let key = members[0].bitcoin.group_key.clone();
        let marked_on_disk = |member: &mut Signer| {
            Key::<Taproot>::open(&mut member.files, 0, &key)
                .unwrap()
                .marks
                .is_marked(Chain::Bitcoin, 1)
        };
        let share = members[1].bitcoin.share.clone();
        let mut coordinator =
            Coordinator::<Taproot>::new(5, 0, authorization, Some(body), Some(&policy), &share)
                .unwrap();
        let mut requests = BTreeMap::new();
        for m in 1..=4u16 {
            let member = &mut members[usize::from(m) - 1];
            let unspent = member.bitcoin.book.unspent();
            let reply = member
                .handle(&engine, 2, coordinator.commit_request(), SystemTime::now())
                .unwrap();
            let Some((_, Message::Commitments { slots, .. })) = reply.into_iter().next() else {
                panic!("member {m} committed")
            };
            assert_eq!(
                member.bitcoin.book.unspent(),
                unspent - 1,
                "out of the book"
            );
            assert!(member.bitcoin.marks.is_marked(Chain::Bitcoin, 1));
            assert!(
                !marked_on_disk(member),
                "not synced before the loop's write"
            );
            if m != 1 {
                member.flush().unwrap();
                assert!(marked_on_disk(member), "synced by the loop's write");
            }
            if let Step::Send(out) = coordinator.on_commitments(m, &slots).unwrap() {
                requests = out;
            }
        }
        assert_eq!(requests.len(), 3, "members 1, 2 and 3 chosen");
        // Member 1's loop has not written yet: its answer writes first, then signs.
        let request = requests.remove(&1).unwrap();
        let reply = members[0]
            .handle(&engine, 2, request.clone(), SystemTime::now())
            .unwrap();
        assert!(
            matches!(reply.as_slice(), [(Some(2), Message::Shares { .. })]),
            "{reply:?}"
        );
        assert!(marked_on_disk(&mut members[0]));
        // The same request again: its nonces are used up, no second share.
        let again = members[0]
            .handle(&engine, 2, request, SystemTime::now())
            .unwrap();
        assert!(
            matches!(again.as_slice(), [(Some(2), Message::Refused { .. })]),
            "{again:?}"
        );
        // Member 2 is asked for another round than the one it committed to: refused, not
        // evidence (a stale request). Member 3 is asked for another transaction than the commit
        // request named: refused, and evidence against the coordinator.
        let Message::Sign { request, .. } = requests.remove(&2).unwrap() else {
            panic!("a sign request")
        };
        let stale = Message::Sign { round: 6, request };
        let reply = members[1]
            .handle(&engine, 2, stale, SystemTime::now())
            .unwrap();
        assert!(matches!(reply.as_slice(), [(_, Message::Refused { .. })]));
        assert!(evidence(&members[1]).is_empty());
        let Message::Sign { round, mut request } = requests.remove(&3).unwrap() else {
            panic!("a sign request")
        };
        request.bitcoin = Some(other);
        let reply = members[2]
            .handle(
                &engine,
                2,
                Message::Sign { round, request },
                SystemTime::now(),
            )
            .unwrap();
        assert!(matches!(reply.as_slice(), [(_, Message::Refused { .. })]));
        let recorded = evidence(&members[2]);
        assert!(
            recorded
                .iter()
                .any(|e| e.contains("not the one its round committed to")),
            "{recorded:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Rounds that never reach t members release nothing and use up no attempt: after more
    /// abandoned commit requests than `ATTEMPTS_MAX`, a member still commits, and signs. A
    /// coordinator's commit requests beyond `PLEDGES_PER_S` in one second get nothing.
    #[test]
    fn abandoned_commit_requests_use_up_no_attempt_and_are_bounded_per_second() {
        let BitcoinCase {
            dir,
            engine,
            mut members,
            authorization,
            policy,
            vault,
        } = bitcoin_case("abandoned", 0x48);
        let body = build(&[utxo(7, 90_000)], &vault, &authorization).unwrap();
        let share = members[1].bitcoin.share.clone();
        let round = |number: u64| {
            Coordinator::<Taproot>::new(
                number,
                0,
                authorization,
                Some(body.clone()),
                Some(&policy),
                &share,
            )
            .unwrap()
        };
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        for number in 0..u64::from(bulwark_vault::release::ATTEMPTS_MAX) * 3 {
            let at = start + Duration::from_secs(number);
            let reply = members[0]
                .handle(&engine, 2, round(number).commit_request(), at)
                .unwrap();
            members[0].flush().unwrap();
            assert!(
                matches!(reply.as_slice(), [(Some(2), Message::Commitments { .. })]),
                "abandoned round {number}: {reply:?}"
            );
        }
        // In one second, at most PLEDGES_PER_S new rounds are answered.
        let busy = start + Duration::from_secs(500);
        let answered = (0..20u64)
            .filter(|n| {
                let reply = members[0]
                    .handle(&engine, 2, round(1_000 + n).commit_request(), busy)
                    .unwrap();
                !reply.is_empty()
            })
            .count();
        assert_eq!(answered, PLEDGES_PER_S as usize);
        // The member still signs the withdrawal's transaction.
        let mut last = round(5_000);
        let shares = round_by_hand(&mut members, &engine, 2, &mut last);
        assert!(shares.values().all(Option::is_some), "{shares:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_coordinator_killed_mid_round_is_replaced_and_the_withdrawal_is_paid_by_one_transaction() {
        let BitcoinCase {
            dir,
            mut engine,
            mut members,
            authorization,
            policy,
            vault,
        } = bitcoin_case("kill", 0x45);
        let utxos = [utxo(7, 40_000), utxo(8, 30_000)];
        let body = build(&utxos, &vault, &authorization).unwrap();
        // Member 2's turn: every chosen signer answers (watermark and nonces synced), then the
        // coordinator is killed before it combines anything.
        assert_eq!(
            members[0].coordinator(1, engine.withdrawal(1).unwrap(), engine.time_ms()),
            2
        );
        let share = members[1].bitcoin.share.clone();
        let mut first = Coordinator::<Taproot>::new(
            1,
            0,
            authorization,
            Some(body.clone()),
            Some(&policy),
            &share,
        )
        .unwrap();
        let answered = round_by_hand(&mut members, &engine, 2, &mut first);
        assert!(
            answered.values().all(Option::is_some),
            "every chosen signer answered"
        );
        drop(first);
        // Ten seconds later it is member 3's turn.
        let mut events = Vec::new();
        engine.execute(ROTATE_MS, &[], &mut events);
        assert_eq!(
            members[0].coordinator(1, engine.withdrawal(1).unwrap(), engine.time_ms()),
            3
        );
        // Member 3 builds another transaction (other inputs): the members that marked the first
        // refuse it, as signed for another transaction, and release nothing.
        let other = build(&[utxo(9, 90_000)], &vault, &authorization).unwrap();
        let share3 = members[2].bitcoin.share.clone();
        let mut forked =
            Coordinator::<Taproot>::new(2, 0, authorization, Some(other), Some(&policy), &share3)
                .unwrap();
        let refused = round_by_hand(&mut members, &engine, 3, &mut forked);
        let marked: Vec<Member> = answered.keys().copied().collect();
        for m in &marked {
            if let Some(shares) = refused.get(m) {
                assert!(
                    shares.is_none(),
                    "member {m} signed a second transaction for one withdrawal"
                );
            }
        }
        // The same transaction again, with fresh nonces: answered, combined, one signature.
        let mut retry = Coordinator::<Taproot>::new(
            3,
            0,
            authorization,
            Some(body.clone()),
            Some(&policy),
            &share3,
        )
        .unwrap();
        let shares = round_by_hand(&mut members, &engine, 3, &mut retry);
        let mut signatures = None;
        for (m, list) in shares {
            if let Step::Done(done) = retry
                .on_shares(
                    m,
                    &list.expect("the same transaction is answered again"),
                    &share3,
                )
                .unwrap()
            {
                signatures = Some(done);
            }
        }
        let record = retry.record(&signatures.expect("the retry signs"));
        record
            .check(&authorization, &members[0].ed25519_key, &policy)
            .unwrap();
        let signed_txid = record.txid().unwrap();
        let unsigned: bitcoin::Transaction = bitcoin::consensus::deserialize(&body.tx).unwrap();
        assert_eq!(
            signed_txid,
            unsigned.compute_txid().to_string(),
            "the first transaction, and only it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
