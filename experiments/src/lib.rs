//! Experiments: TOML matrices (axes over nodes, partitions, message sizes, ...) expanded into runs that
//! allocate pilots through `pilot-core`, run MASS and MASA, and write tidy CSV plus a manifest under `results/`.
//!
//! Starting point: the experiments issue fills this crate. Until then `scripts/main.sh` runs the pipeline once
//! (pilot, MASA with KMeans, MASS) and MASS/MASA write their own CSV results.
