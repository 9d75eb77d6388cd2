//! The full engine: margin on every order, single commands and batches.

#![allow(unused_imports)] // the engine bench's imports, shared by its parts

use super::*;

/// What the next operation of a workload is, before it is given ids and accounts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Draw {
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
pub(super) struct Workload {
    pub(super) rng: ChaCha8Rng,
    pub(super) mid: i64,
    pub(super) half: i64,
    pub(super) target: usize,
    /// Must be kept up to date by the caller from what the book or engine reports.
    pub(super) live: LiveOrders,
}

impl Workload {
    pub(super) fn new(seed: u64, mid: i64, half: i64, target: usize) -> Self {
        Workload {
            rng: ChaCha8Rng::seed_from_u64(seed),
            mid,
            half,
            target,
            live: LiveOrders::default(),
        }
    }

    pub(super) fn side(&mut self) -> Side {
        if self.rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    pub(super) fn draw(&mut self) -> Draw {
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
pub(super) struct LiveOrder {
    pub(super) owner: u64,
    pub(super) side: Side,
    pub(super) price: i64,
    pub(super) remaining: i64,
    /// Position in `LiveOrders::ids`.
    pub(super) slot: usize,
}

/// The workload's view of the book: live orders with uniform random choice and O(1) removal,
/// and the number of live orders at each price on each side.
#[derive(Debug, Default)]
pub(super) struct LiveOrders {
    pub(super) orders: HashMap<u64, LiveOrder>,
    pub(super) ids: Vec<u64>,
    pub(super) bids: BTreeMap<i64, u32>,
    pub(super) asks: BTreeMap<i64, u32>,
}

impl LiveOrders {
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn prices(&mut self, side: Side) -> &mut BTreeMap<i64, u32> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    pub(super) fn rest(&mut self, id: u64, owner: u64, side: Side, price: i64, qty: i64) {
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

    pub(super) fn reduce(&mut self, id: u64, qty: i64) {
        let Some(order) = self.orders.get_mut(&id) else {
            return;
        };
        order.remaining -= qty;
        if order.remaining <= 0 {
            self.remove(id);
        }
    }

    pub(super) fn remove(&mut self, id: u64) {
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
    pub(super) fn touch(&self, mid: i64) -> (i64, i64) {
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
    pub(super) fn random(&self, rng: &mut ChaCha8Rng) -> Option<(u64, u64)> {
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
pub(super) const BTC_PERP: InstrumentId = InstrumentId(0);
/// The BTC index: 60 000 USD in micros.
pub(super) const BTC_INDEX_MICROS: i64 = 60_000_000_000;
/// The same price in BTC-PERP ticks of 0.1 USD.
pub(super) const BTC_MID_TICKS: i64 = 600_000;
/// Half-width of the limit price range in ticks: 1001 prices, ±50 USD, well inside the band.
pub(super) const BTC_HALF_TICKS: i64 = 500;
/// Resting orders the engine stream aims to keep.
pub(super) const ENGINE_RESTING_TARGET: usize = 10_000;
/// Collateral per account: 1 000 000 USD in micros, far above what random 1–10 lot orders need,
/// so margin is checked on every order but rarely binds.
pub(super) const DEPOSIT_MICROS: i64 = 1_000_000_000_000;

/// Client order ids with this bit set are market orders, which never rest: the stream does not
/// track them.
pub(super) const MARKET_TAG: u64 = 1 << 63;

/// The [`Workload`] as client commands from random accounts, with cancels sent by the owner of an
/// order the engine reported live.
pub(super) struct EngineStream {
    workload: Workload,
    nonces: Vec<u64>,
    next_client_order_id: u64,
    rejected: BTreeMap<String, u64>,
}

impl EngineStream {
    pub(super) fn new(seed: u64) -> Self {
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

    pub(super) fn next(&mut self) -> Command {
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
    pub(super) fn observe(&mut self, events: &[Event]) {
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
pub(super) fn setup_engine() -> Result<Engine, BenchError> {
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
pub(super) fn engine_time_ms(i: usize) -> u64 {
    1_000 + u64::try_from(i / ENGINE_BATCH).expect("op count fits u64")
}

/// Runs the stream one command per `execute` (timing each call), recording it; then replays the
/// recorded commands on a fresh engine in batches of [`ENGINE_BATCH`]. The stream needs the
/// engine's events to aim its cancels, so it is generated during the first run, outside the timed
/// calls; throughput counts only time spent inside `execute`.
pub(super) fn engine_figures(seed: u64, sizes: &Sizes) -> Result<(), BenchError> {
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
    let percentile = |p: u32| bulwark_api::stats::percentile(&latencies_ns, p).unwrap_or(0) as f64;
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
            value: Some(value),
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
        value: Some(per_second(measured, busy)),
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
