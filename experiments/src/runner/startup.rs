//! A start-up run (the paper's Figure 6): how long a framework pilot takes from submit to ready.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use pilot_core::pilots::description::ProcessEnvironment;

use super::plan::{details, framework_plan, start};
use super::{RunError, RunOutcome};
use crate::results::RunProvenance;
use crate::spec::Point;

/// A start-up run (the paper's Figure 6): the layout's framework pilot on `framework_nodes` nodes, its submit to
/// ready time, then cancelled (and the time that took).
pub(crate) fn startup_run(
    point: &Point,
    dir: &Path,
    shutdown: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let mut pilot = start(framework_plan(point, dir, &ProcessEnvironment)?, shutdown)?;
    let d = details(&pilot)?;
    let t = Instant::now();
    pilot.cancel();
    let stop_s = t.elapsed().as_secs_f64();
    Ok(RunOutcome {
        metrics: vec![
            ("framework_nodes", point.layout.framework_nodes as f64),
            ("framework_startup_s", d.startup_s.unwrap_or(f64::NAN)),
            ("framework_stop_s", stop_s),
        ],
        incomplete_reason: String::new(),
        faults: String::new(),
        provenance: RunProvenance {
            resource: d.resource.clone(),
            pilots: vec![d.id.clone()],
            job_ids: [d.job_id.clone()]
                .into_iter()
                .filter(|j| !j.is_empty())
                .collect(),
            nodes: d
                .nodes
                .iter()
                .map(|n| format!("{}: {} ({}, {})", d.id, n.name, n.address, n.role.name()))
                .collect(),
            ..Default::default()
        },
    })
}
