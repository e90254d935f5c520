//! The `pilot` command line: start, status, extend, stop, exec, topics, smoke. The binary parses [`Cli`] and calls
//! [`run`]; this module holds the clap definitions and the output a person reads, and drives the library
//! ([`crate::lifecycle`] for starting, stopping and the detached agent; [`crate::tasks`] for exec).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::description::{FrameworkKind, ProcessEnvironment, RawDescription, RawKafka, RawLocal};
use crate::error::{PilotError, Result};
use crate::framework::FrameworkDetails;
use crate::lifecycle::{self, Stopped};
use crate::pilot::{backend_for, Pilot, PilotDetails};
use crate::store::{PilotRecord, Store};

/// Pilots for streaming pipelines: Kafka brokers, Spark, Dask and Flink clusters, or plain compute nodes, on local slots
/// or SLURM allocations, with their connection details.
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
    /// Add nodes to a running pilot: a child pilot whose nodes join the parent's cluster (Kafka brokers, Spark
    /// or Dask workers)
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
    /// Create, delete or describe topics on a pilot's brokers (or its broker pilot's)
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
    /// In the command, {node} {node_address} {process_index} {local_index} {bootstrap} {pilot} {spark_master}
    /// {dask_scheduler} {flink_rest} are replaced (also set as PILOT_NODE, PILOT_NODE_ADDRESS, ... in the environment). On a
    /// Dask pilot the copies run as Dask tasks pinned to each node's workers. Logs: <pilot dir>/tasks/.
    Exec {
        /// Pilot id
        id: String,
        /// Copies per node
        #[arg(long, default_value_t = 1)]
        processes_per_node: usize,
        /// Nodes to use: own (this pilot's), compute (this pilot's nodes without a broker), all (parents' too)
        #[arg(long, value_enum, default_value = "own")]
        nodes: crate::tasks::NodeSelection,
        /// Spark pilots: spark-submit the command (an application and its arguments) to the cluster, once, from
        /// the master's node
        #[arg(long)]
        spark_submit: bool,
        /// Give up (and end the tasks) after this many seconds
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
        /// The command, after `--`
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Inject a fault into a running Kafka pilot: kill (SIGKILL) or stop (SIGSTOP, SIGCONT after --for-s) one of
    /// its brokers, cancel the pilot, and on SLURM down or drain the broker's node or scancel its job
    ///
    /// Each step is printed as it is applied (pid, node or job hit). Ctrl-C before a stop's end continues the
    /// broker at once: a fault never leaves a process stopped behind it. Producers and consumers are the
    /// experiment runner's to hit (`[[faults]]` in an experiment file).
    Fault(FaultArgs),
    /// Keep a consumer group on a Kafka pilot sized to its input: start or stop processing pilots (1 node each,
    /// on the Kafka pilot's resource unless told) that run the consumer command, from the consumers' reports on
    /// a metrics topic (MASA's --metrics-topic)
    ///
    /// In the command {consumer_index} (0, 1, ... per consumer started), {topic}, {group} and {metrics_topic} are
    /// replaced, besides everything `pilot exec` replaces. One row per decision goes to stdout and, with
    /// --decisions, to a CSV file. Ctrl-C (or SIGTERM, or --duration-s) stops every consumer gracefully.
    Autoscale(AutoscaleArgs),
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
    /// What the pilot boots [default: kafka]
    #[arg(long, value_enum)]
    pub framework: Option<FrameworkKind>,
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
    /// Spark, Dask and framework-free pilots: the Kafka pilot whose brokers their tasks use
    #[arg(long)]
    pub broker_pilot: Option<String>,
    /// Spark and Dask pilots: the Python environment they come from [default: $PILOT_FRAMEWORKS_VENV or
    /// ~/.local/share/pilot-streaming/venv]
    #[arg(long)]
    pub python_env: Option<PathBuf>,
    /// Kafka distribution: tansu, apache-kafka, external [default: tansu]
    #[arg(long)]
    pub distribution: Option<String>,
    /// Broker port [default: 9092]
    #[arg(long)]
    pub port: Option<u16>,
    /// Partitions per broker node [default: 12]
    #[arg(long)]
    pub partitions_per_node: Option<u32>,
    /// Seconds to wait for Kafka's readiness [default: 60]
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
            framework: self.framework,
            nodes: self.nodes,
            cores_per_node: self.cores_per_node,
            walltime_min: self.walltime_min,
            queue: self.queue.clone(),
            project: self.project.clone(),
            reservation: self.reservation.clone(),
            broker_pilot: self.broker_pilot.clone(),
            python_env: self.python_env.clone(),
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
    raw = raw.overlay(args.to_raw())?;
    if workdir.is_some() || raw.working_directory.is_none() {
        raw.working_directory = Some(default_workdir(workdir));
    }
    raw.working_directory = raw.working_directory.as_deref().map(absolute);
    raw.validate(&origin, &ProcessEnvironment)
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
            let plan = lifecycle::extension_plan(&store(), &id, nodes)?;
            start(plan, foreground, dry_run, json, out)
        }
        Command::Stop { id, timeout_s } => {
            for (id, how) in lifecycle::stop(&store(), &id, Duration::from_secs(timeout_s))? {
                let line = match how {
                    Stopped::AlreadyEnded(s) => format!("pilot {id} is already {s}"),
                    Stopped::NeverStarted => format!("pilot {id} Canceled (it never started)"),
                    Stopped::Ended { state, reason } if reason.is_empty() => {
                        format!("pilot {id} {state}")
                    }
                    Stopped::Ended { state, reason } => format!("pilot {id} {state} ({reason})"),
                    Stopped::Killed => format!("pilot {id} Canceled (manager killed)"),
                };
                writeln!(out, "{line}").map_err(io_out)?;
            }
            Ok(())
        }
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
            spark_submit,
            timeout_s,
            command,
        } => {
            if processes_per_node == 0 {
                return Err(PilotError::invalid(
                    "command line",
                    "--processes-per-node must be at least 1",
                ));
            }
            let d = lifecycle::running_details(&store(), &id)?;
            let r = store().load(&id)?;
            let mut backend = crate::pilot::task_backend(&r);
            let flag = crate::signals::shutdown_flag()?;
            let stop = || flag.load(Ordering::Relaxed);
            let timeout = Duration::from_secs(timeout_s);
            let results = if spark_submit {
                vec![crate::tasks::spark_submit(
                    &d,
                    backend.as_mut(),
                    &command,
                    timeout,
                    &stop,
                )?]
            } else {
                crate::tasks::run(
                    &d,
                    backend.as_mut(),
                    nodes,
                    processes_per_node,
                    &command,
                    timeout,
                    &stop,
                )?
            };
            let failed = results.iter().filter(|t| !t.success()).count();
            for t in &results {
                let status = t
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "timed out or stopped".into());
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
        Command::Autoscale(a) => autoscale(&store(), a, out),
        Command::Fault(f) => fault(&store(), f, out),
        Command::Agent { id } => lifecycle::run_agent(&store(), &id),
    }
}

#[derive(Debug, clap::Args)]
pub struct FaultArgs {
    /// Id of the running Kafka pilot
    pub id: String,
    /// What to do
    #[arg(long, value_enum)]
    pub action: crate::fault::FaultAction,
    /// The broker to hit: broker or broker:I (I counts this pilot's brokers from 0)
    #[arg(long, default_value = "broker:0")]
    pub target: String,
    /// Seconds to wait before the fault
    #[arg(long, default_value_t = 0.0)]
    pub after_s: f64,
    /// stop: seconds until the broker is continued
    #[arg(long)]
    pub for_s: Option<f64>,
    /// node-down / node-drain: the reason SLURM records [default: pilot-streaming fault injection]
    #[arg(long)]
    pub reason: Option<String>,
    /// Validate and print the plan; hit nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct AutoscaleArgs {
    /// Id of the running Kafka pilot
    #[arg(long)]
    pilot: String,
    /// Topic the group consumes
    #[arg(long)]
    topic: String,
    /// The consumer group
    #[arg(long)]
    group: String,
    /// Topic the consumers report to
    #[arg(long)]
    metrics_topic: String,
    /// Resource URL of the processing pilots [default: the Kafka pilot's]
    #[arg(long)]
    resource: Option<String>,
    #[command(flatten)]
    settings: crate::autoscale::AutoscaleSettings,
    /// Write one CSV row per decision here
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Stop after this many seconds [default: until Ctrl-C or SIGTERM]
    #[arg(long)]
    duration_s: Option<f64>,
    /// Validate and print the plan; start nothing
    #[arg(long)]
    dry_run: bool,
    /// The consumer command, after `--`
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn autoscale(store: &Store, a: AutoscaleArgs, out: &mut dyn Write) -> Result<()> {
    use crate::autoscale::{Controller, KafkaReportSource, PilotActuator};
    use crate::config::Settings;
    let plan = a
        .settings
        .validate("command line")
        .map_err(|e| PilotError::invalid("command line", e.to_string()))?;
    for (flag, name) in [("--topic", &a.topic), ("--metrics-topic", &a.metrics_topic)] {
        crate::config::check_topic(name)
            .map_err(|e| PilotError::invalid("command line", format!("{flag}: {}", e.message)))?;
    }
    if a.topic == a.metrics_topic {
        return Err(PilotError::invalid(
            "command line",
            "--metrics-topic must differ from --topic",
        ));
    }
    if let Some(d) = a.duration_s {
        if !(d.is_finite() && d > 0.0 && d <= 1e9) {
            return Err(PilotError::invalid(
                "command line",
                format!("--duration-s must be positive seconds (got {d})"),
            ));
        }
    }
    let details = lifecycle::running_details(store, &a.pilot)?;
    let record = store.load(&a.pilot)?;
    let conn = details.kafka().map(|k| k.connection()).ok_or_else(|| {
        PilotError::invalid(
            "command line",
            format!("pilot {} runs no Kafka brokers", a.pilot),
        )
    })?;
    let resource = a
        .resource
        .clone()
        .unwrap_or_else(|| record.plan.resource.to_string());
    let command: Vec<String> = a
        .command
        .iter()
        .map(|c| {
            c.replace("{topic}", &a.topic)
                .replace("{group}", &a.group)
                .replace("{metrics_topic}", &a.metrics_topic)
        })
        .collect();
    let walltime_min = a
        .duration_s
        .map(|d| (d / 60.0).ceil() as u32 + 5)
        .unwrap_or(record.plan.walltime_min);
    if details.kafka().is_some_and(|k| k.distribution == "tansu") {
        // See README "Elastic processing": the consumers that take over a partition start at its committed offset.
        writeln!(
            out,
            "note: tansu 0.6.0 serves a fetch from inside a record batch from the next batch on, so a consumer that takes over a partition mid-batch skips the batch's rest; produce one message per batch (mass run --kafka batch.num.messages=1)"
        )
        .map_err(io_out)?;
    }
    if a.dry_run {
        writeln!(
            out,
            "dry run: would keep group {} on {} (pilot {}) sized from reports on {}\npolicy: {}\nprocessing pilots: 1 node each on {resource}, running: {}",
            a.group,
            a.topic,
            a.pilot,
            a.metrics_topic,
            plan.describe(),
            command.join(" ")
        )
        .map_err(io_out)?;
        return Ok(());
    }
    let partitions =
        crate::admin::KafkaAdmin::new(&conn.bootstrap, &conn.client, Duration::from_secs(10))
            .describe_topic(&a.topic)?
            .partitions
            .len() as u32;
    let mut source = KafkaReportSource::new(&conn, &a.metrics_topic, &a.topic, partitions)?;
    let mut actuator = PilotActuator::new(
        &resource,
        record.plan.working_directory.clone(),
        &a.pilot,
        walltime_min,
        command,
    )?;
    let mut controller = Controller::new(&plan, &a.group, partitions);
    let mut csv = match &a.decisions {
        Some(p) => Some(
            crate::metrics::CsvWriter::create(p)
                .map_err(|e| PilotError::invalid("command line", e.to_string()))?,
        ),
        None => None,
    };
    let flag = crate::signals::shutdown_flag()?;
    let t0 = std::time::Instant::now();
    let stop = || {
        flag.load(Ordering::Relaxed)
            || a.duration_s
                .is_some_and(|d| t0.elapsed().as_secs_f64() >= d)
    };
    writeln!(
        out,
        "autoscaling group {} on {} ({partitions} partitions): {}",
        a.group,
        a.topic,
        plan.describe()
    )
    .map_err(io_out)?;
    let mut write_err = None;
    crate::autoscale::run(
        &mut controller,
        &mut source,
        &mut actuator,
        &crate::clock::SystemClock::new(),
        &stop,
        &mut |row| {
            let _ = writeln!(
                out,
                "[{:>7.1} s] in {:>8.1} msg/s lag {:>8.0} true rate {:>7.1} msg/s need {:>5.2}: {} -> {} ({:?}) {}{}",
                row.t_s,
                row.input_msgs_per_s,
                row.lag_msgs,
                row.true_rate_msgs_per_s,
                row.need_consumers,
                row.consumers_before,
                row.consumers_after,
                row.action,
                row.reason,
                if row.events.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", row.events)
                }
            );
            if let Some(w) = csv.as_mut() {
                if let Err(e) = w.write(row) {
                    write_err.get_or_insert(e.to_string());
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(PilotError::invalid("decisions file", e));
    }
    if !source.reader.malformed.is_empty() {
        writeln!(
            out,
            "{} messages on {} were not reports (first: {})",
            source.reader.malformed.len(),
            a.metrics_topic,
            source.reader.malformed[0]
        )
        .map_err(io_out)?;
    }
    writeln!(out, "every consumer stopped").map_err(io_out)?;
    Ok(())
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
    if !foreground {
        let r = lifecycle::start_detached(plan)?;
        return print_details(&r, json, out);
    }
    let flag = crate::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    writeln!(out, "starting the pilot in the foreground ...").map_err(io_out)?;
    let end = lifecycle::run_in_foreground(plan, &stop, &mut |r| {
        print_details(r, json, out)?;
        writeln!(out, "running in the foreground; Ctrl-C cancels the pilot").map_err(io_out)?;
        out.flush().map_err(io_out)
    })?;
    writeln!(
        out,
        "pilot {} {}: {}",
        end.id,
        end.state,
        end.reason.clone().unwrap_or_default()
    )
    .map_err(io_out)
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
    let mut s = String::new();
    s.push_str(&format!(
        "  framework:         {}\n",
        d.framework.kind().name()
    ));
    match &d.framework {
        FrameworkDetails::Spark(sp) => {
            s.push_str(&format!("  master:            {}\n", sp.master_url));
            s.push_str(&format!("  web UI:            {}\n", sp.webui_url));
            s.push_str(&format!(
                "  workers:           {}\n",
                sp.workers
                    .iter()
                    .map(|w| format!("{} ({})", w.node, w.webui_url))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        FrameworkDetails::Dask(dk) => {
            s.push_str(&format!("  scheduler:         {}\n", dk.scheduler_address));
            s.push_str(&format!("  dashboard:         {}\n", dk.dashboard_url));
            s.push_str(&format!(
                "  scheduler file:    {}\n",
                dk.scheduler_file.display()
            ));
            s.push_str(&format!(
                "  workers:           {}\n",
                dk.nodes
                    .iter()
                    .map(|n| format!("{} x{} ({} threads)", n.node, n.workers, n.threads))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        FrameworkDetails::Flink(f) => {
            s.push_str(&format!("  jobmanager:        {}\n", f.jobmanager_address));
            s.push_str(&format!("  REST / web UI:     {}\n", f.rest_url));
            s.push_str(&format!(
                "  taskmanagers:      {}\n",
                f.taskmanagers
                    .iter()
                    .map(|t| format!("{} ({} slots)", t.node, t.slots))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        _ => {}
    }
    if let Some(k) = d.kafka() {
        s.push_str(&format!("  bootstrap servers: {}\n", k.bootstrap()));
        s.push_str(&format!("  distribution:      {}\n", k.distribution));
        if let Some(b) = &d.broker_pilot {
            s.push_str(&format!("  broker pilot:      {b}\n"));
        }
    }
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
        s.push_str(&format!(
            "    {:<24} {:<15} {:<9} {}\n",
            n.name,
            n.address.to_string(),
            n.role.name(),
            n.pilot_id
        ));
    }
    if let Some(k) = d.kafka() {
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
    }
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
        "{:<28} {:<9} {:<9} {:>5}  {:<28} PARENT",
        "ID", "STATE", "FRAMEWORK", "NODES", "CONNECT"
    )
    .map_err(io_out)?;
    for r in all {
        let connect = r
            .details
            .as_ref()
            .map(|d| match &d.framework {
                FrameworkDetails::Spark(s) => s.master_url.clone(),
                FrameworkDetails::Dask(k) => k.scheduler_address.clone(),
                FrameworkDetails::Flink(f) => f.rest_url.clone(),
                _ => d.kafka().map(|k| k.bootstrap()).unwrap_or_default(),
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:<9} {:<9} {:>5}  {:<28} {}",
            r.id,
            r.state.to_string(),
            r.plan.framework.kind().name(),
            r.plan.nodes,
            connect,
            r.plan.parent.clone().unwrap_or_default()
        )
        .map_err(io_out)?;
    }
    Ok(())
}

fn kafka_of(store: &Store, id: &str) -> Result<crate::framework::kafka::KafkaDetails> {
    let d = lifecycle::running_details(store, id)?;
    d.kafka().cloned().ok_or_else(|| PilotError::WrongState {
        id: id.into(),
        state: "Running".into(),
        message: format!(
            "a {} pilot without a broker pilot has no topics",
            d.framework.kind().name()
        ),
    })
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
            let k = kafka_of(store, &id)?;
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
            kafka_of(store, &id)?.admin(timeout).delete_topic(&name)?;
            writeln!(out, "deleted topic {name}").map_err(io_out)
        }
        TopicAction::Describe { id, name } => {
            let t = kafka_of(store, &id)?.admin(timeout).describe_topic(&name)?;
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
    let Some(kplan) = plan.kafka().cloned() else {
        return Err(PilotError::invalid(
            "command line",
            "pilot smoke checks a Kafka pilot (framework = kafka)",
        ));
    };
    let flag = crate::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    let mut pilot = Pilot::submit(plan.clone(), backend_for(&plan.resource))?;
    writeln!(
        out,
        "[1/4] starting pilot {} ({} on {}) ...",
        pilot.id(),
        kplan.distribution.name(),
        plan.resource
    )
    .map_err(io_out)?;
    pilot.start(&stop)?;
    let details = pilot.details().expect("running pilot has details").clone();
    let k = details.kafka().expect("a Kafka pilot").clone();
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
    let report = crate::smoke::run(&k, &topic, messages, message_bytes);
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

/// `pilot fault`: check the fault against the pilot (its resource, its brokers), then play it.
fn fault(store: &Store, a: FaultArgs, out: &mut dyn Write) -> Result<()> {
    use crate::fault::{FaultAction, RawFault, Registry, Role};
    if matches!(a.action, FaultAction::Slow | FaultAction::Rejoin) {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "pilot fault hits a pilot's brokers (kill, stop, cancel, node-down, node-drain, scancel), not `{}`: consumers are slowed by an experiment's `[[faults]]`",
                a.action.as_str()
            ),
        ));
    }
    let f = RawFault {
        at_s: Some(a.after_s),
        action: Some(a.action),
        target: Some(a.target.clone()),
        for_s: a.for_s,
        cost_ms_per_message: None,
        reason: a.reason.clone(),
    }
    .validate()
    .map_err(|e| {
        let flag = match e.key.as_deref() {
            Some("at_s") => "--after-s".to_string(),
            Some(k) => format!("--{}", k.replace('_', "-")),
            None => "pilot fault".to_string(),
        };
        PilotError::invalid("command line", format!("{flag}: {}", e.message))
    })?;
    if f.target.role != Role::Broker || matches!(f.action, FaultAction::Slow | FaultAction::Rejoin)
    {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "pilot fault hits a pilot's brokers (kill, stop, cancel, node-down, node-drain, scancel), not `{} {}`: producers and consumers are an experiment's `[[faults]]`",
                f.action.as_str(),
                f.target
            ),
        ));
    }
    lifecycle::running_details(store, &a.id)?;
    let record = store.load(&a.id)?;
    if f.action.needs_slurm()
        && matches!(record.plan.resource, crate::description::ResourceUrl::Local)
    {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "{} needs a SLURM pilot; {} runs on {}",
                f.action.as_str(),
                a.id,
                record.plan.resource
            ),
        ));
    }
    let registry = Registry::default();
    registry.place_brokers(&record);
    let brokers = registry.all().len();
    if brokers == 0 {
        return Err(PilotError::invalid(
            "command line",
            format!("pilot {} runs no brokers of its own to hit", a.id),
        ));
    }
    if f.target.index as usize >= brokers {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "--target {}: pilot {} runs {brokers} broker(s), broker:0 to broker:{}",
                f.target,
                a.id,
                brokers - 1
            ),
        ));
    }
    let node = registry.get(&f.target).map(|p| p.node).unwrap_or_default();
    writeln!(out, "fault on pilot {}: {} ({node})", a.id, f.describe()).map_err(io_out)?;
    if a.dry_run {
        writeln!(out, "dry run: nothing hit").map_err(io_out)?;
        return Ok(());
    }
    let flag = crate::signals::shutdown_flag()?;
    let clock = crate::clock::SystemClock::new();
    let start = crate::clock::Clock::now_ns(&clock);
    let mut targets = registry;
    let mut failed = Vec::new();
    let mut write_err = None;
    crate::fault::run_schedule(
        std::slice::from_ref(&f),
        &clock,
        start,
        &mut targets,
        &|| flag.load(Ordering::Relaxed),
        &mut |e| {
            if e.outcome != "applied" {
                failed.push(e.summary());
            }
            if let Err(err) = writeln!(out, "{:>7.1} s  {}", e.t_s, e.summary()) {
                write_err.get_or_insert(err);
            }
        },
    );
    if let Some(e) = write_err {
        return Err(io_out(e));
    }
    if !failed.is_empty() {
        return Err(PilotError::WrongState {
            id: a.id,
            state: "Running".into(),
            message: failed.join("; "),
        });
    }
    Ok(())
}
