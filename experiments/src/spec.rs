//! Experiment files: fixed settings and axes in TOML, checked and expanded into [`Point`]s before anything runs.
//!
//! ```toml
//! name = "quickstart"          # results go to results/<name>/
//! description = "..."
//! repetitions = 2              # measured runs per point
//! warmup_runs = 1              # runs before them, tagged warm-up in the results, never mixed with them
//!
//! [fixed]                      # settings of every run
//! "mass.messages" = 2000
//! "masa.processor" = "kmeans"
//!
//! [axes]                       # every combination (product) of these
//! producer_threads = [1, 2]
//!
//! [zip]                        # these move together (equal lengths), as one more axis
//! "mass.points_per_message" = [100, 1000]
//! "mass.rate_msgs_per_s" = [2000, 200]
//! ```
//!
//! The value `"(unset)"` leaves a key out of a point (a zip axis where only some points use a setting).
//!
//! `strategy = "adaptive"` with an `[adaptive]` table runs only the points a design chooses, one at a time (see
//! [`crate::model::plan`]); the default, `strategy = "full"`, runs every point.
//!
//! Keys are either the orchestration settings of [`Layout`] (nodes, processes, partitions, timeouts) or
//! `mass.<key>` / `masa.<key>`, passed to MASS and MASA as their own settings. Those are checked by MASS's and
//! MASA's own validation for every point, so a typo or an impossible combination is reported with its key and
//! line before the first pilot starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pilot_core::contract::config::{ConfigError, Settings};
use pilot_core::ops::autoscale::{AutoscalePlan, AutoscaleSettings};
use pilot_core::pilots::description::FrameworkKind;
use serde::{Deserialize, Serialize};
use toml::{Spanned, Table, Value};

/// Errors in an experiment file, with where.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    repetitions: Option<Spanned<u32>>,
    warmup_runs: Option<Spanned<u32>>,
    #[serde(default)]
    fixed: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    axes: BTreeMap<String, Spanned<Vec<Value>>>,
    #[serde(default)]
    zip: BTreeMap<String, Spanned<Vec<Value>>>,
    /// The controller's settings of autoscaled runs (also `autoscale.<key>` in fixed, axes or zip).
    #[serde(default)]
    autoscale: BTreeMap<String, Spanned<Value>>,
    /// Faults injected into every run (`[[faults]]`), seconds after the producers start.
    #[serde(default)]
    faults: Vec<Spanned<pilot_core::ops::fault::RawFault>>,
    /// `full` (every point, the default) or `adaptive` (runs chosen one at a time: [`crate::model::plan`]).
    strategy: Option<Spanned<String>>,
    adaptive: Option<Spanned<crate::model::plan::RawAdaptive>>,
}

/// How a pipeline run's processing is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scaling {
    /// A processing pilot of `processing_nodes` x `consumer_processes_per_node` consumers for the whole run.
    #[default]
    Static,
    /// `pilot autoscale`'s controller starts and stops 1-node processing pilots as the lag demands.
    Autoscaled,
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// A broker pilot, compute pilots for MASS and MASA, MASS producing and MASA consuming (Figures 7-9).
    #[default]
    Pipeline,
    /// A framework pilot started, timed from submit to ready, and cancelled (Figure 6).
    Startup,
}

/// How a run is laid out on pilots: a broker pilot, and two framework-free compute pilots (producers,
/// processing) whose tasks use its brokers; or, for start-up runs, one framework pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layout {
    /// `pipeline` (default) or `startup`.
    pub kind: RunKind,
    /// Pipeline runs: `static` (default) or `autoscaled` processing.
    pub scaling: Scaling,
    /// Start-up runs: the framework the pilot boots (`kafka`, `spark`, `dask`, `flink`, `none`).
    pub framework: FrameworkKind,
    /// Start-up runs: the pilot's nodes.
    pub framework_nodes: u32,
    /// Resource URL of the pilots (`local://`, `slurm://localhost`, `slurm+ssh://user@host`).
    pub resource: String,
    /// Kafka distribution of the broker pilot: `tansu` (local default) or `apache-kafka` (clusters).
    pub distribution: String,
    /// Broker nodes (tansu: 1).
    pub broker_nodes: u32,
    /// Topic partitions per broker node.
    pub partitions_per_broker_node: u32,
    /// Nodes of the producer pilot.
    pub producer_nodes: u32,
    /// MASS processes per producer node.
    pub producer_processes_per_node: u32,
    /// Nodes of the processing pilot.
    pub processing_nodes: u32,
    /// MASA processes per processing node (one consumer group).
    pub consumer_processes_per_node: u32,
    /// A run that takes longer is stopped and recorded as failed.
    pub run_timeout_s: f64,
    /// The consumers' safety net: a consumer that gets no message for this long gives up. Runs end when the
    /// runner announces the stream's end and the group has consumed it; a consumer that gives up before the
    /// producers finished left a live group, and the run is flagged incomplete.
    pub consumer_idle_s: f64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            kind: RunKind::Pipeline,
            scaling: Scaling::Static,
            framework: FrameworkKind::Kafka,
            framework_nodes: 1,
            resource: "local://".into(),
            distribution: "tansu".into(),
            broker_nodes: 1,
            partitions_per_broker_node: 4,
            producer_nodes: 1,
            producer_processes_per_node: 1,
            processing_nodes: 1,
            consumer_processes_per_node: 1,
            run_timeout_s: 300.0,
            consumer_idle_s: 30.0,
        }
    }
}

const LAYOUT_KEYS: &[&str] = &[
    "kind",
    "scaling",
    "framework",
    "framework_nodes",
    "resource",
    "distribution",
    "broker_nodes",
    "partitions_per_broker_node",
    "producer_nodes",
    "producer_processes_per_node",
    "processing_nodes",
    "consumer_processes_per_node",
    "run_timeout_s",
    "consumer_idle_s",
];

/// One point of the matrix: the layout and what MASS and MASA are told.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in the matrix (0-based).
    pub index: usize,
    /// Stable id: a hash of every setting (so a changed file never reuses old results for new settings).
    pub id: String,
    /// Every setting of this point, `key -> value` as written (for the results' columns).
    pub settings: BTreeMap<String, Value>,
    /// The values of the axes only (for progress lines and plots).
    pub varying: BTreeMap<String, Value>,
    pub layout: Layout,
    pub mass: Table,
    pub masa: Table,
    /// The controller's settings (`[autoscale]`, defaults where not given): what autoscaled runs run with, and
    /// what every run's optimum consumer count is computed from.
    pub autoscale: AutoscalePlan,
    /// Faults injected into each run (the file's `[[faults]]`).
    pub faults: Vec<pilot_core::ops::fault::Fault>,
}

impl Point {
    /// MASS processes in a run.
    pub fn producer_processes(&self) -> u32 {
        self.layout.producer_nodes * self.layout.producer_processes_per_node
    }

    /// MASA processes in a run (an autoscaled run: at the start).
    pub fn consumer_processes(&self) -> u32 {
        match self.layout.scaling {
            Scaling::Static => {
                self.layout.processing_nodes * self.layout.consumer_processes_per_node
            }
            Scaling::Autoscaled => self.autoscale.initial_consumers,
        }
    }

    /// A short description: the axes' values.
    pub fn label(&self) -> String {
        if self.varying.is_empty() {
            return "(fixed settings)".into();
        }
        self.varying
            .iter()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Rough run time: MASS's duration or messages at its rate, plus pilot start-up and the consumers' idle stop
    /// (start-up runs: the framework's usual start and stop on this kind of machine).
    pub fn estimate_s(&self) -> f64 {
        if self.layout.kind == RunKind::Startup {
            return match self.layout.framework {
                FrameworkKind::Spark | FrameworkKind::Flink => 20.0,
                FrameworkKind::Dask => 8.0,
                _ => 2.0,
            };
        }
        let messages = self
            .mass
            .get("messages")
            .and_then(Value::as_integer)
            .unwrap_or(0) as f64;
        let duration = self
            .mass
            .get("duration_s")
            .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)));
        let rate = self
            .mass
            .get("rate_msgs_per_s")
            .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
            .map(|r| r * self.layout.producer_processes_per_node as f64);
        // A finite rate profile ends the run (or a given duration first).
        let profile = self
            .mass
            .get("rate_profile")
            .and_then(Value::as_str)
            .and_then(|p| mass::profile::Profile::parse(p, None).ok())
            .and_then(|p| p.duration_s());
        let duration = match (duration, profile) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        };
        let produce = match (duration, rate) {
            (Some(d), _) => d,
            (None, Some(r)) if r > 0.0 => messages / r,
            _ => messages / 2000.0,
        };
        // Then the stream's end is announced, and consumed (about two report intervals and a statistics refresh).
        produce.min(self.layout.run_timeout_s) + 4.0
    }
}

/// A checked experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    /// The file's bytes, hashed into the manifest.
    pub text: String,
    pub repetitions: u32,
    pub warmup_runs: u32,
    pub points: Vec<Point>,
    /// The axes' names, in order (zip axes after product axes).
    pub axes: Vec<String>,
    /// `strategy = "adaptive"`: the runs are chosen one at a time instead of running every point.
    pub adaptive: Option<crate::model::plan::AdaptivePlan>,
}

/// The value that leaves a key out of a point.
pub const UNSET: &str = "(unset)";

/// Value as written in TOML (strings without quotes).
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// An experiment file's text, for errors that name its path and line.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: String) -> SpecError {
        SpecError::At {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span.start),
            message,
        }
    }

    /// The experiment's name (it names the results directory), repetitions and warm-up runs.
    fn header(&self, raw: &RawFile) -> Result<(String, u32, u32), SpecError> {
        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(self.at(
                raw.name.span(),
                format!(
                    "name `{name}` must be letters, digits, - _ . (it names the results directory)"
                ),
            ));
        }
        let repetitions = raw.repetitions.as_ref().map(|r| *r.get_ref()).unwrap_or(1);
        if repetitions == 0 {
            let span = raw.repetitions.as_ref().map(|r| r.span()).unwrap_or(0..0);
            return Err(self.at(span, "repetitions must be at least 1".into()));
        }
        let warmup_runs = raw.warmup_runs.as_ref().map(|r| *r.get_ref()).unwrap_or(0);
        Ok((name, repetitions, warmup_runs))
    }

    /// The adaptive plan when `strategy = "adaptive"`; `[adaptive]` without it is an error, as is a strategy
    /// other than `full` or `adaptive`.
    fn adaptive(
        &self,
        raw: &RawFile,
        points: &[Point],
    ) -> Result<Option<crate::model::plan::AdaptivePlan>, SpecError> {
        let strategy = raw
            .strategy
            .as_ref()
            .map(|s| s.get_ref().as_str())
            .unwrap_or("full");
        let span = raw.strategy.as_ref().map(|s| s.span()).unwrap_or(0..0);
        match (strategy, &raw.adaptive) {
            ("full", None) => Ok(None),
            ("full", Some(a)) => Err(self.at(
                a.span(),
                "[adaptive] is set but strategy is not \"adaptive\" (add strategy = \"adaptive\")"
                    .into(),
            )),
            ("adaptive", a) => {
                let table_span = a.as_ref().map(|a| a.span()).unwrap_or(span);
                let default = crate::model::plan::RawAdaptive::default();
                let raw_plan = a.as_ref().map(|a| a.get_ref()).unwrap_or(&default);
                crate::model::plan::AdaptivePlan::new(raw_plan, points)
                    .map(Some)
                    .map_err(|m| self.at(table_span, m))
            }
            (other, _) => Err(self.at(
                span,
                format!("strategy `{other}` must be \"full\" (every point) or \"adaptive\""),
            )),
        }
    }

    /// The file's `[[faults]]`, validated, checked against every point and added to it.
    fn add_faults(&self, raw: &RawFile, points: &mut [Point]) -> Result<(), SpecError> {
        let total = points.len();
        for (n, raw_fault) in raw.faults.iter().enumerate() {
            let fault = raw_fault.get_ref().validate().map_err(|e| {
                self.at(
                    raw_fault.span(),
                    format!(
                        "faults[{n}]: {}: {}",
                        e.key.as_deref().unwrap_or(""),
                        e.message
                    ),
                )
            })?;
            for p in points.iter_mut() {
                check_fault(p, &fault).map_err(|m| {
                    self.at(
                        raw_fault.span(),
                        format!(
                            "faults[{n}] ({}): point {}/{total}: {m}",
                            fault.describe(),
                            p.index + 1
                        ),
                    )
                })?;
                p.faults.push(fault.clone());
            }
        }
        Ok(())
    }
}

/// The fixed settings: `[fixed]` with `[autoscale]` as `autoscale.<key>`.
type Fixed = BTreeMap<String, Spanned<Value>>;

/// Every key of a file once, known, with its line (where a point's error points).
struct KeyLines<'a> {
    src: &'a Source<'a>,
    lines: BTreeMap<String, usize>,
}

impl KeyLines<'_> {
    fn check(&mut self, key: &str, span: std::ops::Range<usize>) -> Result<(), SpecError> {
        let known = LAYOUT_KEYS.contains(&key)
            || ["mass.", "masa.", "autoscale."]
                .iter()
                .any(|p| key.strip_prefix(p).is_some_and(|k| !k.is_empty()));
        if !known {
            return Err(self.src.at(
                span,
                format!(
                    "unknown key `{key}` (layout keys: {}; MASS, MASA and controller settings as mass.<key>, masa.<key>, autoscale.<key>)",
                    LAYOUT_KEYS.join(", ")
                ),
            ));
        }
        let line = line_of(self.src.text, span.start);
        if let Some(first) = self.lines.insert(key.to_string(), line) {
            return Err(self.src.at(
                span,
                format!("`{key}` is set twice (first on line {first}) across fixed, axes and zip"),
            ));
        }
        Ok(())
    }

    /// The fixed settings, the axes (each with distinct values) and the zip group's length (its axes' common
    /// length), every key checked.
    #[allow(clippy::type_complexity)]
    fn matrix(
        &mut self,
        raw: &RawFile,
    ) -> Result<(Fixed, Vec<(String, Vec<Value>)>, Option<usize>), SpecError> {
        let mut fixed = raw.fixed.clone();
        for (k, v) in &raw.autoscale {
            fixed.insert(format!("autoscale.{k}"), v.clone());
        }
        for (k, v) in &fixed {
            self.check(k, v.span())?;
        }
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (k, v) in &raw.axes {
            self.check(k, v.span())?;
            let vals = v.get_ref();
            if vals.is_empty() {
                return Err(self.src.at(v.span(), format!("axis `{k}` has no values")));
            }
            if let Some(dup) = vals
                .iter()
                .enumerate()
                .find_map(|(i, x)| vals[..i].contains(x).then_some(x))
            {
                return Err(self.src.at(
                    v.span(),
                    format!("axis `{k}` lists {} twice (points must differ)", show(dup)),
                ));
            }
            axes.push((k.clone(), vals.clone()));
        }
        let mut zip_len = None;
        for (k, v) in &raw.zip {
            self.check(k, v.span())?;
            let n = v.get_ref().len();
            match zip_len {
                None if n == 0 => {
                    return Err(self.src.at(v.span(), format!("zip axis `{k}` has no values")))
                }
                None => zip_len = Some(n),
                Some(m) if m != n => {
                    return Err(self.src.at(
                        v.span(),
                        format!("zip axes move together, so they need equal lengths: `{k}` has {n} values, the others {m}"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok((fixed, axes, zip_len))
    }

    /// A point per combination of varying values, on top of the fixed settings; an error names the point and,
    /// where the key has one, its line.
    fn points(
        &self,
        fixed: &Fixed,
        combos: Vec<BTreeMap<String, Value>>,
    ) -> Result<Vec<Point>, SpecError> {
        let path = self.src.path;
        let total = combos.len();
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut points = Vec::with_capacity(total);
        for (index, varying) in combos.into_iter().enumerate() {
            let label = if varying.is_empty() {
                "fixed settings".to_string()
            } else {
                varying
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut settings: BTreeMap<String, Value> = fixed
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect();
            settings.extend(varying.clone());
            settings.retain(|_, v| v.as_str() != Some(UNSET));
            let point =
                build_point(index, settings, varying, &base).map_err(|(key, message)| {
                    let message = format!("point {}/{total} ({label}): {message}", index + 1);
                    match key.as_ref().and_then(|k| self.lines.get(k)).copied() {
                        Some(line) => SpecError::At {
                            path: path.to_path_buf(),
                            line,
                            message,
                        },
                        None => SpecError::Invalid {
                            path: path.to_path_buf(),
                            message,
                        },
                    }
                })?;
            points.push(point);
        }
        Ok(points)
    }
}

/// The combinations of varying values: the product of the axes, then the zip group as one more axis.
fn expand(
    axes: &[(String, Vec<Value>)],
    zip: &BTreeMap<String, Spanned<Vec<Value>>>,
    zip_len: Option<usize>,
) -> Vec<BTreeMap<String, Value>> {
    let mut combos: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
    for (k, values) in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    if let Some(n) = zip_len {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..n).map(move |i| {
                    let mut c = c.clone();
                    for (k, v) in zip {
                        c.insert(k.clone(), v.get_ref()[i].clone());
                    }
                    c
                })
            })
            .collect();
    }
    combos
}

impl Experiment {
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_text(path, &text)
    }

    pub fn from_text(path: &Path, text: &str) -> Result<Self, SpecError> {
        let src = Source { path, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => src.at(span, e.message().to_string()),
            None => SpecError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        })?;
        let (name, repetitions, warmup_runs) = src.header(&raw)?;
        let mut keys = KeyLines {
            src: &src,
            lines: BTreeMap::new(),
        };
        let (fixed, axes, zip_len) = keys.matrix(&raw)?;
        let combos = expand(&axes, &raw.zip, zip_len);
        let axis_names: Vec<String> = axes
            .iter()
            .map(|(k, _)| k.clone())
            .chain(raw.zip.keys().cloned())
            .collect();
        let mut points = keys.points(&fixed, combos)?;
        src.add_faults(&raw, &mut points)?;
        let adaptive = src.adaptive(&raw, &points)?;
        Ok(Experiment {
            name,
            description: raw.description,
            path: path.to_path_buf(),
            text: text.to_string(),
            repetitions,
            warmup_runs,
            points,
            axes: axis_names,
            adaptive,
        })
    }

    /// `experiments run --adaptive [--budget N]`: choose the runs (the file's `[adaptive]` table, or its defaults),
    /// at most `budget` points when given.
    pub fn make_adaptive(&mut self, budget: Option<usize>) -> Result<(), SpecError> {
        let mut raw = crate::model::plan::RawAdaptive::default();
        if let Some(plan) = &self.adaptive {
            // Keep the file's plan; only the budget changes.
            let mut plan = plan.clone();
            if let Some(b) = budget {
                if b < 3 || b > self.points.len() {
                    return Err(
                        self.invalid(format!("--budget {b} must be 3..={}", self.points.len()))
                    );
                }
                plan.stop.budget = b;
            }
            self.adaptive = Some(plan);
            return Ok(());
        }
        raw.budget = budget;
        let plan = crate::model::plan::AdaptivePlan::new(&raw, &self.points)
            .map_err(|m| self.invalid(m))?;
        self.adaptive = Some(plan);
        Ok(())
    }

    fn invalid(&self, message: String) -> SpecError {
        SpecError::Invalid {
            path: self.path.clone(),
            message,
        }
    }

    /// Runs in all (warm-up included).
    pub fn runs(&self) -> usize {
        self.points.len() * (self.repetitions + self.warmup_runs) as usize
    }

    /// Estimated time of all runs, seconds.
    pub fn estimate_s(&self) -> f64 {
        self.points
            .iter()
            .map(|p| p.estimate_s() * (self.repetitions + self.warmup_runs) as f64)
            .sum()
    }

    /// `experiments plan`: every run and how long it should take.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "experiment {} ({}): {} points x ({} measured + {} warm-up) = {} runs, about {}\n",
            self.name,
            self.path.display(),
            self.points.len(),
            self.repetitions,
            self.warmup_runs,
            self.runs(),
            human_duration(self.estimate_s())
        );
        if !self.description.is_empty() {
            s.push_str(&format!("  {}\n", self.description));
        }
        if let Some(a) = &self.adaptive {
            s.push_str(&format!("  {}\n", a.describe()));
        }
        if let Some(p) = self.points.first() {
            for f in &p.faults {
                s.push_str(&format!("  fault in every run: {}\n", f.describe()));
            }
        }
        for p in &self.points {
            if p.layout.kind == RunKind::Startup {
                s.push_str(&format!(
                    "  point {:>3} [{}] {}: start a {} pilot of {} node(s) on {}, about {:.0} s per run\n",
                    p.index + 1,
                    p.id,
                    p.label(),
                    p.layout.framework.name(),
                    p.layout.framework_nodes,
                    p.layout.resource,
                    p.estimate_s()
                ));
                continue;
            }
            let consumers = match p.layout.scaling {
                Scaling::Static => format!("{} MASA", p.consumer_processes()),
                Scaling::Autoscaled => format!("autoscaled MASA ({})", p.autoscale.describe()),
            };
            s.push_str(&format!(
                "  point {:>3} [{}] {}: {} MASS x {consumers} on {}, about {:.0} s per run\n",
                p.index + 1,
                p.id,
                p.label(),
                p.producer_processes(),
                p.layout.resource,
                p.estimate_s()
            ));
            let partitions = p.layout.partitions_per_broker_node * p.layout.broker_nodes;
            if p.consumer_processes() > partitions {
                s.push_str(&format!(
                    "    warning: {} consumer processes share {partitions} partitions: {} get none and wait out their start timeout (60 s)\n",
                    p.consumer_processes(),
                    p.consumer_processes() - partitions
                ));
            }
        }
        s
    }
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
pub fn human_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// The settings MASS and MASA get from the runner, not from the experiment.
const RUNNER_OWNED: &[(&str, &str)] = &[
    ("mass", "bootstrap_servers"),
    ("mass", "pilot"),
    ("mass", "pilot_workdir"),
    ("mass", "topic"),
    ("mass", "create_topic"),
    ("mass", "results_dir"),
    ("mass", "producer_id_base"),
    ("mass", "run_id"),
    ("masa", "bootstrap_servers"),
    ("masa", "pilot"),
    ("masa", "pilot_workdir"),
    ("masa", "topic"),
    ("masa", "group"),
    ("masa", "results_dir"),
    ("masa", "consumer_id"),
    ("masa", "expect_messages"),
    ("masa", "idle_timeout_s"),
    ("masa", "start_timeout_s"),
    ("masa", "run_id"),
];

/// Relative paths among `table`'s `keys` made absolute against `base` (the experiment file's directory), so a
/// file means the same wherever `experiments` runs from.
fn resolve_paths(table: &mut Table, keys: &[&str], base: &Path) {
    for key in keys {
        if let Some(Value::String(p)) = table.get_mut(*key) {
            let path = Path::new(p.as_str());
            if path.is_relative() {
                let joined = base.join(path);
                *p = std::path::absolute(&joined)
                    .unwrap_or(joined)
                    .display()
                    .to_string();
            }
        }
    }
}

/// The key of `table` that `T` refuses on its own (to name it in an error).
fn blame<T: serde::de::DeserializeOwned>(table: &Table) -> Option<String> {
    table
        .iter()
        .find(|(k, v)| {
            let mut one = Table::new();
            one.insert((*k).clone(), (*v).clone());
            T::deserialize(Value::Table(one)).is_err()
        })
        .map(|(k, _)| k.clone())
}

fn build_point(
    index: usize,
    settings: BTreeMap<String, Value>,
    varying: BTreeMap<String, Value>,
    base: &Path,
) -> Result<Point, (Option<String>, String)> {
    let mut layout_table = Table::new();
    let (mut mass, mut masa, mut autoscale) = (Table::new(), Table::new(), Table::new());
    for (k, v) in &settings {
        if let Some(key) = k.strip_prefix("mass.") {
            mass.insert(key.to_string(), v.clone());
        } else if let Some(key) = k.strip_prefix("masa.") {
            masa.insert(key.to_string(), v.clone());
        } else if let Some(key) = k.strip_prefix("autoscale.") {
            autoscale.insert(key.to_string(), v.clone());
        } else {
            layout_table.insert(k.clone(), v.clone());
        }
    }
    for (app, key) in RUNNER_OWNED {
        let table = if *app == "mass" { &mass } else { &masa };
        if table.contains_key(*key) {
            let full = format!("{app}.{key}");
            return Err((
                Some(full.clone()),
                format!("`{full}` is set by the runner for every run; remove it"),
            ));
        }
    }
    let layout: Layout = Layout::deserialize(Value::Table(layout_table.clone())).map_err(|e| {
        (
            blame::<Layout>(&layout_table),
            format!("layout: {}", e.message()),
        )
    })?;
    check_layout(&layout)?;
    let autoscale_plan = AutoscaleSettings::deserialize(Value::Table(autoscale.clone()))
        .map_err(|e| {
            (
                blame::<AutoscaleSettings>(&autoscale).map(|k| format!("autoscale.{k}")),
                format!("autoscale: {}", e.message()),
            )
        })?
        .check()
        .map_err(|e| {
            (
                e.key.as_ref().map(|k| format!("autoscale.{k}")),
                format!("autoscale: {}", e.message),
            )
        })?;
    if layout.scaling == Scaling::Autoscaled {
        if layout.kind == RunKind::Startup {
            return Err((
                Some("scaling".into()),
                "scaling = \"autoscaled\" applies to pipeline runs, not start-up runs".into(),
            ));
        }
        for key in ["processing_nodes", "consumer_processes_per_node"] {
            if layout_table.contains_key(key) {
                return Err((
                    Some(key.into()),
                    format!("{key}: an autoscaled run's consumers are 1-node pilots the controller starts and stops; size them with autoscale.min_consumers, max_consumers and initial_consumers"),
                ));
            }
        }
    }
    if layout.kind == RunKind::Startup {
        if let Some(k) = settings
            .keys()
            .find(|k| k.starts_with("mass.") || k.starts_with("masa."))
        {
            return Err((
                Some(k.clone()),
                format!("`{k}`: a start-up run (kind = \"startup\") starts no MASS or MASA"),
            ));
        }
        let id = point_id(&settings);
        return Ok(Point {
            index,
            id,
            settings,
            varying,
            layout,
            mass,
            masa,
            autoscale: autoscale_plan,
            faults: Vec::new(),
        });
    }
    for key in ["framework", "framework_nodes"] {
        if layout_table.contains_key(key) {
            return Err((
                Some(key.into()),
                format!("{key} applies to start-up runs (kind = \"startup\"); a pipeline's framework is Kafka"),
            ));
        }
    }
    resolve_paths(&mut mass, mass::config::PATH_SETTINGS, base);
    for key in mass::config::PROFILE_SETTINGS {
        if let Some(Value::String(spec)) = mass.get_mut(*key) {
            *spec = mass::profile::resolve_trace(spec, base);
        }
    }
    resolve_paths(&mut masa, masa::config::PATH_SETTINGS, base);
    // MASS and MASA check their own settings, with what the runner adds.
    let checked = |app: &str, table: &Table, with: fn(&Table) -> Result<(), ConfigError>| {
        let mut t = table.clone();
        t.insert("bootstrap_servers".into(), "127.0.0.1:9092".into());
        t.insert("topic".into(), "experiment".into());
        with(&t).map_err(|e| {
            (
                e.key.as_ref().map(|k| format!("{app}.{k}")),
                format!("{}: {}", app.to_uppercase(), e.message),
            )
        })
    };
    checked("mass", &mass, |t| {
        mass::config::RawConfig::from_table(t, "point")?
            .validate("point")
            .map(|_| ())
    })?;
    // MASS's own validation has refused an endless rate profile without a stop rule.
    if !["messages", "duration_s", "rate_profile"]
        .iter()
        .any(|k| mass.contains_key(*k))
    {
        return Err((
            None,
            "every run needs a stop rule: mass.messages, mass.duration_s or a finite mass.rate_profile".into(),
        ));
    }
    checked("masa", &masa, |t| {
        masa::config::RawConfig::from_table(t, "point")?
            .validate("point")
            .map(|_| ())
    })?;
    let id = point_id(&settings);
    Ok(Point {
        index,
        id,
        settings,
        varying,
        layout,
        mass,
        masa,
        autoscale: autoscale_plan,
        faults: Vec::new(),
    })
}

/// Whether `fault` can hit a run of `point`: SLURM-only actions on SLURM, targets that the layout has.
fn check_fault(point: &Point, fault: &pilot_core::ops::fault::Fault) -> Result<(), String> {
    use pilot_core::ops::fault::Role;
    let l = &point.layout;
    if l.kind == RunKind::Startup {
        return Err("faults apply to pipeline runs, not start-up runs".into());
    }
    if fault.action.needs_slurm() && !l.resource.starts_with("slurm") {
        return Err(format!(
            "{} needs a SLURM resource (this point runs on {})",
            fault.action.as_str(),
            l.resource
        ));
    }
    let (have, what) = match fault.target.role {
        Role::Broker => (l.broker_nodes, "broker_nodes"),
        Role::Producer => (point.producer_processes(), "producer processes"),
        Role::Consumer => match l.scaling {
            Scaling::Static => (point.consumer_processes(), "consumer processes"),
            Scaling::Autoscaled => (point.autoscale.max_consumers, "autoscale.max_consumers"),
        },
    };
    if fault.target.index >= have {
        return Err(format!(
            "target {} is past the run's {have} {what} (indexes start at 0)",
            fault.target
        ));
    }
    if fault.target.role == Role::Broker && l.distribution == "external" {
        return Err("an external broker is not this run's to hit".into());
    }
    Ok(())
}

fn check_layout(l: &Layout) -> Result<(), (Option<String>, String)> {
    for (key, v) in [
        ("framework_nodes", l.framework_nodes),
        ("broker_nodes", l.broker_nodes),
        ("partitions_per_broker_node", l.partitions_per_broker_node),
        ("producer_nodes", l.producer_nodes),
        ("producer_processes_per_node", l.producer_processes_per_node),
        ("processing_nodes", l.processing_nodes),
        ("consumer_processes_per_node", l.consumer_processes_per_node),
    ] {
        if v == 0 {
            return Err((Some(key.into()), format!("{key} must be at least 1")));
        }
    }
    for (key, v) in [
        ("run_timeout_s", l.run_timeout_s),
        ("consumer_idle_s", l.consumer_idle_s),
    ] {
        pilot_core::contract::config::seconds(key, Some(v))
            .map_err(|e| (Some(key.into()), e.message))?;
    }
    if !["tansu", "apache-kafka"].contains(&l.distribution.as_str()) {
        return Err((
            Some("distribution".into()),
            format!(
                "distribution `{}` is unknown (tansu, apache-kafka)",
                l.distribution
            ),
        ));
    }
    if l.distribution == "tansu" && l.broker_nodes != 1 {
        return Err((
            Some("broker_nodes".into()),
            format!(
                "broker_nodes = {}: tansu's in-memory storage serves one broker (use distribution = \"apache-kafka\" on a cluster for more)",
                l.broker_nodes
            ),
        ));
    }
    // Whether this build has a backend for the resource is pilot-core's to say when the run starts, so that
    // cluster-scale files can be planned anywhere.
    if !l.resource.contains("://") {
        return Err((
            Some("resource".into()),
            format!(
                "resource `{}` is not a URL (local://, slurm://localhost, ...)",
                l.resource
            ),
        ));
    }
    Ok(())
}

/// FNV-1a over the settings' canonical text: short, stable across builds and machines.
fn point_id(settings: &BTreeMap<String, Value>) -> String {
    let text = settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Experiment, SpecError> {
        Experiment::from_text(Path::new("x.toml"), text)
    }

    const BASE: &str = r#"
name = "t"
repetitions = 2
warmup_runs = 1
[fixed]
"mass.messages" = 100
"#;

    #[test]
    fn product_and_zip_expand() {
        let e = parse(&format!(
            "{BASE}[axes]\nproducer_processes_per_node = [1, 2]\n\"masa.window\" = [\"message\", \"count:2\", \"count:4\"]\n[zip]\n\"mass.points_per_message\" = [10, 20]\n\"mass.rate_msgs_per_s\" = [100.0, 50.0]\n"
        ))
        .unwrap();
        assert_eq!(e.points.len(), 2 * 3 * 2, "{}", e.describe());
        assert_eq!(e.runs(), 12 * 3);
        let p = &e.points[0];
        assert_eq!(p.layout.producer_processes_per_node, 1);
        assert_eq!(
            p.mass.get("points_per_message").unwrap().as_integer(),
            Some(10)
        );
        assert_eq!(
            p.mass.get("rate_msgs_per_s").unwrap().as_float(),
            Some(100.0)
        );
        let p = &e.points[1];
        assert_eq!(
            p.mass.get("points_per_message").unwrap().as_integer(),
            Some(20)
        );
        assert_eq!(
            p.mass.get("rate_msgs_per_s").unwrap().as_float(),
            Some(50.0)
        );
        // Ids are distinct per point and stable.
        let ids: std::collections::BTreeSet<_> = e.points.iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids.len(), 12);
        assert_eq!(parse(&format!(
            "{BASE}[axes]\nproducer_processes_per_node = [1, 2]\n\"masa.window\" = [\"message\", \"count:2\", \"count:4\"]\n[zip]\n\"mass.points_per_message\" = [10, 20]\n\"mass.rate_msgs_per_s\" = [100.0, 50.0]\n"
        )).unwrap().points[5].id, e.points[5].id);
        assert!(e
            .describe()
            .contains("12 points x (2 measured + 1 warm-up) = 36 runs"));
        assert_eq!(e.axes.len(), 4);
        // "(unset)" leaves a key out of a point.
        let e = parse(&format!(
            "{BASE}[zip]\n\"mass.source\" = [\"cluster\", \"static\"]\n\"mass.spread\" = [2.0, \"(unset)\"]\n"
        ))
        .unwrap();
        assert!(
            e.points[0].mass.contains_key("spread") && !e.points[1].mass.contains_key("spread")
        );
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let cases: &[(&str, &str)] = &[
            ("[axes]\nbrokers = [1]\n", "x.toml:8: unknown key `brokers`"),
            (
                "[axes]\n\"mass.mesages\" = [1]\n",
                "x.toml:8: point 1/1 (mass.mesages=1): MASS: unknown field `mesages`",
            ),
            (
                "[zip]\n\"mass.seed\" = [1, 2]\n\"mass.spread\" = [1.0]\n",
                "x.toml:9: zip axes move together",
            ),
            (
                "[axes]\n\"mass.messages\" = [5]\n",
                "x.toml:8: `mass.messages` is set twice (first on line 6)",
            ),
            (
                "[axes]\nbroker_nodes = [1, 3]\n",
                "x.toml:8: point 2/2 (broker_nodes=3): broker_nodes = 3: tansu's in-memory storage serves one broker",
            ),
            (
                "[axes]\n\"masa.processor\" = [\"spark\"]\n",
                "x.toml:8: point 1/1 (masa.processor=spark): MASA: unknown variant `spark`, expected one of `none`, `kmeans`, `gridrec`, `mlem`",
            ),
            (
                "[axes]\n\"masa.topic\" = [\"x\"]\n",
                "x.toml:8: point 1/1 (masa.topic=x): `masa.topic` is set by the runner",
            ),
            (
                "[axes]\nproducer_nodes = []\n",
                "x.toml:8: axis `producer_nodes` has no values",
            ),
            (
                "[axes]\nproducer_nodes = [0]\n",
                "x.toml:8: point 1/1 (producer_nodes=0): producer_nodes must be at least 1",
            ),
            (
                "[axes]\nproducer_nodes = [1, 2, 1]\n",
                "x.toml:8: axis `producer_nodes` lists 1 twice",
            ),
            ("[extra]\na = 1\n", "x.toml:7: unknown field `extra`"),
            // Numbers that used to panic or wrap around are errors naming the key and line.
            (
                "[axes]\nrun_timeout_s = [1e20]\n",
                "x.toml:8: point 1/1 (run_timeout_s=100000000000000000000.0): run_timeout_s = 100000000000000000000 s is longer than",
            ),
            (
                "[axes]\n\"masa.window\" = [\"time:1e300\"]\n",
                "x.toml:8: point 1/1 (masa.window=time:1e300): MASA: window `time:1e300`: time must be positive seconds, at most",
            ),
            (
                "[axes]\n\"mass.duration_s\" = [1e11]\n",
                "x.toml:8: point 1/1 (mass.duration_s=100000000000.0): MASS: duration_s = 100000000000 s is longer than",
            ),
            (
                "[axes]\n\"mass.acks\" = [\"most\"]\n",
                "x.toml:8: point 1/1 (mass.acks=most): MASS: acks `most` is unknown",
            ),
            (
                "[axes]\nconsumer_idle_s = [\"soon\"]\n",
                "x.toml:8: point 1/1 (consumer_idle_s=soon): layout: invalid type",
            ),
            // The controller's settings: a block or autoscale.<key>, checked like the rest.
            (
                "[autoscale]\ndecision_interval = 5\n",
                "x.toml:8: point 1/1 (fixed settings): autoscale: unknown field `decision_interval`",
            ),
            (
                "[axes]\n\"autoscale.target_utilisation\" = [0.8, 1.5]\n",
                "x.toml:8: point 2/2 (autoscale.target_utilisation=1.5): autoscale: target_utilisation must be in (0, 1]",
            ),
            (
                "[autoscale]\nmin_consumers = 2\n[axes]\n\"autoscale.min_consumers\" = [1]\n",
                "x.toml:10: `autoscale.min_consumers` is set twice",
            ),
            (
                "[axes]\nscaling = [\"elastic\"]\n",
                "x.toml:8: point 1/1 (scaling=elastic): layout: unknown variant `elastic`",
            ),
            (
                "[axes]\nscaling = [\"autoscaled\"]\nconsumer_processes_per_node = [2]\n",
                "x.toml:9: point 1/1 (consumer_processes_per_node=2 scaling=autoscaled): consumer_processes_per_node: an autoscaled run's consumers are 1-node pilots",
            ),
        ];
        for (tail, want) in cases {
            let err = parse(&format!("{BASE}{tail}")).unwrap_err().to_string();
            assert!(
                err.starts_with(want),
                "{tail:?}:\n  got  {err}\n  want {want}"
            );
        }
        let err = parse("name = \"t\"\n").unwrap_err().to_string();
        assert!(err.contains("needs a stop rule"), "{err}");
        let err = parse("name = \"a b\"\n[fixed]\n\"mass.messages\" = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:1: name `a b`"), "{err}");
    }
}
