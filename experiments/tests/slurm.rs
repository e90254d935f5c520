//! The full pipeline on a real SLURM cluster (4 emulated nodes, scripts/slurm-cluster.sh): a Kafka broker pilot
//! (n1), a framework-free MASS pilot (n2) and MASA pilot (n3) that use its brokers, the MASA pilot extended by a
//! second one (n4); MASS and MASA run as steps of their pilots' jobs; the cluster's metadata lists only the broker
//! pilot's broker; every message is accounted for and no job is left afterwards. And an experiment file run on the
//! cluster through the runner's compute pilots.

use std::path::Path;
use std::time::Duration;

use pilot_core::pilots::description::{ProcessEnvironment, RawDescription, RawSlurm};
use pilot_core::pilots::pilot::{task_backend, Pilot};
use pilot_core::pilots::tasks::NodeSelection;
use pilot_core::slurm_cluster::SlurmCluster;

mod common;
use common::apps;

/// What a test pilot is.
enum Role<'a> {
    Broker,
    /// A framework-free pilot using this broker pilot's brokers.
    Compute(&'a str),
    /// An extension of this (compute) pilot.
    Extends(&'a str),
}

fn pilot(cluster: &SlurmCluster, dir: &Path, role: Role) -> Pilot {
    let plan = RawDescription {
        resource: Some("slurm://localhost".into()),
        nodes: Some(1),
        walltime_min: Some(15),
        working_directory: Some(dir.join("pilots")),
        framework: match role {
            Role::Broker => None,
            _ => Some(pilot_core::pilots::description::FrameworkKind::None),
        },
        parent: match role {
            Role::Extends(p) => Some(p.to_string()),
            _ => None,
        },
        broker_pilot: match role {
            Role::Compute(b) => Some(b.to_string()),
            _ => None,
        },
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

/// `experiments run FILE --results RESULTS` on `cluster`.
fn run_on(cluster: &SlurmCluster, file: &Path, results: &Path) -> std::process::Output {
    common::experiments_with(
        &[
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ],
        &[("SLURM_CONF", cluster.conf().to_str().unwrap())],
    )
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
    let mut broker = pilot(&cluster, dir.path(), Role::Broker);
    let mut producers = pilot(&cluster, dir.path(), Role::Compute(broker.id()));
    let mut consumers = pilot(&cluster, dir.path(), Role::Compute(broker.id()));
    let mut more_consumers = pilot(&cluster, dir.path(), Role::Extends(consumers.id()));
    let nodes: Vec<String> = [&broker, &producers, &consumers, &more_consumers]
        .iter()
        .map(|p| own_node(p))
        .collect();
    assert_eq!(nodes, vec!["n1", "n2", "n3", "n4"]);
    let conn = broker.connection().unwrap();
    // Three more pilots, one broker: compute pilots never add brokers.
    let brokers = pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .brokers()
    .unwrap();
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    for p in [&producers, &consumers, &more_consumers] {
        assert_eq!(
            p.connection().unwrap().bootstrap,
            conn.bootstrap,
            "compute pilots hand on the broker pilot's brokers"
        );
    }
    assert!(conn
        .bootstrap
        .starts_with(&cluster.addresses()[0].to_string()));
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .create_topic("pipeline", 4, 1)
    .unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let mut reports =
        pilot_core::contract::telemetry::TelemetryReader::new(&conn, "pipeline-metrics").unwrap();
    let masa_cmd: Vec<String> = [
        masa.display().to_string(),
        "run".into(),
        "--bootstrap-servers".into(),
        "{bootstrap}".into(),
        "--topic".into(),
        "pipeline".into(),
        "--group".into(),
        "g".into(),
        "--metrics-topic".into(),
        "pipeline-metrics".into(),
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
            pilot_core::pilots::tasks::run(
                &d,
                backend.as_mut(),
                NodeSelection::Own,
                1,
                &cmd,
                Duration::from_secs(180),
                &|| false,
            )
            .unwrap()
        })
    };
    let c3 = spawn(&consumers);
    let c4 = spawn(&more_consumers);
    // Producers start once both consumers hold partitions.
    pilot_core::contract::telemetry::wait_for_group(
        &mut reports,
        "g",
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
    let produced = pilot_core::pilots::tasks::run(
        &pd,
        task_backend(producers.record()).as_mut(),
        NodeSelection::Own,
        1,
        &mass_cmd,
        Duration::from_secs(120),
        &|| false,
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

/// An experiment file on the SLURM cluster: the runner's broker pilot and its two compute pilots are SLURM jobs,
/// MASS and MASA run as their steps, the cluster lists one broker, every message arrives.
#[test]
fn an_experiment_runs_on_slurm_through_compute_pilots() {
    apps();
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    let file = dir.path().join("slurm-exp.toml");
    std::fs::write(
        &file,
        "name = \"slurm-exp\"\n[fixed]\nresource = \"slurm://localhost\"\nconsumer_idle_s = 2.0\n\"mass.messages\" = 300\n\"mass.points_per_message\" = 20\n\"masa.processor\" = \"none\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    // `experiments run FILE` on the cluster; its output on failure.
    let run = || {
        let o = run_on(&cluster, &file, &results);
        assert!(o.status.success(), "{}", common::text(&o));
    };
    run();
    let t = experiments::results::Table::read(&results.join("slurm-exp/results.csv")).unwrap();
    let r = &t.rows[0];
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(r["brokers_in_metadata"], "1");
    assert_eq!(
        (r["produced_msgs"].as_str(), r["received_msgs"].as_str()),
        ("300", "300")
    );
    let m = experiments::results::Manifest::read(&results.join("slurm-exp/manifest.json")).unwrap();
    assert_eq!(
        m.runs[0].job_ids.len(),
        3,
        "three SLURM jobs: {:?}",
        m.runs[0]
    );

    // Autoscaled on SLURM: the controller's processing pilots are SLURM jobs of one node each (two fit beside
    // the broker and producer jobs on the 4-node cluster), and nothing is lost across the scale events.
    std::fs::write(
        &file,
        "name = \"slurm-elastic\"\n[fixed]\nresource = \"slurm://localhost\"\nscaling = \"autoscaled\"\n\"mass.rate_profile\" = \"steps:40@5,160@10,40@8\"\n\"mass.points_per_message\" = 20\n\"masa.processor\" = \"none\"\n\"masa.cost_ms_per_message\" = 10.0\n[autoscale]\ndecision_interval_s = 2.0\nwarmup_s = 3.0\nscale_down_delay_s = 3.0\ncatch_up_s = 10.0\nmax_consumers = 2\n",
    )
    .unwrap();
    run();
    let t = experiments::results::Table::read(&results.join("slurm-elastic/results.csv")).unwrap();
    let r = &t.rows[0];
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(
        (
            r["produced_msgs"].as_str(),
            r["received_msgs"].as_str(),
            r["missing_msgs"].as_str()
        ),
        ("2120", "2120", "0")
    );
    assert!(r["scale_events"].parse::<f64>().unwrap() >= 1.0, "{r:?}");
    let run = results
        .join("slurm-elastic/runs")
        .join(format!("{}-r0", r["point"]));
    let decisions = std::fs::read_to_string(run.join("decisions.csv")).unwrap();
    assert!(
        decisions.contains("started consumer 1 on pilot"),
        "{decisions}"
    );
}

/// Issue 14: a SLURM node downed under an autoscaled processing pilot. SLURM ends the job on it, the pilot turns
/// Failed with SLURM's reason, the controller replaces the capacity on another node, and every message is
/// accounted for. The node is put back into service afterwards, whatever happened.
#[test]
fn a_downed_node_fails_its_pilot_and_the_autoscaler_replaces_it() {
    apps();
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    struct Resume<'a>(&'a SlurmCluster);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            for n in ["n3", "n4"] {
                let _ = std::process::Command::new("scontrol")
                    .args(["update", &format!("nodename={n}"), "state=resume"])
                    .env("SLURM_CONF", self.0.conf())
                    .output();
            }
        }
    }
    let _resume = Resume(&cluster);
    let file = dir.path().join("node-down.toml");
    std::fs::write(
        &file,
        "name = \"slurm-node-down\"\n[fixed]\nresource = \"slurm://localhost\"\nscaling = \"autoscaled\"\nrun_timeout_s = 200.0\n\"mass.rate_msgs_per_s\" = 50\n\"mass.duration_s\" = 20.0\n\"mass.points_per_message\" = 20\n\"masa.processor\" = \"none\"\n[autoscale]\ndecision_interval_s = 2.0\nwarmup_s = 3.0\nmax_consumers = 2\n[[faults]]\nat_s = 5.0\naction = \"node-down\"\ntarget = \"consumer:0\"\nreason = \"fault injection test\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let o = run_on(&cluster, &file, &results);
    let out = common::text(&o);
    let t =
        experiments::results::Table::read(&results.join("slurm-node-down/results.csv")).unwrap();
    let r = &t.rows[0];
    assert!(o.status.success(), "{out}\n{r:?}");
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(
        (
            r["produced_msgs"].as_str(),
            r["received_msgs"].as_str(),
            r["missing_msgs"].as_str()
        ),
        ("1000", "1000", "0"),
        "{r:?}"
    );
    assert!(
        r["faults"].contains("node-down consumer:0 (node n"),
        "{r:?}"
    );
    assert!(
        r["consumer_processes_started"].parse::<f64>().unwrap() >= 2.0,
        "replaced: {r:?}"
    );
    let run = results
        .join("slurm-node-down/runs")
        .join(format!("{}-r0", r["point"]));
    let decisions = std::fs::read_to_string(run.join("decisions.csv")).unwrap();
    assert!(
        decisions.contains("consumer 0 exited on its own"),
        "{decisions}"
    );
    assert!(decisions.contains("Failed: SLURM job"), "{decisions}");
    assert!(
        decisions.contains("NODE_FAIL") || decisions.contains("lost its nodes"),
        "{decisions}"
    );
}
