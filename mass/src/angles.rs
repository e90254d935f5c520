//! The order a frame source visits rotation angles in: the angle of projection frame k (k = 0, 1, 2, ...; flats
//! and darks are not counted) for a scan of `n` projections per 180 degrees. Pure arithmetic.
//!
//! - `sequential`: a continuous fly scan, `k * 180 / n` degrees, the stage turning on past 180 degrees for as many
//!   rotations as the scan lasts (the angle is the stage's, in [0, 360); a projection at 180 + a is the mirror of
//!   the one at a, which a back projection with the stage angle handles as it is).
//! - `back-and-forth`: 0 up to 180 - step, then 180 down to step, and again.
//! - `interlaced:K`: Trace's stride interleave of the `n` angles into subsets of K (stride `ceil(n / K)`):
//!   `0, s, 2s, ..., 1, 1 + s, ...` (n = 201, K = 16: 0, 13, 26, ..., 195, 1, 14, ...), repeated.
//! - `golden`: `k * 180 * (sqrt 5 - 1) / 2 mod 180` degrees; any run of consecutive frames covers 180 degrees
//!   nearly evenly (at most three distinct gaps), so a window of the latest frames is always a usable scan.

use std::fmt;

/// How a scan orders its angles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AngleOrder {
    Sequential,
    BackAndForth,
    /// Subsets of this many angles (Trace's `ordered_subset(n, K)`).
    Interlaced(u32),
    Golden,
}

/// Why an angle order did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "angle order `{given}`: {why} (sequential, back-and-forth, interlaced:K with K >= 1, golden)"
)]
pub struct AngleOrderError {
    pub given: String,
    pub why: &'static str,
}

/// The golden ratio's conjugate, (sqrt 5 - 1) / 2.
pub const GOLDEN_FRACTION: f64 = 0.618_033_988_749_894_9;

impl AngleOrder {
    /// Parse `sequential`, `back-and-forth`, `interlaced:K` or `golden`.
    pub fn parse(s: &str) -> Result<Self, AngleOrderError> {
        let err = |why| AngleOrderError {
            given: s.to_string(),
            why,
        };
        match s.trim() {
            "sequential" => Ok(AngleOrder::Sequential),
            "back-and-forth" => Ok(AngleOrder::BackAndForth),
            "golden" => Ok(AngleOrder::Golden),
            other => match other.strip_prefix("interlaced:") {
                Some(k) => match k.trim().parse::<u32>() {
                    Ok(k) if k >= 1 => Ok(AngleOrder::Interlaced(k)),
                    Ok(_) => Err(err("K must be at least 1")),
                    Err(_) => Err(err("K is not a whole number")),
                },
                None if other == "interlaced" => Err(err("interlaced needs K, e.g. interlaced:16")),
                None => Err(err("unknown order")),
            },
        }
    }

    /// The angle in degrees of projection frame `k` of a scan with `n` projections per 180 degrees (`n >= 1`).
    pub fn angle_deg(self, k: u64, n: u32) -> f64 {
        let n = n.max(1) as u64;
        let step = 180.0 / n as f64;
        match self {
            AngleOrder::Sequential => ((k % (2 * n)) as f64 * step).rem_euclid(360.0),
            AngleOrder::BackAndForth => {
                let (pass, i) = (k / n, k % n);
                if pass % 2 == 0 {
                    i as f64 * step
                } else {
                    180.0 - i as f64 * step
                }
            }
            AngleOrder::Interlaced(subset) => {
                let index = interlaced_index(k % n, n, subset as u64);
                index as f64 * step
            }
            AngleOrder::Golden => ((k as f64 * 180.0 * GOLDEN_FRACTION) % 180.0).rem_euclid(180.0),
        }
    }
}

/// The angle index visited at position `p` (< n) of Trace's stride interleave: stride `s = ceil(n / subset)`,
/// positions run through `0, s, 2s, ...`, then `1, 1 + s, ...`.
fn interlaced_index(p: u64, n: u64, subset: u64) -> u64 {
    let s = n.div_ceil(subset.max(1));
    // n = q s + rem: the offsets r < rem hold q + 1 indices (r, r + s, ...), the others q.
    let (q, rem) = (n / s, n % s);
    let (r, j) = if p < rem * (q + 1) {
        (p / (q + 1), p % (q + 1))
    } else {
        let p = p - rem * (q + 1);
        (rem + p / q, p % q)
    };
    r + j * s
}

impl fmt::Display for AngleOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AngleOrder::Sequential => write!(f, "sequential"),
            AngleOrder::BackAndForth => write!(f, "back-and-forth"),
            AngleOrder::Interlaced(k) => write!(f, "interlaced:{k}"),
            AngleOrder::Golden => write!(f, "golden"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn angles(order: AngleOrder, count: u64, n: u32) -> Vec<f64> {
        (0..count).map(|k| order.angle_deg(k, n)).collect()
    }

    #[test]
    fn sequential_is_a_fly_scan_that_turns_on_past_180() {
        assert_eq!(
            angles(AngleOrder::Sequential, 10, 4),
            vec![0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0, 0.0, 45.0]
        );
    }

    #[test]
    fn back_and_forth_returns_the_way_it_came() {
        assert_eq!(
            angles(AngleOrder::BackAndForth, 10, 4),
            vec![0.0, 45.0, 90.0, 135.0, 180.0, 135.0, 90.0, 45.0, 0.0, 45.0]
        );
    }

    #[test]
    fn interlaced_matches_traces_ordered_subsets() {
        // n = 201, K = 16: stride 13, as the note on Trace's DAQ emulator says.
        let step = 180.0 / 201.0;
        let idx: Vec<u64> = angles(AngleOrder::Interlaced(16), 201, 201)
            .iter()
            .map(|a| (a / step).round() as u64)
            .collect();
        assert_eq!(&idx[..4], &[0, 13, 26, 39]);
        assert_eq!(idx[15], 195);
        assert_eq!(&idx[16..18], &[1, 14]);
        // Every angle once per pass, then the pass again.
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, (0..201).collect::<Vec<_>>());
        assert_eq!(AngleOrder::Interlaced(16).angle_deg(201, 201), 0.0);
        // K >= n is sequential; K = 1 too (stride n: one subset per angle).
        assert_eq!(
            angles(AngleOrder::Interlaced(8), 4, 4),
            vec![0.0, 45.0, 90.0, 135.0]
        );
        assert_eq!(
            angles(AngleOrder::Interlaced(1), 4, 4),
            vec![0.0, 45.0, 90.0, 135.0]
        );
        assert_eq!(
            angles(AngleOrder::Interlaced(2), 4, 4),
            vec![0.0, 90.0, 45.0, 135.0]
        );
    }

    #[test]
    fn golden_angles_leave_at_most_three_gaps_in_any_window() {
        let a = angles(AngleOrder::Golden, 3, 100);
        assert_eq!(a[0], 0.0);
        assert!((a[1] - 111.246_117_974_981).abs() < 1e-9, "{}", a[1]);
        assert!((a[2] - 42.492_235_949_962).abs() < 1e-9, "{}", a[2]);
        for start in [0u64, 17, 1000] {
            for len in [5u64, 34, 89, 100] {
                let mut w: Vec<f64> = (start..start + len)
                    .map(|k| AngleOrder::Golden.angle_deg(k, 100))
                    .collect();
                w.sort_by(f64::total_cmp);
                let mut gaps: Vec<f64> = w.windows(2).map(|p| p[1] - p[0]).collect();
                gaps.push(w[0] + 180.0 - w[len as usize - 1]);
                gaps.sort_by(f64::total_cmp);
                gaps.dedup_by(|x, y| (*x - *y).abs() < 1e-6);
                assert!(gaps.len() <= 3, "start {start} len {len}: {gaps:?}");
            }
        }
    }

    #[test]
    fn orders_parse_and_print_back() {
        for s in ["sequential", "back-and-forth", "interlaced:16", "golden"] {
            assert_eq!(AngleOrder::parse(s).unwrap().to_string(), s);
        }
        for bad in ["interlaced", "interlaced:0", "interlaced:x", "random", ""] {
            let e = AngleOrder::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn any_frame_index_has_a_finite_angle() {
        for order in [
            AngleOrder::Sequential,
            AngleOrder::BackAndForth,
            AngleOrder::Interlaced(7),
            AngleOrder::Golden,
        ] {
            for k in [0, 1, u64::MAX / 2, u64::MAX] {
                for n in [0, 1, 3, u32::MAX] {
                    let a = order.angle_deg(k, n);
                    assert!(
                        a.is_finite() && (0.0..360.0).contains(&a),
                        "{order} {k} {n}: {a}"
                    );
                }
            }
        }
    }
}
