//! The producer: threads that pace, stamp and send messages through rdkafka, and account for every one.
//!
//! Each thread owns a [`Source`], an rdkafka `BaseProducer` polled inline (delivery reports run on the sending
//! thread, no extra poll thread per producer) and its own producer id and sequence. A message's opaque is its
//! actual send time, so the delivery callback measures produce-to-ack latency without a per-message
//! allocation. The main thread writes interval rows and progress, and watches the injected shutdown flag: on
//! SIGINT/SIGTERM sending stops, queues are flushed, and the summary is written marked incomplete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot_core::contract::clock::Clock;
use pilot_core::contract::message::{self, AccountingKey, Encoding};
use pilot_core::contract::metrics::{CsvWriter, LatencyHistogram, MetricsError};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::config::{Partitioning, ProducerPlan, SourcePlan, Target};
use crate::rate::{Pacer, Rate};
use crate::report::{IntervalRow, ProducerSummary};
use crate::source::{ClusterSource, Source, SourceError, StaticSource, TemplateSource};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Source(#[from] SourceError),
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
}

pub use pilot_core::contract::client::Connection;

/// Resolve the plan's target (a pilot's details, or plain brokers).
pub fn connect(target: &Target) -> Result<Connection, ProduceError> {
    Ok(pilot_core::pilots::connect::resolve(target)?)
}

/// Build the source for one producer thread.
pub fn make_source(plan: &ProducerPlan, producer_id: u32) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &plan.source {
        SourcePlan::Cluster(p) => {
            Box::new(ClusterSource::new(p.clone(), producer_id, plan.encoding)?)
        }
        SourcePlan::Static(p) => Box::new(StaticSource::from_source(Box::new(ClusterSource::new(
            p.clone(),
            producer_id,
            plan.encoding,
        )?))),
        SourcePlan::Synthetic { bytes, seed } => {
            Box::new(StaticSource::synthetic(*bytes, producer_id, *seed)?)
        }
        SourcePlan::Template(t) => Box::new(TemplateSource::new(t, plan.encoding, producer_id)?),
    })
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    delivered_bytes: AtomicU64,
    /// Delivery time of the last measured (non-warm-up) message.
    last_delivery_ns: AtomicU64,
}

#[derive(Default)]
struct Measured {
    delivery: LatencyHistogram,
    errors: BTreeMap<String, u64>,
}

const WARMUP_BIT: usize = 1 << 63;

struct DeliveryContext {
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    measured: Mutex<Measured>,
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
                if opaque & WARMUP_BIT == 0 {
                    self.counters
                        .last_delivery_ns
                        .fetch_max(now, Ordering::Relaxed);
                    let mut g = self.measured.lock().expect("not poisoned");
                    g.delivery.record_between_ns(opaque as u64, now);
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

/// What one thread saw.
#[derive(Default)]
struct ThreadResult {
    sent_measured: u64,
    sent_warmup: u64,
    first_measured_ns: Option<u64>,
    last_measured_ns: u64,
    send_lag: LatencyHistogram,
    local_errors: BTreeMap<String, u64>,
    /// Points in the measured messages sent (a points profile varies them).
    points_measured: u64,
}

/// Turns the shared counters into interval rows.
struct IntervalTracker<'a> {
    run_id: &'a str,
    counters: &'a Counters,
    start_ns: u64,
    last: (u64, u64, u64, u64),
    last_t: u64,
    rate: &'a Rate,
    /// Points per message at a time of the run (seconds).
    points_at: &'a dyn Fn(f64) -> u64,
}

impl IntervalTracker<'_> {
    fn row(&mut self, now: u64) -> IntervalRow {
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

/// How long a thread waits when librdkafka's queue is full and no delivery report is ready to free it.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

/// Serve every delivery report that is ready, without blocking; says whether any was.
///
/// Why not `BaseProducer::poll(timeout)`: rdkafka 0.39 hands librdkafka the remaining time in whole
/// milliseconds and loops until its deadline, so the last sub-millisecond of every timed poll is a busy spin
/// of zero-timeout polls (measured: a quarter of the producer's CPU went to `clock_gettime` there while the
/// queue was full, CPU the broker on the same node needed). A zero-timeout poll serves at most one event, so
/// this polls until the count in flight stops falling (serving a report is what frees its queue space).
fn serve_delivery_reports<C: ProducerContext>(producer: &BaseProducer<C>) -> bool {
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

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub summary: ProducerSummary,
    pub intervals: Vec<IntervalRow>,
}

/// Where result files go.
pub fn summary_path(dir: &Path) -> PathBuf {
    dir.join("producer-summary.csv")
}

/// Interval rows file.
pub fn intervals_path(dir: &Path) -> PathBuf {
    dir.join("producer-intervals.csv")
}

fn kafka_err(conn: &Connection, what: &str, e: impl ToString) -> ProduceError {
    ProduceError::Kafka {
        what: what.into(),
        bootstrap: conn.bootstrap.clone(),
        message: e.to_string(),
    }
}

/// Make sure the topic exists (creating it if the plan says so) and return its partition count.
pub fn prepare_topic(plan: &ProducerPlan, conn: &Connection) -> Result<u32, ProduceError> {
    let admin = pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    );
    // Reaching the brokers at all comes first: a clear error instead of a run that silently queues.
    admin.brokers().map_err(|e| {
        kafka_err(
            conn,
            "reaching the brokers",
            format!("{e}; is the broker running?"),
        )
    })?;
    match admin.describe_topic(&plan.topic) {
        Ok(t) => Ok(t.partitions.len() as u32),
        Err(_) if plan.create_topic => {
            let n = plan.partitions.unwrap_or(conn.default_partitions);
            admin.create_topic(&plan.topic, n, 1)?;
            Ok(n)
        }
        Err(e) => Err(kafka_err(
            conn,
            "topic lookup",
            format!("{e} (create it with `pilot topic create`, or pass --create-topic)"),
        )),
    }
}

/// Run the producer until its stop rule, a delivery failure storm, or `shutdown`. `progress` receives each
/// interval row as it is written.
pub fn run(
    plan: &ProducerPlan,
    conn: &Connection,
    clock: Arc<dyn Clock>,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&IntervalRow),
) -> Result<RunOutput, ProduceError> {
    let conn = &Connection {
        client: conn.client.with_producer(&plan.kafka),
        ..conn.clone()
    };
    let partitions = prepare_topic(plan, conn)?;
    // Sources are built up front so a bad template fails before anything is sent.
    let mut sources = Vec::new();
    for t in 0..plan.threads {
        sources.push(make_source(plan, plan.producer_id_base + t)?);
    }
    let notes = sources[0].notes().join("; ");
    let message_bytes = sources[0].next(0, 0).len();
    let points = sources[0].points_per_message();
    let rate = plan.rate(message_bytes);
    let batch_bytes = plan
        .batch_size
        .unwrap_or_else(|| crate::config::default_batch_bytes(message_bytes));
    // Messages per partition run: what fits one batch, at most 32 (enough to fill a linger's batch at thousands of
    // messages per second; more would park small messages on one partition for seconds at low rates).
    let run = (batch_bytes as usize / message_bytes.max(1)).clamp(1, 32) as u64;
    let mut cfg = conn.client.producer_config(&conn.bootstrap);
    cfg.set("acks", plan.acks.as_str())
        .set("linger.ms", plan.linger_ms.to_string())
        .set("compression.type", plan.compression.as_str())
        .set("message.timeout.ms", plan.message_timeout_ms.to_string())
        .set("batch.size", batch_bytes.to_string());
    let mut writers = match &plan.results_dir {
        Some(d) => Some((
            CsvWriter::create(&summary_path(d))?,
            CsvWriter::create(&intervals_path(d))?,
        )),
        None => None,
    };

    let counters = Arc::new(Counters::default());
    let start_utc = pilot_core::contract::clock::now_utc();
    let start_ns = clock.now_ns() + 20_000_000; // a common start slightly ahead, so threads begin together
    let warmup_end_ns = start_ns + pilot_core::contract::config::seconds_to_ns(plan.warmup_s);
    let end_ns = plan
        .stop
        .duration_s
        .map(|d| start_ns + pilot_core::contract::config::seconds_to_ns(d));
    let mut producers = Vec::new();
    for _ in 0..plan.threads {
        let ctx = DeliveryContext {
            clock: clock.clone(),
            counters: counters.clone(),
            measured: Mutex::new(Measured::default()),
        };
        let p: BaseProducer<DeliveryContext> = cfg
            .create_with_context(ctx)
            .map_err(|e| kafka_err(conn, "creating producer", e))?;
        producers.push(p);
    }

    let mut intervals = Vec::new();
    let threads = plan.threads as u64;
    let results: Vec<ThreadResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = producers
            .iter()
            .zip(sources.iter_mut())
            .enumerate()
            .map(|(t, (producer, source))| {
                let clock = clock.clone();
                let counters = counters.clone();
                let plan = &plan;
                let rate = rate.clone();
                scope.spawn(move || {
                    let pacer = Pacer::new(clock.clone(), start_ns, rate);
                    let points_profile = plan.points_profile.as_ref().map(|(p, _)| p);
                    let mut points = source.points_per_message();
                    let producer_id = plan.producer_id_base + t as u32;
                    let mut r = ThreadResult::default();
                    clock.sleep_until_ns(start_ns);
                    let encoding = source.encoding();
                    let mut seq = 0u64;
                    loop {
                        let n = t as u64 + threads * seq;
                        if plan.stop.messages.is_some_and(|m| n >= m)
                            || shutdown.load(Ordering::Relaxed)
                        {
                            break;
                        }
                        if let (Some(end), Some(slot)) = (end_ns, pacer.slot_ns(n)) {
                            if slot >= end {
                                break;
                            }
                        }
                        let Some(intended) = pacer.wait_for(n) else {
                            break; // the rate profile ended
                        };
                        if end_ns.is_some_and(|e| intended >= e) {
                            break;
                        }
                        if let Some(pp) = points_profile {
                            let t_s = intended.saturating_sub(start_ns) as f64 / 1e9;
                            let want = pp.value_at(t_s).round().max(1.0) as u64;
                            if want != points && source.set_points_per_message(want as usize) {
                                points = want;
                            }
                        }
                        let body = source.next(seq, intended);
                        let actual = clock.now_ns();
                        let warmup = intended < warmup_end_ns;
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
                        record.delivery_opaque =
                            actual as usize | if warmup { WARMUP_BIT } else { 0 };
                        record = record.partition(match plan.partitioning {
                            // Round-robin in runs of one batch, so batches fill (one message per partition per
                            // linger would send batches of one); threads start on different partitions.
                            Partitioning::RoundRobin => {
                                ((t as u64 + threads * (seq / run)) % partitions as u64) as i32
                            }
                            Partitioning::KeyByProducer => (producer_id % partitions) as i32,
                        });
                        loop {
                            match producer.send(record) {
                                Ok(()) => {
                                    counters.sent.fetch_add(1, Ordering::Relaxed);
                                    if warmup {
                                        r.sent_warmup += 1;
                                    } else {
                                        r.sent_measured += 1;
                                        r.points_measured += points;
                                        r.first_measured_ns.get_or_insert(actual);
                                        r.last_measured_ns = actual;
                                        r.send_lag.record_between_ns(intended, actual);
                                    }
                                    break;
                                }
                                Err((
                                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                    back,
                                )) => {
                                    record = back;
                                    if !serve_delivery_reports(producer) {
                                        // Nothing delivered yet: wait for the broker without spinning.
                                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                                    }
                                    if shutdown.load(Ordering::Relaxed) {
                                        break;
                                    }
                                }
                                Err((e, _)) => {
                                    *r.local_errors.entry(e.to_string()).or_default() += 1;
                                    counters.sent.fetch_add(1, Ordering::Relaxed);
                                    counters.failed.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                        serve_delivery_reports(producer);
                        seq += 1;
                    }
                    // Deliver what is queued; what remains after the timeout is unknown.
                    let _ = producer.flush(Duration::from_millis(
                        plan.message_timeout_ms as u64 + 5_000,
                    ));
                    r
                })
            })
            .collect();

        // Interval reporting on this thread until every producer is done.
        let points_at = |t_s: f64| match &plan.points_profile {
            Some((p, _)) => p.value_at(t_s).round().max(1.0) as u64,
            None => points,
        };
        let mut tracker = IntervalTracker {
            run_id: &plan.run_id,
            counters: &counters,
            start_ns,
            last: (0, 0, 0, 0),
            last_t: start_ns,
            rate: &rate,
            points_at: &points_at,
        };
        intervals = pilot_core::contract::metrics::report_intervals(
            clock.as_ref(),
            start_ns,
            (plan.interval_s * 1e9) as u64,
            || handles.iter().all(|h| h.is_finished()),
            |now| tracker.row(now),
            writers.as_mut().map(|(_, w)| w),
            progress,
        );
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread panicked"))
            .collect()
    });

    // Merge.
    let end_ns = clock.now_ns();
    let mut delivery = LatencyHistogram::new();
    let mut lag = LatencyHistogram::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for p in &producers {
        let g = p.context().measured.lock().expect("not poisoned");
        delivery.merge(&g.delivery);
        for (k, v) in &g.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let (mut sent_measured, mut sent_warmup, mut points_measured) = (0, 0, 0u64);
    let (mut first, mut last_send) = (u64::MAX, 0u64);
    for r in &results {
        lag.merge(&r.send_lag);
        sent_measured += r.sent_measured;
        sent_warmup += r.sent_warmup;
        points_measured += r.points_measured;
        if let Some(f) = r.first_measured_ns {
            first = first.min(f);
        }
        last_send = last_send.max(r.last_measured_ns);
        for (k, v) in &r.local_errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let sent = counters.sent.load(Ordering::Relaxed);
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let unknown = sent.saturating_sub(delivered + failed);
    let measured_s = if sent_measured > 1 && last_send > first {
        (last_send - first) as f64 / 1e9
    } else {
        0.0
    };
    // Send rate from first to last measured send (n - 1 intervals): what the schedule achieved.
    let send_rate = if measured_s > 0.0 {
        (sent_measured - 1) as f64 / measured_s
    } else {
        0.0
    };
    // Throughput: measured messages delivered between the first measured send and the last delivery.
    let last_delivery = counters.last_delivery_ns.load(Ordering::Relaxed);
    let delivered_measured = delivery.count();
    let throughput_s = if first != u64::MAX && last_delivery > first {
        (last_delivery - first) as f64 / 1e9
    } else {
        0.0
    };
    let achieved = if throughput_s > 0.0 {
        delivered_measured as f64 / throughput_s
    } else {
        0.0
    };
    // A profile's target is its average over the measured part of the run.
    let target = match &rate {
        Rate::MsgsPerS(r) => *r,
        Rate::Unlimited => 0.0,
        Rate::Profile(_) if measured_s > 0.0 => {
            let t0 = first.saturating_sub(start_ns) as f64 / 1e9;
            // The schedule's n - 1 intervals end at the last send: compare like with like.
            rate.target_msgs_per_s(t0, t0 + measured_s)
        }
        Rate::Profile(_) => 0.0,
    };
    let mean_points = if sent_measured > 0 {
        points_measured as f64 / sent_measured as f64
    } else {
        points as f64
    };
    let interrupted = shutdown.load(Ordering::Relaxed);
    let incomplete_reason = if interrupted {
        "interrupted by SIGINT/SIGTERM".to_string()
    } else if unknown > 0 {
        format!("{unknown} messages unaccounted for (no delivery report before the flush timeout)")
    } else if failed > 0 {
        format!("{failed} messages failed")
    } else {
        String::new()
    };
    let d = delivery.summary();
    let l = lag.summary();
    let mb = message_bytes as f64 / 1e6;
    let summary = ProducerSummary {
        run_id: plan.run_id.clone(),
        role: "producer".into(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        start_utc,
        end_utc: pilot_core::contract::clock::now_utc(),
        complete: incomplete_reason.is_empty(),
        incomplete_reason,
        bootstrap_servers: conn.bootstrap.clone(),
        topic: plan.topic.clone(),
        partitions,
        partitioning: format!("{:?}", plan.partitioning),
        source: plan.source.name().into(),
        encoding: plan.encoding.to_string(),
        message_bytes: message_bytes as u64,
        points_per_message: points,
        threads: plan.threads,
        producer_id_first: plan.producer_id_base,
        rate_target_msgs_per_s: target,
        rate_profile: plan
            .rate_profile
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_default(),
        points_profile: plan
            .points_profile
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_default(),
        messages_target: plan.stop.messages.unwrap_or(0),
        duration_target_s: plan.stop.duration_s.unwrap_or(0.0),
        warmup_s: plan.warmup_s,
        acks: plan.acks.as_str().into(),
        linger_ms: plan.linger_ms,
        batch_size: batch_bytes,
        compression: plan.compression.as_str().into(),
        elapsed_s: end_ns.saturating_sub(start_ns) as f64 / 1e9,
        measured_s,
        throughput_window_s: throughput_s,
        sent_msgs: sent,
        delivered_msgs: delivered,
        failed_msgs: failed,
        unknown_msgs: unknown,
        warmup_msgs: sent_warmup,
        delivered_mb: counters.delivered_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        throughput_msgs_per_s: achieved,
        throughput_mb_per_s: achieved * mb,
        throughput_points_per_s: achieved * mean_points,
        send_rate_msgs_per_s: send_rate,
        rate_error_pct: if target > 0.0 {
            (send_rate - target) / target * 100.0
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
        errors: errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"),
        notes,
    };
    if let Some((sw, _)) = writers.as_mut() {
        sw.write(&summary)?;
    }
    Ok(RunOutput { summary, intervals })
}
