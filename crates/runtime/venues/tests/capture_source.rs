//! The capture player: a small capture written by the test is replayed at its recorded pace
//! accelerated, plain and gzip, once and looping; the real captures in `../shared/data/market`
//! are replayed when present.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bulwark_oracle::source::{SourceError, SourceKind, SourcesConfig, VenueConfig};
use bulwark_venues::shared_data_dir;
use bulwark_venues::{spawn_sources, Sources};

const T0_NS: u64 = 1_723_161_254_000_000_000;

/// Four seconds of capture: a trade, a book, a malformed line, an unsupported one, a depth
/// diff, and a new book at +4 s.
fn capture_text() -> String {
    let lines = [
        (
            0,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"61800.30","q":"0.006","m":false}"#,
        ),
        (
            100,
            r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"61837.63","B":"3","a":"61837.65","A":"1"}}"#,
        ),
        (200, r#"{"e":"trade","p":"#),
        (300, r#"{"e":"aggTrade","E":1}"#),
        (
            1_000,
            r#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":1,"u":2,"b":[["61837.00","0"]],"a":[]}}"#,
        ),
        (
            4_000,
            r#"{"stream":"btcusdt@bookTicker","data":{"u":2,"s":"BTCUSDT","b":"62000.00","B":"3","a":"62000.10","A":"1"}}"#,
        ),
    ];
    lines
        .iter()
        .map(|(ms, json)| format!("{} {json}\n", T0_NS + ms * 1_000_000))
        .collect()
}

/// A fresh file under the system temp dir, removed on drop.
struct TempCapture(PathBuf);

impl TempCapture {
    fn new(suffix: &str, bytes: &[u8]) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "bulwark-oracle-capture-{}-{}{suffix}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).unwrap();
        TempCapture(path)
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn capture_config(path: PathBuf, speed: u32, repeat: bool) -> SourcesConfig {
    SourcesConfig {
        source: SourceKind::Capture,
        venues: vec![VenueConfig {
            name: "capture".into(),
            weight: 1,
            url: None,
            capture: Some(path),
            speed,
            repeat,
        }],
        reconnect_initial_ms: 500,
        reconnect_max_ms: 30_000,
        connect_timeout_ms: 10_000,
        idle_timeout_ms: 30_000,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn wait_for(sources: &Sources, what: &str, limit: Duration, done: impl Fn(&Sources) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(sources) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            sources.status()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn price(sources: &Sources) -> Option<i64> {
    sources.quotes()[0].map(|q| q.price_micros)
}

#[test]
fn a_capture_replays_accelerated_at_its_recorded_pace() {
    let file = TempCapture::new(".jsonl", capture_text().as_bytes());
    let rt = runtime();
    let started = Instant::now();
    // 4 s of capture at 10×: the last book is due 400 ms after the start.
    let sources = spawn_sources(&capture_config(file.0.clone(), 10, false), rt.handle()).unwrap();
    wait_for(&sources, "the first book", Duration::from_secs(2), |s| {
        price(s) == Some(61_837_640_000)
    });
    let first = started.elapsed();
    wait_for(&sources, "the last book", Duration::from_secs(10), |s| {
        price(s) == Some(62_000_050_000)
    });
    let last = started.elapsed();
    assert!(
        last >= Duration::from_millis(390),
        "paced, not all at once: {last:?}"
    );
    assert!(
        last < Duration::from_millis(3_000),
        "accelerated, not at the recorded 4 s: {last:?}"
    );
    assert!(first < last);
    wait_for(
        &sources,
        "the end of the capture",
        Duration::from_secs(2),
        |s| !s.venue_status()[0].connected,
    );
    let status = sources.venue_status().remove(0);
    assert_eq!(
        (status.messages, status.malformed, status.unsupported),
        (4, 1, 1),
        "{status:?}"
    );
    assert_eq!(status.capture_ms, Some((T0_NS / 1_000_000) + 4_000));
    assert_eq!(status.reconnects, 0, "played once");
    // The quote is stamped with the local clock (Unix ms), not the capture's time.
    let quote = sources.quotes()[0].unwrap();
    assert!(
        quote.time_ms > T0_NS / 1_000_000 + 365 * 86_400_000,
        "{quote:?}"
    );
}

#[test]
fn a_gzip_capture_loops() {
    let file = TempCapture::new(".jsonl.gz", &gzip(&capture_text()));
    let rt = runtime();
    let sources = spawn_sources(&capture_config(file.0.clone(), 100, true), rt.handle()).unwrap();
    // 40 ms per pass at 100×.
    wait_for(&sources, "three passes", Duration::from_secs(10), |s| {
        s.venue_status()[0].reconnects >= 2
    });
    let status = sources.venue_status().remove(0);
    assert!(status.messages >= 8 && status.malformed >= 2, "{status:?}");
    drop(sources);
}

#[test]
fn a_missing_capture_is_a_typed_error() {
    let rt = runtime();
    let missing = std::env::temp_dir().join("bulwark-oracle-no-such-capture.gz");
    match spawn_sources(&capture_config(missing, 1, false), rt.handle()) {
        Err(SourceError::CaptureNotFound { venue, .. }) => assert_eq!(venue, "capture"),
        other => panic!("{other:?}"),
    }
    let file = TempCapture::new(".jsonl", capture_text().as_bytes());
    let mut config = capture_config(file.0.clone(), 0, false);
    assert_eq!(
        spawn_sources(&config, rt.handle()).err(),
        Some(SourceError::ZeroSpeed("capture".into()))
    );
    config.venues[0].speed = 1;
    config.source = SourceKind::Synthetic;
    let sources = spawn_sources(&config, rt.handle()).unwrap();
    assert!(sources.is_empty() && sources.quotes().is_empty());
    assert_eq!(sources.status()["source"], "synthetic");
}

#[test]
fn the_shared_captures_replay_as_sources() {
    let Some(dir) = shared_data_dir() else {
        println!("SKIPPED: ../shared/data is absent");
        return;
    };
    let names = [
        "spot_btcusdt_20240808.gz",
        "usdm_btcusdt_20240808.gz",
        "cm_btcusd_perp_20240808.gz",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join("market").join(n)).collect();
    if !paths.iter().all(|p| p.is_file()) {
        println!("SKIPPED: ../shared/data/market lacks the captures");
        return;
    }
    let mut config = capture_config(paths[0].clone(), 100, false);
    config.venues = paths
        .iter()
        .zip(names)
        .map(|(path, name)| VenueConfig {
            name: name.trim_end_matches(".gz").into(),
            weight: 1,
            url: None,
            capture: Some(path.clone()),
            speed: 100,
            repeat: false,
        })
        .collect();
    let rt = runtime();
    let sources = spawn_sources(&config, rt.handle()).unwrap();
    wait_for(
        &sources,
        "a quote from every venue",
        Duration::from_secs(20),
        |s| s.quotes().iter().all(Option::is_some),
    );
    // Let them play a little, then check they agree and nothing was refused.
    std::thread::sleep(Duration::from_millis(500));
    let prices: Vec<i64> = sources
        .quotes()
        .iter()
        .map(|q| q.unwrap().price_micros)
        .collect();
    let (low, high) = (prices.iter().min().unwrap(), prices.iter().max().unwrap());
    assert!(
        (high - low) * 100 < low * 5,
        "venues within 5 %: {prices:?}"
    );
    for status in sources.venue_status() {
        assert!(status.messages > 0 && status.malformed == 0, "{status:?}");
    }
    let observer = config.observer_config();
    let now_ms = sources
        .quotes()
        .iter()
        .map(|q| q.unwrap().time_ms)
        .max()
        .unwrap();
    let observation = bulwark_oracle::node::observe(&observer, &sources.quotes(), 0, 1, now_ms);
    assert!(observation.is_some_and(|o| o.sources >= 1));
}
