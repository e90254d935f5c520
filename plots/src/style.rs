//! How every figure looks, in one place: the colour-blind-safe palette (Okabe and Ito), marker shapes that tell
//! series apart in grey print too, tick positions (integers for counts, 1-2-5 steps, decades on log axes) and
//! numbers written for reading (`16k`, `1.5M`, `0.25`, never `16000.0`). Pure functions, tested here.

use plotters::style::RGBColor;

/// Okabe & Ito's palette, black last (it is the axes' colour): distinguishable with every common colour-vision
/// deficiency. Yellow is left out: it does not show on white.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// The colour of series `k` (wrapping).
pub fn color(k: usize) -> RGBColor {
    PALETTE[k % PALETTE.len()]
}

/// Marker shapes, cycled with the colours at a different period so no two of the first 21 series look alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
}

pub fn marker(k: usize) -> Marker {
    [Marker::Circle, Marker::Square, Marker::Triangle][k % 3]
}

/// The grid's colour: major lines only, light.
pub const GRID: RGBColor = RGBColor(225, 225, 225);

/// A number as a reader wants it on an axis or in a table: SI suffixes from 10,000 up (`16k`, `2.5M`), at most
/// three significant figures, no trailing zeros, `0` for zero.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e12 {
        (v / 1e12, "T")
    } else if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{}{suffix}", trim(scaled))
}

/// `v` with at most three significant figures (four below 10,000 so 1500 stays 1500), trailing zeros dropped.
fn trim(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.0123 -> 3 significant figures.
        (2 - a.log10().floor() as i32).clamp(0, 12) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A whole number with thousands separators (`1,234,567`), for tables.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let r = v.round();
    if (v - r).abs() > 1e-9 * v.abs().max(1.0) {
        return trim(v);
    }
    let digits = format!("{}", r.abs() as u128);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if r < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Whether every value is a whole number (a count: nodes, processes, partitions).
pub fn all_integers(values: &[f64]) -> bool {
    !values.is_empty()
        && values
            .iter()
            .all(|v| v.is_finite() && (v - v.round()).abs() < 1e-9)
}

/// Ticks for a linear axis over `[lo, hi]`: at most `max_n`, steps of 1, 2 or 5 times a power of ten; only whole
/// numbers when `integers`.
pub fn linear_ticks(lo: f64, hi: f64, max_n: usize, integers: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let max_n = max_n.max(2);
    let raw = (hi - lo) / (max_n - 1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if integers {
        step = step.max(1.0).round();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|i| {
            // Kill float noise (0.6000000000000001): round to the step's own decimals.
            let decimals = (-step.log10().floor()).max(0.0) as i32 + 1;
            let f = 10f64.powi(decimals);
            (i as f64 * step * f).round() / f
        })
        .collect()
}

/// Ticks for a log axis over `[lo, hi]` (both > 0): decades, with 2 and 5 between them when the range spans
/// less than three decades; only whole numbers when `integers`.
pub fn log_ticks(lo: f64, hi: f64, integers: bool) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return vec![];
    }
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mults: &[f64] = if d1 - d0 <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    for d in d0..=d1 {
        for m in mults {
            let t = m * 10f64.powi(d);
            if t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9) && (!integers || t >= 1.0) {
                out.push(t);
            }
        }
    }
    out
}

/// Ticks for an x axis of counts: the distinct values themselves when there are few (nodes 1, 2, 4, 8: each a
/// labelled tick, as the paper draws them), otherwise whole-number steps.
pub fn count_ticks(values: &[f64], lo: f64, hi: f64, log: bool) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    if !v.is_empty() && v.len() <= 12 {
        return v;
    }
    if log {
        log_ticks(lo, hi, true)
    } else {
        linear_ticks(lo, hi, 10, true)
    }
}

/// The x positions of the percentile-distribution plot: 1/(1-p) for p = 0 .. 99.999 %.
pub const PERCENTILE_TICKS: [(f64, &str); 7] = [
    (1.0, "0%"),
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1_000.0, "99.9%"),
    (10_000.0, "99.99%"),
    (100_000.0, "99.999%"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(si(16000.0), "16k");
        assert_eq!(si(1500.0), "1500");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(0.0123), "0.0123");
        assert_eq!(si(3.0), "3");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(-20_000.0), "-20k");
        assert_eq!(si(1e9), "1G");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(thousands(2.5), "2.5");
    }

    #[test]
    fn count_axes_tick_at_whole_numbers() {
        assert_eq!(linear_ticks(0.5, 2.5, 10, true), vec![1.0, 2.0]);
        assert_eq!(
            linear_ticks(0.0, 1.0, 6, false),
            vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        );
        assert!(linear_ticks(0.0, 37.0, 8, true)
            .iter()
            .all(|t| t.fract() == 0.0));
        assert_eq!(
            count_ticks(&[1.0, 2.0, 4.0, 8.0, 2.0], 0.7, 12.0, true),
            vec![1.0, 2.0, 4.0, 8.0]
        );
        let many: Vec<f64> = (1..=40).map(f64::from).collect();
        assert!(count_ticks(&many, 0.0, 41.0, false)
            .iter()
            .all(|t| t.fract() == 0.0));
        assert_eq!(log_ticks(0.5, 30.0, true), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(log_ticks(1.0, 1e6, false).len(), 7);
        assert!(all_integers(&[1.0, 4.0]) && !all_integers(&[1.0, 0.5]) && !all_integers(&[]));
    }

    #[test]
    fn the_palette_has_no_repeats_and_markers_cycle_out_of_step() {
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..21 {
            let c = color(k);
            seen.insert((c.0, c.1, c.2, marker(k) as u8));
        }
        assert_eq!(seen.len(), 21);
    }
}
