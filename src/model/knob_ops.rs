//! The ops the per-layer variants ([`super::knobs`]) add to an iteration's graph, and what
//! they change in the ones it has: a layer's own precision and its dequantization op, MoE++'s
//! constant experts and zero-computation slots, top-p routing's balanced counts, and the
//! all-to-all that carries only FFN-routed tokens.

use petgraph::graph::NodeIndex;

use super::graph::{Builder, Iteration, Routing};
use super::knobs::ExpertKind;
use super::op::{OpKind, Precision};
use super::plan::LayerPlan;
use super::spec::Moe;
use crate::work::Access::Stream;

/// The precision of a layer's ops: the run's, with the layer's own types and group scales.
pub(super) fn layer_precision(p: Precision, plan: &LayerPlan) -> Precision {
    let Some(q) = plan.knobs.quant else {
        return p;
    };
    Precision {
        weights: q.weights.unwrap_or(p.weights),
        activations: q.activations.unwrap_or(p.activations),
        kv: q.kv.unwrap_or(p.kv),
        scales: q.scales.or(p.scales),
    }
}

/// A layer with its own precision and weights stored narrower than its activations
/// (weight-only quantization, W4A16) dequantizes each weight it reads to the activations'
/// type: a scale and a zero point, 2 FLOPs per weight of this device, fused into the GEMMs'
/// weight loads (no bytes of its own). Returns the op, or `last` when there is none.
pub(super) fn dequant(b: &mut Builder, it: &Iteration, l: u32, last: NodeIndex) -> NodeIndex {
    let (m, p) = (it.m, it.p);
    let weight_only =
        m.plans[l as usize].knobs.quant.is_some() && p.weights.bytes() < p.activations.bytes();
    if !weight_only {
        return last;
    }
    let experts = match (m.plans[l as usize].ffn, m.moe) {
        (super::plan::Ffn::Moe, Some(x)) => {
            x.experts * m.ffn_matrices() * m.hidden * x.intermediate
        }
        _ => 0,
    };
    let rest = m.layer_params(l) - experts;
    let here = if it.ep > 1 {
        rest + experts / it.ep
    } else {
        (rest + experts) / it.tp
    };
    b.elementwise(&[last], "dequant", Some(l), (here, 0, 0, 2), Stream)
}

/// Experts the router scores: the FFN experts and MoE++'s zero-computation ones.
pub(super) fn scored_experts(plan: &LayerPlan, moe: &Moe) -> u64 {
    moe.experts + plan.knobs.zc.map_or(0, |z| z.count())
}

/// Balanced counts per scored expert of `tokens` tokens: MoE++'s split by its FFN share, top-p's
/// expected slots, or `top_k` per token.
pub(super) fn uniform_counts(plan: &LayerPlan, moe: &Moe, tokens: u64) -> Vec<u64> {
    match (plan.knobs.zc, plan.knobs.k_pmf) {
        (Some(z), _) => z.uniform_counts(tokens, moe.experts, moe.top_k),
        (None, Some(k)) => k.uniform_counts(tokens, moe.experts),
        (None, None) => Routing::uniform_counts(tokens, moe.experts, moe.top_k),
    }
}

/// The dispatch and combine all-to-all of layer `plan` with `counts` per scored expert: each
/// device's `t` tokens times `top_k` rows of `hidden`, or, under a variant, only the rows routed
/// to FFN experts (zero-computation experts run where the token is), 1/ep of them per device.
pub(super) fn all_to_all(it: &Iteration, plan: &LayerPlan, moe: &Moe, counts: &[u64]) -> OpKind {
    let row = it.m.hidden as f64 * it.p.activations.bytes();
    let rows = if plan.knobs.zc.is_some() || plan.knobs.k_pmf.is_some() {
        counts.iter().take(moe.experts as usize).sum::<u64>() as f64 / it.ep as f64
    } else {
        it.t as f64 * moe.top_k as f64
    };
    OpKind::AllToAll {
        bytes: (rows * row).ceil() as u64,
        devices: it.ep,
    }
}

/// MoE++'s constant experts with tokens, after `topk`: each `E(x) = α1·x + α2·v` with
/// `[α1, α2] = softmax(W_c·x)`, as two ops on its `n` tokens: the gate GEMM `[n, h]·[h, 2]`
/// (4h FLOPs per token, its `W_c` the weights) and the mix (3 FLOPs per element: two scalings
/// and an add; the softmax of two scores and the vector `v` of h elements are left out beside
/// them). Zero and copy experts add no op: their slots are weighted in the combine.
pub(super) fn constant_experts(
    b: &mut Builder,
    it: &Iteration,
    (layer, plan, moe): (Option<u32>, &LayerPlan, &Moe),
    counts: &[u64],
    topk: NodeIndex,
) -> Vec<NodeIndex> {
    let Some(z) = plan.knobs.zc else {
        return Vec::new();
    };
    let h = it.m.hidden;
    let mut out = Vec::new();
    for (e, &n) in counts.iter().enumerate().skip(moe.experts as usize) {
        if n == 0 || z.kind(moe.experts, e as u64) != ExpertKind::Constant {
            continue;
        }
        let gate = OpKind::Gemm {
            m: n,
            n: 2,
            k: h,
            batch: 1,
        };
        let g = b.add(&[topk], format!("const_gate_{e}"), layer, gate);
        let mix = b.elementwise(
            &[g],
            format!("const_expert_{e}"),
            layer,
            (n * h, 1, 1, 3),
            Stream,
        );
        for x in [g, mix] {
            b.g[x].device = (e as u64 % it.ep) as u32;
        }
        out.push(mix);
    }
    out
}
