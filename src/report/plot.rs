//! SVG plots (plotters, SVG backend; text in the embedded DejaVu Sans, so no system fonts).

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

/// The legend box, in the same style on every plot.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    at: SeriesLabelPosition,
) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(at)
        .draw()
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

/// One named series of y values, one per x category.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// One value per category, in the categories' order.
    pub values: Vec<f64>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Lines with markers over categorical x values, written as SVG to `path`.
pub fn category_lines(
    path: &Path,
    title: &str,
    categories: &[String],
    y_desc: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    register_font();
    let n = categories.len().max(1);
    let y_max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max.max(1e-12))
        .map_err(draw(path))?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| category_label(&cats, *x))
        .x_label_style(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .y_desc(y_desc)
        .draw()
        .map_err(draw(path))?;
    for (k, s) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let pts: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, *v))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(draw(path))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(draw(path))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// A scatter of `points` (grey) with `front` drawn over them as markers, joined by a line when
/// `connect`, written as SVG to `path`. Axes span the data with a margin.
pub fn scatter(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    front: &[(f64, f64)],
    connect: bool,
) -> Result<(), PlotError> {
    register_font();
    let span = |f: fn(&(f64, f64)) -> f64| {
        let vs = points.iter().chain(front).map(f).filter(|v| v.is_finite());
        let (lo, hi) = vs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if lo > hi {
            (0.0, 1.0)
        } else {
            let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = span(|p| p.0);
    let (y0, y1) = span(|p| p.1);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(draw(path))?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, grey.filled())))
        .map_err(draw(path))?
        .label("design points")
        .legend(move |(x, y)| Circle::new((x + 9, y), 3, grey.filled()));
    let c = COLORS[3];
    if connect {
        chart
            .draw_series(LineSeries::new(front.to_vec(), c.stroke_width(2)))
            .map_err(draw(path))?;
    }
    chart
        .draw_series(front.iter().map(|&p| Circle::new(p, 5, c.filled())))
        .map_err(draw(path))?
        .label("Pareto front")
        .legend(move |(x, y)| Circle::new((x + 9, y), 5, c.filled()));
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// One roof: compute peak (FLOP/s) and memory bandwidth (B/s).
pub struct Roof {
    /// The unit's name in the legend.
    pub name: String,
    /// Peak arithmetic rate (FLOP/s).
    pub peak: f64,
    /// Memory bandwidth (B/s).
    pub bandwidth: f64,
}

/// Ops of one unit: (Op/B, achieved FLOP/s).
pub struct RoofPoints {
    /// The unit's name in the legend.
    pub name: String,
    /// (Op/B, achieved FLOP/s) of each op.
    pub points: Vec<(f64, f64)>,
}

/// A log-log roofline: each roof as min(peak, bandwidth × Op/B), each unit's ops as markers.
pub fn roofline(
    path: &Path,
    title: &str,
    roofs: &[Roof],
    units: &[RoofPoints],
) -> Result<(), PlotError> {
    register_font();
    let xs = units.iter().flat_map(|u| u.points.iter().map(|p| p.0));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    for r in roofs {
        let ridge = r.peak / r.bandwidth;
        x0 = x0.min(ridge);
        x1 = x1.max(ridge);
    }
    if !(x0.is_finite() && x1.is_finite() && x0 > 0.0) {
        (x0, x1) = (0.1, 1000.0);
    }
    let (x0, x1) = (x0 / 4.0, x1 * 4.0);
    let y1 = roofs.iter().map(|r| r.peak).fold(1.0f64, f64::max) * 3.0;
    let ys = units.iter().flat_map(|u| u.points.iter().map(|p| p.1));
    let y0 = ys.fold(y1 / 1e4, f64::min).max(1.0) / 3.0;
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(draw(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(draw(path))?;
    chart
        .configure_mesh()
        .x_desc("Op/B (FLOPs per DRAM byte)")
        .y_desc("achieved FLOP/s")
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()
        .map_err(draw(path))?;
    for (k, r) in roofs.iter().enumerate() {
        let c = COLORS[(2 * k) % COLORS.len()];
        let line: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let x = x0 * (x1 / x0).powf(f64::from(i) / 200.0);
                (x, (r.bandwidth * x).min(r.peak))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(2)))
            .map_err(draw(path))?
            .label(format!("{} roof", r.name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    for (k, u) in units.iter().enumerate() {
        let c = COLORS[(2 * k + 1) % COLORS.len()];
        chart
            .draw_series(u.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(draw(path))?
            .label(format!("ops on {}", u.name))
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(draw(path))?;
    root.present().map_err(write(path))
}

/// Stacked bars, one per category, each series a layer of the stack.
pub fn stacked_bars(
    path: &Path,
    title: &str,
    categories: &[String],
    y_desc: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    register_font();
    let n = categories.len().max(1);
    let total = |i: usize| {
        series
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    let y_max = (0..n).map(total).fold(0.0f64, f64::max) * 1.25;
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(draw(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max.max(1e-12))
        .map_err(draw(path))?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .x_labels(n.min(40))
        .x_label_formatter(&|x| category_label(&cats, *x))
        .x_desc("layer")
        .y_desc(y_desc)
        .draw()
        .map_err(draw(path))?;
    let mut base = vec![0.0; n];
    for (k, s) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = (0..n)
            .map(|i| {
                let v = s.values.get(i).copied().unwrap_or(0.0);
                let r = Rectangle::new(
                    [(i as f64 - 0.4, base[i]), (i as f64 + 0.4, base[i] + v)],
                    c.filled(),
                );
                base[i] += v;
                r
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(draw(path))?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(draw(path))?;
    root.present().map_err(write(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_that_cannot_be_written_says_so_with_its_path() {
        let path = Path::new("/nonexistent-dyad-dir/plot.svg");
        let series = [Series {
            name: "a".into(),
            values: vec![1.0, 2.0],
        }];
        let e = category_lines(path, "t", &["x".into(), "y".into()], "y", &series).unwrap_err();
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
