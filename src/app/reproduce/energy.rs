//! The Duplex study's energy against the paper: each of the paper's energy-per-token figures
//! beside dyad's dynamic energy (what the paper counts) and its all-in energy (dynamic plus the
//! static power of every device over the run).

use std::fmt::Write as _;

use super::Point;
use super::report::{mean, paired};

/// The paper's energy figures (REFERENCE.md §Duplex results): model, what, the paper's saving,
/// which Duplex variants count, note.
const PAPER: [(&str, &str, &str, &[&str], &str); 3] = [
    (
        "glam",
        "GLaM: energy per token, Duplex vs GPU",
        "-42.03%",
        &["Duplex+CoP+ET"],
        "Duplex+CoP+ET, mean over the grid",
    ),
    (
        "grok-1",
        "Grok-1: energy per token, Duplex vs GPU",
        "-34.59%",
        &["Duplex+CoP+ET"],
        "2 nodes x 8",
    ),
    (
        "mixtral-8x7b",
        "Mixtral: energy per token, Duplex vs GPU",
        "-33.28%",
        &["Duplex", "Duplex+CoP", "Duplex+CoP+ET"],
        "best Duplex variant, mean over the grid",
    ),
];

/// What the paper counts, and where the static power comes from.
const HEAD: &str = "\n## Energy per output token against the paper\n\n\
    The paper's energy is built from energy per action: DRAM activation and read paths from\n\
    FGDRAM, 0.23 pJ per FP16 MAC, 1.3 pJ/bit over NVLink (REFERENCE.md §Duplex energy); no static\n\
    or idle power term appears in it, so the paper counts dynamic energy, and the bands of\n\
    `tests/it/duplex.rs` hold the dynamic figure. The all-in figure adds each device's static\n\
    power over the run: 140 W per H100 (its measured draw at 0% utilization with the model\n\
    resident, REFERENCE.md §GPU idle power), nothing added for PIM units (assumed power-gated\n\
    when idle; arch/duplex.toml). Static energy per token is the same for every system at equal\n\
    throughput and devices, so it pulls every ratio towards the throughput ratio.\n\n\
    | figure | paper | dyad, dynamic (as the paper counts) | dyad, all-in | static share of the GPU's all-in J/token | note |\n\
    |---|---:|---:|---:|---:|---|\n";

/// The energy table: one row per energy figure of the paper.
pub(super) fn energy_table(points: &[Point]) -> String {
    let mut s = String::from(HEAD);
    for (model, what, paper, variants, note) in PAPER {
        let best = |energy: fn(&Point) -> f64| {
            variants
                .iter()
                .map(|v| mean(&paired(points, model, v, "GPU", energy).1))
                .fold(f64::INFINITY, f64::min)
        };
        let dynamic = best(|p| p.energy_per_output_token_dynamic_j);
        let all_in = best(|p| p.energy_per_output_token_j);
        let gpu: Vec<f64> = points
            .iter()
            .filter(|p| p.model == model && p.system == "GPU")
            .map(|p| p.energy_per_output_token_static_j / p.energy_per_output_token_j)
            .collect();
        let _ = writeln!(
            s,
            "| {what} | {paper} | {:+.1}% | {:+.1}% | {:.0}% | {note} |",
            100.0 * (dynamic - 1.0),
            100.0 * (all_in - 1.0),
            100.0 * mean(&gpu),
        );
    }
    s
}
