//! Issue #15's ack-loss checker, as Jepsen does it. First, with three of the four nodes frozen
//! (SIGSTOP) nothing can be finalized, and an order sent then must get no acknowledgement until
//! they resume: a gateway that acknowledged on receipt, or on one node's word, fails here.
//! Then traders send orders through a gateway while the test kills a node and then the gateway
//! itself with SIGKILL; the traders fail over to the next data center's gateway and go on. At
//! the end a checker compares every acknowledgement a trader got (an ExecutionReport New and
//! the OrderID it carries) with the committee's finalized log, read from two nodes' receipts:
//! no acknowledged order may be missing, no OrderID acknowledged twice, no ClOrdID with two
//! OrderIDs, and every trader must have been acknowledged orders after the kills. A trader
//! whose session was on the killed gateway has its resting order cancelled by the committee
//! itself once the session is silent past its heartbeat bound: the gateway, dead, cancels
//! nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_api::answers::ReceiptEvent;
use bulwark_node::client::Client;
use bulwark_testkit::fix::Trader;
use common::gateway::{base_port, fix_price, wait_until};

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

fn sigstop(pid: i32, stop: bool) {
    let signal = if stop {
        nix::sys::signal::Signal::SIGSTOP
    } else {
        nix::sys::signal::Signal::SIGCONT
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An acknowledgement: ClOrdID, OrderID, when it came.
type Ack = (String, u64, Instant);

/// One trader: GTC orders at ~20 a second until `stop`, failing over to the next gateway when
/// its connection ends; every acknowledgement it got.
fn trade(
    gateways: Vec<SocketAddr>,
    account: u64,
    price: String,
    stop: Arc<AtomicBool>,
) -> Vec<Ack> {
    let key = bulwark_testkit::client_key(1, account);
    let mut acked = Vec::new();
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
                            acked.push((cl, id, Instant::now()));
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
                acked.push((cl, m.get_str(37).unwrap().parse().unwrap(), Instant::now()));
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
    let port = base_port(24_000);
    // Long enough for the committee to silence the killed gateway's session (30 s) after the
    // checker.
    let up = common::gateway::up(&data, port, 110, Some(5));
    let endpoints: Vec<SocketAddr> = (0..4)
        .map(|i| format!("127.0.0.1:{}", port + 100 + i).parse().unwrap())
        .collect();
    let (mark, tick) = common::gateway::mark(endpoints[0]);
    let gateways: Vec<SocketAddr> = (0..2)
        .map(|i| format!("127.0.0.1:{}", port + 300 + i).parse().unwrap())
        .collect();
    for gateway in &gateways {
        wait_until("the gateways' ports", Duration::from_secs(20), || {
            TcpStream::connect(gateway).ok()
        });
    }
    // Resting buys 1 % under the mark: each New is an order in the book.
    let price = fix_price(mark - mark / 100, tick);
    let committee = data.join("committee");
    let node_pid = |i: usize| {
        let config = committee.join(format!("node-{i}")).join("node.toml");
        pid_with(config.to_str().unwrap()).unwrap_or_else(|| panic!("node-{i}'s process"))
    };
    // The run's first height: the checker reads the log from there.
    let from = {
        let mut client = Client::connect(endpoints[0], Duration::from_secs(2)).unwrap();
        client.status().unwrap().height + 1
    };
    // A trader of `account` on gateway dc-0.
    let logon = |sender: &str, account: u64| {
        let key = bulwark_testkit::client_key(1, account);
        let timeout = Duration::from_secs(12);
        Trader::logon(gateways[0], sender, "BULWARK-DC-0", account, &key, timeout).unwrap()
    };
    // The OrderID of the next ExecutionReport New a trader gets (within 60 s); on a timeout,
    // what the trader got instead and the tails of the gateway's and node 0's logs.
    let acknowledged = |trader: &mut Trader, what: &str| -> u64 {
        let until = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        while Instant::now() < until {
            if let Some(m) = trader.recv(Duration::from_millis(200)).unwrap() {
                if m.get_str(150) == Some("0") {
                    return m.get_str(37).unwrap().parse().unwrap();
                }
                got.push(m.to_string());
            }
        }
        panic!(
            "timed out waiting for {what}; the trader got {got:?}\n--- gateway dc-0 ---\n{}\n--- node 0 ---\n{}",
            tail(&common::gateway::gateway_log(&data, 0), 40),
            tail(
                &std::fs::read_to_string(committee.join("node-0").join("node.log"))
                    .unwrap_or_default(),
                40
            ),
        )
    };
    // Three nodes frozen: no finality, so no acknowledgement, until they resume.
    let mut held = logon("HELD10", 10);
    let frozen: Vec<i32> = (1..4).map(node_pid).collect();
    for pid in &frozen {
        sigstop(*pid, true);
    }
    held.new_order("held", "BTC-PERP", "1", 1, &price, "1")
        .unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while let Some(m) = held
        .recv(until.saturating_duration_since(Instant::now()))
        .unwrap()
    {
        assert!(
            m.get_str(150) != Some("0"),
            "acknowledged while three of four nodes were frozen: {m}"
        );
        eprintln!("while three nodes were frozen the held trader got: {m}");
    }
    for pid in &frozen {
        sigstop(*pid, false);
    }
    let resumed = Instant::now();
    let held_id = acknowledged(&mut held, "the held order's acknowledgement");
    eprintln!(
        "the held order was acknowledged {:.1} s after the nodes resumed",
        resumed.elapsed().as_secs_f64()
    );
    held.logout();
    // A trader that rests an order on gateway dc-0 and stays logged on: the gateway's kill -9
    // leaves nobody to cancel it on disconnect but the committee.
    let mut resting = logon("REST11", 11);
    resting
        .new_order("rest", "BTC-PERP", "1", 1, &price, "1")
        .unwrap();
    let resting_id = acknowledged(&mut resting, "the resting order's acknowledgement");
    let rests = |id: u64| {
        let mut client = Client::connect(endpoints[0], Duration::from_secs(2)).ok()?;
        let account = client.account(bulwark_engine::AccountId(11)).ok()?;
        Some(account.open_orders.iter().any(|o| o.order_id == id))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let traders: Vec<_> = [7u64, 8, 9]
        .into_iter()
        .map(|account| {
            let (gateways, price, stop) = (gateways.clone(), price.clone(), Arc::clone(&stop));
            std::thread::spawn(move || trade(gateways, account, price, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    // kill -9 of a node that is not one the checker reads.
    sigkill(node_pid(3));
    std::thread::sleep(Duration::from_secs(5));
    // kill -9 of the gateway the traders are on.
    let gateway = committee.join("gateway-dc-0").join("gateway.toml");
    assert_eq!(
        rests(resting_id),
        Some(true),
        "the order rests before the kill"
    );
    sigkill(pid_with(gateway.to_str().unwrap()).expect("gateway dc-0's process"));
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Vec<Ack>> = traders.into_iter().map(|t| t.join().unwrap()).collect();
    let mut all: Vec<u64> = acked.iter().flatten().map(|(_, id, _)| *id).collect();
    all.push(held_id);
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "an OrderID acknowledged twice");
    let mut by_cl: BTreeMap<&str, u64> = BTreeMap::new();
    for (cl, id, _) in acked.iter().flatten() {
        let first = *by_cl.entry(cl.as_str()).or_insert(*id);
        assert_eq!(first, *id, "ClOrdID {cl} acknowledged with two OrderIDs");
    }
    let after: Vec<usize> = acked
        .iter()
        .map(|a| a.iter().filter(|(_, _, at)| *at > killed).count())
        .collect();
    assert!(
        after.iter().all(|n| *n >= 5),
        "every trader was acknowledged orders after failing over: {after:?}"
    );
    // The two checked nodes have caught up with the committee.
    let top = (0..3)
        .filter_map(|i| {
            let mut client = Client::connect(endpoints[i], Duration::from_secs(2)).ok()?;
            client.status().ok().map(|s| s.height)
        })
        .max()
        .unwrap();
    for node in [endpoints[0], endpoints[1]] {
        wait_until(
            "the checked nodes at the committee's height",
            Duration::from_secs(20),
            || {
                let mut client = Client::connect(node, Duration::from_secs(2)).ok()?;
                (client.status().ok()?.height >= top).then_some(())
            },
        );
    }
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
    // The committee's cancel on disconnect: the dead gateway's session falls silent and its
    // order is cancelled (the bound is 30 s on the session clock).
    wait_until(
        "the committee to cancel the order of a session whose gateway was killed",
        Duration::from_secs(60),
        || (rests(resting_id) == Some(false)).then_some(()),
    );
    eprintln!(
        "the committee cancelled the killed gateway's session's order {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    drop(resting);
    let _ = up.join().unwrap();
}
