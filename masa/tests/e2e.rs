//! MASS -> tansu -> MASA end to end: two MASA processes in one consumer group, started on the pilot's node
//! through pilot-core's tasks (2 processes per node), every message accounted for.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mass::config::{RawConfig as MassConfig, Settings};
use pilot_core::contract::client::Connection;
use pilot_core::contract::clock::SystemClock;
use pilot_core::pilots::pilot::Pilot;

#[test]
fn two_consumer_processes_account_for_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let _pilot = Pilot::create_local(&dir.path().join("pilots"))
        .expect("tansu installed (scripts/setup.sh)");
    let conn = _pilot.connection().unwrap();
    conn_topic(&conn, "e2e");
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let n = 1000u64;
    let details = _pilot.details().unwrap().clone();
    let command: Vec<String> = [
        env!("CARGO_BIN_EXE_masa"),
        "run",
        "--bootstrap-servers",
        "{bootstrap}",
        "--topic",
        "e2e",
        "--group",
        "g",
        "--metrics-topic",
        "e2e-metrics",
        "--consumer-id",
        "c{process_index}",
        "--idle-timeout-s",
        "8",
        "--interval-s",
        "0.1",
        "--quiet",
        "--processor",
        "kmeans",
        "--expect-messages",
        "1000",
        "--results-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([results.display().to_string()])
    .collect();
    let mut reports =
        pilot_core::contract::telemetry::TelemetryReader::new(&conn, "e2e-metrics").unwrap();
    let consumers = std::thread::spawn(move || {
        let mut backend = pilot_core::pilots::backend::local::LocalBackend::new();
        pilot_core::pilots::tasks::run(
            &details,
            &mut backend,
            pilot_core::pilots::tasks::NodeSelection::Own,
            2,
            &command,
            Duration::from_secs(120),
            &|| false,
        )
        .unwrap()
    });
    pilot_core::contract::telemetry::wait_for_group(
        &mut reports,
        "g",
        &["c0".into(), "c1".into()],
        12,
        Duration::from_secs(60),
        &|| false,
    )
    .unwrap();

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

    let tasks = consumers.join().unwrap();
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        // Each process alone sees only its partitions and reports its own gaps (non-zero exit); the group's
        // merged account below is what must be whole.
        let log = std::fs::read_to_string(&t.log).unwrap();
        assert!(
            t.status.is_some() && (t.success() || log.contains("missing")),
            "{log}"
        );
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
    for id in ["c0", "c1"] {
        let rows: Vec<masa::report::ConsumerSummary> =
            pilot_core::contract::metrics::read_csv(&masa::consumer::summary_path(&results, id))
                .unwrap();
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
            && text.contains(
                "received 1000 distinct, unaccounted 0, duplicates 0, rejected 0, missing 0"
            ),
        "{text}"
    );
}

fn conn_topic(conn: &Connection, topic: &str) {
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .create_topic(topic, conn.default_partitions, 1)
    .unwrap();
}
