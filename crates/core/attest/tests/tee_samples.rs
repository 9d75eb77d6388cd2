//! Real SEV-SNP reports and TDX quotes (public samples in ../shared/data/attestation-evidence, see its
//! README for their sources): they verify to the vendor roots at their date and are refused when any
//! byte is flipped or the date is wrong. Skipped with a message when the samples are absent.

use bulwark_attest::tee::snp::{vcek_binding, verify_snp_report, SnpError};
use bulwark_attest::tee::tdx::verify_tdx_quote;
use bulwark_attest::time::parse_time_ms;
use std::path::PathBuf;

fn samples() -> Option<PathBuf> {
    // The repository root's parent holds shared/ (…/main/crates/core/attest → …/shared).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/data/attestation-evidence");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: attestation samples not found at {}",
            dir.display()
        );
        None
    }
}

fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect("sample readable")
}

fn at(text: &str) -> u64 {
    parse_time_ms(text).expect("valid time")
}

fn check_snp(report: &[u8], vcek: &[u8]) {
    // Inside the VCEK's validity (2023 → 2030).
    let now = at("2025-06-01T00:00:00Z");
    let claims = verify_snp_report(report, vcek, None, now).expect("real report verifies");
    assert!(!claims.measurement.iter().all(|b| *b == 0));
    // The VCEK certifies exactly the report's REPORTED_TCB, for the report's chip.
    let x509: x509_cert::Certificate =
        <x509_cert::Certificate as x509_cert::der::Decode>::from_der(vcek).expect("VCEK parses");
    let binding = vcek_binding(&x509, claims.product).expect("AMD extensions");
    assert_eq!(binding.tcb[..], report[0x180..0x188]);
    assert_eq!(binding.hw_id[..], claims.chip_id[..]);
    // The other sample's VCEK (another chip) does not vouch for this report.
    for other in ["vcek_milan.der", "trustee-snp-vcek.der"] {
        let Some(dir) = samples() else { return };
        let other = read(&dir, other);
        if other != vcek {
            assert!(verify_snp_report(report, &other, None, now).is_err());
        }
    }
    assert!(matches!(
        verify_snp_report(report, vcek, None, at("2031-01-01T00:00:00Z")),
        Err(SnpError::CertificateTime { .. })
    ));
    for offset in 0..report.len() {
        let mut flipped = report.to_vec();
        flipped[offset] ^= 0x01;
        assert!(
            verify_snp_report(&flipped, vcek, None, now).is_err(),
            "flipped report byte {offset:#x} accepted"
        );
    }
    // Every byte of the VCEK: its extensions bind it to the report, and bytes its signature does
    // not cover (the outer signature algorithm, the bit string's unused bits) must be canonical.
    for offset in 0..vcek.len() {
        let mut flipped = vcek.to_vec();
        flipped[offset] ^= 0x01;
        assert!(
            verify_snp_report(report, &flipped, None, now).is_err(),
            "flipped VCEK byte {offset} accepted"
        );
    }
    assert!(matches!(
        verify_snp_report(&report[1..], vcek, None, now),
        Err(SnpError::Length(_))
    ));
}

#[test]
fn snp_milan_sample_verifies_and_tampering_is_refused() {
    let Some(dir) = samples() else { return };
    let text = String::from_utf8(read(&dir, "report_milan.hex")).expect("hex text");
    let report = hex::decode(text.trim()).expect("hex");
    let vcek = read(&dir, "vcek_milan.der");
    let claims =
        verify_snp_report(&report, &vcek, None, at("2025-06-01T00:00:00Z")).expect("verifies");
    assert_eq!(claims.product, "milan");
    assert!(!claims.debug_allowed);
    check_snp(&report, &vcek);
}

#[test]
fn snp_trustee_sample_verifies_and_tampering_is_refused() {
    let Some(dir) = samples() else { return };
    check_snp(
        &read(&dir, "trustee-snp-report.bin"),
        &read(&dir, "trustee-snp-vcek.der"),
    );
}

#[test]
fn snp_report_with_another_vcek_is_refused() {
    let Some(dir) = samples() else { return };
    let text = String::from_utf8(read(&dir, "report_milan.hex")).expect("hex text");
    let report = hex::decode(text.trim()).expect("hex");
    let other = read(&dir, "trustee-snp-vcek.der");
    assert!(matches!(
        verify_snp_report(&report, &other, None, at("2025-06-01T00:00:00Z")),
        Err(SnpError::Signature)
    ));
}

#[test]
fn tdx_sample_verifies_at_its_date_and_tampering_is_refused() {
    // Every byte counts: the signed parts by signature, the outer structure by exact lengths and types,
    // the embedded PCK chain (including the root copy dcap-qvl does not use) by canonical PEM and
    // certificate signatures.
    let Some(dir) = samples() else { return };
    let quote = read(&dir, "tdx_quote");
    let collateral = read(&dir, "tdx_quote_collateral.json");
    // The collateral was issued 2025-06-19 (TCB info 10:16:03Z, QE identity 10:32:27Z).
    let issued = at("2025-06-19T11:00:00Z");
    let claims = verify_tdx_quote(&quote, &collateral, issued).expect("real quote verifies");
    assert_eq!(claims.tcb_status, "UpToDate", "{claims:?}");
    assert!(!claims.mr_td.iter().all(|b| *b == 0));
    assert!(
        verify_tdx_quote(&quote, &collateral, issued + 400 * 86_400_000).is_err(),
        "refused 400 days later"
    );
    for offset in 0..quote.len() {
        let mut flipped = quote.clone();
        flipped[offset] ^= 0x01;
        assert!(
            verify_tdx_quote(&flipped, &collateral, issued).is_err(),
            "flipped quote byte {offset} accepted"
        );
    }
    // Every byte of the collateral too: the issuer chains dcap-qvl does not read (the PCK CRL's,
    // the root copies), the hex case, the field names.
    for offset in 0..collateral.len() {
        let mut flipped = collateral.clone();
        flipped[offset] ^= 0x01;
        assert!(
            verify_tdx_quote(&quote, &flipped, issued).is_err(),
            "flipped collateral byte {offset} ({:?}) accepted",
            collateral[offset] as char
        );
    }
    // A PCK chain in the collateral would replace the quote's own: refused.
    let mut value: serde_json::Value = serde_json::from_slice(&collateral).expect("JSON");
    value["pck_certificate_chain"] = value["pck_crl_issuer_chain"].clone();
    let extra = serde_json::to_vec(&value).expect("JSON");
    assert!(verify_tdx_quote(&quote, &extra, issued).is_err());
    // The same collateral re-serialized (as evidence carries it) still verifies.
    let mut value: serde_json::Value = serde_json::from_slice(&collateral).expect("JSON");
    value
        .as_object_mut()
        .expect("object")
        .remove("pck_certificate_chain");
    let again = serde_json::to_vec(&value).expect("JSON");
    verify_tdx_quote(&quote, &again, issued).expect("re-serialized collateral verifies");
}

mod appraisal {
    use super::*;
    use bulwark_attest::appraisal::{Appraisal, Status};
    use bulwark_attest::evidence::{Evidence, SnpEvidence, TdxEvidence};
    use bulwark_attest::hexbytes::HexBytes;
    use bulwark_attest::manifest::{
        OperatorSet, ReferenceManifest, SignedManifest, SnpReference, SnpTcb, TdxReference,
    };
    use bulwark_attest::verifier::{AppraisalRequest, Verifier, VerifierConfig};
    use ed25519_dalek::SigningKey;
    use std::collections::BTreeMap;

    fn appraise(evidence: &Evidence, manifest: ReferenceManifest, now: u64) -> Appraisal {
        let operator = SigningKey::from_bytes(&[1; 32]);
        let mut signed = SignedManifest::unsigned(manifest);
        signed.sign_with(&operator);
        let mut verifier = Verifier::new(
            SigningKey::from_bytes(&[2; 32]),
            OperatorSet::new(vec![HexBytes(operator.verifying_key().to_bytes())], 1).expect("set"),
            VerifierConfig::default(),
        );
        let nonce = verifier.issue_nonce(now, [3; 32]).expect("nonce");
        verifier
            .appraise(
                &AppraisalRequest {
                    node_id: "tee-node",
                    node_key_sha256: [4; 32],
                    epoch: 1,
                    nonce,
                    evidence,
                    manifest: &signed,
                },
                now,
            )
            .verify(&verifier.public_key(), now)
            .expect("signed")
    }

    fn manifest(now: u64) -> ReferenceManifest {
        ReferenceManifest {
            role: "committee".into(),
            release: "sample".into(),
            issued_at_ms: now - 1,
            expires_at_ms: now + 60_000,
            tpm: None,
            snp: None,
            tdx: None,
            dev: None,
        }
    }

    fn codes(a: &Appraisal) -> Vec<&str> {
        a.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn real_snp_report_appraises_all_but_freshness() {
        let Some(dir) = samples() else { return };
        let text = String::from_utf8(read(&dir, "report_milan.hex")).expect("hex text");
        let report = hex::decode(text.trim()).expect("hex");
        let now = at("2025-06-01T00:00:00Z");
        let claims =
            verify_snp_report(&report, &read(&dir, "vcek_milan.der"), None, now).expect("ok");
        let evidence = Evidence::SevSnp(SnpEvidence {
            report: report.clone(),
            vcek: read(&dir, "vcek_milan.der"),
            crl: Vec::new(),
        });
        let mut m = manifest(now);
        m.snp = Some(SnpReference {
            measurements: vec![HexBytes(claims.measurement)],
            min_tcb: SnpTcb {
                bootloader: claims.reported_tcb.bootloader,
                tee: claims.reported_tcb.tee,
                snp: claims.reported_tcb.snp,
                microcode: claims.reported_tcb.microcode,
            },
        });
        // The sample's report_data was not made for our nonce, and it came without AMD's CRL:
        // those are the only reasons.
        let a = appraise(&evidence, m.clone(), now);
        assert_eq!(codes(&a), ["snp-crl-missing", "qualifying-data-mismatch"]);
        assert_eq!(a.claims.tee_product.as_deref(), Some("milan"));
        // A CRL under the real ARK's name that AMD did not sign is refused by name.
        let ark = bulwark_attest::tee::snp::ark_subject("milan").expect("built-in ARK");
        let mut forged = evidence.clone();
        if let Evidence::SevSnp(snp) = &mut forged {
            snp.crl = bulwark_testkit::crl::TestCrl::current(ark, now / 1_000).der();
        }
        assert_eq!(
            codes(&appraise(&forged, m.clone(), now)),
            ["snp-crl-refused"]
        );

        let mut stricter = m.clone();
        if let Some(snp) = &mut stricter.snp {
            snp.measurements = vec![HexBytes([0; 48])];
            snp.min_tcb.snp = snp.min_tcb.snp.saturating_add(1);
        }
        let a = appraise(&evidence, stricter, now);
        assert_eq!(a.status, Status::Contraindicated);
        assert!(codes(&a).contains(&"snp-measurement-mismatch"));
        assert!(codes(&a).contains(&"snp-tcb-too-low"));

        let mut flipped = report;
        flipped[0x90] ^= 1;
        let evidence = Evidence::SevSnp(SnpEvidence {
            report: flipped,
            vcek: read(&dir, "vcek_milan.der"),
            crl: Vec::new(),
        });
        assert_eq!(
            codes(&appraise(&evidence, m, now)),
            ["snp-verification-failed"]
        );
    }

    #[test]
    fn real_tdx_quote_appraises_all_but_freshness() {
        let Some(dir) = samples() else { return };
        let quote = read(&dir, "tdx_quote");
        let collateral = read(&dir, "tdx_quote_collateral.json");
        let now = at("2025-06-19T11:00:00Z");
        let claims = verify_tdx_quote(&quote, &collateral, now).expect("ok");
        let evidence = Evidence::Tdx(TdxEvidence {
            quote: quote.clone(),
            collateral: serde_json::from_slice(&collateral).expect("json"),
        });
        let mut m = manifest(now);
        m.tdx = Some(TdxReference {
            mrtd: vec![HexBytes(claims.mr_td)],
            rtmrs: BTreeMap::from([(0, vec![HexBytes(claims.rtmrs[0])])]),
            min_tee_tcb_svn: HexBytes(claims.tee_tcb_svn),
        });
        let a = appraise(&evidence, m.clone(), now);
        assert_eq!(codes(&a), ["qualifying-data-mismatch"]);

        let later = now + 400 * 86_400_000;
        let mut m_later = m.clone();
        m_later.issued_at_ms = later - 1;
        m_later.expires_at_ms = later + 1;
        assert_eq!(
            codes(&appraise(&evidence, m_later, later)),
            ["tdx-verification-failed"]
        );

        let mut wrong = m;
        if let Some(tdx) = &mut wrong.tdx {
            tdx.rtmrs.insert(0, vec![HexBytes([9; 48])]);
        }
        assert!(codes(&appraise(&evidence, wrong, now)).contains(&"tdx-rtmr-mismatch"));
    }
}
