//! The project's own template data: an analytic Shepp-Logan phantom, scanned in closed form.
//!
//! A phantom is a sum of ellipses, so its parallel-beam projections are exact chord lengths and need no
//! discrete projector (reconstruction methods are never scored on the projector that made their data).
//! [`scan`] turns them into an APS Data Exchange scan with tooth.h5's layout and shapes: counts
//! `dark + gain * i0 * exp(-mu * p)`, flat fields `dark + gain * i0`, dark fields, angles in degrees, optional
//! Poisson noise.
//!
//! Geometry, shared with MASA's reconstruction: detector pixel u is centred at index u, the rotation axis at
//! index `center_px` (default cols / 2, as TomoPy). A point (x, y) in pixels from the axis (y up) projects at angle
//! theta to s = x cos(theta) + y sin(theta), detector index `center_px + s`. The phantom's unit square [-1, 1]^2
//! spans `cols` pixels. Image pixel (i, j) of an N x N grid has its centre at x = j - (N - 1) / 2,
//! y = (N - 1) / 2 - i.

use pilot_core::contract::aps::{ApsScan, Volume};
use rand::SeedableRng;
use rand_distr::{Distribution, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;

/// One ellipse in the phantom's unit square: value added inside, semi-axes, centre, rotation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    pub value: f64,
    pub a: f64,
    pub b: f64,
    pub x0: f64,
    pub y0: f64,
    pub phi_deg: f64,
}

/// The modified Shepp-Logan phantom (Toft's contrast; values 0 to 1, as scikit-image's).
pub fn shepp_logan() -> Vec<Ellipse> {
    let e = |value, a, b, x0, y0, phi_deg| Ellipse {
        value,
        a,
        b,
        x0,
        y0,
        phi_deg,
    };
    vec![
        e(1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
        e(-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
        e(-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
        e(-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
        e(0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
        e(0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
        e(0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
        e(0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
        e(0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
        e(0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
    ]
}

/// Line integral through the phantom (unit-square coordinates) along {x cos t + y sin t = s}.
pub fn line_integral(ellipses: &[Ellipse], theta: f64, s: f64) -> f64 {
    let (st, ct) = theta.sin_cos();
    ellipses
        .iter()
        .map(|e| {
            let sp = s - (e.x0 * ct + e.y0 * st);
            let tp = theta - e.phi_deg.to_radians();
            let a2 = (e.a * tp.cos()).powi(2) + (e.b * tp.sin()).powi(2);
            let d = a2 - sp * sp;
            if d > 0.0 {
                2.0 * e.value * e.a * e.b * d.sqrt() / a2
            } else {
                0.0
            }
        })
        .sum()
}

/// Phantom value at a point of the unit square.
pub fn value_at(ellipses: &[Ellipse], x: f64, y: f64) -> f64 {
    ellipses
        .iter()
        .filter(|e| {
            let (s, c) = e.phi_deg.to_radians().sin_cos();
            let (dx, dy) = (x - e.x0, y - e.y0);
            let u = (dx * c + dy * s) / e.a;
            let v = (-dx * s + dy * c) / e.b;
            u * u + v * v <= 1.0
        })
        .map(|e| e.value)
        .sum()
}

/// The phantom on an N x N grid spanning the unit square (pixel centres; `supersample`^2 samples a pixel).
pub fn image(ellipses: &[Ellipse], n: usize, supersample: usize) -> Vec<f64> {
    let ss = supersample.max(1);
    let px = 2.0 / n as f64;
    let half = (n as f64 - 1.0) / 2.0;
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0;
            for si in 0..ss {
                for sj in 0..ss {
                    let off_i = (si as f64 + 0.5) / ss as f64 - 0.5;
                    let off_j = (sj as f64 + 0.5) / ss as f64 - 0.5;
                    let x = (j as f64 + off_j - half) * px;
                    let y = (half - i as f64 - off_i) * px;
                    acc += value_at(ellipses, x, y);
                }
            }
            out[i * n + j] = acc / (ss * ss) as f64;
        }
    }
    out
}

/// Projections in pixel units (phantom value x pixels of path), `angles x cols`, each detector bin averaged
/// over `supersample` positions. The unit square spans `cols` pixels.
pub fn sinogram(
    ellipses: &[Ellipse],
    theta_rad: &[f64],
    cols: usize,
    center_px: f64,
    supersample: usize,
) -> Vec<f64> {
    let ss = supersample.max(1);
    let to_unit = 2.0 / cols as f64;
    let mut out = Vec::with_capacity(theta_rad.len() * cols);
    for &t in theta_rad {
        for u in 0..cols {
            let mut acc = 0.0;
            for k in 0..ss {
                let s_px = u as f64 + (k as f64 + 0.5) / ss as f64 - 0.5 - center_px;
                acc += line_integral(ellipses, t, s_px * to_unit);
            }
            // Chord lengths are in unit-square lengths: convert to pixels.
            out.push(acc / ss as f64 / to_unit);
        }
    }
    out
}

/// The ellipses shrunk by `scale` about the centre (values unchanged).
pub fn scaled(ellipses: &[Ellipse], scale: f64) -> Vec<Ellipse> {
    ellipses
        .iter()
        .map(|e| Ellipse {
            a: e.a * scale,
            b: e.b * scale,
            x0: e.x0 * scale,
            y0: e.y0 * scale,
            ..*e
        })
        .collect()
}

/// How to scan the phantom.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanParams {
    pub angles: usize,
    pub rows: usize,
    pub cols: usize,
    /// Last angle in degrees; angles are evenly spaced from 0 to it, inclusive (default 180, the paper's convention).
    pub last_angle_deg: f64,
    /// Rotation axis position relative to cols / 2, pixels.
    pub center_offset_px: f64,
    /// Width of the phantom's unit square as a fraction of the detector (1: it spans every column; smaller keeps
    /// an off-centre axis from cutting the object off at the detector's edge).
    pub object_scale: f64,
    /// Flat fields (0: the file has none).
    pub n_white: usize,
    /// Dark fields (0: the file has none).
    pub n_dark: usize,
    /// Open-beam counts.
    pub i0: f64,
    /// Dark-current counts.
    pub dark_counts: f64,
    /// Total attenuation along the most attenuating ray (sets `mu`).
    pub max_attenuation: f64,
    /// Poisson noise on every count.
    pub poisson: bool,
    pub seed: u64,
    /// The 3-D head ([`crate::phantom3d`]): each detector row sees its own slice (else every row sees the same
    /// 2-D phantom).
    pub volume: bool,
}

impl Default for ScanParams {
    fn default() -> Self {
        ScanParams {
            angles: 181,
            rows: 2,
            cols: 640,
            last_angle_deg: 180.0,
            center_offset_px: 0.0,
            object_scale: 1.0,
            n_white: 10,
            n_dark: 10,
            i0: 20_000.0,
            dark_counts: 100.0,
            max_attenuation: 2.0,
            poisson: false,
            seed: 1,
            volume: false,
        }
    }
}

/// A generated scan and what it was made from.
#[derive(Debug, Clone)]
pub struct PhantomScan {
    pub scan: ApsScan,
    /// Attenuation per unit phantom value per pixel: `-ln(normalised) = mu * projection`.
    pub mu: f64,
    /// Rotation axis (detector index).
    pub center_px: f64,
    /// Noise-free projections in pixel units, `angles x cols` (the same for every row).
    pub sinogram: Vec<f64>,
}

/// Scan the Shepp-Logan phantom.
pub fn scan(p: &ScanParams) -> PhantomScan {
    let ellipses = shepp_logan();
    let theta_deg: Vec<f64> = (0..p.angles)
        .map(|i| {
            if p.angles > 1 {
                p.last_angle_deg * i as f64 / (p.angles - 1) as f64
            } else {
                0.0
            }
        })
        .collect();
    let theta_rad: Vec<f64> = theta_deg.iter().map(|d| d.to_radians()).collect();
    let center_px = p.cols as f64 / 2.0 + p.center_offset_px;
    let (a, r, c) = (p.angles, p.rows, p.cols);
    // Line integrals, angles x rows x cols: the 2-D phantom's on every row, or each row's slice of the head.
    let lines: Vec<f64> = if p.volume {
        let head = crate::phantom3d::scaled_3d(&crate::phantom3d::shepp_logan_3d(), p.object_scale);
        let mut out = vec![0.0; a * r * c];
        for (ang, frame) in out.chunks_exact_mut(r * c).enumerate() {
            crate::phantom3d::projection(&head, theta_rad[ang], r, c, center_px, frame);
        }
        out
    } else {
        let s = sinogram(
            &scaled(&ellipses, p.object_scale),
            &theta_rad,
            p.cols,
            center_px,
            4,
        );
        s.chunks_exact(c)
            .flat_map(|row| std::iter::repeat_n(row, r).flatten().copied())
            .collect()
    };
    // The middle row's sinogram (every row's, for the 2-D phantom).
    let sino: Vec<f64> = (0..a)
        .flat_map(|ang| {
            lines[(ang * r + r / 2) * c..(ang * r + r / 2 + 1) * c]
                .iter()
                .copied()
        })
        .collect();
    let max = lines.iter().cloned().fold(0.0, f64::max);
    let mu = if max > 0.0 {
        p.max_attenuation / max
    } else {
        0.0
    };
    let gain = |r: usize, u: usize| {
        1.0 + 0.05 * (6.0 * std::f64::consts::PI * u as f64 / p.cols as f64 + r as f64).sin()
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let mut noisy = |mean: f64| -> f32 {
        if p.poisson && mean > 0.0 {
            Poisson::new(mean)
                .map(|d| d.sample(&mut rng) as f32)
                .unwrap_or(mean as f32)
        } else {
            mean as f32
        }
    };
    let mut data = Vec::with_capacity(a * r * c);
    for ang in 0..a {
        for row in 0..r {
            for u in 0..c {
                let t = (-mu * lines[(ang * r + row) * c + u]).exp();
                data.push(noisy(p.dark_counts + gain(row, u) * p.i0 * t));
            }
        }
    }
    let mut white = Vec::with_capacity(p.n_white * r * c);
    for _ in 0..p.n_white {
        for row in 0..r {
            for u in 0..c {
                white.push(noisy(p.dark_counts + gain(row, u) * p.i0));
            }
        }
    }
    let dark: Vec<f32> = (0..p.n_dark * r * c)
        .map(|_| noisy(p.dark_counts))
        .collect();
    PhantomScan {
        scan: ApsScan {
            data: Volume::new([a, r, c], data),
            white: (p.n_white > 0).then(|| Volume::new([p.n_white, r, c], white)),
            dark: (p.n_dark > 0).then(|| Volume::new([p.n_dark, r, c], dark)),
            theta: Some(theta_deg),
            theta_units: Some("degrees".into()),
        },
        mu,
        center_px,
        sinogram: sino,
    }
}

/// What the scan's reconstruction should be: each detector row's slice of the phantom on the `cols x cols` grid
/// about the rotation axis, `rows x cols x cols` (phantom values, not attenuation: multiply by `mu` to compare
/// with a reconstruction of the scan's line integrals).
pub fn truth(p: &ScanParams) -> Vec<f32> {
    if p.volume {
        let head = crate::phantom3d::scaled_3d(&crate::phantom3d::shepp_logan_3d(), p.object_scale);
        crate::phantom3d::volume(&head, p.rows, p.cols)
    } else {
        let slice: Vec<f32> = image(&scaled(&shepp_logan(), p.object_scale), p.cols, 1)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        std::iter::repeat_n(slice, p.rows).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_scan_sees_a_different_slice_on_each_row_and_its_truth_matches() {
        let p = ScanParams {
            angles: 3,
            rows: 6,
            cols: 32,
            volume: true,
            ..Default::default()
        };
        let s = scan(&p);
        let d = &s.scan.data.values;
        let (r, c) = (6, 32);
        // Angle 0, rows 0 and 3 differ (the head's cross-sections differ with height).
        assert_ne!(&d[0..c], &d[3 * c..4 * c]);
        let t = truth(&p);
        assert_eq!(t.len(), r * c * c);
        assert!(t.iter().any(|&v| v > 0.0));
        // The 2-D phantom's truth is the same slice on every row.
        let flat = truth(&ScanParams {
            rows: 2,
            cols: 16,
            ..Default::default()
        });
        assert_eq!(&flat[..256], &flat[256..]);
    }

    #[test]
    fn every_projection_carries_the_whole_mass() {
        // The integral of a projection over s equals the integral of the image: sum of value * pi * a * b.
        let e = shepp_logan();
        let mass: f64 = e
            .iter()
            .map(|e| e.value * std::f64::consts::PI * e.a * e.b)
            .sum();
        let cols = 400;
        let thetas: Vec<f64> = (0..7).map(|i| i as f64 * 0.45).collect();
        let sino = sinogram(&e, &thetas, cols, cols as f64 / 2.0, 8);
        for (i, row) in sino.chunks(cols).enumerate() {
            // Sum over pixels (pixel units) -> unit-square area: times (2 / cols)^2.
            let m: f64 = row.iter().sum::<f64>() * (2.0 / cols as f64).powi(2);
            assert!(
                (m - mass).abs() < 2e-4 * mass.abs().max(1.0),
                "angle {i}: {m} vs {mass}"
            );
        }
    }

    #[test]
    fn projection_at_zero_degrees_matches_summing_the_image_columns() {
        // At theta = 0 rays run along y: detector index u sees image column u (center cols/2 vs (N-1)/2 is a
        // half-pixel shift, so compare with the axis at (cols-1)/2).
        let e = shepp_logan();
        let n = 256;
        let img = image(&e, n, 4);
        let sino = sinogram(&e, &[0.0], n, (n as f64 - 1.0) / 2.0, 16);
        let mut worst: f64 = 0.0;
        for j in 0..n {
            let col: f64 = (0..n).map(|i| img[i * n + j]).sum();
            worst = worst.max((col - sino[j]).abs());
        }
        assert!(worst < 1.5, "max column difference {worst} pixels of value");
        // At 90 degrees rays run along x: detector index u sees image row N-1-u (y up).
        let sino90 = sinogram(
            &e,
            &[std::f64::consts::FRAC_PI_2],
            n,
            (n as f64 - 1.0) / 2.0,
            16,
        );
        let row_sum = |i: usize| (0..n).map(|j| img[i * n + j]).sum::<f64>();
        let worst90 = (0..n)
            .map(|u| (row_sum(n - 1 - u) - sino90[u]).abs())
            .fold(0.0, f64::max);
        assert!(worst90 < 1.5, "max row difference {worst90}");
    }

    #[test]
    fn phantom_values_lie_between_zero_and_one() {
        let img = image(&shepp_logan(), 128, 1);
        let (lo, hi) = img
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(lo >= -1e-12 && (hi - 1.0).abs() < 1e-12, "{lo}..{hi}");
    }

    #[test]
    fn scan_has_tooths_layout_and_exact_transmission() {
        let s = scan(&ScanParams::default());
        assert_eq!(s.scan.data.dims, [181, 2, 640]);
        assert_eq!(s.scan.white.as_ref().unwrap().dims, [10, 2, 640]);
        assert_eq!(s.scan.dark.as_ref().unwrap().dims, [10, 2, 640]);
        let theta = s.scan.theta.as_ref().unwrap();
        assert_eq!(theta.len(), 181);
        assert_eq!(theta[180], 180.0);
        assert_eq!(s.center_px, 320.0);
        // Normalising removes gain and dark exactly (noise-free): -ln(T) = mu * p.
        let f = s.scan.fields(None);
        let (flat, dark) = (f.flat, f.dark);
        for (ang, u) in [(0, 100), (90, 320), (180, 500)] {
            let raw = s.scan.data.plane(ang)[u] as f64;
            let t = (raw - dark[u] as f64) / (flat[u] as f64 - dark[u] as f64);
            let expect = s.mu * s.sinogram[ang * 640 + u];
            assert!((-t.ln() - expect).abs() < 1e-3, "{} vs {expect}", -t.ln());
        }
        let max_att = s.sinogram.iter().cloned().fold(0.0, f64::max) * s.mu;
        assert!((max_att - 2.0).abs() < 1e-9);
    }

    #[test]
    fn poisson_noise_is_seeded_and_has_the_right_spread() {
        let p = ScanParams {
            poisson: true,
            angles: 5,
            ..Default::default()
        };
        let a = scan(&p);
        assert_eq!(a.scan, scan(&p).scan, "same seed, same noise");
        let w = &a.scan.white.as_ref().unwrap().values;
        // Flat fields: mean ~ dark + gain * i0, variance ~ mean.
        let n = 640usize;
        let diffs: Vec<f64> = (0..n).map(|u| w[u] as f64 - w[2 * n + u] as f64).collect();
        let var = diffs.iter().map(|d| d * d).sum::<f64>() / n as f64 / 2.0;
        assert!((var / 20_100.0 - 1.0).abs() < 0.2, "variance {var}");
    }
}
