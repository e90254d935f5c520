//! A run's faults: where the point's faults land (the registry's targets, and MASA's control files for `slow` and
//! `rejoin`), and what they did. (A consumer that dies needs no help from here: MASA's group watch makes the
//! survivors rejoin where the broker keeps a dead member.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pilot_core::ops::fault::FaultError;

use crate::spec::Point;

/// A consumer's control file (`pattern` is its id, placeholders and all: MASA's `--control-file`).
pub(crate) fn control_file(run_dir: &Path, pattern: &str) -> PathBuf {
    run_dir.join(format!("control-{pattern}.toml"))
}

/// What a consumer's control file says.
#[derive(Default, Clone, Copy)]
pub(crate) struct ControlState {
    cost_ms_per_message: Option<f64>,
    rejoin: u64,
}

/// The faults' targets in a run: the registry's, and `slow` and `rejoin` through the consumers' control files.
pub(crate) struct RunTargets<'a> {
    pub registry: pilot_core::ops::fault::Registry,
    pub run_dir: &'a Path,
    pub consumer_id_pattern: &'a str,
    pub controls: BTreeMap<u32, ControlState>,
}

impl RunTargets<'_> {
    fn write_control(
        &mut self,
        index: u32,
        change: impl Fn(&mut ControlState),
    ) -> Result<PathBuf, FaultError> {
        let state = self.controls.entry(index).or_default();
        change(state);
        let id = self
            .consumer_id_pattern
            .replace("{process_index}", &index.to_string())
            .replace("{consumer_index}", &index.to_string());
        let path = control_file(self.run_dir, &id);
        let mut text = format!("rejoin = {}\n", state.rejoin);
        if let Some(ms) = state.cost_ms_per_message {
            text.push_str(&format!("cost_ms_per_message = {ms}\n"));
        }
        pilot_core::contract::files::write_atomic(&path, text.as_bytes())
            .map_err(|e| FaultError::Failed(format!("{}: {e}", path.display())))?;
        Ok(path)
    }
}

impl pilot_core::ops::fault::FaultTargets for RunTargets<'_> {
    fn apply(
        &mut self,
        target: &pilot_core::ops::fault::Target,
        step: pilot_core::ops::fault::Step,
        reason: &str,
    ) -> Result<String, FaultError> {
        match step {
            pilot_core::ops::fault::Step::Slow(ms) => {
                let path =
                    self.write_control(target.index, |c| c.cost_ms_per_message = Some(ms))?;
                Ok(format!("{ms} ms per message via {}", path.display()))
            }
            pilot_core::ops::fault::Step::Rejoin => {
                let mut told = Vec::new();
                for (t, p) in self.registry.all() {
                    let alive = p.process.as_ref().is_some_and(|r| {
                        pilot_core::pilots::process::same_process_alive(r.pid, r.start_ticks)
                    }) || !matches!(
                        p.pilot.plan.resource,
                        pilot_core::pilots::description::ResourceUrl::Local
                    );
                    if t.role == pilot_core::ops::fault::Role::Consumer && t != *target && alive {
                        self.write_control(t.index, |c| c.rejoin += 1)?;
                        told.push(t.to_string());
                    }
                }
                Ok(format!(
                    "told {} to rejoin",
                    if told.is_empty() {
                        "nobody".into()
                    } else {
                        told.join(", ")
                    }
                ))
            }
            step => self.registry.apply(target, step, reason),
        }
    }
}

/// What the faults of a run did: the events, and which targets they took down (a kill hits its process; a
/// cancel, scancel or node-down everything on the same pilot).
pub(crate) struct FaultOutcome {
    pub events: Vec<pilot_core::ops::fault::FaultEvent>,
    pub hit: std::collections::BTreeSet<pilot_core::ops::fault::Target>,
    /// Faults planned but never reached (the run ended first).
    pub unreached: Vec<String>,
}

impl FaultOutcome {
    pub fn new(
        point: &Point,
        registry: &pilot_core::ops::fault::Registry,
        events: &[pilot_core::ops::fault::FaultEvent],
    ) -> Self {
        use pilot_core::ops::fault::Target;
        let mut hit = std::collections::BTreeSet::new();
        for e in events.iter().filter(|e| e.outcome == "applied") {
            let Ok(t) = e.target.parse::<Target>() else {
                continue;
            };
            match e.step.as_str() {
                "kill" => {
                    hit.insert(t);
                }
                "cancel" | "scancel" | "node-down" => {
                    hit.insert(t);
                    if let Some(p) = registry.get(&t) {
                        hit.extend(registry.on_pilot(&p.pilot.id).into_iter().map(|(t, _)| t));
                    }
                }
                _ => {}
            }
        }
        let unreached = point
            .faults
            .iter()
            .filter(|f| {
                !events
                    .iter()
                    .any(|e| e.target == f.target.to_string() && e.planned_s == f.at_s)
            })
            .map(|f| f.describe())
            .collect();
        FaultOutcome {
            events: events.to_vec(),
            hit,
            unreached,
        }
    }

    pub fn hit(&self, role: pilot_core::ops::fault::Role, index: usize) -> bool {
        self.hit.contains(&pilot_core::ops::fault::Target {
            role,
            index: index as u32,
        })
    }

    pub fn broker_down(&self) -> bool {
        self.hit
            .iter()
            .any(|t| t.role == pilot_core::ops::fault::Role::Broker)
    }

    /// `faults.csv` in the run's directory (only when the point has faults).
    pub fn write(&self, run_dir: &Path) -> Result<(), pilot_core::contract::metrics::MetricsError> {
        if self.events.is_empty() && self.unreached.is_empty() {
            return Ok(());
        }
        let mut w = pilot_core::contract::metrics::CsvWriter::create(&run_dir.join("faults.csv"))?;
        for e in &self.events {
            w.write(e)?;
        }
        Ok(())
    }

    /// The results' `faults` column: each step as it happened, then what never happened.
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = self
            .events
            .iter()
            .map(|e| format!("{:.1} s: {}", e.t_s, e.summary()))
            .collect();
        parts.extend(
            self.unreached
                .iter()
                .map(|f| format!("{f}: not reached (the run ended first)")),
        );
        parts.join("; ")
    }
}
