//! Reproduction studies: grids of serving runs set beside a paper's figures.
//!
//! `duplex` reruns the Duplex paper's evaluation grid (REFERENCE.md) on the systems it compares.

use std::fmt::Write as _;

use crate::app::run::RunError;
use crate::config;
use crate::map::Policy;
use crate::report::serving::ServingReport;
use crate::sim::serving::{Scenario, simulate};
use crate::sim::workload::{Arrivals, LengthDist, Lengths};

/// A system of the comparison: an arch, a policy and how a model is spread over its devices.
#[derive(Debug, Clone, Copy)]
pub struct SystemSpec {
    pub label: &'static str,
    pub arch: &'static str,
    pub policy: Policy,
    /// Devices per model replica, relative to the paper's base count (2 for "2×GPU").
    pub scale: u64,
    /// Experts whole per device (expert parallelism) rather than sliced (tensor parallelism,
    /// "+ET"); dense models always use tensor parallelism.
    pub whole_experts: bool,
}

/// The systems of the Duplex evaluation.
pub const DUPLEX_SYSTEMS: [SystemSpec; 6] = [
    SystemSpec {
        label: "GPU",
        arch: "h100",
        policy: Policy::AllXpu,
        scale: 1,
        whole_experts: false,
    },
    SystemSpec {
        label: "2xGPU",
        arch: "h100",
        policy: Policy::AllXpu,
        scale: 2,
        whole_experts: false,
    },
    SystemSpec {
        label: "Bank-PIM",
        arch: "bank-pim",
        policy: Policy::Dispatch,
        scale: 1,
        whole_experts: true,
    },
    SystemSpec {
        label: "Duplex",
        arch: "duplex",
        policy: Policy::Dispatch,
        scale: 1,
        whole_experts: true,
    },
    SystemSpec {
        label: "Duplex+CoP",
        arch: "duplex",
        policy: Policy::Duplex,
        scale: 1,
        whole_experts: true,
    },
    SystemSpec {
        label: "Duplex+CoP+ET",
        arch: "duplex",
        policy: Policy::Duplex,
        scale: 1,
        whole_experts: false,
    },
];

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Point {
    pub model: String,
    pub system: String,
    pub batch: u64,
    pub len: u64,
    pub devices: u64,
    pub output_tokens_per_s: f64,
    pub e2e_p50_s: f64,
    pub tbt_p50_s: f64,
    pub energy_per_output_token_j: f64,
    pub pim_time_share: f64,
}

fn scenario(
    model: &str,
    devices: u64,
    sys: &SystemSpec,
    batch: u64,
    len: u64,
    requests: u64,
) -> Result<Scenario, RunError> {
    let m = config::load_model(model.as_ref())?;
    let n = devices * sys.scale;
    // Beyond one 8-device node, the two-node variant of the arch (InfiniBand between nodes).
    let arch = if n > 8 {
        format!("{}-2node", sys.arch)
    } else {
        sys.arch.to_string()
    };
    let ep = if sys.whole_experts && m.moe.is_some_and(|x| x.experts % n == 0) {
        n
    } else {
        1
    };
    Ok(Scenario {
        name: format!("{model} {} b{batch} {len}/{len}", sys.label),
        sys: config::load_arch(arch.as_ref())?,
        precision: crate::model::Precision::uniform(crate::work::Dtype::Fp16),
        model: m,
        tp: n / ep,
        ep,
        count: requests,
        lengths: Lengths::Drawn {
            prompt: LengthDist::Fixed(len),
            output: LengthDist::Fixed(len),
        },
        arrivals: Arrivals::Closed { concurrency: batch },
        max_batch: batch,
        max_tokens: 8192,
        kv_block: 16,
        memory_utilization: 0.9,
        routing: crate::sim::routing::RoutingSpec::Uniform,
        policy: sys.policy,
        seed: 1,
        timing: crate::hw::Timing::Kernel,
    })
}

/// One closed-loop serving run of Mixtral-8x7B on 4 devices under the `duplex` policy (whole
/// experts per device), each device being `sys`: `batch` requests in flight, `len` prompt and
/// `len` output tokens, `requests` in all. The Logic-PIM technology study runs one per logic die.
pub fn duplex_serving(
    sys: crate::hw::System,
    batch: u64,
    len: u64,
    requests: u64,
) -> Result<ServingReport, RunError> {
    let mut s = scenario("mixtral-8x7b", 4, &DUPLEX_SYSTEMS[4], batch, len, requests)?;
    s.name = format!("mixtral-8x7b {} b{batch} {len}/{len}", sys.name);
    s.sys = sys;
    let mut r = simulate(&s, false).map_err(|e| RunError::Input(format!("{}: {e}", s.name)))?;
    Ok(ServingReport::new(&s, &mut r))
}

/// Runs the closed-loop grid: each model on its device count, batches × lengths × systems.
pub fn duplex_grid(
    models: &[(&str, u64)],
    batches: &[u64],
    lens: &[u64],
) -> Result<Vec<Point>, RunError> {
    let mut out = Vec::new();
    for &(model, devices) in models {
        for &batch in batches {
            for &len in lens {
                for sys in &DUPLEX_SYSTEMS {
                    if devices * sys.scale > 16 {
                        continue; // two nodes at most
                    }
                    let s = scenario(model, devices, sys, batch, len, 3 * batch)?;
                    let mut r = simulate(&s, false)
                        .map_err(|e| RunError::Input(format!("{}: {e}", s.name)))?;
                    let m = ServingReport::new(&s, &mut r).serving;
                    out.push(Point {
                        model: model.into(),
                        system: sys.label.into(),
                        batch,
                        len,
                        devices: s.tp * s.ep,
                        output_tokens_per_s: m.output_tokens_per_s,
                        e2e_p50_s: m.e2e_s.p50,
                        tbt_p50_s: m.tbt_s.p50,
                        energy_per_output_token_j: m.energy_per_output_token_j,
                        pim_time_share: m.pim_time_share,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Highest Poisson rate (requests/s, on a grid of 1/s) that `sys` sustains: the queue stays
/// bounded, judged by the 90th-percentile time to first token staying under 2 s over 600
/// requests (past saturation it grows with the length of the run).
pub fn saturation_rate(model: &str, devices: u64, sys: &SystemSpec) -> Result<f64, RunError> {
    let mut best = 0.0;
    for rate in 2..=24 {
        let mut s = scenario(model, devices, sys, 128, 4096, 600)?;
        s.lengths = Lengths::Drawn {
            prompt: LengthDist::Fixed(4096),
            output: LengthDist::Fixed(512),
        };
        s.arrivals = Arrivals::Poisson {
            rate: f64::from(rate),
        };
        let mut r = simulate(&s, false).map_err(|e| RunError::Input(e.to_string()))?;
        let m = ServingReport::new(&s, &mut r).serving;
        if m.ttft_s.p90 >= 2.0 {
            break;
        }
        best = f64::from(rate);
    }
    Ok(best)
}

/// Ratios of `system` against `base` over the points of `model`: (best, mean) throughput ratio
/// and mean energy-per-token ratio.
pub fn ratios(points: &[Point], model: &str, system: &str, base: &str) -> (f64, f64, f64) {
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
            e.push(p.energy_per_output_token_j / b.energy_per_output_token_j);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (t.iter().copied().fold(0.0, f64::max), mean(&t), mean(&e))
}

/// The study's Markdown report: our figures beside the paper's.
pub fn duplex_markdown(points: &[Point], saturation: &[(String, f64)]) -> String {
    let mut s = String::from(
        "# Duplex reproduction\n\n\
         Regenerate with `cargo run --release -- reproduce duplex` (writes this file,\n\
         `points.csv` and the plots `<model>-throughput.svg`, `<model>-energy.svg`).\n\
         Closed loop, (L_in, L_out) = (L, L), uniform expert routing, fp16, as the paper's grid\n\
         (REFERENCE.md: Duplex, MICRO 2024): Mixtral-8x7B, OPT-66B and Llama-3-70B on 4 devices,\n\
         GLaM on 8, Grok-1 on 2 nodes x 8 (InfiniBand between them). Systems: GPU = H100s (tensor\n\
         parallel); 2xGPU = twice as many (up to 2 nodes);\n\
         Bank-PIM = H100 + Bank-PIM HBM with Op/B dispatch; Duplex = H100 + Logic-PIM HBM with Op/B\n\
         dispatch, whole experts per device; +CoP = expert and attention co-processing; +ET = experts\n\
         split by tensor parallelism instead.\n\n![Mixtral throughput](mixtral-8x7b-throughput.svg)\n![Mixtral energy](mixtral-8x7b-energy.svg)\n\n## Against the paper\n\n| figure | paper | dyad | note |\n|---|---:|---:|---|\n",
    );
    let m = "mixtral-8x7b";
    let best_duplex = ["Duplex", "Duplex+CoP", "Duplex+CoP+ET"]
        .iter()
        .map(|sys| ratios(points, m, sys, "GPU"))
        .fold((0.0f64, 0.0f64, f64::INFINITY), |a, r| {
            (a.0.max(r.0), a.1.max(r.1), a.2.min(r.2))
        });
    let (plain_best, _, _) = ratios(points, m, "Duplex", "GPU");
    let (_, cop_mean, _) = ratios(points, m, "Duplex+CoP", "Duplex");
    let (et_best, _, _) = ratios(points, m, "Duplex+CoP+ET", "Duplex");
    let (bank_best, bank_mean, _) = ratios(points, m, "Duplex+CoP+ET", "Bank-PIM");
    let mut models: Vec<&str> = points.iter().map(|p| p.model.as_str()).collect();
    models.dedup();
    let per_model: Vec<(&str, f64)> = models
        .iter()
        .map(|m| (*m, ratios(points, m, "Duplex+CoP+ET", "GPU").1))
        .collect();
    let mean_all = per_model.iter().map(|x| x.1).sum::<f64>() / per_model.len().max(1) as f64;
    let energy = |model: &str| 100.0 * (ratios(points, model, "Duplex+CoP+ET", "GPU").2 - 1.0);
    let (opt_bank, _, _) = ratios(points, "opt-66b", "Bank-PIM", "Duplex+CoP+ET");
    let gains: Vec<String> = per_model
        .iter()
        .map(|(m, g)| format!("{m} {g:.2}x"))
        .collect();
    let rows = [
        (
            "mean throughput over all models, Duplex+CoP+ET over GPU",
            "2.07x",
            format!("{mean_all:.2}x"),
            "mean of the per-model means",
        ),
        (
            "GLaM: energy per token, Duplex vs GPU",
            "-42.03%",
            format!("{:+.1}%", energy("glam")),
            "Duplex+CoP+ET, mean over the grid",
        ),
        (
            "Grok-1: energy per token, Duplex vs GPU",
            "-34.59%",
            format!("{:+.1}%", energy("grok-1")),
            "2 nodes x 8",
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
            "Mixtral: energy per token, Duplex vs GPU",
            "-33.28%",
            format!("{:+.1}%", 100.0 * (best_duplex.2 - 1.0)),
            "dynamic energy (static power 0 W in the arch files)",
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
    ];
    for (f, p, d, n) in rows {
        let _ = writeln!(s, "| {f} | {p} | {d} | {n} |");
    }
    for (sys, rate) in saturation {
        let paper = if sys == "GPU" { "~9/s" } else { "~14/s" };
        let _ = writeln!(
            s,
            "| open loop (4096, 512): highest sustained rate, {sys} | {paper} | {rate:.0}/s | Poisson, max batch 128 |"
        );
    }
    let _ = writeln!(
        s,
        "\n## Every point\n\n| model | batch | L | system | tokens/s | vs GPU | E2E p50 | J/token | PIM time |\n|---|---:|---:|---|---:|---:|---:|---:|---:|"
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
            "| {} | {} | {} | {} | {:.0} | {:.2}x | {:.2} s | {:.1} mJ | {:.0}% |",
            p.model,
            p.batch,
            p.len,
            p.system,
            p.output_tokens_per_s,
            gpu,
            p.e2e_p50_s,
            1e3 * p.energy_per_output_token_j,
            100.0 * p.pim_time_share
        );
    }
    s
}

/// SVG plots of the grid: throughput over the GPU and energy per token, per model.
pub fn duplex_plots(points: &[Point], dir: &std::path::Path) -> Result<(), String> {
    use crate::report::plot::{Series, category_lines};
    let mut models: Vec<&str> = points.iter().map(|p| p.model.as_str()).collect();
    models.dedup();
    for m in models {
        let gpu: Vec<&Point> = points
            .iter()
            .filter(|p| p.model == m && p.system == "GPU")
            .collect();
        let cats: Vec<String> = gpu
            .iter()
            .map(|p| format!("b{} L{}", p.batch, p.len))
            .collect();
        let series = |f: &dyn Fn(&Point, &Point) -> f64| -> Vec<Series> {
            DUPLEX_SYSTEMS
                .iter()
                .map(|sys| Series {
                    name: sys.label.to_string(),
                    values: gpu
                        .iter()
                        .map(|g| {
                            points
                                .iter()
                                .find(|p| {
                                    p.model == m
                                        && p.system == sys.label
                                        && p.batch == g.batch
                                        && p.len == g.len
                                })
                                .map_or(f64::NAN, |p| f(p, g))
                        })
                        .collect(),
                })
                .collect()
        };
        category_lines(
            &dir.join(format!("{m}-throughput.svg")),
            &format!("{m}: output throughput over 4 x H100"),
            &cats,
            "throughput / GPU",
            &series(&|p, g| p.output_tokens_per_s / g.output_tokens_per_s),
        )
        .map_err(|e| e.to_string())?;
        category_lines(
            &dir.join(format!("{m}-energy.svg")),
            &format!("{m}: energy per output token (mJ)"),
            &cats,
            "mJ per token",
            &series(&|p, _| 1e3 * p.energy_per_output_token_j),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
