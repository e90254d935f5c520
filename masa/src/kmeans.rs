//! Streaming KMeans with Spark MLlib's update rule (`StreamingKMeansModel.update`), numerics only.
//!
//! Per batch: assign each point to its nearest centre (squared Euclidean); per cluster sum `s_j` and count
//! `m_j`; discount every weight by `a` (`decay` per batch, or `decay^(points in the batch)` with time unit
//! points); for clusters with points `w_j <- a w_j + m_j`, `lambda = m_j / max(w_j, 1e-16)`,
//! `c_j <- (1 - lambda) c_j + (lambda / m_j) s_j`; finally, if the smallest weight is below 1e-8 of the largest,
//! split the largest cluster: both get weight `(max + min) / 2`, the smallest moves to `c_large - p` and the
//! largest to `c_large + p` with `p = 1e-14 max(|x|, 1)` per coordinate. `decay = exp(ln 0.5 / half_life)`.
//! [`random_centers`] reproduces PySpark's `setRandomCenters(dim, weight, seed)` bit for bit (numpy's legacy
//! `RandomState(seed).randn(k, dim)`: MT19937 and the polar Gaussian).
//!
//! Layout: centres row-major `k x dims`; the hot loop ([`StreamingKMeans::assign_accumulate`]) is unrolled for
//! 2 and 3 dimensions, takes points 16 at a time as one array per coordinate with branchless minima, is
//! compiled for AVX-512 / AVX2 where the CPU has them ([`crate::simd`], bit-identical), and allocates nothing
//! after the first batch.

/// How the decay factor is applied.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Once per batch.
    #[default]
    Batches,
    /// Once per point: `decay^(points in the batch)`.
    Points,
}

/// Errors constructing a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KMeansError {
    #[error("k and dims must be at least 1 (got k = {k}, dims = {dims})")]
    Empty { k: usize, dims: usize },
    #[error(
        "{centres} centre values and {weights} weights do not make k = {k} centres of {dims} dims"
    )]
    Shape {
        centres: usize,
        weights: usize,
        k: usize,
        dims: usize,
    },
    #[error("decay factor must be in [0, 1] (got {0})")]
    Decay(f64),
    #[error("half-life must be positive (got {0})")]
    HalfLife(f64),
    #[error("batch of {values} values is not a whole number of {dims}-D points")]
    Ragged { values: usize, dims: usize },
}

/// The decay factor with the given half-life (in batches or points).
pub fn decay_for_half_life(half_life: f64) -> Result<f64, KMeansError> {
    if half_life.is_finite() && half_life > 0.0 {
        Ok((0.5f64.ln() / half_life).exp())
    } else {
        Err(KMeansError::HalfLife(half_life))
    }
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    pub points: usize,
    /// The discount applied to every weight.
    pub discount: f64,
    /// Whether a dying cluster was replaced by a split of the largest.
    pub split: Option<(usize, usize)>,
    /// Sum of squared distances to the assigned (pre-update) centres.
    pub cost: f64,
}

/// A streaming KMeans model.
#[derive(Debug, Clone)]
pub struct StreamingKMeans {
    k: usize,
    dims: usize,
    centres: Vec<f64>,
    weights: Vec<f64>,
    decay: f64,
    time_unit: TimeUnit,
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl StreamingKMeans {
    /// A model from explicit centres (`k x dims`, row-major) and weights.
    pub fn new(
        centres: Vec<f64>,
        weights: Vec<f64>,
        dims: usize,
        decay: f64,
        time_unit: TimeUnit,
    ) -> Result<Self, KMeansError> {
        let k = weights.len();
        if k == 0 || dims == 0 {
            return Err(KMeansError::Empty { k, dims });
        }
        if centres.len() != k * dims {
            return Err(KMeansError::Shape {
                centres: centres.len(),
                weights: k,
                k,
                dims,
            });
        }
        if !(0.0..=1.0).contains(&decay) {
            return Err(KMeansError::Decay(decay));
        }
        Ok(StreamingKMeans {
            k,
            dims,
            centres,
            weights,
            decay,
            time_unit,
            sums: vec![0.0; k * dims],
            counts: vec![0; k],
        })
    }

    pub fn k(&self) -> usize {
        self.k
    }
    pub fn dims(&self) -> usize {
        self.dims
    }
    /// Centres, `k x dims` row-major.
    pub fn centres(&self) -> &[f64] {
        &self.centres
    }
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Index of the nearest centre to each point of `points` (`n x dims`) into `labels`, and the total cost.
    pub fn assign(&self, points: &[f64], labels: &mut Vec<u32>) -> Result<f64, KMeansError> {
        self.check(points)?;
        labels.clear();
        labels.reserve(points.len() / self.dims);
        Ok(match self.dims {
            2 => assign_dispatch::<2>(&self.centres, points, labels),
            3 => assign_dispatch::<3>(&self.centres, points, labels),
            d => {
                let mut cost = 0.0;
                for p in points.chunks_exact(d) {
                    let (j, dist) = nearest(&self.centres, d, p);
                    labels.push(j as u32);
                    cost += dist;
                }
                cost
            }
        })
    }

    fn check(&self, points: &[f64]) -> Result<(), KMeansError> {
        if !points.len().is_multiple_of(self.dims) {
            Err(KMeansError::Ragged {
                values: points.len(),
                dims: self.dims,
            })
        } else {
            Ok(())
        }
    }

    /// Per-cluster sums and counts of the batch under the current centres; returns the cost.
    fn assign_accumulate(&mut self, points: &[f64]) -> f64 {
        self.sums.iter_mut().for_each(|s| *s = 0.0);
        self.counts.iter_mut().for_each(|c| *c = 0);
        match self.dims {
            2 => accumulate_dispatch::<2>(&self.centres, points, &mut self.sums, &mut self.counts),
            3 => accumulate_dispatch::<3>(&self.centres, points, &mut self.sums, &mut self.counts),
            d => {
                let mut cost = 0.0;
                for p in points.chunks_exact(d) {
                    let (j, dist) = nearest(&self.centres, d, p);
                    cost += dist;
                    self.counts[j] += 1;
                    for (s, x) in self.sums[j * d..(j + 1) * d].iter_mut().zip(p) {
                        *s += x;
                    }
                }
                cost
            }
        }
    }

    /// Train on one batch (`n x dims` values) with Spark's rule.
    pub fn update(&mut self, points: &[f64]) -> Result<UpdateStats, KMeansError> {
        self.check(points)?;
        let d = self.dims;
        let n = points.len() / d;
        let cost = self.assign_accumulate(points);
        let discount = match self.time_unit {
            TimeUnit::Batches => self.decay,
            TimeUnit::Points => self.decay.powf(n as f64),
        };
        for w in &mut self.weights {
            *w *= discount;
        }
        for j in 0..self.k {
            let m = self.counts[j];
            if m == 0 {
                continue;
            }
            let updated = self.weights[j] + m as f64;
            let lambda = m as f64 / updated.max(1e-16);
            self.weights[j] = updated;
            let c = &mut self.centres[j * d..(j + 1) * d];
            let s = &self.sums[j * d..(j + 1) * d];
            // BLAS.scal(1 - lambda, c) then BLAS.axpy(lambda / m, s, c), in that order.
            let a = lambda / m as f64;
            for (cj, sj) in c.iter_mut().zip(s) {
                *cj *= 1.0 - lambda;
                *cj += a * sj;
            }
        }
        // Dying cluster: the first largest and first smallest weights, as Scala's maxBy/minBy pick them.
        let (mut largest, mut smallest) = (0, 0);
        for j in 1..self.k {
            if self.weights[j] > self.weights[largest] {
                largest = j;
            }
            if self.weights[j] < self.weights[smallest] {
                smallest = j;
            }
        }
        let (max_w, min_w) = (self.weights[largest], self.weights[smallest]);
        let mut split = None;
        if min_w < 1e-8 * max_w {
            let w = (max_w + min_w) / 2.0;
            self.weights[largest] = w;
            self.weights[smallest] = w;
            for i in 0..d {
                let x = self.centres[largest * d + i];
                let p = 1e-14 * x.abs().max(1.0);
                self.centres[largest * d + i] = x + p;
                self.centres[smallest * d + i] = x - p;
            }
            split = Some((largest, smallest));
        }
        Ok(UpdateStats {
            points: n,
            discount,
            split,
            cost,
        })
    }
}

/// Nearest centre (first on ties, as Spark) and its squared distance.
#[inline]
fn nearest(centres: &[f64], d: usize, p: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, c) in centres.chunks_exact(d).enumerate() {
        let dist: f64 = c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
        if dist < best.1 {
            best = (j, dist);
        }
    }
    best
}

/// Points per block in the hot loop: two AVX-512 vectors of f64 per coordinate (four AVX2 ones), so the
/// running minima of two independent vectors overlap their compare-and-select latency.
const BLOCK: usize = 16;

/// Nearest centre (first on ties) and squared distance for each point of `points` (`n x D`), passed to
/// `visit(point, centre, distance)` in order. Points are taken 8 at a time, transposed to one array per
/// coordinate; for each centre the 8 distances and the running minima are updated side by side with
/// branchless selects: independent lanes the compiler vectorises, and no unpredictable branches.
#[inline(always)]
fn nearest_each<const D: usize>(
    centres: &[f64],
    points: &[f64],
    mut visit: impl FnMut(&[f64; D], usize, f64),
) {
    let mut blocks = points.chunks_exact(D * BLOCK);
    for block in &mut blocks {
        let mut x = [[0f64; BLOCK]; D];
        for (b, p) in block.chunks_exact(D).enumerate() {
            for i in 0..D {
                x[i][b] = p[i];
            }
        }
        let mut best_d = [f64::INFINITY; BLOCK];
        let mut best_j = [0usize; BLOCK];
        for (j, c) in centres.chunks_exact(D).enumerate() {
            let mut d = [0f64; BLOCK];
            for i in 0..D {
                let ci = c[i];
                for b in 0..BLOCK {
                    let t = ci - x[i][b];
                    d[b] += t * t;
                }
            }
            for b in 0..BLOCK {
                let better = d[b] < best_d[b];
                best_d[b] = if better { d[b] } else { best_d[b] };
                best_j[b] = if better { j } else { best_j[b] };
            }
        }
        for (b, p) in block.chunks_exact(D).enumerate() {
            visit(p.try_into().expect("D values"), best_j[b], best_d[b]);
        }
    }
    for p in blocks.remainder().chunks_exact(D) {
        let (j, d) = nearest(centres, D, p);
        visit(p.try_into().expect("D values"), j, d);
    }
}

// The fixed-dimension kernels compiled for the widest vector unit the CPU has (`crate::simd`).
crate::multiversion!(accumulate_dispatch, accumulate_fixed,
    (centres: &[f64], points: &[f64], sums: &mut [f64], counts: &mut [u64]) -> f64);
crate::multiversion!(assign_dispatch, assign_fixed,
    (centres: &[f64], points: &[f64], labels: &mut Vec<u32>) -> f64);

#[inline(always)]
fn accumulate_fixed<const D: usize>(
    centres: &[f64],
    points: &[f64],
    sums: &mut [f64],
    counts: &mut [u64],
) -> f64 {
    let mut cost = 0.0;
    nearest_each::<D>(centres, points, |p, j, d| {
        cost += d;
        counts[j] += 1;
        let s = &mut sums[j * D..(j + 1) * D];
        for i in 0..D {
            s[i] += p[i];
        }
    });
    cost
}

#[inline(always)]
fn assign_fixed<const D: usize>(centres: &[f64], points: &[f64], labels: &mut Vec<u32>) -> f64 {
    let mut cost = 0.0;
    nearest_each::<D>(centres, points, |_, j, d| {
        labels.push(j as u32);
        cost += d;
    });
    cost
}

/// numpy's legacy `RandomState(seed).randn(k, dims)`, as PySpark's `setRandomCenters` draws initial centres.
pub fn random_centers(k: usize, dims: usize, seed: u32) -> Vec<f64> {
    let mut mt = Mt19937::new(seed);
    let mut cached: Option<f64> = None;
    (0..k * dims)
        .map(|_| {
            if let Some(g) = cached.take() {
                return g;
            }
            loop {
                let x1 = 2.0 * mt.next_f64() - 1.0;
                let x2 = 2.0 * mt.next_f64() - 1.0;
                let r2 = x1 * x1 + x2 * x2;
                if r2 < 1.0 && r2 != 0.0 {
                    let f = (-2.0 * r2.ln() / r2).sqrt();
                    cached = Some(f * x1);
                    return f * x2;
                }
            }
        })
        .collect()
}

/// The Mersenne Twister MT19937 with numpy's integer seeding (`init_genrand`).
struct Mt19937 {
    mt: [u32; 624],
    i: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, i: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(k + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.mt[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's random_double: 53 bits from two draws.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // First outputs of MT19937 seeded with 5489 (the reference implementation's default seed).
        let mut mt = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
        assert_eq!(first, vec![3_499_211_612, 581_869_302, 3_890_346_734]);
    }

    #[test]
    fn numpy_randn_seed_0() {
        // numpy.random.RandomState(0).randn(4): 1.76405235, 0.40015721, 0.97873798, 2.2408932
        let v = random_centers(2, 2, 0);
        let want = [
            1.764_052_345_967_664_3,
            0.400_157_208_367_223_3,
            0.978_737_984_105_739_2,
            2.240_893_199_201_458,
        ];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn hand_computed_update_with_decay_one() {
        // Two centres on a line, weights 1; batch of three points.
        let mut m =
            StreamingKMeans::new(vec![0.0, 10.0], vec![1.0, 1.0], 1, 1.0, TimeUnit::Batches)
                .unwrap();
        let s = m.update(&[1.0, 2.0, 9.0]).unwrap();
        // Cluster 0: m = 2, s = 3, w = 3, lambda = 2/3: c = 0 * 1/3 + (2/3)/2 * 3 = 1.0
        // Cluster 1: m = 1, s = 9, w = 2, lambda = 1/2: c = 10 * 1/2 + 1/2 * 9 = 9.5
        assert_eq!(m.centres(), &[1.0, 9.5]);
        assert_eq!(m.weights(), &[3.0, 2.0]);
        assert_eq!(s.cost, 1.0 + 4.0 + 1.0);
        assert_eq!(s.split, None);
    }

    #[test]
    fn decay_discounts_every_weight_including_empty_clusters() {
        let mut m =
            StreamingKMeans::new(vec![0.0, 100.0], vec![4.0, 4.0], 1, 0.5, TimeUnit::Batches)
                .unwrap();
        m.update(&[2.0]).unwrap();
        // Cluster 0: w = 0.5*4 + 1 = 3, lambda = 1/3, c = 0*2/3 + 1/3*2 = 2/3. Cluster 1: w = 2.
        assert!((m.centres()[0] - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.weights(), &[3.0, 2.0]);
        let mut p =
            StreamingKMeans::new(vec![0.0, 100.0], vec![4.0, 4.0], 1, 0.5, TimeUnit::Points)
                .unwrap();
        let s = p.update(&[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(s.discount, 0.125);
        assert_eq!(p.weights(), &[3.5, 0.5]);
    }

    #[test]
    fn a_dying_cluster_is_replaced_by_splitting_the_largest() {
        // Time unit points with decay 0.01: 5 points discount by 1e-10; cluster 1 gets none and dies.
        let mut m =
            StreamingKMeans::new(vec![0.0, 50.0], vec![1.0, 1.0], 1, 0.01, TimeUnit::Points)
                .unwrap();
        let s = m.update(&[1.0, 1.0, 1.0, 1.0, 1.0]).unwrap();
        assert_eq!(s.split, Some((0, 1)));
        let w0 = 1e-10 + 5.0;
        let w = (w0 + 1e-10) / 2.0;
        assert_eq!(m.weights(), &[w, w]);
        let c = 1.0 - 1e-10 / w0 * 1.0 + 0.0; // close to 1
        let p = 1e-14;
        assert!((m.centres()[0] - (c + p)).abs() < 1e-12);
        assert!(m.centres()[0] > m.centres()[1]);
        assert!(
            (m.centres()[0] - m.centres()[1] - 2.0 * p * m.centres()[0].abs().max(1.0)).abs()
                < 1e-15
        );
    }

    #[test]
    fn half_life_and_bad_input() {
        assert!((decay_for_half_life(1.0).unwrap() - 0.5).abs() < 1e-15);
        assert!((decay_for_half_life(2.0).unwrap().powi(2) - 0.5).abs() < 1e-15);
        assert!(decay_for_half_life(0.0).is_err());
        assert!(
            StreamingKMeans::new(vec![0.0], vec![1.0, 1.0], 1, 1.0, TimeUnit::Batches).is_err()
        );
        assert!(StreamingKMeans::new(vec![0.0], vec![1.0], 1, 1.5, TimeUnit::Batches).is_err());
        let mut m =
            StreamingKMeans::new(vec![0.0; 3], vec![1.0], 3, 1.0, TimeUnit::Batches).unwrap();
        assert_eq!(
            m.update(&[1.0, 2.0]),
            Err(KMeansError::Ragged { values: 2, dims: 3 })
        );
    }

    #[test]
    fn fixed_and_generic_paths_agree() {
        let centres = random_centers(10, 3, 7);
        let pts: Vec<f64> = random_centers(500, 3, 8).iter().map(|x| x * 2.0).collect();
        let mut a = StreamingKMeans::new(centres.clone(), vec![1.0; 10], 3, 0.9, TimeUnit::Batches)
            .unwrap();
        a.update(&pts).unwrap();
        let mut labels = Vec::new();
        let b = StreamingKMeans::new(centres, vec![1.0; 10], 3, 0.9, TimeUnit::Batches).unwrap();
        b.assign(&pts, &mut labels).unwrap();
        let mut counts = [0u64; 10];
        for l in &labels {
            counts[*l as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<u64>(), 500);
        assert_eq!(a.counts, counts);
    }

    #[test]
    fn every_vector_path_gives_the_baseline_bits() {
        // The dispatched kernel (AVX-512 or AVX2 where the CPU has them) against the baseline build of the same
        // kernel: sums, counts, cost and labels bit for bit, with a remainder block.
        for (dims, n) in [(3usize, 5_003usize), (2, 1_001)] {
            let centres = random_centers(10, dims, 3);
            let pts: Vec<f64> = random_centers(n, dims, 4).iter().map(|x| x * 2.5).collect();
            let (mut s1, mut c1) = (vec![0.0; 10 * dims], vec![0u64; 10]);
            let (mut s2, mut c2) = (vec![0.0; 10 * dims], vec![0u64; 10]);
            let (mut l1, mut l2) = (Vec::new(), Vec::new());
            let (k1, k2, a1, a2) = match dims {
                3 => (
                    accumulate_fixed::<3>(&centres, &pts, &mut s1, &mut c1),
                    accumulate_dispatch::<3>(&centres, &pts, &mut s2, &mut c2),
                    assign_fixed::<3>(&centres, &pts, &mut l1),
                    assign_dispatch::<3>(&centres, &pts, &mut l2),
                ),
                _ => (
                    accumulate_fixed::<2>(&centres, &pts, &mut s1, &mut c1),
                    accumulate_dispatch::<2>(&centres, &pts, &mut s2, &mut c2),
                    assign_fixed::<2>(&centres, &pts, &mut l1),
                    assign_dispatch::<2>(&centres, &pts, &mut l2),
                ),
            };
            assert_eq!(k1.to_bits(), k2.to_bits());
            assert_eq!(a1.to_bits(), a2.to_bits());
            assert_eq!(c1, c2);
            assert_eq!(l1, l2);
            assert!(s1.iter().zip(&s2).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
