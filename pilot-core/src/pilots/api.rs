//! The library entry point for pilots: what a program drives pilots with, without a command line. The `pilot`
//! CLI is a thin layer over it, and so is a Python binding.
//!
//! A [`PilotService`] owns a working directory (the pilots' state and logs). It validates descriptions into plans
//! ([`PilotService::plan`]), hands a plan to a detached agent ([`PilotService::submit`], the pilot outlives the
//! program; [`PilotService::create`] is submit then wait), extends a running pilot ([`PilotService::extend`]),
//! and finds pilots started earlier or by another process ([`PilotService::get`], [`PilotService::list`]).
//! A [`PilotHandle`] is one pilot: [`PilotHandle::wait`] until it runs, its state, record and details, its
//! Kafka connection and topic admin, tasks on its nodes, and [`PilotHandle::cancel`].
//!
//! For a pilot that lives and dies with its owner (an experiment's run, a test), use
//! [`crate::pilots::pilot::Pilot::create`] instead: no agent, its processes end with the owning process.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::contract::admin::KafkaAdmin;
use crate::contract::client::Connection;
use crate::error::{log_tail, PilotError, Result};
use crate::pilots::description::{PilotPlan, ProcessEnvironment, RawDescription};
use crate::pilots::framework::details::KafkaDetails;
use crate::pilots::lifecycle::{self, Stopped};
use crate::pilots::record::{PilotDetails, PilotRecord, PilotState};
use crate::pilots::store::Store;
use crate::pilots::tasks::{NodeSelection, TaskResult};

/// How long a failed create waits for the agent to clean up before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait looks at the pilot's record.
const POLL: Duration = Duration::from_millis(20);

/// The working directory a program uses when it names none: `flag`, else `$PILOT_WORKDIR`, else `./pilots`,
/// made absolute (agents and tasks run elsewhere).
pub fn default_workdir(flag: Option<&Path>) -> PathBuf {
    let p = flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PILOT_WORKDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("pilots"));
    absolute(&p)
}

/// `p` made absolute against the current directory (left as it is when that cannot be read).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The pilots of one working directory.
#[derive(Debug, Clone)]
pub struct PilotService {
    store: Store,
    /// The program whose `agent` subcommand runs detached pilots (the `pilot` binary).
    agent: Option<PathBuf>,
}

impl PilotService {
    /// Pilots whose state lives under `workdir` (made absolute; created when the first pilot is).
    pub fn new(workdir: impl AsRef<Path>) -> Self {
        PilotService {
            store: Store::new(absolute(workdir.as_ref())),
            agent: None,
        }
    }

    /// Run detached pilots' agents with `program` (a `pilot` binary) instead of looking for one.
    pub fn with_agent(mut self, program: impl Into<PathBuf>) -> Self {
        self.agent = Some(program.into());
        self
    }

    /// The working directory.
    pub fn workdir(&self) -> &Path {
        self.store.root()
    }

    /// The pilots' records on disk.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validate `raw` (`origin` names it in errors: a file, "command line") into a plan. Its pilot's state goes
    /// under this service's working directory unless the description names one.
    pub fn plan(&self, mut raw: RawDescription, origin: &str) -> Result<PilotPlan> {
        raw.working_directory = Some(match raw.working_directory.take() {
            Some(d) => absolute(&d),
            None => self.store.root().to_path_buf(),
        });
        raw.validate(origin, &ProcessEnvironment)
    }

    /// Hand `plan` to a detached agent and return at once (the pilot is New or Pending); [`PilotHandle::wait`]
    /// waits until it runs. The pilot outlives this program until it is cancelled or its walltime ends.
    pub fn submit(&self, plan: PilotPlan) -> Result<PilotHandle> {
        let agent = match &self.agent {
            Some(p) => p.clone(),
            None => agent_program()?,
        };
        let timeout = lifecycle::start_timeout(&plan);
        let store = Store::new(&plan.working_directory);
        let (id, child) = lifecycle::spawn_agent(plan, &agent)?;
        Ok(PilotHandle {
            store,
            id,
            agent: Mutex::new(Some(child)),
            start_timeout: timeout,
        })
    }

    /// [`submit`](Self::submit), then wait until the pilot runs. When it does not (it failed, its start timed
    /// out, or `interrupted()`), it is stopped before the error is returned: nothing half-started is left.
    pub fn create(&self, plan: PilotPlan, interrupted: &dyn Fn() -> bool) -> Result<PilotHandle> {
        let p = self.submit(plan)?;
        if let Err(e) = p.wait(None, interrupted) {
            let _ = p.cancel(STOP_TIMEOUT);
            return Err(e);
        }
        Ok(p)
    }

    /// The plan of a pilot that adds `nodes` nodes to the Running pilot `id`'s cluster.
    pub fn extension_plan(&self, id: &str, nodes: u32) -> Result<PilotPlan> {
        lifecycle::extension_plan(&self.store, id, nodes)
    }

    /// Submit a pilot whose `nodes` nodes join the Running pilot `id`'s cluster.
    pub fn extend(&self, id: &str, nodes: u32) -> Result<PilotHandle> {
        self.submit(self.extension_plan(id, nodes)?)
    }

    /// A pilot of this working directory, started by anyone.
    pub fn get(&self, id: &str) -> Result<PilotHandle> {
        self.store.load(id)?;
        Ok(PilotHandle {
            store: self.store.clone(),
            id: id.to_string(),
            agent: Mutex::new(None),
            start_timeout: Duration::ZERO,
        })
    }

    /// Every pilot of this working directory.
    pub fn list(&self) -> Result<Vec<PilotRecord>> {
        self.store.list()
    }
}

/// The `pilot` program whose `agent` subcommand runs a detached pilot: this program when it is `pilot`, else
/// `$PILOT_BIN`, else a `pilot` beside this program (or one directory up, as cargo lays out tests), else on PATH.
pub fn agent_program() -> Result<PathBuf> {
    let exe = std::env::current_exe().ok();
    if let Some(e) = exe
        .as_ref()
        .filter(|e| e.file_name() == Some("pilot".as_ref()))
    {
        return Ok(e.clone());
    }
    if let Some(p) = std::env::var_os("PILOT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let beside = exe.as_deref().and_then(Path::parent).map(Path::to_path_buf);
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    beside
        .iter()
        .cloned()
        .chain(beside.iter().filter_map(|d| d.parent().map(Path::to_path_buf)))
        .chain(std::env::split_paths(&path_var))
        .map(|d| d.join("pilot"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            PilotError::invalid(
                "pilot agent",
                "no `pilot` program beside this one, in $PILOT_BIN or on PATH to run the pilot's agent (cargo build -p pilot-core)",
            )
        })
}

/// One pilot, as a program sees it.
#[derive(Debug)]
pub struct PilotHandle {
    store: Store,
    id: String,
    /// The agent this handle started (reaped, and watched while waiting).
    agent: Mutex<Option<Child>>,
    /// How long a wait for this handle's own start may take at most.
    start_timeout: Duration,
}

impl PilotHandle {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its record as it stands (a record whose manager died is reported ended).
    pub fn record(&self) -> Result<PilotRecord> {
        self.store.load_reconciled(&self.id)
    }

    pub fn state(&self) -> Result<PilotState> {
        Ok(self.record()?.state)
    }

    /// Its connection details; the pilot must be Running.
    pub fn details(&self) -> Result<PilotDetails> {
        lifecycle::running_details(&self.store, &self.id)
    }

    /// Block until the pilot is Running (its details then), it ends (an error with the reason), `timeout` passes
    /// (default: the framework's ready timeout and the batch queue's wait, for a pilot this handle submitted), or
    /// `interrupted()` (the pilot is left as it is).
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<PilotDetails> {
        let timeout = timeout.unwrap_or(if self.start_timeout.is_zero() {
            Duration::from_secs(3600)
        } else {
            self.start_timeout
        });
        let t0 = Instant::now();
        loop {
            let r = self.store.load(&self.id)?;
            match (r.state, r.details) {
                (PilotState::Running, Some(d)) => return Ok(d),
                (state, _) if state.is_terminal() => {
                    self.reap();
                    return Err(PilotError::WrongState {
                        id: self.id.clone(),
                        state: state.to_string(),
                        message: r.reason.unwrap_or_default(),
                    });
                }
                _ => {}
            }
            self.check_agent()?;
            if interrupted() {
                return Err(PilotError::Interrupted {
                    during: format!("waiting for pilot {}", self.id),
                });
            }
            if t0.elapsed() > timeout {
                return Err(PilotError::NotReady {
                    what: format!("pilot {} (still {})", self.id, r.state),
                    waited_s: t0.elapsed().as_secs_f64(),
                    last_error: format!("see {}", self.agent_log().display()),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The agent's log (where a detached pilot's start and end are told).
    pub fn agent_log(&self) -> PathBuf {
        self.store.pilot_dir(&self.id).join("agent.log")
    }

    /// Err when the agent this handle started has exited before the pilot ran (the record is marked Failed).
    fn check_agent(&self) -> Result<()> {
        let mut agent = self.agent.lock().expect("agent lock");
        let Some(child) = agent.as_mut() else {
            return Ok(());
        };
        let Ok(Some(status)) = child.try_wait() else {
            return Ok(());
        };
        *agent = None;
        let mut r = self.store.load(&self.id)?;
        if r.state == PilotState::Running {
            return Ok(());
        }
        if !r.state.is_terminal() {
            r.state = PilotState::Failed;
            r.reason = Some(format!(
                "agent exited ({status}) before the pilot was ready"
            ));
            self.store.save(&r)?;
        }
        let log = self.agent_log();
        Err(PilotError::FrameworkFailed {
            message: format!(
                "pilot {}: agent exited ({status}) before the pilot was ready",
                self.id
            ),
            log_tail: log_tail(&log, 20),
            log,
        })
    }

    /// Collect the agent's exit status if it has ended (it runs on in its own session otherwise).
    fn reap(&self) {
        if let Some(mut c) = self.agent.lock().expect("agent lock").take() {
            let _ = c.try_wait();
        }
    }

    /// Cancel the pilot and the pilots extending it, waiting up to `timeout` for a clean stop; what happened
    /// to each.
    pub fn cancel(&self, timeout: Duration) -> Result<Vec<(String, Stopped)>> {
        let out = lifecycle::stop(&self.store, &self.id, timeout)?;
        self.reap();
        Ok(out)
    }

    /// The Kafka cluster its clients use: its own brokers, or its broker pilot's.
    pub fn kafka(&self) -> Result<KafkaDetails> {
        let d = self.details()?;
        d.kafka().cloned().ok_or_else(|| PilotError::WrongState {
            id: self.id.clone(),
            state: "Running".into(),
            message: format!(
                "a {} pilot without a broker pilot has no brokers",
                d.framework.kind().name()
            ),
        })
    }

    /// What a producer or consumer needs: brokers and recommended client properties.
    pub fn connection(&self) -> Result<Connection> {
        Ok(self.kafka()?.connection())
    }

    /// Topic admin on its brokers.
    pub fn admin(&self, timeout: Duration) -> Result<KafkaAdmin> {
        Ok(self.kafka()?.admin(timeout))
    }

    /// Run `processes_per_node` copies of `command` on its nodes (see [`crate::pilots::tasks`]) and wait for
    /// them, up to `timeout` or until `stop()`.
    pub fn run_tasks(
        &self,
        nodes: NodeSelection,
        processes_per_node: usize,
        command: &[String],
        timeout: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<TaskResult>> {
        if processes_per_node == 0 {
            return Err(PilotError::invalid(
                "tasks",
                "processes per node must be at least 1",
            ));
        }
        let d = self.details()?;
        let mut backend = crate::pilots::pilot::task_backend(&self.store.load(&self.id)?);
        crate::pilots::tasks::run(
            &d,
            backend.as_mut(),
            nodes,
            processes_per_node,
            command,
            timeout,
            stop,
        )
    }

    /// `spark-submit` `app` to its Spark master and wait for it.
    pub fn spark_submit(
        &self,
        app: &[String],
        timeout: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<TaskResult> {
        let d = self.details()?;
        let mut backend = crate::pilots::pilot::task_backend(&self.store.load(&self.id)?);
        crate::pilots::tasks::spark_submit(&d, backend.as_mut(), app, timeout, stop)
    }
}

impl Drop for PilotHandle {
    fn drop(&mut self) {
        // A detached pilot outlives its handle by design; only the agent's exit status is collected.
        self.reap();
    }
}
