//! `bulwark up --single`: ONE engine in this process with DEVELOPMENT stand-ins, and it says
//! so: the seeded synthetic index of `bulwark-oracle` (GBM with jumps, pure-Rust `libm`) and the
//! one order flow of market makers and takers (`bulwark_testkit::flow`), unsigned. State is saved to `<data>/engine.snapshot` on
//! exit and resumed on the next start.

use bulwark_api::stats::percentile;
use bulwark_engine::command::SystemCommand;
use bulwark_engine::snapshot::SnapshotError;
use bulwark_engine::{AccountId, Command, Engine, EngineConfig, Event, InstrumentId};
use bulwark_oracle::synthetic::{Synthetic, SyntheticParams};
use bulwark_testkit::flow::{account_of, flow_order, open_accounts_unsigned, MAKERS, TAKERS};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH_MS: u64 = 50;
const SNAPSHOT_FILE: &str = "engine.snapshot";

/// Why `up --single` cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SingleError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {}: {source}", .path.display())]
    CreateDir {
        /// The data directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--fresh`: the saved state cannot be moved aside to `engine.snapshot.bak`.
    #[error("cannot move old state aside: {0}")]
    MoveAside(#[source] std::io::Error),
    /// The saved state cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The snapshot file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The saved state does not restore (damaged, or from another version).
    #[error("{}: {source} (run with --fresh to start a new venue; the old file is kept)", .path.display())]
    Restore {
        /// The snapshot file.
        path: PathBuf,
        /// Why it does not restore.
        source: SnapshotError,
    },
    /// The state cannot be written on exit.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The temporary snapshot file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The written state cannot be moved into place on exit.
    #[error("cannot save state: {0}")]
    Save(#[source] std::io::Error),
    /// The engine's totals do not balance after the run.
    #[error("money is not conserved — this is a bug, please report it with the data directory")]
    NotConserved,
}

/// What `up --single` is asked to do.
#[derive(Debug, Clone)]
pub struct SingleOptions {
    /// Data directory (the engine snapshot lives there).
    pub data: PathBuf,
    /// Stop after this many seconds.
    pub duration: Option<u64>,
    /// Orders per second offered.
    pub rate: u64,
    /// Seed of the synthetic index and the load.
    pub seed: u64,
    /// Start over (the old snapshot is kept as a .bak file).
    pub fresh: bool,
}

fn load_or_create(data: &Path, fresh: bool) -> Result<(Engine, bool), SingleError> {
    std::fs::create_dir_all(data).map_err(|source| SingleError::CreateDir {
        path: data.to_path_buf(),
        source,
    })?;
    let path = data.join(SNAPSHOT_FILE);
    if path.exists() && fresh {
        std::fs::rename(&path, data.join("engine.snapshot.bak")).map_err(SingleError::MoveAside)?;
    }
    if path.exists() {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(source) => return Err(SingleError::Read { path, source }),
        };
        let engine = match Engine::restore(&bytes) {
            Ok(engine) => engine,
            Err(source) => return Err(SingleError::Restore { path, source }),
        };
        return Ok((engine, true));
    }
    let mut engine = Engine::new(EngineConfig::default());
    engine.execute(
        0,
        &open_accounts_unsigned(50_000_000 * 1_000_000),
        &mut Vec::new(),
    );
    Ok((engine, false))
}

fn save(data: &Path, engine: &Engine) -> Result<(), SingleError> {
    let tmp = data.join("engine.snapshot.tmp");
    if let Err(source) = std::fs::write(&tmp, engine.snapshot()) {
        return Err(SingleError::Write { path: tmp, source });
    }
    std::fs::rename(&tmp, data.join(SNAPSHOT_FILE)).map_err(SingleError::Save)
}

/// One batch of the order flow around `mark`: `per_batch` orders, the accounts in turn, `k`
/// counting orders over the whole run. Orders here are not signed: there is no endpoint.
fn load(batch: &mut Vec<Command>, mark: i64, k: &mut u64, per_batch: u64) {
    for _ in 0..per_batch {
        let account = account_of(*k);
        batch.push(Command::Client {
            account: AccountId(account),
            nonce: 0,
            command: flow_order(account, *k, mark),
        });
        *k += 1;
    }
}

/// Runs ONE engine in this process with the DEVELOPMENT synthetic index and the load of
/// market makers and takers, until `stop` or the duration; saves the state on exit.
pub fn run_single(args: &SingleOptions, stop: Arc<AtomicBool>) -> Result<(), SingleError> {
    eprintln!("bulwark up --single — DEVELOPMENT MODE");
    eprintln!("  ONE engine in this process: no committee, no consensus (drop --single for the committee)");
    eprintln!(
        "  price feed: SYNTHETIC (seeded GBM with jumps, seed {}), not a real market",
        args.seed
    );
    eprintln!(
        "  load: {MAKERS} market makers and {TAKERS} takers, target {} orders/s",
        args.rate
    );
    let (mut engine, resumed) = load_or_create(&args.data, args.fresh)?;
    eprintln!(
        "  data: {} ({})",
        args.data.display(),
        if resumed {
            "resumed saved venue"
        } else {
            "new venue"
        }
    );
    let mut k = 0u64;
    let mut index = Synthetic::new(
        SyntheticParams {
            start_micros: engine.index_price(0).unwrap_or(60_000_000_000),
            ..SyntheticParams::default()
        },
        args.seed,
    );
    let started = Instant::now();
    let base_ms = engine.time_ms() + BATCH_MS;
    let per_batch = (args.rate * BATCH_MS / 1_000).max(MAKERS * 4);
    let (mut orders, mut fills, mut liquidations, mut height) = (0u64, 0u64, 0u64, 0u64);
    let mut latencies_us: Vec<u64> = Vec::new();
    let mut last_status = Instant::now();
    let mut window_orders = 0u64;
    let mut events = Vec::new();
    while !stop.load(Ordering::SeqCst)
        && args
            .duration
            .is_none_or(|d| started.elapsed().as_secs() < d)
    {
        let now_ms = base_ms + started.elapsed().as_millis() as u64;
        let price = index.step(BATCH_MS);
        let mut batch = vec![Command::System(SystemCommand::IndexPrice {
            underlying: 0,
            price_micros: price,
        })];
        let mark = engine.mark(InstrumentId(0)).unwrap_or(price / 100_000);
        load(&mut batch, mark, &mut k, per_batch);
        events.clear();
        let t0 = Instant::now();
        engine.execute(now_ms, &batch, &mut events);
        latencies_us.push(t0.elapsed().as_micros() as u64);
        height += 1;
        orders += batch.len() as u64;
        window_orders += batch.len() as u64;
        for e in &events {
            match e {
                Event::Fill { .. } => fills += 1,
                Event::Liquidation { .. } => liquidations += 1,
                _ => {}
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            latencies_us.sort_unstable();
            let rate = window_orders as f64 / last_status.elapsed().as_secs_f64();
            let root = hex::encode(engine.state_root());
            eprintln!(
                "height {height} | index {:.2} | mark {} | {rate:.0} orders/s | batch p50 {} µs p99 {} µs | fills {fills} | liquidations {liquidations} | nodes 1/1 (single engine) | root {}",
                price as f64 / 1e6,
                engine.mark(InstrumentId(0)).unwrap_or(0),
                percentile(&latencies_us, 50).unwrap_or(0),
                percentile(&latencies_us, 99).unwrap_or(0),
                &root[..16],
            );
            latencies_us.clear();
            window_orders = 0;
            last_status = Instant::now();
        }
        let next = Duration::from_millis(BATCH_MS * height);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    save(&args.data, &engine)?;
    eprintln!(
        "stopped after {height} batches, {orders} orders, {fills} fills; state saved to {} (root {})",
        args.data.join(SNAPSHOT_FILE).display(),
        hex::encode(engine.state_root())
    );
    if !engine.totals().conserved() {
        return Err(SingleError::NotConserved);
    }
    Ok(())
}
