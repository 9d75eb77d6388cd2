//! Seeded oracle scenarios: `n = 3f + 1` oracle nodes, each with its own weights over three
//! venues and its own feed latency, observe a simulated market and sign; an in-process proposer
//! collects the observations and feeds one `OracleRound` per second into one engine.
//!
//! Committee replication (consensus, issue 3) is not in the loop yet: there is one engine and
//! the proposer is a function call. The outcome says so.
//!
//! Every scenario runs twice from the same seed: with its faults, and without them (the honest
//! counterfactual: the same real market, honest nodes, live venues). A liquidation in the faulted
//! run of an account that the honest run did not liquidate is *erroneous*; the honest run's
//! liquidations are the *required* ones. The honest median at each round is the aggregate the
//! honest nodes would have produced from live venues.

mod market;

use std::collections::BTreeSet;

use bulwark_engine::command::{
    ClientCommand, LimitOrder, StopDirection, StopOrder, SystemCommand, TimeInForce,
};
use bulwark_engine::oracle::{GuardKind, OracleConfig};
use bulwark_engine::{AccountId, Command, Engine, EngineConfig, Event, InstrumentId, Side};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

pub use market::{Kind, Market, TICK_MS, VENUES};

use crate::node::{NodeConfig, OracleNode};
use crate::proposer::RoundBuilder;

/// The scenario names `run` accepts.
pub const SCENARIOS: [&str; 4] = [
    "oracle-collusion",
    "venue-spike",
    "feed-blackout",
    "genuine-crash",
];

const BTC: InstrumentId = InstrumentId(0);
const ROUND_MS: u64 = 1_000;
const MAKER: AccountId = AccountId(100);
/// Trader i's position falls below maintenance after a fall of `DROPS_PPM[i]`.
const DROPS_PPM: [i64; 8] = [
    20_000, 30_000, 50_000, 70_000, 100_000, 120_000, 150_000, 250_000,
];
/// Each trader is long 1 BTC (1 000 lots of 0.001 BTC).
const TRADER_LOTS: i64 = 1_000;
/// Weights of the three venues per node, cycled; no venue ever holds half a node's weight.
const NODE_WEIGHTS: [[u32; VENUES]; 4] = [[1, 1, 1], [2, 2, 1], [1, 2, 2], [2, 1, 2]];

/// A scenario's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioConfig {
    /// Which scenario.
    pub kind: Kind,
    /// The seed of the market and the keys.
    pub seed: u64,
    /// Byzantine nodes tolerated; `n = 3f + 1`.
    pub f: u32,
    /// Simulated time, ms.
    pub duration_ms: u64,
}

impl ScenarioConfig {
    /// Four nodes (f = 1), four minutes.
    pub fn new(kind: Kind, seed: u64) -> Self {
        ScenarioConfig {
            kind,
            seed,
            f: 1,
            duration_ms: 240_000,
        }
    }
}

/// Runs the scenario `name` from `seed` with four nodes and returns its outcome, or
/// `{"error": …, "known": [...]}` for an unknown name.
pub fn run(name: &str, seed: u64) -> Value {
    match Kind::parse(name) {
        Some(kind) => run_with(ScenarioConfig::new(kind, seed)),
        None => json!({
            "error": format!("unknown scenario {name:?}"),
            "known": SCENARIOS,
        }),
    }
}

/// Runs a scenario and returns its outcome JSON.
pub fn run_with(config: ScenarioConfig) -> Value {
    let faulted = simulate(config, true);
    let honest = simulate(config, false);
    let erroneous: Vec<u64> = faulted
        .liquidated
        .difference(&honest.liquidated)
        .copied()
        .collect();
    let executed = honest.liquidated.intersection(&faulted.liquidated).count();
    let mut deviation_max = 0i64;
    let mut deviation_unguarded_max = 0i64;
    for (r, (index, reference)) in faulted.index.iter().zip(&faulted.reference).enumerate() {
        if let (Some(i), Some(h)) = (index, reference) {
            let d = bps(*i, *h);
            deviation_max = deviation_max.max(d);
            if !faulted.guarded[r] {
                deviation_unguarded_max = deviation_unguarded_max.max(d);
            }
        }
    }
    let step_max = faulted
        .index
        .windows(2)
        .filter_map(|w| Some(bps(w[1]?, w[0]?)))
        .max()
        .unwrap_or(0);
    let n = 3 * config.f as usize + 1;
    json!({
        "scenario": config.kind.name(),
        "seed": config.seed,
        "nodes": n,
        "f": config.f,
        "rounds": config.duration_ms / ROUND_MS,
        "replication": "none yet: one engine fed by an in-process proposer; committee replication (issue 3) is not in the loop",
        "erroneous_liquidations": erroneous.len(),
        "erroneous_liquidated_accounts": erroneous,
        "required_liquidations": honest.liquidated.len(),
        "required_liquidations_executed": executed,
        "liquidated_accounts": faulted.liquidated,
        "liquidations": faulted.liquidations,
        "max_index_deviation_bps": deviation_max,
        "max_index_deviation_unguarded_bps": deviation_unguarded_max,
        "max_index_step_bps": step_max,
        "min_index_micros": faulted.index.iter().flatten().min(),
        "rounds_certified": faulted.certified,
        "rounds_without_quorum": faulted.no_quorum,
        "rounds_rejected": faulted.rejected,
        "guard_open_intervals": faulted.intervals,
        "fault_evidence": faulted.faults,
        "accounts": faulted.accounts,
        "guard_checks": faulted.checks,
        "stop": {
            "held": faulted.stop_held,
            "triggered_s": faulted.stop_triggered,
            "honest_triggered_s": honest.stop_triggered,
        },
    })
}

fn bps(a: i64, b: i64) -> i64 {
    let d = (i128::from(a) - i128::from(b)).abs() * 10_000 / i128::from(b.max(1));
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// What one run recorded.
#[derive(Debug, Default)]
struct Run {
    liquidated: BTreeSet<u64>,
    /// Each liquidated account and the round of its first liquidation step.
    liquidations: Vec<Value>,
    /// Index after each round's batch.
    index: Vec<Option<i64>>,
    /// The honest median at each round.
    reference: Vec<Option<i64>>,
    /// Whether a guard was open after each round's batch.
    guarded: Vec<bool>,
    certified: u64,
    no_quorum: u64,
    rejected: u64,
    intervals: Vec<Value>,
    faults: Vec<Value>,
    accounts: Vec<Value>,
    checks: Value,
    /// The blackout's stop: each time it was held (guard, round), and the round it triggered.
    stop_held: Vec<Value>,
    stop_triggered: Option<u64>,
}

fn simulate(config: ScenarioConfig, faulted: bool) -> Run {
    let kind = config.kind;
    let n = 3 * config.f as usize + 1;
    let market = Market::new(kind, config.seed, config.duration_ms);
    let nodes: Vec<OracleNode> = (0..n)
        .map(|i| {
            let cfg = NodeConfig {
                weights: NODE_WEIGHTS[i % NODE_WEIGHTS.len()].to_vec(),
                ..NodeConfig::equal(VENUES)
            };
            let key = SigningKey::from_bytes(&market::node_seed(config.seed, i));
            OracleNode::new(cfg, key)
        })
        .collect();
    let oracle = OracleConfig {
        members: nodes.iter().map(OracleNode::public_key).collect(),
        f: config.f,
        ..OracleConfig::default()
    };
    let roster = bulwark_engine::oracle::OracleRoster::genesis(&oracle);
    let mut engine = Engine::new(EngineConfig {
        oracle: oracle.clone(),
        ..EngineConfig::default()
    });
    let colluders = config.f as usize;
    let (start, end) = kind.window_ms();
    let mut run = Run {
        checks: Value::Null,
        ..Run::default()
    };
    let mut open: Vec<(GuardKind, u64)> = Vec::new();
    let mut resting_bid = None;
    let mut events = Vec::new();
    let mut setup = Vec::new();
    for round in 1..=config.duration_ms / ROUND_MS {
        let t = round * ROUND_MS;
        let mut builder = RoundBuilder::new(0, round);
        let mut honest_prices = Vec::with_capacity(n);
        for (i, node) in nodes.iter().enumerate() {
            let delay = (i % 3) as u64;
            let live = market.quotes(t, delay, false);
            if let Some(h) = crate::node::observe(&node.config, &live, 0, round, t) {
                honest_prices.push(h.price_micros);
            }
            let seen = market.quotes(t, delay, faulted);
            let Some(mut signed) = node.observe(&seen, 0, round, t) else {
                continue;
            };
            if faulted
                && kind == Kind::OracleCollusion
                && i < colluders
                && (start..end).contains(&t)
            {
                let mut o = signed.observation;
                o.price_micros = o.price_micros * 8 / 10;
                signed = node.sign(o);
            }
            // Every node's observation is offered; the builder keeps the valid ones.
            let _ = builder.offer(&roster, signed);
        }
        let mut batch = Vec::new();
        match builder.finish(&roster) {
            Ok(cmd) => batch.push(Command::System(cmd)),
            Err(_) => run.no_quorum += 1,
        }
        batch.extend(scripted(&engine, kind, round, t, resting_bid));
        events.clear();
        engine.execute(t, &batch, &mut events);
        record(
            &mut run,
            &engine,
            &events,
            round,
            &nodes,
            &mut open,
            &mut resting_bid,
        );
        if round == 2 {
            setup = DROPS_PPM
                .iter()
                .enumerate()
                .map(|(i, _)| holding(&engine, trader(i)))
                .collect();
        }
        run.reference.push(median(&mut honest_prices));
        run.index.push(engine.index_price(0));
        run.guarded.push(!engine.oracle_guards(0).is_empty());
    }
    for (guard, opened) in open {
        run.intervals
            .push(json!({"guard": guard, "opened_s": opened, "closed_s": Value::Null}));
    }
    run.accounts = DROPS_PPM
        .iter()
        .enumerate()
        .map(|(i, drop)| {
            let id = trader(i);
            let (cash, qty, cost) = setup.get(i).copied().unwrap_or_default();
            json!({
                "account": id.0,
                "designed_drop_ppm": drop,
                "after_setup": {
                    "cash_micros": i64::try_from(cash).unwrap_or(i64::MAX),
                    "position_lots": qty,
                    "entry_cost_micros": i64::try_from(cost).unwrap_or(i64::MAX),
                },
                "liquidated": run.liquidated.contains(&id.0),
            })
        })
        .collect();
    run
}

/// An account's cash, BTC-PERP lots and entry cost.
fn holding(engine: &Engine, id: AccountId) -> (i128, i64, i128) {
    engine.account(id).map_or((0, 0, 0), |a| {
        let p = a.positions.get(&BTC);
        (a.cash, p.map_or(0, |p| p.qty), p.map_or(0, |p| p.cost))
    })
}

fn median(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        i64::try_from((i128::from(values[n / 2 - 1]) + i128::from(values[n / 2])) / 2)
            .unwrap_or(i64::MAX)
    })
}

fn trader(i: usize) -> AccountId {
    AccountId(1 + i as u64)
}

fn limit(side: Side, price: i64, qty: i64, tif: TimeInForce, reduce_only: bool) -> ClientCommand {
    ClientCommand::Limit(LimitOrder {
        instrument: BTC,
        side,
        price,
        qty,
        tif,
        post_only: false,
        reduce_only,
        stp: Default::default(),
        client_order_id: 0,
    })
}

fn client(account: AccountId, command: ClientCommand) -> Command {
    Command::Client {
        account,
        nonce: 0,
        command,
    }
}

/// The scenario's scripted client activity at `round`.
fn scripted(
    engine: &Engine,
    kind: Kind,
    round: u64,
    t: u64,
    resting_bid: Option<bulwark_engine::OrderId>,
) -> Vec<Command> {
    let mut batch = Vec::new();
    let Some(mark) = engine.mark(BTC) else {
        return batch;
    };
    let index = engine.index_price(0).unwrap_or(0);
    match round {
        2 => {
            // Open the book: the maker sells each trader 1 BTC at the mark; each trader's
            // deposit puts its maintenance line a designed fall below that price.
            batch.push(Command::System(SystemCommand::OpenAccount {
                account: MAKER,
                public_key: [0; 32],
            }));
            batch.push(Command::System(SystemCommand::Deposit {
                account: MAKER,
                amount: 10_000_000 * 1_000_000,
            }));
            let notional = i128::from(index);
            for (i, drop) in DROPS_PPM.iter().enumerate() {
                // Equity falls below 1 % maintenance at P0 × (1 − d):
                // cash = P0 × (0.01 + 0.99 d), plus the 0.04 % taker fee.
                let need = notional * (10_000 + 990 * i128::from(*drop) / 1_000 + 400) / 1_000_000;
                batch.push(Command::System(SystemCommand::OpenAccount {
                    account: trader(i),
                    public_key: [0; 32],
                }));
                batch.push(Command::System(SystemCommand::Deposit {
                    account: trader(i),
                    amount: i64::try_from(need).unwrap_or(i64::MAX),
                }));
                batch.push(client(
                    MAKER,
                    limit(Side::Sell, mark, TRADER_LOTS, TimeInForce::Gtc, false),
                ));
                batch.push(client(
                    trader(i),
                    limit(Side::Buy, mark, TRADER_LOTS, TimeInForce::Ioc, false),
                ));
            }
            if kind == Kind::FeedBlackout {
                // A resting bid far below the market, to cancel while the guard is open.
                batch.push(client(
                    MAKER,
                    limit(Side::Buy, mark * 955 / 1_000, 1, TimeInForce::Gtc, false),
                ));
                // A protective stop 3 % below the mark: the real fall crosses it, but while a
                // guard is open it is held, and it triggers only once every guard has closed.
                batch.push(client(
                    trader(7),
                    ClientCommand::Stop(StopOrder {
                        instrument: BTC,
                        side: Side::Sell,
                        direction: StopDirection::Falls,
                        trigger_price: mark * 97 / 100,
                        limit_price: None,
                        qty: 1,
                        reduce_only: true,
                        client_order_id: 0,
                    }),
                ));
            }
        }
        _ if kind == Kind::FeedBlackout && t == 75_000 => {
            // Mid-blackout: a cancel, a reduce-only order and a risk-increasing order.
            if let Some(order_id) = resting_bid {
                batch.push(client(
                    MAKER,
                    ClientCommand::Cancel {
                        instrument: BTC,
                        order_id,
                    },
                ));
            }
            let high = mark + mark * 4 / 100;
            batch.push(client(
                trader(7),
                limit(Side::Sell, high, 1, TimeInForce::Ioc, true),
            ));
            batch.push(client(
                MAKER,
                limit(Side::Buy, mark * 97 / 100, 1, TimeInForce::Gtc, false),
            ));
        }
        _ => {}
    }
    batch
}

/// Folds one batch's events into the run.
fn record(
    run: &mut Run,
    engine: &Engine,
    events: &[Event],
    round: u64,
    nodes: &[OracleNode],
    open: &mut Vec<(GuardKind, u64)>,
    resting_bid: &mut Option<bulwark_engine::OrderId>,
) {
    let mut checks = Vec::new();
    for e in events {
        match e {
            Event::Liquidation { account, .. } if run.liquidated.insert(account.0) => {
                run.liquidations
                    .push(json!({"account": account.0, "round": round}));
            }
            Event::OracleCertified { .. } => run.certified += 1,
            Event::StopHeld { guard, .. } => {
                run.stop_held.push(json!({"guard": guard, "round": round}))
            }
            Event::StopTriggered { .. } => run.stop_triggered = Some(round),
            Event::Rejected { account: None, .. } => run.rejected += 1,
            Event::OracleGuardOpened { guard, .. } => open.push((*guard, round)),
            Event::OracleGuardClosed { guard, .. } => {
                if let Some(i) = open.iter().position(|(g, _)| g == guard) {
                    let (g, opened) = open.remove(i);
                    run.intervals
                        .push(json!({"guard": g, "opened_s": opened, "closed_s": round}));
                }
            }
            Event::OracleFault { evidence } => {
                let node = nodes.iter().position(|n| n.public_key() == evidence.node);
                let key: String = evidence.node[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                run.faults.push(json!({
                    "node": node,
                    "public_key_prefix": key,
                    "round": evidence.round,
                    "rounds": evidence.rounds,
                    "deviation_bps": evidence.deviation_bps,
                }));
            }
            Event::Accepted {
                account,
                order_id,
                side: Side::Buy,
                qty: 1,
                ..
            } if *account == MAKER && round == 2 => *resting_bid = Some(*order_id),
            _ => {}
        }
        if round == 75 {
            checks.push(e);
        }
    }
    if !checks.is_empty() {
        run.checks = guard_checks(engine, &checks);
    }
}

/// Summarises the mid-blackout client commands: what a guard lets through.
fn guard_checks(engine: &Engine, events: &[&Event]) -> Value {
    let cancelled = events.iter().any(|e| {
        matches!(
            e,
            Event::Cancelled {
                reason: bulwark_engine::event::CancelReason::Requested,
                ..
            }
        )
    });
    let reduce_only = events.iter().any(
        |e| matches!(e, Event::Accepted { account, side: Side::Sell, .. } if *account == trader(7)),
    );
    let risk_increasing = events.iter().find_map(|e| match e {
        Event::Rejected {
            account: Some(a),
            reason,
            ..
        } if *a == MAKER => Some(json!({"rejected": reason})),
        Event::Accepted {
            account,
            side: Side::Buy,
            ..
        } if *account == MAKER => Some(json!("accepted")),
        _ => None,
    });
    json!({
        "guards_open": engine.oracle_guards(0).iter().map(|g| json!({
            "guard": g.kind, "observed": g.observed, "limit": g.limit, "opened_ms": g.opened_ms,
        })).collect::<Vec<_>>(),
        "cancel_accepted": cancelled,
        "reduce_only_accepted": reduce_only,
        "risk_increasing_order": risk_increasing,
    })
}
