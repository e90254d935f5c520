//! One figure, drawn with plotters to SVG and PNG: panels side by side (facets) sharing one legend outside the
//! data, series as lines with markers and error bars, as bare curves (percentile distributions), or as grouped
//! bars; linear or log axes, numeric or categorical x. Ticks, numbers, colours and markers come from
//! [`crate::style`].

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::style;
use crate::PlotError;

/// One series: `(x, mean, sd)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
    /// A model's prediction rather than measurements: `(lo, hi)` of its interval at each point, shaded; the
    /// curve is drawn dashed, without markers or error bars.
    pub predicted: Option<Vec<(f64, f64)>>,
}

impl Series {
    /// Measured points.
    pub fn measured(name: String, points: Vec<(f64, f64, f64)>) -> Self {
        Series {
            name,
            points,
            predicted: None,
        }
    }
}

/// One facet.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// How series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Look {
    /// Lines through markers, with the standard deviation as error bars.
    #[default]
    Lines,
    /// Lines only (dense data: a percentile distribution, a time series).
    Curves,
    /// Grouped bars per x (x becomes categorical), error bars on top.
    Bars,
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
    /// Ticks chosen by the figure (position, label), instead of the axis's own.
    pub x_ticks: Option<Vec<(f64, String)>>,
    pub look: Look,
    pub panels: Vec<Panel>,
}

impl Figure {
    /// A figure with the defaults: lines with markers, the axes' own ticks.
    pub fn new(file_stem: &str, title: &str, x_label: &str, y_label: &str) -> Self {
        Figure {
            file_stem: file_stem.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            x_categories: None,
            x_ticks: None,
            look: Look::Lines,
            panels: vec![],
        }
    }

    /// Series names in order of first appearance over all panels: a name has one colour in every panel.
    pub fn series_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in self.panels.iter().flat_map(|p| &p.series) {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
        names
    }

    fn has_legend(&self) -> bool {
        let names = self.series_names();
        names.len() > 1 || names.first().is_some_and(|n| !n.is_empty())
    }

    /// Bars need categories: numeric x values become their labels.
    fn normalised(&self) -> Figure {
        let mut fig = self.clone();
        if fig.look == Look::Bars && fig.x_categories.is_none() {
            let mut xs: Vec<f64> = fig
                .panels
                .iter()
                .flat_map(|p| &p.series)
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            for s in fig.panels.iter_mut().flat_map(|p| &mut p.series) {
                for p in &mut s.points {
                    p.0 = xs.iter().position(|x| *x == p.0).unwrap_or(0) as f64;
                }
            }
            fig.x_categories = Some(xs.iter().map(|x| style::si(*x)).collect());
            fig.log_x = false;
        }
        if fig.x_categories.is_some() {
            fig.log_x = false;
        }
        // A log y axis over less than a factor of 20 shows no decade labels: draw such data linearly.
        let pos: Vec<f64> = fig
            .panels
            .iter()
            .flat_map(|p| &p.series)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        let lo = pos.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = pos.iter().cloned().fold(0.0, f64::max);
        if fig.log_y && (!lo.is_finite() || hi / lo < 20.0) {
            fig.log_y = false;
        }
        fig
    }
}

/// An f64 axis (linear or log) whose ticks are the ones given, with no minor grid: plotters' own key points for
/// f64 print 0.2 steps on count axes and pack minor lines between them.
pub struct Ticked<R: Ranged<ValueType = f64>> {
    inner: R,
    ticks: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ticked<R> {
    pub fn new(inner: R, ticks: Vec<f64>) -> Self {
        Ticked { inner, ticks }
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;
    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// A linear axis over `lo..hi` with these ticks.
pub fn linear_axis(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked<RangedCoordf64> {
    Ticked::new(RangedCoordf64::from(lo..hi), ticks)
}

/// A log axis over `lo..hi` with these ticks.
pub fn log_axis(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked<LogCoord<f64>> {
    Ticked::new(LogCoord::from((lo..hi).log_scale()), ticks)
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

/// Width of the legend column for these names (the font is about 7 px per character at 13 px).
pub(crate) fn legend_width(names: &[String]) -> u32 {
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    (longest * 7 + 56).clamp(110, 460)
}

/// Draw `fig` as `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns both paths.
pub fn render(fig: &Figure, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let fig = fig.normalised();
    let legend = if fig.has_legend() {
        legend_width(&fig.series_names())
    } else {
        0
    };
    let width = 470 * fig.panels.len().max(1) as u32 + 30 + legend;
    let size = (width, 420);
    let svg = dir.join(format!("{}.svg", fig.file_stem));
    let png = dir.join(format!("{}.png", fig.file_stem));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| PlotError::Draw {
            path: path.clone(),
            message,
        }
    };
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        &fig,
        legend,
    )
    .map_err(err(&svg))?;
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        &fig,
        legend,
    )
    .map_err(err(&png))?;
    Ok(vec![svg, png])
}

fn range(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> (f64, f64) {
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
        let lo = if from_zero && lo >= 0.0 {
            0.0
        } else {
            lo - pad
        };
        (lo, hi + pad)
    }
}

/// Draw one legend entry's sample (line and/or marker, or a bar swatch) centred at `(x, y)`.
pub(crate) fn legend_sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    k: usize,
    look: Look,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let c = style::color(k);
    let e = |x: &dyn std::fmt::Display| x.to_string();
    match look {
        Look::Bars => area
            .draw(&Rectangle::new(
                [(x - 9, y - 6), (x + 9, y + 6)],
                c.filled(),
            ))
            .map_err(|x| e(&x)),
        Look::Curves => area
            .draw(&PathElement::new(
                vec![(x - 12, y), (x + 12, y)],
                c.stroke_width(2),
            ))
            .map_err(|x| e(&x)),
        Look::Lines => {
            area.draw(&PathElement::new(
                vec![(x - 12, y), (x + 12, y)],
                c.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
            draw_marker(area, (x, y), k).map_err(|x| e(&x))
        }
    }
}

fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    k: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let c = style::color(k).filled();
    match style::marker(k) {
        style::Marker::Circle => area.draw(&Circle::new((x, y), 4, c)),
        style::Marker::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], c)),
        style::Marker::Triangle => area.draw(&Polygon::new(
            vec![(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)],
            c,
        )),
    }
}

/// The legend column: one row per name, sample then text.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: &[String],
    look: Look,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (k, name) in names.iter().enumerate() {
        let y = 40 + 22 * k as i32;
        legend_sample(area, (18, y), k, look)?;
        area.draw(&Text::new(name.clone(), (38, y - 7), font.clone()))
            .map_err(|x| x.to_string())?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
    legend_w: u32,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(&fig.title, ("sans-serif", 19))
        .map_err(|x| e(&x))?;
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w.saturating_sub(legend_w));
    let names = fig.series_names();
    if legend_w > 0 {
        draw_legend(&legend_area, &names, fig.look)?;
    }
    let panels = plot_area.split_evenly((1, fig.panels.len().max(1)));
    let axes = Axes::of(fig, &names);
    let ((x0, x1), (y0, y1)) = (axes.x, axes.y);
    let x_keys: Vec<f64> = axes.x_ticks.iter().map(|t| t.0).collect();
    let y_ticks = &axes.y_ticks;
    for (area, panel) in panels.iter().zip(&fig.panels) {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&panel.title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(64);
        let (lx, ly) = (
            || linear_axis(x0, x1, x_keys.clone()),
            || linear_axis(y0, y1, y_ticks.clone()),
        );
        let (gx, gy) = (
            || log_axis(x0, x1, x_keys.clone()),
            || log_axis(y0, y1, y_ticks.clone()),
        );
        match (fig.log_x, fig.log_y) {
            (false, false) => draw_panel(
                builder.build_cartesian_2d(lx(), ly()).map_err(|x| e(&x))?,
                &axes,
                panel,
            ),
            (false, true) => draw_panel(
                builder.build_cartesian_2d(lx(), gy()).map_err(|x| e(&x))?,
                &axes,
                panel,
            ),
            (true, false) => draw_panel(
                builder.build_cartesian_2d(gx(), ly()).map_err(|x| e(&x))?,
                &axes,
                panel,
            ),
            (true, true) => draw_panel(
                builder.build_cartesian_2d(gx(), gy()).map_err(|x| e(&x))?,
                &axes,
                panel,
            ),
        }?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// What every panel of a figure shares: its series' names (a series keeps its colour across panels), and the
/// axes' ranges and ticks.
struct Axes<'a> {
    fig: &'a Figure,
    names: &'a [String],
    x: (f64, f64),
    y: (f64, f64),
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<f64>,
}

impl<'a> Axes<'a> {
    fn of(fig: &'a Figure, names: &'a [String]) -> Self {
        let xs: Vec<f64> = all_points(fig).map(|p| p.0).collect();
        let (x0, x1) = x_range(fig, &xs);
        let axes = Axes {
            fig,
            names,
            x: (x0, x1),
            y: (0.0, 0.0),
            x_ticks: x_ticks(fig, &xs, x0, x1)
                .into_iter()
                .filter(|t| t.0 >= x0 && t.0 <= x1)
                .collect(),
            y_ticks: Vec::new(),
        };
        let (y0, y1) = range(
            all_points(fig).flat_map(|p| [axes.bottom(p), p.1 + p.2, p.1]),
            fig.log_y,
            fig.look == Look::Bars || !fig.log_y,
        );
        let y_ticks = if fig.log_y {
            style::log_ticks(y0, y1, false)
        } else {
            style::linear_ticks(y0, y1, 7, false)
        };
        Axes {
            y: (y0, y1),
            y_ticks,
            ..axes
        }
    }

    /// The bottom of a point's error bar: on a log axis no less than a third of its mean (the range follows).
    fn bottom(&self, p: &(f64, f64, f64)) -> f64 {
        if self.fig.log_y {
            (p.1 - p.2).max(p.1 / 3.0)
        } else {
            p.1 - p.2
        }
    }

    /// An x tick's label.
    fn x_label(&self, x: &f64) -> String {
        self.x_ticks
            .iter()
            .find(|t| (t.0 - x).abs() <= 1e-9 * t.0.abs().max(1.0))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }
}

fn all_points(fig: &Figure) -> impl Iterator<Item = &(f64, f64, f64)> {
    fig.panels
        .iter()
        .flat_map(|p| p.series.iter())
        .flat_map(|s| s.points.iter())
}

/// The x range: the categories', from the figure's own ticks (the last at or below the data to the first at or
/// above it), or the data's.
fn x_range(fig: &Figure, xs: &[f64]) -> (f64, f64) {
    match (&fig.x_categories, &fig.x_ticks) {
        (Some(c), _) => (-0.5, c.len() as f64 - 0.5),
        (None, Some(t)) if !xs.is_empty() => {
            let (lo, hi) = range(xs.iter().copied(), fig.log_x, false);
            let (dlo, dhi) = (lo * 1.5, hi / 1.5);
            let below = t
                .iter()
                .map(|t| t.0)
                .filter(|x| *x <= dlo)
                .fold(f64::NAN, f64::max);
            let above = t
                .iter()
                .map(|t| t.0)
                .filter(|x| *x >= dhi)
                .fold(f64::NAN, f64::min);
            (
                if below.is_nan() { lo } else { below },
                if above.is_nan() { hi } else { above },
            )
        }
        _ => range(xs.iter().copied(), fig.log_x, false),
    }
}

/// x ticks: the figure's, the categories, the counts themselves, or 1-2-5 steps.
fn x_ticks(fig: &Figure, xs: &[f64], x0: f64, x1: f64) -> Vec<(f64, String)> {
    if let Some(t) = &fig.x_ticks {
        return t.clone();
    }
    if let Some(c) = &fig.x_categories {
        return c
            .iter()
            .enumerate()
            .map(|(i, n)| (i as f64, n.clone()))
            .collect();
    }
    let t = if style::all_integers(xs) {
        style::count_ticks(xs, x0, x1, fig.log_x)
    } else if fig.log_x {
        style::log_ticks(x0, x1, false)
    } else {
        style::linear_ticks(x0, x1, 8, false)
    };
    t.into_iter().map(|v| (v, style::si(v))).collect()
}

/// One panel: its mesh, then each series as bars or lines (with markers and error bars).
fn draw_panel<DB: DrawingBackend, X, Y>(
    mut chart: ChartContext<'_, DB, Cartesian2d<Ticked<X>, Ticked<Y>>>,
    axes: &Axes,
    panel: &Panel,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let fig = axes.fig;
    let x_fmt = |x: &f64| axes.x_label(x);
    let y_fmt = |y: &f64| style::si(*y);
    chart
        .configure_mesh()
        .x_desc(&fig.x_label)
        .y_desc(&fig.y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(style::GRID.stroke_width(1))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    let n_series = panel.series.len().max(1) as f64;
    for (j, s) in panel.series.iter().enumerate() {
        let k = axes.names.iter().position(|n| *n == s.name).unwrap_or(0);
        let color = style::color(k);
        let pts: Vec<(f64, f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite() && (!fig.log_y || p.1 > 0.0) && (!fig.log_x || p.0 > 0.0))
            .collect();
        match fig.look {
            Look::Bars => {
                // A series' slot among its panel's bars (its first, should a name repeat).
                let j = panel
                    .series
                    .iter()
                    .position(|o| o.name == s.name)
                    .unwrap_or(j) as f64;
                let bw = 0.8 / n_series;
                let base = if fig.log_y {
                    axes.y.0
                } else {
                    0.0_f64.max(axes.y.0)
                };
                chart
                    .draw_series(pts.iter().map(|p| {
                        let l = p.0 - 0.4 + j * bw;
                        Rectangle::new(
                            [(l + bw * 0.06, base), (l + bw * 0.94, p.1)],
                            color.filled(),
                        )
                    }))
                    .map_err(|x| e(&x))?;
                chart
                    .draw_series(pts.iter().filter(|p| p.2 > 0.0).map(|p| {
                        let c = p.0 - 0.4 + (j + 0.5) * bw;
                        ErrorBar::new_vertical(
                            c,
                            axes.bottom(p),
                            p.1,
                            p.1 + p.2,
                            BLACK.stroke_width(1),
                            6,
                        )
                    }))
                    .map_err(|x| e(&x))?;
            }
            Look::Curves | Look::Lines if s.predicted.is_some() => {
                draw_predicted(&mut chart, s, color, fig)?;
                continue;
            }
            Look::Curves | Look::Lines => {
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        color.stroke_width(2),
                    ))
                    .map_err(|x| e(&x))?;
            }
        }
        if fig.look == Look::Lines {
            chart
                .draw_series(pts.iter().map(|p| {
                    EmptyElement::at((p.0, p.1))
                        + match style::marker(k) {
                            style::Marker::Circle => {
                                Circle::new((0, 0), 4, color.filled()).into_dyn()
                            }
                            style::Marker::Square => {
                                Rectangle::new([(-4, -4), (4, 4)], color.filled()).into_dyn()
                            }
                            style::Marker::Triangle => {
                                Polygon::new(vec![(0, -5), (-5, 4), (5, 4)], color.filled())
                                    .into_dyn()
                            }
                        }
                }))
                .map_err(|x| e(&x))?;
            chart
                .draw_series(pts.iter().filter(|p| p.2 > 0.0).map(|p| {
                    ErrorBar::new_vertical(
                        p.0,
                        axes.bottom(p),
                        p.1,
                        p.1 + p.2,
                        color.stroke_width(1),
                        8,
                    )
                }))
                .map_err(|x| e(&x))?;
        }
    }
    Ok(())
}

/// A predicted series: its interval shaded (a polygon from the lower edge out and the upper edge back), then the
/// curve dashed.
fn draw_predicted<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<Ticked<X>, Ticked<Y>>>,
    s: &Series,
    color: RGBColor,
    fig: &Figure,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let ok = |x: f64, y: f64| {
        x.is_finite() && y.is_finite() && (!fig.log_y || y > 0.0) && (!fig.log_x || x > 0.0)
    };
    let band = s.predicted.as_deref().unwrap_or(&[]);
    let mut outline: Vec<(f64, f64)> = s
        .points
        .iter()
        .zip(band)
        .filter(|(p, b)| ok(p.0, b.0))
        .map(|(p, b)| (p.0, b.0))
        .collect();
    let upper: Vec<(f64, f64)> = s
        .points
        .iter()
        .zip(band)
        .filter(|(p, b)| ok(p.0, b.1))
        .map(|(p, b)| (p.0, b.1))
        .collect();
    outline.extend(upper.into_iter().rev());
    if outline.len() >= 3 {
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.15).filled(),
            )))
            .map_err(|x| e(&x))?;
    }
    chart
        .draw_series(DashedLineSeries::new(
            s.points.iter().filter(|p| ok(p.0, p.1)).map(|p| (p.0, p.1)),
            6,
            4,
            color.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
    Ok(())
}
