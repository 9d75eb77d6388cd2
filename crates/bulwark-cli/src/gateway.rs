//! `bulwark gateway --config FILE`: the FIX gateway of one data center (see docs/gateway.md);
//! with `--kill` or `--release`, the operator's kill switch of that gateway.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `bulwark gateway --config FILE`: runs until Ctrl-C or SIGTERM.
pub fn run(config: &Path) -> ExitCode {
    crate::node::init_tracing();
    let config = match bulwark_gateway::GatewayConfig::load(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bulwark gateway: {error}");
            return ExitCode::from(2);
        }
    };
    let comp_id = config.comp_id.clone();
    let nodes = config.nodes.len();
    let quorum = config.quorum;
    let gateway = match bulwark_gateway::start(config) {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("bulwark gateway: {error}");
            return ExitCode::from(2);
        }
    };
    // The port lines are what launchers and tests wait for.
    println!("bulwark gateway {comp_id}: FIX 4.4 on {}", gateway.fix_addr);
    eprintln!(
        "bulwark gateway {comp_id}: FIX 4.4 on {} (plain TCP: put TLS in front), {nodes} nodes, receipts believed at {quorum} alike",
        gateway.fix_addr
    );
    if let Some(ws) = gateway.ws_addr {
        println!("bulwark gateway {comp_id}: JSON-RPC on wss://{ws}/");
        match &gateway.ws_dev_cert {
            Some(cert) => eprintln!(
                "bulwark gateway {comp_id}: DEVELOPMENT: JSON-RPC over TLS with the self-signed certificate {} (ws_tls_self_signed = true); set ws_tls_cert and ws_tls_key in production",
                cert.display()
            ),
            None => eprintln!("bulwark gateway {comp_id}: JSON-RPC 2.0 over WebSocket over TLS on {ws}"),
        }
    }
    match gateway.operator_addr {
        Some(operator) => {
            println!("bulwark gateway {comp_id}: metrics on http://{operator}/metrics");
        }
        None => eprintln!(
            "bulwark gateway {comp_id}: no [operator] section: no operator port (metrics are not served)"
        ),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(error) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("bulwark gateway: cannot install the signal handler: {error}");
        return ExitCode::from(2);
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("bulwark gateway {comp_id}: stopping (sessions are logged out)");
    gateway.stop();
    ExitCode::SUCCESS
}

/// `bulwark gateway --config FILE --kill all|ACCOUNT... | --release all|ACCOUNT...`: changes the
/// kill switch the running gateway reads (within a quarter of a second) and prints what it holds.
pub fn kill_switch(config: &Path, kill: &[String], release: &[String]) -> ExitCode {
    let config = match bulwark_gateway::GatewayConfig::load(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bulwark gateway: {error}");
            return ExitCode::from(2);
        }
    };
    let releasing = !release.is_empty();
    let mut all = false;
    let mut accounts = Vec::new();
    for value in if releasing { release } else { kill } {
        if value == "all" {
            all = true;
        } else if let Ok(account) = value.parse::<u64>() {
            accounts.push(account);
        } else {
            eprintln!("bulwark gateway: {value:?} is neither `all` nor an account number");
            return ExitCode::from(2);
        }
    }
    match bulwark_gateway::killswitch::set(&config.data_dir, all, &accounts, releasing) {
        Ok(engaged) => {
            let accounts: Vec<String> = engaged.accounts.iter().map(u64::to_string).collect();
            println!(
                "bulwark gateway {}: kill switch now {}",
                config.comp_id,
                match (engaged.all, accounts.is_empty()) {
                    (true, _) => "engaged for every account".to_string(),
                    (false, true) => "released".to_string(),
                    (false, false) => format!("engaged for accounts {}", accounts.join(", ")),
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bulwark gateway: {error}");
            ExitCode::from(2)
        }
    }
}
