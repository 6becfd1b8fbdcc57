//! The op graph of one iteration: a batch of decode and prefill sequences through every layer.

use std::borrow::Cow;
use std::sync::OnceLock;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::knob_ops;
use super::op::{Op, OpKind, Precision};
use super::plan::{Ffn, Mla};
use super::spec::{ModelError, ModelSpec, Moe};
use crate::work::Access::{self, Gather, Rows, Stream};

mod attend;
mod layers;
mod ulysses;

use layers::layers;

pub use ulysses::{build_iteration_sp, ulysses_bytes};

/// A prefill chunk: `q_len` new prompt tokens after `ctx` tokens already in the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrefillChunk {
    /// New prompt tokens in the chunk.
    pub q_len: u64,
    /// Tokens already in the KV cache.
    pub ctx: u64,
    /// Whether the chunk ends the prompt (and so produces a token, needing logits).
    pub last: bool,
}

/// What one iteration processes: decode sequences (by KV length) and prefill chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// KV length each decode sequence attends.
    pub decode_kv: Vec<u64>,
    /// The prefill chunks.
    pub prefill: Vec<PrefillChunk>,
}

impl Batch {
    /// `batch` sequences decoding one token each against `kv_len` cached tokens.
    pub fn decode(batch: u64, kv_len: u64) -> Self {
        Batch {
            decode_kv: vec![kv_len; batch as usize],
            prefill: Vec::new(),
        }
    }

    /// `batch` whole prompts of `prompt_len` tokens, from an empty cache.
    pub fn prefill(batch: u64, prompt_len: u64) -> Self {
        let c = PrefillChunk {
            q_len: prompt_len,
            ctx: 0,
            last: true,
        };
        Batch {
            decode_kv: Vec::new(),
            prefill: vec![c; batch as usize],
        }
    }

    /// Tokens through the dense layers this iteration.
    pub fn tokens(&self) -> u64 {
        self.decode_kv.len() as u64 + self.prefill.iter().map(|c| c.q_len).sum::<u64>()
    }

    /// Sequences that produce a token this iteration (rows of the LM head).
    pub fn logit_rows(&self) -> u64 {
        self.decode_kv.len() as u64 + self.prefill.iter().filter(|c| c.last).count() as u64
    }

    /// Whether the batch processes no token.
    pub fn is_empty(&self) -> bool {
        self.tokens() == 0
    }
}

/// How tokens are routed to experts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Balanced: `tokens × top_k` assignments spread as evenly as possible, the remainder going
    /// to the lowest-numbered experts.
    Uniform,
    /// Tokens per expert, one vector per layer (each summing to tokens × top-k).
    PerLayer(Vec<Vec<u64>>),
}

impl Routing {
    /// Balanced token counts per expert.
    pub fn uniform_counts(tokens: u64, experts: u64, top_k: u64) -> Vec<u64> {
        let total = tokens * top_k;
        let (base, rem) = (total / experts, total % experts);
        (0..experts).map(|e| base + u64::from(e < rem)).collect()
    }
}

/// The ops of one iteration as a DAG (nodes in a topological insertion order).
#[derive(Debug, Clone)]
pub struct IterationGraph {
    /// The ops; an edge runs from an op to one that must wait for it.
    pub graph: DiGraph<Op, ()>,
    /// Tokens processed (decode tokens plus prefill tokens).
    pub tokens: u64,
    /// Tokens produced (one per sequence that finishes a step).
    pub produced: u64,
    /// Tensor-parallel degree the ops are split for.
    pub tp: u64,
}

impl IterationGraph {
    /// Ops in execution order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.graph.node_weights()
    }
}

pub(super) struct Builder {
    pub(super) g: DiGraph<Op, ()>,
    p: Precision,
}

impl Builder {
    /// Appends an op after every node in `after`, returning its index.
    pub(super) fn add(
        &mut self,
        after: &[NodeIndex],
        name: impl Into<std::borrow::Cow<'static, str>>,
        layer: Option<u32>,
        kind: OpKind,
    ) -> NodeIndex {
        let n = self.g.add_node(Op::new(name, layer, kind, self.p));
        for &a in after {
            self.g.add_edge(a, n, ());
        }
        n
    }

    pub(super) fn elementwise(
        &mut self,
        after: &[NodeIndex],
        name: impl Into<std::borrow::Cow<'static, str>>,
        layer: Option<u32>,
        (elements, reads, writes, fpe): (u64, u64, u64, u64),
        access: Access,
    ) -> NodeIndex {
        let kind = OpKind::Elementwise {
            elements,
            reads,
            writes,
            flops_per_element: fpe,
            access: Some(access),
        };
        self.add(after, name, layer, kind)
    }
}

/// All-reduce of `elements` activations across `tp` devices.
fn allreduce(elements: u64, p: Precision, tp: u64) -> OpKind {
    OpKind::AllReduce {
        bytes: (elements as f64 * p.activations.bytes()).ceil() as u64,
        devices: tp,
    }
}

/// How a model replica is spread over devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    /// Tensor parallelism: weights of every layer split over `tp` devices, all-reduce after
    /// attention and FFN.
    pub tp: u64,
    /// Expert parallelism: whole experts placed on `ep` devices (expert e on device e mod ep),
    /// attention data-parallel (each device its own sequences), tokens sent to their experts and
    /// back with all-to-all. 1 = off.
    pub ep: u64,
}

/// Builds the op graph of one iteration on one device of a `tp`-way tensor-parallel group.
pub fn build_iteration(
    m: &ModelSpec,
    batch: &Batch,
    tp: u64,
    p: Precision,
    routing: &Routing,
) -> Result<IterationGraph, ModelError> {
    build_iteration_with(m, batch, Parallelism { tp, ep: 1 }, p, routing)
}

/// Builds the op graph of one iteration as device 0 of the group sees it. Under expert
/// parallelism `batch` is device 0's share of the sequences, the expert ops of every device are
/// in the graph (tagged with their device), and `Routing::PerLayer` counts are over the tokens of
/// all devices (`Routing::Uniform` assumes every device has a batch like device 0's).
pub fn build_iteration_with(
    m: &ModelSpec,
    batch: &Batch,
    par: Parallelism,
    p: Precision,
    routing: &Routing,
) -> Result<IterationGraph, ModelError> {
    check_parallelism(m, batch, par)?;
    let it = Iteration {
        m,
        batch,
        tp: par.tp,
        ep: par.ep,
        t: batch.tokens(),
        p,
        routing,
    };
    // About 16 ops and 2 edges per op per layer (a 128-expert layer grows it once or twice).
    let n = m.plans.len();
    let mut b = Builder {
        g: DiGraph::with_capacity(16 * n + 8, 32 * n + 8),
        p,
    };
    let last = b.elementwise(&[], "embedding", None, (it.t * m.hidden, 1, 1, 0), Gather);
    let last = layers(&mut b, &it, 1, last, attention_block)?;
    b.p = p;
    lm_head(&mut b, &it, last);
    Ok(IterationGraph {
        graph: b.g,
        tokens: it.t,
        produced: batch.logit_rows(),
        tp: par.tp,
    })
}

/// What every layer of one iteration shares: the model, the batch (`t` tokens), how the model
/// is spread, the precision and the routing.
#[derive(Clone, Copy)]
pub(super) struct Iteration<'a> {
    pub(super) m: &'a ModelSpec,
    batch: &'a Batch,
    pub(super) tp: u64,
    pub(super) ep: u64,
    pub(super) t: u64,
    pub(super) p: Precision,
    routing: &'a Routing,
}

/// The model is valid, splits `par.tp` ways and (under expert parallelism) its experts split
/// `par.ep` ways, and the batch has a token.
fn check_parallelism(m: &ModelSpec, batch: &Batch, par: Parallelism) -> Result<(), ModelError> {
    m.validate()?;
    check_layout(m, par)?;
    if batch.is_empty() {
        return Err(ModelError::Zero {
            field: "the batch (tokens this iteration)",
        });
    }
    Ok(())
}

/// Whether `par` splits `m`: the tensor-parallel degree its heads, vocabulary and FFN widths
/// ([`ModelSpec::check_tp`]), and under expert parallelism (with tp = 1) the experts evenly.
pub fn check_layout(m: &ModelSpec, par: Parallelism) -> Result<(), ModelError> {
    let (tp, ep) = (par.tp, par.ep);
    m.check_tp(tp)?;
    // Dense layers of an expert-parallel model (a one-layer template, or GLaM's dense layers)
    // are data-parallel: nothing to check for them.
    if ep > 1 && (tp != 1 || m.moe.is_some_and(|x| x.experts % ep != 0)) {
        return Err(ModelError::Ep {
            ep,
            tp,
            experts: m.moe.map_or(0, |x| x.experts),
        });
    }
    Ok(())
}

/// One GEMM `[m,k]·[k,n]`.
fn gemm(m: u64, n: u64, k: u64) -> OpKind {
    OpKind::Gemm { m, n, k, batch: 1 }
}

/// Layer `l`'s attention: norm, QKV projection, RoPE, the attention ops, the output projection,
/// and the all-reduce under tensor parallelism. Returns the last op.
fn attention_block(b: &mut Builder, it: &Iteration, l: u32, last: NodeIndex) -> NodeIndex {
    let (m, t, tp) = (it.m, it.t, it.tp);
    let layer = Some(l);
    let (h, d) = (m.hidden, m.head_dim);
    let (hq, g) = (m.heads_per_device(tp), m.kv_heads_per_device(tp));
    // Fused residual add + RMSNorm: reads x and the residual, writes both. 5 FLOPs per
    // element: the add, the square, its sum, the scale by 1/rms and the gain.
    let mut last = b.elementwise(&[last], "attn_norm", layer, (t * h, 2, 2, 5), Rows(h));
    if let Some(a) = m.plans[l as usize].mla {
        last = mla_ops(b, it, l, a, last);
        if tp > 1 {
            last = b.add(&[last], "attn_allreduce", layer, allreduce(t * h, it.p, tp));
        }
        return last;
    }
    // Values at their MatryoshkaKV rank (its projection folded into W_v and W_o).
    let dv = m.plans[l as usize].kv_dims(d).1;
    last = b.add(
        &[last],
        "qkv_proj",
        layer,
        gemm(t, (hq + g) * d + g * dv, h),
    );
    if m.plans[l as usize].qk_norm {
        // RMSNorm of each query and key head: the square, its sum, the scale and the gain.
        let norm = (t * (hq + g) * d, 1, 1, 4);
        last = b.elementwise(&[last], "qk_norm", layer, norm, Rows(d));
    }
    let rope = (t * (hq + g) * d, 1, 1, 3);
    last = b.elementwise(&[last], "rope", layer, rope, Rows((hq + g) * d));
    last = attend::rank_proj(b, it, l, last);
    last = attend::select(b, it, l, last);
    let attn = attend::attention_ops(b, it, l, last);
    last = b.add(&attn, "o_proj", layer, gemm(t, h, hq * dv));
    if tp > 1 {
        last = b.add(&[last], "attn_allreduce", layer, allreduce(t * h, it.p, tp));
    }
    if m.plans[l as usize].post_norms {
        // Gemma-2's norm of the attention's output (on the whole sum, after the all-reduce).
        last = b.elementwise(&[last], "post_attn_norm", layer, (t * h, 1, 1, 4), Rows(h));
    }
    last
}

/// Layer `l`'s latent attention (DeepSeek MLA) after its norm: the query (through its low-rank
/// projection when it has one), the latent and RoPE key (replicated on every TP rank), RoPE;
/// prefill in the expanded form (the latents of every key up-projected to per-head keys and
/// values), decode in the absorbed form (W_UK folded into the query, W_UV after attention, the
/// cache read as it is); the output projection. Returns the last op.
fn mla_ops(b: &mut Builder, it: &Iteration, l: u32, a: Mla, last: NodeIndex) -> NodeIndex {
    let (m, t, batch, layer) = (it.m, it.t, it.batch, Some(l));
    let (h, hq) = (m.hidden, m.heads_per_device(it.tp));
    let qk = a.nope + a.rope;
    let q = match a.q_lora {
        Some(r) => {
            let down = b.add(&[last], "q_a_proj", layer, gemm(t, r, h));
            let norm = b.elementwise(&[down], "q_a_norm", layer, (t * r, 1, 1, 4), Rows(r));
            b.add(&[norm], "q_b_proj", layer, gemm(t, hq * qk, r))
        }
        None => b.add(&[last], "q_proj", layer, gemm(t, hq * qk, h)),
    };
    let kv = b.add(&[last], "kv_a_proj", layer, gemm(t, a.cache_elems(), h));
    let n = a.latent;
    let kv = b.elementwise(&[kv], "kv_a_norm", layer, (t * n, 1, 1, 4), Rows(n));
    let rope = (t * (hq + 1) * a.rope, 1, 1, 3);
    let roped = b.elementwise(&[q, kv], "rope", layer, rope, Rows((hq + 1) * a.rope));
    let roped = attend::select(b, it, l, roped);
    let (plan, window) = (m.plans[l as usize], m.plans[l as usize].attention);
    let mut outs = Vec::new();
    let mla = |absorbed, seqs: u64, q_tokens, kv_tokens, attended| OpKind::AttnMla {
        absorbed,
        seqs,
        q_tokens,
        kv_tokens,
        attended,
        heads: hq,
        latent: a.latent,
        nope: a.nope,
        rope: a.rope,
        v: a.v,
    };
    if !batch.prefill.is_empty() {
        let c = &batch.prefill;
        let keys: u64 = c.iter().map(|c| window.keys_read(c.q_len, c.ctx)).sum();
        let up = gemm(keys, hq * (a.nope + a.v), a.latent);
        let up = b.add(&[roped], "kv_b_proj", layer, up);
        let kind = mla(
            false,
            c.len() as u64,
            c.iter().map(|c| c.q_len).sum(),
            keys,
            c.iter().map(|c| plan.chunk_pairs(c.q_len, c.ctx)).sum(),
        );
        outs.push(b.add(&[up], "attn_prefill", layer, kind));
    }
    if !batch.decode_kv.is_empty() {
        let n = batch.decode_kv.len() as u64;
        let absorb = OpKind::Gemm {
            m: n,
            n: a.latent,
            k: a.nope,
            batch: hq,
        };
        let q_abs = b.add(&[roped], "q_absorb", layer, absorb);
        let kv_tokens: u64 = batch.decode_kv.iter().map(|&kv| plan.decode_keys(kv)).sum();
        let attn = b.add(
            &[q_abs],
            "attn_decode",
            layer,
            mla(true, n, n, kv_tokens, kv_tokens),
        );
        let v_up = OpKind::Gemm {
            m: n,
            n: a.v,
            k: a.latent,
            batch: hq,
        };
        outs.push(b.add(&[attn], "v_up", layer, v_up));
    }
    b.add(&outs, "o_proj", layer, gemm(t, h, hq * a.v))
}

/// Layer `l`'s FFN: norm, then the dense FFN or (in an MoE layer) the experts, and the
/// all-reduce under tensor parallelism. Returns the last op.
fn ffn_block(
    b: &mut Builder,
    it: &Iteration,
    l: u32,
    last: NodeIndex,
) -> Result<NodeIndex, ModelError> {
    let (m, t, tp) = (it.m, it.t, it.tp);
    let layer = Some(l);
    let h = m.hidden;
    let mut last = b.elementwise(&[last], "ffn_norm", layer, (t * h, 2, 2, 5), Rows(h));
    last = match (m.plans[l as usize].ffn, m.moe) {
        (Ffn::Moe, Some(moe)) => moe_ffn(b, it, l, moe, last)?,
        (Ffn::Dense { intermediate }, _) => dense_ffn(b, it, layer, intermediate, last),
        (Ffn::Moe, None) => {
            return Err(ModelError::Zero {
                field: "num_local_experts (a layer is MoE)",
            });
        }
    };
    if tp > 1 {
        last = b.add(&[last], "ffn_allreduce", layer, allreduce(t * h, it.p, tp));
    }
    if m.plans[l as usize].post_norms {
        last = b.elementwise(&[last], "post_ffn_norm", layer, (t * h, 1, 1, 4), Rows(h));
    }
    Ok(last)
}

/// The dense FFN of inner size `inner`: up (with the gate, if gated) projection, activation,
/// down projection.
fn dense_ffn(
    b: &mut Builder,
    it: &Iteration,
    layer: Option<u32>,
    inner: u64,
    last: NodeIndex,
) -> NodeIndex {
    let (m, t) = (it.m, it.t);
    let h = m.hidden;
    let i = inner / it.tp;
    let fpe = m.act.ffn_flops(m.ffn_gated);
    let act = if m.ffn_gated {
        let up = b.add(&[last], "gate_up_proj", layer, gemm(t, 2 * i, h));
        b.elementwise(&[up], "act", layer, (t * i, 2, 1, fpe), Rows(i))
    } else {
        let up = b.add(&[last], "up_proj", layer, gemm(t, i, h));
        b.elementwise(&[up], "act", layer, (t * i, 1, 1, fpe), Rows(i))
    };
    b.add(&[act], "down_proj", layer, gemm(t, h, i))
}

/// An MoE FFN: router and top-k, the dispatch all-to-all under expert parallelism, one op per
/// expert that receives tokens, the combine all-to-all, and the weighted sum.
fn moe_ffn(
    b: &mut Builder,
    it: &Iteration,
    l: u32,
    moe: Moe,
    last: NodeIndex,
) -> Result<NodeIndex, ModelError> {
    let (t, ep, h) = (it.t, it.ep, it.m.hidden);
    let layer = Some(l);
    let plan = it.m.plans[l as usize];
    let scored = knob_ops::scored_experts(&plan, &moe);
    let router = b.add(&[last], "router", layer, gemm(t, scored, h));
    let gate = plan.router.gate_flops(scored, moe.top_k);
    let mut topk = b.elementwise(&[router], "topk", layer, (t, scored, 0, gate), Rows(1));
    let counts = match it.routing {
        Routing::Uniform => knob_ops::uniform_counts(&plan, &moe, t * ep),
        Routing::PerLayer(v) => v.get(l as usize).cloned().ok_or(ModelError::Zero {
            field: "routing (a layer has no expert token counts)",
        })?,
    };
    if counts.len() < scored as usize {
        return Err(ModelError::Zero {
            field: "routing (a layer has fewer expert counts than scored experts)",
        });
    }
    let a2a = knob_ops::all_to_all(it, &plan, &moe, &counts);
    if ep > 1 {
        topk = b.add(&[topk], "moe_dispatch", layer, a2a.clone());
    }
    let ffn_counts = &counts[..moe.experts as usize];
    let mut experts = expert_ops(b, it, layer, &moe, ffn_counts, topk);
    if let Some(d) = plan.expert_weights {
        // The routed experts' weights in their own type (gpt-oss's MXFP4); the rest of the
        // layer, the shared expert included, in the run's.
        for &n in &experts {
            b.g[n].precision.weights = d;
        }
    }
    if ep > 1 {
        experts = vec![b.add(&experts, "moe_combine_a2a", layer, a2a)];
    }
    let zc = (layer, &plan, &moe);
    experts.extend(knob_ops::constant_experts(b, it, zc, &counts, topk));
    // Weighted sum of each token's top-k expert outputs.
    let combined = b.elementwise(
        &experts,
        "moe_combine",
        layer,
        (t * h, moe.top_k, 1, 2 * moe.top_k),
        Rows(h),
    );
    let Some(shared) = moe.shared else {
        return Ok(combined);
    };
    // The shared expert runs on every token of this device (data-parallel under expert
    // parallelism, split by columns under tensor parallelism) beside the routed ones.
    let kind = OpKind::ExpertFfn {
        expert: moe.experts,
        tokens: t,
        hidden: h,
        inner: shared.intermediate / it.tp,
        gated: it.m.ffn_gated,
        act: it.m.act,
    };
    let mut out = b.add(&[last], "shared_expert", layer, kind);
    if shared.sigmoid_gate {
        // sigmoid(x · w), one value per token, scales the shared expert's output (1 FLOP per
        // element; the t sigmoids are left out).
        let gate = b.add(&[last], "shared_gate", layer, gemm(t, 1, h));
        let scale = (t * h, 1, 1, 1);
        out = b.elementwise(&[out, gate], "shared_scale", layer, scale, Stream);
    }
    // The routed and shared outputs added.
    let add = (t * h, 2, 1, 1);
    Ok(b.elementwise(&[combined, out], "shared_add", layer, add, Stream))
}

/// One op per expert with tokens (`counts[e]` of them), after `topk`, on device `e mod ep`.
fn expert_ops(
    b: &mut Builder,
    it: &Iteration,
    layer: Option<u32>,
    moe: &Moe,
    counts: &[u64],
    topk: NodeIndex,
) -> Vec<NodeIndex> {
    let mut experts = Vec::new();
    for (e, &tokens) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let kind = OpKind::ExpertFfn {
            expert: e as u64,
            tokens,
            hidden: it.m.hidden,
            inner: moe.intermediate / it.tp,
            gated: it.m.ffn_gated,
            act: it.m.act,
        };
        let n = b.add(&[topk], expert_name(e), layer, kind);
        b.g[n].device = (e as u64 % it.ep) as u32;
        experts.push(n);
    }
    experts
}

/// Expert `e`'s op name, `expert_{e}`: borrowed from names made once for the first 1,024
/// (an iteration of a skewed-routing run builds every layer's experts).
fn expert_name(e: usize) -> Cow<'static, str> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| (0..1024).map(|e| format!("expert_{e}")).collect());
    match names.get(e) {
        Some(name) => Cow::Borrowed(name.as_str()),
        None => Cow::Owned(format!("expert_{e}")),
    }
}

/// The final norm and the LM head, on the rows that produce a token.
fn lm_head(b: &mut Builder, it: &Iteration, last: NodeIndex) {
    let (m, h) = (it.m, it.m.hidden);
    let rows = it.batch.logit_rows();
    let last = b.elementwise(&[last], "final_norm", None, (rows * h, 2, 1, 5), Rows(h));
    let kind = OpKind::Gemm {
        m: rows,
        n: m.vocab / it.tp,
        k: h,
        batch: 1,
    };
    let head = b.add(&[last], "lm_head", None, kind);
    if m.logit_softcap {
        // c · tanh(x / c) on each logit: the divide, the tanh and the multiply.
        b.elementwise(
            &[head],
            "logit_softcap",
            None,
            (rows * m.vocab / it.tp, 1, 1, 3),
            Stream,
        );
    }
}
