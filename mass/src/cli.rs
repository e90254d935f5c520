//! The `mass` command line. `mass run` produces (settings from a TOML file and/or flags, flags winning);
//! `mass phantom` writes the project's Shepp-Logan scan in APS Data Exchange layout. Glue only: the work is in
//! the library (config, producer, phantom).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use mass::config::{RawConfig, Settings};
use mass::phantom::{scan, ScanParams};
use mass::producer;

/// MASS, the mini-app stream source: pushes KMeans points, light-source data or synthetic bytes into Kafka.
#[derive(Debug, Parser)]
#[command(name = "mass", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce messages into a topic and report throughput and delivery latency
    Run {
        #[command(flatten)]
        args: Box<RunArgs>,
        /// Validate and print the plan; send nothing
        #[arg(long)]
        dry_run: bool,
        /// No progress lines
        #[arg(long)]
        quiet: bool,
    },
    /// Write an analytic Shepp-Logan scan as an APS Data Exchange HDF5 file (tooth.h5's layout)
    Phantom {
        /// Output file
        #[arg(long)]
        out: PathBuf,
        /// Projection angles, evenly spaced from 0 to 180 degrees inclusive (the paper's convention)
        #[arg(long, default_value_t = 181)]
        angles: usize,
        /// Detector rows (sinograms); each row is the phantom's slice
        #[arg(long, default_value_t = 2)]
        rows: usize,
        /// Detector columns (the reconstruction is cols x cols)
        #[arg(long, default_value_t = 640)]
        cols: usize,
        /// Rotation axis offset from cols/2, pixels
        #[arg(long, default_value_t = 0.0)]
        center_offset_px: f64,
        /// Add Poisson noise to every count
        #[arg(long)]
        poisson: bool,
        /// Open-beam counts
        #[arg(long, default_value_t = 20_000.0)]
        i0: f64,
        /// Seed of the Poisson noise
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `mass run` settings; each flag is the config key of the same name (see `mass/README` or the config docs).
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Settings file (TOML); flags override it
    #[arg(value_name = "CONFIG.toml")]
    pub config: Option<PathBuf>,
    /// Brokers, host:port[,host:port]
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A running Kafka pilot's id (instead of --bootstrap-servers)
    #[arg(long)]
    pub pilot: Option<String>,
    /// The pilots' working directory [default: $PILOT_WORKDIR or ./pilots]
    #[arg(long)]
    pub pilot_workdir: Option<PathBuf>,
    /// Topic to produce into (required)
    #[arg(long)]
    pub topic: Option<String>,
    /// Create the topic if missing
    #[arg(long)]
    pub create_topic: bool,
    /// Partitions when creating the topic [default: the pilot's, else 12]
    #[arg(long)]
    pub partitions: Option<u32>,
    /// cluster | static | template | synthetic [default: cluster]
    #[arg(long)]
    pub source: Option<String>,
    /// envelope | points-text | hdf5-raw | hdf5-hex [default: envelope]
    #[arg(long)]
    pub encoding: Option<String>,
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
    /// Template source: APS Data Exchange HDF5 file (e.g. tooth.h5, or one from `mass phantom`)
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Template source: whole-file (one HDF5 file per message, as the paper) | rows [default: whole-file]
    #[arg(long)]
    pub template_mode: Option<String>,
    /// Template source, rows mode: sinogram rows per message [default: 1]
    #[arg(long)]
    pub rows_per_message: Option<usize>,
    /// Template source, rows mode: angles from the file | the paper's convention [default: file]
    #[arg(long)]
    pub angles: Option<String>,
    /// Stop after this many messages [default: 1000 unless --duration-s]
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
    /// Producer threads in this process, one connection each [default: 1]
    #[arg(long)]
    pub threads: Option<u32>,
    /// Producer id of the first thread; threads get consecutive ids [default: 0]
    #[arg(long)]
    pub producer_id_base: Option<u32>,
    /// round-robin | key-by-producer [default: round-robin]
    #[arg(long)]
    pub partitioning: Option<String>,
    /// all | 1 | 0 [default: all]
    #[arg(long)]
    pub acks: Option<String>,
    /// librdkafka linger.ms [default: 5]
    #[arg(long)]
    pub linger_ms: Option<u32>,
    /// librdkafka batch.size, bytes [default: 4000000 under 1 MB messages, else 1000000]
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// none | gzip | snappy | lz4 | zstd [default: none]
    #[arg(long)]
    pub compression: Option<String>,
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
    /// A librdkafka producer property, KEY=VALUE (repeatable; over the config file's [kafka] table)
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = pilot_core::client::parse_property_flag)]
    pub kafka: Vec<(String, String)>,
}

impl RunArgs {
    /// File settings with flags on top, and the origin for error messages.
    pub fn raw(&self) -> anyhow::Result<(RawConfig, String)> {
        let (mut raw, origin) = match &self.config {
            Some(p) => (RawConfig::from_file(p)?, p.display().to_string()),
            None => (RawConfig::default(), "command line".to_string()),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if self.$f.is_some() { raw.$f = self.$f.clone(); } )* };
        }
        over!(
            bootstrap_servers,
            pilot,
            pilot_workdir,
            topic,
            partitions,
            source,
            encoding,
            clusters,
            dims,
            points_per_message,
            spread,
            seed,
            message_bytes,
            template_file,
            template_mode,
            rows_per_message,
            angles,
            messages,
            duration_s,
            warmup_s,
            rate_msgs_per_s,
            rate_mb_per_s,
            threads,
            producer_id_base,
            partitioning,
            acks,
            linger_ms,
            batch_size,
            compression,
            message_timeout_ms,
            results_dir,
            interval_s,
            run_id
        );
        if self.create_topic {
            raw.create_topic = Some(true);
        }
        if !self.kafka.is_empty() {
            raw.kafka
                .get_or_insert_with(Default::default)
                .extend(self.kafka.iter().cloned());
        }
        Ok((raw, origin))
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            args,
            dry_run,
            quiet,
        } => {
            let (raw, origin) = args.raw()?;
            let plan = raw.validate(&origin)?;
            if dry_run {
                print!("dry run: mass would run\n{}", plan.describe());
                return Ok(());
            }
            let shutdown = pilot_core::cli::shutdown_flag()?;
            let conn = producer::connect(&plan.target)?;
            let show = !quiet && std::io::stderr().is_terminal();
            let mut progress = |row: &mass::report::IntervalRow| {
                if show {
                    eprint!(
                        "\r[{:>7.1} s] {:>9.0} msg/s {:>9.1} MB/s  sent {:>8} failed {:>4}   ",
                        row.t_s, row.msgs_per_s, row.mb_per_s, row.sent_msgs, row.failed_msgs
                    );
                }
            };
            let out = producer::run(
                &plan,
                &conn,
                Arc::new(pilot_core::clock::SystemClock::new()),
                &shutdown,
                &mut progress,
            )?;
            if show {
                eprintln!();
            }
            let s = &out.summary;
            let mut o = std::io::stdout().lock();
            writeln!(
                o,
                "run {} ({} -> {} on {})",
                s.run_id, s.source, s.topic, s.bootstrap_servers
            )?;
            writeln!(
                o,
                "  sent {} ({} warm-up), delivered {}, failed {}, unknown {}",
                s.sent_msgs, s.warmup_msgs, s.delivered_msgs, s.failed_msgs, s.unknown_msgs
            )?;
            writeln!(
                o,
                "  throughput {:.0} msg/s, {:.1} MB/s, {:.0} points/s delivered over {:.2} s ({} B/msg)",
                s.throughput_msgs_per_s,
                s.throughput_mb_per_s,
                s.throughput_points_per_s,
                s.throughput_window_s,
                s.message_bytes
            )?;
            writeln!(
                o,
                "  send rate {:.1} msg/s over {:.2} s",
                s.send_rate_msgs_per_s, s.measured_s
            )?;
            if s.rate_target_msgs_per_s > 0.0 {
                writeln!(
                    o,
                    "  target {:.1} msg/s, rate error {:+.3} %",
                    s.rate_target_msgs_per_s, s.rate_error_pct
                )?;
            }
            writeln!(
                o,
                "  delivery latency us: p50 {} p90 {} p99 {} p99.9 {} max {}; send lag us p99 {}",
                s.delivery_latency_us_p50,
                s.delivery_latency_us_p90,
                s.delivery_latency_us_p99,
                s.delivery_latency_us_p999,
                s.delivery_latency_us_max,
                s.send_lag_us_p99
            )?;
            if !s.errors.is_empty() {
                writeln!(o, "  errors: {}", s.errors)?;
            }
            if let Some(d) = &plan.results_dir {
                writeln!(o, "  results: {}", producer::summary_path(d).display())?;
            }
            if !s.complete {
                anyhow::bail!("run incomplete: {}", s.incomplete_reason);
            }
            Ok(())
        }
        Command::Phantom {
            out,
            angles,
            rows,
            cols,
            center_offset_px,
            poisson,
            i0,
            seed,
        } => {
            if angles == 0 || rows == 0 || cols < 2 {
                anyhow::bail!("--angles and --rows must be at least 1 and --cols at least 2");
            }
            let p = ScanParams {
                angles,
                rows,
                cols,
                center_offset_px,
                poisson,
                i0,
                seed,
                ..Default::default()
            };
            let s = scan(&p);
            s.scan.write(&out)?;
            println!(
                "wrote {} ({angles} angles x {rows} rows x {cols} cols, rotation axis at {:.2} px, mu {:.6} per px{})",
                out.display(),
                s.center_px,
                s.mu,
                if poisson { ", Poisson noise" } else { "" }
            );
            Ok(())
        }
    }
}
