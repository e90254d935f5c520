//! Figures from experiment results: reads `results/<experiment>/` through the results schema of
//! `experiments::results` (results.csv, the runs' timeline.csv) and writes SVG and PNG figures.
//!
//! - [`timeline`]: an elastic run over time (rates, lag, consumers as a step line, scaling events), stacked panels.
//! - [`figures`]: what to draw. The paper's four figures by experiment name (`fig6*` start-up time vs nodes, a
//!   line per framework and a panel per resource for start-up runs,
//!   `fig7*` latency vs window, `fig8*` producer throughput, `fig9*` processing throughput; log axes where the
//!   paper used them, facets by broker count), a generic throughput/latency figure for any other experiment,
//!   and for every experiment the latency percentiles per point and the consumers' throughput over time (from
//!   each run's timeline).
//!   Points are means over the measured repetitions with their standard deviation as error bars; warm-up runs
//!   are left out.
//! - [`chart`]: how to draw it (plotters), the same figure to SVG and PNG. Text uses the DejaVu Sans font
//!   compiled into the binary, so PNGs render with no system fonts installed.

pub mod chart;
pub mod figures;
pub mod timeline;

/// Errors making figures.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {message}")]
    Input {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("drawing {path}: {message}")]
    Draw {
        path: std::path::PathBuf,
        message: String,
    },
}
