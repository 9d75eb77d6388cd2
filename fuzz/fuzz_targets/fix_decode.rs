//! Feeds arbitrary bytes to the FIX frame decoder under both of its limits (before logon and in
//! a session). It may refuse or ask for more bytes, but never panic; a message it accepts keeps
//! within the limits and re-encodes to exactly the bytes it took (one spelling per message);
//! a Logon it accepts reads into a `LogonRequest` or a typed error, and a garbled signature
//! never verifies.

#![no_main]

use bulwark_fix::logon::LogonRequest;
use bulwark_fix::{decode, Decoded, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for limits in [Limits::BEFORE_LOGON, Limits::SESSION] {
        let Ok(Decoded::Message(message, used)) = decode(bytes, &limits) else {
            continue;
        };
        assert!(used <= bytes.len(), "took more bytes than it was given");
        assert!(
            used <= limits.message_bytes_max,
            "a message over the byte limit"
        );
        assert!(
            message.fields.len() <= limits.fields_max,
            "a message over the field limit"
        );
        let again = message.encode().expect("a decoded message must encode");
        assert_eq!(again, &bytes[..used], "FIX decoding must be canonical");
        if message.msg_type() == b"A" {
            if let Ok(logon) = LogonRequest::from_message(&message) {
                // The fuzzer cannot sign for the key it does not have.
                let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
                assert!(logon.verify(&key.verifying_key().to_bytes()).is_err());
            }
        }
    }
});
