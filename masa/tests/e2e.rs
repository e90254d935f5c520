//! MASS -> tansu -> MASA end to end: two MASA processes in one consumer group, every message accounted for.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mass::config::RawConfig as MassConfig;
use pilot_core::client::Connection;
use pilot_core::clock::SystemClock;
use pilot_core::description::{ProcessEnvironment, RawDescription};
use pilot_core::pilot::Pilot;

/// Kills the child if the test fails before it exits.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn masa(
    conn: &Connection,
    topic: &str,
    group: &str,
    id: &str,
    results: &std::path::Path,
    expect: u64,
) -> Reap {
    Reap(
        Command::new(env!("CARGO_BIN_EXE_masa"))
            .args([
                "run",
                "--bootstrap-servers",
                &conn.bootstrap,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args([
                "--consumer-id",
                id,
                "--idle-timeout-s",
                "8",
                "--interval-s",
                "0.1",
                "--quiet",
                "--processor",
                "kmeans",
            ])
            .args(["--expect-messages", &expect.to_string()])
            .arg("--results-dir")
            .arg(results)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Wait until the consumers' interval rows show the topic's partitions shared among `members` processes.
fn wait_for_group(results: &std::path::Path, ids: &[&str], partitions: u64) {
    let t0 = Instant::now();
    loop {
        let held: Vec<u64> = ids
            .iter()
            .map(|id| {
                pilot_core::metrics::read_csv::<masa::report::ConsumerInterval>(
                    &masa::consumer::intervals_path(results, id),
                )
                .ok()
                .and_then(|rows| rows.last().map(|r| r.assigned_partitions))
                .unwrap_or(0)
            })
            .collect();
        if held.iter().all(|&h| h > 0) && held.iter().sum::<u64>() == partitions {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "consumers never shared {partitions} partitions: {held:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_consumer_processes_account_for_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan = RawDescription {
        working_directory: Some(dir.path().join("pilots")),
        ..Default::default()
    }
    .validate("test", &ProcessEnvironment)
    .expect("tansu installed (scripts/setup.sh)");
    let _pilot = Pilot::create(plan, &|| false).unwrap();
    let conn = Connection::from_details(_pilot.details().unwrap().framework.kafka());
    conn_topic(&conn, "e2e");
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let n = 1000u64;
    let a = masa(&conn, "e2e", "g", "a", &results, n);
    let b = masa(&conn, "e2e", "g", "b", &results, n);
    wait_for_group(&results, &["a", "b"], 12);

    let mplan = MassConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("e2e".into()),
        threads: Some(2),
        messages: Some(n),
        points_per_message: Some(500),
        ..Default::default()
    }
    .validate("test")
    .unwrap();
    let out = mass::producer::run(
        &mplan,
        &conn,
        Arc::new(SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.summary.delivered_msgs, n);

    for mut c in [a, b] {
        let status = c.0.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(c.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        // Each process alone sees only its partitions: it reports its own gaps, so it exits non-zero; the
        // group's merged account below is what must be whole.
        assert!(status.success() || err.contains("missing"), "{err}");
    }
    let (acc, files) = masa::consumer::merge_accounting(std::slice::from_ref(&results)).unwrap();
    assert_eq!(files, 2);
    let t = acc.totals(Some(n));
    assert_eq!(
        (t.received, t.duplicates, t.rejected, t.missing),
        (n, 0, 0, 0)
    );
    assert_eq!(
        acc.received.keys().copied().collect::<Vec<_>>(),
        vec![0, 1],
        "both producer threads"
    );
    for id in ["a", "b"] {
        let rows: Vec<masa::report::ConsumerSummary> =
            pilot_core::metrics::read_csv(&masa::consumer::summary_path(&results, id)).unwrap();
        assert!(rows[0].received_msgs > 0, "consumer {id} got a share");
        assert!(rows[0].e2e_latency_us_p50 > 0);
    }
    // The merge command agrees.
    let merged = Command::new(env!("CARGO_BIN_EXE_masa"))
        .arg("merge")
        .arg(&results)
        .args(["--expect-messages", "1000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&merged.stdout);
    assert!(
        merged.status.success()
            && text.contains("received 1000 distinct, duplicates 0, rejected 0, missing 0"),
        "{text}"
    );
}

fn conn_topic(conn: &Connection, topic: &str) {
    pilot_core::admin::KafkaAdmin::new(&conn.bootstrap, &conn.client, Duration::from_secs(10))
        .create_topic(topic, conn.default_partitions, 1)
        .unwrap();
}
