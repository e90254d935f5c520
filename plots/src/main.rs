//! `plots RESULTS_DIR [--out DIR]`: SVG and PNG figures from an experiment's results.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "plots",
    version,
    about = "Figures (SVG and PNG) from results/<experiment>/: the paper's figures, latency percentiles, throughput over time"
)]
struct Cli {
    /// An experiment's results directory (results/<name>)
    results: PathBuf,
    /// Where the figures go [default: RESULTS/figures]
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let files = plots::figures::plot_dir(&cli.results, cli.out.as_deref())?;
    for f in &files {
        println!("{}", f.display());
    }
    Ok(())
}
