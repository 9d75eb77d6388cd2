//! `bulwark up`: run the venue locally.
//!
//! Until the committee lands (consensus, DKG, one process per node), this runs ONE engine in this
//! process with development stand-ins, and says so: a seeded synthetic index (geometric Brownian
//! motion with jumps) and a load generator of market makers and takers. State is saved to
//! `<data>/engine.snapshot` on exit (Ctrl-C or `--duration`) and resumed on the next start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, EngineConfig, Event, InstrumentId, Side,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine_run::hex;

const MAKERS: u64 = 4;
const TAKERS: u64 = 8;
const BATCH_MS: u64 = 50;
const SNAPSHOT_FILE: &str = "engine.snapshot";

/// Arguments of `bulwark up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the venue's data lives.
    #[arg(long, default_value = "./bulwark-data")]
    data: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Target client orders per second from the load generator.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seed of the synthetic price feed and load generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Committee size (n = 3f + 1, at least 4): one `bulwark node` process per member.
    #[arg(long, default_value_t = 4)]
    nodes: u32,
    /// Run ONE engine in this process instead of the committee (no consensus; a quick look at
    /// the engine under load).
    #[arg(long)]
    single: bool,
    /// First p2p port of the committee on loopback; client endpoints start 100 above.
    #[arg(long, default_value_t = 17_100)]
    base_port: u16,
    /// Attest with a TPM per node: one persistent software TPM (swtpm) each, measured launch,
    /// AKs enrolled by credential activation, node key and DKG share sealed to the measured
    /// PCRs. Needs swtpm and a build with `--features bulwark-attest/tpm`. Chosen when the
    /// committee is created; a resumed committee keeps its mode.
    #[arg(long)]
    tpm: bool,
    /// Price BTC (underlying 0) from these venue capture files (Binance WebSocket format, one
    /// message per line, optionally `.gz`), replayed in real time and looped, instead of the
    /// DEVELOPMENT synthetic feed; repeat for several venues. When the committee is created.
    #[arg(long, value_name = "FILE")]
    oracle_capture: Vec<std::path::PathBuf>,
    /// Price BTC (underlying 0) from these live venue WebSocket URLs (Binance format, e.g. a
    /// combined bookTicker/trade stream); repeat for several venues. When the committee is
    /// created.
    #[arg(long, value_name = "URL")]
    oracle_url: Vec<String>,
    /// Start a new venue even if saved state exists (the old state is kept as a .bak file).
    #[arg(long)]
    fresh: bool,
}

/// A seeded geometric Brownian motion with occasional jumps: the synthetic index stand-in.
struct SyntheticIndex {
    rng: ChaCha8Rng,
    price: f64,
}

impl SyntheticIndex {
    fn step(&mut self, dt_s: f64) -> i64 {
        let vol_per_s = 0.6 / (365.0f64 * 86_400.0).sqrt();
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random_range(0.0..1.0);
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let jump = if self.rng.random_bool(0.0005) {
            self.rng.random_range(-0.01..0.01)
        } else {
            0.0
        };
        self.price *= (vol_per_s * dt_s.sqrt() * z + jump).exp();
        (self.price * 1e6) as i64
    }
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

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Runs the venue until Ctrl-C or `--duration`.
pub fn run(args: UpArgs) -> ExitCode {
    if !args.single {
        return run_committee(&args);
    }
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulwark up: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &UpArgs) -> Result<(), String> {
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
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ engine.time_ms());
    let start_price = engine.index_price(0).map_or(60_000.0, |p| p as f64 / 1e6);
    let mut index = SyntheticIndex {
        rng: ChaCha8Rng::seed_from_u64(args.seed),
        price: start_price,
    };
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
        let price = index.step(BATCH_MS as f64 / 1000.0);
        let mut batch = vec![Command::System(SystemCommand::IndexPrice {
            underlying: 0,
            price_micros: price,
        })];
        let mark = engine.mark(InstrumentId(0)).unwrap_or(price / 100_000);
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
            let root = hex(&engine.state_root());
            eprintln!(
                "height {height} | index {:.2} | mark {} | {rate:.0} orders/s | batch p50 {} µs p99 {} µs | fills {fills} | liquidations {liquidations} | nodes 1/1 (single engine) | root {}",
                price as f64 / 1e6,
                engine.mark(InstrumentId(0)).unwrap_or(0),
                percentile(&latencies_us, 0.5),
                percentile(&latencies_us, 0.99),
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
        hex(&engine.state_root())
    );
    if !engine.totals().conserved() {
        return Err(
            "money is not conserved — this is a bug, please report it with the data directory"
                .into(),
        );
    }
    Ok(())
}

fn run_committee(args: &UpArgs) -> ExitCode {
    eprintln!("bulwark up — DEVELOPMENT committee on loopback");
    eprintln!(
        "  {} nodes in {} labelled data centers, one process each; genesis key by DKG among them",
        args.nodes, args.nodes
    );
    eprintln!(
        "  client keys: DEVELOPMENT keys derived from --seed {}; load: market makers and takers at {} orders/s",
        args.seed, args.rate
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) =
            ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed))
        {
            eprintln!("bulwark up: cannot install the Ctrl-C handler: {e}");
        }
    }
    let options = crate::committee::CommitteeOptions {
        data: args.data.clone(),
        nodes: args.nodes as usize,
        duration: args.duration.map(std::time::Duration::from_secs),
        rate: args.rate,
        seed: args.seed,
        fresh: args.fresh,
        base_port: args.base_port,
        status: true,
        admission_interval_ms: 1_000,
        tpm: args.tpm,
        oracle: crate::committee::oracle_sources(&args.oracle_capture, &args.oracle_url),
    };
    match crate::committee::run_committee(&options, stop) {
        Ok(figures) => {
            eprintln!(
                "bulwark up: stopped at height {}; roots {}",
                figures.height,
                if figures.roots_agree {
                    "agreed"
                } else {
                    "DIVERGED"
                }
            );
            if figures.roots_agree {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("bulwark up: {e}");
            ExitCode::from(2)
        }
    }
}
