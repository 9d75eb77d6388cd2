//! The finalized block log: every finalized block in height order, with the finalization
//! certificates this replica saw, appended to one blob of the runtime's storage and synced
//! before the height counts as committed.
//!
//! The log is the node's source of truth: on start the committed engine is rebuilt by
//! replaying it, so a height is executed exactly once per life of the log (its position is its
//! height), and `bulwark verify` replays the same records to check a venue without trusting
//! any node.
//!
//! Record layout (big-endian):
//!
//! ```text
//! record  := len u32 | payload (len bytes) | check [8]
//! payload := version u8 = 1 | height u64 | block_len u32 | block | cert_len u32 | cert
//! check   := first 8 bytes of BLAKE3(LOG_NAMESPACE ‖ payload)
//! ```
//!
//! `cert` is the encoded simplex finalization whose payload is this block's digest, or empty
//! when the block was finalized only through a descendant's certificate (its digest is then
//! bound by the parent links of the certified descendant). A torn tail (a crash during an
//! append) is cut off on open; the height it held is fetched again from peers.

use commonware_runtime::{Blob, Error as RuntimeError, ReadOptions, Storage, WriteOptions};
use tracing::warn;

/// Domain tag of record checks. Changing it is a breaking change.
pub const LOG_NAMESPACE: &[u8] = b"bulwark/node/log/v1";
/// Version byte of a record's payload.
pub const RECORD_VERSION: u8 = 1;
/// Largest payload a record may hold: a maximal block and a generous certificate.
pub const RECORD_PAYLOAD_MAX: usize = crate::block::BLOCK_BYTES_MAX + 64 * 1024;
/// Name of the log's blob inside its partition.
pub const LOG_BLOB: &[u8] = b"finalized";

const CHECK_BYTES: usize = 8;

/// One finalized height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its height; the first block is height 1.
    pub height: u64,
    /// The block's canonical encoding.
    pub block: Vec<u8>,
    /// The encoded finalization certificate of this block, if this replica received one.
    pub certificate: Option<Vec<u8>>,
}

/// Why the log cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The runtime's storage failed.
    #[error("storage: {0}")]
    Storage(#[from] RuntimeError),
    /// A record is damaged (bad check, bad length, bad layout) at this byte offset.
    #[error("damaged record at byte {offset}: {what}")]
    Damaged {
        /// Byte offset of the record in the log.
        offset: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A record's height is not the next one.
    #[error("record at byte {offset} has height {got}, expected {want}")]
    Height {
        /// Byte offset of the record.
        offset: u64,
        /// Height it holds.
        got: u64,
        /// Height it should hold.
        want: u64,
    },
    /// The replaying caller refused a record (it does not extend the state rebuilt so far).
    #[error("replay refused height {height}: {reason}")]
    Replay {
        /// Height refused.
        height: u64,
        /// Why: the error the caller's `apply` returned.
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An append out of height order (a bug in the caller).
    #[error("append of height {got} to a log at height {have}")]
    OutOfOrder {
        /// Height appended.
        got: u64,
        /// Height the log holds.
        have: u64,
    },
}

/// The first 8 bytes of BLAKE3(`namespace` ‖ `bytes`): the check every stored record of the
/// node carries (log records, held blocks, snapshots), under its own namespace.
pub(crate) fn check_of(namespace: &[u8], bytes: &[u8]) -> [u8; CHECK_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(namespace);
    hasher.update(bytes);
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_BYTES]);
    out
}

/// The blobs of `partition` named by a big-endian `u64` (held segments, snapshots), in
/// ascending order; none when the partition does not exist. Other names are ignored, with a
/// warning.
pub(crate) async fn numbered_blobs<S: Storage>(
    storage: &S,
    partition: &str,
) -> Result<Vec<u64>, LogError> {
    let names = match storage.scan(partition).await {
        Ok(names) => names,
        Err(RuntimeError::PartitionMissing(_)) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut numbers = Vec::new();
    for name in names {
        match <[u8; 8]>::try_from(name.as_slice()) {
            Ok(number) => numbers.push(u64::from_be_bytes(number)),
            Err(_) => warn!(partition, ?name, "ignoring a blob not named by a number"),
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

impl Record {
    /// How many bytes [`Record::encode`] gives.
    pub fn encoded_len(&self) -> usize {
        let cert = self.certificate.as_deref().map_or(0, <[u8]>::len);
        4 + 1 + 8 + 4 + self.block.len() + 4 + cert + CHECK_BYTES
    }

    /// The record's bytes as stored (length, payload, check).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        encode_record_into(
            &mut out,
            self.height,
            &self.block,
            self.certificate.as_deref().unwrap_or(&[]),
        );
        out
    }

    /// Decodes one record in its stored form (length, payload, check), as
    /// [`Record::encode`] gives it: nothing before or after it, the check must match.
    pub fn decode(bytes: &[u8]) -> Result<Record, LogError> {
        let damaged = |what| LogError::Damaged { offset: 0, what };
        let len_bytes: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(damaged("truncated length"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len == 0 || len > RECORD_PAYLOAD_MAX {
            return Err(damaged("length out of bounds"));
        }
        if bytes.len() != 4 + len + CHECK_BYTES {
            return Err(damaged("length does not match the record"));
        }
        let (payload, check) = bytes[4..].split_at(len);
        if check != check_of(LOG_NAMESPACE, payload) {
            return Err(damaged("check does not match"));
        }
        Record::decode_payload(payload, 0)
    }

    /// Decodes a payload whose check already passed.
    fn decode_payload(payload: &[u8], offset: u64) -> Result<Record, LogError> {
        let damaged = |what| LogError::Damaged { offset, what };
        let take = |at: usize, len: usize| payload.get(at..at + len).ok_or(damaged("truncated"));
        if *take(0, 1)?.first().ok_or(damaged("empty"))? != RECORD_VERSION {
            return Err(damaged("unknown record version"));
        }
        let height = u64::from_be_bytes(take(1, 8)?.try_into().map_err(|_| damaged("height"))?);
        let block_len =
            u32::from_be_bytes(take(9, 4)?.try_into().map_err(|_| damaged("length"))?) as usize;
        let block = take(13, block_len)?.to_vec();
        let at = 13 + block_len;
        let cert_len =
            u32::from_be_bytes(take(at, 4)?.try_into().map_err(|_| damaged("length"))?) as usize;
        let cert = take(at + 4, cert_len)?.to_vec();
        if at + 4 + cert_len != payload.len() {
            return Err(damaged("trailing bytes"));
        }
        Ok(Record {
            height,
            block,
            certificate: (!cert.is_empty()).then_some(cert),
        })
    }
}

/// Appends the stored form of a record (length, payload, check) of `height`, `block` and `cert`
/// (empty: none) to `out`, without building a [`Record`] (the held blocks write borrowed block
/// bytes this way).
pub(crate) fn encode_record_into(out: &mut Vec<u8>, height: u64, block: &[u8], cert: &[u8]) {
    let payload_len = 1 + 8 + 4 + block.len() + 4 + cert.len();
    let start = out.len();
    out.reserve(4 + payload_len + CHECK_BYTES);
    out.extend_from_slice(&(payload_len as u32).to_be_bytes());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
    out.extend_from_slice(block);
    out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
    out.extend_from_slice(cert);
    let check = check_of(LOG_NAMESPACE, &out[start + 4..]);
    out.extend_from_slice(&check);
}

/// Reads records one by one from a byte source; shared by the node and `bulwark verify`.
pub struct Reader<'a, B: Blob> {
    blob: &'a B,
    size: u64,
    offset: u64,
    /// The height the next record must have; `None` accepts any height (the held blocks of
    /// `crate::held` are in no height order).
    next_height: Option<u64>,
}

impl<'a, B: Blob> Reader<'a, B> {
    /// Starts at the beginning of a log of `size` bytes.
    pub fn new(blob: &'a B, size: u64) -> Self {
        Reader {
            blob,
            size,
            offset: 0,
            next_height: Some(1),
        }
    }

    /// Starts at the beginning of `size` bytes of records of any heights, in any order.
    pub fn any_height(blob: &'a B, size: u64) -> Self {
        Reader {
            blob,
            size,
            offset: 0,
            next_height: None,
        }
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, `Ok(None)` at the end.
    pub async fn next(&mut self) -> Result<Option<Record>, LogError> {
        if self.offset == self.size {
            return Ok(None);
        }
        let offset = self.offset;
        let damaged = |what| LogError::Damaged { offset, what };
        if self.size - offset < 4 {
            return Err(damaged("truncated length"));
        }
        let len_bytes = self.blob.read_at(offset, 4, ReadOptions::default()).await?;
        let len_bytes = len_bytes.coalesce();
        let len = u32::from_be_bytes(
            len_bytes
                .as_ref()
                .try_into()
                .map_err(|_| damaged("length"))?,
        ) as usize;
        if len == 0 || len > RECORD_PAYLOAD_MAX {
            return Err(damaged("length out of bounds"));
        }
        let total = (4 + len + CHECK_BYTES) as u64;
        if self.size - offset < total {
            return Err(damaged("truncated record"));
        }
        let body = self
            .blob
            .read_at(offset + 4, len + CHECK_BYTES, ReadOptions::default())
            .await?
            .coalesce();
        let body: &[u8] = body.as_ref();
        let (payload, check) = body.split_at(len);
        if check != check_of(LOG_NAMESPACE, payload) {
            return Err(damaged("check does not match"));
        }
        let record = Record::decode_payload(payload, offset)?;
        if let Some(want) = self.next_height {
            if record.height != want {
                return Err(LogError::Height {
                    offset,
                    got: record.height,
                    want,
                });
            }
            self.next_height = Some(want + 1);
        }
        self.offset += total;
        Ok(Some(record))
    }
}

/// The node's open log.
pub struct Log<B: Blob> {
    blob: B,
    size: u64,
    height: u64,
}

impl<B: Blob> Log<B> {
    /// Opens (or creates) the log in `partition`, replays every intact record through
    /// `apply`, cuts off a damaged tail and returns the log positioned after the last intact
    /// record. A damaged record is logged with its offset; every record after it is dropped
    /// (the node fetches those heights again from its peers). An error from `apply` stops the
    /// replay and is returned as [`LogError::Replay`].
    pub async fn open<S, F, E>(storage: &S, partition: &str, mut apply: F) -> Result<Self, LogError>
    where
        S: Storage<Blob = B>,
        F: FnMut(Record) -> Result<(), E>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (blob, size) = storage.open(partition, LOG_BLOB).await?;
        let mut reader = Reader::new(&blob, size);
        let mut height = 0;
        loop {
            match reader.next().await {
                Ok(Some(record)) => {
                    let at = record.height;
                    apply(record).map_err(|reason| LogError::Replay {
                        height: at,
                        reason: Box::new(reason),
                    })?;
                    height = at;
                }
                Ok(None) => break,
                Err(LogError::Storage(error)) => return Err(LogError::Storage(error)),
                Err(error) => {
                    warn!(%error, kept_height = height, "cutting the finalized log at a damaged record");
                    break;
                }
            }
        }
        let good = reader.offset();
        if good != size {
            blob.resize(good).await?;
            blob.sync().await?;
        }
        Ok(Log {
            blob,
            size: good,
            height,
        })
    }

    /// Height of the last record (0 when empty).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Appends a record and syncs it. Its height must be the next one.
    pub async fn append(&mut self, record: &Record) -> Result<(), LogError> {
        if record.height != self.height + 1 {
            return Err(LogError::OutOfOrder {
                got: record.height,
                have: self.height,
            });
        }
        let bytes = record.encode();
        let len = bytes.len() as u64;
        self.blob
            .write_at(self.size, bytes, WriteOptions::SYNC)
            .await?;
        self.size += len;
        self.height = record.height;
        Ok(())
    }

    /// Reads back the record of `height` (for peers that fall behind). Linear in the log
    /// length; callers keep an index of offsets (see [`Log::offset_of`]).
    pub async fn read_at_offset(&self, offset: u64) -> Result<Option<Record>, LogError> {
        let mut reader = Reader {
            blob: &self.blob,
            size: self.size,
            offset,
            next_height: None,
        };
        // Height continuity is not known from an offset: accept whatever height it holds.
        reader.next_height = match self.peek_height(offset).await? {
            Some(height) => Some(height),
            None => return Ok(None),
        };
        reader.next().await
    }

    async fn peek_height(&self, offset: u64) -> Result<Option<u64>, LogError> {
        if offset + 4 + 9 > self.size {
            return Ok(None);
        }
        let bytes = self
            .blob
            .read_at(offset + 5, 8, ReadOptions::default())
            .await?
            .coalesce();
        let height =
            u64::from_be_bytes(bytes.as_ref().try_into().map_err(|_| LogError::Damaged {
                offset,
                what: "height",
            })?);
        Ok(Some(height))
    }

    /// Byte size of the log (the offset the next record will have).
    pub fn offset_of_next(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use commonware_runtime::{deterministic, Runner as _};

    fn record(height: u64, cert: bool) -> Record {
        Record {
            height,
            block: vec![height as u8; 40],
            certificate: cert.then(|| vec![7; 12]),
        }
    }

    #[test]
    fn appends_replay_and_a_torn_tail_is_cut() {
        deterministic::Runner::seeded(1).start(|context| async move {
            let mut log = Log::open(&context, "log", |_| {
                Err(std::io::Error::other("empty log replays nothing"))
            })
            .await
            .unwrap();
            for height in 1..=3 {
                let r = record(height, height == 3);
                assert_eq!(r.encoded_len(), r.encode().len());
                log.append(&r).await.unwrap();
            }
            assert!(matches!(
                log.append(&record(9, false)).await,
                Err(LogError::OutOfOrder { got: 9, have: 3 })
            ));
            let end = log.offset_of_next();
            // A torn append: half a record at the end.
            let torn = record(4, true).encode();
            log.blob
                .write_at(end, torn[..torn.len() / 2].to_vec(), WriteOptions::SYNC)
                .await
                .unwrap();
            drop(log);
            let mut seen = Vec::new();
            let log = Log::open(&context, "log", |r| {
                seen.push(r);
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .unwrap();
            assert_eq!(
                seen,
                vec![record(1, false), record(2, false), record(3, true)]
            );
            assert_eq!(log.height(), 3);
            assert_eq!(log.offset_of_next(), end, "the torn tail is cut off");
            let again = log.read_at_offset(0).await.unwrap();
            assert_eq!(again, Some(record(1, false)));
        });
    }

    #[test]
    fn a_record_decodes_from_its_stored_form_and_nothing_else_does() {
        for r in [record(1, false), record(7, true)] {
            let bytes = r.encode();
            assert_eq!(Record::decode(&bytes).unwrap(), r);
            for at in 0..bytes.len() {
                let mut damaged = bytes.clone();
                damaged[at] ^= 0x01;
                assert!(Record::decode(&damaged).is_err(), "flip at byte {at}");
            }
            assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Record::decode(&longer).is_err());
        }
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[0, 0, 0, 0]).is_err());
        assert!(Record::decode(&[0xff; 16]).is_err());
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let bytes = record(1, true).encode();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            deterministic::Runner::seeded(at as u64).start(|context| async move {
                let (blob, _) = context.open("log", LOG_BLOB).await.unwrap();
                blob.write_at(0, damaged.clone(), WriteOptions::SYNC)
                    .await
                    .unwrap();
                let mut reader = Reader::new(&blob, damaged.len() as u64);
                assert!(
                    reader.next().await.is_err(),
                    "flip at byte {at} went unseen"
                );
            });
        }
    }
}
