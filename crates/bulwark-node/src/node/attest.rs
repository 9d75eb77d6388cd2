//! The node's side of attested admission: its own evidence (DEVELOPMENT attestor) and the
//! loop that appraises its peers and admits or cuts them off in the p2p network.

use crate::admission::{Admission, Change};
use crate::client::Client;
use crate::evidence::{EvidenceLog, Kind};
use crate::node::config::{AdmissionConfig, NodeConfig};
use crate::node::NodeError;
use crate::replica::PublicKey;
use bulwark_attest::dev::DevAttestor;
use bulwark_attest::evidence::{AppMeasurements, Evidence};
use bulwark_attest::manifest::{OperatorSet, SignedManifest};
use bulwark_attest::nonce::node_key_hash;
use commonware_codec::Encode as _;
use commonware_p2p::{Address, AddressableManager, Blocker};
use commonware_utils::ordered::Map;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// The epoch bound into evidence (one genesis committee; resharing will advance it).
pub const ADMISSION_EPOCH: u64 = 0;

fn read(path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// This node's evidence producer.
pub struct Attestation {
    attestor: DevAttestor,
    key_hash: [u8; 32],
    binary: AppMeasurements,
    config_file: PathBuf,
    policy_file: PathBuf,
}

impl Attestation {
    /// Measures the running binary once (the launch measurement); the configuration (genesis)
    /// and policy (operator set) files are measured again for every piece of evidence, so a
    /// change to them on a running node shows in its next evidence.
    pub fn new(
        config: &NodeConfig,
        admission: &AdmissionConfig,
        me: &PublicKey,
    ) -> Result<Self, NodeError> {
        let secret = crate::node::load_seed(&admission.attestor_key_file)?;
        let exe = std::env::current_exe().map_err(|e| NodeError::File {
            path: "/proc/self/exe".into(),
            reason: e.to_string(),
        })?;
        let binary = AppMeasurements::from_contents(&read(&exe)?, &[], &[]);
        Ok(Attestation {
            attestor: DevAttestor::from_secret(&secret),
            key_hash: node_key_hash(&me.encode()),
            binary,
            config_file: config.genesis_file.clone(),
            policy_file: admission.operators_file.clone(),
        })
    }

    /// The measurements as of now.
    pub fn measurements(&self) -> Result<AppMeasurements, NodeError> {
        let now = AppMeasurements::from_contents(
            &[],
            &read(&self.config_file)?,
            &read(&self.policy_file)?,
        );
        Ok(AppMeasurements {
            binary: self.binary.binary,
            config: now.config,
            policy: now.policy,
        })
    }

    /// Evidence over a verifier's nonce, JSON.
    pub fn evidence(&self, nonce: [u8; 32]) -> Result<Vec<u8>, String> {
        let measurements = self.measurements().map_err(|e| e.to_string())?;
        let evidence = self
            .attestor
            .attest(&nonce, &self.key_hash, ADMISSION_EPOCH, measurements);
        serde_json::to_vec(&Evidence::DevInsecure(evidence)).map_err(|e| e.to_string())
    }
}

/// Admission status per peer, for the node's status output.
pub type AdmissionStatus = Arc<Mutex<serde_json::Value>>;

/// Starts the admission loop on its own thread: every interval, each peer is challenged over
/// its client endpoint and appraised; the admitted set is tracked by the p2p network and a
/// contraindicated peer is blocked at once and recorded as evidence.
#[allow(clippy::too_many_arguments)]
pub fn start<O>(
    admission_config: &AdmissionConfig,
    me: (PublicKey, SocketAddr),
    peers: Vec<(PublicKey, String, SocketAddr, SocketAddr)>,
    mut oracle: O,
    evidence: EvidenceLog,
    status: AdmissionStatus,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, NodeError>
where
    O: AddressableManager<PublicKey = PublicKey> + Blocker<PublicKey = PublicKey> + Send + 'static,
{
    let manifest: SignedManifest = serde_json::from_slice(&read(&admission_config.manifest_file)?)
        .map_err(|e| NodeError::File {
            path: admission_config.manifest_file.clone(),
            reason: format!("not a signed manifest: {e}"),
        })?;
    let operators: OperatorSet = serde_json::from_slice(&read(&admission_config.operators_file)?)
        .map_err(|e| NodeError::File {
        path: admission_config.operators_file.clone(),
        reason: format!("not an operator set: {e}"),
    })?;
    let interval = Duration::from_millis(admission_config.interval_ms);
    let ttl = admission_config
        .appraisal_ttl_ms
        .unwrap_or(admission_config.interval_ms * 3);
    let verifier_key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let mut admission = Admission::new(
        verifier_key,
        operators,
        manifest,
        ADMISSION_EPOCH,
        ttl,
        peers
            .iter()
            .map(|(key, name, _, _)| (key.clone(), name.clone(), key.encode().to_vec())),
    );
    let addresses: BTreeMap<PublicKey, (SocketAddr, SocketAddr)> = peers
        .iter()
        .map(|(key, _, p2p, client)| (key.clone(), (*p2p, *client)))
        .collect();
    let names: BTreeMap<PublicKey, String> = peers
        .iter()
        .map(|(key, name, _, _)| (key.clone(), name.clone()))
        .collect();
    let mut set_id = 1u64;
    let mut track = move |oracle: &mut O, admitted: &BTreeSet<PublicKey>| {
        let mut entries = vec![(me.0.clone(), Address::Symmetric(me.1))];
        entries.extend(admitted.iter().filter_map(|key| {
            addresses
                .get(key)
                .map(|(p2p, _)| (key.clone(), Address::Symmetric(*p2p)))
        }));
        if let Ok(map) = Map::try_from(entries) {
            let _ = oracle.track(set_id, map);
            set_id += 1;
        }
    };
    // Until a peer is appraised, only this node is tracked: nobody unappraised connects.
    track(&mut oracle, &BTreeSet::new());
    info!(
        interval_ms = admission_config.interval_ms,
        appraisal_ttl_ms = ttl,
        "attested admission on (DEVELOPMENT attestor evidence)"
    );
    let handle = std::thread::Builder::new()
        .name("admission".into())
        .spawn(move || {
            let mut admitted = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let round_started = std::time::Instant::now();
                for (key, name, _, client_address) in &peers {
                    let now = now_ms();
                    let Some(nonce) = admission.challenge(key, now, rand::random()) else {
                        continue;
                    };
                    let answer = Client::connect(*client_address, Duration::from_millis(300))
                        .and_then(|mut client| client.attest(nonce));
                    let changes = match answer {
                        Ok(bytes) => admission.evidence(key, &bytes, now_ms()),
                        Err(error) => {
                            tracing::debug!(peer = %name, %error, "no evidence from peer");
                            Vec::new()
                        }
                    };
                    apply(changes, &mut oracle, &mut admitted, &mut track, &names);
                }
                let changes = admission.tick(now_ms(), &admitted);
                apply(changes, &mut oracle, &mut admitted, &mut track, &names);
                for (peer, signed) in admission.take_cut_off_evidence() {
                    if let Ok(json) = serde_json::to_string(&signed) {
                        evidence.record(Kind::Contraindicated, &peer, 0, json);
                    }
                }
                let snapshot: serde_json::Map<String, serde_json::Value> = admission
                    .states()
                    .map(|(_, name, state)| {
                        (
                            name.to_string(),
                            serde_json::json!({
                                "admitted": state.admitted_until.is_some_and(|u| u > now_ms()) && !state.cut_off,
                                "status": state.last_status.map(|s| format!("{s:?}").to_lowercase()),
                                "reasons": state.last_reasons,
                                "cut_off": state.cut_off,
                                "cut_off_at_ms": state.cut_off_at,
                                "appraisals": state.appraisals,
                            }),
                        )
                    })
                    .collect();
                *status.lock().expect("the admission status lock must not be poisoned") =
                    serde_json::Value::Object(snapshot);
                let spent = round_started.elapsed();
                if spent < interval {
                    std::thread::sleep(interval - spent);
                }
            }
        })
        .map_err(|e| NodeError::Dkg(format!("cannot start the admission thread: {e}")))?;
    Ok(handle)
}

fn apply<O>(
    changes: Vec<Change<PublicKey>>,
    oracle: &mut O,
    admitted: &mut BTreeSet<PublicKey>,
    track: &mut impl FnMut(&mut O, &BTreeSet<PublicKey>),
    names: &BTreeMap<PublicKey, String>,
) where
    O: Blocker<PublicKey = PublicKey>,
{
    for change in changes {
        match change {
            Change::Track(set) => {
                let joined: Vec<&String> = set
                    .difference(admitted)
                    .filter_map(|k| names.get(k))
                    .collect();
                let left: Vec<&String> = admitted
                    .difference(&set)
                    .filter_map(|k| names.get(k))
                    .collect();
                if !joined.is_empty() || !left.is_empty() {
                    info!(?joined, ?left, "admitted peers changed");
                }
                *admitted = set;
                track(oracle, admitted);
            }
            Change::Block(peer) => {
                warn!(peer = %names.get(&peer).map_or("?", String::as_str), "contraindicated appraisal: peer cut off");
                let _ = oracle.block(peer);
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
