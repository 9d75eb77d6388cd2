//! Hostile bytes never panic the decoder, and what `encode` writes `decode` reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits, SOH};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("no SOH", |b| *b != SOH), 1..24)
}

fn fields() -> impl Strategy<Value = Vec<Field>> {
    (
        value(),
        proptest::collection::vec(
            (
                (11u32..5_000).prop_filter("not a data or length tag", |t| {
                    !bulwark_fix::DATA_FIELDS
                        .iter()
                        .any(|(l, d)| l == t || d == t)
                        && *t != 35
                }),
                value(),
            ),
            0..40,
        ),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
    )
        .prop_map(|(msg_type, rest, raw)| {
            let mut out = vec![Field::new(35, msg_type)];
            out.extend(rest.into_iter().map(|(tag, v)| Field::new(tag, v)));
            if let Some(raw) = raw {
                out.push(Field::new(95, raw.len().to_string()));
                out.push(Field::new(96, raw));
            }
            out
        })
}

/// `body` framed as a FIX 4.4 message with the right BodyLength and CheckSum.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = format!("8=FIX.4.4\u{1}9={}\u{1}", body.len()).into_bytes();
    out.extend_from_slice(body);
    let sum = bulwark_fix::checksum(&out);
    out.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
    out
}

/// The body of `encode`'s output (between BodyLength and CheckSum).
fn body_of(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == SOH)
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    bytes[start..bytes.len() - 7].to_vec()
}

proptest! {
    #[test]
    fn any_bytes_decode_to_a_message_incomplete_or_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes, &Limits::SESSION);
        let mut header = b"8=FIX.4.4\x019=".to_vec();
        header.extend_from_slice(&bytes);
        let _ = decode(&header, &Limits::BEFORE_LOGON);
    }

    /// Random bodies behind a valid frame reach the field parser: never a panic, and what it
    /// reads re-encodes to the same bytes.
    #[test]
    fn any_framed_body_is_read_canonically_or_refused(body in proptest::collection::vec(prop_oneof![Just(SOH), Just(b'='), b'0'..=b'9', any::<u8>()], 0..300)) {
        let mut with_type = b"35=0\x01".to_vec();
        with_type.extend_from_slice(&body);
        for candidate in [framed(&body), framed(&with_type)] {
            if let Ok(Decoded::Message(message, used)) = decode(&candidate, &Limits::SESSION) {
                prop_assert_eq!(used, candidate.len());
                prop_assert_eq!(message.encode().unwrap(), candidate);
            }
        }
    }

    #[test]
    fn encoded_messages_decode_to_the_same_fields(fields in fields()) {
        let bytes = encode(BeginString::Fix44, &fields).unwrap();
        match decode(&bytes, &Limits::SESSION).unwrap() {
            Decoded::Message(message, used) => {
                prop_assert_eq!(used, bytes.len());
                prop_assert_eq!(message.begin, BeginString::Fix44);
                prop_assert_eq!(message.fields, fields);
            }
            Decoded::Incomplete => prop_assert!(false, "a whole message is not incomplete"),
        }
    }

    /// A body changed by one byte and framed again (so the checksum does not catch it) is
    /// refused or read as exactly the message its bytes are.
    #[test]
    fn a_changed_body_is_refused_or_read_canonically(fields in fields(), at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut body = body_of(&encode(BeginString::Fix44, &fields).unwrap());
        let i = at.index(body.len());
        body[i] ^= xor;
        let changed = framed(&body);
        if let Ok(Decoded::Message(message, used)) = decode(&changed, &Limits::SESSION) {
            prop_assert_eq!(used, changed.len());
            prop_assert_eq!(message.encode().unwrap(), changed);
        }
    }
}

/// A logged-on session (stored numbers 1, 1) at `now`.
fn active_session(now: u64) -> bulwark_fix::session::Session {
    use bulwark_fix::session::{Config, Output, SeqNums, Session};
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let time = bulwark_fix::time::format_utc_timestamp(now);
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
    let mut session = Session::new(Config::new("G"), now);
    let mut out = Vec::new();
    session.receive(now, &encode(BeginString::Fix44, &logon).unwrap(), &mut out);
    assert!(matches!(out.as_slice(), [Output::Authenticate(_)]));
    session.accept_logon(now, SeqNums::default(), &mut out);
    assert!(session.is_active());
    session
}

proptest! {
    /// Any bytes, whole or in pieces, before or after logon, and any clock: the session never
    /// panics, every byte it writes is a FIX message, and once closed it says nothing more.
    #[test]
    fn hostile_bytes_never_panic_a_session(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        framed_bodies in proptest::collection::vec(fields(), 0..6),
        logged_on in any::<bool>(),
        skew in 0u64..200_000,
    ) {
        use bulwark_fix::session::{Config, Output, Session};
        let now = 1_796_567_400_000u64;
        let mut session = if logged_on { active_session(now) } else { Session::new(Config::new("G"), now) };
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            session.receive(now + skew * i as u64, chunk, &mut out);
            session.tick(now + skew * i as u64, &mut out);
        }
        for body in &framed_bodies {
            if let Ok(bytes) = encode(BeginString::Fix44, body) {
                session.receive(now + skew, &bytes, &mut out);
            }
        }
        let mut closed = false;
        for output in &out {
            match output {
                Output::Send(bytes) => {
                    prop_assert!(!closed, "sent after close");
                    prop_assert!(matches!(decode(bytes, &Limits::SESSION), Ok(Decoded::Message(_, n)) if n == bytes.len()));
                }
                Output::Close(_) => {
                    prop_assert!(!closed, "closed twice");
                    closed = true;
                }
                _ => prop_assert!(!closed, "output after close"),
            }
        }
    }
}
