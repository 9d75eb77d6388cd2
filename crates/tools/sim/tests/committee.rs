//! Seeded simulation of the committee: n replicas running simplex (BLS12-381 threshold, shares
//! from an INSECURE trusted dealer) on commonware's deterministic runtime and simulated
//! network, ordering blocks of signed client transactions that every replica executes.
//!
//! Every scenario asserts DESIGN invariant 1 (same state root at every replica after every
//! finalized height), invariant 7 (money conserved after every block; also asserted inside the
//! replica) and that heights are executed in order, once each ([`bulwark_sim::check`]).
#![allow(clippy::unwrap_used)]

use bulwark_sim::{run, Scenario};
use commonware_utils::probability;

const USD: i64 = 1_000_000;

fn check(outcome: &bulwark_sim::Outcome) {
    if let Err(violation) = bulwark_sim::check(outcome) {
        panic!("{violation}");
    }
}

#[test]
fn four_replicas_agree_on_every_root() {
    for seed in [1, 2, 3] {
        let outcome = run(Scenario {
            height_before: 30,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        assert!(outcome.ledgers.iter().all(|l| l.len() >= 30));
    }
}

#[test]
fn live_with_one_replica_crashed() {
    for seed in [11, 12] {
        let outcome = run(Scenario {
            height_before: 15,
            crash: Some(3),
            height_after: 20,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        let crashed_height = outcome.ledgers[3].len();
        for (index, ledger) in outcome.ledgers.iter().enumerate().take(3) {
            assert!(
                ledger.len() >= crashed_height + 15,
                "replica {index} must keep finalizing after the crash"
            );
        }
    }
}

#[test]
fn wrong_root_proposals_are_refused_and_the_chain_lives() {
    let outcome = run(Scenario {
        height_before: 25,
        byzantine: &[0],
        ..Scenario::new(21, 4)
    });
    check(&outcome);
    let honest_refusals: u64 = outcome.refused[1..].iter().sum();
    assert!(
        honest_refusals > 0,
        "honest replicas must refuse the wrong-root blocks"
    );
    for honest in 1..4 {
        assert!(
            outcome.evidence[honest][0] > 0,
            "member {honest} must record evidence against the wrong-root proposer"
        );
        for other in 1..4 {
            assert_eq!(
                outcome.evidence[honest][other], 0,
                "no evidence against honest members"
            );
        }
    }
}

#[test]
fn lossy_links_with_a_crash() {
    // 5% of messages lost on every link: lost blocks are fetched by digest, lost votes are
    // retried by simplex.
    for seed in [31, 32] {
        let outcome = run(Scenario {
            height_before: 15,
            crash: Some(1),
            height_after: 15,
            success_rate: probability!(0.95),
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
    }
}

#[test]
fn isolated_replica_catches_up_after_healing() {
    // Replica 2 is cut off for 40 heights, then fetches the blocks it missed from its peers'
    // committed blocks and executes them in order; its roots must match everyone's.
    let outcome = run(Scenario {
        isolate: Some(2),
        height_after: 40,
        ..Scenario::new(41, 4)
    });
    check(&outcome);
    let longest = outcome.ledgers.iter().map(Vec::len).max().unwrap();
    assert!(outcome.ledgers[2].len() >= 50 && outcome.ledgers[2].len() + 5 >= longest);
}

/// How many seeds a sweep runs: `BULWARK_SIM_SEEDS`, default 6 (what CI runs).
fn sim_seeds() -> u64 {
    std::env::var("BULWARK_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// Seeds 1000.. through a crash (of a seed-chosen member at a seed-chosen height) and restart
/// on lossy links, 4 and 7 members, with a wrong-root proposer among the 7.
/// `BULWARK_SIM_SEEDS=N` runs N seeds (default 6, which CI runs); any failing seed reproduces
/// exactly.
#[test]
fn seed_sweep() {
    let count = sim_seeds();
    for seed in 1_000..1_000 + count {
        let n = if seed % 2 == 0 { 4 } else { 7 };
        eprintln!("seed {seed} n {n}");
        let outcome = run(Scenario {
            height_before: 4 + seed % 13,
            crash: Some(usize::try_from(seed % 3).unwrap() + 1),
            byzantine: if n == 7 { &[0] } else { &[] },
            restart: true,
            height_after: 10,
            success_rate: probability!(0.95),
            ..Scenario::new(seed, n)
        });
        check(&outcome);
    }
}

/// Every attack scenario of issue #12 on fresh seeds, alternating 4 and 7 members: each must
/// hold, keep finalizing and record no evidence against an honest member. Seeds 3000..;
/// `BULWARK_SIM_SEEDS=N` runs N per attack (default 6 → 2 per attack here, one at each size).
#[test]
fn attack_sweep() {
    const ATTACKS: &[&str] = &[
        "malleable-signatures",
        "oracle-far-future",
        "block-flood",
        "tampered-member",
        "forged-log",
        "wrong-root",
        "equivocator",
        "garbage-flood",
    ];
    let per_attack = (sim_seeds() / 3).max(1);
    for (a, attack) in ATTACKS.iter().enumerate() {
        for k in 0..per_attack {
            let seed = 3_000 + 100 * a as u64 + k;
            let n = if k % 2 == 0 { 4 } else { 7 };
            let (_, report) = run_named(attack, seed, n);
            eprintln!(
                "{attack} seed {seed} n {n}: held {} progress {}",
                report.held, report.height_progress
            );
            assert!(report.held, "{report:#?}");
            assert!(report.height_progress > 0, "{report:#?}");
            assert_eq!(report.false_evidence, 0, "{report:#?}");
        }
    }
}

#[test]
fn crashed_replica_restarts_from_its_log_and_catches_up() {
    // Replica 1 is killed (all tasks aborted mid-flight) at height 12, the others finalize 25
    // more heights, then it restarts from its own storage: it replays its finalized log (the
    // ledger check inside the replica asserts every replayed height equals what it committed
    // before), fetches what it missed and executes each height once.
    let outcome = run(Scenario {
        height_before: 12,
        crash: Some(1),
        restart: true,
        height_after: 25,
        ..Scenario::new(61, 4)
    });
    check(&outcome);
    let longest = outcome.ledgers.iter().map(Vec::len).max().unwrap();
    assert!(outcome.ledgers[1].len() >= 37 && outcome.ledgers[1].len() + 5 >= longest);
    // It restored its engine from its newest snapshot (every 4 heights here) that the log
    // confirms, and replayed only the heights after it.
    let restored = outcome.restored[1].expect("the restart restores from a snapshot");
    assert!(
        restored >= 8 && restored.is_multiple_of(4),
        "restored from height {restored}"
    );
}

/// The whole committee loses power at a seed-chosen moment and restarts from its storage; in
/// half the seeds one member never comes back, so the others need every one of themselves.
/// Blocks that were notarized but not yet finalized at the cut must survive it: a leader has
/// to build on them, and nobody can if the block bytes died with the processes.
/// `BULWARK_SIM_SEEDS=N` runs N seeds (default 6).
#[test]
fn the_committee_survives_a_power_cut() {
    let count = sim_seeds();
    for seed in 2_000..2_000 + count {
        let stays_down = (seed % 2 == 1).then_some(usize::try_from(seed % 4).unwrap());
        eprintln!("seed {seed} stays down {stays_down:?}");
        let outcome = run(Scenario {
            height_before: 6 + seed % 7,
            power_cut: true,
            stays_down,
            height_after: 10,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        for (member, restored) in outcome.restored.iter().enumerate() {
            if Some(member) != stays_down {
                assert!(
                    restored.is_some(),
                    "member {member} restored from a snapshot"
                );
            }
        }
    }
}

#[test]
fn seven_members_with_f_byzantine_proposers() {
    // f = 2 of 7 propose wrong roots on every turn; the 5 honest ones refuse those blocks and
    // keep finalizing on their own proposals.
    let outcome = run(Scenario {
        height_before: 20,
        byzantine: &[2, 5],
        ..Scenario::new(71, 7)
    });
    check(&outcome);
    assert!(outcome.refused.iter().sum::<u64>() > 0);
    for honest in [0, 1, 3, 4, 6] {
        assert!(outcome.evidence[honest][2] > 0 && outcome.evidence[honest][5] > 0);
    }
}

#[test]
fn an_equivocating_member_is_recorded_and_the_chain_lives() {
    let outcome = run(Scenario {
        height_before: 20,
        equivocators: &[0],
        ..Scenario::new(91, 4)
    });
    check(&outcome);
    for honest in 1..4 {
        assert!(
            outcome.evidence[honest][0] > 0,
            "member {honest} must record the equivocator's conflicting votes"
        );
        for other in 1..4 {
            assert_eq!(outcome.evidence[honest][other], 0);
        }
    }
}

#[test]
fn a_split_without_quorum_finalizes_nothing_and_heals() {
    for (seed, n) in [(101, 4), (102, 7)] {
        let outcome = run(Scenario {
            split: true,
            height_after: 15,
            ..Scenario::new(seed, n)
        });
        check(&outcome);
        assert!(outcome.ledgers.iter().all(|l| l.len() >= 25));
    }
}

#[test]
fn oracle_rounds_are_certified_through_blocks_and_one_liar_cannot_move_the_index() {
    let outcome = run(Scenario {
        height_before: 250,
        oracle: true,
        ..Scenario::new(111, 4)
    });
    check(&outcome);
    let rounds: Vec<u64> = outcome.oracle.iter().map(|(r, _)| *r).collect();
    assert!(
        rounds.iter().all(|r| *r >= 5),
        "rounds certified at every member: {rounds:?}"
    );
    // Member 1 lies (twice the price) in this run; the index must stay near the honest path.
    let outcome = run(Scenario {
        height_before: 250,
        byzantine: &[1],
        oracle: true,
        ..Scenario::new(112, 4)
    });
    check(&outcome);
    // The sentinel removes the liar (its oracle faults and wrong roots make every member
    // accuse it); it takes no part in the next epoch's consensus (it follows the log by catch-up).
    assert_eq!(
        outcome.episode.removed,
        vec![(1, 1)],
        "{:?}",
        outcome.episode
    );
    for (member, (round, index)) in outcome.oracle.iter().enumerate() {
        if member == 1 {
            continue;
        }
        assert!(*round >= 5);
        let index = index.unwrap();
        assert!(
            (50_000 * USD..70_000 * USD).contains(&index),
            "one lying member moved the index to {index}"
        );
    }
    // Its wrong roots get it removed within a few rounds, and from that epoch on its observations
    // no longer count (its oracle seat is vacant), so a deviant streak of `fault_rounds` may not
    // complete: whatever oracle fault evidence there is names it alone, and every honest member
    // records the same. (The `lying-oracle-member` episode removes a member on that evidence.)
    for member in [0, 2, 3] {
        assert_eq!(
            outcome.oracle_faults[member][1], outcome.oracle_faults[0][1],
            "the honest members agree: {:?}",
            outcome.oracle_faults
        );
        for other in [0, 2, 3] {
            assert_eq!(outcome.oracle_faults[member][other], 0);
        }
    }
}

#[test]
fn a_member_flooding_garbage_does_not_stop_the_chain() {
    let outcome = run(Scenario {
        height_before: 20,
        garbage: &[3],
        ..Scenario::new(81, 4)
    });
    check(&outcome);
    assert!(outcome.ledgers[3].is_empty(), "the flooder runs no replica");
    for honest in 0..3 {
        assert!(
            outcome.evidence[honest][3] > 0,
            "member {honest} must record the flooder's garbage"
        );
    }
}

#[test]
fn a_seed_reproduces_exactly() {
    let scenario = Scenario {
        crash: Some(2),
        height_after: 10,
        success_rate: probability!(0.95),
        ..Scenario::new(51, 4)
    };
    let first = run(scenario);
    let second = run(scenario);
    check(&first);
    assert_eq!(
        first.ledgers, second.ledgers,
        "same seed, same blocks and roots"
    );
    assert_eq!(first.virtual_ms, second.virtual_ms);
}

/// Runs the named scenario (as `bulwark sim --scenario NAME` does) and reports on it.
fn run_named(name: &str, seed: u64, n: usize) -> (bulwark_sim::Outcome, bulwark_sim::Report) {
    let scenario = bulwark_sim::named(name, seed, n).unwrap();
    let outcome = run(scenario);
    let report = bulwark_sim::Report::new(name, &scenario, &outcome);
    (outcome, report)
}

/// Attack 2 of issue #12: a member signs oracle observations for rounds 2^63, u64::MAX - 1 and
/// u64::MAX (and sends them unsigned too), trying to occupy every pool so that no round
/// certifies again. Every pool refuses them before storing anything, records evidence against
/// the sender (and nobody else), and every member's certified rounds keep up with the clock.
#[test]
fn far_future_oracle_rounds_cannot_stop_certification() {
    for (seed, n) in [(131, 4), (132, 7)] {
        let (outcome, report) = run_named("oracle-far-future", seed, n);
        assert!(report.held, "{report:#?}");
        assert!(report.height_progress >= 600, "{report:#?}");
        assert!(report.evidence_against_hostile > 0, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        // Long enough that a pool stuck at its first rounds would show as a stall.
        let clock_round = outcome.oracle_clock_round.unwrap();
        assert!(clock_round >= 15, "the run lasted {clock_round} rounds");
        let rounds: Vec<u64> = outcome.oracle.iter().map(|(r, _)| *r).collect();
        eprintln!("n = {n}: clock round {clock_round}, certified {rounds:?}");
    }
}

/// The sentinel (issue #13): member 1 signs two different oracle observations every round, one
/// for each half of the committee. A member that holds one and sees the other certified in a
/// finalized block keeps both as the equivocator's own proof; the next block it proposes carries
/// the quarantine, which every replica checks and applies under the state root. Every honest
/// member's engine ends with member 1 quarantined and nobody else, and blocks keep finalizing.
#[test]
fn an_equivocating_oracle_member_is_quarantined_on_its_own_signatures() {
    for (seed, n) in [(151, 4), (152, 7)] {
        let (outcome, report) = run_named("oracle-equivocation", seed, n);
        eprintln!(
            "n = {n}: quarantined {:?}, progress {}",
            report.quarantined, report.height_progress
        );
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        assert!(report.height_progress >= 120, "{report:#?}");
        assert_eq!(report.quarantined, vec![1], "{report:#?}");
        for (member, convicted) in outcome.quarantined.iter().enumerate() {
            if member != 1 {
                assert_eq!(convicted, &vec![1], "member {member} at n = {n}");
            }
        }
        removed_at_the_next_epoch(&outcome, &[1]);
    }
}

/// The sentinel's other episodes (issue #13), at n = 4 and 7: a member equivocating votes, one
/// lying as an oracle, one gone silent, one whose audits fail, and a whole data center (f members)
/// tampered at once. Each ends with exactly the culprits removed at epoch 1, blocks finalizing
/// throughout, the genesis identity kept and the old shares useless.
#[test]
fn every_sentinel_episode_removes_exactly_the_culprits() {
    for (name, culprits) in [
        ("equivocating-leader", &[0usize][..]),
        ("lying-oracle-member", &[1][..]),
        ("silent-member", &[][..]),
        ("failed-audit", &[2][..]),
        ("compromised-data-center", &[][..]),
    ] {
        for (seed, n) in [(171, 4), (172, 7)] {
            let (outcome, report) = run_named(name, seed, n);
            let culprits: Vec<usize> = match name {
                "silent-member" => vec![n - 1],
                "compromised-data-center" => (0..(n - 1) / 3).collect(),
                _ => culprits.to_vec(),
            };
            eprintln!(
                "{name} n = {n}: {}",
                serde_json::to_string(&report).unwrap()
            );
            assert!(report.held, "{name} n = {n}: {report:#?}");
            assert_eq!(report.false_evidence, 0, "{name} n = {n}: {report:#?}");
            assert_eq!(report.quarantined, culprits, "{name} n = {n}: {report:#?}");
            removed_at_the_next_epoch(&outcome, &culprits);
        }
    }
}

/// An honest member crashes when the quarantine lands, in the middle of the reshare, and
/// restarts (dealing the same polynomial again); then crashes and restarts once more in the new
/// epoch, resuming there from its storage. The reshare completes, the member is removed, and the
/// restarted member keeps finalizing in epoch 1 with the others.
#[test]
fn a_member_restarting_mid_reshare_and_after_it_keeps_up() {
    for (seed, n) in [(181, 4), (182, 7)] {
        let (outcome, report) = run_named("restart-in-reshare", seed, n);
        assert!(report.held, "n = {n}: {report:#?}");
        assert_eq!(report.false_evidence, 0, "n = {n}: {report:#?}");
        removed_at_the_next_epoch(&outcome, &[0]);
        // The restarted member committed blocks of epoch 1 after its second start.
        let top = outcome.ledgers[2].last().map_or(0, |c| c.height);
        let restarted = outcome.ledgers[1].last().map_or(0, |c| c.height);
        assert!(
            restarted + 5 >= top,
            "n = {n}: member 1 at {restarted}, member 2 at {top}"
        );
    }
}

/// The end of an episode that removed `members`: they left at epoch 1 and nobody else did, blocks
/// never stopped for long, the remaining members hold the genesis identity, and the removed
/// member's genesis share signs nothing the new sharing verifies (while it did under the old).
fn removed_at_the_next_epoch(outcome: &bulwark_sim::Outcome, members: &[usize]) {
    let episode = &outcome.episode;
    eprintln!("{}", serde_json::to_string(episode).unwrap());
    let expected: Vec<(usize, u64)> = members.iter().map(|m| (*m, 1)).collect();
    assert_eq!(episode.removed, expected, "{episode:#?}");
    assert_eq!(episode.epoch, 1, "{episode:#?}");
    assert!(episode.removed_ms >= episode.quarantined_ms, "{episode:#?}");
    assert!(episode.blocks_during >= 20, "{episode:#?}");
    assert!(episode.longest_stall_ms <= 5_000, "{episode:#?}");
    assert_eq!(
        episode.identity_after.as_deref(),
        Some(episode.identity_before.as_str()),
        "{episode:#?}"
    );
    assert_eq!(
        episode.old_share_verified_before,
        Some(true),
        "{episode:#?}"
    );
    assert_eq!(
        episode.old_share_verifies_after,
        Some(false),
        "{episode:#?}"
    );
}

/// The sentinel (issue #13): member 0 runs a tampered binary. Every other member appraises its
/// evidence as contraindicated, cuts it off and accuses it; once f+1 accusations meet in a
/// member's sentinel, its next proposal carries the quarantine, which every replica checks.
/// Every honest engine ends with member 0 quarantined and nobody else.
#[test]
fn a_tampered_member_is_quarantined_by_f_plus_one_accusations() {
    for (seed, n) in [(161, 4), (162, 7)] {
        let (outcome, report) = run_named("tampered-binary", seed, n);
        eprintln!(
            "n = {n}: quarantined {:?}, progress {}",
            report.quarantined, report.height_progress
        );
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        assert!(report.height_progress >= 60, "{report:#?}");
        assert_eq!(report.quarantined, vec![0], "{report:#?}");
        for (member, convicted) in outcome.quarantined.iter().enumerate().skip(1) {
            assert_eq!(convicted, &vec![0], "member {member} at n = {n}");
        }
        removed_at_the_next_epoch(&outcome, &[0]);
    }
}

/// The sentinel (issue #13): f members accuse honest member 0. Fewer than f+1 accusers decide
/// nothing: no engine quarantines anyone, and blocks keep finalizing.
#[test]
fn f_false_accusers_remove_nobody() {
    for (seed, n) in [(171, 4), (172, 7), (173, 4), (174, 7)] {
        let (outcome, report) = run_named("false-accusations", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        assert!(report.height_progress >= 60, "{report:#?}");
        assert!(report.quarantined.is_empty(), "{report:#?}");
        assert!(outcome.quarantined.iter().all(Vec::is_empty), "n = {n}");
        assert!(outcome.episode.removed.is_empty(), "n = {n}");
        assert_eq!(outcome.episode.epoch, 0, "n = {n}");
    }
}

/// Attack 1 of issue #12: client 1 signs every order with a small-order point added to `R`.
/// Every mempool, every replica's block check and every log verifier judges such a signature
/// the same way (ZIP-215), so no honest leader is refused, no evidence names an honest member,
/// and every log verifies. With the old cofactorless batch equation the mempools refused some
/// of these transactions and the whole-block log check rejected others that got in.
#[test]
fn malleable_signatures_are_judged_the_same_everywhere() {
    for (seed, n) in [(141, 4), (142, 7)] {
        let (_, report) = run_named("malleable-signatures", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.refused, 0, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        assert!(report.height_progress >= 40, "{report:#?}");
    }
}

/// Attested admission inside the simulator: member 0 runs a tampered binary; every other
/// member appraises its DEVELOPMENT evidence as contraindicated, cuts its links and records
/// the signed appraisal against it (and against nobody else); the rest go on finalizing.
#[test]
fn a_tampered_member_is_cut_off_by_every_other_and_the_rest_go_on() {
    for (seed, n) in [(151, 4), (152, 7)] {
        let (outcome, report) = run_named("tampered-member", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.hostile, vec![0], "{report:#?}");
        assert!(report.evidence_against_hostile >= n - 1, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        assert!(report.height_progress >= 30, "{report:#?}");
        let cut_off_at = outcome.ledgers[0].len() as u64;
        assert!(
            cut_off_at + 20 <= report.height_progress,
            "the tampered member reached {cut_off_at}, the others {}",
            report.height_progress
        );
    }
}

/// Attack 5 of issue #12 (the block store): member 0 floods everyone with well-formed blocks
/// nobody asked for, each with its own digest, every 2 ms. Each replica keeps at most
/// `UNSOLICITED_BLOCKS_PER_PEER` of them, drops the rest (counted), and the chain goes on.
#[test]
fn a_member_flooding_unasked_blocks_cannot_fill_the_store() {
    use bulwark_consensus::replica::UNSOLICITED_BLOCKS_PER_PEER;
    for (seed, n) in [(161, 4), (162, 7)] {
        let (outcome, report) = run_named("block-flood", seed, n);
        assert!(report.held, "{report:#?}");
        assert!(report.height_progress >= 30, "{report:#?}");
        for member in 1..n {
            let (held, dropped) = outcome.block_store[member];
            eprintln!("n = {n}, member {member}: {held} blocks held, {dropped} dropped");
            // The flooder's share, plus a few honest proposals above the committed height.
            assert!(
                held <= UNSOLICITED_BLOCKS_PER_PEER.min(64) + 4 * n,
                "member {member} holds {held} blocks"
            );
            assert!(dropped > 100, "member {member} dropped only {dropped}");
        }
    }
}

/// Attack 7 of issue #12: whoever holds a node's disk hands `bulwark verify` logs the committee
/// never finalized, every record's checksum recomputed so only the certificate, chain and root
/// checks can tell. Each forgery is refused, with the check that caught it; before the fix the
/// uncovered tail under `--until` verified.
#[test]
fn forged_logs_with_valid_checksums_are_refused() {
    for (seed, n) in [(171, 4), (172, 7)] {
        let (outcome, report) = run_named("forged-log", seed, n);
        assert!(report.held, "{report:#?}");
        let forged = report.forged_logs.as_ref().unwrap();
        assert_eq!(forged.tried.len(), 7, "{report:#?}");
        assert!(forged.accepted.is_empty(), "{report:#?}");
        let why = |name: &str| {
            outcome
                .forgeries
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.refused_with.clone())
                .unwrap()
        };
        assert!(why("certificate-from-another-height").contains("certifies another block"));
        assert!(why("certificates-under-another-committee-key").contains("group key"));
        assert!(why("wrong-root-recomputed-checksum").contains("claims parent root"));
        assert!(why("uncovered-tail-with-until").contains("not covered"));
        assert!(why("until-past-the-end").contains("before the --until height"));
        // Caught by its own certificate when it has one, else by its child's parent link.
        let swapped = why("block-never-finalized");
        assert!(
            swapped.contains("does not extend") || swapped.contains("certifies another block"),
            "{swapped}"
        );
        eprintln!("n = {n}: {:#?}", outcome.forgeries);
    }
}

/// Chain deposits through blocks (issue #14): every member watches the simulated chain and
/// attests what it sees; f members' sources lie (ten times every amount, and a made-up deposit
/// per chain block). Only what n - f members attested alike reaches a block: every member's
/// committed state credits real deposits, each once and at the chain's amount, and nothing the
/// liars made up; the chain keeps finalizing and roots agree.
#[test]
fn f_lying_chain_sources_credit_nothing_and_real_deposits_are_credited_once() {
    for (seed, n) in [(171, 4), (172, 7)] {
        let (outcome, report) = run_named("lying-chain-source", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        let tallies = outcome.deposits.as_ref().unwrap();
        for tally in tallies {
            assert!(tally.real >= 2, "n = {n}: {tallies:?}");
            assert_eq!(
                (tally.fake, tally.excess_micros),
                (0, 0),
                "n = {n}: {tallies:?}"
            );
            assert_eq!(tally.credited, tally.real, "n = {n}: {tallies:?}");
        }
        eprintln!("n = {n}: deposits {tallies:?}");
    }
}

/// A member that signs two different deposits for one outpoint (issue #14) convicts itself: the
/// deposit feed keeps both signatures, the proposer puts the quarantine into its block, every
/// replica checks it on the proof alone, and the member is removed at the next epoch while
/// deposits keep being credited once at their amount.
#[test]
fn a_member_equivocating_on_deposits_is_removed_on_its_own_signatures() {
    for (seed, n) in [(181, 4), (182, 7)] {
        let (outcome, report) = run_named("equivocating-chain-source", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        let episode = report.episode.as_ref().expect("an episode");
        assert_eq!(episode.removed, vec![(1, 1)], "n = {n}: {report:#?}");
        let tallies = outcome.deposits.as_ref().unwrap();
        for tally in tallies {
            assert_eq!(
                (tally.fake, tally.excess_micros),
                (0, 0),
                "n = {n}: {tallies:?}"
            );
            assert_eq!(tally.credited, tally.real, "n = {n}: {tallies:?}");
        }
        eprintln!("n = {n}: {episode:?}, deposits {tallies:?}");
    }
}

/// Certified catch-up (issue #13, what a joining node needs first): member 2's audits fail and
/// the sentinel removes it, so no consensus of the new epoch runs at it. It follows the log
/// anyway, asking peers in turn for records by height and taking each only on a certificate of
/// the group key. Member 1, honest in consensus, answers every such request with forged records
/// (a flipped certificate, a flipped block, a certificate moved from the record before): each
/// is refused and recorded against member 1, and member 2 still reaches the committee's height.
#[test]
fn a_removed_member_follows_the_log_on_certificates_and_refuses_forged_records() {
    for (seed, n) in [(191, 4), (192, 7)] {
        let (outcome, report) = run_named("forged-catch-up", seed, n);
        assert!(report.held, "n = {n}: {report:#?}");
        assert_eq!(report.false_evidence, 0, "n = {n}: {report:#?}");
        removed_at_the_next_epoch(&outcome, &[2]);
        let top = outcome
            .ledgers
            .iter()
            .map(|ledger| ledger.last().map_or(0, |c| c.height))
            .max()
            .unwrap();
        let follower = outcome.ledgers[2].last().map_or(0, |c| c.height);
        eprintln!(
            "n = {n}: follower at {follower}, top {top}, evidence against the forger {}",
            outcome.evidence[2][1]
        );
        // Without catch-up it stops at the epoch change, the run's 30 heights below the top.
        assert!(
            follower + 10 >= top,
            "n = {n}: member 2 at {follower}, the committee at {top}"
        );
        assert!(
            outcome.evidence[2][1] > 0,
            "n = {n}: member 2 recorded no forged record from member 1"
        );
    }
}

/// Re-admission end to end (issue #13): member n-1 goes silent and the sentinel removes it. It
/// restarts from its own storage, follows the log by certified catch-up into the epoch without
/// it, and an `admit` with f+1 members' affirmations makes it a joining candidate. It takes the
/// ending epoch's public output from the members (the copy member 1 forges is refused: its digest
/// is not the one the log committed), plays in the reshare with no share of its own, and signs
/// again in the epoch after, for the same group identity.
#[test]
fn a_removed_member_comes_back_on_affirmations_and_signs_in_the_next_epoch() {
    for (seed, n) in [(201, 4), (202, 7)] {
        let (outcome, report) = run_named("readmission", seed, n);
        eprintln!("n = {n}: {}", serde_json::to_string(&report).unwrap());
        assert!(report.held, "n = {n}: {report:#?}");
        assert_eq!(report.false_evidence, 0, "n = {n}: {report:#?}");
        let back = n - 1;
        for member in 0..n {
            assert_eq!(
                outcome.epochs[member],
                (2, true),
                "n = {n}: member {member} must sign in epoch 2: {:?}",
                outcome.epochs
            );
        }
        assert!(
            outcome.quarantined.iter().all(|q| q.is_empty()),
            "n = {n}: {:?}",
            outcome.quarantined
        );
        let episode = &outcome.episode;
        assert_eq!(episode.removed, vec![(back, 1)], "n = {n}: {episode:#?}");
        assert_eq!(episode.readmitted, vec![(back, 2)], "n = {n}: {episode:#?}");
        assert_eq!(
            episode.identity_after.as_deref(),
            Some(episode.identity_before.as_str()),
            "n = {n}: {episode:#?}"
        );
        // Its genesis share verifies nothing under the sharing it came back into.
        assert_eq!(episode.old_share_verifies_after, Some(false), "n = {n}");
        let top = outcome
            .ledgers
            .iter()
            .map(|ledger| ledger.last().map_or(0, |c| c.height))
            .max()
            .unwrap();
        let returned = outcome.ledgers[back].last().map_or(0, |c| c.height);
        assert!(
            returned + 5 >= top,
            "n = {n}: member {back} at {returned}, the committee at {top}"
        );
        assert!(
            outcome.evidence[back][1] > 0,
            "n = {n}: the forged output and records of member 1 were not refused"
        );
    }
}

/// A proposer puts the transactions of the block it last committed into every block it
/// proposes. Every replica executes them as refused replays (stale nonces) and agrees on every
/// root; no member tells a client a second receipt for any of them (the client checkers'
/// `receipt_changed` covers every account), and the tracked clients still get their verdicts.
#[test]
fn a_proposer_replaying_finalized_transactions_cannot_change_a_receipt() {
    for (seed, n) in [(3_900, 4), (3_901, 7)] {
        let (outcome, report) = run_named("replaying-proposer", seed, n);
        assert!(report.held, "{report:#?}");
        assert_eq!(report.false_evidence, 0, "{report:#?}");
        let clients = &outcome.clients;
        assert!(
            clients.tally().replays_refused > 0,
            "the replayer's blocks must have finalized some replays"
        );
        assert!(clients.told.iter().all(|t| t.changed.is_empty()));
        assert!(clients.tally().decided > 0, "{:?}", clients.tally());
    }
}
