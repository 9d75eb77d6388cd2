//! `bulwark bench engine`: the matching core against the `lobster` crate, the full engine with
//! margin checks, and memory per resting order.
//!
//! Every operation stream is generated up front (or, for the full engine, outside the timed
//! region) from a seeded ChaCha8 generator, so a seed reproduces the same figures' workload
//! exactly. The matching comparison runs the identical stream through both books in this process
//! and refuses to report when the two books end in different states: a faster book that computes
//! something else proves nothing.
//!
//! The memory figure is measured first, on a fresh heap, so that the resident-set growth it reports
//! is not hidden by memory that earlier figures freed and the allocator kept.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulwark_engine::book::{Book, BookEvent, Incoming, Resting};
use bulwark_engine::command::{
    AccountId, ClientCommand, Command, InstrumentId, LimitOrder, OrderId, SelfTradePrevention,
    Side, SystemCommand, TimeInForce,
};
use bulwark_engine::{Engine, EngineConfig, Event};
use lobster::{OrderBook, OrderEvent, OrderType};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::report::Figure;

/// Options of `bulwark bench engine`.
#[derive(Debug, clap::Args)]
pub struct EngineBenchArgs {
    /// Seed of every generated operation stream; the same seed gives the same workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Operations executed before measuring starts.
    #[arg(long, default_value_t = 200_000)]
    pub warmup: usize,
    /// Operations measured, per figure.
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: usize,
    /// Resting orders inserted for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    pub resting: usize,
    /// Tiny sizes, for a smoke test: checks that every figure is produced, not how fast.
    #[arg(long)]
    pub quick: bool,
}

/// Why the benchmark stopped without reporting.
#[derive(Debug, Error)]
#[non_exhaustive]
enum BenchError {
    /// The two books disagree after the identical stream; the comparison would be meaningless.
    #[error(
        "at {levels} price levels our book and lobster ended in different states ({what}); \
         the matching comparison is void — this is a bug in the benchmark or in a book"
    )]
    Diverged { levels: i64, what: String },
    /// The engine refused a setup command, so the engine figures would measure rejections.
    #[error(
        "the engine rejected setup command {command} ({reason}); check that \
         EngineConfig::default() lists BTC-PERP as instrument 0 on underlying 0"
    )]
    Setup { command: String, reason: String },
}

/// Price ticks around which every stream is centred (positive, as lobster needs unsigned prices).
const MID_TICKS: i64 = 1_000_000;
/// Largest limit order in lots.
const LIMIT_LOTS_MAX: i64 = 10;
/// The goal for memory per resting order, in bytes (issue 2).
const RESTING_BYTES_GOAL: f64 = 128.0;
/// Accounts trading in the full-engine figure.
const ENGINE_ACCOUNTS: u64 = 1_000;
/// Commands per `execute` call in the batched full-engine figure.
const ENGINE_BATCH: usize = 1_000;

/// Runs the benchmark and prints one JSON line per figure on stdout.
pub fn run(args: EngineBenchArgs) -> ExitCode {
    match run_figures(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Sizes {
    warmup: usize,
    ops: usize,
    resting: usize,
}

fn run_figures(args: &EngineBenchArgs) -> Result<(), BenchError> {
    let sizes = if args.quick {
        // Large enough that resident-set growth is visible, small enough to finish in seconds.
        Sizes {
            warmup: 2_000,
            ops: 20_000,
            resting: 100_000,
        }
    } else {
        Sizes {
            warmup: args.warmup,
            ops: args.ops,
            resting: args.resting,
        }
    };
    memory_figures(sizes.resting);
    for levels in [3, 1001] {
        matching_figure(args.seed, levels, &sizes)?;
    }
    engine_figures(args.seed, &sizes)
}

// ---------------------------------------------------------------------------------------------
// 1. Matching core against lobster.

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

mod full;
mod matching;
mod memory;

use full::{engine_figures, Draw, Workload};
use matching::matching_figure;
use memory::memory_figures;
