//! Experiments: TOML matrices (axes over nodes, processes, partitions, message sizes, ...) expanded into runs that
//! allocate pilots through `pilot-core`, run MASS and MASA on them, and write tidy CSV plus a manifest under
//! `results/<experiment>/`.
//!
//! - [`spec`]: the experiment file, checked (header, keys and their lines, axes and zip, MASS's and MASA's own
//!   validation, faults) and expanded into points before anything runs; `experiments plan` prints them.
//! - [`runner`]: `experiments run`: the matrix walked (results and manifest written after every run, progress
//!   and time left, resume after a crash or Ctrl-C), each pipeline run as stages in `runner/`: plan and start
//!   the run's pilots by role (a broker pilot, and framework-free producer and processing pilots that use its
//!   brokers; `plan.rs`, `pipeline.rs`), topics, settings and commands (`commands.rs`), consumers (static, or
//!   an autoscaled run's, started and stopped by `pilot autoscale`'s controller: `autoscaled.rs`), producers once
//!   the group has formed, the fault schedule (`faults.rs`), the timeline (`timeline.rs`) and the records into
//!   metrics (`collect.rs`); each start-up run (`kind = "startup"`, Figure 6) one framework pilot timed and
//!   cancelled (`startup.rs`). Errors are [`runner::RunError`].
//! - [`results`]: `results/<name>/results.csv` (tidy, one row per run), `manifest.json` (provenance), and each
//!   run's `timeline.csv` (target, produced and consumed rates, lag, consumers and scaling events per second):
//!   the results schema the figures are drawn from.
//! - [`elastic`]: how an elastic run followed its rate steps (decisions and seconds to converge, distance from
//!   the optimum, lag recovery, consumer-seconds), pure arithmetic over the timeline and decisions.
//! - [`compare`]: `experiments compare`, `experiments baseline` (bands from a measured run: mean, sd,
//!   repetitions, machine fingerprint) and `experiments check` (like for like: same experiment, point and
//!   machine, each value as a ratio to the run's [`calibration`]) for regression benchmarking.
//! - [`calibration`]: the machine-speed measurement taken before every run.
//! - [`model`]: `experiments model` and `experiments predict` (the Universal Scalability Law, Ernest's form and
//!   interpolation fitted per metric, chosen by held-out error, with bootstrap intervals, the optimum and the
//!   bottleneck), and the designs behind `strategy = "adaptive"` (runs chosen by D- or A-optimal design, or by
//!   Bayesian optimisation toward the best configuration); `experiments model --replay` scores a design on a full
//!   sweep's held-out points.
//!
//! Shipped experiment files are in `experiments/` beside this crate's sources: `quickstart.toml` (the README's
//! main job), `smoke.toml` with `references.toml` and `elastic-smoke.toml` (checked in the test suite),
//! `elastic-local.toml` (autoscaled vs static through a 4x step), `regression.toml` with its baseline
//! `regression-baseline.toml` (CI's regression check, under 2 minutes), `model-sweep-local.toml` (24 points for the
//! models to be measured against), and one per paper figure in a local-scale and a cluster-scale variant.
pub mod calibration;
pub mod compare;
pub mod elastic;
pub mod model;
pub mod results;
pub mod runner;
pub mod spec;
