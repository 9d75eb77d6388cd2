//! The status line of `bulwark up` and the figures a committee run reports: every second,
//! each node's height (or why it is down), whether the roots agree at every height seen, the
//! finalized rate and the submit-to-finalized latency.

use crate::launch::Launched;
use crate::{CommitteeOptions, RunFigures};
use bulwark_node::client::Client;
use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Polls the nodes once a second until `stop` or the duration; prints the status line when
/// `options.status`.
pub(crate) fn monitor(
    options: &CommitteeOptions,
    launched: &mut Launched,
    clients: &mut [Option<Client>],
    stop: &AtomicBool,
    submitted: &AtomicU64,
    observed: &crate::console::SharedObserved,
) -> RunFigures {
    let endpoints = launched.endpoints.clone();
    let nodes = &mut launched.nodes;
    // Status.
    // Per height: the first root a node reported there, and which nodes reported one.
    let mut roots: HashMap<u64, (String, std::collections::BTreeSet<usize>)> = HashMap::new();
    let mut diverged = false;
    let mut figures = RunFigures::default();
    let run_started = Instant::now();
    let mut window: Option<(Instant, (u64, u64))> = None;
    let mut last: Option<(Instant, (u64, u64))> = None;
    let mut tampered_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed)
        && options.duration.is_none_or(|d| run_started.elapsed() < d)
    {
        std::thread::sleep(Duration::from_secs(1));
        if let (Some((index, at)), None) = (options.tamper, tampered_at) {
            if run_started.elapsed() >= at && index < nodes.children.len() {
                match crate::launch::tamper_node(&options.data, index, &mut nodes.children[index]) {
                    Ok(child) => {
                        nodes.children[index] = child;
                        eprintln!("  node {index}: binary replaced by a tampered copy and restarted; the committee should remove it");
                    }
                    Err(error) => eprintln!("  node {index}: cannot tamper with it: {error}"),
                }
                tampered_at = Some(Instant::now());
            }
        }
        let mut line = Vec::new();
        let mut seen: Vec<Option<bulwark_api::answers::NodeStatus>> = vec![None; clients.len()];
        let mut first_txs = None;
        let mut index_line = String::new();
        let mut epoch_line = String::from("epoch -");
        for (index, slot) in clients.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = nodes.children.get_mut(index).map(Child::try_wait) {
                line.push(format!("n{index}:EXITED({status})"));
                continue;
            }
            let status = match slot.as_mut().map(Client::status) {
                Some(Ok(status)) => status,
                _ => {
                    *slot = Client::connect(endpoints[index], Duration::from_millis(300)).ok();
                    line.push(format!("n{index}:down"));
                    continue;
                }
            };
            seen[index] = Some(status.clone());
            let height = status.height;
            let root = status.root.clone();
            if height > 0 {
                match roots.get_mut(&height) {
                    Some((seen, _)) if *seen != root => diverged = true,
                    Some((_, nodes)) => {
                        nodes.insert(index);
                    }
                    None => {
                        roots.insert(height, (root, [index].into()));
                    }
                }
            }
            if height >= figures.height {
                // The trust the most advanced node committed: the epoch and every member's state.
                epoch_line = format!("epoch {}", status.epoch);
                figures.epoch = status.epoch;
                figures.deposits_credited = status.deposits_credited;
                figures.withdrawals_requested = status.withdrawals_requested;
                let removed = status.members.values().any(|s| s == "removed");
                if let (Some(at), None, true) = (tampered_at, figures.tamper_to_removed_s, removed)
                {
                    let seconds = at.elapsed().as_secs_f64();
                    figures.tamper_to_removed_s = Some(seconds);
                    eprintln!("  the tampered node is out of the participant set (epoch {}), {seconds:.1} s after its tampered start", status.epoch);
                }
                if !status.members.is_empty() {
                    let trust: Vec<String> = status
                        .members
                        .iter()
                        .map(|(key, state)| format!("{}:{state}", &key[..key.len().min(8)]))
                        .collect();
                    epoch_line.push_str(&format!(" [{}]", trust.join(" ")));
                }
            }
            figures.height = figures.height.max(height);
            figures.withdrawals_signed = figures.withdrawals_signed.max(status.withdrawals_signed);
            if let (Some(p50), Some(p99)) = (status.vault_round_p50_ms, status.vault_round_p99_ms) {
                if figures
                    .vault_rounds
                    .is_none_or(|(rounds, _, _)| status.vault_rounds >= rounds)
                {
                    figures.vault_rounds = Some((status.vault_rounds, p50, p99));
                    figures.vault_rtt_ms = status.vault_rtt_p50_ms;
                }
            }
            if let (Some(share), Some(sync)) = (status.vault_share_p50_ms, status.vault_sync_p50_ms)
            {
                if figures
                    .vault_share_ms
                    .is_none_or(|(slowest, _)| share > slowest)
                {
                    figures.vault_share_ms = Some((share, sync));
                }
            }
            if index == 0 {
                index_line = match status.index_micros.first().copied().flatten() {
                    Some(micros) => format!(
                        "BTC {:.2} (round {})",
                        micros as f64 / 1e6,
                        status
                            .oracle_rounds
                            .first()
                            .copied()
                            .flatten()
                            .map_or("-".to_string(), |r| r.to_string())
                    ),
                    None => "BTC -".into(),
                };
                first_txs = Some((status.finalized_txs, status.finalized_rejected));
                figures.p50_ms = status.latency_p50_ms.map(f64::from);
                figures.p99_ms = status.latency_p99_ms.map(f64::from);
                figures.oracle_p50_ms = status.oracle_latency_p50_ms.map(f64::from);
                figures.oracle_p99_ms = status.oracle_latency_p99_ms.map(f64::from);
            }
            let admitted = status
                .admission
                .as_ref()
                .map(|peers| peers.values().filter(|p| p.admitted).count());
            match admitted {
                Some(admitted) => line.push(format!("n{index}:h{height}/a{admitted}")),
                None => line.push(format!("n{index}:h{height}")),
            }
        }
        let now = Instant::now();
        let rate = match (first_txs, last) {
            (Some((txs, _)), Some((at, (before, _)))) => {
                (txs.saturating_sub(before)) as f64 / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        if let Some(counts) = first_txs {
            last = Some((now, counts));
            // The measured window starts after 3 s of load (warm-up).
            if window.is_none() && run_started.elapsed() >= Duration::from_secs(3) {
                window = Some((now, counts));
            }
            if let Some((at, (txs_before, rejected_before))) = window {
                let span = now.duration_since(at).as_secs_f64();
                if span > 0.0 {
                    let rejected = counts.1.saturating_sub(rejected_before);
                    let all = counts.0.saturating_sub(txs_before);
                    figures.rejected_per_s = rejected as f64 / span;
                    figures.accepted_per_s = all.saturating_sub(rejected) as f64 / span;
                }
            }
        }
        figures.roots_compared =
            roots.values().filter(|(_, nodes)| nodes.len() >= 2).count() as u64;
        figures.roots_agree = !diverged && figures.roots_compared > 0;
        {
            let mut observed = observed
                .lock()
                .expect("the observed lock must not be poisoned");
            observed.statuses = seen;
            observed.roots_compared = figures.roots_compared;
            observed.roots_agree = figures.roots_agree;
        }
        if options.status {
            let fmt_ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
            eprintln!(
                "height {} | {} | {} | deposits {} | withdrawals {}/{} signed | finalized {:.0} orders/s | submit→final p50 {} ms p99 {} ms | roots {} ({} heights compared) | {} | submitted {}",
                figures.height,
                epoch_line,
                index_line,
                figures.deposits_credited,
                figures.withdrawals_signed,
                figures.withdrawals_requested,
                rate,
                fmt_ms(figures.p50_ms),
                fmt_ms(figures.p99_ms),
                if diverged { "DIVERGED" } else { "agree" },
                figures.roots_compared,
                line.join(" "),
                submitted.load(Ordering::Relaxed)
            );
        }
    }
    figures
}
