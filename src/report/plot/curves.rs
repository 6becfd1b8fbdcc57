//! Latency percentiles against offered rate, one panel per metric, each with its limit and the
//! capacity found: the curve of a capacity search (`dyad capacity`).

use std::path::Path;

use plotters::prelude::*;

use super::palette::{Look, look};
use super::{Area, Entry, PlotError, Swatch, canvas, draw, draw_marker, side_legend, write};
use crate::report::render::{si, si_label};

/// One panel: a latency percentile against rate.
pub struct RatePanel<'a> {
    /// The y axis: quantity (its unit, seconds, is shown on the ticks).
    pub y_desc: &'a str,
    /// (rate, worst value over the seeds), in rate order: joined by a line.
    pub worst: &'a [(f64, f64)],
    /// (rate, value) of every seed's run: dots.
    pub each: &'a [(f64, f64)],
    /// The limit, s, drawn as a horizontal line; `None` when the metric is not limited.
    pub limit: Option<f64>,
}

/// The two panels of a capacity search, with the capacity as a vertical line.
pub struct RateCurves<'a> {
    /// The title (model, devices, arch; lines split at `\n`).
    pub title: &'a str,
    /// The x axis: quantity and unit.
    pub x_desc: &'a str,
    /// The panels, top to bottom.
    pub panels: &'a [RatePanel<'a>],
    /// The capacity found, requests/s; `None` when no rate passed.
    pub capacity: Option<f64>,
    /// Seeds per rate, for the legend.
    pub seeds: u64,
}

/// The span of positive finite values, widened by a factor of 1.3 either way (a log axis).
fn log_span(vs: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vs
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 1.3, hi * 1.3)
    }
}

/// A point in log10 coordinates (plotters' log axes label too few ticks below 1, so the axes
/// are linear in the logarithms and their labels show the values).
fn lg(q: (f64, f64)) -> (f64, f64) {
    (q.0.log10(), q.1.log10())
}

/// The looks of the worst seed, each seed, the limit and the capacity.
fn looks() -> (Look, Look, Look, Look) {
    (
        look("worst seed"),
        look("each seed"),
        look("SLO limit"),
        look("capacity"),
    )
}

/// Writes the panels as SVG to `path`: log rate against log latency.
pub fn rate_curves(path: &Path, c: &RateCurves<'_>) -> Result<(), PlotError> {
    let h = 80 + 340 * c.panels.len().max(1) as u32;
    let (root, plot, side) = canvas(path, (1100, h), c.title)?;
    let (x0, x1) = log_span(
        c.panels
            .iter()
            .flat_map(|p| p.each.iter().map(|q| q.0))
            .chain(c.capacity),
    );
    let areas = plot.split_evenly((c.panels.len().max(1), 1));
    for (p, area) in c.panels.iter().zip(&areas) {
        panel(path, &root, area, c, p, (x0, x1))?;
    }
    let (worst, each, limit, cap) = looks();
    let capacity = match c.capacity {
        Some(r) => format!("capacity: {}", si_label(r, "requests/s")),
        None => "capacity: none\n(no rate tried passed)".into(),
    };
    let entries = [
        Entry {
            label: format!("p99, worst of {} seeds", c.seeds),
            color: worst.color,
            swatch: Swatch::Mark(worst.marker),
        },
        Entry {
            label: "p99 of each seed's run".into(),
            color: each.color,
            swatch: Swatch::Mark(each.marker),
        },
        Entry {
            label: "limit (SLO)".into(),
            color: limit.color,
            swatch: Swatch::Line,
        },
        Entry {
            label: capacity,
            color: cap.color,
            swatch: Swatch::Line,
        },
    ];
    side_legend(&side, "capacity search", &entries).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// Draws one panel of `c` into `area`, over the rates `(x0, x1)`.
fn panel(
    path: &Path,
    root: &Area<'_>,
    area: &Area<'_>,
    c: &RateCurves<'_>,
    p: &RatePanel<'_>,
    (x0, x1): (f64, f64),
) -> Result<(), PlotError> {
    let (worst, each, limit, cap) = looks();
    let (y0, y1) = log_span(p.each.iter().map(|q| q.1).chain(p.limit));
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x0.log10()..x1.log10(), y0.log10()..y1.log10())
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .x_desc(c.x_desc)
        .y_desc(p.y_desc)
        .x_labels(12)
        .y_labels(12)
        .x_label_formatter(&|x| si(10f64.powf(*x), ""))
        .y_label_formatter(&|y| si(10f64.powf(*y), "s"))
        .draw()
        .map_err(draw(path))?;
    let rules = [
        p.limit.map(|l| ([(x0, l), (x1, l)], limit.color)),
        c.capacity.map(|r| ([(r, y0), (r, y1)], cap.color)),
    ];
    for (ends, color) in rules.into_iter().flatten() {
        chart
            .draw_series(LineSeries::new(ends.map(lg), color.stroke_width(2)))
            .map_err(draw(path))?;
    }
    for &q in p.each.iter().filter(|q| q.1 > 0.0) {
        let at = chart.backend_coord(&lg(q));
        draw_marker(root, each.marker, at, 3, each.color.filled()).map_err(draw(path))?;
    }
    let line: Vec<(f64, f64)> = p
        .worst
        .iter()
        .copied()
        .filter(|q| q.1 > 0.0)
        .map(lg)
        .collect();
    chart
        .draw_series(LineSeries::new(line.clone(), worst.color.stroke_width(2)))
        .map_err(draw(path))?;
    for q in &line {
        let at = chart.backend_coord(q);
        draw_marker(root, worst.marker, at, 4, worst.color.filled()).map_err(draw(path))?;
    }
    Ok(())
}
