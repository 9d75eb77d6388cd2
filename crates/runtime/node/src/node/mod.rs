//! The production node: one committee member on the tokio runtime with commonware's
//! authenticated p2p (`lookup`: fixed addresses, encrypted, only listed peers may connect).
//!
//! Start-up, in order:
//! 1. load and validate the configuration (placement: at most f members per data center);
//! 2. open the p2p network with every channel registered;
//! 3. genesis key: load this node's DKG share from `data_dir`, or run the DKG ceremony with
//!    every member (all must be online) and persist the share;
//! 4. start the member (replay the finalized log, then simplex), the mempool gossip and the
//!    client endpoint; print a status line periodically.

pub mod attest;
pub mod config;
mod endpoint;
pub mod keystore;
pub mod oracle_sources;

use crate::server::{Limits, Server};
use bulwark_consensus::committee::{
    start_member, Channels, MemberConfig, Timing, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES,
    CHANNEL_REQUESTS, CHANNEL_RESOLVER, CHANNEL_VOTES, CONSENSUS_NAMESPACE,
};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::genesis::try_genesis;
use bulwark_consensus::mempool::{Mempool, MempoolConfig, Origin};
use bulwark_consensus::replica::{Config as ReplicaConfig, Fault, PublicKey, Scheme};
use bulwark_custody::dkg::{Ceremony, Completed, To};
use bulwark_engine::codec::{decode_batch, encode_batch};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::{ed25519, Signer as _};
use commonware_macros::select;
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _, Receiver as _, Recipients, Sender as _};
use commonware_runtime::{tokio as runtime, Clock, IoBuf, Quota, Runner as _, Spawner, Supervisor};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::channel::mpsc;
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{NZUsize, NZU32};
use config::hex_decode;
pub use config::{ConfigError, GenesisFile, NodeConfig};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// p2p channel of the genesis DKG ceremony.
pub const CHANNEL_DKG: u64 = 5;
/// p2p channel of mempool gossip (batches of signed client transactions).
pub const CHANNEL_GOSSIP: u64 = 6;
/// p2p channel of signed oracle observations.
pub const CHANNEL_ORACLE: u64 = 7;
/// Namespace of the p2p handshake. Changing it is a breaking change.
pub const P2P_NAMESPACE: &[u8] = b"bulwark/node/p2p/v1";
/// Namespace of the genesis DKG. Changing it is a breaking change.
pub const DKG_NAMESPACE: &[u8] = b"bulwark/node/dkg/v1";
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
    config::read_hex32(path).map_err(|reason| NodeError::File {
        path: path.to_path_buf(),
        reason,
    })
}

/// Hex of a public key.
pub use bulwark_consensus::committee::public_key_hex;

fn parse_public_key(text: &str) -> Option<PublicKey> {
    let bytes = hex_decode(text)?;
    PublicKey::decode(bytes).ok()
}

/// Where this member's oracle observations come from.
enum Feed {
    Synthetic(Box<bulwark_consensus::oracle_feed::SyntheticFeed>),
    Sourced(crate::node::oracle_sources::SourcedFeed),
}

/// Runs a node until the process is stopped.
pub fn run(config_path: &Path) -> Result<(), NodeError> {
    let config = NodeConfig::load(config_path)?;
    let genesis_file = GenesisFile::load(&config.genesis_file)?;
    let accounts = genesis_file.accounts(&config.genesis_file)?;
    let oracle_config = genesis_file.oracle_config(&config.genesis_file)?;
    let (genesis_engine, genesis_digest) =
        try_genesis(&accounts, &genesis_file.index_micros, oracle_config.clone()).map_err(
            |reason| ConfigError::Invalid {
                path: config.genesis_file.clone(),
                reason: format!("genesis refused: {reason}"),
            },
        )?;
    let underlyings = genesis_file.index_micros.len();
    if let Some(bad) = config
        .oracle
        .iter()
        .find(|f| usize::from(f.underlying) >= underlyings)
    {
        return Err(ConfigError::Invalid {
            path: config_path.to_path_buf(),
            reason: format!(
                "[[oracle]] underlying {} does not exist; the genesis has {underlyings}",
                bad.underlying
            ),
        }
        .into());
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::File {
        path: config.data_dir.clone(),
        reason: e.to_string(),
    })?;
    // The peers' EKs are checked against their manufacturers' certificates first: a bad
    // inventory is a configuration error.
    if let Some(admission) = config.admission.as_ref().filter(|a| a.mode == "tpm") {
        attest::check_endorsement_certificates(&config, admission)?;
    }
    // Measured launch before any secret is read: with a TPM the keystore key is sealed to the
    // measured PCRs, and the node key is kept encrypted under it.
    let tpm = attest::measured_launch(&config)?;
    let keystore = Arc::new(attest::open_keystore(&config.data_dir, tpm.as_ref())?);
    let seed = attest::load_node_seed(&config, &keystore)?;
    let key = ed25519::PrivateKey::decode(seed.to_vec()).map_err(|e| NodeError::File {
        path: config.key_file.clone(),
        reason: format!("not an ed25519 seed: {e}"),
    })?;
    let me = key.public_key();
    let mut peers = Vec::new();
    for peer in &config.peers {
        let public_key =
            parse_public_key(&peer.public_key).ok_or_else(|| ConfigError::Invalid {
                path: config_path.to_path_buf(),
                reason: format!("peer key {} is not an ed25519 public key", peer.public_key),
            })?;
        peers.push((public_key, peer.address));
    }
    if !peers.iter().any(|(key, _)| *key == me) {
        return Err(ConfigError::Invalid {
            path: config_path.to_path_buf(),
            reason: format!(
                "this node's key {} is not among the peers",
                public_key_hex(&me)
            ),
        }
        .into());
    }
    let participants = Set::try_from(peers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
        .map_err(|_| ConfigError::Invalid {
            path: config_path.to_path_buf(),
            reason: "peer keys must be distinct".into(),
        })?;
    let n = u32::try_from(peers.len()).unwrap_or(u32::MAX);
    let runner = runtime::Runner::new(
        runtime::Config::new()
            .with_storage_directory(config.data_dir.join(STORAGE_DIR))
            .with_worker_threads(2),
    );
    runner.start(|context| async move {
        // p2p: every channel registered before start.
        let handshake = Cups::<_, commonware_cryptography::ChaCha20Poly1305>::new(
            Sake {
                signer: key.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let max_size = bulwark_consensus::committee::max_message_size(n);
        // `local` allows private and loopback peer addresses; `recommended` refuses them.
        let p2p_config = if config.loopback {
            lookup::Config::local
        } else {
            lookup::Config::recommended
        };
        let p2p_config = p2p_config(
            handshake,
            P2P_NAMESPACE,
            config.p2p_listen,
            NZUsize!(peers.len()),
            max_size,
            NZUsize!(1024),
        );
        let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p_config);
        let addresses: Map<PublicKey, Address> = peers
            .iter()
            .map(|(key, address)| (key.clone(), Address::Symmetric(*address)))
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| NodeError::Dkg("peer keys must be distinct".into()))?;
        let quota = Quota::per_second(NZU32!(10_000));
        let channels = Channels {
            votes: network.register(CHANNEL_VOTES, quota),
            certificates: network.register(CHANNEL_CERTIFICATES, quota),
            resolver: network.register(CHANNEL_RESOLVER, quota),
            blocks: network.register(CHANNEL_BLOCKS, quota),
            requests: network.register(CHANNEL_REQUESTS, quota),
        };
        let dkg_channel = network.register(CHANNEL_DKG, Quota::per_second(NZU32!(1_000)));
        let gossip_channel = network.register(CHANNEL_GOSSIP, quota);
        let oracle_channel = network.register(CHANNEL_ORACLE, quota);
        network.start();
        info!(name = %config.name, key = %public_key_hex(&me), p2p = %config.p2p_listen, "p2p started");

        // Shared state: the mempool, the committed view, status figures, evidence, oracle pool.
        let oracle_pool = oracle_config.enabled().then(|| {
            Arc::new(Mutex::new(bulwark_consensus::oracle_feed::OraclePool::new(
                oracle_config.clone(),
                genesis_file.index_micros.len().min(u16::MAX as usize) as u16,
            )))
        });
        let mempool = Mempool::new(MempoolConfig {
            verify_threads: config.verify_threads,
            ..MempoolConfig::default()
        });
        let view = Arc::new(Mutex::new(Arc::new(genesis_engine.clone())));
        let stats = Arc::new(Mutex::new(Default::default()));
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let evidence = EvidenceLog::default();
        let (gossip_sender, mut gossip_queue) = mpsc::unbounded_channel::<Vec<bulwark_engine::codec::SignedTx>>();
        // Admission: with [admission], only peers with a current affirming appraisal are
        // tracked (may connect); without it, every listed peer is, and the node says so.
        let admission_status: attest::AdmissionStatus = Arc::new(Mutex::new(serde_json::Value::Null));
        let admission_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attestation = match &config.admission {
            Some(admission) => {
                let attestation = Arc::new(attest::Attestation::new(&config, admission, &me, tpm.clone())?);
                // Each other member: its admission name, p2p and client addresses, and (TPM
                // mode) its inventory EK.
                let mut others = Vec::new();
                let mut endorsement_keys = std::collections::BTreeMap::new();
                for (peer, (key, p2p)) in config.peers.iter().zip(peers.iter()).filter(|(_, (key, _))| *key != me) {
                    if admission.mode == "tpm" {
                        if let Some(ek) = peer.tpm_ek.as_deref().and_then(hex_decode) {
                            endorsement_keys.insert(key.clone(), ek);
                        }
                    }
                    if let Some(client) = peer.client_address {
                        others.push((key.clone(), peer.data_center.clone() + "/" + &peer.public_key[..8], *p2p, client));
                    }
                }
                attest::start(
                    admission,
                    (me.clone(), config.p2p_listen),
                    others,
                    endorsement_keys,
                    oracle.clone(),
                    evidence.clone(),
                    admission_status.clone(),
                    admission_stop.clone(),
                )?;
                Some(attestation)
            }
            None => {
                warn!("attested admission is OFF: every listed peer may connect without evidence");
                let _ = oracle.track(0, addresses);
                None
            }
        };
        let identity = Arc::new(Mutex::new(String::new()));
        let oracle_sources = Arc::new(Mutex::new(serde_json::Value::Null));

        // Client endpoint.
        let handler = endpoint::Endpoint {
            name: config.name.clone(),
            data_center: config.data_center.clone(),
            identity: identity.clone(),
            attestation: attestation.clone(),
            admission: admission_status.clone(),
            oracle_sources: oracle_sources.clone(),
            mempool: mempool.clone(),
            view: view.clone(),
            stats: stats.clone(),
            ledger: ledger.clone(),
            refused: refused.clone(),
            evidence: evidence.clone(),
            gossip: gossip_sender,
        };
        let server = Server::start(config.client_listen, Limits::default(), Arc::new(handler))
            .map_err(|e| NodeError::Endpoint(e.to_string()))?;
        info!(client = %server.local_addr(), "client endpoint listening");

        // Genesis key.
        let completed = genesis_key(
            context.child("dkg"),
            &config.data_dir,
            key.clone(),
            participants.clone(),
            dkg_channel,
            keystore.clone(),
        )
        .await?;
        let identity_hex = hex::encode(completed.polynomial().public().encode());
        *identity.lock().expect("the identity lock must not be poisoned") = identity_hex.clone();
        let identity = identity_hex;
        let identity_path = config.data_dir.join(IDENTITY_FILE);
        std::fs::write(&identity_path, format!("{identity}\n")).map_err(|e| NodeError::File {
            path: identity_path.clone(),
            reason: e.to_string(),
        })?;
        info!(%identity, "committee identity (group public key)");
        let scheme = Scheme::signer(
            CONSENSUS_NAMESPACE,
            participants.clone(),
            completed.polynomial().clone(),
            completed.share.clone(),
        )
        .ok_or_else(|| NodeError::Dkg("this node's share does not fit the committee".into()))?;

        // The member.
        let replica = ReplicaConfig {
            genesis: (genesis_engine, genesis_digest),
            venue_epoch_ms: genesis_file.venue_epoch_ms,
            mempool: mempool.clone(),
            ledger: ledger.clone(),
            refused: refused.clone(),
            block_txs_max: config.block_txs_max,
            verify_threads: config.verify_threads,
            mailbox_size: 1024,
            fault: Fault::None,
            oracle: oracle_pool.clone(),
            stats: stats.clone(),
            evidence: evidence.clone(),
            participants: participants.iter().cloned().collect(),
            view: view.clone(),
            log_partition: format!("{PARTITION}-finalized"),
            held_partition: format!("{PARTITION}-held"),
            snapshot_partition: format!("{PARTITION}-snapshots"),
            snapshot_every: config.snapshot_every,
            // Status needs the newest height only; the sim keeps every one.
            ledger_kept: 1_024,
        };
        let member_config = MemberConfig {
            scheme,
            replica,
            genesis_digest,
            partition_prefix: PARTITION.into(),
            timing: Timing::default(),
        };
        let _member = start_member(context.child("member"), member_config, oracle.clone(), channels)
            .await?;

        // Mempool gossip: transactions accepted from clients go to every peer.
        let (mut gossip_out, mut gossip_in) = gossip_channel;
        context.child("gossip_out").spawn(move |_| async move {
            while let Some(txs) = gossip_queue.recv().await {
                for chunk in txs.chunks(bulwark_consensus::block::BLOCK_TXS_MAX) {
                    if let Ok(bytes) = encode_batch(chunk) {
                        gossip_out.send(Recipients::All, IoBuf::from(bytes), false);
                    }
                }
            }
        });
        {
            let mempool = mempool.clone();
            let view = view.clone();
            let evidence = evidence.clone();
            context.child("gossip_in").spawn(move |_| async move {
                while let Ok((peer, bytes)) = gossip_in.recv().await {
                    match decode_batch(bytes.as_ref(), bulwark_consensus::block::BLOCK_TXS_MAX) {
                        Ok(txs) => {
                            let engine = view.lock().expect("the view lock must not be poisoned").clone();
                            let keys = endpoint::EngineKeys(engine);
                            mempool.insert_batch(txs, &keys, Origin::Peer);
                        }
                        Err(error) => evidence.record(Kind::MalformedGossip, &peer, 0, error.to_string()),
                    }
                }
            });
        }

        // Oracle: observe every round (the configured venues, or the DEVELOPMENT synthetic
        // source), gossip the signed observation, and pool everyone's for the proposer.
        if let Some(pool) = oracle_pool.clone() {
            let signing_key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let mut feed = if config.oracle.is_empty() {
                warn!("oracle source: SYNTHETIC development price path (seeded from the genesis), not a real market");
                Feed::Synthetic(Box::new(bulwark_consensus::oracle_feed::SyntheticFeed::new(
                    &genesis_file.index_micros,
                    u64::from_le_bytes(genesis_digest.0[..8].try_into().unwrap_or([0; 8])),
                    signing_key,
                )))
            } else {
                let feeds: Vec<(u16, bulwark_oracle::source::SourcesConfig)> =
                    config.oracle.iter().map(|f| (f.underlying, f.sources.clone())).collect();
                for (underlying, sources) in &feeds {
                    info!(
                        underlying,
                        source = sources.source.as_str(),
                        venues = ?sources.venues.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
                        "oracle sources"
                    );
                }
                let missing: Vec<usize> = (0..underlyings)
                    .filter(|u| !feeds.iter().any(|(f, _)| usize::from(*f) == *u))
                    .collect();
                if !missing.is_empty() {
                    warn!(?missing, "no oracle sources for these underlyings: this member does not observe them");
                }
                Feed::Sourced(
                    crate::node::oracle_sources::SourcedFeed::start(
                        &feeds,
                        &tokio::runtime::Handle::current(),
                        &signing_key,
                        genesis_file.venue_epoch_ms,
                    )
                    .map_err(|e| NodeError::Oracle(e.to_string()))?,
                )
            };
            let oracle_sources = oracle_sources.clone();
            let (mut oracle_out, mut oracle_in) = oracle_channel;
            let venue_epoch_ms = genesis_file.venue_epoch_ms;
            {
                let pool = pool.clone();
                context.child("oracle_feed").spawn(move |context| async move {
                    let mut last_round = 0u64;
                    loop {
                        let now_ms = context
                            .current()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                        let venue_ms = now_ms.saturating_sub(venue_epoch_ms);
                        let round = venue_ms / bulwark_consensus::oracle_feed::ROUND_MS;
                        if round > last_round {
                            last_round = round;
                            let observations = match &mut feed {
                                Feed::Synthetic(feed) => feed.observe(round, venue_ms),
                                Feed::Sourced(feed) => {
                                    *oracle_sources.lock().expect("the oracle status lock must not be poisoned") = feed.status();
                                    feed.observe(round, now_ms)
                                }
                            };
                            for observation in observations {
                                let bytes = observation.encode();
                                let _ = pool.lock().expect("the oracle pool lock must not be poisoned").offer(observation);
                                oracle_out.send(Recipients::All, IoBuf::from(bytes), false);
                            }
                        }
                        let next = (round + 1) * bulwark_consensus::oracle_feed::ROUND_MS - venue_ms;
                        context.sleep(Duration::from_millis(next.max(1))).await;
                    }
                });
            }
            let evidence = evidence.clone();
            context.child("oracle_in").spawn(move |_| async move {
                while let Ok((peer, bytes)) = oracle_in.recv().await {
                    let offered = bulwark_engine::oracle::SignedObservation::decode(bytes.as_ref())
                        .map_err(|e| e.to_string())
                        .and_then(|observation| {
                            pool.lock()
                                .expect("the oracle pool lock must not be poisoned")
                                .offer(observation)
                                .map_err(|e| e.to_string())
                        });
                    match offered {
                        Ok(()) => {}
                        Err(reason)
                            if reason.contains("another feed or round")
                                || reason.contains("already observed") => {}
                        Err(reason) => evidence.record(Kind::MalformedGossip, &peer, 0, format!("oracle observation: {reason}")),
                    }
                }
            });
        } else {
            warn!("no oracle committee in the genesis: the index stays at its genesis value");
        }

        // Status every 5 s until the process is stopped; new fault evidence is appended to
        // evidence.jsonl in the data directory for the sentinel.
        let evidence_path = config.data_dir.join(EVIDENCE_FILE);
        let mut evidence_written = 0u64;
        loop {
            context.sleep(Duration::from_secs(5)).await;
            let total = evidence.total();
            if total > evidence_written {
                let recent = evidence.recent();
                let fresh = (total - evidence_written).min(recent.len() as u64) as usize;
                let mut lines = String::new();
                for record in &recent[recent.len() - fresh..] {
                    if let Ok(line) = serde_json::to_string(record) {
                        lines.push_str(&line);
                        lines.push('\n');
                    }
                }
                use std::io::Write as _;
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&evidence_path)
                    .and_then(|mut file| file.write_all(lines.as_bytes()));
                if let Err(error) = written {
                    warn!(path = %evidence_path.display(), %error, "cannot append fault evidence");
                }
                evidence_written = total;
            }
            let height = ledger.lock().expect("the ledger lock must not be poisoned").last().map_or(0, |c| c.height);
            info!(name = %config.name, height, mempool = mempool.len(), "status");
        }
        #[allow(unreachable_code)]
        Ok::<(), NodeError>(())
    })
}

/// Loads this node's DKG output, or runs the genesis ceremony with every member and saves it.
async fn genesis_key<E, S, R>(
    mut context: E,
    data_dir: &Path,
    key: ed25519::PrivateKey,
    participants: Set<PublicKey>,
    (mut sender, mut receiver): (S, R),
    store: Arc<keystore::Keystore>,
) -> Result<Completed, NodeError>
where
    E: Clock + Spawner + Supervisor + rand_core::CryptoRng + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let path = data_dir.join(SHARE_FILE);
    let keystore_error = |e: keystore::KeystoreError| NodeError::File {
        path: path.clone(),
        reason: e.to_string(),
    };
    if path.exists() {
        let bytes = store.unseal(&path, SHARE_FILE).map_err(keystore_error)?;
        let completed = Completed::decode(&bytes, &participants).map_err(|e| NodeError::File {
            path: path.clone(),
            reason: format!("not this committee's DKG share: {e}"),
        })?;
        // Peers still in the ceremony may need our messages: we can no longer send them, so a
        // member that lost its share file is out until the committee reshares (not yet built).
        info!("loaded the genesis DKG share");
        return Ok(completed);
    }
    let (mut ceremony, first) = Ceremony::new(DKG_NAMESPACE, key, participants, &mut context)
        .map_err(|e| NodeError::Dkg(e.to_string()))?;
    // Everything we sent, resent every second until the end: peers that connect late still
    // get it, and the ceremony ignores duplicates.
    let mut sent = first;
    let mut last_status = String::new();
    let completed = loop {
        for message in &sent {
            let recipients = match &message.to {
                To::All => Recipients::All,
                To::One(peer) => Recipients::One(peer.clone()),
            };
            sender.send(recipients, IoBuf::from(message.bytes.clone()), false);
        }
        let deadline = context.current() + Duration::from_secs(1);
        loop {
            select! {
                _ = context.sleep_until(deadline) => break,
                message = receiver.recv() => {
                    let Ok((peer, bytes)) = message else {
                        return Err(NodeError::Dkg("the p2p network stopped".into()));
                    };
                    match ceremony.receive(&peer, bytes.as_ref()) {
                        Ok(out) => sent.extend(out),
                        // Resends are normal (every member repeats itself until the end).
                        Err(error @ bulwark_custody::dkg::DkgError::Duplicate { .. }) => {
                            tracing::debug!(%peer, %error, "DKG message repeated")
                        }
                        Err(error) => warn!(%peer, %error, "DKG message refused"),
                    }
                },
            }
        }
        if let Some(completed) = ceremony.completed() {
            break completed.clone();
        }
        let status = ceremony.status().to_string();
        if status != last_status {
            info!(%status, "genesis DKG in progress");
            last_status = status;
        }
    };
    // Peers still in the ceremony may need our messages: keep answering any DKG message
    // with everything we sent, at most once a second per peer, for the life of the node.
    context
        .child("dkg_answer")
        .spawn(move |context| async move {
            let mut answered: std::collections::HashMap<PublicKey, std::time::SystemTime> =
                std::collections::HashMap::new();
            while let Ok((peer, _)) = receiver.recv().await {
                let now = context.current();
                let due = answered.get(&peer).is_none_or(|at| {
                    now.duration_since(*at).unwrap_or(Duration::ZERO) >= Duration::from_secs(1)
                });
                if !due {
                    continue;
                }
                answered.insert(peer.clone(), now);
                for message in &sent {
                    let wanted = match &message.to {
                        To::All => true,
                        To::One(to) => *to == peer,
                    };
                    if wanted {
                        sender.send(
                            Recipients::One(peer.clone()),
                            IoBuf::from(message.bytes.clone()),
                            false,
                        );
                    }
                }
            }
        });
    store
        .seal(&path, SHARE_FILE, &completed.encode())
        .map_err(keystore_error)?;
    info!("genesis DKG complete; share saved (encrypted by the keystore)");
    Ok(completed)
}
