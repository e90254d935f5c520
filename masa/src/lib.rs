//! MASA, the Mini-App for Stream Analysis: consumes MASS's messages from Kafka and processes them.
//!
//! Starting point. The MASA issue fills this crate with consumer groups, the processor interface (`none`,
//! streaming KMeans with Spark MLlib's update rule), windows, and latency/loss accounting; the light-source
//! issue adds the tomography kernels (GridRec, ML-EM) as processors. Client settings come from `pilot-core`.
