//! MASA, the Mini-App for Stream Analysis: consumes MASS's messages from Kafka and processes them.
//!
//! Data flow per consumer thread: rdkafka consumer (one group across threads and processes) -> [`decode`]
//! (any encoding MASS sends, into reused buffers; malformed messages rejected with a reason, never fatal) ->
//! [`accounting`] (every producer's sequence: received, duplicate, missing) and end-to-end latency -> the
//! [`processor::Processor`] collects the message -> [`window`] decides when to process -> metrics -> CSV.
//!
//! - [`kmeans`]: streaming KMeans with Spark MLlib's exact update rule (numerics only).
//! - [`processor`]: the `Processor` trait, `none` (decode and count) and `kmeans`, and the emulated per-message
//!   cost (`--cost-ms-per-message`, sleep or busy) that wraps any of them.
//! - [`reconstruct`]: the light-source processors `gridrec` and `mlem` (per-message pipeline, centre cache,
//!   rayon over slice pairs, HDF5 and PNG output).
//! - [`rolling`]: the `rolling` processor: detector frames into a rolling reconstruction (a buffer covering 180
//!   degrees, three ortho-slices updated per frame), live quality per update, PNG quick-looks.
//! - [`tomo`]: tomographic reconstruction numerics, no I/O (filters, FBP baseline, GridRec, ML-EM, centre search,
//!   normalisation, quality measures).
//! - [`simd`]: the run-time choice of AVX-512 / AVX2 / baseline code for those kernels (bit-identical).
//! - [`consumer`]: the run as stages, each in its own module: join the group (`consumer/group.rs`, with the
//!   ledger of offsets that may be committed), per thread a worker (poll -> handle -> ledger -> checkpoint ->
//!   rejoin, `consumer/worker.rs`, with its stop rule) around the per-message handler (decode, account,
//!   latency, window, process: `consumer/handler.rs`), interval rows and reports to a metrics topic
//!   (`pilot_core::contract::telemetry`) that experiments and `pilot autoscale` read (`consumer/intervals.rs`),
//!   the control file (`consumer/control.rs`), and the merged results, files and summary at the end
//!   (`consumer/finish.rs`); [`report`]: the result schema; [`config`]: settings checked by concern (limits,
//!   processor and its keys, KMeans, tomography, identity, cost) into a `ConsumerPlan`.
pub mod accounting;
pub mod config;
pub mod consumer;
pub mod decode;
pub mod kmeans;
pub mod processor;
pub mod reconstruct;
pub mod report;
pub mod rolling;
pub mod simd;
pub mod tomo;
pub mod window;
