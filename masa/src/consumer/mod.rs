//! The consumer: a run is a few named stages, each in its own module.
//!
//! ```text
//! run:  connect (brokers reachable, client settings)  ->  group::join (a consumer per thread, subscribed)
//!   ->  per thread, worker::Worker: poll -> handler::MessageHandler (decode, account, latency, window, process)
//!                                   -> group::Ledger (checkpoint, store offsets) -> rejoin when asked
//!   |   on this thread, intervals::IntervalReporter: interval rows, control file, reports to the metrics topic
//!   ->  finish: threads merged, processors' output, accounting and latency files, the summary row
//! ```
//!
//! Threads and processes share partitions through the plan's group. A run ends on its message count, duration,
//! idle timeout or the injected shutdown flag (SIGINT/SIGTERM) ([`worker::StopRule`]): the open window is
//! processed, offsets committed, and the summary written (marked incomplete when interrupted, or when anything
//! is missing or rejected). [`control`] is the file through which an experiment's faults reach a running
//! consumer.

mod control;
mod finish;
mod group;
mod handler;
mod intervals;
mod watch;
mod worker;

pub use control::{apply_control, Control, ControlError};
pub use finish::{died, merge_accounting, Died};
pub use handler::{Handled, MessageHandler, Shared, ThreadOut};
pub use watch::GroupWatch;
pub use worker::{StopFlags, StopReason, StopRule};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pilot_core::contract::client::Connection;
use pilot_core::contract::clock::Clock;
use pilot_core::contract::metrics::{CsvWriter, MetricsError};
use pilot_core::contract::telemetry::TelemetryWriter;

use crate::accounting::Accounting;
use crate::config::{ConsumerPlan, ProcessorPlan};
use crate::processor::{CostDial, CostProcessor, KMeansProcessor, NoneProcessor, Processor};
use crate::report::{ConsumerInterval, ConsumerSummary};
use finish::{Ending, Merged};
use group::{GroupClock, GroupConsumer};
use intervals::IntervalReporter;
use worker::Worker;

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
    Processor(#[from] crate::processor::ProcessError),
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

/// Build the processor a processor plan names.
/// `label` names the processor's output files (unique per consumer thread).
pub fn make_processor(
    plan: &ProcessorPlan,
    label: &str,
) -> Result<Box<dyn Processor>, ConsumeError> {
    Ok(match plan {
        ProcessorPlan::None => Box::new(NoneProcessor::default()),
        ProcessorPlan::KMeans(cfg) => Box::new(KMeansProcessor::new(cfg.clone())?),
        ProcessorPlan::Tomo(cfg) => {
            Box::new(crate::reconstruct::TomoProcessor::new(cfg.clone(), label)?)
        }
        ProcessorPlan::Rolling(settings) => Box::new(crate::rolling::RollingProcessor::new(
            (**settings).clone(),
            label,
        )?),
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

/// A rolling reconstruction that steers gets its way to the source's control topic: a producer that sends each
/// command at once (a stop must not wait for a batch).
fn with_steering_sink(
    plan: &ConsumerPlan,
    conn: &Connection,
) -> Result<ConsumerPlan, ConsumeError> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mut plan = plan.clone();
    let ProcessorPlan::Rolling(settings) = &mut plan.processor else {
        return Ok(plan);
    };
    let Some(steer) = &mut settings.steer else {
        return Ok(plan);
    };
    let producer: BaseProducer = conn
        .client
        .producer_config(&conn.bootstrap)
        .set("linger.ms", "0")
        .create()
        .map_err(|e| kafka_err(conn, "creating the steering producer", e))?;
    let topic = steer.control_topic.clone();
    let producer = std::sync::Mutex::new(producer);
    steer.sink = Some(crate::rolling::SteerSink(Arc::new(move |c| {
        let text = pilot_core::contract::control::command_json(c);
        let p = producer
            .lock()
            .map_err(|_| "steering producer poisoned".to_string())?;
        p.send(BaseRecord::<(), str>::to(&topic).payload(&text))
            .map_err(|(e, _)| e.to_string())?;
        p.flush(std::time::Duration::from_secs(5))
            .map_err(|e| e.to_string())
    })));
    Ok(plan)
}

/// Consume until the plan's stop rule or `shutdown`.
pub fn run(
    plan: &ConsumerPlan,
    conn: &Connection,
    clock: Arc<dyn Clock>,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&ConsumerInterval),
) -> Result<RunOutput, ConsumeError> {
    let conn = &connect(plan, conn)?;
    let plan = &with_steering_sink(plan, conn)?;
    let dial = Arc::new(CostDial::new(plan.cost));
    let processors = (0..plan.threads)
        .map(|t| processor_for(plan, &format!("{}-{t}", plan.consumer_id), &dial))
        .collect::<Result<Vec<_>, _>>()?;
    // Reports to the metrics topic (the autoscaler's and the experiment runner's view of the group); a default
    // one that cannot be had is done without, with a note.
    let mut unavailable = None;
    let telemetry = match &plan.metrics_topic {
        Some(t) => match TelemetryWriter::new(conn, t) {
            Ok(w) => Some(w),
            Err(e) if plan.metrics_topic_implicit => {
                unavailable = Some(format!(
                    "metrics topic {t} not used ({e}): no reports, no group watch"
                ));
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let start_ns = clock.now_ns();
    let group_clock = GroupClock {
        first_assignment_ns: Arc::new(AtomicU64::new(0)),
        last_activity_ns: Arc::new(AtomicU64::new(start_ns)),
    };
    let consumers = group::join(plan, conn, &clock, &group_clock)?;
    let mut files = ResultFiles::create(plan)?;
    let shared = Shared::default();
    let rejoin = AtomicU64::new(0);
    let mut reporter = IntervalReporter::new(
        plan,
        &shared,
        &consumers,
        telemetry.as_ref(),
        &dial,
        &rejoin,
        start_ns,
    );
    if telemetry.is_some() {
        reporter.following = following(plan, conn, &clock)?;
    }
    reporter.control_notes.extend(unavailable);
    let flags = StopFlags::new(shutdown);
    let run = Running {
        plan,
        clock: clock.as_ref(),
        start_ns,
        session_s: group::session_timeout_s(plan, conn),
        start_utc: pilot_core::contract::clock::now_utc(),
        shared: &shared,
        group_clock: &group_clock,
        rejoin: &rejoin,
        flags: &flags,
    };
    let (outs, intervals) =
        run.consume(&consumers, processors, &mut reporter, &mut files, progress);
    if let Some(t) = &telemetry {
        if let Err(e) = t.flush(Duration::from_secs(10)) {
            reporter.telemetry_errors.push(e.to_string());
        }
    }
    let notes = (reporter.control_notes, reporter.telemetry_errors);
    let (summary, accounting) = run.conclude(conn, outs, notes, &mut files)?;
    Ok(RunOutput {
        summary,
        accounting,
        intervals,
    })
}

/// The plan's client properties added to the connection's, and the brokers reached: a clear error instead of a
/// consumer that waits for nothing.
fn connect(plan: &ConsumerPlan, conn: &Connection) -> Result<Connection, ConsumeError> {
    let conn = Connection {
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
            &conn,
            "reaching the brokers",
            format!("{e}; is the broker running?"),
        )
    })?;
    Ok(conn)
}

/// The metrics topic read back, where there is one: the group's reports (who holds what, who went silent) and
/// the stream's end. A member silent for five report intervals (at least 3 s) is gone; its partitions may stay
/// unheld for the session timeout and 2 s (a broker that expires members hands them on by then) before the
/// survivors rejoin.
fn following(
    plan: &ConsumerPlan,
    conn: &Connection,
    clock: &Arc<dyn Clock>,
) -> Result<Option<intervals::Following>, ConsumeError> {
    let Some(topic) = &plan.metrics_topic else {
        return Ok(None);
    };
    let reader = pilot_core::contract::telemetry::TelemetryReader::new(conn, topic)?;
    let session_s = group::session_timeout_s(plan, conn);
    let silent_s = (5.0 * plan.interval_s).max(3.0);
    let started_unix_s = clock.now_ns() as f64 / 1e9;
    // A report counts for the end once the statistics behind its high watermarks were refreshed after it.
    let settle_s = (plan.interval_s * 1.0).clamp(0.1, 1.0) + 1.0;
    Ok(Some(intervals::Following {
        reader,
        watch: GroupWatch::new(
            &plan.group,
            silent_s,
            session_s + 2.0,
            started_unix_s,
            settle_s,
        ),
    }))
}

/// The summary and interval files of a run with a results directory.
struct ResultFiles(Option<(CsvWriter, CsvWriter)>);

impl ResultFiles {
    fn create(plan: &ConsumerPlan) -> Result<Self, ConsumeError> {
        Ok(ResultFiles(match &plan.results_dir {
            Some(d) => Some((
                CsvWriter::create(&summary_path(d, &plan.consumer_id))?,
                CsvWriter::create(&intervals_path(d, &plan.consumer_id))?,
            )),
            None => None,
        }))
    }

    fn intervals(&mut self) -> Option<&mut CsvWriter> {
        self.0.as_mut().map(|(_, w)| w)
    }

    fn write_summary(&mut self, s: &ConsumerSummary) -> Result<(), ConsumeError> {
        if let Some((w, _)) = self.0.as_mut() {
            w.write(s)?;
        }
        Ok(())
    }
}

/// A consumer thread at its end: its processor and what it kept.
type Finished = (Box<dyn Processor>, ThreadOut);

/// What the consumer threads and the interval rows share while a run goes on.
struct Running<'a> {
    plan: &'a ConsumerPlan,
    clock: &'a dyn Clock,
    start_ns: u64,
    /// The consumers' session timeout, s.
    session_s: f64,
    start_utc: String,
    shared: &'a Shared,
    group_clock: &'a GroupClock,
    rejoin: &'a AtomicU64,
    flags: &'a StopFlags<'a>,
}

impl Running<'_> {
    /// A [`Worker`] per consumer on its own thread, interval rows on this one until they are all done, then a
    /// last, leaving report: each thread's processor and what it kept, and the interval rows.
    fn consume(
        &self,
        consumers: &[GroupConsumer],
        processors: Vec<Box<dyn Processor>>,
        reporter: &mut IntervalReporter,
        files: &mut ResultFiles,
        progress: &mut dyn FnMut(&ConsumerInterval),
    ) -> (Vec<Finished>, Vec<ConsumerInterval>) {
        let rule = StopRule::new(self.plan, self.start_ns, self.session_s);
        let last_activity = &*self.group_clock.last_activity_ns;
        let shared = reporter.shared;
        std::thread::scope(|scope| {
            let handles: Vec<_> = consumers
                .iter()
                .zip(processors)
                .map(|(consumer, processor)| {
                    let worker = Worker {
                        consumer,
                        handler: MessageHandler::new(
                            processor,
                            self.plan.window,
                            self.start_ns,
                            shared,
                            last_activity,
                        ),
                        topic: &self.plan.topic,
                        clock: self.clock,
                        rejoin: self.rejoin,
                        rejoined: 0,
                        last_checkpoint_ns: self.clock.now_ns(),
                    };
                    scope.spawn(move || worker.run(&rule, self.flags, last_activity))
                })
                .collect();
            let intervals = pilot_core::contract::metrics::report_intervals(
                self.clock,
                self.start_ns,
                pilot_core::contract::config::seconds_to_ns(self.plan.interval_s),
                || handles.iter().all(|h| h.is_finished()),
                |now| {
                    reporter.follow_group(now, self.flags);
                    reporter.row(now)
                },
                files.intervals(),
                progress,
            );
            let outs = handles
                .into_iter()
                .map(|h| h.join().expect("consumer thread panicked"))
                .collect();
            // Offsets are committed: say so, so a controller counts this consumer out at once.
            reporter.report(0.0, true);
            (outs, intervals)
        })
    }
    /// The threads' results merged, the processors' output and the accounting written, and the summary row
    /// (written too): `notes` are the control file's notes and the failed metrics reports.
    fn conclude(
        self,
        conn: &Connection,
        outs: Vec<Finished>,
        (control_notes, telemetry_errors): (Vec<String>, Vec<String>),
        files: &mut ResultFiles,
    ) -> Result<(ConsumerSummary, Accounting), ConsumeError> {
        let plan = self.plan;
        let (mut processors, outs): (Vec<_>, Vec<_>) = outs.into_iter().unzip();
        let mut merged = Merged::of(&outs);
        let processor_notes = finish::finish_processors(
            &mut processors,
            plan.results_dir.as_deref(),
            &mut merged.errors,
        );
        finish::write_results(plan, &merged.accounting, &merged.e2e)?;
        let totals = merged.accounting.totals(plan.expect_messages);
        let ending = Ending {
            plan,
            conn,
            start_utc: self.start_utc,
            start_ns: self.start_ns,
            end_ns: self.clock.now_ns(),
            first_assignment_ns: self.group_clock.first_assignment_ns.load(Ordering::Relaxed),
            received_bytes: self.shared.bytes.load(Ordering::Relaxed),
            busy_ns: self.shared.busy_ns.load(Ordering::Relaxed),
            handled_msgs: self.shared.handled.load(Ordering::Relaxed),
            reasons: finish::incomplete_reasons(
                self.flags.shutdown.load(Ordering::Relaxed),
                plan.expect_messages,
                &totals,
                &merged.accounting.received_text(12),
                std::mem::take(&mut merged.errors),
            ),
            notes: finish::run_notes(
                plan,
                processor_notes,
                control_notes,
                telemetry_errors,
                &totals,
            ),
            stop_reason: self
                .flags
                .reason
                .get()
                .map(|r| r.as_str())
                .unwrap_or("unknown"),
        };
        let summary = finish::summary(ending, &merged, &totals);
        files.write_summary(&summary)?;
        Ok((summary, merged.accounting))
    }
}

#[cfg(test)]
pub(crate) fn test_plan() -> ConsumerPlan {
    use pilot_core::contract::config::Settings;
    crate::config::RawConfig {
        bootstrap_servers: Some("127.0.0.2:9092".into()),
        topic: Some("t".into()),
        ..Default::default()
    }
    .check()
    .expect("a valid plan")
}
