//! What MASS and MASA must agree on, and what both use to reach the brokers. Nothing here knows of pilots.
//!
//! - [`message`]: the wire format (versioned envelope; the paper's text and HDF5 encodings; the accounting key);
//!   [`frame`]: detector frames (projection, flat, dark) as envelopes, one message per frame; [`ess`]: the same
//!   frames as ESS's FlatBuffers (`ad00` arrays, `f144` rotation-stage positions).
//! - [`control`]: commands to a frame source (stop, pause, rate, flat/dark re-takes, rows) and its answers.
//! - [`client`]: client properties and where the brokers are ([`client::Connection`]); [`admin`]: topics and
//!   metadata over the Kafka protocol.
//! - [`aps`]: APS Data Exchange HDF5 files (from disk, or from a message's bytes in a helper process).
//! - [`metrics`]: latency histograms, CSV records and interval reporting; [`telemetry`]: the consumers' interval
//!   reports on a metrics topic (busy time, positions, high watermarks) and the group view built from them.
//! - [`clock`]: injected time; [`config`]: two-stage settings (raw, then validated, errors naming the key);
//!   [`signals`]: the SIGINT/SIGTERM shutdown flag; [`files`]: files replaced whole.

pub mod admin;
pub mod aps;
pub mod client;
pub mod clock;
pub mod config;
pub mod control;
pub mod ess;
pub mod files;
pub mod frame;
pub mod message;
pub mod metrics;
pub mod signals;
pub mod telemetry;
