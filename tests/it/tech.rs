//! The technology model against published numbers: the Flip FET block-level results it is
//! calibrated to, and known dies it predicts (A100 area, Duplex Logic-PIM area, H100 energy per
//! FLOP); the model's monotonic properties; the Logic-PIM study's conclusion.

use dyad::app::ppa::die_ppa;
use dyad::config::{load_die, load_tech_library};
use dyad::tech::{self, BlockSpec, Layout, Library, Placement, Role, block, ffet, pim, sram_area};
use proptest::prelude::*;

use crate::util::root;

fn lib() -> Library {
    load_tech_library(&root("arch/tech")).unwrap()
}

const MM2: f64 = 1e-6;

/// The paper's figures (Lu et al., DATE 2025, abstract), typed here, not taken from the program.
#[test]
fn ffet_study_reproduces_the_paper_within_tolerance() {
    let s = ffet::study(&lib()).unwrap();
    let paper = [
        ("core area", -23.3, 2.0),
        ("same utilization): frequency", 25.0, 2.0),
        ("same utilization): power", -11.9, 2.0),
        ("same core area): frequency", 16.0, 3.0),
        ("(tuned): frequency", 10.6, 2.0),
        ("(tuned): power", 0.0, 2.0),
        ("achievable utilization", 0.0, 2.0),
        ("power at that utilization", 0.0, 2.0),
    ];
    assert_eq!(s.rows.len(), paper.len());
    for (key, value, tol) in paper {
        let row = s.rows.iter().find(|r| r.what.contains(key)).unwrap();
        assert_eq!(row.paper, value, "{key}");
        assert!(
            (row.model - value).abs() <= tol,
            "{}: model {:+.2}% against paper {value:+.1}%",
            row.what,
            row.model
        );
    }
}

#[test]
fn a100_die_is_predicted_within_5_percent_of_826_mm2() {
    let (_, r) = die_ppa(&root("arch/tech/dies/a100.toml"), &lib()).unwrap();
    let area = r.area.value() / MM2;
    assert!((area / 826.0 - 1.0).abs() < 0.05, "A100 die {area:.1} mm²");
}

#[test]
fn duplex_logic_pim_units_at_7nm_are_within_10_percent_of_17_80_mm2() {
    let lib = lib();
    let d = load_die(&root("arch/tech/dies/hbm3-logic-die.toml"), &lib).unwrap();
    let t = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let r = tech::die(&t, &d.spec);
    let pim: f64 = d
        .spec
        .blocks
        .iter()
        .zip(&r.blocks)
        .filter(|(b, _)| b.role != Role::Base)
        .map(|(_, rep)| rep.area.value() / MM2)
        .sum();
    assert!(
        (pim / 17.80 - 1.0).abs() < 0.10,
        "Logic-PIM units {pim:.2} mm²"
    );
    // 14.71% of the 121 mm² die (Duplex).
    assert!((pim / 121.0 - 0.1471).abs() < 0.015);
}

#[test]
fn h100_energy_per_flop_all_in_is_within_1_5x_of_0_71_pj() {
    let (_, r) = die_ppa(&root("arch/tech/dies/h100.toml"), &lib()).unwrap();
    let die = r.power.value();
    // HBM3 at full bandwidth: 3.35 TB/s × 8 bit × 3.48 pJ/bit (xPU path, REFERENCE.md).
    let hbm = 3.35e12 * 8.0 * 3.48e-12;
    let pj = (die + hbm) / 989.4e12 * 1e12;
    assert!(
        pj > 0.71 / 1.5 && pj < 0.71 * 1.5,
        "H100 {pj:.3} pJ/FLOP all-in"
    );
}

/// The library, the Duplex logic die and the budget its n7 FinFET design sets.
fn logic_die() -> (Library, dyad::config::DieFile, pim::Budget) {
    let lib = lib();
    let d = load_die(&root("arch/tech/dies/hbm3-logic-die.toml"), &lib).unwrap();
    let reference = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let budget = pim::budget(&reference, &d.spec, pim::LOGIC_DIE_AREA);
    (lib, d, budget)
}

#[test]
fn a_flip_fet_logic_die_fits_more_logic_pim_than_finfet_or_cfet() {
    let (lib, d, budget) = logic_die();
    let reference = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let fit = |dev: &str, layout| {
        pim::fit(
            &lib.technology("n2", dev, layout).unwrap(),
            &d.spec,
            &budget,
        )
    };
    // Duplex's own design fits its die: 32 modules within 121 mm² at 7 nm.
    let duplex = pim::fit(&reference, &d.spec, &budget);
    assert!(duplex.by_area >= 32, "{duplex:?}");
    assert_eq!(duplex.modules, 32);
    assert!((duplex.tflops - 21.3).abs() < 0.1, "32 × 512 × 2 × 650 MHz");
    let ss = Layout::single_sided(12);
    let ffet = fit("ffet", Layout::dual_sided(12, 0.5));
    for other in [fit("finfet", ss), fit("cfet", ss), fit("gaa", ss)] {
        assert!(ffet.modules > other.modules, "{ffet:?} vs {other:?}");
        assert!(ffet.module_area < other.module_area);
    }
}

#[test]
fn sram_area_is_bits_times_bitcell_over_efficiency() {
    let lib = lib();
    let t = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    // 1 MiB: 8,388,608 bits × 0.027 µm² ÷ 0.20 = 1.1325 mm².
    let a = sram_area(&t, 8.0 * 1_048_576.0).value() / MM2;
    assert!((a - 1.1325).abs() < 1e-3, "{a}");
}

#[test]
fn backside_power_shrinks_a_routable_block() {
    let lib = lib();
    let spec = BlockSpec {
        transistors: 4e6,
        activity: 0.1,
        placement: Placement::Achievable,
    };
    let mut bsp = Layout::single_sided(12);
    bsp.backside_power = true;
    let front = block(
        &lib.technology("n2", "gaa", Layout::single_sided(12))
            .unwrap(),
        &spec,
    );
    let back = block(&lib.technology("n2", "gaa", bsp).unwrap(), &spec);
    assert!(back.utilization > front.utilization);
    assert!(back.area < front.area);
}

fn technologies() -> impl Strategy<Value = (usize, usize, u32, f64, f64)> {
    (0usize..5, 0usize..4, 1u32..12, 0.1f64..0.9, 1e4f64..1e9)
}

proptest! {
    #[test]
    fn more_routing_layers_never_lower_the_achievable_utilization(
        (n, d, layers, share, transistors) in technologies()
    ) {
        let lib = lib();
        let node = lib.nodes[n].name.clone();
        let dev = lib.devices[d].name.clone();
        let spec = BlockSpec { transistors, activity: 0.1, placement: Placement::Achievable };
        let layouts = |l| if dev == "ffet" { Layout::dual_sided(l, share) } else { Layout::single_sided(l) };
        let fewer = block(&lib.technology(&node, &dev, layouts(layers)).unwrap(), &spec);
        let more = block(&lib.technology(&node, &dev, layouts(layers + 1)).unwrap(), &spec);
        prop_assert!(more.achievable_utilization >= fewer.achievable_utilization);
        prop_assert!(more.area <= fewer.area);
    }

    #[test]
    fn a_denser_cell_never_grows_the_block_at_equal_utilization(
        (n, d, layers, _share, transistors) in technologies(), shrink in 0.3f64..1.0, u in 0.3f64..0.9
    ) {
        let mut lib = lib();
        let node = lib.nodes[n].name.clone();
        let dev = lib.devices[d].name.clone();
        let spec = BlockSpec { transistors, activity: 0.1, placement: Placement::Utilization(u) };
        let layout = Layout::single_sided(layers);
        let before = block(&lib.technology(&node, &dev, layout).unwrap(), &spec).area;
        if lib.devices[d].name != lib.node(&node).unwrap().native_device {
            lib.devices[d].cell_area *= shrink;
        } else {
            lib.nodes[n].logic_density /= shrink;
        }
        let after = block(&lib.technology(&node, &dev, layout).unwrap(), &spec).area;
        prop_assert!(after <= before);
    }
}

#[test]
fn at_the_routable_limit_the_busiest_side_is_exactly_full() {
    // Below the placement limit, the achievable utilization is where demand meets supply.
    let lib = lib();
    for (node, dev, layout) in [
        ("n5", "cfet", Layout::single_sided(2)),
        ("n2", "ffet", Layout::dual_sided(1, 0.7)),
        ("n7", "finfet", Layout::single_sided(1)),
    ] {
        let t = lib.technology(node, dev, layout).unwrap();
        let p = block(
            &t,
            &BlockSpec {
                transistors: 4e6,
                activity: 0.1,
                placement: Placement::Achievable,
            },
        );
        assert!(
            p.utilization < lib.model.max_utilization,
            "{node}/{dev}: capped"
        );
        let worst = p.congestion[0].max(p.congestion[1]);
        assert!(
            (worst - 1.0).abs() < 1e-9,
            "{node}/{dev}: congestion {worst}"
        );
    }
}

#[test]
fn a_die_without_a_clock_runs_at_the_models_clock() {
    let lib = lib();
    let text = std::fs::read_to_string(root("arch/tech/dies/a100.toml"))
        .unwrap()
        .replace("clock = \"1.41 GHz\"", "logic_depth = 40.0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.toml");
    std::fs::write(&path, text).unwrap();
    let (_, r) = die_ppa(&path, &lib).unwrap();
    assert_eq!(r.clock_source, tech::ClockSource::Model);
    let slowest = r
        .blocks
        .iter()
        .filter_map(|b| b.logic.map(|p| p.stage_delay.value()))
        .fold(0.0, f64::max);
    assert!((r.clock.value() * 40.0 * slowest - 1.0).abs() < 1e-12);
    // A few hundred MHz to a few GHz: 40 stages of tens of picoseconds.
    assert!(
        r.clock.value() > 2e8 && r.clock.value() < 5e9,
        "{}",
        r.clock.value()
    );
}

#[test]
fn impossible_layouts_are_refused_by_the_library() {
    let lib = lib();
    assert!(
        lib.technology("n5", "ffet", Layout::single_sided(0))
            .is_err()
    );
    assert!(
        lib.technology("n5", "ffet", Layout::dual_sided(6, 1.2))
            .is_err()
    );
    assert!(
        lib.technology("n5", "cfet", Layout::dual_sided(6, 0.5))
            .is_err()
    );
    assert!(
        lib.technology("n5", "ffet", Layout::single_sided(13))
            .is_err()
    );
    let e = lib
        .technology("n6", "ffet", Layout::single_sided(6))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n7, n5, n3, n2, a14"), "{e}");
}

#[test]
fn an_unknown_native_device_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["devices.toml", "model.toml"] {
        std::fs::copy(root(&format!("arch/tech/{f}")), dir.path().join(f)).unwrap();
    }
    let nodes = std::fs::read_to_string(root("arch/tech/nodes.toml"))
        .unwrap()
        .replacen("native_device = \"finfet\"", "native_device = \"vfet\"", 1);
    std::fs::write(dir.path().join("nodes.toml"), &nodes).unwrap();
    let e = load_tech_library(dir.path()).unwrap_err();
    let line = nodes.lines().position(|l| l.contains("vfet")).unwrap() + 1;
    assert_eq!(e.line_col().map(|(l, _)| l), Some(line));
    assert!(
        e.message().contains("finfet, gaa, cfet, ffet"),
        "{}",
        e.message()
    );
}

// ---------------------------------------------------------------------------------------------
// Coupling: `[pim.tech]` feeds the Logic-PIM device.
// ---------------------------------------------------------------------------------------------

/// The fit of the Duplex logic die in n2 Flip FET, dual-sided, under the Duplex budget, computed
/// here from the library and the die file, not through the arch file.
fn n2_ffet_fit() -> pim::Fit {
    let (lib, d, budget) = logic_die();
    let t = lib
        .technology("n2", "ffet", Layout::dual_sided(12, 0.5))
        .unwrap();
    pim::fit(&t, &d.spec, &budget)
}

#[test]
fn a_pim_tech_arch_takes_the_module_count_clock_and_energy_the_die_model_gives() {
    let sys = dyad::config::load_arch(&root("arch/duplex-n2-ffet.toml")).unwrap();
    let p = sys.pim.unwrap();
    let fit = n2_ffet_fit();
    assert_eq!(u64::from(p.modules), fit.modules);
    // Duplex's own 32 would mean the coupling was ignored.
    assert_ne!(p.modules, 32);
    assert!(
        p.modules > 32,
        "a 2 nm die fits more than the 7 nm design's 32"
    );
    assert_eq!(p.frequency.value(), 650e6, "the die file's Duplex clock");
    assert_eq!(p.flop_energy, fit.flop_energy);
    let o = p.origin.unwrap();
    assert_eq!(o.technology, "n2/ffet/ds12+12");
    use dyad::hw::Origin;
    assert_eq!(
        (o.modules, o.frequency, o.flop_energy),
        (Origin::Model, Origin::Model, Origin::Model)
    );
}

#[test]
fn an_explicit_pim_value_wins_over_the_tech_model() {
    let dir = tempfile::tempdir().unwrap();
    let base = root("arch/duplex-n2-ffet.toml");
    let child = dir.path().join("child.toml");
    std::fs::write(
        &child,
        format!(
            "extends = {:?}\n[pim]\nmodules = 40\n[pim.energy]\nflop = \"0.5 pJ/FLOP\"\n",
            base.display().to_string()
        ),
    )
    .unwrap();
    let p = dyad::config::load_arch(&child).unwrap().pim.unwrap();
    assert_eq!(p.modules, 40);
    assert!((p.flop_energy.value() - 0.5e-12).abs() < 1e-18);
    let o = p.origin.unwrap();
    use dyad::hw::Origin;
    assert_eq!(o.modules, Origin::Arch);
    assert_eq!(o.flop_energy, Origin::Arch);
    assert_eq!(o.frequency, Origin::Model);
}

#[test]
fn the_duplex_arch_without_pim_tech_keeps_its_own_values() {
    let p = dyad::config::load_arch(&root("arch/duplex.toml"))
        .unwrap()
        .pim
        .unwrap();
    assert_eq!(p.modules, 32);
    assert!(p.origin.is_none());
}

#[test]
fn the_models_pim_energy_per_flop_at_7nm_is_the_mac_anchor_plus_its_buffer() {
    // The MAC datapath is anchored to 0.46 pJ per FP16 MAC = 0.23 pJ/FLOP at 7 nm (FGDRAM as
    // Duplex uses it, arch/tech/README.md); a module adds its 8 KB buffer's reads, so its dynamic
    // energy per FLOP is at least that and well below twice it.
    let (lib, d, budget) = logic_die();
    let reference = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let e = pim::fit(&reference, &d.spec, &budget).flop_energy.value();
    assert!((0.23e-12 * 0.99..0.46e-12).contains(&e), "{e:e} J/FLOP");
    // And a 2 nm module spends less per FLOP.
    assert!(n2_ffet_fit().flop_energy.value() < e);
}

/// The Duplex die, the n7 FinFET budget, and the fit of (node n, device d, single-sided
/// `layers`) before and after `change` edits the library.
fn fit_before_after(
    n: usize,
    d: usize,
    layers: u32,
    change: impl FnOnce(&mut Library, usize, usize),
) -> (pim::Fit, pim::Fit) {
    let mut lib = lib();
    let die = load_die(&root("arch/tech/dies/hbm3-logic-die.toml"), &lib).unwrap();
    let node = lib.nodes[n].name.clone();
    let dev = lib.devices[d].name.clone();
    let layout = Layout::single_sided(layers);
    let reference = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let budget = pim::budget(&reference, &die.spec, pim::LOGIC_DIE_AREA);
    let before = pim::fit(
        &lib.technology(&node, &dev, layout).unwrap(),
        &die.spec,
        &budget,
    );
    change(&mut lib, n, d);
    let after = pim::fit(
        &lib.technology(&node, &dev, layout).unwrap(),
        &die.spec,
        &budget,
    );
    (before, after)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn a_denser_technology_never_fits_fewer_modules_by_area(
        (n, d, layers, _share, _t) in technologies(), shrink in 0.3f64..1.0
    ) {
        let (before, after) = fit_before_after(n, d, layers, |lib, n, d| {
            let node = lib.nodes[n].name.clone();
            if lib.devices[d].name != lib.node(&node).unwrap().native_device {
                lib.devices[d].cell_area *= shrink;
            } else {
                lib.nodes[n].logic_density /= shrink;
            }
            lib.nodes[n].sram_bitcell_um2 *= shrink;
        });
        prop_assert!(after.by_area >= before.by_area, "{before:?} -> {after:?}");
    }

    #[test]
    fn a_cooler_technology_never_fits_fewer_modules(
        (n, d, layers, _share, _t) in technologies(), cool in 0.3f64..1.0
    ) {
        let (before, after) = fit_before_after(n, d, layers, |lib, n, d| {
            lib.nodes[n].leakage_per_transistor *= cool;
            lib.nodes[n].sram_read_energy_per_bit *= cool;
            lib.nodes[n].vdd *= cool.sqrt();
            lib.devices[d].cap *= cool;
        });
        prop_assert!(after.by_power >= before.by_power, "{before:?} -> {after:?}");
        prop_assert_eq!(after.by_area, before.by_area);
        prop_assert!(after.modules >= before.modules);
    }
}
