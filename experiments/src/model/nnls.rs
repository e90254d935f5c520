//! Non-negative least squares, Lawson and Hanson's active-set method: the `x >= 0` that minimises `|A x - b|`,
//! for the handful of columns a performance model has (every term a cost that can only add, as in Ernest).

/// Columns whose weight is below this (relative to the largest) count as zero.
const TOL: f64 = 1e-12;

/// The non-negative least-squares solution of `a x = b`, `a` given by rows. None when the input is empty, ragged
/// or not finite.
pub fn nnls(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let cols = a.first()?.len();
    if cols == 0
        || a.len() != b.len()
        || a.iter()
            .any(|r| r.len() != cols || r.iter().any(|v| !v.is_finite()))
        || b.iter().any(|v| !v.is_finite())
    {
        return None;
    }
    // Columns scaled to unit norm (a positive scaling keeps the sign constraint), undone at the end.
    let norms: Vec<f64> = (0..cols)
        .map(|j| a.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt())
        .map(|n| if n > 0.0 { n } else { 1.0 })
        .collect();
    let scaled: Vec<Vec<f64>> = a
        .iter()
        .map(|r| r.iter().zip(&norms).map(|(v, n)| v / n).collect())
        .collect();
    let x = active_set(&scaled, b, cols);
    Some(x.iter().zip(&norms).map(|(v, n)| v / n).collect())
}

/// Lawson-Hanson on column-scaled `a`.
fn active_set(a: &[Vec<f64>], b: &[f64], cols: usize) -> Vec<f64> {
    let mut x = vec![0.0; cols];
    let mut passive = vec![false; cols];
    for _ in 0..(3 * cols + 3) {
        let w = gradient(a, b, &x);
        let Some(t) = (0..cols)
            .filter(|&j| !passive[j] && w[j] > TOL)
            .max_by(|&i, &j| w[i].total_cmp(&w[j]))
        else {
            break;
        };
        passive[t] = true;
        // Inner loop: step towards the unconstrained solution on the passive set until it is feasible.
        for _ in 0..(3 * cols + 3) {
            let z = solve_on(a, b, &passive);
            if (0..cols).all(|j| !passive[j] || z[j] > TOL) {
                x = z;
                break;
            }
            let alpha = (0..cols)
                .filter(|&j| passive[j] && z[j] <= TOL)
                .map(|j| x[j] / (x[j] - z[j]))
                .fold(1.0_f64, f64::min);
            for j in 0..cols {
                x[j] += alpha * (z[j] - x[j]);
                if passive[j] && x[j] <= TOL {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x
}

/// `A^T (b - A x)`: how much each column would still reduce the residual.
fn gradient(a: &[Vec<f64>], b: &[f64], x: &[f64]) -> Vec<f64> {
    let mut w = vec![0.0; x.len()];
    for (r, bi) in a.iter().zip(b) {
        let res = bi - r.iter().zip(x).map(|(v, xi)| v * xi).sum::<f64>();
        for (wj, v) in w.iter_mut().zip(r) {
            *wj += v * res;
        }
    }
    w
}

/// Least squares on the passive columns only (the others held at zero), by the normal equations with a
/// vanishing ridge so that collinear columns still give an answer.
fn solve_on(a: &[Vec<f64>], b: &[f64], passive: &[bool]) -> Vec<f64> {
    let idx: Vec<usize> = (0..passive.len()).filter(|&j| passive[j]).collect();
    let k = idx.len();
    let mut m = vec![vec![0.0; k + 1]; k];
    for (r, bi) in a.iter().zip(b) {
        for (p, &i) in idx.iter().enumerate() {
            for (q, &j) in idx.iter().enumerate() {
                m[p][q] += r[i] * r[j];
            }
            m[p][k] += r[i] * bi;
        }
    }
    for (p, row) in m.iter_mut().enumerate() {
        row[p] += 1e-12;
    }
    let sol = gauss(m);
    let mut z = vec![0.0; passive.len()];
    for (p, &i) in idx.iter().enumerate() {
        z[i] = sol[p];
    }
    z
}

/// Gaussian elimination with partial pivoting on an augmented `k x (k+1)` matrix (a zero pivot gives 0 for
/// its unknown).
pub(super) fn gauss(mut m: Vec<Vec<f64>>) -> Vec<f64> {
    let k = m.len();
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))
            .unwrap_or(c);
        m.swap(c, p);
        let d = m[c][c];
        if d.abs() < 1e-300 {
            continue;
        }
        let pivot = m[c].clone();
        for row in m.iter_mut().skip(c + 1) {
            let f = row[c] / d;
            for (v, p) in row.iter_mut().zip(&pivot).skip(c) {
                *v -= f * p;
            }
        }
    }
    let mut x = vec![0.0; k];
    for c in (0..k).rev() {
        let s: f64 = ((c + 1)..k).map(|j| m[c][j] * x[j]).sum();
        x[c] = if m[c][c].abs() < 1e-300 {
            0.0
        } else {
            (m[c][k] - s) / m[c][c]
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn an_unconstrained_positive_answer_is_plain_least_squares() {
        // y = 2 + 3 t, exactly.
        let a: Vec<Vec<f64>> = (0..6).map(|t| vec![1.0, t as f64]).collect();
        let b: Vec<f64> = (0..6).map(|t| 2.0 + 3.0 * t as f64).collect();
        assert!(close(&nnls(&a, &b).unwrap(), &[2.0, 3.0], 1e-9));
    }

    #[test]
    fn a_negative_coefficient_is_held_at_zero_and_the_rest_refit() {
        // Least squares would give y = 5 - 1 t; with x >= 0 the slope is 0 and the intercept the mean.
        let a: Vec<Vec<f64>> = (0..5).map(|t| vec![1.0, t as f64]).collect();
        let b: Vec<f64> = (0..5).map(|t| 5.0 - t as f64).collect();
        let x = nnls(&a, &b).unwrap();
        assert!(close(&x, &[3.0, 0.0], 1e-9), "{x:?}");
        // The textbook case (Lawson and Hanson): all coefficients would be negative -> all zero.
        let x = nnls(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[-1.0, -2.0]).unwrap();
        assert_eq!(x, vec![0.0, 0.0]);
    }

    #[test]
    fn collinear_and_degenerate_input_still_answers_or_refuses() {
        // Two identical columns: any split of the weight fits; the answer must fit and stay non-negative.
        let a: Vec<Vec<f64>> = (1..5).map(|t| vec![t as f64, t as f64]).collect();
        let b: Vec<f64> = (1..5).map(|t| 4.0 * t as f64).collect();
        let x = nnls(&a, &b).unwrap();
        assert!(
            x.iter().all(|v| *v >= 0.0) && (x[0] + x[1] - 4.0).abs() < 1e-6,
            "{x:?}"
        );
        assert!(nnls(&[], &[]).is_none());
        assert!(nnls(&[vec![1.0]], &[f64::NAN]).is_none());
        assert!(nnls(&[vec![1.0, 2.0], vec![1.0]], &[1.0, 2.0]).is_none());
        assert_eq!(nnls(&[vec![0.0]], &[1.0]).unwrap(), vec![0.0]);
    }
}
