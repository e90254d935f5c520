//! A run's timeline, per second from the first process's start: what the producers delivered and were asked to
//! (their interval rows), what the consumers received and when each lived (their summaries, or a killed one's
//! reports), the lag (replayed from the reports), and the scaling decisions and faults as events.

use std::collections::BTreeMap;
use std::path::Path;

use pilot_core::contract::metrics::read_csv;
use pilot_core::contract::telemetry::ConsumerReport;
use pilot_core::ops::autoscale::DecisionRow;
use pilot_core::ops::fault::FaultEvent;

use super::RunError;
use crate::results::{bucket_per_second, TimelineRow};
use crate::spec::Point;

/// A sample: (absolute start of its process, seconds since then at the interval's end, the interval's length
/// when the amount is a schedule's share to spread over it (0 for a count), messages).
type Sample = (f64, f64, f64, f64);

/// Seconds since the epoch of an RFC 3339 time.
pub(crate) fn epoch_s(utc: &str) -> Option<f64> {
    humantime::parse_rfc3339(utc)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The consumers' reports read from the run's metrics topic, and their group.
pub(crate) struct Reports<'a> {
    pub group: &'a str,
    pub reports: &'a [ConsumerReport],
}

/// A consumer process's life, from its summary.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConsumerLife {
    pub start_s: f64,
    pub end_s: f64,
    pub busy_s: f64,
    pub handled_msgs: u64,
}

/// What the timeline and the elastic figures are built from.
pub(crate) struct RunTimeline {
    pub rows: Vec<TimelineRow>,
    /// Its origin, seconds since the epoch.
    pub t0_s: f64,
    pub consumers: Vec<ConsumerLife>,
}

/// The run's timeline (per second, all producers and all consumers), written to the run's directory.
pub(crate) fn write_run_timeline(
    point: &Point,
    run_dir: &Path,
    consumer_ids: &[String],
    decisions: &[DecisionRow],
    reports: &Reports,
    fault_events: &[FaultEvent],
) -> Result<RunTimeline, RunError> {
    let (mut produced, mut target) = producer_samples(point, run_dir);
    let (mut consumed, lives) = consumer_samples(run_dir, consumer_ids, reports);
    // One origin for all: the earliest process start; a zero sample at it aligns the bucketings.
    let t0 = produced
        .iter()
        .chain(&consumed)
        .map(|s| s.0)
        .reduce(f64::min)
        .unwrap_or(0.0);
    for v in [&mut produced, &mut consumed, &mut target] {
        v.push((t0, 0.0, 0.0, 0.0));
    }
    let series = Series {
        produced: bucket_per_second(&produced),
        consumed: bucket_per_second(&consumed),
        target: bucket_per_second(&target),
    };
    let n = series.produced.len().max(series.consumed.len());
    // Lag from the reports where there are any; else produced minus received so far (which a message
    // received twice, by two consumers across a rebalance, understates).
    let replayed = (!reports.reports.is_empty()).then(|| {
        pilot_core::contract::telemetry::lag_per_second(
            reports.reports,
            reports.group,
            point.autoscale.report_timeout_s,
            t0,
            n,
        )
    });
    let events = events(decisions, fault_events, t0);
    let rows = rows(&series, replayed.as_deref(), &lives, events, t0);
    crate::results::write_timeline(run_dir, &rows)?;
    Ok(RunTimeline {
        rows,
        t0_s: t0,
        consumers: lives,
    })
}

/// Pieces a rate profile's target is cut into (seconds): a row that spans a step of the profile (a reporter late
/// on a loaded machine) then puts each side of the step in its own seconds instead of smearing both over the row.
const TARGET_PIECE_S: f64 = 0.1;

/// What a producer's schedule asked for over each interval row (`(t_s, interval_s, target_msgs_per_s)`, seconds
/// since its `start`): with its rate `profile`, the profile's own average over pieces of each row; else the
/// row's target spread over the row.
fn target_samples(
    start: f64,
    rows: &[(f64, f64, f64)],
    profile: Option<&mass::profile::Profile>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    for &(t_s, interval_s, target) in rows {
        match profile {
            Some(p) if interval_s > 0.0 => {
                let pieces = (interval_s / TARGET_PIECE_S).ceil().max(1.0) as usize;
                let d = interval_s / pieces as f64;
                for k in 0..pieces {
                    let a = t_s - interval_s + k as f64 * d;
                    let n = p.average(a, a + d) * d;
                    out.push((start, a + d, d, if n.is_finite() { n } else { 0.0 }));
                }
            }
            _ => {
                let n = target * interval_s;
                out.push((start, t_s, interval_s, if n.is_finite() { n } else { 0.0 }));
            }
        }
    }
    out
}

/// What every producer delivered, and what its schedule asked for, per interval row.
fn producer_samples(point: &Point, run_dir: &Path) -> (Vec<Sample>, Vec<Sample>) {
    let (mut produced, mut target) = (Vec::new(), Vec::new());
    let profile = point
        .mass
        .get("rate_profile")
        .and_then(toml::Value::as_str)
        .and_then(|p| mass::profile::Profile::parse(p, None).ok());
    for i in 0..point.producer_processes() {
        let dir = run_dir.join(format!("producer-{i}"));
        let start = read_csv::<mass::report::ProducerSummary>(&mass::producer::summary_path(&dir))
            .ok()
            .and_then(|r| r.last().and_then(|s| epoch_s(&s.start_utc)));
        let rows: Vec<mass::report::IntervalRow> =
            read_csv(&mass::producer::intervals_path(&dir)).unwrap_or_default();
        if let Some(start) = start {
            produced.extend(
                rows.iter()
                    .map(|r| (start, r.t_s, 0.0, r.delivered_msgs as f64)),
            );
            let asked: Vec<(f64, f64, f64)> = rows
                .iter()
                .map(|r| (r.t_s, r.interval_s, r.target_msgs_per_s))
                .collect();
            target.extend(target_samples(start, &asked, profile.as_ref()));
        }
    }
    (produced, target)
}

/// What every consumer received, and its life: from its summary and interval rows, or for a killed consumer
/// (no summary) from its reports on the metrics topic.
fn consumer_samples(
    run_dir: &Path,
    consumer_ids: &[String],
    reports: &Reports,
) -> (Vec<Sample>, Vec<ConsumerLife>) {
    let (mut consumed, mut lives) = (Vec::new(), Vec::new());
    for id in consumer_ids {
        let summary =
            read_csv::<masa::report::ConsumerSummary>(&masa::consumer::summary_path(run_dir, id))
                .ok()
                .and_then(|r| r.last().cloned());
        let Some(s) = summary else {
            let mine: Vec<&ConsumerReport> = reports
                .reports
                .iter()
                .filter(|r| &r.consumer_id == id && r.group == reports.group)
                .collect();
            if let Some(life) = life_from_reports(&mine, &mut consumed) {
                lives.push(life);
            }
            continue;
        };
        let rows: Vec<masa::report::ConsumerInterval> =
            read_csv(&masa::consumer::intervals_path(run_dir, id)).unwrap_or_default();
        if let Some(start) = epoch_s(&s.start_utc) {
            consumed.extend(
                rows.iter()
                    .map(|r| (start, r.t_s, 0.0, r.received_msgs as f64)),
            );
            lives.push(ConsumerLife {
                start_s: start,
                end_s: epoch_s(&s.end_utc).unwrap_or(start + s.elapsed_s),
                busy_s: s.busy_s,
                handled_msgs: s.handled_msgs,
            });
        }
    }
    (consumed, lives)
}

/// A killed consumer's life and what it received, from its reports (oldest first); None without any.
fn life_from_reports(mine: &[&ConsumerReport], consumed: &mut Vec<Sample>) -> Option<ConsumerLife> {
    let (first, last) = (mine.first()?, mine.last()?);
    let mut before = 0u64;
    for r in mine {
        let t = r.time_unix_ms as f64 / 1e3;
        consumed.push((
            t,
            0.0,
            0.0,
            r.received_msgs_total.saturating_sub(before) as f64,
        ));
        before = before.max(r.received_msgs_total);
    }
    Some(ConsumerLife {
        start_s: first.time_unix_ms as f64 / 1e3 - first.interval_s,
        end_s: last.time_unix_ms as f64 / 1e3,
        busy_s: mine.iter().map(|r| r.busy_s).sum(),
        handled_msgs: mine.iter().map(|r| r.handled_msgs).sum(),
    })
}

/// Scaling decisions that changed the group and faults, by the second (since `t0`) they happened in.
fn events(
    decisions: &[DecisionRow],
    fault_events: &[FaultEvent],
    t0: f64,
) -> BTreeMap<usize, Vec<String>> {
    let mut events: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let second = |unix_ms: u64| (unix_ms as f64 / 1e3 - t0).max(0.0).floor() as usize;
    for d in decisions
        .iter()
        .filter(|d| d.consumers_after != d.consumers_before)
    {
        let way = if d.consumers_after > d.consumers_before {
            "up"
        } else {
            "down"
        };
        events
            .entry(second(d.time_unix_ms))
            .or_default()
            .push(format!(
                "{way} {}->{}: {}",
                d.consumers_before, d.consumers_after, d.reason
            ));
    }
    for e in fault_events {
        events
            .entry(second(e.time_unix_ms))
            .or_default()
            .push(format!("fault: {}", e.summary()));
    }
    events
}

/// The per-second sums the rows are made of: (second's start, messages).
struct Series {
    produced: Vec<(f64, f64)>,
    consumed: Vec<(f64, f64)>,
    target: Vec<(f64, f64)>,
}

/// The timeline's rows: rates, lag (replayed, or produced minus consumed so far), consumers alive at the
/// middle of each second, and its events.
fn rows(
    s: &Series,
    replayed: Option<&[i64]>,
    lives: &[ConsumerLife],
    mut events: BTreeMap<usize, Vec<String>>,
    t0: f64,
) -> Vec<TimelineRow> {
    let n = s.produced.len().max(s.consumed.len());
    let at = |v: &[(f64, f64)], k: usize| v.get(k).map(|x| x.1).unwrap_or(0.0);
    let (mut cum_p, mut cum_c) = (0.0, 0.0);
    (0..n)
        .map(|k| {
            let (produced, consumed) = (at(&s.produced, k), at(&s.consumed, k));
            cum_p += produced;
            cum_c += consumed;
            let mid = t0 + k as f64 + 0.5;
            TimelineRow {
                t_s: (k + 1) as f64,
                produced_msgs_per_s: produced,
                consumed_msgs_per_s: consumed,
                target_msgs_per_s: at(&s.target, k),
                lag_msgs: match replayed {
                    Some(lag) => lag[k] as f64,
                    None => (cum_p - cum_c).max(0.0),
                },
                consumers: lives
                    .iter()
                    .filter(|l| l.start_s <= mid && mid < l.end_s)
                    .count() as u32,
                events: events.remove(&k).unwrap_or_default().join("; "),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(consumer: &str, t_ms: u64, total: u64, handled: u64) -> ConsumerReport {
        ConsumerReport {
            consumer_id: consumer.into(),
            group: "g".into(),
            time_unix_ms: t_ms,
            interval_s: 0.5,
            received_msgs_total: total,
            handled_msgs: handled,
            busy_s: 0.1,
            ..Default::default()
        }
    }

    #[test]
    fn a_killed_consumers_life_and_messages_come_from_its_reports() {
        let r = [report("c1", 10_000, 5, 5), report("c1", 10_500, 12, 7)];
        let mine: Vec<&ConsumerReport> = r.iter().collect();
        let mut consumed = Vec::new();
        let life = life_from_reports(&mine, &mut consumed).unwrap();
        assert_eq!(consumed, vec![(10.0, 0.0, 0.0, 5.0), (10.5, 0.0, 0.0, 7.0)]);
        assert_eq!(
            (life.start_s, life.end_s, life.handled_msgs),
            (9.5, 10.5, 12)
        );
        assert!((life.busy_s - 0.2).abs() < 1e-12);
        assert!(life_from_reports(&[], &mut consumed).is_none());
    }

    #[test]
    fn a_late_row_across_a_profile_step_keeps_the_step_sharp() {
        // 40 msg/s for 8 s, then 160; the reporter stalled, so one row covers 5.5 s to 10.5 s.
        let p = mass::profile::Profile::parse("steps:40@8,160@14,40@12", None).unwrap();
        let rows = [(5.5, 5.5, 40.0), (10.5, 5.0, 100.0), (34.0, 23.5, 110.0)];
        let mut samples = target_samples(1000.0, &rows, Some(&p));
        samples.push((1000.0, 0.0, 0.0, 0.0));
        let per_s: Vec<f64> = crate::results::bucket_per_second(&samples)
            .iter()
            .map(|x| (x.1 * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(
            &per_s[..12],
            &[40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 160.0, 160.0, 160.0, 160.0]
        );
        let steps = crate::elastic::steps(&per_s);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps[0].up() && !steps[1].up());
        // Without a profile the row's own target is spread over it, as before.
        let flat = target_samples(0.0, &[(2.0, 2.0, 50.0)], None);
        assert_eq!(flat, vec![(0.0, 2.0, 2.0, 100.0)]);
    }

    #[test]
    fn rows_count_lag_consumers_and_events_per_second() {
        let s = Series {
            produced: vec![(0.0, 10.0), (1.0, 10.0), (2.0, 0.0)],
            consumed: vec![(0.0, 4.0), (1.0, 10.0), (2.0, 6.0)],
            target: vec![(0.0, 10.0)],
        };
        let lives = [ConsumerLife {
            start_s: 100.2,
            end_s: 101.9,
            busy_s: 0.0,
            handled_msgs: 0,
        }];
        let events = BTreeMap::from([(1, vec!["up 1->2: lag".to_string()])]);
        let rows = rows(&s, None, &lives, events, 100.0);
        let lag: Vec<f64> = rows.iter().map(|r| r.lag_msgs).collect();
        assert_eq!(lag, [6.0, 6.0, 0.0]);
        let alive: Vec<u32> = rows.iter().map(|r| r.consumers).collect();
        assert_eq!(alive, [1, 1, 0]);
        assert_eq!(rows[1].events, "up 1->2: lag");
        assert_eq!(rows[2].target_msgs_per_s, 0.0);
        // Replayed lag, where there are reports, wins.
        let rows2 = super::rows(&s, Some(&[1, 2, 3]), &lives, BTreeMap::new(), 100.0);
        assert_eq!(rows2[2].lag_msgs, 3.0);
    }

    #[test]
    fn events_fall_in_the_second_they_happened_in() {
        let e = events(&[], &[], 100.0);
        assert!(e.is_empty());
        assert_eq!(epoch_s("1970-01-01T00:01:40Z"), Some(100.0));
        assert_eq!(epoch_s("not a time"), None);
    }
}
