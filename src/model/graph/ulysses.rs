//! Sequence parallelism as DeepSpeed-Ulysses (arXiv 2309.14509, §3.1): each of `sp` devices
//! holds 1/sp of the iteration's tokens (N/sp of every prompt, and 1/sp of the decode
//! sequences) with the whole model's weights. Before attention an all-to-all of Q, K and V
//! turns the token split into a head split: each device then attends every token of its
//! heads/sp query heads and kv_heads/sp KV heads (so its KV cache is a tensor-parallel
//! device's). An all-to-all of the attention output turns it back before the output
//! projection. Per layer each device contributes N/sp·(2·heads·d + 2·kv_heads·d) elements to
//! the all-to-alls, 4·N·h/sp for multi-head attention, the paper's per-link volume. The FFN
//! runs on the device's own tokens, with no all-reduce.
//!
//! KV heads are never replicated: sp must divide the KV heads (and the query heads). Latent
//! attention, token selection and MatryoshkaKV ranks, tensor and expert parallelism alongside,
//! and per-layer routing counts are not modelled under sp > 1 and are errors.

use petgraph::graph::{DiGraph, NodeIndex};

use super::{
    Batch, Builder, Iteration, IterationGraph, Routing, attend, build_iteration, gemm, layers,
    lm_head,
};
use crate::model::op::{OpKind, Precision};
use crate::model::spec::{ModelError, ModelSpec};
use crate::work::Access::{Gather, Rows};

/// Builds the op graph of one iteration on one device of an `sp`-way Ulysses group: the device
/// holding the prompts' last tokens (it computes their logits; decode rows are spread). Its
/// `tokens` and `produced` are the whole group's. With `sp = 1` it is [`build_iteration`] at
/// tp = 1.
pub fn build_iteration_sp(
    m: &ModelSpec,
    batch: &Batch,
    sp: u64,
    p: Precision,
    routing: &Routing,
) -> Result<IterationGraph, ModelError> {
    if sp <= 1 {
        let sp_err = |why: &str| ModelError::Sp(sp, why.into());
        return match sp {
            0 => Err(sp_err("must be at least 1")),
            _ => build_iteration(m, batch, 1, p, routing),
        };
    }
    check(m, batch, sp, routing)?;
    let t = batch.tokens().div_ceil(sp);
    let it = Iteration {
        m,
        batch,
        tp: 1,
        ep: 1,
        t,
        p,
        routing,
    };
    let mut b = Builder {
        g: DiGraph::new(),
        p,
    };
    let last = b.elementwise(&[], "embedding", None, (t * m.hidden, 1, 1, 0), Gather);
    let last = layers(&mut b, &it, sp, last, |b, lit, l, x| {
        attention(b, lit, sp, l, x)
    })?;
    b.p = p;
    // Decode rows spread over the devices; every prompt's last token on this one.
    let rows = Batch {
        decode_kv: batch.decode_kv[..batch.decode_kv.len().div_ceil(sp as usize)].to_vec(),
        prefill: batch.prefill.clone(),
    };
    lm_head(&mut b, &Iteration { batch: &rows, ..it }, last);
    // Tokens and outputs of the whole group, as a tensor-parallel graph counts them.
    Ok(IterationGraph {
        graph: b.g,
        tokens: batch.tokens(),
        produced: batch.logit_rows(),
        tp: 1,
    })
}

/// Bytes each device contributes to the all-to-alls of one layer of `m` when it holds `tokens`
/// tokens: Q, K and V before attention and the output after,
/// tokens·(heads·d + kv_heads·(d + d_v) + heads·d_v)·element (4·N·h/sp·element for multi-head
/// attention with N/sp tokens on the device).
pub fn ulysses_bytes(m: &ModelSpec, l: u32, tokens: u64, p: Precision) -> (u64, u64) {
    let (hq, g, d) = (m.heads, m.kv_heads, m.head_dim);
    let dv = m.plans[l as usize].kv_dims(d).1;
    let e = p.activations.bytes();
    let bytes = |elems: u64| (elems as f64 * e).ceil() as u64;
    (
        bytes(tokens * (hq * d + g * (d + dv))),
        bytes(tokens * hq * dv),
    )
}

/// Layer `l`'s attention on a Ulysses device: norm, the QKV projection of its tokens with
/// every head, RoPE, the all-to-all to a head split, attention over every token for its heads,
/// the all-to-all back, the output projection. Returns the last op.
fn attention(b: &mut Builder, it: &Iteration, sp: u64, l: u32, last: NodeIndex) -> NodeIndex {
    let (m, t, layer) = (it.m, it.t, Some(l));
    let (h, d, hq, g) = (m.hidden, m.head_dim, m.heads, m.kv_heads);
    let dv = m.plans[l as usize].kv_dims(d).1;
    let mut last = b.elementwise(&[last], "attn_norm", layer, (t * h, 2, 2, 5), Rows(h));
    let qkv = gemm(t, (hq + g) * d + g * dv, h);
    last = b.add(&[last], "qkv_proj", layer, qkv);
    if m.plans[l as usize].qk_norm {
        let norm = (t * (hq + g) * d, 1, 1, 4);
        last = b.elementwise(&[last], "qk_norm", layer, norm, Rows(d));
    }
    let rope = (t * (hq + g) * d, 1, 1, 3);
    last = b.elementwise(&[last], "rope", layer, rope, Rows((hq + g) * d));
    let (into, out) = ulysses_bytes(m, l, t, it.p);
    let a2a = |bytes| OpKind::AllToAll { bytes, devices: sp };
    last = b.add(&[last], "sp_qkv_a2a", layer, a2a(into));
    // After the all-to-all: every token of the batch, heads/sp and kv_heads/sp of them.
    let heads = Iteration { tp: sp, ..*it };
    let attn = attend::attention_ops(b, &heads, l, last);
    last = b.add(&attn, "sp_out_a2a", layer, a2a(out));
    last = b.add(&[last], "o_proj", layer, gemm(t, h, hq * dv));
    if m.plans[l as usize].post_norms {
        last = b.elementwise(&[last], "post_attn_norm", layer, (t * h, 1, 1, 4), Rows(h));
    }
    last
}

/// What sp > 1 needs: a valid model whose query and KV heads it divides (no KV replication),
/// no latent attention, token selection or ranks, and no per-layer routing counts.
fn check(m: &ModelSpec, batch: &Batch, sp: u64, routing: &Routing) -> Result<(), ModelError> {
    m.validate()?;
    let err = |why: String| Err(ModelError::Sp(sp, why));
    if batch.is_empty() {
        return Err(ModelError::Zero {
            field: "the batch (tokens this iteration)",
        });
    }
    if m.kv_heads % sp != 0 || m.heads % sp != 0 {
        return err(format!(
            "the heads are split over the devices after the all-to-all, so sp must divide \
             num_attention_heads ({}) and num_key_value_heads ({}); KV heads are not replicated",
            m.heads, m.kv_heads
        ));
    }
    let unmodelled = m
        .plans
        .iter()
        .any(|p| p.mla.is_some() || p.variant.select.is_some() || p.variant.ranks.is_some());
    if unmodelled {
        return err(
            "latent attention, token selection and MatryoshkaKV ranks are not modelled under \
             sequence parallelism"
                .into(),
        );
    }
    if matches!(routing, Routing::PerLayer(_)) {
        return err("per-layer routing counts are not modelled under sequence parallelism".into());
    }
    Ok(())
}

#[cfg(test)]
#[path = "ulysses_tests.rs"]
mod tests;
