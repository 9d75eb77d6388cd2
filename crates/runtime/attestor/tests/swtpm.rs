//! End to end against a real software TPM (swtpm): EK and AK, credential activation with the
//! verifier's pure-Rust MakeCredential, the application PCR, quotes appraised by the verifier, and a
//! secret sealed to PCR values. Skips with a message when swtpm is not installed; CI installs it.
#![cfg(feature = "tpm")]

use bulwark_attest::appraisal::{Appraisal, Status};
use bulwark_attest::evidence::{AppMeasurements, Evidence, TpmEvidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::manifest::{OperatorSet, ReferenceManifest, SignedManifest, TpmReference};
use bulwark_attest::nonce::{node_key_hash, qualifying_data};
use bulwark_attest::tpm::{self, TpmPublic, APP_PCR, BOOT_PCRS};
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

fn measure(device: &mut TpmDevice, m: &AppMeasurements) {
    device.reset_pcr(APP_PCR).expect("PCR 23 resets");
    device
        .extend_pcr(APP_PCR, &[m.binary.0, m.config.0, m.policy.0])
        .expect("extends");
}

fn honest() -> AppMeasurements {
    AppMeasurements::from_contents(b"bulwark node binary", b"config", b"policy")
}

fn operator() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn manifest_for(pcrs: &BTreeMap<u8, [u8; 32]>) -> SignedManifest {
    let mut signed = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "test".into(),
        issued_at_ms: NOW - 1,
        expires_at_ms: NOW + 3_600_000,
        tpm: Some(TpmReference {
            pcrs: pcrs.iter().map(|(i, v)| (*i, vec![HexBytes(*v)])).collect(),
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

fn quote_evidence(device: &mut TpmDevice, qd: &[u8; 32], key_hash: [u8; 32]) -> Evidence {
    let quote = device.quote(qd).expect("quotes");
    Evidence::Tpm2Quote(TpmEvidence {
        node_key_sha256: HexBytes(key_hash),
        epoch: 1,
        ak_public: device.ak_public().expect("AK"),
        attest: quote.attest,
        signature: quote.signature,
        pcrs: quote.pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
    })
}

/// Issues a fresh nonce from `seed`, has `device` quote qualifying data made from `answered` (the
/// fresh nonce when `None`) and `base`'s key hash and epoch, and appraises that quote as the answer to
/// the fresh nonce at `at`, otherwise as `base`.
fn quote_and_appraise(
    v: &mut Verifier,
    device: &mut TpmDevice,
    base: &AppraisalRequest<'_>,
    seed: u8,
    answered: Option<[u8; 32]>,
    at: u64,
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

    // Measured launch into PCR 23, then a quote of PCRs 0-7 + 23 appraised by the verifier.
    measure(&mut device, &honest());
    let mut pcrs_to_quote = BOOT_PCRS.to_vec();
    pcrs_to_quote.push(APP_PCR);
    let reference = device.read_pcrs(&pcrs_to_quote).expect("reads");
    assert_eq!(
        reference[&APP_PCR],
        honest().app_pcr_value(),
        "PCR 23 = simulated extends"
    );
    let manifest = manifest_for(&reference);
    let key_hash = node_key_hash(b"node-1 TLS key");

    let nonce = v.issue_nonce(NOW, [1; 32]).expect("nonce");
    let evidence = quote_evidence(
        &mut device,
        &qualifying_data(&nonce, &key_hash, 1),
        key_hash,
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
    let a = quote_and_appraise(&mut v, &mut device, &request, 2, Some([9; 32]), NOW + 3);
    assert_eq!(a.reasons[0].code, "qualifying-data-mismatch");

    // Tampered binary: PCR 23 differs; the reason names the PCR and both values.
    let evil = AppMeasurements::from_contents(b"tampered binary", b"config", b"policy");
    measure(&mut device, &evil);
    let a = quote_and_appraise(&mut v, &mut device, &request, 3, None, NOW + 4);
    assert_eq!(a.status, Status::Contraindicated);
    let reason = a
        .reasons
        .iter()
        .find(|r| r.code == "pcr-mismatch")
        .expect("PCR reason");
    assert!(reason.detail.contains("PCR 23"));
    assert!(reason.detail.contains(&hex::encode(evil.app_pcr_value())));
    assert!(reason
        .detail
        .contains(&hex::encode(honest().app_pcr_value())));
    drop(device);

    // A second TPM: its AK is foreign to node-1's enrollment.
    let other = start().expect("second swtpm");
    let mut foreign = TpmDevice::open(&other.tcti()).expect("opens");
    measure(&mut foreign, &honest());
    let a = quote_and_appraise(&mut v, &mut foreign, &request, 4, None, NOW + 5);
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
    measure(&mut device, &honest());
    let mut pcrs = BOOT_PCRS.to_vec();
    pcrs.push(APP_PCR);
    let sealed = device.seal(b"consensus share", &pcrs).expect("seals");
    assert_eq!(
        device.unseal(&sealed).expect("unseals").as_slice(),
        b"consensus share"
    );

    // Node restarted from a tampered binary: PCR 23 differs, unseal refused by the TPM.
    measure(
        &mut device,
        &AppMeasurements::from_contents(b"tampered", b"config", b"policy"),
    );
    let error = device.unseal(&sealed).expect_err("policy must fail");
    assert!(
        error.to_string().contains("unsealing") || error.to_string().contains("PolicyPCR"),
        "{error}"
    );

    // Back to the honest measurement: unseals again (no handles leaked along the way).
    measure(&mut device, &honest());
    assert_eq!(
        device.unseal(&sealed).expect("unseals").as_slice(),
        b"consensus share"
    );
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
