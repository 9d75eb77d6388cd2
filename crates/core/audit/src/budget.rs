//! CPU/IO budget for whole-tree walks (`d:` searches, the manifest's setuid scan).
//!
//! Entry counts ([`crate::eval::DIR_ENTRIES_MAX`], `setuid_entries_max`) bound how much a walk may
//! do; a [`Budget`] bounds how fast it does it, so a scan on a loaded node stays in the background.
//! A [`Governor`] is charged by the walks (each entry walked, each byte read) and, after every slice
//! of work, sleeps long enough that, counted over the time spent in walks:
//!
//! - walk time spent working is at most `cpu_percent_max` % of walk time (a duty cycle: at 20 %,
//!   10 ms of work is followed by 40 ms of sleep). Working time is wall time, so time blocked on
//!   the disk counts as work too: the cap bounds the walk's share of one core and of the disk;
//! - at most `entries_per_s_max` entries and `read_bytes_per_s_max` bytes have been walked per
//!   second of walk time.
//!
//! Only time inside walks counts (between [`Governor::enter`] and [`Governor::leave`]); the rest of
//! a scan runs unpaced. Debt carries over from one walk to the next, so many small walks are paced
//! like one large one, and work left unpaid when the last walk ends is less than one slice.
//!
//! Time and sleeping come from an injected [`Clock`]: the machine's (`bulwark_auditor::clock`) in
//! production, a fake in tests,
//! so the sleeps a governor takes are exact and reproducible.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default share of one core for walks in agent mode.
pub const CPU_PERCENT_MAX_AGENT_DEFAULT: u8 = 20;
/// Default entry rate for walks in agent mode.
pub const ENTRIES_PER_S_MAX_AGENT_DEFAULT: u64 = 20_000;
/// Default read rate for walks in agent mode (16 MiB/s).
pub const READ_BYTES_PER_S_MAX_AGENT_DEFAULT: u64 = 16 * 1024 * 1024;
/// Default length of a slice of walk time between two pacing decisions.
pub const SLICE_MS_DEFAULT: u32 = 10;

/// Errors in a budget's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The CPU share is not a percentage of one core.
    #[error("walk CPU budget {0} % is out of range: give 1 to 100 (100 = no duty-cycle limit)")]
    CpuPercent(u8),
}

/// How fast whole-tree walks may go. Give it to [`crate::agent::Auditor::set_pace`] (the agent's loop and the CLI do).
///
/// Deserializes from a config section (every key but `cpu_percent_max` optional, a missing rate
/// meaning unlimited):
///
/// ```yaml
/// cpu_percent_max: 20
/// entries_per_s_max: 20000
/// read_bytes_per_s_max: 16777216
/// slice_ms: 10
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BudgetConfig", into = "BudgetConfig")]
pub struct Budget {
    cpu_percent_max: u8,
    entries_per_s_max: Option<NonZeroU64>,
    read_bytes_per_s_max: Option<NonZeroU64>,
    slice_ms: NonZeroU32,
}

/// The serialized form of a [`Budget`], validated on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetConfig {
    cpu_percent_max: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries_per_s_max: Option<NonZeroU64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_bytes_per_s_max: Option<NonZeroU64>,
    #[serde(default = "slice_ms_default")]
    slice_ms: NonZeroU32,
}

fn slice_ms_default() -> NonZeroU32 {
    NonZeroU32::new(SLICE_MS_DEFAULT).expect("the default slice must be non-zero")
}

impl TryFrom<BudgetConfig> for Budget {
    type Error = BudgetError;
    fn try_from(c: BudgetConfig) -> Result<Self, BudgetError> {
        Ok(Self::new(c.cpu_percent_max)?
            .with_entries_per_s_max(c.entries_per_s_max)
            .with_read_bytes_per_s_max(c.read_bytes_per_s_max)
            .with_slice_ms(c.slice_ms))
    }
}

impl From<Budget> for BudgetConfig {
    fn from(b: Budget) -> Self {
        Self {
            cpu_percent_max: b.cpu_percent_max,
            entries_per_s_max: b.entries_per_s_max,
            read_bytes_per_s_max: b.read_bytes_per_s_max,
            slice_ms: b.slice_ms,
        }
    }
}

impl Default for Budget {
    /// [`Budget::unlimited`]: a one-shot scan runs at full speed unless asked otherwise.
    fn default() -> Self {
        Self::unlimited()
    }
}

impl Budget {
    /// Walks at most `cpu_percent_max` % of one core (1 to 100), with no rate limits.
    pub fn new(cpu_percent_max: u8) -> Result<Self, BudgetError> {
        if !(1..=100).contains(&cpu_percent_max) {
            return Err(BudgetError::CpuPercent(cpu_percent_max));
        }
        Ok(Self {
            cpu_percent_max,
            entries_per_s_max: None,
            read_bytes_per_s_max: None,
            slice_ms: slice_ms_default(),
        })
    }

    /// No limit at all: the governor never reads the clock nor sleeps.
    pub fn unlimited() -> Self {
        Self::new(100).expect("100 % must be a valid budget")
    }

    /// The agent-mode default: 20 % of one core, 20 000 entries/s, 16 MiB/s.
    pub fn agent_default() -> Self {
        Self::new(CPU_PERCENT_MAX_AGENT_DEFAULT)
            .expect("the agent default percentage must be valid")
            .with_entries_per_s_max(NonZeroU64::new(ENTRIES_PER_S_MAX_AGENT_DEFAULT))
            .with_read_bytes_per_s_max(NonZeroU64::new(READ_BYTES_PER_S_MAX_AGENT_DEFAULT))
    }

    /// Caps the entries walked per second (`None`: no cap).
    pub fn with_entries_per_s_max(mut self, max: Option<NonZeroU64>) -> Self {
        self.entries_per_s_max = max;
        self
    }

    /// Caps the bytes read per second by walks (`None`: no cap).
    pub fn with_read_bytes_per_s_max(mut self, max: Option<NonZeroU64>) -> Self {
        self.read_bytes_per_s_max = max;
        self
    }

    /// Sets the slice of walk time after which the governor decides to sleep. Shorter slices pace
    /// more smoothly at the cost of more clock reads and sleeps.
    pub fn with_slice_ms(mut self, slice_ms: NonZeroU32) -> Self {
        self.slice_ms = slice_ms;
        self
    }

    /// Share of one core walks may use, in percent.
    pub fn cpu_percent_max(&self) -> u8 {
        self.cpu_percent_max
    }

    /// Entries per second, if capped.
    pub fn entries_per_s_max(&self) -> Option<NonZeroU64> {
        self.entries_per_s_max
    }

    /// Bytes read per second, if capped.
    pub fn read_bytes_per_s_max(&self) -> Option<NonZeroU64> {
        self.read_bytes_per_s_max
    }

    /// Slice length in milliseconds.
    pub fn slice_ms(&self) -> NonZeroU32 {
        self.slice_ms
    }

    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.cpu_percent_max == 100
            && self.entries_per_s_max.is_none()
            && self.read_bytes_per_s_max.is_none()
    }
}

/// Monotonic time and sleeping, as the governor sees them. One trait for both so a fake clock can
/// advance its time by exactly the sleeps it is asked for.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin; never decreases.
    fn now(&self) -> Duration;
    /// Blocks the calling thread for `duration` (a fake just advances its time).
    fn sleep(&self, duration: Duration);
}

/// A clock that never moves and never sleeps. [`Governor::unlimited`] runs on it (an unlimited
/// budget never reads the clock); a limited budget on it is never enforced, so pace real walks
/// with the machine's clock (`bulwark_auditor::clock::SystemClock`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unpaced;

impl Clock for Unpaced {
    fn now(&self) -> Duration {
        Duration::ZERO
    }

    fn sleep(&self, _: Duration) {}
}

/// What a governor has counted and done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceStats {
    /// Entries charged.
    pub entries: u64,
    /// Bytes charged.
    pub read_bytes: u64,
    /// Walk time spent working (not sleeping).
    pub busy: Duration,
    /// Time the governor slept.
    pub slept: Duration,
    /// Number of sleeps.
    pub sleeps: u64,
}

/// Paces walks to a [`Budget`]; one per scan, charged by every walk of that scan.
pub struct Governor<'c> {
    budget: Budget,
    clock: &'c dyn Clock,
    /// Clock reading at the last charge or `enter`, while inside a walk.
    mark: Option<Duration>,
    /// Working time since the current slice began.
    busy_in_slice: Duration,
    stats: PaceStats,
}

impl std::fmt::Debug for Governor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("budget", &self.budget)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// `amount / per_s` seconds as a duration (saturating).
fn time_for(amount: u64, per_s: NonZeroU64) -> Duration {
    let nanos = u128::from(amount) * 1_000_000_000 / u128::from(per_s.get());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl<'c> Governor<'c> {
    /// A governor for `budget` over `clock`.
    pub fn new(budget: Budget, clock: &'c dyn Clock) -> Self {
        Self {
            budget,
            clock,
            mark: None,
            busy_in_slice: Duration::ZERO,
            stats: PaceStats::default(),
        }
    }

    /// A governor that never limits (and never reads the clock).
    pub fn unlimited() -> Governor<'static> {
        Governor::new(Budget::unlimited(), &Unpaced)
    }

    /// The budget it enforces.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Counts and sleeps so far.
    pub fn stats(&self) -> PaceStats {
        self.stats
    }

    /// A walk starts: time from now on counts as walk time.
    pub fn enter(&mut self) {
        // Already inside a walk (nested walks): keep measuring from the outer mark.
        if !self.budget.is_unlimited() && self.mark.is_none() {
            self.mark = Some(self.clock.now());
        }
    }

    /// The walk ends: time until the next [`Governor::enter`] does not count. Nothing is slept here;
    /// unpaid work (less than one slice) is paid by the next walk.
    pub fn leave(&mut self) {
        self.account();
        self.mark = None;
    }

    /// One directory entry walked (listed, and stat-ed when the walk needs it).
    pub fn charge_entry(&mut self) {
        self.stats.entries += 1;
        self.pace();
    }

    /// `bytes` read by a walk (a file whose content is searched).
    pub fn charge_read(&mut self, bytes: u64) {
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(bytes);
        self.pace();
    }

    /// Adds the working time since the last mark.
    fn account(&mut self) {
        if let Some(mark) = self.mark {
            let now = self.clock.now();
            let worked = now.saturating_sub(mark);
            self.stats.busy += worked;
            self.busy_in_slice += worked;
            self.mark = Some(now);
        }
    }

    /// How long the walks should have taken so far to stay within the CPU share, and within the
    /// entry and byte rates.
    fn walk_time_due(&self) -> (Duration, Duration) {
        let b = &self.budget;
        let cpu = self.stats.busy * 100 / u32::from(b.cpu_percent_max);
        let mut rate = Duration::ZERO;
        if let Some(per_s) = b.entries_per_s_max {
            rate = rate.max(time_for(self.stats.entries, per_s));
        }
        if let Some(per_s) = b.read_bytes_per_s_max {
            rate = rate.max(time_for(self.stats.read_bytes, per_s));
        }
        (cpu, rate)
    }

    fn pace(&mut self) {
        if self.budget.is_unlimited() {
            return;
        }
        if self.mark.is_none() {
            // A charge outside enter/leave is a caller bug, but pacing it is harmless: start now.
            self.mark = Some(self.clock.now());
        }
        self.account();
        let slice = Duration::from_millis(u64::from(self.budget.slice_ms.get()));
        let walked = self.stats.busy + self.stats.slept;
        let (cpu_due, rate_due) = self.walk_time_due();
        // The duty cycle is settled once per slice of work; a rate as soon as it is a slice behind
        // (cheap entries can run far ahead of their rate within one slice of work). Settling only
        // then keeps sleeps few and long rather than one tiny sleep per entry.
        let slice_done = self.busy_in_slice >= slice;
        if !slice_done && rate_due.saturating_sub(walked) < slice {
            return;
        }
        if slice_done {
            self.busy_in_slice = Duration::ZERO;
        }
        let debt = cpu_due.max(rate_due).saturating_sub(walked);
        if debt.is_zero() {
            return;
        }
        self.clock.sleep(debt);
        self.stats.slept += debt;
        self.stats.sleeps += 1;
        self.busy_in_slice = Duration::ZERO;
        // The sleep is not work: measure again from after it.
        self.mark = Some(self.clock.now());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    /// Time moves only when the test says so or when the governor sleeps.
    #[derive(Default)]
    struct FakeClock {
        now: Mutex<Duration>,
        sleeps: Mutex<Vec<Duration>>,
        reads: Mutex<u64>,
    }

    impl FakeClock {
        fn work(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
        }
        fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.reads.lock().unwrap() += 1;
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            self.sleeps.lock().unwrap().push(d);
            *self.now.lock().unwrap() += d;
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn duty_cycle_sleeps_four_times_the_work_at_20_percent() {
        let clock = FakeClock::default();
        let mut g = Governor::new(Budget::new(20).unwrap(), &clock);
        g.enter();
        for _ in 0..50 {
            clock.work(MS);
            g.charge_entry();
        }
        g.leave();
        // Every 10 ms slice of work is followed by 40 ms of sleep.
        assert_eq!(clock.sleeps(), vec![40 * MS; 5]);
        let s = g.stats();
        assert_eq!(
            (s.entries, s.busy, s.slept, s.sleeps),
            (50, 50 * MS, 200 * MS, 5)
        );

        // Time between walks is not walk time; unpaid work carries into the next walk.
        clock.work(1000 * MS);
        g.enter();
        clock.work(5 * MS);
        g.charge_entry();
        g.leave();
        assert_eq!(clock.sleeps().len(), 5, "half a slice: not yet paid");
        g.enter();
        clock.work(5 * MS);
        g.charge_entry();
        assert_eq!(
            clock.sleeps()[5],
            40 * MS,
            "the second half completes the slice"
        );
    }

    #[test]
    fn uneven_work_is_paid_exactly() {
        let clock = FakeClock::default();
        let mut g = Governor::new(Budget::new(50).unwrap(), &clock);
        g.enter();
        clock.work(3 * MS);
        g.charge_entry(); // 3 ms busy, due 6 ms: debt 3 ms, under a slice
        clock.work(25 * MS);
        g.charge_entry(); // 28 ms busy, due 56 ms: sleep 28 ms
        assert_eq!(clock.sleeps(), [28 * MS]);
        clock.work(MS);
        g.charge_entry();
        g.leave();
        assert_eq!(clock.sleeps().len(), 1);
        let s = g.stats();
        assert!(s.busy * 100 / 50 <= s.busy + s.slept + Duration::from_millis(10));
    }

    #[test]
    fn entry_and_byte_rates_are_enforced_without_cpu_time() {
        let clock = FakeClock::default();
        let budget = Budget::new(100)
            .unwrap()
            .with_entries_per_s_max(NonZeroU64::new(1_000));
        let mut g = Governor::new(budget, &clock);
        g.enter();
        for _ in 0..100 {
            g.charge_entry(); // free work: only the rate limits it
        }
        // 1 000 entries/s: one entry is 1 ms, so every 10 entries owe a 10 ms slice.
        assert_eq!(clock.sleeps(), vec![10 * MS; 10]);

        let clock = FakeClock::default();
        let budget = Budget::new(100)
            .unwrap()
            .with_read_bytes_per_s_max(NonZeroU64::new(1_000_000));
        let mut g = Governor::new(budget, &clock);
        g.enter();
        g.charge_read(4_000); // 4 ms owed: under a slice
        assert!(clock.sleeps().is_empty());
        g.charge_read(500_000); // 504 ms owed at once
        assert_eq!(clock.sleeps(), [504 * MS]);
        clock.work(100 * MS); // slow work already covers the next bytes
        g.charge_read(50_000);
        assert_eq!(clock.sleeps().len(), 1);
    }

    #[test]
    fn the_strictest_limit_wins() {
        let clock = FakeClock::default();
        let budget = Budget::new(50)
            .unwrap()
            .with_entries_per_s_max(NonZeroU64::new(100));
        let mut g = Governor::new(budget, &clock);
        g.enter();
        clock.work(10 * MS);
        g.charge_entry(); // CPU: 20 ms due; entries: 10 ms due
        assert_eq!(clock.sleeps(), [10 * MS]);
        for _ in 0..9 {
            g.charge_entry(); // free entries: the rate owes 10 ms each, paid a slice at a time
        }
        assert_eq!(clock.sleeps(), vec![10 * MS; 9]);
        assert_eq!(
            g.stats().busy + g.stats().slept,
            100 * MS,
            "10 entries at 100/s"
        );
    }

    #[test]
    fn unlimited_never_reads_the_clock() {
        let clock = FakeClock::default();
        let mut g = Governor::new(Budget::unlimited(), &clock);
        g.enter();
        for _ in 0..1000 {
            clock.work(MS);
            g.charge_entry();
            g.charge_read(1 << 20);
        }
        g.leave();
        assert_eq!(*clock.reads.lock().unwrap(), 0);
        assert!(clock.sleeps().is_empty());
        assert_eq!(g.stats().entries, 1000);
    }

    proptest::proptest! {
        /// After every charge, whatever the work pattern, the walks are behind their budget by less
        /// than one slice of work (CPU) and one slice of time (rates), and a sleep pays exactly what
        /// is owed, never more.
        #[test]
        fn pacing_holds_for_any_work_pattern(
            percent in 1u8..=100,
            entries_per_s in proptest::option::of(1u64..100_000),
            bytes_per_s in proptest::option::of(1u64..10_000_000),
            slice_ms in 1u32..50,
            steps in proptest::collection::vec((0u64..20_000, 0u64..100_000, proptest::bool::ANY), 1..200),
        ) {
            let budget = Budget::new(percent)
                .unwrap()
                .with_entries_per_s_max(entries_per_s.and_then(NonZeroU64::new))
                .with_read_bytes_per_s_max(bytes_per_s.and_then(NonZeroU64::new))
                .with_slice_ms(NonZeroU32::new(slice_ms).unwrap());
            let clock = FakeClock::default();
            let mut g = Governor::new(budget, &clock);
            let slice = Duration::from_millis(u64::from(slice_ms));
            let mut sleeps_before = 0;
            g.enter();
            for (work_us, bytes, is_entry) in steps {
                clock.work(Duration::from_micros(work_us));
                if is_entry {
                    g.charge_entry();
                } else {
                    g.charge_read(bytes);
                }
                let s = g.stats();
                let walked = s.busy + s.slept;
                let (cpu_due, rate_due) = g.walk_time_due();
                proptest::prop_assert!(cpu_due <= walked + slice * 100 / u32::from(percent));
                proptest::prop_assert!(rate_due <= walked + slice);
                if s.sleeps > sleeps_before {
                    proptest::prop_assert_eq!(walked, cpu_due.max(rate_due), "a sleep pays the debt exactly");
                }
                sleeps_before = s.sleeps;
            }
        }
    }

    #[test]
    fn budgets_validate_and_deserialize() {
        assert_eq!(Budget::new(0), Err(BudgetError::CpuPercent(0)));
        assert_eq!(Budget::new(101), Err(BudgetError::CpuPercent(101)));
        assert!(Budget::unlimited().is_unlimited());
        assert!(!Budget::agent_default().is_unlimited());
        let b: Budget =
            serde_yaml_ng::from_str("cpu_percent_max: 20\nentries_per_s_max: 500\n").unwrap();
        assert_eq!(b.cpu_percent_max(), 20);
        assert_eq!(b.entries_per_s_max(), NonZeroU64::new(500));
        assert_eq!(b.read_bytes_per_s_max(), None);
        assert_eq!(b.slice_ms().get(), SLICE_MS_DEFAULT);
        let back: Budget = serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        for bad in [
            "cpu_percent_max: 0\n",
            "cpu_percent_max: 150\n",
            "cpu_percent_max: 20\nentries_per_s_max: 0\n",
            "cpu_percent_max: 20\nslice_ms: 0\n",
            "cpu_percent_max: 20\nentries_per_sec: 5\n",
        ] {
            assert!(serde_yaml_ng::from_str::<Budget>(bad).is_err(), "{bad}");
        }
    }
}
