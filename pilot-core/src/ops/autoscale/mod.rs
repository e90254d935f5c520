//! Elastic processing: a controller that watches a consumer group and starts or stops processing pilots so the
//! group keeps up with its input, with nothing lost.
//!
//! ```text
//! consumers' reports (metrics topic) --> GroupView (telemetry.rs): members, end offsets, lag, busy time
//!        --> Observation --> Policy::decide (policy.rs, pure) --> Decision (a CSV row)
//!        --> Actuator::scale_to: PilotActuator starts 1-node compute pilots running the consumer command,
//!            or stops the newest ones (SIGTERM: the consumer commits, says it is leaving, and exits)
//! ```
//!
//! - [`policy`]: the decision arithmetic (DS2's true rates, a catch-up term for lag, target utilisation,
//!   partition cap, warm-up after changes, slower scale-down), tested with injected observations.
//! - [`Controller`]: one decision per interval from what the reports say, also pure apart from the actuator it
//!   is handed; [`run`] drives it from a [`ReportSource`] and a clock.
//! - [`PilotActuator`]: the real actuator (local or SLURM pilots, through [`crate::pilots::pilot`] and [`crate::pilots::tasks`]).
//! - [`AutoscaleSettings`]: the settings (`pilot autoscale` flags, an experiment's `[autoscale]` table).

pub mod policy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::contract::clock::Clock;
use crate::contract::config::{SettingError, Settings};
use crate::contract::telemetry::{ConsumerReport, EndOffsetSource, GroupView};
use crate::error::{PilotError, Result};
use crate::pilots::description::{FrameworkKind, ProcessEnvironment, RawDescription};
use crate::pilots::pilot::Pilot;
use crate::pilots::tasks::{NodeSelection, TaskResult};

pub use policy::{Action, Decision, Observation, Policy, PolicyConfig};

/// The controller's settings as written (flags of `pilot autoscale`, or an experiment's `[autoscale]` table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleSettings {
    /// Seconds between decisions [default: 5]
    #[arg(long)]
    pub decision_interval_s: Option<f64>,
    /// Fraction of a consumer's measured true rate to plan for [default: 0.8]
    #[arg(long)]
    pub target_utilisation: Option<f64>,
    /// Seconds within which a backlog should be drained [default: 30]
    #[arg(long)]
    pub catch_up_s: Option<f64>,
    /// Seconds after each change in which no decision is taken (rebalances distort the figures) [default: 10]
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Seconds a lower need must hold before consumers are removed [default: 20]
    #[arg(long)]
    pub scale_down_delay_s: Option<f64>,
    /// Fewest consumers [default: 1]
    #[arg(long)]
    pub min_consumers: Option<u32>,
    /// Most consumers (the topic's partitions cap it too) [default: 8]
    #[arg(long)]
    pub max_consumers: Option<u32>,
    /// Consumers to start with [default: min_consumers]
    #[arg(long)]
    pub initial_consumers: Option<u32>,
    /// A consumer whose last report is older than this is counted out (killed, node lost) [default: 10]
    #[arg(long)]
    pub report_timeout_s: Option<f64>,
}

/// Validated controller settings; the partition count is the topic's, known when the controller starts.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalePlan {
    pub decision_interval_s: f64,
    pub target_utilisation: f64,
    pub catch_up_s: f64,
    pub warmup_s: f64,
    pub scale_down_delay_s: f64,
    pub min_consumers: u32,
    pub max_consumers: u32,
    pub initial_consumers: u32,
    pub report_timeout_s: f64,
}

impl AutoscalePlan {
    /// The policy's settings for a topic of `partitions`.
    pub fn policy(&self, partitions: u32) -> PolicyConfig {
        PolicyConfig {
            target_utilisation: self.target_utilisation,
            catch_up_s: self.catch_up_s,
            warmup_s: self.warmup_s,
            scale_down_delay_s: self.scale_down_delay_s,
            min_consumers: self.min_consumers,
            max_consumers: self.max_consumers,
            partitions,
            tolerance: 0.05,
        }
    }

    /// For dry runs and logs.
    pub fn describe(&self) -> String {
        format!(
            "decide every {} s; plan for {} % of the measured true rate; drain lag within {} s; warm-up {} s after changes; scale down after {} s lower; {}..={} consumers (start {}); reports older than {} s count a consumer out",
            self.decision_interval_s,
            self.target_utilisation * 100.0,
            self.catch_up_s,
            self.warmup_s,
            self.scale_down_delay_s,
            self.min_consumers,
            self.max_consumers,
            self.initial_consumers,
            self.report_timeout_s
        )
    }
}

fn seconds(
    key: &str,
    v: Option<f64>,
    default: f64,
    zero_ok: bool,
) -> std::result::Result<f64, SettingError> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) || v > 1e6 {
        return Err(SettingError::key(
            key,
            format!(
                "{key} must be {} seconds, at most 1e6 (got {v})",
                if zero_ok { "0 or more" } else { "positive" }
            ),
        ));
    }
    Ok(v)
}

impl Settings for AutoscaleSettings {
    type Plan = AutoscalePlan;
    const APP: &'static str = "autoscale";

    fn check(&self) -> std::result::Result<AutoscalePlan, SettingError> {
        let u = self.target_utilisation.unwrap_or(0.8);
        if !(u > 0.0 && u <= 1.0) {
            return Err(SettingError::key(
                "target_utilisation",
                format!("target_utilisation must be in (0, 1] (got {u})"),
            ));
        }
        let min = self.min_consumers.unwrap_or(1);
        let max = self.max_consumers.unwrap_or(8);
        if min == 0 {
            return Err(SettingError::key(
                "min_consumers",
                "min_consumers must be at least 1",
            ));
        }
        if max < min || max > 4096 {
            return Err(SettingError::key(
                "max_consumers",
                format!("max_consumers must be min_consumers ({min})..=4096 (got {max})"),
            ));
        }
        let initial = self.initial_consumers.unwrap_or(min);
        if !(min..=max).contains(&initial) {
            return Err(SettingError::key(
                "initial_consumers",
                format!("initial_consumers must be within {min}..={max} (got {initial})"),
            ));
        }
        Ok(AutoscalePlan {
            decision_interval_s: seconds(
                "decision_interval_s",
                self.decision_interval_s,
                5.0,
                false,
            )?,
            target_utilisation: u,
            catch_up_s: seconds("catch_up_s", self.catch_up_s, 30.0, false)?,
            warmup_s: seconds("warmup_s", self.warmup_s, 10.0, true)?,
            scale_down_delay_s: seconds("scale_down_delay_s", self.scale_down_delay_s, 20.0, true)?,
            min_consumers: min,
            max_consumers: max,
            initial_consumers: initial,
            report_timeout_s: seconds("report_timeout_s", self.report_timeout_s, 10.0, false)?,
        })
    }
}

/// Starts and stops consumers.
pub trait Actuator {
    /// Consumers running now (started, not being stopped; ones that exited on their own are counted out and
    /// reported as events).
    fn running(&mut self) -> u32;
    /// Start or stop consumers until `n` run (stopping is graceful and finishes in the background).
    fn scale_to(&mut self, n: u32) -> Result<()>;
    /// What happened since the last call (started, stopped, exited), for the decisions file.
    fn take_events(&mut self) -> Vec<String>;
    /// Stop every consumer gracefully and wait for them (up to `timeout`).
    fn stop_all(&mut self, timeout: Duration) -> Result<()>;
}

/// One decision and what the controller saw: a row of the decisions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRow {
    /// Seconds since the controller started.
    pub t_s: f64,
    /// Wall clock, ms since the epoch.
    pub time_unix_ms: u64,
    pub input_msgs_per_s: f64,
    pub lag_msgs: f64,
    /// The topic's end offsets, summed over its partitions (messages written so far to a fresh topic).
    pub end_offsets_total: i64,
    /// Where the end offsets behind the input rate and lag came from.
    pub end_offset_source: String,
    pub true_rate_msgs_per_s: f64,
    pub utilisation: f64,
    pub need_consumers: f64,
    pub consumers_before: u32,
    pub consumers_after: u32,
    /// Consumers reporting (members of the group by their reports).
    pub reporting_consumers: u32,
    pub action: Action,
    pub reason: String,
    /// Starts, stops and exits since the previous row, `; `-separated.
    pub events: String,
}

/// One decision per interval from the group's reports.
pub struct Controller {
    plan: AutoscalePlan,
    policy: Policy,
    view: GroupView,
    /// End offsets total at the previous decision, and when.
    prev: Option<(f64, i64)>,
    /// End offsets total as reports came in since then, and when: the input rate's recent part.
    samples: Vec<(f64, i64)>,
}

impl Controller {
    pub fn new(plan: &AutoscalePlan, group: &str, partitions: u32) -> Self {
        Controller {
            policy: Policy::new(plan.policy(partitions)),
            view: GroupView::new(group, plan.report_timeout_s),
            plan: plan.clone(),
            prev: None,
            samples: Vec::new(),
        }
    }

    /// Take a report received at `now_s`.
    pub fn observe(&mut self, r: ConsumerReport, now_s: f64) {
        self.view.add(r, now_s);
        if self.samples.last().is_none_or(|s| now_s - s.0 >= 0.25) {
            self.samples
                .push((now_s, self.view.state(now_s).end_offsets_total));
        }
    }

    /// The input rate since the previous decision; but where the rate over the interval's second half differs
    /// from it by more than a quarter, that (the input changed within the interval: a step just after a
    /// decision must not be sized by the average of before and after). None before a first look.
    fn input_rate(&self, now_s: f64, total: i64) -> Option<f64> {
        let (t0, e0) = self.prev?;
        if now_s <= t0 {
            return Some(0.0);
        }
        let full = (total - e0).max(0) as f64 / (now_s - t0);
        let mid = t0 + (now_s - t0) / 2.0;
        let recent = self
            .samples
            .iter()
            .find(|s| s.0 >= mid)
            .filter(|s| now_s - s.0 >= 1.5)
            .map(|&(t, e)| (total - e).max(0) as f64 / (now_s - t));
        Some(match recent {
            Some(r) if (r - full).abs() > 0.25 * full.max(1.0) => r,
            _ => full,
        })
    }

    /// Reports refused (another format version).
    pub fn refused(&self) -> &[String] {
        &self.view.refused
    }

    /// The group as the reports say now.
    pub fn view(&self) -> &GroupView {
        &self.view
    }

    /// Decide at `now_s`, with the broker's end offsets where it answered (a floor under the reported ones), and
    /// act through `actuator`.
    pub fn decide(
        &mut self,
        now_s: f64,
        broker_end_offsets: &BTreeMap<i32, i64>,
        actuator: &mut dyn Actuator,
    ) -> Result<DecisionRow> {
        self.view.set_broker_end_offsets(broker_end_offsets);
        let state = self.view.state(now_s);
        let (handled, busy) = self.view.take_work();
        let consumers = actuator.running();
        let input = self.input_rate(now_s, state.end_offsets_total);
        self.prev = Some((now_s, state.end_offsets_total));
        self.samples.clear();
        let observation = Observation {
            time_s: now_s,
            input_msgs_per_s: input.unwrap_or(0.0),
            lag_msgs: state.lag_msgs as f64,
            handled_msgs: handled as f64,
            busy_s: busy,
            consumers,
        };
        let d = if input.is_none() && consumers >= self.plan.min_consumers {
            // The first look only starts the input-rate measurement.
            Decision {
                time_s: now_s,
                input_msgs_per_s: 0.0,
                lag_msgs: observation.lag_msgs,
                true_rate_msgs_per_s: 0.0,
                utilisation: 0.0,
                need_consumers: 0.0,
                consumers_before: consumers,
                consumers_after: consumers,
                action: Action::Hold,
                reason: "measuring the input rate".into(),
            }
        } else {
            self.policy.decide(&observation)
        };
        if d.consumers_after != consumers {
            actuator.scale_to(d.consumers_after)?;
        }
        let mut events = actuator.take_events();
        events.append(&mut self.view.refused);
        Ok(DecisionRow {
            t_s: now_s,
            time_unix_ms: unix_ms(),
            input_msgs_per_s: d.input_msgs_per_s,
            lag_msgs: d.lag_msgs,
            end_offsets_total: state.end_offsets_total,
            end_offset_source: state.end_offset_source.as_str().into(),
            true_rate_msgs_per_s: d.true_rate_msgs_per_s,
            utilisation: d.utilisation,
            need_consumers: d.need_consumers,
            consumers_before: d.consumers_before,
            consumers_after: d.consumers_after,
            reporting_consumers: state.members.len() as u32,
            action: d.action,
            reason: d.reason,
            events: events.join("; "),
        })
    }

    /// Lag and where its end offsets came from, now.
    pub fn lag(&self, now_s: f64) -> (i64, EndOffsetSource) {
        let s = self.view.state(now_s);
        (s.lag_msgs, s.end_offset_source)
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where reports (and the broker's end offsets) come from.
pub trait ReportSource {
    /// Reports arriving within `wait`.
    fn poll(&mut self, wait: Duration) -> Vec<ConsumerReport>;
    /// The broker's end offsets per partition (ListOffsets), where it answers; empty when not asked.
    fn broker_end_offsets(&mut self) -> BTreeMap<i32, i64> {
        BTreeMap::new()
    }
}

/// Reports from a metrics topic, and end offsets from the brokers.
pub struct KafkaReportSource {
    pub reader: crate::contract::telemetry::TelemetryReader,
    consumer: rdkafka::consumer::BaseConsumer,
    topic: String,
    partitions: u32,
}

impl KafkaReportSource {
    /// Follow `metrics_topic`, and ask the brokers for `topic`'s end offsets.
    pub fn new(
        conn: &crate::contract::client::Connection,
        metrics_topic: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<Self> {
        let reader = crate::contract::telemetry::TelemetryReader::new(conn, metrics_topic)?;
        let consumer = conn
            .client
            .consumer_config(
                &conn.bootstrap,
                &format!("autoscale-offsets-{}", std::process::id()),
            )
            .create()
            .map_err(|e| PilotError::Kafka {
                operation: "creating the offsets client".into(),
                bootstrap: conn.bootstrap.clone(),
                message: e.to_string(),
            })?;
        Ok(KafkaReportSource {
            reader,
            consumer,
            topic: topic.to_string(),
            partitions,
        })
    }
}

impl ReportSource for KafkaReportSource {
    fn poll(&mut self, wait: Duration) -> Vec<ConsumerReport> {
        self.reader.poll(wait)
    }

    fn broker_end_offsets(&mut self) -> BTreeMap<i32, i64> {
        use rdkafka::consumer::Consumer;
        (0..self.partitions as i32)
            .filter_map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_millis(500))
                    .ok()
                    .map(|(_, high)| (p, high))
            })
            .collect()
    }
}

/// Drive `controller` until `stop()`: reports as they arrive, a decision every interval (each handed to
/// `on_row`), then every consumer stopped gracefully. Starts `initial_consumers` first.
pub fn run(
    controller: &mut Controller,
    source: &mut dyn ReportSource,
    actuator: &mut dyn Actuator,
    clock: &dyn Clock,
    stop: &dyn Fn() -> bool,
    on_row: &mut dyn FnMut(&DecisionRow),
) -> Result<()> {
    let start_ns = clock.now_ns();
    let secs = |ns: u64| ns.saturating_sub(start_ns) as f64 / 1e9;
    actuator.scale_to(controller.plan.initial_consumers)?;
    let interval_ns = (controller.plan.decision_interval_s * 1e9) as u64;
    let mut next = start_ns + interval_ns;
    let result = loop {
        if stop() {
            break Ok(());
        }
        let now = clock.now_ns();
        if now >= next {
            let ends = source.broker_end_offsets();
            match controller.decide(secs(clock.now_ns()), &ends, actuator) {
                Ok(row) => on_row(&row),
                Err(e) => break Err(e),
            }
            next += interval_ns;
            continue;
        }
        let wait = Duration::from_nanos((next - now).min(200_000_000));
        for r in source.poll(wait) {
            controller.observe(r, secs(clock.now_ns()));
        }
    };
    let stopped = actuator.stop_all(Duration::from_secs(60));
    result.and(stopped)
}

/// A consumer the actuator started.
struct Slot {
    index: u32,
    pilot: Pilot,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<TaskResult>>>,
    stopping: bool,
}

/// Consumers as 1-node framework-free compute pilots (on the description's resource) that use a broker pilot's
/// brokers, each running `command` once. In the command `{consumer_index}` becomes the consumer's number (0, 1,
/// ... over the controller's life), besides everything [`crate::pilots::tasks`] replaces.
pub struct PilotActuator {
    base: RawDescription,
    command: Vec<String>,
    next_index: u32,
    slots: Vec<Slot>,
    events: Vec<String>,
    clock0: Instant,
    /// Where each consumer is placed, for a fault injector (`consumer:I` is `{consumer_index}` I).
    registry: Option<crate::ops::fault::Registry>,
}

impl PilotActuator {
    /// Place every consumer this actuator starts in `registry` (its pilot, node and process).
    pub fn with_registry(mut self, registry: crate::ops::fault::Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// `resource` and `working_directory` as in a pilot description; `broker_pilot` the Kafka pilot's id.
    pub fn new(
        resource: &str,
        working_directory: PathBuf,
        broker_pilot: &str,
        walltime_min: u32,
        command: Vec<String>,
    ) -> Result<Self> {
        if command.is_empty() {
            return Err(PilotError::invalid(
                "autoscale",
                "no consumer command given",
            ));
        }
        let base = RawDescription {
            resource: Some(resource.to_string()),
            framework: Some(FrameworkKind::None),
            nodes: Some(1),
            walltime_min: Some(walltime_min),
            working_directory: Some(working_directory),
            broker_pilot: Some(broker_pilot.to_string()),
            ..Default::default()
        };
        // Checked now, so a bad resource fails before the first scaling decision.
        base.validate("autoscale", &ProcessEnvironment)?;
        Ok(PilotActuator {
            base,
            command,
            next_index: 0,
            slots: Vec::new(),
            events: Vec::new(),
            clock0: Instant::now(),
            registry: None,
        })
    }

    /// Consumers started over the actuator's life (their `{consumer_index}`es are 0 to this, exclusive).
    pub fn started(&self) -> u32 {
        self.next_index
    }

    fn event(&mut self, what: String) {
        self.events.push(format!(
            "{:.1} s: {what}",
            self.clock0.elapsed().as_secs_f64()
        ));
    }

    fn start_one(&mut self) -> Result<()> {
        let index = self.next_index;
        self.next_index += 1;
        let t = Instant::now();
        let plan = self.base.validate("autoscale", &ProcessEnvironment)?;
        let pilot = Pilot::create(plan, &|| false)?;
        let details = pilot
            .details()
            .cloned()
            .ok_or_else(|| PilotError::invalid("autoscale", "a running pilot has no details"))?;
        let mut backend = crate::pilots::pilot::task_backend(pilot.record());
        let command: Vec<String> = self
            .command
            .iter()
            .map(|a| a.replace("{consumer_index}", &index.to_string()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let registry = self.registry.clone();
        let record = pilot.record().clone();
        let handle = std::thread::spawn(move || {
            crate::pilots::tasks::run_observed(
                &details,
                backend.as_mut(),
                NodeSelection::Own,
                1,
                &command,
                Duration::from_secs(u32::MAX as u64),
                &|| flag.load(Ordering::SeqCst),
                &|l| {
                    if let Some(r) = &registry {
                        r.place(
                            crate::ops::fault::Target {
                                role: crate::ops::fault::Role::Consumer,
                                index,
                            },
                            crate::ops::fault::Placed {
                                node: l.node.clone(),
                                process: Some(l.process.clone()),
                                pilot: record.clone(),
                            },
                        );
                    }
                },
            )
        });
        let id = pilot.id().to_string();
        self.slots.push(Slot {
            index,
            pilot,
            stop,
            handle,
            stopping: false,
        });
        self.event(format!(
            "started consumer {index} on pilot {id} ({:.2} s)",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Join the consumers whose tasks ended, cancel their pilots, and say how each ended.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.slots.len() {
            if !self.slots[i].handle.is_finished() {
                i += 1;
                continue;
            }
            let mut slot = self.slots.remove(i);
            let outcome = match slot.handle.join() {
                Ok(Ok(results)) => results
                    .iter()
                    .map(|r| match r.status {
                        Some(s) => format!("{s}"),
                        None => "stopped".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Ok(Err(e)) => format!("could not run: {e}"),
                Err(_) => "its supervisor panicked".into(),
            };
            // A consumer that ended on its own may have lost its node or job: the pilot says so (Failed with
            // the scheduler's reason) before it is cleaned up. Its job gets a few seconds to show its end.
            let mut ended = String::new();
            if !slot.stopping {
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(5) {
                    if slot.pilot.poll().is_terminal() {
                        ended = format!(
                            "; pilot {} {:?}: {}",
                            slot.pilot.id(),
                            slot.pilot.state(),
                            slot.pilot.record().reason.clone().unwrap_or_default()
                        );
                        break;
                    }
                    if !matches!(
                        slot.pilot.record().plan.resource,
                        crate::pilots::description::ResourceUrl::Slurm { .. }
                    ) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            slot.pilot.cancel();
            let what = if slot.stopping {
                format!("consumer {} stopped ({outcome})", slot.index)
            } else {
                format!(
                    "consumer {} exited on its own ({outcome}){ended}",
                    slot.index
                )
            };
            self.event(what);
        }
    }
}

impl Actuator for PilotActuator {
    fn running(&mut self) -> u32 {
        self.reap();
        self.slots.iter().filter(|s| !s.stopping).count() as u32
    }

    fn scale_to(&mut self, n: u32) -> Result<()> {
        let mut active = self.running();
        while active < n {
            self.start_one()?;
            active += 1;
        }
        while active > n {
            // The newest first: the oldest consumers keep their partitions and warm caches.
            let Some(slot) = self.slots.iter_mut().rev().find(|s| !s.stopping) else {
                break;
            };
            slot.stopping = true;
            slot.stop.store(true, Ordering::SeqCst);
            let index = slot.index;
            self.event(format!("stopping consumer {index}"));
            active -= 1;
        }
        Ok(())
    }

    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    fn stop_all(&mut self, timeout: Duration) -> Result<()> {
        for s in &mut self.slots {
            s.stopping = true;
            s.stop.store(true, Ordering::SeqCst);
        }
        let t = Instant::now();
        while !self.slots.is_empty() && t.elapsed() < timeout {
            self.reap();
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.slots.is_empty() {
            Ok(())
        } else {
            Err(PilotError::invalid(
                "autoscale",
                format!(
                    "{} consumers did not stop within {} s",
                    self.slots.len(),
                    timeout.as_secs()
                ),
            ))
        }
    }
}

impl Drop for PilotActuator {
    fn drop(&mut self) {
        let _ = self.stop_all(Duration::from_secs(30));
        for s in &mut self.slots {
            s.pilot.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::telemetry::{PartitionOffsets, REPORT_VERSION};

    /// An actuator that only counts.
    #[derive(Default)]
    struct Counting {
        n: u32,
        calls: Vec<u32>,
    }

    impl Actuator for Counting {
        fn running(&mut self) -> u32 {
            self.n
        }
        fn scale_to(&mut self, n: u32) -> Result<()> {
            self.n = n;
            self.calls.push(n);
            Ok(())
        }
        fn take_events(&mut self) -> Vec<String> {
            Vec::new()
        }
        fn stop_all(&mut self, _: Duration) -> Result<()> {
            self.n = 0;
            Ok(())
        }
    }

    fn report(
        id: &str,
        seq: u64,
        high: i64,
        pos: i64,
        handled: u64,
        busy_s: f64,
    ) -> ConsumerReport {
        ConsumerReport {
            version: REPORT_VERSION,
            run_id: "r".into(),
            consumer_id: id.into(),
            group: "g".into(),
            topic: "t".into(),
            host: "h".into(),
            pid: 1,
            seq,
            time_unix_ms: 0,
            interval_s: 1.0,
            handled_msgs: handled,
            busy_s,
            received_msgs_total: 0,
            partitions: vec![PartitionOffsets {
                partition: 0,
                high_watermark: high,
                position: pos,
            }],
            leaving: false,
        }
    }

    #[test]
    fn the_controller_measures_input_from_end_offsets_and_scales_through_the_actuator() {
        let plan = AutoscaleSettings::default().validate("t").unwrap();
        let mut c = Controller::new(&plan, "g", 8);
        let mut a = Counting {
            n: 1,
            calls: vec![],
        };
        c.observe(report("a", 0, 1000, 1000, 100, 1.0), 0.0);
        let first = c.decide(0.0, &BTreeMap::new(), &mut a).unwrap();
        assert_eq!(first.action, Action::Hold);
        assert_eq!(first.reason, "measuring the input rate");
        // 5 s later: 2,000 more messages (400 msg/s), the consumer took 500 of them in 5 busy seconds.
        c.observe(report("a", 1, 3000, 1500, 500, 5.0), 5.0);
        let row = c.decide(5.0, &BTreeMap::from([(0, 1)]), &mut a).unwrap();
        assert_eq!(row.input_msgs_per_s, 400.0);
        assert_eq!(row.lag_msgs, 1500.0);
        assert_eq!(
            row.end_offset_source, "fetch-high-watermark",
            "tansu's ListOffsets 1 is ignored"
        );
        assert_eq!(row.true_rate_msgs_per_s, 100.0);
        // max(400 / (100 x 0.8), (400 + 1500 / 30) / 100) = max(5, 4.5) = 5: five drain the lag in time.
        assert_eq!((row.action, row.consumers_after), (Action::Up, 5));
        assert_eq!(a.calls, vec![5]);
        assert_eq!(row.reporting_consumers, 1);
    }

    #[test]
    fn a_step_within_the_interval_is_sized_by_the_rate_after_it() {
        let plan = AutoscaleSettings::default().validate("t").unwrap();
        let mut c = Controller::new(&plan, "g", 8);
        let mut a = Counting {
            n: 1,
            calls: vec![],
        };
        c.observe(report("a", 0, 1000, 1000, 100, 1.0), 0.0);
        c.decide(0.0, &BTreeMap::new(), &mut a).unwrap();
        // 100 msg/s for 2 s, then 400 msg/s for 3 s: 1,400 in 5 s is 280 msg/s on average.
        let mut high = 1000;
        for k in 1..=20 {
            let t = k as f64 * 0.25;
            high += if t <= 2.0 { 25 } else { 100 };
            c.observe(report("a", k, high, 1000 + 25 * k as i64, 5, 0.05), t);
        }
        let row = c.decide(5.0, &BTreeMap::new(), &mut a).unwrap();
        assert!((row.input_msgs_per_s - 400.0).abs() < 1.0, "{row:?}");
        // A steady rate keeps the whole interval's average.
        let mut c = Controller::new(&plan, "g", 8);
        c.observe(report("a", 0, 0, 0, 0, 0.0), 0.0);
        c.decide(0.0, &BTreeMap::new(), &mut a).unwrap();
        for k in 1..=20 {
            c.observe(report("a", k, 50 * k as i64, 0, 0, 0.0), k as f64 * 0.25);
        }
        let row = c.decide(5.0, &BTreeMap::new(), &mut a).unwrap();
        assert_eq!(row.input_msgs_per_s, 200.0);
    }

    #[test]
    fn settings_are_checked_with_their_keys() {
        for (s, key, want) in [
            (
                AutoscaleSettings {
                    target_utilisation: Some(1.5),
                    ..Default::default()
                },
                "target_utilisation",
                "(0, 1]",
            ),
            (
                AutoscaleSettings {
                    min_consumers: Some(0),
                    ..Default::default()
                },
                "min_consumers",
                "at least 1",
            ),
            (
                AutoscaleSettings {
                    min_consumers: Some(3),
                    max_consumers: Some(2),
                    ..Default::default()
                },
                "max_consumers",
                "min_consumers (3)",
            ),
            (
                AutoscaleSettings {
                    initial_consumers: Some(9),
                    ..Default::default()
                },
                "initial_consumers",
                "1..=8",
            ),
            (
                AutoscaleSettings {
                    decision_interval_s: Some(0.0),
                    ..Default::default()
                },
                "decision_interval_s",
                "positive",
            ),
            (
                AutoscaleSettings {
                    catch_up_s: Some(f64::INFINITY),
                    ..Default::default()
                },
                "catch_up_s",
                "at most 1e6",
            ),
        ] {
            let e = s.validate("t").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = AutoscaleSettings::from_toml("decision_interval = 5\n", "exp.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("decision_interval"), "{e}");
    }
}
