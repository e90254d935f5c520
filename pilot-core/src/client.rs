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
