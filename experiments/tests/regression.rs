//! Regression checks catch regressions: bands from a measured run (experiments/tests/data/regression-baseline,
//! the results.csv and manifest.json of `experiments run experiments/regression.toml` on this project's 2-core
//! machine) pass the same build and breach a deliberately slowed one (regression-slowed: the same experiment,
//! same settings and points, with MASA_SLOWDOWN_MS_PER_MESSAGE=3), and bands from another machine are skipped,
//! not held against this one.

use std::path::PathBuf;

use experiments::compare::{baseline, check, read_references, BaselineOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn a_baseline_passes_its_build_and_catches_a_slowed_one() {
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.toml");
    let text = baseline(&data("regression-baseline"), BaselineOptions::default()).unwrap();
    std::fs::write(&refs, &text).unwrap();
    let bands = read_references(&refs).unwrap();
    assert_eq!(bands.len(), 18, "9 metrics x 2 points");
    assert!(bands
        .iter()
        .all(|b| b.fingerprint.is_some() && b.point.is_some()));

    let same = check(&data("regression-baseline"), &bands, None).unwrap();
    assert_eq!((same.breaches, same.checked), (0, 18), "{}", same.text);

    let slowed = check(&data("regression-slowed"), &bands, None).unwrap();
    assert!(slowed.breaches > 0, "{}", slowed.text);
    for line in slowed
        .text
        .lines()
        .filter(|l| l.contains("consumer_throughput_msgs_per_s"))
    {
        assert!(line.contains("BREACH"), "{}", slowed.text);
    }
    // Counts still agree: every message arrived, only slower.
    for line in slowed.text.lines().filter(|l| l.contains(" missing_msgs")) {
        assert!(line.trim_start().starts_with("ok"), "{}", slowed.text);
    }

    // The checked-in baseline is the same kind of file, and holds for its own data.
    let shipped = read_references(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regression-baseline.toml"),
    )
    .unwrap();
    let r = check(&data("regression-baseline"), &shipped, None).unwrap();
    assert_eq!(r.breaches, 0, "{}", r.text);

    // Another machine's bands are skipped, and said to be.
    let other = check(
        &data("regression-slowed"),
        &bands,
        Some("another CPU | 64 cores | release"),
    )
    .unwrap();
    assert_eq!(other.checked, 0, "{}", other.text);
    assert!(
        other.text.contains("measured on another machine"),
        "{}",
        other.text
    );
}

#[test]
fn a_baseline_needs_a_spread_and_sane_widths() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::copy(
        data("regression-baseline/manifest.json"),
        one.join("manifest.json"),
    )
    .unwrap();
    // Keep only repetition 0 of every point.
    let mut t =
        experiments::results::Table::read(&data("regression-baseline/results.csv")).unwrap();
    t.rows
        .retain(|r| r.get("repetition").map(String::as_str) == Some("0"));
    t.write_atomic(&one.join("results.csv")).unwrap();
    let e = baseline(&one, BaselineOptions::default()).unwrap_err();
    assert!(e.contains("at least 2"), "{e}");
    let e = baseline(
        &data("regression-baseline"),
        BaselineOptions {
            sds: -1.0,
            min_relative: 0.1,
        },
    )
    .unwrap_err();
    assert!(e.contains("--sds"), "{e}");
}
