//! `bulwark bench restart`: how long a replica takes at start to rebuild its committed engine
//! from its newest engine snapshot plus the log after it, against a replay of the whole
//! finalized log from genesis (what every restart cost before snapshots). Same log, same run,
//! on the real disk (the production runtime's storage in a temporary directory).

use crate::report::emit;
use bulwark_consensus::block::Block;
use bulwark_consensus::check::execute;
use bulwark_consensus::evidence::EvidenceLog;
use bulwark_consensus::genesis::{try_genesis, GenesisAccount, GenesisError};
use bulwark_consensus::log::{Log, LogError, Record};
use bulwark_consensus::mempool::{Mempool, MempoolConfig};
use bulwark_consensus::replica::{Config as ReplicaConfig, Fault, Replica, SharedStats};
use bulwark_consensus::snapshots;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::snapshot::StateRoot;
use bulwark_engine::{AccountId, Engine};
use commonware_cryptography::sha256::Digest;
use commonware_runtime::{tokio as runtime, Runner as _, Supervisor as _};
use ed25519_dalek::SigningKey;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const USD: i64 = 1_000_000;
const ACCOUNTS: u64 = 16;
const LOG: &str = "bench-finalized";
const SNAPSHOTS: &str = "bench-snapshots";
const NO_SNAPSHOTS: &str = "bench-no-snapshots";

/// Arguments of `bench restart`.
#[derive(Debug, clap::Args)]
pub struct RestartBenchArgs {
    /// Finalized heights in the log.
    #[arg(long, default_value_t = 2_500)]
    heights: u64,
    /// Client orders per block.
    #[arg(long, default_value_t = 100)]
    txs: u64,
    /// A snapshot every this many heights (the node's default).
    #[arg(long, default_value_t = 1_000)]
    snapshot_every: u64,
    /// Starts timed of each kind (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

/// Why `bench restart` could not measure.
#[derive(Debug, thiserror::Error)]
enum RestartError {
    /// The arguments leave no snapshot to start from.
    #[error("need heights >= 2 and 0 < snapshot-every < heights")]
    Heights,
    /// `--repeats 0`.
    #[error("--repeats must be at least 1")]
    Repeats,
    /// The bench genesis is refused (a bug in the bench).
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The log or a snapshot cannot be written, or a replica cannot open them.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A thread panicked holding a replica's shared state.
    #[error("the replica's {0} lock is poisoned")]
    Poisoned(&'static str),
    /// A start rebuilt another state than the one the log was written with.
    #[error("a start from {partition} rebuilt another root")]
    Root {
        /// The snapshot partition it started from.
        partition: &'static str,
    },
    /// A start restored another snapshot than expected (or none).
    #[error("a start from {partition} restored {restored:?}, expected {want:?}")]
    Restored {
        /// The snapshot partition it started from.
        partition: &'static str,
        /// The height of the snapshot it restored.
        restored: Option<u64>,
        /// The height expected.
        want: Option<u64>,
    },
}

/// Seed of the bench accounts' DEVELOPMENT keys.
const KEY_SEED: u64 = 0xbe4c;

fn key(account: u64) -> SigningKey {
    bulwark_testkit::client_key(KEY_SEED, account)
}

/// Account `account`'s order with nonce `nonce` (from 1): the one order flow around 60 000.
fn order(account: u64, nonce: u64) -> SignedTx {
    bulwark_testkit::signed_flow_order(KEY_SEED, account, nonce - 1, nonce, 600_000)
}

fn replica_config(genesis: (Engine, Digest), snapshots: &str) -> ReplicaConfig {
    ReplicaConfig {
        view: Arc::new(Mutex::new(
            bulwark_consensus::replica::CommittedView::genesis(genesis.0.clone()),
        )),
        genesis,
        venue_epoch_ms: 0,
        mempool: Mempool::new(MempoolConfig::default()),
        ledger: Arc::new(Mutex::new(Vec::new())),
        refused: Arc::new(AtomicU64::new(0)),
        block_txs_max: 2_048,
        verify_threads: 1,
        mailbox_size: 16,
        fault: Fault::None,
        oracle: None,
        sentinel: None,
        deposits: None,
        stats: SharedStats::default(),
        evidence: EvidenceLog::default(),
        participants: Vec::new(),
        // Never deals: the bench replays a log with no sentinel committee.
        signer: <commonware_cryptography::ed25519::PrivateKey as commonware_cryptography::Signer>::from_seed(0),
        shares: Arc::new(Mutex::new(bulwark_consensus::epoch::MemoryShares::default())),
        epoch_partition: "bench-epochs".into(),
        log_partition: LOG.into(),
        held_partition: "bench-held".into(),
        snapshot_partition: snapshots.into(),
        snapshot_every: 0,
        ledger_kept: 1,
        receipts: None,
        // The bench replays a log; it never catches up from peers.
        identity: None,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    bulwark_api::stats::percentile(&values, 50).unwrap_or(0.0)
}

/// Runs the benchmark; prints its figures.
pub fn run(args: RestartBenchArgs) -> ExitCode {
    match measure(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench restart: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the bench log: `heights` blocks of `txs` signed orders, each executed to get the next
/// parent root, with a snapshot every `every` heights. Returns the final root, the snapshot
/// write times (ms) and one snapshot's size.
async fn write_log(
    context: &runtime::Context,
    genesis: &(Engine, Digest),
    heights: u64,
    txs: u64,
    every: u64,
) -> Result<(StateRoot, Vec<f64>, usize), RestartError> {
    eprintln!(
        "bench restart: writing a log of {heights} heights × {txs} orders (snapshot every {every})"
    );
    let mut engine = genesis.0.clone();
    let mut digest = genesis.1;
    let mut nonces = vec![0u64; ACCOUNTS as usize + 1];
    let mut log = Log::open(context, LOG, |_: Record| {
        Ok::<(), std::convert::Infallible>(())
    })
    .await?;
    let mut snapshot_ms = Vec::new();
    let mut snapshot_bytes = 0;
    for height in 1..=heights {
        let block = Block {
            epoch: 0,
            height,
            view: height,
            time_ms: height * 50,
            parent: digest,
            parent_root: engine.state_root(),
            rounds: Vec::new(),
            txs: (0..txs)
                .map(|i| {
                    let account = 1 + (height * txs + i) % ACCOUNTS;
                    nonces[account as usize] += 1;
                    order(account, nonces[account as usize])
                })
                .collect(),
        };
        let mut events = Vec::new();
        execute(&mut engine, &block, &mut events);
        let bytes = block.encode();
        digest = Block::digest_of(&bytes);
        log.append(&Record {
            height,
            block: bytes,
            certificate: None,
        })
        .await?;
        if height.is_multiple_of(every) {
            let started = Instant::now();
            snapshots::save(context, SNAPSHOTS, height, &engine).await?;
            snapshot_ms.push(started.elapsed().as_secs_f64() * 1e3);
            snapshot_bytes = engine.snapshot().len();
        }
    }
    drop(log);
    Ok((engine.state_root(), snapshot_ms, snapshot_bytes))
}

/// Starts a replica from genesis and from the newest snapshot, alternating, `repeats` times
/// each; each start must rebuild `final_root`. Returns the start times (ms) of both.
async fn time_starts(
    context: &runtime::Context,
    genesis: &(Engine, Digest),
    final_root: StateRoot,
    newest: u64,
    repeats: usize,
) -> Result<(Vec<f64>, Vec<f64>), RestartError> {
    let mut full = Vec::new();
    let mut from_snapshot = Vec::new();
    for _ in 0..repeats {
        for (partition, times) in [(NO_SNAPSHOTS, &mut full), (SNAPSHOTS, &mut from_snapshot)] {
            let config = replica_config(genesis.clone(), partition);
            let stats = config.stats.clone();
            let view = config.view.clone();
            let started = Instant::now();
            let (replica, mailbox, epochs) =
                Replica::init(context.child("replica"), config).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            drop((replica, mailbox, epochs));
            let root = view
                .lock()
                .map_err(|_| RestartError::Poisoned("view"))?
                .engine
                .state_root();
            if root != final_root {
                return Err(RestartError::Root { partition });
            }
            let restored = stats
                .lock()
                .map_err(|_| RestartError::Poisoned("stats"))?
                .restored_snapshot;
            let want = (partition == SNAPSHOTS).then_some(newest);
            if restored != want {
                return Err(RestartError::Restored {
                    partition,
                    restored,
                    want,
                });
            }
        }
    }
    Ok((full, from_snapshot))
}

fn measure(args: &RestartBenchArgs) -> Result<(), RestartError> {
    if args.heights < 2 || args.snapshot_every == 0 || args.snapshot_every >= args.heights {
        return Err(RestartError::Heights);
    }
    if args.repeats == 0 {
        return Err(RestartError::Repeats);
    }
    let dir = std::env::temp_dir().join(format!("bulwark-bench-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runner = runtime::Runner::new(
        runtime::Config::new()
            .with_storage_directory(dir.clone())
            .with_worker_threads(2),
    );
    let heights = args.heights;
    let txs = args.txs;
    let every = args.snapshot_every;
    let repeats = args.repeats;
    let result = runner.start(|context| async move {
        let accounts: Vec<GenesisAccount> = (1..=ACCOUNTS)
            .map(|a| GenesisAccount {
                account: AccountId(a),
                public_key: key(a).verifying_key().to_bytes(),
                deposit_micros: 1_000_000 * USD,
            })
            .collect();
        let genesis = try_genesis(
            &accounts,
            &[60_000 * USD, 3_000 * USD],
            OracleConfig::default(),
        )?;

        let written = write_log(&context, &genesis, heights, txs, every).await?;
        let (final_root, snapshot_ms, snapshot_bytes) = written;
        let newest = heights.saturating_sub(1) / every * every;
        let (full, from_snapshot) =
            time_starts(&context, &genesis, final_root, newest, repeats).await?;
        Ok::<_, RestartError>((full, from_snapshot, snapshot_ms, snapshot_bytes, newest))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (full, from_snapshot, snapshot_ms, snapshot_bytes, newest) = result?;
    let full = median(full);
    let from_snapshot = median(from_snapshot);
    eprintln!(
        "bench restart: {heights} heights; full replay {full:.0} ms, from the snapshot at {newest} {from_snapshot:.0} ms"
    );
    emit("restart", "log_heights", heights as f64, "heights", None);
    emit(
        "restart",
        "start_replaying_the_whole_log_ms",
        full,
        "ms",
        None,
    );
    emit(
        "restart",
        "start_from_newest_snapshot_ms",
        from_snapshot,
        "ms",
        Some(("replay of the whole log from genesis", full)),
    );
    emit(
        "restart",
        "snapshot_write_ms",
        median(snapshot_ms),
        "ms",
        None,
    );
    emit(
        "restart",
        "snapshot_bytes",
        snapshot_bytes as f64,
        "bytes",
        None,
    );
    Ok(())
}
