//! The node's side of attested admission: its own evidence (a TPM quote, or the DEVELOPMENT
//! attestor's signature) and the loop that appraises its peers and admits or cuts them off in
//! the p2p network.
//!
//! With `mode = "tpm"` the node, before it reads any secret, checks that its launcher measured
//! it: the launch log replays to the launch PCR 15 of its TPM and its last launch is this
//! binary, genesis and operator set ([`measured_launch`]). Its keystore key is sealed to PCRs
//! 0–7 and to the launch PCR as honest launches leave it ([`open_keystore`]), so a node started
//! from a tampered binary cannot read its node key or its consensus share, and once a tampered
//! binary was launched not even the honest one can until the platform resets. A later change to
//! the genesis or operator files is logged and extended into the launch PCR before the next
//! quote, and peers refuse the event their manifest does not list.

use crate::client::{Client, ClientError, PeerKey};
use crate::node::config::{AdmissionConfig, AdmissionMode, NodeConfig};
use crate::node::keystore::{self, Keystore, Migration};
use crate::node::NodeError;
use bulwark_api::answers::PeerAdmission;
use bulwark_attest::dev::DevAttestor;
use bulwark_attest::evidence::{AppMeasurements, Evidence};
use bulwark_attest::hexbytes::Sha256Digest;
use bulwark_attest::launch::{EventKind, LaunchEvent};
use bulwark_attest::manifest::{OperatorSet, SignedManifest};
use bulwark_attest::nonce::node_key_hash;
use bulwark_attest::tpm::CredentialChallenge;
use bulwark_attestor::launch::{LaunchError, NodeTpm, SealedBlob};
use bulwark_consensus::admission::{Admission, AdmissionError, Change};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::replica::PublicKey;
use commonware_codec::Encode as _;
use commonware_p2p::{Address, AddressableManager};
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

/// Why this node cannot give a verifier its evidence or use its TPM for one
/// ([`Attestation`]), or cannot enroll a peer's attestation key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The genesis or operator-set file cannot be read to measure it.
    #[error(transparent)]
    Measure(NodeError),
    /// A thread panicked while it held the node's TPM; restart the node.
    #[error("the TPM lock is poisoned")]
    TpmPoisoned,
    /// The node's TPM refused or failed an operation (extend, quote, activation).
    #[error(transparent)]
    Tpm(#[from] LaunchError),
    /// The evidence cannot be encoded as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// A TPM operation was asked of a node that does not attest with a TPM.
    #[error("this node does not attest with a TPM (DEVELOPMENT attestor or a confidential VM)")]
    NotTpm,
    /// Enrollment: the peer's client endpoint did not answer, or refused.
    #[error(transparent)]
    Peer(#[from] ClientError),
    /// Enrollment: the peer's attestation key was not enrolled (see its admission reasons).
    #[error(transparent)]
    Enrollment(#[from] AdmissionError),
    /// The confidential VM's configfs-tsm did not give a report.
    #[error(transparent)]
    Tee(#[from] bulwark_attestor::tsm::TsmError),
}

/// `mode = "tpm"`: checks every listed member's `tpm_ek_cert` against the trusted EK CAs of
/// `ek_ca_file` (signed by one of them, valid now, certifying exactly its `tpm_ek`); returns
/// how many were checked. Without `ek_ca_file` the inventory's EKs are taken as they are, and
/// the node warns.
pub fn check_endorsement_certificates(
    config: &NodeConfig,
    admission: &AdmissionConfig,
) -> Result<usize, NodeError> {
    use crate::node::config::hex_decode;
    use bulwark_attest::tpm::{verify_ek_certificate, EkAnchors, TpmPublic};
    let Some(file) = &admission.ek_ca_file else {
        warn!("no [admission] ek_ca_file: the peers' EKs are trusted from the inventory alone, not checked against their TPM manufacturers' certificates");
        return Ok(0);
    };
    let text = String::from_utf8(read(file)?).map_err(|_| NodeError::File {
        path: file.clone(),
        reason: "not UTF-8 PEM".into(),
    })?;
    let anchors = EkAnchors::from_pem(&text).map_err(|e| NodeError::File {
        path: file.clone(),
        reason: e.to_string(),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for peer in &config.peers {
        let refuse = |reason: String| {
            NodeError::Attestation(format!(
                "peer {} in {}: {reason}",
                peer.public_key, peer.data_center
            ))
        };
        let ek = peer
            .tpm_ek
            .as_deref()
            .and_then(hex_decode)
            .ok_or_else(|| refuse("tpm_ek is missing or not hex".into()))?;
        let ek = TpmPublic::parse(&ek).map_err(|e| refuse(format!("tpm_ek: {e}")))?;
        let certificate = peer
            .tpm_ek_cert
            .as_deref()
            .and_then(hex_decode)
            .ok_or_else(|| refuse("tpm_ek_cert is missing or not hex".into()))?;
        let issuer = verify_ek_certificate(&certificate, &ek, &anchors, now)
            .map_err(|e| refuse(e.to_string()))?;
        info!(peer = %peer.public_key, %issuer, "EK certified by a trusted manufacturer CA");
    }
    Ok(config.peers.len())
}

fn read(path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The node's TPM after measured launch: the launch log (which replays to the launch PCR) and
/// what it measured last.
pub struct TpmLaunch {
    tpm: NodeTpm,
    measured: AppMeasurements,
    log_path: PathBuf,
    log: Vec<LaunchEvent>,
}

/// A TPM shared by the evidence producer and the endpoint.
pub type SharedTpm = Arc<Mutex<TpmLaunch>>;

fn measure_files(
    binary: &Path,
    config: &Path,
    policy: &Path,
) -> Result<AppMeasurements, NodeError> {
    Ok(AppMeasurements::from_contents(
        &read(binary)?,
        &read(config)?,
        &read(policy)?,
    ))
}

fn current_exe() -> Result<PathBuf, NodeError> {
    std::env::current_exe().map_err(|e| NodeError::File {
        path: "/proc/self/exe".into(),
        reason: e.to_string(),
    })
}

fn tpm_error(error: LaunchError) -> NodeError {
    NodeError::Attestation(error.to_string())
}

/// Measured launch (`mode = "tpm"`, or `"snp"`/`"tdx"` with a vTPM): opens the TPM and checks
/// what the launcher measured before
/// this node started: the launch log must replay to the launch PCR and its last launch must be
/// this binary, genesis and operator set. A node never measures itself (a tampered binary would
/// measure the honest digests), so without that measurement it refuses to start. `None` in
/// other modes.
pub fn measured_launch(config: &NodeConfig) -> Result<Option<SharedTpm>, NodeError> {
    // Mode "tpm", or "snp"/"tdx" with the VM's vTPM sealing the keystore.
    let Some(admission) = config.admission.as_ref().filter(|a| {
        a.mode == crate::node::config::AdmissionMode::Tpm
            || (a.tcti.is_some() && a.mode != crate::node::config::AdmissionMode::Dev)
    }) else {
        return Ok(None);
    };
    let tcti = admission.tcti.as_deref().unwrap_or_default();
    let log_path = admission
        .launch_log
        .clone()
        .ok_or_else(|| NodeError::Attestation("admission mode \"tpm\" needs launch_log".into()))?;
    let mut tpm = NodeTpm::open(tcti).map_err(tpm_error)?;
    let own = measure_files(
        &current_exe()?,
        &config.genesis_file,
        &admission.operators_file,
    )?;
    let log = tpm.current_log(&log_path).map_err(tpm_error)?;
    let measured = bulwark_attest::launch::check_shape(&log).map_err(|e| {
        NodeError::Attestation(format!(
            "{}: {e}. A TPM node starts only after its launcher measured it (`bulwark attest measure --log`)",
            log_path.display()
        ))
    })?;
    if measured != own {
        return Err(NodeError::Attestation(format!(
            "the launcher last measured binary {}, config {}, policy {}, but this node runs binary {}, config {}, policy {}: refusing to start (peers would refuse its quotes and its sealed secrets would not open); start it through its launcher",
            measured.binary, measured.config, measured.policy, own.binary, own.config, own.policy
        )));
    }
    info!(
        %tcti,
        launches = log.len() / 3,
        binary = %own.binary,
        config = %own.config,
        policy = %own.policy,
        "measured launch checked: the launch log replays to PCR {} and names this binary, genesis and operator set",
        bulwark_attest::launch::LAUNCH_PCR
    );
    Ok(Some(Arc::new(Mutex::new(TpmLaunch {
        tpm,
        measured,
        log_path,
        log,
    }))))
}

/// The keystore that protects the node key and the DKG share at rest: with a TPM, its key is
/// sealed in `keystore.sealed` to PCRs 0–7 and to the launch PCR as this launch and the next
/// few honest ones leave it (created on first start, sealed again at every start so the window
/// moves with the launches); otherwise the
/// DEVELOPMENT file keystore, which says so. Under the TPM a DEVELOPMENT key file is adopted
/// (sealed, then removed) only during the explicit migration: otherwise anyone who can write the
/// data directory could plant a key of their choosing and the secrets sealed under it.
pub fn open_keystore(
    data_dir: &Path,
    tpm: Option<&SharedTpm>,
    migration: Migration,
) -> Result<Keystore, NodeError> {
    let file_error = |path: &Path, reason: String| NodeError::File {
        path: path.to_path_buf(),
        reason,
    };
    let Some(tpm) = tpm else {
        warn!(
            "DEVELOPMENT keystore: secrets are encrypted under {} beside them, not sealed to a TPM (production refuses it; a SEV-SNP/TDX node seals with its vTPM)",
            keystore::KEY_FILE
        );
        return Keystore::open(data_dir, migration)
            .map_err(|e| file_error(data_dir, e.to_string()));
    };
    let mut guard = tpm.lock().expect("the TPM lock must not be poisoned");
    let launch = &mut *guard;
    let sealed_path = data_dir.join(keystore::SEALED_KEY_FILE);
    if sealed_path.exists() {
        let bytes = keystore::read_private(&sealed_path)
            .map_err(|e| file_error(&sealed_path, e.to_string()))?;
        let blob: SealedBlob = serde_json::from_slice(&bytes)
            .map_err(|e| file_error(&sealed_path, format!("not a sealed blob: {e}")))?;
        let key = launch.tpm.unseal(&blob).map_err(|e| {
            NodeError::Attestation(format!(
                "{}: {e}. Refusing to start: this binary, genesis or operator set is not the one the node's secrets were sealed under",
                sealed_path.display()
            ))
        })?;
        let key = <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| file_error(&sealed_path, "the unsealed key is not 32 bytes".into()))?;
        // Sealed again from this launch on, so the next launches open it too.
        let blob = launch
            .tpm
            .seal_for_launches(&key, &launch.log, &launch.measured)
            .map_err(tpm_error)?;
        let json = serde_json::to_vec_pretty(&blob)
            .map_err(|e| file_error(&sealed_path, e.to_string()))?;
        keystore::write_private(&sealed_path, &json)
            .map_err(|e| file_error(&sealed_path, e.to_string()))?;
        info!(
            launch = launch.log.len() / 3,
            ahead = bulwark_attestor::launch::SEAL_LAUNCHES_AHEAD,
            "keystore key unsealed by the TPM (PCRs 0-7 and the launch PCR hold an honest launch) and sealed again for the launches ahead"
        );
        return Ok(Keystore::from_key(key, migration));
    }
    // First start under the TPM: a fresh key (or, during the migration only, the development
    // key file), sealed.
    let plain = data_dir.join(keystore::KEY_FILE);
    let adopt = plain.exists();
    if adopt && migration == Migration::Refuse {
        return Err(file_error(
            &plain,
            format!(
                "a DEVELOPMENT keystore key lies in the data directory of a TPM node; it is adopted only by an explicit migration ({}), since anyone who can write this directory could have put it there",
                keystore::MIGRATE_FLAG
            ),
        ));
    }
    let key: [u8; 32] = if adopt {
        let bytes =
            keystore::read_private(&plain).map_err(|e| file_error(&plain, e.to_string()))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| file_error(&plain, "not a 32-byte key".into()))?
    } else {
        rand::random()
    };
    let blob = launch
        .tpm
        .seal_for_launches(&key, &launch.log, &launch.measured)
        .map_err(tpm_error)?;
    let json =
        serde_json::to_vec_pretty(&blob).map_err(|e| file_error(&sealed_path, e.to_string()))?;
    keystore::write_private(&sealed_path, &json)
        .map_err(|e| file_error(&sealed_path, e.to_string()))?;
    if adopt {
        std::fs::remove_file(&plain).map_err(|e| file_error(&plain, e.to_string()))?;
        warn!(
            file = %plain.display(),
            "MIGRATION: the DEVELOPMENT keystore key is now sealed to the TPM and its file removed"
        );
    }
    info!(
        file = %sealed_path.display(),
        "keystore key sealed to TPM PCRs 0-7 and the launch PCR (first start under the TPM)"
    );
    Ok(Keystore::from_key(key, migration))
}

/// What the keystore binds this committee's secrets to: a digest of every member's public key,
/// in a fixed order, so that a secret sealed for another committee does not open here.
pub fn committee_identity<'a>(members: impl IntoIterator<Item = &'a PublicKey>) -> [u8; 32] {
    let mut keys: Vec<Vec<u8>> = members.into_iter().map(|k| k.encode().to_vec()).collect();
    keys.sort();
    let mut hasher = blake3::Hasher::new_derive_key("bulwark keystore committee identity v1");
    for key in &keys {
        hasher.update(&(key.len() as u32).to_le_bytes());
        hasher.update(key);
    }
    *hasher.finalize().as_bytes()
}

/// The node's ed25519 seed, kept sealed by the keystore and bound to the committee.
pub fn load_node_seed(
    config: &NodeConfig,
    store: &Keystore,
    committee: &[u8; 32],
) -> Result<[u8; 32], NodeError> {
    let binding = keystore::Binding {
        role: keystore::NODE_KEY_ROLE,
        identity: committee,
    };
    let bytes = store
        .unseal(&config.key_file, &binding)
        .map_err(|e| NodeError::File {
            path: config.key_file.clone(),
            reason: e.to_string(),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| NodeError::File {
        path: config.key_file.clone(),
        reason: "not 64 hex characters".into(),
    })?;
    crate::node::config::parse_hex32(text.trim()).map_err(|e| NodeError::File {
        path: config.key_file.clone(),
        reason: e.to_string(),
    })
}

enum Producer {
    /// The DEVELOPMENT attestor, with the SHA-256 of the binary, taken once at launch.
    Dev {
        attestor: Box<DevAttestor>,
        binary: Sha256Digest,
    },
    /// The node's TPM, as its launcher measured it.
    Tpm(SharedTpm),
    /// The confidential VM's reports.
    Tee(bulwark_attestor::tsm::TeeSource),
}

/// This node's evidence producer.
pub struct Attestation {
    producer: Producer,
    key_hash: [u8; 32],
    config_file: PathBuf,
    policy_file: PathBuf,
}

impl Attestation {
    /// The node's evidence producer for its admission mode. The binary is measured once (by
    /// the launcher with a TPM, here for the DEVELOPMENT attestor); the configuration (genesis)
    /// and policy (operator set) files are measured again for every TPM or DEVELOPMENT
    /// evidence, so a change to them on a running node shows in its next evidence.
    pub fn new(
        config: &NodeConfig,
        admission: &AdmissionConfig,
        me: &PublicKey,
        tpm: Option<SharedTpm>,
    ) -> Result<Self, NodeError> {
        let producer = match admission.mode {
            AdmissionMode::Snp | AdmissionMode::Tdx => {
                let kind = if admission.mode == AdmissionMode::Snp {
                    bulwark_attestor::tsm::TeeKind::Snp
                } else {
                    bulwark_attestor::tsm::TeeKind::Tdx
                };
                info!(
                    provider = kind.provider(),
                    "attesting with the confidential VM's reports (configfs-tsm); the launch measurement covers what the VM booted"
                );
                Producer::Tee(bulwark_attestor::tsm::TeeSource::new(
                    kind,
                    admission
                        .tsm_dir
                        .clone()
                        .unwrap_or_else(|| bulwark_attestor::tsm::TSM_REPORT_DIR.into()),
                    admission.vcek_file.clone(),
                    admission.crl_file.clone(),
                    admission.collateral_file.clone(),
                ))
            }
            AdmissionMode::Tpm => Producer::Tpm(tpm.ok_or_else(|| {
                NodeError::Attestation("admission mode \"tpm\" without its measured launch".into())
            })?),
            AdmissionMode::Dev => {
                let Some(file) = &admission.attestor_key_file else {
                    return Err(NodeError::Attestation(
                        "admission mode \"dev\" needs attestor_key_file".into(),
                    ));
                };
                // Read from the very file the permission checks looked at.
                let file_error = |reason: String| NodeError::File {
                    path: file.clone(),
                    reason,
                };
                let bytes = keystore::read_private(file).map_err(|e| file_error(e.to_string()))?;
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| file_error("not 64 hex characters".into()))?;
                let secret = crate::node::config::parse_hex32(text)
                    .map_err(|e| file_error(e.to_string()))?;
                Producer::Dev {
                    attestor: Box::new(DevAttestor::from_secret(&secret)),
                    binary: AppMeasurements::from_contents(&read(&current_exe()?)?, &[], &[])
                        .binary,
                }
            }
        };
        Ok(Attestation {
            producer,
            key_hash: node_key_hash(&me.encode()),
            config_file: config.genesis_file.clone(),
            policy_file: admission.operators_file.clone(),
        })
    }

    /// The measurements as of now: `binary` as measured at launch, the configuration and
    /// policy files read again.
    fn measurements(&self, binary: Sha256Digest) -> Result<AppMeasurements, AttestationError> {
        let now = AppMeasurements::from_contents(
            &[],
            &read(&self.config_file).map_err(AttestationError::Measure)?,
            &read(&self.policy_file).map_err(AttestationError::Measure)?,
        );
        Ok(AppMeasurements {
            binary,
            config: now.config,
            policy: now.policy,
        })
    }

    /// Evidence over a verifier's nonce, JSON.
    pub fn evidence(&self, nonce: [u8; 32]) -> Result<Vec<u8>, AttestationError> {
        let evidence = match &self.producer {
            Producer::Dev { attestor, binary } => Evidence::DevInsecure(attestor.attest(
                &nonce,
                &self.key_hash,
                ADMISSION_EPOCH,
                self.measurements(*binary)?,
            )),
            Producer::Tpm(tpm) => {
                let mut guard = tpm.lock().map_err(|_| AttestationError::TpmPoisoned)?;
                let launch = &mut *guard;
                let measurements = self.measurements(launch.measured.binary)?;
                // A changed genesis or operator set is logged and extended into the launch PCR
                // (once per change) before the quote, so the quote shows it. What was measured
                // moves on only once the change is in the log and the PCR: if that fails, no
                // quote is given (the error says why) and the next one tries again.
                let mut changed = Vec::new();
                if measurements.config != launch.measured.config {
                    changed.push(LaunchEvent {
                        kind: EventKind::Config,
                        digest: measurements.config,
                    });
                }
                if measurements.policy != launch.measured.policy {
                    changed.push(LaunchEvent {
                        kind: EventKind::Policy,
                        digest: measurements.policy,
                    });
                }
                if !changed.is_empty() {
                    launch
                        .tpm
                        .extend_logged(&launch.log_path, &mut launch.log, &changed)?;
                    launch.measured.config = measurements.config;
                    launch.measured.policy = measurements.policy;
                    warn!(
                        digests = ?changed.iter().map(|e| e.digest.to_hex()).collect::<Vec<_>>(),
                        "measured configuration or policy changed: logged and extended into the launch PCR"
                    );
                }
                let qualifying =
                    bulwark_attest::nonce::qualifying_data(&nonce, &self.key_hash, ADMISSION_EPOCH);
                Evidence::Tpm2Quote(launch.tpm.evidence(
                    &qualifying,
                    self.key_hash,
                    ADMISSION_EPOCH,
                    &launch.log,
                )?)
            }
            Producer::Tee(source) => {
                let qualifying =
                    bulwark_attest::nonce::qualifying_data(&nonce, &self.key_hash, ADMISSION_EPOCH);
                let mut report_data = [0u8; 64];
                report_data[..32].copy_from_slice(&qualifying);
                source.evidence(&report_data)?
            }
        };
        Ok(serde_json::to_vec(&evidence)?)
    }

    /// The TPM attestation key's public area (TPM mode).
    pub fn attest_key(&self) -> Result<Vec<u8>, AttestationError> {
        match &self.producer {
            Producer::Tpm(tpm) => Ok(tpm
                .lock()
                .map_err(|_| AttestationError::TpmPoisoned)?
                .tpm
                .ak_public()?),
            Producer::Dev { .. } | Producer::Tee(_) => Err(AttestationError::NotTpm),
        }
    }

    /// Credential activation by the TPM (TPM mode).
    pub fn activate(
        &self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, AttestationError> {
        match &self.producer {
            Producer::Tpm(tpm) => {
                let challenge = CredentialChallenge {
                    credential_blob: credential_blob.to_vec(),
                    encrypted_secret: encrypted_secret.to_vec(),
                };
                let credential = tpm
                    .lock()
                    .map_err(|_| AttestationError::TpmPoisoned)?
                    .tpm
                    .activate(&challenge)?;
                Ok(credential.to_vec())
            }
            Producer::Dev { .. } | Producer::Tee(_) => Err(AttestationError::NotTpm),
        }
    }
}

/// Admission status per peer, for the node's status output.
pub type AdmissionStatus = Arc<Mutex<Option<BTreeMap<String, PeerAdmission>>>>;

/// Starts the admission loop on its own thread: every interval, each peer is challenged over
/// its client endpoint and appraised; the admitted set is tracked by the p2p network and a
/// contraindicated peer leaves the tracked set at once (until a fresh affirming appraisal) and is
/// recorded as evidence.
#[allow(clippy::too_many_arguments)]
pub fn start<O>(
    admission_config: &AdmissionConfig,
    me: (PublicKey, SocketAddr, PeerKey, [u8; 32]),
    peers: Vec<(PublicKey, String, SocketAddr, SocketAddr)>,
    endorsement_keys: BTreeMap<PublicKey, Vec<u8>>,
    mut oracle: O,
    evidence: EvidenceLog,
    (status, fitness, report_ttl_ms): (AdmissionStatus, crate::node::audit::Fitness, u64),
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, NodeError>
where
    O: AddressableManager<PublicKey = PublicKey> + Send + 'static,
{
    let (manifest, operators) = load_references(admission_config)?;
    let interval = Duration::from_millis(admission_config.interval_ms);
    let ttl = admission_config
        .appraisal_ttl_ms
        .unwrap_or(admission_config.interval_ms * 3);
    let verifier_key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let tpm_peers = endorsement_keys.len();
    let mut admission = Admission::new(
        verifier_key,
        operators,
        manifest,
        (ADMISSION_EPOCH, ttl),
        // Only a DEVELOPMENT node appraises DEVELOPMENT evidence (`NodeConfig::validate` allows
        // mode "dev" only with `development = true` and every address on loopback); a TPM node
        // refuses it whatever the manifest says.
        admission_config.mode == AdmissionMode::Dev,
        peers
            .iter()
            .map(|(key, name, _, _)| (key.clone(), name.clone(), key.encode().to_vec())),
    );
    for (key, ek) in endorsement_keys {
        admission = admission.with_endorsement_key(key, ek);
    }
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
        tpm_peers,
        "attested admission on ({})",
        if tpm_peers > 0 {
            "TPM quotes, AKs enrolled by credential activation"
        } else {
            "DEVELOPMENT attestor evidence"
        }
    );
    let handle = std::thread::Builder::new()
        .name("admission".into())
        .spawn(move || {
            let mut admitted = BTreeSet::new();
            let mut audits = PeerAudits {
                ttl_ms: report_ttl_ms,
                peers: BTreeMap::new(),
            };
            while !stop.load(Ordering::Relaxed) {
                let round_started = std::time::Instant::now();
                for (key, name, _, client_address) in &peers {
                    // Requests are signed for this peer of this committee only.
                    let target = bulwark_api::wire::peer_target(
                        &me.3,
                        &crate::node::startup::key_bytes(key),
                    );
                    if admission.needs_enrollment(key) {
                        let asking = (&me.2, &target);
                        if let Err(error) = enroll(&mut admission, key, *client_address, asking) {
                            tracing::debug!(peer = %name, %error, "attestation key not enrolled");
                            continue;
                        }
                        info!(peer = %name, "attestation key enrolled by credential activation");
                    }
                    let now = now_ms();
                    let Some(nonce) = admission.challenge(key, now, rand::random()) else {
                        continue;
                    };
                    let answer = Client::connect(*client_address, Duration::from_millis(300))
                        .and_then(|mut client| client.attest(&me.2, &target, nonce));
                    let changes = match answer {
                        Ok(bytes) => admission.evidence(key, &bytes, now_ms()),
                        Err(error) => {
                            tracing::debug!(peer = %name, %error, "no evidence from peer");
                            Vec::new()
                        }
                    };
                    apply(changes, &mut oracle, &mut admitted, &mut track, &names);
                    if admitted.contains(key) {
                        audits.read(key, name, *client_address, (&me.2, &target), &evidence);
                    } else {
                        // Out (down, cut off): its reports are read afresh when it is back,
                        // so a report that aged while it was away is not held against it.
                        audits.peers.remove(key);
                    }
                }
                audits.publish(&admission, &fitness);
                let before = admitted.clone();
                let changes = admission.tick(now_ms(), &admitted);
                apply(changes, &mut oracle, &mut admitted, &mut track, &names);
                let cut_off = admission.take_cut_off_evidence();
                for (peer, signed) in &cut_off {
                    if let Ok(json) = serde_json::to_string(signed) {
                        evidence.record(Kind::Contraindicated, peer, 0, json);
                    }
                }
                // Admitted a round ago, out now and not contraindicated: its appraisal lapsed
                // (it stopped answering challenges). Evidence for the sentinel.
                for peer in before.difference(&admitted) {
                    if !cut_off.iter().any(|(cut, _)| cut == peer) {
                        evidence.record(
                            Kind::AppraisalLapsed,
                            peer,
                            0,
                            "its appraisal ran out without fresh affirming evidence",
                        );
                    }
                }
                let snapshot = peer_admissions(&admission);
                *status
                    .lock()
                    .expect("the admission status lock must not be poisoned") = Some(snapshot);
                let spent = round_started.elapsed();
                if spent < interval {
                    std::thread::sleep(interval - spent);
                }
            }
        })
        .map_err(|e| NodeError::Dkg(format!("cannot start the admission thread: {e}")))?;
    Ok(handle)
}

/// The admission loop's reading of its peers' signed audit reports (issue #13): at most every
/// [`crate::node::audit::AUDIT_FETCH_MS`] per admitted peer. A report older than the newest
/// one read from that peer is refused (a replay); a failed one that is not stale is recorded as
/// `audit_failed` evidence, at most once per
/// [`crate::node::audit::AUDIT_EVIDENCE_EVERY_MS`] per peer.
struct PeerAudits {
    /// How old a report may be and still be evidence.
    ttl_ms: u64,
    peers: BTreeMap<PublicKey, PeerAuditState>,
}

/// One peer's reports as the admission loop read them.
#[derive(Default)]
struct PeerAuditState {
    /// When it was last read (ms).
    read_at: u64,
    /// Its newest report.
    audit: Option<crate::node::audit::PeerAudit>,
    /// Why the last read failed.
    error: Option<String>,
    /// When a failed report of it was last recorded as evidence (ms).
    recorded_at: Option<u64>,
}

impl PeerAudits {
    /// Reads `peer`'s newest report over its client endpoint, if due, and records what it
    /// shows as evidence.
    fn read(
        &mut self,
        peer: &PublicKey,
        name: &str,
        address: SocketAddr,
        (key, target): (&PeerKey, &[u8; 32]),
        evidence: &EvidenceLog,
    ) {
        let now = now_ms();
        let entry = self.peers.entry(peer.clone()).or_default();
        if entry.read_at != 0
            && now.saturating_sub(entry.read_at) < crate::node::audit::AUDIT_FETCH_MS
        {
            return;
        }
        entry.read_at = now;
        let fetched = Client::connect(address, Duration::from_millis(300))
            .and_then(|mut client| client.audit_report(key, target))
            .map_err(|error| error.to_string());
        if let Err(error) = &fetched {
            tracing::debug!(peer = %name, %error, "no audit report from peer");
        }
        for detail in self.observe(peer, fetched, now) {
            evidence.record(Kind::AuditFailed, peer, 0, detail);
        }
    }

    /// What a read of `peer`'s report (`fetched`: the served bytes, or why none) at `now`
    /// shows: the details of the `audit_failed` records to make. A report older than the newest
    /// already read is refused (a replay); a failed one that is not stale is evidence, and so
    /// is a newest report that went stale; at most one record per peer per
    /// [`crate::node::audit::AUDIT_EVIDENCE_EVERY_MS`].
    fn observe(
        &mut self,
        peer: &PublicKey,
        fetched: Result<Vec<u8>, String>,
        now: u64,
    ) -> Vec<String> {
        use crate::node::audit::{
            failed_report_detail, read_peer_report, stale_report_detail, ReportRefusal,
            AUDIT_EVIDENCE_EVERY_MS,
        };
        let ttl_ms = self.ttl_ms;
        let entry = self.peers.entry(peer.clone()).or_default();
        let mut records = Vec::new();
        let due = |entry: &PeerAuditState| {
            entry
                .recorded_at
                .is_none_or(|at| now.saturating_sub(at) >= AUDIT_EVIDENCE_EVERY_MS)
        };
        match fetched {
            Err(error) => entry.error = Some(error),
            Ok(bytes) => {
                let peer_key = crate::node::startup::key_bytes(peer);
                let read =
                    read_peer_report(&bytes, &peer_key, now).and_then(|audit| match &entry.audit {
                        Some(old) if audit.generated_at_ms < old.generated_at_ms => {
                            Err(ReportRefusal::Older)
                        }
                        _ => Ok(audit),
                    });
                match read {
                    Ok(audit) => {
                        let newer = entry
                            .audit
                            .as_ref()
                            .is_none_or(|old| old.digest != audit.digest);
                        let fresh = now.saturating_sub(audit.generated_at_ms) <= ttl_ms;
                        if newer && fresh && due(entry) && !audit.clean() {
                            records.push(failed_report_detail(&audit, &bytes));
                            entry.recorded_at = Some(now);
                        }
                        entry.audit = Some(audit);
                        entry.error = None;
                    }
                    Err(error) => {
                        warn!(%error, "a peer's audit report does not check");
                        entry.error = Some(error.to_string());
                    }
                }
            }
        }
        // A peer that published reports and stopped (its agent died, or it serves an old one)
        // while its appraisal stays fresh: its newest report going stale is evidence too. A peer
        // that never published one is not accused (it may run without `[audit]`); it is only
        // never affirmed.
        if let Some(audit) = &entry.audit {
            let age_ms = now.saturating_sub(audit.generated_at_ms);
            if age_ms > ttl_ms && due(entry) {
                records.push(stale_report_detail(audit, age_ms));
                entry.recorded_at = Some(now);
            }
        }
        records
    }

    /// Each peer's appraisal (from `admission`) and audit report, for affirmations.
    fn publish(&self, admission: &Admission<PublicKey>, fitness: &crate::node::audit::Fitness) {
        let mut out = BTreeMap::new();
        for (key, _, state) in admission.states() {
            let audit = self.peers.get(key);
            out.insert(
                crate::node::startup::key_bytes(key),
                crate::node::audit::PeerFitness {
                    appraisal: state.affirming,
                    audit: audit.and_then(|state| state.audit.clone()),
                    audit_error: audit.and_then(|state| state.error.clone()),
                },
            );
        }
        *fitness
            .lock()
            .expect("the fitness lock must not be poisoned") = out;
    }
}

/// How this node sees each peer's admission now, for its status.
fn peer_admissions(admission: &Admission<PublicKey>) -> BTreeMap<String, PeerAdmission> {
    admission
        .states()
        .map(|(_, name, state)| {
            (
                name.to_string(),
                PeerAdmission {
                    admitted: state.admitted_until.is_some_and(|u| u > now_ms()) && !state.cut_off,
                    status: state.last_status.map(|s| format!("{s:?}").to_lowercase()),
                    reasons: state.last_reasons.clone(),
                    cut_off: state.cut_off,
                    cut_off_at_ms: state.cut_off_at,
                    appraisals: state.appraisals,
                    last_appraisal_at_ms: state.last_appraisal_at,
                    ak_enrolled: state.ak_enrolled,
                },
            )
        })
        .collect()
}

/// Reads the signed reference manifest and the operator set the node appraises against.
fn load_references(
    admission_config: &AdmissionConfig,
) -> Result<(SignedManifest, OperatorSet), NodeError> {
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
    Ok((manifest, operators))
}

/// Enrolls `peer`'s attestation key: asks for it, wraps a credential to the peer's inventory
/// EK, and checks the peer's TPM recovers it.
fn enroll(
    admission: &mut Admission<PublicKey>,
    peer: &PublicKey,
    address: SocketAddr,
    (key, target): (&PeerKey, &[u8; 32]),
) -> Result<(), AttestationError> {
    let mut client = Client::connect(address, Duration::from_millis(300))?;
    let ak = client.attest_key(key, target)?;
    let challenge = admission.begin_enrollment(peer, &ak, now_ms(), &mut rand_core_06::OsRng)?;
    let credential = client.activate(
        key,
        target,
        challenge.credential_blob,
        challenge.encrypted_secret,
    )?;
    admission.finish_enrollment(peer, &credential, now_ms())?;
    Ok(())
}

fn apply<O>(
    changes: Vec<Change<PublicKey>>,
    oracle: &mut O,
    admitted: &mut BTreeSet<PublicKey>,
    track: &mut impl FnMut(&mut O, &BTreeSet<PublicKey>),
    names: &BTreeMap<PublicKey, String>,
) {
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
            // Out of the tracked set (the `Track` change that comes with it tore the connection
            // down), and out until a fresh affirming appraisal: no p2p block, which would outlast
            // the readmission.
            Change::Block(peer) => {
                warn!(peer = %names.get(&peer).map_or("?", String::as_str), "contraindicated appraisal: peer cut off until a fresh affirming appraisal");
            }
        }
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::node::audit::tests::report;
    use bulwark_audit::report::Outcome;
    use commonware_cryptography::Signer as _;

    const NOW: u64 = 1_800_000_000_000;

    /// What the admission loop records of a peer's reports: a failed one at most once a
    /// minute, however often it changes; no replay of an older report; a stale newest report;
    /// nothing against a peer that never published one.
    #[test]
    fn a_peers_failed_or_stale_reports_are_evidence_at_a_bounded_rate() {
        use commonware_codec::DecodeExt as _;
        let seed = [5u8; 32];
        let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
        let peer = commonware_cryptography::ed25519::PrivateKey::decode(seed.to_vec())
            .unwrap()
            .public_key();
        let ttl = 60_000;
        let mut audits = PeerAudits {
            ttl_ms: ttl,
            peers: BTreeMap::new(),
        };
        let failed = |at: u64| Ok(report(&signer, at, Outcome::Failed));
        let clean = |at: u64| Ok(report(&signer, at, Outcome::Passed));
        // Never published (no [audit], or not reachable): nothing, however long.
        for k in 0..5 {
            let at = NOW + k * 100_000;
            assert!(audits.observe(&peer, Err("refused".into()), at).is_empty());
        }
        // A failed report: one record; every new failing report within the minute: none.
        assert_eq!(audits.observe(&peer, failed(NOW), NOW).len(), 1);
        for k in 1..12 {
            let at = NOW + k * 5_000;
            assert!(audits.observe(&peer, failed(at), at).is_empty(), "{k}");
        }
        let at = NOW + 60_000;
        assert_eq!(audits.observe(&peer, failed(at), at).len(), 1);
        // An older report (a replay) is refused and changes nothing.
        assert!(audits.observe(&peer, clean(NOW), at + 1).is_empty());
        assert!(!audits.peers[&peer].audit.as_ref().unwrap().clean());
        // Clean again: nothing. Then it stops publishing (it serves the same report): once
        // that report is older than the TTL, one record a minute.
        let at = at + 61_000;
        assert!(audits.observe(&peer, clean(at), at).is_empty());
        assert!(audits.observe(&peer, clean(at), at + ttl).is_empty());
        let stale = audits.observe(&peer, clean(at), at + ttl + 1);
        assert_eq!(stale.len(), 1);
        assert!(stale[0].contains("\"stale\":true"), "{}", stale[0]);
        assert!(audits
            .observe(&peer, Err("gone".into()), at + ttl + 30_000)
            .is_empty());
        assert_eq!(
            audits
                .observe(&peer, Err("gone".into()), at + ttl + 61_001)
                .len(),
            1
        );
        // A failed report already stale when read is not evidence of a failure.
        let mut fresh_eyes = PeerAudits {
            ttl_ms: ttl,
            peers: BTreeMap::new(),
        };
        let records = fresh_eyes.observe(&peer, failed(NOW), NOW + ttl + 1);
        assert_eq!(records.len(), 1);
        assert!(records[0].contains("\"stale\":true"));
    }
}
