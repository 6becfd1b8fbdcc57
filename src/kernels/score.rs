//! Token scoring, the op that chooses the tokens a sparse layer reads (DELTA's selection layers,
//! DeepSeek-V3.2's lightning indexer): each query's scoring heads against every key it may
//! attend, the heads' scores summed with the query's head weights, and the top `kept` tokens.
//!
//! Per (query, key, head) it does the dot product (2·dim FLOPs) and the weighted sum over heads
//! (a multiply and an add), as [`crate::model::Scorer::flops_per_pair`] charges; the ReLU of the
//! indexer and the top-k are comparisons, not FLOPs. The per-query head weights are a handful of
//! scalars per query (64 for DeepSeek-V3.2's indexer against its 64 × 128 query elements) and,
//! like routing metadata, are no counted stream. Each query writes `kept` token indices (4 bytes
//! each; [`NONE`] where the context has fewer tokens, as the indexer's `topk_indices` pads).

use std::cmp::Ordering;
use std::ops::Range;

use super::attention::Seq;
use super::{Count, Elem, elems, load};

/// The index written where a query has fewer keys than it keeps.
pub const NONE: u32 = u32::MAX;

/// Scoring inputs in storage type `E`.
#[derive(Debug, Clone)]
pub struct ScoreInput<E> {
    /// Scoring heads.
    pub heads: usize,
    /// Key heads (the layer's KV heads, each shared by `heads / kv_heads` scoring heads; 1 for
    /// an indexer's own keys).
    pub kv_heads: usize,
    /// Elements per head.
    pub dim: usize,
    /// Whether the keys are the scorer's own cache: the new tokens' keys are written by this op
    /// (else the layer's attention writes them, and this op only reads them).
    pub own_keys: bool,
    /// The sequences, in the order their rows appear in `q`.
    pub seqs: Vec<Seq>,
    /// Queries, [Σ q_len, heads, dim].
    pub q: Vec<E>,
    /// Head weights, [Σ q_len, heads].
    pub w: Vec<f32>,
    /// New keys, [Σ q_len, kv_heads, dim].
    pub k_new: Vec<E>,
    /// Cached keys per sequence, [kv_heads, ctx, dim].
    pub k_cache: Vec<Vec<E>>,
}

/// Which keys a query at a position sees, and where each sequence's key read starts.
pub type Span<'a> = (&'a dyn Fn(usize, usize) -> bool, &'a dyn Fn(Seq) -> usize);

/// Each query's summed score of every key it sees, by the heads `hs`: a list of (position,
/// score) per query row. Counts the keys read (and the own keys written), the queries read and
/// the FLOPs.
pub fn scores<E: Elem>(
    x: &ScoreInput<E>,
    hs: &Range<usize>,
    (sees, first): Span,
    c: &mut Count,
) -> Vec<Vec<(usize, f32)>> {
    let (d, group) = (x.dim, x.heads / x.kv_heads.max(1));
    let kvs = if hs.is_empty() {
        0..0
    } else {
        hs.start / group..(hs.end - 1) / group + 1
    };
    let mut rows = Vec::new();
    let mut row0 = 0;
    for (si, s) in x.seqs.iter().enumerate() {
        let len = s.ctx + s.q_len;
        let span = first(*s).min(len)..len;
        // keys[g][j]: key head g at position span.start + j.
        let keys: Vec<Vec<f32>> = kvs
            .clone()
            .map(|g| {
                let mut k = Vec::with_capacity(elems(&[span.len(), d]));
                for p in span.clone() {
                    let row = if p < s.ctx {
                        &x.k_cache[si][(g * s.ctx + p) * d..][..d]
                    } else {
                        if x.own_keys {
                            c.kv_write += d as u64 * E::BYTES;
                        }
                        &x.k_new[((row0 + p - s.ctx) * x.kv_heads + g) * d..][..d]
                    };
                    k.extend(load(row, &mut c.kv_read));
                }
                k
            })
            .collect();
        for i in 0..s.q_len {
            let qpos = s.ctx + i;
            let seen: Vec<usize> = span.clone().filter(|&p| sees(qpos, p)).collect();
            let mut total = vec![0f32; seen.len()];
            for h in hs.clone() {
                let q = load(&x.q[((row0 + i) * x.heads + h) * d..][..d], &mut c.act_in);
                let (kh, w) = (&keys[h / group - kvs.start], x.w[(row0 + i) * x.heads + h]);
                for (t, &p) in total.iter_mut().zip(&seen) {
                    let k = &kh[(p - span.start) * d..][..d];
                    let dot: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum();
                    *t += w * if x.own_keys { dot.max(0.0) } else { dot };
                }
                c.flops += (2 * d as u64 + 2) * seen.len() as u64;
            }
            rows.push(seen.into_iter().zip(total).collect());
        }
        row0 += s.q_len;
    }
    rows
}

/// Higher score first, the earlier position on a tie.
fn rank(a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The kept positions of one query's scores, ascending, padded with [`NONE`] to `kept`.
fn padded(mut chosen: Vec<usize>, kept: usize) -> Vec<u32> {
    chosen.sort_unstable();
    let mut out: Vec<u32> = chosen.into_iter().map(|p| p as u32).collect();
    out.resize(kept, NONE);
    out
}

/// Token scoring by the heads `hs`: each query's top `kept` positions by summed score
/// (partial selection), [Σ q_len, kept], written as 4-byte indices.
pub fn token_score<E: Elem>(
    x: &ScoreInput<E>,
    hs: &Range<usize>,
    span: Span,
    kept: usize,
    c: &mut Count,
) -> Vec<u32> {
    let rows = scores(x, hs, span, c);
    c.act_out += (rows.len() * kept) as u64 * 4;
    rows.into_iter()
        .flat_map(|mut r| {
            if r.len() > kept && kept > 0 {
                r.select_nth_unstable_by(kept - 1, rank);
            }
            r.truncate(kept);
            padded(r.into_iter().map(|(p, _)| p).collect(), kept)
        })
        .collect()
}

/// The reference selection: every score sorted whole, the first `kept` taken.
pub fn token_score_sorted<E: Elem>(
    x: &ScoreInput<E>,
    hs: &Range<usize>,
    span: Span,
    kept: usize,
) -> Vec<u32> {
    scores(x, hs, span, &mut Count::default())
        .into_iter()
        .flat_map(|mut r| {
            r.sort_by(rank);
            padded(r.into_iter().take(kept).map(|(p, _)| p).collect(), kept)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;
    use crate::kernels::attention::causal;

    fn input(own_keys: bool, ctx: usize) -> ScoreInput<f32> {
        let mut rng = Rng::new(9);
        let (heads, kv_heads, dim) = if own_keys { (4, 1, 8) } else { (4, 2, 8) };
        ScoreInput {
            heads,
            kv_heads,
            dim,
            own_keys,
            seqs: vec![Seq { ctx, q_len: 1 }],
            q: rng.vec(heads * dim, 1.0),
            w: if own_keys {
                rng.vec(heads, 1.0).iter().map(|w| w.abs()).collect()
            } else {
                vec![1.0; heads]
            },
            k_new: rng.vec(kv_heads * dim, 1.0),
            k_cache: vec![rng.vec(kv_heads * ctx * dim, 1.0)],
        }
    }

    #[test]
    fn the_kept_tokens_are_the_highest_summed_scores_and_the_count_is_the_charge() {
        for own in [false, true] {
            let x = input(own, 40);
            let mut c = Count::default();
            let span: Span = (&causal, &|_| 0);
            let got = token_score(&x, &(0..4), span, 6, &mut c);
            // By hand: the summed score of each of the 41 keys, the six best.
            let d = 8;
            let key = |p: usize, g: usize| -> &[f32] {
                if p < 40 {
                    &x.k_cache[0][(g * 40 + p) * d..][..d]
                } else {
                    &x.k_new[g * d..][..d]
                }
            };
            let mut all: Vec<(usize, f32)> = (0..41)
                .map(|p| {
                    let s = (0..4)
                        .map(|h| {
                            let g = h / (4 / x.kv_heads);
                            let dot: f32 = x.q[h * d..][..d]
                                .iter()
                                .zip(key(p, g))
                                .map(|(a, b)| a * b)
                                .sum();
                            x.w[h] * if own { dot.max(0.0) } else { dot }
                        })
                        .sum();
                    (p, s)
                })
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut want: Vec<u32> = all[..6].iter().map(|&(p, _)| p as u32).collect();
            want.sort_unstable();
            assert_eq!(got, want);
            // 41 keys × 4 heads × (2·8 + 2) FLOPs; the keys of every KV head read once; 6
            // indices out; an own key cache writes the new token's key.
            assert_eq!(c.flops, 41 * 4 * 18);
            assert_eq!(c.kv_read, 41 * x.kv_heads as u64 * 8 * 4);
            assert_eq!(c.kv_write, if own { 8 * 4 } else { 0 });
            assert_eq!((c.act_in, c.act_out), (4 * 8 * 4, 6 * 4));
        }
    }

    #[test]
    fn a_context_shorter_than_the_kept_tokens_keeps_all_and_pads() {
        let x = input(true, 2);
        let span: Span = (&causal, &|_| 0);
        let got = token_score(&x, &(0..4), span, 5, &mut Count::default());
        assert_eq!(got, [0, 1, 2, NONE, NONE]);
        assert_eq!(got, token_score_sorted(&x, &(0..4), span, 5));
    }
}
