//! The `pilot` command line: start, status, extend, stop, topics, smoke. The binary parses [`Cli`] and calls
//! [`run`]; everything else is here so tests drive it directly.
//!
//! `pilot start` without `--foreground` registers the pilot and hands it to a detached agent process
//! (`pilot agent ID`, its own session, output in `<pilot dir>/agent.log`) that owns the framework processes and
//! ends them on `pilot stop` (SIGTERM), at walltime, or when it dies (the kernel kills them with it).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::description::{ProcessEnvironment, RawDescription, RawKafka, RawLocal};
use crate::error::{log_tail, PilotError, Result};
use crate::pilot::{backend_for, NodeRole, Pilot, PilotDetails, PilotState};
use crate::process::same_process_alive;
use crate::store::{PilotRecord, Store};

/// Pilots for streaming pipelines: brokers on local slots (and batch allocations), with their connection details.
#[derive(Debug, Parser)]
#[command(name = "pilot", version, about, long_about = None)]
pub struct Cli {
    /// Directory holding pilot state and logs [env: PILOT_WORKDIR; default: ./pilots]
    #[arg(long, global = true, value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a pilot and print its id and connection details
    Start {
        #[command(flatten)]
        desc: DescriptionArgs,
        /// Stay in the foreground until Ctrl-C (or SIGTERM), then cancel the pilot
        #[arg(long)]
        foreground: bool,
        /// Validate and print the plan; start nothing
        #[arg(long)]
        dry_run: bool,
        /// Print details as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one pilot (details) or all pilots (a table)
    Status {
        /// Pilot id (default: all pilots in the working directory)
        id: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Add nodes to a running pilot: a child pilot whose nodes join the parent's cluster
    Extend {
        /// Id of the running pilot to extend
        id: String,
        /// Nodes to add
        #[arg(long)]
        nodes: u32,
        /// Stay in the foreground until Ctrl-C, then cancel the extension
        #[arg(long)]
        foreground: bool,
        /// Validate and print the plan; start nothing
        #[arg(long)]
        dry_run: bool,
        /// Print details as JSON
        #[arg(long)]
        json: bool,
    },
    /// Cancel a pilot (and the pilots extending it), waiting until its processes are gone
    Stop {
        /// Id of the pilot to stop (see `pilot status`)
        id: String,
        /// Seconds to wait for a clean stop before killing the manager
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// Create, delete or describe topics on a pilot's brokers
    Topic {
        #[command(subcommand)]
        action: TopicAction,
    },
    /// Start a pilot, push messages through a topic and back in a consumer group, cancel it, print a summary
    Smoke {
        #[command(flatten)]
        desc: DescriptionArgs,
        /// Messages to send
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        /// Bytes per message
        #[arg(long, default_value_t = 1024)]
        message_bytes: usize,
    },
    /// Run P copies of a command on each of a running pilot's nodes and wait for them
    ///
    /// In the command, {node} {node_address} {process_index} {local_index} {bootstrap} {pilot} are replaced
    /// (also set as PILOT_NODE, PILOT_NODE_ADDRESS, ... in the environment). Logs: <pilot dir>/tasks/.
    Exec {
        /// Pilot id
        id: String,
        /// Copies per node
        #[arg(long, default_value_t = 1)]
        processes_per_node: usize,
        /// Nodes to use: own (this pilot's), compute (this pilot's nodes without a broker), all (parents' too)
        #[arg(long, default_value = "own")]
        nodes: String,
        /// Give up (and end the tasks) after this many seconds
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
        /// The command, after `--`
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// (internal) Manage a registered pilot until stopped
    #[command(hide = true)]
    Agent { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicAction {
    /// Create a topic (default partitions: partitions per node x broker nodes)
    Create {
        id: String,
        name: String,
        #[arg(long)]
        partitions: Option<u32>,
        #[arg(long, default_value_t = 1)]
        replication: u32,
    },
    /// Delete a topic
    Delete { id: String, name: String },
    /// Print a topic's partitions and leaders
    Describe { id: String, name: String },
}

/// A pilot description from a file and/or flags (flags win).
#[derive(Debug, Args, Default)]
pub struct DescriptionArgs {
    /// Pilot description (TOML); flags override its values
    #[arg(value_name = "DESCRIPTION.toml")]
    pub file: Option<PathBuf>,
    /// Resource URL: local://, slurm://localhost, slurm+ssh://user@host[:port] [default: local://]
    #[arg(long)]
    pub resource: Option<String>,
    /// Framework [default: kafka]
    #[arg(long)]
    pub framework: Option<String>,
    /// Number of nodes [default: 1]
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Cores per node the pilot may use (SLURM: --ntasks-per-node)
    #[arg(long)]
    pub cores_per_node: Option<u32>,
    /// Walltime in minutes [default: 60]
    #[arg(long)]
    pub walltime_min: Option<u32>,
    /// SLURM partition (sbatch -p)
    #[arg(long)]
    pub queue: Option<String>,
    /// SLURM account (sbatch -A)
    #[arg(long)]
    pub project: Option<String>,
    /// SLURM reservation (sbatch --reservation)
    #[arg(long)]
    pub reservation: Option<String>,
    /// Kafka distribution: tansu, apache-kafka, external [default: tansu]
    #[arg(long)]
    pub distribution: Option<String>,
    /// Broker port [default: 9092]
    #[arg(long)]
    pub port: Option<u16>,
    /// Partitions per broker node [default: 12]
    #[arg(long)]
    pub partitions_per_node: Option<u32>,
    /// Seconds to wait for readiness [default: 60]
    #[arg(long)]
    pub ready_timeout_s: Option<u64>,
    /// Path to the tansu binary
    #[arg(long)]
    pub tansu_binary: Option<PathBuf>,
    /// Kafka installation (apache-kafka) [default: $KAFKA_HOME]
    #[arg(long)]
    pub kafka_home: Option<PathBuf>,
    /// Existing brokers (external), comma-separated host:port
    #[arg(long, value_delimiter = ',')]
    pub bootstrap_servers: Option<Vec<String>>,
    /// Loopback address for a local node (repeat once per node)
    #[arg(long = "address")]
    pub addresses: Option<Vec<Ipv4Addr>>,
}

impl DescriptionArgs {
    fn to_raw(&self) -> RawDescription {
        let kafka = RawKafka {
            distribution: self.distribution.clone(),
            port: self.port,
            partitions_per_node: self.partitions_per_node,
            ready_timeout_s: self.ready_timeout_s,
            binary: self.tansu_binary.clone(),
            kafka_home: self.kafka_home.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            ..Default::default()
        };
        RawDescription {
            resource: self.resource.clone(),
            framework: self.framework.clone(),
            nodes: self.nodes,
            cores_per_node: self.cores_per_node,
            walltime_min: self.walltime_min,
            queue: self.queue.clone(),
            project: self.project.clone(),
            reservation: self.reservation.clone(),
            kafka: (kafka != RawKafka::default()).then_some(kafka),
            local: self.addresses.clone().map(|a| RawLocal {
                addresses: Some(a),
                first_address: None,
            }),
            ..Default::default()
        }
    }
}

fn default_workdir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PILOT_WORKDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("pilots"))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Merge file and flags, resolve the working directory, validate.
pub fn plan_from(
    args: &DescriptionArgs,
    workdir: Option<&Path>,
) -> Result<crate::description::PilotPlan> {
    let (mut raw, origin) = match &args.file {
        Some(f) => (RawDescription::from_file(f)?, f.display().to_string()),
        None => (RawDescription::default(), "command line".to_string()),
    };
    raw = raw.overlay(args.to_raw());
    if workdir.is_some() || raw.working_directory.is_none() {
        raw.working_directory = Some(default_workdir(workdir));
    }
    raw.working_directory = raw.working_directory.as_deref().map(absolute);
    raw.validate(&origin, &ProcessEnvironment)
}

/// Shutdown flag set by SIGINT/SIGTERM.
pub fn shutdown_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| PilotError::io("installing signal handler", "SIGINT/SIGTERM", e))?;
    }
    Ok(flag)
}

/// Run a parsed command line, writing human output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let workdir = cli.workdir.clone();
    let store = || Store::new(absolute(&default_workdir(workdir.as_deref())));
    match cli.command {
        Command::Start {
            desc,
            foreground,
            dry_run,
            json,
        } => {
            let plan = plan_from(&desc, workdir.as_deref())?;
            start(plan, foreground, dry_run, json, out)
        }
        Command::Status { id, json } => status(&store(), id.as_deref(), json, out),
        Command::Extend {
            id,
            nodes,
            foreground,
            dry_run,
            json,
        } => {
            let parent = store().load_reconciled(&id)?;
            if parent.state != PilotState::Running {
                return Err(PilotError::WrongState {
                    id,
                    state: parent.state.to_string(),
                    message: "only a Running pilot can be extended".into(),
                });
            }
            let mut plan = parent.plan.clone();
            plan.nodes = nodes;
            plan.parent = Some(id);
            plan.local.addresses = None;
            if nodes == 0 {
                return Err(PilotError::invalid(
                    "command line",
                    "--nodes must be at least 1 (got 0)",
                ));
            }
            start(plan, foreground, dry_run, json, out)
        }
        Command::Stop { id, timeout_s } => stop(&store(), &id, Duration::from_secs(timeout_s), out),
        Command::Topic { action } => topic(&store(), action, out),
        Command::Smoke {
            desc,
            messages,
            message_bytes,
        } => {
            let plan = plan_from(&desc, workdir.as_deref())?;
            smoke(plan, messages, message_bytes, out)
        }
        Command::Exec {
            id,
            processes_per_node,
            nodes,
            timeout_s,
            command,
        } => {
            let which = match nodes.as_str() {
                "own" => crate::tasks::NodeSelection::Own,
                "compute" => crate::tasks::NodeSelection::Compute,
                "all" => crate::tasks::NodeSelection::All,
                other => {
                    return Err(PilotError::invalid(
                        "command line",
                        format!("--nodes `{other}` is unknown (own, compute, all)"),
                    ))
                }
            };
            if processes_per_node == 0 {
                return Err(PilotError::invalid(
                    "command line",
                    "--processes-per-node must be at least 1",
                ));
            }
            let d = running_details(&store(), &id)?;
            let r = store().load(&id)?;
            let mut backend = crate::pilot::task_backend(&r);
            let results = crate::tasks::run_per_node(
                &d,
                backend.as_mut(),
                which,
                processes_per_node,
                &command,
                Duration::from_secs(timeout_s),
            )?;
            let failed = results.iter().filter(|t| !t.success()).count();
            for t in &results {
                let status = t
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "timed out".into());
                writeln!(
                    out,
                    "task {:>3} on {:<24} {:<22} {}",
                    t.process_index,
                    t.node,
                    status,
                    t.log.display()
                )
                .map_err(io_out)?;
            }
            if failed > 0 {
                return Err(PilotError::WrongState {
                    id,
                    state: "Running".into(),
                    message: format!(
                        "{failed} of {} tasks failed (see their logs)",
                        results.len()
                    ),
                });
            }
            Ok(())
        }
        Command::Agent { id } => agent(&store(), &id),
    }
}

fn io_out(e: std::io::Error) -> PilotError {
    PilotError::io("writing", "standard output", e)
}

fn start(
    plan: crate::description::PilotPlan,
    foreground: bool,
    dry_run: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if dry_run {
        write!(out, "dry run: this pilot would start\n{}", plan.describe()).map_err(io_out)?;
        return Ok(());
    }
    if foreground {
        let flag = shutdown_flag()?;
        let stop = || flag.load(Ordering::Relaxed);
        let mut pilot = Pilot::submit(plan.clone(), backend_for(&plan.resource))?;
        writeln!(out, "starting pilot {} ...", pilot.id()).map_err(io_out)?;
        pilot.start(&stop)?;
        print_details(pilot.record(), json, out)?;
        writeln!(out, "running in the foreground; Ctrl-C cancels the pilot").map_err(io_out)?;
        out.flush().map_err(io_out)?;
        let end = pilot.supervise(&stop, Duration::from_millis(200));
        writeln!(
            out,
            "pilot {} {end}: {}",
            pilot.id(),
            pilot.record().reason.clone().unwrap_or_default()
        )
        .map_err(io_out)?;
        return if end == PilotState::Failed {
            Err(PilotError::WrongState {
                id: pilot.id().into(),
                state: end.to_string(),
                message: pilot.record().reason.clone().unwrap_or_default(),
            })
        } else {
            Ok(())
        };
    }
    // Detached: register, hand over to an agent, wait until it reports Running or gives up.
    let store = Store::new(&plan.working_directory);
    let timeout = Duration::from_secs(plan.kafka().ready_timeout_s + 30);
    let id = Pilot::register(plan)?.id;
    let dir = store.pilot_dir(&id);
    let log_path = dir.join("agent.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| PilotError::io("creating", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| PilotError::io("creating", &log_path, e))?;
    let exe = std::env::current_exe()
        .map_err(|e| PilotError::io("locating", "the pilot executable", e))?;
    let mut cmd = std::process::Command::new(&exe);
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
    let mut child = cmd.spawn().map_err(|source| PilotError::Launch {
        label: "pilot agent".into(),
        program: exe.clone(),
        source,
    })?;
    let t0 = Instant::now();
    loop {
        let r = store.load(&id)?;
        if r.state == PilotState::Running {
            // The agent lives on in its own session; dropping the handle neither waits for nor kills it.
            drop(child);
            return print_details(&r, json, out);
        }
        if r.state.is_terminal() {
            let _ = child.wait();
            return Err(PilotError::WrongState {
                id,
                state: r.state.to_string(),
                message: r.reason.unwrap_or_default(),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut r = store.load(&id)?;
            if !r.state.is_terminal() {
                r.state = PilotState::Failed;
                r.reason = Some(format!(
                    "agent exited ({status}) before the pilot was ready"
                ));
                store.save(&r)?;
            }
            return Err(PilotError::FrameworkFailed {
                message: format!("pilot {id}: agent exited ({status}) before the pilot was ready"),
                log: log_path.clone(),
                log_tail: log_tail(&log_path, 20),
            });
        }
        if t0.elapsed() > timeout {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
            return Err(PilotError::NotReady {
                what: format!("pilot {id} (still {})", r.state),
                waited_s: t0.elapsed().as_secs_f64(),
                last_error: format!("see {}", log_path.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent(store: &Store, id: &str) -> Result<()> {
    let flag = shutdown_flag()?;
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

/// Print a record's details for a person (or JSON).
pub fn print_details(r: &PilotRecord, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(r).expect("records serialise")
        )
        .map_err(io_out)?;
        return Ok(());
    }
    let mut s = format!("pilot {}: {}", r.id, r.state);
    if let Some(reason) = &r.reason {
        s.push_str(&format!(" ({reason})"));
    }
    s.push('\n');
    if let Some(d) = &r.details {
        s.push_str(&details_text(d));
    }
    write!(out, "{s}").map_err(io_out)
}

fn details_text(d: &PilotDetails) -> String {
    let k = d.framework.kafka();
    let mut s = String::new();
    s.push_str(&format!("  bootstrap servers: {}\n", k.bootstrap()));
    s.push_str(&format!("  distribution:      {}\n", k.distribution));
    s.push_str(&format!(
        "  resource:          {} (job {})\n",
        d.resource, d.job_id
    ));
    if let Some(p) = &d.parent {
        s.push_str(&format!("  extends:           {p}\n"));
    }
    if let Some(t) = d.startup_s {
        s.push_str(&format!("  startup:           {t:.3} s\n"));
    }
    s.push_str("  nodes:\n");
    for n in &d.nodes {
        let role = match n.role {
            NodeRole::Broker => "broker",
            NodeRole::Compute => "compute",
        };
        s.push_str(&format!(
            "    {:<24} {:<15} {:<8} {}\n",
            n.name,
            n.address.to_string(),
            role,
            n.pilot_id
        ));
    }
    s.push_str(&format!(
        "  topic partitions:  {} by default ({} per broker node)\n",
        k.default_partitions(),
        k.partitions_per_node
    ));
    let props = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            return "(librdkafka defaults)".to_string();
        }
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    s.push_str(&format!(
        "  client (all):      {}\n",
        props(&k.client.common)
    ));
    s.push_str(&format!(
        "  client (producer): {}\n",
        props(&k.client.producer)
    ));
    s.push_str(&format!(
        "  client (consumer): {}\n",
        props(&k.client.consumer)
    ));
    for l in &d.logs {
        s.push_str(&format!("  log:               {}\n", l.display()));
    }
    s.push_str(&format!("  directory:         {}\n", d.directory.display()));
    s
}

fn status(store: &Store, id: Option<&str>, json: bool, out: &mut dyn Write) -> Result<()> {
    if let Some(id) = id {
        return print_details(&store.load_reconciled(id)?, json, out);
    }
    let all = store.list()?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&all).expect("records serialise")
        )
        .map_err(io_out)?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "no pilots under {}", store.root().display()).map_err(io_out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<28} {:<9} {:>5}  {:<28} PARENT",
        "ID", "STATE", "NODES", "BOOTSTRAP"
    )
    .map_err(io_out)?;
    for r in all {
        let bootstrap = r
            .details
            .as_ref()
            .map(|d| d.framework.kafka().bootstrap())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:<9} {:>5}  {:<28} {}",
            r.id,
            r.state.to_string(),
            r.plan.nodes,
            bootstrap,
            r.plan.parent.clone().unwrap_or_default()
        )
        .map_err(io_out)?;
    }
    Ok(())
}

/// Cancel pilot `id` run by another process (children first) and wait until its manager has cleaned up.
pub fn stop(store: &Store, id: &str, timeout: Duration, out: &mut dyn Write) -> Result<()> {
    let r = store.load_reconciled(id)?;
    for child in store.list()? {
        if child.plan.parent.as_deref() == Some(id) && !child.state.is_terminal() {
            stop(store, &child.id, timeout, out)?;
        }
    }
    if r.state.is_terminal() {
        writeln!(out, "pilot {id} is already {}", r.state).map_err(io_out)?;
        return Ok(());
    }
    let Some(pid) = r.manager_pid else {
        // Registered but never started: nothing runs.
        let mut r = r;
        r.state = PilotState::Canceled;
        r.reason = Some("canceled before it started".into());
        store.save(&r)?;
        writeln!(out, "pilot {id} Canceled").map_err(io_out)?;
        return Ok(());
    };
    let npid = nix::unistd::Pid::from_raw(pid as i32);
    if same_process_alive(pid, r.manager_start_ticks) {
        let _ = nix::sys::signal::kill(npid, nix::sys::signal::Signal::SIGTERM);
    }
    let t0 = Instant::now();
    loop {
        let now = store.load(id)?;
        let alive = same_process_alive(pid, r.manager_start_ticks);
        if now.state.is_terminal() && !alive {
            writeln!(out, "pilot {id} {}", now.state).map_err(io_out)?;
            return Ok(());
        }
        if !alive {
            let rec = store.load_reconciled(id)?;
            writeln!(
                out,
                "pilot {id} {} ({})",
                rec.state,
                rec.reason.unwrap_or_default()
            )
            .map_err(io_out)?;
            return Ok(());
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
            writeln!(out, "pilot {id} Canceled (manager killed)").map_err(io_out)?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn running_details(store: &Store, id: &str) -> Result<PilotDetails> {
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

fn topic(store: &Store, action: TopicAction, out: &mut dyn Write) -> Result<()> {
    let timeout = Duration::from_secs(10);
    match action {
        TopicAction::Create {
            id,
            name,
            partitions,
            replication,
        } => {
            let d = running_details(store, &id)?;
            let k = d.framework.kafka();
            let n = partitions.unwrap_or_else(|| k.default_partitions());
            k.admin(timeout).create_topic(&name, n, replication)?;
            writeln!(
                out,
                "created topic {name} with {n} partitions on {}",
                k.bootstrap()
            )
            .map_err(io_out)
        }
        TopicAction::Delete { id, name } => {
            let d = running_details(store, &id)?;
            d.framework.kafka().admin(timeout).delete_topic(&name)?;
            writeln!(out, "deleted topic {name}").map_err(io_out)
        }
        TopicAction::Describe { id, name } => {
            let d = running_details(store, &id)?;
            let t = d.framework.kafka().admin(timeout).describe_topic(&name)?;
            writeln!(out, "topic {} ({} partitions)", t.name, t.partitions.len())
                .map_err(io_out)?;
            for p in t.partitions {
                writeln!(
                    out,
                    "  partition {:>3}  leader {:>4}  replicas {:?}",
                    p.id, p.leader, p.replicas
                )
                .map_err(io_out)?;
            }
            Ok(())
        }
    }
}

fn smoke(
    plan: crate::description::PilotPlan,
    messages: u64,
    message_bytes: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let flag = shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    let mut pilot = Pilot::submit(plan.clone(), backend_for(&plan.resource))?;
    writeln!(
        out,
        "[1/4] starting pilot {} ({} on {}) ...",
        pilot.id(),
        plan.kafka().distribution.name(),
        plan.resource
    )
    .map_err(io_out)?;
    pilot.start(&stop)?;
    let details = pilot.details().expect("running pilot has details").clone();
    let k = details.framework.kafka();
    writeln!(
        out,
        "      broker ready at {} after {:.3} s",
        k.bootstrap(),
        details.startup_s.unwrap_or(0.0)
    )
    .map_err(io_out)?;
    let topic = format!("smoke-{}", pilot.id());
    writeln!(
        out,
        "[2/4] topic {topic}: {} partitions; producing {messages} x {message_bytes} B ...",
        k.default_partitions()
    )
    .map_err(io_out)?;
    out.flush().map_err(io_out)?;
    let report = crate::smoke::run(k, &topic, messages, message_bytes);
    writeln!(
        out,
        "[3/4] consumed in a consumer group; canceling the pilot ..."
    )
    .map_err(io_out)?;
    pilot.cancel();
    let dir = pilot.directory();
    let report = report?;
    writeln!(out, "[4/4] pilot {} {}", pilot.id(), pilot.state()).map_err(io_out)?;
    let mb = (report.messages as f64 * report.message_bytes as f64) / 1e6;
    writeln!(out, "\nsummary").map_err(io_out)?;
    writeln!(
        out,
        "  startup (submit -> ready):  {:.3} s",
        details.startup_s.unwrap_or(0.0)
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  produced:   {} msgs in {:.3} s = {:.0} msg/s, {:.1} MB/s (acks=all)",
        report.messages,
        report.produce_s,
        report.messages as f64 / report.produce_s,
        mb / report.produce_s
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  consumed:   {} msgs in {:.3} s incl. group join = {:.0} msg/s",
        report.received_once,
        report.consume_s,
        report.received_once as f64 / report.consume_s
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  accounting: {} exactly once, {} duplicates, {} missing, {} foreign",
        report.received_once, report.duplicates, report.missing, report.foreign
    )
    .map_err(io_out)?;
    writeln!(out, "  logs:       {}", dir.display()).map_err(io_out)?;
    if !report.exactly_once() {
        return Err(PilotError::Kafka {
            operation: "smoke".into(),
            bootstrap: k.bootstrap(),
            message: format!("not every message arrived exactly once: {report:?}"),
        });
    }
    Ok(())
}
