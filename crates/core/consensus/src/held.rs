//! The blocks this replica vouched for and has not committed yet, kept on disk.
//!
//! Simplex counts a replica's notarize vote only if the replica can later produce the block it
//! voted for: the next leader must build on the newest notarized block, and every replica must
//! check that child against its parent. A block held only in memory dies with the process, so
//! after a power cut of the whole committee a notarized but not yet finalized block may exist
//! nowhere, and the chain stops for good (every leader is asked to build on a parent nobody
//! has). Hence a replica writes a block here, synced, before it answers `verify` with `true` or
//! hands simplex its own proposal, and reloads what it holds when it starts. A notarization has
//! 2f + 1 votes, so with at most f members down at least f + 1 live ones hold each notarized
//! block and answer requests for it.
//!
//! Storage: append-only segments (blobs named by their big-endian sequence number) of records
//! in the finalized log's record format, heights in any order. A segment is removed once every
//! block in it is at or below the committed height (the finalized log has the committed ones;
//! the others lost their fork). A torn tail is dropped on open, and writing goes on in a fresh
//! segment.

use crate::block::Block;
use crate::log::{encode_record_into, numbered_blobs, LogError, Reader};
use commonware_cryptography::sha256::Digest;
use commonware_runtime::{Blob, Storage, WriteOptions};
use std::collections::{BTreeMap, HashMap};
use tracing::warn;

/// A segment takes no more appends once it is this large.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// A block to hold: its digest, height and canonical bytes (borrowed from the replica's block
/// store; they are copied once, into the append).
pub struct Entry<'a> {
    /// `Block::digest_of(bytes)`.
    pub digest: Digest,
    /// The block's height.
    pub height: u64,
    /// The block's canonical encoding.
    pub bytes: &'a [u8],
}

/// The held blocks of one replica.
pub struct Held<B: Blob> {
    partition: String,
    /// The segment appended to: its number, blob and size.
    current: (u64, B, u64),
    /// Highest height in each segment (the current one included once it holds anything).
    segments: BTreeMap<u64, u64>,
    /// Digests held, with their heights.
    held: HashMap<Digest, u64>,
}

fn segment_name(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

impl<B: Blob> Held<B> {
    /// Opens the held blocks in `partition` and returns them with every block above
    /// `committed_height` it holds (each decoded, its digest computed from its bytes). Segments
    /// with nothing above `committed_height` are removed.
    pub async fn open<S: Storage<Blob = B>>(
        storage: &S,
        partition: &str,
        committed_height: u64,
    ) -> Result<(Self, Vec<(Digest, Block, Vec<u8>)>), LogError> {
        let numbers = numbered_blobs(storage, partition).await?;
        let mut segments = BTreeMap::new();
        let mut held = HashMap::new();
        let mut blocks = Vec::new();
        for &number in &numbers {
            let (blob, size) = storage.open(partition, &segment_name(number)).await?;
            let mut reader = Reader::any_height(&blob, size);
            let mut highest = 0;
            loop {
                match reader.next().await {
                    Ok(Some(record)) => {
                        highest = highest.max(record.height);
                        if record.height <= committed_height {
                            continue;
                        }
                        let digest = Block::digest_of(&record.block);
                        match Block::decode(record.block.as_slice()) {
                            Ok(block) if block.height == record.height => {
                                if held.insert(digest, block.height).is_none() {
                                    blocks.push((digest, block, record.block));
                                }
                            }
                            Ok(_) => warn!(
                                partition,
                                number, "a held block's height differs from its record's; dropped"
                            ),
                            Err(error) => {
                                warn!(partition, number, %error, "a held block does not decode; dropped")
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(LogError::Storage(error)) => return Err(LogError::Storage(error)),
                    Err(error) => {
                        // A crash during an append: what follows the damage was never vouched
                        // for (the vote waits for the sync).
                        warn!(partition, number, %error, "dropping the damaged tail of a held segment");
                        break;
                    }
                }
            }
            drop(blob);
            if highest <= committed_height {
                storage
                    .remove(partition, Some(&segment_name(number)))
                    .await?;
            } else {
                segments.insert(number, highest);
            }
        }
        // Appends go to a fresh segment, never after a tail that may be torn.
        let next = numbers.last().map_or(0, |last| last + 1);
        let (blob, size) = storage.open(partition, &segment_name(next)).await?;
        let held_blocks = Held {
            partition: partition.to_string(),
            current: (next, blob, size),
            segments,
            held,
        };
        Ok((held_blocks, blocks))
    }

    /// True when `digest` is held.
    pub fn holds(&self, digest: &Digest) -> bool {
        self.held.contains_key(digest)
    }

    /// How many blocks are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Writes the entries not held yet in one append and syncs it; when this returns `Ok`,
    /// every entry survives a crash.
    pub async fn keep<S: Storage<Blob = B>>(
        &mut self,
        storage: &S,
        entries: &[Entry<'_>],
    ) -> Result<(), LogError> {
        let mut bytes = Vec::new();
        let mut highest = 0;
        let mut added: Vec<(Digest, u64)> = Vec::new();
        for entry in entries {
            if self.held.contains_key(&entry.digest)
                || added.iter().any(|(digest, _)| *digest == entry.digest)
            {
                continue;
            }
            encode_record_into(&mut bytes, entry.height, entry.bytes, &[]);
            highest = highest.max(entry.height);
            added.push((entry.digest, entry.height));
        }
        if added.is_empty() {
            return Ok(());
        }
        if self.current.2 >= SEGMENT_BYTES {
            let next = self.current.0 + 1;
            let (blob, size) = storage.open(&self.partition, &segment_name(next)).await?;
            self.current = (next, blob, size);
        }
        let (number, blob, size) = &mut self.current;
        let len = bytes.len() as u64;
        blob.write_at(*size, bytes, WriteOptions::SYNC).await?;
        *size += len;
        let top = self.segments.entry(*number).or_insert(0);
        *top = (*top).max(highest);
        self.held.extend(added);
        Ok(())
    }

    /// Forgets every block at or below `committed_height` and removes the segments that hold
    /// nothing else (the current one only once it is full, so appends keep one blob).
    pub async fn release<S: Storage<Blob = B>>(
        &mut self,
        storage: &S,
        committed_height: u64,
    ) -> Result<(), LogError> {
        self.held.retain(|_, height| *height > committed_height);
        let current = self.current.0;
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(number, highest)| **number != current && **highest <= committed_height)
            .map(|(number, _)| *number)
            .collect();
        for number in done {
            storage
                .remove(&self.partition, Some(&segment_name(number)))
                .await?;
            self.segments.remove(&number);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::log::Record;
    use commonware_runtime::{deterministic, Runner as _};

    fn block(height: u64, parent: Digest) -> (Digest, Vec<u8>) {
        let block = Block {
            epoch: 0,
            height,
            view: height,
            time_ms: height * 10,
            parent,
            parent_root: [0; 32],
            rounds: Vec::new(),
            txs: Vec::new(),
        };
        let bytes = block.encode().to_vec();
        (Block::digest_of(&bytes), bytes)
    }

    /// A block at `height` on `parent`: its digest and bytes, to hold as an [`Entry`].
    struct Owned {
        digest: Digest,
        height: u64,
        bytes: Vec<u8>,
    }

    impl Owned {
        fn entry(&self) -> Entry<'_> {
            Entry {
                digest: self.digest,
                height: self.height,
                bytes: &self.bytes,
            }
        }
    }

    fn entry(height: u64, parent: Digest) -> Owned {
        let (digest, bytes) = block(height, parent);
        Owned {
            digest,
            height,
            bytes,
        }
    }

    #[test]
    fn held_blocks_survive_a_reopen_and_committed_ones_are_released() {
        deterministic::Runner::default().start(|context| async move {
            let (mut held, loaded) = Held::open(&context, "held", 0).await.unwrap();
            assert!(loaded.is_empty() && held.is_empty());
            let a = entry(1, Digest([0; 32]));
            let b = entry(2, a.digest);
            let fork = entry(2, Digest([7; 32]));
            held.keep(&context, &[a.entry(), b.entry()]).await.unwrap();
            held.keep(&context, &[fork.entry()]).await.unwrap();
            assert_eq!(held.len(), 3);
            drop(held);

            // Reopened with height 1 committed: only the two blocks at height 2 come back.
            let (held, loaded) = Held::open(&context, "held", 1).await.unwrap();
            let mut heights: Vec<u64> = loaded.iter().map(|(_, b, _)| b.height).collect();
            heights.sort_unstable();
            assert_eq!(heights, vec![2, 2]);
            for (digest, _, bytes) in &loaded {
                assert_eq!(Block::digest_of(bytes), *digest);
                assert!(held.holds(digest));
            }
            drop(held);

            // Reopened with height 2 committed: nothing comes back and the segments are gone
            // but the fresh one.
            let (held, loaded) = Held::open(&context, "held", 2).await.unwrap();
            assert!(loaded.is_empty() && held.is_empty());
            drop(held);
            assert_eq!(context.scan("held").await.unwrap().len(), 1);
        });
    }

    #[test]
    fn full_segments_are_removed_once_committed() {
        deterministic::Runner::default().start(|context| async move {
            let (mut held, _) = Held::open(&context, "held", 0).await.unwrap();
            // Padded records (the store keeps bytes, it does not decode them) until the first
            // segment is full.
            let mut parent = Digest([0; 32]);
            let mut height = 0;
            while context.scan("held").await.unwrap().len() < 2 {
                height += 1;
                let e = entry(height, parent);
                parent = e.digest;
                let mut big = e;
                big.bytes.resize(64 * 1024, 0);
                held.keep(&context, &[big.entry()]).await.unwrap();
            }
            held.release(&context, height).await.unwrap();
            assert!(held.is_empty());
            // The full segment is removed; the one appended to stays.
            assert_eq!(context.scan("held").await.unwrap().len(), 1);
        });
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_go_to_a_fresh_segment() {
        deterministic::Runner::default().start(|context| async move {
            let (mut held, _) = Held::open(&context, "held", 0).await.unwrap();
            let a = entry(1, Digest([0; 32]));
            let digest = a.digest;
            held.keep(&context, &[a.entry()]).await.unwrap();
            drop(held);
            // Half a record appended after it: a crash in the middle of an append.
            let (blob, size) = context.open("held", &segment_name(0)).await.unwrap();
            let torn = Record {
                height: 2,
                block: block(2, digest).1,
                certificate: None,
            }
            .encode();
            blob.write_at(size, torn[..torn.len() / 2].to_vec(), WriteOptions::SYNC)
                .await
                .unwrap();
            drop(blob);
            let (mut held, loaded) = Held::open(&context, "held", 0).await.unwrap();
            assert_eq!(loaded.len(), 1);
            assert_eq!(loaded[0].0, digest);
            let b = entry(2, digest);
            held.keep(&context, &[b.entry()]).await.unwrap();
            drop(held);
            let (_, loaded) = Held::open(&context, "held", 0).await.unwrap();
            assert_eq!(loaded.len(), 2);
        });
    }
}
