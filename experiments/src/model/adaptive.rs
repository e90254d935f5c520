//! Sweeps that choose their own runs, and how well that works against a sweep that ran every point:
//!
//! - [`choose_runs`]: the adaptive loop over candidate settings with the measurement injected: for prediction,
//!   runs by optimal design until the budget is spent or the model's 90 % interval is narrow enough everywhere;
//!   for the best configuration, two design runs and then expected improvement until the budget is spent or the
//!   improvement left is under a tenth of the best (CherryPick's rule, after at least six runs). Each chosen run
//!   carries the reason it was chosen.
//! - [`replay`]: the same loop replayed on a full measured sweep (the measurement is a lookup), the model from
//!   the chosen runs scored on the held-out ones against interpolation and against as many random runs.

use std::fmt::Write;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::design::{
    features, next_expected_improvement, next_optimal, unit_coordinates, Criterion,
};
use super::forms::{fit, Form};
use super::select::{ape_pct, bootstrap, choose, interval_90, median};
use super::Obs;

/// What an adaptive sweep is after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// A model that predicts every candidate: runs by optimal design.
    Predict(Criterion),
    /// The best candidate for the metric (larger is better when `maximise`).
    Best { maximise: bool },
}

/// A run the sweep chose, why, and what it measured (None: the run failed).
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenRun {
    pub candidate: usize,
    pub reason: String,
    pub value: Option<f64>,
}

/// When an adaptive sweep stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopAt {
    /// At most this many runs.
    pub budget: usize,
    /// Prediction: stop once every candidate's 90 % interval is narrower than this fraction of its value.
    pub interval_fraction: f64,
}

/// Makes the run of a candidate (its index, and why it was chosen): the metric's value, None when it failed.
pub type Measure<'a, E> = &'a mut dyn FnMut(usize, &str) -> Result<Option<f64>, E>;

/// Fewest runs before a stop rule other than the budget may end the sweep.
const MIN_RUNS: usize = 6;

/// Choose and make runs among `candidates` (count, size) until `stop`, after the `prior` ones (a resumed sweep's);
/// `measure` makes one (an error ends the sweep with it; the runs made so far are in the caller's records).
/// `rate`: the metric is a rate.
pub fn choose_runs<E>(
    candidates: &[(f64, f64)],
    goal: Goal,
    rate: bool,
    stop: StopAt,
    prior: Vec<ChosenRun>,
    measure: Measure<'_, E>,
) -> Result<Vec<ChosenRun>, E> {
    let f = features(candidates);
    let coords = unit_coordinates(candidates);
    let mut runs: Vec<ChosenRun> = prior;
    while runs.len() < stop.budget.min(candidates.len()) {
        let chosen: Vec<usize> = runs.iter().map(|r| r.candidate).collect();
        let measured: Vec<(usize, f64)> = runs
            .iter()
            .filter_map(|r| r.value.map(|v| (r.candidate, v)))
            .collect();
        let next = match goal {
            Goal::Best { maximise } => {
                match next_expected_improvement(&coords, &measured, maximise) {
                    Some((i, ei)) => {
                        // CherryPick's rule: stop once less than 10 % improvement is expected.
                        if runs.len() >= MIN_RUNS && ei < 0.1 {
                            break;
                        }
                        Some((
                            i,
                            format!(
                                "expected improvement {:.1} % over the best so far",
                                ei * 100.0
                            ),
                        ))
                    }
                    None => next_optimal(&f, &chosen, Criterion::D)
                        .map(|(i, s)| (i, format!("D-optimal start (score {s:.3e})"))),
                }
            }
            Goal::Predict(criterion) => {
                if runs.len() >= MIN_RUNS
                    && narrow_enough(candidates, &runs, rate, stop.interval_fraction)
                {
                    break;
                }
                next_optimal(&f, &chosen, criterion).map(|(i, s)| {
                    (
                        i,
                        format!("{criterion:?}-optimal for Ernest's parameters (score {s:.3e})"),
                    )
                })
            }
        };
        let Some((candidate, reason)) = next else {
            break;
        };
        let value = measure(candidate, &reason)?;
        runs.push(ChosenRun {
            candidate,
            reason,
            value,
        });
    }
    Ok(runs)
}

fn observations(candidates: &[(f64, f64)], runs: &[ChosenRun]) -> Vec<Obs> {
    runs.iter()
        .filter_map(|r| {
            r.value.map(|value| Obs {
                n: candidates[r.candidate].0,
                size: candidates[r.candidate].1,
                value,
                point: format!("c{}", r.candidate),
            })
        })
        .collect()
}

/// Whether the chosen model's bootstrap interval is within `fraction` of the prediction at every candidate.
fn narrow_enough(candidates: &[(f64, f64)], runs: &[ChosenRun], rate: bool, fraction: f64) -> bool {
    let obs = observations(candidates, runs);
    let Ok(choice) = choose(&obs, rate) else {
        return false;
    };
    let boots = bootstrap(choice.model().form(), &obs, rate, 100, 1);
    candidates.iter().all(|&(n, s)| {
        let v = choice.model().predict(n, s);
        let mut b: Vec<f64> = boots.iter().map(|m| m.predict(n, s)).collect();
        interval_90(&mut b).is_some_and(|(lo, hi)| (hi - lo) <= fraction * v.abs())
    })
}

/// Held-out errors of a model fitted to `train` (median and maximum absolute percentage), and the form used.
fn held_out(
    train: &[Obs],
    test: &[Obs],
    rate: bool,
    form: Option<Form>,
) -> Option<(f64, f64, &'static str)> {
    let model = match form {
        Some(f) => fit(f, train, rate).ok()?,
        None => choose(train, rate).ok()?.model().clone(),
    };
    let mut apes: Vec<f64> = test
        .iter()
        .map(|o| ape_pct(model.predict(o.n, o.size), o.value))
        .collect();
    if apes.is_empty() || apes.iter().any(|a| !a.is_finite()) {
        return None;
    }
    let max = apes.iter().cloned().fold(0.0, f64::max);
    Some((median(&mut apes), max, model.form().name()))
}

/// A full sweep's replay: the adaptive design's model against interpolation and random runs on the held-out
/// points, and the best-configuration search; `points` are (count, size, value, run-seconds) per measured point.
pub fn replay(
    title: &str,
    points: &[(f64, f64, f64, f64)],
    rate: bool,
    budget_fraction: f64,
    best_fraction: f64,
) -> String {
    let mut out = String::new();
    let candidates: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    let all: Vec<Obs> = points
        .iter()
        .enumerate()
        .map(|(i, p)| Obs {
            n: p.0,
            size: p.1,
            value: p.2,
            point: format!("c{i}"),
        })
        .collect();
    let budget = ((points.len() as f64 * budget_fraction).floor() as usize).max(3);
    let _ = writeln!(
        out,
        "{title}: {} measured points; the design may choose {budget} ({:.0} %)",
        points.len(),
        budget_fraction * 100.0
    );
    let stop = StopAt {
        budget,
        interval_fraction: 0.0,
    };
    let lookup = &mut |i: usize, _: &str| -> Result<Option<f64>, ()> { Ok(Some(points[i].2)) };
    let runs = choose_runs(
        &candidates,
        Goal::Predict(Criterion::D),
        rate,
        stop,
        vec![],
        lookup,
    )
    .unwrap_or_default();
    for (k, r) in runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  run {}: count {} size {} = {:.2} ({})",
            k + 1,
            candidates[r.candidate].0,
            candidates[r.candidate].1,
            r.value.unwrap_or(f64::NAN),
            r.reason
        );
    }
    let chosen: Vec<usize> = runs.iter().map(|r| r.candidate).collect();
    let train: Vec<Obs> = chosen.iter().map(|&i| all[i].clone()).collect();
    let test: Vec<Obs> = (0..all.len())
        .filter(|i| !chosen.contains(i))
        .map(|i| all[i].clone())
        .collect();
    let secs = |idx: &[usize]| idx.iter().map(|&i| points[i].3).sum::<f64>();
    let total_s = secs(&(0..points.len()).collect::<Vec<_>>());
    let _ = writeln!(
        out,
        "  cost: {:.0} run-seconds of the full sweep's {:.0}",
        secs(&chosen),
        total_s
    );
    match held_out(&train, &test, rate, None) {
        Some((med, max, form)) => {
            let _ = writeln!(out, "  design + model ({form}) on {} held-out points: median error {med:.1} %, max {max:.1} %", test.len());
        }
        None => {
            let _ = writeln!(out, "  design + model: no model from the chosen runs");
        }
    }
    if let Some((med, max, _)) = held_out(&train, &test, rate, Some(Form::Interpolation)) {
        let _ = writeln!(
            out,
            "  design + interpolation: median error {med:.1} %, max {max:.1} %"
        );
    }
    let _ = writeln!(out, "  {}", random_baseline(&all, budget, rate));
    let _ = writeln!(
        out,
        "  {}",
        best_search(&candidates, points, rate, best_fraction)
    );
    out
}

/// The same number of random runs (50 draws), modelled the same way.
fn random_baseline(all: &[Obs], budget: usize, rate: bool) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut medians = Vec::new();
    let mut maxes = Vec::new();
    for _ in 0..50 {
        let mut idx: Vec<usize> = (0..all.len()).collect();
        idx.shuffle(&mut rng);
        let (train, test) = idx.split_at(budget.min(all.len()));
        let train: Vec<Obs> = train.iter().map(|&i| all[i].clone()).collect();
        let test: Vec<Obs> = test.iter().map(|&i| all[i].clone()).collect();
        if let Some((med, max, _)) = held_out(&train, &test, rate, None) {
            medians.push(med);
            maxes.push(max);
        }
    }
    if medians.is_empty() {
        return "random runs + model: no model from any draw".into();
    }
    let fitted = medians.len();
    format!(
        "{budget} random runs + model ({fitted} of 50 draws modelled): median of the median errors {:.1} %, median of the max errors {:.1} %",
        median(&mut medians),
        median(&mut maxes)
    )
}

/// Bayesian optimisation toward the best point within `fraction` of the runs.
fn best_search(
    candidates: &[(f64, f64)],
    points: &[(f64, f64, f64, f64)],
    rate: bool,
    fraction: f64,
) -> String {
    let budget = ((points.len() as f64 * fraction).floor() as usize).max(3);
    let stop = StopAt {
        budget,
        interval_fraction: 0.0,
    };
    let lookup = &mut |i: usize, _: &str| -> Result<Option<f64>, ()> { Ok(Some(points[i].2)) };
    let runs = choose_runs(
        candidates,
        Goal::Best { maximise: rate },
        rate,
        stop,
        vec![],
        lookup,
    )
    .unwrap_or_default();
    let pick = |a: f64, b: f64| if rate { a.max(b) } else { a.min(b) };
    let start = if rate {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    let best = points.iter().map(|p| p.2).fold(start, pick);
    let Some(found) = runs
        .iter()
        .filter_map(|r| r.value.map(|v| (r.candidate, v)))
        .reduce(|a, b| if pick(a.1, b.1) == a.1 { a } else { b })
    else {
        return "best-configuration search: no runs".into();
    };
    let ratio = if rate { found.1 / best } else { best / found.1 };
    format!(
        "best-configuration search (expected improvement, at most {budget} runs): {:.2} at count {} size {} after {} runs; best measured {best:.2}; found/best {:.3}",
        found.1,
        candidates[found.0].0,
        candidates[found.0].1,
        runs.len(),
        ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forms::Model;

    /// A 24-point sweep shaped like Ernest's form (time per message = cost / m + overheads), 2 % noise.
    fn sweep() -> Vec<(f64, f64, f64, f64)> {
        let truth = Model::Ernest {
            theta: [2e-4, 1e-3, 5e-5, 2e-5],
            reciprocal: true,
        };
        let mut k = 0u32;
        [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
            .iter()
            .flat_map(|&m| [2.0, 4.0, 8.0, 16.0].map(|s| (m, s)))
            .map(|(m, s)| {
                k += 1;
                let wobble = 1.0 + 0.02 * ((k * 7 % 5) as f64 - 2.0) / 2.0;
                (
                    m,
                    s,
                    truth.predict(m, s) * wobble,
                    600.0 / truth.predict(m, s),
                )
            })
            .collect()
    }

    #[test]
    fn a_replayed_design_predicts_the_held_out_points_and_finds_the_best() {
        let text = replay("synthetic", &sweep(), true, 0.25, 0.30);
        assert!(
            text.contains("24 measured points; the design may choose 6 (25 %)"),
            "{text}"
        );
        assert_eq!(text.matches("  run ").count(), 6, "{text}");
        let med: f64 = text
            .split("held-out points: median error ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(med <= 10.0, "{text}");
        let ratio: f64 = text
            .split("found/best ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(ratio >= 0.9, "{text}");
    }

    #[test]
    fn the_loop_stops_on_its_budget_and_passes_failures_and_errors_on() {
        let c: Vec<(f64, f64)> = (1..=8).map(|m| (m as f64, 1.0)).collect();
        let stop = StopAt {
            budget: 4,
            interval_fraction: 0.0,
        };
        // A failed run (None) is recorded and the loop goes on.
        let mut seen = Vec::new();
        let runs = choose_runs(
            &c,
            Goal::Predict(Criterion::A),
            true,
            stop,
            vec![],
            &mut |i, why| -> Result<Option<f64>, String> {
                seen.push(why.to_string());
                Ok(if i == 0 { None } else { Some(100.0 * i as f64) })
            },
        )
        .unwrap();
        assert_eq!(runs.len(), 4);
        assert!(seen.iter().all(|w| w.contains("A-optimal")), "{seen:?}");
        // An error ends the sweep with it.
        let e = choose_runs(
            &c,
            Goal::Best { maximise: true },
            true,
            stop,
            vec![],
            &mut |_, _| -> Result<Option<f64>, String> { Err("broker died".into()) },
        );
        assert_eq!(e.unwrap_err(), "broker died");
        // A resumed sweep keeps its earlier runs, chooses none of them again, and counts them in the budget.
        let prior = runs[..2].to_vec();
        let mut again = Vec::new();
        let resumed = choose_runs(
            &c,
            Goal::Predict(Criterion::A),
            true,
            stop,
            prior.clone(),
            &mut |i, _| -> Result<Option<f64>, String> {
                again.push(i);
                Ok(Some(1.0 + i as f64))
            },
        )
        .unwrap();
        assert_eq!(resumed.len(), 4);
        // Prediction stops early once every interval is narrow enough (here any width under 10x the value), after
        // the fewest runs a stop rule may end it on.
        let wide = StopAt {
            budget: 8,
            interval_fraction: 10.0,
        };
        let early = choose_runs(
            &c,
            Goal::Predict(Criterion::D),
            true,
            wide,
            vec![],
            &mut |i, _| -> Result<Option<f64>, String> { Ok(Some(100.0 * (i + 1) as f64)) },
        )
        .unwrap();
        assert_eq!(early.len(), MIN_RUNS);
        assert_eq!(resumed[..2], prior[..]);
        assert!(
            again
                .iter()
                .all(|i| !prior.iter().any(|p| p.candidate == *i)),
            "{again:?}"
        );
        assert_eq!(again.len(), 2);
    }
}
