//! What to draw from a results directory: the paper's figure for `fig6*` .. `fig9*` experiments, a generic
//! figure otherwise, and for every experiment latency percentiles per point and throughput over time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use experiments::compare::mean_sd;
use experiments::results::{Table, KEY_COLUMNS, METRICS};

use crate::chart::{render, Figure, Look, Panel, Series};
use crate::PlotError;

/// A results directory, read.
pub struct Results {
    pub dir: PathBuf,
    pub name: String,
    pub table: Table,
}

impl Results {
    pub fn read(dir: &Path) -> Result<Self, PlotError> {
        let path = dir.join("results.csv");
        let table = Table::read(&path).map_err(|e| PlotError::Input {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let measured = table
            .rows
            .iter()
            .filter(|r| r.get("warmup").map(String::as_str) != Some("true"))
            .count();
        if measured == 0 {
            return Err(PlotError::Input {
                path,
                message: "no measured runs to plot (only warm-up rows, or none)".into(),
            });
        }
        let name = table
            .rows
            .first()
            .and_then(|r| r.get("experiment").cloned())
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            });
        Ok(Results {
            dir: dir.to_path_buf(),
            name,
            table,
        })
    }

    /// Whether any measured row has a value for `metric`.
    pub fn has_metric(&self, metric: &str) -> bool {
        self.measured()
            .any(|r| r.get(metric).is_some_and(|v| v.parse::<f64>().is_ok()))
    }

    /// Setting columns whose value differs between measured rows, in column order.
    pub fn varying(&self) -> Vec<String> {
        self.table
            .columns
            .iter()
            .filter(|c| !KEY_COLUMNS.contains(&c.as_str()) && !METRICS.contains(&c.as_str()))
            .filter(|c| {
                let mut vals: Vec<&str> = self
                    .measured()
                    .map(|r| r.get(*c).map(String::as_str).unwrap_or(""))
                    .collect();
                vals.sort();
                vals.dedup();
                vals.len() > 1
            })
            .cloned()
            .collect()
    }

    fn measured(&self) -> impl Iterator<Item = &BTreeMap<String, String>> {
        self.table.rows.iter().filter(|r| {
            r.get("warmup").map(String::as_str) != Some("true")
                && r.get("status").map(String::as_str) != Some("failed")
        })
    }

    /// Series of `metric` against `x`, one series per combination of `by`, one panel per value of `facet`.
    /// Categorical x (non-numbers) are placed at 0, 1, 2 ... in order of appearance.
    fn grouped(
        &self,
        x: &str,
        metric: &str,
        by: &[String],
        facet: Option<&str>,
    ) -> (Vec<Panel>, Option<Vec<String>>) {
        let numeric = self
            .measured()
            .all(|r| r.get(x).is_some_and(|v| v.parse::<f64>().is_ok()));
        let mut categories: Vec<String> = Vec::new();
        if !numeric {
            for r in self.measured() {
                let v = r.get(x).cloned().unwrap_or_default();
                if !categories.contains(&v) {
                    categories.push(v);
                }
            }
        }
        // facet -> series -> x -> values
        let mut acc: BTreeMap<String, BTreeMap<String, ValuesAtX>> = BTreeMap::new();
        for r in self.measured() {
            let Some(v) = r
                .get(metric)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            else {
                continue;
            };
            let xv = if numeric {
                r[x].parse::<f64>().unwrap_or(f64::NAN)
            } else {
                categories
                    .iter()
                    .position(|c| Some(c) == r.get(x))
                    .unwrap_or(0) as f64
            };
            let f = facet
                .map(|f| format!("{f} = {}", r.get(f).cloned().unwrap_or_default()))
                .unwrap_or_default();
            let s = label_of(r, by);
            acc.entry(f)
                .or_default()
                .entry(s)
                .or_default()
                .entry(xv.to_bits())
                .or_insert((xv, vec![]))
                .1
                .push(v);
        }
        let panels = acc
            .into_iter()
            .map(|(title, series)| Panel {
                title,
                series: series
                    .into_iter()
                    .map(|(name, xs)| {
                        let mut points: Vec<(f64, f64, f64)> = xs
                            .into_values()
                            .map(|(x, v)| {
                                let (m, sd) = mean_sd(&v);
                                (x, m, sd)
                            })
                            .collect();
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        Series::measured(name, points)
                    })
                    .collect(),
            })
            .collect();
        (panels, (!numeric).then_some(categories))
    }
}

/// A point's legend text: its values of the varying settings (`alone` when nothing varies).
fn point_label(row: &BTreeMap<String, String>, varying: &[String], alone: &str) -> String {
    if varying.is_empty() {
        return alone.to_string();
    }
    label_of(row, varying)
}

/// `key=value, ...` for the keys a row has a value for (a point without a setting leaves it out).
fn label_of(row: &BTreeMap<String, String>, keys: &[String]) -> String {
    keys.iter()
        .filter_map(|k| {
            row.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{}={v}", short(k)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values of one series by x (keyed by the bits of x): `(x, values)`.
type ValuesAtX = BTreeMap<u64, (f64, Vec<f64>)>;

/// A setting's name without its `mass.`/`masa.` prefix, for legends.
fn short(key: &str) -> &str {
    key.strip_prefix("mass.")
        .or_else(|| key.strip_prefix("masa."))
        .unwrap_or(key)
}

fn figure(
    stem: &str,
    title: String,
    x: &str,
    y_label: &str,
    (log_x, log_y): (bool, bool),
    (panels, cats): (Vec<Panel>, Option<Vec<String>>),
) -> Figure {
    Figure {
        log_x: log_x && cats.is_none(),
        log_y,
        x_categories: cats,
        panels,
        ..Figure::new(stem, &title, &axis_label(x), y_label)
    }
}

/// An axis label with its unit where the setting's name carries one.
fn axis_label(key: &str) -> String {
    let k = short(key);
    for (suffix, unit) in [
        ("_s", "s"),
        ("_ms", "ms"),
        ("_mb", "MB"),
        ("_msgs_per_s", "msg/s"),
        ("_bytes", "bytes"),
    ] {
        if let Some(base) = k.strip_suffix(suffix) {
            return format!("{} ({unit})", base.replace('_', " "));
        }
    }
    k.replace('_', " ")
}

/// One series per metric (e.g. start-up of each pilot kind) against `x`.
fn metrics_as_series(
    r: &Results,
    x: &str,
    metrics: &[(&str, &str)],
) -> (Vec<Panel>, Option<Vec<String>>) {
    let mut series = Vec::new();
    let mut cats = None;
    for (m, label) in metrics {
        let (panels, c) = r.grouped(x, m, &[], None);
        cats = c;
        for p in panels {
            for mut s in p.series {
                s.name = label.to_string();
                series.push(s);
            }
        }
    }
    (
        vec![Panel {
            title: String::new(),
            series,
        }],
        cats,
    )
}

fn first_of(varying: &[String], candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|c| varying.iter().any(|v| v == *c))
        .map(|c| c.to_string())
}

/// The figures for a results directory.
pub fn plan(r: &Results) -> Vec<Figure> {
    let varying = r.varying();
    let mut out = Vec::new();
    let others = |x: &str, facet: Option<&str>| -> Vec<String> {
        varying
            .iter()
            .filter(|v| *v != x && Some(v.as_str()) != facet)
            .cloned()
            .collect()
    };
    let name = r.name.as_str();
    if name.starts_with("fig6") && r.has_metric("framework_startup_s") {
        // Start-up runs: one line per framework against nodes, a panel per resource (the paper's Figure 6).
        let facet = varying
            .iter()
            .any(|v| v == "resource")
            .then_some("resource");
        let by: Vec<String> = varying
            .iter()
            .filter(|v| *v == "framework")
            .cloned()
            .collect();
        out.push(figure(
            "fig6-startup",
            "Framework start-up time vs nodes (paper Fig. 6)".into(),
            "framework_nodes",
            "start-up time, submit to ready (s)",
            (true, true),
            r.grouped("framework_nodes", "framework_startup_s", &by, facet),
        ));
    } else if name.starts_with("fig6") {
        if let Some(x) = first_of(
            &varying,
            &["processing_nodes", "broker_nodes", "producer_nodes"],
        ) {
            out.push(figure(
                "fig6-startup",
                "Pilot start-up time vs nodes (paper Fig. 6)".into(),
                &x,
                "start-up time (s)",
                (true, true),
                metrics_as_series(
                    r,
                    &x,
                    &[
                        ("broker_startup_s", "Kafka broker pilot"),
                        ("producer_pilot_startup_s", "producer pilot"),
                        ("processing_pilot_startup_s", "processing pilot"),
                    ],
                ),
            ));
        }
    } else if name.starts_with("fig7") {
        let x = first_of(&varying, &["masa.window"])
            .unwrap_or_else(|| varying.first().cloned().unwrap_or_default());
        out.push(figure(
            "fig7-latency",
            "End-to-end latency vs window (paper Fig. 7)".into(),
            &x,
            "latency from intended send (ms)",
            (false, true),
            metrics_as_series(
                r,
                &x,
                &[
                    ("processed_latency_ms_p50", "to window processed, p50"),
                    ("processed_latency_ms_p99", "to window processed, p99"),
                    ("e2e_latency_ms_p50", "to receipt, p50"),
                ],
            ),
        ));
    } else if name.starts_with("fig8") {
        let x = first_of(&varying, &["producer_nodes", "producer_processes_per_node"])
            .unwrap_or_default();
        let facet = first_of(&varying, &["broker_nodes"]);
        for (stem, m, label) in [
            (
                "fig8-producer-mb",
                "producer_throughput_mb_per_s",
                "producer throughput (MB/s)",
            ),
            (
                "fig8-producer-msgs",
                "producer_throughput_msgs_per_s",
                "producer throughput (msg/s)",
            ),
        ] {
            // As the paper drew it: a bar per source at each x, a panel per broker count.
            let mut f = figure(
                stem,
                "Producer throughput (paper Fig. 8)".into(),
                &x,
                label,
                (false, true),
                r.grouped(&x, m, &others(&x, facet.as_deref()), facet.as_deref()),
            );
            f.look = Look::Bars;
            out.push(f);
        }
    } else if name.starts_with("fig9") {
        let x = first_of(
            &varying,
            &["processing_nodes", "consumer_processes_per_node"],
        )
        .unwrap_or_default();
        let facet = first_of(&varying, &["broker_nodes"]);
        let by: Vec<String> = others(&x, facet.as_deref())
            .into_iter()
            .filter(|k| k == "masa.processor")
            .collect();
        out.push(figure(
            "fig9-processing",
            "Processing throughput (paper Fig. 9)".into(),
            &x,
            "processing throughput (msg/s)",
            (true, true),
            r.grouped(&x, "consumer_throughput_msgs_per_s", &by, facet.as_deref()),
        ));
    } else if let Some(x) = varying.first() {
        for (stem, m, label) in [
            (
                "throughput",
                "consumer_throughput_msgs_per_s",
                "consumer throughput (msg/s)",
            ),
            (
                "latency-p50",
                "e2e_latency_ms_p50",
                "end-to-end latency p50 (ms)",
            ),
        ] {
            out.push(figure(
                stem,
                format!("{}: {label}", r.name),
                x,
                label,
                (false, false),
                r.grouped(x, m, &others(x, None), None),
            ));
        }
    }
    out.push(percentiles(r, &varying));
    out
}

/// End-to-end latency by percentile, one line per point, as HdrHistogram's plotter draws it: x is 1/(1-p) on a
/// log axis labelled 50 %, 90 %, 99 %, 99.9 %, ... From the first measured repetition's merged distribution
/// (`e2e-latency.hgrm`); a run without one (older results, a killed consumer) is drawn from its p50, p90 and
/// p99 columns, with markers.
fn percentiles(r: &Results, varying: &[String]) -> Figure {
    let mut seen = std::collections::BTreeSet::new();
    let mut series = Vec::new();
    let mut from_hgrm = 0usize;
    for row in r.measured() {
        let (Some(point), Some(rep)) = (row.get("point"), row.get("repetition")) else {
            continue;
        };
        if !seen.insert(point.clone()) {
            continue;
        }
        let name = point_label(row, varying, "all runs");
        let run = r.dir.join("runs").join(format!("{point}-r{rep}"));
        let points: Vec<(f64, f64, f64)> =
            match experiments::results::read_latency_distribution(&run) {
                Ok(d) => {
                    from_hgrm += 1;
                    d.iter()
                        .filter(|p| p.percentile < 1.0)
                        .map(|p| (p.inverse(), p.value, 0.0))
                        .collect()
                }
                Err(_) => [
                    (2.0, "e2e_latency_ms_p50"),
                    (10.0, "e2e_latency_ms_p90"),
                    (100.0, "e2e_latency_ms_p99"),
                ]
                .iter()
                .filter_map(|(x, m)| {
                    row.get(*m)
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                        .map(|v| (*x, v, 0.0))
                })
                .collect(),
            };
        if !points.is_empty() {
            series.push(Series::measured(name, points));
        }
    }
    Figure {
        log_x: true,
        log_y: true,
        x_ticks: Some(
            crate::style::PERCENTILE_TICKS
                .iter()
                .map(|(x, l)| (*x, l.to_string()))
                .collect(),
        ),
        look: if from_hgrm == series.len() && !series.is_empty() {
            Look::Curves
        } else {
            Look::Lines
        },
        panels: vec![Panel {
            title: String::new(),
            series,
        }],
        ..Figure::new(
            "latency-percentiles",
            &format!("{}: end-to-end latency by percentile", r.name),
            "percentile (log scale of 1/(1-p))",
            "end-to-end latency (ms)",
        )
    }
}

/// Consumer throughput over time for the first measured repetition of each point (all consumer processes
/// added up per interval).
pub fn throughput_over_time(r: &Results) -> Option<Figure> {
    let varying = r.varying();
    let mut series = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for row in r.measured() {
        let point = row.get("point")?.clone();
        if !seen.insert(point.clone()) {
            continue;
        }
        let run = r
            .dir
            .join("runs")
            .join(format!("{point}-r{}", row.get("repetition")?));
        let Ok(rows) = experiments::results::read_timeline(&run) else {
            continue;
        };
        if rows.is_empty() {
            continue;
        }
        let name = point_label(row, &varying, "run");
        series.push(Series::measured(
            name,
            rows.iter()
                .map(|r| (r.t_s, r.consumed_msgs_per_s, 0.0))
                .collect(),
        ));
    }
    (!series.is_empty()).then(|| Figure {
        look: Look::Curves,
        panels: vec![Panel {
            title: String::new(),
            series,
        }],
        ..Figure::new(
            "throughput-over-time",
            &format!(
                "{}: consumer throughput over time (first repetition)",
                r.name
            ),
            "time since the run's first process started (s)",
            "consumer throughput (msg/s)",
        )
    })
}

/// For elastic runs (those with the `autoscaled` metric: a rate profile or an autoscaled point), the first
/// measured repetition of each point over time: rates, lag, consumers, scaling events.
pub fn elastic_timelines(r: &Results) -> Vec<crate::timeline::TimeFigure> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for row in r.measured() {
        let (Some(point), Some(rep)) = (row.get("point"), row.get("repetition")) else {
            continue;
        };
        if row.get("autoscaled").is_none_or(|v| v.is_empty()) || !seen.insert(point.clone()) {
            continue;
        }
        let run = r.dir.join("runs").join(format!("{point}-r{rep}"));
        let Ok(rows) = experiments::results::read_timeline(&run) else {
            continue;
        };
        let num = |k: &str| {
            row.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let how = if num("autoscaled") == 1.0 {
            "autoscaled"
        } else {
            "static"
        };
        // The point's settings are in results.csv; the title stays short enough to read.
        let title = format!(
            "{} ({how}, point {point}): {:.0} consumer-s, peak lag {:.0} msgs, {:.0} scaling events",
            r.name,
            num("consumer_seconds"),
            num("peak_lag_msgs"),
            num("scale_events"),
        );
        out.push(crate::timeline::from_timeline(
            &format!("timeline-{point}"),
            &title,
            &rows,
        ));
    }
    out
}

/// Where the figures of results directory `dir` go: `out`, or `dir/figures`.
pub fn out_dir(dir: &Path, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("figures"))
}

/// [`plot_dir`], then the HTML report beside the figures; returns every file written, the report last.
pub fn plot_dir_with_report(dir: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>, PlotError> {
    let mut files = plot_dir(dir, out)?;
    let r = Results::read(dir)?;
    let page = crate::report::write(&r, &out_dir(dir, out), &files)?;
    files.push(page);
    Ok(files)
}

/// Draw every figure of `dir` into `out` (default `dir/figures`); returns the files written.
pub fn plot_dir(dir: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>, PlotError> {
    let r = Results::read(dir)?;
    let out = out_dir(dir, out);
    std::fs::create_dir_all(&out).map_err(|e| PlotError::Input {
        path: out.clone(),
        message: e.to_string(),
    })?;
    let mut figs = plan(&r);
    figs.extend(throughput_over_time(&r));
    figs.extend(crate::models::model_figures(&r));
    let mut files = Vec::new();
    for f in &figs {
        files.extend(render(f, &out)?);
    }
    for f in elastic_timelines(&r) {
        files.extend(crate::timeline::render(&f, &out)?);
    }
    Ok(files)
}
