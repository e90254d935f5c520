//! `experiments model` and `experiments predict` on a measured results directory (the quickstart fixture: message
//! size x consumer processes, two repetitions) and on hostile input.

use std::path::PathBuf;
use std::process::Command;

fn experiments() -> Command {
    Command::new(env!("CARGO_BIN_EXE_experiments"))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plots/tests/data/quickstart")
}

fn run(args: &[&str]) -> (bool, String) {
    let out = experiments().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn model_reports_every_form_the_choice_and_intervals() {
    let f = fixture();
    let (ok, text) = run(&["model", f.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains("count = consumer_processes_per_node, size = mass.points_per_message"),
        "{text}"
    );
    for metric in [
        "producer_throughput_msgs_per_s",
        "consumer_throughput_msgs_per_s",
        "e2e_latency_ms_p50",
        "e2e_latency_ms_p99",
    ] {
        assert!(
            text.contains(&format!("{metric} [all runs]: 8 runs at 4 points")),
            "{text}"
        );
    }
    assert_eq!(text.matches("<- chosen").count(), 4, "{text}");
    assert!(
        text.contains("usl does not apply: the message size varies"),
        "{text}"
    );
    assert!(
        text.contains("predicted optimum") && text.contains("bottleneck"),
        "{text}"
    );
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

#[test]
fn predict_marks_predictions_and_refuses_settings_it_cannot_use() {
    let f = fixture();
    let f = f.to_str().unwrap();
    let (ok, text) = run(&[
        "predict",
        f,
        "--at",
        "consumer_processes_per_node=3,mass.points_per_message=2000",
        "--metric",
        "consumer_throughput_msgs_per_s",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.starts_with("consumer_throughput_msgs_per_s = ") && text.contains("(predicted, "),
        "{text}"
    );
    let (ok, text) = run(&["predict", f, "--at", "consumer_processes_per_node=3"]);
    assert!(!ok && text.contains("mass.points_per_message"), "{text}");
    let (ok, text) = run(&[
        "predict",
        f,
        "--at",
        "consumer_processes_per_node=three,mass.points_per_message=5",
    ]);
    assert!(!ok && text.contains("`three` is not a number"), "{text}");
    let (ok, text) = run(&["model", f, "--metric", "no_such_metric"]);
    assert!(
        !ok && text.contains("no_such_metric") && text.contains("consumer_throughput_msgs_per_s"),
        "{text}"
    );
    let (ok, text) = run(&["model", "/nonexistent/results"]);
    assert!(!ok && text.contains("/nonexistent/results"), "{text}");
}

#[test]
fn too_few_points_is_a_stated_limitation_not_a_number() {
    // Two points only: no cross-validation, so no model, said per metric; the command still succeeds.
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read_to_string(fixture().join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let kept: Vec<&str> = lines.filter(|l| l.contains(",500,4,")).collect();
    assert!(!kept.is_empty());
    std::fs::write(
        dir.path().join("results.csv"),
        format!("{header}\n{}\n", kept.join("\n")),
    )
    .unwrap();
    let (ok, text) = run(&["model", dir.path().to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("no model: cross-validation (distinct points) needs at least 3 distinct points (2 distinct points here)"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
}

#[test]
fn predict_over_an_experiment_file_labels_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bigger.toml");
    std::fs::write(
        &file,
        "name = \"bigger\"\n[fixed]\n\"mass.messages\" = 1000\n\"masa.processor\" = \"kmeans\"\n[axes]\nconsumer_processes_per_node = [4, 8]\n\"mass.points_per_message\" = [500, 2000]\n",
    )
    .unwrap();
    let f = fixture();
    let (ok, text) = run(&[
        "predict",
        f.to_str().unwrap(),
        "--metric",
        "consumer_throughput_msgs_per_s",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("point ").count(), 4, "{text}");
    assert_eq!(text.matches("(predicted, ").count(), 4, "{text}");
    let (ok, text) = run(&["predict", f.to_str().unwrap()]);
    assert!(!ok && text.contains("--at"), "{text}");
}
