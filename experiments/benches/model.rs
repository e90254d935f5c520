//! Prediction instead of running everything (issue 24): the 24-point sweep `experiments/model-sweep-local.toml`
//! (consumer processes x MASA's emulated cost per message) run in full, the models fitted to it (each form's
//! held-out error), an adaptive design replayed on it (a quarter of the points chosen by D-optimal design, the
//! model scored on the other three quarters against interpolation and against as many random points, and a
//! best-configuration search within 30 %), and then a real adaptive sweep of the same file with a budget of 6
//! points, its model scored on the full sweep's points it did not run. Prints the figures and the run-seconds of
//! each.
//!
//! `cargo bench -p experiments --bench model [-- RESULTS_ROOT]`: the full sweep's results are kept under
//! RESULTS_ROOT (default `target/bench-results`) and reused by the next run (about 6 minutes the first time).
//! Needs tansu installed (scripts/setup.sh); builds the apps in release.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn experiments(args: &[&str]) -> String {
    let out = Command::new(root().join("target/release/experiments"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "experiments {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Mean of `metric` per point of a results.csv: (consumer processes, cost) -> value.
fn values(csv: &Path, metric: &str) -> Vec<((f64, f64), f64)> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (n, c, m, w, s) = (
        col("consumer_processes_per_node"),
        col("masa.cost_ms_per_message"),
        col(metric),
        col("warmup"),
        col("status"),
    );
    r.records()
        .map(|x| x.unwrap())
        .filter(|x| &x[w] == "false" && &x[s] == "ok")
        .map(|x| {
            (
                (x[n].parse().unwrap(), x[c].parse().unwrap()),
                x[m].parse().unwrap(),
            )
        })
        .collect()
}

fn main() {
    let results_root = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/bench-results"));
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "mass",
            "-p",
            "masa",
            "-p",
            "experiments",
        ])
        .current_dir(root())
        .status()
        .unwrap()
        .success();
    assert!(ok, "building the apps");
    let file = "experiments/model-sweep-local.toml";
    let full_root = results_root.join("full");
    let t = Instant::now();
    experiments(&["run", file, "--results", full_root.to_str().unwrap()]);
    println!(
        "full sweep: {:.0} s (reused where already recorded)",
        t.elapsed().as_secs_f64()
    );
    let full = full_root.join("model-sweep-local");
    let metric = "consumer_throughput_msgs_per_s";
    print!(
        "{}",
        experiments(&[
            "model",
            full.to_str().unwrap(),
            "--metric",
            metric,
            "--replay"
        ])
    );

    // A real adaptive sweep, fresh: 6 points chosen while running.
    let adaptive_root = results_root.join("adaptive");
    let _ = std::fs::remove_dir_all(&adaptive_root);
    let t = Instant::now();
    experiments(&[
        "run",
        file,
        "--adaptive",
        "--budget",
        "6",
        "--results",
        adaptive_root.to_str().unwrap(),
    ]);
    let adaptive_s = t.elapsed().as_secs_f64();
    let adaptive = adaptive_root.join("model-sweep-local");
    let chosen = values(&adaptive.join("results.csv"), metric);
    println!(
        "adaptive sweep: {} points run in {adaptive_s:.0} s",
        chosen.len()
    );
    // Its model, predicting the full sweep's points it did not run.
    let mut errors = Vec::new();
    for ((n, cost), measured) in values(&full.join("results.csv"), metric) {
        if chosen.iter().any(|(at, _)| *at == (n, cost)) {
            continue;
        }
        let text = experiments(&[
            "predict",
            adaptive.to_str().unwrap(),
            "--metric",
            metric,
            "--at",
            &format!("consumer_processes_per_node={n},masa.cost_ms_per_message={cost}"),
        ]);
        let predicted: f64 = text
            .split(" = ")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        errors.push(((predicted - measured) / measured).abs() * 100.0);
    }
    errors.sort_by(f64::total_cmp);
    let median = errors.get(errors.len() / 2).copied().unwrap_or(f64::NAN);
    let max = errors.last().copied().unwrap_or(f64::NAN);
    println!(
        "adaptive sweep's model on the {} points it did not run (measured in the full sweep): median error {median:.1} %, max {max:.1} %",
        errors.len()
    );
}
