//! Quality against frames acquired, per angle order (issue 23), without a broker: MASS's frame source streams
//! the 3-D phantom into MASA's rolling reconstruction, and after every tenth of a full scan the axial slice is
//! scored (SSIM, images rescaled to [0, 1]) against the full scan's reconstruction (all N = pi/2 x columns
//! angles over 180 degrees, sequential). Then the same streams with stop-when-converged steering: where each
//! stops and how good it is there. Prints tables; asserts nothing.
//!
//!     cargo bench -p masa --bench angle_orders [-- COLUMNS]      (default 128)

use masa::processor::Processor;
use masa::rolling::{RollingProcessor, RollingSettings};
use masa::tomo::quality::compare_unit;
use mass::angles::AngleOrder;
use mass::frames::{FrameParams, FrameSource};
use mass::source::Source;
use pilot_core::contract::frame::decode_frame;
use pilot_core::contract::message::Encoding;
use pilot_core::ops::steer::{Observation, SteerConfig, SteerPolicy};

const FIELDS: u64 = 4;

fn params(cols: u32, n: u32, order: AngleOrder) -> FrameParams {
    FrameParams {
        rows: 4,
        cols,
        projections_per_180: n,
        order,
        darks: 2,
        flats: 2,
        center_px: cols as f64 / 2.0,
        cache_frames: 0,
        ..FrameParams::default()
    }
}

/// Stream `projections` projections of `order` into a fresh processor (buffer `n`); call `at` after each.
fn stream(
    cols: u32,
    n: u32,
    order: AngleOrder,
    projections: u64,
    at: &mut dyn FnMut(u64, &RollingProcessor) -> bool,
) {
    let mut src = FrameSource::new(params(cols, n, order), 0, Encoding::Envelope).unwrap();
    let mut p = RollingProcessor::new(
        RollingSettings {
            buffer_frames: Some(n as usize),
            quality_every_updates: u64::MAX,
            ..Default::default()
        },
        "bench",
    )
    .unwrap();
    for seq in 0..FIELDS + projections {
        let msg = src.next(seq, 0).to_vec();
        let f = decode_frame(&msg).unwrap();
        p.add(&masa::decode::Payload::Frame(f)).unwrap();
        p.process().unwrap();
        if seq >= FIELDS && at(seq - FIELDS + 1, &p) {
            return;
        }
    }
}

fn axial(p: &RollingProcessor) -> Vec<f32> {
    p.rolling().unwrap().slices().axial.clone()
}

fn main() {
    let cols: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(128);
    let n = (std::f64::consts::FRAC_PI_2 * cols as f64).round() as u32;
    let c = cols as usize;
    let mut full = Vec::new();
    stream(cols, n, AngleOrder::Sequential, n as u64, &mut |k, p| {
        if k == n as u64 {
            full = axial(p);
        }
        false
    });
    let orders = [
        AngleOrder::Sequential,
        AngleOrder::Interlaced(16),
        AngleOrder::Golden,
    ];
    println!("SSIM of the rolling axial slice against the full scan's ({cols} columns, N = {n} angles over 180 degrees)");
    print!("{:<16}", "frames / N");
    for tenth in 1..=10 {
        print!(" {:>6}", format!("{}%", tenth * 10));
    }
    println!();
    for order in orders {
        let mut row = Vec::new();
        stream(cols, n, order, n as u64, &mut |k, p| {
            if (k * 10) % n as u64 == 0 || (k * 10) / n as u64 > row.len() as u64 {
                if let Some(q) = compare_unit(&axial(p), &full, c, 0.95) {
                    row.push(q.ssim);
                }
            }
            false
        });
        print!("{:<16}", order.to_string());
        for s in row.iter().take(10) {
            print!(" {s:>6.3}");
        }
        println!();
    }
    // Two stop rules: consecutive updates (each frame), and updates a twentieth of a scan apart (MASA's
    // --quality-every-updates), which a single frame's small change cannot satisfy too early.
    for (every, threshold, updates) in [(1u64, 0.99, 5u32), ((n as u64 / 20).max(1), 0.98, 3)] {
        println!(
            "\nwith steering: scored every {every} frames, stop once SSIM between scored updates >= {threshold} for {updates}"
        );
        println!(
            "{:<16} {:>12} {:>10} {:>22}",
            "order", "stopped at", "of N", "SSIM vs full scan"
        );
        for order in orders {
            let mut policy = SteerPolicy::new(SteerConfig {
                converged_ssim: Some(threshold),
                converged_updates: updates,
                ..Default::default()
            })
            .unwrap();
            let mut previous: Option<Vec<f32>> = None;
            let mut stop = None;
            stream(cols, n, order, 2 * n as u64, &mut |k, p| {
                if k % every != 0 {
                    return false;
                }
                let now = axial(p);
                let ssim = previous
                    .as_ref()
                    .and_then(|prev| compare_unit(&now, prev, c, 0.95))
                    .map_or(f64::NAN, |q| q.ssim);
                previous = Some(now.clone());
                let o = Observation {
                    frame: k,
                    ssim_previous: ssim,
                    ssim_reference: f64::NAN,
                    lag_frames: f64::NAN,
                    rate: f64::NAN,
                    background: f64::NAN,
                };
                if !policy.observe(&o, k as f64).is_empty() {
                    let q = compare_unit(&now, &full, c, 0.95).map_or(f64::NAN, |q| q.ssim);
                    stop = Some((k, q));
                    return true;
                }
                false
            });
            match stop {
                Some((k, q)) => println!(
                    "{:<16} {:>12} {:>9.0}% {:>22.3}",
                    order.to_string(),
                    k,
                    100.0 * k as f64 / n as f64,
                    q
                ),
                None => println!("{:<16} {:>12}", order.to_string(), "never (2 N)"),
            }
        }
    }
}
