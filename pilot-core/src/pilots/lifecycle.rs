//! The pilot lifecycle as a person drives it from a shell, apart from any command line:
//!
//! - [`spawn_agent`]: register the pilot and hand it to a detached agent process (`pilot --workdir W agent ID`,
//!   its own session, output in `<pilot dir>/agent.log`; [`crate::pilots::api`] waits for it); the agent
//!   ([`run_agent`]) owns the framework processes and ends them on a stop request (SIGTERM), at walltime, or when
//!   it dies (the kernel kills them with it).
//! - [`run_in_foreground`]: start and supervise in this process until a shutdown signal.
//! - [`stop`]: the stop protocol: the pilots extending it first, then SIGTERM to the manager and a wait for its
//!   clean-up; after the timeout SIGKILL (its framework processes die with it, by parent-death signal) and the
//!   record is marked Canceled.
//! - [`running_details`], [`extension_plan`]: what `exec`, `topic` and `extend` start from.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{PilotError, Result};
use crate::pilots::description::{PilotPlan, ResourceUrl};
use crate::pilots::pilot::{backend_for, Pilot};
use crate::pilots::process::same_process_alive;
use crate::pilots::record::PilotRecord;
use crate::pilots::record::{PilotDetails, PilotState};
use crate::pilots::store::Store;

/// How long a detached start waits for the agent: the framework's ready timeout, plus the batch queue's wait.
pub fn start_timeout(plan: &PilotPlan) -> Duration {
    let queue = match plan.resource {
        ResourceUrl::Local => 0,
        ResourceUrl::Slurm { .. } => crate::pilots::backend::slurm::QUEUE_WAIT.as_secs(),
    };
    Duration::from_secs(plan.framework.ready_timeout_s() + queue + 30)
}

/// Register `plan` and hand it to a detached agent, `<agent> --workdir W agent ID` in its own session with its
/// output in `<pilot dir>/agent.log`; the pilot's id and the agent's process (waiting for it is the caller's:
/// [`crate::pilots::api::PilotHandle::wait`]).
pub fn spawn_agent(plan: PilotPlan, agent: &Path) -> Result<(String, Child)> {
    let store = Store::new(&plan.working_directory);
    let id = Pilot::register(plan)?.id;
    let log_path = store.pilot_dir(&id).join("agent.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| PilotError::io("creating", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| PilotError::io("creating", &log_path, e))?;
    let mut cmd = std::process::Command::new(agent);
    cmd.arg("--workdir")
        .arg(store.root())
        .arg("agent")
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; the agent gets its own session so a terminal's hangup spares it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok((id, child)),
        Err(source) => {
            let mut r = store.load(&id)?;
            r.state = PilotState::Failed;
            r.reason = Some(format!(
                "its agent {} could not start: {source}",
                agent.display()
            ));
            store.save(&r)?;
            Err(PilotError::Launch {
                label: "pilot agent".into(),
                program: agent.to_path_buf(),
                source,
            })
        }
    }
}

/// Start `plan` here, call `on_running` with its record once it is Running, and supervise it until `shutdown()`
/// (Canceled), a framework failure (Failed, an error) or the walltime (Done). The final record.
pub fn run_in_foreground(
    plan: PilotPlan,
    shutdown: &dyn Fn() -> bool,
    on_running: &mut dyn FnMut(&PilotRecord) -> Result<()>,
) -> Result<PilotRecord> {
    let mut pilot = Pilot::submit(plan.clone(), backend_for(&plan.resource))?;
    pilot.start(shutdown)?;
    on_running(pilot.record())?;
    let end = pilot.supervise(shutdown, Duration::from_millis(200));
    let record = pilot.record().clone();
    if end == PilotState::Failed {
        return Err(PilotError::WrongState {
            id: record.id.clone(),
            state: end.to_string(),
            message: record.reason.clone().unwrap_or_default(),
        });
    }
    Ok(record)
}

/// The detached agent: take over the New pilot `id`, start it, supervise it until a stop request (SIGTERM),
/// its walltime or a failure.
pub fn run_agent(store: &Store, id: &str) -> Result<()> {
    let flag = crate::contract::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    let record = store.load(id)?;
    if record.state != PilotState::New {
        return Err(PilotError::WrongState {
            id: id.into(),
            state: record.state.to_string(),
            message: "the agent takes over New pilots only".into(),
        });
    }
    let backend = backend_for(&record.plan.resource);
    let mut pilot = Pilot::from_record(record, backend);
    eprintln!("agent {}: starting pilot {id}", std::process::id());
    pilot.start(&stop)?;
    eprintln!("agent: pilot {id} running");
    let end = pilot.supervise(&stop, Duration::from_millis(200));
    eprintln!(
        "agent: pilot {id} {end}: {}",
        pilot.record().reason.clone().unwrap_or_default()
    );
    Ok(())
}

/// How a stop request ended for one pilot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// It had already ended.
    AlreadyEnded(PilotState),
    /// Registered but never started: nothing ran.
    NeverStarted,
    /// Its manager cleaned up and ended.
    Ended { state: PilotState, reason: String },
    /// Its manager did not stop within the timeout and was killed (its framework processes with it).
    Killed,
}

/// Stop pilot `id` run by another process, and every pilot extending it first; what happened to each.
pub fn stop(store: &Store, id: &str, timeout: Duration) -> Result<Vec<(String, Stopped)>> {
    let mut out = Vec::new();
    let r = store.load_reconciled(id)?;
    for child in store.list()? {
        if child.plan.parent.as_deref() == Some(id) && !child.state.is_terminal() {
            out.extend(stop(store, &child.id, timeout)?);
        }
    }
    if r.state.is_terminal() {
        out.push((id.to_string(), Stopped::AlreadyEnded(r.state)));
        return Ok(out);
    }
    let Some(pid) = r.manager_pid else {
        let mut r = r;
        r.state = PilotState::Canceled;
        r.reason = Some("canceled before it started".into());
        store.save(&r)?;
        out.push((id.to_string(), Stopped::NeverStarted));
        return Ok(out);
    };
    let npid = nix::unistd::Pid::from_raw(pid as i32);
    if same_process_alive(pid, r.manager_start_ticks) {
        let _ = nix::sys::signal::kill(npid, nix::sys::signal::Signal::SIGTERM);
    }
    let t0 = Instant::now();
    loop {
        let alive = same_process_alive(pid, r.manager_start_ticks);
        if !alive {
            let rec = store.load_reconciled(id)?;
            out.push((
                id.to_string(),
                Stopped::Ended {
                    state: rec.state,
                    reason: rec.reason.unwrap_or_default(),
                },
            ));
            return Ok(out);
        }
        if t0.elapsed() > timeout {
            // The kernel ends the manager's framework processes with it (parent-death signal).
            let _ = nix::sys::signal::kill(npid, nix::sys::signal::Signal::SIGKILL);
            let mut rec = store.load(id)?;
            rec.state = PilotState::Canceled;
            rec.reason = Some(format!(
                "manager {pid} killed after {} s without a clean stop",
                timeout.as_secs()
            ));
            store.save(&rec)?;
            out.push((id.to_string(), Stopped::Killed));
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// End every pilot under `store` that a dead or other manager left live: what a program killed mid-run leaves
/// behind (its own pilots' records say they run, and on SLURM their jobs still hold nodes). A live manager that
/// is not this process is stopped ([`stop`]); a dead one's SLURM job is cancelled and any process of its
/// brokers still alive is ended by pid; each record is then marked Canceled with what was done. One line per
/// pilot cleaned up.
pub fn clean_up_orphans(store: &Store, timeout: Duration) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let ids: Vec<String> = match std::fs::read_dir(store.root()) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().join("pilot.json").is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => return Ok(out),
    };
    for id in ids {
        let r = store.load(&id)?;
        if r.state.is_terminal() {
            continue;
        }
        let me = std::process::id();
        match r.manager_pid {
            Some(pid) if pid != me && same_process_alive(pid, r.manager_start_ticks) => {
                stop(store, &id, timeout)?;
                out.push(format!(
                    "pilot {id}: its manager (pid {pid}) was still running; stopped"
                ));
            }
            Some(pid) if pid == me => {}
            manager => {
                let mut done = Vec::new();
                match crate::pilots::pilot::task_backend(&r).cancel_job() {
                    Ok(Some(what)) => done.push(format!("{what} cancelled")),
                    Ok(None) => {}
                    Err(e) => done.push(format!("cancelling its job: {e}")),
                }
                if let Some(k) = r.details.as_ref().and_then(|d| d.framework.kafka()) {
                    for p in k.brokers.iter().filter_map(|b| b.process.as_ref()) {
                        if same_process_alive(p.pid, p.start_ticks) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(p.pid as i32),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                            done.push(format!("{} (pid {}) killed", p.label, p.pid));
                        }
                    }
                }
                let mut rec = r.clone();
                rec.state = PilotState::Canceled;
                rec.reason = Some(format!(
                    "orphaned: its manager{} had died; cleaned up{}",
                    manager.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", done.join("; "))
                    }
                ));
                rec.updated_utc = crate::contract::clock::now_utc();
                store.save(&rec)?;
                out.push(format!("pilot {id}: {}", rec.reason.unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

/// The details of pilot `id`, which must be Running.
pub fn running_details(store: &Store, id: &str) -> Result<PilotDetails> {
    let r = store.load_reconciled(id)?;
    match (r.state, r.details) {
        (PilotState::Running, Some(d)) => Ok(d),
        (state, _) => Err(PilotError::WrongState {
            id: id.into(),
            state: state.to_string(),
            message: "this needs a Running pilot".into(),
        }),
    }
}

/// The plan of a pilot that adds `nodes` nodes to the Running pilot `id`'s cluster (same framework and resource).
pub fn extension_plan(store: &Store, id: &str, nodes: u32) -> Result<PilotPlan> {
    if nodes == 0 {
        return Err(PilotError::invalid(
            "command line",
            "--nodes must be at least 1 (got 0)",
        ));
    }
    let parent = store.load_reconciled(id)?;
    if parent.state != PilotState::Running {
        return Err(PilotError::WrongState {
            id: id.into(),
            state: parent.state.to_string(),
            message: "only a Running pilot can be extended".into(),
        });
    }
    let mut plan = parent.plan.clone();
    plan.nodes = nodes;
    plan.parent = Some(id.to_string());
    plan.broker_pilot = None;
    plan.local.addresses = None;
    Ok(plan)
}
