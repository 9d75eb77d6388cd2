//! The node endpoint's wire protocol on any bytes: a frame is read under the limits, then decoded
//! as a request (what a client or peer sends a node) and as a response (what a node sends back).
//! Nothing may panic. A request the node takes must encode back to exactly the frame it came
//! from (one encoding per request; the JSON admission body excepted, which need only decode to
//! the same request again), and a response a client takes must decode again from its own encoding.

#![no_main]

use bulwark_api::wire::{
    decode_request, decode_response, encode_request, encode_response, read_frame, Request,
    Response, WireLimits,
};
use libfuzzer_sys::fuzz_target;

/// Small limits, so that the fuzzer also reaches the bound checks.
const LIMITS: WireLimits = WireLimits {
    frame_bytes_max: 4096,
    submit_txs_max: 8,
    book_depth_max: 16,
};

fuzz_target!(|bytes: &[u8]| {
    let mut reader = bytes;
    let Ok(frame) = read_frame(&mut reader, LIMITS.frame_bytes_max) else {
        return;
    };
    let taken = &bytes[..bytes.len() - reader.len()];
    assert!(
        taken.len() <= 4 + LIMITS.frame_bytes_max,
        "a frame past its bound"
    );
    if let Ok(request) = decode_request(&frame, &LIMITS) {
        if let Request::Submit(txs) = &request {
            assert!(
                txs.len() <= LIMITS.submit_txs_max,
                "a submit past its bound"
            );
        }
        if let Request::Book { depth, .. } = &request {
            assert!(
                *depth <= LIMITS.book_depth_max,
                "a book depth past its bound"
            );
        }
        let encoded = encode_request(&request, &LIMITS).expect("a taken request must encode");
        if matches!(request, Request::Admit(_)) {
            let mut again = encoded.as_slice();
            let frame = read_frame(&mut again, LIMITS.frame_bytes_max).expect("re-read");
            assert_eq!(
                decode_request(&frame, &LIMITS).expect("re-decode"),
                request,
                "an admission request must decode to itself again"
            );
        } else {
            assert_eq!(encoded, taken, "request decoding must be canonical");
        }
    }
    if let Ok(response) = decode_response(&frame) {
        // A response past the frame bound is refused by its encoder (a typed error): never a
        // panic. One within it decodes to itself again.
        if let Ok(encoded) = encode_response(&response, LIMITS.frame_bytes_max) {
            let mut again = encoded.as_slice();
            let frame = read_frame(&mut again, LIMITS.frame_bytes_max).expect("re-read");
            let again = decode_response(&frame).expect("a response must decode again");
            // The status's float figures are parsed at serde_json's default (best-effort)
            // precision, so they may move by an ulp; everything else must come back unchanged.
            if !matches!(response, Response::Status(_)) {
                assert_eq!(again, response, "a response must decode to itself again");
            }
        }
    }
});
