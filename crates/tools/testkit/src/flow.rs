//! The one order flow behind every load bulwark generates: `bulwark up`'s load generator,
//! `up --single`, the simulator's clients and the benches' signed transactions.
//!
//! Market makers (accounts `1..=MAKERS`) quote post-only GTC orders 1 to 5 ticks either side
//! of the mid; takers (the accounts above) send IOC orders 6 ticks through the mid, so a taker
//! that meets a maker's quote fills against it and the book stays shallow. Which side an order
//! takes is a deterministic mix of `account` and `k`, balanced however the accounts take turns;
//! `k` is the order's sequence number and client order id.

use crate::client_key;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::{AccountId, ClientCommand, Command, InstrumentId, Side};

/// Market-making accounts: `1..=MAKERS`.
pub const MAKERS: u64 = 4;
/// Taking accounts: `MAKERS + 1..=MAKERS + TAKERS`.
pub const TAKERS: u64 = 8;
/// How far through the mid a taker's IOC order reaches, in ticks.
pub const TAKER_REACH_TICKS: i64 = 6;

/// The account that sends order `k` when the accounts take turns.
pub fn account_of(k: u64) -> u64 {
    1 + k % (MAKERS + TAKERS)
}

/// The system commands that open every account of the flow with no registered key (for a
/// trusted in-process engine that takes unsigned orders: `up --single`, tests) and deposit
/// `deposit_micros` into each.
pub fn open_accounts_unsigned(deposit_micros: i64) -> Vec<Command> {
    (1..=MAKERS + TAKERS)
        .flat_map(|account| {
            [
                Command::System(SystemCommand::OpenAccount {
                    account: AccountId(account),
                    public_key: [0; 32],
                }),
                Command::System(SystemCommand::Deposit {
                    account: AccountId(account),
                    amount: deposit_micros,
                }),
            ]
        })
        .collect()
}

/// What opens the flow's market in a fresh trusted engine: BTC's index at 60 000 USD, then
/// [`open_accounts_unsigned`] with `deposit_micros` each.
pub fn open_market_unsigned(deposit_micros: i64) -> Vec<Command> {
    let mut setup = vec![Command::System(SystemCommand::IndexPrice {
        underlying: 0,
        price_micros: 60_000_000_000,
    })];
    setup.extend(open_accounts_unsigned(deposit_micros));
    setup
}

/// Orders `ks` of the flow around `mid_ticks`, unsigned, the accounts taking turns
/// ([`account_of`]), order `k` with nonce `k + 1`.
pub fn flow_orders_unsigned(ks: std::ops::Range<u64>, mid_ticks: i64) -> Vec<Command> {
    ks.map(|k| Command::Client {
        account: AccountId(account_of(k)),
        nonce: k + 1,
        command: flow_order(account_of(k), k, mid_ticks),
    })
    .collect()
}

/// Order `k` of `account` around `mid_ticks` on instrument 0 (BTC-PERP).
pub fn flow_order(account: u64, k: u64, mid_ticks: i64) -> ClientCommand {
    let maker = account <= MAKERS;
    // A mix of the two inputs, not their sum: a sum's parity is fixed when the accounts take
    // turns (account = 1 + k mod 12 gives an odd sum for every k), and every order would sell.
    let mixed = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ account.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let side = if (mixed >> 32) & 1 == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    let distance = 1 + ((k * 7 + account) % 5) as i64;
    let (price, tif, post_only) = match (maker, side) {
        (true, Side::Buy) => (mid_ticks - distance, TimeInForce::Gtc, true),
        (true, Side::Sell) => (mid_ticks + distance, TimeInForce::Gtc, true),
        (false, Side::Buy) => (mid_ticks + TAKER_REACH_TICKS, TimeInForce::Ioc, false),
        (false, Side::Sell) => (mid_ticks - TAKER_REACH_TICKS, TimeInForce::Ioc, false),
    };
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side,
        price,
        qty: 1 + (k % 3) as i64,
        tif,
        post_only,
        reduce_only: false,
        stp: SelfTradePrevention::CancelResting,
        client_order_id: k,
    })
}

/// [`flow_order`] signed by `account`'s DEVELOPMENT key under `seed`, with nonce `nonce`.
pub fn signed_flow_order(seed: u64, account: u64, k: u64, nonce: u64, mid_ticks: i64) -> SignedTx {
    SignedTx::sign(
        AccountId(account),
        nonce,
        flow_order(account, k, mid_ticks),
        &client_key(seed, account),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_engine::{Engine, EngineConfig, Event};

    /// The flow trades: run through one engine, takers fill against makers' quotes.
    #[test]
    fn makers_quote_and_takers_fill() {
        let mut engine = Engine::new(EngineConfig::default());
        let mut events = Vec::new();
        engine.execute(0, &open_market_unsigned(1_000_000_000_000), &mut events);
        let batch = flow_orders_unsigned(0..120, 600_000);
        events.clear();
        engine.execute(1, &batch, &mut events);
        let fills = events
            .iter()
            .filter(|e| matches!(e, Event::Fill { .. }))
            .count();
        assert!(fills > 10, "{fills} fills from 120 orders");
        // Both sides, for makers and takers, whether accounts take turns or share `k`.
        for (maker, accounts) in [(true, 1..=MAKERS), (false, MAKERS + 1..=MAKERS + TAKERS)] {
            let sides: std::collections::BTreeSet<_> = accounts
                .clone()
                .flat_map(|a| (0..24).map(move |k| (a, k)))
                .filter(|(a, k)| account_of(*k) == *a || *k < 2)
                .map(|(a, k)| match flow_order(a, k, 600_000) {
                    ClientCommand::Limit(order) => format!("{:?}", order.side),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(sides.len(), 2, "maker {maker}: {sides:?}");
        }
        match flow_order(1, 0, 600_000) {
            ClientCommand::Limit(order) => assert!(order.post_only),
            other => panic!("{other:?}"),
        }
        let tx = signed_flow_order(1, 5, 4, 9, 600_000);
        assert!(tx
            .verify(&client_key(1, 5).verifying_key().to_bytes())
            .is_ok());
    }
}
