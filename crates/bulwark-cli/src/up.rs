//! `bulwark up`: run the venue locally — a DEVELOPMENT committee of node processes on
//! loopback (`bulwark-devnet`), or with `--single` one engine in this process.

use bulwark_devnet::{oracle_sources, run_committee, run_single, CommitteeOptions, SingleOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// PCRs. Needs swtpm and a build with `--features bulwark-attestor/tpm`. Chosen when the
    /// committee is created; a resumed committee keeps its mode.
    #[arg(long)]
    tpm: bool,
    /// Price BTC (underlying 0) from these venue capture files (Binance WebSocket format, one
    /// message per line, optionally `.gz`), replayed in real time and looped, instead of the
    /// DEVELOPMENT synthetic feed; repeat for several venues. When the committee is created.
    #[arg(long, value_name = "FILE")]
    oracle_capture: Vec<PathBuf>,
    /// Price BTC (underlying 0) from these live venue WebSocket URLs (Binance format, e.g. a
    /// combined bookTicker/trade stream); repeat for several venues. When the committee is
    /// created.
    #[arg(long, value_name = "URL")]
    oracle_url: Vec<String>,
    /// Start a new venue even if saved state exists (the old state is kept as a .bak file).
    #[arg(long)]
    fresh: bool,
    /// Replace node N's binary by a tampered copy while the committee runs (the node restarts
    /// from it), to watch the sentinel remove it; with `--at`.
    #[arg(long, value_name = "N", requires = "at")]
    tamper_node: Option<u32>,
    /// Seconds after the start at which `--tamper-node` strikes.
    #[arg(long, value_name = "SECS", requires = "tamper_node")]
    at: Option<u64>,
    /// Also write this many spare machines as candidates (listed in every node's
    /// configuration, not started, not in the genesis committee): after a removal, start one
    /// with `bulwark node --config <data>/committee/node-N/node.toml` (give it the venue's
    /// identity.hex first) and seat it with `bulwark admin replace`. When the committee is
    /// created; DEVELOPMENT attestor only.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3))]
    candidates: u32,
}

/// Runs the venue until Ctrl-C or `--duration`.
pub fn run(args: UpArgs) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)) {
            eprintln!("bulwark up: cannot install the Ctrl-C handler: {e}");
        }
    }
    if args.single {
        let options = SingleOptions {
            data: args.data,
            duration: args.duration,
            rate: args.rate,
            seed: args.seed,
            fresh: args.fresh,
        };
        return match run_single(&options, stop) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bulwark up: {e}");
                ExitCode::from(2)
            }
        };
    }
    eprintln!("bulwark up — DEVELOPMENT committee on loopback");
    eprintln!(
        "  {} nodes in {} labelled data centers, one process each; genesis key by DKG among them",
        args.nodes, args.nodes
    );
    eprintln!(
        "  client keys: DEVELOPMENT keys derived from --seed {}; load: market makers and takers at {} orders/s",
        args.seed, args.rate
    );
    if let Some(node) = args.tamper_node {
        if args.single || node >= args.nodes {
            eprintln!(
                "bulwark up: --tamper-node {node} names no node of the committee (nodes 0 to {})",
                args.nodes.saturating_sub(1)
            );
            return ExitCode::from(2);
        }
    }
    let options = CommitteeOptions {
        tamper: args
            .tamper_node
            .zip(args.at)
            .map(|(node, at)| (node as usize, std::time::Duration::from_secs(at))),
        oracle: oracle_sources(&args.oracle_capture, &args.oracle_url),
        data: args.data,
        nodes: args.nodes as usize,
        candidates: args.candidates as usize,
        duration: args.duration.map(std::time::Duration::from_secs),
        rate: args.rate,
        seed: args.seed,
        fresh: args.fresh,
        base_port: args.base_port,
        status: true,
        admission_interval_ms: 1_000,
        tpm: args.tpm,
    };
    match run_committee(&options, stop) {
        Ok(figures) if figures.roots_agree => {
            eprintln!(
                "bulwark up: stopped at height {}; roots agreed at all {} heights two or more nodes reported; {} chain deposits credited; {} of {} withdrawals signed by the vault",
                figures.height, figures.roots_compared, figures.deposits_credited, figures.withdrawals_signed, figures.withdrawals_requested
            );
            ExitCode::SUCCESS
        }
        Ok(figures) if figures.roots_compared == 0 => {
            eprintln!(
                "bulwark up: stopped at height {}; NO height was reported by two nodes, so no roots were compared",
                figures.height
            );
            ExitCode::from(1)
        }
        Ok(figures) => {
            eprintln!(
                "bulwark up: stopped at height {}; roots DIVERGED",
                figures.height
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("bulwark up: {e}");
            ExitCode::from(2)
        }
    }
}
