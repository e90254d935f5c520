//! The model forms, each fitted from observations and evaluated anywhere (pure arithmetic):
//!
//! - the Universal Scalability Law over a count N (nodes or processes): X(N) = lambda N / (1 + sigma (N - 1) +
//!   kappa N (N - 1)), for rates. Fitted through its linear form N / X = (1 + sigma (N - 1) + kappa N (N - 1)) /
//!   lambda by non-negative least squares with rows weighted by 1 / (N / X), which minimises relative error and
//!   keeps sigma and kappa non-negative;
//! - Ernest's form over machines m and input size s: v = th0 + th1 s / m + th2 ln m + th3 m, every term a
//!   non-negative cost, v the value for times and the reciprocal (time per unit of work) for rates; relative
//!   error again;
//! - interpolation between the measured points' means, the baseline a model has to beat: piecewise linear along
//!   the one varying axis (constant beyond the ends), else inverse-distance weighting, in log axes.

use super::nnls::nnls;
use super::{ModelError, Obs};

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    Usl,
    Ernest,
    Interpolation,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::Usl, Form::Ernest, Form::Interpolation];

    pub fn name(self) -> &'static str {
        match self {
            Form::Usl => "usl",
            Form::Ernest => "ernest",
            Form::Interpolation => "interpolation",
        }
    }
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Usl {
        lambda: f64,
        sigma: f64,
        kappa: f64,
    },
    Ernest {
        theta: [f64; 4],
        reciprocal: bool,
    },
    Interpolation {
        /// (ln n, ln size) and the point's mean value.
        points: Vec<([f64; 2], f64)>,
        /// Each coordinate's range over the points (0 where it does not vary: that axis is left out).
        span: [f64; 2],
    },
}

impl Model {
    pub fn form(&self) -> Form {
        match self {
            Model::Usl { .. } => Form::Usl,
            Model::Ernest { .. } => Form::Ernest,
            Model::Interpolation { .. } => Form::Interpolation,
        }
    }

    /// The value at count `n` (>= 1) and size `size` (> 0).
    pub fn predict(&self, n: f64, size: f64) -> f64 {
        match self {
            Model::Usl {
                lambda,
                sigma,
                kappa,
            } => lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)),
            Model::Ernest { theta, reciprocal } => {
                let v = ernest_row(n, size)
                    .iter()
                    .zip(theta)
                    .map(|(a, t)| a * t)
                    .sum::<f64>();
                if *reciprocal {
                    1.0 / v
                } else {
                    v
                }
            }
            Model::Interpolation { points, span } => interpolate(points, *span, n, size),
        }
    }

    /// The parameters by name (none for interpolation).
    pub fn params(&self) -> Vec<(&'static str, f64)> {
        match self {
            Model::Usl {
                lambda,
                sigma,
                kappa,
            } => vec![("lambda", *lambda), ("sigma", *sigma), ("kappa", *kappa)],
            Model::Ernest { theta, .. } => vec![
                ("th0", theta[0]),
                ("th1_size_per_m", theta[1]),
                ("th2_log_m", theta[2]),
                ("th3_m", theta[3]),
            ],
            Model::Interpolation { .. } => vec![],
        }
    }

    /// The Universal Scalability Law's peak N* = sqrt((1 - sigma) / kappa), where there is one.
    pub fn usl_peak(&self) -> Option<f64> {
        match self {
            Model::Usl { sigma, kappa, .. } if *kappa > 0.0 && *sigma < 1.0 => {
                Some(((1.0 - sigma) / kappa).sqrt())
            }
            _ => None,
        }
    }
}

/// Fit `form` to `obs`; `rate` says the metric is a rate (throughput) rather than a time.
pub fn fit(form: Form, obs: &[Obs], rate: bool) -> Result<Model, ModelError> {
    check(obs)?;
    match form {
        Form::Usl => fit_usl(obs, rate),
        Form::Ernest => fit_ernest(obs, rate),
        Form::Interpolation => Ok(fit_interpolation(obs)),
    }
}

/// Every value finite and positive, every count >= 1 and size > 0.
fn check(obs: &[Obs]) -> Result<(), ModelError> {
    if obs.is_empty() {
        return Err(ModelError::TooFewPoints {
            points: 0,
            needed: 1,
            form: "any model",
        });
    }
    if let Some(o) = obs
        .iter()
        .find(|o| !(o.value.is_finite() && o.value > 0.0 && o.n >= 1.0 && o.size > 0.0))
    {
        return Err(ModelError::BadValue {
            point: o.point.clone(),
            message: format!(
                "value {} at count {} and size {} (models need positive values, counts >= 1, sizes > 0)",
                o.value, o.n, o.size
            ),
        });
    }
    Ok(())
}

fn distinct(values: impl Iterator<Item = f64>) -> usize {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1.0));
    v.len()
}

fn fit_usl(obs: &[Obs], rate: bool) -> Result<Model, ModelError> {
    if !rate {
        return Err(ModelError::NotApplicable {
            form: "usl",
            reason: "the Universal Scalability Law models a rate (throughput), not a time".into(),
        });
    }
    if distinct(obs.iter().map(|o| o.size)) > 1 {
        return Err(ModelError::NotApplicable {
            form: "usl",
            reason: "the message size varies; the Universal Scalability Law models one count at one size".into(),
        });
    }
    let counts = distinct(obs.iter().map(|o| o.n));
    if counts < 3 {
        return Err(ModelError::TooFewPoints {
            points: counts,
            needed: 3,
            form: "usl (distinct counts)",
        });
    }
    let (rows, target): (Vec<Vec<f64>>, Vec<f64>) = obs
        .iter()
        .map(|o| {
            let y = o.n / o.value;
            let n = o.n;
            (vec![1.0 / y, (n - 1.0) / y, n * (n - 1.0) / y], 1.0)
        })
        .unzip();
    let x = nnls(&rows, &target).ok_or_else(|| degenerate("usl"))?;
    if x[0] <= 0.0 {
        return Err(degenerate("usl"));
    }
    Ok(Model::Usl {
        lambda: 1.0 / x[0],
        sigma: x[1] / x[0],
        kappa: x[2] / x[0],
    })
}

fn ernest_row(m: f64, size: f64) -> [f64; 4] {
    [1.0, size / m, m.ln(), m]
}

fn fit_ernest(obs: &[Obs], rate: bool) -> Result<Model, ModelError> {
    let mut pairs: Vec<(f64, f64)> = obs.iter().map(|o| (o.n, o.size)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pairs.dedup();
    let points = pairs.len();
    if points < 2 {
        return Err(ModelError::TooFewPoints {
            points,
            needed: 2,
            form: "ernest (distinct points)",
        });
    }
    let (rows, target): (Vec<Vec<f64>>, Vec<f64>) = obs
        .iter()
        .map(|o| {
            let v = if rate { 1.0 / o.value } else { o.value };
            (ernest_row(o.n, o.size).iter().map(|a| a / v).collect(), 1.0)
        })
        .unzip();
    let x = nnls(&rows, &target).ok_or_else(|| degenerate("ernest"))?;
    if x.iter().all(|t| *t <= 0.0) {
        return Err(degenerate("ernest"));
    }
    Ok(Model::Ernest {
        theta: [x[0], x[1], x[2], x[3]],
        reciprocal: rate,
    })
}

fn degenerate(form: &'static str) -> ModelError {
    ModelError::NotApplicable {
        form,
        reason: "the fit is degenerate (no positive solution)".into(),
    }
}

fn fit_interpolation(obs: &[Obs]) -> Model {
    let mut points: Vec<([f64; 2], f64, usize)> = Vec::new();
    for o in obs {
        let at = [o.n.ln(), o.size.ln()];
        match points.iter_mut().find(|(p, _, _)| near(*p, at)) {
            Some((_, sum, k)) => {
                *sum += o.value;
                *k += 1;
            }
            None => points.push((at, o.value, 1)),
        }
    }
    let points: Vec<([f64; 2], f64)> = points
        .into_iter()
        .map(|(p, s, k)| (p, s / k as f64))
        .collect();
    let span = [0, 1].map(|d| {
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (p, _)| {
                (lo.min(p[d]), hi.max(p[d]))
            });
        if hi - lo > 1e-12 {
            hi - lo
        } else {
            0.0
        }
    });
    Model::Interpolation { points, span }
}

fn near(a: [f64; 2], b: [f64; 2]) -> bool {
    (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9
}

fn interpolate(points: &[([f64; 2], f64)], span: [f64; 2], n: f64, size: f64) -> f64 {
    let at = [n.ln(), size.ln()];
    if let Some((_, v)) = points.iter().find(|(p, _)| near(*p, at)) {
        return *v;
    }
    let varying: Vec<usize> = (0..2).filter(|&d| span[d] > 0.0).collect();
    if let [d] = varying[..] {
        return piecewise_linear(points, d, at[d]);
    }
    if varying.is_empty() {
        return points.iter().map(|(_, v)| v).sum::<f64>() / points.len() as f64;
    }
    // Inverse-distance weighting (power 2) in coordinates scaled by their span.
    let (mut num, mut den) = (0.0, 0.0);
    for (p, v) in points {
        let d2: f64 = (0..2).map(|d| ((p[d] - at[d]) / span[d]).powi(2)).sum();
        let w = 1.0 / d2;
        num += w * v;
        den += w;
    }
    num / den
}

fn piecewise_linear(points: &[([f64; 2], f64)], d: usize, x: f64) -> f64 {
    let mut line: Vec<(f64, f64)> = points.iter().map(|(p, v)| (p[d], *v)).collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (line[0], line[line.len() - 1]);
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let i = line.partition_point(|p| p.0 <= x);
    let (a, b) = (line[i - 1], line[i]);
    a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(n: f64, size: f64, value: f64) -> Obs {
        Obs {
            n,
            size,
            value,
            point: format!("n{n}-s{size}"),
        }
    }

    #[test]
    fn usl_recovers_known_contention_and_coherence() {
        let (lambda, sigma, kappa) = (1000.0, 0.08, 0.004);
        let truth = Model::Usl {
            lambda,
            sigma,
            kappa,
        };
        let data: Vec<Obs> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .map(|&n| obs(n, 1.0, truth.predict(n, 1.0)))
            .collect();
        let Model::Usl {
            lambda: l,
            sigma: s,
            kappa: k,
        } = fit(Form::Usl, &data, true).unwrap()
        else {
            panic!()
        };
        assert!(
            (l - lambda).abs() < 1e-6 * lambda
                && (s - sigma).abs() < 1e-9
                && (k - kappa).abs() < 1e-9
        );
        // Peak N* = sqrt((1 - 0.08) / 0.004) = 15.17
        assert!((truth.usl_peak().unwrap() - 15.165).abs() < 1e-3);
    }

    #[test]
    fn ernest_recovers_its_costs_for_times_and_rates() {
        let theta = [2.0, 30.0, 1.5, 0.25];
        let t = Model::Ernest {
            theta,
            reciprocal: false,
        };
        let r = Model::Ernest {
            theta,
            reciprocal: true,
        };
        let grid: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .flat_map(|&m| [0.5, 1.0, 2.0].map(|s| (m, s)))
            .collect();
        for (model, rate) in [(t, false), (r, true)] {
            let data: Vec<Obs> = grid
                .iter()
                .map(|&(m, s)| obs(m, s, model.predict(m, s)))
                .collect();
            let Model::Ernest { theta: got, .. } = fit(Form::Ernest, &data, rate).unwrap() else {
                panic!()
            };
            for (g, w) in got.iter().zip(theta) {
                assert!((g - w).abs() < 1e-6 * w.max(1.0), "{got:?}");
            }
        }
    }

    #[test]
    fn interpolation_is_exact_at_points_linear_between_and_flat_beyond() {
        let data = vec![
            obs(1.0, 1.0, 10.0),
            obs(4.0, 1.0, 30.0),
            obs(4.0, 1.0, 50.0),
        ];
        let m = fit(Form::Interpolation, &data, true).unwrap();
        assert_eq!(m.predict(1.0, 1.0), 10.0);
        assert_eq!(m.predict(4.0, 1.0), 40.0);
        // Halfway in log2: n = 2.
        assert!((m.predict(2.0, 1.0) - 25.0).abs() < 1e-9);
        assert_eq!(m.predict(64.0, 1.0), 40.0);
        let two_d = vec![
            obs(1.0, 1.0, 10.0),
            obs(2.0, 8.0, 20.0),
            obs(4.0, 2.0, 30.0),
        ];
        let m = fit(Form::Interpolation, &two_d, true).unwrap();
        let v = m.predict(2.0, 2.0);
        assert!(v > 10.0 && v < 30.0 && v.is_finite());
    }

    #[test]
    fn degenerate_input_is_a_clear_error_never_nan() {
        let one = vec![obs(2.0, 1.0, 5.0)];
        assert!(matches!(
            fit(Form::Usl, &one, true),
            Err(ModelError::TooFewPoints { needed: 3, .. })
        ));
        assert!(matches!(
            fit(Form::Ernest, &one, true),
            Err(ModelError::TooFewPoints { needed: 2, .. })
        ));
        let bad = vec![obs(1.0, 1.0, f64::NAN), obs(2.0, 1.0, 3.0)];
        let e = fit(Form::Interpolation, &bad, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n1-s1") && e.contains("NaN"), "{e}");
        assert!(matches!(
            fit(Form::Usl, &[obs(1.0, 1.0, 1.0)], false),
            Err(ModelError::NotApplicable { form: "usl", .. })
        ));
        // Constant values: every form answers the constant.
        let flat: Vec<Obs> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&n| obs(n, 1.0, 7.0))
            .collect();
        for f in Form::ALL {
            let m = fit(f, &flat, true).unwrap();
            for n in [1.0, 3.0, 8.0, 100.0] {
                let v = m.predict(n, 1.0);
                assert!((v - 7.0).abs() < 1e-6, "{f:?} at {n}: {v}");
            }
        }
    }
}
