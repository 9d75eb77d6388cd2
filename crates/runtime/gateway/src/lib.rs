//! The front door (issue #15): a process in every data center between traders and the
//! committee. Built so far: a FIX 4.4 acceptor ([`bulwark_fix::session`]) whose logon, signed
//! by the trader's account key, opens a trading session in the committee with the session key the trader made
//! and signed, which the gateway holds ([`bulwark_engine::session`]); orders, cancels and mass cancels mapped to the
//! committee's signed transactions; execution reports only for outcomes `quorum` nodes report
//! finalized; cancel on disconnect; pre-authentication limits, a logon budget and per-session
//! order credits. Not built yet: JSON-RPC over WebSocket, TLS, CoDel shedding, the kill switch,
//! replace, market data.
//!
//! Start at [`start`], then `acceptor.rs` (the accept loop and one connection), `upstream.rs`
//! (the committee: submits and receipt quorums), `orders.rs` (FIX fields to commands and back).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod acceptor;
pub mod config;
pub mod orders;
mod seqstore;
mod upstream;

pub use acceptor::Counters;
pub use config::{GatewayConfig, Limits};

/// A running gateway.
pub struct Gateway {
    /// Where the FIX acceptor listens.
    pub fix_addr: SocketAddr,
    /// Counters by layer.
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
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
    let seq_dir = config.data_dir.join("seq");
    let seqs = seqstore::SeqStore::open(seq_dir.clone()).map_err(|source| StartError::Data {
        path: seq_dir,
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = upstream::Upstream::new(config.nodes.clone(), config.quorum, Arc::clone(&stop));
    let mut threads = upstream.follow();
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(acceptor::Shared {
        logons: Mutex::new(acceptor::Bucket::new(config.limits.logons_per_s)),
        config,
        upstream,
        seqs,
        active: Mutex::default(),
        counters: Arc::clone(&counters),
        stop: Arc::clone(&stop),
    });
    threads.push(
        std::thread::Builder::new()
            .name("fix-accept".into())
            .spawn(move || acceptor::accept(listener, shared))
            .map_err(|source| StartError::Listen {
                addr: fix_addr,
                source,
            })?,
    );
    Ok(Gateway {
        fix_addr,
        counters,
        stop,
        threads,
    })
}

impl Gateway {
    /// Whether it was asked to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops accepting, logs sessions out and waits for the threads it started.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
