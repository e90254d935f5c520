//! Measurement records both mini-apps write: latency histograms in microseconds ([`LatencyHistogram`],
//! summarised as [`LatencySummary`]) and CSV output ([`CsvWriter`]), so MASS and MASA report latencies the same
//! way and their result files share column conventions (units in names: `_us`, `_s`, `_per_s`, `_mb`).

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies in microseconds, 1 µs to 1 hour at 3 significant figures. Values above the range are clamped and
/// counted in `clamped`.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    clamped: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

const MAX_US: u64 = 3_600_000_000;

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds"),
            clamped: 0,
        }
    }

    /// Record one latency (µs); 0 is recorded as 1 µs, above an hour as an hour.
    pub fn record_us(&mut self, us: u64) {
        let v = us.clamp(1, MAX_US);
        if us > MAX_US {
            self.clamped += 1;
        }
        self.hist.record(v).expect("value within bounds");
    }

    /// Record from nanoseconds (`later - earlier`, 0 if negative).
    pub fn record_between_ns(&mut self, earlier_ns: u64, later_ns: u64) {
        self.record_us(later_ns.saturating_sub(earlier_ns) / 1_000);
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.hist.add(&other.hist).expect("same bounds");
        self.clamped += other.clamped;
    }

    /// Forget every value (keeps the allocation).
    pub fn reset(&mut self) {
        self.hist.reset();
        self.clamped = 0;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Percentiles (0 everywhere when empty).
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Percentiles of a latency distribution, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// This host's name, for result rows.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Errors writing or reading result files.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{action} {path}: {message}")]
    Csv {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// Writes serde records as CSV rows (header from the first record's field names), flushing after each row so a
/// crash loses at most the row being written.
pub struct CsvWriter {
    path: PathBuf,
    w: csv::Writer<std::fs::File>,
}

impl CsvWriter {
    /// Create (truncate) `path`, making parent directories.
    pub fn create(path: &Path) -> Result<Self, MetricsError> {
        let err = |e: &dyn std::fmt::Display| MetricsError::Csv {
            action: "creating",
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| err(&e))?;
        }
        let w = csv::Writer::from_path(path).map_err(|e| err(&e))?;
        Ok(CsvWriter {
            path: path.to_path_buf(),
            w,
        })
    }

    /// Append one record.
    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<(), MetricsError> {
        let err = |e: &dyn std::fmt::Display| MetricsError::Csv {
            action: "writing",
            path: self.path.clone(),
            message: e.to_string(),
        };
        self.w.serialize(row).map_err(|e| err(&e))?;
        self.w.flush().map_err(|e| err(&e))
    }
}

/// Interval reporting while a run's workers go on: every `interval_ns` from `start_ns` (on `clock`) until
/// `done()`, and once more at the end, build a row with `row(now_ns)`, append it to `csv` (a failed write is a
/// warning: the run goes on), show it to `progress`, and keep it.
pub fn report_intervals<R: Serialize>(
    clock: &dyn crate::clock::Clock,
    start_ns: u64,
    interval_ns: u64,
    done: impl Fn() -> bool,
    mut row: impl FnMut(u64) -> R,
    mut csv: Option<&mut CsvWriter>,
    progress: &mut dyn FnMut(&R),
) -> Vec<R> {
    let mut rows = Vec::new();
    let mut emit = |r: R, rows: &mut Vec<R>| {
        if let Some(w) = csv.as_mut() {
            if let Err(e) = w.write(&r) {
                eprintln!("warning: {e}");
            }
        }
        progress(&r);
        rows.push(r);
    };
    let mut next = start_ns + interval_ns.max(1);
    while !done() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = clock.now_ns();
        if now >= next {
            emit(row(now), &mut rows);
            next += interval_ns.max(1);
        }
    }
    emit(row(clock.now_ns()), &mut rows);
    rows
}

/// Read every record of a CSV file written by [`CsvWriter`].
pub fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, MetricsError> {
    let err = |e: &dyn std::fmt::Display| MetricsError::Csv {
        action: "reading",
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| err(&e))?;
    r.deserialize()
        .map(|row| row.map_err(|e| err(&e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::new();
        for v in 1..=1000 {
            h.record_us(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.5);
        let mut other = LatencyHistogram::new();
        other.record_between_ns(1_000, 5_000_000_000_000_000);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        name: String,
        latency_us_p99: u64,
        rate_msgs_per_s: f64,
        complete: bool,
    }

    #[test]
    fn csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/rows.csv");
        let rows = vec![
            Row {
                name: "a,b".into(),
                latency_us_p99: 7,
                rate_msgs_per_s: 1.5,
                complete: true,
            },
            Row {
                name: "c".into(),
                latency_us_p99: 0,
                rate_msgs_per_s: 0.0,
                complete: false,
            },
        ];
        let mut w = CsvWriter::create(&p).unwrap();
        for r in &rows {
            w.write(r).unwrap();
        }
        drop(w);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("name,latency_us_p99,rate_msgs_per_s,complete\n"),
            "{text}"
        );
        assert_eq!(read_csv::<Row>(&p).unwrap(), rows);
    }
}
