//! AMD CRL checks for SEV-SNP: a CRL must come from the chain's ARK, be current and canonical,
//! and must not list the ASK or the VCEK. AMD's ARK key is not ours, so the revocation itself is
//! played with test keys through `check_crl`; the real chain (recorded samples, when present) shows
//! that a CRL under the real ARK's name that its key did not sign is refused.

use bulwark_attest::tee::snp::{check_crl, verify_snp_report, CrlStatus, SnpError, CRL_LEN_MAX};
use bulwark_testkit::crl::{amd_name, serial, test_key, TestCrl};

const NOW: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

fn check(crl: &[u8], now_s: u64) -> Result<CrlStatus, SnpError> {
    let (ask, vcek) = (serial(&[1, 0x5a]), serial(&[2, 0x5a]));
    check_crl(
        crl,
        &amd_name("ARK-Milan"),
        &test_key(0).to_public_key(),
        &[("ASK", &ask), ("VCEK", &vcek)],
        now_s,
    )
}

fn milan() -> TestCrl {
    TestCrl::current(amd_name("ARK-Milan"), NOW).revoking(serial(&[9, 0x5a]), NOW - 2 * DAY)
}

#[test]
fn a_current_crl_from_the_ark_that_lists_neither_certificate_passes() {
    let status = check(&milan().der(), NOW).expect("a current CRL");
    assert_eq!(status.entries, 1);
    assert_eq!(status.next_update_s, NOW + 30 * DAY);
    let empty = TestCrl::current(amd_name("ARK-Milan"), NOW);
    assert_eq!(check(&empty.der(), NOW).map(|s| s.entries), Ok(0));
}

#[test]
fn a_revoked_ask_or_vcek_is_refused() {
    for (listed, which) in [(1, "ASK"), (2, "VCEK")] {
        let crl = milan().revoking(serial(&[listed, 0x5a]), NOW - 3 * DAY);
        match check(&crl.der(), NOW) {
            Err(SnpError::Revoked {
                which: found,
                revoked_s,
                ..
            }) => {
                assert_eq!(found, which);
                assert_eq!(revoked_s, NOW - 3 * DAY);
            }
            other => panic!("{which} revoked but {other:?}"),
        }
    }
}

#[test]
fn a_crl_the_ark_did_not_issue_or_that_is_not_current_is_refused() {
    let mut refused = vec![
        // Signed by another key, or naming another issuer.
        TestCrl {
            signer: 1,
            ..milan()
        },
        TestCrl {
            issuer: amd_name("ARK-Genoa"),
            ..milan()
        },
        // Expired, not yet issued, or with no nextUpdate at all.
        TestCrl {
            this_update_s: NOW - 40 * DAY,
            next_update_s: Some(NOW - DAY),
            ..milan()
        },
        TestCrl {
            this_update_s: NOW + DAY,
            ..milan()
        },
        TestCrl {
            next_update_s: None,
            ..milan()
        },
        // A critical extension nobody knows, on the list or on an entry.
        TestCrl {
            critical_extension: true,
            ..milan()
        },
    ];
    let mut entry = milan();
    entry.revoked[0].critical_extension = true;
    refused.push(entry);
    for (i, crl) in refused.iter().enumerate() {
        assert!(
            matches!(check(&crl.der(), NOW), Err(SnpError::Crl(_))),
            "CRL {i} accepted: {crl:?}"
        );
    }
    assert!(matches!(check(b"garbage", NOW), Err(SnpError::Crl(_))));
    assert!(matches!(
        check(&vec![0x30; CRL_LEN_MAX + 1], NOW),
        Err(SnpError::Crl(_))
    ));
    // Only at the edges of its window is it current.
    let crl = milan();
    let next = crl.next_update_s.expect("a nextUpdate");
    assert!(check(&crl.der(), crl.this_update_s).is_ok());
    assert!(check(&crl.der(), crl.this_update_s - 1).is_err());
    assert!(check(&crl.der(), next).is_ok());
    assert!(check(&crl.der(), next + 1).is_err());
}

#[test]
fn no_byte_of_a_crl_that_revokes_the_vcek_can_be_changed_to_unrevoke_it() {
    let crl = milan().revoking(serial(&[2, 0x5a]), NOW - DAY).der();
    for offset in 0..crl.len() {
        for bit in [0x01, 0x80] {
            let mut flipped = crl.clone();
            flipped[offset] ^= bit;
            assert!(
                check(&flipped, NOW).is_err(),
                "flipping {bit:#x} at byte {offset} un-revoked the VCEK"
            );
        }
    }
}

/// The recorded Milan sample (see tee_samples.rs), when present.
fn milan_sample() -> Option<(Vec<u8>, Vec<u8>)> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/data/attestation-evidence");
    let Ok(text) = std::fs::read_to_string(dir.join("report_milan.hex")) else {
        println!(
            "SKIPPED: attestation samples not found at {}",
            dir.display()
        );
        return None;
    };
    let report = hex::decode(text.trim()).expect("hex report");
    let vcek = std::fs::read(dir.join("vcek_milan.der")).expect("VCEK");
    Some((report, vcek))
}

#[test]
fn the_real_chain_reads_the_crl_and_refuses_one_its_ark_did_not_sign() {
    let Some((report, vcek)) = milan_sample() else {
        return;
    };
    let now_s = 1_748_736_000; // 2025-06-01, inside the VCEK's validity.
    let claims = verify_snp_report(&report, &vcek, None, now_s * 1_000).expect("verifies");
    assert_eq!(claims.crl, None);
    // Under the real ARK's name, current, revoking nothing: but signed by a key that is not AMD's.
    let ark = bulwark_attest::tee::snp::ark_subject("milan").expect("built-in ARK");
    let forged = TestCrl::current(ark, now_s).der();
    match verify_snp_report(&report, &vcek, Some(&forged), now_s * 1_000) {
        Err(SnpError::Crl(reason)) => assert!(reason.contains("signature"), "{reason}"),
        other => panic!("a forged CRL passed: {other:?}"),
    }
    // Under another name it is refused before its signature is read.
    let other = TestCrl::current(amd_name("ARK-Milan"), now_s).der();
    match verify_snp_report(&report, &vcek, Some(&other), now_s * 1_000) {
        Err(SnpError::Crl(reason)) => assert!(reason.contains("issued by"), "{reason}"),
        other => panic!("another issuer's CRL passed: {other:?}"),
    }
}
