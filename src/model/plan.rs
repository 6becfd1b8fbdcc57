//! Per-layer plans: what one decoder layer is (its attention kind, latent attention, norms,
//! sinks, FFN kind, expert weight type and router), and the closed-form counts of each
//! attention kind.

use serde::Serialize;

use super::knobs::Knobs;
use super::variants::Variant;
use crate::work::Dtype;

/// How a layer's attention sees its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attention {
    /// Every query attends every earlier token; the layer's KV cache holds the whole context.
    Full,
    /// Sliding window (Mistral's `sliding_window`): a query attends the last `tokens` tokens,
    /// itself included, and the layer needs KV for those only.
    Window {
        /// Tokens in the window.
        tokens: u64,
    },
    /// Chunked local attention (Llama-4's `attention_chunk_size`): the sequence is cut into
    /// chunks of `tokens` positions, a query attends only the earlier tokens of its own chunk,
    /// itself included, and the layer needs KV for the current chunk only.
    Chunk {
        /// Positions per chunk.
        tokens: u64,
    },
}

/// Number of (query, key) pairs a causal chunk of `q` new tokens after `ctx` cached ones attends:
/// the i-th new token (1-based) sees `ctx + i` keys.
pub fn causal_pairs(q: u64, ctx: u64) -> u64 {
    q * ctx + q * (q + 1) / 2
}

/// Σ over positions `p` in `0..n` of `(p mod c) + 1`: the keys attended by the first `n`
/// queries of a sequence under chunks of `c`.
fn chunked_prefix(n: u64, c: u64) -> u64 {
    let (whole, r) = (n / c, n % c);
    whole * (c * (c + 1) / 2) + r * (r + 1) / 2
}

impl Attention {
    /// Keys a query at context length `len` (itself included) attends, and the tokens of a
    /// `len`-token sequence the layer's KV cache must hold.
    pub fn keys(self, len: u64) -> u64 {
        match self {
            Attention::Full => len,
            Attention::Window { tokens } => len.min(tokens),
            // The query at position len - 1 sees its chunk from its start to itself.
            Attention::Chunk { tokens } if len > 0 => (len - 1) % tokens + 1,
            Attention::Chunk { .. } => 0,
        }
    }

    /// (query, key) pairs a chunk of `q` new tokens after `ctx` cached ones attends: the i-th
    /// new token (1-based) sees `keys(ctx + i)` keys.
    pub fn pairs(self, q: u64, ctx: u64) -> u64 {
        let w = match self {
            Attention::Full => return causal_pairs(q, ctx),
            Attention::Chunk { tokens: c } => {
                return chunked_prefix(ctx + q, c) - chunked_prefix(ctx, c);
            }
            Attention::Window { tokens: w } => w,
        };
        // Σ min(j, w) for j = ctx + 1 ..= ctx + q: the part below the window, then w per token.
        let (a, b) = (ctx + 1, ctx + q);
        let below = b.min(w).saturating_sub(a - 1);
        let under = if below > 0 {
            let top = a + below - 1;
            (a + top) * below / 2
        } else {
            0
        };
        under + (q - below) * w
    }

    /// Keys the chunk reads, over all its queries: the context and the new tokens, in a window
    /// the last `w - 1` context tokens and the new ones, and under chunked attention the
    /// context from the start of the first query's chunk and the new ones.
    pub fn keys_read(self, q: u64, ctx: u64) -> u64 {
        match self {
            Attention::Full => ctx + q,
            Attention::Window { tokens: w } => (ctx + q).min(q + w - 1),
            Attention::Chunk { tokens: c } => ctx % c + q,
        }
    }

    /// The window or chunk length, when the attention has one.
    pub fn span(self) -> Option<u64> {
        match self {
            Attention::Full => None,
            Attention::Window { tokens } | Attention::Chunk { tokens } => Some(tokens),
        }
    }
}

/// A layer's FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ffn {
    /// One FFN of inner size `intermediate` for every token.
    Dense {
        /// The FFN's inner size.
        intermediate: u64,
    },
    /// The model's experts ([`ModelSpec::moe`]), `top_k` per token.
    Moe,
}

/// Multi-head latent attention (DeepSeek-V2/V3): keys and values come from one latent per token
/// of `latent` elements (`kv_lora_rank`) plus a decoupled RoPE key of `rope` elements shared by
/// the heads, so the cache holds `latent + rope` elements per token and layer, the same on every
/// tensor-parallel rank (there are no KV heads to split). Each head's query and key have `nope`
/// (`qk_nope_head_dim`) plus `rope` elements, its value `v` (`v_head_dim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Mla {
    /// Rank of the query's low-rank projection (`q_lora_rank`; `None`: a full query projection).
    pub q_lora: Option<u64>,
    /// Latent elements per token (`kv_lora_rank`).
    pub latent: u64,
    /// Query and key elements per head without RoPE (`qk_nope_head_dim`).
    pub nope: u64,
    /// RoPE elements of the query per head and of the shared key (`qk_rope_head_dim`).
    pub rope: u64,
    /// Value elements per head (`v_head_dim`).
    pub v: u64,
}

impl Mla {
    /// Cached elements per token and layer: the latent and the RoPE key.
    pub fn cache_elems(&self) -> u64 {
        self.latent + self.rope
    }
}

/// How an MoE layer's router picks each token's experts, after the router's GEMM has given
/// each token one logit per expert. Its FLOPs per token are [`Router::gate_flops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Router {
    /// The chosen experts' weights renormalised to sum to one (`norm_topk_prob`; a softmax
    /// over the top-k, as Mixtral and gpt-oss take, is the same cost); otherwise they are the
    /// scores as computed (OLMoE, Qwen2-MoE, DeepSeek-V2-Lite).
    pub norm_topk: bool,
    /// Group-limited routing (DeepSeek-V3's `n_group`, `topk_group`), when the experts are
    /// grouped.
    pub groups: Option<GroupLimit>,
}

impl Default for Router {
    /// Renormalised top-k over all experts.
    fn default() -> Self {
        Router {
            norm_topk: true,
            groups: None,
        }
    }
}

impl Router {
    /// FLOPs per token of the gate over `experts` logits choosing `top_k`, counted as the
    /// reference kernel ([`crate::kernels`]) counts: additions, multiplications, divisions and
    /// exponentials on tensor elements, no comparisons, no per-row scalar.
    /// - Scores: 4 per expert (softmax: subtract the max, exp, accumulate, scale by 1/sum;
    ///   DeepSeek-V3's sigmoid: negate, exp, add one, divide).
    /// - Group-limited routing: 1 per expert (the balancing bias added to each score), and
    ///   per group one add summing its two best biased scores (none in a group of one); the
    ///   best groups, the masking of the others and the top-k are comparisons and selections.
    /// - Renormalisation (`norm_topk`): 2 per chosen expert (accumulate the sum, scale by
    ///   1/sum).
    ///
    /// Mixtral (8 experts, top 2): 4·8 + 2·2 = 36; DeepSeek-V3 (256 experts in 8 groups, top 8):
    /// 4·256 + 256 + 8 + 2·8 = 1304; OLMoE (64, top 8, not renormalised): 256.
    pub fn gate_flops(self, experts: u64, top_k: u64) -> u64 {
        let norm = if self.norm_topk { 2 * top_k } else { 0 };
        let groups = self.groups.map_or(0, |g| {
            let per_group = experts / g.groups.max(1);
            experts + g.groups * per_group.min(2).saturating_sub(1)
        });
        4 * experts + groups + norm
    }
}

/// Group-limited routing (DeepSeek-V3's `noaux_tc`): the experts are cut into `groups` equal
/// groups; a learned per-expert bias (`e_score_correction_bias`, the auxiliary-loss-free load
/// balancing) is added to each score for choosing only; each group is scored by the sum of its
/// two best biased scores, and a token's top-k experts are chosen by biased score from its
/// `top_groups` best groups only, weighted by their unbiased scores (DeepSeek-V3: 8 groups,
/// 4 kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GroupLimit {
    /// Groups of experts (`n_group`).
    pub groups: u64,
    /// Groups a token's experts may come from (`topk_group`).
    pub top_groups: u64,
}

/// What one decoder layer is: its attention and its FFN. Layers with equal plans cost alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LayerPlan {
    /// How its attention sees the context.
    pub attention: Attention,
    /// Latent attention in place of the model's query/KV heads (`None`: MHA, GQA or MQA).
    pub mla: Option<Mla>,
    /// RMSNorm over each query and key head before RoPE (Qwen3, OLMoE), an op of its own.
    pub qk_norm: bool,
    /// RMSNorms on the attention's and the FFN's outputs too (Gemma-2's sandwich norms).
    pub post_norms: bool,
    /// A learned logit per query head added to each softmax's denominator (gpt-oss's attention
    /// sinks): one parameter per head, and one exp and add per (query, head) row inside the
    /// attention kernel, uncharged beside its 4·d FLOPs per attended key, as the softmax is.
    pub sinks: bool,
    /// Its FFN.
    pub ffn: Ffn,
    /// The element type its routed experts' weights are stored in, when it differs from the
    /// run's weight type (gpt-oss's MXFP4 experts); the experts' GEMMs then read these bytes
    /// and compute in the activations' type.
    pub expert_weights: Option<Dtype>,
    /// How its router picks experts (an MoE layer's).
    pub router: Router,
    // --- Issue 13's attention and layer variants (src/model/variants.rs). ---
    /// Its MatryoshkaKV ranks, pruned sublayers, skipping and token selection ([`Variant`];
    /// the default is the plain layer).
    pub variant: Variant,
    /// The seed papers' variants (MoE++, top-p routing, per-layer precision, dropped image
    /// tokens), all off in a plain layer.
    #[serde(skip_serializing_if = "Knobs::is_neutral")]
    pub knobs: Knobs,
}

impl LayerPlan {
    /// A layer of full attention and `ffn`, with none of the variants.
    pub fn plain(ffn: Ffn) -> LayerPlan {
        LayerPlan {
            attention: Attention::Full,
            mla: None,
            qk_norm: false,
            post_norms: false,
            sinks: false,
            ffn,
            expert_weights: None,
            router: Router::default(),
            variant: Variant::default(),
            knobs: Knobs::default(),
        }
    }

    /// `layers` plans of full attention in a repeating pattern: with experts every
    /// `moe_period`-th layer MoE (1: all; 2: every other, as GLaM), the others dense of inner
    /// size `intermediate`.
    pub fn periodic(layers: u32, intermediate: u64, moe_period: Option<u32>) -> Vec<LayerPlan> {
        (0..layers)
            .map(|l| {
                LayerPlan::plain(match moe_period {
                    Some(p) if l % p.max(1) == p.max(1) - 1 => Ffn::Moe,
                    _ => Ffn::Dense { intermediate },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_pairs_is_triangular() {
        assert_eq!(causal_pairs(4, 0), 1 + 2 + 3 + 4);
        assert_eq!(causal_pairs(2, 10), 11 + 12);
    }

    #[test]
    fn gate_flops_count_scores_bias_group_sums_and_renormalisation() {
        // Mixtral: 8 softmax scores at 4 FLOPs, 2 renormalised weights at 2.
        assert_eq!(Router::default().gate_flops(8, 2), 4 * 8 + 2 * 2);
        // OLMoE: the 64 scores only, the chosen weights left as scored.
        let plain = Router {
            norm_topk: false,
            groups: None,
        };
        assert_eq!(plain.gate_flops(64, 8), 4 * 64);
        // DeepSeek-V3: 256 sigmoids, 256 bias adds, one add per group of 32, 8 renormalised.
        let v3 = Router {
            norm_topk: true,
            groups: Some(GroupLimit {
                groups: 8,
                top_groups: 4,
            }),
        };
        assert_eq!(v3.gate_flops(256, 8), 1024 + 256 + 8 + 16);
        // Groups of one expert: nothing to sum.
        let ones = Router {
            groups: Some(GroupLimit {
                groups: 4,
                top_groups: 2,
            }),
            ..v3
        };
        assert_eq!(ones.gate_flops(4, 2), 16 + 4 + 4);
    }
}
