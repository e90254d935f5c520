//! Apache Kafka in KRaft mode: the per-node `server.properties` and the format/start command lines.
//!
//! Pure functions of the pilot's plan and nodes, so they are tested by exact comparison (Kafka cannot run on the
//! project's CI machines). A root pilot's first `min(N, 3)` nodes are combined broker+controller nodes forming a
//! static quorum (`controller.quorum.voters`), the rest brokers; a pilot that extends it adds broker-only nodes
//! with fresh node ids that register with the parent's quorum under the parent's cluster id.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::contract::client::MAX_MESSAGE_BYTES;
use crate::pilots::backend::Node;
use crate::pilots::description::KafkaPlan;
use crate::pilots::process::LaunchSpec;

/// At most this many controllers in a root pilot's quorum.
pub const MAX_CONTROLLERS: usize = 3;

/// One node's role in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KraftNode {
    pub node_id: u32,
    pub node: Node,
    pub controller: bool,
}

/// What this pilot's brokers join: the cluster id, quorum and replication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KraftCluster {
    /// Kafka cluster id (22 characters of URL-safe base64).
    pub cluster_id: String,
    /// `controller.quorum.voters`.
    pub voters: String,
    /// Replication for internal topics (offsets, transactions): fixed by the root pilot's size.
    pub internal_replication: u32,
}

/// Files and commands for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLaunch {
    pub kraft: KraftNode,
    pub properties_path: PathBuf,
    pub properties: String,
    /// `kafka-storage.sh format ...`, run to completion first.
    pub format: LaunchSpec,
    /// `kafka-server-start.sh ...`, the long-running broker.
    pub start: LaunchSpec,
}

/// A Kafka cluster id derived from the pilot id (deterministic, so a rerun of `format` is idempotent).
pub fn cluster_id_for(pilot_id: &str) -> String {
    let mut bytes = [0u8; 16];
    let h1 = fnv1a(pilot_id.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let h2 = fnv1a(pilot_id.as_bytes(), h1 ^ 0x9e37_79b9_7f4a_7c15);
    bytes[..8].copy_from_slice(&h1.to_be_bytes());
    bytes[8..].copy_from_slice(&h2.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Roles and quorum for a root pilot on `nodes` (node ids 1..=N).
pub fn root_layout(
    pilot_id: &str,
    nodes: &[Node],
    plan: &KafkaPlan,
) -> (KraftCluster, Vec<KraftNode>) {
    let controllers = nodes.len().min(MAX_CONTROLLERS);
    let kraft: Vec<KraftNode> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| KraftNode {
            node_id: i as u32 + 1,
            node: n.clone(),
            controller: i < controllers,
        })
        .collect();
    let voters = kraft
        .iter()
        .filter(|k| k.controller)
        .map(|k| format!("{}@{}:{}", k.node_id, k.node.address, plan.controller_port))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = KraftCluster {
        cluster_id: cluster_id_for(pilot_id),
        voters,
        internal_replication: controllers as u32,
    };
    (cluster, kraft)
}

/// Broker-only nodes for a pilot extending a cluster whose largest node id is `max_node_id`.
pub fn extension_layout(nodes: &[Node], max_node_id: u32) -> Vec<KraftNode> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| KraftNode {
            node_id: max_node_id + 1 + i as u32,
            node: n.clone(),
            controller: false,
        })
        .collect()
}

/// The `server.properties` text for one node. Keys from `[kafka] broker_properties` replace generated ones in
/// place; new keys are appended.
pub fn server_properties(
    pilot_id: &str,
    cluster: &KraftCluster,
    node: &KraftNode,
    plan: &KafkaPlan,
    log_dir: &Path,
) -> String {
    let addr = node.node.address;
    let mut props: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| props.push((k.to_string(), v));
    set(
        "process.roles",
        if node.controller {
            "broker,controller"
        } else {
            "broker"
        }
        .into(),
    );
    set("node.id", node.node_id.to_string());
    set("controller.quorum.voters", cluster.voters.clone());
    set(
        "listeners",
        if node.controller {
            format!(
                "PLAINTEXT://{addr}:{},CONTROLLER://{addr}:{}",
                plan.port, plan.controller_port
            )
        } else {
            format!("PLAINTEXT://{addr}:{}", plan.port)
        },
    );
    set(
        "advertised.listeners",
        format!("PLAINTEXT://{addr}:{}", plan.port),
    );
    set(
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
    );
    set("controller.listener.names", "CONTROLLER".into());
    set("inter.broker.listener.name", "PLAINTEXT".into());
    set("log.dirs", log_dir.display().to_string());
    set("num.partitions", plan.partitions_per_node.to_string());
    set("default.replication.factor", "1".into());
    set(
        "offsets.topic.replication.factor",
        cluster.internal_replication.to_string(),
    );
    set(
        "transaction.state.log.replication.factor",
        cluster.internal_replication.to_string(),
    );
    set("transaction.state.log.min.isr", "1".into());
    set("auto.create.topics.enable", "false".into());
    set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
    set("replica.fetch.max.bytes", MAX_MESSAGE_BYTES.to_string());
    set("group.initial.rebalance.delay.ms", "0".into());
    let mut extra = Vec::new();
    for (k, v) in &plan.broker_properties {
        match props.iter_mut().find(|(pk, _)| pk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => extra.push((k.clone(), v.clone())),
        }
    }
    let mut out = format!(
        "# Generated by pilot-core for pilot {pilot_id}, node {} ({addr}).\n",
        node.node.name
    );
    for (k, v) in &props {
        out.push_str(&format!("{k}={v}\n"));
    }
    if !extra.is_empty() {
        out.push_str("# From [kafka] broker_properties.\n");
        for (k, v) in &extra {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// Files and command lines for each node of this pilot.
pub fn node_launches(
    pilot_id: &str,
    pilot_dir: &Path,
    kafka_home: &Path,
    cluster: &KraftCluster,
    nodes: &[KraftNode],
    plan: &KafkaPlan,
) -> Vec<NodeLaunch> {
    nodes
        .iter()
        .map(|k| {
            let node_dir = pilot_dir.join(&k.node.name);
            let properties_path = node_dir.join("server.properties");
            let log_dir = plan
                .local_dir
                .join(format!("kafka-{pilot_id}"))
                .join(format!("node-{}", k.node_id));
            let properties = server_properties(pilot_id, cluster, k, plan, &log_dir);
            let env = vec![(
                "LOG_DIR".to_string(),
                node_dir.join("kafka-app-logs").display().to_string(),
            )];
            let format = LaunchSpec {
                label: format!("kafka-storage format on {}", k.node.name),
                program: kafka_home.join("bin/kafka-storage.sh"),
                args: vec![
                    "format".into(),
                    "-t".into(),
                    cluster.cluster_id.clone(),
                    "-c".into(),
                    properties_path.display().to_string(),
                    "--ignore-formatted".into(),
                ],
                env: env.clone(),
                cwd: node_dir.clone(),
                log: node_dir.join("format.log"),
            };
            let start = LaunchSpec {
                label: format!("kafka broker {} on {}", k.node_id, k.node.name),
                program: kafka_home.join("bin/kafka-server-start.sh"),
                args: vec![properties_path.display().to_string()],
                env,
                cwd: node_dir.clone(),
                log: node_dir.join("kafka.log"),
            };
            NodeLaunch {
                kraft: k.clone(),
                properties_path,
                properties,
                format,
                start,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_22_chars_and_stable() {
        let a = cluster_id_for("pilot-1");
        assert_eq!(a.len(), 22);
        assert_eq!(a, cluster_id_for("pilot-1"));
        assert_ne!(a, cluster_id_for("pilot-2"));
    }
}
