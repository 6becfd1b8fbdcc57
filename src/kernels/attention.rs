//! Attention over a KV cache: MHA, GQA and MQA head layouts; causal prefill (chunked, after a
//! cached context) and decode (one new token per sequence), with a numerically stable softmax.
//!
//! Each sequence has `ctx` cached tokens and `q_len` new ones; the new tokens' keys and values
//! are appended to the cache (the KV write) and every query attends the cache up to and including
//! its own position (the KV read). A part of a partition plan computes a range of query heads
//! (taking the KV heads those heads share) and a range of key positions; a part over a key range
//! returns its softmax's log-sum-exp so that parts merge exactly ([`merge`]).

use std::ops::Range;

use super::{Count, Elem, elems, load, store};

/// Head layout: `heads` query heads share `kv_heads` key/value heads in equal groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (equal to `heads` for MHA, 1 for MQA).
    pub kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
}

impl Heads {
    /// The KV head a query head reads.
    pub fn kv_of(&self, head: usize) -> usize {
        head / (self.heads / self.kv_heads)
    }

    /// The KV heads a range of query heads reads.
    pub fn kv_range(&self, heads: &Range<usize>) -> Range<usize> {
        if heads.is_empty() {
            return 0..0;
        }
        self.kv_of(heads.start)..self.kv_of(heads.end - 1) + 1
    }
}

/// One sequence: `ctx` tokens already cached, `q_len` new tokens (1 for decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq {
    /// Tokens already in the KV cache.
    pub ctx: usize,
    /// New tokens (queries) of this step.
    pub q_len: usize,
}

/// A batch of sequences and their tensors, in storage type `E`.
#[derive(Debug, Clone)]
pub struct AttnInput<E> {
    /// The head layout.
    pub shape: Heads,
    /// The sequences, in the order their rows appear in `q`.
    pub seqs: Vec<Seq>,
    /// Queries, [Σ q_len, heads, head_dim].
    pub q: Vec<E>,
    /// New keys and values, [Σ q_len, kv_heads, head_dim] each.
    pub k_new: Vec<E>,
    /// New values, the same layout as `k_new`.
    pub v_new: Vec<E>,
    /// Cached keys and values per sequence, [kv_heads, ctx, head_dim] each.
    pub k_cache: Vec<Vec<E>>,
    /// Cached values, the same layout as `k_cache`.
    pub v_cache: Vec<Vec<E>>,
}

/// Which part of the attention a unit computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttnPart {
    /// Query heads.
    pub heads: Range<usize>,
    /// Key positions (of every sequence) this part attends; `None` for all.
    pub keys: Option<Range<usize>>,
}

/// A part's result: output rows [Σ q_len, |heads|, head_dim] and, per row and head, the
/// log-sum-exp of its attention scores (−∞ where it saw no key).
#[derive(Debug, Clone)]
pub struct AttnOut<E> {
    /// Output rows [Σ q_len, |heads|, head_dim].
    pub out: Vec<E>,
    /// Log-sum-exp per row and head, [Σ q_len, |heads|].
    pub lse: Vec<f32>,
}

/// Which (query position, key position) pairs a query sees. The real kernels pass [`causal`].
pub type Mask = fn(usize, usize) -> bool;

/// The causal mask: a query sees every key at or before its own position.
pub fn causal(query: usize, key: usize) -> bool {
    key <= query
}

/// Attention with the causal mask.
pub fn attend<E: Elem>(x: &AttnInput<E>, part: &AttnPart, c: &mut Count) -> AttnOut<E> {
    attend_masked(x, part, causal, c)
}

/// Sliding-window attention (Mistral's `sliding_window`, Gemma-2's local layers): a query at
/// position p sees the `w` keys p − w + 1 ..= p, and each sequence's cache is read from the
/// first key its first new query sees (`ctx − w + 1`), so a chunk of q new tokens reads
/// min(ctx + q, q + w − 1) keys ([`crate::model::Attention::keys_read`]). `None`: [`attend`].
pub fn attend_window<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    window: Option<usize>,
    c: &mut Count,
) -> AttnOut<E> {
    let Some(w) = window else {
        return attend(x, part, c);
    };
    let band = move |q: usize, k: usize| k <= q && q - k < w;
    attend_plain(x, part, &band, &|s: Seq| (s.ctx + 1).saturating_sub(w), c)
}

/// A sparse layer's prefill (DELTA, DeepSeek-V3.2), as the model charges it: a query at p
/// attends the `band` keys p − `band` + 1 ..= p, and each sequence's cache is read from the first
/// key its span of `window` keys shows (`usize::MAX`: the whole cache).
pub fn attend_band<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    band: usize,
    window: usize,
    c: &mut Count,
) -> AttnOut<E> {
    let mask = move |q: usize, k: usize| k <= q && q - k < band;
    attend_plain(
        x,
        part,
        &mask,
        &|s: Seq| (s.ctx + 1).saturating_sub(window),
        c,
    )
}

/// Llama-4's chunked local attention: a query at position p sees the keys of its own chunk of
/// `c` positions up to itself, and each sequence's cache is read from the start of the chunk
/// its first new query is in, so a chunk of q new tokens after ctx reads ctx mod c + q keys
/// ([`crate::model::Attention::keys_read`]).
pub fn attend_chunked<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    chunk: usize,
    c: &mut Count,
) -> AttnOut<E> {
    let c_ = chunk.max(1);
    let same = move |q: usize, k: usize| k <= q && k / c_ == q / c_;
    attend_plain(x, part, &same, &|s: Seq| s.ctx - s.ctx % c_, c)
}

/// Attention with any mask (tests use this to show that a wrong mask is caught).
pub fn attend_masked<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    mask: Mask,
    c: &mut Count,
) -> AttnOut<E> {
    attend_under(x, part, &mask, c)
}

/// Attention under any mask, a closure (a band of any width), reading every cached key.
pub fn attend_under<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    mask: &dyn Fn(usize, usize) -> bool,
    c: &mut Count,
) -> AttnOut<E> {
    attend_plain(x, part, mask, &|_| 0, c)
}

/// DELTA's and DeepSeek-V3.2's sparse read: the queries of sequence `si` attend only the key
/// positions `keep[si]` (causally), and only those keys and values are read from the cache.
pub fn attend_subset<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    keep: &[Vec<usize>],
    c: &mut Count,
) -> AttnOut<E> {
    let scale = 1.0 / (x.shape.head_dim as f32).sqrt();
    let pick = |si: usize, r: Range<usize>| -> Vec<usize> {
        let kept = keep.get(si).map_or(&[][..], Vec::as_slice);
        kept.iter().copied().filter(|p| r.contains(p)).collect()
    };
    attend_with(x, part, (&causal, &|_| 0, &pick), scale, c)
}

/// MatryoshkaKV's attention in rank space: `x` holds queries, keys and values already
/// projected to `x.shape.head_dim` (the rank) elements per head, and the scores keep the
/// model's scale, 1/√`model_head_dim`.
pub fn attend_ranked<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    model_head_dim: usize,
    c: &mut Count,
) -> AttnOut<E> {
    let all = |_: usize, r: Range<usize>| r.collect();
    let scale = 1.0 / (model_head_dim as f32).sqrt();
    attend_with(x, part, (&causal, &|_| 0, &all), scale, c)
}

/// Which keys a query sees (the mask), where each sequence's cache read starts (`first`), and
/// which positions of sequence `si` in a range are read (`pick`).
type Reads<'a> = (
    &'a dyn Fn(usize, usize) -> bool,
    &'a dyn Fn(Seq) -> usize,
    &'a dyn Fn(usize, Range<usize>) -> Vec<usize>,
);

/// Attention under `mask`, reading each sequence's cache from key `first(seq)` on.
fn attend_plain<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    mask: &dyn Fn(usize, usize) -> bool,
    first: &dyn Fn(Seq) -> usize,
    c: &mut Count,
) -> AttnOut<E> {
    let all = |_: usize, r: Range<usize>| r.collect();
    let scale = 1.0 / (x.shape.head_dim as f32).sqrt();
    attend_with(x, part, (mask, first, &all), scale, c)
}

/// Attention under the `reads` (mask, first key, positions read), scores scaled by `scale`.
fn attend_with<E: Elem>(
    x: &AttnInput<E>,
    part: &AttnPart,
    (mask, first, pick): Reads,
    scale: f32,
    c: &mut Count,
) -> AttnOut<E> {
    let Heads {
        heads, head_dim: d, ..
    } = x.shape;
    let hs = part.heads.clone();
    let kvs = x.shape.kv_range(&hs);
    let nh = hs.len();
    let total_q: usize = x.seqs.iter().map(|s| s.q_len).sum();
    let mut out = vec![0f32; elems(&[total_q, nh, d])];
    let mut lse = vec![f32::NEG_INFINITY; elems(&[total_q, nh])];
    let mut row0 = 0;
    for (si, s) in x.seqs.iter().enumerate() {
        let len = s.ctx + s.q_len;
        let keys = part.keys.clone().unwrap_or(0..len);
        let keys = pick(si, keys.start.max(first(*s)).min(len)..keys.end.min(len));
        let (kc, vc) = gather_kv(x, si, row0, &kvs, &keys, c);
        for i in 0..s.q_len {
            let qpos = s.ctx + i;
            for (hi, h) in hs.clone().enumerate() {
                let at = ((row0 + i) * heads + h) * d;
                let q = load(&x.q[at..at + d], &mut c.act_in);
                let gi = x.shape.kv_of(h) - kvs.start;
                let seen: Vec<usize> = keys.iter().copied().filter(|&p| mask(qpos, p)).collect();
                let row = (row0 + i) * nh + hi;
                if seen.is_empty() {
                    continue;
                }
                let o = &mut out[row * d..(row + 1) * d];
                lse[row] = attend_row(&q, &kc[gi], &vc[gi], &seen, scale, o, c);
            }
        }
        row0 += s.q_len;
    }
    c.aux_flops += elems(&[total_q, nh, d]) as u64; // the scale of each query
    let out = store(&out, &mut c.act_out);
    AttnOut { out, lse }
}

/// This part's slice of sequence `si`'s cache, one `[len, d]` block of keys and one of values
/// per KV head in `kvs`: new tokens among the positions `keys` are written to the cache, then
/// every one of those positions is read. `row0` is the sequence's first row among the new
/// tokens.
fn gather_kv<E: Elem>(
    x: &AttnInput<E>,
    si: usize,
    row0: usize,
    kvs: &Range<usize>,
    keys: &[usize],
    c: &mut Count,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (kv_heads, d) = (x.shape.kv_heads, x.shape.head_dim);
    let s = x.seqs[si];
    let len = s.ctx + s.q_len;
    let mut kc = vec![vec![0f32; elems(&[len, d])]; kvs.len()];
    let mut vc = vec![vec![0f32; elems(&[len, d])]; kvs.len()];
    for (gi, g) in kvs.clone().enumerate() {
        for &p in keys {
            let (k, v) = if p < s.ctx {
                let at = (g * s.ctx + p) * d;
                (&x.k_cache[si][at..at + d], &x.v_cache[si][at..at + d])
            } else {
                let at = ((row0 + p - s.ctx) * kv_heads + g) * d;
                c.kv_write += 2 * d as u64 * E::BYTES;
                (&x.k_new[at..at + d], &x.v_new[at..at + d])
            };
            kc[gi][p * d..(p + 1) * d].copy_from_slice(&load(k, &mut c.kv_read));
            vc[gi][p * d..(p + 1) * d].copy_from_slice(&load(v, &mut c.kv_read));
        }
    }
    (kc, vc)
}

/// One query row of one head against the `seen` key positions of its KV head's cache (`kc`,
/// `vc`): scaled scores, a stable softmax, and the weighted values summed into `o`. Returns the
/// row's log-sum-exp.
fn attend_row(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    seen: &[usize],
    scale: f32,
    o: &mut [f32],
    c: &mut Count,
) -> f32 {
    let d = o.len();
    let scores: Vec<f32> = seen
        .iter()
        .map(|&p| {
            let k = &kc[p * d..(p + 1) * d];
            scale * q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>()
        })
        .collect();
    c.flops += 2 * (d * seen.len()) as u64;
    // Stable softmax: subtract the row's max before exponentiating.
    let m = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let p: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
    let l: f32 = p.iter().sum();
    c.aux_flops += 4 * seen.len() as u64 + d as u64;
    for (&pos, &w) in seen.iter().zip(&p) {
        let v = &vc[pos * d..(pos + 1) * d];
        for (o, v) in o.iter_mut().zip(v) {
            *o += w * v;
        }
    }
    c.flops += 2 * (d * seen.len()) as u64;
    o.iter_mut().for_each(|o| *o /= l);
    m + l.ln()
}

/// Merges parts over disjoint key ranges of the same heads: out = Σₚ e^(lseₚ − lse) outₚ, with
/// lse = log Σₚ e^(lseₚ). Rows no part saw stay zero.
pub fn merge<E: Elem>(parts: &[AttnOut<E>], d: usize) -> Vec<f32> {
    let rows = parts.first().map_or(0, |p| p.lse.len());
    let mut out = vec![0f32; elems(&[rows, d])];
    for r in 0..rows {
        let m = parts.iter().fold(f32::NEG_INFINITY, |a, p| a.max(p.lse[r]));
        if m == f32::NEG_INFINITY {
            continue;
        }
        let ws: Vec<f32> = parts.iter().map(|p| (p.lse[r] - m).exp()).collect();
        let total: f32 = ws.iter().sum();
        for (p, w) in parts.iter().zip(&ws) {
            for j in 0..d {
                out[r * d + j] += w / total * p.out[r * d + j].to_f32();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_head(q: f32, keys: &[f32], values: &[f32]) -> AttnInput<f32> {
        AttnInput {
            shape: Heads {
                heads: 1,
                kv_heads: 1,
                head_dim: 1,
            },
            seqs: vec![Seq {
                ctx: keys.len() - 1,
                q_len: 1,
            }],
            q: vec![q],
            k_new: vec![keys[keys.len() - 1]],
            v_new: vec![values[values.len() - 1]],
            k_cache: vec![keys[..keys.len() - 1].to_vec()],
            v_cache: vec![values[..values.len() - 1].to_vec()],
        }
    }

    #[test]
    fn decode_weights_values_by_softmax_of_scores() {
        // Scores q·k = 0 and ln 3: weights 1/4 and 3/4 over values 4 and 8 give 7.
        let x = one_head(1.0, &[0.0, 3f32.ln()], &[4.0, 8.0]);
        let mut c = Count::default();
        let r = attend(
            &x,
            &AttnPart {
                heads: 0..1,
                keys: None,
            },
            &mut c,
        );
        assert!((r.out[0] - 7.0).abs() < 1e-5, "{:?}", r.out);
        assert!((r.lse[0] - 4f32.ln()).abs() < 1e-5);
        // Two keys: QK and PV cost 2 FLOPs each per key at d = 1.
        assert_eq!(c.flops, 8);
        assert_eq!((c.kv_read, c.kv_write), (16, 8));
    }

    #[test]
    fn softmax_is_stable_for_huge_scores() {
        let x = one_head(1.0, &[1000.0, 1000.0], &[2.0, 4.0]);
        let r = attend(
            &x,
            &AttnPart {
                heads: 0..1,
                keys: None,
            },
            &mut Count::default(),
        );
        assert!((r.out[0] - 3.0).abs() < 1e-5, "{:?}", r.out);
    }

    #[test]
    fn key_range_parts_merge_to_the_whole() {
        let x = one_head(0.5, &[0.1, -0.7, 0.3, 0.9], &[1.0, 2.0, 3.0, 4.0]);
        let mut c = Count::default();
        let whole = attend(
            &x,
            &AttnPart {
                heads: 0..1,
                keys: None,
            },
            &mut c,
        );
        let parts: Vec<_> = [0..1, 1..4]
            .into_iter()
            .map(|k| {
                attend(
                    &x,
                    &AttnPart {
                        heads: 0..1,
                        keys: Some(k),
                    },
                    &mut Count::default(),
                )
            })
            .collect();
        let merged = merge(&parts, 1);
        assert!((merged[0] - whole.out[0]).abs() < 1e-6);
    }

    /// One decode sequence of `ctx` cached tokens, `heads` query heads over one KV head of `d`,
    /// random.
    fn random(ctx: usize, heads: usize, d: usize, seed: u64) -> AttnInput<f32> {
        let mut rng = crate::kernels::Rng::new(seed);
        AttnInput {
            shape: Heads {
                heads,
                kv_heads: 1,
                head_dim: d,
            },
            seqs: vec![Seq { ctx, q_len: 1 }],
            q: rng.vec(heads * d, 1.0),
            k_new: rng.vec(d, 1.0),
            v_new: rng.vec(d, 1.0),
            k_cache: vec![rng.vec(ctx * d, 1.0)],
            v_cache: vec![rng.vec(ctx * d, 1.0)],
        }
    }

    /// Each `from`-element row of `x` times `p` (`from × to`, row-major).
    fn rows(x: &[f32], p: &[f32], from: usize, to: usize) -> Vec<f32> {
        x.chunks(from)
            .flat_map(|r| (0..to).map(move |j| (0..from).map(|i| r[i] * p[i * to + j]).sum()))
            .collect()
    }

    #[test]
    fn rank_projected_attention_equals_attention_over_the_explicitly_projected_cache() {
        // MatryoshkaKV: keys and values cached as kP and vP (P: d × r, orthonormal columns).
        // Attention over them, with queries qP, and the output times Pᵀ, equals attention over
        // the full-width cache kPPᵀ, vPPᵀ: q·kPPᵀ = qP·kP, and Σ w·vPPᵀ = (Σ w·vP)Pᵀ.
        let (d, r, ctx, heads) = (8, 3, 5, 2);
        let mut rng = crate::kernels::Rng::new(7);
        let mut p: Vec<Vec<f32>> = Vec::new();
        while p.len() < r {
            let mut v = rng.vec(d, 1.0);
            for u in &p {
                let dot: f32 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            p.push(v.into_iter().map(|a| a / n).collect());
        }
        let pm: Vec<f32> = (0..d).flat_map(|i| p.iter().map(move |c| c[i])).collect();
        let pt: Vec<f32> = p.concat();
        let x = random(ctx, heads, d, 11);
        let down = |v: &[f32]| rows(v, &pm, d, r);
        let back = |v: &[f32]| rows(&down(v), &pt, r, d);
        let explicit = AttnInput {
            k_new: back(&x.k_new),
            v_new: back(&x.v_new),
            k_cache: vec![back(&x.k_cache[0])],
            v_cache: vec![back(&x.v_cache[0])],
            ..x.clone()
        };
        let ranked = AttnInput {
            shape: Heads {
                head_dim: r,
                ..x.shape
            },
            q: down(&x.q),
            k_new: down(&x.k_new),
            v_new: down(&x.v_new),
            k_cache: vec![down(&x.k_cache[0])],
            v_cache: vec![down(&x.v_cache[0])],
            seqs: x.seqs.clone(),
        };
        let part = AttnPart {
            heads: 0..heads,
            keys: None,
        };
        let (mut cf, mut cr) = (Count::default(), Count::default());
        let full = attend(&explicit, &part, &mut cf);
        let low = attend_ranked(&ranked, &part, d, &mut cr);
        let up = rows(&low.out, &pt, r, d);
        for (a, b) in up.iter().zip(&full.out) {
            assert!((a - b).abs() < 1e-5, "{up:?} against {:?}", full.out);
        }
        // The products and the cache read and written scale with the rank: r/d.
        let keys = (ctx + 1) as u64;
        assert_eq!(cr.flops, 4 * (r as u64) * keys * heads as u64);
        assert_eq!(cr.flops * d as u64, cf.flops * r as u64);
        assert_eq!(cr.kv_read * d as u64, cf.kv_read * r as u64);
        assert_eq!(cr.kv_write, 2 * r as u64 * 4);
    }

    #[test]
    fn subset_attention_equals_full_attention_masked_to_the_subset_and_reads_only_it() {
        // DELTA's sparse layers and DeepSeek-V3.2's: a query attends the kept positions only.
        let (d, ctx, heads) = (4, 9, 2);
        let x = random(ctx, heads, d, 3);
        let keep = vec![0, 3, 4, 8, 9];
        let part = AttnPart {
            heads: 0..heads,
            keys: None,
        };
        let (mut cs, mut cm) = (Count::default(), Count::default());
        let sub = attend_subset(&x, &part, std::slice::from_ref(&keep), &mut cs);
        let mask = |q: usize, k: usize| k <= q && keep.contains(&k);
        let masked = attend_under(&x, &part, &mask, &mut cm);
        for (a, b) in sub.out.iter().zip(&masked.out) {
            assert!(
                (a - b).abs() < 1e-6,
                "{:?} against {:?}",
                sub.out,
                masked.out
            );
        }
        assert_eq!(cs.flops, cm.flops);
        // Keys and values of the 5 kept positions only, against all 10: f32, d = 4.
        assert_eq!((cs.kv_read, cm.kv_read), (5 * 2 * 4 * 4, 10 * 2 * 4 * 4));
    }

    #[test]
    fn gqa_groups_map_query_heads_to_kv_heads() {
        let h = Heads {
            heads: 8,
            kv_heads: 2,
            head_dim: 4,
        };
        assert_eq!((h.kv_of(3), h.kv_of(4)), (0, 1));
        assert_eq!(h.kv_range(&(2..6)), 0..2);
        let mqa = Heads { kv_heads: 1, ..h };
        assert_eq!(mqa.kv_range(&(0..8)), 0..1);
    }
}
