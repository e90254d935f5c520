//! A run over time (elastic runs, issue 13): panels stacked on one time axis, each with its own y axis:
//! rates (target, produced, consumed), lag, and the consumer count as a step line, with the scaling events
//! marked as vertical lines on every panel. Drawn from a run's `timeline.csv`.

use std::path::{Path, PathBuf};

use experiments::results::TimelineRow;
use plotters::prelude::*;

use crate::PlotError;

/// One line of a track: `(t_s, value)` points, drawn joined or as steps (each value held over its second).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub steps: bool,
}

impl Line {
    fn new(name: &str, points: Vec<(f64, f64)>, steps: bool) -> Self {
        Line {
            name: name.into(),
            points,
            steps,
        }
    }
}

/// One stacked panel: lines sharing a y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub y_label: String,
    pub lines: Vec<Line>,
}

/// A figure over time: tracks stacked, events as `(time, up)` marks on each.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeFigure {
    pub file_stem: String,
    pub title: String,
    pub x_label: String,
    pub tracks: Vec<Track>,
    /// `(t_s, true for a scale-up)`.
    pub events: Vec<(f64, bool)>,
}

/// The tracks of a run's timeline.
pub fn from_timeline(file_stem: &str, title: &str, rows: &[TimelineRow]) -> TimeFigure {
    let pts =
        |f: &dyn Fn(&TimelineRow) -> f64| rows.iter().map(|r| (r.t_s, f(r))).collect::<Vec<_>>();
    let events = rows
        .iter()
        .flat_map(|r| {
            r.events
                .split("; ")
                .filter(|e| !e.is_empty())
                .map(|e| (r.t_s - 0.5, e.starts_with("up ")))
                .collect::<Vec<_>>()
        })
        .collect();
    TimeFigure {
        file_stem: file_stem.into(),
        title: title.into(),
        x_label: "time since the run's first process started (s)".into(),
        tracks: vec![
            Track {
                y_label: "rate (msg/s)".into(),
                lines: vec![
                    Line::new("target", pts(&|r| r.target_msgs_per_s), false),
                    Line::new("produced", pts(&|r| r.produced_msgs_per_s), false),
                    Line::new("consumed", pts(&|r| r.consumed_msgs_per_s), false),
                ],
            },
            Track {
                y_label: "lag (messages)".into(),
                lines: vec![Line::new("lag", pts(&|r| r.lag_msgs), false)],
            },
            Track {
                y_label: "consumers".into(),
                lines: vec![Line::new("consumers", pts(&|r| r.consumers as f64), true)],
            },
        ],
        events,
    }
}

/// Draw `fig` as `<dir>/<stem>.svg` and `.png`.
/// The legend column beside each track.
const LEGEND_W: u32 = 150;

pub fn render(fig: &TimeFigure, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    crate::chart::register_font();
    let size = (900 + LEGEND_W, 220 * fig.tracks.len().max(1) as u32 + 60);
    let svg = dir.join(format!("{}.svg", fig.file_stem));
    let png = dir.join(format!("{}.png", fig.file_stem));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| PlotError::Draw {
            path: path.clone(),
            message,
        }
    };
    draw(SVGBackend::new(&svg, size).into_drawing_area(), fig).map_err(err(&svg))?;
    draw(BitMapBackend::new(&png, size).into_drawing_area(), fig).map_err(err(&png))?;
    Ok(vec![svg, png])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    fig: &TimeFigure,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(&fig.title, ("sans-serif", 20))
        .map_err(|x| e(&x))?;
    let areas = root.split_evenly((fig.tracks.len().max(1), 1));
    let all_x = fig
        .tracks
        .iter()
        .flat_map(|t| t.lines.iter())
        .flat_map(|l| l.points.iter().map(|p| p.0));
    let x1 = all_x.fold(1.0_f64, f64::max);
    for (i, (area, track)) in areas.iter().zip(&fig.tracks).enumerate() {
        let y1 = track
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(1.0_f64, f64::max)
            * 1.1;
        let last = i + 1 == fig.tracks.len();
        let (w, _) = area.dim_in_pixel();
        let (area, legend) = area.split_horizontally(w.saturating_sub(LEGEND_W));
        let names: Vec<String> = track.lines.iter().map(|l| l.name.clone()).collect();
        crate::chart::draw_legend(&legend, &names, crate::chart::Look::Curves)?;
        let y_ticks = crate::style::linear_ticks(0.0, y1, 6, track.lines.iter().all(|l| l.steps));
        let x_ticks = crate::style::linear_ticks(0.0, x1, 10, false);
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(if last { 40 } else { 20 })
            .y_label_area_size(70)
            .build_cartesian_2d(
                crate::chart::linear_axis(0.0, x1, x_ticks),
                crate::chart::linear_axis(0.0, y1, y_ticks),
            )
            .map_err(|x| e(&x))?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(&track.y_label)
            .x_label_formatter(&|x: &f64| crate::style::si(*x))
            .y_label_formatter(&|y: &f64| crate::style::si(*y))
            .bold_line_style(crate::style::GRID.stroke_width(1))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13));
        if last {
            mesh.x_desc(&fig.x_label);
        }
        mesh.draw().map_err(|x| e(&x))?;
        for &(t, up) in &fig.events {
            // Scale-ups vermillion, everything else (scale-downs, faults) blue, both light.
            let color = if up {
                crate::style::color(3).mix(0.5)
            } else {
                crate::style::color(0).mix(0.5)
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0.0), (t, y1)],
                    color.stroke_width(1),
                )))
                .map_err(|x| e(&x))?;
        }
        for (k, line) in track.lines.iter().enumerate() {
            let points = &line.points;
            let color = crate::style::color(k);
            let path: Vec<(f64, f64)> = if line.steps {
                // Each value holds over its second (t - 1, t].
                points
                    .iter()
                    .flat_map(|&(t, v)| [(t - 1.0, v), (t, v)])
                    .collect()
            } else {
                points.clone()
            };
            chart
                .draw_series(LineSeries::new(path, color.stroke_width(2)))
                .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_becomes_three_tracks_with_its_events() {
        let rows: Vec<TimelineRow> = (1..=4)
            .map(|k| TimelineRow {
                t_s: k as f64,
                produced_msgs_per_s: 10.0 * k as f64,
                consumed_msgs_per_s: 9.0,
                target_msgs_per_s: 10.0,
                lag_msgs: k as f64,
                consumers: if k < 3 { 1 } else { 2 },
                events: if k == 3 {
                    "up 1->2: need 1.6".into()
                } else if k == 4 {
                    "down 2->1: x; up 1->2: y".into()
                } else {
                    String::new()
                },
            })
            .collect();
        let f = from_timeline("t", "title", &rows);
        assert_eq!(f.tracks.len(), 3);
        assert_eq!(
            f.tracks[2].lines[0].points,
            vec![(1.0, 1.0), (2.0, 1.0), (3.0, 2.0), (4.0, 2.0)]
        );
        assert_eq!(f.events, vec![(2.5, true), (3.5, false), (3.5, true)]);
        let dir = tempfile::tempdir().unwrap();
        let files = render(&f, dir.path()).unwrap();
        assert!(files
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() > 1000));
    }
}
