//! pilot-core: pilots on HPC resources for streaming pipelines, and the contract between the mini-apps.
//!
//! A *pilot* ([`pilot::Pilot`]) is a placeholder allocation of nodes that boots a framework (today Kafka) and
//! reports how to reach it. Data flows:
//!
//! ```text
//! description (TOML / flags)  --validate-->  PilotPlan  --ResourceBackend::allocate-->  nodes
//!        description.rs                                     backend/ (local, slurm)
//!   --Framework::start + wait_ready-->  PilotDetails (bootstrap servers, client properties, nodes, logs)
//!        framework/kafka (tansu | apache-kafka | external)        pilot.rs, persisted by store.rs
//! ```
//!
//! Where things live:
//! - [`description`]: raw descriptions (unknown keys rejected) and the validated [`description::PilotPlan`].
//! - [`backend`]: the [`backend::ResourceBackend`] trait, the local backend (one loopback address per node) and
//!   the SLURM backend (placeholder job, frameworks as job steps, `slurm://` and `slurm+ssh://`);
//!   [`slurm_cluster`]: a real 4-node SLURM cluster on this machine for tests (`scripts/slurm-cluster.sh`).
//! - [`framework`]: the [`framework::Framework`] plugin trait and the Kafka plugin ([`framework::kafka`]),
//!   including Apache Kafka KRaft config generation ([`framework::kafka::apache`]).
//! - [`pilot`]: lifecycle and states; [`store`]: pilot state on disk; [`process`]: child processes that die
//!   with their owner.
//! - [`admin`]: topics and metadata over the Kafka protocol; [`client`]: client properties both mini-apps use.
//! - [`tasks`]: P copies of a command per node (MASS and MASA processes on a pilot's nodes).
//! - [`cli`]: the `pilot` command (the binary is a thin wrapper); [`smoke`]: an end-to-end check of a pilot.
//!
//! What MASS and MASA must agree on also lives here:
//! - [`message`]: the wire format (versioned envelope; the paper's text and HDF5 encodings);
//! - [`aps`]: APS Data Exchange HDF5 files (from disk or from a message's bytes);
//! - [`metrics`]: latency histograms and CSV records; [`clock`]: injected time.

pub mod admin;
pub mod aps;
pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connect;
pub mod description;
pub mod error;
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

pub use error::{PilotError, Result};
pub use pilot::{Pilot, PilotDetails, PilotState};
