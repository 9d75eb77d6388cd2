//! `bulwark bench gateway`: figure 4 of issue #15 (the others are not built yet).
//!
//! One QuickFIX initiator (the Python binding, as in the tests) sends NewOrderSingles one after
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

/// `bulwark bench gateway [--base-port P] [--orders N]`.
pub fn run_bench(base_port: u16, orders: usize) -> ExitCode {
    match run(base_port, orders) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark bench gateway: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(base_port: u16, orders: usize) -> Result<(), BenchError> {
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
        data_dir: format!("{data}/gateway").into(),
        nodes: endpoints.clone(),
        quorum: 2,
        limits: bulwark_gateway::Limits::default(),
    })
    .map_err(|e| BenchError::Run(e.to_string()))?;
    // An IOC buy 0.3 % under the mark: accepted, then its remainder cancelled (nothing rests).
    let price_ticks = mark - mark * 3 / 1000;
    let micros = i128::from(price_ticks) * i128::from(tick);
    let price = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
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
