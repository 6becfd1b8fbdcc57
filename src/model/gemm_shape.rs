//! The products a GEMM-class op runs, which the hardware cuts into tiles and waves.

use super::op::{Op, OpKind};
use crate::work::GemmShape;

impl Op {
    /// The products a GEMM-class op runs, for tiles and waves: a GEMM as it is; a fused expert
    /// as its matrices (gate, up and down, or up and down), each `tokens × inner × hidden`.
    pub(super) fn gemm_shape(&self) -> Option<GemmShape> {
        match self.kind {
            OpKind::Gemm { m, n, k, batch } => Some(GemmShape { m, n, k, batch }),
            OpKind::ExpertFfn {
                tokens,
                hidden,
                inner,
                gated,
                ..
            } => Some(GemmShape {
                m: tokens,
                n: inner,
                k: hidden,
                batch: if gated { 3 } else { 2 },
            }),
            _ => None,
        }
    }
}
