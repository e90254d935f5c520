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
    Phantom(PhantomArgs),
}

/// `mass phantom` settings.
#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
    /// Projection angles, evenly spaced from 0 to 180 degrees inclusive (the paper's convention)
    #[arg(long, default_value_t = 181)]
    pub angles: usize,
    /// Detector rows (sinograms); each row is the phantom's slice
    #[arg(long, default_value_t = 2)]
    pub rows: usize,
    /// Detector columns (the reconstruction is cols x cols)
    #[arg(long, default_value_t = 640)]
    pub cols: usize,
    /// Rotation axis offset from cols/2, pixels
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub center_offset_px: f64,
    /// Width of the phantom as a fraction of the detector (below 1 keeps an off-centre axis from cutting it off)
    #[arg(long, default_value_t = 1.0)]
    pub object_scale: f64,
    /// Write no flat fields (/exchange/data_white), as some detectors' files have none
    #[arg(long)]
    pub no_flats: bool,
    /// Write no dark fields (/exchange/data_dark)
    #[arg(long)]
    pub no_darks: bool,
    /// Add Poisson noise to every count
    #[arg(long)]
    pub poisson: bool,
    /// Open-beam counts
    #[arg(long, default_value_t = 20_000.0)]
    pub i0: f64,
    /// Seed of the Poisson noise
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The 3-D head: each detector row sees its own slice (tall detectors; e.g. --rows 1024 --cols 1024)
    #[arg(long)]
    pub volume: bool,
    /// Also write the truth, each row's slice on the cols x cols grid, as reconstructed slices
    /// (/exchange/recon, one per row; what masa's --reference-file reads)
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// `mass run` settings: a file and/or flags; every flag is the settings key of the same name.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Settings file (TOML); flags override it
    #[arg(value_name = "CONFIG.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: RawConfig,
    /// A librdkafka producer property, KEY=VALUE (repeatable; over the config file's [kafka] table)
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = pilot_core::contract::client::parse_property_flag)]
    pub kafka: Vec<(String, String)>,
}

impl RunArgs {
    /// File settings with flags on top, and the origin for error messages.
    pub fn raw(&self) -> anyhow::Result<(RawConfig, String)> {
        let (file, origin) = match &self.config {
            Some(p) => (RawConfig::from_file(p)?, p.display().to_string()),
            None => (RawConfig::default(), "command line".to_string()),
        };
        let mut flags = self.settings.clone();
        if !self.kafka.is_empty() {
            flags.kafka = Some(self.kafka.iter().cloned().collect());
        }
        Ok((file.overlay(flags)?, origin))
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
            let shutdown = pilot_core::contract::signals::shutdown_flag()?;
            let conn = producer::connect(&plan.target)?;
            let show = !quiet && std::io::stderr().is_terminal();
            let mut progress = |row: &mass::report::IntervalRow| {
                if show {
                    let target = if row.target_msgs_per_s > 0.0 {
                        format!(" (target {:.0})", row.target_msgs_per_s)
                    } else {
                        String::new()
                    };
                    eprint!(
                        "\r[{:>7.1} s] {:>9.0} msg/s{target} {:>9.1} MB/s  sent {:>8} failed {:>4}   ",
                        row.t_s, row.msgs_per_s, row.mb_per_s, row.sent_msgs, row.failed_msgs
                    );
                }
            };
            let out = producer::run(
                &plan,
                &conn,
                Arc::new(pilot_core::contract::clock::SystemClock::new()),
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
            if !s.notes.is_empty() {
                writeln!(o, "  notes: {}", s.notes)?;
            }
            if let Some(d) = &plan.results_dir {
                writeln!(o, "  results: {}", producer::summary_path(d).display())?;
            }
            if !s.complete {
                anyhow::bail!("run incomplete: {}", s.incomplete_reason);
            }
            Ok(())
        }
        Command::Phantom(args) => phantom(args),
    }
}

/// `mass phantom`: the scan file, and its truth when asked.
fn phantom(a: PhantomArgs) -> anyhow::Result<()> {
    let PhantomArgs {
        out,
        angles,
        rows,
        cols,
        center_offset_px,
        object_scale,
        no_flats,
        no_darks,
        poisson,
        i0,
        seed,
        volume,
        truth,
    } = a;
    if angles == 0 || rows == 0 || cols < 2 {
        anyhow::bail!("--angles and --rows must be at least 1 and --cols at least 2");
    }
    if !(object_scale > 0.0 && object_scale <= 1.0) {
        anyhow::bail!("--object-scale must be in (0, 1] (got {object_scale})");
    }
    if !center_offset_px.is_finite() || center_offset_px.abs() >= cols as f64 / 2.0 {
        anyhow::bail!(
            "--center-offset-px {center_offset_px} puts the axis off the {cols}-column detector"
        );
    }
    if !(i0.is_finite() && i0 > 0.0) {
        anyhow::bail!("--i0 must be a positive number of counts (got {i0})");
    }
    let p = ScanParams {
        angles,
        rows,
        cols,
        center_offset_px,
        object_scale,
        n_white: if no_flats { 0 } else { 10 },
        n_dark: if no_darks { 0 } else { 10 },
        poisson,
        i0,
        seed,
        volume,
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
    if let Some(t) = &truth {
        let values = mass::phantom::truth(&p);
        let mut f = pilot_core::contract::aps::ReconFile::create(t, cols)?;
        f.append(
            values
                .chunks_exact(cols * cols)
                .enumerate()
                .map(|(row, slice)| (slice, row as u32, s.center_px)),
        )?;
        println!(
                "wrote {} (the truth: {rows} slices of {cols} x {cols}, phantom values; x mu {:.6} per px to compare with a reconstruction)",
                t.display(),
                s.mu
            );
    }
    Ok(())
}
