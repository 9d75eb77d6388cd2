//! `bulwark up` (the committee on loopback), `bulwark node`, `bulwark client`,
//! `bulwark verify` and `bulwark bench committee`.
//!
//! `up` writes one configuration per node under `<data>/committee/node-<i>/` (key, TOML),
//! a shared genesis with DEVELOPMENT client keys derived from the seed, starts one
//! `bulwark node` process per member, waits for the genesis DKG, then runs a load generator
//! of market makers and takers against the nodes and prints a status line every second.

use crate::bench::report::emit;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{
    LimitOrder, SelfTradePrevention, StopDirection, StopOrder, TimeInForce,
};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use bulwark_node::client::Client;
use bulwark_node::node::config::{
    hex_decode, hex_encode, read_hex32, AdmissionConfig, GenesisAccountEntry, GenesisFile,
    NodeConfig, Peer,
};
use bulwark_node::node::{IDENTITY_FILE, STORAGE_DIR};

use bulwark_attest::evidence::AppMeasurements;
use bulwark_attest::swtpm::SoftwareTpm;
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// DEVELOPMENT operator secrets (one hex key per line) that sign the reference manifest.
const DEV_OPERATORS_FILE: &str = "dev-operators.secret";
/// The CA certificate that certified the software TPMs' EKs, trusted by every node (`--tpm`).
const EK_CA_FILE: &str = "ek-ca.pem";

/// What each node's PCR 23 (or dev evidence) must hold: the binary running now, the
/// committee's genesis and the node's operator set. The binary is read once.
fn node_measurements(data: &Path, nodes: usize) -> Result<Vec<AppMeasurements>, String> {
    let binary = std::env::current_exe()
        .and_then(std::fs::read)
        .map_err(|e| format!("cannot measure this binary: {e}"))?;
    let genesis =
        std::fs::read(committee_dir(data).join("genesis.json")).map_err(|e| e.to_string())?;
    (0..nodes)
        .map(|index| {
            let policy = std::fs::read(node_dir(data, index).join("operators.json"))
                .map_err(|e| e.to_string())?;
            Ok(AppMeasurements::from_contents(&binary, &genesis, &policy))
        })
        .collect()
}

/// Signs (as the DEVELOPMENT operators) a reference manifest that admits exactly the nodes'
/// `measured` binary, genesis and operator sets: with software TPMs, their boot PCRs (read now)
/// and PCR 23 after measured launch; otherwise each node's dev attestor.
fn write_manifest(
    data: &Path,
    measured: &[AppMeasurements],
    tpms: &[SoftwareTpm],
) -> Result<(), String> {
    use bulwark_attest::hexbytes::HexBytes;
    use bulwark_attest::manifest::{DevReference, ReferenceManifest, SignedManifest};
    let dir = committee_dir(data);
    let secrets = std::fs::read_to_string(dir.join(DEV_OPERATORS_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(DEV_OPERATORS_FILE).display()))?;
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
            let secret =
                read_hex32(&attestor).map_err(|e| format!("{}: {e}", attestor.display()))?;
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
        // Boot PCRs as each TPM holds them (swtpm without firmware: zeros), PCR 23 as measured
        // launch leaves it.
        let mut pcrs: std::collections::BTreeMap<u8, Vec<HexBytes<32>>> = Default::default();
        for soft in tpms {
            let mut tpm = bulwark_attest::launch::NodeTpm::open(&soft.tcti())
                .map_err(|e| format!("software TPM {}: {e}", soft.tcti()))?;
            let values = tpm.read_pcrs().map_err(|e| e.to_string())?;
            for index in bulwark_attest::tpm::BOOT_PCRS {
                if let Some(value) = values.get(&index) {
                    let allowed = pcrs.entry(index).or_default();
                    if !allowed.contains(&HexBytes(*value)) {
                        allowed.push(HexBytes(*value));
                    }
                }
            }
        }
        pcrs.insert(bulwark_attest::tpm::APP_PCR, measurements);
        (Some(bulwark_attest::manifest::TpmReference { pcrs }), None)
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
        &serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?,
    )
}

/// Market-making accounts of the load generator.
const MAKERS: u64 = 4;
/// Taking accounts of the load generator.
const TAKERS: u64 = 8;
/// Index price at genesis: BTC, ETH (micros).
const INDEX_MICROS: [i64; 2] = [60_000_000_000, 3_000_000_000];
/// BTC-PERP price in ticks around which the load trades until it reads the certified index
/// (60 000 USD).
const MID_TICKS: i64 = 600_000;
/// BTC-PERP tick size, micros (0.1 USD).
const TICK_MICROS: i64 = 100_000;

/// Options of the committee `up`.
#[derive(Debug, Clone)]
pub struct CommitteeOptions {
    /// Data directory (the committee lives in `<data>/committee`).
    pub data: PathBuf,
    /// Committee size.
    pub nodes: usize,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Client orders per second offered.
    pub rate: u64,
    /// Seed of the development client keys.
    pub seed: u64,
    /// Start over.
    pub fresh: bool,
    /// First p2p port; client ports start 100 above.
    pub base_port: u16,
    /// Print the status line.
    pub status: bool,
    /// Re-attestation interval of the nodes' attested admission, milliseconds.
    pub admission_interval_ms: u64,
    /// Attest with one software TPM (swtpm) per node instead of the DEVELOPMENT attestor
    /// (when the committee is created; a resumed committee keeps its mode).
    pub tpm: bool,
    /// Real price sources for underlying 0 (when the committee is created); `None` keeps the
    /// DEVELOPMENT synthetic feed.
    pub oracle: Option<bulwark_oracle::source::SourcesConfig>,
}

/// Sources for `up --oracle-capture` / `--oracle-url`: captures replayed at their recorded pace
/// and looped, or live WebSocket venues; `None` when neither is given (both: an error later,
/// from validation, names the conflict).
pub fn oracle_sources(
    captures: &[PathBuf],
    urls: &[String],
) -> Option<bulwark_oracle::source::SourcesConfig> {
    use bulwark_oracle::source::{SourceKind, SourcesConfig, VenueConfig};
    if captures.is_empty() && urls.is_empty() {
        return None;
    }
    let venue = |index: usize, url: Option<String>, capture: Option<PathBuf>| VenueConfig {
        name: format!("venue-{index}"),
        weight: 1,
        url,
        capture: capture.map(|path| std::path::absolute(&path).unwrap_or(path)),
        speed: 1,
        repeat: true,
    };
    let (source, venues) = if urls.is_empty() {
        (
            SourceKind::Capture,
            captures
                .iter()
                .enumerate()
                .map(|(i, path)| venue(i, None, Some(path.clone())))
                .collect(),
        )
    } else {
        (
            SourceKind::Live,
            urls.iter()
                .enumerate()
                .map(|(i, url)| venue(i, Some(url.clone()), None))
                .chain(
                    captures
                        .iter()
                        .enumerate()
                        .map(|(i, path)| venue(urls.len() + i, None, Some(path.clone()))),
                )
                .collect(),
        )
    };
    Some(SourcesConfig {
        source,
        venues,
        reconnect_initial_ms: 500,
        reconnect_max_ms: 30_000,
        connect_timeout_ms: 10_000,
        idle_timeout_ms: 30_000,
    })
}

/// What a committee run measured.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// Client orders finalized per second, over the measured window.
    pub finalized_per_s: f64,
    /// Submit-to-finalized p50 at the first node, ms.
    pub p50_ms: Option<f64>,
    /// Submit-to-finalized p99 at the first node, ms.
    pub p99_ms: Option<f64>,
    /// Whether every pair of nodes agreed on the root at every height both reported.
    pub roots_agree: bool,
    /// Highest height seen.
    pub height: u64,
    /// Oracle observation-to-finalized p50 at the first node, ms.
    pub oracle_p50_ms: Option<f64>,
    /// Oracle observation-to-finalized p99 at the first node, ms.
    pub oracle_p99_ms: Option<f64>,
}

fn client_key(seed: u64, account: u64) -> SigningKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"bulwark/dev/client-key/v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&account.to_le_bytes());
    SigningKey::from_bytes(hasher.finalize().as_bytes())
}

fn committee_dir(data: &Path) -> PathBuf {
    data.join("committee")
}

fn node_dir(data: &Path, index: usize) -> PathBuf {
    committee_dir(data).join(format!("node-{index}"))
}

/// Writes keys, node configurations and the genesis for a new committee.
/// The server port of node `index`'s software TPM (its control port is one above).
fn swtpm_port(base_port: u16, index: usize) -> u16 {
    base_port + 200 + 2 * index as u16
}

/// The local CA that plays the TPMs' manufacturer: it certifies every software TPM's EK.
fn tpm_manufacturer_dir(data: &Path) -> PathBuf {
    committee_dir(data).join("tpm-manufacturer")
}

/// Starts (manufacturing on first use) the persistent software TPM of each node, its state in
/// `node-*/tpm`, its EK certified by the committee's one software "manufacturer".
fn start_software_tpms(options: &CommitteeOptions) -> Result<Vec<SoftwareTpm>, String> {
    eprintln!(
        "  starting {} software TPMs (swtpm; state in node-*/tpm, ports from {})",
        options.nodes,
        swtpm_port(options.base_port, 0)
    );
    (0..options.nodes)
        .map(|index| {
            let dir = node_dir(&options.data, index).join("tpm");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            SoftwareTpm::start_persistent(
                &dir,
                swtpm_port(options.base_port, index),
                Some(&tpm_manufacturer_dir(&options.data)),
            )
            .map_err(|e| format!("node {index}'s software TPM: {e}"))
        })
        .collect()
}

/// As the nodes' launcher: resets PCR 23 of each node's TPM and extends it with the node's
/// `measured` binary, genesis and operator set, before the node starts.
fn measure_launches(measured: &[AppMeasurements], tpms: &[SoftwareTpm]) -> Result<(), String> {
    for (index, (soft, node_measured)) in tpms.iter().zip(measured).enumerate() {
        bulwark_attest::launch::NodeTpm::open(&soft.tcti())
            .and_then(|mut tpm| tpm.measure_launch(node_measured))
            .map_err(|e| format!("measuring node {index} into its TPM: {e}"))?;
    }
    Ok(())
}

/// Creates a new committee; with `options.tpm`, also its software TPMs (returned running).
fn setup(options: &CommitteeOptions) -> Result<Vec<SoftwareTpm>, String> {
    let dir = committee_dir(&options.data);
    if dir.exists() {
        let backup = dir.with_extension(format!(
            "bak-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        std::fs::rename(&dir, &backup)
            .map_err(|e| format!("cannot move {}: {e}", dir.display()))?;
        eprintln!("  previous committee kept in {}", backup.display());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tpms = if options.tpm {
        start_software_tpms(options)?
    } else {
        Vec::new()
    };
    // The operators' EK inventory: each node's endorsement key and its manufacturer's
    // certificate, read from its TPM now; the manufacturer's CA is what every node trusts.
    let endorsement_keys: Vec<(String, String)> = tpms
        .iter()
        .map(|soft| {
            let mut tpm = bulwark_attest::launch::NodeTpm::open(&soft.tcti())
                .map_err(|e| format!("software TPM {}: {e}", soft.tcti()))?;
            let ek = tpm
                .ek_public()
                .map_err(|e| format!("software TPM {}: {e}", soft.tcti()))?;
            let certificate = tpm
                .ek_certificate()
                .map_err(|e| format!("software TPM {}: {e}", soft.tcti()))?;
            Ok::<_, String>((hex_encode(&ek), hex_encode(&certificate)))
        })
        .collect::<Result<_, _>>()?;
    if let Some(soft) = tpms.first() {
        write(
            &dir.join(EK_CA_FILE),
            &soft.ek_ca_pem().map_err(|e| e.to_string())?,
        )?;
    }
    let mut seeds = Vec::new();
    let mut peers = Vec::new();
    for index in 0..options.nodes {
        let seed: [u8; 32] = rand::random();
        use commonware_codec::DecodeExt as _;
        use commonware_cryptography::Signer as _;
        let key = commonware_cryptography::ed25519::PrivateKey::decode(seed.to_vec())
            .map_err(|e| format!("cannot make a node key: {e}"))?;
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
        });
        seeds.push(seed);
    }
    let venue_epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let genesis = GenesisFile {
        venue_epoch_ms,
        index_micros: INDEX_MICROS.to_vec(),
        accounts: (1..=MAKERS + TAKERS)
            .map(|account| GenesisAccountEntry {
                account,
                public_key: hex_encode(
                    client_key(options.seed, account).verifying_key().as_bytes(),
                ),
                deposit_micros: 10_000_000_000_000,
            })
            .collect(),
        // Every node observes the (DEVELOPMENT, synthetic) index and signs with its node key.
        oracle_members: peers.iter().map(|p| p.public_key.clone()).collect(),
    };
    let genesis_path = dir.join("genesis.json");
    write(
        &genesis_path,
        &serde_json::to_string_pretty(&genesis).map_err(|e| e.to_string())?,
    )?;
    // DEVELOPMENT operators: 3 keys, any 2 sign the reference manifest. Their secrets stay
    // next to the committee so that `up` can sign a manifest for the binary it runs.
    let operator_secrets: Vec<[u8; 32]> = (0..3).map(|_| rand::random()).collect();
    write(
        &dir.join(DEV_OPERATORS_FILE),
        &operator_secrets
            .iter()
            .map(|s| hex_encode(s) + "\n")
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
    )
    .map_err(|e| e.to_string())?;
    let operators_json = serde_json::to_string_pretty(&operators).map_err(|e| e.to_string())?;
    for (index, seed) in seeds.iter().enumerate() {
        let node = node_dir(&options.data, index);
        std::fs::create_dir_all(&node).map_err(|e| format!("{}: {e}", node.display()))?;
        write(&node.join("node.key"), &format!("{}\n", hex_encode(seed)))?;
        if !options.tpm {
            let attestor: [u8; 32] = rand::random();
            write(
                &node.join("attestor.key"),
                &format!("{}\n", hex_encode(&attestor)),
            )?;
        }
        write(&node.join("operators.json"), &operators_json)?;
        let config = NodeConfig {
            name: format!("node-{index}"),
            data_center: format!("dc-{index}"),
            key_file: "node.key".into(),
            data_dir: ".".into(),
            genesis_file: "../genesis.json".into(),
            p2p_listen: peers[index].address,
            client_listen: SocketAddr::from((
                [127, 0, 0, 1],
                options.base_port + 100 + index as u16,
            )),
            loopback: true,
            block_txs_max: 2_048,
            verify_threads: 1,
            snapshot_every: 1_000,
            peers: peers.clone(),
            oracle: options
                .oracle
                .iter()
                .map(|sources| bulwark_node::node::config::OracleSourceConfig {
                    underlying: 0,
                    sources: sources.clone(),
                })
                .collect(),
            admission: Some(AdmissionConfig {
                mode: if options.tpm { "tpm" } else { "dev" }.into(),
                tcti: tpms.get(index).map(SoftwareTpm::tcti),
                // `up` is the launcher: it measures each node into PCR 23 before starting it.
                measured_by_launcher: options.tpm,
                interval_ms: options.admission_interval_ms,
                appraisal_ttl_ms: None,
                manifest_file: "../manifest.json".into(),
                operators_file: "operators.json".into(),
                attestor_key_file: (!options.tpm).then(|| "attestor.key".into()),
                ek_ca_file: options.tpm.then(|| Path::new("..").join(EK_CA_FILE)),
            }),
        };
        write(
            &node.join("node.toml"),
            &toml::to_string(&config).map_err(|e| e.to_string())?,
        )?;
    }
    Ok(tpms)
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The running node processes; killed when dropped.
struct Nodes {
    children: Vec<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_node(data: &Path, index: usize) -> Result<Child, String> {
    let dir = node_dir(data, index);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Own process group: a Ctrl-C in the terminal reaches `up` only, which stops the load and
    // then the nodes in order.
    use std::os::unix::process::CommandExt as _;
    Command::new(exe)
        .process_group(0)
        .arg("node")
        .arg("--config")
        .arg(dir.join("node.toml"))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start node {index}: {e}"))
}

fn order_for(account: u64, k: u64, mid_ticks: i64) -> ClientCommand {
    let maker = account <= MAKERS;
    let side = if (account + k).is_multiple_of(2) {
        Side::Buy
    } else {
        Side::Sell
    };
    let distance = 1 + ((k * 7 + account) % 5) as i64;
    let (price, tif, post_only) = match (maker, side) {
        (true, Side::Buy) => (mid_ticks - distance, TimeInForce::Gtc, true),
        (true, Side::Sell) => (mid_ticks + distance, TimeInForce::Gtc, true),
        (false, Side::Buy) => (mid_ticks + 6, TimeInForce::Ioc, false),
        (false, Side::Sell) => (mid_ticks - 6, TimeInForce::Ioc, false),
    };
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side,
        price,
        qty: 1 + (k % 3) as i64,
        tif,
        post_only,
        reduce_only: false,
        stp: SelfTradePrevention::CancelResting,
        client_order_id: k,
    })
}

/// Runs the committee (setting it up first if needed) until Ctrl-C or the duration ends.
pub fn run_committee(
    options: &CommitteeOptions,
    stop: Arc<AtomicBool>,
) -> Result<RunFigures, String> {
    if options.nodes < 4 {
        return Err(format!(
            "a committee needs at least 4 nodes (n = 3f + 1); --nodes {} given",
            options.nodes
        ));
    }
    let first_config = node_dir(&options.data, 0).join("node.toml");
    // Declared before the node processes so that they stop before their TPMs do.
    let mut tpms = Vec::new();
    let existing = (0..)
        .take_while(|i| node_dir(&options.data, *i).join("node.toml").exists())
        .count();
    if options.fresh || !first_config.exists() {
        eprintln!(
            "  creating a committee of {} nodes in {}",
            options.nodes,
            committee_dir(&options.data).display()
        );
        tpms = setup(options)?;
    } else if existing != options.nodes {
        return Err(format!(
            "{} holds a committee of {existing} nodes; run with --nodes {existing}, or --fresh to start a new venue",
            committee_dir(&options.data).display()
        ));
    } else {
        eprintln!(
            "  resuming the committee in {}",
            committee_dir(&options.data).display()
        );
    }
    let configs: Vec<NodeConfig> = (0..options.nodes)
        .map(|i| {
            NodeConfig::load(&node_dir(&options.data, i).join("node.toml"))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let tpm_mode = configs[0]
        .admission
        .as_ref()
        .is_some_and(|a| a.mode == "tpm");
    // A new committee was just written with these sources; a resumed one must have them.
    if options
        .oracle
        .as_ref()
        .is_some_and(|wanted| !configs[0].oracle.iter().any(|o| o.sources == *wanted))
    {
        return Err(format!(
            "{} was created with other oracle sources; run with --fresh to change them",
            committee_dir(&options.data).display()
        ));
    }
    if options.tpm && !tpm_mode {
        return Err(format!(
            "{} was created without --tpm; run with --fresh to create a TPM committee",
            committee_dir(&options.data).display()
        ));
    }
    if tpm_mode && tpms.is_empty() {
        tpms = start_software_tpms(options)?;
    }
    if tpm_mode {
        eprintln!("  attestation: TPM quotes (software TPMs), secrets sealed to PCRs 0-7 and 23");
    } else {
        eprintln!("  attestation: DEVELOPMENT attestor (software-signed evidence; `--tpm` for TPM quotes)");
    }
    let measured = node_measurements(&options.data, options.nodes)?;
    write_manifest(&options.data, &measured, &tpms)?;
    measure_launches(&measured, &tpms)?;
    let mut nodes = Nodes {
        children: Vec::new(),
    };
    for index in 0..options.nodes {
        nodes.children.push(spawn_node(&options.data, index)?);
    }
    eprintln!(
        "  started {} node processes (logs: {}/node-*/node.log); waiting for the genesis DKG and the endpoints",
        options.nodes,
        committee_dir(&options.data).display()
    );
    let endpoints: Vec<SocketAddr> = configs.iter().map(|c| c.client_listen).collect();
    let started = Instant::now();
    let mut clients: Vec<Option<Client>> = (0..options.nodes).map(|_| None).collect();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(RunFigures::default());
        }
        for (index, child) in nodes.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "node {index} exited ({status}) during start-up; see {}:\n{}",
                    node_dir(&options.data, index).join("node.log").display(),
                    log_tail(&node_dir(&options.data, index).join("node.log"), 5)
                ));
            }
        }
        for (index, slot) in clients.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Client::connect(endpoints[index], Duration::from_millis(500)).ok();
            }
        }
        if clients.iter().all(Option::is_some) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(
                "the nodes did not open their endpoints within 120 s; see node logs".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The genesis DKG (first start) ends when every node reports the committee's identity.
    let mut last_wait_note = Instant::now();
    let identity = loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(RunFigures::default());
        }
        let identities: Vec<String> = clients
            .iter_mut()
            .map(|slot| {
                slot.as_mut()
                    .and_then(|c| c.status().ok())
                    .and_then(|s| s["identity"].as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        if identities.iter().all(|i| !i.is_empty()) {
            if identities.iter().any(|i| *i != identities[0]) {
                return Err(format!(
                    "the nodes report different committee identities: {identities:?}"
                ));
            }
            break identities[0].clone();
        }
        for (index, child) in nodes.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "node {index} exited ({status}); see {}",
                    node_dir(&options.data, index).join("node.log").display()
                ));
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the genesis DKG did not finish within 300 s; see node logs".into());
        }
        if last_wait_note.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  waiting for attested admission and the genesis DKG ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            last_wait_note = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "  committee up after {:.1} s; identity (group public key) {}",
        started.elapsed().as_secs_f64(),
        identity.trim()
    );

    // Load generator: one thread, accounts spread over the nodes.
    let submitted = Arc::new(AtomicU64::new(0));
    let load_stop = Arc::new(AtomicBool::new(false));
    let load = {
        let endpoints = endpoints.clone();
        let submitted = submitted.clone();
        let load_stop = load_stop.clone();
        let seed = options.seed;
        let rate = options.rate;
        std::thread::spawn(move || load_generator(&endpoints, seed, rate, &submitted, &load_stop))
    };

    // Status.
    let mut roots: HashMap<u64, String> = HashMap::new();
    let mut diverged = false;
    let mut figures = RunFigures::default();
    let run_started = Instant::now();
    let mut window: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    while !stop.load(Ordering::Relaxed)
        && options.duration.is_none_or(|d| run_started.elapsed() < d)
    {
        std::thread::sleep(Duration::from_secs(1));
        let mut line = Vec::new();
        let mut first_txs = None;
        let mut index_line = String::new();
        for (index, slot) in clients.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = nodes.children.get_mut(index).map(Child::try_wait) {
                line.push(format!("n{index}:EXITED({status})"));
                continue;
            }
            let status = match slot.as_mut().map(Client::status) {
                Some(Ok(status)) => status,
                _ => {
                    *slot = Client::connect(endpoints[index], Duration::from_millis(300)).ok();
                    line.push(format!("n{index}:down"));
                    continue;
                }
            };
            let height = status["height"].as_u64().unwrap_or(0);
            let root = status["root"].as_str().unwrap_or("").to_string();
            if height > 0 {
                match roots.get(&height) {
                    Some(seen) if *seen != root => diverged = true,
                    Some(_) => {}
                    None => {
                        roots.insert(height, root);
                    }
                }
            }
            figures.height = figures.height.max(height);
            if index == 0 {
                index_line = status["index_micros"][0]
                    .as_i64()
                    .map(|micros| {
                        format!(
                            "BTC {:.2} (round {})",
                            micros as f64 / 1e6,
                            status["oracle_rounds"][0]
                        )
                    })
                    .unwrap_or_else(|| "BTC -".into());
                first_txs = status["finalized_txs"].as_u64();
                figures.p50_ms = status["latency_p50_ms"].as_f64();
                figures.p99_ms = status["latency_p99_ms"].as_f64();
                figures.oracle_p50_ms = status["oracle_latency_p50_ms"].as_f64();
                figures.oracle_p99_ms = status["oracle_latency_p99_ms"].as_f64();
            }
            let admitted = status["admission"]
                .as_object()
                .map(|peers| peers.values().filter(|p| p["admitted"] == true).count());
            match admitted {
                Some(admitted) => line.push(format!("n{index}:h{height}/a{admitted}")),
                None => line.push(format!("n{index}:h{height}")),
            }
        }
        let now = Instant::now();
        let rate = match (first_txs, last) {
            (Some(txs), Some((at, before))) => {
                (txs.saturating_sub(before)) as f64 / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        if let Some(txs) = first_txs {
            last = Some((now, txs));
            // The measured window starts after 3 s of load (warm-up).
            if window.is_none() && run_started.elapsed() >= Duration::from_secs(3) {
                window = Some((now, txs));
            }
            if let Some((at, before)) = window {
                let span = now.duration_since(at).as_secs_f64();
                if span > 0.0 {
                    figures.finalized_per_s = txs.saturating_sub(before) as f64 / span;
                }
            }
        }
        figures.roots_agree = !diverged;
        if options.status {
            let fmt_ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
            eprintln!(
                "height {} | {} | finalized {:.0} orders/s | submit→final p50 {} ms p99 {} ms | roots {} | {} | submitted {}",
                figures.height,
                index_line,
                rate,
                fmt_ms(figures.p50_ms),
                fmt_ms(figures.p99_ms),
                if diverged { "DIVERGED" } else { "agree" },
                line.join(" "),
                submitted.load(Ordering::Relaxed)
            );
        }
    }
    load_stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    eprintln!("  stopping the nodes");
    drop(nodes);
    Ok(figures)
}

fn load_generator(
    endpoints: &[SocketAddr],
    seed: u64,
    rate: u64,
    submitted: &AtomicU64,
    stop: &AtomicBool,
) {
    let accounts: Vec<u64> = (1..=MAKERS + TAKERS).collect();
    let keys: Vec<SigningKey> = accounts.iter().map(|a| client_key(seed, *a)).collect();
    let mut clients: Vec<Option<Client>> = endpoints.iter().map(|_| None).collect();
    // Continue each account's nonces from the committed state (a resumed venue).
    let mut nonces: Vec<u64> = accounts
        .iter()
        .map(|account| {
            Client::connect(endpoints[0], Duration::from_secs(1))
                .ok()
                .and_then(|mut c| c.account(AccountId(*account)).ok())
                .and_then(|v| v["nonce"].as_u64())
                .unwrap_or(0)
                + 1_000
        })
        .collect();
    let tick = Duration::from_millis(20);
    let per_tick = (rate / 50).max(1);
    let mut k = 0u64;
    let mut next = Instant::now();
    // Trade around the committee's certified BTC index (it drifts with the synthetic path or a
    // real feed), read once a second; 60 000 USD until one is known.
    let mut mid_ticks = MID_TICKS;
    let mut mid_read = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        if mid_read.elapsed() >= Duration::from_secs(1) {
            mid_read = Instant::now();
            if let Some(index) = Client::connect(endpoints[0], Duration::from_millis(300))
                .ok()
                .and_then(|mut c| c.status().ok())
                .and_then(|s| s["index_micros"][0].as_i64())
            {
                mid_ticks = (index / TICK_MICROS).max(100);
            }
        }
        let mut batches: Vec<Vec<SignedTx>> = endpoints.iter().map(|_| Vec::new()).collect();
        for _ in 0..per_tick {
            let slot = (k % accounts.len() as u64) as usize;
            let account = accounts[slot];
            nonces[slot] += 1;
            let tx = SignedTx::sign(
                AccountId(account),
                nonces[slot],
                order_for(account, k, mid_ticks),
                &keys[slot],
            );
            batches[(account as usize) % endpoints.len()].push(tx);
            k += 1;
        }
        for (index, batch) in batches.iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            if clients[index].is_none() {
                clients[index] = Client::connect(endpoints[index], Duration::from_millis(300)).ok();
            }
            if let Some(client) = clients[index].as_mut() {
                match client.submit(batch) {
                    Ok(outcome) => {
                        submitted.fetch_add(u64::from(outcome.accepted), Ordering::Relaxed);
                    }
                    Err(_) => clients[index] = None,
                }
            }
        }
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// `bulwark node --config FILE`.
pub fn run_node(config: &Path) -> ExitCode {
    init_tracing();
    match bulwark_node::node::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark node: {error}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// `bulwark verify --data DIR [--identity HEX]`: DIR is a node's directory (node.toml's
/// `data_dir`, holding `storage/` and `identity.hex`) plus the genesis file.
pub fn run_verify(
    data: &Path,
    genesis: &Path,
    identity: Option<&str>,
    until: Option<u64>,
) -> ExitCode {
    match verify(data, genesis, identity, until) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::json!({
                    "verified": true,
                    "heights": summary.heights,
                    "certificates": summary.certificates,
                    "txs": summary.txs,
                    "root": hex_encode(&summary.root),
                })
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("{}", serde_json::json!({"verified": false, "error": error}));
            eprintln!("bulwark verify: {error}");
            ExitCode::from(1)
        }
    }
}

fn verify(
    data: &Path,
    genesis_path: &Path,
    identity: Option<&str>,
    until: Option<u64>,
) -> Result<bulwark_node::verify::Summary, String> {
    use commonware_codec::DecodeExt as _;
    use commonware_runtime::Runner as _;
    let genesis = GenesisFile::load(genesis_path).map_err(|e| e.to_string())?;
    let accounts = genesis.accounts(genesis_path).map_err(|e| e.to_string())?;
    let oracle = genesis
        .oracle_config(genesis_path)
        .map_err(|e| e.to_string())?;
    let genesis = bulwark_node::genesis::try_genesis(&accounts, &genesis.index_micros, oracle)?;
    let identity_hex = match identity {
        Some(hex) => hex.to_string(),
        None => std::fs::read_to_string(data.join(IDENTITY_FILE)).map_err(|e| {
            format!(
                "{}: {e} (or pass --identity)",
                data.join(IDENTITY_FILE).display()
            )
        })?,
    };
    let bytes = bulwark_node::node::config::hex_decode(identity_hex.trim())
        .ok_or("the identity is not hex")?;
    let identity = bulwark_node::verify::Identity::decode(bytes)
        .map_err(|e| format!("the identity is not a BLS12-381 G2 public key: {e}"))?;
    let storage = data.join(STORAGE_DIR);
    if !storage.is_dir() {
        return Err(format!(
            "{} does not exist: not a node's data directory",
            storage.display()
        ));
    }
    let runner = commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new().with_storage_directory(storage),
    );
    runner.start(|context| async move {
        let started = Instant::now();
        let mut last_report = Instant::now();
        let partition = format!("{}-finalized", bulwark_node::node::PARTITION);
        let mut rng = commonware_runtime::Supervisor::child(&context, "verify");
        let result = bulwark_node::verify::verify_log(
            &context,
            &partition,
            genesis,
            identity,
            &mut rng,
            until,
            |height| {
                if last_report.elapsed() >= Duration::from_secs(2) {
                    eprintln!(
                        "  verified {height} heights ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
            },
        )
        .await;
        result.map_err(|e| e.to_string())
    })
}

/// `bulwark client ...`.
/// `--side` of `client order` and `client stop`.
fn parse_side(text: &str) -> Result<Side, String> {
    match text {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(format!("--side must be buy or sell, not {other:?}")),
    }
}

pub fn run_client(node: SocketAddr, request: crate::ClientRequest) -> ExitCode {
    let result = (|| -> Result<serde_json::Value, String> {
        let mut client = Client::connect(node, Duration::from_secs(3))
            .map_err(|e| format!("cannot reach {node}: {e}"))?;
        match request {
            crate::ClientRequest::Status => client.status().map_err(|e| e.to_string()),
            crate::ClientRequest::Account { id } => {
                client.account(AccountId(id)).map_err(|e| e.to_string())
            }
            crate::ClientRequest::Book { instrument, depth } => client
                .book(InstrumentId(instrument), depth)
                .map_err(|e| e.to_string()),
            crate::ClientRequest::Order {
                signer,
                instrument,
                side,
                price,
                qty,
            } => {
                let side = parse_side(&side)?;
                let command = ClientCommand::Limit(LimitOrder {
                    instrument: InstrumentId(instrument),
                    side,
                    price,
                    qty,
                    tif: TimeInForce::Gtc,
                    post_only: false,
                    reduce_only: false,
                    stp: SelfTradePrevention::CancelResting,
                    client_order_id: signer.nonce,
                });
                submit_signed(&mut client, &signer, command)
            }
            crate::ClientRequest::Stop {
                signer,
                instrument,
                side,
                trigger,
                direction,
                limit,
                qty,
                reduce_only,
            } => {
                let side = parse_side(&side)?;
                let direction = match direction.as_deref() {
                    Some("rises") => StopDirection::Rises,
                    Some("falls") => StopDirection::Falls,
                    Some(other) => {
                        return Err(format!("--direction must be rises or falls, not {other:?}"))
                    }
                    // A buy stop protects a short against a rise; a sell stop a long against a fall.
                    None => match side {
                        Side::Buy => StopDirection::Rises,
                        Side::Sell => StopDirection::Falls,
                    },
                };
                let command = ClientCommand::Stop(StopOrder {
                    instrument: InstrumentId(instrument),
                    side,
                    direction,
                    trigger_price: trigger,
                    limit_price: limit,
                    qty,
                    reduce_only,
                    client_order_id: signer.nonce,
                });
                submit_signed(&mut client, &signer, command)
            }
            crate::ClientRequest::Cancel {
                signer,
                instrument,
                order_id,
            } => {
                let command = ClientCommand::Cancel {
                    instrument: InstrumentId(instrument),
                    order_id: bulwark_engine::OrderId(order_id),
                };
                submit_signed(&mut client, &signer, command)
            }
        }
    })();
    match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bulwark client: {error}");
            ExitCode::from(2)
        }
    }
}

fn submit_signed(
    client: &mut Client,
    signer: &crate::Signer,
    command: ClientCommand,
) -> Result<serde_json::Value, String> {
    let seed = read_hex32(&signer.key).map_err(|e| format!("{}: {e}", signer.key.display()))?;
    let tx = SignedTx::sign(
        AccountId(signer.account),
        signer.nonce,
        command,
        &SigningKey::from_bytes(&seed),
    );
    let outcome = client.submit(&[tx]).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "refused": outcome
            .refused
            .iter()
            .map(|r| serde_json::json!({"index": r.index, "reason": r.reason}))
            .collect::<Vec<_>>(),
    }))
}

/// Signatures one core verifies per second in batches of 1 000 (the engine's verify_batch).
fn single_core_verify_rate() -> f64 {
    let key = client_key(0, 1);
    let txs: Vec<SignedTx> = (1..=1_000)
        .map(|k| SignedTx::sign(AccountId(1), k, order_for(1, k, MID_TICKS), &key))
        .collect();
    let public = key.verifying_key().to_bytes();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = bulwark_engine::codec::verify_batch(&txs, |_| Some(public));
    }
    (rounds * txs.len()) as f64 / started.elapsed().as_secs_f64()
}

/// `bulwark bench committee`: two runs of 4 node processes on loopback, each with a fresh
/// committee: at `rate` (the goal's 5 000 orders/s by default) for throughput and latency, then
/// offered `saturate` orders/s for the most the committee finalizes, compared with the
/// machine's bound measured in the same run.
pub fn run_bench(duration: u64, rate: u64, saturate: u64, base_port: u16) -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let verify = single_core_verify_rate();
    let bound = verify * cores / 4.0;
    let line = |metric: &str, value: f64, unit: &str, peer: &str, peer_value: Option<f64>| {
        emit(
            "committee",
            metric,
            value,
            unit,
            peer_value.map(|peer_value| (peer, peer_value)),
        );
    };
    line("single_core_verify_rate", verify, "signatures/s", "", None);
    let mut agree = true;
    for (phase, offered, port) in [
        ("goal_rate", rate, base_port),
        ("saturated", saturate, base_port + 300),
    ] {
        let data = std::env::temp_dir().join(format!(
            "bulwark-bench-committee-{}-{phase}",
            std::process::id()
        ));
        let options = CommitteeOptions {
            data: data.clone(),
            nodes: 4,
            duration: Some(Duration::from_secs(duration.max(8))),
            rate: offered,
            seed: 1,
            fresh: true,
            base_port: port,
            status: true,
            admission_interval_ms: 1_000,
            tpm: false,
            oracle: None,
        };
        eprintln!("bench committee ({phase}): 4 node processes on loopback, {offered} orders/s offered for {duration} s");
        let result = run_committee(&options, Arc::new(AtomicBool::new(false)));
        let _ = std::fs::remove_dir_all(&data);
        let figures = match result {
            Ok(figures) => figures,
            Err(error) => {
                eprintln!("bench committee: {error}");
                return ExitCode::from(2);
            }
        };
        agree &= figures.roots_agree;
        line(
            &format!("{phase}_offered"),
            offered as f64,
            "orders/s",
            "",
            None,
        );
        line(
            &format!("{phase}_finalized_orders_per_s"),
            figures.finalized_per_s,
            "orders/s",
            "bound: 1-core batch verify rate x cores / 4 replicas",
            Some(bound),
        );
        if phase == "goal_rate" {
            line(
                "goal_rate_finalized_vs_goal",
                figures.finalized_per_s,
                "orders/s",
                "goal 5000 orders/s",
                Some(5_000.0),
            );
        }
        if let Some(p50) = figures.p50_ms {
            line(
                &format!("{phase}_submit_to_finalized_p50"),
                p50,
                "ms",
                "goal (at most)",
                Some(50.0),
            );
        }
        if let Some(p99) = figures.p99_ms {
            line(
                &format!("{phase}_submit_to_finalized_p99"),
                p99,
                "ms",
                "goal (at most)",
                Some(250.0),
            );
        }
        line(
            &format!("{phase}_height"),
            figures.height as f64,
            "blocks",
            "",
            None,
        );
        if let Some(p50) = figures.oracle_p50_ms {
            line(
                &format!("{phase}_oracle_observation_to_finalized_p50"),
                p50,
                "ms",
                "one round",
                Some(1_000.0),
            );
        }
        if let Some(p99) = figures.oracle_p99_ms {
            line(
                &format!("{phase}_oracle_observation_to_finalized_p99"),
                p99,
                "ms",
                "one round",
                Some(1_000.0),
            );
        }
    }
    if agree {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench committee: the nodes' state roots DIVERGED");
        ExitCode::from(1)
    }
}

/// Tamper→cut-off: a 4-node committee with attested admission at `interval_ms`; the policy
/// file one node measures is changed while it runs (its next evidence carries a different
/// application measurement), and each peer's cut-off time (from its status) is compared with
/// the moment of the change. Two tampers (node 3, then node 2) give five delays, in ms. With
/// `tpm`, every node quotes from its own software TPM and the change reaches the quote as a
/// PCR 23 extension.
pub fn cutoff_delays(base_port: u16, interval_ms: u64, tpm: bool) -> Result<Vec<f64>, String> {
    let data = std::env::temp_dir().join(format!(
        "bulwark-bench-cutoff-{}-{}",
        std::process::id(),
        if tpm { "tpm" } else { "dev" }
    ));
    let options = CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        duration: None,
        rate: 0,
        seed: 1,
        fresh: true,
        base_port,
        status: false,
        admission_interval_ms: interval_ms,
        tpm,
        oracle: None,
    };
    let result = (|| {
        let tpms = setup(&options)?;
        let measured = node_measurements(&options.data, options.nodes)?;
        write_manifest(&options.data, &measured, &tpms)?;
        measure_launches(&measured, &tpms)?;
        let mut nodes = Nodes {
            children: Vec::new(),
        };
        for index in 0..4 {
            nodes.children.push(spawn_node(&options.data, index)?);
        }
        let endpoints: Vec<SocketAddr> = (0..4)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], base_port + 100 + i)))
            .collect();
        let status = |i: usize| {
            Client::connect(endpoints[i], Duration::from_millis(300))
                .ok()
                .and_then(|mut c| c.status().ok())
        };
        let started = Instant::now();
        while !(0..4).all(|i| status(i).is_some_and(|s| s["height"].as_u64().unwrap_or(0) > 0)) {
            if started.elapsed() > Duration::from_secs(120) {
                return Err("the committee did not start within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut delays = Vec::new();
        let mut excluded: Vec<usize> = Vec::new();
        for victim in [3usize, 2] {
            excluded.push(victim);
            let observers: Vec<usize> = (0..4).filter(|i| !excluded.contains(i)).collect();
            // Let a fresh round of appraisals pass, then change the victim's measured policy.
            std::thread::sleep(Duration::from_millis(interval_ms + 300));
            let policy = node_dir(&options.data, victim).join("operators.json");
            let mut text = std::fs::read_to_string(&policy).map_err(|e| e.to_string())?;
            text.push('\n');
            let tampered_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            std::fs::write(&policy, text).map_err(|e| e.to_string())?;
            let waiting = Instant::now();
            let mut cut: HashMap<usize, u64> = HashMap::new();
            while cut.len() < observers.len() {
                if waiting.elapsed() > Duration::from_secs(30) {
                    return Err(format!("node {victim} was not cut off within 30 s"));
                }
                for &observer in &observers {
                    if cut.contains_key(&observer) {
                        continue;
                    }
                    let Some(status) = status(observer) else {
                        continue;
                    };
                    let victim_name = format!("dc-{victim}/");
                    let at = status["admission"].as_object().and_then(|peers| {
                        peers
                            .iter()
                            .find(|(name, _)| name.starts_with(&victim_name))
                            .and_then(|(_, peer)| peer["cut_off_at_ms"].as_u64())
                    });
                    if let Some(at) = at {
                        cut.insert(observer, at);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            for at in cut.values() {
                delays.push(at.saturating_sub(tampered_at) as f64);
            }
        }
        drop(nodes);
        Ok(delays)
    })();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// `bulwark bench attest`: the attestation crate's appraisal figures, then tamper→cut-off on a
/// committee at a 1 s re-attestation interval.
pub fn run_attest_bench(base_port: u16) -> ExitCode {
    bulwark_attest::run_bench();
    let interval_ms = 1_000u64;
    eprintln!(
        "bench attest: tamper→cut-off on 4 node processes, re-attestation every {interval_ms} ms"
    );
    let mut code = ExitCode::SUCCESS;
    for (mode, tpm) in [("dev", false), ("tpm", true)] {
        if tpm && !(bulwark_attest::launch::available() && bulwark_attest::swtpm::installed()) {
            eprintln!("bench attest: TPM tamper→cut-off SKIPPED: needs swtpm and a build with --features bulwark-attest/tpm");
            continue;
        }
        eprintln!("bench attest: {mode} evidence");
        match cutoff_delays(base_port + if tpm { 400 } else { 0 }, interval_ms, tpm) {
            Ok(delays) if !delays.is_empty() => {
                let max = delays.iter().copied().fold(0.0, f64::max);
                let mean = delays.iter().sum::<f64>() / delays.len() as f64;
                let goal = (interval_ms + 200) as f64;
                let goal_name = "goal: one interval + 200 ms (Keylime anchor: ~2300 ms at a 2 s interval, no removal)";
                let suffix = if tpm { "_tpm" } else { "_dev" };
                emit(
                    "attest",
                    &format!("tamper_to_cutoff_max{suffix}"),
                    max,
                    "ms",
                    Some((goal_name, goal)),
                );
                emit(
                    "attest",
                    &format!("tamper_to_cutoff_mean{suffix}"),
                    mean,
                    "ms",
                    Some((goal_name, goal)),
                );
                eprintln!(
                    "bench attest: {mode}: {} cut-off delays (ms): {delays:?}",
                    delays.len()
                );
            }
            Ok(_) => code = ExitCode::from(2),
            Err(error) => {
                eprintln!("bench attest: {mode} tamper→cut-off: {error}");
                code = ExitCode::from(2);
            }
        }
    }
    code
}

/// `bulwark bench oracle`: the oracle crate's figures (aggregation cost, capture deviation),
/// then observation→certified→finalized latency through a 4-node committee.
pub fn run_oracle_bench(base_port: u16, duration: u64) -> ExitCode {
    bulwark_oracle::run_bench();
    let data = std::env::temp_dir().join(format!("bulwark-bench-oracle-{}", std::process::id()));
    let options = CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        duration: Some(Duration::from_secs(duration.max(8))),
        rate: 500,
        seed: 1,
        fresh: true,
        base_port,
        status: false,
        admission_interval_ms: 1_000,
        tpm: false,
        oracle: None,
    };
    eprintln!(
        "bench oracle: observation→finalized latency through 4 node processes for {duration} s"
    );
    let result = run_committee(&options, Arc::new(AtomicBool::new(false)));
    let _ = std::fs::remove_dir_all(&data);
    match result {
        Ok(figures) => {
            for (metric, value) in [
                (
                    "committee_observation_to_finalized_p50",
                    figures.oracle_p50_ms,
                ),
                (
                    "committee_observation_to_finalized_p99",
                    figures.oracle_p99_ms,
                ),
            ] {
                match value {
                    Some(value) => emit(
                        "oracle",
                        metric,
                        value,
                        "ms",
                        Some(("one round (1 000 ms)", 1_000.0)),
                    ),
                    None => eprintln!("bench oracle: no oracle round was finalized for {metric}"),
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench oracle: committee: {error}");
            ExitCode::from(2)
        }
    }
}
