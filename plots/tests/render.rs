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
        ],
    );
    assert!(files.iter().all(|f| f.starts_with(results.join("figures"))));
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
