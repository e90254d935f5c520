//! The Kafka framework plugin: brokers of one of three distributions on a pilot's nodes.
//!
//! - `tansu` (local default): one tansu broker with in-memory storage on the pilot's first node. tansu's memory
//!   storage cannot be shared, so it is always a one-broker cluster: further nodes, and the nodes of pilots that
//!   extend it, are compute nodes for producers and consumers and are listed as such.
//! - `apache-kafka`: one KRaft broker per node from KAFKA_HOME ([`apache`] generates the files and commands);
//!   an extending pilot adds brokers with new node ids to the parent's cluster.
//! - `external`: brokers someone else runs; the pilot only checks they answer.
//!
//! Readiness is judged from the outside, as a client sees it: the metadata the cluster returns must list every
//! broker the pilot is responsible for, at the address the pilot reports.

pub mod apache;
pub mod build;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::details::{BrokerInfo, FrameworkDetails, KafkaDetails};
use super::plugin::{Framework, StartContext};
use crate::contract::admin::KafkaAdmin;
use crate::contract::client::ClientProperties;
use crate::error::{log_tail, PilotError, Result};
use crate::pilots::backend::{Allocation, ResourceBackend};
use crate::pilots::description::{Distribution, KafkaPlan};
use crate::pilots::framework::details::NodeRole;
use crate::pilots::process::{LaunchSpec, ManagedChild};

struct RunningBroker {
    info: BrokerInfo,
    child: ManagedChild,
}

/// The Kafka plugin.
pub struct KafkaFramework {
    plan: KafkaPlan,
    running: Vec<RunningBroker>,
    details: Option<KafkaDetails>,
    logs: Vec<PathBuf>,
}

impl KafkaFramework {
    pub fn new(plan: KafkaPlan) -> Self {
        KafkaFramework {
            plan,
            running: Vec::new(),
            details: None,
            logs: Vec::new(),
        }
    }

    fn base_details(&self, parent: Option<&KafkaDetails>) -> KafkaDetails {
        let name = self.plan.distribution.name();
        match parent {
            Some(p) => p.clone(),
            None => KafkaDetails {
                distribution: name.to_string(),
                bootstrap_servers: Vec::new(),
                brokers: Vec::new(),
                cluster_id: None,
                controller_voters: None,
                internal_replication: None,
                partitions_per_node: self.plan.partitions_per_node,
                client: ClientProperties::for_distribution(name),
                broker_build: None,
            },
        }
    }

    fn add_broker(&mut self, details: &mut KafkaDetails, info: BrokerInfo, child: ManagedChild) {
        details.bootstrap_servers.push(info.address.clone());
        details.brokers.push(info.clone());
        self.logs.push(child.log().to_path_buf());
        self.running.push(RunningBroker { info, child });
    }

    fn check_children(&mut self) -> Result<()> {
        for b in &mut self.running {
            if let Some(status) = b.child.try_wait()? {
                return Err(PilotError::FrameworkFailed {
                    message: format!(
                        "{} (broker {} at {}) exited: {status}",
                        b.child.label(),
                        b.info.node_id,
                        b.info.address
                    ),
                    log: b.child.log().to_path_buf(),
                    log_tail: log_tail(b.child.log(), 20),
                });
            }
        }
        Ok(())
    }
}

fn parent_kafka<'a>(ctx: &StartContext<'a>) -> Result<Option<&'a KafkaDetails>> {
    match ctx.parent {
        None => Ok(None),
        Some(FrameworkDetails::Kafka(k)) => Ok(Some(k)),
        Some(other) => Err(PilotError::invalid(
            "parent",
            format!(
                "a Kafka pilot extends Kafka pilots only; the parent runs {}",
                other.kind().name()
            ),
        )),
    }
}

impl Framework for KafkaFramework {
    fn ports(&self) -> Vec<u16> {
        match self.plan.distribution {
            Distribution::Tansu { .. } => vec![self.plan.port],
            Distribution::ApacheKafka { .. } => vec![self.plan.port, self.plan.controller_port],
            Distribution::External { .. } => vec![],
        }
    }

    fn start(
        &mut self,
        backend: &mut dyn ResourceBackend,
        alloc: &Allocation,
        ctx: &StartContext,
    ) -> Result<()> {
        let parent = parent_kafka(ctx)?;
        if let Some(p) = parent {
            if p.distribution != self.plan.distribution.name() {
                return Err(PilotError::invalid(
                    "parent",
                    format!(
                        "parent runs {} but this pilot is configured for {}",
                        p.distribution,
                        self.plan.distribution.name()
                    ),
                ));
            }
        }
        let mut details = self.base_details(parent);
        match self.plan.distribution.clone() {
            Distribution::Tansu { binary } => {
                details.broker_build = Some(build::identify(&binary)?);
                if parent.is_none() {
                    let node = &alloc.nodes[0];
                    let node_dir = ctx.pilot_dir.join(&node.name);
                    let url = format!("tcp://{}:{}", node.address, self.plan.port);
                    let spec = LaunchSpec {
                        label: format!("tansu broker on {}", node.name),
                        program: binary,
                        args: tansu_args(&url),
                        env: vec![],
                        cwd: node_dir.clone(),
                        log: node_dir.join("tansu.log"),
                    };
                    std::fs::create_dir_all(&node_dir)
                        .map_err(|e| PilotError::io("creating node directory", &node_dir, e))?;
                    let child = backend.launch(node, &spec)?;
                    let info = BrokerInfo {
                        node_id: 0,
                        node: node.name.clone(),
                        address: format!("{}:{}", node.address, self.plan.port),
                        pilot_id: ctx.pilot_id.to_string(),
                        process: Some(crate::pilots::process::ProcessRef::of(&child, &spec.label)),
                    };
                    self.add_broker(&mut details, info, child);
                }
            }
            Distribution::ApacheKafka { kafka_home } => {
                let (cluster, kraft) = match parent {
                    Some(p) => {
                        let cluster = apache::KraftCluster {
                            cluster_id: p.cluster_id.clone().unwrap_or_default(),
                            voters: p.controller_voters.clone().unwrap_or_default(),
                            internal_replication: p.internal_replication.unwrap_or(1),
                        };
                        let max_id = p.brokers.iter().map(|b| b.node_id).max().unwrap_or(0);
                        (cluster, apache::extension_layout(&alloc.nodes, max_id))
                    }
                    None => apache::root_layout(ctx.pilot_id, &alloc.nodes, &self.plan),
                };
                details.cluster_id = Some(cluster.cluster_id.clone());
                details.controller_voters = Some(cluster.voters.clone());
                details.internal_replication = Some(cluster.internal_replication);
                for launch in apache::node_launches(
                    ctx.pilot_id,
                    ctx.pilot_dir,
                    &kafka_home,
                    &cluster,
                    &kraft,
                    &self.plan,
                ) {
                    let dir = launch
                        .properties_path
                        .parent()
                        .expect("node dir")
                        .to_path_buf();
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| PilotError::io("creating node directory", &dir, e))?;
                    std::fs::write(&launch.properties_path, &launch.properties)
                        .map_err(|e| PilotError::io("writing", &launch.properties_path, e))?;
                    let node = &launch.kraft.node;
                    let status = backend.run(node, &launch.format, Duration::from_secs(120))?;
                    if !status.success() {
                        return Err(PilotError::FrameworkFailed {
                            message: format!("{} failed: {status}", launch.format.label),
                            log: launch.format.log.clone(),
                            log_tail: log_tail(&launch.format.log, 20),
                        });
                    }
                    let child = backend.launch(node, &launch.start)?;
                    let info = BrokerInfo {
                        node_id: launch.kraft.node_id,
                        node: node.name.clone(),
                        address: format!("{}:{}", node.address, self.plan.port),
                        pilot_id: ctx.pilot_id.to_string(),
                        process: Some(crate::pilots::process::ProcessRef::of(
                            &child,
                            &launch.start.label,
                        )),
                    };
                    self.add_broker(&mut details, info, child);
                }
            }
            Distribution::External { bootstrap_servers } => {
                if parent.is_none() {
                    details.bootstrap_servers = bootstrap_servers.clone();
                    details.brokers = bootstrap_servers
                        .iter()
                        .map(|a| BrokerInfo {
                            node_id: 0,
                            node: a.clone(),
                            address: a.clone(),
                            pilot_id: String::new(),
                            process: None,
                        })
                        .collect();
                }
            }
        }
        self.details = Some(details);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<()> {
        let details = self.details.clone().expect("start before wait_ready");
        let t0 = Instant::now();
        let mut last_error: String;
        // Our own brokers first accept TCP; only then ask for metadata (avoids a storm of client errors).
        let own: Vec<SocketAddr> = self
            .running
            .iter()
            .filter_map(|b| b.info.address.parse().ok())
            .collect();
        let admin = KafkaAdmin::new(
            &details.bootstrap(),
            &details.client,
            Duration::from_secs(2),
        );
        loop {
            if interrupted() {
                return Err(PilotError::Interrupted {
                    during: "waiting for the Kafka brokers".into(),
                });
            }
            self.check_children()?;
            let listening = own
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if listening {
                match admin.brokers() {
                    Ok(brokers) => {
                        let listed: Vec<String> = brokers.iter().map(|b| b.address()).collect();
                        let missing: Vec<&String> = details
                            .bootstrap_servers
                            .iter()
                            .filter(|a| !listed.contains(a))
                            .collect();
                        if missing.is_empty() {
                            if let Some(d) = self.details.as_mut() {
                                // tansu and external brokers report their own ids.
                                for b in d.brokers.iter_mut().filter(|b| b.node_id == 0) {
                                    if let Some(m) =
                                        brokers.iter().find(|m| m.address() == b.address)
                                    {
                                        b.node_id = m.id.max(0) as u32;
                                    }
                                }
                            }
                            return Ok(());
                        }
                        last_error =
                            format!("metadata lists {listed:?}, still missing {missing:?}");
                    }
                    Err(e) => last_error = e.to_string(),
                }
            } else {
                last_error = format!("not yet accepting connections on {own:?}");
            }
            if t0.elapsed() >= timeout {
                let waited_s = t0.elapsed().as_secs_f64();
                return Err(match self.running.first() {
                    Some(b) => PilotError::FrameworkFailed {
                        message: format!(
                            "Kafka brokers never became ready within {waited_s:.1} s ({last_error})"
                        ),
                        log: b.child.log().to_path_buf(),
                        log_tail: log_tail(b.child.log(), 20),
                    },
                    None => PilotError::NotReady {
                        what: format!("Kafka at {}", details.bootstrap()),
                        waited_s,
                        last_error,
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn check(&mut self) -> Result<()> {
        self.check_children()
    }

    fn role(&self, node: &str) -> NodeRole {
        if self.running.iter().any(|b| b.info.node == node) {
            NodeRole::Broker
        } else {
            NodeRole::Compute
        }
    }

    fn details(&self) -> FrameworkDetails {
        FrameworkDetails::Kafka(self.details.clone().expect("start before details"))
    }

    fn logs(&self) -> Vec<PathBuf> {
        self.logs.clone()
    }

    fn stop(&mut self, grace: Duration) {
        for b in &mut self.running {
            let _ = killpg_term(&b.child);
        }
        for b in &mut self.running {
            b.child.terminate(grace);
        }
        self.running.clear();
    }
}

/// SIGTERM every broker first so they shut down in parallel.
fn killpg_term(child: &ManagedChild) -> nix::Result<()> {
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
}

/// Command-line arguments for `tansu` serving `url` with in-memory storage.
pub fn tansu_args(url: &str) -> Vec<String> {
    vec![
        "broker".into(),
        "--listener-url".into(),
        url.into(),
        "--advertised-listener-url".into(),
        url.into(),
        "--storage-engine".into(),
        "memory://tansu/".into(),
    ]
}
