//! Client settings producers and consumers must agree on: the properties a pilot recommends for its broker
//! ([`ClientProperties`]), turned into rdkafka configurations, and where the brokers are ([`Connection`]). MASS and
//! MASA build every client through here, so a broker quirk (tansu's fetch wait) is handled in one place. This
//! module knows nothing of pilots: [`crate::pilots::connect`] turns a pilot id into a [`Connection`].

use std::collections::BTreeMap;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Largest message the project's brokers and clients are configured for (16 MiB: room for 10 MB payloads).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Consumer settings for fast failover: a dead member's partitions move on after a 6 s session (librdkafka's
/// 45 s default would leave them unread that long; 6 s is the least Apache Kafka's default
/// `group.min.session.timeout.ms` accepts, and the newer tansu holds a group's first join for half the session
/// timeout, 23 s at 45 s), heartbeats every second, and offsets committed every second rather than five, so what
/// the next owner reads again after a death is about a second's worth. MASA applies them on any broker where
/// nothing else sets them; they are part of tansu's recommended consumer properties.
pub const FAILOVER_CONSUMER_PROPERTIES: [(&str, &str); 3] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("auto.commit.interval.ms", "1000"),
];

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
        // A 64 MiB producer queue instead of librdkafka's 1 GiB: an unlimited producer fills whatever queue it has,
        // and 1 GiB of fresh pages (a quarter million page faults) on the node the broker shares cost a third of
        // the throughput and a second or more of queueing per message. Measured into tansu, one process:
        // 120 kB messages 2,721-3,053 -> 4,161-4,609 msg/s, delivery p50 0.9-1.7 s -> 80 ms; 2 MB messages
        // 598-610 -> 736-762 MB/s.
        p.producer
            .insert("queue.buffering.max.kbytes".into(), "65536".into());
        if distribution == "tansu" {
            // tansu 0.6 holds every fetch for about half of fetch.wait.max.ms even when data is ready; librdkafka's
            // default of 500 ms caps one consumer near 20 MB/s, 10 ms lets it reach 300+ MB/s.
            p.consumer.insert("fetch.wait.max.ms".into(), "10".into());
            // Fewer, larger fetches per partition (8 MiB, about 70 point messages): tansu serves each fetch with a
            // fixed overhead.
            p.consumer
                .insert("max.partition.fetch.bytes".into(), "8388608".into());
            for (k, v) in FAILOVER_CONSUMER_PROPERTIES {
                p.consumer.insert(k.into(), v.into());
            }
        }
        p
    }

    /// A client configuration for `bootstrap` with `props`.
    fn config(bootstrap: &str, props: &KafkaProperties) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        c.set_log_level(RDKafkaLogLevel::Error);
        for (k, v) in props {
            c.set(k, v);
        }
        c
    }

    /// Configuration for a producer.
    pub fn producer_config(&self, bootstrap: &str) -> ClientConfig {
        Self::config(bootstrap, &self.producer_properties())
    }

    /// Configuration for a consumer in `group`.
    pub fn consumer_config(&self, bootstrap: &str, group: &str) -> ClientConfig {
        let mut c = Self::config(bootstrap, &self.consumer_properties());
        c.set("group.id", group);
        c
    }

    /// Configuration for admin and metadata clients.
    pub fn admin_config(&self, bootstrap: &str) -> ClientConfig {
        Self::config(bootstrap, &self.common)
    }

    /// These properties with `extra` added to the producers' (extra wins).
    pub fn with_producer(&self, extra: &KafkaProperties) -> Self {
        let mut c = self.clone();
        c.producer
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        c
    }

    /// These properties with `extra` added to the consumers' (extra wins).
    pub fn with_consumer(&self, extra: &KafkaProperties) -> Self {
        let mut c = self.clone();
        c.consumer
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        c
    }

    /// Common and producer properties together: what a producer process should be handed.
    pub fn producer_properties(&self) -> KafkaProperties {
        let mut m = self.common.clone();
        m.extend(self.producer.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }

    /// Common and consumer properties together: what a consumer process should be handed.
    pub fn consumer_properties(&self) -> KafkaProperties {
        let mut m = self.common.clone();
        m.extend(self.consumer.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }
}

/// librdkafka properties a user adds for one client (`[kafka]` in MASS's and MASA's settings, `--kafka KEY=VALUE`
/// on their command lines). They go over the broker's recommended properties.
pub type KafkaProperties = BTreeMap<String, String>;

/// Read a `[kafka]` table whose values may be strings, integers, floats or booleans (librdkafka takes text).
pub fn deserialize_properties<'de, D>(d: D) -> Result<Option<KafkaProperties>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let m: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(m.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Text(s) => s,
                    Value::Int(i) => i.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Bool(b) => b.to_string(),
                };
                (k, v)
            })
            .collect()
    }))
}

/// Parse one `--kafka KEY=VALUE` flag.
pub fn parse_property_flag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}` is not KEY=VALUE (a librdkafka property, e.g. fetch.wait.max.ms=10)"
        )),
    }
}

/// Check user properties before anything starts: none that the application sets itself (`reserved` pairs a
/// property with the setting to use instead), and every name and value accepted by librdkafka.
pub fn check_properties(props: &KafkaProperties, reserved: &[(&str, &str)]) -> Result<(), String> {
    let mut c = ClientConfig::new();
    for (k, v) in props {
        if let Some((_, instead)) = reserved.iter().find(|(r, _)| r == k) {
            return Err(format!(
                "kafka property `{k}` has a setting of its own: use {instead}"
            ));
        }
        c.set(k, v);
    }
    c.create_native_config()
        .map(|_| ())
        .map_err(|e| format!("kafka properties: {e}"))
}

/// Partitions of a topic created through a connection nobody described (plain `--bootstrap-servers`).
pub const DEFAULT_TOPIC_PARTITIONS: u32 = 12;

/// Where a client's brokers are and how to talk to them.
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
    /// Brokers nobody described: generic Kafka client settings, [`DEFAULT_TOPIC_PARTITIONS`] per topic.
    pub fn to_brokers(bootstrap: &str) -> Self {
        Connection {
            bootstrap: bootstrap.to_string(),
            client: ClientProperties::for_distribution("external"),
            default_partitions: DEFAULT_TOPIC_PARTITIONS,
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
        assert_eq!(prod.get("queue.buffering.max.kbytes"), Some("65536"));
        assert_eq!(prod.get("message.max.bytes"), Some("16777216"));
        let k = ClientProperties::for_distribution("apache-kafka");
        assert_eq!(k.consumer.get("fetch.wait.max.ms"), None);
    }

    #[test]
    fn user_properties_are_checked_and_go_over_the_recommended_ones() {
        let props = |kv: &[(&str, &str)]| -> KafkaProperties {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let reserved = [("acks", "`acks`")];
        assert!(check_properties(&props(&[("fetch.wait.max.ms", "10")]), &reserved).is_ok());
        let e = check_properties(&props(&[("acks", "1")]), &reserved).unwrap_err();
        assert!(e.contains("`acks`"), "{e}");
        let e = check_properties(&props(&[("no.such.property", "1")]), &reserved).unwrap_err();
        assert!(e.contains("no.such.property"), "{e}");
        let e = check_properties(&props(&[("fetch.wait.max.ms", "soon")]), &reserved).unwrap_err();
        assert!(e.contains("fetch.wait.max.ms"), "{e}");

        let tansu = ClientProperties::for_distribution("tansu");
        let c = tansu.with_consumer(&props(&[("fetch.wait.max.ms", "50")]));
        assert_eq!(c.consumer["fetch.wait.max.ms"], "50");
        assert_eq!(tansu.consumer["fetch.wait.max.ms"], "10");
        let all = tansu.consumer_properties();
        assert_eq!(all["message.max.bytes"], MAX_MESSAGE_BYTES.to_string());
        assert_eq!(all["fetch.wait.max.ms"], "10");
        assert!(!tansu
            .producer_properties()
            .contains_key("fetch.wait.max.ms"));

        assert_eq!(
            parse_property_flag("linger.ms=5"),
            Ok(("linger.ms".into(), "5".into()))
        );
        assert_eq!(
            parse_property_flag("client.id=a=b"),
            Ok(("client.id".into(), "a=b".into()))
        );
        assert!(parse_property_flag("oops").is_err());
        assert!(parse_property_flag("=1").is_err());

        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "deserialize_properties")]
            kafka: Option<KafkaProperties>,
        }
        let t: T = toml::from_str(
            "[kafka]\n\"fetch.wait.max.ms\" = 10\n\"check.crcs\" = true\n\"client.id\" = \"x\"\n",
        )
        .unwrap();
        let k = t.kafka.unwrap();
        assert_eq!(
            (
                k["fetch.wait.max.ms"].as_str(),
                k["check.crcs"].as_str(),
                k["client.id"].as_str()
            ),
            ("10", "true", "x")
        );
    }
}
