//! The alias tables that draw each token's k-set where the sets are few and so are the
//! tokens ([`super::Counts::Sets`]): [`Alias`], and [`Packed`] where the experts are at most 8.

use std::sync::Arc;

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
        outcome(&self.columns, 0, self.columns.len() as u32, u)
    }

    /// Adds into `hits` how many of `n` draws give each outcome.
    pub(super) fn counts(&self, n: u64, rng: &mut impl Rng, hits: &mut [u64]) {
        self.each(n, rng, |o| hits[o] += 1);
    }

    /// Calls `f` with the outcome of each of `n` draws, two from each 64-bit word.
    pub(super) fn each(&self, n: u64, rng: &mut impl Rng, mut f: impl FnMut(usize)) {
        for _ in 0..n / 2 {
            let r = rng.next_u64();
            f(self.one(r as u32));
            f(self.one((r >> 32) as u32));
        }
        if n % 2 == 1 {
            f(self.one(rng.next_u64() as u32));
        }
    }
}

/// The outcome of the 32-bit uniform `u` in the `n` [`Alias`] columns from `columns[at]`.
#[inline(always)]
pub(super) fn outcome(columns: &[Column], at: usize, n: u32, u: u32) -> usize {
    let x = u64::from(u) * u64::from(n);
    // One bounds check (a subslice of the `n` and its index would take three).
    let c = &columns[at + (x >> 32) as usize];
    // The outcome indexed by the comparison (as [`pick`]): no branch to mispredict.
    let own = (x & 0xffff_ffff).wrapping_sub(c.keep) >> 63;
    c.outcome[own as usize] as usize
}

/// 2^32, the scale of an [`Alias`] threshold.
pub(super) const TWO_32: f64 = 4_294_967_296.0;

/// Tokens per expert as the 8-bit lanes of one word, for a layer of at most [`LANES`] experts:
/// an outcome's lanes hold 1 for each of its sets' members, so a draw adds one word, not a
/// count per expert. Lane e counts at most one per token (a set's members are distinct), so at
/// most [`CHUNK`] tokens are added before the lanes are read out. Where the sets are at most
/// [`PAIRED`], each draw is of two tokens: an outcome per unordered pair of sets {a, b}, of
/// chance p_a·p_b, twice that where a ≠ b (tokens route independently), so a token costs half
/// a draw; the pairs' table has [`PAIRS`] columns (those past the S(S + 1)/2 pairs of chance
/// 0), so a column is the top 9 bits of a draw and its index needs no bounds check. Exact as
/// [`Alias`] is (to within G ÷ 2^32 per column). Mixtral's Zipf run: 2.01 G instructions with
/// a store per token into counts per set, 1.47 G with pairs in lanes (callgrind).
#[derive(Debug, Clone)]
pub struct Packed {
    /// The tables, shared by the layers that relabel one ranking (Zipf routing shuffles one
    /// sampler per layer: one copy stays in the L1 cache, not one per layer).
    pub(super) tables: Arc<Tables>,
    /// The expert each lane counts.
    expert: Vec<usize>,
}

/// The alias tables of a [`Packed`] sampler.
#[derive(Debug)]
pub(super) struct Tables {
    /// The sets' own table.
    pub(super) single: Vec<Lanes>,
    /// The pairs' table, where the sets are at most [`PAIRED`].
    pub(super) pairs: Option<Box<[Lanes; PAIRS]>>,
}

/// One column of a [`Packed`] table: its chance of keeping its own outcome (as
/// [`Column::keep`]) and its outcomes' lanes, its alias's then its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lanes {
    pub(super) keep: u64,
    pub(super) add: [u64; 2],
}

/// Most experts of a [`Packed`] table: 8 lanes of 8 bits.
pub(super) const LANES: usize = 8;

/// Most tokens added into one word of lanes: each lane stays below 2^8.
const CHUNK: u64 = 255;

/// Most sets for which a [`Packed`] draw is of two tokens (S(S + 1)/2 ≤ [`PAIRS`]).
const PAIRED: usize = 31;

/// Columns of a [`Packed`] pairs' table (24 bytes each: 12 KB, within a core's L1 data cache;
/// trace routing keeps one per layer, 384 KB for 32 layers, within its L2).
pub(super) const PAIRS: usize = 512;

impl Packed {
    /// The table of the sets `members` (`k` per set, flattened) of chances `p`, or `None` where
    /// a member is past the lanes.
    pub(super) fn new(members: &[usize], p: &[f64], k: usize) -> Option<Packed> {
        if members.iter().any(|&e| e >= LANES) {
            return None;
        }
        let lanes: Vec<u64> = members
            .chunks_exact(k.max(1))
            .map(|set| set.iter().map(|&e| 1u64 << (8 * e)).sum())
            .collect();
        let lanes = if k == 0 { vec![0; p.len()] } else { lanes };
        let single = columns(p, &lanes);
        let expert = (0..LANES).collect();
        if p.len() > PAIRED {
            let tables = Arc::new(Tables {
                single,
                pairs: None,
            });
            return Some(Packed { tables, expert });
        }
        let (mut chance, mut sum) = (vec![0.0; PAIRS], vec![0; PAIRS]);
        let mut at = 0;
        for a in 0..p.len() {
            for b in a..p.len() {
                let orders = if a == b { 1.0 } else { 2.0 };
                (chance[at], sum[at]) = (orders * p[a] * p[b], lanes[a] + lanes[b]);
                at += 1;
            }
        }
        let pairs: Box<[Lanes; PAIRS]> = columns(&chance, &sum).try_into().ok()?;
        let tables = Arc::new(Tables {
            single,
            pairs: Some(pairs),
        });
        Some(Packed { tables, expert })
    }

    /// The same sampler with expert `to[e]` in the place of expert e (the tables shared).
    pub(super) fn relabel(&self, to: &[usize]) -> Packed {
        Packed {
            tables: Arc::clone(&self.tables),
            expert: self
                .expert
                .iter()
                .map(|&e| to.get(e).copied().unwrap_or(e))
                .collect(),
        }
    }

    /// Tokens a draw adds: two where the table is of pairs of sets.
    pub(super) fn tokens_per_draw(&self) -> usize {
        if self.tables.pairs.is_some() { 2 } else { 1 }
    }

    /// Adds into `c` (one count per expert) the tokens per expert of `n` tokens.
    pub(super) fn counts(&self, n: u64, rng: &mut impl Rng, c: &mut [u64]) {
        let Tables { single, pairs } = &*self.tables;
        let mut left = n;
        while left > 0 {
            let chunk = left.min(CHUNK);
            let one = |u| one(single, u);
            let acc = match pairs {
                Some(pairs) => {
                    draws(chunk / 2, |u| pair(pairs, u), rng) + draws(chunk % 2, one, rng)
                }
                None => draws(chunk, one, rng),
            };
            for (lane, &e) in self.expert.iter().enumerate() {
                if let Some(x) = c.get_mut(e) {
                    *x += (acc >> (8 * lane)) & 0xff;
                }
            }
            left -= chunk;
        }
    }
}

/// The lanes of `m` draws of `pick`, two 32-bit draws from each 64-bit word.
fn draws(m: u64, pick: impl Fn(u32) -> u64, rng: &mut impl Rng) -> u64 {
    let mut acc = 0u64;
    for _ in 0..m / 2 {
        let r = rng.next_u64();
        acc += pick(r as u32) + pick((r >> 32) as u32);
    }
    if m % 2 == 1 {
        acc += pick(rng.next_u64() as u32);
    }
    acc
}

/// The [`Packed`] columns of outcomes of chances `p` and lanes `lanes`.
fn columns(p: &[f64], lanes: &[u64]) -> Vec<Lanes> {
    Alias::new(p)
        .columns
        .iter()
        .map(|c| Lanes {
            keep: c.keep,
            add: c.outcome.map(|o| lanes[o as usize]),
        })
        .collect()
}

/// The lanes of the outcome of the 32-bit uniform `u` (as [`Alias`] draws one).
fn one(table: &[Lanes], u: u32) -> u64 {
    let x = u64::from(u) * table.len() as u64;
    pick(&table[(x >> 32) as usize], x)
}

/// [`one`] of a pairs' table: with G = 2^9 the column is `u`'s top 9 bits.
fn pair(table: &[Lanes; PAIRS], u: u32) -> u64 {
    let x = u64::from(u) << PAIRS.trailing_zeros();
    pick(&table[(x >> 32) as usize], x)
}

/// The lanes column `c` gives for `x` = u·G (its low 32 bits the uniform below the column).
fn pick(c: &Lanes, x: u64) -> u64 {
    // 1 where the uniform is below the threshold (both under 2^33, so the difference's sign
    // bit says which is larger): an index, not a branch, as the comparison's outcome is random.
    let own = (x & 0xffff_ffff).wrapping_sub(c.keep) >> 63;
    c.add[own as usize]
}
