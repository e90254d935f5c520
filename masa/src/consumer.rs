//! The consumer run loop. Each thread owns an rdkafka `BaseConsumer` in the plan's group (threads and
//! processes share partitions through the group), a [`Decoder`], its [`Accounting`], a [`Windower`] and a
//! [`Processor`]; the main thread writes interval rows. A run ends on its message count, duration, idle timeout
//! or the injected shutdown flag (SIGINT/SIGTERM): the open window is processed, offsets committed, and the
//! summary written (marked incomplete when interrupted, or when anything is missing or rejected).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot_core::contract::client::Connection;
use pilot_core::contract::clock::Clock;
use pilot_core::contract::files::write_atomic;
use pilot_core::contract::metrics::{CsvWriter, LatencyHistogram, MetricsError};
use pilot_core::contract::telemetry::{
    ConsumerReport, PartitionOffsets, TelemetryWriter, REPORT_VERSION,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, TopicPartitionList};

use crate::accounting::{Accounting, Arrival};
use crate::config::{ConsumerPlan, ProcessorPlan};
use crate::decode::Decoder;
use crate::processor::{
    CostDial, CostProcessor, KMeansProcessor, NoneProcessor, Processor, WindowOutput,
};
use crate::report::{ConsumerInterval, ConsumerSummary};
use crate::window::Windower;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Pilot(#[from] pilot_core::PilotError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("kafka {what} ({bootstrap}): {message}")]
    Kafka {
        what: String,
        bootstrap: String,
        message: String,
    },
    #[error("processor: {0}")]
    Processor(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// A consumer thread's processor: the one the plan names, inside the emulated cost per message of `dial` when
/// the plan has a cost or a control file (which may turn the cost up while it runs). `label` names the
/// processor's output files (unique per consumer thread).
pub fn processor_for(
    plan: &ConsumerPlan,
    label: &str,
    dial: &Arc<CostDial>,
) -> Result<Box<dyn Processor>, ConsumeError> {
    let inner = make_processor(&plan.processor, label)?;
    Ok(if plan.cost.is_some() || plan.control_file.is_some() {
        Box::new(CostProcessor::dialled(inner, dial.clone()))
    } else {
        inner
    })
}

/// What MASA's control file may say (TOML, re-read every interval while it changes): how an experiment's
/// `slow` fault reaches a running consumer.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The emulated cost per message from now on, ms (0: none).
    pub cost_ms_per_message: Option<f64>,
    /// Raised by one each time every consumer thread is to leave its group and join again (after a member
    /// died on a broker that keeps a dead leader: see `pilot_core::ops::fault::FaultAction::Rejoin`).
    pub rejoin: Option<u64>,
}

/// Read `path` and set `dial` from it; `Ok(None)` when there is no file (yet), `Ok(Some(note))` when it was
/// applied, `Err` (naming the file) when it cannot be used, and the dial is left alone.
pub fn apply_control(
    path: &Path,
    dial: &CostDial,
    rejoin: &AtomicU64,
) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let c: Control =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    if let Some(n) = c.rejoin {
        rejoin.fetch_max(n, Ordering::SeqCst);
    }
    match c.cost_ms_per_message {
        Some(ms) if ms.is_finite() && (0.0..=60_000.0).contains(&ms) => {
            dial.set(Duration::from_secs_f64(ms / 1e3));
            Ok(Some(format!(
                "cost set to {ms} ms per message by {}",
                path.display()
            )))
        }
        Some(ms) => Err(format!(
            "{}: cost_ms_per_message must be in [0, 60000] (got {ms})",
            path.display()
        )),
        None => Ok(None),
    }
}

/// Build the processor a processor plan names.
/// `label` names the processor's output files (unique per consumer thread).
pub fn make_processor(
    plan: &ProcessorPlan,
    label: &str,
) -> Result<Box<dyn Processor>, ConsumeError> {
    Ok(match plan {
        ProcessorPlan::None => Box::new(NoneProcessor::default()),
        ProcessorPlan::KMeans(cfg) => {
            Box::new(KMeansProcessor::new(cfg.clone()).map_err(ConsumeError::Processor)?)
        }
        ProcessorPlan::Tomo(cfg) => Box::new(
            crate::reconstruct::TomoProcessor::new(cfg.clone(), label)
                .map_err(ConsumeError::Processor)?,
        ),
    })
}

/// Result files of one consumer process in a results directory.
pub fn summary_path(dir: &Path, consumer_id: &str) -> PathBuf {
    dir.join(format!("consumer-{consumer_id}-summary.csv"))
}
pub fn intervals_path(dir: &Path, consumer_id: &str) -> PathBuf {
    dir.join(format!("consumer-{consumer_id}-intervals.csv"))
}
pub fn accounting_path(dir: &Path, consumer_id: &str) -> PathBuf {
    dir.join(format!("consumer-{consumer_id}-accounting.json"))
}
/// The consumer's end-to-end latencies (from intended send, µs) as an HdrHistogram V2 encoding: what the
/// experiment runner merges into a run's percentile distribution.
pub fn latency_histogram_path(dir: &Path, consumer_id: &str) -> PathBuf {
    dir.join(format!("consumer-{consumer_id}-e2e-latency.hdr"))
}

/// A consumer thread's accounting so far, rewritten (atomically) before the offsets of what it holds are stored
/// for commit: what a consumer that is killed leaves behind. Removed once the final accounting file is written.
pub fn checkpoint_path(dir: &Path, consumer_id: &str, thread: usize) -> PathBuf {
    dir.join(format!("consumer-{consumer_id}-checkpoint-{thread}.json"))
}

/// How often a consumer thread checkpoints its accounting and stores the offsets it covers.
const CHECKPOINT_NS: u64 = 200_000_000;

/// Follows the group: when partitions were first assigned (group join time), how many this consumer holds,
/// rebalance activity (which resets the idle timer), and the high watermark of each partition from the
/// consumer's fetch responses (librdkafka's statistics: tansu 0.6.0 answers ListOffsets with 1, so
/// `fetch_watermarks` cannot be trusted there).
struct GroupContext {
    clock: Arc<dyn Clock>,
    topic: String,
    first_assignment_ns: Arc<AtomicU64>,
    assigned: AtomicU64,
    last_activity_ns: Arc<AtomicU64>,
    high: Mutex<BTreeMap<i32, i64>>,
    ledger: Mutex<Ledger>,
}

/// Which offsets a consumer thread may commit. Without a checkpoint file an offset is stored as soon as its
/// message is handled. With one (`checkpoint_accounting`) it is stored only once a checkpoint of what was
/// received up to it is written (atomically), so a consumer killed at any moment has recorded every message
/// whose offset it committed, and what it handled after its last checkpoint comes again to the partition's next
/// owner. Checkpointed every [`CHECKPOINT_NS`] and before partitions are revoked, by the thread and by the
/// rebalance callback. Measured on tansu 0.6.0, it still costs duplicates at rebalances (the delayed stores),
/// hence opt-in.
#[derive(Default)]
struct Ledger {
    /// The (producer, sequence) pairs received.
    received: Accounting,
    /// Per partition, the offset of the last message handled and not yet stored.
    pending: BTreeMap<i32, i64>,
    /// None: no results directory, offsets are stored at once.
    checkpoint: Option<PathBuf>,
    errors: Vec<String>,
}

impl Ledger {
    fn store(&mut self, consumer: &BaseConsumer<GroupContext>, topic: &str) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(path) = &self.checkpoint {
            let bytes = serde_json::to_vec(&self.received).expect("serialisable");
            if let Err(e) = write_atomic(path, &bytes) {
                // Not stored: redelivered after a restart, never lost.
                self.errors
                    .push(format!("checkpoint {}: {e}", path.display()));
                return;
            }
        }
        for (&partition, &offset) in &self.pending {
            // A partition revoked meanwhile refuses the store; its messages then come again to the next
            // owner, counted duplicates.
            let _ = consumer.store_offset(topic, partition, offset);
        }
        self.pending.clear();
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, stats: Statistics) {
        if let Some(t) = stats.topics.get(&self.topic) {
            let mut high = self.high.lock().expect("not poisoned");
            for (&p, part) in &t.partitions {
                if p >= 0 && part.hi_offset >= 0 {
                    let h = high.entry(p).or_insert(0);
                    *h = (*h).max(part.hi_offset);
                }
            }
        }
    }
}

impl GroupContext {
    /// The highest high watermark the fetch responses gave for `partition` (-1: none yet).
    fn high_watermark(&self, partition: i32) -> i64 {
        self.high
            .lock()
            .expect("not poisoned")
            .get(&partition)
            .copied()
            .unwrap_or(-1)
    }
}

/// The partitions a consumer holds, with its position and the high watermark in each.
fn partition_offsets(c: &BaseConsumer<GroupContext>, topic: &str) -> Vec<PartitionOffsets> {
    let positions = c.position().unwrap_or_else(|_| TopicPartitionList::new());
    positions
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| PartitionOffsets {
            partition: e.partition(),
            high_watermark: c.context().high_watermark(e.partition()),
            position: e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(-1),
        })
        .collect()
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Before the partitions move: everything handled is checkpointed and stored, so librdkafka's commit on
        // revoke covers it.
        if let Rebalance::Revoke(_) = rebalance {
            if let Ok(mut l) = self.ledger.lock() {
                l.store(consumer, &self.topic);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = self.clock.now_ns();
        self.last_activity_ns.fetch_max(now, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => {
                let _ = self.first_assignment_ns.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                self.assigned.store(tpl.count() as u64, Ordering::Relaxed);
            }
            Rebalance::Revoke(_) => self.assigned.store(0, Ordering::Relaxed),
            Rebalance::Error(_) => {}
        }
    }
}

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
    e2e: LatencyHistogram,
    /// Since the last publication into [`Shared::interval_e2e`].
    interval_e2e: LatencyHistogram,
    e2e_actual: LatencyHistogram,
    /// From intended send to the end of the processing of the message's window.
    processed: LatencyHistogram,
    /// Intended send times of the messages in the open window (reused).
    pending: Vec<u64>,
    processing: LatencyHistogram,
    scheduling: LatencyHistogram,
    windows: u64,
    items: u64,
    first_ns: Option<u64>,
    last_ns: u64,
    lag: i64,
    last_score: f64,
    errors: Vec<String>,
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
            Err(e) => out.errors.push(e),
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

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub summary: ConsumerSummary,
    pub accounting: Accounting,
    pub intervals: Vec<ConsumerInterval>,
}

fn kafka_err(conn: &Connection, what: &str, e: impl ToString) -> ConsumeError {
    ConsumeError::Kafka {
        what: what.into(),
        bootstrap: conn.bootstrap.clone(),
        message: e.to_string(),
    }
}

/// Consume until the plan's stop rule or `shutdown`.
pub fn run(
    plan: &ConsumerPlan,
    conn: &Connection,
    clock: Arc<dyn Clock>,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&ConsumerInterval),
) -> Result<RunOutput, ConsumeError> {
    let conn = &Connection {
        client: conn.client.with_consumer(&plan.kafka),
        ..conn.clone()
    };
    let admin = pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    );
    admin.brokers().map_err(|e| {
        kafka_err(
            conn,
            "reaching the brokers",
            format!("{e}; is the broker running?"),
        )
    })?;
    let dial = Arc::new(CostDial::new(plan.cost));
    let rejoin = AtomicU64::new(0);
    let mut processors = Vec::new();
    for t in 0..plan.threads {
        let label = format!("{}-{t}", plan.consumer_id);
        processors.push(processor_for(plan, &label, &dial)?);
    }
    let mut cfg = conn.client.consumer_config(&conn.bootstrap, &plan.group);
    // Offsets are stored (for the next commit) only once a message has been handled. librdkafka's default
    // stores them when poll returns a message, and rust-rdkafka's drop polls and discards what is left in the
    // queue before the final commit: a consumer stopped with messages prefetched committed them unread, and
    // the partition's next owner never saw them (found in an autoscaled run: 3 of 19,500 lost at a scale-down).
    cfg.set("auto.offset.reset", plan.auto_offset_reset.as_str())
        .set("enable.partition.eof", "false")
        .set("enable.auto.offset.store", "false");
    // Statistics carry each partition's high watermark from the fetch responses (for lag); at least once a
    // second, so a report's lag is at most a second stale.
    if !plan.kafka.contains_key("statistics.interval.ms") {
        let ms = (plan.interval_s * 1000.0).clamp(100.0, 1000.0) as u64;
        cfg.set("statistics.interval.ms", ms.to_string());
    }
    // Reports to the metrics topic (the autoscaler's and the experiment runner's view of the group).
    let telemetry = match &plan.metrics_topic {
        Some(t) => Some(TelemetryWriter::new(conn, t)?),
        None => None,
    };
    let first_assignment = Arc::new(AtomicU64::new(0));
    let start_ns = clock.now_ns();
    let last_activity = Arc::new(AtomicU64::new(start_ns));
    let mut consumers = Vec::new();
    for thread in 0..plan.threads as usize {
        let ctx = GroupContext {
            clock: clock.clone(),
            topic: plan.topic.clone(),
            first_assignment_ns: first_assignment.clone(),
            assigned: AtomicU64::new(0),
            last_activity_ns: last_activity.clone(),
            high: Mutex::new(BTreeMap::new()),
            ledger: Mutex::new(Ledger {
                checkpoint: plan
                    .results_dir
                    .as_ref()
                    .filter(|_| plan.checkpoint_accounting)
                    .map(|d| checkpoint_path(d, &plan.consumer_id, thread)),
                ..Default::default()
            }),
        };
        let c: BaseConsumer<GroupContext> = cfg
            .create_with_context(ctx)
            .map_err(|e| kafka_err(conn, "creating consumer", e))?;
        c.subscribe(&[&plan.topic])
            .map_err(|e| kafka_err(conn, "subscribe", e))?;
        consumers.push(c);
    }
    let mut writers = match &plan.results_dir {
        Some(d) => Some((
            CsvWriter::create(&summary_path(d, &plan.consumer_id))?,
            CsvWriter::create(&intervals_path(d, &plan.consumer_id))?,
        )),
        None => None,
    };
    let start_utc = pilot_core::contract::clock::now_utc();
    let shared = Shared::default();
    let idle_ns = pilot_core::contract::config::seconds_to_ns(plan.idle_timeout_s);
    let start_timeout_ns = pilot_core::contract::config::seconds_to_ns(plan.start_timeout_s);
    let end_ns = plan
        .duration_s
        .map(|d| start_ns + pilot_core::contract::config::seconds_to_ns(d));
    let stop_all = AtomicBool::new(false);
    let mut intervals = Vec::new();
    let mut telemetry_errors: Vec<String> = Vec::new();
    let interrupted = || shutdown.load(Ordering::Relaxed);

    let mut control_notes: Vec<String> = Vec::new();
    let outs: Vec<(Box<dyn Processor>, ThreadOut)> = std::thread::scope(|scope| {
        let handles: Vec<_> = consumers
            .iter()
            .zip(processors.drain(..))
            .map(|(consumer, processor)| {
                let (clock, shared, stop_all, last_activity, rejoin) =
                    (clock.clone(), &shared, &stop_all, &*last_activity, &rejoin);
                scope.spawn(move || {
                    let mut h = MessageHandler::new(
                        processor,
                        plan.window,
                        start_ns,
                        shared,
                        last_activity,
                    );
                    let now = || clock.now_ns();
                    let mut last_checkpoint = now();
                    let mut rejoined = 0u64;
                    let ledger = &consumer.context().ledger;
                    let store = || {
                        if let Ok(mut l) = ledger.lock() {
                            l.store(consumer, &plan.topic);
                        }
                    };
                    loop {
                        let t = now();
                        let received = shared.received.load(Ordering::Relaxed);
                        if interrupted()
                            || stop_all.load(Ordering::Relaxed)
                            || plan.messages.is_some_and(|m| received >= m)
                            || end_ns.is_some_and(|e| t >= e)
                            || t.saturating_sub(last_activity.load(Ordering::Relaxed))
                                >= if received == 0 {
                                    start_timeout_ns
                                } else {
                                    idle_ns
                                }
                        {
                            stop_all.store(true, Ordering::Relaxed);
                            break;
                        }
                        match consumer.poll(Duration::from_millis(50)) {
                            Some(Ok(m)) => {
                                h.handle(
                                    m.key(),
                                    m.payload().unwrap_or_default(),
                                    m.timestamp().to_millis(),
                                    &now,
                                );
                                // Handled (taken, rejected or a duplicate): its offset may be committed once
                                // a checkpoint holds it.
                                let recorded = h.recorded.take();
                                if let Ok(mut l) = ledger.lock() {
                                    l.pending.insert(m.partition(), m.offset());
                                    match (l.checkpoint.is_some(), recorded) {
                                        (true, Some((p, seq))) => {
                                            l.received.record(p, seq);
                                        }
                                        (true, None) => {}
                                        (false, _) => l.store(consumer, &plan.topic),
                                    }
                                }
                            }
                            Some(Err(e)) => h.out.errors.push(e.to_string()),
                            None => {}
                        }
                        h.tick(&now);
                        let t = now();
                        if t.saturating_sub(last_checkpoint) >= CHECKPOINT_NS {
                            store();
                            h.publish_interval_latency();
                            last_checkpoint = t;
                        }
                        let want = rejoin.load(Ordering::SeqCst);
                        if want > rejoined {
                            // Commit what is handled, leave the group and join it again.
                            store();
                            let _ = consumer.commit_consumer_state(CommitMode::Sync);
                            consumer.unsubscribe();
                            if let Err(e) = consumer.subscribe(&[&plan.topic]) {
                                h.out.errors.push(format!("rejoining the group: {e}"));
                            }
                            rejoined = want;
                        }
                    }
                    h.flush(&now);
                    store();
                    h.publish_interval_latency();
                    if let Ok(mut l) = ledger.lock() {
                        h.out.errors.append(&mut l.errors);
                    }
                    let (processor, mut out) = h.into_parts();
                    // Commit what was consumed, and measure what is left behind: the high watermark is the larger
                    // of the fetch responses' (statistics, at most one statistics interval old) and the broker's
                    // ListOffsets answer (right on Kafka, 1 on tansu 0.6.0).
                    let _ = consumer.commit_consumer_state(CommitMode::Sync);
                    for p in partition_offsets(consumer, &plan.topic) {
                        let listed = consumer
                            .fetch_watermarks(&plan.topic, p.partition, Duration::from_secs(2))
                            .map(|(_, h)| h)
                            .unwrap_or(-1);
                        let high = p.high_watermark.max(listed);
                        if high >= 0 {
                            out.lag += (high - p.position.max(0)).max(0);
                        }
                    }
                    (processor, out)
                })
            })
            .collect();

        let (mut last, mut last_t, mut last_busy) = ((0u64, 0u64, 0u64), start_ns, 0u64);
        let mut last_work = (0u64, 0u64);
        let mut report_seq = 0u64;
        let mut report = |dt: f64, leaving: bool| -> Option<String> {
            let t = telemetry.as_ref()?;
            let work = (
                shared.handled.load(Ordering::Relaxed),
                shared.busy_ns.load(Ordering::Relaxed),
            );
            let r = ConsumerReport {
                version: REPORT_VERSION,
                run_id: plan.run_id.clone(),
                consumer_id: plan.consumer_id.clone(),
                group: plan.group.clone(),
                topic: plan.topic.clone(),
                host: pilot_core::contract::metrics::hostname(),
                pid: std::process::id(),
                seq: report_seq,
                time_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                interval_s: dt,
                handled_msgs: work.0 - last_work.0,
                busy_s: (work.1 - last_work.1) as f64 / 1e9,
                received_msgs_total: shared.received.load(Ordering::Relaxed),
                partitions: if leaving {
                    Vec::new()
                } else {
                    consumers
                        .iter()
                        .flat_map(|c| partition_offsets(c, &plan.topic))
                        .collect()
                },
                leaving,
            };
            last_work = work;
            report_seq += 1;
            t.send(&r).err().map(|e| e.to_string())
        };
        let mut row = |now: u64| {
            let cur = (
                shared.received.load(Ordering::Relaxed),
                shared.rejected.load(Ordering::Relaxed),
                shared.bytes.load(Ordering::Relaxed),
            );
            let dt = now.saturating_sub(last_t) as f64 / 1e9;
            let per_s = |x: f64| if dt > 0.0 { x / dt } else { 0.0 };
            let r = ConsumerInterval {
                run_id: plan.run_id.clone(),
                role: "consumer".into(),
                consumer_id: plan.consumer_id.clone(),
                t_s: now.saturating_sub(start_ns) as f64 / 1e9,
                interval_s: dt,
                received_msgs: cur.0 - last.0,
                rejected_msgs: cur.1 - last.1,
                received_mb: (cur.2 - last.2) as f64 / 1e6,
                msgs_per_s: per_s((cur.0 - last.0) as f64),
                mb_per_s: per_s((cur.2 - last.2) as f64 / 1e6),
                assigned_partitions: consumers
                    .iter()
                    .map(|c| c.context().assigned.load(Ordering::Relaxed))
                    .sum(),
                busy_s: {
                    let b = shared.busy_ns.load(Ordering::Relaxed);
                    let d = b.saturating_sub(last_busy) as f64 / 1e9;
                    last_busy = b;
                    d
                },
                e2e_latency_us_p99: shared
                    .interval_e2e
                    .lock()
                    .map(|mut h| {
                        let p99 = if h.count() > 0 { h.summary().p99_us } else { 0 };
                        h.reset();
                        p99
                    })
                    .unwrap_or(0),
            };
            last = cur;
            last_t = now;
            if let Some(path) = &plan.control_file {
                match apply_control(path, &dial, &rejoin) {
                    Ok(Some(note)) if !control_notes.contains(&note) => control_notes.push(note),
                    Err(e) if !control_notes.contains(&e) => control_notes.push(e),
                    _ => {}
                }
            }
            if let Some(e) = report(dt, false) {
                telemetry_errors.push(e);
            }
            r
        };
        intervals = pilot_core::contract::metrics::report_intervals(
            clock.as_ref(),
            start_ns,
            pilot_core::contract::config::seconds_to_ns(plan.interval_s),
            || handles.iter().all(|h| h.is_finished()),
            &mut row,
            writers.as_mut().map(|(_, w)| w),
            progress,
        );
        let outs = handles
            .into_iter()
            .map(|h| h.join().expect("consumer thread panicked"))
            .collect();
        // Offsets are committed: say so, so a controller counts this consumer out at once.
        if let Some(e) = report(0.0, true) {
            telemetry_errors.push(e);
        }
        outs
    });
    if let Some(t) = &telemetry {
        if let Err(e) = t.flush(Duration::from_secs(10)) {
            telemetry_errors.push(e.to_string());
        }
    }

    let (mut processors, outs): (Vec<_>, Vec<_>) = outs.into_iter().unzip();
    let mut accounting = Accounting::default();
    let (mut e2e, mut e2e_actual, mut processing, mut scheduling) = (
        LatencyHistogram::new(),
        LatencyHistogram::new(),
        LatencyHistogram::new(),
        LatencyHistogram::new(),
    );
    let mut processed = LatencyHistogram::new();
    let (mut windows, mut items, mut lag, mut first, mut last_rx, mut last_score) =
        (0, 0, 0i64, u64::MAX, 0u64, 0.0);
    let mut errors = Vec::new();
    for o in &outs {
        accounting.merge(&o.accounting);
        e2e.merge(&o.e2e);
        e2e_actual.merge(&o.e2e_actual);
        processed.merge(&o.processed);
        processing.merge(&o.processing);
        scheduling.merge(&o.scheduling);
        windows += o.windows;
        items += o.items;
        lag += o.lag;
        if let Some(f) = o.first_ns {
            first = first.min(f);
        }
        last_rx = last_rx.max(o.last_ns);
        last_score = o.last_score;
        errors.extend(o.errors.iter().cloned());
    }
    // A processor that cannot write its output marks the run incomplete; the accounting is written regardless.
    let mut notes: Vec<String> = Vec::new();
    for p in &mut processors {
        if let Err(e) = p.finish(plan.results_dir.as_deref()) {
            errors.push(format!("processor output: {e}"));
        }
        for n in p.notes() {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
    if let Some(d) = &plan.results_dir {
        let path = accounting_path(d, &plan.consumer_id);
        write_atomic(
            &path,
            serde_json::to_string(&accounting)
                .expect("serialisable")
                .as_bytes(),
        )
        .map_err(|e| ConsumeError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let path = latency_histogram_path(d, &plan.consumer_id);
        write_atomic(&path, &e2e.to_v2_bytes()).map_err(|e| ConsumeError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // The final file holds everything the checkpoints did.
        for t in 0..plan.threads as usize {
            let _ = std::fs::remove_file(checkpoint_path(d, &plan.consumer_id, t));
        }
    }
    notes.extend(control_notes);
    if !telemetry_errors.is_empty() {
        telemetry_errors.sort();
        telemetry_errors.dedup();
        notes.push(format!(
            "metrics reports to {} failed: {}",
            plan.metrics_topic.as_deref().unwrap_or_default(),
            telemetry_errors.join("; ")
        ));
    }
    if let Some(c) = plan.cost {
        notes.push(format!(
            "processing cost emulated: {} ms per message ({})",
            c.per_message.as_secs_f64() * 1e3,
            c.model.as_str()
        ));
    }
    let totals = accounting.totals(plan.expect_messages);
    if totals.unaccounted > 0 {
        notes.push(format!(
            "{} messages without MASS's accounting (another producer's): processed, latency from their Kafka timestamps",
            totals.unaccounted
        ));
    }
    let end_ns = clock.now_ns();
    let window_s = if first != u64::MAX && last_rx > first {
        (last_rx - first) as f64 / 1e9
    } else {
        0.0
    };
    let received_mb = shared.bytes.load(Ordering::Relaxed) as f64 / 1e6;
    let per_s = |x: f64| if window_s > 0.0 { x / window_s } else { 0.0 };
    let fa = first_assignment.load(Ordering::Relaxed);
    let mut reasons = Vec::new();
    if interrupted() {
        reasons.push("interrupted by SIGINT/SIGTERM".to_string());
    }
    if plan.expect_messages.is_some() && totals.missing > 0 {
        reasons.push(format!("{} messages missing", totals.missing));
    }
    if totals.rejected > 0 {
        reasons.push(format!("{} messages rejected", totals.rejected));
    }
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        reasons.push(format!("errors: {}", errors.join("; ")));
    }
    let (e, ea, pr, sc) = (
        e2e.summary(),
        e2e_actual.summary(),
        processing.summary(),
        scheduling.summary(),
    );
    let summary = ConsumerSummary {
        run_id: plan.run_id.clone(),
        role: "consumer".into(),
        consumer_id: plan.consumer_id.clone(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        start_utc,
        end_utc: pilot_core::contract::clock::now_utc(),
        complete: reasons.is_empty(),
        incomplete_reason: reasons.join("; "),
        bootstrap_servers: conn.bootstrap.clone(),
        topic: plan.topic.clone(),
        group: plan.group.clone(),
        threads: plan.threads,
        processor: plan.processor.name().into(),
        window: plan.window.to_string(),
        expected_msgs: plan.expect_messages.unwrap_or(0),
        elapsed_s: end_ns.saturating_sub(start_ns) as f64 / 1e9,
        rebalance_s: if fa > start_ns {
            (fa - start_ns) as f64 / 1e9
        } else {
            0.0
        },
        receive_window_s: window_s,
        received_msgs: totals.received,
        unaccounted_msgs: totals.unaccounted,
        duplicate_msgs: totals.duplicates,
        rejected_msgs: totals.rejected,
        rejected_reasons: accounting.rejected_text(),
        missing_msgs: totals.missing,
        received_mb,
        processed_items: items,
        windows,
        throughput_msgs_per_s: per_s((totals.received + totals.unaccounted) as f64),
        throughput_mb_per_s: per_s(received_mb),
        throughput_items_per_s: per_s(items as f64),
        e2e_latency_us_p50: e.p50_us,
        e2e_latency_us_p90: e.p90_us,
        e2e_latency_us_p99: e.p99_us,
        e2e_latency_us_p999: e.p999_us,
        e2e_latency_us_max: e.max_us,
        e2e_latency_us_mean: e.mean_us,
        e2e_actual_latency_us_p50: ea.p50_us,
        e2e_actual_latency_us_p99: ea.p99_us,
        processed_latency_us_p50: processed.summary().p50_us,
        processed_latency_us_p99: processed.summary().p99_us,
        processing_us_p50: pr.p50_us,
        processing_us_p99: pr.p99_us,
        processing_us_max: pr.max_us,
        scheduling_delay_us_p50: sc.p50_us,
        scheduling_delay_us_p99: sc.p99_us,
        lag_msgs: lag,
        busy_s: shared.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
        handled_msgs: shared.handled.load(Ordering::Relaxed),
        last_score,
        notes: notes.join("; "),
    };
    if let Some((w, _)) = writers.as_mut() {
        w.write(&summary)?;
    }
    Ok(RunOutput {
        summary,
        accounting,
        intervals,
    })
}

/// Merge the accounting files of every consumer process in `dirs` (a group's view of a run).
pub fn merge_accounting(dirs: &[PathBuf]) -> Result<(Accounting, usize), ConsumeError> {
    let mut all = Accounting::default();
    let mut files = 0;
    for d in dirs {
        let entries = std::fs::read_dir(d).map_err(|e| ConsumeError::Io {
            path: d.clone(),
            message: e.to_string(),
        })?;
        // A consumer's final file, or where it has none (it was killed) its threads' last checkpoints.
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        for name in &names {
            let checkpoint_of = name
                .strip_suffix(".json")
                .and_then(|n| n.rsplit_once("-checkpoint-"))
                .map(|(owner, _)| format!("{owner}-accounting.json"));
            let take = match &checkpoint_of {
                Some(final_name) => name.starts_with("consumer-") && !names.contains(final_name),
                None => name.starts_with("consumer-") && name.ends_with("-accounting.json"),
            };
            if take {
                let path = d.join(name);
                let text = std::fs::read_to_string(&path).map_err(|err| ConsumeError::Io {
                    path: path.clone(),
                    message: err.to_string(),
                })?;
                let a: Accounting =
                    serde_json::from_str(&text).map_err(|err| ConsumeError::Io {
                        path: path.clone(),
                        message: err.to_string(),
                    })?;
                all.merge(&a);
                files += 1;
            }
        }
    }
    Ok((all, files))
}
