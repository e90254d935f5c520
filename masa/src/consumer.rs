//! The consumer run loop. Each thread owns an rdkafka `BaseConsumer` in the plan's group (threads and
//! processes share partitions through the group), a [`Decoder`], its [`Accounting`], a [`Windower`] and a
//! [`Processor`]; the main thread writes interval rows. A run ends on its message count, duration, idle timeout
//! or the injected shutdown flag (SIGINT/SIGTERM): the open window is processed, offsets committed, and the
//! summary written (marked incomplete when interrupted, or when anything is missing or rejected).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pilot_core::client::Connection;
use pilot_core::clock::Clock;
use pilot_core::metrics::{CsvWriter, LatencyHistogram, MetricsError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, TopicPartitionList};

use crate::accounting::{Accounting, Arrival};
use crate::config::{ConsumerPlan, ProcessorPlan};
use crate::decode::Decoder;
use crate::processor::{KMeansProcessor, NoneProcessor, Processor, WindowOutput};
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

/// Build the processor a plan names.
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

/// Wait until the consumer processes `ids`, writing interval rows into `dir`, hold all `partitions` of their
/// topic among them, each at least one when there are enough: their group has formed, so producers may start.
/// Gives up after `timeout` or when `stop()` says so, naming what each one held.
pub fn wait_for_group(
    dir: &Path,
    ids: &[String],
    partitions: u64,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    loop {
        let held: Vec<u64> = ids
            .iter()
            .map(|id| {
                pilot_core::metrics::read_csv::<crate::report::ConsumerInterval>(&intervals_path(
                    dir, id,
                ))
                .ok()
                .and_then(|rows| rows.last().map(|r| r.assigned_partitions))
                .unwrap_or(0)
            })
            .collect();
        let members = held.iter().filter(|&&h| h > 0).count() as u64;
        if held.iter().sum::<u64>() == partitions && members == (ids.len() as u64).min(partitions) {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "the consumers {ids:?} never shared the topic's {partitions} partitions in {} s (held {held:?}); logs under {}",
                timeout.as_secs(),
                dir.display()
            ));
        }
        if stop() {
            return Err("interrupted while the consumers joined".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// Follows the group: when partitions were first assigned (group join time), how many this consumer holds, and
/// rebalance activity (which resets the idle timer).
struct GroupContext {
    clock: Arc<dyn Clock>,
    first_assignment_ns: Arc<AtomicU64>,
    assigned: AtomicU64,
    last_activity_ns: Arc<AtomicU64>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
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
        }
    }

    /// Handle one message (`key`, `body` and Kafka timestamp as polled) at time `now()`.
    pub fn handle(
        &mut self,
        key: Option<&[u8]>,
        body: &[u8],
        timestamp_ms: Option<i64>,
        now: &dyn Fn() -> u64,
    ) -> Handled {
        let t = now();
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

    /// Close a time window that has run out.
    pub fn tick(&mut self, now: &dyn Fn() -> u64) {
        if let Some(c) = self.windower.tick(now()) {
            self.process(c.end_ns, now);
        }
    }

    /// Process whatever the open window holds (the end of the run).
    pub fn flush(&mut self, now: &dyn Fn() -> u64) {
        if let Some(c) = self.windower.flush(now()) {
            self.process(c.end_ns, now);
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
    let admin =
        pilot_core::admin::KafkaAdmin::new(&conn.bootstrap, &conn.client, Duration::from_secs(10));
    admin.brokers().map_err(|e| {
        kafka_err(
            conn,
            "reaching the brokers",
            format!("{e}; is the broker running?"),
        )
    })?;
    let mut processors = Vec::new();
    for t in 0..plan.threads {
        let label = format!("{}-{t}", plan.consumer_id);
        processors.push(make_processor(&plan.processor, &label)?);
    }
    let mut cfg = conn.client.consumer_config(&conn.bootstrap, &plan.group);
    cfg.set("auto.offset.reset", plan.auto_offset_reset.as_str())
        .set("enable.partition.eof", "false");
    let first_assignment = Arc::new(AtomicU64::new(0));
    let start_ns = clock.now_ns();
    let last_activity = Arc::new(AtomicU64::new(start_ns));
    let mut consumers = Vec::new();
    for _ in 0..plan.threads {
        let ctx = GroupContext {
            clock: clock.clone(),
            first_assignment_ns: first_assignment.clone(),
            assigned: AtomicU64::new(0),
            last_activity_ns: last_activity.clone(),
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
    let start_utc = pilot_core::store::now_utc();
    let shared = Shared::default();
    let idle_ns = pilot_core::config::seconds_to_ns(plan.idle_timeout_s);
    let start_timeout_ns = pilot_core::config::seconds_to_ns(plan.start_timeout_s);
    let end_ns = plan
        .duration_s
        .map(|d| start_ns + pilot_core::config::seconds_to_ns(d));
    let stop_all = AtomicBool::new(false);
    let mut intervals = Vec::new();
    let interrupted = || shutdown.load(Ordering::Relaxed);

    let outs: Vec<(Box<dyn Processor>, ThreadOut)> = std::thread::scope(|scope| {
        let handles: Vec<_> = consumers
            .iter()
            .zip(processors.drain(..))
            .map(|(consumer, processor)| {
                let (clock, shared, stop_all, last_activity) =
                    (clock.clone(), &shared, &stop_all, &*last_activity);
                scope.spawn(move || {
                    let mut h = MessageHandler::new(
                        processor,
                        plan.window,
                        start_ns,
                        shared,
                        last_activity,
                    );
                    let now = || clock.now_ns();
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
                            }
                            Some(Err(e)) => h.out.errors.push(e.to_string()),
                            None => {}
                        }
                        h.tick(&now);
                    }
                    h.flush(&now);
                    let (processor, mut out) = h.into_parts();
                    // Commit what was consumed, and measure what is left behind.
                    let _ = consumer.commit_consumer_state(CommitMode::Sync);
                    if let Ok(assigned) = consumer.assignment() {
                        let positions = consumer
                            .position()
                            .unwrap_or_else(|_| TopicPartitionList::new());
                        for e in assigned.elements() {
                            if let Ok((_, high)) = consumer.fetch_watermarks(
                                e.topic(),
                                e.partition(),
                                Duration::from_secs(2),
                            ) {
                                let pos = positions
                                    .find_partition(e.topic(), e.partition())
                                    .and_then(|p| p.offset().to_raw())
                                    .filter(|o| *o >= 0)
                                    .unwrap_or(0);
                                out.lag += (high - pos).max(0);
                            }
                        }
                    }
                    (processor, out)
                })
            })
            .collect();

        let (mut last, mut last_t) = ((0u64, 0u64, 0u64), start_ns);
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
            };
            last = cur;
            last_t = now;
            r
        };
        intervals = pilot_core::metrics::report_intervals(
            clock.as_ref(),
            start_ns,
            pilot_core::config::seconds_to_ns(plan.interval_s),
            || handles.iter().all(|h| h.is_finished()),
            &mut row,
            writers.as_mut().map(|(_, w)| w),
            progress,
        );
        handles
            .into_iter()
            .map(|h| h.join().expect("consumer thread panicked"))
            .collect()
    });

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
        std::fs::write(
            &path,
            serde_json::to_string(&accounting).expect("serialisable"),
        )
        .map_err(|e| ConsumeError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
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
        end_utc: pilot_core::store::now_utc(),
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
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("consumer-") && name.ends_with("-accounting.json") {
                let text = std::fs::read_to_string(e.path()).map_err(|err| ConsumeError::Io {
                    path: e.path(),
                    message: err.to_string(),
                })?;
                let a: Accounting =
                    serde_json::from_str(&text).map_err(|err| ConsumeError::Io {
                        path: e.path(),
                        message: err.to_string(),
                    })?;
                all.merge(&a);
                files += 1;
            }
        }
    }
    Ok((all, files))
}
