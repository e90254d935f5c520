//! Faults injected into real pipelines (tansu, MASS, MASA as processes): the experiment files under
//! `experiments/faults/`, each checked for what must hold (issue 14), and the runner itself SIGKILLed mid-run and
//! resumed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{experiments, text};

type Row = std::collections::BTreeMap<String, String>;

/// Run the fault experiment `file` (results named `name`) into a fresh directory; its one row and run
/// directory. `succeeds`: whether the command must exit 0 (it says why not, with the row).
fn fault_run(file: &str, name: &str, succeeds: bool) -> (tempfile::TempDir, Row, PathBuf) {
    common::apps();
    let out = tempfile::tempdir().unwrap();
    let o = experiments(&["run", file, "--results", out.path().to_str().unwrap()]);
    let t = experiments::results::Table::read(&out.path().join(name).join("results.csv"))
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&o)));
    let r = t.rows[0].clone();
    assert_eq!(o.status.success(), succeeds, "{}\n{r:?}", text(&o));
    let dir = out
        .path()
        .join(name)
        .join("runs")
        .join(format!("{}-r0", r["point"]));
    (out, r, dir)
}

/// (produced, received, missing) messages of a row.
fn messages(r: &Row) -> (f64, f64, f64) {
    (
        num(r, "produced_msgs"),
        num(r, "received_msgs"),
        num(r, "missing_msgs"),
    )
}

fn num(r: &Row, k: &str) -> f64 {
    r[k].parse()
        .unwrap_or_else(|_| panic!("{k} = {:?} in {r:?}", r[k]))
}

/// Every pilot record under `dir` has ended, and no broker process it names is alive.
fn nothing_left_running(dir: &Path) {
    for entry in walk(dir) {
        if entry.file_name().is_some_and(|n| n == "pilot.json") {
            let r: pilot_core::pilots::record::PilotRecord =
                serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
            assert!(r.state.is_terminal(), "{}: {:?}", entry.display(), r.state);
            if let Some(k) = r.details.as_ref().and_then(|d| d.framework.kafka()) {
                for p in k.brokers.iter().filter_map(|b| b.process.as_ref()) {
                    assert!(
                        !pilot_core::pilots::process::same_process_alive(p.pid, p.start_ticks),
                        "{} (pid {}) still runs",
                        p.label,
                        p.pid
                    );
                }
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A consumer SIGKILLed 4 s in: the other takes its partitions after the rebalance; every one of the 2,000
/// messages is received at least once, none missing, duplicates counted and put down to the fault.
#[test]
fn a_killed_consumer_loses_nothing_and_its_duplicates_are_the_faults() {
    let (_out, r, dir) = fault_run(
        "experiments/faults/consumer-kill.toml",
        "fault-consumer-kill",
        true,
    );
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(messages(&r), (2000.0, 2000.0, 0.0), "{r:?}");
    assert_eq!(num(&r, "broker_msgs"), 2000.0, "{r:?}");
    assert!(r["faults"].contains("kill consumer:1 (pid"), "{r:?}");
    if num(&r, "duplicate_msgs") > 0.0 {
        assert!(
            r["faults"].contains("duplicates: messages the lost consumers consumer:1"),
            "{r:?}"
        );
    }
    // The dead consumer left no summary, only its checkpoint; its messages count through that.
    assert!(dir.join("consumer-c1-checkpoint-0.json").exists());
    let faults = std::fs::read_to_string(dir.join("faults.csv")).unwrap();
    assert!(faults.contains(",kill,consumer:1,applied,"), "{faults}");
    let timeline = experiments::results::read_timeline(&dir).unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t.events.contains("fault: kill consumer:1")),
        "{timeline:?}"
    );
    // Two consumers before the kill, one after.
    assert!(timeline.iter().any(|t| t.consumers == 2) && timeline.last().unwrap().consumers <= 1);
    nothing_left_running(&dir);
}

/// A producer SIGKILLed 3 s in: the consumers received exactly what the broker holds of it, and the run is
/// ok, marked with the fault.
#[test]
fn a_killed_producer_is_accounted_for_by_what_it_delivered() {
    let (_out, r, dir) = fault_run(
        "experiments/faults/producer-kill.toml",
        "fault-producer-kill",
        true,
    );
    assert_eq!(r["status"], "ok", "{r:?}");
    let delivered = num(&r, "killed_producers_delivered_msgs");
    assert!(delivered > 0.0 && delivered < 1200.0, "{r:?}");
    assert_eq!(
        delivered,
        num(&r, "killed_producers_received_msgs"),
        "{r:?}"
    );
    // The survivor's 150 msg/s x 8 s, and the killed one's share: no more, no less.
    assert_eq!(num(&r, "produced_msgs"), 1200.0 + delivered, "{r:?}");
    assert_eq!(num(&r, "received_msgs"), num(&r, "broker_msgs"), "{r:?}");
    assert_eq!(
        (num(&r, "missing_msgs"), num(&r, "duplicate_msgs")),
        (0.0, 0.0)
    );
    assert!(r["faults"].contains("kill producer:1"), "{r:?}");
    assert!(
        r["faults"].contains(&format!("the broker holds {delivered} of their messages")),
        "{r:?}"
    );
    // Killed before its end, it wrote no summary row.
    let summary = dir.join("producer-1/producer-summary.csv");
    let rows = std::fs::read_to_string(&summary)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    assert!(rows <= 1, "{}: {rows} lines", summary.display());
    nothing_left_running(&dir);
}

/// The broker stopped for 10 s, then continued: producers buffer, consumers resume, nothing is lost, and the
/// worst latency shows the stall.
#[test]
fn a_stalled_broker_delays_messages_and_loses_none() {
    let (_out, r, dir) = fault_run(
        "experiments/faults/broker-stop.toml",
        "fault-broker-stop",
        true,
    );
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(messages(&r), (1200.0, 1200.0, 0.0), "{r:?}");
    assert_eq!(num(&r, "produce_failed_msgs"), 0.0, "{r:?}");
    assert!(
        num(&r, "e2e_latency_ms_max") > 5_000.0,
        "the stall shows: {r:?}"
    );
    let faults = std::fs::read_to_string(dir.join("faults.csv")).unwrap();
    assert!(
        faults.contains(",stop,broker:0,applied,") && faults.contains(",cont,broker:0,applied,"),
        "{faults}"
    );
    nothing_left_running(&dir);
}

/// The broker SIGKILLed: the run says what was delivered before, what failed and what is unknown, is marked
/// incomplete, and leaves no process behind.
#[test]
fn a_killed_broker_ends_the_run_incomplete_with_a_clear_account() {
    // An incomplete run is not a success.
    let (out, r, dir) = fault_run(
        "experiments/faults/broker-kill.toml",
        "fault-broker-kill",
        false,
    );
    assert_eq!(r["status"], "incomplete", "{r:?}");
    assert!(
        r["error"].contains("the broker was taken down by a fault"),
        "{r:?}"
    );
    assert!(r["error"].contains("delivered before it went"), "{r:?}");
    assert!(r["error"].contains("unknown"), "{r:?}");
    // Every message the producer sent is delivered, failed or unknown.
    assert_eq!(
        num(&r, "produced_msgs") + num(&r, "produce_failed_msgs"),
        1000.0,
        "{r:?}"
    );
    assert!(
        num(&r, "received_msgs") <= num(&r, "produced_msgs"),
        "{r:?}"
    );
    assert!(r["faults"].contains("kill broker:0"), "{r:?}");
    nothing_left_running(&dir);
    let m =
        experiments::results::Manifest::read(&out.path().join("fault-broker-kill/manifest.json"))
            .unwrap();
    assert!(!m.complete);
}

/// The runner SIGKILLed in the middle of a run: running it again stops what the dead one left (its pilots'
/// records say they run), finishes every run, and the CSV and manifest read whole.
#[test]
fn a_killed_runner_resumes_and_cleans_up_after_itself() {
    common::apps();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("resume.toml");
    std::fs::write(
        &file,
        "name = \"resume\"\n[fixed]\nconsumer_idle_s = 2.0\n\"mass.rate_msgs_per_s\" = 100\n\"mass.duration_s\" = 6.0\n\"mass.points_per_message\" = 20\n\"masa.processor\" = \"none\"\n[axes]\nconsumer_processes_per_node = [1, 2]\n",
    )
    .unwrap();
    let results = out.path().join("results");
    let mut child = Command::new(env!("CARGO_BIN_EXE_experiments"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the first run's producer is sending.
    let t0 = Instant::now();
    let runs = results.join("resume/runs");
    loop {
        let producing = walk(&runs)
            .iter()
            .any(|p| p.to_string_lossy().ends_with("producer-intervals.csv"));
        if producing {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no run started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead runner's pilots still claim to run.
    let claims_running = walk(&runs).iter().any(|p| {
        p.file_name().is_some_and(|n| n == "pilot.json")
            && std::fs::read_to_string(p).unwrap().contains("\"Running\"")
    });
    assert!(claims_running, "the killed runner left live pilot records");
    let o = experiments(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    let out_text = text(&o);
    assert!(o.status.success(), "{out_text}");
    assert!(
        out_text.contains("cleaned up after an earlier runner: pilot"),
        "{out_text}"
    );
    assert!(out_text.contains("orphaned"), "{out_text}");
    let t = experiments::results::Table::read(&results.join("resume/results.csv")).unwrap();
    assert_eq!(t.rows.len(), 2);
    assert!(t.rows.iter().all(|r| r["status"] == "ok"), "{:?}", t.rows);
    let m = experiments::results::Manifest::read(&results.join("resume/manifest.json")).unwrap();
    assert!(m.complete);
    nothing_left_running(&runs);
}
