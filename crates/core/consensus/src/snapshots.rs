//! Engine snapshots of committed heights, so that a restart replays only the log's tail.
//!
//! Every `snapshot_every` heights the replica writes the committed engine's snapshot here
//! (synced), and keeps the newest [`SNAPSHOTS_KEPT`]. On start it restores the newest snapshot
//! whose height is below the finalized log's tip and replays only the records after it; the
//! records up to it are read for their chain links and offsets, not executed. A snapshot counts
//! only when the next logged block names its root as the parent root (that root is covered by
//! the block's finalization certificate), so a damaged, stale or foreign snapshot is never
//! adopted: the replica falls back to an older one, or to a replay from genesis, and says so.
//! `bulwark verify` always replays from genesis.
//!
//! Blob (one per snapshot, named by its height, big-endian):
//!
//! ```text
//! version u8 = 1 | height u64 | snapshot (the rest) | check [8]
//! check := first 8 bytes of BLAKE3(SNAPSHOT_NAMESPACE ‖ everything before it)
//! ```
//!
//! The state root is not stored: it is [`root_of`] the snapshot bytes.

use crate::log::{check_of, numbered_blobs, LogError};
use bulwark_engine::snapshot::{root_of, StateRoot};
use bulwark_engine::Engine;
use commonware_runtime::{Blob as _, ReadOptions, Storage, WriteOptions};
use tracing::warn;

/// Domain tag of snapshot checks. Changing it is a breaking change.
pub const SNAPSHOT_NAMESPACE: &[u8] = b"bulwark/node/snapshot/v1";
/// How many snapshots are kept (the newest; older ones are removed after a write).
pub const SNAPSHOTS_KEPT: usize = 2;
const VERSION: u8 = 1;
const HEADER: usize = 1 + 8;
const CHECK: usize = 8;

/// A restored snapshot: the engine at `height` and its root.
pub struct Restored {
    /// The committed height the engine is at.
    pub height: u64,
    /// Its state root ([`root_of`] the stored snapshot; the restored engine re-encodes to it).
    pub root: StateRoot,
    /// The engine.
    pub engine: Engine,
}

/// The heights of the snapshots in `partition`, newest first (none when it does not exist).
pub async fn heights<S: Storage>(storage: &S, partition: &str) -> Result<Vec<u64>, LogError> {
    let mut heights = numbered_blobs(storage, partition).await?;
    heights.reverse();
    Ok(heights)
}

/// Reads and restores the snapshot of `height`; `Ok(None)` (with a warning) when it is damaged
/// or does not restore to the state it holds.
pub async fn load<S: Storage>(
    storage: &S,
    partition: &str,
    height: u64,
) -> Result<Option<Restored>, LogError> {
    let (blob, size) = storage.open(partition, &height.to_be_bytes()).await?;
    let bad = |what: &str| {
        warn!(partition, height, "snapshot not used: {what}");
        Ok(None)
    };
    let Ok(size) = usize::try_from(size) else {
        return bad("too large for this machine");
    };
    if size < HEADER + CHECK {
        return bad("shorter than its header");
    }
    let bytes = blob
        .read_at(0, size, ReadOptions::default())
        .await?
        .coalesce();
    let bytes: &[u8] = bytes.as_ref();
    let (body, check) = bytes.split_at(size - CHECK);
    if check != check_of(SNAPSHOT_NAMESPACE, body) {
        return bad("check does not match (a torn or damaged write)");
    }
    if body[0] != VERSION {
        return bad("unknown version");
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&body[1..9]);
    if u64::from_be_bytes(word) != height {
        return bad("its height differs from its name");
    }
    let snapshot = &body[HEADER..];
    let engine = match Engine::restore(snapshot) {
        Ok(engine) => engine,
        Err(error) => return bad(&error.to_string()),
    };
    let root = root_of(snapshot);
    if engine.state_root() != root {
        return bad("the restored state encodes differently from the stored one");
    }
    Ok(Some(Restored {
        height,
        root,
        engine,
    }))
}

/// Writes the snapshot of `engine` at `height` (synced), then removes all but the newest
/// [`SNAPSHOTS_KEPT`].
pub async fn save<S: Storage>(
    storage: &S,
    partition: &str,
    height: u64,
    engine: &Engine,
) -> Result<(), LogError> {
    let snapshot = engine.snapshot();
    let mut bytes = Vec::with_capacity(HEADER + snapshot.len() + CHECK);
    bytes.push(VERSION);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&snapshot);
    let check = check_of(SNAPSHOT_NAMESPACE, &bytes);
    bytes.extend_from_slice(&check);
    let (blob, size) = storage.open(partition, &height.to_be_bytes()).await?;
    if size > bytes.len() as u64 {
        blob.resize(bytes.len() as u64).await?;
    }
    blob.write_at(0, bytes, WriteOptions::SYNC).await?;
    drop(blob);
    for old in heights(storage, partition)
        .await?
        .into_iter()
        .skip(SNAPSHOTS_KEPT)
    {
        storage.remove(partition, Some(&old.to_be_bytes())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use commonware_runtime::{deterministic, Runner as _};

    fn engine() -> Engine {
        crate::genesis::try_genesis(
            &[],
            &[60_000_000_000, 3_000_000_000],
            bulwark_engine::oracle::OracleConfig::default(),
        )
        .unwrap()
        .0
    }

    /// XORs byte `at` of the snapshot blob of `height` with `mask`; returns the blob's size.
    async fn flip(context: &deterministic::Context, height: u64, at: u64, mask: u8) -> u64 {
        let (blob, size) = context.open("snap", &height.to_be_bytes()).await.unwrap();
        let byte = blob
            .read_at(at, 1, ReadOptions::default())
            .await
            .unwrap()
            .coalesce();
        blob.write_at(at, vec![byte.as_ref()[0] ^ mask], WriteOptions::SYNC)
            .await
            .unwrap();
        size
    }

    #[test]
    fn snapshots_round_trip_keep_the_newest_and_refuse_damage() {
        deterministic::Runner::default().start(|context| async move {
            assert!(heights(&context, "snap").await.unwrap().is_empty());
            let engine = engine();
            for height in [10, 20, 30] {
                save(&context, "snap", height, &engine).await.unwrap();
            }
            assert_eq!(heights(&context, "snap").await.unwrap(), vec![30, 20]);
            let restored = load(&context, "snap", 30).await.unwrap().unwrap();
            assert_eq!(restored.height, 30);
            assert_eq!(restored.root, engine.state_root());
            assert_eq!(restored.engine.state_root(), engine.state_root());

            // One flipped byte anywhere is refused; flipped back, the snapshot is used again.
            let size = flip(&context, 20, 0, 0).await;
            for at in [0, 5, 20, 45, size / 2, size - 1] {
                flip(&context, 20, at, 0x10).await;
                assert!(
                    load(&context, "snap", 20).await.unwrap().is_none(),
                    "flip at {at}"
                );
                flip(&context, 20, at, 0x10).await;
                assert!(load(&context, "snap", 20).await.unwrap().is_some());
            }

            // A snapshot under another height's name is refused.
            let (blob, size) = context.open("snap", &30u64.to_be_bytes()).await.unwrap();
            let bytes = blob
                .read_at(0, usize::try_from(size).unwrap(), ReadOptions::default())
                .await
                .unwrap()
                .coalesce();
            drop(blob);
            let (copy, _) = context.open("snap", &40u64.to_be_bytes()).await.unwrap();
            copy.write_at(0, bytes.as_ref().to_vec(), WriteOptions::SYNC)
                .await
                .unwrap();
            drop(copy);
            assert!(load(&context, "snap", 40).await.unwrap().is_none());
        });
    }
}
