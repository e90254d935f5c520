//! The end of a producer run: what the threads and the delivery callbacks measured merged ([`Tally`]), the rates
//! derived from it ([`Rates`]: send rate against the schedule, throughput to the last delivery, the target a
//! profile averaged), and the summary row, incomplete with its reason when interrupted or when any message failed
//! or has no delivery report.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use pilot_core::contract::metrics::LatencyHistogram;
use rdkafka::producer::{BaseProducer, Producer};

use super::delivery::{Counters, DeliveryContext};
use super::sender::ThreadResult;
use crate::config::ProducerPlan;
use crate::rate::Rate;
use crate::report::ProducerSummary;

/// Everything measured, merged over threads and producers.
#[derive(Default)]
pub(crate) struct Tally {
    pub delivery: LatencyHistogram,
    pub send_lag: LatencyHistogram,
    pub errors: BTreeMap<String, u64>,
    pub sent_measured: u64,
    pub sent_warmup: u64,
    pub points_measured: u64,
    /// First and last measured send (ns).
    pub first_ns: Option<u64>,
    pub last_send_ns: u64,
    /// The shared counters at the end.
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub delivered_bytes: u64,
    pub last_delivery_ns: u64,
}

impl Tally {
    pub fn of(
        producers: &[BaseProducer<DeliveryContext>],
        results: &[ThreadResult],
        counters: &Counters,
    ) -> Self {
        let mut t = Tally::default();
        for p in producers {
            let g = p.context().measured.lock().expect("not poisoned");
            t.delivery.merge(&g.delivery);
            for (k, v) in &g.errors {
                *t.errors.entry(k.clone()).or_default() += v;
            }
        }
        t.add_threads(results);
        t.sent = counters.sent.load(Ordering::Relaxed);
        t.delivered = counters.delivered.load(Ordering::Relaxed);
        t.failed = counters.failed.load(Ordering::Relaxed);
        t.delivered_bytes = counters.delivered_bytes.load(Ordering::Relaxed);
        t.last_delivery_ns = counters.last_delivery_ns.load(Ordering::Relaxed);
        t
    }

    fn add_threads(&mut self, results: &[ThreadResult]) {
        for r in results {
            self.send_lag.merge(&r.send_lag);
            self.sent_measured += r.sent_measured;
            self.sent_warmup += r.sent_warmup;
            self.points_measured += r.points_measured;
            if let Some(f) = r.first_measured_ns {
                self.first_ns = Some(self.first_ns.map_or(f, |x| x.min(f)));
            }
            self.last_send_ns = self.last_send_ns.max(r.last_measured_ns);
            for (k, v) in &r.local_errors {
                *self.errors.entry(k.clone()).or_default() += v;
            }
        }
    }

    /// Sent, but neither delivered nor failed: no delivery report before the flush timeout.
    pub fn unknown(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.failed)
    }
}

/// The rates of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rates {
    /// First to last measured send, s (0 with fewer than two).
    pub measured_s: f64,
    /// Sends per second over `measured_s`: what the schedule achieved.
    pub send_rate: f64,
    /// First measured send to the last measured delivery, s.
    pub throughput_s: f64,
    /// Measured messages delivered per second over `throughput_s`.
    pub achieved: f64,
    /// The rate asked for; a profile's is its average over the measured part of the run.
    pub target: f64,
}

impl Rates {
    pub fn of(t: &Tally, rate: &Rate, start_ns: u64) -> Self {
        let first = t.first_ns.unwrap_or(u64::MAX);
        let measured_s = if t.sent_measured > 1 && t.last_send_ns > first {
            (t.last_send_ns - first) as f64 / 1e9
        } else {
            0.0
        };
        // Send rate from first to last measured send (n - 1 intervals): what the schedule achieved.
        let send_rate = if measured_s > 0.0 {
            (t.sent_measured - 1) as f64 / measured_s
        } else {
            0.0
        };
        // Throughput: measured messages delivered between the first measured send and the last delivery.
        let throughput_s = if t.first_ns.is_some() && t.last_delivery_ns > first {
            (t.last_delivery_ns - first) as f64 / 1e9
        } else {
            0.0
        };
        let achieved = if throughput_s > 0.0 {
            t.delivery.count() as f64 / throughput_s
        } else {
            0.0
        };
        let target = match rate {
            Rate::MsgsPerS(r) => *r,
            Rate::Unlimited => 0.0,
            Rate::Profile(_) if measured_s > 0.0 => {
                let t0 = first.saturating_sub(start_ns) as f64 / 1e9;
                // The schedule's n - 1 intervals end at the last send: compare like with like.
                rate.target_msgs_per_s(t0, t0 + measured_s)
            }
            Rate::Profile(_) => 0.0,
        };
        Rates {
            measured_s,
            send_rate,
            throughput_s,
            achieved,
            target,
        }
    }
}

/// Why a run is incomplete (empty when complete).
pub(crate) fn incomplete_reason(interrupted: bool, t: &Tally) -> String {
    if interrupted {
        "interrupted by SIGINT/SIGTERM".to_string()
    } else if t.unknown() > 0 {
        format!(
            "{} messages unaccounted for (no delivery report before the flush timeout)",
            t.unknown()
        )
    } else if t.failed > 0 {
        format!("{} messages failed", t.failed)
    } else {
        String::new()
    }
}

/// What a run was, for its summary row.
pub(crate) struct Shape {
    pub start_utc: String,
    pub elapsed_s: f64,
    pub bootstrap: String,
    pub partitions: u32,
    pub message_bytes: usize,
    pub points: u64,
    pub batch_bytes: u32,
    pub notes: String,
}

/// The summary row of a run.
pub(crate) fn summary(
    plan: &ProducerPlan,
    shape: Shape,
    t: &Tally,
    r: &Rates,
    incomplete_reason: String,
) -> ProducerSummary {
    let (d, l) = (t.delivery.summary(), t.send_lag.summary());
    let mb = shape.message_bytes as f64 / 1e6;
    let mean_points = if t.sent_measured > 0 {
        t.points_measured as f64 / t.sent_measured as f64
    } else {
        shape.points as f64
    };
    let profile = |p: &Option<(_, String)>| p.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
    ProducerSummary {
        run_id: plan.run_id.clone(),
        role: "producer".into(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        start_utc: shape.start_utc,
        end_utc: pilot_core::contract::clock::now_utc(),
        complete: incomplete_reason.is_empty(),
        incomplete_reason,
        bootstrap_servers: shape.bootstrap,
        topic: plan.topic.clone(),
        partitions: shape.partitions,
        partitioning: format!("{:?}", plan.partitioning),
        source: plan.source.name().into(),
        encoding: plan.encoding.to_string(),
        message_bytes: shape.message_bytes as u64,
        points_per_message: shape.points,
        threads: plan.threads,
        producer_id_first: plan.producer_id_base,
        rate_target_msgs_per_s: r.target,
        rate_profile: profile(&plan.rate_profile),
        points_profile: profile(&plan.points_profile),
        messages_target: plan.stop.messages.unwrap_or(0),
        duration_target_s: plan.stop.duration_s.unwrap_or(0.0),
        warmup_s: plan.warmup_s,
        acks: plan.acks.as_str().into(),
        linger_ms: plan.linger_ms,
        batch_size: shape.batch_bytes,
        compression: plan.compression.as_str().into(),
        elapsed_s: shape.elapsed_s,
        measured_s: r.measured_s,
        throughput_window_s: r.throughput_s,
        sent_msgs: t.sent,
        delivered_msgs: t.delivered,
        failed_msgs: t.failed,
        unknown_msgs: t.unknown(),
        warmup_msgs: t.sent_warmup,
        delivered_mb: t.delivered_bytes as f64 / 1e6,
        throughput_msgs_per_s: r.achieved,
        throughput_mb_per_s: r.achieved * mb,
        throughput_points_per_s: r.achieved * mean_points,
        send_rate_msgs_per_s: r.send_rate,
        rate_error_pct: if r.target > 0.0 {
            (r.send_rate - r.target) / r.target * 100.0
        } else {
            0.0
        },
        delivery_latency_us_p50: d.p50_us,
        delivery_latency_us_p90: d.p90_us,
        delivery_latency_us_p99: d.p99_us,
        delivery_latency_us_p999: d.p999_us,
        delivery_latency_us_max: d.max_us,
        delivery_latency_us_mean: d.mean_us,
        send_lag_us_p50: l.p50_us,
        send_lag_us_p99: l.p99_us,
        send_lag_us_max: l.max_us,
        errors: t
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"),
        notes: shape.notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Two threads: 11 measured sends from 1,000 ms to 2,000 ms, 10 deliveries measured until 2,500 ms.
    fn tally() -> Tally {
        let mut a = ThreadResult::default();
        let mut b = ThreadResult::default();
        for i in 0..6 {
            a.send_lag.record_between_ns(0, MS);
            a.sent_measured += 1;
            a.last_measured_ns = 1000 * MS + i * 200 * MS;
            a.first_measured_ns.get_or_insert(1000 * MS);
        }
        for i in 0..5 {
            b.sent_measured += 1;
            b.last_measured_ns = 1100 * MS + i * 200 * MS;
            b.first_measured_ns.get_or_insert(1100 * MS);
        }
        b.sent_warmup = 3;
        let mut t = Tally::default();
        t.add_threads(&[a, b]);
        for _ in 0..10 {
            t.delivery.record_between_ns(0, 2 * MS);
        }
        t.last_delivery_ns = 2500 * MS;
        (t.sent, t.delivered, t.failed) = (14, 13, 0);
        t
    }

    #[test]
    fn threads_merge_and_rates_follow_from_the_first_measured_send() {
        let t = tally();
        assert_eq!((t.sent_measured, t.sent_warmup), (11, 3));
        assert_eq!((t.first_ns, t.last_send_ns), (Some(1000 * MS), 2000 * MS));
        let r = Rates::of(&t, &Rate::MsgsPerS(10.0), 0);
        assert!((r.measured_s - 1.0).abs() < 1e-12);
        assert!((r.send_rate - 10.0).abs() < 1e-9, "10 intervals in 1 s");
        assert!((r.throughput_s - 1.5).abs() < 1e-12);
        assert!((r.achieved - 10.0 / 1.5).abs() < 1e-9);
        assert_eq!(r.target, 10.0);
    }

    #[test]
    fn a_run_without_measured_sends_has_no_rates() {
        let r = Rates::of(&Tally::default(), &Rate::Unlimited, 0);
        assert_eq!(
            r,
            Rates {
                measured_s: 0.0,
                send_rate: 0.0,
                throughput_s: 0.0,
                achieved: 0.0,
                target: 0.0
            }
        );
    }

    #[test]
    fn a_message_without_a_delivery_report_makes_the_run_incomplete() {
        let t = tally();
        assert_eq!(t.unknown(), 1);
        assert!(incomplete_reason(false, &t).starts_with("1 messages unaccounted for"));
        assert_eq!(incomplete_reason(true, &t), "interrupted by SIGINT/SIGTERM");
        let failed = Tally {
            sent: 5,
            delivered: 3,
            failed: 2,
            ..Default::default()
        };
        assert_eq!(incomplete_reason(false, &failed), "2 messages failed");
        let clean = Tally {
            sent: 5,
            delivered: 5,
            ..Default::default()
        };
        assert_eq!(incomplete_reason(false, &clean), "");
    }
}
