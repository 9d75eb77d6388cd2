//! Stop orders: placement, triggering on the mark, the ordinary order path they go through,
//! cancellation, the per-account cap, oracle guards holding them, and funding paused by guards.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_engine::command::{StopDirection, StopOrder, SystemCommand};
use bulwark_engine::event::CancelReason;
use bulwark_engine::instrument::InstrumentKind;
use bulwark_engine::oracle::GuardKind;
use bulwark_engine::snapshot::SnapshotError;
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, EngineConfig, Event, InstrumentId, OrderId,
    RejectReason, Side,
};
use common::oracle::{setup, setup_with, Setup, P};
use common::*;

fn stop(side: Side, direction: StopDirection, trigger: i64, qty: i64) -> StopOrder {
    StopOrder {
        instrument: BTC,
        side,
        direction,
        trigger_price: trigger,
        limit_price: None,
        qty,
        reduce_only: false,
        client_order_id: 42,
    }
}

fn place(account: u64, order: StopOrder) -> Command {
    client(account, ClientCommand::Stop(order))
}

fn placed_id(evs: &[Event]) -> OrderId {
    evs.iter()
        .find_map(|e| match e {
            Event::StopPlaced { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stop placed: {evs:?}"))
}

fn triggered(evs: &[Event]) -> Vec<OrderId> {
    evs.iter()
        .filter_map(|e| match e {
            Event::StopTriggered { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect()
}

fn position(engine: &Engine, account: u64) -> i64 {
    engine
        .account(AccountId(account))
        .unwrap()
        .position(BTC)
        .qty
}

/// Accounts 1..=3 funded, index 60 000 (mark 600 000), and account 1 long 10 from account 2.
fn long_venue() -> Venue {
    let mut v = Venue::new();
    v.index(60_000);
    for a in 1..=3 {
        v.fund(a, 1_000_000);
    }
    v.run(vec![limit(2, Side::Sell, 600_000, 10)]);
    v.run(vec![limit(1, Side::Buy, 600_000, 10)]);
    assert_eq!(position(&v.engine, 1), 10);
    v
}

#[test]
fn a_stop_market_triggers_when_the_mark_falls_through_and_fills() {
    let mut v = long_venue();
    let evs = v.run(vec![
        place(1, stop(Side::Sell, StopDirection::Falls, 597_000, 10)),
        limit(3, Side::Buy, 594_000, 10),
    ]);
    let id = placed_id(&evs);
    assert!(triggered(&evs).is_empty());
    assert!(v.engine.stop(id).is_some());

    // 598 000 is above the trigger: nothing happens.
    assert!(triggered(&v.index(59_800)).is_empty());
    assert_eq!(position(&v.engine, 1), 10);

    // 596 000 crosses it: the stop becomes a market order with the stop's id and fills.
    let evs = v.index(59_600);
    assert_eq!(triggered(&evs), vec![id]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopTriggered {
            mark: 596_000,
            trigger_price: 597_000,
            ..
        }
    )));
    assert_eq!(accepted_id(&evs), id);
    assert_eq!(fills(&evs), vec![(594_000, 10)]);
    assert_eq!(position(&v.engine, 1), 0);
    assert!(v.engine.stop(id).is_none());
    assert_eq!(v.engine.account(AccountId(1)).unwrap().stops, 0);
    assert!(v.engine.totals().conserved());

    // Gone for good: a later crossing does nothing.
    v.index(59_800);
    assert!(triggered(&v.index(59_500)).is_empty());
}

#[test]
fn a_stop_limit_rests_as_a_limit_order_and_stops_trigger_in_placement_order() {
    let mut v = long_venue();
    let limit_stop = StopOrder {
        limit_price: Some(603_000),
        ..stop(Side::Buy, StopDirection::Rises, 602_000, 4)
    };
    let first = placed_id(&v.run(vec![place(3, limit_stop)]));
    let second = placed_id(&v.run(vec![place(
        2,
        stop(Side::Buy, StopDirection::Rises, 601_500, 3),
    )]));
    assert!(first < second);
    assert!(
        triggered(&v.index(60_100)).is_empty(),
        "601 000 is below both triggers"
    );
    assert_eq!(v.engine.stop(second).unwrap().held_by, None);

    // One index move crosses both: they trigger in id order, not trigger-price order.
    let evs = v.index(60_250);
    assert_eq!(triggered(&evs), vec![first, second]);
    // The stop-limit rests at its limit, the stop-market finds nothing to buy and is dropped.
    let book = v.engine.book(BTC).unwrap();
    let resting: Vec<_> = book.orders().map(|r| (r.id, r.price, r.qty)).collect();
    assert_eq!(resting, vec![(first, 603_000, 4)]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::Cancelled { order_id, reason: CancelReason::ImmediateRemainder, .. } if *order_id == second
    )));
    // The triggered order is ordinary: cancel by the same id.
    let evs = v.run(vec![client(
        3,
        ClientCommand::Cancel {
            instrument: BTC,
            order_id: first,
        },
    )]);
    assert!(matches!(
        evs[..],
        [Event::Cancelled {
            reason: CancelReason::Requested,
            ..
        }]
    ));
}

#[test]
fn a_resting_stop_cancels_by_its_id_and_only_for_its_owner() {
    let mut v = long_venue();
    let id = placed_id(&v.run(vec![place(
        1,
        stop(Side::Sell, StopDirection::Falls, 597_000, 10),
    )]));
    let cancel = |account| {
        client(
            account,
            ClientCommand::Cancel {
                instrument: BTC,
                order_id: id,
            },
        )
    };
    let evs = v.run(vec![cancel(2)]);
    assert_eq!(rejections(&evs), vec![RejectReason::UnknownOrder]);
    assert!(v.engine.stop(id).is_some());
    let evs = v.run(vec![cancel(1)]);
    assert_eq!(
        evs,
        vec![Event::StopCancelled {
            order_id: id,
            account: AccountId(1),
            instrument: BTC,
            reason: CancelReason::Requested,
        }]
    );
    assert!(v.engine.stop(id).is_none());
    assert_eq!(v.engine.account(AccountId(1)).unwrap().stops, 0);
    assert!(triggered(&v.index(59_000)).is_empty());

    // Mass cancel takes stops with the orders.
    let id = placed_id(&v.run(vec![place(
        1,
        stop(Side::Sell, StopDirection::Falls, 580_000, 1),
    )]));
    let evs = v.run(vec![client(
        1,
        ClientCommand::MassCancel { instrument: None },
    )]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopCancelled { order_id, reason: CancelReason::MassCancel, .. } if *order_id == id
    )));
    assert_eq!(v.engine.stops().count(), 0);
}

#[test]
fn stops_are_capped_per_account() {
    let mut v = Venue {
        engine: Engine::new(EngineConfig {
            stops_per_account_max: 3,
            ..EngineConfig::default()
        }),
        time: 0,
    };
    v.index(60_000);
    v.fund(1, 1_000_000);
    v.fund(2, 1_000_000);
    let s = |trigger| place(1, stop(Side::Sell, StopDirection::Falls, trigger, 1));
    let evs = v.run(vec![s(590_000), s(589_000), s(588_000), s(587_000)]);
    let placed: Vec<OrderId> = evs
        .iter()
        .filter_map(|e| match e {
            Event::StopPlaced { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect();
    assert_eq!(placed.len(), 3);
    assert_eq!(rejections(&evs), vec![RejectReason::TooManyStops]);
    // The cap is per account.
    assert!(rejections(&v.run(vec![place(
        2,
        stop(Side::Buy, StopDirection::Rises, 610_000, 1)
    )]))
    .is_empty());
    // A cancelled stop frees its slot.
    v.run(vec![client(
        1,
        ClientCommand::Cancel {
            instrument: BTC,
            order_id: placed[0],
        },
    )]);
    assert!(rejections(&v.run(vec![s(586_000)])).is_empty());
    assert_eq!(v.engine.account(AccountId(1)).unwrap().stops, 3);
}

#[test]
fn a_reduce_only_stop_never_increases_a_position() {
    let mut v = long_venue();
    let reduce = |account, qty| {
        place(
            account,
            StopOrder {
                reduce_only: true,
                ..stop(Side::Sell, StopDirection::Falls, 597_000, qty)
            },
        )
    };
    // Account 3 is flat: its reduce-only sell stop is refused when it triggers.
    let flat = placed_id(&v.run(vec![reduce(3, 5)]));
    // Account 1 is long 10: a reduce-only sell of 25 is capped at 10.
    let long = placed_id(&v.run(vec![reduce(1, 25), limit(2, Side::Buy, 595_000, 30)]));
    let evs = v.index(59_600);
    assert_eq!(triggered(&evs), vec![flat, long]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopRejected { order_id, reason: RejectReason::ReduceOnlyWouldIncrease, .. }
            if *order_id == flat
    )));
    assert_eq!(position(&v.engine, 3), 0);
    assert_eq!(fills(&evs), vec![(595_000, 10)]);
    assert_eq!(position(&v.engine, 1), 0, "closed, not flipped short");
    assert!(v.engine.totals().conserved());
}

#[test]
fn liquidation_takes_the_accounts_stops() {
    let mut v = Venue::new();
    v.index(60_000);
    v.fund(1, 1_000_000);
    v.fund(5, 1_300); // 1 BTC long at 60 000 needs 1 200 initial, 600 maintenance.
    v.run(vec![limit(1, Side::Sell, 600_000, 1_000)]);
    v.run(vec![limit(5, Side::Buy, 600_000, 1_000)]);
    // A take-profit far above: it never triggers before the account is liquidated.
    let id = placed_id(&v.run(vec![place(
        5,
        StopOrder {
            reduce_only: true,
            ..stop(Side::Sell, StopDirection::Rises, 650_000, 1_000)
        },
    )]));
    let evs = v.index(59_300);
    assert!(
        evs.iter().any(|e| matches!(e, Event::Liquidation { .. })),
        "{evs:?}"
    );
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopCancelled { order_id, reason: CancelReason::Liquidation, .. } if *order_id == id
    )));
    assert!(v.engine.stop(id).is_none());
    assert_eq!(v.engine.account(AccountId(5)).unwrap().stops, 0);
}

#[test]
fn an_expiring_option_takes_its_stops_with_it() {
    let mut v = Venue::new();
    v.index(60_000);
    v.fund(1, 1_000_000);
    let call = InstrumentId(2); // expires on day 7
    let id = placed_id(&v.run(vec![place(
        1,
        StopOrder {
            instrument: call,
            ..stop(Side::Buy, StopDirection::Rises, 1_000_000, 1)
        },
    )]));
    let evs = v.at(7 * 86_400_000, vec![index_cmd(60_000)]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopCancelled { order_id, reason: CancelReason::Expiry, .. } if *order_id == id
    )));
    assert!(v.engine.stop(id).is_none());
}

#[test]
fn stops_are_in_the_state_root_and_the_snapshot() {
    let mut v = long_venue();
    let root = v.engine.state_root();
    let id = placed_id(&v.run(vec![place(
        1,
        stop(Side::Sell, StopDirection::Falls, 597_000, 10),
    )]));
    let with_stop = v.engine.state_root();
    assert_ne!(root, with_stop);
    let bytes = v.engine.snapshot();
    let mut restored = Engine::restore(&bytes).unwrap();
    assert_eq!(restored.state_root(), with_stop);
    assert_eq!(restored.stop(id), v.engine.stop(id));
    // The restored engine triggers exactly as the original does.
    let mut a = Vec::new();
    let mut b = Vec::new();
    v.engine.execute(v.time, &[index_cmd(59_000)], &mut a);
    restored.execute(v.time, &[index_cmd(59_000)], &mut b);
    assert_eq!(a, b);
    assert_eq!(triggered(&a), vec![id]);
    assert_eq!(restored.state_root(), v.engine.state_root());
    // An older snapshot format is refused by version, not misread.
    let mut old = bytes.clone();
    old[6] = 2;
    assert!(matches!(
        Engine::restore(&old),
        Err(SnapshotError::Version(2))
    ));
    for cut in [7, bytes.len() / 2, bytes.len() - 1] {
        assert!(Engine::restore(&bytes[..cut]).is_err());
    }
}

#[test]
fn stop_commands_read_from_json() {
    let line = r#"{"type":"stop","account":1,"instrument":0,"side":"sell","direction":"falls",
        "trigger_price":597000,"limit_price":596000,"qty":10,"reduce_only":true}"#;
    let cmd: Command = serde_json::from_str(line).unwrap();
    assert_eq!(
        cmd,
        Command::Client {
            account: AccountId(1),
            nonce: 0,
            command: ClientCommand::Stop(StopOrder {
                limit_price: Some(596_000),
                reduce_only: true,
                client_order_id: 0,
                ..stop(Side::Sell, StopDirection::Falls, 597_000, 10)
            }),
        }
    );
}

/// Opens accounts 1 to 3 on a committee engine with plenty of collateral.
fn fund_committee(s: &mut Setup, t: u64) {
    let mut batch = Vec::new();
    for a in 1..=3 {
        batch.push(Command::System(SystemCommand::OpenAccount {
            account: AccountId(a),
            public_key: [a as u8; 32],
        }));
        batch.push(Command::System(SystemCommand::Deposit {
            account: AccountId(a),
            amount: 1_000_000 * 1_000_000,
        }));
    }
    s.run(t, batch);
}

#[test]
fn a_stop_is_held_while_the_staleness_guard_is_open_and_triggers_after_it_closes() {
    let mut s = setup();
    let first = s.all(1, [P; 4], 1_000);
    s.run(1_000, vec![first]);
    fund_committee(&mut s, 1_000);
    let evs = s.run(
        1_000,
        vec![
            place(1, stop(Side::Sell, StopDirection::Falls, 599_000, 10)),
            limit(2, Side::Buy, 598_000, 10),
        ],
    );
    let id = placed_id(&evs);

    // Silence opens the staleness guard.
    let evs = s.run(6_001, vec![]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::OracleGuardOpened {
            guard: GuardKind::Stale,
            ..
        }
    )));
    // While it is open, a new stop that could add risk is refused; a reduce-only one is not.
    let evs = s.run(
        6_001,
        vec![
            place(3, stop(Side::Buy, StopDirection::Rises, 610_000, 1)),
            place(
                3,
                StopOrder {
                    reduce_only: true,
                    ..stop(Side::Buy, StopDirection::Rises, 610_000, 1)
                },
            ),
        ],
    );
    assert_eq!(rejections(&evs), vec![RejectReason::OracleGuardOpen]);
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::StopPlaced { .. }))
            .count(),
        1
    );

    // Rounds resume 20 bps lower (inside the clamp): the mark crosses 599 000, but the guard
    // stays open for three healthy rounds and the stop is held, once reported.
    let lower = P - P / 500;
    let r2 = s.all(2, [lower; 4], 7_000);
    let evs = s.run(7_000, vec![r2]);
    assert_eq!(s.engine.mark(BTC), Some(598_800));
    assert!(triggered(&evs).is_empty(), "{evs:?}");
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopHeld { order_id, guard: GuardKind::Stale, mark: 598_800, .. } if *order_id == id
    )));
    assert_eq!(s.engine.stop(id).unwrap().held_by, Some(GuardKind::Stale));
    let r3 = s.all(3, [lower; 4], 8_000);
    let evs = s.run(8_000, vec![r3]);
    assert!(triggered(&evs).is_empty());
    assert!(
        !evs.iter().any(|e| matches!(e, Event::StopHeld { .. })),
        "reported once"
    );
    assert_eq!(position(&s.engine, 1), 0);

    // The third healthy round closes the guard; the stop triggers in that batch and fills.
    let r4 = s.all(4, [lower; 4], 9_000);
    let evs = s.run(9_000, vec![r4]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::OracleGuardClosed {
            guard: GuardKind::Stale,
            ..
        }
    )));
    assert_eq!(triggered(&evs), vec![id]);
    assert_eq!(fills(&evs), vec![(598_000, 10)]);
    assert_eq!(position(&s.engine, 1), -10);
}

#[test]
fn a_stop_is_held_while_the_jump_guard_is_open_and_triggers_after_it_closes() {
    // A wide clamp lets the index follow a 6 % drop at once, so only the jump breaker trips.
    let mut s = setup_with(|c| c.oracle.clamp_bps = 10_000);
    let first = s.all(1, [P; 4], 1_000);
    s.run(1_000, vec![first]);
    fund_committee(&mut s, 1_000);
    let id = placed_id(&s.run(
        1_000,
        vec![place(
            1,
            stop(Side::Sell, StopDirection::Falls, 580_000, 10),
        )],
    ));
    let drop = P - P * 6 / 100;
    let r2 = s.all(2, [drop; 4], 2_000);
    let evs = s.run(2_000, vec![r2]);
    assert_eq!(s.engine.mark(BTC), Some(564_000));
    let guards: Vec<GuardKind> = s.engine.oracle_guards(0).iter().map(|g| g.kind).collect();
    assert_eq!(guards, vec![GuardKind::Jump]);
    assert!(triggered(&evs).is_empty());
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::StopHeld {
            guard: GuardKind::Jump,
            ..
        }
    )));

    let mut closed_at = None;
    for r in 3..=20u64 {
        let t = r * 1_000;
        let cmd = s.all(r, [drop; 4], t);
        let evs = s.run(t, vec![cmd]);
        let closed = evs.iter().any(|e| {
            matches!(
                e,
                Event::OracleGuardClosed {
                    guard: GuardKind::Jump,
                    ..
                }
            )
        });
        if closed {
            assert_eq!(triggered(&evs), vec![id], "triggers in the closing batch");
            assert_eq!(accepted_id(&evs), id);
            closed_at = Some(r);
            break;
        }
        assert!(
            triggered(&evs).is_empty(),
            "round {r}: held while the guard is open"
        );
        assert!(s.engine.stop(id).is_some());
    }
    assert!(closed_at.is_some(), "the jump guard closes by rule");
    assert!(s.engine.stop(id).is_none());
}

#[test]
fn funding_is_skipped_while_a_guard_is_open_and_resumes_after() {
    let mut s = setup_with(|c| {
        if let InstrumentKind::Perpetual {
            funding_interval_ms,
            ..
        } = &mut c.instruments[0].kind
        {
            *funding_interval_ms = 60_000;
        }
    });
    let round = |s: &mut Setup, r: u64, t: u64| {
        let cmd = s.all(r, [P; 4], t);
        s.run(t, vec![cmd])
    };
    let funding = |evs: &[Event]| {
        evs.iter()
            .filter(|e| matches!(e, Event::Funding { instrument, .. } if *instrument == BTC))
            .count()
    };
    round(&mut s, 1, 1_000);
    fund_committee(&mut s, 1_000);
    s.run(1_000, vec![limit(1, Side::Sell, 600_000, 100)]);
    s.run(1_000, vec![limit(2, Side::Buy, 600_000, 100)]);
    // Quotes 0.3 % above the index make the mark rich: longs (account 2) pay.
    s.run(
        1_000,
        vec![
            limit(3, Side::Buy, 601_700, 1),
            limit(3, Side::Sell, 601_900, 1),
        ],
    );
    let cash = |s: &Setup| s.engine.account(AccountId(2)).unwrap().cash;

    // A healthy interval: funding is exchanged at 60 s.
    let mut r = 2;
    let mut exchanged = 0;
    for t in (4_000..=60_000).step_by(4_000) {
        exchanged += funding(&round(&mut s, r, t));
        r += 1;
    }
    assert_eq!(exchanged, 1);
    let after_first = cash(&s);

    // Then silence: the staleness guard opens, and the exchange due at 120 s is skipped.
    round(&mut s, r, 64_000);
    r += 1;
    s.run(70_000, vec![]);
    assert!(!s.engine.oracle_guards(0).is_empty());
    let evs = s.run(120_000, vec![]);
    assert_eq!(funding(&evs), 0);
    assert!(evs.contains(&Event::FundingPaused {
        instrument: BTC,
        guard: GuardKind::Stale,
        funding_ms: 120_000,
    }));
    assert_eq!(cash(&s), after_first, "nothing is exchanged while guarded");

    // Rounds resume, the guard closes after three, and the next exchange (180 s) happens.
    let mut exchanged = 0;
    for t in (121_000..=123_000)
        .step_by(1_000)
        .chain((124_000..=180_000).step_by(4_000))
    {
        let evs = round(&mut s, r, t);
        r += 1;
        exchanged += funding(&evs);
        assert!(!evs.iter().any(|e| matches!(e, Event::FundingPaused { .. })));
    }
    assert!(s.engine.oracle_guards(0).is_empty());
    assert_eq!(exchanged, 1);
    assert!(
        cash(&s) < after_first,
        "longs pay again once the guard has closed"
    );
    assert!(s.engine.totals().conserved());
}
