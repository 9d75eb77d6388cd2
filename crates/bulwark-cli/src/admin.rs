//! `bulwark admin`: what an operator asks of the committee's nodes. Today one command,
//! `readmit`: collect the members' affirmations of a removed member, submit the admission to
//! every node, and (with `--wait`) follow it until the member signs in a later epoch.

use bulwark_node::client::Client;
use bulwark_sentinel::{Admit, Affirmation, Seat};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Most affirmations an admission carries (what a decision carries on the wire).
const AFFIRMATIONS_MAX: usize = 22;

/// Arguments of `bulwark admin readmit`.
#[derive(Debug, clap::Args)]
pub struct ReadmitArgs {
    /// The removed member's node key, 64 hex characters (`client status` lists members by
    /// their first 16).
    #[arg(long)]
    pub candidate: String,
    /// A committee member's client endpoint; repeat for each member to ask (ask them all: each
    /// affirms only on its own appraisal and audit report, and f+1 must).
    #[arg(long = "node", required = true, num_args = 1..)]
    pub nodes: Vec<SocketAddr>,
    /// Follow the admission for up to this many seconds, until the candidate is admitted in a
    /// later epoch (0: submit and return).
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Only ask for the affirmations and print who gives one (and, on stderr, why the others
    /// do not); submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn candidate_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32 && text.trim().len() == 64)
        .ok_or_else(|| {
            format!("--candidate must be the member's node key, 64 hex characters; got {text:?}")
        })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn connect(node: SocketAddr) -> Result<Client, String> {
    Client::connect(node, Duration::from_secs(3)).map_err(|e| format!("cannot reach {node}: {e}"))
}

/// Asks every node for its affirmation; returns those of the newest epoch asked about.
fn collect(candidate: [u8; 32], nodes: &[SocketAddr]) -> Vec<Affirmation> {
    let mut affirmations: Vec<Affirmation> = Vec::new();
    for node in nodes {
        match connect(*node).and_then(|mut c| c.affirm(candidate).map_err(|e| e.to_string())) {
            Ok(affirmation) => {
                eprintln!("  {node}: affirms (epoch {})", affirmation.epoch);
                affirmations.push(affirmation);
            }
            Err(error) => eprintln!("  {node}: does not affirm: {error}"),
        }
    }
    let newest = affirmations.iter().map(|a| a.epoch).max().unwrap_or(0);
    affirmations.retain(|a| a.epoch == newest);
    affirmations.sort_by_key(|a| a.affirmer);
    affirmations.dedup_by_key(|a| a.affirmer);
    affirmations.truncate(AFFIRMATIONS_MAX);
    affirmations
}

/// `bulwark admin readmit`.
pub fn readmit(args: &ReadmitArgs) -> ExitCode {
    let result = (|| -> Result<serde_json::Value, String> {
        let candidate = candidate_key(&args.candidate)?;
        eprintln!(
            "asking {} member(s) to affirm {}",
            args.nodes.len(),
            &args.candidate[..16]
        );
        let affirmations = collect(candidate, &args.nodes);
        if affirmations.is_empty() {
            return Err("no member affirms the candidate (see each one's reason above)".into());
        }
        if args.dry_run {
            return Ok(serde_json::json!({
                "candidate": hex::encode(candidate),
                "epoch": affirmations[0].epoch,
                "affirmations": affirmations.len(),
                "affirmers": affirmations.iter().map(|a| hex::encode(a.affirmer)).collect::<Vec<_>>(),
            }));
        }
        let admit = Admit {
            candidate,
            epoch: affirmations[0].epoch,
            affirmations: affirmations.clone(),
            seat: Seat::Readmit,
        };
        let mut held_by = Vec::new();
        let mut refusals = Vec::new();
        for node in &args.nodes {
            match connect(*node).and_then(|mut c| c.admit(admit.clone()).map_err(|e| e.to_string()))
            {
                Ok(()) => {
                    eprintln!("  {node}: holds the admission for its proposals");
                    held_by.push(node.to_string());
                }
                Err(error) => {
                    eprintln!("  {node}: {error}");
                    refusals.push(error);
                }
            }
        }
        if held_by.is_empty() {
            return Err(format!(
                "every node refused the admission: {}",
                refusals.first().map_or("", String::as_str)
            ));
        }
        let mut summary = serde_json::json!({
            "candidate": hex::encode(candidate),
            "epoch": admit.epoch,
            "affirmations": affirmations.len(),
            "held_by": held_by,
        });
        if args.wait > 0 {
            let epoch = follow(candidate, admit.epoch, &args.nodes, args.wait)?;
            summary["admitted_in_epoch"] = serde_json::json!(epoch);
        }
        Ok(summary)
    })();
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Polls the nodes until one reports the candidate `admitted` in an epoch after `epoch`;
/// prints each change of its state.
fn follow(candidate: [u8; 32], epoch: u64, nodes: &[SocketAddr], wait: u64) -> Result<u64, String> {
    let prefix = hex::encode(&candidate[..8]);
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(wait) {
        for node in nodes {
            let Ok(status) = connect(*node).and_then(|mut c| c.status().map_err(|e| e.to_string()))
            else {
                continue;
            };
            let state = status.members.get(&prefix).cloned().unwrap_or_default();
            let seen = format!("epoch {}: {state}", status.epoch);
            if seen != last {
                eprintln!("  {prefix} at {node}: {seen}");
                last = seen;
            }
            if status.epoch > epoch && state == "admitted" {
                return Ok(status.epoch);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!(
        "the candidate was not admitted within {wait} s (last seen: {last}); the admission lapses after the policy's join_lapse_ms if the epoch change does not come"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_is_a_whole_key_in_hex() {
        assert!(candidate_key(&"ab".repeat(32)).is_ok());
        for bad in [
            "",
            "ab",
            &"ab".repeat(16),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            assert!(candidate_key(bad).is_err(), "{bad}");
        }
    }
}
