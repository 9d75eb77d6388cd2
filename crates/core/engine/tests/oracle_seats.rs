//! The oracle's seats follow the committee: a removed member's observations stop counting at the
//! epoch that removes it, and the newcomer admitted into its seat signs certified rounds from the
//! epoch it joins, on every replica alike and across a snapshot. The quorum stays 2f + 1 of the
//! genesis seats.

mod common;

use bulwark_engine::event::{Event, RejectReason};
use bulwark_engine::oracle::{
    verify_oracle_round, verify_oracle_round_in, OracleRoundError, SignedObservation,
};
use bulwark_engine::{Engine, EngineConfig};
use common::oracle::{obs, round_cmd, P};
use common::sentinel::{id, key, new_epoch, remove, remove_member_3, replacement, system};

const NOW_MS: u64 = 50_000;

/// Members 0..4 are both the sentinel's committee and the oracle's (f = 1), as a genesis makes
/// them; `configure` may change the oracle's.
fn engine_with(configure: impl FnOnce(&mut EngineConfig)) -> Engine {
    common::oracle::setup_with(|config| {
        config.sentinel = common::sentinel::config();
        configure(config);
    })
    .engine
}

fn engine() -> Engine {
    engine_with(|_| {})
}

/// The round `round` of underlying 0 as `signers` observe it at `at_ms`: `P` for everyone but
/// `deviant`, who reports 10 % higher.
fn round(signers: &[u8], round: u64, at_ms: u64, deviant: Option<u8>) -> Vec<SignedObservation> {
    signers
        .iter()
        .map(|i| {
            let price = if Some(*i) == deviant { P / 10 * 11 } else { P };
            obs(&key(*i), round, price, at_ms)
        })
        .collect()
}

fn certify(engine: &mut Engine, observations: Vec<SignedObservation>, at_ms: u64) -> Vec<Event> {
    let round = observations[0].observation.round;
    let mut events = Vec::new();
    engine.execute(at_ms, &[round_cmd(round, observations)], &mut events);
    events
}

fn certified(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::OracleCertified { .. }))
}

fn refused(events: &[Event], reason: RejectReason) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::Rejected { reason: r, .. } if *r == reason
        )
    })
}

/// Newcomer 9 admitted into member 3's seat in epoch 1 and joining at epoch 2.
fn admit_9_for_3(engine: &mut Engine, at_ms: u64) {
    let events = system(engine, at_ms, replacement(9, &[0, 1], &[0, 2], at_ms));
    assert!(
        events.iter().any(|e| matches!(e, Event::Joining { .. })),
        "{events:?}"
    );
    new_epoch(engine, 2, &[0, 1, 2, 9], at_ms);
}

#[test]
fn a_removed_member_stops_counting_and_the_newcomer_in_its_seat_signs_rounds() {
    let mut a = engine();
    let mut b = engine();
    for replica in [&mut a, &mut b] {
        // Epoch 0: member 3 is one of the three signers of a round.
        let t = NOW_MS;
        assert!(certified(&certify(
            replica,
            round(&[0, 1, 3], 1, t, None),
            t
        )));
        remove_member_3(replica, t + 100);
        let roster = replica.oracle_roster();
        assert_eq!(
            roster.holder(3),
            None,
            "the removed member's seat is vacant"
        );
        assert_eq!((roster.held(), roster.quorum()), (3, 3));
        // The attacker: removed, it still signs, and its observation sinks the round whole.
        let t = t + 1_000;
        let events = certify(replica, round(&[0, 1, 3], 2, t, None), t);
        assert!(!certified(&events) && refused(&events, RejectReason::OracleNotMember));
        // The newcomer cannot sign before it holds the seat, nor can two members alone.
        let events = certify(replica, round(&[0, 1, 9], 3, t, None), t);
        assert!(
            refused(&events, RejectReason::OracleNotMember),
            "{events:?}"
        );
        let events = certify(replica, round(&[0, 1], 3, t, None), t);
        assert!(refused(&events, RejectReason::OracleQuorumNotMet));
        assert!(certified(&certify(
            replica,
            round(&[0, 1, 2], 3, t, None),
            t
        )));
        // Epoch 2: newcomer 9 holds seat 3 and is one of the three signers.
        admit_9_for_3(replica, t + 100);
        let roster = replica.oracle_roster();
        assert_eq!(roster.holder(3), Some(&id(9)));
        assert_eq!(roster.seat_of(&id(9)), Some(3));
        let t = t + 1_000;
        let observations = round(&[1, 2, 9], 4, t, None);
        // A replica's pre-check under the parent's seats agrees with the engine; the genesis
        // seats alone would refuse the newcomer.
        assert_eq!(
            verify_oracle_round_in(&roster, 0, 4, &observations),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(
            verify_oracle_round(&replica.config().oracle, 0, 4, &observations),
            Err(OracleRoundError::NotMember(2))
        );
        assert!(certified(&certify(replica, observations, t)));
        let events = certify(replica, round(&[1, 2, 3], 5, t, None), t);
        assert!(refused(&events, RejectReason::OracleNotMember));
    }
    assert_eq!(a.state_root(), b.state_root());
    // Restored (the seat keys' cache is not in the snapshot), it certifies the newcomer's
    // rounds exactly as the engine that never stopped.
    let mut restored = Engine::restore(&a.snapshot()).expect("restores");
    assert_eq!(restored.state_root(), a.state_root());
    assert_eq!(restored.oracle_roster(), a.oracle_roster());
    let t = NOW_MS + 3_000;
    for replica in [&mut a, &mut restored] {
        assert!(certified(&certify(
            replica,
            round(&[1, 2, 9], 6, t, None),
            t
        )));
    }
    assert_eq!(restored.state_root(), a.state_root());
}

#[test]
fn a_member_moved_to_another_seat_keeps_its_deviance() {
    let mut engine = engine();
    let k = engine.config().oracle.fault_rounds;
    let mut t = NOW_MS;
    remove_member_3(&mut engine, t);
    admit_9_for_3(&mut engine, t + 100);
    // Epoch 2: the seats are 0, 1, 2, 9, and 9 deviates k - 1 rounds.
    assert_eq!(engine.oracle_roster().seat_of(&id(9)), Some(3));
    let mut r = 0;
    for _ in 1..k {
        t += 1_000;
        r += 1;
        let events = certify(&mut engine, round(&[0, 1, 2, 9], r, t, Some(9)), t);
        assert!(certified(&events), "{events:?}");
        assert!(!events
            .iter()
            .any(|e| matches!(e, Event::OracleFault { .. })));
    }
    // Member 2 removed at epoch 3: seats 2 and 3 are vacant but for 9, which now takes the
    // lower one.
    t += 1_000;
    remove(&mut engine, 2, 2, &[0, 1, 9], t);
    let roster = engine.oracle_roster();
    assert_eq!((roster.seat_of(&id(9)), roster.holder(3)), (Some(2), None));
    // Its next deviant round completes its own streak in its new seat: evidence against it.
    t += 1_000;
    r += 1;
    let events = certify(&mut engine, round(&[0, 1, 9], r, t, Some(9)), t);
    assert!(certified(&events), "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::OracleFault { evidence } if evidence.node == id(9) && evidence.rounds == k
        )),
        "{events:?}"
    );
}

#[test]
fn the_newcomer_does_not_inherit_the_removed_members_deviance() {
    let mut engine = engine();
    let fault_rounds = engine.config().oracle.fault_rounds;
    let mut t = NOW_MS;
    // Member 3 deviates in every round but the last one of a streak: one short of evidence.
    for r in 1..u64::from(fault_rounds) {
        let events = certify(&mut engine, round(&[0, 1, 2, 3], r, t, Some(3)), t);
        assert!(certified(&events));
        assert!(!events
            .iter()
            .any(|e| matches!(e, Event::OracleFault { .. })));
        t += 1_000;
    }
    remove_member_3(&mut engine, t);
    admit_9_for_3(&mut engine, t + 100);
    t += 1_000;
    // The newcomer deviates once: its own first deviant round, not its predecessor's tenth.
    let events = certify(
        &mut engine,
        round(&[0, 1, 2, 9], u64::from(fault_rounds), t, Some(9)),
        t,
    );
    assert!(certified(&events));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::OracleFault { .. })),
        "{events:?}"
    );
}

#[test]
fn an_oracle_committee_other_than_the_sentinels_keeps_its_genesis_seats() {
    // The oracle's members are not the sentinel's: the committee's changes do not move them.
    let mut engine = engine_with(|config| config.oracle.members = (10..14).map(id).collect());
    remove_member_3(&mut engine, NOW_MS);
    let roster = engine.oracle_roster();
    assert_eq!(roster.held(), 4);
    assert_eq!(roster.holder(3), Some(&id(13)));
}
