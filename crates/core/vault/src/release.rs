//! The only door to a signature share: a withdrawal a finalized block authorized, paying exactly
//! the authorized destination and amount, signed once.
//!
//! A member answers a coordinator's [`SignRequest`] in three steps:
//! 1. [`prepare`] checks the request against the ledger's [`Authorization`] for that withdrawal
//!    (the caller looks it up in its *committed* engine; `None` when no finalized block
//!    authorized it) and the member's [`Watermarks`]. For Bitcoin it decodes the unsigned
//!    transaction, checks inputs, outputs and fee ([`crate::taproot::check`]) and computes every
//!    input's sighash itself; for Ed25519 it builds the canonical message itself. Each signing
//!    package must carry exactly that message. Any refusal here is [`Refusal::is_evidence`]
//!    against the requester, for the sentinel.
//! 2. The caller marks the watermark ([`Watermarks::mark`]) and spends the nonce slots
//!    ([`crate::signing::NonceBook::spend`]), and syncs both to disk.
//! 3. Only then [`Prepared::sign`] makes the shares that leave the member.

use std::collections::BTreeSet;

use bitcoin::{Amount, ScriptBuf, TxOut};
use frost_core::round1::SigningNonces;
use frost_core::{Ciphersuite, SigningPackage};
use serde::{Deserialize, Serialize};

use crate::keygen::KeyShare;
use crate::signing::{decode_package, sign};
use crate::taproot::{self, TxRefusal};
use crate::{Chain, Ed25519, Taproot, VaultError};

/// The signing namespace of an Ed25519 withdrawal. Part of the protocol.
pub const ED25519_NAMESPACE: &[u8] = b"bulwark/vault/ed25519-withdrawal/v1";

/// Most watermarks a member keeps in memory per chain before the oldest are folded into a
/// floor (withdrawal ids are sequential, so everything below the floor counts as signed).
pub const WATERMARKS_MAX: usize = 65_536;

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

/// The once-only record: which withdrawals this member has released shares for, per chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    signed: BTreeSet<(Chain, u64)>,
    /// Per chain, every id below this counts as signed (ids folded out of `signed`).
    floors: Vec<(Chain, u64)>,
}

impl Watermarks {
    /// Whether `withdrawal` on `chain` was released already.
    pub fn is_marked(&self, chain: Chain, withdrawal: u64) -> bool {
        self.signed.contains(&(chain, withdrawal))
            || self
                .floors
                .iter()
                .any(|(c, floor)| *c == chain && withdrawal < *floor)
    }

    /// Marks `withdrawal` on `chain`. The caller syncs the watermarks to disk before any share
    /// for it leaves the member. Returns `false` if it was marked already.
    pub fn mark(&mut self, chain: Chain, withdrawal: u64) -> bool {
        if self.is_marked(chain, withdrawal) {
            return false;
        }
        self.signed.insert((chain, withdrawal));
        let on_chain = self.signed.iter().filter(|(c, _)| *c == chain).count();
        if on_chain > WATERMARKS_MAX {
            // Fold the oldest half into the floor: ids are sequential and a member signs in
            // ledger order, so an old id not signed by now was refused or is not this vault's.
            let cut = self
                .signed
                .iter()
                .filter(|(c, _)| *c == chain)
                .nth(on_chain / 2)
                .map(|(_, id)| *id)
                .expect("more than WATERMARKS_MAX entries exist on this chain");
            self.signed.retain(|(c, id)| *c != chain || *id >= cut);
            self.floors.retain(|(c, _)| *c != chain);
            self.floors.push((chain, cut));
        }
        true
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
    /// Shares for this withdrawal left this member already.
    #[error("withdrawal {0} was signed already: each is signed once")]
    AlreadySigned(u64),
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
    /// finalized block said. (Every refusal here is: an honest coordinator builds requests only
    /// from committed withdrawals and the member's published commitments.)
    pub fn is_evidence(&self) -> bool {
        true
    }
}

/// A request that passed every check, with the messages the member computed.
pub struct Prepared<C: Ciphersuite> {
    /// The withdrawal.
    pub withdrawal: u64,
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

/// The fee bound of a Bitcoin withdrawal, and the vault's output key (x-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitcoinPolicy {
    /// The vault's output key Q, x-only (bytes 1..33 of the taproot group key).
    pub vault_key: [u8; 32],
    /// Largest fee a withdrawal may leave, sats.
    pub fee_max_sats: u64,
}

/// Step 1: checks `request` against the ledger's `authorization` and the watermarks, and
/// returns the messages to sign. `bitcoin` is required for the taproot key.
pub fn prepare<C: VaultSuite>(
    request: &SignRequest,
    authorization: Option<&Authorization>,
    watermarks: &Watermarks,
    bitcoin: Option<&BitcoinPolicy>,
) -> Result<Prepared<C>, Refusal> {
    let id = request.withdrawal;
    let authorization = authorization
        .filter(|a| a.withdrawal == id)
        .ok_or(Refusal::NotAuthorized(id))?;
    if authorization.chain != request.chain || request.chain != C::CHAIN {
        return Err(Refusal::WrongChain {
            withdrawal: id,
            authorized: authorization.chain.name(),
            requested: request.chain.name(),
        });
    }
    if watermarks.is_marked(request.chain, id) {
        return Err(Refusal::AlreadySigned(id));
    }
    let package_error = |reason| Refusal::Package {
        withdrawal: id,
        reason,
    };
    let messages: Vec<Vec<u8>> = match (C::CHAIN, &request.bitcoin) {
        (Chain::Ed25519, None) => vec![ed25519_message(authorization)],
        (Chain::Bitcoin, Some(body)) => {
            let policy = bitcoin.ok_or(package_error(VaultError::Malformed(
                "no Bitcoin policy for the taproot key",
            )))?;
            bitcoin_messages(id, body, authorization, policy)?
        }
        _ => {
            return Err(package_error(VaultError::Malformed(
                "request body for the chain",
            )))
        }
    };
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
        packages.push((*slot, package));
    }
    Ok(Prepared {
        withdrawal: id,
        packages,
    })
}

fn bitcoin_messages(
    id: u64,
    body: &BitcoinBody,
    authorization: &Authorization,
    policy: &BitcoinPolicy,
) -> Result<Vec<Vec<u8>>, Refusal> {
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
        Amount::from_sat(policy.fee_max_sats),
    )
    .map_err(refuse)?;
    (0..tx.input.len())
        .map(|input| {
            taproot::sighash(&tx, &prevouts, input)
                .map(|hash| hash.to_vec())
                .map_err(refuse)
        })
        .collect()
}

/// The vault script of `policy` (for the coordinator building a transaction).
pub fn vault_script(policy: &BitcoinPolicy) -> Result<ScriptBuf, TxRefusal> {
    taproot::vault_script(&policy.vault_key)
}
