//! The verify pass of a speculative round, priced in its parts: the target over `d + 1`
//! positions per decoding sequence, where an early-exit draft's first ℓ layers already ran on
//! all but the last of them, and an LM head with a row per verified position.
//!
//! LayerSkip's verify pass (`forward_remainder`, REFERENCE.md §Speculative decoding) runs the
//! first ℓ layers on one position per sequence, the last draft, and takes the drafted
//! positions' layer-ℓ hidden states from the drafting; layers ℓ + 1 .. L run on all `d + 1`
//! positions, and the head gives logits for each, since every draft is checked against the
//! target's token at its position. Reading the cached hidden states back (`d · hidden`
//! elements per sequence) is not priced.

use super::{Coster, IterCost, IterError, embedding, tail};
use crate::model::Batch;

/// The batches of one verify pass.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPass<'b> {
    /// What the layers from `early`'s on run: a chunk of `d + 1` positions per decoding
    /// sequence, then the iteration's prefill chunks.
    pub batch: &'b Batch,
    /// For an early-exit draft, its layers (ℓ) and what they run in the verify pass: one
    /// position per decoding sequence, then the prefill chunks; `None` for a draft model.
    pub early: Option<(usize, &'b Batch)>,
    /// A batch whose logit rows are the pass's: `d + 1` per decoding sequence, and one per
    /// prompt the iteration ends.
    pub head: &'b Batch,
}

impl Coster<'_> {
    /// Prices the verify pass `v`: its embedding and first ℓ layers on `v.early`'s batch
    /// (`early_counts` routing its tokens), the rest on `v.batch` (`counts`, one entry per
    /// layer from ℓ on, or one for all), the head on `v.head`'s rows.
    pub fn verify(
        &mut self,
        v: &VerifyPass<'_>,
        counts: &[Vec<u64>],
        early_counts: &[Vec<u64>],
        spans: bool,
    ) -> Result<IterCost, IterError> {
        let layers = self.kind_of.len();
        let (from, lead, lead_counts) = match v.early {
            Some((l, b)) if l > 0 && l < layers => (l, b, early_counts),
            _ => (0, v.batch, counts),
        };
        let mut out = IterCost::default();
        let first = self.build(lead, self.kind_of[0], lead_counts.first())?;
        out.time = self.run_part(&first, embedding, None, 0.0, &mut out, spans)?;
        if from > 0 {
            self.layers_of(lead, 0..from, lead_counts, &first, &mut out, spans)?;
            let rest = self.build(v.batch, self.kind_of[from], counts.first())?;
            self.layers_of(v.batch, from..layers, counts, &rest, &mut out, spans)?;
        } else {
            self.layers_of(v.batch, 0..layers, counts, &first, &mut out, spans)?;
        }
        let head = self.build(v.head, self.kind_of[0], None)?;
        let t = out.time;
        out.time = t + self.run_part(&head, tail, None, t, &mut out, spans)?;
        out.energy = out.energy_parts.total();
        Ok(out)
    }
}
