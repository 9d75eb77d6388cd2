//! Provisioning a DEVELOPMENT committee: keys, node configurations, the genesis, the
//! reference manifest the DEVELOPMENT operators sign, and (with `--tpm`) the software TPMs.

use crate::layout::*;
use crate::{CommitteeError, CommitteeOptions};
use bulwark_attest::evidence::AppMeasurements;
use bulwark_attestor::launch::{LaunchError, NodeTpm};
use bulwark_node::node::config::{
    hex_decode, read_hex32, AdmissionConfig, AdmissionMode, GenesisAccountEntry, GenesisFile,
    NodeConfig, Peer,
};
use bulwark_testkit::client_key;
use bulwark_testkit::swtpm::SoftwareTpm;
use ed25519_dalek::SigningKey;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// What each node's launch (or dev evidence) must measure: the binary running now, the
/// committee's genesis and the node's operator set. The binary is read once.
pub(crate) fn node_measurements(
    data: &Path,
    nodes: usize,
) -> Result<Vec<AppMeasurements>, CommitteeError> {
    let binary = std::env::current_exe()
        .and_then(std::fs::read)
        .map_err(CommitteeError::MeasureBinary)?;
    let genesis_path = committee_dir(data).join("genesis.json");
    let genesis = std::fs::read(&genesis_path).map_err(file_error(&genesis_path))?;
    (0..nodes)
        .map(|index| {
            let policy_path = node_dir(data, index).join("operators.json");
            let policy = std::fs::read(&policy_path).map_err(file_error(&policy_path))?;
            Ok(AppMeasurements::from_contents(&binary, &genesis, &policy))
        })
        .collect()
}

/// The error for the software TPM at `tcti`.
fn tpm_error(tcti: &str) -> impl FnOnce(LaunchError) -> CommitteeError + '_ {
    move |source| CommitteeError::Tpm {
        tcti: tcti.to_string(),
        source,
    }
}

/// Signs (as the DEVELOPMENT operators) a reference manifest that admits exactly the nodes'
/// `measured` binary, genesis and operator sets: with software TPMs, their boot PCRs (read now)
/// and the digests their launch logs may hold; otherwise each node's dev attestor.
pub(crate) fn write_manifest(
    data: &Path,
    measured: &[AppMeasurements],
    tpms: &[SoftwareTpm],
) -> Result<(), CommitteeError> {
    use bulwark_attest::hexbytes::HexBytes;
    use bulwark_attest::manifest::{DevReference, ReferenceManifest, SignedManifest};
    let dir = committee_dir(data);
    let secrets_path = dir.join(DEV_OPERATORS_FILE);
    let secrets = std::fs::read_to_string(&secrets_path).map_err(file_error(&secrets_path))?;
    let operators: Vec<SigningKey> = secrets
        .lines()
        .filter_map(|line| hex_decode(line.trim()).and_then(|b| <[u8; 32]>::try_from(b).ok()))
        .map(|s| SigningKey::from_bytes(&s))
        .collect();
    let mut signers = Vec::new();
    let mut measurements = Vec::new();
    for (index, node_measured) in measured.iter().enumerate() {
        if tpms.is_empty() {
            let attestor = node_dir(data, index).join("attestor.key");
            let secret = match read_hex32(&attestor) {
                Ok(secret) => secret,
                Err(source) => {
                    return Err(CommitteeError::KeyFile {
                        path: attestor,
                        source,
                    })
                }
            };
            signers.push(bulwark_attest::dev::DevAttestor::from_secret(&secret).public_key());
        }
        let value = HexBytes(node_measured.app_pcr_value());
        if !measurements.contains(&value) {
            measurements.push(value);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (tpm, dev) = if tpms.is_empty() {
        (
            None,
            Some(DevReference {
                allow_insecure_dev_evidence: true,
                signer_keys: signers,
                app_measurements: measurements,
            }),
        )
    } else {
        // Boot PCRs as each TPM holds them (swtpm without firmware: zeros).
        let mut pcrs: std::collections::BTreeMap<u8, Vec<HexBytes<32>>> = Default::default();
        for soft in tpms {
            let tcti = soft.tcti();
            let mut tpm = NodeTpm::open(&tcti).map_err(tpm_error(&tcti))?;
            let values = tpm.read_pcrs().map_err(tpm_error(&tcti))?;
            for index in bulwark_attest::tpm::BOOT_PCRS {
                if let Some(value) = values.get(&index) {
                    let allowed = pcrs.entry(index).or_default();
                    if !allowed.contains(&HexBytes(*value)) {
                        allowed.push(HexBytes(*value));
                    }
                }
            }
        }
        // The launch PCR is appraised by replaying each node's launch log against these lists.
        let launch = bulwark_attest::manifest::LaunchReference::allowing(measured);
        (
            Some(bulwark_attest::manifest::TpmReference { pcrs, launch }),
            None,
        )
    };
    let mut manifest = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: env!("CARGO_PKG_VERSION").into(),
        issued_at_ms: now.saturating_sub(60_000),
        expires_at_ms: now + 30 * 24 * 3_600_000,
        tpm,
        snp: None,
        tdx: None,
        dev,
    });
    for operator in operators.iter().take(2) {
        manifest.sign_with(operator);
    }
    write(
        &dir.join("manifest.json"),
        &serde_json::to_string_pretty(&manifest)?,
    )
}

/// Starts (manufacturing on first use) the persistent software TPM of each node, its state in
/// `node-*/tpm`, its EK certified by the committee's one software "manufacturer".
pub(crate) fn start_software_tpms(
    options: &CommitteeOptions,
) -> Result<Vec<SoftwareTpm>, CommitteeError> {
    eprintln!(
        "  starting {} software TPMs (swtpm; state in node-*/tpm, ports from {})",
        options.nodes,
        swtpm_port(options.base_port, 0)
    );
    (0..options.nodes)
        .map(|index| {
            let dir = node_dir(&options.data, index).join("tpm");
            create_private_dir(&dir)?;
            SoftwareTpm::start_persistent(
                &dir,
                swtpm_port(options.base_port, index),
                Some(&tpm_manufacturer_dir(&options.data)),
            )
            .map_err(|source| CommitteeError::StartTpm { index, source })
        })
        .collect()
}

/// The launch log `up`, as each node's launcher, keeps in the node's directory.
pub(crate) const LAUNCH_LOG: &str = "launch.log";

/// As the nodes' launcher: logs and extends each node's `measured` binary, genesis and operator
/// set into the launch PCR of its TPM, before the node starts.
pub(crate) fn measure_launches(
    data: &Path,
    measured: &[AppMeasurements],
    tpms: &[SoftwareTpm],
) -> Result<(), CommitteeError> {
    for (index, (soft, node_measured)) in tpms.iter().zip(measured).enumerate() {
        let log = node_dir(data, index).join(LAUNCH_LOG);
        NodeTpm::open(&soft.tcti())
            .and_then(|mut tpm| tpm.launch(&log, node_measured))
            .map_err(|source| CommitteeError::MeasureLaunch { index, source })?;
    }
    Ok(())
}

/// Creates a new committee; with `options.tpm`, also its software TPMs (returned running).
pub(crate) fn setup(options: &CommitteeOptions) -> Result<Vec<SoftwareTpm>, CommitteeError> {
    let dir = committee_dir(&options.data);
    if dir.exists() {
        let backup = dir.with_extension(format!(
            "bak-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        if let Err(source) = std::fs::rename(&dir, &backup) {
            return Err(CommitteeError::MoveAside { path: dir, source });
        }
        eprintln!("  previous committee kept in {}", backup.display());
    }
    create_private_dir(&dir)?;
    let tpms = if options.tpm {
        start_software_tpms(options)?
    } else {
        Vec::new()
    };
    let endorsement_keys = ek_inventory(&dir, &tpms)?;
    let (seeds, peers) = node_keys(options, &endorsement_keys)?;
    let (operators_json, operator_keys) = dev_operators(&dir)?;
    write_genesis(&dir, options, &peers, operator_keys)?;
    write(&dir.join(DEV_AUDIT_POLICY_FILE), DEV_AUDIT_POLICY)?;
    for (index, seed) in seeds.iter().enumerate() {
        write_node(options, index, seed, &peers, &tpms, &operators_json)?;
    }
    Ok(tpms)
}

/// The operators' EK inventory: each node's endorsement key and its manufacturer's
/// certificate (hex), read from its TPM now; the manufacturer's CA is written for every node
/// to trust.
fn ek_inventory(dir: &Path, tpms: &[SoftwareTpm]) -> Result<Vec<(String, String)>, CommitteeError> {
    let endorsement_keys: Vec<(String, String)> = tpms
        .iter()
        .map(|soft| {
            let tcti = soft.tcti();
            let mut tpm = NodeTpm::open(&tcti).map_err(tpm_error(&tcti))?;
            let ek = tpm.ek_public().map_err(tpm_error(&tcti))?;
            let certificate = tpm.ek_certificate().map_err(tpm_error(&tcti))?;
            Ok((hex::encode(&ek), hex::encode(&certificate)))
        })
        .collect::<Result<_, CommitteeError>>()?;
    if let Some(soft) = tpms.first() {
        write(&dir.join(EK_CA_FILE), &soft.ek_ca_pem()?)?;
    }
    Ok(endorsement_keys)
}

/// A fresh node key per member, and the peer list every node's configuration carries.
fn node_keys(
    options: &CommitteeOptions,
    endorsement_keys: &[(String, String)],
) -> Result<(Vec<[u8; 32]>, Vec<Peer>), CommitteeError> {
    let mut seeds = Vec::new();
    let mut peers = Vec::new();
    for index in 0..options.nodes + options.candidates {
        let seed: [u8; 32] = rand::random();
        use commonware_codec::DecodeExt as _;
        use commonware_cryptography::Signer as _;
        let key = commonware_cryptography::ed25519::PrivateKey::decode(seed.to_vec())
            .map_err(CommitteeError::NodeKey)?;
        peers.push(Peer {
            public_key: bulwark_node::node::public_key_hex(&key.public_key()),
            address: SocketAddr::from(([127, 0, 0, 1], options.base_port + index as u16)),
            data_center: format!("dc-{index}"),
            client_address: Some(SocketAddr::from((
                [127, 0, 0, 1],
                options.base_port + 100 + index as u16,
            ))),
            tpm_ek: endorsement_keys.get(index).map(|(ek, _)| ek.clone()),
            tpm_ek_cert: endorsement_keys.get(index).map(|(_, cert)| cert.clone()),
            candidate: index >= options.nodes,
        });
        seeds.push(seed);
    }
    Ok((seeds, peers))
}

/// The venue's genesis: funded DEVELOPMENT client accounts, the index, the oracle members.
fn write_genesis(
    dir: &Path,
    options: &CommitteeOptions,
    peers: &[Peer],
    operators: Vec<[u8; 32]>,
) -> Result<(), CommitteeError> {
    let venue_epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let genesis = GenesisFile {
        venue_epoch_ms,
        index_micros: INDEX_MICROS.to_vec(),
        accounts: (1..=MAKERS + TAKERS)
            .map(|account| GenesisAccountEntry {
                account,
                public_key: hex::encode(
                    client_key(options.seed, account).verifying_key().as_bytes(),
                ),
                deposit_micros: 10_000_000_000_000,
            })
            .collect(),
        // Every node observes the (DEVELOPMENT, synthetic) index and signs with its node key.
        oracle_members: peers
            .iter()
            .filter(|p| !p.candidate)
            .map(|p| p.public_key.clone())
            .collect(),
        // The sentinel's safe defaults (docs/sentinel.md), except that a removed member of a
        // local committee may come back (`bulwark admin readmit`) after 10 s instead of an hour.
        sentinel: Some(bulwark_sentinel::Policy {
            readmit_hold_ms: DEV_READMIT_HOLD_MS,
            ..bulwark_sentinel::Policy::default()
        }),
        // The DEVELOPMENT operators (2 of 3, the keys that sign the reference manifest) also
        // approve replacements (`bulwark admin approve`).
        operators: Some(bulwark_sentinel::Operators {
            keys: operators,
            quorum: 2,
        }),
    };
    let genesis_path = dir.join("genesis.json");
    write(&genesis_path, &serde_json::to_string_pretty(&genesis)?)?;
    Ok(())
}

/// How long after its conviction a removed member of a local committee may be re-admitted.
pub const DEV_READMIT_HOLD_MS: u64 = 10_000;
/// The DEVELOPMENT audit policy every node of a local committee runs, in the committee
/// directory.
pub const DEV_AUDIT_POLICY_FILE: &str = "devnet-node.yml";
/// How often a local committee's nodes audit themselves.
const DEV_AUDIT_INTERVAL_MS: u64 = 5_000;

/// The DEVELOPMENT audit policy: a local committee audits each node's own directory, not this
/// machine, so that `up` runs the audit agent, signed reports and affirmations end to end on a
/// developer's machine without failing its host checks. A production node runs
/// `committee-node.yml` (shipped with bulwark-audit) against `/`.
const DEV_AUDIT_POLICY: &str = r#"# DEVELOPMENT: written by `bulwark up`. A local committee audits each node's own directory,
# not this machine. A production node runs the committee-node baseline against /.
policy:
  id: "bulwark_devnet_node"
  file: "devnet-node.yml"
  name: "bulwark local committee node directory (DEVELOPMENT)"
  description: "What a node of a local committee keeps in its directory; not a host baseline."

checks:
  - id: 900900
    name: "The node runs with attested admission."
    condition: all
    rules:
      - 'f:/node.toml -> r:^\[admission\]'
  - id: 900901
    name: "The node's configuration lists its committee."
    condition: all
    rules:
      - 'f:/node.toml -> r:^\[\[peers\]\]'
  - id: 900902
    name: "The node's operator set is in place."
    condition: all
    rules:
      - 'f:/operators.json'
"#;

/// DEVELOPMENT operators: 3 keys, any 2 sign the reference manifest. Their secrets stay next
/// to the committee so that `up` can sign a manifest for the binary it runs. Returns the
/// operator set's JSON, which every node measures, and the operators' public keys.
fn dev_operators(dir: &Path) -> Result<(String, Vec<[u8; 32]>), CommitteeError> {
    let operator_secrets: Vec<[u8; 32]> = (0..3).map(|_| rand::random()).collect();
    write_secret(
        &dir.join(DEV_OPERATORS_FILE),
        &operator_secrets
            .iter()
            .map(|s| hex::encode(s) + "\n")
            .collect::<String>(),
    )?;
    let operators = bulwark_attest::manifest::OperatorSet::new(
        operator_secrets
            .iter()
            .map(|s| {
                bulwark_attest::hexbytes::HexBytes(
                    SigningKey::from_bytes(s).verifying_key().to_bytes(),
                )
            })
            .collect(),
        2,
    )?;
    let keys = operator_secrets
        .iter()
        .map(|s| SigningKey::from_bytes(s).verifying_key().to_bytes())
        .collect();
    Ok((serde_json::to_string_pretty(&operators)?, keys))
}

/// Node `index`'s directory: its key, attestor key (dev mode), operator set and `node.toml`.
fn write_node(
    options: &CommitteeOptions,
    index: usize,
    seed: &[u8; 32],
    peers: &[Peer],
    tpms: &[SoftwareTpm],
    operators_json: &str,
) -> Result<(), CommitteeError> {
    let node = node_dir(&options.data, index);
    create_private_dir(&node)?;
    write_secret(&node.join("node.key"), &format!("{}\n", hex::encode(seed)))?;
    write(
        &node.join(crate::launch::FIRST_START_MARKER),
        "the next start seals node.key\n",
    )?;
    if !options.tpm {
        let attestor: [u8; 32] = rand::random();
        write_secret(
            &node.join("attestor.key"),
            &format!("{}\n", hex::encode(attestor)),
        )?;
    }
    write(&node.join("operators.json"), operators_json)?;
    let config = NodeConfig {
        name: format!("node-{index}"),
        data_center: format!("dc-{index}"),
        key_file: "node.key".into(),
        data_dir: ".".into(),
        genesis_file: "../genesis.json".into(),
        p2p_listen: peers[index].address,
        client_listen: SocketAddr::from(([127, 0, 0, 1], options.base_port + 100 + index as u16)),
        loopback: true,
        block_txs_max: 2_048,
        verify_threads: 1,
        snapshot_every: 1_000,
        operator: Some(bulwark_node::node::config::OperatorConfig {
            listen: crate::layout::operator_address(options.base_port, index),
            allow_remote: false,
        }),
        peers: peers.to_vec(),
        oracle: options
            .oracle
            .iter()
            .map(|sources| bulwark_node::node::config::OracleSourceConfig {
                underlying: 0,
                sources: sources.clone(),
            })
            .collect(),
        admission: Some(AdmissionConfig {
            mode: if options.tpm {
                AdmissionMode::Tpm
            } else {
                AdmissionMode::Dev
            },
            tcti: tpms.get(index).map(SoftwareTpm::tcti),
            // `up` is the launcher: it measures each node into the launch PCR, and logs it,
            // before starting it.
            launch_log: options.tpm.then(|| LAUNCH_LOG.into()),
            interval_ms: options.admission_interval_ms,
            appraisal_ttl_ms: None,
            manifest_file: "../manifest.json".into(),
            operators_file: "operators.json".into(),
            attestor_key_file: (!options.tpm).then(|| "attestor.key".into()),
            ek_ca_file: options.tpm.then(|| Path::new("..").join(EK_CA_FILE)),
            tsm_dir: None,
            vcek_file: None,
            crl_file: None,
            collateral_file: None,
        }),
        // The vault's shares under the DEVELOPMENT file backend (the default of a development
        // node), which says so when the node starts.
        vault: None,
        // The node audits its own directory under the DEVELOPMENT policy (it says so).
        audit: Some(bulwark_node::node::config::AuditConfig {
            policies: vec![Path::new("..").join(DEV_AUDIT_POLICY_FILE)],
            manifest: None,
            root: ".".into(),
            interval_ms: DEV_AUDIT_INTERVAL_MS,
            commands_fixture: None,
            report_ttl_ms: None,
        }),
        // A committee on one machine, started by `up`: its development paths (the dev
        // attestor, the synthetic feed) are accepted, and say so when they run.
        development: true,
    };
    write(&node.join("node.toml"), &toml::to_string(&config)?)?;
    Ok(())
}
