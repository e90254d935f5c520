//! MASS settings: [`RawConfig`] (a TOML file and/or flags; unknown keys rejected) validated into a
//! [`ProducerPlan`] before anything connects, so `mass run --dry-run` prints exactly what would run.
//!
//! Every setting is declared once, in [`RawConfig`]: its serde form is the TOML key, its clap form the flag of the
//! same name (`points_per_message` / `--points-per-message`), and its doc comment the help text. Enum-like values
//! are value enums (unknown ones are refused by name, with the choices); [`Settings::check`] errors carry the key.

use std::path::PathBuf;

use clap::ValueEnum;
use pilot_core::contract::aps::{AngleSource, ThetaUnits};
use pilot_core::contract::config::{check_topic, default_run_id, positive, seconds, SettingError};
pub use pilot_core::contract::config::{ConfigError, Settings};
use pilot_core::contract::message::Encoding;
use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::rate::Rate;
use crate::source::{ClusterParams, TemplateMode};

/// Default librdkafka batch.size for a message of `message_bytes` (see `RawConfig::batch_size`).
pub fn default_batch_bytes(message_bytes: usize) -> u32 {
    if message_bytes < 1_000_000 {
        4_000_000
    } else {
        1_000_000
    }
}

/// Highest rate a setting may ask for, messages per second.
pub const MAX_RATE_MSGS_PER_S: f64 = 1e9;

/// What MASS sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Fresh random points around k centres for every message (KMeans input).
    #[default]
    Cluster,
    /// One block of points generated once and resent.
    Static,
    /// An APS Data Exchange HDF5 file, whole or in row blocks.
    Template,
    /// A random blob of a given size.
    Synthetic,
    /// A detector streaming one message per frame: darks, flats, projections of the 3-D phantom in an angle order.
    Frames,
}

/// How a template file is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateLayout {
    /// The whole HDF5 file per message (as the paper).
    #[default]
    WholeFile,
    /// Blocks of sinogram rows (`rows_per_message`) with flats, darks and angles.
    Rows,
}

/// How messages map to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Over partitions in runs of one batch (batch.size / message size messages).
    #[default]
    RoundRobin,
    /// Each producer's messages to one partition, in order.
    KeyByProducer,
}

/// Broker acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Acks {
    /// Every in-sync replica (`all`, also written `-1`).
    #[default]
    #[value(name = "all", alias = "-1")]
    All,
    /// The partition leader only.
    #[value(name = "1")]
    Leader,
    /// None (fire and forget).
    #[value(name = "0")]
    None,
}

impl Acks {
    /// librdkafka's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

impl Serialize for Acks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum V {
            Text(String),
            Int(i64),
        }
        let text = match V::deserialize(d)? {
            V::Text(t) => t,
            V::Int(i) => i.to_string(),
        };
        Acks::from_str(&text, false)
            .map_err(|_| serde::de::Error::custom(format!("acks `{text}` is unknown (all, 1, 0)")))
    }
}

/// Compression of produce batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// MASS settings as written (a TOML file, and the `mass run` flags of the same names). Every field is optional;
/// [`Settings::check`] fills defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Brokers, host:port[,host:port] (or --pilot)
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A running Kafka pilot's id: its brokers and recommended client properties (instead of --bootstrap-servers)
    #[arg(long)]
    pub pilot: Option<String>,
    /// The pilots' working directory [default: $PILOT_WORKDIR or ./pilots]
    #[arg(long)]
    pub pilot_workdir: Option<PathBuf>,
    /// Topic to produce into (required)
    #[arg(long)]
    pub topic: Option<String>,
    /// Create the topic if it is missing
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub create_topic: Option<bool>,
    /// Partitions when creating the topic [default: the pilot's, else 12]
    #[arg(long)]
    pub partitions: Option<u32>,
    /// What to send [default: cluster]
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,
    /// Message body encoding [default: envelope]
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// Cluster source: number of centres k [default: 10]
    #[arg(long)]
    pub clusters: Option<usize>,
    /// Cluster source: coordinates per point [default: 3]
    #[arg(long)]
    pub dims: Option<usize>,
    /// Cluster source: points per message [default: 5000]
    #[arg(long)]
    pub points_per_message: Option<usize>,
    /// Cluster source: standard deviation around a centre [default: 1.0]
    #[arg(long)]
    pub spread: Option<f64>,
    /// Seed for centres, points and synthetic bytes (per producer id) [default: 1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Synthetic source: payload bytes per message [default: 1000000]
    #[arg(long)]
    pub message_bytes: Option<usize>,
    /// Template source: APS Data Exchange HDF5 file (e.g. data/tooth.h5, or one from `mass phantom`)
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Template source: whole files or row blocks per message [default: whole-file]
    #[arg(long, value_enum)]
    pub template_mode: Option<TemplateLayout>,
    /// Template source, rows mode: sinogram rows per message [default: 1]
    #[arg(long)]
    pub rows_per_message: Option<usize>,
    /// Template source, rows mode: angles from the file or the paper's convention [default: file]
    #[arg(long, value_enum)]
    pub angles: Option<AngleSource>,
    /// Template source, rows mode: unit of the file's angles [default: auto, from their units attribute or range]
    #[arg(long, value_enum)]
    pub theta_units: Option<ThetaUnits>,
    /// Template source, rows mode: open-beam counts for a file without flat fields [default: from the data]
    #[arg(long)]
    pub open_beam_counts: Option<f64>,
    /// Frames source: detector rows per frame [default: 256]
    #[arg(long)]
    pub frame_rows: Option<u32>,
    /// Frames source: detector columns per frame [default: 256]
    #[arg(long)]
    pub frame_cols: Option<u32>,
    /// Frames source: projections per 180 degrees [default: about pi/2 x columns, as real scans sample]
    #[arg(long)]
    pub projections_per_180: Option<u32>,
    /// Frames source: sequential, back-and-forth, interlaced:K or golden [default: golden]
    #[arg(long)]
    pub angle_order: Option<String>,
    /// Frames source: dark frames at the start and at every re-take [default: 10]
    #[arg(long)]
    pub darks: Option<u32>,
    /// Frames source: flat frames at the start and at every re-take [default: 10]
    #[arg(long)]
    pub flats: Option<u32>,
    /// Frames source: take darks and flats again after this many projections, a new epoch (0: never) [default: 0]
    #[arg(long)]
    pub retake_every: Option<u64>,
    /// Frames source: obey commands on this topic (stop, pause, resume, set_rate, retake_fields, set_rows; JSON)
    /// and answer each there with the first frame it applied to [default: none]
    #[arg(long)]
    pub control_topic: Option<String>,
    /// Stop after this many messages [default: 1000 unless --duration-s or a finite --rate-profile]
    #[arg(long)]
    pub messages: Option<u64>,
    /// Stop after this many seconds (instead of --messages)
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Seconds at the start counted apart as warm-up [default: 0]
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Target rate, messages/s over all threads, open-loop schedule [default: unlimited]
    #[arg(long)]
    pub rate_msgs_per_s: Option<f64>,
    /// Target rate, MB/s (10^6 B of message body) [default: unlimited]
    #[arg(long)]
    pub rate_mb_per_s: Option<f64>,
    /// Target rate over time, msg/s over all threads: constant:R, steps:R1@S1,R2@S2,..., ramp:R1..R2@S (steps
    /// and ramps mix), sine:MEAN,AMPLITUDE,PERIOD_S, bursts:ON_RATE@ON_S,OFF_RATE@OFF_S (repeating), trace:FILE.csv
    /// (time_s,rate rows, linear between them). A finite profile ends the run when it ends
    #[arg(long)]
    pub rate_profile: Option<String>,
    /// Cluster source: points per message over time, in the rate profile's grammar (rounded, at least 1)
    #[arg(long)]
    pub points_profile: Option<String>,
    /// Producer threads in this process, one connection each [default: 1]
    #[arg(long)]
    pub threads: Option<u32>,
    /// Producer id of the first thread; threads get consecutive ids [default: 0]
    #[arg(long)]
    pub producer_id_base: Option<u32>,
    /// How messages map to partitions [default: round-robin]
    #[arg(long, value_enum)]
    pub partitioning: Option<Partitioning>,
    /// Broker acknowledgements to wait for [default: all]
    #[arg(long, value_enum)]
    pub acks: Option<Acks>,
    /// librdkafka linger.ms [default: 5]
    #[arg(long)]
    pub linger_ms: Option<u32>,
    /// librdkafka batch.size, bytes [default: 4000000 for messages under 1 MB (librdkafka's 1 MB holds only 8
    /// point messages, and fewer, larger produce requests suit tansu), else 1000000 (one message per batch measured
    /// fastest for 2 MB messages)]
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Batch compression [default: none]
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// A message not delivered within this many ms counts as failed [default: 30000]
    #[arg(long)]
    pub message_timeout_ms: Option<u32>,
    /// Directory for producer-summary.csv and producer-intervals.csv
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Seconds between interval rows and progress lines [default: 1]
    #[arg(long)]
    pub interval_s: Option<f64>,
    /// Identifier written in every result row [default: mass-<time>-<pid>]
    #[arg(long)]
    pub run_id: Option<String>,
    /// More librdkafka producer properties (`[kafka]` table; on the command line `--kafka KEY=VALUE`), over the
    /// broker's recommended ones. Properties with a setting of their own (acks, linger_ms, ...) are refused.
    #[serde(
        default,
        deserialize_with = "pilot_core::contract::client::deserialize_properties",
        skip_serializing_if = "Option::is_none"
    )]
    #[arg(skip)]
    pub kafka: Option<KafkaProperties>,
}

/// The settings that name files (an experiment resolves them against its own directory).
pub const PATH_SETTINGS: &[&str] = &["template_file", "results_dir", "pilot_workdir"];

/// The settings that hold a [`Profile`] (a `trace:FILE` in them is a file an experiment resolves the same way).
pub const PROFILE_SETTINGS: &[&str] = &["rate_profile", "points_profile"];

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

pub use pilot_core::contract::client::KafkaProperties;
pub use pilot_core::pilots::connect::Target;

/// A validated template source.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePlan {
    pub file: PathBuf,
    pub mode: TemplateMode,
    pub angles: AngleSource,
    pub theta_units: ThetaUnits,
    pub open_beam_counts: Option<f64>,
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum SourcePlan {
    Cluster(ClusterParams),
    Static(ClusterParams),
    Synthetic { bytes: usize, seed: u64 },
    Template(TemplatePlan),
    Frames(crate::frames::FrameParams),
}

impl SourcePlan {
    /// The name used in configs and results.
    pub fn name(&self) -> &'static str {
        match self {
            SourcePlan::Cluster(_) => "cluster",
            SourcePlan::Static(_) => "static",
            SourcePlan::Synthetic { .. } => "synthetic",
            SourcePlan::Template { .. } => "template",
            SourcePlan::Frames(_) => "frames",
        }
    }
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
    /// The topic commands come from (frames source).
    pub control_topic: Option<String>,
    pub create_topic: bool,
    pub partitions: Option<u32>,
    pub source: SourcePlan,
    pub encoding: Encoding,
    pub stop: StopRule,
    pub warmup_s: f64,
    /// As configured (MB/s is resolved to msgs/s once the message size is known).
    pub rate_msgs_per_s: Option<f64>,
    pub rate_mb_per_s: Option<f64>,
    /// A rate that changes over the run (exclusive with the two above), and its spec as written.
    pub rate_profile: Option<(Profile, String)>,
    /// Points per message over the run (cluster source), and its spec as written.
    pub points_profile: Option<(Profile, String)>,
    pub threads: u32,
    pub producer_id_base: u32,
    pub partitioning: Partitioning,
    pub acks: Acks,
    pub linger_ms: u32,
    /// None: chosen by message size ([`default_batch_bytes`]).
    pub batch_size: Option<u32>,
    pub compression: Compression,
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
        if let Some((p, _)) = &self.rate_profile {
            return Rate::Profile(std::sync::Arc::new(p.clone()));
        }
        match (self.rate_msgs_per_s, self.rate_mb_per_s) {
            (Some(r), _) => Rate::MsgsPerS(r),
            (None, Some(mb)) => Rate::MsgsPerS(
                (mb * 1e6 / message_bytes.max(1) as f64).clamp(1.0 / 1e9, MAX_RATE_MSGS_PER_S),
            ),
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
            SourcePlan::Template(t) => format!(
                "template {} ({:?}, angles {:?}, theta units {:?}{})",
                t.file.display(),
                t.mode,
                t.angles,
                t.theta_units,
                t.open_beam_counts
                    .map(|c| format!(", open beam {c} counts"))
                    .unwrap_or_default()
            ),
            SourcePlan::Frames(f) => format!(
                "frames ({} x {} u16, {} projections per 180 degrees, {} order, {} darks and {} flats{})",
                f.rows,
                f.cols,
                f.projections_per_180,
                f.order,
                f.darks,
                f.flats,
                if f.retake_every > 0 {
                    format!(", again every {} projections", f.retake_every)
                } else {
                    String::new()
                },
            ) + &self
                .control_topic
                .as_ref()
                .map(|c| format!("; commands from topic {c}"))
                .unwrap_or_default(),
        };
        let stop = match (self.stop.messages, self.stop.duration_s) {
            (Some(m), Some(d)) => format!("{m} messages or {d} s, whichever first"),
            (Some(m), None) => format!("{m} messages"),
            (None, Some(d)) => format!("{d} s"),
            (None, None) => unreachable!("validated"),
        };
        let mut rate = match (&self.rate_profile, self.rate_msgs_per_s, self.rate_mb_per_s) {
            (Some((p, spec)), _, _) => format!(
                "{spec} msg/s (peak {}, {})",
                p.max_value(),
                p.duration_s()
                    .map(|d| format!("ends after {d} s"))
                    .unwrap_or_else(|| "for ever".into())
            ),
            (None, Some(r), _) => format!("{r} msg/s"),
            (None, None, Some(m)) => format!("{m} MB/s"),
            _ => "unlimited".into(),
        };
        if let Some((p, spec)) = &self.points_profile {
            rate += &format!(
                "\npoints:        {spec} per message (peak {})",
                p.max_value()
            );
        }
        format!(
            "run id:        {}\ntarget:        {target}\ntopic:         {}{}\nsource:        {source}\nencoding:      {}\nstop after:    {stop} (warm-up {} s)\nrate:          {rate}\nthreads:       {} (producer ids {}..{})\npartitioning:  {:?}\nclient:        acks={} linger.ms={} batch.size={} compression={} message.timeout.ms={}{}\nresults:       {}\n",
            self.run_id,
            self.topic,
            if self.create_topic { " (created if missing)" } else { "" },
            self.encoding,
            self.warmup_s,
            self.threads,
            self.producer_id_base,
            self.producer_id_base + (self.threads - 1),
            self.partitioning,
            self.acks.as_str(),
            self.linger_ms,
            self.batch_size.map(|b| b.to_string()).unwrap_or_else(|| "by message size".into()),
            self.compression.as_str(),
            self.message_timeout_ms,
            self.kafka.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>(),
            self.results_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "(none)".into()),
        )
    }
}

fn err(key: &str, message: impl Into<String>) -> SettingError {
    SettingError::key(key, message)
}

impl RawConfig {
    fn template(&self, encoding: Encoding) -> Result<TemplatePlan, SettingError> {
        let file = self.template_file.clone().ok_or_else(|| {
            err(
                "template_file",
                "source template needs template_file (an APS HDF5 file)",
            )
        })?;
        let mode = match self.template_mode.unwrap_or_default() {
            TemplateLayout::WholeFile => {
                if self.rows_per_message.is_some() {
                    return Err(err(
                        "rows_per_message",
                        "rows_per_message needs template_mode = \"rows\"",
                    ));
                }
                for (key, set) in [
                    ("angles", self.angles.is_some()),
                    ("theta_units", self.theta_units.is_some()),
                    ("open_beam_counts", self.open_beam_counts.is_some()),
                ] {
                    if set {
                        return Err(err(key, format!("{key} applies to template_mode = \"rows\" (whole files are normalised by the consumer: set it there)")));
                    }
                }
                if !matches!(
                    encoding,
                    Encoding::Envelope | Encoding::Hdf5Raw | Encoding::Hdf5Hex
                ) {
                    return Err(err(
                        "encoding",
                        "template: whole files travel as envelope, hdf5-raw or hdf5-hex",
                    ));
                }
                TemplateMode::WholeFile
            }
            TemplateLayout::Rows => {
                if encoding != Encoding::Envelope {
                    return Err(err(
                        "encoding",
                        "template: row blocks travel only in the envelope encoding (projections)",
                    ));
                }
                let rows = self.rows_per_message.unwrap_or(1);
                if rows == 0 {
                    return Err(err(
                        "rows_per_message",
                        "rows_per_message must be at least 1",
                    ));
                }
                TemplateMode::Rows { rows }
            }
        };
        positive("open_beam_counts", self.open_beam_counts)?;
        let plan = TemplatePlan {
            file,
            mode,
            angles: self.angles.unwrap_or_default(),
            theta_units: self.theta_units.unwrap_or_default(),
            open_beam_counts: self.open_beam_counts,
        };
        // Open the file now, exactly as the run will, so a dry run (and an experiment's plan) refuses what the
        // run would refuse.
        crate::source::TemplateSource::check(&plan).map_err(|e| err("template_file", e))?;
        Ok(plan)
    }
}

impl RawConfig {
    /// Where the producer sends: brokers or a pilot, and the topic.
    fn connection(&self) -> Result<(Target, String), SettingError> {
        let target = Target::setting(
            self.bootstrap_servers.as_deref(),
            self.pilot.as_deref(),
            self.pilot_workdir.as_deref(),
        )?;
        let topic = self
            .topic
            .clone()
            .ok_or_else(|| err("topic", "topic is required"))?;
        check_topic(&topic)?;
        if self.partitions == Some(0) {
            return Err(err("partitions", "partitions must be at least 1"));
        }
        Ok((target, topic))
    }

    /// An error when `key` is `set` but belongs to other sources than this run's.
    fn only(&self, key: &str, set: bool, for_sources: &[SourceKind]) -> Result<(), SettingError> {
        let kind = self.source.unwrap_or_default();
        if !set || for_sources.contains(&kind) {
            return Ok(());
        }
        let name = |s: &SourceKind| s.to_possible_value().map(|v| v.get_name().to_string());
        let names: Vec<String> = for_sources.iter().filter_map(name).collect();
        Err(err(
            key,
            format!(
                "{key} applies to source {} (this run uses `{}`)",
                names.join("/"),
                name(&kind).unwrap_or_default()
            ),
        ))
    }

    /// The cluster sources' parameters, and every source setting checked against the run's source.
    fn cluster_params(&self) -> Result<ClusterParams, SettingError> {
        positive("spread", self.spread)?;
        let cluster = ClusterParams {
            clusters: self.clusters.unwrap_or(10),
            dims: self.dims.unwrap_or(3),
            points_per_message: self.points_per_message.unwrap_or(5_000),
            spread: self.spread.unwrap_or(1.0),
            box_half_width: 10.0,
            seed: self.seed.unwrap_or(1),
        };
        let only =
            |key: &str, set: bool, for_sources: &[SourceKind]| self.only(key, set, for_sources);
        use SourceKind::*;
        only("clusters", self.clusters.is_some(), &[Cluster, Static])?;
        only("dims", self.dims.is_some(), &[Cluster, Static])?;
        only(
            "points_per_message",
            self.points_per_message.is_some(),
            &[Cluster, Static],
        )?;
        only("spread", self.spread.is_some(), &[Cluster, Static])?;
        only("message_bytes", self.message_bytes.is_some(), &[Synthetic])?;
        for (key, set) in [
            ("template_file", self.template_file.is_some()),
            ("template_mode", self.template_mode.is_some()),
            ("rows_per_message", self.rows_per_message.is_some()),
            ("angles", self.angles.is_some()),
            ("theta_units", self.theta_units.is_some()),
            ("open_beam_counts", self.open_beam_counts.is_some()),
        ] {
            only(key, set, &[Template])?;
        }
        for (key, set) in [
            ("frame_rows", self.frame_rows.is_some()),
            ("frame_cols", self.frame_cols.is_some()),
            ("projections_per_180", self.projections_per_180.is_some()),
            ("angle_order", self.angle_order.is_some()),
            ("darks", self.darks.is_some()),
            ("flats", self.flats.is_some()),
            ("retake_every", self.retake_every.is_some()),
            ("control_topic", self.control_topic.is_some()),
        ] {
            only(key, set, &[Frames])?;
        }
        for (key, v) in [
            ("clusters", cluster.clusters),
            ("dims", cluster.dims),
            ("points_per_message", cluster.points_per_message),
        ] {
            if v == 0 {
                return Err(err(key, format!("{key} must be at least 1")));
            }
            if v > u32::MAX as usize {
                return Err(err(
                    key,
                    format!("{key} = {v} is more than a message can hold"),
                ));
            }
        }
        Ok(cluster)
    }

    /// The source, with an encoding it can send.
    fn source_plan(&self, encoding: Encoding) -> Result<SourcePlan, SettingError> {
        let cluster = self.cluster_params()?;
        let kind = self.source.unwrap_or_default();
        let source_name = kind.to_possible_value().expect("no skipped variants");
        let source_name = source_name.get_name();
        use SourceKind::*;
        Ok(match kind {
            Cluster | Static => {
                if !matches!(encoding, Encoding::Envelope | Encoding::PointsText) {
                    return Err(err(
                        "encoding",
                        format!("source {source_name} sends points: encoding must be envelope or points-text"),
                    ));
                }
                let bytes = (cluster.points_per_message as u128) * (cluster.dims as u128) * 8;
                if bytes > (pilot_core::contract::client::MAX_MESSAGE_BYTES - 1024) as u128 {
                    return Err(err(
                        "points_per_message",
                        format!(
                            "{} points x {} dims is {bytes} bytes, more than the brokers' message limit ({} B)",
                            cluster.points_per_message,
                            cluster.dims,
                            pilot_core::contract::client::MAX_MESSAGE_BYTES
                        ),
                    ));
                }
                if kind == Cluster {
                    SourcePlan::Cluster(cluster)
                } else {
                    SourcePlan::Static(cluster)
                }
            }
            Synthetic => {
                if encoding != Encoding::Envelope {
                    return Err(err(
                        "encoding",
                        "source synthetic sends bytes in the envelope encoding only",
                    ));
                }
                let bytes = self.message_bytes.unwrap_or(1_000_000);
                if bytes == 0 || bytes > pilot_core::contract::client::MAX_MESSAGE_BYTES - 1024 {
                    return Err(err(
                        "message_bytes",
                        format!(
                            "message_bytes must be 1..={} (the brokers' message limit less the header)",
                            pilot_core::contract::client::MAX_MESSAGE_BYTES - 1024
                        ),
                    ));
                }
                SourcePlan::Synthetic {
                    bytes,
                    seed: self.seed.unwrap_or(1),
                }
            }
            Template => {
                if encoding == Encoding::PointsText {
                    return Err(err(
                        "encoding",
                        "template: whole files travel as envelope, hdf5-raw or hdf5-hex; row blocks as envelope",
                    ));
                }
                SourcePlan::Template(self.template(encoding)?)
            }
            Frames => SourcePlan::Frames(self.frames(encoding)?),
        })
    }

    /// The frames source: one detector, frames in the envelope.
    fn frames(&self, encoding: Encoding) -> Result<crate::frames::FrameParams, SettingError> {
        if !matches!(encoding, Encoding::Envelope | Encoding::Ad00) {
            return Err(err(
                "encoding",
                "source frames sends detector frames as envelope or ad00",
            ));
        }
        if self.threads.unwrap_or(1) != 1 {
            return Err(err(
                "threads",
                "source frames is one detector, one stream of frames: threads must be 1 (run a MASS per detector)",
            ));
        }
        let order = match &self.angle_order {
            Some(s) => crate::angles::AngleOrder::parse(s)
                .map_err(|e| err("angle_order", e.to_string()))?,
            None => crate::angles::AngleOrder::Golden,
        };
        let rows = self.frame_rows.unwrap_or(256);
        let cols = self.frame_cols.unwrap_or(256);
        let p = crate::frames::FrameParams {
            rows,
            cols,
            projections_per_180: self
                .projections_per_180
                .unwrap_or_else(|| (std::f64::consts::FRAC_PI_2 * cols as f64).round() as u32),
            order,
            darks: self.darks.unwrap_or(10),
            flats: self.flats.unwrap_or(10),
            retake_every: self.retake_every.unwrap_or(0),
            center_px: cols as f64 / 2.0,
            ..crate::frames::FrameParams::default()
        };
        p.check().map_err(|e| err(e.key, e.message))?;
        let bytes = pilot_core::contract::frame::frame_payload_bytes(
            rows,
            cols,
            pilot_core::contract::message::Dtype::U16,
        )
        .unwrap_or(u64::MAX);
        if bytes > (pilot_core::contract::client::MAX_MESSAGE_BYTES - 1024) as u64 {
            return Err(err(
                "frame_rows",
                format!(
                    "a {rows} x {cols} u16 frame is {bytes} bytes, more than the brokers' message limit ({} B)",
                    pilot_core::contract::client::MAX_MESSAGE_BYTES
                ),
            ));
        }
        Ok(p)
    }

    /// The rate: a fixed rate (msg/s or MB/s) or a rate profile, within bounds.
    fn rate_profile(&self) -> Result<Option<(Profile, String)>, SettingError> {
        seconds("duration_s", self.duration_s)?;
        seconds("interval_s", self.interval_s)?;
        for (key, v) in [
            ("rate_msgs_per_s", self.rate_msgs_per_s),
            ("rate_mb_per_s", self.rate_mb_per_s),
        ] {
            positive(key, v)?;
            if v.is_some_and(|r| r > MAX_RATE_MSGS_PER_S) {
                return Err(err(
                    key,
                    format!("{key} must be at most {MAX_RATE_MSGS_PER_S:e}"),
                ));
            }
        }
        if self.rate_msgs_per_s.is_some_and(|r| r < 1e-6) {
            return Err(err(
                "rate_msgs_per_s",
                "rate_msgs_per_s must be at least 1e-6 (one message in 11.6 days)",
            ));
        }
        if self.rate_msgs_per_s.is_some() && self.rate_mb_per_s.is_some() {
            return Err(err(
                "rate_mb_per_s",
                "give rate_msgs_per_s or rate_mb_per_s, not both",
            ));
        }
        Ok(match &self.rate_profile {
            None => None,
            Some(spec) => {
                for (key, set) in [
                    ("rate_msgs_per_s", self.rate_msgs_per_s.is_some()),
                    ("rate_mb_per_s", self.rate_mb_per_s.is_some()),
                ] {
                    if set {
                        return Err(err(
                            "rate_profile",
                            format!("give rate_profile or {key}, not both"),
                        ));
                    }
                }
                let p = Profile::parse(spec, None).map_err(|m| err("rate_profile", m))?;
                if p.max_value() > MAX_RATE_MSGS_PER_S {
                    return Err(err(
                        "rate_profile",
                        format!("rate_profile reaches more than {MAX_RATE_MSGS_PER_S:e} msg/s"),
                    ));
                }
                if p.max_value() <= 0.0 {
                    return Err(err(
                        "rate_profile",
                        format!("rate_profile `{spec}` never sends (its rate is 0 throughout)"),
                    ));
                }
                Some((p, spec.clone()))
            }
        })
    }

    /// A points profile (cluster source only): the points per message over time, within the message limit.
    fn points_profile(&self) -> Result<Option<(Profile, String)>, SettingError> {
        use SourceKind::*;
        let only =
            |key: &str, set: bool, for_sources: &[SourceKind]| self.only(key, set, for_sources);
        Ok(match &self.points_profile {
            None => None,
            Some(spec) => {
                only("points_profile", true, &[Cluster])?;
                if self.points_per_message.is_some() {
                    return Err(err(
                        "points_profile",
                        "give points_profile or points_per_message, not both",
                    ));
                }
                let p = Profile::parse(spec, None).map_err(|m| err("points_profile", m))?;
                let peak = p.max_value().round().max(1.0) as u128;
                let dims = self.dims.unwrap_or(3) as u128;
                if peak * dims * 8
                    > (pilot_core::contract::client::MAX_MESSAGE_BYTES - 1024) as u128
                {
                    return Err(err(
                        "points_profile",
                        format!(
                            "points_profile peaks at {peak} points x {dims} dims, {} bytes, more than the brokers' message limit ({} B)",
                            peak * dims * 8,
                            pilot_core::contract::client::MAX_MESSAGE_BYTES
                        ),
                    ));
                }
                Some((p, spec.clone()))
            }
        })
    }

    /// When the run stops (messages, duration, or where a finite rate profile ends; 1,000 messages by default),
    /// and the warm-up before it.
    fn stop_rule(
        &self,
        rate_profile: &Option<(Profile, String)>,
    ) -> Result<(StopRule, f64), SettingError> {
        let stop = StopRule {
            messages: self.messages,
            duration_s: self.duration_s,
        };
        if stop.messages == Some(0) {
            return Err(err("messages", "messages must be at least 1"));
        }
        let profile_end_s = rate_profile.as_ref().and_then(|(p, _)| p.duration_s());
        let stop = match (stop.messages, stop.duration_s, profile_end_s) {
            // A finite rate profile ends the run where it ends (or earlier, when told).
            (messages, d, Some(end)) => StopRule {
                messages,
                duration_s: Some(d.map_or(end, |d| d.min(end))),
            },
            (None, None, None) => match &rate_profile {
                Some((_, spec)) => {
                    return Err(err(
                        "rate_profile",
                        format!(
                            "rate_profile `{spec}` goes on for ever: give duration_s or messages"
                        ),
                    ))
                }
                None => StopRule {
                    messages: Some(1_000),
                    duration_s: None,
                },
            },
            _ => stop,
        };
        let warmup_s = self.warmup_s.unwrap_or(0.0);
        if !(warmup_s.is_finite() && warmup_s >= 0.0) {
            return Err(err(
                "warmup_s",
                format!("warmup_s must be 0 or more (got {warmup_s})"),
            ));
        }
        if warmup_s > 0.0 {
            seconds("warmup_s", Some(warmup_s))?;
        }
        if let Some(d) = stop.duration_s {
            if warmup_s >= d {
                return Err(err(
                    "warmup_s",
                    format!("warmup_s ({warmup_s}) must be shorter than duration_s ({d})"),
                ));
            }
        }
        Ok((stop, warmup_s))
    }

    /// Sending threads, and the producer ids they take.
    fn threads(&self) -> Result<(u32, u32), SettingError> {
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            return Err(err(
                "threads",
                format!("threads must be 1..=256 (got {threads})"),
            ));
        }
        let producer_id_base = self.producer_id_base.unwrap_or(0);
        if producer_id_base.checked_add(threads - 1).is_none() {
            return Err(err(
                "producer_id_base",
                format!(
                    "producer_id_base {producer_id_base} + {threads} threads runs past the largest producer id ({})",
                    u32::MAX
                ),
            ));
        }
        Ok((threads, producer_id_base))
    }
}

impl Settings for RawConfig {
    type Plan = ProducerPlan;
    const APP: &'static str = "MASS";

    fn check(&self) -> Result<ProducerPlan, SettingError> {
        let (target, topic) = self.connection()?;
        let encoding = self.encoding.unwrap_or(Encoding::Envelope);
        let source = self.source_plan(encoding)?;
        let rate_profile = self.rate_profile()?;
        let points_profile = self.points_profile()?;
        let (stop, warmup_s) = self.stop_rule(&rate_profile)?;
        let (threads, producer_id_base) = self.threads()?;
        let kafka = self.kafka.clone().unwrap_or_default();
        pilot_core::contract::client::check_properties(&kafka, RESERVED_PRODUCER_PROPERTIES)
            .map_err(|m| err("kafka", m))?;
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| default_run_id("mass"));
        let control_topic = match &self.control_topic {
            Some(c) => {
                check_topic(c).map_err(|e| err("control_topic", e.message))?;
                if *c == topic {
                    return Err(err(
                        "control_topic",
                        "control_topic must differ from the data topic",
                    ));
                }
                Some(c.clone())
            }
            None => None,
        };
        Ok(ProducerPlan {
            kafka,
            target,
            topic,
            control_topic,
            create_topic: self.create_topic.unwrap_or(false),
            partitions: self.partitions,
            source,
            encoding,
            stop,
            warmup_s,
            rate_msgs_per_s: self.rate_msgs_per_s,
            rate_mb_per_s: self.rate_mb_per_s,
            rate_profile,
            points_profile,
            threads,
            producer_id_base,
            partitioning: self.partitioning.unwrap_or_default(),
            acks: self.acks.unwrap_or_default(),
            linger_ms: self.linger_ms.unwrap_or(5),
            batch_size: self.batch_size,
            compression: self.compression.unwrap_or_default(),
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
    fn the_frames_source_is_one_detector_with_its_keys_checked() {
        let toml = "bootstrap_servers = \"127.0.0.2:9092\"\ntopic = \"t\"\nsource = \"frames\"\nframe_rows = 32\nframe_cols = 100\nangle_order = \"interlaced:16\"\nretake_every = 50\n";
        let p = RawConfig::from_toml(toml, "mass.toml")
            .unwrap()
            .validate("mass.toml")
            .unwrap();
        let SourcePlan::Frames(f) = &p.source else {
            panic!("{:?}", p.source)
        };
        assert_eq!((f.rows, f.cols, f.projections_per_180), (32, 100, 157));
        assert_eq!(f.order, crate::angles::AngleOrder::Interlaced(16));
        assert_eq!(
            (f.darks, f.flats, f.retake_every, f.center_px),
            (10, 10, 50, 50.0)
        );
        let bad = |f: &dyn Fn(&mut RawConfig)| {
            let mut r = base();
            r.source = Some(SourceKind::Frames);
            f(&mut r);
            r.validate("test").unwrap_err().to_string()
        };
        assert!(bad(&|r| r.angle_order = Some("spiral".into())).contains("key `angle_order`"));
        assert!(bad(&|r| r.threads = Some(2)).contains("key `threads`"));
        assert!(bad(&|r| r.encoding = Some(Encoding::PointsText)).contains("key `encoding`"));
        assert!(bad(&|r| r.projections_per_180 = Some(0)).contains("key `projections_per_180`"));
        assert!(bad(&|r| {
            r.retake_every = Some(5);
            r.flats = Some(0)
        })
        .contains("key `retake_every`"));
        assert!(bad(&|r| {
            r.frame_rows = Some(8192);
            r.frame_cols = Some(8192)
        })
        .contains("message limit"));
        // A frames key on another source.
        let mut r = base();
        r.darks = Some(3);
        assert!(r
            .validate("test")
            .unwrap_err()
            .to_string()
            .contains("darks applies to source frames"));
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
            (p.threads, p.acks, p.partitioning),
            (1, Acks::All, Partitioning::RoundRobin)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e =
            RawConfig::from_toml("topic = \"t\"\npoints_per_msg = 5\n", "mass.toml").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("points_per_msg"))
        );
        let e = e.to_string();
        assert!(
            e.contains("mass.toml") && e.contains("points_per_msg"),
            "{e}"
        );
        let e =
            RawConfig::from_toml("topic = \"t\"\nsource = \"kmeans\"\n", "mass.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("source"));
        assert!(e.message.contains("unknown variant `kmeans`"), "{e}");
        let e = RawConfig::from_toml("acks = \"most\"\n", "mass.toml").unwrap_err();
        assert!(e.to_string().contains("acks `most` is unknown"), "{e}");
        assert_eq!(
            RawConfig::from_toml("acks = 1\n", "m").unwrap().acks,
            Some(Acks::Leader)
        );
        assert_eq!(
            RawConfig::from_toml("acks = \"-1\"\n", "m").unwrap().acks,
            Some(Acks::All)
        );
        let cases: Vec<(RawConfig, &str, &str)> = vec![
            (
                RawConfig {
                    topic: Some("t".into()),
                    ..Default::default()
                },
                "pilot",
                "bootstrap_servers",
            ),
            (
                RawConfig {
                    bootstrap_servers: Some("nohost".into()),
                    ..base()
                },
                "bootstrap_servers",
                "host:port",
            ),
            (
                RawConfig {
                    topic: Some("bad topic".into()),
                    ..base()
                },
                "topic",
                "not a valid Kafka topic",
            ),
            (
                RawConfig {
                    rate_msgs_per_s: Some(-1.0),
                    ..base()
                },
                "rate_msgs_per_s",
                "rate_msgs_per_s must be a positive",
            ),
            (
                RawConfig {
                    rate_msgs_per_s: Some(1.0),
                    rate_mb_per_s: Some(1.0),
                    ..base()
                },
                "rate_mb_per_s",
                "not both",
            ),
            (
                RawConfig {
                    message_bytes: Some(10),
                    ..base()
                },
                "message_bytes",
                "message_bytes applies to source synthetic",
            ),
            (
                RawConfig {
                    source: Some(SourceKind::Template),
                    ..base()
                },
                "template_file",
                "needs template_file",
            ),
            (
                RawConfig {
                    encoding: Some(Encoding::Hdf5Hex),
                    ..base()
                },
                "encoding",
                "encoding must be envelope or points-text",
            ),
            (
                RawConfig {
                    threads: Some(0),
                    ..base()
                },
                "threads",
                "threads must be",
            ),
            (
                RawConfig {
                    duration_s: Some(5.0),
                    warmup_s: Some(5.0),
                    ..base()
                },
                "warmup_s",
                "shorter than duration_s",
            ),
            (
                RawConfig {
                    duration_s: Some(1e11),
                    ..base()
                },
                "duration_s",
                "31 years",
            ),
            (
                RawConfig {
                    producer_id_base: Some(u32::MAX),
                    threads: Some(2),
                    ..base()
                },
                "producer_id_base",
                "largest producer id",
            ),
            (
                RawConfig {
                    points_per_message: Some(10_000_000),
                    ..base()
                },
                "points_per_message",
                "message limit",
            ),
            (
                RawConfig {
                    source: Some(SourceKind::Template),
                    template_file: Some("/nonexistent/scan.h5".into()),
                    ..base()
                },
                "template_file",
                "/nonexistent/scan.h5",
            ),
        ];
        for (raw, key, want) in cases {
            let e = raw.validate("flags").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(want), "{e} (wanted {want})");
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
            .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("kafka"));
            assert!(e.to_string().contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn flags_and_file_are_one_declaration() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            s: RawConfig,
        }
        let flags = Cli::try_parse_from([
            "mass",
            "--topic",
            "t2",
            "--source",
            "synthetic",
            "--message-bytes",
            "100",
            "--create-topic",
            "--acks",
            "1",
        ])
        .unwrap()
        .s;
        assert_eq!(flags.create_topic, Some(true));
        assert_eq!(flags.acks, Some(Acks::Leader));
        let file = RawConfig::from_toml(
            "bootstrap_servers = \"127.0.0.2:9092\"\ntopic = \"t1\"\nthreads = 2\n",
            "f",
        )
        .unwrap();
        let merged = file.overlay(flags).unwrap();
        let p = merged.validate("f").unwrap();
        assert_eq!(
            (p.topic.as_str(), p.threads, p.acks),
            ("t2", 2, Acks::Leader)
        );
        assert_eq!(
            p.source,
            SourcePlan::Synthetic {
                bytes: 100,
                seed: 1
            }
        );
        let e = Cli::try_parse_from(["mass", "--source", "kmeans"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("kmeans") && e.contains("cluster"), "{e}");
    }

    #[test]
    fn rate_and_points_profiles_are_checked_and_a_finite_one_ends_the_run() {
        let p = RawConfig {
            rate_profile: Some("steps:50@20,200@40,50@30".into()),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert_eq!(
            p.stop,
            StopRule {
                messages: None,
                duration_s: Some(90.0)
            },
            "the profile's end is the run's"
        );
        assert!(matches!(p.rate(100), Rate::Profile(_)));
        assert!(p
            .describe()
            .contains("steps:50@20,200@40,50@30 msg/s (peak 200, ends after 90 s)"));
        // A shorter duration wins; messages still stop it first when reached.
        let p = RawConfig {
            rate_profile: Some("ramp:1..100@60".into()),
            duration_s: Some(30.0),
            messages: Some(10),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert_eq!((p.stop.duration_s, p.stop.messages), (Some(30.0), Some(10)));
        let p = RawConfig {
            rate_profile: Some("sine:100,50,10".into()),
            duration_s: Some(20.0),
            points_profile: Some("steps:100@10,400@10".into()),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert_eq!(p.stop.duration_s, Some(20.0));
        assert_eq!(p.points_profile.as_ref().unwrap().0.value_at(15.0), 400.0);
        for (raw, key, want) in [
            (
                RawConfig {
                    rate_profile: Some("sine:100,50,10".into()),
                    ..base()
                },
                "rate_profile",
                "goes on for ever",
            ),
            (
                RawConfig {
                    rate_profile: Some("constant:10".into()),
                    rate_msgs_per_s: Some(10.0),
                    duration_s: Some(1.0),
                    ..base()
                },
                "rate_profile",
                "not both",
            ),
            (
                RawConfig {
                    rate_profile: Some("steps:0@10".into()),
                    ..base()
                },
                "rate_profile",
                "never sends",
            ),
            (
                RawConfig {
                    rate_profile: Some("steps:10@x".into()),
                    ..base()
                },
                "rate_profile",
                "is not a number",
            ),
            (
                RawConfig {
                    rate_profile: Some("constant:2e9".into()),
                    duration_s: Some(1.0),
                    ..base()
                },
                "rate_profile",
                "more than",
            ),
            (
                RawConfig {
                    points_profile: Some("constant:10".into()),
                    points_per_message: Some(10),
                    ..base()
                },
                "points_profile",
                "not both",
            ),
            (
                RawConfig {
                    points_profile: Some("constant:10".into()),
                    source: Some(SourceKind::Synthetic),
                    ..base()
                },
                "points_profile",
                "applies to source cluster",
            ),
            (
                RawConfig {
                    points_profile: Some("ramp:1..10000000@10".into()),
                    ..base()
                },
                "points_profile",
                "message limit",
            ),
        ] {
            let e = raw.validate("t").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
