//! The alias table that draws each token's k-set where the sets are few and so are the
//! tokens ([`super::Counts::Sets`]).

use rand::Rng;

/// Walker's alias table (built as Vose, 1991, builds it): column j of G is taken with
/// chance 1 ÷ G, then j itself below its threshold and its alias above, so one uniform
/// draws an outcome with its probability, branch-free. A draw is 32 bits, two from each of
/// the generator's 64-bit words: with u uniform on [0, 2^32), u·G ÷ 2^32 is the column and
/// the 32 bits below it the uniform the threshold is compared with, so each column is taken
/// with chance 1 ÷ G and keeps its own outcome with chance keep_j, both to within G ÷ 2^32
/// (under 1e-8 for Mixtral's 28 pairs). rand_distr's `WeightedAliasIndex` draws two numbers
/// per sample and branches on the threshold: with it the 1,000-request Mixtral Zipf run took
/// 0.62–0.71 s, against 0.37 s with one f64 draw per sample and 0.17 s with two per word
/// (criterion, `benches/serving.rs`).
#[derive(Debug, Clone)]
pub struct Alias {
    /// Each column's chance of keeping its own outcome, in units of 2^-32 (2^32 for
    /// always), and its outcomes: its alias, then its own.
    pub(super) columns: Vec<Column>,
}

/// One column of an [`Alias`] table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub(super) keep: u64,
    pub(super) outcome: [u32; 2],
}

impl Alias {
    /// The table of probabilities `p` (their sum need not be 1).
    pub(super) fn new(p: &[f64]) -> Alias {
        let g = p.len();
        let total: f64 = p.iter().sum();
        let mut keep: Vec<f64> = p.iter().map(|&x| x * g as f64 / total).collect();
        let mut other: Vec<usize> = (0..g).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..g).partition(|&j| keep[j] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            other[s] = l;
            keep[l] -= 1.0 - keep[s];
            if keep[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left holds 1 but for rounding.
        for j in small.into_iter().chain(large) {
            keep[j] = 1.0;
        }
        let columns = (0..g)
            .map(|j| Column {
                keep: (keep[j].clamp(0.0, 1.0) * TWO_32).round() as u64,
                outcome: [other[j] as u32, j as u32],
            })
            .collect();
        Alias { columns }
    }

    /// The outcome of the 32-bit uniform `u`.
    fn one(&self, u: u32) -> usize {
        let x = u64::from(u) * self.columns.len() as u64;
        let c = self.columns[(x >> 32) as usize];
        // The outcome indexed by the comparison: no branch for the skew to mispredict.
        c.outcome[usize::from(x & 0xffff_ffff < c.keep)] as usize
    }

    /// Adds into `hits` how many of `n` draws give each outcome.
    pub(super) fn counts(&self, n: u64, rng: &mut impl Rng, hits: &mut [u64]) {
        for _ in 0..n / 2 {
            let r = rng.next_u64();
            hits[self.one(r as u32)] += 1;
            hits[self.one((r >> 32) as u32)] += 1;
        }
        if n % 2 == 1 {
            hits[self.one(rng.next_u64() as u32)] += 1;
        }
    }
}

/// 2^32, the scale of an [`Alias`] threshold.
pub(super) const TWO_32: f64 = 4_294_967_296.0;
