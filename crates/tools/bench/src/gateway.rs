//! `bulwark bench gateway`: the four figures of issue #15, in one run against one 4-node
//! committee of `bulwark node` processes on loopback and one gateway in this process.
//!
//! Figures 1–3 ([`crate::gateway_load`]): 60 FIX sessions (10 accounts, 6 each, each from its
//! own loopback address) send IOC orders at `--rate` orders a second in all for `--seconds`:
//! 1. the same orders submitted directly to a node (timed to its finalized receipt) against
//!    through the gateway (timed to the first ExecutionReport): `gateway_ack_p50_ms`,
//!    `gateway_ack_p99_ms` against `direct_*`;
//! 2. a tenth of that load (the flooders must reach 10× it on the same 2 cores), first alone,
//!    then under a junk flood aimed at 10× its rate: `flood_p99_ms` and `flood_goodput`
//!    against the unflooded run, `junk_per_s` (reached) against the order rate, and
//!    `malformed_close_p99_ms` against the 50 ms bound;
//! 3. the tenth again while one more session sends 100× its quota: `abuse_others_p99_ms`
//!    against the unabused run and `abuser_admitted_per_s` against the quota.
//!
//! Figure 4: one QuickFIX initiator (the Python binding, as in the tests) sends NewOrderSingles one after
//! another and times each to its first ExecutionReport, twice in the same run:
//! - to our gateway in front of a 4-node committee of `bulwark node` processes on loopback (the
//!   report comes only once f + 1 nodes report the order finalized: consensus is inside);
//! - to a QuickFIX acceptor that answers every order at once with ExecutionReport New (the
//!   engine's own round trip, nothing behind it): the peer.
//!
//! Figures: `fix_order_ack_p50_ms` and `fix_order_ack_p99_ms` against the QuickFIX acceptor's,
//! and `gateway_overhead_p50_ms`: our p50 against the committee's own submit→finalized p50
//! (from the nodes' status in the same run), what the gateway adds to submitting directly.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bulwark_devnet::CommitteeOptions;
use bulwark_engine::InstrumentId;
use bulwark_node::client::Client;

use crate::report::figure;

const SCRIPT: &str = r#"
import calendar, os, sys, time, threading
from datetime import datetime, timezone
import quickfix as fix
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

mode, port, store = sys.argv[1], sys.argv[2], sys.argv[3]
spec = os.path.join(__import__("sysconfig").get_paths()["data"], "share", "quickfix", "FIX44.xml")

def unix_ms(t):
    base, _, fraction = t.partition(".")
    d = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    return calendar.timegm(d.utctimetuple()) * 1000 + int((fraction + "000")[:3])

if mode == "acceptor":
    cfg = os.path.join(store, "acceptor.cfg")
    with open(cfg, "w") as f:
        f.write(f"[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={port}\nFileStorePath={store}\nStartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\nDataDictionary={spec}\nValidateUserDefinedFields=N\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID=PEER\nTargetCompID=TRADER3\n")
    class Acceptor(fix.Application):
        n = 0
        def onCreate(self, sid): pass
        def onLogon(self, sid): pass
        def onLogout(self, sid): pass
        def toAdmin(self, msg, sid): pass
        def fromAdmin(self, msg, sid): pass
        def toApp(self, msg, sid): pass
        def fromApp(self, msg, sid):
            if msg.getHeader().getField(35) != "D":
                return
            Acceptor.n += 1
            r = fix.Message()
            r.getHeader().setField(fix.MsgType("8"))
            for tag, value in [(37, str(Acceptor.n)), (11, msg.getField(11)), (17, "e" + str(Acceptor.n)), (150, "0"), (39, "0"), (55, msg.getField(55)), (54, msg.getField(54)), (151, msg.getField(38)), (14, "0"), (6, "0")]:
                r.setField(tag, value)
            fix.Session.sendToTarget(r, sid)
    settings = fix.SessionSettings(cfg)
    a = fix.SocketAcceptor(Acceptor(), fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
    a.start()
    print("READY", flush=True)
    sys.stdin.read()
    a.stop()
    sys.exit(0)

target, seed_hex, account, price, count = sys.argv[4:9]
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
cfg = os.path.join(store, "initiator.cfg")
with open(cfg, "w") as f:
    f.write(f"[DEFAULT]\nConnectionType=initiator\nReconnectInterval=60\nFileStorePath={store}\nStartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\nDataDictionary={spec}\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID=TRADER{account}\nTargetCompID={target}\nSocketConnectHost=127.0.0.1\nSocketConnectPort={port}\nHeartBtInt=5\n")
logged_on = threading.Event()
got = threading.Event()
waiting = [None]
class Client(fix.Application):
    def onCreate(self, sid): pass
    def onLogon(self, sid): logged_on.set()
    def onLogout(self, sid): pass
    def toAdmin(self, msg, sid):
        h = msg.getHeader()
        if h.getField(35) == "A":
            nonce = os.urandom(16).hex()
            session = Ed25519PrivateKey.generate()
            session_pub = session.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
            session_seed = session.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()
            payload = "\x01".join(["bulwark-logon/2", str(unix_ms(h.getField(52))), nonce, h.getField(49), h.getField(56), account, session_pub])
            sig = key.sign(payload.encode()).hex()
            msg.setField(553, account); msg.setField(25001, nonce); msg.setField(25002, session_seed); msg.setField(95, str(len(sig))); msg.setField(96, sig)
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid):
        if msg.getHeader().getField(35) == "8" and msg.getField(11) == waiting[0]:
            got.set()
settings = fix.SessionSettings(cfg)
init = fix.SocketInitiator(Client(), fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
init.start()
if not logged_on.wait(20):
    print("NO_LOGON", flush=True); init.stop(); sys.exit(1)
sid = fix.SessionID("FIX.4.4", "TRADER" + account, target)
for i in range(int(count)):
    cl = "b%d-%d" % (os.getpid(), i)
    m = fix.Message()
    m.getHeader().setField(fix.MsgType("D"))
    m.setField(fix.ClOrdID(cl)); m.setField(fix.Symbol("BTC-PERP")); m.setField(fix.Side(fix.Side_BUY))
    m.setField(fix.TransactTime()); m.setField(fix.OrderQty(1)); m.setField(fix.OrdType(fix.OrdType_LIMIT))
    m.setField(44, price); m.setField(59, "3")
    got.clear(); waiting[0] = cl
    start = time.perf_counter()
    fix.Session.sendToTarget(m, sid)
    if not got.wait(10):
        print("TIMEOUT", cl, flush=True); continue
    print("RTT %.3f" % ((time.perf_counter() - start) * 1000), flush=True)
    time.sleep(0.05)
init.stop()
"#;

/// Why the bench could not measure.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("no Python 3 with quickfix and cryptography (pip install ../shared/wheels/quickfix-*.whl cryptography)")]
    NoPython,
    #[error("committee: {0}")]
    Committee(String),
    #[error("{0}")]
    Run(String),
}

fn python() -> Option<String> {
    bulwark_testkit::python::python_with(&["quickfix", "cryptography"])
}

fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1) - 1;
    sorted.get(rank).copied()
}

/// Runs the QuickFIX client against `port`; the round trips, sorted.
fn client(
    python: &str,
    port: u16,
    target: &str,
    seed: [u8; 32],
    account: u64,
    price: &str,
    count: usize,
) -> Result<Vec<f64>, BenchError> {
    let store = tempdir()?;
    let out = Command::new(python)
        .args([
            "-c",
            SCRIPT,
            "client",
            &port.to_string(),
            &store,
            target,
            &hex::encode(seed),
            &account.to_string(),
            price,
            &count.to_string(),
        ])
        .output()
        .map_err(|e| BenchError::Run(format!("python: {e}")))?;
    let _ = std::fs::remove_dir_all(&store);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rtts: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RTT "))
        .filter_map(|v| v.parse().ok())
        .collect();
    if rtts.is_empty() {
        return Err(BenchError::Run(format!(
            "no round trips measured: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    rtts.sort_by(f64::total_cmp);
    Ok(rtts)
}

fn tempdir() -> Result<String, BenchError> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bulwark-bench-gateway-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Run(e.to_string()))?;
    Ok(dir.display().to_string())
}

/// The load of figures 1–3.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Orders a second over all sessions.
    pub rate: f64,
    /// Seconds each phase sends.
    pub seconds: u64,
}

/// Each session's order quota in the bench's gateway (the abuser sends 100× this).
const QUOTA_PER_S: u32 = 20;
/// Sessions per account, over accounts 1..=10.
const SESSIONS_PER_ACCOUNT: usize = 6;

/// `bulwark bench gateway [--base-port P] [--orders N] [--rate R] [--seconds S]`.
pub fn run_bench(base_port: u16, orders: usize, load: LoadOptions) -> ExitCode {
    match run(base_port, orders, load) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark bench gateway: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(base_port: u16, orders: usize, load: LoadOptions) -> Result<(), BenchError> {
    let python = python().ok_or(BenchError::NoPython)?;
    let data = tempdir()?;
    let options = CommitteeOptions {
        data: data.clone().into(),
        nodes: 4,
        candidates: 0,
        duration: None,
        rate: 0,
        seed: 1,
        fresh: true,
        base_port,
        status: false,
        admission_interval_ms: 1000,
        tpm: false,
        oracle: None,
        tamper: None,
    };
    eprintln!("bench gateway: starting a 4-node committee on loopback (ports {base_port}..)");
    let launched =
        bulwark_devnet::launch(&options).map_err(|e| BenchError::Committee(e.to_string()))?;
    let endpoints: Vec<SocketAddr> = launched.endpoints.clone();
    let started = Instant::now();
    let (mark, tick) = loop {
        let found = Client::connect(endpoints[0], Duration::from_millis(300))
            .ok()
            .and_then(|mut c| {
                let status = c.status().ok()?;
                let tick = status.instruments.first()?.tick_size_micros;
                Some((c.book(InstrumentId(0), 1).ok()?.mark_ticks?, tick))
            });
        if let Some(found) = found {
            break found;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::Committee("no mark within 120 s".into()));
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let gateway = bulwark_gateway::start(bulwark_gateway::GatewayConfig {
        comp_id: "BULWARK-BENCH".into(),
        fix_listen: "127.0.0.1:0"
            .parse()
            .map_err(|_| BenchError::Run("address".into()))?,
        ws_listen: Some(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| BenchError::Run("address".into()))?,
        ),
        ws_tls_cert: None,
        ws_tls_key: None,
        ws_tls_self_signed: true,
        data_dir: format!("{data}/gateway").into(),
        nodes: endpoints.clone(),
        quorum: 2,
        limits: bulwark_gateway::Limits {
            orders_per_s: QUOTA_PER_S,
            orders_burst: 5,
            ..bulwark_gateway::Limits::default()
        },
        operator: None,
    })
    .map_err(|e| BenchError::Run(e.to_string()))?;
    // An IOC buy 0.3 % under the mark: accepted, then its remainder cancelled (nothing rests).
    let price_ticks = mark - mark * 3 / 1000;
    let micros = i128::from(price_ticks) * i128::from(tick);
    let price = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    figures_1_to_3(&gateway, endpoints[0], price_ticks, &price, load)?;
    let seed = bulwark_testkit::client_key(1, 3).to_bytes();
    eprintln!("bench gateway: {orders} orders through the gateway (each acked once finalized)");
    let ours = client(
        &python,
        gateway.fix_addr.port(),
        "BULWARK-BENCH",
        seed,
        3,
        &price,
        orders,
    )?;
    let committee_p50 = endpoints
        .iter()
        .filter_map(|e| {
            Client::connect(*e, Duration::from_millis(300))
                .ok()
                .and_then(|mut c| c.status().ok())
                .and_then(|s| s.latency_p50_ms)
        })
        .map(f64::from)
        .reduce(f64::min);
    gateway.stop();
    drop(launched);

    eprintln!("bench gateway: {orders} orders to a QuickFIX acceptor (answers at once)");
    let store = tempdir()?;
    let peer_port = base_port + 390;
    let mut acceptor = Command::new(&python)
        .args(["-c", SCRIPT, "acceptor", &peer_port.to_string(), &store])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Run(format!("python: {e}")))?;
    let mut ready = String::new();
    if let Some(out) = acceptor.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut ready);
    }
    let peer = client(&python, peer_port, "PEER", seed, 3, &price, orders);
    if let Some(mut stdin) = acceptor.stdin.take() {
        let _ = stdin.write_all(b"");
    }
    let _ = acceptor.wait();
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&data);
    let peer = peer?;

    for (metric, p) in [("fix_order_ack_p50_ms", 50), ("fix_order_ack_p99_ms", 99)] {
        figure(
            "gateway",
            metric,
            percentile(&ours, p),
            "ms",
            Some("quickfix_acceptor"),
            percentile(&peer, p),
        );
    }
    figure(
        "gateway",
        "gateway_overhead_p50_ms",
        percentile(&ours, 50),
        "ms",
        Some("committee_submit_to_finalized_p50"),
        committee_p50,
    );
    Ok(())
}

fn p(load: &crate::gateway_load::Load, pct: usize) -> Option<f64> {
    percentile(&load.acks_ms, pct)
}

/// Figures 1–3 against the running `gateway` and committee.
fn figures_1_to_3(
    gateway: &bulwark_gateway::Gateway,
    node: SocketAddr,
    price_ticks: i64,
    price: &str,
    options: LoadOptions,
) -> Result<(), BenchError> {
    use crate::gateway_load::{abuse, direct, drive, flood, logon_pool, tls_client, FloodTarget};
    let accounts: Vec<u64> = (1..=10).collect();
    let sessions = accounts.len() * SESSIONS_PER_ACCOUNT;
    let duration = Duration::from_secs(options.seconds.max(1));
    let rate_each = options.rate / sessions as f64;
    let target = "BULWARK-BENCH";
    eprintln!("bench gateway: logging on {sessions} FIX sessions");
    let pool = logon_pool(gateway.fix_addr, target, &accounts, SESSIONS_PER_ACCOUNT)
        .map_err(BenchError::Run)?;

    eprintln!(
        "bench gateway: figure 1, {} orders/s for {} s straight to a node, then through the gateway",
        options.rate,
        duration.as_secs()
    );
    let straight =
        direct(node, &accounts, options.rate, duration, price_ticks).map_err(BenchError::Run)?;
    eprintln!("bench gateway: straight to a node: {}", straight.summary());
    let (pool, base) = drive(pool, rate_each, duration, price, "base");
    eprintln!("bench gateway: through the gateway: {}", base.summary());
    for (metric, pct) in [("gateway_ack_p50_ms", 50), ("gateway_ack_p99_ms", 99)] {
        let peer = if pct == 50 {
            "direct_p50"
        } else {
            "direct_p99"
        };
        figure(
            "gateway",
            metric,
            p(&base, pct),
            "ms",
            Some(peer),
            p(&straight, pct),
        );
    }
    let added = p(&base, 50).zip(p(&straight, 50)).map(|(g, d)| g - d);
    figure("gateway", "gateway_added_p50_ms", added, "ms", None, None);
    figure(
        "gateway",
        "orders_per_s",
        Some(base.sent as f64 / duration.as_secs_f64()),
        "orders/s",
        Some("asked"),
        Some(options.rate),
    );

    let tenth = rate_each / 10.0;
    let junk_rate = options.rate;
    eprintln!(
        "bench gateway: figure 2, {} orders/s alone, then under a junk flood aimed at {junk_rate}/s",
        options.rate / 10.0
    );
    let (pool, calm) = drive(pool, tenth, duration, price, "calm");
    eprintln!("bench gateway: alone: {}", calm.summary());
    let ws = match (gateway.ws_addr, &gateway.ws_dev_cert) {
        (Some(addr), Some(cert)) => Some((addr, tls_client(cert).map_err(BenchError::Run)?)),
        _ => None,
    };
    let aim = FloodTarget {
        fix: gateway.fix_addr,
        comp_id: target.to_string(),
        ws,
    };
    let flooder = std::thread::spawn(move || flood(aim, junk_rate, duration));
    let (pool, flooded) = drive(pool, tenth, duration, price, "flood");
    let junk = flooder
        .join()
        .map_err(|_| BenchError::Run("the flooder panicked".into()))?;
    eprintln!(
                "bench gateway: under the flood: {}; {} junk events, {} malformed answered; WebSocket strangers: {} refused with 13009, {} closed at the door, {} served (must be 0)",
        flooded.summary(),
        junk.events,
        junk.answered,
        junk.ws_refused,
        junk.ws_at_door,
        junk.ws_served
    );
    figure(
        "gateway",
        "flood_p99_ms",
        p(&flooded, 99),
        "ms",
        Some("unflooded_p99"),
        p(&calm, 99),
    );
    figure(
        "gateway",
        "flood_goodput",
        flooded.goodput(),
        "fraction",
        Some("unflooded_goodput"),
        calm.goodput(),
    );
    figure(
        "gateway",
        "junk_per_s",
        Some(junk.events as f64 / junk.elapsed.as_secs_f64().max(0.001)),
        "events/s",
        Some("legitimate_orders_per_s"),
        Some(flooded.sent as f64 / duration.as_secs_f64()),
    );
    figure(
        "gateway",
        "malformed_close_p99_ms",
        percentile(&junk.close_ms, 99),
        "ms",
        Some("bound"),
        Some(50.0),
    );
    if junk.answered > 0 {
        eprintln!(
            "bench gateway: {} malformed connections got an answer",
            junk.answered
        );
    }

    let abuse_rate = f64::from(QUOTA_PER_S) * 100.0;
    eprintln!("bench gateway: figure 3, the same load while one session sends {abuse_rate}/s (100x its quota)");
    let key = bulwark_testkit::client_key(1, 11);
    let abuser = bulwark_testkit::fix::Trader::logon(
        gateway.fix_addr,
        "ABUSER",
        target,
        11,
        &key,
        Duration::from_secs(20),
    )
    .map_err(|e| BenchError::Run(format!("the abuser's logon: {e}")))?;
    let abusing = {
        let price = price.to_string();
        std::thread::spawn(move || abuse(abuser, abuse_rate, duration, &price))
    };
    let (pool, others) = drive(pool, tenth, duration, price, "abused");
    let (abuser, abused) = abusing
        .join()
        .map_err(|_| BenchError::Run("the abuser panicked".into()))?;
    eprintln!("bench gateway: beside the abuser: {}", others.summary());
    eprintln!("bench gateway: the abuser: {}", abused.summary());
    figure(
        "gateway",
        "abuse_others_p99_ms",
        p(&others, 99),
        "ms",
        Some("unabused_p99"),
        p(&calm, 99),
    );
    figure(
        "gateway",
        "abuser_admitted_per_s",
        Some(abused.acks_ms.len() as f64 / duration.as_secs_f64()),
        "orders/s",
        Some("quota"),
        Some(f64::from(QUOTA_PER_S)),
    );
    eprintln!(
        "bench gateway: the abuser sent {} orders, {} refused at once for credit; shed {} order copies",
        abused.sent,
        abused.throttled,
        gateway.upstream_counters().shed.load(std::sync::atomic::Ordering::Relaxed)
    );
    abuser.logout();
    for trader in pool {
        trader.logout();
    }
    Ok(())
}
