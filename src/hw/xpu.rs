//! The xPU (a GPU-like accelerator), its node, and the roofline-with-efficiency cost of an op.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use super::curve::Curve;
use crate::units::{
    Bytes, BytesPerSecond, FlopsPerSecond, Joules, JoulesPerBit, JoulesPerFlop, Seconds, Watts,
};
use crate::work::{Dtype, OpClass, Work};

/// Device memory (HBM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub capacity: Bytes,
    pub bandwidth: BytesPerSecond,
}

/// How close one class of op gets to peak, by size, and its fixed kernel-side cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassEfficiency {
    /// Fraction of peak FLOPS, as a function of the op's FLOPs.
    pub compute: Curve,
    /// Fraction of peak DRAM bandwidth, as a function of the op's DRAM bytes.
    pub memory: Curve,
    /// Fixed time per kernel on the device (launch latency, prologue, tail).
    pub overhead: Seconds,
}

/// Energy per action of an xPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Energy {
    /// Per FLOP of arithmetic (a MAC is two FLOPs).
    pub flop: JoulesPerFlop,
    /// Per bit moved between DRAM and the xPU (activation, array, TSV, PHY and interposer).
    pub dram: JoulesPerBit,
    /// Drawn whatever the device does.
    pub static_power: Watts,
}

/// A GPU-like accelerator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Xpu {
    /// Dense peak per element type.
    pub peak: BTreeMap<Dtype, FlopsPerSecond>,
    /// On-chip SRAM (L2 and shared memory).
    pub sram: Bytes,
    pub memory: Memory,
    pub gemm: ClassEfficiency,
    pub attention: ClassEfficiency,
    pub elementwise: ClassEfficiency,
    pub energy: Energy,
    /// Host-side dispatch time per op when ops are launched one by one (eager mode, no CUDA
    /// graphs); added only under [`Timing::Host`].
    pub host_overhead: Seconds,
}

/// Device-to-device link within a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// Per device, per direction.
    pub bandwidth: BytesPerSecond,
    /// Per ring step.
    pub latency: Seconds,
    /// Fixed time per collective kernel.
    pub overhead: Seconds,
    /// Fraction of link bandwidth, as a function of the message size in bytes.
    pub efficiency: Curve,
    /// Per bit sent over the link.
    pub energy: JoulesPerBit,
}

/// Devices in a node and the link between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub devices: u32,
    pub link: Link,
}

/// An arch: one xPU type in a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct System {
    pub name: String,
    pub xpu: Xpu,
    pub node: Node,
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

/// What limits an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
    Link,
    Overhead,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Link => "link",
            Bound::Overhead => "overhead",
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The cost of one op on one unit, with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpCost {
    pub time: Seconds,
    /// FLOPs ÷ (peak × compute efficiency).
    pub compute: Seconds,
    /// DRAM bytes ÷ (bandwidth × memory efficiency), or link transfer time for collectives.
    pub memory: Seconds,
    /// Fixed overheads (kernel, ring steps, host).
    pub overhead: Seconds,
    pub bound: Bound,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CostError {
    #[error("the arch gives no peak for {dtype} (it has: {have})")]
    NoPeak { dtype: Dtype, have: String },
    #[error("a collective over {participants} devices does not fit a node of {devices}")]
    TooManyDevices { participants: u32, devices: u32 },
    #[error("a collective op carries no message")]
    NoMessage,
}

impl System {
    /// Time of `w` on one xPU of this system.
    pub fn cost(&self, w: &Work, timing: Timing) -> Result<OpCost, CostError> {
        let host = match timing {
            Timing::Kernel => Seconds(0.0),
            Timing::Host => self.xpu.host_overhead,
        };
        let mut c = match w.class {
            OpClass::Collective => self.collective(w)?,
            class => self.xpu.roofline(class, w)?,
        };
        c.overhead += host;
        c.time += host;
        if c.overhead > longer(c.compute, c.memory) {
            c.bound = Bound::Overhead;
        }
        Ok(c)
    }

    /// Dynamic energy of `w` on one device: arithmetic, DRAM traffic and link traffic.
    pub fn energy(&self, w: &Work) -> Joules {
        let e = &self.xpu.energy;
        let link = w
            .collective
            .map_or(Joules(0.0), |c| c.sent() * self.node.link.energy);
        w.flops * e.flop + w.bytes.total() * e.dram + link
    }

    /// A collective over the node's links: a ring all-reduce (a reduce-scatter and an all-gather,
    /// 2(p−1) steps of S/p bytes each) or an all-to-all ((p−1) exchanges of S/p bytes).
    fn collective(&self, w: &Work) -> Result<OpCost, CostError> {
        let c = w.collective.ok_or(CostError::NoMessage)?;
        let (p, link) = (c.participants, &self.node.link);
        if p > self.node.devices {
            return Err(CostError::TooManyDevices {
                participants: p,
                devices: self.node.devices,
            });
        }
        if p <= 1 {
            return Ok(OpCost {
                time: Seconds(0.0),
                compute: Seconds(0.0),
                memory: Seconds(0.0),
                overhead: Seconds(0.0),
                bound: Bound::Overhead,
            });
        }
        let transfer = c.sent() / (link.bandwidth * link.efficiency.at(c.message.value()));
        let overhead = link.overhead + link.latency * c.steps();
        Ok(OpCost {
            time: transfer + overhead,
            compute: Seconds(0.0),
            memory: transfer,
            overhead,
            bound: Bound::Link,
        })
    }
}

impl Xpu {
    pub fn class(&self, class: OpClass) -> &ClassEfficiency {
        match class {
            OpClass::Gemm => &self.gemm,
            OpClass::Attention => &self.attention,
            OpClass::Elementwise | OpClass::Collective => &self.elementwise,
        }
    }

    pub fn peak(&self, dtype: Dtype) -> Result<FlopsPerSecond, CostError> {
        self.peak
            .get(&dtype)
            .copied()
            .ok_or_else(|| CostError::NoPeak {
                dtype,
                have: self
                    .peak
                    .keys()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// max(compute, memory) + kernel overhead, each side at its size-dependent efficiency.
    fn roofline(&self, class: OpClass, w: &Work) -> Result<OpCost, CostError> {
        let e = self.class(class);
        let bytes = w.bytes.total();
        let compute = if w.flops.value() > 0.0 {
            w.flops / (self.peak(w.compute)? * e.compute.at(w.flops.value()))
        } else {
            Seconds(0.0)
        };
        let memory = bytes / (self.memory.bandwidth * e.memory.at(bytes.value()));
        let bound = if compute >= memory {
            Bound::Compute
        } else {
            Bound::Memory
        };
        Ok(OpCost {
            time: longer(compute, memory) + e.overhead,
            compute,
            memory,
            overhead: e.overhead,
            bound,
        })
    }
}

fn longer(a: Seconds, b: Seconds) -> Seconds {
    if a >= b { a } else { b }
}
