//! The matching core against lobster on the same operation stream.

#![allow(unused_imports)] // the engine bench's imports, shared by its parts

use super::*;

/// One operation of the matching stream, in terms both books understand.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
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
pub(super) fn resting_target(levels: i64) -> usize {
    usize::try_from(levels * 10)
        .expect("level count must be positive")
        .max(1_000)
}

/// Generates `count` matching operations (see [`Workload`]), following them through a reference
/// book so that cancels aim at live orders and the book's size stays near [`resting_target`].
/// Also returns the mean number of populated prices after each operation.
pub(super) fn generate(seed: u64, levels: i64, count: usize) -> (Vec<Op>, f64) {
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
pub(super) fn apply_ours(book: &mut Book, op: &Op, events: &mut Vec<BookEvent>) -> (i64, bool) {
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
                    session: 0,
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
pub(super) fn taker(id: u64, side: Side, limit: i64, qty: i64) -> Incoming {
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

pub(super) fn to_lobster(op: &Op) -> OrderType {
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

pub(super) fn lobster_filled(event: &OrderEvent) -> u64 {
    match event {
        OrderEvent::Filled { filled_qty, .. } | OrderEvent::PartiallyFilled { filled_qty, .. } => {
            *filled_qty
        }
        OrderEvent::Unfilled { .. } | OrderEvent::Placed { .. } | OrderEvent::Canceled { .. } => 0,
    }
}

pub(super) fn matching_figure(seed: u64, levels: i64, sizes: &Sizes) -> Result<(), BenchError> {
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
        value: Some(ours),
        unit: "ops/s",
        peer: Some("lobster 0.7"),
        peer_value: Some(theirs),
        ratio: Some(ours / theirs),
    }
    .print();
    Ok(())
}

/// Compares every price level on both sides and the total volume traded.
pub(super) fn check_same_state(
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
