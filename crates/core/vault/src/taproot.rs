//! The Bitcoin side: the vault's P2TR output, the withdrawal transaction, its BIP341 key-path
//! sighash, and the check a member makes before it signs one.
//!
//! Built with rust-bitcoin so that what the vault signs is a real transaction: every input
//! spends a vault output (P2TR to the group's output key Q, key path only), one output pays
//! the authorized destination (a P2TR witness program, the 32 bytes the ledger carries) exactly
//! the authorized amount, and at most one more returns the change to the vault. The fee is
//! bounded, so a coordinator cannot burn the vault to miners.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash as _;
use bitcoin::key::{TweakedPublicKey, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

/// Most inputs a withdrawal spends (bounds what a member checks and signs for one request).
pub const INPUTS_MAX: usize = 16;

/// Largest serialized unsigned transaction a member decodes, bytes.
pub const TX_BYTES_MAX: usize = 8 * 1024;

/// Outputs below this are dust: the change is dropped into the fee instead (and the fee bound
/// still applies).
pub const DUST_SATS: u64 = 330;

/// An unspent vault output the chain source reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// How much it holds.
    pub value: Amount,
}

/// Why a withdrawal transaction is not what the ledger authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxRefusal {
    /// The bytes are not one Bitcoin transaction (or are too long).
    #[error("not a transaction: {0}")]
    Malformed(String),
    /// No input, too many, or the prevouts do not match the inputs one to one.
    #[error("{inputs} inputs with {prevouts} prevouts (1 ..= {INPUTS_MAX}, one prevout each)")]
    Inputs {
        /// Inputs.
        inputs: usize,
        /// Prevouts given.
        prevouts: usize,
    },
    /// An input spends something that is not a vault output.
    #[error("input {0} does not spend a vault output")]
    NotVault(usize),
    /// No output pays the destination exactly the amount, or more than one does.
    #[error("the transaction does not pay {amount_sats} sats to the authorized destination exactly once")]
    Destination {
        /// The authorized amount.
        amount_sats: u64,
    },
    /// An output pays someone else.
    #[error("output {0} pays neither the destination nor the vault")]
    Stranger(usize),
    /// An output is below the dust limit ([`DUST_SATS`]): the chain's nodes would not relay
    /// the transaction (and a dust change output would hold every later withdrawal).
    #[error("output {0} is below the dust limit of {DUST_SATS} sats")]
    Dust(usize),
    /// The inputs do not cover the outputs and the smallest fee, or leave more than the
    /// largest.
    #[error("fee {fee_sats} sats is not within {min_sats} ..= {max_sats}")]
    Fee {
        /// inputs − outputs (negative: outputs exceed inputs).
        fee_sats: i128,
        /// The floor.
        min_sats: u64,
        /// The bound.
        max_sats: u64,
    },
    /// The funds do not cover the amount and the fee.
    #[error("the vault outputs hold {have_sats} sats, {need_sats} needed")]
    Insufficient {
        /// Available.
        have_sats: u64,
        /// Amount plus fee.
        need_sats: u64,
    },
    /// The vault's or the destination's key is not a point on the curve.
    #[error("{0} is not an x-only public key")]
    Key(&'static str),
    /// The transaction's form is not the one [`build`] makes (version 2, lock time 0, every
    /// input final but replaceable with an empty script and witness, no input twice): a
    /// transaction that cannot confirm, or waits, would hold the withdrawal.
    #[error("the transaction's form: {0}")]
    Form(&'static str),
}

/// The sequence every input carries: replaceable by fee, no relative lock time.
pub const SEQUENCE: Sequence = Sequence::ENABLE_RBF_NO_LOCKTIME;

/// The vault's output script: P2TR to the output key Q (x-only), key path only.
pub fn vault_script(output_key_xonly: &[u8; 32]) -> Result<ScriptBuf, TxRefusal> {
    p2tr(output_key_xonly, "the vault's key")
}

/// The destination's output script: P2TR to the 32-byte witness program the ledger carries.
pub fn destination_script(destination: &[u8; 32]) -> Result<ScriptBuf, TxRefusal> {
    p2tr(destination, "the destination")
}

fn p2tr(xonly: &[u8; 32], what: &'static str) -> Result<ScriptBuf, TxRefusal> {
    let key = XOnlyPublicKey::from_slice(xonly).map_err(|_| TxRefusal::Key(what))?;
    Ok(ScriptBuf::new_p2tr_tweaked(
        TweakedPublicKey::dangerous_assume_tweaked(key),
    ))
}

/// The coordinator's unsigned withdrawal: spends `utxos` (all vault outputs), pays
/// `destination` `amount`, returns the change above dust to the vault, leaves `fee`.
pub fn build(
    utxos: &[Utxo],
    vault: &ScriptBuf,
    destination: &[u8; 32],
    amount: Amount,
    fee: Amount,
) -> Result<(Transaction, Vec<TxOut>), TxRefusal> {
    if utxos.is_empty() || utxos.len() > INPUTS_MAX {
        return Err(TxRefusal::Inputs {
            inputs: utxos.len(),
            prevouts: utxos.len(),
        });
    }
    let have: u64 = utxos.iter().map(|u| u.value.to_sat()).sum();
    let need = amount.to_sat().saturating_add(fee.to_sat());
    if have < need {
        return Err(TxRefusal::Insufficient {
            have_sats: have,
            need_sats: need,
        });
    }
    let mut output = vec![TxOut {
        value: amount,
        script_pubkey: destination_script(destination)?,
    }];
    let change = have - need;
    if change >= DUST_SATS {
        output.push(TxOut {
            value: Amount::from_sat(change),
            script_pubkey: vault.clone(),
        });
    }
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: utxos
            .iter()
            .map(|u| TxIn {
                previous_output: u.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: SEQUENCE,
                witness: Witness::new(),
            })
            .collect(),
        output,
    };
    let prevouts = utxos
        .iter()
        .map(|u| TxOut {
            value: u.value,
            script_pubkey: vault.clone(),
        })
        .collect();
    Ok((tx, prevouts))
}

/// Decodes an unsigned transaction a coordinator sent, bounded.
pub fn decode(bytes: &[u8]) -> Result<Transaction, TxRefusal> {
    if bytes.len() > TX_BYTES_MAX {
        return Err(TxRefusal::Malformed(format!(
            "{} bytes, more than {TX_BYTES_MAX}",
            bytes.len()
        )));
    }
    bitcoin::consensus::deserialize(bytes).map_err(|e| TxRefusal::Malformed(e.to_string()))
}

/// The member's check: `tx` has [`build`]'s form, spends only vault outputs (`prevouts`, one
/// per input, each outpoint once), pays `destination` exactly `amount` exactly once, sends
/// anything else only back to the vault, and leaves a fee within `fee` (min, max).
///
/// The prevouts' values are the coordinator's word; the BIP341 sighash commits to every one of
/// them, so a signature made over wrong values is invalid on the chain (it cannot burn the
/// difference as fee).
pub fn check(
    tx: &Transaction,
    prevouts: &[TxOut],
    vault: &ScriptBuf,
    destination: &[u8; 32],
    amount: Amount,
    fee: (Amount, Amount),
) -> Result<(), TxRefusal> {
    let (fee_min, fee_max) = fee;
    if tx.input.is_empty() || tx.input.len() > INPUTS_MAX || tx.input.len() != prevouts.len() {
        return Err(TxRefusal::Inputs {
            inputs: tx.input.len(),
            prevouts: prevouts.len(),
        });
    }
    if tx.version != Version::TWO {
        return Err(TxRefusal::Form("version is not 2"));
    }
    if tx.lock_time != LockTime::ZERO {
        return Err(TxRefusal::Form("lock time is not 0"));
    }
    let mut spent = std::collections::BTreeSet::new();
    for input in &tx.input {
        if input.sequence != SEQUENCE {
            return Err(TxRefusal::Form("an input's sequence is not 0xfffffffd"));
        }
        if !input.script_sig.is_empty() || !input.witness.is_empty() {
            return Err(TxRefusal::Form("an input carries a script or a witness"));
        }
        if !spent.insert(input.previous_output) {
            return Err(TxRefusal::Form("an outpoint is spent twice"));
        }
    }
    if let Some(i) = prevouts.iter().position(|p| &p.script_pubkey != vault) {
        return Err(TxRefusal::NotVault(i));
    }
    let to = destination_script(destination)?;
    let pays = |out: &TxOut| out.script_pubkey == to && out.value == amount;
    if tx.output.iter().filter(|out| pays(out)).count() != 1 {
        return Err(TxRefusal::Destination {
            amount_sats: amount.to_sat(),
        });
    }
    if let Some(i) = tx
        .output
        .iter()
        .position(|out| !pays(out) && &out.script_pubkey != vault)
    {
        return Err(TxRefusal::Stranger(i));
    }
    if let Some(i) = tx
        .output
        .iter()
        .position(|out| out.value.to_sat() < DUST_SATS)
    {
        return Err(TxRefusal::Dust(i));
    }
    let inputs: i128 = prevouts.iter().map(|p| i128::from(p.value.to_sat())).sum();
    let outputs: i128 = tx.output.iter().map(|o| i128::from(o.value.to_sat())).sum();
    let fee = inputs - outputs;
    if fee < i128::from(fee_min.to_sat()) || fee > i128::from(fee_max.to_sat()) {
        return Err(TxRefusal::Fee {
            fee_sats: fee,
            min_sats: fee_min.to_sat(),
            max_sats: fee_max.to_sat(),
        });
    }
    Ok(())
}

/// The virtual size of `tx` once every input carries its key-path witness (one 64-byte BIP340
/// signature): the weight without witnesses, the segwit marker and flag, and per input a witness
/// of one 64-byte item (66 weight units).
pub fn signed_vsize(tx: &Transaction) -> u64 {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness = Witness::new();
    }
    let weight = stripped.weight().to_wu() + 2 + 66 * tx.input.len() as u64;
    weight.div_ceil(4)
}

/// The BIP341 key-path sighash (SIGHASH_DEFAULT) of input `input`: the 32 bytes the vault's
/// key signs with BIP340.
pub fn sighash(tx: &Transaction, prevouts: &[TxOut], input: usize) -> Result<[u8; 32], TxRefusal> {
    let mut cache = SighashCache::new(tx);
    cache
        .taproot_key_spend_signature_hash(input, &Prevouts::All(prevouts), TapSighashType::Default)
        .map(|hash| hash.to_byte_array())
        .map_err(|e| TxRefusal::Malformed(e.to_string()))
}

/// The transaction with one 64-byte BIP340 signature per input in its witness: ready to
/// broadcast.
pub fn finalize(mut tx: Transaction, signatures: &[[u8; 64]]) -> Transaction {
    for (input, signature) in tx.input.iter_mut().zip(signatures) {
        let mut witness = Witness::new();
        witness.push(signature);
        input.witness = witness;
    }
    tx
}
