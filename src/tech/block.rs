//! The block model: routing demand against routing supply gives the achievable utilization and
//! so the area; wire length follows from the area; wire RC and gate delay give the stage delay;
//! cells and wires give the switched capacitance.
//!
//! One stage of logic drives `fanout` cell inputs over a net of length ℓ (Elmore):
//!
//! ```text
//! t = R·(C_in·(1 + f) + c·ℓ·x) + r·ℓ·(c·ℓ/2 + f·C_in)
//! ℓ = k_s·N^(p−½)·√(A/N)·(1 + d·ρ²) + ℓ_pin   (Donath net, detoured with congestion ρ)
//! ℓ_pin = k_pin·π²·√a_cell               (local pin access; π = pins per routing site per side)
//! x = 1 + σ·(1 − φᶠ − (1−φ)ᶠ)            (dual-sided only: nets with sinks on both sides)
//! ```
//!
//! The critical stage's net is k_s/k times the average net k·N^(p−½)·√(A/N). The switched wire
//! capacitance and the routing demand use the average net (plus the local pin-access wire for
//! the capacitance). Routing demand per
//! side is its pin share φ of N·(average net + pins·√a_cell) track-µm; supply is
//! A·η·Σ 1/pitch over the side's layers ÷ the minimum pitch. Demand grows as √u and supply as
//! 1/u, so the largest routable utilization solves a quadratic in √u (capped by the placement
//! limit). N is capped at one place-and-route partition. The constants are in `arch/tech/model.toml`, each with its source.

use super::params::{SignalSides, Technology};
use crate::units::{Area, Joules, Seconds, Watts};

const UM2_PER_M2: f64 = 1e12;

/// How the block is placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// At this cell utilization (cell area ÷ core area).
    Utilization(f64),
    /// In this core area.
    Area(Area),
    /// At the highest utilization that still routes.
    Achievable,
}

/// A block of standard-cell logic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSpec {
    /// Transistors in the block.
    pub transistors: f64,
    /// Average toggles per cell per clock cycle.
    pub activity: f64,
    /// How the block is placed.
    pub placement: Placement,
}

/// What the block model says about one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockPpa {
    /// Standard cells in the block (transistors ÷ transistors per cell).
    pub cells: f64,
    /// Cell utilization the block is placed at (cell area ÷ core area).
    pub utilization: f64,
    /// The highest utilization at which this block routes in this technology.
    pub achievable_utilization: f64,
    /// Core area.
    pub area: Area,
    /// Routing demand over supply on the front and back sides (0 where a side has no signals).
    pub congestion: [f64; 2],
    /// Length of the net a critical stage drives, µm (global plus local pin access).
    pub net_length_um: f64,
    /// Delay of one logic stage.
    pub stage_delay: Seconds,
    /// Share of the stage delay due to wires.
    pub wire_delay_share: f64,
    /// Share of the switched capacitance in wires (average nets).
    pub wire_cap_share: f64,
    /// Energy switched per clock cycle (activity × C × V²).
    pub energy_per_cycle: Joules,
    /// Leakage power.
    pub leakage: Watts,
}

impl BlockPpa {
    /// Power at clock frequency `hz`.
    pub fn power(&self, hz: f64) -> Watts {
        Watts(self.energy_per_cycle.value() * hz) + self.leakage
    }

    /// Clock frequency for a critical path of `stages` logic stages, Hz.
    pub fn frequency(&self, stages: f64) -> f64 {
        1.0 / (stages * self.stage_delay.value())
    }
}

/// Pin share of each side that carries signals: `[(share, layers)]`.
fn sides(t: &Technology) -> Vec<(f64, u32, bool)> {
    let l = &t.layout;
    match l.sides {
        SignalSides::Front => vec![(1.0, l.front_layers, true)],
        SignalSides::Both => vec![
            (l.front_pin_share, l.front_layers, true),
            (1.0 - l.front_pin_share, l.back_layers, false),
        ],
    }
}

/// Routing tracks per µm of core width summed over `layers` (in units of 1/min pitch).
fn track_sum(t: &Technology, layers: u32, front: bool) -> f64 {
    let m = t.model;
    let mut s: f64 = m
        .layer_pitch
        .iter()
        .take(layers as usize)
        .map(|p| 1.0 / p)
        .sum();
    if front && !t.layout.backside_power {
        let rails: f64 = m
            .layer_pitch
            .iter()
            .take(layers.min(2) as usize)
            .map(|p| 1.0 / p)
            .sum();
        s -= m.power_rail_track_share * rails;
    }
    s
}

/// Cell area at full utilization, µm².
fn cell_area(t: &Technology) -> f64 {
    t.model.transistors_per_cell * t.transistor_area_um2()
}

/// Pins per routing site on the side with share `share`.
fn pin_density(t: &Technology, share: f64) -> f64 {
    let p = t.node.metal_pitch_um;
    let sites = cell_area(t) / (p * p * t.model.site_width_tracks);
    share * t.model.pins_per_cell / sites
}

/// N^(p−½) with N capped at one place-and-route partition.
fn rent_factor(m: &super::params::ModelParams, cells: f64) -> f64 {
    cells.min(m.partition_cells).powf(m.rent_exponent - 0.5)
}

/// Highest routable utilization (before the placement cap) of `cells` cells.
fn routable_utilization(t: &Technology, cells: f64) -> f64 {
    let m = t.model;
    let a = cell_area(t);
    let lbar = m.net_length_constant * rent_factor(m, cells);
    sides(t)
        .into_iter()
        .filter(|(share, _, _)| *share > 0.0)
        .map(|(share, layers, front)| {
            // ρ(u) = share·(lbar·√u + pins·u)·pitch / (√a·η·Σ) = 1, a quadratic in x = √u.
            let k = share * t.node.metal_pitch_um
                / (a.sqrt() * m.routing_efficiency * track_sum(t, layers, front));
            let (qa, qb) = (k * m.pins_per_cell, k * lbar);
            let x = (-qb + (qb * qb + 4.0 * qa).sqrt()) / (2.0 * qa);
            x * x
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs the block model.
pub fn block(t: &Technology, spec: &BlockSpec) -> BlockPpa {
    let m = t.model;
    let n = t.node;
    let cells = spec.transistors / m.transistors_per_cell;
    let a = cell_area(t);
    let cap = if t.layout.backside_power {
        m.max_utilization_backside_power
    } else {
        m.max_utilization
    };
    let achievable = routable_utilization(t, cells).min(cap);
    let u = match spec.placement {
        Placement::Utilization(u) => u,
        Placement::Area(area) => cells * a / (area.value() * UM2_PER_M2),
        Placement::Achievable => achievable,
    };
    let core_um2 = cells * a / u;
    let pitch = (core_um2 / cells).sqrt();
    let rent = rent_factor(m, cells) * pitch;
    // The average net sets the routing demand; the critical stage's net sets the delay.
    let average = m.net_length_constant * rent;
    let global = m.stage_wire_constant * rent;

    let mut congestion = [0.0; 2];
    let mut local: f64 = 0.0;
    for (i, (share, layers, front)) in sides(t).into_iter().enumerate() {
        let pi = pin_density(t, share);
        local = local.max(m.pin_access_coefficient * pi * pi * a.sqrt());
        let demand = share * cells * (average + m.pins_per_cell * a.sqrt());
        let supply =
            core_um2 * m.routing_efficiency * track_sum(t, layers, front) / n.metal_pitch_um;
        congestion[i] = demand / supply;
    }
    let worst = congestion.iter().fold(0.0_f64, |a, c| a.max(*c));
    let len = global * (1.0 + m.detour_coefficient * worst * worst) + local;
    let cross = match t.layout.sides {
        SignalSides::Front => 0.0,
        SignalSides::Both => {
            let phi = t.layout.front_pin_share;
            1.0 - phi.powf(m.fanout) - (1.0 - phi).powf(m.fanout)
        }
    };
    let x = 1.0 + m.cross_side_overhead * cross;

    // Native-device drive resistance from the FO4 delay: FO4 = R·(C_in + 4·C_in).
    let r_native = n.fo4 / (5.0 * n.gate_cap);
    let r_drv = r_native * t.native.drive / t.device.drive;
    let c_in = n.gate_cap * t.device.cap / t.native.cap;
    let (r_w, c_w) = (n.wire_r_per_um, n.wire_c_per_um);
    let gate = r_drv * c_in * (1.0 + m.fanout);
    let wire = r_drv * c_w * len * x + r_w * len * (c_w * len / 2.0 + m.fanout * c_in);
    let stage = gate + wire;

    let c_cells = cells * c_in * (1.0 + m.pins_per_cell);
    let c_wires = cells * c_w * (average + local) * x;
    let energy = spec.activity * (c_cells + c_wires) * n.vdd * n.vdd;
    let leakage = spec.transistors * n.leakage_per_transistor * t.device.drive / t.native.drive;

    BlockPpa {
        cells,
        utilization: u,
        achievable_utilization: achievable,
        area: Area(core_um2 / UM2_PER_M2),
        congestion,
        net_length_um: len,
        stage_delay: Seconds(stage),
        wire_delay_share: wire / stage,
        wire_cap_share: c_wires / (c_cells + c_wires),
        energy_per_cycle: Joules(energy),
        leakage: Watts(leakage),
    }
}
