//! The venues a member observes for real: live WebSocket adapters or capture replay, from the
//! node's `[[oracle]]` configuration. The pure part (the pool of signed observations that forms
//! certified rounds) is `bulwark_consensus::oracle_feed`.

use bulwark_engine::oracle::SignedObservation;
use bulwark_oracle::node::{OracleNode, SourceQuote};
use bulwark_oracle::source::{SourceError, SourcesConfig};
use bulwark_venues::Sources;

/// Real venues per underlying, as this member sees them.
pub struct SourcedFeed {
    feeds: Vec<(u16, Sources, OracleNode)>,
    venue_epoch_ms: u64,
}

impl SourcedFeed {
    /// Starts every underlying's sources (live tasks on `runtime`, capture threads) and signs
    /// observations with `key`. Quotes are stamped in Unix ms; observations carry venue time
    /// (ms since `venue_epoch_ms`), as the engine expects.
    pub fn start(
        feeds: &[(u16, SourcesConfig)],
        runtime: &tokio::runtime::Handle,
        key: &ed25519_dalek::SigningKey,
        venue_epoch_ms: u64,
    ) -> Result<Self, SourceError> {
        let feeds = feeds
            .iter()
            .map(|(underlying, config)| {
                let sources = bulwark_venues::spawn_sources(config, runtime)?;
                let observer = OracleNode::new(config.observer_config(), key.clone());
                Ok((*underlying, sources, observer))
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        Ok(SourcedFeed {
            feeds,
            venue_epoch_ms,
        })
    }

    /// This member's signed observations of `round` at Unix time `now_unix_ms`: one per
    /// underlying whose venues have enough fresh quotes (a stale or silent underlying is not
    /// observed, so no quorum forms and the engine's staleness guard opens).
    pub fn observe(&self, round: u64, now_unix_ms: u64) -> Vec<SignedObservation> {
        let venue_ms = now_unix_ms.saturating_sub(self.venue_epoch_ms);
        self.feeds
            .iter()
            .filter_map(|(underlying, sources, observer)| {
                let quotes: Vec<Option<SourceQuote>> = sources
                    .quotes()
                    .into_iter()
                    .map(|quote| {
                        quote.map(|q| SourceQuote {
                            time_ms: q.time_ms.saturating_sub(self.venue_epoch_ms),
                            ..q
                        })
                    })
                    .collect();
                observer.observe(&quotes, *underlying, round, venue_ms)
            })
            .collect()
    }

    /// Per underlying, each venue's connection and message counters.
    pub fn status(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.feeds
                .iter()
                .map(|(underlying, sources, _)| (underlying.to_string(), sources.status()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_sourced_feed_observes_its_capture_and_stays_silent_when_stale() {
        use bulwark_oracle::source::{SourceKind, VenueConfig};
        let dir = std::env::temp_dir().join(format!("bulwark-sourced-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let capture = dir.join("venue.jsonl");
        let line = |ns: u64, bid: &str, ask: &str| {
            format!(
                "{ns} {{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"{bid}\",\"B\":\"1\",\"a\":\"{ask}\",\"A\":\"1\"}}\n"
            )
        };
        std::fs::write(
            &capture,
            line(1_000_000_000, "60000.00", "60002.00")
                + &line(1_050_000_000, "60010.00", "60012.00"),
        )
        .unwrap();
        let config = SourcesConfig {
            source: SourceKind::Capture,
            venues: vec![VenueConfig {
                name: "capture".into(),
                weight: 1,
                url: None,
                capture: Some(capture.clone()),
                speed: 10,
                repeat: false,
            }],
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let epoch = 1_000;
        let feed = SourcedFeed::start(&[(0, config)], runtime.handle(), &key, epoch).unwrap();
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let started = std::time::Instant::now();
        let observation = loop {
            if let Some(o) = feed.observe(3, now()).pop() {
                break o;
            }
            assert!(started.elapsed().as_secs() < 5, "the capture never quoted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(
            observation.observation.feed, 0,
            "only the configured underlying"
        );
        assert_eq!(observation.observation.round, 3);
        let price = observation.observation.price_micros;
        assert!(
            (60_001_000_000..=60_011_000_000).contains(&price),
            "mid of the captured book: {price}"
        );
        assert!(observation.verify().is_ok(), "signed with the node key");
        assert!(feed.status()["0"].is_object());
        // Three seconds on, the single capture line is older than the 2 s staleness bound: the
        // member does not observe at all.
        assert!(feed.observe(4, now() + 3_000).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
