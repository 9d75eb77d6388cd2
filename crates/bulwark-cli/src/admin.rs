//! `bulwark admin`: what an operator asks of the committee's nodes. `readmit` collects the
//! members' affirmations of a removed member, submits the admission to every node and (with
//! `--wait`) follows it until the member signs in a later epoch; `approve` signs one operator's
//! approval of a newcomer for a seat; `replace` does what `readmit` does for a newcomer, with
//! the operators' approvals.

use bulwark_node::client::Client;
use bulwark_sentinel::{Admit, Affirmation, Approval, Seat};
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
    /// Whom to ask and what to do with the answers.
    #[command(flatten)]
    pub submit: Submission,
}

/// How `readmit` and `replace` collect affirmations and submit the admission.
#[derive(Debug, clap::Args)]
pub struct Submission {
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

/// A node key given as `flag`: exactly 64 hex characters.
fn node_key(text: &str, flag: &str) -> Result<[u8; 32], String> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| format!("{flag} must be a node key, 64 hex characters; got {text:?}"))
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
    // Only signed statements about this candidate count; a hostile or intercepted node's
    // answer must not crowd out honest ones, so the epoch most affirmers name is taken.
    affirmations.retain(|a| a.candidate == candidate && a.verify().is_ok());
    let mut epochs: std::collections::BTreeMap<u64, usize> = Default::default();
    for affirmation in &affirmations {
        *epochs.entry(affirmation.epoch).or_default() += 1;
    }
    let epoch = epochs
        .iter()
        .max_by_key(|(epoch, count)| (**count, **epoch))
        .map_or(0, |(epoch, _)| *epoch);
    affirmations.retain(|a| a.epoch == epoch);
    affirmations.sort_by_key(|a| a.affirmer);
    affirmations.dedup_by_key(|a| a.affirmer);
    affirmations.truncate(AFFIRMATIONS_MAX);
    affirmations
}

/// `bulwark admin readmit`.
pub fn readmit(args: &ReadmitArgs) -> ExitCode {
    finish((|| {
        let candidate = node_key(&args.candidate, "--candidate")?;
        admit(candidate, |_| Ok(Seat::Readmit), &args.submit)
    })())
}

/// Arguments of `bulwark admin replace`.
#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    /// The newcomer's node key, 64 hex characters (a `candidate = true` peer in every
    /// member's configuration, running and appraised).
    #[arg(long)]
    pub candidate: String,
    /// The quarantined or removed member whose seat it takes, 64 hex characters.
    #[arg(long)]
    pub replaces: String,
    /// A file with one operator approval as `bulwark admin approve` prints it; repeat for each
    /// operator (the genesis `operators.quorum` must approve).
    #[arg(long = "approval", required = true, num_args = 1..)]
    pub approvals: Vec<std::path::PathBuf>,
    /// Whom to ask and what to do with the answers.
    #[command(flatten)]
    pub submit: Submission,
}

/// `bulwark admin replace`.
pub fn replace(args: &ReplaceArgs) -> ExitCode {
    finish((|| {
        let candidate = node_key(&args.candidate, "--candidate")?;
        let replaces = node_key(&args.replaces, "--replaces")?;
        let mut approvals = Vec::new();
        for path in &args.approvals {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let approval: Approval = serde_json::from_str(text.trim()).map_err(|e| {
                format!(
                    "{}: not an approval as `bulwark admin approve` prints it: {e}",
                    path.display()
                )
            })?;
            approvals.push(approval);
        }
        let seat = move |epoch: u64| {
            for approval in &approvals {
                approval
                    .verify(&candidate, &replaces, epoch)
                    .map_err(|_| format!("the approval of operator {} is not for this candidate, seat and epoch {epoch}", hex::encode(&approval.operator[..8])))?;
            }
            Ok(Seat::Replace {
                replaces,
                approvals: approvals.clone(),
            })
        };
        admit(candidate, seat, &args.submit)
    })())
}

/// Arguments of `bulwark admin approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The operator's Ed25519 secret key file, 64 hex characters (one of the genesis
    /// `operators`).
    #[arg(long)]
    pub operator_key: std::path::PathBuf,
    /// The newcomer's node key, 64 hex characters.
    #[arg(long)]
    pub candidate: String,
    /// The member whose seat it takes, 64 hex characters.
    #[arg(long)]
    pub replaces: String,
    /// The committee's current epoch (`client status`): the approval counts in no other.
    #[arg(long)]
    pub epoch: u64,
}

/// `bulwark admin approve`: prints this operator's signed approval as one JSON line.
pub fn approve(args: &ApproveArgs) -> ExitCode {
    finish((|| {
        let candidate = node_key(&args.candidate, "--candidate")?;
        let replaces = node_key(&args.replaces, "--replaces")?;
        let secret = bulwark_node::node::config::read_hex32(&args.operator_key)
            .map_err(|e| format!("{}: {e}", args.operator_key.display()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let approval = Approval::sign(&key, &candidate, &replaces, args.epoch);
        serde_json::to_value(approval).map_err(|e| e.to_string())
    })())
}

/// Prints the summary as one JSON line, or the error.
fn finish(result: Result<serde_json::Value, String>) -> ExitCode {
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

/// Collects the members' affirmations of `candidate`, builds the admission with the seat
/// `seat` gives for the affirmations' epoch, submits it to every node and, with `wait`,
/// follows it.
fn admit(
    candidate: [u8; 32],
    seat: impl FnOnce(u64) -> Result<Seat, String>,
    submit: &Submission,
) -> Result<serde_json::Value, String> {
    let nodes = &submit.nodes;
    eprintln!(
        "asking {} member(s) to affirm {}",
        nodes.len(),
        hex::encode(&candidate[..8])
    );
    let affirmations = collect(candidate, nodes);
    if affirmations.is_empty() {
        return Err("no member affirms the candidate (see each one's reason above)".into());
    }
    let epoch = affirmations[0].epoch;
    if submit.dry_run {
        return Ok(serde_json::json!({
            "candidate": hex::encode(candidate),
            "epoch": epoch,
            "affirmations": affirmations.len(),
            "affirmers": affirmations.iter().map(|a| hex::encode(a.affirmer)).collect::<Vec<_>>(),
        }));
    }
    let admit = Admit {
        candidate,
        epoch,
        affirmations,
        seat: seat(epoch)?,
    };
    let mut held_by = Vec::new();
    let mut refusals = Vec::new();
    for node in nodes {
        match connect(*node).and_then(|mut c| c.admit(admit.clone()).map_err(|e| e.to_string())) {
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
        "epoch": epoch,
        "affirmations": admit.affirmations.len(),
        "held_by": held_by,
    });
    if submit.wait > 0 {
        let joined = follow(candidate, epoch, nodes, submit.wait)?;
        summary["admitted_in_epoch"] = serde_json::json!(joined);
    }
    Ok(summary)
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
        assert!(node_key(&"ab".repeat(32), "--candidate").is_ok());
        for bad in [
            "",
            "ab",
            &"ab".repeat(16),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            assert!(node_key(bad, "--candidate").is_err(), "{bad}");
        }
    }
}
