//! Every metric of every group fitted and reported: each form's held-out error and parameters (with bootstrap
//! intervals), the chosen one, the predicted optimum over counts up to four times the largest measured, the
//! pipeline's bottleneck, and predictions at settings a sweep did not run. Results are text; what is predicted is
//! always labelled so.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::data::{series, Layout, Series};
use super::forms::Model;
use super::select::{bootstrap, choose, interval_90, Choice};
use super::ModelError;
use crate::results::Table;

/// The metrics modelled when none are named (those the results hold).
pub const DEFAULT_METRICS: &[&str] = &[
    "producer_throughput_msgs_per_s",
    "consumer_throughput_msgs_per_s",
    "e2e_latency_ms_p50",
    "e2e_latency_ms_p99",
    "framework_startup_s",
    "consumer_seconds",
];

/// Bootstrap rounds behind every interval.
pub const BOOTSTRAP_ROUNDS: usize = 200;

/// A rate (higher is better, the scalability law applies) rather than a time or a cost.
pub fn is_rate(metric: &str) -> bool {
    metric.contains("_per_s")
}

/// One metric of one group: its observations, the choice of form, and the chosen form's bootstrap refits.
#[derive(Debug, Clone)]
pub struct MetricFit {
    pub metric: String,
    pub series: Series,
    pub choice: Result<Choice, ModelError>,
    pub boots: Vec<Model>,
}

/// A predicted value with its 90 % bootstrap interval and the form that gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    pub form: &'static str,
}

impl MetricFit {
    /// The chosen model's prediction at (`n`, `size`); None when there is no model or no finite answer.
    pub fn predict(&self, n: f64, size: f64) -> Option<Prediction> {
        let choice = self.choice.as_ref().ok()?;
        let value = choice.model().predict(n, size);
        if !value.is_finite() {
            return None;
        }
        let mut boot: Vec<f64> = self.boots.iter().map(|m| m.predict(n, size)).collect();
        Some(Prediction {
            value,
            interval: interval_90(&mut boot),
            form: choice.model().form().name(),
        })
    }

    /// The best predicted (count, size) over the measured sizes and counts 1 to four times the largest measured.
    pub fn optimum(&self) -> Option<(f64, f64, Prediction)> {
        let best_high = is_rate(&self.metric);
        candidates(&self.series)
            .into_iter()
            .filter_map(|(n, s)| self.predict(n, s).map(|p| (n, s, p)))
            .max_by(|a, b| {
                let o = a.2.value.total_cmp(&b.2.value);
                if best_high {
                    o
                } else {
                    o.reverse()
                }
            })
    }
}

/// Counts 1..=4 x the largest measured (at most 256), at each measured size.
fn candidates(s: &Series) -> Vec<(f64, f64)> {
    let max_n = s.obs.iter().map(|o| o.n).fold(1.0, f64::max);
    let top = (4.0 * max_n).min(256.0).round() as u32;
    let mut sizes: Vec<f64> = s.obs.iter().map(|o| o.size).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    sizes
        .iter()
        .flat_map(|&size| (1..=top).map(move |n| (f64::from(n), size)))
        .collect()
}

/// Fit `metrics` (or the default ones the results hold) for every group of `table`.
pub fn fit_all(
    table: &Table,
    layout: &Layout,
    metrics: &[String],
    seed: u64,
) -> Result<Vec<MetricFit>, ModelError> {
    let metrics: Vec<String> = if metrics.is_empty() {
        DEFAULT_METRICS
            .iter()
            .filter(|m| table.numbers(m).next().is_some())
            .map(|m| m.to_string())
            .collect()
    } else {
        metrics.to_vec()
    };
    let mut out = Vec::new();
    for metric in metrics {
        let rate = is_rate(&metric);
        for s in series(table, layout, &metric)? {
            let choice = choose(&s.obs, rate);
            let boots = match &choice {
                Ok(c) => bootstrap(c.model().form(), &s.obs, rate, BOOTSTRAP_ROUNDS, seed),
                Err(_) => vec![],
            };
            out.push(MetricFit {
                metric: metric.clone(),
                series: s,
                choice,
                boots,
            });
        }
    }
    Ok(out)
}

fn num(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn with_interval(v: f64, i: Option<(f64, f64)>) -> String {
    match i {
        Some((lo, hi)) => format!("{} [{}, {}]", num(v), num(lo), num(hi)),
        None => num(v),
    }
}

/// One metric's fit as text.
fn render_fit(f: &MetricFit, out: &mut String) {
    let points = super::select::by_point(&f.series.obs).len();
    let _ = writeln!(
        out,
        "{} [{}]: {} runs at {} points{}",
        f.metric,
        f.series.group_text(),
        f.series.obs.len(),
        points,
        if f.series.left_out > 0 {
            format!(" ({} left out: not ok, or no value)", f.series.left_out)
        } else {
            String::new()
        }
    );
    let c = match &f.choice {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "  no model: {e}");
            return;
        }
    };
    for (i, a) in c.assessed.iter().enumerate() {
        let cv = match &a.cv {
            Ok(cv) => format!(
                "held-out error median {:.1} %, max {:.1} % ({} points)",
                cv.median_ape_pct, cv.max_ape_pct, cv.folds
            ),
            Err(e) => format!("not assessed: {e}"),
        };
        let params = match (&a.model, i == c.chosen) {
            (Ok(m), true) => param_text(m, &f.boots),
            (Ok(m), false) => m
                .params()
                .iter()
                .map(|(k, v)| format!("{k} {}", num(*v)))
                .collect::<Vec<_>>()
                .join(", "),
            (Err(_), _) => String::new(),
        };
        let mark = if i == c.chosen { "  <- chosen" } else { "" };
        let line = format!("  {:<14} {cv}  {params}{mark}", a.form.name());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(peak) = c.model().usl_peak() {
        let mut peaks: Vec<f64> = f.boots.iter().filter_map(Model::usl_peak).collect();
        let _ = writeln!(
            out,
            "  peak N* (count where the rate turns down): {}",
            with_interval(peak, interval_90(&mut peaks))
        );
    }
    if let Some((n, size, p)) = f.optimum() {
        let _ = writeln!(
            out,
            "  predicted optimum: count {} size {}: {} ({})",
            num(n),
            num(size),
            with_interval(p.value, p.interval),
            p.form
        );
    }
}

fn param_text(m: &Model, boots: &[Model]) -> String {
    m.params()
        .iter()
        .enumerate()
        .map(|(j, (k, v))| {
            let mut b: Vec<f64> = boots
                .iter()
                .filter_map(|bm| bm.params().get(j).map(|p| p.1))
                .collect();
            format!("{k} {}", with_interval(*v, interval_90(&mut b)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where one group's pipeline rate is set at one size: the side that limits it from each count on where that
/// changes (the first entry from the smallest count).
#[derive(Debug, Clone, PartialEq)]
pub struct Bottleneck {
    pub group: String,
    pub size: f64,
    pub moves: Vec<(f64, &'static str)>,
}

/// The pipeline's rate at each count is the smaller of the producer's and the consumer's modelled capacity;
/// where the producers' side sets it and their rate has stopped growing with their own count (under 10 % more
/// from N to 2N, the count being producers), the limit they share is named: the broker. One entry per group and
/// size with both models.
pub fn bottleneck_moves(fits: &[MetricFit], layout: &Layout) -> Vec<Bottleneck> {
    let producers_counted = layout.count.iter().any(|c| c.contains("producer"));
    let mut out = Vec::new();
    for p in fits
        .iter()
        .filter(|f| f.metric == "producer_throughput_msgs_per_s")
    {
        let Some(c) = fits.iter().find(|f| {
            f.metric == "consumer_throughput_msgs_per_s" && f.series.group == p.series.group
        }) else {
            continue;
        };
        let mut by_size: Vec<Bottleneck> = Vec::new();
        for (n, size) in candidates(&c.series) {
            let (Some(pp), Some(cp)) = (p.predict(n, size), c.predict(n, size)) else {
                continue;
            };
            let side = if cp.value < pp.value {
                "consumer"
            } else if producers_counted
                && p.predict(2.0 * n, size)
                    .is_some_and(|p2| p2.value < 1.1 * pp.value)
            {
                "broker"
            } else {
                "producer"
            };
            let b = match by_size.iter_mut().find(|b| b.size == size) {
                Some(b) => b,
                None => {
                    by_size.push(Bottleneck {
                        group: p.series.group_text(),
                        size,
                        moves: vec![],
                    });
                    by_size.last_mut().expect("just pushed")
                }
            };
            if b.moves.last().is_none_or(|(_, s)| *s != side) {
                b.moves.push((n, side));
            }
        }
        out.extend(by_size.into_iter().filter(|b| !b.moves.is_empty()));
    }
    out
}

/// [`bottleneck_moves`] as lines of text.
pub fn bottlenecks(fits: &[MetricFit], layout: &Layout) -> Vec<String> {
    bottleneck_moves(fits, layout)
        .iter()
        .map(|b| {
            let text = b
                .moves
                .iter()
                .map(|(n, s)| format!("{s} from count {}", num(*n)))
                .collect::<Vec<_>>()
                .join(", then ");
            let size = if layout.size.is_empty() {
                String::new()
            } else {
                format!(", size {}", num(b.size))
            };
            format!(
                "bottleneck [{}{size}] (predicted; the smaller of the producer's and the consumer's rate): {text}",
                b.group
            )
        })
        .collect()
}

/// The whole report of `experiments model`.
pub fn render(name: &str, layout: &Layout, fits: &[MetricFit]) -> String {
    let mut out = String::new();
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(" x ")
        }
    };
    let _ = writeln!(
        out,
        "{name}: count = {}, size = {}, modelled apart by: {}",
        list(&layout.count),
        list(&layout.size),
        if layout.groups.is_empty() {
            "(nothing)".to_string()
        } else {
            layout.groups.join(", ")
        }
    );
    let _ = writeln!(out, "intervals: 90 % over {BOOTSTRAP_ROUNDS} bootstrap refits; held-out error: each point predicted by a fit without it");
    for f in fits {
        render_fit(f, &mut out);
    }
    for l in bottlenecks(fits, layout) {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// A results directory's models: what `experiments model` prints and `experiments predict` uses.
pub struct Fitted {
    pub name: String,
    pub layout: Layout,
    pub fits: Vec<MetricFit>,
    pub table: Table,
}

/// Read `results` (a results directory or its `results.csv`) and fit `metrics` (none: the defaults there) over
/// the given or detected count and size columns.
pub fn fit_results(
    results: &std::path::Path,
    metrics: &[String],
    count: &[String],
    size: &[String],
    seed: u64,
) -> Result<Fitted, AnalysisError> {
    let csv = if results.is_dir() {
        results.join("results.csv")
    } else {
        results.to_path_buf()
    };
    let table = Table::read(&csv)?;
    let layout = Layout::detect(&table, count, size)?;
    let fits = fit_all(&table, &layout, metrics, seed)?;
    if fits.is_empty() {
        return Err(AnalysisError::Nothing {
            path: csv.display().to_string(),
        });
    }
    let name = table
        .rows
        .first()
        .and_then(|r| r.get("experiment").cloned())
        .unwrap_or_else(|| csv.display().to_string());
    Ok(Fitted {
        name,
        layout,
        fits,
        table,
    })
}

impl Fitted {
    pub fn report(&self) -> String {
        render(&self.name, &self.layout, &self.fits)
    }

    /// Each modelled metric's sweep replayed (see [`super::adaptive::replay`]): a design choosing
    /// `budget_fraction` of the points against interpolation and random runs, and a search for the best within
    /// `best_fraction`.
    pub fn replay(&self, budget_fraction: f64, best_fraction: f64) -> String {
        let mut out = String::new();
        for f in &self.fits {
            let points: Vec<(f64, f64, f64, f64)> = super::select::by_point(&f.series.obs)
                .iter()
                .map(|p| {
                    let mean = p.iter().map(|o| o.value).sum::<f64>() / p.len() as f64;
                    (p[0].n, p[0].size, mean, self.run_seconds(&p[0].point))
                })
                .collect();
            let title = format!("{} [{}]", f.metric, f.series.group_text());
            if points.len() < 6 {
                let _ = writeln!(
                    out,
                    "{title}: {} points, too few to replay a design (6 or more)",
                    points.len()
                );
                continue;
            }
            out.push_str(&super::adaptive::replay(
                &title,
                &points,
                is_rate(&f.metric),
                budget_fraction,
                best_fraction,
            ));
        }
        out
    }

    /// The measured run-seconds of `point` (all its repetitions).
    fn run_seconds(&self, point: &str) -> f64 {
        self.table
            .numbers("run_wall_s")
            .filter(|(r, _)| r.get("point").map(String::as_str) == Some(point))
            .map(|(_, v)| v)
            .sum()
    }

    /// Predictions at every point of `exp` (its settings that the models are over), each headed by the point.
    pub fn predict_points(&self, exp: &crate::spec::Experiment) -> Result<String, ModelError> {
        let mut out = String::new();
        for p in &exp.points {
            let at: BTreeMap<String, String> = p
                .settings
                .iter()
                .filter(|(k, _)| {
                    self.layout.count.contains(k)
                        || self.layout.size.contains(k)
                        || self.layout.groups.contains(k)
                })
                .map(|(k, v)| (k.clone(), crate::spec::show(v)))
                .collect();
            let _ = writeln!(out, "point {} [{}] {}:", p.index + 1, p.id, p.label());
            match predict_at(&self.fits, &self.layout, &at) {
                Ok(text) => {
                    for line in text.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "  no prediction: {e}");
                }
            }
        }
        Ok(out)
    }

    /// Predictions at `at` (`KEY=VALUE,...`).
    pub fn predict_at(&self, at: &str) -> Result<String, ModelError> {
        predict_at(&self.fits, &self.layout, &parse_at(at)?)
    }
}

/// Why a results directory could not be modelled.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "{path}: none of the default metrics has a measured ok value (name one with --metric)"
    )]
    Nothing { path: String },
}

/// `KEY=VALUE,...` into settings.
pub fn parse_at(text: &str) -> Result<BTreeMap<String, String>, ModelError> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| ModelError::BadArgument {
                text: kv.to_string(),
                message: "expected KEY=VALUE (a settings column of the results and its value)"
                    .into(),
            })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Predictions at `at` for every fitted metric of the group `at` names, as text, each marked predicted.
pub fn predict_at(
    fits: &[MetricFit],
    layout: &Layout,
    at: &BTreeMap<String, String>,
) -> Result<String, ModelError> {
    for k in at.keys() {
        if !layout.count.contains(k) && !layout.size.contains(k) && !layout.groups.contains(k) {
            return Err(ModelError::BadArgument {
                text: k.clone(),
                message: format!(
                    "not a setting the models are over (counts: {}; sizes: {}; groups: {})",
                    layout.count.join(", "),
                    layout.size.join(", "),
                    layout.groups.join(", ")
                ),
            });
        }
    }
    let (n, size) = layout.inputs(&|c| at.get(c).cloned())?;
    let group: Vec<(String, String)> = layout
        .groups
        .iter()
        .map(|g| {
            at.get(g)
                .map(|v| (g.clone(), v.clone()))
                .ok_or_else(|| ModelError::MissingSetting { column: g.clone() })
        })
        .collect::<Result<_, _>>()?;
    let mut out = String::new();
    let mut any = false;
    for f in fits.iter().filter(|f| f.series.group == group) {
        any = true;
        match f.predict(n, size) {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "{} = {} (predicted, {})",
                    f.metric,
                    with_interval(p.value, p.interval),
                    p.form
                );
            }
            None => {
                let why = f
                    .choice
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "no finite prediction".into());
                let _ = writeln!(out, "{}: no prediction ({why})", f.metric);
            }
        }
    }
    if !any {
        return Err(ModelError::BadArgument {
            text: group
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            message: "no measured runs in this group".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results table of a USL-shaped consumer and a flat producer over consumer processes, 3 repetitions.
    fn sweep() -> Table {
        let consumer = Model::Usl {
            lambda: 1000.0,
            sigma: 0.05,
            kappa: 0.01,
        };
        let mut t = Table {
            columns: [
                "point",
                "warmup",
                "status",
                "consumer_processes_per_node",
                "producer_throughput_msgs_per_s",
                "consumer_throughput_msgs_per_s",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        for n in [1, 2, 3, 4, 6, 8] {
            for rep in 0..3 {
                let wobble = 1.0 + 0.01 * (rep as f64 - 1.0);
                let row: BTreeMap<String, String> = [
                    ("point", format!("p{n}")),
                    ("warmup", "false".into()),
                    ("status", "ok".into()),
                    ("consumer_processes_per_node", n.to_string()),
                    (
                        "producer_throughput_msgs_per_s",
                        (4000.0 * wobble).to_string(),
                    ),
                    (
                        "consumer_throughput_msgs_per_s",
                        (consumer.predict(n as f64, 1.0) * wobble).to_string(),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                t.rows.push(row);
            }
        }
        t
    }

    #[test]
    fn the_report_names_the_chosen_form_the_optimum_and_the_bottleneck() {
        let t = sweep();
        let layout = Layout::detect(&t, &[], &[]).unwrap();
        let fits = fit_all(&t, &layout, &[], 1).unwrap();
        assert_eq!(fits.len(), 2, "the two rates present");
        let text = render("sweep", &layout, &fits);
        assert!(
            text.contains("count = consumer_processes_per_node"),
            "{text}"
        );
        assert!(
            text.contains("consumer_throughput_msgs_per_s [all runs]: 18 runs at 6 points"),
            "{text}"
        );
        assert!(
            text.contains("<- chosen") && text.contains("peak N*"),
            "{text}"
        );
        // The consumer's USL peaks at N* = sqrt(0.95 / 0.01) = 9.7: the optimum is count 10 (beyond the sweep).
        let c = &fits[1];
        let (n, _, p) = c.optimum().unwrap();
        assert_eq!(n, 10.0, "{text}");
        assert!(p
            .interval
            .is_some_and(|(lo, hi)| lo <= p.value && p.value <= hi));
        // The consumer (1000 msg/s at 1) sets the pipeline's rate until it passes the producer's 4000 (X(7) =
        // 4070), and again once its retrograde fall takes it below (X(15) = 3937).
        let moves = bottleneck_moves(&fits, &layout);
        assert_eq!(
            moves[0].moves,
            vec![(1.0, "consumer"), (7.0, "producer"), (15.0, "consumer")],
            "the count is consumers, so the producers' flat rate is theirs, not the broker's"
        );
        let b = bottlenecks(&fits, &layout);
        assert_eq!(b.len(), 1);
        assert!(
            b[0].contains(
                "consumer from count 1, then producer from count 7, then consumer from count 15"
            ),
            "{b:?}"
        );
        let at = parse_at("consumer_processes_per_node=5").unwrap();
        let p = predict_at(&fits, &layout, &at).unwrap();
        assert!(
            p.contains("consumer_throughput_msgs_per_s = ") && p.contains("(predicted, usl)"),
            "{p}"
        );
        let e = predict_at(&fits, &layout, &parse_at("partitions=4").unwrap()).unwrap_err();
        assert!(e.to_string().contains("partitions"), "{e}");
        assert!(parse_at("n5").is_err());
        assert!(predict_at(&fits, &layout, &BTreeMap::new())
            .unwrap_err()
            .to_string()
            .contains("consumer_processes_per_node"));
    }

    #[test]
    fn producers_whose_rate_stops_growing_are_held_by_the_broker() {
        // Producers scale toward a shared limit of 5,000 msg/s (lambda 1,500, sigma 0.3); consumers could take 10,000.
        let producer = Model::Usl {
            lambda: 1500.0,
            sigma: 0.3,
            kappa: 0.0,
        };
        let mut t = Table {
            columns: [
                "point",
                "warmup",
                "status",
                "producer_processes_per_node",
                "producer_throughput_msgs_per_s",
                "consumer_throughput_msgs_per_s",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        for n in [1, 2, 3, 4, 6, 8] {
            for rep in 0..2 {
                let row: BTreeMap<String, String> = [
                    ("point", format!("p{n}")),
                    ("warmup", "false".into()),
                    ("status", "ok".into()),
                    ("producer_processes_per_node", n.to_string()),
                    (
                        "producer_throughput_msgs_per_s",
                        (producer.predict(n as f64, 1.0) * (1.0 + 0.001 * rep as f64)).to_string(),
                    ),
                    (
                        "consumer_throughput_msgs_per_s",
                        (10_000.0 + rep as f64).to_string(),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                t.rows.push(row);
            }
        }
        let layout = Layout::detect(&t, &[], &[]).unwrap();
        let fits = fit_all(&t, &layout, &[], 1).unwrap();
        let moves = bottleneck_moves(&fits, &layout);
        assert_eq!(moves.len(), 1);
        let sides: Vec<&str> = moves[0].moves.iter().map(|m| m.1).collect();
        assert_eq!(sides, ["producer", "broker"], "{moves:?}");
    }
}
