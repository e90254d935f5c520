//! MASS settings: [`RawConfig`] (a TOML file and/or flags; unknown keys rejected) validated into a
//! [`ProducerPlan`] before anything connects, so `mass run --dry-run` prints exactly what would run.

use std::path::PathBuf;

use pilot_core::config::{check_topic, default_run_id, positive};
pub use pilot_core::config::{ConfigError, Settings};
use pilot_core::message::Encoding;
use serde::{Deserialize, Serialize};

use crate::rate::Rate;
use crate::source::{AngleConvention, ClusterParams, TemplateMode};

/// Default librdkafka batch.size for a message of `message_bytes` (see `RawConfig::batch_size`).
pub fn default_batch_bytes(message_bytes: usize) -> u32 {
    if message_bytes < 1_000_000 {
        4_000_000
    } else {
        1_000_000
    }
}

/// MASS settings as written. Every field is optional; [`RawConfig::validate`] fills defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Brokers, `host:port[,host:port]`. Either this or `pilot`.
    pub bootstrap_servers: Option<String>,
    /// Id of a running Kafka pilot to produce into (its brokers and client settings are used).
    pub pilot: Option<String>,
    /// The pilots' working directory (with `pilot`). Default `$PILOT_WORKDIR` or `pilots`.
    pub pilot_workdir: Option<PathBuf>,
    /// Topic to produce into.
    pub topic: Option<String>,
    /// Create the topic if it does not exist.
    pub create_topic: Option<bool>,
    /// Partitions when creating the topic (default: the pilot's default, else 12).
    pub partitions: Option<u32>,
    /// `cluster` (default), `static`, `template`, `synthetic`.
    pub source: Option<String>,
    /// `envelope` (default), `points-text`, `hdf5-raw`, `hdf5-hex`.
    pub encoding: Option<String>,
    /// Cluster source: number of centres (k). Default 10.
    pub clusters: Option<usize>,
    /// Cluster source: coordinates per point. Default 3.
    pub dims: Option<usize>,
    /// Cluster source: points per message. Default 5,000.
    pub points_per_message: Option<usize>,
    /// Cluster source: standard deviation around a centre. Default 1.0.
    pub spread: Option<f64>,
    /// Seed of the run (centres, points, synthetic bytes). Default 1.
    pub seed: Option<u64>,
    /// Synthetic source: bytes per message (payload). Default 1 MB.
    pub message_bytes: Option<usize>,
    /// Template source: APS Data Exchange HDF5 file.
    pub template_file: Option<PathBuf>,
    /// Template source: `whole-file` (default, as the paper) or `rows`.
    pub template_mode: Option<String>,
    /// Template source, rows mode: sinogram rows per message. Default 1.
    pub rows_per_message: Option<usize>,
    /// Template source, rows mode: angles from the `file` (default) or the `paper` convention.
    pub angles: Option<String>,
    /// Stop after this many messages (all threads together).
    pub messages: Option<u64>,
    /// Stop after this many seconds.
    pub duration_s: Option<f64>,
    /// Seconds at the start whose messages are counted apart (warm-up).
    pub warmup_s: Option<f64>,
    /// Target rate, messages per second (all threads). Default unlimited.
    pub rate_msgs_per_s: Option<f64>,
    /// Target rate, MB per second (10^6 bytes of message body).
    pub rate_mb_per_s: Option<f64>,
    /// Producer threads in this process. Default 1.
    pub threads: Option<u32>,
    /// Producer id of the first thread (threads get consecutive ids). Default 0.
    pub producer_id_base: Option<u32>,
    /// `round-robin` (default; over partitions in runs of one batch, batch.size / message size messages) or
    /// `key-by-producer` (each producer's messages to one partition, in order).
    pub partitioning: Option<String>,
    /// `all` (default), `1` or `0`.
    pub acks: Option<String>,
    /// librdkafka linger.ms. Default 5.
    pub linger_ms: Option<u32>,
    /// librdkafka batch.size in bytes. Default: 4,000,000 for messages under 1 MB (librdkafka's 1 MB holds only 8
    /// point messages, and fewer, larger produce requests suit tansu), librdkafka's 1,000,000 for larger ones
    /// (one message per batch measured fastest for 2 MB messages).
    pub batch_size: Option<u32>,
    /// `none` (default), `gzip`, `snappy`, `lz4`, `zstd`.
    pub compression: Option<String>,
    /// A message not delivered within this many ms counts as failed. Default 30,000.
    pub message_timeout_ms: Option<u32>,
    /// Directory for `producer-summary.csv` and `producer-intervals.csv`.
    pub results_dir: Option<PathBuf>,
    /// Seconds between interval rows and progress lines. Default 1.
    pub interval_s: Option<f64>,
    /// Identifier written in every row. Default `mass-<time>-<pid>`.
    pub run_id: Option<String>,
    /// More librdkafka producer properties (`[kafka]` table; `--kafka KEY=VALUE`), over the broker's recommended
    /// ones. Settings with a key of their own (acks, linger_ms, ...) are rejected here.
    #[serde(
        default,
        deserialize_with = "pilot_core::client::deserialize_properties"
    )]
    pub kafka: Option<KafkaProperties>,
}

/// librdkafka properties MASS sets from its own settings, and the setting to use instead.
pub const RESERVED_PRODUCER_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "`bootstrap_servers` (or `pilot`)"),
    ("acks", "`acks`"),
    ("request.required.acks", "`acks`"),
    ("linger.ms", "`linger_ms`"),
    ("queue.buffering.max.ms", "`linger_ms`"),
    ("batch.size", "`batch_size`"),
    ("compression.type", "`compression`"),
    ("compression.codec", "`compression`"),
    ("message.timeout.ms", "`message_timeout_ms`"),
    ("delivery.timeout.ms", "`message_timeout_ms`"),
];

pub use pilot_core::client::{KafkaProperties, Target};

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum SourcePlan {
    Cluster(ClusterParams),
    Static(ClusterParams),
    Synthetic {
        bytes: usize,
        seed: u64,
    },
    Template {
        file: PathBuf,
        mode: TemplateMode,
        angles: AngleConvention,
    },
}

impl SourcePlan {
    /// The name used in configs and results.
    pub fn name(&self) -> &'static str {
        match self {
            SourcePlan::Cluster(_) => "cluster",
            SourcePlan::Static(_) => "static",
            SourcePlan::Synthetic { .. } => "synthetic",
            SourcePlan::Template { .. } => "template",
        }
    }
}

/// How messages map to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Partitioning {
    RoundRobin,
    KeyByProducer,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    pub messages: Option<u64>,
    pub duration_s: Option<f64>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerPlan {
    pub target: Target,
    pub topic: String,
    pub create_topic: bool,
    pub partitions: Option<u32>,
    pub source: SourcePlan,
    pub encoding: Encoding,
    pub stop: StopRule,
    pub warmup_s: f64,
    /// As configured (MB/s is resolved to msgs/s once the message size is known).
    pub rate_msgs_per_s: Option<f64>,
    pub rate_mb_per_s: Option<f64>,
    pub threads: u32,
    pub producer_id_base: u32,
    pub partitioning: Partitioning,
    pub acks: String,
    pub linger_ms: u32,
    /// None: chosen by message size ([`default_batch_bytes`]).
    pub batch_size: Option<u32>,
    pub compression: String,
    pub message_timeout_ms: u32,
    pub results_dir: Option<PathBuf>,
    pub interval_s: f64,
    pub run_id: String,
    /// The user's librdkafka properties (checked).
    pub kafka: KafkaProperties,
}

impl ProducerPlan {
    /// The target rate for a message of `message_bytes`.
    pub fn rate(&self, message_bytes: usize) -> Rate {
        match (self.rate_msgs_per_s, self.rate_mb_per_s) {
            (Some(r), _) => Rate::MsgsPerS(r),
            (None, Some(mb)) => Rate::MsgsPerS(mb * 1e6 / message_bytes.max(1) as f64),
            (None, None) => Rate::Unlimited,
        }
    }

    /// A human-readable summary for `--dry-run`.
    pub fn describe(&self) -> String {
        let target = self.target.to_string();
        let source = match &self.source {
            SourcePlan::Cluster(p) | SourcePlan::Static(p) => format!(
                "{} ({} points x {}-D per message, k = {}, spread {}, seed {})",
                self.source.name(),
                p.points_per_message,
                p.dims,
                p.clusters,
                p.spread,
                p.seed
            ),
            SourcePlan::Synthetic { bytes, seed } => {
                format!("synthetic ({bytes} B per message, seed {seed})")
            }
            SourcePlan::Template { file, mode, angles } => {
                format!("template {} ({mode:?}, angles {angles:?})", file.display())
            }
        };
        let stop = match (self.stop.messages, self.stop.duration_s) {
            (Some(m), Some(d)) => format!("{m} messages or {d} s, whichever first"),
            (Some(m), None) => format!("{m} messages"),
            (None, Some(d)) => format!("{d} s"),
            (None, None) => unreachable!("validated"),
        };
        let rate = match (self.rate_msgs_per_s, self.rate_mb_per_s) {
            (Some(r), _) => format!("{r} msg/s"),
            (None, Some(m)) => format!("{m} MB/s"),
            _ => "unlimited".into(),
        };
        format!(
            "run id:        {}\ntarget:        {target}\ntopic:         {}{}\nsource:        {source}\nencoding:      {}\nstop after:    {stop} (warm-up {} s)\nrate:          {rate}\nthreads:       {} (producer ids {}..{})\npartitioning:  {:?}\nclient:        acks={} linger.ms={} batch.size={} compression={} message.timeout.ms={}{}\nresults:       {}\n",
            self.run_id,
            self.topic,
            if self.create_topic { " (created if missing)" } else { "" },
            self.encoding,
            self.warmup_s,
            self.threads,
            self.producer_id_base,
            self.producer_id_base + self.threads - 1,
            self.partitioning,
            self.acks,
            self.linger_ms,
            self.batch_size.map(|b| b.to_string()).unwrap_or_else(|| "by message size".into()),
            self.compression,
            self.message_timeout_ms,
            self.kafka.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>(),
            self.results_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "(none)".into()),
        )
    }
}

impl Settings for RawConfig {
    type Plan = ProducerPlan;
    const APP: &'static str = "MASS";

    fn check(&self) -> Result<ProducerPlan, String> {
        let target = Target::from_options(
            self.bootstrap_servers.as_deref(),
            self.pilot.as_deref(),
            self.pilot_workdir.as_deref(),
        )?;
        let topic = self.topic.clone().ok_or("topic is required")?;
        check_topic(&topic)?;
        if self.partitions == Some(0) {
            return Err("partitions must be at least 1".into());
        }
        let encoding = match self.encoding.as_deref().unwrap_or("envelope") {
            "envelope" => Encoding::Envelope,
            "points-text" => Encoding::PointsText,
            "hdf5-raw" => Encoding::Hdf5Raw,
            "hdf5-hex" => Encoding::Hdf5Hex,
            other => {
                return Err(format!(
                    "encoding `{other}` is unknown (envelope, points-text, hdf5-raw, hdf5-hex)"
                ))
            }
        };
        positive("spread", self.spread)?;
        let cluster = ClusterParams {
            clusters: self.clusters.unwrap_or(10),
            dims: self.dims.unwrap_or(3),
            points_per_message: self.points_per_message.unwrap_or(5_000),
            spread: self.spread.unwrap_or(1.0),
            box_half_width: 10.0,
            seed: self.seed.unwrap_or(1),
        };
        let source_name = self.source.as_deref().unwrap_or("cluster");
        let only = |key: &str, set: bool, for_sources: &[&str]| -> Result<(), String> {
            if set && !for_sources.contains(&source_name) {
                Err(format!(
                    "{key} applies to source {} (this run uses `{source_name}`)",
                    for_sources.join("/")
                ))
            } else {
                Ok(())
            }
        };
        only("clusters", self.clusters.is_some(), &["cluster", "static"])?;
        only("dims", self.dims.is_some(), &["cluster", "static"])?;
        only(
            "points_per_message",
            self.points_per_message.is_some(),
            &["cluster", "static"],
        )?;
        only("spread", self.spread.is_some(), &["cluster", "static"])?;
        only(
            "message_bytes",
            self.message_bytes.is_some(),
            &["synthetic"],
        )?;
        only("template_file", self.template_file.is_some(), &["template"])?;
        only("template_mode", self.template_mode.is_some(), &["template"])?;
        only(
            "rows_per_message",
            self.rows_per_message.is_some(),
            &["template"],
        )?;
        only("angles", self.angles.is_some(), &["template"])?;
        if cluster.clusters == 0 || cluster.dims == 0 || cluster.points_per_message == 0 {
            return Err("clusters, dims and points_per_message must be at least 1".into());
        }
        let source = match source_name {
            "cluster" | "static" => {
                if !matches!(encoding, Encoding::Envelope | Encoding::PointsText) {
                    return Err(format!("source {source_name} sends points: encoding must be envelope or points-text"));
                }
                if source_name == "cluster" {
                    SourcePlan::Cluster(cluster)
                } else {
                    SourcePlan::Static(cluster)
                }
            }
            "synthetic" => {
                if encoding != Encoding::Envelope {
                    return Err("source synthetic sends bytes in the envelope encoding only".into());
                }
                let bytes = self.message_bytes.unwrap_or(1_000_000);
                if bytes == 0 || bytes > pilot_core::client::MAX_MESSAGE_BYTES - 1024 {
                    return Err(format!(
                        "message_bytes must be 1..={} (the brokers' message limit less the header)",
                        pilot_core::client::MAX_MESSAGE_BYTES - 1024
                    ));
                }
                SourcePlan::Synthetic {
                    bytes,
                    seed: self.seed.unwrap_or(1),
                }
            }
            "template" => {
                let file = self
                    .template_file
                    .clone()
                    .ok_or("source template needs template_file (an APS HDF5 file)")?;
                if !file.is_file() {
                    return Err(format!("template_file {} does not exist", file.display()));
                }
                let mode = match self.template_mode.as_deref().unwrap_or("whole-file") {
                    "whole-file" => {
                        if self.rows_per_message.is_some() {
                            return Err("rows_per_message needs template_mode = \"rows\"".into());
                        }
                        TemplateMode::WholeFile
                    }
                    "rows" => TemplateMode::Rows {
                        rows: self.rows_per_message.unwrap_or(1),
                    },
                    other => {
                        return Err(format!(
                            "template_mode `{other}` is unknown (whole-file, rows)"
                        ))
                    }
                };
                let angles = match self.angles.as_deref().unwrap_or("file") {
                    "file" => AngleConvention::File,
                    "paper" => AngleConvention::Paper,
                    other => return Err(format!("angles `{other}` is unknown (file, paper)")),
                };
                if encoding == Encoding::PointsText
                    || (matches!(mode, TemplateMode::Rows { .. }) && encoding != Encoding::Envelope)
                {
                    return Err("template: whole files travel as envelope, hdf5-raw or hdf5-hex; row blocks as envelope".into());
                }
                SourcePlan::Template { file, mode, angles }
            }
            other => {
                return Err(format!(
                    "source `{other}` is unknown (cluster, static, template, synthetic)"
                ))
            }
        };
        positive("duration_s", self.duration_s)?;
        positive("interval_s", self.interval_s)?;
        positive("rate_msgs_per_s", self.rate_msgs_per_s)?;
        positive("rate_mb_per_s", self.rate_mb_per_s)?;
        if self.rate_msgs_per_s.is_some() && self.rate_mb_per_s.is_some() {
            return Err("give rate_msgs_per_s or rate_mb_per_s, not both".into());
        }
        let stop = StopRule {
            messages: self.messages,
            duration_s: self.duration_s,
        };
        if stop.messages == Some(0) {
            return Err("messages must be at least 1".into());
        }
        let stop = if stop.messages.is_none() && stop.duration_s.is_none() {
            StopRule {
                messages: Some(1_000),
                duration_s: None,
            }
        } else {
            stop
        };
        let warmup_s = self.warmup_s.unwrap_or(0.0);
        if !(warmup_s.is_finite() && warmup_s >= 0.0) {
            return Err(format!("warmup_s must be 0 or more (got {warmup_s})"));
        }
        if let Some(d) = stop.duration_s {
            if warmup_s >= d {
                return Err(format!(
                    "warmup_s ({warmup_s}) must be shorter than duration_s ({d})"
                ));
            }
        }
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            return Err(format!("threads must be 1..=256 (got {threads})"));
        }
        let partitioning = match self.partitioning.as_deref().unwrap_or("round-robin") {
            "round-robin" => Partitioning::RoundRobin,
            "key-by-producer" => Partitioning::KeyByProducer,
            other => {
                return Err(format!(
                    "partitioning `{other}` is unknown (round-robin, key-by-producer)"
                ))
            }
        };
        let acks = self.acks.clone().unwrap_or_else(|| "all".into());
        if !["all", "-1", "0", "1"].contains(&acks.as_str()) {
            return Err(format!("acks `{acks}` is unknown (all, 1, 0)"));
        }
        let compression = self.compression.clone().unwrap_or_else(|| "none".into());
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression.as_str()) {
            return Err(format!(
                "compression `{compression}` is unknown (none, gzip, snappy, lz4, zstd)"
            ));
        }
        let kafka = self.kafka.clone().unwrap_or_default();
        pilot_core::client::check_properties(&kafka, RESERVED_PRODUCER_PROPERTIES)?;
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| default_run_id("mass"));
        Ok(ProducerPlan {
            kafka,
            target,
            topic,
            create_topic: self.create_topic.unwrap_or(false),
            partitions: self.partitions,
            source,
            encoding,
            stop,
            warmup_s,
            rate_msgs_per_s: self.rate_msgs_per_s,
            rate_mb_per_s: self.rate_mb_per_s,
            threads,
            producer_id_base: self.producer_id_base.unwrap_or(0),
            partitioning,
            acks,
            linger_ms: self.linger_ms.unwrap_or(5),
            batch_size: self.batch_size,
            compression,
            message_timeout_ms: self.message_timeout_ms.unwrap_or(30_000),
            results_dir: self.results_dir.clone(),
            interval_s: self.interval_s.unwrap_or(1.0),
            run_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawConfig {
        RawConfig {
            bootstrap_servers: Some("127.0.0.2:9092".into()),
            topic: Some("t".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_papers_kmeans_stream() {
        let p = base().validate("test").unwrap();
        assert_eq!(p.source, SourcePlan::Cluster(ClusterParams::default()));
        assert_eq!(p.encoding, Encoding::Envelope);
        assert_eq!(
            p.stop,
            StopRule {
                messages: Some(1000),
                duration_s: None
            }
        );
        assert_eq!(p.rate(1000), Rate::Unlimited);
        assert_eq!(
            (p.threads, p.acks.as_str(), p.partitioning),
            (1, "all", Partitioning::RoundRobin)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = RawConfig::from_toml("topic = \"t\"\npoints_per_msg = 5\n", "mass.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mass.toml") && e.contains("points_per_msg") && e.contains("line 2"),
            "{e}"
        );
        let cases: Vec<(RawConfig, &str)> = vec![
            (
                RawConfig {
                    topic: Some("t".into()),
                    ..Default::default()
                },
                "bootstrap_servers",
            ),
            (
                RawConfig {
                    bootstrap_servers: Some("nohost".into()),
                    ..base()
                },
                "host:port",
            ),
            (
                RawConfig {
                    topic: Some("bad topic".into()),
                    ..base()
                },
                "not a valid Kafka topic",
            ),
            (
                RawConfig {
                    source: Some("kmeans".into()),
                    ..base()
                },
                "source `kmeans` is unknown",
            ),
            (
                RawConfig {
                    rate_msgs_per_s: Some(-1.0),
                    ..base()
                },
                "rate_msgs_per_s must be a positive",
            ),
            (
                RawConfig {
                    rate_msgs_per_s: Some(1.0),
                    rate_mb_per_s: Some(1.0),
                    ..base()
                },
                "not both",
            ),
            (
                RawConfig {
                    message_bytes: Some(10),
                    ..base()
                },
                "message_bytes applies to source synthetic",
            ),
            (
                RawConfig {
                    source: Some("template".into()),
                    ..base()
                },
                "needs template_file",
            ),
            (
                RawConfig {
                    encoding: Some("hdf5-hex".into()),
                    ..base()
                },
                "encoding must be envelope or points-text",
            ),
            (
                RawConfig {
                    threads: Some(0),
                    ..base()
                },
                "threads must be",
            ),
            (
                RawConfig {
                    duration_s: Some(5.0),
                    warmup_s: Some(5.0),
                    ..base()
                },
                "shorter than duration_s",
            ),
            (
                RawConfig {
                    acks: Some("most".into()),
                    ..base()
                },
                "acks `most`",
            ),
        ];
        for (raw, want) in cases {
            let e = raw.validate("flags").unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn mb_per_s_resolves_against_the_message_size() {
        let p = RawConfig {
            rate_mb_per_s: Some(100.0),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert_eq!(p.rate(2_000_000), Rate::MsgsPerS(50.0));
    }

    #[test]
    fn kafka_properties_are_checked_and_shown() {
        let raw = RawConfig::from_toml(
            "topic = \"t\"\nbootstrap_servers = \"127.0.0.2:9092\"\n[kafka]\n\"queue.buffering.max.kbytes\" = 65536\n",
            "t.toml",
        )
        .unwrap();
        let plan = raw.validate("t.toml").unwrap();
        assert_eq!(plan.kafka["queue.buffering.max.kbytes"], "65536");
        assert!(plan.describe().contains("queue.buffering.max.kbytes=65536"));
        for (k, want) in [("linger.ms", "`linger_ms`"), ("bogus.prop", "bogus.prop")] {
            let e = RawConfig {
                kafka: Some([(k.to_string(), "1".to_string())].into()),
                ..base()
            }
            .validate("flags")
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }
}
