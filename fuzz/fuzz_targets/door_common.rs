//! What the FIX and JSON-RPC targets share: the venue's one instrument, a FIX frame around a
//! body, and the check that a command the door built survives the engine's codec.

#![allow(dead_code)]

use bulwark_api::answers::InstrumentAnswer;
use bulwark_engine::codec::{decode_command, encode_command};
use bulwark_engine::{AccountId, ClientCommand, Command};

/// BTC-PERP as the nodes describe it: 0.1 tick, 0.001 lot.
pub fn btc() -> InstrumentAnswer {
    InstrumentAnswer {
        id: 0,
        symbol: "BTC-PERP".into(),
        tick_size_micros: 100_000,
        lot_size_nanos: 1_000_000,
    }
}

/// `body` framed as a FIX 4.4 message with the right BodyLength and CheckSum, so the fuzzer
/// spends its time on the fields rather than on the frame.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = format!("8=FIX.4.4\u{1}9={}\u{1}", body.len()).into_bytes();
    out.extend_from_slice(body);
    let sum = bulwark_fix::checksum(&out);
    out.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
    out
}

/// A command the door built must be one the engine's codec carries unchanged: the gateway
/// signs exactly these bytes, and every replica decodes them.
pub fn survives_the_codec(command: ClientCommand) {
    let command = Command::Client {
        account: AccountId(7),
        nonce: 1,
        command,
    };
    let bytes = encode_command(&command);
    let back = decode_command(&bytes).expect("a command the door built must decode");
    assert_eq!(back, command, "a command the door built must round-trip");
}
