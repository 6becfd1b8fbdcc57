//! A layer's attention ops over the batch, with the variants that change them: a sparse read
//! over selected tokens and the op that scores them (DELTA, DeepSeek-V3.2's indexer), and
//! attention at MatryoshkaKV's ranks with the projection of each new query and key.

use petgraph::graph::NodeIndex;

use super::{Builder, Iteration, gemm};
use crate::model::{LowRankShape, OpKind, ScoreShape};

/// MatryoshkaKV's projection of the new queries and keys, after RoPE, to the key rank: per KV
/// head one `head_dim × key` matrix for its group's query heads and its key
/// (`t · (hq/g + 1)` rows). Values need none (folded into `W_v`). Returns `last` without ranks.
pub(super) fn rank_proj(b: &mut Builder, it: &Iteration, l: u32, last: NodeIndex) -> NodeIndex {
    let (m, t) = (it.m, it.t);
    let Some(r) = m.plans[l as usize].variant.ranks else {
        return last;
    };
    let (hq, g) = (m.heads_per_device(it.tp), m.kv_heads_per_device(it.tp));
    let kind = OpKind::Gemm {
        m: t * (hq / g + 1),
        n: r.key,
        k: m.head_dim,
        batch: g,
    };
    b.add(&[last], "qk_rank_proj", Some(l), kind)
}

/// The token-scoring op of a selection layer (with a scorer of its own keys, first its query
/// projection and its key-and-weights projection), scoring every key each query may attend.
/// Returns `last` when the layer scores nothing.
pub(super) fn select(b: &mut Builder, it: &Iteration, l: u32, last: NodeIndex) -> NodeIndex {
    let (m, t, batch, layer) = (it.m, it.t, it.batch, Some(l));
    let plan = m.plans[l as usize];
    let Some(s) = plan.variant.select else {
        return last;
    };
    let (a, mut after) = (plan.attention, last);
    let kv_heads = if s.own_keys {
        let q_in = plan.mla.and_then(|x| x.q_lora).unwrap_or(m.hidden);
        let q = b.add(
            &[last],
            "index_q_proj",
            layer,
            gemm(t, s.heads * s.dim, q_in),
        );
        let k = gemm(t, s.dim + s.heads, m.hidden);
        after = b.add(&[q], "index_k_proj", layer, k);
        1
    } else {
        m.kv_heads_per_device(it.tp)
    };
    let decode: u64 = batch.decode_kv.iter().map(|&kv| a.keys(kv)).sum();
    let keys: u64 = batch
        .prefill
        .iter()
        .map(|c| a.keys_read(c.q_len, c.ctx))
        .sum();
    let pairs: u64 = batch.prefill.iter().map(|c| a.pairs(c.q_len, c.ctx)).sum();
    let kind = OpKind::TokenScore(ScoreShape {
        q_tokens: t,
        keys_read: decode + keys,
        pairs: decode + pairs,
        kept: s.kept,
        heads: if s.own_keys {
            s.heads
        } else {
            m.heads_per_device(it.tp)
        },
        kv_heads,
        dim: s.dim,
        own_keys: s.own_keys,
    });
    b.add(&[after], "token_score", layer, kind)
}

/// The attention ops of layer `l` after `last`: one over the prefill chunks and one over the
/// decode sequences, each when the batch has some. The layer's attention kind bounds the keys
/// each query attends and reads, and a sparse read bounds them to the kept pages (a prefill
/// chunk still reads its whole context once); with ranks the products run over them.
pub(super) fn attention_ops(
    b: &mut Builder,
    it: &Iteration,
    l: u32,
    last: NodeIndex,
) -> Vec<NodeIndex> {
    let (m, batch, layer) = (it.m, it.batch, Some(l));
    let plan = m.plans[l as usize];
    let d = m.head_dim;
    let (hq, g) = (m.heads_per_device(it.tp), m.kv_heads_per_device(it.tp));
    let ranked = |seqs, q_tokens, kv_tokens, attended, plain: OpKind| match plan.variant.ranks {
        None => plain,
        Some(r) => OpKind::AttnLowRank(LowRankShape {
            seqs,
            q_tokens,
            kv_tokens,
            attended,
            heads: hq,
            kv_heads: g,
            key_dim: r.key,
            value_dim: r.value,
        }),
    };
    let mut attn = Vec::new();
    if !batch.prefill.is_empty() {
        let c = &batch.prefill;
        let (seqs, q_tokens) = (c.len() as u64, c.iter().map(|c| c.q_len).sum());
        let kv_tokens = c
            .iter()
            .map(|c| plan.attention.keys_read(c.q_len, c.ctx))
            .sum();
        let attended = c.iter().map(|c| plan.chunk_pairs(c.q_len, c.ctx)).sum();
        let plain = OpKind::AttnPrefill {
            seqs,
            q_tokens,
            kv_tokens,
            attended,
            heads: hq,
            kv_heads: g,
            head_dim: d,
        };
        let kind = ranked(seqs, q_tokens, kv_tokens, attended, plain);
        attn.push(b.add(&[last], "attn_prefill", layer, kind));
    }
    if !batch.decode_kv.is_empty() {
        let seqs = batch.decode_kv.len() as u64;
        let kv_tokens = batch.decode_kv.iter().map(|&kv| plan.decode_keys(kv)).sum();
        let plain = OpKind::AttnDecode {
            seqs,
            kv_tokens,
            heads: hq,
            kv_heads: g,
            head_dim: d,
        };
        let kind = ranked(seqs, seqs, kv_tokens, kv_tokens, plain);
        attn.push(b.add(&[last], "attn_decode", layer, kind));
    }
    attn
}
