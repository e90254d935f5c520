//! Stage 2, per message: [`MessageHandler`] decodes into reused buffers, accounts for the message (received,
//! duplicate, unaccounted or rejected with its reason), records its latency, hands it to the processor and
//! closes windows; apart from Kafka, so tests feed it whatever bytes they like. [`Shared`] holds the counters a
//! process's threads share with the interval rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pilot_core::contract::metrics::LatencyHistogram;

use crate::accounting::{Accounting, Arrival};
use crate::decode::Decoder;
use crate::processor::{Processor, WindowOutput};
use crate::window::Windower;

/// Counters every consumer thread of a process shares: interval rows and the stop rule read them.
#[derive(Debug, Default)]
pub struct Shared {
    /// Messages taken in (MASS's and unaccounted ones; duplicates and rejections not counted).
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub bytes: AtomicU64,
    /// Every message handled (taken, duplicate or rejected), and the nanoseconds spent handling messages and
    /// processing windows: the consumer's true rate is handled / busy time.
    pub handled: AtomicU64,
    pub busy_ns: AtomicU64,
    /// End-to-end latencies of the current interval: the threads publish theirs into it every 200 ms, each
    /// interval row takes and resets it.
    pub interval_e2e: Mutex<LatencyHistogram>,
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Refused at decoding or by the processor; counted with its reason.
    Rejected,
    /// A (producer, sequence) already seen: counted, not processed again.
    Duplicate,
    /// Taken into the open window (a MASS message, or an unaccounted one from another producer).
    Taken,
}

/// What one consumer thread keeps while it runs.
#[derive(Default)]
pub struct ThreadOut {
    pub accounting: Accounting,
    pub(crate) e2e: LatencyHistogram,
    /// Since the last publication into [`Shared::interval_e2e`].
    pub(crate) interval_e2e: LatencyHistogram,
    pub(crate) e2e_actual: LatencyHistogram,
    /// From intended send to the end of the processing of the message's window.
    pub(crate) processed: LatencyHistogram,
    /// Intended send times of the messages in the open window (reused).
    pub(crate) pending: Vec<u64>,
    pub(crate) processing: LatencyHistogram,
    pub(crate) scheduling: LatencyHistogram,
    pub(crate) windows: u64,
    pub(crate) items: u64,
    pub(crate) first_ns: Option<u64>,
    pub(crate) last_ns: u64,
    pub(crate) lag: i64,
    pub(crate) last_score: f64,
    pub(crate) errors: Vec<String>,
}

/// One consumer thread's handling of its messages, apart from Kafka: decode into reused buffers, account for the
/// message (received, duplicate, unaccounted or rejected with its reason), record its latency, hand it to the
/// processor, close windows. The run loop feeds it what it polls; tests feed it whatever bytes they like.
pub struct MessageHandler<'a> {
    decoder: Decoder,
    windower: Windower,
    processor: Box<dyn Processor>,
    shared: &'a Shared,
    last_activity: &'a AtomicU64,
    pub out: ThreadOut,
    /// The (producer, sequence) the last message handled added to the accounting (a first arrival), for the
    /// caller's checkpoint.
    pub recorded: Option<(u32, u64)>,
}

impl<'a> MessageHandler<'a> {
    pub fn new(
        processor: Box<dyn Processor>,
        window: crate::window::WindowPolicy,
        start_ns: u64,
        shared: &'a Shared,
        last_activity: &'a AtomicU64,
    ) -> Self {
        MessageHandler {
            decoder: Decoder::new(),
            windower: Windower::new(window, start_ns),
            processor,
            shared,
            last_activity,
            out: ThreadOut::default(),
            recorded: None,
        }
    }

    /// The counters this handler shares with the process's other threads.
    pub fn shared(&self) -> &'a Shared {
        self.shared
    }

    /// Handle one message (`key`, `body` and Kafka timestamp as polled) at time `now()`; the time it takes is
    /// busy time.
    pub fn handle(
        &mut self,
        key: Option<&[u8]>,
        body: &[u8],
        timestamp_ms: Option<i64>,
        now: &dyn Fn() -> u64,
    ) -> Handled {
        let t = now();
        let h = self.handle_at(t, key, body, timestamp_ms, now);
        self.shared.handled.fetch_add(1, Ordering::Relaxed);
        self.shared
            .busy_ns
            .fetch_add(now().saturating_sub(t), Ordering::Relaxed);
        h
    }

    fn handle_at(
        &mut self,
        t: u64,
        key: Option<&[u8]>,
        body: &[u8],
        timestamp_ms: Option<i64>,
        now: &dyn Fn() -> u64,
    ) -> Handled {
        self.last_activity.fetch_max(t, Ordering::Relaxed);
        let (meta, payload) = match self.decoder.decode(key, body, timestamp_ms) {
            Err(rej) => {
                self.out.accounting.reject(rej.reason);
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                return Handled::Rejected;
            }
            Ok(x) => x,
        };
        match meta.id {
            Some((producer, sequence)) => {
                if self.out.accounting.record(producer, sequence) == Arrival::Duplicate {
                    return Handled::Duplicate;
                }
                self.recorded = Some((producer, sequence));
            }
            None => self.out.accounting.record_unaccounted(),
        }
        self.shared.received.fetch_add(1, Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_add(meta.bytes as u64, Ordering::Relaxed);
        self.out.first_ns.get_or_insert(t);
        self.out.last_ns = t;
        if let Some(i) = meta.sent.intended_ns() {
            self.out.e2e.record_between_ns(i, t);
            self.out.interval_e2e.record_between_ns(i, t);
        }
        if let Some(a) = meta.sent.actual_ns() {
            self.out.e2e_actual.record_between_ns(a, t);
        }
        if let Err(reason) = self.processor.add(&payload) {
            self.out.accounting.reject(&format!("processor: {reason}"));
            self.shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Handled::Rejected;
        }
        if let Some(i) = meta.sent.intended_ns() {
            self.out.pending.push(i);
        }
        if let Some(c) = self.windower.arrived(t) {
            self.process(c.end_ns, now);
        }
        Handled::Taken
    }

    /// Close a time window that has run out (its processing is busy time).
    pub fn tick(&mut self, now: &dyn Fn() -> u64) {
        let t = now();
        if let Some(c) = self.windower.tick(t) {
            self.process(c.end_ns, now);
            self.shared
                .busy_ns
                .fetch_add(now().saturating_sub(t), Ordering::Relaxed);
        }
    }

    /// Process whatever the open window holds (the end of the run).
    pub fn flush(&mut self, now: &dyn Fn() -> u64) {
        let t = now();
        if let Some(c) = self.windower.flush(t) {
            self.process(c.end_ns, now);
            self.shared
                .busy_ns
                .fetch_add(now().saturating_sub(t), Ordering::Relaxed);
        }
    }

    fn process(&mut self, end_ns: u64, now: &dyn Fn() -> u64) {
        let out = &mut self.out;
        let t0 = now();
        match self.processor.process() {
            Ok(WindowOutput { items, score, .. }) => {
                out.items += items;
                out.last_score = score;
            }
            Err(e) => out.errors.push(e.to_string()),
        }
        let t1 = now();
        // Processing messages is activity: a window that takes longer than the idle timeout must not end the run
        // while messages wait. (An empty time window is not: it would keep an idle consumer alive for ever.)
        if !out.pending.is_empty() {
            self.last_activity.fetch_max(t1, Ordering::Relaxed);
        }
        for &intended in &out.pending {
            out.processed.record_between_ns(intended, t1);
        }
        out.pending.clear();
        out.processing.record_between_ns(t0, t1);
        out.scheduling.record_between_ns(end_ns, t0);
        out.windows += 1;
    }

    /// Hand this thread's latencies since the last call to the interval rows (a lock per call, not per
    /// message).
    pub fn publish_interval_latency(&mut self) {
        if self.out.interval_e2e.count() > 0 {
            if let Ok(mut shared) = self.shared.interval_e2e.lock() {
                shared.merge(&self.out.interval_e2e);
            }
            self.out.interval_e2e.reset();
        }
    }

    /// The processor and what was kept, at the end.
    pub fn into_parts(self) -> (Box<dyn Processor>, ThreadOut) {
        (self.processor, self.out)
    }
}
