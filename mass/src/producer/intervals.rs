//! Interval rows on the main thread while the senders run: sent, delivered and failed messages and MB per
//! interval, against the rate the schedule targets and the points per message a profile sets.

use std::sync::atomic::Ordering;

use super::delivery::Counters;
use crate::rate::Rate;
use crate::report::IntervalRow;

/// Turns the shared counters into interval rows.
pub(crate) struct IntervalTracker<'a> {
    pub run_id: &'a str,
    pub counters: &'a Counters,
    pub start_ns: u64,
    pub last: (u64, u64, u64, u64),
    pub last_t: u64,
    pub rate: &'a Rate,
    /// Points per message at a time of the run (seconds).
    pub points_at: &'a dyn Fn(f64) -> u64,
}

impl IntervalTracker<'_> {
    /// The row of the interval that ends at `now` (ns).
    pub fn row(&mut self, now: u64) -> IntervalRow {
        let c = self.counters;
        let cur = (
            c.sent.load(Ordering::Relaxed),
            c.delivered.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.delivered_bytes.load(Ordering::Relaxed),
        );
        let dt = now.saturating_sub(self.last_t) as f64 / 1e9;
        let per_s = |x: f64| if dt > 0.0 { x / dt } else { 0.0 };
        let t_s = now.saturating_sub(self.start_ns) as f64 / 1e9;
        let row = IntervalRow {
            run_id: self.run_id.to_string(),
            role: "producer".into(),
            t_s,
            interval_s: dt,
            sent_msgs: cur.0 - self.last.0,
            delivered_msgs: cur.1 - self.last.1,
            failed_msgs: cur.2 - self.last.2,
            delivered_mb: (cur.3 - self.last.3) as f64 / 1e6,
            msgs_per_s: per_s((cur.1 - self.last.1) as f64),
            mb_per_s: per_s((cur.3 - self.last.3) as f64 / 1e6),
            target_msgs_per_s: self.rate.target_msgs_per_s((t_s - dt).max(0.0), t_s),
            sent_msgs_per_s: per_s((cur.0 - self.last.0) as f64),
            points_per_message: (self.points_at)(t_s),
        };
        self.last = cur;
        self.last_t = now;
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_the_difference_of_the_counters_over_its_interval() {
        let counters = Counters::default();
        let rate = Rate::MsgsPerS(100.0);
        let points = |_: f64| 5000;
        let mut t = IntervalTracker {
            run_id: "r",
            counters: &counters,
            start_ns: 1_000_000_000,
            last: (0, 0, 0, 0),
            last_t: 1_000_000_000,
            rate: &rate,
            points_at: &points,
        };
        counters.sent.store(60, Ordering::Relaxed);
        counters.delivered.store(50, Ordering::Relaxed);
        counters.failed.store(1, Ordering::Relaxed);
        counters.delivered_bytes.store(5_000_000, Ordering::Relaxed);
        let r = t.row(1_500_000_000);
        assert_eq!((r.sent_msgs, r.delivered_msgs, r.failed_msgs), (60, 50, 1));
        assert!((r.msgs_per_s - 100.0).abs() < 1e-9);
        assert!((r.mb_per_s - 10.0).abs() < 1e-9);
        assert!((r.sent_msgs_per_s - 120.0).abs() < 1e-9);
        assert_eq!(
            (r.t_s, r.interval_s, r.target_msgs_per_s),
            (0.5, 0.5, 100.0)
        );
        assert_eq!(r.points_per_message, 5000);
        counters.delivered.store(60, Ordering::Relaxed);
        let r = t.row(2_000_000_000);
        assert_eq!((r.sent_msgs, r.delivered_msgs), (0, 10));
    }
}
