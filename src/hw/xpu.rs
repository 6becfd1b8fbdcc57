//! The xPU (a GPU-like accelerator): its peaks, efficiency by op class, energy per action, and
//! its roofline for an op.

use std::collections::BTreeMap;

use serde::Serialize;

use super::curve::Curve;
use super::memory::Memory;
use super::roofline::{OpCost, Roofline};
use super::streaming::Streaming;
use super::system::CostError;
use super::tiles::Tiling;
use crate::units::{Bytes, FlopsPerSecond, JoulesPerBit, JoulesPerFlop, Seconds, Watts};
use crate::work::{Dtype, OpClass, Work};

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
    /// Its device memory (HBM).
    pub memory: Memory,
    /// Efficiency and kernel overhead of GEMMs.
    pub gemm: ClassEfficiency,
    /// Efficiency and kernel overhead of attention.
    pub attention: ClassEfficiency,
    /// Efficiency and kernel overhead of elementwise ops (norms, activations, RoPE, …).
    pub elementwise: ClassEfficiency,
    /// Energy per action.
    pub energy: Energy,
    /// Host-side dispatch time per op when ops are launched one by one (eager mode, no CUDA
    /// graphs); added only under [`super::Timing::Host`].
    pub host_overhead: Seconds,
    /// SMs and GEMM tile shapes, for tiles and waves; `None` prices GEMMs by the curves alone.
    pub tiling: Option<Tiling>,
    /// Elementwise rates by where the bytes come from; `None` prices elementwise ops by the
    /// class curves alone.
    pub streaming: Option<Streaming>,
}

impl Xpu {
    /// The efficiency of `class` (collectives take the elementwise one).
    pub fn class(&self, class: OpClass) -> &ClassEfficiency {
        match class {
            OpClass::Gemm => &self.gemm,
            OpClass::Attention => &self.attention,
            OpClass::Elementwise | OpClass::Collective => &self.elementwise,
        }
    }

    /// Dense peak for `dtype`, or [`CostError::NoPeak`] naming the types the arch gives.
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

    /// The roofline that prices `w` (of `class`) on this xPU, with its kernel overhead and
    /// without host dispatch. An op without arithmetic needs no peak for its element type: it
    /// is priced against an unbounded peak, so its compute time is 0 ÷ ∞ = 0.
    pub fn roofline(&self, class: OpClass, w: &Work) -> Result<Roofline<'_>, CostError> {
        let e = self.class(class);
        let peak = if w.flops.value() > 0.0 {
            self.peak(w.compute)?
        } else {
            FlopsPerSecond(f64::INFINITY)
        };
        Ok(Roofline {
            peak,
            bandwidth: self.memory.bandwidth,
            compute: &e.compute,
            memory: &e.memory,
            overhead: e.overhead,
        })
    }

    /// The kernel time of `w` (of `class`) on this xPU: its roofline, with a GEMM's compute
    /// time taken over the waves of tiles its library would run, each SM at its share of the
    /// peak times the size curve's efficiency and the operand feed at full bandwidth, and its
    /// waves and DRAM stream overlapping as [`Tiling::overlap`] states.
    pub fn cost(&self, class: OpClass, w: &Work) -> Result<OpCost, CostError> {
        let full = Curve::full();
        let mut roof = self.roofline(class, w)?;
        if let (Some(s), Some(e), OpClass::Elementwise) = (&self.streaming, &w.elementwise, class) {
            // The rate where the bytes come from replaces the size curve (a flat 1).
            let memory = (self.sram, self.memory.bandwidth);
            roof.bandwidth = s.rate(e, w.bytes.total(), memory);
            roof.memory = &full;
        }
        Ok(match (&self.tiling, &w.gemm, class) {
            (Some(t), Some(g), OpClass::Gemm) => {
                // The curve scales the arithmetic (the rate each SM reaches), not the operand
                // feed; the waves and the DRAM stream overlap as the tiling states.
                let rate = roof.peak * roof.compute.at(w.flops.value());
                let waves = t.scale(g, w.compute, rate);
                t.overlap(roof.cost_scaled(w.flops, w.bytes.total(), waves))
            }
            _ => roof.cost_scaled(w.flops, w.bytes.total(), 1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::BytesPerSecond;
    use crate::work::Streams;

    fn xpu() -> Xpu {
        let class = ClassEfficiency {
            compute: Curve::flat(0.5).unwrap(),
            memory: Curve::flat(0.8).unwrap(),
            overhead: Seconds(1e-6),
        };
        Xpu {
            peak: BTreeMap::from([(Dtype::Bf16, FlopsPerSecond(1e15))]),
            sram: Bytes(5e7),
            memory: Memory {
                capacity: Bytes(8e10),
                bandwidth: BytesPerSecond(3e12),
            },
            gemm: class.clone(),
            attention: class.clone(),
            elementwise: class,
            energy: Energy {
                flop: JoulesPerFlop(1e-12),
                dram: JoulesPerBit(1e-12),
                static_power: Watts(100.0),
            },
            host_overhead: Seconds(0.0),
            tiling: None,
            streaming: None,
        }
    }

    fn work(compute: Dtype, flops: f64) -> Work {
        Work {
            class: OpClass::Elementwise,
            compute,
            flops: crate::units::Flops(flops),
            bytes: Streams {
                act_in: Bytes(1e6),
                ..Streams::default()
            },
            collective: None,
            gemm: None,
            elementwise: None,
        }
    }

    #[test]
    fn an_op_without_arithmetic_needs_no_peak_for_its_type() {
        let x = xpu();
        let w = work(Dtype::Fp32, 0.0);
        let c = x
            .roofline(w.class, &w)
            .unwrap()
            .cost(w.flops, w.bytes.total());
        assert_eq!(c.compute, Seconds(0.0));
        assert_eq!(c.memory, Bytes(1e6) / (BytesPerSecond(3e12) * 0.8));
        let w = work(Dtype::Fp32, 1.0);
        assert!(matches!(
            x.roofline(w.class, &w),
            Err(CostError::NoPeak {
                dtype: Dtype::Fp32,
                ..
            })
        ));
    }
}
