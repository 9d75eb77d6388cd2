//! The member-level attacks of issue #12 (3, 4, 6, 9 and 10), each at n = 4 and 7 on two seeds: the
//! attacker achieves nothing, and every attempt is refused for the reason the promise names.
#![allow(clippy::unwrap_used)]

use bulwark_sim::{run_member_attack, MEMBER_SCENARIOS};

fn run(name: &str, seed: u64, n: usize) -> bulwark_sim::MemberReport {
    let report = run_member_attack(name, seed, n).unwrap().unwrap();
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    assert!(report.held, "{report:#?}");
    assert!(report.achieved.is_empty(), "{report:#?}");
    assert_eq!(report.false_evidence, 0);
    report
}

#[test]
fn a_cut_off_member_stays_out_until_readmitted() {
    for (seed, n) in [(181, 4), (182, 7)] {
        let report = run("cut-off-lapse", seed, n);
        assert_eq!(report.refused.len(), 3, "{report:#?}");
    }
}

#[test]
fn a_swapped_or_exposed_key_file_is_refused() {
    for (seed, n) in [(191, 4), (192, 7)] {
        let report = run("keystore-swap", seed, n);
        assert_eq!(report.refused.len(), 5, "{report:#?}");
        assert!(report.refused[0].contains("plain file"), "{report:#?}");
        assert!(
            report.refused[4].contains("others can read it"),
            "{report:#?}"
        );
    }
}

#[test]
fn production_refuses_every_development_path() {
    for n in [4, 7] {
        let report = run("dev-paths-in-production", 1, n);
        assert_eq!(report.refused.len(), 5, "{report:#?}");
        assert!(
            report.refused[3].contains("DEVELOPMENT only"),
            "{report:#?}"
        );
        assert!(report.refused[4].contains("dev-evidence-not-accepted"));
    }
}

#[test]
fn a_tampered_binary_cannot_forge_its_measured_launch() {
    for (seed, n) in [(211, 4), (212, 7)] {
        let report = run("forged-launch", seed, n);
        assert_eq!(report.refused.len(), 3, "{report:#?}");
        assert!(report.refused[0].starts_with("195 resets"), "{report:#?}");
        assert!(report.refused[1].starts_with("39 unseals"), "{report:#?}");
        // Forged logs do not replay to the quoted PCR; the true log names the tampered binary.
        assert!(
            report.refused[2].contains("launch-log-mismatch"),
            "{report:#?}"
        );
        assert!(
            report.refused[2].contains("launch-event-not-allowed"),
            "{report:#?}"
        );
    }
}

#[test]
fn only_signed_peers_reach_the_tpm_and_at_a_bounded_rate() {
    for (seed, n) in [(201, 4), (202, 7)] {
        let report = run("tpm-ops-flood", seed, n);
        assert_eq!(report.refused.len(), 3, "{report:#?}");
    }
}

#[test]
fn a_byzantine_coordinator_gets_one_signature_per_withdrawal() {
    for (seed, n) in [(221, 4), (222, 7)] {
        let report = run("double-withdrawal", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.refused.len(), 2, "{report:#?}");
        assert!(
            report.refused[0].contains("for the same txid"),
            "{report:#?}"
        );
        assert!(
            report.refused[1].contains("signed for another transaction already"),
            "{report:#?}"
        );
    }
}

#[test]
fn a_forged_withdrawal_gets_no_share_and_its_evidence_quarantines_the_forger() {
    for (seed, n) in [(231, 4), (232, 7)] {
        let report = run("forged-withdrawal", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.refused.len(), 8, "{report:#?}");
        assert!(report.refused[0].contains("not authorized"), "{report:#?}");
        assert!(report.refused[5].contains("another message"), "{report:#?}");
        assert!(report.refused[6].contains("lock time"), "{report:#?}");
        // The evidence reached the sentinel: every other member accused the forger (its
        // threshold of two records was met), and the quarantine checked.
        assert!(
            report.refused[7].contains(&format!("{} members accused the forger", n - 1)),
            "{report:#?}"
        );
    }
}

#[test]
fn a_removed_members_old_share_signs_nothing_after_the_refresh() {
    for (seed, n) in [(241, 4), (242, 7)] {
        let report = run("custody-member-removed", seed, n);
        assert!(report.held, "{report:#?}");
        // The old share with new ones, a package naming the removed member, a repair with a
        // lying helper; the replacement repaired by t holders signs (nothing achieved).
        assert_eq!(report.refused.len(), 3, "{report:#?}");
        assert!(report.refused[2].contains("lying helper"), "{report:#?}");
    }
}

#[test]
fn every_member_scenario_is_named_and_unknown_names_are_not() {
    for (name, _) in MEMBER_SCENARIOS {
        assert!(run_member_attack(name, 3, 4).is_some());
    }
    // Without the test-only switch, the TEE scenario says why it cannot run.
    if !cfg!(feature = "recorded-samples") {
        let why = run_member_attack("tee-admission", 3, 4)
            .unwrap()
            .unwrap_err();
        assert!(why.contains("TEST-ONLY"), "{why}");
    }
    assert!(run_member_attack("no-such-attack", 3, 4).is_none());
}

/// Attack 8: SEV-SNP and TDX members admitted end to end on recorded samples; a flipped byte
/// anywhere in the attacker's sample keeps it out, and so does a forged AMD CRL. Needs the test-only switch (the test command
/// enables it) and the shared samples (skipped with a message without them).
#[cfg(feature = "recorded-samples")]
#[test]
fn tee_members_are_admitted_on_real_samples_and_a_flipped_byte_keeps_one_out() {
    if !bulwark_sim::tee_admission::samples_dir().is_dir() {
        println!("SKIPPED: the recorded SEV-SNP/TDX samples are not here");
        return;
    }
    // Six seeds: each of the three samples is the attacker's at n = 4 and at n = 7.
    let mut attacked = std::collections::BTreeSet::new();
    for (seed, n) in [(221, 4), (222, 4), (223, 4), (224, 7), (225, 7), (226, 7)] {
        let report = run("tee-admission", seed, n);
        assert_eq!(report.refused.len(), n + 1, "{report:#?}");
        // Without the switch even an honest replay is refused: it answers no nonce of ours.
        assert!(
            report.refused[0].starts_with("without the test switch")
                && report.refused[0].contains("qualifying-data-mismatch"),
            "{report:#?}"
        );
        // The switch never waives revocation: an AMD CRL the ARK did not sign is refused.
        assert!(
            report.refused[1].contains("forged AMD CRL")
                && report.refused[1].contains("snp-crl-refused"),
            "{report:#?}"
        );
        let sample = report.refused[2]
            .split(" (")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        attacked.insert((sample.to_string(), n));
    }
    assert_eq!(attacked.len(), 6, "{attacked:?}");
}
