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
