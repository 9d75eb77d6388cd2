//! The FIX gateway end to end with real processes: `bulwark up` starts 4 nodes and one
//! `bulwark gateway` per data center; QuickFIX (the Python binding, as in the FIX crate's
//! tests) logs on to one gateway with an account's key, places an order, gets ExecutionReport
//! New only once the order is finalized (the OrderID it carries is then resting in the
//! committee's state), cancels it, places another, logs out, and the gateway cancels that one
//! on disconnect. A logon signed by another key is refused with the reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulwark_engine::AccountId;
use bulwark_node::client::Client;
use common::gateway::{base_port, fix_price, wait_until};

const SCRIPT: &str = r#"
import calendar, os, sys, time, threading
from datetime import datetime, timezone
import quickfix as fix
import quickfix44 as fix44
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

port, seed_hex, account, store, target, price = sys.argv[1:7]
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
spec = os.path.join(__import__("sysconfig").get_paths()["data"], "share", "quickfix", "FIX44.xml")
cfg = os.path.join(store, "initiator.cfg")
with open(cfg, "w") as f:
    f.write(f"""
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=60
FileStorePath={store}
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={spec}
[SESSION]
BeginString=FIX.4.4
SenderCompID=TRADER{account}
TargetCompID={target}
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
HeartBtInt=5
""")
lock = threading.Lock()
logged_on = threading.Event()
logged_out = threading.Event()
reports = {}
arrived = threading.Condition()

def say(*parts):
    with lock:
        print(*parts, flush=True)

def unix_ms(t):
    base, _, fraction = t.partition(".")
    d = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    return calendar.timegm(d.utctimetuple()) * 1000 + int((fraction + "000")[:3])

class App(fix.Application):
    def onCreate(self, sid): pass
    def onLogon(self, sid):
        say("LOGON"); logged_on.set()
    def onLogout(self, sid):
        say("LOGOUT"); logged_out.set()
    def toAdmin(self, msg, sid):
        h = msg.getHeader()
        if h.getField(35) == "A":
            nonce = os.urandom(16).hex()
            session = Ed25519PrivateKey.generate()
            session_pub = session.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
            session_seed = session.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()
            payload = "\x01".join(["bulwark-logon/2", str(unix_ms(h.getField(52))), nonce, h.getField(49), h.getField(56), account, session_pub])
            sig = key.sign(payload.encode()).hex()
            msg.setField(553, account)
            msg.setField(25001, nonce); msg.setField(25002, session_seed)
            msg.setField(95, str(len(sig)))
            msg.setField(96, sig)
    def fromAdmin(self, msg, sid):
        if msg.getHeader().getField(35) == "5":
            say("LOGOUT_TEXT", msg.getField(58) if msg.isSetField(58) else "")
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid):
        t = msg.getHeader().getField(35)
        get = lambda tag: msg.getField(tag) if msg.isSetField(tag) else "-"
        if t in ("W", "X", "Y"):
            say("MD", t, get(262), get(268), get(281))
            with arrived:
                reports.setdefault("md:" + get(262), []).append((t, get(268)))
                arrived.notify_all()
            return
        line = " ".join(["APP", t, get(11), get(150), get(39), get(37), get(58).replace(" ", "_")])
        say(line)
        with arrived:
            reports.setdefault(get(11), []).append((t, get(150)))
            arrived.notify_all()

def wait_for(cl, done, timeout=20):
    end = time.time() + timeout
    with arrived:
        while not any(done(r) for r in reports.get(cl, [])):
            left = end - time.time()
            if left <= 0:
                say("TIMEOUT", cl); return False
            arrived.wait(left)
    return True

settings = fix.SessionSettings(cfg)
init = fix.SocketInitiator(App(), fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
init.start()
if not logged_on.wait(15):
    say("NO_LOGON"); logged_out.wait(3); init.stop(); sys.exit(0)
sid = fix.SessionID("FIX.4.4", "TRADER" + account, target)

def order(cl):
    m = fix.Message()
    m.getHeader().setField(fix.MsgType("D"))
    m.setField(fix.ClOrdID(cl)); m.setField(fix.Symbol("BTC-PERP")); m.setField(fix.Side(fix.Side_BUY))
    m.setField(fix.TransactTime()); m.setField(fix.OrderQty(1)); m.setField(fix.OrdType(fix.OrdType_LIMIT))
    m.setField(44, price)
    fix.Session.sendToTarget(m, sid)

# Top of book, subscribed with incremental refreshes (QuickFIX checks W and X against its
# FIX 4.4 dictionary before fromApp sees them).
md = fix.Message()
md.getHeader().setField(fix.MsgType("V"))
md.setField(fix.MDReqID("md1")); md.setField(fix.SubscriptionRequestType("1"))
md.setField(fix.MarketDepth(1)); md.setField(fix.MDUpdateType(1))
types = fix44.MarketDataRequest.NoMDEntryTypes()
types.setField(fix.MDEntryType("0")); md.addGroup(types)
types.setField(fix.MDEntryType("1")); md.addGroup(types)
syms = fix44.MarketDataRequest.NoRelatedSym()
syms.setField(fix.Symbol("BTC-PERP")); md.addGroup(syms)
fix.Session.sendToTarget(md, sid)
wait_for("md:md1", lambda r: r[0] == "W")
bad = fix.Message()
bad.getHeader().setField(fix.MsgType("V"))
bad.setField(fix.MDReqID("md2")); bad.setField(fix.SubscriptionRequestType("0")); bad.setField(fix.MarketDepth(0))
types.setField(fix.MDEntryType("0")); bad.addGroup(types)
syms.setField(fix.Symbol("BTC-PERP")); bad.addGroup(syms)
fix.Session.sendToTarget(bad, sid)
wait_for("md:md2", lambda r: r[0] == "Y")
order("o1")
wait_for("o1", lambda r: r[0] == "8" and r[1] in ("0", "8"))
c = fix.Message()
c.getHeader().setField(fix.MsgType("F"))
c.setField(fix.OrigClOrdID("o1")); c.setField(fix.ClOrdID("c1")); c.setField(fix.Symbol("BTC-PERP"))
c.setField(fix.Side(fix.Side_BUY)); c.setField(fix.TransactTime())
fix.Session.sendToTarget(c, sid)
wait_for("c1", lambda r: r[0] in ("8", "9"))
order("o2")
wait_for("o2", lambda r: r[0] == "8" and r[1] in ("0", "8"))
init.stop()
logged_out.wait(5)
"#;

fn python() -> Option<String> {
    bulwark_testkit::python::python_with(&["quickfix", "cryptography"])
}

fn quickfix(
    python: &str,
    port: u16,
    seed: [u8; 32],
    account: u64,
    target: &str,
    price: &str,
) -> String {
    let store = tempfile::tempdir().unwrap();
    let mut child = Command::new(python)
        .args([
            "-c",
            SCRIPT,
            &port.to_string(),
            &hex::encode(seed),
            &account.to_string(),
            store.path().to_str().unwrap(),
            target,
            price,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().flush();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickfix_trades_through_a_gateway_and_acks_mean_finalized() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with quickfix and cryptography (.ci/run installs them)"
        );
        eprintln!("SKIPPED: no Python with quickfix and cryptography; CI installs them");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = base_port(16_000);
    let up = common::gateway::up(&data, port, 55, Some(5));
    let endpoint: SocketAddr = format!("127.0.0.1:{}", port + 100).parse().unwrap();
    // The committee is up and has a mark for BTC-PERP.
    let (mark, tick) = common::gateway::mark(endpoint);
    let gateway = port + 300;
    wait_until("the gateway's port", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", gateway)).ok()
    });
    // The first data center's gateway (`up` names them after the data centers).
    let target = "BULWARK-DC-0";
    // A resting buy 0.3 % under the mark, in the FIX price's units.
    let price = fix_price(mark - mark * 3 / 1000, tick);
    let account = 3;
    let seed = bulwark_testkit::client_key(1, account).to_bytes();
    let out = quickfix(&python, gateway, seed, account, target, &price);
    let lines: Vec<&str> = out.lines().collect();
    let gateway_log = || common::gateway::gateway_log(&data, 0);
    assert!(
        lines.contains(&"LOGON"),
        "{out}\ngateway log:\n{}",
        gateway_log()
    );
    // o1: New with the engine's OrderID, then cancelled by c1.
    let new = |cl: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("APP 8 {cl} 0 0 ")))
            .and_then(|l| l.split(' ').nth(5))
            .and_then(|id| id.parse::<u64>().ok())
    };
    let o1 = new("o1").unwrap_or_else(|| panic!("no New for o1: {out}"));
    assert!(
        lines.iter().any(|l| l.starts_with("APP 8 c1 4 4 ")),
        "{out}"
    );
    let o2 = new("o2").unwrap_or_else(|| panic!("no New for o2: {out}"));
    // Market data: a snapshot of the agreed top of book that passed QuickFIX's dictionary,
    // and a MarketDataRequestReject for a depth this gateway does not serve (264=0).
    assert!(lines.iter().any(|l| l.starts_with("MD W md1 ")), "{out}");
    assert!(lines.contains(&"MD Y md2 - 5"), "{out}");
    assert_ne!(o1, o2);
    // Acknowledged means finalized: the committee's committed state knows both orders (o1
    // cancelled, o2 cancelled on disconnect after the logout).
    wait_until(
        "o2 cancelled on disconnect",
        Duration::from_secs(15),
        || {
            let mut client = Client::connect(endpoint, Duration::from_millis(500)).ok()?;
            let account = client.account(AccountId(account)).ok()?;
            (!account
                .open_orders
                .iter()
                .any(|o| o.order_id == o2 || o.order_id == o1))
            .then_some(())
        },
    );
    // A logon signed by another key: refused, with the reason.
    let out = quickfix(&python, gateway, [7; 32], account, target, &price);
    assert!(out.contains("NO_LOGON"), "{out}");
    assert!(
        out.contains("LOGOUT_TEXT the logon signature does not verify"),
        "{out}"
    );
    the_gateway_metrics_count_the_logons_and_the_refusal(port);
    let (code, _, stderr) = up.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("gateway dc-0: FIX 4.4 on 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("metrics (Prometheus, read-only"),
        "{stderr}"
    );
}

/// Issue #17: the gateway's operator port (75 above the base port under `up`) serves metrics
/// the reference OpenMetrics parser reads, counting the session above and the forged logon by
/// the layer that refused it.
fn the_gateway_metrics_count_the_logons_and_the_refusal(port: u16) {
    use bulwark_testkit::metrics::{parse_openmetrics, scrape};
    let operator = SocketAddr::from(([127, 0, 0, 1], port + 75));
    let text = scrape(operator).unwrap();
    let Some(families) = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with prometheus_client (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED: the OpenMetrics parse (no Python with prometheus_client); checking the text"
        );
        assert!(text.contains("bulwark_gateway_logons_total "), "{text}");
        assert!(
            text.contains("bulwark_gateway_refusals_total{layer=\"logon_signature\"} "),
            "{text}"
        );
        return;
    };
    let value = |sample: &str, labels: &[(&str, &str)]| {
        families
            .value(sample, labels)
            .unwrap_or_else(|| panic!("no one sample {sample} {labels:?} in\n{text}"))
    };
    assert!(value("bulwark_gateway_logons_total", &[]) >= 1.0, "{text}");
    assert!(
        value(
            "bulwark_gateway_refusals_total",
            &[("layer", "logon_signature")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value("bulwark_gateway_execution_reports_total", &[]) >= 2.0,
        "{text}"
    );
    assert!(value("bulwark_gateway_cancels_total", &[]) >= 1.0, "{text}");
    common::metrics::every_family_is_documented(&families.names());
}
