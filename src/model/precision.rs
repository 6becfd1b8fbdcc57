//! Weight bytes and bits per weight when layers carry their own precision
//! ([`super::LayerQuant`]: HAWQ-style mixed precision with per-group scales).

use super::plan::Ffn;
use super::spec::ModelSpec;
use crate::work::Dtype;

impl ModelSpec {
    /// Weight bytes (all but the routed experts, the routed experts) when some layer has its
    /// own precision: each decoder layer at its weight type plus its group scales, the routed
    /// experts at their storage type where one is set (MXFP4) and else at the layer's, and the
    /// embedding, final norm and LM head at `weights`. `None` when no layer has its own.
    pub(super) fn layer_weight_bytes(&self, weights: Dtype) -> Option<(f64, f64)> {
        if self.plans.iter().all(|p| p.knobs.quant.is_none()) {
            return None;
        }
        let edge = self.params()
            - (0..self.layers())
                .map(|l| self.layer_params(l))
                .sum::<u64>();
        let (mut rest, mut experts) = (edge as f64 * weights.bytes(), 0.0);
        for (l, plan) in self.plans.iter().enumerate() {
            let q = plan.knobs.quant;
            let per = q.and_then(|q| q.weights).unwrap_or(weights).bytes()
                + q.and_then(|q| q.scales)
                    .map_or(0.0, |s| s.bytes_per_weight());
            let routed = match (plan.ffn, self.moe) {
                (Ffn::Moe, Some(m)) => {
                    m.experts * self.ffn_matrices() * self.hidden * m.intermediate
                }
                _ => 0,
            };
            rest += (self.layer_params(l as u32) - routed) as f64 * per;
            experts += routed as f64 * plan.expert_weights.map_or(per, Dtype::bytes);
        }
        Some((rest, experts))
    }

    /// Average bits per weight over every parameter at run weight type `weights`: the
    /// layers' own types and scales, MXFP4 experts, and the rest at `weights`.
    pub fn bits_per_weight(&self, weights: Dtype) -> f64 {
        let (rest, experts) = self.weight_bytes(weights);
        8.0 * (rest + experts) / self.params() as f64
    }
}
