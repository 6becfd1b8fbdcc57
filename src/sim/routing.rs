//! Which experts each token goes to, per layer and iteration.

use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// How tokens are routed to experts.
#[derive(Debug, Clone, PartialEq)]
pub enum RoutingSpec {
    /// Balanced: every expert gets `tokens × top_k / experts` (± 1), as Duplex evaluates.
    Uniform,
    /// Each token draws `top_k` distinct experts with probability ∝ 1 / rank^s, the ranking of
    /// experts shuffled per layer (s = 0 is uniformly random routing).
    Zipf {
        /// The exponent.
        s: f64,
    },
    /// Per-layer expert probabilities from a trace (`probs[layer][expert]`, each row summing to 1);
    /// layers beyond the trace reuse it cyclically.
    Trace {
        /// Probabilities per layer and expert.
        probs: Vec<Vec<f64>>,
    },
}

impl RoutingSpec {
    /// A short description for reports (a trace's probabilities are not repeated).
    pub fn describe(&self) -> String {
        match self {
            RoutingSpec::Uniform => "uniform".into(),
            RoutingSpec::Zipf { s } => format!("zipf s={s}"),
            RoutingSpec::Trace { probs } => format!("trace of {} layers", probs.len()),
        }
    }
}

/// Samples tokens per expert for each layer of one iteration.
pub struct Router {
    spec: RoutingSpec,
    /// Cumulative probabilities per layer (empty for `Uniform`).
    cdf: Vec<Vec<f64>>,
    experts: u64,
    top_k: u64,
}

impl Router {
    /// A router of `top_k` of `experts` experts over `layers` layers; Zipf rankings are
    /// shuffled with `rng`.
    pub fn new(
        spec: RoutingSpec,
        layers: u32,
        experts: u64,
        top_k: u64,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let probs: Vec<Vec<f64>> = match &spec {
            RoutingSpec::Uniform => Vec::new(),
            RoutingSpec::Zipf { s } => (0..layers)
                .map(|_| {
                    let mut p: Vec<f64> = (1..=experts).map(|r| (r as f64).powf(-s)).collect();
                    p.shuffle(rng);
                    p
                })
                .collect(),
            RoutingSpec::Trace { probs } => (0..layers as usize)
                .map(|l| probs[l % probs.len()].clone())
                .collect(),
        };
        let cdf = probs
            .into_iter()
            .map(|p| {
                let total: f64 = p.iter().sum();
                p.iter()
                    .scan(0.0, |acc, x| {
                        *acc += x / total;
                        Some(*acc)
                    })
                    .collect()
            })
            .collect();
        Router {
            spec,
            cdf,
            experts,
            top_k,
        }
    }

    /// Whether every layer gets the same counts (so one layer stands for all).
    pub fn is_uniform(&self) -> bool {
        self.spec == RoutingSpec::Uniform
    }

    /// Tokens per expert in `layer` for `tokens` tokens.
    pub fn counts(&self, layer: usize, tokens: u64, rng: &mut ChaCha8Rng) -> Vec<u64> {
        if self.is_uniform() {
            return crate::model::Routing::uniform_counts(tokens, self.experts, self.top_k);
        }
        let cdf = &self.cdf[layer];
        let mut counts = vec![0u64; self.experts as usize];
        let mut picked = Vec::with_capacity(self.top_k as usize);
        for _ in 0..tokens {
            picked.clear();
            while (picked.len() as u64) < self.top_k {
                let u: f64 = rng.random();
                let e = cdf.partition_point(|&c| c < u).min(cdf.len() - 1);
                if !picked.contains(&e) {
                    picked.push(e);
                }
            }
            for &e in &picked {
                counts[e] += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::rng;

    #[test]
    fn every_token_reaches_top_k_distinct_experts() {
        let mut g = rng(3, 3);
        let r = Router::new(RoutingSpec::Zipf { s: 1.2 }, 4, 8, 2, &mut g);
        for layer in 0..4 {
            let c = r.counts(layer, 100, &mut g);
            assert_eq!(c.iter().sum::<u64>(), 200);
            assert!(c.iter().all(|&n| n <= 100));
        }
    }

    #[test]
    fn zipf_skews_the_load() {
        let mut g = rng(5, 3);
        let skewed =
            Router::new(RoutingSpec::Zipf { s: 1.5 }, 1, 8, 2, &mut g).counts(0, 10_000, &mut g);
        let flat =
            Router::new(RoutingSpec::Zipf { s: 0.0 }, 1, 8, 2, &mut g).counts(0, 10_000, &mut g);
        let max = |c: &[u64]| *c.iter().max().unwrap() as f64;
        // Uniform random: about 2500 each; skewed: the top expert takes far more.
        assert!(max(&flat) < 2700.0, "{flat:?}");
        assert!(max(&skewed) > 5000.0, "{skewed:?}");
    }
}
