//! pilot-core: pilots on HPC resources for streaming pipelines, and the contract between the mini-apps.
//!
//! A *pilot* ([`pilot::Pilot`]) is a placeholder allocation of nodes that boots a framework (Kafka brokers, a
//! Spark, Dask or Flink cluster, or nothing: a compute pilot) and reports how to reach it. Data flows:
//!
//! ```text
//! description (TOML / flags)  --validate-->  PilotPlan  --ResourceBackend::allocate-->  nodes
//!        description.rs                                     backend/ (local, slurm)
//!   --Framework::start + wait_ready-->  PilotDetails (brokers, master / scheduler, nodes and roles, logs)
//!        framework/ (kafka | spark | dask | flink | none)        pilot.rs, persisted by store.rs
//! ```
//!
//! Where things live:
//! - [`description`]: raw descriptions (unknown keys rejected) and the validated [`description::PilotPlan`];
//!   the frameworks' Python environment outside the clone ([`description::default_python_env`]).
//! - [`backend`]: the [`backend::ResourceBackend`] trait, the local backend (one loopback address per node) and
//!   the SLURM backend (placeholder job, frameworks as job steps, `slurm://` and `slurm+ssh://`);
//!   [`slurm_cluster`]: a real 4-node SLURM cluster on this machine for tests (`scripts/slurm-cluster.sh`).
//! - [`framework`]: the [`framework::Framework`] plugin trait, one module per framework: [`framework::kafka`]
//!   (tansu, Apache Kafka KRaft config generation, external), [`framework::spark`], [`framework::dask`],
//!   [`framework::flink`], [`framework::none`].
//! - [`pilot`]: lifecycle and states; [`lifecycle`]: the detached agent, foreground supervision and the
//!   SIGTERM-then-SIGKILL stop protocol; [`store`]: pilot state on disk; [`process`]: child processes that die
//!   with their owner; [`signals`]: the SIGINT/SIGTERM shutdown flag.
//! - [`tasks`]: P copies of a command per node (MASS and MASA processes; Dask tasks on a Dask pilot;
//!   `spark-submit` to a Spark pilot); [`connect`]: a mini-app's target (brokers or a pilot id) resolved into its
//!   [`client::Connection`].
//! - [`admin`]: topics and metadata over the Kafka protocol.
//! - [`autoscale`]: elastic processing: a pure scaling policy, the controller that feeds it the consumers'
//!   reports, and the actuator that starts and stops processing pilots (`pilot autoscale`).
//! - [`cli`]: the `pilot` command (the binary is a thin wrapper); [`smoke`]: an end-to-end check of a pilot.
//!
//! What MASS and MASA must agree on also lives here, and depends on no pilot:
//! - [`message`]: the wire format (versioned envelope; the paper's text and HDF5 encodings);
//! - [`client`]: client properties and where the brokers are ([`client::Connection`]);
//! - [`aps`]: APS Data Exchange HDF5 files (from disk, or from a message's bytes in a helper process);
//! - [`metrics`]: latency histograms and CSV records; [`clock`]: injected time; [`config`]: two-stage settings;
//! - [`telemetry`]: the consumers' interval reports on a metrics topic (busy time, positions, high watermarks),
//!   and the group view built from them (lag, members, a group formed).

pub mod admin;
pub mod aps;
pub mod autoscale;
pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connect;
pub mod description;
pub mod error;
pub mod fault;
pub mod framework;
pub mod lifecycle;
pub mod message;
pub mod metrics;
pub mod pilot;
pub mod process;
pub mod signals;
pub mod slurm_cluster;
pub mod smoke;
pub mod store;
pub mod tasks;
pub mod telemetry;

pub use error::{PilotError, Result};
pub use pilot::{Pilot, PilotDetails, PilotState};
