//! Stage 5, the end of a run: what every thread kept merged ([`Merged`]), the processors' output written, the
//! accounting and latency files written (and the checkpoints they replace removed), and the summary row built:
//! incomplete, with its reasons, when the run was interrupted or anything is missing, rejected or in error.

use std::path::{Path, PathBuf};

use pilot_core::contract::client::Connection;
use pilot_core::contract::files::write_atomic;
use pilot_core::contract::metrics::LatencyHistogram;

use super::handler::ThreadOut;
use super::{accounting_path, checkpoint_path, latency_histogram_path, ConsumeError};
use crate::accounting::{Accounting, Totals};
use crate::config::ConsumerPlan;
use crate::processor::Processor;
use crate::report::ConsumerSummary;

/// What the threads of a process kept, together.
#[derive(Default)]
pub(crate) struct Merged {
    pub accounting: Accounting,
    pub e2e: LatencyHistogram,
    pub e2e_actual: LatencyHistogram,
    pub processed: LatencyHistogram,
    pub processing: LatencyHistogram,
    pub scheduling: LatencyHistogram,
    pub windows: u64,
    pub items: u64,
    pub lag: i64,
    /// First and last message received (ns), over all threads.
    pub first_ns: Option<u64>,
    pub last_ns: u64,
    pub last_score: f64,
    pub errors: Vec<String>,
}

impl Merged {
    pub fn of(outs: &[ThreadOut]) -> Self {
        let mut m = Merged::default();
        for o in outs {
            m.accounting.merge(&o.accounting);
            m.e2e.merge(&o.e2e);
            m.e2e_actual.merge(&o.e2e_actual);
            m.processed.merge(&o.processed);
            m.processing.merge(&o.processing);
            m.scheduling.merge(&o.scheduling);
            m.windows += o.windows;
            m.items += o.items;
            m.lag += o.lag;
            if let Some(f) = o.first_ns {
                m.first_ns = Some(m.first_ns.map_or(f, |x| x.min(f)));
            }
            m.last_ns = m.last_ns.max(o.last_ns);
            m.last_score = o.last_score;
            m.errors.extend(o.errors.iter().cloned());
        }
        m
    }

    /// First to last message received, seconds (0 with fewer than two instants).
    pub fn receive_window_s(&self) -> f64 {
        match self.first_ns {
            Some(f) if self.last_ns > f => (self.last_ns - f) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

/// Let each processor write its output (a processor that cannot marks the run incomplete through `errors`);
/// their notes, each once.
pub(crate) fn finish_processors(
    processors: &mut [Box<dyn Processor>],
    results_dir: Option<&Path>,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for p in processors {
        if let Err(e) = p.finish(results_dir) {
            errors.push(format!("processor output: {e}"));
        }
        for n in p.notes() {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
    notes
}

/// The accounting and the latency histogram in the results directory; the final accounting holds everything
/// the threads' checkpoints did, so those are removed.
pub(crate) fn write_results(
    plan: &ConsumerPlan,
    accounting: &Accounting,
    e2e: &LatencyHistogram,
) -> Result<(), ConsumeError> {
    let Some(d) = &plan.results_dir else {
        return Ok(());
    };
    let io = |path: PathBuf| {
        move |e: std::io::Error| ConsumeError::Io {
            path,
            message: e.to_string(),
        }
    };
    let path = accounting_path(d, &plan.consumer_id);
    let json = serde_json::to_string(accounting).expect("serialisable");
    write_atomic(&path, json.as_bytes()).map_err(io(path.clone()))?;
    let path = latency_histogram_path(d, &plan.consumer_id);
    write_atomic(&path, &e2e.to_v2_bytes()).map_err(io(path.clone()))?;
    for t in 0..plan.threads as usize {
        let _ = std::fs::remove_file(checkpoint_path(d, &plan.consumer_id, t));
    }
    Ok(())
}

/// The summary's notes: the processors', the control file's, failed metrics reports, the emulated cost, and
/// messages from other producers.
pub(crate) fn run_notes(
    plan: &ConsumerPlan,
    mut notes: Vec<String>,
    control_notes: Vec<String>,
    mut telemetry_errors: Vec<String>,
    totals: &Totals,
) -> Vec<String> {
    notes.extend(control_notes);
    if !telemetry_errors.is_empty() {
        telemetry_errors.sort();
        telemetry_errors.dedup();
        notes.push(format!(
            "metrics reports to {} failed: {}",
            plan.metrics_topic.as_deref().unwrap_or_default(),
            telemetry_errors.join("; ")
        ));
    }
    if let Some(c) = plan.cost {
        notes.push(format!(
            "processing cost emulated: {} ms per message ({})",
            c.per_message.as_secs_f64() * 1e3,
            c.model.as_str()
        ));
    }
    if totals.unaccounted > 0 {
        notes.push(format!(
            "{} messages without MASS's accounting (another producer's): processed, latency from their Kafka timestamps",
            totals.unaccounted
        ));
    }
    notes
}

/// Why the run is incomplete: interrupted, messages missing (when a count was expected) or rejected, errors.
/// Empty when it is complete.
/// `received` says what did arrive (see [`Accounting::received_text`]), named with the missing count.
pub(crate) fn incomplete_reasons(
    interrupted: bool,
    expect_messages: Option<u64>,
    totals: &Totals,
    received: &str,
    mut errors: Vec<String>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if interrupted {
        reasons.push("interrupted by SIGINT/SIGTERM".to_string());
    }
    if expect_messages.is_some() && totals.missing > 0 {
        reasons.push(format!(
            "{} messages missing (received: {})",
            totals.missing,
            if received.is_empty() {
                "none"
            } else {
                received
            }
        ));
    }
    if totals.rejected > 0 {
        reasons.push(format!("{} messages rejected", totals.rejected));
    }
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        reasons.push(format!("errors: {}", errors.join("; ")));
    }
    reasons
}

/// What the summary row says besides the merged threads.
pub(crate) struct Ending<'a> {
    pub plan: &'a ConsumerPlan,
    pub conn: &'a Connection,
    pub start_utc: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// When partitions were first assigned (0: never).
    pub first_assignment_ns: u64,
    pub received_bytes: u64,
    pub busy_ns: u64,
    pub handled_msgs: u64,
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    pub stop_reason: &'static str,
}

/// The summary row of a run.
pub(crate) fn summary(e: Ending, m: &Merged, totals: &Totals) -> ConsumerSummary {
    let plan = e.plan;
    let window_s = m.receive_window_s();
    let received_mb = e.received_bytes as f64 / 1e6;
    let per_s = |x: f64| if window_s > 0.0 { x / window_s } else { 0.0 };
    let (l, la, pr, sc) = (
        m.e2e.summary(),
        m.e2e_actual.summary(),
        m.processing.summary(),
        m.scheduling.summary(),
    );
    let processed = m.processed.summary();
    ConsumerSummary {
        run_id: plan.run_id.clone(),
        role: "consumer".into(),
        consumer_id: plan.consumer_id.clone(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        start_utc: e.start_utc,
        end_utc: pilot_core::contract::clock::now_utc(),
        complete: e.reasons.is_empty(),
        incomplete_reason: e.reasons.join("; "),
        bootstrap_servers: e.conn.bootstrap.clone(),
        topic: plan.topic.clone(),
        group: plan.group.clone(),
        threads: plan.threads,
        processor: plan.processor.name().into(),
        window: plan.window.to_string(),
        expected_msgs: plan.expect_messages.unwrap_or(0),
        elapsed_s: e.end_ns.saturating_sub(e.start_ns) as f64 / 1e9,
        rebalance_s: if e.first_assignment_ns > e.start_ns {
            (e.first_assignment_ns - e.start_ns) as f64 / 1e9
        } else {
            0.0
        },
        receive_window_s: window_s,
        received_msgs: totals.received,
        unaccounted_msgs: totals.unaccounted,
        duplicate_msgs: totals.duplicates,
        rejected_msgs: totals.rejected,
        rejected_reasons: m.accounting.rejected_text(),
        missing_msgs: totals.missing,
        received_mb,
        processed_items: m.items,
        windows: m.windows,
        throughput_msgs_per_s: per_s((totals.received + totals.unaccounted) as f64),
        throughput_mb_per_s: per_s(received_mb),
        throughput_items_per_s: per_s(m.items as f64),
        e2e_latency_us_p50: l.p50_us,
        e2e_latency_us_p90: l.p90_us,
        e2e_latency_us_p99: l.p99_us,
        e2e_latency_us_p999: l.p999_us,
        e2e_latency_us_max: l.max_us,
        e2e_latency_us_mean: l.mean_us,
        e2e_actual_latency_us_p50: la.p50_us,
        e2e_actual_latency_us_p99: la.p99_us,
        processed_latency_us_p50: processed.p50_us,
        processed_latency_us_p99: processed.p99_us,
        processing_us_p50: pr.p50_us,
        processing_us_p99: pr.p99_us,
        processing_us_max: pr.max_us,
        scheduling_delay_us_p50: sc.p50_us,
        scheduling_delay_us_p99: sc.p99_us,
        lag_msgs: m.lag,
        busy_s: e.busy_ns as f64 / 1e9,
        handled_msgs: e.handled_msgs,
        last_score: m.last_score,
        notes: e.notes.join("; "),
        stop_reason: e.stop_reason.into(),
    }
}

/// Merge the accounting files of every consumer process in `dirs` (a group's view of a run).
pub fn merge_accounting(dirs: &[PathBuf]) -> Result<(Accounting, usize), ConsumeError> {
    let mut all = Accounting::default();
    let mut files = 0;
    for d in dirs {
        let entries = std::fs::read_dir(d).map_err(|e| ConsumeError::Io {
            path: d.clone(),
            message: e.to_string(),
        })?;
        // A consumer's final file, or where it has none (it was killed) its threads' last checkpoints.
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        for name in &names {
            let checkpoint_of = name
                .strip_suffix(".json")
                .and_then(|n| n.rsplit_once("-checkpoint-"))
                .map(|(owner, _)| format!("{owner}-accounting.json"));
            let take = match &checkpoint_of {
                Some(final_name) => name.starts_with("consumer-") && !names.contains(final_name),
                None => name.starts_with("consumer-") && name.ends_with("-accounting.json"),
            };
            if take {
                let path = d.join(name);
                let io = |err: &dyn std::fmt::Display| ConsumeError::Io {
                    path: path.clone(),
                    message: err.to_string(),
                };
                let text = std::fs::read_to_string(&path).map_err(|e| io(&e))?;
                let a: Accounting = serde_json::from_str(&text).map_err(|e| io(&e))?;
                all.merge(&a);
                files += 1;
            }
        }
    }
    Ok((all, files))
}

/// A consumer process that left only checkpoints (no final accounting): it died (SIGKILL, an OOM, a lost node)
/// after its last checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Died {
    pub consumer_id: String,
    /// When its last checkpoint was written (UTC, RFC 3339): it died after this.
    pub last_checkpoint_utc: String,
    /// Messages its checkpoints hold (counted as received: the messages after them came again to the
    /// partitions' next owners).
    pub messages: u64,
}

/// The consumers in `dirs` that died: those with checkpoints and no final accounting file.
pub fn died(dirs: &[PathBuf]) -> Result<Vec<Died>, ConsumeError> {
    let mut out: Vec<Died> = Vec::new();
    for d in dirs {
        let entries = std::fs::read_dir(d).map_err(|e| ConsumeError::Io {
            path: d.clone(),
            message: e.to_string(),
        })?;
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        for name in &names {
            let Some((owner, _)) = name
                .strip_suffix(".json")
                .and_then(|n| n.rsplit_once("-checkpoint-"))
            else {
                continue;
            };
            let Some(id) = owner.strip_prefix("consumer-") else {
                continue;
            };
            if names.contains(&format!("{owner}-accounting.json")) {
                continue;
            }
            let path = d.join(name);
            let io = |err: &dyn std::fmt::Display| ConsumeError::Io {
                path: path.clone(),
                message: err.to_string(),
            };
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| io(&e))?;
            let text = std::fs::read_to_string(&path).map_err(|e| io(&e))?;
            let a: Accounting = serde_json::from_str(&text).map_err(|e| io(&e))?;
            let utc = humantime::format_rfc3339_millis(modified).to_string();
            let n = a.totals(None).received;
            match out.iter_mut().find(|x| x.consumer_id == id) {
                Some(x) => {
                    x.messages += n;
                    x.last_checkpoint_utc = x.last_checkpoint_utc.clone().max(utc);
                }
                None => out.push(Died {
                    consumer_id: id.to_string(),
                    last_checkpoint_utc: utc,
                    messages: n,
                }),
            }
        }
    }
    out.sort_by(|a, b| a.consumer_id.cmp(&b.consumer_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(first: Option<u64>, last: u64, seqs: &[u64], lag: i64, items: u64) -> ThreadOut {
        let mut o = ThreadOut {
            first_ns: first,
            last_ns: last,
            lag,
            items,
            windows: 1,
            ..Default::default()
        };
        for &s in seqs {
            o.accounting.record(1, s);
            o.e2e.record_between_ns(0, 1_000_000);
        }
        o
    }

    #[test]
    fn a_consumer_with_checkpoints_and_no_final_file_died_and_its_messages_count() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let acc = |seqs: std::ops::Range<u64>| {
            let mut a = Accounting::default();
            for s in seqs {
                a.record(0, s);
            }
            serde_json::to_string(&a).unwrap()
        };
        // c0 finished (final file, its checkpoints removed); c1 died with two threads' checkpoints.
        std::fs::write(super::super::accounting_path(d, "c0"), acc(0..10)).unwrap();
        std::fs::write(checkpoint_path(d, "c1", 0), acc(10..14)).unwrap();
        std::fs::write(checkpoint_path(d, "c1", 1), acc(14..20)).unwrap();
        // A finished consumer's leftover checkpoint is not a death.
        std::fs::write(checkpoint_path(d, "c0", 0), acc(0..3)).unwrap();
        let dead = died(&[d.to_path_buf()]).unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!((dead[0].consumer_id.as_str(), dead[0].messages), ("c1", 10));
        assert!(dead[0].last_checkpoint_utc.starts_with("20"), "{dead:?}");
        let (all, files) = merge_accounting(&[d.to_path_buf()]).unwrap();
        assert_eq!((files, all.totals(Some(20)).missing), (3, 0));
    }

    #[test]
    fn threads_merge_into_one_view_of_the_process() {
        let m = Merged::of(&[
            out(Some(5_000_000_000), 6_000_000_000, &[0, 2], 3, 10),
            out(Some(4_000_000_000), 7_500_000_000, &[1], 4, 20),
            out(None, 0, &[], 0, 0),
        ]);
        assert_eq!(m.accounting.totals(Some(3)).received, 3);
        assert_eq!(m.accounting.totals(Some(3)).missing, 0);
        assert_eq!((m.lag, m.items, m.windows), (7, 30, 3));
        assert_eq!(m.e2e.count(), 3);
        assert!((m.receive_window_s() - 3.5).abs() < 1e-12);
    }

    #[test]
    fn a_process_that_received_nothing_has_no_receive_window() {
        assert_eq!(
            Merged::of(&[out(None, 0, &[], 0, 0)]).receive_window_s(),
            0.0
        );
        assert_eq!(Merged::of(&[]).receive_window_s(), 0.0);
    }

    #[test]
    fn a_run_is_complete_only_without_interruption_loss_rejection_or_error() {
        let clean = Totals::default();
        assert!(incomplete_reasons(false, Some(10), &clean, "", vec![]).is_empty());
        let lost = Totals {
            missing: 4,
            rejected: 2,
            ..Default::default()
        };
        let r = incomplete_reasons(
            true,
            Some(10),
            &lost,
            "p0 0..3+5..7",
            vec!["b".into(), "a".into(), "b".into()],
        );
        assert_eq!(
            r,
            vec![
                "interrupted by SIGINT/SIGTERM",
                "4 messages missing (received: p0 0..3+5..7)",
                "2 messages rejected",
                "errors: a; b"
            ]
        );
        // Missing counts only when a count was expected (gaps alone may be another consumer's share).
        assert_eq!(
            incomplete_reasons(false, None, &lost, "p0 0..3+5..7", vec![]),
            vec!["2 messages rejected"]
        );
    }

    #[test]
    fn the_summary_says_what_the_threads_did() {
        let plan = crate::consumer::test_plan();
        let conn = Connection::to_brokers("127.0.0.2:9092");
        let m = Merged::of(&[out(Some(1_000_000_000), 3_000_000_000, &[0, 1, 2, 3], 0, 8)]);
        let totals = m.accounting.totals(None);
        let s = summary(
            Ending {
                plan: &plan,
                conn: &conn,
                start_utc: "start".into(),
                start_ns: 500_000_000,
                end_ns: 4_500_000_000,
                first_assignment_ns: 750_000_000,
                received_bytes: 2_000_000,
                busy_ns: 1_500_000_000,
                handled_msgs: 4,
                reasons: vec![],
                notes: vec!["n1".into(), "n2".into()],
                stop_reason: "stream-end",
            },
            &m,
            &totals,
        );
        assert!(s.complete);
        assert_eq!((s.received_msgs, s.processed_items), (4, 8));
        assert!((s.elapsed_s - 4.0).abs() < 1e-12);
        assert!((s.rebalance_s - 0.25).abs() < 1e-12);
        assert!((s.throughput_msgs_per_s - 2.0).abs() < 1e-12);
        assert!((s.throughput_mb_per_s - 1.0).abs() < 1e-12);
        assert!((s.busy_s - 1.5).abs() < 1e-12);
        assert_eq!(s.e2e_latency_us_p50, 1000);
        assert_eq!(s.notes, "n1; n2");
        assert_eq!(s.bootstrap_servers, "127.0.0.2:9092");
        assert_eq!(s.stop_reason, "stream-end");
    }
}
