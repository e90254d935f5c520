//! Experiments: TOML matrices (axes over nodes, partitions, message sizes, ...) expanded into runs that
//! allocate pilots through `pilot-core`, run MASS and MASA, and write tidy CSV plus a manifest under `results/`.
//!
//! Starting point: the experiments issue fills this crate. Until then `pilot smoke` is the end-to-end run.
