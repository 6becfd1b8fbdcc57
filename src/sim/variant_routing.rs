//! Routing under the per-layer MoE variants, at the sampler's call sites: MoE++'s
//! zero-computation experts as extra experts of each layer's weights (FFN experts weighted by
//! τ), and top-p routing as groups of tokens by k (a multinomial of the tokens over the layer's
//! distribution of k), each group drawn by the sampler's `k`-expert draw. Under balanced
//! routing no counts are drawn: the graph builder spreads each layer's expected slots.

use rand::Rng;
use rand::RngExt;

use super::routing::Router;
use crate::model::{KPmf, MAX_K, ModelSpec, PPM};

/// Whether some layer of `m` routes under a variant.
pub fn routes_variants(m: &ModelSpec) -> bool {
    m.plans.iter().any(|p| p.knobs.routes_variant())
}

/// `rt` with each MoE++ layer's zero-computation experts appended at weight 1 and its FFN
/// experts' weights scaled to mean τ (so the FFN share of routed slots is about r of MoE++ §3).
pub fn with_zero_experts(rt: Router, m: &ModelSpec) -> Router {
    rt.reweighted(|l, w| {
        let Some(z) = m.plans.get(l).and_then(|p| p.knobs.zc) else {
            return w.to_vec();
        };
        let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
        let scale = if mean > 0.0 { z.tau() / mean } else { 0.0 };
        let mut out: Vec<f64> = w.iter().map(|x| x * scale).collect();
        out.extend(std::iter::repeat_n(1.0, z.count() as usize));
        out
    })
}

/// Tokens per expert of every layer for an iteration of `tokens` tokens; empty under balanced
/// routing (the graph builder spreads each layer's slots).
pub fn layer_counts(rt: &Router, m: &ModelSpec, tokens: u64, rng: &mut impl Rng) -> Vec<Vec<u64>> {
    if rt.is_uniform() {
        return Vec::new();
    }
    (0..m.plans.len())
        .map(|l| match m.plans[l].knobs.k_pmf {
            None => rt.counts(l, tokens, rt.top_k(), rng),
            Some(p) => {
                let mut sum: Vec<u64> = Vec::new();
                for (i, &n) in groups(p, tokens, rng)
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                {
                    let c = rt.counts(l, n, i as u64 + 1, rng);
                    sum.resize(sum.len().max(c.len()), 0);
                    sum.iter_mut().zip(c).for_each(|(s, x)| *s += x);
                }
                sum
            }
        })
        .collect()
}

/// Tokens per k (index k − 1): each of `tokens` draws its k from `p`.
fn groups(p: KPmf, tokens: u64, rng: &mut impl Rng) -> [u64; MAX_K] {
    let mut n = [0u64; MAX_K];
    for _ in 0..tokens {
        let u = rng.random_range(0..PPM);
        let mut acc = 0;
        let i = (0..MAX_K)
            .find(|&i| {
                acc += u64::from(p.ppm[i]);
                u < acc
            })
            .unwrap_or(p.max_k().saturating_sub(1) as usize);
        n[i] += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Ffn, LayerPlan, Moe, ZeroExperts, ppm};
    use crate::sim::routing::RoutingSpec;
    use crate::sim::workload::rng;
    use crate::work::Dtype;

    /// A one-layer MoE model of 8 experts with the `set` variants.
    fn model(set: impl Fn(&mut crate::model::Knobs)) -> ModelSpec {
        let mut plan = LayerPlan::plain(Ffn::Moe);
        set(&mut plan.knobs);
        ModelSpec {
            name: "m".into(),
            hidden: 64,
            plans: vec![plan],
            heads: 4,
            kv_heads: 4,
            head_dim: 16,
            vocab: 64,
            moe: Some(Moe {
                experts: 8,
                top_k: 2,
                intermediate: 128,
                shared: None,
            }),
            ffn_gated: true,
            act: Activation::Silu,
            dtype: Dtype::Bf16,
            quantized: None,
            notes: Vec::new(),
            tie_embeddings: false,
            logit_softcap: false,
        }
    }

    #[test]
    fn top_p_groups_tokens_by_k_and_draws_each_group() {
        // P(k = 1) = 0.24, P(k = 2) = 0.76: 10,000 tokens take 17,600 slots on average, with a
        // standard deviation of √(10,000 · 0.24 · 0.76) ≈ 43; within 5 of them.
        let p = KPmf::from_mean(1.76).unwrap();
        let m = model(|v| v.k_pmf = Some(p));
        let mut g = rng(1, 3);
        let rt = Router::new(RoutingSpec::Zipf { s: 0.0 }, 1, 8, 2, &mut g);
        let c = layer_counts(&rt, &m, 10_000, &mut g);
        let slots = c[0].iter().sum::<u64>();
        assert!(slots.abs_diff(17_600) < 5 * 43, "{slots}");
        assert!(c[0].iter().all(|&n| n <= 10_000));
        // Balanced routing leaves the spreading to the graph.
        let flat = Router::new(RoutingSpec::Uniform, 1, 8, 2, &mut g);
        assert!(layer_counts(&flat, &m, 100, &mut g).is_empty());
    }

    #[test]
    fn zero_experts_join_the_sampled_weights() {
        // τ = 1 over 8 FFN and 2 zero-computation experts, all of one weight: each expert is in a
        // token's two with probability 2/10, so the FFN share is 0.8 = r (MoE++ §3).
        let z = ZeroExperts {
            zero: 1,
            copy: 1,
            constant: 0,
            tau_ppm: ppm(1.0),
        };
        let m = model(|v| v.zc = Some(z));
        let mut g = rng(2, 3);
        let rt = Router::new(RoutingSpec::Zipf { s: 0.0 }, 1, 8, 2, &mut g);
        let rt = with_zero_experts(rt, &m);
        let c = layer_counts(&rt, &m, 10_000, &mut g);
        assert_eq!((c[0].len(), c[0].iter().sum::<u64>()), (10, 20_000));
        let ffn = c[0][..8].iter().sum::<u64>() as f64 / 20_000.0;
        // Binomial-like spread of 20,000 slots: σ ≈ √(20,000 · 0.16) / 20,000 ≈ 0.003.
        assert!((ffn - z.ffn_share(8)).abs() < 0.015, "{ffn}");
    }
}
