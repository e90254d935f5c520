//! A pipeline run's records into metrics: the timeline, the producers' summaries ([`Produced`]), what the broker
//! held, the consumers' merged accounting (killed producers' messages counted from the broker,
//! [`accounted`]), the group's latency ([`GroupReceipt`]), why the run is incomplete and what its faults
//! explain ([`verdict`]), and the elastic metrics of runs that scale or follow a rate profile.

use std::collections::BTreeMap;
use std::path::Path;

use pilot_core::contract::metrics::{read_csv, LatencyHistogram};
use pilot_core::ops::autoscale::DecisionRow;
use pilot_core::ops::fault::Role;

use super::faults::FaultOutcome;
use super::timeline::{write_run_timeline, Reports, RunTimeline};
use super::{RunError, RunOutcome};
use crate::results::RunProvenance;
use crate::spec::{Point, Scaling};
use masa::accounting::Totals;

/// Read the run's MASS and MASA records into metrics.
pub(crate) fn collect(
    point: &Point,
    run_dir: &Path,
    partitions: u32,
    consumer_ids: &[String],
    decisions: &[DecisionRow],
    reports: &Reports,
    faults: &FaultOutcome,
) -> Result<RunOutcome, RunError> {
    let timeline = write_run_timeline(
        point,
        run_dir,
        consumer_ids,
        decisions,
        reports,
        &faults.events,
    )?;
    let produced = Produced::read(point, run_dir, faults)?;
    let broker_msgs = broker_msgs(reports, partitions);
    let acc = accounted(run_dir, &produced, broker_msgs)?;
    let group = GroupReceipt::read(run_dir, consumer_ids, faults)?;
    let e2e = group.e2e_ms(run_dir)?;
    let (mut reasons, fault_notes) = verdict(point, &produced, &acc, faults);
    reasons.extend(group.left_early(&produced));
    let mut metrics = vec![("consumer_processes_started", consumer_ids.len() as f64)];
    let autoscaled = point.layout.scaling == Scaling::Autoscaled;
    if autoscaled || point.mass.contains_key("rate_profile") {
        metrics.extend(elastic_metrics(point, partitions, decisions, &timeline));
    }
    let killed_delivered = if produced.killed.is_empty() {
        0.0
    } else {
        acc.killed_delivered.map(|d| d as f64).unwrap_or(f64::NAN)
    };
    metrics.extend([
        ("producer_processes", point.producer_processes() as f64),
        ("consumer_processes", point.consumer_processes() as f64),
        ("partitions", partitions as f64),
        ("produced_msgs", acc.produced as f64),
        ("produce_failed_msgs", produced.failed as f64),
        ("produced_mb", produced.mb),
        ("producer_throughput_msgs_per_s", produced.msgs_per_s),
        ("producer_throughput_mb_per_s", produced.mb_per_s),
        ("received_msgs", acc.totals.received as f64),
        ("missing_msgs", acc.totals.missing as f64),
        ("duplicate_msgs", acc.totals.duplicates as f64),
        ("rejected_msgs", acc.totals.rejected as f64),
        (
            "broker_msgs",
            broker_msgs.map(|b| b as f64).unwrap_or(f64::NAN),
        ),
        ("killed_producers_delivered_msgs", killed_delivered),
        ("killed_producers_received_msgs", acc.killed_received as f64),
        (
            "faults_applied",
            faults
                .events
                .iter()
                .filter(|e| e.outcome == "applied")
                .count() as f64,
        ),
    ]);
    metrics.extend(group.metrics(e2e));
    let mut fault_text = faults.text();
    for n in fault_notes {
        if !fault_text.is_empty() {
            fault_text.push_str("; ");
        }
        fault_text.push_str(&n);
    }
    Ok(RunOutcome {
        metrics,
        incomplete_reason: reasons.join("; "),
        faults: fault_text,
        provenance: RunProvenance::default(),
    })
}

/// What the producers' summaries say, together; producers a fault killed left none.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Produced {
    /// Delivered by the producers that left a summary.
    pub delivered: u64,
    /// Failed, and without a delivery report.
    pub failed_msgs: u64,
    pub unknown_msgs: u64,
    pub failed: u64,
    pub mb: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// The MASS processes a fault killed.
    pub killed: Vec<u32>,
    /// When the last producer with a summary ended, seconds since the epoch.
    pub ended_s: Option<f64>,
}

impl Produced {
    fn read(point: &Point, run_dir: &Path, faults: &FaultOutcome) -> Result<Self, RunError> {
        let mut p = Produced::default();
        for i in 0..point.producer_processes() {
            let path = mass::producer::summary_path(&run_dir.join(format!("producer-{i}")));
            let rows: Vec<mass::report::ProducerSummary> = match read_csv(&path) {
                Ok(rows) if !rows.is_empty() => rows,
                _ if faults.hit(Role::Producer, i as usize) => {
                    p.killed.push(i);
                    continue;
                }
                Ok(_) => return Err(RunError::records(&path, "empty")),
                Err(e) => return Err(RunError::records(&path, e)),
            };
            let r = rows.last().expect("not empty");
            if let Some(end) = super::timeline::epoch_s(&r.end_utc) {
                p.ended_s = Some(p.ended_s.map_or(end, |e: f64| e.max(end)));
            }
            p.add(r);
        }
        Ok(p)
    }

    fn add(&mut self, r: &mass::report::ProducerSummary) {
        self.delivered += r.delivered_msgs;
        self.failed_msgs += r.failed_msgs;
        self.unknown_msgs += r.unknown_msgs;
        self.failed += r.failed_msgs + r.unknown_msgs;
        self.mb += r.delivered_mb;
        self.msgs_per_s += r.throughput_msgs_per_s;
        self.mb_per_s += r.throughput_mb_per_s;
    }
}

/// What the broker held at the end: per partition the highest high watermark any consumer's fetches saw (the
/// consumers read until idle, so their last reports carry the end offsets of a fresh topic). None unless every
/// partition was seen.
pub(crate) fn broker_msgs(reports: &Reports, partitions: u32) -> Option<u64> {
    let mut high: BTreeMap<i32, i64> = BTreeMap::new();
    for r in reports.reports.iter().filter(|r| r.group == reports.group) {
        for p in &r.partitions {
            let h = high.entry(p.partition).or_insert(-1);
            *h = (*h).max(p.high_watermark);
        }
    }
    (high.len() == partitions as usize && high.values().all(|&h| h >= 0))
        .then(|| high.values().map(|&h| h as u64).sum::<u64>())
}

/// The group's accounting against what was produced.
#[derive(Debug, PartialEq)]
pub(crate) struct Accounted {
    pub totals: Totals,
    /// Produced: delivered by the producers with a summary, plus what killed producers delivered (the broker's
    /// count beyond the others, or what the consumers received of theirs).
    pub produced: u64,
    pub killed_received: u64,
    pub killed_delivered: Option<u64>,
}

/// The consumers' merged accounting (final files, or a killed consumer's checkpoints) against what was
/// produced. A killed producer's messages have no expected count: they are received, and missing only where the
/// broker holds more of them than arrived.
pub(crate) fn accounted(
    run_dir: &Path,
    produced: &Produced,
    broker_msgs: Option<u64>,
) -> Result<Accounted, RunError> {
    let (mut acc, _) = masa::consumer::merge_accounting(&[run_dir.to_path_buf()])
        .map_err(|e| RunError::records(run_dir, e))?;
    // MASS process i's threads are producer ids i*1000 + t (`--producer-id-base {process_index}000`).
    let of_killed = |producer: &u32| produced.killed.contains(&(producer / 1000));
    let killed_received: u64 = acc
        .received
        .iter()
        .filter(|(p, _)| of_killed(p))
        .map(|(_, r)| r.count())
        .sum();
    acc.received.retain(|p, _| !of_killed(p));
    let mut totals = acc.totals(Some(produced.delivered));
    totals.received += killed_received;
    let killed_delivered = broker_msgs.map(|b| b.saturating_sub(produced.delivered));
    let mut all = produced.delivered;
    if !produced.killed.is_empty() {
        if let Some(d) = killed_delivered {
            totals.missing += d.saturating_sub(killed_received);
        }
        all += killed_delivered.unwrap_or(killed_received);
    }
    Ok(Accounted {
        totals,
        produced: all,
        killed_received,
        killed_delivered,
    })
}

/// Why the run is incomplete, and what its faults explain (notes in its `faults` column).
pub(crate) fn verdict(
    point: &Point,
    produced: &Produced,
    acc: &Accounted,
    faults: &FaultOutcome,
) -> (Vec<String>, Vec<String>) {
    let (mut reasons, mut fault_notes) = (Vec::new(), Vec::new());
    let broker_down = faults.broker_down();
    let killed = &produced.killed;
    if broker_down {
        reasons.push(format!(
            "the broker was taken down by a fault: {} messages delivered before it went ({} failed, {} unknown: no delivery report){}; tansu keeps messages in memory only, so the rest is lost and the run is incomplete",
            produced.delivered,
            produced.failed_msgs,
            produced.unknown_msgs,
            if killed.is_empty() { String::new() } else { format!(", plus what killed producers {killed:?} delivered (unknown)") }
        ));
    } else if produced.failed > 0 {
        reasons.push(format!(
            "{} messages not delivered by MASS",
            produced.failed
        ));
    }
    if !killed.is_empty() {
        match acc.killed_delivered {
            Some(d) => fault_notes.push(format!(
                "killed producers {killed:?}: the broker holds {d} of their messages, the consumers received {}",
                acc.killed_received
            )),
            None if !broker_down => reasons.push(format!(
                "what killed producers {killed:?} delivered is unknown (no consumer saw every partition's end offset)"
            )),
            None => {}
        }
    }
    let t = &acc.totals;
    if t.missing > 0 && !broker_down {
        reasons.push(format!("{} messages missing at MASA", t.missing));
    }
    if t.rejected > 0 {
        reasons.push(format!("{} messages rejected", t.rejected));
    }
    // Consumers that join or leave a group move partitions: a message handled but not yet committed when its
    // partition moved is delivered again. Expected (and counted) when the controller scales; a fault otherwise.
    let consumers_hit: Vec<String> = faults
        .hit
        .iter()
        .filter(|t| t.role == Role::Consumer)
        .map(|t| t.to_string())
        .collect();
    let broker_hit = faults
        .events
        .iter()
        .any(|e| e.outcome == "applied" && e.target.starts_with("broker"));
    if t.duplicates > 0 && !consumers_hit.is_empty() {
        fault_notes.push(format!(
            "{} duplicates: messages the lost consumers {} handled after their last commit, delivered again to the partitions' next owners at the rebalance",
            t.duplicates,
            consumers_hit.join(", ")
        ));
    } else if t.duplicates > 0 && broker_hit {
        fault_notes.push(format!(
            "{} duplicates: messages handled while the broker was down whose commits it never took (the consumers' sessions ran out and the group rebalanced), delivered again after it",
            t.duplicates
        ));
    } else if t.duplicates > 0 && point.layout.scaling != Scaling::Autoscaled {
        reasons.push(format!("{} duplicates", t.duplicates));
    }
    (reasons, fault_notes)
}

/// The consumers' side: counts add up across processes; the group's rates are everything received over the
/// longest receive window (the consumers start together, once the group has formed; summing each one's own rate
/// would overstate short runs); p50s are weighted by messages, the higher percentiles are the worst.
#[derive(Default)]
pub(crate) struct GroupReceipt {
    received: f64,
    mb: f64,
    items: u64,
    window_s: f64,
    p50_weighted: f64,
    p90: f64,
    p99: f64,
    max: f64,
    processed_p50_weighted: f64,
    processed_p99: f64,
    processing_weighted: f64,
    /// Consumers that gave up waiting (idle or start timeout): id, why, and when they left (epoch seconds).
    gave_up: Vec<(String, String, f64)>,
    /// Every consumer's latency histogram merged (a percentile of the whole group, not the worst consumer's);
    /// None when a consumer left none (killed, or an older MASA).
    merged: Option<LatencyHistogram>,
}

impl GroupReceipt {
    fn read(
        run_dir: &Path,
        consumer_ids: &[String],
        faults: &FaultOutcome,
    ) -> Result<Self, RunError> {
        let mut g = GroupReceipt {
            merged: Some(LatencyHistogram::new()),
            ..Default::default()
        };
        for (i, id) in consumer_ids.iter().enumerate() {
            let path = masa::consumer::summary_path(run_dir, id);
            let rows: Vec<masa::report::ConsumerSummary> = match read_csv(&path) {
                Ok(rows) if !rows.is_empty() => rows,
                // Killed by a fault: no summary; its messages are in its checkpoints, its latencies are lost.
                _ if faults.hit(Role::Consumer, i) => continue,
                Ok(_) => return Err(RunError::records(&path, "empty")),
                Err(e) => return Err(RunError::records(&path, e)),
            };
            g.merged = g.merged.take().and_then(|mut m| {
                let bytes =
                    std::fs::read(masa::consumer::latency_histogram_path(run_dir, id)).ok()?;
                m.merge(&LatencyHistogram::from_v2_bytes(&bytes).ok()?);
                Some(m)
            });
            let r = rows.last().expect("not empty");
            if matches!(r.stop_reason.as_str(), "idle-timeout" | "start-timeout") {
                let end = super::timeline::epoch_s(&r.end_utc).unwrap_or(f64::INFINITY);
                g.gave_up.push((id.clone(), r.stop_reason.clone(), end));
            }
            g.add(r);
        }
        Ok(g)
    }

    /// Consumers that left the group while the producers were still sending: a fault of the run, never ok
    /// (their partitions went to the others, who then carried the stream with fewer hands).
    fn left_early(&self, produced: &Produced) -> Vec<String> {
        let Some(producers_end) = produced.ended_s else {
            return Vec::new();
        };
        self.gave_up
            .iter()
            .filter(|(_, _, end)| *end < producers_end)
            .map(|(id, why, end)| {
                format!(
                    "consumer {id} left the live group ({why}) {:.1} s before the producers finished",
                    producers_end - end
                )
            })
            .collect()
    }

    fn add(&mut self, r: &masa::report::ConsumerSummary) {
        let w = r.received_msgs as f64;
        let ms = |us: u64| us as f64 / 1e3;
        self.received += w;
        self.mb += r.received_mb;
        self.items += r.processed_items;
        self.window_s = self.window_s.max(r.receive_window_s);
        self.p50_weighted += w * ms(r.e2e_latency_us_p50);
        self.p90 = self.p90.max(ms(r.e2e_latency_us_p90));
        self.p99 = self.p99.max(ms(r.e2e_latency_us_p99));
        self.max = self.max.max(ms(r.e2e_latency_us_max));
        self.processed_p50_weighted += w * ms(r.processed_latency_us_p50);
        self.processed_p99 = self.processed_p99.max(ms(r.processed_latency_us_p99));
        self.processing_weighted += w * ms(r.processing_us_p50);
    }

    /// A message-weighted mean of a summed `x` (NaN without messages).
    fn wmean(&self, x: f64) -> f64 {
        if self.received > 0.0 {
            x / self.received
        } else {
            f64::NAN
        }
    }

    /// Per second of the group's receive window (NaN without one).
    fn rate(&self, x: f64) -> f64 {
        if self.window_s > 0.0 {
            x / self.window_s
        } else {
            f64::NAN
        }
    }

    /// End-to-end latency p50, p90, p99 and max (ms): of the merged distribution (written to the run's
    /// directory) where every consumer left its histogram; else the message-weighted p50 and the worst
    /// consumer's higher percentiles.
    fn e2e_ms(&self, run_dir: &Path) -> Result<(f64, f64, f64, f64), RunError> {
        match self.merged.as_ref().filter(|m| m.count() > 0) {
            Some(m) => {
                let path = run_dir.join(crate::results::E2E_LATENCY_HGRM);
                pilot_core::contract::files::write_atomic(&path, m.hgrm_ms().as_bytes())
                    .map_err(|e| RunError::io(&path, e))?;
                let s = m.summary();
                let ms = |us: u64| us as f64 / 1e3;
                Ok((ms(s.p50_us), ms(s.p90_us), ms(s.p99_us), ms(s.max_us)))
            }
            None => Ok((self.wmean(self.p50_weighted), self.p90, self.p99, self.max)),
        }
    }

    fn metrics(&self, e2e: (f64, f64, f64, f64)) -> Vec<(&'static str, f64)> {
        vec![
            ("processed_items", self.items as f64),
            ("consumer_throughput_msgs_per_s", self.rate(self.received)),
            ("consumer_throughput_mb_per_s", self.rate(self.mb)),
            (
                "consumer_throughput_items_per_s",
                self.rate(self.items as f64),
            ),
            ("e2e_latency_ms_p50", e2e.0),
            ("e2e_latency_ms_p90", e2e.1),
            ("e2e_latency_ms_p99", e2e.2),
            ("e2e_latency_ms_max", e2e.3),
            (
                "processed_latency_ms_p50",
                self.wmean(self.processed_p50_weighted),
            ),
            ("processed_latency_ms_p99", self.processed_p99),
            ("processing_ms_p50", self.wmean(self.processing_weighted)),
        ]
    }
}

/// The elastic metrics of a run that scales or follows a rate profile: the consumers' true rate, and what
/// [`crate::elastic::metrics`] makes of the timeline and the scaling changes.
fn elastic_metrics(
    point: &Point,
    partitions: u32,
    decisions: &[DecisionRow],
    timeline: &RunTimeline,
) -> Vec<(&'static str, f64)> {
    let autoscaled = point.layout.scaling == Scaling::Autoscaled;
    let changes: Vec<crate::elastic::ScaleChange> = decisions
        .iter()
        .filter(|d| d.consumers_after != d.consumers_before)
        .map(|d| crate::elastic::ScaleChange {
            t_s: d.time_unix_ms as f64 / 1e3 - timeline.t0_s,
            before: d.consumers_before,
            after: d.consumers_after,
        })
        .collect();
    let (handled, busy) = timeline
        .consumers
        .iter()
        .fold((0u64, 0.0), |(h, b), c| (h + c.handled_msgs, b + c.busy_s));
    let rate_each = if busy > 0.0 {
        handled as f64 / busy
    } else {
        f64::NAN
    };
    let consumer_seconds = timeline
        .consumers
        .iter()
        .map(|c| (c.end_s - c.start_s).max(0.0))
        .sum();
    let mut out = vec![("consumer_true_rate_msgs_per_s", rate_each)];
    out.extend(crate::elastic::metrics(
        &timeline.rows,
        &changes,
        autoscaled,
        point.consumer_processes(),
        &point.autoscale.policy(partitions),
        rate_each,
        consumer_seconds,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::telemetry::{ConsumerReport, PartitionOffsets};

    fn report(group: &str, highs: &[(i32, i64)]) -> ConsumerReport {
        ConsumerReport {
            group: group.into(),
            partitions: highs
                .iter()
                .map(|&(partition, high_watermark)| PartitionOffsets {
                    partition,
                    high_watermark,
                    position: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_broker_count_needs_every_partitions_end_offset() {
        let r = [
            report("g", &[(0, 10), (1, 4)]),
            report("g", &[(0, 12), (2, 7)]),
            report("other", &[(3, 100)]),
        ];
        let reports = Reports {
            group: "g",
            reports: &r,
        };
        assert_eq!(broker_msgs(&reports, 3), Some(23));
        assert_eq!(
            broker_msgs(&reports, 4),
            None,
            "partition 3 of g never seen"
        );
        let unknown = [report("g", &[(0, -1)])];
        let reports = Reports {
            group: "g",
            reports: &unknown,
        };
        assert_eq!(broker_msgs(&reports, 1), None);
    }

    #[test]
    fn killed_producers_messages_are_counted_from_the_broker() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = masa::accounting::Accounting::default();
        for s in 0..10 {
            a.record(0, s); // producer process 0, alive: 10 delivered
        }
        for s in 0..4 {
            a.record(1000, s); // producer process 1, killed: 4 of its messages arrived
        }
        std::fs::write(
            masa::consumer::accounting_path(dir.path(), "c0"),
            serde_json::to_string(&a).unwrap(),
        )
        .unwrap();
        let produced = Produced {
            delivered: 10,
            killed: vec![1],
            ..Default::default()
        };
        // The broker holds 16: 6 of the killed producer's, 2 of which never arrived.
        let acc = accounted(dir.path(), &produced, Some(16)).unwrap();
        assert_eq!(acc.produced, 16);
        assert_eq!((acc.killed_received, acc.killed_delivered), (4, Some(6)));
        assert_eq!((acc.totals.received, acc.totals.missing), (14, 2));
        // Without the broker's count, what arrived is what they delivered.
        let acc = accounted(dir.path(), &produced, None).unwrap();
        assert_eq!((acc.produced, acc.totals.missing), (14, 0));
    }
}
