//! Plots: reads a results directory written by `experiments` and renders the paper's figures (startup time,
//! latency, producer and processing throughput) as SVG and PNG.
//!
//! Starting point: the experiments/plots issue fills this crate.
