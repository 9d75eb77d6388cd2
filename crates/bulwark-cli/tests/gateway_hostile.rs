//! The gateway's scrubbing layers against hostile clients, end to end with real processes:
//! `bulwark up` starts 4 nodes and one `bulwark gateway` per data center, and a Rust FIX
//! initiator (`bulwark_testkit::fix`) plays the attackers and one honest trader.
//!
//! The attackers lose: junk bytes are closed without an answer; a forged logon is refused with
//! the reason; one address repeating logons spends its own budget, not the gateway's; a trader
//! over its order credits gets immediate refusals while its cancels pass; the operator's kill
//! switch cancels a trader's resting orders and refuses its new ones until released.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bulwark_engine::AccountId;
use bulwark_fix::{Field, Message};
use bulwark_node::client::Client;
use bulwark_testkit::fix::{connect_from, Trader, TraderError};
use common::gateway::{base_port, fix_price, wait_until};

/// The next ExecutionReport (or cancel reject) about `cl_ord_id`.
fn report_for(trader: &mut Trader, cl_ord_id: &str) -> Message {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(m) = trader.recv(Duration::from_millis(200)).unwrap() {
            if m.get_str(11) == Some(cl_ord_id) {
                return m;
            }
        }
    }
    panic!("no report for {cl_ord_id}");
}

fn status(m: &Message) -> (&str, &str) {
    (m.get_str(39).unwrap_or("?"), m.get_str(58).unwrap_or(""))
}

#[test]
fn hostile_clients_lose_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = base_port(20_000);
    let up = common::gateway::up(&data, port, 75, Some(5));
    let endpoint: SocketAddr = format!("127.0.0.1:{}", port + 100).parse().unwrap();
    let (mark, tick) = common::gateway::mark(endpoint);
    let gateway: SocketAddr = format!("127.0.0.1:{}", port + 300).parse().unwrap();
    wait_until("the gateway's port", Duration::from_secs(20), || {
        TcpStream::connect(gateway).ok()
    });
    let target = "BULWARK-DC-0";
    let config = data
        .join("committee")
        .join("gateway-dc-0")
        .join("gateway.toml");
    let config = config.to_str().unwrap();
    let fix_price = |ticks: i64| fix_price(ticks, tick);
    let resting = fix_price(mark - mark * 3 / 1000);
    let account = 6;
    let key = bulwark_testkit::client_key(1, account);

    // Junk before logon: closed without a byte of answer.
    let mut junk = TcpStream::connect(gateway).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let read = junk.read_to_end(&mut answer);
    assert!(
        read.is_ok() && answer.is_empty(),
        "junk must be closed silently: {read:?} {answer:?}"
    );

    // A forged logon (another key): refused with the reason.
    let forged = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    match Trader::logon(
        gateway,
        "MALLORY",
        target,
        account,
        &forged,
        Duration::from_secs(10),
    ) {
        Err(TraderError::Refused(text)) => assert!(text.contains("signature"), "{text}"),
        other => panic!("a forged logon must be refused: {:?}", other.err()),
    }

    // One address repeating logons spends its own budget (5 a second), not the gateway's: an
    // honest trader on another address still logs on.
    let hostile: std::net::IpAddr = "127.0.0.23".parse().unwrap();
    let budget_refusals = (0..15)
        .filter(|_| {
            let stream = connect_from(hostile, gateway, Duration::from_secs(5)).unwrap();
            let refused = Trader::logon_on(
                stream,
                "MALLORY",
                target,
                account,
                &forged,
                Duration::from_secs(10),
            );
            matches!(refused, Err(TraderError::Refused(text)) if text.contains("address's logon budget"))
        })
        .count();
    assert!(budget_refusals > 0, "15 logons in a burst from one address");

    let mut trader = Trader::logon(
        gateway,
        "HONEST",
        target,
        account,
        &key,
        Duration::from_secs(10),
    )
    .unwrap();

    // A resting order: New only once finalized, and the committee has it.
    trader
        .new_order("r1", "BTC-PERP", "1", 1, &resting, "1")
        .unwrap();
    let new = report_for(&mut trader, "r1");
    assert_eq!(status(&new).0, "0", "{new}");
    let order_id: u64 = new.get_str(37).unwrap().parse().unwrap();
    let open_in_committee = |id: u64| {
        let mut client = Client::connect(endpoint, Duration::from_millis(500)).unwrap();
        let acct = client.account(AccountId(account)).unwrap();
        acct.open_orders.iter().any(|o| o.order_id == id)
    };
    wait_until("r1 in node 0's book", Duration::from_secs(10), || {
        open_in_committee(order_id).then_some(())
    });

    // Over its credits (a burst of 10): the excess refused at once; cancels are never refused.
    for i in 0..30 {
        let far = fix_price(mark - mark / 10);
        trader
            .new_order(&format!("b{i}"), "BTC-PERP", "1", 1, &far, "3")
            .unwrap();
        trader
            .send(
                "F",
                vec![
                    Field::new(11, format!("x{i}")),
                    Field::new(41, "unknown"),
                    Field::new(55, "BTC-PERP"),
                    Field::new(54, "1"),
                    Field::new(60, "20261206-00:00:00.000"),
                ],
            )
            .unwrap();
    }
    let mut throttled = 0;
    let mut cancel_rejects = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while seen < 60 && Instant::now() < deadline {
        let Some(m) = trader.recv(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        let cl = m.get_str(11).unwrap_or("");
        if cl.starts_with('x') && m.msg_type() == b"9" {
            cancel_rejects.push(m.get_str(58).unwrap_or("").to_string());
            seen += 1;
        } else if cl.starts_with('b') && m.msg_type() == b"8" {
            // One report per order: a refusal, or the IOC's New (its cancel follows).
            let (ord_status, text) = status(&m);
            if ord_status == "8" && text.contains("rate limit") {
                throttled += 1;
                seen += 1;
            } else if ord_status == "0" || ord_status == "8" {
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 60, "every order and cancel is answered");
    assert!(
        throttled >= 15,
        "30 orders in a burst of 10: {throttled} throttled"
    );
    assert!(
        cancel_rejects.iter().all(|t| !t.contains("rate limit")),
        "cancels are never refused for credit: {cancel_rejects:?}"
    );

    // The operator's kill switch for this account: its resting order is cancelled and new
    // orders refused; cancels still pass. Released, it trades again.
    let (code, stdout, stderr) = common::run(&[
        "gateway",
        "--config",
        config,
        "--kill",
        &account.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("engaged for accounts {account}")),
        "{stdout}"
    );
    let cancelled = report_for(&mut trader, "r1");
    assert_eq!(status(&cancelled).0, "4", "{cancelled}");
    wait_until(
        "r1 cancelled in the committee",
        Duration::from_secs(10),
        || (!open_in_committee(order_id)).then_some(()),
    );
    trader
        .new_order("k1", "BTC-PERP", "1", 1, &resting, "1")
        .unwrap();
    let refused = report_for(&mut trader, "k1");
    assert_eq!(status(&refused).0, "8", "{refused}");
    assert!(status(&refused).1.contains("kill switch"), "{refused}");
    let (code, stdout, stderr) = common::run(&[
        "gateway",
        "--config",
        config,
        "--release",
        &account.to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("released"), "{stdout}");
    // The gateway reads the switch within a quarter of a second.
    std::thread::sleep(Duration::from_millis(600));
    trader
        .new_order("k2", "BTC-PERP", "1", 1, &resting, "1")
        .unwrap();
    let new = report_for(&mut trader, "k2");
    assert_eq!(status(&new).0, "0", "{new}");
    let k2: u64 = new.get_str(37).unwrap().parse().unwrap();
    // Replaced (OrderCancelReplaceRequest): one tick lower, two lots; Replaced once finalized,
    // and the committee's book has the order at its new price and size under the same id.
    let lower = fix_price(mark - mark * 3 / 1000 - 1);
    let replace = |trader: &mut Trader, cl: &str, orig: &str| {
        trader
            .send(
                "G",
                vec![
                    Field::new(11, cl),
                    Field::new(41, orig),
                    Field::new(55, "BTC-PERP"),
                    Field::new(54, "1"),
                    Field::new(60, "20261206-00:00:00.000"),
                    Field::new(38, "2"),
                    Field::new(40, "2"),
                    Field::new(44, lower.as_str()),
                ],
            )
            .unwrap()
    };
    replace(&mut trader, "k3", "k2");
    let replaced = report_for(&mut trader, "k3");
    assert_eq!(replaced.msg_type(), b"8", "{replaced}");
    assert_eq!(replaced.get_str(150), Some("5"), "{replaced}");
    assert_eq!(replaced.get_str(41), Some("k2"), "{replaced}");
    assert_eq!(replaced.get_str(38), Some("2"), "{replaced}");
    // (The node asked may be a block behind the two whose receipts the gateway believed.)
    let amended = Some((mark - mark * 3 / 1000 - 1, 2));
    wait_until(
        "the replace in node 0's book",
        Duration::from_secs(10),
        || {
            let mut client = Client::connect(endpoint, Duration::from_millis(500)).ok()?;
            let acct = client.account(AccountId(account)).ok()?;
            let found = acct
                .open_orders
                .iter()
                .find(|o| o.order_id == k2)
                .map(|o| (o.price, o.qty));
            (found == amended).then_some(())
        },
    );
    // The old ClOrdID no longer names it.
    replace(&mut trader, "k4", "k2");
    let refused = report_for(&mut trader, "k4");
    assert_eq!(refused.msg_type(), b"9", "{refused}");
    assert_eq!(refused.get_str(434), Some("2"), "{refused}");
    // Logged out: cancelled on disconnect.
    trader.logout();
    wait_until(
        "k2 cancelled on disconnect",
        Duration::from_secs(15),
        || (!open_in_committee(k2)).then_some(()),
    );
    // A bad kill-switch argument is refused with what to fix.
    let (code, _, stderr) = common::run(&["gateway", "--config", config, "--kill", "everyone"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("neither `all` nor an account number"),
        "{stderr}"
    );

    let (code, _, stderr) = up.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
}
