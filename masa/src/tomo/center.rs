//! Rotation centre search: TomoPy's criterion (the entropy of a 64-bin histogram of the reconstruction is
//! smallest at the right centre), searched coarse to fine on downsampled sinograms so that most
//! reconstructions are small: a scan at 1/8 resolution over a wide range, then narrower scans at 1/4, 1/2 and full
//! resolution (+-8 px in 2 px steps at 1/4, +-4 px in 1 px steps at 1/2, three points 0.5 px apart at full
//! resolution), and a parabola through the best three at the end for the sub-step position.
//!
//! [`CenterSearch`] keeps the GridRec plans and buffers for each level, so repeated searches on one geometry
//! allocate nothing new. The candidates of a level are evaluated in parallel on the caller's rayon pool (run
//! `find` inside `pool.install` to choose it).

use super::filter::FilterKind;
use super::gridrec::{GridRecPlan, GridRecWork};
use super::pipeline::in_circle;
use rayon::prelude::*;
use std::sync::Mutex;

/// Histogram bins of the entropy criterion.
const BINS: usize = 64;

struct Level {
    factor: usize,
    plan: GridRecPlan,
    /// One reconstruction buffer set per worker (candidates are evaluated in parallel on the caller's rayon
    /// pool).
    works: Vec<Mutex<(GridRecWork, Vec<f32>)>>,
    sino: Vec<f32>,
    inside: Vec<bool>,
}

/// What a search found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterEstimate {
    /// Rotation axis, detector index.
    pub center: f64,
    /// Reconstructions computed (all levels).
    pub evaluations: usize,
}

/// Settings of the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterSearchSettings {
    /// Half-width of the first scan around the initial guess, detector pixels.
    pub range_px: f64,
}

impl Default for CenterSearchSettings {
    fn default() -> Self {
        CenterSearchSettings { range_px: 64.0 }
    }
}

/// A reusable centre search for sinograms of `angles x cols`.
pub struct CenterSearch {
    cols: usize,
    angles: usize,
    levels: Vec<Level>,
    settings: CenterSearchSettings,
}

impl CenterSearch {
    /// `workers`: how many candidates may be evaluated at once (the rayon pool's size it will run on).
    pub fn new(
        cols: usize,
        theta_rad: &[f64],
        settings: CenterSearchSettings,
        workers: usize,
    ) -> Self {
        let mut levels = Vec::new();
        for factor in [8usize, 4, 2, 1] {
            let c = cols / factor;
            if c < 16 && factor > 1 {
                continue;
            }
            let plan = GridRecPlan::new(c, c, theta_rad, FilterKind::SheppLogan);
            let works = (0..workers.max(1))
                .map(|_| Mutex::new((plan.work(), vec![0.0; c * c])))
                .collect();
            let inside = (0..c * c)
                .map(|k| in_circle(k / c, k % c, c, 0.95))
                .collect();
            levels.push(Level {
                factor,
                plan,
                works,
                sino: vec![0.0; theta_rad.len() * c],
                inside,
            });
        }
        CenterSearch {
            cols,
            angles: theta_rad.len(),
            levels,
            settings,
        }
    }

    /// Find the rotation centre of `sino` (`angles x cols` line integrals), starting from `init` (default: the
    /// detector's middle).
    pub fn find(&mut self, sino: &[f32], init: Option<f64>) -> CenterEstimate {
        assert_eq!(
            sino.len(),
            self.angles * self.cols,
            "sinogram is angles x cols"
        );
        let mut best = init.unwrap_or(self.cols as f64 / 2.0);
        let mut evaluations = 0;
        let nlevels = self.levels.len();
        for li in 0..nlevels {
            let level = &mut self.levels[li];
            downsample(sino, self.angles, self.cols, level.factor, &mut level.sino);
            let f = level.factor as f64;
            // Range and step in full-resolution pixels: a wide scan first, then narrower and finer ones.
            let (range, step) = match li {
                0 => (self.settings.range_px, f / 2.0),
                _ if li + 1 == nlevels => (f / 2.0, f / 2.0),
                _ => (self.levels[li - 1].factor as f64, f / 2.0),
            };
            let level = &mut self.levels[li];
            // The histogram's limits come from the reconstruction at the current best centre.
            let (hmin, hmax) = level.limits(best);
            let k = (range / step).round() as i64;
            let level = &self.levels[li];
            let costs: Vec<(f64, f64)> = (-k..=k)
                .into_par_iter()
                .map(|s| {
                    let c = best + s as f64 * step;
                    (c, level.entropy(c, hmin, hmax))
                })
                .collect();
            evaluations += costs.len() + 1;
            let (i, _) = costs
                .iter()
                .enumerate()
                .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                .expect("at least one candidate");
            best = costs[i].0;
            if li == nlevels - 1 && i > 0 && i + 1 < costs.len() {
                // Vertex of the parabola through the best three.
                let (y0, y1, y2) = (costs[i - 1].1, costs[i].1, costs[i + 1].1);
                let denom = y0 - 2.0 * y1 + y2;
                if denom > 0.0 {
                    best += (0.5 * (y0 - y2) / denom).clamp(-0.5, 0.5) * step;
                }
            }
        }
        CenterEstimate {
            center: best,
            evaluations,
        }
    }
}

impl Level {
    /// Detector index at this level of a full-resolution index.
    fn scaled(&self, center: f64) -> f64 {
        let f = self.factor as f64;
        (center - (f - 1.0) / 2.0) / f
    }

    /// Reconstruct at `center` with this worker's buffers and hand the image to `f`.
    fn with_image<T>(&self, center: f64, f: impl FnOnce(&[f32]) -> T) -> T {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.works.len();
        let mut guard = self.works[slot]
            .lock()
            .expect("a centre-search worker panicked");
        let (work, img) = &mut *guard;
        self.plan
            .reconstruct(work, self.scaled(center), &self.sino, img);
        f(img)
    }

    /// TomoPy's histogram limits: the range of the reconstruction at `center`, widened.
    fn limits(&mut self, center: f64) -> (f32, f32) {
        let inside = &self.inside;
        let (lo, hi) = self.with_image(center, |img| {
            img.iter()
                .zip(inside)
                .filter(|(_, &i)| i)
                .fold((f32::MAX, f32::MIN), |(l, h), (&v, _)| (l.min(v), h.max(v)))
        });
        let lo = if lo < 0.0 { 2.0 * lo } else { 0.5 * lo };
        let hi = if hi > 0.0 { 2.0 * hi } else { 0.5 * hi };
        (lo, hi.max(lo + f32::EPSILON))
    }

    fn entropy(&self, center: f64, hmin: f32, hmax: f32) -> f64 {
        let inside = &self.inside;
        self.with_image(center, |img| {
            let mut hist = [0u32; BINS];
            let scale = BINS as f32 / (hmax - hmin);
            let mut count = 0u32;
            for (&v, &inside) in img.iter().zip(inside) {
                if inside && v >= hmin && v <= hmax {
                    let b = (((v - hmin) * scale) as usize).min(BINS - 1);
                    hist[b] += 1;
                    count += 1;
                }
            }
            let total = count.max(1) as f64;
            hist.iter()
                .map(|&h| {
                    let p = h as f64 / total + 1e-12;
                    -p * p.log2()
                })
                .sum()
        })
    }
}

/// Average `factor` adjacent detector bins (`angles x cols` into `angles x cols / factor`).
pub fn downsample(sino: &[f32], angles: usize, cols: usize, factor: usize, out: &mut [f32]) {
    let c = cols / factor;
    if factor == 1 {
        out.copy_from_slice(sino);
        return;
    }
    let inv = 1.0 / factor as f32;
    for a in 0..angles {
        let src = &sino[a * cols..a * cols + c * factor];
        for (o, chunk) in out[a * c..(a + 1) * c]
            .iter_mut()
            .zip(src.chunks_exact(factor))
        {
            *o = chunk.iter().sum::<f32>() * inv;
        }
    }
}
