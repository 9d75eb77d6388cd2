//! A venue replayed from a capture file in real time (feature `live`): a thread reads the file
//! with [`read_capture`], times each message with [`Replay`] and [`Pace`], sleeps until it is
//! due, and folds it into the venue's [`VenueFeed`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::files::read_capture;
use crate::sources::{lock, SharedFeed};
use bulwark_oracle::node::SourceQuote;
use bulwark_oracle::replay::{Pace, Replay};
use bulwark_oracle::source::{Clock, SourceError, VenueSource, VenueStatus};

/// A venue replayed from a capture file at its recorded pace (`speed` 1) or `speed` times
/// faster, once or looping. Each quote is stamped with the clock when its message is replayed.
/// Dropping it stops the player thread (at its next message or wake-up).
pub struct CaptureSource {
    name: String,
    feed: SharedFeed,
    // Dropping the sender wakes and stops the player.
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CaptureSource {
    /// Starts replaying `path` (gzip when it ends in `.gz`) for venue `name` on a thread of its
    /// own. `speed` 0 is taken as 1. Fails when the file cannot be opened or the thread cannot
    /// start; a read error later ends the replay and shows in the status.
    pub fn spawn(
        name: &str,
        path: &Path,
        speed: u32,
        repeat: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SourceError> {
        // Open once up front so a missing or unreadable file is an error now, not a status later.
        read_capture(path).map_err(|_| SourceError::CaptureNotFound {
            venue: name.to_owned(),
            path: path.to_owned(),
        })?;
        let feed = SharedFeed::default();
        let (stop_tx, stop_rx) = mpsc::channel();
        let player = Player {
            path: path.to_owned(),
            speed: speed.max(1),
            repeat,
            feed: feed.clone(),
            clock,
            stop: stop_rx,
        };
        std::thread::Builder::new()
            .name(format!("oracle-capture-{name}"))
            .spawn(move || player.play())
            .map_err(|e| SourceError::Spawn {
                venue: name.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(CaptureSource {
            name: name.to_owned(),
            feed,
            _stop: stop_tx,
        })
    }
}

impl VenueSource for CaptureSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn quote(&self) -> Option<SourceQuote> {
        lock(&self.feed).quote()
    }

    fn status(&self, now_ms: u64) -> VenueStatus {
        lock(&self.feed).status(&self.name, "capture", now_ms)
    }
}

struct Player {
    path: PathBuf,
    speed: u32,
    repeat: bool,
    feed: SharedFeed,
    clock: Arc<dyn Clock>,
    stop: mpsc::Receiver<()>,
}

/// How one pass over the file ended.
enum Pass {
    /// The end of the file, after this many messages were applied.
    End(u64),
    /// The source was dropped.
    Stopped,
}

impl Player {
    fn play(self) {
        loop {
            match self.pass() {
                Ok(Pass::Stopped) => return,
                Ok(Pass::End(applied)) => {
                    lock(&self.feed).closed(None);
                    if applied == 0 {
                        // Looping over a file with nothing usable would spin.
                        lock(&self.feed).fail("the capture holds no usable message");
                        return;
                    }
                    if !self.repeat {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "oracle capture: read failed");
                    lock(&self.feed).closed(Some(&e.to_string()));
                    return;
                }
            }
        }
    }

    fn pass(&self) -> io::Result<Pass> {
        let lines = read_capture(&self.path)?;
        lock(&self.feed).opened();
        let mut replay = Replay::new();
        let mut pace: Option<Pace> = None;
        let started = Instant::now();
        let mut applied = 0u64;
        let (mut refused, mut unsupported) = (0u64, 0u64);
        for line in lines {
            if matches!(
                self.stop.try_recv(),
                Ok(()) | Err(TryRecvError::Disconnected)
            ) {
                return Ok(Pass::Stopped);
            }
            let line = match line {
                Ok(line) => line,
                // An over-long or non-UTF-8 line: counted, skipped.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    lock(&self.feed).count_refused(1, 0);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let timed = replay.line(&line);
            let mut feed = lock(&self.feed);
            feed.count_refused(replay.refused - refused, replay.unsupported - unsupported);
            (refused, unsupported) = (replay.refused, replay.unsupported);
            let Some((capture_ms, message)) = timed else {
                continue;
            };
            let pace = *pace.get_or_insert(Pace {
                start_capture_ms: capture_ms,
                speed: self.speed,
            });
            let due = Duration::from_millis(pace.due_ms(capture_ms));
            if let Some(wait) = due.checked_sub(started.elapsed()).filter(|w| !w.is_zero()) {
                drop(feed);
                match self.stop.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(Pass::Stopped),
                }
                feed = lock(&self.feed);
            }
            feed.apply_replayed(self.clock.now_ms(), capture_ms, &message);
            applied += 1;
        }
        Ok(Pass::End(applied))
    }
}
