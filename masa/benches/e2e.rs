//! End to end through a local tansu (a fresh broker per case): MASS producing 5,000 x 3-D point messages,
//! MASA consuming and clustering them (k = 10, Spark's rule). Prints figures; asserts nothing.
//!
//!     cargo bench -p masa --bench e2e [-- quick]
//!
//! Cases: draining a pre-filled topic (the consumer alone), producer and consumer together at a set rate
//! (latency), and together with an unlimited producer (everything sharing the machine's 2 cores).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use masa::config::RawConfig as MasaConfig;
use mass::config::{RawConfig as MassConfig, Settings};
use pilot_core::contract::client::Connection;
use pilot_core::contract::clock::SystemClock;
use pilot_core::pilots::pilot::Pilot;

fn fresh(dir: &std::path::Path) -> anyhow::Result<(Pilot, Connection)> {
    let p = Pilot::create_local(dir)?;
    let c = p.connection().expect("running");
    // The figures depend on the broker build (the default and the fallback differ on producing): name it once.
    static NAMED: std::sync::Once = std::sync::Once::new();
    NAMED.call_once(|| println!("broker: {}", p.broker_build_label()));
    Ok((p, c))
}

fn produce(
    conn: &Connection,
    topic: &str,
    raw: MassConfig,
) -> anyhow::Result<mass::report::ProducerSummary> {
    let plan = MassConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some(topic.into()),
        create_topic: Some(true),
        ..raw
    }
    .validate("bench")?;
    Ok(mass::producer::run(
        &plan,
        conn,
        Arc::new(SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )?
    .summary)
}

fn consume(
    conn: &Connection,
    topic: &str,
    processor: &str,
    expect: Option<u64>,
) -> anyhow::Result<masa::report::ConsumerSummary> {
    let plan = MasaConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some(topic.into()),
        processor: Some(
            <masa::config::ProcessorKind as clap::ValueEnum>::from_str(processor, false)
                .expect("a processor name"),
        ),
        idle_timeout_s: Some(3.0),
        expect_messages: expect,
        ..Default::default()
    }
    .validate("bench")?;
    Ok(masa::consumer::run(
        &plan,
        conn,
        Arc::new(SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )?
    .summary)
}

fn line(label: &str, s: &masa::report::ConsumerSummary) {
    println!(
        "  {label:<38} {:>6.0} msg/s ({:>5.1} MB/s, {:>5.1} M points/s), missing {}, e2e us p50 {} p90 {} p99 {} max {}, kmeans p50 {} us",
        s.throughput_msgs_per_s,
        s.throughput_mb_per_s,
        s.throughput_items_per_s / 1e6,
        s.missing_msgs,
        s.e2e_latency_us_p50,
        s.e2e_latency_us_p90,
        s.e2e_latency_us_p99,
        s.e2e_latency_us_max,
        s.processing_us_p50
    );
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "quick");
    let dir = tempfile::tempdir()?;
    let n: u64 = if quick { 5_000 } else { 20_000 };
    println!("== drain: {n} messages produced first, then consumed by one MASA thread");
    for processor in ["kmeans", "none"] {
        let (mut p, conn) = fresh(dir.path())?;
        produce(
            &conn,
            "d",
            MassConfig {
                messages: Some(n),
                ..Default::default()
            },
        )?;
        let s = consume(&conn, "d", processor, Some(n))?;
        line(&format!("{processor} (latency includes the backlog)"), &s);
        p.cancel();
    }
    let secs = if quick { 8.0 } else { 15.0 };
    for rate in [Some(1_500.0), Some(2_000.0), None] {
        let label = rate.map_or("unlimited".to_string(), |r| format!("at {r} msg/s"));
        println!("== together: MASS {label} for {secs} s, MASA (kmeans) consuming");
        let (mut p, conn) = fresh(dir.path())?;
        pilot_core::contract::admin::KafkaAdmin::new(
            &conn.bootstrap,
            &conn.client,
            std::time::Duration::from_secs(10),
        )
        .create_topic("r", 12, 1)?;
        let c2 = conn.clone();
        let consumer = std::thread::spawn(move || consume(&c2, "r", "kmeans", None));
        std::thread::sleep(std::time::Duration::from_secs(2));
        let prod = produce(
            &conn,
            "r",
            MassConfig {
                duration_s: Some(secs),
                rate_msgs_per_s: rate,
                ..Default::default()
            },
        )?;
        let s = consumer.join().expect("consumer thread")?;
        println!(
            "  producer sent {} at {:.1} msg/s, delivered {:.0} msg/s",
            prod.sent_msgs, prod.send_rate_msgs_per_s, prod.throughput_msgs_per_s
        );
        line("kmeans", &s);
        p.cancel();
    }
    Ok(())
}
