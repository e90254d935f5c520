//! The `pilot` command line: start, status, extend, stop, exec, topics, smoke, fault, autoscale. The binary parses
//! [`Cli`] and calls [`run`]; this module holds the clap definitions and dispatches each command to a thin layer
//! over the library ([`crate::pilots::api`], [`crate::ops`]) that prints what a person reads:
//!
//! - `pilots`: start (detached or foreground), stop, exec, topics; `show`: details and the status table;
//! - `smoke`, `fault`, `autoscale`: the operations on pilots.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod autoscale;
mod fault;
mod output;
mod pilots;
mod show;
mod smoke;

pub use autoscale::AutoscaleArgs;
pub use fault::FaultArgs;
pub use pilots::TopicAction;
pub use show::print_details;

use crate::error::Result;
use crate::pilots::api::{default_workdir, PilotService};
use crate::pilots::description::{FrameworkKind, PilotPlan, RawDescription, RawKafka, RawLocal};
use crate::pilots::lifecycle;

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
        nodes: crate::pilots::tasks::NodeSelection,
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

/// Merge file and flags (flags win) and validate; `--workdir` (the service's directory) overrides the
/// description's `working_directory`.
pub fn plan_from(
    args: &DescriptionArgs,
    workdir_flag: bool,
    pilots: &PilotService,
) -> Result<PilotPlan> {
    let (mut raw, origin) = match &args.file {
        Some(f) => (RawDescription::from_file(f)?, f.display().to_string()),
        None => (RawDescription::default(), "command line".to_string()),
    };
    raw = raw.overlay(args.to_raw())?;
    if workdir_flag {
        raw.working_directory = None;
    }
    pilots.plan(raw, &origin)
}

/// Run a parsed command line, writing human output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let pilots = PilotService::new(default_workdir(cli.workdir.as_deref()));
    let flag = cli.workdir.is_some();
    match cli.command {
        Command::Start {
            desc,
            foreground,
            dry_run,
            json,
        } => {
            let plan = plan_from(&desc, flag, &pilots)?;
            pilots::start(&pilots, plan, foreground, dry_run, json, out)
        }
        Command::Status { id, json } => show::status(&pilots, id.as_deref(), json, out),
        Command::Extend {
            id,
            nodes,
            foreground,
            dry_run,
            json,
        } => {
            let plan = pilots.extension_plan(&id, nodes)?;
            pilots::start(&pilots, plan, foreground, dry_run, json, out)
        }
        Command::Stop { id, timeout_s } => {
            pilots::stop(&pilots, &id, Duration::from_secs(timeout_s), out)
        }
        Command::Topic { action } => pilots::topic(&pilots, action, out),
        Command::Smoke {
            desc,
            messages,
            message_bytes,
        } => smoke::smoke(
            plan_from(&desc, flag, &pilots)?,
            messages,
            message_bytes,
            out,
        ),
        Command::Exec {
            id,
            processes_per_node,
            nodes,
            spark_submit,
            timeout_s,
            command,
        } => pilots::exec(
            &pilots,
            pilots::Exec {
                id: &id,
                processes_per_node,
                nodes,
                spark_submit,
                timeout: Duration::from_secs(timeout_s),
                command: &command,
            },
            out,
        ),
        Command::Autoscale(a) => autoscale::autoscale(&pilots, a, out),
        Command::Fault(f) => fault::fault(&pilots, f, out),
        Command::Agent { id } => lifecycle::run_agent(pilots.store(), &id),
    }
}
