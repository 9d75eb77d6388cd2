//! Where a DEVELOPMENT committee lives on disk, and its fixed parameters.

use crate::CommitteeError;
use std::path::{Path, PathBuf};

/// DEVELOPMENT operator secrets (one hex key per line) that sign the reference manifest.
pub(crate) const DEV_OPERATORS_FILE: &str = "dev-operators.secret";
/// The CA certificate that certified the software TPMs' EKs, trusted by every node (`--tpm`).
pub(crate) const EK_CA_FILE: &str = "ek-ca.pem";

/// The load generator's market-making and taking accounts (the one order flow's).
pub(crate) use bulwark_testkit::flow::{MAKERS, TAKERS};
/// Index price at genesis: BTC, ETH (micros).
pub(crate) const INDEX_MICROS: [i64; 2] = [60_000_000_000, 3_000_000_000];
/// BTC-PERP price in ticks around which the load trades until it reads the certified index
/// (60 000 USD).
pub(crate) const MID_TICKS: i64 = 600_000;
/// BTC-PERP tick size, micros (0.1 USD).
pub(crate) const TICK_MICROS: i64 = 100_000;

pub(crate) fn committee_dir(data: &Path) -> PathBuf {
    data.join("committee")
}

pub(crate) fn node_dir(data: &Path, index: usize) -> PathBuf {
    committee_dir(data).join(format!("node-{index}"))
}

/// Writes keys, node configurations and the genesis for a new committee.
/// Nodes and candidates one port layout holds: p2p ports from the base, node operator ports 50
/// above, gateway operator ports 75 above (one gateway per data center), client endpoints 100
/// above.
pub(crate) const PORTS_PER_KIND: usize = 25;

/// The operator port (`/metrics`) of node `index`, on loopback: 50 above its p2p port.
pub fn operator_address(base_port: u16, index: usize) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], base_port + 50 + index as u16))
}

/// `bulwark up`'s own operator port (the console of the whole committee): base port + 49.
pub fn up_operator_address(base_port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], base_port + 49))
}

/// The operator port of the gateway of data center `index`, on loopback: base port + 75 + index.
pub fn gateway_operator_address(base_port: u16, index: usize) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], base_port + 75 + index as u16))
}

/// The server port of node `index`'s software TPM (its control port is one above).
pub(crate) fn swtpm_port(base_port: u16, index: usize) -> u16 {
    base_port + 200 + 2 * index as u16
}

/// The local CA that plays the TPMs' manufacturer: it certifies every software TPM's EK.
pub(crate) fn tpm_manufacturer_dir(data: &Path) -> PathBuf {
    committee_dir(data).join("tpm-manufacturer")
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes a secret: 0600, atomically (see `bulwark_node::node::keystore::write_private`).
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), CommitteeError> {
    Ok(bulwark_node::node::keystore::write_private(
        path,
        text.as_bytes(),
    )?)
}

/// Creates a directory (and its parents) that only its owner can enter (0700).
pub(crate) fn create_private_dir(path: &Path) -> Result<(), CommitteeError> {
    Ok(bulwark_node::node::keystore::create_private_dir(path)?)
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), CommitteeError> {
    std::fs::write(path, text).map_err(|source| CommitteeError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The error for `path`, which cannot be read, created or opened.
pub(crate) fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> CommitteeError + '_ {
    move |source| CommitteeError::File {
        path: path.to_path_buf(),
        source,
    }
}
