//! The client <-> node protocol: request and response frames over a byte stream.
//!
//! # Framing
//!
//! A frame is a `u32` big-endian length `n`, then `n` bytes: one kind byte and `n - 1` body
//! bytes. `n` is at most [`WireLimits::frame_bytes_max`] (default [`FRAME_BYTES_MAX`]); a reader
//! checks it before allocating or reading the body, and a frame over the limit cannot be skipped
//! safely, so the connection ends. `n = 0` (no kind byte) is malformed but leaves the stream in
//! step.
//!
//! # Kinds and bodies
//!
//! Integers in bodies are big-endian, except inside the engine's batch encoding
//! ([`bulwark_engine::codec::encode_batch`], little-endian), which is carried as is.
//!
//! | kind | frame | body |
//! | --- | --- | --- |
//! | `0x01` | [`Request::Submit`] | an engine batch of signed transactions |
//! | `0x02` | [`Request::Status`] | empty |
//! | `0x03` | [`Request::Account`] | account `u64` |
//! | `0x04` | [`Request::Book`] | instrument `u32`, depth `u32` |
//! | `0x81` | [`Response::Submitted`] | accepted `u32`, duplicates `u32`, count `u32`, then per refusal: index `u32`, reason length `u16`, UTF-8 reason |
//! | `0x82` | [`Response::Status`] | JSON of [`crate::answers::NodeStatus`] |
//! | `0x83` | [`Response::Account`] | JSON of [`crate::answers::AccountAnswer`] |
//! | `0x84` | [`Response::Book`] | JSON of [`crate::answers::BookAnswer`] |
//! | `0x05` | [`Request::Peer`] with [`PeerOp::Attest`] | [`PeerAuth`] (104 bytes), the verifier's nonce, 32 bytes |
//! | `0x85` | [`Response::Evidence`] | attestation evidence (bulwark-attest JSON) |
//! | `0x06` | [`Request::Peer`] with [`PeerOp::AttestKey`] | [`PeerAuth`] |
//! | `0x86` | [`Response::AttestKey`] | the TPM attestation key's marshalled `TPMT_PUBLIC` |
//! | `0x07` | [`Request::Peer`] with [`PeerOp::Activate`] | [`PeerAuth`], blob length `u16`, credential blob, secret length `u16`, encrypted secret |
//! | `0x87` | [`Response::Activated`] | the credential the node's TPM recovered |
//! | `0x08` | [`Request::Peer`] with [`PeerOp::AuditReport`] | [`PeerAuth`] |
//! | `0x88` | [`Response::AuditReport`] | the signed audit report's JSON envelope (bulwark-audit) |
//! | `0x09` | [`Request::Affirm`] | the candidate's ed25519 node key, 32 bytes |
//! | `0x89` | [`Response::Affirmed`] | JSON of the node's signed [`Affirmation`] |
//! | `0x0a` | [`Request::Admit`] | JSON of an [`Admit`] |
//! | `0x8a` | [`Response::AdmitHeld`] | empty |
//! | `0x0b` | [`Request::Withdrawals`] | first withdrawal id `u64` |
//! | `0x8b` | [`Response::Withdrawals`] | JSON of [`crate::answers::WithdrawalsAnswer`] |
//! | `0x0c` | [`Request::Receipts`] | height `u64`, index `u32`, wait in milliseconds `u32` |
//! | `0x8c` | [`Response::Receipts`] | JSON of [`crate::answers::ReceiptsAnswer`] |
//! | `0xff` | [`Response::Error`] | code `u16`, UTF-8 message (the rest) |
//!
//! [`PeerAuth`] is the asking peer's ed25519 node key (32 bytes), the time it asked (`u64`,
//! Unix milliseconds) and its signature (64 bytes) over the target node's key, its own, the
//! time, the kind and the rest of the body ([`peer`]).
//!
//! Encoding and decoding are pure ([`encode_request`], [`decode_request`], ...); [`read_frame`]
//! and [`write_frame`] move frames over any `Read`/`Write` and are all the I/O here.

use std::io;

use crate::answers::{AccountAnswer, BookAnswer, NodeStatus, ReceiptsAnswer, WithdrawalsAnswer};
use bulwark_engine::codec::{decode_batch, encode_batch, CodecError, SignedTx};
use bulwark_engine::{AccountId, InstrumentId};
use bulwark_sentinel::{Admit, Affirmation};
use serde::Serialize;

mod frame;
pub mod peer;

pub use frame::{frame_len, read_frame, write_frame, Frame};
pub use peer::{peer_target, PeerAuth, PeerAuthError, PeerOp, PEER_AUTH_BYTES};

/// Default bound on a frame's length field (kind byte and body): 1 MiB.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Default bound on the transactions of one [`Request::Submit`]. At most ~122 bytes each, so a
/// full submit is about 500 KiB, inside [`FRAME_BYTES_MAX`].
pub const SUBMIT_TXS_MAX: usize = 4096;
/// Default bound on the levels per side a [`Request::Book`] may ask for.
pub const BOOK_DEPTH_MAX: u32 = 1000;
/// Bound on one refusal reason in [`Response::Submitted`]; longer reasons are cut (at a
/// character boundary) when encoding.
pub const REASON_BYTES_MAX: usize = 256;
/// Bound on an [`Response::Error`] message; longer messages are cut when encoding.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

const KIND_SUBMIT: u8 = 0x01;
const KIND_STATUS: u8 = 0x02;
const KIND_ACCOUNT: u8 = 0x03;
const KIND_BOOK: u8 = 0x04;
const KIND_SUBMITTED: u8 = 0x81;
const KIND_STATUS_REPLY: u8 = 0x82;
const KIND_ACCOUNT_REPLY: u8 = 0x83;
const KIND_BOOK_REPLY: u8 = 0x84;
const KIND_ATTEST: u8 = 0x05;
const KIND_EVIDENCE: u8 = 0x85;
const KIND_ATTEST_KEY: u8 = 0x06;
const KIND_ATTEST_KEY_REPLY: u8 = 0x86;
const KIND_ACTIVATE: u8 = 0x07;
const KIND_ACTIVATED: u8 = 0x87;
const KIND_AUDIT_REPORT: u8 = 0x08;
const KIND_AUDIT_REPORT_REPLY: u8 = 0x88;
const KIND_AFFIRM: u8 = 0x09;
const KIND_AFFIRMED: u8 = 0x89;
const KIND_ADMIT: u8 = 0x0a;
const KIND_ADMIT_HELD: u8 = 0x8a;
const KIND_WITHDRAWALS: u8 = 0x0b;
const KIND_WITHDRAWALS_REPLY: u8 = 0x8b;
const KIND_RECEIPTS: u8 = 0x0c;
const KIND_RECEIPTS_REPLY: u8 = 0x8c;
const KIND_ERROR: u8 = 0xff;

/// The smallest encoded refusal: index and an empty reason's length.
const REFUSAL_BYTES_MIN: usize = 4 + 2;

/// The protocol's bounds. Both ends should use the same; each end enforces its own on what it
/// reads and refuses to write what the other end would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Bound on a frame's length field.
    pub frame_bytes_max: usize,
    /// Bound on the transactions of one submit.
    pub submit_txs_max: usize,
    /// Bound on the depth of a book request.
    pub book_depth_max: u32,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            frame_bytes_max: FRAME_BYTES_MAX,
            submit_txs_max: SUBMIT_TXS_MAX,
            book_depth_max: BOOK_DEPTH_MAX,
        }
    }
}

/// What a client asks a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Offer signed transactions for the mempool.
    Submit(Vec<SignedTx>),
    /// The node's status (height, peers, mempool size, ...; the node chooses).
    Status,
    /// One account's committed state.
    Account(AccountId),
    /// Up to `depth` price levels per side of one instrument's book.
    Book {
        /// The instrument.
        instrument: InstrumentId,
        /// Levels per side, at most [`WireLimits::book_depth_max`].
        depth: u32,
    },
    /// An operation only a committee peer may ask for (attestation, the TPM's attestation key,
    /// credential activation), signed by that peer: see [`peer`].
    Peer {
        /// Who asks, when, and their signature over this node, the time and `op`.
        auth: PeerAuth,
        /// What they ask for.
        op: PeerOp,
    },
    /// The node's signed affirmation that `candidate` (a removed member) is fit to come back:
    /// its own verifier holds a fresh affirming appraisal of it and its newest signed audit
    /// report is clean (issue #13). The node refuses, saying why, when either is missing.
    Affirm {
        /// The candidate's ed25519 node key.
        candidate: [u8; 32],
    },
    /// An admission for the node to check against its committed state and, if the one rule
    /// accepts it, to hold for its proposals (an operator collects the affirmations).
    Admit(Box<Admit>),
    /// The ledger's withdrawals from id `from` on (at most
    /// [`crate::answers::WITHDRAWALS_PER_ANSWER`]), each with what the vault did with it as this
    /// node saw it.
    Withdrawals {
        /// The first withdrawal id.
        from: u64,
    },
    /// What each client transaction of the finalized blocks did, from (`height`, `index`) on;
    /// when the node has nothing there yet, it waits up to `wait_ms` (at most
    /// [`crate::answers::RECEIPTS_WAIT_MS_MAX`]) for the next block.
    Receipts {
        /// The first block's height.
        height: u64,
        /// The first transaction's position in it.
        index: u32,
        /// How long to wait for a new block.
        wait_ms: u32,
    },
}

/// One refused transaction of a submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// Position in the submitted batch.
    pub index: u32,
    /// Why, for humans (at most [`REASON_BYTES_MAX`] bytes on the wire).
    pub reason: String,
}

/// What became of a submitted batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubmitOutcome {
    /// Transactions newly taken into the mempool.
    pub accepted: u32,
    /// Transactions already pending.
    pub duplicates: u32,
    /// Transactions refused, with why.
    pub refused: Vec<Refused>,
}

/// Why a request failed, as a stable number a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorCode {
    /// The frame was read but does not decode; the message says why. The connection stays up.
    Malformed,
    /// The frame is longer than the node accepts; the connection is closed after this.
    TooLarge,
    /// Too many requests or transactions on this connection; retry later. The connection stays.
    RateLimited,
    /// The node has too many connections; this one is closed after this.
    Busy,
    /// The node refused the query (e.g. unknown account or instrument); the message says why.
    Refused,
    /// The node failed to answer (e.g. its answer would not fit in a frame).
    Internal,
    /// A code this version does not know, kept so newer nodes can add codes.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::TooLarge => 2,
            ErrorCode::RateLimited => 3,
            ErrorCode::Busy => 4,
            ErrorCode::Refused => 5,
            ErrorCode::Internal => 6,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a wire value; unknown values become [`ErrorCode::Other`].
    pub fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::TooLarge,
            3 => ErrorCode::RateLimited,
            4 => ErrorCode::Busy,
            5 => ErrorCode::Refused,
            6 => ErrorCode::Internal,
            other => ErrorCode::Other(other),
        }
    }
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The outcome of a [`Request::Submit`].
    Submitted(SubmitOutcome),
    /// The answer to [`Request::Status`].
    Status(Box<NodeStatus>),
    /// The answer to [`Request::Account`].
    Account(Box<AccountAnswer>),
    /// The answer to [`Request::Book`].
    Book(BookAnswer),
    /// The answer to [`PeerOp::Attest`]: evidence bytes for the verifier to appraise.
    Evidence(Vec<u8>),
    /// The answer to [`PeerOp::AttestKey`]: the AK's marshalled `TPMT_PUBLIC`.
    AttestKey(Vec<u8>),
    /// The answer to [`PeerOp::Activate`]: the recovered credential.
    Activated(Vec<u8>),
    /// The answer to [`PeerOp::AuditReport`]: the signed report's JSON envelope.
    AuditReport(Vec<u8>),
    /// The answer to [`Request::Affirm`].
    Affirmed(Affirmation),
    /// The answer to [`Request::Admit`]: the node holds the admission for its proposals.
    AdmitHeld,
    /// The answer to [`Request::Withdrawals`].
    Withdrawals(Box<WithdrawalsAnswer>),
    /// The answer to [`Request::Receipts`].
    Receipts(Box<ReceiptsAnswer>),
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// Details for humans (at most [`ERROR_MESSAGE_BYTES_MAX`] bytes on the wire).
        message: String,
    },
}

/// Why a frame was refused. Nothing here ever panics on input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The stream failed or timed out (for a read: possibly mid-frame, so the stream is no
    /// longer in step and should be closed).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the stream between frames.
    #[error("connection closed")]
    Closed,
    /// The stream ended inside a frame.
    #[error("connection closed mid-frame: {got} of {needed} bytes")]
    Truncated {
        /// Bytes the frame part needed.
        needed: usize,
        /// Bytes received before the end.
        got: usize,
    },
    /// The length field exceeds the limit; the body was not read. The stream cannot be resynced.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame with length 0 has no kind byte.
    #[error("empty frame: no kind byte")]
    EmptyFrame,
    /// The kind byte names no frame this side accepts.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A body ends early or has trailing bytes.
    #[error("bad {what} body: {detail}")]
    BadBody {
        /// The frame kind.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The transactions of a submit do not decode.
    #[error("bad transaction batch: {0}")]
    Batch(#[from] CodecError),
    /// A submit carries more transactions than allowed (checked before decoding them).
    #[error("submit of {count} transactions exceeds the limit of {max}")]
    TooManyTxs {
        /// Transactions in the submit.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A book request asks for more levels than allowed.
    #[error("book depth {depth} exceeds the limit of {max}")]
    DepthTooLarge {
        /// Requested depth.
        depth: u32,
        /// The limit.
        max: u32,
    },
    /// A text field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A JSON body does not parse.
    #[error("bad JSON body: {0}")]
    Json(String),
}

/// Encodes a request as a complete frame. Refuses what the peer would refuse under `limits`:
/// too many transactions, a depth over the limit, a frame over the size limit.
pub fn encode_request(request: &Request, limits: &WireLimits) -> Result<Vec<u8>, WireError> {
    let frame = match request {
        Request::Submit(txs) => return encode_submit(txs, limits),
        Request::Status => Frame {
            kind: KIND_STATUS,
            body: Vec::new(),
        },
        Request::Account(account) => Frame {
            kind: KIND_ACCOUNT,
            body: account.0.to_be_bytes().to_vec(),
        },
        Request::Withdrawals { from } => Frame {
            kind: KIND_WITHDRAWALS,
            body: from.to_be_bytes().to_vec(),
        },
        Request::Receipts {
            height,
            index,
            wait_ms,
        } => {
            let mut body = height.to_be_bytes().to_vec();
            body.extend_from_slice(&index.to_be_bytes());
            body.extend_from_slice(&wait_ms.to_be_bytes());
            Frame {
                kind: KIND_RECEIPTS,
                body,
            }
        }
        Request::Book { instrument, depth } => {
            if *depth > limits.book_depth_max {
                return Err(WireError::DepthTooLarge {
                    depth: *depth,
                    max: limits.book_depth_max,
                });
            }
            let mut body = Vec::with_capacity(8);
            body.extend_from_slice(&instrument.0.to_be_bytes());
            body.extend_from_slice(&depth.to_be_bytes());
            Frame {
                kind: KIND_BOOK,
                body,
            }
        }
        Request::Affirm { candidate } => Frame {
            kind: KIND_AFFIRM,
            body: candidate.to_vec(),
        },
        Request::Admit(admit) => Frame {
            kind: KIND_ADMIT,
            body: serde_json::to_vec(admit.as_ref())
                .map_err(|error| WireError::Json(error.to_string()))?,
        },
        Request::Peer { auth, op } => {
            let (kind, op_body) = peer::op_body(op)?;
            let mut body = Vec::with_capacity(PEER_AUTH_BYTES + op_body.len());
            auth.encode_into(&mut body);
            body.extend_from_slice(&op_body);
            Frame { kind, body }
        }
    };
    frame.to_bytes(limits.frame_bytes_max)
}

/// Encodes a [`Request::Submit`] of `txs` without copying them into a [`Request`] first.
pub fn encode_submit(txs: &[SignedTx], limits: &WireLimits) -> Result<Vec<u8>, WireError> {
    if txs.len() > limits.submit_txs_max {
        return Err(WireError::TooManyTxs {
            count: txs.len(),
            max: limits.submit_txs_max,
        });
    }
    Frame {
        kind: KIND_SUBMIT,
        body: encode_batch(txs)?,
    }
    .to_bytes(limits.frame_bytes_max)
}

/// Decodes a request frame's kind and body. Signatures are not checked here.
pub fn decode_request(frame: &Frame, limits: &WireLimits) -> Result<Request, WireError> {
    let body = frame.body.as_slice();
    match frame.kind {
        KIND_SUBMIT => {
            // Peek at the count (after the version byte) to report the limit plainly; the
            // engine's decoder checks it again, with the bytes present, before allocating.
            if let Some(count) = body.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                let count = usize::try_from(u32::from_le_bytes(count)).unwrap_or(usize::MAX);
                if count > limits.submit_txs_max {
                    return Err(WireError::TooManyTxs {
                        count,
                        max: limits.submit_txs_max,
                    });
                }
            }
            Ok(Request::Submit(decode_batch(body, limits.submit_txs_max)?))
        }
        KIND_STATUS => {
            let mut cursor = Cursor::new(body, "status request");
            cursor.finish()?;
            Ok(Request::Status)
        }
        KIND_ACCOUNT => {
            let mut cursor = Cursor::new(body, "account request");
            let account = AccountId(cursor.u64()?);
            cursor.finish()?;
            Ok(Request::Account(account))
        }
        KIND_WITHDRAWALS => {
            let mut cursor = Cursor::new(body, "withdrawals request");
            let from = cursor.u64()?;
            cursor.finish()?;
            Ok(Request::Withdrawals { from })
        }
        KIND_RECEIPTS => {
            let mut cursor = Cursor::new(body, "receipts request");
            let height = cursor.u64()?;
            let index = cursor.u32()?;
            let wait_ms = cursor.u32()?;
            cursor.finish()?;
            Ok(Request::Receipts {
                height,
                index,
                wait_ms,
            })
        }
        KIND_ATTEST => {
            let mut cursor = Cursor::new(body, "attest request");
            let auth = PeerAuth::decode(&cursor.array()?);
            let nonce = cursor.array()?;
            cursor.finish()?;
            Ok(Request::Peer {
                auth,
                op: PeerOp::Attest { nonce },
            })
        }
        KIND_ATTEST_KEY => {
            let mut cursor = Cursor::new(body, "attest-key request");
            let auth = PeerAuth::decode(&cursor.array()?);
            cursor.finish()?;
            Ok(Request::Peer {
                auth,
                op: PeerOp::AttestKey,
            })
        }
        KIND_ACTIVATE => {
            let mut cursor = Cursor::new(body, "activate request");
            let auth = PeerAuth::decode(&cursor.array()?);
            let len = usize::from(cursor.u16()?);
            let credential_blob = cursor.take(len)?.to_vec();
            let len = usize::from(cursor.u16()?);
            let encrypted_secret = cursor.take(len)?.to_vec();
            cursor.finish()?;
            Ok(Request::Peer {
                auth,
                op: PeerOp::Activate {
                    credential_blob,
                    encrypted_secret,
                },
            })
        }
        KIND_AUDIT_REPORT => {
            let mut cursor = Cursor::new(body, "audit-report request");
            let auth = PeerAuth::decode(&cursor.array()?);
            cursor.finish()?;
            Ok(Request::Peer {
                auth,
                op: PeerOp::AuditReport,
            })
        }
        KIND_AFFIRM => {
            let mut cursor = Cursor::new(body, "affirm request");
            let candidate = cursor.array()?;
            cursor.finish()?;
            Ok(Request::Affirm { candidate })
        }
        KIND_ADMIT => serde_json::from_slice(body)
            .map(|admit| Request::Admit(Box::new(admit)))
            .map_err(|error| WireError::Json(format!("admit: {error}"))),
        KIND_BOOK => {
            let mut cursor = Cursor::new(body, "book request");
            let instrument = InstrumentId(cursor.u32()?);
            let depth = cursor.u32()?;
            cursor.finish()?;
            if depth > limits.book_depth_max {
                return Err(WireError::DepthTooLarge {
                    depth,
                    max: limits.book_depth_max,
                });
            }
            Ok(Request::Book { instrument, depth })
        }
        kind => Err(WireError::UnknownKind(kind)),
    }
}

/// Encodes a response as a complete frame. Over-long reasons and messages are cut to
/// [`REASON_BYTES_MAX`] and [`ERROR_MESSAGE_BYTES_MAX`]; a response that still exceeds
/// `frame_bytes_max` (a huge JSON answer) is refused with [`WireError::FrameTooLarge`], and the
/// caller should send an [`ErrorCode::Internal`] error instead.
pub fn encode_response(response: &Response, frame_bytes_max: usize) -> Result<Vec<u8>, WireError> {
    fn json<T: Serialize>(kind: u8, value: &T) -> Result<Frame, WireError> {
        let body = serde_json::to_vec(value).map_err(|error| WireError::Json(error.to_string()))?;
        Ok(Frame { kind, body })
    }
    let frame = match response {
        Response::Submitted(outcome) => {
            let mut body = Vec::with_capacity(12 + outcome.refused.len() * 32);
            body.extend_from_slice(&outcome.accepted.to_be_bytes());
            body.extend_from_slice(&outcome.duplicates.to_be_bytes());
            let count =
                u32::try_from(outcome.refused.len()).map_err(|_| WireError::FrameTooLarge {
                    len: usize::MAX,
                    max: frame_bytes_max,
                })?;
            body.extend_from_slice(&count.to_be_bytes());
            for refused in &outcome.refused {
                let reason = truncate_utf8(&refused.reason, REASON_BYTES_MAX);
                body.extend_from_slice(&refused.index.to_be_bytes());
                // REASON_BYTES_MAX < u16::MAX.
                body.extend_from_slice(&(reason.len() as u16).to_be_bytes());
                body.extend_from_slice(reason.as_bytes());
            }
            Frame {
                kind: KIND_SUBMITTED,
                body,
            }
        }
        Response::Status(value) => json(KIND_STATUS_REPLY, value.as_ref())?,
        Response::Account(value) => json(KIND_ACCOUNT_REPLY, value.as_ref())?,
        Response::Withdrawals(value) => json(KIND_WITHDRAWALS_REPLY, value.as_ref())?,
        Response::Receipts(value) => json(KIND_RECEIPTS_REPLY, value.as_ref())?,
        Response::Book(value) => json(KIND_BOOK_REPLY, value)?,
        Response::Evidence(bytes) => Frame {
            kind: KIND_EVIDENCE,
            body: bytes.clone(),
        },
        Response::AttestKey(bytes) => Frame {
            kind: KIND_ATTEST_KEY_REPLY,
            body: bytes.clone(),
        },
        Response::Activated(bytes) => Frame {
            kind: KIND_ACTIVATED,
            body: bytes.clone(),
        },
        Response::AuditReport(bytes) => Frame {
            kind: KIND_AUDIT_REPORT_REPLY,
            body: bytes.clone(),
        },
        Response::Affirmed(affirmation) => json(KIND_AFFIRMED, affirmation)?,
        Response::AdmitHeld => Frame {
            kind: KIND_ADMIT_HELD,
            body: Vec::new(),
        },
        Response::Error { code, message } => {
            let message = truncate_utf8(message, ERROR_MESSAGE_BYTES_MAX);
            let mut body = Vec::with_capacity(2 + message.len());
            body.extend_from_slice(&code.to_u16().to_be_bytes());
            body.extend_from_slice(message.as_bytes());
            Frame {
                kind: KIND_ERROR,
                body,
            }
        }
    };
    frame.to_bytes(frame_bytes_max)
}

/// Encodes an error response; never fails (the message is bounded well below any sane frame
/// limit).
pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let message = truncate_utf8(message, ERROR_MESSAGE_BYTES_MAX);
    let mut out = Vec::with_capacity(LENGTH_PREFIX_BYTES + 3 + message.len());
    // 1 + 2 + at most ERROR_MESSAGE_BYTES_MAX: fits in u32.
    out.extend_from_slice(&((3 + message.len()) as u32).to_be_bytes());
    out.push(KIND_ERROR);
    out.extend_from_slice(&code.to_u16().to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

/// Decodes a response frame's kind and body.
pub fn decode_response(frame: &Frame) -> Result<Response, WireError> {
    let body = frame.body.as_slice();
    fn json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, WireError> {
        serde_json::from_slice(body).map_err(|error| WireError::Json(format!("{what}: {error}")))
    }
    match frame.kind {
        KIND_SUBMITTED => {
            let mut cursor = Cursor::new(body, "submitted response");
            let accepted = cursor.u32()?;
            let duplicates = cursor.u32()?;
            let count = usize::try_from(cursor.u32()?).unwrap_or(usize::MAX);
            // Bound the allocation by the bytes present, not by the announced count.
            if count > cursor.remaining() / REFUSAL_BYTES_MIN {
                return Err(cursor.bad(format!(
                    "{count} refusals cannot fit in {} bytes",
                    cursor.remaining()
                )));
            }
            let mut refused = Vec::with_capacity(count);
            for _ in 0..count {
                let index = cursor.u32()?;
                let len = usize::from(cursor.u16()?);
                let reason = std::str::from_utf8(cursor.take(len)?)
                    .map_err(|_| WireError::NotUtf8("refusal reason"))?
                    .to_owned();
                refused.push(Refused { index, reason });
            }
            cursor.finish()?;
            Ok(Response::Submitted(SubmitOutcome {
                accepted,
                duplicates,
                refused,
            }))
        }
        KIND_STATUS_REPLY => Ok(Response::Status(Box::new(json(body, "status")?))),
        KIND_ACCOUNT_REPLY => Ok(Response::Account(Box::new(json(body, "account")?))),
        KIND_WITHDRAWALS_REPLY => Ok(Response::Withdrawals(Box::new(json(body, "withdrawals")?))),
        KIND_RECEIPTS_REPLY => Ok(Response::Receipts(Box::new(json(body, "receipts")?))),
        KIND_BOOK_REPLY => Ok(Response::Book(json(body, "book")?)),
        KIND_EVIDENCE => Ok(Response::Evidence(body.to_vec())),
        KIND_ATTEST_KEY_REPLY => Ok(Response::AttestKey(body.to_vec())),
        KIND_ACTIVATED => Ok(Response::Activated(body.to_vec())),
        KIND_AUDIT_REPORT_REPLY => Ok(Response::AuditReport(body.to_vec())),
        KIND_AFFIRMED => Ok(Response::Affirmed(json(body, "affirmation")?)),
        KIND_ADMIT_HELD => {
            let mut cursor = Cursor::new(body, "admit-held response");
            cursor.finish()?;
            Ok(Response::AdmitHeld)
        }
        KIND_ERROR => {
            let mut cursor = Cursor::new(body, "error response");
            let code = ErrorCode::from_u16(cursor.u16()?);
            let rest = cursor.take(cursor.remaining())?;
            let message = std::str::from_utf8(rest)
                .map_err(|_| WireError::NotUtf8("error message"))?
                .to_owned();
            Ok(Response::Error { code, message })
        }
        kind => Err(WireError::UnknownKind(kind)),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A bounds-checked reader over a frame body.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Cursor { bytes, at: 0, what }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn bad(&self, detail: String) -> WireError {
        WireError::BadBody {
            what: self.what,
            detail,
        }
    }

    fn take(&mut self, needed: usize) -> Result<&'a [u8], WireError> {
        let slice = self
            .at
            .checked_add(needed)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| {
                self.bad(format!(
                    "ends early: a {needed}-byte field at offset {} runs past the end ({} bytes)",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        self.at += needed;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let slice = self.take(N)?;
        Ok(slice
            .try_into()
            .expect("Cursor::take must return exactly the requested length"))
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn finish(&mut self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.bad(format!("{count} trailing byte(s) at offset {}", self.at))),
        }
    }
}

#[cfg(test)]
mod tests;
