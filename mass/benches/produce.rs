//! MASS producing into a local tansu (a fresh broker for every case), beside Python peers on the same broker
//! build and machine. Prints figures; asserts nothing.
//!
//!     cargo bench -p mass --bench produce            # everything (about 3 minutes)
//!     cargo bench -p mass --bench produce -- quick   # shorter runs, rate holds of 10 s
//!
//! Cases: fresh cluster messages (unlimited) vs the original Python loop; 2 MB messages vs Python
//! confluent-kafka sending the same bytes; holding 100 and 1,000 msg/s.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mass::config::{RawConfig, Settings};
use mass::producer::{self, Connection};
use pilot_core::pilot::Pilot;

fn fresh_pilot(dir: &std::path::Path) -> anyhow::Result<(Pilot, Connection)> {
    let p = Pilot::create_local(dir)?;
    let c = p.connection().expect("running");
    Ok((p, c))
}

fn ours(conn: &Connection, raw: RawConfig) -> anyhow::Result<mass::report::ProducerSummary> {
    let plan = RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        create_topic: Some(true),
        ..raw
    }
    .validate("bench")?;
    let stop = AtomicBool::new(false);
    let out = producer::run(
        &plan,
        conn,
        Arc::new(pilot_core::clock::SystemClock::new()),
        &stop,
        &mut |_| {},
    )?;
    Ok(out.summary)
}

fn python(args: &[&str]) -> Option<serde_json::Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peers/confluent_producer.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "  python peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// An unreported run on its own broker before each section: the first broker after a previous section's
/// gigabytes were freed is measurably slower, and warm-up is kept apart from measurement.
fn warm_up(dir: &std::path::Path) -> anyhow::Result<()> {
    let (mut p, conn) = fresh_pilot(dir)?;
    ours(
        &conn,
        RawConfig {
            topic: Some("w".into()),
            source: Some("synthetic".into()),
            message_bytes: Some(2_000_000),
            messages: Some(300),
            ..Default::default()
        },
    )?;
    settle(&mut p);
    Ok(())
}

/// Stop a pilot and give the machine a moment to take back the broker's memory before the next measurement.
fn settle(p: &mut Pilot) {
    p.cancel();
    std::thread::sleep(std::time::Duration::from_secs(3));
}

fn python_bytes(dir: &std::path::Path, n: u64, linger: u32, rep: u32) -> anyhow::Result<()> {
    let (mut p, conn) = fresh_pilot(dir)?;
    pilot_core::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        std::time::Duration::from_secs(10),
    )
    .create_topic("b", 12, 1)?;
    if let Some(v) = python(&[
        &conn.bootstrap,
        "b",
        "bytes",
        "2000000",
        &n.to_string(),
        &linger.to_string(),
    ]) {
        println!(
            "  confluent-kafka (py) linger {linger:>2} ms rep {rep}: {:>6.1} MB/s delivered",
            v["mb_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    settle(&mut p);
    Ok(())
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import confluent_kafka, numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "quick");
    let dir = tempfile::tempdir()?;
    let peers = python_available();
    if !peers {
        println!("(Python peers skipped: pip install confluent-kafka numpy)");
    }
    let secs = if quick { 5.0 } else { 10.0 };

    warm_up(dir.path())?;
    println!("== fresh cluster-source messages (5,000 x 3-D f64 points, new every message), unlimited, acks=all");
    for rep in 1..=2 {
        let (mut p, conn) = fresh_pilot(dir.path())?;
        let s = ours(
            &conn,
            RawConfig {
                topic: Some("k".into()),
                duration_s: Some(secs),
                ..Default::default()
            },
        )?;
        println!(
            "  mass (rust)        rep {rep}: {:>7.0} msg/s delivered ({:>6.1} MB/s, {:.1} M points/s), delivery p50 {} us",
            s.throughput_msgs_per_s, s.throughput_mb_per_s, s.throughput_points_per_s / 1e6, s.delivery_latency_us_p50
        );
        settle(&mut p);
        if peers {
            let (mut p, conn) = fresh_pilot(dir.path())?;
            pilot_core::admin::KafkaAdmin::new(
                &conn.bootstrap,
                &conn.client,
                std::time::Duration::from_secs(10),
            )
            .create_topic("k", 12, 1)?;
            if let Some(v) = python(&[&conn.bootstrap, "k", "paper-kmeans", &secs.to_string()]) {
                println!(
                    "  original loop (py) rep {rep}: {:>7.0} msg/s delivered (numpy -> str -> confluent-kafka, flush per message)",
                    v["msgs_per_s"].as_f64().unwrap_or(0.0)
                );
            }
            settle(&mut p);
        }
    }

    let n = if quick { 500 } else { 1500 };
    warm_up(dir.path())?;
    println!("== 2 MB messages (static bytes), unlimited, acks=all, {n} messages");
    for (linger, batch) in [(5u32, None), (20, Some(8_000_000u32))] {
        for rep in 1..=3 {
            // Who runs first alternates: a broker started right after the previous one freed gigabytes of memory
            // is measurably slower, and that must not favour either side.
            if rep % 2 == 0 && peers {
                python_bytes(dir.path(), n, linger, rep)?;
            }
            let (mut p, conn) = fresh_pilot(dir.path())?;
            let s = ours(
                &conn,
                RawConfig {
                    topic: Some("b".into()),
                    source: Some("synthetic".into()),
                    message_bytes: Some(2_000_000),
                    messages: Some(n),
                    linger_ms: Some(linger),
                    batch_size: batch,
                    ..Default::default()
                },
            )?;
            println!(
                "  mass (rust)         linger {linger:>2} ms{} rep {rep}: {:>6.1} MB/s delivered, {:>5.0} msg/s, delivery p50 {} us",
                if batch.is_some() { ", 8 MB batches" } else { "" },
                s.throughput_mb_per_s,
                s.throughput_msgs_per_s,
                s.delivery_latency_us_p50
            );
            settle(&mut p);
            if rep % 2 == 1 && peers {
                python_bytes(dir.path(), n, linger, rep)?;
            }
        }
    }

    let hold = if quick { 10.0 } else { 30.0 };
    println!("== holding a rate for {hold} s (open-loop schedule, cluster source)");
    for rate in [100.0, 1000.0] {
        let (mut p, conn) = fresh_pilot(dir.path())?;
        let s = ours(
            &conn,
            RawConfig {
                topic: Some("r".into()),
                duration_s: Some(hold),
                rate_msgs_per_s: Some(rate),
                ..Default::default()
            },
        )?;
        println!(
            "  target {rate:>6.0} msg/s: sent {:>6} at {:>9.3} msg/s, error {:+.4} %; send lag p99 {} us; delivery p50 {} us p99 {} us",
            s.sent_msgs, s.send_rate_msgs_per_s, s.rate_error_pct, s.send_lag_us_p99, s.delivery_latency_us_p50, s.delivery_latency_us_p99
        );
        p.cancel();
    }
    Ok(())
}
