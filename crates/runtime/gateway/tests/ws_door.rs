//! The WebSocket door without a committee behind it: TLS with the hybrid post-quantum key
//! exchange preferred, and strangers who send junk, oversize messages, too many bytes, or
//! nothing at all are answered with a typed error where one is due and closed.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::Message;

fn gateway(dir: &std::path::Path) -> bulwark_gateway::Gateway {
    let text = format!(
        "comp_id = \"DOOR\"\nfix_listen = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\nws_tls_self_signed = true\ndata_dir = \"{}\"\nnodes = [\"127.0.0.1:9\"]\nquorum = 1\n",
        dir.display()
    );
    let config: bulwark_gateway::GatewayConfig = toml::from_str(&text).unwrap();
    bulwark_gateway::start(config).unwrap()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(gateway: &bulwark_gateway::Gateway) -> Tls {
    let cert = gateway.ws_dev_cert.clone().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(gateway.ws_addr.unwrap()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    rustls::StreamOwned::new(connection, socket)
}

fn websocket(gateway: &bulwark_gateway::Gateway) -> tungstenite::WebSocket<Tls> {
    let url = format!("wss://localhost:{}/", gateway.ws_addr.unwrap().port());
    let (ws, _) = tungstenite::client::client(url, tls(gateway)).unwrap();
    ws
}

/// Reads until the gateway closes (a client-side read timeout is a failure, not a close); the
/// text messages it sent first.
fn until_closed(ws: &mut tungstenite::WebSocket<Tls>) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => texts.push(t.to_string()),
            Ok(Message::Close(_)) => return texts,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the gateway did not close the connection within the client's 5 s")
            }
            Err(_) => return texts,
            Ok(_) => {}
        }
    }
}

fn error_code(text: &str) -> i64 {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    value["error"]["code"].as_i64().unwrap()
}

#[test]
fn tls_prefers_the_hybrid_post_quantum_key_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(dir.path());
    let mut ws = websocket(&gateway);
    let group = ws.get_ref().conn.negotiated_key_exchange_group().unwrap();
    assert_eq!(format!("{:?}", group.name()), "X25519MLKEM768");
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"public/get_time"}"#,
    ))
    .unwrap();
    let Message::Text(answer) = ws.read().unwrap() else {
        panic!("not a text answer")
    };
    assert!(answer.contains("\"result\""), "{answer}");
    gateway.stop();
}

#[test]
fn strangers_get_a_typed_error_and_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(dir.path());
    // Not JSON: a parse error, then closed at once.
    let mut ws = websocket(&gateway);
    let started = Instant::now();
    ws.send(Message::text("{\"jsonrpc\":")).unwrap();
    let texts = until_closed(&mut ws);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(error_code(&texts[0]), -32700);
    assert!(started.elapsed() < Duration::from_secs(1));
    // A private method before auth.
    let mut ws = websocket(&gateway);
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"private/buy","params":{}}"#,
    ))
    .unwrap();
    let texts = until_closed(&mut ws);
    assert_eq!(error_code(&texts[0]), 13009);
    // A message over the pre-auth bound: closed without an answer.
    let mut ws = websocket(&gateway);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"public/test","params":{{"x":"{}"}}}}"#,
        "a".repeat(8000)
    );
    let started = Instant::now();
    let _ = ws.send(Message::text(big));
    assert!(until_closed(&mut ws).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed at once, not at the deadline"
    );
    // Silence: closed at the 2 s deadline.
    let mut ws = websocket(&gateway);
    let started = Instant::now();
    assert!(until_closed(&mut ws).is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // A stranger that trickles its TLS handshake a byte at a time, inside the gateway's read
    // poll: closed at the 2 s deadline all the same.
    let mut raw = TcpStream::connect(gateway.ws_addr.unwrap()).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let hello = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let started = Instant::now();
    let mut closed = false;
    for byte in hello.iter().chain(std::iter::repeat(&0u8)).take(400) {
        if raw.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut raw, &mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            _ => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited = started.elapsed();
    assert!(
        closed && waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "{closed} {waited:?}"
    );
    // Junk instead of TLS: closed.
    let mut raw = TcpStream::connect(gateway.ws_addr.unwrap()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    let n = std::io::Read::read(&mut raw, &mut buf).unwrap_or(0);
    assert!(n < 64 && started.elapsed() < Duration::from_secs(3));
    // Each counted (once its thread has ended).
    let counted = || {
        gateway
            .counters
            .closed_before_logon
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let waiting = Instant::now();
    while counted() < 6 && waiting.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(counted(), 6);
    // None of them was closed for the handshake budgets: each met the bound it was aimed at.
    assert_eq!(
        gateway
            .counters
            .handshakes_over_budget
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gateway.stop();
}
