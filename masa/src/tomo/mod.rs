//! Tomographic reconstruction for light-source streams, numerics only (no I/O).
//!
//! Geometry (shared with MASS's phantom generator): detector pixel u is centred at index u and the rotation axis
//! at index `center`; image pixel (i, j) of an N x N grid has its centre at x = j - (N - 1) / 2,
//! y = (N - 1) / 2 - i (pixels from the axis, y up), and projects at angle theta to detector index
//! `center + x cos(theta) + y sin(theta)`.
//!
//! - [`filter`]: ramp filters with windows (none, ramp, Shepp-Logan, Hann, Hamming, Butterworth, cosine).
//! - [`fbp`]: pixel-driven filtered back projection with linear interpolation (the textbook baseline).
//! - [`gridrec`]: GridRec, Fourier gridding with a Kaiser-Bessel kernel, two slices per pass.
//! - [`mlem`]: ML-EM with a ray-driven Joseph projector and its exact adjoint.
//! - [`center`]: the rotation centre by the entropy criterion, coarse to fine.
//! - [`pipeline`]: normalisation, minus log, sinograms per row, the circular mask.
//! - [`quality`]: RMSE and SSIM inside a circle, for comparing reconstructions with a phantom.
//! - [`rolling`]: a frame stream's rolling reconstruction: a buffer of the latest frames covering 180 degrees and
//!   three ortho-slices updated per frame (the new frame added, the replaced one taken out).

pub mod center;
pub mod fbp;
pub mod filter;
pub mod gridrec;
pub mod mlem;
pub mod pipeline;
pub mod quality;
pub mod rolling;

/// Integration weight of each angle over [0, pi): half the distance to its neighbours, angles taken modulo pi
/// (so 181 angles over [0, pi] inclusive give the coinciding ends half a step each).
pub fn angle_weights(theta_rad: &[f64]) -> Vec<f64> {
    let n = theta_rad.len();
    if n == 0 {
        return vec![];
    }
    if n == 1 {
        return vec![std::f64::consts::PI];
    }
    let pi = std::f64::consts::PI;
    let mut order: Vec<(f64, usize)> = theta_rad
        .iter()
        .map(|t| (t.rem_euclid(pi), 0))
        .zip(0..)
        .map(|((t, _), i)| (t, i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut w = vec![0.0; n];
    for k in 0..n {
        let prev = if k == 0 {
            order[n - 1].0 - pi
        } else {
            order[k - 1].0
        };
        let next = if k == n - 1 {
            order[0].0 + pi
        } else {
            order[k + 1].0
        };
        w[order[k].1] = (next - prev) / 2.0;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_pi_and_ends_share_a_step() {
        let theta: Vec<f64> = (0..181)
            .map(|i| std::f64::consts::PI * i as f64 / 180.0)
            .collect();
        let w = angle_weights(&theta);
        let step = std::f64::consts::PI / 180.0;
        assert!((w.iter().sum::<f64>() - std::f64::consts::PI).abs() < 1e-12);
        assert!((w[0] - step / 2.0).abs() < 1e-12 && (w[180] - step / 2.0).abs() < 1e-12);
        assert!((w[90] - step).abs() < 1e-12);
    }
}
