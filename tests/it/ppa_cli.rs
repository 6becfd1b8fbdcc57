//! `dyad ppa` end to end: the shipped arches side by side, the studies, and bad technology input
//! (unknown names, impossible layouts, unknown keys) ending with status 2 and a message naming
//! the file, line and key.

use crate::util::{dyad, dyad_in, dyad_with, expect_input_error, root};

const DIE: &str = include_str!("../../arch/tech/dies/a100.toml");

#[test]
fn ppa_shows_archs_side_by_side_from_any_directory() {
    let r = dyad_in(&std::env::temp_dir(), &["ppa", "a100", "h100"], None);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for n in [
        "GA100",
        "GH100",
        "tensor cores",
        "HBM2e PHY",
        "per good die",
        "A100 SXM 80GB",
    ] {
        assert!(r.stdout.contains(n), "stdout lacks {n:?}:\n{}", r.stdout);
    }
}

#[test]
fn ffet_study_prints_the_calibration_table_within_tolerance() {
    let r = dyad(&["ppa", "--ffet-study"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("| comparison | paper | model |"));
    assert!(r.stdout.contains("-23.3%") && r.stdout.contains("+10.6%"));
    assert!(!r.stdout.contains("**no**"), "{}", r.stdout);
}

#[test]
fn pim_study_prints_one_row_per_technology() {
    let r = dyad(&["ppa", "--pim-study", "arch/tech/dies/hbm3-logic-die.toml"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for n in [
        "n7/finfet/ss12",
        "n2/cfet/ss12",
        "n2/ffet/ds12+12",
        "121 mm²",
        "## Serving: Mixtral-8x7B on 4 Duplex devices",
        "batch 128: tokens/s",
        "| Duplex as in arch/duplex.toml | 32 | 650 | 0.230 |",
    ] {
        assert!(r.stdout.contains(n), "stdout lacks {n:?}:\n{}", r.stdout);
    }
}

#[test]
fn an_explicit_clock_in_the_arch_wins_and_is_marked() {
    let arch = "extends = \"a100.toml\"\nname = \"A100 slow\"\n[xpu.tech]\nclock = \"1 GHz\"\n";
    let r = dyad_with(
        &[
            ("a100.toml", include_str!("../../arch/a100.toml")),
            ("tech/dies/a100.toml", DIE),
            ("slow.toml", arch),
        ],
        &["ppa", "slow.toml"],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1.000 (arch)"), "{}", r.stdout);
}

#[test]
fn unknown_node_in_a_die_file_names_the_file_line_and_valid_names() {
    let bad = DIE.replace("node = \"n7\"", "node = \"n6\"");
    let r = dyad_with(&[("d.toml", &bad)], &["ppa", "--die", "d.toml"]);
    expect_input_error(&r, &["d.toml:", "unknown node `n6`", "n7, n5, n3, n2, a14"]);
}

#[test]
fn unknown_device_in_an_arch_override_names_the_arch_file() {
    let arch = "extends = \"a100.toml\"\n[xpu.tech]\ndevice = \"nanotube\"\n";
    let r = dyad_with(
        &[
            ("a100.toml", include_str!("../../arch/a100.toml")),
            ("tech/dies/a100.toml", DIE),
            ("x.toml", arch),
        ],
        &["ppa", "x.toml"],
    );
    expect_input_error(
        &r,
        &[
            "x.toml:3:",
            "unknown device `nanotube`",
            "finfet, gaa, cfet, ffet",
        ],
    );
}

#[test]
fn zero_routing_layers_is_an_error_at_the_key() {
    let bad = DIE.replace("routing_layers = 12", "routing_layers = 0");
    let r = dyad_with(&[("d.toml", &bad)], &["ppa", "--die", "d.toml"]);
    expect_input_error(&r, &["d.toml:13:", "layout.routing_layers", "at least 1"]);
}

#[test]
fn a_pin_share_above_one_is_an_error_at_the_key() {
    let bad = DIE.replace(
        "signal_sides = 1",
        "signal_sides = 2\nfront_pin_share = 1.5",
    );
    let r = dyad_with(&[("d.toml", &bad)], &["ppa", "--die", "d.toml"]);
    expect_input_error(&r, &["d.toml:13:", "layout.front_pin_share", "0..=1"]);
}

#[test]
fn dual_sided_signals_need_dual_sided_pins() {
    let bad = DIE.replace(
        "signal_sides = 1",
        "signal_sides = 2\nfront_pin_share = 0.5",
    );
    let r = dyad_with(&[("d.toml", &bad)], &["ppa", "--die", "d.toml"]);
    expect_input_error(&r, &["d.toml:12:", "impossible layout", "`finfet`"]);
}

#[test]
fn unknown_keys_in_die_and_library_files_are_errors() {
    let bad = DIE.replace("clock = ", "clok = \"1 GHz\"\nclock = ");
    let r = dyad_with(&[("d.toml", &bad)], &["ppa", "--die", "d.toml"]);
    expect_input_error(&r, &["d.toml:", "unknown field `clok`"]);

    let nodes = include_str!("../../arch/tech/nodes.toml").replacen("vdd_v", "vdd_volts", 1);
    let r = dyad_with(
        &[
            ("t/nodes.toml", &nodes),
            (
                "t/devices.toml",
                include_str!("../../arch/tech/devices.toml"),
            ),
            ("t/model.toml", include_str!("../../arch/tech/model.toml")),
        ],
        &["ppa", "--tech", "t", "a100"],
    );
    expect_input_error(&r, &["nodes.toml:", "unknown field `vdd_volts`"]);
}

#[test]
fn an_arch_without_a_technology_is_an_input_error() {
    let r = dyad(&["ppa", "h200"]);
    assert_eq!(
        r.status, 0,
        "h200 extends h100 and inherits its die: {}",
        r.stderr
    );
    let r = dyad(&["ppa"]);
    expect_input_error(&r, &["needs an arch file"]);
    let arch = include_str!("../../arch/h100.toml")
        .replace("[xpu.tech]\ndie = \"tech/dies/h100.toml\"", "");
    let r = dyad_with(&[("n.toml", &arch)], &["ppa", "n.toml"]);
    expect_input_error(&r, &["n.toml", "names no technology"]);
}

#[test]
fn list_names_the_technologies() {
    let r = dyad_in(&std::env::temp_dir(), &["list"], None);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("n7, n5, n3, n2, a14"), "{}", r.stdout);
    assert!(r.stdout.contains("finfet, gaa, cfet, ffet"), "{}", r.stdout);
}

/// An arch extending the shipped `duplex-n2-ffet.toml` with `extra` appended.
fn pim_tech_arch(extra: &str) -> String {
    let base = root("arch/duplex-n2-ffet.toml");
    format!("extends = {:?}\n{extra}", base.display().to_string())
}

#[test]
fn an_unknown_node_in_pim_tech_names_the_arch_file_line_and_key() {
    let arch = pim_tech_arch("[pim.tech]\nnode = \"n9\"\n");
    let r = dyad_with(&[("x.toml", &arch)], &["ppa", "x.toml"]);
    expect_input_error(
        &r,
        &[
            "x.toml:3:",
            "pim.tech.node",
            "unknown node `n9`",
            "n7, n5, n3, n2, a14",
        ],
    );
}

#[test]
fn an_unknown_device_in_pim_tech_names_the_arch_file_line_and_key() {
    let arch = pim_tech_arch("[pim.tech]\ndevice = \"nanotube\"\n");
    let r = dyad_with(
        &[("x.toml", &arch)],
        &["run", "--arch", "x.toml", "--batch", "1"],
    );
    expect_input_error(
        &r,
        &["x.toml:3:", "pim.tech.device", "unknown device `nanotube`"],
    );
}

#[test]
fn a_missing_logic_die_file_and_an_impossible_layout_are_input_errors() {
    let arch = pim_tech_arch("[pim.tech]\ndie = \"tech/dies/nope.toml\"\n");
    let r = dyad_with(&[("x.toml", &arch)], &["ppa", "x.toml"]);
    expect_input_error(&r, &["nope.toml"]);
    let arch = pim_tech_arch(
        "[pim.tech.layout]\nsignal_sides = 1\nrouting_layers = 0\nbackside_power = false\n",
    );
    let r = dyad_with(&[("x.toml", &arch)], &["ppa", "x.toml"]);
    expect_input_error(&r, &["x.toml:", "pim.tech.layout.routing_layers"]);
}

#[test]
fn ppa_says_which_pim_values_come_from_the_model() {
    let r = dyad(&["ppa", "arch/duplex-n2-ffet.toml"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("logic-PIM: 5 stacks ×") && r.stdout.contains("modules (model)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("logic die n2/ffet/ds12+12"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_serving_report_says_which_pim_values_come_from_the_model() {
    let arch = root("arch/duplex-n2-ffet.toml");
    let model = root("workloads/models/mixtral-8x7b.json");
    let scenario = format!(
        "name = \"s\"\narch = {:?}\nmodel = {:?}\ntp = 4\nseed = 1\npolicy = \"duplex\"\n\
         [precision]\nweights = \"fp16\"\nactivations = \"fp16\"\nkv = \"fp16\"\n\
         [requests]\ncount = 16\nprompt = {{ fixed = 128 }}\noutput = {{ fixed = 16 }}\n\
         [arrivals]\nclosed = 8\n[batching]\nmax_batch = 8\nmax_tokens = 8192\nkv_block = 16\n\
         memory_utilization = 0.9\n[routing]\nmode = \"uniform\"\n",
        arch.display().to_string(),
        model.display().to_string()
    );
    let r = dyad_with(
        &[("s.toml", &scenario)],
        &["run", "--serving", "s.toml", "--format", "json"],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let pim = &v["inputs"]["pim"];
    assert_eq!(pim["origin"]["modules"], "model", "{pim}");
    assert_eq!(pim["origin"]["frequency"], "model");
    assert_eq!(pim["origin"]["technology"], "n2/ffet/ds12+12");
    assert!(pim["modules"].as_u64().unwrap() > 32, "{pim}");
    let r = dyad_with(&[("s.toml", &scenario)], &["run", "--serving", "s.toml"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("modules (model)") && r.stdout.contains("pJ/FLOP (model)"),
        "{}",
        r.stdout
    );
}

#[test]
fn pim_tech_on_a_bank_pim_is_an_input_error() {
    let base = root("arch/bank-pim.toml");
    let arch = format!(
        "extends = {:?}\n[pim.tech]\ndie = {:?}\ndie_area = \"121 mm^2\"\n",
        base.display().to_string(),
        root("arch/tech/dies/hbm3-logic-die.toml")
            .display()
            .to_string()
    );
    let r = dyad_with(&[("x.toml", &arch)], &["ppa", "x.toml"]);
    expect_input_error(&r, &["pim.tech", "pim.kind"]);
}

#[test]
fn ppa_tech_dir_reaches_the_arch_pim_tech() {
    let arch = root("arch/duplex-n2-ffet.toml");
    let arch = arch.to_str().unwrap();
    let nodes = include_str!("../../arch/tech/nodes.toml");
    let at = nodes.find("name = \"n2\"").unwrap();
    let library = |vdd: &str| {
        let n2 = nodes[at..].replacen("vdd_v = 0.7", &format!("vdd_v = {vdd}"), 1);
        [
            ("t/nodes.toml", format!("{}{n2}", &nodes[..at])),
            (
                "t/devices.toml",
                include_str!("../../arch/tech/devices.toml").into(),
            ),
            (
                "t/model.toml",
                include_str!("../../arch/tech/model.toml").into(),
            ),
        ]
    };
    let pim_line = |files: &[(&str, String)], args: &[&str]| {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let r = dyad_with(&files, args);
        assert_eq!(r.status, 0, "{}", r.stderr);
        let line = r.stdout.lines().find(|l| l.contains("logic-PIM:"));
        line.unwrap().to_string()
    };
    let shipped = pim_line(&[], &["ppa", arch]);
    let cooler = pim_line(&library("0.5"), &["ppa", "--tech", "t", arch]);
    assert_ne!(cooler, shipped, "the arch's [pim.tech] ignored --tech");
    let broken = library("-1");
    let files: Vec<(&str, &str)> = broken.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let r = dyad_with(&files, &["ppa", "--tech", "t", arch]);
    expect_input_error(&r, &["nodes.toml:", "vdd_v"]);
}
