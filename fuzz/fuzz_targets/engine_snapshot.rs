//! Feeds damaged engine snapshots to `Engine::restore`: a restarting replica decodes its own
//! snapshot files with it, and a rotten or hostile disk decides what those bytes are (the
//! simulator's nemesis flips bytes of them). The input is tried as it is, and XORed over a real
//! snapshot (accounts, resting orders, fills) from an offset its first two bytes give, so the
//! fuzzer reaches the consistency checks behind the decoder.
//!
//! `restore` may refuse anything, but must not panic, and what it accepts must be a state
//! whose own snapshot restores to the same bytes. (Executing on an accepted state is not
//! fuzzed: the snapshot file's BLAKE3 check refuses rotten bytes before `restore` sees them,
//! so only a writer who can recompute that check reaches this far.)

#![no_main]

use bulwark_engine::{Engine, EngineConfig};
use bulwark_testkit::flow::{flow_orders_unsigned, open_market_unsigned};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The snapshot of an engine that has traded the flow for a while.
fn real() -> &'static [u8] {
    static REAL: OnceLock<Vec<u8>> = OnceLock::new();
    REAL.get_or_init(|| {
        let mut engine = Engine::new(EngineConfig::default());
        let mut events = Vec::new();
        engine.execute(1, &open_market_unsigned(1_000_000_000_000), &mut events);
        engine.execute(2, &flow_orders_unsigned(0..60, 600_000), &mut events);
        engine.snapshot()
    })
}

fn check(bytes: &[u8]) {
    let Ok(engine) = Engine::restore(bytes) else {
        return;
    };
    let again = engine.snapshot();
    let restored = Engine::restore(&again).expect("an accepted state's own snapshot must restore");
    assert_eq!(
        restored.snapshot(),
        again,
        "a snapshot must restore to the same state"
    );
}

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    if let [a, b, flips @ ..] = bytes {
        let mut snapshot = real().to_vec();
        let at = usize::from(u16::from_le_bytes([*a, *b])) % snapshot.len();
        for (byte, flip) in snapshot[at..].iter_mut().zip(flips) {
            *byte ^= flip;
        }
        check(&snapshot);
    }
});
