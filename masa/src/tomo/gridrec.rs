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
            while r % p == 0 {
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
        GridRecPlan {
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
        }
    }

    /// Output side length.
    pub fn n(&self) -> usize {
        self.n
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
        let (n, g, m1) = (self.n, self.g, self.m1);
        assert_eq!(out_a.len(), n * n, "output is n x n");
        let gp = g + 2 * PAD;
        work.grid.fill(Complex32::default());
        let table = KERNEL_TABLE_PER_CELL as f32;
        let origin = (g / 2 + PAD) as f32;
        let half_w = KERNEL_WIDTH as f32 / 2.0;
        for angle in 0..angles {
            let row_a = &a[angle * cols..(angle + 1) * cols];
            let proj = &mut work.proj;
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
            self.fft1.process_with_scratch(proj, &mut work.scratch);
            let filt = &self.filter[angle * m1..(angle + 1) * m1];
            let (sx, sy) = (self.step_x[angle], self.step_y[angle]);
            let ph = 2.0 * PI * (center + self.center_shift[angle]) / m1 as f64;
            let (ps_im, ps_re) = ph.sin_cos();
            let (mut ph_im, mut ph_re) = (ph * -((m1 / 2) as f64)).sin_cos();
            for k in 0..m1 {
                let kk = k as i64 - (m1 / 2) as i64;
                let idx = kk.rem_euclid(m1 as i64) as usize;
                let f = filt[idx];
                let z = proj[idx];
                let ph = Complex32::new(ph_re as f32, ph_im as f32);
                (ph_re, ph_im) = (ph_re * ps_re - ph_im * ps_im, ph_re * ps_im + ph_im * ps_re);
                if f == 0.0 {
                    continue;
                }
                let v = z * ph * f;
                let gx = origin + kk as f32 * sx;
                let gy = origin + kk as f32 * sy;
                let fx = (gx - half_w).ceil();
                let fy = (gy - half_w).ceil();
                let mut wx = [0f32; KERNEL_WIDTH];
                let mut wy = [0f32; KERNEL_WIDTH];
                for t in 0..KERNEL_WIDTH {
                    let dxk = ((fx + t as f32 - gx).abs() * table + 0.5) as usize;
                    let dyk = ((fy + t as f32 - gy).abs() * table + 0.5) as usize;
                    wx[t] = self.kernel[dxk.min(self.kernel.len() - 1)];
                    wy[t] = self.kernel[dyk.min(self.kernel.len() - 1)];
                }
                let (fx, fy) = (fx as usize, fy as usize);
                for (ty, &wyv) in wy.iter().enumerate() {
                    let vy = v * wyv;
                    let row =
                        &mut work.grid[(fy + ty) * gp + fx..(fy + ty) * gp + fx + KERNEL_WIDTH];
                    for (cell, &wxv) in row.iter_mut().zip(&wx) {
                        *cell += vy * wxv;
                    }
                }
            }
        }
        self.fold_and_transform(work, out_a, out_b);
    }

    /// Wrap the padding into the periodic grid, inverse-FFT, deapodize and crop.
    fn fold_and_transform(
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
}
