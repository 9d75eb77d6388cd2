//! A member's disk that fails, and a clock that steps, while the member runs (issue #16).
//!
//! commonware's deterministic runtime can inject storage faults, but only for the whole runtime:
//! every member's disk, and the simplex journals' too. [`Faulty`] wraps one member's context and
//! fails its replica's own partitions only (its finalized log, held blocks, epoch boundaries and
//! snapshots), when the nemesis says ([`DiskSwitch::fail`]): every write lands torn (its first
//! half written, then an error), and every sync, resize and read fails. Everything else the
//! context does (its clock, tasks, metrics, randomness and the other partitions) goes straight to
//! the runtime's.
//!
//! A replica whose disk fails under a finalized height stops (a fail-stop: its consensus stops
//! with it) instead of going on with a committed state its disk does not hold; the nemesis
//! restarts it once the disk is healed, and it must come back from what it synced.
//!
//! The member's clock is the runtime's plus its offset ([`Faulty::new`]'s `clock`, ms ahead of
//! the true time, negative behind), which the nemesis may change while the member runs (a
//! clock stepped by an operator or a time daemon). Everything in the member reads it: its
//! blocks' and oracle rounds' time, and its consensus's timers. A sleep until a time of the
//! member's clock ends when the true time reaches it as the clock stood at the call.

use commonware_runtime::deterministic::Context;
use commonware_runtime::signal::Signal;
use commonware_runtime::telemetry::metrics::{Metric, Registered};
use commonware_runtime::{
    Blob, BlobVersion, Clock, Error, Handle, IoBufs, IoBufsMut, Metrics, Name, ReadOptions,
    Spawner, Storage, Supervisor, WriteOptions,
};
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether one member's replica partitions fail now, and how often they did.
#[derive(Debug, Default)]
pub(crate) struct DiskSwitch {
    failing: AtomicBool,
    /// Operations refused (writes torn, syncs, resizes and reads failed).
    refused: AtomicU64,
}

impl DiskSwitch {
    /// From now on every operation on the member's replica partitions fails.
    pub(crate) fn fail(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    /// The disk works again.
    pub(crate) fn heal(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Operations refused since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Whether an operation fails now (and counts it when it does).
    fn refuses(&self) -> bool {
        let failing = self.failing.load(Ordering::SeqCst);
        if failing {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        failing
    }
}

/// One member's context: the runtime's, with the replica's partitions behind a [`DiskSwitch`].
pub(crate) struct Faulty {
    inner: Context,
    switch: Arc<DiskSwitch>,
    /// How far the member's clock is ahead of the true time (negative: behind), ms.
    clock: Arc<AtomicI64>,
    /// The partitions that fail with the switch.
    partitions: Arc<Vec<String>>,
}

impl Faulty {
    /// `inner` with `partitions` failing whenever `switch` says, and its clock `clock` ms ahead
    /// of the true time.
    pub(crate) fn new(
        inner: Context,
        switch: Arc<DiskSwitch>,
        clock: Arc<AtomicI64>,
        partitions: Vec<String>,
    ) -> Self {
        Faulty {
            inner,
            switch,
            clock,
            partitions: Arc::new(partitions),
        }
    }

    fn wrap(&self, inner: Context) -> Self {
        Faulty {
            inner,
            switch: self.switch.clone(),
            clock: self.clock.clone(),
            partitions: self.partitions.clone(),
        }
    }

    /// `time` moved by the clock's offset (`ahead`) or back by it.
    fn shift(&self, time: SystemTime, ahead: bool) -> SystemTime {
        let offset = self.clock.load(Ordering::SeqCst);
        let by = Duration::from_millis(offset.unsigned_abs());
        if (offset >= 0) == ahead {
            time.checked_add(by).unwrap_or(time)
        } else {
            time.checked_sub(by).unwrap_or(UNIX_EPOCH)
        }
    }
}

impl Supervisor for Faulty {
    fn name(&self) -> Name {
        self.inner.name()
    }

    fn child(&self, label: &'static str) -> Self {
        self.wrap(self.inner.child(label))
    }

    fn with_attribute(self, key: &'static str, value: impl std::fmt::Display) -> Self {
        Faulty {
            inner: self.inner.with_attribute(key, value),
            ..self
        }
    }
}

impl Spawner for Faulty {
    fn shared(self, blocking: bool) -> Self {
        Faulty {
            inner: self.inner.shared(blocking),
            ..self
        }
    }

    fn dedicated(self) -> Self {
        Faulty {
            inner: self.inner.dedicated(),
            ..self
        }
    }

    fn spawn<F, Fut, T>(self, f: F) -> Handle<T>
    where
        Self: Sized,
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (switch, clock, partitions) = (self.switch, self.clock, self.partitions);
        self.inner.spawn(move |inner| {
            f(Faulty {
                inner,
                switch,
                clock,
                partitions,
            })
        })
    }

    fn stop(
        self,
        value: i32,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.stop(value, timeout)
    }

    fn stopped(&self) -> Signal {
        self.inner.stopped()
    }
}

impl Metrics for Faulty {
    fn register<N: Into<String>, H: Into<String>, M: Metric>(
        &self,
        name: N,
        help: H,
        metric: M,
    ) -> Registered<M> {
        self.inner.register(name, help, metric)
    }

    fn encode(&self) -> String {
        self.inner.encode()
    }
}

impl governor::clock::Clock for Faulty {
    type Instant = SystemTime;

    fn now(&self) -> SystemTime {
        self.current()
    }
}

impl governor::clock::ReasonablyRealtime for Faulty {}

impl Clock for Faulty {
    fn current(&self) -> SystemTime {
        self.shift(self.inner.current(), true)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static + use<> {
        self.inner.sleep(duration)
    }

    fn sleep_until(
        &self,
        deadline: SystemTime,
    ) -> impl Future<Output = ()> + Send + 'static + use<> {
        self.inner.sleep_until(self.shift(deadline, false))
    }
}

impl rand_core::TryRng for Faulty {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.inner.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.inner.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.try_fill_bytes(dest)
    }
}

impl rand_core::TryCryptoRng for Faulty {}

impl Storage for Faulty {
    type Blob = FaultyBlob;

    async fn open_versioned(
        &self,
        partition: &str,
        name: &[u8],
        versions: RangeInclusive<BlobVersion>,
    ) -> Result<(FaultyBlob, u64, BlobVersion), Error> {
        let switch = self
            .partitions
            .iter()
            .any(|p| p == partition)
            .then(|| self.switch.clone());
        if switch.as_ref().is_some_and(|s| s.refuses()) {
            return Err(Error::BlobOpenFailed(
                partition.into(),
                hex(name),
                Arc::new(injected()),
            ));
        }
        let (inner, len, version) = self.inner.open_versioned(partition, name, versions).await?;
        Ok((FaultyBlob { inner, switch }, len, version))
    }

    async fn remove(&self, partition: &str, name: Option<&[u8]>) -> Result<(), Error> {
        if self.partitions.iter().any(|p| p == partition) && self.switch.refuses() {
            return Err(Error::PartitionCorrupt(partition.into()));
        }
        self.inner.remove(partition, name).await
    }

    async fn scan(&self, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
        if self.partitions.iter().any(|p| p == partition) && self.switch.refuses() {
            return Err(Error::PartitionCorrupt(partition.into()));
        }
        self.inner.scan(partition).await
    }
}

fn hex(name: &[u8]) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

fn injected() -> std::io::Error {
    std::io::Error::other("injected disk failure (the nemesis)")
}

/// A blob of the runtime's, failing with its member's [`DiskSwitch`] (`None`: a partition that
/// does not fail).
pub(crate) struct FaultyBlob {
    inner: <Context as Storage>::Blob,
    switch: Option<Arc<DiskSwitch>>,
}

impl FaultyBlob {
    fn refuses(&self) -> bool {
        self.switch.as_ref().is_some_and(|s| s.refuses())
    }
}

impl Blob for FaultyBlob {
    async fn read_at_buf(
        &self,
        offset: u64,
        len: usize,
        bufs: impl Into<IoBufsMut> + Send,
        options: ReadOptions,
    ) -> Result<IoBufsMut, Error> {
        if self.refuses() {
            return Err(Error::ReadFailed);
        }
        self.inner.read_at_buf(offset, len, bufs, options).await
    }

    async fn read_at(
        &self,
        offset: u64,
        len: usize,
        options: ReadOptions,
    ) -> Result<IoBufsMut, Error> {
        if self.refuses() {
            return Err(Error::ReadFailed);
        }
        self.inner.read_at(offset, len, options).await
    }

    async fn write_at(
        &self,
        offset: u64,
        bufs: impl Into<IoBufs> + Send,
        options: WriteOptions,
    ) -> Result<(), Error> {
        let mut bufs = bufs.into();
        if self.refuses() {
            // Torn: the first half lands (as durably as the caller asked), the rest does not,
            // and the caller hears of it.
            let half = bufs.len() / 2;
            let head = bufs.split_to(half);
            if half > 0 {
                let _ = self.inner.write_at(offset, head, options).await;
            }
            return Err(Error::WriteFailed);
        }
        self.inner.write_at(offset, bufs, options).await
    }

    async fn resize(&self, len: u64) -> Result<(), Error> {
        if self.refuses() {
            return Err(Error::BlobResizeFailed(
                String::new(),
                String::new(),
                Arc::new(injected()),
            ));
        }
        self.inner.resize(len).await
    }

    async fn sync(&self) -> Result<(), Error> {
        if self.refuses() {
            return Err(Error::BlobSyncFailed(
                String::new(),
                String::new(),
                Arc::new(injected()),
            ));
        }
        self.inner.sync().await
    }

    async fn start_sync(&self) -> Handle<()> {
        if self.refuses() {
            return Handle::ready(Err(Error::BlobSyncFailed(
                String::new(),
                String::new(),
                Arc::new(injected()),
            )));
        }
        self.inner.start_sync().await
    }
}
