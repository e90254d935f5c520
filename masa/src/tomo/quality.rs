//! Comparing a reconstruction with a known image.

/// Root-mean-square error over the pixels of an N x N image inside a circle of `radius` (1 = the inscribed
/// circle), with pixel (i, j) at x = (j - (N - 1) / 2) * 2 / N, y likewise.
pub fn rmse_in_circle(recon: &[f64], truth: &[f64], n: usize, radius: f64) -> f64 {
    let half = (n as f64 - 1.0) / 2.0;
    let (mut sum, mut count) = (0.0, 0usize);
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (
                (j as f64 - half) * 2.0 / n as f64,
                (i as f64 - half) * 2.0 / n as f64,
            );
            if x * x + y * y <= radius * radius {
                let d = recon[i * n + j] - truth[i * n + j];
                sum += d * d;
                count += 1;
            }
        }
    }
    (sum / count.max(1) as f64).sqrt()
}
