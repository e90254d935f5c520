//! Start-up time of every framework's pilot, submit to ready, median of 10 (the paper's Figure 6): Kafka (tansu:
//! the broker lists itself in metadata), Spark (the master lists an alive worker on every node), Dask (the
//! scheduler lists every node's workers), Flink (the JobManager lists a TaskManager on every node); on this
//! machine (`local://`) and on a real SLURM cluster of 4 emulated nodes started like `scripts/slurm-cluster.sh`
//! (`slurm://localhost`: sbatch, wait for RUNNING, the framework's processes as job steps), with 1 and 4 nodes.
//! Prints figures; asserts nothing. Needs the frameworks (scripts/setup.sh --frameworks).
//!
//!     cargo bench -p pilot-core --bench startup [-- RUNS] [kafka|spark|dask|flink ...]

use std::time::Instant;

use pilot_core::pilots::description::{
    FrameworkKind, PilotPlan, ProcessEnvironment, RawDescription, RawSlurm,
};
use pilot_core::pilots::pilot::Pilot;
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
        "{label:<40} startup median {:>8.1} ms (min {:>8.1}, max {:>8.1}) over {runs} runs; cancel median {:>6.1} ms",
        median(&mut startup) * 1e3,
        min * 1e3,
        max * 1e3,
        median(&mut cancel) * 1e3
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let all = [
        FrameworkKind::Kafka,
        FrameworkKind::Spark,
        FrameworkKind::Dask,
        FrameworkKind::Flink,
    ];
    let chosen: Vec<FrameworkKind> = all
        .into_iter()
        .filter(|f| {
            args.iter().all(|a| a.parse::<usize>().is_ok()) || args.iter().any(|a| a == f.name())
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let base = RawDescription {
        working_directory: Some(dir.path().join("pilots")),
        ..Default::default()
    };
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).map_err(anyhow::Error::msg)?;
    for fw in chosen {
        for nodes in [1, 4] {
            let local = RawDescription {
                framework: Some(fw),
                nodes: Some(nodes),
                ..base.clone()
            };
            let plan = local.clone().validate("bench", &ProcessEnvironment)?;
            measure(
                &format!("{} local://, {nodes} node(s)", fw.name()),
                &plan,
                runs,
            )?;
            let plan = RawDescription {
                resource: Some("slurm://localhost".into()),
                slurm: Some(RawSlurm {
                    conf: Some(cluster.conf()),
                    ..Default::default()
                }),
                ..local
            }
            .validate("bench", &ProcessEnvironment)?;
            measure(
                &format!("{} slurm://localhost, {nodes} node(s)", fw.name()),
                &plan,
                runs,
            )?;
        }
    }
    Ok(())
}
