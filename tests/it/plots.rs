//! The plots a reader has to trust: absent data drawn as absent, titles that carry the devices
//! the data ran on, every axis with its unit, one colour per unit, op class and system across
//! plots, and `dyad run --plot DIR` writing its three SVGs.

use std::path::Path;

use dyad::app::reproduce::{Point, Study, duplex_plots};
use dyad::report::plot::palette::{hex, look};

use crate::util::{dyad, root};

/// The elements of an SVG named `tag` (`rect`, `text`), as their source text.
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    svg.split('<')
        .filter(|e| e.starts_with(tag) && e[tag.len()..].starts_with([' ', '>', '/']))
        .collect()
}

/// Filled rectangles of colour `key`'s palette colour.
fn filled_rects(svg: &str, key: &str) -> usize {
    let fill = format!("fill=\"{}\"", hex(look(key).color));
    elements(svg, "rect")
        .iter()
        .filter(|r| r.contains(&fill))
        .count()
}

/// Every text of an SVG, joined by newlines.
fn texts(svg: &str) -> String {
    elements(svg, "text")
        .iter()
        .filter_map(|t| t.split_once('>').map(|(_, body)| body))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Points of `model` on `devices` (× the system's scale) for every system of the study except
/// those in `skip`, and without Bank-PIM's (b32, L256) cell.
fn points(study: &Study, model: &str, devices: u64, skip: &[&str]) -> Vec<Point> {
    let mut out = Vec::new();
    for (b, l) in study.grid.cells() {
        for (k, sys) in study.system.iter().enumerate() {
            if skip.contains(&sys.label.as_str())
                || (sys.label == "Bank-PIM" && (b, l) == (32, 256))
            {
                continue;
            }
            out.push(Point {
                model: model.into(),
                system: sys.label.clone(),
                batch: b,
                len: l,
                devices: devices * sys.scale,
                output_tokens_per_s: 1000.0 * (1.0 + k as f64),
                e2e_p50_s: 1.0,
                tbt_p50_s: 0.01,
                energy_per_output_token_j: 0.1 * (1.0 + k as f64),
                energy_per_output_token_dynamic_j: 0.05 * (1.0 + k as f64),
                energy_per_output_token_static_j: 0.05 * (1.0 + k as f64),
                pim_time_share: 0.0,
            });
        }
    }
    out
}

#[test]
fn a_missing_series_draws_nothing_and_titles_carry_the_devices_of_the_data() {
    let study = Study::duplex().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut pts = points(&study, "grok-1", 16, &["2xGPU"]);
    pts.extend(points(&study, "glam", 8, &[]));
    duplex_plots(&study, &pts, d.path()).unwrap();
    let cells = study.grid.cells().len();
    for (model, n, arch) in [("grok-1", 16, "h100-2node"), ("glam", 8, "h100")] {
        for plot in ["throughput", "energy"] {
            let svg = read(&d.path().join(format!("{model}-{plot}.svg")));
            assert!(svg.contains("<svg"), "{model}-{plot}");
            let t = texts(&svg);
            assert!(
                t.contains(&format!("{n} × {arch}")),
                "{model}-{plot}: title\n{t}"
            );
            assert!(
                !t.contains("4 × h100"),
                "{model}-{plot}: another model's devices\n{t}"
            );
            // One bar per cell that ran, plus the legend's swatch; a cell not run has no bar.
            assert_eq!(filled_rects(&svg, "GPU"), cells + 1, "{model}-{plot}");
            assert_eq!(
                filled_rects(&svg, "Bank-PIM"),
                cells - 1 + 1,
                "{model}-{plot}"
            );
            let unit = if plot == "energy" { "(mJ" } else { "(×)" };
            assert!(
                t.contains(unit) && t.contains("(tokens)"),
                "{model}-{plot}: units\n{t}"
            );
        }
    }
    let grok = read(&d.path().join("grok-1-throughput.svg"));
    // 2xGPU of Grok-1 would need 32 devices: no bar, no zero, and the legend says so.
    assert_eq!(filled_rects(&grok, "2xGPU"), 0);
    let t = texts(&grok);
    assert!(
        t.contains("2xGPU: not run") && t.contains("needs 32 devices"),
        "{t}"
    );
    // The same system is the same colour in both of a model's plots.
    let energy = read(&d.path().join("grok-1-energy.svg"));
    for sys in ["GPU", "Duplex", "Duplex+CoP+ET"] {
        assert_eq!(
            filled_rects(&grok, sys),
            filled_rects(&energy, sys),
            "{sys}"
        );
    }
}

#[test]
fn identical_series_are_told_apart() {
    let study = Study::duplex().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut pts = points(&study, "opt-66b", 4, &[]);
    // A dense model: co-processing changes nothing, so Duplex+CoP equals Duplex.
    let duplex: Vec<Point> = pts
        .iter()
        .filter(|p| p.system == "Duplex")
        .cloned()
        .collect();
    for p in pts.iter_mut().filter(|p| p.system == "Duplex+CoP") {
        let twin = duplex
            .iter()
            .find(|q| q.batch == p.batch && q.len == p.len)
            .unwrap();
        p.output_tokens_per_s = twin.output_tokens_per_s;
    }
    duplex_plots(&study, &pts, d.path()).unwrap();
    let svg = read(&d.path().join("opt-66b-throughput.svg"));
    let t = texts(&svg);
    assert!(t.contains("(= Duplex in every category)"), "{t}");
    // Both still draw their own bars, side by side.
    assert_eq!(
        filled_rects(&svg, "Duplex"),
        filled_rects(&svg, "Duplex+CoP")
    );
}

#[test]
fn run_plot_writes_a_roofline_with_merged_ops_and_one_of_32_identical_layers() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("plots");
    let r = dyad(&[
        "run",
        "--model",
        "mixtral-8x7b",
        "--batch",
        "64",
        "--plot",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let xpu = hex(look("xpu").color);
    let roof = read(&dir.join("roofline.svg"));
    let t = texts(&roof);
    // Mixtral: 8 experts in each of 32 layers, alike under uniform routing, in one fused-MoE
    // launch per layer: the first expert of each layer (with the launch) is one marker, the
    // other seven of each layer another.
    assert!(t.contains("expert ×32") && t.contains("expert ×224"), "{t}");
    assert!(
        t.contains("attn_decode ×32") && t.contains("lm_head"),
        "{t}"
    );
    assert!(
        t.contains("FLOP per DRAM byte") && t.contains("FLOP/s per device"),
        "{t}"
    );
    assert!(t.contains("TP 2 on 2 of 8 × H100"), "{t}");
    assert!(
        roof.contains(&format!("stroke=\"{xpu}\"")),
        "the xPU roof in the xPU's colour"
    );
    let layers = read(&dir.join("layers.svg"));
    let t = texts(&layers);
    assert!(
        t.contains("all 32 layers identical") && t.contains("×32 identical"),
        "{t}"
    );
    assert!(t.contains("(ms)"), "{t}");
    // gemm is the same green in the layer and the op breakdowns.
    let ops = read(&dir.join("ops.svg"));
    assert!(filled_rects(&layers, "gemm") >= 1 && filled_rects(&ops, "gemm") >= 1);
    assert!(
        texts(&ops).contains("expert ×256 on xPU"),
        "{}",
        texts(&ops)
    );
    for f in ["roofline.svg", "ops.svg", "layers.svg"] {
        assert!(read(&dir.join(f)).contains("<svg"), "{f}");
    }
}

#[test]
fn run_plot_with_serving_is_refused() {
    let scenario = root("workloads/serving/closed-b64-1024-1024.toml");
    let r = dyad(&[
        "run",
        "--serving",
        scenario.to_str().unwrap(),
        "--plot",
        "x",
    ]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--plot"), "{}", r.stderr);
}

#[test]
fn the_sweep_plots_label_their_axes_with_units_and_colour_units_as_run_does() {
    let d = tempfile::tempdir().unwrap();
    for f in ["sweep.toml", "scenario.toml"] {
        std::fs::copy(
            root(&format!("results/sweep-logic-pim/{f}")),
            d.path().join(f),
        )
        .unwrap();
    }
    let out = d.path().join("out");
    let sweep = d.path().join("sweep.toml");
    let r = dyad(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let t = texts(&read(&out.join("pareto.svg")));
    assert!(t.contains("output throughput (tokens/s)"), "{t}");
    assert!(t.contains("time between tokens, p50 (ms)"), "{t}");
    assert!(t.contains("4 × Duplex"), "{t}");
    let roof = read(&out.join("roofline.svg"));
    for unit in ["xpu", "pim"] {
        let c = hex(look(unit).color);
        assert!(roof.contains(&format!("stroke=\"{c}\"")), "{unit} roof");
        assert!(roof.contains(&format!("fill=\"{c}\"")), "{unit} ops");
    }
}
