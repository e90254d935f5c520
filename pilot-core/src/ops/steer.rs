//! Steering a frame source from what the rolling reconstruction sees (the paper's "Type 3" application): a
//! pure policy, fed observations and a clock by its caller, answering with commands
//! ([`crate::contract::control::Command`]). Three rules, each optional:
//!
//! - **stop when converged**: once the similarity of consecutive updates (SSIM against the previous update, or
//!   against a reference when one is given) has stayed at or above `converged_ssim` for `converged_updates`
//!   updates in a row, stop the acquisition (once): the dose the rest of the scan would have cost is saved.
//! - **keep up**: when the reconstruction falls behind the source by more than `lag_high_frames`, lower the
//!   frame rate by `rate_step` (not below `min_rate`); when it has stayed under `lag_low_frames` for
//!   `hold_s`, raise it by the same factor (not above `max_rate`); `cooldown_s` between changes.
//! - **re-take flats**: when the normalised background (line integrals outside the object, 0 with fresh flats)
//!   drifts past `background_drift`, ask for darks and flats again (at most once per `cooldown_s`).

use crate::contract::control::Command;

/// The policy's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerConfig {
    /// Stop once this SSIM is held (None: never stop).
    pub converged_ssim: Option<f64>,
    pub converged_updates: u32,
    /// Judge convergence against the reference instead of the previous update.
    pub against_reference: bool,
    /// Keep-up: lag bounds in frames (None: leave the rate alone).
    pub lag_high_frames: Option<f64>,
    pub lag_low_frames: f64,
    pub rate_step: f64,
    pub min_rate: f64,
    pub max_rate: f64,
    pub hold_s: f64,
    pub cooldown_s: f64,
    /// Re-take flats past this background drift (None: never).
    pub background_drift: Option<f64>,
}

impl Default for SteerConfig {
    fn default() -> Self {
        SteerConfig {
            converged_ssim: Some(0.95),
            converged_updates: 5,
            against_reference: false,
            lag_high_frames: None,
            lag_low_frames: 2.0,
            rate_step: 1.5,
            min_rate: 1.0,
            max_rate: 10_000.0,
            hold_s: 5.0,
            cooldown_s: 2.0,
            background_drift: None,
        }
    }
}

/// Why the settings cannot be used (the setting named).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("steering setting `{key}`: {why}")]
pub struct SteerConfigError {
    pub key: &'static str,
    pub why: String,
}

impl SteerConfig {
    pub fn check(&self) -> Result<(), SteerConfigError> {
        let bad = |key, why: &str| {
            Err(SteerConfigError {
                key,
                why: why.to_string(),
            })
        };
        if self
            .converged_ssim
            .is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= 1.0))
        {
            return bad("converged_ssim", "must be in (0, 1]");
        }
        if self.converged_updates == 0 {
            return bad("converged_updates", "must be at least 1");
        }
        if !(self.rate_step.is_finite() && self.rate_step > 1.0) {
            return bad("rate_step", "must be a factor above 1");
        }
        if !(self.min_rate > 0.0 && self.min_rate <= self.max_rate && self.max_rate.is_finite()) {
            return bad("min_rate", "need 0 < min_rate <= max_rate");
        }
        if let Some(h) = self.lag_high_frames {
            if !(h.is_finite() && h > self.lag_low_frames && self.lag_low_frames >= 0.0) {
                return bad(
                    "lag_high_frames",
                    "need 0 <= lag_low_frames < lag_high_frames",
                );
            }
        }
        if !(self.hold_s >= 0.0 && self.cooldown_s >= 0.0) {
            return bad("hold_s", "hold_s and cooldown_s must be >= 0");
        }
        if self
            .background_drift
            .is_some_and(|d| !(d.is_finite() && d > 0.0))
        {
            return bad("background_drift", "must be > 0");
        }
        Ok(())
    }
}

/// What the caller saw at one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The newest frame the update includes (the decision's trigger).
    pub frame: u64,
    /// SSIM against the previous update and against the reference (NaN: not scored).
    pub ssim_previous: f64,
    pub ssim_reference: f64,
    /// Frames the source sent that the reconstruction has not absorbed yet.
    pub lag_frames: f64,
    /// The source's frame rate now.
    pub rate: f64,
    /// Mean normalised background (NaN: not measured).
    pub background: f64,
}

/// A decision: the command, the frame that triggered it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub command: Command,
    pub trigger_frame: u64,
    pub reason: String,
}

/// The policy's state.
#[derive(Debug, Clone)]
pub struct SteerPolicy {
    cfg: SteerConfig,
    streak: u32,
    stopped: bool,
    last_rate_change_s: f64,
    last_retake_s: f64,
    low_since_s: Option<f64>,
    commands: u64,
}

impl SteerPolicy {
    pub fn new(cfg: SteerConfig) -> Result<Self, SteerConfigError> {
        cfg.check()?;
        Ok(SteerPolicy {
            cfg,
            streak: 0,
            stopped: false,
            last_rate_change_s: f64::NEG_INFINITY,
            last_retake_s: f64::NEG_INFINITY,
            low_since_s: None,
            commands: 0,
        })
    }

    /// Whether the policy has stopped the source.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The decisions for one observation at `now_s` (seconds on the caller's clock).
    pub fn observe(&mut self, o: &Observation, now_s: f64) -> Vec<Decision> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(d) = self.converged(o) {
            self.stopped = true;
            out.push(d);
            return out;
        }
        out.extend(self.keep_up(o, now_s));
        out.extend(self.retake(o, now_s));
        out
    }

    fn id(&mut self) -> Option<String> {
        self.commands += 1;
        Some(format!("steer-{}", self.commands))
    }

    fn converged(&mut self, o: &Observation) -> Option<Decision> {
        let threshold = self.cfg.converged_ssim?;
        let ssim = if self.cfg.against_reference {
            o.ssim_reference
        } else {
            o.ssim_previous
        };
        // NaN (not scored) breaks a streak as a low value does.
        if ssim >= threshold {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        (self.streak >= self.cfg.converged_updates).then(|| Decision {
            command: Command::Stop { id: self.id() },
            trigger_frame: o.frame,
            reason: format!(
                "SSIM {ssim:.4} >= {threshold} for {} updates",
                self.cfg.converged_updates
            ),
        })
    }

    fn keep_up(&mut self, o: &Observation, now_s: f64) -> Option<Decision> {
        let high = self.cfg.lag_high_frames?;
        if !(o.rate.is_finite() && o.rate > 0.0 && o.lag_frames.is_finite()) {
            return None;
        }
        if o.lag_frames >= self.cfg.lag_low_frames {
            self.low_since_s = None;
        } else if self.low_since_s.is_none() {
            self.low_since_s = Some(now_s);
        }
        if now_s - self.last_rate_change_s < self.cfg.cooldown_s {
            return None;
        }
        let (lo, hi) = (self.cfg.min_rate, self.cfg.max_rate);
        let new_rate = if o.lag_frames > high && o.rate > lo {
            (o.rate / self.cfg.rate_step).clamp(lo, hi)
        } else if self
            .low_since_s
            .is_some_and(|t| now_s - t >= self.cfg.hold_s)
            && o.rate < hi
        {
            (o.rate * self.cfg.rate_step).clamp(lo, hi)
        } else {
            return None;
        };
        self.last_rate_change_s = now_s;
        self.low_since_s = None;
        let reason = if new_rate < o.rate {
            format!("behind by {:.0} frames (> {high})", o.lag_frames)
        } else {
            format!(
                "caught up (lag under {} frames for {} s)",
                self.cfg.lag_low_frames, self.cfg.hold_s
            )
        };
        Some(Decision {
            command: Command::SetRate {
                frames_per_s: new_rate,
                id: self.id(),
            },
            trigger_frame: o.frame,
            reason,
        })
    }

    fn retake(&mut self, o: &Observation, now_s: f64) -> Option<Decision> {
        let limit = self.cfg.background_drift?;
        let drifted = o.background.abs() > limit;
        if !drifted || now_s - self.last_retake_s < self.cfg.cooldown_s {
            return None;
        }
        self.last_retake_s = now_s;
        Some(Decision {
            command: Command::RetakeFields { id: self.id() },
            trigger_frame: o.frame,
            reason: format!("background drifted to {:.4} (limit {limit})", o.background),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(frame: u64, ssim: f64) -> Observation {
        Observation {
            frame,
            ssim_previous: ssim,
            ssim_reference: f64::NAN,
            lag_frames: 0.0,
            rate: 100.0,
            background: 0.0,
        }
    }

    #[test]
    fn stops_once_after_a_held_streak_and_a_dip_restarts_the_count() {
        let mut p = SteerPolicy::new(SteerConfig {
            converged_ssim: Some(0.9),
            converged_updates: 3,
            ..Default::default()
        })
        .unwrap();
        let ssims = [0.5, 0.95, 0.96, f64::NAN, 0.97, 0.98, 0.99, 0.99];
        let mut stops = Vec::new();
        for (k, s) in ssims.iter().enumerate() {
            for d in p.observe(&obs(k as u64, *s), k as f64) {
                stops.push((d.trigger_frame, d.command.name()));
            }
        }
        // NaN at frame 3 broke the first streak; 4, 5, 6 make the second.
        assert_eq!(stops, vec![(6, "stop")]);
        assert!(p.stopped());
    }

    #[test]
    fn keeps_up_by_lowering_the_rate_and_raises_it_after_holding() {
        let mut p = SteerPolicy::new(SteerConfig {
            converged_ssim: None,
            lag_high_frames: Some(50.0),
            lag_low_frames: 5.0,
            rate_step: 2.0,
            min_rate: 10.0,
            max_rate: 400.0,
            hold_s: 3.0,
            cooldown_s: 1.0,
            ..Default::default()
        })
        .unwrap();
        let mut rate = 200.0;
        let mut log = Vec::new();
        let lags = [10.0, 80.0, 90.0, 70.0, 30.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        for (t, lag) in lags.iter().enumerate() {
            let o = Observation {
                lag_frames: *lag,
                rate,
                ..obs(t as u64, f64::NAN)
            };
            for d in p.observe(&o, t as f64) {
                if let Command::SetRate { frames_per_s, .. } = d.command {
                    rate = frames_per_s;
                    log.push((t, frames_per_s));
                }
            }
        }
        // Down at 1 and 2 (cooldown 1 s) and 3, up once the lag has been low for 3 s (5 -> 8), then again
        // after another 3 s would be past the run.
        assert_eq!(log, vec![(1, 100.0), (2, 50.0), (3, 25.0), (8, 50.0)]);
    }

    #[test]
    fn retakes_flats_when_the_background_drifts_and_not_again_at_once() {
        let mut p = SteerPolicy::new(SteerConfig {
            converged_ssim: None,
            background_drift: Some(0.05),
            cooldown_s: 10.0,
            ..Default::default()
        })
        .unwrap();
        let mut at = Vec::new();
        for (t, bg) in [0.0, 0.01, 0.08, 0.09, f64::NAN, 0.1].iter().enumerate() {
            let o = Observation {
                background: *bg,
                ..obs(t as u64, f64::NAN)
            };
            at.extend(
                p.observe(&o, t as f64 * 5.0)
                    .into_iter()
                    .map(|d| (t, d.command.name())),
            );
        }
        assert_eq!(at, vec![(2, "retake_fields"), (5, "retake_fields")]);
    }

    #[test]
    fn bad_settings_are_named() {
        let key = |c: SteerConfig| SteerPolicy::new(c).unwrap_err().key;
        assert_eq!(
            key(SteerConfig {
                converged_ssim: Some(1.5),
                ..Default::default()
            }),
            "converged_ssim"
        );
        assert_eq!(
            key(SteerConfig {
                rate_step: 1.0,
                ..Default::default()
            }),
            "rate_step"
        );
        assert_eq!(
            key(SteerConfig {
                lag_high_frames: Some(1.0),
                lag_low_frames: 2.0,
                ..Default::default()
            }),
            "lag_high_frames"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_observations_give_sane_commands(
            obs in proptest::collection::vec(
                (proptest::num::f64::ANY, proptest::num::f64::ANY, proptest::num::f64::ANY,
                 proptest::num::f64::ANY),
                0..60,
            ),
        ) {
            let mut p = SteerPolicy::new(SteerConfig {
                lag_high_frames: Some(20.0),
                background_drift: Some(0.1),
                ..Default::default()
            }).unwrap();
            let mut stops = 0;
            for (k, (ssim, lag, rate, bg)) in obs.into_iter().enumerate() {
                let o = Observation {
                    frame: k as u64,
                    ssim_previous: ssim,
                    ssim_reference: f64::NAN,
                    lag_frames: lag,
                    rate,
                    background: bg,
                };
                for d in p.observe(&o, k as f64) {
                    match d.command {
                        Command::Stop { .. } => stops += 1,
                        Command::SetRate { frames_per_s, .. } => {
                            proptest::prop_assert!(frames_per_s.is_finite());
                            proptest::prop_assert!((1.0..=10_000.0).contains(&frames_per_s));
                        }
                        _ => {}
                    }
                }
            }
            proptest::prop_assert!(stops <= 1);
        }
    }
}
