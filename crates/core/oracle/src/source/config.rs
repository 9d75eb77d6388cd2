//! What sources a node runs: the `[oracle]` section of a node config, deserialized with serde
//! (unknown fields refused) and checked by [`SourcesConfig::validate`] before anything runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::node::NodeConfig;

/// Most venues one node observes (an observation counts its sources in a `u8`, and every venue
/// costs a task and a connection).
pub const VENUES_MAX: usize = 32;

/// Longest venue name, bytes.
pub const VENUE_NAME_BYTES_MAX: usize = 64;

/// Longest WebSocket URL, bytes.
pub const URL_BYTES_MAX: usize = 2_048;

/// Which kind of source feeds the node's observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Each venue's WebSocket URL (`url`).
    Live,
    /// Each venue's capture file (`capture`), replayed in real time.
    Capture,
    /// The node's seeded synthetic feed; the venues are not read (DEVELOPMENT only).
    Synthetic,
}

impl SourceKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Live => "live",
            SourceKind::Capture => "capture",
            SourceKind::Synthetic => "synthetic",
        }
    }
}

/// The `[oracle]` section: which source kind and the venues, in the order their quotes are
/// handed to [`crate::node::observe`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// Which kind of source runs.
    pub source: SourceKind,
    /// The venues (`[[oracle.venues]]`).
    #[serde(default)]
    pub venues: Vec<VenueConfig>,
    /// First reconnect delay after a live connection fails or drops, ms.
    #[serde(default = "defaults::reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    /// Reconnect delays double up to this, ms.
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// A live connection that takes longer than this to open (TCP, TLS, upgrade) is given up, ms.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A live connection silent for this long (no message, not even a ping) is dropped and
    /// reopened, ms.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

/// One venue (`[[oracle.venues]]`). A venue may name both a `url` and a `capture`; `source`
/// picks which is used, so one venue list serves both modes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VenueConfig {
    /// A short name for logs and status (unique in the list).
    pub name: String,
    /// Its weight in the node's weighted median (at least 1).
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Its WebSocket URL, `ws://` or `wss://` (Binance message format; a combined-stream URL
    /// such as `wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A capture file (one message per line, optionally prefixed by a receive time in ns;
    /// gzip when the name ends in `.gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<PathBuf>,
    /// Capture replay speed-up: 1 is the recorded pace, 10 ten times faster (at least 1).
    #[serde(default = "defaults::speed")]
    pub speed: u32,
    /// Whether a capture starts over at its end (else the venue goes quiet and turns stale).
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

mod defaults {
    pub fn reconnect_initial_ms() -> u64 {
        500
    }
    pub fn reconnect_max_ms() -> u64 {
        30_000
    }
    pub fn connect_timeout_ms() -> u64 {
        10_000
    }
    pub fn idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn weight() -> u32 {
        1
    }
    pub fn speed() -> u32 {
        1
    }
}

/// Why a sources config was refused, or a source could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// `source` is `live` or `capture` but no `[[oracle.venues]]` is given.
    #[error("oracle source `{0}` needs at least one [[oracle.venues]] entry")]
    NoVenues(&'static str),
    /// More venues than [`VENUES_MAX`].
    #[error("{0} venues configured; at most {VENUES_MAX} are allowed")]
    TooManyVenues(usize),
    /// A venue name is empty, too long, or has characters other than ASCII letters, digits,
    /// `-`, `_` and `.`.
    #[error("venue name {0:?} must be 1 to {VENUE_NAME_BYTES_MAX} characters of [A-Za-z0-9._-]")]
    BadName(String),
    /// Two venues share a name.
    #[error("venue name `{0}` is used twice")]
    DuplicateVenue(String),
    /// A weight of 0 (a venue that should not count is removed from the list instead).
    #[error("venue `{0}` has weight 0; remove the venue instead")]
    ZeroWeight(String),
    /// `source = "live"` but the venue has no `url`.
    #[error("venue `{0}` has no `url`, which source = \"live\" needs")]
    MissingUrl(String),
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error("venue `{venue}`: url {url:?} is not usable: {reason}")]
    BadUrl {
        /// The venue.
        venue: String,
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `source = "capture"` but the venue has no `capture`.
    #[error("venue `{0}` has no `capture` file, which source = \"capture\" needs")]
    MissingCapture(String),
    /// The capture file does not exist or is not a regular file.
    #[error("venue `{venue}`: capture file {path:?} does not exist or is not a file")]
    CaptureNotFound {
        /// The venue.
        venue: String,
        /// The path as configured.
        path: PathBuf,
    },
    /// A capture speed of 0 (the recorded pace is 1).
    #[error("venue `{0}` has speed 0; use 1 for the recorded pace or more to accelerate")]
    ZeroSpeed(String),
    /// A zero timeout, or a reconnect delay range that is empty.
    #[error("timing setting `{0}` must be positive (and reconnect_max_ms ≥ reconnect_initial_ms)")]
    BadTiming(&'static str),
    /// The TLS client configuration could not be built (the likely cause is a rustls build
    /// without the aws-lc-rs provider).
    #[error("TLS client configuration: {0}")]
    Tls(String),
    /// A capture player thread could not be started.
    #[error("could not start the capture player for venue `{venue}`: {reason}")]
    Spawn {
        /// The venue.
        venue: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl SourcesConfig {
    /// Checks the config for the selected `source`: venue count and names, weights, URLs (for
    /// `live`), capture files exist (for `capture`), speeds, timings. `synthetic` checks only the
    /// timings and whatever venues are listed' names and weights.
    pub fn validate(&self) -> Result<(), SourceError> {
        if self.reconnect_initial_ms == 0 {
            return Err(SourceError::BadTiming("reconnect_initial_ms"));
        }
        if self.reconnect_max_ms < self.reconnect_initial_ms {
            return Err(SourceError::BadTiming("reconnect_max_ms"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(SourceError::BadTiming("connect_timeout_ms"));
        }
        if self.idle_timeout_ms == 0 {
            return Err(SourceError::BadTiming("idle_timeout_ms"));
        }
        if self.venues.len() > VENUES_MAX {
            return Err(SourceError::TooManyVenues(self.venues.len()));
        }
        if self.venues.is_empty() && self.source != SourceKind::Synthetic {
            return Err(SourceError::NoVenues(self.source.as_str()));
        }
        for (i, venue) in self.venues.iter().enumerate() {
            check_name(&venue.name)?;
            if self.venues[..i].iter().any(|v| v.name == venue.name) {
                return Err(SourceError::DuplicateVenue(venue.name.clone()));
            }
            if venue.weight == 0 {
                return Err(SourceError::ZeroWeight(venue.name.clone()));
            }
            match self.source {
                SourceKind::Live => {
                    let url = venue
                        .url
                        .as_deref()
                        .ok_or_else(|| SourceError::MissingUrl(venue.name.clone()))?;
                    check_url(url).map_err(|reason| SourceError::BadUrl {
                        venue: venue.name.clone(),
                        url: url.to_owned(),
                        reason,
                    })?;
                }
                SourceKind::Capture => {
                    let path = venue
                        .capture
                        .as_deref()
                        .ok_or_else(|| SourceError::MissingCapture(venue.name.clone()))?;
                    if !Path::new(path).is_file() {
                        return Err(SourceError::CaptureNotFound {
                            venue: venue.name.clone(),
                            path: path.to_owned(),
                        });
                    }
                    if venue.speed == 0 {
                        return Err(SourceError::ZeroSpeed(venue.name.clone()));
                    }
                }
                SourceKind::Synthetic => {}
            }
        }
        Ok(())
    }

    /// The venues' weights, in order (for [`NodeConfig::weights`]).
    pub fn weights(&self) -> Vec<u32> {
        self.venues.iter().map(|v| v.weight).collect()
    }

    /// The node's observation rules for these venues: their weights, and otherwise
    /// [`NodeConfig::equal`]'s defaults.
    pub fn observer_config(&self) -> NodeConfig {
        NodeConfig {
            weights: self.weights(),
            ..NodeConfig::equal(self.venues.len())
        }
    }
}

fn check_name(name: &str) -> Result<(), SourceError> {
    let ok = !name.is_empty()
        && name.len() <= VENUE_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SourceError::BadName(name.to_owned()))
    }
}

/// Checks the shape of a WebSocket URL without a URL library: scheme `ws` or `wss`, a host, a
/// port (when given) in range, no whitespace or control characters, bounded length. The HTTP
/// client checks the rest when it connects.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > URL_BYTES_MAX {
        return Err("longer than URL_BYTES_MAX");
    }
    if url
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b >= 0x80)
    {
        return Err("contains whitespace, control or non-ASCII characters");
    }
    let rest = if let Some(rest) = url.strip_prefix("wss://") {
        rest
    } else if let Some(rest) = url.strip_prefix("ws://") {
        rest
    } else {
        return Err("the scheme must be ws:// or wss://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("credentials in the URL are not accepted");
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal without a port: `[::1]`.
        Some((_, tail)) if tail.ends_with(']') => (authority, None),
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() || host == "[]" {
        return Err("no host");
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err("the port is not a number from 1 to 65535"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn live(url: &str) -> SourcesConfig {
        SourcesConfig {
            source: SourceKind::Live,
            venues: vec![VenueConfig {
                name: "binance".into(),
                weight: 1,
                url: Some(url.into()),
                capture: None,
                speed: 1,
                repeat: false,
            }],
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
        }
    }

    #[test]
    fn urls_are_checked() {
        for good in [
            "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker",
            "ws://127.0.0.1:8080",
            "ws://[::1]:9000/ws",
            "ws://[::1]",
        ] {
            assert_eq!(live(good).validate(), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("https://x", "scheme"),
            ("wss://", "no host"),
            ("ws://h:0/", "port"),
            ("ws://h:99999", "port"),
            ("ws://h /x", "whitespace"),
            ("ws://u:p@h/", "credentials"),
        ] {
            match live(bad).validate() {
                Err(SourceError::BadUrl { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn venues_are_checked() {
        let mut c = live("ws://h");
        c.venues[0].weight = 0;
        assert_eq!(c.validate(), Err(SourceError::ZeroWeight("binance".into())));
        let mut c = live("ws://h");
        c.venues.push(c.venues[0].clone());
        assert_eq!(
            c.validate(),
            Err(SourceError::DuplicateVenue("binance".into()))
        );
        let mut c = live("ws://h");
        c.venues[0].url = None;
        assert_eq!(c.validate(), Err(SourceError::MissingUrl("binance".into())));
        let mut c = live("ws://h");
        c.venues[0].name = "bin ance".into();
        assert!(matches!(c.validate(), Err(SourceError::BadName(_))));
        let mut c = live("ws://h");
        c.venues.clear();
        assert_eq!(c.validate(), Err(SourceError::NoVenues("live")));
        c.source = SourceKind::Synthetic;
        assert_eq!(c.validate(), Ok(()));
        let mut c = live("ws://h");
        c.reconnect_max_ms = 1;
        assert_eq!(
            c.validate(),
            Err(SourceError::BadTiming("reconnect_max_ms"))
        );
        let mut c = live("ws://h");
        c.source = SourceKind::Capture;
        assert_eq!(
            c.validate(),
            Err(SourceError::MissingCapture("binance".into()))
        );
        c.venues[0].capture = Some("/nonexistent/bulwark/capture.gz".into());
        assert!(matches!(
            c.validate(),
            Err(SourceError::CaptureNotFound { .. })
        ));
    }
}
