//! Startup time of a 1-node tansu pilot (submit -> broker lists itself in metadata), median of 10 (the paper's
//! Figure 6 for Kafka, at one node). Prints figures; asserts nothing.
//!
//!     cargo bench -p pilot-core --bench startup [-- RUNS]

use std::time::Instant;

use pilot_core::description::{ProcessEnvironment, RawDescription};
use pilot_core::pilot::Pilot;

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let plan = RawDescription {
        working_directory: Some(dir.path().to_path_buf()),
        ..Default::default()
    }
    .validate("bench", &ProcessEnvironment)?;
    let mut startup = Vec::new();
    let mut cancel = Vec::new();
    for i in 0..runs {
        let mut p = Pilot::create(plan.clone(), &|| false)?;
        let s = p.details().and_then(|d| d.startup_s).unwrap_or(f64::NAN);
        let t0 = Instant::now();
        p.cancel();
        let c = t0.elapsed().as_secs_f64();
        println!(
            "run {:>2}: startup {:>7.1} ms, cancel {:>7.1} ms",
            i + 1,
            s * 1e3,
            c * 1e3
        );
        startup.push(s);
        cancel.push(c);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let (min, max) = (
        startup.iter().cloned().fold(f64::INFINITY, f64::min),
        startup.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "1-node tansu pilot startup (submit -> ready): median {:.1} ms over {runs} runs (min {:.1}, max {:.1}); cancel median {:.1} ms",
        median(&mut startup) * 1e3,
        min * 1e3,
        max * 1e3,
        median(&mut cancel) * 1e3
    );
    Ok(())
}
