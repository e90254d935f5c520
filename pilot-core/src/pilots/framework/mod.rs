//! Framework plugins: what a pilot boots on its nodes. Each plugin implements [`plugin::Framework`] in a module of its own:
//! which ports it needs per node, how to start on an allocation (or join a parent pilot's cluster), how readiness
//! is judged from the outside, how liveness is checked, which node does what, what connection details it reports,
//! and how it stops.
//!
//! - [`kafka`]: Kafka brokers (tansu, Apache Kafka in KRaft mode, or external ones).
//! - [`spark`]: an Apache Spark standalone cluster from the pyspark wheel (master and one worker per node).
//! - [`dask`]: a Dask distributed cluster (scheduler and workers per node).
//! - [`flink`]: an Apache Flink standalone session cluster from the apache-flink-libraries wheel's jars
//!   (JobManager and one TaskManager per node).
//! - [`none`]: nothing, the nodes are for producers and consumers (a compute pilot).
//!
//! - [`plugin`]: the [`plugin::Framework`] trait every plugin implements, what it is started with, and the
//!   readiness and stop helpers they share; [`details`]: what they report (connection details, node roles).
//!
//! Adding a framework is a module here, a [`details::FrameworkDetails`] variant and a line in [`framework_for`].

pub mod dask;
pub mod details;
pub mod flink;
pub mod kafka;
pub mod none;
pub mod plugin;
pub mod spark;

use crate::pilots::description::FrameworkPlan;
use plugin::Framework;

/// The plugin for a plan.
pub fn framework_for(plan: &FrameworkPlan) -> Box<dyn Framework> {
    match plan {
        FrameworkPlan::Kafka(k) => Box::new(kafka::KafkaFramework::new(k.clone())),
        FrameworkPlan::Spark(s) => Box::new(spark::SparkFramework::new(s.clone())),
        FrameworkPlan::Dask(d) => Box::new(dask::DaskFramework::new(d.clone())),
        FrameworkPlan::Flink(f) => Box::new(flink::FlinkFramework::new(f.clone())),
        FrameworkPlan::None => Box::new(none::NoFramework),
    }
}
