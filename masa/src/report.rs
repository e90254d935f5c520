//! MASA's result schema: a [`ConsumerSummary`] row per consumer process and run, [`ConsumerInterval`] rows,
//! and the process's [`crate::accounting::Accounting`] as JSON (merged across processes by `masa merge`).
//! Units are in the column names; columns shared with MASS's producer rows have the same names.

use serde::{Deserialize, Serialize};

/// One row per consumer process and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerSummary {
    pub run_id: String,
    /// Always `consumer`.
    pub role: String,
    pub consumer_id: String,
    pub host: String,
    pub pid: u32,
    pub start_utc: String,
    pub end_utc: String,
    /// False when interrupted, or when messages are missing or were rejected.
    pub complete: bool,
    pub incomplete_reason: String,
    // --- configuration
    pub bootstrap_servers: String,
    pub topic: String,
    pub group: String,
    pub threads: u32,
    pub processor: String,
    pub window: String,
    /// Messages the run was told were produced (0 when not declared).
    pub expected_msgs: u64,
    // --- results
    pub elapsed_s: f64,
    /// Subscribe to first partition assignment (group join), seconds.
    pub rebalance_s: f64,
    /// First to last message received, seconds.
    pub receive_window_s: f64,
    /// Distinct (producer, sequence) pairs received (MASS's messages).
    pub received_msgs: u64,
    /// Messages without MASS's accounting (another producer's): processed, not attributable to a producer and
    /// sequence; their latency is from the Kafka message timestamp. Throughput counts them with the others.
    #[serde(default)]
    pub unaccounted_msgs: u64,
    pub duplicate_msgs: u64,
    pub rejected_msgs: u64,
    /// `reason=count;...`
    pub rejected_reasons: String,
    /// In this process's view (see `masa merge` for a group's).
    pub missing_msgs: u64,
    pub received_mb: f64,
    pub processed_items: u64,
    pub windows: u64,
    pub throughput_msgs_per_s: f64,
    pub throughput_mb_per_s: f64,
    /// Points (KMeans) or slices processed per second.
    pub throughput_items_per_s: f64,
    /// Receive time minus the producer's intended send time.
    pub e2e_latency_us_p50: u64,
    pub e2e_latency_us_p90: u64,
    pub e2e_latency_us_p99: u64,
    pub e2e_latency_us_p999: u64,
    pub e2e_latency_us_max: u64,
    pub e2e_latency_us_mean: f64,
    /// Receive time minus the producer's actual send time.
    pub e2e_actual_latency_us_p50: u64,
    pub e2e_actual_latency_us_p99: u64,
    /// From the intended send time to the end of the processing of the message's window (what a window adds
    /// to a message's latency shows here, not in the e2e figures, which stop at receipt).
    pub processed_latency_us_p50: u64,
    pub processed_latency_us_p99: u64,
    /// Time to process a window.
    pub processing_us_p50: u64,
    pub processing_us_p99: u64,
    pub processing_us_max: u64,
    /// Window end to processing start.
    pub scheduling_delay_us_p50: u64,
    pub scheduling_delay_us_p99: u64,
    /// Messages left in the assigned partitions at the end: high watermark minus position, the high watermark
    /// being the larger of the consumer's fetch responses' (librdkafka statistics, at most one statistics interval
    /// old) and the broker's ListOffsets answer (which tansu 0.6.0 gets wrong).
    pub lag_msgs: i64,
    /// Seconds spent handling messages and processing windows (the true rate is handled_msgs / busy_s).
    #[serde(default)]
    pub busy_s: f64,
    /// Messages handled: received, duplicate or rejected.
    #[serde(default)]
    pub handled_msgs: u64,
    /// Processor figure of merit of the last window (KMeans: mean squared distance per point).
    pub last_score: f64,
    /// What had to be assumed about the input (a scan without flat fields; where latency came from), `; `-separated.
    #[serde(default)]
    pub notes: String,
    /// Why the consumer stopped: `stream-end` (the group consumed the announced end), `messages`, `duration`,
    /// `idle-timeout` (the safety net), `start-timeout` or `interrupted`.
    #[serde(default)]
    pub stop_reason: String,
}

/// One row per reporting interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerInterval {
    pub run_id: String,
    pub role: String,
    pub consumer_id: String,
    pub t_s: f64,
    pub interval_s: f64,
    /// Messages received in the interval (MASS's and unaccounted ones).
    pub received_msgs: u64,
    pub rejected_msgs: u64,
    pub received_mb: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// Partitions this process holds at the end of the interval.
    pub assigned_partitions: u64,
    /// Seconds spent handling messages in the interval (all threads).
    #[serde(default)]
    pub busy_s: f64,
    /// 99th percentile of the end-to-end latency (intended send to receipt) of the interval's messages, us
    /// (0 when none arrived; the consumer threads hand theirs over every 200 ms, so a message may count in the
    /// next interval).
    #[serde(default)]
    pub e2e_latency_us_p99: u64,
}
