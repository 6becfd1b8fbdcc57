//! Latency samples and the timeline in bounded memory.
//!
//! A run keeps every latency sample while there are at most [`EXACT`] of them, so that its
//! percentiles are exact (nearest rank of the samples). Past that it folds them into a
//! logarithmic histogram (DDSketch's buckets: bucket i holds (γ^(i−1), γ^i], γ = (1 + α) ÷
//! (1 − α)), whose nearest-rank quantile is within a relative [`ACCURACY`] α of the exact one
//! (`tests::a_folded_sample_keeps_its_quantiles_within_the_accuracy`); the mean stays exact.
//! The timeline keeps one point per iteration up to [`TIMELINE`] points, then every other one,
//! and so on (the report draws at most 200 evenly spaced points of it).

use std::collections::BTreeMap;
use std::ops::Deref;

/// Most samples of one metric kept exactly (32 MiB of f64): every shipped scenario stays under
/// it (the longest, 512 requests of 4096 tokens, has 2.1e6 token gaps).
pub const EXACT: usize = 1 << 22;

/// Relative accuracy of a quantile once the samples are folded into buckets.
pub const ACCURACY: f64 = 1e-4;

/// Most timeline points kept before every other one is dropped.
pub const TIMELINE: usize = 1 << 20;

/// One latency metric's samples: all of them while at most [`EXACT`], else their histogram.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    kept: Vec<f64>,
    /// Count per bucket index, once folded.
    buckets: Option<BTreeMap<i32, u64>>,
    /// Samples at or below zero (no bucket holds them).
    zeros: u64,
    n: u64,
    sum: f64,
}

impl Samples {
    /// Adds a sample.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        if self.buckets.is_none() && self.kept.len() < EXACT {
            self.kept.push(x);
        } else {
            self.fold_in(x);
        }
    }

    /// [`Samples::push`] past [`EXACT`]: folds the kept samples (once) and then `x`.
    #[cold]
    fn fold_in(&mut self, x: f64) {
        let b = self.buckets.get_or_insert_with(BTreeMap::new);
        for y in std::mem::take(&mut self.kept) {
            fold(b, &mut self.zeros, y);
        }
        fold(b, &mut self.zeros, x);
    }

    /// Adds every sample of `o` (another run's, or another replica's): its kept samples in
    /// their order while the sum stays within [`EXACT`], else both folded into one histogram
    /// (counts add bucket by bucket, so the count, the sum and the buckets are the union's).
    pub fn merge(&mut self, o: &Samples) {
        let Some(ob) = &o.buckets else {
            o.kept.iter().for_each(|&x| self.push(x));
            return;
        };
        let b = self.buckets.get_or_insert_with(BTreeMap::new);
        for x in std::mem::take(&mut self.kept) {
            fold(b, &mut self.zeros, x);
        }
        for (&i, &c) in ob {
            *b.entry(i).or_insert(0) += c;
        }
        self.zeros += o.zeros;
        self.n += o.n;
        self.sum += o.sum;
    }

    /// Samples seen.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Every sample in the order it came, while they are kept exactly; `None` once folded.
    pub fn exact(&self) -> Option<&[f64]> {
        self.buckets.is_none().then_some(&self.kept[..])
    }

    /// The mean of every sample (0 when empty).
    pub fn mean(&self) -> f64 {
        self.sum / self.n.max(1) as f64
    }

    /// The nearest-rank `q`-quantile: exact while the samples are kept, else within
    /// [`ACCURACY`] of it (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let Some(b) = &self.buckets else {
            let mut v = self.kept.clone();
            let k = rank as usize - 1;
            return *v.select_nth_unstable_by(k, f64::total_cmp).1;
        };
        let mut seen = self.zeros;
        if seen >= rank {
            return 0.0;
        }
        let g = gamma();
        for (&i, &c) in b {
            seen += c;
            if seen >= rank {
                // The bucket's point of least relative error: 2γ^i ÷ (γ + 1).
                return 2.0 * g.powi(i) / (g + 1.0);
            }
        }
        b.keys().last().map_or(0.0, |&i| g.powi(i))
    }
}

impl From<Vec<f64>> for Samples {
    /// The samples of `v`, in order.
    fn from(v: Vec<f64>) -> Samples {
        let mut s = Samples::default();
        v.into_iter().for_each(|x| s.push(x));
        s
    }
}

impl Deref for Samples {
    type Target = [f64];

    /// The samples kept (every one while at most [`EXACT`]; none once folded).
    fn deref(&self) -> &[f64] {
        &self.kept
    }
}

/// γ = (1 + α) ÷ (1 − α).
fn gamma() -> f64 {
    (1.0 + ACCURACY) / (1.0 - ACCURACY)
}

/// Adds `x` to its bucket, ⌈log_γ x⌉ (or to the zeros).
fn fold(b: &mut BTreeMap<i32, u64>, zeros: &mut u64, x: f64) {
    if x > 0.0 && x.is_finite() {
        *b.entry((x.ln() / gamma().ln()).ceil() as i32).or_insert(0) += 1;
    } else {
        *zeros += 1;
    }
}

/// Points in order, one per iteration until [`TIMELINE`], then thinned by halves: every
/// `stride`-th point of the run is kept.
#[derive(Debug, Clone)]
pub struct Thinned<T> {
    kept: Vec<T>,
    stride: u64,
    seen: u64,
}

impl<T> Default for Thinned<T> {
    fn default() -> Self {
        Thinned {
            kept: Vec::new(),
            stride: 1,
            seen: 0,
        }
    }
}

impl<T> Thinned<T> {
    /// Adds the next point.
    pub fn push(&mut self, x: T) {
        if self.seen % self.stride == 0 {
            if self.kept.len() >= TIMELINE {
                // Keep the points at even positions: every (2·stride)-th of the run.
                let mut i = 0;
                self.kept.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
            if self.seen % self.stride == 0 {
                self.kept.push(x);
            }
        }
        self.seen += 1;
    }

    /// Every how many points one is kept.
    pub fn stride(&self) -> u64 {
        self.stride
    }
}

impl<T> Deref for Thinned<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::rng;
    use rand::RngExt;

    #[test]
    fn a_folded_sample_keeps_its_quantiles_within_the_accuracy() {
        // 5,000,000 log-uniform samples over 1 µs .. 10 s: past EXACT they are folded, and each
        // quantile is within α of the exact nearest rank (sorted here).
        let mut g = rng(4, 1);
        let (mut s, mut all) = (Samples::default(), Vec::new());
        for _ in 0..5_000_000 {
            let x = (g.random::<f64>() * 16.1 - 13.8).exp();
            s.push(x);
            all.push(x);
        }
        assert!(s.exact().is_none());
        all.sort_unstable_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = all[(q * all.len() as f64).ceil() as usize - 1];
            let got = s.quantile(q);
            // α, and a hair for the rounding of a bucket's edge.
            let err = (got / exact - 1.0).abs();
            assert!(err <= ACCURACY * 1.001, "q={q}: {got} against {exact}");
        }
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        assert!((s.mean() / mean - 1.0).abs() < 1e-9);
        assert_eq!(s.len(), 5_000_000);
    }

    #[test]
    fn merging_samples_conserves_their_count_sum_and_quantiles() {
        // Exact + exact stays exact and in order; exact + folded folds both; folded + folded
        // adds bucket counts. The count and sum are the union's, the quantiles the union's
        // (within α once folded).
        let mut g = rng(5, 2);
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| (g.random::<f64>() * 10.0 - 9.0).exp())
                .collect()
        };
        let (a, b) = (draw(1000), draw(EXACT + 10));
        let mut m = Samples::from(a.clone());
        m.merge(&Samples::from(a.clone()));
        assert_eq!(m.len(), 2000);
        assert_eq!(
            m.exact().unwrap(),
            [a.clone(), a.clone()].concat().as_slice()
        );
        let mut all: Vec<f64> = [a.clone(), a.clone()].concat();
        let folded = Samples::from(b.clone());
        assert!(folded.exact().is_none());
        m.merge(&folded);
        m.merge(&Samples::from(vec![0.0, -1.0]));
        let mut f2 = folded.clone();
        f2.merge(&Samples::from(a.clone()));
        all.extend(&b);
        all.extend([0.0, -1.0]);
        assert_eq!(m.len(), all.len());
        assert_eq!(f2.len(), b.len() + a.len());
        let sum: f64 = all.iter().sum();
        assert!((m.mean() * m.len() as f64 / sum - 1.0).abs() < 1e-9);
        all.sort_unstable_by(f64::total_cmp);
        for q in [0.0001, 0.5, 0.99] {
            let exact = all[(q * all.len() as f64).ceil() as usize - 1];
            let err = (m.quantile(q) / exact - 1.0).abs();
            assert!(
                err <= ACCURACY * 1.001,
                "q={q}: {} against {exact}",
                m.quantile(q)
            );
        }
    }

    #[test]
    fn a_thinned_timeline_keeps_every_stride_th_point() {
        let mut t = Thinned::default();
        for i in 0..(TIMELINE as u64 * 3) {
            t.push(i);
        }
        assert_eq!(t.stride(), 4);
        assert!(t.iter().enumerate().all(|(j, &i)| i == 4 * j as u64));
        assert!(t.len() <= TIMELINE);
    }
}
