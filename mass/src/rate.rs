//! Open-loop rate control. The intended send time of message n is `start + n / rate`, fixed in advance: a
//! producer that falls behind sends at once but keeps the slot's time as the message's intended send time, so
//! a stalled broker shows up as latency instead of silently lowering the rate (coordinated omission avoided).
//! With several producer threads, thread i of T takes the global indices n = i, i + T, i + 2T, ...

use std::sync::Arc;

use pilot_core::clock::Clock;

/// A target rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as possible; the intended send time is when the producer was ready.
    Unlimited,
    /// Messages per second, all threads together.
    MsgsPerS(f64),
}

/// When each message is due, and waiting for it.
pub struct Pacer {
    clock: Arc<dyn Clock>,
    start_ns: u64,
    interval_ns: Option<f64>,
}

impl Pacer {
    /// A schedule starting at `start_ns`.
    pub fn new(clock: Arc<dyn Clock>, start_ns: u64, rate: Rate) -> Self {
        let interval_ns = match rate {
            Rate::Unlimited => None,
            Rate::MsgsPerS(r) => Some(1e9 / r),
        };
        Pacer {
            clock,
            start_ns,
            interval_ns,
        }
    }

    /// The slot of global message `n` (None when unlimited).
    pub fn slot_ns(&self, n: u64) -> Option<u64> {
        self.interval_ns
            .map(|i| self.start_ns.saturating_add((n as f64 * i).round() as u64))
    }

    /// Wait until message `n` is due; returns its intended send time.
    pub fn wait_for(&self, n: u64) -> u64 {
        match self.slot_ns(n) {
            Some(t) => {
                self.clock.sleep_until_ns(t);
                t
            }
            None => self.clock.now_ns(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::clock::ManualClock;

    #[test]
    fn slots_follow_the_schedule_exactly() {
        let clock = Arc::new(ManualClock::new(1_000));
        let p = Pacer::new(clock.clone(), 1_000, Rate::MsgsPerS(1_000.0));
        let times: Vec<u64> = (0..5).map(|n| p.wait_for(n)).collect();
        assert_eq!(
            times,
            vec![1_000, 1_001_000, 2_001_000, 3_001_000, 4_001_000]
        );
        assert_eq!(clock.now_ns(), 4_001_000);
        // 30 s at 1,000 msg/s: the last slot is exactly 29.999 s after the first.
        assert_eq!(
            p.slot_ns(29_999).unwrap() - p.slot_ns(0).unwrap(),
            29_999_000_000
        );
    }

    #[test]
    fn a_late_producer_keeps_the_slot_time() {
        let clock = Arc::new(ManualClock::new(0));
        let p = Pacer::new(clock.clone(), 0, Rate::MsgsPerS(100.0));
        assert_eq!(p.wait_for(0), 0);
        clock.advance(55_000_000); // stalled 55 ms: messages 1-5 are overdue
        for n in 1..=5 {
            assert_eq!(p.wait_for(n), n * 10_000_000);
            assert_eq!(clock.now_ns(), 55_000_000, "no waiting while behind");
        }
        assert_eq!(p.wait_for(6), 60_000_000);
        assert_eq!(clock.now_ns(), 60_000_000);
    }

    #[test]
    fn unlimited_uses_the_current_time() {
        let clock = Arc::new(ManualClock::new(42));
        let p = Pacer::new(clock.clone(), 0, Rate::Unlimited);
        assert_eq!(p.slot_ns(10), None);
        assert_eq!(p.wait_for(10), 42);
    }

    #[test]
    fn non_integer_intervals_do_not_drift() {
        let clock = Arc::new(ManualClock::new(0));
        let p = Pacer::new(clock, 0, Rate::MsgsPerS(3.0));
        assert_eq!(p.slot_ns(3).unwrap(), 1_000_000_000);
        assert_eq!(p.slot_ns(3_000_000).unwrap(), 1_000_000_000_000_000);
    }
}
