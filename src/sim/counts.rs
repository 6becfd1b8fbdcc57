//! Tokens per expert drawn as counts, not token by token, from the distribution of the exact
//! per-token sampler (`routing::Layer::draw`: `k` distinct experts drawn one after another, each
//! from the mass the experts not yet drawn leave).
//!
//! Tokens route independently, so the number of tokens whose experts are exactly the set `S`
//! is multinomial over the k-sets, with each set's probability that of drawing its members in
//! some order. Two ways to draw it:
//!
//! - **[`Counts::Sets`], exact**, where the k-sets are few (at most [`SETS`]: Mixtral's
//!   C(8, 2) = 28): a multinomial over every set, drawn as a binary tree of binomials, each
//!   splitting a run of sets' tokens between its halves (`counts_btrs.rs`). Its cost is one
//!   binomial per set, whatever the tokens. Up to [`PER_TOKEN`] tokens per set each token
//!   draws its set from an alias table instead (`counts_alias.rs`), cheaper there, its members
//!   counted as it is drawn where the tokens are fewer than the sets; with at most 8 experts
//!   the counts are 8-bit lanes of one word and each draw is of one or two tokens
//!   (`alias::Packed`), up to [`PACKED_DRAWS`] draws per set.
//! - **[`Counts::Marginals`], an approximation**, where they are many (DeepSeek-V3's C(256, 8)):
//!   *binomial marginals conditioned on their sum*. Each expert's count is drawn from its exact
//!   marginal, Binomial(tokens, π_e) with π_e the chance that a token's k draws include e;
//!   then the sum (which must be tokens × k) is restored one token at a time, each moved to or
//!   from an expert chosen in proportion to its count's variance, π_e (1 − π_e) (as conditioning
//!   independent normals on their sum shifts each by its share of the variance), never below 0
//!   or above the tokens. The π_e are exact: the draws without replacement are an exponential
//!   race (expert f's time is exponential of rate w_f; the first k to finish are the draws), so
//!   π_e = ∫ w_e e^(−w_e x) P(fewer than k others finished by x) dx, the other experts' finishes
//!   a Poisson-binomial count, integrated by the trapezoid rule in ln x. The approximation's
//!   error against the exact sampler is measured by a two-sample Kolmogorov–Smirnov test on each
//!   expert's load (`tests::marginals_match_the_exact_sampler_by_kolmogorov_smirnov`).

use std::cell::RefCell;
use std::rc::Rc;

use rand::Rng;

use super::routing::TRIES;
use alias::{Alias, Packed};
#[cfg(test)]
use binomial::Table;
use binomial::{Binomials, Guide};
use btrs::binomial;

#[path = "counts_alias.rs"]
mod alias;

#[path = "counts_binomial.rs"]
mod binomial;

#[path = "counts_btrs.rs"]
mod btrs;

/// Most k-sets for which counts are drawn exactly.
pub const SETS: u64 = 4096;

/// Tokens per k-set up to which each token draws its set from the sets' alias table (as
/// exact), where that is cheaper than the tree of a binomial per set: 2 of 16 experts (120
/// sets, a count per set) costs 2.5 ns a token and 60 ns a set, crossing near 24 tokens a set
/// (`counts_2_of_16_zipf` benchmark).
const PER_TOKEN: usize = 24;

/// Draws per k-set up to which a [`Packed`] table draws the tokens (one or two a draw):
/// Mixtral's 28 pairs cost 1.3 ns a draw of two tokens and 60 ns a set, crossing near 46
/// draws a set, 2,520 tokens (`counts_mixtral_zipf` benchmark).
const PACKED_DRAWS: usize = 45;

/// Step of the trapezoid rule in ln x for the inclusion probabilities. The integrand is smooth
/// and decays at both ends, so the rule converges geometrically: 0.05 leaves the sum of the
/// π_e within 1e-12 of k (`tests::inclusion_probabilities_sum_to_k_and_match_the_sets`).
const STEP: f64 = 0.05;

/// One layer's count sampler for one `k`.
#[derive(Debug, Clone)]
pub enum Counts {
    /// Every k-set of the experts of positive weight, with its probability: exact.
    Sets {
        /// Each set's members, `k` per set, flattened.
        members: Vec<usize>,
        /// Each set's probability.
        p: Vec<f64>,
        /// [`set_binomials`]' tree: each split `(lo, mid, share)`, a level at a time from the
        /// root, of the run of sets from `lo` at `mid`, its first half's share of the run's mass.
        tree: Vec<(usize, usize, f64)>,
        /// Their alias table, for drawing one token's set.
        alias: Alias,
        /// Their table of counts in lanes, where the experts are at most 8 (`counts_alias.rs`).
        packed: Option<Packed>,
        /// Experts per set.
        k: usize,
        /// Tokens per set of the latest draw (kept to spare an allocation per draw).
        hits: RefCell<Vec<u64>>,
    },
    /// Each expert's chance of being among a token's draws: binomial marginals conditioned on
    /// their sum (an approximation).
    Marginals {
        /// π_e per expert (they sum to k).
        pi: Vec<f64>,
        /// Running sums of π_e (1 − π_e), the weights of the moves that restore the sum.
        cdf: Vec<f64>,
        /// Where a move's search of `cdf` starts.
        guide: Guide,
        /// Experts per token.
        k: u64,
        /// Each expert's Binomial(tokens, π_e), by the tokens of the latest draws; shared by
        /// the layers that relabel one ranking (Zipf routing: one set for every layer).
        binomials: Rc<Binomials>,
        /// Expert e's row in `binomials`.
        row: Vec<usize>,
    },
}

impl Counts {
    /// The sampler of `k` draws from weights `w`: exact where the k-sets of the positive
    /// experts number at most [`SETS`].
    pub fn new(w: &[f64], k: usize) -> Counts {
        let positive: Vec<usize> = (0..w.len()).filter(|&e| w[e] > 0.0).collect();
        let k = k.min(positive.len());
        if choose(positive.len() as u64, k as u64) <= SETS {
            let (members, p) = sets(w, &positive, k);
            Counts::Sets {
                packed: Packed::new(&members, &p, k),
                members,
                alias: Alias::new(&p),
                tree: tree(&p),
                p,
                k,
                hits: RefCell::default(),
            }
        } else {
            let pi = inclusion(w, k);
            let row = (0..pi.len()).collect();
            marginals(pi.clone(), k as u64, Rc::new(Binomials::new(pi)), row)
        }
    }

    /// The same sampler with expert i taking the place of expert `rank[i]` (a layer whose
    /// weights are these shuffled: `w'[i] = w[rank[i]]`).
    pub fn relabel(&self, rank: &[usize]) -> Counts {
        match self {
            Counts::Sets {
                members,
                p,
                tree,
                alias,
                packed,
                k,
                ..
            } => {
                let mut expert = vec![0; rank.len()];
                for (i, &r) in rank.iter().enumerate() {
                    expert[r] = i;
                }
                Counts::Sets {
                    packed: packed.as_ref().map(|t| t.relabel(&expert)),
                    members: members.iter().map(|&r| expert[r]).collect(),
                    p: p.clone(),
                    tree: tree.clone(),
                    alias: alias.clone(),
                    k: *k,
                    hits: RefCell::default(),
                }
            }
            Counts::Marginals {
                pi,
                k,
                binomials,
                row,
                ..
            } => {
                let pi = rank.iter().map(|&r| pi[r]).collect();
                let row = rank.iter().map(|&r| row[r]).collect();
                marginals(pi, *k, Rc::clone(binomials), row)
            }
        }
    }

    /// Tokens per expert (of `experts`) for `tokens` tokens.
    pub fn draw(&self, experts: usize, tokens: u64, rng: &mut impl Rng) -> Vec<u64> {
        let mut c = Vec::new();
        self.draw_into(experts, tokens, rng, &mut c);
        c
    }

    /// [`draw`](Self::draw) into `c` (its old contents replaced; kept to spare an
    /// allocation per layer and iteration).
    pub fn draw_into(&self, experts: usize, tokens: u64, rng: &mut impl Rng, c: &mut Vec<u64>) {
        c.clear();
        match self {
            Counts::Sets {
                members,
                p,
                tree,
                alias,
                packed,
                k,
                hits,
            } => {
                c.resize(experts, 0);
                if let Some(packed) = packed
                    && tokens as usize <= PACKED_DRAWS * packed.tokens_per_draw() * p.len()
                {
                    return packed.counts(tokens, rng, c);
                }
                let k = (*k).max(1);
                if (tokens as usize) < p.len() {
                    // Fewer tokens than sets: each token's members counted as it is drawn (a
                    // pass over every set, C(64, 2) = 2,016, would cost more than the draws).
                    let members = |s: usize| &members[s * k..(s + 1) * k];
                    alias.each(tokens, rng, |s| members(s).iter().for_each(|&e| c[e] += 1));
                    return;
                }
                let mut hits = hits.borrow_mut();
                hits.clear();
                hits.resize(p.len(), 0);
                if tokens as usize <= PER_TOKEN * p.len() {
                    // Few tokens: each draws its set.
                    alias.counts(tokens, rng, &mut hits);
                } else {
                    set_binomials(tree, tokens, rng, &mut hits);
                }
                // Each set's tokens go to its members.
                for (set, &n) in members.chunks_exact(k).zip(hits.iter()) {
                    for &e in set {
                        c[e] += n;
                    }
                }
            }
            Counts::Marginals {
                pi,
                cdf,
                guide,
                k,
                binomials,
                row,
            } => {
                c.resize(experts, 0);
                let n = row.len().min(experts);
                binomials.of(tokens).draw_rows(&row[..n], rng, &mut c[..n]);
                restore_sum(c, (cdf, guide, pi), tokens, tokens * k, rng);
            }
        }
    }
}

/// The marginals sampler of inclusion probabilities `pi` (expert e's binomials row `row[e]` of
/// `binomials`), its running variances and their guide derived from `pi`.
fn marginals(pi: Vec<f64>, k: u64, binomials: Rc<Binomials>, row: Vec<usize>) -> Counts {
    let cdf = running_variance(&pi);
    Counts::Marginals {
        guide: Guide::new(&cdf, cdf.last().copied().unwrap_or(0.0)),
        cdf,
        pi,
        k,
        binomials,
        row,
    }
}

/// Many tokens: the sets' multinomial into `hits` (zeroed), as a binary tree of binomials,
/// each splitting a run of sets' tokens between its halves at the first half's share of the
/// run's mass (`tree`, as [`tree`] builds it). Exact, as one binomial per set of the
/// tokens left is, but drawn a level of the tree at a time: a level's binomials depend on
/// nothing but the level above, so the processor overlaps them, where the chain of one
/// binomial per set waits on each one's square root and divisions (Mixtral's 28 pairs at
/// 8,192 tokens: 1.59 µs for the same tree depth first, 1.39 µs a level at a time).
fn set_binomials(tree: &[(usize, usize, f64)], tokens: u64, rng: &mut impl Rng, hits: &mut [u64]) {
    hits[0] = tokens;
    for &(lo, mid, q) in tree {
        let t = hits[lo];
        if t > 0 {
            let n = binomial(t, q, rng);
            hits[lo] = n;
            hits[mid] = t - n;
        }
    }
}

/// The splits of [`set_binomials`]' tree over `sets` sets, a level at a time from the root:
/// each `(lo, mid, hi)` splits the run `lo..hi` at `mid`. A level's runs are of a power of two
/// (the last one cut short), each run's tokens held at its first set.
fn splits(sets: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let widths = std::iter::successors(Some(sets.next_power_of_two()), |w| Some(w / 2));
    widths.take_while(|&w| w > 1).flat_map(move |w| {
        (0..sets)
            .step_by(w)
            .map(move |lo| (lo, lo + w / 2, (lo + w).min(sets)))
            .filter(move |&(_, mid, _)| mid < sets)
    })
}

/// The splits of the sets of chances `p`, each with its first half's share of its run's mass,
/// the halves' probabilities summed (not running sums differenced, which lose a small run's
/// mass beside a large one's).
fn tree(p: &[f64]) -> Vec<(usize, usize, f64)> {
    splits(p.len())
        .map(|(lo, mid, hi)| {
            let (a, b): (f64, f64) = (p[lo..mid].iter().sum(), p[mid..hi].iter().sum());
            (lo, mid, if a + b > 0.0 { a / (a + b) } else { 0.0 })
        })
        .collect()
}

/// Running sums of π_e (1 − π_e).
fn running_variance(pi: &[f64]) -> Vec<f64> {
    running(pi.iter().map(|p| p * (1.0 - p)))
}

/// Running sums of `x`.
fn running(x: impl Iterator<Item = f64>) -> Vec<f64> {
    x.scan(0.0, |acc, x| {
        *acc += x;
        Some(*acc)
    })
    .collect()
}

/// C(n, k), or `u64::MAX` once it passes [`SETS`] (it is only compared with that).
fn choose(n: u64, k: u64) -> u64 {
    if k > n {
        return 0;
    }
    let mut acc: u128 = 1;
    for i in 0..k.min(n - k) {
        // A product of i + 1 consecutive integers over (i + 1)!: exact at every step.
        acc = acc * u128::from(n - i) / u128::from(i + 1);
        if acc > u128::from(SETS) {
            return u64::MAX;
        }
    }
    acc as u64
}

/// Every k-set of `positive` with the probability that draws without replacement from `w` pick
/// it: over the subsets T of a set, f(T) = Σ_{e ∈ T} f(T ∖ e) · w_e ÷ (W − w(T ∖ e)).
fn sets(w: &[f64], positive: &[usize], k: usize) -> (Vec<usize>, Vec<f64>) {
    let (mut members, mut p) = (Vec::new(), Vec::new());
    let mut idx: Vec<usize> = (0..k).collect();
    let n = positive.len();
    let mut f = vec![0.0f64; 1 << k];
    loop {
        let s: Vec<usize> = idx.iter().map(|&i| positive[i]).collect();
        // The mass outside the set, summed rather than taken from the total: under steep skew
        // (Zipf s = 60) the total less the top expert's weight rounds to 0.
        let outside: f64 = mass_outside(w, &s);
        f[0] = 1.0;
        for t in 1usize..1 << k {
            f[t] = (0..k)
                .filter(|b| t >> b & 1 == 1)
                .map(|b| {
                    // What is left to draw from once T ∖ {b} is drawn: outside T, and b.
                    let left: f64 = (0..k)
                        .filter(|c| (t ^ 1 << b) >> c & 1 == 0)
                        .map(|c| w[s[c]])
                        .sum::<f64>()
                        + outside;
                    f[t ^ 1 << b] * w[s[b]] / left
                })
                .sum();
        }
        members.extend_from_slice(&s);
        p.push(f[(1 << k) - 1]);
        // The next k-combination of 0..n in lexicographic order.
        let Some(i) = (0..k).rev().find(|&i| idx[i] < n - k + i) else {
            break;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
    (members, p)
}

/// The weights of `w` outside the experts `s`.
fn mass_outside(w: &[f64], s: &[usize]) -> f64 {
    w.iter()
        .enumerate()
        .filter(|(e, _)| !s.contains(e))
        .map(|(_, x)| x)
        .sum()
}

/// π_e: the chance that `k` draws without replacement from `w` include expert e, by the
/// exponential race (see the module's doc).
pub fn inclusion(w: &[f64], k: usize) -> Vec<f64> {
    let total: f64 = w.iter().sum();
    let w: Vec<f64> = w.iter().map(|x| x / total).collect();
    let n = w.len();
    let positive = w.iter().filter(|&&x| x > 0.0).count();
    if k >= positive {
        return w.iter().map(|&x| f64::from(u8::from(x > 0.0))).collect();
    }
    let max = w.iter().copied().fold(0.0, f64::max);
    let min = w.iter().copied().filter(|&x| x > 0.0).fold(1.0, f64::min);
    // Below x0 every expert's density is w_e (nothing else has finished): that piece is w_e·x0.
    let x0 = 1e-12 / max;
    let mut pi: Vec<f64> = w.iter().map(|&x| x * x0).collect();
    // pre[e][j]: P(j of experts 0..e finished); suf[e][j]: P(j of e..n), cumulated over j.
    let (mut pre, mut suf) = (vec![0.0; (n + 1) * (k + 1)], vec![0.0; (n + 1) * (k + 1)]);
    let mut lnx = x0.ln();
    loop {
        lnx += STEP;
        let x = lnx.exp();
        poisson_binomial(&w, x, k, &mut pre, &mut suf);
        for e in 0..n {
            let others: f64 = (0..k)
                .map(|a| pre[e * (k + 1) + a] * suf[(e + 1) * (k + 1) + (k - 1 - a)])
                .sum();
            pi[e] += STEP * w[e] * x * (-w[e] * x).exp() * others;
        }
        // Done when k + 1 have finished but for 1e-17, or every expert almost surely has.
        let at_most_k: f64 = pre[n * (k + 1)..].iter().sum();
        if at_most_k < 1e-17 || min * x > 50.0 {
            break;
        }
    }
    pi
}

/// The finish counts at time `x`: `pre[e][j]`, P(j of experts 0..e finished) for j ≤ k, and
/// `suf[e][j]`, P(at most j of experts e..n finished) for j < k.
fn poisson_binomial(w: &[f64], x: f64, k: usize, pre: &mut [f64], suf: &mut [f64]) {
    let (n, m) = (w.len(), k + 1);
    pre[..m].fill(0.0);
    pre[0] = 1.0;
    for e in 0..n {
        let (p, q) = (-(-w[e] * x).exp_m1(), (-w[e] * x).exp());
        for j in 0..m {
            let from = if j > 0 { pre[e * m + j - 1] * p } else { 0.0 };
            pre[(e + 1) * m + j] = pre[e * m + j] * q + from;
        }
    }
    suf[n * m..].fill(0.0);
    suf[n * m] = 1.0;
    for e in (0..n).rev() {
        let (p, q) = (-(-w[e] * x).exp_m1(), (-w[e] * x).exp());
        for j in (0..m).rev() {
            let from = if j > 0 {
                suf[(e + 1) * m + j - 1] * p
            } else {
                0.0
            };
            suf[e * m + j] = suf[(e + 1) * m + j] * q + from;
        }
    }
    // Cumulate the suffix distributions: suf[e][j] = P(at most j finished).
    for e in 0..=n {
        for j in 1..m {
            suf[e * m + j] += suf[e * m + j - 1];
        }
    }
}

/// Moves tokens one at a time until `c` sums to `target`: to or from an expert drawn in
/// proportion to π_e (1 − π_e) (`cdf` holds their running sums), redrawn while it cannot take
/// the move (no token to give, or every token already), at most [`TRIES`] times, then the
/// first expert that can.
fn restore_sum(
    c: &mut [u64],
    (cdf, guide, pi): (&[f64], &Guide, &[f64]),
    tokens: u64,
    target: u64,
    rng: &mut impl Rng,
) {
    let mut sum: u64 = c.iter().sum();
    let total = cdf.last().copied().unwrap_or(0.0);
    while sum != target {
        let up = sum < target;
        let can = |e: usize, c: &[u64]| {
            if up {
                c[e] < tokens && pi[e] > 0.0
            } else {
                c[e] > 0
            }
        };
        let quick = (0..TRIES).find_map(|_| {
            // rand's uniform of the word, and the count of running sums at or below it by
            // the guide: the first expert whose running sum exceeds u.
            let w = rng.next_u64();
            let u = binomial::uniform(w) * total;
            let e = guide.count(cdf, w, u);
            (total > 0.0 && e < c.len() && can(e, c)).then_some(e)
        });
        let Some(e) = quick.or_else(|| (0..c.len()).find(|&e| can(e, c))) else {
            return;
        };
        if up {
            c[e] += 1;
            sum += 1;
        } else {
            c[e] -= 1;
            sum -= 1;
        }
    }
}

#[cfg(test)]
#[path = "counts_tests.rs"]
mod tests;
