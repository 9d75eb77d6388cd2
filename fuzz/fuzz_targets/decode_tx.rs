//! Feeds arbitrary bytes to every transaction decoder (oracle rounds and signed observations
//! included). A decoder may refuse the input, but must not panic, and whatever it accepts must
//! re-encode to exactly the same bytes (one encoding per value).

#![no_main]

use bulwark_engine::codec::{decode_batch, decode_command, encode_batch, encode_command, SignedTx};
use bulwark_engine::oracle::SignedObservation;
use libfuzzer_sys::fuzz_target;

/// The batch limit used here; small, so that the fuzzer also reaches the count checks.
const BATCH_COUNT_MAX: usize = 64;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(tx) = SignedTx::decode(bytes) {
        assert_eq!(tx.encode(), bytes, "SignedTx decoding must be canonical");
    }
    if let Ok(observation) = SignedObservation::decode(bytes) {
        assert_eq!(
            observation.encode(),
            bytes,
            "SignedObservation decoding must be canonical"
        );
    }
    if let Ok(command) = decode_command(bytes) {
        assert_eq!(
            encode_command(&command),
            bytes,
            "Command decoding must be canonical"
        );
    }
    if let Ok(txs) = decode_batch(bytes, BATCH_COUNT_MAX) {
        assert!(
            txs.len() <= BATCH_COUNT_MAX,
            "decode_batch must honour count_max"
        );
        let encoded = encode_batch(&txs).expect("a batch of at most 64 transactions must encode");
        assert_eq!(encoded, bytes, "batch decoding must be canonical");
    }
});
