//! A sending thread: schedule (the pacer's slot for each of its messages, until the stop rule, the end of the
//! rate profile or the shutdown flag) -> generate (the source's next message, its size following a points
//! profile) -> stamp and send (the accounting key or the envelope's actual send time; round-robin partitions in
//! runs of a batch) -> serve delivery reports; then flush what is queued.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pilot_core::contract::clock::Clock;
use pilot_core::contract::message::{self, AccountingKey, Encoding};
use pilot_core::contract::metrics::LatencyHistogram;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::control::Obey;
use super::delivery::{
    opaque, serve_delivery_reports, Counters, DeliveryContext, QUEUE_FULL_BACKOFF,
};
use crate::config::{Partitioning, ProducerPlan};
use crate::rate::{Pacer, Rate};
use crate::source::Source;

/// What one thread saw.
#[derive(Default)]
pub(crate) struct ThreadResult {
    pub sent_measured: u64,
    pub sent_warmup: u64,
    pub first_measured_ns: Option<u64>,
    pub last_measured_ns: u64,
    pub send_lag: LatencyHistogram,
    pub local_errors: BTreeMap<String, u64>,
    /// Points in the measured messages sent (a points profile varies them).
    pub points_measured: u64,
    /// The first frame not sent because a control command stopped the source.
    pub stopped_at: Option<u64>,
}

impl ThreadResult {
    /// A message sent at `actual_ns`, due at `intended_ns`, with `points` points.
    fn sent(&mut self, warmup: bool, intended_ns: u64, actual_ns: u64, points: u64) {
        if warmup {
            self.sent_warmup += 1;
        } else {
            self.sent_measured += 1;
            self.points_measured += points;
            self.first_measured_ns.get_or_insert(actual_ns);
            self.last_measured_ns = actual_ns;
            self.send_lag.record_between_ns(intended_ns, actual_ns);
        }
    }
}

/// What every sending thread of a run shares.
pub(crate) struct Schedule<'a> {
    pub plan: &'a ProducerPlan,
    pub clock: Arc<dyn Clock>,
    pub counters: &'a Counters,
    pub shutdown: &'a AtomicBool,
    pub rate: Rate,
    /// The common start, the end of the warm-up, and the end of a run limited by duration (ns).
    pub start_ns: u64,
    pub warmup_end_ns: u64,
    pub end_ns: Option<u64>,
    pub threads: u64,
    pub partitions: u32,
    /// Messages per partition run (round-robin).
    pub run: u64,
}

/// Where message `seq` of thread `t` goes: round-robin in runs of `run` messages, so batches fill (one message
/// per partition per linger would send batches of one), threads starting on different partitions; or every
/// message of a producer id to one partition.
pub(crate) fn partition_for(
    partitioning: Partitioning,
    t: u64,
    threads: u64,
    seq: u64,
    run: u64,
    producer_id: u32,
    partitions: u32,
) -> i32 {
    match partitioning {
        Partitioning::RoundRobin => ((t + threads * (seq / run)) % partitions as u64) as i32,
        Partitioning::KeyByProducer => (producer_id % partitions) as i32,
    }
}

/// Thread `t`'s sending, through its own producer and source.
pub(crate) struct Sender<'a> {
    pub schedule: &'a Schedule<'a>,
    pub producer: &'a BaseProducer<DeliveryContext>,
    pub source: &'a mut dyn Source,
    pub t: u64,
    /// The control topic's commands, for the thread that obeys them.
    pub control: Option<&'a super::control::ControlState>,
}

impl Sender<'_> {
    /// Send until the schedule ends; then deliver what is queued (what remains after the timeout is unknown).
    pub fn run(mut self) -> ThreadResult {
        let s = self.schedule;
        let mut rate = s.rate.clone();
        let mut pacer = Pacer::new(s.clock.clone(), s.start_ns, rate.clone());
        let mut points = self.source.points_per_message();
        let mut r = ThreadResult::default();
        s.clock.sleep_until_ns(s.start_ns);
        // The first message of the current schedule (a command to pause or change the rate starts a new one).
        let (mut seq, mut seq0) = (0u64, 0u64);
        loop {
            match self.obey(seq) {
                Obey::Go => {}
                Obey::Restart(new_rate) => {
                    if let Some(f) = new_rate {
                        rate = Rate::MsgsPerS(f);
                    }
                    pacer = Pacer::new(s.clock.clone(), s.clock.now_ns(), rate.clone());
                    seq0 = seq;
                }
                Obey::Stop => {
                    r.stopped_at = Some(seq);
                    break;
                }
            }
            let n = self.t + s.threads * seq;
            let Some(intended) = self.slot(&pacer, n, self.t + s.threads * (seq - seq0)) else {
                break;
            };
            points = self.follow_points_profile(intended, points);
            self.send_one(seq, intended, points, &mut r);
            serve_delivery_reports(self.producer);
            seq += 1;
        }
        let _ = self.producer.flush(Duration::from_millis(
            s.plan.message_timeout_ms as u64 + 5_000,
        ));
        r
    }

    /// The control topic's commands before message `seq` (none without a control topic).
    fn obey(&mut self, seq: u64) -> Obey {
        let Some(control) = self.control else {
            return Obey::Go;
        };
        let s = self.schedule;
        let mut wait = || {
            s.clock.sleep_until_ns(s.clock.now_ns() + 20_000_000);
            s.shutdown.load(Ordering::Relaxed)
        };
        super::control::obey(control, seq, &mut *self.source, &mut wait)
    }

    /// When the run's `n`th message is due (message `n_schedule` of the current schedule; waiting for it), or
    /// None when the run is over for this thread: its message count, the shutdown flag, the end of its duration,
    /// or the end of the rate profile.
    fn slot(&self, pacer: &Pacer, n: u64, n_schedule: u64) -> Option<u64> {
        let s = self.schedule;
        if s.plan.stop.messages.is_some_and(|m| n >= m) || s.shutdown.load(Ordering::Relaxed) {
            return None;
        }
        if let (Some(end), Some(slot)) = (s.end_ns, pacer.slot_ns(n_schedule)) {
            if slot >= end {
                return None;
            }
        }
        let intended = pacer.wait_for(n_schedule)?;
        s.end_ns.is_none_or(|e| intended < e).then_some(intended)
    }

    /// The points per message a points profile wants at `intended_ns` (the source told, when it changes).
    fn follow_points_profile(&mut self, intended_ns: u64, points: u64) -> u64 {
        let s = self.schedule;
        let Some((profile, _)) = &s.plan.points_profile else {
            return points;
        };
        let t_s = intended_ns.saturating_sub(s.start_ns) as f64 / 1e9;
        let want = profile.value_at(t_s).round().max(1.0) as u64;
        if want != points && self.source.set_points_per_message(want as usize) {
            want
        } else {
            points
        }
    }

    /// Generate, stamp and send message `seq`, waiting while librdkafka's queue is full.
    fn send_one(&mut self, seq: u64, intended: u64, points: u64, r: &mut ThreadResult) {
        let s = self.schedule;
        let plan = s.plan;
        let producer_id = plan.producer_id_base + self.t as u32;
        let encoding = self.source.encoding();
        let body = self.source.next(seq, intended);
        let actual = s.clock.now_ns();
        let warmup = intended < s.warmup_end_ns;
        let key;
        let mut record = match encoding {
            Encoding::Envelope => {
                message::set_actual_send_ns(body, actual);
                BaseRecord::with_opaque_to(&plan.topic, 0usize).payload(&*body)
            }
            _ => {
                key = AccountingKey {
                    producer_id,
                    sequence: seq,
                    intended_send_ns: intended,
                    actual_send_ns: actual,
                }
                .to_bytes();
                BaseRecord::with_opaque_to(&plan.topic, 0usize)
                    .payload(&*body)
                    .key(&key[..])
            }
        };
        record.delivery_opaque = opaque(actual, warmup);
        record = record.partition(partition_for(
            plan.partitioning,
            self.t,
            s.threads,
            seq,
            s.run,
            producer_id,
            s.partitions,
        ));
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    s.counters.sent.fetch_add(1, Ordering::Relaxed);
                    r.sent(warmup, intended, actual, points);
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if !serve_delivery_reports(self.producer) {
                        // Nothing delivered yet: wait for the broker without spinning.
                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    if s.shutdown.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err((e, _)) => {
                    *r.local_errors.entry(e.to_string()).or_default() += 1;
                    s.counters.sent.fetch_add(1, Ordering::Relaxed);
                    s.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_sends_runs_of_a_batch_and_threads_start_apart() {
        let p = |t, seq| partition_for(Partitioning::RoundRobin, t, 2, seq, 4, 0, 6);
        // Thread 0: four messages to partition 0, four to 2, four to 4, then 0 again.
        let t0: Vec<i32> = (0..16).map(|s| p(0, s)).collect();
        assert_eq!(t0, [0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 0, 0, 0, 0]);
        let t1: Vec<i32> = (0..8).map(|s| p(1, s)).collect();
        assert_eq!(t1, [1, 1, 1, 1, 3, 3, 3, 3]);
    }

    #[test]
    fn keyed_by_producer_every_message_of_a_producer_goes_to_one_partition() {
        for seq in 0..10 {
            assert_eq!(
                partition_for(Partitioning::KeyByProducer, 0, 3, seq, 4, 1003, 12),
                1003 % 12
            );
        }
    }

    #[test]
    fn a_thread_result_keeps_warm_up_apart_from_what_is_measured() {
        let mut r = ThreadResult::default();
        r.sent(true, 0, 5, 100);
        r.sent(false, 10, 12, 100);
        r.sent(false, 20, 27, 50);
        assert_eq!(
            (r.sent_warmup, r.sent_measured, r.points_measured),
            (1, 2, 150)
        );
        assert_eq!((r.first_measured_ns, r.last_measured_ns), (Some(12), 27));
        assert_eq!(r.send_lag.count(), 2);
    }
}
