//! Generation alone (no broker): messages/s each source produces on one core. Prints figures.
//!
//!     cargo bench -p mass --bench generate

use std::time::Instant;

use mass::source::{ClusterParams, ClusterSource, Source, StaticSource};
use pilot_core::contract::message::Encoding;

fn rate(name: &str, src: &mut dyn Source, seconds: f64) {
    // Warm up, then measure for `seconds`.
    for i in 0..100 {
        std::hint::black_box(src.next(i, 0));
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while t0.elapsed().as_secs_f64() < seconds {
        for _ in 0..50 {
            bytes += std::hint::black_box(src.next(n, n)).len();
            n += 1;
        }
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{name:<44} {:>10.0} msg/s  {:>8.1} MB/s  {:>7.2} us/msg  ({} B/msg)",
        n as f64 / s,
        bytes as f64 / s / 1e6,
        s / n as f64 * 1e6,
        bytes as u64 / n
    );
}

fn main() {
    let p = ClusterParams::default();
    println!("generation alone, one thread, 5,000 x 3-D points per message, k = 10");
    let mut c = ClusterSource::new(p.clone(), 0, Encoding::Envelope).unwrap();
    rate("cluster, envelope (fresh points)", &mut c, 2.0);
    let mut t = ClusterSource::new(p.clone(), 0, Encoding::PointsText).unwrap();
    rate("cluster, points-text (the paper's form)", &mut t, 2.0);
    let mut s = StaticSource::from_source(Box::new(
        ClusterSource::new(p, 0, Encoding::Envelope).unwrap(),
    ));
    rate("static (one block resent)", &mut s, 1.0);
}
