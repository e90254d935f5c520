//! What is known about a pilot, as every part reads it: its [`PilotRecord`] (plan, state, manager, details), its
//! [`PilotState`], and the [`PilotDetails`] clients connect with. Plain data: the store persists it, the pilot
//! updates it, the operations on running pilots read it.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::pilots::description::PilotPlan;
use crate::pilots::framework::details::{FrameworkDetails, KafkaDetails, NodeRole};

/// Everything known about one pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotRecord {
    pub id: String,
    pub plan: PilotPlan,
    pub state: PilotState,
    /// Why the pilot failed or ended.
    pub reason: Option<String>,
    /// The process that manages the pilot (foreground CLI or detached agent).
    pub manager_pid: Option<u32>,
    /// The manager's start time (clock ticks since boot), so a reused pid is not mistaken for it.
    pub manager_start_ticks: Option<u64>,
    /// UTC, RFC 3339.
    pub created_utc: String,
    /// UTC, RFC 3339.
    pub updated_utc: String,
    /// Connection details, once the framework has started.
    pub details: Option<PilotDetails>,
}

/// A pilot's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PilotState {
    /// Described and given an id; nothing allocated yet.
    New,
    /// Nodes being allocated or the framework booting.
    Pending,
    /// The framework serves clients.
    Running,
    /// Ended on its own (walltime).
    Done,
    /// Ended by an error; the record's reason says which.
    Failed,
    /// Ended by a cancel request.
    Canceled,
}

impl PilotState {
    /// Done, Failed or Canceled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PilotState::Done | PilotState::Failed | PilotState::Canceled
        )
    }
}

impl std::fmt::Display for PilotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// One node of the pilot's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub address: IpAddr,
    /// The pilot that owns the node.
    pub pilot_id: String,
    pub role: NodeRole,
}

/// Connection details: what a client needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotDetails {
    pub id: String,
    pub resource: String,
    /// The backend's job id.
    pub job_id: String,
    /// Every node of the cluster, parents' first.
    pub nodes: Vec<NodeInfo>,
    pub framework: FrameworkDetails,
    /// This pilot's directory (state and logs).
    pub directory: PathBuf,
    /// Log files of this pilot's framework processes.
    pub logs: Vec<PathBuf>,
    /// Seconds from submit to ready.
    pub startup_s: Option<f64>,
    pub parent: Option<String>,
    /// The Kafka pilot whose brokers this pilot's tasks use (`broker_pilot`), and its details at start.
    #[serde(default)]
    pub broker_pilot: Option<String>,
    #[serde(default)]
    pub broker: Option<KafkaDetails>,
}

impl PilotDetails {
    /// The Kafka cluster this pilot's clients use: its own (a Kafka pilot) or its broker pilot's.
    pub fn kafka(&self) -> Option<&KafkaDetails> {
        self.framework.kafka().or(self.broker.as_ref())
    }
}
