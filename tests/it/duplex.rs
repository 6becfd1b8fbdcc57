//! `dyad reproduce duplex` against the Duplex paper (MICRO 2024, arXiv 2409.01141): each figure of
//! the "Against the paper" table in `results/duplex/README.md` is recomputed here from the run's
//! `points.csv` and must stay in a band around the paper's number (REFERENCE.md, "Duplex",
//! "Results against the H100 system"). The expected values are the paper's; dyad's own output
//! is never the reference. The open-loop rates are in the README only, so they are read there.
//!
//! Energy: the paper counts dynamic energy (per-action energies, REFERENCE.md §Duplex energy; no
//! static term), so the bands hold `energy_per_output_token_dynamic_j`; the all-in figure
//! (with static power) is in the README beside it, and checked here only as dynamic + static.
//!
//! Tolerances: throughput ratios ±20 % of the paper's (the band the issue gives for the mean;
//! 2.2–3.1 around 2.67× for the best), energy per token ±8 percentage points (the band
//! around Mixtral's −33.28 %), open-loop rates ±25 % (the paper gives them as "≈", read off a
//! plot; dyad searches a grid of 1/s).

use std::path::Path;

use crate::util::dyad;

/// One row of `points.csv` (the columns used here).
#[derive(Debug, serde::Deserialize)]
struct Point {
    model: String,
    system: String,
    batch: u64,
    len: u64,
    devices: u64,
    output_tokens_per_s: f64,
    energy_per_output_token_j: f64,
    energy_per_output_token_dynamic_j: f64,
    energy_per_output_token_static_j: f64,
}

/// The Duplex variants the paper counts as "Duplex".
const DUPLEX: [&str; 3] = ["Duplex", "Duplex+CoP", "Duplex+CoP+ET"];

/// `system` over `base` at every grid point of `model` that both ran: (throughput ratios,
/// energy-per-token ratios).
fn ratios(points: &[Point], model: &str, system: &str, base: &str) -> (Vec<f64>, Vec<f64>) {
    let at = |sys: &str, p: &Point| {
        points
            .iter()
            .find(|b| b.model == model && b.system == sys && b.batch == p.batch && b.len == p.len)
    };
    let mut t = Vec::new();
    let mut e = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.model == model && p.system == system)
    {
        if let Some(b) = at(base, p) {
            t.push(p.output_tokens_per_s / b.output_tokens_per_s);
            e.push(p.energy_per_output_token_dynamic_j / b.energy_per_output_token_dynamic_j);
        }
    }
    assert!(!t.is_empty(), "no {system} vs {base} points for {model}");
    (t, e)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Energy per token of `r` (a ratio to the GPU's) as a reduction in percent.
fn saving(r: f64) -> f64 {
    100.0 * (1.0 - r)
}

/// One figure: what it is, the paper's value, the band around it, and dyad's value.
struct Figure {
    what: &'static str,
    paper: f64,
    band: (f64, f64),
    got: f64,
}

/// `paper` ± `share` of it.
fn rel(what: &'static str, paper: f64, share: f64, got: f64) -> Figure {
    Figure {
        what,
        paper,
        band: (paper * (1.0 - share), paper * (1.0 + share)),
        got,
    }
}

/// `paper` ± `points` (for percentages).
fn abs(what: &'static str, paper: f64, points: f64, got: f64) -> Figure {
    Figure {
        what,
        paper,
        band: (paper - points, paper + points),
        got,
    }
}

/// The highest sustained open-loop rate the README gives for each system, from its rows
/// "| open loop (4096, 512): highest sustained rate, SYSTEM | paper | N/s | … |".
fn open_loop_rates(readme: &str) -> Vec<(String, f64)> {
    let key = "| open loop (4096, 512): highest sustained rate, ";
    readme
        .lines()
        .filter_map(|l| l.strip_prefix(key))
        .map(|rest| {
            let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
            let rate = cells[2].strip_suffix("/s").and_then(|r| r.parse().ok());
            let rate = rate.unwrap_or_else(|| panic!("bad open-loop row: {rest}"));
            (cells[0].to_string(), rate)
        })
        .collect()
}

/// The Mixtral figures: best, mean and energy of the best Duplex variant, plain Duplex, the gains
/// of co-processing and +ET, and Duplex over Bank-PIM.
fn mixtral_figures(p: &[Point]) -> Vec<Figure> {
    let m = "mixtral-8x7b";
    let vs_gpu: Vec<_> = DUPLEX.iter().map(|s| ratios(p, m, s, "GPU")).collect();
    let best = vs_gpu.iter().map(|r| max(&r.0)).fold(0.0, f64::max);
    let best_mean = vs_gpu.iter().map(|r| mean(&r.0)).fold(0.0, f64::max);
    let best_energy = vs_gpu
        .iter()
        .map(|r| mean(&r.1))
        .fold(f64::INFINITY, f64::min);
    let bank = ratios(p, m, "Duplex+CoP+ET", "Bank-PIM").0;
    vec![
        // Paper: "Throughput up to 2.67×"; the band 2.2–3.1.
        Figure {
            what: "Mixtral: best throughput, Duplex over GPU",
            paper: 2.67,
            band: (2.2, 3.1),
            got: best,
        },
        // Paper: "2.07× on average"; ±20 %.
        rel(
            "Mixtral: mean throughput, Duplex over GPU",
            2.07,
            0.2,
            best_mean,
        ),
        // Paper: energy per token −33.28 % on Mixtral; ±8 points.
        abs(
            "Mixtral: energy per token saved, Duplex vs GPU (%)",
            33.28,
            8.0,
            saving(best_energy),
        ),
        // Paper: "Duplex without co-processing: up to 2.51×"; ±20 %.
        rel(
            "Duplex without co-processing: best over GPU",
            2.51,
            0.2,
            max(&ratios(p, m, "Duplex", "GPU").0),
        ),
        // Paper: "co-processing adds 1.04× on average"; it must not lose (≥ 1), and at most
        // +10 % above the paper's gain.
        Figure {
            what: "co-processing: mean gain over plain Duplex",
            paper: 1.04,
            band: (1.0, 1.04 * 1.1),
            got: mean(&ratios(p, m, "Duplex+CoP", "Duplex").0),
        },
        // Paper: "with expert tensor parallelism up to 1.36× over plain Duplex"; ±20 %.
        rel(
            "+ET: best gain over plain Duplex",
            1.36,
            0.2,
            max(&ratios(p, m, "Duplex+CoP+ET", "Duplex").0),
        ),
        // Paper: "Against Bank-PIM on Mixtral: Duplex up to 1.80× faster"; ±20 %.
        rel("Mixtral: Duplex over Bank-PIM, best", 1.80, 0.2, max(&bank)),
        // Paper: "(1.49× average)"; ±20 %.
        rel(
            "Mixtral: Duplex over Bank-PIM, mean",
            1.49,
            0.2,
            mean(&bank),
        ),
    ]
}

/// The figures over all models: the mean gain, and GLaM's and Grok-1's energy.
fn all_model_figures(p: &[Point], models: &[&str]) -> Vec<Figure> {
    let gain = |m: &str| mean(&ratios(p, m, "Duplex+CoP+ET", "GPU").0);
    let energy = |m: &str| saving(mean(&ratios(p, m, "Duplex+CoP+ET", "GPU").1));
    let mean_all = models.iter().map(|m| gain(m)).sum::<f64>() / models.len() as f64;
    vec![
        // Paper: "Throughput … 2.07× on average" (over its models); ±20 %.
        rel(
            "mean throughput over all models, Duplex+CoP+ET over GPU",
            2.07,
            0.2,
            mean_all,
        ),
        // Paper: energy per token −42.03 % on GLaM; ±8 points.
        abs(
            "GLaM: energy per token saved, Duplex vs GPU (%)",
            42.03,
            8.0,
            energy("glam"),
        ),
        // Paper: energy per token −34.59 % on Grok-1; ±8 points.
        abs(
            "Grok-1: energy per token saved, Duplex vs GPU (%)",
            34.59,
            8.0,
            energy("grok-1"),
        ),
    ]
}

/// The open-loop figures from the README.
fn open_loop_figures(readme: &str) -> Vec<Figure> {
    let rates = open_loop_rates(readme);
    let rate = |sys: &str| {
        rates
            .iter()
            .find(|(s, _)| s == sys)
            .unwrap_or_else(|| panic!("no open-loop rate for {sys} in {rates:?}"))
            .1
    };
    let (gpu, duplex) = (rate("GPU"), rate("Duplex+CoP+ET"));
    assert!(duplex > gpu, "Duplex sustains more than the GPU: {rates:?}");
    vec![
        // Paper: "the GPU sustains at most ≈ 9 requests/s"; ±25 %.
        rel(
            "open loop (4096, 512): highest sustained rate, GPU (1/s)",
            9.0,
            0.25,
            gpu,
        ),
        // Paper: "Duplex ≈ 14"; ±25 %.
        rel(
            "open loop (4096, 512): highest sustained rate, Duplex (1/s)",
            14.0,
            0.25,
            duplex,
        ),
    ]
}

/// The qualitative claims: Bank-PIM beats Duplex on OPT-66B, and Grok-1 gains least.
fn check_claims(p: &[Point]) {
    // Paper: "Bank-PIM wins on OPT (multi-head attention, Op/B ≈ 1)".
    let opt = max(&ratios(p, "opt-66b", "Bank-PIM", "Duplex+CoP+ET").0);
    assert!(opt > 1.0, "OPT-66B: Bank-PIM over Duplex, best {opt:.2}x");
    // Paper: "Grok-1 gains least (inter-node communication)". Checked here among the MoE models
    // only: across all five, Llama-3-70B (dense, GQA with 8 KV heads) gains less than Grok-1 in
    // dyad, a difference from the paper that the "Grok-1 gains least" row of
    // results/duplex/README.md shows.
    let gain = |m: &str| mean(&ratios(p, m, "Duplex+CoP+ET", "GPU").0);
    let grok = gain("grok-1");
    for m in ["mixtral-8x7b", "glam"] {
        assert!(grok < gain(m), "Grok-1 {grok:.2}x vs {m} {:.2}x", gain(m));
    }
}

/// Every model has all nine (batch, L) points on every system it runs (Grok-1: no 2xGPU, which
/// would need 4 nodes).
fn check_grid(p: &[Point], models: &[&str]) {
    for m in models {
        let mut systems = vec!["GPU", "Bank-PIM"];
        systems.extend(DUPLEX);
        if *m != "grok-1" {
            systems.push("2xGPU");
        }
        for s in systems {
            let n = p.iter().filter(|x| x.model == *m && x.system == s).count();
            assert_eq!(n, 9, "{m} {s}: points");
        }
    }
    assert_eq!(p.len(), 4 * 9 * 6 + 9 * 5);
}

/// Every point's energy: dynamic and static parts non-negative and summing to the total; static
/// per token = the H100's static power × devices ÷ throughput (closed loop: the run's duration
/// over its output tokens), the PIM units adding none (arch/duplex.toml).
fn check_energy(p: &[Point]) {
    let h100 = dyad::config::load_arch("h100".as_ref()).unwrap();
    let watts = h100.xpu.energy.static_power.value();
    for x in p {
        let (d, s, t) = (
            x.energy_per_output_token_dynamic_j,
            x.energy_per_output_token_static_j,
            x.energy_per_output_token_j,
        );
        let what = format!("{} {} b{} L{}", x.model, x.system, x.batch, x.len);
        assert!(d > 0.0 && s >= 0.0, "{what}: dynamic {d}, static {s}");
        assert!((d + s - t).abs() <= 1e-9 * t, "{what}: {d} + {s} != {t}");
        let closed = watts * x.devices as f64 / x.output_tokens_per_s;
        assert!(
            (s / closed - 1.0).abs() < 1e-9,
            "{what}: static {s}, closed form {closed}"
        );
    }
}

fn read_points(dir: &Path) -> Vec<Point> {
    let mut r = csv::Reader::from_path(dir.join("points.csv")).unwrap();
    r.deserialize().map(|x| x.unwrap()).collect()
}

#[test]
fn the_duplex_reproduction_stays_near_the_papers_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let r = dyad(&["reproduce", "duplex", "--out", out]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let points = read_points(dir.path());
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    let models = ["mixtral-8x7b", "glam", "grok-1", "opt-66b", "llama-3-70b"];
    check_grid(&points, &models);
    check_energy(&points);
    let mut figures = mixtral_figures(&points);
    figures.extend(all_model_figures(&points, &models));
    figures.extend(open_loop_figures(&readme));
    for f in &figures {
        println!(
            "{}: dyad {:.3}, paper {} (band {:.3}..={:.3})",
            f.what, f.got, f.paper, f.band.0, f.band.1
        );
    }
    let outside: Vec<String> = figures
        .iter()
        .filter(|f| !(f.band.0..=f.band.1).contains(&f.got))
        .map(|f| {
            format!(
                "{}: dyad {:.3}, paper {}, band {:.3}..={:.3}",
                f.what, f.got, f.paper, f.band.0, f.band.1
            )
        })
        .collect();
    assert!(
        outside.is_empty(),
        "outside the paper's bands:\n{}",
        outside.join("\n")
    );
    check_claims(&points);
}

#[test]
fn open_loop_rows_are_read_from_the_readme_table() {
    let md = "| figure | paper | dyad | note |\n\
              | open loop (4096, 512): highest sustained rate, GPU | ~9/s | 8/s | Poisson |\n\
              | open loop (4096, 512): highest sustained rate, Duplex+CoP+ET | ~14/s | 13/s | x |\n";
    assert_eq!(
        open_loop_rates(md),
        [
            ("GPU".to_string(), 8.0),
            ("Duplex+CoP+ET".to_string(), 13.0)
        ]
    );
}
