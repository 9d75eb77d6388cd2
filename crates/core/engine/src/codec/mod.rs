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
//! | [`StopDirection`] | `0` rises, `1` falls |
//! | [`ClientCommand`] | `1` limit, `2` market, `3` cancel, `4` amend, `5` mass cancel, `6` withdraw, `7` stop |
//! | [`SystemCommand`] | `1` open account, `2` deposit, `3` index price, `4` oracle round |
//! | [`Command`] | `1` client (account `u64`, nonce `u64`, client command), `2` system |
//!
//! A [`SignedTx`] is account `u64`, nonce `u64`, client command, 64 signature bytes. A batch is
//! the version byte, a `u32` count, then that many signed transactions without their own version
//! byte. Tags and field order are the protocol: changing any of them needs a new version byte
//! (and a new [`TX_NAMESPACE`]).
//!
//! Adding a variant under a new tag, as client command `7` (stop) was added, extends version
//! `0x01` without a new version byte: every frame that decoded before decodes to the same value and
//! signs the same bytes, and a node that predates the tag refuses the new frames with
//! [`CodecError::UnknownTag`] rather than misreading them.
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

use crate::command::{
    AccountId, ClientCommand, Command, InstrumentId, LimitOrder, OrderId, SelfTradePrevention,
    Side, StopDirection, StopOrder, SystemCommand, TimeInForce,
};

mod deposit;
mod oracle;
mod sentinel;
mod verify;

pub use verify::{verify_batch, verify_batch_parallel, verify_one, SignedTx, VerifyError};

/// The version byte that starts every frame this module writes or accepts.
pub const FRAME_VERSION: u8 = 0x01;

/// The largest frame (one transaction, client command or signed observation, version byte
/// included) that decoding accepts. Every such value of the current format is far smaller; the
/// bound is checked before parsing.
pub const FRAME_BYTES_MAX: usize = 1024;

/// The largest [`Command`] or [`SystemCommand`] frame: an oracle round with
/// [`crate::oracle::ORACLE_ROUND_OBSERVATIONS_MAX`] signed observations (about 8 KiB). Client
/// input ([`SignedTx`], [`ClientCommand`]) keeps the tighter [`FRAME_BYTES_MAX`].
pub const COMMAND_FRAME_BYTES_MAX: usize = 1 + 1 + oracle::ORACLE_ROUND_BYTES_MAX;
// A quarantine with the most accusations a decision needs fits the same bound.
const _: () = assert!(1 + 1 + sentinel::QUARANTINE_BYTES_MAX <= COMMAND_FRAME_BYTES_MAX);
// So does an epoch change of the largest committee.
const _: () = assert!(1 + 1 + sentinel::NEW_EPOCH_BYTES_MAX <= COMMAND_FRAME_BYTES_MAX);
// And a chain deposit signed by the largest committee.
const _: () = assert!(1 + 1 + deposit::CERTIFICATE_BYTES_MAX <= COMMAND_FRAME_BYTES_MAX);
// And an admission with the most affirmations and approvals it can need.
const _: () = assert!(1 + 1 + sentinel::ADMIT_BYTES_MAX <= COMMAND_FRAME_BYTES_MAX);

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
/// The largest client command: withdraw (tag, `i64` amount, 32-byte destination, chain), one
/// byte longer than a stop-limit (tag, instrument, side, direction, trigger, present limit, qty,
/// reduce-only, client order id).
const CLIENT_COMMAND_BYTES_MAX: usize = SESSION_GRANT_BYTES_MAX + 1;
const _: () = assert!(CLIENT_COMMAND_BYTES_MAX > 1 + 4 + 1 + 1 + 8 + (1 + 8) + 8 + 1 + 8);
const _: () = assert!(CLIENT_COMMAND_BYTES_MAX > 1 + 8 + 32 + 1);
/// A session grant: key, expiry, logon time, nonce, and two CompIDs with their length bytes.
const SESSION_GRANT_BYTES_MAX: usize =
    32 + 8 + 8 + 16 + 2 * (1 + crate::session::COMP_ID_BYTES_MAX);
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
    /// The frame is longer than the decoder's limit ([`FRAME_BYTES_MAX`] or
    /// [`COMMAND_FRAME_BYTES_MAX`]); it was not parsed.
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

/// Encodes a client command as a canonical frame.
pub fn encode_client_command(command: &ClientCommand) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_client_command`].
pub fn decode_client_command(bytes: &[u8]) -> Result<ClientCommand, CodecError> {
    decode_frame(bytes, FRAME_BYTES_MAX)
}

/// Encodes a system command as a canonical frame.
pub fn encode_system_command(command: &SystemCommand) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_system_command`] (at most [`COMMAND_FRAME_BYTES_MAX`]).
pub fn decode_system_command(bytes: &[u8]) -> Result<SystemCommand, CodecError> {
    decode_frame(bytes, COMMAND_FRAME_BYTES_MAX)
}

/// Encodes a member's signed accusation as a canonical frame (how members gossip them; the
/// same encoding a quarantine carries).
pub fn encode_accusation(accusation: &bulwark_sentinel::Accusation) -> Vec<u8> {
    encode_frame(accusation)
}

/// Decodes a frame written by [`encode_accusation`]; the signature is not checked here.
pub fn decode_accusation(bytes: &[u8]) -> Result<bulwark_sentinel::Accusation, CodecError> {
    decode_frame(bytes, 1 + sentinel::ACCUSATION_BYTES)
}

/// Encodes an engine command as a canonical frame.
pub fn encode_command(command: &Command) -> Vec<u8> {
    encode_frame(command)
}

/// Decodes a frame written by [`encode_command`] (at most [`COMMAND_FRAME_BYTES_MAX`]).
pub fn decode_command(bytes: &[u8]) -> Result<Command, CodecError> {
    decode_frame(bytes, COMMAND_FRAME_BYTES_MAX)
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

fn encode_frame<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_TX_FRAME_BYTES_MAX);
    out.push(FRAME_VERSION);
    value.put(&mut out);
    out
}

fn decode_frame<T: Wire>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLong {
            len: bytes.len(),
            max,
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

/// Reads a `u16` count of at most `max` items of `item_bytes` each, then the items. The count is
/// checked against the bound and against the remaining bytes before anything is allocated.
fn take_counted<T: Wire>(
    reader: &mut Reader<'_>,
    max: usize,
    item_bytes: usize,
) -> Result<Vec<T>, CodecError> {
    let count = usize::from(u16::take(reader)?);
    if count > max {
        return Err(CodecError::CountTooLarge { count, max });
    }
    let needed = count * item_bytes;
    let available = reader.remaining();
    if needed > available {
        return Err(CodecError::CountExceedsInput {
            count,
            needed,
            available,
        });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(T::take(reader)?);
    }
    Ok(items)
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
wire_unit_enum!(StopDirection, "stop direction", { Rises = 0, Falls = 1 });
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

impl Wire for StopOrder {
    fn put(&self, out: &mut Vec<u8>) {
        self.instrument.put(out);
        self.side.put(out);
        self.direction.put(out);
        self.trigger_price.put(out);
        self.limit_price.put(out);
        self.qty.put(out);
        self.reduce_only.put(out);
        self.client_order_id.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(StopOrder {
            instrument: Wire::take(reader)?,
            side: Wire::take(reader)?,
            direction: Wire::take(reader)?,
            trigger_price: Wire::take(reader)?,
            limit_price: Wire::take(reader)?,
            qty: Wire::take(reader)?,
            reduce_only: Wire::take(reader)?,
            client_order_id: Wire::take(reader)?,
        })
    }
}

/// A CompID: a length byte, then 1 to [`crate::session::COMP_ID_BYTES_MAX`] printable ASCII
/// bytes.
fn put_comp_id(text: &str, out: &mut Vec<u8>) {
    // Grants are built from checked CompIDs; the length byte cannot overflow for those.
    out.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(text.as_bytes());
}

fn take_comp_id(reader: &mut Reader<'_>) -> Result<String, CodecError> {
    let len = usize::from(reader.u8()?);
    if len == 0 || len > crate::session::COMP_ID_BYTES_MAX {
        return Err(CodecError::CountTooLarge {
            count: len,
            max: crate::session::COMP_ID_BYTES_MAX,
        });
    }
    let mut text = String::with_capacity(len);
    for _ in 0..len {
        let byte = reader.u8()?;
        if !byte.is_ascii_graphic() {
            return Err(CodecError::UnknownTag {
                what: "CompID byte",
                tag: byte,
            });
        }
        text.push(char::from(byte));
    }
    Ok(text)
}

impl Wire for crate::command::SessionGrant {
    fn put(&self, out: &mut Vec<u8>) {
        self.key.put(out);
        self.expires_ms.put(out);
        self.logon_ms.put(out);
        self.logon_nonce.put(out);
        put_comp_id(&self.sender, out);
        put_comp_id(&self.target, out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(crate::command::SessionGrant {
            key: Wire::take(reader)?,
            expires_ms: Wire::take(reader)?,
            logon_ms: Wire::take(reader)?,
            logon_nonce: Wire::take(reader)?,
            sender: take_comp_id(reader)?,
            target: take_comp_id(reader)?,
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
                expect_qty,
            } => {
                // Tag 4 is the amend without an expected size (as before it existed), tag 10
                // the one with it.
                out.push(if expect_qty.is_some() { 10 } else { 4 });
                instrument.put(out);
                order_id.put(out);
                price.put(out);
                qty.put(out);
                if let Some(expected) = expect_qty {
                    expected.put(out);
                }
            }
            ClientCommand::MassCancel { instrument } => {
                out.push(5);
                instrument.put(out);
            }
            ClientCommand::Withdraw {
                amount,
                destination,
                chain,
            } => {
                out.push(6);
                amount.put(out);
                destination.put(out);
                out.push(chain.code());
            }
            ClientCommand::Stop(order) => {
                out.push(7);
                order.put(out);
            }
            ClientCommand::OpenSession(grant) => {
                out.push(8);
                grant.put(out);
            }
            ClientCommand::CloseSession {
                slot,
                cancel_placed,
            } => {
                // 12 closes and cancels what the session placed; 9 only closes.
                out.push(if *cancel_placed { 12 } else { 9 });
                out.push(*slot);
            }
            ClientCommand::SessionHeartbeat { within_ms } => {
                out.push(11);
                within_ms.put(out);
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
            tag @ (4 | 10) => Ok(ClientCommand::Amend {
                instrument: Wire::take(reader)?,
                order_id: Wire::take(reader)?,
                price: Wire::take(reader)?,
                qty: Wire::take(reader)?,
                expect_qty: if tag == 10 {
                    Some(Wire::take(reader)?)
                } else {
                    None
                },
            }),
            5 => Ok(ClientCommand::MassCancel {
                instrument: Wire::take(reader)?,
            }),
            6 => Ok(ClientCommand::Withdraw {
                amount: Wire::take(reader)?,
                destination: Wire::take(reader)?,
                chain: {
                    let code = reader.u8()?;
                    crate::command::PayoutChain::from_code(code).ok_or(CodecError::UnknownTag {
                        what: "payout chain",
                        tag: code,
                    })?
                },
            }),
            7 => Ok(ClientCommand::Stop(Wire::take(reader)?)),
            8 => Ok(ClientCommand::OpenSession(Wire::take(reader)?)),
            tag @ (9 | 12) => Ok(ClientCommand::CloseSession {
                slot: reader.u8()?,
                cancel_placed: tag == 12,
            }),
            11 => Ok(ClientCommand::SessionHeartbeat {
                within_ms: Wire::take(reader)?,
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
            SystemCommand::OracleRound {
                underlying,
                round,
                observations,
            } => {
                out.push(4);
                underlying.put(out);
                round.put(out);
                oracle::put_observations(observations, out);
            }
            SystemCommand::Quarantine(decision) => {
                out.push(5);
                decision.put(out);
            }
            SystemCommand::NewEpoch {
                epoch,
                members,
                key,
            } => {
                out.push(6);
                sentinel::put_new_epoch(*epoch, members, key, out);
            }
            SystemCommand::ChainDeposit(certificate) => {
                out.push(7);
                deposit::put_certificate(certificate, out);
            }
            SystemCommand::Admit(admit) => {
                out.push(8);
                admit.put(out);
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
            4 => Ok(SystemCommand::OracleRound {
                underlying: Wire::take(reader)?,
                round: Wire::take(reader)?,
                observations: oracle::take_observations(reader)?,
            }),
            5 => Ok(SystemCommand::Quarantine(Box::new(Wire::take(reader)?))),
            6 => sentinel::take_new_epoch(reader),
            7 => Ok(SystemCommand::ChainDeposit(Box::new(
                deposit::take_certificate(reader)?,
            ))),
            8 => Ok(SystemCommand::Admit(Box::new(Wire::take(reader)?))),
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
mod tests;
