//! Feeds arbitrary FIX bodies (framed with a correct length and checksum) to the door's
//! translation of FIX application messages: NewOrderSingle, OrderCancelReplaceRequest and
//! MarketDataRequest, read against the venue's one instrument and one resting order.
//!
//! Nothing may panic. An order the door takes is within the engine's bounds (positive size, a
//! limit price of at least one tick) and its command survives the engine's codec unchanged; a
//! replace leaves exactly the new size less what filled, and more than nothing; what the
//! gateway would write back (an execution report, a market data snapshot or a reject) encodes
//! as FIX.

#![no_main]

mod door_common;

use bulwark_door::{marketdata, orders};
use bulwark_engine::{ClientCommand, Side};
use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits};
use libfuzzer_sys::fuzz_target;

fn encodes(msg_type: &str, body: &[Field]) {
    let mut fields = vec![Field::new(35, msg_type)];
    fields.extend_from_slice(body);
    encode(BeginString::Fix44, &fields).expect("what the gateway writes back must encode");
}

fuzz_target!(|body: &[u8]| {
    let bytes = door_common::framed(body);
    let Ok(Decoded::Message(message, _)) = decode(&bytes, &Limits::SESSION) else {
        return;
    };
    let instruments = [door_common::btc()];
    if let Ok((instrument, command)) = orders::new_order(&instruments, &message, 5) {
        assert_eq!(instrument.0, 0);
        match &command {
            ClientCommand::Limit(order) => {
                assert!(order.qty > 0 && order.price > 0, "{order:?}");
            }
            ClientCommand::Market { qty, .. } => assert!(*qty > 0),
            other => panic!("a NewOrderSingle became {other:?}"),
        }
        door_common::survives_the_codec(command);
    }
    // The resting order has 0 to 12 of its 10 lots filled (past its size too), chosen by the
    // input's length so the fuzzer varies it.
    let filled = (body.len() % 13) as i64;
    let resting = orders::OrderState {
        cl_ord_id: "A-1".into(),
        order_id: Some(41),
        instrument: door_common::btc(),
        side: Side::Buy,
        qty: 10,
        filled,
        filled_value: i128::from(filled) * 600_000,
        price: 600_000,
        status: if filled >= 10 { "2" } else { "1" },
    };
    if let Ok((price, qty, remaining)) = orders::replace(&resting, &message) {
        assert!(
            price > 0 && remaining > 0 && remaining == qty - filled,
            "{price} {qty} {filled} {remaining}"
        );
        let mut replaced = resting.clone();
        replaced.qty = qty;
        replaced.price = price;
        encodes("8", &replaced.report("E-1".into(), "5", None, None));
    }
    match marketdata::request(&instruments, &message) {
        Ok(marketdata::Request::Subscribe {
            id,
            instruments: chosen,
            ..
        }) => {
            assert!(!id.is_empty() && id.len() <= marketdata::REQ_ID_BYTES_MAX);
            assert!(!chosen.is_empty() && chosen.len() <= marketdata::SYMBOLS_MAX);
            let level = bulwark_api::answers::Level {
                price: 600_000,
                qty: 2,
            };
            for instrument in &chosen {
                encodes(
                    "W",
                    &marketdata::snapshot(&id, instrument, (Some(level), None)),
                );
            }
        }
        Ok(marketdata::Request::Unsubscribe { id }) => assert!(!id.is_empty()),
        Err(reject) => encodes("Y", &reject.body()),
    }
});
