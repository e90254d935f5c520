//! A pipeline run, as its stages: start the run's pilots ([`Started`]) -> its topics and the MASS and MASA
//! commands -> the processes ([`Processes::run`]: consumers first, producers once the group holds every
//! partition, the fault schedule with them) -> their ends checked -> the records collected into metrics, with the
//! pilots' start-up times and the run's provenance. The pilots are cancelled when the run is over, whatever
//! happened.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pilot_core::contract::client::Connection;
use pilot_core::contract::telemetry::{ConsumerReport, TelemetryReader};
use pilot_core::ops::fault::{FaultEvent, Placed, Registry, Role, Target};
use pilot_core::pilots::description::ProcessEnvironment;
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::record::{PilotDetails, PilotRecord};
use pilot_core::pilots::tasks::{Launched, NodeSelection, TaskResult};

use super::autoscaled::{autoscaled_consumers, Autoscaled, Consumers};
use super::collect::collect;
use super::commands::{Commands, Names};
use super::faults::{FaultOutcome, RunTargets};
use super::plan::{compute_plan, details, framework_plan, start, RunPilots};
use super::timeline::Reports;
use super::{RunError, RunOutcome};
use crate::results::RunProvenance;
use crate::spec::{Point, Scaling};

/// Run `point` once in `run_dir` with these `mass` and `masa` programs.
pub(crate) fn run(
    programs: (&Path, &Path),
    point: &Point,
    run_dir: &Path,
    shutdown: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let deadline = Instant::now() + Duration::from_secs_f64(point.layout.run_timeout_s);
    let started = Started::start(point, &run_dir.join("pilots"), shutdown)?;
    let names = Names::of(point, run_dir);
    let partitions = started.create_topics(point, &names)?;
    let broker = started.view.details[0]
        .kafka()
        .ok_or_else(|| RunError::Broker {
            what: format!("broker pilot {}", started.view.broker_id),
            message: "it runs no Kafka brokers".into(),
        })?;
    let commands = super::commands::write(point, run_dir, broker, &names, programs)?;
    let mut reports =
        TelemetryReader::new(&started.view.conn, &names.metrics_topic).map_err(|e| {
            RunError::Broker {
                what: format!("reading topic {}", names.metrics_topic),
                message: e.to_string(),
            }
        })?;
    let processes = Processes {
        point,
        run_dir,
        started: &started.view,
        names: &names,
        commands: &commands,
        partitions,
        deadline,
        shutdown,
    };
    let (producers, consumers, events) = processes.run(&mut reports);
    let faults = FaultOutcome::new(point, &started.view.registry, &events);
    let (producers, consumers) = (producers?, consumers?);
    let tail = drain(&mut reports);
    if shutdown.load(Ordering::SeqCst) {
        return Err(RunError::Interrupted(
            "the run's processes were stopped".into(),
        ));
    }
    check_ends(&producers, &consumers.tasks, &faults)?;
    faults
        .write(run_dir)
        .map_err(|e| RunError::io(&run_dir.join("faults.csv"), e))?;
    let reports = Reports {
        group: &names.group,
        reports: &tail,
    };
    let mut outcome = collect(
        point,
        run_dir,
        partitions,
        &consumers.ids,
        &consumers.decisions,
        &reports,
        &faults,
    )?;
    outcome.metrics.extend(started.startup_metrics());
    outcome.provenance = started.provenance();
    // Compute pilots first, then the broker (an error above cancels them the same way).
    drop(started.pilots);
    Ok(outcome)
}

/// The run's pilots, started: the broker pilot, the producers' compute pilot and (unless the autoscaler owns
/// them) the processing pilot; their records and details, the brokers' connection, and where every broker runs.
pub(crate) struct Started {
    /// Owned here (not shared with the process threads): cancelled when the run is over.
    pilots: RunPilots,
    view: RunView,
    /// Brokers the cluster's metadata lists (exactly the broker pilot's: the compute pilots add none).
    brokers_in_metadata: usize,
}

/// What the process threads need of the started pilots (a [`Pilot`] itself stays on the run's thread).
struct RunView {
    broker_id: String,
    /// The producers' and the processing pilot's records (what tasks are started through).
    producers: PilotRecord,
    processing: Option<PilotRecord>,
    /// Broker, producers, processing (when started).
    details: Vec<PilotDetails>,
    conn: Connection,
    registry: Registry,
}

impl Started {
    fn start(point: &Point, pilots_dir: &Path, shutdown: &AtomicBool) -> Result<Self, RunError> {
        let l = &point.layout;
        let env = ProcessEnvironment;
        let broker = start(framework_plan(point, pilots_dir, &env)?, shutdown)?;
        let broker_id = broker.id().to_string();
        let mut pilots = RunPilots {
            broker,
            producers: None,
            processing: None,
        };
        let compute = |nodes| -> Result<Pilot, RunError> {
            start(
                compute_plan(point, nodes, &broker_id, pilots_dir, &env)?,
                shutdown,
            )
        };
        pilots.producers = Some(compute(l.producer_nodes)?);
        // An autoscaled run's processing pilots are the controller's to start and stop.
        if l.scaling != Scaling::Autoscaled {
            pilots.processing = Some(compute(l.processing_nodes)?);
        }
        let registry = Registry::default();
        registry.place_brokers(pilots.broker.record());
        let details = [
            Some(&pilots.broker),
            pilots.producers.as_ref(),
            pilots.processing.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(details)
        .collect::<Result<Vec<_>, _>>()?;
        let conn = pilots.broker.connection().ok_or_else(|| RunError::Broker {
            what: format!("broker pilot {broker_id}"),
            message: "it has no connection".into(),
        })?;
        let brokers_in_metadata = admin(&conn)
            .brokers()
            .map_err(|e| RunError::Broker {
                what: "reading the brokers' metadata".into(),
                message: e.to_string(),
            })?
            .len();
        Ok(Started {
            view: RunView {
                producers: pilots
                    .producers
                    .as_ref()
                    .expect("started above")
                    .record()
                    .clone(),
                processing: pilots.processing.as_ref().map(|p| p.record().clone()),
                broker_id,
                details,
                conn,
                registry,
            },
            pilots,
            brokers_in_metadata,
        })
    }

    /// The run's topic (partitions per broker node x broker nodes) and its metrics topic; the partitions.
    fn create_topics(&self, point: &Point, names: &Names) -> Result<u32, RunError> {
        let l = &point.layout;
        let partitions = l.partitions_per_broker_node * l.broker_nodes;
        admin(&self.view.conn)
            .create_topic(&names.topic, partitions, 1)
            .map_err(|e| RunError::Broker {
                what: format!("creating topic {}", names.topic),
                message: e.to_string(),
            })?;
        // The consumers report to a metrics topic: how the runner learns that their group has formed (and what an
        // autoscaler reads), without a shared file system.
        pilot_core::contract::telemetry::ensure_topic(&self.view.conn, &names.metrics_topic)
            .map_err(|e| RunError::Broker {
                what: format!("creating topic {}", names.metrics_topic),
                message: e.to_string(),
            })?;
        Ok(partitions)
    }

    fn startup_metrics(&self) -> [(&'static str, f64); 4] {
        let startup = |i: usize| {
            self.view
                .details
                .get(i)
                .and_then(|d| d.startup_s)
                .unwrap_or(f64::NAN)
        };
        [
            ("broker_startup_s", startup(0)),
            ("brokers_in_metadata", self.brokers_in_metadata as f64),
            ("producer_pilot_startup_s", startup(1)),
            ("processing_pilot_startup_s", startup(2)),
        ]
    }

    /// Where the run ran: its resource, pilots, jobs and nodes.
    fn provenance(&self) -> RunProvenance {
        let d = &self.view.details;
        RunProvenance {
            resource: d[0].resource.clone(),
            pilots: d.iter().map(|d| d.id.clone()).collect(),
            job_ids: d
                .iter()
                .map(|d| d.job_id.clone())
                .filter(|j| !j.is_empty())
                .collect(),
            nodes: d
                .iter()
                .flat_map(|d| {
                    d.nodes
                        .iter()
                        .filter(|n| n.pilot_id == d.id)
                        .map(|n| format!("{}: {} ({})", d.id, n.name, n.address))
                        .collect::<Vec<_>>()
                })
                .collect(),
            broker: d[0]
                .kafka()
                .and_then(|k| k.broker_build.as_ref())
                .map(|b| b.name.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }
}

fn admin(conn: &Connection) -> pilot_core::contract::admin::KafkaAdmin {
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
}

/// A task's launch recorded in the registry, so the run's faults can reach it (`role:process_index`).
fn placer(registry: &Registry, role: Role, record: &PilotRecord) -> impl Fn(&Launched) + Sync {
    let record = record.clone();
    let registry = registry.clone();
    move |l: &Launched| {
        registry.place(
            Target {
                role,
                index: l.process_index as u32,
            },
            Placed {
                node: l.node.clone(),
                process: Some(l.process.clone()),
                pilot: record.clone(),
            },
        )
    }
}

/// What the producers' tasks, the consumers and the faults did.
type Ran = (
    Result<Vec<TaskResult>, RunError>,
    Result<Consumers, RunError>,
    Vec<FaultEvent>,
);

/// The processes of a run.
struct Processes<'a> {
    point: &'a Point,
    run_dir: &'a Path,
    started: &'a RunView,
    names: &'a Names,
    commands: &'a Commands,
    partitions: u32,
    deadline: Instant,
    shutdown: &'a AtomicBool,
}

impl Processes<'_> {
    /// Consumers on their own thread; once their group holds every partition the producers here and the
    /// faults' schedule on a thread of its own; then the consumers' end.
    fn run(&self, reports: &mut TelemetryReader) -> Ran {
        let stop = || self.shutdown.load(Ordering::SeqCst);
        // The consumers also stop when the producers could not start (they would wait for nothing).
        let shutdown_consumers = AtomicBool::new(false);
        let consumers_stop = || stop() || shutdown_consumers.load(Ordering::SeqCst);
        let producers_done = AtomicBool::new(false);
        let faults_stop = AtomicBool::new(false);
        let events = Mutex::new(Vec::new());
        let (producers, consumers) = std::thread::scope(|scope| {
            let consumers = scope.spawn(|| self.consumers(&consumers_stop, &producers_done));
            let wait = self
                .deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(60));
            let producers = pilot_core::contract::telemetry::wait_for_group(
                reports,
                &self.names.group,
                &self.consumer_ids(),
                self.partitions as u64,
                wait,
                &stop,
            )
            .map_err(|e| RunError::Process(e.to_string()))
            .and_then(|()| {
                // The faults' clock starts with the producers.
                scope.spawn(|| self.faults(&faults_stop, &events));
                let tasks = self.producers(&stop)?;
                // Static consumers stop themselves at the stream's end; an autoscaled group is the
                // controller's to stop once it has drained (a consumer that left on its own would be replaced).
                if self.point.layout.scaling != Scaling::Autoscaled {
                    self.announce_end();
                }
                Ok(tasks)
            });
            if producers.is_err() {
                shutdown_consumers.store(true, Ordering::SeqCst);
            }
            producers_done.store(true, Ordering::SeqCst);
            let consumers = consumers
                .join()
                .map_err(|_| RunError::Process("the consumer supervisor panicked".into()))
                .and_then(|r| r);
            faults_stop.store(true, Ordering::SeqCst);
            (producers, consumers)
        });
        (
            producers,
            consumers,
            events.into_inner().expect("fault events"),
        )
    }

    /// Tell the consumers on the metrics topic that the stream has ended: they stop once the group has consumed
    /// everything the producers delivered (their summaries' count; unknown when one left none). Not told (the
    /// broker is gone), they stop at their idle safety net.
    fn announce_end(&self) {
        let produced: Option<u64> = (0..self.point.producer_processes())
            .map(|i| {
                let dir = self.run_dir.join(format!("producer-{i}"));
                pilot_core::contract::metrics::read_csv::<mass::report::ProducerSummary>(
                    &mass::producer::summary_path(&dir),
                )
                .ok()
                .and_then(|r| r.last().map(|s| s.delivered_msgs))
            })
            .sum();
        let end = pilot_core::contract::telemetry::StreamEnd {
            version: pilot_core::contract::telemetry::REPORT_VERSION,
            group: self.names.group.clone(),
            topic: self.names.topic.clone(),
            produced_msgs: produced,
            time_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        let sent = pilot_core::contract::telemetry::TelemetryWriter::new(
            &self.started.conn,
            &self.names.metrics_topic,
        )
        .and_then(|w| {
            w.announce_end(&end)?;
            w.flush(Duration::from_secs(10))
        });
        if let Err(e) = sent {
            eprintln!("warning: the stream's end could not be announced ({e}); the consumers stop at their idle timeout");
        }
    }

    /// The consumers the group must form of: `c0`.. (static) or `a0`.. (autoscaled).
    fn consumer_ids(&self) -> Vec<String> {
        let prefix = if self.point.layout.scaling == Scaling::Autoscaled {
            "a"
        } else {
            "c"
        };
        (0..self.point.consumer_processes())
            .map(|i| format!("{prefix}{i}"))
            .collect()
    }

    /// MASA on the processing pilot's nodes until they stop, or the autoscaler's consumers.
    fn consumers(
        &self,
        stop: &(dyn Fn() -> bool + Sync),
        producers_done: &AtomicBool,
    ) -> Result<Consumers, RunError> {
        let s = self.started;
        let Some(processing) = s.processing.as_ref() else {
            return autoscaled_consumers(&Autoscaled {
                point: self.point,
                conn: &s.conn,
                broker_id: &s.broker_id,
                pilots_dir: &self.run_dir.join("pilots"),
                run_dir: self.run_dir,
                command: &self.commands.masa,
                topic: &self.names.topic,
                metrics_topic: &self.names.metrics_topic,
                group: &self.names.group,
                partitions: self.partitions,
                producers_done,
                stop,
                deadline: self.deadline,
                registry: &s.registry,
            });
        };
        let mut backend = pilot_core::pilots::pilot::task_backend(processing);
        let tasks = pilot_core::pilots::tasks::run_observed(
            &s.details[2],
            backend.as_mut(),
            NodeSelection::Own,
            self.point.layout.consumer_processes_per_node as usize,
            &self.commands.masa,
            self.deadline.saturating_duration_since(Instant::now()),
            stop,
            &placer(&s.registry, Role::Consumer, processing),
        )
        .map_err(|e| RunError::Process(format!("starting MASA: {e}")))?;
        Ok(Consumers {
            ids: self.consumer_ids(),
            tasks,
            decisions: Vec::new(),
        })
    }

    /// MASS on the producer pilot's nodes, until they finish.
    fn producers(&self, stop: &dyn Fn() -> bool) -> Result<Vec<TaskResult>, RunError> {
        let s = self.started;
        let pilot = &s.producers;
        let mut backend = pilot_core::pilots::pilot::task_backend(pilot);
        pilot_core::pilots::tasks::run_observed(
            &s.details[1],
            backend.as_mut(),
            NodeSelection::Own,
            self.point.layout.producer_processes_per_node as usize,
            &self.commands.mass,
            self.deadline.saturating_duration_since(Instant::now()),
            stop,
            &placer(&s.registry, Role::Producer, pilot),
        )
        .map_err(|e| RunError::Process(format!("starting MASS: {e}")))
    }

    /// Play the point's fault schedule until it ends or `stop` is raised.
    fn faults(&self, stop: &AtomicBool, events: &Mutex<Vec<FaultEvent>>) {
        let schedule = &self.point.faults;
        if schedule.is_empty() {
            return;
        }
        let clock = pilot_core::contract::clock::SystemClock::new();
        let mut targets = RunTargets {
            registry: self.started.registry.clone(),
            run_dir: self.run_dir,
            consumer_id_pattern: self.commands.consumer_id_pattern,
            controls: Default::default(),
        };
        pilot_core::ops::fault::run_schedule(
            schedule,
            &clock,
            pilot_core::contract::clock::Clock::now_ns(&clock),
            &mut targets,
            &|| stop.load(Ordering::SeqCst),
            &mut |e| events.lock().expect("fault events").push(e),
        );
    }
}

/// The consumers' reports since the group formed (each stopped consumer's last one included): the timeline's
/// lag, as end offsets minus positions.
fn drain(reports: &mut TelemetryReader) -> Vec<ConsumerReport> {
    let mut tail = Vec::new();
    loop {
        let got = reports.poll(Duration::from_millis(1500));
        if got.is_empty() || tail.len() > 5_000_000 {
            return tail;
        }
        tail.extend(got);
    }
}

/// Every producer ended well (or a fault explains why not), and every consumer stopped in time.
fn check_ends(
    producers: &[TaskResult],
    consumers: &[TaskResult],
    faults: &FaultOutcome,
) -> Result<(), RunError> {
    for t in producers {
        // A producer a fault killed, or one that could not deliver because a fault took the broker down, is
        // the fault's effect: its records say what it delivered.
        let hit = faults.hit(Role::Producer, t.process_index) || faults.broker_down();
        if !t.success() && !hit {
            return Err(RunError::Process(format!(
                "MASS process {} on {} failed ({}); log {}",
                t.process_index,
                t.node,
                t.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "timed out".into()),
                t.log.display()
            )));
        }
    }
    if let Some(t) = consumers.iter().find(|t| t.status.is_none()) {
        return Err(RunError::Process(format!(
            "MASA process {} on {} did not stop in time; log {}",
            t.process_index,
            t.node,
            t.log.display()
        )));
    }
    Ok(())
}
