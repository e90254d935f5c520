//! The scaling policy: pure arithmetic over one observation of the group, no I/O and no clock of its own.
//!
//! Every decision interval it is told the input rate, the lag, the work the consumers reported (messages handled
//! and the seconds they were busy handling them) and how many consumers run. Like DS2 it measures each consumer's
//! *true* rate (handled / busy seconds, so idle time does not hide capacity) and sizes for the input at a target
//! utilisation. The lag is drained with what that leaves: only when the consumers the input needs could not
//! drain it within the catch-up time, even at full speed, does the lag add consumers (as Flink's autoscaler adds
//! lag / catch-up to the input, but at full utilisation, so the catch-up does not outlast the backlog and get
//! taken back: an overshoot the next decisions would undo):
//!
//! ```text
//! need = max(input / (rate * target_utilisation), (input + lag / catch_up_s) / rate)
//! consumers = ceil(need - tolerance), within [min_consumers, min(max_consumers, partitions)]
//! ```
//!
//! Scaling up happens at once; scaling down only once a lower need has held for `scale_down_delay_s` (then to the
//! highest need seen meanwhile), so a dip does not flap. After every change the next `warmup_s` are ignored: a
//! rebalance pauses consumption and its figures would mislead. A consumer that dies lowers the running count, so
//! the next decision replaces it.

use serde::{Deserialize, Serialize};

/// The policy's settings (validated by [`crate::ops::autoscale::AutoscaleSettings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Fraction of a consumer's true rate to plan for (headroom for noise and bursts).
    pub target_utilisation: f64,
    /// Seconds within which a backlog should be drained.
    pub catch_up_s: f64,
    /// Seconds after a change during which no decision is taken.
    pub warmup_s: f64,
    /// Seconds a lower need must hold before consumers are removed.
    pub scale_down_delay_s: f64,
    pub min_consumers: u32,
    pub max_consumers: u32,
    /// The topic's partitions: more consumers than partitions would idle.
    pub partitions: u32,
    /// A need this close above a whole number of consumers does not round up (fractions of a consumer are noise).
    pub tolerance: f64,
}

impl PolicyConfig {
    /// The most consumers the policy will run.
    pub fn ceiling(&self) -> u32 {
        self.max_consumers
            .min(self.partitions)
            .max(self.min_consumers)
    }

    /// Consumers for `need` (fractional consumers): rounded up past the tolerance, within the bounds.
    pub fn consumers_for(&self, need: f64) -> u32 {
        ((need - self.tolerance).ceil().max(0.0) as u32).clamp(self.min_consumers, self.ceiling())
    }

    /// The optimum for a steady `input_msgs_per_s` with no lag, each consumer's true rate
    /// `rate_msgs_per_s`: what the policy settles on when its measurements are perfect.
    pub fn steady_consumers(&self, input_msgs_per_s: f64, rate_msgs_per_s: f64) -> u32 {
        self.consumers_for(input_msgs_per_s.max(0.0) / (rate_msgs_per_s * self.target_utilisation))
    }
}

/// One look at the group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Seconds on the controller's clock.
    pub time_s: f64,
    /// Messages per second arriving in the topic (end offsets' growth).
    pub input_msgs_per_s: f64,
    /// Messages written but not yet consumed.
    pub lag_msgs: f64,
    /// Messages the consumers handled since the last observation, and the seconds they spent busy doing it.
    pub handled_msgs: f64,
    pub busy_s: f64,
    /// Consumers running now (started and not stopped, dead ones not counted).
    pub consumers: u32,
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Up,
    Down,
    Hold,
}

/// One decision: a row of the decisions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub time_s: f64,
    pub input_msgs_per_s: f64,
    pub lag_msgs: f64,
    /// The estimate of one consumer's true rate used (0 when none yet).
    pub true_rate_msgs_per_s: f64,
    /// Busy seconds over consumer-seconds in the interval.
    pub utilisation: f64,
    /// Consumers the input and lag need (before rounding and bounds; 0 when unknown).
    pub need_consumers: f64,
    pub consumers_before: u32,
    pub consumers_after: u32,
    pub action: Action,
    pub reason: String,
}

/// The policy and what it remembers between decisions.
#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
    last_change_s: Option<f64>,
    last_time_s: Option<f64>,
    /// Since when a lower need has held, and the highest need seen meanwhile.
    lower_since: Option<(f64, u32)>,
    true_rate: Option<f64>,
}

/// Busy time below this (seconds per interval) says too little about a consumer's rate to update the estimate.
const MIN_BUSY_S: f64 = 0.05;

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Self {
        Policy {
            cfg,
            last_change_s: None,
            last_time_s: None,
            lower_since: None,
            true_rate: None,
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The current estimate of one consumer's true rate.
    pub fn true_rate(&self) -> Option<f64> {
        self.true_rate
    }

    /// Decide from one observation.
    pub fn decide(&mut self, o: &Observation) -> Decision {
        let c = &self.cfg;
        let interval = self.last_time_s.map(|t| (o.time_s - t).max(0.0));
        self.last_time_s = Some(o.time_s);
        if o.busy_s >= MIN_BUSY_S && o.handled_msgs > 0.0 {
            self.true_rate = Some(o.handled_msgs / o.busy_s);
        }
        let utilisation = match interval {
            Some(dt) if dt > 0.0 && o.consumers > 0 => o.busy_s / (dt * o.consumers as f64),
            _ => 0.0,
        };
        let rate = self.true_rate.unwrap_or(0.0);
        let (input, lag) = (o.input_msgs_per_s.max(0.0), o.lag_msgs.max(0.0));
        let need = if rate > 0.0 {
            (input / (rate * c.target_utilisation)).max((input + lag / c.catch_up_s) / rate)
        } else {
            0.0
        };
        let mut d = Decision {
            time_s: o.time_s,
            input_msgs_per_s: o.input_msgs_per_s,
            lag_msgs: o.lag_msgs,
            true_rate_msgs_per_s: rate,
            utilisation,
            need_consumers: need,
            consumers_before: o.consumers,
            consumers_after: o.consumers,
            action: Action::Hold,
            reason: String::new(),
        };
        let (lo, hi) = (c.min_consumers, c.ceiling());
        // Below the floor (the start, or consumers died) comes first, warm-up or not.
        if o.consumers < lo {
            return self.change(d, lo, format!("below the minimum of {lo} consumers"));
        }
        if o.consumers > hi {
            return self.change(d, hi, format!("above the ceiling of {hi} consumers"));
        }
        if let Some(t) = self.last_change_s {
            let left = c.warmup_s - (o.time_s - t);
            if left > 0.0 {
                d.reason = format!("warm-up after the last change ({left:.1} s left)");
                return d;
            }
        }
        if self.true_rate.is_none() {
            d.reason = "no processing measured yet".into();
            return d;
        }
        let target = c.consumers_for(need);
        let why = format!(
            "need {need:.2} consumers: max({input:.1} msg/s / ({rate:.1} msg/s x {}), ({input:.1} msg/s + {lag:.0} lag / {} s) / {rate:.1} msg/s)",
            c.target_utilisation, c.catch_up_s,
        );
        if target > o.consumers {
            return self.change(d, target, why);
        }
        if target < o.consumers {
            let (since, peak) = match self.lower_since {
                Some((since, peak)) => (since, peak.max(target)),
                None => (o.time_s, target),
            };
            self.lower_since = Some((since, peak));
            let held = o.time_s - since;
            if held >= c.scale_down_delay_s {
                return self.change(d, peak, format!("{why}; lower for {held:.0} s"));
            }
            d.reason = format!(
                "{why}; lower for {held:.0} of {} s before scaling down",
                c.scale_down_delay_s
            );
            return d;
        }
        self.lower_since = None;
        d.reason = format!("{why}; balanced");
        d
    }

    fn change(&mut self, mut d: Decision, to: u32, reason: String) -> Decision {
        d.consumers_after = to;
        d.action = if to > d.consumers_before {
            Action::Up
        } else {
            Action::Down
        };
        d.reason = reason;
        self.last_change_s = Some(d.time_s);
        self.lower_since = None;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PolicyConfig {
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

    /// A group of consumers of `rate_each` msg/s, fed `input(t)`, observed every `dt` seconds, with `noise` (a
    /// fraction) on the measured input rate, a rebalance pause of `pause_s` after each change, and consumers
    /// killed at given times. Returns the decisions.
    struct Sim {
        rate_each: f64,
        dt: f64,
        pause_s: f64,
        noise: f64,
        kills: Vec<f64>,
    }

    impl Sim {
        fn run(
            &self,
            policy: &mut Policy,
            input: &dyn Fn(f64) -> f64,
            until_s: f64,
        ) -> Vec<Decision> {
            let (mut t, mut lag, mut consumers, mut paused_until) = (0.0, 0.0f64, 1u32, 0.0);
            let mut out = Vec::new();
            let mut kills = self.kills.clone();
            let mut k = 0u64;
            while t < until_s {
                // One interval of arrivals and consumption, in 0.1 s steps.
                let (mut handled, mut arrived) = (0.0, 0.0);
                let steps = (self.dt / 0.1).round() as usize;
                for i in 0..steps {
                    let now = t + i as f64 * 0.1;
                    let a = input(now) * 0.1;
                    arrived += a;
                    lag += a;
                    if now >= paused_until {
                        let can = consumers as f64 * self.rate_each * 0.1;
                        let took = can.min(lag);
                        lag -= took;
                        handled += took;
                    }
                }
                t += self.dt;
                if let Some(pos) = kills.iter().position(|&at| at <= t) {
                    kills.remove(pos);
                    consumers -= 1;
                }
                // Deterministic noise in [-noise, +noise].
                k += 1;
                let wobble = ((k * 7919) % 201) as f64 / 100.0 - 1.0;
                let o = Observation {
                    time_s: t,
                    input_msgs_per_s: arrived / self.dt * (1.0 + self.noise * wobble),
                    lag_msgs: lag,
                    handled_msgs: handled,
                    busy_s: handled / self.rate_each,
                    consumers,
                };
                let d = policy.decide(&o);
                if d.consumers_after != consumers {
                    consumers = d.consumers_after;
                    paused_until = t + self.pause_s;
                }
                out.push(d);
            }
            out
        }
    }

    fn changes(ds: &[Decision], from_s: f64, to_s: f64) -> Vec<&Decision> {
        ds.iter()
            .filter(|d| d.time_s > from_s && d.time_s <= to_s && d.action != Action::Hold)
            .collect()
    }

    fn direction_changes(ds: &[&Decision]) -> usize {
        ds.windows(2).filter(|w| w[0].action != w[1].action).count()
    }

    /// The optimum for a steady input: ceil(input / (rate x utilisation)).
    fn optimum(input: f64, rate: f64) -> u32 {
        cfg().steady_consumers(input, rate)
    }

    #[test]
    fn a_4x_step_up_converges_in_at_most_two_decisions_and_the_step_down_follows_the_delay() {
        let sim = Sim {
            rate_each: 100.0,
            dt: 5.0,
            pause_s: 2.0,
            noise: 0.0,
            kills: vec![],
        };
        let input = |t: f64| {
            if (60.0..150.0).contains(&t) {
                200.0
            } else {
                50.0
            }
        };
        let mut p = Policy::new(cfg());
        let ds = sim.run(&mut p, &input, 240.0);
        assert_eq!(
            changes(&ds, 0.0, 60.0).len(),
            0,
            "steady at one consumer before the step"
        );
        let up = changes(&ds, 60.0, 150.0);
        assert!(!up.is_empty() && up.len() <= 2, "{up:#?}");
        assert!(direction_changes(&up) <= 1, "{up:#?}");
        let last = up.last().unwrap().consumers_after;
        assert!(
            last.abs_diff(optimum(200.0, 100.0)) <= 1,
            "{last} vs {}",
            optimum(200.0, 100.0)
        );
        // The lag is back under 1 s of production (200 messages) within 60 s of the step.
        let recovered = ds
            .iter()
            .filter(|d| d.time_s > 60.0 && d.time_s <= 150.0)
            .find(|d| d.lag_msgs < 200.0 && d.time_s > up.last().unwrap().time_s)
            .unwrap();
        assert!(recovered.time_s - 60.0 <= 60.0, "{recovered:?}");
        // After the step down: back to the optimum within the delay plus two decisions.
        let down = changes(&ds, 150.0, 240.0);
        assert!(!down.is_empty(), "{ds:#?}");
        let back = down.last().unwrap();
        assert_eq!(back.consumers_after, optimum(50.0, 100.0));
        assert!(back.time_s - 150.0 <= 20.0 + 2.0 * 5.0 + 5.0, "{back:?}");
        assert!(down.iter().all(|d| d.action == Action::Down), "{down:#?}");
    }

    #[test]
    fn noise_on_the_input_rate_does_not_flap() {
        let sim = Sim {
            rate_each: 100.0,
            dt: 5.0,
            pause_s: 2.0,
            noise: 0.15,
            kills: vec![],
        };
        // 200 msg/s needs 2.5 consumers: 3, with room for 15 % noise either way before crossing 2 or 4.
        let mut p = Policy::new(cfg());
        let ds = sim.run(&mut p, &|_| 200.0, 300.0);
        let all = changes(&ds, 0.0, 300.0);
        assert_eq!(ds.last().unwrap().consumers_after, 3, "{all:#?}");
        assert!(direction_changes(&all) <= 1, "{all:#?}");
        let settled = changes(&ds, 60.0, 300.0);
        assert!(
            settled.len() <= 1,
            "steady input, steady count: {settled:#?}"
        );
    }

    #[test]
    fn a_consumer_that_dies_is_replaced_at_the_next_decision() {
        let sim = Sim {
            rate_each: 100.0,
            dt: 5.0,
            pause_s: 2.0,
            noise: 0.0,
            kills: vec![100.0],
        };
        let mut p = Policy::new(cfg());
        let ds = sim.run(&mut p, &|_| 200.0, 160.0);
        let death = ds.iter().position(|d| d.time_s >= 100.0).unwrap();
        assert_eq!(ds[death].consumers_before, 2, "one of the three died");
        assert_eq!(ds[death].consumers_after, 3, "{:?}", ds[death]);
        assert_eq!(ds[death].action, Action::Up);
        assert_eq!(ds.last().unwrap().consumers_after, 3);
    }

    #[test]
    fn bounds_warm_up_and_missing_measurements() {
        let mut p = Policy::new(PolicyConfig {
            max_consumers: 16,
            partitions: 4,
            ..cfg()
        });
        let o = |t: f64, input: f64, n: u32| Observation {
            time_s: t,
            input_msgs_per_s: input,
            lag_msgs: 0.0,
            handled_msgs: 100.0,
            busy_s: 1.0,
            consumers: n,
        };
        // Nothing running: start the minimum even without a measurement.
        let d = p.decide(&Observation {
            handled_msgs: 0.0,
            busy_s: 0.0,
            ..o(0.0, 0.0, 0)
        });
        assert_eq!((d.action, d.consumers_after), (Action::Up, 1));
        // In warm-up: hold whatever the need.
        let d = p.decide(&o(5.0, 10_000.0, 1));
        assert_eq!(d.action, Action::Hold);
        assert!(d.reason.contains("warm-up"), "{}", d.reason);
        // The partitions cap the count (100 msg/s each, 10,000 msg/s would need 125).
        let d = p.decide(&o(11.0, 10_000.0, 1));
        assert_eq!((d.action, d.consumers_after), (Action::Up, 4));
        assert!(d.reason.contains("need 125.00"), "{}", d.reason);
        // No measurement yet: hold.
        let mut q = Policy::new(cfg());
        let d = q.decide(&Observation {
            handled_msgs: 0.0,
            busy_s: 0.0,
            ..o(0.0, 500.0, 1)
        });
        assert_eq!(d.action, Action::Hold);
        assert!(d.reason.contains("no processing measured"), "{}", d.reason);
    }

    /// The scaling changes after an input change at `from_s`, up to the next at `to_s`: at most two, all one way
    /// (no overshoot taken back), ending within one of `optimum`.
    fn converges(ds: &[Decision], from_s: f64, to_s: f64, optimum: u32, what: &str) {
        let ch = changes(ds, from_s, to_s);
        assert!(ch.len() <= 2, "{what}: {} decisions: {ch:#?}", ch.len());
        assert_eq!(direction_changes(&ch), 0, "{what}: taken back: {ch:#?}");
        let end = ds
            .iter()
            .rfind(|d| d.time_s <= to_s)
            .unwrap()
            .consumers_after;
        assert!(
            end.abs_diff(optimum) <= 1,
            "{what}: ended at {end}, optimum {optimum}"
        );
    }

    fn sim(rate_each: f64) -> Sim {
        Sim {
            rate_each,
            dt: 5.0,
            pause_s: 3.0,
            noise: 0.05,
            kills: vec![],
        }
    }

    #[test]
    fn steps_of_every_size_converge_in_two_decisions_without_taking_one_back() {
        // Up and back down: 2x, 4x, 8x and 16x, and the profile that once took four (30 -> 150 -> 60 msg/s at
        // 66.7 msg/s a consumer: 1 -> 3 -> 4 -> 3).
        let cases = [
            (100.0, 50.0, 100.0, 50.0),
            (100.0, 50.0, 200.0, 50.0),
            (100.0, 40.0, 320.0, 40.0),
            (50.0, 20.0, 320.0, 20.0),
            (66.7, 30.0, 150.0, 60.0),
        ];
        for (rate, lo, hi, back) in cases {
            let input = |t: f64| {
                if t < 60.0 {
                    lo
                } else if t < 200.0 {
                    hi
                } else {
                    back
                }
            };
            let mut p = Policy::new(PolicyConfig {
                max_consumers: 32,
                partitions: 32,
                ..cfg()
            });
            let ds = sim(rate).run(&mut p, &input, 360.0);
            let what = format!("{lo} -> {hi} -> {back} msg/s at {rate} msg/s each");
            let opt = |r: f64| p.config().steady_consumers(r, rate);
            converges(&ds, 60.0, 200.0, opt(hi), &format!("{what}, up"));
            converges(&ds, 200.0, 360.0, opt(back), &format!("{what}, down"));
        }
    }

    #[test]
    fn a_ramp_is_followed_in_two_decisions() {
        // 30 -> 150 msg/s over 60 s, then held.
        let input = |t: f64| 30.0 + 120.0 * ((t - 60.0) / 60.0).clamp(0.0, 1.0);
        let mut p = Policy::new(cfg());
        let ds = sim(66.7).run(&mut p, &input, 300.0);
        converges(
            &ds,
            60.0,
            300.0,
            p.config().steady_consumers(150.0, 66.7),
            "ramp",
        );
    }

    #[test]
    fn a_sine_is_followed_in_two_decisions_per_swing() {
        // 90 +- 60 msg/s, period 240 s: each rise and each fall is one swing.
        let input = |t: f64| 90.0 - 60.0 * (2.0 * std::f64::consts::PI * t / 240.0).cos();
        let mut p = Policy::new(cfg());
        let ds = sim(66.7).run(&mut p, &input, 960.0);
        for k in 1..4 {
            let t = 240.0 * k as f64;
            let rise = changes(&ds, t - 240.0, t - 120.0);
            let fall = changes(&ds, t - 120.0, t);
            assert!(
                rise.len() <= 2 && rise.iter().all(|d| d.action == Action::Up),
                "rise {k}: {rise:#?}"
            );
            assert!(
                fall.len() <= 2 && fall.iter().all(|d| d.action == Action::Down),
                "fall {k}: {fall:#?}"
            );
        }
    }

    #[test]
    fn a_brief_dip_does_not_scale_down() {
        let sim = Sim {
            rate_each: 100.0,
            dt: 5.0,
            pause_s: 2.0,
            noise: 0.0,
            kills: vec![],
        };
        // 200 msg/s with a 10 s dip to 50 msg/s (shorter than the 20 s scale-down delay).
        let input = |t: f64| {
            if (100.0..110.0).contains(&t) {
                50.0
            } else {
                200.0
            }
        };
        let mut p = Policy::new(cfg());
        let ds = sim.run(&mut p, &input, 200.0);
        assert!(
            changes(&ds, 60.0, 200.0).is_empty(),
            "{:#?}",
            changes(&ds, 60.0, 200.0)
        );
    }
}
