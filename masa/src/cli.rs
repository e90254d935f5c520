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
        /// Fail on duplicates too (by default, at least once is the contract: duplicates are reported with their
        /// cause, missing or rejected messages are an error)
        #[arg(long)]
        exactly_once: bool,
    },
}

/// `masa run` settings: a file and/or flags; every flag is the settings key of the same name.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Settings file (TOML); flags override it
    #[arg(value_name = "CONFIG.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: RawConfig,
    /// A librdkafka consumer property, KEY=VALUE (repeatable; over the config file's [kafka] table)
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = pilot_core::contract::client::parse_property_flag)]
    pub kafka: Vec<(String, String)>,
}

impl RunArgs {
    fn raw(&self) -> anyhow::Result<(RawConfig, String)> {
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

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            args,
            dry_run,
            quiet,
        } => {
            let (raw, origin) = args.raw()?;
            let slowdown = std::env::var(masa::config::SLOWDOWN_ENV).ok();
            let plan = raw
                .validate(&origin)?
                .slowed(slowdown.as_deref())
                .map_err(|e| anyhow::anyhow!("environment: {e}"))?;
            if let Some(ms) = &slowdown {
                eprintln!(
                    "masa: {}={ms}: every message costs {ms} ms more, on purpose",
                    masa::config::SLOWDOWN_ENV
                );
            }
            if dry_run {
                print!("dry run: masa would run\n{}", plan.describe());
                return Ok(());
            }
            let shutdown = pilot_core::contract::signals::shutdown_flag()?;
            let conn = pilot_core::pilots::connect::resolve(&plan.target)?;
            let show = !quiet && std::io::stderr().is_terminal();
            let mut progress = |r: &masa::report::ConsumerInterval| {
                if show {
                    eprint!("\r[{:>7.1} s] {:>9.0} msg/s {:>9.1} MB/s  received {:>8} rejected {:>4}   ", r.t_s, r.msgs_per_s, r.mb_per_s, r.received_msgs, r.rejected_msgs);
                }
            };
            let out = consumer::run(
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
                "  received {} msgs ({:.1} MB), unaccounted {}, duplicates {}, rejected {}{}, missing {}",
                s.received_msgs,
                s.received_mb,
                s.unaccounted_msgs,
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
            if !s.notes.is_empty() {
                writeln!(o, "  notes: {}", s.notes)?;
            }
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
            exactly_once,
        } => merge(&dirs, expect_messages, exactly_once),
    }
}

/// `masa merge`: the group's accounting, and which consumers died (and when) instead of calling their messages
/// missing. At least once is the contract: an error when messages are missing or were rejected, and with
/// `--exactly-once` when any came twice.
fn merge(dirs: &[PathBuf], expect_messages: Option<u64>, exactly_once: bool) -> anyhow::Result<()> {
    let (acc, files) = consumer::merge_accounting(dirs)?;
    if files == 0 {
        anyhow::bail!("no consumer-*-accounting.json (or checkpoint) in {dirs:?}");
    }
    let t = acc.totals(expect_messages);
    println!(
        "{files} accounting files: received {} distinct, unaccounted {}, duplicates {}, rejected {}, missing {}{}",
        t.received,
        t.unaccounted,
        t.duplicates,
        t.rejected,
        t.missing,
        expect_messages.map(|e| format!(" (of {e} produced)")).unwrap_or_default()
    );
    for d in consumer::died(dirs)? {
        println!(
            "  consumer {} died after {} (no final accounting; its checkpoints hold {} messages, counted above)",
            d.consumer_id, d.last_checkpoint_utc, d.messages
        );
    }
    for (p, r) in &acc.received {
        println!(
            "  producer {p}: {} messages in {} range(s)",
            r.count(),
            r.0.len()
        );
    }
    if t.duplicates > 0 {
        println!(
            "  {} duplicates: messages handled but not yet committed when their partition moved (a rebalance, a consumer that died) came again to the next owner; at-least-once delivery, each counted once above",
            t.duplicates
        );
    }
    if t.missing > 0 || t.rejected > 0 {
        anyhow::bail!(
            "not every message was received: {} missing, {} rejected",
            t.missing,
            t.rejected
        );
    }
    if exactly_once && t.duplicates > 0 {
        anyhow::bail!("not exactly once: {} duplicates", t.duplicates);
    }
    Ok(())
}
