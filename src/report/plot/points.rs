//! Point plots on numeric axes: a scatter with a front drawn over it, and a log-log roofline
//! with each op as a labelled marker under its unit's roof.

use std::path::Path;

use plotters::prelude::*;

use super::palette::{Marker, look, unit_name};
use super::{Entry, PlotError, Swatch, canvas, draw, draw_marker, si, side_legend, write};

/// A scatter of `points` (the palette's "design points") with `front` (its "Pareto front")
/// drawn over them, joined by a line when `connect`.
pub struct Scatter<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis: quantity and unit.
    pub x_desc: &'a str,
    /// The y axis: quantity and unit.
    pub y_desc: &'a str,
    /// Every point.
    pub points: &'a [(f64, f64)],
    /// The front, in x order.
    pub front: &'a [(f64, f64)],
    /// Whether the front is a curve (two objectives) or markers only.
    pub connect: bool,
}

/// The span of finite values, padded by 8%.
fn span(vs: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vs
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else {
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
        (lo - pad, hi + pad)
    }
}

/// Writes the scatter as SVG to `path`. Axes span the data with a margin.
pub fn scatter(path: &Path, s: &Scatter<'_>) -> Result<(), PlotError> {
    let (root, plot, side) = canvas(path, (1100, 620), s.title)?;
    let all = || s.points.iter().chain(s.front);
    let (x0, x1) = span(all().map(|p| p.0));
    let (y0, y1) = span(all().map(|p| p.1));
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .x_desc(s.x_desc)
        .y_desc(s.y_desc)
        .draw()
        .map_err(draw(path))?;
    let (dots, front) = (look("design points"), look("Pareto front"));
    for &p in s.points {
        let at = chart.backend_coord(&p);
        draw_marker(&root, dots.marker, at, 4, dots.color.filled()).map_err(draw(path))?;
    }
    if s.connect {
        chart
            .draw_series(LineSeries::new(
                s.front.to_vec(),
                front.color.stroke_width(1),
            ))
            .map_err(draw(path))?;
    }
    for &p in s.front {
        let at = chart.backend_coord(&p);
        draw_marker(&root, front.marker, at, 5, front.color.filled()).map_err(draw(path))?;
    }
    let entries = [
        Entry {
            label: format!("design points ({})", s.points.len()),
            color: dots.color,
            swatch: Swatch::Mark(dots.marker),
        },
        Entry {
            label: format!("Pareto front ({})", s.front.len()),
            color: front.color,
            swatch: Swatch::Mark(front.marker),
        },
    ];
    side_legend(&side, "points", &entries).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// One roof: a unit's compute peak (FLOP/s) and memory bandwidth (B/s).
pub struct Roof {
    /// The unit's palette key (`xpu`, `pim`).
    pub unit: String,
    /// Peak arithmetic rate (FLOP/s).
    pub peak: f64,
    /// Memory bandwidth (B/s).
    pub bandwidth: f64,
}

/// One marker of a roofline: an op (or identical ops merged) at its Op/B and achieved rate.
pub struct Mark {
    /// The unit it ran on (palette key: the marker's colour).
    pub unit: String,
    /// Its op class (palette key: the marker's shape).
    pub class: String,
    /// FLOPs per DRAM byte.
    pub op_b: f64,
    /// Achieved FLOP/s.
    pub flops_per_s: f64,
    /// The label written beside it (`expert ×256`).
    pub label: String,
}

/// A log-log roofline.
pub struct Roofline<'a> {
    /// The title.
    pub title: &'a str,
    /// The roofs, one per unit.
    pub roofs: &'a [Roof],
    /// The ops.
    pub marks: &'a [Mark],
    /// Lines for the legend's foot (what was left out and why).
    pub notes: &'a [String],
}

/// The x and y ranges of a roofline: every op and every ridge point, with room around them.
fn roof_ranges(r: &Roofline<'_>) -> ((f64, f64), (f64, f64)) {
    let xs = r.marks.iter().map(|m| m.op_b);
    let ridges = r.roofs.iter().map(|f| f.peak / f.bandwidth);
    let (mut x0, mut x1) = xs
        .chain(ridges)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if x0 > x1 {
        (x0, x1) = (0.1, 1000.0);
    }
    let y1 = r.roofs.iter().map(|f| f.peak).fold(1.0f64, f64::max) * 3.0;
    let ys = r.marks.iter().map(|m| m.flops_per_s).filter(|v| *v > 0.0);
    let y0 = ys.fold(y1 / 1e4, f64::min).max(1.0) / 3.0;
    ((x0 / 4.0, x1 * 8.0), (y0, y1))
}

/// A label box in pixels: (left, top, right, bottom).
type LabelBox = (i32, i32, i32, i32);

fn overlaps(a: LabelBox, b: LabelBox) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Where to write a label of `chars` characters beside the marker at pixel `p`: the first of a
/// few places around it that overlaps no label or marker placed so far, else to its right.
fn place(p: (i32, i32), chars: usize, taken: &[LabelBox]) -> LabelBox {
    let (w, h) = (6 * chars as i32 + 2, 12);
    let tries = [
        (8, -6),
        (8, 6),
        (8, -18),
        (-w - 8, -6),
        (8, 18),
        (-w - 8, 8),
        (8, -30),
        (8, 30),
    ];
    tries
        .iter()
        .map(|(dx, dy)| (p.0 + dx, p.1 + dy, p.0 + dx + w, p.1 + dy + h))
        .find(|b| !taken.iter().any(|t| overlaps(*t, *b)))
        .unwrap_or((p.0 + 8, p.1 - 6, p.0 + 8 + w, p.1 + 6))
}

/// Writes the roofline as SVG to `path`: each roof as min(peak, bandwidth × Op/B) in its unit's
/// colour, each op as a marker (colour: unit, shape: op class) with its label beside it.
pub fn roofline(path: &Path, r: &Roofline<'_>) -> Result<(), PlotError> {
    let (root, plot, side) = canvas(path, (1200, 680), r.title)?;
    let ((x0, x1), (y0, y1)) = roof_ranges(r);
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .x_desc("operational intensity, Op/B (FLOP per DRAM byte)")
        .y_desc("achieved FLOP/s per device")
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| si(*y))
        .draw()
        .map_err(draw(path))?;
    let mut entries = Vec::new();
    for f in r.roofs {
        let c = look(&f.unit).color;
        let line: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let x = x0 * (x1 / x0).powf(f64::from(i) / 200.0);
                (x, (f.bandwidth * x).min(f.peak))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(2)))
            .map_err(draw(path))?;
        entries.push(Entry {
            label: format!(
                "{} roof: {},\n{}",
                unit_name(&f.unit),
                crate::report::render::si_label(f.peak, "FLOP/s"),
                crate::report::render::si_label(f.bandwidth, "B/s")
            ),
            color: c,
            swatch: Swatch::Line,
        });
    }
    draw_marks(&root, &chart, r.marks).map_err(draw(path))?;
    entries.extend(mark_entries(r.marks));
    entries.extend(r.notes.iter().map(|n| Entry {
        label: n.clone(),
        color: WHITE,
        swatch: Swatch::Hollow,
    }));
    side_legend(&side, "roofs and ops", &entries).map_err(draw(path))?;
    root.present().map_err(write(path))
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::combinators::LogCoord<f64>,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

/// Draws each op's marker, then its label where it overlaps nothing drawn before it.
fn draw_marks(
    root: &super::Area<'_>,
    chart: &LogChart<'_, '_>,
    marks: &[Mark],
) -> Result<(), super::DrawError> {
    let mut taken: Vec<LabelBox> = Vec::new();
    for m in marks {
        let l = look(&m.class);
        let c = look(&m.unit).color;
        let p = chart.backend_coord(&(m.op_b, m.flops_per_s));
        draw_marker(root, l.marker, p, 5, c.filled())?;
        taken.push((p.0 - 5, p.1 - 5, p.0 + 5, p.1 + 5));
    }
    let font = ("sans-serif", 11).into_font();
    let mut order: Vec<&Mark> = marks.iter().collect();
    order.sort_by(|a, b| b.flops_per_s.total_cmp(&a.flops_per_s));
    for m in order {
        let p = chart.backend_coord(&(m.op_b, m.flops_per_s));
        let b = place(p, m.label.chars().count(), &taken);
        taken.push(b);
        root.draw(&Text::new(m.label.clone(), (b.0, b.1), font.clone()))?;
    }
    Ok(())
}

/// Legend entries for the units (colours) and op classes (shapes) the marks use.
fn mark_entries(marks: &[Mark]) -> Vec<Entry> {
    let mut units: Vec<&str> = marks.iter().map(|m| m.unit.as_str()).collect();
    units.sort_unstable();
    units.dedup();
    let mut classes: Vec<&str> = marks.iter().map(|m| m.class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    let unit = units.iter().map(|u| Entry {
        label: format!("ops on the {}", unit_name(u)),
        color: look(u).color,
        swatch: Swatch::Mark(Marker::Circle),
    });
    let class = classes.iter().map(|c| Entry {
        label: format!("{c} (marker shape)"),
        color: RGBColor(60, 60, 60),
        swatch: Swatch::Mark(look(c).marker),
    });
    unit.chain(class).collect()
}
