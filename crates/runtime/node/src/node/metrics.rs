//! The node's operator port: its Prometheus metrics, built at each scrape from the same
//! snapshot as its status line and `bulwark client status` ([`Handler::status`]), plus the
//! histograms and per-reason counts the replica keeps; and the console page's [`View`] of the
//! committee as this node sees it (its sentinel state, its appraisals, the audit reports it
//! read, the evidence it recorded).
//!
//! Every name is listed in `docs/metrics.md`; the Grafana dashboard in `docs/` reads them.
//! The locks read here are taken with `into_inner`: a poisoned lock still holds figures worth
//! showing, and a scrape must not turn one panic into another.

use std::sync::Arc;

use bulwark_api::answers::NodeStatus;
use bulwark_console::view::bounded;
use bulwark_console::{
    label, EvidenceView, IndexView, Labels, MemberView, Pages, Scrape, Unit, View,
};
use bulwark_engine::oracle::GuardKind;

use super::attest::now_ms;
use super::endpoint::Endpoint;
use crate::server::Handler;

/// Every member state the sentinel view names (`NodeStatus::members`), so that a state no member
/// is in reads 0 rather than missing.
const MEMBER_STATES: [&str; 5] = ["admitted", "suspected", "quarantined", "removed", "joining"];

/// One listed peer: its key (hex, lowercase), its name in the admission status, its data
/// center, and whether it is a candidate.
pub(crate) struct Seat {
    pub(crate) key: String,
    pub(crate) admission_name: String,
    pub(crate) data_center: String,
    pub(crate) candidate: bool,
}

/// The operator port's pages of a node.
pub(crate) struct NodePages {
    endpoint: Arc<Endpoint>,
    /// Every peer of the configuration, this node included.
    seats: Vec<Seat>,
    /// This node's key, hex.
    me: String,
    /// When this node started, Unix ms: with its name, the source of its evidence numbers.
    started_ms: u64,
}

impl NodePages {
    pub(crate) fn new(endpoint: Arc<Endpoint>, seats: Vec<Seat>, me: String) -> Self {
        Self {
            endpoint,
            seats,
            me,
            started_ms: now_ms(),
        }
    }

    /// This node's newest audit report of its own machine, if its agent made one (the text is
    /// copied out of the lock before it is parsed).
    fn own_report(&self) -> Option<bulwark_audit::report::Report> {
        let text = self
            .endpoint
            .own_report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|signed| signed.report.clone())?;
        serde_json::from_str(&text).ok()
    }

    /// How this node saw `seat`'s audit: its own newest report, or the peer's it read last.
    fn audit_of(&self, seat: &Seat, fitness: &super::audit::PeerFitness) -> Option<String> {
        if seat.key == self.me {
            let own = self.own_report()?;
            let summary = own.summary();
            return Some(if summary.failed == 0 && summary.policy_errors == 0 {
                "clean".into()
            } else {
                format!("{} failed checks (own report)", summary.failed)
            });
        }
        if let Some(error) = &fitness.audit_error {
            return Some(bounded(&format!("report unreadable: {error}")));
        }
        let audit = fitness.audit.as_ref()?;
        Some(if audit.failed == 0 && audit.policy_errors == 0 {
            "clean".into()
        } else {
            bounded(&format!(
                "{} failed: {}",
                audit.failed,
                audit.failed_checks.join(", ")
            ))
        })
    }
}

impl Pages for NodePages {
    fn title(&self) -> String {
        format!(
            "node {} ({})",
            self.endpoint.name, self.endpoint.data_center
        )
    }

    fn metrics(&self) -> String {
        let status = self.endpoint.status();
        let replica = {
            let stats = self
                .endpoint
                .stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ReplicaFigures {
                tally: stats.tally.clone(),
                submit: stats.submit_latency.clone(),
                oracle: stats.oracle_latency.clone(),
                block: stats.block_check.clone(),
                certificate: stats.certificate_check.clone(),
                blocks_held: stats.blocks_held,
                blocks_dropped: stats.blocks_dropped,
            }
        };
        let engine = self.endpoint.engine();
        let underlyings: Vec<String> = engine
            .config()
            .underlyings
            .iter()
            .map(|u| u.name.clone())
            .collect();
        let guards: Vec<(Labels, f64)> = underlyings
            .iter()
            .enumerate()
            .flat_map(|(index, name)| {
                let open = engine.oracle_guards(index as u16);
                GuardKind::ALL.into_iter().map(move |kind| {
                    let mut labels = label("underlying", name.clone());
                    labels.push(("kind".into(), snake(&kind)));
                    let is_open = open.iter().any(|g| g.kind == kind);
                    (labels, f64::from(u8::from(is_open)))
                })
            })
            .collect();
        let own_audit = self.own_report();
        let mut scrape = Scrape::new();
        consensus(&mut scrape, &status, &replica);
        oracle(&mut scrape, &status, &replica, &underlyings, guards);
        trust(
            &mut scrape,
            &status,
            own_audit.as_ref(),
            &self.endpoint.evidence.counts_by_kind(),
            now_ms(),
        );
        let vault = {
            let vault = self
                .endpoint
                .vault
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (vault.signed_total, vault.rounds_total)
        };
        custody(&mut scrape, &status, vault);
        scrape.render()
    }

    fn view(&self) -> View {
        let status = self.endpoint.status();
        let engine = self.endpoint.engine();
        let fitness = self
            .endpoint
            .fitness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let evidence: Vec<EvidenceView> = self
            .endpoint
            .evidence
            .numbered(bulwark_console::view::EVIDENCE_SHOWN)
            .into_iter()
            .map(|(id, e)| EvidenceView {
                id,
                kind: e.kind.name(),
                peer: e.peer,
                view: e.view,
                detail: bounded(&e.detail),
            })
            .collect();
        let members = self
            .seats
            .iter()
            .map(|seat| {
                let short = &seat.key[..16.min(seat.key.len())];
                let sentinel = status.members.get(short).cloned().unwrap_or_else(|| {
                    if seat.candidate {
                        "candidate".into()
                    } else if status.members.is_empty() {
                        // No sentinel committee: every genesis peer is a member for good.
                        "member".into()
                    } else {
                        "unknown".into()
                    }
                });
                let admission = status
                    .admission
                    .as_ref()
                    .and_then(|a| a.get(&seat.admission_name));
                let key_bytes: Option<[u8; 32]> =
                    super::hex_decode(&seat.key).and_then(|b| <[u8; 32]>::try_from(b).ok());
                let peer_fitness = key_bytes
                    .and_then(|k| fitness.get(&k).cloned())
                    .unwrap_or_default();
                let me = seat.key == self.me;
                let sentinel_reason = evidence
                    .iter()
                    .rev()
                    .find(|e| e.peer == seat.key)
                    .map(|e| (e.kind.clone(), e.id));
                MemberView {
                    key: seat.key.clone(),
                    data_center: seat.data_center.clone(),
                    sentinel,
                    sentinel_reason,
                    appraisal: if me {
                        Some("self".into())
                    } else {
                        admission.and_then(|a| a.status.clone())
                    },
                    reasons: admission
                        .map(|a| a.reasons.iter().take(8).map(|r| bounded(r)).collect())
                        .unwrap_or_default(),
                    cut_off: admission.is_some_and(|a| a.cut_off),
                    audit: self.audit_of(seat, &peer_fitness),
                    evidence: status.fault_evidence.get(&seat.key).copied().unwrap_or(0),
                    height: me.then_some(status.height),
                    reachable: None,
                }
            })
            .collect();
        let index = engine
            .config()
            .underlyings
            .iter()
            .enumerate()
            .map(|(i, underlying)| IndexView {
                underlying: underlying.name.clone(),
                price: status
                    .index_micros
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|m| m as f64 / 1e6),
                round: status.oracle_rounds.get(i).copied().flatten(),
                guards: engine
                    .oracle_guards(i as u16)
                    .iter()
                    .map(|g| snake(&g.kind))
                    .collect(),
                venues: status
                    .oracle_sources
                    .get(i.to_string())
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let liquidation_steps = self
            .endpoint
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tally
            .liquidation_steps
            .values()
            .sum();
        View {
            title: self.title(),
            source: format!("{}@{}", self.endpoint.name, self.started_ms),
            time_ms: now_ms(),
            height: status.height,
            epoch: status.epoch,
            orders_finalized: status.finalized_txs,
            latency_p50_ms: status.latency_p50_ms,
            latency_p99_ms: status.latency_p99_ms,
            members,
            index,
            liquidation_steps,
            withdrawals_requested: status.withdrawals_requested,
            withdrawals_signed: status.withdrawals_signed,
            deposits_credited: status.deposits_credited,
            evidence,
            events: Vec::new(),
            activity: Vec::new(),
        }
    }

    fn evidence(&self, id: u64) -> Option<String> {
        let record = self.endpoint.evidence.numbered_record(id)?;
        serde_json::to_string_pretty(&serde_json::json!({
            "id": id,
            "node": self.title(),
            "kind": record.kind.name(),
            "peer": record.peer,
            "view": record.view,
            // Most details are signed JSON (an appraisal, an accusation): shown as JSON.
            "detail": serde_json::from_str::<serde_json::Value>(&record.detail)
                .unwrap_or(serde_json::Value::String(record.detail)),
        }))
        .ok()
    }
}

/// What the replica keeps beyond the status answer.
struct ReplicaFigures {
    tally: bulwark_consensus::check::Tally,
    submit: bulwark_api::stats::LatencyHistogram,
    oracle: bulwark_api::stats::LatencyHistogram,
    block: bulwark_api::stats::LatencyHistogram,
    certificate: bulwark_api::stats::LatencyHistogram,
    blocks_held: usize,
    blocks_dropped: u64,
}

fn consensus(scrape: &mut Scrape, status: &NodeStatus, replica: &ReplicaFigures) {
    scrape.gauge(
        "finalized_height",
        "Newest height this node committed (finalized by the committee)",
        None,
        status.height as f64,
    );
    scrape.gauge(
        "epoch",
        "Committee epoch of the newest committed state",
        None,
        status.epoch as f64,
    );
    scrape.gauge(
        "finalized_height_certified",
        "1 when the newest height's finalization certificate is in the log",
        None,
        f64::from(u8::from(status.last_height_certified)),
    );
    scrape.counter(
        "orders_finalized",
        "Client transactions finalized since start, whether the engine accepted or refused them",
        status.finalized_txs,
    );
    scrape.counters(
        "orders_refused",
        "Finalized client transactions the engine refused, by reason",
        replica
            .tally
            .rejected
            .iter()
            .map(|(reason, n)| (label("reason", snake(reason)), *n))
            .collect(),
    );
    scrape.latency(
        "submit_to_finalized",
        "From a client's submission to this node to the commit of the block that carries it",
        &replica.submit,
    );
    scrape.latency(
        "block_check",
        "Time to check and execute one proposed or fetched block against its parent",
        &replica.block,
    );
    scrape.latency(
        "certificate_check",
        "Time to verify one finalization certificate a peer sent in catch-up",
        &replica.certificate,
    );
    scrape.gauge(
        "mempool_transactions",
        "Client transactions waiting in this node's mempool",
        None,
        status.mempool as f64,
    );
    scrape.counter(
        "blocks_refused",
        "Proposals and fetched blocks this node refused",
        status.refused_blocks,
    );
    scrape.gauge(
        "blocks_held",
        "Blocks in this node's store now",
        None,
        replica.blocks_held as f64,
    );
    scrape.counter(
        "blocks_dropped",
        "Unsolicited blocks dropped because their sender was over its bound",
        replica.blocks_dropped,
    );
    scrape.gauge(
        "snapshot_height",
        "Height of the newest engine snapshot written since start (0: none)",
        None,
        status.snapshots.last_written.unwrap_or(0) as f64,
    );
    scrape.counters(
        "liquidation_steps",
        "Liquidation steps in finalized blocks, by how each closed the position",
        replica
            .tally
            .liquidation_steps
            .iter()
            .map(|(via, n)| (label("via", snake(via)), *n))
            .collect(),
    );
}

fn oracle(
    scrape: &mut Scrape,
    status: &NodeStatus,
    replica: &ReplicaFigures,
    underlyings: &[String],
    guards: Vec<(Labels, f64)>,
) {
    scrape.counter(
        "oracle_rounds_finalized",
        "Certified oracle rounds in blocks this node committed since start",
        status.oracle_rounds_finalized,
    );
    scrape.latency(
        "oracle_round",
        "From an oracle round's start (members observe) to the commit of the block that carries it",
        &replica.oracle,
    );
    let named = |values: &[Option<i64>], scale: f64| -> Vec<(Labels, f64)> {
        underlyings
            .iter()
            .zip(values)
            .filter_map(|(name, value)| {
                value.map(|v| (label("underlying", name.clone()), v as f64 * scale))
            })
            .collect()
    };
    scrape.gauges(
        "index_price",
        "Certified index price per underlying, in quote currency units (absent until the first certified round)",
        None,
        named(&status.index_micros, 1e-6),
    );
    let rounds: Vec<Option<i64>> = status
        .oracle_rounds
        .iter()
        .map(|r| r.and_then(|r| i64::try_from(r).ok()))
        .collect();
    scrape.gauges(
        "oracle_last_round",
        "Last certified oracle round per underlying",
        None,
        named(&rounds, 1.0),
    );
    scrape.gauges(
        "oracle_guard_open",
        "1 while an oracle guard is open on the underlying (liquidations and risk-increasing orders pause), by kind",
        None,
        guards,
    );
}

fn trust(
    scrape: &mut Scrape,
    status: &NodeStatus,
    own_audit: Option<&bulwark_audit::report::Report>,
    evidence_by_kind: &std::collections::BTreeMap<String, u64>,
    now_ms: u64,
) {
    if let Some(admission) = &status.admission {
        scrape.gauge(
            "peers_admitted",
            "Peers whose attestation this node currently accepts",
            None,
            admission.values().filter(|p| p.admitted).count() as f64,
        );
        scrape.gauge(
            "peers_cut_off",
            "Peers cut off by a contraindicated appraisal",
            None,
            admission.values().filter(|p| p.cut_off).count() as f64,
        );
        let per_peer = |value: &dyn Fn(&bulwark_api::answers::PeerAdmission) -> Option<f64>| {
            admission
                .iter()
                .filter_map(|(peer, p)| value(p).map(|v| (label("peer", peer.clone()), v)))
                .collect::<Vec<_>>()
        };
        scrape.gauges(
            "peer_admitted",
            "1 while this node accepts the peer's attestation",
            None,
            per_peer(&|p| Some(f64::from(u8::from(p.admitted)))),
        );
        scrape.gauges(
            "peer_appraisal_age",
            "Time since this node last appraised the peer's attestation evidence",
            Some(Unit::Seconds),
            per_peer(&|p| {
                p.last_appraisal_at_ms
                    .map(|at| now_ms.saturating_sub(at) as f64 / 1e3)
            }),
        );
        scrape.counters(
            "peer_appraisals",
            "Appraisals this node made of the peer since start",
            admission
                .iter()
                .map(|(peer, p)| (label("peer", peer.clone()), p.appraisals))
                .collect(),
        );
    }
    if let Some(report) = own_audit {
        let summary = report.summary();
        if let Some(score) = summary.score_bp {
            scrape.gauge(
                "audit_score",
                "This node's own configuration audit: passed / (passed + failed) checks",
                Some(Unit::Other("ratio".into())),
                f64::from(score) / 10_000.0,
            );
        }
        scrape.gauge(
            "audit_checks_failed",
            "Failed checks in this node's newest audit report",
            None,
            f64::from(summary.failed),
        );
        scrape.gauge(
            "audit_report_age",
            "Age of this node's newest audit report",
            Some(Unit::Seconds),
            now_ms.saturating_sub(report.generated_at_ms) as f64 / 1e3,
        );
    }
    scrape.counters(
        "evidence_recorded",
        "Fault evidence this node recorded against peers since start, by kind",
        evidence_by_kind
            .iter()
            .map(|(kind, n)| (label("kind", kind.clone()), *n))
            .collect(),
    );
    if !status.members.is_empty() {
        scrape.gauges(
            "members",
            "Committee members and former members by their sentinel state, as this node sees them",
            None,
            MEMBER_STATES
                .iter()
                .map(|state| {
                    let n = status.members.values().filter(|s| s == state).count();
                    (label("state", *state), n as f64)
                })
                .collect(),
        );
        scrape.gauges(
            "member_state",
            "1 for each member's current sentinel state (member: first 8 bytes of its key, hex)",
            None,
            status
                .members
                .iter()
                .map(|(member, state)| {
                    let mut labels = label("member", member.clone());
                    labels.push(("state".into(), state.clone()));
                    (labels, 1.0)
                })
                .collect(),
        );
    }
}

fn custody(scrape: &mut Scrape, status: &NodeStatus, vault: (u64, u64)) {
    scrape.gauge(
        "deposits_credited",
        "Chain deposits credited in the newest committed state",
        None,
        status.deposits_credited as f64,
    );
    scrape.gauge(
        "withdrawals_requested",
        "Withdrawals the newest committed state recorded",
        None,
        status.withdrawals_requested as f64,
    );
    scrape.counter(
        "custody_signatures",
        "Withdrawals this node recorded as signed by the vault since start",
        vault.0,
    );
    scrape.counter(
        "custody_signing_rounds",
        "Vault signing rounds this node coordinated to a signature since start",
        vault.1,
    );
}

/// The snake_case name serde gives a unit enum variant (reasons, liquidation kinds).
fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".into(),
    }
}
