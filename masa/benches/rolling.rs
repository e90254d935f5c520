//! The rolling reconstruction's per-frame cost (issue 23), compute only: a frame normalised, filtered and back
//! projected onto three ortho-slices, and the frame it replaces taken out again. Prints where the time goes and
//! the frames per second one process sustains at each size; asserts nothing. The broker's share is measured by
//! the e2e bench, not here.
//!
//!     cargo bench -p masa --bench rolling [-- SIZES BUFFER]     (default: 512,1024,2048 and 180 frames)

use std::time::Instant;

use masa::tomo::filter::FilterKind;
use masa::tomo::rolling::{
    backproject, normalise, FrameFilter, Geometry, OrthoSlices, Rolling, RollingConfig,
};
use pilot_core::contract::frame::{Frame, FrameInfo, FrameType};
use pilot_core::contract::message::Dtype;

fn frame(pixels: &[u8], n: u32, index: u64, angle_deg: f64, frame_type: FrameType) -> Frame<'_> {
    Frame {
        info: FrameInfo {
            index,
            angle_deg,
            frame_type,
            epoch: 0,
            first_row: 0,
            detector_rows: n,
        },
        rows: n,
        cols: n,
        dtype: Dtype::U16,
        pixels,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sizes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![512, 1024, 2048]);
    let buffer: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(180);
    println!(
        "rolling ortho-slices, {} threads, buffer {buffer} frames, u16 frames, golden-angle order",
        rayon::current_num_threads()
    );
    println!(
        "{:>6} {:>9} {:>11} {:>10} {:>11} {:>11} {:>10} {:>9}",
        "size", "MiB/frame", "normalise", "filter", "backproject", "per frame", "frames/s", "MiB/s"
    );
    for n in sizes {
        let pixels: Vec<u8> = (0..n * n)
            .map(|k| (1000 + ((k * 2654435761usize) >> 20) % 3000) as u16)
            .flat_map(|p| p.to_le_bytes())
            .collect();
        let flat: Vec<u8> = vec![4500u16; n * n]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        let dark: Vec<u8> = vec![100u16; n * n]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        let g = Geometry {
            rows: n,
            first_row: 0,
            detector_rows: n,
            cols: n,
            center: (n as f64 - 1.0) / 2.0,
            axial_row: Some(n / 2),
            plane_x: 0.0,
            plane_y: 0.0,
        };
        // The stages alone.
        let f = frame(&pixels, n as u32, 0, 0.0, FrameType::Projection);
        let mut v = Vec::new();
        f.pixels_f32_into(&mut v);
        let (flat_f, dark_f) = (vec![4500f32; n * n], vec![100f32; n * n]);
        let filter = FrameFilter::new(n, FilterKind::SheppLogan);
        let mut slices = OrthoSlices {
            axial: vec![0.0; n * n],
            plane_xz: vec![0.0; n * n],
            plane_yz: vec![0.0; n * n],
        };
        let (mut t_norm, mut t_filt, mut t_bp) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..10 {
            f.pixels_f32_into(&mut v);
            let t = Instant::now();
            normalise(&mut v, &flat_f, &dark_f);
            t_norm.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            filter.filter(&mut v);
            t_filt.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            backproject(&g, &v, k as f64 * 0.3, 0.01, &mut slices);
            t_bp.push(t.elapsed().as_secs_f64());
        }
        // The whole update in a full buffer: add the new frame, take the replaced one out.
        let mut roll = Rolling::new(RollingConfig {
            geometry: g,
            buffer_frames: buffer,
            filter: FilterKind::SheppLogan,
            recompute_every: 0,
        });
        roll.push(&frame(&flat, n as u32, 0, 0.0, FrameType::Flat))
            .unwrap();
        roll.push(&frame(&dark, n as u32, 1, 0.0, FrameType::Dark))
            .unwrap();
        let golden = |k: u64| (k as f64 * 111.246_117_974_981) % 180.0;
        for k in 0..buffer as u64 {
            roll.push(&frame(
                &pixels,
                n as u32,
                2 + k,
                golden(k),
                FrameType::Projection,
            ))
            .unwrap();
        }
        let timed = if n >= 2048 { 20 } else { 60 };
        let t = Instant::now();
        for k in buffer as u64..buffer as u64 + timed {
            roll.push(&frame(
                &pixels,
                n as u32,
                2 + k,
                golden(k),
                FrameType::Projection,
            ))
            .unwrap();
        }
        let per_frame = t.elapsed().as_secs_f64() / timed as f64;
        let mib = (n * n * 2) as f64 / (1 << 20) as f64;
        println!(
            "{:>6} {:>9.1} {:>9.2}ms {:>8.2}ms {:>9.2}ms {:>9.2}ms {:>10.0} {:>9.0}",
            n,
            mib,
            median(t_norm) * 1e3,
            median(t_filt) * 1e3,
            median(t_bp) * 1e3,
            per_frame * 1e3,
            1.0 / per_frame,
            mib / per_frame
        );
    }
    println!("(per frame: the whole update, new frame in and replaced frame out, so two back projections)");
}
