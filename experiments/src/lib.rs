//! Experiments: TOML matrices (axes over nodes, processes, partitions, message sizes, ...) expanded into runs that
//! allocate pilots through `pilot-core`, run MASS and MASA on them, and write tidy CSV plus a manifest under
//! `results/<experiment>/`.
//!
//! - [`spec`]: the experiment file, checked (keys, lines, MASS's and MASA's own validation) and expanded into
//!   points before anything runs; `experiments plan` prints them.
//! - [`runner`]: `experiments run`: each run on fresh pilots (broker, producers, processors), MASS and MASA as
//!   processes on their nodes, progress and time left, resume after a crash or Ctrl-C.
//! - [`results`]: `results/<name>/results.csv` (tidy, one row per run) and `manifest.json` (provenance).
//! - [`compare`]: `experiments compare` and `experiments check` (reference bands) for regression benchmarking.
//!
//! Shipped experiment files are in `experiments/` beside this crate's sources: `quickstart.toml` (the README's
//! main job), `smoke.toml` with `references.toml` (checked in the test suite), and one per paper figure in a
//! local-scale and a cluster-scale variant.
pub mod compare;
pub mod results;
pub mod runner;
pub mod spec;
