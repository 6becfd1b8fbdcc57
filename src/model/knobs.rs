//! Per-layer inference variants of the seed papers, as small `Copy` values on a [`LayerPlan`]:
//! MoE++'s zero-computation experts, dynamic top-p routing's distribution of experts per token,
//! per-layer precision (HAWQ), and per-layer kept fractions of image tokens (PyramidDrop).
//! Each is `None` when neutral, and then the layer costs exactly as without it. Fractions are
//! held in parts per million so that plans stay `Eq + Hash` (equal layers are priced once).
//!
//! [`LayerPlan`]: super::LayerPlan

use serde::Serialize;

use super::graph::{Batch, PrefillChunk};
use crate::work::Dtype;

/// Parts per million: the unit of the fractions kept here.
pub const PPM: u64 = 1_000_000;

/// The most experts per token a [`KPmf`] can give.
pub const MAX_K: usize = 16;

/// A fraction in (0, 1] or a positive ratio as parts per million, rounded.
pub fn ppm(x: f64) -> u32 {
    (x * PPM as f64).round().clamp(0.0, u32::MAX as f64) as u32
}

/// The variants of one layer; every field `None` is the plain layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Knobs {
    /// MoE++ zero-computation experts beside the FFN experts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zc: Option<ZeroExperts>,
    /// Dynamic top-p routing: the distribution of experts per token, in place of `top_k`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k_pmf: Option<KPmf>,
    /// The layer's own weight, activation and KV types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quant: Option<LayerQuant>,
    /// The share of a prompt's image tokens this layer keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageKeep>,
}

impl Knobs {
    /// Whether every variant is off.
    pub fn is_neutral(&self) -> bool {
        *self == Knobs::default()
    }

    /// Whether the layer routes under a variant (MoE++'s zero-computation experts, top-p).
    pub fn routes_variant(&self) -> bool {
        self.zc.is_some() || self.k_pmf.is_some()
    }

    /// The layer's own KV-cache type, when it has one.
    pub fn kv_type(&self) -> Option<Dtype> {
        self.quant.and_then(|q| q.kv)
    }

    /// Image tokens the layer drops among a sequence's first `len` positions.
    pub fn image_dropped(&self, len: u64) -> u64 {
        self.image.map_or(0, |k| k.dropped(len))
    }
}

/// What a routed slot of an MoE++ layer is: an FFN expert or one of the zero-computation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertKind {
    /// A (SwiGLU) FFN expert.
    Ffn,
    /// Outputs zero: no work.
    Zero,
    /// Outputs its input: no work.
    Copy,
    /// Outputs `α1·x + α2·v`, `[α1, α2] = softmax(W_c·x)`: O(hidden) per token.
    Constant,
}

/// MoE++ (arXiv 2410.07348) zero-computation experts of a layer, beside its FFN experts. The
/// router scores FFN and zero-computation experts alike; τ weighs the FFN experts so that the
/// FFN share of routed slots is r = τ·N_FFN / (τ·N_FFN + N_ZC) (REFERENCE.md §MoE++). Expert
/// ids: the FFN experts first, then the zero, copy and constant experts in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ZeroExperts {
    /// Zero experts.
    pub zero: u32,
    /// Copy experts.
    pub copy: u32,
    /// Constant experts.
    pub constant: u32,
    /// τ in parts per million.
    pub tau_ppm: u32,
}

impl ZeroExperts {
    /// Zero-computation experts, all kinds.
    pub fn count(self) -> u64 {
        u64::from(self.zero + self.copy + self.constant)
    }

    /// τ.
    pub fn tau(self) -> f64 {
        f64::from(self.tau_ppm) / PPM as f64
    }

    /// Parameters beside the FFN experts: a router row of `hidden` per zero-computation
    /// expert, and each constant expert's `W_c` (2 × hidden) and vector `v` (hidden).
    pub fn params(self, hidden: u64) -> u64 {
        hidden * self.count() + 3 * hidden * u64::from(self.constant)
    }

    /// The FFN share of routed slots, r = τ·N_FFN / (τ·N_FFN + N_ZC).
    pub fn ffn_share(self, n_ffn: u64) -> f64 {
        let f = self.tau() * n_ffn as f64;
        f / (f + self.count() as f64)
    }

    /// The kind of expert id `e` of a layer of `n_ffn` FFN experts.
    pub fn kind(self, n_ffn: u64, e: u64) -> ExpertKind {
        let (z, c) = (u64::from(self.zero), u64::from(self.copy));
        match e.checked_sub(n_ffn) {
            None => ExpertKind::Ffn,
            Some(i) if i < z => ExpertKind::Zero,
            Some(i) if i < z + c => ExpertKind::Copy,
            Some(_) => ExpertKind::Constant,
        }
    }

    /// The router's relative weight of each expert id: τ for an FFN expert, 1 for a
    /// zero-computation one.
    pub fn weights(self, n_ffn: u64) -> Vec<f64> {
        (0..n_ffn + self.count())
            .map(|e| match self.kind(n_ffn, e) {
                ExpertKind::Ffn => self.tau(),
                _ => 1.0,
            })
            .collect()
    }

    /// Balanced counts per expert id for `tokens` tokens of `top_k` slots: the FFN share
    /// `round(r·slots)` spread evenly over the FFN experts, the rest over the zero-computation
    /// ones, each expert at most `tokens` (a token picks distinct experts).
    pub fn uniform_counts(self, tokens: u64, n_ffn: u64, top_k: u64) -> Vec<u64> {
        let slots = tokens * top_k;
        let n_zc = self.count();
        let zc = (((1.0 - self.ffn_share(n_ffn)) * slots as f64).round() as u64)
            .min(tokens * n_zc)
            .max(slots.saturating_sub(tokens * n_ffn));
        let mut c = spread(slots - zc, n_ffn);
        c.extend(spread(zc, n_zc));
        c
    }
}

/// `total` spread over `n` bins as evenly as possible, the remainder to the first.
fn spread(total: u64, n: u64) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let (base, rem) = (total / n, total % n);
    (0..n).map(|e| base + u64::from(e < rem)).collect()
}

/// Dynamic top-p routing (arXiv 2403.07652): a token takes experts by decreasing score until
/// their probability mass exceeds p, so its number of experts k varies. The layer's k is a
/// distribution: `ppm[i]` is P(k = i + 1) in parts per million, summing to [`PPM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KPmf {
    /// P(k = i + 1), parts per million.
    pub ppm: [u32; MAX_K],
}

impl KPmf {
    /// The distribution of probabilities `p` over k = 1, 2, …, normalised (rounding left on the
    /// likeliest k); `None` when `p` is empty, longer than [`MAX_K`], has a negative or
    /// non-finite entry or sums to zero.
    pub fn from_probs(p: &[f64]) -> Option<KPmf> {
        let sum: f64 = p.iter().sum();
        let ok = p.iter().all(|x| x.is_finite() && *x >= 0.0);
        if p.is_empty() || p.len() > MAX_K || !ok || sum.is_nan() || sum <= 0.0 {
            return None;
        }
        let mut ppm = [0u32; MAX_K];
        for (i, x) in p.iter().enumerate() {
            ppm[i] = self::ppm(x / sum);
        }
        let total: i64 = ppm.iter().map(|&x| i64::from(x)).sum();
        let top = (0..MAX_K).max_by_key(|&i| (ppm[i], MAX_K - i))?;
        ppm[top] = (i64::from(ppm[top]) + PPM as i64 - total) as u32;
        Some(KPmf { ppm })
    }

    /// The two-point distribution of mean `m` (at least 1, at most [`MAX_K`]) on ⌊m⌋ and ⌈m⌉.
    pub fn from_mean(m: f64) -> Option<KPmf> {
        if !(1.0..=MAX_K as f64).contains(&m) {
            return None;
        }
        let lo = m.floor();
        let mut p = vec![0.0; m.ceil() as usize];
        p[lo as usize - 1] += 1.0 - (m - lo);
        *p.last_mut()? += m - lo;
        KPmf::from_probs(&p)
    }

    /// The mean number of experts per token.
    pub fn mean(self) -> f64 {
        let s: u64 = (0..MAX_K)
            .map(|i| (i as u64 + 1) * u64::from(self.ppm[i]))
            .sum();
        s as f64 / PPM as f64
    }

    /// The largest k with positive probability.
    pub fn max_k(self) -> u64 {
        (0..MAX_K)
            .rev()
            .find(|&i| self.ppm[i] > 0)
            .map_or(0, |i| i as u64 + 1)
    }

    /// Whether every token takes exactly `k` experts.
    pub fn is_point(self, k: u64) -> bool {
        k >= 1 && k as usize <= MAX_K && u64::from(self.ppm[k as usize - 1]) == PPM
    }

    /// Balanced counts for `tokens` tokens: `round(tokens · mean)` slots spread evenly over
    /// `experts`, each at most `tokens`.
    pub fn uniform_counts(self, tokens: u64, experts: u64) -> Vec<u64> {
        let slots = ((tokens as f64 * self.mean()).round() as u64).min(tokens * experts);
        spread(slots, experts)
    }
}

/// A layer's own element types (HAWQ-style mixed precision; `None`: the run's type for that
/// stream) and the per-group scales of its quantized weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LayerQuant {
    /// The weights' type.
    pub weights: Option<Dtype>,
    /// The activations' type (with 8-bit weights too, the GEMMs run at the 8-bit peak).
    pub activations: Option<Dtype>,
    /// The KV cache's type.
    pub kv: Option<Dtype>,
    /// One scale per `group` weights of `scale_bits` bits (GPTQ/AWQ-style groups), when set.
    pub scales: Option<GroupScale>,
}

/// One scale of `bits` bits per `group` quantized weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GroupScale {
    /// Weights per scale.
    pub group: u32,
    /// Bits of each scale (16: an fp16 scale, as GPTQ and AWQ store).
    pub bits: u32,
}

impl GroupScale {
    /// Bytes of scale per weight: `bits / (8 · group)`.
    pub fn bytes_per_weight(self) -> f64 {
        f64::from(self.bits) / (8.0 * f64::from(self.group))
    }
}

/// The share of a prompt's image tokens a layer keeps (PyramidDrop, VideoLLM-MoD): a prompt's
/// first `tokens` positions are its image tokens, and the layer processes, attends and caches
/// `keep` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ImageKeep {
    /// Image tokens per prompt (the vision encoder's, e.g. 576 for LLaVA-1.5).
    pub tokens: u64,
    /// The kept share, parts per million.
    pub keep_ppm: u32,
}

impl ImageKeep {
    /// Tokens this layer drops among a sequence's first `n` positions.
    pub fn dropped(self, n: u64) -> u64 {
        let img = n.min(self.tokens);
        img - img * u64::from(self.keep_ppm) / PPM
    }

    /// `batch` as this layer sees it: each prefill chunk and decode context without its
    /// dropped image tokens (a chunk keeps at least one token).
    pub fn batch(self, batch: &Batch) -> Batch {
        let prefill = batch
            .prefill
            .iter()
            .map(|c| {
                let (before, after) = (self.dropped(c.ctx), self.dropped(c.ctx + c.q_len));
                PrefillChunk {
                    q_len: (c.q_len - (after - before)).max(1),
                    ctx: c.ctx - before,
                    last: c.last,
                }
            })
            .collect();
        let decode_kv = batch
            .decode_kv
            .iter()
            .map(|&kv| kv - self.dropped(kv))
            .collect();
        Batch { decode_kv, prefill }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ffn_share_follows_tau() {
        // MoE++ §3: r = τ·N_FFN / (τ·N_FFN + N_ZC); 16 FFN and 4 zero-computation experts.
        let zc = |tau: f64| ZeroExperts {
            zero: 1,
            copy: 1,
            constant: 2,
            tau_ppm: ppm(tau),
        };
        assert!((zc(1.0).ffn_share(16) - 0.8).abs() < 1e-12);
        assert!((zc(0.25).ffn_share(16) - 0.5).abs() < 1e-12);
        let c = zc(0.25).uniform_counts(100, 16, 2);
        assert_eq!(c.len(), 20);
        assert_eq!(c[..16].iter().sum::<u64>(), 100);
        assert_eq!(c.iter().sum::<u64>(), 200);
        assert_eq!(zc(1.0).kind(16, 16), ExpertKind::Zero);
        assert_eq!(zc(1.0).kind(16, 17), ExpertKind::Copy);
        assert_eq!(zc(1.0).kind(16, 19), ExpertKind::Constant);
    }

    #[test]
    fn a_mean_of_1_76_is_24_percent_one_expert() {
        let p = KPmf::from_mean(1.76).unwrap();
        assert_eq!((p.ppm[0], p.ppm[1], p.max_k()), (240_000, 760_000, 2));
        assert!((p.mean() - 1.76).abs() < 1e-12);
        assert!(KPmf::from_mean(2.0).unwrap().is_point(2));
        assert_eq!(p.uniform_counts(100, 8).iter().sum::<u64>(), 176);
        assert!(KPmf::from_probs(&[0.0, -1.0]).is_none() && KPmf::from_mean(0.5).is_none());
    }

    #[test]
    fn image_tokens_dropped_by_prefix() {
        let k = ImageKeep {
            tokens: 576,
            keep_ppm: ppm(0.25),
        };
        assert_eq!(k.dropped(1000), 432);
        let b = k.batch(&Batch {
            decode_kv: vec![1000],
            prefill: vec![PrefillChunk {
                q_len: 700,
                ctx: 0,
                last: true,
            }],
        });
        assert_eq!((b.decode_kv[0], b.prefill[0].q_len), (568, 268));
    }
}
