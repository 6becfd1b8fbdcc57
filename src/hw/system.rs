//! The system: xPUs in a node (and nodes in a cluster), and its cost entry points: what an op's
//! [`Work`] costs in time and energy on a unit of one device.

use serde::Serialize;
use thiserror::Error;

use super::link::{Cluster, Node, collective};
use super::pim::Pim;
use super::roofline::{Bound, OpCost, longer};
use super::xpu::Xpu;
use crate::units::{BytesPerSecond, Joules, Seconds};
use crate::work::{Dtype, OpClass, Work};

/// An arch: one xPU type in a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct System {
    /// The arch's name.
    pub name: String,
    /// The compute device.
    pub xpu: Xpu,
    /// PIM units in the xPU's memory, if any.
    pub pim: Option<Pim>,
    /// Devices in a node and their links.
    pub node: Node,
    /// Nodes beyond the first, if any.
    pub cluster: Option<Cluster>,
}

/// A compute unit of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// The xPU.
    Xpu,
    /// The PIM units in its memory.
    Pim,
}

impl Unit {
    /// The name in reports: `xpu`, `pim`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Xpu => "xpu",
            Unit::Pim => "pim",
        }
    }
}

/// Dynamic energy of an op by component.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct EnergyParts {
    /// Arithmetic.
    pub mac: f64,
    /// DRAM traffic on the xPU path (activation, array, TSV, PHY, interposer).
    pub dram_xpu: f64,
    /// DRAM traffic on the PIM path (no PHY or interposer; shorter for bank-level units).
    pub dram_pim: f64,
    /// Device-to-device links.
    pub link: f64,
}

impl EnergyParts {
    /// The sum of the parts (J).
    pub fn total(&self) -> f64 {
        self.mac + self.dram_xpu + self.dram_pim + self.link
    }

    /// Every part times `k`.
    pub fn scaled(self, k: f64) -> Self {
        EnergyParts {
            mac: self.mac * k,
            dram_xpu: self.dram_xpu * k,
            dram_pim: self.dram_pim * k,
            link: self.link * k,
        }
    }

    /// Adds `o` part by part.
    pub fn add(&mut self, o: EnergyParts) {
        self.mac += o.mac;
        self.dram_xpu += o.dram_xpu;
        self.dram_pim += o.dram_pim;
        self.link += o.link;
    }
}

/// Which clock an op's time is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// Kernel time on the device (CUDA graphs, profiler kernel durations).
    #[default]
    Kernel,
    /// Host wall time per call: kernel time plus host dispatch.
    Host,
}

impl Timing {
    /// Each clock with its name in flags and a line of help: the only list.
    pub const TABLE: [(Timing, &'static str, &'static str); 2] = [
        (
            Timing::Kernel,
            "kernel",
            "device kernel time (CUDA graphs; profiler kernel durations)",
        ),
        (
            Timing::Host,
            "host",
            "host wall time per call: kernel time plus host dispatch overhead",
        ),
    ];
}

/// Why an op cannot be priced on a system.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CostError {
    /// The op computes in an element type the xPU has no peak for.
    #[error("the arch gives no peak for {dtype}: no `peak_flops.{dtype}` (it has: {have})")]
    NoPeak {
        /// The op's element type.
        dtype: Dtype,
        /// The types the arch gives peaks for, comma-separated.
        have: String,
    },
    /// A collective spans more devices than the system has, or does not tile its nodes.
    #[error("a collective over {participants} devices does not fit a node of {devices}")]
    TooManyDevices {
        /// Devices in the collective.
        participants: u32,
        /// Devices in the system.
        devices: u32,
    },
    /// A collective op without a message.
    #[error("a collective op carries no message")]
    NoMessage,
    /// PIM was asked for on a system without PIM units.
    #[error("the arch has no PIM units")]
    NoPim,
    /// A collective was asked for on PIM.
    #[error("collectives run on the xPU's links, not on PIM")]
    CollectiveOnPim,
}

impl System {
    /// Devices of the whole system: one node's, times the nodes of the cluster if any.
    pub fn devices(&self) -> u32 {
        self.node.devices * self.cluster.as_ref().map_or(1, |c| c.nodes)
    }

    /// Host dispatch time per op under `timing`.
    fn host(&self, timing: Timing) -> Seconds {
        match timing {
            Timing::Kernel => Seconds(0.0),
            Timing::Host => self.xpu.host_overhead,
        }
    }

    /// Time of `w` on one xPU of this system.
    pub fn cost(&self, w: &Work, timing: Timing) -> Result<OpCost, CostError> {
        let host = self.host(timing);
        let mut c = match w.class {
            OpClass::Collective => collective(&self.node, self.cluster.as_ref(), w)?,
            class => self.xpu.cost(class, w)?,
        };
        c.overhead += host;
        c.time += host;
        if c.overhead > longer(c.compute, c.memory) {
            c.bound = Bound::Overhead;
        }
        Ok(c)
    }

    /// Time of `w` on `unit` of one device.
    pub fn cost_on(&self, unit: Unit, w: &Work, timing: Timing) -> Result<OpCost, CostError> {
        match unit {
            Unit::Xpu => self.cost(w, timing),
            Unit::Pim => {
                let pim = self.pim.as_ref().ok_or(CostError::NoPim)?;
                if w.class == OpClass::Collective {
                    return Err(CostError::CollectiveOnPim);
                }
                let roof = pim.roofline(self.xpu.memory.bandwidth, self.host(timing));
                Ok(roof.cost(w.flops, w.bytes.total()))
            }
        }
    }

    /// Dynamic energy of `w` on `unit`, by component.
    pub fn energy_on(&self, unit: Unit, w: &Work) -> Result<EnergyParts, CostError> {
        let link = w
            .collective
            .map_or(0.0, |c| (c.sent() * self.node.link.energy).value());
        Ok(match unit {
            Unit::Xpu => EnergyParts {
                mac: (w.flops * self.xpu.energy.flop).value(),
                dram_xpu: (w.bytes.total() * self.xpu.energy.dram).value(),
                link,
                ..EnergyParts::default()
            },
            Unit::Pim => {
                let pim = self.pim.as_ref().ok_or(CostError::NoPim)?;
                EnergyParts {
                    mac: (w.flops * pim.flop_energy).value(),
                    dram_pim: (w.bytes.total() * pim.dram_energy).value(),
                    ..EnergyParts::default()
                }
            }
        })
    }

    /// Bandwidth of the DRAM banks that every path of a device draws on: the PIM units' internal
    /// bandwidth where there are any, else the external bandwidth.
    pub fn bank_bandwidth(&self) -> BytesPerSecond {
        self.pim.as_ref().map_or(self.xpu.memory.bandwidth, |p| {
            p.bandwidth(self.xpu.memory.bandwidth)
        })
    }

    /// Dynamic energy of `w` on one device: arithmetic, DRAM traffic and link traffic.
    pub fn energy(&self, w: &Work) -> Joules {
        let e = &self.xpu.energy;
        let link = w
            .collective
            .map_or(Joules(0.0), |c| c.sent() * self.node.link.energy);
        w.flops * e.flop + w.bytes.total() * e.dram + link
    }
}
