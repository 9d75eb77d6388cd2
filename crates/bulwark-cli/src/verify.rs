//! `bulwark verify`: replay a node's finalized log from genesis, trusting no node.

use bulwark_node::node::config::GenesisFile;
use bulwark_node::node::{IDENTITY_FILE, STORAGE_DIR};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `bulwark verify --data DIR [--identity HEX]`: DIR is a node's directory (node.toml's
/// `data_dir`, holding `storage/` and `identity.hex`) plus the genesis file.
pub fn run(data: &Path, genesis: &Path, identity: Option<&str>, until: Option<u64>) -> ExitCode {
    // Without --identity the group key comes from the node's own directory: the check then
    // shows only that the log agrees with what the node claims, not that it is the venue's.
    let identity_from = if identity.is_some() {
        "--identity"
    } else {
        eprintln!("bulwark verify: WARNING: no --identity: the group key is read from the node's own data ({IDENTITY_FILE}), so this proves only that the log matches what the node claims; pass the venue's published identity with --identity to verify it independently");
        "the node's own data (not independent: pass --identity)"
    };
    match verify(data, genesis, identity, until) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::json!({
                    "verified": true,
                    "identity_from": identity_from,
                    "heights": summary.heights,
                    "epoch": summary.epoch,
                    "certificates": summary.certificates,
                    "txs": summary.txs,
                    "root": hex::encode(summary.root),
                })
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("{}", serde_json::json!({"verified": false, "error": error}));
            eprintln!("bulwark verify: {error}");
            ExitCode::from(1)
        }
    }
}

fn verify(
    data: &Path,
    genesis_path: &Path,
    identity: Option<&str>,
    until: Option<u64>,
) -> Result<bulwark_consensus::verify::Summary, String> {
    use commonware_codec::DecodeExt as _;
    use commonware_runtime::Runner as _;
    let genesis = GenesisFile::load(genesis_path).map_err(|e| e.to_string())?;
    let accounts = genesis.accounts(genesis_path).map_err(|e| e.to_string())?;
    let oracle = genesis
        .oracle_config(genesis_path)
        .map_err(|e| e.to_string())?;
    let sentinel = genesis.sentinel(genesis_path).map_err(|e| e.to_string())?;
    let genesis = bulwark_consensus::genesis::try_genesis_at(
        &accounts,
        &genesis.index_micros,
        oracle,
        sentinel,
        genesis.venue_epoch_ms,
    )
    .map_err(|e| e.to_string())?;
    let identity_hex = match identity {
        Some(hex) => hex.to_string(),
        None => std::fs::read_to_string(data.join(IDENTITY_FILE)).map_err(|e| {
            format!(
                "{}: {e} (or pass --identity)",
                data.join(IDENTITY_FILE).display()
            )
        })?,
    };
    let bytes = hex::decode(identity_hex.trim()).map_err(|_| "the identity is not hex")?;
    let identity = bulwark_consensus::verify::Identity::decode(bytes)
        .map_err(|e| format!("the identity is not a BLS12-381 G2 public key: {e}"))?;
    let storage = data.join(STORAGE_DIR);
    if !storage.is_dir() {
        return Err(format!(
            "{} does not exist: not a node's data directory",
            storage.display()
        ));
    }
    let runner = commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new().with_storage_directory(storage),
    );
    runner.start(|context| async move {
        let started = Instant::now();
        let mut last_report = Instant::now();
        let partition = format!("{}-finalized", bulwark_node::node::PARTITION);
        let mut rng = commonware_runtime::Supervisor::child(&context, "verify");
        let result = bulwark_consensus::verify::verify_log(
            &context,
            &partition,
            genesis,
            identity,
            &mut rng,
            until,
            |height| {
                if last_report.elapsed() >= Duration::from_secs(2) {
                    eprintln!(
                        "  verified {height} heights ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
            },
        )
        .await;
        result.map_err(|e| e.to_string())
    })
}
