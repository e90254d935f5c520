//! MASA settings: [`RawConfig`] (TOML and/or flags, unknown keys rejected) validated into a [`ConsumerPlan`].
//!
//! Every setting is declared once, in [`RawConfig`]: its serde form is the TOML key, its clap form the `masa run`
//! flag of the same name, its doc comment the help text. Enum-like values are value enums; errors from
//! [`Settings::check`] carry the key.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use pilot_core::contract::aps::{AngleSource, ThetaUnits};
use pilot_core::contract::client::KafkaProperties;
use pilot_core::contract::config::{check_topic, default_run_id, positive, seconds, SettingError};
pub use pilot_core::contract::config::{ConfigError, Settings};
use pilot_core::pilots::connect::Target;
use serde::{Deserialize, Serialize};

use crate::kmeans::TimeUnit;
use crate::processor::{Cost, CostModel, KMeansConfig, KMeansInit};
use crate::reconstruct::{Algorithm, CenterPolicy, TomoConfig};
use crate::tomo::filter::FilterKind;
use crate::tomo::mlem::MlemInit;
use crate::window::WindowPolicy;

/// What MASA does with each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessorKind {
    /// Decode and count (the transport baseline).
    None,
    /// Spark MLlib's streaming KMeans.
    #[default]
    Kmeans,
    /// GridRec tomography (light-source data).
    Gridrec,
    /// ML-EM tomography (light-source data).
    Mlem,
    /// A rolling reconstruction of detector frames: three ortho-slices updated per frame.
    Rolling,
}

impl ProcessorKind {
    pub fn name(self) -> &'static str {
        match self {
            ProcessorKind::None => "none",
            ProcessorKind::Kmeans => "kmeans",
            ProcessorKind::Gridrec => "gridrec",
            ProcessorKind::Mlem => "mlem",
            ProcessorKind::Rolling => "rolling",
        }
    }
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetReset {
    #[default]
    Earliest,
    Latest,
}

impl OffsetReset {
    /// librdkafka's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// GridRec's filter window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// Plain back projection, no filter.
    None,
    Ramp,
    #[default]
    #[serde(alias = "shepp")]
    #[value(alias = "shepp")]
    SheppLogan,
    Hann,
    Hamming,
    Cosine,
    /// Cut-off 0.5 cycles per pixel, order 2.
    Butterworth,
}

impl Filter {
    pub fn kind(self) -> FilterKind {
        match self {
            Filter::None => FilterKind::None,
            Filter::Ramp => FilterKind::Ramp,
            Filter::SheppLogan => FilterKind::SheppLogan,
            Filter::Hann => FilterKind::Hann,
            Filter::Hamming => FilterKind::Hamming,
            Filter::Cosine => FilterKind::Cosine,
            Filter::Butterworth => FilterKind::Butterworth {
                cutoff: 0.5,
                order: 2,
            },
        }
    }
}

/// MASA settings as written (a TOML file, and the `masa run` flags of the same names); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Brokers, host:port[,host:port] (or --pilot)
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A running Kafka pilot's id (instead of --bootstrap-servers; brings its recommended client properties)
    #[arg(long)]
    pub pilot: Option<String>,
    /// The pilots' working directory [default: $PILOT_WORKDIR or ./pilots]
    #[arg(long)]
    pub pilot_workdir: Option<PathBuf>,
    /// Topic to consume (required)
    #[arg(long)]
    pub topic: Option<String>,
    /// Consumer group [default: masa]
    #[arg(long)]
    pub group: Option<String>,
    /// Consumer threads in this process, each a group member [default: 1]
    #[arg(long)]
    pub threads: Option<u32>,
    /// What to do with each window [default: kmeans]
    #[arg(long, value_enum)]
    pub processor: Option<ProcessorKind>,
    /// message | count:N | time:SECONDS [default: message]
    #[arg(long)]
    pub window: Option<String>,
    /// Stop after this many messages in this process
    #[arg(long)]
    pub messages: Option<u64>,
    /// Stop after this many seconds
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Stop after this long without a message or a group rebalance (counted from subscribing) [default: 10]
    #[arg(long)]
    pub idle_timeout_s: Option<f64>,
    /// Stop this long after subscribing (or the group's last rebalance) if no message came (a group may take a
    /// while to form before producers start); at least the session timeout, since a first join can take half
    /// of it and a rebalance all of it [default: the idle timeout]
    #[arg(long)]
    pub start_timeout_s: Option<f64>,
    /// Messages produced, for the missing count
    #[arg(long)]
    pub expect_messages: Option<u64>,
    /// Where a group without committed offsets starts [default: earliest]
    #[arg(long, value_enum)]
    pub auto_offset_reset: Option<OffsetReset>,
    /// KMeans: clusters [default: 10]
    #[arg(long)]
    pub k: Option<usize>,
    /// KMeans: decay factor per time unit, 1 = no forgetting [default: 1.0]
    #[arg(long)]
    pub decay: Option<f64>,
    /// KMeans: half-life in time units (instead of --decay)
    #[arg(long)]
    pub half_life: Option<f64>,
    /// KMeans: decay per batches (windows) or points [default: batches]
    #[arg(long, value_enum)]
    pub time_unit: Option<TimeUnit>,
    /// KMeans: seed of the random initial centres (PySpark's setRandomCenters) [default: 42]
    #[arg(long)]
    pub seed: Option<u32>,
    /// KMeans: write centres to kmeans-centres.jsonl every N windows
    #[arg(long)]
    pub snapshot_every_windows: Option<u64>,
    /// GridRec filter [default: shepp-logan]
    #[arg(long, value_enum)]
    pub filter: Option<Filter>,
    /// ML-EM iterations per slice [default: 10]
    #[arg(long)]
    pub iterations: Option<usize>,
    /// ML-EM starting value [default: matched to the data's total]
    #[arg(long)]
    pub mlem_init: Option<f64>,
    /// Tomography: rotation axis, detector index [default: searched automatically]
    #[arg(long)]
    pub center_px: Option<f64>,
    /// Tomography: search the centre again every N messages [default: once per geometry]
    #[arg(long)]
    pub center_every_messages: Option<u64>,
    /// Tomography: half-width of the range the axis is searched in, around the detector's middle, pixels
    /// [default: a quarter of the detector width]
    #[arg(long)]
    pub center_range_px: Option<f64>,
    /// Tomography: the angles the message carries (file) or the paper's, evenly over [0, pi] inclusive
    /// [default: file]
    #[arg(long, value_enum)]
    pub angles: Option<AngleSource>,
    /// Tomography: unit of a whole file's /exchange/theta [default: auto, from its units attribute or its range]
    #[arg(long, value_enum)]
    pub theta_units: Option<ThetaUnits>,
    /// Tomography: open-beam counts for files without flat fields [default: the projections' 99th percentile]
    #[arg(long)]
    pub open_beam_counts: Option<f64>,
    /// Tomography: seconds the HDF5 library may take to read one whole-file message (in its helper process) before
    /// the message is rejected as corrupt [default: 30]
    #[arg(long)]
    pub hdf5_timeout_s: Option<f64>,
    /// Tomography: circular mask radius, 1 = inscribed circle [default: 0.95]
    #[arg(long)]
    pub mask_ratio: Option<f64>,
    /// Tomography: append reconstructed slices to recon-<consumer>-<thread>.h5 in the results directory
    /// [default: false]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub write_hdf5: Option<bool>,
    /// Tomography: write a PNG preview of the first slice [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub preview_png: Option<bool>,
    /// Tomography: reconstruction threads per consumer thread, 0 = one per core [default: 0]
    #[arg(long)]
    pub tomo_threads: Option<usize>,
    /// Rolling: projections in the buffer [default: about pi/2 x the frames' columns, a full scan's worth]
    #[arg(long)]
    pub buffer_frames: Option<usize>,
    /// Rolling: detector row of the axial slice [default: the middle row of the frames]
    #[arg(long)]
    pub axial_row: Option<usize>,
    /// Rolling: the vertical plane x = this offset from the axis, pixels [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub plane_x_px: Option<f64>,
    /// Rolling: the vertical plane y = this offset from the axis, pixels [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub plane_y_px: Option<f64>,
    /// Rolling: an update every N projections [default: 1]
    #[arg(long)]
    pub update_every_frames: Option<u64>,
    /// Rolling: score every Nth update's axial slice against the previous scored one [default: 1]
    #[arg(long)]
    pub quality_every_updates: Option<u64>,
    /// Rolling: rebuild the slices from the buffer after N replaced frames, 0 = never [default: the buffer's size]
    #[arg(long)]
    pub recompute_every: Option<usize>,
    /// Rolling: a full GridRec reconstruction of the axial slice from the buffer every N projections (the latest
    /// written as rolling-<consumer>-<thread>-gridrec.png) [default: never]
    #[arg(long)]
    pub gridrec_every_frames: Option<u64>,
    /// Rolling: score each update against this file's slice of the axial row too (reconstructed slices with
    /// their rows, as `mass phantom --truth` writes) [default: none]
    #[arg(long)]
    pub reference_file: Option<PathBuf>,
    /// Rolling: steer the source through its control topic (MASS's --control-topic) from the scored updates
    /// [default: no steering]
    #[arg(long)]
    pub steer_control_topic: Option<String>,
    /// Steering: stop the source once SSIM between scored updates holds at least this [default: 0.95]
    #[arg(long)]
    pub steer_converged_ssim: Option<f64>,
    /// Steering: for this many scored updates in a row [default: 5]
    #[arg(long)]
    pub steer_converged_updates: Option<u32>,
    /// Steering: re-take flats and darks when the background's line integral drifts past this [default: never]
    #[arg(long)]
    pub steer_background_drift: Option<f64>,
    /// Emulated processing cost per message taken, ms, on top of the processor's own work: an emulation that makes
    /// one consumer's true rate known (about 1000 / cost msg/s per thread), to show scaling on a small machine
    /// [default: none]
    #[arg(long)]
    pub cost_ms_per_message: Option<f64>,
    /// How the emulated cost is spent: sleep (I/O-bound analysis) or busy (CPU-bound, spins a core)
    /// [default: sleep]
    #[arg(long, value_enum)]
    pub cost_model: Option<CostModel>,
    /// Publish a report per interval (busy time, partitions with position and high watermark) to this topic on
    /// the same brokers, and follow the group there: `pilot autoscale` and experiment runners read it, and the
    /// consumers use it to rejoin when a dead member strands partitions and to stop when the stream's end is
    /// announced; `off` for none [default: TOPIC-metrics, skipped with a note where it cannot be created]
    #[arg(long)]
    pub metrics_topic: Option<String>,
    /// A TOML file re-read every interval while the consumer runs: `cost_ms_per_message = MS` changes the
    /// emulated cost from then on (how an experiment's `slow` fault reaches it) [default: none]
    #[arg(long)]
    pub control_file: Option<PathBuf>,
    /// Store an offset for commit only once a checkpoint of the accounting (in the results directory, written
    /// every 200 ms and before partitions are revoked) holds its message, and commit it then, so a consumer
    /// killed at any moment has recorded every message it committed: `masa merge` counts a killed consumer's
    /// messages from its checkpoints [default: true with a results directory]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub checkpoint_accounting: Option<bool>,
    /// Directory for this process's summary, intervals and accounting files
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Names this process's result files [default: its pid]
    #[arg(long)]
    pub consumer_id: Option<String>,
    /// Seconds between interval rows and progress lines [default: 1]
    #[arg(long)]
    pub interval_s: Option<f64>,
    /// Identifier written in every result row [default: masa-<time>-<pid>]
    #[arg(long)]
    pub run_id: Option<String>,
    /// More librdkafka consumer properties (`[kafka]` table; on the command line `--kafka KEY=VALUE`), over the
    /// broker's recommended ones (with plain `bootstrap_servers` nothing is known of the broker: for tansu pass
    /// fetch.wait.max.ms=10).
    #[serde(
        default,
        deserialize_with = "pilot_core::contract::client::deserialize_properties",
        skip_serializing_if = "Option::is_none"
    )]
    #[arg(skip)]
    pub kafka: Option<KafkaProperties>,
}

/// The settings that name files (an experiment resolves them against its own directory).
pub const PATH_SETTINGS: &[&str] = &["results_dir", "pilot_workdir", "reference_file"];

/// librdkafka properties MASA sets from its own settings, and the setting to use instead.
pub const RESERVED_CONSUMER_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "`bootstrap_servers` (or `pilot`)"),
    ("group.id", "`group`"),
    ("auto.offset.reset", "`auto_offset_reset`"),
    ("enable.partition.eof", "MASA (always false)"),
];

/// What to run on each window.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorPlan {
    None,
    KMeans(KMeansConfig),
    Tomo(TomoConfig),
    Rolling(Box<crate::rolling::RollingSettings>),
}

impl ProcessorPlan {
    pub fn name(&self) -> &'static str {
        match self {
            ProcessorPlan::None => "none",
            ProcessorPlan::KMeans(_) => "kmeans",
            ProcessorPlan::Tomo(t) => match t.algorithm {
                Algorithm::GridRec { .. } => "gridrec",
                Algorithm::Mlem { .. } => "mlem",
            },
            ProcessorPlan::Rolling(_) => "rolling",
        }
    }
}

/// The environment variable that slows every message on purpose: `MASA_SLOWDOWN_MS_PER_MESSAGE=MS` adds MS of
/// CPU-bound (busy) cost per message to whatever the settings say. What a regression check's test uses as a
/// slower build with the same settings; MASA says on stderr when it is set.
pub const SLOWDOWN_ENV: &str = "MASA_SLOWDOWN_MS_PER_MESSAGE";

impl ConsumerPlan {
    /// The plan slowed by `slowdown_ms` (the value of [`SLOWDOWN_ENV`], when set): its cost per message grows by
    /// that much (busy, when the settings had no cost).
    pub fn slowed(mut self, slowdown_ms: Option<&str>) -> Result<Self, SettingError> {
        let Some(text) = slowdown_ms else {
            return Ok(self);
        };
        let ms: f64 = text
            .trim()
            .parse()
            .ok()
            .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0 && *ms <= 60_000.0)
            .ok_or_else(|| {
                SettingError::key(
                    SLOWDOWN_ENV,
                    format!("{SLOWDOWN_ENV} must be milliseconds in [0, 60000] (got `{text}`)"),
                )
            })?;
        if ms == 0.0 {
            return Ok(self);
        }
        let extra = Duration::from_secs_f64(ms / 1e3);
        self.cost = Some(match self.cost {
            Some(c) => Cost {
                per_message: c.per_message + extra,
                model: c.model,
            },
            None => Cost {
                per_message: extra,
                model: CostModel::Busy,
            },
        });
        Ok(self)
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerPlan {
    pub target: Target,
    pub topic: String,
    pub group: String,
    pub threads: u32,
    pub processor: ProcessorPlan,
    pub window: WindowPolicy,
    pub messages: Option<u64>,
    pub duration_s: Option<f64>,
    pub idle_timeout_s: f64,
    pub start_timeout_s: f64,
    pub expect_messages: Option<u64>,
    pub auto_offset_reset: OffsetReset,
    pub results_dir: Option<PathBuf>,
    pub consumer_id: String,
    pub interval_s: f64,
    pub run_id: String,
    /// The user's librdkafka properties (checked).
    pub kafka: KafkaProperties,
    /// Emulated processing cost per message.
    pub cost: Option<Cost>,
    /// Where interval reports go (a topic on the same brokers), and where the group is followed.
    pub metrics_topic: Option<String>,
    /// The metrics topic is the default one (`TOPIC-metrics`): when it cannot be had, the run goes on without it.
    pub metrics_topic_implicit: bool,
    /// Offsets stored only once a checkpoint of the accounting holds them (needs a results directory).
    pub checkpoint_accounting: bool,
    /// Re-read every interval: the emulated cost from then on.
    pub control_file: Option<PathBuf>,
}

impl ConsumerPlan {
    /// For `--dry-run`.
    pub fn describe(&self) -> String {
        let proc = match &self.processor {
            ProcessorPlan::None => "none (decode and count)".to_string(),
            ProcessorPlan::KMeans(k) => format!(
                "kmeans (k = {}, decay {}, time unit {:?}, init {:?})",
                k.k, k.decay, k.time_unit, k.init
            ),
            ProcessorPlan::Tomo(t) => t.describe(),
            ProcessorPlan::Rolling(r) => format!(
                "rolling (buffer {}, filter {:?}, axis {}, an update every {} projections, scored every {})",
                r.buffer_frames
                    .map_or("pi/2 x columns".to_string(), |b| format!("{b} frames")),
                r.filter,
                r.center_px
                    .map_or("columns / 2".to_string(), |c| format!("{c} px")),
                r.update_every_frames,
                r.quality_every_updates
            ),
        };
        format!(
            "run id:       {}\nsource:       {}\ntopic:        {} (group {}, offsets from {})\nthreads:      {}\nprocessor:    {proc}{}\nwindow:       {}\nstop:         {}{}idle {} s (first message within {} s)\nexpected:     {}\nresults:      {} (consumer id {})\nkafka:       {}\n",
            self.run_id,
            self.target,
            self.topic,
            self.group,
            self.auto_offset_reset.as_str(),
            self.threads,
            self.cost
                .map(|c| format!(
                    " + emulated cost {} ms per message ({})",
                    c.per_message.as_secs_f64() * 1e3,
                    c.model.as_str()
                ))
                .unwrap_or_default()
                + &self
                    .control_file
                    .as_ref()
                    .map(|f| format!(" (cost may change through control file {})", f.display()))
                    .unwrap_or_default(),
            self.window,
            self.messages.map(|m| format!("{m} messages, ")).unwrap_or_default(),
            self.duration_s.map(|d| format!("{d} s, ")).unwrap_or_default(),
            self.idle_timeout_s,
            self.start_timeout_s,
            self.expect_messages.map(|e| e.to_string()).unwrap_or_else(|| "(not declared)".into()),
            self.results_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "(none)".into()),
            self.consumer_id,
            if self.kafka.is_empty() {
                " (the broker's recommended properties)".to_string()
            } else {
                self.kafka.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>()
            },
        ) + &format!(
            "metrics:      {}\naccounting:   {}\n",
            match &self.metrics_topic {
                Some(t) => format!("reports to and group watch on {t}{}", if self.metrics_topic_implicit { " (the default)" } else { "" }),
                None => "off".into(),
            },
            if self.checkpoint_accounting { "checkpointed (a killed consumer's records survive)" } else { "written at the end" },
        )
    }
}

fn err(key: &str, message: impl Into<String>) -> SettingError {
    SettingError::key(key, message)
}

impl RawConfig {
    fn tomo(&self, kind: ProcessorKind) -> Result<TomoConfig, SettingError> {
        let algorithm = if kind == ProcessorKind::Gridrec {
            Algorithm::GridRec {
                filter: self.filter.unwrap_or_default().kind(),
            }
        } else {
            let iterations = self.iterations.unwrap_or(10);
            if iterations == 0 || iterations > 10_000 {
                return Err(err("iterations", "iterations must be 1..=10000"));
            }
            let init = match self.mlem_init {
                None => MlemInit::Mean,
                Some(v) if v > 0.0 && v.is_finite() && v < f32::MAX as f64 => {
                    MlemInit::Constant(v as f32)
                }
                Some(v) => {
                    return Err(err(
                        "mlem_init",
                        format!("mlem_init must be a positive f32 (got {v})"),
                    ))
                }
            };
            Algorithm::Mlem { iterations, init }
        };
        positive("center_range_px", self.center_range_px)?;
        positive("open_beam_counts", self.open_beam_counts)?;
        seconds("hdf5_timeout_s", self.hdf5_timeout_s)?;
        if self.center_every_messages == Some(0) {
            return Err(err(
                "center_every_messages",
                "center_every_messages must be at least 1",
            ));
        }
        let center = match self.center_px {
            Some(c) => {
                for (key, set) in [
                    (
                        "center_every_messages",
                        self.center_every_messages.is_some(),
                    ),
                    ("center_range_px", self.center_range_px.is_some()),
                ] {
                    if set {
                        return Err(err(
                            key,
                            format!(
                                "center_px fixes the centre; {key} applies to the automatic search"
                            ),
                        ));
                    }
                }
                if !c.is_finite() || c < 0.0 {
                    return Err(err(
                        "center_px",
                        format!("center_px must be a detector index (got {c})"),
                    ));
                }
                CenterPolicy::Fixed(c)
            }
            None => CenterPolicy::Auto {
                every_messages: self.center_every_messages,
                range_px: self.center_range_px,
            },
        };
        let mask_ratio = self.mask_ratio.unwrap_or(0.95);
        if !(mask_ratio > 0.0 && mask_ratio <= 1.5) {
            return Err(err(
                "mask_ratio",
                format!("mask_ratio must be in (0, 1.5] (got {mask_ratio})"),
            ));
        }
        if self.tomo_threads.is_some_and(|t| t > 1024) {
            return Err(err("tomo_threads", "tomo_threads must be 0..=1024"));
        }
        Ok(TomoConfig {
            algorithm,
            center,
            angles: self.angles.unwrap_or_default(),
            theta_units: self.theta_units.unwrap_or_default(),
            open_beam_counts: self.open_beam_counts,
            hdf5_timeout_s: self.hdf5_timeout_s.unwrap_or(30.0),
            mask_ratio,
            write_hdf5: self.write_hdf5.unwrap_or(false),
            preview_png: self.preview_png.unwrap_or(true),
            threads: self.tomo_threads.unwrap_or(0),
            output_dir: self.results_dir.clone(),
        })
    }
}

impl RawConfig {
    /// The stop rule's and the interval's settings, the threads, and the window.
    fn limits(&self) -> Result<(u32, WindowPolicy), SettingError> {
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            return Err(err(
                "threads",
                format!("threads must be 1..=256 (got {threads})"),
            ));
        }
        seconds("duration_s", self.duration_s)?;
        seconds("idle_timeout_s", self.idle_timeout_s)?;
        seconds("start_timeout_s", self.start_timeout_s)?;
        seconds("interval_s", self.interval_s)?;
        positive("half_life", self.half_life)?;
        if self.messages == Some(0) {
            return Err(err("messages", "messages must be at least 1"));
        }
        let window = WindowPolicy::parse(self.window.as_deref().unwrap_or("message"))
            .map_err(|m| err("window", m))?;
        Ok((threads, window))
    }

    /// Every processor setting checked against the run's processor (none of another's).
    fn processor_keys(&self, kind: ProcessorKind) -> Result<(), SettingError> {
        let processor_name = kind.name();
        let kmeans_keys = [
            ("k", self.k.is_some()),
            ("decay", self.decay.is_some()),
            ("half_life", self.half_life.is_some()),
            ("time_unit", self.time_unit.is_some()),
            ("seed", self.seed.is_some()),
            (
                "snapshot_every_windows",
                self.snapshot_every_windows.is_some(),
            ),
        ];
        let tomo_keys = [
            ("filter", self.filter.is_some()),
            ("iterations", self.iterations.is_some()),
            ("mlem_init", self.mlem_init.is_some()),
            ("center_px", self.center_px.is_some()),
            (
                "center_every_messages",
                self.center_every_messages.is_some(),
            ),
            ("center_range_px", self.center_range_px.is_some()),
            ("angles", self.angles.is_some()),
            ("theta_units", self.theta_units.is_some()),
            ("open_beam_counts", self.open_beam_counts.is_some()),
            ("hdf5_timeout_s", self.hdf5_timeout_s.is_some()),
            ("mask_ratio", self.mask_ratio.is_some()),
            ("write_hdf5", self.write_hdf5.is_some()),
            ("preview_png", self.preview_png.is_some()),
            ("tomo_threads", self.tomo_threads.is_some()),
        ];
        let misplaced = |keys: &[(&str, bool)], owner: &str| match keys.iter().find(|(_, set)| *set)
        {
            Some((key, _)) => Err(err(
                key,
                format!("{key} applies to processor {owner} (this run uses `{processor_name}`)"),
            )),
            None => Ok(()),
        };
        let rolling_keys = [
            ("buffer_frames", self.buffer_frames.is_some()),
            ("axial_row", self.axial_row.is_some()),
            ("plane_x_px", self.plane_x_px.is_some()),
            ("plane_y_px", self.plane_y_px.is_some()),
            ("update_every_frames", self.update_every_frames.is_some()),
            (
                "quality_every_updates",
                self.quality_every_updates.is_some(),
            ),
            ("recompute_every", self.recompute_every.is_some()),
            ("reference_file", self.reference_file.is_some()),
            ("gridrec_every_frames", self.gridrec_every_frames.is_some()),
            ("steer_control_topic", self.steer_control_topic.is_some()),
            ("steer_converged_ssim", self.steer_converged_ssim.is_some()),
            (
                "steer_converged_updates",
                self.steer_converged_updates.is_some(),
            ),
            (
                "steer_background_drift",
                self.steer_background_drift.is_some(),
            ),
        ];
        let tomo = matches!(kind, ProcessorKind::Gridrec | ProcessorKind::Mlem);
        if kind == ProcessorKind::Rolling {
            // The rolling reconstruction shares the filter, the axis and the preview with the others.
            let shared = ["filter", "center_px", "preview_png"];
            let own: Vec<(&str, bool)> = tomo_keys
                .iter()
                .filter(|(k, _)| !shared.contains(k))
                .copied()
                .collect();
            misplaced(&own, "gridrec or mlem")?;
        } else {
            misplaced(&rolling_keys, "rolling")?;
            if !tomo {
                misplaced(&tomo_keys, "gridrec or mlem")?;
            }
        }
        if kind != ProcessorKind::Kmeans {
            misplaced(&kmeans_keys, "kmeans")?;
        }
        if kind == ProcessorKind::Gridrec {
            misplaced(&tomo_keys[1..3], "mlem")?;
        }
        if kind == ProcessorKind::Mlem {
            misplaced(&tomo_keys[..1], "gridrec")?;
        }
        Ok(())
    }

    /// The processor and its settings.
    fn processor_plan(&self) -> Result<ProcessorPlan, SettingError> {
        let kind = self.processor.unwrap_or_default();
        self.processor_keys(kind)?;
        Ok(match kind {
            ProcessorKind::None => ProcessorPlan::None,
            ProcessorKind::Gridrec | ProcessorKind::Mlem => ProcessorPlan::Tomo(self.tomo(kind)?),
            ProcessorKind::Kmeans => ProcessorPlan::KMeans(self.kmeans()?),
            ProcessorKind::Rolling => ProcessorPlan::Rolling(Box::new(self.rolling()?)),
        })
    }

    /// The rolling reconstruction: one stream of frames per consumer thread.
    fn rolling(&self) -> Result<crate::rolling::RollingSettings, SettingError> {
        if self.threads.unwrap_or(1) != 1 {
            return Err(err(
                "threads",
                "processor rolling keeps one reconstruction of one frame stream: threads must be 1",
            ));
        }
        for (key, v) in [
            ("update_every_frames", self.update_every_frames),
            ("quality_every_updates", self.quality_every_updates),
            ("gridrec_every_frames", self.gridrec_every_frames),
        ] {
            if v == Some(0) {
                return Err(err(key, format!("{key} must be at least 1")));
            }
        }
        if self.buffer_frames == Some(0) {
            return Err(err("buffer_frames", "buffer_frames must be at least 1"));
        }
        for (key, v) in [
            ("plane_x_px", self.plane_x_px),
            ("plane_y_px", self.plane_y_px),
            ("center_px", self.center_px),
        ] {
            if v.is_some_and(|x| !x.is_finite()) {
                return Err(err(key, format!("{key} must be a finite number of pixels")));
            }
        }
        Ok(crate::rolling::RollingSettings {
            buffer_frames: self.buffer_frames,
            filter: self.filter.unwrap_or_default().kind(),
            center_px: self.center_px,
            axial_row: self.axial_row,
            plane_x_px: self.plane_x_px.unwrap_or(0.0),
            plane_y_px: self.plane_y_px.unwrap_or(0.0),
            update_every_frames: self.update_every_frames.unwrap_or(1),
            quality_every_updates: self.quality_every_updates.unwrap_or(1),
            recompute_every: self.recompute_every,
            reference: None,
            reference_file: match &self.reference_file {
                Some(p) if !p.is_file() => {
                    return Err(err(
                        "reference_file",
                        format!("reference_file {} is not a file", p.display()),
                    ))
                }
                p => p.clone(),
            },
            output_dir: self.results_dir.clone(),
            preview_png: self.preview_png.unwrap_or(true),
            steer: self.steering()?,
            gridrec_every_frames: self.gridrec_every_frames,
        })
    }

    /// Steering the source from the rolling reconstruction's updates.
    fn steering(&self) -> Result<Option<crate::rolling::SteerSettings>, SettingError> {
        let Some(topic) = &self.steer_control_topic else {
            for (key, set) in [
                ("steer_converged_ssim", self.steer_converged_ssim.is_some()),
                (
                    "steer_converged_updates",
                    self.steer_converged_updates.is_some(),
                ),
                (
                    "steer_background_drift",
                    self.steer_background_drift.is_some(),
                ),
            ] {
                if set {
                    return Err(err(
                        key,
                        format!("{key} needs steer_control_topic (where the commands go)"),
                    ));
                }
            }
            return Ok(None);
        };
        check_topic(topic).map_err(|e| err("steer_control_topic", e.message))?;
        if Some(topic) == self.topic.as_ref() {
            return Err(err(
                "steer_control_topic",
                "steer_control_topic must differ from the data topic",
            ));
        }
        let policy = pilot_core::ops::steer::SteerConfig {
            converged_ssim: Some(self.steer_converged_ssim.unwrap_or(0.95)),
            converged_updates: self.steer_converged_updates.unwrap_or(5),
            background_drift: self.steer_background_drift,
            ..Default::default()
        };
        policy.check().map_err(|e| {
            let key = match e.key {
                "converged_ssim" => "steer_converged_ssim",
                "converged_updates" => "steer_converged_updates",
                "background_drift" => "steer_background_drift",
                _ => "steer_control_topic",
            };
            err(key, e.why)
        })?;
        Ok(Some(crate::rolling::SteerSettings {
            policy,
            control_topic: topic.clone(),
            sink: None,
        }))
    }

    /// Streaming KMeans: k, decay or half-life, time unit, random initial centres.
    fn kmeans(&self) -> Result<KMeansConfig, SettingError> {
        if self.decay.is_some() && self.half_life.is_some() {
            return Err(err("half_life", "give decay or half_life, not both"));
        }
        let decay = self.decay.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&decay) {
            return Err(err(
                "decay",
                format!("decay must be in [0, 1] (got {decay})"),
            ));
        }
        let k = self.k.unwrap_or(10);
        if k == 0 || k > 100_000 {
            return Err(err("k", format!("k must be 1..=100000 (got {k})")));
        }
        if self.snapshot_every_windows == Some(0) {
            return Err(err(
                "snapshot_every_windows",
                "snapshot_every_windows must be at least 1",
            ));
        }
        let mut cfg = KMeansConfig {
            k,
            decay,
            time_unit: self.time_unit.unwrap_or_default(),
            init: KMeansInit::Random {
                seed: self.seed.unwrap_or(42),
                weight: 1.0,
            },
            snapshot_every_windows: self.snapshot_every_windows,
        };
        if let Some(h) = self.half_life {
            cfg = cfg
                .with_half_life(h)
                .map_err(|e| err("half_life", e.to_string()))?;
        }
        Ok(cfg)
    }

    /// The consumer's id (its files' names, its reports').
    fn consumer_id(&self) -> Result<String, SettingError> {
        let consumer_id = self
            .consumer_id
            .clone()
            .unwrap_or_else(|| std::process::id().to_string());
        if consumer_id.is_empty()
            || consumer_id.len() > 128
            || !consumer_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err(
                "consumer_id",
                format!("consumer_id `{consumer_id}` must be 1-128 letters, digits, - _ ."),
            ));
        }
        Ok(consumer_id)
    }

    /// The emulated processing cost per message, if any.
    fn cost(&self) -> Result<Option<Cost>, SettingError> {
        Ok(match self.cost_ms_per_message {
            None => {
                if self.cost_model.is_some() {
                    return Err(err(
                        "cost_model",
                        "cost_model applies with cost_ms_per_message",
                    ));
                }
                None
            }
            Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 60_000.0 => Some(Cost {
                per_message: Duration::from_secs_f64(ms / 1e3),
                model: self.cost_model.unwrap_or_default(),
            }),
            Some(ms) => {
                return Err(err(
                    "cost_ms_per_message",
                    format!("cost_ms_per_message must be in (0, 60000] ms (got {ms})"),
                ))
            }
        })
    }

    /// The metrics topic: the one given (none for `off`), else `TOPIC-metrics`; whether it is that default.
    fn metrics_topic(&self, topic: &str) -> Result<(Option<String>, bool), SettingError> {
        match self.metrics_topic.as_deref() {
            Some("off") => Ok((None, false)),
            Some(_) => {
                self.check_metrics_topic(topic)?;
                Ok((self.metrics_topic.clone(), false))
            }
            None => Ok((Some(format!("{topic}-metrics")), true)),
        }
    }

    /// A metrics topic given: a valid name, apart from the data topic.
    fn check_metrics_topic(&self, topic: &str) -> Result<(), SettingError> {
        if let Some(t) = &self.metrics_topic {
            check_topic(t).map_err(|e| err("metrics_topic", e.message))?;
            if t == topic {
                return Err(err(
                    "metrics_topic",
                    "metrics_topic must differ from the data topic",
                ));
            }
        }
        Ok(())
    }
}

impl Settings for RawConfig {
    type Plan = ConsumerPlan;
    const APP: &'static str = "MASA";

    fn check(&self) -> Result<ConsumerPlan, SettingError> {
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
        let (threads, window) = self.limits()?;
        let processor = self.processor_plan()?;
        let consumer_id = self.consumer_id()?;
        let kafka = self.kafka.clone().unwrap_or_default();
        pilot_core::contract::client::check_properties(&kafka, RESERVED_CONSUMER_PROPERTIES)
            .map_err(|m| err("kafka", m))?;
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| default_run_id("masa"));
        let cost = self.cost()?;
        let (metrics_topic, metrics_topic_implicit) = self.metrics_topic(&topic)?;
        Ok(ConsumerPlan {
            kafka,
            target,
            topic,
            group: self.group.clone().unwrap_or_else(|| "masa".into()),
            threads,
            processor,
            window,
            messages: self.messages,
            duration_s: self.duration_s,
            idle_timeout_s: self.idle_timeout_s.unwrap_or(10.0),
            start_timeout_s: self.start_timeout_s.or(self.idle_timeout_s).unwrap_or(10.0),
            expect_messages: self.expect_messages,
            auto_offset_reset: self.auto_offset_reset.unwrap_or_default(),
            results_dir: self.results_dir.clone(),
            consumer_id,
            interval_s: self.interval_s.unwrap_or(1.0),
            run_id,
            cost,
            metrics_topic,
            metrics_topic_implicit,
            control_file: self.control_file.clone(),
            checkpoint_accounting: {
                // On by default where there is somewhere to write checkpoints: a killed consumer's records survive.
                let on = self
                    .checkpoint_accounting
                    .unwrap_or(self.results_dir.is_some());
                if on && self.results_dir.is_none() {
                    return Err(err(
                        "checkpoint_accounting",
                        "checkpoint_accounting needs a results directory (results_dir) to write its checkpoints to",
                    ));
                }
                on
            },
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
    fn rolling_settings_are_checked_and_share_the_tomography_keys_they_use() {
        let rolling = |f: &dyn Fn(&mut RawConfig)| {
            let mut r = base();
            r.processor = Some(ProcessorKind::Rolling);
            f(&mut r);
            r.check()
        };
        let p = rolling(&|r| {
            r.buffer_frames = Some(180);
            r.center_px = Some(31.5);
            r.filter = Some(Filter::Hann);
            r.plane_y_px = Some(-4.0);
        })
        .unwrap();
        let ProcessorPlan::Rolling(s) = &p.processor else {
            panic!("{:?}", p.processor)
        };
        assert_eq!(
            (s.buffer_frames, s.center_px, s.filter, s.plane_y_px),
            (Some(180), Some(31.5), FilterKind::Hann, -4.0)
        );
        assert_eq!((s.update_every_frames, s.quality_every_updates), (1, 1));
        let key = |f: &dyn Fn(&mut RawConfig)| rolling(f).unwrap_err().key;
        assert_eq!(key(&|r| r.threads = Some(2)).as_deref(), Some("threads"));
        assert_eq!(
            key(&|r| r.buffer_frames = Some(0)).as_deref(),
            Some("buffer_frames")
        );
        assert_eq!(
            key(&|r| r.update_every_frames = Some(0)).as_deref(),
            Some("update_every_frames")
        );
        assert_eq!(
            key(&|r| r.plane_x_px = Some(f64::NAN)).as_deref(),
            Some("plane_x_px")
        );
        assert_eq!(
            key(&|r| r.iterations = Some(3)).as_deref(),
            Some("iterations")
        );
        // A rolling key on another processor.
        let mut r = base();
        r.buffer_frames = Some(10);
        assert_eq!(r.check().unwrap_err().key.as_deref(), Some("buffer_frames"));
    }

    #[test]
    fn tomography_settings_are_checked() {
        let tomo = |f: &dyn Fn(&mut RawConfig)| {
            let mut r = base();
            r.processor = Some(ProcessorKind::Gridrec);
            f(&mut r);
            r.check()
        };
        let p = tomo(&|_| {}).unwrap();
        let ProcessorPlan::Tomo(t) = &p.processor else {
            panic!("{:?}", p.processor)
        };
        assert_eq!(
            t.algorithm,
            Algorithm::GridRec {
                filter: FilterKind::SheppLogan
            }
        );
        assert_eq!(t.angles, AngleSource::File);
        assert_eq!(t.theta_units, ThetaUnits::Auto);
        assert!(matches!(
            t.center,
            CenterPolicy::Auto {
                every_messages: None,
                range_px: None
            }
        ));
        for (set, key, want) in [
            (
                &(|r: &mut RawConfig| r.iterations = Some(3)) as &dyn Fn(&mut RawConfig),
                "iterations",
                "iterations applies to processor mlem",
            ),
            (
                &|r| {
                    r.center_px = Some(300.0);
                    r.center_every_messages = Some(5)
                },
                "center_every_messages",
                "center_px fixes the centre",
            ),
            (
                &|r| r.mask_ratio = Some(0.0),
                "mask_ratio",
                "mask_ratio must be in",
            ),
            (&|r| r.k = Some(3), "k", "k applies to processor kmeans"),
            (
                &|r| r.open_beam_counts = Some(-1.0),
                "open_beam_counts",
                "positive",
            ),
            (
                &|r| {
                    r.processor = Some(ProcessorKind::Mlem);
                    r.iterations = Some(0)
                },
                "iterations",
                "iterations must be",
            ),
            (
                &|r| {
                    r.processor = Some(ProcessorKind::Mlem);
                    r.filter = Some(Filter::Hann)
                },
                "filter",
                "filter applies to processor gridrec",
            ),
            (
                &|r| {
                    r.processor = Some(ProcessorKind::Kmeans);
                    r.write_hdf5 = Some(true)
                },
                "write_hdf5",
                "write_hdf5 applies to processor gridrec or mlem",
            ),
        ] {
            let e = tomo(set).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.message.contains(want), "{e} (wanted {want})");
        }
        let p = tomo(&|r| {
            r.processor = Some(ProcessorKind::Mlem);
            r.center_px = Some(295.5);
            r.mlem_init = Some(0.5)
        })
        .unwrap();
        let ProcessorPlan::Tomo(t) = &p.processor else {
            panic!()
        };
        assert_eq!(t.center, CenterPolicy::Fixed(295.5));
        assert_eq!(
            t.algorithm,
            Algorithm::Mlem {
                iterations: 10,
                init: MlemInit::Constant(0.5)
            }
        );
        // Value enums from a file: unknown values are refused by name, with the line.
        for (text, key) in [
            ("filter = \"gauss\"\n", "filter"),
            ("angles = \"degrees\"\n", "angles"),
            ("processor = \"spark\"\n", "processor"),
            ("theta_units = \"grad\"\n", "theta_units"),
        ] {
            let e = RawConfig::from_toml(text, "masa.toml").unwrap_err();
            assert_eq!((e.key.as_deref(), e.line), (Some(key), Some(1)), "{e}");
            assert!(e.message.contains("unknown variant"), "{e}");
        }
        assert_eq!(
            RawConfig::from_toml("filter = \"shepp\"\n", "m")
                .unwrap()
                .filter,
            Some(Filter::SheppLogan)
        );
    }

    #[test]
    fn defaults_and_errors() {
        let p = base().validate("t").unwrap();
        assert_eq!(p.processor.name(), "kmeans");
        assert_eq!(
            (p.group.as_str(), p.threads, p.window),
            ("masa", 1, WindowPolicy::PerMessage)
        );
        let e = RawConfig::from_toml("topic = \"t\"\nwindow_s = 1\n", "masa.toml").unwrap_err();
        assert_eq!((e.key.as_deref(), e.line), (Some("window_s"), Some(2)));
        for (raw, key, want) in [
            (
                RawConfig {
                    processor: Some(ProcessorKind::None),
                    k: Some(3),
                    ..base()
                },
                "k",
                "k applies to processor kmeans",
            ),
            (
                RawConfig {
                    window: Some("time:0".into()),
                    ..base()
                },
                "window",
                "time must be positive",
            ),
            (
                RawConfig {
                    window: Some("time:1e300".into()),
                    ..base()
                },
                "window",
                "at most",
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
                    idle_timeout_s: Some(f64::INFINITY),
                    ..base()
                },
                "idle_timeout_s",
                "positive",
            ),
            (
                RawConfig {
                    decay: Some(0.5),
                    half_life: Some(3.0),
                    ..base()
                },
                "half_life",
                "not both",
            ),
            (
                RawConfig {
                    consumer_id: Some("a/b".into()),
                    ..base()
                },
                "consumer_id",
                "consumer_id",
            ),
        ] {
            let e = raw.validate("flags").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        let h = RawConfig {
            half_life: Some(1.0),
            ..base()
        }
        .validate("t")
        .unwrap();
        let ProcessorPlan::KMeans(k) = h.processor else {
            panic!()
        };
        assert!((k.decay - 0.5).abs() < 1e-15);
    }

    #[test]
    fn kafka_properties_are_checked_and_shown() {
        let p = RawConfig {
            kafka: Some([("fetch.wait.max.ms".to_string(), "10".to_string())].into()),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert!(p.describe().contains("fetch.wait.max.ms=10"));
        for (k, want) in [
            ("group.id", "`group`"),
            ("auto.offset.reset", "`auto_offset_reset`"),
        ] {
            let e = RawConfig {
                kafka: Some([(k.to_string(), "x".to_string())].into()),
                ..base()
            }
            .validate("t")
            .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("kafka"));
            assert!(e.to_string().contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn an_emulated_cost_and_a_metrics_topic_are_checked() {
        let p = RawConfig {
            cost_ms_per_message: Some(10.0),
            cost_model: Some(CostModel::Busy),
            metrics_topic: Some("metrics-1".into()),
            processor: Some(ProcessorKind::None),
            ..base()
        }
        .validate("t")
        .unwrap();
        assert_eq!(
            p.cost,
            Some(Cost {
                per_message: Duration::from_millis(10),
                model: CostModel::Busy
            })
        );
        assert!(
            p.describe()
                .contains("emulated cost 10 ms per message (busy)"),
            "{}",
            p.describe()
        );
        assert_eq!(p.metrics_topic.as_deref(), Some("metrics-1"));
        for (raw, key, want) in [
            (
                RawConfig {
                    cost_ms_per_message: Some(0.0),
                    ..base()
                },
                "cost_ms_per_message",
                "(0, 60000]",
            ),
            (
                RawConfig {
                    cost_ms_per_message: Some(f64::NAN),
                    ..base()
                },
                "cost_ms_per_message",
                "(0, 60000]",
            ),
            (
                RawConfig {
                    cost_model: Some(CostModel::Sleep),
                    ..base()
                },
                "cost_model",
                "with cost_ms_per_message",
            ),
            (
                RawConfig {
                    metrics_topic: Some("t".into()),
                    ..base()
                },
                "metrics_topic",
                "differ",
            ),
            (
                RawConfig {
                    metrics_topic: Some("bad topic".into()),
                    ..base()
                },
                "metrics_topic",
                "not a valid Kafka topic",
            ),
        ] {
            let e = raw.validate("t").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
