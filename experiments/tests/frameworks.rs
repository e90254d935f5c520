//! Spark and Dask pilots, for real (pyspark and distributed from the frameworks' Python environment, Java 17), on
//! this machine's loopback nodes and on a local 4-node SLURM cluster:
//!
//! - a PySpark job (a sum over a range, spread over every worker) submitted through the pilot gives the right
//!   answer, computed on every worker; an extension's worker joins the master (3 alive workers); nothing is left
//!   after cancel;
//! - MASS processes run as Dask tasks on a Dask pilot produce into a Kafka pilot, MASA counts every message
//!   exactly once; an extension's workers join the scheduler;
//! - a Flink pilot (from the apache-flink-libraries wheel's jars) lists a TaskManager on every node, an
//!   extension's TaskManager joins the JobManager, every listener is on a node's address;
//! - the runner's compute pilots never add brokers (with apache-kafka a 3-broker pilot plus producer and
//!   processing pilots means exactly 3 server.properties).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pilot_core::pilots::description::{
    FrameworkKind, PilotPlan, ProcessEnvironment, RawDescription, RawSlurm,
};
use pilot_core::pilots::framework::details::FrameworkDetails;
use pilot_core::pilots::pilot::{task_backend, Pilot};
use pilot_core::pilots::tasks::NodeSelection;
use pilot_core::slurm_cluster::SlurmCluster;

fn plan(
    dir: &Path,
    framework: FrameworkKind,
    nodes: u32,
    slurm: Option<&SlurmCluster>,
    tweak: impl FnOnce(&mut RawDescription),
) -> PilotPlan {
    let mut raw = RawDescription {
        framework: Some(framework),
        nodes: Some(nodes),
        walltime_min: Some(20),
        working_directory: Some(dir.join("pilots")),
        ..Default::default()
    };
    if let Some(c) = slurm {
        raw.resource = Some("slurm://localhost".into());
        raw.slurm = Some(RawSlurm {
            conf: Some(c.conf()),
            ..Default::default()
        });
    }
    tweak(&mut raw);
    raw.validate("test", &ProcessEnvironment).expect(
        "the frameworks must be installed for these tests: run scripts/setup.sh --frameworks",
    )
}

const SUM_JOB: &str = r#"
import os, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("pilot-test-sum").getOrCreate()
sc = spark.sparkContext
n = int(sys.argv[1])
rdd = sc.parallelize(range(n), 8)
hosts = sorted(set(rdd.mapPartitions(lambda it: [os.environ.get("SPARK_LOCAL_IP", "?")]).collect()))
print("SUM", rdd.sum(), "HOSTS", ",".join(hosts))
spark.stop()
"#;

fn alive_spark_workers(d: &pilot_core::pilots::framework::details::SparkDetails) -> Vec<String> {
    let body = ureq_get(&format!("{}/json/", d.webui_url));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut hosts: Vec<String> = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "ALIVE")
        .map(|w| w["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

/// A plain HTTP GET with the standard library (the test checks what the pilot's own probe sees).
fn ureq_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn spark_pilot_runs_a_job_on_every_worker(slurm: Option<&SlurmCluster>) {
    let dir = tempfile::tempdir().unwrap();
    let mut spark = Pilot::create(
        plan(dir.path(), FrameworkKind::Spark, 2, slurm, |_| {}),
        &|| false,
    )
    .expect("a 2-node Spark pilot");
    let d = spark.details().unwrap().clone();
    let FrameworkDetails::Spark(sd) = &d.framework else {
        panic!("{:?}", d.framework)
    };
    let addrs: Vec<String> = d.nodes.iter().map(|n| n.address.to_string()).collect();
    let mut sorted = addrs.clone();
    sorted.sort();
    assert_eq!(alive_spark_workers(sd), sorted);
    let job = dir.path().join("sum.py");
    std::fs::write(&job, SUM_JOB).unwrap();
    let r = pilot_core::pilots::tasks::spark_submit(
        &d,
        task_backend(spark.record()).as_mut(),
        &[job.display().to_string(), "1000000".into()],
        Duration::from_secs(300),
        &|| false,
    )
    .unwrap();
    let log = std::fs::read_to_string(&r.log).unwrap();
    assert!(r.success(), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("SUM "))
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(
        line,
        format!("SUM 499999500000 HOSTS {}", sorted.join(",")),
        "the sum, computed on every worker"
    );
    // An extension's worker joins the parent's master.
    let mut more = Pilot::create(
        plan(dir.path(), FrameworkKind::Spark, 1, slurm, |r| {
            r.parent = Some(spark.id().to_string())
        }),
        &|| false,
    )
    .expect("a Spark extension");
    assert_eq!(alive_spark_workers(sd).len(), 3);
    let md = more.details().unwrap();
    assert_eq!(md.nodes.len(), 3, "the extension lists the cluster's nodes");
    more.cancel();
    spark.cancel();
    let leftovers = pids_under(dir.path());
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
}

/// Processes whose command line mentions `dir` (a pilot's processes all do).
fn pids_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let t0 = std::time::Instant::now();
    loop {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&needle) && pilot_core::pilots::process::pid_alive(pid) {
                    out.push(pid);
                }
            }
        }
        if out.is_empty() || t0.elapsed() > Duration::from_secs(10) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mass_as_dask_tasks(slurm: Option<&SlurmCluster>) {
    let (mass, masa) = common::apps();
    let dir = tempfile::tempdir().unwrap();
    let broker = Pilot::create(
        plan(dir.path(), FrameworkKind::Kafka, 1, slurm, |_| {}),
        &|| false,
    )
    .expect("tansu installed (scripts/setup.sh)");
    let mut dask = Pilot::create(
        plan(dir.path(), FrameworkKind::Dask, 2, slurm, |r| {
            r.broker_pilot = Some(broker.id().to_string())
        }),
        &|| false,
    )
    .expect("a 2-node Dask pilot");
    let conn = broker.connection().unwrap();
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .create_topic("dask-mass", 4, 1)
    .unwrap();
    let d = dask.details().unwrap().clone();
    assert_eq!(
        d.kafka().unwrap().bootstrap(),
        conn.bootstrap,
        "the broker pilot's brokers"
    );
    let results = dir.path().join("results");
    let cmd: Vec<String> = [
        mass.display().to_string(),
        "run".into(),
        "--bootstrap-servers".into(),
        "{bootstrap}".into(),
        "--topic".into(),
        "dask-mass".into(),
        "--messages".into(),
        "300".into(),
        "--points-per-message".into(),
        "50".into(),
        "--producer-id-base".into(),
        "{process_index}".into(),
        "--quiet".into(),
        "--results-dir".into(),
        results.join("p{process_index}").display().to_string(),
    ]
    .to_vec();
    let tasks = pilot_core::pilots::tasks::run(
        &d,
        task_backend(dask.record()).as_mut(),
        NodeSelection::Own,
        2,
        &cmd,
        Duration::from_secs(180),
        &|| false,
    )
    .unwrap();
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert!(
            t.success(),
            "{}",
            std::fs::read_to_string(&t.log).unwrap_or_default()
        );
    }
    let mut on: Vec<&str> = tasks.iter().map(|t| t.node.as_str()).collect();
    on.dedup();
    assert_eq!(on.len(), 2, "two copies on each node: {on:?}");
    // MASA counts every message exactly once.
    let out = std::process::Command::new(&masa)
        .args([
            "run",
            "--bootstrap-servers",
            &conn.bootstrap,
            "--kafka",
            "fetch.wait.max.ms=10",
            "--topic",
            "dask-mass",
            "--processor",
            "none",
            "--idle-timeout-s",
            "3",
            "--expect-messages",
            "1200",
            "--quiet",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // On failure, what the producers themselves reported, next to what MASA received.
    let producers = || {
        tasks
            .iter()
            .map(|t| std::fs::read_to_string(&t.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        out.status.success(),
        "{text}{}\nproducers:\n{}",
        String::from_utf8_lossy(&out.stderr),
        producers()
    );
    assert!(
        text.contains("received 1200 msgs") && text.contains("duplicates 0, rejected 0, missing 0"),
        "{text}\nproducers:\n{}",
        producers()
    );
    // An extension's workers join the scheduler.
    let mut more = Pilot::create(
        plan(dir.path(), FrameworkKind::Dask, 1, slurm, |r| {
            r.parent = Some(dask.id().to_string())
        }),
        &|| false,
    )
    .expect("a Dask extension");
    let FrameworkDetails::Dask(dd) = &d.framework else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_str(&ureq_get(&format!(
        "{}/json/identity.json",
        dd.dashboard_url
    )))
    .unwrap();
    assert_eq!(v["workers"].as_object().unwrap().len(), 3);
    assert_eq!(
        more.details().unwrap().kafka().unwrap().bootstrap(),
        conn.bootstrap,
        "an extension keeps the broker pilot"
    );
    more.cancel();
    dask.cancel();
    drop(broker);
    let leftovers = pids_under(dir.path());
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
}

fn flink_pilot_starts_extends_and_stops(slurm: Option<&SlurmCluster>) {
    let dir = tempfile::tempdir().unwrap();
    let mut flink = Pilot::create(
        plan(dir.path(), FrameworkKind::Flink, 2, slurm, |_| {}),
        &|| false,
    )
    .expect("a 2-node Flink pilot");
    let d = flink.details().unwrap().clone();
    let FrameworkDetails::Flink(fd) = &d.framework else {
        panic!("{:?}", d.framework)
    };
    let hosts = |v: &serde_json::Value| -> Vec<String> {
        let mut h: Vec<String> = v["taskmanagers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let p = t["path"].as_str().unwrap();
                p.split('@')
                    .nth(1)
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        h.sort();
        h
    };
    let tms = |fd: &pilot_core::pilots::framework::details::FlinkDetails| -> serde_json::Value {
        serde_json::from_str(&ureq_get(&format!("{}/taskmanagers", fd.rest_url))).unwrap()
    };
    let mut want: Vec<String> = d.nodes.iter().map(|n| n.address.to_string()).collect();
    want.sort();
    assert_eq!(hosts(&tms(fd)), want);
    let mut more = Pilot::create(
        plan(dir.path(), FrameworkKind::Flink, 1, slurm, |r| {
            r.parent = Some(flink.id().to_string())
        }),
        &|| false,
    )
    .expect("a Flink extension");
    assert_eq!(hosts(&tms(fd)).len(), 3);
    more.cancel();
    flink.cancel();
    let leftovers = pids_under(dir.path());
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
}

#[test]
fn flink_pilot_starts_extends_and_stops_locally() {
    flink_pilot_starts_extends_and_stops(None);
}

#[test]
fn spark_pilot_runs_a_pyspark_job_on_every_worker_locally() {
    spark_pilot_runs_a_job_on_every_worker(None);
}

#[test]
fn mass_processes_as_dask_tasks_produce_and_masa_counts_every_message_locally() {
    mass_as_dask_tasks(None);
}

#[test]
fn spark_dask_and_flink_pilots_on_the_local_slurm_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    spark_pilot_runs_a_job_on_every_worker(Some(&cluster));
    mass_as_dask_tasks(Some(&cluster));
    flink_pilot_starts_extends_and_stops(Some(&cluster));
}

#[test]
fn a_missing_framework_environment_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for fw in [
        FrameworkKind::Spark,
        FrameworkKind::Dask,
        FrameworkKind::Flink,
    ] {
        let e = RawDescription {
            framework: Some(fw),
            python_env: Some(dir.path().join("no-such-venv")),
            ..Default::default()
        }
        .validate("test", &ProcessEnvironment)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("scripts/setup.sh --frameworks") && e.contains("no-such-venv"),
            "{e}"
        );
    }
}

/// With apache-kafka (Kafka cannot run here: the generated files are what can be checked), a run of 3 broker
/// nodes plus producer and processing pilots has exactly 3 brokers: the runner's producer and processing pilots
/// are framework-free and only name the broker pilot.
#[test]
fn compute_pilots_never_become_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("kafka");
    std::fs::create_dir_all(home.join("bin")).unwrap();
    for s in ["kafka-server-start.sh", "kafka-storage.sh"] {
        std::fs::write(home.join("bin").join(s), "#!/bin/sh\n").unwrap();
    }
    let exp = dir.path().join("topology.toml");
    std::fs::write(
        &exp,
        "name = \"topology\"\n[fixed]\ndistribution = \"apache-kafka\"\nbroker_nodes = 3\nproducer_nodes = 2\nprocessing_nodes = 2\n\"mass.messages\" = 10\n",
    )
    .unwrap();
    struct Env(PathBuf);
    impl pilot_core::pilots::description::Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            (name == "KAFKA_HOME").then(|| self.0.display().to_string())
        }
    }
    let env = Env(home.clone());
    let e = experiments::spec::Experiment::from_file(&exp).unwrap();
    let point = &e.points[0];
    let pilots = dir.path().join("pilots");
    let broker = experiments::runner::framework_plan(point, &pilots, &env).unwrap();
    let producers = experiments::runner::compute_plan(point, 2, "pilot-b", &pilots, &env).unwrap();
    let processing = experiments::runner::compute_plan(point, 2, "pilot-b", &pilots, &env).unwrap();
    assert_eq!(broker.nodes, 3);
    assert!(broker
        .kafka()
        .is_some_and(|k| k.distribution.name() == "apache-kafka"));
    for p in [&producers, &processing] {
        assert_eq!(p.framework.kind(), FrameworkKind::None);
        assert_eq!(p.broker_pilot.as_deref(), Some("pilot-b"));
    }
    // The files Kafka would be started with: one server.properties per broker node, nothing for the others.
    let nodes: Vec<pilot_core::pilots::backend::Node> = (0..3)
        .map(|i| pilot_core::pilots::backend::Node {
            name: format!("c{i}"),
            address: format!("10.0.0.{}", i + 1).parse().unwrap(),
        })
        .collect();
    let k = broker.kafka().unwrap();
    let (cluster, kraft) =
        pilot_core::pilots::framework::kafka::apache::root_layout("pilot-b", &nodes, k);
    let launches = pilot_core::pilots::framework::kafka::apache::node_launches(
        "pilot-b",
        &PathBuf::from("/w/pilot-b"),
        &home,
        &cluster,
        &kraft,
        k,
    );
    let files: Vec<String> = launches
        .iter()
        .map(|l| l.properties_path.display().to_string())
        .collect();
    assert_eq!(
        files,
        vec![
            "/w/pilot-b/c0/server.properties",
            "/w/pilot-b/c1/server.properties",
            "/w/pilot-b/c2/server.properties"
        ]
    );
    assert_eq!(
        launches
            .iter()
            .map(|l| l
                .properties
                .lines()
                .find(|x| x.starts_with("controller.quorum.voters"))
                .unwrap())
            .collect::<Vec<_>>(),
        vec!["controller.quorum.voters=1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093"; 3]
    );
    for l in &launches {
        assert_eq!(
            l.start.program,
            home.join("bin/kafka-server-start.sh"),
            "{:?}",
            l.start
        );
        assert_eq!(l.start.args, vec![l.properties_path.display().to_string()]);
    }
}
