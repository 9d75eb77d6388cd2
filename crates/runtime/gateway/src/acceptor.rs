//! The FIX acceptor: the accept thread with its pre-authentication limits, and one thread per
//! connection driving a [`Session`] with the wall clock.
//!
//! Before a byte is read: at most `connections_max` connections, `connections_per_ip` from one
//! address (over either, the connection is closed at once). Before logon: the session's 2 s
//! deadline and 4 KiB first-message bound. At logon: the global logon budget (`logons_per_s`)
//! before any signature is checked, then the signature under the account's key, then the
//! trading session the committee opens on the same signature. After logon: new orders at
//! `orders_per_s` per session and `in_flight_max` in flight (refused at once, never queued);
//! cancels are never refused. An ExecutionReport is sent only for what `quorum` nodes report
//! finalized. On disconnect the session's orders are cancelled and the session closed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark_api::answers::ReceiptEvent as Event;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::SESSION_ACCOUNT_LIMIT;
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, RejectReason, SessionGrant};
use bulwark_fix::logon::{LogonError, LogonRequest};
use bulwark_fix::session::{Close, Config as SessionConfig, Output, Session};
use bulwark_fix::{Field, Message};
use ed25519_dalek::SigningKey;
use tracing::{info, warn};

use crate::config::GatewayConfig;
use crate::orders::{self, OrderState};
use crate::seqstore::SeqStore;
use crate::upstream::{Outcome, Upstream};

/// How long a read waits before the loop looks at timers and outcomes.
const READ_POLL: Duration = Duration::from_millis(5);
/// Orders a session remembers (by ClOrdID).
const ORDERS_KEPT: usize = 100_000;
/// Longest ClOrdID, OrigClOrdID or Symbol taken (and echoed).
const ID_BYTES_MAX: usize = 64;
/// How many slots a logon tries when the one it picked is taken.
const SLOT_TRIES: u32 = 4;

/// Counters by layer, for the status and the bench.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections closed at accept (over the global or per-address limit).
    pub refused_at_accept: AtomicU64,
    /// Sessions that ended before logon (malformed, late, not a logon, refused).
    pub closed_before_logon: AtomicU64,
    /// Logons refused for the budget before any signature was checked.
    pub logons_over_budget: AtomicU64,
    /// Logons whose signature did not verify.
    pub logons_bad_signature: AtomicU64,
    /// Sessions logged on.
    pub logons: AtomicU64,
    /// New orders refused for the rate or the in-flight bound.
    pub orders_throttled: AtomicU64,
    /// Execution reports sent for finalized outcomes.
    pub reports: AtomicU64,
}

/// A token bucket refilled continuously: `rate` per second, `rate` at most.
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) seqs: SeqStore,
    pub(crate) logons: Mutex<Bucket>,
    /// (account, SenderCompID) logged on now: one session each.
    pub(crate) active: Mutex<HashSet<(u64, String)>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stop: Arc<AtomicBool>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The accept loop, until `stop`.
pub(crate) fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let open: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    if let Err(error) = listener.set_nonblocking(true) {
        warn!(%error, "cannot make the FIX listener non-blocking");
        return;
    }
    while !shared.stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(error) => {
                warn!(%error, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let limits = shared.config.limits;
        let admitted = {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            let from_ip = open.entry(peer.ip()).or_default();
            if *from_ip >= limits.connections_per_ip
                || total.load(Ordering::Relaxed) >= limits.connections_max as u64
            {
                false
            } else {
                *from_ip += 1;
                total.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        if !admitted {
            shared
                .counters
                .refused_at_accept
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let (shared_c, open_c, total_c) =
            (Arc::clone(&shared), Arc::clone(&open), Arc::clone(&total));
        let spawned = std::thread::Builder::new()
            .name(format!("fix-{peer}"))
            .spawn(move || {
                Connection::new(stream, peer, Arc::clone(&shared_c)).run();
                let mut open = open_c.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = open.get_mut(&peer.ip()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        open.remove(&peer.ip());
                    }
                }
                total_c.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(error) = spawned {
            warn!(%error, "cannot start a connection thread");
        }
    }
}

/// What a transaction in flight was for.
enum InFlight {
    Open {
        logon: LogonRequest,
        tries: u32,
    },
    New {
        cl_ord_id: String,
    },
    Cancel {
        cl_ord_id: String,
        orig: String,
    },
    MassCancel {
        cl_ord_id: String,
        request_type: String,
    },
}

/// The trading session the committee opened for this connection.
struct Trading {
    id: AccountId,
    key: SigningKey,
    next_nonce: u64,
    account: u64,
    sender: String,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    session: Session,
    outcomes: (Sender<Outcome>, Receiver<Outcome>),
    in_flight: HashMap<u64, InFlight>,
    opening: Option<(SigningKey, AccountId)>,
    /// The (account, SenderCompID) this connection holds in the shared `active` set.
    identity: Option<(u64, String)>,
    trading: Option<Trading>,
    orders: HashMap<String, OrderState>,
    order_ids: HashMap<u64, String>,
    order_bucket: Bucket,
    execs: u64,
}

impl Connection {
    fn new(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Connection {
        let mut config = SessionConfig::new(shared.config.comp_id.clone());
        // The committee opens the trading session within the logon deadline.
        config.logon_deadline_ms = 2_000;
        let order_bucket = Bucket::new(shared.config.limits.orders_per_s);
        Connection {
            stream,
            peer,
            session: Session::new(config, now_ms()),
            shared,
            outcomes: channel(),
            in_flight: HashMap::new(),
            opening: None,
            identity: None,
            trading: None,
            orders: HashMap::new(),
            order_ids: HashMap::new(),
            order_bucket,
            execs: 0,
        }
    }

    fn run(mut self) {
        let _ = self.stream.set_nodelay(true);
        if self.stream.set_read_timeout(Some(READ_POLL)).is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut reason = None;
        while !self.session.is_closed() {
            let mut out = Vec::new();
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    reason = Some("connection closed by the peer".to_string());
                    break;
                }
                Ok(n) => self.session.receive(now_ms(), &buf[..n], &mut out),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    reason = Some(e.to_string());
                    break;
                }
            }
            if self.shared.stop.load(Ordering::Relaxed) && self.session.is_active() {
                self.session
                    .logout(now_ms(), "gateway shutting down", &mut out);
            }
            self.session.tick(now_ms(), &mut out);
            while let Ok(outcome) = self.outcomes.1.try_recv() {
                self.on_outcome(outcome, &mut out);
            }
            if !self.carry_out(out) {
                break;
            }
        }
        let _ = self.stream.flush();
        if self.trading.is_none() {
            self.shared
                .counters
                .closed_before_logon
                .fetch_add(1, Ordering::Relaxed);
        }
        self.cancel_on_disconnect(reason.as_deref());
        // Whatever ended the connection (a logon still being opened included), the identity
        // may log on again.
        if let Some(identity) = self.identity.take() {
            self.shared
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&identity);
        }
    }

    /// Carries out the session's outputs in order; false when the connection is done.
    fn carry_out(&mut self, out: Vec<Output>) -> bool {
        let mut queue: VecDeque<Output> = out.into();
        while let Some(output) = queue.pop_front() {
            let mut more = Vec::new();
            match output {
                Output::Send(bytes) => {
                    if self.stream.write_all(&bytes).is_err() {
                        return false;
                    }
                }
                Output::Authenticate(logon) => self.authenticate(logon, &mut more),
                Output::Application(message) => self.on_application(&message, &mut more),
                Output::Persist(seq) => {
                    if let Some(t) = &self.trading {
                        if let Err(error) = self.shared.seqs.save(t.account, &t.sender, seq) {
                            warn!(%error, "cannot persist sequence numbers; ending the session");
                            self.session
                                .logout(now_ms(), "gateway storage failure", &mut more);
                        }
                    }
                }
                Output::Close(close) => {
                    if !matches!(close, Close::LoggedOut) {
                        info!(peer = %self.peer, %close, "FIX session ended");
                    }
                }
            }
            for (i, o) in more.into_iter().enumerate() {
                queue.insert(i, o);
            }
        }
        true
    }

    fn authenticate(&mut self, logon: LogonRequest, out: &mut Vec<Output>) {
        let now = now_ms();
        let over_budget = !self
            .shared
            .logons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if over_budget {
            self.shared
                .counters
                .logons_over_budget
                .fetch_add(1, Ordering::Relaxed);
            let error =
                LogonError::Refused("the gateway's logon budget is spent; try again".into());
            self.session.refuse_logon(now, error, out);
            return;
        }
        let account = AccountId(logon.account);
        let key = (logon.account < SESSION_ACCOUNT_LIMIT)
            .then(|| self.shared.upstream.account_key(account))
            .flatten();
        if key.is_none_or(|key| logon.verify(&key).is_err()) {
            self.shared
                .counters
                .logons_bad_signature
                .fetch_add(1, Ordering::Relaxed);
            self.session.refuse_logon(now, LogonError::Signature, out);
            return;
        }
        let identity = (logon.account, logon.sender.clone());
        if !self
            .shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(identity.clone())
        {
            let error =
                LogonError::Refused("this account and SenderCompID are logged on already".into());
            self.session.refuse_logon(now, error, out);
            return;
        }
        self.identity = Some(identity);
        // The session key the trader made and signed for (its public key is in the payload
        // every replica checks, so no node can put another key in the grant).
        let key = SigningKey::from_bytes(&logon.session_seed);
        self.open_session(logon, key, 0, out);
    }

    /// Submits the grant at a random slot.
    fn open_session(
        &mut self,
        logon: LogonRequest,
        key: SigningKey,
        tries: u32,
        out: &mut Vec<Output>,
    ) {
        let mut slot = [0u8; 1];
        rand_core_06::RngCore::fill_bytes(&mut rand_core_06::OsRng, &mut slot);
        let account = AccountId(logon.account);
        let Some(id) = account.session(slot[0]) else {
            self.refuse(LogonError::Signature, &logon, out);
            return;
        };
        let lifetime_ms = self.shared.config.limits.session_lifetime_s * 1000;
        let grant = SessionGrant {
            key: key.verifying_key().to_bytes(),
            expires_ms: logon.sending_time_ms + lifetime_ms,
            logon_ms: logon.sending_time_ms,
            logon_nonce: logon.nonce,
            sender: logon.sender.clone(),
            target: logon.target.clone(),
        };
        let tx = SignedTx {
            account: id,
            nonce: logon.sending_time_ms,
            command: ClientCommand::OpenSession(grant),
            signature: logon.signature,
        };
        match self.shared.upstream.submit(&tx, self.outcomes.0.clone()) {
            Ok(()) => {
                self.opening = Some((key, id));
                self.in_flight
                    .insert(tx.nonce, InFlight::Open { logon, tries });
            }
            Err(reason) => self.refuse(LogonError::Refused(reason), &logon, out),
        }
    }

    fn refuse(&mut self, error: LogonError, logon: &LogonRequest, out: &mut Vec<Output>) {
        self.shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(logon.account, logon.sender.clone()));
        self.session.refuse_logon(now_ms(), error, out);
    }

    fn on_outcome(&mut self, outcome: Outcome, out: &mut Vec<Output>) {
        let Some(what) = self.in_flight.remove(&outcome.nonce) else {
            return;
        };
        match what {
            InFlight::Open { logon, tries } => self.opened(outcome, logon, tries, out),
            InFlight::New { cl_ord_id } => self.new_order_done(&outcome, &cl_ord_id, out),
            InFlight::Cancel { cl_ord_id, orig } => {
                self.cancel_done(&outcome, &cl_ord_id, &orig, out)
            }
            InFlight::MassCancel {
                cl_ord_id,
                request_type,
            } => self.mass_cancel_done(&outcome, &cl_ord_id, &request_type, out),
        }
    }

    fn opened(&mut self, outcome: Outcome, logon: LogonRequest, tries: u32, out: &mut Vec<Output>) {
        let Some((key, id)) = self.opening.take() else {
            return;
        };
        if outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::SessionOpened { .. }))
        {
            let stored = match self.shared.seqs.load(logon.account, &logon.sender) {
                Ok(seq) => seq,
                Err(error) => {
                    warn!(%error, "sequence numbers unreadable; refusing the logon");
                    self.refuse(
                        LogonError::Refused(
                            "the gateway cannot read this session's sequence numbers".into(),
                        ),
                        &logon,
                        out,
                    );
                    return;
                }
            };
            self.trading = Some(Trading {
                id,
                key,
                next_nonce: outcome.nonce + 1,
                account: logon.account,
                sender: logon.sender.clone(),
            });
            self.shared.counters.logons.fetch_add(1, Ordering::Relaxed);
            info!(peer = %self.peer, account = logon.account, sender = %logon.sender, "FIX session logged on");
            self.session.accept_logon(now_ms(), stored, out);
            return;
        }
        let reason = outcome.events.iter().find_map(|e| match e {
            Event::Rejected { reason, .. } => Some(*reason),
            _ => None,
        });
        if reason == Some(RejectReason::TooManySessions) && tries + 1 < SLOT_TRIES {
            self.open_session(logon, key, tries + 1, out);
            return;
        }
        let text = format!("the committee refused the trading session: {reason:?}");
        self.refuse(LogonError::Refused(text), &logon, out);
    }

    fn exec_id(&mut self, outcome: &Outcome) -> String {
        self.execs += 1;
        format!("{}-{}-{}", outcome.height, outcome.nonce, self.execs)
    }

    fn send(&mut self, msg_type: &str, body: Vec<Field>, out: &mut Vec<Output>) {
        if msg_type == "8" {
            self.shared.counters.reports.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(error) = self.session.send(now_ms(), msg_type, body, out) {
            warn!(%error, "cannot send to the session");
        }
    }

    /// Signs `command` with the session key and submits it, remembering what it was for.
    fn submit(&mut self, command: ClientCommand, what: InFlight) -> Result<(), String> {
        let Some(t) = self.trading.as_mut() else {
            return Err("not logged on".into());
        };
        let nonce = t.next_nonce;
        t.next_nonce += 1;
        let tx = SignedTx::sign(t.id, nonce, command, &t.key);
        self.shared.upstream.submit(&tx, self.outcomes.0.clone())?;
        self.in_flight.insert(nonce, what);
        Ok(())
    }

    fn next_nonce(&self) -> u64 {
        self.trading.as_ref().map_or(0, |t| t.next_nonce)
    }

    fn on_application(&mut self, message: &Message, out: &mut Vec<Output>) {
        let too_long = [11, 41, 55]
            .iter()
            .any(|tag| message.get(*tag).is_some_and(|v| v.len() > ID_BYTES_MAX));
        if too_long {
            let body = vec![
                Field::new(45, message.get_str(34).unwrap_or("0")),
                Field::new(372, message.msg_type().to_vec()),
                Field::new(380, "5"),
                Field::new(
                    58,
                    format!("ClOrdID, OrigClOrdID and Symbol are at most {ID_BYTES_MAX} bytes"),
                ),
            ];
            return self.send("j", body, out);
        }
        match message.msg_type() {
            b"D" => self.new_order(message, out),
            b"F" => self.cancel(message, out),
            b"q" => self.mass_cancel(message, out),
            b"H" => self.status(message, out),
            other => {
                let body = vec![
                    Field::new(45, message.get_str(34).unwrap_or("0")),
                    Field::new(372, other.to_vec()),
                    Field::new(380, "4"),
                    Field::new(58, "not built yet in this gateway"),
                ];
                self.send("j", body, out);
            }
        }
    }

    fn reject_new(&mut self, message: &Message, code: u32, text: &str, out: &mut Vec<Output>) {
        let mut body = vec![
            Field::new(37, "NONE"),
            Field::new(11, message.get(11).unwrap_or(b"?").to_vec()),
            Field::new(17, format!("rej-{}", message.get_str(34).unwrap_or("0"))),
            Field::new(150, "8"),
            Field::new(39, "8"),
            Field::new(55, message.get(55).unwrap_or(b"?").to_vec()),
            Field::new(54, message.get(54).unwrap_or(b"1").to_vec()),
            Field::new(151, "0"),
            Field::new(14, "0"),
            Field::new(6, "0"),
            Field::new(103, code.to_string()),
            Field::new(58, text),
        ];
        body.retain(|f| !f.value.is_empty());
        self.send("8", body, out);
    }

    fn new_order(&mut self, message: &Message, out: &mut Vec<Output>) {
        let cl_ord_id = message.get_str(11).unwrap_or("").to_string();
        if self.orders.contains_key(&cl_ord_id) {
            return self.reject_new(message, 6, "duplicate ClOrdID", out);
        }
        if self.orders.len() >= ORDERS_KEPT {
            return self.reject_new(message, 99, "too many orders in this session", out);
        }
        if self.in_flight.len() >= self.shared.config.limits.in_flight_max
            || !self.order_bucket.take()
        {
            self.shared
                .counters
                .orders_throttled
                .fetch_add(1, Ordering::Relaxed);
            return self.reject_new(
                message,
                99,
                "rate limit: order refused (cancels are always taken)",
                out,
            );
        }
        let instruments = self.shared.upstream.instruments();
        let nonce = self.next_nonce();
        let (instrument, command) = match orders::new_order(&instruments, message, nonce) {
            Ok(mapped) => mapped,
            Err(refusal) => return self.reject_new(message, refusal.code, &refusal.text, out),
        };
        let Some(answer) = instruments.iter().find(|i| i.id == instrument.0).cloned() else {
            return self.reject_new(message, 1, "unknown instrument", out);
        };
        let (side, qty, price) = match &command {
            ClientCommand::Limit(o) => (o.side, o.qty, o.price),
            ClientCommand::Market { side, qty, .. } => (*side, *qty, 0),
            _ => return,
        };
        if let Err(reason) = self.submit(
            command,
            InFlight::New {
                cl_ord_id: cl_ord_id.clone(),
            },
        ) {
            return self.reject_new(message, 99, &reason, out);
        }
        self.orders.insert(
            cl_ord_id.clone(),
            OrderState {
                cl_ord_id,
                order_id: None,
                instrument: answer,
                side,
                qty,
                filled: 0,
                filled_value: 0,
                price,
                status: "A",
            },
        );
    }

    fn new_order_done(&mut self, outcome: &Outcome, cl_ord_id: &str, out: &mut Vec<Output>) {
        let Some(mut order) = self.orders.get(cl_ord_id).cloned() else {
            return;
        };
        for event in &outcome.events {
            let exec_id = self.exec_id(outcome);
            match event {
                Event::Accepted { order_id, .. } => {
                    order.order_id = Some(*order_id);
                    self.order_ids.insert(*order_id, cl_ord_id.to_string());
                    order.status = "0";
                    let body = order.report(exec_id, "0", None, None);
                    self.send("8", body, out);
                }
                Event::Fill {
                    taker_order,
                    price,
                    qty,
                    ..
                } if Some(*taker_order) == order.order_id => {
                    order.filled += qty;
                    order.filled_value += i128::from(*price) * i128::from(*qty);
                    order.status = if order.filled >= order.qty { "2" } else { "1" };
                    let body = order.report(exec_id, "F", Some((*price, *qty)), None);
                    self.send("8", body, out);
                }
                Event::Cancelled {
                    order_id, reason, ..
                } if Some(*order_id) == order.order_id => {
                    order.status = "4";
                    let text = format!("{reason:?}");
                    let body = order.report(exec_id, "4", None, Some(&text));
                    self.send("8", body, out);
                }
                Event::Rejected { reason, .. } => {
                    order.status = "8";
                    let text = format!("{reason:?}");
                    let body = order.report(exec_id, "8", None, Some(&text));
                    self.send("8", body, out);
                }
                _ => {}
            }
        }
        self.orders.insert(cl_ord_id.to_string(), order);
    }

    fn cancel(&mut self, message: &Message, out: &mut Vec<Output>) {
        let cl_ord_id = message.get_str(11).unwrap_or("").to_string();
        let orig = message.get_str(41).unwrap_or("").to_string();
        let known = self
            .orders
            .get(&orig)
            .and_then(|o| o.order_id.map(|id| (id, o.instrument.id, o.status)));
        let Some((order_id, instrument, _)) = known else {
            return self.cancel_reject(
                &cl_ord_id,
                &orig,
                "unknown or not yet acknowledged order",
                out,
            );
        };
        let command = ClientCommand::Cancel {
            instrument: InstrumentId(instrument),
            order_id: bulwark_engine::OrderId(order_id),
        };
        let what = InFlight::Cancel {
            cl_ord_id: cl_ord_id.clone(),
            orig: orig.clone(),
        };
        if let Err(reason) = self.submit(command, what) {
            self.cancel_reject(&cl_ord_id, &orig, &reason, out);
        }
    }

    fn cancel_reject(&mut self, cl_ord_id: &str, orig: &str, text: &str, out: &mut Vec<Output>) {
        let order = self.orders.get(orig);
        let body = vec![
            Field::new(
                37,
                order
                    .and_then(|o| o.order_id)
                    .map_or_else(|| "NONE".into(), |id| id.to_string()),
            ),
            Field::new(11, if cl_ord_id.is_empty() { "?" } else { cl_ord_id }),
            Field::new(41, if orig.is_empty() { "?" } else { orig }),
            Field::new(39, order.map_or("8", |o| o.status)),
            Field::new(434, "1"),
            Field::new(102, "1"),
            Field::new(58, text),
        ];
        self.send("9", body, out);
    }

    fn cancel_done(
        &mut self,
        outcome: &Outcome,
        cl_ord_id: &str,
        orig: &str,
        out: &mut Vec<Output>,
    ) {
        let cancelled = outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::Cancelled { .. }));
        if !cancelled {
            let text = outcome
                .events
                .iter()
                .find_map(|e| match e {
                    Event::Rejected { reason, .. } => Some(format!("{reason:?}")),
                    _ => None,
                })
                .unwrap_or_else(|| "not cancelled".into());
            return self.cancel_reject(cl_ord_id, orig, &text, out);
        }
        let exec_id = self.exec_id(outcome);
        if let Some(order) = self.orders.get_mut(orig) {
            order.status = "4";
            let order = order.clone();
            let mut body = order.report(exec_id, "4", None, None);
            for field in &mut body {
                if field.tag == 11 {
                    field.value = cl_ord_id.as_bytes().to_vec();
                }
            }
            body.push(Field::new(41, orig));
            self.send("8", body, out);
        }
    }

    fn mass_cancel(&mut self, message: &Message, out: &mut Vec<Output>) {
        let cl_ord_id = message.get_str(11).unwrap_or("").to_string();
        let request_type = message.get_str(530).unwrap_or("7").to_string();
        let instrument = match request_type.as_str() {
            "7" => None,
            "1" => match orders::instrument(&self.shared.upstream.instruments(), message) {
                Ok(i) => Some(InstrumentId(i.id)),
                Err(refusal) => {
                    return self.mass_cancel_report(
                        &cl_ord_id,
                        &request_type,
                        "0",
                        &refusal.text,
                        out,
                    )
                }
            },
            _ => {
                return self.mass_cancel_report(
                    &cl_ord_id,
                    &request_type,
                    "0",
                    "MassCancelRequestType must be 1 or 7",
                    out,
                )
            }
        };
        let what = InFlight::MassCancel {
            cl_ord_id: cl_ord_id.clone(),
            request_type: request_type.clone(),
        };
        if let Err(reason) = self.submit(ClientCommand::MassCancel { instrument }, what) {
            self.mass_cancel_report(&cl_ord_id, &request_type, "0", &reason, out);
        }
    }

    fn mass_cancel_report(
        &mut self,
        cl_ord_id: &str,
        request_type: &str,
        response: &str,
        text: &str,
        out: &mut Vec<Output>,
    ) {
        let body = vec![
            Field::new(11, if cl_ord_id.is_empty() { "?" } else { cl_ord_id }),
            Field::new(37, "MASS"),
            Field::new(530, request_type),
            Field::new(531, response),
            Field::new(58, text),
        ];
        self.send("r", body, out);
    }

    fn mass_cancel_done(
        &mut self,
        outcome: &Outcome,
        cl_ord_id: &str,
        request_type: &str,
        out: &mut Vec<Output>,
    ) {
        let mut cancelled = 0;
        for event in &outcome.events {
            if let Event::Cancelled { order_id, .. } = event {
                cancelled += 1;
                let exec_id = self.exec_id(outcome);
                if let Some(cl) = self.order_ids.get(order_id).cloned() {
                    if let Some(order) = self.orders.get_mut(&cl) {
                        order.status = "4";
                        let body = order.clone().report(exec_id, "4", None, None);
                        self.send("8", body, out);
                    }
                }
            }
        }
        let text = format!("{cancelled} orders cancelled");
        self.mass_cancel_report(cl_ord_id, request_type, request_type, &text, out);
    }

    fn status(&mut self, message: &Message, out: &mut Vec<Output>) {
        let cl_ord_id = message.get_str(11).unwrap_or("");
        match self.orders.get(cl_ord_id).cloned() {
            Some(order) => {
                let body = order.report(format!("status-{}", self.execs), "I", None, None);
                self.send("8", body, out);
            }
            None => self.reject_new(message, 5, "unknown ClOrdID", out),
        }
    }

    /// The session's orders are cancelled and the session closed, whatever ended the
    /// connection. Nobody waits for the outcome.
    fn cancel_on_disconnect(&mut self, reason: Option<&str>) {
        let Some(t) = self.trading.take() else {
            return;
        };
        self.shared
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(t.account, t.sender.clone()));
        let Some((_, slot)) = t.id.as_session() else {
            return;
        };
        let (sink, _) = channel();
        for (i, command) in [
            ClientCommand::MassCancel { instrument: None },
            ClientCommand::CloseSession { slot },
        ]
        .into_iter()
        .enumerate()
        {
            let nonce = t.next_nonce + i as u64;
            let tx = SignedTx::sign(t.id, nonce, command, &t.key);
            if let Err(error) = self.shared.upstream.submit(&tx, sink.clone()) {
                warn!(%error, "cancel on disconnect could not be submitted");
            }
            self.shared.upstream.forget(t.id, nonce);
        }
        info!(peer = %self.peer, account = t.account, reason = reason.unwrap_or("logout"), "cancelled the session's orders and closed it");
    }
}
