//! The closed-form work of the attention kinds: MHA/GQA/MQA (at full or MatryoshkaKV ranks),
//! latent attention, and token scoring.

use serde::Serialize;

use super::{KindWork, Precision};
use crate::units::Bytes;
use crate::work::{OpClass, Streams};

/// Attention of `q_tokens` new queries over `kv_tokens` cached keys: every cached K and V read
/// once, a K and V written per new token, and QK^T and PV at 2·dk and 2·dv FLOPs per attended
/// (query head, key) pair. Decode is the case of one query per sequence attending its whole
/// cache. `geometry` is (query heads, KV heads, key elements per head, value elements per
/// head): `head_dim` twice, or MatryoshkaKV's ranks ([`crate::model::OpKind::AttnLowRank`]).
pub(super) fn attention_work(
    q_tokens: u64,
    kv_tokens: u64,
    attended: u64,
    geometry: (u64, u64, u64, u64),
    p: &Precision,
) -> KindWork {
    let (heads, kv_heads, dk, dv) = geometry;
    let (ea, ekv) = (p.activations.bytes(), p.kv.bytes());
    let (q, kv, a) = (q_tokens as f64, kv_tokens as f64, attended as f64);
    let (h, g, dk, dv) = (heads as f64, kv_heads as f64, dk as f64, dv as f64);
    let s = Streams {
        kv_read: Bytes(kv * g * (dk + dv) * ekv),
        kv_write: Bytes(q * g * (dk + dv) * ekv),
        act_in: Bytes(q * h * dk * ea),
        act_out: Bytes(q * h * dv * ea),
        ..Streams::default()
    };
    KindWork {
        class: OpClass::Attention,
        flops: 2.0 * h * a * (dk + dv),
        bytes: s,
        collective: None,
    }
}

/// The shape of MatryoshkaKV attention: the counts of [`crate::model::OpKind::AttnPrefill`]
/// (decode: one query per sequence), the products over `key_dim` and `value_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LowRankShape {
    /// Sequences.
    pub seqs: u64,
    /// New query tokens, summed over the sequences.
    pub q_tokens: u64,
    /// Keys read, summed over the sequences.
    pub kv_tokens: u64,
    /// (query, key) pairs, summed over the sequences.
    pub attended: u64,
    /// Query heads on this device.
    pub heads: u64,
    /// Key/value heads on this device.
    pub kv_heads: u64,
    /// Elements per cached key (and projected query) per head.
    pub key_dim: u64,
    /// Elements per cached value (and output) per head.
    pub value_dim: u64,
}

/// The shape of a token-scoring op ([`crate::model::Scorer`]): `pairs` (query, key) scores of
/// `heads` heads of `dim`, over `keys_read` keys of `kv_heads × dim` elements, keeping `kept`
/// tokens per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ScoreShape {
    /// New query tokens, summed over the sequences.
    pub q_tokens: u64,
    /// Keys read, summed over the sequences.
    pub keys_read: u64,
    /// (query, key) pairs scored.
    pub pairs: u64,
    /// Tokens kept per query.
    pub kept: u64,
    /// Scoring heads.
    pub heads: u64,
    /// Key heads read (1 for a scorer's own keys).
    pub kv_heads: u64,
    /// Elements per scoring head.
    pub dim: u64,
    /// Whether the keys are the scorer's own cache (written for the new tokens).
    pub own_keys: bool,
}

/// Token scoring ([`crate::model::OpKind::TokenScore`]): reads `kv_heads × dim` key elements
/// per key read (the layer's keys, or with `own_keys` its own one key per token, written for
/// each new token), the queries' scoring heads in, each query's `kept` token indices (4 bytes)
/// out; [`crate::model::Scorer::flops_per_pair`] per pair.
pub(super) fn token_score_work(s: ScoreShape, p: &Precision) -> KindWork {
    let (ea, ekv) = (p.activations.bytes(), p.kv.bytes());
    let per_pair = crate::model::Scorer {
        heads: s.heads,
        dim: s.dim,
        own_keys: s.own_keys,
        kept: s.kept,
    }
    .flops_per_pair() as f64;
    let (q, keys, key) = (
        s.q_tokens as f64,
        s.keys_read as f64,
        (s.kv_heads * s.dim) as f64,
    );
    let st = Streams {
        kv_read: Bytes(keys * key * ekv),
        kv_write: Bytes(if s.own_keys { q * key * ekv } else { 0.0 }),
        act_in: Bytes(q * (s.heads * s.dim) as f64 * ea),
        act_out: Bytes(q * s.kept as f64 * 4.0),
        ..Streams::default()
    };
    KindWork {
        class: OpClass::Attention,
        flops: s.pairs as f64 * per_pair,
        bytes: st,
        collective: None,
    }
}

/// Latent attention (see [`crate::model::OpKind::AttnMla`]): `(q, kv, attended, heads)` and the sizes
/// `(latent, nope, rope, v)`.
pub(super) fn mla_work(
    absorbed: bool,
    (q, kv, a, h): (u64, u64, u64, u64),
    (latent, nope, rope, v): (u64, u64, u64, u64),
    p: &Precision,
) -> KindWork {
    let (ea, ekv) = (p.activations.bytes(), p.kv.bytes());
    let (q, kv, a, h) = (q as f64, kv as f64, a as f64, h as f64);
    let cache = (latent + rope) as f64;
    let (qk, pv) = if absorbed {
        (cache, latent as f64)
    } else {
        ((nope + rope) as f64, v as f64)
    };
    let s = if absorbed {
        Streams {
            kv_read: Bytes(kv * cache * ekv),
            kv_write: Bytes(q * cache * ekv),
            act_in: Bytes(q * h * qk * ea),
            act_out: Bytes(q * h * pv * ea),
            ..Streams::default()
        }
    } else {
        // The queries and the up-projected keys and values per head, the RoPE key once.
        let keys = kv * (h * (nope + v) as f64 + rope as f64);
        Streams {
            kv_write: Bytes(q * cache * ekv),
            act_in: Bytes((q * h * qk + keys) * ea),
            act_out: Bytes(q * h * pv * ea),
            ..Streams::default()
        }
    };
    KindWork {
        class: OpClass::Attention,
        flops: 2.0 * h * a * (qk + pv),
        bytes: s,
        collective: None,
    }
}
