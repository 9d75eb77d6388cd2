//! Disk damage (issue #16): what the nemesis does to a crashed member's storage before it
//! restarts. The member must cut its finalized log at the damage, fall back to an older
//! snapshot (or genesis) when its newest one is damaged or outruns the log, fetch the heights
//! it lost from its peers, and agree with everyone on each of them again.
//!
//! The simulated disk already loses every write a member did not sync when the member stops
//! (each open reads only synced contents), so this module damages what *was* synced: the disk
//! lost the end of a file, or a byte of it rotted.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::world::World;
use bulwark_consensus::log::{Reader, LOG_BLOB};
use bulwark_consensus::snapshots;
use commonware_runtime::{Blob as _, Storage as _, Supervisor as _, WriteOptions};
use serde::Serialize;

/// One kind of damage to a member's synced storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskDamage {
    /// The finalized log lost its end: it is cut at a random byte of its second half (a torn
    /// record, and every record after it, gone).
    LostLogTail,
    /// One byte somewhere in the finalized log flipped.
    FlippedLogByte,
    /// One byte of the newest engine snapshot flipped (nothing, without a snapshot yet).
    FlippedSnapshotByte,
}

impl DiskDamage {
    /// The damage `pick` selects, every kind equally often.
    pub(crate) fn pick(pick: u64) -> DiskDamage {
        match pick % 3 {
            0 => DiskDamage::LostLogTail,
            1 => DiskDamage::FlippedLogByte,
            _ => DiskDamage::FlippedSnapshotByte,
        }
    }
}

/// Flips bit `at % 8` of byte `at % size` of blob `name` in `partition`, synced (nothing when
/// the blob is empty).
async fn flip(
    context: &commonware_runtime::deterministic::Context,
    partition: &str,
    name: &[u8],
    at: u64,
) {
    let (blob, size) = context.open(partition, name).await.unwrap();
    if size == 0 {
        return;
    }
    let offset = at % size;
    let byte = blob
        .read_at(offset, 1, Default::default())
        .await
        .unwrap()
        .coalesce();
    let flipped = byte.as_ref()[0] ^ (1 << (at % 8));
    blob.write_at(offset, vec![flipped], WriteOptions::SYNC)
        .await
        .unwrap();
}

impl World {
    /// Damages the synced storage of member `member` (stopped: its tasks have dropped) as
    /// `damage` says, `at` choosing the byte; then reads its log (without repairing it) up to
    /// the damage, as the member will on its restart, and moves the heights it lost from its
    /// ledger to `superseded`: the
    /// member commits them again after fetching them, and the checkers hold the first and the
    /// second commit of each to the same block and root. Returns how many heights it lost.
    pub(crate) async fn damage(&mut self, member: usize, damage: DiskDamage, at: u64) -> u64 {
        let context = self.context.child("damage");
        let log_partition = format!("node-{member}-finalized");
        match damage {
            DiskDamage::LostLogTail => {
                let (blob, size) = context.open(&log_partition, LOG_BLOB).await.unwrap();
                if size > 0 {
                    let kept = size / 2 + at % (size - size / 2);
                    blob.resize(kept).await.unwrap();
                    blob.sync().await.unwrap();
                }
            }
            DiskDamage::FlippedLogByte => {
                flip(&context, &log_partition, LOG_BLOB, at).await;
            }
            DiskDamage::FlippedSnapshotByte => {
                let partition = format!("node-{member}-snapshots");
                let heights = snapshots::heights(&context, &partition).await.unwrap();
                if let Some(newest) = heights.first() {
                    flip(&context, &partition, &newest.to_be_bytes(), at).await;
                }
            }
        }
        // Read only: the member itself must find the damage, cut its log and say so.
        let survived = {
            let (blob, size) = context.open(&log_partition, LOG_BLOB).await.unwrap();
            let mut reader = Reader::new(&blob, size);
            let mut height = 0;
            while let Ok(Some(record)) = reader.next().await {
                height = record.height;
            }
            height
        };
        let mut ledger = self.ledgers[member].lock().unwrap();
        let cut = ledger.partition_point(|c| c.height <= survived);
        let lost: Vec<_> = ledger.drain(cut..).collect();
        let count = lost.len() as u64;
        self.superseded[member].extend(lost);
        count
    }
}
