//! Helpers of the gateway's process tests: a free port range, `bulwark up` in a thread, the
//! committee's mark, FIX prices.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulwark_engine::InstrumentId;
use bulwark_node::client::Client;

/// A base port from `first` on (8 ranges 500 apart, started at this process's id) whose p2p,
/// operator, client, FIX and WebSocket gateway ports are free.
pub fn base_port(first: u16) -> u16 {
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let start = (std::process::id() % 8) as u16;
    for step in 0..8u16 {
        let base = first + ((start + step) % 8) * 500;
        let free = (0..4u16).all(|i| {
            [0, 49, 50, 75, 100, 300, 400]
                .iter()
                .all(|offset| bindable(base + offset + i))
        });
        if free {
            return base;
        }
    }
    panic!("no free port range from {first}");
}

/// The log of `bulwark up`'s gateway in data center `dc` (empty when it cannot be read), for
/// failure messages.
pub fn gateway_log(data: &Path, dc: usize) -> String {
    let path = data
        .join("committee")
        .join(format!("gateway-dc-{dc}"))
        .join("gateway.log");
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `f` every 200 ms until it gives a value; panics after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `bulwark up` for `seconds` on `port` with its data in `data` (and `--rate` if given), in a
/// thread that returns its exit code, stdout and stderr.
pub fn up(
    data: &Path,
    port: u16,
    seconds: u32,
    rate: Option<u32>,
) -> JoinHandle<(i32, String, String)> {
    up_logging(data, port, seconds, rate, None)
}

/// [`up`] with `RUST_LOG` set to `filter` for the committee and its gateways (their logs are
/// in the data directory).
pub fn up_logging(
    data: &Path,
    port: u16,
    seconds: u32,
    rate: Option<u32>,
    filter: Option<&'static str>,
) -> JoinHandle<(i32, String, String)> {
    let (data, port) = (data.to_str().unwrap().to_string(), port.to_string());
    std::thread::spawn(move || {
        let seconds = seconds.to_string();
        let rate = rate.map(|r| r.to_string());
        let mut args = vec!["up", "--duration", &seconds, "--base-port", &port];
        args.extend(["--data", &data]);
        if let Some(rate) = &rate {
            args.extend(["--rate", rate]);
        }
        match filter {
            Some(filter) => super::run_with(&args, &[("RUST_LOG", filter)]),
            None => super::run(&args),
        }
    })
}

/// The committee's mark of BTC-PERP and its tick size in micros, once the node at `endpoint`
/// has one (up to 60 s).
pub fn mark(endpoint: SocketAddr) -> (i64, i64) {
    wait_until("the committee's mark", Duration::from_secs(60), || {
        let mut client = Client::connect(endpoint, Duration::from_millis(500)).ok()?;
        let status = client.status().ok()?;
        let tick = status.instruments.first()?.tick_size_micros;
        let book = client.book(InstrumentId(0), 1).ok()?;
        Some((book.mark_ticks?, tick))
    })
}

/// A price of `ticks` ticks of `tick` micros, as a FIX decimal.
pub fn fix_price(ticks: i64, tick: i64) -> String {
    let micros = i128::from(ticks) * i128::from(tick);
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}
