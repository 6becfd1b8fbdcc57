//! One op: its shape, and the closed-form work that shape implies.

mod attention;

use std::borrow::Cow;

use serde::Serialize;

use super::activation::Activation;
use super::knobs::GroupScale;
use crate::units::{Bytes, Flops};
use crate::work::{self, CollectiveKind, CollectiveWork, Dtype, OpClass, Streams, Work};
pub use attention::{LowRankShape, ScoreShape};
use attention::{attention_work, mla_work, token_score_work};

/// Element types of the three tensor streams of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Precision {
    /// Element type of the weights.
    pub weights: Dtype,
    /// Element type of the activations.
    pub activations: Dtype,
    /// Element type of the KV cache.
    pub kv: Dtype,
    /// Per-group scales stored beside quantized weights (none: the type's bytes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<GroupScale>,
}

impl Precision {
    /// Every stream in one element type.
    pub fn uniform(d: Dtype) -> Self {
        Precision {
            weights: d,
            activations: d,
            kv: d,
            scales: None,
        }
    }

    /// Bytes per weight element: the type's, plus its share of a group's scale.
    pub fn weight_bytes(&self) -> f64 {
        self.weights.bytes() + self.scales.map_or(0.0, GroupScale::bytes_per_weight)
    }

    /// The type arithmetic runs in: the narrower of weights and activations
    /// when both are 8-bit, else the activations' type (weight-only
    /// quantisation dequantises to the activation type).
    fn compute(&self) -> Dtype {
        if self.weights == self.activations {
            self.weights
        } else {
            self.activations
        }
    }
}

/// The shape of an op. Counts are per device (tensor-parallel splits already applied).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    /// `batch` independent products `C[m,n] = A[m,k] · B[k,n]`; B is the weight stream.
    Gemm {
        /// Rows of A and C (tokens).
        m: u64,
        /// Columns of B and C (output features).
        n: u64,
        /// The reduction length (input features).
        k: u64,
        /// Independent products.
        batch: u64,
    },
    /// One expert FFN on `tokens` tokens, gated (gate and up `hidden → inner`, down
    /// `inner → hidden`) or two-matrix (up and down), fused: activations enter and leave once,
    /// the intermediate stays on chip. FLOPs: the GEMMs and the activation's FLOPs per
    /// intermediate element ([`Activation::ffn_flops`]: 5 for silu(gate)·up), as the dense FFN's
    /// `act` op charges them.
    ExpertFfn {
        /// The expert's index in its layer.
        expert: u64,
        /// Tokens routed to the expert.
        tokens: u64,
        /// Model width.
        hidden: u64,
        /// The expert's FFN width.
        inner: u64,
        /// Gated (gate, up, down) rather than two matrices.
        gated: bool,
        /// The activation function.
        act: Activation,
    },
    /// Decode attention: `seqs` sequences of one query token each, attending `kv_tokens` cached
    /// keys in total (the sum of their KV lengths).
    AttnDecode {
        /// Sequences, one query token each.
        seqs: u64,
        /// Cached keys attended, summed over the sequences.
        kv_tokens: u64,
        /// Query heads on this device.
        heads: u64,
        /// Key/value heads on this device.
        kv_heads: u64,
        /// Elements per head.
        head_dim: u64,
    },
    /// Causal (chunked) prefill attention: `q_tokens` new queries in total, `attended` (query, key)
    /// pairs in total under the causal mask, `kv_tokens` keys read in total (context plus new).
    AttnPrefill {
        /// Sequences in the chunk.
        seqs: u64,
        /// New query tokens, summed over the sequences.
        q_tokens: u64,
        /// Keys read (context plus new), summed over the sequences.
        kv_tokens: u64,
        /// (query, key) pairs under the causal mask, summed over the sequences.
        attended: u64,
        /// Query heads on this device.
        heads: u64,
        /// Key/value heads on this device.
        kv_heads: u64,
        /// Elements per head.
        head_dim: u64,
    },
    /// Multi-head latent attention (DeepSeek MLA) of `q_tokens` new queries over `kv_tokens`
    /// keys in total, `attended` (query, key) pairs, `heads` query heads on this device.
    /// Absorbed (decode): the query is already in the latent space (W_UK folded in), each pair
    /// costs a dot product over `latent + rope` and a weighted sum over `latent`, and the cache
    /// itself (`latent + rope` elements per token, one copy for all heads) is read. Expanded
    /// (prefill): keys and values were up-projected per head, each pair costs `nope + rope` and
    /// `v`. Both write the new tokens' latent and RoPE key to the cache.
    AttnMla {
        /// The absorbed form (else the expanded one).
        absorbed: bool,
        /// Sequences.
        seqs: u64,
        /// New query tokens, summed over the sequences.
        q_tokens: u64,
        /// Keys attended, summed over the sequences (context plus new).
        kv_tokens: u64,
        /// (query, key) pairs, summed over the sequences.
        attended: u64,
        /// Query heads on this device.
        heads: u64,
        /// Latent elements per token (`kv_lora_rank`).
        latent: u64,
        /// Query and key elements per head without RoPE.
        nope: u64,
        /// RoPE elements of the query per head and of the shared key.
        rope: u64,
        /// Value elements per head.
        v: u64,
    },
    /// MatryoshkaKV attention (decode or prefill) with keys and values cached at their ranks
    /// ([`LowRankShape`]).
    AttnLowRank(LowRankShape),
    /// Token scoring for a sparse read (DELTA's selection layers, DeepSeek-V3.2's indexer;
    /// [`ScoreShape`]).
    TokenScore(ScoreShape),
    /// A streaming op over `elements` elements: reads `reads` and writes `writes` tensors of that
    /// size, doing `flops_per_element` FLOPs per element.
    Elementwise {
        /// Elements of each tensor.
        elements: u64,
        /// Tensors read.
        reads: u64,
        /// Tensors written.
        writes: u64,
        /// FLOPs per element.
        flops_per_element: u64,
        /// How the kernel reaches its bytes; `None` prices it by the class curves alone.
        access: Option<work::Access>,
    },
    /// Ring all-reduce of `bytes` per device over `devices` devices.
    AllReduce {
        /// Message bytes per device.
        bytes: u64,
        /// Devices in the ring.
        devices: u64,
    },
    /// All-to-all: each of `devices` devices scatters `bytes` among all of them.
    AllToAll {
        /// Bytes each device scatters.
        bytes: u64,
        /// Devices taking part.
        devices: u64,
    },
}

impl OpKind {
    /// Whether the op moves data between devices (it runs on the links, not on a compute unit).
    pub fn is_collective(&self) -> bool {
        matches!(self, OpKind::AllReduce { .. } | OpKind::AllToAll { .. })
    }

    /// Tokens the op processes, where its shape states them: a GEMM's rows, an expert's tokens,
    /// attention's query tokens. `None` for elementwise ops and collectives, whose shapes count
    /// elements and bytes.
    pub fn tokens(&self) -> Option<u64> {
        match *self {
            OpKind::Gemm { m, .. } => Some(m),
            OpKind::ExpertFfn { tokens, .. } => Some(tokens),
            OpKind::AttnDecode { seqs, .. } => Some(seqs),
            OpKind::AttnPrefill { q_tokens, .. }
            | OpKind::AttnMla { q_tokens, .. }
            | OpKind::AttnLowRank(LowRankShape { q_tokens, .. })
            | OpKind::TokenScore(ScoreShape { q_tokens, .. }) => Some(q_tokens),
            OpKind::Elementwise { .. } | OpKind::AllReduce { .. } | OpKind::AllToAll { .. } => None,
        }
    }
}

/// An op instance in an iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// Name within its layer, e.g. `qkv_proj`, `expert_3` (most are fixed words, kept
    /// without allocating: an iteration's graph is built every iteration).
    pub name: Cow<'static, str>,
    /// Decoder layer index; `None` for embedding, final norm and LM head.
    pub layer: Option<u32>,
    /// The op's shape.
    pub kind: OpKind,
    /// Element types of its streams.
    pub precision: Precision,
    /// Device of the group that runs it (expert parallelism places experts on devices; every
    /// other op runs alike on all of them and is shown on device 0).
    pub device: u32,
}

impl Op {
    /// An op on device 0.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        layer: Option<u32>,
        kind: OpKind,
        p: Precision,
    ) -> Self {
        Op {
            name: name.into(),
            layer,
            kind,
            precision: p,
            device: 0,
        }
    }

    /// A short human description of the shape.
    pub fn shape(&self) -> String {
        match &self.kind {
            OpKind::Gemm { m, n, k, batch } if *batch == 1 => format!("{m}x{n}x{k}"),
            OpKind::Gemm { m, n, k, batch } => format!("{batch}*{m}x{n}x{k}"),
            OpKind::ExpertFfn {
                tokens,
                hidden,
                inner,
                ..
            } => {
                format!("t{tokens} {hidden}>{inner}>{hidden}")
            }
            OpKind::AttnDecode {
                seqs,
                kv_tokens,
                heads,
                kv_heads,
                head_dim,
            } => format!(
                "b{seqs} kv{} h{heads}/{kv_heads} d{head_dim}",
                kv_tokens / (*seqs).max(1)
            ),
            OpKind::AttnPrefill {
                seqs,
                q_tokens,
                kv_tokens,
                heads,
                kv_heads,
                head_dim,
                ..
            } => {
                format!(
                    "b{seqs} q{} kv{} h{heads}/{kv_heads} d{head_dim}",
                    q_tokens / (*seqs).max(1),
                    kv_tokens / (*seqs).max(1)
                )
            }
            OpKind::AttnMla {
                absorbed,
                seqs,
                q_tokens,
                kv_tokens,
                heads,
                ..
            } => format!(
                "mla {} b{seqs} q{} kv{} h{heads}",
                if *absorbed { "absorbed" } else { "expanded" },
                q_tokens / (*seqs).max(1),
                kv_tokens / (*seqs).max(1)
            ),
            OpKind::AttnLowRank(r) => format!(
                "ranked q{} kv{} dk{} dv{}",
                r.q_tokens, r.kv_tokens, r.key_dim, r.value_dim
            ),
            OpKind::TokenScore(s) => {
                format!("score q{} kv{} keep{}", s.q_tokens, s.keys_read, s.kept)
            }
            OpKind::Elementwise {
                elements,
                reads,
                writes,
                ..
            } => {
                format!("{elements} r{reads} w{writes}")
            }
            OpKind::AllReduce { bytes, devices } | OpKind::AllToAll { bytes, devices } => {
                format!("{bytes} B x{devices}")
            }
        }
    }

    /// The op's work in closed form.
    pub fn work(&self) -> Work {
        let p = &self.precision;
        let part = match self.kind {
            OpKind::Gemm { m, n, k, batch } => gemm_work(m, n, k, batch, p),
            OpKind::ExpertFfn {
                tokens,
                hidden,
                inner,
                gated,
                act,
                ..
            } => expert_ffn_work(tokens, hidden, (inner, gated, act), p),
            OpKind::AttnDecode {
                seqs,
                kv_tokens,
                heads,
                kv_heads,
                head_dim,
            } => {
                // One query per sequence, attending every cached key of its sequence.
                let geometry = (heads, kv_heads, head_dim, head_dim);
                attention_work(seqs, kv_tokens, kv_tokens, geometry, p)
            }
            OpKind::AttnPrefill {
                q_tokens,
                kv_tokens,
                attended,
                heads,
                kv_heads,
                head_dim,
                ..
            } => {
                let geometry = (heads, kv_heads, head_dim, head_dim);
                attention_work(q_tokens, kv_tokens, attended, geometry, p)
            }
            OpKind::AttnLowRank(r) => {
                let geometry = (r.heads, r.kv_heads, r.key_dim, r.value_dim);
                attention_work(r.q_tokens, r.kv_tokens, r.attended, geometry, p)
            }
            OpKind::TokenScore(s) => token_score_work(s, p),
            OpKind::AttnMla {
                absorbed,
                q_tokens,
                kv_tokens,
                attended,
                heads,
                latent,
                nope,
                rope,
                v,
                ..
            } => mla_work(
                absorbed,
                (q_tokens, kv_tokens, attended, heads),
                (latent, nope, rope, v),
                p,
            ),
            OpKind::Elementwise {
                elements,
                reads,
                writes,
                flops_per_element,
                ..
            } => elementwise_work(elements, reads, writes, flops_per_element, p),
            OpKind::AllToAll { bytes, devices } => all_to_all_work(bytes, devices),
            OpKind::AllReduce { bytes, devices } => all_reduce_work(bytes, devices, p),
        };
        Work {
            class: part.class,
            compute: self.precision.compute(),
            flops: Flops(part.flops),
            bytes: part.bytes,
            collective: part.collective,
            gemm: self.gemm_shape(),
            elementwise: self.elementwise_shape(),
        }
    }

    /// An elementwise op's access pattern and size, where the op states its pattern.
    fn elementwise_shape(&self) -> Option<work::ElementwiseShape> {
        match self.kind {
            OpKind::Elementwise {
                elements,
                access: Some(access),
                ..
            } => Some(work::ElementwiseShape { access, elements }),
            _ => None,
        }
    }
}

/// One op kind's part of [`Work`]: all of it but the compute type, which the precision gives.
struct KindWork {
    class: OpClass,
    flops: f64,
    bytes: Streams,
    collective: Option<CollectiveWork>,
}

/// `batch` products `[m,k]·[k,n]`: the weights once per product, 2·m·n·k FLOPs each.
fn gemm_work(m: u64, n: u64, k: u64, batch: u64, p: &Precision) -> KindWork {
    let (ew, ea) = (p.weight_bytes(), p.activations.bytes());
    let (m, n, k, bt) = (m as f64, n as f64, k as f64, batch as f64);
    let s = Streams {
        weights: Bytes(bt * k * n * ew),
        act_in: Bytes(bt * m * k * ea),
        act_out: Bytes(bt * m * n * ea),
        ..Streams::default()
    };
    KindWork {
        class: OpClass::Gemm,
        flops: 2.0 * bt * m * n * k,
        bytes: s,
        collective: None,
    }
}

/// A fused expert FFN: its matrices read once, activations in and out once.
fn expert_ffn_work(
    tokens: u64,
    hidden: u64,
    (inner, gated, act): (u64, bool, Activation),
    p: &Precision,
) -> KindWork {
    let (ew, ea) = (p.weight_bytes(), p.activations.bytes());
    let (t, h, i) = (tokens as f64, hidden as f64, inner as f64);
    // Matrices, and FLOPs per inner element of the activation (silu(gate)·up: 5; ReLU: 1).
    let mats = if gated { 3.0 } else { 2.0 };
    let act = act.ffn_flops(gated) as f64;
    let s = Streams {
        weights: Bytes(mats * h * i * ew),
        act_in: Bytes(t * h * ea),
        act_out: Bytes(t * h * ea),
        ..Streams::default()
    };
    KindWork {
        class: OpClass::Gemm,
        flops: 2.0 * mats * t * h * i + act * t * i,
        bytes: s,
        collective: None,
    }
}

/// An elementwise op: `reads` inputs and `writes` outputs per element.
fn elementwise_work(
    elements: u64,
    reads: u64,
    writes: u64,
    flops_per_element: u64,
    p: &Precision,
) -> KindWork {
    let ea = p.activations.bytes();
    let n = elements as f64;
    let s = Streams {
        act_in: Bytes(n * reads as f64 * ea),
        act_out: Bytes(n * writes as f64 * ea),
        ..Streams::default()
    };
    KindWork {
        class: OpClass::Elementwise,
        flops: n * flops_per_element as f64,
        bytes: s,
        collective: None,
    }
}

/// An all-to-all of `bytes` among `devices`: no arithmetic.
fn all_to_all_work(bytes: u64, devices: u64) -> KindWork {
    let c = CollectiveWork {
        kind: CollectiveKind::AllToAll,
        message: Bytes(bytes as f64),
        participants: devices as u32,
    };
    KindWork {
        class: OpClass::Collective,
        flops: 0.0,
        bytes: Streams::default(),
        collective: Some(c),
    }
}

/// A ring all-reduce of `bytes` among `devices`.
fn all_reduce_work(bytes: u64, devices: u64, p: &Precision) -> KindWork {
    let ea = p.activations.bytes();
    let c = CollectiveWork {
        kind: CollectiveKind::AllReduce,
        message: Bytes(bytes as f64),
        participants: devices as u32,
    };
    // One add per element received in the reduce-scatter half of a ring.
    let elems = bytes as f64 / ea;
    let f = elems * (devices as f64 - 1.0) / devices as f64;
    KindWork {
        class: OpClass::Collective,
        flops: f,
        bytes: Streams::default(),
        collective: Some(c),
    }
}

#[cfg(test)]
#[path = "op_tests.rs"]
mod tests;
