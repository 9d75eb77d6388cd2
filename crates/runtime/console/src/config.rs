//! The `[operator]` section a node's and a gateway's configuration share.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where a part serves its operator port, and whether beyond this machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Where it listens, e.g. `127.0.0.1:7300`. A loopback address unless `allow_remote`.
    pub listen: SocketAddr,
    /// Allow an address other than loopback (a Prometheus server on another host). The port
    /// is read-only, but it tells whoever reaches it the venue's state: put it behind the
    /// operators' network controls. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_remote: bool,
}

impl OperatorConfig {
    /// What is wrong with the section, if anything: an address beyond loopback without
    /// `allow_remote`, or one of the part's `other` listeners (port 0 excepted).
    pub fn problem(&self, other: &[SocketAddr]) -> Option<String> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Some(format!(
                "[operator] listen = \"{}\" is not loopback: the operator port shows the venue's state to whoever reaches it; set allow_remote = true to serve it beyond this machine",
                self.listen
            ));
        }
        // Port 0 (the system picks one) never clashes.
        if self.listen.port() != 0 && other.contains(&self.listen) {
            return Some(format!(
                "[operator] listen = \"{}\" is another listener's address",
                self.listen
            ));
        }
        None
    }
}
