//! Figures of the models `experiments model` fits (`model-<metric>`): per metric and group, the measured points
//! at each size (mean and standard deviation per point) and the chosen model's curve through them and on over
//! counts up to four times the largest measured, dashed as a prediction, with its 90 % bootstrap interval
//! shaded; the title names the form and its held-out error, and the scalability law's peak where it has one.
//! Throughput figures mark with a dashed vertical line each count where the modelled bottleneck moves between
//! producer, broker and consumer.

use experiments::model::analysis::{bottleneck_moves, fit_all, Bottleneck, MetricFit};
use experiments::model::data::Layout;
use experiments::model::select::by_point;

use crate::chart::{Figure, Look, Panel, Series};
use crate::figures::Results;
use crate::style;

/// Curve samples between count 1 and the last predicted count.
const SAMPLES: usize = 64;

/// One figure per metric and group that has a model (none where the results cannot be modelled).
pub fn model_figures(r: &Results) -> Vec<Figure> {
    let Ok(layout) = Layout::detect(&r.table, &[], &[]) else {
        return vec![];
    };
    let Ok(fits) = fit_all(&r.table, &layout, &[], 1) else {
        return vec![];
    };
    let moves = bottleneck_moves(&fits, &layout);
    fits.iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let mut fig = figure(&layout, f, i)?;
            if f.metric.ends_with("throughput_msgs_per_s") {
                mark_moves(&mut fig, &moves, &f.series.group_text());
            }
            Some(fig)
        })
        .collect()
}

/// A dashed vertical line at each count where the model says the bottleneck moves (from the smaller of the
/// producer's and the consumer's modelled rate), named for the move.
fn mark_moves(fig: &mut Figure, moves: &[Bottleneck], group: &str) {
    let values: Vec<f64> = fig.panels[0]
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(0.0, f64::max);
    if !(lo.is_finite() && hi > lo) {
        return;
    }
    for b in moves.iter().filter(|b| b.group == group) {
        for w in b.moves.windows(2) {
            let n = w[1].0;
            fig.panels[0].series.push(Series {
                name: format!("bottleneck moves: {} -> {}", w[0].1, w[1].1),
                points: vec![(n, lo, 0.0), (n, hi, 0.0)],
                predicted: Some(vec![(lo, lo), (hi, hi)]),
            });
        }
    }
}

fn figure(layout: &Layout, f: &MetricFit, index: usize) -> Option<Figure> {
    let choice = f.choice.as_ref().ok()?;
    let mut sizes: Vec<f64> = f.series.obs.iter().map(|o| o.size).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let max_n = f.series.obs.iter().map(|o| o.n).fold(1.0, f64::max);
    let top = 4.0 * max_n;
    let mut series = Vec::new();
    for &size in &sizes {
        let name = if layout.size.is_empty() {
            "measured".to_string()
        } else {
            format!("{} {}", layout.size.join(" x "), style::si(size))
        };
        let mut measured: Vec<(f64, f64, f64)> = by_point(&f.series.obs)
            .iter()
            .filter(|p| p[0].size == size)
            .map(|p| {
                let v: Vec<f64> = p.iter().map(|o| o.value).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let sd =
                    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
                (p[0].n, mean, sd)
            })
            .collect();
        measured.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut curve, mut band) = (Vec::new(), Vec::new());
        for k in 0..=SAMPLES {
            // Geometric steps: the count axis is logarithmic.
            let n = top.powf(k as f64 / SAMPLES as f64);
            if let Some(p) = f.predict(n, size) {
                curve.push((n, p.value, 0.0));
                band.push(p.interval.unwrap_or((p.value, p.value)));
            }
        }
        series.push(Series::measured(name.clone(), measured));
        series.push(Series {
            name,
            points: curve,
            predicted: Some(band),
        });
    }
    let cv = choice.cv();
    let peak = choice
        .model()
        .usl_peak()
        .map(|p| format!(", peak at {}", style::si(p)))
        .unwrap_or_default();
    let group = if f.series.group.is_empty() {
        String::new()
    } else {
        format!(" [{}]", f.series.group_text())
    };
    let mut fig = Figure::new(
        &format!("model-{}-{index}", f.metric),
        &format!(
            "{}{group}: {} fit, held-out error {:.0} %{peak} (dashed: predicted)",
            f.metric,
            choice.model().form().name(),
            cv.median_ape_pct
        ),
        &layout.count.join(" x "),
        &f.metric,
    );
    fig.log_x = true;
    // Rates and times span factors; a range under 20x is drawn linearly anyway.
    fig.log_y = true;
    fig.look = Look::Lines;
    fig.panels = vec![Panel {
        title: String::new(),
        series,
    }];
    Some(fig)
}
