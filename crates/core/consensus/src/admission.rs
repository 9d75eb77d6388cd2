//! Attested admission into the committee's network: a peer is connected to only while this
//! node holds a current affirming (or warning) appraisal of its evidence.
//!
//! Sans-IO: the node asks [`Admission::challenge`] for a fresh nonce per peer, fetches the peer's
//! evidence over that nonce however it likes, and hands the bytes to [`Admission::evidence`].
//! Every call returns the [`Change`]s to apply to the network (track the new admitted set,
//! block a peer). Time and randomness are passed in.
//!
//! Rules:
//! - an affirming or warning appraisal admits the peer until it expires (the appraisal's
//!   time-to-live, configured to a few re-attestation intervals);
//! - a contraindicated appraisal cuts the peer off at once: it is blocked, dropped from the
//!   admitted set, and the signed appraisal is kept as evidence for the sentinel;
//! - a peer that does not answer keeps its admission until the last appraisal expires, then it
//!   is dropped (missing or expired appraisal = not admitted).
//!
//! TPM peers: before its first quote counts, a peer's attestation key (AK) is enrolled by
//! credential activation against the peer's endorsement key (EK) from the operators' inventory
//! ([`Admission::with_endorsement_key`]): [`Admission::begin_enrollment`] wraps a fresh credential
//! to the EK for the AK the peer presents, and only a TPM holding both keys recovers it
//! ([`Admission::finish_enrollment`]). An AK is never trusted because it is configured or because
//! the peer says so.
//!
//! The evidence binds the verifier's nonce, the SHA-256 of the peer's p2p public key and the
//! epoch, so it cannot be replayed or presented for another key.

use bulwark_attest::appraisal::{SignedAppraisal, Status};
use bulwark_attest::evidence::Evidence;
use bulwark_attest::manifest::{OperatorSet, SignedManifest};
use bulwark_attest::nonce::{node_key_hash, Nonce};
use bulwark_attest::tpm::CredentialChallenge;
use bulwark_attest::verifier::{AppraisalRequest, Verifier, VerifierConfig, VerifierError};
use std::collections::{BTreeMap, BTreeSet};

/// Why an enrollment step ([`Admission::begin_enrollment`], [`Admission::finish_enrollment`])
/// failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The peer has no endorsement key in the operators' inventory, so it does not attest
    /// with a TPM and has nothing to enroll.
    #[error("not a TPM peer: no endorsement key in the inventory")]
    NotTpmPeer,
    /// The key is not one of the committee's other members.
    #[error("not a peer")]
    UnknownPeer,
    /// The verifier refused the enrollment (bad AK or EK, wrong or expired credential); the
    /// reason is also kept in the peer's [`PeerState::last_reasons`].
    #[error(transparent)]
    Enrollment(#[from] VerifierError),
}

/// What changes in the network after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<K> {
    /// Track exactly these peers (besides this node).
    Track(BTreeSet<K>),
    /// This peer was just cut off (contraindicated): it is in no `Track` set until a fresh
    /// affirming appraisal. The node only reports it (the `Track` change drops the connection);
    /// the simulator cuts its links.
    Block(K),
}

/// SHA-256 of a signed appraisal's JSON: how an affirmation names the appraisal it rests on.
pub fn appraisal_digest(signed: &SignedAppraisal) -> [u8; 32] {
    use commonware_cryptography::{Hasher as _, Sha256};
    let json = serde_json::to_vec(signed).unwrap_or_default();
    Sha256::hash(&[json.as_slice()]).0
}

/// The state of one peer.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    /// Admitted until (ms), if admitted.
    pub admitted_until: Option<u64>,
    /// The last appraisal's status.
    pub last_status: Option<Status>,
    /// The last appraisal's reason codes.
    pub last_reasons: Vec<String>,
    /// Cut off by a contraindicated appraisal: out of the tracked set until a fresh affirming
    /// appraisal readmits it.
    pub cut_off: bool,
    /// When it was cut off (ms).
    pub cut_off_at: Option<u64>,
    /// Appraisals made.
    pub appraisals: u64,
    /// When the last appraisal was made (ms), whatever its outcome.
    pub last_appraisal_at: Option<u64>,
    /// Whether the peer's TPM attestation key is enrolled (TPM peers only).
    pub ak_enrolled: bool,
    /// The newest affirming appraisal (status `affirming`, not `warning`): SHA-256 of the
    /// signed appraisal's JSON and when it expires (ms). Cleared by any appraisal that is not
    /// affirming. What an affirmation of this peer names (issue #13).
    pub affirming: Option<([u8; 32], u64)>,
}

/// The admission state of every peer, with the verifier that appraises them.
pub struct Admission<K: Ord + Clone> {
    verifier: Verifier,
    manifest: SignedManifest,
    epoch: u64,
    peers: BTreeMap<K, (String, [u8; 32], PeerState)>,
    outstanding: BTreeMap<K, Nonce>,
    cut_off_evidence: Vec<(K, SignedAppraisal)>,
    endorsement_keys: BTreeMap<K, Vec<u8>>,
}

impl<K: Ord + Clone> Admission<K> {
    /// `peers`: every other member, with a name for appraisals and the bytes of its p2p public
    /// key (hashed into the qualifying data). `appraisal_ttl_ms` is how long an affirming
    /// appraisal admits a peer; keep it a few re-attestation intervals. `accept_dev_evidence`:
    /// only a development node with every member on loopback appraises DEVELOPMENT evidence at
    /// all (see [`VerifierConfig::accept_dev_evidence`]).
    pub fn new(
        verifier_key: ed25519_dalek::SigningKey,
        operators: OperatorSet,
        manifest: SignedManifest,
        (epoch, appraisal_ttl_ms): (u64, u64),
        accept_dev_evidence: bool,
        peers: impl IntoIterator<Item = (K, String, Vec<u8>)>,
    ) -> Self {
        let config = VerifierConfig {
            appraisal_ttl_ms,
            accept_dev_evidence,
            ..VerifierConfig::default()
        };
        Admission {
            verifier: Verifier::new(verifier_key, operators, config),
            manifest,
            epoch,
            peers: peers
                .into_iter()
                .map(|(key, name, public)| {
                    (key, (name, node_key_hash(&public), PeerState::default()))
                })
                .collect(),
            outstanding: BTreeMap::new(),
            cut_off_evidence: Vec::new(),
            endorsement_keys: BTreeMap::new(),
        }
    }

    /// TEST ONLY (feature `recorded-samples`): see
    /// [`Verifier::expect_recorded_report_data`]; lets the simulator admit members that replay
    /// recorded SEV-SNP and TDX samples through this very admission.
    #[cfg(feature = "recorded-samples")]
    pub fn expect_recorded_report_data(&mut self, report_data: Option<[u8; 64]>) {
        self.verifier.expect_recorded_report_data(report_data);
    }

    /// Records `peer`'s endorsement key (marshalled `TPMT_PUBLIC`, from the operators'
    /// inventory): the peer attests with a TPM, and its AK must be enrolled against this EK.
    pub fn with_endorsement_key(mut self, peer: K, ek_public: Vec<u8>) -> Self {
        self.endorsement_keys.insert(peer, ek_public);
        self
    }

    /// Whether `peer` attests with a TPM whose attestation key is not enrolled yet.
    pub fn needs_enrollment(&self, peer: &K) -> bool {
        self.endorsement_keys.contains_key(peer)
            && self
                .peers
                .get(peer)
                .is_some_and(|(_, _, state)| !state.ak_enrolled && !state.cut_off)
    }

    fn enrollment_failed(&mut self, peer: &K, error: VerifierError) -> AdmissionError {
        if let Some((_, _, state)) = self.peers.get_mut(peer) {
            state.last_reasons = vec![format!("enrollment-failed: {error}")];
        }
        AdmissionError::Enrollment(error)
    }

    /// Starts enrolling the attestation key `peer` presented: a fresh credential (from `rng`)
    /// wrapped to the peer's inventory EK and bound to the AK's name.
    pub fn begin_enrollment(
        &mut self,
        peer: &K,
        ak_public: &[u8],
        now_ms: u64,
        rng: &mut impl rand_core_06::CryptoRngCore,
    ) -> Result<CredentialChallenge, AdmissionError> {
        let Some(ek) = self.endorsement_keys.get(peer).cloned() else {
            return Err(AdmissionError::NotTpmPeer);
        };
        let Some((name, _, _)) = self.peers.get(peer) else {
            return Err(AdmissionError::UnknownPeer);
        };
        let name = name.clone();
        self.verifier
            .begin_enrollment(&name, &ek, ak_public, now_ms, rng)
            .map_err(|e| self.enrollment_failed(peer, e))
    }

    /// Completes enrollment with the credential the peer's TPM recovered; only then do its
    /// quotes count.
    pub fn finish_enrollment(
        &mut self,
        peer: &K,
        credential: &[u8],
        now_ms: u64,
    ) -> Result<(), AdmissionError> {
        let Some((name, _, _)) = self.peers.get(peer) else {
            return Err(AdmissionError::UnknownPeer);
        };
        let name = name.clone();
        match self.verifier.finish_enrollment(&name, credential, now_ms) {
            Ok(_) => {
                if let Some((_, _, state)) = self.peers.get_mut(peer) {
                    state.ak_enrolled = true;
                }
                Ok(())
            }
            Err(e) => Err(self.enrollment_failed(peer, e)),
        }
    }

    /// A fresh single-use nonce for `peer`'s next evidence (`random`: 32 CSPRNG bytes).
    pub fn challenge(&mut self, peer: &K, now_ms: u64, random: [u8; 32]) -> Option<Nonce> {
        if !self.peers.contains_key(peer) {
            return None;
        }
        let nonce = self.verifier.issue_nonce(now_ms, random).ok()?;
        self.outstanding.insert(peer.clone(), nonce);
        Some(nonce)
    }

    fn admitted_set(&self, now_ms: u64) -> BTreeSet<K> {
        self.peers
            .iter()
            .filter(|(_, (_, _, state))| {
                !state.cut_off && state.admitted_until.is_some_and(|until| until > now_ms)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Appraises `peer`'s evidence bytes over its outstanding nonce.
    pub fn evidence(&mut self, peer: &K, bytes: &[u8], now_ms: u64) -> Vec<Change<K>> {
        let before = self.admitted_set(now_ms);
        let Some(nonce) = self.outstanding.remove(peer) else {
            return Vec::new();
        };
        let Some((name, key_hash, _)) = self.peers.get(peer) else {
            return Vec::new();
        };
        let (name, key_hash) = (name.clone(), *key_hash);
        let (status, reasons, signed, expires) = match Evidence::from_json(bytes) {
            Ok(evidence) => {
                let signed = self.verifier.appraise(
                    &AppraisalRequest {
                        node_id: &name,
                        node_key_sha256: key_hash,
                        epoch: self.epoch,
                        nonce,
                        evidence: &evidence,
                        manifest: &self.manifest,
                    },
                    now_ms,
                );
                match signed.verify(&self.verifier.public_key(), now_ms) {
                    Ok(appraisal) => (
                        appraisal.status,
                        appraisal.reasons.iter().map(|r| r.code.clone()).collect(),
                        Some(signed),
                        appraisal.expires_at_ms,
                    ),
                    Err(error) => (
                        Status::Contraindicated,
                        vec![format!("appraisal-unreadable: {error}")],
                        None,
                        now_ms,
                    ),
                }
            }
            Err(error) => (
                Status::Contraindicated,
                vec![format!("evidence-malformed: {error}")],
                None,
                now_ms,
            ),
        };
        let mut changes = Vec::new();
        if let Some((_, _, state)) = self.peers.get_mut(peer) {
            state.appraisals += 1;
            state.last_appraisal_at = Some(now_ms);
            state.last_status = Some(status);
            state.last_reasons = reasons;
            state.affirming = match (status, &signed) {
                (Status::Affirming, Some(signed)) => Some((appraisal_digest(signed), expires)),
                _ => None,
            };
            match status {
                Status::Affirming | Status::Warning => {
                    // A fresh affirming appraisal (over a new nonce, against the manifest)
                    // readmits a peer that was cut off: the cut-off lasts until then.
                    state.cut_off = false;
                    state.admitted_until = Some(expires);
                }
                Status::Contraindicated => {
                    state.admitted_until = None;
                    if !state.cut_off {
                        state.cut_off = true;
                        state.cut_off_at = Some(now_ms);
                        changes.push(Change::Block(peer.clone()));
                        if let Some(signed) = signed {
                            self.cut_off_evidence.push((peer.clone(), signed));
                        }
                    }
                }
            }
        }
        let after = self.admitted_set(now_ms);
        if after != before {
            changes.insert(0, Change::Track(after));
        }
        changes
    }

    /// Expires admissions whose appraisal ran out (call every interval).
    pub fn tick(&mut self, now_ms: u64, previous: &BTreeSet<K>) -> Vec<Change<K>> {
        let now = self.admitted_set(now_ms);
        if now != *previous {
            vec![Change::Track(now)]
        } else {
            Vec::new()
        }
    }

    /// Peers admitted now.
    pub fn admitted(&self, now_ms: u64) -> BTreeSet<K> {
        self.admitted_set(now_ms)
    }

    /// Each peer's name and state.
    pub fn states(&self) -> impl Iterator<Item = (&K, &str, &PeerState)> {
        self.peers
            .iter()
            .map(|(key, (name, _, state))| (key, name.as_str(), state))
    }

    /// Signed contraindicated appraisals that cut peers off (evidence for the sentinel), with
    /// the peer each names, removed from the admission state.
    pub fn take_cut_off_evidence(&mut self) -> Vec<(K, SignedAppraisal)> {
        std::mem::take(&mut self.cut_off_evidence)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_attest::dev::DevAttestor;
    use bulwark_attest::evidence::AppMeasurements;
    use bulwark_attest::hexbytes::HexBytes;
    use bulwark_attest::manifest::{DevReference, ReferenceManifest};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000_000;

    fn honest() -> AppMeasurements {
        AppMeasurements::from_contents(b"bulwark binary", b"genesis", b"operators")
    }

    fn setup() -> (Admission<u8>, DevAttestor) {
        setup_accepting(true)
    }

    fn setup_accepting(dev_evidence: bool) -> (Admission<u8>, DevAttestor) {
        let operators: Vec<SigningKey> = (0..3)
            .map(|i| SigningKey::from_bytes(&[100 + i; 32]))
            .collect();
        let set = OperatorSet::new(
            operators
                .iter()
                .map(|k| HexBytes(k.verifying_key().to_bytes()))
                .collect(),
            2,
        )
        .unwrap();
        let attestor = DevAttestor::from_secret(&[42; 32]);
        let mut manifest = SignedManifest::unsigned(ReferenceManifest {
            role: "committee".into(),
            release: "test".into(),
            issued_at_ms: NOW - 1_000,
            expires_at_ms: NOW + 3_600_000,
            tpm: None,
            snp: None,
            tdx: None,
            dev: Some(DevReference {
                allow_insecure_dev_evidence: true,
                signer_keys: vec![attestor.public_key()],
                app_measurements: vec![HexBytes(honest().app_pcr_value())],
            }),
        });
        manifest.sign_with(&operators[0]);
        manifest.sign_with(&operators[1]);
        let admission = Admission::new(
            SigningKey::from_bytes(&[9; 32]),
            set,
            manifest,
            (0, 3_000),
            dev_evidence,
            [
                (1u8, "node-1".to_string(), b"key-1".to_vec()),
                (2, "node-2".into(), b"key-2".to_vec()),
            ],
        );
        (admission, attestor)
    }

    fn evidence(attestor: &DevAttestor, nonce: &Nonce, key: &[u8], m: AppMeasurements) -> Vec<u8> {
        serde_json::to_vec(&Evidence::DevInsecure(attestor.attest(
            nonce,
            &node_key_hash(key),
            0,
            m,
        )))
        .unwrap()
    }

    #[test]
    fn honest_peer_admitted_tampered_cut_off_silent_expires() {
        let (mut admission, attestor) = setup();
        let nonce = admission.challenge(&1, NOW, [1; 32]).unwrap();
        let changes = admission.evidence(&1, &evidence(&attestor, &nonce, b"key-1", honest()), NOW);
        assert_eq!(changes, vec![Change::Track(BTreeSet::from([1]))]);
        let affirming = |admission: &Admission<u8>| {
            let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
            state.affirming
        };
        let first = affirming(&admission).expect("an affirming appraisal is kept");
        assert_eq!(first.1, NOW + 3_000, "it expires with the admission");

        // Evidence for another key (moved evidence) is refused and cuts the peer off.
        let nonce = admission.challenge(&2, NOW, [2; 32]).unwrap();
        let moved = evidence(&attestor, &nonce, b"key-1", honest());
        assert_eq!(admission.evidence(&2, &moved, NOW), vec![Change::Block(2)]);

        // Tampered measurement: node 1 is cut off at once.
        let nonce = admission.challenge(&1, NOW + 500, [3; 32]).unwrap();
        let evil = AppMeasurements::from_contents(b"evil binary", b"genesis", b"operators");
        let changes =
            admission.evidence(&1, &evidence(&attestor, &nonce, b"key-1", evil), NOW + 500);
        assert_eq!(
            changes,
            vec![Change::Track(BTreeSet::new()), Change::Block(1)]
        );
        let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
        assert!(state.cut_off);
        assert_eq!(
            state.affirming, None,
            "a contraindicated appraisal clears it"
        );
        assert!(state
            .last_reasons
            .contains(&"app-measurement-mismatch".to_string()));
        assert_eq!(admission.take_cut_off_evidence().len(), 2);

        // Node 1 stays out, however often it is asked, until it answers with honest evidence;
        // then it is back in.
        for k in 0..3u8 {
            let at = NOW + 1_000 + u64::from(k);
            let nonce = admission.challenge(&1, at, [10 + k; 32]).unwrap();
            let evil = AppMeasurements::from_contents(b"evil binary", b"genesis", b"operators");
            let changes = admission.evidence(&1, &evidence(&attestor, &nonce, b"key-1", evil), at);
            assert!(
                changes.is_empty(),
                "still out, and blocked only once: {changes:?}"
            );
            assert!(admission.admitted(at).is_empty());
        }
        let nonce = admission.challenge(&1, NOW + 2_000, [20; 32]).unwrap();
        let changes = admission.evidence(
            &1,
            &evidence(&attestor, &nonce, b"key-1", honest()),
            NOW + 2_000,
        );
        assert_eq!(changes, vec![Change::Track(BTreeSet::from([1]))]);
        let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
        assert!(!state.cut_off);
        let again = state.affirming.expect("affirming again");
        assert_ne!(again.0, first.0, "a new appraisal, over a new nonce");
    }

    /// Attack 9 of #12: a node that is not a development node (a TPM node) is handed
    /// DEVELOPMENT evidence by a peer, under a manifest that has a dev section: it cuts the
    /// peer off instead of admitting it.
    #[test]
    fn a_node_that_is_not_a_development_node_refuses_dev_evidence() {
        let (mut admission, attestor) = setup_accepting(false);
        let nonce = admission.challenge(&1, NOW, [1; 32]).unwrap();
        let changes = admission.evidence(&1, &evidence(&attestor, &nonce, b"key-1", honest()), NOW);
        assert_eq!(changes, vec![Change::Block(1)]);
        assert!(admission.admitted(NOW).is_empty());
        let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
        assert!(state
            .last_reasons
            .contains(&"dev-evidence-not-accepted".to_string()));
    }

    #[test]
    fn replayed_nonce_and_garbage_are_refused_and_silence_expires() {
        let (mut admission, attestor) = setup();
        let nonce = admission.challenge(&1, NOW, [1; 32]).unwrap();
        let good = evidence(&attestor, &nonce, b"key-1", honest());
        admission.evidence(&1, &good, NOW);
        assert_eq!(admission.admitted(NOW), BTreeSet::from([1]));
        // Without an outstanding challenge, bytes are ignored (no state change).
        assert!(admission.evidence(&1, &good, NOW + 10).is_empty());
        // Old evidence replayed against a new challenge: its nonce is not the one asked for.
        admission.challenge(&1, NOW + 20, [6; 32]).unwrap();
        assert_eq!(
            admission.evidence(&1, &good, NOW + 20),
            vec![Change::Track(BTreeSet::new()), Change::Block(1)]
        );
        let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
        assert!(state
            .last_reasons
            .contains(&"qualifying-data-mismatch".to_string()));
        let (mut admission, attestor) = setup();
        let nonce = admission.challenge(&1, NOW, [1; 32]).unwrap();
        admission.evidence(&1, &evidence(&attestor, &nonce, b"key-1", honest()), NOW);
        // A silent peer drops out when its appraisal expires.
        let admitted = admission.admitted(NOW);
        assert!(admission.tick(NOW + 2_000, &admitted).is_empty());
        assert_eq!(
            admission.tick(NOW + 3_001, &admitted),
            vec![Change::Track(BTreeSet::new())]
        );
        // Garbage evidence is contraindicated.
        admission.challenge(&2, NOW, [5; 32]).unwrap();
        assert_eq!(
            admission.evidence(&2, b"not evidence", NOW),
            vec![Change::Block(2)]
        );
    }

    #[test]
    fn tpm_peers_must_enroll_and_bad_enrollments_are_refused() {
        let (admission, _) = setup();
        assert!(!admission.needs_enrollment(&1), "dev peers do not enroll");
        let mut admission = admission.with_endorsement_key(1, b"not an EK".to_vec());
        assert!(admission.needs_enrollment(&1));
        assert!(!admission.needs_enrollment(&2));
        let mut rng = rand_core_06::OsRng;
        // Not a TPM peer: nothing to enroll against.
        assert!(matches!(
            admission.begin_enrollment(&2, b"ak", NOW, &mut rng),
            Err(AdmissionError::NotTpmPeer)
        ));
        // A malformed EK or AK is refused, and the reason is kept for the status.
        assert!(matches!(
            admission.begin_enrollment(&1, b"ak", NOW, &mut rng),
            Err(AdmissionError::Enrollment(_))
        ));
        let (_, _, state) = admission.states().find(|(k, _, _)| **k == 1).unwrap();
        assert!(state.last_reasons[0].starts_with("enrollment-failed"));
        // A credential without a pending challenge does not enroll.
        assert!(admission.finish_enrollment(&1, &[0; 32], NOW).is_err());
        assert!(admission.needs_enrollment(&1));
        // Until enrolled, a TPM peer's quote is refused for want of an enrolled AK.
        let nonce = admission.challenge(&1, NOW, [4; 32]).unwrap();
        let quote = serde_json::to_vec(&Evidence::Tpm2Quote(
            bulwark_attest::evidence::TpmEvidence {
                node_key_sha256: HexBytes(node_key_hash(b"key-1")),
                epoch: 0,
                ak_public: vec![1, 2, 3],
                attest: vec![4],
                signature: vec![5],
                pcrs: Default::default(),
                launch_log: Vec::new(),
            },
        ))
        .unwrap();
        admission.evidence(&1, &quote, NOW);
        assert!(admission.admitted(NOW).is_empty());
        let _ = nonce;
    }
}
