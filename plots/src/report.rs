//! One HTML page per experiment (`plots RESULTS --html`): its figures (the SVGs inlined, so the page is one file
//! that opens from disk in any browser, no server, and can be mailed or archived), the experiment file as run,
//! the manifest's provenance, and the results table with numbers written for reading. A small script counts
//! the figures the browser laid out into `<body data-figures-rendered>`, which the tests read back from
//! headless Chromium.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use experiments::results::{Manifest, EXPERIMENT_COPY, KEY_COLUMNS, METRICS};

use crate::figures::Results;
use crate::PlotError;

/// The report's file name inside the figures directory.
pub const REPORT_FILE: &str = "report.html";

/// `&`, `<`, `>`, `"` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: numbers with thousands separators (or three significant figures when not whole), text as is.
fn cell(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && !v.is_empty() => crate::style::thousands(x),
        _ => escape(v),
    }
}

/// The experiment file: the copy the runner kept, else the manifest's path when its SHA-256 still matches.
fn experiment_text(r: &Results, m: Option<&Manifest>) -> String {
    if let Ok(t) = std::fs::read_to_string(r.dir.join(EXPERIMENT_COPY)) {
        return t;
    }
    if let Some(m) = m {
        if let Ok(t) = std::fs::read_to_string(&m.file) {
            if experiments::results::sha256_hex(t.as_bytes()) == m.file_sha256 {
                return t;
            }
        }
        return format!(
            "(not kept with these results; it was {}, sha256 {})",
            m.file, m.file_sha256
        );
    }
    "(not kept with these results)".into()
}

/// Write `<fig_dir>/report.html` from the results and the SVG figures among `files`: a head, the figures
/// inline, the results table, the experiment file, the provenance, and the script the browser test reads.
pub fn write(r: &Results, fig_dir: &Path, files: &[PathBuf]) -> Result<PathBuf, PlotError> {
    let manifest = Manifest::read(&r.dir.join("manifest.json")).ok();
    let mut h = String::new();
    let title = format!("{}: results", r.name);
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
figure {{ margin: 1.5em 0; overflow-x: auto; }} figure svg {{ max-width: 100%; height: auto; }}
figcaption {{ color: #555; font-size: 0.9em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} td, th {{ border: 1px solid #ddd; padding: 2px 6px; white-space: nowrap; }}
th {{ background: #f4f4f4; position: sticky; top: 0; }} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.scroll {{ overflow: auto; max-height: 40em; }} pre {{ background: #f8f8f8; padding: 1em; overflow-x: auto; }}
.bad {{ color: #b00; font-weight: bold; }}
</style></head>
<body data-figures-rendered="0">
<h1>{t}</h1>
"#,
        t = escape(&title)
    );
    if let Some(m) = &manifest {
        let _ = writeln!(h, "<p>{}</p>", escape(&m.description));
        if !m.complete {
            let _ = writeln!(
                h,
                "<p class=\"bad\">This experiment did not finish: the results below are partial.</p>"
            );
        }
    }
    figures(&mut h, files)?;
    results_table(&mut h, r);
    let _ = writeln!(
        h,
        "<h2>Experiment file</h2>\n<pre id=\"experiment\">{}</pre>",
        escape(&experiment_text(r, manifest.as_ref()))
    );

    provenance(&mut h, manifest.as_ref());
    let _ = writeln!(
        h,
        r#"<script>
window.addEventListener("load", function () {{
  var n = 0;
  document.querySelectorAll("figure.fig svg").forEach(function (s) {{
    var b = s.getBoundingClientRect();
    if (b.width > 50 && b.height > 50 && s.querySelectorAll("text").length > 0) n++;
  }});
  document.body.setAttribute("data-figures-rendered", String(n));
}});
</script>
</body></html>"#
    );
    let path = fig_dir.join(REPORT_FILE);
    pilot_core::contract::files::write_atomic(&path, h.as_bytes()).map_err(|e| {
        PlotError::Draw {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    Ok(path)
}

/// The SVG figures among `files`, inline, each with links to its SVG and PNG.
fn figures(h: &mut String, files: &[PathBuf]) -> Result<(), PlotError> {
    let _ = writeln!(h, "<h2>Figures</h2>");
    let mut n_fig = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
    {
        let svg = std::fs::read_to_string(f).map_err(|e| PlotError::Input {
            path: f.clone(),
            message: e.to_string(),
        })?;
        let body = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg.as_str());
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<figure class=\"fig\" id=\"{s}\">{body}<figcaption>{s}: <a href=\"{s}.svg\">SVG</a> · <a href=\"{s}.png\">PNG</a></figcaption></figure>",
            s = escape(&stem)
        );
        n_fig += 1;
    }
    if n_fig == 0 {
        let _ = writeln!(h, "<p>No figures.</p>");
    }
    Ok(())
}

/// The results table: the columns with a value in some row, numbers aligned.
fn results_table(h: &mut String, r: &Results) {
    let _ = writeln!(h, "<h2>Results</h2>");
    // Columns with a value in some row: keys first, then settings, then metrics, as results.csv has them.
    let cols: Vec<&String> = r
        .table
        .columns
        .iter()
        .filter(|c| {
            r.table
                .rows
                .iter()
                .any(|row| row.get(*c).is_some_and(|v| !v.is_empty()))
        })
        .collect();
    let _ = writeln!(
        h,
        "<p>{} runs ({} measured). Metrics carry their unit in their name (<code>_ms</code>, <code>_msgs_per_s</code>, ...).</p>",
        r.table.rows.len(),
        r.table
            .rows
            .iter()
            .filter(|row| row.get("warmup").map(String::as_str) != Some("true"))
            .count()
    );
    let _ = writeln!(h, "<div class=\"scroll\"><table id=\"results\"><thead><tr>");
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    let _ = writeln!(h, "</tr></thead><tbody>");
    for row in &r.table.rows {
        let _ = write!(h, "<tr>");
        for c in &cols {
            let v = row.get(*c).map(String::as_str).unwrap_or("");
            let numeric = METRICS.contains(&c.as_str()) || !KEY_COLUMNS.contains(&c.as_str());
            if numeric && v.parse::<f64>().is_ok() {
                let _ = write!(h, "<td class=\"n\">{}</td>", cell(v));
            } else {
                let _ = write!(h, "<td>{}</td>", escape(v));
            }
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</tbody></table></div>");
}

/// The manifest's provenance as a table (or why there is none).
fn provenance(h: &mut String, manifest: Option<&Manifest>) {
    let _ = writeln!(h, "<h2>Provenance</h2>");
    match manifest {
        Some(m) => {
            let _ = writeln!(h, "<table id=\"provenance\">");
            let rows: Vec<(&str, String)> = vec![
                ("experiment", m.experiment.clone()),
                ("file", m.file.clone()),
                ("file sha256", m.file_sha256.clone()),
                (
                    "git commit",
                    format!(
                        "{}{}",
                        m.git_commit,
                        if m.git_dirty {
                            " (with uncommitted changes)"
                        } else {
                            ""
                        }
                    ),
                ),
                ("version", m.crate_version.clone()),
                ("broker", m.broker_version.clone()),
                ("rustc", m.rustc.clone()),
                ("build profile", m.build_profile.clone()),
                ("host", m.host.clone()),
                ("CPU", format!("{} ({} cores)", m.cpu_model, m.cpu_cores)),
                ("resources", m.resources.join(", ")),
                ("started (UTC)", m.started_utc.clone()),
                ("finished (UTC)", m.finished_utc.clone()),
                ("complete", m.complete.to_string()),
                ("runs recorded", m.runs.len().to_string()),
            ];
            for (k, v) in rows {
                let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
            }
            let _ = writeln!(h, "</table>");
        }
        None => {
            let _ = writeln!(
                h,
                "<p class=\"bad\">manifest.json is missing or unreadable: no provenance.</p>"
            );
        }
    }
}
