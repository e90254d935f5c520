//! The steps around a reconstruction (TomoPy's, as the paper ran them): flat/dark normalisation, minus log,
//! one row's sinogram out of a projection block, and the circular mask.

/// Smallest value taken before a logarithm or as a denominator.
pub const TINY: f32 = 1e-6;

/// Line integrals of detector row `row` of `data` (`angles x rows x cols` counts), normalised with the mean
/// `flat` and `dark` fields (`rows x cols`): `-ln((data - dark) / (flat - dark))`, with the denominator and the
/// logarithm's argument kept at least [`TINY`] (dead pixels give large but finite values, never NaN).
pub fn row_sinogram(
    data: &[f32],
    flat: &[f32],
    dark: &[f32],
    (angles, rows, cols): (usize, usize, usize),
    row: usize,
    out: &mut [f32],
) {
    assert!(row < rows, "row {row} of {rows}");
    assert_eq!(
        data.len(),
        angles * rows * cols,
        "data is angles x rows x cols"
    );
    assert_eq!(out.len(), angles * cols, "sinogram is angles x cols");
    let f = &flat[row * cols..(row + 1) * cols];
    let d = &dark[row * cols..(row + 1) * cols];
    for a in 0..angles {
        let src = &data[(a * rows + row) * cols..(a * rows + row + 1) * cols];
        for (((o, &v), &fv), &dv) in out[a * cols..(a + 1) * cols]
            .iter_mut()
            .zip(src)
            .zip(f)
            .zip(d)
        {
            let t = (v - dv) / (fv - dv).max(TINY);
            *o = -t.max(TINY).ln();
        }
    }
}

/// Set pixels outside the circle of radius `ratio` (1 = inscribed) to zero; `n x n` image.
pub fn circular_mask(img: &mut [f32], n: usize, ratio: f64) {
    let half = (n as f64 - 1.0) / 2.0;
    let r = ratio * n as f64 / 2.0;
    for (i, row) in img.chunks_exact_mut(n).enumerate() {
        let y = i as f64 - half;
        for (j, v) in row.iter_mut().enumerate() {
            let x = j as f64 - half;
            if x * x + y * y > r * r {
                *v = 0.0;
            }
        }
    }
}

/// Whether pixel (i, j) of an `n x n` image lies inside the circle of radius `ratio` (1 = inscribed).
pub fn in_circle(i: usize, j: usize, n: usize, ratio: f64) -> bool {
    let half = (n as f64 - 1.0) / 2.0;
    let (x, y) = (j as f64 - half, i as f64 - half);
    let r = ratio * n as f64 / 2.0;
    x * x + y * y <= r * r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_guards() {
        // angles 1, rows 1, cols 4: ordinary, dead flat, data below dark, open beam
        let data = [600.0, 10.0, 50.0, 1100.0];
        let flat = [1100.0, 100.0, 1100.0, 1100.0];
        let dark = [100.0, 100.0, 100.0, 100.0];
        let mut out = [0.0; 4];
        row_sinogram(&data, &flat, &dark, (1, 1, 4), 0, &mut out);
        assert!((out[0] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!(out.iter().all(|v| v.is_finite()));
        assert_eq!(out[2], -TINY.ln());
        assert!(out[3].abs() < 1e-6);
    }

    #[test]
    fn mask_keeps_the_disc() {
        let mut img = vec![1.0; 100];
        circular_mask(&mut img, 10, 1.0);
        assert_eq!(img[0], 0.0);
        assert_eq!(img[55], 1.0);
        assert!(in_circle(5, 5, 10, 0.5) && !in_circle(0, 0, 10, 1.0));
    }
}
