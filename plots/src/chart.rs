//! One figure, drawn with plotters to SVG and PNG: panels side by side (facets), series of points with error
//! bars joined by lines, linear or log axes, numeric or categorical x.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::PlotError;

/// One series: `(x, mean, sd)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One facet.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// A figure: its file name (without extension), labels with units, axes, panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub file_stem: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Names of x = 0, 1, 2, ... when x is categorical.
    pub x_categories: Option<Vec<String>>,
    pub panels: Vec<Panel>,
}

static FONT: Once = Once::new();

/// Register the compiled-in font as "sans-serif" (idempotent).
pub fn register_font() {
    FONT.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| ())
        .expect("the compiled-in font parses");
    });
}

/// Draw `fig` as `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns both paths.
pub fn render(fig: &Figure, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    // A log y axis over less than a factor of 20 shows no decade labels: draw such data linearly.
    let mut fig = fig.clone();
    let spread = |vals: Vec<f64>| {
        let pos: Vec<f64> = vals
            .into_iter()
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        let lo = pos.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = pos.iter().cloned().fold(0.0, f64::max);
        if lo.is_finite() && lo > 0.0 {
            hi / lo
        } else {
            1.0
        }
    };
    let points = || {
        fig.panels
            .iter()
            .flat_map(|p| p.series.iter())
            .flat_map(|s| s.points.iter())
    };
    if fig.log_y && spread(points().map(|p| p.1).collect()) < 20.0 {
        fig.log_y = false;
    }
    let fig = &fig;
    let width = 520 * fig.panels.len().max(1) as u32 + 40;
    let size = (width, 440);
    let svg = dir.join(format!("{}.svg", fig.file_stem));
    let png = dir.join(format!("{}.png", fig.file_stem));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| PlotError::Draw {
            path: path.clone(),
            message,
        }
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(root, fig).map_err(err(&svg))?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw(root, fig).map_err(err(&png))?;
    }
    Ok(vec![svg, png])
}

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
        (
            (lo - pad).min(if lo >= 0.0 { 0.0 } else { lo - pad }),
            hi + pad,
        )
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &Figure) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(&fig.title, ("sans-serif", 22))
        .map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, fig.panels.len().max(1)));
    let all = || {
        fig.panels
            .iter()
            .flat_map(|p| p.series.iter())
            .flat_map(|s| s.points.iter())
    };
    let (x0, x1) = match &fig.x_categories {
        Some(c) => (-0.5, c.len() as f64 - 0.5),
        None => range(all().map(|p| p.0), fig.log_x),
    };
    // On a log axis an error bar's bottom is drawn at no less than a third of its mean, so the range follows.
    let bottom = |p: &(f64, f64, f64)| {
        if fig.log_y {
            (p.1 - p.2).max(p.1 / 3.0)
        } else {
            p.1 - p.2
        }
    };
    let (y0, y1) = range(all().flat_map(|p| [bottom(p), p.1 + p.2, p.1]), fig.log_y);
    for (area, panel) in panels.iter().zip(&fig.panels) {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&panel.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                let cats = fig.x_categories.clone();
                let xfmt = move |x: &f64| match &cats {
                    Some(c) => {
                        let i = x.round();
                        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < c.len() {
                            c[i as usize].clone()
                        } else {
                            String::new()
                        }
                    }
                    None => format!("{}", (x * 1000.0).round() / 1000.0),
                };
                let mut mesh = chart.configure_mesh();
                mesh.x_desc(&fig.x_label)
                    .y_desc(&fig.y_label)
                    .x_label_formatter(&xfmt)
                    .label_style(("sans-serif", 13))
                    .axis_desc_style(("sans-serif", 14));
                if let Some(c) = &fig.x_categories {
                    mesh.x_labels(c.len() * 2 + 1);
                }
                mesh.draw().map_err(|x| e(&x))?;
                for (k, s) in panel.series.iter().enumerate() {
                    let color = Palette99::pick(k).to_rgba();
                    let pts: Vec<(f64, f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|p| {
                            p.1.is_finite()
                                && (!fig.log_y || p.1 > 0.0)
                                && (!fig.log_x || p.0 > 0.0)
                        })
                        .collect();
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter().map(|p| (p.0, p.1)),
                            color.stroke_width(2),
                        ))
                        .map_err(|x| e(&x))?
                        .label(&s.name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(
                            pts.iter()
                                .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
                        )
                        .map_err(|x| e(&x))?;
                    chart
                        .draw_series(pts.iter().filter(|p| p.2 > 0.0).map(|p| {
                            let lo = bottom(p);
                            ErrorBar::new_vertical(
                                p.0,
                                lo,
                                p.1,
                                p.1 + p.2,
                                color.stroke_width(1),
                                8,
                            )
                        }))
                        .map_err(|x| e(&x))?;
                }
                if panel.series.len() > 1
                    || panel.series.first().is_some_and(|s| !s.name.is_empty())
                {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .label_font(("sans-serif", 12))
                        .position(SeriesLabelPosition::UpperLeft)
                        .draw()
                        .map_err(|x| e(&x))?;
                }
            }};
        }
        match (fig.log_x, fig.log_y) {
            (false, false) => body!(builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|x| e(&x))?),
            (false, true) => body!(builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|x| e(&x))?),
            (true, false) => body!(builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(|x| e(&x))?),
            (true, true) => body!(builder
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(|x| e(&x))?),
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
