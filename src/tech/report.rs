//! Renderings of the technology results: the PPA table of `dyad ppa`, the FFET calibration
//! table and the Logic-PIM study (Markdown).

use std::fmt::Write;

use super::die::{ClockSource, DieReport};
use super::ffet::{self, Study};
use super::params::ModelParams;
use super::pim::{Budget, Fit};

const MM2: f64 = 1e-6;

/// Per-block and per-die area, power and cost, one column block per die.
pub fn ppa_table(dies: &[(String, DieReport)]) -> String {
    let mut s = String::new();
    for (arch, d) in dies {
        let _ = writeln!(s, "{arch}: {} in {}", d.name, d.technology);
        let _ = writeln!(
            s,
            "  {:<34} {:>6} {:>12} {:>10} {:>8}",
            "block", "count", "area mm²", "power W", "util"
        );
        for b in &d.blocks {
            let util = b
                .logic
                .as_ref()
                .map_or("-".to_string(), |p| format!("{:.2}", p.utilization));
            let _ = writeln!(
                s,
                "  {:<34} {:>6} {:>12.2} {:>10.1} {:>8}",
                b.name,
                b.count,
                b.area.value() / MM2,
                b.power.value(),
                util
            );
        }
        let src = match d.clock_source {
            ClockSource::File => "from the file",
            ClockSource::Model => "tech model",
        };
        let model = d.model_clock.map_or(String::new(), |c| {
            format!("; tech model {:.3} GHz", c.value() / 1e9)
        });
        let _ = writeln!(
            s,
            "  die: {:.1} mm², {:.0} W at {:.3} GHz ({src}{model})",
            d.area.value() / MM2,
            d.power.value(),
            d.clock.value() / 1e9
        );
        let _ = writeln!(
            s,
            "  cost: {:.1} dies per wafer, yield {:.1}%, ${:.0} per good die\n",
            d.dies_per_wafer,
            100.0 * d.yield_fraction,
            d.cost_per_good_die_usd
        );
    }
    s
}

/// The FFET calibration report: paper against model, the designs, and the parameters.
pub fn ffet_markdown(study: &Study, model: &ModelParams) -> String {
    let mut s = String::from(
        "# Flip FET calibration: paper against model\n\n\
         Regenerate with `cargo run --release -- ppa --ffet-study > results/ffet/README.md`.\n\n\
         Paper: H. Lu et al., \"A Tale of Two Sides of Wafer: Physical Implementation and \
         Block-Level PPA on Flip FET with Dual-sided Signals\", DATE 2025 (arXiv 2501.15275): a \
         32-bit RISC-V core placed and routed in CFET and FFET.\n\n",
    );
    let _ = writeln!(
        s,
        "Model: a {:.0}-transistor block at node `{}`, utilization {:.2}; power compared at the \
         same clock (the baseline's), so it measures switched capacitance and leakage.\n",
        ffet::CORE_TRANSISTORS,
        ffet::NODE,
        ffet::UTILIZATION
    );
    comparison_rows(&mut s, study);
    design_table(&mut s, study);
    parameters_section(&mut s, model);
    s
}

/// The comparison table, paper against model, and the note on the tuned layout.
fn comparison_rows(s: &mut String, study: &Study) {
    *s += "| comparison | paper | model | tolerance | within |\n|---|---|---|---|---|\n";
    for r in &study.rows {
        let _ = writeln!(
            s,
            "| {} | {:+.1}% | {:+.1}% | ±{:.0} pp | {} |",
            r.what,
            r.paper,
            r.model,
            r.tolerance,
            if r.within() { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(
        s,
        "\nThe dual-sided layout was tuned as the paper tuned it: {} layers per side, {:.0}% of \
         the input pins on the front. \"5 vs 12 layers barely degrades routability and power\" \
         has no number in the paper; the rows hold the model to within 2 points and 2%. The \
         model's frequency changes by {:+.1}% from 12 to 5 layers (the critical nets detour more \
         on fewer layers); the paper makes no claim about frequency there.\n",
        study.tuned.0,
        100.0 * study.tuned.1,
        study.five_layer_frequency
    );
}

/// The designs: each one's area, utilization, congestion and stage delay.
fn design_table(s: &mut String, study: &Study) {
    *s += "## The designs\n\n| design | core µm² | utilization | achievable | congestion front/back \
          | stage net µm | stage ps | wire share of delay | wire share of C |\n\
          |---|---|---|---|---|---|---|---|---|\n";
    for (name, p) in &study.designs {
        let _ = writeln!(
            s,
            "| {name} | {:.1} | {:.3} | {:.3} | {:.2}/{:.2} | {:.2} | {:.2} | {:.0}% | {:.0}% |",
            p.area.value() * 1e12,
            p.utilization,
            p.achievable_utilization,
            p.congestion[0],
            p.congestion[1],
            p.net_length_um,
            p.stage_delay.value() * 1e12,
            100.0 * p.wire_delay_share,
            100.0 * p.wire_cap_share
        );
    }
}

/// Where the parameters come from, which were calibrated, and their values.
fn parameters_section(s: &mut String, model: &ModelParams) {
    *s += "\n## Parameters\n\nAll in `arch/tech/model.toml` (block model) and \
          `arch/tech/devices.toml` (devices), each with its source. Calibrated to this table: the \
          FFET cell-area factor, drive and capacitance (the paper says only \"faster, more \
          energy-efficient libraries\" and gives 12.5% for the cell area alone), the stage-wire \
          constant and the n5 effective wire resistance (together the wire RC share), the \
          detour coefficient, the pin-access coefficient and the cross-side overhead. Taken from the literature: the rest.\n\n";
    let m = model;
    let _ = writeln!(
        s,
        "Rent exponent {}, net-length constant {}, stage-wire constant {}, detour coefficient {}, \
         routing efficiency {}, pin-access coefficient {}, cross-side overhead {}, {} \
         transistors and {} input pins per cell, fan-out {}.",
        m.rent_exponent,
        m.net_length_constant,
        m.stage_wire_constant,
        m.detour_coefficient,
        m.routing_efficiency,
        m.pin_access_coefficient,
        m.cross_side_overhead,
        m.transistors_per_cell,
        m.pins_per_cell,
        m.fanout
    );
}

/// The Logic-PIM study table.
pub fn pim_markdown(budget: &Budget, fits: &[Fit]) -> String {
    let mut s = format!(
        "Budget: a {:.0} mm² logic die; Logic-PIM power {:.2} W (the Duplex design at the \
         reference technology).\n\n",
        budget.die_area.value() / MM2,
        budget.pim_power.value()
    );
    s += "| technology | module mm² | module mW | shared mm² | base mm² | fit by area | fit by \
          power | modules | FP16 TFLOPS per stack |\n|---|---|---|---|---|---|---|---|---|\n";
    for f in fits {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.0} | {:.2} | {:.2} | {} | {} | **{}** | {:.1} |",
            f.technology,
            f.module_area.value() / MM2,
            f.module_power.value() * 1e3,
            f.shared_area.value() / MM2,
            f.base_area.value() / MM2,
            f.by_area,
            f.by_power,
            f.modules,
            f.tflops
        );
    }
    s
}
