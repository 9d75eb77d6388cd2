//! The node's start-up steps, in the order [`super::run`] takes them.

use super::{
    attest, endpoint, keystore, parse_public_key, public_key_hex, ConfigError, GenesisFile,
    NodeConfig, NodeError, CHANNEL_DKG, CHANNEL_GOSSIP, CHANNEL_ORACLE, IDENTITY_FILE,
    P2P_NAMESPACE, PARTITION,
};
use crate::server::{Limits, Server, ServerHandle};
use bulwark_consensus::committee::{
    start_member, Channels, Member, MemberConfig, Timing, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES,
    CHANNEL_REQUESTS, CHANNEL_RESOLVER, CHANNEL_VOTES,
};
use bulwark_consensus::evidence::EvidenceLog;
use bulwark_consensus::genesis::try_genesis_at;
use bulwark_consensus::mempool::{Mempool, MempoolConfig};
use bulwark_consensus::oracle_feed::{OraclePool, SharedPool};
use bulwark_consensus::replica::{Config as ReplicaConfig, Fault, Ledger, PublicKey, SharedStats};
use bulwark_custody::dkg::Completed;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::Engine;
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::tokio::Context;
use commonware_runtime::{Quota, Supervisor as _};
use commonware_utils::channel::mpsc;
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{NZUsize, NZU32};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// One p2p channel of the node's network.
pub(super) type Channel = (
    lookup::Sender<PublicKey, Context>,
    lookup::Receiver<PublicKey>,
);

/// Everything the node knows before its runtime starts.
pub(super) struct Prepared {
    pub(super) config: NodeConfig,
    pub(super) genesis_file: GenesisFile,
    pub(super) oracle_config: OracleConfig,
    pub(super) genesis: (Engine, Digest),
    /// Underlyings in the genesis.
    pub(super) underlyings: usize,
    pub(super) tpm: Option<Arc<Mutex<attest::TpmLaunch>>>,
    pub(super) keystore: Arc<keystore::Keystore>,
    /// What the keystore binds this committee's secrets to.
    pub(super) committee: [u8; 32],
    /// The node key's seed (it also signs oracle observations).
    pub(super) seed: [u8; 32],
    pub(super) key: ed25519::PrivateKey,
    pub(super) me: PublicKey,
    /// Every member's key and p2p address, in configuration order.
    pub(super) peers: Vec<(PublicKey, SocketAddr)>,
    pub(super) participants: Set<PublicKey>,
    /// This node is a candidate: listed, but not in the genesis committee.
    pub(super) candidate: bool,
    /// This node observes prices: an oracle member of the genesis, or a candidate (which sends
    /// its observations only once it holds a seat).
    pub(super) observes: bool,
    /// The vault's files under the configured backend, until the vault task takes them.
    pub(super) vault:
        std::sync::Mutex<Option<bulwark_vaultstore::VaultFiles<bulwark_vaultstore::Backend>>>,
}

fn invalid(path: &Path, reason: String) -> NodeError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
    .into()
}

/// Step 1: loads and checks the configuration and genesis, checks the peers' EK certificates,
/// measures the launch (before any secret is read: with a TPM the keystore key is sealed to the
/// measured PCRs), and opens the keystore and the node key.
pub(super) fn prepare(
    config_path: &Path,
    migration: keystore::Migration,
) -> Result<Prepared, NodeError> {
    let config = NodeConfig::load(config_path)?;
    let genesis_file = GenesisFile::load(&config.genesis_file)?;
    let accounts = genesis_file.accounts(&config.genesis_file)?;
    let oracle_config = genesis_file.oracle_config(&config.genesis_file)?;
    let sentinel = genesis_file.sentinel(&config.genesis_file)?;
    let genesis = try_genesis_at(
        &accounts,
        &genesis_file.index_micros,
        oracle_config.clone(),
        sentinel,
        genesis_file.venue_epoch_ms,
    )
    .map_err(|reason| invalid(&config.genesis_file, format!("genesis refused: {reason}")))?;
    let underlyings = genesis_file.index_micros.len();
    if let Some(bad) = config
        .oracle
        .iter()
        .find(|f| usize::from(f.underlying) >= underlyings)
    {
        return Err(invalid(
            config_path,
            format!(
                "[[oracle]] underlying {} does not exist; the genesis has {underlyings}",
                bad.underlying
            ),
        ));
    }
    keystore::create_private_dir(&config.data_dir).map_err(|e| NodeError::File {
        path: config.data_dir.clone(),
        reason: e.to_string(),
    })?;
    // The peers' EKs are checked against their manufacturers' certificates first: a bad
    // inventory is a configuration error.
    if let Some(admission) = config
        .admission
        .as_ref()
        .filter(|a| a.mode == super::config::AdmissionMode::Tpm)
    {
        attest::check_endorsement_certificates(&config, admission)?;
    }
    let mut peers = Vec::new();
    let mut members = Vec::new();
    for peer in &config.peers {
        let public_key = parse_public_key(&peer.public_key).ok_or_else(|| {
            invalid(
                config_path,
                format!("peer key {} is not an ed25519 public key", peer.public_key),
            )
        })?;
        if !peer.candidate {
            members.push(public_key.clone());
        }
        peers.push((public_key, peer.address));
    }
    // Secrets and peer requests are bound to the genesis committee: listing a candidate does
    // not change it, so members can add one without resealing anything.
    let committee = attest::committee_identity(members.iter());
    let tpm = attest::measured_launch(&config)?;
    let keystore = Arc::new(attest::open_keystore(
        &config.data_dir,
        tpm.as_ref(),
        migration,
    )?);
    let seed = attest::load_node_seed(&config, &keystore, &committee)?;
    let key = ed25519::PrivateKey::decode(seed.to_vec()).map_err(|e| NodeError::File {
        path: config.key_file.clone(),
        reason: format!("not an ed25519 seed: {e}"),
    })?;
    let me = key.public_key();
    if !peers.iter().any(|(key, _)| *key == me) {
        return Err(invalid(
            config_path,
            format!(
                "this node's key {} is not among the peers",
                public_key_hex(&me)
            ),
        ));
    }
    let genesis_oracle = oracle_config
        .members
        .iter()
        .any(|member| member[..] == me.encode()[..]);
    let participants = Set::try_from(members)
        .map_err(|_| invalid(config_path, "peer keys must be distinct".into()))?;
    // Vault member numbers follow the participants' order, which every member computes alike.
    let member = participants.iter().position(|key| *key == me);
    let candidate = member.is_none();
    // A candidate observes too: admitted, it takes a vacant oracle seat with its committee seat
    // (`OracleRoster::following`), and sends observations only from then on.
    let observes = genesis_oracle || (candidate && oracle_config.enabled());
    if observes && config.oracle.is_empty() && !config.development {
        return Err(invalid(
            config_path,
            "this node is (or, as a candidate, may become) an oracle member with no [[oracle]] sources: a production node does not run the SYNTHETIC development feed; configure its venues".into(),
        ));
    }
    let vault_number = match member {
        Some(member) => u16::try_from(member + 1).unwrap_or(u16::MAX),
        None => {
            info!("this node is a candidate (not in the genesis committee): no genesis DKG; it follows the log, joins at an epoch change once admitted (`bulwark admin replace`), and gets its vault shares by repair from the members that hold them");
            newcomer_vault_number(config_path, &me, &peers)?
        }
    };
    let vault = check_vault_backend(&config, &keystore, vault_number)?;
    let vault = std::sync::Mutex::new(vault);
    Ok(Prepared {
        config,
        genesis_file,
        oracle_config,
        genesis,
        underlyings,
        tpm,
        keystore,
        committee,
        seed,
        key,
        me,
        peers,
        participants,
        candidate,
        observes,
        vault,
    })
}

/// A candidate's vault number (`bulwark_vault::newcomer_number`); refused when another listed
/// candidate has the same one (the two could never hold shares together).
fn newcomer_vault_number(
    config_path: &Path,
    me: &PublicKey,
    peers: &[(PublicKey, SocketAddr)],
) -> Result<u16, NodeError> {
    let number = bulwark_vault::newcomer_number(me.as_ref());
    if let Some((other, _)) = peers
        .iter()
        .find(|(key, _)| key != me && bulwark_vault::newcomer_number(key.as_ref()) == number)
    {
        return Err(invalid(
            config_path,
            format!(
                "this candidate's key and peer {}'s give the same vault number {number}: give this node another key",
                public_key_hex(other)
            ),
        ));
    }
    Ok(number)
}

/// Opens the vault backend the config chose (`docs/vault.md`) and its directory, so that a
/// token that is missing, a wrong PIN or a key that could leave the HSM stops the node at start.
/// `None` on a production node without `[vault]`.
fn check_vault_backend(
    config: &NodeConfig,
    keystore: &keystore::Keystore,
    member: u16,
) -> Result<Option<bulwark_vaultstore::VaultFiles<bulwark_vaultstore::Backend>>, NodeError> {
    use crate::node::config::VaultBackend;
    use bulwark_vaultstore::{Backend, Sealer as _, VaultFiles};
    let Some(backend) = config.vault_backend() else {
        info!("no [vault] section: this production node holds no vault key shares");
        return Ok(None);
    };
    let sealer = match backend {
        VaultBackend::Pkcs11 => {
            let section = config
                .vault
                .as_ref()
                .and_then(|v| v.pkcs11.as_ref())
                .expect("validated: backend = \"pkcs11\" has a [vault.pkcs11] section");
            let sealer = bulwark_vaultstore::pkcs11::Pkcs11Sealer::open(
                &bulwark_vaultstore::pkcs11::Pkcs11Config {
                    module: section.module.clone(),
                    token_label: section.token_label.clone(),
                    pin_file: section.pin_file.clone(),
                    key_label: section.key_label.clone(),
                },
            )
            .map_err(|e| NodeError::File {
                path: section.module.clone(),
                reason: format!("[vault] backend = \"pkcs11\": {e}"),
            })?;
            Backend::Pkcs11(Box::new(sealer))
        }
        VaultBackend::Tpm | VaultBackend::File => Backend::Keystore(
            keystore.vault_sealer(backend == VaultBackend::Tpm && config.keystore_sealed_by_tpm()),
        ),
    };
    let kind = sealer.kind();
    let files =
        VaultFiles::open(&config.data_dir, member, sealer).map_err(|e| NodeError::File {
            path: config.data_dir.join("vault"),
            reason: e.to_string(),
        })?;
    info!(backend = kind.name(), member, "vault backend ready");
    Ok(Some(files))
}

/// The node's p2p network: the tracker (`oracle`) and every channel, taken as they are used.
pub(super) struct P2p {
    pub(super) oracle: lookup::Oracle<PublicKey>,
    pub(super) consensus:
        Option<Channels<lookup::Sender<PublicKey, Context>, lookup::Receiver<PublicKey>>>,
    pub(super) dkg: Option<Channel>,
    pub(super) gossip: Option<Channel>,
    pub(super) oracle_channel: Option<Channel>,
    pub(super) vault: Option<Channel>,
    pub(super) signing: Option<Channel>,
    pub(super) deposits: Option<Channel>,
}

/// Step 2: the authenticated p2p network (fixed addresses, encrypted, only tracked peers may
/// connect) with every channel registered before it starts.
pub(super) fn start_p2p(context: &Context, prepared: &Prepared) -> P2p {
    let config = &prepared.config;
    let n = u32::try_from(prepared.peers.len()).unwrap_or(u32::MAX);
    let settings = super::p2p::P2pSettings {
        signer: prepared.key.clone(),
        listen: config.p2p_listen,
        loopback: config.loopback,
        members: NZUsize!(prepared.peers.len()),
        max_message_size: bulwark_consensus::committee::max_message_size(n),
    };
    let p2p_config = super::p2p::config(&settings, P2P_NAMESPACE);
    let (mut network, oracle) = lookup::Network::new(context.child("p2p"), p2p_config);
    let quota = Quota::per_second(NZU32!(10_000));
    let consensus = Channels {
        votes: network.register(CHANNEL_VOTES, quota),
        certificates: network.register(CHANNEL_CERTIFICATES, quota),
        resolver: network.register(CHANNEL_RESOLVER, quota),
        blocks: network.register(CHANNEL_BLOCKS, quota),
        requests: network.register(CHANNEL_REQUESTS, quota),
        // An honest member sends a peer at most a few reshare messages (dealing, ack, log,
        // echo per attempt) and one accusation per member and grounds each second.
        reshare: network.register(
            bulwark_consensus::epoch::CHANNEL_RESHARE,
            Quota::per_second(NZU32!(50)),
        ),
        accusations: network.register(
            bulwark_consensus::committee::CHANNEL_ACCUSATIONS,
            Quota::per_second(NZU32!(50)),
        ),
        // A follower asks one peer at a time, each at most every half second; the peer sends
        // up to 128 records back (one message each): 256 a second at most from an honest peer.
        catchup: network.register(
            bulwark_consensus::catchup::CHANNEL_CATCHUP,
            Quota::per_second(NZU32!(400)),
        ),
    };
    let dkg = network.register(CHANNEL_DKG, Quota::per_second(NZU32!(1_000)));
    let gossip = network.register(CHANNEL_GOSSIP, quota);
    let oracle_channel = network.register(CHANNEL_ORACLE, quota);
    // An honest member sends each peer a handful of vault key-generation frames a second.
    let vault = network.register(
        super::vault_keys::CHANNEL_VAULT,
        Quota::per_second(NZU32!(100)),
    );
    // A signing round is a handful of frames per member; the signing task drops a peer's frames
    // beyond 200 a second unread.
    let signing = network.register(
        super::vault_signing::CHANNEL_SIGNING,
        Quota::per_second(NZU32!(400)),
    );
    // An honest member sends each peer a few deposit attestations a second (resent every 5 s
    // until credited).
    let deposits = network.register(
        super::deposits::CHANNEL_DEPOSITS,
        Quota::per_second(NZU32!(300)),
    );
    network.start();
    info!(name = %config.name, key = %public_key_hex(&prepared.me), p2p = %config.p2p_listen, "p2p started");
    P2p {
        oracle,
        consensus: Some(consensus),
        dkg: Some(dkg),
        gossip: Some(gossip),
        oracle_channel: Some(oracle_channel),
        vault: Some(vault),
        signing: Some(signing),
        deposits: Some(deposits),
    }
}

/// Step 3: the state the node's tasks share.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) oracle_pool: Option<SharedPool>,
    pub(super) mempool: Mempool,
    pub(super) view: Arc<Mutex<bulwark_consensus::replica::CommittedView>>,
    pub(super) stats: SharedStats,
    pub(super) ledger: Ledger,
    /// Finalized blocks' receipts, for gateways.
    pub(super) receipts: Arc<super::receipts::ReceiptLog>,
    pub(super) refused: Arc<AtomicU64>,
    pub(super) evidence: EvidenceLog,
    pub(super) admission_status: attest::AdmissionStatus,
    pub(super) identity: Arc<Mutex<String>>,
    /// Each underlying's venue sources (null with the synthetic feed).
    pub(super) oracle_sources: Arc<Mutex<serde_json::Value>>,
    /// The sentinel: this node's accusations and the ones it holds.
    pub(super) sentinel: bulwark_consensus::sentinel_feed::SharedSentinel,
    /// Chain deposit attestations (this node's and its peers') and the certificates they made.
    pub(super) deposits: bulwark_consensus::deposit_feed::SharedDeposits,
    /// This node's newest signed audit report of its own machine (`[audit]`).
    pub(super) own_report: super::audit::OwnReport,
    /// Each peer's appraisal and audit report as this node saw them last.
    pub(super) fitness: super::audit::Fitness,
    /// The vault's keys and signed withdrawals as this node holds them.
    pub(super) vault: super::vault_signing::SharedStatus,
}

impl Shared {
    pub(super) fn new(prepared: &Prepared) -> Shared {
        let oracle_pool = prepared.oracle_config.enabled().then(|| {
            Arc::new(Mutex::new(OraclePool::new(
                prepared.oracle_config.clone(),
                prepared.underlyings.min(u16::MAX as usize) as u16,
            )))
        });
        Shared {
            oracle_pool,
            mempool: Mempool::new(MempoolConfig {
                verify_threads: prepared.config.verify_threads,
                ..MempoolConfig::default()
            }),
            view: Arc::new(Mutex::new(
                bulwark_consensus::replica::CommittedView::genesis(prepared.genesis.0.clone()),
            )),
            stats: Arc::new(Mutex::new(Default::default())),
            ledger: Arc::new(Mutex::new(Vec::new())),
            receipts: Arc::default(),
            refused: Arc::new(AtomicU64::new(0)),
            evidence: EvidenceLog::default(),
            admission_status: Arc::new(Mutex::new(None)),
            identity: Arc::new(Mutex::new(String::new())),
            oracle_sources: Arc::new(Mutex::new(serde_json::Value::Null)),
            // The node key signs accusations (the key the sentinel committee names).
            sentinel: Arc::new(Mutex::new(
                bulwark_consensus::sentinel_feed::SentinelFeed::new(
                    ed25519_dalek::SigningKey::from_bytes(&prepared.seed),
                ),
            )),
            deposits: Arc::new(Mutex::new(
                bulwark_consensus::deposit_feed::DepositFeed::new(&prepared.genesis.0),
            )),
            own_report: Arc::new(Mutex::new(None)),
            fitness: Arc::new(Mutex::new(Default::default())),
            vault: Arc::new(Mutex::new(Default::default())),
        }
    }
}

/// Step 4a: attested admission. With `[admission]`, only peers with a current affirming
/// appraisal are tracked (may connect); without it, every listed peer is, and the node says so.
pub(super) fn start_admission(
    prepared: &Prepared,
    shared: &Shared,
    oracle: &lookup::Oracle<PublicKey>,
) -> Result<Option<Arc<attest::Attestation>>, NodeError> {
    let config = &prepared.config;
    let Some(admission) = &config.admission else {
        warn!("attested admission is OFF: every listed peer may connect without evidence");
        let addresses: Map<PublicKey, Address> = prepared
            .peers
            .iter()
            .map(|(key, address)| (key.clone(), Address::Symmetric(*address)))
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| NodeError::Dkg("peer keys must be distinct".into()))?;
        let _ = oracle.clone().track(0, addresses);
        return Ok(None);
    };
    let attestation = Arc::new(attest::Attestation::new(
        config,
        admission,
        &prepared.me,
        prepared.tpm.clone(),
    )?);
    // Each other member: its admission name, p2p and client addresses, and (TPM mode) its
    // inventory EK.
    let mut others = Vec::new();
    let mut endorsement_keys = std::collections::BTreeMap::new();
    for (peer, (key, p2p)) in config
        .peers
        .iter()
        .zip(prepared.peers.iter())
        .filter(|(_, (key, _))| *key != prepared.me)
    {
        if admission.mode == super::config::AdmissionMode::Tpm {
            if let Some(ek) = peer.tpm_ek.as_deref().and_then(super::hex_decode) {
                endorsement_keys.insert(key.clone(), ek);
            }
        }
        if let Some(client) = peer.client_address {
            others.push((
                key.clone(),
                peer.data_center.clone() + "/" + &peer.public_key[..8],
                *p2p,
                client,
            ));
        }
    }
    attest::start(
        admission,
        (
            prepared.me.clone(),
            config.p2p_listen,
            ed25519_dalek::SigningKey::from_bytes(&prepared.seed),
            prepared.committee,
        ),
        others,
        endorsement_keys,
        oracle.clone(),
        shared.evidence.clone(),
        (
            shared.admission_status.clone(),
            shared.fitness.clone(),
            report_ttl_ms(config),
        ),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )?;
    Ok(Some(attestation))
}

/// How old a peer's audit report may be and still count (`[audit] report_ttl_ms`).
fn report_ttl_ms(config: &NodeConfig) -> u64 {
    config
        .audit
        .as_ref()
        .map_or(super::config::AuditConfig::DEFAULT_REPORT_TTL_MS, |a| {
            a.report_ttl_ms()
        })
}

/// Step 4c: the node's own configuration audit, if configured: its signed reports are what
/// peers read before they affirm it, and evidence against it when a check fails.
pub(super) fn start_audit(prepared: &Prepared, shared: &Shared) -> Result<(), NodeError> {
    match &prepared.config.audit {
        Some(audit) => super::audit::start_agent(audit, &prepared.seed, shared.own_report.clone()),
        None => {
            warn!("no [audit]: this node publishes no signed audit report, so no peer can affirm it for re-admission after a removal");
            Ok(())
        }
    }
}

/// The 32 bytes of a node key, as peer requests name it.
pub(crate) fn key_bytes(key: &PublicKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&key.encode()[..32]);
    out
}

/// The node's listening servers: the client endpoint and, when configured, the operator port.
/// Both stop when this is dropped.
pub(super) struct Endpoints {
    _client: ServerHandle,
    _operator: Option<bulwark_console::OperatorServer>,
}

/// Step 4b: the client endpoint and the operator port.
pub(super) fn start_endpoint(
    prepared: &Prepared,
    shared: &Shared,
    attestation: Option<Arc<attest::Attestation>>,
    gossip: mpsc::UnboundedSender<Vec<SignedTx>>,
) -> Result<Endpoints, NodeError> {
    let handler = endpoint::Endpoint {
        name: prepared.config.name.clone(),
        data_center: prepared.config.data_center.clone(),
        identity: shared.identity.clone(),
        attestation,
        admission: shared.admission_status.clone(),
        oracle_sources: shared.oracle_sources.clone(),
        mempool: shared.mempool.clone(),
        view: shared.view.clone(),
        stats: shared.stats.clone(),
        ledger: shared.ledger.clone(),
        receipts: shared.receipts.clone(),
        refused: shared.refused.clone(),
        evidence: shared.evidence.clone(),
        sentinel: shared.sentinel.clone(),
        gossip,
        own_report: shared.own_report.clone(),
        fitness: shared.fitness.clone(),
        vault: shared.vault.clone(),
        signing_key: ed25519_dalek::SigningKey::from_bytes(&prepared.seed),
        report_ttl_ms: report_ttl_ms(&prepared.config),
        operator_budget: Mutex::new(endpoint::OperatorBudget::new()),
    };
    // Only committee peers (and the listed candidates, on one shared budget), signed and
    // rate-bound, reach the TPM through the endpoint.
    let gate = super::peer_gate::PeerGate::new(
        key_bytes(&prepared.me),
        &prepared.committee,
        prepared.participants.iter().map(key_bytes),
    )
    .with_candidates(
        prepared
            .peers
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !prepared.participants.iter().any(|m| m == *key))
            .map(key_bytes),
    );
    let handler = Arc::new(handler);
    let server = Server::start_with_gate(
        prepared.config.client_listen,
        Limits::default(),
        handler.clone(),
        Some(gate),
    )
    .map_err(|e| NodeError::Endpoint(e.to_string()))?;
    info!(client = %server.local_addr(), "client endpoint listening");
    let operator = match &prepared.config.operator {
        Some(operator) => {
            let seats = prepared
                .config
                .peers
                .iter()
                .map(|peer| super::metrics::Seat {
                    key: peer.public_key.to_ascii_lowercase(),
                    // As `start_admission` names the peer.
                    admission_name: peer.data_center.clone() + "/" + &peer.public_key[..8],
                    data_center: peer.data_center.clone(),
                    candidate: peer.candidate,
                })
                .collect();
            let me = super::public_key_hex(&prepared.me);
            let pages = Arc::new(super::metrics::NodePages::new(handler, seats, me));
            let port = bulwark_console::OperatorServer::start(
                operator.listen,
                pages,
                bulwark_console::Limits::default(),
            )
            .map_err(|e| NodeError::Endpoint(format!("operator port {}: {e}", operator.listen)))?;
            info!(operator = %port.local_addr(), "operator port listening: the console page at / and /metrics (read-only)");
            Some(port)
        }
        None => {
            info!("no [operator] section: no operator port (metrics are not served)");
            None
        }
    };
    Ok(Endpoints {
        _client: server,
        _operator: operator,
    })
}

/// Step 5b: the committee's identity (group public key) into the status and `identity.hex`.
/// Without the genesis share (the committee reshared since), the identity is the one written at
/// genesis: a reshare never changes it.
pub(super) fn publish_identity(
    prepared: &Prepared,
    shared: &Shared,
    completed: Option<&Completed>,
) -> Result<(), NodeError> {
    let identity_path = prepared.config.data_dir.join(IDENTITY_FILE);
    let identity = match completed {
        Some(completed) => hex::encode(completed.polynomial().public().encode()),
        None => std::fs::read_to_string(&identity_path)
            .map_err(|e| NodeError::File {
                path: identity_path.clone(),
                reason: format!(
                    "the committee reshared (or this node is a candidate, which holds no genesis share), so the identity comes from this file: publish the venue's identity there ({e})"
                ),
            })?
            .trim()
            .to_string(),
    };
    *shared
        .identity
        .lock()
        .expect("the identity lock must not be poisoned") = identity.clone();
    std::fs::write(&identity_path, format!("{identity}\n")).map_err(|e| NodeError::File {
        path: identity_path.clone(),
        reason: e.to_string(),
    })?;
    info!(%identity, "committee identity (group public key)");
    Ok(())
}

/// Step 6: the member: replays the finalized log, then runs simplex and the replica.
pub(super) async fn start_consensus(
    context: &Context,
    prepared: &Prepared,
    shared: &Shared,
    p2p: &mut P2p,
) -> Result<Member, NodeError> {
    let config = &prepared.config;
    // The group key published in step 5: catch-up takes a peer's record only on a certificate
    // that verifies against it.
    let identity_hex = shared
        .identity
        .lock()
        .expect("the identity lock must not be poisoned")
        .clone();
    let identity = hex::decode(&identity_hex)
        .ok()
        .and_then(|bytes| bulwark_consensus::verify::Identity::decode(bytes).ok())
        .ok_or_else(|| NodeError::File {
            path: config.data_dir.join(IDENTITY_FILE),
            reason: "the committee identity is not a BLS12-381 G2 public key in hex".into(),
        })?;
    let shares = super::shares::SealedShares::new(
        &config.data_dir,
        prepared.keystore.clone(),
        prepared.committee,
        prepared.me.clone(),
    );
    let replica = ReplicaConfig {
        genesis: prepared.genesis.clone(),
        venue_epoch_ms: prepared.genesis_file.venue_epoch_ms,
        mempool: shared.mempool.clone(),
        ledger: shared.ledger.clone(),
        refused: shared.refused.clone(),
        block_txs_max: config.block_txs_max,
        verify_threads: config.verify_threads,
        mailbox_size: 1024,
        fault: Fault::None,
        oracle: shared.oracle_pool.clone(),
        sentinel: Some(shared.sentinel.clone()),
        deposits: Some(shared.deposits.clone()),
        stats: shared.stats.clone(),
        evidence: shared.evidence.clone(),
        participants: prepared.participants.iter().cloned().collect(),
        signer: prepared.key.clone(),
        shares: std::sync::Arc::new(std::sync::Mutex::new(shares)),
        epoch_partition: format!("{PARTITION}-epochs"),
        view: shared.view.clone(),
        log_partition: format!("{PARTITION}-finalized"),
        held_partition: format!("{PARTITION}-held"),
        snapshot_partition: format!("{PARTITION}-snapshots"),
        snapshot_every: config.snapshot_every,
        // Status needs the newest height only; the sim keeps every one.
        ledger_kept: 1_024,
        receipts: Some({
            let log = shared.receipts.clone();
            Arc::new(
                move |height: u64, receipts: &[bulwark_consensus::check::Receipt]| {
                    log.push(height, receipts)
                },
            )
        }),
        identity: Some(identity),
    };
    let member_config = MemberConfig {
        replica,
        partition_prefix: PARTITION.into(),
        timing: Timing::default(),
    };
    let channels = p2p
        .consensus
        .take()
        .expect("the consensus channels must be taken once");
    Ok(start_member(
        context.child("member"),
        member_config,
        p2p.oracle.clone(),
        channels,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node_config(data_dir: &Path, vault: &str, development: bool) -> NodeConfig {
        let text = format!(
            r#"
name = "n1"
data_center = "a"
key_file = "k"
data_dir = "{}"
genesis_file = "g"
p2p_listen = "127.0.0.1:1"
client_listen = "127.0.0.1:2"
development = {development}
peers = []
{vault}
"#,
            data_dir.display()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_node_opens_the_vault_backend_its_config_names_and_stops_on_a_bad_token() {
        let dir = std::env::temp_dir().join(format!("bulwark-node-vault-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        keystore::create_private_dir(&dir).unwrap();
        let keystore = keystore::Keystore::from_key([3; 32], keystore::Migration::Refuse);
        // Development default: the file backend, and the vault directory exists after.
        assert!(
            check_vault_backend(&node_config(&dir, "", true), &keystore, 0)
                .unwrap()
                .is_some()
        );
        assert!(dir.join("vault").is_dir());
        // Production without [vault]: no vault shares, nothing opened.
        assert!(
            check_vault_backend(&node_config(&dir, "", false), &keystore, 0)
                .unwrap()
                .is_none()
        );
        let Some(module) = bulwark_testkit::softhsm::module() else {
            println!(
                "SKIPPED: SoftHSM2 is not installed (apt-get install softhsm2); CI installs it"
            );
            return;
        };
        let hsm = bulwark_testkit::softhsm::SoftHsm::start().unwrap();
        let section = |token: &str| {
            format!(
                "[vault]\nbackend = \"pkcs11\"\n[vault.pkcs11]\nmodule = \"{}\"\ntoken_label = \"{token}\"\npin_file = \"{}\"\nkey_label = \"bulwark-vault\"\n",
                module.display(),
                hsm.pin_file.display()
            )
        };
        check_vault_backend(
            &node_config(&dir, &section(&hsm.token_label), false),
            &keystore,
            1,
        )
        .unwrap();
        let refused = match check_vault_backend(
            &node_config(&dir, &section("not-this-token"), false),
            &keystore,
            1,
        ) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("a token that does not exist must stop the node"),
        };
        assert!(refused.contains("no token labelled"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
