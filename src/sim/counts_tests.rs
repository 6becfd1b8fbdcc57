use super::alias::TWO_32;
use super::*;
use crate::sim::routing::{RouteRng, exact_counts};
use crate::sim::workload::rng;
use rand::SeedableRng;

/// Zipf weights 1/r^s over `n` experts, in rank order.
fn zipf(n: usize, s: f64) -> Vec<f64> {
    (1..=n).map(|r| (r as f64).powf(-s)).collect()
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical
/// distribution functions of `a` and `b`.
fn ks(a: &[u64], b: &[u64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    let mut values: Vec<u64> = a.iter().chain(&b).copied().collect();
    values.sort_unstable();
    values.dedup();
    let cdf = |v: &[u64], x: u64| v.partition_point(|&y| y <= x) as f64 / v.len() as f64;
    values
        .iter()
        .map(|&x| (cdf(&a, x) - cdf(&b, x)).abs())
        .fold(0.0, f64::max)
}

/// The KS critical value at α = 0.001 for two samples of `r` each: c(α) √(2 / r), c = 1.949
/// (√(−ln(α/2) / 2)).
fn ks_critical(r: usize) -> f64 {
    ks_coefficient(0.001) * (2.0 / r as f64).sqrt()
}

/// The KS coefficient c(α) = √(−ln(α/2) / 2).
fn ks_coefficient(alpha: f64) -> f64 {
    (-(alpha / 2.0).ln() / 2.0).sqrt()
}

/// `r` draws of the loads of `tokens` tokens by the count sampler and by the exact per-token
/// sampler; for each expert the KS statistic of its loads and the critical value.
fn compare(w: &[f64], k: usize, tokens: u64, r: usize) -> Vec<(f64, f64)> {
    let fast = Counts::new(w, k);
    // The count sampler on the serving runs' routing stream, the exact one on ChaCha8.
    let (mut g, mut h) = (RouteRng::seed_from_u64(21), rng(22, 3));
    let a: Vec<Vec<u64>> = (0..r).map(|_| fast.draw(w.len(), tokens, &mut g)).collect();
    let b: Vec<Vec<u64>> = (0..r).map(|_| exact_counts(w, k, tokens, &mut h)).collect();
    for c in &a {
        assert_eq!(c.iter().sum::<u64>(), tokens * k as u64);
        assert!(c.iter().all(|&x| x <= tokens), "{c:?}");
    }
    (0..w.len())
        .map(|e| {
            let col = |v: &[Vec<u64>]| v.iter().map(|c| c[e]).collect::<Vec<u64>>();
            (ks(&col(&a), &col(&b)), ks_critical(r))
        })
        .collect()
}

#[test]
fn mixtral_pairs_have_the_closed_form_probability() {
    // Two draws without replacement: P({a, b}) = w_a w_b / W · (1/(W − w_a) + 1/(W − w_b)).
    let w = zipf(8, 1.2);
    let total: f64 = w.iter().sum();
    let Counts::Sets { members, p, k, .. } = Counts::new(&w, 2) else {
        panic!("28 pairs are drawn exactly");
    };
    assert_eq!((p.len(), k), (28, 2));
    for (i, &pi) in p.iter().enumerate() {
        let (a, b) = (w[members[2 * i]], w[members[2 * i + 1]]);
        let exact = a * b / total * (1.0 / (total - a) + 1.0 / (total - b));
        assert!((pi - exact).abs() < 1e-15, "{i}: {pi} against {exact}");
    }
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn inclusion_probabilities_sum_to_k_and_match_the_sets() {
    // π_e summed over the k-sets that hold e, against the exponential race's integral.
    for (w, k) in [(vec![0.55, 0.25, 0.15, 0.05], 2), (zipf(10, 1.5), 3)] {
        let (members, p) = sets(&w, &(0..w.len()).collect::<Vec<_>>(), k);
        let pi = inclusion(&w, k);
        for (e, &x) in pi.iter().enumerate() {
            let from_sets: f64 = (0..p.len())
                .filter(|&i| members[i * k..(i + 1) * k].contains(&e))
                .map(|i| p[i])
                .sum();
            assert!(
                (x - from_sets).abs() < 1e-10,
                "{e}: {x} against {from_sets}"
            );
        }
    }
    // DeepSeek-V3's shape: 8 of 256 experts; each token's 8 distinct draws.
    let pi = inclusion(&zipf(256, 1.2), 8);
    assert!(
        (pi.iter().sum::<f64>() - 8.0).abs() < 1e-9,
        "{}",
        pi.iter().sum::<f64>()
    );
    assert!(pi.iter().all(|&x| (0.0..=1.0).contains(&x)));
}

#[test]
fn exact_set_counts_match_the_exact_sampler_by_kolmogorov_smirnov() {
    // Mixtral: 2 of 8, Zipf s = 1.2, 400 draws each way of 128 tokens (a decode batch: each
    // two tokens draw their pairs), of 127 (the last token alone), of 2,000 (a prefill chunk
    // under PACKED_DRAWS, still drawn two tokens a draw) and of 3,000 (past it: the tree of
    // binomials); and 3 of 8 (56 sets: a token per draw), 400 tokens (the lanes read out
    // twice) and 3,000 (the tree).
    for (k, tokens) in [
        (2, 128),
        (2, 127),
        (2, 2000),
        (2, 3000),
        (3, 400),
        (3, 3000),
    ] {
        for (e, (d, crit)) in compare(&zipf(8, 1.2), k, tokens, 400)
            .into_iter()
            .enumerate()
        {
            assert!(
                d < crit,
                "{k} of 8, {tokens} tokens, expert {e}: D = {d} ≥ {crit}"
            );
        }
    }
}

#[test]
fn sets_without_lanes_match_the_exact_sampler_by_kolmogorov_smirnov() {
    // Past 8 experts, Zipf s = 1.2, 400 draws each way: 2 of 64 (2,016 sets) at 128 tokens,
    // fewer tokens than sets (each token's members counted as drawn), and 2 of 16 (120 sets)
    // at 300 tokens (counted per set, then added to the members) and 4,000 (past PER_TOKEN:
    // the tree of binomials).
    for (n, tokens) in [(64, 128), (16, 300), (16, 4000)] {
        let w = zipf(n, 1.2);
        assert!(matches!(
            Counts::new(&w, 2),
            Counts::Sets { packed: None, .. }
        ));
        for (e, (d, crit)) in compare(&w, 2, tokens, 400).into_iter().enumerate() {
            assert!(
                d < crit,
                "2 of {n}, {tokens} tokens, expert {e}: D = {d} ≥ {crit}"
            );
        }
    }
}

#[test]
fn marginals_match_the_exact_sampler_by_kolmogorov_smirnov() {
    // 6 of 64 experts (C(64, 6) ≈ 7.5e7 sets: the approximation), Zipf s = 1.2, 256 tokens,
    // 400 draws each way: every expert's load passes the two-sample KS test at α = 0.001.
    let w = zipf(64, 1.2);
    assert!(matches!(Counts::new(&w, 6), Counts::Marginals { .. }));
    for (e, (d, crit)) in compare(&w, 6, 256, 400).into_iter().enumerate() {
        assert!(d < crit, "expert {e}: D = {d} ≥ {crit}");
    }
}

#[test]
fn extreme_weights_still_give_tokens_times_k() {
    // Zipf s = 60 over 40 experts, 4 per token: the top four take every token.
    let w = zipf(40, 60.0);
    let c = Counts::new(&w, 4).draw(40, 1000, &mut rng(5, 3));
    assert_eq!(&c[..4], &[1000; 4]);
    assert_eq!(c.iter().sum::<u64>(), 4000);
    // A zero weight never gets a token; fewer positive experts than k: each takes them all.
    let c = Counts::new(&[0.0, 1.0, 2.0], 3).draw(3, 10, &mut rng(6, 3));
    assert_eq!(c, vec![0, 10, 10]);
    assert_eq!(choose(256, 8), u64::MAX);
    assert_eq!((choose(8, 2), choose(16, 2), choose(5, 5)), (28, 120, 1));
}

#[test]
fn an_inversion_table_has_the_binomial_mean_and_variance() {
    // 200,000 draws of each, as the marginals draw them (two from each word, by the walk's
    // alias table): the mean within 5 standard errors of n·p and the variance within 2% of
    // n·p·(1 − p), small and large n, p near 0 and 1, and walks cut to 1 and 3 steps each way
    // (most of their draws in the tails).
    use super::binomial::{Walk, Walks};
    let mut g = rng(8, 3);
    let cases = [(256u64, 0.9), (256, 0.003), (65_536, 0.37), (7, 0.5)];
    for ((n, p), steps) in cases
        .into_iter()
        .flat_map(|c| [(c, None), (c, Some(1)), (c, Some(3))])
    {
        let t = Table::new(n, p);
        let walk = steps.map_or_else(|| Walk::new(t), |s| Walk::with_steps(t, s));
        let walks = Walks::new(vec![walk]);
        let mut out = vec![0; 200_000];
        walks.draw_rows(&[0; 200_000], &mut g, &mut out);
        let draws: Vec<f64> = out.iter().map(|&x| x as f64).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
        let se = (v / draws.len() as f64).sqrt();
        assert!(
            (mean - m).abs() < 5.0 * se,
            "{n} {p}: mean {mean} against {m}"
        );
        assert!(
            (var / v - 1.0).abs() < 0.02,
            "{n} {p}: variance {var} against {v}"
        );
        assert!(draws.iter().all(|&x| x <= n as f64));
    }
}

/// Each outcome's chance in alias columns: the sum over columns of 1/G × (keep_j where it is
/// column j's own, 1 − keep_j where it is column j's alias).
fn column_chances(columns: &[alias::Column]) -> Vec<f64> {
    let g = columns.len() as f64;
    let mut chance = vec![0.0; columns.len()];
    for c in columns {
        let keep = c.keep as f64 / TWO_32;
        let [other, own] = c.outcome.map(|o| o as usize);
        chance[own] += keep / g;
        chance[other] += (1.0 - keep) / g;
    }
    chance
}

#[test]
fn the_alias_table_gives_each_set_its_probability() {
    // An outcome's chance is the sum over columns of 1/G × (keep_j where it is column j's own,
    // 1 − keep_j where it is column j's alias): it must be the set's probability, but for the
    // thresholds' 2^-32 steps.
    for (w, k) in [(zipf(8, 1.2), 2), (zipf(8, 3.0), 2), (zipf(12, 0.5), 3)] {
        let Counts::Sets { p, alias, .. } = Counts::new(&w, k) else {
            panic!("few sets are drawn exactly");
        };
        let chance = column_chances(&alias.columns);
        for (i, (&c, &x)) in chance.iter().zip(&p).enumerate() {
            assert!((c - x).abs() < 1e-9, "set {i}: {c} against {x}");
        }
    }
}

#[test]
fn the_packed_tables_give_each_outcome_its_probability() {
    // As the alias test, by lanes: a set's lanes must come with its probability, and a pair's
    // with the sum of p_a·p_b over the ordered pairs of those lanes (tokens are independent).
    use std::collections::HashMap;
    let chances = |table: &[alias::Lanes]| {
        let mut m: HashMap<u64, f64> = HashMap::new();
        for c in table {
            let keep = c.keep as f64 / TWO_32;
            *m.entry(c.add[1]).or_default() += keep / table.len() as f64;
            *m.entry(c.add[0]).or_default() += (1.0 - keep) / table.len() as f64;
        }
        m.retain(|_, x| *x > 1e-12);
        m
    };
    let close = |a: &HashMap<u64, f64>, b: &HashMap<u64, f64>| {
        assert_eq!(a.len(), b.len());
        for (l, x) in b {
            assert!((a[l] - x).abs() < 1e-9, "lanes {l:x}: {} against {x}", a[l]);
        }
    };
    for (w, k) in [(zipf(8, 1.2), 2), (zipf(8, 3.0), 2), (zipf(6, 0.5), 3)] {
        let Counts::Sets {
            members,
            p,
            packed: Some(packed),
            ..
        } = Counts::new(&w, k)
        else {
            panic!("at most 8 experts are drawn in lanes");
        };
        let lanes: Vec<u64> = members
            .chunks_exact(k)
            .map(|s| s.iter().map(|&e| 1u64 << (8 * e)).sum())
            .collect();
        let mut single = HashMap::new();
        let mut pairs: HashMap<u64, f64> = HashMap::new();
        for (a, la) in p.iter().zip(&lanes) {
            single.insert(*la, *a);
            for (b, lb) in p.iter().zip(&lanes) {
                *pairs.entry(la + lb).or_default() += a * b;
            }
        }
        close(&chances(&packed.tables.single), &single);
        let pair_table = packed.tables.pairs.as_ref().expect("at most 31 sets");
        close(&chances(&pair_table[..]), &pairs);
    }
    // Past 8 experts there are no lanes.
    assert!(matches!(
        Counts::new(&zipf(9, 1.2), 2),
        Counts::Sets { packed: None, .. }
    ));
}

/// The (n, p) of the walk tests: small and large n, p near 0 and 1, and constants (p = 0, 1).
const WALKS: [(u64, f64); 8] = [
    (256, 0.9),
    (256, 0.003),
    (65_536, 0.37),
    (7, 0.5),
    (1, 0.5),
    (2048, 0.031),
    (300, 0.0),
    (300, 1.0),
];

#[test]
fn a_walk_by_thresholds_draws_what_the_table_walk_draws_bit_for_bit() {
    use super::binomial::Walk;
    // The same uniform gives the same value: 20,000 uniforms for each (n, p), with the
    // thresholds as worked out and cut to 0, 1 and 3 steps (the draws past them walk on from
    // where the thresholds end).
    let mut g = rng(9, 3);
    for (n, p) in WALKS {
        let t = Table::new(n, p);
        let walks = [
            Walk::new(t),
            Walk::with_steps(t, 0),
            Walk::with_steps(t, 1),
            Walk::with_steps(t, 3),
        ];
        for _ in 0..20_000 {
            let u = super::binomial::uniform(g.next_u64());
            for (w, x) in &walks {
                assert_eq!(w.by_thresholds(x, u), t.walk(u), "{n} {p} {}", x.len());
            }
        }
    }
}

/// Binomial(n, p)'s probabilities P(X = k), k = 0..=n, from log-factorials (compensated sums),
/// not from the walk's ratios.
fn binomial_pmf(n: u64, p: f64) -> Vec<f64> {
    let (mut lf, mut sum, mut lost) = (vec![0.0f64], 0.0f64, 0.0f64);
    for i in 1..=n {
        let y = (i as f64).ln() - lost;
        let t = sum + y;
        lost = (t - sum) - y;
        sum = t;
        lf.push(sum);
    }
    let n = n as usize;
    (0..=n)
        .map(|k| {
            let ln = lf[n] - lf[k] - lf[n - k] + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p();
            ln.exp()
        })
        .collect()
}

#[test]
fn a_walks_alias_holds_each_value_at_its_binomial_chance() {
    use super::binomial::{Walk, Walks};
    // Each outcome of each walk's alias table has its chance under Binomial(n, p) to within
    // 1e-9 (the thresholds are in units of 2^-32 of a column): outcome i of `len` the value
    // base + i, outcome 0 every value up to base and outcome `len` every value past
    // base + len − 1 (the tails where the walk was cut short; none where it ends), walks cut
    // short included.
    for (n, p) in WALKS {
        if p == 0.0 || p == 1.0 {
            continue;
        }
        let t = Table::new(n, p);
        let walks = Walks::new(vec![
            Walk::new(t),
            Walk::with_steps(t, 1),
            Walk::with_steps(t, 3),
        ]);
        let pmf = binomial_pmf(n, p);
        // P(X in [from, to)), the values as signed (base may be −1).
        let mass = |from: i64, to: i64| -> f64 {
            let (a, b) = (from.clamp(0, n as i64 + 1), to.clamp(0, n as i64 + 1));
            pmf[a as usize..b as usize].iter().sum()
        };
        for row in 0..3 {
            let (base, columns) = walks.alias(row);
            let got = column_chances(columns);
            let (base, len) = (base as i64, got.len() as i64 - 1);
            for (i, &a) in got.iter().enumerate() {
                let i = i as i64;
                let want = match i {
                    0 => mass(0, base + 1),
                    _ if i == len => mass(base + len, n as i64 + 1),
                    _ => mass(base + i, base + i + 1),
                };
                assert!(
                    (a - want).abs() < 1e-9,
                    "{n} {p} row {row} outcome {i}: {a} against {want}"
                );
            }
        }
    }
}

#[test]
fn a_uniform_from_a_word_is_rands_f64() {
    use rand::{Rng, RngExt};
    // The binomial walks take the uniform from the word themselves, to find its slice of
    // [0, 1) from the same bits: it must be what `rand` gives for the same word.
    let (mut a, mut b) = (rng(10, 3), rng(10, 3));
    for _ in 0..100_000 {
        let w = a.next_u64();
        assert_eq!(super::binomial::uniform(w), b.random::<f64>());
    }
    assert_eq!(super::binomial::uniform(u64::MAX), 1.0 - f64::EPSILON / 2.0);
}

/// The one-sample KS statistic of a histogram of draws against a law's probabilities.
fn ks_against(hist: &[u64], pmf: &[f64]) -> f64 {
    let r: u64 = hist.iter().sum();
    let (mut want, mut got, mut d) = (0.0, 0.0, 0.0f64);
    for (f, &h) in pmf.iter().zip(hist) {
        want += f;
        got += h as f64 / r as f64;
        d = d.max((want - got).abs());
    }
    d
}

/// The one-sample KS critical value for `r` draws at α = `alpha`: c(α) / √r, conservative for
/// a discrete law.
fn ks_critical_one(r: usize, alpha: f64) -> f64 {
    ks_coefficient(alpha) / (r as f64).sqrt()
}

#[test]
fn btrs_draws_binomials_at_their_exact_chances_by_kolmogorov_smirnov() {
    // 200,000 draws against Binomial(n, p)'s exact distribution function, at α = 0.001, either
    // side of BTRS' least mean (n·p = 10) and of p = 1/2, and at the prefill chunks' sizes;
    // each draw's own n and p.
    let r = 200_000;
    let mut g = RouteRng::seed_from_u64(31);
    for (n, p) in [
        (100, 0.1),
        (100, 0.0999),
        (40, 0.5),
        (41, 0.55),
        (2_000, 0.013),
        (8_192, 0.31),
        (8_192, 0.97),
        (100_000, 0.002),
    ] {
        let mut hist = vec![0u64; n as usize + 1];
        for _ in 0..r {
            hist[super::btrs::binomial(n, p, &mut g) as usize] += 1;
        }
        let (d, critical) = (
            ks_against(&hist, &binomial_pmf(n, p)),
            ks_critical_one(r, 0.001),
        );
        assert!(d < critical, "Binomial({n}, {p}): D = {d} ≥ {critical}");
    }
}

#[test]
fn the_tree_of_binomials_gives_each_set_its_binomial_by_kolmogorov_smirnov() {
    // A multinomial's margins are binomial: each set's tokens over 50,000 draws against
    // Binomial(tokens, p_set), one-sample KS at α = 0.001 over all the sets (Bonferroni), for
    // Mixtral's 28 pairs and the 56 triples of 3 of 8 (neither a power of two), Zipf s = 1.2.
    let r = 50_000;
    for (k, tokens) in [(2, 2_000u64), (3, 3_000)] {
        let Counts::Sets { p, tree, .. } = Counts::new(&zipf(8, 1.2), k) else {
            panic!("C(8, {k}) sets are drawn exactly");
        };
        let mut g = RouteRng::seed_from_u64(41);
        let mut hist = vec![vec![0u64; tokens as usize + 1]; p.len()];
        let mut hits = vec![0; p.len()];
        for _ in 0..r {
            hits.fill(0);
            set_binomials(&tree, tokens, &mut g, &mut hits);
            assert_eq!(hits.iter().sum::<u64>(), tokens);
            for (h, &n) in hist.iter_mut().zip(&hits) {
                h[n as usize] += 1;
            }
        }
        let critical = ks_critical_one(r, 0.001 / p.len() as f64);
        for (set, (h, &ps)) in hist.iter().zip(&p).enumerate() {
            let d = ks_against(h, &binomial_pmf(tokens, ps));
            assert!(d < critical, "{k} of 8, set {set}: D = {d} ≥ {critical}");
        }
    }
}

#[test]
fn steep_skew_leaves_the_sets_probabilities_finite() {
    // Zipf s = 60: the total less the top expert's weight rounds to 0, so the mass left after
    // a draw must be summed, not subtracted. The top pair takes all but ~(1/2)^60 of the mass.
    let Counts::Sets { p, .. } = Counts::new(&zipf(8, 60.0), 2) else {
        panic!("28 pairs are drawn exactly");
    };
    assert!(p.iter().all(|x| x.is_finite() && *x >= 0.0), "{p:?}");
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(p[0] > 1.0 - 1e-10, "{}", p[0]);
}
