//! MASS producing into a local tansu (a fresh broker for every case), beside Python peers on the same broker
//! build and machine. Prints figures; asserts nothing.
//!
//!     cargo bench -p mass --bench produce            # everything (about 5 minutes)
//!     cargo bench -p mass --bench produce -- quick   # shorter runs, rate holds of 10 s
//!     cargo bench -p mass --bench produce -- fresh   # one section: fresh, bytes or rate (several may be named)
//!
//! Cases: fresh cluster messages (unlimited) vs the original Python loop; 2 MB messages vs Python
//! confluent-kafka sending as many random bytes, alternating who goes first; holding 100 and 1,000 msg/s.
//! Each case prints every repetition and their median: single runs on a shared 2-core machine are noisy
//! (tansu's memory store copies every byte several times into fresh pages; see the README's figures).

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mass::config::{RawConfig, Settings};
use mass::producer::{self, Connection};
use pilot_core::pilots::pilot::Pilot;

fn fresh_pilot(dir: &std::path::Path) -> anyhow::Result<(Pilot, Connection)> {
    let p = Pilot::create_local(dir)?;
    let c = p.connection().expect("running");
    // The figures depend on the broker build (the default and the fallback differ on producing): name it once.
    static NAMED: std::sync::Once = std::sync::Once::new();
    NAMED.call_once(|| println!("broker: {}", p.broker_build_label()));
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
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
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
            source: Some(mass::config::SourceKind::Synthetic),
            message_bytes: Some(2_000_000),
            messages: Some(300),
            ..Default::default()
        },
    )?;
    settle(&mut p);
    Ok(())
}

/// `n` synthetic 2 MB messages to topic `b`.
fn two_mb(n: u64) -> RawConfig {
    RawConfig {
        topic: Some("b".into()),
        source: Some(mass::config::SourceKind::Synthetic),
        message_bytes: Some(2_000_000),
        messages: Some(n),
        ..Default::default()
    }
}

/// Stop a pilot and give the machine a moment to take back the broker's memory before the next measurement.
fn settle(p: &mut Pilot) {
    p.cancel();
    std::thread::sleep(std::time::Duration::from_secs(3));
}

fn python_bytes(dir: &std::path::Path, n: u64, linger: u32) -> anyhow::Result<Option<f64>> {
    let (mut p, conn) = fresh_pilot(dir)?;
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        std::time::Duration::from_secs(10),
    )
    .create_topic("b", 12, 1)?;
    let v = python(&[
        &conn.bootstrap,
        "b",
        "bytes",
        "2000064", // MASS's 2 MB payload plus its 64-byte envelope header
        &n.to_string(),
        &linger.to_string(),
        // The same client queue as MASS (the project's recommended producer properties).
        &conn.client.producer["queue.buffering.max.kbytes"],
    ])
    .and_then(|v| v["mb_per_s"].as_f64());
    settle(&mut p);
    Ok(v)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import confluent_kafka, numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    // Sections to run: any of `fresh`, `bytes`, `rate` among the arguments; all when none is named.
    let named: Vec<&str> = ["fresh", "bytes", "rate"]
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let section = |s: &str| named.is_empty() || named.contains(&s);
    let dir = tempfile::tempdir()?;
    let peers = python_available();
    if !peers {
        println!("(Python peers skipped: pip install confluent-kafka numpy)");
    }
    let secs = if quick { 5.0 } else { 10.0 };

    if section("fresh") {
        let reps = if quick { 2 } else { 3 };
        warm_up(dir.path())?;
        println!("== fresh cluster-source messages (5,000 x 3-D f64 points, new every message), unlimited, acks=all, {secs} s");
        let (mut ours_fresh, mut py_fresh) = (Vec::new(), Vec::new());
        for rep in 1..=reps {
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
            ours_fresh.push(s.throughput_msgs_per_s);
            settle(&mut p);
            if peers && rep <= 2 {
                let (mut p, conn) = fresh_pilot(dir.path())?;
                pilot_core::contract::admin::KafkaAdmin::new(
                    &conn.bootstrap,
                    &conn.client,
                    std::time::Duration::from_secs(10),
                )
                .create_topic("k", 12, 1)?;
                if let Some(v) = python(&[&conn.bootstrap, "k", "paper-kmeans", &secs.to_string()])
                {
                    let r = v["msgs_per_s"].as_f64().unwrap_or(0.0);
                    println!(
                        "  original loop (py) rep {rep}: {r:>7.0} msg/s delivered (numpy -> str -> confluent-kafka, flush per message)"
                    );
                    py_fresh.push(r);
                }
                settle(&mut p);
            }
        }
        let m = median(ours_fresh);
        print!("  median: mass {m:.0} msg/s (target >= 2,500)");
        if !py_fresh.is_empty() {
            let pm = median(py_fresh);
            print!(", original loop {pm:.0} msg/s: {:.0}x", m / pm);
        }
        println!();
    }
    if section("bytes") {
        let n = if quick { 500 } else { 1500 };
        let reps = if quick { 3 } else { 5 };
        warm_up(dir.path())?;
        println!("== 2 MB messages (random bytes, the same size on both sides), unlimited, acks=all, linger 5 ms, 64 MiB client queue on both sides, {n} messages, {reps} repetitions");
        let (mut ours_mb, mut py_mb) = (Vec::new(), Vec::new());
        for rep in 1..=reps {
            // Who runs first alternates: a broker started right after the previous one freed gigabytes of memory
            // is measurably slower, and that must not favour either side.
            let mut py_run = |rep: u32| -> anyhow::Result<()> {
                if peers {
                    if let Some(v) = python_bytes(dir.path(), n, 5)? {
                        println!("  confluent-kafka (py) rep {rep}: {v:>6.1} MB/s delivered");
                        py_mb.push(v);
                    }
                }
                Ok(())
            };
            if rep % 2 == 0 {
                py_run(rep)?;
            }
            let (mut p, conn) = fresh_pilot(dir.path())?;
            let s = ours(
                &conn,
                RawConfig {
                    linger_ms: Some(5),
                    ..two_mb(n)
                },
            )?;
            println!(
                "  mass (rust)          rep {rep}: {:>6.1} MB/s delivered, {:>5.0} msg/s, delivery p50 {} us",
                s.throughput_mb_per_s, s.throughput_msgs_per_s, s.delivery_latency_us_p50
            );
            ours_mb.push(s.throughput_mb_per_s);
            settle(&mut p);
            if rep % 2 == 1 {
                py_run(rep)?;
            }
        }
        let m = median(ours_mb);
        print!("  median: mass {m:.1} MB/s (target >= 500)");
        if !py_mb.is_empty() {
            let pm = median(py_mb);
            print!(", confluent-kafka {pm:.1} MB/s: mass/python {:.2}", m / pm);
        }
        println!();
        // Two producer threads hold two connections, which tansu serves on two cores.
        let mut two = Vec::new();
        for rep in 1..=if quick { 1 } else { 2 } {
            let (mut p, conn) = fresh_pilot(dir.path())?;
            let s = ours(
                &conn,
                RawConfig {
                    threads: Some(2),
                    ..two_mb(n)
                },
            )?;
            println!(
                "  mass (rust), 2 producer threads rep {rep}: {:>6.1} MB/s delivered",
                s.throughput_mb_per_s
            );
            two.push(s.throughput_mb_per_s);
            settle(&mut p);
        }
        println!("  median with 2 producer threads: {:.1} MB/s", median(two));
    }
    if section("rate") {
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
    }
    Ok(())
}
