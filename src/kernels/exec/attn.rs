//! Attention under a partition plan: MHA/GQA/MQA over the batch's decode sequences or prefill
//! chunks, under the layer's span (full, a sliding window, chunks) and, in a sparse layer
//! (DELTA, DeepSeek-V3.2), over only the tokens the model charges it for.

use std::ops::Range;

use super::{Context, Outcome, Unsupported, rand, usize_of};
use crate::kernels::attention::{
    AttnInput, AttnOut, AttnPart, Heads, Seq, attend, attend_band, attend_chunked, attend_subset,
    attend_under, attend_window, merge,
};
use crate::kernels::{Count, Elem, Rng, normalized_error, to_f32s};
use crate::map::plan::{Axis, OpPlan, PartitionPlan};
use crate::model::{Attention, Batch};

/// The head layout of an attention op.
pub(super) fn heads_of(heads: u64, kv_heads: u64, head_dim: u64) -> Heads {
    Heads {
        heads: usize_of(heads),
        kv_heads: usize_of(kv_heads),
        head_dim: usize_of(head_dim),
    }
}

/// The batch's decode sequences: one new token after `kv − 1` cached ones each.
pub(super) fn decode_seqs(batch: &Batch) -> Vec<Seq> {
    batch
        .decode_kv
        .iter()
        .map(|&l| Seq {
            ctx: usize_of(l.max(1) - 1),
            q_len: 1,
        })
        .collect()
}

/// The batch's prefill chunks as sequences.
pub(super) fn prefill_seqs(batch: &Batch) -> Vec<Seq> {
    batch
        .prefill
        .iter()
        .map(|c| Seq {
            ctx: usize_of(c.ctx),
            q_len: usize_of(c.q_len),
        })
        .collect()
}

pub(super) fn attn_input<E: Elem>(shape: Heads, seqs: Vec<Seq>, rng: &mut Rng) -> AttnInput<E> {
    let (g, d) = (shape.kv_heads as u64, shape.head_dim as u64);
    let tq: u64 = seqs.iter().map(|s| s.q_len as u64).sum();
    AttnInput {
        q: rand(rng, &[tq, shape.heads as u64, d], 1.0),
        k_new: rand(rng, &[tq, g, d], 1.0),
        v_new: rand(rng, &[tq, g, d], 1.0),
        k_cache: seqs
            .iter()
            .map(|s| rand(rng, &[g, s.ctx as u64, d], 1.0))
            .collect(),
        v_cache: seqs
            .iter()
            .map(|s| rand(rng, &[g, s.ctx as u64, d], 1.0))
            .collect(),
        shape,
        seqs,
    }
}

/// The attention span of the op's layer (full outside the layers).
pub(super) fn attention_of(p: &OpPlan, cx: Context) -> Attention {
    p.op.layer
        .and_then(|l| cx.model.plans.get(l as usize))
        .map_or(Attention::Full, |plan| plan.attention)
}

/// The sliding window of the op's layer, if it has one.
pub(super) fn window_of(p: &OpPlan, cx: Context) -> Option<usize> {
    match attention_of(p, cx) {
        Attention::Window { tokens } => Some(usize_of(tokens)),
        Attention::Full | Attention::Chunk { .. } => None,
    }
}

/// The keys a sparse layer's queries read ([`crate::model::Sparse::width`]) when the op's layer
/// reads sparsely.
pub(super) fn sparse_of(p: &OpPlan, cx: Context) -> Option<usize> {
    let plan = cx.model.plans.get(p.op.layer? as usize)?;
    plan.variant.sparse.map(|s| usize_of(s.width()))
}

/// What an attention op reads: its layer's span, the kept width of a sparse layer, and whether
/// it is the decode op (one query per sequence) or the prefill one.
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    /// The layer's span.
    pub span: Attention,
    /// The keys each query keeps in a sparse layer.
    pub sparse: Option<usize>,
    /// Decode (else prefill).
    pub decode: bool,
}

impl Reads {
    /// The reads of op `p` in its layer.
    pub(super) fn of(p: &OpPlan, cx: Context, decode: bool) -> Reads {
        Reads {
            span: attention_of(p, cx),
            sparse: sparse_of(p, cx),
            decode,
        }
    }
}

/// The span's window (`usize::MAX` under full attention).
fn span_window(span: Attention) -> Result<usize, Unsupported> {
    match span {
        Attention::Full => Ok(usize::MAX),
        Attention::Window { tokens } => Ok(usize_of(tokens)),
        Attention::Chunk { .. } => Err(Unsupported::NoPlanKernel("sparse chunked attention")),
    }
}

/// The tokens a sparse decode query at position `q` keeps: all of the `window` keys before it
/// and itself when they are at most `w`, else itself and `w − 1` keys spread evenly over them
/// (the model charges the count, not which; the kernel's choice is any fixed one). Whether `k`
/// is kept, in O(1).
fn kept(q: usize, k: usize, window: usize, w: usize) -> bool {
    let first = (q + 1).saturating_sub(window);
    let n = q - first.min(q);
    if k > q || k < first {
        return false;
    }
    if k == q || n < w {
        return true;
    }
    let off = k - first;
    let j = (off * (w - 1)).div_ceil(n);
    j < w - 1 && j * n / (w - 1) == off
}

/// The kept positions of each decode sequence (`w` of them at most, the new token's included).
fn keep_lists(seqs: &[Seq], window: usize, w: usize) -> Vec<Vec<usize>> {
    seqs.iter()
        .map(|s| {
            let q = s.ctx;
            let first = (q + 1).saturating_sub(window);
            (first..=q).filter(|&k| kept(q, k, window, w)).collect()
        })
        .collect()
}

/// The reference (full attention over the whole cache under the span's mask, and a sparse
/// layer's kept tokens as a mask too) and one part's kernel, as `reads` says.
fn kernel<E: Elem>(
    x: &AttnInput<E>,
    reads: Reads,
    part: Option<&AttnPart>,
    c: &mut Count,
) -> Result<AttnOut<E>, Unsupported> {
    let whole = AttnPart {
        heads: 0..x.shape.heads,
        keys: None,
    };
    let under =
        |mask: &dyn Fn(usize, usize) -> bool, c: &mut Count| attend_under(x, &whole, mask, c);
    let window = span_window(reads.span);
    Ok(match (reads.sparse, reads.span, part) {
        (None, Attention::Window { tokens }, None) => {
            let w = usize_of(tokens);
            let band = move |q: usize, k: usize| k <= q && q - k < w;
            attend_under(x, &whole, &band, c)
        }
        (None, Attention::Chunk { tokens }, None) => {
            let cs = usize_of(tokens).max(1);
            let same = move |q: usize, k: usize| k <= q && k / cs == q / cs;
            attend_under(x, &whole, &same, c)
        }
        (None, Attention::Full, None) => attend(x, &whole, c),
        (None, Attention::Chunk { tokens }, Some(pt)) => attend_chunked(x, pt, usize_of(tokens), c),
        (None, Attention::Window { tokens }, Some(pt)) => {
            attend_window(x, pt, Some(usize_of(tokens)), c)
        }
        (None, Attention::Full, Some(pt)) => attend(x, pt, c),
        (Some(w), _, None) if reads.decode => {
            let window = window?;
            under(&move |q: usize, k: usize| kept(q, k, window, w), c)
        }
        (Some(w), _, Some(pt)) if reads.decode => {
            let keep = keep_lists(&x.seqs, window?, w);
            attend_subset(x, pt, &keep, c)
        }
        // A sparse prefill chunk: each query the `w` keys before it (at most its span's), the
        // cache read from the span's first key.
        (Some(w), _, part) => {
            let window = window?;
            let band = w.min(window);
            match part {
                None => under(&move |q: usize, k: usize| k <= q && q - k < band, c),
                Some(pt) => attend_band(x, pt, band, window, c),
            }
        }
    })
}

/// Executes attention under a heads or key-range plan (or whole / replicated). Under a sliding
/// window or chunked span each part reads only the keys its queries see, in a sparse layer only
/// the kept ones; the reference is full attention over the whole cache under the band, chunk or
/// kept-token mask.
pub fn run_attention<E: Elem>(plan: &PartitionPlan, x: AttnInput<E>, reads: Reads) -> Outcome {
    let (h, d) = (x.shape.heads, x.shape.head_dim);
    let reference = to_f32s(&kernel(&x, reads, None, &mut Count::default())?.out);
    let rows = reference.len() / (h * d).max(1);
    let mut counts = Vec::new();
    let mut outs: Vec<AttnOut<E>> = Vec::new();
    let mut err: f64 = 0.0;
    for pt in &plan.parts {
        let mut c = Count::default();
        let r = |v: &Range<u64>| v.start as usize..v.end as usize;
        let part = match (plan.axis, pt.share.as_slice()) {
            (Axis::Heads, [s]) => AttnPart {
                heads: r(s),
                keys: None,
            },
            (Axis::KvRange, [s]) => AttnPart {
                heads: 0..h,
                keys: Some(r(s)),
            },
            (Axis::Heads | Axis::KvRange, _) => {
                return Err(Unsupported::AttentionRanges);
            }
            _ => AttnPart {
                heads: 0..h,
                keys: None,
            },
        };
        let o = kernel(&x, reads, Some(&part), &mut c)?;
        if plan.axis == Axis::Heads {
            let hs = part.heads.clone();
            let want: Vec<f32> = (0..rows)
                .flat_map(|t| {
                    hs.clone()
                        .flat_map(move |hh| (0..d).map(move |j| (t, hh, j)))
                })
                .map(|(t, hh, j)| reference[(t * h + hh) * d + j])
                .collect();
            err = err.max(normalized_error(&to_f32s(&o.out), &want));
        } else if plan.axis != Axis::KvRange {
            err = err.max(normalized_error(&to_f32s(&o.out), &reference));
        }
        counts.push(c);
        outs.push(o);
    }
    if plan.axis == Axis::KvRange {
        err = normalized_error(&merge(&outs, d), &reference);
    }
    Ok((err, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_decode_query_keeps_itself_and_w_minus_1_spread_keys_of_its_span() {
        let keep = keep_lists(&[Seq { ctx: 20, q_len: 1 }], usize::MAX, 5);
        assert_eq!(keep, [vec![0, 5, 10, 15, 20]]);
        // Under a window of 8 (positions 13..=20), 4 of them; a short context keeps all.
        let keep = keep_lists(&[Seq { ctx: 20, q_len: 1 }, Seq { ctx: 2, q_len: 1 }], 8, 4);
        assert_eq!(keep, [vec![13, 15, 17, 20], vec![0, 1, 2]]);
    }
}
