//! The `masa` command line: `masa run` consumes and processes (settings from TOML and/or flags),
//! `masa merge` combines the accounting of a consumer group's processes. Glue only.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use masa::config::{RawConfig, Settings};
use masa::consumer;

/// MASA, the mini-app stream analysis: consumes MASS's messages and processes them (KMeans, tomography).
#[derive(Debug, Parser)]
#[command(name = "masa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume a topic in a consumer group, process windows, report latency, throughput and accounting
    Run {
        #[command(flatten)]
        args: Box<RunArgs>,
        /// Validate and print the plan; consume nothing
        #[arg(long)]
        dry_run: bool,
        /// No progress lines
        #[arg(long)]
        quiet: bool,
    },
    /// Merge the accounting of every consumer process found in results directories
    Merge {
        /// Results directories holding consumer-*-accounting.json
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Messages produced, to count what is missing
        #[arg(long)]
        expect_messages: Option<u64>,
    },
}

/// `masa run` settings; each flag is the config key of the same name.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Settings file (TOML); flags override it
    #[arg(value_name = "CONFIG.toml")]
    pub config: Option<PathBuf>,
    /// Brokers, host:port[,host:port]
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
    /// none | kmeans | gridrec | mlem [default: kmeans]
    #[arg(long)]
    pub processor: Option<String>,
    /// message | count:N | time:SECONDS [default: message]
    #[arg(long)]
    pub window: Option<String>,
    /// Stop after this many messages in this process
    #[arg(long)]
    pub messages: Option<u64>,
    /// Stop after this many seconds
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Stop after this long without a message [default: 10]
    #[arg(long)]
    pub idle_timeout_s: Option<f64>,
    /// Stop this long after subscribing if no message came [default: the idle timeout]
    #[arg(long)]
    pub start_timeout_s: Option<f64>,
    /// Messages produced, for the missing count
    #[arg(long)]
    pub expect_messages: Option<u64>,
    /// earliest | latest [default: earliest]
    #[arg(long)]
    pub auto_offset_reset: Option<String>,
    /// KMeans: clusters [default: 10]
    #[arg(long)]
    pub k: Option<usize>,
    /// KMeans: decay factor per time unit, 1 = no forgetting [default: 1.0]
    #[arg(long)]
    pub decay: Option<f64>,
    /// KMeans: half-life in time units (instead of --decay)
    #[arg(long)]
    pub half_life: Option<f64>,
    /// KMeans: decay per batches (windows) | points [default: batches]
    #[arg(long)]
    pub time_unit: Option<String>,
    /// KMeans: seed of the random initial centres (PySpark's setRandomCenters) [default: 42]
    #[arg(long)]
    pub seed: Option<u32>,
    /// KMeans: write centres to kmeans-centres.jsonl every N windows
    #[arg(long)]
    pub snapshot_every_windows: Option<u64>,
    /// GridRec filter: shepp-logan | ramp | hann | hamming | cosine | butterworth | none [default: shepp-logan]
    #[arg(long)]
    pub filter: Option<String>,
    /// ML-EM iterations per slice [default: 10]
    #[arg(long)]
    pub iterations: Option<usize>,
    /// ML-EM starting value [default: matched to the data's total]
    #[arg(long)]
    pub mlem_init: Option<f64>,
    /// Rotation axis, detector index [default: searched automatically]
    #[arg(long)]
    pub center_px: Option<f64>,
    /// Search the centre again every N messages [default: once per geometry]
    #[arg(long)]
    pub center_every_messages: Option<u64>,
    /// Centre search half-width, pixels [default: 64]
    #[arg(long)]
    pub center_range_px: Option<f64>,
    /// file | paper (evenly over [0, pi] inclusive, as the paper) [default: file]
    #[arg(long)]
    pub angles: Option<String>,
    /// Circular mask radius, 1 = inscribed circle [default: 0.95]
    #[arg(long)]
    pub mask_ratio: Option<f64>,
    /// Append reconstructed slices to recon-<consumer>-<thread>.h5 in the results directory
    #[arg(long)]
    pub write_hdf5: Option<bool>,
    /// Write a PNG preview of the first slice [default: true]
    #[arg(long)]
    pub preview_png: Option<bool>,
    /// Reconstruction threads per consumer thread, 0 = one per core [default: 0]
    #[arg(long)]
    pub tomo_threads: Option<usize>,
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
    /// A librdkafka consumer property, KEY=VALUE (repeatable; over the config file's [kafka] table)
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = pilot_core::client::parse_property_flag)]
    pub kafka: Vec<(String, String)>,
}

impl RunArgs {
    fn raw(&self) -> anyhow::Result<(RawConfig, String)> {
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
            group,
            threads,
            processor,
            window,
            messages,
            duration_s,
            idle_timeout_s,
            start_timeout_s,
            expect_messages,
            auto_offset_reset,
            k,
            decay,
            half_life,
            time_unit,
            seed,
            snapshot_every_windows,
            filter,
            iterations,
            mlem_init,
            center_px,
            center_every_messages,
            center_range_px,
            angles,
            mask_ratio,
            write_hdf5,
            preview_png,
            tomo_threads,
            results_dir,
            consumer_id,
            interval_s,
            run_id
        );
        if !self.kafka.is_empty() {
            raw.kafka
                .get_or_insert_with(Default::default)
                .extend(self.kafka.iter().cloned());
        }
        Ok((raw, origin))
    }
}

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
                print!("dry run: masa would run\n{}", plan.describe());
                return Ok(());
            }
            let shutdown = pilot_core::cli::shutdown_flag()?;
            let conn = pilot_core::client::Connection::resolve(&plan.target)?;
            let show = !quiet && std::io::stderr().is_terminal();
            let mut progress = |r: &masa::report::ConsumerInterval| {
                if show {
                    eprint!("\r[{:>7.1} s] {:>9.0} msg/s {:>9.1} MB/s  received {:>8} rejected {:>4}   ", r.t_s, r.msgs_per_s, r.mb_per_s, r.received_msgs, r.rejected_msgs);
                }
            };
            let out = consumer::run(
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
                "run {} consumer {} ({} on {}, group {}, {} x {})",
                s.run_id,
                s.consumer_id,
                s.topic,
                s.bootstrap_servers,
                s.group,
                s.processor,
                s.window
            )?;
            writeln!(
                o,
                "  received {} msgs ({:.1} MB), duplicates {}, rejected {}{}, missing {}",
                s.received_msgs,
                s.received_mb,
                s.duplicate_msgs,
                s.rejected_msgs,
                if s.rejected_reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.rejected_reasons)
                },
                s.missing_msgs
            )?;
            writeln!(
                o,
                "  throughput {:.0} msg/s, {:.1} MB/s, {:.0} items/s over {:.2} s; {} windows; group join {:.2} s; lag {}",
                s.throughput_msgs_per_s, s.throughput_mb_per_s, s.throughput_items_per_s, s.receive_window_s, s.windows, s.rebalance_s, s.lag_msgs
            )?;
            writeln!(
                o,
                "  e2e latency us (from intended send): p50 {} p90 {} p99 {} p99.9 {} max {}; from actual send p50 {} p99 {}",
                s.e2e_latency_us_p50, s.e2e_latency_us_p90, s.e2e_latency_us_p99, s.e2e_latency_us_p999, s.e2e_latency_us_max, s.e2e_actual_latency_us_p50, s.e2e_actual_latency_us_p99
            )?;
            writeln!(
                o,
                "  processed latency us (intended send to its window processed): p50 {} p99 {}",
                s.processed_latency_us_p50, s.processed_latency_us_p99
            )?;
            writeln!(
                o,
                "  processing us per window: p50 {} p99 {} max {}; scheduling delay p50 {} p99 {}",
                s.processing_us_p50,
                s.processing_us_p99,
                s.processing_us_max,
                s.scheduling_delay_us_p50,
                s.scheduling_delay_us_p99
            )?;
            if let Some(d) = &plan.results_dir {
                writeln!(
                    o,
                    "  results: {}",
                    consumer::summary_path(d, &plan.consumer_id).display()
                )?;
            }
            if !s.complete {
                anyhow::bail!("run incomplete: {}", s.incomplete_reason);
            }
            Ok(())
        }
        Command::Merge {
            dirs,
            expect_messages,
        } => {
            let (acc, files) = consumer::merge_accounting(&dirs)?;
            if files == 0 {
                anyhow::bail!("no consumer-*-accounting.json in {dirs:?}");
            }
            let t = acc.totals(expect_messages);
            println!(
                "{files} consumer processes: received {} distinct, duplicates {}, rejected {}, missing {}{}",
                t.received,
                t.duplicates,
                t.rejected,
                t.missing,
                expect_messages.map(|e| format!(" (of {e} produced)")).unwrap_or_default()
            );
            for (p, r) in &acc.received {
                println!(
                    "  producer {p}: {} messages in {} range(s)",
                    r.count(),
                    r.0.len()
                );
            }
            if t.missing > 0 || t.duplicates > 0 || t.rejected > 0 {
                anyhow::bail!("not every message was received exactly once");
            }
            Ok(())
        }
    }
}
