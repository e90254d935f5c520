//! Tasks on a pilot's nodes: P copies of a command per node (MASS producers, MASA consumers), started through
//! the pilot's resource backend so they land where the pilot's nodes are, each told who it is.
//!
//! In the command's arguments `{node}`, `{node_address}`, `{process_index}` (global, 0-based, node-major),
//! `{local_index}` (on its node), `{bootstrap}` and `{pilot}` are replaced; the same values are in the
//! environment as `PILOT_NODE`, `PILOT_NODE_ADDRESS`, `PILOT_PROCESS_INDEX`, `PILOT_LOCAL_INDEX`,
//! `PILOT_BOOTSTRAP`, `PILOT_ID`. Output goes to `<pilot dir>/tasks/<node>-<local index>.log`.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::backend::{Node, ResourceBackend};
use crate::error::{PilotError, Result};
use crate::pilot::{NodeInfo, NodeRole, PilotDetails};
use crate::process::{LaunchSpec, ManagedChild};

/// Which of the cluster's nodes get tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSelection {
    /// Every node of this pilot.
    Own,
    /// This pilot's nodes that run no broker.
    Compute,
    /// Every node of the cluster (parents' too).
    All,
}

/// One task's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub node: String,
    pub process_index: usize,
    pub status: Option<ExitStatus>,
    pub log: PathBuf,
}

impl TaskResult {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

fn select(d: &PilotDetails, which: NodeSelection) -> Vec<&NodeInfo> {
    d.nodes
        .iter()
        .filter(|n| match which {
            NodeSelection::All => true,
            NodeSelection::Own => n.pilot_id == d.id,
            NodeSelection::Compute => n.pilot_id == d.id && n.role == NodeRole::Compute,
        })
        .collect()
}

/// Start `processes_per_node` copies of `command` on the selected nodes and wait for all of them (up to
/// `timeout`; stragglers are ended and reported without a status).
pub fn run_per_node(
    details: &PilotDetails,
    backend: &mut dyn ResourceBackend,
    which: NodeSelection,
    processes_per_node: usize,
    command: &[String],
    timeout: Duration,
) -> Result<Vec<TaskResult>> {
    run_per_node_until(
        details,
        backend,
        which,
        processes_per_node,
        command,
        timeout,
        &|| false,
    )
}

/// [`run_per_node`] that also ends its tasks (SIGTERM, then SIGKILL after 5 s) as soon as `stop()` says so, e.g.
/// on Ctrl-C; the results then show how each task ended.
pub fn run_per_node_until(
    details: &PilotDetails,
    backend: &mut dyn ResourceBackend,
    which: NodeSelection,
    processes_per_node: usize,
    command: &[String],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<TaskResult>> {
    let (program, args) = command.split_first().ok_or_else(|| {
        PilotError::invalid("command line", "no command given to run on the nodes")
    })?;
    let nodes = select(details, which);
    if nodes.is_empty() {
        return Err(PilotError::invalid(
            "command line",
            format!("pilot {} has no {which:?} nodes to run on", details.id),
        ));
    }
    let bootstrap = details.framework.kafka().bootstrap();
    let dir = details.directory.join("tasks");
    let mut running: Vec<(TaskResult, ManagedChild)> = Vec::new();
    for (ni, n) in nodes.iter().enumerate() {
        for local in 0..processes_per_node {
            let index = ni * processes_per_node + local;
            let vars = [
                ("node", n.name.clone()),
                ("node_address", n.address.to_string()),
                ("process_index", index.to_string()),
                ("local_index", local.to_string()),
                ("bootstrap", bootstrap.clone()),
                ("pilot", details.id.clone()),
            ];
            let fill = |s: &str| {
                vars.iter().fold(s.to_string(), |acc, (k, v)| {
                    acc.replace(&format!("{{{k}}}"), v)
                })
            };
            let log = dir.join(format!("{}-{local}.log", n.name));
            let spec = LaunchSpec {
                label: format!("task {index} on {}", n.name),
                program: PathBuf::from(fill(program)),
                args: args.iter().map(|a| fill(a)).collect(),
                env: vars
                    .iter()
                    .map(|(k, v)| {
                        let name = if *k == "pilot" {
                            "PILOT_ID".to_string()
                        } else {
                            format!("PILOT_{}", k.to_uppercase())
                        };
                        (name, v.clone())
                    })
                    .collect(),
                cwd: std::env::current_dir()
                    .map_err(|e| PilotError::io("reading", "current directory", e))?,
                log: log.clone(),
            };
            let node = Node {
                name: n.name.clone(),
                address: n.address,
            };
            let child = backend.launch(&node, &spec)?;
            running.push((
                TaskResult {
                    node: n.name.clone(),
                    process_index: index,
                    status: None,
                    log,
                },
                child,
            ));
        }
    }
    let t0 = Instant::now();
    loop {
        let mut done = true;
        for (r, c) in running.iter_mut() {
            if r.status.is_none() {
                r.status = c.try_wait()?;
                done &= r.status.is_some();
            }
        }
        if done {
            break;
        }
        if t0.elapsed() > timeout {
            for (_, c) in running.iter_mut() {
                c.terminate(Duration::from_secs(2));
            }
            break;
        }
        if stop() {
            for (r, c) in running.iter_mut() {
                if r.status.is_none() {
                    c.terminate(Duration::from_secs(5));
                    r.status = c.try_wait()?;
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(running.into_iter().map(|(r, _)| r).collect())
}
