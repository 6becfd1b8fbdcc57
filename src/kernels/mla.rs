//! Multi-head latent attention (DeepSeek-V2/V3 MLA) in its two forms.
//!
//! Every token leaves a latent `c` (`latent` elements) and a RoPE key `k_r` (`rope` elements,
//! shared by the heads) in the cache. Head h's key is `[c·W_UK[h], k_r]` and its value
//! `c·W_UV[h]`; its query is `[q_n, q_r]` (`nope` and `rope` elements).
//! - **Expanded** (prefill): the latents of every key read are up-projected to per-head keys
//!   and values first (`kv_b_proj`), and attention runs per head over `nope + rope` and `v`.
//! - **Absorbed** (decode): W_UK is folded into the query (`q_absorb`: `q_l = W_UK[h]·q_n`,
//!   `latent` elements), scores are `q_l·c + q_r·k_r` over the cache as it is, the weighted sum
//!   stays in the latent space, and W_UV is applied after attention (`v_up`).
//!
//! Both scale scores by 1/√(nope + rope), so in exact arithmetic they give the same output
//! (`kernels::mla_expanded_and_absorbed_agree` in the tests). A part computes a range of heads;
//! parts concatenate. Counts follow [`crate::model::OpKind::AttnMla`].

use std::ops::Range;

use super::attention::Seq;
use super::{Count, Elem, elems, load, store};

/// The sizes of one MLA layer's attention (see [`crate::model::Mla`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlaShape {
    /// Query heads.
    pub heads: usize,
    /// Latent elements per token.
    pub latent: usize,
    /// Query and key elements per head without RoPE.
    pub nope: usize,
    /// RoPE elements of each query head and of the shared key.
    pub rope: usize,
    /// Value elements per head.
    pub v: usize,
}

impl MlaShape {
    /// Cached elements per token: the latent and the RoPE key.
    pub fn cache(&self) -> usize {
        self.latent + self.rope
    }

    fn scale(&self) -> f32 {
        1.0 / ((self.nope + self.rope) as f32).sqrt()
    }
}

/// The keys sequence `s` reads: from the first key its first new query sees (a sliding window
/// of `w` keys starts `w − 1` before it) to its last token.
pub fn key_span(s: Seq, window: Option<usize>) -> Range<usize> {
    let first = window.map_or(0, |w| (s.ctx + 1).saturating_sub(w));
    first..s.ctx + s.q_len
}

/// Whether a query at `q` sees the key at `k`: causal, and within the window if there is one.
fn sees(q: usize, k: usize, window: Option<usize>) -> bool {
    k <= q && window.is_none_or(|w| q - k < w)
}

/// The expanded form's inputs: queries, the up-projected keys and values of every key read
/// (rows of each sequence's [`key_span`], sequence after sequence), their RoPE keys, and the
/// new tokens' latents and RoPE keys, which it writes to the cache.
#[derive(Debug, Clone)]
pub struct MlaExpanded<E> {
    /// The sizes.
    pub shape: MlaShape,
    /// The sequences, in the order their rows appear in `q`.
    pub seqs: Vec<Seq>,
    /// The layer's sliding window, if it has one.
    pub window: Option<usize>,
    /// Queries [Σ q_len, heads, nope + rope].
    pub q: Vec<E>,
    /// Up-projected keys [Σ keys, heads, nope].
    pub k_nope: Vec<E>,
    /// Up-projected values [Σ keys, heads, v].
    pub v: Vec<E>,
    /// RoPE keys [Σ keys, rope].
    pub k_rope: Vec<E>,
    /// New tokens' latents and RoPE keys [Σ q_len, latent + rope].
    pub new: Vec<E>,
}

/// The absorbed form's inputs: latent-space queries, the cache, and the new tokens' latents and
/// RoPE keys (written to the cache, then read with it).
#[derive(Debug, Clone)]
pub struct MlaAbsorbed<E> {
    /// The sizes.
    pub shape: MlaShape,
    /// The sequences, in the order their rows appear in the queries.
    pub seqs: Vec<Seq>,
    /// The layer's sliding window, if it has one.
    pub window: Option<usize>,
    /// Queries with W_UK folded in [Σ q_len, heads, latent].
    pub q_lat: Vec<E>,
    /// RoPE parts of the queries [Σ q_len, heads, rope].
    pub q_rope: Vec<E>,
    /// Each sequence's cache [ctx, latent + rope].
    pub cache: Vec<Vec<E>>,
    /// New tokens' latents and RoPE keys [Σ q_len, latent + rope].
    pub new: Vec<E>,
}

/// Softmax of `scores` (stable), counted as attention's aux FLOPs, and the weights.
fn softmax(scores: &[f32], c: &mut Count) -> Vec<f32> {
    let m = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let p: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
    let l: f32 = p.iter().sum();
    c.aux_flops += 4 * scores.len() as u64;
    p.iter().map(|x| x / l).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The expanded form for the heads `heads`: output [Σ q_len, |heads|, v].
pub fn mla_expanded<E: Elem>(x: &MlaExpanded<E>, heads: Range<usize>, c: &mut Count) -> Vec<E> {
    let MlaShape {
        heads: nh, nope, v, ..
    } = x.shape;
    let (qk, rope, scale) = (nope + x.shape.rope, x.shape.rope, x.shape.scale());
    let total_q: usize = x.seqs.iter().map(|s| s.q_len).sum();
    c.kv_write += (elems(&[total_q, x.shape.cache()]) as u64) * E::BYTES;
    let mut out = vec![0f32; elems(&[total_q, heads.len(), v])];
    let (mut row0, mut key0) = (0, 0);
    for &s in &x.seqs {
        let span = key_span(s, x.window);
        let keys = span.len();
        let kr = load(&x.k_rope[key0 * rope..(key0 + keys) * rope], &mut c.act_in);
        for (hi, h) in heads.clone().enumerate() {
            let (mut kn, mut vv) = (Vec::new(), Vec::new());
            for j in 0..keys {
                let at = (key0 + j) * nh + h;
                kn.extend(load(&x.k_nope[at * nope..(at + 1) * nope], &mut c.act_in));
                vv.extend(load(&x.v[at * v..(at + 1) * v], &mut c.act_in));
            }
            for i in 0..s.q_len {
                let qpos = s.ctx + i;
                let at = ((row0 + i) * nh + h) * qk;
                let q = load(&x.q[at..at + qk], &mut c.act_in);
                let seen: Vec<usize> = (0..keys)
                    .filter(|&j| sees(qpos, span.start + j, x.window))
                    .collect();
                let scores: Vec<f32> = seen
                    .iter()
                    .map(|&j| {
                        let n = dot(&q[..nope], &kn[j * nope..(j + 1) * nope]);
                        scale * (n + dot(&q[nope..], &kr[j * rope..(j + 1) * rope]))
                    })
                    .collect();
                let p = softmax(&scores, c);
                let o = &mut out[((row0 + i) * heads.len() + hi) * v..][..v];
                for (&j, w) in seen.iter().zip(p) {
                    o.iter_mut()
                        .zip(&vv[j * v..(j + 1) * v])
                        .for_each(|(o, x)| *o += w * x);
                }
                c.flops += 2 * (seen.len() * (qk + v)) as u64;
            }
        }
        row0 += s.q_len;
        key0 += keys;
    }
    store(&out, &mut c.act_out)
}

/// The absorbed form for the heads `heads`: output in the latent space [Σ q_len, |heads|,
/// latent] (W_UV is applied after it).
pub fn mla_absorbed<E: Elem>(x: &MlaAbsorbed<E>, heads: Range<usize>, c: &mut Count) -> Vec<E> {
    let MlaShape {
        heads: nh,
        latent,
        rope,
        ..
    } = x.shape;
    let (cw, scale) = (x.shape.cache(), x.shape.scale());
    let total_q: usize = x.seqs.iter().map(|s| s.q_len).sum();
    let mut out = vec![0f32; elems(&[total_q, heads.len(), latent])];
    let mut row0 = 0;
    for (si, &s) in x.seqs.iter().enumerate() {
        let span = key_span(s, x.window);
        // The cache, one copy for every head: cached rows, then the new tokens' (written first).
        let mut kv = Vec::with_capacity(elems(&[span.len(), cw]));
        for p in span.clone() {
            let row = if p < s.ctx {
                &x.cache[si][p * cw..(p + 1) * cw]
            } else {
                c.kv_write += cw as u64 * E::BYTES;
                &x.new[(row0 + p - s.ctx) * cw..][..cw]
            };
            kv.extend(load(row, &mut c.kv_read));
        }
        for i in 0..s.q_len {
            let qpos = s.ctx + i;
            for (hi, h) in heads.clone().enumerate() {
                let at = (row0 + i) * nh + h;
                let ql = load(&x.q_lat[at * latent..(at + 1) * latent], &mut c.act_in);
                let qr = load(&x.q_rope[at * rope..(at + 1) * rope], &mut c.act_in);
                let seen: Vec<usize> = (0..span.len())
                    .filter(|&j| sees(qpos, span.start + j, x.window))
                    .collect();
                let scores: Vec<f32> = seen
                    .iter()
                    .map(|&j| {
                        let row = &kv[j * cw..(j + 1) * cw];
                        scale * (dot(&ql, &row[..latent]) + dot(&qr, &row[latent..]))
                    })
                    .collect();
                let p = softmax(&scores, c);
                let o = &mut out[((row0 + i) * heads.len() + hi) * latent..][..latent];
                for (&j, w) in seen.iter().zip(p) {
                    o.iter_mut()
                        .zip(&kv[j * cw..j * cw + latent])
                        .for_each(|(o, x)| *o += w * x);
                }
                c.flops += 2 * (seen.len() * (cw + latent)) as u64;
            }
        }
        row0 += s.q_len;
    }
    store(&out, &mut c.act_out)
}
