//! Kafka administration through the Kafka protocol: broker metadata (the readiness probe) and topics
//! (create, delete, describe). Everything goes through rdkafka's admin and metadata APIs against whatever
//! broker a pilot reports; nothing here knows which distribution it is talking to.

use std::time::Duration;

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::contract::client::ClientProperties;
use crate::error::{PilotError, Result};

/// A broker as listed in cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl BrokerMeta {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
}

/// A topic as listed in cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: Vec<PartitionMeta>,
}

/// What the brokers answered a topic creation.
enum Created {
    New,
    AlreadyThere(RDKafkaErrorCode),
}

/// Admin operations against one cluster.
pub struct KafkaAdmin {
    bootstrap: String,
    props: ClientProperties,
    timeout: Duration,
}

impl KafkaAdmin {
    /// An admin handle for `bootstrap` (`host:port,...`); `timeout` bounds each request.
    pub fn new(bootstrap: &str, props: &ClientProperties, timeout: Duration) -> Self {
        KafkaAdmin {
            bootstrap: bootstrap.to_string(),
            props: props.clone(),
            timeout,
        }
    }

    fn err(&self, operation: &str, message: impl ToString) -> PilotError {
        PilotError::Kafka {
            operation: operation.to_string(),
            bootstrap: self.bootstrap.clone(),
            message: message.to_string(),
        }
    }

    fn metadata_client(&self) -> Result<BaseConsumer> {
        self.props
            .admin_config(&self.bootstrap)
            .create()
            .map_err(|e| self.err("creating metadata client", e))
    }

    fn admin_client(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.props
            .admin_config(&self.bootstrap)
            .create()
            .map_err(|e| self.err("creating admin client", e))
    }

    /// The brokers the cluster reports.
    pub fn brokers(&self) -> Result<Vec<BrokerMeta>> {
        let c = self.metadata_client()?;
        let md = c
            .fetch_metadata(None, self.timeout)
            .map_err(|e| self.err("metadata", e))?;
        let mut out: Vec<BrokerMeta> = md
            .brokers()
            .iter()
            .map(|b| BrokerMeta {
                id: b.id(),
                host: b.host().to_string(),
                port: b.port() as u16,
            })
            .collect();
        out.sort_by_key(|b| b.id);
        Ok(out)
    }

    /// Create `name` with `partitions` partitions and the given replication factor. Waits until the topic shows
    /// in metadata with all its partitions led.
    pub fn create_topic(&self, name: &str, partitions: u32, replication: u32) -> Result<()> {
        match self.request_topic(name, partitions, replication)? {
            Created::New => self.wait_led(name, Some(partitions)).map(|_| ()),
            Created::AlreadyThere(code) => Err(self.err("create topic", format!("{name}: {code}"))),
        }
    }

    /// The partition count of `name`, creating it with `partitions` partitions when it is missing. A topic
    /// that another client creates meanwhile counts as there: several producers started together with
    /// create-if-missing race on the same topic, and all of them must go on with it.
    pub fn ensure_topic(&self, name: &str, partitions: u32, replication: u32) -> Result<u32> {
        if let Ok(t) = self.describe_topic(name) {
            if !t.partitions.is_empty() {
                return Ok(t.partitions.len() as u32);
            }
        }
        match self.request_topic(name, partitions, replication)? {
            Created::New => self.wait_led(name, Some(partitions)),
            // The winner's topic may not be in metadata yet; take its partition count once it is.
            Created::AlreadyThere(_) => self.wait_led(name, None),
        }
    }

    /// Ask the brokers for a new topic: created, or already there (with the broker's answer).
    fn request_topic(&self, name: &str, partitions: u32, replication: u32) -> Result<Created> {
        if name.is_empty() || partitions == 0 || replication == 0 {
            return Err(self.err(
                "create topic",
                format!(
                    "topic `{name}`: name must be non-empty and partitions/replication at least 1"
                ),
            ));
        }
        let admin = self.admin_client()?;
        let topic = NewTopic::new(
            name,
            partitions as i32,
            TopicReplication::Fixed(replication as i32),
        );
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = block_on(admin.create_topics([&topic], &opts))
            .map_err(|e| self.err("create topic", format!("{name}: {e}")))?;
        for r in results {
            match r {
                Err((_, code)) if code == RDKafkaErrorCode::TopicAlreadyExists => {
                    return Ok(Created::AlreadyThere(code))
                }
                Err((t, code)) => return Err(self.err("create topic", format!("{t}: {code}"))),
                Ok(_) => {}
            }
        }
        Ok(Created::New)
    }

    /// Wait until `name` shows in metadata with every partition led (and `partitions` of them, when given: metadata
    /// can lag the admin answer); its partition count.
    fn wait_led(&self, name: &str, partitions: Option<u32>) -> Result<u32> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.describe_topic(name) {
                Ok(t)
                    if !t.partitions.is_empty()
                        && partitions.is_none_or(|n| t.partitions.len() == n as usize)
                        && t.partitions.iter().all(|p| p.leader >= 0) =>
                {
                    return Ok(t.partitions.len() as u32)
                }
                other => {
                    if std::time::Instant::now() >= deadline {
                        let want = partitions.map_or("its".to_string(), |n| n.to_string());
                        return Err(self.err(
                            "create topic",
                            format!("{name}: not visible with {want} led partitions in time ({other:?})"),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Delete `name`.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let admin = self.admin_client()?;
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = block_on(admin.delete_topics(&[name], &opts))
            .map_err(|e| self.err("delete topic", format!("{name}: {e}")))?;
        for r in results {
            if let Err((t, code)) = r {
                return Err(self.err("delete topic", format!("{t}: {code}")));
            }
        }
        Ok(())
    }

    /// Partitions, leaders and replicas of `name`.
    pub fn describe_topic(&self, name: &str) -> Result<TopicMeta> {
        let c = self.metadata_client()?;
        let md = c
            .fetch_metadata(Some(name), self.timeout)
            .map_err(|e| self.err("describe topic", format!("{name}: {e}")))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| self.err("describe topic", format!("{name}: not in metadata")))?;
        if let Some(e) = t.error() {
            return Err(self.err(
                "describe topic",
                format!("{name}: {}", rdkafka::types::RDKafkaErrorCode::from(e)),
            ));
        }
        let mut partitions: Vec<PartitionMeta> = t
            .partitions()
            .iter()
            .map(|p| PartitionMeta {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        Ok(TopicMeta {
            name: name.to_string(),
            partitions,
        })
    }
}
