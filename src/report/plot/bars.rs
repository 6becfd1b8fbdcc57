//! Bar charts: grouped bars over categories (one bar per series in each group), stacked bars
//! (one stack per category), and horizontal bars (one per row, largest first).

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::palette::look;
use super::{
    Area, PlotError, Series, Swatch, canvas, category_label, draw, series_entries, side_legend,
    write,
};

/// Bars over categories: grouped ([`grouped_bars`]: in each category's group, one bar per series
/// that has a value there) or stacked ([`stacked_bars`]: one stack per category, each series a
/// layer of every stack, bottom first). An absent value draws no bar and adds nothing to a stack.
pub struct Categorical<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis: what the categories are, with their unit.
    pub x_desc: &'a str,
    /// The y axis: quantity and unit.
    pub y_desc: &'a str,
    /// The categories, in order.
    pub categories: &'a [String],
    /// The series.
    pub series: &'a [Series],
    /// The legend's heading ("system", "op class").
    pub legend: &'a str,
}

/// The axes of a chart over `c`'s categories, from 0 to `y_max`: one tick per category (at most
/// 40), labelled with its name.
fn category_axes<'a, 'b>(
    plot: &'a Area<'b>,
    c: &Categorical<'_>,
    y_max: f64,
    path: &Path,
) -> Result<Chart<'a, 'b>, PlotError> {
    let n = c.categories.len().max(1);
    let mut chart = ChartBuilder::on(plot)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(40))
        .x_label_formatter(&|x| category_label(c.categories, *x))
        .x_desc(c.x_desc)
        .y_desc(c.y_desc)
        .draw()
        .map_err(draw(path))?;
    Ok(chart)
}

/// A chart of `f64` on both axes, on an SVG area.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The largest finite value of `series`, or 1 with none.
fn top(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if m > 0.0 { m } else { 1.0 }
}

/// Writes a grouped bar chart as SVG to `path`. Series with no value at all take no slot in the
/// groups and are listed in the legend as not run.
pub fn grouped_bars(path: &Path, g: &Categorical<'_>) -> Result<(), PlotError> {
    let (root, plot, side) = canvas(path, (1100, 560), g.title)?;
    let shown: Vec<&Series> = g.series.iter().filter(|s| !s.is_absent()).collect();
    let y_max = top(shown
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied()))
        * 1.08;
    let mut chart = category_axes(&plot, g, y_max, path)?;
    let width = 0.8 / shown.len().max(1) as f64;
    for (k, s) in shown.iter().enumerate() {
        let c = look(&s.key).color;
        let left = |i: usize| i as f64 - 0.4 + width * k as f64;
        let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
            v.map(|v| Rectangle::new([(left(i), 0.0), (left(i) + width * 0.92, v)], c.filled()))
        });
        chart.draw_series(bars).map_err(draw(path))?;
    }
    side_legend(&side, g.legend, &series_entries(g.series, Swatch::Bar)).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// Writes a stacked bar chart as SVG to `path`.
pub fn stacked_bars(path: &Path, s: &Categorical<'_>) -> Result<(), PlotError> {
    let (root, plot, side) = canvas(path, (1100, 560), s.title)?;
    let n = s.categories.len().max(1);
    let total = |i: usize| -> f64 {
        s.series
            .iter()
            .filter_map(|x| x.values.get(i).copied().flatten())
            .sum()
    };
    let y_max = top((0..n).map(total)) * 1.12;
    let mut chart = category_axes(&plot, s, y_max, path)?;
    let half = if n < 4 { 0.22 } else { 0.38 };
    let mut base = vec![0.0; n];
    for x in s.series.iter().filter(|x| !x.is_absent()) {
        let c = look(&x.key).color;
        let mut bars = Vec::new();
        for (i, b) in base.iter_mut().enumerate() {
            if let Some(v) = x.values.get(i).copied().flatten() {
                bars.push(Rectangle::new(
                    [(i as f64 - half, *b), (i as f64 + half, *b + v)],
                    c.filled(),
                ));
                *b += v;
            }
        }
        chart.draw_series(bars).map_err(draw(path))?;
    }
    // Top of the legend is top of the stack.
    let mut entries = series_entries(s.series, Swatch::Bar);
    entries.reverse();
    side_legend(&side, s.legend, &entries).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// One horizontal bar: its label, its value and its palette key.
pub struct Bar {
    /// The label beside the axis.
    pub label: String,
    /// Its length.
    pub value: f64,
    /// Its palette key (an op class).
    pub key: String,
}

/// A horizontal bar chart, one bar per row, in the rows' order from the top.
pub struct Bars<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis: quantity and unit.
    pub x_desc: &'a str,
    /// The rows.
    pub rows: &'a [Bar],
    /// The legend's heading ("op class"); the legend lists each key once.
    pub legend: &'a str,
}

/// Writes a horizontal bar chart as SVG to `path`, each bar's value written at its end.
pub fn horizontal_bars(path: &Path, b: &Bars<'_>) -> Result<(), PlotError> {
    let n = b.rows.len().max(1);
    let height = (120 + 22 * n as u32).max(360);
    let (root, plot, side) = canvas(path, (1100, height), b.title)?;
    let x_max = top(b.rows.iter().map(|r| r.value)) * 1.18;
    let widest = b
        .rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(4);
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(12 + 7 * widest as u32)
        .build_cartesian_2d(0f64..x_max, -0.5f64..(n as f64 - 0.5))
        .map_err(draw(path))?;
    let labels: Vec<String> = b.rows.iter().map(|r| r.label.clone()).collect();
    let row_of = |y: f64| n as f64 - 1.0 - y;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| category_label(&labels, row_of(*y)))
        .x_desc(b.x_desc)
        .draw()
        .map_err(draw(path))?;
    let font = ("sans-serif", 11).into_font();
    for (i, r) in b.rows.iter().enumerate() {
        let y = row_of(i as f64);
        let c = look(&r.key).color;
        chart
            .draw_series([Rectangle::new(
                [(0.0, y - 0.36), (r.value, y + 0.36)],
                c.filled(),
            )])
            .map_err(draw(path))?;
        let at = chart.backend_coord(&(r.value, y));
        root.draw(&Text::new(
            format!("{:.3}", r.value),
            (at.0 + 4, at.1 - 6),
            font.clone(),
        ))
        .map_err(draw(path))?;
    }
    let mut keys: Vec<&str> = Vec::new();
    for r in b.rows {
        if !keys.contains(&r.key.as_str()) {
            keys.push(&r.key);
        }
    }
    let entries: Vec<super::Entry> = keys
        .iter()
        .map(|k| super::Entry {
            label: (*k).to_string(),
            color: look(k).color,
            swatch: Swatch::Bar,
        })
        .collect();
    side_legend(&side, b.legend, &entries).map_err(draw(path))?;
    root.present().map_err(write(path))
}
