//! Two-micro-batch overlap of an expert-parallel MoE layer (DeepSeek-V3's overlap of
//! all-to-all with compute, arXiv 2412.19437 §3.4; SGLang's two-batch overlap): the layer's
//! batch is split into two halves, and while one half's tokens are dispatched to their experts
//! or combined back, the other half computes.
//!
//! **The schedule.** Each half is five segments: `pre` (attention, router, top-k), the
//! `dispatch` all-to-all, `mid` (the routed experts, the most loaded device's time, and the
//! shared expert), the `combine` all-to-all, and `post` (the weighted sum and the residual).
//! Compute runs on one in-order stream (pre A, pre B, mid A, mid B, post A, post B) and the
//! all-to-alls on the link's (dispatch A, dispatch B, combine A, combine B), each segment
//! starting once its stream is free and its half's previous segment has ended; layers stay
//! barriers. With equal halves whose communication is shorter than the compute beside it,
//! the layer costs its compute (two halves' worth); when communication dominates, it costs the
//! communication plus one half's `pre` and `post`, which nothing overlaps.

use crate::model::{Batch, PrefillChunk};

/// The segment times of one half of a layer, s.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Half {
    /// Attention, router and top-k.
    pub pre: f64,
    /// The dispatch all-to-all.
    pub dispatch: f64,
    /// The routed experts (the most loaded device) and the shared expert.
    pub mid: f64,
    /// The combine all-to-all.
    pub combine: f64,
    /// The weighted sum of the experts' outputs and what follows it.
    pub post: f64,
}

impl Half {
    /// Its compute segments' time.
    pub fn compute(&self) -> f64 {
        self.pre + self.mid + self.post
    }

    /// Its all-to-alls' time.
    pub fn comm(&self) -> f64 {
        self.dispatch + self.combine
    }
}

/// The layer's time when halves `a` and `b` run under the overlap schedule (module doc).
pub fn two_batch(a: &Half, b: &Half) -> f64 {
    // Ends of each segment, in the order the two streams run them.
    let pre_a = a.pre;
    let dis_a = pre_a + a.dispatch;
    let pre_b = pre_a + b.pre;
    let dis_b = pre_b.max(dis_a) + b.dispatch;
    let mid_a = pre_b.max(dis_a) + a.mid;
    let mid_b = mid_a.max(dis_b) + b.mid;
    let com_a = mid_a.max(dis_b) + a.combine;
    let com_b = mid_b.max(com_a) + b.combine;
    let post_a = mid_b.max(com_a) + a.post;
    post_a.max(com_b) + b.post
}

/// `batch` split into two halves of about equal tokens: decode sequences alternate, and the
/// prefill chunks fill the first half up to half the tokens, the chunk that crosses the middle
/// split in two (its second part attends the first's tokens). `None` when a half would be empty.
pub fn halves(batch: &Batch) -> Option<(Batch, Batch)> {
    let (mut a, mut b) = (Batch::default(), Batch::default());
    for (i, &kv) in batch.decode_kv.iter().enumerate() {
        if i % 2 == 0 { &mut a } else { &mut b }.decode_kv.push(kv);
    }
    let want = batch.tokens().div_ceil(2);
    for c in &batch.prefill {
        let room = want.saturating_sub(a.tokens());
        if room >= c.q_len {
            a.prefill.push(*c);
        } else if room > 0 {
            let first = PrefillChunk {
                q_len: room,
                ctx: c.ctx,
                last: false,
            };
            let rest = PrefillChunk {
                q_len: c.q_len - room,
                ctx: c.ctx + room,
                last: c.last,
            };
            a.prefill.push(first);
            b.prefill.push(rest);
        } else {
            b.prefill.push(*c);
        }
    }
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// Tokens per expert split into the two halves: expert e's c tokens as ⌈c/2⌉ and ⌊c/2⌋, the
/// larger part in the first half for even e and in the second for odd (so the halves' totals
/// differ by at most one per pair of experts, and every token is kept).
pub fn split_counts(counts: &[u64]) -> (Vec<u64>, Vec<u64>) {
    counts
        .iter()
        .enumerate()
        .map(|(e, &c)| {
            let (big, small) = (c.div_ceil(2), c / 2);
            if e % 2 == 0 {
                (big, small)
            } else {
                (small, big)
            }
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn half(pre: f64, dispatch: f64, mid: f64, combine: f64, post: f64) -> Half {
        Half {
            pre,
            dispatch,
            mid,
            combine,
            post,
        }
    }

    #[test]
    fn without_communication_the_layer_costs_both_halves_compute() {
        let h = half(1.5, 0.0, 2.0, 0.0, 0.5);
        assert_eq!(two_batch(&h, &h), 8.0);
    }

    #[test]
    fn communication_shorter_than_compute_is_hidden() {
        // Compute 3 + 3 + 3 per half, all-to-alls 1 each: every all-to-all runs beside the
        // other half's compute, so the layer costs its compute, 18, against 22 one after another.
        let h = half(3.0, 1.0, 3.0, 1.0, 3.0);
        assert_eq!(two_batch(&h, &h), 18.0);
    }

    #[test]
    fn dominant_communication_leaves_one_pre_and_one_post_exposed() {
        // All-to-alls 3 each, compute 1 each: the link runs 4 × 3 = 12 back to back after the
        // first half's pre (1), and the second half's post (1) follows: 14, against 18.
        let h = half(1.0, 3.0, 1.0, 3.0, 1.0);
        assert_eq!(two_batch(&h, &h), 14.0);
    }

    #[test]
    fn halves_keep_every_token_and_split_a_long_chunk() {
        let b = Batch {
            decode_kv: vec![10, 11, 12],
            prefill: vec![PrefillChunk {
                q_len: 9,
                ctx: 4,
                last: true,
            }],
        };
        let (a, c) = halves(&b).unwrap();
        assert_eq!((a.tokens(), c.tokens()), (6, 6));
        assert_eq!((a.decode_kv, c.decode_kv), (vec![10, 12], vec![11]));
        assert_eq!(
            a.prefill[0],
            PrefillChunk {
                q_len: 4,
                ctx: 4,
                last: false
            }
        );
        assert_eq!(
            c.prefill[0],
            PrefillChunk {
                q_len: 5,
                ctx: 8,
                last: true
            }
        );
        assert!(halves(&Batch::decode(1, 5)).is_none());
        let (x, y) = split_counts(&[3, 3, 0, 1]);
        assert_eq!((x, y), (vec![2, 1, 0, 0], vec![1, 2, 0, 1]));
    }
}
