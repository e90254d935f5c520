//! What the MASA benches share: timing, their inputs (MASS's KMeans messages, tooth.h5's first row), the
//! KMeans model they update and the ML-EM pair iteration they time.
#![allow(dead_code)] // each bench uses its own part

use std::time::Instant;

use masa::kmeans::{random_centers, StreamingKMeans, TimeUnit};
use masa::tomo::mlem::{Mlem, MlemInit};
use masa::tomo::pipeline::row_sinogram;
use mass::source::{ClusterParams, ClusterSource, Source};
use pilot_core::contract::aps::ApsScan;
use pilot_core::contract::message::{decode, Encoding};

/// Median wall time of `runs` calls of `f` after one warm-up call, ms.
pub fn median_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

/// `messages` of MASS's cluster source with `points` 3-D points each, decoded.
pub fn kmeans_messages(messages: u64, points: usize) -> Vec<Vec<f64>> {
    let mut src = ClusterSource::new(
        ClusterParams {
            points_per_message: points,
            ..Default::default()
        },
        0,
        Encoding::Envelope,
    )
    .unwrap();
    (0..messages)
        .map(|s| {
            let mut v = Vec::new();
            decode(src.next(s, 0)).unwrap().f64_into(&mut v).unwrap();
            v
        })
        .collect()
}

/// The bytes of the project's copy of tooth.h5.
pub fn tooth_bytes() -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tooth.h5"))
        .expect("data/tooth.h5")
}

/// tooth.h5's first row as a normalised minus-log sinogram, 181 x 640.
pub fn tooth_row_sinogram(bytes: &[u8]) -> Vec<f32> {
    let tooth = ApsScan::read_bytes(bytes).unwrap();
    let mut ts = vec![0f32; 181 * 640];
    row_sinogram(
        &tooth.data.values,
        &tooth.white.as_ref().unwrap().mean_plane(),
        &tooth.dark.as_ref().unwrap().mean_plane(),
        (181, 2, 640),
        0,
        &mut ts,
    );
    ts
}

/// The benches' KMeans model: `k` random centres in `dims` dimensions (seed 42), decay 1 per batch.
pub fn kmeans_model(k: usize, dims: usize) -> StreamingKMeans {
    StreamingKMeans::new(
        random_centers(k, dims, 42),
        vec![1.0; k],
        dims,
        1.0,
        TimeUnit::Batches,
    )
    .unwrap()
}

/// One ML-EM iteration per slice, slices in pairs (both slices from `sino`), ms: the median of `runs` pair
/// reconstructions of two iterations each, divided by four.
pub fn mlem_pair_iteration_ms(mlem: &Mlem, sino: &[f32], runs: usize) -> f64 {
    let n = mlem.projector().n();
    let mut w2 = mlem.projector().work::<2>();
    let (mut pa, mut pb) = (vec![0f32; n * n], vec![0f32; n * n]);
    median_ms(
        || mlem.reconstruct_pair(&mut w2, (sino, sino), MlemInit::Mean, 2, (&mut pa, &mut pb)),
        runs,
    ) / 4.0
}
