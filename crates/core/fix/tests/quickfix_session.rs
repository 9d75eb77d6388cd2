//! The session layer against a real FIX engine: QuickFIX (the Python binding of the C++
//! engine, from the wheel `.ci/run` installs) as the initiator, over loopback TCP, to a small
//! acceptor here that drives [`Session`] with the wall clock. QuickFIX validates everything we
//! send against its FIX 4.4 dictionary.
//!
//! The run: QuickFIX logs on with the Ed25519 logon signature (computed in its `toAdmin`, over
//! the SendingTime it stamped), sends a NewOrderSingle, gets two ExecutionReports of which the
//! acceptor drops the first on the floor (so QuickFIX sees a gap, asks for a resend, and gets
//! it with PossDupFlag), exchanges heartbeats at HeartBtInt 1, and logs out. It then logs on
//! again with its file store: the sequence numbers go on from where they were on both sides.
//! Last, a QuickFIX with the wrong key is refused with a Logout that says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark_fix::logon::LogonError;
use bulwark_fix::session::{Close, Config, Output, SeqNums, Session};
use bulwark_fix::{Field, Message};
use ed25519_dalek::SigningKey;

const SCRIPT: &str = r#"
import calendar, os, sys, time, threading
from datetime import datetime, timezone
import quickfix as fix
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

port, seed_hex, store, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
spec = os.path.join(__import__("sysconfig").get_paths()["data"], "share", "quickfix", "FIX44.xml")
settings_text = f"""
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=60
FileStorePath={store}
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={spec}
ValidateUserDefinedFields=N
[SESSION]
BeginString=FIX.4.4
SenderCompID=TRADER1
TargetCompID=BULWARK
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
HeartBtInt=1
"""
events = []
lock = threading.Lock()
logged_on = threading.Event()
logged_out = threading.Event()
reports = threading.Event()

def unix_ms(sending_time):
    # FIX UTCTimestamp: YYYYMMDD-HH:MM:SS[.sss[sss]]
    base, _, fraction = sending_time.partition(".")
    t = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    return calendar.timegm(t.utctimetuple()) * 1000 + int((fraction + "000")[:3])

def say(*parts):
    with lock:
        print(*parts, flush=True)

class App(fix.Application):
    def onCreate(self, sid): pass
    def onLogon(self, sid):
        say("LOGON")
        logged_on.set()
    def onLogout(self, sid):
        say("LOGOUT")
        logged_out.set()
    def toAdmin(self, msg, sid):
        h = msg.getHeader()
        t = h.getField(35)
        if t == "A":
            sending = h.getField(52)
            nonce = os.urandom(16).hex()
            session = Ed25519PrivateKey.generate()
            session_pub = session.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
            session_seed = session.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()
            payload = "\x01".join(["bulwark-logon/2", str(unix_ms(sending)), nonce, h.getField(49), h.getField(56), "7", session_pub])
            sig = key.sign(payload.encode()).hex()
            msg.setField(553, "7")
            msg.setField(25001, nonce); msg.setField(25002, session_seed)
            msg.setField(95, str(len(sig)))
            msg.setField(96, sig)
            say("SENT_LOGON", h.getField(34))
    def fromAdmin(self, msg, sid):
        h = msg.getHeader()
        t = h.getField(35)
        if t == "0":
            say("HEARTBEAT")
        elif t == "5":
            text = msg.getField(58) if msg.isSetField(58) else ""
            say("LOGOUT_TEXT", text)
        elif t == "4":
            say("GAPFILL", h.getField(34), msg.getField(36))
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid):
        h = msg.getHeader()
        dup = h.getField(43) if h.isSetField(43) else "N"
        say("APP", h.getField(35), h.getField(34), msg.getField(11), dup)
        if msg.getField(11) == "order-1":
            reports.set()

cfg = os.path.join(store, "initiator.cfg")
with open(cfg, "w") as f:
    f.write(settings_text)
settings = fix.SessionSettings(cfg)
app = App()
init = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
init.start()
if mode == "refused":
    logged_out.wait(10)
    time.sleep(0.3)
    init.stop()
    sys.exit(0)
if not logged_on.wait(10):
    say("NO_LOGON"); init.stop(); sys.exit(1)
sid = fix.SessionID("FIX.4.4", "TRADER1", "BULWARK")
if mode == "first":
    order = fix.Message()
    order.getHeader().setField(fix.MsgType("D"))
    order.setField(fix.ClOrdID("order-1"))
    order.setField(fix.Symbol("BTC-PERP"))
    order.setField(fix.Side(fix.Side_BUY))
    order.setField(fix.TransactTime())
    order.setField(fix.OrderQty(2))
    order.setField(fix.OrdType(fix.OrdType_LIMIT))
    order.setField(fix.Price(60000))
    fix.Session.sendToTarget(order, sid)
    reports.wait(10)
time.sleep(3)
init.stop()
logged_out.wait(5)
"#;

fn python() -> Option<String> {
    bulwark_testkit::python::python_with(&["quickfix", "cryptography"])
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// What the acceptor saw on one connection.
#[derive(Debug, Default)]
struct Seen {
    closed: Option<Close>,
    applications: Vec<Message>,
    logon_seq: Vec<u64>,
    heartbeats_in: usize,
}

/// The acceptor's state across connections: stored numbers per SenderCompID, nonces seen.
#[derive(Default)]
struct Store {
    seq: HashMap<String, SeqNums>,
    nonces: HashSet<[u8; 16]>,
}

/// Serves one connection to its end.
fn serve(
    mut stream: TcpStream,
    trader_key: [u8; 32],
    store: &Mutex<Store>,
    drop_first_report: bool,
) -> Seen {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut session = Session::new(Config::new("BULWARK"), now_ms());
    let mut seen = Seen::default();
    let mut reports_sent = 0;
    let mut buf = [0u8; 4096];
    loop {
        let mut out = Vec::new();
        match stream.read(&mut buf) {
            Ok(0) => {
                if !session.is_closed() {
                    seen.closed
                        .get_or_insert(Close::Protocol("connection closed".into()));
                }
                return seen;
            }
            Ok(n) => {
                let bytes = &buf[..n];
                // Count their heartbeats by MsgType in what arrives.
                seen.heartbeats_in += bytes.windows(6).filter(|w| w == b"\x0135=0\x01").count();
                session.receive(now_ms(), bytes, &mut out);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return seen,
        }
        session.tick(now_ms(), &mut out);
        let mut queue: std::collections::VecDeque<Output> = out.into();
        while let Some(output) = queue.pop_front() {
            let mut more = Vec::new();
            match output {
                Output::Send(bytes) => {
                    let fresh_report = bytes.windows(6).any(|w| w == b"\x0135=8\x01")
                        && !bytes.windows(6).any(|w| w == b"\x0143=Y\x01");
                    if fresh_report {
                        reports_sent += 1;
                    }
                    if drop_first_report && fresh_report && reports_sent == 1 {
                        // Lost on the way.
                    } else if stream.write_all(&bytes).is_err() {
                        return seen;
                    }
                }
                Output::Authenticate(logon) => {
                    seen.logon_seq.push(logon.msg_seq_num);
                    let mut store = store.lock().unwrap();
                    let checked = if !store.nonces.insert(logon.nonce) {
                        Err(LogonError::Replayed)
                    } else if logon.account != 7 {
                        Err(LogonError::Signature)
                    } else {
                        logon.verify(&trader_key)
                    };
                    match checked {
                        Ok(()) => {
                            let stored = store.seq.get(&logon.sender).copied().unwrap_or_default();
                            session.accept_logon(now_ms(), stored, &mut more);
                        }
                        Err(error) => session.refuse_logon(now_ms(), error, &mut more),
                    }
                }
                Output::Application(message) => {
                    if message.msg_type() == b"D" {
                        let id = message.get_str(11).unwrap_or("?").to_string();
                        // Two reports: the first is "lost" on the way (when asked to), so
                        // QuickFIX must see the gap and ask for a resend.
                        for (exec, status) in [("e1", "0"), ("e2", "0")] {
                            let body = vec![
                                Field::new(37, "1"),
                                Field::new(11, id.as_str()),
                                Field::new(17, exec),
                                Field::new(150, status),
                                Field::new(39, status),
                                Field::new(55, "BTC-PERP"),
                                Field::new(54, "1"),
                                Field::new(151, "2"),
                                Field::new(14, "0"),
                                Field::new(6, "0"),
                            ];
                            session.send(now_ms(), "8", body, &mut more).unwrap();
                        }
                    }
                    seen.applications.push(message);
                }
                Output::Persist(seq) => {
                    store
                        .lock()
                        .unwrap()
                        .seq
                        .insert(session.sender().to_string(), seq);
                }
                Output::Close(reason) => {
                    seen.closed = Some(reason);
                }
            }
            for (i, o) in more.into_iter().enumerate() {
                queue.insert(i, o);
            }
        }
        if session.is_closed() {
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(50));
            return seen;
        }
    }
}

/// Runs QuickFIX in `mode` against a fresh acceptor; returns its output and what we saw.
fn run(
    python: &str,
    mode: &str,
    seed: [u8; 32],
    trader_key: [u8; 32],
    store_dir: &std::path::Path,
    store: &Arc<Mutex<Store>>,
    drop_first_report: bool,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = Arc::clone(store);
    let acceptor = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve(stream, trader_key, &store, drop_first_report)
    });
    let out = Command::new(python)
        .args([
            "-c",
            SCRIPT,
            &port.to_string(),
            &hex::encode(seed),
            store_dir.to_str().unwrap(),
            mode,
        ])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, acceptor.join().unwrap())
}

#[test]
fn quickfix_logs_on_trades_resends_heartbeats_logs_out_and_comes_back() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with quickfix and cryptography (.ci/run installs them)"
        );
        eprintln!("SKIPPED: no Python with quickfix and cryptography; CI installs them");
        return;
    };
    let seed = [21u8; 32];
    let trader_key = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(Store::default()));

    let (stdout, seen) = run(&python, "first", seed, trader_key, dir.path(), &store, true);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"LOGON"), "{stdout}");
    assert_eq!(seen.logon_seq, [1], "{stdout}");
    // The order arrived with its fields; both reports reached QuickFIX, the lost one resent as
    // a PossDup after QuickFIX's ResendRequest.
    assert_eq!(seen.applications.len(), 1, "{seen:?}");
    assert_eq!(seen.applications[0].get_str(11), Some("order-1"));
    let reports: Vec<&&str> = lines.iter().filter(|l| l.starts_with("APP 8 ")).collect();
    assert_eq!(reports.len(), 2, "{stdout}");
    assert!(
        reports.iter().any(|l| l.ends_with(" Y")),
        "the lost report is resent as PossDup: {stdout}"
    );
    // Heartbeats both ways at HeartBtInt 1, and an orderly logout.
    assert!(
        lines.iter().filter(|l| **l == "HEARTBEAT").count() >= 2,
        "{stdout}"
    );
    assert!(seen.heartbeats_in >= 2, "{seen:?}");
    assert_eq!(seen.closed, Some(Close::LoggedOut), "{stdout}");
    let stored = store.lock().unwrap().seq["TRADER1"];
    assert!(stored.next_in > 4 && stored.next_out > 4, "{stored:?}");

    // Back again: QuickFIX's file store and ours carry the numbers on; no reset, no gap.
    let (stdout, seen) = run(
        &python,
        "second",
        seed,
        trader_key,
        dir.path(),
        &store,
        false,
    );
    assert!(stdout.lines().any(|l| l == "LOGON"), "{stdout}");
    assert_eq!(seen.logon_seq, [stored.next_in], "{stdout}");
    assert!(!stdout.contains("GAPFILL"), "{stdout}");
    assert_eq!(seen.closed, Some(Close::LoggedOut), "{stdout}");

    // A QuickFIX with another key is told why and let go.
    let other = tempfile::tempdir().unwrap();
    let (stdout, seen) = run(
        &python,
        "refused",
        [22; 32],
        trader_key,
        other.path(),
        &store,
        false,
    );
    assert_eq!(
        seen.closed,
        Some(Close::LogonRefused(LogonError::Signature)),
        "{stdout}"
    );
    assert!(
        stdout.contains("LOGOUT_TEXT the logon signature does not verify"),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l == "LOGON"), "{stdout}");
}
