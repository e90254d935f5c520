//! MASS, the Mini-App for Stream Sources: emulates a scientific instrument by pushing messages into Kafka.
//!
//! Data flow: a [`source::Source`] hands out message bodies (cluster points, a static block, an APS HDF5
//! template, synthetic bytes) -> the open-loop [`rate::Pacer`] says when each is due -> the producer stamps the
//! actual send time and hands it to rdkafka -> delivery reports feed latency histograms and counters -> CSV.
//!
//! - [`producer`]: the run as stages, each in its own module: `prepare_topic`, then per thread the sender
//!   (schedule -> generate -> stamp and send -> serve delivery reports; `producer/sender.rs`), the delivery
//!   reports' counters and latency (`producer/delivery.rs`), interval rows (`producer/intervals.rs`), and the
//!   tally, rates and summary row at the end (`producer/summary.rs`); [`config`]: settings checked by concern
//!   (connection, source, rate, points profile, stop rule, threads) into a `ProducerPlan`.
//! - [`source`]: the sources behind one trait; [`phantom`]: an analytic Shepp-Logan scan written in tooth.h5's
//!   layout (the project's own template data).
//! - [`frames`]: a detector streaming one message per frame (darks, flats, projections in an
//!   [`angles::AngleOrder`], flat/dark re-takes), its pixels from [`phantom3d`], the 3-D Shepp-Logan head
//!   projected in closed form.
//! - [`normal`]: a fast ziggurat N(0,1) sampler (the generator's hot loop).
//! - [`rate`]: open-loop rate control (intended send time of message n = start + n / rate, or where a rate
//!   profile's integral reaches n); [`profile`]: values that change over a run (rate and points per message:
//!   steps, ramps, sines, bursts, traces) with their exact integrals.
//!
//! The message format and client settings come from `pilot-core` (shared with MASA).

pub mod angles;
pub mod config;
pub mod frames;
pub mod normal;
pub mod phantom;
pub mod phantom3d;
pub mod producer;
pub mod profile;
pub mod rate;
pub mod report;
pub mod source;
