//! The shape of a model: what a HuggingFace `config.json` says, resolved.

use serde::Serialize;
use thiserror::Error;

use super::activation::Activation;
use super::plan::{Attention, Ffn, GroupLimit, LayerPlan};
use crate::work::Dtype;

/// A decoder-only transformer: a sequence of per-layer plans (attention kind, FFN kind) over
/// one width, head layout and vocabulary; a uniform model is the case of equal plans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    /// The model's name, as in reports.
    pub name: String,
    /// Model width (`hidden_size`).
    pub hidden: u64,
    /// Each decoder layer's plan, in order.
    pub plans: Vec<LayerPlan>,
    /// Query heads.
    pub heads: u64,
    /// Key/value heads (`heads` for MHA, 1 for MQA, in between for GQA).
    pub kv_heads: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// Vocabulary size (rows of the embedding, columns of the LM head).
    pub vocab: u64,
    /// The experts of the MoE layers (every MoE layer has these), for a mixture-of-experts
    /// model.
    pub moe: Option<Moe>,
    /// Gated FFNs (SwiGLU: gate, up and down matrices) rather than two-matrix ones (ReLU/GELU).
    pub ffn_gated: bool,
    /// The FFN's (and every expert's) activation function.
    pub act: Activation,
    /// Element type of the released weights (`torch_dtype`).
    pub dtype: Dtype,
    /// The element type a `quantization_config` stores the weights in, and the GEMMs compute in
    /// (DeepSeek-V3's fp8 with 128 × 128 block scales, whose 4 bytes per 16,384 weights, 0.02%,
    /// are not charged); `None`: `dtype`.
    pub quantized: Option<Dtype>,
    /// What the import left out or assumed, for the report (DeepSeek-V3's MTP layer).
    pub notes: Vec<String>,
    /// Whether the LM head shares the embedding's weights.
    pub tie_embeddings: bool,
    /// Logits soft-capped, `c · tanh(x / c)` (Gemma-2's `final_logit_softcapping`), an op of
    /// its own after the LM head.
    pub logit_softcap: bool,
}

/// Mixture-of-experts FFN: `experts` routed experts of inner size `intermediate`, `top_k` per
/// token, and possibly a shared expert every token passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub experts: u64,
    /// Experts each token is routed to.
    pub top_k: u64,
    /// Each routed expert's FFN inner size (`moe_intermediate_size` where a config has one:
    /// fine-grained experts).
    pub intermediate: u64,
    /// The shared expert, always active (DeepSeek's `n_shared_experts`, Qwen2-MoE's gated
    /// shared expert).
    pub shared: Option<SharedExpert>,
}

/// An expert every token of an MoE layer passes through, beside its routed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SharedExpert {
    /// Its FFN inner size (DeepSeek's `n_shared_experts` × `moe_intermediate_size`: its shared
    /// experts act as one FFN that wide).
    pub intermediate: u64,
    /// Whether a sigmoid gate (a `hidden → 1` projection per token) scales its output
    /// (Qwen2-MoE's `shared_expert_gate`).
    pub sigmoid_gate: bool,
}

/// A model shape that cannot be built, or cannot be split as asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// A size that must be positive is zero.
    #[error("{field} must be positive")]
    Zero {
        /// The size, as `config.json` names it.
        field: &'static str,
    },
    /// A size past the largest dyad builds (a typo or a corrupted file, not a model).
    #[error("{field} ({value}) is more than {max}")]
    TooLarge {
        /// The size, as `config.json` names it.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// One size must divide another and does not.
    #[error("{what} ({value}) is not divisible by {by}")]
    NotDivisible {
        /// The size divided.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The size that should divide it.
        by: &'static str,
    },
    /// More experts per token than experts.
    #[error("num_experts_per_tok ({top_k}) exceeds the number of experts ({experts})")]
    TopK {
        /// Experts per token.
        top_k: u64,
        /// Experts per layer.
        experts: u64,
    },
    /// The tensor-parallel degree does not divide a size it splits.
    #[error("tensor-parallel degree {tp} does not divide {what} ({value})")]
    Tp {
        /// The tensor-parallel degree.
        tp: u64,
        /// The size split.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The expert-parallel degree does not divide the experts, or comes with tensor
    /// parallelism.
    #[error(
        "expert-parallel degree {ep} with tensor-parallel degree {tp}: expert parallelism needs tp = 1 and a degree that divides the routed experts ({experts})"
    )]
    Ep {
        /// The expert-parallel degree.
        ep: u64,
        /// The tensor-parallel degree asked with it.
        tp: u64,
        /// Routed experts per MoE layer.
        experts: u64,
    },
    /// Fewer KV heads than devices, and the devices are not a multiple of them.
    #[error(
        "tensor-parallel degree {tp} is not a multiple of num_key_value_heads ({kv_heads}): \
         with fewer KV heads than devices, each device's query heads must share one replicated \
         KV head"
    )]
    TpKvReplication {
        /// The tensor-parallel degree.
        tp: u64,
        /// Key/value heads of the model.
        kv_heads: u64,
    },
    /// A sequence-parallel (Ulysses) degree the model or batch cannot take, and why.
    #[error("sequence-parallel degree {0}: {1}")]
    Sp(u64, String),
}

impl ModelError {
    /// The config keys the error is about, most specific first (families name some apart).
    pub fn keys(&self) -> Vec<&'static str> {
        let field = match self {
            ModelError::Zero { field } | ModelError::TooLarge { field, .. } => *field,
            ModelError::NotDivisible { by, .. } => by,
            ModelError::TopK { .. } => "num_experts_per_tok",
            ModelError::Ep { .. } => "num_local_experts",
            ModelError::Tp { what, .. } => what,
            ModelError::TpKvReplication { .. } | ModelError::Sp(..) => "num_key_value_heads",
        };
        let first = field.split([' ', ',']).next().unwrap_or(field);
        match first {
            "num_local_experts" => vec![first, "num_experts", "n_routed_experts", "experts"],
            "num_experts_per_tok" => vec![first, "experts_per_token", "top_k"],
            "moe_intermediate_size" => vec![first, "intermediate_size"],
            // Without its own key, head_dim is hidden_size / num_attention_heads.
            "head_dim" => vec![first, "num_attention_heads", "hidden_size"],
            _ => vec![first],
        }
    }
}

/// Group-limited routing splits the experts evenly and its kept groups hold top-k experts.
fn check_groups(g: GroupLimit, m: Moe) -> Result<(), ModelError> {
    if g.groups == 0 || g.top_groups == 0 {
        return Err(ModelError::Zero {
            field: "n_group and topk_group",
        });
    }
    if m.experts % g.groups != 0 {
        return Err(ModelError::NotDivisible {
            what: "the routed experts",
            value: m.experts,
            by: "n_group",
        });
    }
    let reachable = g.top_groups.min(g.groups) * (m.experts / g.groups);
    if m.top_k > reachable {
        return Err(ModelError::TopK {
            top_k: m.top_k,
            experts: reachable,
        });
    }
    Ok(())
}

impl ModelSpec {
    /// Each size with the largest dyad accepts: 16× the largest published model's (DeepSeek-V3's
    /// 7168 hidden and 256 experts, Llama-3.1-405B's 126 layers and 128 heads, Gemma's 256k
    /// vocabulary), so that a corrupted file cannot ask for an unbounded allocation.
    fn sizes(&self) -> [(&'static str, u64, u64); 7] {
        let moe = self.moe.unwrap_or(Moe {
            experts: 1,
            top_k: 1,
            intermediate: 1,
            shared: None,
        });
        [
            ("hidden_size", self.hidden, 1 << 17),
            ("num_attention_heads", self.heads, 1 << 11),
            ("head_dim", self.head_dim, 1 << 12),
            ("vocab_size", self.vocab, 1 << 22),
            ("num_local_experts", moe.experts, 1 << 12),
            ("num_experts_per_tok", moe.top_k, 1 << 12),
            ("moe_intermediate_size", moe.intermediate, 1 << 20),
        ]
    }

    /// Checks the invariants the op formulas rely on, and the bounds of [`Self::sizes`].
    pub fn validate(&self) -> Result<(), ModelError> {
        for (field, v) in [
            ("hidden_size", self.hidden),
            ("num_hidden_layers", self.plans.len() as u64),
            ("num_attention_heads", self.heads),
            ("num_key_value_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab),
        ] {
            if v == 0 {
                return Err(ModelError::Zero { field });
            }
        }
        for (field, value, max) in self.sizes() {
            if value > max {
                return Err(ModelError::TooLarge { field, value, max });
            }
        }
        if self.heads % self.kv_heads != 0 {
            return Err(ModelError::NotDivisible {
                what: "num_attention_heads",
                value: self.heads,
                by: "num_key_value_heads",
            });
        }
        if let Some(m) = self.moe {
            if m.experts == 0 || m.top_k == 0 || m.intermediate == 0 {
                return Err(ModelError::Zero {
                    field: "num_local_experts, num_experts_per_tok and intermediate_size",
                });
            }
            if m.top_k > m.experts {
                return Err(ModelError::TopK {
                    top_k: m.top_k,
                    experts: m.experts,
                });
            }
        }
        for p in &self.plans {
            match p.ffn {
                Ffn::Dense { intermediate } if intermediate > 1 << 20 => {
                    return Err(ModelError::TooLarge {
                        field: "intermediate_size",
                        value: intermediate,
                        max: 1 << 20,
                    });
                }
                Ffn::Dense { intermediate: 0 } => {
                    return Err(ModelError::Zero {
                        field: "intermediate_size",
                    });
                }
                Ffn::Moe if self.moe.is_none() => {
                    return Err(ModelError::Zero {
                        field: "num_local_experts (a layer is MoE)",
                    });
                }
                _ => {}
            }
            match p.attention {
                Attention::Window { tokens: 0 } => {
                    return Err(ModelError::Zero {
                        field: "sliding_window",
                    });
                }
                Attention::Chunk { tokens: 0 } => {
                    return Err(ModelError::Zero {
                        field: "attention_chunk_size",
                    });
                }
                _ => {}
            }
            if let (Some(g), Some(m)) = (p.router.groups, self.moe) {
                check_groups(g, m)?;
            }
        }
        Ok(())
    }

    /// Decoder layers.
    pub fn layers(&self) -> u32 {
        self.plans.len() as u32
    }

    /// The inner size of layer `l`'s FFN: its dense FFN's, or its experts'.
    pub fn ffn_inner(&self, l: u32) -> u64 {
        match self.plans[l as usize].ffn {
            Ffn::Dense { intermediate } => intermediate,
            Ffn::Moe => self.moe.map_or(0, |m| m.intermediate),
        }
    }

    /// Checks that a tensor-parallel degree splits heads and FFN evenly.
    pub fn check_tp(&self, tp: u64) -> Result<(), ModelError> {
        let ffn = (0..self.layers()).map(|l| ("the FFN inner size", self.ffn_inner(l)));
        for (what, value) in [
            ("num_attention_heads", self.heads),
            ("vocab_size", self.vocab),
        ]
        .into_iter()
        .chain(ffn)
        {
            if tp == 0 || value % tp != 0 {
                return Err(ModelError::Tp { tp, what, value });
            }
        }
        if self.kv_heads > tp && self.kv_heads % tp != 0 {
            return Err(ModelError::Tp {
                tp,
                what: "num_key_value_heads",
                value: self.kv_heads,
            });
        }
        // Fewer KV heads than devices: each KV head is replicated on tp / kv_heads devices (as
        // vLLM does, and requires). Otherwise a device's query heads straddle two KV groups and
        // it must hold two KV heads, not the one `kv_heads_per_device` charges.
        if self.kv_heads < tp && tp % self.kv_heads != 0 {
            return Err(ModelError::TpKvReplication {
                tp,
                kv_heads: self.kv_heads,
            });
        }
        Ok(())
    }

    /// Query heads per device under tensor parallelism.
    pub fn heads_per_device(&self, tp: u64) -> u64 {
        self.heads / tp
    }

    /// KV heads per device: split while there are enough, replicated beyond (as vLLM does).
    pub fn kv_heads_per_device(&self, tp: u64) -> u64 {
        (self.kv_heads / tp).max(1)
    }

    /// Whether layer `l` routes its tokens to experts.
    pub fn is_moe_layer(&self, l: u32) -> bool {
        self.plans
            .get(l as usize)
            .is_some_and(|p| p.ffn == Ffn::Moe && !p.variant.ffn_pruned)
    }

    /// Weight matrices of one FFN (or one expert): 3 gated, 2 not.
    pub fn ffn_matrices(&self) -> u64 {
        if self.ffn_gated { 3 } else { 2 }
    }

    /// Parameters of decoder layer `l` (attention, FFN or experts and router, two norms).
    pub fn layer_params(&self, l: u32) -> u64 {
        let h = self.hidden;
        let attn = match self.plans[l as usize].mla {
            None => {
                let q = self.heads * self.head_dim;
                let kv = self.kv_heads * self.head_dim;
                h * (q + 2 * kv) + q * h
            }
            Some(a) => {
                let heads = self.heads;
                let q = match a.q_lora {
                    Some(r) => h * r + r + r * heads * (a.nope + a.rope),
                    None => h * heads * (a.nope + a.rope),
                };
                // The latent and RoPE-key projection and the latent's norm, the up-projection
                // of the latent to each head's key and value, and the output projection.
                q + h * a.cache_elems()
                    + a.latent
                    + a.latent * heads * (a.nope + a.v)
                    + heads * a.v * h
            }
        };
        let ffn = match (self.plans[l as usize].ffn, self.moe) {
            (Ffn::Moe, Some(m)) => {
                let shared = m.shared.map_or(0, |s| {
                    self.ffn_matrices() * h * s.intermediate + if s.sigmoid_gate { h } else { 0 }
                });
                let zc = self.plans[l as usize].knobs.zc.map_or(0, |z| z.params(h));
                m.experts * self.ffn_matrices() * h * m.intermediate + h * m.experts + shared + zc
            }
            (Ffn::Dense { intermediate }, _) => self.ffn_matrices() * h * intermediate,
            (Ffn::Moe, None) => 0,
        };
        let qk_norm = if self.plans[l as usize].qk_norm {
            2 * self.head_dim
        } else {
            0
        };
        let post = if self.plans[l as usize].post_norms {
            2 * h
        } else {
            0
        };
        let sinks = if self.plans[l as usize].sinks {
            self.heads
        } else {
            0
        };
        let (attn, ffn) = (attn + h + qk_norm + sinks + post / 2, ffn + h + post / 2);
        super::variants::layer_params(self, l, attn, ffn)
    }

    /// Weight bytes of the whole model: everything but the routed experts at `weights` bytes
    /// per element, and the routed experts of each layer at their plan's type
    /// ([`LayerPlan::expert_weights`]) or else `weights`. Returned as (all but the routed
    /// experts, the routed experts).
    pub fn weight_bytes(&self, weights: Dtype) -> (f64, f64) {
        if let Some(x) = self.layer_weight_bytes(weights) {
            return x;
        }
        let Some(m) = self.moe else {
            return (self.params() as f64 * weights.bytes(), 0.0);
        };
        let per_layer = (m.experts * self.ffn_matrices() * self.hidden * m.intermediate) as f64;
        let experts: f64 = self
            .plans
            .iter()
            .filter(|p| p.ffn == Ffn::Moe && !p.variant.ffn_pruned)
            .map(|p| per_layer * p.expert_weights.unwrap_or(weights).bytes())
            .sum();
        let rest = (self.params() - self.expert_params()) as f64 * weights.bytes();
        (rest, experts)
    }

    /// Parameters of all routed experts of all layers (the ones expert parallelism spreads).
    pub fn expert_params(&self) -> u64 {
        let Some(m) = self.moe else { return 0 };
        let per_layer = m.experts * self.ffn_matrices() * self.hidden * m.intermediate;
        (0..self.layers()).filter(|&l| self.is_moe_layer(l)).count() as u64 * per_layer
    }

    /// All parameters: layers, embedding, final norm, LM head (unless tied).
    pub fn params(&self) -> u64 {
        let emb = self.vocab * self.hidden;
        let head = if self.tie_embeddings { 0 } else { emb };
        (0..self.layers())
            .map(|l| self.layer_params(l))
            .sum::<u64>()
            + emb
            + head
            + self.hidden
    }

    /// Parameters one token passes through: every parameter but the routed experts, plus its
    /// `top_k` routed experts in each MoE layer (embedding and LM head counted).
    pub fn active_params(&self) -> u64 {
        let Some(m) = self.moe else {
            return self.params();
        };
        let moe_layers = (0..self.layers()).filter(|&l| self.is_moe_layer(l)).count() as u64;
        let per_expert = self.ffn_matrices() * self.hidden * m.intermediate;
        self.params() - self.expert_params() + moe_layers * m.top_k * per_expert
    }

    /// KV cache bytes of one token in layer `l` on one device of a `tp`-way group, for element
    /// type `kv`: keys and values of its KV heads (split while there are enough, replicated
    /// beyond), or under latent attention the latent and RoPE key, whole on every device.
    pub fn kv_bytes_layer(&self, l: u32, kv: Dtype, tp: u64) -> f64 {
        let kv = self.plans[l as usize].knobs.kv_type().unwrap_or(kv);
        let elems = match self.plans[l as usize].mla {
            None => 2 * self.kv_heads_per_device(tp) * self.head_dim,
            Some(a) => a.cache_elems(),
        };
        super::variants::kv_elems(self, l, tp, elems) as f64 * kv.bytes()
    }

    /// KV cache bytes per token across all layers on one device of a `tp`-way group: what a
    /// cache that allocates every layer for every token holds.
    pub fn kv_bytes_per_token_tp(&self, kv: Dtype, tp: u64) -> f64 {
        (0..self.layers())
            .map(|l| self.kv_bytes_layer(l, kv, tp))
            .sum()
    }

    /// KV cache bytes per token across all layers of the whole model (every KV head), for
    /// element type `kv`.
    pub fn kv_bytes_per_token(&self, kv: Dtype) -> f64 {
        self.kv_bytes_per_token_tp(kv, 1)
    }

    /// KV cache bytes one sequence of `len` tokens needs on one device of a `tp`-way group,
    /// layer by layer: the whole context in full-attention layers, the last `w` tokens in
    /// sliding-window layers.
    pub fn kv_bytes_held(&self, len: u64, kv: Dtype, tp: u64) -> f64 {
        (0..self.layers())
            .map(|l| {
                let held = len - self.plans[l as usize].knobs.image_dropped(len);
                self.plans[l as usize].attention.keys(held) as f64 * self.kv_bytes_layer(l, kv, tp)
            })
            .sum()
    }

    /// The window every layer shares, when every layer has the same sliding window (a cache may
    /// then hold `w` tokens per sequence, as vLLM's block manager does for Mistral).
    pub fn uniform_window(&self) -> Option<u64> {
        match self.plans.first()?.attention {
            Attention::Window { tokens }
                if self
                    .plans
                    .iter()
                    .all(|p| p.attention == self.plans[0].attention) =>
            {
                Some(tokens)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Mixtral-8x7B's shape (Mistral AI's config.json), for tests across `model`.
    pub(crate) fn mixtral() -> ModelSpec {
        ModelSpec {
            name: "Mixtral-8x7B".into(),
            hidden: 4096,
            plans: LayerPlan::periodic(32, 14336, Some(1)),
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            vocab: 32000,
            moe: Some(Moe {
                experts: 8,
                top_k: 2,
                intermediate: 14336,
                shared: None,
            }),
            ffn_gated: true,
            act: Activation::Silu,
            dtype: Dtype::Bf16,
            tie_embeddings: false,
            logit_softcap: false,
            quantized: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn mixtral_has_46_7_billion_parameters() {
        // Mistral AI's model card: 46.7B total parameters.
        let p = mixtral().params() as f64;
        assert!((p / 46.7e9 - 1.0).abs() < 0.005, "{p}");
    }

    #[test]
    fn tp_must_divide_heads() {
        let m = mixtral();
        assert!(m.check_tp(8).is_ok());
        assert!(matches!(m.check_tp(3), Err(ModelError::Tp { .. })));
        assert_eq!(m.kv_heads_per_device(16), 1);
    }

    #[test]
    fn kv_heads_fewer_than_devices_must_divide_them() {
        // 12 query heads in 3 groups of 4 over 4 devices: device 1 holds heads 3..6, which read
        // KV heads 0 and 1, so it cannot be charged one replicated KV head.
        let m = ModelSpec {
            heads: 12,
            kv_heads: 3,
            hidden: 1536,
            plans: LayerPlan::periodic(32, 3072, None),
            vocab: 1536,
            moe: None,
            ..mixtral()
        };
        assert_eq!(
            m.check_tp(4),
            Err(ModelError::TpKvReplication { tp: 4, kv_heads: 3 })
        );
        assert!(m.check_tp(3).is_ok() && m.check_tp(1).is_ok());
        // 8 KV heads over 16 devices: two devices share each KV head.
        assert!(mixtral().check_tp(16).is_ok());
    }
}
