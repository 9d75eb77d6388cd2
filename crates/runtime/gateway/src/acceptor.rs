//! The FIX acceptor: the accept thread with its pre-authentication limits, and one thread per
//! connection driving a [`Session`] with the wall clock.
//!
//! Before a byte is read: at most `connections_max` connections, `connections_per_ip` from one
//! address and `preauth_max` not yet logged on (over any, the connection is closed at once, so
//! a flood of strangers cannot take the places of sessions). Before logon: the session's 2 s
//! deadline and 4 KiB first-message bound, read at a slow poll. At logon: the address's and
//! the gateway's logon budgets before any signature is checked, then the signature under the
//! account's key (as `quorum` nodes give it), then the trading session the committee opens on
//! the same signature. After logon: credits by class ([`crate::credits`]; refused at once,
//! never queued; cancels never refused), `in_flight_max` orders in flight, and the kill switch
//! ([`crate::killswitch`]). An ExecutionReport is sent only for what `quorum` nodes report
//! finalized. On disconnect the session's orders are cancelled and the session closed, retried
//! until the committee has done it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark_api::answers::ReceiptEvent as Event;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::SESSION_ACCOUNT_LIMIT;
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, RejectReason, SessionGrant};
use bulwark_fix::logon::{LogonError, LogonRequest};
use bulwark_fix::session::{Close, Config as SessionConfig, Output, SeqNums, Session};
use bulwark_fix::{Field, Message};
use ed25519_dalek::SigningKey;
use tracing::{info, warn};

use crate::config::GatewayConfig;
use crate::credits::{Class, GatewayCredits, LogonBudget, SessionCredits};
use crate::killswitch::KillSwitch;
use crate::orders::{self, Applied, OrderState};
use crate::seqstore::SeqStore;
use crate::upstream::{self, Outcome, Upstream, Verdict};

/// How long a read waits before the loop looks at timers and outcomes, logged on.
const READ_POLL: Duration = Duration::from_millis(5);
/// The same before logon: only the logon deadline is waited for.
const READ_POLL_PREAUTH: Duration = Duration::from_millis(50);
/// How often sequence numbers are synced to the disk (they are written before every send).
const SEQ_SYNC_EVERY: Duration = Duration::from_secs(1);
/// Cancels a session may have in flight (they are never refused for credit; this bounds
/// memory).
const CANCELS_IN_FLIGHT_MAX: usize = 1024;
/// How long cancel on disconnect keeps trying.
const COD_RETRY_FOR: Duration = Duration::from_secs(60);
/// Mass cancels a session may have in flight.
const MASS_CANCELS_IN_FLIGHT_MAX: usize = 4;
/// Bytes waiting to be written before they are written (a ResendRequest can ask for the whole
/// journal; the client gets it at the pace it reads).
const OUTBOX_FLUSH_AT: usize = 256 * 1024;
/// How long a write may block before the connection is given up (a client that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times the kill switch's mass cancel is sent again when it is not taken.
const KILL_CANCEL_TRIES: u32 = 5;

/// The key the per-address limits count under: the address, or an IPv6 address's /64 (one
/// host's usual allocation, so an attacker cannot count as many addresses as it likes).
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}
/// Orders a session remembers (by ClOrdID).
const ORDERS_KEPT: usize = 100_000;
/// Longest ClOrdID, OrigClOrdID or Symbol taken (and echoed).
const ID_BYTES_MAX: usize = 64;
/// How many slots a logon tries when the one it picked is taken.
const SLOT_TRIES: u32 = 4;
/// How long a session may be silent before the committee itself cancels its account's orders
/// and closes it ([`ClientCommand::SessionHeartbeat`]): cancel on disconnect, kept by the
/// committee for a gateway that dies outright (kill -9, power, a cut link).
/// Above the engine's least (20 s, twice the 10 s a leader may stamp a block ahead), so that
/// a leader's clock cannot silence a session whose heartbeats come.
pub const SESSION_SILENCE_MS: u32 = 30_000;
/// A session the committee has heard nothing from for this long sends a heartbeat (several
/// chances per bound).
pub const SESSION_BEAT_AFTER: Duration = Duration::from_secs(5);
/// A heartbeat that was not taken is sent again after this.
pub const SESSION_BEAT_RETRY: Duration = Duration::from_secs(1);

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
    /// Connections closed at accept for the pre-authentication bound.
    pub refused_preauth: AtomicU64,
    /// Logons refused for their address's budget before any signature was checked.
    pub logons_over_address_budget: AtomicU64,
    /// WebSocket connections closed before TLS for the handshake budgets.
    pub handshakes_over_budget: AtomicU64,
    /// New orders refused for their credits or the in-flight bound.
    pub orders_throttled: AtomicU64,
    /// Order status requests refused for their credits.
    pub queries_throttled: AtomicU64,
    /// New orders refused because the kill switch covers the account.
    pub orders_killed: AtomicU64,
    /// Cancels sent (none is ever refused for credit).
    pub cancels: AtomicU64,
    /// Execution reports sent for finalized outcomes.
    pub reports: AtomicU64,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) seqs: SeqStore,
    pub(crate) credits: GatewayCredits,
    pub(crate) kill: KillSwitch,
    /// Connections not yet logged on.
    pub(crate) preauth: AtomicUsize,
    /// (account, SenderCompID) logged on now: one session each.
    pub(crate) active: Mutex<HashSet<(u64, String)>>,
    /// Connections open (their threads running).
    pub(crate) live: AtomicUsize,
    /// Connections per address key (an IPv4 address, an IPv6 /64).
    pub(crate) per_address: Mutex<HashMap<IpAddr, PerAddress>>,
    /// Cancel-on-disconnect threads running.
    pub(crate) closing: AtomicUsize,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stop: Arc<AtomicBool>,
    /// The WebSocket listener's TLS, when it listens.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The books WebSocket subscribers watch.
    pub(crate) books: crate::ws::Books,
}

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serves one accepted connection on its own thread, holding its places.
pub(crate) type Serve = fn(TcpStream, SocketAddr, Arc<Shared>, Places);

/// Serves a FIX connection.
pub(crate) fn serve_fix(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, places: Places) {
    Connection::new(stream, peer, shared, places).run();
}

/// The accept loop of one listener (`name`: fix, ws), until `stop`. Both listeners count
/// their connections in the same places, so the per-address and global bounds hold across
/// protocols.
pub(crate) fn accept(listener: TcpListener, shared: Arc<Shared>, name: &'static str, serve: Serve) {
    if let Err(error) = listener.set_nonblocking(true) {
        warn!(%error, listener = name, "cannot make the listener non-blocking");
        return;
    }
    let mut polled = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if polled.elapsed() >= crate::killswitch::POLL {
            shared.kill.reload();
            shared.credits.tidy();
            polled = Instant::now();
        }
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
        // The places are taken here; the guard gives them back however the connection ends.
        let Some(guard) = Places::take(&shared, peer.ip()) else {
            drop(stream);
            continue;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-{peer}"))
            .spawn(move || {
                let shared = Arc::clone(&guard.shared);
                serve(stream, peer, shared, guard);
            });
        if let Err(error) = spawned {
            // The closure and its guard are dropped with the error: the places are back.
            warn!(%error, "cannot start a connection thread");
        }
    }
}

/// Connections counted per address key: all of them, and those not yet logged on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PerAddress {
    connections: usize,
    preauth: usize,
}

/// The places one connection holds in the accept loop's counts (connection threads running,
/// connections in all and per address, pre-authentication places), given back on drop, a
/// panicking connection thread included.
pub(crate) struct Places {
    shared: Arc<Shared>,
    key: IpAddr,
    preauth: bool,
}

impl Places {
    /// Takes the places of a new connection from `ip`, or counts why not.
    pub(crate) fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<Places> {
        let limits = shared.config.limits;
        let key = address_key(ip);
        let mut per = shared.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let here = per.get(&key).copied().unwrap_or_default();
        let counter = if here.connections >= limits.connections_per_ip
            || shared.live.load(Ordering::Acquire) >= limits.connections_max
        {
            &shared.counters.refused_at_accept
        } else if here.preauth >= limits.preauth_per_ip
            || shared.preauth.load(Ordering::Acquire) >= limits.preauth_max
        {
            &shared.counters.refused_preauth
        } else {
            per.insert(
                key,
                PerAddress {
                    connections: here.connections + 1,
                    preauth: here.preauth + 1,
                },
            );
            shared.live.fetch_add(1, Ordering::AcqRel);
            shared.preauth.fetch_add(1, Ordering::AcqRel);
            return Some(Places {
                shared: Arc::clone(shared),
                key,
                preauth: true,
            });
        };
        counter.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Whether it still holds a pre-authentication place.
    pub(crate) fn preauth(&self) -> bool {
        self.preauth
    }

    /// Gives back the pre-authentication place (once): at logon, or at the end.
    pub(crate) fn leave_preauth(&mut self) {
        if !std::mem::take(&mut self.preauth) {
            return;
        }
        self.shared.preauth.fetch_sub(1, Ordering::AcqRel);
        let mut per = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(here) = per.get_mut(&self.key) {
            here.preauth = here.preauth.saturating_sub(1);
        }
    }
}

impl Drop for Places {
    fn drop(&mut self) {
        self.leave_preauth();
        let mut per = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(here) = per.get_mut(&self.key) {
            here.connections = here.connections.saturating_sub(1);
            if here.connections == 0 {
                per.remove(&self.key);
            }
        }
        drop(per);
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
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
    /// The mass cancel the kill switch sent (the how-many-th time).
    KillCancel(u32),
    /// An OrderCancelReplaceRequest: the new ClOrdID, the order's, and its new OrderQty.
    Replace {
        cl_ord_id: String,
        orig: String,
        qty: i64,
    },
    /// The session's heartbeat to the committee ([`Trading::heartbeat`]); whether it disarms.
    Heartbeat {
        disarm: bool,
    },
}

/// The trading session the committee opened for a connection.
pub(crate) struct Trading {
    /// The session's acting id.
    pub(crate) id: AccountId,
    /// The session key (the trader made it and signed for it at logon).
    pub(crate) key: SigningKey,
    /// The next transaction's nonce.
    pub(crate) next_nonce: u64,
    /// The account.
    pub(crate) account: u64,
    /// The client's name (SenderCompID, or the WebSocket client_id).
    pub(crate) sender: String,
    /// Whether the committee has armed the session's silence bound: an arming heartbeat was
    /// finalized without a rejection (and no disarm since).
    pub(crate) armed: bool,
    /// A heartbeat is in flight.
    pub(crate) beating: bool,
    /// When the last heartbeat was sent (a failed one is sent again [`SESSION_BEAT_RETRY`]
    /// later).
    pub(crate) beat_sent: Option<Instant>,
    /// When the committee last heard from the session: a finalized transaction it counted.
    pub(crate) heard: Instant,
    /// Whether any transaction under the session was finalized after it opened: until then a
    /// node may not know its key yet, so "unknown account" does not mean it is gone.
    pub(crate) confirmed: bool,
    /// The highest committed height the session has seen: its grant's, its finalized
    /// transactions', its reads'. Reads count only answers at this height or above, so the
    /// trader never reads a state older than its own acknowledgements.
    pub(crate) seen_height: u64,
}

impl Trading {
    /// A session the committee opened for `logon` under `id` at height `opened_at`, its next
    /// nonce `next_nonce`.
    pub(crate) fn new(
        id: AccountId,
        key: SigningKey,
        next_nonce: u64,
        logon: &LogonRequest,
        opened_at: u64,
    ) -> Self {
        Trading {
            id,
            key,
            next_nonce,
            account: logon.account,
            sender: logon.sender.clone(),
            armed: false,
            beating: false,
            beat_sent: None,
            heard: Instant::now(),
            confirmed: false,
            seen_height: opened_at,
        }
    }

    /// The session has seen the committee at `height`.
    pub(crate) fn saw(&mut self, height: u64) {
        self.seen_height = self.seen_height.max(height);
    }

    /// The heartbeat the session owes the committee now, if any: arming its silence bound
    /// right after logon and again whenever the committee has heard nothing for
    /// [`SESSION_BEAT_AFTER`] while `cancel_on_disconnect`; disarming it once the trader turned
    /// cancel on disconnect off.
    /// One heartbeat is in flight at a time; one that failed goes again after
    /// [`SESSION_BEAT_RETRY`]. The bound counts as armed only once the committee finalized an
    /// arming heartbeat, so a busy session whose first arm was lost does not run unarmed.
    pub(crate) fn heartbeat(&mut self, cancel_on_disconnect: bool) -> Option<ClientCommand> {
        if self.beating {
            return None;
        }
        let retry_ok = self
            .beat_sent
            .is_none_or(|at| at.elapsed() >= SESSION_BEAT_RETRY);
        let due = match (cancel_on_disconnect, self.armed) {
            (true, true) => self.heard.elapsed() >= SESSION_BEAT_AFTER,
            (true, false) | (false, true) => retry_ok,
            (false, false) => false,
        };
        if !due {
            return None;
        }
        self.beating = true;
        self.beat_sent = Some(Instant::now());
        let within_ms = if cancel_on_disconnect {
            SESSION_SILENCE_MS
        } else {
            0
        };
        Some(ClientCommand::SessionHeartbeat { within_ms })
    }

    /// What became of the heartbeat in flight: `taken` when the committee finalized it without
    /// a rejection. A disarm taken disarms; an arm taken arms; one not taken changes nothing
    /// (it is sent again).
    pub(crate) fn beat_done(&mut self, disarm: bool, taken: bool) {
        self.beating = false;
        if taken {
            self.armed = !disarm;
        }
    }

    /// The committee finalized a transaction under the session: unless it was refused
    /// before the session counted it (a stale nonce, no session), the engine heard from it.
    pub(crate) fn finalized(&mut self, outcome: &Outcome) {
        let uncounted = outcome.events.iter().any(|e| {
            matches!(
                e,
                Event::Rejected {
                    reason: RejectReason::StaleNonce | RejectReason::NoSession
                }
            )
        });
        if !uncounted {
            self.heard = Instant::now();
            self.confirmed = true;
        }
    }

    /// Whether a refusal of a transaction under the session by every node (`reason`) says
    /// the committee has closed it ([`refused_as_gone`]), once the session was confirmed.
    pub(crate) fn gone(&self, reason: &str) -> bool {
        self.confirmed && refused_as_gone(reason)
    }
}

/// Whether the heartbeat `outcome` was taken: finalized without a rejection.
pub(crate) fn beat_taken(outcome: &Outcome) -> bool {
    !outcome
        .events
        .iter()
        .any(|e| matches!(e, Event::Rejected { .. }))
}

/// Whether `outcome` says the committee has no such session any more (it expired there).
pub(crate) fn session_gone(outcome: &Outcome) -> bool {
    outcome.events.iter().any(|e| {
        matches!(
            e,
            Event::Rejected {
                reason: RejectReason::NoSession
            }
        )
    })
}

/// Whether a refusal by every node says the session's id has no key there: the committee
/// closed the session itself (silent past its bound, revoked by the trader) and a transaction
/// under it can no longer even be checked. Only when every reason says so (one hostile node's
/// reason among others' does not end a session).
pub(crate) fn refused_as_gone(reason: &str) -> bool {
    !reason.is_empty() && reason.split("; ").all(|r| r.contains("unknown account"))
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    session: Session,
    outcomes: (Sender<Verdict>, Receiver<Verdict>),
    in_flight: HashMap<u64, InFlight>,
    /// New orders whose verdict expired (by nonce, their ClOrdID): reported if it comes late.
    late: upstream::Late<String>,
    /// Of `in_flight`, the cancels.
    cancels_in_flight: usize,
    opening: Option<(SigningKey, AccountId)>,
    /// The (account, SenderCompID) this connection holds in the shared `active` set.
    identity: Option<(u64, String)>,
    trading: Option<Trading>,
    orders: HashMap<String, OrderState>,
    order_ids: HashMap<u64, String>,
    credits: SessionCredits,
    execs: u64,
    /// Its places in the accept loop's counts.
    places: Places,
    /// The kill switch's generation this session last looked at, and whether it covers us.
    kill_seen: u64,
    killed: bool,
    /// Sequence numbers to write before `outbox` goes out.
    dirty: Option<SeqNums>,
    /// The numbers last written and not yet synced to the disk.
    unsynced: Option<SeqNums>,
    /// The logged-on session's sequence number file, kept open.
    seq_file: Option<crate::seqstore::SeqFile>,
    synced: Instant,
    outbox: Vec<u8>,
    /// Market data subscriptions by MDReqID, and when they were last looked at.
    market_data: HashMap<String, MdSubscription>,
    md_pushed: Instant,
    /// The last trade on the gateway's tape this session looked at (its resting orders'
    /// fills as a maker come from there).
    tape_seen: u64,
}

/// One FIX market data subscription: its instruments, full or incremental refreshes, and the
/// top of book last sent per instrument.
struct MdSubscription {
    instruments: Vec<bulwark_api::answers::InstrumentAnswer>,
    incremental: bool,
    sent: HashMap<u32, crate::marketdata::Top>,
}

/// Market data subscriptions one session may hold.
const MD_SUBSCRIPTIONS_MAX: usize = 8;
/// How often a session looks for changed tops of book (the watcher reads them every 100 ms).
const MD_PUSH_EVERY: Duration = Duration::from_millis(50);

/// The top of an agreed book.
fn top_of(book: &bulwark_api::answers::BookAnswer) -> crate::marketdata::Top {
    (book.bids.first().copied(), book.asks.first().copied())
}

impl Connection {
    fn new(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, places: Places) -> Connection {
        let mut config = SessionConfig::new(shared.config.comp_id.clone());
        // The Logon within 2 s; then the committee has 10 s to open the trading session (the
        // engine's logon window: a later grant is refused anyway).
        config.logon_deadline_ms = 2_000;
        config.authenticate_wait_ms = bulwark_engine::session::LOGON_WINDOW_MS;
        let credits = SessionCredits::new(&shared.config.limits);
        Connection {
            stream,
            peer,
            session: Session::new(config, now_ms()),
            shared,
            outcomes: channel(),
            in_flight: HashMap::new(),
            late: upstream::Late::default(),
            opening: None,
            identity: None,
            trading: None,
            orders: HashMap::new(),
            order_ids: HashMap::new(),
            credits,
            execs: 0,
            places,
            kill_seen: u64::MAX,
            killed: false,
            dirty: None,
            unsynced: None,
            seq_file: None,
            synced: Instant::now(),
            outbox: Vec::new(),
            cancels_in_flight: 0,
            market_data: HashMap::new(),
            md_pushed: Instant::now(),
            tape_seen: 0,
        }
    }

    fn run(mut self) {
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = self.stream.set_read_timeout(Some(READ_POLL_PREAUTH));
        let mut buf = vec![0u8; 16 * 1024];
        let mut reason = None;
        while !self.session.is_closed() {
            let mut out = Vec::new();
            if self.places.preauth && self.trading.is_some() {
                self.places.leave_preauth();
                if self.stream.set_read_timeout(Some(READ_POLL)).is_err() {
                    break;
                }
            }
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
            while let Ok(verdict) = self.outcomes.1.try_recv() {
                self.on_outcome(verdict, &mut out);
            }
            self.watch_kill_switch();
            self.beat();
            self.push_market_data(&mut out);
            self.watch_tape(&mut out);
            if !self.carry_out(out) {
                break;
            }
        }
        let _ = self.stream.flush();
        // The numbers are synced when the session ends.
        if let (Some(seq), Some(t)) = (self.dirty.take().or(self.unsynced), &self.trading) {
            if let Some(file) = &self.seq_file {
                let _ = file.write(seq, true);
            } else {
                let _ = self.shared.seqs.save(t.account, &t.sender, seq, true);
            }
        }
        if self.trading.is_none() {
            self.shared
                .counters
                .closed_before_logon
                .fetch_add(1, Ordering::Relaxed);
        }
        self.end(reason.as_deref());
    }

    /// Cancel on disconnect, and the identity given back (once; `Drop` calls it too, so a
    /// panicking connection thread does not leave its orders resting or its identity taken).
    fn end(&mut self, reason: Option<&str>) {
        self.cancel_on_disconnect(reason);
        // Whatever ended the connection (a logon still being opened included), the identity
        // may log on again.
        if let Some(identity) = self.identity.take() {
            give_identity(&self.shared, &identity);
        }
    }

    /// Carries out the session's outputs in order; false when the connection is done.
    fn carry_out(&mut self, out: Vec<Output>) -> bool {
        let mut queue: VecDeque<Output> = out.into();
        while let Some(output) = queue.pop_front() {
            let mut more = Vec::new();
            match output {
                Output::Send(bytes) => {
                    self.outbox.extend_from_slice(&bytes);
                    if self.outbox.len() >= OUTBOX_FLUSH_AT && !self.flush() {
                        return false;
                    }
                }
                Output::Authenticate(logon) => self.authenticate(logon, &mut more),
                Output::Application(message) => self.on_application(&message, &mut more),
                Output::Persist(seq) => {
                    if self.trading.is_some() {
                        self.dirty = Some(seq);
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
        self.flush()
    }

    /// Writes the sequence numbers the pending sends use, then the sends; false when the
    /// connection is done.
    fn flush(&mut self) -> bool {
        if let (Some(seq), Some(t)) = (self.dirty, &self.trading) {
            let sync = self.synced.elapsed() >= SEQ_SYNC_EVERY;
            let written = match &self.seq_file {
                Some(file) => file.write(seq, sync),
                None => self.shared.seqs.save(t.account, &t.sender, seq, sync),
            };
            if let Err(error) = written {
                // Nothing that uses the unwritten numbers goes out.
                warn!(%error, "cannot persist sequence numbers; ending the connection");
                self.outbox.clear();
                return false;
            }
            self.dirty = None;
            if sync {
                self.synced = Instant::now();
                self.unsynced = None;
            } else {
                self.unsynced = Some(seq);
            }
        }
        if self.outbox.is_empty() {
            return true;
        }
        let bytes = std::mem::take(&mut self.outbox);
        self.stream.write_all(&bytes).is_ok()
    }

    /// When the kill switch changes: an account it now covers has its orders cancelled once,
    /// and new orders are refused while it stays covered.
    fn watch_kill_switch(&mut self) {
        let account = self.trading.as_ref().map(|t| t.account);
        let kill = &self.shared.kill;
        if kill.newly_engaged(account, &mut self.kill_seen, &mut self.killed) {
            warn!(peer = %self.peer, ?account, "kill switch engaged: cancelling the session's orders");
            let command = ClientCommand::MassCancel { instrument: None };
            self.submit(command, upstream::Class::Protected, InFlight::KillCancel(0));
        }
    }

    fn authenticate(&mut self, logon: LogonRequest, out: &mut Vec<Output>) {
        let now = now_ms();
        if let Err(error) = check_logon(&self.shared, self.peer.ip(), &logon) {
            self.session.refuse_logon(now, error, out);
            return;
        }
        // Damaged sequence numbers refuse the logon before any trading session is opened.
        if let Err(error) = self.shared.seqs.load(logon.account, &logon.sender) {
            warn!(%error, "sequence numbers unreadable; refusing the logon");
            let text = "the gateway cannot read this session's sequence numbers".into();
            self.session
                .refuse_logon(now, LogonError::Refused(text), out);
            return;
        }
        let Some(identity) = take_identity(&self.shared, &logon) else {
            let error =
                LogonError::Refused("this account and SenderCompID are logged on already".into());
            self.session.refuse_logon(now, error, out);
            return;
        };
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
        let Some((tx, id)) = grant_tx(&self.shared, &logon, &key) else {
            self.refuse(LogonError::Signature, out);
            return;
        };
        self.shared
            .upstream
            .submit(&tx, upstream::Class::Sheddable, self.outcomes.0.clone());
        self.opening = Some((key, id));
        self.in_flight
            .insert(tx.nonce, InFlight::Open { logon, tries });
    }

    /// Refuses the logon; the identity it holds in the active set is given back when the
    /// connection ends (`run`), never earlier, so no second session can share it meanwhile.
    fn refuse(&mut self, error: LogonError, out: &mut Vec<Output>) {
        self.session.refuse_logon(now_ms(), error, out);
    }

    fn on_outcome(&mut self, verdict: Verdict, out: &mut Vec<Output>) {
        let outcome = match verdict {
            Verdict::Finalized(outcome) => {
                if let Some(trading) = self.trading.as_mut() {
                    trading.saw(outcome.height);
                }
                outcome
            }
            Verdict::Refused { nonce, reason } => {
                return self.on_refused(nonce, &reason, true, out)
            }
            Verdict::Expired { nonce } => {
                let reason = "no outcome from the committee in time";
                return self.on_refused(nonce, reason, false, out);
            }
        };
        let what = match self.in_flight.remove(&outcome.nonce) {
            Some(what) => what,
            None => match self.late.take(outcome.nonce) {
                Some(cl_ord_id) => {
                    info!(peer = %self.peer, %cl_ord_id, height = outcome.height, "an order's outcome came after its wait expired");
                    InFlight::New { cl_ord_id }
                }
                None => return,
            },
        };
        if matches!(what, InFlight::Cancel { .. }) {
            self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1);
        }
        if let Some(t) = self.trading.as_mut() {
            t.finalized(&outcome);
        }
        if let (InFlight::Heartbeat { disarm }, Some(t)) = (&what, self.trading.as_mut()) {
            t.beat_done(*disarm, beat_taken(&outcome));
        }
        match what {
            InFlight::Heartbeat { .. } if session_gone(&outcome) => self.session_closed(out),
            InFlight::Heartbeat { .. } => {}
            InFlight::Replace {
                cl_ord_id,
                orig,
                qty,
            } => self.replace_done(&outcome, &cl_ord_id, &orig, qty, out),
            InFlight::KillCancel(_) => {
                let cancelled = self.report_cancelled(&outcome, out);
                info!(peer = %self.peer, cancelled, "the kill switch cancelled the session's orders");
            }
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

    /// A transaction no node took (`refused`), or whose outcome did not come in time: the
    /// trader hears it the way its request expects. An order whose fate is unknown is not
    /// reported rejected: it stays pending new (OrderStatusRequest says so).
    fn on_refused(&mut self, nonce: u64, reason: &str, refused: bool, out: &mut Vec<Output>) {
        let what = match self.in_flight.remove(&nonce) {
            Some(what) => what,
            // A late order every node refused after all: rejected now.
            None => match (refused, self.late.take(nonce)) {
                (true, Some(cl_ord_id)) => InFlight::New { cl_ord_id },
                (false, Some(cl_ord_id)) => {
                    return self.late.keep(nonce, cl_ord_id, Instant::now())
                }
                (_, None) => return,
            },
        };
        match what {
            InFlight::Open { .. } => {
                // A grant whose fate is unknown may still open the session: it is closed if so.
                if let (false, Some((key, id))) = (refused, self.opening.take()) {
                    close_unknown_grant(&self.shared, self.peer, id, key, nonce);
                }
                self.opening = None;
                let text = format!("the committee did not open the trading session: {reason}");
                self.refuse(LogonError::Refused(text), out);
            }
            InFlight::New { cl_ord_id } => {
                let Some(mut order) = self.orders.get(&cl_ord_id).cloned() else {
                    return;
                };
                if order.status != "A" {
                    return;
                }
                if !refused {
                    warn!(peer = %self.peer, %cl_ord_id, "an order's outcome did not come in time; it stays pending until it comes");
                    self.late.keep(nonce, cl_ord_id, Instant::now());
                    return;
                }
                order.status = "8";
                self.execs += 1;
                let exec_id = format!("ref-{nonce}-{}", self.execs);
                let body = order.report(exec_id, "8", None, Some(reason));
                self.orders.insert(cl_ord_id, order);
                self.send("8", body, out);
            }
            InFlight::Cancel { cl_ord_id, orig } => {
                self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1);
                self.cancel_reject(&cl_ord_id, &orig, reason, out);
            }
            InFlight::MassCancel {
                cl_ord_id,
                request_type,
            } => self.mass_cancel_report(&cl_ord_id, &request_type, "0", reason, out),
            InFlight::Replace {
                cl_ord_id, orig, ..
            } => self.change_reject(&cl_ord_id, &orig, reason, "2", out),
            InFlight::KillCancel(tries) => {
                warn!(peer = %self.peer, %reason, tries, "the kill switch's mass cancel was not taken");
                if self.killed && tries + 1 < KILL_CANCEL_TRIES {
                    let command = ClientCommand::MassCancel { instrument: None };
                    let what = InFlight::KillCancel(tries + 1);
                    self.submit(command, upstream::Class::Protected, what);
                }
            }
            InFlight::Heartbeat { disarm } => {
                let gone = match self.trading.as_mut() {
                    Some(t) => {
                        t.beat_done(disarm, false);
                        refused && t.gone(reason)
                    }
                    None => false,
                };
                if gone {
                    self.session_closed(out)
                } else {
                    warn!(peer = %self.peer, %reason, "the session's heartbeat was not taken");
                }
            }
        }
    }

    /// The session's heartbeat to the committee, when one is due (FIX sessions always cancel
    /// on disconnect).
    fn beat(&mut self) {
        if let Some(command) = self.trading.as_mut().and_then(|t| t.heartbeat(true)) {
            let what = InFlight::Heartbeat { disarm: false };
            self.submit(command, upstream::Class::Protected, what);
        }
    }

    /// The committee has closed this connection's trading session: the trader is logged out.
    fn session_closed(&mut self, out: &mut Vec<Output>) {
        warn!(peer = %self.peer, "the committee closed the trading session (silent past its bound, expired or revoked)");
        if self.session.is_active() {
            let text = "the committee closed the trading session";
            self.session.logout(now_ms(), text, out);
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
            let seqs = &self.shared.seqs;
            let loaded = seqs.load(logon.account, &logon.sender).and_then(|seq| {
                let file = seqs
                    .open_file(logon.account, &logon.sender, seq)
                    .map_err(|e| format!("cannot open the sequence numbers: {e}"))?;
                Ok((seq, file))
            });
            let stored = match loaded {
                Ok((seq, file)) => {
                    self.seq_file = Some(file);
                    seq
                }
                Err(error) => {
                    warn!(%error, "sequence numbers unreadable; refusing the logon and closing its trading session");
                    if let Some((_, slot)) = id.as_session() {
                        let close = vec![ClientCommand::CloseSession {
                            slot,
                            cancel_placed: false,
                        }];
                        let why = "unreadable sequence numbers";
                        let first = outcome.nonce + 1;
                        spawn_close_out(
                            &self.shared,
                            self.peer,
                            id,
                            key,
                            first,
                            close,
                            Opening::Opened,
                            why,
                        );
                    }
                    self.refuse(
                        LogonError::Refused(
                            "the gateway cannot read this session's sequence numbers".into(),
                        ),
                        out,
                    );
                    return;
                }
            };
            self.trading = Some(Trading::new(
                id,
                key,
                outcome.nonce + 1,
                &logon,
                outcome.height,
            ));
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
        self.refuse(LogonError::Refused(text), out);
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

    /// Signs `command` with the session key and submits it, remembering what it was for. Its
    /// verdict comes back on the session's channel.
    fn submit(&mut self, command: ClientCommand, class: upstream::Class, what: InFlight) {
        let Some(t) = self.trading.as_mut() else {
            return;
        };
        let nonce = t.next_nonce;
        t.next_nonce += 1;
        let tx = SignedTx::sign(t.id, nonce, command, &t.key);
        if matches!(what, InFlight::Cancel { .. }) {
            self.cancels_in_flight += 1;
        }
        self.in_flight.insert(nonce, what);
        self.shared
            .upstream
            .submit(&tx, class, self.outcomes.0.clone());
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
            b"G" => self.replace(message, out),
            b"q" => self.mass_cancel(message, out),
            b"H" => self.status(message, out),
            b"V" => self.market_data_request(message, out),
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
        if self.killed {
            self.shared
                .counters
                .orders_killed
                .fetch_add(1, Ordering::Relaxed);
            return self.reject_new(
                message,
                99,
                "the kill switch is engaged for this account (cancels are still taken)",
                out,
            );
        }
        if !self.within_credit(Class::Order) {
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
        // Remembered first: the verdict may refer to it.
        self.orders.insert(
            cl_ord_id.clone(),
            OrderState {
                cl_ord_id: cl_ord_id.clone(),
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
        let what = InFlight::New { cl_ord_id };
        self.submit(command, upstream::Class::Sheddable, what);
    }

    fn new_order_done(&mut self, outcome: &Outcome, cl_ord_id: &str, out: &mut Vec<Output>) {
        let Some(mut order) = self.orders.get(cl_ord_id).cloned() else {
            return;
        };
        for event in &outcome.events {
            let Some(applied) = order.apply(event) else {
                continue;
            };
            let exec_id = self.exec_id(outcome);
            let body = match applied {
                Applied::Accepted { order_id } => {
                    self.order_ids.insert(order_id, cl_ord_id.to_string());
                    order.report(exec_id, "0", None, None)
                }
                Applied::Filled { price, qty, .. } => {
                    order.report(exec_id, "F", Some((price, qty)), None)
                }
                Applied::Cancelled { reason } => {
                    order.report(exec_id, "4", None, Some(&format!("{reason:?}")))
                }
                Applied::Rejected { reason } => {
                    order.report(exec_id, "8", None, Some(&format!("{reason:?}")))
                }
            };
            self.send("8", body, out);
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
        let Some((order_id, instrument, status)) = known else {
            return self.cancel_reject(
                &cl_ord_id,
                &orig,
                "unknown or not yet acknowledged order",
                out,
            );
        };
        // What the committee would refuse anyway is answered here: a cancel is never refused
        // for credit, but it must have something to cancel.
        if matches!(status, "2" | "4" | "8") {
            return self.cancel_reject(&cl_ord_id, &orig, "the order is already done", out);
        }
        if self.changing(&orig) {
            return self.cancel_reject(
                &cl_ord_id,
                &orig,
                "a cancel or replace of this order is already in flight",
                out,
            );
        }
        let command = ClientCommand::Cancel {
            instrument: InstrumentId(instrument),
            order_id: bulwark_engine::OrderId(order_id),
        };
        if self.cancels_in_flight >= CANCELS_IN_FLIGHT_MAX {
            return self.cancel_reject(
                &cl_ord_id,
                &orig,
                "too many cancels in flight in this session; wait for their reports",
                out,
            );
        }
        self.shared.counters.cancels.fetch_add(1, Ordering::Relaxed);
        let what = InFlight::Cancel { cl_ord_id, orig };
        self.submit(command, upstream::Class::Protected, what);
    }

    fn cancel_reject(&mut self, cl_ord_id: &str, orig: &str, text: &str, out: &mut Vec<Output>) {
        self.change_reject(cl_ord_id, orig, text, "1", out);
    }

    /// OrderCancelReject (35=9) to a cancel (`response_to` "1") or a replace ("2").
    fn change_reject(
        &mut self,
        cl_ord_id: &str,
        orig: &str,
        text: &str,
        response_to: &str,
        out: &mut Vec<Output>,
    ) {
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
            Field::new(434, response_to),
            Field::new(102, "1"),
            Field::new(58, text),
        ];
        self.send("9", body, out);
    }

    /// Whether a new order or a replace (`class`) is within the session's in-flight bound and
    /// its credits (spending them); counted as throttled when not.
    fn within_credit(&mut self, class: Class) -> bool {
        let account = self.trading.as_ref().map_or(0, |t| t.account);
        let orders_in_flight = self.in_flight.len().saturating_sub(self.cancels_in_flight);
        let admitted = orders_in_flight < self.shared.config.limits.in_flight_max
            && self.credits.admit(class, account, &self.shared.credits);
        if !admitted {
            self.shared
                .counters
                .orders_throttled
                .fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Whether a cancel or a replace of the order `orig` names is in flight.
    fn changing(&self, orig: &str) -> bool {
        self.in_flight.values().any(|w| {
            matches!(w, InFlight::Cancel { orig: o, .. } | InFlight::Replace { orig: o, .. } if o == orig)
        })
    }

    /// OrderCancelReplaceRequest (35=G): the engine's amend of a resting limit order, under the
    /// modify credits; answered with ExecutionReport Replaced (150=5) once finalized, after which
    /// the new ClOrdID names the order.
    fn replace(&mut self, message: &Message, out: &mut Vec<Output>) {
        let cl_ord_id = message.get_str(11).unwrap_or("").to_string();
        let orig = message.get_str(41).unwrap_or("").to_string();
        let reject = |this: &mut Self, text: &str, out: &mut Vec<Output>| {
            this.change_reject(&cl_ord_id, &orig, text, "2", out)
        };
        let Some(order) = self.orders.get(&orig).cloned() else {
            return reject(self, "unknown or not yet acknowledged order", out);
        };
        let Some(order_id) = order.order_id else {
            return reject(self, "unknown or not yet acknowledged order", out);
        };
        if matches!(order.status, "2" | "4" | "8") {
            return reject(self, "the order is already done", out);
        }
        if self.killed {
            self.shared
                .counters
                .orders_killed
                .fetch_add(1, Ordering::Relaxed);
            return reject(self, "the kill switch is engaged for this account", out);
        }
        if self.changing(&orig) {
            return reject(
                self,
                "a cancel or replace of this order is already in flight",
                out,
            );
        }
        if cl_ord_id.is_empty() || self.orders.contains_key(&cl_ord_id) {
            return reject(self, "a new, unused ClOrdID is required", out);
        }
        if !self.within_credit(Class::Modify) {
            return reject(
                self,
                "rate limit: replace refused (cancels are always taken)",
                out,
            );
        }
        let mut order = order;
        let resting = match resting_lots(&self.shared, self.trading.as_mut(), order_id) {
            Ok(Some(resting)) => {
                order.filled = order.filled.max(order.qty - resting.clamp(0, order.qty));
                resting
            }
            Ok(None) => return reject(self, "the order no longer rests", out),
            Err(()) => {
                return reject(
                    self,
                    "the nodes did not agree on the order's size in time; try again",
                    out,
                )
            }
        };
        let (price, qty, remaining) = match orders::replace(&order, message) {
            Ok(mapped) => mapped,
            Err(refusal) => return reject(self, &refusal.text, out),
        };
        let command = ClientCommand::Amend {
            instrument: InstrumentId(order.instrument.id),
            order_id: bulwark_engine::OrderId(order_id),
            price,
            qty: remaining,
            // Refused (AmendStale) if it filled after the read: never more resting than asked.
            expect_qty: Some(resting),
        };
        let what = InFlight::Replace {
            cl_ord_id,
            orig,
            qty,
        };
        self.submit(command, upstream::Class::Sheddable, what);
    }

    fn replace_done(
        &mut self,
        outcome: &Outcome,
        cl_ord_id: &str,
        orig: &str,
        qty: i64,
        out: &mut Vec<Output>,
    ) {
        let amended = outcome.events.iter().find_map(|e| match e {
            Event::Amended {
                order_id, price, ..
            } => Some((*order_id, *price)),
            _ => None,
        });
        let Some((order_id, price)) = amended else {
            let text = outcome.rejection("not replaced");
            return self.change_reject(cl_ord_id, orig, &text, "2", out);
        };
        let Some(mut order) = self.orders.remove(orig) else {
            return;
        };
        order.cl_ord_id = cl_ord_id.to_string();
        order.price = price;
        order.qty = qty;
        self.order_ids.insert(order_id, cl_ord_id.to_string());
        let exec_id = self.exec_id(outcome);
        let mut body = order.report(exec_id, "5", None, None);
        body.push(Field::new(41, orig));
        self.orders.insert(cl_ord_id.to_string(), order);
        self.send("8", body, out);
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
            let text = outcome.rejection("not cancelled");
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
        let mass_in_flight = self
            .in_flight
            .values()
            .filter(|w| matches!(w, InFlight::MassCancel { .. } | InFlight::KillCancel(_)))
            .count();
        if mass_in_flight >= MASS_CANCELS_IN_FLIGHT_MAX {
            let text = "mass cancels already in flight will cancel these orders";
            return self.mass_cancel_report(&cl_ord_id, &request_type, "0", text, out);
        }
        self.shared.counters.cancels.fetch_add(1, Ordering::Relaxed);
        let what = InFlight::MassCancel {
            cl_ord_id,
            request_type,
        };
        let command = ClientCommand::MassCancel { instrument };
        self.submit(command, upstream::Class::Protected, what);
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
        let cancelled = self.report_cancelled(outcome, out);
        let text = format!("{cancelled} orders cancelled");
        self.mass_cancel_report(cl_ord_id, request_type, request_type, &text, out);
    }

    /// An ExecutionReport Cancelled for each of this session's orders a mass cancel cancelled;
    /// how many it cancelled.
    fn report_cancelled(&mut self, outcome: &Outcome, out: &mut Vec<Output>) -> usize {
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
        cancelled
    }

    /// MarketDataRequest (V): a snapshot of the top of book `quorum` nodes give alike (W), and
    /// with 263=1 a refresh (W, or X when incremental) whenever that top changes.
    fn market_data_request(&mut self, message: &Message, out: &mut Vec<Output>) {
        use crate::marketdata::{self, Reject, Request};
        let account = self.trading.as_ref().map_or(0, |t| t.account);
        let instruments = self.shared.upstream.instruments();
        let request = if self
            .credits
            .admit(Class::Query, account, &self.shared.credits)
        {
            marketdata::request(&instruments, message)
        } else {
            self.shared
                .counters
                .queries_throttled
                .fetch_add(1, Ordering::Relaxed);
            Err(Reject {
                id: message
                    .get_str(262)
                    .unwrap_or("?")
                    .chars()
                    .take(64)
                    .collect(),
                reason: "0",
                text: "rate limit: market data request refused".into(),
            })
        };
        let (id, chosen, updates) = match request {
            Ok(Request::Unsubscribe { id }) => {
                self.market_data.remove(&id);
                return;
            }
            Ok(Request::Subscribe {
                id,
                instruments,
                updates,
            }) => (id, instruments, updates),
            Err(reject) => return self.send("Y", reject.body(), out),
        };
        if updates.is_some()
            && !self.market_data.contains_key(&id)
            && self.market_data.len() >= MD_SUBSCRIPTIONS_MAX
        {
            let reject = Reject {
                id,
                reason: "4",
                text: format!(
                    "at most {MD_SUBSCRIPTIONS_MAX} market data subscriptions per session"
                ),
            };
            return self.send("Y", reject.body(), out);
        }
        let mut sent = HashMap::new();
        for instrument in &chosen {
            if !self.shared.books.want(instrument.id) {
                let reject = Reject {
                    id: id.clone(),
                    reason: "0",
                    text: "the gateway watches as many books as it can".into(),
                };
                return self.send("Y", reject.body(), out);
            }
            // The watcher's copy if it is at least as new as what the session has seen, else
            // a read of our own at that floor.
            let floor = self.trading.as_ref().map_or(0, |t| t.seen_height);
            let known = self
                .shared
                .books
                .latest(instrument.id)
                .map(|(_, book, _)| book)
                .filter(|book| book.height >= floor);
            let book = known.or_else(|| {
                let which = InstrumentId(instrument.id);
                let depth = crate::jsonrpc::BOOK_DEPTH_MAX;
                let (height, mut book) = self.shared.upstream.agreed_at(
                    Duration::from_millis(1200),
                    floor,
                    move |c| upstream::book_at(c, which, depth),
                )?;
                book.height = height;
                // The watcher goes on from here, never from an older book.
                self.shared.books.offer(instrument.id, book.clone());
                Some(book)
            });
            if let (Some(book), Some(trading)) = (&book, self.trading.as_mut()) {
                trading.saw(book.height);
            }
            let Some(book) = book else {
                let reject = Reject {
                    id: id.clone(),
                    reason: "0",
                    text: "the nodes did not give the same book in time; ask again".into(),
                };
                return self.send("Y", reject.body(), out);
            };
            let top = top_of(&book);
            sent.insert(instrument.id, top);
            self.send("W", crate::marketdata::snapshot(&id, instrument, top), out);
        }
        if let Some(incremental) = updates {
            self.market_data.insert(
                id,
                MdSubscription {
                    instruments: chosen,
                    incremental,
                    sent,
                },
            );
        }
    }

    /// ExecutionReport Trade (150=F) for every fill of a resting order of this session by
    /// someone else's order, from the trades `quorum` nodes report alike.
    fn watch_tape(&mut self, out: &mut Vec<Output>) {
        if self.trading.is_none() || !self.session.is_active() {
            self.tape_seen = self.shared.upstream.tape_head();
            return;
        }
        for trade in self.shared.upstream.trades_after(self.tape_seen, 1024) {
            self.tape_seen = trade.seq;
            let Some(cl) = self.order_ids.get(&trade.maker_order).cloned() else {
                continue;
            };
            let Some(order) = self.orders.get_mut(&cl) else {
                continue;
            };
            if matches!(order.status, "2" | "4" | "8") {
                continue;
            }
            order.filled = (order.filled + trade.qty).min(order.qty);
            order.filled_value += i128::from(trade.price) * i128::from(trade.qty);
            order.status = if order.filled >= order.qty { "2" } else { "1" };
            let order = order.clone();
            // Told of this fill, the session reads nothing older than its block.
            if let Some(trading) = self.trading.as_mut() {
                trading.saw(trade.height);
            }
            let exec_id = format!("{}-m{}", trade.height, trade.seq);
            let body = order.report(exec_id, "F", Some((trade.price, trade.qty)), None);
            self.send("8", body, out);
        }
    }

    /// A refresh for every subscribed top of book that changed since it was last sent (looked
    /// at every [`MD_PUSH_EVERY`]).
    fn push_market_data(&mut self, out: &mut Vec<Output>) {
        if self.market_data.is_empty()
            || !self.session.is_active()
            || self.md_pushed.elapsed() < MD_PUSH_EVERY
        {
            return;
        }
        self.md_pushed = Instant::now();
        let mut refreshes: Vec<(&'static str, Vec<Field>)> = Vec::new();
        for (id, sub) in &mut self.market_data {
            for instrument in &sub.instruments {
                self.shared.books.want(instrument.id);
                let Some((_, book, _)) = self.shared.books.latest(instrument.id) else {
                    continue;
                };
                let top = top_of(&book);
                let before = sub.sent.get(&instrument.id).copied().unwrap_or_default();
                if before == top {
                    continue;
                }
                sub.sent.insert(instrument.id, top);
                if sub.incremental {
                    if let Some(body) = crate::marketdata::incremental(id, instrument, before, top)
                    {
                        refreshes.push(("X", body));
                    }
                } else {
                    refreshes.push(("W", crate::marketdata::snapshot(id, instrument, top)));
                }
            }
        }
        for (msg_type, body) in refreshes {
            self.send(msg_type, body, out);
        }
    }

    fn status(&mut self, message: &Message, out: &mut Vec<Output>) {
        let account = self.trading.as_ref().map_or(0, |t| t.account);
        if !self
            .credits
            .admit(Class::Query, account, &self.shared.credits)
        {
            self.shared
                .counters
                .queries_throttled
                .fetch_add(1, Ordering::Relaxed);
            return self.reject_new(message, 99, "rate limit: status request refused", out);
        }
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
    /// connection; a trading session still being opened is closed once it opens. A thread
    /// carries it out, retrying until the committee has done it (or [`COD_RETRY_FOR`]).
    fn cancel_on_disconnect(&mut self, reason: Option<&str>) {
        let opening = self.opening.take().and_then(|(key, id)| {
            let nonce = self
                .in_flight
                .iter()
                .find_map(|(n, w)| matches!(w, InFlight::Open { .. }).then_some(*n))?;
            Some((key, id, nonce))
        });
        let why = reason.unwrap_or("logout");
        end_trading(
            &self.shared,
            self.peer,
            opening,
            &self.outcomes.1,
            self.trading.take(),
            true,
            why,
        );
    }
}

/// The logon's budgets (the address's, then the gateway's) before any signature, then its
/// signature under the account key `quorum` nodes give alike; counted by why when refused.
pub(crate) fn check_logon(
    shared: &Shared,
    ip: IpAddr,
    logon: &LogonRequest,
) -> Result<(), LogonError> {
    if let Err(budget) = shared.credits.logon(ip) {
        let (counter, text) = match budget {
            LogonBudget::Address => (
                &shared.counters.logons_over_address_budget,
                "this address's logon budget is spent; try again",
            ),
            LogonBudget::Global => (
                &shared.counters.logons_over_budget,
                "the gateway's logon budget is spent; try again",
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        return Err(LogonError::Refused(text.into()));
    }
    let account = AccountId(logon.account);
    let key = (logon.account < SESSION_ACCOUNT_LIMIT)
        .then(|| shared.upstream.account_key(account))
        .flatten();
    if key.is_none_or(|key| logon.verify(&key).is_err()) {
        shared
            .counters
            .logons_bad_signature
            .fetch_add(1, Ordering::Relaxed);
        return Err(LogonError::Signature);
    }
    Ok(())
}

/// The lots of `order_id` still resting, as `quorum` nodes at or above the session's seen
/// height give them alike (the session's floor rises to the answer's): `Ok(None)` when it no
/// longer rests, `Err(())` when the nodes did not agree in time. A replace or an edit names
/// the order's new total; what was filled meanwhile (as a maker too, which the gateway does not
/// see in its own receipts) is the total less this, so the amend never rests more than asked.
pub(crate) fn resting_lots(
    shared: &Shared,
    trading: Option<&mut Trading>,
    order_id: u64,
) -> Result<Option<i64>, ()> {
    let Some(trading) = trading else {
        return Err(());
    };
    let account = AccountId(trading.account);
    let (height, lots) = shared
        .upstream
        .agreed_at(
            Duration::from_millis(1200),
            trading.seen_height,
            move |client| {
                let (height, answer) = upstream::account_at(client, account)?;
                let lots = answer
                    .open_orders
                    .iter()
                    .find(|o| o.order_id == order_id)
                    .map(|o| o.qty);
                Some((height, lots))
            },
        )
        .ok_or(())?;
    trading.saw(height);
    Ok(lots)
}

/// Takes the logon's (account, client name) in the active set: one session each, whatever
/// the protocol. `None` when it is taken.
pub(crate) fn take_identity(shared: &Shared, logon: &LogonRequest) -> Option<(u64, String)> {
    let identity = (logon.account, logon.sender.clone());
    shared
        .active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(identity.clone())
        .then_some(identity)
}

/// Gives an identity back to the active set.
pub(crate) fn give_identity(shared: &Shared, identity: &(u64, String)) {
    shared
        .active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(identity);
}

/// The OpenSession the logon's signature authorizes, at a random slot of the account, with the
/// session key the trader made; and the session's acting id.
pub(crate) fn grant_tx(
    shared: &Shared,
    logon: &LogonRequest,
    key: &SigningKey,
) -> Option<(SignedTx, AccountId)> {
    let mut slot = [0u8; 1];
    rand_core_06::RngCore::fill_bytes(&mut rand_core_06::OsRng, &mut slot);
    let id = AccountId(logon.account).session(slot[0])?;
    let lifetime_ms = shared.config.limits.session_lifetime_s * 1000;
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
    Some((tx, id))
}

/// The end of a connection's trading: its orders cancelled (when `cancel_orders`) and its
/// session closed, whatever ended the connection; a trading session still being opened
/// (`opening`: its key, id and OpenSession nonce) is closed once it opens. A thread carries
/// it out, retrying until the committee has done it (or [`COD_RETRY_FOR`]).
pub(crate) fn end_trading(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    opening: Option<(SigningKey, AccountId, u64)>,
    outcomes: &Receiver<Verdict>,
    trading: Option<Trading>,
    cancel_orders: bool,
    why: &str,
) {
    if let Some((key, id, open_nonce)) = opening {
        let (waiter, verdicts) = channel();
        let open = if shared.upstream.rewait(id, open_nonce, waiter) {
            Opening::Waiting(verdicts)
        } else {
            // Already decided: the verdict is on this connection's channel.
            let opened = std::iter::from_fn(|| outcomes.try_recv().ok()).any(|v| {
                matches!(&v, Verdict::Finalized(o) if o.nonce == open_nonce
                    && o.events.iter().any(|e| matches!(e, Event::SessionOpened { .. })))
            });
            if opened {
                Opening::Opened
            } else {
                Opening::Never
            }
        };
        if let (false, Some((_, slot))) = (matches!(open, Opening::Never), id.as_session()) {
            let commands = vec![ClientCommand::CloseSession {
                slot,
                cancel_placed: false,
            }];
            let first = open_nonce + 1;
            spawn_close_out(
                shared,
                peer,
                id,
                key,
                first,
                commands,
                open,
                "an unfinished logon",
            );
        }
    }
    let Some(t) = trading else {
        return;
    };
    let Some((_, slot)) = t.id.as_session() else {
        return;
    };
    // One transaction: the engine cancels what this session placed (never what the trader
    // placed through another session, at another gateway) and then closes the session.
    let commands = vec![ClientCommand::CloseSession {
        slot,
        cancel_placed: cancel_orders,
    }];
    spawn_close_out(
        shared,
        peer,
        t.id,
        t.key,
        t.next_nonce,
        commands,
        Opening::Opened,
        why,
    );
}

/// Closes the trading session a grant (nonce `nonce`) whose outcome never came may have opened:
/// a CloseSession under its key, retried like a cancel on disconnect until it is finalized or
/// 60 s have passed (a session that never opened has its CloseSession refused each time).
pub(crate) fn close_unknown_grant(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    id: AccountId,
    key: SigningKey,
    nonce: u64,
) {
    if let Some((_, slot)) = id.as_session() {
        let close = vec![ClientCommand::CloseSession {
            slot,
            cancel_placed: false,
        }];
        let why = "a logon whose outcome did not come in time";
        spawn_close_out(
            shared,
            peer,
            id,
            key,
            nonce + 1,
            close,
            Opening::Opened,
            why,
        );
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_close_out(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    id: AccountId,
    key: SigningKey,
    first_nonce: u64,
    commands: Vec<ClientCommand>,
    open: Opening,
    why: &str,
) {
    let shared = Arc::clone(shared);
    let why = why.to_string();
    shared.closing.fetch_add(1, Ordering::AcqRel);
    let counted = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name(format!("close-{peer}"))
        .spawn(move || {
            if close_out(&shared, id, &key, first_nonce, commands, open) {
                info!(%peer, account = id.0, reason = %why, "cancelled the session's orders and closed it");
            } else {
                warn!(%peer, account = id.0, reason = %why, "could not cancel the session's orders and close it in time");
            }
            shared.closing.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(error) = spawned {
        warn!(%error, "cannot start the cancel-on-disconnect thread");
        counted.closing.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // After `run` this finds nothing left to do.
        self.end(Some("the connection's thread ended abnormally"));
    }
}

/// Whether the trading session a cleanup closes is open.
pub(crate) enum Opening {
    /// Opened.
    Opened,
    /// Its OpenSession's verdict is still to come here.
    Waiting(Receiver<Verdict>),
    /// It was refused or never came: nothing to close.
    Never,
}

/// Submits `commands` one after the other (each once the one before is finalized), signed by
/// the session key from `first_nonce` on, resubmitting one that no node took or that did not
/// finalize, until [`COD_RETRY_FOR`] has passed or the gateway's upstream stops. True when all
/// were finalized.
fn close_out(
    shared: &Shared,
    id: AccountId,
    key: &SigningKey,
    first_nonce: u64,
    commands: Vec<ClientCommand>,
    open: Opening,
) -> bool {
    let deadline = Instant::now() + COD_RETRY_FOR + upstream::PENDING_TTL;
    if let Opening::Waiting(verdicts) = open {
        let opened = loop {
            match verdicts.recv_timeout(Duration::from_millis(200)) {
                Ok(Verdict::Finalized(o)) => {
                    break o
                        .events
                        .iter()
                        .any(|e| matches!(e, Event::SessionOpened { .. }))
                }
                Ok(_) => break false,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    if Instant::now() < deadline && !shared.upstream.stopped() => {}
                Err(_) => break false,
            }
        };
        if !opened {
            // Nothing opened, so nothing to close.
            return true;
        }
    }
    let give_up = Instant::now() + COD_RETRY_FOR;
    for (i, command) in commands.into_iter().enumerate() {
        let tx = SignedTx::sign(id, first_nonce + i as u64, command, key);
        loop {
            let (waiter, verdicts) = channel();
            shared
                .upstream
                .submit(&tx, upstream::Class::Protected, waiter);
            let verdict = loop {
                match verdicts.recv_timeout(Duration::from_millis(200)) {
                    Ok(verdict) => break Some(verdict),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                        if !shared.upstream.stopped() => {}
                    Err(_) => break None,
                }
            };
            match verdict {
                Some(Verdict::Finalized(_)) => break,
                Some(_) if Instant::now() < give_up && !shared.upstream.stopped() => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                _ => {
                    shared.upstream.forget(id, tx.nonce);
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trading() -> Trading {
        let logon = LogonRequest {
            sender: "T1".into(),
            target: "BULWARK".into(),
            sending_time: String::new(),
            sending_time_ms: 0,
            account: 4,
            nonce: [0; 16],
            session_seed: [7; 32],
            signature: [0; 64],
            heartbeat_s: 30,
            reset: false,
            msg_seq_num: 1,
        };
        let id = AccountId(4).session(1).expect("a session id");
        Trading::new(id, SigningKey::from_bytes(&[7; 32]), 10, &logon, 1)
    }

    /// An outcome under `t`'s session with `events`.
    fn finalized_as(t: &Trading, events: Vec<Event>) -> Outcome {
        Outcome {
            account: t.id,
            nonce: 11,
            height: 1,
            events,
        }
    }

    #[test]
    fn a_session_arms_its_silence_bound_at_once_beats_when_quiet_and_disarms_on_request() {
        let mut t = trading();
        let arm = Some(ClientCommand::SessionHeartbeat {
            within_ms: SESSION_SILENCE_MS,
        });
        let disarm = Some(ClientCommand::SessionHeartbeat { within_ms: 0 });
        let long_ago = |d: Duration| Instant::now().checked_sub(d).expect("the clock is past it");
        assert_eq!(t.heartbeat(true), arm);
        // One in flight at a time.
        assert_eq!(t.heartbeat(true), None);
        // Not taken: not armed, and sent again only after the retry interval, however busy
        // the session is.
        t.beat_done(false, false);
        assert!(!t.armed);
        assert_eq!(t.heartbeat(true), None);
        t.beat_sent = Some(long_ago(SESSION_BEAT_RETRY));
        assert_eq!(t.heartbeat(true), arm);
        t.beat_done(false, true);
        assert!(t.armed);
        let outcome = |events| finalized_as(&t, events);
        let accepted = outcome(Vec::new());
        let stale = outcome(vec![Event::Rejected {
            reason: RejectReason::StaleNonce,
        }]);
        assert!(beat_taken(&accepted) && !beat_taken(&stale));
        // A stale nonce is not heard by the engine; anything else is.
        t.heard = long_ago(SESSION_BEAT_AFTER);
        t.finalized(&stale);
        assert!(!t.confirmed);
        t.finalized(&accepted);
        assert!(t.confirmed);
        assert_eq!(t.heartbeat(true), None);
        // Quiet for the beat interval: it beats again.
        t.heard = long_ago(SESSION_BEAT_AFTER);
        assert_eq!(t.heartbeat(true), arm);
        t.beat_done(false, true);
        // Cancel on disconnect turned off: disarmed, again until taken, then nothing.
        t.beat_sent = Some(long_ago(SESSION_BEAT_RETRY));
        assert_eq!(t.heartbeat(false), disarm);
        t.beat_done(true, false);
        assert!(t.armed);
        t.beat_sent = Some(long_ago(SESSION_BEAT_RETRY));
        assert_eq!(t.heartbeat(false), disarm);
        t.beat_done(true, true);
        assert!(!t.armed);
        assert_eq!(t.heartbeat(false), None);
        // Turned on again: armed.
        t.beat_sent = Some(long_ago(SESSION_BEAT_RETRY));
        assert_eq!(t.heartbeat(true), arm);
        // The bound is one the engine takes, with room for a leader's clock and the beats.
        let bounds =
            bulwark_engine::session::SILENCE_MIN_MS..=bulwark_engine::session::SILENCE_MAX_MS;
        assert!(bounds.contains(&SESSION_SILENCE_MS));
        assert!(
            SESSION_BEAT_AFTER * 3 <= Duration::from_millis(u64::from(SESSION_SILENCE_MS) - 10_000)
        );
    }

    #[test]
    fn an_unknown_session_counts_as_gone_only_once_a_transaction_under_it_was_finalized() {
        let mut t = trading();
        assert!(!t.gone("unknown account"));
        t.finalized(&finalized_as(&t, Vec::new()));
        assert!(t.gone("unknown account"));
        assert!(!t.gone("unknown account; the node's queue is full"));
    }

    #[test]
    fn a_session_counts_as_gone_only_when_every_node_says_its_id_is_unknown() {
        assert!(refused_as_gone("unknown account"));
        assert!(refused_as_gone("mempool: unknown account; unknown account"));
        assert!(!refused_as_gone(
            "unknown account; the node's queue is full"
        ));
        assert!(!refused_as_gone(""));
    }
}
