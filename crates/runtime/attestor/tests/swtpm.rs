//! End to end against a real software TPM (swtpm): EK and AK, credential activation with the
//! verifier's pure-Rust MakeCredential, measured launch into the launch PCR with its log, quotes
//! appraised by the verifier, secrets sealed to the launches to come, and a tampered binary that
//! tries every reset and extend sequence to pass as honest. Skips with a message when swtpm is not
//! installed; CI installs it.
#![cfg(feature = "tpm")]

use bulwark_attest::appraisal::{Appraisal, Status};
use bulwark_attest::evidence::{AppMeasurements, Evidence, TpmEvidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::launch::{self, launch_events, LaunchEvent, LAUNCH_PCR};
use bulwark_attest::manifest::{
    LaunchReference, OperatorSet, ReferenceManifest, SignedManifest, TpmReference,
};
use bulwark_attest::nonce::{node_key_hash, qualifying_data};
use bulwark_attest::tpm::{self, TpmPublic, BOOT_PCRS};
use bulwark_attest::verifier::{AppraisalRequest, Verifier, VerifierConfig};
use bulwark_attestor::device::TpmDevice;
use bulwark_testkit::swtpm::{self, SoftwareTpm};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;

const NOW: u64 = 1_800_000_000_000;

fn start() -> Option<SoftwareTpm> {
    if !swtpm::installed() {
        println!(
            "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools); CI installs it"
        );
        return None;
    }
    Some(SoftwareTpm::start().expect("swtpm starts"))
}

/// A launcher: logs and extends `m` into the launch PCR.
fn measure(device: &mut TpmDevice, log: &mut Vec<LaunchEvent>, m: &AppMeasurements) {
    let events = launch_events(m);
    device
        .extend_pcr(LAUNCH_PCR, &events.map(|e| e.digest.0))
        .expect("extends");
    log.extend(events);
}

fn evil() -> AppMeasurements {
    AppMeasurements::from_contents(b"tampered binary", b"config", b"policy")
}

fn honest() -> AppMeasurements {
    AppMeasurements::from_contents(b"bulwark node binary", b"config", b"policy")
}

fn operator() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

/// A manifest allowing the boot PCRs in `pcrs` and the honest launch.
fn manifest_for(pcrs: &BTreeMap<u8, [u8; 32]>) -> SignedManifest {
    let mut signed = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "test".into(),
        issued_at_ms: NOW - 1,
        expires_at_ms: NOW + 3_600_000,
        tpm: Some(TpmReference {
            pcrs: pcrs
                .iter()
                .filter(|(i, _)| BOOT_PCRS.contains(i))
                .map(|(i, v)| (*i, vec![HexBytes(*v)]))
                .collect(),
            launch: LaunchReference::allowing([&honest()]),
        }),
        snp: None,
        tdx: None,
        dev: None,
    });
    signed.sign_with(&operator());
    signed
}

fn verifier() -> Verifier {
    Verifier::new(
        SigningKey::from_bytes(&[2; 32]),
        OperatorSet::new(vec![HexBytes(operator().verifying_key().to_bytes())], 1).expect("set"),
        VerifierConfig::default(),
    )
}

fn quote_evidence(
    device: &mut TpmDevice,
    qd: &[u8; 32],
    key_hash: [u8; 32],
    log: &[LaunchEvent],
) -> Evidence {
    let quote = device.quote(qd).expect("quotes");
    Evidence::Tpm2Quote(TpmEvidence {
        node_key_sha256: HexBytes(key_hash),
        epoch: 1,
        ak_public: device.ak_public().expect("AK"),
        attest: quote.attest,
        signature: quote.signature,
        pcrs: quote.pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
        launch_log: log.to_vec(),
    })
}

/// Issues a fresh nonce from `seed`, has `device` quote qualifying data made from `answered` (the
/// fresh nonce when `None`) and `base`'s key hash and epoch, sending `log`, and appraises that
/// quote as the answer to the fresh nonce at `at`, otherwise as `base`.
#[allow(clippy::too_many_arguments)]
fn quote_and_appraise(
    v: &mut Verifier,
    device: &mut TpmDevice,
    base: &AppraisalRequest<'_>,
    seed: u8,
    answered: Option<[u8; 32]>,
    at: u64,
    log: &[LaunchEvent],
) -> Appraisal {
    let nonce = v.issue_nonce(NOW, [seed; 32]).expect("nonce");
    let evidence = quote_evidence(
        device,
        &qualifying_data(
            &answered.unwrap_or(nonce),
            &base.node_key_sha256,
            base.epoch,
        ),
        base.node_key_sha256,
        log,
    );
    v.appraise(
        &AppraisalRequest {
            nonce,
            evidence: &evidence,
            ..base.clone()
        },
        at,
    )
    .verify(&v.public_key(), at)
    .expect("signed")
}

#[test]
fn swtpm_enroll_quote_appraise_tamper_and_foreign_ak() {
    let Some(soft) = start() else { return };
    let mut device = TpmDevice::open(&soft.tcti()).expect("opens");
    let mut rng = rand_core::OsRng;

    // Enrollment: the verifier wraps a credential to the EK for the AK's name, in pure Rust.
    let ek = device.ek_public().expect("EK");
    let ak = device.ak_public().expect("AK");
    let parsed_ak = TpmPublic::parse(&ak).expect("AK parses");
    parsed_ak.check_attestation_key().expect("AK attributes");
    let mut v = verifier();
    let challenge = v
        .begin_enrollment("node-1", &ek, &ak, NOW, &mut rng)
        .expect("challenge");
    let credential = device
        .activate_credential(&challenge)
        .expect("TPM activates");
    v.finish_enrollment("node-1", &credential, NOW)
        .expect("enrolled");

    // A credential made for another object's name does not activate for our AK.
    let mut other_name = parsed_ak.name();
    other_name[5] ^= 1;
    let wrong = tpm::make_credential(
        &TpmPublic::parse(&ek).expect("EK parses"),
        &other_name,
        &[7; 32],
        &mut rng,
    )
    .expect("wraps");
    assert!(
        device.activate_credential(&wrong).is_err(),
        "bound to the AK name"
    );

    // Measured launch into the launch PCR, then a quote of PCRs 0-7 + 15 appraised with its log.
    let mut log = Vec::new();
    measure(&mut device, &mut log, &honest());
    let mut pcrs_to_quote = BOOT_PCRS.to_vec();
    pcrs_to_quote.push(LAUNCH_PCR);
    let reference = device.read_pcrs(&pcrs_to_quote).expect("reads");
    assert_eq!(
        reference[&LAUNCH_PCR],
        launch::replay(&log),
        "the launch PCR = the log replayed"
    );
    let manifest = manifest_for(&reference);
    let key_hash = node_key_hash(b"node-1 TLS key");

    let nonce = v.issue_nonce(NOW, [1; 32]).expect("nonce");
    let evidence = quote_evidence(
        &mut device,
        &qualifying_data(&nonce, &key_hash, 1),
        key_hash,
        &log,
    );
    let request = AppraisalRequest {
        node_id: "node-1",
        node_key_sha256: key_hash,
        epoch: 1,
        nonce,
        evidence: &evidence,
        manifest: &manifest,
    };
    let a = v
        .appraise(&request, NOW + 1)
        .verify(&v.public_key(), NOW + 1)
        .expect("signed");
    assert_eq!(a.status, Status::Affirming, "{:?}", a.reasons);

    // Replay of the same evidence and nonce.
    let a = v
        .appraise(&request, NOW + 2)
        .verify(&v.public_key(), NOW + 2)
        .expect("signed");
    assert_eq!(a.reasons[0].code, "nonce-replayed");

    // Wrong nonce on a real quote: reported as a qualifying-data mismatch, not a bad signature.
    let a = quote_and_appraise(
        &mut v,
        &mut device,
        &request,
        2,
        Some([9; 32]),
        NOW + 3,
        &log,
    );
    assert_eq!(a.reasons[0].code, "qualifying-data-mismatch");

    // The launcher starts a tampered binary: its digest is in the log and named.
    measure(&mut device, &mut log, &evil());
    let a = quote_and_appraise(&mut v, &mut device, &request, 3, None, NOW + 4, &log);
    assert_eq!(a.status, Status::Contraindicated);
    let reason = a
        .reasons
        .iter()
        .find(|r| r.code == "launch-event-not-allowed")
        .expect("launch reason");
    assert!(
        reason.detail.contains(&evil().binary.to_hex()),
        "{}",
        reason.detail
    );
    drop(device);

    // A second TPM: its AK is foreign to node-1's enrollment.
    let other = start().expect("second swtpm");
    let mut foreign = TpmDevice::open(&other.tcti()).expect("opens");
    let mut foreign_log = Vec::new();
    measure(&mut foreign, &mut foreign_log, &honest());
    let a = quote_and_appraise(
        &mut v,
        &mut foreign,
        &request,
        4,
        None,
        NOW + 5,
        &foreign_log,
    );
    assert_eq!(a.reasons[0].code, "foreign-ak");

    // And the foreign TPM cannot answer a challenge made for node-1's EK.
    let challenge = v
        .begin_enrollment(
            "node-1",
            &ek,
            &foreign.ak_public().expect("AK"),
            NOW,
            &mut rng,
        )
        .expect("challenge");
    assert!(foreign.activate_credential(&challenge).is_err());
}

#[test]
fn swtpm_sealed_secret_unseals_only_under_the_measured_pcrs() {
    let Some(soft) = start() else { return };
    let mut device = TpmDevice::open(&soft.tcti()).expect("opens");
    let mut pcrs = BOOT_PCRS.to_vec();
    pcrs.push(LAUNCH_PCR);
    let sealed = device.seal(b"boot only", &BOOT_PCRS).expect("seals");
    assert!(
        sealed.branches.is_empty(),
        "one set of values: a plain PolicyPCR"
    );
    assert_eq!(
        device.unseal(&sealed).expect("unseals").as_slice(),
        b"boot only"
    );

    // Sealed to this launch and the next two honest ones (PolicyOR of three PolicyPCRs).
    let mut log = Vec::new();
    measure(&mut device, &mut log, &honest());
    let boot = device.read_pcrs(&BOOT_PCRS).expect("reads");
    let allowed: Vec<_> = launch::predicted(&log, &honest(), 3)
        .into_iter()
        .map(|value| {
            let mut set = boot.clone();
            set.insert(LAUNCH_PCR, value);
            set
        })
        .collect();
    let sealed = device.seal_to(b"consensus share", &allowed).expect("seals");
    assert_eq!(sealed.branches.len(), 3);
    for launch in 1..=3 {
        assert_eq!(
            device.unseal(&sealed).expect("unseals").as_slice(),
            b"consensus share",
            "honest launch {launch}"
        );
        measure(&mut device, &mut log, &honest());
    }
    // A fourth honest launch is beyond what was sealed for: refused (the node re-seals at every
    // start, so it never gets here).
    let error = device.unseal(&sealed).expect_err("beyond the window");
    assert!(error.to_string().contains("PolicyOR"), "{error}");
}

#[test]
fn swtpm_ek_certificate_chains_to_its_manufacturer_and_certifies_only_its_ek() {
    let (Some(soft), Some(other)) = (start(), start()) else {
        return;
    };
    let mut device = TpmDevice::open(&soft.tcti()).expect("opens");
    let ek = TpmPublic::parse(&device.ek_public().expect("EK")).expect("EK parses");
    let cert = device
        .ek_certificate(tpm::EK_CERT_NV_RSA)
        .expect("swtpm_setup stored an EK certificate");
    let anchors = tpm::EkAnchors::from_pem(&soft.ek_ca_pem().expect("CA")).expect("CA parses");
    let now = 1_800_000_000;
    let issuer = tpm::verify_ek_certificate(&cert, &ek, &anchors, now).expect("certified");
    assert!(issuer.contains("swtpm-localca"), "{issuer}");

    // Another TPM's EK is not what this certificate certifies.
    let mut other_device = TpmDevice::open(&other.tcti()).expect("opens");
    let other_ek = TpmPublic::parse(&other_device.ek_public().expect("EK")).expect("EK parses");
    assert_eq!(
        tpm::verify_ek_certificate(&cert, &other_ek, &anchors, now),
        Err(tpm::EkCertError::KeyMismatch)
    );
    // Another manufacturer's CA (the other TPM's local CA, with the same name) does not
    // verify it.
    let foreign = tpm::EkAnchors::from_pem(&other.ek_ca_pem().expect("CA")).expect("CA parses");
    assert!(matches!(
        tpm::verify_ek_certificate(&cert, &ek, &foreign, now),
        Err(tpm::EkCertError::BadSignature { .. })
    ));
    // Before the certificate was issued.
    assert!(matches!(
        tpm::verify_ek_certificate(&cert, &ek, &anchors, 1_000_000_000),
        Err(tpm::EkCertError::Expired { .. })
    ));
    // Any flipped byte is refused: it no longer parses, or its signature or key fails.
    for at in (0..cert.len()).step_by(7) {
        let mut bad = cert.clone();
        bad[at] ^= 0x01;
        assert!(
            tpm::verify_ek_certificate(&bad, &ek, &anchors, now).is_err(),
            "a flip at byte {at} was accepted"
        );
    }
}

/// What an honest launch may leave in the launch PCR after `log` (the node's window).
fn honest_values(log: &[LaunchEvent]) -> Vec<[u8; 32]> {
    launch::predicted(
        log,
        &honest(),
        bulwark_attestor::launch::SEAL_LAUNCHES_AHEAD,
    )
}

/// Attack 4: the launcher measured a tampered binary, which then runs as root with the TPM to
/// itself. It knows the honest digests and tries every reset (at every locality), a TPM restart,
/// and every sequence of up to three honest extensions. None brings the launch PCR back: the
/// node's sealed secret stays shut and the verifier refuses every quote, with the true log or a
/// forged one.
#[test]
fn swtpm_a_tampered_binary_cannot_forge_its_measured_launch() {
    let Some(soft) = start() else { return };
    let dir = std::env::temp_dir().join(format!("bulwark-forged-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log_path = dir.join("launch.log");
    let mut rng = rand_core::OsRng;

    // The honest node: launched, its secret sealed, launched again (it still opens).
    let mut node = bulwark_attestor::launch::NodeTpm::open(&soft.tcti()).expect("opens");
    let log = node.launch(&log_path, &honest()).expect("launches");
    let sealed = node
        .seal_for_launches(b"node key", &log, &honest())
        .expect("seals");
    let honest_log = node.launch(&log_path, &honest()).expect("relaunches");
    assert_eq!(honest_log.len(), 6);
    assert_eq!(node.unseal(&sealed).expect("opens").as_slice(), b"node key");
    // Then the launcher starts a tampered binary, and the secret no longer opens.
    let log = node.launch(&log_path, &evil()).expect("launches");
    assert!(matches!(
        node.unseal(&sealed),
        Err(bulwark_attestor::launch::LaunchError::Unseal(_))
    ));
    assert_eq!(
        bulwark_attestor::launch::read_log(&log_path).expect("log"),
        log
    );
    drop(node);

    // The verifier enrolled this TPM's AK and allows the honest launch.
    let mut device = TpmDevice::open(&soft.tcti()).expect("opens");
    let mut v = verifier();
    let challenge = v
        .begin_enrollment(
            "node-1",
            &device.ek_public().expect("EK"),
            &device.ak_public().expect("AK"),
            NOW,
            &mut rng,
        )
        .expect("challenge");
    let credential = device.activate_credential(&challenge).expect("activates");
    v.finish_enrollment("node-1", &credential, NOW)
        .expect("enrolled");
    let mut quoted = BOOT_PCRS.to_vec();
    quoted.push(LAUNCH_PCR);
    let manifest = manifest_for(&device.read_pcrs(&quoted).expect("reads"));
    let key_hash = node_key_hash(b"node-1 TLS key");
    let placeholder = Evidence::Tpm2Quote(TpmEvidence {
        node_key_sha256: HexBytes(key_hash),
        epoch: 1,
        ak_public: Vec::new(),
        attest: Vec::new(),
        signature: Vec::new(),
        pcrs: BTreeMap::new(),
        launch_log: Vec::new(),
    });
    let request = AppraisalRequest {
        node_id: "node-1",
        node_key_sha256: key_hash,
        epoch: 1,
        nonce: [0; 32],
        evidence: &placeholder,
        manifest: &manifest,
    };
    let honest_window = honest_values(&honest_log[..3]);

    // Its quote now, with the true log, names the tampered binary; with the honest log, the
    // replay does not reach the quoted value.
    let a = quote_and_appraise(&mut v, &mut device, &request, 1, None, NOW + 5, &log);
    assert_eq!(a.status, Status::Contraindicated);
    assert!(
        a.reasons
            .iter()
            .any(|r| r.code == "launch-event-not-allowed"),
        "{:?}",
        a.reasons
    );
    let a = quote_and_appraise(&mut v, &mut device, &request, 2, None, NOW + 5, &honest_log);
    assert!(
        a.reasons.iter().any(|r| r.code == "launch-log-mismatch"),
        "{:?}",
        a.reasons
    );

    // 1. Reset the launch PCR, at every locality: the TPM refuses each. (PCR 23 resets at
    //    locality 0, so the resets were really tried.)
    for locality in 0..=4 {
        soft.set_locality(locality).expect("locality");
        assert!(
            device.reset_pcr(LAUNCH_PCR).is_err(),
            "PCR {LAUNCH_PCR} reset at locality {locality}"
        );
    }
    soft.set_locality(0).expect("locality");
    device.reset_pcr(23).expect("PCR 23 resets from locality 0");
    // 2. Restart the TPM from software. The TPM answers TPM_RC_INITIALIZE without a platform
    //    reset (which ESYS reports as success): what matters is that the PCR did not move.
    let _ = device.startup_clear();
    let after_tamper = device.read_pcrs(&[LAUNCH_PCR]).expect("reads")[&LAUNCH_PCR];
    assert_eq!(
        after_tamper,
        launch::replay(&log),
        "nothing above moved the PCR"
    );

    // 3. Every sequence of one to three honest extensions, each on top of what came before.
    let digests = launch_events(&honest()).map(|e| e.digest.0);
    let sequences = bulwark_testkit::extension_sequences(&digests, 3);
    assert_eq!(sequences.len(), 39);
    let mut seed = 10u8;
    for (tried, sequence) in sequences.iter().enumerate() {
        device.extend_pcr(LAUNCH_PCR, sequence).expect("extends");
        let value = device.read_pcrs(&[LAUNCH_PCR]).expect("reads")[&LAUNCH_PCR];
        assert!(
            !honest_window.contains(&value) && value != launch::replay(&honest_log),
            "sequence {tried} brought the launch PCR back to an honest value"
        );
        // Quote, claiming the honest log (a forgery) and the log of one launch (a bigger one).
        for claimed in [&honest_log[..], &honest_log[..3]] {
            seed = seed.wrapping_add(1);
            let a =
                quote_and_appraise(&mut v, &mut device, &request, seed, None, NOW + 10, claimed);
            assert_eq!(a.status, Status::Contraindicated, "sequence {tried}");
            assert!(
                a.reasons.iter().any(|r| r.code == "launch-log-mismatch"),
                "sequence {tried}: {:?}",
                a.reasons
            );
        }
        // The secret, tried after each length of sequence (an unseal takes a storage key).
        if tried < 3 || tried == sequences.len() - 1 {
            let blob = sealed.sealed_secret();
            assert!(device.unseal(&blob).is_err(), "sequence {tried} unsealed");
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// A launcher that died between its extends (the log holds the whole launch, the PCR only its
/// binary) leaves a launch the next start completes rather than a log no verifier accepts.
#[test]
fn swtpm_a_launch_cut_short_is_completed_from_its_log() {
    let Some(soft) = start() else { return };
    let dir = std::env::temp_dir().join(format!("bulwark-cut-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log_path = dir.join("launch.log");
    let events = launch_events(&honest());
    bulwark_attestor::launch::write_log(&log_path, &events).expect("log written");
    {
        let mut device = TpmDevice::open(&soft.tcti()).expect("opens");
        device
            .extend_pcr(LAUNCH_PCR, &[events[0].digest.0])
            .expect("extends");
    }
    let mut node = bulwark_attestor::launch::NodeTpm::open(&soft.tcti()).expect("opens");
    let log = node.current_log(&log_path).expect("reconciled");
    assert_eq!(log, events.to_vec());
    assert_eq!(node.launch_pcr().expect("reads"), launch::replay(&events));
    assert!(launch::check_shape(&log).is_ok());
    // And the next launch goes on from a whole one.
    let stale = log;
    let mut log = node.launch(&log_path, &honest()).expect("launches");
    assert_eq!(log.len(), 6);
    assert_eq!(node.launch_pcr().expect("reads"), launch::replay(&log));
    // A node still holding the log from before that launch may not extend it: its view of what
    // was measured is stale.
    let change = [launch::LaunchEvent {
        kind: launch::EventKind::Policy,
        digest: HexBytes([5; 32]),
    }];
    let mut stale = stale;
    assert!(matches!(
        node.extend_logged(&log_path, &mut stale, &change),
        Err(bulwark_attestor::launch::LaunchError::Log { .. })
    ));
    node.extend_logged(&log_path, &mut log, &change)
        .expect("the current log extends");
    assert_eq!(node.launch_pcr().expect("reads"), launch::replay(&log));
    drop(node);
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
