//! `plots RESULTS_DIR [--out DIR] [--html]`: SVG and PNG figures from an experiment's results, and an HTML
//! report.

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
    /// Also write report.html there: the figures, the experiment file, the manifest's provenance and the results
    /// table in one page that opens from disk (no server)
    #[arg(long)]
    html: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let files = if cli.html {
        plots::figures::plot_dir_with_report(&cli.results, cli.out.as_deref())?
    } else {
        plots::figures::plot_dir(&cli.results, cli.out.as_deref())?
    };
    for f in &files {
        println!("{}", f.display());
    }
    Ok(())
}
