//! The replay verifier behind `bulwark verify`: checks a finalized log from genesis using
//! only the venue's genesis and its group public key, trusting no node.
//!
//! For every record, in order:
//! - the block decodes canonically, has the next height and names the previous block as parent;
//! - its claimed parent state root equals the root the verifier computed itself;
//! - its epoch is the one the replayed state is in (an epoch begins with the block after the
//!   one whose `new_epoch` the engine applied), and its certificate's round names that epoch;
//! - every client signature verifies;
//! - its finalization certificate, when present, certifies exactly this block's digest and
//!   verifies against the group public key alone;
//! - the verifier executes it and computes the next root.
//!
//! The group key is the same in every epoch (a reshare keeps it), so the genesis identity alone
//! checks certificates of every epoch; the epoch checks keep a certificate of one epoch from
//! standing for a block of another.
//!
//! A block without its own certificate is covered by the next certified descendant (the
//! digest chain binds it). Heights after the last certificate are reported as uncovered, which
//! is an error: a log whose tail no certificate covers proves nothing about that tail.

use crate::block::Block;
use crate::check::{epoch_of, execute};
use crate::committee::CONSENSUS_NAMESPACE;
use crate::log::{LogError, Reader, Record, LOG_BLOB};
use crate::replica::Scheme;
use bulwark_engine::codec::verify_batch;
use bulwark_engine::snapshot::StateRoot;
use bulwark_engine::Engine;
use commonware_codec::{Decode as _, Encode as _};
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use commonware_cryptography::sha256::Digest;
use commonware_parallel::Sequential;
use commonware_runtime::Storage;
use rand_core::CryptoRng;

/// The group public key type (the venue's identity).
pub type Identity = <MinSig as Variant>::Public;

/// What failed, at which height.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log itself is damaged.
    #[error("the log is damaged: {0}")]
    Log(#[from] LogError),
    /// A record does not hold a valid block.
    #[error("height {height}: the block does not decode: {reason}")]
    Block {
        /// Height of the record.
        height: u64,
        /// Why.
        reason: String,
    },
    /// The block does not extend the one before it.
    #[error("height {height}: the block does not extend the previous block")]
    Chain {
        /// Height of the record.
        height: u64,
    },
    /// The claimed parent root differs from the recomputed one.
    #[error("height {height}: the block claims parent root {claimed}, replay computed {computed}")]
    Root {
        /// Height of the record.
        height: u64,
        /// Root the block claims, hex.
        claimed: String,
        /// Root the replay computed, hex.
        computed: String,
    },
    /// A client signature does not verify.
    #[error("height {height}: client transactions refused: {reason}")]
    Signature {
        /// Height of the record.
        height: u64,
        /// Why.
        reason: String,
    },
    /// The certificate does not decode, names another block or does not verify.
    #[error("height {height}: finalization certificate invalid: {reason}")]
    Certificate {
        /// Height of the record.
        height: u64,
        /// Why.
        reason: &'static str,
    },
    /// The block or its certificate names another epoch than the replayed state is in.
    #[error("height {height}: the block claims epoch {claimed} ({what}), the replayed state is in epoch {epoch}")]
    Epoch {
        /// Height of the record.
        height: u64,
        /// The epoch claimed.
        claimed: u64,
        /// The replayed state's epoch.
        epoch: u64,
        /// Whether the block or its certificate claimed it.
        what: &'static str,
    },
    /// The log ends before the height asked for.
    #[error("the log ends at height {height}, before the --until height {until}")]
    Short {
        /// The height asked for.
        until: u64,
        /// The last height in the log.
        height: u64,
    },
    /// Heights after the last certificate.
    #[error("heights {from}..={to} are not covered by any finalization certificate")]
    Uncovered {
        /// First uncovered height.
        from: u64,
        /// Last height in the log.
        to: u64,
    },
}

/// Why a finalization certificate does not certify a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a finalization.
    #[error("finalization certificate invalid: does not decode")]
    Decode,
    /// They decode, but are not the canonical encoding of what they decode to.
    #[error("finalization certificate invalid: not canonical")]
    NotCanonical,
    /// It certifies another digest.
    #[error("finalization certificate invalid: certifies another block")]
    OtherBlock,
    /// Its round names another epoch than the block's.
    #[error("the certificate names epoch {claimed}, the block is of epoch {epoch}")]
    Epoch {
        /// The certificate's epoch.
        claimed: u64,
        /// The block's.
        epoch: u64,
    },
    /// Its threshold signature does not verify against the group key.
    #[error("finalization certificate invalid: signature does not verify against the group key")]
    Signature,
}

impl CertificateError {
    /// The reason, as [`VerifyError::Certificate`] words it.
    pub fn reason(&self) -> &'static str {
        match self {
            CertificateError::Decode => "does not decode",
            CertificateError::NotCanonical => "not canonical",
            CertificateError::OtherBlock => "certifies another block",
            CertificateError::Epoch { .. } => "names another epoch",
            CertificateError::Signature => "signature does not verify against the group key",
        }
    }
}

/// The one rule by which a finalization certificate makes a block final, used by `bulwark
/// verify` and by catch-up ([`crate::catchup`]): `certificate` decodes canonically, certifies
/// exactly `digest`, names `epoch` (the block's) and verifies against `verifier`, a certificate
/// verifier of the group public key.
pub fn check_certificate(
    certificate: &[u8],
    digest: &Digest,
    epoch: u64,
    verifier: &Scheme,
    rng: &mut impl CryptoRng,
) -> Result<(), CertificateError> {
    let finalization = Finalization::<Scheme, Digest>::decode_cfg(certificate.to_vec(), &())
        .map_err(|_| CertificateError::Decode)?;
    if finalization.encode().as_ref() != certificate {
        return Err(CertificateError::NotCanonical);
    }
    if finalization.proposal.payload != *digest {
        return Err(CertificateError::OtherBlock);
    }
    let claimed = finalization.proposal.round.epoch().get();
    if claimed != epoch {
        return Err(CertificateError::Epoch { claimed, epoch });
    }
    if !finalization.verify(rng, verifier, &Sequential) {
        return Err(CertificateError::Signature);
    }
    Ok(())
}

/// A certificate verifier of the group public key `identity` (the venue's identity).
pub fn certificate_verifier(identity: Identity) -> Scheme {
    Scheme::certificate_verifier(CONSENSUS_NAMESPACE, identity)
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Heights replayed.
    pub heights: u64,
    /// Certificates checked.
    pub certificates: u64,
    /// Client transactions replayed.
    pub txs: u64,
    /// State root after the last height.
    pub root: StateRoot,
    /// The committee epoch after the last height (0: no epoch change in the log).
    pub epoch: u64,
}

/// Checks records one at a time.
pub struct Verifier {
    engine: Engine,
    digest: Digest,
    height: u64,
    certified_height: u64,
    certificates: u64,
    txs: u64,
    scheme: Scheme,
}

impl Verifier {
    /// Starts from the genesis engine and digest, checking certificates against `identity`.
    pub fn new(genesis: (Engine, Digest), identity: Identity) -> Self {
        Verifier {
            engine: genesis.0,
            digest: genesis.1,
            height: 0,
            certified_height: 0,
            certificates: 0,
            txs: 0,
            scheme: certificate_verifier(identity),
        }
    }

    /// Checks and replays the next record.
    pub fn push(&mut self, record: &Record, rng: &mut impl CryptoRng) -> Result<(), VerifyError> {
        let height = record.height;
        let block = Block::decode(&record.block).map_err(|e| VerifyError::Block {
            height,
            reason: e.to_string(),
        })?;
        if block.height != self.height + 1 || height != block.height || block.parent != self.digest
        {
            return Err(VerifyError::Chain { height });
        }
        let computed = self.engine.state_root();
        if block.parent_root != computed {
            return Err(VerifyError::Root {
                height,
                claimed: hex::encode(block.parent_root),
                computed: hex::encode(computed),
            });
        }
        let epoch = epoch_of(&self.engine);
        if block.epoch != epoch {
            return Err(VerifyError::Epoch {
                height,
                claimed: block.epoch,
                epoch,
                what: "block",
            });
        }
        let digest = Block::digest_of(&record.block);
        if let Some(certificate) = &record.certificate {
            check_certificate(certificate, &digest, epoch, &self.scheme, rng).map_err(|error| {
                match error {
                    CertificateError::Epoch { claimed, .. } => VerifyError::Epoch {
                        height,
                        claimed,
                        epoch,
                        what: "certificate",
                    },
                    other => VerifyError::Certificate {
                        height,
                        reason: other.reason(),
                    },
                }
            })?;
            self.certificates += 1;
            self.certified_height = height;
        }
        verify_batch(&block.txs, |account| self.engine.key_of(account)).map_err(|e| {
            VerifyError::Signature {
                height,
                reason: e.to_string(),
            }
        })?;
        let mut events = Vec::new();
        execute(&mut self.engine, &block, &mut events);
        self.txs += block.txs.len() as u64;
        self.digest = digest;
        self.height = height;
        Ok(())
    }

    /// Ends the replay: every height must be covered by a certificate.
    pub fn finish(self) -> Result<Summary, VerifyError> {
        if self.certified_height < self.height {
            return Err(VerifyError::Uncovered {
                from: self.certified_height + 1,
                to: self.height,
            });
        }
        Ok(Summary {
            heights: self.height,
            certificates: self.certificates,
            txs: self.txs,
            root: self.engine.state_root(),
            epoch: epoch_of(&self.engine),
        })
    }

    /// What was replayed so far, without the coverage check of [`Verifier::finish`].
    pub fn summary(&self) -> Summary {
        Summary {
            heights: self.height,
            certificates: self.certificates,
            txs: self.txs,
            root: self.engine.state_root(),
            epoch: epoch_of(&self.engine),
        }
    }

    /// Heights replayed so far.
    pub fn height(&self) -> u64 {
        self.height
    }
}

/// Verifies the finalized log in `partition` of `storage` (see the module docs), up to and
/// including height `until` when given. `progress` is called after every height.
///
/// With `until`, the replay goes on past it until a certificate covers it (a certificate at a
/// later height covers every block before it through the digest chain), checking every record
/// it reads the same way; the summary is the state at `until`. When no certificate in the log
/// covers `until`, the answer is [`VerifyError::Uncovered`]: a prefix no certificate covers
/// proves nothing. A log shorter than `until` is [`VerifyError::Short`]; `until = 0` is genesis.
pub async fn verify_log<S: Storage>(
    storage: &S,
    partition: &str,
    genesis: (Engine, Digest),
    identity: Identity,
    rng: &mut impl CryptoRng,
    until: Option<u64>,
    mut progress: impl FnMut(u64),
) -> Result<Summary, VerifyError> {
    let (blob, size) = storage
        .open(partition, LOG_BLOB)
        .await
        .map_err(LogError::from)?;
    let mut reader = Reader::new(&blob, size);
    let mut verifier = Verifier::new(genesis, identity);
    let mut at_until = None;
    loop {
        if let Some(until) = until {
            if verifier.height() >= until && verifier.certified_height >= until {
                break;
            }
        }
        let Some(record) = reader.next().await? else {
            break;
        };
        verifier.push(&record, rng)?;
        if Some(verifier.height()) == until {
            at_until = Some(verifier.summary());
        }
        progress(verifier.height());
    }
    match (until, at_until) {
        (Some(until), Some(summary)) => {
            if verifier.certified_height < until {
                return Err(VerifyError::Uncovered {
                    from: verifier.certified_height + 1,
                    to: until,
                });
            }
            Ok(Summary {
                certificates: verifier.certificates,
                ..summary
            })
        }
        (Some(until), None) if until > verifier.height() => Err(VerifyError::Short {
            until,
            height: verifier.height(),
        }),
        _ => verifier.finish(),
    }
}
