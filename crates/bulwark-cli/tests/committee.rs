//! The committee end to end with real processes on loopback: `bulwark up` starts 4 node
//! processes, runs the genesis DKG among them, trades, and stops; `bulwark verify` replays a
//! node's finalized log against the group key and fails on a log with one byte flipped; a
//! second `bulwark up` resumes the same venue; a node's config with a bad placement is refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::run;
use std::path::Path;

/// The process tests each run 4 node processes; on a 2-core machine running them at once
/// starves the nodes, so they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn base_port() -> u16 {
    // A base whose 1000 following ports include 4 × (4 p2p + 4 client) that bind now (a
    // previous run's sockets may linger in TIME_WAIT). Each test takes 200: p2p from its base,
    // client endpoints 100 above (and up's console, operator and gateway operator ports 49, 50
    // and 75 above); the TPM test's software TPMs take 8 ports 200 above its base; the
    // replacement test's five nodes take 820-824, 869-874, 895-899 and 920-924; the console
    // test takes 700 (its clients at 800-803 overlap the software TPMs', in turn: the tests
    // run one at a time; its gateways take 1000-1003 and 1100-1103).
    // All below Linux's ephemeral range (32768–60999): a port in it can be taken by any
    // outgoing connection (status polls, p2p dials, TPM sessions) between this check and the
    // node's bind, and the node then fails to start.
    const SLOTS: u16 = 12; // bases 20 000 .. 31 000
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let start = (std::process::id() % u32::from(SLOTS)) as u16;
    for step in 0..SLOTS {
        let base = 20_000 + ((start + step) % SLOTS) * 1000;
        // Per layout: p2p from its base, up's console 49 above, the nodes' operator ports 50
        // above, the gateways' 75 above, client endpoints 100 above.
        let layout_free = |at: u16, nodes: u16| {
            bindable(at + 49)
                && (0..nodes).all(|i| {
                    [0, 50, 75, 100]
                        .iter()
                        .all(|offset| bindable(at + offset + i))
                })
        };
        let all_free = (0..4u16).all(|test| layout_free(base + test * 200, 4))
            && layout_free(base + 700, 4)
            && (0..4u16).all(|i| bindable(base + 1000 + i) && bindable(base + 1100 + i))
            && (0..8u16).all(|i| bindable(base + 800 + i))
            && layout_free(base + 820, 5);
        if all_free {
            return base;
        }
    }
    panic!("no free port range for the committee tests");
}

/// The client endpoint of node `index` in a committee made with `--base-port port`.
fn client_endpoint(port: u16, index: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port + 100 + index))
}

/// The server port of node `index`'s software TPM under `up --tpm --base-port port`.
fn swtpm_port(port: u16, index: u16) -> u16 {
    port + 200 + 2 * index
}

/// Waits (15 s at most) until node 0's `evidence.jsonl` contains `needle`; returns its text.
fn wait_for_evidence(committee: &Path, needle: &str) -> String {
    use std::time::{Duration, Instant};
    let file = committee.join("node-0").join("evidence.jsonl");
    let waited = Instant::now();
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "no evidence containing {needle:?} recorded: {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What each node of a committee reports and the last lines it logged, for a failed wait.
fn diagnosis(committee: &Path, endpoint: impl Fn(u16) -> std::net::SocketAddr) -> String {
    let mut out = String::new();
    let nodes = (0..)
        .take_while(|i| committee.join(format!("node-{i}")).exists())
        .count();
    for i in 0..nodes as u16 {
        let status = status(endpoint(i));
        let height = status.as_ref().map(|s| s.height);
        let admission = status
            .as_ref()
            .map(|s| format!("{:?}", s.admission))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n== node {i}: height {height:?}, admission {admission}\n"
        ));
        let log = committee.join(format!("node-{i}")).join("test-node.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Runs `bulwark up` with committee data under `data`, p2p ports from `port`, for `duration`
/// seconds at `rate` orders/s, plus `extra` arguments; asserts it succeeded and returns its
/// stderr. The committee is then in `data/committee`.
fn up(data: &Path, port: u16, duration: u64, rate: u64, extra: &[&str]) -> String {
    let (port, duration, rate) = (port.to_string(), duration.to_string(), rate.to_string());
    let mut args = vec![
        "up",
        "--duration",
        &duration,
        "--rate",
        &rate,
        "--base-port",
        &port,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    stderr
}

fn log_file(node: &Path) -> std::path::PathBuf {
    let partition = node.join("storage").join("node-finalized");
    std::fs::read_dir(&partition)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn up_trades_on_four_processes_and_verify_checks_the_log() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = base_port();
    // The committee prices BTC from a venue capture (Binance bookTicker lines with receive
    // times in ns, 100 ms apart), replayed and looped by every node: 60 123.40 / 60 123.60.
    let capture = dir.path().join("venue.jsonl");
    let lines: String = (0..100u64)
        .map(|i| {
            format!(
                "{} {{\"u\":{i},\"s\":\"BTCUSDT\",\"b\":\"60123.40\",\"B\":\"2\",\"a\":\"60123.60\",\"A\":\"3\"}}\n",
                1_700_000_000_000_000_000 + i * 100_000_000
            )
        })
        .collect();
    std::fs::write(&capture, lines).unwrap();
    let capture_args = ["--oracle-capture", capture.to_str().unwrap()];
    let stderr = up(&data, port, 12, 400, &capture_args);
    assert!(stderr.contains("roots agreed"), "{stderr}");
    // The certified index is the capture's mid, not the synthetic development path.
    assert!(stderr.contains("BTC 60123.50"), "{stderr}");
    let node_log = std::fs::read_to_string(data.join("committee/node-2/node.log")).unwrap();
    assert!(node_log.contains("oracle sources"), "{node_log}");
    assert!(!node_log.contains("SYNTHETIC"), "{node_log}");
    let committee = data.join("committee");
    let node = committee.join("node-0");
    // The provisioned node key was encrypted in place by the (DEVELOPMENT) keystore.
    assert!(std::fs::read(node.join("node.key"))
        .unwrap()
        .starts_with(b"bulwark/keystore/v2\n"));
    let genesis = committee.join("genesis.json");
    // `bulwark verify` of `node`'s log, plus `extra` arguments.
    let verify_with = |node: &Path, extra: &[&str]| {
        let (node, genesis) = (node.to_str().unwrap(), genesis.to_str().unwrap());
        run(&[&["verify", "--data", node, "--genesis", genesis][..], extra].concat())
    };
    let verify = |node: &Path| verify_with(node, &[]);
    let (code, stdout, stderr) = verify(&node);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["verified"], true);
    // Without --identity the key came from the node's own data, and it says so loudly.
    assert!(stderr.contains("WARNING: no --identity"), "{stderr}");
    assert!(
        summary["identity_from"]
            .as_str()
            .unwrap()
            .contains("not independent"),
        "{summary}"
    );
    let heights = summary["heights"].as_u64().unwrap();
    assert!(heights > 5, "{summary}");
    assert!(summary["txs"].as_u64().unwrap() > 0, "{summary}");

    let vault_keys = every_node_holds_shares_of_one_vault_key(&committee);

    // Every node's log verifies and agrees on the root at the shortest common height is
    // covered by the status check above; here: node 3 verifies too.
    let (code, stdout, stderr) = verify(&committee.join("node-3"));
    assert_eq!(code, 0, "{stdout}{stderr}");

    // One byte flipped in the middle of node 1's log: verify fails and says where.
    let node1 = committee.join("node-1");
    let file = log_file(&node1);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let (code, stdout, _) = verify(&node1);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("\"verified\":false"), "{stdout}");

    // Resume: the same venue (same identity) continues from its logs.
    std::fs::write(&file, {
        bytes[at] ^= 0x40;
        &bytes
    })
    .unwrap();
    let identity = std::fs::read_to_string(node.join("identity.hex")).unwrap();
    let stderr = up(&data, port, 12, 400, &capture_args);
    assert!(stderr.contains("resuming the committee"), "{stderr}");
    // The DEVELOPMENT simulated chain's deposits went through blocks: attested by every node,
    // certified by n - f of them, checked by every replica (and by verify below).
    let credited: u64 = stderr
        .lines()
        .filter_map(|line| line.split_once(" chain deposits credited"))
        .filter_map(|(head, _)| head.rsplit(' ').next()?.parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(credited > 0, "{stderr}");
    // The load generator's withdrawals were signed by the vault between the processes.
    let signed: u64 = stderr
        .lines()
        .filter_map(|line| line.split_once(" withdrawals signed by the vault"))
        .filter_map(|(head, _)| {
            head.split(';')
                .next_back()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or(0);
    assert!(signed > 0, "{stderr}");
    let node_log = std::fs::read_to_string(node.join("node.log")).unwrap();
    assert!(
        node_log.contains("DEVELOPMENT simulated chain"),
        "{node_log}"
    );
    assert_eq!(
        std::fs::read_to_string(node.join("identity.hex")).unwrap(),
        identity,
        "a resumed venue keeps its group key"
    );
    assert_eq!(
        every_node_holds_shares_of_one_vault_key(&committee),
        vault_keys,
        "a resumed venue keeps its vault keys (loaded, not made again)"
    );
    for i in 0..4 {
        let log =
            std::fs::read_to_string(committee.join(format!("node-{i}")).join("node.log")).unwrap();
        assert!(
            log.contains("loaded the vault's key shares"),
            "node-{i} opened its shares on resume"
        );
        assert_eq!(
            log.matches("vault key generation complete").count(),
            1,
            "node-{i} made its vault keys once"
        );
    }
    let (code, stdout, stderr) = verify(&node);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let resumed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(resumed["heights"].as_u64().unwrap() > heights, "{resumed}");
    // With the venue's identity given, verify takes nothing from the node's data and says so.
    let (code, stdout, stderr) = verify_with(&node, &["--identity", identity.trim()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert!(
        stdout.contains("\"identity_from\":\"--identity\""),
        "{stdout}"
    );

    secret_files_that_were_swapped_or_exposed_are_refused(&committee);

    // Placement: a node config with two members in one data center is refused.
    let config = node.join("node.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let crowded = text.replacen("data_center = \"dc-1\"", "data_center = \"dc-0\"", 2);
    assert_ne!(crowded, text);
    let crowded_path = node.join("crowded.toml");
    std::fs::write(&crowded_path, crowded).unwrap();
    let (code, _, stderr) = run(&["node", "--config", crowded_path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("at most f = 1"), "{stderr}");
}

/// The vault's FROST key generation ran among the 4 processes over the p2p: every node holds a
/// sealed share of each key (epoch 0) and records the same public keys. Returns them.
fn every_node_holds_shares_of_one_vault_key(committee: &Path) -> serde_json::Value {
    let mut keys = Vec::new();
    for i in 0..4 {
        let vault = committee.join(format!("node-{i}")).join("vault");
        let text = std::fs::read_to_string(vault.join("keys.json"))
            .unwrap_or_else(|e| panic!("node-{i}: no vault keys.json ({e})"));
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        for share in ["bitcoin.0.share", "ed25519.0.share"] {
            let bytes = std::fs::read(vault.join(share)).unwrap();
            assert!(
                bytes.starts_with(b"bulwark/keystore/v2\n"),
                "node-{i}: {share} is sealed by the (DEVELOPMENT) keystore"
            );
        }
        keys.push(record);
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    assert_eq!(keys[0]["threshold"], 3);
    assert_eq!(keys[0]["bitcoin_xonly"].as_str().unwrap().len(), 64);
    assert_eq!(keys[0]["ed25519"].as_str().unwrap().len(), 64);
    keys.remove(0)
}

/// Attack 6 of #12: whoever can write node 0's directory plants a key file (node 1's sealed
/// key, or a plain key of their own) or loosens a secret's mode; node 0 refuses to start on
/// each, and the plain one is not rewritten.
fn secret_files_that_were_swapped_or_exposed_are_refused(committee: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let node = committee.join("node-0");
    let text = std::fs::read_to_string(node.join("node.toml")).unwrap();
    let planted = node.join("planted.key");
    let config = node.join("planted.toml");
    std::fs::write(
        &config,
        text.replacen("key_file = \"node.key\"", "key_file = \"planted.key\"", 1),
    )
    .unwrap();
    let start = || run(&["node", "--config", config.to_str().unwrap()]);
    let private = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap()
    };
    // Node 1's sealed key: another keystore key, so it does not open.
    std::fs::copy(committee.join("node-1").join("node.key"), &planted).unwrap();
    private(&planted);
    let (code, _, stderr) = start();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("swapped or foreign"), "{stderr}");
    // A plain key of the attacker's: refused without the migration flag, and left as it is.
    let plain = format!("{}\n", hex::encode([9u8; 32]));
    std::fs::write(&planted, &plain).unwrap();
    private(&planted);
    let (code, _, stderr) = start();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not sealed by the keystore"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), plain);
    // The real key, readable by others: refused before it is read.
    let key = node.join("node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = run(&["node", "--config", node.join("node.toml").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("mode 644"), "{stderr}");
    private(&key);
    std::fs::remove_file(&planted).unwrap();
    std::fs::remove_file(&config).unwrap();
}

/// The development client key `bulwark up` derives for `account` from seed 1.
fn dev_key(account: u64) -> ed25519_dalek::SigningKey {
    bulwark_testkit::client_key(1, account)
}

fn status(endpoint: std::net::SocketAddr) -> Option<bulwark_api::answers::NodeStatus> {
    let mut client =
        bulwark_node::client::Client::connect(endpoint, std::time::Duration::from_millis(500))
            .ok()?;
    client.status().ok()
}

/// Starts `bulwark node` (the binary at `exe`) for node `index` of the committee in
/// `committee`, its log in the node's directory as `test-node.log`.
fn spawn_node(committee: &Path, index: usize, exe: &Path) -> std::process::Child {
    let node = committee.join(format!("node-{index}"));
    let log = std::fs::File::create(node.join("test-node.log")).unwrap();
    let mut command = std::process::Command::new(exe);
    command.args(["node", "--config", node.join("node.toml").to_str().unwrap()]);
    // A node `up` provisioned but never started (a candidate) seals its key on its first start,
    // as `up`'s launcher does it.
    let marker = node.join("first-start");
    if marker.exists() {
        command.arg("--migrate-secrets");
        std::fs::remove_file(marker).unwrap();
    }
    command
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// How far behind the committee a follower (certified catch-up) may trail and count as
/// following.
const FOLLOW_LAG: u64 = 400;

/// Kills its processes when dropped, so a failing test leaves nothing running.
struct Procs(Vec<Option<std::process::Child>>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Four node processes started from the files `up` wrote, with what the process tests do to
/// them: wait, trade, call `bulwark client`.
struct Live {
    committee: std::path::PathBuf,
    port: u16,
    endpoints: Vec<std::net::SocketAddr>,
    procs: Procs,
    nonce: u64,
}

impl Live {
    /// Runs `up` briefly under `data` (the committee and its DKG), then starts its four nodes
    /// and waits until each answers.
    fn start(data: &Path, port: u16) -> Self {
        up(data, port, 2, 50, &[]);
        let committee = data.join("committee");
        let exe = Path::new(env!("CARGO_BIN_EXE_bulwark"));
        let procs = Procs(
            (0..4)
                .map(|i| Some(spawn_node(&committee, i, exe)))
                .collect(),
        );
        let live = Self {
            endpoints: (0..4).map(|i| client_endpoint(port, i)).collect(),
            committee,
            port,
            procs,
            // Nonces far above the `up` run's.
            nonce: 1_000_000,
        };
        live.wait_until("all four nodes", 180, &mut || {
            (0..4).all(|i| live.height_of(i).is_some())
        });
        live
    }

    fn height_of(&self, index: usize) -> Option<u64> {
        status(self.endpoints[index]).map(|s| s.height)
    }

    /// Polls `done` every 200 ms; fails with every node's status and log after `limit_s`.
    fn wait_until(&self, what: &str, limit_s: u64, done: &mut dyn FnMut() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(limit_s),
                "timed out waiting for {what}: {}",
                diagnosis(&self.committee, |i| client_endpoint(self.port, i))
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Taker 5 buys one from maker 1's resting sell, both sent to node `to`.
    fn trade(&mut self, to: usize) {
        use bulwark_engine::codec::SignedTx;
        use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
        use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
        let mut client = bulwark_node::client::Client::connect(
            self.endpoints[to],
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let mut txs = Vec::new();
        for (account, side) in [(1u64, Side::Sell), (5, Side::Buy)] {
            self.nonce += 1;
            let command = ClientCommand::Limit(LimitOrder {
                instrument: InstrumentId(0),
                side,
                price: 600_001,
                qty: 1,
                tif: TimeInForce::Gtc,
                post_only: false,
                reduce_only: false,
                stp: SelfTradePrevention::CancelResting,
                client_order_id: self.nonce,
            });
            let key = dev_key(account);
            txs.push(SignedTx::sign(
                AccountId(account),
                self.nonce,
                command,
                &key,
            ));
        }
        let outcome = client.submit(&txs).unwrap();
        assert!(outcome.refused.is_empty(), "{outcome:?}");
    }

    /// `rounds` trades spread over the nodes in `to`, 50 ms apart.
    fn trade_for(&mut self, rounds: usize, to: &[usize]) {
        for round in 0..rounds {
            self.trade(to[round % to.len()]);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `bulwark client --node <node 1> args...`.
    fn client(&self, args: &[&str]) -> (i32, String, String) {
        let node = self.endpoints[1].to_string();
        let mut all = vec!["client", "--node", node.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Account 9 as `bulwark client account 9` prints it.
    fn account_9(&self) -> serde_json::Value {
        let (_, stdout, _) = self.client(&["account", "9"]);
        serde_json::from_str(stdout.trim()).unwrap_or_default()
    }

    /// A signed `bulwark client` command for account 9 (`order`, `stop`, `cancel`) with its
    /// key file, a nonce and the command's own arguments; asserts it was accepted.
    fn send_as_9(&self, key: &str, command: &str, nonce: u64, rest: &[&str]) {
        let nonce = nonce.to_string();
        let mut args = vec![command, "--account", "9", "--key", key, "--nonce", &nonce];
        args.extend_from_slice(rest);
        let (code, stdout, stderr) = self.client(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("\"accepted\":1"), "{stdout}");
    }
}

#[test]
fn a_node_killed_mid_trading_restarts_catches_up_and_agrees() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut live = Live::start(&dir.path().join("data"), base_port() + 200);
    live.trade_for(20, &[0, 1, 2, 3]);

    let key_file = dir.path().join("account-9.key");
    std::fs::write(&key_file, hex::encode(dev_key(9).to_bytes())).unwrap();
    let key = key_file.to_str().unwrap();
    let (code, stdout, stderr) = live.client(&["status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"height\""), "{stdout}");
    metrics_parse_and_agree_with_the_status(&live);
    an_order_rests_and_cancels(&live, key);
    a_stop_rests_and_cancels(&live, key);
    bad_client_input_is_refused(&live, key);
    withdrawals_are_signed_by_the_vault_and_verify(&live, key);
    a_coordinator_killed_mid_round_is_replaced_and_the_withdrawal_is_paid_once(&mut live, key);

    let target = node_2_is_killed_and_catches_up(&mut live);
    live.trade(2);
    drop(live.procs);
    every_log_verifies_and_all_agree(&live.committee, target);
}

/// Issue #17: each node's operator port serves metrics that the reference OpenMetrics parser
/// (Python `prometheus_client`) reads, and that show the facts its status answer shows.
fn metrics_parse_and_agree_with_the_status(live: &Live) {
    use bulwark_testkit::metrics::{parse_openmetrics, scrape};
    live.wait_until("every node to finalize client orders", 60, &mut || {
        (0..4).all(|i| status(live.endpoints[i]).is_some_and(|s| s.finalized_txs > 0))
    });
    for index in 0..4 {
        let before = status(live.endpoints[index]).expect("the node answers its status");
        let operator = std::net::SocketAddr::from(([127, 0, 0, 1], live.port + 50 + index as u16));
        let text = scrape(operator).unwrap_or_else(|e| panic!("node {index}: {e}"));
        let after = status(live.endpoints[index]).expect("the node answers its status");
        let Some(families) = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have a Python with prometheus_client (.ci/run installs it)"
            );
            eprintln!("SKIPPED: the OpenMetrics parse (no Python with prometheus_client); .ci/run installs it");
            assert!(text.contains("bulwark_finalized_height "), "{text}");
            continue;
        };
        let value = |sample: &str| {
            families
                .value(sample, &[])
                .unwrap_or_else(|| panic!("node {index}: no one sample {sample} in\n{text}"))
        };
        // The height the metrics show lies between the status answers around the scrape.
        let height = value("bulwark_finalized_height");
        assert!(
            (before.height as f64..=after.height as f64).contains(&height),
            "node {index}: height {height} outside {}..={}",
            before.height,
            after.height
        );
        assert_eq!(
            families.family("bulwark_orders_finalized").unwrap()["type"],
            "counter"
        );
        let finalized = value("bulwark_orders_finalized_total");
        assert!(
            (before.finalized_txs as f64..=after.finalized_txs as f64).contains(&finalized)
                && finalized > 0.0,
            "node {index}: {finalized} orders finalized, the status said {} then {}",
            before.finalized_txs,
            after.finalized_txs
        );
        let latency = families
            .family("bulwark_submit_to_finalized_seconds")
            .unwrap();
        assert_eq!(latency["type"], "histogram");
        assert_eq!(latency["unit"], "seconds");
        assert!(value("bulwark_block_check_seconds_count") > 0.0);
        assert_eq!(value("bulwark_epoch") as u64, after.epoch, "node {index}");
        // The sentinel's view: four admitted members, one sample each, as in the status.
        let admitted = families.samples("bulwark_member_state", &[("state", "admitted")]);
        assert_eq!(admitted.len(), 4, "node {index}: {admitted:?}");
        assert_eq!(
            families.value("bulwark_members", &[("state", "admitted")]),
            Some(4.0)
        );
        // Every guard of every underlying is listed, open or not; the index is certified.
        assert_eq!(families.samples("bulwark_oracle_guard_open", &[]).len(), 10);
        let btc = families
            .value("bulwark_index_price", &[("underlying", "BTC")])
            .unwrap_or_else(|| panic!("node {index}: no BTC index in\n{text}"));
        assert!(btc > 0.0, "node {index}: BTC index {btc}");
        assert!(value("bulwark_peers_admitted") >= 3.0);
        common::metrics::every_family_is_documented(&families.names());
    }
}

/// Issue #14's refresh at a removal: the three honest nodes refresh the vault's shares among
/// themselves at epoch 1 (same keys, new shares, the epoch-0 shares deleted), and a withdrawal
/// after it is signed with the new shares under the unchanged Ed25519 key.
fn the_vault_refreshes_without_node3_and_still_signs(
    dir: &Path,
    committee: &Path,
    endpoint: impl Fn(u16) -> std::net::SocketAddr,
) {
    use std::time::{Duration, Instant};
    let keys_of = |i: usize| -> serde_json::Value {
        let path = committee.join(format!("node-{i}/vault/keys.json"));
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    let genesis_keys = keys_of(3);
    assert_eq!(genesis_keys["epoch"], 0, "node 3 kept its epoch-0 record");
    // A node writes keys.json with the new shares and deletes the old ones just after (its new
    // nonce books are synced in between): wait for both.
    let old_share = |i: usize, chain: &str| {
        committee
            .join(format!("node-{i}/vault/{chain}.0.share"))
            .exists()
    };
    let waited = Instant::now();
    while !(0..3)
        .all(|i| keys_of(i)["epoch"] == 1 && !old_share(i, "bitcoin") && !old_share(i, "ed25519"))
    {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "the honest nodes did not refresh the vault at epoch 1 and delete the old shares: {:?}; {}",
            (0..3).map(keys_of).collect::<Vec<_>>(),
            diagnosis(committee, &endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for i in 0..3 {
        let keys = keys_of(i);
        assert_eq!(keys["holders"].as_array().unwrap().len(), 3, "{keys}");
        for field in ["bitcoin", "bitcoin_xonly", "ed25519", "threshold"] {
            assert_eq!(
                keys[field], genesis_keys[field],
                "node {i}: the refresh kept the {field} key"
            );
        }
        let vault = committee.join(format!("node-{i}/vault"));
        for chain in ["bitcoin", "ed25519"] {
            assert!(
                vault.join(format!("{chain}.1.share")).exists(),
                "node {i}: {chain} share of epoch 1"
            );
            assert!(
                !vault.join(format!("{chain}.0.share")).exists(),
                "node {i} deleted its {chain} share of epoch 0"
            );
        }
    }
    // Account 9 withdraws on the Ed25519 key through node 0; the three sign it.
    an_ed25519_withdrawal_is_signed(
        (dir, committee, &endpoint),
        &[0, 1, 2],
        (8_000_000, 0x44),
        &genesis_keys["ed25519"],
        "after the refresh",
    );
}

/// Account 9 withdraws 300 000 micros on the Ed25519 key through `nodes[0]` (nonce and
/// destination seed from `which`); waits (90 s at most) until each of `nodes` shows it signed,
/// and checks the signature with ed25519-dalek under `group`.
fn an_ed25519_withdrawal_is_signed(
    (dir, committee, endpoint): (&Path, &Path, impl Fn(u16) -> std::net::SocketAddr),
    nodes: &[u16],
    (nonce, seed): (u64, u8),
    group: &serde_json::Value,
    when: &str,
) {
    use std::time::{Duration, Instant};
    let key_file = dir.join(format!("account-9-{seed}.key"));
    std::fs::write(&key_file, hex::encode(dev_key(9).to_bytes())).unwrap();
    let destination = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes(),
    );
    let via = endpoint(nodes[0]).to_string();
    let submit = |nonce: u64| {
        let nonce = nonce.to_string();
        let (code, stdout, stderr) = run(&[
            "client",
            "--node",
            &via,
            "withdraw",
            "--account",
            "9",
            "--key",
            key_file.to_str().unwrap(),
            "--nonce",
            &nonce,
            "--amount",
            "300000",
            "--destination",
            &destination,
            "--chain",
            "ed25519",
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("\"accepted\":1"), "{stdout}");
    };
    let listed = |i: u16| -> Option<serde_json::Value> {
        withdrawals_at(endpoint(i), Some(9))["withdrawals"]
            .as_array()?
            .iter()
            .find(|w| w["destination"] == destination.as_str())
            .cloned()
    };
    let signed = |i: u16| listed(i).filter(|w| w["state"] == "signed");
    let committed_nonce = || -> Option<u64> {
        let (_, stdout, _) = run(&["client", "--node", &via, "account", "9"]);
        serde_json::from_str::<serde_json::Value>(stdout.trim())
            .ok()?
            .get("nonce")?
            .as_u64()
    };
    let mut nonce = nonce;
    submit(nonce);
    let waited = Instant::now();
    while !nodes.iter().all(|i| signed(*i).is_some()) {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "the withdrawal {when} was not signed: {}",
            diagnosis(committee, &endpoint)
        );
        // A withdrawal is refused while an oracle guard is open (it may be for a round or two
        // around an epoch change): once the account's nonce shows it executed without a
        // withdrawal, submit it again with the next nonce.
        if listed(nodes[0]).is_none() && committed_nonce().is_some_and(|c| c >= nonce) {
            eprintln!("withdrawal with nonce {nonce} was refused by the engine; submitting again");
            nonce += 1;
            submit(nonce);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ed25519_withdrawal_verifies(&signed(nodes[0]).unwrap(), &destination, 300_000, group);
}

/// `withdrawal` (as `client withdrawals --json` shows it) carries an ed25519-dalek strict
/// signature under the vault key `group` (hex) over the message this test builds itself:
/// namespace ‖ id ‖ destination ‖ amount, big-endian.
fn ed25519_withdrawal_verifies(
    withdrawal: &serde_json::Value,
    destination: &str,
    amount: u64,
    group: &serde_json::Value,
) {
    let mut message = b"bulwark/vault/ed25519-withdrawal/v1".to_vec();
    message.extend_from_slice(&withdrawal["id"].as_u64().unwrap().to_be_bytes());
    message.extend_from_slice(&hex::decode(destination).unwrap());
    message.extend_from_slice(&amount.to_be_bytes());
    let group: [u8; 32] = hex::decode(group.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let signature: [u8; 64] = hex::decode(withdrawal["signatures"][0].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&group)
        .unwrap()
        .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature))
        .expect("ed25519 strict under the vault's key");
}

/// Account 9 withdraws on both keys with `client withdraw`; the members sign each over the p2p
/// (`client withdrawals` shows them signed at every node), and the signatures verify with the
/// standard verifiers over messages this test computes itself: libsecp256k1 BIP340 over the
/// BIP341 key-path sighash of the raw transaction under the vault's output key, and
/// ed25519-dalek `verify_strict` over the canonical message under the vault's Ed25519 key.
fn withdrawals_are_signed_by_the_vault_and_verify(live: &Live, key: &str) {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let payee = bitcoin::secp256k1::Keypair::from_seckey_slice(&secp, &[0x42; 32]).unwrap();
    let btc_destination = hex::encode(payee.x_only_public_key().0.serialize());
    let ed_destination = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[0x43; 32])
            .verifying_key()
            .to_bytes(),
    );
    live.send_as_9(
        key,
        "withdraw",
        6_000_000,
        &["--amount", "1500000", "--destination", &btc_destination],
    );
    live.send_as_9(
        key,
        "withdraw",
        6_000_001,
        &[
            "--amount",
            "700000",
            "--destination",
            &ed_destination,
            "--chain",
            "ed25519",
        ],
    );
    // A destination that is not a key is refused by the CLI before anything is sent.
    let (code, _, stderr) = live.client(&[
        "withdraw",
        "--account",
        "9",
        "--key",
        key,
        "--nonce",
        "6000002",
        "--amount",
        "1",
        "--destination",
        &"00".repeat(32),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a key"), "{stderr}");
    let withdrawals = |index: usize| withdrawals_at(live.endpoints[index], Some(9));
    live.wait_until("both withdrawals signed at every node", 120, &mut || {
        (0..4).all(|i| {
            let answer = withdrawals(i);
            let list = answer["withdrawals"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            list.len() == 2 && list.iter().all(|w| w["state"] == "signed")
        })
    });
    let answer = withdrawals(1);
    for other in [0, 2, 3] {
        assert_eq!(
            withdrawals(other)["withdrawals"],
            answer["withdrawals"],
            "node {other} shows the same signatures"
        );
    }
    let list = answer["withdrawals"].as_array().unwrap();
    // The member that proposed the block debiting each withdrawal coordinated its signing (it
    // has its turn for ten seconds; these are signed within milliseconds).
    for withdrawal in list {
        let id = withdrawal["id"].as_u64().unwrap();
        assert!(
            withdrawal["proposer"]
                .as_str()
                .is_some_and(|p| p.len() == 64),
            "the ledger names the proposer: {withdrawal}"
        );
        let said = format!("coordinated the signing of withdrawal {id} ");
        let coordinators: Vec<String> = (0..4)
            .filter_map(|i| {
                plain_log(&live.committee, i)
                    .lines()
                    .find(|line| line.contains(&said))
                    .map(|line| format!("node {i}: {line}"))
            })
            .collect();
        assert_eq!(coordinators.len(), 1, "one coordinator: {coordinators:?}");
        assert!(
            coordinators[0].contains("as the proposer of the block that debited it"),
            "{coordinators:?}"
        );
    }
    let btc = list.iter().find(|w| w["chain"] == "bitcoin").unwrap();
    bitcoin_withdrawal_verifies(
        btc,
        &answer["vault"]["bitcoin_xonly"],
        payee.x_only_public_key().0,
        1_500_000,
    );
    let ed = list.iter().find(|w| w["chain"] == "ed25519").unwrap();
    ed25519_withdrawal_verifies(ed, &ed_destination, 700_000, &answer["vault"]["ed25519"]);
}

/// `btc` (a Bitcoin withdrawal as `client withdrawals --json` shows it): its raw transaction
/// pays `payee` exactly `amount` sats (change to the vault only), and each input's witness is a
/// BIP340 signature of its BIP341 sighash under the vault's output key `vault_xonly`, checked
/// with libsecp256k1.
fn bitcoin_withdrawal_verifies(
    btc: &serde_json::Value,
    vault_xonly: &serde_json::Value,
    payee: bitcoin::secp256k1::XOnlyPublicKey,
    amount: u64,
) {
    use bitcoin::hashes::Hash as _;
    let secp = bitcoin::secp256k1::Secp256k1::verification_only();
    let output_key = bitcoin::secp256k1::XOnlyPublicKey::from_slice(
        &hex::decode(vault_xonly.as_str().unwrap()).unwrap(),
    )
    .unwrap();
    // Bitcoin: the raw transaction pays the destination exactly, and each input's witness is a
    // BIP340 signature of its BIP341 sighash under the output key.
    assert_eq!(&btc["public_key"], vault_xonly);
    let tx: bitcoin::Transaction =
        bitcoin::consensus::deserialize(&hex::decode(btc["tx_hex"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(btc["txid"].as_str().unwrap(), tx.compute_txid().to_string());
    let vault_script = bitcoin::ScriptBuf::new_p2tr_tweaked(
        bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(output_key),
    );
    let payee_script = bitcoin::ScriptBuf::new_p2tr_tweaked(
        bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(payee),
    );
    let paid: Vec<_> = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == payee_script)
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].value.to_sat(), amount);
    assert!(tx
        .output
        .iter()
        .all(|o| o.script_pubkey == payee_script || o.script_pubkey == vault_script));
    let prevouts: Vec<bitcoin::TxOut> = btc["prevout_sats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sats| bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(sats.as_u64().unwrap()),
            script_pubkey: vault_script.clone(),
        })
        .collect();
    assert_eq!(prevouts.len(), tx.input.len());
    let mut cache = bitcoin::sighash::SighashCache::new(&tx);
    for (i, input) in tx.input.iter().enumerate() {
        let sighash = cache
            .taproot_key_spend_signature_hash(
                i,
                &bitcoin::sighash::Prevouts::All(&prevouts),
                bitcoin::TapSighashType::Default,
            )
            .unwrap();
        let witness: Vec<&[u8]> = input.witness.iter().collect();
        assert_eq!(witness.len(), 1);
        let signature = bitcoin::secp256k1::schnorr::Signature::from_slice(witness[0]).unwrap();
        let message = bitcoin::secp256k1::Message::from_digest(sighash.to_byte_array());
        secp.verify_schnorr(&signature, &message, &output_key)
            .expect("BIP340 under the vault's output key");
        assert_eq!(
            btc["messages"][i].as_str().unwrap(),
            hex::encode(sighash.to_byte_array())
        );
    }
}

/// `bulwark client withdrawals --json` at `node` (of `account`, or every account), parsed; null
/// when the node does not answer.
fn withdrawals_at(node: std::net::SocketAddr, account: Option<u64>) -> serde_json::Value {
    let node = node.to_string();
    let account = account.map(|a| a.to_string());
    let mut args = vec!["client", "--node", &node, "withdrawals", "--json"];
    if let Some(account) = &account {
        args.extend(["--account", account]);
    }
    let (_, stdout, _) = run(&args);
    serde_json::from_str(stdout.trim()).unwrap_or_default()
}

/// Node `index`'s log, without its colours.
fn plain_log(committee: &Path, index: usize) -> String {
    let log = std::fs::read_to_string(committee.join(format!("node-{index}/test-node.log")))
        .unwrap_or_default();
    let mut plain = String::with_capacity(log.len());
    let mut escape = false;
    for c in log.chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
}

/// Issue #14's kill -9 of the coordinator mid-round, between processes: account 9 withdraws on
/// the Bitcoin key. The moment any member writes its watermarks for the round (a member writes
/// them only in a round, and releases its share only after that synced write, so the
/// coordinator cannot have combined the signature yet) the test freezes all four nodes
/// (SIGSTOP), finds the coordinator (the member that proposed the debiting block: its log says
/// it started the round), SIGKILLs it and lets the others go on. The next member in turn starts
/// a new round with fresh nonces, the three sign it, the restarted coordinator takes the
/// record, and all four show one transaction, which libsecp256k1 verifies.
fn a_coordinator_killed_mid_round_is_replaced_and_the_withdrawal_is_paid_once(
    live: &mut Live,
    key: &str,
) {
    use std::time::{Duration, Instant};
    let withdrawal = status(live.endpoints[1]).unwrap().withdrawals_requested + 1;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pids: Vec<Pid> = live
        .procs
        .0
        .iter()
        .map(|child| Pid::from_raw(child.as_ref().unwrap().id() as i32))
        .collect();
    let modified =
        |path: &std::path::PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let watched: Vec<_> = (0..4)
        .map(|i| {
            let path = live
                .committee
                .join(format!("node-{i}/vault/bitcoin.watermarks"));
            let before = modified(&path);
            (path, before)
        })
        .collect();
    let signal = |pids: &[Pid], signal: Signal| {
        for pid in pids {
            kill(*pid, signal).expect("a node process this test spawned takes a signal");
        }
    };
    let frozen = {
        let pids = pids.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let seen = loop {
                let writing = watched
                    .iter()
                    .any(|(path, before)| modified(path) != *before);
                if writing || started.elapsed() > Duration::from_secs(60) {
                    break writing;
                }
                std::thread::sleep(Duration::from_micros(100));
            };
            if seen {
                signal(&pids, Signal::SIGSTOP);
            }
            seen
        })
    };
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let payee = bitcoin::secp256k1::Keypair::from_seckey_slice(&secp, &[0x47; 32]).unwrap();
    let destination = hex::encode(payee.x_only_public_key().0.serialize());
    live.send_as_9(
        key,
        "withdraw",
        6_000_010,
        &["--amount", "800000", "--destination", &destination],
    );
    assert!(
        frozen.join().unwrap(),
        "no member wrote a watermark for withdrawal {withdrawal} within 60 s"
    );
    let said = format!("coordinating the signing of withdrawal {withdrawal} (");
    let coordinators: Vec<usize> = (0..4)
        .filter(|i| plain_log(&live.committee, *i).contains(&said))
        .collect();
    assert_eq!(coordinators.len(), 1, "one coordinator started a round");
    let coordinator = coordinators[0];
    let mut child = live.procs.0[coordinator].take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let others: Vec<Pid> = (0..4)
        .filter(|i| *i != coordinator)
        .map(|i| pids[i])
        .collect();
    signal(&others, Signal::SIGCONT);
    let signed_here = |log: &str| {
        log.lines().any(|l| {
            l.contains("withdrawal signed by the vault")
                && l.contains(&format!("withdrawal={withdrawal} "))
        })
    };
    assert!(
        !signed_here(&plain_log(&live.committee, coordinator)),
        "the coordinator finished the round before it was killed: not mid-round"
    );
    // It comes back at once (a crash and a restart), as a member whose round was cut short.
    live.procs.0[coordinator] = Some(spawn_node(
        &live.committee,
        coordinator,
        Path::new(env!("CARGO_BIN_EXE_bulwark")),
    ));
    let signed = |index: usize| -> Option<serde_json::Value> {
        let answer = withdrawals_at(live.endpoints[index], None);
        let found = answer["withdrawals"]
            .as_array()?
            .iter()
            .find(|w| w["id"].as_u64() == Some(withdrawal) && w["state"] == "signed")?
            .clone();
        Some(serde_json::json!({ "withdrawal": found, "vault": answer["vault"].clone() }))
    };
    live.wait_until(
        "the withdrawal signed in a new round and known at every node",
        120,
        &mut || (0..4).all(|i| signed(i).is_some()),
    );
    let records: Vec<serde_json::Value> = (0..4).map(|i| signed(i).unwrap()).collect();
    for record in &records[1..] {
        assert_eq!(
            record["withdrawal"]["tx_hex"], records[0]["withdrawal"]["tx_hex"],
            "one transaction for the withdrawal at every node"
        );
    }
    bitcoin_withdrawal_verifies(
        &records[0]["withdrawal"],
        &records[0]["vault"]["bitcoin_xonly"],
        payee.x_only_public_key().0,
        800_000,
    );
}

/// `client order` rests a buy below the market, `client cancel` takes it off.
fn an_order_rests_and_cancels(live: &Live, key: &str) {
    // A risk-increasing order is refused (and its nonce spent) while an oracle guard is open,
    // as it may be for a round or two after the nodes restart: once the account's committed
    // nonce shows an order was executed without resting, submit again with the next nonce.
    let mut order_id = None;
    let mut next_nonce = 5_000_000u64;
    let mut pending: Option<u64> = None;
    live.wait_until("the order to rest", 90, &mut || {
        if pending.is_none() {
            let order = ["--side", "buy", "--price", "597000", "--qty", "2"];
            live.send_as_9(key, "order", next_nonce, &order);
            pending = Some(next_nonce);
            next_nonce += 1;
        }
        let account = live.account_9();
        order_id = account["open_orders"][0]["order_id"].as_u64();
        let committed = account["nonce"].as_u64();
        if order_id.is_none() && committed.is_some_and(|c| Some(c) >= pending) {
            eprintln!("order {pending:?} was executed without resting; submitting again");
            pending = None;
        }
        order_id.is_some()
    });
    let order_id = order_id.unwrap().to_string();
    live.send_as_9(key, "cancel", 5_000_101, &["--order-id", &order_id]);
    live.wait_until("the cancel to finalize", 90, &mut || {
        live.account_9()["open_orders"] == serde_json::json!([])
    });
}

/// A stop rests off the book until the mark falls to its trigger (far below here), is listed
/// with the account, and cancels by its id like an order. It is reduce-only: a risk-increasing
/// stop is refused while an oracle guard is open, and with a node killed above the committee
/// may briefly miss a round.
fn a_stop_rests_and_cancels(live: &Live, key: &str) {
    let stop = [
        "--reduce-only",
        "--side",
        "sell",
        "--trigger",
        "10",
        "--qty",
        "1",
    ];
    live.send_as_9(key, "stop", 5_000_103, &stop);
    let mut stop_id = None;
    live.wait_until("the stop to rest", 90, &mut || {
        stop_id = live.account_9()["stops"][0]["order_id"].as_u64();
        stop_id.is_some()
    });
    let account = live.account_9();
    assert_eq!(account["stops"][0]["direction"], "falls", "{account}");
    assert_eq!(account["stops"][0]["reduce_only"], true, "{account}");
    let stop_id = stop_id.unwrap().to_string();
    live.send_as_9(key, "cancel", 5_000_104, &["--order-id", &stop_id]);
    live.wait_until("the stop cancel to finalize", 90, &mut || {
        live.account_9()["stops"] == serde_json::json!([])
    });
    let (code, stdout, stderr) = live.client(&["book", "0", "--depth", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"bids\""), "{stdout}");
}

/// An unknown account, a side that is neither buy nor sell, and a replayed nonce.
fn bad_client_input_is_refused(live: &Live, key: &str) {
    let (code, _, stderr) = live.client(&["account", "424242"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("does not exist"), "{stderr}");
    let order = |nonce: &str, side: &str| {
        live.client(&[
            "order",
            "--account",
            "9",
            "--key",
            key,
            "--nonce",
            nonce,
            "--side",
            side,
            "--price",
            "1",
            "--qty",
            "1",
        ])
    };
    let (code, _, stderr) = order("5000102", "up");
    assert_eq!(code, 2);
    assert!(stderr.contains("buy or sell"), "{stderr}");
    let (code, stdout, _) = order("1", "buy");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("already used"),
        "a replayed nonce is refused: {stdout}"
    );
}

/// kill -9 node 2 while trading goes on through the others, restart it, and wait until it has
/// replayed its own log and caught up; returns the height it caught up to.
fn node_2_is_killed_and_catches_up(live: &mut Live) -> u64 {
    let before = live.height_of(2).unwrap();
    let mut victim = live.procs.0[2].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let others_at_kill = live.height_of(0).unwrap();
    live.trade_for(40, &[0, 1, 3]);
    live.wait_until("the others to go on without node 2", 90, &mut || {
        live.height_of(0).is_some_and(|h| h > others_at_kill + 20)
    });
    let exe = Path::new(env!("CARGO_BIN_EXE_bulwark"));
    live.procs.0[2] = Some(spawn_node(&live.committee, 2, exe));
    let target = live.height_of(0).unwrap();
    live.wait_until("node 2 to catch up", 120, &mut || {
        live.height_of(2).is_some_and(|h| h >= target)
    });
    assert!(target > before);
    target
}

/// Every node's log verifies, whole and up to `target`, and all four agree on the root there.
fn every_log_verifies_and_all_agree(committee: &Path, target: u64) {
    let genesis = committee.join("genesis.json");
    let common = target.to_string();
    let mut roots = Vec::new();
    for index in 0..4 {
        let node = committee.join(format!("node-{index}"));
        let (node, genesis) = (node.to_str().unwrap(), genesis.to_str().unwrap());
        let verify = ["verify", "--data", node, "--genesis", genesis];
        let (code, stdout, stderr) = run(&[&verify[..], &["--until", &common]].concat());
        assert_eq!(code, 0, "node {index}: {stdout}{stderr}");
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(
            summary["heights"].as_u64(),
            Some(target),
            "node {index}: {summary}"
        );
        roots.push(summary["root"].as_str().unwrap().to_string());
        let (code, stdout, stderr) = run(&verify);
        assert_eq!(code, 0, "node {index}: {stdout}{stderr}");
    }
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
}

/// A copy of the `bulwark` binary with 16 bytes appended: the same program, another
/// measurement.
fn tampered_binary(dir: &Path) -> std::path::PathBuf {
    let tampered = dir.join("bulwark-tampered");
    std::fs::copy(env!("CARGO_BIN_EXE_bulwark"), &tampered).unwrap();
    let mut bytes = std::fs::read(&tampered).unwrap();
    bytes.extend_from_slice(b"tampered-binary!");
    std::fs::write(&tampered, bytes).unwrap();
    tampered
}

/// Waits (20 s at most) until each of nodes 0-2 reports node 3 cut off with `reason` among its
/// appraisal's reasons, and admitting `admitted` peers; returns nothing, fails otherwise.
fn wait_until_node3_is_cut_off(
    endpoint: impl Fn(u16) -> std::net::SocketAddr,
    reason: &str,
    admitted: usize,
) {
    use std::time::{Duration, Instant};
    let waited = Instant::now();
    for i in 0..3 {
        loop {
            let status = status(endpoint(i)).unwrap();
            let peers = status.admission.clone().unwrap_or_default();
            let node3 = peers.iter().find(|(name, _)| name.starts_with("dc-3/"));
            let admitted_now = peers.values().filter(|p| p.admitted).count();
            if let Some((_, node3)) = node3 {
                if node3.cut_off && admitted_now == admitted {
                    assert!(!node3.admitted, "{status:?}");
                    assert!(
                        node3.reasons.iter().any(|r| r.contains(reason)),
                        "{status:?}"
                    );
                    break;
                }
            }
            assert!(
                waited.elapsed() < Duration::from_secs(20),
                "node {i} did not cut node 3 off: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Issue #13's removal, shared by the process tests: an honest committee of four (made by `up`
/// with `up_extra`), then node 3 comes back from a tampered binary; the three honest nodes cut
/// it off, accuse it, quarantine it, reshare the key among themselves, move to epoch 1 without
/// it and keep trading. Returns the committee directory, the processes (node 3 still running
/// the tampered binary) and the height at which the honest nodes were in epoch 1.
fn node3_tampered_and_removed(
    dir: &Path,
    port: u16,
    up_extra: &[&str],
) -> (std::path::PathBuf, Procs, u64) {
    use std::time::{Duration, Instant};
    let data = dir.join("data");
    // An honest committee first: admission and the genesis DKG among all four.
    // Long enough that a first block is final after the DKG (2 s sometimes was not).
    up(&data, port, 5, 50, up_extra);
    let committee = data.join("committee");
    // How far node 3's own log reaches: it replays that much on restart, and no further.
    let (code, stdout, stderr) = run(&[
        "verify",
        "--data",
        committee.join("node-3").to_str().unwrap(),
        "--genesis",
        committee.join("genesis.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let logged: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let logged = logged["heights"].as_u64().unwrap();
    // Node 3 comes back from a tampered binary: the same program with 16 bytes appended.
    let tampered = tampered_binary(dir);
    let spawn = |index: usize, exe: &Path| spawn_node(&committee, index, exe);
    let honest = Path::new(env!("CARGO_BIN_EXE_bulwark"));
    let procs = Procs(vec![
        Some(spawn(0, honest)),
        Some(spawn(1, honest)),
        Some(spawn(2, honest)),
        Some(spawn(3, &tampered)),
    ]);
    let endpoint = |i: u16| client_endpoint(port, i);
    let height_of = |i: u16| status(endpoint(i)).map(|s| s.height);
    let started = Instant::now();
    // The honest three go well past what node 3 had logged; node 3 answers (it runs) but
    // gets no further than its own log (it replays that much at start, and no more).
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the three honest nodes did not go past height {}: {}",
            logged + 30,
            diagnosis(&committee, endpoint)
        );
        if (0..3).all(|i| height_of(i).is_some_and(|h| h > logged + 30)) && height_of(3).is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        height_of(3).unwrap() <= logged,
        "the tampered node must not finalize anything"
    );
    // Every honest node cuts node 3 off (its evidence names the measurement it fails) and
    // admits the two other honest nodes.
    wait_until_node3_is_cut_off(endpoint, "app-measurement-mismatch", 2);
    assert!(
        height_of(3).unwrap() <= logged,
        "still no progress at the tampered node"
    );
    // The signed contraindicated appraisal is recorded for the sentinel.
    wait_for_evidence(&committee, "contraindicated");
    // The sentinel (issue #13): each honest node accuses node 3, the accusations travel
    // between the processes, f+1 of them quarantine it, the three reshare the key among
    // themselves and move to epoch 1 without it, and keep trading.
    let waited = Instant::now();
    let at_epoch_1 = loop {
        let statuses: Vec<_> = (0..3).map(|i| status(endpoint(i))).collect();
        if statuses
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.epoch == 1))
        {
            let first = statuses[0].clone().unwrap();
            let removed: Vec<&String> = first
                .members
                .iter()
                .filter(|(_, state)| *state == "removed")
                .map(|(key, _)| key)
                .collect();
            assert_eq!(removed.len(), 1, "{first:?}");
            assert_eq!(
                first.members.values().filter(|s| *s == "admitted").count(),
                3,
                "{first:?}"
            );
            break first.height;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "the honest nodes did not move to epoch 1 without node 3: {}",
            diagnosis(&committee, endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // Trading goes on in the new epoch.
    let waited = Instant::now();
    while !(0..3).all(|i| height_of(i).is_some_and(|h| h > at_epoch_1 + 10)) {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no blocks after the epoch change: {}",
            diagnosis(&committee, endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(height_of(3).unwrap() <= logged, "node 3 stays out");
    // Every honest node deleted its genesis share, and holds the new epoch's.
    for i in 0..3 {
        let node = committee.join(format!("node-{i}"));
        assert!(
            !node.join("dkg.share").exists(),
            "node {i} kept its genesis share"
        );
        let reshared = std::fs::read_dir(&node)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("dkg.share.1."));
        assert!(reshared, "node {i} holds no share of epoch 1");
    }
    (committee, procs, at_epoch_1)
}

/// Issue #13's process test: node 3 comes back from a tampered binary; the three honest nodes
/// cut it off, accuse it, quarantine it, reshare the key among themselves, move to epoch 1
/// without it and keep trading. Then node 3 is restarted from the honest binary: it follows
/// the log by certified catch-up, the members affirm it (each on its own fresh appraisal and
/// node 3's clean signed audit report), `bulwark admin readmit` submits the admission, node 3
/// plays in the reshare and signs in epoch 2 (with node 0 stopped, nodes 1-3 still finalize).
/// `verify` accepts the log across both epoch changes with the genesis identity alone.
#[test]
fn a_tampered_fourth_node_is_removed_three_keep_trading_and_it_comes_back_restored() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let port: u16 = base_port() + 400;
    let (committee, mut procs, at_epoch_1) = node3_tampered_and_removed(dir.path(), port, &[]);
    let endpoint = |i: u16| client_endpoint(port, i);
    the_vault_refreshes_without_node3_and_still_signs(dir.path(), &committee, endpoint);
    let at_epoch_2 = node3_comes_back_restored(&committee, &mut procs, endpoint);
    assert!(at_epoch_2 > at_epoch_1);
    // With node 0 stopped, a withdrawal is signed by nodes 1-3: node 3's repaired share is
    // one of the three, and the signature verifies under the vault's unchanged key.
    let genesis_keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(committee.join("node-1/vault/keys.json")).unwrap(),
    )
    .unwrap();
    an_ed25519_withdrawal_is_signed(
        (dir.path(), &committee, endpoint),
        &[1, 2, 3],
        (8_100_000, 0x45),
        &genesis_keys["ed25519"],
        "after node 3's repair, without node 0",
    );
    drop(procs);
    // The log verifies across the epoch changes with the genesis identity alone.
    let (code, stdout, stderr) = run(&[
        "verify",
        "--data",
        committee.join("node-1").to_str().unwrap(),
        "--genesis",
        committee.join("genesis.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // Node 0, stopped for the signing without it, may be removed for its silence meanwhile
    // (epoch 3): the log verifies across every change.
    assert!(
        summary["epoch"].as_u64().is_some_and(|e| e >= 2),
        "{summary}"
    );
    assert!(
        summary["heights"].as_u64().unwrap() > at_epoch_2,
        "{summary}"
    );
}

/// Issue #13's replacement between processes: `up --candidates 1` lists a fifth machine (node
/// 4, in a data center of its own) in every configuration as a candidate. After node 3 is
/// removed, node 4 starts (it holds no genesis share and follows the log by certified
/// catch-up), two of the three DEVELOPMENT operators sign approvals (`bulwark admin approve`),
/// `bulwark admin replace` collects the members' affirmations and submits the admission, node 4
/// plays in the reshare and signs in epoch 2 (with node 0 stopped, nodes 1, 2 and 4 still
/// finalize, certify prices in node 3's oracle seat and sign a withdrawal), and `verify`
/// accepts the log with the genesis identity alone.
#[test]
fn a_newcomer_takes_the_removed_node3s_seat_and_signs_in_the_next_epoch() {
    let _turn = serial();
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port: u16 = base_port() + 820;
    let (committee, mut procs, at_epoch_1) =
        node3_tampered_and_removed(dir.path(), port, &["--candidates", "1"]);
    let endpoint = |i: u16| client_endpoint(port, i);
    let mut tampered = procs.0[3].take().unwrap();
    tampered.kill().unwrap();
    tampered.wait().unwrap();
    // The newcomer gets the venue's public identity from the operators, and starts.
    std::fs::copy(
        committee.join("node-0/identity.hex"),
        committee.join("node-4/identity.hex"),
    )
    .unwrap();
    procs.0.push(Some(spawn_node(
        &committee,
        4,
        Path::new(env!("CARGO_BIN_EXE_bulwark")),
    )));
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(committee.join("node-0/node.toml")).unwrap())
            .unwrap();
    let key = |i: usize| {
        config["peers"][i]["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (newcomer, seat) = (key(4), key(3));
    assert_eq!(config["peers"][4]["candidate"].as_bool(), Some(true));
    // It follows the log into epoch 1 by certified catch-up.
    wait_until_following(&committee, endpoint, 4, "the newcomer");
    // Two of the three DEVELOPMENT operators approve it for node 3's seat in epoch 1.
    let secrets = std::fs::read_to_string(committee.join("dev-operators.secret")).unwrap();
    let mut approvals = Vec::new();
    for (i, secret) in secrets.lines().take(2).enumerate() {
        let key_file = dir.path().join(format!("operator-{i}.key"));
        std::fs::write(&key_file, format!("{}\n", secret.trim())).unwrap();
        let (code, stdout, stderr) = run(&[
            "admin",
            "approve",
            "--operator-key",
            key_file.to_str().unwrap(),
            "--candidate",
            &newcomer,
            "--replaces",
            &seat,
            "--epoch",
            "1",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let approval = dir.path().join(format!("approval-{i}.json"));
        std::fs::write(&approval, stdout).unwrap();
        approvals.push(approval.to_str().unwrap().to_string());
    }
    let nodes: Vec<String> = (0..3).map(|i| endpoint(i).to_string()).collect();
    let mut args = vec![
        "admin",
        "replace",
        "--candidate",
        &newcomer,
        "--replaces",
        &seat,
        "--wait",
        "150",
    ];
    for approval in &approvals {
        args.extend(["--approval", approval.as_str()]);
    }
    // One approval is short of the quorum: every node refuses the admission.
    let mut short = args.clone();
    short.truncate(args.len() - 2);
    for node in &nodes {
        short.extend(["--node", node.as_str()]);
        args.extend(["--node", node.as_str()]);
    }
    let waited = Instant::now();
    loop {
        let (code, _, stderr) = run(&short);
        assert_ne!(code, 0, "admitted on one approval: {stderr}");
        // Until the members' appraisals and its first report are in, they do not affirm.
        if stderr.contains("every node refused") {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the members do not affirm the newcomer: {stderr}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}\n{}", diagnosis(&committee, endpoint));
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["admitted_in_epoch"].as_u64(), Some(2), "{summary}");
    // Nodes 0, 1, 2 and 4 are in epoch 2 with four admitted members; node 3 stays removed;
    // the vault's holders (three genesis numbers) refreshed among themselves and repaired the
    // newcomer (a number of its own, 1024 or above, in every holder's record); with node 0
    // stopped, nodes 1, 2 and 4
    // finalize: the newcomer signs.
    let at_epoch_2 = signs_in_epoch_2(
        (&committee, &mut procs, endpoint),
        &[0, 1, 2, 4],
        |s| {
            s.members.get(&seat[..16]).map(String::as_str) == Some("removed")
                && vault_holders_in_epoch_2(&committee, &[0, 1, 2, 4], |h| {
                    h.len() == 4
                        && h.iter().filter(|m| **m <= 4).count() == 3
                        && h.iter().filter(|m| **m >= 1024).count() == 1
                })
        },
        "the newcomer (and its repaired vault share)",
    );
    assert!(at_epoch_2 > at_epoch_1);
    // With node 0 stopped, nodes 1, 2 and 4 sign a withdrawal: the newcomer's repaired share
    // is one of the three, under the vault's unchanged key.
    let vault_keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(committee.join("node-4/vault/keys.json")).unwrap(),
    )
    .unwrap();
    let genesis_keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(committee.join("node-1/vault/keys.json")).unwrap(),
    )
    .unwrap();
    for field in ["bitcoin", "ed25519", "threshold"] {
        assert_eq!(
            vault_keys[field], genesis_keys[field],
            "one vault, one {field}"
        );
    }
    // With nodes 0 and 3 down, only nodes 1 and 2 of the genesis oracle seats observe: prices
    // are still certified (2f + 1 = 3 signers) because the newcomer holds node 3's oracle seat.
    let round_at_1 = || {
        status(endpoint(1))
            .and_then(|s| s.oracle_rounds.first().copied().flatten())
            .unwrap_or(0)
    };
    let (first, waited) = (round_at_1(), Instant::now());
    while round_at_1() < first + 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no oracle round certified without node 0 (last {}, from {first}): the newcomer does not sign prices: {}",
            round_at_1(),
            diagnosis(&committee, endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    an_ed25519_withdrawal_is_signed(
        (dir.path(), &committee, endpoint),
        &[1, 2, 4],
        (8_100_000, 0x46),
        &vault_keys["ed25519"],
        "after the newcomer's repair, without node 0",
    );
    drop(procs);
    let (code, stdout, stderr) = run(&[
        "verify",
        "--data",
        committee.join("node-4").to_str().unwrap(),
        "--genesis",
        committee.join("genesis.json").to_str().unwrap(),
        "--identity",
        std::fs::read_to_string(committee.join("node-1/identity.hex"))
            .unwrap()
            .trim(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // Node 0, stopped for the signing without it, may be removed for its silence meanwhile
    // (epoch 3): the log verifies across every change.
    assert!(
        summary["epoch"].as_u64().is_some_and(|e| e >= 2),
        "{summary}"
    );
}

/// The second half of the tamper test: node 3 restarts from the honest binary, is re-admitted
/// by `bulwark admin readmit` and signs in epoch 2. Returns the height at which every node was
/// in epoch 2.
fn node3_comes_back_restored(
    committee: &Path,
    procs: &mut Procs,
    endpoint: impl Fn(u16) -> std::net::SocketAddr,
) -> u64 {
    use std::time::{Duration, Instant};
    let mut tampered = procs.0[3].take().unwrap();
    tampered.kill().unwrap();
    tampered.wait().unwrap();
    let honest = Path::new(env!("CARGO_BIN_EXE_bulwark"));
    procs.0[3] = Some(spawn_node(committee, 3, honest));
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(committee.join("node-3/node.toml")).unwrap())
            .unwrap();
    let candidate = config["peers"][3]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    // Node 3 follows the log by certified catch-up into epoch 1, where it is removed.
    wait_until_following(committee, &endpoint, 3, "the restored node 3");
    let nodes: Vec<String> = (0..3).map(|i| endpoint(i).to_string()).collect();
    let mut args = vec![
        "admin",
        "readmit",
        "--candidate",
        &candidate,
        "--wait",
        "150",
    ];
    for node in &nodes {
        args.extend(["--node", node.as_str()]);
    }
    // Its configuration drifts (the DEVELOPMENT audit policy wants `[admission]` in its
    // node.toml, which the running node read at start): its next signed report fails, every
    // member records that as `audit_failed` evidence, and none affirms it.
    let config_file = committee.join("node-3/node.toml");
    let honest_config = std::fs::read_to_string(&config_file).unwrap();
    std::fs::write(
        &config_file,
        honest_config.replace("\n[admission]", "\n#[admission]"),
    )
    .unwrap();
    let mut dry_run = args.clone();
    dry_run.push("--dry-run");
    let waited = Instant::now();
    loop {
        let (_, _, stderr) = run(&dry_run);
        if stderr.matches("report is not clean").count() == 3 {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the members do not refuse on node 3's failed audit: {stderr}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Not even submitted, an admission without affirmations goes nowhere.
    let (code, _, stderr) = run(&args);
    assert_ne!(
        code, 0,
        "a node with a failed audit was re-admitted: {stderr}"
    );
    assert!(stderr.contains("no member affirms"), "{stderr}");
    let evidence = wait_for_evidence(committee, "audit_failed");
    assert!(
        evidence.contains("bulwark_devnet_node:900900"),
        "{evidence}"
    );
    std::fs::write(&config_file, honest_config).unwrap();
    // Repaired, it is affirmed once the members' appraisal of the honest binary and its clean
    // report are fresh and the hold since its conviction has passed; until then they say why
    // not.
    let waited = Instant::now();
    let summary = loop {
        let (code, stdout, stderr) = run(&args);
        if code == 0 {
            break serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap();
        }
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "node 3 was not re-admitted: {stderr}\n{}",
            diagnosis(committee, &endpoint)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(summary["admitted_in_epoch"].as_u64(), Some(2), "{summary}");
    assert!(summary["affirmations"].as_u64().unwrap() >= 2, "{summary}");
    // Every node is in epoch 2 with four admitted members, and the vault's holders refreshed
    // among themselves and repaired node 3 (member 4: it holds a share of the epoch-2 sharing
    // and every holder's record names it); with node 0 stopped, nodes 1-3 finalize: node 3
    // signs.
    signs_in_epoch_2(
        (committee, procs, &endpoint),
        &[0, 1, 2, 3],
        |_| vault_holders_in_epoch_2(committee, &[0, 1, 2, 3], |h| h == [1, 2, 3, 4]),
        "node 3 (and its repaired vault share)",
    )
}

/// Whether each of `nodes` has a `keys.json` of epoch 2 whose holders `fit`.
fn vault_holders_in_epoch_2(committee: &Path, nodes: &[u16], fit: impl Fn(&[u64]) -> bool) -> bool {
    nodes.iter().all(|i| {
        let path = committee.join(format!("node-{i}/vault/keys.json"));
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|keys| {
                let holders: Vec<u64> = keys["holders"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                    .unwrap_or_default();
                keys["epoch"] == 2 && fit(&holders)
            })
    })
}

/// Waits (120 s at most) until `node` follows the log by certified catch-up into epoch 1,
/// within [`FOLLOW_LAG`] heights of node 0.
fn wait_until_following(
    committee: &Path,
    endpoint: impl Fn(u16) -> std::net::SocketAddr,
    node: u16,
    who: &str,
) {
    use std::time::{Duration, Instant};
    let waited = Instant::now();
    loop {
        let top = status(endpoint(0)).map_or(0, |s| s.height);
        // A follower that caught up asks again only once it committed nothing for 2 s, so it
        // trails an idle committee (hundreds of empty blocks a second here) by up to a few
        // hundred heights; one that falls behind for good ends far past this.
        if status(endpoint(node)).is_some_and(|s| s.epoch == 1 && s.height + FOLLOW_LAG >= top) {
            return;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "{who} does not follow the log: {}",
            diagnosis(committee, &endpoint)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits (60 s at most) until each of `members` (node 0 first) is in epoch 2 with four
/// admitted members and `also` holds of its status; then stops node 0 and waits (90 s at
/// most) until the others finalize 10 heights more, which the quorum of 3 of 4 allows only
/// if `joined` signs. Returns the height at which every member was in epoch 2.
fn signs_in_epoch_2(
    (committee, procs, endpoint): (&Path, &mut Procs, impl Fn(u16) -> std::net::SocketAddr),
    members: &[u16],
    also: impl Fn(&bulwark_api::answers::NodeStatus) -> bool,
    joined: &str,
) -> u64 {
    use std::time::{Duration, Instant};
    let height_of = |i: u16| status(endpoint(i)).map(|s| s.height);
    let waited = Instant::now();
    let at_epoch_2 = loop {
        let statuses: Vec<_> = members.iter().map(|&i| status(endpoint(i))).collect();
        if statuses.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                s.epoch == 2
                    && s.members.values().filter(|m| *m == "admitted").count() == 4
                    && also(s)
            })
        }) {
            break statuses.iter().flatten().map(|s| s.height).max().unwrap();
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "not every node is in epoch 2 with {joined}: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut stopped = procs.0[usize::from(members[0])].take().unwrap();
    stopped.kill().unwrap();
    stopped.wait().unwrap();
    let waited = Instant::now();
    while !members[1..]
        .iter()
        .all(|&i| height_of(i).is_some_and(|h| h > at_epoch_2 + 10))
    {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "{:?} do not finalize without node {}: {joined} does not sign in epoch 2: {}",
            &members[1..],
            members[0],
            diagnosis(committee, &endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    at_epoch_2
}

/// With `--tpm`: every node runs on its own (persistent) software TPM. The committee admits
/// its members only by TPM quotes whose attestation keys were enrolled by credential
/// activation; every node's keystore key is sealed to PCRs 0-7 and the launch PCR 15 and its
/// node key is encrypted under it; a tampered binary, measured by the launcher, cannot unseal
/// its secrets and does not start, and the honest binary cannot either until the TPM's platform
/// resets (the launch PCR only grows); and a node whose measured policy changes while it runs is
/// cut off by every peer with a reason naming the launch event the manifest does not allow.
#[test]
fn a_tpm_committee_admits_by_quote_seals_its_secrets_and_cuts_off_a_changed_node() {
    use std::time::{Duration, Instant};
    if !bulwark_attestor::launch::available() || !bulwark_testkit::swtpm::installed() {
        eprintln!("SKIPPED: needs swtpm and a build with --features bulwark-attestor/tpm");
        return;
    }
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port: u16 = base_port() + 600;
    let stderr = up(&data, port, 4, 50, &["--tpm"]);
    assert!(stderr.contains("TPM quotes"), "{stderr}");
    assert!(stderr.contains("roots agreed"), "{stderr}");
    let committee = data.join("committee");
    every_node_enrolled_its_peers_and_sealed_its_secrets(&committee);
    // The software TPMs again (state kept in node-*/tpm), as `up` runs them.
    let power_on = |i: u16| {
        bulwark_testkit::swtpm::SoftwareTpm::start_persistent(
            &committee.join(format!("node-{i}")).join("tpm"),
            swtpm_port(port, i),
            Some(&committee.join("tpm-manufacturer")),
        )
        .unwrap()
    };
    let mut tpms: Vec<bulwark_testkit::swtpm::SoftwareTpm> = (0..4u16).map(power_on).collect();
    a_swapped_ek_certificate_is_refused_at_start(&committee);
    let honest = Path::new(env!("CARGO_BIN_EXE_bulwark"));
    // The TPMs were powered on afresh: a node its launcher has not measured does not start.
    let (code, _, stderr) = run(&[
        "node",
        "--config",
        committee.join("node-3").join("node.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("starts only after its launcher measured it"),
        "{stderr}"
    );
    measure_as_launcher(&committee, port, 3, honest);
    a_planted_development_keystore_is_not_adopted(&committee);
    // A tampered binary, measured by the launcher, cannot unseal node 3's secrets: it refuses
    // to start.
    let tampered = tampered_binary(dir.path());
    measure_as_launcher(&committee, port, 3, &tampered);
    let out = std::process::Command::new(&tampered)
        .args([
            "node",
            "--config",
            committee.join("node-3").join("node.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a tampered binary must not start");
    assert!(stderr.contains("does not unseal"), "{stderr}");
    // Nor does the honest binary launched after it, on the same TPM: the launch PCR holds the
    // tampered launch for good.
    measure_as_launcher(&committee, port, 3, honest);
    let (code, _, stderr) = run(&[
        "node",
        "--config",
        committee.join("node-3").join("node.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not unseal"), "{stderr}");
    // Until node 3's platform resets (its swtpm powered off and on, as on a reboot).
    drop(tpms.pop());
    tpms.push(power_on(3));
    // The honest binary unseals and runs; then node 3's measured policy changes under it.
    for i in 0..4 {
        measure_as_launcher(&committee, port, i, honest);
    }
    let _procs = Procs(
        (0..4)
            .map(|i| Some(spawn_node(&committee, i, honest)))
            .collect(),
    );
    let endpoint = |i: u16| client_endpoint(port, i);
    let started = Instant::now();
    let admitted_by = |i: u16| {
        status(endpoint(i))
            .and_then(|s| s.admission)
            .map_or(0, |peers| peers.values().filter(|p| p.admitted).count())
    };
    while !(0..4).all(|i| admitted_by(i) == 3) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the restarted TPM committee did not admit everyone: {}",
            diagnosis(&committee, endpoint)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let policy = committee.join("node-3").join("operators.json");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push('\n');
    std::fs::write(&policy, text).unwrap();
    wait_until_node3_is_cut_off(endpoint, "launch-event-not-allowed", 2);
    // The signed appraisal names the launch event the manifest does not allow.
    let text = wait_for_evidence(&committee, "which the manifest does not allow");
    assert!(text.contains("Policy"), "{text}");
    drop(_procs);
    drop(tpms);
}

/// After `up --tpm`: each node enrolled its three peers' AKs by credential activation, found
/// its launch log replaying to the launch PCR and naming itself, saw four EK certificates chain to the
/// manufacturer's CA, and keeps its secrets sealed to the TPM.
fn every_node_enrolled_its_peers_and_sealed_its_secrets(committee: &Path) {
    for index in 0..4 {
        let node = committee.join(format!("node-{index}"));
        let log = std::fs::read_to_string(node.join("node.log")).unwrap();
        assert_eq!(
            log.matches("attestation key enrolled by credential activation")
                .count(),
            3,
            "node {index} must enroll its three peers' AKs"
        );
        // `up` measured the node into the launch PCR as its launcher; the node found its own
        // values there.
        assert!(log.contains("measured launch checked"), "node {index}");
        assert!(node.join("launch.log").exists(), "node {index}");
        // Every member's EK certificate chains to the software manufacturer's CA.
        assert_eq!(
            log.matches("EK certified by a trusted manufacturer CA")
                .count(),
            4,
            "node {index}"
        );
        assert!(node.join("keystore.sealed").exists());
        assert!(!node.join("keystore.key").exists());
        assert!(!node.join("attestor.key").exists());
        // The provisioned plain node key was encrypted in place under the sealed keystore.
        let key = std::fs::read(node.join("node.key")).unwrap();
        assert!(key.starts_with(b"bulwark/keystore/v2"), "node {index}");
    }
}

/// Attack 6 of #12, TPM mode: whoever can write node 3's directory removes its sealed keystore
/// key and plants a development key file of their own. The node does not adopt it outside the
/// explicit migration, so nothing sealed under the planted key is ever read.
fn a_planted_development_keystore_is_not_adopted(committee: &Path) {
    let node = committee.join("node-3");
    let sealed = node.join("keystore.sealed");
    let aside = node.join("keystore.sealed.aside");
    std::fs::rename(&sealed, &aside).unwrap();
    let planted = node.join("keystore.key");
    std::fs::write(&planted, [7u8; 32]).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, stderr) = run(&["node", "--config", node.join("node.toml").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("DEVELOPMENT keystore key lies in the data directory of a TPM node"),
        "{stderr}"
    );
    assert!(!sealed.exists(), "nothing was sealed under the planted key");
    std::fs::remove_file(&planted).unwrap();
    std::fs::rename(&aside, &sealed).unwrap();
}

/// As the launcher, measures `binary` into node `index`'s launch PCR and launch log (`up` does
/// this itself).
fn measure_as_launcher(committee: &Path, port: u16, index: u16, binary: &Path) {
    let node = committee.join(format!("node-{index}"));
    let tcti = format!("swtpm:host=127.0.0.1,port={}", swtpm_port(port, index));
    let (code, stdout, stderr) = run(&[
        "attest",
        "measure",
        "--tcti",
        &tcti,
        "--log",
        node.join("launch.log").to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
        "--config",
        committee.join("genesis.json").to_str().unwrap(),
        "--policy",
        node.join("operators.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// An inventory whose EK certificate certifies another TPM's EK is refused at start, naming
/// the peer: node 0's EK listed with node 1's certificate.
fn a_swapped_ek_certificate_is_refused_at_start(committee: &Path) {
    let config_text = std::fs::read_to_string(committee.join("node-3").join("node.toml")).unwrap();
    let mut config: toml::Value = toml::from_str(&config_text).unwrap();
    let peers = config["peers"].as_array_mut().unwrap();
    let second_cert = peers[1]["tpm_ek_cert"].clone();
    let first_key = peers[0]["public_key"].as_str().unwrap().to_string();
    peers[0]["tpm_ek_cert"] = second_cert;
    let swapped = committee.join("node-3").join("swapped-ek.toml");
    std::fs::write(&swapped, toml::to_string(&config).unwrap()).unwrap();
    let (code, _, stderr) = run(&["node", "--config", swapped.to_str().unwrap()]);
    assert_ne!(
        code, 0,
        "a node with a mismatched EK certificate must not start"
    );
    assert!(
        stderr.contains(&first_key) && stderr.contains("certifies a different key"),
        "{stderr}"
    );
    std::fs::remove_file(&swapped).unwrap();
}

/// Issue #17's browser test: `bulwark up` serves the console; headless Chromium opens it and
/// sees four members and a height that grows, live; after `--tamper-node 3` the committee's
/// quarantine and removal of node 3 are on its timeline, linked to the signed evidence.
#[test]
fn the_console_shows_the_committee_live_and_node3s_quarantine_in_a_browser() {
    use bulwark_testkit::browser;
    use std::time::{Duration, Instant};
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port: u16 = base_port() + 700;
    // `up` runs until the checks are done, then gets Ctrl-C (SIGINT) and must stop cleanly.
    let (data_arg, port_arg) = (data.to_str().unwrap().to_string(), port.to_string());
    let up = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "up",
            "--duration",
            "600",
            "--rate",
            "50",
            "--base-port",
            &port_arg,
            "--data",
            &data_arg,
            "--tamper-node",
            "3",
            "--at",
            "45",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
        .spawn()
        .unwrap();
    let mut up = Procs(vec![Some(up)]);
    let up_log = || std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
    let console = std::net::SocketAddr::from(([127, 0, 0, 1], port + 49));
    let view = |what: &str| -> serde_json::Value {
        let text = bulwark_console::http::get(console, "/view.json", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        serde_json::from_str(&text).unwrap()
    };
    let started = Instant::now();
    // The committee is up and the console sees all four members.
    loop {
        let ready = bulwark_console::http::get(console, "/view.json", Duration::from_secs(2))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                v["height"].as_u64().unwrap_or(0) > 0
                    && v["members"].as_array().is_some_and(|m| {
                        m.len() == 4 && m.iter().all(|m| m["sentinel"] == "admitted")
                    })
            });
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the console never showed four admitted members: {}",
            up_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let url = format!("http://{console}/?updates=4");
    let page = match browser::render(&url, Duration::from_secs(20), &[]).unwrap() {
        Some(page) => Some(page),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have Chromium (.ci/run installs Debian's chromium)"
            );
            eprintln!(
                "SKIPPED: the browser half (no Chromium); the console's data is still checked"
            );
            None
        }
    };
    if let Some(page) = &page {
        // Four members, each admitted, drawn by the page's own script from live updates.
        assert_eq!(
            page.matches("<tr data-sentinel=\"admitted\">").count(),
            4,
            "{page}"
        );
        assert!(page.contains("id=\"updates\">4<"), "{page}");
        // The height grew while the page watched.
        let (first, last) = page
            .split_once("id=\"height\" data-first=\"")
            .and_then(|(_, rest)| rest.split_once("\">"))
            .and_then(|(first, rest)| {
                Some((
                    first.parse::<u64>().ok()?,
                    rest.split('<').next()?.parse::<u64>().ok()?,
                ))
            })
            .unwrap_or_else(|| panic!("no height on the page: {page}"));
        assert!(last > first, "height {first} then {last}: {page}");
    }
    // Node 3 restarts from a tampered binary at 30 s; the console's timeline shows it
    // quarantined and removed, with the evidence behind it.
    let quarantine = loop {
        let now = view("the timeline");
        let events = now["events"].as_array().cloned().unwrap_or_default();
        if let Some(event) = events.iter().find(|e| e["kind"] == "quarantined") {
            if events.iter().any(|e| e["kind"] == "removed") {
                break event.clone();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(420),
            "no quarantine on the console's timeline: {now}\n{}",
            up_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let evidence = quarantine["evidence"]
        .as_u64()
        .unwrap_or_else(|| panic!("the quarantine links no evidence: {quarantine}"));
    let record = bulwark_console::http::get(
        console,
        &format!("/evidence/{evidence}"),
        Duration::from_secs(5),
    )
    .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert!(
        record["peer"]
            .as_str()
            .unwrap()
            .starts_with(quarantine["member"].as_str().unwrap()),
        "{record}"
    );
    if page.is_some() {
        let page = browser::render(
            &format!("http://{console}/?updates=2"),
            Duration::from_secs(20),
            &[],
        )
        .unwrap()
        .unwrap();
        assert!(page.contains("data-kind=\"quarantined\""), "{page}");
        assert!(page.contains("data-kind=\"removed\""), "{page}");
        assert!(
            page.contains(&format!("href=\"/evidence/{evidence}\"")),
            "{page}"
        );
        assert!(page.contains("<tr data-sentinel=\"removed\">"), "{page}");
        let png = dir.path().join("console.png");
        assert!(browser::screenshot(
            &format!("http://{console}/?updates=3"),
            Duration::from_secs(20),
            &png,
            (1400, 1100)
        )
        .unwrap());
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    }
    // Ctrl-C: up stops its gateways and nodes and reports the run.
    let mut child = up.0[0].take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let code = child.wait().unwrap();
    let log = up_log();
    assert!(code.success(), "{log}");
    assert!(
        log.contains(&format!("console: http://{console}/")),
        "{log}"
    );
}
