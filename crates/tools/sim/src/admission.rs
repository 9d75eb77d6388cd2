//! Attested admission in the simulator: every member appraises every other member's
//! DEVELOPMENT evidence with the production `bulwark_consensus::admission::Admission` against a
//! manifest the operators signed, and cuts a contraindicated member's links, recording the
//! signed appraisal as evidence, as the node's admission task does.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::world::{unix_ms, World};
use bulwark_attest::dev::DevAttestor;
use bulwark_attest::evidence::{AppMeasurements, Evidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::manifest::{DevReference, OperatorSet, ReferenceManifest, SignedManifest};
use bulwark_attest::nonce::node_key_hash;
use bulwark_consensus::admission::{Admission, Change};
use bulwark_consensus::evidence::Kind;
use commonware_codec::Encode as _;

/// What an honest member runs, and what a tampered one runs instead.
fn measurements(tampered: bool) -> AppMeasurements {
    let binary: &[u8] = if tampered {
        b"bulwark node, with a backdoor"
    } else {
        b"bulwark node"
    };
    AppMeasurements::from_contents(binary, b"node.toml", b"manifest.json")
}

/// A key derived from the run's seed for `role` and `index`.
fn derived(seed: u64, role: &str, index: usize) -> ed25519_dalek::SigningKey {
    let mut hasher = blake3::Hasher::new_derive_key("bulwark sim 2026-12 admission keys");
    hasher.update(&seed.to_le_bytes());
    hasher.update(role.as_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    ed25519_dalek::SigningKey::from_bytes(hasher.finalize().as_bytes())
}

/// The manifest the run's operator signs (valid around `now_ms`) allowing DEVELOPMENT evidence
/// from `attestors` of the honest measurements, and the operator set that checks it.
fn dev_manifest(
    seed: u64,
    now_ms: u64,
    attestors: &[DevAttestor],
) -> (SignedManifest, OperatorSet) {
    let operator = derived(seed, "operator", 0);
    let operators =
        OperatorSet::new(vec![HexBytes(operator.verifying_key().to_bytes())], 1).unwrap();
    let mut manifest = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "sim".into(),
        issued_at_ms: now_ms.saturating_sub(60_000),
        expires_at_ms: now_ms + 3_600_000,
        tpm: None,
        snp: None,
        tdx: None,
        dev: Some(DevReference {
            allow_insecure_dev_evidence: true,
            signer_keys: attestors.iter().map(DevAttestor::public_key).collect(),
            app_measurements: vec![HexBytes(measurements(false).app_pcr_value())],
        }),
    });
    manifest.sign_with(&operator);
    (manifest, operators)
}

impl World {
    /// One admission round at the current virtual time: each member not in `scenario.tampered`
    /// challenges every other, appraises the evidence it answers with, and on a
    /// contraindicated appraisal cuts its links to that member and records the evidence.
    pub(crate) async fn admit(&self) {
        let scenario = self.scenario;
        let n = scenario.n;
        let seed = scenario.seed;
        let now_ms = unix_ms(&self.context);
        let attestors: Vec<DevAttestor> = (0..n)
            .map(|i| DevAttestor::from_secret(&derived(seed, "attestor", i).to_bytes()))
            .collect();
        let (manifest, operators) = dev_manifest(seed, now_ms, &attestors);
        let public = |j: usize| self.by_index[j].encode().to_vec();
        for appraiser in (0..n).filter(|i| !scenario.tampered.contains(i)) {
            let peers = (0..n)
                .filter(|&j| j != appraiser)
                .map(|j| (j, format!("member-{j}"), public(j)));
            let mut admission = Admission::new(
                derived(seed, "verifier", appraiser),
                operators.clone(),
                manifest.clone(),
                (0, 10_000),
                // The simulated committee is a development one on one machine.
                true,
                peers,
            );
            for peer in (0..n).filter(|&j| j != appraiser) {
                let random = *blake3::hash(&[appraiser as u8, peer as u8]).as_bytes();
                let nonce = admission.challenge(&peer, now_ms, random).unwrap();
                let evidence = Evidence::DevInsecure(attestors[peer].attest(
                    &nonce,
                    &node_key_hash(&public(peer)),
                    0,
                    measurements(scenario.tampered.contains(&peer)),
                ));
                let bytes = serde_json::to_vec(&evidence).unwrap();
                for change in admission.evidence(&peer, &bytes, now_ms) {
                    if let Change::Block(cut) = change {
                        self.set_link(appraiser, cut, false).await;
                    }
                }
            }
            for (cut, signed) in admission.take_cut_off_evidence() {
                self.evidence[appraiser].record(
                    Kind::Contraindicated,
                    &self.by_index[cut],
                    0,
                    serde_json::to_string(&signed).unwrap(),
                );
            }
        }
    }

    /// One audit round: each member in `scenario.failed_audit` signs a report whose one check
    /// failed and sends it to every member; each verifies the signature and the node it names
    /// and records the failure as evidence (which its sentinel turns into an accusation).
    pub(crate) fn audit_round(&self) {
        use bulwark_audit::report::{CheckResult, Outcome, PolicyResult, Report};
        use bulwark_audit::sign::{sign_report, verify_report};
        for &failing in self.scenario.failed_audit {
            let check = CheckResult {
                id: 1,
                title: "The node binary matches the release manifest".into(),
                severity: bulwark_audit::policy::Severity::Critical,
                outcome: Outcome::Failed,
                reason: None,
                rules: Vec::new(),
            };
            let mut report = Report {
                version: 1,
                node: None,
                generated_at_ms: unix_ms(&self.context),
                policies: vec![PolicyResult::from_checks(
                    "bulwark_node".into(),
                    "bulwark node hardening".into(),
                    "bulwark_node.yml".into(),
                    vec![check],
                )],
            };
            let signed = sign_report(&mut report, self.node_signing_key(failing));
            for receiver in (0..self.scenario.n).filter(|&r| r != failing) {
                let Ok(report) = verify_report(&signed) else {
                    continue;
                };
                let failed: u32 = report.policies.iter().map(|p| p.failed).sum();
                if failed > 0 {
                    self.evidence[receiver].record(
                        Kind::AuditFailed,
                        &self.by_index[failing],
                        0,
                        String::from_utf8_lossy(&signed.encode()).into_owned(),
                    );
                }
            }
        }
    }
}

/// Attack 9's second half: a peer hands honest DEVELOPMENT evidence, under a manifest whose
/// dev section allows it, to a member that is not a development node (a TPM member). Returns
/// whether that member cut the peer off (the promise) rather than admitting it.
pub(crate) fn dev_evidence_at_a_tpm_member() -> bool {
    let now_ms = 1_800_000_000_000;
    let attestor = DevAttestor::from_secret(&derived(0, "attestor", 1).to_bytes());
    let (manifest, operators) = dev_manifest(0, now_ms, std::slice::from_ref(&attestor));
    let peer_key = b"member 1's p2p key".to_vec();
    let mut admission = Admission::new(
        derived(0, "verifier", 0),
        operators,
        manifest,
        (0, 10_000),
        // A TPM member: it does not accept development evidence.
        false,
        [(1usize, "member-1".to_string(), peer_key.clone())],
    );
    let nonce = admission.challenge(&1, now_ms, [7; 32]).unwrap();
    let evidence = Evidence::DevInsecure(attestor.attest(
        &nonce,
        &node_key_hash(&peer_key),
        0,
        measurements(false),
    ));
    let changes = admission.evidence(&1, &serde_json::to_vec(&evidence).unwrap(), now_ms);
    changes.contains(&Change::Block(1)) && admission.admitted(now_ms).is_empty()
}
