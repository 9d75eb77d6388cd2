//! `bulwark`: the command-line entry point. One small file per command: parse the arguments,
//! call a library (`bulwark-devnet`, `bulwark-node`, `bulwark-sim`, `bulwark-bench`, ...),
//! map its errors to an exit code and a next step.

mod admin;
mod client;
mod engine_run;
mod gateway;
mod node;
mod sim;
mod up;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bulwark — the trust layer of a derivatives venue.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the venue locally: a committee of node processes on loopback with a load generator.
    Up(up::UpArgs),
    /// Run one committee node (multi-host deployment; see docs/node.md).
    Node {
        /// The node's configuration file (TOML).
        #[arg(long)]
        config: std::path::PathBuf,
        /// The explicit, logged migration: seal a plain secret file (a provisioned node key)
        /// or an older keystore's file in place, bound to this committee. Without it such
        /// files are refused.
        #[arg(long)]
        migrate_secrets: bool,
    },
    /// Run the FIX gateway of one data center (see docs/gateway.md).
    Gateway {
        /// The gateway's configuration file (TOML).
        #[arg(long)]
        config: std::path::PathBuf,
        /// Engage the kill switch of the running gateway (in the configuration's data
        /// directory) for `all` accounts or one account number, and exit: new orders refused,
        /// resting orders cancelled, cancels still taken. Repeatable.
        #[arg(long, value_name = "all|ACCOUNT")]
        kill: Vec<String>,
        /// Release the kill switch for `all` (everything) or one account number, and exit.
        #[arg(long, value_name = "all|ACCOUNT", conflicts_with = "kill")]
        release: Vec<String>,
    },
    /// Talk to a node's client endpoint: status, account, book, or submit a signed order.
    Client(ClientArgs),
    /// Operator requests to the committee: re-admission of a removed member.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Replay a node's finalized log from genesis: check every certificate against the group
    /// public key and recompute every state root.
    Verify {
        /// The node's data directory (holds storage/ and identity.hex).
        #[arg(long)]
        data: std::path::PathBuf,
        /// The venue's genesis file.
        #[arg(long)]
        genesis: std::path::PathBuf,
        /// The venue's group public key, hex (default: identity.hex in the data directory).
        #[arg(long)]
        identity: Option<String>,
        /// Report the state root at this height (compare nodes at one height). The replay
        /// reads on until a finalization certificate covers it, and fails when none does.
        #[arg(long)]
        until: Option<u64>,
    },
    /// Work with the derivatives engine directly.
    #[command(subcommand)]
    Engine(EngineCmd),
    /// Run a seeded scenario simulation and print its JSON outcome.
    Sim(sim::SimArgs),
    /// Attestation: TPM quotes, reference-value manifests, evidence appraisal.
    Attest(bulwark_attestor::AttestArgs),
    /// Audit this host (or a directory tree) against CIS-style SCA policies and a role manifest.
    Audit(bulwark_auditor::AuditArgs),
    /// Run a benchmark; prints one JSON line per figure.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Debug, Subcommand)]
enum AdminCmd {
    /// Re-admit a removed member: ask every member for its affirmation (each gives one only
    /// on its own fresh affirming appraisal of the candidate and the candidate's clean, fresh
    /// signed audit report), submit the admission to every node, and optionally follow it
    /// until the candidate signs in the next epoch (docs/sentinel.md).
    Readmit(admin::ReadmitArgs),
    /// Sign this operator's approval that a newcomer takes a member's seat in an epoch; prints
    /// it as one JSON line for `admin replace --approval`.
    Approve(admin::ApproveArgs),
    /// Seat a newcomer (a candidate in every member's configuration) in place of a quarantined
    /// or removed member: the members' affirmations, the operators' approvals, the admission
    /// submitted to every node, and optionally followed until it signs.
    Replace(admin::ReplaceArgs),
}

#[derive(Debug, Subcommand)]
enum EngineCmd {
    /// Execute a JSON-lines transaction file and print JSON-lines events and a summary.
    Run(engine_run::RunArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Matching core vs lobster, full engine throughput and latency, memory per resting order.
    Engine(bulwark_bench::engine::EngineBenchArgs),
    /// Oracle aggregation cost per round, certified-index deviation on real captures, and
    /// observation→finalized latency through a 4-node committee.
    Oracle {
        /// First p2p port of the committee.
        #[arg(long, default_value_t = 19_600)]
        base_port: u16,
        /// Seconds of committee run.
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
    /// Quotes appraised per second vs the bare signature-verification bound and tpm2_checkquote;
    /// tamper→cut-off delay on a committee at a 1 s re-attestation interval.
    Attest {
        /// First p2p port of the committee.
        #[arg(long, default_value_t = 19_100)]
        base_port: u16,
    },
    /// Audit scan CPU time and peak memory vs lynis and OpenSCAP; re-check of one changed file.
    Audit,
    /// QuickFIX's NewOrderSingle → ExecutionReport round trip through our gateway and a 4-node
    /// committee (acked once finalized) vs a QuickFIX acceptor answering at once.
    Gateway {
        /// First p2p port of the committee (the peer acceptor listens 390 above).
        #[arg(long, default_value_t = 18_200)]
        base_port: u16,
        /// Orders sent one after another to each side (figure 4).
        #[arg(long, default_value_t = 200)]
        orders: usize,
        /// Orders a second over the 60 FIX sessions of figures 1–3.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds each phase of figures 1–3 sends.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The vault's FROST keys in one process: DKG and refresh time at n = 4 and 7, taproot
    /// signing (checks, round 2, aggregation) vs one libsecp256k1 key.
    Custody,
    /// The nemesis in the simulator: simulated seconds per wall second at n = 4 and 7 (vs real
    /// time), seeds per minute, and the worst recovery (vs its bound); fails on a violation.
    Sim {
        /// Nemesis seeds per committee size.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
    },
    /// A replica's start: from its newest engine snapshot plus the log after it, vs a replay
    /// of the whole finalized log from genesis.
    Restart(bulwark_bench::restart::RestartBenchArgs),
    /// 4 node processes on loopback, twice: the time from a tampered binary on node 3 to node 3
    /// out of the participant set, and finalized orders/s through the reshare vs the same run
    /// without the tamper.
    Sentinel {
        /// Seconds of load per run (at least `--tamper-at` + 10).
        #[arg(long, default_value_t = 40)]
        duration: u64,
        /// Orders per second offered.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds after the start at which node 3's binary is replaced.
        #[arg(long, default_value_t = 15)]
        tamper_at: u64,
        /// First p2p port.
        #[arg(long, default_value_t = 18_700)]
        base_port: u16,
    },
    /// 4 node processes on loopback: finalized orders/s and submit-to-finalized latency vs the
    /// machine's signature-verification bound.
    Committee {
        /// Seconds of load.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Orders per second offered in the first run (above the 5 000 goal; latency there).
        #[arg(long, default_value_t = 6_000)]
        rate: u64,
        /// Orders per second offered in the second run (throughput at saturation).
        #[arg(long, default_value_t = 16_000)]
        saturate: u64,
        /// First p2p port.
        #[arg(long, default_value_t = 18_100)]
        base_port: u16,
    },
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// The node's client endpoint.
    #[arg(long, default_value = "127.0.0.1:17200")]
    node: std::net::SocketAddr,
    #[command(subcommand)]
    request: ClientRequest,
}

#[derive(Debug, Subcommand)]
enum ClientRequest {
    /// The node's status (height, root, latency, mempool).
    Status,
    /// One account's committed state.
    Account {
        /// Account id.
        id: u64,
    },
    /// One book's top levels.
    Book {
        /// Instrument id (0 BTC-PERP, 1 ETH-PERP, 2.. options).
        instrument: u32,
        /// Levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Sign and submit a GTC limit order.
    Order {
        #[command(flatten)]
        signer: Signer,
        /// Instrument id.
        #[arg(long, default_value_t = 0)]
        instrument: u32,
        /// buy or sell.
        #[arg(long)]
        side: String,
        /// Price in ticks.
        #[arg(long)]
        price: i64,
        /// Quantity in lots.
        #[arg(long)]
        qty: i64,
    },
    /// Sign and submit a stop order: held off the book until the instrument's mark crosses
    /// the trigger (paused while an oracle guard is open), then placed as a market order or,
    /// with --limit, a GTC limit order. Cancel it like an order.
    Stop {
        #[command(flatten)]
        signer: Signer,
        /// Instrument id.
        #[arg(long, default_value_t = 0)]
        instrument: u32,
        /// buy or sell (the order placed on trigger).
        #[arg(long)]
        side: String,
        /// Trigger price in ticks, compared with the instrument's mark.
        #[arg(long)]
        trigger: i64,
        /// rises (mark at or above the trigger) or falls (at or below); default rises for a
        /// buy stop, falls for a sell stop.
        #[arg(long)]
        direction: Option<String>,
        /// Limit price in ticks of the order placed on trigger (absent: a market order).
        #[arg(long)]
        limit: Option<i64>,
        /// Quantity in lots.
        #[arg(long)]
        qty: i64,
        /// The order placed on trigger may only reduce the position.
        #[arg(long)]
        reduce_only: bool,
    },
    /// Sign and submit the cancel of one resting order (ids: `client account ID`).
    Cancel {
        #[command(flatten)]
        signer: Signer,
        /// Instrument id.
        #[arg(long, default_value_t = 0)]
        instrument: u32,
        /// The order's id.
        #[arg(long)]
        order_id: u64,
    },
    /// Sign and submit a withdrawal: the engine debits the account at once and records it, and
    /// the vault's members sign it once (follow it with `client withdrawals`).
    Withdraw {
        #[command(flatten)]
        signer: Signer,
        /// Amount in micros.
        #[arg(long)]
        amount: i64,
        /// Destination, 64 hex characters: an x-only secp256k1 key (the P2TR output paid) for
        /// bitcoin, an Ed25519 public key for ed25519.
        #[arg(long)]
        destination: String,
        /// Which of the vault's keys pays: bitcoin or ed25519.
        #[arg(long, default_value = "bitcoin")]
        chain: String,
    },
    /// The ledger's withdrawals and what the vault did with each: requested, signing, signed
    /// (with the public key, the signed messages, the signatures and, for Bitcoin, the raw
    /// signed transaction).
    Withdrawals {
        /// Only this account's.
        #[arg(long)]
        account: Option<u64>,
        /// Print the whole answer as JSON (one object) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Who signs a client transaction.
#[derive(Debug, clap::Args)]
struct Signer {
    /// Account id.
    #[arg(long)]
    account: u64,
    /// File holding the account's ed25519 secret key, 64 hex characters.
    #[arg(long)]
    key: std::path::PathBuf,
    /// Nonce (must exceed the account's last accepted nonce; see `client account ID`).
    #[arg(long)]
    nonce: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Top::Up(args) => up::run(args),
        Top::Node {
            config,
            migrate_secrets,
        } => node::run(&config, migrate_secrets),
        Top::Gateway {
            config,
            kill,
            release,
        } => {
            if kill.is_empty() && release.is_empty() {
                gateway::run(&config)
            } else {
                gateway::kill_switch(&config, &kill, &release)
            }
        }
        Top::Client(args) => client::run(args.node, args.request),
        Top::Admin(AdminCmd::Readmit(args)) => admin::readmit(&args),
        Top::Admin(AdminCmd::Approve(args)) => admin::approve(&args),
        Top::Admin(AdminCmd::Replace(args)) => admin::replace(&args),
        Top::Verify {
            data,
            genesis,
            identity,
            until,
        } => verify::run(&data, &genesis, identity.as_deref(), until),
        Top::Bench(BenchCmd::Committee {
            duration,
            rate,
            saturate,
            base_port,
        }) => bulwark_bench::committee::run_bench(duration, rate, saturate, base_port),
        Top::Bench(BenchCmd::Sentinel {
            duration,
            rate,
            tamper_at,
            base_port,
        }) => bulwark_bench::sentinel::run_bench(duration, rate, tamper_at, base_port),
        Top::Engine(EngineCmd::Run(args)) => engine_run::run(args),
        Top::Sim(args) => sim::run(args),
        Top::Attest(args) => bulwark_attestor::run(args),
        Top::Audit(args) => bulwark_auditor::run(args),
        Top::Bench(BenchCmd::Attest { base_port }) => {
            bulwark_bench::committee::run_attest_bench(base_port)
        }
        Top::Bench(BenchCmd::Oracle {
            base_port,
            duration,
        }) => bulwark_bench::committee::run_oracle_bench(base_port, duration),
        Top::Bench(BenchCmd::Engine(args)) => bulwark_bench::engine::run(args),
        Top::Bench(BenchCmd::Restart(args)) => bulwark_bench::restart::run(args),
        Top::Bench(BenchCmd::Custody) => bulwark_bench::custody::run_bench(),
        Top::Bench(BenchCmd::Sim { seeds }) => bulwark_bench::sim::run_bench(seeds),
        Top::Bench(BenchCmd::Gateway {
            base_port,
            orders,
            rate,
            seconds,
        }) => {
            // The in-process gateway's warnings (RUST_LOG for more).
            node::init_tracing_default("warn");
            let load = bulwark_bench::gateway::LoadOptions { rate, seconds };
            bulwark_bench::gateway::run_bench(base_port, orders, load)
        }
        Top::Bench(BenchCmd::Audit) => {
            bulwark_bench::audit::run_bench();
            ExitCode::SUCCESS
        }
    }
}
