//! Venue sources that run: each configured venue's latest [`SourceQuote`] at any moment, from a
//! live WebSocket or from a capture file replayed in real time.
//!
//! The pure part is always built, reads no clock and opens no socket: the config and its checks
//! ([`config`], which also checks that capture files exist), one venue's quote and counters
//! ([`VenueFeed`]), the reconnect delays ([`Backoff`]) and the status a venue reports
//! ([`VenueStatus`]). The part that runs — tokio tasks, sockets, TLS, a capture
//! player thread — is the runtime crate `bulwark-venues` (so its items are named here without
//! links): `spawn_sources` starts one [`VenueSource`] per venue, a `LiveWebSocket` or a
//! `CaptureSource`, and the returned `Sources` hands out the quotes in config order for
//! [`crate::node::OracleNode::observe`].
//!
//! # Configuring sources
//!
//! A node's config carries an `[oracle]` section that deserializes into [`SourcesConfig`]
//! (unknown fields are refused) and is checked by [`SourcesConfig::validate`]:
//!
//! ```toml
//! [oracle]
//! source = "live"              # "live" | "capture" | "synthetic"
//! # optional, shown with their defaults (ms):
//! reconnect_initial_ms = 500   # first delay after a failed or dropped connection; doubles …
//! reconnect_max_ms = 30000     # … up to this
//! connect_timeout_ms = 10000   # TCP + TLS + upgrade
//! idle_timeout_ms = 30000      # a silent connection is dropped and reopened
//!
//! [[oracle.venues]]
//! name = "binance-spot"
//! weight = 2
//! url = "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade"
//! capture = "../shared/data/market/spot_btcusdt_20240808.gz"
//! speed = 10                   # capture only: 1 = recorded pace, 10 = ten times faster
//! loop = true                  # capture only: start over at the end
//!
//! [[oracle.venues]]
//! name = "binance-usdm"
//! url = "wss://fstream.binance.com/stream?streams=btcusdt@bookTicker/btcusdt@trade"
//! capture = "../shared/data/market/usdm_btcusdt_20240808.gz"
//! ```
//!
//! - `source = "live"` reads every venue's `url`; `"capture"` every venue's `capture`; a venue
//!   may name both, so one list serves both modes. `"synthetic"` runs nothing here (the node
//!   keeps its seeded DEVELOPMENT feed) and needs no venues.
//! - Venues are observed in list order: `Sources::quotes` and [`SourcesConfig::weights`] line
//!   up with [`crate::node::NodeConfig::weights`] ([`SourcesConfig::observer_config`] builds it).
//! - A live URL carries its subscriptions (Binance's combined-stream form `…/stream?streams=a/b`
//!   or a single stream `…/ws/btcusdt@bookTicker`). `bookTicker` sets the mid and half-spread,
//!   `trade` the last price (used only while no book is known); `depthUpdate` is parsed and
//!   counted but does not move the quote.
//! - Every quote is stamped with the node's clock when its message is applied (for a capture:
//!   when it is replayed), so the node's staleness check compares like with like. Live
//!   connections refuse messages and frames longer than [`crate::binance::LINE_BYTES_MAX`].
//! - TLS is rustls 0.23 with the aws-lc-rs provider (hybrid X25519MLKEM768 preferred) and the
//!   Mozilla roots from `webpki-roots`.
//!
//! Wiring in a node (with `bulwark_venues::spawn_sources`):
//!
//! ```ignore
//! let config: SourcesConfig = node_config.oracle;        // deserialized from the TOML above
//! let observer = config.observer_config();
//! let sources = spawn_sources(&config, &tokio::runtime::Handle::current())?;
//! // each round:
//! let observation = observe(&observer, &sources.quotes(), feed, round, now_ms);
//! // for an operator endpoint:
//! let status: serde_json::Value = sources.status();
//! ```

pub mod config;
mod feed;

pub use config::{SourceError, SourceKind, SourcesConfig, VenueConfig};
pub use feed::{Backoff, Clock, FeedCounters, Outcome, VenueFeed, VenueStatus, ERROR_BYTES_MAX};

use crate::node::SourceQuote;

/// One running venue source: its latest quote and its status, readable at any moment from any
/// thread. Dropping it stops its task.
pub trait VenueSource: Send + Sync {
    /// The venue's configured name.
    fn name(&self) -> &str;
    /// The latest quote, `None` until the venue has sent a usable price.
    fn quote(&self) -> Option<SourceQuote>;
    /// Its status at `now_ms` on the source's clock.
    fn status(&self, now_ms: u64) -> VenueStatus;
}
