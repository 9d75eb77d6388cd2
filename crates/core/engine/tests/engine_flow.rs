//! End-to-end behaviour of the engine through its public API.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_engine::command::{SystemCommand, TimeInForce};
use bulwark_engine::event::{CancelReason, LiquidationVia};
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, Event, InstrumentId, RejectReason, Side,
};
use common::*;

fn venue() -> Venue {
    let mut v = Venue::new();
    v.fund(1, 100_000);
    v.fund(2, 100_000);
    v.index(60_000);
    v
}

#[test]
fn crossing_orders_fill_and_pay_fees() {
    let mut v = venue();
    v.run(vec![limit(1, Side::Sell, 600_000, 10)]);
    let evs = v.run(vec![limit(2, Side::Buy, 600_100, 10)]);
    assert_eq!(fills(&evs), vec![(600_000, 10)]);
    let t = v.engine.totals();
    assert_eq!(t.fee_pool, 60_000 + 240_000);
    assert!(t.conserved());
    assert_eq!(
        v.engine.account(AccountId(2)).unwrap().position(BTC).qty,
        10
    );
    assert_eq!(
        v.engine.account(AccountId(1)).unwrap().position(BTC).qty,
        -10
    );
    assert_eq!(v.engine.open_interest()[0], 10);
}

#[test]
fn orders_need_a_mark_and_a_price_inside_the_band() {
    let mut v = Venue::new();
    v.fund(1, 1_000);
    assert_eq!(
        rejections(&v.run(vec![limit(1, Side::Buy, 600_000, 1)])),
        vec![RejectReason::NoMarkPrice]
    );
    v.index(60_000);
    let evs = v.run(vec![
        limit(1, Side::Buy, 700_000, 1),
        limit(1, Side::Buy, 0, 1),
        limit(1, Side::Buy, 600_000, 0),
    ]);
    assert_eq!(
        rejections(&evs),
        vec![
            RejectReason::OutsideBand,
            RejectReason::InvalidPrice,
            RejectReason::InvalidSize
        ]
    );
}

#[test]
fn initial_margin_is_enforced() {
    let mut v = venue();
    v.fund(3, 100);
    // 100 lots = 0.1 BTC = 6 000 USD notional needs 120 USD at 2 %.
    assert_eq!(
        rejections(&v.run(vec![limit(3, Side::Buy, 600_000, 100)])),
        vec![RejectReason::InsufficientMargin]
    );
    assert!(rejections(&v.run(vec![limit(3, Side::Buy, 600_000, 50)])).is_empty());
    // A second order on the same side adds exposure and is refused; the other side does not add.
    assert_eq!(
        rejections(&v.run(vec![limit(3, Side::Buy, 600_000, 40)])),
        vec![RejectReason::InsufficientMargin]
    );
    assert!(rejections(&v.run(vec![limit(3, Side::Sell, 610_000, 40)])).is_empty());
}

#[test]
fn rejected_commands_change_no_state() {
    let mut v = venue();
    v.run(vec![limit(1, Side::Sell, 600_000, 5)]);
    let root = v.engine.state_root();
    let evs = v.run(vec![
        limit_with(2, Side::Buy, 600_000, 10, TimeInForce::Fok, false),
        limit_with(2, Side::Buy, 600_000, 1, TimeInForce::Gtc, true),
        limit(9, Side::Buy, 600_000, 1),
        client(
            2,
            ClientCommand::Cancel {
                instrument: BTC,
                order_id: bulwark_engine::OrderId(1),
            },
        ),
        client(
            2,
            ClientCommand::Withdraw {
                amount: (1_000_000 * USD) as i64,
                destination: [7; 32],
                chain: bulwark_engine::PayoutChain::Bitcoin,
            },
        ),
        client(
            2,
            ClientCommand::Cancel {
                instrument: InstrumentId(99),
                order_id: bulwark_engine::OrderId(1),
            },
        ),
    ]);
    assert_eq!(
        rejections(&evs),
        vec![
            RejectReason::FillOrKillUnfilled,
            RejectReason::PostOnlyWouldTrade,
            RejectReason::UnknownAccount,
            RejectReason::UnknownOrder,
            RejectReason::InsufficientFunds,
            RejectReason::UnknownInstrument,
        ]
    );
    assert_eq!(v.engine.state_root(), root);
}

#[test]
fn an_amend_that_expects_another_remaining_size_is_refused() {
    let mut v = venue();
    let a = accepted_id(&v.run(vec![limit(1, Side::Sell, 600_000, 5)]));
    // A fill of 2 after the sender looked (it saw 5 resting).
    v.run(vec![limit(2, Side::Buy, 600_000, 2)]);
    let amend = |expect_qty, qty| {
        client(
            1,
            ClientCommand::Amend {
                instrument: BTC,
                order_id: a,
                price: 600_000,
                qty,
                expect_qty,
            },
        )
    };
    let evs = v.run(vec![amend(Some(5), 4)]);
    assert!(
        matches!(
            evs[0],
            Event::Rejected {
                reason: RejectReason::AmendStale,
                ..
            }
        ),
        "{evs:?}"
    );
    // Looked again: 3 rest; asking for a total of 4 (2 filled) rests 2.
    let evs = v.run(vec![amend(Some(3), 2)]);
    assert!(
        matches!(
            evs[0],
            Event::Amended {
                qty: 2,
                kept_priority: true,
                ..
            }
        ),
        "{evs:?}"
    );
}

#[test]
fn amend_down_keeps_priority_and_price_change_loses_it() {
    let mut v = venue();
    v.fund(3, 100_000);
    let a = accepted_id(&v.run(vec![limit(1, Side::Sell, 600_000, 5)]));
    let b = accepted_id(&v.run(vec![limit(3, Side::Sell, 600_000, 5)]));
    let evs = v.run(vec![client(
        1,
        ClientCommand::Amend {
            instrument: BTC,
            order_id: a,
            price: 600_000,
            qty: 3,
            expect_qty: None,
        },
    )]);
    assert!(matches!(
        evs[0],
        Event::Amended {
            kept_priority: true,
            qty: 3,
            ..
        }
    ));
    let evs = v.run(vec![limit(2, Side::Buy, 600_000, 1)]);
    assert!(matches!(evs[1], Event::Fill { maker_order, .. } if maker_order == a));
    // Re-pricing to the same level via another price moves it behind b.
    v.run(vec![client(
        1,
        ClientCommand::Amend {
            instrument: BTC,
            order_id: a,
            price: 600_100,
            qty: 2,
            expect_qty: None,
        },
    )]);
    v.run(vec![client(
        1,
        ClientCommand::Amend {
            instrument: BTC,
            order_id: a,
            price: 600_000,
            qty: 2,
            expect_qty: None,
        },
    )]);
    let evs = v.run(vec![limit(2, Side::Buy, 600_000, 1)]);
    assert!(matches!(evs[1], Event::Fill { maker_order, .. } if maker_order == b));
}

#[test]
fn self_trade_cancels_the_resting_order() {
    let mut v = venue();
    let a = accepted_id(&v.run(vec![limit(1, Side::Sell, 600_000, 5)]));
    let evs = v.run(vec![limit(1, Side::Buy, 600_000, 5)]);
    assert!(evs.iter().any(|e| matches!(e, Event::Cancelled { order_id, reason: CancelReason::SelfTrade, .. } if *order_id == a)));
    assert!(fills(&evs).is_empty());
    assert_eq!(v.engine.book(BTC).unwrap().best_bid(), Some((600_000, 5)));
}

#[test]
fn market_orders_never_fill_outside_the_band() {
    let mut v = venue();
    v.run(vec![
        limit(1, Side::Sell, 575_000, 5),
        limit(1, Side::Sell, 620_000, 5),
    ]);
    v.index(62_000); // band is now 589 000 ..= 651 000
    let evs = v.run(vec![market(2, Side::Buy, 8)]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::Cancelled {
            reason: CancelReason::OutsideBand,
            remaining: 5,
            ..
        }
    )));
    assert_eq!(fills(&evs), vec![(620_000, 5)]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::Cancelled {
            reason: CancelReason::ImmediateRemainder,
            remaining: 3,
            ..
        }
    )));
}

#[test]
fn unrealized_profit_is_not_withdrawable() {
    let mut v = venue();
    v.run(vec![limit(1, Side::Sell, 600_000, 1_000)]);
    v.run(vec![limit(2, Side::Buy, 600_000, 1_000)]);
    v.index(63_000);
    let st = v.engine.standing(AccountId(2)).unwrap().unwrap();
    assert!(st.unrealized > 2_900 * USD);
    let cash = v.engine.account(AccountId(2)).unwrap().cash;
    let evs = v.run(vec![client(
        2,
        ClientCommand::Withdraw {
            amount: cash as i64,
            destination: [7; 32],
            chain: bulwark_engine::PayoutChain::Bitcoin,
        },
    )]);
    assert_eq!(rejections(&evs), vec![RejectReason::InsufficientFunds]);
    let ok = cash - st.initial;
    let evs = v.run(vec![client(
        2,
        ClientCommand::Withdraw {
            amount: ok as i64,
            destination: [7; 32],
            chain: bulwark_engine::PayoutChain::Bitcoin,
        },
    )]);
    assert!(matches!(
        evs[0],
        Event::WithdrawalRequested {
            withdrawal_id: 1,
            ..
        }
    ));
    assert!(v.engine.totals().conserved());
    // The ledger records what the vault may sign: this withdrawal, and nothing under id 2.
    let recorded = v.engine.withdrawal(1).expect("recorded");
    assert_eq!(
        (recorded.account, recorded.amount, recorded.destination),
        (AccountId(2), ok as u64, [7; 32])
    );
    assert!(v.engine.withdrawal(2).is_none());
    // A destination its chain cannot pay is refused before anything is debited: an x that is
    // not on secp256k1 (3…3), the Ed25519 identity (small order).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for (destination, chain) in [
        ([3u8; 32], bulwark_engine::PayoutChain::Bitcoin),
        ([0u8; 32], bulwark_engine::PayoutChain::Bitcoin),
        (identity, bulwark_engine::PayoutChain::Ed25519),
    ] {
        let before = v.engine.totals();
        let evs = v.run(vec![client(
            2,
            ClientCommand::Withdraw {
                amount: 1,
                destination,
                chain,
            },
        )]);
        assert_eq!(rejections(&evs), vec![RejectReason::InvalidDestination]);
        assert_eq!(v.engine.totals(), before);
    }
    assert!(v.engine.withdrawal(2).is_none());
    let restored = bulwark_engine::Engine::restore(&v.engine.snapshot()).expect("restores");
    assert_eq!(restored.withdrawal(1), v.engine.withdrawal(1));
}

#[test]
fn nonces_refuse_replays() {
    let mut v = venue();
    let cmd = |nonce| Command::Client {
        account: AccountId(1),
        nonce,
        command: ClientCommand::MassCancel { instrument: None },
    };
    assert!(rejections(&v.run(vec![cmd(5)])).is_empty());
    assert_eq!(
        rejections(&v.run(vec![cmd(5)])),
        vec![RejectReason::StaleNonce]
    );
    assert_eq!(
        rejections(&v.run(vec![cmd(4)])),
        vec![RejectReason::StaleNonce]
    );
    assert!(rejections(&v.run(vec![cmd(6)])).is_empty());
}

fn liquidation_events(evs: &[Event]) -> Vec<(LiquidationVia, i64, i128, i128)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Liquidation {
                via,
                qty,
                equity,
                maintenance,
                ..
            } => Some((*via, *qty, *equity, *maintenance)),
            _ => None,
        })
        .collect()
}

#[test]
fn liquidation_uses_the_book_and_stops_above_maintenance() {
    let mut v = venue();
    v.fund(5, 1_300); // 1 BTC long at 60 000 needs 1 200 initial, 600 maintenance.
    v.run(vec![limit(1, Side::Sell, 600_000, 1_000)]);
    let evs = v.run(vec![limit(5, Side::Buy, 600_000, 1_000)]);
    assert_eq!(fills(&evs).len(), 1);
    v.run(vec![limit(2, Side::Buy, 592_000, 2_000)]);
    let evs = v.index(59_250); // equity ≈ 550 < maintenance ≈ 592
    let liq = liquidation_events(&evs);
    assert!(!liq.is_empty(), "{evs:?}");
    for (via, qty, equity, maintenance) in &liq {
        assert_eq!(*via, LiquidationVia::Book);
        assert!(*qty < 0 && equity < maintenance);
    }
    let st = v.engine.standing(AccountId(5)).unwrap().unwrap();
    assert!(st.equity >= st.maintenance);
    assert!(
        v.engine.account(AccountId(5)).unwrap().position(BTC).qty > 0,
        "stopped before closing all"
    );
    assert!(v.engine.totals().conserved());
}

#[test]
fn insurance_fund_takes_what_the_book_cannot() {
    let mut v = venue();
    v.fund(5, 1_300);
    v.run(vec![limit(1, Side::Sell, 600_000, 1_000)]);
    v.run(vec![limit(5, Side::Buy, 600_000, 1_000)]);
    let evs = v.index(59_300); // no bids at all
    let liq = liquidation_events(&evs);
    assert_eq!(liq.len(), 1, "{evs:?}");
    assert_eq!(liq[0].0, LiquidationVia::InsuranceFund);
    assert_eq!(v.engine.insurance_fund().position(BTC).qty, 1_000);
    assert!(v.engine.account(AccountId(5)).unwrap().positions.is_empty());
    // The fund unwinds through the book once there is a bid.
    let evs = v.run(vec![limit(2, Side::Buy, 590_000, 1_000)]);
    assert_eq!(fills(&evs), vec![(590_000, 1_000)]);
    assert!(v.engine.insurance_fund().positions.is_empty());
    assert!(v.engine.totals().conserved());
}

#[test]
fn bankrupt_positions_are_auto_deleveraged_by_rank() {
    let mut v = venue();
    v.fund(3, 100_000);
    v.fund(5, 1_300);
    v.run(vec![limit(1, Side::Sell, 600_000, 500)]);
    v.run(vec![limit(3, Side::Sell, 600_000, 500)]);
    v.run(vec![limit(5, Side::Buy, 600_000, 1_000)]);
    // A gap down far through the account's collateral: equity is negative, the fund is empty.
    let evs = v.index(57_000);
    let deleveraged: Vec<AccountId> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Deleveraged { account, .. } => Some(*account),
            _ => None,
        })
        .collect();
    assert_eq!(deleveraged.len(), 2, "{evs:?}");
    assert!(liquidation_events(&evs)
        .iter()
        .all(|l| l.0 == LiquidationVia::AutoDeleverage));
    assert!(v.engine.account(AccountId(1)).unwrap().positions.is_empty());
    assert!(v.engine.account(AccountId(3)).unwrap().positions.is_empty());
    let bankrupt = v.engine.account(AccountId(5)).unwrap();
    assert!(bankrupt.positions.is_empty());
    assert!(
        bankrupt.cash >= 0,
        "closed at the bankruptcy price: {}",
        bankrupt.cash
    );
    assert!(v.engine.totals().conserved());
}

#[test]
fn funding_moves_from_longs_to_shorts_when_the_mark_is_rich() {
    let mut v = venue();
    v.fund(3, 100_000);
    v.run(vec![limit(1, Side::Sell, 600_000, 100)]);
    v.run(vec![limit(2, Side::Buy, 600_000, 100)]);
    // Quotes 0.3 % above the index make the mark rich.
    v.run(vec![
        limit(3, Side::Buy, 601_700, 1),
        limit(3, Side::Sell, 601_900, 1),
    ]);
    let before = v.engine.account(AccountId(2)).unwrap().cash;
    let mut funding = vec![];
    for hour in 1..=8u64 {
        let evs = v.at(hour * 3_600_000, vec![index_cmd(60_000)]);
        funding.extend(
            evs.into_iter()
                .filter(|e| matches!(e, Event::Funding { instrument, .. } if *instrument == BTC)),
        );
    }
    assert_eq!(funding.len(), 1, "{funding:?}");
    let Event::Funding { rate_ppm, paid, .. } = funding[0] else {
        unreachable!()
    };
    assert!(rate_ppm > 0 && paid > 0);
    assert_eq!(before - v.engine.account(AccountId(2)).unwrap().cash, paid);
    assert!(v.engine.totals().conserved());
}

#[test]
fn options_settle_at_the_index_twap() {
    let mut v = venue();
    let call = InstrumentId(2); // 55 000 call, expiring day 7
    let mark = v.engine.mark(call).unwrap();
    assert!(mark > 5_000 && mark < 6_000, "mark {mark}");
    let risk = v.engine.option_risk(call).unwrap();
    assert_eq!(risk.mark, mark);
    assert!(risk.greeks.delta > 0.5 && risk.greeks.delta < 1.0 && risk.greeks.vega > 0.0);
    assert!(v.engine.option_risk(BTC).is_none());
    let order = |account, side| {
        let Command::Client {
            account,
            nonce,
            command: ClientCommand::Limit(mut o),
        } = limit(account, side, mark, 100)
        else {
            unreachable!()
        };
        o.instrument = call;
        Command::Client {
            account,
            nonce,
            command: ClientCommand::Limit(o),
        }
    };
    let (sell, buy) = (order(1, Side::Sell), order(2, Side::Buy));
    v.run(vec![sell]);
    assert_eq!(fills(&v.run(vec![buy])).len(), 1);
    let cash_long = v.engine.account(AccountId(2)).unwrap().cash;
    let expiry = 7 * 86_400_000;
    v.at(expiry - 20 * 60_000, vec![index_cmd(61_000)]);
    v.at(expiry - 10 * 60_000, vec![index_cmd(63_000)]);
    let evs = v.at(expiry, vec![]);
    let settled = evs.iter().find_map(|e| match e {
        Event::Settled {
            instrument,
            settlement_price_micros,
            paid,
        } if *instrument == call => Some((*settlement_price_micros, *paid)),
        _ => None,
    });
    // TWAP over 30 min: 10 min at 60 000, 10 at 61 000, 10 at 63 000.
    assert_eq!(settled, Some((61_333_333_333, 100 * 63_333_333)), "{evs:?}");
    assert_eq!(
        v.engine.account(AccountId(2)).unwrap().cash - cash_long,
        100 * 63_333_333
    );
    assert!(v.engine.account(AccountId(2)).unwrap().positions.is_empty());
    let evs = v.run(vec![order(2, Side::Buy)]);
    assert_eq!(rejections(&evs), vec![RejectReason::InstrumentClosed]);
    assert!(v.engine.totals().conserved());
}

#[test]
fn snapshot_restores_the_same_root_and_refuses_garbage() {
    let mut v = venue();
    v.run(vec![
        limit(1, Side::Sell, 600_000, 10),
        limit(1, Side::Sell, 600_500, 10),
        limit(2, Side::Buy, 599_000, 4),
    ]);
    v.run(vec![limit(2, Side::Buy, 600_000, 3)]);
    let snap = v.engine.snapshot();
    let restored = Engine::restore(&snap).unwrap();
    assert_eq!(restored.state_root(), v.engine.state_root());
    // Continue both identically.
    let mut a = v.engine.clone();
    let mut b = restored;
    let batch = vec![
        limit(2, Side::Buy, 600_500, 12),
        client(1, ClientCommand::MassCancel { instrument: None }),
    ];
    let (mut ea, mut eb) = (vec![], vec![]);
    a.execute(10, &batch, &mut ea);
    b.execute(10, &batch, &mut eb);
    assert_eq!(ea, eb);
    assert_eq!(a.state_root(), b.state_root());
    assert!(Engine::restore(b"nope").is_err());
    assert!(Engine::restore(&snap[..snap.len() / 2]).is_err());
    for i in (7..snap.len()).step_by(97) {
        let mut bad = snap.clone();
        bad[i] ^= 0x55;
        if let Ok(e) = Engine::restore(&bad) {
            assert_ne!(e.state_root(), v.engine.state_root());
        }
    }
}

/// A damaged snapshot never makes `restore` panic: every byte of one that holds positions,
/// resting orders and fills, flipped seven ways, is refused or restored (a position naming an
/// unlisted instrument and totals that overflow are refused, not indexed or added).
#[test]
fn a_damaged_snapshot_never_makes_restore_panic() {
    let mut v = venue();
    v.run(vec![
        limit(1, Side::Sell, 600_000, 10),
        limit(1, Side::Sell, 600_500, 10),
        limit(2, Side::Buy, 600_000, 4),
        limit(2, Side::Buy, 599_000, 3),
    ]);
    let snap = v.engine.snapshot();
    let mut refused = 0;
    for i in 0..snap.len() {
        for mask in [0x01, 0x02, 0x04, 0x10, 0x40, 0x80, 0xff] {
            let mut bad = snap.clone();
            bad[i] ^= mask;
            refused += usize::from(Engine::restore(&bad).is_err());
        }
    }
    assert!(
        refused > snap.len(),
        "{refused} of {} refused",
        7 * snap.len()
    );
}

#[test]
fn system_inputs_are_validated() {
    let mut v = venue();
    let evs = v.run(vec![
        Command::System(SystemCommand::Deposit {
            account: AccountId(77),
            amount: USD as i64,
        }),
        Command::System(SystemCommand::Deposit {
            account: AccountId(1),
            amount: -1,
        }),
        Command::System(SystemCommand::IndexPrice {
            underlying: 9,
            price_micros: 1,
        }),
        Command::System(SystemCommand::IndexPrice {
            underlying: 0,
            price_micros: 0,
        }),
        Command::System(SystemCommand::OpenAccount {
            account: AccountId(1),
            public_key: [0; 32],
        }),
        Command::System(SystemCommand::OpenAccount {
            account: AccountId(u64::MAX),
            public_key: [0; 32],
        }),
    ]);
    assert_eq!(
        rejections(&evs),
        vec![
            RejectReason::UnknownAccount,
            RejectReason::InvalidAmount,
            RejectReason::UnknownUnderlying,
            RejectReason::InvalidIndexPrice,
            RejectReason::AccountExists,
            RejectReason::AccountExists,
        ]
    );
}
