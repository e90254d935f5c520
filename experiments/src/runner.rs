//! Running an experiment: every point's repetitions (warm-up first), each on fresh pilots, results recorded after
//! every run so an interrupted experiment resumes where it stopped.
//!
//! [`Executor`] runs one point once; [`LocalExecutor`] is the real one: a broker pilot, a producer pilot and a
//! processing pilot that extend it (through pilot-core, on the point's resource), the topic, MASA processes on
//! the processing nodes (one consumer group; producers start once the group holds every partition), MASS
//! processes on the producer nodes, then their records collected and the pilots cancelled (so the broker is
//! restarted between runs). [`run`] walks the matrix with an injected executor and clock-free progress.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pilot_core::pilots::description::{
    Environment, FrameworkKind, PilotPlan, ProcessEnvironment, RawDescription,
};
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::tasks::NodeSelection;

use crate::results::{
    environment, sha256_hex, Manifest, RunProvenance, RunStatus, Table, KEY_COLUMNS, METRICS,
};
use crate::spec::{human_duration, show, Experiment, Point, RunKind, Scaling};
use pilot_core::ops::autoscale::DecisionRow;

/// What one run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// `(metric, value)` for names in [`METRICS`].
    pub metrics: Vec<(&'static str, f64)>,
    /// Empty when every message was accounted for.
    pub incomplete_reason: String,
    /// The faults injected and what each did (empty when none).
    pub faults: String,
    pub provenance: RunProvenance,
}

/// Runs one point once in `run_dir`.
pub trait Executor {
    fn run(
        &mut self,
        point: &Point,
        run_dir: &Path,
        shutdown: &AtomicBool,
    ) -> Result<RunOutcome, String>;

    /// Before resuming in `dir`: end what an earlier, killed runner left running there (one line each).
    fn clean_up(&mut self, _dir: &Path) -> Vec<String> {
        Vec::new()
    }

    /// Just before each run: the machine's calibration measurement (see [`crate::calibration`]), or None.
    fn calibrate(&mut self) -> Option<f64> {
        None
    }
}

/// Options of [`run`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run again the runs recorded as failed or incomplete.
    pub rerun_failed: bool,
    /// The git checkout whose commit the manifest records.
    pub repo: PathBuf,
}

/// What [`run`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub ran: usize,
    pub skipped: usize,
    pub ok: usize,
    pub incomplete: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub dir: PathBuf,
}

/// The results directory of an experiment under `root`.
pub fn results_dir(root: &Path, exp: &Experiment) -> PathBuf {
    root.join(&exp.name)
}

/// Run every point of `exp` (skipping finished runs) into `root/<name>/`, calling `progress` with a line before
/// each run.
pub fn run(
    exp: &Experiment,
    root: &Path,
    executor: &mut dyn Executor,
    options: &RunOptions,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, String> {
    let dir = results_dir(root, exp);
    std::fs::create_dir_all(dir.join("runs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let csv_path = dir.join("results.csv");
    let manifest_path = dir.join("manifest.json");
    let mut table = Table::read_or_empty(&csv_path).map_err(|e| e.to_string())?;
    for line in executor.clean_up(&dir) {
        progress(&format!("cleaned up after an earlier runner: {line}"));
    }
    let file_sha = sha256_hex(exp.text.as_bytes());
    // A manifest that exists but cannot be read is not "no manifest": rewriting it would lose the guard against
    // mixing the results of a changed experiment file.
    let existing = if manifest_path.exists() {
        Some(Manifest::read(&manifest_path).map_err(|e| {
            format!(
                "{} exists but cannot be read ({e}): it guards the results in {} against a changed experiment file, so nothing runs; repair or remove it (and results.csv) first",
                manifest_path.display(),
                dir.display()
            )
        })?)
    } else if csv_path.exists() {
        return Err(format!(
            "{} holds results but no manifest.json: its provenance is lost, so nothing runs; move the directory away",
            dir.display()
        ));
    } else {
        None
    };
    let mut manifest = match existing {
        Some(m) if m.file_sha256 == file_sha => m,
        Some(m) => {
            return Err(format!(
                "{} holds results of a different version of {} (sha256 {} there, {} now): move it away or rename the experiment",
                dir.display(),
                exp.path.display(),
                &m.file_sha256[..12.min(m.file_sha256.len())],
                &file_sha[..12]
            ))
        }
        None => Manifest {
            experiment: exp.name.clone(),
            description: exp.description.clone(),
            file: exp.path.display().to_string(),
            file_sha256: file_sha,
            started_utc: pilot_core::contract::clock::now_utc(),
            ..environment(&options.repo)
        },
    };
    let mut resources: Vec<String> = exp
        .points
        .iter()
        .map(|p| p.layout.resource.clone())
        .collect();
    resources.sort();
    resources.dedup();
    manifest.resources = resources;
    manifest.complete = false;
    let copy = dir.join(crate::results::EXPERIMENT_COPY);
    pilot_core::contract::files::write_atomic(&copy, exp.text.as_bytes())
        .map_err(|e| format!("{}: {e}", copy.display()))?;
    manifest
        .write_atomic(&manifest_path)
        .map_err(|e| e.to_string())?;

    // The runs in order: per point, warm-ups then measured repetitions.
    let plan: Vec<(&Point, u32, bool)> = exp
        .points
        .iter()
        .flat_map(|p| {
            (0..exp.warmup_runs)
                .map(move |r| (p, r, true))
                .chain((0..exp.repetitions).map(move |r| (p, r, false)))
        })
        .collect();
    let todo: Vec<&(&Point, u32, bool)> = plan
        .iter()
        .filter(|(p, r, w)| match table.status(&p.id, *r, *w) {
            None => true,
            Some(RunStatus::Ok) => false,
            Some(_) => options.rerun_failed,
        })
        .collect();
    let mut summary = Summary {
        skipped: plan.len() - todo.len(),
        dir: dir.clone(),
        ..Default::default()
    };
    if summary.skipped > 0 {
        progress(&format!(
            "resuming: {} of {} runs already recorded{}",
            summary.skipped,
            plan.len(),
            if options.rerun_failed {
                ""
            } else {
                " (failed ones kept; --rerun-failed runs them again)"
            }
        ));
    }
    let mut columns: Vec<String> = KEY_COLUMNS.iter().map(|s| s.to_string()).collect();
    let mut settings: Vec<String> = exp
        .points
        .iter()
        .flat_map(|p| p.settings.keys().cloned())
        .collect();
    settings.sort();
    settings.dedup();
    columns.extend(settings);
    columns.extend(METRICS.iter().map(|s| s.to_string()));
    let started = Instant::now();
    let mut remaining_estimate: f64 = todo.iter().map(|(p, ..)| p.estimate_s()).sum();
    for (k, (point, rep, warmup)) in todo.iter().enumerate() {
        if shutdown.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Time left: the plan's estimate until a run has finished, then the pace so far.
        let left = if k == 0 {
            remaining_estimate
        } else {
            elapsed / k as f64 * (todo.len() - k) as f64
        };
        progress(&format!(
            "[{}/{}] point {}/{} {} {} {}: {} elapsed, about {} left",
            k + 1,
            todo.len(),
            point.index + 1,
            exp.points.len(),
            point.label(),
            if *warmup { "warm-up" } else { "repetition" },
            rep + 1,
            human_duration(elapsed),
            human_duration(left)
        ));
        let run_dir = dir.join("runs").join(format!(
            "{}-{}{}",
            point.id,
            if *warmup { "w" } else { "r" },
            rep
        ));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let calibration = executor.calibrate();
        let start_utc = pilot_core::contract::clock::now_utc();
        let t = Instant::now();
        let result = executor.run(point, &run_dir, shutdown);
        let end_utc = pilot_core::contract::clock::now_utc();
        remaining_estimate -= point.estimate_s();
        let mut row: BTreeMap<String, String> = BTreeMap::new();
        row.insert("experiment".into(), exp.name.clone());
        row.insert("point".into(), point.id.clone());
        row.insert("point_index".into(), point.index.to_string());
        row.insert("repetition".into(), rep.to_string());
        row.insert("warmup".into(), warmup.to_string());
        row.insert("start_utc".into(), start_utc.clone());
        row.insert("end_utc".into(), end_utc.clone());
        for (key, v) in &point.settings {
            row.insert(key.clone(), show(v));
        }
        let interrupted_now = shutdown.load(Ordering::SeqCst);
        let (status, error) = match &result {
            Ok(o) if o.incomplete_reason.is_empty() && !interrupted_now => {
                (RunStatus::Ok, String::new())
            }
            Ok(o) if interrupted_now => (
                RunStatus::Failed,
                format!("interrupted; {}", o.incomplete_reason),
            ),
            Ok(o) => (RunStatus::Incomplete, o.incomplete_reason.clone()),
            Err(e) => (RunStatus::Failed, e.clone()),
        };
        row.insert("status".into(), status.as_str().into());
        row.insert("error".into(), error.clone());
        if let Ok(o) = &result {
            row.insert("faults".into(), o.faults.clone());
        }
        row.insert(
            "run_wall_s".into(),
            format!("{:.3}", t.elapsed().as_secs_f64()),
        );
        if let Some(c) = calibration {
            row.insert(crate::calibration::METRIC.into(), format!("{c:.1}"));
        }
        if let Ok(o) = &result {
            for (m, v) in &o.metrics {
                row.insert(m.to_string(), format!("{v}"));
            }
            let mut prov = o.provenance.clone();
            prov.point = point.id.clone();
            prov.repetition = *rep;
            prov.warmup = *warmup;
            prov.start_utc = start_utc;
            prov.end_utc = end_utc;
            manifest.runs.retain(|r| {
                !(r.point == prov.point
                    && r.repetition == prov.repetition
                    && r.warmup == prov.warmup)
            });
            manifest.runs.push(prov);
        }
        table.upsert(row, &columns);
        table.write_atomic(&csv_path).map_err(|e| e.to_string())?;
        manifest
            .write_atomic(&manifest_path)
            .map_err(|e| e.to_string())?;
        summary.ran += 1;
        match status {
            RunStatus::Ok => summary.ok += 1,
            RunStatus::Incomplete => summary.incomplete += 1,
            RunStatus::Failed => summary.failed += 1,
        }
        if status != RunStatus::Ok {
            progress(&format!("  run {}: {error}", status.as_str()));
        }
    }
    let all_done = plan
        .iter()
        .all(|(p, r, w)| table.status(&p.id, *r, *w) == Some(RunStatus::Ok));
    manifest.complete = all_done;
    manifest.finished_utc = pilot_core::contract::clock::now_utc();
    manifest
        .write_atomic(&manifest_path)
        .map_err(|e| e.to_string())?;
    Ok(summary)
}

/// The real executor: pilots through pilot-core, MASS and MASA as processes on their nodes.
pub struct LocalExecutor {
    pub mass_bin: PathBuf,
    pub masa_bin: PathBuf,
}

impl LocalExecutor {
    /// Find `mass` and `masa` beside this program, or on PATH.
    pub fn locate() -> Result<Self, String> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let find = |name: &str| -> Result<PathBuf, String> {
            let dirs = beside
                .iter()
                .cloned()
                .chain(
                    beside
                        .iter()
                        .filter_map(|d| d.parent().map(Path::to_path_buf)),
                )
                .chain(std::env::split_paths(&path_var));
            for d in dirs {
                let p = d.join(name);
                if p.is_file() {
                    return Ok(p);
                }
            }
            Err(format!(
                "`{name}` was not found beside {} or on PATH: build it with `cargo build --release -p {name}`",
                beside.as_ref().map(|b| b.display().to_string()).unwrap_or_default()
            ))
        };
        Ok(LocalExecutor {
            mass_bin: find("mass")?,
            masa_bin: find("masa")?,
        })
    }
}

/// The pilots of one pipeline run, by role; cancelled compute pilots first, then the broker, whatever happened.
pub struct RunPilots {
    pub broker: Pilot,
    pub producers: Option<Pilot>,
    pub processing: Option<Pilot>,
}

impl Drop for RunPilots {
    fn drop(&mut self) {
        for p in [self.processing.as_mut(), self.producers.as_mut()]
            .into_iter()
            .flatten()
        {
            p.cancel();
        }
        self.broker.cancel();
    }
}

/// Walltime of a run's pilots: the run's timeout and five minutes.
fn walltime_min(point: &Point) -> u32 {
    (point.layout.run_timeout_s / 60.0).ceil() as u32 + 5
}

/// The plan of a run's framework pilot: for pipeline runs the broker pilot (`broker_nodes` of the layout's
/// distribution), for start-up runs the layout's framework on `framework_nodes`.
pub fn framework_plan(
    point: &Point,
    dir: &Path,
    env: &dyn Environment,
) -> Result<PilotPlan, String> {
    let l = &point.layout;
    let (framework, nodes) = match l.kind {
        RunKind::Pipeline => (FrameworkKind::Kafka, l.broker_nodes),
        RunKind::Startup => (l.framework, l.framework_nodes),
    };
    RawDescription {
        resource: Some(l.resource.clone()),
        framework: Some(framework),
        nodes: Some(nodes),
        walltime_min: Some(walltime_min(point)),
        working_directory: Some(dir.to_path_buf()),
        kafka: (framework == FrameworkKind::Kafka).then(|| {
            pilot_core::pilots::description::RawKafka {
                distribution: Some(l.distribution.clone()),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
    .validate("experiment", env)
    .map_err(|e| e.to_string())
}

/// The plan of a framework-free compute pilot of `nodes` nodes whose tasks use the brokers of `broker_pilot`:
/// where a run's MASS or MASA processes go (they never become brokers, whatever the distribution).
pub fn compute_plan(
    point: &Point,
    nodes: u32,
    broker_pilot: &str,
    dir: &Path,
    env: &dyn Environment,
) -> Result<PilotPlan, String> {
    RawDescription {
        resource: Some(point.layout.resource.clone()),
        framework: Some(FrameworkKind::None),
        nodes: Some(nodes),
        walltime_min: Some(walltime_min(point)),
        working_directory: Some(dir.to_path_buf()),
        broker_pilot: Some(broker_pilot.to_string()),
        ..Default::default()
    }
    .validate("experiment", env)
    .map_err(|e| e.to_string())
}

fn start(plan: PilotPlan, shutdown: &AtomicBool) -> Result<Pilot, String> {
    Pilot::create(plan, &|| shutdown.load(Ordering::SeqCst)).map_err(|e| e.to_string())
}

/// `settings` with `recommended` librdkafka properties added to its `kafka` table where it has none of its own.
fn with_kafka_defaults(
    settings: &toml::Table,
    recommended: pilot_core::contract::client::KafkaProperties,
) -> toml::Table {
    let mut out = settings.clone();
    let kafka = out
        .entry("kafka")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = kafka {
        for (k, v) in recommended {
            t.entry(k).or_insert(toml::Value::String(v));
        }
    }
    out
}

fn toml_file(path: &Path, table: &toml::Table) -> Result<(), String> {
    std::fs::write(path, toml::to_string(table).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Executor for LocalExecutor {
    fn calibrate(&mut self) -> Option<f64> {
        Some(crate::calibration::kmeans_updates_per_s(
            Duration::from_millis(300),
        ))
    }

    fn clean_up(&mut self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(runs) = std::fs::read_dir(dir.join("runs")) else {
            return out;
        };
        for run in runs.flatten() {
            let store = pilot_core::pilots::store::Store::new(run.path().join("pilots"));
            match pilot_core::pilots::lifecycle::clean_up_orphans(&store, Duration::from_secs(30)) {
                Ok(lines) => out.extend(lines),
                Err(e) => out.push(format!("{}: {e}", store.root().display())),
            }
        }
        out
    }

    fn run(
        &mut self,
        point: &Point,
        run_dir: &Path,
        shutdown: &AtomicBool,
    ) -> Result<RunOutcome, String> {
        let l = &point.layout;
        let deadline = Instant::now() + Duration::from_secs_f64(l.run_timeout_s);
        let pilots_dir = run_dir.join("pilots");
        if l.kind == RunKind::Startup {
            return startup_run(point, &pilots_dir, shutdown);
        }
        let env = ProcessEnvironment;
        let broker = start(framework_plan(point, &pilots_dir, &env)?, shutdown)?;
        let broker_id = broker.id().to_string();
        let mut pilots = RunPilots {
            broker,
            producers: None,
            processing: None,
        };
        pilots.producers = Some(start(
            compute_plan(point, l.producer_nodes, &broker_id, &pilots_dir, &env)?,
            shutdown,
        )?);
        // An autoscaled run's processing pilots are the controller's to start and stop.
        let autoscaled = l.scaling == Scaling::Autoscaled;
        if !autoscaled {
            pilots.processing = Some(start(
                compute_plan(point, l.processing_nodes, &broker_id, &pilots_dir, &env)?,
                shutdown,
            )?);
        }
        // Where every broker, producer and consumer runs, for the faults this point injects.
        let registry = pilot_core::ops::fault::Registry::default();
        registry.place_brokers(pilots.broker.record());
        let producers_pilot = pilots.producers.as_ref().expect("started above");
        let details: Vec<_> = [
            Some(&pilots.broker),
            Some(producers_pilot),
            pilots.processing.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.details().cloned().ok_or("a running pilot has no details"))
        .collect::<Result<_, _>>()?;
        let conn = pilots
            .broker
            .connection()
            .ok_or("the broker pilot has no connection")?;
        // The cluster as clients see it: exactly the broker pilot's brokers (the compute pilots add none).
        let brokers_in_metadata = pilot_core::contract::admin::KafkaAdmin::new(
            &conn.bootstrap,
            &conn.client,
            Duration::from_secs(10),
        )
        .brokers()
        .map_err(|e| format!("reading the brokers' metadata: {e}"))?
        .len();
        let partitions = l.partitions_per_broker_node * l.broker_nodes;
        let topic = format!("exp-{}", point.id);
        pilot_core::contract::admin::KafkaAdmin::new(
            &conn.bootstrap,
            &conn.client,
            Duration::from_secs(10),
        )
        .create_topic(&topic, partitions, 1)
        .map_err(|e| format!("creating topic {topic}: {e}"))?;
        let mass_toml = run_dir.join("mass.toml");
        let masa_toml = run_dir.join("masa.toml");
        // The broker's recommended client properties go to MASS and MASA explicitly (they are handed brokers by
        // address, which says nothing about the broker): tansu needs consumers' fetch.wait.max.ms=10, without
        // which every fetch is held about 250 ms. The point's own `kafka` entries win.
        let mut producer_properties = conn.client.producer_properties();
        // Autoscaled runs and runs with faults move partitions between consumers mid-stream.
        if (autoscaled || !point.faults.is_empty()) && l.distribution == "tansu" {
            // tansu 0.6.0 answers a fetch from an offset inside a record batch with the batches after it: a
            // consumer that takes over a partition at a committed offset in the middle of a batch would never see
            // the rest of that batch. With one message per batch every offset starts one. (Apache Kafka returns
            // the whole batch and the client skips what it has.) The point's own entry wins.
            producer_properties.insert("batch.num.messages".into(), "1".into());
        }
        toml_file(
            &mass_toml,
            &with_kafka_defaults(&point.mass, producer_properties),
        )?;
        let mut consumer_properties = conn.client.consumer_properties();
        if !point.faults.is_empty() {
            // A dead member's partitions move on once its session times out: seconds, not librdkafka's 45.
            consumer_properties.insert("session.timeout.ms".into(), FAULT_SESSION_MS.to_string());
            consumer_properties.insert("heartbeat.interval.ms".into(), "1000".into());
            // A killed consumer's uncommitted messages come again: commit every second, not every five.
            consumer_properties.insert("auto.commit.interval.ms".into(), "1000".into());
        }
        let masa_table = with_kafka_defaults(&point.masa, consumer_properties);
        toml_file(&masa_toml, &masa_table)?;
        let session_s = masa_table
            .get("kafka")
            .and_then(|k| k.get("session.timeout.ms"))
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(45_000.0)
            / 1e3;
        let schedule = fault_schedule(point, session_s);
        // The consumers report to a metrics topic: how the runner learns that their group has formed (and what an
        // autoscaler reads), without a shared file system.
        let metrics_topic = format!("exp-{}-metrics", point.id);
        pilot_core::contract::telemetry::ensure_topic(&conn, &metrics_topic)
            .map_err(|e| format!("creating topic {metrics_topic}: {e}"))?;
        let mut reports =
            pilot_core::contract::telemetry::TelemetryReader::new(&conn, &metrics_topic)
                .map_err(|e| format!("reading topic {metrics_topic}: {e}"))?;
        let group = format!("exp-{}", point.id);
        let run_id = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let s = |v: &str| v.to_string();
        let masa_cmd: Vec<String> = vec![
            self.masa_bin.display().to_string(),
            s("run"),
            masa_toml.display().to_string(),
            s("--bootstrap-servers"),
            s("{bootstrap}"),
            s("--topic"),
            topic.clone(),
            s("--group"),
            group.clone(),
            s("--metrics-topic"),
            metrics_topic.clone(),
            s("--consumer-id"),
            s(if autoscaled {
                "a{consumer_index}"
            } else {
                "c{process_index}"
            }),
            s("--idle-timeout-s"),
            // Autoscaled consumers are stopped by the controller once everything is consumed; a quiet spell
            // must not end them.
            if autoscaled {
                l.run_timeout_s.to_string()
            } else {
                l.consumer_idle_s.to_string()
            },
            s("--start-timeout-s"),
            s("60"),
            s("--interval-s"),
            s("0.2"),
            s("--run-id"),
            run_id.clone(),
            s("--quiet"),
            s("--results-dir"),
            run_dir.display().to_string(),
        ];
        let mut masa_cmd = masa_cmd;
        let consumer_id_pattern = if autoscaled {
            "a{consumer_index}"
        } else {
            "c{process_index}"
        };
        if !point.faults.is_empty() {
            masa_cmd.extend([
                s("--checkpoint-accounting"),
                s("true"),
                s("--control-file"),
                control_file(run_dir, consumer_id_pattern)
                    .display()
                    .to_string(),
            ]);
        }
        let mass_cmd: Vec<String> = vec![
            self.mass_bin.display().to_string(),
            s("run"),
            mass_toml.display().to_string(),
            s("--bootstrap-servers"),
            s("{bootstrap}"),
            s("--topic"),
            topic.clone(),
            s("--producer-id-base"),
            s("{process_index}000"),
            s("--run-id"),
            run_id.clone(),
            s("--quiet"),
            s("--results-dir"),
            run_dir
                .join("producer-{process_index}")
                .display()
                .to_string(),
        ];
        let timeout = deadline.saturating_duration_since(Instant::now());
        let consumers_details = details.get(2).cloned();
        let mut consumer_backend = pilots
            .processing
            .as_ref()
            .map(|p| pilot_core::pilots::pilot::task_backend(p.record()));
        let mut producer_backend =
            pilot_core::pilots::pilot::task_backend(producers_pilot.record());
        let per_node = l.consumer_processes_per_node as usize;
        let resource = details[0].resource.clone();
        let stop = || shutdown.load(Ordering::SeqCst);
        // The consumers also stop when the producers could not start (they would wait for nothing).
        let shutdown_consumers = AtomicBool::new(false);
        let consumers_stop = || stop() || shutdown_consumers.load(Ordering::SeqCst);
        let producers_done = AtomicBool::new(false);
        let faults_stop = AtomicBool::new(false);
        let fault_events: std::sync::Mutex<Vec<pilot_core::ops::fault::FaultEvent>> =
            std::sync::Mutex::new(Vec::new());
        let place = |role: pilot_core::ops::fault::Role, pilot: &Pilot| {
            let record = pilot.record().clone();
            let registry = registry.clone();
            move |l: &pilot_core::pilots::tasks::Launched| {
                registry.place(
                    pilot_core::ops::fault::Target {
                        role,
                        index: l.process_index as u32,
                    },
                    pilot_core::ops::fault::Placed {
                        node: l.node.clone(),
                        process: Some(l.process.clone()),
                        pilot: record.clone(),
                    },
                )
            }
        };
        let place_consumer = pilots
            .processing
            .as_ref()
            .map(|p| place(pilot_core::ops::fault::Role::Consumer, p));
        let place_producer = place(pilot_core::ops::fault::Role::Producer, producers_pilot);
        let (producers, consumers) = std::thread::scope(|scope| {
            let consumers = scope.spawn(|| -> Result<Consumers, String> {
                match (&consumers_details, consumer_backend.as_mut()) {
                    (Some(d), Some(backend)) => pilot_core::pilots::tasks::run_observed(
                        d,
                        backend.as_mut(),
                        NodeSelection::Own,
                        per_node,
                        &masa_cmd,
                        timeout,
                        &consumers_stop,
                        place_consumer.as_ref().expect("a processing pilot"),
                    )
                    .map(|tasks| Consumers {
                        ids: (0..point.consumer_processes())
                            .map(|i| format!("c{i}"))
                            .collect(),
                        tasks,
                        decisions: Vec::new(),
                    })
                    .map_err(|e| format!("starting MASA: {e}")),
                    _ => autoscaled_consumers(&Autoscaled {
                        point,
                        conn: &conn,
                        broker_id: &broker_id,
                        pilots_dir: &pilots_dir,
                        run_dir,
                        command: &masa_cmd,
                        topic: &topic,
                        metrics_topic: &metrics_topic,
                        group: &group,
                        partitions,
                        producers_done: &producers_done,
                        stop: &consumers_stop,
                        deadline,
                        registry: &registry,
                    }),
                }
            });
            let ids: Vec<String> = (0..point.consumer_processes())
                .map(|i| {
                    if autoscaled {
                        format!("a{i}")
                    } else {
                        format!("c{i}")
                    }
                })
                .collect();
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(60));
            let producers = pilot_core::contract::telemetry::wait_for_group(
                &mut reports,
                &group,
                &ids,
                partitions as u64,
                wait,
                &stop,
            )
            .and_then(|()| {
                // The faults' clock starts with the producers.
                if !schedule.is_empty() {
                    let (registry, faults_stop, fault_events, schedule) =
                        (registry.clone(), &faults_stop, &fault_events, &schedule);
                    scope.spawn(move || {
                        let clock = pilot_core::contract::clock::SystemClock::new();
                        let mut targets = RunTargets {
                            registry,
                            run_dir,
                            consumer_id_pattern,
                            controls: BTreeMap::new(),
                        };
                        pilot_core::ops::fault::run_schedule(
                            schedule,
                            &clock,
                            pilot_core::contract::clock::Clock::now_ns(&clock),
                            &mut targets,
                            &|| faults_stop.load(Ordering::SeqCst),
                            &mut |e| fault_events.lock().expect("fault events").push(e),
                        );
                    });
                }
                pilot_core::pilots::tasks::run_observed(
                    &details[1],
                    producer_backend.as_mut(),
                    NodeSelection::Own,
                    l.producer_processes_per_node as usize,
                    &mass_cmd,
                    deadline.saturating_duration_since(Instant::now()),
                    &stop,
                    &place_producer,
                )
                .map_err(|e| format!("starting MASS: {e}"))
            });
            if producers.is_err() {
                shutdown_consumers.store(true, Ordering::SeqCst);
            }
            producers_done.store(true, Ordering::SeqCst);
            let consumers = consumers
                .join()
                .map_err(|_| "the consumer supervisor panicked".to_string())
                .and_then(|r| r);
            faults_stop.store(true, Ordering::SeqCst);
            (producers, consumers)
        });
        let fault_events = fault_events.into_inner().expect("fault events");
        let faults = FaultOutcome::new(point, &registry, &fault_events);
        let (producers, consumers) = (producers?, consumers?);
        // The consumers' reports since the group formed (each stopped consumer's last one included): the
        // timeline's lag, as end offsets minus positions.
        let mut tail = Vec::new();
        loop {
            let got = reports.poll(Duration::from_millis(1500));
            if got.is_empty() || tail.len() > 5_000_000 {
                break;
            }
            tail.extend(got);
        }
        if shutdown.load(Ordering::SeqCst) {
            return Err("interrupted: the run's processes were stopped".into());
        }
        for t in &producers {
            // A producer a fault killed, or one that could not deliver because a fault took the broker down, is
            // the fault's effect: its records say what it delivered.
            let hit = faults.hit(pilot_core::ops::fault::Role::Producer, t.process_index)
                || faults.broker_down();
            if !t.success() && !hit {
                return Err(format!(
                    "MASS process {} on {} failed ({}); log {}",
                    t.process_index,
                    t.node,
                    t.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "timed out".into()),
                    t.log.display()
                ));
            }
        }
        for t in &consumers.tasks {
            if t.status.is_none() {
                return Err(format!(
                    "MASA process {} on {} did not stop in time; log {}",
                    t.process_index,
                    t.node,
                    t.log.display()
                ));
            }
        }
        faults
            .write(run_dir)
            .map_err(|e| format!("{}: {e}", run_dir.join("faults.csv").display()))?;
        let mut outcome = collect(
            point,
            run_dir,
            partitions,
            &consumers.ids,
            &consumers.decisions,
            &Reports {
                group: &group,
                reports: &tail,
            },
            &faults,
        )?;
        outcome.metrics.extend([
            ("broker_startup_s", details[0].startup_s.unwrap_or(f64::NAN)),
            ("brokers_in_metadata", brokers_in_metadata as f64),
            (
                "producer_pilot_startup_s",
                details[1].startup_s.unwrap_or(f64::NAN),
            ),
            (
                "processing_pilot_startup_s",
                details.get(2).and_then(|d| d.startup_s).unwrap_or(f64::NAN),
            ),
        ]);
        outcome.provenance = RunProvenance {
            resource,
            pilots: details.iter().map(|d| d.id.clone()).collect(),
            job_ids: details
                .iter()
                .map(|d| d.job_id.clone())
                .filter(|j| !j.is_empty())
                .collect(),
            nodes: details
                .iter()
                .flat_map(|d| {
                    d.nodes
                        .iter()
                        .filter(|n| n.pilot_id == d.id)
                        .map(|n| format!("{}: {} ({})", d.id, n.name, n.address))
                        .collect::<Vec<_>>()
                })
                .collect(),
            ..Default::default()
        };
        drop(pilots);
        Ok(outcome)
    }
}

/// A consumer's control file (`pattern` is its id, placeholders and all: MASA's `--control-file`).
fn control_file(run_dir: &Path, pattern: &str) -> PathBuf {
    run_dir.join(format!("control-{pattern}.toml"))
}

/// librdkafka's session timeout in runs with faults (unless the point sets one): a dead member's partitions
/// move on after this many ms.
const FAULT_SESSION_MS: u32 = 6000;

/// A point's faults, and on tansu after each that takes consumers down a `rejoin` of the survivors (see
/// [`pilot_core::ops::fault::FaultAction::Rejoin`]) once the broker should have dropped the dead member: 1, 2 and 3
/// session timeouts and 2 s later.
fn fault_schedule(point: &Point, session_s: f64) -> Vec<pilot_core::ops::fault::Fault> {
    use pilot_core::ops::fault::{FaultAction, Role};
    let mut out = point.faults.clone();
    if point.layout.distribution == "tansu" {
        for f in &point.faults {
            let downs = matches!(
                f.action,
                FaultAction::Kill
                    | FaultAction::Cancel
                    | FaultAction::Scancel
                    | FaultAction::NodeDown
            );
            if downs && f.target.role == Role::Consumer {
                // tansu drops a dead member only when a request of the group finds its session expired; a
                // rejoin before that keeps the dead leader, so the survivors are told three times.
                for k in 1..=3 {
                    out.push(pilot_core::ops::fault::Fault {
                        at_s: f.at_s + k as f64 * session_s + 2.0,
                        action: FaultAction::Rejoin,
                        ..f.clone()
                    });
                }
            }
        }
    }
    out
}

/// What a consumer's control file says.
#[derive(Default, Clone, Copy)]
struct ControlState {
    cost_ms_per_message: Option<f64>,
    rejoin: u64,
}

/// The faults' targets in a run: the registry's, and `slow` and `rejoin` through the consumers' control files.
struct RunTargets<'a> {
    registry: pilot_core::ops::fault::Registry,
    run_dir: &'a Path,
    consumer_id_pattern: &'a str,
    controls: BTreeMap<u32, ControlState>,
}

impl RunTargets<'_> {
    fn write_control(
        &mut self,
        index: u32,
        change: impl Fn(&mut ControlState),
    ) -> Result<PathBuf, String> {
        let state = self.controls.entry(index).or_default();
        change(state);
        let id = self
            .consumer_id_pattern
            .replace("{process_index}", &index.to_string())
            .replace("{consumer_index}", &index.to_string());
        let path = control_file(self.run_dir, &id);
        let mut text = format!("rejoin = {}\n", state.rejoin);
        if let Some(ms) = state.cost_ms_per_message {
            text.push_str(&format!("cost_ms_per_message = {ms}\n"));
        }
        pilot_core::contract::files::write_atomic(&path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl pilot_core::ops::fault::FaultTargets for RunTargets<'_> {
    fn apply(
        &mut self,
        target: &pilot_core::ops::fault::Target,
        step: pilot_core::ops::fault::Step,
        reason: &str,
    ) -> Result<String, String> {
        match step {
            pilot_core::ops::fault::Step::Slow(ms) => {
                let path =
                    self.write_control(target.index, |c| c.cost_ms_per_message = Some(ms))?;
                Ok(format!("{ms} ms per message via {}", path.display()))
            }
            pilot_core::ops::fault::Step::Rejoin => {
                let mut told = Vec::new();
                for (t, p) in self.registry.all() {
                    let alive = p.process.as_ref().is_some_and(|r| {
                        pilot_core::pilots::process::same_process_alive(r.pid, r.start_ticks)
                    }) || !matches!(
                        p.pilot.plan.resource,
                        pilot_core::pilots::description::ResourceUrl::Local
                    );
                    if t.role == pilot_core::ops::fault::Role::Consumer && t != *target && alive {
                        self.write_control(t.index, |c| c.rejoin += 1)?;
                        told.push(t.to_string());
                    }
                }
                Ok(format!(
                    "told {} to rejoin",
                    if told.is_empty() {
                        "nobody".into()
                    } else {
                        told.join(", ")
                    }
                ))
            }
            step => self.registry.apply(target, step, reason),
        }
    }
}

/// What the faults of a run did: the events, and which targets they took down (a kill hits its process; a
/// cancel, scancel or node-down everything on the same pilot).
struct FaultOutcome {
    events: Vec<pilot_core::ops::fault::FaultEvent>,
    hit: std::collections::BTreeSet<pilot_core::ops::fault::Target>,
    /// Faults planned but never reached (the run ended first).
    unreached: Vec<String>,
}

impl FaultOutcome {
    fn new(
        point: &Point,
        registry: &pilot_core::ops::fault::Registry,
        events: &[pilot_core::ops::fault::FaultEvent],
    ) -> Self {
        use pilot_core::ops::fault::Target;
        let mut hit = std::collections::BTreeSet::new();
        for e in events.iter().filter(|e| e.outcome == "applied") {
            let Ok(t) = e.target.parse::<Target>() else {
                continue;
            };
            match e.step.as_str() {
                "kill" => {
                    hit.insert(t);
                }
                "cancel" | "scancel" | "node-down" => {
                    hit.insert(t);
                    if let Some(p) = registry.get(&t) {
                        hit.extend(registry.on_pilot(&p.pilot.id).into_iter().map(|(t, _)| t));
                    }
                }
                _ => {}
            }
        }
        let unreached = point
            .faults
            .iter()
            .filter(|f| {
                !events
                    .iter()
                    .any(|e| e.target == f.target.to_string() && e.planned_s == f.at_s)
            })
            .map(|f| f.describe())
            .collect();
        FaultOutcome {
            events: events.to_vec(),
            hit,
            unreached,
        }
    }

    fn hit(&self, role: pilot_core::ops::fault::Role, index: usize) -> bool {
        self.hit.contains(&pilot_core::ops::fault::Target {
            role,
            index: index as u32,
        })
    }

    fn broker_down(&self) -> bool {
        self.hit
            .iter()
            .any(|t| t.role == pilot_core::ops::fault::Role::Broker)
    }

    /// `faults.csv` in the run's directory (only when the point has faults).
    fn write(&self, run_dir: &Path) -> Result<(), pilot_core::contract::metrics::MetricsError> {
        if self.events.is_empty() && self.unreached.is_empty() {
            return Ok(());
        }
        let mut w = pilot_core::contract::metrics::CsvWriter::create(&run_dir.join("faults.csv"))?;
        for e in &self.events {
            w.write(e)?;
        }
        Ok(())
    }

    /// The results' `faults` column: each step as it happened, then what never happened.
    fn text(&self) -> String {
        let mut parts: Vec<String> = self
            .events
            .iter()
            .map(|e| format!("{:.1} s: {}", e.t_s, e.summary()))
            .collect();
        parts.extend(
            self.unreached
                .iter()
                .map(|f| format!("{f}: not reached (the run ended first)")),
        );
        parts.join("; ")
    }
}

/// The consumers of a run: their ids, how their processes ended (static runs; the controller reaps its own),
/// and the controller's decisions (autoscaled runs).
struct Consumers {
    ids: Vec<String>,
    tasks: Vec<pilot_core::pilots::tasks::TaskResult>,
    decisions: Vec<DecisionRow>,
}

/// What an autoscaled run's controller needs.
struct Autoscaled<'a> {
    point: &'a Point,
    conn: &'a pilot_core::contract::client::Connection,
    broker_id: &'a str,
    pilots_dir: &'a Path,
    run_dir: &'a Path,
    command: &'a [String],
    topic: &'a str,
    metrics_topic: &'a str,
    group: &'a str,
    partitions: u32,
    /// Set once every producer has finished.
    producers_done: &'a AtomicBool,
    stop: &'a (dyn Fn() -> bool + Sync),
    deadline: Instant,
    registry: &'a pilot_core::ops::fault::Registry,
}

/// Run `pilot autoscale`'s controller for a run: 1-node processing pilots running MASA, started and stopped by
/// the policy, until the producers are done and the group has consumed everything they wrote (then every
/// consumer is stopped gracefully). Decisions go to `decisions.csv` in the run's directory.
fn autoscaled_consumers(a: &Autoscaled) -> Result<Consumers, String> {
    use pilot_core::ops::autoscale::{Controller, KafkaReportSource, PilotActuator};
    let plan = &a.point.autoscale;
    let mut actuator = PilotActuator::new(
        &a.point.layout.resource,
        a.pilots_dir.to_path_buf(),
        a.broker_id,
        walltime_min(a.point),
        a.command.to_vec(),
    )
    .map_err(|e| format!("autoscale: {e}"))?
    .with_registry(a.registry.clone());
    let mut source = KafkaReportSource::new(a.conn, a.metrics_topic, a.topic, a.partitions)
        .map_err(|e| format!("autoscale: {e}"))?;
    let mut controller = Controller::new(plan, a.group, a.partitions);
    let path = a.run_dir.join("decisions.csv");
    let mut csv = pilot_core::contract::metrics::CsvWriter::create(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows: Vec<DecisionRow> = Vec::new();
    let mut write_error = None;
    // Drained: after the producers finished, two decisions in a row saw no lag against end offsets that
    // cover everything produced (a fresh topic's end offsets count its messages).
    let drained_rows = std::sync::atomic::AtomicU32::new(0);
    let produced = std::sync::atomic::AtomicI64::new(-1);
    let clock = pilot_core::contract::clock::SystemClock::new();
    let stop =
        || (a.stop)() || drained_rows.load(Ordering::SeqCst) >= 2 || Instant::now() >= a.deadline;
    let result = pilot_core::ops::autoscale::run(
        &mut controller,
        &mut source,
        &mut actuator,
        &clock,
        &stop,
        &mut |row| {
            if a.producers_done.load(Ordering::SeqCst) && produced.load(Ordering::SeqCst) < 0 {
                produced.store(produced_msgs(a.point, a.run_dir) as i64, Ordering::SeqCst);
            }
            let want = produced.load(Ordering::SeqCst);
            if want >= 0 && row.lag_msgs == 0.0 && row.end_offsets_total >= want {
                drained_rows.fetch_add(1, Ordering::SeqCst);
            } else {
                drained_rows.store(0, Ordering::SeqCst);
            }
            if let Err(e) = csv.write(row) {
                write_error.get_or_insert(format!("{}: {e}", path.display()));
            }
            rows.push(row.clone());
        },
    );
    let ids = (0..actuator.started()).map(|i| format!("a{i}")).collect();
    drop(actuator);
    result.map_err(|e| format!("autoscale: {e}"))?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if drained_rows.load(Ordering::SeqCst) < 2 && !(a.stop)() {
        return Err(format!(
            "autoscale: the group had not consumed everything when the run timed out (last lag {} msgs)",
            rows.last().map(|r| r.lag_msgs).unwrap_or(f64::NAN)
        ));
    }
    Ok(Consumers {
        ids,
        tasks: Vec::new(),
        decisions: rows,
    })
}

/// Messages the run's producers delivered, by their summaries (0 where one is missing).
fn produced_msgs(point: &Point, run_dir: &Path) -> u64 {
    (0..point.producer_processes())
        .filter_map(|i| {
            pilot_core::contract::metrics::read_csv::<mass::report::ProducerSummary>(
                &mass::producer::summary_path(&run_dir.join(format!("producer-{i}"))),
            )
            .ok()
            .and_then(|r| r.last().map(|s| s.delivered_msgs))
        })
        .sum()
}

/// A start-up run (the paper's Figure 6): the layout's framework pilot on `framework_nodes` nodes, its submit to
/// ready time, then cancelled (and the time that took).
fn startup_run(point: &Point, dir: &Path, shutdown: &AtomicBool) -> Result<RunOutcome, String> {
    let mut pilot = start(framework_plan(point, dir, &ProcessEnvironment)?, shutdown)?;
    let d = pilot
        .details()
        .cloned()
        .ok_or("a running pilot has no details")?;
    let t = Instant::now();
    pilot.cancel();
    let stop_s = t.elapsed().as_secs_f64();
    Ok(RunOutcome {
        metrics: vec![
            ("framework_nodes", point.layout.framework_nodes as f64),
            ("framework_startup_s", d.startup_s.unwrap_or(f64::NAN)),
            ("framework_stop_s", stop_s),
        ],
        incomplete_reason: String::new(),
        faults: String::new(),
        provenance: RunProvenance {
            resource: d.resource.clone(),
            pilots: vec![d.id.clone()],
            job_ids: [d.job_id.clone()]
                .into_iter()
                .filter(|j| !j.is_empty())
                .collect(),
            nodes: d
                .nodes
                .iter()
                .map(|n| format!("{}: {} ({}, {})", d.id, n.name, n.address, n.role.name()))
                .collect(),
            ..Default::default()
        },
    })
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch_s(utc: &str) -> Option<f64> {
    humantime::parse_rfc3339(utc)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The consumers' reports read from the run's metrics topic, and their group.
struct Reports<'a> {
    group: &'a str,
    reports: &'a [pilot_core::contract::telemetry::ConsumerReport],
}

/// A consumer process's life, from its summary.
struct ConsumerLife {
    start_s: f64,
    end_s: f64,
    busy_s: f64,
    handled_msgs: u64,
}

/// What the timeline and the elastic figures are built from.
struct RunTimeline {
    rows: Vec<crate::results::TimelineRow>,
    /// Its origin, seconds since the epoch.
    t0_s: f64,
    consumers: Vec<ConsumerLife>,
}

/// The run's timeline (per second, all producers and all consumers), from their interval rows, the consumers'
/// lives and the controller's decisions (none for a static run).
fn write_run_timeline(
    point: &Point,
    run_dir: &Path,
    consumer_ids: &[String],
    decisions: &[DecisionRow],
    reports: &Reports,
    fault_events: &[pilot_core::ops::fault::FaultEvent],
) -> Result<RunTimeline, String> {
    let mut produced = Vec::new();
    let mut target = Vec::new();
    for i in 0..point.producer_processes() {
        let dir = run_dir.join(format!("producer-{i}"));
        let start = pilot_core::contract::metrics::read_csv::<mass::report::ProducerSummary>(
            &mass::producer::summary_path(&dir),
        )
        .ok()
        .and_then(|r| r.last().and_then(|s| epoch_s(&s.start_utc)));
        let rows: Vec<mass::report::IntervalRow> =
            pilot_core::contract::metrics::read_csv(&mass::producer::intervals_path(&dir))
                .unwrap_or_default();
        if let Some(start) = start {
            produced.extend(rows.iter().map(|r| (start, r.t_s, r.delivered_msgs as f64)));
            target.extend(rows.iter().map(|r| {
                let n = r.target_msgs_per_s * r.interval_s;
                (start, r.t_s, if n.is_finite() { n } else { 0.0 })
            }));
        }
    }
    let mut consumed = Vec::new();
    let mut lives = Vec::new();
    for id in consumer_ids {
        let summary = pilot_core::contract::metrics::read_csv::<masa::report::ConsumerSummary>(
            &masa::consumer::summary_path(run_dir, id),
        )
        .ok()
        .and_then(|r| r.last().cloned());
        let rows: Vec<masa::report::ConsumerInterval> =
            pilot_core::contract::metrics::read_csv(&masa::consumer::intervals_path(run_dir, id))
                .unwrap_or_default();
        if let Some(s) = summary {
            if let Some(start) = epoch_s(&s.start_utc) {
                consumed.extend(rows.iter().map(|r| (start, r.t_s, r.received_msgs as f64)));
                lives.push(ConsumerLife {
                    start_s: start,
                    end_s: epoch_s(&s.end_utc).unwrap_or(start + s.elapsed_s),
                    busy_s: s.busy_s,
                    handled_msgs: s.handled_msgs,
                });
            }
        } else {
            // No summary: the consumer was killed. Its life and what it received, from its reports.
            let mine: Vec<&pilot_core::contract::telemetry::ConsumerReport> = reports
                .reports
                .iter()
                .filter(|r| &r.consumer_id == id && r.group == reports.group)
                .collect();
            if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
                let mut before = 0u64;
                for r in &mine {
                    let t = r.time_unix_ms as f64 / 1e3;
                    consumed.push((t, 0.0, r.received_msgs_total.saturating_sub(before) as f64));
                    before = before.max(r.received_msgs_total);
                }
                lives.push(ConsumerLife {
                    start_s: first.time_unix_ms as f64 / 1e3 - first.interval_s,
                    end_s: last.time_unix_ms as f64 / 1e3,
                    busy_s: mine.iter().map(|r| r.busy_s).sum(),
                    handled_msgs: mine.iter().map(|r| r.handled_msgs).sum(),
                });
            }
        }
    }
    // One origin for all: the earliest process start; a zero sample at it aligns the bucketings.
    let t0 = produced
        .iter()
        .chain(&consumed)
        .map(|s| s.0)
        .reduce(f64::min)
        .unwrap_or(0.0);
    for v in [&mut produced, &mut consumed, &mut target] {
        v.push((t0, 0.0, 0.0));
    }
    let (p, c, g) = (
        crate::results::bucket_per_second(&produced),
        crate::results::bucket_per_second(&consumed),
        crate::results::bucket_per_second(&target),
    );
    let mut events: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in decisions
        .iter()
        .filter(|d| d.consumers_after != d.consumers_before)
    {
        let at = d.time_unix_ms as f64 / 1e3 - t0;
        events
            .entry(at.max(0.0).floor() as usize)
            .or_default()
            .push(format!(
                "{} {}->{}: {}",
                if d.consumers_after > d.consumers_before {
                    "up"
                } else {
                    "down"
                },
                d.consumers_before,
                d.consumers_after,
                d.reason
            ));
    }
    for e in fault_events {
        let at = e.time_unix_ms as f64 / 1e3 - t0;
        events
            .entry(at.max(0.0).floor() as usize)
            .or_default()
            .push(format!("fault: {}", e.summary()));
    }
    let n = p.len().max(c.len());
    // Lag from the reports where there are any; else produced minus received so far (which a message
    // received twice, by two consumers across a rebalance, understates).
    let replayed = (!reports.reports.is_empty()).then(|| {
        pilot_core::contract::telemetry::lag_per_second(
            reports.reports,
            reports.group,
            point.autoscale.report_timeout_s,
            t0,
            n,
        )
    });
    let (mut cum_p, mut cum_c) = (0.0, 0.0);
    let rows: Vec<crate::results::TimelineRow> = (0..n)
        .map(|k| {
            let produced = p.get(k).map(|x| x.1).unwrap_or(0.0);
            let consumed = c.get(k).map(|x| x.1).unwrap_or(0.0);
            cum_p += produced;
            cum_c += consumed;
            let mid = t0 + k as f64 + 0.5;
            crate::results::TimelineRow {
                t_s: (k + 1) as f64,
                produced_msgs_per_s: produced,
                consumed_msgs_per_s: consumed,
                target_msgs_per_s: g.get(k).map(|x| x.1).unwrap_or(0.0),
                lag_msgs: match &replayed {
                    Some(lag) => lag[k] as f64,
                    None => (cum_p - cum_c).max(0.0),
                },
                consumers: lives
                    .iter()
                    .filter(|l| l.start_s <= mid && mid < l.end_s)
                    .count() as u32,
                events: events.remove(&k).unwrap_or_default().join("; "),
            }
        })
        .collect();
    crate::results::write_timeline(run_dir, &rows).map_err(|e| e.to_string())?;
    Ok(RunTimeline {
        rows,
        t0_s: t0,
        consumers: lives,
    })
}

/// Read the run's MASS and MASA records into metrics.
fn collect(
    point: &Point,
    run_dir: &Path,
    partitions: u32,
    consumer_ids: &[String],
    decisions: &[DecisionRow],
    reports: &Reports,
    faults: &FaultOutcome,
) -> Result<RunOutcome, String> {
    use pilot_core::ops::fault::Role;
    let timeline = write_run_timeline(
        point,
        run_dir,
        consumer_ids,
        decisions,
        reports,
        &faults.events,
    )?;
    let mut produced = 0u64;
    let (mut failed, mut mb, mut msgs_s, mut mb_s) = (0u64, 0.0, 0.0, 0.0);
    let (mut delivered_ok, mut failed_n, mut unknown_n) = (0u64, 0u64, 0u64);
    // Producers a fault killed left no summary: what they delivered is what the broker holds beyond the others.
    let mut killed_producers: Vec<u32> = Vec::new();
    for i in 0..point.producer_processes() {
        let path = mass::producer::summary_path(&run_dir.join(format!("producer-{i}")));
        let rows: Vec<mass::report::ProducerSummary> =
            match pilot_core::contract::metrics::read_csv(&path) {
                Ok(rows) if !rows.is_empty() => rows,
                _ if faults.hit(Role::Producer, i as usize) => {
                    killed_producers.push(i);
                    continue;
                }
                Ok(_) => return Err(format!("{}: empty", path.display())),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
        let r = rows.last().expect("not empty");
        produced += r.delivered_msgs;
        delivered_ok += r.delivered_msgs;
        failed_n += r.failed_msgs;
        unknown_n += r.unknown_msgs;
        failed += r.failed_msgs + r.unknown_msgs;
        mb += r.delivered_mb;
        msgs_s += r.throughput_msgs_per_s;
        mb_s += r.throughput_mb_per_s;
    }
    // What the broker held at the end: per partition the highest high watermark any consumer's fetches saw
    // (the consumers read until idle, so their last reports carry the end offsets of a fresh topic).
    let mut high: BTreeMap<i32, i64> = BTreeMap::new();
    for r in reports.reports.iter().filter(|r| r.group == reports.group) {
        for p in &r.partitions {
            let h = high.entry(p.partition).or_insert(-1);
            *h = (*h).max(p.high_watermark);
        }
    }
    let broker_msgs = (high.len() == partitions as usize && high.values().all(|&h| h >= 0))
        .then(|| high.values().map(|&h| h as u64).sum::<u64>());
    let (mut acc, _) =
        masa::consumer::merge_accounting(&[run_dir.to_path_buf()]).map_err(|e| e.to_string())?;
    // MASS process i's threads are producer ids i*1000 + t (`--producer-id-base {process_index}000`).
    let of_killed = |producer: &u32| killed_producers.contains(&(producer / 1000));
    let killed_received: u64 = acc
        .received
        .iter()
        .filter(|(p, _)| of_killed(p))
        .map(|(_, r)| r.count())
        .sum();
    acc.received.retain(|p, _| !of_killed(p));
    let mut totals = acc.totals(Some(produced));
    totals.received += killed_received;
    let killed_delivered = broker_msgs.map(|b| b.saturating_sub(delivered_ok));
    if !killed_producers.is_empty() {
        if let Some(d) = killed_delivered {
            totals.missing += d.saturating_sub(killed_received);
        }
        produced += killed_delivered.unwrap_or(killed_received);
    }
    // Across consumer processes: counts add up; the group's rates are everything received over the longest
    // receive window (the consumers start together, once the group has formed; summing each one's own rate
    // would overstate short runs); p50s are weighted by messages, the higher percentiles are the worst.
    #[derive(Default)]
    struct Group {
        received: f64,
        mb: f64,
        items: u64,
        window_s: f64,
        p50_weighted: f64,
        p90: f64,
        p99: f64,
        max: f64,
        processed_p50_weighted: f64,
        processed_p99: f64,
        processing_weighted: f64,
    }
    let mut g = Group::default();
    // The group's latency distribution: every consumer's histogram merged (a percentile of the whole group, not
    // the worst consumer's); None when a consumer left none (killed, or an older MASA).
    let mut merged = Some(pilot_core::contract::metrics::LatencyHistogram::new());
    for (i, id) in consumer_ids.iter().enumerate() {
        let path = masa::consumer::summary_path(run_dir, id);
        let rows: Vec<masa::report::ConsumerSummary> =
            match pilot_core::contract::metrics::read_csv(&path) {
                Ok(rows) if !rows.is_empty() => rows,
                // Killed by a fault: no summary; its messages are in its checkpoints, its latencies are lost.
                _ if faults.hit(Role::Consumer, i) => continue,
                Ok(_) => return Err(format!("{}: empty", path.display())),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
        let r = rows.last().expect("not empty");
        merged = merged.and_then(|mut m| {
            let bytes = std::fs::read(masa::consumer::latency_histogram_path(run_dir, id)).ok()?;
            m.merge(&pilot_core::contract::metrics::LatencyHistogram::from_v2_bytes(&bytes).ok()?);
            Some(m)
        });
        let w = r.received_msgs as f64;
        g.received += w;
        g.mb += r.received_mb;
        g.items += r.processed_items;
        g.window_s = g.window_s.max(r.receive_window_s);
        g.p50_weighted += w * r.e2e_latency_us_p50 as f64 / 1e3;
        g.p90 = g.p90.max(r.e2e_latency_us_p90 as f64 / 1e3);
        g.p99 = g.p99.max(r.e2e_latency_us_p99 as f64 / 1e3);
        g.max = g.max.max(r.e2e_latency_us_max as f64 / 1e3);
        g.processed_p50_weighted += w * r.processed_latency_us_p50 as f64 / 1e3;
        g.processed_p99 = g.processed_p99.max(r.processed_latency_us_p99 as f64 / 1e3);
        g.processing_weighted += w * r.processing_us_p50 as f64 / 1e3;
    }
    let wmean = |x: f64| {
        if g.received > 0.0 {
            x / g.received
        } else {
            f64::NAN
        }
    };
    let rate = |x: f64| {
        if g.window_s > 0.0 {
            x / g.window_s
        } else {
            f64::NAN
        }
    };
    // Percentiles of the merged distribution where every consumer left its histogram; else (a killed consumer)
    // the message-weighted p50 and the worst consumer's higher percentiles.
    let e2e = match merged.filter(|m| m.count() > 0) {
        Some(m) => {
            let path = run_dir.join(crate::results::E2E_LATENCY_HGRM);
            pilot_core::contract::files::write_atomic(&path, m.hgrm_ms().as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let s = m.summary();
            let ms = |us: u64| us as f64 / 1e3;
            (ms(s.p50_us), ms(s.p90_us), ms(s.p99_us), ms(s.max_us))
        }
        None => (wmean(g.p50_weighted), g.p90, g.p99, g.max),
    };
    let mut reasons = Vec::new();
    let mut fault_notes = Vec::new();
    let broker_down = faults.broker_down();
    if broker_down {
        reasons.push(format!(
            "the broker was taken down by a fault: {delivered_ok} messages delivered before it went ({failed_n} failed, {unknown_n} unknown: no delivery report){}; tansu keeps messages in memory only, so the rest is lost and the run is incomplete",
            if killed_producers.is_empty() { String::new() } else { format!(", plus what killed producers {killed_producers:?} delivered (unknown)") }
        ));
    } else if failed > 0 {
        reasons.push(format!("{failed} messages not delivered by MASS"));
    }
    if !killed_producers.is_empty() {
        match killed_delivered {
            Some(d) => fault_notes.push(format!(
                "killed producers {killed_producers:?}: the broker holds {d} of their messages, the consumers received {killed_received}"
            )),
            None if !broker_down => reasons.push(format!(
                "what killed producers {killed_producers:?} delivered is unknown (no consumer saw every partition's end offset)"
            )),
            None => {}
        }
    }
    if totals.missing > 0 && !broker_down {
        reasons.push(format!("{} messages missing at MASA", totals.missing));
    }
    if totals.rejected > 0 {
        reasons.push(format!("{} messages rejected", totals.rejected));
    }
    let autoscaled = point.layout.scaling == Scaling::Autoscaled;
    // Consumers that join or leave a group move partitions: a message handled but not yet committed when its
    // partition moved is delivered again. Expected (and counted) when the controller scales; a fault otherwise.
    let consumers_hit: Vec<String> = faults
        .hit
        .iter()
        .filter(|t| t.role == Role::Consumer)
        .map(|t| t.to_string())
        .collect();
    if totals.duplicates > 0 && !consumers_hit.is_empty() {
        fault_notes.push(format!(
            "{} duplicates: messages the lost consumers {} handled after their last commit, delivered again to the partitions' next owners at the rebalance",
            totals.duplicates,
            consumers_hit.join(", ")
        ));
    } else if totals.duplicates > 0 && !autoscaled {
        reasons.push(format!("{} duplicates", totals.duplicates));
    }
    let mut metrics = vec![("consumer_processes_started", consumer_ids.len() as f64)];
    if autoscaled || point.mass.contains_key("rate_profile") {
        let changes: Vec<crate::elastic::ScaleChange> = decisions
            .iter()
            .filter(|d| d.consumers_after != d.consumers_before)
            .map(|d| crate::elastic::ScaleChange {
                t_s: d.time_unix_ms as f64 / 1e3 - timeline.t0_s,
                before: d.consumers_before,
                after: d.consumers_after,
            })
            .collect();
        let (handled, busy) = timeline
            .consumers
            .iter()
            .fold((0u64, 0.0), |(h, b), c| (h + c.handled_msgs, b + c.busy_s));
        let rate_each = if busy > 0.0 {
            handled as f64 / busy
        } else {
            f64::NAN
        };
        let consumer_seconds = timeline
            .consumers
            .iter()
            .map(|c| (c.end_s - c.start_s).max(0.0))
            .sum();
        metrics.push(("consumer_true_rate_msgs_per_s", rate_each));
        metrics.extend(crate::elastic::metrics(
            &timeline.rows,
            &changes,
            autoscaled,
            point.consumer_processes(),
            &point.autoscale.policy(partitions),
            rate_each,
            consumer_seconds,
        ));
    }
    metrics.extend(vec![
        ("producer_processes", point.producer_processes() as f64),
        ("consumer_processes", point.consumer_processes() as f64),
        ("partitions", partitions as f64),
        ("produced_msgs", produced as f64),
        ("produce_failed_msgs", failed as f64),
        ("produced_mb", mb),
        ("producer_throughput_msgs_per_s", msgs_s),
        ("producer_throughput_mb_per_s", mb_s),
        ("received_msgs", totals.received as f64),
        ("missing_msgs", totals.missing as f64),
        ("duplicate_msgs", totals.duplicates as f64),
        ("rejected_msgs", totals.rejected as f64),
        (
            "broker_msgs",
            broker_msgs.map(|b| b as f64).unwrap_or(f64::NAN),
        ),
        (
            "killed_producers_delivered_msgs",
            if killed_producers.is_empty() {
                0.0
            } else {
                killed_delivered.map(|d| d as f64).unwrap_or(f64::NAN)
            },
        ),
        ("killed_producers_received_msgs", killed_received as f64),
        (
            "faults_applied",
            faults
                .events
                .iter()
                .filter(|e| e.outcome == "applied")
                .count() as f64,
        ),
        ("processed_items", g.items as f64),
        ("consumer_throughput_msgs_per_s", rate(g.received)),
        ("consumer_throughput_mb_per_s", rate(g.mb)),
        ("consumer_throughput_items_per_s", rate(g.items as f64)),
        ("e2e_latency_ms_p50", e2e.0),
        ("e2e_latency_ms_p90", e2e.1),
        ("e2e_latency_ms_p99", e2e.2),
        ("e2e_latency_ms_max", e2e.3),
        ("processed_latency_ms_p50", wmean(g.processed_p50_weighted)),
        ("processed_latency_ms_p99", g.processed_p99),
        ("processing_ms_p50", wmean(g.processing_weighted)),
    ]);
    let mut fault_text = faults.text();
    for n in fault_notes {
        if !fault_text.is_empty() {
            fault_text.push_str("; ");
        }
        fault_text.push_str(&n);
    }
    Ok(RunOutcome {
        metrics,
        incomplete_reason: reasons.join("; "),
        faults: fault_text,
        provenance: RunProvenance::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_kafka_properties_fill_in_under_the_points_own() {
        let point: toml::Table =
            toml::from_str("processor = \"kmeans\"\n[kafka]\n\"fetch.wait.max.ms\" = \"50\"\n")
                .unwrap();
        let tansu = pilot_core::contract::client::ClientProperties::for_distribution("tansu");
        let out = with_kafka_defaults(&point, tansu.consumer_properties());
        let k = out["kafka"].as_table().unwrap();
        assert_eq!(
            k["fetch.wait.max.ms"].as_str(),
            Some("50"),
            "the point's own wins"
        );
        assert_eq!(k["max.partition.fetch.bytes"].as_str(), Some("8388608"));
        assert_eq!(out["processor"].as_str(), Some("kmeans"));
        // What is written reads back as MASA settings that validate.
        let text = toml::to_string(&out).unwrap();
        let raw: masa::config::RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw.kafka.unwrap()["fetch.message.max.bytes"], "16777216");
    }

    /// Succeeds, fails or interrupts as scripted, and records what it was asked to run.
    struct Scripted {
        calls: Vec<String>,
        fail: Vec<String>,
        interrupt_after: Option<usize>,
    }

    impl Executor for Scripted {
        fn run(
            &mut self,
            point: &Point,
            run_dir: &Path,
            shutdown: &AtomicBool,
        ) -> Result<RunOutcome, String> {
            let name = run_dir.file_name().unwrap().to_string_lossy().to_string();
            self.calls.push(name.clone());
            if self.interrupt_after == Some(self.calls.len()) {
                shutdown.store(true, Ordering::SeqCst);
            }
            if self.fail.contains(&name) {
                return Err("scripted failure".into());
            }
            Ok(RunOutcome {
                metrics: vec![("received_msgs", point.index as f64)],
                ..Default::default()
            })
        }
    }

    #[test]
    fn an_interrupted_experiment_resumes_and_reruns_failures_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name = \"r\"\nrepetitions = 2\nwarmup_runs = 1\n[fixed]\n\"mass.messages\" = 10\n[axes]\nproducer_nodes = [1, 2]\n";
        let exp = Experiment::from_text(Path::new("r.toml"), text).unwrap();
        let opts = RunOptions {
            rerun_failed: false,
            repo: PathBuf::from("."),
        };
        let p0 = exp.points[0].id.clone();
        let mut ex = Scripted {
            calls: vec![],
            fail: vec![format!("{p0}-r1")],
            interrupt_after: Some(3),
        };
        let shutdown = AtomicBool::new(false);
        let s = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap();
        // Warm-up, rep 0, rep 1 (failing, and interrupted during it) of point 0: three runs recorded, then stopped.
        assert!(s.interrupted);
        assert_eq!((s.ran, s.ok, s.failed), (3, 2, 1), "{s:?}");
        let table = Table::read(&dir.path().join("r/results.csv")).unwrap();
        assert_eq!(table.rows.len(), 3);
        assert_eq!(table.status(&p0, 0, true), Some(RunStatus::Ok));
        assert_eq!(table.status(&p0, 1, false), Some(RunStatus::Failed));
        let m = Manifest::read(&dir.path().join("r/manifest.json")).unwrap();
        assert!(!m.complete);

        // Again: the finished run is skipped, the failed ones kept, point 1 runs.
        let shutdown = AtomicBool::new(false);
        let mut ex = Scripted {
            calls: vec![],
            fail: vec![],
            interrupt_after: None,
        };
        let s = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap();
        assert_eq!((s.skipped, s.ran), (3, 3));
        assert!(
            ex.calls.iter().all(|c| !c.starts_with(&p0)),
            "{:?}",
            ex.calls
        );
        assert!(
            !Manifest::read(&dir.path().join("r/manifest.json"))
                .unwrap()
                .complete
        );

        // --rerun-failed: only the failed run.
        let mut ex = Scripted {
            calls: vec![],
            fail: vec![],
            interrupt_after: None,
        };
        let opts = RunOptions {
            rerun_failed: true,
            ..opts
        };
        let s = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap();
        assert_eq!(ex.calls, vec![format!("{p0}-r1")]);
        assert_eq!((s.skipped, s.ok), (5, 1));
        let table = Table::read(&dir.path().join("r/results.csv")).unwrap();
        assert_eq!(table.rows.len(), 6);
        assert!(table.rows.iter().all(|r| r["status"] == "ok"));
        let m = Manifest::read(&dir.path().join("r/manifest.json")).unwrap();
        assert!(m.complete && m.runs.len() == 6);

        // A changed file does not mix with the old results.
        let changed =
            Experiment::from_text(Path::new("r.toml"), &text.replace("10", "11")).unwrap();
        let err = run(&changed, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap_err();
        assert!(err.contains("different version"), "{err}");

        // A corrupt manifest is refused, not rewritten (which would bypass that guard), and nothing is run.
        let manifest_path = dir.path().join("r/manifest.json");
        let before = std::fs::read(dir.path().join("r/results.csv")).unwrap();
        std::fs::write(&manifest_path, b"{\"experiment\": \"r\", trunc").unwrap();
        let mut ex = Scripted {
            calls: vec![],
            fail: vec![],
            interrupt_after: None,
        };
        let err = run(&changed, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap_err();
        assert!(
            err.contains("manifest.json exists but cannot be read"),
            "{err}"
        );
        assert!(ex.calls.is_empty());
        assert_eq!(
            std::fs::read(&manifest_path).unwrap(),
            b"{\"experiment\": \"r\", trunc"
        );
        assert_eq!(
            std::fs::read(dir.path().join("r/results.csv")).unwrap(),
            before
        );
        // Results without any manifest are refused too.
        std::fs::remove_file(&manifest_path).unwrap();
        let err = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap_err();
        assert!(err.contains("no manifest.json"), "{err}");
    }
}
