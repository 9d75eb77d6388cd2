//! Starting, watching and stopping the committee's node processes.

use crate::layout::*;
use crate::load::*;
use crate::provision::*;
use crate::{CommitteeError, CommitteeOptions, RunFigures};
use bulwark_node::client::Client;
use bulwark_node::node::config::NodeConfig;
use bulwark_testkit::swtpm::SoftwareTpm;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The running node processes; killed when dropped.
pub(crate) struct Nodes {
    pub(crate) children: Vec<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Left in a node's directory by provisioning; the node's first start removes it and is the
/// one start that seals the provisioned key.
pub(crate) const FIRST_START_MARKER: &str = "first-start";

pub(crate) fn spawn_node(data: &Path, index: usize) -> Result<Child, CommitteeError> {
    let exe = std::env::current_exe().map_err(|source| CommitteeError::Spawn { index, source })?;
    spawn_node_from(data, index, &exe)
}

/// Replaces node `index` (killed, then started again) by a tampered copy of this binary: the
/// same program with 16 bytes appended, so another measurement. Returns the new process.
pub(crate) fn tamper_node(
    data: &Path,
    index: usize,
    running: &mut Child,
) -> Result<Child, CommitteeError> {
    let spawn_error = |source| CommitteeError::Spawn { index, source };
    let _ = running.kill();
    let _ = running.wait();
    let exe = std::env::current_exe().map_err(spawn_error)?;
    let tampered = node_dir(data, index).join("bulwark-tampered");
    let mut bytes = std::fs::read(&exe).map_err(spawn_error)?;
    bytes.extend_from_slice(b"tampered-binary!");
    std::fs::write(&tampered, bytes).map_err(file_error(&tampered))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&tampered, std::fs::Permissions::from_mode(0o755))
        .map_err(file_error(&tampered))?;
    spawn_node_from(data, index, &tampered)
}

fn spawn_node_from(data: &Path, index: usize, exe: &Path) -> Result<Child, CommitteeError> {
    let dir = node_dir(data, index);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .map_err(file_error(&dir))?;
    let spawn_error = |source| CommitteeError::Spawn { index, source };
    // Own process group: a Ctrl-C in the terminal reaches `up` only, which stops the load and
    // then the nodes in order.
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(exe);
    command
        .process_group(0)
        .arg("node")
        .arg("--config")
        .arg(dir.join("node.toml"));
    // The key `up` provisioned is plain until the node's first start seals it: that start, and
    // only that one (the marker provisioning left is removed now), is the explicit migration,
    // and the node logs it. A later plain key file is refused, whoever put it there.
    let marker = dir.join(FIRST_START_MARKER);
    let first_start = marker.exists();
    if first_start {
        command.arg(bulwark_node::node::keystore::MIGRATE_FLAG);
        std::fs::remove_file(&marker).map_err(file_error(&marker))?;
    }
    command
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(spawn_error)?)
        .stderr(log)
        .spawn()
        .map_err(spawn_error)
}

/// A committee whose node processes run; they are killed when this is dropped (the software
/// TPMs after them).
pub struct Launched {
    pub(crate) nodes: Nodes,
    // Declared after the nodes so that the processes stop before their TPMs do.
    _tpms: Vec<SoftwareTpm>,
    /// Each node's client endpoint.
    pub endpoints: Vec<SocketAddr>,
    /// Each node's data center.
    data_centers: Vec<String>,
    /// Each node's key (hex) and operator port, if it has one.
    pub(crate) consoles: Vec<(String, Option<SocketAddr>)>,
    data: PathBuf,
}

/// The FIX gateways `up` runs, one `bulwark gateway` process per data center; killed when
/// this is dropped.
pub(crate) struct Gateways {
    children: Vec<Child>,
}

impl Drop for Gateways {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where `up` puts data center `dc`'s gateway: FIX on port `base_port + 300 + i` and JSON-RPC
/// over WebSocket over TLS on `base_port + 400 + i` for the i-th data center in node order
/// (with the gateway's self-signed development certificate).
fn start_gateways(
    options: &CommitteeOptions,
    launched: &Launched,
) -> Result<Gateways, CommitteeError> {
    let mut centers: Vec<&String> = Vec::new();
    for dc in &launched.data_centers {
        if !centers.contains(&dc) {
            centers.push(dc);
        }
    }
    let nodes: Vec<String> = launched
        .endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    let quorum = (launched.endpoints.len() - 1) / 3 + 1;
    let exe =
        std::env::current_exe().map_err(|source| CommitteeError::Spawn { index: 0, source })?;
    let mut gateways = Gateways {
        children: Vec::new(),
    };
    for (i, dc) in centers.iter().enumerate() {
        let dir = committee_dir(&options.data).join(format!("gateway-{dc}"));
        std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
        let port = options.base_port + 300 + i as u16;
        let ws_port = options.base_port + 400 + i as u16;
        let operator = crate::layout::gateway_operator_address(options.base_port, i);
        let comp_id = format!("BULWARK-{}", dc.to_ascii_uppercase());
        let config = format!(
            "# Written by `bulwark up`: the gateway of data center {dc} (docs/gateway.md).\n# The WebSocket listener's certificate is a self-signed DEVELOPMENT one.\ncomp_id = \"{comp_id}\"\nfix_listen = \"127.0.0.1:{port}\"\nws_listen = \"127.0.0.1:{ws_port}\"\nws_tls_self_signed = true\ndata_dir = \"{}\"\nnodes = [{}]\nquorum = {quorum}\n\n[operator]\nlisten = \"{operator}\"\n",
            dir.display(),
            nodes.join(", ")
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, config).map_err(file_error(&path))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gateway.log"))
            .map_err(file_error(&dir))?;
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(&exe)
            .process_group(0)
            .arg("gateway")
            .arg("--config")
            .arg(&path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(file_error(&dir))?)
            .stderr(log)
            .spawn()
            .map_err(|source| CommitteeError::Spawn { index: i, source })?;
        gateways.children.push(child);
        eprintln!(
            "  gateway {dc}: FIX 4.4 on 127.0.0.1:{port}, TargetCompID {comp_id}; JSON-RPC on wss://localhost:{ws_port}/ (development certificate {}/tls/cert.pem; log: {}/gateway.log); metrics http://{operator}/metrics",
            dir.display(),
            dir.display()
        );
    }
    Ok(gateways)
}

impl Launched {
    /// Each node's process id, in node order.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.children.iter().map(Child::id).collect()
    }

    /// Node `index`'s directory (its configuration, keys, log and storage).
    pub fn node_dir(&self, index: usize) -> PathBuf {
        node_dir(&self.data, index)
    }
}

/// Creates the committee when asked to (or when none exists), or checks that the one on disk
/// matches `options`; returns the node configurations and any software TPMs it started.
fn prepare(
    options: &CommitteeOptions,
) -> Result<(Vec<NodeConfig>, Vec<SoftwareTpm>), CommitteeError> {
    if options.nodes < 4 {
        return Err(CommitteeError::TooFewNodes {
            nodes: options.nodes,
        });
    }
    if options.nodes + options.candidates > crate::layout::PORTS_PER_KIND {
        return Err(CommitteeError::TooManyNodes {
            asked: options.nodes + options.candidates,
            max: crate::layout::PORTS_PER_KIND,
        });
    }
    if options.candidates > 0 && options.tpm {
        return Err(CommitteeError::CandidatesWithTpm);
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
    } else if existing != options.nodes + options.candidates {
        return Err(CommitteeError::NodeCount {
            dir: committee_dir(&options.data),
            existing,
        });
    } else {
        eprintln!(
            "  resuming the committee in {}",
            committee_dir(&options.data).display()
        );
    }
    let configs: Vec<NodeConfig> = (0..options.nodes)
        .map(|i| NodeConfig::load(&node_dir(&options.data, i).join("node.toml")))
        .collect::<Result<_, _>>()?;
    let tpm_mode = configs[0]
        .admission
        .as_ref()
        .is_some_and(|a| a.mode == bulwark_node::node::config::AdmissionMode::Tpm);
    // A new committee was just written with these sources; a resumed one must have them.
    if options
        .oracle
        .as_ref()
        .is_some_and(|wanted| !configs[0].oracle.iter().any(|o| o.sources == *wanted))
    {
        return Err(CommitteeError::OracleSources {
            dir: committee_dir(&options.data),
        });
    }
    if options.tpm && !tpm_mode {
        return Err(CommitteeError::NotTpm {
            dir: committee_dir(&options.data),
        });
    }
    if tpm_mode && tpms.is_empty() {
        tpms = start_software_tpms(options)?;
    }
    if tpm_mode {
        eprintln!("  attestation: TPM quotes (software TPMs), measured launch logged into PCR 15, secrets sealed to PCRs 0-7 and 15");
    } else {
        eprintln!("  attestation: DEVELOPMENT attestor (software-signed evidence; `--tpm` for TPM quotes)");
    }
    Ok((configs, tpms))
}

/// Sets up or resumes the committee in `options.data`, writes the reference manifest for the
/// binary running now, measures every launch, and starts one `bulwark node` per member.
pub fn launch(options: &CommitteeOptions) -> Result<Launched, CommitteeError> {
    let (configs, tpms) = prepare(options)?;
    // The manifest admits the candidates' dev attestors too; only members are started.
    let measured = node_measurements(&options.data, options.nodes + options.candidates)?;
    write_manifest(&options.data, &measured, &tpms)?;
    measure_launches(&options.data, &measured[..options.nodes], &tpms)?;
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
    let operator: Vec<String> = configs[..options.nodes]
        .iter()
        .filter_map(|c| c.operator.as_ref())
        .map(|o| format!("http://{}/metrics", o.listen))
        .collect();
    if operator.is_empty() {
        eprintln!(
            "  metrics: none (the committee was created before the operator port; --fresh adds it)"
        );
    } else {
        eprintln!(
            "  metrics (Prometheus, read-only, docs/metrics.md): {}",
            operator.join(" ")
        );
    }
    Ok(Launched {
        nodes,
        _tpms: tpms,
        endpoints: configs.iter().map(|c| c.client_listen).collect(),
        data_centers: configs.iter().map(|c| c.data_center.clone()).collect(),
        consoles: configs
            .iter()
            .map(|c| {
                let key = c
                    .peers
                    .iter()
                    .find(|p| p.address == c.p2p_listen)
                    .map(|p| p.public_key.to_ascii_lowercase())
                    .unwrap_or_default();
                (key, c.operator.as_ref().map(|o| o.listen))
            })
            .collect(),
        data: options.data.clone(),
    })
}

/// Waits until every node answers on its client endpoint; `None` when stopped.
fn wait_for_endpoints(
    options: &CommitteeOptions,
    launched: &mut Launched,
    stop: &AtomicBool,
    started: Instant,
) -> Result<Option<Vec<Option<Client>>>, CommitteeError> {
    let endpoints = launched.endpoints.clone();
    let nodes = &mut launched.nodes;
    let mut clients: Vec<Option<Client>> = (0..options.nodes).map(|_| None).collect();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        for (index, child) in nodes.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = node_dir(&options.data, index).join("node.log");
                return Err(CommitteeError::ExitedAtStart {
                    index,
                    status,
                    tail: log_tail(&log, 5),
                    log,
                });
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
            return Err(CommitteeError::EndpointsTimeout);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(Some(clients))
}

/// Waits until every node reports the committee's identity (the genesis DKG is done) and all
/// agree on it; `None` when stopped.
fn wait_for_identity(
    options: &CommitteeOptions,
    launched: &mut Launched,
    clients: &mut [Option<Client>],
    stop: &AtomicBool,
    started: Instant,
) -> Result<Option<String>, CommitteeError> {
    let nodes = &mut launched.nodes;
    // The genesis DKG (first start) ends when every node reports the committee's identity.
    let mut last_wait_note = Instant::now();
    let identity = loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let identities: Vec<String> = clients
            .iter_mut()
            .map(|slot| {
                slot.as_mut()
                    .and_then(|c| c.status().ok())
                    .map(|s| s.identity)
                    .unwrap_or_default()
            })
            .collect();
        if identities.iter().all(|i| !i.is_empty()) {
            if identities.iter().any(|i| *i != identities[0]) {
                return Err(CommitteeError::Identities { identities });
            }
            break identities[0].clone();
        }
        for (index, child) in nodes.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(CommitteeError::Exited {
                    index,
                    status,
                    log: node_dir(&options.data, index).join("node.log"),
                });
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(CommitteeError::DkgTimeout);
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

    Ok(Some(identity))
}

/// `up`'s own operator port: the console page of the whole committee and `up`'s metrics. A
/// port that cannot be bound is reported and the venue runs on without it.
fn start_console(
    options: &CommitteeOptions,
    launched: &Launched,
    observed: &crate::console::SharedObserved,
    submitted: &Arc<AtomicU64>,
) -> Option<bulwark_console::OperatorServer> {
    let nodes: Vec<(String, String, SocketAddr)> = launched
        .consoles
        .iter()
        .zip(&launched.data_centers)
        .filter_map(|((key, operator), dc)| Some((key.clone(), dc.clone(), (*operator)?)))
        .collect();
    if nodes.len() != launched.consoles.len() {
        eprintln!(
            "  console: none (the committee was created before the operator port; --fresh adds it)"
        );
        return None;
    }
    let pages = crate::console::UpPages {
        observed: observed.clone(),
        submitted: submitted.clone(),
        nodes,
        source: Default::default(),
        last: Default::default(),
    };
    let at = crate::layout::up_operator_address(options.base_port);
    match bulwark_console::OperatorServer::start(
        at,
        Arc::new(pages),
        bulwark_console::Limits::default(),
    ) {
        Ok(server) => {
            eprintln!(
                "  console: http://{}/ (live, read-only; metrics at /metrics)",
                server.local_addr()
            );
            Some(server)
        }
        Err(error) => {
            eprintln!("  console: cannot listen on {at}: {error}; running without it");
            None
        }
    }
}

/// Runs the committee (setting it up first if needed) until `stop` is set or the duration
/// ends: waits for the genesis DKG, runs the load generator, prints the status line.
pub fn run_committee(
    options: &CommitteeOptions,
    stop: Arc<AtomicBool>,
) -> Result<RunFigures, CommitteeError> {
    let mut launched = launch(options)?;
    let started = Instant::now();
    let Some(mut clients) = wait_for_endpoints(options, &mut launched, &stop, started)? else {
        return Ok(RunFigures::default());
    };
    if wait_for_identity(options, &mut launched, &mut clients, &stop, started)?.is_none() {
        return Ok(RunFigures::default());
    }
    let gateways = start_gateways(options, &launched)?;
    let endpoints = launched.endpoints.clone();
    let submitted = Arc::new(AtomicU64::new(0));
    let load_stop = Arc::new(AtomicBool::new(false));
    let load = {
        let submitted = submitted.clone();
        let load_stop = load_stop.clone();
        let seed = options.seed;
        let rate = options.rate;
        std::thread::spawn(move || load_generator(&endpoints, seed, rate, &submitted, &load_stop))
    };
    let observed = crate::console::SharedObserved::default();
    let console = start_console(options, &launched, &observed, &submitted);
    let figures = crate::monitor::monitor(
        options,
        &mut launched,
        &mut clients,
        &stop,
        &submitted,
        &observed,
    );
    drop(console);
    load_stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    eprintln!("  stopping the gateways and the nodes");
    drop(gateways);
    drop(launched);
    Ok(figures)
}
