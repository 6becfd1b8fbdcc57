//! The Duplex study's report: ratios of the grid's points, the Markdown beside the paper's
//! figures, and the SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use super::{Point, ReproduceError, Study, StudyModel};
use crate::report::plot::Series;

/// Ratios of `system` against `base` over the points of `model`: (best, mean) throughput ratio
/// and mean ratio of dynamic energy per token (the energy the paper counts).
pub fn ratios(points: &[Point], model: &str, system: &str, base: &str) -> (f64, f64, f64) {
    let (t, e) = paired(points, model, system, base, |p| {
        p.energy_per_output_token_dynamic_j
    });
    (t.iter().copied().fold(0.0, f64::max), mean(&t), mean(&e))
}

/// Throughput ratios and ratios of `energy` (per token) of `system` over `base` at every grid
/// point of `model` that both ran.
pub(super) fn paired(
    points: &[Point],
    model: &str,
    system: &str,
    base: &str,
    energy: fn(&Point) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut t = Vec::new();
    let mut e = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.model == model && p.system == system)
    {
        if let Some(b) = points
            .iter()
            .find(|b| b.model == model && b.system == base && b.batch == p.batch && b.len == p.len)
        {
            t.push(p.output_tokens_per_s / b.output_tokens_per_s);
            e.push(energy(p) / energy(b));
        }
    }
    (t, e)
}

/// The arithmetic mean (0 for none).
pub(super) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The study's Markdown report: our figures beside the paper's.
pub fn duplex_markdown(points: &[Point], saturation: &[(String, f64)]) -> String {
    let mut s = String::from(INTRO);
    for (f, p, d, n) in figures(points) {
        let _ = writeln!(s, "| {f} | {p} | {d} | {n} |");
    }
    for (sys, rate) in saturation {
        let paper = if sys == "GPU" { "~9/s" } else { "~14/s" };
        let _ = writeln!(
            s,
            "| open loop (4096, 512): highest sustained rate, {sys} | {paper} | {rate:.0}/s | Poisson, max batch 128 |"
        );
    }
    s += &super::energy::energy_table(points);
    every_point(&mut s, points);
    s
}

/// The report's opening: setup, plots, and the head of the table against the paper.
const INTRO: &str = "# Duplex reproduction\n\n\
         Regenerate with `cargo run --release -- reproduce duplex` (writes this file,\n\
         `points.csv` and the plots `<model>-throughput.svg`, `<model>-energy.svg`).\n\
         Closed loop, (L_in, L_out) = (L, L), uniform expert routing, fp16, as the paper's grid\n\
         (REFERENCE.md §Duplex workloads): Mixtral-8x7B, OPT-66B and Llama-3-70B on 4 devices,\n\
         GLaM on 8, Grok-1 on 2 nodes x 8 (InfiniBand between them). Systems: GPU = H100s (tensor\n\
         parallel); 2xGPU = twice as many (up to 2 nodes);\n\
         Bank-PIM = H100 + Bank-PIM HBM with Op/B dispatch; Duplex = H100 + Logic-PIM HBM with Op/B\n\
         dispatch, whole experts per device; +CoP = expert and attention co-processing; +ET = experts\n\
         split by tensor parallelism instead.\n\n![Mixtral throughput](mixtral-8x7b-throughput.svg)\n![Mixtral energy](mixtral-8x7b-energy.svg)\n\n## Against the paper\n\n| figure | paper | dyad | note |\n|---|---:|---:|---|\n";

/// A row of the table against the paper: (figure, the paper's value, dyad's, note).
type Figure = (&'static str, &'static str, String, &'static str);

/// Each headline figure of the paper (REFERENCE.md §Duplex results): those over all models,
/// then Mixtral's.
fn figures(points: &[Point]) -> Vec<Figure> {
    let mut rows = all_model_figures(points);
    rows.extend(mixtral_figures(points));
    rows
}

fn all_model_figures(points: &[Point]) -> Vec<Figure> {
    let mut models: Vec<&str> = points.iter().map(|p| p.model.as_str()).collect();
    models.dedup();
    let per_model: Vec<(&str, f64)> = models
        .iter()
        .map(|m| (*m, ratios(points, m, "Duplex+CoP+ET", "GPU").1))
        .collect();
    let mean_all = per_model.iter().map(|x| x.1).sum::<f64>() / per_model.len().max(1) as f64;
    let (opt_bank, _, _) = ratios(points, "opt-66b", "Bank-PIM", "Duplex+CoP+ET");
    let gains: Vec<String> = per_model
        .iter()
        .map(|(m, g)| format!("{m} {g:.2}x"))
        .collect();
    vec![
        (
            "mean throughput over all models, Duplex+CoP+ET over GPU",
            "2.07x",
            format!("{mean_all:.2}x"),
            "mean of the per-model means",
        ),
        (
            "OPT-66B: Bank-PIM over Duplex, best",
            "Bank-PIM wins",
            format!("{opt_bank:.2}x"),
            "multi-head attention, Op/B ~ 1",
        ),
        (
            "Grok-1 gains least (inter-node)",
            "least",
            gains.join(", "),
            "Duplex+CoP+ET over GPU, mean per model",
        ),
    ]
}

fn mixtral_figures(points: &[Point]) -> Vec<Figure> {
    let m = "mixtral-8x7b";
    let best_duplex = ["Duplex", "Duplex+CoP", "Duplex+CoP+ET"]
        .iter()
        .map(|sys| ratios(points, m, sys, "GPU"))
        .fold((0.0f64, 0.0f64), |a, r| (a.0.max(r.0), a.1.max(r.1)));
    let (plain_best, _, _) = ratios(points, m, "Duplex", "GPU");
    let (_, cop_mean, _) = ratios(points, m, "Duplex+CoP", "Duplex");
    let (et_best, _, _) = ratios(points, m, "Duplex+CoP+ET", "Duplex");
    let (bank_best, bank_mean, _) = ratios(points, m, "Duplex+CoP+ET", "Bank-PIM");
    vec![
        (
            "Mixtral: best throughput, Duplex over GPU",
            "2.67x",
            format!("{:.2}x", best_duplex.0),
            "best Duplex variant per point",
        ),
        (
            "Mixtral: mean throughput, Duplex over GPU",
            "2.07x",
            format!("{:.2}x", best_duplex.1),
            "Mixtral only",
        ),
        (
            "Duplex without co-processing: best over GPU",
            "2.51x",
            format!("{plain_best:.2}x"),
            "",
        ),
        (
            "co-processing: mean gain over plain Duplex",
            "1.04x",
            format!("{cop_mean:.2}x"),
            "",
        ),
        (
            "+ET: best gain over plain Duplex",
            "1.36x",
            format!("{et_best:.2}x"),
            "",
        ),
        (
            "Mixtral: Duplex over Bank-PIM, best / mean",
            "1.80x / 1.49x",
            format!("{bank_best:.2}x / {bank_mean:.2}x"),
            "",
        ),
    ]
}

/// The table of every point, with its throughput over the GPU at the same batch and length.
fn every_point(s: &mut String, points: &[Point]) {
    let _ = writeln!(
        s,
        "\n## Every point\n\n| model | batch | L | system | tokens/s | vs GPU | E2E p50 | J/token dynamic | J/token all-in | PIM time |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let gpu = points
            .iter()
            .find(|b| {
                b.model == p.model && b.system == "GPU" && b.batch == p.batch && b.len == p.len
            })
            .map_or(f64::NAN, |b| p.output_tokens_per_s / b.output_tokens_per_s);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.2}x | {:.2} s | {:.1} mJ | {:.1} mJ | {:.0}% |",
            p.model,
            p.batch,
            p.len,
            p.system,
            p.output_tokens_per_s,
            gpu,
            p.e2e_p50_s,
            1e3 * p.energy_per_output_token_dynamic_j,
            1e3 * p.energy_per_output_token_j,
            100.0 * p.pim_time_share
        );
    }
}

/// The value of `system`'s point of `model` at (`batch`, `len`), if it was run.
fn value_at(
    points: &[Point],
    model: &str,
    system: &str,
    (batch, len): (u64, u64),
    f: &dyn Fn(&Point) -> Option<f64>,
) -> Option<f64> {
    points
        .iter()
        .find(|p| p.model == model && p.system == system && p.batch == batch && p.len == len)
        .and_then(f)
}

/// One series per system of the study for `model` (devices and arch from its points), `None`
/// where a point was not run; a system the study skips says why.
fn system_series(
    study: &Study,
    sm: &StudyModel,
    points: &[Point],
    f: &dyn Fn(&Point) -> Option<f64>,
) -> Vec<Series> {
    let cells = study.grid.cells();
    study
        .system
        .iter()
        .map(|sys| {
            let n = sm.devices * sys.scale;
            let values: Vec<Option<f64>> = cells
                .iter()
                .map(|&c| value_at(points, &sm.name, &sys.label, c, f))
                .collect();
            let ran = points
                .iter()
                .find(|p| p.model == sm.name && p.system == sys.label);
            let absent_because = (n > study.grid.max_devices).then(|| {
                format!(
                    "needs {n} devices; the study's most: {}",
                    study.grid.max_devices
                )
            });
            Series {
                name: match ran {
                    Some(p) => format!(
                        "{} ({} × {})",
                        sys.label,
                        p.devices,
                        sys.arch_for(p.devices)
                    ),
                    None => sys.label.clone(),
                },
                key: sys.label.clone(),
                values,
                absent_because,
            }
        })
        .collect()
}

/// SVG plots of the grid, per model: throughput over the GPU system's, and energy per output
/// token, as grouped bars over the grid's (batch, length) cells. Titles carry the model's devices
/// and arch as its points ran; a system the study does not run for a model draws no bars.
pub fn duplex_plots(study: &Study, points: &[Point], dir: &Path) -> Result<(), ReproduceError> {
    use crate::report::plot::{Categorical, grouped_bars};
    let cats: Vec<String> = study
        .grid
        .cells()
        .iter()
        .map(|(b, l)| format!("b{b} L{l}"))
        .collect();
    let gpu = study.system("GPU")?;
    for sm in &study.model {
        let m = sm.name.as_str();
        let n = points
            .iter()
            .find(|p| p.model == m && p.system == gpu.label)
            .map_or(sm.devices, |p| p.devices);
        let on = format!("{n} × {}", gpu.arch_for(n));
        let base = |p: &Point| {
            value_at(points, m, &gpu.label, (p.batch, p.len), &|g| {
                Some(g.output_tokens_per_s)
            })
            .map(|g| p.output_tokens_per_s / g)
        };
        let plots = [
            (
                "throughput",
                format!(
                    "{m}: output throughput of each system over the GPU system's\nGPU system = {on}; a system's devices and arch in the legend"
                ),
                "output tokens/s ÷ the GPU system's (×)",
                system_series(study, sm, points, &base),
            ),
            (
                "energy",
                format!(
                    "{m}: energy per output token\nGPU system = {on}; a system's devices and arch in the legend"
                ),
                "energy per output token (mJ, all devices, dynamic + static)",
                system_series(study, sm, points, &|p| {
                    Some(1e3 * p.energy_per_output_token_j)
                }),
            ),
        ];
        for (file, title, y_desc, series) in plots {
            let g = Categorical {
                title: &title,
                x_desc: "grid cell: batch b (requests in flight), prompt = output length L (tokens)",
                y_desc,
                categories: &cats,
                series: &series,
                legend: "system (devices × arch)",
            };
            grouped_bars(&dir.join(format!("{m}-{file}.svg")), &g)?;
        }
    }
    Ok(())
}
