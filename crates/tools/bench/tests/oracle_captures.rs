//! The real Binance captures in `../shared/data/market` (read at test time, never copied into
//! the repository): every line parses, and the certified index tracks every venue.
#![allow(clippy::unwrap_used)]

use bulwark_bench::oracle::{run_bench_with, BenchOptions};
use bulwark_oracle::replay::Replay;
use bulwark_venues::{read_capture, shared_data_dir};

#[test]
fn every_capture_line_parses() {
    let Some(dir) = shared_data_dir() else {
        println!("skipped: ../shared/data is absent");
        return;
    };
    for file in [
        "spot_btcusdt_20240808.gz",
        "usdm_btcusdt_20240808.gz",
        "cm_btcusd_perp_20240808.gz",
    ] {
        let mut replay = Replay::new();
        let mut parsed = 0u64;
        for line in read_capture(&dir.join("market").join(file)).unwrap() {
            parsed += u64::from(replay.line(&line.unwrap()).is_some());
        }
        assert_eq!((replay.refused, replay.unsupported), (0, 0), "{file}");
        assert!(parsed > 40_000, "{file}: {parsed}");
    }
}

#[test]
fn the_certified_index_tracks_every_venue() {
    if shared_data_dir().is_none() {
        println!("skipped: ../shared/data is absent");
        return;
    }
    let lines = run_bench_with(&BenchOptions {
        rounds: 5,
        data_dir: None,
        capture_seconds_max: 120,
    });
    let p99: Vec<f64> = lines
        .iter()
        .filter(|l| {
            l["metric"]
                .as_str()
                .unwrap()
                .starts_with("capture_index_deviation_p99")
        })
        .map(|l| l["value"].as_f64().unwrap())
        .collect();
    assert_eq!(p99.len(), 3, "{lines:?}");
    for v in p99 {
        assert!(v < 20.0, "{lines:?}");
    }
    let engine_n31 = lines
        .iter()
        .find(|l| l["metric"] == "engine_oracle_round_n31")
        .unwrap();
    assert!(engine_n31["ratio"].as_f64().unwrap() > 0.0);
}
