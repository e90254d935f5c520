//! Pilots on a real SLURM cluster (4 emulated nodes started by scripts/slurm-cluster.sh, one per test): a Kafka
//! pilot's broker on its node's address carrying messages; a job asking for too many nodes, a job cancelled
//! outside the pilot, a broker that dies, a walltime that ends: each becomes the right pilot state with a readable
//! reason, and no job, step or process is left.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{pids_with, wait_gone};
use pilot_core::ops::smoke;
use pilot_core::pilots::description::{PilotPlan, ProcessEnvironment, RawDescription, RawSlurm};
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::record::PilotState;
use pilot_core::slurm_cluster::SlurmCluster;

fn never() -> bool {
    false
}

fn plan(cluster: &SlurmCluster, dir: &Path, nodes: u32, walltime_min: u32) -> PilotPlan {
    RawDescription {
        resource: Some("slurm://localhost".into()),
        nodes: Some(nodes),
        walltime_min: Some(walltime_min),
        working_directory: Some(dir.join("pilots")),
        slurm: Some(RawSlurm {
            conf: Some(cluster.conf()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .validate("test", &ProcessEnvironment)
    .unwrap()
}

fn jobs(cluster: &SlurmCluster) -> String {
    cluster
        .command("squeue", &["-h", "-o", "%i %T %R"])
        .unwrap()
}

fn steps(cluster: &SlurmCluster) -> String {
    cluster.command("squeue", &["-h", "-s"]).unwrap()
}

#[test]
fn a_one_node_kafka_pilot_serves_on_its_nodes_address() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    let mut pilot = Pilot::create(plan(&cluster, dir.path(), 1, 10), &never).unwrap();
    assert_eq!(pilot.state(), PilotState::Running);
    let d = pilot.details().unwrap().clone();
    assert_eq!(d.resource, "slurm://localhost");
    assert!(!d.job_id.is_empty());
    assert_eq!(d.nodes.len(), 1);
    assert_eq!(d.nodes[0].name, "n1");
    let addr = cluster.addresses()[0];
    assert_eq!(
        d.nodes[0].address.to_string(),
        addr.to_string(),
        "NodeAddr, not the login host"
    );
    let k = d.framework.kafka().unwrap();
    assert_eq!(k.bootstrap_servers, vec![format!("{addr}:9092")]);
    assert!(jobs(&cluster).contains(&format!("{} RUNNING", d.job_id)));
    assert!(
        steps(&cluster).contains(&format!("{}.", d.job_id)),
        "tansu runs as a step"
    );

    let report = smoke::run(k, "slurm-smoke", 500, 100).unwrap();
    assert!(report.exactly_once(), "{report:?}");

    // tansu and the srun that started it (both name the broker's address).
    let broker = pids_with(&format!("tcp://{addr}:9092"));
    assert!(!broker.is_empty(), "tansu on {addr}");
    pilot.cancel();
    assert_eq!(pilot.state(), PilotState::Canceled);
    assert!(
        broker.iter().all(|p| wait_gone(*p)),
        "tansu or its srun outlived the pilot"
    );
    assert_eq!(jobs(&cluster).trim(), "", "no job left");
    assert_eq!(steps(&cluster).trim(), "", "no step left");
}

#[test]
fn failures_become_pilot_states_with_reasons_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();

    // More nodes than the cluster has: PENDING (PartitionNodeLimit) is reported at once, not waited on.
    let t0 = Instant::now();
    let err = Pilot::create(plan(&cluster, dir.path(), 5, 10), &never)
        .err()
        .unwrap()
        .to_string();
    assert!(
        (err.contains("PartitionNodeLimit") || err.contains("PartitionConfig"))
            && err.contains("5 nodes"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(jobs(&cluster).trim(), "");

    // A job cancelled outside the pilot.
    let mut pilot = Pilot::create(plan(&cluster, dir.path(), 2, 10), &never).unwrap();
    let job = pilot.details().unwrap().job_id.clone();
    assert_eq!(pilot.details().unwrap().nodes.len(), 2);
    cluster.command("scancel", &[&job]).unwrap();
    let t0 = Instant::now();
    while pilot.poll() == PilotState::Running && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(pilot.state(), PilotState::Canceled);
    let reason = pilot.record().reason.clone().unwrap();
    assert!(reason.contains("cancelled outside the pilot"), "{reason}");

    // A broker that dies: the job fails with the broker's log named.
    let mut pilot = Pilot::create(plan(&cluster, dir.path(), 1, 10), &never).unwrap();
    let addr = pilot.details().unwrap().nodes[0].address;
    // The broker itself, not the srun that started it.
    let pid = *pids_with(&format!("tcp://{addr}:9092"))
        .iter()
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("tansu"))
        })
        .expect("tansu runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t0 = Instant::now();
    while pilot.poll() == PilotState::Running && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(pilot.state(), PilotState::Failed);
    let reason = pilot.record().reason.clone().unwrap();
    assert!(reason.contains("tansu"), "{reason}");
    let t0 = Instant::now();
    while !jobs(&cluster).trim().is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(jobs(&cluster).trim(), "", "the failed pilot's job is gone");
    assert_eq!(steps(&cluster).trim(), "");
}

#[test]
fn the_walltime_ends_the_pilot_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    let mut pilot = Pilot::create(plan(&cluster, dir.path(), 1, 1), &never).unwrap();
    let addr = pilot.details().unwrap().nodes[0].address;
    let broker = pids_with(&format!("tcp://{addr}:9092"));
    // SLURM enforces the 1-minute limit itself (SIGTERM to the steps, then the job is TIMEOUT).
    let state = pilot.supervise(&never, Duration::from_millis(500));
    assert_eq!(state, PilotState::Done);
    let reason = pilot.record().reason.clone().unwrap();
    assert!(reason.contains("walltime"), "{reason}");
    assert!(
        broker.iter().all(|p| wait_gone(*p)),
        "tansu stopped at the walltime"
    );
    assert_eq!(jobs(&cluster).trim(), "");
}
