//! The full pipeline on a real SLURM cluster (4 emulated nodes, scripts/slurm-cluster.sh): a Kafka broker pilot
//! (n1), a MASS pilot (n2), a MASA pilot (n3) extended by a second MASA pilot (n4); MASS and MASA run as steps of
//! their pilots' jobs; every message is accounted for and no job is left afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pilot_core::description::{ProcessEnvironment, RawDescription, RawSlurm};
use pilot_core::pilot::{task_backend, Pilot};
use pilot_core::slurm_cluster::SlurmCluster;
use pilot_core::tasks::{run_per_node, NodeSelection};

fn apps() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_experiments"))
        .parent()
        .unwrap()
        .to_path_buf();
    if !dir.join("mass").exists() || !dir.join("masa").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "mass", "-p", "masa"])
            .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .unwrap()
            .success();
        assert!(ok, "building mass and masa");
    }
    (dir.join("mass"), dir.join("masa"))
}

fn pilot(cluster: &SlurmCluster, dir: &Path, parent: Option<&str>) -> Pilot {
    let plan = RawDescription {
        resource: Some("slurm://localhost".into()),
        nodes: Some(1),
        walltime_min: Some(15),
        working_directory: Some(dir.join("pilots")),
        parent: parent.map(String::from),
        slurm: Some(RawSlurm {
            conf: Some(cluster.conf()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .validate("test", &ProcessEnvironment)
    .unwrap();
    Pilot::create(plan, &|| false).unwrap()
}

fn own_node(p: &Pilot) -> String {
    let d = p.details().unwrap();
    d.nodes
        .iter()
        .find(|n| n.pilot_id == d.id)
        .unwrap()
        .name
        .clone()
}

#[test]
fn mass_and_masa_on_slurm_pilots_account_for_every_message() {
    let (mass, masa) = apps();
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    let mut broker = pilot(&cluster, dir.path(), None);
    let mut producers = pilot(&cluster, dir.path(), Some(broker.id()));
    let mut consumers = pilot(&cluster, dir.path(), Some(broker.id()));
    let mut more_consumers = pilot(&cluster, dir.path(), Some(consumers.id()));
    let nodes: Vec<String> = [&broker, &producers, &consumers, &more_consumers]
        .iter()
        .map(|p| own_node(p))
        .collect();
    assert_eq!(nodes, vec!["n1", "n2", "n3", "n4"]);
    let conn = broker.connection().unwrap();
    assert!(conn
        .bootstrap
        .starts_with(&cluster.addresses()[0].to_string()));
    pilot_core::admin::KafkaAdmin::new(&conn.bootstrap, &conn.client, Duration::from_secs(10))
        .create_topic("pipeline", 4, 1)
        .unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let masa_cmd: Vec<String> = [
        masa.display().to_string(),
        "run".into(),
        "--bootstrap-servers".into(),
        "{bootstrap}".into(),
        "--topic".into(),
        "pipeline".into(),
        "--group".into(),
        "g".into(),
        "--consumer-id".into(),
        "c-{node}".into(),
        "--processor".into(),
        "kmeans".into(),
        "--idle-timeout-s".into(),
        "4".into(),
        "--start-timeout-s".into(),
        "60".into(),
        "--interval-s".into(),
        "0.2".into(),
        "--quiet".into(),
        "--results-dir".into(),
        results.display().to_string(),
    ]
    .to_vec();
    let spawn = |p: &Pilot| {
        let (d, mut backend, cmd) = (
            p.details().unwrap().clone(),
            task_backend(p.record()),
            masa_cmd.clone(),
        );
        std::thread::spawn(move || {
            run_per_node(
                &d,
                backend.as_mut(),
                NodeSelection::Own,
                1,
                &cmd,
                Duration::from_secs(180),
            )
            .unwrap()
        })
    };
    let c3 = spawn(&consumers);
    let c4 = spawn(&more_consumers);
    // Producers start once both consumers hold partitions.
    masa::consumer::wait_for_group(
        &results,
        &["c-n3".into(), "c-n4".into()],
        4,
        Duration::from_secs(60),
        &|| false,
    )
    .unwrap();
    let mass_cmd: Vec<String> = vec![
        mass.display().to_string(),
        "run".into(),
        "--bootstrap-servers".into(),
        "{bootstrap}".into(),
        "--topic".into(),
        "pipeline".into(),
        "--messages".into(),
        "1000".into(),
        "--points-per-message".into(),
        "200".into(),
        "--quiet".into(),
        "--results-dir".into(),
        dir.path().join("producer").display().to_string(),
    ];
    let pd = producers.details().unwrap().clone();
    let produced = run_per_node(
        &pd,
        task_backend(producers.record()).as_mut(),
        NodeSelection::Own,
        1,
        &mass_cmd,
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(produced.len(), 1);
    assert!(
        produced[0].success(),
        "{}",
        std::fs::read_to_string(&produced[0].log).unwrap_or_default()
    );
    assert_eq!(produced[0].node, "n2");
    let got: Vec<_> = c3
        .join()
        .unwrap()
        .into_iter()
        .chain(c4.join().unwrap())
        .collect();
    let on: Vec<&str> = got.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(on, vec!["n3", "n4"]);
    let (acc, files) = masa::consumer::merge_accounting(std::slice::from_ref(&results)).unwrap();
    assert_eq!(files, 2);
    let t = acc.totals(Some(1000));
    assert_eq!(
        (t.received, t.duplicates, t.rejected, t.missing),
        (1000, 0, 0, 0)
    );

    for p in [
        &mut more_consumers,
        &mut consumers,
        &mut producers,
        &mut broker,
    ] {
        p.cancel();
    }
    let left = cluster.command("squeue", &["-h"]).unwrap();
    assert_eq!(left.trim(), "", "no job left");
}
