//! MASA settings: [`RawConfig`] (TOML and/or flags, unknown keys rejected) validated into a [`ConsumerPlan`].

use std::path::PathBuf;

use pilot_core::client::{KafkaProperties, Target};
use pilot_core::config::{check_topic, default_run_id, positive};
pub use pilot_core::config::{ConfigError, Settings};
use serde::{Deserialize, Serialize};

use crate::kmeans::TimeUnit;
use crate::processor::{KMeansConfig, KMeansInit};
use crate::reconstruct::{Algorithm, AngleSource, CenterPolicy, TomoConfig};
use crate::tomo::filter::FilterKind;
use crate::tomo::mlem::MlemInit;
use crate::window::WindowPolicy;

/// MASA settings as written; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Brokers, `host:port[,host:port]`. Either this or `pilot`.
    pub bootstrap_servers: Option<String>,
    /// A running Kafka pilot's id.
    pub pilot: Option<String>,
    /// The pilots' working directory. Default `$PILOT_WORKDIR` or `pilots`.
    pub pilot_workdir: Option<PathBuf>,
    pub topic: Option<String>,
    /// Consumer group. Default `masa`.
    pub group: Option<String>,
    /// Consumer threads in this process. Default 1.
    pub threads: Option<u32>,
    /// `none` (decode and count), `kmeans` (default), `gridrec` or `mlem` (tomography).
    pub processor: Option<String>,
    /// `message` (default), `count:N` or `time:SECONDS`.
    pub window: Option<String>,
    /// Stop after this many messages (this process).
    pub messages: Option<u64>,
    /// Stop after this many seconds.
    pub duration_s: Option<f64>,
    /// Stop after this many seconds without a message or a group rebalance (counted from subscribing).
    /// Default 10.
    pub idle_timeout_s: Option<f64>,
    /// Stop after this many seconds from subscribing when no message has come yet (a consumer group may take a
    /// while to form before producers start). Default: the idle timeout.
    pub start_timeout_s: Option<f64>,
    /// How many messages were produced (for the missing count).
    pub expect_messages: Option<u64>,
    /// `earliest` (default) or `latest`.
    pub auto_offset_reset: Option<String>,
    /// KMeans: clusters. Default 10.
    pub k: Option<usize>,
    /// KMeans: decay factor. Default 1.0.
    pub decay: Option<f64>,
    /// KMeans: half-life instead of a decay factor.
    pub half_life: Option<f64>,
    /// KMeans: `batches` (default) or `points`.
    pub time_unit: Option<String>,
    /// KMeans: seed of the random initial centres (PySpark's setRandomCenters). Default 42.
    pub seed: Option<u32>,
    /// KMeans: write centres every this many windows.
    pub snapshot_every_windows: Option<u64>,
    /// GridRec: `shepp-logan` (default), `ramp`, `hann`, `hamming`, `cosine`, `butterworth` or `none`.
    pub filter: Option<String>,
    /// ML-EM: iterations per slice. Default 10.
    pub iterations: Option<usize>,
    /// ML-EM: starting value (default: the constant whose projections have the data's total).
    pub mlem_init: Option<f64>,
    /// Tomography: rotation axis, detector index (default: searched automatically).
    pub center_px: Option<f64>,
    /// Tomography: search the centre again every this many messages (default: once per geometry).
    pub center_every_messages: Option<u64>,
    /// Tomography: half-width of the centre search around the detector middle, pixels. Default 64.
    pub center_range_px: Option<f64>,
    /// Tomography: `file` (the angles the message carries, default) or `paper` (evenly over [0, pi], end included).
    pub angles: Option<String>,
    /// Tomography: radius of the circular mask, 1 = inscribed circle. Default 0.95.
    pub mask_ratio: Option<f64>,
    /// Tomography: append slices to `recon-<consumer>-<thread>.h5` in the results directory. Default false.
    pub write_hdf5: Option<bool>,
    /// Tomography: a PNG of the first slice in the results directory. Default true.
    pub preview_png: Option<bool>,
    /// Tomography: reconstruction threads per consumer thread (0: one per core). Default 0.
    pub tomo_threads: Option<usize>,
    /// Directory for this process's result files.
    pub results_dir: Option<PathBuf>,
    /// Names this process's result files (default: its pid).
    pub consumer_id: Option<String>,
    /// Seconds between interval rows. Default 1.
    pub interval_s: Option<f64>,
    /// Identifier written in every row. Default `masa-<time>-<pid>`.
    pub run_id: Option<String>,
    /// More librdkafka consumer properties (`[kafka]` table; `--kafka KEY=VALUE`), over the broker's recommended
    /// ones (with plain `bootstrap_servers` nothing is known of the broker: for tansu pass fetch.wait.max.ms=10).
    #[serde(
        default,
        deserialize_with = "pilot_core::client::deserialize_properties"
    )]
    pub kafka: Option<KafkaProperties>,
}

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
        }
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
    pub auto_offset_reset: String,
    pub results_dir: Option<PathBuf>,
    pub consumer_id: String,
    pub interval_s: f64,
    pub run_id: String,
    /// The user's librdkafka properties (checked).
    pub kafka: KafkaProperties,
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
        };
        format!(
            "run id:       {}\nsource:       {}\ntopic:        {} (group {}, offsets from {})\nthreads:      {}\nprocessor:    {proc}\nwindow:       {}\nstop:         {}{}idle {} s (first message within {} s)\nexpected:     {}\nresults:      {} (consumer id {})\nkafka:       {}\n",
            self.run_id,
            self.target,
            self.topic,
            self.group,
            self.auto_offset_reset,
            self.threads,
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
        )
    }
}

impl RawConfig {
    fn tomo(&self, name: &str) -> Result<TomoConfig, String> {
        let algorithm = if name == "gridrec" {
            Algorithm::GridRec {
                filter: FilterKind::parse(self.filter.as_deref().unwrap_or("shepp-logan"))?,
            }
        } else {
            let iterations = self.iterations.unwrap_or(10);
            if iterations == 0 {
                return Err("iterations must be at least 1".into());
            }
            let init = match self.mlem_init {
                None => MlemInit::Mean,
                Some(v) if v > 0.0 && v.is_finite() => MlemInit::Constant(v as f32),
                Some(v) => return Err(format!("mlem_init must be positive (got {v})")),
            };
            Algorithm::Mlem { iterations, init }
        };
        positive("center_range_px", self.center_range_px)?;
        if self.center_every_messages == Some(0) {
            return Err("center_every_messages must be at least 1".into());
        }
        let center = match self.center_px {
            Some(c) => {
                if self.center_every_messages.is_some() || self.center_range_px.is_some() {
                    return Err(
                        "center_px fixes the centre; center_every_messages and center_range_px apply to the automatic search"
                            .into(),
                    );
                }
                if !c.is_finite() || c < 0.0 {
                    return Err(format!("center_px must be a detector index (got {c})"));
                }
                CenterPolicy::Fixed(c)
            }
            None => CenterPolicy::Auto {
                every_messages: self.center_every_messages,
                range_px: self.center_range_px.unwrap_or(64.0),
            },
        };
        let angles = match self.angles.as_deref().unwrap_or("file") {
            "file" => AngleSource::File,
            "paper" => AngleSource::Paper,
            other => return Err(format!("angles `{other}` is unknown (file, paper)")),
        };
        let mask_ratio = self.mask_ratio.unwrap_or(0.95);
        if !(mask_ratio > 0.0 && mask_ratio <= 1.5) {
            return Err(format!("mask_ratio must be in (0, 1.5] (got {mask_ratio})"));
        }
        Ok(TomoConfig {
            algorithm,
            center,
            angles,
            mask_ratio,
            write_hdf5: self.write_hdf5.unwrap_or(false),
            preview_png: self.preview_png.unwrap_or(true),
            threads: self.tomo_threads.unwrap_or(0),
            output_dir: self.results_dir.clone(),
        })
    }
}

impl Settings for RawConfig {
    type Plan = ConsumerPlan;
    const APP: &'static str = "MASA";

    fn check(&self) -> Result<ConsumerPlan, String> {
        let target = Target::from_options(
            self.bootstrap_servers.as_deref(),
            self.pilot.as_deref(),
            self.pilot_workdir.as_deref(),
        )?;
        let topic = self.topic.clone().ok_or("topic is required")?;
        check_topic(&topic)?;
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            return Err(format!("threads must be 1..=256 (got {threads})"));
        }
        positive("duration_s", self.duration_s)?;
        positive("idle_timeout_s", self.idle_timeout_s)?;
        positive("start_timeout_s", self.start_timeout_s)?;
        positive("interval_s", self.interval_s)?;
        positive("half_life", self.half_life)?;
        if self.messages == Some(0) {
            return Err("messages must be at least 1".into());
        }
        let window = WindowPolicy::parse(self.window.as_deref().unwrap_or("message"))?;
        let processor_name = self.processor.as_deref().unwrap_or("kmeans");
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
            ("mask_ratio", self.mask_ratio.is_some()),
            ("write_hdf5", self.write_hdf5.is_some()),
            ("preview_png", self.preview_png.is_some()),
            ("tomo_threads", self.tomo_threads.is_some()),
        ];
        let misplaced = |keys: &[(&str, bool)], owner: &str| match keys.iter().find(|(_, set)| *set)
        {
            Some((key, _)) => Err(format!(
                "{key} applies to processor {owner} (this run uses `{processor_name}`)"
            )),
            None => Ok(()),
        };
        if !["gridrec", "mlem"].contains(&processor_name) {
            misplaced(&tomo_keys, "gridrec or mlem")?;
        }
        if processor_name != "kmeans" {
            misplaced(&kmeans_keys, "kmeans")?;
        }
        if processor_name == "gridrec" {
            misplaced(&tomo_keys[1..3], "mlem")?;
        }
        if processor_name == "mlem" {
            misplaced(&tomo_keys[..1], "gridrec")?;
        }
        let processor = match processor_name {
            "none" => ProcessorPlan::None,
            "gridrec" | "mlem" => ProcessorPlan::Tomo(self.tomo(processor_name)?),
            "kmeans" => {
                let time_unit = match self.time_unit.as_deref().unwrap_or("batches") {
                    "batches" => TimeUnit::Batches,
                    "points" => TimeUnit::Points,
                    other => {
                        return Err(format!("time_unit `{other}` is unknown (batches, points)"))
                    }
                };
                if self.decay.is_some() && self.half_life.is_some() {
                    return Err("give decay or half_life, not both".into());
                }
                let decay = self.decay.unwrap_or(1.0);
                if !(0.0..=1.0).contains(&decay) {
                    return Err(format!("decay must be in [0, 1] (got {decay})"));
                }
                let k = self.k.unwrap_or(10);
                if k == 0 {
                    return Err("k must be at least 1".into());
                }
                if self.snapshot_every_windows == Some(0) {
                    return Err("snapshot_every_windows must be at least 1".into());
                }
                let mut cfg = KMeansConfig {
                    k,
                    decay,
                    time_unit,
                    init: KMeansInit::Random {
                        seed: self.seed.unwrap_or(42),
                        weight: 1.0,
                    },
                    snapshot_every_windows: self.snapshot_every_windows,
                };
                if let Some(h) = self.half_life {
                    cfg = cfg.with_half_life(h)?;
                }
                ProcessorPlan::KMeans(cfg)
            }
            other => {
                return Err(format!(
                    "processor `{other}` is unknown (none, kmeans, gridrec, mlem)"
                ))
            }
        };
        let auto_offset_reset = self
            .auto_offset_reset
            .clone()
            .unwrap_or_else(|| "earliest".into());
        if !["earliest", "latest"].contains(&auto_offset_reset.as_str()) {
            return Err(format!(
                "auto_offset_reset `{auto_offset_reset}` is unknown (earliest, latest)"
            ));
        }
        let consumer_id = self
            .consumer_id
            .clone()
            .unwrap_or_else(|| std::process::id().to_string());
        if consumer_id.is_empty()
            || !consumer_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "consumer_id `{consumer_id}` must be letters, digits, - _ ."
            ));
        }
        let kafka = self.kafka.clone().unwrap_or_default();
        pilot_core::client::check_properties(&kafka, RESERVED_CONSUMER_PROPERTIES)?;
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| default_run_id("masa"));
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
            auto_offset_reset,
            results_dir: self.results_dir.clone(),
            consumer_id,
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
    fn tomography_settings_are_checked() {
        let tomo = |f: &dyn Fn(&mut RawConfig)| {
            let mut r = base();
            r.processor = Some("gridrec".into());
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
        assert!(matches!(
            t.center,
            CenterPolicy::Auto {
                every_messages: None,
                ..
            }
        ));
        for (set, want) in [
            (
                &(|r: &mut RawConfig| r.iterations = Some(3)) as &dyn Fn(&mut RawConfig),
                "iterations applies to processor mlem",
            ),
            (
                &|r| r.filter = Some("gauss".into()),
                "filter `gauss` is unknown",
            ),
            (
                &|r| r.angles = Some("degrees".into()),
                "angles `degrees` is unknown",
            ),
            (
                &|r| {
                    r.center_px = Some(300.0);
                    r.center_every_messages = Some(5)
                },
                "center_px fixes the centre",
            ),
            (&|r| r.mask_ratio = Some(0.0), "mask_ratio must be in"),
            (&|r| r.k = Some(3), "k applies to processor kmeans"),
            (
                &|r| {
                    r.processor = Some("mlem".into());
                    r.iterations = Some(0)
                },
                "iterations must be at least 1",
            ),
            (
                &|r| {
                    r.processor = Some("mlem".into());
                    r.filter = Some("hann".into())
                },
                "filter applies to processor gridrec",
            ),
            (
                &|r| {
                    r.processor = Some("kmeans".into());
                    r.write_hdf5 = Some(true)
                },
                "write_hdf5 applies to processor gridrec or mlem",
            ),
        ] {
            let err = tomo(set).unwrap_err();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
        let p = tomo(&|r| {
            r.processor = Some("mlem".into());
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
    }

    #[test]
    fn defaults_and_errors() {
        let p = base().validate("t").unwrap();
        assert_eq!(p.processor.name(), "kmeans");
        assert_eq!(
            (p.group.as_str(), p.threads, p.window),
            ("masa", 1, WindowPolicy::PerMessage)
        );
        let e = RawConfig::from_toml("topic = \"t\"\nwindow_s = 1\n", "masa.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("window_s") && e.contains("line 2"), "{e}");
        for (raw, want) in [
            (
                RawConfig {
                    processor: Some("none".into()),
                    k: Some(3),
                    ..base()
                },
                "k applies to processor kmeans",
            ),
            (
                RawConfig {
                    window: Some("time:0".into()),
                    ..base()
                },
                "time must be positive",
            ),
            (
                RawConfig {
                    decay: Some(0.5),
                    half_life: Some(3.0),
                    ..base()
                },
                "not both",
            ),
            (
                RawConfig {
                    processor: Some("spark".into()),
                    ..base()
                },
                "processor `spark` is unknown",
            ),
            (
                RawConfig {
                    consumer_id: Some("a/b".into()),
                    ..base()
                },
                "consumer_id",
            ),
        ] {
            let e = raw.validate("flags").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
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
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }
}
