//! The four kernels of issue 16 on one core, beside their Python peers and the machine's limit. Prints a table;
//! asserts nothing.
//!
//!     cargo bench -p masa --bench kernels [-- --no-peers]
//!
//! - ours: the KMeans update (5,000 x 3-D, k = 10), GridRec per slice in pairs (640 x 640 from 181 x 640),
//!   one ML-EM iteration per slice in pairs, the rotation-centre search on tooth.h5's first row;
//! - peers: `benches/peers/kernels.py` (scikit-learn, midas-tomo, astra-toolbox, algotom) on the same inputs in
//!   the same run, with `$PEERS_PYTHON` (default `python3`); a peer not installed prints its `pip install`;
//! - the limit: a calibration loop measures one core's peak of the instructions the kernels use (vector
//!   multiplies and adds, no fused multiply-add: the kernels round exactly as baseline x86-64 does), f64 and
//!   f32, and each kernel's counted floating-point operations per second are shown as a share of it.
//!
//! Operation counts (per message / slice): KMeans `n k (3 d)` distance ops plus `n d` sums; GridRec the
//! projection FFTs and the inverse 2-D FFT at `5 N log2 N` each plus 170 per gridded bin (6 x 6 complex
//! multiply-adds, the kernel's weights and the phase); ML-EM 9 per ray-line step (4 forward, 5 backward) plus
//! 4 per pixel; the centre search is timed only (its GridRec passes are counted in the GridRec row).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;

use masa::tomo::center::{CenterSearch, CenterSearchSettings};
use masa::tomo::filter::FilterKind;
use masa::tomo::gridrec::GridRecPlan;
use masa::tomo::mlem::Mlem;
use mass::phantom::{shepp_logan, sinogram};
use pilot_core::contract::aps::paper_theta_rad;

/// 128 (f64) or 256 (f32) independent multiply-then-add chains, 16 vectors of AVX-512: enough to cover both
/// instructions' latency on two ports.
#[inline(always)]
fn peak_f64<const D: usize>(iters: usize) -> f64 {
    let mut acc = [1.0f64; 128];
    let (m, a) = (0.999_999_9, 1e-9);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * m + a;
        }
    }
    acc.iter().sum()
}

#[inline(always)]
fn peak_f32<const D: usize>(iters: usize) -> f64 {
    let mut acc = [1.0f32; 256];
    let (m, a) = (0.999_9, 1e-6);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * m + a;
        }
    }
    acc.iter().map(|&v| v as f64).sum()
}

masa::multiversion!(peak_f64_best, peak_f64, (iters: usize) -> f64);
masa::multiversion!(peak_f32_best, peak_f32, (iters: usize) -> f64);

/// One core's peak GFLOP/s of vector multiply + add (f64, f32): the best of 5 runs of the calibration loop.
fn calibrate() -> (f64, f64) {
    let iters = 2_000_000;
    let best = |f: &dyn Fn() -> f64, flops: f64| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                flops / t.elapsed().as_secs_f64() / 1e9
            })
            .fold(0.0, f64::max)
    };
    (
        best(
            &|| peak_f64_best::<0>(std::hint::black_box(iters)),
            iters as f64 * 128.0 * 2.0,
        ),
        best(
            &|| peak_f32_best::<0>(std::hint::black_box(iters)),
            iters as f64 * 256.0 * 2.0,
        ),
    )
}

fn write_f64(path: &Path, v: &[f64]) {
    std::fs::write(
        path,
        v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
}

fn write_f32(path: &Path, v: &[f32]) {
    std::fs::write(
        path,
        v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
}

struct Row {
    kernel: &'static str,
    what: &'static str,
    ours_ms: f64,
    target_ms: f64,
    /// Counted floating-point operations per run, and whether they are f64.
    flops: Option<(f64, bool)>,
}

fn fft_flops(len: usize) -> f64 {
    5.0 * len as f64 * (len as f64).log2()
}

fn main() {
    let no_peers = std::env::args().any(|a| a == "--no-peers");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (peak64, peak32) = calibrate();
    let dir = tempfile::tempdir().unwrap();

    // KMeans: 64 MASS messages of 5,000 3-D points, k = 10.
    let (k, dims, n_pts) = (10, 3, 5_000);
    let batches = common::kmeans_messages(64, n_pts);
    write_f64(&dir.path().join("kmeans.f64"), &batches.concat());
    let mut model = common::kmeans_model(k, dims);
    let mut i = 0;
    let kmeans_ms = common::median_ms(
        || {
            for _ in 0..100 {
                model.update(&batches[i % 64]).unwrap();
                i += 1;
            }
        },
        21,
    ) / 100.0;

    // GridRec and ML-EM on an analytic Shepp-Logan sinogram.
    let n = 640;
    let theta = paper_theta_rad(181);
    let c = n as f64 / 2.0;
    let sino: Vec<f32> = sinogram(&shepp_logan(), &theta, n, c, 4)
        .iter()
        .map(|&v| v as f32)
        .collect();
    write_f32(&dir.path().join("shepp.f32"), &sino);
    write_f64(&dir.path().join("theta.f64"), &theta);
    let plan = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
    let mut w = plan.work();
    let (mut a, mut b) = (vec![0f32; n * n], vec![0f32; n * n]);
    let gridrec_ms = common::median_ms(
        || plan.reconstruct_pair(&mut w, c, &sino, Some(&sino), &mut a, Some(&mut b)),
        15,
    ) / 2.0;
    let spread = common::median_ms(|| plan.spread_pair(&mut w, c, &sino, Some(&sino)), 9);
    let proj_fft = common::median_ms(|| plan.projection_ffts(&mut w, &sino, Some(&sino)), 9);
    let finish = common::median_ms(|| plan.finish_pair(&mut w, &mut a, Some(&mut b)), 9);
    let (g, m1) = plan.sizes();
    let gridrec_flops =
        (181.0 * fft_flops(m1) + (g + n) as f64 * fft_flops(g) + 181.0 * m1 as f64 * 170.0) / 2.0;

    let mlem = Mlem::new(n, n, c, &theta);
    let mlem_ms = common::mlem_pair_iteration_ms(&mlem, &sino, 5);
    let mlem_flops = 9.0 * mlem.projector().ray_steps() as f64 + 4.0 * (n * n) as f64;
    let mut mw = mlem.projector().work::<1>();
    let mut proj = vec![0f32; sino.len()];
    // The passes' time does not depend on the values: a uniform image.
    let (x1, mut img1) = (vec![1f32; n * n], vec![0f32; n * n]);
    let fwd = common::median_ms(|| mlem.projector().forward(&mut mw, &x1, &mut proj), 5);
    let bwd = common::median_ms(|| mlem.projector().backward(&mut mw, &sino, &mut img1), 5);
    // The pair passes, which the iteration above runs.
    let mut w2 = mlem.projector().work::<2>();
    let (x2, y2): (Vec<[f32; 2]>, Vec<[f32; 2]>) = (
        vec![[1.0; 2]; n * n],
        sino.iter().map(|&v| [v, v]).collect(),
    );
    let (mut proj2, mut img2) = (vec![[0f32; 2]; sino.len()], vec![[0f32; 2]; n * n]);
    let fwd2 = common::median_ms(
        || {
            mlem.projector()
                .forward_interleaved(&mut w2, &x2, &mut proj2)
        },
        5,
    );
    let bwd2 = common::median_ms(
        || {
            mlem.projector()
                .backward_interleaved(&mut w2, &y2, &mut img2)
        },
        5,
    );

    // The centre search on tooth.h5's first row.
    let ts = common::tooth_row_sinogram(&common::tooth_bytes());
    write_f32(&dir.path().join("tooth.f32"), &ts);
    let mut search = CenterSearch::new(640, &theta, CenterSearchSettings::default(), 1).unwrap();
    let mut found = 0.0;
    let centre_ms = common::median_ms(|| found = pool.install(|| search.find(&ts).center), 9);

    let rows = [
        Row {
            kernel: "kmeans_update",
            what: "KMeans update, 5,000 x 3-D, k = 10 (per message)",
            ours_ms: kmeans_ms,
            target_ms: 0.030,
            flops: Some(((n_pts * k * 3 * dims + n_pts * dims) as f64, true)),
        },
        Row {
            kernel: "gridrec_pair",
            what: "GridRec 640 x 640, 181 angles, slices in pairs (per slice)",
            ours_ms: gridrec_ms,
            target_ms: 8.0,
            flops: Some((gridrec_flops, false)),
        },
        Row {
            kernel: "mlem_iteration",
            what: "ML-EM iteration, slices in pairs (per slice)",
            ours_ms: mlem_ms,
            target_ms: 40.0,
            flops: Some((mlem_flops, false)),
        },
        Row {
            kernel: "centre_search",
            what: "rotation centre on tooth.h5",
            ours_ms: centre_ms,
            target_ms: 150.0,
            flops: None,
        },
    ];

    // Peers on the same inputs.
    let mut peers: Vec<serde_json::Value> = Vec::new();
    if !no_peers {
        let python = std::env::var("PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/kernels.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .arg("5")
            .envs([
                ("OMP_NUM_THREADS", "1"),
                ("OPENBLAS_NUM_THREADS", "1"),
                ("MKL_NUM_THREADS", "1"),
                ("NUMBA_NUM_THREADS", "1"),
            ])
            .output();
        match out {
            Ok(o) => {
                peers = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                if !o.status.success() {
                    println!(
                        "(peers script {} failed: {})",
                        script.display(),
                        String::from_utf8_lossy(&o.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                }
            }
            Err(e) => println!("(peers skipped: {python}: {e}; set PEERS_PYTHON)"),
        }
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let isa = if std::arch::is_x86_feature_detected!("avx512f") {
        "AVX-512"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        "AVX2"
    } else {
        "baseline"
    };
    println!("kernels on one core of {cpu} ({isa} code paths); medians");
    println!(
        "machine limit (calibration loop, vector multiply + add, no FMA): {peak64:.1} GFLOP/s f64, {peak32:.1} GFLOP/s f32"
    );
    println!();
    println!(
        "| kernel | ours | target | best peer | peer | ours vs peer | achieved | of the limit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let fmt = |ms: f64| {
            if ms < 1.0 {
                format!("{:.1} us", ms * 1e3)
            } else {
                format!("{ms:.1} ms")
            }
        };
        let peer = peers
            .iter()
            .find(|p| p["kernel"] == r.kernel)
            .map(|p| {
                let name = p["peer"].as_str().unwrap_or("?").to_string();
                if let Some(ms) = p["ms"].as_f64() {
                    (name, fmt(ms), format!("{:.1}x faster", ms / r.ours_ms))
                } else if let Some(m) = p["missing"].as_str() {
                    (name, format!("not installed ({m})"), "-".into())
                } else {
                    (
                        name,
                        format!("failed: {}", p["error"].as_str().unwrap_or("?")),
                        "-".into(),
                    )
                }
            })
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        let (achieved, share) = match r.flops {
            Some((f, is64)) => {
                let gf = f / (r.ours_ms * 1e-3) / 1e9;
                let peak = if is64 { peak64 } else { peak32 };
                (
                    format!("{gf:.1} GFLOP/s {}", if is64 { "f64" } else { "f32" }),
                    format!("{:.0} %", 100.0 * gf / peak),
                )
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} {} | {} | {} | {} | {achieved} | {share} |",
            r.what,
            fmt(r.ours_ms),
            fmt(r.target_ms),
            if r.ours_ms <= r.target_ms {
                "met"
            } else {
                "missed"
            },
            peer.0,
            peer.1,
            peer.2
        );
    }
    println!();
    println!(
        "GridRec per pair: projection FFTs {proj_fft:.1} ms, gridding {:.1} ms, inverse 2-D FFT + deapodize {finish:.1} ms: FFTs {:.0} % of the time",
        spread - proj_fft,
        100.0 * (proj_fft + finish) / (spread + finish)
    );
    println!(
        "ML-EM per pair: forward projection {fwd2:.1} ms, backward {bwd2:.1} ms; one slice alone: forward {fwd:.1} ms, backward {bwd:.1} ms"
    );
    println!("centre found on tooth: {found:.2}");
}
