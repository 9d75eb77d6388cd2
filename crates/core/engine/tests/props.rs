//! Property tests over random order streams: the book never stays crossed, price-time priority
//! holds, money is conserved, no fill happens outside the band, and execution is deterministic,
//! also across snapshot and restore.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_engine::command::{
    LimitOrder, SelfTradePrevention, StopDirection, StopOrder, TimeInForce,
};
use bulwark_engine::{ClientCommand, Command, Engine, Event, OrderId, Side};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Limit {
        acct: u64,
        buy: bool,
        offset: i64,
        qty: i64,
        tif: u8,
        post_only: bool,
    },
    Market {
        acct: u64,
        buy: bool,
        qty: i64,
    },
    Cancel {
        acct: u64,
        pick: usize,
    },
    Amend {
        acct: u64,
        pick: usize,
        offset: i64,
        qty: i64,
    },
    MassCancel {
        acct: u64,
    },
    Index {
        bps: i64,
    },
    Advance {
        ms: u64,
    },
    Withdraw {
        acct: u64,
        usd: i128,
    },
    Stop {
        acct: u64,
        buy: bool,
        rises: bool,
        offset: i64,
        limit: Option<i64>,
        qty: i64,
        reduce_only: bool,
    },
}

fn op(amends: bool) -> impl Strategy<Value = Op> {
    let acct = 1u64..=4;
    prop_oneof![
        10 => (acct.clone(), any::<bool>(), -60i64..60, 1i64..400, 0u8..3, any::<bool>())
            .prop_map(|(acct, buy, offset, qty, tif, post_only)| Op::Limit { acct, buy, offset, qty, tif, post_only }),
        2 => (acct.clone(), any::<bool>(), 1i64..300).prop_map(|(acct, buy, qty)| Op::Market { acct, buy, qty }),
        3 => (acct.clone(), any::<usize>()).prop_map(|(acct, pick)| Op::Cancel { acct, pick }),
        (if amends { 2 } else { 0 }) => (acct.clone(), any::<usize>(), -60i64..60, 1i64..400)
            .prop_map(|(acct, pick, offset, qty)| Op::Amend { acct, pick, offset, qty }),
        1 => acct.clone().prop_map(|acct| Op::MassCancel { acct }),
        1 => (-150i64..150).prop_map(|bps| Op::Index { bps }),
        1 => (1u64..3_600_000).prop_map(|ms| Op::Advance { ms }),
        1 => (acct.clone(), 1i128..5_000).prop_map(|(acct, usd)| Op::Withdraw { acct, usd }),
        2 => (
            (acct, any::<bool>(), any::<bool>(), -150i64..150),
            (proptest::option::of(-60i64..60), 1i64..300, any::<bool>()),
        )
            .prop_map(|((acct, buy, rises, offset), (limit, qty, reduce_only))| Op::Stop {
                acct, buy, rises, offset, limit, qty, reduce_only,
            }),
    ]
}

struct Run {
    venue: Venue,
    index_usd: i64,
    /// Accepted orders with their owners; cancels and amends act as the owner.
    orders: Vec<(OrderId, u64)>,
}

fn band(e: &Engine) -> (i64, i64) {
    let mark = e.mark(BTC).unwrap();
    let w = (mark * 500 / 10_000).max(1);
    (mark - w, mark + w)
}

impl Run {
    fn new() -> Self {
        let mut venue = Venue::new();
        for a in 1..=4 {
            venue.fund(a, 50_000 + 100_000 * a as i128);
        }
        venue.index(60_000);
        Run {
            venue,
            index_usd: 60_000,
            orders: vec![],
        }
    }

    /// One of the last eight accepted orders (older ones have mostly left the book).
    fn recent(&self, pick: usize) -> (OrderId, u64) {
        let n = self.orders.len();
        self.orders[n - 1 - pick % n.min(8)]
    }

    fn command(&mut self, op: &Op) -> Vec<Command> {
        let mark = self.venue.engine.mark(BTC).unwrap();
        let side = |buy| if buy { Side::Buy } else { Side::Sell };
        match *op {
            Op::Limit {
                acct,
                buy,
                offset,
                qty,
                tif,
                post_only,
            } => vec![client(
                acct,
                ClientCommand::Limit(LimitOrder {
                    instrument: BTC,
                    side: side(buy),
                    price: mark + offset * 10,
                    qty,
                    tif: [TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok][tif as usize],
                    post_only,
                    reduce_only: false,
                    stp: SelfTradePrevention::CancelResting,
                    client_order_id: 0,
                }),
            )],
            Op::Market { acct, buy, qty } => vec![market(acct, side(buy), qty)],
            Op::Cancel { acct, .. } | Op::Amend { acct, .. } if self.orders.is_empty() => {
                vec![client(
                    acct,
                    ClientCommand::MassCancel {
                        instrument: Some(BTC),
                    },
                )]
            }
            Op::Cancel { pick, .. } => {
                let (order_id, acct) = self.recent(pick);
                vec![client(
                    acct,
                    ClientCommand::Cancel {
                        instrument: BTC,
                        order_id,
                    },
                )]
            }
            Op::Amend {
                pick, offset, qty, ..
            } => {
                let (order_id, acct) = self.recent(pick);
                vec![client(
                    acct,
                    ClientCommand::Amend {
                        instrument: BTC,
                        order_id,
                        price: mark + offset * 10,
                        qty,
                        expect_qty: None,
                    },
                )]
            }
            Op::MassCancel { acct } => {
                vec![client(acct, ClientCommand::MassCancel { instrument: None })]
            }
            Op::Index { bps } => {
                self.index_usd = (self.index_usd + self.index_usd * bps / 10_000).max(1_000);
                vec![index_cmd(self.index_usd)]
            }
            Op::Advance { ms } => {
                self.venue.time += ms;
                vec![]
            }
            Op::Stop {
                acct,
                buy,
                rises,
                offset,
                limit,
                qty,
                reduce_only,
            } => {
                let trigger = mark + offset * 10;
                vec![client(
                    acct,
                    ClientCommand::Stop(StopOrder {
                        instrument: BTC,
                        side: side(buy),
                        direction: if rises {
                            StopDirection::Rises
                        } else {
                            StopDirection::Falls
                        },
                        trigger_price: trigger,
                        // A stop-limit's limit sits near its trigger, as clients place them.
                        limit_price: limit.map(|o| trigger + o * 10),
                        qty,
                        reduce_only,
                        client_order_id: 0,
                    }),
                )]
            }
            Op::Withdraw { acct, usd } => {
                vec![client(
                    acct,
                    ClientCommand::Withdraw {
                        amount: (usd * USD) as i64,
                        destination: [1; 32],
                        chain: bulwark_engine::PayoutChain::Bitcoin,
                    },
                )]
            }
        }
    }

    /// Runs one op as one batch and checks the per-batch invariants.
    fn step(&mut self, op: &Op, check_priority: bool) -> Vec<Event> {
        let before = band(&self.venue.engine);
        let batch = self.command(op);
        let evs = self.venue.run(batch);
        let after = band(&self.venue.engine);
        let e = &self.venue.engine;
        assert!(e.totals().conserved(), "money conserved after {op:?}");
        if let (Some((b, _)), Some((a, _))) = (
            e.book(BTC).unwrap().best_bid(),
            e.book(BTC).unwrap().best_ask(),
        ) {
            assert!(b < a, "book crossed after {op:?}: {b} >= {a}");
        }
        let mut last: Option<(OrderId, Side, i64, OrderId)> = None;
        for ev in &evs {
            match ev {
                Event::Accepted {
                    order_id, account, ..
                }
                | Event::StopPlaced {
                    order_id, account, ..
                } => self.orders.push((*order_id, account.0)),
                Event::Fill {
                    price,
                    taker_order,
                    taker_side,
                    maker_order,
                    ..
                } => {
                    let inside = |(lo, hi): (i64, i64)| (lo..=hi).contains(price);
                    assert!(
                        inside(before) || inside(after),
                        "fill at {price} outside {before:?} and {after:?}"
                    );
                    if let Some((t, s, p, m)) = last {
                        if check_priority && t == *taker_order {
                            match s {
                                Side::Buy => {
                                    assert!(*price >= p, "buy taker walked to a better price")
                                }
                                Side::Sell => {
                                    assert!(*price <= p, "sell taker walked to a better price")
                                }
                            }
                            if *price == p {
                                assert!(maker_order.0 > m.0, "time priority broken at {price}");
                            }
                        }
                    }
                    last = Some((*taker_order, *taker_side, *price, *maker_order));
                }
                _ => {}
            }
        }
        evs
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_replay_is_deterministic(ops in proptest::collection::vec(op(true), 1..250)) {
        let mut a = Run::new();
        let mut events_a = vec![];
        for o in &ops {
            events_a.extend(a.step(o, false));
        }
        // Same stream, fresh engine, with a snapshot/restore halfway.
        let mut b = Run::new();
        let mut events_b = vec![];
        let half = ops.len() / 2;
        for (k, o) in ops.iter().enumerate() {
            if k == half {
                let snap = b.venue.engine.snapshot();
                let restored = Engine::restore(&snap).unwrap();
                prop_assert_eq!(restored.state_root(), b.venue.engine.state_root());
                b.venue.engine = restored;
            }
            events_b.extend(b.step(o, false));
        }
        prop_assert_eq!(events_a, events_b);
        prop_assert_eq!(a.venue.engine.state_root(), b.venue.engine.state_root());
    }

    #[test]
    fn price_time_priority_holds(ops in proptest::collection::vec(op(false), 1..250)) {
        let mut r = Run::new();
        for o in &ops {
            r.step(o, true);
        }
    }
}

/// Guards the properties above against vacuity: a fixed long stream must trade, cancel, amend and
/// liquidate, so the checks above see real fills.
#[test]
fn generated_streams_exercise_the_engine() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let ops = proptest::collection::vec(op(true), 2_000)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut r = Run::new();
    let (mut fills, mut cancels, mut amends, mut stops_filled) = (0, 0, 0, 0);
    let mut triggered = std::collections::BTreeSet::new();
    let mut rej = std::collections::BTreeMap::new();
    for o in &ops {
        for e in r.step(o, false) {
            match e {
                Event::Fill { taker_order, .. } => {
                    fills += 1;
                    stops_filled += usize::from(triggered.contains(&taker_order));
                }
                Event::StopTriggered { order_id, .. } => {
                    triggered.insert(order_id);
                }
                Event::Cancelled { .. } => cancels += 1,
                Event::Amended { .. } => amends += 1,
                Event::Rejected { reason, .. } => {
                    *rej.entry(format!("{reason:?}")).or_insert(0) += 1
                }
                _ => {}
            }
        }
    }
    assert!(
        fills > 100 && cancels > 50 && amends > 10 && triggered.len() > 10 && stops_filled > 5,
        "fills {fills} cancels {cancels} amends {amends} stops triggered {} and filled \
         {stops_filled} rejected {rej:?}",
        triggered.len()
    );
}
