//! Detector frames end to end (issue 23): MASS's frame source through a local tansu into MASA's rolling
//! reconstruction (three ortho-slices updated per frame, scoring off), one fresh broker per case. Prints, per
//! frame size and target rate, what was sustained and where the time went; asserts nothing.
//!
//!     cargo bench -p masa --bench frames [-- SIZE@RATE ...]     (default: 256@500 1024@100 2048@max)
//!
//! Columns: frames sent and reconstructed; the sustained rate (frames reconstructed over the receive window) and
//! its MiB/s; the broker's share (emitted -> handed to MASA, from the actual send time, p50/p99); frame-to-image
//! latency (intended send -> the update that includes it, p50/p99/max); MASA's busy time per frame (decode,
//! normalise, filter, back projection); MASS's send lag p99 (whether the source itself kept up). The
//! compute-only split of the busy time is `cargo bench -p masa --bench rolling`. Frames are sequential angles,
//! 90 per half turn, rendered before the run.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mass::config::Settings;
use pilot_core::contract::clock::SystemClock;
use pilot_core::pilots::pilot::Pilot;

fn case(dir: &std::path::Path, n: u32, rate: Option<f64>, secs: f64) -> anyhow::Result<()> {
    let mut pilot = Pilot::create_local(dir)?;
    let conn = pilot.connection().expect("running");
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .create_topic("frames", 1, 1)?;
    let masa_plan = masa::config::RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("frames".into()),
        processor: Some(masa::config::ProcessorKind::Rolling),
        buffer_frames: Some(90),
        quality_every_updates: Some(u64::MAX),
        preview_png: Some(false),
        idle_timeout_s: Some(3.0),
        start_timeout_s: Some(120.0),
        ..Default::default()
    }
    .validate("bench")?;
    let c2 = conn.clone();
    let consumer = std::thread::spawn(move || {
        masa::consumer::run(
            &masa_plan,
            &c2,
            Arc::new(SystemClock::new()),
            &AtomicBool::new(false),
            &mut |_| {},
        )
    });
    let mass_plan = mass::config::RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("frames".into()),
        source: Some(mass::config::SourceKind::Frames),
        frame_rows: Some(n),
        frame_cols: Some(n),
        projections_per_180: Some(90),
        angle_order: Some("sequential".into()),
        darks: Some(2),
        flats: Some(2),
        rate_msgs_per_s: rate,
        duration_s: Some(secs),
        partitioning: Some(mass::config::Partitioning::KeyByProducer),
        ..Default::default()
    }
    .validate("bench")?;
    // The consumer's first join waits half a session timeout; the source renders its angles meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    let prod = mass::producer::run(
        &mass_plan,
        &conn,
        Arc::new(SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )?
    .summary;
    let s = consumer.join().expect("consumer thread")?.summary;
    let mib = (n as f64 * n as f64 * 2.0) / (1 << 20) as f64;
    let sustained = s.received_msgs as f64 / s.receive_window_s.max(1e-9);
    let ms = |us: u64| us as f64 / 1e3;
    println!(
        "{:>5} {:>7} {:>6} {:>6} {:>8.0} {:>8.0}  {:>7.1} {:>7.1}  {:>7.1} {:>7.1} {:>7.1}  {:>7.2} {:>8.1}",
        n,
        rate.map_or("max".to_string(), |r| format!("{r:.0}")),
        prod.delivered_msgs,
        s.received_msgs,
        sustained,
        sustained * mib,
        ms(s.e2e_actual_latency_us_p50),
        ms(s.e2e_actual_latency_us_p99),
        ms(s.processed_latency_us_p50),
        ms(s.processed_latency_us_p99),
        ms(s.e2e_latency_us_max),
        s.busy_s * 1e3 / s.received_msgs.max(1) as f64,
        prod.send_lag_us_p99 as f64 / 1e3,
    );
    if s.missing_msgs > 0 || s.rejected_msgs > 0 {
        println!(
            "      missing {}, rejected {} ({})",
            s.missing_msgs, s.rejected_msgs, s.rejected_reasons
        );
    }
    pilot.cancel();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cases: Vec<(u32, Option<f64>)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (n, r) = a.split_once('@')?;
            Some((n.parse().ok()?, r.parse().ok()))
        })
        .collect();
    let cases = if cases.is_empty() {
        vec![(256, Some(500.0)), (1024, Some(100.0)), (2048, None)]
    } else {
        cases
    };
    let dir = tempfile::tempdir()?;
    println!(
        "{:>5} {:>7} {:>6} {:>6} {:>8} {:>8}  {:>15}  {:>23}  {:>7} {:>8}",
        "size",
        "target",
        "sent",
        "recon",
        "frames/s",
        "MiB/s",
        "broker ms p50/99",
        "frame->image ms p50/99/max",
        "busy ms",
        "lag ms"
    );
    for (n, rate) in cases {
        case(dir.path(), n, rate, 10.0)?;
    }
    Ok(())
}
