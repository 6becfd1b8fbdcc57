//! Latent attention (DeepSeek MLA) and the batched GEMMs around its absorbed form
//! (`q_absorb`: W_UK folded into each head's query; `v_up`: W_UV after attention), whole or split
//! by heads.

use std::ops::Range;

use super::{
    Context, Outcome, Unsupported, decode_seqs, prefill_seqs, rand, sparse_of, usize_of, window_of,
};
use crate::kernels::gemm::gemm;
use crate::kernels::mla::{
    MlaAbsorbed, MlaExpanded, MlaShape, key_span, mla_absorbed, mla_expanded,
};
use crate::kernels::{Count, Elem, Rng, normalized_error, to_f32s};
use crate::map::plan::{Axis, OpPlan};

/// The heads of each part: its share under a heads split, all of them otherwise.
fn part_heads(p: &OpPlan, heads: usize) -> Vec<Range<usize>> {
    p.plan
        .parts
        .iter()
        .map(|pt| match (p.plan.axis, pt.share.as_slice()) {
            (Axis::Heads, [s]) => usize_of(s.start)..usize_of(s.end),
            _ => 0..heads,
        })
        .collect()
}

/// Runs each part on its heads of an output [rows, heads, width] and compares it with those
/// heads of the whole.
fn by_heads<E: Elem>(
    p: &OpPlan,
    (heads, width): (usize, usize),
    run: impl Fn(Range<usize>, &mut Count) -> Vec<E>,
) -> Outcome {
    let reference = to_f32s(&run(0..heads, &mut Count::default()));
    let rows = reference.len() / (heads * width).max(1);
    let (mut err, mut counts) = (0f64, Vec::new());
    for hs in part_heads(p, heads) {
        let mut c = Count::default();
        let got = to_f32s(&run(hs.clone(), &mut c));
        let want: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let hs = hs.clone();
                let reference = &reference;
                hs.flat_map(move |h| reference[(r * heads + h) * width..][..width].to_vec())
            })
            .collect();
        err = err.max(normalized_error(&got, &want));
        counts.push(c);
    }
    Ok((err, counts))
}

/// An MLA attention op of `shape`: the absorbed form over the batch's decode sequences, the
/// expanded one over its prefill chunks.
pub(super) fn run_mla<E: Elem>(
    p: &OpPlan,
    cx: Context,
    absorbed: bool,
    shape: MlaShape,
    rng: &mut Rng,
) -> Outcome {
    let window = window_of(p, cx);
    let (h, cw) = (shape.heads as u64, shape.cache() as u64);
    let seqs = if absorbed {
        decode_seqs(cx.batch)
    } else {
        prefill_seqs(cx.batch)
    };
    let tq: u64 = seqs.iter().map(|s| s.q_len as u64).sum();
    let keys: u64 = seqs.iter().map(|&s| key_span(s, window).len() as u64).sum();
    // The latent kernels read every key of the span: a sparse layer (DeepSeek-V3.2) whose
    // queries see more keys than they keep is not run (`dyad validate` keeps the batch under
    // the kept width in latent-attention layers: `app::validate::narrow_spans`).
    if let Some(w) = sparse_of(p, cx)
        && seqs.iter().any(|&s| key_span(s, window).len() > w)
    {
        return Err(Unsupported::NoPlanKernel(
            "sparse latent attention past its kept tokens",
        ));
    }
    let new = rand::<E>(rng, &[tq, cw], 1.0);
    if absorbed {
        let x = MlaAbsorbed {
            q_lat: rand(rng, &[tq, h, shape.latent as u64], 1.0),
            q_rope: rand(rng, &[tq, h, shape.rope as u64], 1.0),
            cache: seqs
                .iter()
                .map(|s| rand(rng, &[s.ctx as u64, cw], 1.0))
                .collect(),
            new,
            shape,
            seqs,
            window,
        };
        by_heads(p, (shape.heads, shape.latent), |hs, c| {
            mla_absorbed(&x, hs, c)
        })
    } else {
        let x = MlaExpanded {
            q: rand(rng, &[tq, h, (shape.nope + shape.rope) as u64], 1.0),
            k_nope: rand(rng, &[keys, h, shape.nope as u64], 1.0),
            v: rand(rng, &[keys, h, shape.v as u64], 1.0),
            k_rope: rand(rng, &[keys, shape.rope as u64], 1.0),
            new,
            shape,
            seqs,
            window,
        };
        by_heads(p, (shape.heads, shape.v), |hs, c| mla_expanded(&x, hs, c))
    }
}

/// `batch` independent GEMMs `[m,k]·[k,n]` (one per head), whole or split by heads: each part
/// runs its heads' products.
pub(super) fn run_batched_gemm<E: Elem>(
    p: &OpPlan,
    (m, n, k, batch): (u64, u64, u64, u64),
    rng: &mut Rng,
) -> Outcome {
    let a: Vec<Vec<E>> = (0..batch).map(|_| rand(rng, &[m, k], 1.0)).collect();
    let scale = 1.0 / (k as f32).sqrt();
    let b: Vec<Vec<E>> = (0..batch).map(|_| rand(rng, &[k, n], scale)).collect();
    let (m, n, k) = (usize_of(m), usize_of(n), usize_of(k));
    // Output [batch, m, n] seen as [1, batch, m·n]: one "row" whose heads are the products.
    by_heads(p, (usize_of(batch), m * n), |hs, c| {
        hs.flat_map(|i| gemm(m, k, n, &a[i], &b[i], c)).collect()
    })
}
