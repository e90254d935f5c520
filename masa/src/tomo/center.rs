//! Rotation centre search, right for any detector width.
//!
//! 1. A start from the sinogram itself, no reconstruction: in parallel-beam geometry the centroid of every
//!    projection is the projection of the object's centroid, `m(theta) = c + x0 cos(theta) + y0 sin(theta)`, so a
//!    least-squares fit of that sinusoid to the projections' centroids gives the axis `c` directly
//!    ([`centroid_estimate`]). It is exact for an object inside the field of view and off by about 1 % of the
//!    width when the object is cut off at the detector's edge (measured on the phantom with the axis 20 % off).
//! 2. TomoPy's criterion (the entropy of a 64-bin histogram of the reconstruction is smallest at the right centre)
//!    around that start, coarse to fine on downsampled sinograms: at the coarsest level with at least 128 columns,
//!    a window of +-max(8 px, 4 % of the width) around the start (moved on while its best candidate lies at its
//!    edge, within the search range), then at each finer level +-the previous level's factor in steps of half the
//!    level's factor, three candidates 0.5 px apart at full resolution, and a parabola through the best three.
//!    Every level's projections are extended past the detector's edges by a quarter of the width, their edge
//!    values tapered to zero: an object cut off at the edge (an axis far off-centre) otherwise reconstructs with a
//!    ring of step artefacts that dominates the histogram and pulls the minimum outward by up to 2 % of the width.
//!
//! The entropy alone is not searched over a wide range: far from the axis (a quarter of the width and more) the
//! reconstruction degenerates and its histogram can be *more* peaked than at the right centre, which is how a wide
//! scan on a 256-column detector used to land 70 px off. The axis is searched within `mid +- range` (`mid` =
//! cols / 2, as TomoPy; default range a quarter of the width); a range that does not fit the detector (more than
//! 45 % of the width on either side) is an error.
//!
//! Candidates are scored two to a GridRec pass ([`GridRecPlan::reconstruct_centres`]: one real sinogram, two
//! centres as the real and imaginary parts), halving the reconstructions.
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

/// One worker's GridRec buffers and two images (candidates go two to a pass).
type Buffers = (GridRecWork, Vec<f32>, Vec<f32>);

struct Level {
    factor: usize,
    /// Columns of this level's sinogram before padding.
    cols: usize,
    /// Columns added on each side by tapered edge extension.
    pad: usize,
    plan: GridRecPlan,
    /// One reconstruction buffer set per worker (candidates are evaluated in parallel on the caller's rayon
    /// pool).
    works: Vec<Mutex<Buffers>>,
    sino: Vec<f32>,
    inside: Vec<bool>,
}

/// What a search found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterEstimate {
    /// Rotation axis, detector index.
    pub center: f64,
    /// Where the entropy search started: the sinogram's own estimate ([`centroid_estimate`], clamped into the
    /// range).
    pub start: f64,
    /// Candidate centres scored, plus one reconstruction per level for the histogram limits (candidates go
    /// two to a GridRec pass, so the passes are about half as many).
    pub evaluations: usize,
}

/// Settings of the search.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CenterSearchSettings {
    /// Half-width of the range the axis is searched in, around the detector's middle (cols / 2), pixels.
    /// `None`: a quarter of the detector width.
    pub range_px: Option<f64>,
}

/// Largest range, as a fraction of the width on either side of the middle: the axis must lie on the detector.
pub const MAX_RANGE_FRACTION: f64 = 0.45;
/// Default range, as a fraction of the width on either side of the middle.
pub const DEFAULT_RANGE_FRACTION: f64 = 0.25;
/// The coarsest level has at least this many columns (where the entropy criterion is still reliable).
const MIN_LEVEL_COLS: usize = 128;

/// A search that cannot be set up for a geometry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CenterError {
    #[error(
        "the centre search range +-{range_px} px does not fit a {cols}-column detector (the axis must lie on it: at most +-{max_px:.0} px around {mid})"
    )]
    RangeDoesNotFit {
        range_px: f64,
        cols: usize,
        max_px: f64,
        mid: f64,
    },
    #[error(
        "a centre search needs at least 8 detector columns and 2 angles (got {cols} x {angles})"
    )]
    TooSmall { cols: usize, angles: usize },
}

/// A reusable centre search for sinograms of `angles x cols`.
pub struct CenterSearch {
    cols: usize,
    angles: usize,
    theta: Vec<f64>,
    levels: Vec<Level>,
    /// The axis is searched in `[lo, hi]`.
    lo: f64,
    hi: f64,
}

impl CenterSearch {
    /// `workers`: how many candidates may be evaluated at once (the rayon pool's size it will run on).
    pub fn new(
        cols: usize,
        theta_rad: &[f64],
        settings: CenterSearchSettings,
        workers: usize,
    ) -> Result<Self, CenterError> {
        if cols < 8 || theta_rad.len() < 2 {
            return Err(CenterError::TooSmall {
                cols,
                angles: theta_rad.len(),
            });
        }
        let mid = cols as f64 / 2.0;
        let max_px = MAX_RANGE_FRACTION * cols as f64;
        let range = settings
            .range_px
            .unwrap_or(DEFAULT_RANGE_FRACTION * cols as f64);
        if !(range.is_finite() && range > 0.0 && range <= max_px) {
            return Err(CenterError::RangeDoesNotFit {
                range_px: range,
                cols,
                max_px,
                mid,
            });
        }
        let mut levels = Vec::new();
        let coarsest = [16usize, 8, 4, 2]
            .into_iter()
            .find(|&f| cols / f >= MIN_LEVEL_COLS)
            .unwrap_or(1);
        let mut factor = coarsest;
        loop {
            let c = cols / factor;
            let pad = c / 4;
            let plan = GridRecPlan::new(c, c + 2 * pad, theta_rad, FilterKind::SheppLogan);
            let works = (0..workers.max(1))
                .map(|_| Mutex::new((plan.work(), vec![0.0; c * c], vec![0.0; c * c])))
                .collect();
            let inside = (0..c * c)
                .map(|k| in_circle(k / c, k % c, c, 0.95))
                .collect();
            levels.push(Level {
                factor,
                cols: c,
                pad,
                plan,
                works,
                sino: vec![0.0; theta_rad.len() * (c + 2 * pad)],
                inside,
            });
            if factor == 1 {
                break;
            }
            factor /= 2;
        }
        Ok(CenterSearch {
            cols,
            angles: theta_rad.len(),
            theta: theta_rad.to_vec(),
            levels,
            lo: mid - range,
            hi: mid + range,
        })
    }

    /// The range the axis is searched in, detector indices.
    pub fn range(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// Find the rotation centre of `sino` (`angles x cols` line integrals).
    pub fn find(&mut self, sino: &[f32]) -> CenterEstimate {
        assert_eq!(
            sino.len(),
            self.angles * self.cols,
            "sinogram is angles x cols"
        );
        let mid = self.cols as f64 / 2.0;
        let start = centroid_estimate(sino, self.cols, &self.theta)
            .unwrap_or(mid)
            .clamp(self.lo, self.hi);
        let (lo, hi) = (self.lo, self.hi);
        let mut best = start;
        let mut evaluations = 0;
        let nlevels = self.levels.len();
        for li in 0..nlevels {
            let level = &mut self.levels[li];
            level.load(sino, self.angles, self.cols);
            let f = level.factor as f64;
            let step = f / 2.0;
            let range = match li {
                0 => (0.04 * self.cols as f64).max(8.0).max(f),
                _ if li + 1 == nlevels => f / 2.0,
                _ => self.levels[li - 1].factor as f64,
            };
            let level = &mut self.levels[li];
            // The histogram's limits come from the reconstruction at the current best centre.
            let (hmin, hmax) = level.limits(best);
            let level = &self.levels[li];
            let k = (range / step).round() as i64;
            let scan = |around: f64| -> Vec<(f64, f64)> {
                // Two candidates per GridRec pass (`GridRecPlan::reconstruct_centres`).
                let candidates: Vec<f64> = (-k..=k)
                    .map(|s| around + s as f64 * step)
                    .filter(|c| (lo..=hi).contains(c))
                    .collect();
                candidates
                    .par_chunks(2)
                    .flat_map_iter(|pair| {
                        let costs = level.entropies(pair, hmin, hmax);
                        pair.iter().copied().zip(costs).collect::<Vec<_>>()
                    })
                    .collect()
            };
            let mut costs = scan(best);
            if costs.is_empty() {
                costs = vec![(best, level.entropy(best, hmin, hmax))];
            }
            evaluations += costs.len() + 1;
            let argmin = |costs: &[(f64, f64)]| {
                costs
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                    .map(|(i, _)| i)
                    .expect("at least one candidate")
            };
            let mut i = argmin(&costs);
            // At the coarsest level, follow a minimum that sits at the window's edge (the start was off by more
            // than the window), within the range.
            if li == 0 {
                let mut moves = 0;
                while (i == 0 || i + 1 == costs.len()) && costs.len() > 1 && moves < 64 {
                    let edge = costs[i].0;
                    let dir = if i == 0 { -1.0 } else { 1.0 };
                    let next: Vec<(f64, f64)> = scan(edge + dir * range)
                        .into_iter()
                        .filter(|(c, _)| (c - edge) * dir > 0.0)
                        .collect();
                    if next.is_empty() {
                        break;
                    }
                    evaluations += next.len();
                    let mut merged = costs;
                    merged.extend(next);
                    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
                    costs = merged;
                    let j = argmin(&costs);
                    if costs[j].0 == edge {
                        i = j;
                        break;
                    }
                    i = j;
                    moves += 1;
                }
            }
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
            center: best.clamp(lo, hi),
            start,
            evaluations,
        }
    }
}

/// The rotation axis from the projections' centroids: fit `m(theta) = c + a cos(theta) + b sin(theta)` to each
/// projection's centroid by least squares and return `c`. Values are taken above a baseline (the sinogram's 5th
/// percentile, so a detector offset or a uniform background does not pull the centroids to the middle). `None`
/// when the sinogram holds nothing above its baseline or the angles do not determine the fit.
pub fn centroid_estimate(sino: &[f32], cols: usize, theta_rad: &[f64]) -> Option<f64> {
    let angles = theta_rad.len();
    if cols == 0 || angles < 3 || sino.len() != angles * cols {
        return None;
    }
    let mut sample: Vec<f32> = sino
        .iter()
        .step_by((sino.len() / 65_536).max(1))
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if sample.is_empty() {
        return None;
    }
    let k = sample.len() / 20;
    let (_, &mut base, _) = sample.select_nth_unstable_by(k, f32::total_cmp);
    // Normal equations of the 3-parameter fit, weighted by each projection's mass so that nearly empty
    // projections (noise only) count for little.
    let mut ata = [[0f64; 3]; 3];
    let mut atb = [0f64; 3];
    for (row, &t) in sino.chunks_exact(cols).zip(theta_rad) {
        let (mut mass, mut moment) = (0f64, 0f64);
        for (u, &v) in row.iter().enumerate() {
            let w = (v - base).max(0.0) as f64;
            if w.is_finite() {
                mass += w;
                moment += w * u as f64;
            }
        }
        if mass <= 0.0 {
            continue;
        }
        let m = moment / mass;
        let x = [1.0, t.cos(), t.sin()];
        for i in 0..3 {
            atb[i] += mass * x[i] * m;
            for j in 0..3 {
                ata[i][j] += mass * x[i] * x[j];
            }
        }
    }
    solve3(ata, atb).map(|c| c[0]).filter(|c| c.is_finite())
}

/// Solve a 3x3 system by Gaussian elimination with partial pivoting; `None` when singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    let scale = a.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return None;
    }
    for col in 0..3 {
        let p = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[p][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, p);
        b.swap(col, p);
        let pivot = a[col];
        for r in col + 1..3 {
            let f = a[r][col] / pivot[col];
            for (x, p) in a[r][col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0f64; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

impl Level {
    /// Downsample `sino` (`angles x cols`) into this level's sinogram and extend every projection past the
    /// detector's edges, tapering its edge value to zero (cos^2) over the pad: an object cut off at the edge then
    /// reconstructs without the step's ring of artefacts, which would otherwise dominate the histogram.
    fn load(&mut self, sino: &[f32], angles: usize, cols: usize) {
        let (c, pad) = (self.cols, self.pad);
        let w = c + 2 * pad;
        for a in 0..angles {
            let src = &sino[a * cols..(a + 1) * cols];
            let row = &mut self.sino[a * w..(a + 1) * w];
            downsample(src, 1, cols, self.factor, &mut row[pad..pad + c]);
            let (left, right) = (row[pad], row[pad + c - 1]);
            for k in 0..pad {
                // k = 0 is next to the detector.
                let t = (std::f32::consts::FRAC_PI_2 * (k + 1) as f32 / (pad + 1) as f32).cos();
                let taper = t * t;
                row[pad - 1 - k] = left * taper;
                row[pad + c + k] = right * taper;
            }
        }
    }

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
        let (work, img, _) = &mut *guard;
        self.plan
            .reconstruct(work, self.scaled(center) + self.pad as f64, &self.sino, img);
        f(img)
    }

    /// The entropy at one or two candidate centres, both from one GridRec pass.
    fn entropies(&self, centers: &[f64], hmin: f32, hmax: f32) -> [f64; 2] {
        match *centers {
            [c] => [self.entropy(c, hmin, hmax), f64::NAN],
            [c1, c2] => {
                let slot = rayon::current_thread_index().unwrap_or(0) % self.works.len();
                let mut guard = self.works[slot]
                    .lock()
                    .expect("a centre-search worker panicked");
                let (work, img1, img2) = &mut *guard;
                let shift = self.pad as f64;
                self.plan.reconstruct_centres(
                    work,
                    (self.scaled(c1) + shift, self.scaled(c2) + shift),
                    &self.sino,
                    img1,
                    img2,
                );
                [
                    histogram_entropy(img1, &self.inside, hmin, hmax),
                    histogram_entropy(img2, &self.inside, hmin, hmax),
                ]
            }
            _ => unreachable!("candidates come one or two at a time"),
        }
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
        self.with_image(center, |img| {
            histogram_entropy(img, &self.inside, hmin, hmax)
        })
    }
}

/// TomoPy's criterion: the entropy of a 64-bin histogram over `[hmin, hmax]` of the pixels inside the circle.
fn histogram_entropy(img: &[f32], inside: &[bool], hmin: f32, hmax: f32) -> f64 {
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
