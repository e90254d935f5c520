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
//!   Fig. 8 is drawn as the paper drew it, a bar per source at each producer count, a panel per broker count.
//!   The latency figure is HdrHistogram's percentile distribution (x: 1/(1-p) on a log axis, 50 % .. 99.99 %)
//!   from each run's merged `e2e-latency.hgrm`.
//! - [`models`]: each metric's model (`experiments model`): the measured points and the chosen form's curve on to
//!   counts not measured, dashed, with its 90 % interval shaded.
//! - [`chart`]: how to draw it (plotters), the same figure to SVG and PNG, one legend outside the data. Text uses
//!   the DejaVu Sans font compiled into the binary, so PNGs render with no system fonts installed.
//! - [`style`]: how every figure looks: colour-blind-safe palette, markers, ticks (whole numbers for counts),
//!   numbers as people write them (16k).
//! - [`report`]: `--html`, one self-contained page per experiment: figures, experiment file, provenance,
//!   results table.

pub mod chart;
pub mod figures;
pub mod models;
pub mod report;
pub mod style;
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
