//! MASS against a real tansu broker (a fresh pilot per test): every message accounted for, clean shutdown,
//! broker failures, rate control on an injected clock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mass::config::{RawConfig, Settings};
use mass::producer::{self, Connection};
use pilot_core::contract::clock::{ManualClock, SystemClock};
use pilot_core::contract::message::{self, AccountingKey, Encoding};
use pilot_core::pilots::pilot::Pilot;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn pilot(dir: &std::path::Path) -> (Pilot, Connection) {
    let p = Pilot::create_local(dir).expect("tansu installed (scripts/setup.sh)");
    let c = p.connection().unwrap();
    (p, c)
}

fn raw(conn: &Connection, topic: &str) -> RawConfig {
    RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some(topic.into()),
        create_topic: Some(true),
        interval_s: Some(0.2),
        ..Default::default()
    }
}

/// Run a plan on the real clock to its stop rule, with no shutdown.
fn produce(
    plan: &mass::config::ProducerPlan,
    conn: &Connection,
) -> Result<producer::RunOutput, producer::ProduceError> {
    producer::run(
        plan,
        conn,
        Arc::new(SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

/// A complete run: `n` sent, `n` delivered, none failed or unknown.
fn assert_all_delivered(s: &mass::report::ProducerSummary, n: u64) {
    assert!(s.complete, "{}", s.incomplete_reason);
    assert_eq!(
        (s.sent_msgs, s.delivered_msgs, s.failed_msgs, s.unknown_msgs),
        (n, n, 0, 0)
    );
}

/// Read `n` messages back and return (producer id, sequence) of each.
fn consume_ids(conn: &Connection, topic: &str, n: usize) -> Vec<(u32, u64)> {
    let mut cfg = conn
        .client
        .consumer_config(&conn.bootstrap, &format!("{topic}-check"));
    cfg.set("auto.offset.reset", "earliest");
    let c: BaseConsumer = cfg.create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let t0 = std::time::Instant::now();
    while out.len() < n && t0.elapsed() < Duration::from_secs(60) {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let body = m.payload().unwrap();
            match Encoding::detect(body) {
                Some(Encoding::Envelope) => {
                    let env = message::decode(body).unwrap();
                    assert!(env.header.actual_send_ns >= env.header.intended_send_ns);
                    out.push((env.header.producer_id, env.header.sequence));
                }
                _ => {
                    let k = AccountingKey::from_bytes(m.key().unwrap()).unwrap();
                    out.push((k.producer_id, k.sequence));
                }
            }
        }
    }
    out
}

#[test]
fn two_threads_every_producer_sequence_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, conn) = pilot(dir.path());
    let results = dir.path().join("results");
    let plan = RawConfig {
        threads: Some(2),
        producer_id_base: Some(10),
        messages: Some(301),
        points_per_message: Some(100),
        results_dir: Some(results.clone()),
        ..raw(&conn, "e2e")
    }
    .validate("test")
    .unwrap();
    let out = produce(&plan, &conn).unwrap();
    let s = &out.summary;
    assert_all_delivered(s, 301);
    assert_eq!(s.partitions, 12);
    let ids = consume_ids(&conn, "e2e", 301);
    let unique: HashSet<_> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 301);
    assert_eq!(unique.len(), 301, "duplicates");
    // Thread 0 sends global messages 0, 2, 4, ... (151 of them), thread 1 the odd ones (150).
    let expect: HashSet<_> = (0..151)
        .map(|s| (10, s))
        .chain((0..150).map(|s| (11, s)))
        .collect();
    assert_eq!(unique, expect);
    // The summary row on disk says the same.
    let rows: Vec<mass::report::ProducerSummary> =
        pilot_core::contract::metrics::read_csv(&producer::summary_path(&results)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].delivered_msgs, 301);
    assert!(
        !pilot_core::contract::metrics::read_csv::<mass::report::IntervalRow>(
            &producer::intervals_path(&results)
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn a_full_client_queue_backs_off_and_loses_nothing() {
    // librdkafka's queue capped at 4 messages: nearly every send meets QueueFull and waits for delivery reports.
    let dir = tempfile::tempdir().unwrap();
    let (_p, mut conn) = pilot(dir.path());
    conn.client
        .producer
        .insert("queue.buffering.max.messages".into(), "4".into());
    let plan = RawConfig {
        messages: Some(400),
        points_per_message: Some(50),
        ..raw(&conn, "full")
    }
    .validate("test")
    .unwrap();
    let out = produce(&plan, &conn).unwrap();
    assert_all_delivered(&out.summary, 400);
    let ids: HashSet<_> = consume_ids(&conn, "full", 400).into_iter().collect();
    assert_eq!(ids, (0..400).map(|q| (0, q)).collect::<HashSet<_>>());
}

#[test]
fn paper_text_encoding_is_accounted_through_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, conn) = pilot(dir.path());
    let plan = RawConfig {
        encoding: Some(pilot_core::contract::message::Encoding::PointsText),
        messages: Some(20),
        points_per_message: Some(50),
        ..raw(&conn, "text")
    }
    .validate("test")
    .unwrap();
    let out = produce(&plan, &conn).unwrap();
    assert_eq!(out.summary.delivered_msgs, 20);
    let ids: HashSet<_> = consume_ids(&conn, "text", 20).into_iter().collect();
    assert_eq!(ids, (0..20).map(|s| (0, s)).collect());
}

#[test]
fn interrupt_flushes_and_writes_an_incomplete_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, conn) = pilot(dir.path());
    let results = dir.path().join("r");
    let plan = RawConfig {
        duration_s: Some(60.0),
        rate_msgs_per_s: Some(200.0),
        points_per_message: Some(10),
        results_dir: Some(results.clone()),
        ..raw(&conn, "stop")
    }
    .validate("test")
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        s2.store(true, Ordering::Relaxed);
    });
    let out = producer::run(
        &plan,
        &conn,
        Arc::new(SystemClock::new()),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    t.join().unwrap();
    let s = &out.summary;
    assert!(!s.complete);
    assert!(
        s.incomplete_reason.contains("SIGINT/SIGTERM"),
        "{}",
        s.incomplete_reason
    );
    assert!(s.sent_msgs > 50 && s.sent_msgs < 1000, "{}", s.sent_msgs);
    assert_eq!(s.delivered_msgs, s.sent_msgs, "flushed before returning");
    let rows: Vec<mass::report::ProducerSummary> =
        pilot_core::contract::metrics::read_csv(&producer::summary_path(&results)).unwrap();
    assert!(!rows[0].complete);
}

#[test]
fn a_broker_dying_mid_run_is_counted_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let (mut pilot, conn) = pilot(dir.path());
    let plan = RawConfig {
        duration_s: Some(3.0),
        rate_msgs_per_s: Some(200.0),
        points_per_message: Some(10),
        message_timeout_ms: Some(1500),
        ..raw(&conn, "die")
    }
    .validate("test")
    .unwrap();
    // A crash, not a graceful stop: SIGKILL the broker process after a second.
    let broker = broker_pid(&conn.bootstrap);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(broker as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    });
    let out = produce(&plan, &conn).unwrap();
    t.join().unwrap();
    pilot.poll();
    assert_eq!(pilot.state(), pilot_core::PilotState::Failed);
    let s = &out.summary;
    assert!(!s.complete);
    assert!(
        s.delivered_msgs > 50,
        "delivered before the broker died: {}",
        s.delivered_msgs
    );
    assert!(s.failed_msgs + s.unknown_msgs > 0, "{s:?}");
    assert_eq!(
        s.sent_msgs,
        s.delivered_msgs + s.failed_msgs + s.unknown_msgs
    );
    assert!(!s.errors.is_empty() || s.unknown_msgs > 0);
}

/// The pid of the tansu process serving `bootstrap`.
fn broker_pid(bootstrap: &str) -> u32 {
    let needle = format!("tcp://{bootstrap}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .expect("broker process")
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let plan = RawConfig {
        bootstrap_servers: Some("127.0.7.99:9".into()),
        topic: Some("x".into()),
        ..Default::default()
    }
    .validate("test")
    .unwrap();
    let conn = producer::connect(&plan.target).unwrap();
    let err = produce(&plan, &conn).unwrap_err().to_string();
    assert!(
        err.contains("127.0.7.99:9") && err.contains("is the broker running"),
        "{err}"
    );
}

#[test]
fn rate_control_on_an_injected_clock_is_exact() {
    // A manual clock jumps to each slot: the run takes no real time, and the achieved rate must be exact.
    let dir = tempfile::tempdir().unwrap();
    let (_p, conn) = pilot(dir.path());
    let plan = RawConfig {
        duration_s: Some(30.0),
        rate_msgs_per_s: Some(100.0),
        points_per_message: Some(10),
        ..raw(&conn, "clock")
    }
    .validate("test")
    .unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000_000));
    let t0 = std::time::Instant::now();
    let out = producer::run(&plan, &conn, clock, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "simulated 30 s took {:?}",
        t0.elapsed()
    );
    let s = &out.summary;
    assert_eq!(s.sent_msgs, 3000);
    assert!(
        (s.send_rate_msgs_per_s - 100.0).abs() < 1e-6,
        "{}",
        s.send_rate_msgs_per_s
    );
    assert_eq!(
        s.send_lag_us_max, 1,
        "no lag on a perfect clock (histogram floor is 1 us)"
    );
}
