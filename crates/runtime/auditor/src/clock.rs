//! The machine's clock for pacing audit walks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bulwark_audit::budget::Clock;

/// The machine's monotonic clock and `std::thread::sleep`: the only place this module touches the OS.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}
