//! MASS's result schema: one [`ProducerSummary`] row per run (with its full configuration) and one
//! [`IntervalRow`] per reporting interval, written as CSV through `pilot_core::contract::metrics::CsvWriter`. Column names
//! carry their units; columns that mean the same as MASA's have the same names.

use serde::{Deserialize, Serialize};

/// One row per producer run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerSummary {
    /// Identifier of the run (shared by all its rows).
    pub run_id: String,
    /// Always `producer`.
    pub role: String,
    pub host: String,
    pub pid: u32,
    /// UTC, RFC 3339.
    pub start_utc: String,
    pub end_utc: String,
    /// False when the run was interrupted or failed; `incomplete_reason` says why.
    pub complete: bool,
    pub incomplete_reason: String,
    // --- configuration
    pub bootstrap_servers: String,
    pub topic: String,
    pub partitions: u32,
    pub partitioning: String,
    pub source: String,
    pub encoding: String,
    /// Bytes of one message body (the first one; constant for every source but points-text and a points profile).
    pub message_bytes: u64,
    /// Of the first message (a points profile varies it: see the interval rows).
    pub points_per_message: u64,
    pub threads: u32,
    pub producer_id_first: u32,
    /// 0 when unlimited; with a rate profile, its average over the measured sends.
    pub rate_target_msgs_per_s: f64,
    /// The rate profile as written (empty: a constant rate or unlimited).
    #[serde(default)]
    pub rate_profile: String,
    /// The points-per-message profile as written (empty: constant `points_per_message`).
    #[serde(default)]
    pub points_profile: String,
    /// Messages requested (0 when the run is bounded by duration only).
    pub messages_target: u64,
    /// 0 when bounded by message count only.
    pub duration_target_s: f64,
    pub warmup_s: f64,
    pub acks: String,
    pub linger_ms: u32,
    pub batch_size: u32,
    pub compression: String,
    // --- results (measured part unless named warmup)
    pub elapsed_s: f64,
    /// Seconds from the first to the last measured send.
    pub measured_s: f64,
    /// Seconds from the first measured send to the last measured delivery (the throughput window).
    pub throughput_window_s: f64,
    pub sent_msgs: u64,
    pub delivered_msgs: u64,
    pub failed_msgs: u64,
    /// Sent but neither delivered nor failed when the run ended (broker gone, flush timed out).
    pub unknown_msgs: u64,
    pub warmup_msgs: u64,
    pub delivered_mb: f64,
    /// Measured messages delivered per second, first measured send to last delivery.
    pub throughput_msgs_per_s: f64,
    pub throughput_mb_per_s: f64,
    pub throughput_points_per_s: f64,
    /// Measured sends per second, first to last measured send (what the rate schedule achieved).
    pub send_rate_msgs_per_s: f64,
    /// (send rate - target) / target in percent; 0 when unlimited.
    pub rate_error_pct: f64,
    /// Produce call to delivery report, measured messages.
    pub delivery_latency_us_p50: u64,
    pub delivery_latency_us_p90: u64,
    pub delivery_latency_us_p99: u64,
    pub delivery_latency_us_p999: u64,
    pub delivery_latency_us_max: u64,
    pub delivery_latency_us_mean: f64,
    /// Intended (scheduled) to actual send time: how far the producer fell behind its schedule.
    pub send_lag_us_p50: u64,
    pub send_lag_us_p99: u64,
    pub send_lag_us_max: u64,
    /// Delivery errors by reason, `reason=count;...`.
    pub errors: String,
    /// What the source had to assume about its input (a template without flat or dark fields), `; `-separated.
    #[serde(default)]
    pub notes: String,
}

/// One row per reporting interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    pub run_id: String,
    pub role: String,
    /// Seconds since the run started, at the end of the interval.
    pub t_s: f64,
    pub interval_s: f64,
    pub sent_msgs: u64,
    pub delivered_msgs: u64,
    pub failed_msgs: u64,
    pub delivered_mb: f64,
    /// Delivered per second.
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// What the rate (profile) asked for on average over the interval (0 when unlimited).
    #[serde(default)]
    pub target_msgs_per_s: f64,
    /// Sent per second: what the schedule achieved.
    #[serde(default)]
    pub sent_msgs_per_s: f64,
    /// Points per message at the end of the interval (0 when the messages carry no points).
    #[serde(default)]
    pub points_per_message: u64,
}
