//! JSON-RPC over WebSocket over TLS end to end with real processes: `bulwark up` starts 4 nodes
//! and one gateway per data center; Python's `websockets` client (a real WebSocket library,
//! over Python's own TLS, trusting only the gateway's development certificate) authenticates
//! with an account's key, subscribes to its orders and the book, places an order that is
//! answered only once finalized (its order_id is then resting in the committee's state), sees
//! it in `get_open_orders` and in the agreed book, edits it, cancels it, places another and
//! disconnects, and the gateway cancels that one on disconnect. Strangers lose: a private call
//! before auth, a request that is not JSON and a forged auth are each answered with a typed
//! error and the connection is closed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bulwark_engine::AccountId;
use bulwark_node::client::Client;
use common::gateway::{base_port, fix_price, wait_until};

const SCRIPT: &str = r#"
import json, os, ssl, sys, time
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

port, cert, seed_hex, account, target, price, new_price, seed_b_hex, account_b, eth_price = sys.argv[1:11]
ctx = ssl.create_default_context(cafile=cert)
uri = f"wss://localhost:{port}/"
raw = serialization.Encoding.Raw

def say(*parts):
    print(*parts, flush=True)

class Rpc:
    def __init__(self):
        try:
            self.ws = connect(uri, ssl=ctx, open_timeout=10)
        except InvalidMessage as e:
            # An open issue (docs/gateway.md, known limits): under CI load a connection that
            # finished TLS is now and then closed unanswered at the logon deadline. Said, and
            # tried once more; the Rust side allows it once per run.
            say("RECONNECT", repr(e).replace(" ", "_"))
            self.ws = connect(uri, ssl=ctx, open_timeout=10)
        self.next = 0
        self.notes = []
    def call(self, method, params=None, timeout=20):
        self.next += 1
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params or {}}))
        return self.wait_id(self.next, timeout)
    def read(self, method, params=None):
        # A read the nodes did not agree on in time (10005) is asked again, as the docs say.
        for _ in range(5):
            m = self.call(method, params)
            if m.get("error", {}).get("code") != 10005:
                return m
            time.sleep(0.2)
        return m
    def wait_id(self, want, timeout=20):
        end = time.time() + timeout
        while True:
            m = json.loads(self.ws.recv(timeout=max(0.1, end - time.time())))
            if m.get("id") == want:
                return m
            self.notes.append(m)
    def closed(self, timeout=5):
        try:
            end = time.time() + timeout
            while time.time() < end:
                self.ws.recv(timeout=end - time.time())
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False
        return False

def auth_params(key, client_id, account=account):
    session = Ed25519PrivateKey.generate()
    pub = session.public_key().public_bytes(raw, serialization.PublicFormat.Raw).hex()
    seed = session.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()
    ts = int(time.time() * 1000)
    nonce = os.urandom(16).hex()
    payload = "\x01".join(["bulwark-logon/2", str(ts), nonce, client_id, target, account, pub])
    return {"grant_type": "client_signature", "account": int(account), "client_id": client_id,
            "timestamp": ts, "nonce": nonce, "session_seed": seed, "signature": key.sign(payload.encode()).hex()}

key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))

# Strangers: a private call before auth, junk, a forged auth.
r = Rpc(); m = r.call("public/get_order_book", {"instrument_name": "BTC-PERP"})
say("PREAUTH", m["error"]["code"], r.closed())
r = Rpc(); r.ws.send("not json"); m = r.wait_id(None)
say("JUNK", m["error"]["code"], r.closed())
r = Rpc(); m = r.call("public/auth", auth_params(Ed25519PrivateKey.generate(), "WSFORGED"))
say("FORGED", m["error"]["code"], m["error"]["message"].replace(" ", "_"), r.closed())

r = Rpc()
say("TIME", "result" in r.call("public/get_time"))
m = r.call("public/auth", auth_params(key, "WSTRADER"))
say("AUTH", "result" in m, m.get("error"))
m = r.call("public/subscribe", {"channels": ["user.orders.any.raw", "book.BTC-PERP.none.5.100ms"]})
say("SUBSCRIBED", len(m["result"]))
m = r.call("public/subscribe", {"channels": ["trades.ETH-PERP.100ms"]})
say("TRADES", m["result"][0])
say("HEARTBEAT", r.call("public/set_heartbeat", {"interval": 10})["result"])
m = r.call("private/buy", {"instrument_name": "BTC-PERP", "amount": 1, "type": "limit", "price": price, "label": "w1"})
o = m["result"]["order"]
say("BUY", o["order_id"], o["order_state"], o["label"])
first = o["order_id"]
m = r.read("private/get_open_orders")
say("OPEN", any(x["order_id"] == first for x in m.get("result", [])), m.get("error"))
m = r.call("private/edit", {"order_id": first, "amount": 2, "price": new_price})
say("EDIT", m["result"]["order"]["order_id"], m["result"]["order"]["amount"], m["result"]["order"]["price"])
# The committee's state, not the gateway's echo: the order rests with 2 lots at the new price.
m = r.read("private/get_open_orders", {"instrument_name": "BTC-PERP"})
mine = [x for x in m.get("result", []) if x["order_id"] == first]
say("EDITED", len(mine) == 1 and mine[0]["amount"] - mine[0]["filled_amount"] == 2 and abs(mine[0]["price"] - float(new_price)) < 1e-9, m.get("error"))
m = r.read("public/get_order_book", {"instrument_name": "BTC-PERP", "depth": 20})
say("BOOK", any(abs(level[0] - float(new_price)) < 1e-9 and level[1] >= 2 for level in m["result"]["bids"]))
m = r.read("private/get_position", {"instrument_name": "BTC-PERP"})
p = m["result"]
consistent = {"buy": p["size"] > 0, "sell": p["size"] < 0, "zero": p["size"] == 0}[p["direction"]]
say("POSITION", p["instrument_name"], consistent)
m = r.call("private/buy", {"instrument_name": "BTC-PERP", "amount": 1.5, "price": price})
say("BADAMOUNT", m["error"]["code"])
m = r.call("private/cancel", {"order_id": first})
say("CANCEL", m["result"]["order_id"], m["result"]["order_state"])
m = r.call("private/cancel", {"order_id": first})
say("CANCEL_AGAIN", m["error"]["code"])
m = r.call("private/buy", {"instrument_name": "BTC-PERP", "amount": 1, "price": price, "label": "w2"})
say("SECOND", m["result"]["order"]["order_id"])
# A fill as a maker: this session rests a buy on ETH-PERP (nobody else trades there), and a
# session of another account sells into it.
m = r.call("private/buy", {"instrument_name": "ETH-PERP", "amount": 1, "price": eth_price, "label": "maker"})
maker = m["result"]["order"]["order_id"]
b = Rpc()
say("AUTH_B", "result" in b.call("public/auth", auth_params(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_b_hex)), "WSTAKER", account_b)))
m = b.call("private/sell", {"instrument_name": "ETH-PERP", "amount": 1, "price": eth_price, "time_in_force": "immediate_or_cancel"})
say("TAKER", m["result"]["order"]["order_state"], len(m["result"]["trades"]), m["result"]["trades"][0]["maker_order_id"] == maker)
b.ws.close()
def maker_filled():
    return any(n.get("params", {}).get("channel") == "user.orders.any.raw" and n["params"]["data"]["order_id"] == maker
               and n["params"]["data"]["order_state"] == "filled" for n in r.notes)
def traded():
    return any(n.get("params", {}).get("channel") == "trades.ETH-PERP.100ms" for n in r.notes)
end = time.time() + 10
while time.time() < end and not (maker_filled() and traded()):
    try:
        r.notes.append(json.loads(r.ws.recv(timeout=0.5)))
    except TimeoutError:
        pass
tape = [t for n in r.notes if n.get("params", {}).get("channel") == "trades.ETH-PERP.100ms" for t in n["params"]["data"]]
say("MAKER", maker_filled(), traded(), len(tape) > 0 and tape[0]["direction"] == "sell" and tape[0]["amount"] == 1)
end = time.time() + 5
def seen(prefix):
    return sum(1 for n in r.notes if n.get("params", {}).get("channel", "").startswith(prefix))
while time.time() < end and (seen("book.") == 0 or seen("user.orders.") < 4):
    try:
        r.notes.append(json.loads(r.ws.recv(timeout=0.5)))
    except TimeoutError:
        pass
# The heartbeat asked for at 10 s: its test request comes and is answered.
end = time.time() + 15
while time.time() < end and not any(n.get("method") == "heartbeat" for n in r.notes):
    try:
        r.notes.append(json.loads(r.ws.recv(timeout=0.5)))
    except TimeoutError:
        pass
beat = any(n.get("method") == "heartbeat" and n["params"]["type"] == "test_request" for n in r.notes)
say("HEARTBEAT_SEEN", beat, "result" in r.call("public/test"))
channels = sorted({n["params"]["channel"] for n in r.notes if n.get("method") == "subscription"})
states = [n["params"]["data"]["order_state"] for n in r.notes if n.get("params", {}).get("channel") == "user.orders.any.raw"]
say("NOTES", ",".join(channels), ",".join(states))
r.ws.close()
say("DONE")
"#;

fn python() -> Option<String> {
    bulwark_testkit::python::python_with(&["websockets", "cryptography"])
}

#[test]
fn a_websocket_client_trades_over_tls_and_strangers_are_closed() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with websockets and cryptography (.ci/run installs them)"
        );
        eprintln!("SKIPPED: no Python with websockets and cryptography; CI installs them");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = base_port(19_000);
    // The gateway says why it closed a connection before logon (in the log shown on failure).
    let filter = Some("info,bulwark_gateway::ws=debug");
    let up = common::gateway::up_logging(&data, port, 45, Some(5), filter);
    let endpoint: SocketAddr = format!("127.0.0.1:{}", port + 100).parse().unwrap();
    let (mark, tick) = common::gateway::mark(endpoint);
    let ws = port + 400;
    wait_until(
        "the gateway's WebSocket port",
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", ws)).ok(),
    );
    let cert = data
        .join("committee")
        .join("gateway-dc-0")
        .join("tls")
        .join("cert.pem");
    // Resting buys 0.3 % and 0.35 % under the mark.
    let price = fix_price(mark - mark * 3 / 1000, tick);
    let new_price = fix_price(mark - mark * 35 / 10_000, tick);
    let account = 4;
    let seed = bulwark_testkit::client_key(1, account).to_bytes();
    // ETH-PERP's mark (no load trades there): the maker's price.
    let eth = wait_until("ETH-PERP's mark", Duration::from_secs(30), || {
        let mut client = Client::connect(endpoint, Duration::from_millis(500)).ok()?;
        let tick = client.status().ok()?.instruments.get(1)?.tick_size_micros;
        let mark = client
            .book(bulwark_engine::InstrumentId(1), 1)
            .ok()?
            .mark_ticks?;
        Some(fix_price(mark, tick))
    });
    let seed_b = bulwark_testkit::client_key(1, 5).to_bytes();
    let out = Command::new(&python)
        .args([
            "-c",
            SCRIPT,
            &ws.to_string(),
            cert.to_str().unwrap(),
            &hex::encode(seed),
            &account.to_string(),
            "BULWARK-DC-0",
            &price,
            &new_price,
            &hex::encode(seed_b),
            "5",
            &eth,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = || common::gateway::gateway_log(&data, 0);
    assert!(
        out.status.success(),
        "{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    let line = |tag: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.split(' ').next() == Some(tag))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{stdout}\ngateway log:\n{}", log()))
            .split(' ')
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    // The open issue the script works around (a connection closed unanswered at the logon
    // deadline): at most once per run, and the gateway's reason is shown.
    let reconnects = stdout
        .lines()
        .filter(|l| l.starts_with("RECONNECT"))
        .count();
    if reconnects > 0 {
        eprintln!("{reconnects} reconnect(s); gateway log:\n{}", log());
    }
    assert!(reconnects <= 1, "{stdout}\ngateway log:\n{}", log());
    // Strangers get a typed error and the door.
    assert_eq!(line("PREAUTH"), ["13009", "True"]);
    assert_eq!(line("JUNK"), ["-32700", "True"]);
    let forged = line("FORGED");
    assert_eq!(forged[0], "13004");
    assert!(forged[1].contains("signature"), "{stdout}");
    assert_eq!(forged[2], "True");
    // The trader.
    assert_eq!(line("AUTH"), ["True", "None"]);
    assert_eq!(line("SUBSCRIBED"), ["2"]);
    assert_eq!(line("TRADES"), ["trades.ETH-PERP.100ms"]);
    assert_eq!(line("HEARTBEAT"), ["ok"]);
    let buy = line("BUY");
    assert_eq!(&buy[1..], ["open", "w1"]);
    let first: u64 = buy[0].parse().unwrap();
    assert_eq!(line("OPEN"), ["True", "None"]);
    let edit = line("EDIT");
    assert_eq!(edit[0], first.to_string());
    assert_eq!(edit[1], "2");
    assert_eq!(line("EDITED"), ["True", "None"]);
    assert_eq!(
        line("BOOK"),
        ["True"],
        "the agreed book shows the edited order"
    );
    assert_eq!(line("HEARTBEAT_SEEN"), ["True", "True"]);
    assert_eq!(line("POSITION"), ["BTC-PERP", "True"]);
    assert_eq!(line("BADAMOUNT"), ["-32602"]);
    assert_eq!(line("CANCEL"), [first.to_string(), "cancelled".to_string()]);
    assert_eq!(line("CANCEL_AGAIN"), ["10004"]);
    let second: u64 = line("SECOND")[0].parse().unwrap();
    // Another account's sell took this session's resting ETH-PERP buy: the taker's answer names
    // it as the maker, and this session heard its order filled (from the trades quorum nodes
    // reported alike) and the trade on the channel.
    assert_eq!(line("AUTH_B"), ["True"]);
    assert_eq!(line("TAKER"), ["filled", "1", "True"]);
    assert_eq!(line("MAKER"), ["True", "True", "True"]);
    let notes = line("NOTES");
    assert!(
        notes[0].contains("book.BTC-PERP.none.5.100ms") && notes[0].contains("user.orders.any.raw"),
        "{stdout}"
    );
    assert!(notes[1].starts_with("open,open,cancelled,open"), "{stdout}");
    assert_eq!(line("DONE"), Vec::<String>::new());
    // Answered means finalized, and the disconnect cancelled the second order.
    wait_until(
        "the second order cancelled on disconnect",
        Duration::from_secs(15),
        || {
            let mut client = Client::connect(endpoint, Duration::from_millis(500)).ok()?;
            let account = client.account(AccountId(account)).ok()?;
            (!account
                .open_orders
                .iter()
                .any(|o| o.order_id == second || o.order_id == first))
            .then_some(())
        },
    );
    let (code, _, stderr) = up.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("JSON-RPC on wss://localhost:"), "{stderr}");
}
