//! Open-loop rate control. The intended send time of message n is `start + n / rate`, fixed in advance: a
//! producer that falls behind sends at once but keeps the slot's time as the message's intended send time, so
//! a stalled broker shows up as latency instead of silently lowering the rate (coordinated omission avoided).
//! With several producer threads, thread i of T takes the global indices n = i, i + T, i + 2T, ...
//!
//! A rate that changes over the run ([`Profile`]) schedules message n where the profile's integral reaches n
//! (`start + N^-1(n)`), so the intended send times follow the profile exactly, steps and ramps included.

use std::sync::Arc;

use pilot_core::contract::clock::Clock;

use crate::profile::Profile;

/// A target rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    /// As fast as possible; the intended send time is when the producer was ready.
    Unlimited,
    /// Messages per second, all threads together.
    MsgsPerS(f64),
    /// Messages per second over time, all threads together.
    Profile(Arc<Profile>),
}

impl Rate {
    /// The rate asked for on average over `[t0_s, t1_s]` seconds of the run (0 when unlimited).
    pub fn target_msgs_per_s(&self, t0_s: f64, t1_s: f64) -> f64 {
        match self {
            Rate::Unlimited => 0.0,
            Rate::MsgsPerS(r) => *r,
            Rate::Profile(p) => p.average(t0_s, t1_s),
        }
    }
}

/// The slot of a message a finite profile never reaches (it ends first).
pub const NEVER_NS: u64 = u64::MAX;

/// When each message is due, and waiting for it.
pub struct Pacer {
    clock: Arc<dyn Clock>,
    start_ns: u64,
    rate: Rate,
    interval_ns: f64,
    /// A finite profile's end (seconds): nothing is due from then on.
    end_s: f64,
}

impl Pacer {
    /// A schedule starting at `start_ns`.
    pub fn new(clock: Arc<dyn Clock>, start_ns: u64, rate: Rate) -> Self {
        let interval_ns = match &rate {
            Rate::MsgsPerS(r) => 1e9 / r,
            _ => 0.0,
        };
        let end_s = match &rate {
            Rate::Profile(p) => p.duration_s().unwrap_or(f64::INFINITY),
            _ => f64::INFINITY,
        };
        Pacer {
            clock,
            start_ns,
            rate,
            interval_ns,
            end_s,
        }
    }

    /// The slot of global message `n` (None when unlimited; [`NEVER_NS`] when a finite profile ends first).
    pub fn slot_ns(&self, n: u64) -> Option<u64> {
        match &self.rate {
            Rate::Unlimited => None,
            Rate::MsgsPerS(_) => Some(
                self.start_ns
                    .saturating_add((n as f64 * self.interval_ns).round() as u64),
            ),
            Rate::Profile(p) => Some(match p.time_of(n as f64) {
                Some(t_s) if t_s < self.end_s => {
                    self.start_ns.saturating_add((t_s * 1e9).round() as u64)
                }
                _ => NEVER_NS,
            }),
        }
    }

    /// Wait until message `n` is due; returns its intended send time (None: never due, the profile ended).
    pub fn wait_for(&self, n: u64) -> Option<u64> {
        match self.slot_ns(n) {
            Some(NEVER_NS) => None,
            Some(t) => {
                self.clock.sleep_until_ns(t);
                Some(t)
            }
            None => Some(self.clock.now_ns()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::clock::ManualClock;

    #[test]
    fn slots_follow_the_schedule_exactly() {
        let clock = Arc::new(ManualClock::new(1_000));
        let p = Pacer::new(clock.clone(), 1_000, Rate::MsgsPerS(1_000.0));
        let times: Vec<u64> = (0..5).map(|n| p.wait_for(n).unwrap()).collect();
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
        assert_eq!(p.wait_for(0), Some(0));
        clock.advance(55_000_000); // stalled 55 ms: messages 1-5 are overdue
        for n in 1..=5 {
            assert_eq!(p.wait_for(n), Some(n * 10_000_000));
            assert_eq!(clock.now_ns(), 55_000_000, "no waiting while behind");
        }
        assert_eq!(p.wait_for(6), Some(60_000_000));
        assert_eq!(clock.now_ns(), 60_000_000);
    }

    #[test]
    fn unlimited_uses_the_current_time() {
        let clock = Arc::new(ManualClock::new(42));
        let p = Pacer::new(clock.clone(), 0, Rate::Unlimited);
        assert_eq!(p.slot_ns(10), None);
        assert_eq!(p.wait_for(10), Some(42));
    }

    #[test]
    fn non_integer_intervals_do_not_drift() {
        let clock = Arc::new(ManualClock::new(0));
        let p = Pacer::new(clock, 0, Rate::MsgsPerS(3.0));
        assert_eq!(p.slot_ns(3).unwrap(), 1_000_000_000);
        assert_eq!(p.slot_ns(3_000_000).unwrap(), 1_000_000_000_000_000);
    }

    #[test]
    fn a_step_profile_is_followed_exactly_against_an_injected_clock() {
        // steps:50@20,200@40,50@30 -> 1,000 messages in 20 s, 8,000 in the next 40 s, 1,500 in the last 30 s.
        let profile = Profile::parse("steps:50@20,200@40,50@30", None).unwrap();
        let clock = Arc::new(ManualClock::new(5_000));
        let p = Pacer::new(clock.clone(), 5_000, Rate::Profile(Arc::new(profile)));
        let mut sent_per_s = vec![0u32; 90];
        let mut n = 0;
        while let Some(t) = p.wait_for(n) {
            assert_eq!(clock.now_ns(), t, "the clock waited for the slot");
            sent_per_s[((t - 5_000) / 1_000_000_000) as usize] += 1;
            n += 1;
        }
        assert_eq!(n, 10_500, "the profile's integral, then it ends");
        assert!(
            sent_per_s[..20].iter().all(|&c| c == 50),
            "{:?}",
            &sent_per_s[..20]
        );
        assert!(
            sent_per_s[20..60].iter().all(|&c| c == 200),
            "{:?}",
            &sent_per_s[20..60]
        );
        assert!(
            sent_per_s[60..].iter().all(|&c| c == 50),
            "{:?}",
            &sent_per_s[60..]
        );
        // Message 1,000 is the first of the 200 msg/s step, 5 ms after message 999's slot at 19.98 s + 5 ms.
        assert_eq!(p.slot_ns(1_000), Some(5_000 + 20_000_000_000));
        assert_eq!(p.slot_ns(1_001), Some(5_000 + 20_005_000_000));
        assert_eq!(p.slot_ns(10_500), Some(NEVER_NS));
    }

    #[test]
    fn a_ramp_and_a_late_producer_keep_the_profiles_slots() {
        let profile = Arc::new(Profile::parse("ramp:0..100@10", None).unwrap());
        let clock = Arc::new(ManualClock::new(0));
        let p = Pacer::new(clock.clone(), 0, Rate::Profile(profile.clone()));
        // N(t) = 5 t^2: message 20 is due at 2 s, message 125 at 5 s.
        assert_eq!(p.slot_ns(20), Some(2_000_000_000));
        assert_eq!(p.slot_ns(125), Some(5_000_000_000));
        clock.advance(7_000_000_000);
        assert_eq!(
            p.wait_for(125),
            Some(5_000_000_000),
            "behind: the slot, not now"
        );
        assert_eq!(clock.now_ns(), 7_000_000_000);
        let r = Rate::Profile(profile);
        assert_eq!(r.target_msgs_per_s(0.0, 10.0), 50.0);
        assert_eq!(Rate::MsgsPerS(7.0).target_msgs_per_s(0.0, 1.0), 7.0);
        assert_eq!(Rate::Unlimited.target_msgs_per_s(0.0, 1.0), 0.0);
    }
}
