//! Profiles: a value that changes over a run (a send rate in msg/s, or points per message), written in one
//! grammar, with its exact integral and the integral's inverse (when message n is due). Numerics only.
//!
//! ```text
//! constant:R                      R for ever
//! steps:R1@S1,R2@S2,...           R1 for S1 seconds, then R2 for S2 seconds, ... (the profile ends after the last)
//! ramp:R1..R2@S                   linearly from R1 to R2 over S seconds; items of steps and ramps mix:
//!                                 steps:10@5,10..100@20,100@30
//! sine:MEAN,AMPLITUDE,PERIOD_S    MEAN + AMPLITUDE sin(2 pi t / PERIOD_S), for ever (AMPLITUDE <= MEAN)
//! bursts:ON@ON_S,OFF@OFF_S        ON for ON_S seconds, OFF for OFF_S seconds, repeating for ever
//! trace:FILE.csv                  rows `time_s,value` (a header row allowed), linear between rows, from time 0
//!                                 to the last row's time
//! ```
//!
//! The integral `N(t)` (messages due by `t`, for a rate) is exact for every form (piecewise quadratic, or the sine's
//! closed form), so an open-loop schedule that sends message n at `N^-1(n)` follows the profile exactly and a
//! backlog shows up as latency.

use std::path::Path;

/// One piece of a piecewise-linear profile: from `v0` to `v1` over `dur_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seg {
    start_s: f64,
    dur_s: f64,
    v0: f64,
    v1: f64,
    /// The integral up to `start_s` (within one cycle when repeating).
    before: f64,
}

impl Seg {
    fn area(&self) -> f64 {
        self.dur_s * (self.v0 + self.v1) / 2.0
    }

    fn value(&self, tau: f64) -> f64 {
        if self.dur_s.is_infinite() {
            return self.v0;
        }
        self.v0 + (self.v1 - self.v0) * (tau / self.dur_s)
    }

    /// The integral over `[0, tau]`.
    fn integral(&self, tau: f64) -> f64 {
        if self.dur_s.is_infinite() {
            return self.v0 * tau;
        }
        self.v0 * tau + (self.v1 - self.v0) * tau * tau / (2.0 * self.dur_s)
    }

    /// The `tau` whose integral is `m` (0 <= m <= area, area > 0).
    fn inverse(&self, m: f64) -> f64 {
        if self.dur_s.is_infinite() || self.v1 == self.v0 {
            return m / self.v0;
        }
        let a = (self.v1 - self.v0) / (2.0 * self.dur_s);
        let b = self.v0;
        // The root of a tau^2 + b tau - m = 0 in its cancellation-free form.
        let disc = (b * b + 4.0 * a * m).max(0.0);
        (2.0 * m / (b + disc.sqrt())).clamp(0.0, self.dur_s)
    }
}

impl From<Shape> for Profile {
    fn from(shape: Shape) -> Self {
        Profile { shape }
    }
}

/// `spec` with a relative `trace:FILE` made absolute against `base` (what an experiment file does with the
/// profiles it names); other specs unchanged.
pub fn resolve_trace(spec: &str, base: &Path) -> String {
    match spec.split_once(':') {
        Some((kind, file)) if kind.trim() == "trace" && Path::new(file.trim()).is_relative() => {
            let joined = base.join(file.trim());
            format!(
                "trace:{}",
                std::path::absolute(&joined).unwrap_or(joined).display()
            )
        }
        _ => spec.to_string(),
    }
}

/// A value over time (see the module documentation for the grammar).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Piecewise linear; `repeat` for bursts (the segments are one cycle).
    Segments { segs: Vec<Seg>, repeat: bool },
    Sine {
        mean: f64,
        amplitude: f64,
        period_s: f64,
    },
}

fn num(s: &str, what: &str, spec: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{spec}`: {what} `{}` is not a number", s.trim()))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "`{spec}`: {what} {v} must be finite and not negative"
        ));
    }
    Ok(v)
}

/// Longest profile (seconds), as any other duration setting.
const MAX_S: f64 = 1e9;
/// Largest value a profile may reach (msg/s or points).
const MAX_VALUE: f64 = 1e9;

impl Profile {
    /// A constant profile.
    pub fn constant(v: f64) -> Profile {
        Profile::from(Shape::Segments {
            segs: vec![Seg {
                start_s: 0.0,
                dur_s: f64::INFINITY,
                v0: v,
                v1: v,
                before: 0.0,
            }],
            repeat: false,
        })
    }

    fn from_pieces(
        pieces: Vec<(f64, f64, f64)>,
        repeat: bool,
        spec: &str,
    ) -> Result<Profile, String> {
        let mut segs = Vec::new();
        let (mut t, mut before) = (0.0, 0.0);
        for (dur_s, v0, v1) in pieces {
            if !(dur_s > 0.0 && dur_s.is_finite()) {
                return Err(format!("`{spec}`: every duration must be positive seconds"));
            }
            let s = Seg {
                start_s: t,
                dur_s,
                v0,
                v1,
                before,
            };
            before += s.area();
            t += dur_s;
            segs.push(s);
        }
        if segs.is_empty() {
            return Err(format!("`{spec}`: no segments"));
        }
        if t > MAX_S {
            return Err(format!("`{spec}` lasts {t} s, more than {MAX_S:e} s"));
        }
        if repeat && before <= 0.0 {
            return Err(format!(
                "`{spec}`: a repeating profile needs a positive value somewhere"
            ));
        }
        Ok(Profile::from(Shape::Segments { segs, repeat }))
    }

    /// Parse `spec`; `base` is the directory a relative trace file is read from.
    pub fn parse(spec: &str, base: Option<&Path>) -> Result<Profile, String> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!("`{spec}` is not KIND:... (constant, steps, ramp, sine, bursts, trace)")
        })?;
        let p = match kind.trim() {
            "constant" => Profile::constant(num(rest, "value", spec)?),
            "steps" | "ramp" | "bursts" => {
                let mut pieces = Vec::new();
                for item in rest.split(',') {
                    let (vals, dur) = item.split_once('@').ok_or_else(|| {
                        format!(
                            "`{spec}`: `{}` is not VALUE@SECONDS or A..B@SECONDS",
                            item.trim()
                        )
                    })?;
                    let dur = num(dur, "duration", spec)?;
                    let (v0, v1) = match vals.split_once("..") {
                        Some((a, b)) => (num(a, "value", spec)?, num(b, "value", spec)?),
                        None => {
                            let v = num(vals, "value", spec)?;
                            (v, v)
                        }
                    };
                    pieces.push((dur, v0, v1));
                }
                if kind.trim() == "bursts" && pieces.len() != 2 {
                    return Err(format!(
                        "`{spec}`: bursts are ON_RATE@ON_S,OFF_RATE@OFF_S (two items)"
                    ));
                }
                Profile::from_pieces(pieces, kind.trim() == "bursts", spec)?
            }
            "sine" => {
                let parts: Vec<&str> = rest.split(',').collect();
                if parts.len() != 3 {
                    return Err(format!("`{spec}`: sine is MEAN,AMPLITUDE,PERIOD_S"));
                }
                let (mean, amplitude, period_s) = (
                    num(parts[0], "mean", spec)?,
                    num(parts[1], "amplitude", spec)?,
                    num(parts[2], "period", spec)?,
                );
                if mean <= 0.0 || period_s <= 0.0 {
                    return Err(format!(
                        "`{spec}`: the mean and the period must be positive"
                    ));
                }
                if amplitude > mean {
                    return Err(format!(
                        "`{spec}`: the amplitude {amplitude} exceeds the mean {mean} (the value would go negative)"
                    ));
                }
                Profile::from(Shape::Sine {
                    mean,
                    amplitude,
                    period_s,
                })
            }
            "trace" => {
                let path = Path::new(rest.trim());
                let path = match base {
                    Some(b) if path.is_relative() => b.join(path),
                    _ => path.to_path_buf(),
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("`{spec}`: reading {}: {e}", path.display()))?;
                Profile::from_trace(&text, spec)?
            }
            other => {
                return Err(format!(
                    "`{spec}`: unknown kind `{other}` (constant, steps, ramp, sine, bursts, trace)"
                ))
            }
        };
        if p.max_value() > MAX_VALUE {
            return Err(format!(
                "`{spec}` reaches {}, more than {MAX_VALUE:e}",
                p.max_value()
            ));
        }
        Ok(p)
    }

    /// A trace's text: `time_s,value` rows (an optional header), times from 0, increasing.
    pub fn from_trace(text: &str, spec: &str) -> Result<Profile, String> {
        let mut rows: Vec<(f64, f64)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (t, v) = line
                .split_once(',')
                .ok_or_else(|| format!("`{spec}` line {}: `{line}` is not time_s,value", i + 1))?;
            match (t.trim().parse::<f64>(), v.trim().parse::<f64>()) {
                (Ok(t), Ok(v)) => rows.push((t, v)),
                _ if rows.is_empty() && i == 0 => continue, // a header
                _ => {
                    return Err(format!(
                        "`{spec}` line {}: `{line}` is not two numbers",
                        i + 1
                    ))
                }
            }
        }
        if rows.len() < 2 {
            return Err(format!("`{spec}`: a trace needs at least two rows"));
        }
        if rows[0].0 != 0.0 {
            return Err(format!(
                "`{spec}`: a trace starts at time 0 (its first row is at {})",
                rows[0].0
            ));
        }
        let mut pieces = Vec::new();
        for w in rows.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            // NaN compares as not greater too.
            if t1.partial_cmp(&t0) != Some(std::cmp::Ordering::Greater) {
                return Err(format!("`{spec}`: times must increase ({t0} then {t1})"));
            }
            for v in [v0, v1] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!(
                        "`{spec}`: value {v} must be finite and not negative"
                    ));
                }
            }
            pieces.push((t1 - t0, v0, v1));
        }
        Profile::from_pieces(pieces, false, spec)
    }

    /// Seconds the profile lasts (`None`: for ever).
    pub fn duration_s(&self) -> Option<f64> {
        match &self.shape {
            Shape::Segments {
                segs,
                repeat: false,
            } => {
                let last = segs.last().expect("at least one segment");
                last.dur_s.is_finite().then_some(last.start_s + last.dur_s)
            }
            _ => None,
        }
    }

    /// The largest value the profile takes.
    pub fn max_value(&self) -> f64 {
        match &self.shape {
            Shape::Segments { segs, .. } => {
                segs.iter().fold(0.0, |m: f64, s| m.max(s.v0).max(s.v1))
            }
            Shape::Sine {
                mean, amplitude, ..
            } => mean + amplitude,
        }
    }

    /// The value at `t` seconds (after a finite profile's end, its last value).
    pub fn value_at(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match &self.shape {
            Shape::Sine {
                mean,
                amplitude,
                period_s,
            } => mean + amplitude * (std::f64::consts::TAU * t / period_s).sin(),
            Shape::Segments { segs, repeat } => {
                let (t, _) = Self::fold(segs, *repeat, t);
                let i = segs.partition_point(|s| s.start_s <= t).saturating_sub(1);
                let s = &segs[i];
                s.value((t - s.start_s).min(s.dur_s))
            }
        }
    }

    /// A repeating profile's time within its cycle, and the number of whole cycles.
    fn fold(segs: &[Seg], repeat: bool, t: f64) -> (f64, f64) {
        if !repeat {
            return (t, 0.0);
        }
        let last = segs.last().expect("at least one segment");
        let cycle = last.start_s + last.dur_s;
        let k = (t / cycle).floor();
        (t - k * cycle, k)
    }

    /// The integral from 0 to `t` (messages due by `t`, for a rate). A finite profile adds nothing after its end.
    pub fn cumulative(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match &self.shape {
            Shape::Sine {
                mean,
                amplitude,
                period_s,
            } => {
                let w = std::f64::consts::TAU / period_s;
                mean * t + amplitude / w * (1.0 - (w * t).cos())
            }
            Shape::Segments { segs, repeat } => {
                let last = segs.last().expect("at least one segment");
                let cycle_area = last.before + last.area();
                let (tc, k) = Self::fold(segs, *repeat, t);
                let i = segs.partition_point(|s| s.start_s <= tc).saturating_sub(1);
                let s = &segs[i];
                k * cycle_area + s.before + s.integral((tc - s.start_s).min(s.dur_s))
            }
        }
    }

    /// The first time the integral reaches `n` (when message `n` is due, counting from 0); `None` when it never
    /// does (a finite profile ends first).
    pub fn time_of(&self, n: f64) -> Option<f64> {
        if n <= 0.0 {
            return Some(0.0);
        }
        match &self.shape {
            Shape::Sine {
                mean,
                amplitude,
                period_s,
            } => {
                // N(t) = mean t + A/w (1 - cos wt) is increasing; N(t) - mean t lies in [0, 2A/w].
                let w = std::f64::consts::TAU / period_s;
                let (mut lo, mut hi) = (((n - 2.0 * amplitude / w) / mean).max(0.0), n / mean);
                let mut t = (lo + hi) / 2.0;
                for _ in 0..100 {
                    let f = self.cumulative(t) - n;
                    if f.abs() <= 1e-9 * n.max(1.0) {
                        break;
                    }
                    if f > 0.0 {
                        hi = t;
                    } else {
                        lo = t;
                    }
                    // A Newton step when it stays inside the bracket, else bisection.
                    let r = self.value_at(t);
                    let newton = if r > 0.0 { t - f / r } else { f64::NAN };
                    t = if newton > lo && newton < hi {
                        newton
                    } else {
                        (lo + hi) / 2.0
                    };
                }
                Some(t)
            }
            Shape::Segments { segs, repeat } => {
                let last = segs.last().expect("at least one segment");
                let cycle_area = last.before + last.area();
                let (k, m) = if *repeat {
                    // m in (0, cycle_area]: a count that completes a cycle is due at the end of that
                    // cycle's last non-zero stretch, not at the start of the next cycle.
                    let k = ((n / cycle_area).ceil() - 1.0).max(0.0);
                    (k, n - k * cycle_area)
                } else {
                    (0.0, n)
                };
                // The first segment whose end reaches m (segments of zero value are passed over).
                let i = segs.partition_point(|s| s.before + s.area() < m);
                let s = segs.get(i)?;
                let tau = s.inverse(m - s.before);
                let cycle = last.start_s + last.dur_s;
                Some(k * cycle + s.start_s + tau)
            }
        }
    }

    /// The average over `[t0, t1]` (what a rate profile asks for in that interval).
    pub fn average(&self, t0: f64, t1: f64) -> f64 {
        if t1 > t0 {
            (self.cumulative(t1) - self.cumulative(t0)) / (t1 - t0)
        } else {
            self.value_at(t0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Profile {
        Profile::parse(s, None).unwrap()
    }

    #[test]
    fn steps_hold_each_rate_and_end() {
        let s = p("steps:50@20,200@40,50@30");
        assert_eq!(s.duration_s(), Some(90.0));
        assert_eq!(
            (s.value_at(10.0), s.value_at(30.0), s.value_at(80.0)),
            (50.0, 200.0, 50.0)
        );
        assert_eq!(s.cumulative(20.0), 1000.0);
        assert_eq!(s.cumulative(60.0), 1000.0 + 8000.0);
        assert_eq!(s.cumulative(1e6), 10_500.0, "nothing after the end");
        // Message n is due exactly where the integral reaches n.
        assert_eq!(s.time_of(1000.0), Some(20.0));
        assert_eq!(s.time_of(1001.0), Some(20.005));
        assert_eq!(s.time_of(10_500.0), Some(90.0));
        assert_eq!(s.time_of(10_500.5), None);
        assert_eq!(s.average(0.0, 60.0), 9000.0 / 60.0);
    }

    #[test]
    fn ramps_integrate_exactly_and_invert() {
        let r = p("ramp:10..110@10");
        assert_eq!(r.cumulative(10.0), 600.0);
        assert!((r.value_at(5.0) - 60.0).abs() < 1e-12);
        for n in [1.0, 50.0, 333.0, 599.0] {
            let t = r.time_of(n).unwrap();
            assert!((r.cumulative(t) - n).abs() < 1e-9, "{n}: {t}");
        }
        // A ramp down, and steps mixed with ramps.
        let d = p("steps:100@2,100..0@4,0@3,20@1");
        assert_eq!(d.cumulative(2.0 + 4.0), 200.0 + 200.0);
        assert_eq!(d.time_of(400.0), Some(6.0));
        // The zero segment is passed over: the next message comes when the rate is back.
        assert_eq!(d.time_of(401.0), Some(9.05));
        assert!((d.cumulative(d.time_of(300.0).unwrap()) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn sines_and_bursts_go_on_for_ever() {
        let s = p("sine:100,50,10");
        assert_eq!(s.duration_s(), None);
        assert!((s.value_at(2.5) - 150.0).abs() < 1e-9);
        assert!(
            (s.cumulative(10.0) - 1000.0).abs() < 1e-9,
            "a whole period averages the mean"
        );
        for n in [1.0, 77.0, 1234.5, 100_000.0] {
            let t = s.time_of(n).unwrap();
            assert!((s.cumulative(t) - n).abs() < 1e-6 * n.max(1.0), "{n}: {t}");
        }
        let b = p("bursts:400@2,0@8");
        assert_eq!(b.duration_s(), None);
        assert_eq!(b.value_at(11.0), 400.0);
        assert_eq!(b.value_at(13.0), 0.0);
        assert_eq!(b.cumulative(25.0), 3.0 * 800.0, "bursts at 0, 10 and 20 s");
        assert_eq!(b.time_of(800.0), Some(2.0));
        assert_eq!(b.time_of(1000.0), Some(10.5), "the second burst");
    }

    #[test]
    fn traces_are_linear_between_rows() {
        let t = Profile::from_trace("time_s,rate\n0,10\n10,10\n20,30\n", "trace:x").unwrap();
        assert_eq!(t.duration_s(), Some(20.0));
        assert_eq!(t.value_at(15.0), 20.0);
        assert_eq!(t.cumulative(20.0), 100.0 + 200.0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.csv"), "0,5\n4,5\n").unwrap();
        assert_eq!(
            Profile::parse("trace:r.csv", Some(dir.path()))
                .unwrap()
                .cumulative(4.0),
            20.0
        );
    }

    #[test]
    fn bad_profiles_are_named() {
        for (spec, want) in [
            ("steps", "is not KIND:"),
            ("steps:10", "VALUE@SECONDS"),
            ("steps:10@0", "positive seconds"),
            ("steps:-5@3", "not negative"),
            ("steps:x@3", "is not a number"),
            ("sine:10,20,5", "exceeds the mean"),
            ("sine:10,2", "MEAN,AMPLITUDE,PERIOD_S"),
            ("bursts:10@1", "two items"),
            ("bursts:0@1,0@1", "positive value"),
            ("wave:1", "unknown kind `wave`"),
            ("constant:1e300", "more than"),
            ("steps:1@2e9", "more than"),
            ("trace:/nonexistent/t.csv", "/nonexistent/t.csv"),
        ] {
            let e = Profile::parse(spec, None).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        for (text, want) in [
            ("0,1\n", "two rows"),
            ("1,1\n2,2\n", "starts at time 0"),
            ("0,1\n0,2\n", "must increase"),
            ("0,1\n1,x\n", "not two numbers"),
        ] {
            let e = Profile::from_trace(text, "trace:t").unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
