//! Issue #15's ack-loss checker, as Jepsen does it: traders send orders through a gateway while
//! the test kills a node and then the gateway itself with SIGKILL; the traders fail over to the
//! next data center's gateway and go on. At the end a checker compares every acknowledgement
//! a trader got (an ExecutionReport New and the OrderID it carries) with the committee's
//! finalized log, read from two nodes' receipts: no acknowledged order may be missing, and no
//! OrderID may be acknowledged twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_api::answers::ReceiptEvent;
use bulwark_engine::InstrumentId;
use bulwark_node::client::Client;
use bulwark_testkit::fix::Trader;

fn base_port() -> u16 {
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let start = (std::process::id() % 8) as u16;
    for step in 0..8u16 {
        let base = 24_000 + ((start + step) % 8) * 500;
        let free = (0..4u16)
            .all(|i| bindable(base + i) && bindable(base + 100 + i) && bindable(base + 300 + i));
        if free {
            return base;
        }
    }
    panic!("no free port range for the ack-loss test");
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The process whose command line contains `needle` (this test's own temp paths are unique).
fn pid_with(needle: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return Some(pid);
        }
    }
    None
}

fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// One trader: GTC orders at ~20 a second until `stop`, failing over to the next gateway when
/// its connection ends; the OrderIDs it was acknowledged, by ClOrdID.
fn trade(
    gateways: Vec<SocketAddr>,
    account: u64,
    price: String,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, u64> {
    let key = bulwark_testkit::client_key(1, account);
    let mut acked = BTreeMap::new();
    let mut n = 0u64;
    let mut at = 0usize;
    'sessions: while !stop.load(Ordering::Relaxed) {
        let gateway = gateways[at % gateways.len()];
        let target = format!("BULWARK-DC-{}", at % gateways.len());
        let sender = format!("ACK{account}");
        let Ok(mut trader) = Trader::logon(
            gateway,
            &sender,
            &target,
            account,
            &key,
            Duration::from_secs(12),
        ) else {
            at += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let cl = format!("a{account}-{n}");
            n += 1;
            if trader
                .new_order(&cl, "BTC-PERP", "1", 1, &price, "1")
                .is_err()
            {
                at += 1;
                continue 'sessions;
            }
            let until = Instant::now() + Duration::from_millis(50);
            loop {
                match trader.recv(until.saturating_duration_since(Instant::now())) {
                    Ok(Some(m)) => {
                        if m.msg_type() == b"8" && m.get_str(150) == Some("0") {
                            let cl = m.get_str(11).unwrap().to_string();
                            let id: u64 = m.get_str(37).unwrap().parse().unwrap();
                            acked.insert(cl, id);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        at += 1;
                        continue 'sessions;
                    }
                }
            }
        }
        // The last reports, then a clean logout (its orders are cancelled on disconnect).
        let until = Instant::now() + Duration::from_secs(3);
        while let Ok(Some(m)) = trader.recv(until.saturating_duration_since(Instant::now())) {
            if m.msg_type() == b"8" && m.get_str(150) == Some("0") {
                let cl = m.get_str(11).unwrap().to_string();
                acked.insert(cl, m.get_str(37).unwrap().parse().unwrap());
            }
        }
        trader.logout();
    }
    acked
}

/// Every order the node's finalized receipts show accepted, from height `from` on (the node
/// keeps the newest 200 000 receipts: far more than this run makes, so nothing is evicted).
fn accepted_in_log(node: SocketAddr, from: u64) -> BTreeSet<u64> {
    let mut client = Client::connect(node, Duration::from_secs(2)).unwrap();
    let top = client.status().unwrap().height;
    let mut cursor = (from, 0u32);
    let mut accepted = BTreeSet::new();
    let mut receipts = 0usize;
    while cursor.0 <= top {
        let answer = client.receipts(cursor.0, cursor.1, 0).unwrap();
        receipts += answer.receipts.len();
        assert!(
            receipts < 200_000,
            "the node may have evicted the run's receipts"
        );
        for receipt in answer.receipts {
            for event in receipt.events {
                if let ReceiptEvent::Accepted { order_id, .. } = event {
                    accepted.insert(order_id);
                }
            }
        }
        if answer.next == cursor {
            break;
        }
        cursor = answer.next;
    }
    accepted
}

#[test]
fn no_acknowledged_order_is_lost_when_a_node_and_the_gateway_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = base_port();
    let up = {
        let (data, port) = (data.clone(), port.to_string());
        std::thread::spawn(move || {
            common::run(&[
                "up",
                "--duration",
                "70",
                "--base-port",
                &port,
                "--data",
                data.to_str().unwrap(),
            ])
        })
    };
    let endpoints: Vec<SocketAddr> = (0..4)
        .map(|i| format!("127.0.0.1:{}", port + 100 + i).parse().unwrap())
        .collect();
    let (mark, tick) = wait_until("the committee's mark", Duration::from_secs(60), || {
        let mut client = Client::connect(endpoints[0], Duration::from_millis(500)).ok()?;
        let status = client.status().ok()?;
        let tick = status.instruments.first()?.tick_size_micros;
        let book = client.book(InstrumentId(0), 1).ok()?;
        Some((book.mark_ticks?, tick))
    });
    let gateways: Vec<SocketAddr> = (0..2)
        .map(|i| format!("127.0.0.1:{}", port + 300 + i).parse().unwrap())
        .collect();
    for gateway in &gateways {
        wait_until("the gateways' ports", Duration::from_secs(20), || {
            TcpStream::connect(gateway).ok()
        });
    }
    // Resting buys 1 % under the mark: each New is an order in the book.
    let ticks = mark - mark / 100;
    let micros = i128::from(ticks) * i128::from(tick);
    let price = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    // The run's first height: the checker reads the log from there.
    let from = {
        let mut client = Client::connect(endpoints[0], Duration::from_secs(2)).unwrap();
        client.status().unwrap().height + 1
    };
    let stop = Arc::new(AtomicBool::new(false));
    let traders: Vec<_> = [7u64, 8, 9]
        .into_iter()
        .map(|account| {
            let (gateways, price, stop) = (gateways.clone(), price.clone(), Arc::clone(&stop));
            std::thread::spawn(move || trade(gateways, account, price, stop))
        })
        .collect();
    let committee = data.join("committee");
    std::thread::sleep(Duration::from_secs(5));
    // kill -9 of a node that is not the one the checker reads.
    let node = committee.join("node-3").join("node.toml");
    sigkill(pid_with(node.to_str().unwrap()).expect("node-3's process"));
    std::thread::sleep(Duration::from_secs(5));
    // kill -9 of the gateway the traders are on.
    let gateway = committee.join("gateway-dc-0").join("gateway.toml");
    sigkill(pid_with(gateway.to_str().unwrap()).expect("gateway dc-0's process"));
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<BTreeMap<String, u64>> =
        traders.into_iter().map(|t| t.join().unwrap()).collect();
    let all: Vec<u64> = acked.iter().flat_map(|a| a.values().copied()).collect();
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "an OrderID acknowledged twice");
    assert!(
        acked.iter().all(|a| a.len() >= 20),
        "every trader was acknowledged orders before and after the kills: {:?}",
        acked.iter().map(BTreeMap::len).collect::<Vec<_>>()
    );
    // The checker: the finalized log of two live nodes holds every acknowledged order.
    for node in [endpoints[0], endpoints[1]] {
        let log = accepted_in_log(node, from);
        let lost: Vec<u64> = distinct.difference(&log).copied().collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged orders are not in {node}'s finalized log: {lost:?}",
            lost.len()
        );
    }
    eprintln!(
        "ack-loss checker: {} acknowledged orders, all in the finalized log",
        distinct.len()
    );
    let _ = up.join().unwrap();
}
