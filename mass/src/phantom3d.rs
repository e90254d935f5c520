//! A 3-D phantom for tall detectors: the modified Shepp-Logan phantom as ellipsoids (the table of Kak and
//! Slaney's 3-D head, as MATLAB's `phantom3d` gives it), projected in closed form one detector frame at a time.
//!
//! Geometry as [`crate::phantom`]'s, with cubic voxels: the unit cube [-1, 1]^3 spans `cols` pixels in x, y and
//! z; detector row r sits at height z = ((rows - 1) / 2 - r) * 2 / cols (row 0 at the top), so a detector with
//! fewer rows than columns sees the cube's middle. An ellipsoid cut at height z is an ellipse (same centre and
//! rotation, semi-axes shrunk by sqrt(1 - ((z - z0) / c)^2)), so each detector row's projection is the 2-D
//! phantom's exact chord lengths.

use crate::phantom::{line_integral, value_at, Ellipse};

/// An ellipsoid: an ellipse in the x-y plane (rotated about z) with a half-height `c` about `z0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipsoid {
    pub base: Ellipse,
    pub c: f64,
    pub z0: f64,
}

/// The modified Shepp-Logan head in 3-D (values 0 to 1).
pub fn shepp_logan_3d() -> Vec<Ellipsoid> {
    let e = |value, a, b, c, x0, y0, z0, phi_deg| Ellipsoid {
        base: Ellipse {
            value,
            a,
            b,
            x0,
            y0,
            phi_deg,
        },
        c,
        z0,
    };
    vec![
        e(1.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
        e(-0.8, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
        e(-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
        e(-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
        e(0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
        e(0.1, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
        e(0.1, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
        e(0.1, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
        e(0.1, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
        e(0.1, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
    ]
}

/// The ellipsoids shrunk by `scale` about the centre (values unchanged).
pub fn scaled_3d(ellipsoids: &[Ellipsoid], scale: f64) -> Vec<Ellipsoid> {
    ellipsoids
        .iter()
        .map(|e| Ellipsoid {
            base: Ellipse {
                a: e.base.a * scale,
                b: e.base.b * scale,
                x0: e.base.x0 * scale,
                y0: e.base.y0 * scale,
                ..e.base
            },
            c: e.c * scale,
            z0: e.z0 * scale,
        })
        .collect()
}

/// The ellipses the ellipsoids leave at height `z` (unit-cube coordinates).
pub fn cross_section(ellipsoids: &[Ellipsoid], z: f64) -> Vec<Ellipse> {
    ellipsoids
        .iter()
        .filter_map(|e| {
            let h = (z - e.z0) / e.c;
            let k = 1.0 - h * h;
            (k > 0.0).then(|| {
                let s = k.sqrt();
                Ellipse {
                    a: e.base.a * s,
                    b: e.base.b * s,
                    ..e.base
                }
            })
        })
        .collect()
}

/// Height of detector row `r` of `rows` in unit-cube coordinates, for a detector `cols` wide.
pub fn row_height(r: usize, rows: usize, cols: usize) -> f64 {
    ((rows as f64 - 1.0) / 2.0 - r as f64) * 2.0 / cols as f64
}

/// Line integrals in pixel units (phantom value x pixels of path) of one frame at `theta_rad`, `rows x cols`, the
/// axis at detector index `center_px`, into `out`.
pub fn projection(
    ellipsoids: &[Ellipsoid],
    theta_rad: f64,
    rows: usize,
    cols: usize,
    center_px: f64,
    out: &mut [f64],
) {
    assert_eq!(out.len(), rows * cols, "a frame is rows x cols");
    let to_unit = 2.0 / cols as f64;
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        let slice = cross_section(ellipsoids, row_height(r, rows, cols));
        for (u, v) in row.iter_mut().enumerate() {
            *v = if slice.is_empty() {
                0.0
            } else {
                line_integral(&slice, theta_rad, (u as f64 - center_px) * to_unit) / to_unit
            };
        }
    }
}

/// The phantom's truth on the `rows x cols x cols` grid the detector sees (voxel centres), z-major: slice r is
/// detector row r's axial slice, with image pixel (i, j) at x = j - (cols - 1) / 2, y = (cols - 1) / 2 - i.
pub fn volume(ellipsoids: &[Ellipsoid], rows: usize, cols: usize) -> Vec<f32> {
    let half = (cols as f64 - 1.0) / 2.0;
    let px = 2.0 / cols as f64;
    let mut out = Vec::with_capacity(rows * cols * cols);
    for r in 0..rows {
        let slice = cross_section(ellipsoids, row_height(r, rows, cols));
        for i in 0..cols {
            for j in 0..cols {
                let (x, y) = ((j as f64 - half) * px, (half - i as f64) * px);
                out.push(value_at(&slice, x, y) as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sphere(r: f64) -> Vec<Ellipsoid> {
        vec![Ellipsoid {
            base: Ellipse {
                value: 1.0,
                a: r,
                b: r,
                x0: 0.0,
                y0: 0.0,
                phi_deg: 0.0,
            },
            c: r,
            z0: 0.0,
        }]
    }

    #[test]
    fn a_sphere_projects_to_its_chords_at_every_angle() {
        // Radius 0.5 of the unit cube on a 64-pixel detector: 16 pixels.
        let (rows, cols) = (64, 64);
        let mut out = vec![0.0; rows * cols];
        for theta in [0.0, 0.7, 2.0] {
            projection(&sphere(0.5), theta, rows, cols, 31.5, &mut out);
            for (r, u) in [(31, 31), (20, 40), (31, 10), (2, 31)] {
                let (z, x) = (row_height(r, rows, cols) * 32.0, u as f64 - 31.5);
                let d = 16.0 * 16.0 - z * z - x * x;
                let want = if d > 0.0 { 2.0 * d.sqrt() } else { 0.0 };
                assert!(
                    (out[r * cols + u] - want).abs() < 1e-9,
                    "{r} {u}: {}",
                    out[r * cols + u]
                );
            }
        }
    }

    #[test]
    fn the_head_has_its_shape_in_3d() {
        let head = shepp_logan_3d();
        // The middle slice misses the two small spheres a quarter up, which that height cuts; above the skull there is nothing.
        assert_eq!(cross_section(&head, 0.0).len(), 8);
        assert_eq!(cross_section(&head, 0.25).len(), 6);
        assert!(cross_section(&head, 0.9).is_empty());
        let v = volume(&head, 4, 32);
        assert_eq!(v.len(), 4 * 32 * 32);
        assert!(v
            .iter()
            .all(|x| (-1e-6..=1.0 + 1e-6).contains(&(*x as f64))));
        assert!(v.iter().any(|&x| x > 0.0));
    }
}
