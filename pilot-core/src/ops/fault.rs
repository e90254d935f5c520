//! Faults injected on purpose: a schedule of events in a running pipeline and what each did.
//!
//! A [`Fault`] is checked from a [`RawFault`] (an experiment file's `[[faults]]` entry, or `pilot fault`'s flags):
//! at `at_s` seconds into a run, `action` on `target`:
//!
//! - `kill` (SIGKILL) or `stop` (SIGSTOP, then SIGCONT after `for_s`) a broker, producer or consumer process;
//! - `cancel` the pilot that runs the target (the processing pilot of a static run holds every consumer);
//! - `node-down` / `node-drain` the SLURM node under the target (`scontrol update nodename=N state=down|drain
//!   reason=...`), `scancel` the target's SLURM job;
//! - `slow` a consumer: its emulated cost per message becomes `cost_ms_per_message` (MASA's control file).
//!
//! [`run_schedule`] plays a schedule against [`FaultTargets`] (the experiment runner's processes and pilots; tests
//! inject their own) on an injected [`Clock`], and hands each applied step to a callback as a [`FaultEvent`] (a
//! CSV row of the run's `faults.csv`, and an event in its timeline). [`crate::pilots::process::signal_process`] is the local way to send a
//! signal by pid (checked against the process's start time, so a reused pid is never hit).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::contract::clock::Clock;
use crate::contract::config::SettingError;
use crate::pilots::backend::NodeState;
use crate::pilots::process::Signal;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// SIGKILL the target process.
    Kill,
    /// SIGSTOP the target process, SIGCONT after `for_s`.
    Stop,
    /// Cancel the pilot that runs the target.
    Cancel,
    /// Mark the target's SLURM node down (SLURM ends the jobs on it).
    NodeDown,
    /// Drain the target's SLURM node (running jobs go on, no new ones start there).
    NodeDrain,
    /// `scancel` the SLURM job that runs the target.
    Scancel,
    /// Raise a consumer's emulated cost per message.
    Slow,
    /// Every consumer but the target leaves its group and joins again. A tansu 0.6.0 group whose leader died
    /// keeps the dead leader (its Formed state drops the member, not the leadership), so the survivors never get
    /// the dead one's partitions; a member leaving clears it. The experiment runner adds this step by itself
    /// after a fault takes a consumer down on tansu.
    Rejoin,
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Stop => "stop",
            FaultAction::Cancel => "cancel",
            FaultAction::NodeDown => "node-down",
            FaultAction::NodeDrain => "node-drain",
            FaultAction::Scancel => "scancel",
            FaultAction::Slow => "slow",
            FaultAction::Rejoin => "rejoin",
        }
    }

    /// Whether the action needs a SLURM resource.
    pub fn needs_slurm(self) -> bool {
        matches!(
            self,
            FaultAction::NodeDown | FaultAction::NodeDrain | FaultAction::Scancel
        )
    }
}

/// Which part of a pipeline a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Broker,
    Producer,
    Consumer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Broker => "broker",
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// A process of a pipeline: `broker`, `producer:2`, `consumer:0` (the index is the process index; 0 when left
/// out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub role: Role,
    pub index: u32,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role.as_str(), self.index)
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (role, index) = match s.split_once(':') {
            Some((r, i)) => (
                r,
                i.parse::<u32>()
                    .map_err(|_| format!("`{s}`: the index after `:` must be a process number"))?,
            ),
            None => (s, 0),
        };
        let role = match role {
            "broker" => Role::Broker,
            "producer" => Role::Producer,
            "consumer" => Role::Consumer,
            other => {
                return Err(format!(
                    "`{other}` is not a target (broker, producer or consumer, with :INDEX)"
                ))
            }
        };
        Ok(Target { role, index })
    }
}

/// A fault as written: `{ at_s = 5, action = "kill", target = "consumer:1" }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// Seconds after the producers start.
    pub at_s: Option<f64>,
    pub action: Option<FaultAction>,
    /// `broker[:I]`, `producer[:I]` or `consumer[:I]`.
    pub target: Option<String>,
    /// `stop`: seconds until SIGCONT.
    pub for_s: Option<f64>,
    /// `slow`: the consumer's new emulated cost per message, ms.
    pub cost_ms_per_message: Option<f64>,
    /// `node-down` / `node-drain`: the reason SLURM records (default "pilot-streaming fault injection").
    pub reason: Option<String>,
}

/// A checked fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub at_s: f64,
    pub action: FaultAction,
    pub target: Target,
    /// `stop`: seconds until SIGCONT.
    pub for_s: f64,
    /// `slow`: ms per message.
    pub cost_ms_per_message: f64,
    /// `node-down` / `node-drain`.
    pub reason: String,
}

/// The longest a fault may wait or last (a day): anything longer is a typo, not a plan.
const MAX_S: f64 = 86_400.0;

impl RawFault {
    /// Check every field; errors name the key (`faults[N].key` in the caller's words).
    pub fn validate(&self) -> Result<Fault, SettingError> {
        let at_s = self.at_s.ok_or_else(|| {
            SettingError::key("at_s", "a fault needs at_s (seconds into the run)")
        })?;
        if !(0.0..=MAX_S).contains(&at_s) {
            return Err(SettingError::key(
                "at_s",
                format!("at_s must be in [0, {MAX_S}] s (got {at_s})"),
            ));
        }
        let action = self.action.ok_or_else(|| {
            SettingError::key(
                "action",
                "a fault needs an action (kill, stop, cancel, node-down, node-drain, scancel, slow)",
            )
        })?;
        let target: Target = self
            .target
            .as_deref()
            .ok_or_else(|| {
                SettingError::key(
                    "target",
                    "a fault needs a target (broker, producer:I or consumer:I)",
                )
            })?
            .parse()
            .map_err(|e: String| SettingError::key("target", e))?;
        let only = |key: &str, set: bool, for_action: FaultAction| -> Result<(), SettingError> {
            if set && action != for_action {
                return Err(SettingError::key(
                    key,
                    format!(
                        "{key} applies to `{}` faults, not `{}`",
                        for_action.as_str(),
                        action.as_str()
                    ),
                ));
            }
            Ok(())
        };
        only("for_s", self.for_s.is_some(), FaultAction::Stop)?;
        only(
            "cost_ms_per_message",
            self.cost_ms_per_message.is_some(),
            FaultAction::Slow,
        )?;
        if self.reason.is_some()
            && !matches!(action, FaultAction::NodeDown | FaultAction::NodeDrain)
        {
            return Err(SettingError::key(
                "reason",
                "reason applies to node-down and node-drain faults",
            ));
        }
        let for_s = match (action, self.for_s) {
            (FaultAction::Stop, None) => {
                return Err(SettingError::key(
                    "for_s",
                    "a stop fault needs for_s (seconds until the process is continued)",
                ))
            }
            (FaultAction::Stop, Some(s)) if !(s > 0.0 && s <= MAX_S) => {
                return Err(SettingError::key(
                    "for_s",
                    format!("for_s must be in (0, {MAX_S}] s (got {s})"),
                ))
            }
            (_, s) => s.unwrap_or(0.0),
        };
        let cost_ms_per_message = match (action, self.cost_ms_per_message) {
            (FaultAction::Slow, None) => {
                return Err(SettingError::key(
                    "cost_ms_per_message",
                    "a slow fault needs cost_ms_per_message (the consumer's new cost)",
                ))
            }
            (FaultAction::Slow, Some(c)) if !(0.0..=60_000.0).contains(&c) => {
                return Err(SettingError::key(
                    "cost_ms_per_message",
                    format!("cost_ms_per_message must be in [0, 60000] ms (got {c})"),
                ))
            }
            (_, c) => c.unwrap_or(0.0),
        };
        if matches!(action, FaultAction::Slow | FaultAction::Rejoin)
            && target.role != Role::Consumer
        {
            return Err(SettingError::key(
                "target",
                format!("{} applies to consumers, not {target}", action.as_str()),
            ));
        }
        let reason = self
            .reason
            .clone()
            .unwrap_or_else(|| "pilot-streaming fault injection".into());
        if reason.is_empty() || reason.contains(['\n', '"', '\'']) {
            return Err(SettingError::key(
                "reason",
                "reason must be one line without quotes",
            ));
        }
        Ok(Fault {
            at_s,
            action,
            target,
            for_s,
            cost_ms_per_message,
            reason,
        })
    }
}

impl Fault {
    /// "stop broker:0 at 5 s for 10 s".
    pub fn describe(&self) -> String {
        let extra = match self.action {
            FaultAction::Stop => format!(" for {} s", self.for_s),
            FaultAction::Slow => format!(" to {} ms per message", self.cost_ms_per_message),
            _ => String::new(),
        };
        format!(
            "{} {} at {} s{extra}",
            self.action.as_str(),
            self.target,
            self.at_s
        )
    }

    /// When the fault's effect ends, seconds into the run (a stop's SIGCONT; else when it happens).
    pub fn end_s(&self) -> f64 {
        self.at_s + self.for_s
    }
}

/// One thing done to a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Signal(Signal),
    Cancel,
    NodeState(NodeState),
    Scancel,
    Slow(f64),
    Rejoin,
}

/// Why a fault's step could not be applied (recorded as the step's outcome; the schedule goes on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// Nothing runs where the step was aimed (never started there, or already ended).
    #[error("{0}")]
    NotRunning(String),
    /// The step cannot reach this target (a SLURM step on a local pilot, `slow` on a broker, ...).
    #[error("{0}")]
    Unreachable(String),
    /// The target's backend (kill, scancel, scontrol) or the consumer's control file failed.
    #[error("{0}")]
    Failed(String),
}

/// Where the faults land: the running pipeline's processes, pilots and nodes. Each call says what it did
/// (`Ok`: a detail for the record, such as the pid or node) or why it could not.
pub trait FaultTargets {
    fn apply(&mut self, target: &Target, step: Step, reason: &str) -> Result<String, FaultError>;
}

/// One step of a schedule as it happened: a row of `faults.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// When it was applied, ms since the Unix epoch.
    pub time_unix_ms: u64,
    /// Seconds into the run when it was applied.
    pub t_s: f64,
    /// Seconds into the run it was planned for.
    pub planned_s: f64,
    /// `kill`, `stop`, `cont` (a stop's end), `cancel`, `node-down`, `node-drain`, `scancel`, `slow`.
    pub step: String,
    /// `consumer:1` and the like.
    pub target: String,
    /// `applied` or `failed`.
    pub outcome: String,
    /// What was hit (pid, node, job), or why it failed.
    pub detail: String,
}

impl FaultEvent {
    /// "kill consumer:1 (pid 123)" for a timeline.
    pub fn summary(&self) -> String {
        if self.outcome == "applied" {
            format!("{} {} ({})", self.step, self.target, self.detail)
        } else {
            format!("{} {} failed: {}", self.step, self.target, self.detail)
        }
    }
}

/// The steps of a schedule in time order: `(seconds into the run, fault index, step name, step)`; a stop is two
/// steps (SIGSTOP, then SIGCONT `for_s` later).
pub fn steps(faults: &[Fault]) -> Vec<(f64, usize, &'static str, Step)> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        match f.action {
            FaultAction::Kill => out.push((f.at_s, i, "kill", Step::Signal(Signal::Kill))),
            FaultAction::Stop => {
                out.push((f.at_s, i, "stop", Step::Signal(Signal::Stop)));
                out.push((f.end_s(), i, "cont", Step::Signal(Signal::Cont)));
            }
            FaultAction::Cancel => out.push((f.at_s, i, "cancel", Step::Cancel)),
            FaultAction::NodeDown => {
                out.push((f.at_s, i, "node-down", Step::NodeState(NodeState::Down)))
            }
            FaultAction::NodeDrain => {
                out.push((f.at_s, i, "node-drain", Step::NodeState(NodeState::Drain)))
            }
            FaultAction::Scancel => out.push((f.at_s, i, "scancel", Step::Scancel)),
            FaultAction::Slow => out.push((f.at_s, i, "slow", Step::Slow(f.cost_ms_per_message))),
            FaultAction::Rejoin => out.push((f.at_s, i, "rejoin", Step::Rejoin)),
        }
    }
    // Stable: steps at the same time keep the file's order.
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Play `faults` from `start_ns` (the clock's time of second 0) until every step is applied or `stop()`; each
/// applied (or failed) step goes to `on_event`. A stop whose SIGCONT is still due when `stop()` turns true is
/// continued at once: a fault never leaves a process stopped behind it.
pub fn run_schedule(
    faults: &[Fault],
    clock: &dyn Clock,
    start_ns: u64,
    targets: &mut dyn FaultTargets,
    stop: &dyn Fn() -> bool,
    on_event: &mut dyn FnMut(FaultEvent),
) {
    let plan = steps(faults);
    let mut stopped: Vec<Target> = Vec::new();
    let elapsed = |clock: &dyn Clock| clock.now_ns().saturating_sub(start_ns) as f64 / 1e9;
    let mut apply = |at: f64, name: &str, target: Target, step: Step, reason: &str| {
        let r = targets.apply(&target, step, reason);
        on_event(FaultEvent {
            time_unix_ms: clock.now_ns() / 1_000_000,
            t_s: elapsed(clock),
            planned_s: at,
            step: name.to_string(),
            target: target.to_string(),
            outcome: if r.is_ok() { "applied" } else { "failed" }.into(),
            detail: r.unwrap_or_else(|e| e.to_string()),
        });
    };
    for (at, i, name, step) in plan {
        let f = &faults[i];
        let due = start_ns + (at * 1e9) as u64;
        // Sleep in short slices so a stop request is seen.
        while clock.now_ns() < due && !stop() {
            clock.sleep_until_ns(due.min(clock.now_ns() + 100_000_000));
        }
        if stop() {
            break;
        }
        apply(at, name, f.target, step, &f.reason);
        match step {
            Step::Signal(Signal::Stop) => stopped.push(f.target),
            Step::Signal(Signal::Cont) => stopped.retain(|t| *t != f.target),
            _ => {}
        }
    }
    for t in stopped {
        apply(elapsed(clock), "cont", t, Step::Signal(Signal::Cont), "");
    }
}

/// Where one target runs: its node, its process (when it is one), and the record of the pilot that holds it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub node: String,
    pub process: Option<crate::pilots::process::ProcessRef>,
    pub pilot: crate::pilots::record::PilotRecord,
}

/// The targets of a running pipeline as they start (the runner's tasks, the autoscaler's pilots, the broker
/// pilot's brokers), shared by whoever starts them and the fault injector.
#[derive(Debug, Clone, Default)]
pub struct Registry(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<Target, Placed>>>);

impl Registry {
    /// Record (or replace) where `target` runs.
    pub fn place(&self, target: Target, placed: Placed) {
        self.0.lock().expect("registry lock").insert(target, placed);
    }

    pub fn get(&self, target: &Target) -> Option<Placed> {
        self.0.lock().expect("registry lock").get(target).cloned()
    }

    /// Everything placed.
    pub fn all(&self) -> Vec<(Target, Placed)> {
        self.0
            .lock()
            .expect("registry lock")
            .iter()
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    }

    /// Everything placed on the pilot `pilot_id`.
    pub fn on_pilot(&self, pilot_id: &str) -> Vec<(Target, Placed)> {
        self.0
            .lock()
            .expect("registry lock")
            .iter()
            .filter(|(_, p)| p.pilot.id == pilot_id)
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    }

    /// Every broker of `details` (a Kafka pilot's, started by `record`'s pilot) as `broker:I`.
    pub fn place_brokers(&self, record: &crate::pilots::record::PilotRecord) {
        let Some(k) = record.details.as_ref().and_then(|d| d.framework.kafka()) else {
            return;
        };
        for (i, b) in k
            .brokers
            .iter()
            .filter(|b| b.pilot_id == record.id)
            .enumerate()
        {
            self.place(
                Target {
                    role: Role::Broker,
                    index: i as u32,
                },
                Placed {
                    node: b.node.clone(),
                    process: b.process.clone(),
                    pilot: record.clone(),
                },
            );
        }
    }
}

/// The registry's targets, reached the way their resource reaches them: signals by pid locally and through
/// `scancel --signal` to the step on SLURM; `cancel` ends the target's pilot's processes (SIGTERM, as a pilot
/// cancel does; on SLURM `scancel` of its job); node states through `scontrol`. `slow` is the caller's (MASA's
/// control file): an error here.
impl FaultTargets for Registry {
    fn apply(&mut self, target: &Target, step: Step, reason: &str) -> Result<String, FaultError> {
        let placed = self.get(target).ok_or_else(|| {
            FaultError::NotRunning(format!("{target} is not running (nothing placed there)"))
        })?;
        // The pilot's own backend reaches it: local processes by pid, SLURM through the scheduler.
        let mut backend = crate::pilots::pilot::task_backend(&placed.pilot);
        fn on<T>(r: crate::error::Result<T>) -> Result<T, FaultError> {
            r.map_err(|e| FaultError::Failed(e.to_string()))
        }
        match step {
            Step::Signal(sig) => {
                let p = placed.process.as_ref().ok_or_else(|| {
                    FaultError::Unreachable(format!("{target} is not a process this run started"))
                })?;
                on(backend.signal(p, sig)).map(|d| format!("{d} on {}", placed.node))
            }
            Step::Cancel => match on(backend.cancel_job())? {
                Some(job) => Ok(format!("pilot {}: {job} cancelled", placed.pilot.id)),
                // No job (local): the pilot's processes end as a cancel ends them, SIGTERM.
                None => {
                    let mut hit = Vec::new();
                    for (t, p) in self.on_pilot(&placed.pilot.id) {
                        if let Some(r) = &p.process {
                            if crate::pilots::process::same_process_alive(r.pid, r.start_ticks) {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(r.pid as i32),
                                    nix::sys::signal::Signal::SIGTERM,
                                );
                                hit.push(format!("{t} (pid {})", r.pid));
                            }
                        }
                    }
                    Ok(format!(
                        "pilot {}: SIGTERM to {}",
                        placed.pilot.id,
                        if hit.is_empty() {
                            "nothing left running".into()
                        } else {
                            hit.join(", ")
                        }
                    ))
                }
            },
            Step::NodeState(state) => on(backend.set_node_state(&placed.node, state, reason)),
            Step::Scancel => on(backend.cancel_job())?.ok_or_else(|| {
                FaultError::Unreachable(format!(
                    "{target} runs on {}, which has no jobs to scancel",
                    placed.pilot.plan.resource
                ))
            }),
            Step::Slow(_) | Step::Rejoin => Err(FaultError::Unreachable(format!(
                "{target}: slow and rejoin reach consumers through their control files"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::clock::ManualClock;

    fn fault(text: &str) -> Result<Fault, String> {
        toml::from_str::<RawFault>(text)
            .map_err(|e| e.message().to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn faults_are_checked_with_the_key_they_break() {
        let f = fault("at_s = 5\naction = \"stop\"\ntarget = \"broker\"\nfor_s = 10\n").unwrap();
        assert_eq!(
            f.target,
            Target {
                role: Role::Broker,
                index: 0
            }
        );
        assert_eq!(f.describe(), "stop broker:0 at 5 s for 10 s");
        assert_eq!(f.end_s(), 15.0);
        let f = fault(
            "at_s = 1\naction = \"slow\"\ntarget = \"consumer:2\"\ncost_ms_per_message = 20\n",
        )
        .unwrap();
        assert_eq!(f.target.index, 2);
        for (text, want) in [
            ("action = \"kill\"\ntarget = \"broker\"\n", "at_s"),
            (
                "at_s = -1\naction = \"kill\"\ntarget = \"broker\"\n",
                "at_s must be in",
            ),
            (
                "at_s = 1\naction = \"kill\"\ntarget = \"brokers\"\n",
                "`brokers` is not a target",
            ),
            (
                "at_s = 1\naction = \"kill\"\ntarget = \"consumer:x\"\n",
                "process number",
            ),
            (
                "at_s = 1\naction = \"stop\"\ntarget = \"broker\"\n",
                "needs for_s",
            ),
            (
                "at_s = 1\naction = \"stop\"\ntarget = \"broker\"\nfor_s = 0\n",
                "for_s must be in",
            ),
            (
                "at_s = 1\naction = \"kill\"\ntarget = \"broker\"\nfor_s = 3\n",
                "for_s applies to `stop`",
            ),
            (
                "at_s = 1\naction = \"slow\"\ntarget = \"producer\"\ncost_ms_per_message = 3\n",
                "slow applies to consumers",
            ),
            (
                "at_s = 1\naction = \"slow\"\ntarget = \"consumer\"\n",
                "needs cost_ms_per_message",
            ),
            (
                "at_s = 1\naction = \"kill\"\ntarget = \"broker\"\nreason = \"x\"\n",
                "reason applies",
            ),
            (
                "at_s = 1\naction = \"node-down\"\ntarget = \"consumer\"\nreason = \"a\\\"b\"\n",
                "without quotes",
            ),
            (
                "at_s = 1\naction = \"explode\"\ntarget = \"broker\"\n",
                "unknown variant",
            ),
            (
                "at_s = 1\naction = \"kill\"\ntarget = \"broker\"\nwhen = 3\n",
                "unknown field",
            ),
        ] {
            let e = fault(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(FaultAction::NodeDown.needs_slurm() && !FaultAction::Kill.needs_slurm());
    }

    /// Records what it was asked to do, failing on broker targets.
    struct Recorder {
        clock: std::sync::Arc<ManualClock>,
        seen: Vec<(u64, Target, Step)>,
    }
    impl FaultTargets for Recorder {
        fn apply(&mut self, target: &Target, step: Step, _: &str) -> Result<String, FaultError> {
            self.seen
                .push((self.clock.now_ns() / 1_000_000, *target, step));
            if target.role == Role::Producer {
                Err(FaultError::NotRunning("no such producer".into()))
            } else {
                Ok("pid 1".into())
            }
        }
    }

    #[test]
    fn a_schedule_plays_in_time_order_and_never_leaves_a_process_stopped() {
        let faults: Vec<Fault> = [
            "at_s = 3\naction = \"kill\"\ntarget = \"consumer:1\"\n",
            "at_s = 1\naction = \"stop\"\ntarget = \"broker\"\nfor_s = 4\n",
            "at_s = 2\naction = \"kill\"\ntarget = \"producer\"\n",
        ]
        .iter()
        .map(|t| fault(t).unwrap())
        .collect();
        let clock = std::sync::Arc::new(ManualClock::new(1_000_000_000));
        let mut r = Recorder {
            clock: clock.clone(),
            seen: Vec::new(),
        };
        let mut events = Vec::new();
        run_schedule(
            &faults,
            clock.as_ref(),
            1_000_000_000,
            &mut r,
            &|| false,
            &mut |e| events.push(e),
        );
        let broker = Target {
            role: Role::Broker,
            index: 0,
        };
        let times: Vec<(u64, Target)> = r.seen.iter().map(|(t, g, _)| (*t, *g)).collect();
        assert_eq!(
            times,
            vec![
                (2000, broker),
                (
                    3000,
                    Target {
                        role: Role::Producer,
                        index: 0
                    }
                ),
                (
                    4000,
                    Target {
                        role: Role::Consumer,
                        index: 1
                    }
                ),
                (6000, broker),
            ]
        );
        assert_eq!(r.seen[3].2, Step::Signal(Signal::Cont));
        let steps: Vec<&str> = events.iter().map(|e| e.step.as_str()).collect();
        assert_eq!(steps, ["stop", "kill", "kill", "cont"]);
        assert_eq!(events[1].outcome, "failed");
        assert_eq!(
            events[1].summary(),
            "kill producer:0 failed: no such producer"
        );
        assert_eq!(events[0].t_s, 1.0);

        // Stopped early: the stopped broker is continued at once, later steps never happen.
        let clock = std::sync::Arc::new(ManualClock::new(0));
        let mut r = Recorder {
            clock: clock.clone(),
            seen: Vec::new(),
        };
        let c2 = clock.clone();
        run_schedule(
            &faults,
            clock.as_ref(),
            0,
            &mut r,
            &move || c2.now_ns() >= 2_500_000_000,
            &mut |_| {},
        );
        let steps: Vec<Step> = r.seen.iter().map(|s| s.2).collect();
        assert_eq!(
            steps,
            vec![
                Step::Signal(Signal::Stop),
                Step::Signal(Signal::Kill),
                Step::Signal(Signal::Cont)
            ]
        );
    }
}
