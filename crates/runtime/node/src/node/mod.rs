//! The production node: one committee member on the tokio runtime with commonware's
//! authenticated p2p (`lookup`: fixed addresses, encrypted, only listed peers may connect).
//!
//! Start-up, as the named steps of [`run`]:
//! 1. [`startup::prepare`]: load and validate the configuration and genesis (placement: at most
//!    f members per data center), check the peers' EK certificates, measure the launch, open
//!    the keystore and the node key;
//! 2. [`startup::start_p2p`]: the p2p network with every channel registered;
//! 3. [`startup::Shared`]: the mempool, committed view, status figures, evidence, oracle pool;
//! 4. [`startup::start_admission`], [`startup::start_audit`] (the node's own configuration
//!    audit) and [`startup::start_endpoint`];
//! 5. [`vault_keys::vault_keys`] (a task of its own): load the vault's key shares, or run their
//!    FROST key generation with every member and seal them with the vault backend;
//!    [`genesis_key::genesis_key`]: load this node's DKG share, or run the DKG ceremony with
//!    every member (all must be online) and seal the share;
//! 6. [`startup::start_consensus`]: the member (replay the finalized log, then simplex);
//! 7. the tasks in [`tasks`]: mempool gossip, oracle observation and intake, and the status
//!    line with the evidence file, until the process stops; and in [`deposits`]: the chain
//!    watcher and the intake of deposit attestations.

pub mod attest;
pub mod audit;
pub mod config;
mod deposits;
mod endpoint;
mod genesis_key;
pub mod keystore;
mod metrics;
pub mod oracle_sources;
pub mod p2p;
pub mod peer_gate;
mod receipts;
mod shares;
pub(crate) mod startup;
mod tasks;
pub mod vault_keys;
pub mod vault_signing;

use bulwark_consensus::replica::PublicKey;
use commonware_codec::DecodeExt as _;
use commonware_cryptography::ed25519;
use commonware_runtime::{tokio as runtime, Runner as _};
use config::hex_decode;
pub use config::{ConfigError, GenesisFile, NodeConfig};
use std::path::Path;

/// p2p channel of the genesis DKG ceremony.
pub const CHANNEL_DKG: u64 = 5;
/// p2p channel of mempool gossip (batches of signed client transactions).
pub const CHANNEL_GOSSIP: u64 = 6;
/// p2p channel of signed oracle observations.
pub const CHANNEL_ORACLE: u64 = 7;
/// Namespace of the p2p handshake. Changing it is a breaking change.
pub const P2P_NAMESPACE: &[u8] = b"bulwark/node/p2p/v1";
/// Namespace of the genesis DKG. Changing it is a breaking change.
pub use bulwark_consensus::epoch::DKG_NAMESPACE;
/// File in `data_dir` holding this node's DKG output and share (secret).
pub const SHARE_FILE: &str = "dkg.share";
/// File in `data_dir` holding the group public key, hex (public: the venue's identity).
pub const IDENTITY_FILE: &str = "identity.hex";
/// Directory in `data_dir` of the runtime's storage.
pub const STORAGE_DIR: &str = "storage";
/// File in `data_dir` where fault evidence against peers is appended (JSON lines).
pub const EVIDENCE_FILE: &str = "evidence.jsonl";
/// Partition prefix of the node's storage.
pub const PARTITION: &str = "node";

/// Why a node cannot start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Configuration or genesis refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file in the data directory cannot be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The genesis ceremony failed.
    #[error("genesis DKG: {0}")]
    Dkg(String),
    /// The finalized log cannot be opened or replayed.
    #[error("finalized log: {0}")]
    Log(#[from] bulwark_consensus::log::LogError),
    /// The client endpoint cannot start.
    #[error("client endpoint: {0}")]
    Endpoint(String),
    /// The oracle's venue sources cannot start.
    #[error("oracle sources: {0}")]
    Oracle(String),
    /// The TPM cannot measure, quote or unseal.
    #[error("attestation: {0}")]
    Attestation(String),
    /// The replica stopped while the node ran (its disk failed under a finalized height): the
    /// node stops rather than go on with a committed state its disk does not hold. A restart
    /// comes back from what the disk holds and fetches the rest from the committee.
    #[error("the replica stopped: {0}")]
    Halted(String),
}

/// Reads the node's ed25519 key from a file of 64 hex characters.
pub fn load_key(path: &Path) -> Result<ed25519::PrivateKey, NodeError> {
    let seed = load_seed(path)?;
    ed25519::PrivateKey::decode(seed.to_vec()).map_err(|e| NodeError::File {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 seed: {e}"),
    })
}

/// The 32-byte seed in a node key file (64 hex characters).
pub fn load_seed(path: &Path) -> Result<[u8; 32], NodeError> {
    config::read_hex32(path).map_err(|e| NodeError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Hex of a public key.
pub use bulwark_consensus::committee::public_key_hex;

fn parse_public_key(text: &str) -> Option<PublicKey> {
    let bytes = hex_decode(text)?;
    PublicKey::decode(bytes).ok()
}

/// Runs a node until the process is stopped. `migration` is [`keystore::Migration::Seal`] only
/// for the explicit migration (`bulwark node --migrate-secrets`), which seals plain and version 1
/// secret files in place; every other start refuses them.
pub fn run(config_path: &Path, migration: keystore::Migration) -> Result<(), NodeError> {
    let prepared = startup::prepare(config_path, migration)?;
    let runner = runtime::Runner::new(
        runtime::Config::new()
            .with_storage_directory(prepared.config.data_dir.join(STORAGE_DIR))
            .with_worker_threads(2),
    );
    runner.start(|context| async move {
        let mut p2p = startup::start_p2p(&context, &prepared);
        let shared = startup::Shared::new(&prepared);
        let (gossip_sender, gossip_queue) = commonware_utils::channel::mpsc::unbounded_channel();
        let attestation = startup::start_admission(&prepared, &shared, &p2p.oracle)?;
        startup::start_audit(&prepared, &shared)?;
        let _server = startup::start_endpoint(&prepared, &shared, attestation, gossip_sender)?;
        let vault_files = prepared
            .vault
            .lock()
            .expect("the vault lock must not be poisoned")
            .take();
        if let Some(files) = vault_files {
            let channel = p2p
                .vault
                .take()
                .expect("the vault channel must be taken once");
            let signing = p2p
                .signing
                .take()
                .expect("the signing channel must be taken once");
            let data_dir = prepared.config.data_dir.clone();
            let me = prepared.me.clone();
            let participants = prepared.participants.clone();
            let (view, status, evidence) = (
                shared.view.clone(),
                shared.vault.clone(),
                shared.evidence.clone(),
            );
            let dev_chain = prepared.config.development.then(|| {
                deposits::dev_chain(&prepared)
            });
            commonware_runtime::Spawner::spawn(
                commonware_runtime::Supervisor::child(&context, "vault"),
                move |context| async move {
                    // The venue trades on without its vault keys; the operator sees why.
                    let (keys, files) = match vault_keys::vault_keys(
                        commonware_runtime::Supervisor::child(&context, "keys"),
                        &data_dir,
                        &me,
                        participants.clone(),
                        files,
                        channel,
                    )
                    .await
                    {
                        Ok(done) => done,
                        Err(error) => {
                            tracing::error!(%error, "the vault's keys are not available on this node");
                            return;
                        }
                    };
                    let setup = vault_signing::Setup {
                        data_dir,
                        me,
                        participants,
                        keys,
                        files,
                        view,
                        status,
                        evidence,
                        dev_chain,
                    };
                    if let Err(error) = vault_signing::run(context, setup, signing).await {
                        tracing::error!(%error, "the vault's signing stopped on this node");
                    }
                },
            );
        }
        let dkg = p2p.dkg.take().expect("the DKG channel must be taken once");
        // A candidate holds no genesis share: it gets a share only by joining a reshare.
        let completed = if prepared.candidate {
            None
        } else {
            genesis_key::genesis_key(
                commonware_runtime::Supervisor::child(&context, "dkg"),
                &prepared.config.data_dir,
                prepared.key.clone(),
                prepared.participants.clone(),
                dkg,
                prepared.keystore.clone(),
                prepared.committee,
            )
            .await?
        };
        startup::publish_identity(&prepared, &shared, completed.as_ref())?;
        let mut member = startup::start_consensus(&context, &prepared, &shared, &mut p2p).await?;
        tasks::spawn_gossip(
            &context,
            &shared,
            p2p.gossip
                .take()
                .expect("the gossip channel must be taken once"),
            gossip_queue,
        );
        tasks::spawn_oracle(
            &context,
            &prepared,
            &shared,
            p2p.oracle_channel
                .take()
                .expect("the oracle channel must be taken once"),
        )?;
        deposits::spawn_deposits(
            &context,
            &prepared,
            &shared,
            p2p.deposits
                .take()
                .expect("the deposit channel must be taken once"),
        );
        // The replica ends only when it must stop (a fail-stop): then so does the node.
        commonware_macros::select! {
            _ = tasks::report_status(&context, &prepared, &shared) => {},
            _ = &mut member.replica => {},
        }
        let reason = shared
            .stats
            .lock()
            .expect("the stats lock must not be poisoned")
            .halted
            .clone()
            .unwrap_or_else(|| "its task ended".into());
        tracing::error!(%reason, "the replica stopped; the node stops");
        member.abort();
        Err::<(), NodeError>(NodeError::Halted(reason))
    })
}
