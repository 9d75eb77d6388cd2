//! The only door to a signature share: a withdrawal a finalized block authorized, paying exactly
//! the authorized destination and amount, signed once.
//!
//! A member answers a coordinator's [`SignRequest`] in three steps:
//! 1. [`prepare`] checks the request against the ledger's [`Authorization`] for that withdrawal
//!    (the caller looks it up in its *committed* engine; `None` when no finalized block
//!    authorized it), the member's [`Watermarks`], its share and its nonce book. For Bitcoin it
//!    decodes the unsigned transaction, checks inputs, outputs, fee and form
//!    ([`crate::taproot::check`]) and computes every input's sighash itself; for Ed25519 it
//!    builds the canonical message itself. Each signing package must carry exactly that
//!    message, name this member with the commitment it published for an unspent slot, and name
//!    at least t signers that all hold shares of this sharing. Everything that can refuse a
//!    request is checked here, before anything is marked or spent.
//!    [`Refusal::is_evidence`] says which refusals convict the requester.
//! 2. The caller marks the watermark ([`Watermarks::mark`] with [`Prepared::transaction`]) and
//!    spends the nonce slots ([`crate::signing::NonceBook::spend`]), and syncs both to disk.
//! 3. Only then [`Prepared::sign`] makes the shares that leave the member.
//!
//! A node splits step 1 over the round's two requests: [`pledge`] at the commit request (the
//! transaction and the watermarks; the node then marks, takes the nonces it commits to out of
//! its book and syncs both while its commitments travel), and [`prepare_pledged`] at the sign
//! request (the same transaction, the packages against the nonces it committed to). [`prepare`]
//! is the two in one.
//!
//! The watermark binds a withdrawal to one transaction (its txid; for Ed25519 the digest of
//! the canonical message). A request for the same withdrawal and the same transaction is
//! answered again with fresh nonces: a coordinator whose round failed (a signer sent a bad
//! share, or went silent) retries with other signers, and every signature it can get spends the
//! same inputs, so the chain pays the withdrawal once. Another transaction for a withdrawal
//! that was signed is refused.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::{sha256, Hash as _};
use bitcoin::{Amount, ScriptBuf, TxOut};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::{Ciphersuite, SigningPackage};
use serde::{Deserialize, Serialize};

use crate::keygen::KeyShare;
use crate::signing::{check_signers, decode_package, sign, NonceBook};
use crate::taproot::{self, TxRefusal};
use crate::{Chain, Ed25519, Taproot, VaultError};

/// The signing namespace of an Ed25519 withdrawal. Part of the protocol.
pub const ED25519_NAMESPACE: &[u8] = b"bulwark/vault/ed25519-withdrawal/v1";

/// Most watermarks a member keeps per chain before the oldest half is folded into a floor
/// (withdrawal ids are sequential, so everything below the floor counts as signed). Bounds the
/// sealed file a member rewrites before every share (about 60 bytes of JSON per entry).
pub const WATERMARKS_MAX: usize = 16_384;

/// Most attempts a member makes at one withdrawal's transaction: the binding, then one per
/// round whose shares left it (a node binds at the first commit request and counts at each
/// release; [`Watermarks::mark`] counts each release). Each release spends nonces; a
/// coordinator that retries without end would drain them. Commit requests that release nothing
/// are not counted (a committee below t members would otherwise use them up): a node bounds
/// them per coordinator and second.
pub const ATTEMPTS_MAX: u8 = 9;

/// A ciphersuite the vault uses, with the chain it signs for.
pub trait VaultSuite: Ciphersuite {
    /// Its chain.
    const CHAIN: Chain;
}

impl VaultSuite for Taproot {
    const CHAIN: Chain = Chain::Bitcoin;
}

impl VaultSuite for Ed25519 {
    const CHAIN: Chain = Chain::Ed25519;
}

/// What a finalized block authorized: pay `amount` (chain units: sats, or the Ed25519 chain's
/// smallest unit) to `destination` (a P2TR witness program, or an Ed25519 public key), as
/// withdrawal `withdrawal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// The engine's withdrawal id.
    pub withdrawal: u64,
    /// Which key pays.
    pub chain: Chain,
    /// Where to.
    pub destination: [u8; 32],
    /// How much, in the chain's smallest unit.
    pub amount: u64,
}

/// What a Bitcoin request carries besides the packages: the unsigned transaction and what each
/// input spends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitcoinBody {
    /// The unsigned transaction, consensus-encoded.
    pub tx: Vec<u8>,
    /// Per input, the value (sats) of the output it spends. The script is the vault's: the
    /// member does not take the coordinator's word for it.
    pub prevout_sats: Vec<u64>,
}

/// A coordinator's request for signature shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// Which withdrawal.
    pub withdrawal: u64,
    /// Which key.
    pub chain: Chain,
    /// For Bitcoin, the transaction; `None` for Ed25519.
    pub bitcoin: Option<BitcoinBody>,
    /// Per message (a Bitcoin input, or the one Ed25519 message): this member's nonce slot and
    /// the serialized signing package.
    pub packages: Vec<(u64, Vec<u8>)>,
}

/// The once-only record: per chain, which withdrawals this member released shares for, and for
/// which transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    /// (chain, withdrawal) → the transaction it was signed for, and how many times.
    #[serde(with = "signed_entries")]
    signed: BTreeMap<(Chain, u64), ([u8; 32], u8)>,
    /// Per chain, every id below this counts as signed for an unknown transaction (ids folded
    /// out of `signed`): refused for good.
    floors: Vec<(Chain, u64)>,
    /// Nonce slots spent since the nonce book was last written, as (epoch, slot): synced with
    /// the mark in the one write that precedes a share, so the book need not be (a book read
    /// back drops them). Cleared once a book without them is synced.
    #[serde(default)]
    spent: BTreeSet<(u64, u64)>,
}

/// What the watermarks say about a withdrawal and a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Never signed: a share may be released (after the mark is synced).
    New,
    /// Signed for this very transaction: a retry, answered again.
    Same,
    /// Signed for this very transaction [`ATTEMPTS_MAX`] times: refused.
    Exhausted,
    /// Signed for another transaction, or folded under the floor: refused.
    Other,
}

impl Watermarks {
    /// What a share for `withdrawal` on `chain` signing `transaction` would be.
    pub fn status(&self, chain: Chain, withdrawal: u64, transaction: &[u8; 32]) -> Mark {
        if self
            .floors
            .iter()
            .any(|(c, floor)| *c == chain && withdrawal < *floor)
        {
            return Mark::Other;
        }
        match self.signed.get(&(chain, withdrawal)) {
            None => Mark::New,
            Some((t, attempts)) if t == transaction && *attempts >= ATTEMPTS_MAX => Mark::Exhausted,
            Some((t, _)) if t == transaction => Mark::Same,
            Some(_) => Mark::Other,
        }
    }

    /// Whether `withdrawal` on `chain` was released already (for any transaction).
    pub fn is_marked(&self, chain: Chain, withdrawal: u64) -> bool {
        self.status(chain, withdrawal, &[0; 32]) != Mark::New
    }

    /// Records nonce slots of `epoch`'s book as spent (persisted with the next write, before
    /// the share that uses them leaves).
    pub fn note_spent(&mut self, epoch: u64, slots: impl IntoIterator<Item = u64>) {
        self.spent
            .extend(slots.into_iter().map(|slot| (epoch, slot)));
    }

    /// The slots of `epoch`'s book recorded as spent.
    pub fn spent(&self, epoch: u64) -> impl Iterator<Item = u64> + '_ {
        self.spent
            .range((epoch, 0)..=(epoch, u64::MAX))
            .map(|(_, slot)| *slot)
    }

    /// Forgets the spent slots of `epoch` and older: call it only once a book of `epoch`
    /// without them is synced (older books are deleted).
    pub fn forget_spent_through(&mut self, epoch: u64) {
        self.spent.retain(|(e, _)| *e > epoch);
    }

    /// How many spent slots are recorded.
    pub fn spent_count(&self) -> usize {
        self.spent.len()
    }

    /// Marks `withdrawal` on `chain` as signed (once more) for `transaction`. The caller syncs
    /// the watermarks to disk before any share for it leaves the member. Returns `false` (and
    /// changes nothing) if it was signed for another transaction, or [`ATTEMPTS_MAX`] times.
    pub fn mark(&mut self, chain: Chain, withdrawal: u64, transaction: [u8; 32]) -> bool {
        match self.status(chain, withdrawal, &transaction) {
            Mark::Other | Mark::Exhausted => false,
            Mark::Same => {
                self.count_release(chain, withdrawal);
                true
            }
            Mark::New => {
                self.insert_new(chain, withdrawal, transaction);
                true
            }
        }
    }

    /// Binds `withdrawal` on `chain` to `transaction` (a node's commit request: the first binding
    /// counts as one attempt, a binding to the same transaction again counts nothing; releases
    /// count with [`Watermarks::count_release`]). The caller syncs the watermarks to disk before
    /// any share for it leaves the member. Returns `false` (and changes nothing) if it is bound to
    /// another transaction, or was attempted [`ATTEMPTS_MAX`] times.
    pub fn bind(&mut self, chain: Chain, withdrawal: u64, transaction: [u8; 32]) -> bool {
        match self.status(chain, withdrawal, &transaction) {
            Mark::Other | Mark::Exhausted => false,
            Mark::Same => true,
            Mark::New => {
                self.insert_new(chain, withdrawal, transaction);
                true
            }
        }
    }

    /// Counts one more release of shares for a bound `withdrawal` on `chain` (at most
    /// [`ATTEMPTS_MAX`]).
    pub fn count_release(&mut self, chain: Chain, withdrawal: u64) {
        if let Some((_, attempts)) = self.signed.get_mut(&(chain, withdrawal)) {
            *attempts = attempts.saturating_add(1).min(ATTEMPTS_MAX);
        }
    }

    fn insert_new(&mut self, chain: Chain, withdrawal: u64, transaction: [u8; 32]) {
        self.signed.insert((chain, withdrawal), (transaction, 1));
        let on_chain = self.signed.keys().filter(|(c, _)| *c == chain).count();
        if on_chain > WATERMARKS_MAX {
            // Fold the oldest half into the floor: ids are sequential and a member signs in
            // ledger order, so an old id not signed by now was refused or is not this vault's.
            let cut = self
                .signed
                .keys()
                .filter(|(c, _)| *c == chain)
                .nth(on_chain / 2)
                .map(|(_, id)| *id)
                .expect("more than WATERMARKS_MAX entries exist on this chain");
            let old = self
                .floors
                .iter()
                .find(|(c, _)| *c == chain)
                .map_or(0, |(_, floor)| *floor);
            let floor = old.max(cut);
            self.signed.retain(|(c, id), _| *c != chain || *id >= floor);
            self.floors.retain(|(c, _)| *c != chain);
            self.floors.push((chain, floor));
        }
    }
}

/// The signed map as a list of (chain, withdrawal, transaction) (JSON keys must be strings).
mod signed_entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Chain;

    type Entries = BTreeMap<(Chain, u64), ([u8; 32], u8)>;

    pub(super) fn serialize<S: Serializer>(map: &Entries, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<(Chain, u64, String, u8)> = map
            .iter()
            .map(|((c, id), (t, attempts))| (*c, *id, hex::encode(t), *attempts))
            .collect();
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        let list = Vec::<(Chain, u64, String, u8)>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for (c, id, t, attempts) in list {
            let bytes: [u8; 32] = hex::decode(&t)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| serde::de::Error::custom("a transaction is 32 bytes of hex"))?;
            if attempts == 0 || attempts > super::ATTEMPTS_MAX {
                return Err(serde::de::Error::custom("attempts out of range"));
            }
            if map.insert((c, id), (bytes, attempts)).is_some() {
                return Err(serde::de::Error::custom("a withdrawal marked twice"));
            }
        }
        Ok(map)
    }
}

/// Why a member refused to release a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No finalized block authorized this withdrawal.
    #[error("withdrawal {0} is not authorized by a finalized block")]
    NotAuthorized(u64),
    /// The request names another chain than the authorization, or than this key.
    #[error("withdrawal {withdrawal} is for {authorized}, the request for {requested}")]
    WrongChain {
        /// The withdrawal.
        withdrawal: u64,
        /// The ledger's chain.
        authorized: &'static str,
        /// The request's.
        requested: &'static str,
    },
    /// Shares for this withdrawal and another transaction left this member already.
    #[error("withdrawal {0} was signed for another transaction already: each is paid once")]
    AlreadySigned(u64),
    /// This member released shares for this withdrawal's transaction [`ATTEMPTS_MAX`] times.
    #[error("withdrawal {0} was attempted {ATTEMPTS_MAX} times: no more retries")]
    Attempts(u64),
    /// A nonce slot the request names is spent or was never made by this member (a retry after
    /// the member crashed mid-answer, or a stale request).
    #[error("withdrawal {withdrawal}: nonce slot {slot} is spent or unknown")]
    Nonce {
        /// The withdrawal.
        withdrawal: u64,
        /// The slot.
        slot: u64,
    },
    /// The transaction is not what the ledger authorized.
    #[error("withdrawal {withdrawal}: {reason}")]
    Transaction {
        /// The withdrawal.
        withdrawal: u64,
        /// What is wrong.
        reason: TxRefusal,
    },
    /// A package signs another message than the one the member computed.
    #[error(
        "withdrawal {withdrawal}: package {index} signs another message than the member computed"
    )]
    Message {
        /// The withdrawal.
        withdrawal: u64,
        /// Which package.
        index: usize,
    },
    /// A sign request for another transaction than the round's commit request named (the
    /// member committed its nonces to that one).
    #[error(
        "withdrawal {0}: the sign request's transaction is not the one its round committed to"
    )]
    Switched(u64),
    /// The packages do not fit the request (count, bounds, encoding, signers).
    #[error("withdrawal {withdrawal}: {reason}")]
    Package {
        /// The withdrawal.
        withdrawal: u64,
        /// What is wrong.
        reason: VaultError,
    },
}

impl Refusal {
    /// Whether the refusal is evidence against the requester: it asked for something no
    /// honest coordinator asks for (another destination, amount, output, fee or message, a
    /// malformed package, nonces this member never published for the slot). Not evidence: a
    /// withdrawal this member's committed ledger does not show yet (it may lag), one signed for
    /// another transaction, one retried too often, or a spent slot (an honest retry can meet
    /// these after a crash or on a flaky network).
    pub fn is_evidence(&self) -> bool {
        !matches!(
            self,
            Refusal::NotAuthorized(_)
                | Refusal::AlreadySigned(_)
                | Refusal::Attempts(_)
                | Refusal::Nonce { .. }
        )
    }
}

/// A request that passed every check, with the messages the member computed.
pub struct Prepared<C: Ciphersuite> {
    /// The withdrawal.
    pub withdrawal: u64,
    /// The transaction the shares sign (txid; for Ed25519 the SHA-256 of the message): what
    /// the caller marks in the watermarks.
    pub transaction: [u8; 32],
    /// Per package: the nonce slot to spend, and the package.
    pub packages: Vec<(u64, SigningPackage<C>)>,
}

impl<C: Ciphersuite> Prepared<C> {
    /// The nonce slots the caller must spend (and persist as spent) before [`Prepared::sign`].
    pub fn slots(&self) -> Vec<u64> {
        self.packages.iter().map(|(slot, _)| *slot).collect()
    }

    /// The serialized shares, one per package, with the nonces the caller spent for
    /// [`Prepared::slots`] (same order).
    pub fn sign(
        &self,
        nonces: &[SigningNonces<C>],
        share: &KeyShare<C>,
    ) -> Result<Vec<Vec<u8>>, VaultError> {
        if nonces.len() != self.packages.len() {
            return Err(VaultError::Malformed("nonces for the request"));
        }
        self.packages
            .iter()
            .zip(nonces)
            .map(|((_, package), nonces)| sign(package, nonces, share).map(|s| s.serialize()))
            .collect()
    }
}

/// The Ed25519 chain's withdrawal message: namespace ‖ id ‖ destination ‖ amount (big-endian).
pub fn ed25519_message(authorization: &Authorization) -> Vec<u8> {
    let mut message = Vec::with_capacity(ED25519_NAMESPACE.len() + 48);
    message.extend_from_slice(ED25519_NAMESPACE);
    message.extend_from_slice(&authorization.withdrawal.to_be_bytes());
    message.extend_from_slice(&authorization.destination);
    message.extend_from_slice(&authorization.amount.to_be_bytes());
    message
}

/// The fee bounds of a Bitcoin withdrawal, and the vault's output key (x-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitcoinPolicy {
    /// The vault's output key Q, x-only (bytes 1..33 of the taproot group key).
    pub vault_key: [u8; 32],
    /// Smallest fee a withdrawal may leave, sats (a transaction that never confirms would hold
    /// the withdrawal: the watermark lets only this transaction be signed for it).
    pub fee_min_sats: u64,
    /// Smallest fee rate, sats per virtual byte of the signed transaction (a coordinator that
    /// pads a withdrawal with many small inputs cannot push it below relay).
    pub fee_rate_min_sat_vb: u64,
    /// Largest fee a withdrawal may leave, sats.
    pub fee_max_sats: u64,
}

/// What a member holds for answering: its share, its unspent nonces and its watermarks.
pub struct Holdings<'a, C: Ciphersuite> {
    /// The member's share of the key.
    pub share: &'a KeyShare<C>,
    /// Its unspent round-1 nonces.
    pub book: &'a NonceBook<C>,
    /// Its once-only record.
    pub watermarks: &'a Watermarks,
}

/// Step 1: checks `request` against the ledger's `authorization`, the member's watermarks,
/// share and nonce book, and returns the messages to sign. `bitcoin` is required for the
/// taproot key. Nothing is marked or spent here. The same checks as [`pledge`] followed by
/// [`prepare_pledged`] (a node runs the two at the two rounds of a signing).
pub fn prepare<C: VaultSuite>(
    request: &SignRequest,
    authorization: Option<&Authorization>,
    holdings: &Holdings<'_, C>,
    bitcoin: Option<&BitcoinPolicy>,
) -> Result<Prepared<C>, Refusal> {
    let transaction = pledge::<C>(
        request.withdrawal,
        request.chain,
        request.bitcoin.as_ref(),
        request.packages.len(),
        authorization,
        holdings.watermarks,
        bitcoin,
        false,
    )?;
    prepare_pledged(
        request,
        authorization,
        holdings.share,
        &|slot| holdings.book.commitments(slot).copied(),
        bitcoin,
        &transaction,
    )
}

/// Round 1 of a signing, at a commit request: checks that this member may sign withdrawal `id`
/// on `chain` with `body` (Bitcoin's unsigned transaction; `None` for Ed25519) in `count`
/// messages: the ledger's `authorization`, the one rule of [`messages`], and the watermarks.
/// Returns the transaction to mark ([`Watermarks::mark`]); the caller marks it and syncs the
/// mark with the nonces it commits to before any share for them leaves. `repledge`: the caller
/// knows that no share for this withdrawal left it since the mark (it committed in an earlier
/// round in this very run and signed nothing), so an Ed25519 withdrawal marked already may be
/// committed to again.
#[allow(clippy::too_many_arguments)]
pub fn pledge<C: VaultSuite>(
    id: u64,
    chain: Chain,
    body: Option<&BitcoinBody>,
    count: usize,
    authorization: Option<&Authorization>,
    watermarks: &Watermarks,
    bitcoin: Option<&BitcoinPolicy>,
    repledge: bool,
) -> Result<[u8; 32], Refusal> {
    let (transaction, messages) = checked_messages::<C>(id, chain, body, authorization, bitcoin)?;
    match (watermarks.status(chain, id, &transaction), C::CHAIN) {
        (Mark::Other, _) => return Err(Refusal::AlreadySigned(id)),
        (Mark::Exhausted, _) => return Err(Refusal::Attempts(id)),
        // An Ed25519 chain's message is the same for every attempt, and nothing here knows
        // that chain dedupes withdrawal ids: a second set of shares would be a second valid
        // signature. One signing per Ed25519 withdrawal.
        (Mark::Same, Chain::Ed25519) if !repledge => return Err(Refusal::AlreadySigned(id)),
        _ => {}
    }
    if count != messages.len() {
        return Err(Refusal::Package {
            withdrawal: id,
            reason: VaultError::Malformed("packages: one per message"),
        });
    }
    Ok(transaction)
}

/// Round 2 of a signing, at a sign request: checks `request` against the ledger's
/// `authorization` and the `pledged` transaction this member marked at the round's commit
/// request, and each package against the commitments it published (`commitment_of` a slot,
/// `None` if it committed to no such slot). The watermarks are not read: the pledge checked
/// them. Nothing is spent here.
pub fn prepare_pledged<C: VaultSuite>(
    request: &SignRequest,
    authorization: Option<&Authorization>,
    share: &KeyShare<C>,
    commitment_of: &dyn Fn(u64) -> Option<SigningCommitments<C>>,
    bitcoin: Option<&BitcoinPolicy>,
    pledged: &[u8; 32],
) -> Result<Prepared<C>, Refusal> {
    let id = request.withdrawal;
    let package_error = |reason| Refusal::Package {
        withdrawal: id,
        reason,
    };
    let (transaction, messages) = checked_messages::<C>(
        id,
        request.chain,
        request.bitcoin.as_ref(),
        authorization,
        bitcoin,
    )?;
    if &transaction != pledged {
        return Err(Refusal::Switched(id));
    }
    if request.packages.len() != messages.len() {
        return Err(package_error(VaultError::Malformed(
            "packages: one per message",
        )));
    }
    let mut slots = BTreeSet::new();
    let mut packages = Vec::with_capacity(messages.len());
    for (index, ((slot, bytes), message)) in request.packages.iter().zip(&messages).enumerate() {
        if !slots.insert(*slot) {
            return Err(package_error(VaultError::Malformed(
                "packages (one nonce slot twice)",
            )));
        }
        let package = decode_package::<C>(bytes).map_err(package_error)?;
        if package.message() != message {
            return Err(Refusal::Message {
                withdrawal: id,
                index,
            });
        }
        let published = commitment_of(*slot).ok_or(Refusal::Nonce {
            withdrawal: id,
            slot: *slot,
        })?;
        let named = package
            .signing_commitment(share.key.identifier())
            .ok_or(package_error(VaultError::NotAParticipant(share.member())))?;
        if named != published {
            return Err(package_error(VaultError::Malformed(
                "package (names other nonces than this member published for the slot)",
            )));
        }
        check_signers(&package, share).map_err(package_error)?;
        packages.push((*slot, package));
    }
    Ok(Prepared {
        withdrawal: id,
        transaction,
        packages,
    })
}

/// [`messages`] for key `C` on the request's `chain`, after the authorization and chain checks
/// every request passes first.
fn checked_messages<C: VaultSuite>(
    id: u64,
    chain: Chain,
    body: Option<&BitcoinBody>,
    authorization: Option<&Authorization>,
    bitcoin: Option<&BitcoinPolicy>,
) -> Result<([u8; 32], Vec<Vec<u8>>), Refusal> {
    let authorization = authorization
        .filter(|a| a.withdrawal == id)
        .ok_or(Refusal::NotAuthorized(id))?;
    if authorization.chain != chain || chain != C::CHAIN {
        return Err(Refusal::WrongChain {
            withdrawal: id,
            authorized: authorization.chain.name(),
            requested: chain.name(),
        });
    }
    messages(id, C::CHAIN, body, authorization, bitcoin)
}

/// The one rule for what the vault signs for `authorization` on `chain`: the transaction it is
/// bound to (the txid; for Ed25519 the SHA-256 of the message) and the messages. For Bitcoin,
/// `body` must pass [`taproot::check`] against the authorization and `policy`; for Ed25519 there
/// is no body and the message is [`ed25519_message`]. A member's [`prepare`], a coordinator
/// starting a round and anyone checking a signed withdrawal all call this.
pub fn messages(
    id: u64,
    chain: Chain,
    body: Option<&BitcoinBody>,
    authorization: &Authorization,
    policy: Option<&BitcoinPolicy>,
) -> Result<([u8; 32], Vec<Vec<u8>>), Refusal> {
    let package_error = |reason| Refusal::Package {
        withdrawal: id,
        reason,
    };
    if authorization.withdrawal != id {
        return Err(Refusal::NotAuthorized(id));
    }
    if authorization.chain != chain {
        return Err(Refusal::WrongChain {
            withdrawal: id,
            authorized: authorization.chain.name(),
            requested: chain.name(),
        });
    }
    match (chain, body) {
        (Chain::Ed25519, None) => {
            let message = ed25519_message(authorization);
            Ok((sha256::Hash::hash(&message).to_byte_array(), vec![message]))
        }
        (Chain::Bitcoin, Some(body)) => {
            let policy = policy.ok_or(package_error(VaultError::Malformed(
                "no Bitcoin policy for the taproot key",
            )))?;
            bitcoin_messages(id, body, authorization, policy)
        }
        _ => Err(package_error(VaultError::Malformed(
            "request body for the chain",
        ))),
    }
}

/// The transaction's txid and every input's sighash, after [`taproot::check`].
fn bitcoin_messages(
    id: u64,
    body: &BitcoinBody,
    authorization: &Authorization,
    policy: &BitcoinPolicy,
) -> Result<([u8; 32], Vec<Vec<u8>>), Refusal> {
    let refuse = |reason| Refusal::Transaction {
        withdrawal: id,
        reason,
    };
    let tx = taproot::decode(&body.tx).map_err(refuse)?;
    let vault = taproot::vault_script(&policy.vault_key).map_err(refuse)?;
    if body.prevout_sats.len() > taproot::INPUTS_MAX {
        return Err(refuse(TxRefusal::Inputs {
            inputs: tx.input.len(),
            prevouts: body.prevout_sats.len(),
        }));
    }
    let prevouts: Vec<TxOut> = body
        .prevout_sats
        .iter()
        .map(|sats| TxOut {
            value: Amount::from_sat(*sats),
            script_pubkey: vault.clone(),
        })
        .collect();
    taproot::check(
        &tx,
        &prevouts,
        &vault,
        &authorization.destination,
        Amount::from_sat(authorization.amount),
        (
            Amount::from_sat(
                policy.fee_min_sats.max(
                    policy
                        .fee_rate_min_sat_vb
                        .saturating_mul(taproot::signed_vsize(&tx)),
                ),
            ),
            Amount::from_sat(policy.fee_max_sats),
        ),
    )
    .map_err(refuse)?;
    let messages = (0..tx.input.len())
        .map(|input| {
            taproot::sighash(&tx, &prevouts, input)
                .map(|hash| hash.to_vec())
                .map_err(refuse)
        })
        .collect::<Result<_, _>>()?;
    Ok((tx.compute_txid().to_byte_array(), messages))
}

/// The vault script of `policy` (for the coordinator building a transaction).
pub fn vault_script(policy: &BitcoinPolicy) -> Result<ScriptBuf, TxRefusal> {
    taproot::vault_script(&policy.vault_key)
}
