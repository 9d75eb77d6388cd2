//! `bulwark bench engine`: the matching core against the `lobster` crate, the full engine with
//! margin checks, and memory per resting order.
//!
//! Every operation stream is generated up front (or, for the full engine, outside the timed
//! region) from a seeded ChaCha8 generator, so a seed reproduces the same figures' workload
//! exactly. The matching comparison runs the identical stream through both books in this process
//! and refuses to report when the two books end in different states: a faster book that computes
//! something else proves nothing.
//!
//! The memory figure is measured first, on a fresh heap, so that the resident-set growth it reports
//! is not hidden by memory that earlier figures freed and the allocator kept.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulwark_engine::book::{Book, BookEvent, Incoming, Resting};
use bulwark_engine::command::{
    AccountId, ClientCommand, Command, InstrumentId, LimitOrder, OrderId, SelfTradePrevention,
    Side, SystemCommand, TimeInForce,
};
use bulwark_engine::{Engine, EngineConfig, Event};
use lobster::{OrderBook, OrderEvent, OrderType};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::report::Figure;

/// Options of `bulwark bench engine`.
#[derive(Debug, clap::Args)]
pub struct EngineBenchArgs {
    /// Seed of every generated operation stream; the same seed gives the same workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Operations executed before measuring starts.
    #[arg(long, default_value_t = 200_000)]
    pub warmup: usize,
    /// Operations measured, per figure.
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: usize,
    /// Resting orders inserted for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    pub resting: usize,
    /// Tiny sizes, for a smoke test: checks that every figure is produced, not how fast.
    #[arg(long)]
    pub quick: bool,
}

/// Why the benchmark stopped without reporting.
#[derive(Debug, Error)]
#[non_exhaustive]
enum BenchError {
    /// The two books disagree after the identical stream; the comparison would be meaningless.
    #[error(
        "at {levels} price levels our book and lobster ended in different states ({what}); \
         the matching comparison is void — this is a bug in the benchmark or in a book"
    )]
    Diverged { levels: i64, what: String },
    /// The engine refused a setup command, so the engine figures would measure rejections.
    #[error(
        "the engine rejected setup command {command} ({reason}); check that \
         EngineConfig::default() lists BTC-PERP as instrument 0 on underlying 0"
    )]
    Setup { command: String, reason: String },
}

/// Price ticks around which every stream is centred (positive, as lobster needs unsigned prices).
const MID_TICKS: i64 = 1_000_000;
/// Largest limit order in lots.
const LIMIT_LOTS_MAX: i64 = 10;
/// The goal for memory per resting order, in bytes (issue 2).
const RESTING_BYTES_GOAL: f64 = 128.0;
/// Accounts trading in the full-engine figure.
const ENGINE_ACCOUNTS: u64 = 1_000;
/// Commands per `execute` call in the batched full-engine figure.
const ENGINE_BATCH: usize = 1_000;

/// Runs the benchmark and prints one JSON line per figure on stdout.
pub fn run(args: EngineBenchArgs) -> ExitCode {
    match run_figures(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Sizes {
    warmup: usize,
    ops: usize,
    resting: usize,
}

fn run_figures(args: &EngineBenchArgs) -> Result<(), BenchError> {
    let sizes = if args.quick {
        // Large enough that resident-set growth is visible, small enough to finish in seconds.
        Sizes {
            warmup: 2_000,
            ops: 20_000,
            resting: 100_000,
        }
    } else {
        Sizes {
            warmup: args.warmup,
            ops: args.ops,
            resting: args.resting,
        }
    };
    memory_figures(sizes.resting);
    for levels in [3, 1001] {
        matching_figure(args.seed, levels, &sizes)?;
    }
    engine_figures(args.seed, &sizes)
}

// ---------------------------------------------------------------------------------------------
// 1. Matching core against lobster.

/// One operation of the matching stream, in terms both books understand.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Match, then rest the remainder.
    Limit {
        id: u64,
        side: Side,
        price: i64,
        qty: i64,
    },
    /// Match without a price limit; the remainder is dropped.
    Market { id: u64, side: Side, qty: i64 },
    /// Remove a resting order; a no-op in both books if it has already traded away.
    Cancel { id: u64 },
}

/// Resting orders the generator aims to keep: about ten per price, and at least a thousand so that
/// the queues at the 3-level book's prices are a few hundred deep, as at a liquid venue's touch.
fn resting_target(levels: i64) -> usize {
    usize::try_from(levels * 10)
        .expect("level count must be positive")
        .max(1_000)
}

/// Generates `count` matching operations (see [`Workload`]), following them through a reference
/// book so that cancels aim at live orders and the book's size stays near [`resting_target`].
/// Also returns the mean number of populated prices after each operation.
fn generate(seed: u64, levels: i64, count: usize) -> (Vec<Op>, f64) {
    let mut workload = Workload::new(
        seed ^ (levels.unsigned_abs() << 32),
        MID_TICKS,
        (levels - 1) / 2,
        resting_target(levels),
    );
    let mut book = Book::new();
    let mut events = Vec::new();
    let mut next_id = 1u64;
    let mut ops = Vec::with_capacity(count);
    let mut populated = 0usize;
    for _ in 0..count {
        let op = match workload.draw() {
            Draw::Limit { side, price, qty } => {
                next_id += 1;
                Op::Limit {
                    id: next_id - 1,
                    side,
                    price,
                    qty,
                }
            }
            Draw::Market { side, qty } => {
                next_id += 1;
                Op::Market {
                    id: next_id - 1,
                    side,
                    qty,
                }
            }
            // Id 0 is never assigned: with nothing live, the cancel is a no-op in both books.
            Draw::Cancel { target } => Op::Cancel {
                id: target.map_or(0, |(id, _)| id),
            },
        };
        let (filled, rested) = apply_ours(&mut book, &op, &mut events);
        let live = &mut workload.live;
        for e in &events {
            match e {
                BookEvent::Fill { maker, qty } => live.reduce(maker.id.0, *qty),
                BookEvent::Removed { maker, .. } => live.remove(maker.id.0),
            }
        }
        match op {
            Op::Limit {
                id,
                side,
                price,
                qty,
            } if rested => live.rest(id, id, side, price, qty - filled),
            Op::Cancel { id } => live.remove(id),
            _ => {}
        }
        populated += book.level_count();
        ops.push(op);
    }
    (ops, populated as f64 / count.max(1) as f64)
}

/// Applies one operation to our book; returns lots filled and whether a remainder rested.
/// `events` is cleared first and holds what matching did afterwards.
fn apply_ours(book: &mut Book, op: &Op, events: &mut Vec<BookEvent>) -> (i64, bool) {
    events.clear();
    match *op {
        Op::Limit {
            id,
            side,
            price,
            qty,
        } => {
            let outcome = book.match_incoming(&taker(id, side, price, qty), events);
            let left = qty - outcome.filled;
            let rests = left > 0 && !outcome.incoming_cancelled;
            if rests {
                book.insert(Resting {
                    id: OrderId(id),
                    owner: AccountId(id),
                    side,
                    price,
                    qty: left,
                    reduce_only: false,
                });
            }
            (outcome.filled, rests)
        }
        Op::Market { id, side, qty } => {
            let limit = match side {
                Side::Buy => i64::MAX,
                Side::Sell => i64::MIN,
            };
            (
                book.match_incoming(&taker(id, side, limit, qty), events)
                    .filled,
                false,
            )
        }
        Op::Cancel { id } => {
            book.cancel(OrderId(id));
            (0, false)
        }
    }
}

/// An incoming order with no band. Each order has its own owner, so self-trade prevention never
/// fires: lobster has none, and both books must do the same work.
fn taker(id: u64, side: Side, limit: i64, qty: i64) -> Incoming {
    Incoming {
        id: OrderId(id),
        owner: AccountId(id),
        side,
        limit,
        qty,
        stp: SelfTradePrevention::CancelResting,
        band_low: i64::MIN,
        band_high: i64::MAX,
    }
}

fn to_lobster(op: &Op) -> OrderType {
    let side = |s: Side| match s {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    };
    let lots = |q: i64| u64::try_from(q).expect("generated sizes must be positive");
    match *op {
        Op::Limit {
            id,
            side: s,
            price,
            qty,
        } => OrderType::Limit {
            id: u128::from(id),
            side: side(s),
            qty: lots(qty),
            price: u64::try_from(price).expect("generated prices must be positive"),
        },
        Op::Market { id, side: s, qty } => OrderType::Market {
            id: u128::from(id),
            side: side(s),
            qty: lots(qty),
        },
        Op::Cancel { id } => OrderType::Cancel { id: u128::from(id) },
    }
}

fn lobster_filled(event: &OrderEvent) -> u64 {
    match event {
        OrderEvent::Filled { filled_qty, .. } | OrderEvent::PartiallyFilled { filled_qty, .. } => {
            *filled_qty
        }
        OrderEvent::Unfilled { .. } | OrderEvent::Placed { .. } | OrderEvent::Canceled { .. } => 0,
    }
}

fn matching_figure(seed: u64, levels: i64, sizes: &Sizes) -> Result<(), BenchError> {
    eprintln!("bench engine: matching, {levels} levels: generating the stream");
    let (ops, populated) = generate(seed, levels, sizes.warmup + sizes.ops);
    eprintln!(
        "bench engine: matching, {levels} levels: {populated:.1} prices populated on average"
    );
    let lobster_ops: Vec<OrderType> = ops.iter().map(to_lobster).collect();
    let (warm, measured) = ops.split_at(sizes.warmup);
    let (lobster_warm, lobster_measured) = lobster_ops.split_at(sizes.warmup);

    eprintln!("bench engine: matching, {levels} levels: our book");
    let mut book = Book::new();
    let mut events = Vec::new();
    let mut ours_filled = 0i64;
    for op in warm {
        ours_filled += apply_ours(&mut book, op, &mut events).0;
    }
    let start = Instant::now();
    for op in measured {
        ours_filled += apply_ours(&mut book, op, &mut events).0;
    }
    let ours_time = start.elapsed();
    black_box(&book);

    eprintln!("bench engine: matching, {levels} levels: lobster");
    let mut peer = OrderBook::default();
    let mut peer_filled = 0u64;
    for op in lobster_warm {
        peer_filled += lobster_filled(&peer.execute(*op));
    }
    let start = Instant::now();
    for op in lobster_measured {
        peer_filled += lobster_filled(&peer.execute(*op));
    }
    let peer_time = start.elapsed();
    black_box(&peer);

    check_same_state(levels, &book, ours_filled, &peer, peer_filled)?;
    eprintln!(
        "bench engine: matching, {levels} levels: books agree ({} resting orders on {} prices, \
         {ours_filled} lots traded)",
        book.len(),
        book.level_count()
    );

    let ours = per_second(measured.len(), ours_time);
    let theirs = per_second(measured.len(), peer_time);
    Figure {
        bench: "engine",
        metric: format!("match_ops_per_s_levels_{levels}"),
        value: ours,
        unit: "ops/s",
        peer: Some("lobster 0.7"),
        peer_value: Some(theirs),
        ratio: Some(ours / theirs),
    }
    .print();
    Ok(())
}

/// Compares every price level on both sides and the total volume traded.
fn check_same_state(
    levels: i64,
    ours: &Book,
    ours_filled: i64,
    peer: &OrderBook,
    peer_filled: u64,
) -> Result<(), BenchError> {
    let diverged = |what: String| BenchError::Diverged { levels, what };
    if u64::try_from(ours_filled).ok() != Some(peer_filled) {
        return Err(diverged(format!(
            "traded {ours_filled} lots against lobster's {peer_filled}"
        )));
    }
    let (our_bids, our_asks) = ours.depth(usize::MAX);
    // lobster lists every non-empty level whatever depth is asked; the argument only sizes its
    // vectors.
    let depth = peer.depth(ours.level_count());
    let convert = |levels: &[lobster::BookLevel]| -> Vec<(i64, i64)> {
        levels
            .iter()
            .map(|l| {
                (
                    i64::try_from(l.price).unwrap_or(i64::MAX),
                    i64::try_from(l.qty).unwrap_or(i64::MAX),
                )
            })
            .collect()
    };
    // lobster lists both sides by ascending price; ours lists each side best first.
    let mut peer_bids = convert(&depth.bids);
    peer_bids.reverse();
    let peer_asks = convert(&depth.asks);
    if our_bids != peer_bids {
        return Err(diverged(format!(
            "bids differ: {} levels against lobster's {}, best {:?} against {:?}",
            our_bids.len(),
            peer_bids.len(),
            our_bids.first(),
            peer_bids.first()
        )));
    }
    if our_asks != peer_asks {
        return Err(diverged(format!(
            "asks differ: {} levels against lobster's {}, best {:?} against {:?}",
            our_asks.len(),
            peer_asks.len(),
            our_asks.first(),
            peer_asks.first()
        )));
    }
    Ok(())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// What the next operation of a workload is, before it is given ids and accounts.
#[derive(Debug, Clone, Copy)]
enum Draw {
    Limit {
        side: Side,
        price: i64,
        qty: i64,
    },
    Market {
        side: Side,
        qty: i64,
    },
    /// `target` is a live order and its owner, or `None` when nothing rests.
    Cancel {
        target: Option<(u64, u64)>,
    },
}

/// The order flow both the matching and the full-engine figures run: 70 % limit, 20 % cancel,
/// 10 % market orders, each of 1 to [`LIMIT_LOTS_MAX`] lots.
///
/// Orders arrive relative to the touch, as on a real venue. A passive buy is priced uniformly 1 to
/// `half + 1` ticks below the best ask, a passive sell 1 to `half` ticks above the best bid, so the
/// book spans about `2 × half + 1` prices. While the book holds at least `target` orders, half of
/// the limit orders are aggressive instead: they cross up to two ticks beyond the touch, on the
/// side that pulls the touch back towards `mid`, which keeps prices in a bounded window. Cancels
/// pick a uniformly random live order. The two feedbacks (book size and drift) change only prices
/// and sides, never the mix of operations.
struct Workload {
    rng: ChaCha8Rng,
    mid: i64,
    half: i64,
    target: usize,
    /// Must be kept up to date by the caller from what the book or engine reports.
    live: LiveOrders,
}

impl Workload {
    fn new(seed: u64, mid: i64, half: i64, target: usize) -> Self {
        Workload {
            rng: ChaCha8Rng::seed_from_u64(seed),
            mid,
            half,
            target,
            live: LiveOrders::default(),
        }
    }

    fn side(&mut self) -> Side {
        if self.rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn draw(&mut self) -> Draw {
        let roll = self.rng.random_range(0..100u32);
        if roll < 70 {
            let qty = self.rng.random_range(1..=LIMIT_LOTS_MAX);
            let (bid, ask) = self.live.touch(self.mid);
            if self.live.len() >= self.target && self.rng.random_bool(0.5) {
                // Lean against the touch's drift from `mid`, so prices stay near the window.
                let drift = ((bid + ask) / 2 - self.mid) as f64 / self.half.max(1) as f64;
                let buy = self.rng.random_bool(0.5 - 0.5 * drift.clamp(-1.0, 1.0));
                let through = self.rng.random_range(0..=2);
                if buy {
                    Draw::Limit {
                        side: Side::Buy,
                        price: ask + through,
                        qty,
                    }
                } else {
                    Draw::Limit {
                        side: Side::Sell,
                        price: bid - through,
                        qty,
                    }
                }
            } else {
                // Bids spread over `half + 1` prices and asks over `half`, so that with a one-tick
                // spread the book spans `2 × half + 1` prices.
                let side = self.side();
                let price = match side {
                    Side::Buy => ask - 1 - self.rng.random_range(0..=self.half),
                    Side::Sell => bid + 1 + self.rng.random_range(0..self.half.max(1)),
                };
                Draw::Limit { side, price, qty }
            }
        } else if roll < 90 {
            Draw::Cancel {
                target: self.live.random(&mut self.rng),
            }
        } else {
            Draw::Market {
                side: self.side(),
                qty: self.rng.random_range(1..=LIMIT_LOTS_MAX),
            }
        }
    }
}

/// A live order as the workload tracks it.
#[derive(Debug, Clone, Copy)]
struct LiveOrder {
    owner: u64,
    side: Side,
    price: i64,
    remaining: i64,
    /// Position in `LiveOrders::ids`.
    slot: usize,
}

/// The workload's view of the book: live orders with uniform random choice and O(1) removal,
/// and the number of live orders at each price on each side.
#[derive(Debug, Default)]
struct LiveOrders {
    orders: HashMap<u64, LiveOrder>,
    ids: Vec<u64>,
    bids: BTreeMap<i64, u32>,
    asks: BTreeMap<i64, u32>,
}

impl LiveOrders {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn prices(&mut self, side: Side) -> &mut BTreeMap<i64, u32> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn rest(&mut self, id: u64, owner: u64, side: Side, price: i64, qty: i64) {
        if qty <= 0 || self.orders.contains_key(&id) {
            return;
        }
        let order = LiveOrder {
            owner,
            side,
            price,
            remaining: qty,
            slot: self.ids.len(),
        };
        self.orders.insert(id, order);
        self.ids.push(id);
        *self.prices(side).entry(price).or_default() += 1;
    }

    fn reduce(&mut self, id: u64, qty: i64) {
        let Some(order) = self.orders.get_mut(&id) else {
            return;
        };
        order.remaining -= qty;
        if order.remaining <= 0 {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(order) = self.orders.remove(&id) else {
            return;
        };
        self.ids.swap_remove(order.slot);
        if let Some(&moved) = self.ids.get(order.slot) {
            if let Some(m) = self.orders.get_mut(&moved) {
                m.slot = order.slot;
            }
        }
        let prices = self.prices(order.side);
        if let Some(n) = prices.get_mut(&order.price) {
            *n -= 1;
            if *n == 0 {
                prices.remove(&order.price);
            }
        }
    }

    /// Best bid and best ask, each side standing in for the other when it is empty, and
    /// `(mid, mid + 1)` when nothing rests.
    fn touch(&self, mid: i64) -> (i64, i64) {
        let bid = self.bids.last_key_value().map(|(&p, _)| p);
        let ask = self.asks.first_key_value().map(|(&p, _)| p);
        match (bid, ask) {
            (Some(b), Some(a)) => (b, a),
            (Some(b), None) => (b, b + 1),
            (None, Some(a)) => (a - 1, a),
            (None, None) => (mid, mid + 1),
        }
    }

    /// A uniformly random live order and its owner.
    fn random(&self, rng: &mut ChaCha8Rng) -> Option<(u64, u64)> {
        if self.ids.is_empty() {
            return None;
        }
        let id = self.ids[rng.random_range(0..self.ids.len())];
        self.orders.get(&id).map(|o| (id, o.owner))
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The full engine, margin checks on every order.

/// BTC-PERP in `EngineConfig::default()`.
const BTC_PERP: InstrumentId = InstrumentId(0);
/// The BTC index: 60 000 USD in micros.
const BTC_INDEX_MICROS: i64 = 60_000_000_000;
/// The same price in BTC-PERP ticks of 0.1 USD.
const BTC_MID_TICKS: i64 = 600_000;
/// Half-width of the limit price range in ticks: 1001 prices, ±50 USD, well inside the band.
const BTC_HALF_TICKS: i64 = 500;
/// Resting orders the engine stream aims to keep.
const ENGINE_RESTING_TARGET: usize = 10_000;
/// Collateral per account: 1 000 000 USD in micros, far above what random 1–10 lot orders need,
/// so margin is checked on every order but rarely binds.
const DEPOSIT_MICROS: i64 = 1_000_000_000_000;

/// Client order ids with this bit set are market orders, which never rest: the stream does not
/// track them.
const MARKET_TAG: u64 = 1 << 63;

/// The [`Workload`] as client commands from random accounts, with cancels sent by the owner of an
/// order the engine reported live.
struct EngineStream {
    workload: Workload,
    nonces: Vec<u64>,
    next_client_order_id: u64,
    rejected: BTreeMap<String, u64>,
}

impl EngineStream {
    fn new(seed: u64) -> Self {
        EngineStream {
            workload: Workload::new(
                seed ^ 0x656e_6769_6e65,
                BTC_MID_TICKS,
                BTC_HALF_TICKS,
                ENGINE_RESTING_TARGET,
            ),
            nonces: vec![0; usize::try_from(ENGINE_ACCOUNTS).expect("account count fits usize")],
            next_client_order_id: 1,
            rejected: BTreeMap::new(),
        }
    }

    fn next(&mut self) -> Command {
        let client_order_id = self.next_client_order_id;
        self.next_client_order_id += 1;
        let draw = self.workload.draw();
        let trader = AccountId(self.workload.rng.random_range(1..=ENGINE_ACCOUNTS));
        let (account, command) = match draw {
            Draw::Limit { side, price, qty } => (
                trader,
                ClientCommand::Limit(LimitOrder {
                    instrument: BTC_PERP,
                    side,
                    price,
                    qty,
                    tif: TimeInForce::Gtc,
                    post_only: false,
                    reduce_only: false,
                    stp: SelfTradePrevention::CancelResting,
                    client_order_id,
                }),
            ),
            Draw::Market { side, qty } => (
                trader,
                ClientCommand::Market {
                    instrument: BTC_PERP,
                    side,
                    qty,
                    reduce_only: false,
                    client_order_id: client_order_id | MARKET_TAG,
                },
            ),
            Draw::Cancel { target } => {
                // Nothing live: an order that does not exist, which the engine must reject.
                let (order_id, account) = target
                    .map_or((OrderId(u64::MAX), trader), |(id, owner)| {
                        (OrderId(id), AccountId(owner))
                    });
                (
                    account,
                    ClientCommand::Cancel {
                        instrument: BTC_PERP,
                        order_id,
                    },
                )
            }
        };
        let nonce =
            &mut self.nonces[usize::try_from(account.0 - 1).expect("account ids start at 1")];
        *nonce += 1;
        Command::Client {
            account,
            nonce: *nonce,
            command,
        }
    }

    /// Follows the engine's events to know which orders rest, and counts rejections by reason.
    fn observe(&mut self, events: &[Event]) {
        let live = &mut self.workload.live;
        for e in events {
            match e {
                Event::Accepted {
                    order_id,
                    account,
                    client_order_id,
                    side,
                    price,
                    qty,
                    ..
                } if client_order_id & MARKET_TAG == 0 => {
                    live.rest(order_id.0, account.0, *side, *price, *qty);
                }
                Event::Fill {
                    maker_order,
                    taker_order,
                    qty,
                    ..
                } => {
                    live.reduce(maker_order.0, *qty);
                    live.reduce(taker_order.0, *qty);
                }
                Event::Cancelled { order_id, .. } => live.remove(order_id.0),
                Event::Rejected { reason, .. } => {
                    *self.rejected.entry(format!("{reason:?}")).or_default() += 1;
                }
                _ => {}
            }
        }
    }
}

/// A fresh engine with [`ENGINE_ACCOUNTS`] funded accounts and a BTC index price.
fn setup_engine() -> Result<Engine, BenchError> {
    let mut engine = Engine::new(EngineConfig::default());
    let mut setup = Vec::new();
    for a in 1..=ENGINE_ACCOUNTS {
        let mut public_key = [0u8; 32];
        public_key[..8].copy_from_slice(&a.to_le_bytes());
        setup.push(Command::System(SystemCommand::OpenAccount {
            account: AccountId(a),
            public_key,
        }));
        setup.push(Command::System(SystemCommand::Deposit {
            account: AccountId(a),
            amount: DEPOSIT_MICROS,
        }));
    }
    setup.push(Command::System(SystemCommand::IndexPrice {
        underlying: 0,
        price_micros: BTC_INDEX_MICROS,
    }));
    let mut out = Vec::new();
    for command in &setup {
        out.clear();
        engine.execute(0, std::slice::from_ref(command), &mut out);
        if let Some(Event::Rejected { reason, .. }) =
            out.iter().find(|e| matches!(e, Event::Rejected { .. }))
        {
            return Err(BenchError::Setup {
                command: format!("{command:?}"),
                reason: format!("{reason:?}"),
            });
        }
    }
    Ok(engine)
}

/// Venue time of the `i`-th command: one millisecond per [`ENGINE_BATCH`] commands, so that a
/// batch and the same commands sent one by one see the same clock.
fn engine_time_ms(i: usize) -> u64 {
    1_000 + u64::try_from(i / ENGINE_BATCH).expect("op count fits u64")
}

/// Runs the stream one command per `execute` (timing each call), recording it; then replays the
/// recorded commands on a fresh engine in batches of [`ENGINE_BATCH`]. The stream needs the
/// engine's events to aim its cancels, so it is generated during the first run, outside the timed
/// calls; throughput counts only time spent inside `execute`.
fn engine_figures(seed: u64, sizes: &Sizes) -> Result<(), BenchError> {
    eprintln!("bench engine: full engine: one command per execute(), {ENGINE_ACCOUNTS} accounts");
    let mut engine = setup_engine()?;
    let mut stream = EngineStream::new(seed);
    let total = sizes.warmup + sizes.ops;
    let mut commands = Vec::with_capacity(total);
    let mut out = Vec::new();
    let mut latencies_ns = Vec::with_capacity(sizes.ops);
    let mut busy = Duration::ZERO;
    for i in 0..total {
        let command = stream.next();
        out.clear();
        let start = Instant::now();
        engine.execute(engine_time_ms(i), std::slice::from_ref(&command), &mut out);
        let took = start.elapsed();
        if i >= sizes.warmup {
            busy += took;
            latencies_ns.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        stream.observe(&out);
        commands.push(command);
    }
    drop(engine);
    eprintln!(
        "bench engine: full engine: {} orders resting at the end; rejections by reason: {:?}",
        stream.workload.live.len(),
        stream.rejected
    );
    latencies_ns.sort_unstable();
    let percentile = |p: usize| {
        let i = (latencies_ns.len() * p / 100).min(latencies_ns.len().saturating_sub(1));
        latencies_ns.get(i).copied().unwrap_or(0) as f64
    };
    let single = [
        (
            "engine_orders_per_s",
            per_second(sizes.ops, busy),
            "orders/s",
        ),
        ("engine_op_p50_ns", percentile(50), "ns"),
        ("engine_op_p99_ns", percentile(99), "ns"),
    ];

    eprintln!("bench engine: full engine: the same commands in batches of {ENGINE_BATCH}");
    let mut engine = setup_engine()?;
    let mut busy = Duration::ZERO;
    let mut measured = 0;
    let mut rejected = 0usize;
    for (k, batch) in commands.chunks(ENGINE_BATCH).enumerate() {
        let first = k * ENGINE_BATCH;
        out.clear();
        let start = Instant::now();
        engine.execute(engine_time_ms(first), batch, &mut out);
        let took = start.elapsed();
        if first >= sizes.warmup {
            busy += took;
            measured += batch.len();
        }
        rejected += out
            .iter()
            .filter(|e| matches!(e, Event::Rejected { .. }))
            .count();
    }
    black_box(&engine);
    eprintln!("bench engine: full engine: {rejected} commands rejected when batched");

    for (metric, value, unit) in single {
        Figure {
            bench: "engine",
            metric: metric.to_string(),
            value,
            unit,
            peer: None,
            peer_value: None,
            ratio: None,
        }
        .print();
    }
    Figure {
        bench: "engine",
        metric: format!("engine_orders_per_s_batch_{ENGINE_BATCH}"),
        value: per_second(measured, busy),
        unit: "orders/s",
        peer: None,
        peer_value: None,
        ratio: None,
    }
    .print();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Memory per resting order.

/// Rests `count` non-crossing orders on 1000 prices (500 a side) and reports bytes per order, as
/// the book's own heap account and as resident-set growth.
fn memory_figures(count: usize) {
    eprintln!("bench engine: memory: resting {count} orders");
    let rss_before = resident_bytes();
    let mut book = Book::new();
    for i in 0..count {
        let n = i64::try_from(i).expect("order count fits i64");
        let (side, price) = if n % 2 == 0 {
            (Side::Buy, MID_TICKS - 1 - (n / 2) % 500)
        } else {
            (Side::Sell, MID_TICKS + 1 + (n / 2) % 500)
        };
        let id = u64::try_from(i).expect("order count fits u64") + 1;
        book.insert(Resting {
            id: OrderId(id),
            owner: AccountId(id % ENGINE_ACCOUNTS),
            side,
            price,
            qty: 1 + n % LIMIT_LOTS_MAX,
            reduce_only: false,
        });
    }
    let rss_after = resident_bytes();
    black_box(&book);
    let count_f = count.max(1) as f64;
    let print = |metric: &str, bytes: f64| {
        Figure {
            bench: "engine",
            metric: metric.to_string(),
            value: bytes,
            unit: "bytes",
            peer: Some("goal"),
            peer_value: Some(RESTING_BYTES_GOAL),
            ratio: Some(bytes / RESTING_BYTES_GOAL),
        }
        .print();
    };
    print(
        "book_bytes_per_resting_order",
        book.heap_bytes() as f64 / count_f,
    );
    match (rss_before, rss_after) {
        (Some(before), Some(after)) if after > before => {
            print(
                "book_bytes_per_resting_order_rss",
                (after - before) as f64 / count_f,
            );
        }
        _ => eprintln!(
            "bench engine: memory: resident-set growth not measurable here (no /proc/self/status \
             or no growth); skipping the RSS figure"
        ),
    }
}

/// The process's resident set in bytes, from `/proc/self/status` (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
