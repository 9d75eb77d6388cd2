//! The gateway's configuration file (TOML).
//!
//! ```toml
//! comp_id = "BULWARK-DC1"           # the TargetCompID traders log on to (1 to 32 printable bytes)
//! fix_listen = "127.0.0.1:7400"     # the FIX acceptor
//! ws_listen = "127.0.0.1:7500"      # optional: JSON-RPC 2.0 over WebSocket over TLS
//! ws_tls_cert = "/etc/bulwark/gateway-cert.pem"   # its certificate chain (PEM)
//! ws_tls_key = "/etc/bulwark/gateway-key.pem"     # and key (PEM)
//! # ws_tls_self_signed = true       # DEVELOPMENT ONLY, instead of the two above: a
//! #                                 # self-signed certificate made in data_dir/tls/
//! data_dir = "bulwark-data/gateway-dc1"   # persisted sequence numbers per SenderCompID
//! nodes = ["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
//! quorum = 2                        # nodes that must report the same receipt (f + 1)
//!
//! [limits]                          # all optional; the defaults are shown
//! connections_max = 1024            # connections at once
//! connections_per_ip = 16           # connections at once from one address
//! preauth_max = 256                 # connections not yet logged on, at once
//! preauth_per_ip = 4                # connections not yet logged on, at once, from one address
//! logons_per_s = 200                # logon signatures checked per second, all addresses
//! logons_per_ip_per_s = 5           # logon signatures checked per second from one address
//! tls_handshakes_per_s = 200        # TLS handshakes begun per second (WebSocket), all addresses
//! tls_handshakes_per_ip_per_s = 5   # TLS handshakes begun per second from one address
//! orders_per_s = 50                 # new orders per second per session (cancels: never refused)
//! orders_burst = 10                 # new orders a session may send at once within its rate
//! modifies_per_s = 100              # replaces per second per session
//! queries_per_s = 20                # order status requests per second per session
//! account_orders_per_s = 200        # new orders and replaces per second per account, all sessions
//! in_flight_max = 256               # orders per session submitted and not yet finalized
//! session_lifetime_s = 28800        # a trading session's lifetime (at most a day)
//!
//! [operator]                        # optional: the read-only operator port (docs/metrics.md)
//! listen = "127.0.0.1:7600"         # /metrics; loopback unless allow_remote = true
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of bounds.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The gateway's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections at once.
    pub connections_max: usize,
    /// Connections at once from one address.
    pub connections_per_ip: usize,
    /// Connections not yet logged on, at once (the rest of `connections_max` is kept for
    /// sessions).
    pub preauth_max: usize,
    /// Connections not yet logged on, at once, from one address (an IPv6 address counts by its
    /// /64).
    pub preauth_per_ip: usize,
    /// Logon signatures checked per second over all addresses.
    pub logons_per_s: u32,
    /// Logon signatures checked per second from one address.
    pub logons_per_ip_per_s: u32,
    /// TLS handshakes begun per second over all addresses (the WebSocket listener).
    pub tls_handshakes_per_s: u32,
    /// TLS handshakes begun per second from one address.
    pub tls_handshakes_per_ip_per_s: u32,
    /// New orders per second per session.
    pub orders_per_s: u32,
    /// New orders (and replaces) a session may send at once within its rate.
    pub orders_burst: u32,
    /// Replaces per second per session.
    pub modifies_per_s: u32,
    /// Order status requests per second per session.
    pub queries_per_s: u32,
    /// New orders and replaces per second per account, over all its sessions.
    pub account_orders_per_s: u32,
    /// Orders per session submitted and not yet finalized.
    pub in_flight_max: usize,
    /// A trading session's lifetime, seconds.
    pub session_lifetime_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 1024,
            connections_per_ip: 16,
            preauth_max: 256,
            preauth_per_ip: 4,
            logons_per_s: 200,
            logons_per_ip_per_s: 5,
            tls_handshakes_per_s: 200,
            tls_handshakes_per_ip_per_s: 5,
            orders_per_s: 50,
            orders_burst: 10,
            modifies_per_s: 100,
            queries_per_s: 20,
            account_orders_per_s: 200,
            in_flight_max: 256,
            session_lifetime_s: 8 * 3600,
        }
    }
}

/// The gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Our CompID.
    pub comp_id: String,
    /// Where the FIX acceptor listens.
    pub fix_listen: SocketAddr,
    /// Where the JSON-RPC WebSocket listener listens (TLS only), if anywhere.
    #[serde(default)]
    pub ws_listen: Option<SocketAddr>,
    /// Its certificate chain, PEM.
    #[serde(default)]
    pub ws_tls_cert: Option<PathBuf>,
    /// Its private key, PEM.
    #[serde(default)]
    pub ws_tls_key: Option<PathBuf>,
    /// Development only: a self-signed certificate made in `data_dir/tls/` instead of
    /// `ws_tls_cert` and `ws_tls_key` (the gateway says so whenever it starts).
    #[serde(default)]
    pub ws_tls_self_signed: bool,
    /// Where sequence numbers are persisted.
    pub data_dir: PathBuf,
    /// The committee's client endpoints.
    pub nodes: Vec<SocketAddr>,
    /// How many nodes must report the same receipt before the gateway believes it.
    pub quorum: usize,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The read-only operator port (`docs/metrics.md`): Prometheus metrics at `/metrics`.
    /// Absent: none.
    #[serde(default)]
    pub operator: Option<bulwark_console::OperatorConfig>,
}

impl GatewayConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: GatewayConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks the bounds; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if !bulwark_engine::session::valid_comp_id(&self.comp_id) {
            return Err(format!(
                "comp_id {:?} must be 1 to 32 printable ASCII bytes",
                self.comp_id
            ));
        }
        if let Some(addr) = self.ws_listen {
            let given = (self.ws_tls_cert.is_some(), self.ws_tls_key.is_some());
            match (given, self.ws_tls_self_signed) {
                ((true, true), false) | ((false, false), true) => {}
                ((true, true), true) => {
                    return Err(
                        "ws_tls_self_signed is for development only: drop it when ws_tls_cert and ws_tls_key are given".into(),
                    )
                }
                _ => {
                    return Err(format!(
                        "ws_listen {addr} needs TLS: set ws_tls_cert and ws_tls_key (PEM), or ws_tls_self_signed = true for development"
                    ))
                }
            }
        }
        let listeners: Vec<SocketAddr> = std::iter::once(self.fix_listen)
            .chain(self.ws_listen)
            .collect();
        if let Some(problem) = self.operator.as_ref().and_then(|o| o.problem(&listeners)) {
            return Err(problem);
        }
        if self.nodes.is_empty() {
            return Err("nodes must list at least one node endpoint".into());
        }
        if self.quorum == 0 || self.quorum > self.nodes.len() {
            return Err(format!(
                "quorum {} must be between 1 and the {} nodes listed (f + 1 for a committee of 3f + 1)",
                self.quorum,
                self.nodes.len()
            ));
        }
        let l = &self.limits;
        let counts = [
            ("connections_max", l.connections_max),
            ("connections_per_ip", l.connections_per_ip),
            ("preauth_max", l.preauth_max),
            ("preauth_per_ip", l.preauth_per_ip),
            ("in_flight_max", l.in_flight_max),
        ];
        let rates = [
            ("logons_per_s", l.logons_per_s),
            ("logons_per_ip_per_s", l.logons_per_ip_per_s),
            ("tls_handshakes_per_s", l.tls_handshakes_per_s),
            ("tls_handshakes_per_ip_per_s", l.tls_handshakes_per_ip_per_s),
            ("orders_per_s", l.orders_per_s),
            ("orders_burst", l.orders_burst),
            ("modifies_per_s", l.modifies_per_s),
            ("queries_per_s", l.queries_per_s),
            ("account_orders_per_s", l.account_orders_per_s),
        ];
        let zero = counts
            .iter()
            .find(|(_, v)| *v == 0)
            .map(|(name, _)| *name)
            .or_else(|| rates.iter().find(|(_, v)| *v == 0).map(|(name, _)| *name));
        if let Some(name) = zero {
            return Err(format!("limits.{name} must be at least 1"));
        }
        if l.preauth_max > l.connections_max {
            return Err(format!(
                "limits.preauth_max {} must not exceed connections_max {}",
                l.preauth_max, l.connections_max
            ));
        }
        let day = bulwark_engine::session::SESSION_LIFETIME_MAX_MS / 1000;
        if l.session_lifetime_s == 0 || l.session_lifetime_s > day {
            return Err(format!("session_lifetime_s must be within 1..={day}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_refused_with_what_to_fix() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("gateway.toml");
        let good = "comp_id = \"BULWARK-DC1\"\nfix_listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\nnodes = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nquorum = 2\n";
        std::fs::write(&path, good).expect("writes");
        let config = GatewayConfig::load(&path).expect("loads");
        assert_eq!(config.limits, Limits::default());
        for (bad, says) in [
            (good.replace("quorum = 2", "quorum = 3"), "quorum 3"),
            (good.replace("BULWARK-DC1", "has space"), "comp_id"),
            (
                good.replace("nodes = [\"127.0.0.1:1\", \"127.0.0.1:2\"]", "nodes = []"),
                "nodes",
            ),
            (format!("{good}color = 1\n"), "unknown field"),
            (
                format!("{good}[limits]\norders_burst = 0\n"),
                "limits.orders_burst must be at least 1",
            ),
            (
                format!("{good}[limits]\npreauth_max = 2000\n"),
                "preauth_max 2000",
            ),
            (
                format!("{good}[limits]\nsession_lifetime_s = 90000\n"),
                "session_lifetime_s",
            ),
            (
                format!("{good}[operator]\nlisten = \"0.0.0.0:7600\"\n"),
                "allow_remote = true",
            ),
            (
                format!(
                    "{}[operator]\nlisten = \"127.0.0.1:7400\"\n",
                    good.replace("127.0.0.1:0", "127.0.0.1:7400")
                ),
                "another listener",
            ),
        ] {
            std::fs::write(&path, bad).expect("writes");
            let error = GatewayConfig::load(&path).expect_err("refused").to_string();
            assert!(error.contains(says), "{error}");
        }
        assert!(GatewayConfig::load(&dir.path().join("missing.toml")).is_err());
    }
}
