//! An autoscaled run's consumers: `pilot autoscale`'s controller starting and stopping 1-node processing pilots
//! that run MASA, until the producers are done and the group has consumed everything they wrote.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pilot_core::ops::autoscale::DecisionRow;

use super::plan::walltime_min;
use super::RunError;
use crate::spec::Point;

/// The consumers of a run: their ids, how their processes ended (static runs; the controller reaps its own),
/// and the controller's decisions (autoscaled runs).
pub(crate) struct Consumers {
    pub ids: Vec<String>,
    pub tasks: Vec<pilot_core::pilots::tasks::TaskResult>,
    pub decisions: Vec<DecisionRow>,
}

/// What an autoscaled run's controller needs.
pub(crate) struct Autoscaled<'a> {
    pub point: &'a Point,
    pub conn: &'a pilot_core::contract::client::Connection,
    pub broker_id: &'a str,
    pub pilots_dir: &'a Path,
    pub run_dir: &'a Path,
    pub command: &'a [String],
    pub topic: &'a str,
    pub metrics_topic: &'a str,
    pub group: &'a str,
    pub partitions: u32,
    /// Set once every producer has finished.
    pub producers_done: &'a AtomicBool,
    pub stop: &'a (dyn Fn() -> bool + Sync),
    pub deadline: Instant,
    pub registry: &'a pilot_core::ops::fault::Registry,
}

/// Run `pilot autoscale`'s controller for a run: 1-node processing pilots running MASA, started and stopped by
/// the policy, until the producers are done and the group has consumed everything they wrote (then every
/// consumer is stopped gracefully). Decisions go to `decisions.csv` in the run's directory.
pub(crate) fn autoscaled_consumers(a: &Autoscaled) -> Result<Consumers, RunError> {
    use pilot_core::ops::autoscale::{Controller, KafkaReportSource, PilotActuator};
    let plan = &a.point.autoscale;
    let mut actuator = PilotActuator::new(
        &a.point.layout.resource,
        a.pilots_dir.to_path_buf(),
        a.broker_id,
        walltime_min(a.point),
        a.command.to_vec(),
    )
    .map_err(|e| RunError::Autoscale(e.to_string()))?
    .with_registry(a.registry.clone());
    let mut source = KafkaReportSource::new(a.conn, a.metrics_topic, a.topic, a.partitions)
        .map_err(|e| RunError::Autoscale(e.to_string()))?;
    let mut controller = Controller::new(plan, a.group, a.partitions);
    let path = a.run_dir.join("decisions.csv");
    let mut csv = pilot_core::contract::metrics::CsvWriter::create(&path)
        .map_err(|e| RunError::io(&path, e))?;
    let mut rows: Vec<DecisionRow> = Vec::new();
    let mut write_error = None;
    let drain = std::sync::Mutex::new(Drain::default());
    let drained = || drain.lock().expect("drain").drained();
    let clock = pilot_core::contract::clock::SystemClock::new();
    let stop = || (a.stop)() || drained() || Instant::now() >= a.deadline;
    let result = pilot_core::ops::autoscale::run(
        &mut controller,
        &mut source,
        &mut actuator,
        &clock,
        &stop,
        &mut |row| {
            let mut d = drain.lock().expect("drain");
            if a.producers_done.load(Ordering::SeqCst) && d.produced.is_none() {
                d.produced = Some(produced_msgs(a.point, a.run_dir));
            }
            d.observe(row.lag_msgs, row.end_offsets_total);
            if let Err(e) = csv.write(row) {
                write_error.get_or_insert(RunError::io(&path, e));
            }
            rows.push(row.clone());
        },
    );
    let ids = (0..actuator.started()).map(|i| format!("a{i}")).collect();
    drop(actuator);
    result.map_err(|e| RunError::Autoscale(e.to_string()))?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if !drained() && !(a.stop)() {
        return Err(RunError::Autoscale(format!(
            "the group had not consumed everything when the run timed out (last lag {})",
            rows.last()
                .map(|r| format!("{} msgs", r.lag_msgs))
                .unwrap_or_else(|| "unknown: no decision was taken".into())
        )));
    }
    Ok(Consumers {
        ids,
        tasks: Vec::new(),
        decisions: rows,
    })
}

/// Messages the run's producers delivered, by their summaries (0 where one is missing).
pub(crate) fn produced_msgs(point: &Point, run_dir: &Path) -> u64 {
    (0..point.producer_processes())
        .filter_map(|i| {
            pilot_core::contract::metrics::read_csv::<mass::report::ProducerSummary>(
                &mass::producer::summary_path(&run_dir.join(format!("producer-{i}"))),
            )
            .ok()
            .and_then(|r| r.last().map(|s| s.delivered_msgs))
        })
        .sum()
}

/// When an autoscaled run's consumers are done: after the producers finished (`produced` known), two decisions
/// in a row saw no lag against end offsets that cover everything produced (a fresh topic's end offsets count
/// its messages).
#[derive(Debug, Default)]
pub(crate) struct Drain {
    /// What the producers delivered, once they have all finished.
    pub produced: Option<u64>,
    rows: u32,
}

impl Drain {
    /// Take a decision's view of the group: its lag and the topic's end offsets.
    pub fn observe(&mut self, lag_msgs: f64, end_offsets_total: i64) {
        let covered = self.produced.is_some_and(|p| end_offsets_total >= p as i64);
        if covered && lag_msgs == 0.0 {
            self.rows += 1;
        } else {
            self.rows = 0;
        }
    }

    pub fn drained(&self) -> bool {
        self.rows >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_takes_two_quiet_decisions_after_everything_produced_is_in_the_end_offsets() {
        let mut d = Drain::default();
        // Producers still running: no lag means nothing yet.
        d.observe(0.0, 500);
        d.observe(0.0, 500);
        assert!(!d.drained());
        d.produced = Some(1000);
        d.observe(0.0, 900);
        assert!(!d.drained(), "end offsets short of what was produced");
        d.observe(0.0, 1000);
        d.observe(3.0, 1000);
        assert!(!d.drained(), "lag resets the count");
        d.observe(0.0, 1000);
        assert!(!d.drained());
        d.observe(0.0, 1000);
        assert!(d.drained());
    }
}
