//! `strategy = "adaptive"`: the points are run one at a time as [`crate::model::adaptive::choose_runs`] picks
//! them (each with its warm-ups and repetitions, recorded like any run), every choice and its reason written to
//! the manifest as it is made. A resumed sweep takes the manifest's choices first and goes on from there.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{execute, runs_of, Executor, Results, RunError, RunOptions, Summary};
use crate::model::adaptive::{choose_runs, ChosenRun, Measure, StopAt};
use crate::model::analysis::is_rate;
use crate::model::plan::AdaptivePlan;
use crate::results::{AdaptiveChoice, RunStatus};
use crate::spec::Experiment;

/// Why the adaptive loop ended early.
enum Stop {
    Interrupted,
    Failed(RunError),
}

pub(super) fn run(
    exp: &Experiment,
    plan: &AdaptivePlan,
    root: &std::path::Path,
    executor: &mut dyn Executor,
    options: &RunOptions,
    shutdown: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, RunError> {
    let mut results = Results::open(exp, root, executor, options, progress)?;
    let mut summary = Summary {
        dir: results.dir.clone(),
        ..Default::default()
    };
    let prior: Vec<ChosenRun> = results
        .manifest
        .adaptive
        .iter()
        .filter_map(|c| {
            let candidate = exp.points.iter().position(|p| p.id == c.point)?;
            Some(ChosenRun {
                candidate,
                reason: c.reason.clone(),
                value: c.value,
            })
        })
        .collect();
    if !prior.is_empty() {
        progress(&format!(
            "resuming an adaptive sweep: {} points chosen earlier",
            prior.len()
        ));
    }
    progress(&plan.describe());
    let mut prior = prior;
    if options.rerun_failed {
        // Earlier choices without a value: their failed runs again, and the value they now give.
        for c in prior.iter_mut().filter(|c| c.value.is_none()) {
            let point = &exp.points[c.candidate];
            match run_point(
                exp,
                c.candidate,
                &mut results,
                executor,
                options,
                shutdown,
                &mut summary,
                progress,
            ) {
                Ok(()) => {}
                Err(Stop::Interrupted) => {
                    summary.interrupted = true;
                    break;
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
            c.value = point_value(&results, &point.id, &plan.metric);
            if let Some(m) = results
                .manifest
                .adaptive
                .iter_mut()
                .find(|a| a.point == point.id)
            {
                m.value = c.value;
            }
        }
    }
    let outcome = if summary.interrupted {
        Err(Stop::Interrupted)
    } else {
        let mut measure = |i: usize, why: &str| -> Result<Option<f64>, Stop> {
            let point = &exp.points[i];
            progress(&format!(
                "adaptive choice {}: point {}/{} {} ({why})",
                results.manifest.adaptive.len() + 1,
                point.index + 1,
                exp.points.len(),
                point.label()
            ));
            run_point(
                exp,
                i,
                &mut results,
                executor,
                options,
                shutdown,
                &mut summary,
                progress,
            )?;
            let value = point_value(&results, &point.id, &plan.metric);
            results.manifest.adaptive.push(AdaptiveChoice {
                point: point.id.clone(),
                reason: why.to_string(),
                value,
            });
            results
                .manifest
                .write_atomic(&results.manifest_path)
                .map_err(|e| Stop::Failed(e.into()))?;
            Ok(value)
        };
        by_group(plan, prior, &mut measure)
    };
    match outcome {
        Ok(runs) => progress(&format!(
            "adaptive: {} of {} points chosen (budget {})",
            runs.len(),
            exp.points.len(),
            plan.stop.budget
        )),
        Err(Stop::Interrupted) => summary.interrupted = true,
        Err(Stop::Failed(e)) => return Err(e),
    }
    let chosen: Vec<&crate::spec::Point> = results
        .manifest
        .adaptive
        .iter()
        .filter_map(|c| exp.points.iter().find(|p| p.id == c.point))
        .collect();
    let planned: Vec<_> = chosen.iter().flat_map(|&p| runs_of(exp, p)).collect();
    results.finish(&planned, summary.interrupted)?;
    Ok(summary)
}

/// Each group's design in turn, over its own points and share of the budget, after its earlier choices; the
/// runs of every group (indices into the plan's points).
fn by_group(
    plan: &AdaptivePlan,
    prior: Vec<ChosenRun>,
    measure: Measure<'_, Stop>,
) -> Result<Vec<ChosenRun>, Stop> {
    let stop = StopAt {
        budget: plan.group_budget(),
        ..plan.stop
    };
    let mut all = Vec::new();
    for (label, idx) in &plan.groups {
        let local = |global: usize| idx.iter().position(|&i| i == global);
        let sub: Vec<(f64, f64)> = idx.iter().map(|&i| plan.candidates[i]).collect();
        let earlier: Vec<ChosenRun> = prior
            .iter()
            .filter_map(|c| {
                local(c.candidate).map(|l| ChosenRun {
                    candidate: l,
                    ..c.clone()
                })
            })
            .collect();
        let named = plan.groups.len() > 1;
        let runs = choose_runs(
            &sub,
            plan.goal,
            is_rate(&plan.metric),
            stop,
            earlier,
            &mut |l, why| {
                if named {
                    measure(idx[l], &format!("{label}: {why}"))
                } else {
                    measure(idx[l], why)
                }
            },
        )?;
        all.extend(runs.into_iter().map(|r| ChosenRun {
            candidate: idx[r.candidate],
            ..r
        }));
    }
    Ok(all)
}

/// Make point `i`'s runs that are not recorded yet (or failed, with `rerun_failed`).
#[allow(clippy::too_many_arguments)]
fn run_point(
    exp: &Experiment,
    i: usize,
    results: &mut Results,
    executor: &mut dyn Executor,
    options: &RunOptions,
    shutdown: &AtomicBool,
    summary: &mut Summary,
    progress: &mut dyn FnMut(&str),
) -> Result<(), Stop> {
    let point = &exp.points[i];
    for (_, rep, warmup) in runs_of(exp, point) {
        match results.table.status(&point.id, rep, warmup) {
            Some(RunStatus::Ok) => {
                summary.skipped += 1;
                continue;
            }
            Some(_) if !options.rerun_failed => {
                summary.skipped += 1;
                continue;
            }
            _ => {}
        }
        if shutdown.load(Ordering::SeqCst) {
            return Err(Stop::Interrupted);
        }
        let done =
            execute(executor, point, rep, warmup, &results.dir, shutdown).map_err(Stop::Failed)?;
        let (status, error) = results
            .record(exp, point, rep, warmup, done, shutdown)
            .map_err(Stop::Failed)?;
        summary.ran += 1;
        match status {
            RunStatus::Ok => summary.ok += 1,
            RunStatus::Incomplete => summary.incomplete += 1,
            RunStatus::Failed => summary.failed += 1,
        }
        if status != RunStatus::Ok {
            progress(&format!("  run {}: {error}", status.as_str()));
        }
    }
    if shutdown.load(Ordering::SeqCst) {
        return Err(Stop::Interrupted);
    }
    Ok(())
}

/// The metric's mean over the point's ok measured runs (None when there is none).
fn point_value(results: &Results, point: &str, metric: &str) -> Option<f64> {
    let values: Vec<f64> = results
        .table
        .numbers(metric)
        .filter(|(r, v)| {
            r.get("point").map(String::as_str) == Some(point)
                && r.get("status").map(String::as_str) == Some("ok")
                && v.is_finite()
        })
        .map(|(_, v)| v)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
