//! Feeds arbitrary text to the JSON-RPC request decoder and, for what decodes, to every reader
//! of a method's parameters (order, edit, auth, channels, order id, heartbeat, depth).
//!
//! Nothing may panic. A request's id is a number or a short string; every refusal is a typed
//! error whose answer is JSON naming the same id and stays under 2 KiB whatever was sent (no
//! amplification); what the readers take is within bounds: positive sizes, limit prices of at
//! least a tick, market orders without a price, short labels, 1 to 32 channels whose names
//! read back to themselves, a heartbeat of 10 s to an hour, a depth of 1 to 20.

#![no_main]

mod door_common;

use bulwark_door::jsonrpc::{self, Channel, OrderKind, RpcError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Longest error answer a request may cause.
const ANSWER_BYTES_MAX: usize = 2048;

fn answered(id: &Value, error: &RpcError) {
    let answer = jsonrpc::error(id, error);
    assert!(
        answer.len() <= ANSWER_BYTES_MAX,
        "an error answer of {} bytes",
        answer.len()
    );
    let back: Value = serde_json::from_str(&answer).expect("an error answer is JSON");
    assert_eq!(&back["id"], id);
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let request = match jsonrpc::parse(text) {
        Ok(request) => request,
        Err((id, error)) => return answered(&id, &error),
    };
    match &request.id {
        // Only ids that come back exactly as sent (the first finding of this target).
        Value::Number(n) => assert!(n.is_u64() || n.is_i64(), "an id of {n}"),
        Value::String(s) => assert!(s.len() <= jsonrpc::ID_BYTES_MAX),
        other => panic!("an id of {other:?}"),
    }
    let id = &request.id;
    let p = &request.params;
    let instruments = [door_common::btc()];
    match jsonrpc::order_params(&instruments, p) {
        Ok(order) => {
            assert!(order.qty > 0, "{order:?}");
            match order.kind {
                OrderKind::Limit => assert!(order.price > 0, "{order:?}"),
                OrderKind::Market => assert_eq!(order.price, 0),
            }
            assert!(order.label.len() <= jsonrpc::ID_BYTES_MAX);
        }
        Err(e) => answered(id, &e),
    }
    match jsonrpc::edit_params(&instruments[0], p) {
        Ok((qty, price)) => assert!(qty > 0 && price > 0),
        Err(e) => answered(id, &e),
    }
    if let Err(e) = jsonrpc::auth_params(p) {
        answered(id, &e);
    }
    match jsonrpc::channels(p) {
        Ok(channels) => {
            assert!(!channels.is_empty() && channels.len() <= jsonrpc::CHANNELS_MAX);
            for channel in channels {
                assert_eq!(Channel::parse(&channel.name()), Ok(channel));
            }
        }
        Err(e) => answered(id, &e),
    }
    if let Err(e) = jsonrpc::order_id(p) {
        answered(id, &e);
    }
    match jsonrpc::heartbeat_interval(p) {
        Ok(seconds) => assert!((10..=3600).contains(&seconds)),
        Err(e) => answered(id, &e),
    }
    match jsonrpc::depth(p) {
        Ok(depth) => assert!((1..=jsonrpc::BOOK_DEPTH_MAX).contains(&depth)),
        Err(e) => answered(id, &e),
    }
    if let Ok(instrument) = jsonrpc::instrument(&instruments, p) {
        assert_eq!(instrument.symbol, "BTC-PERP");
    }
});
