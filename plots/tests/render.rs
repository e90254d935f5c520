//! Figures render from results directories: a fixture cut from a real quickstart run (results.csv, manifest,
//! the first repetition's timelines), and a paper-figure table (Fig. 9 with broker facets, Fig. 6 on
//! log axes) written here. Every file must exist, be non-empty and be a valid PNG or SVG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use experiments::results::Table;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn check_files(files: &[PathBuf], expect: &[&str]) {
    for stem in expect {
        for ext in ["svg", "png"] {
            let f = files
                .iter()
                .find(|f| f.file_name().unwrap().to_string_lossy() == format!("{stem}.{ext}"))
                .unwrap_or_else(|| panic!("{stem}.{ext} missing from {files:?}"));
            let bytes = std::fs::read(f).unwrap();
            assert!(
                bytes.len() > 1000,
                "{} is {} bytes",
                f.display(),
                bytes.len()
            );
            if ext == "png" {
                assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", f.display());
                let decoder = png_header(&bytes);
                assert!(decoder.0 > 100 && decoder.1 > 100, "{decoder:?}");
            } else {
                let text = String::from_utf8(bytes).unwrap();
                assert!(
                    text.contains("<svg") && text.trim_end().ends_with("</svg>"),
                    "{}",
                    f.display()
                );
                assert!(text.contains("<text"), "labels are there");
            }
        }
    }
}

/// Width and height from the IHDR chunk.
fn png_header(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[12..16], b"IHDR");
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

#[test]
fn the_quickstart_fixture_renders() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("quickstart");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart"),
        &results,
    );
    let files = plots::figures::plot_dir(&results, None).unwrap();
    check_files(
        &files,
        &[
            "throughput",
            "latency-p50",
            "latency-percentiles",
            "throughput-over-time",
            // The models of `experiments model`, measured points and predicted curves.
            "model-producer_throughput_msgs_per_s-0",
            "model-consumer_throughput_msgs_per_s-1",
        ],
    );
    assert!(files.iter().all(|f| f.starts_with(results.join("figures"))));
    let svg =
        std::fs::read_to_string(results.join("figures/model-consumer_throughput_msgs_per_s-1.svg"))
            .unwrap();
    assert!(
        svg.contains("ernest fit, held-out error") && svg.contains("(dashed: predicted)"),
        "the title names the form"
    );
    assert!(
        // plotters draws a dashed line as its segments: 81 polylines here, a measured-only figure 13.
        svg.matches("<polyline").count() > 40,
        "the prediction is dashed"
    );
}

fn synthetic(dir: &Path, name: &str, rows: Vec<BTreeMap<&str, String>>) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut t = Table::default();
    for r in rows {
        let row: BTreeMap<String, String> =
            r.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let order: Vec<String> = row.keys().cloned().collect();
        t.upsert(row, &order);
    }
    t.write_atomic(&d.join("results.csv")).unwrap();
    d
}

#[test]
fn paper_figures_render_with_facets_and_log_axes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (b, brokers) in [1, 2].iter().enumerate() {
        for nodes in [1, 2, 4] {
            for (p, proc_) in ["kmeans", "gridrec"].iter().enumerate() {
                for rep in 0..2 {
                    rows.push(BTreeMap::from([
                        ("experiment", "fig9-processing-local".to_string()),
                        ("point", format!("p{b}{nodes}{p}")),
                        ("repetition", rep.to_string()),
                        ("warmup", "false".into()),
                        ("status", "ok".into()),
                        ("broker_nodes", brokers.to_string()),
                        ("processing_nodes", nodes.to_string()),
                        ("masa.processor", proc_.to_string()),
                        (
                            "consumer_throughput_msgs_per_s",
                            format!("{}", 100.0 * nodes as f64 * (p + 1) as f64 + rep as f64),
                        ),
                        ("e2e_latency_ms_p50", "10".into()),
                    ]));
                }
            }
        }
    }
    let d = synthetic(dir.path(), "fig9", rows);
    let files = plots::figures::plot_dir(&d, None).unwrap();
    check_files(&files, &["fig9-processing", "latency-percentiles"]);
    let svg = std::fs::read_to_string(d.join("figures/fig9-processing.svg")).unwrap();
    assert!(
        svg.contains("broker_nodes = 1") && svg.contains("broker_nodes = 2"),
        "two facets"
    );
    assert!(svg.contains("processor=gridrec"), "a series per processor");

    // Figure 6 from start-up runs: a line per framework against nodes, a panel per resource.
    let mut rows = Vec::new();
    for (fw, base) in [("kafka", 0.1), ("spark", 9.0), ("dask", 2.5)] {
        for res in ["local://", "slurm://localhost"] {
            for n in [1, 2, 4] {
                rows.push(BTreeMap::from([
                    ("experiment", "fig6-startup-local".to_string()),
                    ("point", format!("{fw}-{res}-{n}")),
                    ("repetition", "0".into()),
                    ("warmup", "false".into()),
                    ("status", "ok".into()),
                    ("kind", "startup".into()),
                    ("framework", fw.into()),
                    ("framework_nodes", n.to_string()),
                    ("resource", res.into()),
                    (
                        "framework_startup_s",
                        format!("{}", base * (1.0 + 0.1 * n as f64)),
                    ),
                ]));
            }
        }
    }
    let d = synthetic(dir.path(), "fig6f", rows);
    let files = plots::figures::plot_dir(&d, None).unwrap();
    check_files(&files, &["fig6-startup"]);
    let svg = std::fs::read_to_string(d.join("figures/fig6-startup.svg")).unwrap();
    assert!(
        svg.contains("framework=spark")
            && svg.contains("framework=dask")
            && svg.contains("framework=kafka"),
        "a line per framework"
    );
    assert!(
        svg.contains("resource = slurm://localhost"),
        "a panel per resource"
    );

    let rows = [1, 2, 4, 8]
        .iter()
        .map(|n| {
            BTreeMap::from([
                ("experiment", "fig6-startup-local".to_string()),
                ("point", format!("p{n}")),
                ("repetition", "0".into()),
                ("warmup", "false".into()),
                ("status", "ok".into()),
                ("processing_nodes", n.to_string()),
                ("broker_startup_s", "0.05".into()),
                ("producer_pilot_startup_s", format!("{}", 0.01 * *n as f64)),
                (
                    "processing_pilot_startup_s",
                    format!("{}", 0.02 * *n as f64),
                ),
            ])
        })
        .collect();
    let d = synthetic(dir.path(), "fig6", rows);
    let files = plots::figures::plot_dir(&d, None).unwrap();
    check_files(&files, &["fig6-startup"]);
    // Warm-up rows only: nothing to plot, said plainly.
    let d = synthetic(
        dir.path(),
        "warm",
        vec![BTreeMap::from([
            ("experiment", "x".to_string()),
            ("point", "p".into()),
            ("warmup", "true".into()),
            ("status", "ok".into()),
        ])],
    );
    let err = plots::figures::plot_dir(&d, None).unwrap_err().to_string();
    assert!(err.contains("no measured runs"), "{err}");
}

/// `(x, text)` of every `<text>` element of an SVG (plotters writes one line per element).
fn svg_texts(svg: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text") {
        rest = &rest[i..];
        let Some(close) = rest.find("</text>") else {
            break;
        };
        let el = &rest[..close];
        let x = el
            .split(" x=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        let text = el.rsplit('>').next().unwrap_or("").trim().to_string();
        out.push((x, text));
        rest = &rest[close..];
    }
    out
}

fn svg_width(svg: &str) -> f64 {
    svg.split("width=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

#[test]
fn figures_read_as_published_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("quickstart");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart"),
        &results,
    );
    plots::figures::plot_dir(&results, None).unwrap();
    let svg = std::fs::read_to_string(results.join("figures/throughput.svg")).unwrap();
    let texts = svg_texts(&svg);
    let labels: Vec<&str> = texts.iter().map(|t| t.1.as_str()).collect();
    // An integer axis (consumer processes, 1 and 2) ticks at whole numbers only; no value prints as "16000.0".
    assert!(
        labels
            .iter()
            .all(|l| !l.ends_with(".0") && !l.contains(".0 ")),
        "{labels:?}"
    );
    for bad in ["0.2", "0.4", "1.2", "1.4", "1.5", "1.6", "1.8"] {
        assert!(
            !labels.contains(&bad),
            "tick {bad} on a count axis: {labels:?}"
        );
    }
    assert!(labels.contains(&"1") && labels.contains(&"2"), "{labels:?}");
    // Units in the labels, and the colour-blind-safe palette (Okabe-Ito blue and orange).
    assert!(labels.iter().any(|l| l.contains("(msg/s)")), "{labels:?}");
    let upper = svg.to_uppercase();
    assert!(
        upper.contains("#0072B2") && upper.contains("#E69F00"),
        "palette"
    );
    // The legend sits outside the data: right of every panel's plotting area.
    let width = svg_width(&svg);
    let legend: Vec<&(f64, String)> = texts
        .iter()
        .filter(|t| t.1.starts_with("points_per_message="))
        .collect();
    assert!(!legend.is_empty(), "{labels:?}");
    let data_right = 470.0 + 30.0;
    assert!(
        legend.iter().all(|t| t.0 > data_right && t.0 < width),
        "legend at {legend:?}, data to {data_right}, width {width}"
    );
}

#[test]
fn latency_is_a_percentile_distribution_from_the_runs_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (p, scale) in [("fast", 1u64), ("slow", 7)] {
        rows.push(BTreeMap::from([
            ("experiment", "lat".to_string()),
            ("point", p.to_string()),
            ("repetition", "0".into()),
            ("warmup", "false".into()),
            ("status", "ok".into()),
            ("mass.rate_msgs_per_s", format!("{}", 100 * scale)),
            ("e2e_latency_ms_p50", "3".into()),
            ("consumer_throughput_msgs_per_s", "100".into()),
        ]));
    }
    let d = synthetic(dir.path(), "lat", rows);
    for (p, scale) in [("fast", 1u64), ("slow", 7)] {
        let run = d.join("runs").join(format!("{p}-r0"));
        std::fs::create_dir_all(&run).unwrap();
        let mut h = pilot_core::contract::metrics::LatencyHistogram::new();
        for i in 1..=100_000u64 {
            // A long tail: 1/(1-p) ms, up to 100 s at the top.
            h.record_us(scale * 1_000 * 100_000 / (100_001 - i));
        }
        std::fs::write(
            run.join(experiments::results::E2E_LATENCY_HGRM),
            h.hgrm_ms(),
        )
        .unwrap();
    }
    let files = plots::figures::plot_dir(&d, None).unwrap();
    check_files(&files, &["latency-percentiles", "throughput"]);
    let svg = std::fs::read_to_string(d.join("figures/latency-percentiles.svg")).unwrap();
    let labels: Vec<String> = svg_texts(&svg).into_iter().map(|t| t.1).collect();
    for tick in ["50%", "90%", "99%", "99.9%", "99.99%"] {
        assert!(
            labels.iter().any(|l| l == tick),
            "{tick} missing: {labels:?}"
        );
    }
    assert!(
        labels.iter().any(|l| l.contains("rate_msgs_per_s=100"))
            && labels.iter().any(|l| l.contains("rate_msgs_per_s=700")),
        "a line per point: {labels:?}"
    );
}

#[test]
fn fig8_is_bars_per_source_with_a_panel_per_broker_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for brokers in [1, 2] {
        for nodes in [1, 2, 4] {
            for (s, source) in ["cluster", "template"].iter().enumerate() {
                for rep in 0..2 {
                    rows.push(BTreeMap::from([
                        ("experiment", "fig8-producer-local".to_string()),
                        ("point", format!("p{brokers}{nodes}{s}")),
                        ("repetition", rep.to_string()),
                        ("warmup", "false".into()),
                        ("status", "ok".into()),
                        ("broker_nodes", brokers.to_string()),
                        ("producer_nodes", nodes.to_string()),
                        ("mass.source", source.to_string()),
                        (
                            "producer_throughput_msgs_per_s",
                            format!("{}", 16000.0 * nodes as f64 / (s + 1) as f64 + rep as f64),
                        ),
                        (
                            "producer_throughput_mb_per_s",
                            format!("{}", 10.0 * nodes as f64 * (s + 1) as f64),
                        ),
                    ]));
                }
            }
        }
    }
    let d = synthetic(dir.path(), "fig8", rows);
    let files = plots::figures::plot_dir(&d, None).unwrap();
    check_files(&files, &["fig8-producer-msgs", "fig8-producer-mb"]);
    let svg = std::fs::read_to_string(d.join("figures/fig8-producer-msgs.svg")).unwrap();
    assert!(svg.contains("broker_nodes = 1") && svg.contains("broker_nodes = 2"));
    // Bars: filled rectangles in the first two palette colours, one per source, x, panel (2 x 3 x 2).
    let upper = svg.to_uppercase();
    let bars = |c: &str| {
        upper
            .split("<RECT")
            .filter(|r| r.contains(&format!("FILL=\"{c}\"")))
            .count()
    };
    assert!(
        bars("#0072B2") >= 6 && bars("#E69F00") >= 6,
        "bars per source"
    );
    let labels: Vec<String> = svg_texts(&svg).into_iter().map(|t| t.1).collect();
    assert!(
        labels
            .iter()
            .any(|l| l == "32k" || l == "60k" || l.ends_with('k')),
        "SI ticks: {labels:?}"
    );
    assert!(labels.iter().all(|l| !l.contains("16000")), "{labels:?}");
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("quickstart");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quickstart"),
        &results,
    );
    let files = plots::figures::plot_dir_with_report(&results, None).unwrap();
    let page = files.last().unwrap().clone();
    assert!(page.ends_with("figures/report.html"), "{page:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    let svgs = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
        .count();
    assert_eq!(html.matches("<figure class=\"fig\"").count(), svgs);
    assert!(html.contains("id=\"results\"") && html.contains("id=\"provenance\""));
    assert!(html.contains("b1d21c84779b"), "the manifest's commit");

    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "headless Chromium (Debian's `chromium`; scripts/setup.sh --frameworks installs it)",
        );
    let profile = dir.path().join("chromium-profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = dom
        .split("data-figures-rendered=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("?");
    assert_eq!(
        rendered,
        svgs.to_string(),
        "figures laid out by Chromium (of {svgs})"
    );
    let shot = dir.path().join("report.png");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("PLOTS_REPORT_SHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
