//! JSON-RPC 2.0 over WebSocket over TLS, in the manner of Deribit's API: one thread per
//! connection, like the FIX acceptor, sharing its places, budgets, credits, kill switch and
//! committee side ([`crate::acceptor::Shared`]).
//!
//! Before `public/auth`: the connection holds a pre-authentication place; TLS, the WebSocket
//! upgrade and the auth request must come within [`LOGON_DEADLINE`] and [`PREAUTH_BYTES`]
//! bytes in all, a message is at most [`jsonrpc::PREAUTH_BYTES_MAX`], and anything but
//! `public/auth`, `public/test`, `public/get_time` and the heartbeat methods closes the
//! connection. `public/auth` is the FIX logon in JSON: the same budgets, the same signed
//! payload under the account key `quorum` nodes give alike, the same trading session opened
//! in the committee with the session key the trader made. After it, orders, edits and cancels
//! are the committee's signed transactions, answered only with what `quorum` nodes report
//! finalized; reads (`get_open_orders`, `get_position`, `get_order_book`, the book channel)
//! are what `quorum` nodes answer alike. Cancel on disconnect is on unless the trader turns it
//! off.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_api::answers::{BookAnswer, InstrumentAnswer, ReceiptEvent as Event};
use bulwark_engine::command::{LimitOrder, SelfTradePrevention};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, OrderId, RejectReason, Side};
use bulwark_fix::logon::{LogonError, LogonRequest};
use ed25519_dalek::SigningKey;
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, Message, WebSocket};

use crate::acceptor::{self, now_ms, Places, Shared, Trading};
use crate::credits::{Class, SessionCredits};
use crate::jsonrpc::{self, code, Channel, Method, OrderKind, Request, RpcError};
use crate::orders::{Applied, OrderState};
use crate::upstream::{self, Outcome, Verdict};

/// TLS, the upgrade and `public/auth` must all arrive within this.
pub const LOGON_DEADLINE: Duration = Duration::from_secs(2);
/// Bytes a connection may send before its auth is answered (TLS included).
pub const PREAUTH_BYTES: u64 = 32 * 1024;
/// How long a read waits before the loop looks at timers and outcomes, logged on.
const READ_POLL: Duration = Duration::from_millis(5);
/// The same before logon.
const READ_POLL_PREAUTH: Duration = Duration::from_millis(50);
/// How long a write may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of answers waiting for a client that reads slowly, at most.
const WRITE_BUFFER_MAX: usize = 4 << 20;
/// How long an agreed read waits for `quorum` alike answers.
const READ_WAIT: Duration = Duration::from_millis(1200);
/// How often the book watcher asks the nodes for a wanted book.
const BOOK_EVERY: Duration = Duration::from_millis(100);
/// A book nobody asked for within this is no longer watched.
const BOOK_WANTED_FOR: Duration = Duration::from_secs(10);
/// Books watched at once, at most.
const BOOKS_MAX: usize = 64;
/// Cancels in flight per connection (they are never refused for credit; this bounds memory).
const CANCELS_IN_FLIGHT_MAX: usize = 1024;
/// Mass cancels in flight per connection.
const MASS_CANCELS_IN_FLIGHT_MAX: usize = 4;
/// Live orders a connection tracks.
const ORDERS_KEPT: usize = 100_000;
/// How many slots an auth tries when the one it picked is taken.
const SLOT_TRIES: u32 = 4;
/// How many times the kill switch's mass cancel is sent again when it is not taken.
const KILL_CANCEL_TRIES: u32 = 5;
/// A logged-on connection silent this long is pinged (WebSocket Ping; clients answer Pong).
const PING_AFTER: Duration = Duration::from_secs(10);
/// A logged-on connection silent this long is closed (its orders cancelled unless cancel on
/// disconnect is off), so a half-open connection does not keep its orders and identity.
const SILENT_MAX: Duration = Duration::from_secs(30);

/// The books `book.*` subscribers (and FIX market data subscriptions) want, as `quorum` nodes
/// give them alike, read by one watcher thread for all connections.
#[derive(Default)]
pub(crate) struct Books {
    entries: Mutex<HashMap<u32, BookEntry>>,
}

#[derive(Default)]
struct BookEntry {
    wanted: Option<Instant>,
    /// Bumped whenever the agreed book changes.
    version: u64,
    book: Option<(BookAnswer, u64)>,
}

impl Books {
    /// Marks `instrument` wanted; false when too many books are watched already.
    pub(crate) fn want(&self, instrument: u32) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(&instrument) && entries.len() >= BOOKS_MAX {
            return false;
        }
        entries.entry(instrument).or_default().wanted = Some(Instant::now());
        true
    }

    /// The latest agreed book of `instrument`, its version and when it was read (Unix ms).
    pub(crate) fn latest(&self, instrument: u32) -> Option<(u64, BookAnswer, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&instrument)?;
        let (book, at) = entry.book.clone()?;
        Some((entry.version, book, at))
    }

    /// A book a session read for itself (`book.height` set): it replaces the watcher's copy
    /// when it is newer, so what the watcher shows next is never older than what that session
    /// was sent.
    pub(crate) fn offer(&self, instrument: u32, book: BookAnswer) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(&instrument) {
            Self::store(entry, book);
        }
    }

    /// Keeps `book` (its height set) unless the entry holds a newer one; the version changes
    /// with the book's content, not with its height alone.
    fn store(entry: &mut BookEntry, book: BookAnswer) {
        if let Some((shown, _)) = &entry.book {
            if shown.height > book.height {
                return;
            }
            let mut a = shown.clone();
            a.height = book.height;
            if a != book {
                entry.version += 1;
            }
        } else {
            entry.version += 1;
        }
        entry.book = Some((book, now_ms()));
    }

    /// Reads every wanted book every [`BOOK_EVERY`] until `stop`.
    pub(crate) fn watch(
        &self,
        upstream: &upstream::Upstream,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let wanted: Vec<u32> = {
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries.retain(|_, e| e.wanted.is_some_and(|w| w.elapsed() < BOOK_WANTED_FOR));
                entries.keys().copied().collect()
            };
            for instrument in wanted {
                // Never older than the book already shown (a quorum of lagging nodes cannot
                // move it back).
                let floor = {
                    let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                    let book = entries.get(&instrument).and_then(|e| e.book.as_ref());
                    book.map_or(0, |(b, _)| b.height)
                };
                let read = upstream.agreed_at(READ_WAIT, floor, move |client| {
                    upstream::book_at(client, InstrumentId(instrument), jsonrpc::BOOK_DEPTH_MAX)
                });
                let Some((height, mut book)) = read else {
                    continue;
                };
                book.height = height;
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = entries.get_mut(&instrument) {
                    Self::store(entry, book);
                }
            }
            std::thread::sleep(BOOK_EVERY.saturating_sub(started.elapsed()));
        }
    }
}

/// The socket under TLS, counting what a stranger sends and when: over its byte budget or
/// past its deadline, reads and writes fail, even inside rustls's and tungstenite's own loops
/// (which would otherwise go on for as long as a peer trickles bytes); a write also fails past
/// `write_by` (the socket's own timeout restarts on every byte a slow reader takes).
struct Budgeted {
    stream: TcpStream,
    left: u64,
    until: Option<Instant>,
    write_by: Option<Instant>,
}

fn past(at: Option<Instant>) -> bool {
    at.is_some_and(|at| Instant::now() >= at)
}

impl Read for Budgeted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(
                "more bytes before public/auth than a logon needs",
            ));
        }
        if past(self.until) {
            return Err(std::io::Error::other("no public/auth in time"));
        }
        let most = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.stream.read(&mut buf[..most])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl Write for Budgeted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if past(self.until) || past(self.write_by) {
            return Err(std::io::Error::other("the client does not read in time"));
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

type Stream = rustls::StreamOwned<rustls::ServerConnection, Budgeted>;

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn ws_config(message_max: usize) -> WebSocketConfig {
    let mut config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_BUFFER_MAX)
        .max_message_size(Some(message_max));
    config.max_frame_size = Some(message_max);
    config
}

/// Serves one WebSocket connection (the accept loop's [`acceptor::Serve`]).
pub(crate) fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, places: Places) {
    let started = Instant::now();
    let Some(tls) = shared.tls.clone() else {
        return;
    };
    let configured = stream.set_nodelay(true).is_ok()
        && stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok()
        && stream.set_read_timeout(Some(READ_POLL_PREAUTH)).is_ok();
    let closed = |why: &dyn std::fmt::Display| {
        debug!(%peer, reason = %why, "WebSocket connection closed before logon");
        shared
            .counters
            .closed_before_logon
            .fetch_add(1, Ordering::Relaxed);
    };
    // The handshake budgets (the address's, then the gateway's) before any TLS work.
    if shared.credits.handshake(peer.ip()).is_err() {
        shared
            .counters
            .handshakes_over_budget
            .fetch_add(1, Ordering::Relaxed);
        return closed(&"over the TLS handshake budget");
    }
    let connection = match rustls::ServerConnection::new(tls) {
        Ok(connection) => connection,
        Err(e) => return closed(&e),
    };
    if !configured {
        return closed(&"cannot set the socket's options");
    }
    let mut budgeted = Budgeted {
        stream,
        left: PREAUTH_BYTES,
        until: Some(started + LOGON_DEADLINE),
        write_by: None,
    };
    let mut connection = connection;
    let in_time = || started.elapsed() < LOGON_DEADLINE && !shared.stop.load(Ordering::Relaxed);
    // TLS first, on its own (each phase says for itself when it runs out of time), then the
    // WebSocket upgrade over it.
    while connection.is_handshaking() {
        match connection.complete_io(&mut budgeted) {
            Ok(_) => {}
            Err(e) if would_block(&e) && in_time() => {}
            Err(e) if would_block(&e) => {
                return closed(&"the TLS handshake took longer than the logon deadline")
            }
            Err(e) => return closed(&format!("TLS: {e}")),
        }
    }
    let tls_done = started.elapsed();
    let stream = rustls::StreamOwned::new(connection, budgeted);
    let config = ws_config(jsonrpc::PREAUTH_BYTES_MAX);
    let mut attempt = tungstenite::accept_with_config(stream, Some(config));
    let ws = loop {
        match attempt {
            Ok(ws) => break ws,
            Err(HandshakeError::Interrupted(mid)) if in_time() => {
                attempt = mid.handshake();
            }
            Err(HandshakeError::Interrupted(mid)) => {
                let tls = &mid.get_ref().get_ref().conn;
                let why = format!(
                    "no WebSocket upgrade within the logon deadline (TLS done after {} ms; {} plaintext bytes waiting)",
                    tls_done.as_millis(),
                    if tls.wants_read() { "no" } else { "some" }
                );
                return closed(&why);
            }
            Err(HandshakeError::Failure(e)) => return closed(&format!("upgrade: {e}")),
        }
    };
    let mut connection = WsConnection {
        ws,
        peer,
        shared,
        places,
        started,
        outcomes: channel(),
        in_flight: HashMap::new(),
        late: upstream::Late::default(),
        cancels_in_flight: 0,
        opening: None,
        identity: None,
        trading: None,
        orders: HashMap::new(),
        credits: SessionCredits::new(&crate::config::Limits::default()),
        kill_seen: u64::MAX,
        killed: false,
        cancel_on_disconnect: true,
        heartbeat: None,
        channels: HashSet::new(),
        books_seen: HashMap::new(),
        outbox: Vec::new(),
        close_after_send: false,
        heard: Instant::now(),
        pinged: None,
        tape_seen: 0,
    };
    connection.credits = SessionCredits::new(&connection.shared.config.limits);
    connection.run();
}

/// What a transaction in flight was for, and the request it answers.
enum Pending {
    Auth {
        id: Value,
        logon: LogonRequest,
        tries: u32,
    },
    New {
        id: Value,
        order: OrderState,
        kind: OrderKind,
    },
    Edit {
        id: Value,
        order_id: u64,
        qty: i64,
    },
    Cancel {
        id: Value,
        order_id: u64,
    },
    CancelAll {
        id: Value,
    },
    Kill(u32),
    /// The session's heartbeat to the committee ([`acceptor::Trading::heartbeat`]); whether it
    /// disarms.
    Heartbeat {
        disarm: bool,
    },
}

/// The heartbeat the trader asked for: its interval, when the last test request went out,
/// and whether it is still unanswered.
struct Heartbeat {
    every: Duration,
    sent: Instant,
    unanswered: bool,
}

struct WsConnection {
    ws: WebSocket<Stream>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    places: Places,
    started: Instant,
    outcomes: (Sender<Verdict>, Receiver<Verdict>),
    in_flight: HashMap<u64, Pending>,
    /// New orders whose verdict expired (by nonce): a late verdict is notified on the user's
    /// order channels (the request was already answered UNKNOWN_OUTCOME).
    late: upstream::Late<(OrderState, OrderKind)>,
    cancels_in_flight: usize,
    opening: Option<(SigningKey, AccountId)>,
    identity: Option<(u64, String)>,
    trading: Option<Trading>,
    /// Live orders acknowledged to this connection, by the engine's id.
    orders: HashMap<u64, (OrderState, OrderKind)>,
    credits: SessionCredits,
    kill_seen: u64,
    killed: bool,
    cancel_on_disconnect: bool,
    heartbeat: Option<Heartbeat>,
    channels: HashSet<Channel>,
    books_seen: HashMap<(u32, u32), u64>,
    outbox: Vec<String>,
    close_after_send: bool,
    /// When the client last sent anything, and when it was last pinged.
    heard: Instant,
    pinged: Option<Instant>,
    /// The last trade on the gateway's tape this connection looked at.
    tape_seen: u64,
}

impl WsConnection {
    fn run(&mut self) {
        let reason = loop {
            if self.places.preauth() && self.trading.is_some() {
                self.logged_on();
            }
            if self.trading.is_none()
                && self.opening.is_none()
                && self.started.elapsed() >= LOGON_DEADLINE
            {
                break "no public/auth in time".to_string();
            }
            if let Some(why) = self.keep_alive() {
                break why.to_string();
            }
            let read = self.ws.read();
            if read.is_ok() {
                self.heard = Instant::now();
            }
            match read {
                Ok(Message::Text(text)) => self.on_text(text.as_str()),
                Ok(Message::Binary(_)) => {
                    let e = RpcError::new(code::PARSE, "requests are text messages");
                    self.answer_error(&Value::Null, &e);
                    self.close_after_send = true;
                }
                Ok(Message::Close(_)) => break "closed by the peer".to_string(),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if would_block(&e) => {}
                Err(e) => break e.to_string(),
            }
            while let Ok(verdict) = self.outcomes.1.try_recv() {
                self.on_outcome(verdict);
            }
            self.watch_kill_switch();
            if let Some(command) = self
                .trading
                .as_mut()
                .and_then(|t| t.heartbeat(self.cancel_on_disconnect))
            {
                let disarm = command == ClientCommand::SessionHeartbeat { within_ms: 0 };
                self.submit(
                    command,
                    upstream::Class::Protected,
                    Pending::Heartbeat { disarm },
                );
            }
            self.push_books();
            self.watch_tape();
            if let Some(why) = self.tick_heartbeat() {
                break why.to_string();
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                let _ = self.flush();
                let _ = self.ws.close(None);
                let _ = self.ws.flush();
                break "gateway shutting down".to_string();
            }
            if let Err(e) = self.flush() {
                break e;
            }
            if self.close_after_send {
                let _ = self.ws.close(None);
                let _ = self.ws.flush();
                break "closed after an error".to_string();
            }
        };
        if self.trading.is_none() {
            self.shared
                .counters
                .closed_before_logon
                .fetch_add(1, Ordering::Relaxed);
            debug!(peer = %self.peer, %reason, "WebSocket connection closed before logon");
        } else {
            info!(peer = %self.peer, %reason, "WebSocket session ended");
        }
        self.end(&reason);
    }

    /// Pings a logged-on client that went quiet and gives up on one silent for
    /// [`SILENT_MAX`].
    fn keep_alive(&mut self) -> Option<&'static str> {
        self.trading.as_ref()?;
        let quiet = self.heard.elapsed();
        if quiet >= SILENT_MAX {
            return Some("the client was silent for 30 s (no answer to pings)");
        }
        if quiet >= PING_AFTER && self.pinged.is_none_or(|at| at.elapsed() >= PING_AFTER) {
            self.pinged = Some(Instant::now());
            self.ws.get_mut().sock.write_by = Some(Instant::now() + WRITE_TIMEOUT);
            let pinged = self.ws.write(Message::Ping(Default::default()));
            self.ws.get_mut().sock.write_by = None;
            if pinged.is_err() {
                return Some("cannot ping the client");
            }
        }
        None
    }

    /// Leaves the pre-authentication place and the stranger's bounds.
    fn logged_on(&mut self) {
        self.places.leave_preauth();
        self.heard = Instant::now();
        self.ws.get_mut().sock.left = u64::MAX;
        self.ws.get_mut().sock.until = None;
        let _ = self
            .ws
            .get_ref()
            .sock
            .stream
            .set_read_timeout(Some(READ_POLL));
        self.ws
            .set_config(|c| *c = ws_config(jsonrpc::REQUEST_BYTES_MAX));
    }

    fn flush(&mut self) -> Result<(), String> {
        // Everything this turn writes must be taken within WRITE_TIMEOUT in all.
        self.ws.get_mut().sock.write_by = Some(Instant::now() + WRITE_TIMEOUT);
        for text in std::mem::take(&mut self.outbox) {
            self.ws
                .write(Message::text(text))
                .map_err(|e| format!("cannot write: {e}"))?;
        }
        let flushed = self.ws.flush();
        self.ws.get_mut().sock.write_by = None;
        match flushed {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if would_block(&e) => {
                Err("the client stopped reading".to_string())
            }
            Err(e) => Err(format!("cannot write: {e}")),
        }
    }

    /// Cancel on disconnect (unless turned off) and the session closed, and the identity given
    /// back (once; `Drop` calls it too).
    fn end(&mut self, why: &str) {
        let opening = self.opening.take().and_then(|(key, id)| {
            let nonce = self
                .in_flight
                .iter()
                .find_map(|(n, w)| matches!(w, Pending::Auth { .. }).then_some(*n))?;
            Some((key, id, nonce))
        });
        acceptor::end_trading(
            &self.shared,
            self.peer,
            opening,
            &self.outcomes.1,
            self.trading.take(),
            self.cancel_on_disconnect,
            why,
        );
        if let Some(identity) = self.identity.take() {
            acceptor::give_identity(&self.shared, &identity);
        }
    }

    fn answer(&mut self, id: &Value, result: Value) {
        self.outbox.push(jsonrpc::result(id, result));
    }

    fn answer_error(&mut self, id: &Value, error: &RpcError) {
        self.outbox.push(jsonrpc::error(id, error));
    }

    fn on_text(&mut self, text: &str) {
        let preauth = self.trading.is_none();
        let request = match jsonrpc::parse(text) {
            Ok(request) => request,
            Err((id, error)) => {
                self.answer_error(&id, &error);
                // A stranger's malformed request ends the connection; a trader's costs a query
                // credit, and when those are spent, the connection.
                if preauth || !self.spend(Class::Query) {
                    self.close_after_send = true;
                }
                return;
            }
        };
        let id = request.id.clone();
        if preauth
            && !matches!(
                request.method,
                Method::Auth
                    | Method::Test
                    | Method::GetTime
                    | Method::SetHeartbeat
                    | Method::DisableHeartbeat
            )
        {
            let e = RpcError::new(
                code::UNAUTHORIZED,
                "public/auth first (this gateway serves every other method to logged-on sessions only)",
            );
            self.answer_error(&id, &e);
            self.close_after_send = true;
            return;
        }
        if let Err(error) = self.dispatch(request) {
            if preauth {
                self.close_after_send = true;
            }
            self.answer_error(&id, &error);
        }
    }

    /// Spends a credit of `class`; false (counted) when it is spent.
    fn spend(&mut self, class: Class) -> bool {
        let account = self.trading.as_ref().map_or(0, |t| t.account);
        let admitted = self.credits.admit(class, account, &self.shared.credits);
        if !admitted {
            let counter = match class {
                Class::Query => &self.shared.counters.queries_throttled,
                _ => &self.shared.counters.orders_throttled,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Whether a new order or an edit is within the in-flight bound and its credits.
    fn within_credit(&mut self, class: Class) -> bool {
        let orders_in_flight = self.in_flight.len().saturating_sub(self.cancels_in_flight);
        if orders_in_flight >= self.shared.config.limits.in_flight_max {
            self.shared
                .counters
                .orders_throttled
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.spend(class)
    }

    fn dispatch(&mut self, request: Request) -> Result<(), RpcError> {
        let Request { id, method, params } = request;
        // Every method but the logon (which has its budgets) and those that spend credits of
        // their own class costs a query credit.
        let own_class = matches!(
            method,
            Method::Auth
                | Method::Buy
                | Method::Sell
                | Method::Edit
                | Method::Cancel
                | Method::CancelAll
                | Method::CancelAllByInstrument
                | Method::GetOpenOrders
                | Method::GetPosition
                | Method::GetOrderBook
        );
        if !own_class && !self.spend(Class::Query) {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "rate limit: request refused",
            ));
        }
        match method {
            Method::Auth => self.auth(id, &params),
            Method::Buy => self.new_order(id, &params, Side::Buy),
            Method::Sell => self.new_order(id, &params, Side::Sell),
            Method::Edit => self.edit(id, &params),
            Method::Cancel => self.cancel(id, &params),
            Method::CancelAll => self.cancel_all(id, None),
            Method::CancelAllByInstrument => {
                let instruments = self.shared.upstream.instruments();
                let instrument = jsonrpc::instrument(&instruments, &params)?;
                self.cancel_all(id, Some(InstrumentId(instrument.id)))
            }
            Method::GetOpenOrders => self.open_orders(id, &params),
            Method::GetPosition => self.position(id, &params),
            Method::GetOrderBook => self.order_book(id, &params),
            Method::Subscribe => self.subscribe(id, &params),
            Method::Unsubscribe => {
                let names: Vec<String> = jsonrpc::channels(&params)?
                    .into_iter()
                    .filter(|c| self.channels.remove(c))
                    .map(|c| c.name())
                    .collect();
                // A later subscription starts with a snapshot again.
                self.books_seen.clear();
                self.answer(&id, json!(names));
                Ok(())
            }
            Method::EnableCancelOnDisconnect | Method::DisableCancelOnDisconnect => {
                self.cancel_on_disconnect = method == Method::EnableCancelOnDisconnect;
                self.answer(&id, json!("ok"));
                Ok(())
            }
            Method::SetHeartbeat => {
                let every = Duration::from_secs(jsonrpc::heartbeat_interval(&params)?);
                self.heartbeat = Some(Heartbeat {
                    every,
                    sent: Instant::now(),
                    unanswered: false,
                });
                self.answer(&id, json!("ok"));
                Ok(())
            }
            Method::DisableHeartbeat => {
                self.heartbeat = None;
                self.answer(&id, json!("ok"));
                Ok(())
            }
            Method::Test => {
                if let Some(h) = &mut self.heartbeat {
                    h.unanswered = false;
                }
                self.answer(&id, json!({"version": env!("CARGO_PKG_VERSION")}));
                Ok(())
            }
            Method::GetTime => {
                self.answer(&id, json!(now_ms()));
                Ok(())
            }
        }
    }

    /// A test request every interval; a connection that leaves one unanswered for a whole
    /// interval is closed (its orders cancelled unless cancel on disconnect is off).
    fn tick_heartbeat(&mut self) -> Option<&'static str> {
        let h = self.heartbeat.as_mut()?;
        if h.sent.elapsed() < h.every {
            return None;
        }
        if h.unanswered {
            return Some("the heartbeat's test request went unanswered");
        }
        h.sent = Instant::now();
        h.unanswered = true;
        self.outbox.push(jsonrpc::test_request());
        None
    }

    fn auth(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        if self.trading.is_some() || self.opening.is_some() {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "this connection is authenticated (or authenticating) already",
            ));
        }
        let p = jsonrpc::auth_params(params)?;
        let refused = |text: String| RpcError::new(code::AUTH_REFUSED, text);
        let now = now_ms();
        let window = bulwark_engine::session::LOGON_WINDOW_MS;
        if p.timestamp_ms.abs_diff(now) > window {
            return Err(refused(format!(
                "timestamp must be within {window} ms of the gateway's clock"
            )));
        }
        let logon = LogonRequest {
            sender: p.client_id,
            target: self.shared.config.comp_id.clone(),
            sending_time: p.timestamp_ms.to_string(),
            sending_time_ms: p.timestamp_ms,
            account: p.account,
            nonce: p.nonce,
            session_seed: p.session_seed,
            signature: p.signature,
            heartbeat_s: 0,
            reset: false,
            msg_seq_num: 1,
        };
        acceptor::check_logon(&self.shared, self.peer.ip(), &logon)
            .map_err(|e| refused(e.to_string()))?;
        let identity = acceptor::take_identity(&self.shared, &logon).ok_or_else(|| {
            refused("this account and client_id are logged on already".to_string())
        })?;
        self.identity = Some(identity);
        // The committee has the engine's logon window to open the session; nothing more may
        // be read from the stranger meanwhile than its byte budget allows.
        let window = Duration::from_millis(bulwark_engine::session::LOGON_WINDOW_MS);
        self.ws.get_mut().sock.until = Some(self.started + LOGON_DEADLINE + window);
        let key = SigningKey::from_bytes(&logon.session_seed);
        self.open_session(id, logon, key, 0)
    }

    fn open_session(
        &mut self,
        id: Value,
        logon: LogonRequest,
        key: SigningKey,
        tries: u32,
    ) -> Result<(), RpcError> {
        let Some((tx, acting)) = acceptor::grant_tx(&self.shared, &logon, &key) else {
            return Err(RpcError::new(
                code::AUTH_REFUSED,
                LogonError::Signature.to_string(),
            ));
        };
        self.shared
            .upstream
            .submit(&tx, upstream::Class::Sheddable, self.outcomes.0.clone());
        self.opening = Some((key, acting));
        self.in_flight
            .insert(tx.nonce, Pending::Auth { id, logon, tries });
        Ok(())
    }

    /// Signs `command` with the session key and submits it.
    fn submit(&mut self, command: ClientCommand, class: upstream::Class, what: Pending) {
        let Some(t) = self.trading.as_mut() else {
            return;
        };
        let nonce = t.next_nonce;
        t.next_nonce += 1;
        let tx = bulwark_engine::codec::SignedTx::sign(t.id, nonce, command, &t.key);
        if matches!(what, Pending::Cancel { .. }) {
            self.cancels_in_flight += 1;
        }
        self.in_flight.insert(nonce, what);
        self.shared
            .upstream
            .submit(&tx, class, self.outcomes.0.clone());
    }

    fn new_order(
        &mut self,
        id: Value,
        params: &Map<String, Value>,
        side: Side,
    ) -> Result<(), RpcError> {
        if self.killed {
            self.shared
                .counters
                .orders_killed
                .fetch_add(1, Ordering::Relaxed);
            return Err(RpcError::new(
                code::KILLED,
                "the kill switch is engaged for this account (cancels are still taken)",
            ));
        }
        if self.orders.len() >= ORDERS_KEPT {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "too many live orders in this session",
            ));
        }
        let instruments = self.shared.upstream.instruments();
        let p = jsonrpc::order_params(&instruments, params)?;
        if !self.within_credit(Class::Order) {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "rate limit: order refused (cancels are always taken)",
            ));
        }
        let nonce = self.trading.as_ref().map_or(0, |t| t.next_nonce);
        let instrument = InstrumentId(p.instrument.id);
        let command = match p.kind {
            OrderKind::Limit => ClientCommand::Limit(LimitOrder {
                instrument,
                side,
                price: p.price,
                qty: p.qty,
                tif: p.tif,
                post_only: p.post_only,
                reduce_only: p.reduce_only,
                stp: SelfTradePrevention::default(),
                client_order_id: nonce,
            }),
            OrderKind::Market => ClientCommand::Market {
                instrument,
                side,
                qty: p.qty,
                reduce_only: p.reduce_only,
                client_order_id: nonce,
            },
        };
        let order = OrderState {
            cl_ord_id: p.label,
            order_id: None,
            instrument: p.instrument,
            side,
            qty: p.qty,
            filled: 0,
            filled_value: 0,
            price: p.price,
            status: "A",
        };
        let what = Pending::New {
            id,
            order,
            kind: p.kind,
        };
        self.submit(command, upstream::Class::Sheddable, what);
        Ok(())
    }

    /// A live order of this session, or why not.
    fn live_order(&self, order_id: u64) -> Result<(OrderState, OrderKind), RpcError> {
        let (order, kind) = self.orders.get(&order_id).cloned().ok_or_else(|| {
            RpcError::new(
                code::ORDER_NOT_FOUND,
                "no live order of this session has that order_id",
            )
        })?;
        if self.changing(order_id) {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "a cancel or edit of this order is already in flight",
            ));
        }
        Ok((order, kind))
    }

    fn changing(&self, order_id: u64) -> bool {
        self.in_flight.values().any(|w| {
            matches!(w, Pending::Cancel { order_id: o, .. } | Pending::Edit { order_id: o, .. } if *o == order_id)
        })
    }

    fn edit(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let order_id = jsonrpc::order_id(params)?;
        let (order, kind) = self.live_order(order_id)?;
        if kind == OrderKind::Market {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "only a limit order can be edited",
            ));
        }
        if self.killed {
            return Err(RpcError::new(
                code::KILLED,
                "the kill switch is engaged for this account",
            ));
        }
        let (qty, price) = jsonrpc::edit_params(&order.instrument, params)?;
        // The credit first: the read below asks every node.
        if !self.within_credit(Class::Modify) {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "rate limit: edit refused (cancels are always taken)",
            ));
        }
        // The lots filled so far as the committee's state shows them (fills as a maker
        // included): the order's total less what rests.
        let resting = acceptor::resting_lots(&self.shared, self.trading.as_mut(), order_id)
            .map_err(|()| {
                RpcError::new(
                    code::UNAVAILABLE,
                    "the nodes did not agree on the order's size in time; ask again",
                )
            })?
            .ok_or_else(|| RpcError::new(code::ORDER_NOT_FOUND, "the order no longer rests"))?;
        let filled = order.filled.max(order.qty - resting.clamp(0, order.qty));
        let remaining = qty - filled;
        if remaining <= 0 {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "amount must exceed the amount already filled",
            ));
        }
        let command = ClientCommand::Amend {
            instrument: InstrumentId(order.instrument.id),
            order_id: OrderId(order_id),
            price,
            qty: remaining,
            // Refused (AmendStale) if it filled after the read: never more resting than asked.
            expect_qty: Some(resting),
        };
        let what = Pending::Edit { id, order_id, qty };
        self.submit(command, upstream::Class::Sheddable, what);
        Ok(())
    }

    fn cancel(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let order_id = jsonrpc::order_id(params)?;
        let (order, _) = self.live_order(order_id)?;
        if self.cancels_in_flight >= CANCELS_IN_FLIGHT_MAX {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "too many cancels in flight in this session; wait for their answers",
            ));
        }
        self.shared.counters.cancels.fetch_add(1, Ordering::Relaxed);
        let command = ClientCommand::Cancel {
            instrument: InstrumentId(order.instrument.id),
            order_id: OrderId(order_id),
        };
        self.submit(
            command,
            upstream::Class::Protected,
            Pending::Cancel { id, order_id },
        );
        Ok(())
    }

    fn cancel_all(&mut self, id: Value, instrument: Option<InstrumentId>) -> Result<(), RpcError> {
        let mass = self
            .in_flight
            .values()
            .filter(|w| matches!(w, Pending::CancelAll { .. } | Pending::Kill(_)))
            .count();
        if mass >= MASS_CANCELS_IN_FLIGHT_MAX {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "mass cancels already in flight will cancel these orders",
            ));
        }
        self.shared.counters.cancels.fetch_add(1, Ordering::Relaxed);
        let command = ClientCommand::MassCancel { instrument };
        self.submit(
            command,
            upstream::Class::Protected,
            Pending::CancelAll { id },
        );
        Ok(())
    }

    fn account(&mut self) -> Result<bulwark_api::answers::AccountAnswer, RpcError> {
        if !self.spend(Class::Query) {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "rate limit: query refused",
            ));
        }
        let Some(trading) = self.trading.as_mut() else {
            return Err(RpcError::new(code::UNAUTHORIZED, "log on first"));
        };
        let account = AccountId(trading.account);
        // Only answers at or above what the session has seen vote: an order it was told is
        // open is in every answer counted.
        let (height, answer) = self
            .shared
            .upstream
            .agreed_at(READ_WAIT, trading.seen_height, move |client| {
                upstream::account_at(client, account)
            })
            .ok_or_else(|| {
                RpcError::new(
                    code::UNAVAILABLE,
                    "the nodes did not give the same answer in time; ask again",
                )
            })?;
        trading.saw(height);
        Ok(answer)
    }

    fn open_orders(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let instruments = self.shared.upstream.instruments();
        let only = match params.get("instrument_name") {
            None => None,
            Some(_) => Some(jsonrpc::instrument(&instruments, params)?.id),
        };
        let answer = self.account()?;
        let now = now_ms();
        let list: Vec<Value> = answer
            .open_orders
            .iter()
            .filter(|o| only.is_none_or(|i| i == o.instrument))
            .filter_map(|o| {
                let instrument = instruments.iter().find(|i| i.id == o.instrument)?;
                // This session's own orders keep their label and kind; price and what rests are
                // the committee's (fills as a maker included).
                if let Some((mine, kind)) = self.orders.get(&o.order_id) {
                    let mut order = mine.clone();
                    order.price = o.price;
                    order.filled = (order.qty - o.qty).max(0);
                    order.status = if order.filled > 0 { "1" } else { "0" };
                    return Some(jsonrpc::order_json(&order, *kind, now));
                }
                let order = OrderState {
                    cl_ord_id: String::new(),
                    order_id: Some(o.order_id),
                    instrument: instrument.clone(),
                    side: o.side,
                    qty: o.qty,
                    filled: 0,
                    filled_value: 0,
                    price: o.price,
                    status: "0",
                };
                Some(jsonrpc::order_json(&order, OrderKind::Limit, now))
            })
            .collect();
        self.answer(&id, json!(list));
        Ok(())
    }

    fn position(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let instruments = self.shared.upstream.instruments();
        let instrument = jsonrpc::instrument(&instruments, params)?.clone();
        let answer = self.account()?;
        let (size, cost) = match answer
            .positions
            .iter()
            .find(|p| p.instrument == instrument.id)
        {
            None => (0, 0i128),
            Some(p) => {
                let cost = p.cost_micros.parse::<i128>().map_err(|_| {
                    RpcError::new(
                        code::UNAVAILABLE,
                        "the nodes gave a position cost that is not a number",
                    )
                })?;
                (p.qty, cost)
            }
        };
        let direction = match size.signum() {
            1 => "buy",
            -1 => "sell",
            _ => "zero",
        };
        // Entry price per lot, in ticks: cost (micros) / lots / tick (micros).
        let ticks = cost
            .checked_div(i128::from(size))
            .and_then(|per_lot| per_lot.checked_div(i128::from(instrument.tick_size_micros)))
            .and_then(|t| i64::try_from(t.checked_abs()?).ok());
        let average = match ticks {
            Some(t) if size != 0 => jsonrpc::price_json(&instrument, t),
            _ => json!(0),
        };
        let result = json!({
            "instrument_name": instrument.symbol,
            "size": size,
            "direction": direction,
            "average_price": average,
            "cost_micros": cost.to_string(),
        });
        self.answer(&id, result);
        Ok(())
    }

    fn order_book(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let instruments = self.shared.upstream.instruments();
        let instrument = jsonrpc::instrument(&instruments, params)?.clone();
        let depth = jsonrpc::depth(params)?;
        if !self.spend(Class::Query) {
            return Err(RpcError::new(
                code::TOO_MANY_REQUESTS,
                "rate limit: query refused",
            ));
        }
        // A fresh agreed read at or above the session's seen height, never the watcher's
        // copy: the book answered must show what this session had finalized before it asked.
        let which = InstrumentId(instrument.id);
        let floor = self.trading.as_ref().map_or(0, |t| t.seen_height);
        let (height, book) = self
            .shared
            .upstream
            .agreed_at(READ_WAIT, floor, move |client| {
                upstream::book_at(client, which, depth)
            })
            .ok_or_else(|| {
                RpcError::new(
                    code::UNAVAILABLE,
                    "the nodes did not give the same book in time; ask again",
                )
            })?;
        if let Some(trading) = self.trading.as_mut() {
            trading.saw(height);
        }
        self.answer(&id, book_json(&instrument, &book, depth, now_ms()));
        Ok(())
    }

    fn subscribe(&mut self, id: Value, params: &Map<String, Value>) -> Result<(), RpcError> {
        let channels = jsonrpc::channels(params)?;
        let instruments = self.shared.upstream.instruments();
        for channel in &channels {
            let name = match channel {
                Channel::Book { instrument, .. } | Channel::Trades { instrument } => {
                    Some(instrument)
                }
                Channel::UserOrders { instrument } => instrument.as_ref(),
            };
            if let Some(name) = name {
                if !instruments.iter().any(|i| &i.symbol == name) {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        format!("unknown instrument {name:?}"),
                    ));
                }
            }
        }
        if self.channels.len() + channels.len() > jsonrpc::CHANNELS_MAX {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("at most {} channels per connection", jsonrpc::CHANNELS_MAX),
            ));
        }
        let names: Vec<String> = channels.iter().map(Channel::name).collect();
        for channel in channels {
            if let Channel::Book { instrument, .. } = &channel {
                let Some(i) = instruments.iter().find(|i| &i.symbol == instrument) else {
                    continue;
                };
                if !self.shared.books.want(i.id) {
                    return Err(RpcError::new(
                        code::UNAVAILABLE,
                        "the gateway watches as many books as it can",
                    ));
                }
            }
            self.channels.insert(channel);
        }
        self.answer(&id, json!(names));
        Ok(())
    }

    /// Each subscribed book whose agreed version changed since this connection last sent it.
    fn push_books(&mut self) {
        let wanted: Vec<(String, u32)> = self
            .channels
            .iter()
            .filter_map(|c| match c {
                Channel::Book { instrument, depth } => Some((instrument.clone(), *depth)),
                Channel::UserOrders { .. } | Channel::Trades { .. } => None,
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let instruments = self.shared.upstream.instruments();
        for (name, depth) in wanted {
            let Some(instrument) = instruments.iter().find(|i| i.symbol == name) else {
                continue;
            };
            self.shared.books.want(instrument.id);
            let Some((version, book, at)) = self.shared.books.latest(instrument.id) else {
                continue;
            };
            let key = (instrument.id, depth);
            if self.books_seen.get(&key) == Some(&version) {
                continue;
            }
            self.books_seen.insert(key, version);
            let channel = Channel::Book {
                instrument: name,
                depth,
            };
            let data = book_json(instrument, &book, depth, at);
            self.outbox
                .push(jsonrpc::notification(&channel.name(), data));
        }
    }

    /// The trades `quorum` nodes report alike: fills of this session's resting orders (as a
    /// maker) update them and go to `user.orders` subscribers; every trade of a subscribed
    /// instrument goes to its `trades` channel.
    fn watch_tape(&mut self) {
        if self.trading.is_none() {
            self.tape_seen = self.shared.upstream.tape_head();
            return;
        }
        let trades = self.shared.upstream.trades_after(self.tape_seen, 1024);
        if trades.is_empty() {
            return;
        }
        let instruments = self.shared.upstream.instruments();
        let mut by_channel: HashMap<String, Vec<Value>> = HashMap::new();
        for trade in trades {
            self.tape_seen = trade.seq;
            if let Some((order, kind)) = self.orders.get_mut(&trade.maker_order) {
                order.filled = (order.filled + trade.qty).min(order.qty);
                order.filled_value += i128::from(trade.price) * i128::from(trade.qty);
                order.status = if order.filled >= order.qty { "2" } else { "1" };
                let (order, kind) = (order.clone(), *kind);
                // Told of this fill, the session reads nothing older than its block.
                if let Some(trading) = self.trading.as_mut() {
                    trading.saw(trade.height);
                }
                if order.status == "2" {
                    self.orders.remove(&trade.maker_order);
                }
                self.notify_order(&order, kind);
            }
            let Some(instrument) = trade
                .instrument
                .and_then(|id| instruments.iter().find(|i| i.id == id))
            else {
                continue;
            };
            let channel = Channel::Trades {
                instrument: instrument.symbol.clone(),
            };
            if !self.channels.contains(&channel) {
                continue;
            }
            let direction = match trade.taker_side {
                Some(Side::Buy) => "buy",
                Some(Side::Sell) => "sell",
                None => "unknown",
            };
            by_channel.entry(channel.name()).or_default().push(json!({
                "trade_seq": trade.seq,
                "instrument_name": instrument.symbol,
                "price": jsonrpc::price_json(instrument, trade.price),
                "amount": trade.qty,
                "direction": direction,
                "block_height": trade.height,
                "timestamp": now_ms(),
            }));
        }
        for (channel, list) in by_channel {
            self.outbox
                .push(jsonrpc::notification(&channel, json!(list)));
        }
    }

    /// An order's change to the `user.orders` subscribers.
    fn notify_order(&mut self, order: &OrderState, kind: OrderKind) {
        let matching: Vec<String> = self
            .channels
            .iter()
            .filter(|c| matches!(c, Channel::UserOrders { instrument } if instrument.as_ref().is_none_or(|i| *i == order.instrument.symbol)))
            .map(Channel::name)
            .collect();
        for name in matching {
            let data = jsonrpc::order_json(order, kind, now_ms());
            self.outbox.push(jsonrpc::notification(&name, data));
        }
    }

    fn watch_kill_switch(&mut self) {
        let account = self.trading.as_ref().map(|t| t.account);
        let kill = &self.shared.kill;
        if kill.newly_engaged(account, &mut self.kill_seen, &mut self.killed) {
            warn!(peer = %self.peer, ?account, "kill switch engaged: cancelling the session's orders");
            let command = ClientCommand::MassCancel { instrument: None };
            self.submit(command, upstream::Class::Protected, Pending::Kill(0));
        }
    }

    fn on_outcome(&mut self, verdict: Verdict) {
        if let (Verdict::Finalized(outcome), Some(trading)) = (&verdict, self.trading.as_mut()) {
            trading.saw(outcome.height);
        }
        let (nonce, outcome, why) = match verdict {
            Verdict::Finalized(outcome) => (outcome.nonce, Some(outcome), String::new()),
            Verdict::Refused { nonce, reason } => (nonce, None, reason),
            Verdict::Expired { nonce } => (nonce, None, String::new()),
        };
        let Some(what) = self.in_flight.remove(&nonce) else {
            return self.late_outcome(nonce, outcome, &why);
        };
        if matches!(what, Pending::Cancel { .. }) {
            self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1);
        }
        if let (Pending::Heartbeat { disarm }, Some(t)) = (&what, self.trading.as_mut()) {
            let taken = outcome.as_ref().is_some_and(acceptor::beat_taken);
            t.beat_done(*disarm, taken);
            // `why` is empty when the outcome did not come in time: that says nothing.
            if outcome.is_none() && t.gone(&why) {
                warn!(peer = %self.peer, "the committee closed the trading session (silent past its bound or revoked)");
                self.close_after_send = true;
                return;
            }
        }
        let Some(outcome) = outcome else {
            // A grant whose fate is unknown may still open the session: it is closed if so.
            if let (Pending::Auth { .. }, true) = (&what, why.is_empty()) {
                if let Some((key, acting)) = self.opening.take() {
                    acceptor::close_unknown_grant(&self.shared, self.peer, acting, key, nonce);
                }
            }
            if let (Pending::New { order, kind, .. }, true) = (&what, why.is_empty()) {
                self.late
                    .keep(nonce, (order.clone(), *kind), Instant::now());
            }
            let error = if why.is_empty() {
                RpcError::new(
                    code::UNKNOWN_OUTCOME,
                    "no outcome from the committee in time: the transaction's fate is unknown (get_open_orders shows the committee's state)",
                )
            } else {
                RpcError::new(
                    code::REJECTED,
                    format!("the committee did not take it: {why}"),
                )
            };
            return self.failed(what, &error);
        };
        if let Some(t) = self.trading.as_mut() {
            t.finalized(&outcome);
        }
        match what {
            Pending::Heartbeat { .. } if acceptor::session_gone(&outcome) => {
                warn!(peer = %self.peer, "the committee closed the trading session (expired)");
                self.close_after_send = true;
            }
            Pending::Heartbeat { .. } => {}
            Pending::Auth { id, logon, tries } => self.opened(id, &outcome, logon, tries),
            Pending::New { id, order, kind } => {
                self.new_order_done(Some(&id), &outcome, order, kind)
            }
            Pending::Edit { id, order_id, qty } => self.edit_done(&id, &outcome, order_id, qty),
            Pending::Cancel { id, order_id } => self.cancel_done(&id, &outcome, order_id),
            Pending::CancelAll { id } => {
                let cancelled = self.mark_cancelled(&outcome);
                self.answer(&id, json!(cancelled));
            }
            Pending::Kill(_) => {
                let cancelled = self.mark_cancelled(&outcome);
                info!(peer = %self.peer, cancelled, "the kill switch cancelled the session's orders");
            }
        }
    }

    /// The verdict of a new order whose wait had expired: notified on the user's order
    /// channels, the way a finalized order is (a second expiry keeps waiting).
    fn late_outcome(&mut self, nonce: u64, outcome: Option<Outcome>, why: &str) {
        let Some((mut order, kind)) = self.late.take(nonce) else {
            return;
        };
        match outcome {
            Some(outcome) => {
                info!(peer = %self.peer, nonce, height = outcome.height, "an order's outcome came after its wait expired");
                if let Some(t) = self.trading.as_mut() {
                    t.finalized(&outcome);
                }
                self.new_order_done(None, &outcome, order, kind);
            }
            None if why.is_empty() => self.late.keep(nonce, (order, kind), Instant::now()),
            None => {
                order.status = "8";
                self.notify_order(&order, kind);
            }
        }
    }

    /// A transaction no node took, or whose outcome did not come in time.
    fn failed(&mut self, what: Pending, error: &RpcError) {
        match what {
            Pending::Auth { id, .. } => {
                self.opening = None;
                let e = RpcError::new(
                    code::AUTH_REFUSED,
                    format!(
                        "the committee did not open the trading session: {}",
                        error.message
                    ),
                );
                self.answer_error(&id, &e);
                self.close_after_send = true;
            }
            Pending::New { id, .. }
            | Pending::Edit { id, .. }
            | Pending::Cancel { id, .. }
            | Pending::CancelAll { id } => self.answer_error(&id, error),
            // The next one goes after SESSION_BEAT_AFTER.
            Pending::Heartbeat { .. } => {
                warn!(peer = %self.peer, reason = %error.message, "the session's heartbeat was not taken");
            }
            Pending::Kill(tries) => {
                warn!(peer = %self.peer, reason = %error.message, tries, "the kill switch's mass cancel was not taken");
                if self.killed && tries + 1 < KILL_CANCEL_TRIES {
                    let command = ClientCommand::MassCancel { instrument: None };
                    self.submit(
                        command,
                        upstream::Class::Protected,
                        Pending::Kill(tries + 1),
                    );
                }
            }
        }
    }

    fn opened(&mut self, id: Value, outcome: &Outcome, logon: LogonRequest, tries: u32) {
        let Some((key, acting)) = self.opening.take() else {
            return;
        };
        let expires = outcome.events.iter().find_map(|e| match e {
            Event::SessionOpened { expires_ms, .. } => Some(*expires_ms),
            _ => None,
        });
        if let Some(expires_ms) = expires {
            let session_key = hex::encode(key.verifying_key().to_bytes());
            self.trading = Some(Trading::new(
                acting,
                key,
                outcome.nonce + 1,
                &logon,
                outcome.height,
            ));
            self.shared.counters.logons.fetch_add(1, Ordering::Relaxed);
            info!(peer = %self.peer, account = logon.account, client_id = %logon.sender, "WebSocket session logged on");
            let result = json!({
                "access_token": session_key,
                "token_type": "session",
                "expires_in": expires_ms.saturating_sub(now_ms()) / 1000,
                "scope": "session trade:read_write",
                "account": logon.account,
            });
            return self.answer(&id, result);
        }
        let reason = outcome.events.iter().find_map(|e| match e {
            Event::Rejected { reason } => Some(*reason),
            _ => None,
        });
        if reason == Some(RejectReason::TooManySessions) && tries + 1 < SLOT_TRIES {
            if let Err(e) = self.open_session(id.clone(), logon, key, tries + 1) {
                self.answer_error(&id, &e);
                self.close_after_send = true;
            }
            return;
        }
        let e = RpcError::new(
            code::AUTH_REFUSED,
            format!("the committee refused the trading session: {reason:?}"),
        );
        self.answer_error(&id, &e);
        self.close_after_send = true;
    }

    /// A new order's outcome: the answer to request `id` (none for a late outcome, whose
    /// request was answered already) and the notification on the user's order channels.
    fn new_order_done(
        &mut self,
        id: Option<&Value>,
        outcome: &Outcome,
        mut order: OrderState,
        kind: OrderKind,
    ) {
        let mut trades = Vec::new();
        let mut rejected = None;
        for event in &outcome.events {
            match order.apply(event) {
                Some(Applied::Filled {
                    maker_order,
                    price,
                    qty,
                }) => {
                    trades.push(json!({
                        "order_id": order.order_id.unwrap_or_default().to_string(),
                        "maker_order_id": maker_order.to_string(),
                        "price": jsonrpc::price_json(&order.instrument, price),
                        "amount": qty,
                        "direction": match order.side { Side::Buy => "buy", Side::Sell => "sell" },
                        "instrument_name": order.instrument.symbol,
                        "block_height": outcome.height,
                    }));
                }
                Some(Applied::Rejected { reason }) => rejected = Some(reason),
                Some(Applied::Accepted { .. } | Applied::Cancelled { .. }) | None => {}
            }
        }
        if order.order_id.is_none() {
            let e = match rejected {
                Some(reason) => RpcError::new(
                    code::REJECTED,
                    format!("the engine rejected the order: {reason:?}"),
                ),
                None => RpcError::new(code::REJECTED, "the engine did not accept the order"),
            };
            match id {
                Some(id) => self.answer_error(id, &e),
                None => {
                    order.status = "8";
                    self.notify_order(&order, kind);
                }
            }
            return;
        }
        if let Some(id) = id {
            let result =
                json!({"order": jsonrpc::order_json(&order, kind, now_ms()), "trades": trades});
            self.answer(id, result);
        }
        self.notify_order(&order, kind);
        if let (Some(order_id), "0" | "1") = (order.order_id, order.status) {
            self.orders.insert(order_id, (order, kind));
        }
    }

    fn edit_done(&mut self, id: &Value, outcome: &Outcome, order_id: u64, qty: i64) {
        let amended = outcome.events.iter().find_map(|e| match e {
            Event::Amended {
                order_id: o, price, ..
            } if *o == order_id => Some(*price),
            _ => None,
        });
        let Some(price) = amended else {
            return self.answer_error(id, &engine_refusal(outcome, "not edited"));
        };
        let Some((order, kind)) = self.orders.get_mut(&order_id) else {
            return self.answer_error(
                id,
                &RpcError::new(code::ORDER_NOT_FOUND, "the order is gone"),
            );
        };
        order.price = price;
        order.qty = qty;
        let (order, kind) = (order.clone(), *kind);
        self.answer(
            id,
            json!({"order": jsonrpc::order_json(&order, kind, now_ms()), "trades": []}),
        );
        self.notify_order(&order, kind);
    }

    fn cancel_done(&mut self, id: &Value, outcome: &Outcome, order_id: u64) {
        let cancelled = outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::Cancelled { order_id: o, .. } if *o == order_id));
        if !cancelled {
            return self.answer_error(id, &engine_refusal(outcome, "not cancelled"));
        }
        let Some((mut order, kind)) = self.orders.remove(&order_id) else {
            return self.answer(
                id,
                json!({"order_id": order_id.to_string(), "order_state": "cancelled"}),
            );
        };
        order.status = "4";
        self.answer(id, jsonrpc::order_json(&order, kind, now_ms()));
        self.notify_order(&order, kind);
    }

    /// Marks this session's orders a mass cancel cancelled, telling subscribers; how many it
    /// cancelled in all.
    fn mark_cancelled(&mut self, outcome: &Outcome) -> usize {
        let mut cancelled = 0;
        for event in &outcome.events {
            if let Event::Cancelled { order_id, .. } = event {
                cancelled += 1;
                if let Some((mut order, kind)) = self.orders.remove(order_id) {
                    order.status = "4";
                    self.notify_order(&order, kind);
                }
            }
        }
        cancelled
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        // After `run` this finds nothing left to do.
        self.end("the connection's thread ended abnormally");
    }
}

/// The engine's refusal in `outcome`, or `fallback`.
fn engine_refusal(outcome: &Outcome, fallback: &str) -> RpcError {
    RpcError::new(code::REJECTED, outcome.rejection(fallback))
}

/// A book as Deribit's `get_order_book` result: `[price, amount]` levels, best first.
fn book_json(instrument: &InstrumentAnswer, book: &BookAnswer, depth: u32, at: u64) -> Value {
    let depth = usize::try_from(depth).unwrap_or(0);
    let levels = |side: &[bulwark_api::answers::Level]| -> Vec<Value> {
        side.iter()
            .take(depth)
            .map(|l| json!([jsonrpc::price_json(instrument, l.price), l.qty]))
            .collect()
    };
    json!({
        "instrument_name": instrument.symbol,
        "bids": levels(&book.bids),
        "asks": levels(&book.asks),
        "mark_price": book.mark_ticks.map(|t| jsonrpc::price_json(instrument, t)),
        "timestamp": at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn book(height: u64, best_bid: i64) -> BookAnswer {
        BookAnswer {
            height,
            instrument: 0,
            bids: vec![bulwark_api::answers::Level {
                price: best_bid,
                qty: 1,
            }],
            ..BookAnswer::default()
        }
    }

    #[test]
    fn the_shared_book_never_moves_back_and_changes_version_only_with_its_content() {
        let books = Books::default();
        assert!(books.want(0));
        books.offer(0, book(10, 100));
        assert_eq!(books.latest(0).unwrap().0, 1);
        // A newer height with the same levels: the same version, the newer height kept.
        books.offer(0, book(12, 100));
        let (version, shown, _) = books.latest(0).unwrap();
        assert_eq!((version, shown.height), (1, 12));
        // An older book (a session's read at a lower floor, lagging nodes) is not taken.
        books.offer(0, book(11, 99));
        assert_eq!(books.latest(0).unwrap().1, book(12, 100));
        // A newer, different book is a new version.
        books.offer(0, book(13, 99));
        assert_eq!(books.latest(0).unwrap().0, 2);
        // A book nobody wants is not kept.
        books.offer(7, book(20, 1));
        assert!(books.latest(7).is_none());
    }
}
