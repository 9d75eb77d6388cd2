//! The `[oracle]` section of a node config as the module docs show it: it deserializes, unknown
//! fields are refused, and validation names what is wrong.
#![allow(clippy::unwrap_used)]

use bulwark_oracle::source::{SourceError, SourceKind, SourcesConfig};
use serde::Deserialize;

/// A node config with the section under `[oracle]`, as a node would hold it.
#[derive(Debug, Deserialize)]
struct NodeFile {
    oracle: SourcesConfig,
}

const DOCS_EXAMPLE: &str = r#"
[oracle]
source = "live"
reconnect_initial_ms = 500
reconnect_max_ms = 30000
connect_timeout_ms = 10000
idle_timeout_ms = 30000

[[oracle.venues]]
name = "binance-spot"
weight = 2
url = "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade"
capture = "../shared/data/market/spot_btcusdt_20240808.gz"
speed = 10
loop = true

[[oracle.venues]]
name = "binance-usdm"
url = "wss://fstream.binance.com/stream?streams=btcusdt@bookTicker/btcusdt@trade"
capture = "../shared/data/market/usdm_btcusdt_20240808.gz"
"#;

#[test]
fn the_documented_shape_parses_and_validates() {
    let file: NodeFile = toml::from_str(DOCS_EXAMPLE).unwrap();
    let config = file.oracle;
    assert_eq!(config.source, SourceKind::Live);
    assert_eq!(config.venues.len(), 2);
    assert_eq!(config.weights(), [2, 1]);
    assert!(config.venues[0].repeat && !config.venues[1].repeat);
    assert_eq!((config.venues[0].speed, config.venues[1].speed), (10, 1));
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.observer_config().weights, [2, 1]);
}

#[test]
fn defaults_fill_the_minimal_shape() {
    let config: SourcesConfig = toml::from_str(
        r#"
        source = "synthetic"
        "#,
    )
    .unwrap();
    assert!(config.venues.is_empty());
    assert_eq!(config.reconnect_initial_ms, 500);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    for bad in [
        "source = \"live\"\nretries = 3",
        "source = \"websocket\"",
        "source = \"live\"\n[[venues]]\nname = \"a\"\nurl = \"ws://h\"\nwieght = 2",
    ] {
        assert!(toml::from_str::<SourcesConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation_errors_name_the_venue() {
    let config: SourcesConfig =
        toml::from_str("source = \"live\"\n[[venues]]\nname = \"a\"\nurl = \"http://h\"\n")
            .unwrap();
    let error = config.validate().unwrap_err();
    assert!(matches!(&error, SourceError::BadUrl { venue, .. } if venue == "a"));
    assert!(error.to_string().contains("ws://"), "{error}");
    let config: SourcesConfig = toml::from_str(
        "source = \"capture\"\n[[venues]]\nname = \"a\"\ncapture = \"/no/such.gz\"\nweight = 0\n",
    )
    .unwrap();
    assert_eq!(config.validate(), Err(SourceError::ZeroWeight("a".into())));
}
