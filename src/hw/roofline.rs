//! The roofline with efficiency curves: the one formula every compute unit is priced by.
//!
//! `time = max(FLOPs ÷ (peak·e_c(FLOPs)), bytes ÷ (BW·e_m(bytes))) + overhead`, and the side
//! that sets the time is the bound. The xPU ([`super::Xpu`]) and every kind of PIM
//! ([`super::Pim`]) build a [`Roofline`] and call [`Roofline::cost`]; nothing else computes it.

use std::fmt;

use serde::Serialize;

use super::curve::Curve;
use crate::units::{Bytes, BytesPerSecond, Flops, FlopsPerSecond, Seconds};

/// A compute unit as the roofline sees it: peak, bandwidth, how close to each it gets by size,
/// and a fixed cost per op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofline<'a> {
    /// Peak arithmetic rate for the op's element type.
    pub peak: FlopsPerSecond,
    /// Bandwidth of the memory the unit reads.
    pub bandwidth: BytesPerSecond,
    /// Fraction of `peak` by the op's FLOPs.
    pub compute: &'a Curve,
    /// Fraction of `bandwidth` by the op's bytes.
    pub memory: &'a Curve,
    /// Fixed time per op (kernel launch and tail, or PIM command issue), added to the longer
    /// side.
    pub overhead: Seconds,
}

impl Roofline<'_> {
    /// The cost of `flops` of arithmetic over `bytes` of memory traffic: the longer of the
    /// compute and memory times plus the overhead, bound by the side that sets the time (the
    /// overhead when it exceeds both).
    pub fn cost(&self, flops: Flops, bytes: Bytes) -> OpCost {
        self.cost_scaled(flops, bytes, 1.0)
    }

    /// [`Self::cost`] with the compute time multiplied by `waves` (≥ 1): how much longer the
    /// op's tiles take in waves over the device's SMs than its FLOPs at peak
    /// ([`super::Tiling::scale`]); the efficiency curve covers what waves do not explain.
    pub fn cost_scaled(&self, flops: Flops, bytes: Bytes, waves: f64) -> OpCost {
        let compute = flops / (self.peak * self.compute.at(flops.value())) * waves;
        let memory = bytes / (self.bandwidth * self.memory.at(bytes.value()));
        let mut bound = if compute >= memory {
            Bound::Compute
        } else {
            Bound::Memory
        };
        if self.overhead > longer(compute, memory) {
            bound = Bound::Overhead;
        }
        OpCost {
            time: longer(compute, memory) + self.overhead,
            compute,
            memory,
            overhead: self.overhead,
            bound,
        }
    }
}

/// What limits an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Arithmetic: FLOPs over the achieved peak.
    Compute,
    /// Memory traffic: bytes over the achieved bandwidth.
    Memory,
    /// Link transfer (collectives).
    Link,
    /// Fixed per-op time (kernel, ring steps, host dispatch).
    Overhead,
}

impl Bound {
    /// The name in reports: `compute`, `memory`, `link`, `overhead`.
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
    /// Total time: the longer of `compute` and `memory`, plus `overhead`.
    pub time: Seconds,
    /// FLOPs ÷ (peak × compute efficiency). A GEMM on an xPU whose waves and DRAM stream
    /// overlap imperfectly (`xpu.tiling.overlap`) carries on its longer side the part of the
    /// other side it does not hide ([`super::Tiling::overlap`]).
    pub compute: Seconds,
    /// DRAM bytes ÷ (bandwidth × memory efficiency), or link transfer time for collectives
    /// (with the same note for a GEMM as `compute`).
    pub memory: Seconds,
    /// Fixed overheads (kernel, ring steps, host).
    pub overhead: Seconds,
    /// The part that sets `time`.
    pub bound: Bound,
}

impl OpCost {
    /// The cost with no fixed overhead: an op that runs inside another's launch (an expert of a
    /// fused-MoE kernel after the first). Its time is the longer side, which bounds it.
    pub fn without_overhead(self) -> OpCost {
        let bound = match self.bound {
            Bound::Overhead if self.compute >= self.memory => Bound::Compute,
            Bound::Overhead => Bound::Memory,
            b => b,
        };
        OpCost {
            time: longer(self.compute, self.memory),
            overhead: Seconds(0.0),
            bound,
            ..self
        }
    }
}

/// The longer of two times (the first when they tie).
pub(super) fn longer(a: Seconds, b: Seconds) -> Seconds {
    if a >= b { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(overhead: f64) -> (Curve, Curve, Seconds) {
        (
            Curve::flat(0.5).unwrap(),
            Curve::flat(0.8).unwrap(),
            Seconds(overhead),
        )
    }

    #[test]
    fn the_longer_side_sets_time_and_bound() {
        let (c, m, o) = unit(1e-6);
        let r = Roofline {
            peak: FlopsPerSecond(1e12),
            bandwidth: BytesPerSecond(1e9),
            compute: &c,
            memory: &m,
            overhead: o,
        };
        // 1e6 FLOPs at 0.5 TFLOP/s: 2 us; 8e3 bytes at 0.8 GB/s: 10 us.
        let k = r.cost(Flops(1e6), Bytes(8e3));
        assert_eq!(k.bound, Bound::Memory);
        assert!((k.compute.value() - 2e-6).abs() < 1e-18);
        assert!((k.memory.value() - 1e-5).abs() < 1e-18);
        assert_eq!(k.time, k.memory + o);
        let k = r.cost(Flops(1e8), Bytes(8e3));
        assert_eq!(k.bound, Bound::Compute);
        assert_eq!(k.time, k.compute + o);
    }

    #[test]
    fn overhead_bounds_an_op_smaller_than_it() {
        let (c, m, o) = unit(1.0);
        let r = Roofline {
            peak: FlopsPerSecond(1e12),
            bandwidth: BytesPerSecond(1e9),
            compute: &c,
            memory: &m,
            overhead: o,
        };
        assert_eq!(r.cost(Flops(1.0), Bytes(1.0)).bound, Bound::Overhead);
    }

    #[test]
    fn no_flops_take_no_compute_time_against_an_unbounded_peak() {
        let (c, m, o) = unit(0.0);
        let r = Roofline {
            peak: FlopsPerSecond(f64::INFINITY),
            bandwidth: BytesPerSecond(1e9),
            compute: &c,
            memory: &m,
            overhead: o,
        };
        let k = r.cost(Flops(0.0), Bytes(8e2));
        assert_eq!(k.compute, Seconds(0.0));
        assert_eq!(k.bound, Bound::Memory);
    }
}
