//! The front door (issue #15): a process in every data center between traders and the
//! committee. Built so far: a FIX 4.4 acceptor ([`bulwark_fix::session`]) and JSON-RPC 2.0
//! over WebSocket over TLS in the manner of Deribit ([`jsonrpc`], `ws.rs`), whose logon, signed
//! by the trader's account key, opens a trading session in the committee with the session key
//! the trader made and signed, which the gateway holds ([`bulwark_engine::session`]); orders,
//! cancels, replaces and mass cancels mapped to the committee's signed transactions; execution reports
//! only for outcomes `quorum` nodes report finalized; cancel on disconnect, retried; the
//! scrubbing layers: pre-authentication limits per address and overall, logon budgets, credits
//! by class ([`credits`]), CoDel-style shedding of the queues into the committee (never of
//! cancels) and the kill switch ([`killswitch`]); top-of-book market data on both sides
//! ([`marketdata`] for FIX) from the book `quorum` nodes give alike. Not built yet: the
//! public trades channel, fills of resting orders reported to their maker.
//!
//! Start at [`start`], then `acceptor.rs` (the accept loop and one FIX connection), `ws.rs`
//! (one WebSocket connection), `upstream.rs`
//! (the committee: queues, shedding, submits and receipt quorums), and `bulwark-door` (FIX fields and
//! JSON-RPC requests to commands and back, pure).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod acceptor;
pub mod config;
pub mod credits;
pub mod killswitch;
mod metrics;
mod seqstore;
pub mod tls;
mod upstream;
mod ws;

pub use acceptor::Counters;
// The pure translations live in `bulwark-door` (fuzzed there); the connections use them by
// these names.
pub use bulwark_door::{jsonrpc, marketdata, orders};
pub use config::{GatewayConfig, Limits};
pub use upstream::UpstreamCounters;

/// How long a stopping gateway waits for its sessions to log out and their orders to be
/// cancelled before it stops talking to the committee.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// A running gateway.
pub struct Gateway {
    /// Where the FIX acceptor listens.
    pub fix_addr: SocketAddr,
    /// Where the JSON-RPC WebSocket listener listens (TLS), if it does.
    pub ws_addr: Option<SocketAddr>,
    /// The certificate its clients check it by, when it is the self-signed development one
    /// (what `--cacert` or an SSL context must trust).
    pub ws_dev_cert: Option<std::path::PathBuf>,
    /// Counters by layer.
    pub counters: Arc<Counters>,
    /// Where the operator port (`/metrics`) listens, when configured.
    pub operator_addr: Option<SocketAddr>,
    _operator: Option<bulwark_console::OperatorServer>,
    shared: Arc<acceptor::Shared>,
    stop: Arc<AtomicBool>,
    upstream_stop: Arc<AtomicBool>,
    accept: Vec<JoinHandle<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is refused.
    #[error("configuration: {0}")]
    Config(String),
    /// The FIX port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    Data {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Starts the gateway: the receipt followers and the FIX acceptor.
pub fn start(config: GatewayConfig) -> Result<Gateway, StartError> {
    config.validate().map_err(StartError::Config)?;
    let listener = TcpListener::bind(config.fix_listen).map_err(|source| StartError::Listen {
        addr: config.fix_listen,
        source,
    })?;
    let fix_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.fix_listen,
        source,
    })?;
    let ws = match config.ws_listen {
        None => None,
        Some(addr) => {
            let (tls, cert) = tls::server_config(&config).map_err(StartError::Config)?;
            let listener =
                TcpListener::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            let dev_cert = config.ws_tls_self_signed.then_some(cert);
            Some((listener, bound, tls, dev_cert))
        }
    };
    let seq_dir = config.data_dir.join("seq");
    let seqs = seqstore::SeqStore::open(seq_dir.clone()).map_err(|source| StartError::Data {
        path: seq_dir,
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let upstream_stop = Arc::new(AtomicBool::new(false));
    let upstream = upstream::Upstream::new(
        config.nodes.clone(),
        config.quorum,
        Arc::clone(&upstream_stop),
    );
    let thread_error = |source| StartError::Listen {
        addr: fix_addr,
        source,
    };
    let mut threads = upstream.start().map_err(thread_error)?;
    let counters = Arc::new(Counters::default());
    let kill = killswitch::KillSwitch::new(&config.data_dir);
    let shared = Arc::new(acceptor::Shared {
        credits: credits::GatewayCredits::new(&config.limits),
        kill,
        preauth: AtomicUsize::new(0),
        config,
        upstream,
        seqs,
        active: Mutex::default(),
        live: AtomicUsize::new(0),
        per_address: Mutex::default(),
        closing: AtomicUsize::new(0),
        counters: Arc::clone(&counters),
        stop: Arc::clone(&stop),
        tls: ws.as_ref().map(|(_, _, tls, _)| Arc::clone(tls)),
        books: ws::Books::default(),
    });
    let accepting = Arc::clone(&shared);
    let mut accept = vec![std::thread::Builder::new()
        .name("fix-accept".into())
        .spawn(move || acceptor::accept(listener, accepting, "fix", acceptor::serve_fix))
        .map_err(thread_error)?];
    let (mut ws_addr, mut ws_dev_cert) = (None, None);
    if let Some((listener, bound, _, dev_cert)) = ws {
        let accepting = Arc::clone(&shared);
        accept.push(
            std::thread::Builder::new()
                .name("ws-accept".into())
                .spawn(move || acceptor::accept(listener, accepting, "ws", ws::serve))
                .map_err(thread_error)?,
        );
        (ws_addr, ws_dev_cert) = (Some(bound), dev_cert);
    }
    // The agreed books WebSocket subscribers and FIX market data subscriptions watch.
    let watching = Arc::clone(&shared);
    let watch_stop = Arc::clone(&upstream_stop);
    threads.push(
        std::thread::Builder::new()
            .name("book-watch".into())
            .spawn(move || watching.books.watch(&watching.upstream, &watch_stop))
            .map_err(thread_error)?,
    );
    let operator = match shared.config.operator.clone() {
        Some(operator) => Some(
            bulwark_console::OperatorServer::start(
                operator.listen,
                Arc::new(metrics::GatewayPages {
                    shared: Arc::clone(&shared),
                }),
                bulwark_console::Limits::default(),
            )
            .map_err(|source| StartError::Listen {
                addr: operator.listen,
                source,
            })?,
        ),
        None => None,
    };
    Ok(Gateway {
        fix_addr,
        ws_addr,
        ws_dev_cert,
        counters,
        operator_addr: operator
            .as_ref()
            .map(bulwark_console::OperatorServer::local_addr),
        _operator: operator,
        shared,
        stop,
        upstream_stop,
        accept,
        threads,
    })
}

impl Gateway {
    /// Whether it was asked to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Transactions submitted and waiting for their verdict.
    pub fn waiting(&self) -> usize {
        self.shared.upstream.waiting()
    }

    /// The committee side's counters (shed, refused, expired).
    pub fn upstream_counters(&self) -> &UpstreamCounters {
        &self.shared.upstream.counters
    }

    /// Stops accepting, logs sessions out, lets their cancels on disconnect reach the committee
    /// (for up to [`DRAIN_FOR`]) and waits for the threads it started.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for accept in self.accept {
            let _ = accept.join();
        }
        let started = std::time::Instant::now();
        while started.elapsed() < DRAIN_FOR
            && (self.shared.live.load(Ordering::Acquire) > 0
                || self.shared.closing.load(Ordering::Acquire) > 0)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.upstream_stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
