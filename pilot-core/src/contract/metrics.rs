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

/// One row of a percentile distribution (HdrHistogram's `.hgrm` text): the value at or below which
/// `percentile` of the recorded values lie, and how many values that is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PercentilePoint {
    /// In the unit the distribution was written in (`.hgrm` files here: milliseconds).
    pub value: f64,
    /// 0 to 1.
    pub percentile: f64,
    pub total_count: u64,
}

impl PercentilePoint {
    /// 1/(1-percentile): the x of a percentile-distribution plot (infinite at 100 %).
    pub fn inverse(&self) -> f64 {
        1.0 / (1.0 - self.percentile)
    }
}

impl LatencyHistogram {
    /// The histogram in HdrHistogram's V2 encoding (what every HdrHistogram implementation reads); values
    /// clamped at an hour are in it as an hour.
    pub fn to_v2_bytes(&self) -> Vec<u8> {
        use hdrhistogram::serialization::Serializer;
        let mut out = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&self.hist, &mut out)
            .expect("serialising to memory");
        out
    }

    /// Read a V2-encoded histogram (as [`LatencyHistogram::to_v2_bytes`] writes it).
    pub fn from_v2_bytes(bytes: &[u8]) -> Result<Self, String> {
        let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .map_err(|e| format!("not an HdrHistogram V2 encoding: {e:?}"))?;
        let mut out = LatencyHistogram::new();
        out.hist
            .add(&h)
            .map_err(|e| format!("histogram outside 1 us .. 1 h: {e:?}"))?;
        Ok(out)
    }

    /// The percentile distribution, `ticks_per_half` rows per halving of the distance to 100 % (HdrHistogram's
    /// `outputPercentileDistribution`), values in microseconds divided by `unit_us` (1000: milliseconds).
    pub fn percentile_distribution(
        &self,
        ticks_per_half: u32,
        unit_us: f64,
    ) -> Vec<PercentilePoint> {
        if self.hist.is_empty() {
            return vec![];
        }
        let mut out: Vec<PercentilePoint> = self
            .hist
            .iter_quantiles(ticks_per_half)
            .map(|v| PercentilePoint {
                value: self.hist.highest_equivalent(v.value_iterated_to()) as f64 / unit_us,
                percentile: v.quantile_iterated_to(),
                total_count: 0,
            })
            .collect();
        // Counts at or below each value, as the .hgrm format has them.
        for p in &mut out {
            p.total_count = self.hist.count_between(0, (p.value * unit_us) as u64);
        }
        out
    }

    /// HdrHistogram's percentile-distribution text (`.hgrm`), values in milliseconds: what its plotter
    /// (HdrHistogram's `plotFiles.html`) and this project's `plots` read.
    pub fn hgrm_ms(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        );
        for p in self.percentile_distribution(5, 1000.0) {
            if p.percentile < 1.0 {
                let _ = writeln!(
                    s,
                    "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                    p.value,
                    p.percentile,
                    p.total_count,
                    p.inverse()
                );
            } else {
                let _ = writeln!(
                    s,
                    "{:>12.3} {:>2.12} {:>10}",
                    p.value, p.percentile, p.total_count
                );
            }
        }
        let h = &self.hist;
        let _ = writeln!(
            s,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            h.mean() / 1000.0,
            h.stdev() / 1000.0
        );
        let _ = writeln!(
            s,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            h.max() as f64 / 1000.0,
            h.len()
        );
        let _ = writeln!(
            s,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            h.buckets(),
            h.distinct_values()
        );
        s
    }
}

/// Rows of an `.hgrm` percentile-distribution text (any HdrHistogram implementation's), in the file's unit;
/// errors name the line.
pub fn parse_hgrm(text: &str) -> Result<Vec<PercentilePoint>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
            continue;
        }
        let cols: Vec<&str> = t.split_whitespace().collect();
        let bad = || {
            format!(
                "line {}: expected `value percentile total-count [1/(1-p)]`, got `{t}`",
                i + 1
            )
        };
        if cols.len() < 3 {
            return Err(bad());
        }
        let value: f64 = cols[0].parse().map_err(|_| bad())?;
        let percentile: f64 = cols[1].parse().map_err(|_| bad())?;
        let total_count: u64 = cols[2].parse().map_err(|_| bad())?;
        if !(value.is_finite() && value >= 0.0 && (0.0..=1.0).contains(&percentile)) {
            return Err(bad());
        }
        out.push(PercentilePoint {
            value,
            percentile,
            total_count,
        });
    }
    if out.is_empty() {
        return Err("no percentile rows".into());
    }
    Ok(out)
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
    clock: &dyn crate::contract::clock::Clock,
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
            // A reporter that was held up (a loaded machine) skips the ticks it missed rather than catching
            // up with rows a few milliseconds long: the late row covers the whole gap.
            while next <= now {
                next += interval_ns.max(1);
            }
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
    #[test]
    fn a_late_reporter_skips_the_ticks_it_missed() {
        use crate::contract::clock::{Clock, ManualClock};
        let clock = ManualClock::new(0);
        let s = 1_000_000_000u64;
        // Each poll of `done` moves the clock: 1 s, then a 3.5 s stall, then 1 s steps, ending at 7.5 s.
        let steps = std::sync::Mutex::new(vec![s, s, s, s, 7 * s / 2, s].into_iter());
        let rows = super::report_intervals(
            &clock,
            0,
            s,
            || match steps.lock().unwrap().next() {
                Some(by) => {
                    clock.advance(by);
                    false
                }
                None => true,
            },
            |now| now,
            None,
            &mut |_| {},
        );
        // Rows at 1, 2, 3, 4, 7.5 (the late one covers the gap, no catch-up rows), 8.5 and the final one.
        assert_eq!(
            rows,
            vec![s, 2 * s, 3 * s, 4 * s, 15 * s / 2, 17 * s / 2, 17 * s / 2]
        );
        assert_eq!(clock.now_ns(), 17 * s / 2);
    }

    #[test]
    fn histograms_travel_as_v2_and_print_as_hgrm() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record_us(us * 10);
        }
        let back = LatencyHistogram::from_v2_bytes(&h.to_v2_bytes()).unwrap();
        assert_eq!(back.summary(), h.summary());
        assert!(LatencyHistogram::from_v2_bytes(b"nonsense").is_err());
        let rows = parse_hgrm(&h.hgrm_ms()).unwrap();
        assert!(rows
            .windows(2)
            .all(|w| w[0].percentile <= w[1].percentile && w[0].value <= w[1].value));
        let last = rows.last().unwrap();
        assert_eq!((last.percentile, last.total_count), (1.0, 10_000));
        assert!((last.value - 100.0).abs() < 0.2, "{last:?}");
        let p50 = rows.iter().find(|r| r.percentile >= 0.5).unwrap();
        assert!((p50.value - 50.0).abs() < 0.2, "{p50:?}");
        assert!(parse_hgrm("Value Percentile\n 1.0 1.5 3\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_hgrm("").is_err());
    }

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
