//! Tasks on a pilot's nodes: P copies of a command per node (MASS producers, MASA consumers), each told who it is.
//!
//! [`run`] starts them through the pilot's resource backend (local processes, or steps of the pilot's SLURM job),
//! so they land where the pilot's nodes are; on a Dask pilot they run as Dask tasks pinned to each node's workers
//! instead (the driver is `framework/dask_exec.py`, run with the pilot's Python), as the paper ran its producers.
//! [`spark_submit`] hands an application to a Spark pilot's master.
//!
//! In the command's arguments `{node}`, `{node_address}`, `{process_index}` (global, 0-based, node-major),
//! `{local_index}` (on its node), `{pilot}`, and where the pilot has them `{bootstrap}` (its brokers, or its broker
//! pilot's), `{spark_master}`, `{dask_scheduler}` and `{flink_rest}` are replaced; the same values are in the
//! environment as `PILOT_NODE`, `PILOT_NODE_ADDRESS`, `PILOT_PROCESS_INDEX`, `PILOT_LOCAL_INDEX`, `PILOT_ID`,
//! `PILOT_BOOTSTRAP`, `PILOT_SPARK_MASTER`, `PILOT_DASK_SCHEDULER`, `PILOT_FLINK_REST`. Output goes to `<pilot dir>/tasks/<node>-<local index>.log`.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::error::{PilotError, Result};
use crate::pilots::backend::{Node, ResourceBackend};
use crate::pilots::framework::details::FrameworkDetails;
use crate::pilots::framework::details::NodeRole;
use crate::pilots::process::{LaunchSpec, ManagedChild};
use crate::pilots::record::{NodeInfo, PilotDetails};

/// How long a task stopped early gets between SIGTERM and SIGKILL: a consumer commits, says it leaves and writes
/// its records, which takes about a second, and longer on a loaded machine.
pub const TASK_STOP_GRACE: Duration = Duration::from_secs(20);

/// The Dask driver (see the module documentation).
const DASK_DRIVER: &str = include_str!("framework/dask_exec.py");

/// Which of the cluster's nodes get tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// None: timed out or stopped before it ended.
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
            NodeSelection::Compute => n.pilot_id == d.id && n.role != NodeRole::Broker,
        })
        .collect()
}

/// One copy of the command, filled in.
struct Planned {
    node: Node,
    local: usize,
    index: usize,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

fn plan(
    details: &PilotDetails,
    which: NodeSelection,
    processes_per_node: usize,
    command: &[String],
) -> Result<Vec<Planned>> {
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
    let mut shared: Vec<(&str, String)> = vec![("pilot", details.id.clone())];
    if let Some(k) = details.kafka() {
        shared.push(("bootstrap", k.bootstrap()));
    }
    match &details.framework {
        FrameworkDetails::Spark(s) => shared.push(("spark_master", s.master_url.clone())),
        FrameworkDetails::Dask(d) => shared.push(("dask_scheduler", d.scheduler_address.clone())),
        FrameworkDetails::Flink(f) => shared.push(("flink_rest", f.rest_url.clone())),
        _ => {}
    }
    let dir = details.directory.join("tasks");
    let mut out = Vec::new();
    for (ni, n) in nodes.iter().enumerate() {
        for local in 0..processes_per_node {
            let index = ni * processes_per_node + local;
            let mut vars = vec![
                ("node", n.name.clone()),
                ("node_address", n.address.to_string()),
                ("process_index", index.to_string()),
                ("local_index", local.to_string()),
            ];
            vars.extend(shared.iter().map(|(k, v)| (*k, v.clone())));
            let fill = |s: &str| {
                vars.iter().fold(s.to_string(), |acc, (k, v)| {
                    acc.replace(&format!("{{{k}}}"), v)
                })
            };
            out.push(Planned {
                node: Node {
                    name: n.name.clone(),
                    address: n.address,
                },
                local,
                index,
                program: fill(program),
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
                log: dir.join(format!("{}-{local}.log", n.name)),
            });
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| PilotError::io("creating", &dir, e))?;
    Ok(out)
}

/// Start `processes_per_node` copies of `command` on the selected nodes and wait for all of them: up to
/// `timeout`, or until `stop()` says so (then they are ended, SIGTERM and SIGKILL after [`TASK_STOP_GRACE`]). On a Dask pilot the
/// copies run as Dask tasks on the workers of their nodes.
pub fn run(
    details: &PilotDetails,
    backend: &mut dyn ResourceBackend,
    which: NodeSelection,
    processes_per_node: usize,
    command: &[String],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<TaskResult>> {
    run_observed(
        details,
        backend,
        which,
        processes_per_node,
        command,
        timeout,
        stop,
        &|_| {},
    )
}

/// A task as it was launched: where a fault injector (or anything else that must reach it) finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub process_index: usize,
    pub node: String,
    pub process: crate::pilots::process::ProcessRef,
}

/// [`run`], telling `on_launch` about each task as it starts (not for Dask tasks: the workers run them).
#[allow(clippy::too_many_arguments)]
pub fn run_observed(
    details: &PilotDetails,
    backend: &mut dyn ResourceBackend,
    which: NodeSelection,
    processes_per_node: usize,
    command: &[String],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
    on_launch: &dyn Fn(&Launched),
) -> Result<Vec<TaskResult>> {
    let planned = plan(details, which, processes_per_node, command)?;
    if let FrameworkDetails::Dask(d) = &details.framework {
        return run_as_dask_tasks(details, d, planned, processes_per_node, timeout, stop);
    }
    let cwd =
        std::env::current_dir().map_err(|e| PilotError::io("reading", "current directory", e))?;
    let mut running: Vec<(TaskResult, ManagedChild)> = Vec::new();
    for p in planned {
        let spec = LaunchSpec {
            label: format!("task {} on {}", p.index, p.node.name),
            program: PathBuf::from(p.program),
            args: p.args,
            env: p.env,
            cwd: cwd.clone(),
            log: p.log.clone(),
        };
        let child = backend.launch(&p.node, &spec)?;
        on_launch(&Launched {
            process_index: p.index,
            node: p.node.name.clone(),
            process: crate::pilots::process::ProcessRef::of(&child, &spec.label),
        });
        running.push((
            TaskResult {
                node: p.node.name.clone(),
                process_index: p.index,
                status: None,
                log: p.log,
            },
            child,
        ));
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
        if t0.elapsed() > timeout || stop() {
            // Where the scheduler must deliver the signal (SLURM), ask it first and give the tasks time to
            // finish their work (a consumer commits and writes its records); what is left is ended here.
            if backend.terminate_tasks() {
                let t1 = Instant::now();
                while t1.elapsed() < Duration::from_secs(20)
                    && running.iter_mut().any(|(r, c)| {
                        if r.status.is_none() {
                            r.status = c.try_wait().ok().flatten();
                        }
                        r.status.is_none()
                    })
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            for (r, c) in running.iter_mut() {
                if r.status.is_none() {
                    c.terminate(TASK_STOP_GRACE);
                    // Ended by us: reported without a status.
                    r.status = None;
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(running.into_iter().map(|(r, _)| r).collect())
}

fn run_as_dask_tasks(
    details: &PilotDetails,
    d: &crate::pilots::framework::details::DaskDetails,
    planned: Vec<Planned>,
    processes_per_node: usize,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<TaskResult>> {
    for p in &planned {
        let slots = d
            .nodes
            .iter()
            .find(|n| n.address == p.node.address)
            .map(|n| (n.workers * n.threads) as usize)
            .unwrap_or(0);
        if slots == 0 {
            return Err(PilotError::invalid(
                "command line",
                format!("node {} runs no Dask worker", p.node.name),
            ));
        }
        if processes_per_node > slots {
            return Err(PilotError::invalid(
                "command line",
                format!(
                    "{processes_per_node} copies per node but node {} has {slots} Dask worker threads: they would run one after another (raise [dask] worker_threads)",
                    p.node.name
                ),
            ));
        }
    }
    let dir = details.directory.join("tasks");
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        crate::contract::clock::now_utc().replace(':', "")
    );
    let spec_path = dir.join(format!("dask-exec-{stamp}.json"));
    let results_path = dir.join(format!("dask-exec-{stamp}-results.json"));
    let driver_path = dir.join("dask_exec.py");
    let cwd =
        std::env::current_dir().map_err(|e| PilotError::io("reading", "current directory", e))?;
    let tasks: Vec<serde_json::Value> = planned
        .iter()
        .map(|p| {
            let mut argv = vec![p.program.clone()];
            argv.extend(p.args.iter().cloned());
            serde_json::json!({
                "host": p.node.address.to_string(),
                "local_index": p.local,
                "argv": argv,
                "env": p.env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "cwd": cwd.display().to_string(),
                "log": p.log.display().to_string(),
            })
        })
        .collect();
    let spec = serde_json::json!({
        "scheduler": d.scheduler_address,
        "timeout_s": timeout.as_secs_f64(),
        "results": results_path.display().to_string(),
        "tasks": tasks,
    });
    std::fs::write(&driver_path, DASK_DRIVER)
        .map_err(|e| PilotError::io("writing", &driver_path, e))?;
    std::fs::write(&spec_path, spec.to_string())
        .map_err(|e| PilotError::io("writing", &spec_path, e))?;
    let launch = LaunchSpec {
        label: "dask exec driver".into(),
        program: d.python.clone(),
        args: vec![
            driver_path.display().to_string(),
            spec_path.display().to_string(),
        ],
        env: vec![],
        cwd,
        log: dir.join(format!("dask-exec-{stamp}.log")),
    };
    let mut driver = crate::pilots::process::spawn(&launch)?;
    let t0 = Instant::now();
    // The tasks time out on their own; the driver gets a little longer to collect them.
    let limit = timeout + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = driver.try_wait()? {
            break Some(st);
        }
        if stop() || t0.elapsed() > limit {
            // SIGTERM makes the driver end every running command on its worker.
            driver.terminate(Duration::from_secs(10));
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let results: Option<Vec<serde_json::Value>> = std::fs::read_to_string(&results_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match (status, results) {
        (Some(st), Some(rs)) if st.success() && rs.len() == planned.len() => Ok(planned
            .iter()
            .zip(rs)
            .map(|(p, r)| TaskResult {
                node: p.node.name.clone(),
                process_index: p.index,
                status: match (r["code"].as_i64(), r["signal"].as_i64()) {
                    (Some(c), _) => Some(ExitStatus::from_raw(((c as i32) & 0xff) << 8)),
                    (None, Some(s)) => Some(ExitStatus::from_raw(s as i32 & 0x7f)),
                    _ => None,
                },
                log: p.log.clone(),
            })
            .collect()),
        (None, _) => Ok(planned
            .iter()
            .map(|p| TaskResult {
                node: p.node.name.clone(),
                process_index: p.index,
                status: None,
                log: p.log.clone(),
            })
            .collect()),
        (Some(st), _) => Err(PilotError::FrameworkFailed {
            message: format!("the Dask exec driver failed ({st}) before collecting every task"),
            log: launch.log.clone(),
            log_tail: crate::error::log_tail(&launch.log, 20),
        }),
    }
}

/// `spark-submit` `app` (an application and its arguments) to a Spark pilot, from its master's node, and wait
/// for it (up to `timeout`, or until `stop()`).
pub fn spark_submit(
    details: &PilotDetails,
    backend: &mut dyn ResourceBackend,
    app: &[String],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<TaskResult> {
    let FrameworkDetails::Spark(s) = &details.framework else {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "--spark-submit needs a Spark pilot; {} is a {} pilot",
                details.id,
                details.framework.kind().name()
            ),
        ));
    };
    if app.is_empty() {
        return Err(PilotError::invalid(
            "command line",
            "--spark-submit needs an application after `--`",
        ));
    }
    let n = details
        .nodes
        .iter()
        .find(|n| n.name == s.master_node)
        .ok_or_else(|| PilotError::invalid("pilot", "the Spark master's node is not listed"))?;
    let node = Node {
        name: n.name.clone(),
        address: n.address,
    };
    let dir = details.directory.join("tasks");
    std::fs::create_dir_all(&dir).map_err(|e| PilotError::io("creating", &dir, e))?;
    let log = dir.join(format!("spark-submit-{}.log", std::process::id()));
    let cwd =
        std::env::current_dir().map_err(|e| PilotError::io("reading", "current directory", e))?;
    let spec = crate::pilots::framework::spark::submit_spec(s, &node, app, &cwd, log.clone());
    let mut child = backend.launch(&node, &spec)?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if stop() || t0.elapsed() > timeout {
            child.terminate(Duration::from_secs(5));
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(TaskResult {
        node: node.name,
        process_index: 0,
        status,
        log,
    })
}
