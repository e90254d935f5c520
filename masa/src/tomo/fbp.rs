//! Pixel-driven filtered back projection with linear interpolation: filter each projection in Fourier space
//! (zero-padded to at least twice its width), then add every filtered projection, weighted by its angle's share of
//! [0, pi), into each pixel at the detector position the pixel projects to.

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::angle_weights;
use super::filter::{response, FilterKind};

/// A reusable plan for one geometry: N x N output from `angles x cols` sinograms.
pub struct FbpPlan {
    n: usize,
    cols: usize,
    center: f64,
    cos: Vec<f64>,
    sin: Vec<f64>,
    weights: Vec<f64>,
    filter: Vec<f64>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    buf: Vec<Complex64>,
    filtered: Vec<f64>,
}

impl FbpPlan {
    pub fn new(n: usize, cols: usize, center: f64, theta_rad: &[f64], filter: FilterKind) -> Self {
        let pad = (2 * cols).next_power_of_two();
        let mut planner = FftPlanner::new();
        FbpPlan {
            n,
            cols,
            center,
            cos: theta_rad.iter().map(|t| t.cos()).collect(),
            sin: theta_rad.iter().map(|t| t.sin()).collect(),
            weights: angle_weights(theta_rad),
            filter: response(filter, pad),
            forward: planner.plan_fft_forward(pad),
            inverse: planner.plan_fft_inverse(pad),
            buf: vec![Complex64::default(); pad],
            filtered: vec![0.0; theta_rad.len() * cols],
        }
    }

    /// Reconstruct `sino` (`angles x cols`, line integrals in pixel units) into `out` (`n x n`).
    pub fn reconstruct(&mut self, sino: &[f64], out: &mut [f64]) {
        let (cols, n, pad) = (self.cols, self.n, self.buf.len());
        assert_eq!(
            sino.len(),
            self.cos.len() * cols,
            "sinogram is angles x cols"
        );
        assert_eq!(out.len(), n * n, "output is n x n");
        for (a, row) in sino.chunks_exact(cols).enumerate() {
            self.buf.iter_mut().for_each(|c| *c = Complex64::default());
            for (b, &v) in self.buf.iter_mut().zip(row) {
                b.re = v;
            }
            self.forward.process(&mut self.buf);
            for (b, h) in self.buf.iter_mut().zip(&self.filter) {
                *b *= *h;
            }
            self.inverse.process(&mut self.buf);
            for (q, b) in self.filtered[a * cols..(a + 1) * cols]
                .iter_mut()
                .zip(&self.buf)
            {
                *q = b.re / pad as f64;
            }
        }
        out.iter_mut().for_each(|v| *v = 0.0);
        let half = (n as f64 - 1.0) / 2.0;
        for (a, q) in self.filtered.chunks_exact(cols).enumerate() {
            let (c, s, w) = (self.cos[a], self.sin[a], self.weights[a]);
            for (i, row) in out.chunks_exact_mut(n).enumerate() {
                let y = half - i as f64;
                let t0 = self.center - half * c + y * s;
                for (j, px) in row.iter_mut().enumerate() {
                    let t = t0 + j as f64 * c;
                    let u = t.floor();
                    let k = u as isize;
                    if k >= 0 && (k as usize) + 1 < cols {
                        let k = k as usize;
                        let f = t - u;
                        *px += w * (q[k] + f * (q[k + 1] - q[k]));
                    }
                }
            }
        }
    }
}
