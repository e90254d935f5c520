//! The producer: a run is a few named stages.
//!
//! ```text
//! run:  prepare_topic (brokers reachable, topic there or created)  ->  sources built (a bad template fails
//!       before anything is sent)  ->  Layout (message size, rate, batch, partition runs)  ->  producers
//!   ->  per thread, sender::Sender: schedule (pacer) -> generate -> stamp and send -> serve delivery reports
//!   |   on this thread, intervals::IntervalTracker: interval rows and progress
//!   ->  summary: threads and delivery reports merged (Tally), rates, the summary row
//! ```
//!
//! Each thread owns a [`Source`], an rdkafka `BaseProducer` polled inline (delivery reports run on the sending
//! thread, `delivery`) and its own producer id and sequence. A message's opaque is its actual send time, so
//! the delivery callback measures produce-to-ack latency without a per-message allocation. On SIGINT/SIGTERM
//! (the injected shutdown flag) sending stops, queues are flushed, and the summary is written marked incomplete.

pub mod control;
mod delivery;
mod intervals;
mod sender;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot_core::contract::clock::Clock;
use pilot_core::contract::metrics::{CsvWriter, MetricsError};
use rdkafka::producer::{BaseProducer, Producer};

use crate::config::{ProducerPlan, SourcePlan, Target};
use crate::rate::Rate;
use crate::report::{IntervalRow, ProducerSummary};
use crate::source::{ClusterSource, Source, SourceError, StaticSource, TemplateSource};
use delivery::{Counters, DeliveryContext, Measured};
use intervals::IntervalTracker;
use sender::{Schedule, Sender, ThreadResult};
use summary::{Rates, Shape, Tally};

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
        SourcePlan::Frames(p) => Box::new(crate::frames::FrameSource::new(
            p.clone(),
            producer_id,
            plan.encoding,
        )?),
    })
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
            Ok(admin.ensure_topic(&plan.topic, n, 1)?)
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
    let mut sources = (0..plan.threads)
        .map(|t| make_source(plan, plan.producer_id_base + t))
        .collect::<Result<Vec<_>, _>>()?;
    let layout = Layout::of(plan, sources[0].as_mut());
    let producers = producers(plan, conn, &layout, &clock)?;
    let mut files = ResultFiles::create(plan)?;
    let counters = producers[0].context().counters.clone();
    let start_utc = pilot_core::contract::clock::now_utc();
    let start_ns = clock.now_ns() + 20_000_000; // a common start slightly ahead, so threads begin together
    let to_ns = pilot_core::contract::config::seconds_to_ns;
    let schedule = Schedule {
        plan,
        clock: clock.clone(),
        counters: &counters,
        shutdown,
        rate: layout.rate.clone(),
        start_ns,
        warmup_end_ns: start_ns + to_ns(plan.warmup_s),
        end_ns: plan.stop.duration_s.map(|d| start_ns + to_ns(d)),
        threads: plan.threads as u64,
        partitions,
        run: layout.run,
    };
    let link = match &plan.control_topic {
        Some(topic) => Some(control::ControlLink::open(
            conn,
            topic,
            &plan.run_id,
            plan.create_topic,
        )?),
        None => None,
    };
    let control = control::ControlState::default();
    let (results, intervals) = send(
        &schedule,
        &producers,
        &mut sources,
        &layout,
        &mut files,
        link.as_ref().map(|l| (l, &control)),
        progress,
    );
    let tally = Tally::of(&producers, &results, &counters);
    let rates = Rates::of(&tally, &layout.rate, start_ns);
    let mut notes = layout.notes;
    if let Some(topic) = &plan.control_topic {
        use std::sync::atomic::Ordering::Relaxed;
        let stopped = results.iter().find_map(|r| r.stopped_at);
        let line = format!(
            "control topic {topic}: {} commands, {} malformed messages rejected{}",
            control.received.load(Relaxed),
            control.malformed.load(Relaxed),
            stopped
                .map(|f| format!("; stopped by command before frame {f}"))
                .unwrap_or_default()
        );
        notes = [notes, line]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    let shape = Shape {
        start_utc,
        elapsed_s: clock.now_ns().saturating_sub(start_ns) as f64 / 1e9,
        bootstrap: conn.bootstrap.clone(),
        partitions,
        message_bytes: layout.message_bytes,
        points: layout.points,
        batch_bytes: layout.batch_bytes,
        notes,
    };
    let reason =
        summary::incomplete_reason(shutdown.load(std::sync::atomic::Ordering::Relaxed), &tally);
    let summary = summary::summary(plan, shape, &tally, &rates, reason);
    files.write_summary(&summary)?;
    Ok(RunOutput { summary, intervals })
}

/// What the first message says about the run: its size and points, the rate (a rate in MB/s needs the size),
/// the batch size, and how many messages go to a partition in a row.
struct Layout {
    message_bytes: usize,
    points: u64,
    rate: Rate,
    batch_bytes: u32,
    /// Messages per partition run: what fits one batch, at most 32 (enough to fill a linger's batch at thousands
    /// of messages per second; more would park small messages on one partition for seconds at low rates).
    run: u64,
    notes: String,
}

impl Layout {
    fn of(plan: &ProducerPlan, first: &mut dyn Source) -> Self {
        let notes = first.notes().join("; ");
        let message_bytes = first.next(0, 0).len();
        let batch_bytes = plan
            .batch_size
            .unwrap_or_else(|| crate::config::default_batch_bytes(message_bytes));
        Layout {
            message_bytes,
            points: first.points_per_message(),
            rate: plan.rate(message_bytes),
            batch_bytes,
            run: (batch_bytes as usize / message_bytes.max(1)).clamp(1, 32) as u64,
            notes,
        }
    }
}

/// One producer per thread, with the plan's delivery settings, sharing one set of counters.
fn producers(
    plan: &ProducerPlan,
    conn: &Connection,
    layout: &Layout,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<BaseProducer<DeliveryContext>>, ProduceError> {
    let mut cfg = conn.client.producer_config(&conn.bootstrap);
    cfg.set("acks", plan.acks.as_str())
        .set("linger.ms", plan.linger_ms.to_string())
        .set("compression.type", plan.compression.as_str())
        .set("message.timeout.ms", plan.message_timeout_ms.to_string())
        .set("batch.size", layout.batch_bytes.to_string());
    let counters = Arc::new(Counters::default());
    (0..plan.threads)
        .map(|_| {
            let ctx = DeliveryContext {
                clock: clock.clone(),
                counters: counters.clone(),
                measured: Mutex::new(Measured::default()),
            };
            cfg.create_with_context(ctx)
                .map_err(|e| kafka_err(conn, "creating producer", e))
        })
        .collect()
}

/// A [`Sender`] per producer on its own thread, interval rows on this one until they are all done.
fn send(
    schedule: &Schedule,
    producers: &[BaseProducer<DeliveryContext>],
    sources: &mut [Box<dyn Source>],
    layout: &Layout,
    files: &mut ResultFiles,
    control: Option<(&control::ControlLink, &control::ControlState)>,
    progress: &mut dyn FnMut(&IntervalRow),
) -> (Vec<ThreadResult>, Vec<IntervalRow>) {
    let plan = schedule.plan;
    let link_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The control topic's reader and answerer, until the senders are done.
        let link = control.map(|(link, state)| {
            let done = &link_done;
            scope.spawn(move || link.run(state, done))
        });
        let handles: Vec<_> = producers
            .iter()
            .zip(sources.iter_mut())
            .enumerate()
            .map(|(t, (producer, source))| {
                let sender = Sender {
                    schedule,
                    producer,
                    source: source.as_mut(),
                    t: t as u64,
                    // One thread obeys the commands (the frames source has one).
                    control: control.filter(|_| t == 0).map(|(_, state)| state),
                };
                scope.spawn(move || sender.run())
            })
            .collect();
        let points_at = |t_s: f64| match &plan.points_profile {
            Some((p, _)) => p.value_at(t_s).round().max(1.0) as u64,
            None => layout.points,
        };
        let mut tracker = IntervalTracker {
            run_id: &plan.run_id,
            counters: schedule.counters,
            start_ns: schedule.start_ns,
            last: (0, 0, 0, 0),
            last_t: schedule.start_ns,
            rate: &schedule.rate,
            points_at: &points_at,
        };
        let intervals = pilot_core::contract::metrics::report_intervals(
            schedule.clock.as_ref(),
            schedule.start_ns,
            (plan.interval_s * 1e9) as u64,
            || handles.iter().all(|h| h.is_finished()),
            |now| tracker.row(now),
            files.intervals(),
            progress,
        );
        let results = handles
            .into_iter()
            .map(|h| h.join().expect("producer thread panicked"))
            .collect();
        link_done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = link {
            h.join().expect("control thread panicked");
        }
        (results, intervals)
    })
}

/// The summary and interval files of a run with a results directory.
struct ResultFiles(Option<(CsvWriter, CsvWriter)>);

impl ResultFiles {
    fn create(plan: &ProducerPlan) -> Result<Self, ProduceError> {
        Ok(ResultFiles(match &plan.results_dir {
            Some(d) => Some((
                CsvWriter::create(&summary_path(d))?,
                CsvWriter::create(&intervals_path(d))?,
            )),
            None => None,
        }))
    }

    fn intervals(&mut self) -> Option<&mut CsvWriter> {
        self.0.as_mut().map(|(_, w)| w)
    }

    fn write_summary(&mut self, s: &ProducerSummary) -> Result<(), ProduceError> {
        if let Some((w, _)) = self.0.as_mut() {
            w.write(s)?;
        }
        Ok(())
    }
}
