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

#[cfg(test)]
mod tests {
    use super::*;

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
