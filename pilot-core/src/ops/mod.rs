//! Operations on running pilots.
//!
//! - [`autoscale`]: elastic processing: a pure scaling policy, the controller that feeds it the consumers'
//!   reports, and the actuator that starts and stops processing pilots (`pilot autoscale`).
//! - [`fault`]: faults as data (kill, stop, cancel, SLURM node states, slow consumers), their schedule and the
//!   registry of where every broker, producer and consumer runs.
//! - [`smoke`]: an end-to-end check of a pilot (start, push messages through and back, cancel).
//! - [`steer`]: the steering policy that turns a rolling reconstruction's quality, lag and background into
//!   commands to the frame source (stop when converged, keep up, re-take flats).

pub mod autoscale;
pub mod fault;
pub mod smoke;
pub mod steer;
