//! Inference variants that change what a layer's attention holds and reads, or whether a
//! sublayer runs at all (issue 13): MatryoshkaKV's key and value ranks, FinerCut's sublayer
//! pruning, layer skipping, and token selection (DELTA's selection and sparse layers,
//! DeepSeek-V3.2's lightning indexer). Mixed attention spans (MASFormer) need no knob of their
//! own: they are [`Attention`] kinds chosen per layer. Each knob is a small `Copy` value in
//! [`LayerPlan::variant`]; [`Variant::default`] is the plain layer, and a layer whose knobs are
//! all neutral builds and costs exactly as the plain one does.

use serde::Serialize;

use super::plan::{Attention, LayerPlan};
use super::spec::ModelSpec;

/// A layer's variant knobs. The default is the plain layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Variant {
    /// MatryoshkaKV (arXiv 2410.14731): keys and values cached in `key` and `value` elements
    /// per head instead of `head_dim` (`None`: full rank).
    pub ranks: Option<KvRanks>,
    /// FinerCut (arXiv 2405.18218): the attention sublayer removed, with its norm,
    /// projections, attention and KV cache.
    pub attention_pruned: bool,
    /// FinerCut: the FFN sublayer (dense or MoE) removed, with its norm.
    pub ffn_pruned: bool,
    /// Layer skipping (arXiv 2404.06954): the layer runs for no token, so it writes and reads no
    /// KV; its weights stay resident (the skipped set is a run-time choice).
    pub skipped: bool,
    /// The op that scores context tokens for a later sparse read (DELTA's selection layers,
    /// DeepSeek-V3.2's indexer), when this layer has one.
    pub select: Option<Scorer>,
    /// The attention reads only the selected tokens (DELTA's sparse layers, DeepSeek-V3.2's
    /// sparse attention); the cache still holds the whole context.
    pub sparse: Option<Sparse>,
}

/// MatryoshkaKV's ranks: elements per head kept of each key and value (at most `head_dim`).
/// Values carry no RoPE, so their projection folds into `W_v` (`hidden → value` per KV head)
/// and `W_o` (`value → hidden` per query head); keys are rotated by RoPE before they are
/// projected, so the projection of each new key and query to `key` elements is an op of its
/// own (`qk_rank_proj`) with one `head_dim × key` matrix per KV head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KvRanks {
    /// Elements per head of each cached key.
    pub key: u64,
    /// Elements per head of each cached value.
    pub value: u64,
}

/// A sparse read: each query attends `kept` selected tokens, read in whole pages of `page`
/// tokens (1: token-granular), so `kept` rounded up to pages (and at most the context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Sparse {
    /// Tokens each query keeps (DeepSeek-V3.2: 2,048).
    pub kept: u64,
    /// Tokens per page read.
    pub page: u64,
}

impl Sparse {
    /// Keys a query reads and attends: the kept tokens in whole pages.
    pub fn width(self) -> u64 {
        self.kept.div_ceil(self.page.max(1)) * self.page.max(1)
    }
}

/// The token-scoring op: `heads` scoring heads of `dim` elements, each query scored against
/// every key it may attend; `own_keys`: scored against a key cache of its own (DeepSeek-V3.2's
/// indexer keys, `dim` elements per token, one for all heads), else against the layer's own
/// keys (DELTA's head-level attention scores). Per (query, key, head): the dot product (2·dim
/// FLOPs) and the weighted sum over heads (2: a multiply and an add; the ReLU or exponent is
/// not charged, as the attention's softmax is not). The top-k is comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Scorer {
    /// Scoring heads.
    pub heads: u64,
    /// Elements per scoring head.
    pub dim: u64,
    /// Whether the scorer has its own key cache.
    pub own_keys: bool,
    /// Tokens kept per query (the sparse layers' read).
    pub kept: u64,
}

impl Scorer {
    /// FLOPs per (query, key) pair.
    pub fn flops_per_pair(self) -> u64 {
        self.heads * (2 * self.dim + 2)
    }
}

impl LayerPlan {
    /// Keys a decode query at context `len` attends (and reads): its attention kind's, and
    /// under a sparse read at most the kept pages.
    pub fn decode_keys(&self, len: u64) -> u64 {
        let k = self.attention.keys(len);
        self.variant.sparse.map_or(k, |s| k.min(s.width()))
    }

    /// (query, key) pairs of a chunk of `q` new tokens after `ctx` cached: its attention
    /// kind's, and under a sparse read each query's at most the kept pages (a sparse read over
    /// full or windowed attention; the loader refuses it over chunks).
    pub fn chunk_pairs(&self, q: u64, ctx: u64) -> u64 {
        match (self.variant.sparse, self.attention) {
            (None, a) => a.pairs(q, ctx),
            (Some(s), Attention::Window { tokens }) => Attention::Window {
                tokens: tokens.min(s.width()),
            }
            .pairs(q, ctx),
            (Some(s), _) => Attention::Window { tokens: s.width() }.pairs(q, ctx),
        }
    }

    /// Whether the layer runs its attention sublayer.
    pub fn has_attention(&self) -> bool {
        !self.variant.skipped && !self.variant.attention_pruned
    }

    /// Whether the layer runs its FFN sublayer.
    pub fn has_ffn(&self) -> bool {
        !self.variant.skipped && !self.variant.ffn_pruned
    }

    /// Elements per head of each cached key and value.
    pub fn kv_dims(&self, head_dim: u64) -> (u64, u64) {
        self.variant
            .ranks
            .map_or((head_dim, head_dim), |r| (r.key, r.value))
    }
}

/// Cached elements per token of layer `l` on one device, `plain` without variants: none when
/// the layer is skipped or its attention pruned; keys and values at their ranks; and a scorer's
/// own keys.
pub(super) fn kv_elems(m: &ModelSpec, l: u32, tp: u64, plain: u64) -> u64 {
    let p = &m.plans[l as usize];
    if !p.has_attention() {
        return 0;
    }
    let kv = match (p.variant.ranks, p.mla) {
        (Some(r), None) => m.kv_heads_per_device(tp) * (r.key + r.value),
        _ => plain,
    };
    let own = p.variant.select.filter(|s| s.own_keys).map_or(0, |s| s.dim);
    kv + own
}

/// Parameters of layer `l` from its plain attention part `attn` (projections and norms) and
/// FFN part `ffn`: a pruned sublayer has none; ranks shrink `W_v` and `W_o` to the value rank
/// and add the key projections (`head_dim × key` per KV head); an indexer adds its query
/// projection (from the query's low-rank latent, or the hidden state), its key projection and
/// its per-head weights.
pub(super) fn layer_params(m: &ModelSpec, l: u32, attn: u64, ffn: u64) -> u64 {
    let p = &m.plans[l as usize];
    let (h, d, g) = (m.hidden, m.head_dim, m.kv_heads);
    let mut a = attn;
    if let (Some(r), None) = (p.variant.ranks, p.mla) {
        let cut = d.saturating_sub(r.value) * (g * h + m.heads * h);
        a = a.saturating_sub(cut) + g * d * r.key;
    }
    if let Some(s) = p.variant.select.filter(|s| s.own_keys) {
        let q_in = p.mla.and_then(|x| x.q_lora).unwrap_or(h);
        a += q_in * s.heads * s.dim + h * (s.dim + s.heads);
    }
    let a = if p.variant.attention_pruned { 0 } else { a };
    a + if p.variant.ffn_pruned { 0 } else { ffn }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_read_takes_whole_pages_and_never_more_than_the_context() {
        let s = Sparse {
            kept: 100,
            page: 16,
        };
        assert_eq!(s.width(), 112);
        let p = LayerPlan {
            variant: Variant {
                sparse: Some(s),
                ..Variant::default()
            },
            ..LayerPlan::plain(super::super::plan::Ffn::Moe)
        };
        assert_eq!((p.decode_keys(50), p.decode_keys(5000)), (50, 112));
        // Prefill of 200 tokens: Σ min(j, 112) = 112·113/2 + 88·112.
        assert_eq!(p.chunk_pairs(200, 0), 112 * 113 / 2 + 88 * 112);
    }
}
