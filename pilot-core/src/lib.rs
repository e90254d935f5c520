//! pilot-core: pilots on HPC resources for streaming pipelines, and the contract between the mini-apps.
//!
//! A *pilot* ([`pilots::pilot::Pilot`]) is a placeholder allocation of nodes that boots a framework (Kafka
//! brokers, a Spark, Dask or Flink cluster, or nothing: a compute pilot) and reports how to reach it. The crate
//! has three parts, each a folder:
//!
//! - [`contract`]: what MASS and MASA share and depends on no pilot: the message format (detector frames
//!   included, in the envelope and as ESS FlatBuffers), the control commands a frame source obeys, client settings
//!   and topic admin, APS files, metrics and telemetry, the clock, two-stage settings, the shutdown flag.
//! - [`pilots`]: descriptions and plans, the pilot and its store and lifecycle, resource backends (local,
//!   SLURM), framework plugins (Kafka, Spark, Dask, Flink, none), processes and tasks, and [`pilots::api`], the
//!   library entry point a program drives pilots through.
//! - [`ops`]: operations on running pilots: the autoscaler, faults, the smoke check, and the steering policy that
//!   turns a rolling reconstruction's quality into commands to a frame source.
//!
//! Beside them: [`error`] (the crate's error type), [`cli`] (the `pilot` command, a thin layer over
//! [`pilots::api`]; the binary is a thin wrapper) and [`slurm_cluster`] (a real 4-node SLURM cluster on this
//! machine for tests, `scripts/slurm-cluster.sh`).
//!
//! Dependencies point one way: `ops` -> `pilots` -> `contract` -> `error`; inside `pilots`, the plugins and
//! backends sit below the pilot that drives them.

pub mod cli;
pub mod contract;
pub mod error;
pub mod ops;
pub mod pilots;
pub mod slurm_cluster;

pub use error::{PilotError, Result};
pub use pilots::pilot::Pilot;
pub use pilots::record::{PilotDetails, PilotState};
