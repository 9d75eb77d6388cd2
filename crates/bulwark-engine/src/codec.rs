//! The canonical binary encoding of transactions, and their Ed25519 signatures.
//!
//! Bytes in, values or a typed [`CodecError`] out: decoding never panics, never allocates by a
//! length taken from the input, and accepts exactly one encoding per value, so
//! `encode(decode(bytes)?) == bytes` for every input that decodes.
//!
//! # Wire format, version `0x01`
//!
//! A *frame* is one version byte [`FRAME_VERSION`] followed by one value and nothing else, at most
//! [`FRAME_BYTES_MAX`] bytes. Integers are fixed-width little-endian; a `bool` is one byte, `0` or
//! `1`; an `Option` is a presence byte `0` or `1`, then the value if `1`; byte arrays are raw.
//! Every enum is one tag byte, then the variant's fields in declaration order:
//!
//! | type | tags |
//! | --- | --- |
//! | [`Side`] | `0` buy, `1` sell |
//! | [`TimeInForce`] | `0` gtc, `1` ioc, `2` fok |
//! | [`SelfTradePrevention`] | `0` cancel resting, `1` cancel incoming, `2` cancel both |
//! | [`ClientCommand`] | `1` limit, `2` market, `3` cancel, `4` amend, `5` mass cancel, `6` withdraw |
//! | [`SystemCommand`] | `1` open account, `2` deposit, `3` index price |
//! | [`Command`] | `1` client (account `u64`, nonce `u64`, client command), `2` system |
//!
//! A [`SignedTx`] is account `u64`, nonce `u64`, client command, 64 signature bytes. A batch is
//! the version byte, a `u32` count, then that many signed transactions without their own version
//! byte. Tags and field order are the protocol: changing any of them needs a new version byte
//! (and a new [`TX_NAMESPACE`]).
//!
//! The codec checks structure only: a negative quantity decodes fine and is refused by the engine.
//!
//! # Signatures
//!
//! A client signs `TX_NAMESPACE || FRAME_VERSION || account || nonce || client command`, i.e.
//! the namespace followed by the signed transaction's frame without its signature.
//! [`verify_batch`] and [`verify_batch_parallel`] check many transactions at once; they are the
//! only place in the engine crate that spawns threads (see [`verify_batch_parallel`] for why
//! that is still pure).

use std::thread;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::command::{
    AccountId, ClientCommand, Command, InstrumentId, LimitOrder, OrderId, SelfTradePrevention,
    Side, SystemCommand, TimeInForce,
};

/// The version byte that starts every frame this module writes or accepts.
pub const FRAME_VERSION: u8 = 0x01;

/// The largest frame (one transaction or command, version byte included) that decoding accepts.
/// Every value of the current format is far smaller; the bound is checked before parsing.
pub const FRAME_BYTES_MAX: usize = 1024;

/// The signing namespace of client transactions. Part of the protocol: changing it invalidates
/// every signature.
pub const TX_NAMESPACE: &[u8] = b"bulwark/engine/tx/v1";

/// How many consecutive transactions [`verify_batch`] checks in one Ed25519 batch equation.
/// Chunk boundaries are fixed multiples of this, whatever the thread count, so the outcome of
/// verification never depends on how the work was split.
pub const VERIFY_CHUNK_TXS: usize = 64;

const SIGNATURE_BYTES: usize = 64;
/// The smallest client command: mass cancel on all instruments (tag and presence byte).
const CLIENT_COMMAND_BYTES_MIN: usize = 2;
/// The largest client command: withdraw (tag, `i64` amount, 32-byte destination).
const CLIENT_COMMAND_BYTES_MAX: usize = 1 + 8 + 32;
/// The smallest signed transaction inside a batch; bounds a batch's count by its byte length.
const SIGNED_TX_BODY_BYTES_MIN: usize = 8 + 8 + CLIENT_COMMAND_BYTES_MIN + SIGNATURE_BYTES;
/// The largest signed transaction frame.
const SIGNED_TX_FRAME_BYTES_MAX: usize = 1 + 8 + 8 + CLIENT_COMMAND_BYTES_MAX + SIGNATURE_BYTES;
const _: () = assert!(SIGNED_TX_FRAME_BYTES_MAX <= FRAME_BYTES_MAX);

/// Why bytes were refused. Offsets count from the start of the input given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ends inside a field: it was cut short or a length/tag is wrong.
    #[error("input ends early: a {needed}-byte field at offset {at} runs past the end")]
    Truncated {
        /// Width of the field being read.
        needed: usize,
        /// Offset where the field starts.
        at: usize,
    },
    /// A tag byte names no variant of this format version.
    #[error("unknown {what} tag {tag:#04x}")]
    UnknownTag {
        /// The type whose tag it is.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// The frame is longer than [`FRAME_BYTES_MAX`]; it was not parsed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A complete value was decoded but bytes follow it.
    #[error("{count} trailing byte(s) after the value, at offset {at}")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
        /// Where they start.
        at: usize,
    },
    /// The frame's first byte is not [`FRAME_VERSION`]: a peer speaking another version.
    #[error("frame version {found:#04x} is not supported (this node speaks {FRAME_VERSION:#04x})")]
    BadVersion {
        /// The byte found.
        found: u8,
    },
    /// A byte has a value that no encoder writes (e.g. a `bool` of 2).
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// A batch announces more transactions than the caller allows.
    #[error("batch announces {count} transactions, more than the limit of {max}")]
    CountTooLarge {
        /// The announced count.
        count: usize,
        /// The caller's limit.
        max: usize,
    },
    /// A batch announces more transactions than its remaining bytes could hold.
    #[error("batch announces {count} transactions, needing at least {needed} bytes, but only {available} remain")]
    CountExceedsInput {
        /// The announced count.
        count: usize,
        /// The fewest bytes that many transactions take.
        needed: usize,
        /// Bytes left after the count.
        available: usize,
    },
}

/// Why a batch of signed transactions was refused. Indices are positions in the slice given to
/// the verifier (always 0 for [`SignedTx::verify`] and [`verify_one`]). The crypto failures are
/// deliberately opaque: they say which transaction, never why its signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Nonce 0 means "unchecked" and is reserved for trusted local input; a signed transaction
    /// from the network must carry a real nonce.
    #[error("transaction {0} has nonce 0, which only trusted local input may use")]
    ZeroNonce(usize),
    /// The acting account has no registered public key.
    #[error("transaction {0} names an account with no registered key")]
    UnknownAccount(usize),
    /// The account's registered key is not a point on the curve, or is a weak (small-order) key
    /// under which signatures could be forged.
    #[error("transaction {0}: the account's registered key is not a usable Ed25519 public key")]
    InvalidKey(usize),
    /// These signatures (ascending indices, at least one) do not verify.
    #[error("the signatures of transactions {0:?} do not verify")]
    BadSignatures(Vec<usize>),
}

/// A client's transaction as it arrives from the network: the engine [`Command::Client`] fields
/// and the client's Ed25519 signature over them (see the module docs for the signed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Acting account.
    pub account: AccountId,
    /// Strictly increasing per account; 0 is refused by every verifier.
    pub nonce: u64,
    /// The request.
    pub command: ClientCommand,
    /// Ed25519 signature (`R || s`) by the account's registered key.
    pub signature: [u8; 64],
}

impl SignedTx {
    /// Signs `command` for `account` at `nonce`. Signing nonce 0 is possible but gives a
    /// transaction that every verifier refuses.
    pub fn sign(
        account: AccountId,
        nonce: u64,
        command: ClientCommand,
        key: &SigningKey,
    ) -> SignedTx {
        let signature = key
            .sign(&signed_message(account, nonce, &command))
            .to_bytes();
        SignedTx {
            account,
            nonce,
            command,
            signature,
        }
    }

    /// The exact bytes the signature covers: [`TX_NAMESPACE`] then the frame without signature.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.account, self.nonce, &self.command)
    }

    /// The canonical frame (at most [`FRAME_BYTES_MAX`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(self)
    }

    /// Decodes one canonical frame; the signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, CodecError> {
        decode_frame(bytes)
    }

    /// Verifies this transaction under `public_key`, exactly as [`verify_batch`] would as the
    /// only element of a batch (errors carry index 0).
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), VerifyError> {
        verify_one(self, |_| Some(*public_key))
    }

    /// The engine command, to be executed only after verification succeeded.
    pub fn into_command(self) -> Command {
        Command::Client {
            account: self.account,
            nonce: self.nonce,
            command: self.command,
        }
    }
}

/// Encodes a client command as a canonical frame.
pub fn encode_client_command(command: &ClientCommand) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_client_command`].
pub fn decode_client_command(bytes: &[u8]) -> Result<ClientCommand, CodecError> {
    decode_frame(bytes)
}

/// Encodes a system command as a canonical frame.
pub fn encode_system_command(command: &SystemCommand) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_system_command`].
pub fn decode_system_command(bytes: &[u8]) -> Result<SystemCommand, CodecError> {
    decode_frame(bytes)
}

/// Encodes an engine command as a canonical frame.
pub fn encode_command(command: &Command) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_command`].
pub fn decode_command(bytes: &[u8]) -> Result<Command, CodecError> {
    decode_frame(bytes)
}

/// Encodes signed transactions as one batch: version byte, `u32` count, the transactions.
/// Refuses (with [`CodecError::CountTooLarge`]) a slice longer than `u32::MAX`.
pub fn encode_batch(txs: &[SignedTx]) -> Result<Vec<u8>, CodecError> {
    let count = u32::try_from(txs.len()).map_err(|_| CodecError::CountTooLarge {
        count: txs.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(
        txs.len()
            .saturating_mul(SIGNED_TX_FRAME_BYTES_MAX)
            .saturating_add(5),
    );
    out.push(FRAME_VERSION);
    out.extend_from_slice(&count.to_le_bytes());
    for tx in txs {
        tx.put(&mut out);
    }
    Ok(out)
}

/// Decodes a batch written by [`encode_batch`], refusing more than `count_max` transactions.
/// The announced count is checked against `count_max` and against the bytes present before
/// anything is allocated, so memory use is bounded by the input's length.
pub fn decode_batch(bytes: &[u8], count_max: usize) -> Result<Vec<SignedTx>, CodecError> {
    let mut reader = Reader::new(bytes);
    reader.version()?;
    // A u32 always fits in usize on the targets we build for; saturate rather than trust that.
    let count = usize::try_from(reader.u32()?).unwrap_or(usize::MAX);
    if count > count_max {
        return Err(CodecError::CountTooLarge {
            count,
            max: count_max,
        });
    }
    let available = reader.remaining();
    let needed = count.saturating_mul(SIGNED_TX_BODY_BYTES_MIN);
    if needed > available {
        return Err(CodecError::CountExceedsInput {
            count,
            needed,
            available,
        });
    }
    // Bounded: count <= count_max and count <= bytes.len() / SIGNED_TX_BODY_BYTES_MIN.
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        txs.push(SignedTx::take(&mut reader)?);
    }
    reader.finish()?;
    Ok(txs)
}

/// Verifies one transaction: the same checks and the same result as [`verify_batch`] on a
/// one-element slice.
pub fn verify_one(
    tx: &SignedTx,
    keys: impl Fn(AccountId) -> Option<[u8; 32]>,
) -> Result<(), VerifyError> {
    verify_batch(std::slice::from_ref(tx), keys)
}

/// Verifies every transaction's signature under the key `keys` returns for its account.
///
/// The first refusal, in index order, of a nonce 0 ([`VerifyError::ZeroNonce`]), an account
/// without key ([`VerifyError::UnknownAccount`]) or an unusable key ([`VerifyError::InvalidKey`])
/// wins; otherwise every index whose signature fails is listed in
/// [`VerifyError::BadSignatures`].
///
/// Each run of [`VERIFY_CHUNK_TXS`] transactions is checked with one Ed25519 batch equation;
/// when that fails, each transaction of the run is checked alone (`verify_strict`) to name the
/// culprits. A signature that verifies alone always passes in a batch. The converse fails only
/// for signatures their key's owner deliberately malformed (a torsion component or a
/// non-canonical encoding in `R`): such a transaction is accepted or not depending on its chunk,
/// but always the same way for the same slice, so every replica must verify the same slice
/// (e.g. a whole block). No forger without the secret key can exploit this.
pub fn verify_batch(
    txs: &[SignedTx],
    keys: impl Fn(AccountId) -> Option<[u8; 32]>,
) -> Result<(), VerifyError> {
    combine(check_run(txs, 0, &keys))
}

/// [`verify_batch`] with the chunks spread over up to `threads` threads (0 counts as 1); the
/// node calls it before handing commands to the engine.
///
/// This is the one place in the engine crate that spawns threads. It is still pure: it reads no
/// clock, does no I/O and uses no OS randomness, the chunk boundaries are the same as in
/// [`verify_batch`] whatever `threads` is, and the per-chunk outcomes are combined in index
/// order, so the result is identical to [`verify_batch`]'s for every thread count. If the OS
/// refuses a thread, that share of the work runs on the calling thread instead.
pub fn verify_batch_parallel<K>(
    txs: &[SignedTx],
    keys: K,
    threads: usize,
) -> Result<(), VerifyError>
where
    K: Fn(AccountId) -> Option<[u8; 32]> + Sync,
{
    let chunk_count = txs.len().div_ceil(VERIFY_CHUNK_TXS);
    let threads = threads.clamp(1, chunk_count.max(1));
    if threads == 1 {
        return verify_batch(txs, keys);
    }
    // Each thread gets a contiguous run of whole chunks, so chunk boundaries stay at multiples of
    // VERIFY_CHUNK_TXS from the start of `txs`.
    let run_txs = chunk_count
        .div_ceil(threads)
        .saturating_mul(VERIFY_CHUNK_TXS);
    let keys = &keys;
    let outcomes = thread::scope(|scope| {
        let pending: Vec<_> = txs
            .chunks(run_txs)
            .enumerate()
            .map(|(run, run_slice)| {
                let base = run * run_txs;
                thread::Builder::new()
                    .name("bulwark-verify".to_owned())
                    .spawn_scoped(scope, move || check_run(run_slice, base, keys))
                    .map_err(|_| (run_slice, base))
            })
            .collect();
        pending
            .into_iter()
            .flat_map(|spawned| match spawned {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err((run_slice, base)) => check_run(run_slice, base, keys),
            })
            .collect::<Vec<_>>()
    });
    combine(outcomes)
}

/// What checking one chunk found.
enum ChunkOutcome {
    /// A transaction refused before any signature work (the chunk's lowest such index).
    Refused(VerifyError),
    /// Indices (ascending, possibly none) whose signatures fail.
    Checked(Vec<usize>),
}

/// Checks `txs`, whose first element has index `base`, chunk by chunk; stops after a refusal,
/// since nothing later can change the combined result.
fn check_run<K>(txs: &[SignedTx], base: usize, keys: &K) -> Vec<ChunkOutcome>
where
    K: Fn(AccountId) -> Option<[u8; 32]>,
{
    let mut outcomes = Vec::with_capacity(txs.len().div_ceil(VERIFY_CHUNK_TXS));
    for (chunk_index, chunk) in txs.chunks(VERIFY_CHUNK_TXS).enumerate() {
        let outcome = check_chunk(chunk, base + chunk_index * VERIFY_CHUNK_TXS, keys);
        let refused = matches!(outcome, ChunkOutcome::Refused(_));
        outcomes.push(outcome);
        if refused {
            break;
        }
    }
    outcomes
}

fn check_chunk<K>(chunk: &[SignedTx], base: usize, keys: &K) -> ChunkOutcome
where
    K: Fn(AccountId) -> Option<[u8; 32]>,
{
    let mut verifying_keys = Vec::with_capacity(chunk.len());
    for (offset, tx) in chunk.iter().enumerate() {
        let index = base + offset;
        if tx.nonce == 0 {
            return ChunkOutcome::Refused(VerifyError::ZeroNonce(index));
        }
        let Some(key_bytes) = keys(tx.account) else {
            return ChunkOutcome::Refused(VerifyError::UnknownAccount(index));
        };
        // A weak key would let anyone forge signatures that pass the batch equation.
        match VerifyingKey::from_bytes(&key_bytes) {
            Ok(key) if !key.is_weak() => verifying_keys.push(key),
            _ => return ChunkOutcome::Refused(VerifyError::InvalidKey(index)),
        }
    }
    let messages: Vec<Vec<u8>> = chunk.iter().map(SignedTx::signed_message).collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = chunk
        .iter()
        .map(|tx| Signature::from_bytes(&tx.signature))
        .collect();
    // ed25519-dalek 3 takes no RNG here: the random coefficients of the batch equation are
    // derived from a Merlin transcript of every input (each H(R||A||M) and each s). That keeps
    // this crate free of OS randomness and the result deterministic, and the coefficients are
    // still unpredictable to an attacker, who cannot change any input without changing all of
    // them; a forged batch passes with probability about 2^-128 per attempt.
    if ed25519_dalek::verify_batch(&message_refs, &signatures, &verifying_keys).is_ok() {
        return ChunkOutcome::Checked(Vec::new());
    }
    let bad = verifying_keys
        .iter()
        .zip(message_refs.iter().zip(&signatures))
        .enumerate()
        .filter(|(_, (key, (message, signature)))| key.verify_strict(message, signature).is_err())
        .map(|(offset, _)| base + offset)
        .collect();
    ChunkOutcome::Checked(bad)
}

/// Combines chunk outcomes given in index order: the first refusal wins, else all bad indices.
fn combine(outcomes: Vec<ChunkOutcome>) -> Result<(), VerifyError> {
    let mut bad = Vec::new();
    for outcome in outcomes {
        match outcome {
            ChunkOutcome::Refused(error) => return Err(error),
            ChunkOutcome::Checked(indices) => bad.extend(indices),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::BadSignatures(bad))
    }
}

fn signed_message(account: AccountId, nonce: u64, command: &ClientCommand) -> Vec<u8> {
    let mut message = Vec::with_capacity(TX_NAMESPACE.len() + 1 + 8 + 8 + CLIENT_COMMAND_BYTES_MAX);
    message.extend_from_slice(TX_NAMESPACE);
    message.push(FRAME_VERSION);
    account.put(&mut message);
    nonce.put(&mut message);
    command.put(&mut message);
    message
}

fn encode_frame<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_TX_FRAME_BYTES_MAX);
    out.push(FRAME_VERSION);
    value.put(&mut out);
    out
}

fn decode_frame<T: Wire>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLong {
            len: bytes.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    let mut reader = Reader::new(bytes);
    reader.version()?;
    let value = T::take(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// A cursor over untrusted bytes; every read is bounds-checked and reports where it failed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn take(&mut self, needed: usize) -> Result<&'a [u8], CodecError> {
        let at = self.at;
        let truncated = || CodecError::Truncated { needed, at };
        let end = at.checked_add(needed).ok_or_else(truncated)?;
        let slice = self.bytes.get(at..end).ok_or_else(truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let slice = self.take(N)?;
        Ok(slice
            .try_into()
            .expect("Reader::take must return exactly the requested length"))
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::NonCanonical(what)),
        }
    }

    fn version(&mut self) -> Result<(), CodecError> {
        match self.u8()? {
            FRAME_VERSION => Ok(()),
            found => Err(CodecError::BadVersion { found }),
        }
    }

    fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { count, at: self.at }),
        }
    }
}

/// One encoding per type: `put` appends the canonical bytes, `take` reads them back and refuses
/// anything `put` would not have written.
trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError>;
}

macro_rules! wire_int {
    ($($int:ty),*) => {$(
        impl Wire for $int {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(<$int>::from_le_bytes(reader.array()?))
            }
        }
    )*};
}
wire_int!(u16, u32, u64, i64);

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        reader.flag("a bool must be 0 or 1")
    }
}

impl<const N: usize> Wire for [u8; N] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        reader.array()
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.put(out);
            }
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        if reader.flag("an option presence byte must be 0 or 1")? {
            Ok(Some(T::take(reader)?))
        } else {
            Ok(None)
        }
    }
}

macro_rules! wire_newtype {
    ($($name:ident($int:ty)),*) => {$(
        impl Wire for $name {
            fn put(&self, out: &mut Vec<u8>) {
                self.0.put(out);
            }
            fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok($name(<$int>::take(reader)?))
            }
        }
    )*};
}
wire_newtype!(AccountId(u64), InstrumentId(u32), OrderId(u64));

/// A field-less enum: one tag byte per variant.
macro_rules! wire_unit_enum {
    ($name:ident, $what:literal, { $($variant:ident = $tag:literal),* $(,)? }) => {
        impl Wire for $name {
            fn put(&self, out: &mut Vec<u8>) {
                out.push(match self { $($name::$variant => $tag),* });
            }
            fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
                match reader.u8()? {
                    $($tag => Ok($name::$variant),)*
                    tag => Err(CodecError::UnknownTag { what: $what, tag }),
                }
            }
        }
    };
}
wire_unit_enum!(Side, "side", { Buy = 0, Sell = 1 });
wire_unit_enum!(TimeInForce, "time in force", { Gtc = 0, Ioc = 1, Fok = 2 });
wire_unit_enum!(SelfTradePrevention, "self-trade prevention", {
    CancelResting = 0,
    CancelIncoming = 1,
    CancelBoth = 2,
});

impl Wire for LimitOrder {
    fn put(&self, out: &mut Vec<u8>) {
        self.instrument.put(out);
        self.side.put(out);
        self.price.put(out);
        self.qty.put(out);
        self.tif.put(out);
        self.post_only.put(out);
        self.reduce_only.put(out);
        self.stp.put(out);
        self.client_order_id.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(LimitOrder {
            instrument: Wire::take(reader)?,
            side: Wire::take(reader)?,
            price: Wire::take(reader)?,
            qty: Wire::take(reader)?,
            tif: Wire::take(reader)?,
            post_only: Wire::take(reader)?,
            reduce_only: Wire::take(reader)?,
            stp: Wire::take(reader)?,
            client_order_id: Wire::take(reader)?,
        })
    }
}

impl Wire for ClientCommand {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            ClientCommand::Limit(order) => {
                out.push(1);
                order.put(out);
            }
            ClientCommand::Market {
                instrument,
                side,
                qty,
                reduce_only,
                client_order_id,
            } => {
                out.push(2);
                instrument.put(out);
                side.put(out);
                qty.put(out);
                reduce_only.put(out);
                client_order_id.put(out);
            }
            ClientCommand::Cancel {
                instrument,
                order_id,
            } => {
                out.push(3);
                instrument.put(out);
                order_id.put(out);
            }
            ClientCommand::Amend {
                instrument,
                order_id,
                price,
                qty,
            } => {
                out.push(4);
                instrument.put(out);
                order_id.put(out);
                price.put(out);
                qty.put(out);
            }
            ClientCommand::MassCancel { instrument } => {
                out.push(5);
                instrument.put(out);
            }
            ClientCommand::Withdraw {
                amount,
                destination,
            } => {
                out.push(6);
                amount.put(out);
                destination.put(out);
            }
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        match reader.u8()? {
            1 => Ok(ClientCommand::Limit(Wire::take(reader)?)),
            2 => Ok(ClientCommand::Market {
                instrument: Wire::take(reader)?,
                side: Wire::take(reader)?,
                qty: Wire::take(reader)?,
                reduce_only: Wire::take(reader)?,
                client_order_id: Wire::take(reader)?,
            }),
            3 => Ok(ClientCommand::Cancel {
                instrument: Wire::take(reader)?,
                order_id: Wire::take(reader)?,
            }),
            4 => Ok(ClientCommand::Amend {
                instrument: Wire::take(reader)?,
                order_id: Wire::take(reader)?,
                price: Wire::take(reader)?,
                qty: Wire::take(reader)?,
            }),
            5 => Ok(ClientCommand::MassCancel {
                instrument: Wire::take(reader)?,
            }),
            6 => Ok(ClientCommand::Withdraw {
                amount: Wire::take(reader)?,
                destination: Wire::take(reader)?,
            }),
            tag => Err(CodecError::UnknownTag {
                what: "client command",
                tag,
            }),
        }
    }
}

impl Wire for SystemCommand {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            SystemCommand::OpenAccount {
                account,
                public_key,
            } => {
                out.push(1);
                account.put(out);
                public_key.put(out);
            }
            SystemCommand::Deposit { account, amount } => {
                out.push(2);
                account.put(out);
                amount.put(out);
            }
            SystemCommand::IndexPrice {
                underlying,
                price_micros,
            } => {
                out.push(3);
                underlying.put(out);
                price_micros.put(out);
            }
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        match reader.u8()? {
            1 => Ok(SystemCommand::OpenAccount {
                account: Wire::take(reader)?,
                public_key: Wire::take(reader)?,
            }),
            2 => Ok(SystemCommand::Deposit {
                account: Wire::take(reader)?,
                amount: Wire::take(reader)?,
            }),
            3 => Ok(SystemCommand::IndexPrice {
                underlying: Wire::take(reader)?,
                price_micros: Wire::take(reader)?,
            }),
            tag => Err(CodecError::UnknownTag {
                what: "system command",
                tag,
            }),
        }
    }
}

impl Wire for Command {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Command::Client {
                account,
                nonce,
                command,
            } => {
                out.push(1);
                account.put(out);
                nonce.put(out);
                command.put(out);
            }
            Command::System(command) => {
                out.push(2);
                command.put(out);
            }
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        match reader.u8()? {
            1 => Ok(Command::Client {
                account: Wire::take(reader)?,
                nonce: Wire::take(reader)?,
                command: Wire::take(reader)?,
            }),
            2 => Ok(Command::System(Wire::take(reader)?)),
            tag => Err(CodecError::UnknownTag {
                what: "command",
                tag,
            }),
        }
    }
}

impl Wire for SignedTx {
    fn put(&self, out: &mut Vec<u8>) {
        self.account.put(out);
        self.nonce.put(out);
        self.command.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SignedTx {
            account: Wire::take(reader)?,
            nonce: Wire::take(reader)?,
            command: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn limit(tif: TimeInForce, stp: SelfTradePrevention, side: Side) -> ClientCommand {
        ClientCommand::Limit(LimitOrder {
            instrument: InstrumentId(7),
            side,
            price: -12_345,
            qty: 10,
            tif,
            post_only: true,
            reduce_only: false,
            stp,
            client_order_id: u64::MAX,
        })
    }

    fn client_commands() -> Vec<ClientCommand> {
        vec![
            limit(
                TimeInForce::Gtc,
                SelfTradePrevention::CancelResting,
                Side::Buy,
            ),
            limit(
                TimeInForce::Ioc,
                SelfTradePrevention::CancelIncoming,
                Side::Sell,
            ),
            limit(TimeInForce::Fok, SelfTradePrevention::CancelBoth, Side::Buy),
            ClientCommand::Market {
                instrument: InstrumentId(u32::MAX),
                side: Side::Sell,
                qty: i64::MAX,
                reduce_only: true,
                client_order_id: 3,
            },
            ClientCommand::Cancel {
                instrument: InstrumentId(1),
                order_id: OrderId(99),
            },
            ClientCommand::Amend {
                instrument: InstrumentId(2),
                order_id: OrderId(5),
                price: i64::MIN,
                qty: 1,
            },
            ClientCommand::MassCancel { instrument: None },
            ClientCommand::MassCancel {
                instrument: Some(InstrumentId(4)),
            },
            ClientCommand::Withdraw {
                amount: i64::MIN,
                destination: [0xab; 32],
            },
        ]
    }

    fn system_commands() -> Vec<SystemCommand> {
        vec![
            SystemCommand::OpenAccount {
                account: AccountId(1),
                public_key: key(1).verifying_key().to_bytes(),
            },
            SystemCommand::Deposit {
                account: AccountId(u64::MAX),
                amount: i64::MAX,
            },
            SystemCommand::IndexPrice {
                underlying: u16::MAX,
                price_micros: 65_000_000_000,
            },
        ]
    }

    fn commands() -> Vec<Command> {
        let client = client_commands()
            .into_iter()
            .enumerate()
            .map(|(i, command)| Command::Client {
                account: AccountId(i as u64),
                nonce: i as u64 * 1000,
                command,
            });
        client
            .chain(system_commands().into_iter().map(Command::System))
            .collect()
    }

    fn signed(seed: u8, nonce: u64, command: ClientCommand) -> SignedTx {
        SignedTx::sign(AccountId(u64::from(seed)), nonce, command, &key(seed))
    }

    /// Accounts 0..=255 are keyed by `key(account)`.
    fn keys(account: AccountId) -> Option<[u8; 32]> {
        let seed = u8::try_from(account.0).ok()?;
        Some(key(seed).verifying_key().to_bytes())
    }

    fn txs(count: usize) -> Vec<SignedTx> {
        let commands = client_commands();
        (0..count)
            .map(|i| {
                let command = commands[i % commands.len()].clone();
                signed((i % 5) as u8, i as u64 + 1, command)
            })
            .collect()
    }

    #[test]
    fn every_variant_round_trips_canonically() {
        for command in client_commands() {
            let bytes = encode_client_command(&command);
            assert_eq!(decode_client_command(&bytes).unwrap(), command);
            assert_eq!(
                encode_client_command(&decode_client_command(&bytes).unwrap()),
                bytes
            );
        }
        for command in system_commands() {
            let bytes = encode_system_command(&command);
            assert_eq!(decode_system_command(&bytes).unwrap(), command);
            assert_eq!(
                encode_system_command(&decode_system_command(&bytes).unwrap()),
                bytes
            );
        }
        for command in commands() {
            let bytes = encode_command(&command);
            assert_eq!(decode_command(&bytes).unwrap(), command);
            assert_eq!(encode_command(&decode_command(&bytes).unwrap()), bytes);
        }
        for tx in txs(12) {
            let bytes = tx.encode();
            assert_eq!(SignedTx::decode(&bytes).unwrap(), tx);
            assert_eq!(SignedTx::decode(&bytes).unwrap().encode(), bytes);
        }
        let batch = txs(12);
        let bytes = encode_batch(&batch).unwrap();
        assert_eq!(decode_batch(&bytes, 12).unwrap(), batch);
        assert_eq!(
            decode_batch(&encode_batch(&[]).unwrap(), 0).unwrap(),
            vec![]
        );
    }

    #[test]
    fn layout_is_pinned() {
        let bytes = encode_command(&Command::Client {
            account: AccountId(0x0102),
            nonce: 3,
            command: ClientCommand::Cancel {
                instrument: InstrumentId(4),
                order_id: OrderId(5),
            },
        });
        let expected: &[u8] = &[
            0x01, // version
            0x01, // Command::Client
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // account
            3, 0, 0, 0, 0, 0, 0, 0,    // nonce
            0x03, // ClientCommand::Cancel
            4, 0, 0, 0, // instrument
            5, 0, 0, 0, 0, 0, 0, 0, // order id
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn size_bounds_match_the_encodings() {
        let sizes: Vec<usize> = client_commands()
            .iter()
            .map(|c| encode_client_command(c).len() - 1)
            .collect();
        assert_eq!(sizes.iter().min(), Some(&CLIENT_COMMAND_BYTES_MIN));
        assert_eq!(sizes.iter().max(), Some(&CLIENT_COMMAND_BYTES_MAX));
        let tx = signed(1, 1, ClientCommand::MassCancel { instrument: None });
        assert_eq!(tx.encode().len() - 1, SIGNED_TX_BODY_BYTES_MIN);
        for tx in txs(9) {
            assert!(tx.encode().len() <= SIGNED_TX_FRAME_BYTES_MAX);
        }
    }

    #[test]
    fn every_prefix_is_truncated() {
        for command in commands() {
            let bytes = encode_command(&command);
            for len in 0..bytes.len() {
                let error = decode_command(&bytes[..len]).unwrap_err();
                assert!(
                    matches!(error, CodecError::Truncated { at, needed } if at <= len && at + needed > len),
                    "{len}: {error}"
                );
            }
        }
        assert_eq!(
            SignedTx::decode(&[]),
            Err(CodecError::Truncated { needed: 1, at: 0 })
        );
    }

    #[test]
    fn every_error_is_reachable() {
        let cancel = encode_client_command(&ClientCommand::Cancel {
            instrument: InstrumentId(1),
            order_id: OrderId(2),
        });

        let mut bad_version = cancel.clone();
        bad_version[0] = 0x02;
        assert_eq!(
            decode_client_command(&bad_version),
            Err(CodecError::BadVersion { found: 0x02 })
        );

        let mut bad_tag = cancel.clone();
        bad_tag[1] = 0x7f;
        assert_eq!(
            decode_client_command(&bad_tag),
            Err(CodecError::UnknownTag {
                what: "client command",
                tag: 0x7f
            })
        );
        assert!(matches!(
            decode_command(&[FRAME_VERSION, 0]),
            Err(CodecError::UnknownTag {
                what: "command",
                tag: 0
            })
        ));
        assert!(matches!(
            decode_system_command(&[FRAME_VERSION, 9]),
            Err(CodecError::UnknownTag {
                what: "system command",
                tag: 9
            })
        ));

        let mut trailing = cancel.clone();
        trailing.push(0);
        assert_eq!(
            decode_client_command(&trailing),
            Err(CodecError::TrailingBytes {
                count: 1,
                at: cancel.len()
            })
        );

        let long = vec![FRAME_VERSION; FRAME_BYTES_MAX + 1];
        assert_eq!(
            decode_command(&long),
            Err(CodecError::TooLong {
                len: FRAME_BYTES_MAX + 1,
                max: FRAME_BYTES_MAX
            })
        );

        let market = encode_client_command(&ClientCommand::Market {
            instrument: InstrumentId(1),
            side: Side::Buy,
            qty: 1,
            reduce_only: false,
            client_order_id: 0,
        });
        let mut bad_side = market.clone();
        bad_side[6] = 2; // version, tag, 4-byte instrument, then the side
        assert_eq!(
            decode_client_command(&bad_side),
            Err(CodecError::UnknownTag {
                what: "side",
                tag: 2
            })
        );
        let mut bad_bool = market.clone();
        bad_bool[15] = 2; // side, 8-byte qty, then reduce_only
        assert_eq!(
            decode_client_command(&bad_bool),
            Err(CodecError::NonCanonical("a bool must be 0 or 1"))
        );
        assert_eq!(
            decode_client_command(&[FRAME_VERSION, 5, 2]),
            Err(CodecError::NonCanonical(
                "an option presence byte must be 0 or 1"
            ))
        );
        let mut bad_tif = encode_client_command(&limit(
            TimeInForce::Gtc,
            SelfTradePrevention::CancelBoth,
            Side::Buy,
        ));
        bad_tif[23] = 3; // version, tag, instrument 4, side 1, price 8, qty 8, then tif
        assert!(matches!(
            decode_client_command(&bad_tif),
            Err(CodecError::UnknownTag {
                what: "time in force",
                tag: 3
            })
        ));
        bad_tif[23] = 0;
        bad_tif[26] = 3; // post_only, reduce_only, then stp
        assert!(matches!(
            decode_client_command(&bad_tif),
            Err(CodecError::UnknownTag {
                what: "self-trade prevention",
                tag: 3
            })
        ));

        let batch = encode_batch(&txs(3)).unwrap();
        assert_eq!(
            decode_batch(&batch, 2),
            Err(CodecError::CountTooLarge { count: 3, max: 2 })
        );
        let mut lying = batch[..5].to_vec();
        lying[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_batch(&lying, usize::MAX),
            Err(CodecError::CountExceedsInput { count, available: 0, .. }) if count == u32::MAX as usize
        ));
        let mut batch_trailing = batch.clone();
        batch_trailing.push(0);
        assert!(matches!(
            decode_batch(&batch_trailing, 3),
            Err(CodecError::TrailingBytes { count: 1, .. })
        ));
        assert!(matches!(
            decode_batch(&batch[..batch.len() - 1], 3),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn signatures_verify_and_convert() {
        let tx = signed(3, 7, client_commands()[0].clone());
        assert_eq!(tx.verify(&key(3).verifying_key().to_bytes()), Ok(()));
        assert_eq!(verify_one(&tx, keys), Ok(()));
        assert_eq!(
            tx.verify(&key(4).verifying_key().to_bytes()),
            Err(VerifyError::BadSignatures(vec![0]))
        );
        assert_eq!(
            tx.clone().into_command(),
            Command::Client {
                account: AccountId(3),
                nonce: 7,
                command: tx.command.clone(),
            }
        );
        assert!(tx.signed_message().starts_with(TX_NAMESPACE));
    }

    #[test]
    fn a_signature_covers_exactly_its_transaction() {
        let commands = client_commands();
        let tx = signed(2, 1, commands[0].clone());
        let public_key = key(2).verifying_key().to_bytes();
        for other in &commands[1..] {
            let moved = SignedTx {
                command: other.clone(),
                ..tx.clone()
            };
            assert!(moved.verify(&public_key).is_err());
        }
        let renonced = SignedTx {
            nonce: 2,
            ..tx.clone()
        };
        assert!(renonced.verify(&public_key).is_err());

        // The same bytes signed without the namespace must not verify.
        let message = tx.signed_message();
        let bare = key(2).sign(&message[TX_NAMESPACE.len()..]).to_bytes();
        let undomained = SignedTx {
            signature: bare,
            ..tx.clone()
        };
        assert_eq!(
            undomained.verify(&public_key),
            Err(VerifyError::BadSignatures(vec![0]))
        );
    }

    #[test]
    fn a_bad_signature_is_named_in_sequential_and_parallel_verification() {
        let mut batch = txs(200);
        assert_eq!(verify_batch(&batch, keys), Ok(()));
        batch[3].signature[0] ^= 1;
        batch[130].signature[40] ^= 1; // another chunk; breaks s
        batch[131].nonce += 1;
        let expected = Err(VerifyError::BadSignatures(vec![3, 130, 131]));
        assert_eq!(verify_batch(&batch, keys), expected);
        for threads in 0..6 {
            assert_eq!(verify_batch_parallel(&batch, keys, threads), expected);
        }
    }

    #[test]
    fn zero_nonce_unknown_account_and_invalid_key_are_refused() {
        let mut batch = txs(150);
        batch[140].signature[0] ^= 1;
        batch[100] = signed(1, 0, client_commands()[2].clone());
        assert_eq!(verify_batch(&batch, keys), Err(VerifyError::ZeroNonce(100)));
        assert_eq!(
            verify_batch_parallel(&batch, keys, 3),
            Err(VerifyError::ZeroNonce(100))
        );
        batch[90].account = AccountId(1_000);
        assert_eq!(
            verify_batch_parallel(&batch, keys, 2),
            Err(VerifyError::UnknownAccount(90))
        );
        assert_eq!(
            batch[100].verify(&key(1).verifying_key().to_bytes()),
            Err(VerifyError::ZeroNonce(0))
        );

        let tx = signed(1, 1, client_commands()[0].clone());
        // The identity point: a weak key under which anyone could sign.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(tx.verify(&identity), Err(VerifyError::InvalidKey(0)));
        let not_a_point = (2u8..)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        assert_eq!(tx.verify(&not_a_point), Err(VerifyError::InvalidKey(0)));
    }

    #[test]
    fn errors_read_well() {
        let error = CodecError::BadVersion { found: 2 };
        assert_eq!(
            error.to_string(),
            "frame version 0x02 is not supported (this node speaks 0x01)"
        );
        assert_eq!(
            VerifyError::BadSignatures(vec![1, 4]).to_string(),
            "the signatures of transactions [1, 4] do not verify"
        );
    }
}
