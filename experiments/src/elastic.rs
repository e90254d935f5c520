//! How an elastic run went, from its per-second timeline and the controller's decisions: the steps of the
//! target rate, how the consumer count followed each one (scaling decisions, seconds, distance from the
//! optimum, changes of direction), how long the lag took to recover, peak and integrated lag, and the
//! consumer-seconds spent. Static runs get the same figures (no decisions), so the two compare row by row.
//! Pure arithmetic: the runner reads the files.

use pilot_core::ops::autoscale::PolicyConfig;

use crate::model::select::median;
use crate::results::TimelineRow;

/// A scaling decision on the timeline's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleChange {
    /// Seconds since the timeline's origin.
    pub t_s: f64,
    pub before: u32,
    pub after: u32,
}

/// A step of the target rate: from `from` to `to` msg/s at `t_s`, held until `end_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub t_s: f64,
    pub end_s: f64,
    pub from: f64,
    pub to: f64,
}

impl Step {
    pub fn up(&self) -> bool {
        self.to > self.from
    }
}

/// A change of at least this factor, held for [`HOLD_S`] seconds, is a step.
pub const STEP_FACTOR: f64 = 1.5;
/// Seconds a changed rate must hold (either side) to count as a step.
pub const HOLD_S: usize = 3;

/// Steps in a per-second target series (`target[k]` is second `k + 1`): where the median of the next
/// [`HOLD_S`] seconds differs from that of the previous ones by [`STEP_FACTOR`] or more. A boundary second
/// holding parts of both rates belongs to the step. Ramps and sines have no steps.
pub fn steps(target: &[f64]) -> Vec<Step> {
    let h = HOLD_S;
    let differs = |a: f64, b: f64| {
        let (lo, hi) = (a.min(b), a.max(b));
        hi > 0.0 && (lo <= 0.0 || hi / lo >= STEP_FACTOR)
    };
    let mut out: Vec<Step> = Vec::new();
    let mut k = h;
    while k + h < target.len() {
        // Second k has left the rate of the seconds before, and the seconds after it (past a mixed one)
        // hold the new rate.
        let before = median(&mut target[k - h..k].to_vec());
        let after = median(&mut target[k + 1..k + 1 + h].to_vec());
        // From nothing is the start of production, not a step (consumers may start seconds before it).
        if before > 0.0 && differs(before, target[k]) && differs(before, after) {
            out.push(Step {
                t_s: k as f64,
                end_s: f64::NAN,
                from: before,
                to: after,
            });
            k += h + 1;
        } else {
            k += 1;
        }
    }
    // Each step holds until the next one, the last until the producers stopped asking (target 0 for good).
    let last_busy = target
        .iter()
        .rposition(|&t| t > 0.0)
        .map(|i| i + 1)
        .unwrap_or(0) as f64;
    let n = out.len();
    for i in 0..n {
        out[i].end_s = if i + 1 < n {
            out[i + 1].t_s
        } else {
            last_busy.max(out[i].t_s)
        };
    }
    // A final drop to nothing is the end of production, not a step down.
    out.retain(|s| s.to > 0.0);
    out
}

/// How the consumers followed one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub step: Step,
    /// Scaling decisions in the step up to the one that set its final count.
    pub decisions_to_converge: u32,
    /// Seconds from the step to that decision (0 when none was needed).
    pub converge_s: f64,
    /// Consumers at the end of the step.
    pub final_consumers: u32,
    /// What the policy settles on for the new rate with perfect measurements.
    pub optimum: u32,
    /// Changes between scaling up and down within the step.
    pub direction_changes: u32,
    /// Seconds from the step until the lag stayed under one second of production for the rest of the step
    /// (NaN: it never did).
    pub lag_recovery_s: f64,
}

/// Consumers in effect at `t_s`: the last change at or before it, else the first one's `before`, else
/// `fallback` (a static run).
fn consumers_at(changes: &[ScaleChange], t_s: f64, fallback: u32) -> u32 {
    changes
        .iter()
        .rev()
        .find(|c| c.t_s <= t_s)
        .map(|c| c.after)
        .or(changes.first().map(|c| c.before))
        .unwrap_or(fallback)
}

/// Follow each step: `changes` are the decisions that changed the count, `static_consumers` the count of a
/// run without them, `policy` and `rate_each_msgs_per_s` what the optimum is computed from.
pub fn follow(
    timeline: &[TimelineRow],
    changes: &[ScaleChange],
    static_consumers: u32,
    policy: &PolicyConfig,
    rate_each_msgs_per_s: f64,
) -> Vec<StepOutcome> {
    let target: Vec<f64> = timeline.iter().map(|r| r.target_msgs_per_s).collect();
    steps(&target)
        .into_iter()
        .map(|step| {
            let inside: Vec<&ScaleChange> = changes
                .iter()
                .filter(|c| c.t_s >= step.t_s && c.t_s < step.end_s && c.after != c.before)
                .collect();
            let final_consumers = consumers_at(changes, step.end_s - 1e-9, static_consumers);
            // The decisions up to the last one that changed the count (the count then stays).
            let decisions_to_converge = inside.len() as u32;
            let converge_s = inside.last().map(|c| c.t_s - step.t_s).unwrap_or(0.0);
            let direction_changes = inside
                .windows(2)
                .filter(|w| (w[0].after > w[0].before) != (w[1].after > w[1].before))
                .count() as u32;
            // Lag under one second of the new rate, from some second to the step's end.
            let rows: Vec<&TimelineRow> = timeline
                .iter()
                .filter(|r| r.t_s > step.t_s && r.t_s <= step.end_s)
                .collect();
            let limit = step.to.max(1.0);
            let lag_recovery_s = match rows.iter().rposition(|r| r.lag_msgs >= limit) {
                None => rows.first().map(|r| r.t_s - step.t_s).unwrap_or(f64::NAN),
                Some(i) if i + 1 < rows.len() => rows[i + 1].t_s - step.t_s,
                Some(_) => f64::NAN,
            };
            StepOutcome {
                step,
                decisions_to_converge,
                converge_s,
                final_consumers,
                optimum: policy.steady_consumers(step.to, rate_each_msgs_per_s),
                direction_changes,
                lag_recovery_s,
            }
        })
        .collect()
}

/// The run's elastic metrics (names as in [`crate::results::METRICS`]): the worst over its steps up and its
/// steps down, and whole-run lag and consumer figures. `consumer_seconds` is summed from the consumers'
/// own lifetimes by the caller.
pub fn metrics(
    timeline: &[TimelineRow],
    changes: &[ScaleChange],
    autoscaled: bool,
    static_consumers: u32,
    policy: &PolicyConfig,
    rate_each_msgs_per_s: f64,
    consumer_seconds: f64,
) -> Vec<(&'static str, f64)> {
    let outcomes = follow(
        timeline,
        changes,
        static_consumers,
        policy,
        rate_each_msgs_per_s,
    );
    let worst = |up: bool, f: &dyn Fn(&StepOutcome) -> f64| -> f64 {
        let v: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.step.up() == up)
            .map(f)
            .collect();
        // No such step, or one that never recovered: NaN, not a small number.
        if v.is_empty() || v.iter().any(|x| x.is_nan()) {
            f64::NAN
        } else {
            v.into_iter().fold(f64::NEG_INFINITY, f64::max)
        }
    };
    // The signed distance that is furthest from the optimum.
    let furthest = |up: bool| -> f64 {
        outcomes
            .iter()
            .filter(|o| o.step.up() == up)
            .map(|o| o.final_consumers as f64 - o.optimum as f64)
            .fold(f64::NAN, |a, b| {
                if a.is_nan() || b.abs() > a.abs() {
                    b
                } else {
                    a
                }
            })
    };
    let n_up = outcomes.iter().filter(|o| o.step.up()).count();
    let n_down = outcomes.len() - n_up;
    let peak_lag = timeline.iter().map(|r| r.lag_msgs).fold(0.0, f64::max);
    let peak_lag_s = timeline
        .iter()
        .filter(|r| r.target_msgs_per_s > 0.0)
        .map(|r| r.lag_msgs / r.target_msgs_per_s)
        .fold(0.0, f64::max);
    let optimum_peak = outcomes.iter().map(|o| o.optimum).max().unwrap_or(0);
    vec![
        ("autoscaled", if autoscaled { 1.0 } else { 0.0 }),
        ("rate_steps_up", n_up as f64),
        ("rate_steps_down", n_down as f64),
        ("optimum_consumers_peak", optimum_peak as f64),
        (
            "up_decisions_to_converge",
            worst(true, &|o| o.decisions_to_converge as f64),
        ),
        ("up_converge_s", worst(true, &|o| o.converge_s)),
        ("up_final_minus_optimum", furthest(true)),
        (
            "up_direction_changes",
            worst(true, &|o| o.direction_changes as f64),
        ),
        ("up_lag_recovery_s", worst(true, &|o| o.lag_recovery_s)),
        (
            "down_decisions_to_converge",
            worst(false, &|o| o.decisions_to_converge as f64),
        ),
        ("down_converge_s", worst(false, &|o| o.converge_s)),
        ("down_final_minus_optimum", furthest(false)),
        (
            "down_direction_changes",
            worst(false, &|o| o.direction_changes as f64),
        ),
        (
            "scale_events",
            changes.iter().filter(|c| c.after != c.before).count() as f64,
        ),
        (
            "max_consumers",
            timeline.iter().map(|r| r.consumers).max().unwrap_or(0) as f64,
        ),
        ("consumer_seconds", consumer_seconds),
        ("peak_lag_msgs", peak_lag),
        ("peak_lag_s", peak_lag_s),
        (
            "lag_integral_msg_s",
            timeline.iter().map(|r| r.lag_msgs).sum(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PolicyConfig {
        PolicyConfig {
            target_utilisation: 0.8,
            catch_up_s: 30.0,
            warmup_s: 10.0,
            scale_down_delay_s: 20.0,
            min_consumers: 1,
            max_consumers: 8,
            partitions: 8,
            tolerance: 0.05,
        }
    }

    /// 50 msg/s for 20 s, 200 for 30 (the boundary second mixed), 50 for 30, then nothing.
    fn timeline(lag: impl Fn(usize) -> f64, consumers: impl Fn(usize) -> u32) -> Vec<TimelineRow> {
        (0..90)
            .map(|k| TimelineRow {
                t_s: (k + 1) as f64,
                produced_msgs_per_s: 0.0,
                consumed_msgs_per_s: 0.0,
                target_msgs_per_s: match k {
                    0..=19 => 50.0,
                    20 => 125.0,
                    21..=49 => 200.0,
                    50..=79 => 50.0,
                    _ => 0.0,
                },
                lag_msgs: lag(k),
                consumers: consumers(k),
                events: String::new(),
            })
            .collect()
    }

    #[test]
    fn steps_are_found_where_the_rate_changes_and_held() {
        let t: Vec<f64> = timeline(|_| 0.0, |_| 1)
            .iter()
            .map(|r| r.target_msgs_per_s)
            .collect();
        let s = steps(&t);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            (s[0].t_s, s[0].from, s[0].to, s[0].end_s),
            (20.0, 50.0, 200.0, 50.0)
        );
        assert_eq!(
            (s[1].t_s, s[1].from, s[1].to, s[1].end_s),
            (50.0, 200.0, 50.0, 80.0)
        );
        // A ramp, noise and a constant rate have none.
        let ramp: Vec<f64> = (0..60).map(|k| 50.0 + 2.5 * k as f64).collect();
        assert!(steps(&ramp).is_empty());
        let noisy: Vec<f64> = (0..60)
            .map(|k| 100.0 + if k % 2 == 0 { 20.0 } else { -20.0 })
            .collect();
        assert!(steps(&noisy).is_empty());
        // The start of production is not a step up.
        let mut late = vec![0.0; 5];
        late.extend([50.0; 20]);
        assert!(steps(&late).is_empty());
        // A one-second blip is not a step.
        let mut blip = vec![50.0; 30];
        blip[10] = 400.0;
        assert!(steps(&blip).is_empty());
    }

    #[test]
    fn the_consumers_following_a_step_up_and_down_are_measured() {
        // Up 1 -> 2 at 23 s, 2 -> 4 at 35 s (overshoot), 4 -> 3 at 40 s (a change of direction), down to 1
        // at 72 s. Lag grows to 1,500 after the step and is under 200 from 45 s on.
        let changes = [
            ScaleChange {
                t_s: 23.0,
                before: 1,
                after: 2,
            },
            ScaleChange {
                t_s: 35.0,
                before: 2,
                after: 4,
            },
            ScaleChange {
                t_s: 40.0,
                before: 4,
                after: 3,
            },
            ScaleChange {
                t_s: 72.0,
                before: 3,
                after: 1,
            },
        ];
        let lag = |k: usize| match k {
            20..=43 => 1500.0,
            _ => 10.0,
        };
        let tl = timeline(lag, |k| consumers_at(&changes, k as f64 + 0.5, 1));
        let o = follow(&tl, &changes, 1, &policy(), 100.0);
        assert_eq!(o.len(), 2);
        let up = o[0];
        assert_eq!((up.decisions_to_converge, up.converge_s), (3, 20.0));
        assert_eq!(
            (up.final_consumers, up.optimum),
            (3, 3),
            "200 / (100 x 0.8) = 2.5 -> 3"
        );
        assert_eq!(up.direction_changes, 1);
        assert_eq!(
            up.lag_recovery_s, 25.0,
            "rows from t = 45 s on are under 200"
        );
        let down = o[1];
        assert_eq!(
            (
                down.decisions_to_converge,
                down.converge_s,
                down.final_consumers
            ),
            (1, 22.0, 1)
        );
        assert_eq!(down.optimum, 1);
        let m: std::collections::BTreeMap<_, _> =
            metrics(&tl, &changes, true, 1, &policy(), 100.0, 123.0)
                .into_iter()
                .collect();
        assert_eq!(m["up_decisions_to_converge"], 3.0);
        assert_eq!(m["up_final_minus_optimum"], 0.0);
        assert_eq!(m["down_converge_s"], 22.0);
        assert_eq!(m["scale_events"], 4.0);
        assert_eq!(m["max_consumers"], 4.0);
        assert_eq!(m["peak_lag_msgs"], 1500.0);
        assert_eq!(
            m["peak_lag_s"],
            1500.0 / 125.0,
            "in the mixed second 20..21 s"
        );
        assert_eq!(m["consumer_seconds"], 123.0);
        assert_eq!(m["optimum_consumers_peak"], 3.0);
    }

    #[test]
    fn a_static_run_gets_the_same_figures_without_decisions() {
        let tl = timeline(|k| if (20..30).contains(&k) { 400.0 } else { 0.0 }, |_| 3);
        let m: std::collections::BTreeMap<_, _> =
            metrics(&tl, &[], false, 3, &policy(), 100.0, 270.0)
                .into_iter()
                .collect();
        assert_eq!(m["autoscaled"], 0.0);
        assert_eq!(
            (m["up_decisions_to_converge"], m["up_converge_s"]),
            (0.0, 0.0)
        );
        assert_eq!(m["up_final_minus_optimum"], 0.0);
        assert_eq!(
            m["down_final_minus_optimum"], 2.0,
            "3 consumers where 1 would do"
        );
        assert_eq!(
            m["up_lag_recovery_s"], 11.0,
            "the row ending at 31 s is the first under"
        );
        assert_eq!(m["scale_events"], 0.0);
        // A lag that never recovers is NaN, not a small number.
        let tl = timeline(|k| if k >= 20 { 5000.0 } else { 0.0 }, |_| 1);
        let o = follow(&tl, &[], 1, &policy(), 100.0);
        assert!(o[0].lag_recovery_s.is_nan());
    }
}
