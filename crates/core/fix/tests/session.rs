//! The session layer against a scripted counterparty: logon (signed, refused, late, flooded),
//! heartbeats and test requests, gaps and resends both ways, sequence resets, header checks,
//! required and repeated tags, unsupported types, logout both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_fix::logon::{logon_fields, LogonError};
use bulwark_fix::session::{Close, Config, Output, SeqNums, Session};
use bulwark_fix::time::format_utc_timestamp;
use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits, Message};
use ed25519_dalek::SigningKey;

const T0: u64 = 1_796_567_400_000;
const US: &str = "BULWARK";
const THEM: &str = "TRADER1";
const ACCOUNT: u64 = 7;

struct Trader {
    key: SigningKey,
    seq: u64,
}

impl Trader {
    fn new() -> Trader {
        Trader {
            key: SigningKey::from_bytes(&[9; 32]),
            seq: 1,
        }
    }

    /// A message at the trader's next number.
    fn msg(&mut self, now: u64, msg_type: &str, body: &[(u32, &str)]) -> Vec<u8> {
        let seq = self.seq;
        self.seq += 1;
        self.at(now, seq, msg_type, body)
    }

    fn at(&self, now: u64, seq: u64, msg_type: &str, body: &[(u32, &str)]) -> Vec<u8> {
        let mut fields = vec![
            Field::new(35, msg_type),
            Field::new(49, THEM),
            Field::new(56, US),
            Field::new(34, seq.to_string()),
            Field::new(52, format_utc_timestamp(now)),
        ];
        fields.extend(body.iter().map(|(t, v)| Field::new(*t, *v)));
        encode(BeginString::Fix44, &fields).unwrap()
    }

    fn logon(&mut self, now: u64, heartbeat: &str, extra: &[(u32, &str)]) -> Vec<u8> {
        let seq = self.seq;
        self.seq += 1;
        let sending_time = format_utc_timestamp(now);
        let mut fields = vec![
            Field::new(35, "A"),
            Field::new(49, THEM),
            Field::new(56, US),
            Field::new(34, seq.to_string()),
            Field::new(52, sending_time.as_str()),
            Field::new(98, "0"),
            Field::new(108, heartbeat),
        ];
        fields.extend(extra.iter().map(|(t, v)| Field::new(*t, *v)));
        fields.extend(logon_fields(
            &self.key,
            &sending_time,
            &[5; 16],
            THEM,
            US,
            ACCOUNT,
        ));
        encode(BeginString::Fix44, &fields).unwrap()
    }
}

fn sent(out: &[Output]) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(bytes) => match decode(bytes, &Limits::SESSION).unwrap() {
                Decoded::Message(m, used) => {
                    assert_eq!(used, bytes.len());
                    Some(m)
                }
                Decoded::Incomplete => panic!("incomplete"),
            },
            _ => None,
        })
        .collect()
}

fn types(out: &[Output]) -> Vec<String> {
    sent(out)
        .iter()
        .map(|m| String::from_utf8_lossy(m.msg_type()).into_owned())
        .collect()
}

fn closed(out: &[Output]) -> Option<&Close> {
    out.iter().find_map(|o| match o {
        Output::Close(c) => Some(c),
        _ => None,
    })
}

/// A session logged on at T0 with HeartBtInt 30 and the given stored numbers.
fn logged_on(trader: &mut Trader, stored: SeqNums) -> (Session, Vec<Output>) {
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, &trader.logon(T0, "30", &[]), &mut out);
    let Some(Output::Authenticate(logon)) = out.pop() else {
        panic!("no authenticate: {out:?}");
    };
    assert_eq!(logon.account, ACCOUNT);
    logon
        .verify(&trader.key.verifying_key().to_bytes())
        .unwrap();
    session.accept_logon(T0, stored, &mut out);
    (session, out)
}

#[test]
fn a_signed_logon_is_answered_and_a_forged_or_stale_one_is_refused() {
    let mut trader = Trader::new();
    let (session, out) = logged_on(&mut trader, SeqNums::default());
    assert!(session.is_active());
    assert_eq!(types(&out), ["A"]);
    let reply = &sent(&out)[0];
    assert_eq!(reply.get_str(108), Some("30"));
    assert_eq!(reply.get_str(49), Some(US));
    assert_eq!(reply.get_str(56), Some(THEM));
    assert_eq!(
        session.seq(),
        SeqNums {
            next_in: 2,
            next_out: 2
        }
    );
    assert!(out.contains(&Output::Persist(SeqNums {
        next_in: 1,
        next_out: 2
    })));

    // The signature is over the logon's fields: another key, or the same signature on another
    // account, does not verify.
    let mut other = Trader::new();
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, &other.logon(T0, "30", &[]), &mut out);
    let Some(Output::Authenticate(mut logon)) = out.pop() else {
        panic!()
    };
    assert_eq!(
        logon.verify(&SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes()),
        Err(LogonError::Signature)
    );
    logon.account += 1;
    assert_eq!(
        logon.verify(&other.key.verifying_key().to_bytes()),
        Err(LogonError::Signature)
    );
    session.refuse_logon(T0, LogonError::Signature, &mut out);
    assert_eq!(types(&out), ["5"]);
    assert!(sent(&out)[0].get_str(58).unwrap().contains("signature"));
    assert_eq!(
        closed(&out),
        Some(&Close::LogonRefused(LogonError::Signature))
    );
    assert!(session.is_closed());

    // SendingTime 11 s from our clock, HeartBtInt out of bounds, another TargetCompID, no
    // signature: refused before any key is looked at.
    for (bytes, want) in [
        (
            Trader::new().logon(T0 - 11_000, "30", &[]),
            LogonError::Stale(10_000),
        ),
        (
            Trader::new().logon(T0, "0", &[]),
            LogonError::HeartBtInt { min: 1, max: 120 },
        ),
        (
            Trader::new().logon(T0, "121", &[]),
            LogonError::HeartBtInt { min: 1, max: 120 },
        ),
        (
            Trader::new().at(T0, 1, "A", &[(98, "0"), (108, "30"), (553, "7")]),
            LogonError::Field(25001),
        ),
        (
            Trader::new().at(T0, 1, "A", &[(98, "1"), (108, "30")]),
            LogonError::EncryptMethod,
        ),
    ] {
        let mut session = Session::new(Config::new(US), T0);
        let mut out = Vec::new();
        session.receive(T0, &bytes, &mut out);
        assert_eq!(
            closed(&out),
            Some(&Close::LogonRefused(want.clone())),
            "{want}"
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Authenticate(_))));
        assert!(!out.iter().any(|o| matches!(o, Output::Persist(_))));
    }
    let mut session = Session::new(Config::new("SOMEONE-ELSE"), T0);
    let mut out = Vec::new();
    session.receive(T0, &Trader::new().logon(T0, "30", &[]), &mut out);
    assert_eq!(
        closed(&out),
        Some(&Close::LogonRefused(LogonError::Field(56)))
    );
}

#[test]
fn before_logon_only_a_small_logon_in_time_is_read() {
    // Not a Logon first: closed without a word.
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, &Trader::new().msg(T0, "0", &[]), &mut out);
    assert_eq!(out, [Output::Close(Close::NotLogon)]);
    // Garbage: closed on the codec's error.
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, b"GET / HTTP/1.1\r\n\r\n", &mut out);
    assert!(matches!(closed(&out), Some(Close::Malformed(_))));
    // A message announcing more than 4 KiB before logon: closed as soon as BodyLength is read.
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, b"8=FIX.4.4\x019=5000\x01", &mut out);
    assert!(matches!(closed(&out), Some(Close::Malformed(_))), "{out:?}");
    // Silence, or half a logon: closed at the 2 s deadline, not before.
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    let logon = Trader::new().logon(T0, "30", &[]);
    session.receive(T0, &logon[..20], &mut out);
    session.tick(T0 + 1_999, &mut out);
    assert!(out.is_empty());
    session.tick(T0 + 2_000, &mut out);
    assert_eq!(out, [Output::Close(Close::LogonTimeout)]);
    // Once a well-formed Logon is in, the caller has its own wait to answer it (10 s), then
    // the session closes; bytes sent meanwhile are bounded.
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0 + 500, &Trader::new().logon(T0, "30", &[]), &mut out);
    session.tick(T0 + 2_000, &mut out);
    assert_eq!(closed(&out), None, "{out:?}");
    session.tick(T0 + 500 + 9_999, &mut out);
    assert_eq!(closed(&out), None, "{out:?}");
    session.tick(T0 + 500 + 10_000, &mut out);
    assert_eq!(closed(&out), Some(&Close::LogonTimeout));
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, &Trader::new().logon(T0, "30", &[]), &mut out);
    session.receive(T0, &vec![b'x'; 70_000], &mut out);
    assert_eq!(closed(&out), Some(&Close::Flooded));
}

#[test]
fn messages_sent_during_the_logon_check_are_read_after_it() {
    let mut trader = Trader::new();
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    let mut bytes = trader.logon(T0, "30", &[]);
    bytes.extend(trader.msg(T0, "1", &[(112, "hello")]));
    session.receive(T0, &bytes, &mut out);
    assert!(matches!(out.as_slice(), [Output::Authenticate(_)]));
    out.clear();
    session.accept_logon(T0, SeqNums::default(), &mut out);
    assert_eq!(types(&out), ["A", "0"]);
    assert_eq!(sent(&out)[1].get_str(112), Some("hello"));
    assert_eq!(
        session.seq(),
        SeqNums {
            next_in: 3,
            next_out: 3
        }
    );
}

#[test]
fn heartbeats_and_test_requests_keep_the_session_and_silence_ends_it() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    // Our heartbeat after 30 s without sending.
    session.tick(T0 + 29_999, &mut out);
    assert!(types(&out).is_empty());
    // Theirs arrives; ours goes out on time.
    session.receive(T0 + 29_000, &trader.msg(T0 + 29_000, "0", &[]), &mut out);
    session.tick(T0 + 30_000, &mut out);
    assert_eq!(types(&out), ["0"]);
    out.clear();
    // 36 s of their silence: a TestRequest; an answer clears it.
    session.tick(T0 + 29_000 + 36_000, &mut out);
    let test = sent(&out);
    // The TestRequest is traffic: no heartbeat besides it.
    assert_eq!(types(&out), ["1"]);
    let id = test[0].get_str(112).unwrap().to_string();
    out.clear();
    session.receive(
        T0 + 70_000,
        &trader.msg(T0 + 70_000, "0", &[(112, &id)]),
        &mut out,
    );
    session.tick(T0 + 95_000, &mut out);
    assert!(!session.is_closed());
    // Silence again: TestRequest, then the end after another 30 s.
    out.clear();
    session.tick(T0 + 70_000 + 36_000, &mut out);
    assert!(types(&out).contains(&"1".to_string()));
    session.tick(T0 + 70_000 + 36_000 + 29_999, &mut out);
    assert!(!session.is_closed());
    session.tick(T0 + 70_000 + 36_000 + 30_000, &mut out);
    assert_eq!(closed(&out), Some(&Close::HeartbeatTimeout));
    assert_eq!(types(&out).last().map(String::as_str), Some("5"));
}

#[test]
fn a_gap_is_asked_for_once_and_filled_by_resend_or_gap_fill() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    // 2 and 3 are lost; 4 and 5 arrive: one ResendRequest from 2, nothing delivered.
    trader.seq = 4;
    let order = [
        (11, "c1"),
        (55, "BTC-PERP"),
        (54, "1"),
        (60, "20261206-14:30:00"),
        (38, "1"),
        (40, "2"),
        (44, "5"),
    ];
    session.receive(T0, &trader.msg(T0, "D", &order), &mut out);
    session.receive(T0, &trader.msg(T0, "D", &order), &mut out);
    assert_eq!(types(&out), ["2"]);
    let ask = &sent(&out)[0];
    assert_eq!((ask.get_str(7), ask.get_str(16)), (Some("2"), Some("0")));
    assert!(!out.iter().any(|o| matches!(o, Output::Application(_))));
    out.clear();
    // The trader gap-fills 2..4 and resends 4 and 5 as PossDup: both delivered once.
    session.receive(
        T0,
        &trader.at(
            T0,
            2,
            "4",
            &[(43, "Y"), (122, "20261206-14:30:00"), (123, "Y"), (36, "4")],
        ),
        &mut out,
    );
    let dup = [(43, "Y"), (122, "20261206-14:30:00")];
    let resent: Vec<(u32, &str)> = dup.iter().chain(order.iter()).copied().collect();
    session.receive(T0, &trader.at(T0, 4, "D", &resent), &mut out);
    session.receive(T0, &trader.at(T0, 5, "D", &resent), &mut out);
    // A duplicate of 5 is ignored.
    session.receive(T0, &trader.at(T0, 5, "D", &resent), &mut out);
    let delivered = out
        .iter()
        .filter(|o| matches!(o, Output::Application(_)))
        .count();
    assert_eq!(delivered, 2);
    assert_eq!(session.seq().next_in, 6);
    // Below the expected number without PossDup: Logout and the end.
    out.clear();
    session.receive(T0, &trader.at(T0, 3, "0", &[]), &mut out);
    assert_eq!(
        closed(&out),
        Some(&Close::SeqTooLow {
            got: 3,
            expected: 6
        })
    );
    assert_eq!(types(&out), ["5"]);
}

#[test]
fn a_resend_request_gets_the_journal_and_gap_fills_for_the_rest() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    // We send: 2 = report, 3 = heartbeat (admin), 4 = report.
    let report = |id: &str| vec![Field::new(37, id), Field::new(17, id), Field::new(150, "0")];
    session.send(T0, "8", report("a"), &mut out).unwrap();
    session.tick(T0 + 30_000, &mut out);
    session
        .send(T0 + 30_000, "8", report("b"), &mut out)
        .unwrap();
    assert_eq!(types(&out), ["8", "0", "8"]);
    out.clear();
    session.receive(
        T0 + 31_000,
        &trader.msg(T0 + 31_000, "2", &[(7, "1"), (16, "0")]),
        &mut out,
    );
    let resent = sent(&out);
    let got: Vec<_> = resent
        .iter()
        .map(|m| {
            (
                String::from_utf8_lossy(m.msg_type()).into_owned(),
                m.get_str(34).unwrap().to_string(),
                m.get_str(36).map(str::to_string),
                m.get_str(43).map(str::to_string),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        [
            (s("4"), s("1"), Some(s("2")), Some(s("Y"))),
            (s("8"), s("2"), None, Some(s("Y"))),
            (s("4"), s("3"), Some(s("4")), Some(s("Y"))),
            (s("8"), s("4"), None, Some(s("Y"))),
        ]
    );
    assert_eq!(resent[1].get_str(37), Some("a"));
    assert_eq!(
        resent[1].get_str(122),
        Some(format_utc_timestamp(T0).as_str())
    );
    // Resending takes no new numbers.
    assert_eq!(session.seq().next_out, 5);
    // A range we never sent is rejected, the session goes on.
    out.clear();
    session.receive(
        T0 + 31_000,
        &trader.msg(T0 + 31_000, "2", &[(7, "9"), (16, "12")]),
        &mut out,
    );
    assert_eq!(types(&out), ["3"]);
    assert!(!session.is_closed());
}

#[test]
fn resends_are_bounded_per_window_and_then_gap_filled() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    let big = "x".repeat(60_000);
    for i in 0..80 {
        let body = vec![
            Field::new(37, i.to_string()),
            Field::new(17, i.to_string()),
            Field::new(150, "0"),
            Field::new(58, big.as_str()),
        ];
        session.send(T0, "8", body, &mut out).unwrap();
    }
    let mut resent_reports = Vec::new();
    for k in 0..4 {
        out.clear();
        let now = T0 + 1_000 + k;
        session.receive(now, &trader.msg(now, "2", &[(7, "1"), (16, "0")]), &mut out);
        resent_reports.push(types(&out).iter().filter(|t| *t == "8").count());
        // Whatever was not resent is gap-filled: the counterparty's numbers stay whole.
        assert!(types(&out).iter().any(|t| t == "4") || resent_reports[k as usize] > 0);
    }
    // Two whole journals fit the budget; then only what is left of it, then nothing.
    let total: usize = resent_reports.iter().sum();
    assert!(
        total * 60_000 <= bulwark_fix::session::RESEND_BYTES_PER_WINDOW,
        "{resent_reports:?}"
    );
    assert!(
        resent_reports[0] > 0 && resent_reports[1] > 0,
        "{resent_reports:?}"
    );
    assert!(resent_reports[2] < resent_reports[0], "{resent_reports:?}");
    assert_eq!(resent_reports[3], 0, "{resent_reports:?}");
    // The next window resends again.
    out.clear();
    let later = T0 + 1_000 + bulwark_fix::session::RESEND_WINDOW_MS;
    session.receive(
        later,
        &trader.msg(later, "2", &[(7, "1"), (16, "0")]),
        &mut out,
    );
    assert!(types(&out).iter().any(|t| t == "8"));
    assert!(!session.is_closed());
}

#[test]
fn a_reset_never_moves_backwards() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    // Reset mode ignores its own number and sets the next.
    session.receive(T0, &trader.at(T0, 99, "4", &[(36, "10")]), &mut out);
    assert_eq!(session.seq().next_in, 10);
    session.receive(T0, &trader.at(T0, 99, "4", &[(36, "5")]), &mut out);
    assert_eq!(types(&out), ["3"]);
    assert_eq!(sent(&out)[0].get_str(373), Some("5"));
    assert_eq!(session.seq().next_in, 10);
    assert!(!session.is_closed());
}

#[test]
fn header_breaches_end_the_session_and_bad_bodies_are_rejected() {
    // Another SenderCompID on a logged-on session: Reject 9, Logout.
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    let fields = [
        Field::new(35, "0"),
        Field::new(49, "MALLORY"),
        Field::new(56, US),
        Field::new(34, "2"),
        Field::new(52, format_utc_timestamp(T0)),
    ];
    session.receive(T0, &encode(BeginString::Fix44, &fields).unwrap(), &mut out);
    assert_eq!(types(&out), ["3", "5"]);
    assert_eq!(sent(&out)[0].get_str(373), Some("9"));
    assert!(matches!(closed(&out), Some(Close::Protocol(_))));

    // SendingTime a minute off: Reject 10, Logout.
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    session.receive(T0, &trader.msg(T0 - 60_000, "0", &[]), &mut out);
    assert_eq!(types(&out), ["3", "5"]);
    assert_eq!(sent(&out)[0].get_str(373), Some("10"));

    // A second Logon ends the session.
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    session.receive(T0, &trader.logon(T0, "30", &[]), &mut out);
    assert_eq!(types(&out), ["5"]);
    assert!(session.is_closed());

    // Bodies: a missing required tag, a repeated tag, an unsupported type, PossDup without
    // OrigSendingTime: each rejected, each takes its number, the session goes on.
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    session.receive(
        T0,
        &trader.msg(
            T0,
            "D",
            &[
                (11, "c1"),
                (55, "X"),
                (54, "1"),
                (60, "20261206-14:30:00"),
                (38, "1"),
            ],
        ),
        &mut out,
    );
    session.receive(
        T0,
        &trader.msg(
            T0,
            "D",
            &[
                (11, "c1"),
                (11, "c2"),
                (55, "X"),
                (54, "1"),
                (60, "20261206-14:30:00"),
                (38, "1"),
                (40, "1"),
            ],
        ),
        &mut out,
    );
    session.receive(T0, &trader.msg(T0, "AE", &[]), &mut out);
    session.receive(T0, &trader.msg(T0, "1", &[(43, "Y"), (112, "x")]), &mut out);
    // A market data request may repeat its group tags.
    session.receive(
        T0,
        &trader.msg(
            T0,
            "V",
            &[
                (262, "m"),
                (263, "1"),
                (264, "1"),
                (267, "2"),
                (269, "0"),
                (269, "1"),
                (146, "2"),
                (55, "A"),
                (55, "B"),
            ],
        ),
        &mut out,
    );
    let replies = sent(&out);
    let reasons: Vec<_> = replies
        .iter()
        .map(|m| {
            (
                String::from_utf8_lossy(m.msg_type()).into_owned(),
                m.get_str(373).or(m.get_str(380)).map(str::to_string),
                m.get_str(371).map(str::to_string),
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        reasons,
        [
            ("3".to_string(), s("1"), s("40")),
            ("3".to_string(), s("13"), s("11")),
            ("j".to_string(), s("3"), None),
            ("3".to_string(), s("1"), s("122")),
        ]
    );
    let delivered: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Application(m) => Some(m.msg_type().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [b"V".to_vec()]);
    assert_eq!(session.seq().next_in, 7);
    assert!(session.is_active());
}

#[test]
fn logout_either_way_and_numbers_carry_over_to_the_next_logon() {
    let mut trader = Trader::new();
    let (mut session, _) = logged_on(&mut trader, SeqNums::default());
    let mut out = Vec::new();
    session.receive(T0, &trader.msg(T0, "5", &[]), &mut out);
    assert_eq!(types(&out), ["5"]);
    assert_eq!(closed(&out), Some(&Close::LoggedOut));
    let stored = session.seq();
    assert_eq!(
        stored,
        SeqNums {
            next_in: 3,
            next_out: 3
        }
    );
    let persisted = out.iter().rev().find_map(|o| match o {
        Output::Persist(s) => Some(*s),
        _ => None,
    });
    assert_eq!(persisted, Some(stored));

    // The next logon continues from the stored numbers.
    let (mut session, out) = logged_on(&mut trader, stored);
    assert_eq!(sent(&out)[0].get_str(34), Some("3"));
    assert_eq!(
        session.seq(),
        SeqNums {
            next_in: 4,
            next_out: 4
        }
    );
    // Our Logout: the session ends on the answer, or at the deadline.
    let mut out = Vec::new();
    session.logout(T0, "maintenance", &mut out);
    assert_eq!(types(&out), ["5"]);
    assert!(!session.is_closed());
    assert!(session
        .send(T0, "8", vec![Field::new(37, "x")], &mut out)
        .is_err());
    session.receive(T0, &trader.msg(T0, "5", &[]), &mut out);
    assert_eq!(closed(&out), Some(&Close::LoggedOut));
    assert_eq!(types(&out), ["5"]);

    let (mut session, _) = logged_on(&mut trader, session.seq());
    let mut out = Vec::new();
    session.logout(T0, "maintenance", &mut out);
    session.tick(T0 + 2_000, &mut out);
    assert_eq!(closed(&out), Some(&Close::LogoutTimeout));

    // A logon below the stored number ends at once; one above asks for the gap.
    let mut late = Trader::new();
    let (session, out) = logged_on(
        &mut late,
        SeqNums {
            next_in: 5,
            next_out: 9,
        },
    );
    assert!(session.is_closed());
    assert_eq!(
        closed(&out),
        Some(&Close::SeqTooLow {
            got: 1,
            expected: 5
        })
    );
    let mut early = Trader {
        key: SigningKey::from_bytes(&[9; 32]),
        seq: 8,
    };
    let (session, out) = logged_on(
        &mut early,
        SeqNums {
            next_in: 5,
            next_out: 9,
        },
    );
    assert_eq!(types(&out), ["A", "2"]);
    assert_eq!(sent(&out)[1].get_str(7), Some("5"));
    assert!(session.is_active());
    // A reset logon starts both sides at 1.
    let mut reset = Trader::new();
    let mut session = Session::new(Config::new(US), T0);
    let mut out = Vec::new();
    session.receive(T0, &reset.logon(T0, "30", &[(141, "Y")]), &mut out);
    session.accept_logon(
        T0,
        SeqNums {
            next_in: 50,
            next_out: 60,
        },
        &mut out,
    );
    let reply = &sent(&out)[0];
    assert_eq!(
        (reply.get_str(34), reply.get_str(141)),
        (Some("1"), Some("Y"))
    );
    assert_eq!(
        session.seq(),
        SeqNums {
            next_in: 2,
            next_out: 2
        }
    );
}
