//! Regression benchmarking: `compare` two results directories metric by metric (mean and spread over
//! repetitions), `baseline` a measured run into reference bands, and `check` a results directory against them.
//!
//! A baseline compares like with like: each band is one experiment's one point (its settings' hash) and metric,
//! made on one machine (its fingerprint: CPU model, cores, build profile; bands from another machine are
//! skipped, and said to be), with the band mean +- max(3 sd, 10 %) of the baseline's repetitions. Throughputs
//! are compared as ratios to the run's calibration measurement ([`crate::calibration`]: the same machine's
//! speed at that moment), processing times as products with it, so a shared machine that is slower today does
//! not flap while slower code does not pass. Counts (received, missing) are exact: a band of 3 sd, 0 when the
//! baseline never varied.
//!
//! A references file (hand-written bands need only metric, target, lower, upper):
//!
//! ```toml
//! [[band]]
//! experiment = "smoke"                      # optional: any experiment
//! metric = "consumer_throughput_msgs_per_s"
//! machine = "*"                             # "*" or a text the host name or CPU model contains
//! target = 1500.0
//! lower = 100.0                             # a breach below
//! upper = 1e9                               # or above
//! unit = "msg/s"
//! # Written by `experiments baseline`:
//! point = "bbef30f98122"                    # one point of the experiment
//! fingerprint = "Intel(R) Xeon(R) Processor | 2 cores | release"
//! scale = "per-calibration"                 # none | per-calibration | times-calibration
//! mean = 1.92                               # the baseline's mean and sd (in the scaled unit), repetitions
//! sd = 0.03
//! repetitions = 3
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{Manifest, Table, METRICS};

/// Mean and sample standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

fn load(dir: &Path) -> Result<Table, String> {
    Table::read(&dir.join("results.csv")).map_err(|e| e.to_string())
}

/// Per point and metric: the measured values.
fn by_point(t: &Table) -> BTreeMap<String, BTreeMap<&'static str, Vec<f64>>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, Vec<f64>>> = BTreeMap::new();
    for m in METRICS {
        for (row, v) in t.numbers(m) {
            if v.is_finite() {
                out.entry(row.get("point").cloned().unwrap_or_default())
                    .or_default()
                    .entry(m)
                    .or_default()
                    .push(v);
            }
        }
    }
    out
}

/// `experiments compare`: a text table of every metric both have, per point.
pub fn compare(baseline: &Path, current: &Path) -> Result<String, String> {
    let (b, c) = (load(baseline)?, load(current)?);
    let (bp, cp) = (by_point(&b), by_point(&c));
    let mut s = format!(
        "{:<14} {:<34} {:>22} {:>22} {:>9}\n",
        "point", "metric", "baseline (mean +- sd)", "current (mean +- sd)", "change"
    );
    let mut shared = 0;
    for (point, metrics) in &cp {
        let Some(base) = bp.get(point) else { continue };
        shared += 1;
        for m in METRICS {
            let (Some(x), Some(y)) = (base.get(m), metrics.get(m)) else {
                continue;
            };
            let ((bm, bs), (cm, cs)) = (mean_sd(x), mean_sd(y));
            let change = if bm != 0.0 {
                format!("{:+.1}%", 100.0 * (cm - bm) / bm.abs())
            } else {
                "-".into()
            };
            s.push_str(&format!(
                "{point:<14} {m:<34} {:>22} {:>22} {change:>9}\n",
                format!("{bm:.4} +- {bs:.3} (n={})", x.len()),
                format!("{cm:.4} +- {cs:.3} (n={})", y.len()),
            ));
        }
    }
    if shared == 0 {
        return Err(format!(
            "{} and {} share no point (points are matched by their settings)",
            baseline.display(),
            current.display()
        ));
    }
    Ok(s)
}

/// How a band's metric is compared: as measured, or against the run's calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    /// The value as measured.
    #[default]
    None,
    /// The value divided by the run's calibration (throughputs: faster machine, higher both).
    PerCalibration,
    /// The value times the run's calibration (times spent computing: faster machine, lower).
    TimesCalibration,
}

/// One reference band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// One point of the experiment (the settings' hash, results.csv's `point`); every run when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    pub metric: String,
    #[serde(default = "any_machine")]
    pub machine: String,
    /// The machine the band was measured on ([`Manifest::fingerprint`]); other machines skip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "is_default_scale")]
    pub scale: Scale,
    pub target: f64,
    pub lower: f64,
    pub upper: f64,
    #[serde(default)]
    pub unit: String,
    /// The baseline's mean, sd and repetitions (in the scaled unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetitions: Option<usize>,
}

fn is_default_scale(s: &Scale) -> bool {
    *s == Scale::None
}

fn any_machine() -> String {
    "*".into()
}

/// Where a baseline came from (written by `experiments baseline`, informative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineInfo {
    pub experiment: String,
    pub fingerprint: String,
    pub host: String,
    pub git_commit: String,
    pub file_sha256: String,
    pub created_utc: String,
    pub results_started_utc: String,
    /// The band's half-width: max(sds x sd, min_relative x |mean|) for rates and times.
    pub sds: f64,
    pub min_relative: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct References {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineInfo>,
    band: Vec<Band>,
}

/// Read a references file.
pub fn read_references(path: &Path) -> Result<Vec<Band>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let r: References = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for b in &r.band {
        if !METRICS.contains(&b.metric.as_str()) {
            return Err(format!(
                "{}: metric `{}` is not a results column ({})",
                path.display(),
                b.metric,
                METRICS.join(", ")
            ));
        }
        if !(b.lower <= b.target && b.target <= b.upper) {
            return Err(format!(
                "{}: band for {} needs lower <= target <= upper",
                path.display(),
                b.metric
            ));
        }
    }
    Ok(r.band)
}

/// What a baseline bands, and how: rates against the calibration, processing time times it, the rest as is.
/// `exact` metrics are counts: their band is `sds` sd wide, with no relative floor.
const BASELINE_METRICS: &[(&str, Scale, &str, bool)] = &[
    (
        "consumer_throughput_msgs_per_s",
        Scale::PerCalibration,
        "msg/s per calibration update/s",
        false,
    ),
    (
        "consumer_throughput_mb_per_s",
        Scale::PerCalibration,
        "MB/s per calibration update/s",
        false,
    ),
    (
        "producer_throughput_msgs_per_s",
        Scale::PerCalibration,
        "msg/s per calibration update/s",
        false,
    ),
    (
        "processing_ms_p50",
        Scale::TimesCalibration,
        "ms x calibration update/s",
        false,
    ),
    ("e2e_latency_ms_p50", Scale::None, "ms", false),
    ("e2e_latency_ms_p99", Scale::None, "ms", false),
    ("received_msgs", Scale::None, "msgs", true),
    ("missing_msgs", Scale::None, "msgs", true),
    ("rejected_msgs", Scale::None, "msgs", true),
];

/// A row's value of `metric`, scaled by its calibration as `scale` says (None when either is missing).
fn scaled(row: &BTreeMap<String, String>, metric: &str, scale: Scale) -> Option<f64> {
    let num = |k: &str| {
        row.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let v = num(metric)?;
    match scale {
        Scale::None => Some(v),
        Scale::PerCalibration => num(crate::calibration::METRIC)
            .filter(|c| *c > 0.0)
            .map(|c| v / c),
        Scale::TimesCalibration => num(crate::calibration::METRIC).map(|c| v * c),
    }
}

/// The measured runs of a table that finished (status ok), by point.
fn measured_ok(t: &Table) -> BTreeMap<String, Vec<&BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &t.rows {
        if r.get("warmup").map(String::as_str) == Some("true") {
            continue;
        }
        if r.get("status").map(String::as_str) != Some("ok") {
            continue;
        }
        out.entry(r.get("point").cloned().unwrap_or_default())
            .or_default()
            .push(r);
    }
    out
}

/// How wide `baseline` makes its bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineOptions {
    pub sds: f64,
    pub min_relative: f64,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            sds: 3.0,
            min_relative: 0.10,
        }
    }
}

/// `experiments baseline`: bands from a measured, complete results directory (every point at least two
/// finished repetitions), as a references file's text.
pub fn baseline(results: &Path, o: BaselineOptions) -> Result<String, String> {
    if !(o.sds.is_finite() && o.sds > 0.0 && (0.0..1.0).contains(&o.min_relative)) {
        return Err(format!(
            "--sds must be > 0 and --min-relative in [0, 1) (got {} and {})",
            o.sds, o.min_relative
        ));
    }
    let table = load(results)?;
    let manifest = Manifest::read(&results.join("manifest.json")).map_err(|e| e.to_string())?;
    if !manifest.complete {
        return Err(format!(
            "{}: the experiment did not finish (manifest.json: complete = false); a baseline needs every run",
            results.display()
        ));
    }
    let points = measured_ok(&table);
    if points.is_empty() {
        return Err(format!("{}: no finished measured runs", results.display()));
    }
    let mut bands = Vec::new();
    for (point, rows) in &points {
        if rows.len() < 2 {
            return Err(format!(
                "{}: point {point} has {} finished repetition(s); a band needs a spread, so at least 2 (raise repetitions)",
                results.display(),
                rows.len()
            ));
        }
        for &(metric, scale, unit, exact) in BASELINE_METRICS {
            let values: Vec<f64> = rows
                .iter()
                .filter_map(|r| scaled(r, metric, scale))
                .collect();
            if values.len() != rows.len() {
                continue;
            }
            let (mean, sd) = mean_sd(&values);
            let half = if exact {
                o.sds * sd
            } else {
                (o.sds * sd).max(o.min_relative * mean.abs())
            };
            let round = |x: f64| {
                if x == 0.0 {
                    0.0
                } else {
                    let d = 6 - x.abs().log10().floor() as i32;
                    let f = 10f64.powi(d.clamp(0, 15));
                    (x * f).round() / f
                }
            };
            let (lower, upper) = (round(mean - half), round(mean + half));
            bands.push(Band {
                experiment: Some(manifest.experiment.clone()),
                point: Some(point.clone()),
                metric: metric.into(),
                machine: "*".into(),
                fingerprint: Some(manifest.fingerprint()),
                scale,
                target: round(mean).clamp(lower, upper),
                lower,
                upper,
                unit: unit.into(),
                mean: Some(round(mean)),
                sd: Some(round(sd)),
                repetitions: Some(values.len()),
            });
        }
    }
    let refs = References {
        baseline: Some(BaselineInfo {
            experiment: manifest.experiment.clone(),
            fingerprint: manifest.fingerprint(),
            host: manifest.host.clone(),
            git_commit: manifest.git_commit.clone(),
            file_sha256: manifest.file_sha256.clone(),
            created_utc: pilot_core::contract::clock::now_utc(),
            results_started_utc: manifest.started_utc.clone(),
            sds: o.sds,
            min_relative: o.min_relative,
        }),
        band: bands,
    };
    let body = toml::to_string(&refs).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Baseline of `{}` from {} (experiments baseline): bands per point and metric, mean +- max({} sd, {} %)\n# for rates and times, {} sd for counts; throughputs per calibration update/s. Check with\n#   experiments check RESULTS --references THIS_FILE\n\n{body}",
        manifest.experiment,
        results.display(),
        o.sds,
        o.min_relative * 100.0,
        o.sds
    ))
}

/// The verdict of `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub text: String,
    pub breaches: usize,
    pub checked: usize,
}

/// `experiments check`: the mean of each banded metric over the measured runs (of the band's point, scaled as
/// the band says), against its band. Bands for other experiments or machines are skipped, and said to be; a
/// banded metric with no value is a breach.
pub fn check(results: &Path, bands: &[Band], machine: Option<&str>) -> Result<CheckReport, String> {
    let table = load(results)?;
    let manifest = Manifest::read(&results.join("manifest.json")).map_err(|e| e.to_string())?;
    let fingerprint = machine
        .map(String::from)
        .unwrap_or_else(|| manifest.fingerprint());
    let machine = machine
        .map(String::from)
        .unwrap_or_else(|| format!("{} {}", manifest.host, manifest.cpu_model));
    let mut text = format!(
        "checking {} ({}) on `{machine}` (fingerprint `{fingerprint}`)\n",
        results.display(),
        manifest.experiment
    );
    if !manifest.complete {
        text.push_str("  note: the experiment did not finish (manifest.json: complete = false)\n");
    }
    let points = measured_ok(&table);
    let (mut breaches, mut checked) = (0, 0);
    let mut other_machine: BTreeMap<String, usize> = BTreeMap::new();
    for b in bands {
        if b.experiment
            .as_deref()
            .is_some_and(|e| e != manifest.experiment)
        {
            continue;
        }
        if b.machine != "*" && !machine.contains(&b.machine) {
            continue;
        }
        if let Some(f) = &b.fingerprint {
            if *f != fingerprint {
                *other_machine.entry(f.clone()).or_default() += 1;
                continue;
            }
        }
        checked += 1;
        let values: Vec<f64> = match &b.point {
            Some(p) => points
                .get(p)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| scaled(r, &b.metric, b.scale))
                        .collect()
                })
                .unwrap_or_default(),
            None => table
                .rows
                .iter()
                .filter(|r| r.get("warmup").map(String::as_str) != Some("true"))
                .filter_map(|r| scaled(r, &b.metric, b.scale))
                .collect(),
        };
        let (m, sd) = mean_sd(&values);
        let ok = !values.is_empty() && m >= b.lower && m <= b.upper;
        if !ok {
            breaches += 1;
        }
        let ratio = b
            .mean
            .filter(|x| *x != 0.0 && !values.is_empty())
            .map(|x| format!(" ({:.2}x baseline)", m / x))
            .unwrap_or_default();
        let why = if values.is_empty() {
            match (&b.point, b.scale) {
                (Some(p), _) if !points.contains_key(p) => {
                    format!(" (point {p} has no finished measured run here)")
                }
                (_, Scale::None) => " (no value)".into(),
                _ => " (no value, or no calibration recorded)".into(),
            }
        } else {
            String::new()
        };
        text.push_str(&format!(
            "  {} {}{:<34} {:>12} +- {:<10} {:<6} band [{}, {}], target {}{ratio}{why}\n",
            if ok { "ok    " } else { "BREACH" },
            b.point
                .as_deref()
                .map(|p| format!("{p} "))
                .unwrap_or_default(),
            b.metric,
            fmt_value(m),
            fmt_value(sd),
            b.unit,
            fmt_value(b.lower),
            fmt_value(b.upper),
            fmt_value(b.target)
        ));
    }
    for (f, n) in &other_machine {
        text.push_str(&format!(
            "  skipped {n} band(s) measured on another machine (`{f}`): make a baseline on this one with `experiments baseline`\n"
        ));
    }
    Ok(CheckReport {
        text,
        breaches,
        checked,
    })
}

/// A number for a verdict line: 4 significant figures.
fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let d = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{v:.d$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_bands() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
        assert_eq!((m, sd), (2.0, 1.0));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(
            &p,
            "[[band]]\nmetric = \"nonsense\"\ntarget = 1.0\nlower = 0.0\nupper = 2.0\n",
        )
        .unwrap();
        assert!(read_references(&p)
            .unwrap_err()
            .contains("not a results column"));
        std::fs::write(
            &p,
            "[[band]]\nmetric = \"received_msgs\"\ntarget = 1.0\nlower = 2.0\nupper = 3.0\n",
        )
        .unwrap();
        assert!(read_references(&p).unwrap_err().contains("lower <= target"));
    }
}
