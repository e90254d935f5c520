//! Framework plugins: what a pilot boots on its nodes. Each plugin implements [`Framework`]: which ports it
//! needs per node, how to start on an allocation (or join a parent pilot's cluster), how readiness is judged,
//! how liveness is checked, what connection details it reports, and how it stops. Kafka is the first
//! ([`kafka::KafkaFramework`]); Spark or Dask would be further implementations of the same trait.

pub mod kafka;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{Allocation, ResourceBackend};
use crate::error::Result;

/// What a framework knows at start: its pilot and, when extending, the parent's details.
pub struct StartContext<'a> {
    pub pilot_id: &'a str,
    pub pilot_dir: &'a Path,
    /// The parent pilot's framework details when this pilot extends one.
    pub parent: Option<&'a FrameworkDetails>,
}

/// Connection details a framework reports (serialised into the pilot's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "framework", rename_all = "kebab-case")]
pub enum FrameworkDetails {
    Kafka(kafka::KafkaDetails),
}

impl FrameworkDetails {
    /// The Kafka details (every framework today is Kafka).
    pub fn kafka(&self) -> &kafka::KafkaDetails {
        match self {
            FrameworkDetails::Kafka(k) => k,
        }
    }
}

/// A framework plugin, driven by [`crate::pilot::Pilot`].
pub trait Framework: Send {
    /// Ports every node must have free.
    fn ports(&self) -> Vec<u16>;

    /// Launch the framework's processes on the allocation's nodes.
    fn start(
        &mut self,
        backend: &mut dyn ResourceBackend,
        alloc: &Allocation,
        ctx: &StartContext,
    ) -> Result<()>;

    /// Block until the framework really serves clients, a process dies, `timeout` passes, or `interrupted()`.
    fn wait_ready(&mut self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<()>;

    /// Err when a framework process has exited.
    fn check(&mut self) -> Result<()>;

    /// Connection details for clients.
    fn details(&self) -> FrameworkDetails;

    /// Log files of the framework's processes.
    fn logs(&self) -> Vec<std::path::PathBuf>;

    /// Stop every process (SIGTERM, then SIGKILL after `grace`).
    fn stop(&mut self, grace: Duration);
}
