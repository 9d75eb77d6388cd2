//! Feeds arbitrary bytes to the consensus decoders of what peers and disks hand a node: a
//! block (from any peer), and a finalized-log record (from the node's own disk, or from a peer
//! answering a catch-up). A decoder may refuse the input, but must not panic, and whatever it
//! accepts must re-encode to exactly the same bytes. A log record's check is a BLAKE3 hash the
//! fuzzer cannot forge, so the bytes are also framed as a record with the right check, which
//! lets the fuzzer reach the record's own layout.

#![no_main]

use bulwark_consensus::block::Block;
use bulwark_consensus::log::{Record, LOG_NAMESPACE, RECORD_PAYLOAD_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(block) = Block::decode(bytes) {
        assert_eq!(block.encode(), bytes, "block decoding must be canonical");
    }
    if let Ok(record) = Record::decode(bytes) {
        assert_eq!(record.encode(), bytes, "record decoding must be canonical");
    }
    if bytes.is_empty() || bytes.len() > RECORD_PAYLOAD_MAX {
        return;
    }
    let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    let mut hasher = blake3::Hasher::new();
    hasher.update(LOG_NAMESPACE);
    hasher.update(bytes);
    framed.extend_from_slice(&hasher.finalize().as_bytes()[..8]);
    if let Ok(record) = Record::decode(&framed) {
        assert_eq!(record.encode(), framed, "record decoding must be canonical");
        // What a record carries as its block is decoded next; it too must not panic.
        let _ = Block::decode(&record.block);
    }
});
