//! File watching (inotify through the `notify` crate) for re-checks within a second of a change.
//!
//! Each watched path's *parent directory* is watched (non-recursively) together with the path itself
//! when it is a directory, so editors and package managers that replace a file by renaming a new one
//! over it are seen. Events are filtered down to the watched paths and reported as paths inside the
//! audited root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Most directories one watcher registers (inotify watches are a bounded kernel resource).
pub const WATCHED_DIRS_MAX: usize = 4_096;

/// Errors setting up a watch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The platform watcher could not be created or a directory could not be watched.
    #[error("file watch: {0}")]
    Notify(#[from] notify::Error),
    /// More directories than [`WATCHED_DIRS_MAX`] would be watched.
    #[error("file watch: {0} directories exceed the limit of {WATCHED_DIRS_MAX}")]
    TooMany(usize),
}

/// A running watch over paths inside an audited root.
pub struct FileWatch {
    _watcher: RecommendedWatcher,
    rx: Receiver<notify::Result<Event>>,
    root: PathBuf,
    watched: BTreeSet<String>,
    /// Directories actually registered (those that exist).
    pub dirs: usize,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("root", &self.root)
            .field("dirs", &self.dirs)
            .finish()
    }
}

impl FileWatch {
    /// Watches `paths` (inside `root`). Paths whose directory does not exist are skipped: a file
    /// created later in a missing directory is found by the next scheduled scan.
    pub fn new(root: &Path, paths: &BTreeSet<String>) -> Result<Self, WatchError> {
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            // The receiver is gone only when the FileWatch is dropped; nothing to do then.
            let _ = tx.send(ev);
        })?;
        let mut dirs = BTreeSet::new();
        for p in paths {
            let host = root.join(p.trim_start_matches('/'));
            if host.is_dir() {
                dirs.insert(host.clone());
            }
            if let Some(parent) = host.parent() {
                if parent.is_dir() {
                    dirs.insert(parent.to_path_buf());
                }
            }
        }
        if dirs.len() > WATCHED_DIRS_MAX {
            return Err(WatchError::TooMany(dirs.len()));
        }
        for d in &dirs {
            watcher.watch(d, RecursiveMode::NonRecursive)?;
        }
        Ok(Self {
            _watcher: watcher,
            rx,
            root: root.to_path_buf(),
            watched: paths.clone(),
            dirs: dirs.len(),
        })
    }

    fn relevant(&self, host_path: &Path) -> Option<String> {
        let rel = host_path.strip_prefix(&self.root).ok()?;
        let p = format!("/{}", rel.to_string_lossy());
        let hit = self.watched.contains(&p)
            || self
                .watched
                .iter()
                .any(|w| p.starts_with(&format!("{}/", w.trim_end_matches('/'))));
        hit.then_some(p)
    }

    /// Waits up to `timeout` for a change to a watched path, then collects further events for
    /// `debounce`; returns the changed paths (empty on timeout).
    pub fn wait(&self, timeout: Duration, debounce: Duration) -> Vec<String> {
        let mut out = BTreeSet::new();
        let deadline = Instant::now() + timeout;
        let mut settle: Option<Instant> = None;
        loop {
            let until = settle.unwrap_or(deadline).min(deadline);
            let now = Instant::now();
            if now >= until {
                break;
            }
            match self.rx.recv_timeout(until - now) {
                Ok(Ok(ev)) => {
                    let reads = matches!(ev.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write));
                    if reads {
                        continue;
                    }
                    for p in &ev.paths {
                        if let Some(rel) = self.relevant(p) {
                            out.insert(rel);
                            settle.get_or_insert_with(|| Instant::now() + debounce);
                        }
                    }
                }
                // A watcher error (queue overflow) means events were lost: the next scan covers them.
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        out.into_iter().collect()
    }
}
