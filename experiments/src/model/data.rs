//! From a results table to a model's observations: which settings columns are counts (nodes, processes), which
//! are the message size, and which split the runs into groups modelled apart (a processor, partitions, anything
//! else that varies); one observation per measured run that finished ok.

use std::collections::BTreeMap;

use super::{ModelError, Obs};
use crate::results::{Table, KEY_COLUMNS, METRICS};

/// How the varying settings map onto a model's inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Their product is the count N (m in Ernest's form).
    pub count: Vec<String>,
    /// Their product is the message size.
    pub size: Vec<String>,
    /// A model per combination of their values.
    pub groups: Vec<String>,
}

/// One group's observations of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The group's settings (empty when nothing splits the runs).
    pub group: Vec<(String, String)>,
    pub obs: Vec<Obs>,
    /// Measured runs left out: not ok, or the metric missing or not a number.
    pub left_out: usize,
}

impl Series {
    pub fn group_text(&self) -> String {
        if self.group.is_empty() {
            "all runs".into()
        } else {
            self.group
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

fn is_count(column: &str) -> bool {
    column.contains("nodes") || column.contains("processes")
}

fn is_size(column: &str) -> bool {
    [
        "points_per_message",
        "bytes",
        "size",
        "frame_rows",
        "frame_cols",
        // The work a message carries in MASA's emulation.
        "cost_ms_per_message",
    ]
    .iter()
    .any(|k| column.contains(k))
}

/// The settings columns of `table`: everything that is neither a key nor a metric.
pub fn settings_columns(table: &Table) -> Vec<String> {
    table
        .columns
        .iter()
        .filter(|c| !KEY_COLUMNS.contains(&c.as_str()) && !METRICS.contains(&c.as_str()))
        .cloned()
        .collect()
}

/// Count columns that are metrics too, tried in order when no count setting varies.
const FALLBACK_COUNTS: &[&str] = &[
    "framework_nodes",
    "consumer_processes",
    "producer_processes",
];

/// Whether `column` is numeric in every measured row and varies between them.
fn varies_numeric(table: &Table, column: &str) -> bool {
    let values: Vec<Option<f64>> = measured(table)
        .map(|r| r.get(column).and_then(|v| v.parse::<f64>().ok()))
        .collect();
    values.iter().all(Option::is_some) && values.iter().any(|v| *v != values[0])
}

/// Measured (not warm-up) rows.
fn measured(table: &Table) -> impl Iterator<Item = &BTreeMap<String, String>> {
    table
        .rows
        .iter()
        .filter(|r| r.get("warmup").map(String::as_str) != Some("true"))
}

impl Layout {
    /// Detected from the settings that vary over the measured runs: numeric ones named for nodes or processes
    /// are counts, those for the message size (or MASA's emulated cost per message) sizes, the rest groups. `count` and `size`, when given, replace
    /// the detected ones (and leave the group).
    pub fn detect(table: &Table, count: &[String], size: &[String]) -> Result<Layout, ModelError> {
        let settings = settings_columns(table);
        for c in count.iter().chain(size) {
            if !settings.contains(c) {
                return Err(ModelError::UnknownColumn {
                    column: c.clone(),
                    available: settings.join(", "),
                });
            }
        }
        let mut layout = Layout::default();
        for c in settings {
            let values: Vec<&str> = measured(table)
                .map(|r| r.get(&c).map(String::as_str).unwrap_or(""))
                .collect();
            let numeric = values.iter().all(|v| v.parse::<f64>().is_ok());
            let varies = values.iter().any(|v| *v != values[0]);
            if count.contains(&c) || (count.is_empty() && varies && numeric && is_count(&c)) {
                layout.count.push(c);
            } else if size.contains(&c) || (size.is_empty() && varies && numeric && is_size(&c)) {
                layout.size.push(c);
            } else if varies {
                layout.groups.push(c);
            }
        }
        if count.is_empty() && layout.count.is_empty() {
            // A count that is also a measured column (a start-up sweep's `framework_nodes` axis), or what the
            // runs measured when no count setting varies.
            layout.count.extend(
                FALLBACK_COUNTS
                    .iter()
                    .find(|c| varies_numeric(table, c))
                    .map(|c| c.to_string()),
            );
        }
        Ok(layout)
    }

    /// The count and size of settings `get` (a row, or `--at` values); an error names a missing or non-numeric one.
    pub fn inputs(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(f64, f64), ModelError> {
        let product = |cols: &[String]| -> Result<f64, ModelError> {
            cols.iter().try_fold(1.0, |acc, c| {
                let text =
                    get(c).ok_or_else(|| ModelError::MissingSetting { column: c.clone() })?;
                text.parse::<f64>()
                    .map(|v| acc * v)
                    .map_err(|_| ModelError::BadValue {
                        point: c.clone(),
                        message: format!("`{text}` is not a number"),
                    })
            })
        };
        Ok((product(&self.count)?, product(&self.size)?))
    }
}

/// The observations of `metric` per group.
pub fn series(table: &Table, layout: &Layout, metric: &str) -> Result<Vec<Series>, ModelError> {
    if !table.columns.iter().any(|c| c == metric) {
        return Err(ModelError::UnknownMetric {
            metric: metric.to_string(),
            available: table
                .columns
                .iter()
                .filter(|c| METRICS.contains(&c.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut out: Vec<Series> = Vec::new();
    for row in measured(table) {
        let group: Vec<(String, String)> = layout
            .groups
            .iter()
            .map(|g| (g.clone(), row.get(g).cloned().unwrap_or_default()))
            .collect();
        let i = match out.iter().position(|s| s.group == group) {
            Some(i) => i,
            None => {
                out.push(Series {
                    group,
                    obs: vec![],
                    left_out: 0,
                });
                out.len() - 1
            }
        };
        let value = row.get(metric).and_then(|v| v.parse::<f64>().ok());
        let ok = row.get("status").map(String::as_str) == Some("ok");
        match (ok, value) {
            (true, Some(value)) if value.is_finite() => {
                let (n, size) = layout.inputs(&|c| row.get(c).cloned())?;
                out[i].obs.push(Obs {
                    n,
                    size,
                    value,
                    point: row.get("point").cloned().unwrap_or_default(),
                });
            }
            _ => out[i].left_out += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[&[(&str, &str)]]) -> Table {
        let mut t = Table::default();
        for r in rows {
            let row: BTreeMap<String, String> = r
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let order: Vec<String> = r.iter().map(|(k, _)| k.to_string()).collect();
            t.rows.push(row);
            for c in order {
                if !t.columns.contains(&c) {
                    t.columns.push(c);
                }
            }
        }
        t
    }

    #[test]
    fn counts_sizes_and_groups_are_told_apart_and_bad_runs_left_out() {
        let row = |p: &'static str,
                   nodes: &'static str,
                   per: &'static str,
                   proc_: &'static str,
                   status: &'static str,
                   v: &'static str| {
            vec![
                ("point", p),
                ("warmup", "false"),
                ("status", status),
                ("processing_nodes", nodes),
                ("consumer_processes_per_node", per),
                ("mass.points_per_message", "500"),
                ("masa.processor", proc_),
                ("consumer_throughput_msgs_per_s", v),
            ]
        };
        let rows = [
            row("a", "1", "1", "kmeans", "ok", "100"),
            row("b", "2", "2", "kmeans", "ok", "350"),
            row("c", "1", "2", "gridrec", "ok", "10"),
            row("c", "1", "2", "gridrec", "failed", "12"),
            row("d", "2", "1", "gridrec", "ok", "NaN"),
        ];
        let refs: Vec<&[(&str, &str)]> = rows.iter().map(|r| r.as_slice()).collect();
        let t = table(&refs);
        let layout = Layout::detect(&t, &[], &[]).unwrap();
        assert_eq!(
            layout.count,
            ["processing_nodes", "consumer_processes_per_node"]
        );
        assert!(layout.size.is_empty(), "the size does not vary");
        assert_eq!(layout.groups, ["masa.processor"]);
        let s = series(&t, &layout, "consumer_throughput_msgs_per_s").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].obs.len(), s[0].left_out), (2, 0));
        assert_eq!(s[0].obs[1].n, 4.0, "2 nodes x 2 per node");
        assert_eq!(
            (s[1].obs.len(), s[1].left_out),
            (1, 2),
            "failed and NaN left out"
        );
        assert_eq!(s[1].group_text(), "masa.processor=gridrec");
        let e = series(&t, &layout, "nope").unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("consumer_throughput_msgs_per_s"),
            "{e}"
        );
        let e = Layout::detect(&t, &["bogus".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus") && e.contains("processing_nodes"), "{e}");
        // An explicit size column is taken even though it does not vary.
        let l = Layout::detect(&t, &[], &["mass.points_per_message".into()]).unwrap();
        assert_eq!(l.size, ["mass.points_per_message"]);
        let e = l
            .inputs(&|c| (c != "processing_nodes").then(|| "2".into()))
            .unwrap_err();
        assert!(e.to_string().contains("processing_nodes"), "{e}");
        // A start-up sweep: its count, framework_nodes, is a metric column too.
        let startup = |fw: &'static str, nodes: &'static str, s: &'static str| {
            vec![
                ("point", nodes),
                ("warmup", "false"),
                ("status", "ok"),
                ("framework", fw),
                ("framework_nodes", nodes),
                ("framework_startup_s", s),
            ]
        };
        let rows = [
            startup("kafka", "1", "2.0"),
            startup("kafka", "2", "2.5"),
            startup("spark", "1", "9.0"),
        ];
        let refs: Vec<&[(&str, &str)]> = rows.iter().map(|r| r.as_slice()).collect();
        let l = Layout::detect(&table(&refs), &[], &[]).unwrap();
        assert_eq!(l.count, ["framework_nodes"]);
        assert_eq!(l.groups, ["framework"]);
    }
}
