//! All of a node's venue sources, started from its config (feature `live`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;

use crate::capture::CaptureSource;
use crate::live::{LiveOptions, LiveWebSocket};
use bulwark_oracle::node::SourceQuote;
use bulwark_oracle::source::{
    Clock, SourceError, SourceKind, SourcesConfig, VenueFeed, VenueSource, VenueStatus,
};

/// One venue's state, written by its task and read by the node.
pub(crate) type SharedFeed = Arc<Mutex<VenueFeed>>;

/// Locks a venue's state. A panic while it was held cannot leave it half-written (every update
/// is a few counter and field stores), so a poisoned lock is used as it is.
pub(crate) fn lock(feed: &Mutex<VenueFeed>) -> MutexGuard<'_, VenueFeed> {
    feed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The system's Unix time in ms (0 before 1970).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The running sources of one node, one per configured venue in config order. Dropping it
/// stops them all.
pub struct Sources {
    kind: SourceKind,
    venues: Vec<Box<dyn VenueSource>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("kind", &self.kind)
            .field(
                "venues",
                &self.venues.iter().map(|v| v.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Validates `config` and starts its sources: a [`LiveWebSocket`] task per venue on `runtime`
/// (whose time driver must be enabled) for `live`, a [`CaptureSource`] thread per venue for
/// `capture`, nothing for `synthetic` (the node keeps its own synthetic feed; the returned
/// [`Sources`] is empty). Quotes are stamped with the system's Unix time in ms.
pub fn spawn_sources(config: &SourcesConfig, runtime: &Handle) -> Result<Sources, SourceError> {
    spawn_sources_with_clock(config, runtime, Arc::new(SystemClock))
}

/// [`spawn_sources`] with quotes stamped by `clock`.
pub fn spawn_sources_with_clock(
    config: &SourcesConfig,
    runtime: &Handle,
    clock: Arc<dyn Clock>,
) -> Result<Sources, SourceError> {
    config.validate()?;
    let mut venues: Vec<Box<dyn VenueSource>> = Vec::with_capacity(config.venues.len());
    match config.source {
        SourceKind::Synthetic => {}
        SourceKind::Live => {
            let options = LiveOptions::from_config(config);
            for venue in &config.venues {
                let url = venue
                    .url
                    .as_deref()
                    .ok_or_else(|| SourceError::MissingUrl(venue.name.clone()))?;
                let source =
                    LiveWebSocket::spawn(&venue.name, url, &options, runtime, clock.clone())?;
                venues.push(Box::new(source));
            }
        }
        SourceKind::Capture => {
            for venue in &config.venues {
                let path = venue
                    .capture
                    .as_deref()
                    .ok_or_else(|| SourceError::MissingCapture(venue.name.clone()))?;
                let source = CaptureSource::spawn(
                    &venue.name,
                    path,
                    venue.speed,
                    venue.repeat,
                    clock.clone(),
                )?;
                venues.push(Box::new(source));
            }
        }
    }
    Ok(Sources {
        kind: config.source,
        venues,
        clock,
    })
}

impl Sources {
    /// Which kind of source runs.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Number of venues (0 for `synthetic`).
    pub fn len(&self) -> usize {
        self.venues.len()
    }

    /// Whether there are no venues (`synthetic`).
    pub fn is_empty(&self) -> bool {
        self.venues.is_empty()
    }

    /// The venues' names, in config order.
    pub fn names(&self) -> Vec<&str> {
        self.venues.iter().map(|v| v.name()).collect()
    }

    /// Each venue's latest quote, in config order (`None` until the venue has quoted), ready
    /// for [`bulwark_oracle::node::OracleNode::observe`] with [`SourcesConfig::observer_config`].
    pub fn quotes(&self) -> Vec<Option<SourceQuote>> {
        self.venues.iter().map(|v| v.quote()).collect()
    }

    /// Each venue's status now, in config order.
    pub fn venue_status(&self) -> Vec<VenueStatus> {
        let now_ms = self.clock.now_ms();
        self.venues.iter().map(|v| v.status(now_ms)).collect()
    }

    /// The status as JSON: `{"source": "live", "now_ms": …, "venues": [VenueStatus…]}`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "source": self.kind.as_str(),
            "now_ms": self.clock.now_ms(),
            "venues": self.venue_status(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    #[test]
    fn sources_can_be_shared_across_tasks() {
        // A node keeps them in an Arc read by its round timer and its status endpoint.
        shareable::<Sources>();
        shareable::<LiveWebSocket>();
        shareable::<CaptureSource>();
    }

    #[test]
    fn the_system_clock_reads_unix_ms() {
        // 2020-01-01 in Unix ms: a sanity bound, not a time assertion.
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
