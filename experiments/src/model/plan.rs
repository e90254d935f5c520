//! An adaptive sweep's plan: `strategy = "adaptive"` in an experiment file, with its `[adaptive]` table, checked
//! against the file's points before anything runs.
//!
//! ```toml
//! strategy = "adaptive"
//! [adaptive]
//! metric = "consumer_throughput_msgs_per_s"   # what the runs are chosen for [default: this one]
//! goal = "predict"                             # or "best" (Bayesian optimisation toward the best point)
//! criterion = "d"                              # "d" or "a": the optimal design for predict
//! budget = 6                                   # points run at most [default: a quarter of them, at least 3]
//! interval_fraction = 0.1                      # predict: stop once every point's 90 % interval is this narrow
//! count = ["consumer_processes_per_node"]      # the count and size axes [default: detected by name]
//! size = ["masa.cost_ms_per_message"]
//! ```
//!
//! Settings other than the count and size that vary (a framework, a resource) make groups: each group is
//! designed on its own with an equal share of the budget (at least 3 points each).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::adaptive::{Goal, StopAt};
use super::analysis::is_rate;
use super::data::Layout;
use super::design::Criterion;
use crate::results::{Table, METRICS};
use crate::spec::{show, Point};

/// The `[adaptive]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    pub metric: Option<String>,
    pub goal: Option<String>,
    pub criterion: Option<String>,
    pub budget: Option<usize>,
    pub interval_fraction: Option<f64>,
    #[serde(default)]
    pub count: Vec<String>,
    #[serde(default)]
    pub size: Vec<String>,
}

/// A checked adaptive plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptivePlan {
    pub metric: String,
    pub goal: Goal,
    pub stop: StopAt,
    pub layout: Layout,
    /// (count, size) of each point, in the points' order.
    pub candidates: Vec<(f64, f64)>,
    /// The groups the other varying settings make (their values as text, and their points' indices), each
    /// designed on its own with an equal share of the budget; one group of every point when nothing else varies.
    pub groups: Vec<(String, Vec<usize>)>,
}

impl AdaptivePlan {
    /// Check `raw` against `points`; the error says which key and why.
    pub fn new(raw: &RawAdaptive, points: &[Point]) -> Result<Self, String> {
        let metric = raw
            .metric
            .clone()
            .unwrap_or_else(|| "consumer_throughput_msgs_per_s".into());
        if !METRICS.contains(&metric.as_str()) {
            return Err(format!(
                "adaptive.metric `{metric}` is not a metric of the results ({})",
                METRICS.join(", ")
            ));
        }
        let goal = match (
            raw.goal.as_deref().unwrap_or("predict"),
            raw.criterion.as_deref().unwrap_or("d"),
        ) {
            ("predict", "d") => Goal::Predict(Criterion::D),
            ("predict", "a") => Goal::Predict(Criterion::A),
            ("predict", c) => {
                return Err(format!("adaptive.criterion `{c}` must be \"d\" or \"a\""))
            }
            ("best", _) => Goal::Best {
                maximise: is_rate(&metric),
            },
            (g, _) => {
                return Err(format!(
                    "adaptive.goal `{g}` must be \"predict\" or \"best\""
                ))
            }
        };
        let layout = Layout::detect(&settings_table(points), &raw.count, &raw.size)
            .map_err(|e| format!("adaptive: {e}"))?;
        if layout.count.is_empty() {
            return Err(
                "adaptive: no count axis (nodes or processes) varies; name one with adaptive.count"
                    .into(),
            );
        }
        let candidates = points
            .iter()
            .map(|p| layout.inputs(&|c| p.settings.get(c).map(show)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("adaptive: {e}"))?;
        if let Some((i, _)) = candidates
            .iter()
            .enumerate()
            .find(|(_, &(n, s))| !(n >= 1.0 && s > 0.0))
        {
            return Err(format!(
                "adaptive: point {} has count {} and size {} (counts must be at least 1, sizes positive)",
                i + 1,
                candidates[i].0,
                candidates[i].1
            ));
        }
        let groups = groups_of(&layout, points);
        let budget = raw
            .budget
            .unwrap_or_else(|| points.len().div_ceil(4).max(3 * groups.len()));
        if budget < 3 || budget > points.len() {
            return Err(format!(
                "adaptive.budget {budget} must be 3..={} (the points of the matrix)",
                points.len()
            ));
        }
        if budget < 3 * groups.len() {
            return Err(format!(
                "adaptive.budget {budget} is under 3 points for each of the {} groups that {} make: raise it to {}",
                groups.len(),
                layout.groups.join(", "),
                3 * groups.len()
            ));
        }
        let interval_fraction = raw.interval_fraction.unwrap_or(0.1);
        if !(interval_fraction > 0.0 && interval_fraction <= 10.0) {
            return Err(format!(
                "adaptive.interval_fraction {interval_fraction} must be in (0, 10]"
            ));
        }
        Ok(AdaptivePlan {
            metric,
            goal,
            stop: StopAt {
                budget,
                interval_fraction,
            },
            layout,
            candidates,
            groups,
        })
    }

    /// Each group's share of the budget.
    pub fn group_budget(&self) -> usize {
        self.stop.budget / self.groups.len().max(1)
    }

    /// One line for `experiments plan`.
    pub fn describe(&self) -> String {
        let goal = match self.goal {
            Goal::Predict(c) => format!("a model of it by {c:?}-optimal design, until every 90 % interval is within {:.0} %", self.stop.interval_fraction * 100.0),
            Goal::Best { maximise } => format!("its {} by expected improvement, until less than 10 % is expected", if maximise { "largest" } else { "smallest" }),
        };
        let groups = if self.groups.len() > 1 {
            format!(
                " in each of {} groups ({}), {} points a group",
                self.groups.len(),
                self.layout.groups.join(", "),
                self.group_budget()
            )
        } else {
            String::new()
        };
        format!(
            "adaptive: at most {} of {} points{groups}, chosen for {} ({goal}); count = {}, size = {}",
            self.stop.budget,
            self.candidates.len(),
            self.metric,
            self.layout.count.join(" x "),
            if self.layout.size.is_empty() {
                "(none)".into()
            } else {
                self.layout.size.join(" x ")
            }
        )
    }
}

/// The points grouped by the values of the layout's group columns, in first-seen order.
fn groups_of(layout: &Layout, points: &[Point]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let label = layout
            .groups
            .iter()
            .map(|g| format!("{g}={}", p.settings.get(g).map(show).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((label, vec![i])),
        }
    }
    groups
}

/// The points' settings as a results table (one ok row each), for the layout's detection.
fn settings_table(points: &[Point]) -> Table {
    let mut t = Table::default();
    for p in points {
        let mut row: BTreeMap<String, String> = p
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), show(v)))
            .collect();
        row.insert("point".into(), p.id.clone());
        row.insert("warmup".into(), "false".into());
        row.insert("status".into(), "ok".into());
        for k in row.keys() {
            if !t.columns.contains(k) {
                t.columns.push(k.clone());
            }
        }
        t.rows.push(row);
    }
    t
}
