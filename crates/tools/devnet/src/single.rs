//! `bulwark up --single`: ONE engine in this process with DEVELOPMENT stand-ins, and it says
//! so: the seeded synthetic index of `bulwark-oracle` (GBM with jumps, pure-Rust `libm`) and a
//! load generator of market makers and takers. State is saved to `<data>/engine.snapshot` on
//! exit and resumed on the next start.

use bulwark_api::stats::percentile;
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, EngineConfig, Event, InstrumentId, Side,
};
use bulwark_oracle::synthetic::{Synthetic, SyntheticParams};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAKERS: u64 = 4;
const TAKERS: u64 = 8;
const BATCH_MS: u64 = 50;
const SNAPSHOT_FILE: &str = "engine.snapshot";

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

fn order(account: u64, side: Side, price: i64, qty: i64, tif: TimeInForce) -> Command {
    Command::Client {
        account: AccountId(account),
        nonce: 0,
        command: ClientCommand::Limit(LimitOrder {
            instrument: InstrumentId(0),
            side,
            price,
            qty,
            tif,
            post_only: false,
            reduce_only: false,
            stp: SelfTradePrevention::CancelResting,
            client_order_id: 0,
        }),
    }
}

fn load_or_create(data: &Path, fresh: bool) -> Result<(Engine, bool), String> {
    std::fs::create_dir_all(data)
        .map_err(|e| format!("cannot create data directory {}: {e}", data.display()))?;
    let path = data.join(SNAPSHOT_FILE);
    if path.exists() && fresh {
        std::fs::rename(&path, data.join("engine.snapshot.bak"))
            .map_err(|e| format!("cannot move old state aside: {e}"))?;
    }
    if path.exists() {
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let engine = Engine::restore(&bytes).map_err(|e| {
            format!(
                "{}: {e} (run with --fresh to start a new venue; the old file is kept)",
                path.display()
            )
        })?;
        return Ok((engine, true));
    }
    let mut engine = Engine::new(EngineConfig::default());
    let mut setup = Vec::new();
    for a in 1..=MAKERS + TAKERS {
        setup.push(Command::System(SystemCommand::OpenAccount {
            account: AccountId(a),
            public_key: [0; 32],
        }));
        setup.push(Command::System(SystemCommand::Deposit {
            account: AccountId(a),
            amount: 50_000_000 * 1_000_000,
        }));
    }
    engine.execute(0, &setup, &mut Vec::new());
    Ok((engine, false))
}

fn save(data: &Path, engine: &Engine) -> Result<(), String> {
    let tmp = data.join("engine.snapshot.tmp");
    std::fs::write(&tmp, engine.snapshot())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, data.join(SNAPSHOT_FILE)).map_err(|e| format!("cannot save state: {e}"))
}

/// One batch's load around `mark`: every maker replaces two levels a side, takers fill the
/// batch to `per_batch` commands with market and IOC orders.
fn load(batch: &mut Vec<Command>, mark: i64, rng: &mut ChaCha8Rng, per_batch: u64) {
    for m in 1..=MAKERS {
        batch.push(Command::Client {
            account: AccountId(m),
            nonce: 0,
            command: ClientCommand::MassCancel { instrument: None },
        });
        for level in 1..=2 {
            let spread = 10 * level as i64 + m as i64;
            batch.push(order(m, Side::Buy, mark - spread, 50, TimeInForce::Gtc));
            batch.push(order(m, Side::Sell, mark + spread, 50, TimeInForce::Gtc));
        }
    }
    while (batch.len() as u64) < per_batch {
        let t = MAKERS + 1 + rng.random_range(0..TAKERS);
        let side = if rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let cmd = if rng.random_bool(0.3) {
            Command::Client {
                account: AccountId(t),
                nonce: 0,
                command: ClientCommand::Market {
                    instrument: InstrumentId(0),
                    side,
                    qty: rng.random_range(1..20),
                    reduce_only: false,
                    client_order_id: 0,
                },
            }
        } else {
            let off = rng.random_range(-30..30);
            order(
                t,
                side,
                mark + off,
                rng.random_range(1..20),
                TimeInForce::Ioc,
            )
        };
        batch.push(cmd);
    }
}

/// Runs ONE engine in this process with the DEVELOPMENT synthetic index and the load of
/// market makers and takers, until `stop` or the duration; saves the state on exit.
pub fn run_single(args: &SingleOptions, stop: Arc<AtomicBool>) -> Result<(), String> {
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
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ engine.time_ms());
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
        load(&mut batch, mark, &mut rng, per_batch);
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
        return Err(
            "money is not conserved — this is a bug, please report it with the data directory"
                .into(),
        );
    }
    Ok(())
}
