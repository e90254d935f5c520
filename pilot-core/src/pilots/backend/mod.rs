//! Resource backends: where a pilot's nodes come from and how processes are launched on them.
//!
//! A [`ResourceBackend`] allocates an [`Allocation`] (a job id and its [`Node`]s with their addresses), launches
//! long-running framework processes on a node ([`ResourceBackend::launch`]) and short set-up commands
//! ([`ResourceBackend::run`]), and releases the allocation. The local backend ([`local::LocalBackend`]) treats
//! slots on this host as nodes, each with its own loopback address; [`slurm::SlurmBackend`] makes a pilot a
//! placeholder SLURM job and runs framework processes as its steps.

pub mod local;
pub mod slurm;

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pilots::description::PilotPlan;
use crate::pilots::process::{LaunchSpec, ManagedChild, ProcessRef};

/// One node of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name the resource manager uses for it.
    pub name: String,
    /// The address services on this node listen on (never a login host's).
    pub address: IpAddr,
}

/// What a backend handed out for one pilot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Backend job id (local: `local-<pid>-<n>`).
    pub job_id: String,
    pub nodes: Vec<Node>,
}

/// The batch job behind an allocation, as its resource manager reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub job_id: String,
    /// The manager's own word (SLURM: PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, ...).
    pub state: String,
    pub reason: String,
}

/// A resource manager.
pub trait ResourceBackend: Send {
    /// Short name for messages ("local").
    fn name(&self) -> &str;

    /// Obtain `plan.nodes` nodes. Blocks until they are usable or fails with the reason.
    /// `pilot_dir` is the pilot's own directory (for lock files, scripts, logs).
    fn allocate(&mut self, plan: &PilotPlan, ports: &[u16], pilot_dir: &Path)
        -> Result<Allocation>;

    /// Start a long-running process on `node`.
    fn launch(&mut self, node: &Node, spec: &LaunchSpec) -> Result<ManagedChild>;

    /// Run a short command on `node` to completion.
    fn run(&mut self, node: &Node, spec: &LaunchSpec, timeout: Duration) -> Result<ExitStatus>;

    /// Give the allocation back. Idempotent.
    fn release(&mut self) -> Result<()>;

    /// The batch job's state, for backends that have one (local: none).
    fn job_status(&mut self) -> Option<JobStatus> {
        None
    }

    /// Ask every task launched in this allocation to end (SIGTERM) the scheduler's way, where the launcher does
    /// not pass a signal on as itself; true when done. SLURM's `srun` turns a SIGTERM into a kill of its step
    /// (the task sees SIGKILL after the step's short grace), so a graceful stop goes through `scancel
    /// --signal=TERM`. Local: false (the caller signals the processes).
    fn terminate_tasks(&mut self) -> bool {
        false
    }

    /// Send `signal` to a process this backend launched (a fault): locally by pid, checked against its start
    /// time; on SLURM through the scheduler to the process's step. Says what was hit.
    fn signal(
        &mut self,
        process: &ProcessRef,
        signal: crate::pilots::process::Signal,
    ) -> Result<String> {
        crate::pilots::process::signal_process(process.pid, process.start_ticks, signal)
            .map_err(|e| crate::error::PilotError::invalid("fault", e.to_string()))
    }

    /// Set a node's state in the resource manager (a fault: down or drain, with `reason`). Local nodes have none.
    fn set_node_state(
        &mut self,
        node: &str,
        state: crate::pilots::backend::NodeState,
        _reason: &str,
    ) -> Result<String> {
        Err(crate::error::PilotError::invalid(
            "fault",
            format!(
                "node {node} cannot be set {}: {} has no node states (SLURM has)",
                state.as_str(),
                self.name()
            ),
        ))
    }

    /// Cancel the allocation's batch job from outside its pilot; `None` where there is no job (local).
    fn cancel_job(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Node states a backend can set (SLURM's; a fault sets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Down,
    Drain,
}

impl NodeState {
    /// `scontrol update state=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Down => "down",
            NodeState::Drain => "drain",
        }
    }
}
