//! Pilots: placeholder allocations that boot a framework and report how to reach it.
//!
//! ```text
//! description (TOML / flags)  --validate-->  PilotPlan  --ResourceBackend::allocate-->  nodes
//!        description.rs                                     backend/ (local, slurm)
//!   --Framework::start + wait_ready-->  PilotDetails (brokers, master / scheduler, nodes and roles, logs)
//!        framework/ (kafka | spark | dask | flink | none)        pilot.rs, persisted by store.rs
//! ```
//!
//! - [`api`]: the library entry point a program (the `pilot` CLI, a Python binding) drives pilots through:
//!   create from a description, wait, details, extend, cancel, run tasks, connection details.
//! - [`description`]: raw descriptions (unknown keys rejected) and the validated [`description::PilotPlan`].
//! - [`record`]: what is known about a pilot ([`record::PilotRecord`], [`record::PilotState`],
//!   [`record::PilotDetails`]); [`pilot`]: one pilot's life ([`pilot::Pilot`]); [`store`]: pilot records on disk; [`lifecycle`]: the detached agent, foreground supervision and the SIGTERM-then-SIGKILL stop
//!   protocol.
//! - [`backend`]: the [`backend::ResourceBackend`] trait, the local backend (one loopback address per node) and
//!   the SLURM backend (placeholder job, frameworks as job steps, `slurm://` and `slurm+ssh://`).
//! - [`framework`]: the [`framework::plugin::Framework`] plugin trait, one module per framework.
//! - [`process`]: child processes that die with their owner, and signals to them; [`tasks`]: P copies of a
//!   command per node (MASS and MASA processes; Dask tasks; `spark-submit`); [`connect`]: a mini-app's target
//!   (brokers or a pilot id) resolved into its connection.

pub mod api;
pub mod backend;
pub mod connect;
pub mod description;
pub mod framework;
pub mod lifecycle;
pub mod pilot;
pub mod process;
pub mod record;
pub mod store;
pub mod tasks;
