//! Static energy against its closed form: static power × devices × time, apart from the dynamic
//! energy (MACs, DRAM and link bits), which static power leaves untouched; the total is their
//! sum, no part is negative, and an arch with no static power gives total = dynamic.

use dyad::config::load_arch;
use dyad::report::serving::ServingReport;
use dyad::sim::serving::{Scenario, simulate};
use dyad::sim::workload::Arrivals;
use dyad::units::Watts;

use crate::serving::scenario;
use crate::util::{dyad, dyad_with, root};

/// Llama-3-8B on 2 H100s (TP 2), 8 closed-loop requests of (128, 16), its devices drawing
/// `static_w` each.
fn small(static_w: f64) -> Scenario {
    let mut s = scenario(
        "llama-3-8b",
        2,
        128,
        16,
        Arrivals::Closed { concurrency: 4 },
        8,
        4,
    );
    s.sys.xpu.energy.static_power = Watts(static_w);
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn serving_static_energy_is_power_times_devices_times_time() {
    let (s, z) = (small(100.0), small(0.0));
    let (r, r0) = (simulate(&s, None).unwrap(), simulate(&z, None).unwrap());
    let (m, m0) = (
        ServingReport::new(&s, &r).serving,
        ServingReport::new(&z, &r0).serving,
    );
    assert_eq!(m.output_tokens, 8 * 16);
    // Static power changes no schedule: the same duration and dynamic energy.
    assert_eq!(m.duration_s, m0.duration_s);
    assert!(close(
        m.energy_per_output_token_dynamic_j,
        m0.energy_per_output_token_dynamic_j
    ));
    let closed_form = 100.0 * 2.0 * m.duration_s / m.output_tokens as f64;
    assert!(
        close(m.energy_per_output_token_static_j, closed_form),
        "{m:?}"
    );
    assert_eq!(m.static_power_w, 100.0);
    assert!(close(
        m.energy_per_output_token_j,
        m.energy_per_output_token_dynamic_j + m.energy_per_output_token_static_j
    ));
    assert!(close(
        m.energy_j,
        m.energy_per_output_token_j * m.output_tokens as f64
    ));
    assert!(m.energy_per_output_token_dynamic_j > 0.0);
    assert!(m.energy_per_output_token_static_j > 0.0);
    // No static power: the total is the dynamic energy.
    assert_eq!(m0.energy_per_output_token_static_j, 0.0);
    assert_eq!(
        m0.energy_per_output_token_j,
        m0.energy_per_output_token_dynamic_j
    );
    assert!(close(
        m0.energy_per_output_token_by_component_j.mac
            + m0.energy_per_output_token_by_component_j.dram_xpu
            + m0.energy_per_output_token_by_component_j.dram_pim
            + m0.energy_per_output_token_by_component_j.link,
        m0.energy_per_output_token_dynamic_j
    ));
}

/// The `totals` of a `dyad run` as JSON.
fn run_totals(r: crate::util::Run) -> serde_json::Value {
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["totals"].clone()
}

/// `dyad run` of Llama-3-8B decode, batch 8, TP 2, in JSON (the first 7: the run itself).
const RUN: [&str; 9] = [
    "run",
    "--model",
    "llama-3-8b",
    "--batch",
    "8",
    "--tp",
    "2",
    "--format",
    "json",
];

#[test]
fn one_iterations_static_energy_is_power_times_devices_times_its_time() {
    let arch = load_arch("h100".as_ref()).unwrap();
    let p = arch.xpu.energy.static_power.value();
    assert!(p > 0.0, "the shipped H100 states a static power");
    let mut args = RUN.to_vec();
    args.extend(["--arch", "h100"]);
    let t = run_totals(dyad(&args));
    let f = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("totals.{k}: {t}"));
    assert_eq!(f("static_power_w"), p);
    assert!(close(f("energy_static_j"), p * 2.0 * f("iteration_s")));
    assert!(close(
        f("energy_total_j"),
        f("energy_dynamic_j") + f("energy_static_j")
    ));
    let tokens = f("tokens");
    assert_eq!(tokens, 8.0);
    assert!(close(f("energy_per_token_j"), f("energy_total_j") / tokens));
    assert!(close(
        f("energy_per_token_static_j"),
        f("energy_static_j") / tokens
    ));
    assert!(f("energy_dynamic_j") > 0.0 && f("energy_static_j") > 0.0);
    // The same arch with no static power: the same dynamic energy, total = dynamic.
    let zero = format!(
        "extends = \"{}\"\nname = \"H100, no static power\"\n[xpu.energy]\nstatic_power = \"0 W\"\n",
        root("arch/h100.toml").display()
    );
    let mut args = RUN.to_vec();
    args.extend(["--arch", "zero.toml"]);
    let z = run_totals(dyad_with(&[("zero.toml", &zero)], &args));
    let g = |k: &str| z[k].as_f64().unwrap();
    assert_eq!(g("energy_static_j"), 0.0);
    assert_eq!(g("energy_total_j"), g("energy_dynamic_j"));
    assert!(close(g("energy_dynamic_j"), f("energy_dynamic_j")));
}

#[test]
fn the_run_table_shows_static_energy_apart_per_iteration_and_per_token() {
    let mut args = RUN[..7].to_vec();
    args.extend(["--arch", "h100"]);
    let r = dyad(&args);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let iter = r
        .stdout
        .lines()
        .find(|l| l.starts_with("energy per iteration"));
    let iter = iter.unwrap_or_else(|| panic!("no per-iteration energy line:\n{}", r.stdout));
    let p = load_arch("h100".as_ref())
        .unwrap()
        .xpu
        .energy
        .static_power
        .value();
    let per_device = format!("{p:.0} W per device");
    assert!(
        iter.contains("dynamic") && iter.contains("static") && iter.contains(&per_device),
        "{iter}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("energy per token") && l.contains("static"))
    );
}
