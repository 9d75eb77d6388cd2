//! The load side of `bulwark bench gateway`, figures 1–3: paced traders over FIX
//! ([`bulwark_testkit::fix::Trader`]), the same orders submitted directly to a node, our own
//! bounded junk flooders and one quota abuser. Every load stops by itself at its deadline.
//!
//! Each trader logs on from its own loopback address (127.0.1.k), as traders on the internet
//! do, so the per-address limits apply to each. Orders are IOC buys under the mark in a book
//! with no sellers: the committee accepts each, then cancels its remainder, and nothing rests.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{LimitOrder, TimeInForce};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use bulwark_node::client::Client;
use bulwark_testkit::fix::{connect_from, Trader, TraderError};

/// What a load measured.
#[derive(Debug, Default)]
pub struct Load {
    /// Order → first report (or finalized receipt) latencies, ms, sorted.
    pub acks_ms: Vec<f64>,
    /// Orders sent.
    pub sent: u64,
    /// Orders refused at once for credit ("rate limit").
    pub throttled: u64,
    /// Orders refused otherwise (shed, refused by the committee, ...).
    pub refused: u64,
    /// Sessions that ended early, with why.
    pub errors: Vec<String>,
}

impl Load {
    fn merge(&mut self, other: Load) {
        self.acks_ms.extend(other.acks_ms);
        self.sent += other.sent;
        self.throttled += other.throttled;
        self.refused += other.refused;
        self.errors.extend(other.errors);
    }

    /// One line for the bench's progress output.
    pub fn summary(&self) -> String {
        format!(
            "{} sent, {} acknowledged, {} refused for credit, {} refused otherwise{}",
            self.sent,
            self.acks_ms.len(),
            self.throttled,
            self.refused,
            self.errors
                .first()
                .map(|e| format!("; {} sessions failed, first: {e}", self.errors.len()))
                .unwrap_or_default()
        )
    }

    fn finish(mut self) -> Load {
        self.acks_ms.sort_by(f64::total_cmp);
        self
    }

    /// Orders acknowledged (ExecutionReport New) over orders sent.
    pub fn goodput(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.acks_ms.len() as f64 / self.sent as f64)
    }
}

/// The loopback address of trader `k`.
fn trader_ip(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1 + (k / 250) as u8,
        1 + (k % 250) as u8,
    ))
}

/// Logs on `per_account` sessions for each of `accounts` (one account's logons one after
/// another: each logon must be newer than the account's last). Sessions are named `L{a}-{i}`.
pub fn logon_pool(
    gateway: SocketAddr,
    target: &str,
    accounts: &[u64],
    per_account: usize,
) -> Result<Vec<Trader>, String> {
    let threads: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(ai, &account)| {
            let target = target.to_string();
            std::thread::spawn(move || {
                let key = bulwark_testkit::client_key(1, account);
                let mut traders = Vec::new();
                for i in 0..per_account {
                    let ip = trader_ip(ai * per_account + i);
                    let stream = connect_from(ip, gateway, Duration::from_secs(5))
                        .map_err(|e| format!("connect from {ip}: {e}"))?;
                    let sender = format!("L{account}-{i}");
                    let trader = Trader::logon_on(
                        stream,
                        &sender,
                        &target,
                        account,
                        &key,
                        Duration::from_secs(20),
                    )
                    .map_err(|e| format!("logon of {sender}: {e}"))?;
                    traders.push(trader);
                    // The next logon of this account must carry a later millisecond.
                    std::thread::sleep(Duration::from_millis(3));
                }
                Ok::<_, String>(traders)
            })
        })
        .collect();
    let mut pool = Vec::new();
    for thread in threads {
        pool.extend(
            thread
                .join()
                .map_err(|_| "a logon thread panicked".to_string())??,
        );
    }
    Ok(pool)
}

/// Drives every trader at `rate_each` orders a second for `duration`, each on its own thread;
/// gives the traders back with what they measured.
pub fn drive(
    traders: Vec<Trader>,
    rate_each: f64,
    duration: Duration,
    price: &str,
    tag: &str,
) -> (Vec<Trader>, Load) {
    let threads: Vec<_> = traders
        .into_iter()
        .enumerate()
        .map(|(k, trader)| {
            let (price, tag) = (price.to_string(), format!("{tag}{k}-"));
            std::thread::spawn(move || paced(trader, rate_each, duration, &price, &tag))
        })
        .collect();
    let mut back = Vec::new();
    let mut load = Load::default();
    for thread in threads {
        if let Ok((trader, measured)) = thread.join() {
            back.push(trader);
            load.merge(measured);
        }
    }
    (back, load.finish())
}

/// Reads what came until `until`, timing each order's first report.
fn read_until(
    trader: &mut Trader,
    until: Instant,
    sent: &mut HashMap<String, Instant>,
    load: &mut Load,
) -> Result<(), TraderError> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Some(message) = trader.recv(left)? else {
            // Nothing came: sleep out a short remainder (a poll did not wait).
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return Ok(());
        };
        if message.msg_type() == b"8" {
            if let Some(at) = message.get_str(11).and_then(|cl| sent.remove(cl)) {
                if message.get_str(150) == Some("0") {
                    load.acks_ms.push(at.elapsed().as_secs_f64() * 1000.0);
                } else if message
                    .get_str(58)
                    .is_some_and(|t| t.contains("rate limit"))
                {
                    load.throttled += 1;
                } else {
                    load.refused += 1;
                }
            }
        }
        if Instant::now() >= until {
            return Ok(());
        }
    }
}

fn paced(
    mut trader: Trader,
    rate: f64,
    duration: Duration,
    price: &str,
    tag: &str,
) -> (Trader, Load) {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let end = start + duration;
    let mut load = Load::default();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut next = start;
    let mut n = 0u64;
    while next < end {
        if let Err(error) = read_until(&mut trader, next, &mut sent, &mut load) {
            load.errors.push(error.to_string());
            return (trader, load);
        }
        let cl = format!("{tag}{n}");
        n += 1;
        if let Err(error) = trader.new_order(&cl, "BTC-PERP", "1", 1, price, "3") {
            load.errors.push(error.to_string());
            return (trader, load);
        }
        sent.insert(cl, Instant::now());
        load.sent += 1;
        // On schedule, or a period from now when late: never a burst to catch up.
        next = (next + period).max(Instant::now());
    }
    // The stragglers: up to 10 s for the last reports.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sent.is_empty() && Instant::now() < deadline {
        let step = Instant::now() + Duration::from_millis(100);
        if read_until(&mut trader, step, &mut sent, &mut load).is_err() {
            break;
        }
    }
    (trader, load)
}

/// The same orders signed by each account's own key and submitted straight to node 0, timed to
/// node 0's finalized receipt: what a client gets without the gateway.
pub fn direct(
    node: SocketAddr,
    accounts: &[u64],
    rate_total: f64,
    duration: Duration,
    price_ticks: i64,
) -> Result<Load, String> {
    let sent: Arc<Mutex<HashMap<(u64, u64), Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut probe = Client::connect(node, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let start_height = probe.status().map_err(|e| e.to_string())?.height + 1;
    let follower = {
        let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut acks = Vec::new();
            let Ok(mut client) = Client::connect(node, Duration::from_secs(2)) else {
                return acks;
            };
            let mut cursor = (start_height, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let Ok(answer) = client.receipts(cursor.0, cursor.1, 200) else {
                    break;
                };
                let now = Instant::now();
                let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
                for receipt in answer.receipts {
                    if let Some(at) = sent.remove(&(receipt.account, receipt.nonce)) {
                        acks.push(now.duration_since(at).as_secs_f64() * 1000.0);
                    }
                }
                cursor = answer.next;
            }
            acks
        })
    };
    let rate_each = rate_total / accounts.len().max(1) as f64;
    let submitters: Vec<_> = accounts
        .iter()
        .map(|&account| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || -> Result<u64, String> {
                let key = bulwark_testkit::client_key(1, account);
                let mut client =
                    Client::connect(node, Duration::from_secs(2)).map_err(|e| e.to_string())?;
                let mut nonce = client
                    .account(AccountId(account))
                    .map_err(|e| e.to_string())?
                    .nonce;
                let period = Duration::from_secs_f64(1.0 / rate_each.max(0.001));
                let start = Instant::now();
                let mut next = start;
                let mut count = 0;
                while next < start + duration {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    nonce += 1;
                    let command = ClientCommand::Limit(LimitOrder {
                        instrument: InstrumentId(0),
                        side: Side::Buy,
                        price: price_ticks,
                        qty: 1,
                        tif: TimeInForce::Ioc,
                        post_only: false,
                        reduce_only: false,
                        stp: Default::default(),
                        client_order_id: nonce,
                    });
                    let tx = SignedTx::sign(AccountId(account), nonce, command, &key);
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((account, nonce), Instant::now());
                    client.submit(&[tx]).map_err(|e| e.to_string())?;
                    count += 1;
                    next += period;
                }
                Ok(count)
            })
        })
        .collect();
    let mut load = Load::default();
    for submitter in submitters {
        load.sent += submitter
            .join()
            .map_err(|_| "a submitter panicked".to_string())??;
    }
    // The stragglers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !sent.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    load.acks_ms = follower.join().unwrap_or_default();
    Ok(load.finish())
}

/// What the junk flood did.
#[derive(Debug, Default)]
pub struct Flood {
    /// Junk connections and logons made.
    pub events: u64,
    /// Malformed first messages: time until the gateway closed the connection, ms, sorted.
    pub close_ms: Vec<f64>,
    /// Malformed connections the gateway answered with bytes (should be none).
    pub answered: u64,
    /// Unauthenticated WebSocket clients answered "auth first" and closed.
    pub ws_refused: u64,
    /// Unauthenticated WebSocket clients closed before their upgrade (a pre-auth bound).
    pub ws_at_door: u64,
    /// Unauthenticated WebSocket clients kept open or served (should be none).
    pub ws_served: u64,
    /// How long the flood ran.
    pub elapsed: Duration,
}

/// Where the flood aims: the FIX port, and the WebSocket port with the certificate its TLS
/// client trusts.
#[derive(Clone)]
pub struct FloodTarget {
    /// The FIX acceptor.
    pub fix: SocketAddr,
    /// The gateway's TargetCompID.
    pub comp_id: String,
    /// The WebSocket listener and a TLS client configuration that trusts its certificate.
    pub ws: Option<(SocketAddr, Arc<rustls::ClientConfig>)>,
}

/// A TLS client configuration trusting only the certificates in the PEM file `cert`.
pub fn tls_client(cert: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What the gateway did with an unauthenticated WebSocket client.
enum Stranger {
    /// Closed before the upgrade was done (a pre-authentication bound at accept, or TLS).
    ClosedAtTheDoor,
    /// Answered "auth first" (13009) and closed.
    Refused,
    /// Anything else (kept open, or answered otherwise): should never happen.
    Served,
}

/// A stranger on the WebSocket port: TLS, the upgrade, then a private call without auth.
fn ws_stranger(
    stream: std::net::TcpStream,
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
) -> Stranger {
    let Ok(name) = rustls::pki_types::ServerName::try_from("localhost") else {
        return Stranger::ClosedAtTheDoor;
    };
    let Ok(connection) = rustls::ClientConnection::new(Arc::clone(tls), name) else {
        return Stranger::ClosedAtTheDoor;
    };
    let stream = rustls::StreamOwned::new(connection, stream);
    let url = format!("wss://localhost:{port}/");
    let Ok((mut ws, _)) = tungstenite::client::client(url, stream) else {
        return Stranger::ClosedAtTheDoor;
    };
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"private/buy","params":{}}"#;
    if ws.send(tungstenite::Message::text(request)).is_err() {
        return Stranger::ClosedAtTheDoor;
    }
    let mut answered = false;
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => answered |= t.contains("13009"),
            Ok(tungstenite::Message::Close(_)) => break,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Stranger::Served
            }
            Err(_) => break,
            Ok(_) => {}
        }
    }
    if answered {
        Stranger::Refused
    } else {
        Stranger::Served
    }
}

/// Floods the gateway with junk at `rate` events a second for `duration` from many loopback
/// addresses (127.2.x.y), round robin: a malformed first message, a forged logon, a slow
/// connection that trickles a logon's first bytes and holds its place until the gateway's
/// deadline closes it, and an unauthenticated WebSocket client (TLS, the upgrade, a private
/// call without auth; a raw upgrade request to the FIX port when there is no WebSocket
/// listener). Bounded: `workers` threads, each waiting at most 1 s per event; slow connections
/// are held and dropped at the end.
pub fn flood(aim: FloodTarget, rate: f64, duration: Duration) -> Flood {
    let workers = 16usize;
    let per_worker = rate / workers as f64;
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (events, aim) = (Arc::clone(&events), aim.clone());
            let (gateway, target) = (aim.fix, aim.comp_id.clone());
            std::thread::spawn(move || {
                let forged = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
                let mut flood = Flood::default();
                let mut slow = Vec::new();
                let period = Duration::from_secs_f64(1.0 / per_worker.max(0.001));
                let start = Instant::now();
                let mut next = start;
                let mut n = 0usize;
                // Paced to the rate, and stopped at the deadline even when behind it.
                while next < start + duration && Instant::now() < start + duration {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    next += period;
                    n += 1;
                    let k = n * workers + w;
                    let ip = IpAddr::V4(Ipv4Addr::new(127, 2, (k / 250 % 250) as u8, 1 + (k % 250) as u8));
                    let to = match (&aim.ws, n % 4) {
                        (Some((ws, _)), 3) => *ws,
                        _ => gateway,
                    };
                    let Ok(mut stream) = connect_from(ip, to, Duration::from_secs(1)) else {
                        continue;
                    };
                    events.fetch_add(1, Ordering::Relaxed);
                    flood.events += 1;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    match n % 4 {
                        0 => {
                            let at = Instant::now();
                            let _ = stream.write_all(b"8=FIX.4.4\x019=5\x0135=A\x0110=000\x01garbage");
                            let mut buf = [0u8; 256];
                            match stream.read(&mut buf) {
                                Ok(0) => flood.close_ms.push(at.elapsed().as_secs_f64() * 1000.0),
                                Ok(_) => flood.answered += 1,
                                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                                    flood.close_ms.push(at.elapsed().as_secs_f64() * 1000.0)
                                }
                                Err(_) => {}
                            }
                        }
                        1 => {
                            let _ = Trader::logon_on(stream, "JUNK", &target, 1, &forged, Duration::from_secs(1));
                        }
                        2 => {
                            let _ = stream.write_all(b"8=FIX.4");
                            if slow.len() < 64 {
                                slow.push(stream);
                            }
                        }
                        _ if aim.ws.is_some() => {
                                                        if let Some((ws, tls)) = &aim.ws {
                                match ws_stranger(stream, ws.port(), tls) {
                                    Stranger::Served => flood.ws_served += 1,
                                    Stranger::Refused => flood.ws_refused += 1,
                                    Stranger::ClosedAtTheDoor => flood.ws_at_door += 1,
                                }
                            }
                        }
                        _ => {
                            let _ = stream.write_all(
                                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                            );
                            let mut buf = [0u8; 256];
                            let _ = stream.read(&mut buf);
                        }
                    }
                }
                drop(slow);
                flood
            })
        })
        .collect();
    let mut all = Flood::default();
    for thread in threads {
        if let Ok(f) = thread.join() {
            all.events += f.events;
            all.close_ms.extend(f.close_ms);
            all.answered += f.answered;
            all.ws_refused += f.ws_refused;
            all.ws_at_door += f.ws_at_door;
            all.ws_served += f.ws_served;
        }
    }
    all.close_ms.sort_by(f64::total_cmp);
    all.elapsed = started.elapsed();
    all
}

/// One trader sending at `rate` (far over its quota) for `duration`: orders the gateway
/// admitted (any report but a credit refusal) and orders refused for credit.
pub fn abuse(trader: Trader, rate: f64, duration: Duration, price: &str) -> (Trader, Load) {
    paced(trader, rate, duration, price, "abuse-")
}
