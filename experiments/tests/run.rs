//! `experiments` end to end on real pilots (tansu) with the real `mass` and `masa`: the smoke matrix checked
//! against its references, compare, and the quickstart (the README's main job), resumed with nothing left to do.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{experiments, root, text};

fn ensure_apps() {
    common::apps();
}

fn table(dir: &Path) -> experiments::results::Table {
    experiments::results::Table::read(&dir.join("results.csv")).unwrap()
}

#[test]
fn smoke_matrix_passes_its_reference_bands() {
    ensure_apps();
    let out = tempfile::tempdir().unwrap();
    let results = out.path().to_str().unwrap();
    let o = experiments(&["run", "experiments/smoke.toml", "--results", results]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out.path().join("smoke");
    let t = table(&dir);
    assert_eq!(t.rows.len(), 2);
    for r in &t.rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        assert_eq!(r["received_msgs"], "500");
        assert_eq!(r["missing_msgs"], "0");
    }
    let smoke = dir.to_str().unwrap();
    let o = experiments(&[
        "check",
        smoke,
        "--references",
        "experiments/references.toml",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ok     consumer_throughput_msgs_per_s"),
        "{}",
        text(&o)
    );

    // A band it cannot meet is a breach: exit 1.
    let bands = out.path().join("tight.toml");
    std::fs::write(
        &bands,
        "[[band]]\nmetric = \"consumer_throughput_msgs_per_s\"\ntarget = 1e12\nlower = 1e11\nupper = 1e13\n",
    )
    .unwrap();
    let o = experiments(&["check", smoke, "--references", bands.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("BREACH"));

    let o = experiments(&["compare", smoke, smoke]);
    assert!(
        o.status.success() && text(&o).contains("+0.0%"),
        "{}",
        text(&o)
    );
}

#[test]
fn quickstart_runs_end_to_end_and_resumes_with_nothing_to_do() {
    ensure_apps();
    let out = tempfile::tempdir().unwrap();
    let results = out.path().to_str().unwrap();
    let o = experiments(&["run", "experiments/quickstart.toml", "--results", results]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("about"),
        "progress with time left: {}",
        text(&o)
    );
    let dir = out.path().join("quickstart");
    let t = table(&dir);
    assert_eq!(t.rows.len(), 12, "4 points x (2 + 1 warm-up)");
    assert_eq!(t.rows.iter().filter(|r| r["warmup"] == "true").count(), 4);
    for r in &t.rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        assert_eq!(r["received_msgs"], "1000");
        assert!(r["consumer_throughput_msgs_per_s"].parse::<f64>().unwrap() > 0.0);
        assert_eq!(
            r["brokers_in_metadata"], "1",
            "compute pilots add no broker"
        );
        let run = dir.join("runs").join(format!(
            "{}-{}{}",
            r["point"],
            if r["warmup"] == "true" { "w" } else { "r" },
            r["repetition"]
        ));
        let timeline = experiments::results::read_timeline(&run).unwrap();
        let consumed: f64 = timeline.iter().map(|t| t.consumed_msgs_per_s).sum();
        let produced: f64 = timeline.iter().map(|t| t.produced_msgs_per_s).sum();
        assert_eq!(
            (consumed, produced),
            (1000.0, 1000.0),
            "the timeline adds up"
        );
    }
    let m = experiments::results::Manifest::read(&dir.join("manifest.json")).unwrap();
    assert!(m.complete && m.runs.len() == 12);
    assert_eq!(m.git_commit.len(), 40, "{m:?}");
    assert!(
        m.runs.iter().all(|r| r.nodes.len() == 3),
        "broker, producer and processing nodes"
    );

    let o = experiments(&["run", "experiments/quickstart.toml", "--results", results]);
    assert!(
        o.status.success()
            && text(&o).contains("0 runs done")
            && text(&o).contains("12 already recorded"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_files_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "name = \"bad\"\n[fixed]\n\"mass.messages\" = 10\n[axes]\n\"masa.windw\" = [\"message\"]\n",
    )
    .unwrap();
    let o = experiments(&["plan", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("bad.toml:5:") && text(&o).contains("unknown field `windw`"),
        "{}",
        text(&o)
    );
}

/// Figure 6's kind of run: a framework pilot started, timed and cancelled, for Kafka, Spark and Dask.
#[test]
fn startup_runs_time_every_framework() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("fig6-startup-test.toml");
    std::fs::write(
        &file,
        "name = \"fig6-startup-test\"\n[fixed]\nkind = \"startup\"\n[axes]\nframework = [\"kafka\", \"spark\", \"dask\"]\nframework_nodes = [1, 2]\n",
    )
    .unwrap();
    let results = out.path().join("results");
    let o = experiments(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = table(&results.join("fig6-startup-test"));
    assert_eq!(t.rows.len(), 6);
    for r in &t.rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        let s: f64 = r["framework_startup_s"].parse().unwrap();
        assert!(s > 0.0 && s < 120.0, "{r:?}");
    }
    // A start-up run starts no MASS or MASA: a mass.* key is refused before anything runs.
    std::fs::write(
        &file,
        "name = \"fig6-startup-test\"\n[fixed]\nkind = \"startup\"\n\"mass.messages\" = 5\n",
    )
    .unwrap();
    let o = experiments(&["plan", file.to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("starts no MASS or MASA"),
        "{}",
        text(&o)
    );
}

/// Issue 13: an autoscaled run through a real tansu broker, a 4x step up and back down with a known cost per
/// message. Every message is accounted for across the scale events (duplicates only from rebalances, counted),
/// and the run's decisions and timeline say what the controller did.
#[test]
fn an_autoscaled_run_accounts_for_every_message_across_scale_events() {
    ensure_apps();
    let out = tempfile::tempdir().unwrap();
    let results = out.path().to_str().unwrap();
    let o = experiments(&[
        "run",
        "experiments/elastic-smoke.toml",
        "--results",
        results,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out.path().join("elastic-smoke");
    let t = table(&dir);
    let r = &t.rows[0];
    let num = |k: &str| -> f64 { r[k].parse().unwrap_or_else(|_| panic!("{k} = {:?}", r[k])) };
    // 40 x 8 + 160 x 14 + 40 x 12 messages, every one received, none missing or rejected.
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(num("produced_msgs"), 3040.0, "{r:?}");
    assert_eq!(num("received_msgs"), 3040.0, "{r:?}");
    assert_eq!((num("missing_msgs"), num("rejected_msgs")), (0.0, 0.0));
    assert!(
        num("duplicate_msgs") >= 0.0,
        "duplicates are a number, counted"
    );
    // The controller scaled up for the step and back down after it.
    assert!(num("scale_events") >= 2.0, "{r:?}");
    assert!(num("consumer_processes_started") >= 2.0, "{r:?}");
    assert!(num("max_consumers") >= 2.0, "{r:?}");
    assert_eq!(
        (num("rate_steps_up"), num("rate_steps_down")),
        (1.0, 1.0),
        "{r:?}"
    );
    assert!(num("up_decisions_to_converge") >= 1.0, "{r:?}");
    assert!(
        num("consumer_seconds") > 0.0 && num("peak_lag_msgs") > 0.0,
        "{r:?}"
    );
    let run = dir.join("runs").join(format!("{}-r0", r["point"]));
    let decisions = std::fs::read_to_string(run.join("decisions.csv")).unwrap();
    assert!(
        decisions.contains(",up,") && decisions.contains(",down,"),
        "{decisions}"
    );
    assert!(decisions.contains("started consumer 1"), "{decisions}");
    let timeline = experiments::results::read_timeline(&run).unwrap();
    let produced: f64 = timeline.iter().map(|t| t.produced_msgs_per_s).sum();
    assert_eq!(produced, 3040.0);
    assert!(timeline.iter().any(|t| t.events.starts_with("up ")));
    assert!(timeline.iter().any(|t| t.events.starts_with("down ")));
    assert!(timeline.iter().any(|t| t.target_msgs_per_s > 150.0));
    // Each consumer process left its records, under the controller's ids a0, a1, ...
    for i in 0..num("consumer_processes_started") as usize {
        assert!(
            run.join(format!("consumer-a{i}-summary.csv")).exists(),
            "a{i}"
        );
    }
}

/// `pilot autoscale` as a user runs it: a Kafka pilot, a topic, the controller starting MASA consumers as
/// compute pilots, MASS with a 4x step; SIGTERM stops every consumer gracefully and the group's accounting is
/// whole.
#[test]
fn pilot_autoscale_scales_a_group_from_the_command_line_and_stops_it_gracefully() {
    let (mass, masa) = common::apps();
    let bin = mass.parent().unwrap().join("pilot");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        assert!(Command::new(cargo)
            .args(["build", "-p", "pilot-core", "--bin", "pilot"])
            .current_dir(root())
            .status()
            .unwrap()
            .success());
    }
    let dir = tempfile::tempdir().unwrap();
    let (w, results) = (dir.path().join("pilots"), dir.path().join("results"));
    let pilot = |args: &[&str]| {
        Command::new(&bin)
            .arg("--workdir")
            .arg(&w)
            .args(args)
            .output()
            .unwrap()
    };
    let o = pilot(&["start", "--nodes", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let id = text(&o)
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("pilot "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> Output, String);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["stop", &self.1]);
        }
    }
    let _stop = Stop(&pilot, id.clone());
    let o = pilot(&["topic", "create", &id, "elastic", "--partitions", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    let (wd, rd) = (w.display().to_string(), results.display().to_string());
    let decisions = dir.path().join("decisions.csv");
    let consumer: Vec<String> = [
        masa.to_str().unwrap(),
        "run",
        "--pilot",
        &id,
        "--pilot-workdir",
        &wd,
        "--topic",
        "{topic}",
        "--group",
        "{group}",
        "--metrics-topic",
        "{metrics_topic}",
        "--consumer-id",
        "a{consumer_index}",
        "--idle-timeout-s",
        "3600",
        "--processor",
        "none",
        "--cost-ms-per-message",
        "10",
        "--interval-s",
        "0.2",
        "--quiet",
        "--results-dir",
        &rd,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let controller = Command::new(&bin)
        .arg("--workdir")
        .arg(&w)
        .args([
            "autoscale",
            "--pilot",
            &id,
            "--topic",
            "elastic",
            "--group",
            "g",
            "--metrics-topic",
            "elastic-metrics",
            "--decision-interval-s",
            "2",
            "--warmup-s",
            "3",
            "--scale-down-delay-s",
            "3",
            "--catch-up-s",
            "10",
            "--max-consumers",
            "3",
            "--decisions",
            decisions.to_str().unwrap(),
            "--",
        ])
        .args(&consumer)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let o = Command::new(&mass)
        .args([
            "run",
            "--pilot",
            &id,
            "--pilot-workdir",
            &wd,
            "--topic",
            "elastic",
            "--rate-profile",
            "steps:40@5,160@10,40@8",
            "--points-per-message",
            "20",
            "--kafka",
            "batch.num.messages=1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Let the group drain (the controller's own rows say when: every produced message committed), then stop the
    // controller as Ctrl-C would. A loaded machine drains slower, so this waits on the lag, not on a clock.
    let drained = |rows: &str| {
        rows.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f.len() > 4 && f[3].parse::<f64>() == Ok(0.0) && f[4] == "2120"
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !drained(&std::fs::read_to_string(&decisions).unwrap_or_default())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = controller.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // The caveat about mid-batch fetches is printed for a broker build that has the defect, and only then.
    let status = pilot(&["status", &id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let whole = v["details"]["framework"]["broker_build"]["serves_whole_batches"].as_bool();
    assert_eq!(
        t.contains("from inside a record batch"),
        whole == Some(false),
        "{t}"
    );
    let rows = std::fs::read_to_string(&decisions).unwrap();
    assert!(rows.contains(",up,"), "{rows}");
    let merged = Command::new(&masa)
        .args(["merge", &rd, "--expect-messages", "2120"])
        .output()
        .unwrap();
    // At least once: every message received (duplicates, from rebalances while the group scales, are counted and
    // explained, not an error).
    let m = text(&merged);
    assert!(
        merged.status.success() && m.contains("missing 0"),
        "{m}\n{rows}"
    );
    assert!(
        m.contains("duplicates 0") || m.contains("came again to the next owner"),
        "{m}"
    );
}
