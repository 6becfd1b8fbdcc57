//! The elementwise ops of an iteration, checked by name: embedding, the norms, RoPE, the SwiGLU
//! activation, the MoE router (`topk`) and the MoE combine. Each builds random inputs of the op's
//! shape, its unsplit reference, and runs the parts of its plan.

use std::ops::Range;

use super::{Context, Outcome, Unsupported, combine_parts, rand, usize_of};
use crate::kernels::attention::Heads;
use crate::kernels::elementwise::{
    add, add_rmsnorm, dequantize, embedding, ffn_act, head_rmsnorm, rope, sigmoid_scale, softcap,
};
use crate::kernels::gemm::expand;
use crate::kernels::moe::{combine, route, route_with};
use crate::kernels::moe_plus::constant_mix;
use crate::kernels::{Count, Elem, Rng, elems, normalized_error, to_elems, to_f32s};
use crate::map::plan::{Axis, OpPlan, PartitionPlan};
use crate::model::{Batch, ModelSpec, OpKind, Router};

/// RoPE base used for the check (Llama 2; any base exercises the same arithmetic).
const ROPE_BASE: f32 = 10000.0;

/// Executes the elementwise op `p` of `elements` elements, chosen by its name.
pub(super) fn run<E: Elem>(p: &OpPlan, cx: Context, elements: u64, rng: &mut Rng) -> Outcome {
    let m = cx.model;
    let plan = &p.plan;
    let OpKind::Elementwise { reads, writes, .. } = p.op.kind else {
        return Err(Unsupported::NotElementwise);
    };
    match p.op.name.as_ref() {
        "embedding" => run_embedding::<E>(plan, m, elements, rng),
        "attn_norm" | "ffn_norm" | "final_norm" => run_norm::<E>(plan, m, elements, writes, rng),
        "rope" => {
            let pos = positions(cx.batch);
            let t = pos.len() as u64;
            let shape = rope_heads(m, p.op.layer);
            run_per_head::<E>(plan, shape, t, rng, |x, shape, hs, c| {
                rope(x, shape, hs, &pos, ROPE_BASE, c)
            })
        }
        "qk_norm" => {
            let t = positions(cx.batch).len() as u64;
            let gain = rng.vec(usize_of(m.head_dim), 1.0);
            let shape = rope_heads(m, None);
            run_per_head::<E>(plan, shape, t, rng, |x, shape, hs, c| {
                head_rmsnorm(x, shape, hs, &gain, c)
            })
        }
        "q_a_norm" | "kv_a_norm" => {
            // MLA's RMSNorm of the query's low-rank projection and of the latent, each token's
            // vector whole (its width: the op's elements per token).
            let t = positions(cx.batch).len() as u64;
            let width = usize_of(elements / t.max(1));
            let x = rand::<E>(rng, &[elements], 1.0);
            let gain = rng.vec(width, 1.0);
            let norm = |c: &mut Count| head_rmsnorm(&x, (1, width), 0..1, &gain, c);
            let reference = to_f32s(&norm(&mut Count::default()));
            combine_parts(plan, width, &reference, |_, c| norm(c))
        }
        "post_attn_norm" | "post_ffn_norm" => {
            // A plain RMSNorm over the model width (the residual add follows in the next norm).
            let h = usize_of(m.hidden);
            let x = rand::<E>(rng, &[elements], 1.0);
            let gain = rng.vec(h, 1.0);
            let norm = |c: &mut Count| head_rmsnorm(&x, (1, h), 0..1, &gain, c);
            let reference = to_f32s(&norm(&mut Count::default()));
            combine_parts(plan, h, &reference, |_, c| norm(c))
        }
        "logit_softcap" => {
            // Gemma-2's final_logit_softcapping is 30; any cap exercises the same arithmetic.
            // Under TP each device caps its columns of the logits, as it computed them.
            let vocab = usize_of(m.vocab);
            let x = rand::<E>(rng, &[elements], 40.0);
            let reference = to_f32s(&softcap(&x, 30.0, &mut Count::default()));
            combine_parts(plan, vocab, &reference, |share, c| match plan.axis {
                Axis::Columns => {
                    let cols = expand(share);
                    let mine: Vec<E> = x
                        .chunks(vocab)
                        .flat_map(|row| cols.iter().map(|&j| row[j]))
                        .collect();
                    softcap(&mine, 30.0, c)
                }
                _ => softcap(&x, 30.0, c),
            })
        }
        "shared_add" | "shared_scale" => run_shared::<E>(p, m, elements, rng),
        "act" => run_act::<E>(plan, m, m.ffn_inner(p.op.layer.unwrap_or(0)), elements, rng),
        "topk" => run_topk::<E>(plan, m, p.op.layer, [elements, reads], rng),
        "moe_combine" => run_moe_combine::<E>(plan, m, elements, rng),
        "dequant" => run_dequant(plan, elements, rng),
        n if n.starts_with("const_expert_") => run_const_mix::<E>(plan, m, elements, rng),
        other => Err(Unsupported::ElementwiseName(other.to_string())),
    }
}

/// The shared expert's add to the routed output, and Qwen2-MoE's sigmoid gate on it.
fn run_shared<E: Elem>(p: &OpPlan, m: &ModelSpec, elements: u64, rng: &mut Rng) -> Outcome {
    let (plan, h) = (&p.plan, usize_of(m.hidden));
    if p.op.name == "shared_add" {
        // The routed and shared experts' outputs, added.
        let (a, b) = (
            rand::<E>(rng, &[elements], 1.0),
            rand::<E>(rng, &[elements], 1.0),
        );
        let reference = to_f32s(&add(&a, &b, &mut Count::default()));
        return combine_parts(plan, h, &reference, |_, c| add(&a, &b, c));
    }
    // Each token's shared-expert output times sigmoid(x · w_gate).
    let x = rand::<E>(rng, &[elements], 1.0);
    let gate = rng.vec(usize_of(elements) / h.max(1), 4.0);
    let reference = to_f32s(&sigmoid_scale(&x, &gate, h, &mut Count::default()));
    combine_parts(plan, h, &reference, |_, c| sigmoid_scale(&x, &gate, h, c))
}

/// Token positions of a batch: prefill tokens (chunk after chunk), then decode tokens.
fn positions(b: &Batch) -> Vec<usize> {
    let pre = b
        .prefill
        .iter()
        .flat_map(|c| (c.ctx..c.ctx + c.q_len).map(usize_of));
    let dec = b.decode_kv.iter().map(|&l| usize_of(l.max(1) - 1));
    pre.chain(dec).collect()
}

/// The embedding lookup of random token ids in a small random table.
fn run_embedding<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    elements: u64,
    rng: &mut Rng,
) -> Outcome {
    let h = usize_of(m.hidden);
    let vocab = 64;
    let table = rand::<E>(rng, &[vocab, m.hidden], 1.0);
    let t = usize_of(elements) / h;
    let ids: Vec<usize> = (0..t).map(|_| (rng.next_u64() % vocab) as usize).collect();
    let reference: Vec<f32> = ids
        .iter()
        .flat_map(|&i| to_f32s(&table[i * h..(i + 1) * h]))
        .collect();
    combine_parts(plan, h, &reference, |_, c| embedding(&table, h, &ids, c))
}

/// A residual add and RMSNorm; with two writes the sum is kept as the next residual.
fn run_norm<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    elements: u64,
    writes: u64,
    rng: &mut Rng,
) -> Outcome {
    let h = usize_of(m.hidden);
    let (x, r) = (
        rand::<E>(rng, &[elements], 1.0),
        rand::<E>(rng, &[elements], 1.0),
    );
    let gain = rng.vec(h, 1.0);
    let keep = writes == 2;
    let norm = |c: &mut Count| {
        let (y, res) = add_rmsnorm(h, &x, &r, &gain, keep, c);
        let mut v = to_f32s(&y);
        v.extend(res.map_or_else(Vec::new, |r| to_f32s(&r)));
        v
    };
    let reference = norm(&mut Count::default());
    combine_parts(plan, h, &reference, |_, c| to_elems::<E>(&norm(c)))
}

/// The heads a per-head op of layer `layer` turns: the model's query and KV heads, or in a
/// latent-attention layer the RoPE parts of the query heads and the one shared RoPE key.
fn rope_heads(m: &ModelSpec, layer: Option<u32>) -> Heads {
    let mla = layer.and_then(|l| m.plans.get(l as usize)?.mla);
    Heads {
        heads: usize_of(m.heads),
        kv_heads: mla.map_or(usize_of(m.kv_heads), |_| 1),
        head_dim: usize_of(mla.map_or(m.head_dim, |a| a.rope)),
    }
}

/// A per-head op (RoPE, QK-norm) on the queries and keys of `t` tokens, whole or split by query
/// heads (a part treats the KV heads its query heads read). `kernel(x, (heads, d), range, c)`
/// runs the op on the heads `range` of x.
fn run_per_head<E: Elem>(
    plan: &PartitionPlan,
    shape: Heads,
    t: u64,
    rng: &mut Rng,
    kernel: impl Fn(&[E], (usize, usize), Range<usize>, &mut Count) -> Vec<E>,
) -> Outcome {
    let (big_h, g, d) = (shape.heads, shape.kv_heads, shape.head_dim);
    let tokens = usize_of(t);
    let q = rand::<E>(rng, &[t, big_h as u64, d as u64], 1.0);
    let k = rand::<E>(rng, &[t, g as u64, d as u64], 1.0);
    let both = |hs: Range<usize>, c: &mut Count| {
        let mut v = to_f32s(&kernel(&q, (big_h, d), hs.clone(), c));
        let ks = shape.kv_range(&hs);
        v.extend(to_f32s(&kernel(&k, (g, d), ks, c)));
        v
    };
    let reference = both(0..big_h, &mut Count::default());
    let mut counts = Vec::new();
    let mut err: f64 = 0.0;
    for pt in &plan.parts {
        let hs = match (plan.axis, pt.share.as_slice()) {
            (Axis::Heads, [s]) => usize_of(s.start)..usize_of(s.end),
            _ => 0..big_h,
        };
        let mut c = Count::default();
        let got = both(hs.clone(), &mut c);
        let sub = |n: usize, r: Range<usize>, off: usize| {
            (0..tokens).flat_map(move |ti| {
                r.clone()
                    .flat_map(move |hh| (0..d).map(move |j| off + (ti * n + hh) * d + j))
            })
        };
        let qn = elems(&[tokens, big_h, d]);
        let want: Vec<f32> = sub(big_h, hs.clone(), 0)
            .chain(sub(g, shape.kv_range(&hs), qn))
            .map(|i| reference[i])
            .collect();
        err = err.max(normalized_error(&got, &want));
        counts.push(c);
    }
    Ok((err, counts))
}

/// The model's FFN activation (act(gate)·up when gated: SwiGLU, GeGLU; act(x) otherwise),
/// whole or split by columns of the FFN width. `inner` is the FFN's inner size.
fn run_act<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    inner: u64,
    elements: u64,
    rng: &mut Rng,
) -> Outcome {
    let inner = usize_of(inner);
    let g = rand::<E>(rng, &[elements], 2.0);
    let u = m.ffn_gated.then(|| rand::<E>(rng, &[elements], 1.0));
    let act = |cols: &[usize], c: &mut Count| ffn_act(m.act, &g, u.as_deref(), inner, cols, c);
    let all: Vec<usize> = (0..inner).collect();
    let reference = to_f32s(&act(&all, &mut Count::default()));
    combine_parts(plan, inner, &reference, |share, c| match plan.axis {
        Axis::Columns => act(&expand(share), c),
        _ => act(&all, c),
    })
}

/// The MoE router of layer `layer` (its [`crate::model::Router`]: renormalised or not,
/// group-limited or not) on random router logits (`logits`: the op's elements × reads of them)
/// and, under group-limited routing, a random balancing bias: its top-k choice as dense weights
/// per token and expert.
fn run_topk<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    layer: Option<u32>,
    logits: [u64; 2],
    rng: &mut Rng,
) -> Outcome {
    // The router scores `reads` experts per token (MoE++'s zero-computation ones included).
    let (ne, k) = match m.moe {
        Some(x) => (usize_of(logits[1]), usize_of(x.top_k)),
        None => return Err(Unsupported::DenseModel("topk")),
    };
    let router = layer
        .and_then(|l| m.plans.get(l as usize))
        .map_or_else(Router::default, |p| p.router);
    let logits = rand::<E>(rng, &logits, 2.0);
    let bias = rng.vec(ne, 0.1);
    let dense = |c: &mut Count| {
        let r = route_with(&logits, (ne, k), router, &bias, c);
        let mut w = vec![0f32; elems(&[r.tokens(), ne])];
        for (i, &(e, x)) in r.choice.iter().enumerate() {
            w[i / k * ne + e] = x;
        }
        w
    };
    let reference = to_f32s(&to_elems::<E>(&dense(&mut Count::default())));
    combine_parts(plan, ne, &reference, |_, c| to_elems::<E>(&dense(c)))
}

/// The MoE combine: random expert outputs for a random routing, summed back per token.
fn run_moe_combine<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    elements: u64,
    rng: &mut Rng,
) -> Outcome {
    let h = usize_of(m.hidden);
    let Some(moe) = m.moe else {
        return Err(Unsupported::DenseModel("moe_combine"));
    };
    let (ne, k) = (usize_of(moe.experts), usize_of(moe.top_k));
    let t = usize_of(elements) / h;
    let logits: Vec<f32> = rng.vec(elems(&[t, ne]), 2.0);
    let r = route(&logits, ne, k, &mut Count::default());
    let outs: Vec<Vec<E>> = r
        .counts()
        .iter()
        .map(|&n| rand::<E>(rng, &[n, m.hidden], 1.0))
        .collect();
    let reference = to_f32s(&combine(&r, &outs, h, &mut Count::default()));
    combine_parts(plan, h, &reference, |_, c| combine(&r, &outs, h, c))
}

/// A constant expert's mix (MoE++) on random rows, weights per row and vector `v`.
fn run_const_mix<E: Elem>(
    plan: &PartitionPlan,
    m: &ModelSpec,
    elements: u64,
    rng: &mut Rng,
) -> Outcome {
    let h = usize_of(m.hidden);
    let x = rand::<E>(rng, &[elements], 1.0);
    let alpha = rng.vec(2 * usize_of(elements) / h.max(1), 0.5);
    let v = rng.vec(h, 1.0);
    let go = |c: &mut Count| constant_mix::<E>(&x, &alpha, &v, h, c);
    let reference = to_f32s(&go(&mut Count::default()));
    combine_parts(plan, h, &reference, |_, c| go(c))
}

/// Weight-only dequantization of a layer's `elements` weights (groups of 128), its FLOPs only.
fn run_dequant(plan: &PartitionPlan, elements: u64, rng: &mut Rng) -> Outcome {
    let n = usize_of(elements);
    let q: Vec<f32> = (0..n).map(|i| (i % 16) as f32).collect();
    let groups = n.div_ceil(128);
    let (s, z) = (rng.vec(groups, 0.1), vec![8.0; groups]);
    let go = |c: &mut Count| to_elems::<f32>(&dequantize(&q, &s, &z, 128, &mut c.flops));
    let reference = go(&mut Count::default());
    combine_parts(plan, 1, &reference, |_, c| go(c))
}
