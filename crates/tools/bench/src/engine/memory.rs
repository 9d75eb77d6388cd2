//! Memory per resting order.

#![allow(unused_imports)] // the engine bench's imports, shared by its parts

use super::*;

/// Rests `count` non-crossing orders on 1000 prices (500 a side) and reports bytes per order, as
/// the book's own heap account and as resident-set growth.
pub(super) fn memory_figures(count: usize) {
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
            session: 0,
        });
    }
    let rss_after = resident_bytes();
    black_box(&book);
    let count_f = count.max(1) as f64;
    let print = |metric: &str, bytes: f64| {
        Figure {
            bench: "engine",
            metric: metric.to_string(),
            value: Some(bytes),
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
pub(super) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
