//! A model's memory on one device: weights, activations and KV cache under a parallel layout.
//!
//! The one place that sizes them: `dyad run` checks that a batch fits, and the serving
//! simulator sizes its KV-cache pool, with the same numbers.

use super::{ModelSpec, Parallelism, Precision};
use crate::units::Bytes;

/// One device's share of a model's memory under a [`Parallelism`].
///
/// Under tensor parallelism each device holds a 1/tp slice of every weight and of the KV heads
/// (at least one head); under expert parallelism it holds the attention and dense weights whole
/// and 1/ep of the experts, and the KV cache of the group is pooled (1/ep of it per device).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Weights on one device.
    pub weights: Bytes,
    /// KV-cache bytes of one token over all layers on one device of the TP group (before the
    /// expert-parallel pooling).
    kv_token_here: f64,
    /// Expert-parallel degree: the pooled KV cache is spread over this many devices.
    ep: u64,
    tp: u64,
    /// Element type of the KV cache.
    kv_dtype: crate::work::Dtype,
}

impl Footprint {
    /// Sizes `m` at precision `p` split as `par`.
    pub fn new(m: &ModelSpec, par: Parallelism, p: Precision) -> Self {
        // Routed experts at their layers' element type (gpt-oss's MXFP4), the rest at `p`'s.
        let (dense, experts) = m.weight_bytes(p.weights);
        let weights = if par.ep > 1 {
            dense + experts / par.ep as f64
        } else {
            (dense + experts) / par.tp as f64
        };
        Footprint {
            weights: Bytes(weights),
            kv_token_here: m.kv_bytes_per_token_tp(p.kv, par.tp),
            ep: par.ep,
            tp: par.tp,
            kv_dtype: p.kv,
        }
    }

    /// Two models on the same devices (a target and its speculative draft, split alike): their
    /// weights and their KV bytes per token summed.
    pub fn with(self, other: &Footprint) -> Self {
        Footprint {
            weights: Bytes(self.weights.0 + other.weights.0),
            kv_token_here: self.kv_token_here
                + other.kv_token_here * self.ep as f64 / other.ep as f64,
            ..self
        }
    }

    /// KV-cache bytes one device holds for `tokens` tokens of context in every layer (what a
    /// paged cache allocates per token).
    pub fn kv(&self, tokens: u64) -> Bytes {
        Bytes(self.kv_token_here * tokens as f64 / self.ep as f64)
    }

    /// KV-cache bytes one device holds for sequences of lengths `lens` of `m`, layer by layer:
    /// the whole context in full-attention layers, the window in sliding-window ones.
    pub fn kv_held(&self, m: &ModelSpec, lens: impl IntoIterator<Item = u64>) -> Bytes {
        let all: f64 = lens
            .into_iter()
            .map(|len| m.kv_bytes_held(len, self.kv_dtype, self.tp))
            .sum();
        Bytes(all / self.ep as f64)
    }

    /// Activation memory one device reserves for an iteration of at most `max_tokens` tokens
    /// and `max_batch` sequences: the widest per-token tensors of a layer (residual and norms,
    /// the attention's projections, the FFN's gate, up and product) and the fp32 logits of the
    /// sequences that produce a token.
    pub fn activations(
        &self,
        m: &ModelSpec,
        p: Precision,
        max_tokens: u64,
        max_batch: u64,
    ) -> Bytes {
        let tp = self.tp;
        let inner = (0..m.layers()).map(|l| m.ffn_inner(l)).max().unwrap_or(0) / tp;
        let attn = (0..m.layers())
            .map(|l| attention_width(m, l, tp))
            .max()
            .unwrap_or(0);
        let per_token = (4 * m.hidden + attn + 3 * inner) as f64 * p.activations.bytes();
        Bytes(max_tokens as f64 * per_token + (max_batch * m.vocab / tp) as f64 * 4.0)
    }

    /// KV-cache blocks of `block` tokens that fit in `usable` bytes beside the weights and
    /// `activations`; `None` when the room left does not exceed one block.
    pub fn kv_blocks(&self, usable: Bytes, activations: Bytes, block: u64) -> Option<u64> {
        let room = usable.0 - self.weights.0 - activations.0;
        let per_block = self.kv(1).0 * block as f64;
        (room > per_block).then(|| (room / per_block) as u64)
    }
}

/// Elements per token of layer `l`'s attention projections on one device: Q, K and V of its
/// heads; under latent attention the query (`nope + rope` per head), the latent and RoPE key,
/// and the wider of the expanded keys and values (`nope + v` per head, prefill) and the
/// absorbed query (`latent` per head, decode).
fn attention_width(m: &ModelSpec, l: u32, tp: u64) -> u64 {
    let hq = m.heads_per_device(tp);
    match m.plans[l as usize].mla {
        None => (hq + 2 * m.kv_heads_per_device(tp)) * m.head_dim,
        Some(a) => hq * (a.nope + a.rope) + a.cache_elems() + hq * (a.nope + a.v).max(a.latent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::Dtype;

    use crate::model::spec::tests::mixtral;

    #[test]
    fn tensor_parallel_splits_weights_and_kv_heads() {
        let m = mixtral();
        let p = Precision::uniform(Dtype::Bf16);
        let one = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, p);
        let two = Footprint::new(&m, Parallelism { tp: 2, ep: 1 }, p);
        assert_eq!(one.weights.0, m.params() as f64 * 2.0);
        assert_eq!(two.weights.0, one.weights.0 / 2.0);
        // K and V × 32 layers × 8 KV heads × 128 × 2 bytes (bf16).
        assert_eq!(one.kv(1).0, 2.0 * 32.0 * 8.0 * 128.0 * 2.0);
        assert_eq!(two.kv(10).0, one.kv(10).0 / 2.0);
    }

    #[test]
    fn expert_parallel_holds_dense_weights_whole_and_a_share_of_experts() {
        let m = mixtral();
        let p = Precision::uniform(Dtype::Bf16);
        let ep = Footprint::new(&m, Parallelism { tp: 1, ep: 4 }, p);
        let dense = (m.params() - m.expert_params()) as f64;
        assert_eq!(ep.weights.0, (dense + m.expert_params() as f64 / 4.0) * 2.0);
        assert_eq!(ep.kv(1).0, m.kv_bytes_per_token(Dtype::Bf16) / 4.0);
    }

    #[test]
    fn kv_blocks_fill_the_room_left() {
        let m = mixtral();
        let f = Footprint::new(
            &m,
            Parallelism { tp: 1, ep: 1 },
            Precision::uniform(Dtype::Bf16),
        );
        let block = f.kv(1).0 * 16.0;
        let usable = Bytes(f.weights.0 + 1e9 + 10.5 * block);
        assert_eq!(f.kv_blocks(usable, Bytes(1e9), 16), Some(10));
        assert_eq!(
            f.kv_blocks(Bytes(f.weights.0 + 0.5 * block), Bytes(0.0), 16),
            None
        );
    }
}
