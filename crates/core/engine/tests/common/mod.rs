//! Helpers shared by the engine's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod oracle;
pub mod sentinel;

use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, EngineConfig, Event, InstrumentId, Side,
};

pub const BTC: InstrumentId = InstrumentId(0);
pub const USD: i128 = 1_000_000;

pub struct Venue {
    pub engine: Engine,
    pub time: u64,
}

impl Venue {
    pub fn new() -> Self {
        Venue {
            engine: Engine::new(EngineConfig::default()),
            time: 0,
        }
    }

    pub fn run(&mut self, batch: Vec<Command>) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.execute(self.time, &batch, &mut out);
        out
    }

    pub fn at(&mut self, time: u64, batch: Vec<Command>) -> Vec<Event> {
        self.time = time;
        self.run(batch)
    }

    pub fn fund(&mut self, account: u64, usd: i128) {
        let evs = self.run(vec![
            Command::System(SystemCommand::OpenAccount {
                account: AccountId(account),
                public_key: [account as u8; 32],
            }),
            Command::System(SystemCommand::Deposit {
                account: AccountId(account),
                amount: (usd * USD) as i64,
            }),
        ]);
        assert!(matches!(evs[1], Event::Deposited { .. }), "{evs:?}");
    }

    pub fn index(&mut self, usd: i64) -> Vec<Event> {
        self.run(vec![index_cmd(usd)])
    }
}

pub fn index_cmd(usd: i64) -> Command {
    Command::System(SystemCommand::IndexPrice {
        underlying: 0,
        price_micros: usd * 1_000_000,
    })
}

pub fn limit(account: u64, side: Side, price: i64, qty: i64) -> Command {
    limit_with(account, side, price, qty, TimeInForce::Gtc, false)
}

pub fn limit_with(
    account: u64,
    side: Side,
    price: i64,
    qty: i64,
    tif: TimeInForce,
    post_only: bool,
) -> Command {
    Command::Client {
        account: AccountId(account),
        nonce: 0,
        command: ClientCommand::Limit(LimitOrder {
            instrument: BTC,
            side,
            price,
            qty,
            tif,
            post_only,
            reduce_only: false,
            stp: SelfTradePrevention::CancelResting,
            client_order_id: 0,
        }),
    }
}

pub fn market(account: u64, side: Side, qty: i64) -> Command {
    Command::Client {
        account: AccountId(account),
        nonce: 0,
        command: ClientCommand::Market {
            instrument: BTC,
            side,
            qty,
            reduce_only: false,
            client_order_id: 0,
        },
    }
}

pub fn client(account: u64, command: ClientCommand) -> Command {
    Command::Client {
        account: AccountId(account),
        nonce: 0,
        command,
    }
}

pub fn fills(evs: &[Event]) -> Vec<(i64, i64)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Fill { price, qty, .. } => Some((*price, *qty)),
            _ => None,
        })
        .collect()
}

pub fn rejections(evs: &[Event]) -> Vec<bulwark_engine::RejectReason> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

pub fn accepted_id(evs: &[Event]) -> bulwark_engine::OrderId {
    evs.iter()
        .find_map(|e| match e {
            Event::Accepted { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .expect("an order was accepted")
}
