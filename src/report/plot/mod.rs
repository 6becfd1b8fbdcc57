//! SVG plots (plotters, SVG backend; text in the embedded DejaVu Sans, so no system fonts).
//!
//! What every plot holds to: a title and axis labels from the data (model, devices, arch; each
//! axis its quantity and unit); absent data drawn as absent (no bar, no point, and a legend entry
//! saying "not run"), never as zero; categorical axes as grouped bars or points, never joined by
//! lines; colours and markers from the one [`palette`]; series that coincide told apart (side by
//! side bars, and a legend note naming the series each equals). The legend sits beside the plot,
//! never over the data.

mod bars;
mod curves;
pub mod iteration;
pub mod palette;
mod points;

pub use bars::{Bar, Bars, Categorical, grouped_bars, horizontal_bars, stacked_bars};
pub use curves::{RateCurves, RatePanel, rate_curves};
pub use points::{Mark, Roof, Roofline, Scatter, roofline, scatter};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use thiserror::Error;

/// What plotters reports when drawing on the SVG backend fails.
type DrawError = DrawingAreaErrorKind<io::Error>;

/// Why a plot was not written.
#[derive(Debug, Error)]
pub enum PlotError {
    /// Laying out or drawing the chart failed (a range plotters cannot lay out, a missing font).
    #[error("{}: {source}", path.display())]
    Draw {
        /// The SVG file being drawn.
        path: PathBuf,
        /// What plotters reported.
        #[source]
        source: DrawError,
    },
    /// Writing the finished SVG to its file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The SVG file being written.
        path: PathBuf,
        /// What plotters reported.
        #[source]
        source: DrawError,
    },
}

/// Turns a drawing failure on `path` into [`PlotError::Draw`].
fn draw(path: &Path) -> impl Fn(DrawError) -> PlotError + '_ {
    move |source| PlotError::Draw {
        path: path.to_path_buf(),
        source,
    }
}

/// Turns a failure to write `path` into [`PlotError::Write`].
fn write(path: &Path) -> impl Fn(DrawError) -> PlotError + '_ {
    move |source| PlotError::Write {
        path: path.to_path_buf(),
        source,
    }
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // A failure leaves plotters without a font; drawing then reports the error.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A filled box (bars).
    Bar,
    /// A line.
    Line,
    /// A marker.
    Mark(palette::Marker),
    /// An empty box: a series with no data.
    Hollow,
}

/// One legend entry: a swatch in a colour, and a label (lines split at `\n`).
struct Entry {
    label: String,
    color: RGBColor,
    swatch: Swatch,
}

/// Width of the legend column to the right of every plot, in pixels.
const LEGEND_W: u32 = 270;

/// Line height of legend text, in pixels.
const LEGEND_LINE: i32 = 16;

/// Draws `entries` down the legend column `area`, under a heading.
fn side_legend(area: &Area<'_>, heading: &str, entries: &[Entry]) -> Result<(), DrawError> {
    let font = ("sans-serif", 13).into_font();
    let bold = ("sans-serif", 13).into_font().style(FontStyle::Bold);
    area.draw(&Text::new(heading.to_string(), (8, 46), bold))?;
    let mut y = 46 + LEGEND_LINE + 10;
    for e in entries {
        let (x, c) = (16, e.color);
        match e.swatch {
            Swatch::Bar => area.draw(&Rectangle::new(
                [(x - 7, y - 6), (x + 7, y + 6)],
                c.filled(),
            ))?,
            Swatch::Hollow => area.draw(&Rectangle::new(
                [(x - 7, y - 6), (x + 7, y + 6)],
                c.stroke_width(1),
            ))?,
            Swatch::Line => area.draw(&PathElement::new(
                vec![(x - 9, y), (x + 9, y)],
                c.stroke_width(2),
            ))?,
            Swatch::Mark(m) => draw_marker(area, m, (x, y), 5, c.filled())?,
        }
        for (i, line) in e.label.split('\n').enumerate() {
            let at = (x + 16, y - 7 + LEGEND_LINE * i as i32);
            area.draw(&Text::new(line.to_string(), at, font.clone()))?;
        }
        y += LEGEND_LINE * e.label.split('\n').count() as i32 + 8;
    }
    Ok(())
}

/// Draws a marker of shape `m` centred on pixel `at` of `area`, `r` pixels in radius.
fn draw_marker(
    area: &Area<'_>,
    m: palette::Marker,
    at: (i32, i32),
    r: i32,
    style: ShapeStyle,
) -> Result<(), DrawError> {
    use palette::Marker as M;
    let (x, y) = at;
    match m {
        M::Circle => area.draw(&Circle::new(at, r, style)),
        M::Triangle => area.draw(&TriangleMarker::new(at, r + 1, style)),
        M::Square => area.draw(&Rectangle::new(
            [(x - r + 1, y - r + 1), (x + r - 1, y + r - 1)],
            style,
        )),
        M::Diamond => area.draw(&Polygon::new(
            vec![
                (x, y - r - 1),
                (x + r + 1, y),
                (x, y + r + 1),
                (x - r - 1, y),
            ],
            style,
        )),
        M::Cross => area.draw(&Cross::new(at, r, style.stroke_width(2))),
    }
}

/// A drawing area in pixels.
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Height of a title line, in pixels.
const TITLE_LINE: i32 = 22;

/// The plot area and the legend column of a new plot of `size`, white, with `title` on top (its
/// lines split at `\n`, each centred: the first in a larger font).
fn canvas<'a>(
    path: &'a Path,
    size: (u32, u32),
    title: &str,
) -> Result<(Area<'a>, Area<'a>, Area<'a>), PlotError> {
    register_font();
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw(path))?;
    let lines: Vec<&str> = title.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let font: TextStyle<'_> = ("sans-serif", if i == 0 { 17 } else { 14 }).into();
        let (w, _) = root.estimate_text_size(line, &font).map_err(draw(path))?;
        let x = ((size.0 as i32 - w as i32) / 2).max(4);
        root.draw(&Text::new(
            line.to_string(),
            (x, 8 + TITLE_LINE * i as i32),
            font,
        ))
        .map_err(draw(path))?;
    }
    let top = 12 + TITLE_LINE * lines.len() as i32;
    let body = root.margin(top, 0, 0, 0);
    let (plot, side) = body.split_horizontally(size.0 - LEGEND_W);
    Ok((root, plot, side))
}

/// A value on a log axis as a number with an SI prefix: `3e14` → `300 T`.
fn si(v: f64) -> String {
    super::render::si_label(v, "")
}

/// The label of a categorical x value: the category at an integer position, else nothing.
fn category_label(cats: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 {
        cats.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// One named series of values, one per x category; `None` where the point was not run.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// Its key in the [`palette`] (a unit, an op class, a system label).
    pub key: String,
    /// One value per category, in the categories' order; `None` is absent, never zero.
    pub values: Vec<Option<f64>>,
    /// Why the series has no values, for its legend entry ("needs 32 devices").
    pub absent_because: Option<String>,
}

impl Series {
    /// Whether the series has no value at all.
    pub fn is_absent(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

/// Whether two series hold the same value everywhere (within a part in 10^9), absent where
/// the other is absent.
fn same_values(a: &Series, b: &Series) -> bool {
    a.values.len() == b.values.len()
        && a.values.iter().zip(&b.values).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            (None, None) => true,
            _ => false,
        })
}

/// The legend entries of `series` drawn as `swatch`: absent ones hollow and marked "not run",
/// one equal to an earlier series marked "= that one".
fn series_entries(series: &[Series], swatch: Swatch) -> Vec<Entry> {
    series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let color = palette::look(&s.key).color;
            if s.is_absent() {
                let why = s
                    .absent_because
                    .as_deref()
                    .map_or(String::new(), |w| format!("\n({w})"));
                return Entry {
                    label: format!("{}: not run{why}", s.name),
                    color,
                    swatch: Swatch::Hollow,
                };
            }
            let twin = series[..k]
                .iter()
                .find(|t| !t.is_absent() && same_values(t, s));
            let label = match twin {
                Some(t) => format!("{}\n(= {} in every category)", s.name, t.key),
                None => s.name.clone(),
            };
            Entry {
                label,
                color,
                swatch,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_that_cannot_be_written_says_so_with_its_path() {
        let path = Path::new("/nonexistent-dyad-dir/plot.svg");
        let series = [Series {
            name: "a".into(),
            key: "GPU".into(),
            values: vec![Some(1.0), Some(2.0)],
            absent_because: None,
        }];
        let g = Categorical {
            title: "t",
            x_desc: "x (tokens)",
            y_desc: "y (s)",
            categories: &["x".into(), "y".into()],
            series: &series,
            legend: "system",
        };
        let e = grouped_bars(path, &g).unwrap_err();
        assert!(
            matches!(&e, PlotError::Write { path: p, .. } if p == path),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("/nonexistent-dyad-dir/plot.svg: ")
        );
    }
}
