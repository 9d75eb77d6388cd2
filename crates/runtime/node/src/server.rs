//! The node's client endpoint: a bounded TCP server speaking the [`bulwark_api::wire`] protocol.
//!
//! One accept thread and one thread per connection, at most [`Limits::connections_max`]
//! connections (a connection over the limit gets an [`ErrorCode::Busy`] frame and is closed).
//! Each connection:
//!
//! - waits at most [`Limits::idle_timeout`] for the next frame, then must deliver the whole frame
//!   within [`Limits::frame_timeout`] (a slow sender cannot hold a thread by trickling bytes);
//! - has [`Limits::write_timeout`] for each answer (a client that never reads is dropped);
//! - is rate limited by two token buckets, one for requests and one for submitted transactions;
//!   over either, the answer is [`ErrorCode::RateLimited`] and the connection stays;
//! - gets [`ErrorCode::Malformed`] for a frame that does not decode, and stays;
//! - gets [`ErrorCode::TooLarge`] for a length prefix over the limit and is closed, since the
//!   body cannot be skipped safely. The length is checked before anything is allocated.
//!
//! The [`Handler`] answers decoded requests; the server knows nothing of mempools or engines.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bulwark_engine::codec::SignedTx;
use bulwark_engine::{AccountId, InstrumentId};

use crate::node::peer_gate::{GateRefusal, PeerGate};
use bulwark_api::answers::{AccountAnswer, BookAnswer, NodeStatus};
use bulwark_api::wire::{
    decode_request, encode_error, encode_response, read_frame, write_frame, ErrorCode, Frame,
    PeerAuth, PeerOp, Request, Response, SubmitOutcome, WireError, WireLimits,
};

/// How often the accept thread looks for new connections and for [`ServerHandle::stop`].
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// After refusing an oversize frame, how much of what the client already sent is read and
/// discarded before closing, so that the close is a FIN rather than a reset that could destroy
/// the error frame in flight.
const LINGER_BYTES_MAX: usize = 64 * 1024;
/// How long that discarding may take at most.
const LINGER_TIME_MAX: Duration = Duration::from_millis(500);
/// Write timeout for the error frame sent to a connection refused as over the limit; the accept
/// thread must not block on a client.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Why a [`Handler`] refuses a request. Its text is what the client reads in the
/// [`ErrorCode::Refused`] frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The account is not in the committed state (never opened, or not yet committed).
    #[error("account {} does not exist", .account.0)]
    UnknownAccount {
        /// The account asked for.
        account: AccountId,
    },
    /// The instrument is not listed on this venue.
    #[error("instrument {} is not listed", .instrument.0)]
    UnknownInstrument {
        /// The instrument asked for.
        instrument: InstrumentId,
    },
    /// Attested admission is off on this node: it produces no evidence.
    #[error("attested admission is off on this node")]
    AttestationOff,
    /// This node attests without a TPM: it has no attestation key and activates no credential.
    #[error("this node attests without a TPM")]
    NoTpm,
    /// The node's attestation failed (its measured files, its TPM).
    #[error(transparent)]
    Attestation(#[from] crate::node::attest::AttestationError),
    /// The node runs no configuration audit (`[audit]`), or has not finished its first scan.
    #[error("this node publishes no signed audit report (no [audit] section, or its first scan is still running)")]
    NoAudit,
    /// This endpoint is not a committee member's.
    #[error("this endpoint is not a committee member's")]
    NotAMember,
    /// Too many affirm and admit requests from all clients together; retry in a second.
    #[error("too many affirm and admit requests at this node; retry in a second")]
    Busy,
    /// The node does not affirm the candidate.
    #[error("no affirmation: {0}")]
    Affirm(#[from] crate::node::audit::AffirmRefusal),
    /// The admission fails the one rule against the node's committed state, or the node holds
    /// too many.
    #[error("admission refused: {0}")]
    Admit(String),
    /// This endpoint does not serve the vault's withdrawals.
    #[error("this endpoint does not serve the vault's withdrawals")]
    NoVault,
    /// This endpoint does not serve receipts.
    #[error("this endpoint does not serve receipts")]
    NoReceipts,
}

/// Answers the requests of every connection; called from many threads at once.
pub trait Handler {
    /// Offers client transactions to the mempool. Called after the transaction rate limit, with
    /// at most [`WireLimits::submit_txs_max`] transactions whose signatures are not yet checked.
    fn submit(&self, txs: Vec<SignedTx>) -> SubmitOutcome;
    /// The node's status, any JSON.
    fn status(&self) -> NodeStatus;
    /// One account's committed state, or why not (sent as [`ErrorCode::Refused`]).
    fn account(&self, account: AccountId) -> Result<AccountAnswer, Refusal>;
    /// Up to `depth` levels per side of one book (`depth` is at most
    /// [`WireLimits::book_depth_max`]), or why not (sent as [`ErrorCode::Refused`]).
    fn book(&self, instrument: InstrumentId, depth: usize) -> Result<BookAnswer, Refusal>;
    /// Attestation evidence over a verifier's nonce, or why not (sent as [`ErrorCode::Refused`]).
    fn attest(&self, nonce: [u8; 32]) -> Result<Vec<u8>, Refusal> {
        let _ = nonce;
        Err(Refusal::AttestationOff)
    }
    /// The TPM attestation key's public area, or why not (sent as [`ErrorCode::Refused`]).
    fn attest_key(&self) -> Result<Vec<u8>, Refusal> {
        Err(Refusal::NoTpm)
    }
    /// The node's newest signed audit report (JSON envelope), or why not.
    fn audit_report(&self) -> Result<Vec<u8>, Refusal> {
        Err(Refusal::NoAudit)
    }
    /// This node's affirmation of `candidate` for re-admission, or why not.
    fn affirm(&self, candidate: [u8; 32]) -> Result<bulwark_sentinel::Affirmation, Refusal> {
        let _ = candidate;
        Err(Refusal::NotAMember)
    }
    /// Checks an admission and holds it for proposals, or says why not.
    fn admit(&self, admit: bulwark_sentinel::Admit) -> Result<(), Refusal> {
        let _ = admit;
        Err(Refusal::NotAMember)
    }
    /// The ledger's withdrawals from id `from` on, with what the vault did with each.
    fn withdrawals(&self, from: u64) -> Result<bulwark_api::answers::WithdrawalsAnswer, Refusal> {
        let _ = from;
        Err(Refusal::NoVault)
    }
    /// Receipts of finalized blocks from (`height`, `index`) on, waiting up to `wait_ms` for a
    /// new block when there is nothing there yet.
    fn receipts(
        &self,
        height: u64,
        index: u32,
        wait_ms: u32,
    ) -> Result<bulwark_api::answers::ReceiptsAnswer, Refusal> {
        let _ = (height, index, wait_ms);
        Err(Refusal::NoReceipts)
    }
    /// Credential activation by the node's TPM, or why not (sent as [`ErrorCode::Refused`]).
    fn activate(
        &self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, Refusal> {
        let _ = (credential_blob, encrypted_secret);
        Err(Refusal::NoTpm)
    }
}

/// The server's bounds. Every duration must be non-zero, every count and rate at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Frame size, submit size and book depth bounds.
    pub wire: WireLimits,
    /// Open connections at most.
    pub connections_max: usize,
    /// Time allowed for one frame once its first byte has arrived.
    pub frame_timeout: Duration,
    /// Time allowed to write one answer.
    pub write_timeout: Duration,
    /// Time a connection may wait between frames before it is closed.
    pub idle_timeout: Duration,
    /// Requests per second per connection, sustained.
    pub requests_per_s: u32,
    /// Requests per connection in a burst (the request bucket's size).
    pub requests_burst: u32,
    /// Submitted transactions per second per connection, sustained.
    pub txs_per_s: u32,
    /// Submitted transactions per connection in a burst; at least
    /// [`WireLimits::submit_txs_max`], or a full submit could never pass.
    pub txs_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wire: WireLimits::default(),
            connections_max: 256,
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            requests_per_s: 100,
            requests_burst: 200,
            txs_per_s: 10_000,
            txs_burst: 8192,
        }
    }
}

impl Limits {
    /// Checks that these limits can work (see the field docs).
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |why: &'static str| Err(ServerError::BadLimits(why));
        if self.connections_max == 0 {
            return bad("connections_max must be at least 1");
        }
        if self.frame_timeout.is_zero()
            || self.write_timeout.is_zero()
            || self.idle_timeout.is_zero()
        {
            return bad("timeouts must be non-zero");
        }
        if self.requests_per_s == 0 || self.requests_burst == 0 || self.txs_per_s == 0 {
            return bad("rates and bursts must be at least 1");
        }
        if (self.txs_burst as usize) < self.wire.submit_txs_max {
            return bad("txs_burst must be at least wire.submit_txs_max");
        }
        if self.wire.frame_bytes_max < 64 {
            return bad("wire.frame_bytes_max must be at least 64 bytes");
        }
        Ok(())
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The limits cannot work; the message says which.
    #[error("invalid server limits: {0}")]
    BadLimits(&'static str),
    /// Binding or configuring the listening socket failed (address in use, no permission, ...).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The OS refused the accept thread.
    #[error("cannot start the accept thread: {0}")]
    Spawn(io::Error),
}

/// A token bucket: holds at most `burst` tokens and gains `rate_per_s` per second. Integer
/// arithmetic in nano-tokens; time is passed in.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_s: u128,
    capacity_nano: u128,
    tokens_nano: u128,
    refilled: Instant,
}

const NANO: u128 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u32, burst: u32, now: Instant) -> TokenBucket {
        let capacity_nano = u128::from(burst) * NANO;
        TokenBucket {
            rate_per_s: u128::from(rate_per_s),
            capacity_nano,
            tokens_nano: capacity_nano,
            refilled: now,
        }
    }

    /// Takes `count` tokens if the bucket holds them at `now`; otherwise takes none.
    pub fn try_take(&mut self, count: u64, now: Instant) -> bool {
        let elapsed_ns = now.saturating_duration_since(self.refilled).as_nanos();
        self.refilled = self.refilled.max(now);
        self.tokens_nano = self
            .tokens_nano
            .saturating_add(elapsed_ns.saturating_mul(self.rate_per_s))
            .min(self.capacity_nano);
        let needed = u128::from(count) * NANO;
        if needed <= self.tokens_nano {
            self.tokens_nano -= needed;
            true
        } else {
            false
        }
    }
}

/// The server; see [`Server::start`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts accepting connections in the
    /// background. Returns once the socket listens.
    pub fn start(
        addr: SocketAddr,
        limits: Limits,
        handler: Arc<dyn Handler + Send + Sync>,
    ) -> Result<ServerHandle, ServerError> {
        Server::start_with_gate(addr, limits, handler, None)
    }

    /// [`Server::start`], with the gate that admits committee peers' TPM operations (attest,
    /// attest-key, activate) before the handler sees them. Without a gate every such request
    /// is refused.
    pub fn start_with_gate(
        addr: SocketAddr,
        limits: Limits,
        handler: Arc<dyn Handler + Send + Sync>,
        peer_gate: Option<PeerGate>,
    ) -> Result<ServerHandle, ServerError> {
        limits.validate()?;
        let listen_error = |source| ServerError::Listen { addr, source };
        let listener = TcpListener::bind(addr).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let shared = Arc::new(Shared {
            handler,
            peer_gate,
            limits,
            stopping: AtomicBool::new(false),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("bulwark-accept".to_owned())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .map_err(ServerError::Spawn)?;
        Ok(ServerHandle {
            local_addr,
            shared,
            accept: Some(accept),
        })
    }
}

/// A running server. Dropping it stops it, like [`ServerHandle::stop`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connections())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections().len()
    }

    /// Stops accepting, closes every connection and waits for all server threads to end. A
    /// request being handled finishes first; its answer may not reach the client.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // The accept loop does not panic; if it did, there is nothing left to stop there.
            let _ = accept.join();
        }
        // The accept thread is gone, so no connection is added after this.
        let connections: Vec<Connection> =
            self.shared.connections().drain().map(|(_, c)| c).collect();
        for connection in &connections {
            let _ = connection.stream.shutdown(Shutdown::Both);
        }
        for connection in connections {
            if let Some(thread) = connection.thread {
                // A handler panic ended that thread already; nothing to do about it here.
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Shared {
    handler: Arc<dyn Handler + Send + Sync>,
    /// Who may have TPM operations served (none without a gate).
    peer_gate: Option<PeerGate>,
    limits: Limits,
    stopping: AtomicBool,
    /// Open connections by id: a clone of the stream (for shutdown on stop) and the thread.
    connections: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections
            .lock()
            .expect("connection registry lock must not be poisoned: nothing panics holding it")
    }
}

struct Connection {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

/// Removes a connection from the registry when its thread ends, however it ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _peer)) => admit(stream, shared),
            // WouldBlock: nothing pending. Other errors (e.g. out of file descriptors) are
            // transient from here; back off the same way rather than spin.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn admit(stream: TcpStream, shared: &Arc<Shared>) {
    // Accepted sockets must block (with timeouts); do not rely on what they inherit.
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut connections = shared.connections();
    if connections.len() >= shared.limits.connections_max {
        drop(connections);
        refuse(
            stream,
            ErrorCode::Busy,
            "too many connections; try again later",
        );
        return;
    }
    let Ok(registered_stream) = stream.try_clone() else {
        drop(connections);
        refuse(stream, ErrorCode::Internal, "cannot set up the connection");
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    connections.insert(
        id,
        Connection {
            stream: registered_stream,
            thread: None,
        },
    );
    drop(connections);
    let thread_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("bulwark-client".to_owned())
        .spawn(move || {
            let _registered = Registered {
                shared: &thread_shared,
                id,
            };
            serve(stream, &thread_shared);
        });
    let mut connections = shared.connections();
    match spawned {
        Ok(thread) => {
            // If the connection already ended, its entry is gone and the thread is detached.
            if let Some(connection) = connections.get_mut(&id) {
                connection.thread = Some(thread);
            }
        }
        Err(_) => {
            if let Some(connection) = connections.remove(&id) {
                drop(connections);
                refuse(
                    connection.stream,
                    ErrorCode::Internal,
                    "cannot serve the connection",
                );
            }
        }
    }
}

/// Sends one error frame without blocking the caller for long, then closes.
fn refuse(mut stream: TcpStream, code: ErrorCode, message: &str) {
    let _ = stream.set_write_timeout(Some(REFUSE_WRITE_TIMEOUT));
    let _ = write_frame(&mut stream, &encode_error(code, message));
    let _ = stream.shutdown(Shutdown::Write);
}

/// Per-connection state that outlives one request.
struct Session {
    requests: TokenBucket,
    txs: TokenBucket,
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let limits = &shared.limits;
    let _ = stream.set_nodelay(true);
    if stream
        .set_write_timeout(Some(limits.write_timeout))
        .is_err()
    {
        return;
    }
    let now = Instant::now();
    let mut session = Session {
        requests: TokenBucket::new(limits.requests_per_s, limits.requests_burst, now),
        txs: TokenBucket::new(limits.txs_per_s, limits.txs_burst, now),
    };
    while !shared.stopping.load(Ordering::SeqCst) {
        // Wait for the first byte of the next frame, up to the idle timeout.
        if stream.set_read_timeout(Some(limits.idle_timeout)).is_err() {
            return;
        }
        match stream.peek(&mut [0u8; 1]) {
            Ok(0) | Err(_) => return, // closed, idle too long, or broken
            Ok(_) => {}
        }
        let mut reader = DeadlineReader {
            stream: &stream,
            deadline: Instant::now() + limits.frame_timeout,
        };
        let answer = match read_frame(&mut reader, limits.wire.frame_bytes_max) {
            Ok(frame) => respond(&frame, &mut session, shared),
            Err(WireError::EmptyFrame) => encode_error(
                ErrorCode::Malformed,
                "empty frame: a frame needs a kind byte",
            ),
            Err(error @ WireError::FrameTooLarge { .. }) => {
                let _ = write_frame(
                    &mut stream,
                    &encode_error(ErrorCode::TooLarge, &error.to_string()),
                );
                linger_close(&stream);
                return;
            }
            Err(WireError::Io(error)) if error.kind() == io::ErrorKind::TimedOut => {
                let message = "frame not received in time; closing";
                let _ = write_frame(&mut stream, &encode_error(ErrorCode::Malformed, message));
                return;
            }
            // Closed or cut mid-frame: nobody to answer, or no way to resync.
            Err(_) => return,
        };
        if write_frame(&mut stream, &answer).is_err() {
            return;
        }
    }
}

/// Decodes and answers one frame, as encoded bytes.
/// The [`ErrorCode::Refused`] answer carrying `refusal`'s text.
fn refused(refusal: &Refusal) -> Response {
    Response::Error {
        code: match refusal {
            Refusal::Busy => ErrorCode::RateLimited,
            _ => ErrorCode::Refused,
        },
        message: refusal.to_string(),
    }
}

/// The gate's decision on a peer operation, by this machine's clocks; no gate admits nobody.
fn admit_peer(gate: Option<&PeerGate>, auth: &PeerAuth, op: &PeerOp) -> Result<(), GateRefusal> {
    let Some(gate) = gate else {
        return Err(GateRefusal::NotAPeer(op.name()));
    };
    gate.admit(auth, op, crate::node::attest::now_ms(), Instant::now())
}

fn respond(frame: &Frame, session: &mut Session, shared: &Shared) -> Vec<u8> {
    let limits = &shared.limits;
    if !session.requests.try_take(1, Instant::now()) {
        return encode_error(ErrorCode::RateLimited, "rate limited: too many requests");
    }
    let request = match decode_request(frame, &limits.wire) {
        Ok(request) => request,
        Err(error) => return encode_error(ErrorCode::Malformed, &error.to_string()),
    };
    let handler = &shared.handler;
    let response = match request {
        Request::Submit(txs) => {
            let count = u64::try_from(txs.len()).unwrap_or(u64::MAX);
            if !session.txs.try_take(count, Instant::now()) {
                return encode_error(
                    ErrorCode::RateLimited,
                    "rate limited: too many transactions",
                );
            }
            Response::Submitted(handler.submit(txs))
        }
        Request::Status => Response::Status(Box::new(handler.status())),
        Request::Account(account) => match handler.account(account) {
            Ok(value) => Response::Account(Box::new(value)),
            Err(refusal) => refused(&refusal),
        },
        Request::Peer { auth, op } => {
            if let Err(refusal) = admit_peer(shared.peer_gate.as_ref(), &auth, &op) {
                let code = match refusal {
                    GateRefusal::RateLimited => ErrorCode::RateLimited,
                    _ => ErrorCode::Refused,
                };
                tracing::debug!(peer = %hex::encode(auth.peer), op = op.name(), %refusal, "peer operation refused");
                return encode_error(code, &refusal.to_string());
            }
            let answer = match op {
                PeerOp::Attest { nonce } => handler.attest(nonce).map(Response::Evidence),
                PeerOp::AttestKey => handler.attest_key().map(Response::AttestKey),
                PeerOp::Activate {
                    credential_blob,
                    encrypted_secret,
                } => handler
                    .activate(&credential_blob, &encrypted_secret)
                    .map(Response::Activated),
                PeerOp::AuditReport => handler.audit_report().map(Response::AuditReport),
            };
            answer.unwrap_or_else(|refusal| refused(&refusal))
        }
        Request::Affirm { candidate } => match handler.affirm(candidate) {
            Ok(affirmation) => Response::Affirmed(affirmation),
            Err(refusal) => refused(&refusal),
        },
        Request::Admit(admit) => match handler.admit(*admit) {
            Ok(()) => Response::AdmitHeld,
            Err(refusal) => refused(&refusal),
        },
        Request::Receipts {
            height,
            index,
            wait_ms,
        } => match handler.receipts(
            height,
            index,
            wait_ms.min(bulwark_api::answers::RECEIPTS_WAIT_MS_MAX),
        ) {
            Ok(value) => Response::Receipts(Box::new(value)),
            Err(refusal) => refused(&refusal),
        },
        Request::Withdrawals { from } => match handler.withdrawals(from) {
            Ok(value) => Response::Withdrawals(Box::new(value)),
            Err(refusal) => refused(&refusal),
        },
        Request::Book { instrument, depth } => {
            let depth = usize::try_from(depth).unwrap_or(usize::MAX);
            match handler.book(instrument, depth) {
                Ok(value) => Response::Book(value),
                Err(refusal) => refused(&refusal),
            }
        }
    };
    encode_response(&response, limits.wire.frame_bytes_max).unwrap_or_else(|error| {
        encode_error(
            ErrorCode::Internal,
            &format!("cannot encode the answer: {error}"),
        )
    })
}

/// Half-closes, then reads and discards a bounded amount for a bounded time before the socket is
/// dropped: closing with unread input makes the kernel send a reset, which can destroy the error
/// frame just written before the client reads it.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME_MAX;
    let mut reader = DeadlineReader { stream, deadline };
    let mut buf = [0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES_MAX {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
}

/// Reads from a stream, failing with `TimedOut` once `deadline` has passed, however the bytes
/// trickle in.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "frame deadline passed",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        match (&mut &*self.stream).read(buf) {
            // Linux reports a receive timeout as WouldBlock; say what it is.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "frame deadline passed",
            )),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn token_bucket_refills_at_its_rate_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!(bucket.try_take(3, start));
        assert!(!bucket.try_take(1, start));
        // 10 per second: one token per 100 ms.
        assert!(!bucket.try_take(1, start + Duration::from_millis(99)));
        assert!(bucket.try_take(1, start + Duration::from_millis(100)));
        // Long idle refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!(!bucket.try_take(4, later));
        assert!(bucket.try_take(3, later));
        // Time going backwards adds nothing.
        assert!(!bucket.try_take(1, start));
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limits::default().validate().is_ok());
        let bad = [
            Limits {
                connections_max: 0,
                ..Limits::default()
            },
            Limits {
                idle_timeout: Duration::ZERO,
                ..Limits::default()
            },
            Limits {
                txs_burst: 10,
                ..Limits::default()
            },
        ];
        for limits in bad {
            assert!(matches!(limits.validate(), Err(ServerError::BadLimits(_))));
        }
    }
}
