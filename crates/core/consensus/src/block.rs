//! The block simplex orders (by digest) and every replica re-executes.
//!
//! Wire format (big-endian integers, fixed order, canonical):
//!
//! ```text
//! version u8 = 3 | epoch u64 | height u64 | view u64 | time_ms u64 | parent [32] | parent_root [32]
//!   | rounds u8 | rounds × (len u32 | oracle round) | batch
//! ```
//!
//! Each oracle round is an engine system-command frame
//! ([`bulwark_engine::codec::encode_system_command`]) of a quorum-certified
//! `SystemCommand::OracleRound`, of the sentinel's `SystemCommand::Quarantine`,
//! `SystemCommand::Admit` or `SystemCommand::NewEpoch`, or of a certified
//! `SystemCommand::ChainDeposit`; at most
//! [`BLOCK_ROUNDS_MAX`] together. They execute before the transactions, in order. `batch` is
//! [`bulwark_engine::codec::encode_batch`] of the signed client transactions. The block's digest is SHA-256 over [`BLOCK_NAMESPACE`] and the whole encoding, so it commits to
//! the parent, the epoch and view (the consensus round it was proposed in), the engine time and the state
//! root *after the parent* (`parent_root`): the finalization certificate of block `h` certifies
//! the state root after block `h - 1`.

use bulwark_engine::codec::{
    decode_batch, decode_system_command, encode_batch, encode_system_command, SignedTx,
    COMMAND_FRAME_BYTES_MAX,
};
use bulwark_engine::command::SystemCommand;
use bulwark_engine::snapshot::StateRoot;
use commonware_cryptography::{sha256::Digest, Hasher, Sha256};

/// Domain tag of block digests. Changing it is a breaking change.
pub const BLOCK_NAMESPACE: &[u8] = b"bulwark/node/block/v1";
/// Domain tag of the genesis digest. Changing it is a breaking change.
pub const GENESIS_NAMESPACE: &[u8] = b"bulwark/node/genesis/v1";
/// Version byte of the block encoding.
pub const BLOCK_VERSION: u8 = 3;
/// Most oracle rounds one block may carry.
pub const BLOCK_ROUNDS_MAX: usize = 8;
/// Fixed header: version, epoch, height, view, time, parent digest, parent root.
pub const BLOCK_HEADER_BYTES: usize = 1 + 8 + 8 + 8 + 8 + 32 + 32;
/// Where the parent digest starts in the header.
const PARENT_AT: usize = 1 + 8 + 8 + 8 + 8;
/// Where the parent root starts in the header.
const ROOT_AT: usize = PARENT_AT + 32;
/// Most transactions one block may carry.
pub const BLOCK_TXS_MAX: usize = 2_048;
/// Largest encoded block: the header plus a full batch of maximal frames.
pub const BLOCK_BYTES_MAX: usize = BLOCK_HEADER_BYTES
    + 1
    + BLOCK_ROUNDS_MAX * (4 + COMMAND_FRAME_BYTES_MAX)
    + 5
    + BLOCK_TXS_MAX * bulwark_engine::codec::FRAME_BYTES_MAX;

/// Why bytes from a peer are not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// Longer than [`BLOCK_BYTES_MAX`] or shorter than the header.
    #[error("block of {0} bytes is outside the allowed size")]
    Size(usize),
    /// Unknown version byte.
    #[error("unknown block version {0}")]
    Version(u8),
    /// The transaction batch does not decode.
    #[error("the transaction batch does not decode: {0}")]
    Batch(bulwark_engine::codec::CodecError),
    /// The encoding decodes but is not the canonical one.
    #[error("the block encoding is not canonical")]
    NotCanonical,
    /// The oracle-round section is malformed (count, lengths, or a command that is not an
    /// oracle round).
    #[error("malformed oracle rounds: {0}")]
    Rounds(&'static str),
}

/// One block of ordered client transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The committee epoch the block was proposed in: the epoch of the parent's state (a block
    /// that begins a new epoch is the last of its own).
    pub epoch: u64,
    /// Height: the genesis state is height 0, the first block height 1.
    pub height: u64,
    /// The simplex view the block was proposed in.
    pub view: u64,
    /// Engine time of the batch, milliseconds; never below the parent's.
    pub time_ms: u64,
    /// Digest of the parent block (the genesis digest for height 1).
    pub parent: Digest,
    /// The engine's state root after executing the parent (the genesis root for height 1).
    pub parent_root: StateRoot,
    /// Quorum-certified oracle rounds (`SystemCommand::OracleRound`) and the sentinel's
    /// quarantines (`SystemCommand::Quarantine`), executed first, in order.
    pub rounds: Vec<SystemCommand>,
    /// Signed client transactions in execution order.
    pub txs: Vec<SignedTx>,
}

impl Block {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let batch = encode_batch(&self.txs).expect("a block must hold at most BLOCK_TXS_MAX txs");
        let mut out = Vec::with_capacity(BLOCK_HEADER_BYTES + batch.len() + 1);
        out.push(BLOCK_VERSION);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.view.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.parent.0);
        out.extend_from_slice(&self.parent_root);
        out.push(self.rounds.len() as u8);
        for round in &self.rounds {
            let frame = encode_system_command(round);
            out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            out.extend_from_slice(&frame);
        }
        out.extend_from_slice(&batch);
        out
    }

    /// Decodes and checks canonicality; signatures are not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        if bytes.len() < BLOCK_HEADER_BYTES || bytes.len() > BLOCK_BYTES_MAX {
            return Err(BlockError::Size(bytes.len()));
        }
        if bytes[0] != BLOCK_VERSION {
            return Err(BlockError::Version(bytes[0]));
        }
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let mut parent = [0u8; 32];
        parent.copy_from_slice(&bytes[PARENT_AT..ROOT_AT]);
        let mut parent_root = [0u8; 32];
        parent_root.copy_from_slice(&bytes[ROOT_AT..BLOCK_HEADER_BYTES]);
        let mut at = BLOCK_HEADER_BYTES;
        let count = usize::from(*bytes.get(at).ok_or(BlockError::Rounds("missing count"))?);
        at += 1;
        if count > BLOCK_ROUNDS_MAX {
            return Err(BlockError::Rounds("too many rounds"));
        }
        let mut rounds = Vec::with_capacity(count);
        for _ in 0..count {
            let len_bytes: [u8; 4] = bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or(BlockError::Rounds("truncated length"))?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            at += 4;
            if len > COMMAND_FRAME_BYTES_MAX {
                return Err(BlockError::Rounds("round too long"));
            }
            let frame = bytes
                .get(at..at + len)
                .ok_or(BlockError::Rounds("truncated round"))?;
            at += len;
            match decode_system_command(frame) {
                Ok(
                    command @ (SystemCommand::OracleRound { .. }
                    | SystemCommand::Quarantine(_)
                    | SystemCommand::Admit(_)
                    | SystemCommand::NewEpoch { .. }
                    | SystemCommand::ChainDeposit(_)),
                ) => rounds.push(command),
                Ok(_) => return Err(BlockError::Rounds(
                    "neither an oracle round, a quarantine, an admission, an epoch change nor a chain deposit",
                )),
                Err(_) => return Err(BlockError::Rounds("round does not decode")),
            }
        }
        let txs = decode_batch(&bytes[at..], BLOCK_TXS_MAX).map_err(BlockError::Batch)?;
        let block = Block {
            epoch: u64_at(1),
            height: u64_at(9),
            view: u64_at(17),
            time_ms: u64_at(25),
            parent: Digest(parent),
            parent_root,
            rounds,
            txs,
        };
        if block.encode() != bytes {
            return Err(BlockError::NotCanonical);
        }
        Ok(block)
    }

    /// Height, parent digest and parent root from the fixed header alone, without decoding
    /// (or checking) the rest: for reading a log whose blocks were checked when committed.
    pub fn header(bytes: &[u8]) -> Result<(u64, Digest, StateRoot), BlockError> {
        if bytes.len() < BLOCK_HEADER_BYTES || bytes.len() > BLOCK_BYTES_MAX {
            return Err(BlockError::Size(bytes.len()));
        }
        if bytes[0] != BLOCK_VERSION {
            return Err(BlockError::Version(bytes[0]));
        }
        let mut height = [0u8; 8];
        height.copy_from_slice(&bytes[9..17]);
        let mut parent = [0u8; 32];
        parent.copy_from_slice(&bytes[PARENT_AT..ROOT_AT]);
        let mut parent_root = [0u8; 32];
        parent_root.copy_from_slice(&bytes[ROOT_AT..BLOCK_HEADER_BYTES]);
        Ok((u64::from_be_bytes(height), Digest(parent), parent_root))
    }

    /// The digest simplex orders: SHA-256 over the namespace and the encoding.
    pub fn digest_of(encoded: &[u8]) -> Digest {
        Sha256::hash(&[BLOCK_NAMESPACE, encoded])
    }
}

/// The genesis digest: binds the venue's genesis state root, so committees with different
/// genesis states never accept each other's chains.
pub fn genesis_digest(genesis_root: &StateRoot) -> Digest {
    Sha256::hash(&[GENESIS_NAMESPACE, genesis_root])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical() {
        let block = Block {
            epoch: 2,
            height: 7,
            view: 9,
            time_ms: 1_000,
            parent: Digest([3; 32]),
            parent_root: [4; 32],
            rounds: Vec::new(),
            txs: Vec::new(),
        };
        let bytes = block.encode();
        assert_eq!(Block::decode(&bytes), Ok(block));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Block::decode(&longer).is_err());
        assert_eq!(
            Block::decode(&bytes[..10]),
            Err(BlockError::Size(10)),
            "short input is refused before any parsing"
        );
    }

    /// Every system command a proposer may put in a block decodes from it (an admission the
    /// decoder did not know made every block carrying one malformed at every replica, and the
    /// proposers that held it stalled the chain); a client command in the rounds does not.
    #[test]
    fn every_block_command_round_trips_and_a_client_command_is_refused() {
        use bulwark_sentinel::{Admit, Affirmation, Seat};
        let admit = SystemCommand::Admit(Box::new(Admit {
            candidate: [5; 32],
            epoch: 1,
            affirmations: vec![Affirmation {
                affirmer: [6; 32],
                candidate: [5; 32],
                epoch: 1,
                at_ms: 9,
                appraisal: [7; 32],
                audit: [8; 32],
                signature: [9; 64],
            }],
            seat: Seat::Readmit,
        }));
        let new_epoch = SystemCommand::NewEpoch {
            epoch: 1,
            members: vec![[1; 32], [2; 32], [3; 32]],
            key: [4; 32],
        };
        let block = Block {
            epoch: 1,
            height: 7,
            view: 9,
            time_ms: 1_000,
            parent: Digest([3; 32]),
            parent_root: [4; 32],
            rounds: vec![admit, new_epoch],
            txs: Vec::new(),
        };
        let bytes = block.encode();
        assert_eq!(Block::decode(&bytes), Ok(block.clone()));
        let client = Block {
            rounds: vec![SystemCommand::Deposit {
                account: bulwark_engine::AccountId(1),
                amount: 5,
            }],
            ..block
        };
        assert!(matches!(
            Block::decode(&client.encode()),
            Err(BlockError::Rounds(_))
        ));
    }
}
