//! End to end: a server on 127.0.0.1:0 with a handler backed by a real mempool, driven by the
//! client and by raw sockets sending what a client would not.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_api::answers::{AccountAnswer, BookAnswer, Level, NodeStatus};
use bulwark_api::wire::{
    decode_response, read_frame, ErrorCode, Response, SubmitOutcome, WireLimits,
};
use bulwark_consensus::mempool::{Mempool, MempoolConfig, Origin};
use bulwark_engine::codec::SignedTx;
use bulwark_engine::{AccountId, ClientCommand, InstrumentId};
use bulwark_node::client::{Client, ClientError};
use bulwark_node::server::{Handler, Limits, Refusal, Server, ServerHandle};
use ed25519_dalek::SigningKey;

const TIMEOUT: Duration = Duration::from_secs(5);

fn signing_key(account: u64) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(account).unwrap(); 32])
}

fn public_key(account: AccountId) -> Option<[u8; 32]> {
    (1..=9)
        .contains(&account.0)
        .then(|| signing_key(account.0).verifying_key().to_bytes())
}

fn tx(account: u64, nonce: u64) -> SignedTx {
    SignedTx::sign(
        AccountId(account),
        nonce,
        ClientCommand::MassCancel { instrument: None },
        &signing_key(account),
    )
}

/// The node's side as the real node would wire it: submissions go to the mempool.
struct FakeNode {
    mempool: Mempool,
}

impl Handler for FakeNode {
    fn submit(&self, txs: Vec<SignedTx>) -> SubmitOutcome {
        let arrived = std::time::SystemTime::now();
        self.mempool
            .insert_batch(txs, &public_key, Origin::Client { arrived })
            .into()
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            height: 7,
            mempool: self.mempool.len(),
            ..NodeStatus::default()
        }
    }

    fn account(&self, account: AccountId) -> Result<AccountAnswer, Refusal> {
        match account.0 {
            1 => Ok(AccountAnswer {
                height: 7,
                account: 1,
                cash_micros: "1000000".into(),
                ..AccountAnswer::default()
            }),
            _ => Err(Refusal::UnknownAccount { account }),
        }
    }

    fn book(&self, instrument: InstrumentId, depth: usize) -> Result<BookAnswer, Refusal> {
        match instrument.0 {
            0 => Ok(BookAnswer {
                height: 7,
                bids: vec![Level { price: 100, qty: 5 }],
                asks: vec![Level { price: 101, qty: 3 }],
                resting_orders: depth,
                ..BookAnswer::default()
            }),
            _ => Err(Refusal::UnknownInstrument { instrument }),
        }
    }
}

fn start(limits: Limits) -> (ServerHandle, Mempool) {
    let mempool = Mempool::new(MempoolConfig::default());
    let handler = Arc::new(FakeNode {
        mempool: mempool.clone(),
    });
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (Server::start(addr, limits, handler).unwrap(), mempool)
}

fn connect(server: &ServerHandle) -> Client {
    Client::connect(server.local_addr(), TIMEOUT).unwrap()
}

fn raw(server: &ServerHandle) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

fn read_response(stream: &mut TcpStream) -> Response {
    let frame = read_frame(stream, WireLimits::default().frame_bytes_max).unwrap();
    decode_response(&frame).unwrap()
}

fn assert_error(response: Response, expected: ErrorCode) -> String {
    match response {
        Response::Error { code, message } if code == expected => message,
        other => panic!("expected a {expected:?} error, got {other:?}"),
    }
}

/// The server closed its side: the next read sees end of stream (or a reset).
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("server kept the connection open"),
    }
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn submit_status_account_and_book_work() {
    let (server, mempool) = start(Limits::default());
    let mut client = connect(&server);

    let mut forged = tx(2, 1);
    forged.signature[3] ^= 1;
    let outcome = client
        .submit(&[tx(1, 1), tx(1, 2), tx(1, 1), forged, tx(42, 1)])
        .unwrap();
    assert_eq!(outcome.accepted, 2);
    assert_eq!(outcome.duplicates, 1);
    let refused: Vec<(u32, &str)> = outcome
        .refused
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(refused, vec![(3, "bad signature"), (4, "unknown account")]);
    assert_eq!(mempool.len(), 2);

    let status = client.status().unwrap();
    assert_eq!((status.height, status.mempool), (7, 2));
    assert_eq!(client.account(AccountId(1)).unwrap().cash_micros, "1000000");
    match client.account(AccountId(5)) {
        Err(ClientError::Node {
            code: ErrorCode::Refused,
            message,
        }) => assert_eq!(message, "account 5 does not exist"),
        other => panic!("{other:?}"),
    }
    // A refused query leaves the connection usable.
    let book = client.book(InstrumentId(0), 10).unwrap();
    assert_eq!(
        book.resting_orders, 10,
        "the depth asked for reached the node"
    );
    assert_eq!(book.bids, vec![Level { price: 100, qty: 5 }]);

    // Latency is measured from the endpoint's arrival time.
    let committed = mempool.commit(
        &[bulwark_consensus::mempool::TxKey::of(&tx(1, 1))],
        std::time::SystemTime::now(),
    );
    assert_eq!(committed.removed, 1);
    assert_eq!(committed.latencies.len(), 1);
    server.stop();
}

#[test]
fn oversize_frames_are_refused_and_the_connection_closed() {
    let limits = Limits {
        wire: WireLimits {
            frame_bytes_max: 4096,
            submit_txs_max: 16,
            book_depth_max: 100,
        },
        ..Limits::default()
    };
    let (server, _) = start(limits);
    let mut stream = raw(&server);
    // Announce 2 MiB and send a little of it: refused from the length alone.
    stream.write_all(&(2u32 << 20).to_be_bytes()).unwrap();
    stream.write_all(&[0x01; 100]).unwrap();
    let message = assert_error(read_response(&mut stream), ErrorCode::TooLarge);
    assert!(message.contains("exceeds the limit of 4096"), "{message}");
    assert_closed(&mut stream);

    // The client refuses locally what the node would refuse.
    let mut client =
        Client::connect_with_limits(server.local_addr(), TIMEOUT, limits.wire).unwrap();
    let txs: Vec<SignedTx> = (1..=17).map(|n| tx(1, n)).collect();
    assert!(matches!(client.submit(&txs), Err(ClientError::Wire(_))));
    assert!(client.status().is_ok());
    server.stop();
}

#[test]
fn malformed_frames_get_clear_errors_and_keep_the_connection() {
    let (server, mempool) = start(Limits::default());
    let mut stream = raw(&server);
    let cases: [(&[u8], &str); 5] = [
        (&[0, 0, 0, 0], "empty frame"),
        (&[0, 0, 0, 1, 0x42], "unknown frame kind 0x42"),
        (&[0, 0, 0, 3, 0x01, 0x09, 0x00], "bad transaction batch"),
        (&[0, 0, 0, 3, 0x03, 0, 1], "bad account request body"),
        (&[0, 0, 0, 2, 0x02, 0], "bad status request body"),
    ];
    for (bytes, expected) in cases {
        stream.write_all(bytes).unwrap();
        let message = assert_error(read_response(&mut stream), ErrorCode::Malformed);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // A batch claiming more transactions than it holds.
    let mut batch = vec![0x01];
    batch.extend_from_slice(&1000u32.to_le_bytes());
    let mut frame = u32::try_from(batch.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    frame.push(0x01);
    frame.extend_from_slice(&batch);
    stream.write_all(&frame).unwrap();
    let message = assert_error(read_response(&mut stream), ErrorCode::Malformed);
    assert!(message.contains("announces 1000 transactions"), "{message}");
    // Still in step: a good request on the same connection works.
    stream.write_all(&[0, 0, 0, 1, 0x02]).unwrap();
    assert!(matches!(read_response(&mut stream), Response::Status(_)));
    assert_eq!(mempool.len(), 0);
    server.stop();
}

#[test]
fn garbage_does_not_kill_the_server() {
    let (server, _) = start(Limits::default());
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xff; 64][..],
        &[0, 0][..],          // cut inside the length
        &[0, 0, 0, 9, 1][..], // cut inside the body
    ] {
        let mut stream = raw(&server);
        stream.write_all(garbage).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    let mut client = connect(&server);
    assert_eq!(client.status().unwrap().height, 7);
    assert_eq!(client.submit(&[tx(3, 1)]).unwrap().accepted, 1);
    server.stop();
}

#[test]
fn connections_over_the_limit_are_refused() {
    let limits = Limits {
        connections_max: 2,
        ..Limits::default()
    };
    let (server, _) = start(limits);
    let mut first = connect(&server);
    let mut second = connect(&server);
    first.status().unwrap();
    second.status().unwrap();
    assert_eq!(server.connections(), 2);

    let mut third = raw(&server);
    let message = assert_error(read_response(&mut third), ErrorCode::Busy);
    assert!(message.contains("too many connections"));
    assert_closed(&mut third);

    // A slot frees when a client leaves.
    first.close();
    wait_until("the server notices the close", || server.connections() == 1);
    let mut fourth = connect(&server);
    assert!(fourth.status().is_ok());
    assert!(second.status().is_ok());
    server.stop();
}

#[test]
fn rate_limits_answer_with_an_error_and_keep_the_connection() {
    let limits = Limits {
        requests_per_s: 1,
        requests_burst: 3,
        txs_per_s: 1,
        txs_burst: 5,
        wire: WireLimits {
            submit_txs_max: 5,
            ..WireLimits::default()
        },
        ..Limits::default()
    };
    let (server, mempool) = start(limits);
    let mut client =
        Client::connect_with_limits(server.local_addr(), TIMEOUT, limits.wire).unwrap();
    for _ in 0..3 {
        client.status().unwrap();
    }
    match client.status() {
        Err(ClientError::Node {
            code: ErrorCode::RateLimited,
            message,
        }) => assert!(message.contains("rate limited")),
        other => panic!("{other:?}"),
    }
    // The connection stays: the next request gets an answer (the same refusal), not a close.
    assert!(matches!(
        client.status(),
        Err(ClientError::Node {
            code: ErrorCode::RateLimited,
            ..
        })
    ));
    // One request token per second: after a pause the same connection is served again.
    std::thread::sleep(Duration::from_millis(1100));
    client.status().unwrap();

    // Transactions have their own bucket.
    let mut other = Client::connect_with_limits(server.local_addr(), TIMEOUT, limits.wire).unwrap();
    let first: Vec<SignedTx> = (1..=4).map(|n| tx(4, n)).collect();
    assert_eq!(other.submit(&first).unwrap().accepted, 4);
    let second: Vec<SignedTx> = (5..=8).map(|n| tx(4, n)).collect();
    match other.submit(&second) {
        Err(ClientError::Node {
            code: ErrorCode::RateLimited,
            message,
        }) => assert!(message.contains("transactions"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        mempool.len(),
        4,
        "rate-limited transactions are not offered"
    );
    assert!(other.status().is_ok());
    server.stop();
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(150),
        frame_timeout: Duration::from_millis(150),
        ..Limits::default()
    };
    let (server, _) = start(limits);
    let mut idle = raw(&server);
    assert_closed(&mut idle);

    // Trickling a frame slower than the frame timeout ends the connection, with a reason.
    let mut slow = raw(&server);
    slow.write_all(&[0, 0, 0, 5, 0x03]).unwrap();
    let message = assert_error(read_response(&mut slow), ErrorCode::Malformed);
    assert!(message.contains("not received in time"), "{message}");
    assert_closed(&mut slow);
    wait_until("both connections are gone", || server.connections() == 0);
    server.stop();
}

#[test]
fn stop_returns_with_clients_connected() {
    let (server, _) = start(Limits::default());
    let addr = server.local_addr();
    let mut client = connect(&server);
    client.status().unwrap();
    let _idle = raw(&server);
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(client.status().is_err());
    // Nothing listens any more.
    assert!(Client::connect(addr, Duration::from_millis(500)).is_err());
}

/// A node whose TPM operations are counted; the server puts the real peer gate in front of it.
struct TpmNode {
    tpm_operations: std::sync::atomic::AtomicU64,
}

impl TpmNode {
    fn used(&self) -> Result<Vec<u8>, Refusal> {
        self.tpm_operations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![0xaa])
    }
}

impl Handler for TpmNode {
    fn submit(&self, _: Vec<SignedTx>) -> SubmitOutcome {
        SubmitOutcome::default()
    }
    fn status(&self) -> NodeStatus {
        NodeStatus::default()
    }
    fn account(&self, account: AccountId) -> Result<AccountAnswer, Refusal> {
        Err(Refusal::UnknownAccount { account })
    }
    fn book(&self, instrument: InstrumentId, _: usize) -> Result<BookAnswer, Refusal> {
        Err(Refusal::UnknownInstrument { instrument })
    }
    fn attest(&self, _: [u8; 32]) -> Result<Vec<u8>, Refusal> {
        self.used()
    }
    fn attest_key(&self) -> Result<Vec<u8>, Refusal> {
        self.used()
    }
    fn activate(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, Refusal> {
        self.used()
    }
}

/// Attack 10 of #12: a stranger on the client port asks for quotes, the attestation key and
/// credential activations, and a member floods quotes. The stranger never reaches the TPM; the
/// member is held to its rate; the node's own admission answers (another member) still come.
#[test]
fn only_committee_peers_reach_the_tpm_and_at_a_bounded_rate() {
    use bulwark_node::node::peer_gate::PEER_OPS_BURST;
    let me = SigningKey::from_bytes(&[40; 32]);
    let committee = [55u8; 32];
    let node_key = me.verifying_key().to_bytes();
    let target = bulwark_api::wire::peer_target(&committee, &node_key);
    let members: Vec<SigningKey> = (41..44).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let node = Arc::new(TpmNode {
        tpm_operations: std::sync::atomic::AtomicU64::new(0),
    });
    let gate = bulwark_node::node::peer_gate::PeerGate::new(
        node_key,
        &committee,
        members
            .iter()
            .chain([&me])
            .map(|k| k.verifying_key().to_bytes()),
    );
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server =
        Server::start_with_gate(addr, Limits::default(), node.clone(), Some(gate)).unwrap();
    let mut client = connect(&server);
    let used = || {
        node.tpm_operations
            .load(std::sync::atomic::Ordering::SeqCst)
    };

    // The stranger: every operation refused, the TPM untouched.
    let stranger = SigningKey::from_bytes(&[99; 32]);
    for _ in 0..20 {
        let refused = client.attest(&stranger, &target, [1; 32]).unwrap_err();
        assert!(
            refused.to_string().contains("committee peers only"),
            "{refused}"
        );
    }
    assert!(client.attest_key(&stranger, &target).is_err());
    assert!(client
        .activate(&stranger, &target, vec![1; 40], vec![2; 64])
        .is_err());
    // A member's request signed for another node is no use here either.
    let elsewhere =
        bulwark_api::wire::peer_target(&committee, &members[1].verifying_key().to_bytes());
    assert!(client.attest(&members[0], &elsewhere, [1; 32]).is_err());
    assert_eq!(used(), 0, "no TPM operation for anyone but a peer");

    // A member flooding quotes: served up to its burst, then rate limited.
    let mut served = 0u64;
    let mut limited = 0u64;
    for i in 0..40u8 {
        match client.attest(&members[0], &target, [i; 32]) {
            Ok(_) => served += 1,
            Err(ClientError::Node {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(served >= PEER_OPS_BURST as u64 && served < 40, "{served}");
    assert!(limited > 0);
    // Another member (the node's own admission traffic) still gets its quote and enrollment.
    assert_eq!(
        client.attest(&members[1], &target, [7; 32]).unwrap(),
        vec![0xaa]
    );
    assert_eq!(client.attest_key(&members[1], &target).unwrap(), vec![0xaa]);
    assert_eq!(used(), served + 2);
    server.stop();

    // A server started without a gate serves TPM operations to nobody, members included.
    let ungated = Server::start(addr, Limits::default(), node.clone()).unwrap();
    let mut client = connect(&ungated);
    let before = used();
    assert!(client.attest(&members[2], &target, [9; 32]).is_err());
    assert_eq!(used(), before);
    ungated.stop();
}
