//! Choosing which runs to make (pure arithmetic over candidate settings `(n, size)`):
//!
//! - optimal design for a model's parameters, as Ernest: runs are added one at a time, each the candidate that
//!   most improves the information matrix `M = sum f f^T` of the model's features `f` (Ernest's `[1, s/m, ln m,
//!   m]`, columns scaled over the candidates): D-optimal maximises `det M` (the candidate with the largest
//!   `f^T M^-1 f`), A-optimal minimises `trace M^-1` (by Sherman-Morrison, the largest
//!   `f^T M^-2 f / (1 + f^T M^-1 f)`);
//! - Bayesian optimisation toward the best configuration, as CherryPick: a Gaussian process (squared-exponential
//!   kernel in log axes scaled to [0, 1], length scale by marginal likelihood over a small grid) over the
//!   measured values, and the next run the candidate of largest expected improvement.

/// Which optimality criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    D,
    A,
}

/// A small ridge that makes the information matrix invertible before it has as many runs as parameters.
const RIDGE: f64 = 1e-6;

/// Ernest's features of each candidate, each column scaled to a largest magnitude of 1 over the candidates.
pub fn features(candidates: &[(f64, f64)]) -> Vec<[f64; 4]> {
    let raw: Vec<[f64; 4]> = candidates
        .iter()
        .map(|&(m, s)| [1.0, s / m, m.ln(), m])
        .collect();
    let scale: Vec<f64> = (0..4)
        .map(|j| raw.iter().map(|f| f[j].abs()).fold(0.0, f64::max))
        .map(|v| if v > 0.0 { v } else { 1.0 })
        .collect();
    raw.iter()
        .map(|f| [0, 1, 2, 3].map(|j| f[j] / scale[j]))
        .collect()
}

/// The next candidate (an index not in `chosen`) by `criterion`, with its score; None when all are chosen.
pub fn next_optimal(
    features: &[[f64; 4]],
    chosen: &[usize],
    criterion: Criterion,
) -> Option<(usize, f64)> {
    let mut m = [[0.0; 4]; 4];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = RIDGE;
    }
    for &c in chosen {
        let f = features[c];
        for i in 0..4 {
            for j in 0..4 {
                m[i][j] += f[i] * f[j];
            }
        }
    }
    (0..features.len())
        .filter(|i| !chosen.contains(i))
        .map(|i| {
            let f = features[i];
            let mf = solve(&m, &f);
            let v = dot(&f, &mf);
            let score = match criterion {
                Criterion::D => v,
                Criterion::A => dot(&mf, &mf) / (1.0 + v),
            };
            (i, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn dot(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `M^-1 f`, by the elimination the least-squares fits use (the ridge keeps `M` invertible).
fn solve(m: &[[f64; 4]; 4], f: &[f64; 4]) -> [f64; 4] {
    let augmented: Vec<Vec<f64>> = (0..4)
        .map(|i| m[i].iter().copied().chain([f[i]]).collect())
        .collect();
    let x = super::nnls::gauss(augmented);
    [x[0], x[1], x[2], x[3]]
}

/// Candidates' coordinates for the Gaussian process: (ln n, ln size), each scaled to [0, 1] over the candidates.
pub fn unit_coordinates(candidates: &[(f64, f64)]) -> Vec<[f64; 2]> {
    let logs: Vec<[f64; 2]> = candidates.iter().map(|&(n, s)| [n.ln(), s.ln()]).collect();
    let lo = [0, 1].map(|d| logs.iter().map(|p| p[d]).fold(f64::INFINITY, f64::min));
    let hi = [0, 1].map(|d| logs.iter().map(|p| p[d]).fold(f64::NEG_INFINITY, f64::max));
    logs.iter()
        .map(|p| {
            [0, 1].map(|d| {
                if hi[d] - lo[d] > 1e-12 {
                    (p[d] - lo[d]) / (hi[d] - lo[d])
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// A Gaussian process fitted to standardised values at some coordinates.
struct Gp {
    at: Vec<[f64; 2]>,
    alpha: Vec<f64>,
    chol: Vec<Vec<f64>>,
    length: f64,
    mean: f64,
    sd: f64,
}

const NOISE: f64 = 1e-3;

fn kernel(a: [f64; 2], b: [f64; 2], length: f64) -> f64 {
    let d2 = (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    (-0.5 * d2 / (length * length)).exp()
}

/// Lower Cholesky factor of a symmetric positive-definite matrix (None when it is not).
fn cholesky(k: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = k.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|p| l[i][p] * l[j][p]).sum();
            if i == j {
                let d = k[i][i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (k[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solve `L L^T x = b`.
fn chol_solve(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|p| l[i][p] * y[p]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - ((i + 1)..n).map(|p| l[p][i] * x[p]).sum::<f64>()) / l[i][i];
    }
    x
}

impl Gp {
    /// Fit with the length scale of largest marginal likelihood among a few.
    fn fit(at: &[[f64; 2]], values: &[f64]) -> Option<Gp> {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        let y: Vec<f64> = values.iter().map(|v| (v - mean) / sd).collect();
        [0.1, 0.2, 0.35, 0.6, 1.0]
            .iter()
            .filter_map(|&length| {
                let k: Vec<Vec<f64>> = at
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        at.iter()
                            .enumerate()
                            .map(|(j, b)| kernel(*a, *b, length) + if i == j { NOISE } else { 0.0 })
                            .collect()
                    })
                    .collect();
                let chol = cholesky(&k)?;
                let alpha = chol_solve(&chol, &y);
                let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
                let logdet: f64 = (0..chol.len()).map(|i| chol[i][i].ln()).sum();
                let likelihood = -0.5 * fit - logdet;
                Some((
                    likelihood,
                    Gp {
                        at: at.to_vec(),
                        alpha,
                        chol,
                        length,
                        mean,
                        sd,
                    },
                ))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, gp)| gp)
    }

    /// Posterior mean and standard deviation at `x`, in the values' own units.
    fn posterior(&self, x: [f64; 2]) -> (f64, f64) {
        let k: Vec<f64> = self.at.iter().map(|a| kernel(*a, x, self.length)).collect();
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = chol_solve(&self.chol, &k);
        let var = (1.0 - k.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>()).max(1e-12);
        (self.mean + self.sd * mu, self.sd * var.sqrt())
    }
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26 through erf, error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The next candidate by expected improvement over the best measured value (`maximise`: larger is better),
/// with that improvement as a fraction of the best (the process models the values' logarithm, since rates and
/// times vary by factors: an improvement of 0.1 is about 10 %); `measured` holds (candidate index, value > 0).
/// None with fewer than two measured runs, a value that is not positive, or every candidate measured.
pub fn next_expected_improvement(
    coordinates: &[[f64; 2]],
    measured: &[(usize, f64)],
    maximise: bool,
) -> Option<(usize, f64)> {
    if measured.len() < 2 || measured.iter().any(|(_, v)| !(*v > 0.0 && v.is_finite())) {
        return None;
    }
    let sign = if maximise { 1.0 } else { -1.0 };
    let at: Vec<[f64; 2]> = measured.iter().map(|(i, _)| coordinates[*i]).collect();
    let values: Vec<f64> = measured.iter().map(|(_, v)| sign * v.ln()).collect();
    let best = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let gp = Gp::fit(&at, &values)?;
    (0..coordinates.len())
        .filter(|i| !measured.iter().any(|(m, _)| m == i))
        .map(|i| {
            let (mu, sd) = gp.posterior(coordinates[i]);
            let z = (mu - best) / sd;
            (i, (mu - best) * normal_cdf(z) + sd * normal_pdf(z))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<(f64, f64)> {
        [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
            .iter()
            .flat_map(|&m| [2.0, 4.0, 8.0, 16.0].map(|s| (m, s)))
            .collect()
    }

    #[test]
    fn optimal_designs_start_from_the_corners_and_never_repeat() {
        let c = grid();
        let f = features(&c);
        for criterion in [Criterion::D, Criterion::A] {
            let mut chosen = Vec::new();
            while let Some((i, score)) = next_optimal(&f, &chosen, criterion) {
                assert!(score.is_finite() && score >= 0.0);
                chosen.push(i);
            }
            assert_eq!(chosen.len(), c.len());
            let mut sorted = chosen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), c.len(), "no candidate twice");
            // The first four runs span both axes' extremes (the information a 4-parameter model needs).
            let first: Vec<(f64, f64)> = chosen[..4].iter().map(|&i| c[i]).collect();
            assert!(
                first.iter().any(|p| p.0 == 1.0) && first.iter().any(|p| p.0 == 8.0),
                "{criterion:?} {first:?}"
            );
            assert!(first.iter().any(|p| p.1 == 16.0), "{criterion:?} {first:?}");
        }
    }

    #[test]
    fn expected_improvement_climbs_to_the_best_configuration() {
        // A throughput that peaks inside the grid (at m = 6, s = 2), as a retrograde USL would.
        let c = grid();
        let value = |(m, s): (f64, f64)| {
            1000.0 * m / (1.0 + 0.05 * (m - 1.0) + 0.02 * m * (m - 1.0)) / s.sqrt()
        };
        let best = c.iter().map(|&p| value(p)).fold(0.0, f64::max);
        let coords = unit_coordinates(&c);
        // Start from two corners, then follow expected improvement for at most 30 % of the grid.
        let mut measured: Vec<(usize, f64)> =
            [0, c.len() - 1].iter().map(|&i| (i, value(c[i]))).collect();
        while measured.len() < (c.len() * 3) / 10 {
            let (i, ei) = next_expected_improvement(&coords, &measured, true).unwrap();
            assert!(ei.is_finite() && ei >= 0.0);
            measured.push((i, value(c[i])));
        }
        let found = measured.iter().map(|m| m.1).fold(0.0, f64::max);
        assert!(
            found >= 0.9 * best,
            "found {found} of best {best} in {} runs",
            measured.len()
        );
        assert!(next_expected_improvement(&coords, &measured[..1], true).is_none());
    }

    #[test]
    fn the_normal_distribution_function_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158655).abs() < 1e-5);
    }
}
