//! The calibration measurement `check` divides by: how fast this machine, at this moment, runs a fixed piece of
//! the pipeline's own work (MASA's KMeans update on 5,000 x 3-D points, k = 10, the quickstart's message), taken
//! by the runner just before every run and recorded beside the run's metrics as
//! `calibration_kmeans_updates_per_s`. A throughput divided by it (a latency multiplied by it) is a ratio that
//! stays put when a shared CI machine is slower today, and moves when the code under test is slower.

use std::time::{Duration, Instant};

use masa::kmeans::{random_centers, StreamingKMeans, TimeUnit};

/// The results column the calibration goes into.
pub const METRIC: &str = "calibration_kmeans_updates_per_s";

/// KMeans updates per second over about `budget` (at least 5 updates; the median of 5 slices, so one
/// descheduled slice does not count).
pub fn kmeans_updates_per_s(budget: Duration) -> f64 {
    let (k, dims, n) = (10, 3, 5_000);
    // Fixed points: a cheap LCG, the same on every machine.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let points: Vec<f64> = (0..n * dims)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 10.0
        })
        .collect();
    let mut model = StreamingKMeans::new(
        random_centers(k, dims, 42),
        vec![0.0; k],
        dims,
        1.0,
        TimeUnit::Batches,
    )
    .expect("fixed valid model");
    let slice = budget / 5;
    let mut rates = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = Instant::now();
        let mut updates = 0u64;
        while updates == 0 || t.elapsed() < slice {
            model.update(&points).expect("fixed valid points");
            updates += 1;
        }
        rates.push(updates as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[2]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_calibration_is_a_positive_rate() {
        let r = super::kmeans_updates_per_s(std::time::Duration::from_millis(50));
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
