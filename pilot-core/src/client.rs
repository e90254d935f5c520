//! Client settings producers and consumers must agree on: the properties a pilot recommends for its broker
//! ([`ClientProperties`]), turned into rdkafka configurations. MASS and MASA build every client through here,
//! so a broker quirk (tansu's fetch wait) is handled in one place.

use std::collections::BTreeMap;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Largest message the project's brokers and clients are configured for (16 MiB: room for 10 MB payloads).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Recommended librdkafka properties, by client role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientProperties {
    /// For every client.
    pub common: BTreeMap<String, String>,
    /// Producers only.
    pub producer: BTreeMap<String, String>,
    /// Consumers only.
    pub consumer: BTreeMap<String, String>,
}

impl ClientProperties {
    /// The recommended properties for a distribution (`tansu`, `apache-kafka`, `external`).
    pub fn for_distribution(distribution: &str) -> Self {
        let mut p = ClientProperties::default();
        p.common
            .insert("message.max.bytes".into(), MAX_MESSAGE_BYTES.to_string());
        p.consumer.insert(
            "fetch.message.max.bytes".into(),
            MAX_MESSAGE_BYTES.to_string(),
        );
        if distribution == "tansu" {
            // tansu 0.6 holds every fetch for about half of fetch.wait.max.ms even when data is ready; librdkafka's
            // default of 500 ms caps one consumer near 20 MB/s, 10 ms lets it reach 300+ MB/s.
            p.consumer.insert("fetch.wait.max.ms".into(), "10".into());
            // Fewer, larger fetches per partition (8 MiB, about 70 point messages): tansu serves each fetch with a
            // fixed overhead.
            p.consumer
                .insert("max.partition.fetch.bytes".into(), "8388608".into());
        }
        p
    }

    fn base(&self, bootstrap: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        c.set_log_level(RDKafkaLogLevel::Error);
        for (k, v) in &self.common {
            c.set(k, v);
        }
        c
    }

    /// Configuration for a producer.
    pub fn producer_config(&self, bootstrap: &str) -> ClientConfig {
        let mut c = self.base(bootstrap);
        for (k, v) in &self.producer {
            c.set(k, v);
        }
        c
    }

    /// Configuration for a consumer in `group`.
    pub fn consumer_config(&self, bootstrap: &str, group: &str) -> ClientConfig {
        let mut c = self.base(bootstrap);
        c.set("group.id", group);
        for (k, v) in &self.consumer {
            c.set(k, v);
        }
        c
    }

    /// Configuration for admin and metadata clients.
    pub fn admin_config(&self, bootstrap: &str) -> ClientConfig {
        self.base(bootstrap)
    }
}

/// Where a client should connect: brokers by address, or a running pilot by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Bootstrap(String),
    Pilot {
        id: String,
        workdir: std::path::PathBuf,
    },
}

impl Target {
    /// From a config's `bootstrap_servers` / `pilot` / `pilot_workdir` (exactly one of the first two).
    pub fn from_options(
        bootstrap: Option<&str>,
        pilot: Option<&str>,
        pilot_workdir: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        match (bootstrap, pilot) {
            (Some(_), Some(_)) => Err("give bootstrap_servers or pilot, not both".into()),
            (None, None) => Err(
                "where to connect: set bootstrap_servers (host:port) or pilot (a pilot id)".into(),
            ),
            (Some(b), None) => {
                let bad = b.split(',').any(|s| {
                    s.rsplit_once(':')
                        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                });
                if bad {
                    Err(format!(
                        "bootstrap_servers `{b}` is not host:port[,host:port]"
                    ))
                } else {
                    Ok(Target::Bootstrap(b.to_string()))
                }
            }
            (None, Some(id)) => Ok(Target::Pilot {
                id: id.to_string(),
                workdir: pilot_workdir
                    .map(std::path::Path::to_path_buf)
                    .or_else(|| std::env::var_os("PILOT_WORKDIR").map(std::path::PathBuf::from))
                    .unwrap_or_else(|| std::path::PathBuf::from("pilots")),
            }),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Bootstrap(b) => write!(f, "brokers {b}"),
            Target::Pilot { id, workdir } => write!(f, "pilot {id} (in {})", workdir.display()),
        }
    }
}

/// Where a client's brokers are and how to talk to them: from a running pilot's details, or plain brokers.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Recommended client properties.
    pub client: ClientProperties,
    /// Partitions for a topic created through this connection.
    pub default_partitions: u32,
}

impl Connection {
    /// Brokers nobody described: generic Kafka client settings, 12 partitions per topic.
    pub fn to_brokers(bootstrap: &str) -> Self {
        Connection {
            bootstrap: bootstrap.to_string(),
            client: ClientProperties::for_distribution("external"),
            default_partitions: crate::description::DEFAULT_PARTITIONS_PER_NODE,
        }
    }

    /// The brokers of the Running pilot `id` under `workdir`.
    pub fn to_pilot(id: &str, workdir: &std::path::Path) -> crate::Result<Self> {
        let r = crate::store::Store::new(workdir).load_reconciled(id)?;
        match (r.state, r.details) {
            (crate::PilotState::Running, Some(d)) => Ok(Self::from_details(d.framework.kafka())),
            (state, _) => Err(crate::PilotError::WrongState {
                id: id.to_string(),
                state: state.to_string(),
                message: "clients need a Running pilot".into(),
            }),
        }
    }

    /// Resolve a target.
    pub fn resolve(target: &Target) -> crate::Result<Self> {
        match target {
            Target::Bootstrap(b) => Ok(Self::to_brokers(b)),
            Target::Pilot { id, workdir } => Self::to_pilot(id, workdir),
        }
    }

    /// From a Kafka pilot's details.
    pub fn from_details(k: &crate::framework::kafka::KafkaDetails) -> Self {
        Connection {
            bootstrap: k.bootstrap(),
            client: k.client.clone(),
            default_partitions: k.default_partitions(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tansu_consumers_get_a_short_fetch_wait() {
        let p = ClientProperties::for_distribution("tansu");
        let c = p.consumer_config("127.0.0.2:9092", "g");
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.2:9092"));
        let prod = p.producer_config("x:1");
        assert_eq!(prod.get("fetch.wait.max.ms"), None);
        assert_eq!(prod.get("message.max.bytes"), Some("16777216"));
        let k = ClientProperties::for_distribution("apache-kafka");
        assert_eq!(k.consumer.get("fetch.wait.max.ms"), None);
    }
}
