//! Stage 4, on the main thread while the consumer threads run: an interval row every `interval_s` (received,
//! rejected, MB, assigned partitions, busy time, p99 latency), the control file re-read, a report to the metrics
//! topic (what an autoscaler and the experiment runner read), and the group followed there ([`super::watch`]):
//! a rejoin when a dead member strands partitions, the stop once the announced end of the stream is consumed. A
//! last report, `leaving`, once the threads have committed.

use std::sync::atomic::{AtomicU64, Ordering};

use pilot_core::contract::telemetry::{
    ConsumerReport, TelemetryReader, TelemetryWriter, REPORT_VERSION,
};
use rdkafka::consumer::Consumer;

use super::control::apply_control;
use super::group::{partition_offsets, GroupConsumer};
use super::handler::Shared;
use super::watch::GroupWatch;
use super::worker::StopFlags;
use crate::config::ConsumerPlan;
use crate::processor::CostDial;
use crate::report::ConsumerInterval;

/// The counters an interval row is the difference of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub received: u64,
    pub rejected: u64,
    pub bytes: u64,
    pub handled: u64,
    pub busy_ns: u64,
}

impl Counts {
    pub fn of(shared: &Shared) -> Self {
        Counts {
            received: shared.received.load(Ordering::Relaxed),
            rejected: shared.rejected.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
            handled: shared.handled.load(Ordering::Relaxed),
            busy_ns: shared.busy_ns.load(Ordering::Relaxed),
        }
    }
}

/// An interval row from the counts at its start and end (`dt_s` apart), `t_s` into the run.
pub(crate) fn interval_row(
    plan: &ConsumerPlan,
    t_s: f64,
    dt_s: f64,
    last: Counts,
    cur: Counts,
    assigned_partitions: u64,
    e2e_latency_us_p99: u64,
) -> ConsumerInterval {
    let per_s = |x: f64| if dt_s > 0.0 { x / dt_s } else { 0.0 };
    let received = cur.received - last.received;
    let mb = (cur.bytes - last.bytes) as f64 / 1e6;
    ConsumerInterval {
        run_id: plan.run_id.clone(),
        role: "consumer".into(),
        consumer_id: plan.consumer_id.clone(),
        t_s,
        interval_s: dt_s,
        received_msgs: received,
        rejected_msgs: cur.rejected - last.rejected,
        received_mb: mb,
        msgs_per_s: per_s(received as f64),
        mb_per_s: per_s(mb),
        assigned_partitions,
        busy_s: cur.busy_ns.saturating_sub(last.busy_ns) as f64 / 1e9,
        e2e_latency_us_p99,
    }
}

/// The metrics topic read back, and the group followed on it.
pub(crate) struct Following {
    pub reader: TelemetryReader,
    pub watch: GroupWatch,
}

/// Interval rows, control file and reports to the metrics topic, for one consumer process.
pub(crate) struct IntervalReporter<'a> {
    pub plan: &'a ConsumerPlan,
    pub shared: &'a Shared,
    pub consumers: &'a [GroupConsumer],
    pub telemetry: Option<&'a TelemetryWriter>,
    pub dial: &'a CostDial,
    pub rejoin: &'a AtomicU64,
    pub start_ns: u64,
    last: Counts,
    last_t_ns: u64,
    /// Counts at the last report (reports also go out with the last, leaving one).
    last_report: Counts,
    report_seq: u64,
    /// What the control file and the group watch did, each once.
    pub control_notes: Vec<String>,
    pub telemetry_errors: Vec<String>,
    /// The group on the metrics topic, where there is one.
    pub following: Option<Following>,
}

impl<'a> IntervalReporter<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: &'a ConsumerPlan,
        shared: &'a Shared,
        consumers: &'a [GroupConsumer],
        telemetry: Option<&'a TelemetryWriter>,
        dial: &'a CostDial,
        rejoin: &'a AtomicU64,
        start_ns: u64,
    ) -> Self {
        IntervalReporter {
            plan,
            shared,
            consumers,
            telemetry,
            dial,
            rejoin,
            start_ns,
            last: Counts::default(),
            last_t_ns: start_ns,
            last_report: Counts::default(),
            report_seq: 0,
            control_notes: Vec::new(),
            telemetry_errors: Vec::new(),
            following: None,
        }
    }

    /// The row for the interval ending at `now_ns`; the control file is applied and a report sent with it.
    pub fn row(&mut self, now_ns: u64) -> ConsumerInterval {
        let cur = Counts::of(self.shared);
        let dt_s = now_ns.saturating_sub(self.last_t_ns) as f64 / 1e9;
        let assigned = self
            .consumers
            .iter()
            .map(|c| c.context().assigned.load(Ordering::Relaxed))
            .sum();
        let p99 = self
            .shared
            .interval_e2e
            .lock()
            .map(|mut h| {
                let p99 = if h.count() > 0 { h.summary().p99_us } else { 0 };
                h.reset();
                p99
            })
            .unwrap_or(0);
        let t_s = now_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        let r = interval_row(self.plan, t_s, dt_s, self.last, cur, assigned, p99);
        self.last = cur;
        self.last_t_ns = now_ns;
        self.apply_control();
        self.report(dt_s, false);
        r
    }

    /// Read the group's reports and notices; rejoin when partitions are stranded; raise the stream's end once the
    /// group has consumed it.
    pub fn follow_group(&mut self, now_ns: u64, flags: &StopFlags) {
        let Some(f) = self.following.as_mut() else {
            return;
        };
        let now_s = now_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        for r in f.reader.poll(std::time::Duration::ZERO) {
            f.watch.add(r, now_s);
        }
        for e in f.reader.stream_ends.drain(..) {
            f.watch.stream_end(e, now_s);
        }
        if let Some(why) = f.watch.rejoin(now_s) {
            self.rejoin.fetch_add(1, Ordering::SeqCst);
            self.control_notes.push(format!("{:.1} s: {why}", now_s));
        }
        if f.watch.stream_done() {
            flags.stream_done.store(true, Ordering::Relaxed);
        }
    }

    fn apply_control(&mut self) {
        let Some(path) = &self.plan.control_file else {
            return;
        };
        let note = match apply_control(path, self.dial, self.rejoin) {
            Ok(Some(note)) => note,
            Err(e) => e.to_string(),
            Ok(None) => return,
        };
        if !self.control_notes.contains(&note) {
            self.control_notes.push(note);
        }
    }

    /// Send a report on the metrics topic (when there is one): the work done since the last, the positions and
    /// high watermarks of every partition held, or none when `leaving` (offsets committed, counted out at once).
    pub fn report(&mut self, interval_s: f64, leaving: bool) {
        let Some(t) = self.telemetry else {
            return;
        };
        let work = Counts::of(self.shared);
        let r = ConsumerReport {
            version: REPORT_VERSION,
            run_id: self.plan.run_id.clone(),
            consumer_id: self.plan.consumer_id.clone(),
            group: self.plan.group.clone(),
            topic: self.plan.topic.clone(),
            host: pilot_core::contract::metrics::hostname(),
            pid: std::process::id(),
            seq: self.report_seq,
            time_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            interval_s,
            handled_msgs: work.handled - self.last_report.handled,
            busy_s: (work.busy_ns - self.last_report.busy_ns) as f64 / 1e9,
            received_msgs_total: work.received,
            partitions: if leaving {
                Vec::new()
            } else {
                self.consumers
                    .iter()
                    .flat_map(|c| partition_offsets(c, &self.plan.topic))
                    .collect()
            },
            leaving,
        };
        self.last_report = work;
        self.report_seq += 1;
        if let Err(e) = t.send(&r) {
            self.telemetry_errors.push(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_row_is_the_difference_of_its_counts_over_its_length() {
        let plan = crate::consumer::test_plan();
        let last = Counts {
            received: 100,
            rejected: 1,
            bytes: 2_000_000,
            handled: 101,
            busy_ns: 300_000_000,
        };
        let cur = Counts {
            received: 150,
            rejected: 3,
            bytes: 3_000_000,
            handled: 153,
            busy_ns: 500_000_000,
        };
        let r = interval_row(&plan, 2.0, 0.5, last, cur, 6, 1234);
        assert_eq!(r.received_msgs, 50);
        assert_eq!(r.rejected_msgs, 2);
        assert!((r.received_mb - 1.0).abs() < 1e-12);
        assert!((r.msgs_per_s - 100.0).abs() < 1e-9);
        assert!((r.mb_per_s - 2.0).abs() < 1e-12);
        assert!((r.busy_s - 0.2).abs() < 1e-12);
        assert_eq!((r.assigned_partitions, r.e2e_latency_us_p99), (6, 1234));
        assert_eq!((r.t_s, r.interval_s), (2.0, 0.5));
    }

    #[test]
    fn an_empty_interval_has_no_rate() {
        let plan = crate::consumer::test_plan();
        let c = Counts::default();
        let r = interval_row(&plan, 0.0, 0.0, c, c, 0, 0);
        assert_eq!((r.msgs_per_s, r.mb_per_s), (0.0, 0.0));
    }
}
