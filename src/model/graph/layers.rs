//! The layer loop both graph builders share (plain and sequence-parallel).

use petgraph::graph::NodeIndex;

use super::{Builder, Iteration, ffn_block};
use crate::model::knob_ops;
use crate::model::spec::ModelError;

/// Every layer of `it` after `last`: its own batch and precision, then `attention` and the FFN,
/// each over the layer's tokens divided by `split` (rounded up; 1 but for sequence parallelism).
/// Returns the last op.
pub(in crate::model) fn layers(
    b: &mut Builder,
    it: &Iteration,
    split: u64,
    mut last: NodeIndex,
    attention: impl Fn(&mut Builder, &Iteration, u32, NodeIndex) -> NodeIndex,
) -> Result<NodeIndex, ModelError> {
    let (m, batch) = (it.m, it.batch);
    for (l, plan) in (0..m.layers()).zip(&m.plans) {
        // The layer's own batch (image tokens dropped) and precision, when its plan says so.
        let own = plan.knobs.image.map(|k| k.batch(batch));
        let lb = own.as_ref().unwrap_or(batch);
        let p = knob_ops::layer_precision(it.p, plan);
        let lit = Iteration {
            batch: lb,
            t: lb.tokens().div_ceil(split),
            p,
            ..*it
        };
        b.p = p;
        last = knob_ops::dequant(b, &lit, l, last);
        if plan.has_attention() {
            last = attention(b, &lit, l, last);
        }
        if plan.has_ffn() {
            last = ffn_block(b, &lit, l, last)?;
        }
    }
    Ok(last)
}
