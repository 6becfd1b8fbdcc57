//! Token scoring under its plan: the op runs whole, or replicated on every device of a
//! tensor-parallel group, each device scoring with the heads it holds.

use std::ops::Range;

use super::attn::{attention_of, decode_seqs, prefill_seqs};
use super::{Context, Outcome, Unsupported, rand, usize_of};
use crate::kernels::score::{ScoreInput, Span, token_score, token_score_sorted};
use crate::kernels::{Count, Elem, Rng};
use crate::map::plan::OpPlan;
use crate::model::{Attention, OpKind, ScoreShape};

/// The heads of each part: a part whose op scores fewer heads than the whole (DELTA's scorer
/// over the layer's own heads, split as they are) takes its device's slot of them.
fn part_heads(p: &OpPlan, heads: usize) -> Vec<Range<usize>> {
    p.plan
        .parts
        .iter()
        .enumerate()
        .map(|(i, pt)| match pt.op.kind {
            OpKind::TokenScore(s) if usize_of(s.heads) < heads => {
                let n = usize_of(s.heads);
                i * n..(i + 1) * n
            }
            _ => 0..heads,
        })
        .collect()
}

/// The `token_score` op of shape `s` over the batch's decode sequences and prefill chunks. Each
/// part's kept tokens are checked against the reference selection (every score sorted) by the
/// same heads; the error is the share of kept indices that differ.
pub(super) fn run_score<E: Elem>(p: &OpPlan, cx: Context, s: ScoreShape, rng: &mut Rng) -> Outcome {
    let seqs: Vec<_> = decode_seqs(cx.batch)
        .into_iter()
        .chain(prefill_seqs(cx.batch))
        .collect();
    let (heads, kv_heads, dim) = (usize_of(s.heads), usize_of(s.kv_heads), usize_of(s.dim));
    let tq: u64 = seqs.iter().map(|x| x.q_len as u64).sum();
    let (h, g, d) = (s.heads, s.kv_heads, s.dim);
    let x = ScoreInput::<E> {
        heads,
        kv_heads,
        dim,
        own_keys: s.own_keys,
        q: rand(rng, &[tq, h, d], 1.0),
        w: match s.own_keys {
            true => rng
                .vec(usize_of(tq * h), 1.0)
                .iter()
                .map(|w| w.abs())
                .collect(),
            false => vec![1.0; usize_of(tq * h)],
        },
        k_new: rand(rng, &[tq, g, d], 1.0),
        k_cache: seqs
            .iter()
            .map(|q| rand(rng, &[g, q.ctx as u64, d], 1.0))
            .collect(),
        seqs,
    };
    let span = attention_of(p, cx);
    let sees = move |q: usize, k: usize| {
        k <= q
            && match span {
                Attention::Full => true,
                Attention::Window { tokens } => q - k < usize_of(tokens),
                Attention::Chunk { tokens } => {
                    k / usize_of(tokens).max(1) == q / usize_of(tokens).max(1)
                }
            }
    };
    let first = move |q: crate::kernels::attention::Seq| match span {
        Attention::Full => 0,
        Attention::Window { tokens } => (q.ctx + 1).saturating_sub(usize_of(tokens)),
        Attention::Chunk { tokens } => q.ctx - q.ctx % usize_of(tokens).max(1),
    };
    let span: Span = (&sees, &first);
    let kept = usize_of(s.kept);
    let (mut err, mut counts) = (0f64, Vec::new());
    for hs in part_heads(p, heads) {
        if hs.end > heads {
            return Err(Unsupported::AttentionRanges);
        }
        let mut c = Count::default();
        let got = token_score(&x, &hs, span, kept, &mut c);
        let want = token_score_sorted(&x, &hs, span, kept);
        let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        err = err.max(wrong as f64 / want.len().max(1) as f64);
        counts.push(c);
    }
    Ok((err, counts))
}
