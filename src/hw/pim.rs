//! Processing-in-memory units: Logic-PIM (GEMM modules on the HBM logic die, fed by extra TSVs),
//! BankGroup-PIM and Bank-PIM (units beside the DRAM banks), as the Duplex paper compares them.

use serde::Serialize;

use super::curve::Curve;
use super::roofline::Roofline;
use crate::units::{BytesPerSecond, FlopsPerSecond, Hertz, JoulesPerBit, JoulesPerFlop, Seconds};

/// Where in the HBM stack the PIM units sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PimKind {
    /// On the logic (buffer) die, reading the banks through widened TSVs.
    Logic,
    /// On the DRAM dies, one unit per bank group.
    BankGroup,
    /// On the DRAM dies, beside the banks.
    Bank,
}

impl PimKind {
    /// The names in arch files, in declaration order.
    pub const NAMES: [&'static str; 3] = ["logic", "bankgroup", "bank"];

    /// The name in arch files: `logic`, `bankgroup`, `bank`.
    pub fn name(self) -> &'static str {
        match self {
            PimKind::Logic => "logic",
            PimKind::BankGroup => "bankgroup",
            PimKind::Bank => "bank",
        }
    }
}

/// The PIM units of one device (all its HBM stacks together).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pim {
    /// Where in the stack the units sit.
    pub kind: PimKind,
    /// HBM stacks per device.
    pub stacks: u32,
    /// GEMM modules per stack.
    pub modules: u32,
    /// MACs per module.
    pub macs: u32,
    /// Clock of the units.
    pub frequency: Hertz,
    /// Internal bandwidth over external bandwidth (the TSV or bank-level multiplier).
    pub bandwidth_multiplier: f64,
    /// Fraction of peak FLOPS by the op's FLOPs.
    pub compute: Curve,
    /// Fraction of internal bandwidth by the op's bytes.
    pub memory: Curve,
    /// Fixed time per op (command issue, buffer fill).
    pub overhead: Seconds,
    /// Per FLOP of arithmetic.
    pub flop_energy: JoulesPerFlop,
    /// Per bit read from the banks into the units (the PIM path of the bit).
    pub dram_energy: JoulesPerBit,
    /// Where the module count, clock and energy per FLOP came from, when the arch names a
    /// technology for the logic die (`[pim.tech]`); `None` when every value is the arch's.
    pub origin: Option<PimOrigin>,
}

/// Who gave a value: the arch file, or the technology model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Written in the arch file.
    Arch,
    /// Taken from the logic-die technology model (`tech::pim::fit`).
    Model,
}

impl Origin {
    /// The name in reports: `arch`, `model`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Arch => "arch",
            Origin::Model => "model",
        }
    }
}

/// The provenance of a Logic-PIM device coupled to a logic-die technology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PimOrigin {
    /// The logic die's technology (node/device/layout).
    pub technology: String,
    /// Who gave the module count.
    pub modules: Origin,
    /// Who gave the clock.
    pub frequency: Origin,
    /// Who gave the energy per FLOP.
    pub flop_energy: Origin,
}

impl Pim {
    /// Peak FLOPS of the device's PIM units: stacks × modules × MACs × 2 × frequency.
    pub fn peak(&self) -> FlopsPerSecond {
        let macs = f64::from(self.stacks) * f64::from(self.modules) * f64::from(self.macs);
        FlopsPerSecond(2.0 * macs * self.frequency.value())
    }

    /// Internal bandwidth: the multiplier times the device's external bandwidth.
    pub fn bandwidth(&self, external: BytesPerSecond) -> BytesPerSecond {
        external * self.bandwidth_multiplier
    }

    /// The roofline that prices an op on these units: their peak, their internal bandwidth
    /// (over a device whose external bandwidth is `external`), their efficiency curves, and
    /// their fixed time per op plus `host` dispatch. The same for every [`PimKind`].
    pub fn roofline(&self, external: BytesPerSecond, host: Seconds) -> Roofline<'_> {
        Roofline {
            peak: self.peak(),
            bandwidth: self.bandwidth(external),
            compute: &self.compute,
            memory: &self.memory,
            overhead: self.overhead + host,
        }
    }
}
