//! GridRec (Dowd et al. 1999): filtered back projection done in Fourier space.
//!
//! Per angle, the zero-padded projection's FFT samples the slice's 2-D Fourier transform along a line (Fourier
//! slice theorem); those samples, ramp-filtered and weighted by the angle's share of [0, pi), are spread onto a
//! Cartesian frequency grid with a Kaiser-Bessel kernel, one inverse 2-D FFT gives the image, and dividing by the
//! kernel's transform (deapodization) undoes the spreading.
//!
//! - Two slices go through at once as the real and imaginary parts of one complex sinogram (the transform is
//!   linear, so the real part of the result is the first slice and the imaginary part the second).
//! - The rotation centre may be anywhere, fractional included: it enters as a phase per frequency. The half-pixel
//!   offset of even-sized images (pixel centres at half-integers) enters the same way, per angle.
//! - The grid is about 1.5x the image (5-smooth size), the kernel 6 cells wide: gridding errors stay near 1e-4 of
//!   the image range, far below the discretisation error of 181 angles.
//! - The last inverse FFT pass runs only over the image's columns, not the whole padded grid.
//! - Gridding goes in chunks of 64 bins: their grid positions and kernel weights (geometry only) are kept in
//!   the plan up to 64 MB (12 MB at 640 px, 181 angles; computed per chunk as it goes beyond that), then each
//!   bin is spread onto its 6 x 6 cells; the loop is compiled for AVX-512 / AVX2 where the CPU has them
//!   ([`crate::simd`]). The same arithmetic in the same order as bin by bin: bit-for-bit the same image.
//! - One real slice can be reconstructed at two rotation centres in one pass ([`GridRecPlan::reconstruct_centres`],
//!   the centre search's candidates): the second centre's phase rides in the imaginary part.
//! - Resolution: every Fourier sample also gets sinc^2(nu), the response linear interpolation gives a
//!   pixel-driven FBP, so GridRec's image has FBP's resolution without its interpolation aliasing. (Without it
//!   the image is sharper and rings more at edges: Shepp-Logan RMSE 0.028 instead of 0.024 at 640 px.)
//!
//! [`GridRecPlan`] holds what depends only on the geometry; [`GridRecWork`] holds one thread's buffers, so
//! reconstructing allocates nothing after the first slice.

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::angle_weights;
use super::filter::{response, FilterKind};

/// Kernel width in grid cells.
const KERNEL_WIDTH: usize = 6;
/// Kernel table samples per grid cell.
const KERNEL_TABLE_PER_CELL: usize = 512;
/// Grid size over image size (at least).
const OVERSAMPLING: f64 = 1.5;
/// Padding cells on each side of the gridding buffer, so the inner loop needs no wrap-around.
const PAD: usize = KERNEL_WIDTH / 2 + 1;

/// Geometry-only state of a GridRec reconstruction: `n x n` images from `angles x cols` sinograms.
pub struct GridRecPlan {
    n: usize,
    cols: usize,
    /// Frequency grid size.
    g: usize,
    /// Projection FFT length.
    m1: usize,
    /// Per angle: grid step per projection frequency bin along x and along the row axis.
    step_x: Vec<f32>,
    step_y: Vec<f32>,
    /// Per angle: the detector offset of the image's sampling origin (half a pixel for even sizes), added to
    /// the rotation centre.
    center_shift: Vec<f64>,
    /// Filter response times angle weight, per angle and bin, divided by m1: `angles x m1`.
    filter: Vec<f32>,
    kernel: Vec<f32>,
    /// Per output row/column: `(-1)^x / C(x)` (deapodization and the grid's centring).
    deapod: Vec<f32>,
    fft1: Arc<dyn Fft<f32>>,
    ifft_g: Arc<dyn Fft<f32>>,
    scratch_len: usize,
    /// Every bin's weights, per angle and chunk, where they fit [`PRECOMPUTED_WEIGHTS_MAX_BYTES`].
    chunks: Option<Vec<Chunk>>,
}

/// One thread's buffers for [`GridRecPlan::reconstruct_pair`].
pub struct GridRecWork {
    proj: Vec<Complex32>,
    grid: Vec<Complex32>,
    cols: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

/// The smallest 2^a 3^b 5^c at least `n` (sizes rustfft transforms fastest).
pub fn smooth_size(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut r = m;
        for p in [2, 3, 5] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges for the arguments used here).
pub fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The Fourier transform at `xi` (cycles per grid cell) of the Kaiser-Bessel kernel
/// `I0(beta sqrt(1 - (2t / w)^2)) / I0(beta)` on `|t| < w / 2`.
pub fn kaiser_bessel_transform(w: f64, beta: f64, xi: f64) -> f64 {
    let z2 = beta * beta - (PI * w * xi).powi(2);
    let core = if z2 > 1e-12 {
        let z = z2.sqrt();
        z.sinh() / z
    } else if z2 < -1e-12 {
        let z = (-z2).sqrt();
        z.sin() / z
    } else {
        1.0
    };
    w * core / bessel_i0(beta)
}

impl GridRecPlan {
    /// A plan for `angles = theta_rad.len()` projections of `cols` detector pixels, reconstructed onto `n x n`
    /// pixels (the rotation centre is given per reconstruction).
    pub fn new(n: usize, cols: usize, theta_rad: &[f64], filter: FilterKind) -> Self {
        assert!(n > 0 && cols > 0 && !theta_rad.is_empty(), "empty geometry");
        let g = {
            let mut g = smooth_size((OVERSAMPLING * n as f64).ceil() as usize);
            if g % 2 == 1 {
                g = smooth_size(g + 1);
                while g % 2 == 1 {
                    g = smooth_size(g + 1);
                }
            }
            g
        };
        let m1 = smooth_size(2 * cols).max(16);
        let m1 = if m1 % 2 == 1 { m1 + 1 } else { m1 };
        let w = KERNEL_WIDTH as f64;
        let sigma = g as f64 / n as f64;
        let beta = PI
            * ((w / sigma).powi(2) * (sigma - 0.5).powi(2) - 0.8)
                .max(1.0)
                .sqrt();
        let kernel_at = |d: f64| {
            let t = 2.0 * d / w;
            if t.abs() >= 1.0 {
                0.0
            } else {
                bessel_i0(beta * (1.0 - t * t).sqrt()) / bessel_i0(beta)
            }
        };
        let kernel: Vec<f32> = (0..=KERNEL_WIDTH / 2 * KERNEL_TABLE_PER_CELL + 1)
            .map(|i| kernel_at(i as f64 / KERNEL_TABLE_PER_CELL as f64) as f32)
            .collect();
        let half = n / 2;
        let deapod = (0..n)
            .map(|j| {
                let x = j as f64 - half as f64;
                let sign = if (j as i64 - half as i64).rem_euclid(2) == 0 {
                    1.0
                } else {
                    -1.0
                };
                (sign / kaiser_bessel_transform(w, beta, x / g as f64)) as f32
            })
            .collect();
        // Even images have pixel centres at half-integers: shift by d = (dx, dy) pixels, i.e. the centre by
        // dx cos + dy sin per angle.
        let dx = half as f64 - (n as f64 - 1.0) / 2.0;
        let dy = (n as f64 - 1.0) / 2.0 - half as f64;
        let weights = angle_weights(theta_rad);
        let resp = response(filter, m1);
        let mut filt = Vec::with_capacity(theta_rad.len() * m1);
        let (mut step_x, mut step_y, mut center_shift) = (vec![], vec![], vec![]);
        let ratio = g as f64 / m1 as f64;
        for (a, &t) in theta_rad.iter().enumerate() {
            let (s, c) = t.sin_cos();
            step_x.push((ratio * c) as f32);
            step_y.push((-ratio * s) as f32);
            center_shift.push(dx * c + dy * s);
            // The response of linear interpolation (sinc^2), so the image has the resolution of the textbook
            // FBP without its interpolation aliasing.
            let sinc = |v: f64| {
                if v == 0.0 {
                    1.0
                } else {
                    (PI * v).sin() / (PI * v)
                }
            };
            filt.extend(resp.iter().enumerate().map(|(k, r)| {
                let kk = if k < m1 / 2 {
                    k as f64
                } else {
                    k as f64 - m1 as f64
                };
                let nu = kk / m1 as f64;
                (r * weights[a] / m1 as f64 * sinc(nu) * sinc(nu)) as f32
            }));
        }
        let mut planner = FftPlanner::<f32>::new();
        let fft1 = planner.plan_fft_forward(m1);
        let ifft_g = planner.plan_fft_inverse(g);
        let scratch_len = fft1
            .get_inplace_scratch_len()
            .max(ifft_g.get_inplace_scratch_len());
        let mut plan = GridRecPlan {
            n,
            cols,
            g,
            m1,
            step_x,
            step_y,
            center_shift,
            filter: filt,
            kernel,
            deapod,
            fft1,
            ifft_g,
            scratch_len,
            chunks: None,
        };
        let per_angle = m1.div_ceil(CHUNK);
        if theta_rad.len() * per_angle * std::mem::size_of::<Chunk>()
            <= PRECOMPUTED_WEIGHTS_MAX_BYTES
        {
            let mut chunks = vec![Chunk::default(); theta_rad.len() * per_angle];
            for (angle, row) in chunks.chunks_mut(per_angle).enumerate() {
                let (sx, sy) = (plan.step_x[angle], plan.step_y[angle]);
                for (ci, chunk) in row.iter_mut().enumerate() {
                    let k0 = ci * CHUNK;
                    fill_chunk(&plan, sx, sy, k0, (m1 - k0).min(CHUNK), chunk);
                }
            }
            plan.chunks = Some(chunks);
        }
        plan
    }

    /// Output side length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `(frequency grid side, projection FFT length)`.
    pub fn sizes(&self) -> (usize, usize) {
        (self.g, self.m1)
    }

    /// Sinogram shape `(angles, cols)` this plan takes.
    pub fn sinogram_shape(&self) -> (usize, usize) {
        (self.step_x.len(), self.cols)
    }

    /// Buffers for one thread.
    pub fn work(&self) -> GridRecWork {
        let gp = self.g + 2 * PAD;
        GridRecWork {
            proj: vec![Complex32::default(); self.m1],
            grid: vec![Complex32::default(); gp * gp],
            cols: vec![Complex32::default(); 8 * self.g],
            scratch: vec![Complex32::default(); self.scratch_len],
        }
    }

    /// Reconstruct one slice with the rotation axis at detector index `center`.
    pub fn reconstruct(&self, work: &mut GridRecWork, center: f64, sino: &[f32], out: &mut [f32]) {
        self.reconstruct_pair(work, center, sino, None, out, None);
    }

    /// Reconstruct two slices at once (`angles x cols` sinograms of line integrals in pixel units, `n x n`
    /// outputs, row 0 at the top), the rotation axis at detector index `center`. With `b` absent, only `a` is reconstructed (at the same cost).
    pub fn reconstruct_pair(
        &self,
        work: &mut GridRecWork,
        center: f64,
        a: &[f32],
        b: Option<&[f32]>,
        out_a: &mut [f32],
        out_b: Option<&mut [f32]>,
    ) {
        let (angles, cols) = self.sinogram_shape();
        assert_eq!(a.len(), angles * cols, "sinogram is angles x cols");
        if let Some(b) = b {
            assert_eq!(b.len(), angles * cols, "sinogram is angles x cols");
        }
        assert_eq!(out_a.len(), self.n * self.n, "output is n x n");
        self.spread_pair(work, center, a, b);
        self.finish_pair(work, out_a, out_b);
    }

    /// The first half of [`Self::reconstruct_pair`]: every projection's FFT, filtered and spread onto the
    /// frequency grid held in `work` (public so the bench can time it apart from the inverse 2-D FFT).
    pub fn spread_pair(&self, work: &mut GridRecWork, center: f64, a: &[f32], b: Option<&[f32]>) {
        spread_dispatch::<0>(self, work, center, None, a, b);
    }

    /// One slice reconstructed at two rotation centres in one pass (the cost of one): the real sinogram's
    /// spectrum takes the first centre's phase as the real part and the second's as the imaginary part, so
    /// `out1` is the image at `centers.0` and `out2` at `centers.1` (each as [`Self::reconstruct`] gives it, to
    /// rounding). The centre search evaluates its candidates two at a time this way.
    pub fn reconstruct_centres(
        &self,
        work: &mut GridRecWork,
        centers: (f64, f64),
        sino: &[f32],
        out1: &mut [f32],
        out2: &mut [f32],
    ) {
        let (angles, cols) = self.sinogram_shape();
        assert_eq!(sino.len(), angles * cols, "sinogram is angles x cols");
        assert_eq!(out1.len(), self.n * self.n, "output is n x n");
        spread_dispatch::<0>(self, work, centers.0, Some(centers.1), sino, None);
        self.finish_pair(work, out1, Some(out2));
    }

    /// Only the projection FFTs of [`Self::spread_pair`] (for the bench's split of FFT vs gridding time).
    pub fn projection_ffts(&self, work: &mut GridRecWork, a: &[f32], b: Option<&[f32]>) {
        let (angles, cols) = self.sinogram_shape();
        for angle in 0..angles {
            load_projection(&mut work.proj, a, b, angle, cols);
            self.fft1
                .process_with_scratch(&mut work.proj, &mut work.scratch);
        }
    }

    /// The second half of [`Self::reconstruct_pair`] (public so the bench can time it): wrap the padding into
    /// the periodic grid, inverse-FFT, deapodize and crop.
    pub fn finish_pair(
        &self,
        work: &mut GridRecWork,
        out_a: &mut [f32],
        out_b: Option<&mut [f32]>,
    ) {
        let (n, g) = (self.n, self.g);
        let gp = g + 2 * PAD;
        let grid = &mut work.grid;
        // Columns: padded column p holds grid column (p - PAD) mod g.
        for r in 0..gp {
            let row = &mut grid[r * gp..(r + 1) * gp];
            for p in 0..PAD {
                let v = std::mem::take(&mut row[p]);
                row[p + g] += v;
                let q = PAD + g + p;
                let v = std::mem::take(&mut row[q]);
                row[q - g] += v;
            }
        }
        // Rows likewise: top padding row p is grid row p + g - PAD, padded row p + g; bottom padding row q is
        // padded row q - g.
        let add_row = |grid: &mut [Complex32], src: usize, dst: usize| {
            let (lo, hi) = (src.min(dst), src.max(dst));
            let (head, tail) = grid.split_at_mut(hi * gp);
            let (lo_row, hi_row) = (&mut head[lo * gp..(lo + 1) * gp], &mut tail[..gp]);
            let (s, d) = if src < dst {
                (lo_row, hi_row)
            } else {
                (hi_row, lo_row)
            };
            for (d, s) in d.iter_mut().zip(s.iter_mut()) {
                *d += std::mem::take(s);
            }
        };
        for p in 0..PAD {
            add_row(grid, p, p + g);
            add_row(grid, PAD + g + p, PAD + p);
        }
        // Inverse FFT along x for every grid row.
        for r in PAD..PAD + g {
            let row = &mut grid[r * gp + PAD..r * gp + PAD + g];
            self.ifft_g.process_with_scratch(row, &mut work.scratch);
        }
        // Then along the rows, for the image's columns only, eight at a time.
        let half = n / 2;
        let mut out_b = out_b;
        let mut j0 = 0;
        while j0 < n {
            let width = (n - j0).min(8);
            for r in 0..g {
                let base = (r + PAD) * gp + PAD;
                for t in 0..width {
                    let x = (j0 + t) as i64 - half as i64;
                    let b = x.rem_euclid(g as i64) as usize;
                    work.cols[t * g + r] = grid[base + b];
                }
            }
            for t in 0..width {
                let col = &mut work.cols[t * g..(t + 1) * g];
                self.ifft_g.process_with_scratch(col, &mut work.scratch);
                let j = j0 + t;
                let dj = self.deapod[j];
                for i in 0..n {
                    let y = i as i64 - half as i64;
                    let a = y.rem_euclid(g as i64) as usize;
                    let v = col[a] * (dj * self.deapod[i]);
                    out_a[i * n + j] = v.re;
                    if let Some(ob) = out_b.as_deref_mut() {
                        ob[i * n + j] = v.im;
                    }
                }
            }
            j0 += width;
        }
    }
}

/// Row `angle` of `a` (and of `b` as the imaginary part), zero-padded to the projection FFT's length.
#[inline(always)]
fn load_projection(
    proj: &mut [Complex32],
    a: &[f32],
    b: Option<&[f32]>,
    angle: usize,
    cols: usize,
) {
    let row_a = &a[angle * cols..(angle + 1) * cols];
    match b {
        Some(b) => {
            let row_b = &b[angle * cols..(angle + 1) * cols];
            for ((p, &x), &y) in proj.iter_mut().zip(row_a).zip(row_b) {
                *p = Complex32::new(x, y);
            }
        }
        None => {
            for (p, &x) in proj.iter_mut().zip(row_a) {
                *p = Complex32::new(x, 0.0);
            }
        }
    }
    proj[cols..].fill(Complex32::default());
}

/// Projection bins gridded per chunk.
const CHUNK: usize = 64;

/// One chunk of bins' kernel weights per tap and first grid cell.
#[derive(Clone)]
struct Chunk {
    wx: [[f32; CHUNK]; KERNEL_WIDTH],
    wy: [[f32; CHUNK]; KERNEL_WIDTH],
    cell: [u32; CHUNK],
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            wx: [[0.0; CHUNK]; KERNEL_WIDTH],
            wy: [[0.0; CHUNK]; KERNEL_WIDTH],
            cell: [0; CHUNK],
        }
    }
}

/// The plan keeps every bin's weights (they depend on the geometry only) up to this size: 12 MB at 640 px and
/// 181 angles; computing them costs more than half of the gridding time. Larger geometries compute them per
/// chunk as they go (the same values).
const PRECOMPUTED_WEIGHTS_MAX_BYTES: usize = 64 << 20;

/// Positions and kernel weights of bins `k0..k0 + len` of the angle with grid steps `sx`, `sy`.
#[inline(always)]
fn fill_chunk(plan: &GridRecPlan, sx: f32, sy: f32, k0: usize, len: usize, chunk: &mut Chunk) {
    let (g, m1) = (plan.g, plan.m1);
    let gp = g + 2 * PAD;
    let table = KERNEL_TABLE_PER_CELL as f32;
    let origin = (g / 2 + PAD) as f32;
    let half_w = KERNEL_WIDTH as f32 / 2.0;
    let last = plan.kernel.len() as i32 - 1;
    for c in 0..len {
        let kk = (k0 + c) as i64 - (m1 / 2) as i64;
        let gx = origin + kk as f32 * sx;
        let gy = origin + kk as f32 * sy;
        let fx = (gx - half_w).ceil();
        let fy = (gy - half_w).ceil();
        for t in 0..KERNEL_WIDTH {
            let dxk = (((fx + t as f32 - gx).abs() * table + 0.5) as i32).min(last);
            let dyk = (((fy + t as f32 - gy).abs() * table + 0.5) as i32).min(last);
            // SAFETY: 0 <= index <= last (the argument is non-negative).
            unsafe {
                chunk.wx[t][c] = *plan.kernel.get_unchecked(dxk.max(0) as usize);
                chunk.wy[t][c] = *plan.kernel.get_unchecked(dyk.max(0) as usize);
            }
        }
        chunk.cell[c] = (fy as usize * gp + fx as usize) as u32;
    }
}

// The gridding loop compiled for the widest vector unit the CPU has (`crate::simd`, bit-identical).
crate::multiversion!(spread_dispatch, spread_kernel,
    (plan: &GridRecPlan, work: &mut GridRecWork, center: f64, center2: Option<f64>, a: &[f32], b: Option<&[f32]>) -> ());

#[inline(always)]
fn spread_kernel<const D: usize>(
    plan: &GridRecPlan,
    work: &mut GridRecWork,
    center: f64,
    center2: Option<f64>,
    a: &[f32],
    b: Option<&[f32]>,
) {
    let (angles, cols) = plan.sinogram_shape();
    let (g, m1) = (plan.g, plan.m1);
    let gp = g + 2 * PAD;
    work.grid.fill(Complex32::default());
    let (mut scratch_chunk, mut mirror_chunk) = (Chunk::default(), Chunk::default());
    for angle in 0..angles {
        load_projection(&mut work.proj, a, b, angle, cols);
        let proj = &mut work.proj;
        plan.fft1.process_with_scratch(proj, &mut work.scratch);
        let filt = &plan.filter[angle * m1..(angle + 1) * m1];
        let (sx, sy) = (plan.step_x[angle], plan.step_y[angle]);
        let ph = 2.0 * PI * (center + plan.center_shift[angle]) / m1 as f64;
        let (ps_im, ps_re) = ph.sin_cos();
        let (mut ph_im, mut ph_re) = (ph * -((m1 / 2) as f64)).sin_cos();
        // A second centre's phase, carried as the imaginary part (`reconstruct_centres`).
        let (qs, mut q) = match center2 {
            Some(c2) => {
                let ph = 2.0 * PI * (c2 + plan.center_shift[angle]) / m1 as f64;
                (ph.sin_cos(), (ph * -((m1 / 2) as f64)).sin_cos())
            }
            None => ((0.0, 0.0), (0.0, 0.0)),
        };
        let mut k0 = 0;
        while k0 < m1 {
            let len = (m1 - k0).min(CHUNK);
            // Pass 1: grid positions and kernel weights of the chunk's bins, from the plan where it holds them.
            let chunk: &Chunk = match &plan.chunks {
                Some(chunks) => &chunks[angle * m1.div_ceil(CHUNK) + k0 / CHUNK],
                None => {
                    fill_chunk(plan, sx, sy, k0, len, &mut scratch_chunk);
                    &scratch_chunk
                }
            };
            // Pass 2: each bin's filtered, phase-shifted value spread onto its 6 x 6 cells.
            for c in 0..len {
                let kk = (k0 + c) as i64 - (m1 / 2) as i64;
                let idx = kk.rem_euclid(m1 as i64) as usize;
                let f = filt[idx];
                let z = proj[idx];
                let ph = Complex32::new(ph_re as f32, ph_im as f32);
                (ph_re, ph_im) = (ph_re * ps_re - ph_im * ps_im, ph_re * ps_im + ph_im * ps_re);
                let ph2 = center2.map(|_| {
                    let (q_im, q_re) = q;
                    let (qs_im, qs_re) = qs;
                    q = (q_re * qs_im + q_im * qs_re, q_re * qs_re - q_im * qs_im);
                    Complex32::new(q_re as f32, q_im as f32)
                });
                if f == 0.0 {
                    continue;
                }
                let v = match ph2 {
                    None => z * ph * f,
                    // Two centres: A + i B with A, B the two centres' samples. Each spectrum is Hermitian, so
                    // the real part of the image is the first centre's and the imaginary part the second's,
                    // except for the Nyquist bin (kk = -m1 / 2), which has no mirror: it goes in halves, A / 2
                    // + i B / 2 here and conj(A) / 2 + i conj(B) / 2 at the mirrored position, the part of it
                    // a single reconstruction's real part keeps.
                    Some(ph2) => {
                        let (va, vb) = (z * ph * f, z * ph2 * f);
                        let i = Complex32::new(0.0, 1.0);
                        if kk == -((m1 / 2) as i64) {
                            let mirror = (va.conj() + i * vb.conj()) * 0.5;
                            // The mirror is bin m1 (kk = +m1 / 2), one past the last.
                            fill_chunk(plan, sx, sy, m1, 1, &mut mirror_chunk);
                            scatter_bin(&mut work.grid, gp, &mirror_chunk, 0, mirror);
                            (va + i * vb) * 0.5
                        } else {
                            va + i * vb
                        }
                    }
                };
                scatter_bin(&mut work.grid, gp, chunk, c, v);
            }
            k0 += len;
        }
    }
}

/// Spread bin `c` of `chunk`, value `v`, onto its 6 x 6 cells.
#[inline(always)]
fn scatter_bin(grid: &mut [Complex32], gp: usize, chunk: &Chunk, c: usize, v: Complex32) {
    let base = chunk.cell[c] as usize;
    for ty in 0..KERNEL_WIDTH {
        let vy = v * chunk.wy[ty][c];
        let row = &mut grid[base + ty * gp..base + ty * gp + KERNEL_WIDTH];
        for (tx, cell) in row.iter_mut().enumerate() {
            *cell += vy * chunk.wx[tx][c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_transform_matches_quadrature() {
        let (w, beta) = (6.0, 12.0);
        for xi in [0.0, 0.1, 0.3, 0.6] {
            let steps = 20_000;
            let h = w / steps as f64;
            let q: f64 = (0..steps)
                .map(|k| {
                    let t = -w / 2.0 + (k as f64 + 0.5) * h;
                    let u = 2.0 * t / w;
                    bessel_i0(beta * (1.0 - u * u).sqrt()) / bessel_i0(beta)
                        * (2.0 * PI * t * xi).cos()
                        * h
                })
                .sum();
            let c = kaiser_bessel_transform(w, beta, xi);
            assert!(
                (q - c).abs() < 1e-6 * c.abs().max(1e-3),
                "xi {xi}: {q} vs {c}"
            );
        }
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-14);
        assert_eq!(smooth_size(961), 972);
    }

    #[test]
    fn the_pair_gives_each_slice_as_alone() {
        let (n, angles) = (32, 40);
        let theta: Vec<f64> = (0..angles).map(|i| PI * i as f64 / angles as f64).collect();
        let plan = GridRecPlan::new(n, n, &theta, FilterKind::Hann);
        let mut w = plan.work();
        let a: Vec<f32> = (0..angles * n).map(|k| ((k * 7) % 13) as f32).collect();
        let b: Vec<f32> = (0..angles * n).map(|k| ((k * 5) % 11) as f32).collect();
        let (mut pa, mut pb, mut sa, mut sb) = (
            vec![0.0; n * n],
            vec![0.0; n * n],
            vec![0.0; n * n],
            vec![0.0; n * n],
        );
        plan.reconstruct_pair(&mut w, 15.5, &a, Some(&b), &mut pa, Some(&mut pb));
        plan.reconstruct(&mut w, 15.5, &a, &mut sa);
        plan.reconstruct(&mut w, 15.5, &b, &mut sb);
        for k in 0..n * n {
            assert!(
                (pa[k] - sa[k]).abs() < 1e-3 && (pb[k] - sb[k]).abs() < 1e-3,
                "{k}"
            );
        }
    }

    #[test]
    fn two_centres_in_one_pass_give_each_as_alone() {
        let (n, angles) = (32, 40);
        let theta: Vec<f64> = (0..angles).map(|i| PI * i as f64 / angles as f64).collect();
        let plan = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
        let mut w = plan.work();
        let a: Vec<f32> = (0..angles * n).map(|k| ((k * 7) % 13) as f32).collect();
        let (mut p1, mut p2, mut s1, mut s2) = (
            vec![0.0; n * n],
            vec![0.0; n * n],
            vec![0.0; n * n],
            vec![0.0; n * n],
        );
        plan.reconstruct_centres(&mut w, (15.5, 17.25), &a, &mut p1, &mut p2);
        plan.reconstruct(&mut w, 15.5, &a, &mut s1);
        plan.reconstruct(&mut w, 17.25, &a, &mut s2);
        let scale = s1.iter().fold(0f32, |m, v| m.max(v.abs()));
        for k in 0..n * n {
            assert!(
                (p1[k] - s1[k]).abs() < 1e-4 * scale && (p2[k] - s2[k]).abs() < 1e-4 * scale,
                "{k}: {} {} vs {} {}",
                p1[k],
                p2[k],
                s1[k],
                s2[k]
            );
        }
        assert!(
            s1.iter()
                .zip(&s2)
                .any(|(x, y)| (x - y).abs() > 1e-2 * scale),
            "the centres differ"
        );
    }

    #[test]
    fn the_vector_gridding_gives_the_baseline_bits() {
        let (n, angles) = (48, 30);
        let theta: Vec<f64> = (0..angles).map(|i| PI * i as f64 / angles as f64).collect();
        let plan = GridRecPlan::new(n, n, &theta, FilterKind::Hann);
        let a: Vec<f32> = (0..angles * n).map(|k| ((k * 7) % 13) as f32).collect();
        let b: Vec<f32> = (0..angles * n).map(|k| ((k * 5) % 11) as f32).collect();
        let (mut w1, mut w2) = (plan.work(), plan.work());
        spread_kernel::<0>(&plan, &mut w1, 23.7, None, &a, Some(&b));
        spread_dispatch::<0>(&plan, &mut w2, 23.7, None, &a, Some(&b));
        assert!(w1
            .grid
            .iter()
            .zip(&w2.grid)
            .all(|(x, y)| x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits()));
    }

    #[test]
    fn weights_computed_on_the_fly_equal_the_plans() {
        // Geometries over PRECOMPUTED_WEIGHTS_MAX_BYTES compute each chunk's weights as they go.
        let (n, angles) = (40, 23);
        let theta: Vec<f64> = (0..angles).map(|i| PI * i as f64 / angles as f64).collect();
        let kept = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
        let mut fly = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
        assert!(kept.chunks.is_some());
        fly.chunks = None;
        let a: Vec<f32> = (0..angles * n).map(|k| ((k * 3) % 17) as f32).collect();
        let (mut w1, mut w2) = (kept.work(), fly.work());
        kept.spread_pair(&mut w1, 19.2, &a, None);
        fly.spread_pair(&mut w2, 19.2, &a, None);
        assert!(w1
            .grid
            .iter()
            .zip(&w2.grid)
            .all(|(x, y)| x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits()));
    }
}
