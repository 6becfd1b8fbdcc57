//! How many Logic-PIM GEMM modules fit on an HBM logic die under each technology, within the
//! area of the die and the power the Duplex design's PIM units draw at 7 nm.
//!
//! Duplex (MICRO 2024): 32 GEMM modules × 512 FP16 MACs at 650 MHz per stack; with two 1 MB
//! buffers and a softmax unit the Logic-PIM units take 17.80 mm², 14.71% of a 121 mm² HBM3
//! logic die (ASAP7). The die's own blocks (PHY, TSV field, control) are held at their area: PHYs
//! and TSVs do not scale with the node. A [`Fit`] also carries what the Logic-PIM device
//! (`hw::Pim`) takes from the tech model when an arch names a `[pim.tech]`: the module count, the
//! clock and the dynamic energy per FLOP of a module.
//!
//! [`resolve`] is what an arch's `[pim.tech]` comes to: the choice `config` reads (the logic
//! die, the technology the modules are built in, the budgets, the values the arch sets itself),
//! resolved against a technology library the caller passes in.

use super::die::{DieSpec, Role, die};
use super::params::{Layout, Library, Technology, TechnologyError};
use crate::units::{Area, Hertz, JoulesPerFlop, Watts};

/// The Logic-PIM values of an arch's `[pim.tech]`, from the logic die in its chosen technology.
pub fn resolve(lib: &Library, c: &PimTechChoice) -> Result<PimTechValues, PimTechError> {
    let reference = c
        .reference
        .look_up(lib)
        .map_err(|reason| PimTechError::Reference { reason })?;
    let t = c
        .technology
        .look_up(lib)
        .map_err(|reason| PimTechError::Technology { reason })?;
    let mut budget = budget(&reference, &c.die, c.die_area);
    if let Some(p) = c.power_budget {
        budget.pim_power = p;
    }
    let fit = fit(&t, &c.die, &budget);
    let e = c.explicit;
    Ok(PimTechValues {
        modules: (!e.modules).then_some(fit.modules),
        clock: (!e.frequency).then_some(fit.clock),
        flop_energy: (!e.flop_energy).then_some(fit.flop_energy),
        fit,
    })
}

/// A technology by its names in the files: node, device, layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TechName {
    /// The process node (`n7`).
    pub node: String,
    /// The transistor architecture (`finfet`).
    pub device: String,
    /// Signal sides, routing layers, pin split, power delivery.
    pub layout: Layout,
}

impl TechName {
    /// The technology in `lib`; an error says what is unknown or impossible.
    fn look_up<'a>(&self, lib: &'a Library) -> Result<Technology<'a>, TechnologyError> {
        lib.technology(&self.node, &self.device, self.layout)
    }
}

/// Which of the values the tech model gives the arch sets itself (those win).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Explicit {
    /// `pim.modules` is set.
    pub modules: bool,
    /// `pim.frequency` is set.
    pub frequency: bool,
    /// `pim.energy.flop` is set.
    pub flop_energy: bool,
}

/// What an arch's `[pim.tech]` chooses, with names already checked by `config`.
#[derive(Debug, Clone)]
pub struct PimTechChoice {
    /// The logic die as its file describes it.
    pub die: DieSpec,
    /// The die file's own technology: with the die as described it sets the power budget.
    pub reference: TechName,
    /// The technology the modules are built in (the arch's overrides of the die file's).
    pub technology: TechName,
    /// The area the die's blocks and the modules must fit in (`pim.tech.die_area`).
    pub die_area: Area,
    /// `pim.tech.power_budget`, when given; else the reference design's PIM power.
    pub power_budget: Option<Watts>,
    /// The values the arch sets itself.
    pub explicit: Explicit,
}

/// The Logic-PIM values `[pim.tech]` gives: the fit, and each value the arch leaves to the
/// model (`None` where the arch sets it).
#[derive(Debug, Clone, PartialEq)]
pub struct PimTechValues {
    /// The fit of the logic die in the chosen technology.
    pub fit: Fit,
    /// Modules per stack, unless `pim.modules` is set.
    pub modules: Option<u64>,
    /// The modules' clock, unless `pim.frequency` is set.
    pub clock: Option<Hertz>,
    /// A module's dynamic energy per FLOP, unless `pim.energy.flop` is set.
    pub flop_energy: Option<JoulesPerFlop>,
}

/// Why a `[pim.tech]` choice cannot be resolved against a library.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PimTechError {
    /// The die file's own technology is not in the library, or its layout is impossible.
    #[error("{reason}")]
    Reference {
        /// What is unknown or impossible.
        reason: TechnologyError,
    },
    /// The technology the arch chooses is not in the library, or its layout is impossible.
    #[error("{reason}")]
    Technology {
        /// What is unknown or impossible.
        reason: TechnologyError,
    },
}

/// MACs per module (Duplex §IV).
pub const MACS_PER_MODULE: f64 = 512.0;
/// The HBM3 logic die of Duplex: 121 mm².
pub const LOGIC_DIE_AREA: Area = Area(121e-6);

/// The budget every technology is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The area the die's own blocks, the shared units and the modules must fit in.
    pub die_area: Area,
    /// Power of the Logic-PIM units (modules and shared units) at the reference design.
    pub pim_power: Watts,
}

/// The fit of one technology.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The technology's label (`n2/ffet/ds12+12`).
    pub technology: String,
    /// Area of one module.
    pub module_area: Area,
    /// Power of one module.
    pub module_power: Watts,
    /// Area of the shared PIM units.
    pub shared_area: Area,
    /// Power of the shared PIM units.
    pub shared_power: Watts,
    /// Area of the die's own blocks (PHY, TSVs, control).
    pub base_area: Area,
    /// Modules that fit in the area left by the die's own blocks and the shared units.
    pub by_area: u64,
    /// Modules that fit in the power left by the shared units.
    pub by_power: u64,
    /// min(by_area, by_power).
    pub modules: u64,
    /// FP16 TFLOPS per stack at the die's clock (2 FLOPs per MAC).
    pub tflops: f64,
    /// The die's clock (the die file's, or the model's from its logic depth).
    pub clock: Hertz,
    /// Dynamic energy per FLOP of a module (MACs and buffer): its power less its leakage over
    /// its FLOPs per second at `clock` (2 FLOPs per MAC per cycle).
    pub flop_energy: JoulesPerFlop,
}

/// Area, power and leakage per role, one module counted once, and the clock.
fn parts(t: &Technology, spec: &DieSpec) -> ([Area; 3], [Watts; 3], [Watts; 3], f64) {
    let one = DieSpec {
        blocks: spec
            .blocks
            .iter()
            .map(|b| {
                let mut b = b.clone();
                if b.role == Role::PimModule {
                    b.count = 1.0;
                }
                b
            })
            .collect(),
        ..spec.clone()
    };
    let r = die(t, &one);
    let mut area = [Area(0.0); 3];
    let mut power = [Watts(0.0); 3];
    let mut leakage = [Watts(0.0); 3];
    for (b, rep) in spec.blocks.iter().zip(&r.blocks) {
        let i = match b.role {
            Role::Base => 0,
            Role::PimModule => 1,
            Role::PimShared => 2,
        };
        area[i] += rep.area;
        power[i] += rep.power;
        leakage[i] += rep.leakage;
    }
    (area, power, leakage, r.clock.value())
}

/// The budget set by the reference technology with the die as described (its module count).
pub fn budget(reference: &Technology, spec: &DieSpec, die_area: Area) -> Budget {
    let modules: f64 = spec
        .blocks
        .iter()
        .filter(|b| b.role == Role::PimModule)
        .map(|b| b.count)
        .fold(0.0, f64::max);
    let (_, power, _, _) = parts(reference, spec);
    Budget {
        die_area,
        pim_power: power[1] * modules + power[2],
    }
}

/// How many modules fit in technology `t` under `budget`.
pub fn fit(t: &Technology, spec: &DieSpec, budget: &Budget) -> Fit {
    let (area, power, leakage, clock) = parts(t, spec);
    let floor = |x: f64| if x > 0.0 { x.floor() as u64 } else { 0 };
    let by_area = floor((budget.die_area - area[0] - area[2]) / area[1]);
    let by_power = floor((budget.pim_power - power[2]) / power[1]);
    let modules = by_area.min(by_power);
    let module_flops = MACS_PER_MODULE * 2.0 * clock;
    Fit {
        technology: t.label(),
        module_area: area[1],
        module_power: power[1],
        shared_area: area[2],
        shared_power: power[2],
        base_area: area[0],
        by_area,
        by_power,
        modules,
        tflops: modules as f64 * module_flops / 1e12,
        clock: Hertz(clock),
        flop_energy: JoulesPerFlop((power[1] - leakage[1]).value() / module_flops),
    }
}
