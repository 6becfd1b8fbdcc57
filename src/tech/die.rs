//! The die model: a chip as blocks (standard-cell logic, SRAM arrays, fixed macros such as PHYs
//! and TSV fields that do not scale), then dies per wafer, yield and cost per good die.
//!
//! Formulas as LLMCompass and ttm-cas use them (REFERENCE.md §Die cost model):
//! dies per wafer = π·150²/A − π·300/√(2A) (300 mm wafer, A in mm²); yield = (1 + A·D₀/3)⁻³
//! (negative binomial, clustering parameter 3); cost per good die = wafer cost ÷ (dies × yield).

use super::block::{BlockPpa, BlockSpec, Placement, block};
use super::params::Technology;
use crate::units::{Area, Hertz, Watts};

const MM2: f64 = 1e-6;

/// What a die block is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    /// Standard-cell logic: transistors per instance and toggles per cell per cycle.
    Logic {
        /// Transistors per instance.
        transistors: f64,
        /// Toggles per cell per cycle.
        activity: f64,
    },
    /// SRAM arrays: bits per instance, and bits read per cycle per instance.
    Sram {
        /// Bits per instance.
        bits: f64,
        /// Bits read per cycle per instance.
        reads_per_cycle: f64,
    },
    /// A macro that does not scale with the node (PHY, TSV field): area and power per instance.
    Fixed {
        /// Area per instance.
        area: Area,
        /// Power per instance.
        power: Watts,
    },
}

/// What a block is for, where a study needs to know (the Logic-PIM study counts modules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Part of the die's own function (PHY, TSVs, cores, caches).
    Base,
    /// One Logic-PIM GEMM module (its count is what the study varies).
    PimModule,
    /// Logic-PIM units shared by the modules (buffers, softmax).
    PimShared,
}

/// One kind of block and how many of it the die holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DieBlock {
    /// The block's name in the die file.
    pub name: String,
    /// Instances on the die.
    pub count: f64,
    /// What one instance is made of.
    pub kind: BlockKind,
    /// What the block is for.
    pub role: Role,
}

/// A die described as blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct DieSpec {
    /// The die's name.
    pub name: String,
    /// Its blocks.
    pub blocks: Vec<DieBlock>,
    /// The clock, when the file gives it (a datasheet value); otherwise the model's.
    pub clock: Option<Hertz>,
    /// Logic stages per clock cycle, for the model's clock.
    pub logic_depth: Option<f64>,
}

/// PPA of one kind of block, all instances together.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockReport {
    /// The block's name.
    pub name: String,
    /// Instances on the die.
    pub count: f64,
    /// Area of all instances.
    pub area: Area,
    /// Power of all instances at the die's clock (dynamic and leakage).
    pub power: Watts,
    /// The part of `power` drawn whatever the block does (leakage of logic and SRAM).
    pub leakage: Watts,
    /// The block model's view of one instance, for logic blocks.
    pub logic: Option<BlockPpa>,
}

/// Where the clock came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The die file gives the clock (a datasheet value).
    File,
    /// The block model's clock (or none, when the file gives no logic depth).
    Model,
}

/// PPA of a whole die.
#[derive(Debug, Clone, PartialEq)]
pub struct DieReport {
    /// The die's name.
    pub name: String,
    /// The technology's label (`n5/gaa/ss12`).
    pub technology: String,
    /// Each kind of block.
    pub blocks: Vec<BlockReport>,
    /// Area of the die.
    pub area: Area,
    /// Power of the die at its clock.
    pub power: Watts,
    /// Leakage of every block: the die's static power.
    pub leakage: Watts,
    /// The clock the power is computed at.
    pub clock: Hertz,
    /// Where the clock came from.
    pub clock_source: ClockSource,
    /// The block model's clock (logic depth × slowest stage), when a logic depth is given.
    pub model_clock: Option<Hertz>,
    /// Gross dies per 300 mm wafer.
    pub dies_per_wafer: f64,
    /// Share of the dies without a defect (negative binomial).
    pub yield_fraction: f64,
    /// Wafer cost over good dies, USD.
    pub cost_per_good_die_usd: f64,
}

/// Gross dies on a 300 mm wafer for a die of `area`.
pub fn dies_per_wafer(area: Area) -> f64 {
    let a = area.value() / MM2;
    (std::f64::consts::PI * 150.0 * 150.0 / a - std::f64::consts::PI * 300.0 / (2.0 * a).sqrt())
        .max(0.0)
}

/// Negative-binomial yield with clustering parameter 3.
pub fn die_yield(area: Area, defects_per_mm2: f64) -> f64 {
    (1.0 + area.value() / MM2 * defects_per_mm2 / 3.0).powi(-3)
}

/// Area of an SRAM of `bits` in technology `t`.
pub fn sram_area(t: &Technology, bits: f64) -> Area {
    Area(bits * t.node.sram_bitcell_um2 / t.node.sram_array_efficiency * 1e-12)
}

/// Evaluates a die in technology `t`.
pub fn die(t: &Technology, spec: &DieSpec) -> DieReport {
    // Logic first: the clock may come from its slowest stage.
    let logic = logic_ppas(t, spec);
    let (clock, clock_source, model_clock) = die_clock(spec, &logic);
    let f = clock.value();
    let blocks: Vec<BlockReport> = spec
        .blocks
        .iter()
        .zip(logic)
        .map(|(b, ppa)| block_report(t, b, ppa, f))
        .collect();
    let area: Area = blocks.iter().map(|b| b.area).sum();
    let power: Watts = blocks.iter().map(|b| b.power).sum();
    let leakage: Watts = blocks.iter().map(|b| b.leakage).sum();
    let dpw = dies_per_wafer(area);
    let y = die_yield(area, t.node.defect_density_per_mm2);
    let cost = if dpw * y > 0.0 {
        t.node.wafer_cost_usd / (dpw * y)
    } else {
        f64::INFINITY
    };
    DieReport {
        name: spec.name.clone(),
        technology: t.label(),
        blocks,
        area,
        power,
        leakage,
        clock,
        clock_source,
        model_clock,
        dies_per_wafer: dpw,
        yield_fraction: y,
        cost_per_good_die_usd: cost,
    }
}

/// The block model's PPA of each logic block of `spec`, in order; `None` for the other blocks.
fn logic_ppas(t: &Technology, spec: &DieSpec) -> Vec<Option<BlockPpa>> {
    spec.blocks
        .iter()
        .map(|b| match b.kind {
            BlockKind::Logic {
                transistors,
                activity,
            } => Some(block(
                t,
                &BlockSpec {
                    transistors,
                    activity,
                    placement: Placement::Achievable,
                },
            )),
            _ => None,
        })
        .collect()
}

/// The die's clock and where it came from (the file's, else logic depth × slowest stage), and
/// the model's clock when there is one.
fn die_clock(spec: &DieSpec, logic: &[Option<BlockPpa>]) -> (Hertz, ClockSource, Option<Hertz>) {
    let slowest = logic
        .iter()
        .flatten()
        .map(|p| p.stage_delay.value())
        .fold(0.0, f64::max);
    let model_clock = spec
        .logic_depth
        .filter(|_| slowest > 0.0)
        .map(|d| Hertz(1.0 / (d * slowest)));
    let (clock, clock_source) = match (spec.clock, model_clock) {
        (Some(c), _) => (c, ClockSource::File),
        (None, Some(c)) => (c, ClockSource::Model),
        (None, None) => (Hertz(0.0), ClockSource::Model),
    };
    (clock, clock_source, model_clock)
}

/// One kind of block at clock `f` (Hz), times its count; `ppa` is its logic PPA, if logic.
fn block_report(t: &Technology, b: &DieBlock, ppa: Option<BlockPpa>, f: f64) -> BlockReport {
    let n = t.node;
    let (area, power, leakage) = match (&b.kind, &ppa) {
        (BlockKind::Logic { .. }, Some(p)) => (p.area, p.power(f), p.leakage),
        (
            BlockKind::Sram {
                bits,
                reads_per_cycle,
            },
            _,
        ) => {
            let leak = Watts(6.0 * bits * n.leakage_per_transistor);
            let read = Watts(reads_per_cycle * n.sram_read_energy_per_bit * f);
            (sram_area(t, *bits), read + leak, leak)
        }
        (BlockKind::Fixed { area, power }, _) => (*area, *power, Watts(0.0)),
        (BlockKind::Logic { .. }, None) => unreachable!("logic blocks have a block PPA"),
    };
    BlockReport {
        name: b.name.clone(),
        count: b.count,
        area: area * b.count,
        power: power * b.count,
        leakage: leakage * b.count,
        logic: ppa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_100_mm2_die_follows_the_reference_formulas() {
        // π·22500/100 − π·300/√200 = 706.86 − 66.64 = 640.2 dies by hand.
        let a = Area(100.0 * MM2);
        assert!((dies_per_wafer(a) - 640.2).abs() < 0.1);
        // (1 + 100·0.0015/3)^−3 = 1.05^−3 = 0.8638.
        assert!((die_yield(a, 0.0015) - 0.8638).abs() < 1e-4);
    }

    #[test]
    fn bigger_dies_yield_less_and_fit_fewer() {
        let (s, b) = (Area(100.0 * MM2), Area(800.0 * MM2));
        assert!(dies_per_wafer(b) < dies_per_wafer(s) / 8.0);
        assert!(die_yield(b, 0.002) < die_yield(s, 0.002));
    }
}
