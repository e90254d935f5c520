//! `experiments`: plan, run, compare and check experiment matrices (see the crate documentation).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::bail;
use clap::{Parser, Subcommand};
use experiments::runner::{self, LocalExecutor, RunOptions};
use experiments::spec::Experiment;

#[derive(Parser)]
#[command(
    name = "experiments",
    version,
    about = "Experiment matrices in TOML -> pilots, MASS and MASA runs -> tidy CSV under results/"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check an experiment file and print every run it would do and how long that should take
    Plan {
        /// Experiment file (TOML), e.g. experiments/quickstart.toml
        file: PathBuf,
    },
    /// Run an experiment (finished runs are skipped: run again to resume)
    Run {
        /// Experiment file (TOML), e.g. experiments/quickstart.toml
        file: PathBuf,
        /// Where results/<name>/ goes
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Run again the runs recorded as failed or incomplete
        #[arg(long)]
        rerun_failed: bool,
        /// Choose the runs one at a time instead of running every point (the file's [adaptive] table, or D-optimal
        /// design for consumer throughput): see `strategy = "adaptive"`
        #[arg(long)]
        adaptive: bool,
        /// With --adaptive: run at most this many points [default: the file's, or a quarter of the points]
        #[arg(long, requires = "adaptive")]
        budget: Option<usize>,
    },
    /// Compare two results directories metric by metric (mean +- sd over repetitions)
    Compare {
        /// Results directory to compare against (results/<name>)
        baseline: PathBuf,
        /// Results directory to compare
        current: PathBuf,
    },
    /// Write reference bands from a measured run: per point and metric, mean +- max(SDS sd, MIN_RELATIVE x
    /// mean), throughputs as ratios to the run's calibration, with the machine's fingerprint
    Baseline {
        /// Results directory of a finished run with at least 2 repetitions per point (results/<name>)
        results: PathBuf,
        /// Where the bands go (a references file for `check --references`); - for stdout
        #[arg(long)]
        out: PathBuf,
        /// Band half-width in standard deviations of the baseline's repetitions
        #[arg(long, default_value_t = 3.0)]
        sds: f64,
        /// Smallest band half-width for rates and times, as a fraction of the mean
        #[arg(long, default_value_t = 0.10)]
        min_relative: f64,
    },
    /// Check a results directory against reference bands; exits 1 on a breach
    /// Fit models of each metric against the counts (nodes, processes) and message size of a results directory:
    /// the Universal Scalability Law, Ernest's form and interpolation, chosen by held-out error, with bootstrap
    /// intervals, the predicted optimum and the pipeline's bottleneck
    Model {
        #[command(flatten)]
        model: ModelArgs,
        /// Also replay an adaptive sweep on these measured points: a design that may choose --budget-pct of them,
        /// its model scored on the held-out rest against interpolation and random runs, and a search for the
        /// best point within --best-pct
        #[arg(long)]
        replay: bool,
        /// Share of the points the replayed design may choose, percent
        #[arg(long, default_value_t = 25.0)]
        budget_pct: f64,
        /// Share of the points the replayed best-configuration search may run, percent
        #[arg(long, default_value_t = 30.0)]
        best_pct: f64,
    },
    /// Predict metrics at settings that were not run, from the models of a results directory (marked predicted)
    Predict {
        #[command(flatten)]
        model: ModelArgs,
        /// The settings to predict at: KEY=VALUE,... over the results' count, size and group columns
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        at: Option<String>,
        /// Predict at every point of this experiment file instead (e.g. a larger sweep than was run)
        #[arg(long)]
        file: Option<PathBuf>,
    },
    Check {
        /// Results directory (results/<name>)
        results: PathBuf,
        /// The bands (TOML, [[band]] tables)
        #[arg(long, default_value = "experiments/references.toml")]
        references: PathBuf,
        /// Machine name to match bands with [default: host name and CPU model]
        #[arg(long)]
        machine: Option<String>,
    },
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Results directory (results/<name>) or its results.csv
    results: PathBuf,
    /// Metric column to model (repeatable) [default: the throughputs, latency p50/p99, start-up and
    /// consumer-seconds the results hold]
    #[arg(long = "metric")]
    metrics: Vec<String>,
    /// Settings column that is a count N (repeatable; their product) [default: varying columns named for nodes
    /// or processes]
    #[arg(long = "count")]
    count: Vec<String>,
    /// Settings column that is the message size (repeatable; their product) [default: varying columns named for
    /// points per message, bytes, size or frame rows/cols]
    #[arg(long = "size")]
    size: Vec<String>,
    /// Seed of the bootstrap's resampling
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl ModelArgs {
    fn fit(&self) -> anyhow::Result<experiments::model::analysis::Fitted> {
        Ok(experiments::model::analysis::fit_results(
            &self.results,
            &self.metrics,
            &self.count,
            &self.size,
            self.seed,
        )?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan { file } => {
            let e = Experiment::from_file(&file)?;
            print!("{}", e.describe());
        }
        Command::Run {
            file,
            results,
            rerun_failed,
            adaptive,
            budget,
        } => {
            let mut e = Experiment::from_file(&file)?;
            if adaptive {
                e.make_adaptive(budget)?;
            }
            print!("{}", e.describe());
            let mut exec = LocalExecutor::locate().map_err(anyhow::Error::msg)?;
            let shutdown = pilot_core::contract::signals::shutdown_flag()?;
            let repo = file
                .parent()
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        p.to_path_buf()
                    }
                })
                .unwrap_or_else(|| PathBuf::from("."));
            let s = runner::run(
                &e,
                &results,
                &mut exec,
                &RunOptions { rerun_failed, repo },
                &shutdown,
                &mut |line| eprintln!("{line}"),
            )
            .map_err(anyhow::Error::msg)?;
            println!(
                "{}: {} runs done ({} ok, {} incomplete, {} failed), {} already recorded; results in {}",
                e.name,
                s.ran,
                s.ok,
                s.incomplete,
                s.failed,
                s.skipped,
                s.dir.display()
            );
            if s.interrupted || shutdown.load(Ordering::SeqCst) {
                bail!("interrupted: finished runs are kept; run the same command again to resume");
            }
            if s.failed + s.incomplete > 0 {
                bail!(
                    "{} runs did not account for every message or failed (see the error column)",
                    s.failed + s.incomplete
                );
            }
        }
        Command::Model {
            model,
            replay,
            budget_pct,
            best_pct,
        } => {
            if !(budget_pct > 0.0 && budget_pct <= 100.0 && best_pct > 0.0 && best_pct <= 100.0) {
                bail!("--budget-pct and --best-pct must be in (0, 100] (got {budget_pct} and {best_pct})");
            }
            let f = model.fit()?;
            print!("{}", f.report());
            if replay {
                print!("{}", f.replay(budget_pct / 100.0, best_pct / 100.0));
            }
        }
        Command::Predict { model, at, file } => {
            let f = model.fit()?;
            match (at, file) {
                (Some(at), _) => print!("{}", f.predict_at(&at)?),
                (None, Some(file)) => {
                    print!("{}", f.predict_points(&Experiment::from_file(&file)?)?)
                }
                (None, None) => bail!("give --at KEY=VALUE,... or --file EXPERIMENT.toml"),
            }
        }
        Command::Compare { baseline, current } => {
            print!(
                "{}",
                experiments::compare::compare(&baseline, &current).map_err(anyhow::Error::msg)?
            );
        }
        Command::Baseline {
            results,
            out,
            sds,
            min_relative,
        } => {
            let text = experiments::compare::baseline(
                &results,
                experiments::compare::BaselineOptions { sds, min_relative },
            )
            .map_err(anyhow::Error::msg)?;
            if out.as_os_str() == "-" {
                print!("{text}");
            } else {
                pilot_core::contract::files::write_atomic(&out, text.as_bytes())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
                let n = text.matches("[[band]]").count();
                println!(
                    "{n} bands from {} written to {}",
                    results.display(),
                    out.display()
                );
            }
        }
        Command::Check {
            results,
            references,
            machine,
        } => {
            let bands =
                experiments::compare::read_references(&references).map_err(anyhow::Error::msg)?;
            let r = experiments::compare::check(&results, &bands, machine.as_deref())
                .map_err(anyhow::Error::msg)?;
            print!("{}", r.text);
            if r.checked == 0 {
                bail!(
                    "no band in {} applies to this experiment and machine",
                    references.display()
                );
            }
            if r.breaches > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
