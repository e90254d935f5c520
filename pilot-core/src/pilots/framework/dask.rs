//! The Dask plugin: a `dask.distributed` cluster from PyPI's `distributed`.
//!
//! - The scheduler runs on the pilot's first node: `dask scheduler --host ADDR --port P --dashboard-address
//!   ADDR:D --scheduler-file F`; per node `dask worker tcp://ADDR:P --host NODE --nworkers N --nthreads T
//!   --memory-limit M --dashboard-address NODE:0 --name ...` (a worker's health server otherwise listens on
//!   0.0.0.0: with the node's address every listener is on the node's own address).
//! - Ready when the dashboard's `/json/identity.json` lists `worker_processes` workers on every node of this pilot.
//! - A pilot that extends a Dask pilot starts workers only, against the parent's scheduler.
//! - Cancel: SIGTERM to every process group, SIGKILL after the grace period.
//!
//! `pilot exec` on a Dask pilot runs its command as Dask tasks pinned to the workers of each node
//! ([`crate::pilots::tasks`], with the driver in `dask_exec.py`), as the paper ran its MASS processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::details::{DaskDetails, DaskNode, FrameworkDetails};
use super::plugin::{first_exited, stop_all, wait_for_json, Framework, StartContext};
use crate::error::{PilotError, Result};
use crate::pilots::backend::{Allocation, Node, ResourceBackend};
use crate::pilots::description::DaskPlan;
use crate::pilots::framework::details::NodeRole;
use crate::pilots::process::{LaunchSpec, ManagedChild};

/// The Dask plugin.
pub struct DaskFramework {
    plan: DaskPlan,
    children: Vec<ManagedChild>,
    details: Option<DaskDetails>,
    own: Vec<Node>,
}

impl DaskFramework {
    pub fn new(plan: DaskPlan) -> Self {
        DaskFramework {
            plan,
            children: Vec::new(),
            details: None,
            own: Vec::new(),
        }
    }

    fn launch(
        &mut self,
        backend: &mut dyn ResourceBackend,
        node: &Node,
        dir: &Path,
        label: String,
        args: Vec<String>,
        log: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| PilotError::io("creating node directory", dir, e))?;
        let spec = LaunchSpec {
            label,
            program: self.plan.env.dir.join("bin/dask"),
            args,
            // Dask's own config and temporary files stay in the pilot's directory.
            env: vec![
                (
                    "DASK_TEMPORARY_DIRECTORY".into(),
                    dir.join("tmp").display().to_string(),
                ),
                (
                    "DASK_CONFIG".into(),
                    dir.join("dask-config").display().to_string(),
                ),
            ],
            cwd: dir.to_path_buf(),
            log: dir.join(log),
        };
        self.children.push(backend.launch(node, &spec)?);
        Ok(())
    }
}

impl Framework for DaskFramework {
    fn ports(&self) -> Vec<u16> {
        vec![self.plan.scheduler_port, self.plan.dashboard_port]
    }

    fn start(
        &mut self,
        backend: &mut dyn ResourceBackend,
        alloc: &Allocation,
        ctx: &StartContext,
    ) -> Result<()> {
        let mut details = match ctx.parent {
            Some(FrameworkDetails::Dask(d)) => d.clone(),
            Some(other) => {
                return Err(PilotError::invalid(
                    "parent",
                    format!(
                        "a Dask pilot extends Dask pilots only; the parent runs {}",
                        other.kind().name()
                    ),
                ))
            }
            None => {
                let node = &alloc.nodes[0];
                DaskDetails {
                    scheduler_address: format!(
                        "tcp://{}:{}",
                        node.address, self.plan.scheduler_port
                    ),
                    dashboard_url: format!("http://{}:{}", node.address, self.plan.dashboard_port),
                    scheduler_file: ctx.pilot_dir.join(&node.name).join("scheduler.json"),
                    scheduler_node: node.name.clone(),
                    nodes: Vec::new(),
                    python: self.plan.env.python.clone(),
                }
            }
        };
        self.own = alloc.nodes.clone();
        if ctx.parent.is_none() {
            let node = alloc.nodes[0].clone();
            let dir = ctx.pilot_dir.join(&node.name);
            // A stale scheduler file would point clients at a dead scheduler.
            let _ = std::fs::remove_file(&details.scheduler_file);
            let a = node.address.to_string();
            let args = vec![
                "scheduler".to_string(),
                "--host".into(),
                a.clone(),
                "--port".into(),
                self.plan.scheduler_port.to_string(),
                "--dashboard-address".into(),
                format!("{a}:{}", self.plan.dashboard_port),
                "--scheduler-file".into(),
                details.scheduler_file.display().to_string(),
            ];
            self.launch(
                backend,
                &node,
                &dir,
                format!("dask scheduler on {}", node.name),
                args,
                "dask-scheduler.log",
            )?;
        }
        for node in alloc.nodes.clone() {
            let dir = ctx.pilot_dir.join(&node.name);
            let a = node.address.to_string();
            let args = vec![
                "worker".to_string(),
                details.scheduler_address.clone(),
                "--host".into(),
                a.clone(),
                "--nworkers".into(),
                self.plan.worker_processes.to_string(),
                "--nthreads".into(),
                self.plan.worker_threads.to_string(),
                "--memory-limit".into(),
                self.plan.worker_memory.clone(),
                "--dashboard-address".into(),
                format!("{a}:0"),
                "--local-directory".into(),
                dir.join("dask-worker-space").display().to_string(),
                "--name".into(),
                format!("{}-{}", ctx.pilot_id, node.name),
            ];
            self.launch(
                backend,
                &node,
                &dir,
                format!("dask worker on {}", node.name),
                args,
                "dask-worker.log",
            )?;
            details.nodes.push(DaskNode {
                node: node.name.clone(),
                address: node.address,
                pilot_id: ctx.pilot_id.to_string(),
                workers: self.plan.worker_processes,
                threads: self.plan.worker_threads,
            });
        }
        self.details = Some(details);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<()> {
        let d = self.details.clone().expect("start before wait_ready");
        let url = format!("{}/json/identity.json", d.dashboard_url);
        let want = self.plan.worker_processes as usize;
        let own = &self.own;
        wait_for_json(
            "Dask",
            &url,
            &mut self.children,
            timeout,
            Duration::from_millis(100),
            interrupted,
            &mut |v| {
                let hosts: Vec<&str> = v["workers"]
                    .as_object()
                    .map(|ws| ws.values().filter_map(|w| w["host"].as_str()).collect())
                    .unwrap_or_default();
                let short: Vec<String> = own
                    .iter()
                    .map(|n| n.address.to_string())
                    .filter(|a| hosts.iter().filter(|h| **h == a.as_str()).count() < want)
                    .collect();
                if short.is_empty() {
                    return Ok(());
                }
                Err(format!(
                    "{} worker(s) connected; fewer than {want} on {short:?}",
                    hosts.len()
                ))
            },
        )
    }

    fn check(&mut self) -> Result<()> {
        first_exited(&mut self.children)
    }

    fn role(&self, _node: &str) -> NodeRole {
        NodeRole::Framework
    }

    fn details(&self) -> FrameworkDetails {
        FrameworkDetails::Dask(self.details.clone().expect("start before details"))
    }

    fn logs(&self) -> Vec<PathBuf> {
        self.children
            .iter()
            .map(|c| c.log().to_path_buf())
            .collect()
    }

    fn stop(&mut self, grace: Duration) {
        stop_all(&mut self.children, grace);
    }
}
