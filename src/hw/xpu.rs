//! The xPU (a GPU-like accelerator), its node, and the roofline-with-efficiency cost of an op.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use super::curve::Curve;
use super::pim::Pim;
use crate::units::{
    Bytes, BytesPerSecond, FlopsPerSecond, Joules, JoulesPerBit, JoulesPerFlop, Seconds, Watts,
};
use crate::work::{CollectiveKind, CollectiveWork, Dtype, OpClass, Work};

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

/// Several nodes joined by a scale-out network (InfiniBand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub nodes: u32,
    /// Per device, between nodes.
    pub link: Link,
}

/// An arch: one xPU type in a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct System {
    pub name: String,
    pub xpu: Xpu,
    /// PIM units in the xPU's memory, if any.
    pub pim: Option<Pim>,
    pub node: Node,
    /// Nodes beyond the first, if any.
    pub cluster: Option<Cluster>,
}

/// A compute unit of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Xpu,
    Pim,
}

impl Unit {
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
    pub fn total(&self) -> f64 {
        self.mac + self.dram_xpu + self.dram_pim + self.link
    }

    pub fn scaled(self, k: f64) -> Self {
        EnergyParts {
            mac: self.mac * k,
            dram_xpu: self.dram_xpu * k,
            dram_pim: self.dram_pim * k,
            link: self.link * k,
        }
    }

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
    #[error("the arch has no PIM units")]
    NoPim,
    #[error("collectives run on the xPU's links, not on PIM")]
    CollectiveOnPim,
}

impl System {
    /// Devices of the whole system: one node's, times the nodes of the cluster if any.
    pub fn devices(&self) -> u32 {
        self.node.devices * self.cluster.as_ref().map_or(1, |c| c.nodes)
    }

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

    /// Time of `w` on `unit` of one device.
    pub fn cost_on(&self, unit: Unit, w: &Work, timing: Timing) -> Result<OpCost, CostError> {
        match unit {
            Unit::Xpu => self.cost(w, timing),
            Unit::Pim => {
                let pim = self.pim.as_ref().ok_or(CostError::NoPim)?;
                if w.class == OpClass::Collective {
                    return Err(CostError::CollectiveOnPim);
                }
                let bytes = w.bytes.total();
                let compute = w.flops / (pim.peak() * pim.compute.at(w.flops.value()));
                let bw = pim.bandwidth(self.xpu.memory.bandwidth);
                let memory = bytes / (bw * pim.memory.at(bytes.value()));
                let host = match timing {
                    Timing::Kernel => Seconds(0.0),
                    Timing::Host => self.xpu.host_overhead,
                };
                let overhead = pim.overhead + host;
                let mut bound = if compute >= memory {
                    Bound::Compute
                } else {
                    Bound::Memory
                };
                if overhead > longer(compute, memory) {
                    bound = Bound::Overhead;
                }
                Ok(OpCost {
                    time: longer(compute, memory) + overhead,
                    compute,
                    memory,
                    overhead,
                    bound,
                })
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

    /// A collective over the node's links: a ring all-reduce (a reduce-scatter and an all-gather,
    /// 2(p−1) steps of S/p bytes each) or an all-to-all ((p−1) exchanges of S/p bytes).
    fn collective(&self, w: &Work) -> Result<OpCost, CostError> {
        let c = w.collective.ok_or(CostError::NoMessage)?;
        let (p, d) = (c.participants, self.node.devices);
        let across = p.div_ceil(d);
        let nodes = self.cluster.as_ref().map_or(1, |x| x.nodes);
        if p > d && (across > nodes || p % d != 0) {
            return Err(CostError::TooManyDevices {
                participants: p,
                devices: d * nodes,
            });
        }
        let ring = |c: CollectiveWork, link: &Link| -> (Seconds, Seconds) {
            if c.participants <= 1 {
                return (Seconds(0.0), Seconds(0.0));
            }
            let transfer = c.sent() / (link.bandwidth * link.efficiency.at(c.message.value()));
            (transfer, link.overhead + link.latency * c.steps())
        };
        let (transfer, overhead) = match (&self.cluster, across) {
            (Some(cl), n) if n > 1 => {
                // Hierarchical: within each node over its links, then across nodes over the
                // scale-out network. An all-reduce reduce-scatters inside the node, all-reduces
                // 1/d of the message across nodes, and all-gathers inside; an all-to-all sends
                // the share bound for other nodes over the network while the rest moves inside.
                let inner = CollectiveWork {
                    participants: d,
                    ..c
                };
                let (ti, oi) = ring(inner, &self.node.link);
                match c.kind {
                    CollectiveKind::AllReduce => {
                        let outer = CollectiveWork {
                            participants: n,
                            message: c.message * (1.0 / f64::from(d)),
                            ..c
                        };
                        let (to, oo) = ring(outer, &cl.link);
                        (ti + to, oi + oo)
                    }
                    CollectiveKind::AllToAll => {
                        let off = c.message * (f64::from(p - d) / f64::from(p));
                        let to = off / (cl.link.bandwidth * cl.link.efficiency.at(off.value()));
                        let oo = cl.link.overhead + cl.link.latency * f64::from(n - 1);
                        (longer(ti, to), longer(oi, oo))
                    }
                }
            }
            _ => ring(c, &self.node.link),
        };
        Ok(OpCost {
            time: transfer + overhead,
            compute: Seconds(0.0),
            memory: transfer,
            overhead,
            bound: if transfer.value() > 0.0 {
                Bound::Link
            } else {
                Bound::Overhead
            },
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
