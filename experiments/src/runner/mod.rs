//! Running an experiment: every point's repetitions (warm-up first), each on fresh pilots, results recorded after
//! every run so an interrupted experiment resumes where it stopped.
//!
//! [`run`] walks the matrix with an injected [`Executor`] that runs one point once, and clock-free progress:
//! open the results directory (its manifest guards against mixing a changed experiment file's results) ->
//! the runs to do (finished ones skipped) -> per run: calibrate, execute, record a row and the manifest at once
//! -> the manifest marked complete when every run is ok.
//!
//! [`LocalExecutor`] is the real executor (`local`). A pipeline run (`pipeline`) is a few stages: plan and
//! start the run's pilots (`plan`: a broker pilot, a producer pilot and a processing pilot that use it), the
//! topics and the MASS and MASA commands (`commands`), the consumers (static, or kept sized by the autoscaler:
//! `autoscaled`), the producers once the group holds every partition, the fault schedule (`faults`) and
//! the run's timeline (`timeline`), then the records collected into metrics (`collect`) and the pilots
//! cancelled (so the broker is restarted between runs). A start-up run (`startup`) times a framework pilot.

mod adaptive;
mod autoscaled;
mod collect;
mod commands;
mod faults;
mod local;
mod pipeline;
mod plan;
mod startup;
mod timeline;

pub use local::LocalExecutor;
pub use plan::{compute_plan, framework_plan, RunPilots};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::results::{
    environment, sha256_hex, Manifest, ResultsError, RunProvenance, RunStatus, Table, KEY_COLUMNS,
    METRICS,
};
use crate::spec::{human_duration, show, Experiment, Point};

/// Why an experiment, or one run of it, could not be carried out. A run's error is recorded in its row
/// (status `failed`); an experiment's error stops it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file or directory could not be read or written.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The results table or manifest.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The results directory holds what this experiment must not touch (another version's results, results
    /// without their manifest, an unreadable manifest): nothing runs.
    #[error("{0}")]
    Refused(String),
    /// A pilot could not be planned, started or used.
    #[error(transparent)]
    Pilot(#[from] pilot_core::PilotError),
    /// The brokers: metadata, the run's topics.
    #[error("{what}: {message}")]
    Broker { what: String, message: String },
    /// A MASS or MASA process could not start, failed or did not stop.
    #[error("{0}")]
    Process(String),
    /// MASS's or MASA's records of the run are missing or unreadable.
    #[error("{}: {message}", path.display())]
    Records { path: PathBuf, message: String },
    /// The autoscaled consumers' controller.
    #[error("autoscale: {0}")]
    Autoscale(String),
    /// `mass` or `masa` is not where the runner looks.
    #[error("`{name}` was not found beside {beside} or on PATH: build it with `cargo build --release -p {name}`")]
    MissingProgram { name: String, beside: String },
    /// SIGINT or SIGTERM.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl RunError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        RunError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// A record at `path` that is missing or unreadable.
    pub fn records(path: &Path, e: impl std::fmt::Display) -> Self {
        RunError::Records {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

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
    ) -> Result<RunOutcome, RunError>;

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

/// One run of the matrix: a point, its repetition, and whether it is a warm-up.
type PlannedRun<'a> = (&'a Point, u32, bool);

/// Run every point of `exp` (skipping finished runs) into `root/<name>/`, calling `progress` with a line before
/// each run; an adaptive experiment's points as its design chooses them ([`adaptive`]).
pub fn run(
    exp: &Experiment,
    root: &Path,
    executor: &mut dyn Executor,
    options: &RunOptions,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, RunError> {
    if let Some(plan) = &exp.adaptive {
        return adaptive::run(exp, plan, root, executor, options, shutdown, progress);
    }
    let mut results = Results::open(exp, root, executor, options, progress)?;
    let plan = planned_runs(exp);
    let todo: Vec<&PlannedRun> = plan
        .iter()
        .filter(|(p, r, w)| match results.table.status(&p.id, *r, *w) {
            None => true,
            Some(RunStatus::Ok) => false,
            Some(_) => options.rerun_failed,
        })
        .collect();
    let mut summary = Summary {
        skipped: plan.len() - todo.len(),
        dir: results.dir.clone(),
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
    let mut pace = Pace::new(todo.iter().map(|(p, ..)| p.estimate_s()).sum());
    for (k, &&(point, rep, warmup)) in todo.iter().enumerate() {
        if shutdown.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        progress(&pace.line(k, todo.len(), exp, point, rep, warmup));
        let done = execute(executor, point, rep, warmup, &results.dir, shutdown)?;
        pace.done(point);
        let status = results.record(exp, point, rep, warmup, done, shutdown)?;
        summary.ran += 1;
        match status {
            (RunStatus::Ok, _) => summary.ok += 1,
            (RunStatus::Incomplete, _) => summary.incomplete += 1,
            (RunStatus::Failed, _) => summary.failed += 1,
        }
        if status.0 != RunStatus::Ok {
            progress(&format!("  run {}: {}", status.0.as_str(), status.1));
        }
    }
    results.finish(&plan, false)?;
    Ok(summary)
}

/// The runs in order: per point, warm-ups then measured repetitions.
fn planned_runs(exp: &Experiment) -> Vec<PlannedRun<'_>> {
    exp.points.iter().flat_map(|p| runs_of(exp, p)).collect()
}

/// A point's warm-ups, then its measured repetitions.
fn runs_of<'a>(exp: &Experiment, p: &'a Point) -> Vec<PlannedRun<'a>> {
    (0..exp.warmup_runs)
        .map(|r| (p, r, true))
        .chain((0..exp.repetitions).map(|r| (p, r, false)))
        .collect()
}

/// The results directory of a running experiment: its table and manifest, rewritten after every run.
struct Results {
    dir: PathBuf,
    csv_path: PathBuf,
    manifest_path: PathBuf,
    table: Table,
    manifest: Manifest,
    /// The table's columns: keys, the points' settings, metrics.
    columns: Vec<String>,
}

impl Results {
    /// Open (or start) `exp`'s results under `root`: the executor cleans up after an earlier runner, and a
    /// manifest of another version of the file, or results without one, refuse the run.
    fn open(
        exp: &Experiment,
        root: &Path,
        executor: &mut dyn Executor,
        options: &RunOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self, RunError> {
        let dir = results_dir(root, exp);
        std::fs::create_dir_all(dir.join("runs")).map_err(|e| RunError::io(&dir, e))?;
        let csv_path = dir.join("results.csv");
        let manifest_path = dir.join("manifest.json");
        let table = Table::read_or_empty(&csv_path)?;
        for line in executor.clean_up(&dir) {
            progress(&format!("cleaned up after an earlier runner: {line}"));
        }
        let mut manifest = guarded_manifest(exp, &dir, &csv_path, &manifest_path, options)?;
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
            .map_err(|e| RunError::io(&copy, e))?;
        manifest.write_atomic(&manifest_path)?;
        Ok(Results {
            dir,
            csv_path,
            manifest_path,
            table,
            manifest,
            columns: columns(exp),
        })
    }

    /// Record a run's row and provenance (written at once); its status and error.
    fn record(
        &mut self,
        exp: &Experiment,
        point: &Point,
        rep: u32,
        warmup: bool,
        done: Executed,
        shutdown: &AtomicBool,
    ) -> Result<(RunStatus, String), RunError> {
        let interrupted_now = shutdown.load(Ordering::SeqCst);
        let (status, error) = match &done.result {
            Ok(o) if o.incomplete_reason.is_empty() && !interrupted_now => {
                (RunStatus::Ok, String::new())
            }
            Ok(o) if interrupted_now => (
                RunStatus::Failed,
                format!("interrupted; {}", o.incomplete_reason),
            ),
            Ok(o) => (RunStatus::Incomplete, o.incomplete_reason.clone()),
            Err(e) => (RunStatus::Failed, e.to_string()),
        };
        let mut row: BTreeMap<String, String> = BTreeMap::new();
        row.insert("experiment".into(), exp.name.clone());
        row.insert("point".into(), point.id.clone());
        row.insert("point_index".into(), point.index.to_string());
        row.insert("repetition".into(), rep.to_string());
        row.insert("warmup".into(), warmup.to_string());
        row.insert("start_utc".into(), done.start_utc.clone());
        row.insert("end_utc".into(), done.end_utc.clone());
        for (key, v) in &point.settings {
            row.insert(key.clone(), show(v));
        }
        row.insert("status".into(), status.as_str().into());
        row.insert("error".into(), error.clone());
        row.insert("run_wall_s".into(), format!("{:.3}", done.wall_s));
        if let Some(c) = done.calibration {
            row.insert(crate::calibration::METRIC.into(), format!("{c:.1}"));
        }
        if let Ok(o) = done.result {
            row.insert("faults".into(), o.faults.clone());
            // A metric without a value is an empty cell, with why in the row's notes: never NaN.
            let mut notes = Vec::new();
            for (m, v) in &o.metrics {
                if v.is_finite() {
                    row.insert(m.to_string(), format!("{v}"));
                } else {
                    row.insert(m.to_string(), String::new());
                    notes.push(format!("{m}: {}", crate::results::unmeasured(m)));
                }
            }
            row.insert("notes".into(), notes.join("; "));
            let prov = RunProvenance {
                point: point.id.clone(),
                repetition: rep,
                warmup,
                start_utc: done.start_utc,
                end_utc: done.end_utc,
                ..o.provenance
            };
            self.manifest.runs.retain(|r| {
                !(r.point == prov.point
                    && r.repetition == prov.repetition
                    && r.warmup == prov.warmup)
            });
            self.manifest.runs.push(prov);
        }
        self.table.upsert(row, &self.columns);
        self.table.write_atomic(&self.csv_path)?;
        self.manifest.write_atomic(&self.manifest_path)?;
        Ok((status, error))
    }

    /// The manifest's last word: complete when every planned run is ok (and the sweep was not `cut_short`: an
    /// adaptive one interrupted before its design had finished choosing).
    fn finish(mut self, plan: &[PlannedRun], cut_short: bool) -> Result<(), RunError> {
        self.manifest.complete = !cut_short
            && plan
                .iter()
                .all(|(p, r, w)| self.table.status(&p.id, *r, *w) == Some(RunStatus::Ok));
        self.manifest.finished_utc = pilot_core::contract::clock::now_utc();
        self.manifest.write_atomic(&self.manifest_path)?;
        Ok(())
    }
}

/// The manifest of `dir`: the existing one when it belongs to this version of the experiment file, a new one
/// when there are no results yet; refused otherwise. A manifest that exists but cannot be read is not "no
/// manifest": rewriting it would lose the guard against mixing the results of a changed experiment file.
fn guarded_manifest(
    exp: &Experiment,
    dir: &Path,
    csv_path: &Path,
    manifest_path: &Path,
    options: &RunOptions,
) -> Result<Manifest, RunError> {
    let file_sha = sha256_hex(exp.text.as_bytes());
    if manifest_path.exists() {
        let m = Manifest::read(manifest_path).map_err(|e| {
            RunError::Refused(format!(
                "{} exists but cannot be read ({e}): it guards the results in {} against a changed experiment file, so nothing runs; repair or remove it (and results.csv) first",
                manifest_path.display(),
                dir.display()
            ))
        })?;
        if m.file_sha256 == file_sha {
            return Ok(m);
        }
        return Err(RunError::Refused(format!(
            "{} holds results of a different version of {} (sha256 {} there, {} now): move it away or rename the experiment",
            dir.display(),
            exp.path.display(),
            &m.file_sha256[..12.min(m.file_sha256.len())],
            &file_sha[..12]
        )));
    }
    if csv_path.exists() {
        return Err(RunError::Refused(format!(
            "{} holds results but no manifest.json: its provenance is lost, so nothing runs; move the directory away",
            dir.display()
        )));
    }
    Ok(Manifest {
        experiment: exp.name.clone(),
        description: exp.description.clone(),
        file: exp.path.display().to_string(),
        file_sha256: file_sha,
        started_utc: pilot_core::contract::clock::now_utc(),
        ..environment(&options.repo)
    })
}

/// The results table's columns: the keys, every point's settings, the metrics.
fn columns(exp: &Experiment) -> Vec<String> {
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
    columns
}

/// A run as it was executed: its result and when.
struct Executed {
    result: Result<RunOutcome, RunError>,
    calibration: Option<f64>,
    start_utc: String,
    end_utc: String,
    wall_s: f64,
}

/// Run `point` once in a fresh run directory (`<point>-w<rep>` or `<point>-r<rep>`).
fn execute(
    executor: &mut dyn Executor,
    point: &Point,
    rep: u32,
    warmup: bool,
    dir: &Path,
    shutdown: &AtomicBool,
) -> Result<Executed, RunError> {
    let run_dir = dir.join("runs").join(format!(
        "{}-{}{}",
        point.id,
        if warmup { "w" } else { "r" },
        rep
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).map_err(|e| RunError::io(&run_dir, e))?;
    let calibration = executor.calibrate();
    let start_utc = pilot_core::contract::clock::now_utc();
    let t = Instant::now();
    let result = executor.run(point, &run_dir, shutdown);
    Ok(Executed {
        result,
        calibration,
        start_utc,
        end_utc: pilot_core::contract::clock::now_utc(),
        wall_s: t.elapsed().as_secs_f64(),
    })
}

/// The progress line before each run, with the time left: the plan's estimate until a run has finished, then
/// the pace so far.
struct Pace {
    started: Instant,
    remaining_estimate_s: f64,
}

impl Pace {
    fn new(estimate_s: f64) -> Self {
        Pace {
            started: Instant::now(),
            remaining_estimate_s: estimate_s,
        }
    }

    fn line(
        &self,
        k: usize,
        n: usize,
        exp: &Experiment,
        point: &Point,
        rep: u32,
        warmup: bool,
    ) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = if k == 0 {
            self.remaining_estimate_s
        } else {
            elapsed / k as f64 * (n - k) as f64
        };
        format!(
            "[{}/{}] point {}/{} {} {} {}: {} elapsed, about {} left",
            k + 1,
            n,
            point.index + 1,
            exp.points.len(),
            point.label(),
            if warmup { "warm-up" } else { "repetition" },
            rep + 1,
            human_duration(elapsed),
            human_duration(left)
        )
    }

    fn done(&mut self, point: &Point) {
        self.remaining_estimate_s -= point.estimate_s();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ) -> Result<RunOutcome, RunError> {
            let name = run_dir.file_name().unwrap().to_string_lossy().to_string();
            self.calls.push(name.clone());
            if self.interrupt_after == Some(self.calls.len()) {
                shutdown.store(true, Ordering::SeqCst);
            }
            if self.fail.contains(&name) {
                return Err(RunError::Process("scripted failure".into()));
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
        let err = err.to_string();
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
        let err = run(&changed, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {})
            .unwrap_err()
            .to_string();
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
        let err = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("no manifest.json"), "{err}");
    }

    /// Answers an Ernest-shaped consumer throughput from the point's settings (cost per message / processes),
    /// and interrupts after a given number of runs.
    struct Formula {
        calls: Vec<String>,
        interrupt_after: Option<usize>,
    }

    impl Executor for Formula {
        fn run(
            &mut self,
            point: &Point,
            run_dir: &Path,
            shutdown: &AtomicBool,
        ) -> Result<RunOutcome, RunError> {
            self.calls
                .push(run_dir.file_name().unwrap().to_string_lossy().to_string());
            if self.interrupt_after == Some(self.calls.len()) {
                shutdown.store(true, Ordering::SeqCst);
            }
            let get = |k: &str| {
                point.settings[k]
                    .as_float()
                    .or_else(|| point.settings[k].as_integer().map(|i| i as f64))
                    .unwrap()
            };
            let (m, cost) = (
                get("consumer_processes_per_node"),
                get("masa.cost_ms_per_message"),
            );
            let rate = 1.0 / (2e-4 + 1e-3 * cost / m + 2e-5 * m);
            Ok(RunOutcome {
                metrics: vec![("consumer_throughput_msgs_per_s", rate)],
                ..Default::default()
            })
        }
    }

    const ADAPTIVE: &str = "name = \"a\"\nstrategy = \"adaptive\"\n[adaptive]\nbudget = 6\ninterval_fraction = 0.0001\n[fixed]\n\"mass.messages\" = 10\n\"masa.processor\" = \"none\"\n[axes]\nconsumer_processes_per_node = [1, 2, 3, 4, 6, 8]\n\"masa.cost_ms_per_message\" = [2.0, 4.0, 8.0, 16.0]\n";

    #[test]
    fn an_adaptive_sweep_runs_only_its_choices_records_why_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let exp = Experiment::from_text(Path::new("a.toml"), ADAPTIVE).unwrap();
        assert!(
            exp.describe().contains(
                "adaptive: at most 6 of 24 points, chosen for consumer_throughput_msgs_per_s"
            ),
            "{}",
            exp.describe()
        );
        let opts = RunOptions {
            rerun_failed: false,
            repo: PathBuf::from("."),
        };
        // Interrupted during the third choice.
        let mut ex = Formula {
            calls: vec![],
            interrupt_after: Some(3),
        };
        let shutdown = AtomicBool::new(false);
        let s = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |_| {}).unwrap();
        assert!(s.interrupted && s.ran == 3, "{s:?}");
        let m = Manifest::read(&dir.path().join("a/manifest.json")).unwrap();
        assert_eq!(
            m.adaptive.len(),
            2,
            "the interrupted point is not a choice yet"
        );
        assert!(!m.complete);
        // Resumed with --rerun-failed: the two earlier choices stand, the third point's interrupted run runs
        // again, and four more are chosen.
        let mut ex = Formula {
            calls: vec![],
            interrupt_after: None,
        };
        let opts = RunOptions {
            rerun_failed: true,
            ..opts
        };
        let shutdown = AtomicBool::new(false);
        let mut lines = Vec::new();
        let s = run(&exp, dir.path(), &mut ex, &opts, &shutdown, &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert!(!s.interrupted);
        assert_eq!((s.ran, s.skipped), (4, 0), "{s:?} {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("resuming an adaptive sweep: 2 points chosen earlier")),
            "{lines:?}"
        );
        let m = Manifest::read(&dir.path().join("a/manifest.json")).unwrap();
        assert_eq!(m.adaptive.len(), 6);
        assert!(m.complete, "every chosen point's runs are ok");
        assert!(
            m.adaptive
                .iter()
                .all(|c| c.reason.contains("D-optimal") && c.value.is_some_and(|v| v > 0.0)),
            "{:?}",
            m.adaptive
        );
        let mut ids: Vec<&String> = m.adaptive.iter().map(|c| &c.point).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "no point chosen twice");
        let table = Table::read(&dir.path().join("a/results.csv")).unwrap();
        assert_eq!(table.rows.len(), 6, "only the chosen points ran");
        // The runs it chose model the whole matrix: the largest and smallest counts and costs are among them.
        let chosen: Vec<&Point> = m
            .adaptive
            .iter()
            .map(|c| exp.points.iter().find(|p| p.id == c.point).unwrap())
            .collect();
        let has = |k: &str, v: f64| {
            chosen.iter().any(|p| {
                p.settings[k]
                    .as_float()
                    .or_else(|| p.settings[k].as_integer().map(|i| i as f64))
                    == Some(v)
            })
        };
        assert!(has("consumer_processes_per_node", 1.0) && has("consumer_processes_per_node", 8.0));
        assert!(has("masa.cost_ms_per_message", 16.0));
    }

    #[test]
    fn adaptive_plans_are_checked_before_anything_runs() {
        let bad = |text: &str| {
            Experiment::from_text(Path::new("b.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let e = bad(&ADAPTIVE.replace("budget = 6", "budget = 60"));
        assert!(e.contains("adaptive.budget 60 must be 3..=24"), "{e}");
        let e = bad(&ADAPTIVE.replace("budget = 6", "metric = \"speed\""));
        assert!(e.contains("adaptive.metric `speed`"), "{e}");
        let e = bad(&ADAPTIVE.replace("budget = 6", "goal = \"fast\""));
        assert!(e.contains("adaptive.goal `fast`"), "{e}");
        let e = bad(&ADAPTIVE.replace("budget = 6", "budgt = 6"));
        assert!(e.contains("budgt") && e.contains("b.toml:4"), "{e}");
        let e = bad(&ADAPTIVE.replace("strategy = \"adaptive\"", "strategy = \"full\""));
        assert!(e.contains("[adaptive] is set but strategy is not"), "{e}");
        let e = bad(&ADAPTIVE.replace("strategy = \"adaptive\"", "strategy = \"some\""));
        assert!(e.contains("strategy `some`"), "{e}");
        let grouped = format!("{ADAPTIVE}[zip]\n\"mass.linger_ms\" = [1, 5]\n");
        let e = bad(&grouped.replace("budget = 6", "budget = 5"));
        assert!(
            e.contains("adaptive.budget 5 is under 3 points for each of the 2 groups that mass.linger_ms make: raise it to 6"),
            "{e}"
        );
        // Other varying settings make groups, each designed on its own share of the budget.
        let exp = Experiment::from_text(Path::new("g.toml"), &grouped).unwrap();
        let plan = exp.adaptive.clone().unwrap();
        assert_eq!((plan.groups.len(), plan.group_budget()), (2, 3));
        assert!(
            exp.describe()
                .contains("in each of 2 groups (mass.linger_ms), 3 points a group"),
            "{}",
            exp.describe()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut ex = Formula {
            calls: vec![],
            interrupt_after: None,
        };
        let opts = RunOptions {
            rerun_failed: false,
            repo: PathBuf::from("."),
        };
        run(
            &exp,
            dir.path(),
            &mut ex,
            &opts,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        let m = Manifest::read(&dir.path().join("a/manifest.json")).unwrap();
        assert_eq!(m.adaptive.len(), 6);
        for g in ["mass.linger_ms=1: ", "mass.linger_ms=5: "] {
            assert_eq!(
                m.adaptive
                    .iter()
                    .filter(|c| c.reason.starts_with(g))
                    .count(),
                3,
                "{:?}",
                m.adaptive
            );
        }
        // --adaptive on a full sweep: the defaults, a quarter of the points.
        let mut full = Experiment::from_text(
            Path::new("f.toml"),
            &ADAPTIVE.replace(
                "strategy = \"adaptive\"\n[adaptive]\nbudget = 6\ninterval_fraction = 0.0001\n",
                "",
            ),
        )
        .unwrap();
        assert!(full.adaptive.is_none());
        full.make_adaptive(None).unwrap();
        assert_eq!(full.adaptive.as_ref().unwrap().stop.budget, 6);
        full.make_adaptive(Some(8)).unwrap();
        assert_eq!(full.adaptive.as_ref().unwrap().stop.budget, 8);
        assert!(full
            .make_adaptive(Some(2))
            .unwrap_err()
            .to_string()
            .contains("--budget 2"));
    }
}
