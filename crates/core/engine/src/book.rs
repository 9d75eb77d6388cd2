//! A price-time priority limit order book for one instrument.
//!
//! Resting orders live in a slab (`Vec<Slot>` with a free list) and are chained per price level in
//! an intrusive doubly-linked list, so cancel is O(1) given the order id (an `FxHashMap` from id to
//! slot). A second intrusive list per owner makes "all of one account's orders" (mass cancel,
//! liquidation) cost O(its own orders), not O(book). Price levels are kept in one `BTreeMap` per side; the map is touched only when a level is
//! created or emptied. The book knows nothing of margin, fees or marks: the engine decides whether
//! an order may trade and passes the price band in.
//!
//! Everything here is deterministic: the slab layout depends only on the sequence of operations,
//! and the id index (the only hash map) is excluded from snapshots and rebuilt on restore.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{AccountId, OrderId, SelfTradePrevention, Side};

const NIL: u32 = u32::MAX;

/// A resting order as the book stores it (56 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    id: u64,
    owner: u64,
    price: i64,
    /// Remaining lots; 0 marks a free slot.
    qty: i64,
    prev: u32,
    next: u32,
    /// The owner's list. Not in snapshots: its order depends on history, so it is rebuilt on
    /// restore (in slab order) and only ever read through the id-sorted `orders_of`.
    #[serde(skip)]
    owner_prev: u32,
    #[serde(skip)]
    owner_next: u32,
    level: u32,
    side: Side,
    reduce_only: bool,
    /// The trading session that placed it (its logon time), 0 for the account itself.
    session: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Level {
    price: i64,
    total: i64,
    head: u32,
    tail: u32,
    count: u32,
}

/// Price levels as (price in ticks, total lots), best first.
pub type Levels = Vec<(i64, i64)>;

/// A resting order, as returned by queries and cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resting {
    /// The order.
    pub id: OrderId,
    /// Its owner.
    pub owner: AccountId,
    /// Its side.
    pub side: Side,
    /// Its price in ticks.
    pub price: i64,
    /// Its remaining lots.
    pub qty: i64,
    /// Whether it may only reduce a position.
    pub reduce_only: bool,
    /// The trading session that placed it ([`crate::session::SessionKey::tag`]), 0 for the
    /// account itself: the committee's cancel on disconnect cancels only a silent session's
    /// own orders.
    pub session: u64,
}

/// An incoming order to match against the book.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// Its id (already assigned by the engine).
    pub id: OrderId,
    /// Its owner.
    pub owner: AccountId,
    /// Its side.
    pub side: Side,
    /// Worst price it accepts, in ticks.
    pub limit: i64,
    /// Lots wanted.
    pub qty: i64,
    /// Self-trade prevention mode.
    pub stp: SelfTradePrevention,
    /// Resting orders priced outside `[band_low, band_high]` are cancelled when reached, never
    /// filled.
    pub band_low: i64,
    /// See `band_low`.
    pub band_high: i64,
}

/// What matching did to resting orders, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookEvent {
    /// A fill at the resting order's price.
    Fill {
        /// The resting order (its side is the incoming order's opposite).
        maker: Resting,
        /// Lots traded.
        qty: i64,
    },
    /// A resting order was removed without trading (`self_trade` true: self-trade prevention;
    /// false: priced outside the band).
    Removed {
        /// The order as it was.
        maker: Resting,
        /// Why.
        self_trade: bool,
    },
}

/// The result of matching an incoming order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOutcome {
    /// Lots filled.
    pub filled: i64,
    /// Self-trade prevention cancelled the incoming remainder.
    pub incoming_cancelled: bool,
}

/// One instrument's order book.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Book {
    slots: Vec<Slot>,
    free_slot: u32,
    levels: Vec<Level>,
    free_level: u32,
    bids: BTreeMap<i64, u32>,
    asks: BTreeMap<i64, u32>,
    #[serde(skip)]
    index: FxHashMap<u64, u32>,
    /// Head of each owner's list of resting orders (rebuilt on restore).
    #[serde(skip)]
    owners: FxHashMap<u64, u32>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Book {
            free_slot: NIL,
            free_level: NIL,
            ..Default::default()
        }
    }

    /// Rebuilds the id index and the owners' lists after deserialization.
    pub fn rebuild_index(&mut self) {
        self.index.clear();
        self.owners.clear();
        for i in 0..self.slots.len() {
            if self.slots[i].qty > 0 {
                let slot = u32::try_from(i).expect("slab size must fit u32");
                self.index.insert(self.slots[i].id, slot);
                self.link_owner(slot);
            }
        }
    }

    /// Every resting order of `owner`, in order-id order (deterministic whatever the list order).
    pub fn orders_of(&self, owner: AccountId) -> Vec<Resting> {
        let mut out = Vec::new();
        let mut cur = self.owners.get(&owner.0).copied().unwrap_or(NIL);
        while cur != NIL {
            let s = &self.slots[cur as usize];
            out.push(self.resting(s));
            cur = s.owner_next;
        }
        out.sort_unstable_by_key(|r| r.id);
        out
    }

    fn link_owner(&mut self, slot: u32) {
        let owner = self.slots[slot as usize].owner;
        let head = self.owners.insert(owner, slot).unwrap_or(NIL);
        let s = &mut self.slots[slot as usize];
        s.owner_prev = NIL;
        s.owner_next = head;
        if head != NIL {
            self.slots[head as usize].owner_prev = slot;
        }
    }

    fn unlink_owner(&mut self, slot: u32) {
        let s = self.slots[slot as usize];
        if s.owner_prev == NIL {
            if s.owner_next == NIL {
                self.owners.remove(&s.owner);
            } else {
                self.owners.insert(s.owner, s.owner_next);
            }
        } else {
            self.slots[s.owner_prev as usize].owner_next = s.owner_next;
        }
        if s.owner_next != NIL {
            self.slots[s.owner_next as usize].owner_prev = s.owner_prev;
        }
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing rests.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Highest bid price and its total size.
    pub fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids
            .last_key_value()
            .map(|(p, &l)| (*p, self.levels[l as usize].total))
    }

    /// Lowest ask price and its total size.
    pub fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks
            .first_key_value()
            .map(|(p, &l)| (*p, self.levels[l as usize].total))
    }

    /// Up to `n` levels per side, best first: (bids, asks).
    pub fn depth(&self, n: usize) -> (Levels, Levels) {
        let level = |(p, l): (&i64, &u32)| (*p, self.levels[*l as usize].total);
        (
            self.bids.iter().rev().take(n).map(level).collect(),
            self.asks.iter().take(n).map(level).collect(),
        )
    }

    /// Number of price levels on both sides.
    pub fn level_count(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    /// Looks up a resting order.
    pub fn order(&self, id: OrderId) -> Option<Resting> {
        self.index
            .get(&id.0)
            .map(|&s| self.resting(&self.slots[s as usize]))
    }

    /// All resting orders in slab order (deterministic).
    pub fn orders(&self) -> impl Iterator<Item = Resting> + '_ {
        self.slots
            .iter()
            .filter(|s| s.qty > 0)
            .map(|s| self.resting(s))
    }

    fn resting(&self, s: &Slot) -> Resting {
        Resting {
            id: OrderId(s.id),
            owner: AccountId(s.owner),
            side: s.side,
            price: s.price,
            qty: s.qty,
            reduce_only: s.reduce_only,
            session: s.session,
        }
    }

    /// True if an order at `price` on `side` would trade with anything resting (post-only check).
    pub fn would_cross(&self, side: Side, price: i64) -> bool {
        match side {
            Side::Buy => self.best_ask().is_some_and(|(p, _)| p <= price),
            Side::Sell => self.best_bid().is_some_and(|(p, _)| p >= price),
        }
    }

    /// Lots an incoming order could fill right now within its limit and band, not counting the
    /// owner's own resting orders (fill-or-kill check). Stops counting once `want` is reached.
    pub fn fillable(&self, inc: &Incoming) -> i64 {
        let mut sum = 0i64;
        let levels: Box<dyn Iterator<Item = (&i64, &u32)>> = match inc.side {
            Side::Buy => Box::new(self.asks.range(inc.band_low..=inc.limit.min(inc.band_high))),
            Side::Sell => Box::new(
                self.bids
                    .range(inc.limit.max(inc.band_low)..=inc.band_high)
                    .rev(),
            ),
        };
        for (_, &l) in levels {
            let mut cur = self.levels[l as usize].head;
            while cur != NIL {
                let s = &self.slots[cur as usize];
                if s.owner != inc.owner.0 {
                    sum = sum.saturating_add(s.qty);
                    if sum >= inc.qty {
                        return sum;
                    }
                }
                cur = s.next;
            }
        }
        sum
    }

    /// Matches an incoming order against the opposite side, best price first and FIFO within a
    /// price, appending what happened to resting orders to `out`. The remainder is not inserted.
    pub fn match_incoming(&mut self, inc: &Incoming, out: &mut Vec<BookEvent>) -> MatchOutcome {
        let mut left = inc.qty;
        let mut incoming_cancelled = false;
        while left > 0 {
            let best = match inc.side {
                Side::Buy => self.asks.first_key_value(),
                Side::Sell => self.bids.last_key_value(),
            };
            let Some((&price, &level)) = best else { break };
            let crosses = match inc.side {
                Side::Buy => price <= inc.limit,
                Side::Sell => price >= inc.limit,
            };
            if !crosses {
                break;
            }
            let out_of_band = price < inc.band_low || price > inc.band_high;
            let head = self.levels[level as usize].head;
            let maker = self.slots[head as usize];
            if out_of_band {
                self.unlink(head);
                out.push(BookEvent::Removed {
                    maker: self.resting(&maker),
                    self_trade: false,
                });
                continue;
            }
            if maker.owner == inc.owner.0 {
                match inc.stp {
                    SelfTradePrevention::CancelIncoming => {
                        incoming_cancelled = true;
                        break;
                    }
                    SelfTradePrevention::CancelResting | SelfTradePrevention::CancelBoth => {
                        self.unlink(head);
                        out.push(BookEvent::Removed {
                            maker: self.resting(&maker),
                            self_trade: true,
                        });
                        if inc.stp == SelfTradePrevention::CancelBoth {
                            incoming_cancelled = true;
                            break;
                        }
                        continue;
                    }
                }
            }
            let qty = left.min(maker.qty);
            left -= qty;
            out.push(BookEvent::Fill {
                maker: self.resting(&maker),
                qty,
            });
            if qty == maker.qty {
                self.unlink(head);
            } else {
                self.slots[head as usize].qty -= qty;
                self.levels[level as usize].total -= qty;
            }
        }
        MatchOutcome {
            filled: inc.qty - left,
            incoming_cancelled,
        }
    }

    /// Rests an order at the back of its price level. The caller must have matched it first, so
    /// it must not cross, and its id must be new.
    pub fn insert(&mut self, order: Resting) {
        debug_assert!(order.qty > 0, "a resting order must have a positive size");
        debug_assert!(
            !self.index.contains_key(&order.id.0),
            "order ids must be unique"
        );
        let level = self.level_for(order.side, order.price);
        let slot = self.alloc_slot(Slot {
            id: order.id.0,
            owner: order.owner.0,
            price: order.price,
            qty: order.qty,
            prev: NIL,
            next: NIL,
            owner_prev: NIL,
            owner_next: NIL,
            level,
            side: order.side,
            reduce_only: order.reduce_only,
            session: order.session,
        });
        let lv = &mut self.levels[level as usize];
        let tail = lv.tail;
        lv.tail = slot;
        lv.total += order.qty;
        lv.count += 1;
        if tail == NIL {
            lv.head = slot;
        } else {
            self.slots[tail as usize].next = slot;
            self.slots[slot as usize].prev = tail;
        }
        self.index.insert(order.id.0, slot);
        self.link_owner(slot);
    }

    /// Removes a resting order. O(1) apart from removing an emptied level from the tree.
    pub fn cancel(&mut self, id: OrderId) -> Option<Resting> {
        let slot = *self.index.get(&id.0)?;
        let r = self.resting(&self.slots[slot as usize]);
        self.unlink(slot);
        Some(r)
    }

    /// Shrinks a resting order in place, keeping its priority. `qty` must be positive and not
    /// larger than the current size.
    pub fn reduce(&mut self, id: OrderId, qty: i64) -> Option<Resting> {
        let slot = *self.index.get(&id.0)?;
        let s = &mut self.slots[slot as usize];
        debug_assert!(qty > 0 && qty <= s.qty, "reduce must shrink the order");
        let delta = s.qty - qty;
        s.qty = qty;
        let level = s.level;
        self.levels[level as usize].total -= delta;
        Some(self.resting(&self.slots[slot as usize]))
    }

    fn level_for(&mut self, side: Side, price: i64) -> u32 {
        let map = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if let Some(&l) = map.get(&price) {
            return l;
        }
        let lv = Level {
            price,
            total: 0,
            head: NIL,
            tail: NIL,
            count: 0,
        };
        let idx = if self.free_level != NIL {
            let i = self.free_level;
            self.free_level = self.levels[i as usize].head;
            self.levels[i as usize] = lv;
            i
        } else {
            self.levels.push(lv);
            u32::try_from(self.levels.len() - 1).expect("level count must fit u32")
        };
        map.insert(price, idx);
        idx
    }

    fn alloc_slot(&mut self, s: Slot) -> u32 {
        if self.free_slot != NIL {
            let i = self.free_slot;
            self.free_slot = self.slots[i as usize].next;
            self.slots[i as usize] = s;
            i
        } else {
            self.slots.push(s);
            u32::try_from(self.slots.len() - 1).expect("order count must fit u32")
        }
    }

    fn unlink(&mut self, slot: u32) {
        let s = self.slots[slot as usize];
        let lv = &mut self.levels[s.level as usize];
        lv.total -= s.qty;
        lv.count -= 1;
        if s.prev == NIL {
            lv.head = s.next;
        } else {
            self.slots[s.prev as usize].next = s.next;
        }
        if s.next == NIL {
            lv.tail = s.prev;
        } else {
            self.slots[s.next as usize].prev = s.prev;
        }
        if lv.count == 0 {
            let map = match s.side {
                Side::Buy => &mut self.bids,
                Side::Sell => &mut self.asks,
            };
            map.remove(&s.price);
            self.levels[s.level as usize].head = self.free_level;
            self.free_level = s.level;
        }
        self.index.remove(&s.id);
        self.unlink_owner(slot);
        let freed = &mut self.slots[slot as usize];
        *freed = Slot {
            id: 0,
            owner: 0,
            price: 0,
            qty: 0,
            prev: NIL,
            next: self.free_slot,
            owner_prev: NIL,
            owner_next: NIL,
            level: NIL,
            side: Side::Buy,
            reduce_only: false,
            session: 0,
        };
        self.free_slot = slot;
    }

    /// Bytes of heap the book holds (slab, levels, index), for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        let index = (self.index.capacity() + self.owners.capacity())
            * (std::mem::size_of::<(u64, u32)>() + 1);
        let tree = (self.bids.len() + self.asks.len()) * (std::mem::size_of::<(i64, u32)>() + 8);
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.levels.capacity() * std::mem::size_of::<Level>()
            + index
            + tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(id: u64, owner: u64, side: Side, price: i64, qty: i64) -> Resting {
        Resting {
            id: OrderId(id),
            owner: AccountId(owner),
            side,
            price,
            qty,
            reduce_only: false,
            session: 0,
        }
    }

    fn taker(id: u64, owner: u64, side: Side, limit: i64, qty: i64) -> Incoming {
        Incoming {
            id: OrderId(id),
            owner: AccountId(owner),
            side,
            limit,
            qty,
            stp: SelfTradePrevention::CancelResting,
            band_low: i64::MIN,
            band_high: i64::MAX,
        }
    }

    #[test]
    fn price_then_time_priority() {
        let mut b = Book::new();
        b.insert(rest(1, 1, Side::Sell, 101, 5));
        b.insert(rest(2, 2, Side::Sell, 100, 5));
        b.insert(rest(3, 3, Side::Sell, 100, 5));
        let mut out = vec![];
        let m = b.match_incoming(&taker(4, 9, Side::Buy, 101, 12), &mut out);
        assert_eq!(m.filled, 12);
        let ids: Vec<u64> = out
            .iter()
            .map(|e| match e {
                BookEvent::Fill { maker, .. } => maker.id.0,
                BookEvent::Removed { .. } => 0,
            })
            .collect();
        assert_eq!(ids, vec![2, 3, 1]);
        assert_eq!(b.best_ask(), Some((101, 3)));
    }

    #[test]
    fn cancel_reuses_slots_and_levels() {
        let mut b = Book::new();
        for i in 0..10 {
            b.insert(rest(i, 1, Side::Buy, 100 + i as i64, 1));
        }
        for i in 0..10 {
            assert!(b.cancel(OrderId(i)).is_some());
        }
        assert!(b.is_empty());
        assert_eq!(b.level_count(), 0);
        b.insert(rest(20, 1, Side::Buy, 50, 1));
        assert_eq!(b.slots.len(), 10);
        assert_eq!(b.levels.len(), 10);
        assert!(b.cancel(OrderId(0)).is_none());
    }

    #[test]
    fn self_trade_and_band_remove_makers() {
        let mut b = Book::new();
        b.insert(rest(1, 7, Side::Sell, 90, 1));
        b.insert(rest(2, 9, Side::Sell, 100, 1));
        b.insert(rest(3, 8, Side::Sell, 100, 1));
        let mut inc = taker(4, 9, Side::Buy, 100, 5);
        inc.band_low = 95;
        let mut out = vec![];
        let m = b.match_incoming(&inc, &mut out);
        assert_eq!(m.filled, 1);
        assert!(matches!(
            out[0],
            BookEvent::Removed {
                self_trade: false,
                ..
            }
        ));
        assert!(matches!(
            out[1],
            BookEvent::Removed {
                self_trade: true,
                ..
            }
        ));
        assert!(matches!(out[2], BookEvent::Fill { qty: 1, .. }));
        assert!(b.is_empty());
    }

    #[test]
    fn owner_lists_follow_inserts_fills_and_cancels() {
        let mut b = Book::new();
        for i in 1..=6u64 {
            b.insert(rest(i, i % 2, Side::Sell, 100 + i as i64, 1));
        }
        let ids = |b: &Book, owner| {
            b.orders_of(AccountId(owner))
                .iter()
                .map(|r| r.id.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&b, 1), vec![1, 3, 5]);
        b.cancel(OrderId(3));
        let mut out = vec![];
        b.match_incoming(&taker(9, 7, Side::Buy, 101, 1), &mut out);
        assert_eq!(ids(&b, 1), vec![5]);
        assert_eq!(ids(&b, 0), vec![2, 4, 6]);
        let bytes = postcard::to_allocvec(&b).expect("serialize");
        let mut c: Book = postcard::from_bytes(&bytes).expect("deserialize");
        c.rebuild_index();
        assert_eq!(ids(&c, 0), vec![2, 4, 6]);
        assert_eq!(postcard::to_allocvec(&c).expect("serialize"), bytes);
        for id in [2, 4, 6, 5] {
            b.cancel(OrderId(id));
        }
        assert!(ids(&b, 0).is_empty() && b.owners.is_empty());
    }

    #[test]
    fn fillable_skips_own_orders() {
        let mut b = Book::new();
        b.insert(rest(1, 9, Side::Buy, 100, 3));
        b.insert(rest(2, 8, Side::Buy, 99, 3));
        let inc = taker(3, 9, Side::Sell, 99, 10);
        assert_eq!(b.fillable(&inc), 3);
    }

    #[test]
    fn restore_rebuilds_index() {
        let mut b = Book::new();
        b.insert(rest(1, 1, Side::Buy, 100, 3));
        b.insert(rest(2, 1, Side::Buy, 100, 3));
        b.cancel(OrderId(1));
        let bytes = postcard::to_allocvec(&b).expect("serialize");
        let mut c: Book = postcard::from_bytes(&bytes).expect("deserialize");
        c.rebuild_index();
        assert_eq!(c.order(OrderId(2)).map(|r| r.qty), Some(3));
        assert_eq!(postcard::to_allocvec(&c).expect("serialize"), bytes);
    }
}
