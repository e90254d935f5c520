//! Delivery reports: the counters every sending thread shares, the callback that counts each report and measures
//! produce-to-ack latency (a message's opaque is its actual send time), and serving the reports inline on the
//! sending thread (no extra poll thread per producer).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot_core::contract::clock::Clock;
use pilot_core::contract::metrics::LatencyHistogram;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// What every thread and the delivery callbacks count, read by the interval rows.
#[derive(Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub delivered_bytes: AtomicU64,
    /// Delivery time of the last measured (non-warm-up) message.
    pub last_delivery_ns: AtomicU64,
}

/// What the delivery callbacks of one producer measured (locked per report, read at the end).
#[derive(Default)]
pub(crate) struct Measured {
    pub delivery: LatencyHistogram,
    pub errors: BTreeMap<String, u64>,
}

/// A message's delivery opaque: its actual send time, with the top bit set for warm-up messages (their
/// deliveries are counted, not measured). One word, no allocation per message.
const WARMUP_BIT: usize = 1 << 63;

/// The opaque of a message sent at `actual_ns`.
pub(crate) fn opaque(actual_ns: u64, warmup: bool) -> usize {
    actual_ns as usize | if warmup { WARMUP_BIT } else { 0 }
}

/// A delivery opaque's send time, and whether its message was a warm-up one.
pub(crate) fn decode_opaque(opaque: usize) -> (u64, bool) {
    ((opaque & !WARMUP_BIT) as u64, opaque & WARMUP_BIT != 0)
}

/// Counts each delivery report and measures produce-to-ack latency from the opaque.
pub(crate) struct DeliveryContext {
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<Counters>,
    pub measured: Mutex<Measured>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let now = self.clock.now_ns();
        match result {
            Ok(m) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .delivered_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                let (sent_ns, warmup) = decode_opaque(opaque);
                if !warmup {
                    self.counters
                        .last_delivery_ns
                        .fetch_max(now, Ordering::Relaxed);
                    let mut g = self.measured.lock().expect("not poisoned");
                    g.delivery.record_between_ns(sent_ns, now);
                }
            }
            Err((e, _)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let mut g = self.measured.lock().expect("not poisoned");
                *g.errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
}

/// How long a thread waits when librdkafka's queue is full and no delivery report is ready to free it.
pub(crate) const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

/// Serve every delivery report that is ready, without blocking; says whether any was.
///
/// Why not `BaseProducer::poll(timeout)`: rdkafka 0.39 hands librdkafka the remaining time in whole
/// milliseconds and loops until its deadline, so the last sub-millisecond of every timed poll is a busy spin
/// of zero-timeout polls (measured: a quarter of the producer's CPU went to `clock_gettime` there while the
/// queue was full, CPU the broker on the same node needed). A zero-timeout poll serves at most one event, so
/// this polls until the count in flight stops falling (serving a report is what frees its queue space).
pub(crate) fn serve_delivery_reports<C: ProducerContext>(producer: &BaseProducer<C>) -> bool {
    let first = producer.in_flight_count();
    let mut before = first;
    loop {
        producer.poll(Duration::ZERO);
        let now = producer.in_flight_count();
        if now >= before {
            return now < first;
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opaque_carries_the_send_time_and_the_warm_up_mark() {
        for (ns, warmup) in [(0, false), (1_765_000_000_123_456_789, true), (42, false)] {
            assert_eq!(decode_opaque(opaque(ns, warmup)), (ns, warmup));
        }
    }
}
