//! Quorum-certified oracle rounds: the round rules, the guards, fault evidence, the codec.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_engine::codec::{decode_command, encode_command, CodecError};
use bulwark_engine::command::{ClientCommand, LimitOrder, SystemCommand, TimeInForce};
use bulwark_engine::oracle::{
    verify_oracle_round, GuardKind, OracleConfig, OracleRoundError, SignedObservation,
    ORACLE_ROUND_OBSERVATIONS_MAX,
};
use bulwark_engine::{
    AccountId, Command, Engine, EngineConfig, Event, InstrumentId, RejectReason, Side,
};
use common::oracle::{obs, round_cmd, setup, P};
use ed25519_dalek::SigningKey;

#[test]
fn the_development_path_and_the_committee_path_exclude_each_other() {
    let mut dev = Engine::new(EngineConfig::default());
    let s = setup();
    let mut out = Vec::new();
    dev.execute(1_000, &[s.all(1, [P; 4], 1_000)], &mut out);
    assert!(matches!(
        out[..],
        [Event::Rejected {
            reason: RejectReason::OracleNotConfigured,
            ..
        }]
    ));
    let mut s = setup();
    let unsigned = Command::System(SystemCommand::IndexPrice {
        underlying: 0,
        price_micros: P,
    });
    assert_eq!(
        s.refused(1_000, unsigned),
        RejectReason::UncertifiedIndexPrice
    );
}

#[test]
fn a_round_needs_2f_plus_1_distinct_valid_member_signatures() {
    let mut s = setup();
    let t = 1_000;
    let two = round_cmd(1, vec![obs(&s.keys[0], 1, P, t), obs(&s.keys[1], 1, P, t)]);
    assert_eq!(s.refused(t, two), RejectReason::OracleQuorumNotMet);
    let dup = round_cmd(
        1,
        vec![
            obs(&s.keys[0], 1, P, t),
            obs(&s.keys[1], 1, P, t),
            obs(&s.keys[1], 1, P + 1, t),
        ],
    );
    assert_eq!(s.refused(t, dup), RejectReason::OracleDuplicateSigner);
    let outsider = SigningKey::from_bytes(&[9; 32]);
    let stranger = round_cmd(
        1,
        vec![
            obs(&s.keys[0], 1, P, t),
            obs(&s.keys[1], 1, P, t),
            obs(&outsider, 1, P, t),
        ],
    );
    assert_eq!(s.refused(t, stranger), RejectReason::OracleNotMember);
    let mut forged = obs(&s.keys[2], 1, P, t);
    forged.observation.price_micros += 1;
    let bad = round_cmd(
        1,
        vec![obs(&s.keys[0], 1, P, t), obs(&s.keys[1], 1, P, t), forged],
    );
    assert_eq!(
        verify_oracle_round(
            &s.config,
            0,
            1,
            match &bad {
                Command::System(SystemCommand::OracleRound { observations, .. }) => observations,
                _ => unreachable!(),
            }
        ),
        Err(OracleRoundError::BadSignatures(vec![2]))
    );
    assert_eq!(s.refused(t, bad), RejectReason::OracleBadSignature);
    let zero = round_cmd(
        1,
        vec![
            obs(&s.keys[0], 1, P, t),
            obs(&s.keys[1], 1, P, t),
            obs(&s.keys[2], 1, 0, t),
        ],
    );
    assert_eq!(s.refused(t, zero), RejectReason::OracleValueOutOfRange);
    let old = s.all(1, [P; 4], 1_000);
    assert_eq!(s.refused(60_000, old), RejectReason::OracleValueOutOfRange);
    let mismatched = round_cmd(2, vec![obs(&s.keys[0], 1, P, t); 3]);
    assert_eq!(s.refused(t, mismatched), RejectReason::OracleWrongRound);

    let three = round_cmd(
        1,
        vec![
            obs(&s.keys[0], 1, P - 10, 60_000),
            obs(&s.keys[1], 1, P + 10, 60_000),
            obs(&s.keys[3], 1, P, 60_000),
        ],
    );
    let out = s.run(60_000, vec![three]);
    assert!(
        out.iter().any(|e| matches!(
            e,
            Event::OracleCertified {
                round: 1,
                signers: 3,
                aggregate_micros: P,
                ..
            }
        )),
        "{out:?}"
    );
    assert_eq!(s.engine.index_price(0), Some(P));
    let again = s.all(1, [P; 4], 60_000);
    assert_eq!(s.refused(60_000, again), RejectReason::OracleWrongRound);
}

#[test]
fn f_colluders_cannot_move_the_median_and_leave_evidence() {
    let mut s = setup();
    let k = u64::from(s.config.fault_rounds);
    let mut faults = Vec::new();
    for r in 1..=k {
        let t = r * 1_000;
        let cmd = s.all(r, [P, P, P + 5_000_000, P * 8 / 10], t);
        let out = s.run(t, vec![cmd]);
        assert_eq!(s.engine.index_price(0), Some(P), "round {r}");
        faults.extend(
            out.into_iter()
                .filter(|e| matches!(e, Event::OracleFault { .. })),
        );
    }
    assert_eq!(faults.len(), 1, "{faults:?}");
    let (records, dropped) = s.engine.oracle_faults();
    let records: Vec<_> = records.collect();
    assert_eq!((records.len(), dropped), (1, 0));
    assert_eq!(records[0].node, s.config.members[3]);
    assert_eq!(records[0].round, k);
    assert_eq!(records[0].deviation_bps, 2_000);
    assert!(records[0].observation.verify().is_ok());
    assert!(s.engine.oracle_guards(0).is_empty());
    // The evidence survives a snapshot byte for byte.
    let restored = Engine::restore(&s.engine.snapshot()).unwrap();
    assert_eq!(restored.state_root(), s.engine.state_root());
    assert_eq!(
        restored.oracle_faults().0.next(),
        s.engine.oracle_faults().0.next()
    );
}

fn order(side: Side, price_ticks: i64, reduce_only: bool) -> ClientCommand {
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side,
        price: price_ticks,
        qty: 10,
        tif: TimeInForce::Gtc,
        post_only: false,
        reduce_only,
        stp: Default::default(),
        client_order_id: 7,
    })
}

#[test]
fn guards_pause_risk_and_close_by_rule() {
    let mut s = setup();
    let first = s.all(1, [P; 4], 1_000);
    s.run(1_000, vec![first]);
    let maker = AccountId(1);
    s.run(
        1_000,
        vec![
            Command::System(SystemCommand::OpenAccount {
                account: maker,
                public_key: [0; 32],
            }),
            Command::System(SystemCommand::Deposit {
                account: maker,
                amount: 1_000_000 * 1_000_000,
            }),
            Command::Client {
                account: maker,
                nonce: 0,
                command: order(Side::Buy, 590_000, false),
            },
        ],
    );
    let resting = s
        .engine
        .book(InstrumentId(0))
        .unwrap()
        .orders()
        .next()
        .unwrap()
        .id;

    // A 2 % move: the index walks 50 bps per round and the clamp guard opens.
    let up = P + P / 50;
    let cmd = s.all(2, [up; 4], 2_000);
    let out = s.run(2_000, vec![cmd]);
    assert_eq!(s.engine.index_price(0), Some(P + P / 200));
    assert!(out.iter().any(|e| matches!(
        e,
        Event::OracleGuardOpened {
            guard: GuardKind::Clamp,
            ..
        }
    )));
    let guards = s.engine.oracle_guards(0);
    assert_eq!(guards.len(), 1);
    assert_eq!(
        (guards[0].kind, guards[0].observed, guards[0].limit),
        (GuardKind::Clamp, 200, 50)
    );

    // While open: new risk is refused, cancels go through.
    let out = s.run(
        2_000,
        vec![
            Command::Client {
                account: maker,
                nonce: 0,
                command: order(Side::Buy, 590_000, false),
            },
            Command::Client {
                account: maker,
                nonce: 0,
                command: ClientCommand::Cancel {
                    instrument: InstrumentId(0),
                    order_id: resting,
                },
            },
        ],
    );
    assert!(matches!(
        out[0],
        Event::Rejected {
            reason: RejectReason::OracleGuardOpen,
            ..
        }
    ));
    assert!(matches!(out[1], Event::Cancelled { .. }), "{out:?}");

    // The index catches up (two more clamped rounds), then three healthy rounds close it.
    let mut closed_at = None;
    for r in 3..=12 {
        let cmd = s.all(r, [up; 4], r * 1_000);
        let out = s.run(r * 1_000, vec![cmd]);
        if out.iter().any(|e| {
            matches!(
                e,
                Event::OracleGuardClosed {
                    guard: GuardKind::Clamp,
                    ..
                }
            )
        }) {
            closed_at = Some(r);
            break;
        }
    }
    assert_eq!(closed_at, Some(7));
    assert_eq!(s.engine.index_price(0), Some(up));
    assert!(s.engine.oracle_guards(0).is_empty());
}

#[test]
fn silence_opens_the_staleness_guard() {
    let mut s = setup();
    let first = s.all(1, [P; 4], 1_000);
    s.run(1_000, vec![first]);
    assert!(s.run(6_000, vec![]).is_empty());
    let out = s.run(6_001, vec![]);
    assert!(matches!(
        out[..],
        [Event::OracleGuardOpened {
            guard: GuardKind::Stale,
            observed: 5_001,
            limit: 5_000,
            ..
        }]
    ));
    let feed = s.engine.oracle_feed(0).unwrap();
    assert_eq!(feed.last_round, 1);
    assert_eq!(feed.guards[0].kind, GuardKind::Stale);
    // Rounds resume: three healthy rounds close it.
    for r in 2..=4 {
        let cmd = s.all(r, [P; 4], 6_000 + r * 1_000);
        s.run(6_000 + r * 1_000, vec![cmd]);
    }
    assert!(s.engine.oracle_guards(0).is_empty());
    // Snapshots carry the oracle state.
    let restored = Engine::restore(&s.engine.snapshot()).unwrap();
    assert_eq!(restored.state_root(), s.engine.state_root());
    assert_eq!(restored.oracle_feed(0), s.engine.oracle_feed(0));
}

#[test]
fn oracle_rounds_encode_canonically_and_decode_bounded() {
    let s = setup();
    let cmd = s.all(7, [P, P + 1, P + 2, P + 3], 7_000);
    let bytes = encode_command(&cmd);
    assert_eq!(decode_command(&bytes).unwrap(), cmd);
    for cut in 0..bytes.len() {
        assert!(decode_command(&bytes[..cut]).is_err());
    }
    // Announce more observations than allowed: refused before allocating.
    let mut big = bytes.clone();
    let count_at = 1 + 1 + 1 + 2 + 8;
    let too_many = u16::try_from(ORACLE_ROUND_OBSERVATIONS_MAX + 1).unwrap();
    big[count_at..count_at + 2].copy_from_slice(&too_many.to_le_bytes());
    assert!(matches!(
        decode_command(&big),
        Err(CodecError::CountTooLarge { .. })
    ));
    let mut short = bytes;
    short[count_at..count_at + 2].copy_from_slice(&5u16.to_le_bytes());
    assert!(matches!(
        decode_command(&short),
        Err(CodecError::CountExceedsInput { .. })
    ));
    let one = obs(&s.keys[0], 1, P, 1);
    assert_eq!(SignedObservation::decode(&one.encode()).unwrap(), one);
    let json = serde_json::to_string(&cmd).unwrap();
    assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
}

#[test]
fn committee_config_is_validated() {
    let s = setup();
    let mut bad = EngineConfig {
        oracle: OracleConfig {
            f: 2,
            ..s.config.clone()
        },
        ..EngineConfig::default()
    };
    assert!(bad.validate().is_err(), "4 members cannot tolerate f = 2");
    bad.oracle.f = 1;
    bad.oracle.members[1] = bad.oracle.members[0];
    assert!(bad.validate().is_err(), "members must be distinct");
    bad.oracle.members[1] = [0; 32];
    assert!(bad.validate().is_err(), "small-order keys are refused");
}

mod properties {
    use bulwark_engine::oracle::{aggregate, Observation, PRICE_MICROS_MAX};
    use proptest::prelude::*;

    fn plain(price: i64, confidence: i64) -> Observation {
        Observation {
            feed: 0,
            round: 1,
            price_micros: price,
            confidence_micros: confidence,
            time_ms: 0,
            sources: 1,
        }
    }

    proptest! {
        /// With at most f arbitrary observations among 3f + 1, the median and its confidence
        /// stay within what the honest observations span.
        #[test]
        fn f_liars_stay_inside_the_honest_range(
            f in 1usize..6,
            honest in proptest::collection::vec((1i64..1_000_000_000, 0i64..1_000), 16),
            liars in proptest::collection::vec((1i64..PRICE_MICROS_MAX, 0i64..1_000_000), 5),
            seed in any::<u64>(),
        ) {
            let n = 3 * f + 1;
            let honest: Vec<Observation> =
                honest.iter().take(n - f).map(|&(p, c)| plain(p, c.min(p))).collect();
            let mut all = honest.clone();
            all.extend(liars.iter().take(f).map(|&(p, c)| plain(p, c.min(p))));
            all.rotate_left((seed % n as u64) as usize);
            let agg = aggregate(&all).unwrap();
            let low = honest.iter().map(|o| o.price_micros).min().unwrap();
            let high = honest.iter().map(|o| o.price_micros).max().unwrap();
            prop_assert!((low..=high).contains(&agg.price_micros), "{agg:?}");
            let width = honest
                .iter()
                .map(|o| (o.price_micros - agg.price_micros).abs() + o.confidence_micros)
                .max()
                .unwrap();
            prop_assert!(agg.confidence_micros <= width, "{agg:?}");
        }
    }
}
