//! MASA, the Mini-App for Stream Analysis: consumes MASS's messages from Kafka and processes them.
//!
//! - [`kmeans`]: streaming KMeans with Spark MLlib's exact update rule (numerics only).
pub mod kmeans;
