//! Comparing a reconstruction with a known image.

use super::pipeline::in_circle;

/// Root-mean-square error over the pixels of an N x N image inside a circle of `radius` (1 = the inscribed
/// circle; [`in_circle`]).
pub fn rmse_in_circle(recon: &[f64], truth: &[f64], n: usize, radius: f64) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for i in 0..n {
        for j in 0..n {
            if in_circle(i, j, n, radius) {
                let d = recon[i * n + j] - truth[i * n + j];
                sum += d * d;
                count += 1;
            }
        }
    }
    (sum / count.max(1) as f64).sqrt()
}

/// Mean structural similarity (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) over the
/// pixels inside a circle of `radius`, for values spanning `range`.
pub fn ssim_in_circle(recon: &[f64], truth: &[f64], n: usize, radius: f64, range: f64) -> f64 {
    let w: Vec<f64> = {
        let g: Vec<f64> = (-5..=5)
            .map(|k: i32| (-(k * k) as f64 / (2.0 * 1.5 * 1.5)).exp())
            .collect();
        let s: f64 = g.iter().sum();
        g.into_iter().map(|v| v / s).collect()
    };
    // One 11-tap pass along rows (`across = false`) or columns, clamped at the edges.
    let pass = |src: &[f64], dst: &mut [f64], across: bool| {
        for i in 0..n {
            for j in 0..n {
                let mut acc = 0.0;
                for (t, wt) in w.iter().enumerate() {
                    let k = ((if across { i } else { j }) as i64 + t as i64 - 5)
                        .clamp(0, n as i64 - 1) as usize;
                    acc += wt * src[if across { k * n + j } else { i * n + k }];
                }
                dst[i * n + j] = acc;
            }
        }
    };
    let blur = |img: &[f64]| -> Vec<f64> {
        let (mut tmp, mut out) = (vec![0.0; n * n], vec![0.0; n * n]);
        pass(img, &mut tmp, false);
        pass(&tmp, &mut out, true);
        out
    };
    let prod = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x * y).collect() };
    let (mx, my) = (blur(recon), blur(truth));
    let (sxx, syy, sxy) = (
        blur(&prod(recon, recon)),
        blur(&prod(truth, truth)),
        blur(&prod(recon, truth)),
    );
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let (mut sum, mut count) = (0.0, 0usize);
    for i in 0..n {
        for j in 0..n {
            if !in_circle(i, j, n, radius) {
                continue;
            }
            let k = i * n + j;
            let (ux, uy) = (mx[k], my[k]);
            let (vx, vy, cxy) = (sxx[k] - ux * ux, syy[k] - uy * uy, sxy[k] - ux * uy);
            sum += ((2.0 * ux * uy + c1) * (2.0 * cxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    sum / count.max(1) as f64
}

/// How alike two images are, each rescaled to [0, 1] over the pixels inside the circle first (as the
/// light-source peers score their reconstructions): SSIM, PSNR in dB, and the RMSE over the reference's RMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub ssim: f64,
    pub psnr_db: f64,
    pub nrmse: f64,
}

/// Compare `image` with `reference` (both `n x n`) inside the circle of `radius`. None when either is empty,
/// not `n x n`, or has a non-finite value inside the circle; a flat image rescales to zeros.
pub fn compare_unit(image: &[f32], reference: &[f32], n: usize, radius: f64) -> Option<Comparison> {
    if n == 0 || image.len() != n * n || reference.len() != n * n {
        return None;
    }
    let unit = |img: &[f32]| -> Option<Vec<f64>> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..n {
            for j in 0..n {
                if in_circle(i, j, n, radius) {
                    let v = img[i * n + j] as f64;
                    if !v.is_finite() {
                        return None;
                    }
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        let span = if hi > lo { hi - lo } else { 1.0 };
        let lo = if lo.is_finite() { lo } else { 0.0 };
        Some(
            img.iter()
                .map(|&v| ((v as f64 - lo) / span).clamp(0.0, 1.0))
                .collect(),
        )
    };
    let (a, b) = (unit(image)?, unit(reference)?);
    let rmse = rmse_in_circle(&a, &b, n, radius);
    let rms_ref = rmse_in_circle(&vec![0.0; n * n], &b, n, radius);
    Some(Comparison {
        ssim: ssim_in_circle(&a, &b, n, radius, 1.0),
        psnr_db: if rmse > 0.0 {
            -20.0 * rmse.log10()
        } else {
            f64::INFINITY
        },
        nrmse: if rms_ref > 0.0 { rmse / rms_ref } else { rmse },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_rescale_first_and_refuse_what_they_cannot_score() {
        let n = 16;
        let a: Vec<f32> = (0..n * n).map(|k| (k % n) as f32).collect();
        // Scaled and shifted, the same image after rescaling.
        let b: Vec<f32> = a.iter().map(|v| 3.0 * v + 7.0).collect();
        let c = compare_unit(&b, &a, n, 1.0).unwrap();
        assert!((c.ssim - 1.0).abs() < 1e-9 && c.nrmse < 1e-9 && c.psnr_db.is_infinite());
        let mut bad = a.clone();
        bad[n * n / 2 + n / 2] = f32::NAN;
        assert_eq!(compare_unit(&bad, &a, n, 1.0), None);
        assert_eq!(compare_unit(&a[1..], &a, n, 1.0), None);
        let flat = vec![5.0f32; n * n];
        let c = compare_unit(&flat, &a, n, 1.0).unwrap();
        assert!(c.ssim < 0.1 && c.psnr_db.is_finite() && c.nrmse.is_finite());
    }

    #[test]
    fn identical_images_score_one_and_noise_scores_less() {
        let n = 32;
        let a: Vec<f64> = (0..n * n).map(|k| (k % n) as f64 / n as f64).collect();
        assert!((ssim_in_circle(&a, &a, n, 1.0, 1.0) - 1.0).abs() < 1e-12);
        assert_eq!(rmse_in_circle(&a, &a, n, 1.0), 0.0);
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(k, v)| v + if k % 2 == 0 { 0.2 } else { -0.2 })
            .collect();
        assert!(ssim_in_circle(&b, &a, n, 1.0, 1.0) < 0.5);
        assert!((rmse_in_circle(&b, &a, n, 1.0) - 0.2).abs() < 1e-12);
    }
}
