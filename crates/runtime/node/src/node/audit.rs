//! The node's configuration audit and what it knows of its peers' fitness (issue #13).
//!
//! - Its own audit: with `[audit]`, the audit agent scans this machine on a schedule and signs
//!   every report with the node key ([`start_agent`]); the newest is served to peers
//!   (`PeerOp::AuditReport`).
//! - Its peers' reports: the admission loop reads each admitted peer's newest report every
//!   [`AUDIT_FETCH_MS`], checks it ([`read_peer_report`]) and records a failed one as sentinel
//!   evidence.
//! - Affirmations: asked to vouch for a removed member ([`affirm`]), the node signs only if its
//!   own verifier holds a fresh affirming appraisal of it and its newest report is clean and
//!   fresh, naming the digests of both.

use crate::node::config::AuditConfig;
use crate::node::NodeError;
use bulwark_audit::sign::{verify_report, SignedReport};
use bulwark_engine::Engine;
use bulwark_sentinel::{Affirmation, Trust};
use commonware_cryptography::{Hasher as _, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// How often the admission loop reads each peer's newest audit report, milliseconds. A report
/// changes once per scan (minutes), so this only bounds how stale a failure can go unseen.
pub const AUDIT_FETCH_MS: u64 = 5_000;
/// How far in this node's future a peer's report may be stamped (clock skew).
pub const REPORT_SKEW_MS: u64 = 30_000;
/// Largest report envelope kept whole in an evidence record; a larger one is named by digest.
const EVIDENCE_REPORT_BYTES_MAX: usize = 16 * 1024;
/// Failed checks named per report (in evidence and refusals), and the characters kept of each
/// policy id: a peer signs whatever ids it likes.
const FAILED_CHECKS_NAMED: usize = 32;
const POLICY_ID_CHARS: usize = 64;
/// At most one `audit_failed` evidence record per peer this often, milliseconds, however often
/// its failing reports change (the sentinel's default threshold is 2 within 10 minutes).
pub const AUDIT_EVIDENCE_EVERY_MS: u64 = 60_000;

/// This node's newest signed report of its own machine (None until the first scan, or without
/// `[audit]`).
pub type OwnReport = Arc<Mutex<Option<SignedReport>>>;

/// What this node saw of one peer's fitness, by the peer's 32-byte node key.
pub type Fitness = Arc<Mutex<BTreeMap<[u8; 32], PeerFitness>>>;

/// One peer's fitness as this node saw it last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFitness {
    /// The newest affirming appraisal by this node's verifier: SHA-256 of the signed appraisal
    /// and when it expires (Unix ms).
    pub appraisal: Option<([u8; 32], u64)>,
    /// The peer's newest signed audit report this node read.
    pub audit: Option<PeerAudit>,
    /// Why the last read of its report failed, if it did.
    pub audit_error: Option<String>,
}

/// A peer's signed audit report, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAudit {
    /// SHA-256 of the signed envelope as served.
    pub digest: [u8; 32],
    /// When the peer's agent made it (its clock, Unix ms).
    pub generated_at_ms: u64,
    /// Failed checks (policies and the role manifest).
    pub failed: u32,
    /// Policies the peer's agent could not load (a report with any is not clean).
    pub policy_errors: u32,
    /// Ids of the failed checks, for the evidence record.
    pub failed_checks: Vec<String>,
}

impl PeerAudit {
    /// No failed check and every policy loaded.
    pub fn clean(&self) -> bool {
        self.failed == 0 && self.policy_errors == 0
    }
}

/// Why a peer's report does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportRefusal {
    /// The envelope or its signature does not check.
    #[error("the signed report does not verify: {0}")]
    Signature(#[from] bulwark_audit::sign::SignError),
    /// Signed by another key than the peer's node key.
    #[error("the report is signed by {signer}, not by the peer's node key")]
    WrongSigner {
        /// Hex of the signing key.
        signer: String,
    },
    /// Stamped too far in this node's future.
    #[error("the report is stamped {ahead_ms} ms in this node's future")]
    Future {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// A policy's counters do not match its checks.
    #[error("policy {policy:?} counts do not match its checks")]
    Inconsistent {
        /// The policy id (cut).
        policy: String,
    },
    /// Older than the newest report already read from this peer (a replay).
    #[error("the report is older than one already read from this peer")]
    Older,
}

/// Checks a peer's served report: it verifies under `peer`'s node key. Staleness is judged when
/// the report is used ([`affirm`]), not here, so an old report is still evidence of a failure.
pub fn read_peer_report(
    bytes: &[u8],
    peer: &[u8; 32],
    now_ms: u64,
) -> Result<PeerAudit, ReportRefusal> {
    let signed = SignedReport::decode(bytes)?;
    let report = verify_report(&signed)?;
    if signed.node != hex::encode(peer) {
        return Err(ReportRefusal::WrongSigner {
            signer: signed.node.chars().take(64).collect(),
        });
    }
    if report.generated_at_ms > now_ms.saturating_add(REPORT_SKEW_MS) {
        return Err(ReportRefusal::Future {
            ahead_ms: report.generated_at_ms - now_ms,
        });
    }
    use bulwark_audit::report::{Outcome, PolicyStatus};
    // Counted from the checks themselves; a policy whose counters say otherwise is refused.
    let (mut failed, mut policy_errors) = (0u32, 0u32);
    let mut failed_checks = Vec::new();
    for policy in &report.policies {
        let id: String = policy.id.chars().take(POLICY_ID_CHARS).collect();
        let count = |outcome: Outcome| {
            policy
                .checks
                .iter()
                .filter(|check| check.outcome == outcome)
                .count()
        };
        let counted = count(Outcome::Failed);
        if usize::try_from(policy.failed).ok() != Some(counted)
            || usize::try_from(policy.passed).ok() != Some(count(Outcome::Passed))
        {
            return Err(ReportRefusal::Inconsistent { policy: id });
        }
        failed = failed.saturating_add(u32::try_from(counted).unwrap_or(u32::MAX));
        if matches!(policy.status, PolicyStatus::Error { .. }) {
            policy_errors = policy_errors.saturating_add(1);
        }
        for check in policy
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
        {
            if failed_checks.len() < FAILED_CHECKS_NAMED {
                failed_checks.push(format!("{id}:{}", check.id));
            }
        }
    }
    Ok(PeerAudit {
        digest: Sha256::hash(&[bytes]).0,
        generated_at_ms: report.generated_at_ms,
        failed,
        policy_errors,
        failed_checks,
    })
}

/// The detail of an `audit_failed` evidence record: the digest, what failed, and the signed
/// envelope itself when it is small enough to keep.
pub fn failed_report_detail(audit: &PeerAudit, envelope: &[u8]) -> String {
    let mut detail = serde_json::json!({
        "sha256": hex::encode(audit.digest),
        "generated_at_ms": audit.generated_at_ms,
        "failed": audit.failed,
        "policy_errors": audit.policy_errors,
        "checks": audit.failed_checks,
    });
    if envelope.len() <= EVIDENCE_REPORT_BYTES_MAX {
        detail["signed_report"] =
            serde_json::Value::String(String::from_utf8_lossy(envelope).into());
    }
    detail.to_string()
}

/// The detail of an `audit_failed` evidence record for a report that went stale: the newest
/// report read from the peer is older than `[audit] report_ttl_ms`.
pub fn stale_report_detail(audit: &PeerAudit, age_ms: u64) -> String {
    serde_json::json!({
        "stale": true,
        "sha256": hex::encode(audit.digest),
        "generated_at_ms": audit.generated_at_ms,
        "age_ms": age_ms,
    })
    .to_string()
}

/// Why this node does not affirm a candidate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AffirmRefusal {
    /// The genesis has no sentinel committee.
    #[error("no sentinel committee is configured")]
    NoCommittee,
    /// This node is not an admitted member of the current epoch: its word would not count.
    #[error(
        "this node is not an admitted member of epoch {epoch}: its affirmation would not count"
    )]
    NotAMember {
        /// The current epoch.
        epoch: u64,
    },
    /// The candidate is a member in another state than removed.
    #[error("the candidate is {0}: only a removed member is re-admitted")]
    NotRemoved(&'static str),
    /// Not a peer this node appraises: a newcomer.
    #[error("the candidate is not a peer this node appraises: list the newcomer in this node's configuration as a peer with candidate = true (docs/node.md) and restart it")]
    NotAPeer,
    /// Attested admission is off on this node: it appraises nobody.
    #[error("attested admission is off on this node: it holds no appraisal of anyone")]
    AdmissionOff,
    /// No current affirming appraisal by this node's verifier.
    #[error("this node's verifier holds no fresh affirming appraisal of the candidate")]
    NotAppraised,
    /// No audit report of the candidate has been read.
    #[error("this node has read no signed audit report of the candidate (its log says why)")]
    NoReport,
    /// The newest report is older than `[audit] report_ttl_ms`.
    #[error("the candidate's newest audit report is {age_ms} ms old (at most {ttl_ms})")]
    StaleReport {
        /// Its age.
        age_ms: u64,
        /// The bound.
        ttl_ms: u64,
    },
    /// The newest report has failures (which ones is in this node's log, not in the answer:
    /// anyone may ask).
    #[error("the candidate's newest audit report is not clean: {failed} failed check(s), {policy_errors} policy error(s)")]
    FailedReport {
        /// Failed checks.
        failed: u32,
        /// Policies that did not load.
        policy_errors: u32,
    },
}

/// This node's affirmation of `candidate`, signed by `key` at the committed state's venue time,
/// or why not. `fitness` is what this node saw of the candidate (None: not its peer);
/// `report_ttl_ms` bounds the report's age by this machine's clock `now_ms`.
pub fn affirm(
    engine: &Engine,
    key: &ed25519_dalek::SigningKey,
    candidate: [u8; 32],
    fitness: Option<&PeerFitness>,
    (now_ms, report_ttl_ms): (u64, u64),
) -> Result<Affirmation, AffirmRefusal> {
    let membership = engine.membership().ok_or(AffirmRefusal::NoCommittee)?;
    let me = key.verifying_key().to_bytes();
    if !membership.is_admitted(&me) {
        return Err(AffirmRefusal::NotAMember {
            epoch: membership.epoch(),
        });
    }
    match membership.trust(&candidate) {
        Some(Trust::Removed { .. }) | None => {}
        Some(Trust::Admitted) => return Err(AffirmRefusal::NotRemoved("admitted")),
        Some(Trust::Quarantined { .. }) => return Err(AffirmRefusal::NotRemoved("quarantined")),
        Some(Trust::Joining { .. }) => return Err(AffirmRefusal::NotRemoved("joining already")),
    }
    let fitness = fitness.ok_or(AffirmRefusal::NotAPeer)?;
    let appraisal = match fitness.appraisal {
        Some((digest, expires)) if expires > now_ms => digest,
        _ => return Err(AffirmRefusal::NotAppraised),
    };
    let audit = fitness.audit.as_ref().ok_or(AffirmRefusal::NoReport)?;
    let age_ms = now_ms.saturating_sub(audit.generated_at_ms);
    if age_ms > report_ttl_ms {
        return Err(AffirmRefusal::StaleReport {
            age_ms,
            ttl_ms: report_ttl_ms,
        });
    }
    if !audit.clean() {
        tracing::info!(checks = ?audit.failed_checks, "not affirming: the candidate's report fails these checks");
        return Err(AffirmRefusal::FailedReport {
            failed: audit.failed,
            policy_errors: audit.policy_errors,
        });
    }
    Ok(Affirmation::sign(
        key,
        candidate,
        membership.epoch(),
        engine.time_ms(),
        (appraisal, audit.digest),
    ))
}

/// Starts the audit agent on its own thread: a full scan now and every `interval_ms` (±20 %),
/// each report signed with the node key and kept in `own` for peers to read. Policies that do
/// not load are logged and counted in the report (which is then not clean).
pub fn start_agent(config: &AuditConfig, seed: &[u8; 32], own: OwnReport) -> Result<(), NodeError> {
    use bulwark_audit::agent::{Auditor, Schedule};
    use bulwark_audit::host::CommandLimits;
    use bulwark_auditor::agent::{run_loop, AgentConfig, AgentEvent};
    let (policies, load_errors) = bulwark_auditor::load::load_policies(
        &config.policies,
        &mut bulwark_audit::rule::PatternCache::default(),
    );
    for error in &load_errors {
        warn!(%error, "[audit] policy does not load: every report counts it, so no peer affirms this node");
    }
    let manifest = match &config.manifest {
        Some(path) => {
            Some(
                bulwark_auditor::load::load_manifest(path).map_err(|e| NodeError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    if let Some(fixture) = &config.commands_fixture {
        warn!(fixture = %fixture.display(), "[audit] DEVELOPMENT: command rules are answered from a fixture file, not run on this machine");
    }
    let commands = bulwark_auditor::cli::command_source_for(
        &config.root,
        config.commands_fixture.as_deref(),
        CommandLimits {
            timeout: std::time::Duration::from_secs(10),
            output_bytes_max: 1024 * 1024,
        },
    )
    .map_err(|e| NodeError::File {
        path: config.commands_fixture.clone().unwrap_or_default(),
        reason: e.to_string(),
    })?;
    if config.root != std::path::Path::new("/") {
        warn!(root = %config.root.display(), "[audit] file rules read this tree, not this machine's /");
    }
    let mut auditor = Auditor::new(policies, load_errors, manifest);
    let agent = AgentConfig {
        // Jitter from fresh randomness: peers see the scan times, so nothing secret seeds it.
        schedule: Schedule::new(config.interval_ms, 2_000, rand::random()),
        snapshot_every_scans: 1,
        debounce: std::time::Duration::from_millis(500),
        budget: bulwark_audit::budget::Budget::agent_default(),
        clock: Arc::new(bulwark_auditor::clock::SystemClock),
    };
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let root = config.root.clone();
    info!(
        policies = config.policies.len(),
        root = %root.display(),
        interval_ms = config.interval_ms,
        "configuration audit on: reports signed with the node key"
    );
    std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            let host = bulwark_auditor::machine::RootedHost::new(&root, commands);
            let now = crate::node::attest::now_ms;
            run_loop(&mut auditor, &host, agent, None, &key, &now, &mut |event| {
                if let AgentEvent::Snapshot(signed) = event {
                    if let Ok(report) = verify_report(&signed) {
                        let summary = report.summary();
                        if summary.failed > 0 || summary.policy_errors > 0 {
                            warn!(failed = summary.failed, policy_errors = summary.policy_errors, "configuration audit: this machine fails checks; peers record it as evidence");
                        } else {
                            info!(passed = summary.passed, "configuration audit: clean");
                        }
                    }
                    *own.lock().expect("the audit report lock must not be poisoned") =
                        Some(signed);
                }
                std::ops::ControlFlow::Continue(())
            });
        })
        .map_err(|e| NodeError::Attestation(format!("cannot start the audit thread: {e}")))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_audit::report::{CheckResult, Outcome, PolicyResult, Report};
    use bulwark_audit::sign::sign_report;

    const NOW: u64 = 1_800_000_000_000;

    /// A report of one check (root SSH login) with `outcome`, made at `at`, signed by `key`:
    /// the served envelope.
    pub(crate) fn report(key: &ed25519_dalek::SigningKey, at: u64, outcome: Outcome) -> Vec<u8> {
        let check = CheckResult {
            id: 900001,
            title: "Root cannot log in over SSH.".into(),
            severity: bulwark_audit::policy::Severity::Critical,
            outcome,
            reason: None,
            rules: Vec::new(),
        };
        let mut report = Report {
            version: 1,
            node: None,
            generated_at_ms: at,
            policies: vec![PolicyResult::from_checks(
                "bulwark_committee_node".into(),
                "baseline".into(),
                "committee-node.yml".into(),
                vec![check],
            )],
        };
        sign_report(&mut report, key).encode()
    }

    #[test]
    fn a_peer_report_counts_only_under_its_own_key_and_not_from_the_future() {
        let peer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let me = peer.verifying_key().to_bytes();
        let clean = read_peer_report(&report(&peer, NOW, Outcome::Passed), &me, NOW).unwrap();
        assert!(clean.clean());
        let failed = read_peer_report(&report(&peer, NOW, Outcome::Failed), &me, NOW).unwrap();
        assert!(!failed.clean());
        assert_eq!(failed.failed_checks, ["bulwark_committee_node:900001"]);
        assert!(failed_report_detail(&failed, b"{}").contains("signed_report"));
        assert!(matches!(
            read_peer_report(&report(&other, NOW, Outcome::Passed), &me, NOW),
            Err(ReportRefusal::WrongSigner { .. })
        ));
        assert!(matches!(
            read_peer_report(&report(&peer, NOW + 60_000, Outcome::Passed), &me, NOW),
            Err(ReportRefusal::Future { .. })
        ));
        // Tampered bytes, and bytes that are no envelope at all.
        let mut tampered = report(&peer, NOW, Outcome::Failed);
        let at = tampered.windows(6).position(|w| w == b"failed").unwrap();
        tampered[at..at + 6].copy_from_slice(b"passed");
        assert!(matches!(
            read_peer_report(&tampered, &me, NOW),
            Err(ReportRefusal::Signature(_))
        ));
        assert!(read_peer_report(b"\xff\x00 not json", &me, NOW).is_err());
    }

    /// A hostile peer signs what it likes: counters that overflow or lie about its checks, and
    /// a policy id of any length. Neither panics nor grows what this node keeps.
    #[test]
    fn a_peer_cannot_lie_in_its_counters_or_grow_evidence_with_long_ids() {
        let peer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let me = peer.verifying_key().to_bytes();
        let signed = |edit: &dyn Fn(&mut Report)| {
            let mut report: Report = serde_json::from_str(
                &SignedReport::decode(&report(&peer, NOW, Outcome::Failed))
                    .unwrap()
                    .report,
            )
            .unwrap();
            edit(&mut report);
            report.node = None;
            sign_report(&mut report, &peer).encode()
        };
        // Two policies whose failed counts add past u32::MAX, and a policy that hides its failure.
        let overflow = signed(&|r| {
            r.policies[0].failed = u32::MAX;
            r.policies.push(r.policies[0].clone());
        });
        assert!(matches!(
            read_peer_report(&overflow, &me, NOW),
            Err(ReportRefusal::Inconsistent { .. })
        ));
        let hidden = signed(&|r| r.policies[0].failed = 0);
        assert!(matches!(
            read_peer_report(&hidden, &me, NOW),
            Err(ReportRefusal::Inconsistent { .. })
        ));
        let long = signed(&|r| {
            r.policies[0].id = "x".repeat(900_000);
            let check = r.policies[0].checks[0].clone();
            r.policies[0].checks = vec![check; 100];
            r.policies[0].failed = 100;
        });
        let audit = read_peer_report(&long, &me, NOW).unwrap();
        assert_eq!(audit.failed, 100);
        assert_eq!(audit.failed_checks.len(), FAILED_CHECKS_NAMED);
        assert!(audit
            .failed_checks
            .iter()
            .all(|c| c.len() <= POLICY_ID_CHARS + 8));
        let detail = failed_report_detail(&audit, &long);
        assert!(detail.len() < 8 * 1024, "{} bytes", detail.len());
    }

    /// A committee of four (keys 10..14) in which member 13 was removed, at its venue time.
    fn committee_with_removed() -> (Engine, Vec<ed25519_dalek::SigningKey>) {
        let keys: Vec<ed25519_dalek::SigningKey> = (10..14u8)
            .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
            .collect();
        use bulwark_engine::command::{Command, SystemCommand};
        use bulwark_sentinel::membership::Evidence;
        use bulwark_sentinel::{Accusation, Grounds, Operators, Policy, Quarantine};
        let public: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let oracle = bulwark_engine::oracle::OracleConfig {
            members: public.clone(),
            f: 1,
            ..Default::default()
        };
        let (mut engine, _) = bulwark_consensus::genesis::try_genesis_with(
            &[],
            &[60_000_000_000],
            oracle,
            (Policy::default(), Operators::default()),
        )
        .unwrap();
        let accused = public[3];
        let decision = Quarantine {
            member: accused,
            epoch: 0,
            evidence: Evidence::Accusations(
                (0..2)
                    .map(|i| Accusation::sign(&keys[i], accused, Grounds::Silence, 0, 1_000))
                    .collect(),
            ),
        };
        let mut staying = public[..3].to_vec();
        staying.sort_unstable();
        let mut events = Vec::new();
        engine.execute(
            1_000,
            &[
                Command::System(SystemCommand::Quarantine(Box::new(decision))),
                Command::System(SystemCommand::NewEpoch {
                    epoch: 1,
                    members: staying,
                    key: [4; 32],
                }),
            ],
            &mut events,
        );
        let membership = engine.membership().unwrap();
        assert_eq!(membership.epoch(), 1, "{events:?}");
        assert!(matches!(
            membership.trust(&accused),
            Some(Trust::Removed { .. })
        ));
        (engine, keys)
    }

    #[test]
    fn a_member_affirms_only_on_its_own_fresh_appraisal_and_a_clean_fresh_report() {
        let (engine, keys) = committee_with_removed();
        let candidate = keys[3].verifying_key().to_bytes();
        let clean = read_peer_report(
            &report(&keys[3], NOW - 1_000, Outcome::Passed),
            &candidate,
            NOW,
        )
        .unwrap();
        let fit = PeerFitness {
            appraisal: Some(([7; 32], NOW + 3_000)),
            audit: Some(clean.clone()),
            audit_error: None,
        };
        let ttl = 60_000;
        let affirmation = affirm(&engine, &keys[0], candidate, Some(&fit), (NOW, ttl)).unwrap();
        assert_eq!(affirmation.affirmer, keys[0].verifying_key().to_bytes());
        assert_eq!(
            (affirmation.appraisal, affirmation.audit),
            ([7; 32], clean.digest)
        );
        assert_eq!(affirmation.at_ms, engine.time_ms());
        assert!(affirmation.verify().is_ok());
        let membership = engine.membership().unwrap();
        assert_eq!(affirmation.epoch, membership.epoch());
        assert!(membership
            .check_affirmation(&affirmation, engine.time_ms())
            .is_ok());

        let refused = |fit: Option<&PeerFitness>, who: usize, candidate: [u8; 32]| {
            affirm(&engine, &keys[who], candidate, fit, (NOW, ttl)).unwrap_err()
        };
        // The removed member itself cannot vouch; an admitted member is not a candidate.
        assert!(matches!(
            refused(Some(&fit), 3, candidate),
            AffirmRefusal::NotAMember { .. }
        ));
        let admitted = keys[1].verifying_key().to_bytes();
        assert_eq!(
            refused(Some(&fit), 0, admitted),
            AffirmRefusal::NotRemoved("admitted")
        );
        // A newcomer this node does not appraise.
        assert_eq!(refused(None, 0, [99; 32]), AffirmRefusal::NotAPeer);
        // An expired appraisal, none at all.
        let expired = PeerFitness {
            appraisal: Some(([7; 32], NOW)),
            ..fit.clone()
        };
        assert_eq!(
            refused(Some(&expired), 0, candidate),
            AffirmRefusal::NotAppraised
        );
        // No report, a stale one, a failed one.
        let unread = PeerFitness {
            audit: None,
            audit_error: Some("timed out".into()),
            ..fit.clone()
        };
        assert_eq!(
            refused(Some(&unread), 0, candidate),
            AffirmRefusal::NoReport
        );
        let stale = PeerFitness {
            audit: Some(PeerAudit {
                generated_at_ms: NOW - ttl - 1,
                ..clean.clone()
            }),
            ..fit.clone()
        };
        assert!(matches!(
            refused(Some(&stale), 0, candidate),
            AffirmRefusal::StaleReport { .. }
        ));
        let failed = PeerFitness {
            audit: Some(
                read_peer_report(&report(&keys[3], NOW, Outcome::Failed), &candidate, NOW).unwrap(),
            ),
            ..fit.clone()
        };
        assert!(matches!(
            refused(Some(&failed), 0, candidate),
            AffirmRefusal::FailedReport { failed: 1, .. }
        ));
    }
}
