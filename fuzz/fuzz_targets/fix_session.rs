//! Drives one FIX session at the acceptor with arbitrary input: the first bytes choose the
//! start (logged on or not), whether a logon that asks to be checked is accepted, and the gap
//! between reads; the rest is split at 0xFF into reads, each sent as it is or, when the third
//! flag is set, framed as a FIX 4.4 body with a correct length and checksum (so the fuzzer
//! reaches the session layer instead of the frame). Every application message is answered
//! with an ExecutionReport, so resends have a journal to draw on.
//!
//! The session must never panic; everything it writes must be one whole FIX message; nothing
//! may follow its Close, and it closes at most once; the sequence numbers it asks to persist
//! are at least 1.

#![no_main]

mod door_common;

use std::sync::OnceLock;

use bulwark_fix::session::{Config, Output, SeqNums, Session};
use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits};
use libfuzzer_sys::fuzz_target;

/// 2026-12-07 09:30 UTC.
const NOW_MS: u64 = 1_796_635_800_000;

/// The signed Logon of trader T (account 1), made once.
fn logon_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let time = bulwark_fix::time::format_utc_timestamp(NOW_MS);
        let mut logon = vec![
            Field::new(35, "A"),
            Field::new(49, "T"),
            Field::new(56, "G"),
            Field::new(34, "1"),
            Field::new(52, time.as_str()),
            Field::new(98, "0"),
            Field::new(108, "30"),
        ];
        logon.extend(bulwark_fix::logon::logon_fields(
            &key, &time, &[1; 16], "T", "G", 1,
        ));
        encode(BeginString::Fix44, &logon).expect("the logon encodes")
    })
}

/// A session already logged on as trader T, numbers 1 and 1.
fn active_session() -> Session {
    let mut session = Session::new(Config::new("G"), NOW_MS);
    let mut out = Vec::new();
    session.receive(NOW_MS, logon_bytes(), &mut out);
    assert!(matches!(out.as_slice(), [Output::Authenticate(_)]));
    session.accept_logon(NOW_MS, SeqNums::default(), &mut out);
    assert!(session.is_active());
    session
}

fuzz_target!(|input: &[u8]| {
    let [flags, gap_hi, gap_lo, rest @ ..] = input else {
        return;
    };
    let logged_on = flags & 1 != 0;
    let accept = flags & 2 != 0;
    let frame = flags & 4 != 0;
    let gap_ms = u64::from(u16::from_be_bytes([*gap_hi, *gap_lo])) * 10;
    let mut session = if logged_on {
        active_session()
    } else {
        Session::new(Config::new("G"), NOW_MS)
    };
    let mut out = Vec::new();
    let mut checked = 0;
    let mut closed = false;
    let mut reports = 0u64;
    for (i, piece) in rest.split(|b| *b == 0xFF).enumerate() {
        let now = NOW_MS + gap_ms * i as u64;
        let bytes = if frame {
            door_common::framed(piece)
        } else {
            piece.to_vec()
        };
        session.receive(now, &bytes, &mut out);
        session.tick(now, &mut out);
        // Act on what the session asked, then check everything it said.
        let mut answers = Vec::new();
        for output in &out[checked..] {
            match output {
                Output::Authenticate(_) if accept => {
                    session.accept_logon(now, SeqNums::default(), &mut answers)
                }
                Output::Authenticate(_) => session.refuse_logon(
                    now,
                    bulwark_fix::logon::LogonError::Signature,
                    &mut answers,
                ),
                Output::Application(message) => {
                    reports += 1;
                    let body = vec![
                        Field::new(37, reports.to_string()),
                        Field::new(17, format!("E{reports}")),
                        Field::new(150, "0"),
                        Field::new(39, "0"),
                        Field::new(58, message.msg_type().to_vec()),
                    ];
                    let _ = session.send(now, "8", body, &mut answers);
                }
                _ => {}
            }
        }
        out.extend(answers);
        for output in &out[checked..] {
            match output {
                Output::Send(bytes) => {
                    assert!(!closed, "sent after close");
                    assert!(
                        matches!(decode(bytes, &Limits::SESSION), Ok(Decoded::Message(_, n)) if n == bytes.len()),
                        "the session wrote something that is not one FIX message"
                    );
                }
                Output::Close(_) => {
                    assert!(!closed, "closed twice");
                    closed = true;
                }
                Output::Persist(seq) => {
                    assert!(!closed, "persisted after close");
                    assert!(
                        seq.next_in >= 1 && seq.next_out >= 1,
                        "sequence numbers start at 1: {seq:?}"
                    );
                }
                _ => assert!(!closed, "output after close"),
            }
        }
        checked = out.len();
    }
});
