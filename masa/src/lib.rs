//! MASA, the Mini-App for Stream Analysis: consumes MASS's messages from Kafka and processes them.
//!
//! Data flow per consumer thread: rdkafka consumer (one group across threads and processes) -> [`decode`]
//! (any encoding MASS sends, into reused buffers; malformed messages rejected with a reason, never fatal) ->
//! [`accounting`] (every producer's sequence: received, duplicate, missing) and end-to-end latency -> the
//! [`processor::Processor`] collects the message -> [`window`] decides when to process -> metrics -> CSV.
//!
//! - [`kmeans`]: streaming KMeans with Spark MLlib's exact update rule (numerics only).
//! - [`processor`]: `none` (decode and count) and `kmeans`; the light-source processors plug in here too.
//! - [`consumer`]: the run loop; [`report`]: the result schema.
//! - [`tomo`]: tomographic reconstruction numerics (filters, filtered back projection so far; GridRec and ML-EM
//!   come with the light-source issue).
pub mod accounting;
pub mod config;
pub mod consumer;
pub mod decode;
pub mod kmeans;
pub mod processor;
pub mod reconstruct;
pub mod report;
pub mod tomo;
pub mod window;
