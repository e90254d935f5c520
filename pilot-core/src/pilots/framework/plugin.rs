//! The plugin interface: the [`Framework`] trait a pilot drives, what a plugin is started with
//! ([`StartContext`]), and the helpers the HTTP-managed frameworks share (readiness polling, stopping children).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::details::{FrameworkDetails, NodeRole};
use crate::error::Result;
use crate::pilots::backend::{Allocation, ResourceBackend};

/// What a framework knows at start: its pilot and, when extending, the parent's details.
pub struct StartContext<'a> {
    pub pilot_id: &'a str,
    pub pilot_dir: &'a Path,
    /// The parent pilot's framework details when this pilot extends one.
    pub parent: Option<&'a FrameworkDetails>,
}

/// A framework plugin, driven by [`crate::pilots::pilot::Pilot`].
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

    /// What `node` (one of this pilot's) does in the cluster.
    fn role(&self, node: &str) -> NodeRole;

    /// Connection details for clients.
    fn details(&self) -> FrameworkDetails;

    /// Log files of the framework's processes.
    fn logs(&self) -> Vec<PathBuf>;

    /// Stop every process (SIGTERM to its process group, then SIGKILL after `grace`).
    fn stop(&mut self, grace: Duration);
}

/// GET `url` (plain HTTP on the cluster's own addresses): the body, or why not.
pub(crate) fn http_get(url: &str, timeout: Duration) -> std::result::Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// Stop every child: SIGTERM to each process group first, then each waited for (SIGKILL after `grace`).
pub(crate) fn stop_all(children: &mut Vec<crate::pilots::process::ManagedChild>, grace: Duration) {
    for c in children.iter() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(c.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for c in children.iter_mut() {
        c.terminate(grace);
    }
    children.clear();
}

/// Poll a framework's JSON status `url` every `interval` until `ready` accepts it (`Err` says why not yet),
/// a child exits, the caller interrupts, or `timeout` passes; then an error naming `framework`, the last reason
/// and the tail of the first child's log. The readiness wait of every HTTP-managed framework (Spark, Dask,
/// Flink).
pub(crate) fn wait_for_json(
    framework: &str,
    url: &str,
    children: &mut [crate::pilots::process::ManagedChild],
    timeout: Duration,
    interval: Duration,
    interrupted: &dyn Fn() -> bool,
    ready: &mut dyn FnMut(&serde_json::Value) -> std::result::Result<(), String>,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        if interrupted() {
            return Err(crate::error::PilotError::Interrupted {
                during: format!("waiting for the {framework} cluster"),
            });
        }
        first_exited(children)?;
        let last_error = match http_get(url, Duration::from_secs(2)) {
            Ok(body) => match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => match ready(&v) {
                    Ok(()) => return Ok(()),
                    Err(why) => why,
                },
                Err(e) => format!("{url} answered no JSON: {e}"),
            },
            Err(e) => format!("{url}: {e}"),
        };
        if t0.elapsed() >= timeout {
            let log = children
                .first()
                .map(|c| c.log().to_path_buf())
                .unwrap_or_default();
            return Err(crate::error::PilotError::FrameworkFailed {
                message: format!(
                    "the {framework} cluster was not ready within {:.1} s ({last_error})",
                    t0.elapsed().as_secs_f64()
                ),
                log_tail: crate::error::log_tail(&log, 20),
                log,
            });
        }
        std::thread::sleep(interval);
    }
}

/// Err naming the first child that has exited, with the end of its log.
pub(crate) fn first_exited(children: &mut [crate::pilots::process::ManagedChild]) -> Result<()> {
    for c in children.iter_mut() {
        if let Some(status) = c.try_wait()? {
            return Err(crate::PilotError::FrameworkFailed {
                message: format!("{} exited: {status}", c.label()),
                log: c.log().to_path_buf(),
                log_tail: crate::error::log_tail(c.log(), 20),
            });
        }
    }
    Ok(())
}
