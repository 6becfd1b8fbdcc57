//! Which experts each token goes to, per layer and iteration.
//!
//! **Sampling always terminates and is exact.** A token's `top_k` experts are drawn without
//! replacement, each from the probability mass the experts not yet picked leave (draw one,
//! remove its mass, renormalize, repeat). Each draw first tries the quick way while the experts
//! picked so far hold less than half the mass: a draw from the whole layer by its running sums,
//! refused if it names an expert already picked, at most [`TRIES`] times; then (or at once, when
//! they hold half or more) it draws from the rest by one pass over the experts left. A refused
//! draw leaves the distribution of the next one as it was, so the two ways give the same
//! probabilities, and no weight however small or large (1e-300 beside 1, 1e30 beside 1, Zipf
//! with s = 60) can make it loop.

use rand::Rng;
use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::counts::Counts;

/// Tries of the quick draw (from the whole layer, refusing an expert already picked) before
/// a draw from the experts left.
pub const TRIES: usize = 8;

/// The stream a serving run's routing draws come from: Xoshiro256++ (`rand_xoshiro`), seeded
/// from the run's ChaCha8 routing stream once the router is set up. A decode iteration of a
/// skewed-routing run draws a few thousand words, and Xoshiro256++ gives one for about a third
/// of ChaCha8's time; it passes BigCrush and PractRand, which is all a simulation asks of it,
/// and is deterministic for a seed.
pub type RouteRng = rand_xoshiro::Xoshiro256PlusPlus;

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
    /// Per-layer expert weights from a trace (`probs[layer][expert]`, normalized per layer);
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

/// One layer's expert weights and their running sums.
#[derive(Debug, Clone)]
struct Layer {
    /// Weight per expert (finite and non-negative, as the scenario loader checks).
    w: Vec<f64>,
    /// `cdf[e]`: the sum of the weights of experts 0..=e.
    cdf: Vec<f64>,
}

impl Layer {
    fn new(w: Vec<f64>) -> Layer {
        let cdf = w
            .iter()
            .scan(0.0, |acc, x| {
                *acc += x;
                Some(*acc)
            })
            .collect();
        Layer { w, cdf }
    }

    /// Draws `k` distinct experts (at most all of them) into `picked`, in the order drawn.
    fn draw(&self, k: usize, picked: &mut Vec<usize>, rng: &mut ChaCha8Rng) {
        picked.clear();
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let mut taken = 0.0;
        for _ in 0..k.min(self.w.len()) {
            let quick = if taken < total / 2.0 {
                self.draw_any(total, picked, rng)
            } else {
                None
            };
            let Some(e) = quick.or_else(|| self.draw_left(picked, rng)) else {
                break;
            };
            taken += self.w[e];
            picked.push(e);
        }
    }

    /// A draw from the whole layer, refused (up to [`TRIES`] times) while it names an expert
    /// in `picked`; `None` when every try was refused.
    fn draw_any(&self, total: f64, picked: &[usize], rng: &mut ChaCha8Rng) -> Option<usize> {
        (0..TRIES).find_map(|_| {
            let u = rng.random::<f64>() * total;
            // The first expert whose running sum exceeds u: never one of weight zero.
            let e = self.cdf.partition_point(|&c| c <= u);
            (e < self.w.len() && !picked.contains(&e)).then_some(e)
        })
    }

    /// A draw from the experts not in `picked`, in proportion to their weights, by one pass.
    /// With no positive weight left (input the loader refuses), the first expert left; `None`
    /// when every expert is picked.
    fn draw_left(&self, picked: &[usize], rng: &mut ChaCha8Rng) -> Option<usize> {
        let left = || (0..self.w.len()).filter(|e| !picked.contains(e));
        let rest: f64 = left().map(|e| self.w[e]).sum();
        let u = rng.random::<f64>() * rest;
        let mut acc = 0.0;
        let mut last = None;
        for e in left().filter(|&e| self.w[e] > 0.0) {
            acc += self.w[e];
            last = Some(e);
            if acc > u {
                return Some(e);
            }
        }
        // Rounding can leave the sum a hair under u: the last positive expert takes it.
        last.or_else(|| left().next())
    }
}

/// Tokens per expert of `tokens` tokens, each drawing `k` distinct experts from weights `w` by
/// the exact per-token sampler (the distribution [`Counts`] reproduces).
pub fn exact_counts(w: &[f64], k: usize, tokens: u64, rng: &mut ChaCha8Rng) -> Vec<u64> {
    Layer::new(w.to_vec()).tally(k, tokens, rng)
}

impl Layer {
    /// Tokens per expert of `tokens` tokens of `k` draws each.
    fn tally(&self, k: usize, tokens: u64, rng: &mut ChaCha8Rng) -> Vec<u64> {
        let mut counts = vec![0u64; self.w.len()];
        let mut picked = Vec::with_capacity(k.min(self.w.len()));
        for _ in 0..tokens {
            self.draw(k, &mut picked, rng);
            for &e in &picked {
                counts[e] += 1;
            }
        }
        counts
    }
}

/// Samples tokens per expert for each layer of one iteration.
pub struct Router {
    spec: RoutingSpec,
    /// Weights per layer (empty for `Uniform`).
    layers: Vec<Layer>,
    /// Each layer's count sampler for the model's `top_k`.
    fast: Vec<Counts>,
    experts: u64,
    top_k: u64,
}

impl Router {
    /// A router of `top_k` of `experts` experts over `layers` layers; Zipf rankings are
    /// shuffled with `rng`. A trace's rows are cut or padded with zeros to `experts`.
    pub fn new(
        spec: RoutingSpec,
        layers: u32,
        experts: u64,
        top_k: u64,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let (n, k) = (experts as usize, top_k as usize);
        let (weights, fast): (Vec<Vec<f64>>, Vec<Counts>) = match &spec {
            RoutingSpec::Uniform => (Vec::new(), Vec::new()),
            RoutingSpec::Zipf { s } => {
                // One sampler for the ranks, relabelled per layer by its shuffled ranking.
                let ranked: Vec<f64> = (1..=experts).map(|r| (r as f64).powf(-s)).collect();
                let base = Counts::new(&ranked, k);
                (0..layers)
                    .map(|_| {
                        let mut rank: Vec<usize> = (0..n).collect();
                        rank.shuffle(rng);
                        let p = rank.iter().map(|&r| ranked[r]).collect();
                        (p, base.relabel(&rank))
                    })
                    .unzip()
            }
            RoutingSpec::Trace { probs } => {
                let rows = probs.len().clamp(1, layers.max(1) as usize);
                let row = |l: usize| {
                    let mut p = match probs.len() {
                        0 => vec![1.0; n],
                        _ => probs[l].clone(),
                    };
                    p.resize(n, 0.0);
                    p
                };
                // Rows equal to an earlier one share its sampler (its tables, one copy in the
                // cache), as the layers past the rows do.
                let mut distinct: Vec<(Vec<f64>, Counts)> = Vec::with_capacity(rows);
                for l in 0..rows {
                    let p = row(l);
                    let c = match distinct.iter().find(|(q, _)| *q == p) {
                        Some((_, c)) => c.clone(),
                        None => Counts::new(&p, k),
                    };
                    distinct.push((p, c));
                }
                (0..layers as usize)
                    .map(|l| distinct[l % rows].clone())
                    .unzip()
            }
        };
        Router {
            spec,
            layers: weights.into_iter().map(Layer::new).collect(),
            fast,
            experts,
            top_k,
        }
    }

    /// Experts per token of the model.
    pub fn top_k(&self) -> u64 {
        self.top_k
    }

    /// Each layer's expert weights replaced by `f(layer, weights)`, which may add experts (MoE++
    /// appends its zero-computation experts), and its count sampler rebuilt where they changed
    /// (a sampler's set-up is most of a DeepSeek-V3 run's when all 61 are rebuilt); a uniform
    /// router is left as it is.
    pub fn reweighted(mut self, f: impl Fn(usize, &[f64]) -> Vec<f64>) -> Router {
        let k = self.top_k as usize;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let w = f(i, &l.w);
            if w != l.w {
                self.fast[i] = Counts::new(&w, k);
                *l = Layer::new(w);
            }
        }
        self
    }

    /// Each routed expert's expected share of `layer`'s tokens, the load statistics EPLB
    /// places experts by: equal under balanced routing, else each expert's exact chance of being
    /// among a token's top-k (`counts::inclusion`).
    pub fn expected_load(&self, layer: usize) -> Vec<f64> {
        let n = self.experts as usize;
        match self.layers.get(layer) {
            Some(l) if !self.is_uniform() => {
                let mut p = super::counts::inclusion(&l.w, self.top_k as usize);
                p.truncate(n);
                p
            }
            _ => vec![1.0; n],
        }
    }

    /// Whether every layer gets the same counts (so one layer stands for all).
    pub fn is_uniform(&self) -> bool {
        self.spec == RoutingSpec::Uniform
    }

    /// Tokens per expert in `layer` for `tokens` tokens, each going to `k` distinct experts
    /// (all of them when there are fewer), drawn as counts ([`Counts`]: exact for few k-sets,
    /// binomial marginals conditioned on their sum otherwise). Its cost does not grow with the
    /// tokens. A group of tokens with its own `k` is one call; a `k` other than the model's
    /// builds its sampler for the call.
    pub fn counts(&self, layer: usize, tokens: u64, k: u64, rng: &mut impl Rng) -> Vec<u64> {
        let mut c = Vec::new();
        self.counts_into(layer, tokens, k, rng, &mut c);
        c
    }

    /// [`counts`](Self::counts) into `c` (its old contents replaced).
    pub fn counts_into(
        &self,
        layer: usize,
        tokens: u64,
        k: u64,
        rng: &mut impl Rng,
        c: &mut Vec<u64>,
    ) {
        if self.is_uniform() {
            *c = crate::model::Routing::uniform_counts(tokens, self.experts, k);
            return;
        }
        let n = self.layers[layer].w.len();
        if k == self.top_k {
            return self.fast[layer].draw_into(n, tokens, rng, c);
        }
        Counts::new(&self.layers[layer].w, k as usize).draw_into(n, tokens, rng, c)
    }

    /// The same as [`counts`](Self::counts) by the exact sampler, token by token (its cost
    /// grows with the tokens): the reference the count sampler is tested against.
    pub fn exact(&self, layer: usize, tokens: u64, k: u64, rng: &mut ChaCha8Rng) -> Vec<u64> {
        if self.is_uniform() {
            return crate::model::Routing::uniform_counts(tokens, self.experts, k);
        }
        self.layers[layer].tally(k as usize, tokens, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::rng;
    use proptest::prelude::*;

    /// `k` experts drawn `n` times from `w`, each draw's set checked to be `k` distinct experts
    /// of positive weight; how often each expert and each set (sorted) came up.
    fn tally(w: &[f64], k: usize, n: usize, seed: u64) -> (Vec<usize>, Vec<(Vec<usize>, usize)>) {
        let l = Layer::new(w.to_vec());
        let mut g = rng(seed, 3);
        let (mut each, mut sets) = (vec![0; w.len()], Vec::<(Vec<usize>, usize)>::new());
        let mut picked = Vec::new();
        for _ in 0..n {
            l.draw(k, &mut picked, &mut g);
            let mut s = picked.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), k, "{picked:?} from {w:?}");
            assert!(s.iter().all(|&e| w[e] > 0.0), "{picked:?} from {w:?}");
            s.iter().for_each(|&e| each[e] += 1);
            match sets.iter_mut().find(|(x, _)| *x == s) {
                Some((_, c)) => *c += 1,
                None => sets.push((s, 1)),
            }
        }
        (each, sets)
    }

    /// The exact probability that draws without replacement from `w` pick exactly the set `s`
    /// (every order of it: the product of each pick's weight over the mass left before it).
    fn set_probability(w: &[f64], s: &[usize]) -> f64 {
        let total: f64 = w.iter().sum();
        fn orders(w: &[f64], left: &[usize], rest: f64) -> f64 {
            if left.is_empty() {
                return 1.0;
            }
            left.iter()
                .map(|&e| {
                    let others: Vec<usize> = left.iter().copied().filter(|&x| x != e).collect();
                    w[e] / rest * orders(w, &others, rest - w[e])
                })
                .sum()
        }
        orders(w, s, total)
    }

    #[test]
    fn every_token_reaches_top_k_distinct_experts() {
        let mut g = rng(3, 3);
        let r = Router::new(RoutingSpec::Zipf { s: 1.2 }, 4, 8, 2, &mut g);
        for layer in 0..4 {
            for c in [
                r.counts(layer, 100, 2, &mut g),
                r.exact(layer, 100, 2, &mut g),
            ] {
                assert_eq!(c.iter().sum::<u64>(), 200);
                assert!(c.iter().all(|&n| n <= 100));
            }
        }
    }

    #[test]
    fn zipf_skews_the_load() {
        let mut g = rng(5, 3);
        let skewed =
            Router::new(RoutingSpec::Zipf { s: 1.5 }, 1, 8, 2, &mut g).exact(0, 10_000, 2, &mut g);
        let flat =
            Router::new(RoutingSpec::Zipf { s: 0.0 }, 1, 8, 2, &mut g).exact(0, 10_000, 2, &mut g);
        let max = |c: &[u64]| *c.iter().max().unwrap() as f64;
        // Uniform random: about 2500 each; skewed: the top expert takes far more.
        assert!(max(&flat) < 2700.0, "{flat:?}");
        assert!(max(&skewed) > 5000.0, "{skewed:?}");
    }

    #[test]
    fn weights_far_apart_still_give_top_k() {
        // The hangs: a weight of 1e-300 beside 1, and 1e30 beside 1. A zero never comes.
        let (each, _) = tally(&[0.0, 1.0, 1e-300], 2, 1000, 1);
        assert_eq!(each, vec![0, 1000, 1000]);
        let (each, _) = tally(&[1e30, 1.0, 1.0], 3, 1000, 2);
        assert_eq!(each, vec![1000; 3]);
        // Beside 1e30 the two others share the second place evenly: 500 ± 5σ (σ = √250).
        let (each, _) = tally(&[1e30, 1.0, 1.0, 0.0], 2, 1000, 3);
        assert_eq!((each[0], each[1] + each[2], each[3]), (1000, 1000, 0));
        assert!(each[1].abs_diff(500) < 80, "{each:?}");
    }

    #[test]
    fn zipf_with_s_60_routes_to_the_two_top_ranks() {
        // Rank 2 has 2^-60 of rank 1's weight and rank 3 has (2/3)^60 ≈ 3e-11 of rank 2's:
        // the top two ranks take every token.
        let mut g = rng(7, 3);
        let r = Router::new(RoutingSpec::Zipf { s: 60.0 }, 2, 8, 2, &mut g);
        for (layer, w) in r.layers.iter().enumerate() {
            let top = |rank: f64| w.w.iter().position(|&x| x == rank.powf(-60.0)).unwrap();
            for c in [
                r.counts(layer, 1000, 2, &mut g),
                r.exact(layer, 1000, 2, &mut g),
            ] {
                assert_eq!((c[top(1.0)], c[top(2.0)]), (1000, 1000), "{c:?}");
                assert_eq!(c.iter().sum::<u64>(), 2000);
            }
        }
    }

    #[test]
    fn frequencies_match_the_exact_probabilities_of_each_set() {
        // 200,000 draws of 2 and of 3 of 4 experts (both ways of drawing come up: expert 0
        // alone holds more than half the mass). Each set's count is binomial, so it lies within
        // 5 standard deviations of n·p but for odds of about 6e-7.
        let w = [0.55, 0.25, 0.15, 0.05];
        let n = 200_000;
        for k in [2, 3] {
            let (each, sets) = tally(&w, k, n, 11);
            assert_eq!(each.iter().sum::<usize>(), k * n);
            let mut seen = 0.0;
            for (s, count) in &sets {
                let p = set_probability(&w, s);
                seen += p;
                let sd = (n as f64 * p * (1.0 - p)).sqrt();
                let dev = (*count as f64 - n as f64 * p).abs();
                assert!(
                    dev < 5.0 * sd,
                    "k={k} {s:?}: {count} against {}",
                    n as f64 * p
                );
            }
            // Every possible set came up (their exact probabilities sum to 1).
            assert!((seen - 1.0).abs() < 1e-12, "k={k}: {sets:?}");
        }
    }

    /// A weight: zero, or one from 1e-300 to 1e30 (spread over the decades).
    fn weight() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (-300.0f64..30.0).prop_map(|d| 10f64.powf(d)),
            0.0f64..1.0
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_weights_with_k_positive_give_k_distinct_experts(
            w in prop::collection::vec(weight(), 1..40),
            k in 1usize..9,
            seed in 0u64..1000,
        ) {
            let positive = w.iter().filter(|&&x| x > 0.0).count();
            prop_assume!(positive >= k);
            tally(&w, k, 50, seed);
        }

        #[test]
        fn zipf_of_any_skew_gives_top_k_distinct_experts(
            s in 0.0f64..100.0,
            experts in 2u64..130,
            k in 1u64..9,
            seed in 0u64..1000,
        ) {
            prop_assume!(k <= experts);
            let mut g = rng(seed, 3);
            let r = Router::new(RoutingSpec::Zipf { s }, 1, experts, k, &mut g);
            for c in [r.counts(0, 20, k, &mut g), r.exact(0, 20, k, &mut g)] {
                prop_assert_eq!(c.iter().sum::<u64>(), 20 * k);
                prop_assert!(c.iter().all(|&n| n <= 20));
            }
        }
    }
}
