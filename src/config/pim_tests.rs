//! `tech::pim::resolve`, the tech side of `[pim.tech]`, on a small die and the shipped library.

use crate::tech::pim::*;
use crate::tech::{BlockKind, DieBlock, DieSpec, Layout, Library, Role};
use crate::units::{Area, Hertz, Watts};
fn library() -> Library {
    super::load_tech_library(std::path::Path::new(super::TECH_DIR)).unwrap()
}

/// A die of one base block, a shared buffer and 32 modules of 512 MACs.
fn die_spec() -> DieSpec {
    let logic = |name: &str, count, transistors, role| DieBlock {
        name: name.into(),
        count,
        kind: BlockKind::Logic {
            transistors,
            activity: 0.2,
        },
        role,
    };
    DieSpec {
        name: "test die".into(),
        blocks: vec![
            DieBlock {
                name: "phy".into(),
                count: 1.0,
                kind: BlockKind::Fixed {
                    area: Area(60e-6),
                    power: Watts(3.0),
                },
                role: Role::Base,
            },
            logic("softmax", 1.0, 5e6, Role::PimShared),
            logic("module", 32.0, 20e6, Role::PimModule),
        ],
        clock: Some(Hertz(650e6)),
        logic_depth: None,
    }
}

fn name(node: &str, device: &str) -> TechName {
    TechName {
        node: node.into(),
        device: device.into(),
        layout: Layout::single_sided(12),
    }
}

fn choice(explicit: Explicit) -> PimTechChoice {
    PimTechChoice {
        die: die_spec(),
        reference: name("n7", "finfet"),
        technology: name("n2", "gaa"),
        die_area: LOGIC_DIE_AREA,
        power_budget: None,
        explicit,
    }
}

#[test]
fn resolve_gives_the_fit_for_every_value_the_arch_leaves_out() {
    let lib = library();
    let v = resolve(&lib, &choice(Explicit::default())).unwrap();
    let t = lib
        .technology("n2", "gaa", Layout::single_sided(12))
        .unwrap();
    let r = lib
        .technology("n7", "finfet", Layout::single_sided(12))
        .unwrap();
    let spec = die_spec();
    assert_eq!(v.fit, fit(&t, &spec, &budget(&r, &spec, LOGIC_DIE_AREA)));
    assert_eq!(v.modules, Some(v.fit.modules));
    assert_eq!(v.clock, Some(Hertz(650e6)));
    assert_eq!(v.flop_energy, Some(v.fit.flop_energy));
    let all = Explicit {
        modules: true,
        frequency: true,
        flop_energy: true,
    };
    let v = resolve(&lib, &choice(all)).unwrap();
    assert_eq!((v.modules, v.clock, v.flop_energy), (None, None, None));
}

#[test]
fn an_explicit_power_budget_replaces_the_reference_designs() {
    let lib = library();
    let mut c = choice(Explicit::default());
    let free = resolve(&lib, &c).unwrap().fit;
    c.power_budget = Some(Watts(1e-3));
    let starved = resolve(&lib, &c).unwrap().fit;
    assert_eq!(starved.by_power, 0);
    assert!(free.by_power > 0);
}

#[test]
fn an_unknown_technology_is_a_typed_error() {
    let mut c = choice(Explicit::default());
    c.technology.node = "n9".into();
    let e = resolve(&library(), &c).unwrap_err();
    assert!(matches!(e, PimTechError::Technology { .. }), "{e}");
    assert!(e.to_string().contains("unknown node `n9`"));
    let mut c = choice(Explicit::default());
    c.reference.device = "nanotube".into();
    let e = resolve(&library(), &c).unwrap_err();
    assert!(matches!(e, PimTechError::Reference { .. }), "{e}");
}
