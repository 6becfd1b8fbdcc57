//! The binomials of [`super::Counts::Marginals`]: each expert's Binomial(tokens, π_e) by
//! inversion from its mode ([`Table`]), with the thresholds its walk compares a uniform with
//! worked out once per number of tokens ([`Walk`]), drawn from an alias table of the walk's
//! outcomes ([`Walks`]), and kept for the latest few numbers of tokens, shared by every layer
//! that relabels one ranking ([`Binomials`]); and the [`Guide`] that restoring the sum reads.

use std::cell::RefCell;
use std::rc::Rc;

use rand::Rng;

use super::alias::{Alias, Column, outcome};

/// Least probability of a value summed into a [`Table`]'s normalisation, relative to the most
/// likely value's: the values left out hold less than 1e-15 of the mass in all.
const TAIL: f64 = 1e-17;

/// Numbers of tokens whose walks [`Binomials`] keeps: an iteration's layers all draw for its
/// tokens, and decode iterations of one batch size follow one another.
const CACHED: usize = 4;

/// Most thresholds a [`Walk`] keeps each way; a draw past them walks on as [`Table`] does.
const MOST_STEPS: usize = 1024;

/// A binomial distribution by inversion from its mode: the mode, its probability and the
/// probability up to it; a draw walks from the mode, up or down, by the ratio of neighbouring
/// probabilities, P(j + 1) ÷ P(j) = (n − j) ÷ (j + 1) · p ÷ (1 − p), about 0.8 σ steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    n: u64,
    mode: u64,
    /// P(mode).
    f: f64,
    /// P(X ≤ mode).
    c: f64,
    /// p ÷ (1 − p) (0 for a constant).
    odds: f64,
}

/// Where a walk stands: the value j, P(j) and P(X ≤ j).
type At = (u64, f64, f64);

impl Table {
    /// Binomial(n, p): the probabilities from the mode outwards, to [`TAIL`] of the mode's,
    /// summed to normalise them.
    pub(super) fn new(n: u64, p: f64) -> Table {
        if p <= 0.0 || p >= 1.0 || n == 0 {
            let mode = if p >= 1.0 { n } else { 0 };
            return Table {
                n,
                mode,
                f: 1.0,
                c: 1.0,
                odds: 0.0,
            };
        }
        let mode = (((n + 1) as f64 * p).floor() as u64).min(n);
        let odds = p / (1.0 - p);
        let (mut up, mut j, mut x) = (0.0, mode, 1.0);
        while j < n && x > TAIL {
            x *= (n - j) as f64 / (j + 1) as f64 * odds;
            up += x;
            j += 1;
        }
        let (mut down, mut j, mut x) = (0.0, mode, 1.0);
        while j > 0 && x > TAIL {
            x *= j as f64 / (n - j + 1) as f64 / odds;
            down += x;
            j -= 1;
        }
        let total = 1.0 + up + down;
        Table {
            n,
            mode,
            f: 1.0 / total,
            c: (1.0 + down) / total,
            odds,
        }
    }

    /// A draw for the uniform u: the walk from the mode (what [`Walks::at`] is tested
    /// against).
    #[cfg(test)]
    pub(super) fn walk(&self, u: f64) -> u64 {
        if self.odds == 0.0 {
            return self.mode;
        }
        let start = (self.mode, self.f, self.c);
        if u < self.c {
            self.down(u, start)
        } else {
            self.up(u, start)
        }
    }

    /// Down from `at` while u lies below P(X ≤ j − 1).
    fn down(&self, u: f64, (mut j, mut f, mut c): At) -> u64 {
        while j > 0 && u < c - f && f > 0.0 {
            (j, f, c) = self.step_down((j, f, c));
        }
        j
    }

    /// Up from `at` while u lies at or above P(X ≤ j).
    fn up(&self, u: f64, (mut j, mut f, mut c): At) -> u64 {
        while j < self.n && u >= c && f > 0.0 {
            (j, f, c) = self.step_up((j, f, c));
        }
        j
    }

    fn step_down(&self, (j, f, c): At) -> At {
        (
            j - 1,
            f * (j as f64 / (self.n - j + 1) as f64 / self.odds),
            c - f,
        )
    }

    fn step_up(&self, (j, f, c): At) -> At {
        let f = f * ((self.n - j) as f64 / (j + 1) as f64 * self.odds);
        (j + 1, f, c + f)
    }
}

/// A [`Table`] and where its walk's thresholds end (the thresholds, one array that never
/// falls, are made into [`Walks`]' alias tables). The walk down from the mode takes step i while
/// u < P(X ≤ mode − 1 − i) (its c − f there), the walk up
/// while u ≥ P(X ≤ mode + i) (its c there), so the value drawn is the lowest value of the
/// array plus the number of thresholds at or below u. Each threshold is the walk's own
/// floating-point value, so a draw is the walk's draw, bit for bit. A walk's end (j at 0 or
/// n, or P(j) at 0) is −∞ or +∞; past the thresholds kept (`MOST_STEPS`, and 6 σ + 8 each
/// way) the draw walks on from where they end.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    table: Table,
    /// How many of its thresholds are the down walk's.
    below: u64,
    /// Where the down and up walks stand after their thresholds, where they were cut short.
    down_end: Option<At>,
    up_end: Option<At>,
}

impl Walk {
    /// The walk of `table` and its thresholds (the down walk's, lowest first, then the up
    /// walk's).
    pub(super) fn new(table: Table) -> (Walk, Vec<f64>) {
        let t = table;
        let steps = if t.odds == 0.0 {
            0
        } else {
            let p = t.odds / (1.0 + t.odds);
            let sd = (t.n as f64 * p * (1.0 - p)).sqrt();
            ((6.0 * sd).ceil() as usize + 8).min(MOST_STEPS)
        };
        Walk::with_steps(table, steps)
    }

    /// The walk with at most `steps` thresholds each way.
    pub(super) fn with_steps(table: Table, steps: usize) -> (Walk, Vec<f64>) {
        let t = table;
        let start = (t.mode, t.f, t.c);
        let (mut down, down_end) = one_way(
            start,
            steps,
            |(j, f, _)| !(j > 0 && f > 0.0),
            |(_, f, c)| c - f,
            |at| t.step_down(at),
            f64::NEG_INFINITY,
        );
        let (up, up_end) = one_way(
            start,
            steps,
            |(j, f, _)| !(j < t.n && f > 0.0),
            |(_, _, c)| c,
            |at| t.step_up(at),
            f64::INFINITY,
        );
        let below = down.len() as u64;
        down.reverse();
        down.extend(up);
        let walk = Walk {
            table,
            below,
            down_end,
            up_end,
        };
        (walk, down)
    }

    /// The draw for the uniform u by its thresholds `x`: the lowest value plus the count of
    /// them at or below u, or past them the walk on (what [`Walks`] draws, by chances).
    #[cfg(test)]
    pub(super) fn by_thresholds(&self, x: &[f64], u: f64) -> u64 {
        let i = x.partition_point(|&t| t <= u);
        if i == 0 || i == x.len() {
            return self.past_the_thresholds(u, i, x.len());
        }
        (self.table.mode + i as u64) - self.below
    }

    /// A draw whose `i` thresholds at or below u, of its `len`, are none or all of them: where
    /// the walk that way was cut short, it walks on from where its thresholds end.
    #[cold]
    fn past_the_thresholds(&self, u: f64, i: usize, len: usize) -> u64 {
        let t = &self.table;
        match (self.down_end, self.up_end) {
            (Some(at), _) if i == 0 && u < t.c => t.down(u, at),
            (_, Some(at)) if i == len && u >= t.c => t.up(u, at),
            // At least one threshold at or below u wherever the down walk has an end, and at
            // most `mode` thresholds below where it was cut short: never below 0.
            _ => t.mode + i as u64 - self.below,
        }
    }
}

/// The [`Walk`]s of a row of binomials laid out for drawing, each as an alias table
/// ([`super::alias::Alias`]) of its walk's outcomes: the value `base + i` where u has `i` of
/// the walk's thresholds at or below it (chance x_i − x_{i−1}), and below and past them the
/// walk's tails where it was cut short (chances x_0 and 1 − x_last; none where it ends). A
/// draw is one 32-bit uniform, a column and a comparison (the walk by thresholds and a guide
/// took about 50 instructions a draw, its scan's branches mispredicted); a tail draws a
/// uniform within it and walks on as [`Table`] does. Each outcome's chance is the walk's to
/// within 2^-32 (`counts::tests::a_walks_alias_holds_each_value_at_its_binomial_chance`). Every
/// walk's columns are in one array, and what a draw reads of a walk in one small record.
#[derive(Debug)]
pub(super) struct Walks {
    hot: Vec<Hot>,
    columns: Vec<Column>,
    cold: Vec<Cold>,
}

/// What a draw from one walk of [`Walks`] reads.
#[derive(Debug, Clone, Copy)]
struct Hot {
    /// Its columns: `columns[at..at + outcomes]`; [`CONSTANT`] outcomes for a constant.
    at: u32,
    outcomes: u32,
    /// Its lowest value less one (mode − below, modulo 2^64): outcome i is this plus i.
    base: u64,
}

/// A walk's tails: the walk, and its lowest and highest thresholds.
#[derive(Debug)]
struct Cold {
    walk: Walk,
    low: f64,
    high: f64,
}

/// [`Hot::outcomes`] of a constant (p = 0 or 1, or no tokens): its value is [`Hot::base`].
const CONSTANT: u32 = 0;

impl Walks {
    /// The walks `walks`, each with its thresholds.
    pub(super) fn new(walks: Vec<(Walk, Vec<f64>)>) -> Walks {
        let mut w = Walks {
            hot: Vec::with_capacity(walks.len()),
            columns: Vec::new(),
            cold: Vec::with_capacity(walks.len()),
        };
        for (walk, x) in walks {
            if walk.table.odds == 0.0 {
                w.hot.push(Hot {
                    at: 0,
                    outcomes: CONSTANT,
                    base: walk.table.mode,
                });
                w.cold.push(Cold {
                    walk,
                    low: 0.0,
                    high: 1.0,
                });
                continue;
            }
            // Without thresholds (a walk cut to none) its one outcome is the walk from its mode
            // for any u: the tail below, over all of [0, 1).
            let (low, high) = (x.first().map_or(1.0, |&l| l), x.last().map_or(0.0, |&h| h));
            w.hot.push(Hot {
                at: w.columns.len() as u32,
                outcomes: x.len() as u32 + 1,
                base: walk.table.mode.wrapping_sub(walk.below),
            });
            let p = if x.is_empty() { vec![1.0] } else { chances(&x) };
            w.columns.extend(Alias::new(&p).columns);
            w.cold.push(Cold { walk, low, high });
        }
        w
    }

    /// A draw from row `row`'s walk for the 32-bit uniform `u` (`rng` draws within a tail).
    #[inline(always)]
    fn at(&self, row: usize, u: u32, rng: &mut impl Rng) -> u64 {
        let h = self.hot[row];
        if h.outcomes == CONSTANT {
            return h.base;
        }
        let i = outcome(&self.columns, h.at as usize, h.outcomes, u);
        if i == 0 || i == h.outcomes as usize - 1 {
            return self.tail(row, i, rng);
        }
        h.base.wrapping_add(i as u64)
    }

    /// A draw in row `row`'s tail `i` (0 below its thresholds, else past them): u uniform
    /// within the tail, and the walk on from where the thresholds end.
    #[cold]
    fn tail(&self, row: usize, i: usize, rng: &mut impl Rng) -> u64 {
        let Cold { walk, low, high } = &self.cold[row];
        let v = uniform(rng.next_u64());
        let u = if i == 0 {
            v * low
        } else {
            high + v * (1.0 - high)
        };
        walk.past_the_thresholds(u, i, self.hot[row].outcomes as usize - 1)
    }

    /// A draw from each of `rows` into `out` (as long), two from each 64-bit word, its top
    /// and its bottom 32 bits.
    pub(super) fn draw_rows(&self, rows: &[usize], rng: &mut impl Rng, out: &mut [u64]) {
        let mut pairs = rows.chunks_exact(2);
        let mut to = out.chunks_exact_mut(2);
        for (p, x) in (&mut pairs).zip(&mut to) {
            let w = rng.next_u64();
            x[0] = self.at(p[0], (w >> 32) as u32, rng);
            x[1] = self.at(p[1], w as u32, rng);
        }
        if let ([r], [x]) = (pairs.remainder(), to.into_remainder()) {
            *x = self.at(*r, (rng.next_u64() >> 32) as u32, rng);
        }
    }

    /// Row `row`'s value less one for its first outcome (modulo 2^64) and its alias columns.
    #[cfg(test)]
    pub(super) fn alias(&self, row: usize) -> (u64, &[Column]) {
        let h = self.hot[row];
        (
            h.base,
            &self.columns[h.at as usize..(h.at + h.outcomes) as usize],
        )
    }
}

/// The chance of each outcome of a walk with thresholds `x`: that u has i of them at or below
/// it, for i from 0 to their number (the ends, −∞ and +∞ where the walk ends, taken as 0 and 1).
fn chances(x: &[f64]) -> Vec<f64> {
    let at = |i: usize| x[i].clamp(0.0, 1.0);
    let mut p = Vec::with_capacity(x.len() + 1);
    p.push(at(0));
    p.extend((1..x.len()).map(|i| at(i) - at(i - 1)));
    p.push(1.0 - at(x.len() - 1));
    p
}

/// One way of a walk from `at`, at most `steps` of it: the threshold of each step it takes,
/// then `end` where the walk ends there (`ends`), else where it stands after the last.
fn one_way(
    mut at: At,
    steps: usize,
    ends: impl Fn(At) -> bool,
    threshold: impl Fn(At) -> f64,
    step: impl Fn(At) -> At,
    end: f64,
) -> (Vec<f64>, Option<At>) {
    let mut x = Vec::with_capacity(steps + 1);
    loop {
        if ends(at) {
            x.push(end);
            return (x, None);
        }
        if x.len() == steps {
            return (x, Some(at));
        }
        x.push(threshold(at));
        at = step(at);
    }
}

/// Where to start counting how many of a run of values that never falls lie at or below a
/// uniform on [0, scale) (the guide table of H.-C. Chen and Y. Asau, "On generating random
/// variates from an empirical distribution", AIIE Transactions 6(2), 1974): for each of G = 2^g equal slices, how many lie
/// at or below its start. The slice of u = r·scale, r made of the word w, is w's top g bits
/// (r·G is exact), and fl(r·scale) is never below fl((b ÷ G)·scale) for r in slice b, so the
/// start is a lower bound and a scan from it finds the count exactly.
#[derive(Debug, Clone)]
pub struct Guide {
    start: Vec<u32>,
    /// 64 − g (G at least 2).
    shift: u32,
}

impl Guide {
    /// The guide of `values` (never falling) over [0, `scale`), about one value a slice.
    pub(super) fn new(values: &[f64], scale: f64) -> Guide {
        let slices = values.len().next_power_of_two().max(2);
        let start = (0..slices)
            .map(|b| {
                let at = b as f64 / slices as f64 * scale;
                values.partition_point(|&x| x <= at) as u32
            })
            .collect();
        Guide {
            start,
            shift: 64 - slices.trailing_zeros(),
        }
    }

    /// How many of `values` lie at or below u, where u is `uniform(w)` × the guide's scale.
    #[inline]
    pub(super) fn count(&self, values: &[f64], w: u64, u: f64) -> usize {
        let mut i = self.start[(w >> self.shift) as usize] as usize;
        while i < values.len() && values[i] <= u {
            i += 1;
        }
        i
    }
}

/// The uniform on [0, 1) that `rand` makes of the word `w`: its top 53 bits × 2^-53.
pub(super) fn uniform(w: u64) -> f64 {
    (w >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Each row's Binomial(tokens, π) walks for the latest [`CACHED`] numbers of tokens, most
/// recent first.
#[derive(Debug)]
pub struct Binomials {
    pi: Vec<f64>,
    by_tokens: RefCell<Vec<(u64, Rc<Walks>)>>,
}

impl Binomials {
    pub(super) fn new(pi: Vec<f64>) -> Binomials {
        Binomials {
            pi,
            by_tokens: RefCell::default(),
        }
    }

    /// Each row's walk for `tokens` tokens.
    pub(super) fn of(&self, tokens: u64) -> Rc<Walks> {
        let mut kept = self.by_tokens.borrow_mut();
        match kept.iter().position(|(t, _)| *t == tokens) {
            Some(0) => Rc::clone(&kept[0].1),
            Some(i) => {
                let hit = kept.remove(i);
                kept.insert(0, hit);
                Rc::clone(&kept[0].1)
            }
            None => {
                let walks = self.pi.iter().map(|&p| Walk::new(Table::new(tokens, p)));
                let walks = Rc::new(Walks::new(walks.collect()));
                kept.insert(0, (tokens, Rc::clone(&walks)));
                kept.truncate(CACHED);
                walks
            }
        }
    }
}
