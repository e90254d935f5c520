//! What frameworks report and clients read: the connection details of each framework (serialised into the
//! pilot's state) and what a node does in a cluster. Plain data below every plugin, so the plugins, the pilot
//! and the tasks that use a running cluster share these types without importing each other.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contract::admin::KafkaAdmin;
use crate::contract::client::{ClientProperties, Connection};
use crate::pilots::description::FrameworkKind;

/// What a node does in the pilot's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs a broker.
    Broker,
    /// Runs no framework process; free for producers and consumers.
    Compute,
    /// Runs Spark or Dask processes (master or scheduler, workers).
    Framework,
}

impl NodeRole {
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Broker => "broker",
            NodeRole::Compute => "compute",
            NodeRole::Framework => "framework",
        }
    }
}

/// Connection details a framework reports (serialised into the pilot's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "framework", rename_all = "kebab-case")]
pub enum FrameworkDetails {
    Kafka(KafkaDetails),
    Spark(SparkDetails),
    Dask(DaskDetails),
    Flink(FlinkDetails),
    None,
}

impl FrameworkDetails {
    pub fn kind(&self) -> FrameworkKind {
        match self {
            FrameworkDetails::Kafka(_) => FrameworkKind::Kafka,
            FrameworkDetails::Spark(_) => FrameworkKind::Spark,
            FrameworkDetails::Dask(_) => FrameworkKind::Dask,
            FrameworkDetails::Flink(_) => FrameworkKind::Flink,
            FrameworkDetails::None => FrameworkKind::None,
        }
    }

    /// The Kafka details, for a Kafka pilot.
    pub fn kafka(&self) -> Option<&KafkaDetails> {
        match self {
            FrameworkDetails::Kafka(k) => Some(k),
            _ => None,
        }
    }
}

// Kafka.

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Kafka node id (tansu: the id tansu reports).
    pub node_id: u32,
    /// Node name.
    pub node: String,
    /// `host:port` clients connect to.
    pub address: String,
    /// Pilot that started it (empty for external brokers).
    pub pilot_id: String,
    /// The process that runs it (none for external brokers): where a fault's signal goes.
    #[serde(default)]
    pub process: Option<crate::pilots::process::ProcessRef>,
}

/// What a client needs to use a Kafka pilot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaDetails {
    /// `tansu`, `apache-kafka` or `external`.
    pub distribution: String,
    /// Brokers' own addresses, `host:port`.
    pub bootstrap_servers: Vec<String>,
    /// Every broker of the cluster (parents' included).
    pub brokers: Vec<BrokerInfo>,
    /// KRaft cluster id (apache-kafka).
    pub cluster_id: Option<String>,
    /// KRaft `controller.quorum.voters` (apache-kafka).
    pub controller_voters: Option<String>,
    /// Replication of internal topics (apache-kafka).
    pub internal_replication: Option<u32>,
    /// Partitions per broker node for topics created through the pilot.
    pub partitions_per_node: u32,
    /// Recommended client properties.
    pub client: ClientProperties,
    /// The tansu build the brokers run (None: another distribution, or a record from before builds were told).
    #[serde(default)]
    pub broker_build: Option<crate::pilots::framework::kafka::build::BrokerBuild>,
}

impl KafkaDetails {
    /// Whether a consumer that takes over a partition mid-batch gets the rest of the batch: true but on tansu
    /// builds with 0.6.0's defect (and records that do not say).
    pub fn serves_whole_batches(&self) -> bool {
        match &self.broker_build {
            Some(b) => b.serves_whole_batches,
            None => self.distribution != "tansu",
        }
    }
}

impl KafkaDetails {
    /// `bootstrap.servers` value.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_servers.join(",")
    }

    /// Default partition count for a new topic: partitions per broker node times broker nodes.
    pub fn default_partitions(&self) -> u32 {
        self.partitions_per_node * self.brokers.len().max(1) as u32
    }

    /// An admin handle for this cluster.
    pub fn admin(&self, timeout: Duration) -> KafkaAdmin {
        KafkaAdmin::new(&self.bootstrap(), &self.client, timeout)
    }

    /// What a producer or consumer needs: brokers, recommended properties, default partitions.
    pub fn connection(&self) -> Connection {
        Connection {
            bootstrap: self.bootstrap(),
            client: self.client.clone(),
            default_partitions: self.default_partitions(),
        }
    }
}

// Spark.

/// A worker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkWorker {
    pub node: String,
    pub address: IpAddr,
    /// The pilot that started it.
    pub pilot_id: String,
    pub webui_url: String,
}

/// What a client needs to use a Spark pilot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkDetails {
    /// `spark://ADDR:PORT`, for `--master`.
    pub master_url: String,
    /// The master's web UI, `http://ADDR:PORT` (its `/json/` is the readiness probe).
    pub webui_url: String,
    pub master_node: String,
    pub master_pilot: String,
    /// Every worker of the cluster, parents' first.
    pub workers: Vec<SparkWorker>,
    pub spark_home: PathBuf,
    /// The Python executors and drivers run.
    pub python: PathBuf,
    pub java_home: Option<PathBuf>,
    /// Executor memory of applications submitted through the pilot.
    pub executor_memory: String,
}

// Dask.

/// A node's workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskNode {
    pub node: String,
    pub address: IpAddr,
    /// The pilot that started them.
    pub pilot_id: String,
    /// Worker processes on the node.
    pub workers: u32,
    /// Threads per worker process.
    pub threads: u32,
}

/// What a client needs to use a Dask pilot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskDetails {
    /// `tcp://ADDR:PORT`, for `Client(...)`.
    pub scheduler_address: String,
    /// The scheduler's dashboard, `http://ADDR:PORT`.
    pub dashboard_url: String,
    /// The scheduler file (`Client(scheduler_file=...)`).
    pub scheduler_file: PathBuf,
    pub scheduler_node: String,
    /// Every node with workers, parents' first.
    pub nodes: Vec<DaskNode>,
    /// The Python of the environment the cluster runs in (drivers use it too).
    pub python: PathBuf,
}

// Flink.

/// A TaskManager of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlinkTaskManager {
    pub node: String,
    pub address: IpAddr,
    pub pilot_id: String,
    pub slots: u32,
}

/// What a client needs to use a Flink pilot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlinkDetails {
    /// `ADDR:PORT` of the JobManager's RPC endpoint.
    pub jobmanager_address: String,
    /// The REST endpoint and web UI, `http://ADDR:PORT` (`flink run -m ADDR:PORT`).
    pub rest_url: String,
    pub jobmanager_node: String,
    /// Every TaskManager of the cluster, parents' first.
    pub taskmanagers: Vec<FlinkTaskManager>,
    pub flink_home: PathBuf,
    pub java: PathBuf,
    pub jobmanager_port: u16,
    pub rest_port: u16,
    pub blob_port: u16,
}
