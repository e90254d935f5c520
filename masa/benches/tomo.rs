//! Light-source reconstruction figures (prints; asserts nothing):
//!
//! - per slice, 640 x 640 from 181 x 640 (analytic Shepp-Logan, no noise): FBP (the textbook baseline),
//!   GridRec alone and in pairs, ML-EM per iteration; one thread and two; RMSE and SSIM beside the times;
//! - the rotation-centre search on tooth.h5;
//! - whole paper-style messages (tooth.h5 bytes: decode the HDF5 file, 2 slices, centre search, GridRec) in
//!   messages/s, one thread and two (windows of 1 and 8 messages), with the centre searched on every message
//!   (as the paper) and cached.
//!
//!     cargo bench -p masa --bench tomo

mod common;

use masa::decode::Payload;
use masa::processor::Processor;
use masa::reconstruct::{Algorithm, CenterPolicy, TomoConfig, TomoProcessor};
use masa::tomo::center::{CenterSearch, CenterSearchSettings};
use masa::tomo::fbp::FbpPlan;
use masa::tomo::filter::FilterKind;
use masa::tomo::gridrec::GridRecPlan;
use masa::tomo::mlem::{Mlem, MlemInit};
use masa::tomo::quality::{rmse_in_circle, ssim_in_circle};
use mass::phantom::{image, shepp_logan, sinogram};
use pilot_core::contract::aps::paper_theta_rad;
use pilot_core::contract::aps::AngleSource;
use rayon::prelude::*;

fn score(img: &[f32], truth: &[f64], n: usize) -> (f64, f64) {
    let v: Vec<f64> = img.iter().map(|&x| x as f64).collect();
    (
        rmse_in_circle(&v, truth, n, 0.98),
        ssim_in_circle(&v, truth, n, 0.98, 1.0),
    )
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn main() {
    let n = 640;
    let theta = paper_theta_rad(181);
    let c = n as f64 / 2.0;
    let sino64 = sinogram(&shepp_logan(), &theta, n, c, 4);
    let sino: Vec<f32> = sino64.iter().map(|&v| v as f32).collect();
    let truth = image(&shepp_logan(), n, 4);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("tomography, {n} x {n} from 181 x {n}, {cores} cores; medians");

    // FBP baseline.
    let mut fbp = FbpPlan::new(n, n, c, &theta, FilterKind::SheppLogan);
    let mut out64 = vec![0.0; n * n];
    let t = common::median_ms(|| fbp.reconstruct(&sino64, &mut out64), 5);
    let o32: Vec<f32> = out64.iter().map(|&v| v as f32).collect();
    let (r, s) = score(&o32, &truth, n);
    println!("  FBP (linear interp.), 1 thread:      {t:7.1} ms/slice   RMSE {r:.4} SSIM {s:.3}");

    // GridRec.
    let plan = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
    let mut w = plan.work();
    let (mut a, mut b) = (vec![0f32; n * n], vec![0f32; n * n]);
    let single = common::median_ms(|| plan.reconstruct(&mut w, c, &sino, &mut a), 9);
    let pair = common::median_ms(
        || plan.reconstruct_pair(&mut w, c, &sino, Some(&sino), &mut a, Some(&mut b)),
        9,
    ) / 2.0;
    let (r, s) = score(&a, &truth, n);
    println!(
        "  GridRec, 1 thread, one slice:        {single:7.1} ms/slice   RMSE {r:.4} SSIM {s:.3}"
    );
    println!("  GridRec, 1 thread, slices in pairs:  {pair:7.1} ms/slice");
    let slices = 16;
    let mut outs = vec![vec![0f32; n * n]; slices];
    let p2 = pool(2);
    let works: Vec<_> = (0..2).map(|_| std::sync::Mutex::new(plan.work())).collect();
    let two = common::median_ms(
        || {
            p2.install(|| {
                outs.par_chunks_mut(2).for_each(|pr| {
                    let mut w = works[rayon::current_thread_index().unwrap_or(0) % 2]
                        .lock()
                        .unwrap();
                    let (x, y) = pr.split_at_mut(1);
                    plan.reconstruct_pair(
                        &mut w,
                        c,
                        &sino,
                        Some(&sino),
                        &mut x[0],
                        Some(&mut y[0]),
                    );
                })
            })
        },
        5,
    ) / slices as f64;
    println!(
        "  GridRec, 2 threads, pairs:           {two:7.1} ms/slice   scaling {:.2}x",
        pair / two
    );

    // ML-EM.
    let mlem = Mlem::new(n, n, c, &theta);
    let mut mw = mlem.projector().work();
    let mut x = vec![0f32; n * n];
    mlem.init(MlemInit::Mean, &sino, &mut x);
    let per_iter = common::median_ms(
        || {
            mlem.iterate(&mut mw, &sino, &mut x);
        },
        5,
    );
    let mut x30 = vec![0f32; n * n];
    mlem.reconstruct(&mut mw, &sino, MlemInit::Mean, 30, &mut x30);
    let (r, s) = score(&x30, &truth, n);
    println!("  ML-EM, 1 thread, one slice:          {per_iter:7.1} ms/iteration/slice   after 30: RMSE {r:.4} SSIM {s:.3}");
    let pair = common::mlem_pair_iteration_ms(&mlem, &sino, 3);
    println!("  ML-EM, 1 thread, slices in pairs:    {pair:7.1} ms/iteration/slice");
    let mut xs = vec![vec![0f32; n * n]; 4];
    let mworks: Vec<_> = (0..2)
        .map(|_| std::sync::Mutex::new(mlem.projector().work::<2>()))
        .collect();
    let two = common::median_ms(
        || {
            p2.install(|| {
                xs.par_chunks_mut(2).for_each(|pr| {
                    let mut w = mworks[rayon::current_thread_index().unwrap_or(0) % 2]
                        .lock()
                        .unwrap();
                    let (x, y) = pr.split_at_mut(1);
                    mlem.reconstruct_pair(
                        &mut w,
                        (&sino, &sino),
                        MlemInit::Mean,
                        2,
                        (&mut x[0], &mut y[0]),
                    );
                })
            })
        },
        3,
    ) / (4.0 * 2.0);
    println!(
        "  ML-EM, 2 threads, pairs:             {two:7.1} ms/iteration/slice   scaling {:.2}x",
        pair / two
    );

    // Centre search on tooth.
    let bytes = common::tooth_bytes();
    let ts = common::tooth_row_sinogram(&bytes);
    for threads in [1, 2] {
        let mut search = CenterSearch::new(640, &theta, CenterSearchSettings::default(), threads)
            .expect("a centre search for tooth");
        let p = pool(threads);
        let mut found = 0.0;
        let t = common::median_ms(|| found = p.install(|| search.find(&ts).center), 7);
        println!("  centre search on tooth, {threads} thread(s):  {t:6.1} ms   centre {found:.2}");
    }

    // Whole paper-style messages.
    for every in [Some(1), None] {
        for (threads, window) in [(1, 1), (2, 1), (2, 8)] {
            let cfg = TomoConfig {
                algorithm: Algorithm::GridRec {
                    filter: FilterKind::SheppLogan,
                },
                center: CenterPolicy::Auto {
                    every_messages: every,
                    range_px: None,
                },
                angles: AngleSource::Paper,
                theta_units: pilot_core::contract::aps::ThetaUnits::Auto,
                open_beam_counts: None,
                hdf5_timeout_s: 30.0,
                mask_ratio: 0.95,
                write_hdf5: false,
                preview_png: false,
                threads,
                output_dir: None,
            };
            let mut p = TomoProcessor::new(cfg, "bench").unwrap();
            let msgs = 24;
            let ms = common::median_ms(
                || {
                    for m in 0..msgs {
                        p.add(&Payload::Hdf5File(&bytes)).unwrap();
                        if (m + 1) % window == 0 {
                            p.process().unwrap();
                        }
                    }
                },
                3,
            );
            println!(
                "  tooth message (decode, 2 slices, {}, GridRec), {threads} thread(s), window {window}: {:6.1} msg/s",
                if every.is_some() {
                    "centre search"
                } else {
                    "cached centre"
                },
                msgs as f64 / (ms / 1e3)
            );
        }
    }
}
