//! Startup time of a tansu pilot (submit -> the broker lists itself in metadata), median of 10 (the paper's
//! Figure 6 for Kafka): on this machine (`local://`) and on a real SLURM cluster of 4 emulated nodes started by
//! `scripts/slurm-cluster.sh` (`slurm://localhost`: sbatch, wait for RUNNING, the broker as a job step), with
//! 1 and 4 nodes. Prints figures; asserts nothing.
//!
//!     cargo bench -p pilot-core --bench startup [-- RUNS]

use std::time::Instant;

use pilot_core::description::{PilotPlan, ProcessEnvironment, RawDescription, RawSlurm};
use pilot_core::pilot::Pilot;
use pilot_core::slurm_cluster::SlurmCluster;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn measure(label: &str, plan: &PilotPlan, runs: usize) -> anyhow::Result<()> {
    let (mut startup, mut cancel) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut p = Pilot::create(plan.clone(), &|| false)?;
        startup.push(p.details().and_then(|d| d.startup_s).unwrap_or(f64::NAN));
        let t0 = Instant::now();
        p.cancel();
        cancel.push(t0.elapsed().as_secs_f64());
    }
    let (min, max) = (
        startup.iter().cloned().fold(f64::INFINITY, f64::min),
        startup.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "{label:<34} startup median {:>7.1} ms (min {:>6.1}, max {:>6.1}) over {runs} runs; cancel median {:>6.1} ms",
        median(&mut startup) * 1e3,
        min * 1e3,
        max * 1e3,
        median(&mut cancel) * 1e3
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let base = RawDescription {
        working_directory: Some(dir.path().join("pilots")),
        ..Default::default()
    };
    for nodes in [1, 4] {
        let plan = RawDescription {
            nodes: Some(nodes),
            ..base.clone()
        }
        .validate("bench", &ProcessEnvironment)?;
        measure(&format!("local://, {nodes} node(s)"), &plan, runs)?;
    }
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).map_err(anyhow::Error::msg)?;
    for nodes in [1, 4] {
        let plan = RawDescription {
            resource: Some("slurm://localhost".into()),
            nodes: Some(nodes),
            slurm: Some(RawSlurm {
                conf: Some(cluster.conf()),
                ..Default::default()
            }),
            ..base.clone()
        }
        .validate("bench", &ProcessEnvironment)?;
        measure(&format!("slurm://localhost, {nodes} node(s)"), &plan, runs)?;
    }
    Ok(())
}
