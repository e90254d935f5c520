//! The KMeans kernel alone, one core: a 5,000 x 3-D message against k = 10 centres, update (assign + sums +
//! Spark's rule) and score (assign every point to the updated model). Prints figures; asserts nothing.
//!
//!     cargo bench -p masa --bench kmeans

use std::time::Instant;

mod common;

fn main() {
    let (k, dims, n) = (10, 3, 5_000);
    let batches = common::kmeans_messages(64, n);
    let mut model = common::kmeans_model(k, dims);
    let mut labels = Vec::new();
    for b in &batches {
        model.update(b).unwrap();
    }
    let reps = 4000;
    let t0 = Instant::now();
    for i in 0..reps {
        model.update(&batches[i % batches.len()]).unwrap();
    }
    let update_us = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
    let t0 = Instant::now();
    for i in 0..reps {
        std::hint::black_box(
            model
                .assign(&batches[i % batches.len()], &mut labels)
                .unwrap(),
        );
    }
    let score_us = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
    println!("KMeans kernel, one thread, {n} x {dims}-D points, k = {k}:");
    println!("  update (assign + sums + Spark rule): {update_us:>7.1} us/message");
    println!("  score (assign to updated model):     {score_us:>7.1} us/message");
    println!(
        "  update + score:                      {:>7.1} us/message = {:.3} ms ({:.0} messages/s, {:.1} M points/s)",
        update_us + score_us,
        (update_us + score_us) / 1e3,
        1e6 / (update_us + score_us),
        n as f64 / (update_us + score_us)
    );
    println!("  peers on this kind of machine (notes): scikit-learn MiniBatchKMeans ~800 us, Spark update ~100,000 us");
}
