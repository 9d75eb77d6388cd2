//! Appraisal of synthetic TPM quotes and dev evidence through the public API (no TPM needed).

use bulwark_attest::appraisal::{SignedAppraisal, Status};
use bulwark_attest::dev::DevAttestor;
use bulwark_attest::evidence::{AppMeasurements, Evidence, TpmEvidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::launch::{launch_events, replay, EventKind, LaunchEvent, LAUNCH_PCR};
use bulwark_attest::manifest::{
    DevReference, LaunchReference, OperatorSet, ReferenceManifest, SignedManifest, TpmReference,
};
use bulwark_attest::nonce::{node_key_hash, qualifying_data};
use bulwark_attest::tpm::{
    pcr_digest, ClockInfo, PcrSelection, PublicKey, QuoteAttest, TpmPublic, TpmSignature,
    AK_ATTRIBUTES, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_SHA256,
};
use bulwark_attest::verifier::{AppraisalRequest, EnrolledAk, Verifier, VerifierConfig};
use ed25519_dalek::SigningKey;
use p256::ecdsa::signature::Signer as _;
use std::collections::BTreeMap;

const NOW: u64 = 1_800_000_000_000;

/// A software stand-in for a TPM's attestation key, producing correctly formed quotes.
struct SoftAk {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
    clock: ClockInfo,
    /// The launch log the node sends with its next quote.
    log: Vec<LaunchEvent>,
}

impl SoftAk {
    fn new(seed: u8) -> Self {
        let key = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).expect("valid scalar");
        let point = key.verifying_key().to_encoded_point(false);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(point.x().expect("uncompressed"));
        y.copy_from_slice(point.y().expect("uncompressed"));
        let public = TpmPublic::encode(
            AK_ATTRIBUTES,
            &[],
            (TPM_ALG_NULL, 0, 0),
            (TPM_ALG_ECDSA, TPM_ALG_SHA256),
            &PublicKey::EccP256 { x, y },
        );
        Self {
            key,
            public,
            clock: ClockInfo {
                clock: 5_000,
                reset_count: 3,
                restart_count: 0,
                safe: true,
            },
            log: launch_events(&honest_measurements()).to_vec(),
        }
    }

    fn quote(
        &mut self,
        pcrs: &BTreeMap<u8, [u8; 32]>,
        extra: [u8; 32],
        epoch: u64,
        key_hash: [u8; 32],
    ) -> Evidence {
        self.clock.clock += 1_000;
        let attest = QuoteAttest {
            qualified_signer: vec![0, 0x0b, 0xaa],
            extra_data: extra.to_vec(),
            clock_info: self.clock,
            firmware_version: 1,
            pcr_selection: vec![PcrSelection {
                hash_alg: TPM_ALG_SHA256,
                pcrs: pcrs.keys().copied().collect(),
            }],
            pcr_digest: pcr_digest(pcrs).to_vec(),
        }
        .to_bytes();
        let signature: p256::ecdsa::Signature = self.key.sign(&attest);
        let bytes = signature.to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Evidence::Tpm2Quote(TpmEvidence {
            node_key_sha256: HexBytes(key_hash),
            epoch,
            ak_public: self.public.clone(),
            attest,
            signature: TpmSignature::Ecdsa { r, s }.to_bytes(),
            pcrs: pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
            launch_log: self.log.clone(),
        })
    }
}

fn operator(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[100 + i; 32])
}

fn operators() -> OperatorSet {
    OperatorSet::new(
        (0..3)
            .map(|i| HexBytes(operator(i).verifying_key().to_bytes()))
            .collect(),
        2,
    )
    .expect("valid")
}

fn honest_pcrs() -> BTreeMap<u8, [u8; 32]> {
    let mut pcrs: BTreeMap<u8, [u8; 32]> = (0..8u8).map(|i| (i, [i + 1; 32])).collect();
    pcrs.insert(LAUNCH_PCR, replay(&launch_events(&honest_measurements())));
    pcrs
}

fn honest_measurements() -> AppMeasurements {
    AppMeasurements::from_contents(b"node binary", b"config", b"policy")
}

fn manifest(expires_at_ms: u64, dev: Option<DevReference>) -> SignedManifest {
    let pcrs = honest_pcrs()
        .into_iter()
        .filter(|(i, _)| *i != LAUNCH_PCR)
        .map(|(i, v)| (i, vec![HexBytes(v)]))
        .collect();
    let launch = LaunchReference::allowing([&honest_measurements()]);
    let mut signed = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "0.1.0".into(),
        issued_at_ms: NOW - 1_000,
        expires_at_ms,
        tpm: Some(TpmReference { pcrs, launch }),
        snp: None,
        tdx: None,
        dev,
    });
    signed.sign_with(&operator(0));
    signed.sign_with(&operator(2));
    signed
}

struct Setup {
    verifier: Verifier,
    ak: SoftAk,
    key_hash: [u8; 32],
    manifest: SignedManifest,
}

fn setup() -> Setup {
    let mut verifier = Verifier::new(
        SigningKey::from_bytes(&[9; 32]),
        operators(),
        VerifierConfig::default(),
    );
    let ak = SoftAk::new(7);
    verifier
        .restore_enrollment(EnrolledAk {
            node_id: "node-1".into(),
            ek_public: ak.public.clone(), // any parseable key: these tests do not activate
            ak_public: ak.public.clone(),
            enrolled_at_ms: NOW,
        })
        .expect("enrolls");
    Setup {
        verifier,
        ak,
        key_hash: node_key_hash(b"node-1 tls key"),
        manifest: manifest(NOW + 3_600_000, None),
    }
}

fn appraise(
    setup: &mut Setup,
    nonce: [u8; 32],
    evidence: &Evidence,
    now: u64,
) -> bulwark_attest::appraisal::Appraisal {
    let signed: SignedAppraisal = setup.verifier.appraise(
        &AppraisalRequest {
            node_id: "node-1",
            node_key_sha256: setup.key_hash,
            epoch: 4,
            nonce,
            evidence,
            manifest: &setup.manifest,
        },
        now,
    );
    signed
        .verify(&setup.verifier.public_key(), now)
        .expect("appraisal signature verifies")
}

fn fresh_quote(setup: &mut Setup, seed: u8, pcrs: &BTreeMap<u8, [u8; 32]>) -> ([u8; 32], Evidence) {
    let nonce = setup.verifier.issue_nonce(NOW, [seed; 32]).expect("nonce");
    let qd = qualifying_data(&nonce, &setup.key_hash, 4);
    let key_hash = setup.key_hash;
    (nonce, setup.ak.quote(pcrs, qd, 4, key_hash))
}

fn codes(a: &bulwark_attest::appraisal::Appraisal) -> Vec<&str> {
    a.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn honest_node_is_affirmed_and_binds_key_and_nonce() {
    let mut s = setup();
    let (nonce, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(a.status, Status::Affirming, "{:?}", a.reasons);
    assert_eq!(a.node_key_sha256.0, s.key_hash);
    assert_eq!(a.nonce.0, nonce);
    assert_eq!(a.expires_at_ms, NOW + 10 + 60_000);
    assert_eq!(a.claims.pcrs.len(), 9);
}

#[test]
fn a_boot_pcr_that_differs_is_named_with_both_values() {
    let mut s = setup();
    let mut pcrs = honest_pcrs();
    pcrs.insert(4, [0xee; 32]);
    let (nonce, evidence) = fresh_quote(&mut s, 1, &pcrs);
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(a.status, Status::Contraindicated);
    let reason = a
        .reasons
        .iter()
        .find(|r| r.code == "pcr-mismatch")
        .expect("pcr reason");
    assert!(reason.detail.contains("PCR 4"), "{}", reason.detail);
    assert!(reason.detail.contains(&hex::encode([0xee; 32])));
    assert!(reason.detail.contains(&hex::encode(honest_pcrs()[&4])));
}

fn tampered() -> AppMeasurements {
    AppMeasurements::from_contents(b"evil binary", b"config", b"policy")
}

/// Quotes `pcrs` with the launch PCR set to what `extended` leaves it at, sending `log`.
fn launch_quote(
    s: &mut Setup,
    seed: u8,
    extended: &[LaunchEvent],
    log: &[LaunchEvent],
) -> bulwark_attest::appraisal::Appraisal {
    let mut pcrs = honest_pcrs();
    pcrs.insert(LAUNCH_PCR, replay(extended));
    s.ak.log = log.to_vec();
    let (nonce, evidence) = fresh_quote(s, seed, &pcrs);
    appraise(s, nonce, &evidence, NOW + 10)
}

#[test]
fn a_tampered_binary_in_the_launch_log_is_named() {
    let mut s = setup();
    let evil = launch_events(&tampered());
    let a = launch_quote(&mut s, 1, &evil, &evil);
    assert_eq!(a.status, Status::Contraindicated);
    let reason = a
        .reasons
        .iter()
        .find(|r| r.code == "launch-event-not-allowed")
        .expect("launch reason");
    assert!(
        reason.detail.contains(&tampered().binary.to_hex()),
        "{}",
        reason.detail
    );
    assert!(reason.detail.contains("Binary"), "{}", reason.detail);
}

#[test]
fn honest_relaunches_are_affirmed_and_a_later_tampered_one_is_not() {
    let mut s = setup();
    let honest = launch_events(&honest_measurements());
    let three: Vec<_> = honest.iter().cycle().take(9).copied().collect();
    let a = launch_quote(&mut s, 1, &three, &three);
    assert_eq!(a.status, Status::Affirming, "{:?}", a.reasons);
    assert_eq!(
        a.claims.app_measurement,
        Some(HexBytes(honest_measurements().app_pcr_value()))
    );
    let then_evil: Vec<_> = honest
        .iter()
        .chain(launch_events(&tampered()).iter())
        .copied()
        .collect();
    let a = launch_quote(&mut s, 2, &then_evil, &then_evil);
    assert_eq!(codes(&a), vec!["launch-event-not-allowed"]);
}

#[test]
fn a_log_that_hides_or_invents_an_event_does_not_replay_to_the_quote() {
    let mut s = setup();
    let honest = launch_events(&honest_measurements());
    let then_evil: Vec<_> = honest
        .iter()
        .chain(launch_events(&tampered()).iter())
        .copied()
        .collect();
    // The tampered launch happened but the node leaves it out of the log it sends.
    let a = launch_quote(&mut s, 1, &then_evil, &honest);
    assert_eq!(codes(&a), vec!["launch-log-mismatch"]);
    // An honest log, but the PCR was extended with one more (unlogged) digest.
    let mut extra = honest.to_vec();
    extra.push(LaunchEvent {
        kind: EventKind::Policy,
        digest: HexBytes([5; 32]),
    });
    let a = launch_quote(&mut s, 2, &extra, &honest);
    assert_eq!(codes(&a), vec!["launch-log-mismatch"]);
}

#[test]
fn a_log_of_the_wrong_shape_or_a_quote_without_the_launch_pcr_is_refused() {
    let mut s = setup();
    let honest = launch_events(&honest_measurements());
    let shuffled = [honest[1], honest[0], honest[2]];
    let a = launch_quote(&mut s, 1, &shuffled, &shuffled);
    assert_eq!(codes(&a), vec!["launch-log-malformed"]);
    let a = launch_quote(&mut s, 2, &[], &[]);
    assert_eq!(codes(&a), vec!["launch-log-malformed"]);
    let mut pcrs = honest_pcrs();
    pcrs.remove(&LAUNCH_PCR);
    s.ak.log = honest.to_vec();
    let (nonce, evidence) = fresh_quote(&mut s, 3, &pcrs);
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), vec!["launch-pcr-not-quoted"]);
}

#[test]
fn replayed_nonce_is_refused() {
    let mut s = setup();
    let (nonce, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    assert_eq!(
        appraise(&mut s, nonce, &evidence, NOW + 10).status,
        Status::Affirming
    );
    let again = appraise(&mut s, nonce, &evidence, NOW + 20);
    assert_eq!(again.status, Status::Contraindicated);
    assert_eq!(codes(&again), ["nonce-replayed"]);
    let never_issued = appraise(&mut s, [0xee; 32], &evidence, NOW + 20);
    assert_eq!(codes(&never_issued), ["nonce-unknown"]);
}

#[test]
fn evidence_moved_to_another_key_or_epoch_is_refused_before_the_signature() {
    let mut s = setup();
    let nonce = s.verifier.issue_nonce(NOW, [1; 32]).expect("nonce");
    // The node quoted for a different TLS key than the one the verifier sees.
    let other_key = node_key_hash(b"attacker tls key");
    let evidence = s.ak.quote(
        &honest_pcrs(),
        qualifying_data(&nonce, &other_key, 4),
        4,
        other_key,
    );
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["qualifying-data-mismatch"]);
    assert!(a.reasons[0]
        .detail
        .contains("wrong nonce, node key or epoch"));
}

#[test]
fn foreign_ak_is_refused() {
    let mut s = setup();
    let nonce = s.verifier.issue_nonce(NOW, [1; 32]).expect("nonce");
    let mut foreign = SoftAk::new(8);
    let evidence = foreign.quote(
        &honest_pcrs(),
        qualifying_data(&nonce, &s.key_hash, 4),
        4,
        s.key_hash,
    );
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["foreign-ak"]);
}

#[test]
fn unenrolled_node_is_refused() {
    let mut s = setup();
    let nonce = s.verifier.issue_nonce(NOW, [1; 32]).expect("nonce");
    let evidence = s.ak.quote(
        &honest_pcrs(),
        qualifying_data(&nonce, &s.key_hash, 4),
        4,
        s.key_hash,
    );
    let signed = s.verifier.appraise(
        &AppraisalRequest {
            node_id: "node-2",
            node_key_sha256: s.key_hash,
            epoch: 4,
            nonce,
            evidence: &evidence,
            manifest: &s.manifest,
        },
        NOW + 10,
    );
    let a = signed
        .verify(&s.verifier.public_key(), NOW + 10)
        .expect("verifies");
    assert_eq!(codes(&a), ["ak-not-enrolled"]);
}

#[test]
fn expired_or_undersigned_manifest_is_refused() {
    let mut s = setup();
    s.manifest = manifest(NOW + 5, None);
    let (nonce, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["manifest-refused"]);
    assert!(a.reasons[0].detail.contains("expired"));

    let mut s = setup();
    s.manifest.signatures.pop();
    let (nonce, evidence) = fresh_quote(&mut s, 2, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert!(
        a.reasons[0].detail.contains("under-signed"),
        "{:?}",
        a.reasons
    );
}

#[test]
fn altered_pcr_values_do_not_match_the_signed_digest() {
    let mut s = setup();
    let (nonce, mut evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    if let Evidence::Tpm2Quote(tpm) = &mut evidence {
        tpm.pcrs.insert(0, HexBytes([0xff; 32]));
    }
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["pcr-digest-mismatch"]);
}

#[test]
fn flipped_signature_byte_is_refused() {
    let mut s = setup();
    let (nonce, mut evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    if let Evidence::Tpm2Quote(tpm) = &mut evidence {
        let last = tpm.signature.len() - 1;
        tpm.signature[last] ^= 1;
    }
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["quote-signature-invalid"]);
}

#[test]
fn counters_must_not_go_backwards_and_reboots_warn() {
    let mut s = setup();
    let (nonce, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    assert_eq!(
        appraise(&mut s, nonce, &evidence, NOW + 10).status,
        Status::Affirming
    );
    s.ak.clock.reset_count += 1;
    s.ak.clock.clock = 0;
    let (nonce, evidence) = fresh_quote(&mut s, 2, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 20);
    assert_eq!(a.status, Status::Warning);
    assert_eq!(codes(&a), ["tpm-reset"]);
    s.ak.clock.reset_count -= 1;
    let (nonce, evidence) = fresh_quote(&mut s, 3, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 30);
    assert_eq!(codes(&a), ["tpm-counters-backwards"]);
}

#[test]
fn dev_evidence_only_with_a_manifest_that_allows_it() {
    let mut s = setup();
    let attestor = DevAttestor::from_secret(&[42; 32]);
    let nonce = s.verifier.issue_nonce(NOW, [1; 32]).expect("nonce");
    let evidence =
        Evidence::DevInsecure(attestor.attest(&nonce, &s.key_hash, 4, honest_measurements()));
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["dev-evidence-not-accepted"]);

    let allowing = manifest(
        NOW + 3_600_000,
        Some(DevReference {
            allow_insecure_dev_evidence: true,
            signer_keys: vec![attestor.public_key()],
            app_measurements: vec![HexBytes(honest_measurements().app_pcr_value())],
        }),
    );
    s.manifest = allowing.clone();
    let nonce = s.verifier.issue_nonce(NOW, [2; 32]).expect("nonce");
    let evidence =
        Evidence::DevInsecure(attestor.attest(&nonce, &s.key_hash, 4, honest_measurements()));
    // A verifier that is not a development node (a TPM node, say) refuses it even so.
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["dev-evidence-not-accepted"]);
    assert_eq!(a.status, Status::Contraindicated);

    s.verifier = Verifier::new(
        SigningKey::from_bytes(&[9; 32]),
        operators(),
        VerifierConfig {
            accept_dev_evidence: true,
            ..VerifierConfig::default()
        },
    );
    // A verifier that accepts dev evidence still needs a manifest that allows it.
    s.manifest = manifest(NOW + 3_600_000, None);
    let nonce = s.verifier.issue_nonce(NOW, [5; 32]).expect("nonce");
    let evidence =
        Evidence::DevInsecure(attestor.attest(&nonce, &s.key_hash, 4, honest_measurements()));
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(codes(&a), ["dev-evidence-not-allowed"]);
    s.manifest = allowing;
    let nonce = s.verifier.issue_nonce(NOW, [2; 32]).expect("nonce");
    let evidence =
        Evidence::DevInsecure(attestor.attest(&nonce, &s.key_hash, 4, honest_measurements()));
    let a = appraise(&mut s, nonce, &evidence, NOW + 10);
    assert_eq!(a.status, Status::Affirming);
    assert!(a.claims.insecure_dev);
    assert_eq!(codes(&a), ["insecure-dev-evidence"]);

    let nonce = s.verifier.issue_nonce(NOW, [3; 32]).expect("nonce");
    let evil = AppMeasurements::from_contents(b"evil", b"config", b"policy");
    let evidence = Evidence::DevInsecure(attestor.attest(&nonce, &s.key_hash, 4, evil));
    assert_eq!(
        codes(&appraise(&mut s, nonce, &evidence, NOW + 10)),
        ["app-measurement-mismatch"]
    );

    let nonce = s.verifier.issue_nonce(NOW, [4; 32]).expect("nonce");
    let stranger = DevAttestor::from_secret(&[43; 32]);
    let evidence =
        Evidence::DevInsecure(stranger.attest(&nonce, &s.key_hash, 4, honest_measurements()));
    assert_eq!(
        codes(&appraise(&mut s, nonce, &evidence, NOW + 10)),
        ["dev-signer-unknown"]
    );
}

#[test]
fn evidence_json_round_trips_and_is_bounded() {
    let mut s = setup();
    let (_, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    let json = serde_json::to_vec(&evidence).expect("serializes");
    assert_eq!(Evidence::from_json(&json).expect("parses"), evidence);
    assert!(Evidence::from_json(&vec![b' '; 70_000]).is_err());
    // A peer's launch log: no more than LAUNCH_EVENTS_MAX events, and only known kinds.
    let Evidence::Tpm2Quote(mut tpm) = evidence else {
        panic!("a TPM quote")
    };
    tpm.launch_log = vec![tpm.launch_log[0]; bulwark_attest::launch::LAUNCH_EVENTS_MAX + 1];
    let json = serde_json::to_vec(&Evidence::Tpm2Quote(tpm)).expect("serializes");
    assert!(matches!(
        Evidence::from_json(&json),
        Err(bulwark_attest::evidence::EvidenceError::TooManyEvents { .. })
    ));
    let text = String::from_utf8(json).expect("JSON text");
    let unknown = text.replacen("\"binary\"", "\"kernel\"", 1);
    assert!(matches!(
        Evidence::from_json(unknown.as_bytes()),
        Err(bulwark_attest::evidence::EvidenceError::Json(_))
    ));
}

#[test]
fn cached_manifest_still_expires_and_altered_copies_are_reverified() {
    let mut s = setup();
    let (nonce, evidence) = fresh_quote(&mut s, 1, &honest_pcrs());
    assert_eq!(
        appraise(&mut s, nonce, &evidence, NOW + 10).status,
        Status::Affirming
    );

    // Same signatures, altered content: a different fingerprint, so signatures are checked again.
    let honest = s.manifest.clone();
    s.manifest.manifest.expires_at_ms += 1;
    let (nonce, evidence) = fresh_quote(&mut s, 2, &honest_pcrs());
    let a = appraise(&mut s, nonce, &evidence, NOW + 20);
    assert_eq!(codes(&a), ["manifest-refused"]);
    assert!(
        a.reasons[0].detail.contains("does not verify"),
        "{:?}",
        a.reasons
    );

    // The cached honest manifest is still refused once expired.
    s.manifest = honest;
    let expired_at = s.manifest.manifest.expires_at_ms;
    let nonce = s.verifier.issue_nonce(expired_at, [3; 32]).expect("nonce");
    let qd = qualifying_data(&nonce, &s.key_hash, 4);
    let key_hash = s.key_hash;
    let evidence = s.ak.quote(&honest_pcrs(), qd, 4, key_hash);
    let a = appraise(&mut s, nonce, &evidence, expired_at);
    assert_eq!(codes(&a), ["manifest-refused"]);
    assert!(a.reasons[0].detail.contains("expired"));
}
