//! Time, injected. Producers stamp messages with wall-clock nanoseconds (comparable across processes and, with
//! synchronised clocks, across nodes) and pace themselves by sleeping until a slot. [`SystemClock`] anchors a
//! monotonic clock to the wall clock once, so its readings never jump backwards; [`ManualClock`] lets tests
//! drive time (sleeping advances it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> u64;
    /// Block until `now_ns() >= deadline_ns` (returns at once when already past).
    fn sleep_until_ns(&self, deadline_ns: u64);
}

/// Wall-clock time read through a monotonic clock.
#[derive(Debug, Clone)]
pub struct SystemClock {
    wall0_ns: u64,
    mono0: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemClock {
    pub fn new() -> Self {
        let wall0_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SystemClock {
            wall0_ns,
            mono0: Instant::now(),
        }
    }
}

/// Below this much time to go, spin instead of sleeping (sleep overshoots by tens of microseconds).
const SPIN_NS: u64 = 150_000;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        self.wall0_ns + self.mono0.elapsed().as_nanos() as u64
    }

    fn sleep_until_ns(&self, deadline_ns: u64) {
        loop {
            let now = self.now_ns();
            if now >= deadline_ns {
                return;
            }
            let left = deadline_ns - now;
            if left > SPIN_NS {
                std::thread::sleep(Duration::from_nanos(left - SPIN_NS / 2));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// A clock tests move by hand; sleeping jumps to the deadline.
#[derive(Debug, Default)]
pub struct ManualClock {
    ns: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ns: u64) -> Self {
        ManualClock {
            ns: AtomicU64::new(start_ns),
        }
    }

    /// Move time forward.
    pub fn advance(&self, by_ns: u64) {
        self.ns.fetch_add(by_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::SeqCst)
    }

    fn sleep_until_ns(&self, deadline_ns: u64) {
        self.ns.fetch_max(deadline_ns, Ordering::SeqCst);
    }
}

/// Current UTC time as RFC 3339 with milliseconds.
pub fn now_utc() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic_and_sleeps_precisely() {
        let c = SystemClock::new();
        let t0 = c.now_ns();
        let target = t0 + 2_000_000;
        c.sleep_until_ns(target);
        let t1 = c.now_ns();
        assert!(t1 >= target, "woke early");
        assert!(t1 - target < 5_000_000, "overslept by {} ns", t1 - target);
    }

    #[test]
    fn manual_clock_jumps_on_sleep() {
        let c = ManualClock::new(100);
        c.sleep_until_ns(50);
        assert_eq!(c.now_ns(), 100);
        c.sleep_until_ns(500);
        assert_eq!(c.now_ns(), 500);
        c.advance(5);
        assert_eq!(c.now_ns(), 505);
    }
}
