//! Regression benchmarking: `compare` two results directories metric by metric (mean and spread over
//! repetitions), and `check` a results directory against reference bands per metric and machine.
//!
//! A references file:
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
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

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

/// One reference band.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub experiment: Option<String>,
    pub metric: String,
    #[serde(default = "any_machine")]
    pub machine: String,
    pub target: f64,
    pub lower: f64,
    pub upper: f64,
    #[serde(default)]
    pub unit: String,
}

fn any_machine() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct References {
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

/// The verdict of `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub text: String,
    pub breaches: usize,
    pub checked: usize,
}

/// `experiments check`: the mean of each banded metric over the measured runs, against its band. Bands for
/// other experiments or machines are skipped; a banded metric with no value is a breach.
pub fn check(results: &Path, bands: &[Band], machine: Option<&str>) -> Result<CheckReport, String> {
    let table = load(results)?;
    let manifest = Manifest::read(&results.join("manifest.json")).map_err(|e| e.to_string())?;
    let machine = machine
        .map(String::from)
        .unwrap_or_else(|| format!("{} {}", manifest.host, manifest.cpu_model));
    let mut text = format!(
        "checking {} ({}) on `{machine}`\n",
        results.display(),
        manifest.experiment
    );
    let (mut breaches, mut checked) = (0, 0);
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
        checked += 1;
        let values: Vec<f64> = table
            .numbers(&b.metric)
            .map(|(_, v)| v)
            .filter(|v| v.is_finite())
            .collect();
        let (m, sd) = mean_sd(&values);
        let ok = !values.is_empty() && m >= b.lower && m <= b.upper;
        if !ok {
            breaches += 1;
        }
        text.push_str(&format!(
            "  {} {:<34} {:>12.3} +- {:<10.3} {:<6} band [{}, {}], target {}\n",
            if ok { "ok    " } else { "BREACH" },
            b.metric,
            m,
            sd,
            b.unit,
            b.lower,
            b.upper,
            b.target
        ));
    }
    Ok(CheckReport {
        text,
        breaches,
        checked,
    })
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
