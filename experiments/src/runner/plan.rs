//! The pilots of a run: plans for the broker pilot (or a start-up run's framework pilot) and the compute
//! pilots that use it, started in this process, and cancelled together when the run is over.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use pilot_core::pilots::description::{Environment, FrameworkKind, PilotPlan, RawDescription};
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::record::PilotDetails;

use super::RunError;
use crate::spec::{Point, RunKind};

/// The pilots of one pipeline run, by role; cancelled compute pilots first, then the broker, whatever happened.
pub struct RunPilots {
    pub broker: Pilot,
    pub producers: Option<Pilot>,
    pub processing: Option<Pilot>,
}

impl Drop for RunPilots {
    fn drop(&mut self) {
        for p in [self.processing.as_mut(), self.producers.as_mut()]
            .into_iter()
            .flatten()
        {
            p.cancel();
        }
        self.broker.cancel();
    }
}

/// Walltime of a run's pilots: the run's timeout and five minutes.
pub(crate) fn walltime_min(point: &Point) -> u32 {
    (point.layout.run_timeout_s / 60.0).ceil() as u32 + 5
}

/// The plan of a run's framework pilot: for pipeline runs the broker pilot (`broker_nodes` of the layout's
/// distribution), for start-up runs the layout's framework on `framework_nodes`.
pub fn framework_plan(
    point: &Point,
    dir: &Path,
    env: &dyn Environment,
) -> Result<PilotPlan, RunError> {
    let l = &point.layout;
    let (framework, nodes) = match l.kind {
        RunKind::Pipeline => (FrameworkKind::Kafka, l.broker_nodes),
        RunKind::Startup => (l.framework, l.framework_nodes),
    };
    RawDescription {
        resource: Some(l.resource.clone()),
        framework: Some(framework),
        nodes: Some(nodes),
        walltime_min: Some(walltime_min(point)),
        working_directory: Some(dir.to_path_buf()),
        kafka: (framework == FrameworkKind::Kafka).then(|| {
            pilot_core::pilots::description::RawKafka {
                distribution: Some(l.distribution.clone()),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
    .validate("experiment", env)
    .map_err(RunError::from)
}

/// The plan of a framework-free compute pilot of `nodes` nodes whose tasks use the brokers of `broker_pilot`:
/// where a run's MASS or MASA processes go (they never become brokers, whatever the distribution).
pub fn compute_plan(
    point: &Point,
    nodes: u32,
    broker_pilot: &str,
    dir: &Path,
    env: &dyn Environment,
) -> Result<PilotPlan, RunError> {
    RawDescription {
        resource: Some(point.layout.resource.clone()),
        framework: Some(FrameworkKind::None),
        nodes: Some(nodes),
        walltime_min: Some(walltime_min(point)),
        working_directory: Some(dir.to_path_buf()),
        broker_pilot: Some(broker_pilot.to_string()),
        ..Default::default()
    }
    .validate("experiment", env)
    .map_err(RunError::from)
}

/// Start a pilot of `plan` in this process (it ends with the run), unless `shutdown` is raised meanwhile.
pub(crate) fn start(plan: PilotPlan, shutdown: &AtomicBool) -> Result<Pilot, RunError> {
    Ok(Pilot::create(plan, &|| shutdown.load(Ordering::SeqCst))?)
}

/// `settings` with `recommended` librdkafka properties added to its `kafka` table where it has none of its own.
pub(crate) fn with_kafka_defaults(
    settings: &toml::Table,
    recommended: pilot_core::contract::client::KafkaProperties,
) -> toml::Table {
    let mut out = settings.clone();
    let kafka = out
        .entry("kafka")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = kafka {
        for (k, v) in recommended {
            t.entry(k).or_insert(toml::Value::String(v));
        }
    }
    out
}

/// A started pilot's details (a Running pilot always has them).
pub(crate) fn details(p: &Pilot) -> Result<PilotDetails, RunError> {
    p.details().cloned().ok_or_else(|| {
        RunError::Pilot(pilot_core::PilotError::WrongState {
            id: p.id().to_string(),
            state: p.state().to_string(),
            message: "a running pilot has no details".into(),
        })
    })
}

/// Write a settings table as a TOML file.
pub(crate) fn toml_file(path: &Path, table: &toml::Table) -> Result<(), RunError> {
    let text = toml::to_string(table).map_err(|e| RunError::io(path, e))?;
    std::fs::write(path, text).map_err(|e| RunError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_kafka_properties_fill_in_under_the_points_own() {
        let point: toml::Table =
            toml::from_str("processor = \"kmeans\"\n[kafka]\n\"fetch.wait.max.ms\" = \"50\"\n")
                .unwrap();
        let tansu = pilot_core::contract::client::ClientProperties::for_distribution("tansu");
        let out = with_kafka_defaults(&point, tansu.consumer_properties());
        let k = out["kafka"].as_table().unwrap();
        assert_eq!(
            k["fetch.wait.max.ms"].as_str(),
            Some("50"),
            "the point's own wins"
        );
        assert_eq!(k["max.partition.fetch.bytes"].as_str(), Some("8388608"));
        assert_eq!(out["processor"].as_str(), Some("kmeans"));
        // What is written reads back as MASA settings that validate.
        let text = toml::to_string(&out).unwrap();
        let raw: masa::config::RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw.kafka.unwrap()["fetch.message.max.bytes"], "16777216");
    }
}
