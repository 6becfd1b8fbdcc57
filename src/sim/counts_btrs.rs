//! Binomial(n, p) draws for [`super::Counts::Sets`]' multinomial, where every draw has its own
//! n and p (a split's tokens depend on the split above it), so nothing can be worked out
//! ahead of the draw.
//!
//! For n·min(p, 1 − p) ≥ [`BTRS_LEAST_MEAN`]: Hörmann's BTRS, transformed rejection with a
//! squeeze (W. Hörmann, "The generation of binomial random variates", J. Statist. Comput.
//! Simul. 46 (1993) 101–110; its constants are the paper's). A pair of uniforms maps to a value
//! through the inverse of a hat that lies above the distribution; the pairs that fall in a box
//! under the distribution are kept with no further work (78% of the draws of Mixtral's 28
//! pairs at 8,192 tokens), the others by comparing v with the probability's ratio to the
//! mode's ([`under`]). It is exact: the hat dominates and the comparison is with the
//! probabilities themselves. Its set-up is one square root and a division, where rand_distr's
//! BTPE (used before) works out its four regions and, within 20 of the mode, multiplies out a
//! ratio per step: Mixtral's 28 pairs at 8,192 tokens, one binomial per set, took 1.66 µs
//! against BTPE's 2.55 µs (`counts_mixtral_zipf` benchmark).
//! Below that mean: rand_distr's inversion (BINV), a few steps from 0.

use rand::Rng;
use rand_distr::{Binomial, Distribution};

use super::binomial::uniform;

/// Least mean n·min(p, 1 − p) for BTRS; the paper's bound for its constants.
const BTRS_LEAST_MEAN: f64 = 10.0;

/// A draw of Binomial(n, p), `p` clamped to [0, 1] (NaN read as 0).
pub(super) fn binomial(n: u64, p: f64, rng: &mut impl Rng) -> u64 {
    if p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let flipped = p > 0.5;
    let q = if flipped { 1.0 - p } else { p };
    if n as f64 * q < BTRS_LEAST_MEAN {
        return Binomial::new(n, p).map_or(0, |b| b.sample(rng));
    }
    let x = btrs(n, q, rng);
    if flipped { n - x } else { x }
}

/// BTRS for `p` ≤ 1/2 and n·p ≥ [`BTRS_LEAST_MEAN`].
fn btrs(n: u64, p: f64, rng: &mut impl Rng) -> u64 {
    let nf = n as f64;
    let npq = nf * p * (1.0 - p);
    let spq = npq.sqrt();
    let b = 1.15 + 2.53 * spq;
    let a = -0.0873 + 0.0248 * b + 0.01 * p;
    let c = nf * p + 0.5;
    let v_r = 0.92 - 4.2 / b;
    loop {
        let u = uniform(rng.next_u64()) - 0.5;
        let v = uniform(rng.next_u64());
        let us = 0.5 - u.abs();
        let k = floor((2.0 * a / us + b) * u + c);
        if us >= 0.07 && v <= v_r {
            return k as u64;
        }
        if !(0.0..=nf).contains(&k) {
            continue;
        }
        // v under the hat's height at k, against P(k) ÷ P(m) at the mode m.
        let v = v * (2.83 + 5.1 / b) * spq / (a / (us * us) + b);
        if under(v, k as u64, n, p, npq) {
            return k as u64;
        }
    }
}

/// Whether `v` ≤ P(k) ÷ P(m) for Binomial(n, p) and its mode m = ⌊(n + 1) p⌋: within 15 of
/// the mode by the product of neighbouring probabilities' ratios; farther, by ln v against the
/// bounds on the log-ratio that BTPE squeezes with (V. Kachitvichyanukul, B. W. Schmeiser,
/// "Binomial random variate generation", Commun. ACM 31 (1988) 216–222, step 5.2: valid for
/// |k − m| < n p q ÷ 2 − 1) and, where they do not decide, exactly by Stirling's series.
fn under(v: f64, k: u64, n: u64, p: f64, npq: f64) -> bool {
    let m = floor((n + 1) as f64 * p) as u64;
    let r = p / (1.0 - p);
    let d = k.abs_diff(m);
    if d <= 15 {
        // P(i) ÷ P(i − 1) = ((n + 1) ÷ i − 1) r.
        let nr = (n + 1) as f64 * r;
        let step = |i: u64| nr / i as f64 - r;
        return if k >= m {
            v <= (m + 1..=k).map(step).product::<f64>()
        } else {
            v * (k + 1..=m).map(step).product::<f64>() <= 1.0
        };
    }
    let ln_v = v.ln();
    let d = d as f64;
    if d < 0.5 * npq - 1.0 {
        let rho = d / npq * ((d * (d / 3.0 + 0.625) + 1.0 / 6.0) / npq + 0.5);
        let t = -d * d / (2.0 * npq);
        if ln_v < t - rho {
            return true;
        }
        if ln_v > t + rho {
            return false;
        }
    }
    let (k, m, n) = (k as f64, m as f64, n as f64);
    ln_v <= ln_factorial(m) + ln_factorial(n - m) - ln_factorial(k) - ln_factorial(n - k)
        + (k - m) * r.ln()
}

/// ⌊x⌋, without libm's call (the baseline x86-64 has no rounding instruction).
fn floor(x: f64) -> f64 {
    if x.abs() >= 4.5e15 || x.is_nan() {
        return x.floor();
    }
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// ln k! without its ½ ln 2π and linear term, which cancel in a ratio of binomial
/// probabilities of one n: (k + ½) ln(k + 1) + the Stirling correction δ(k), where
/// ln k! = (k + ½) ln(k + 1) − (k + 1) + ½ ln 2π + δ(k).
fn ln_factorial(k: f64) -> f64 {
    let k1 = k + 1.0;
    (k + 0.5) * k1.ln() + stirling_correction(k)
}

/// δ(k) = ln k! − (k + ½) ln(k + 1) + (k + 1) − ½ ln 2π: by its series in 1/(k + 1) past 9
/// (the first omitted term, 1/(1680 (k + 1)^7), is under 1e-10 there), exactly below.
fn stirling_correction(k: f64) -> f64 {
    let k1 = k + 1.0;
    if k >= 10.0 {
        let r = 1.0 / (k1 * k1);
        return (1.0 / 12.0 - (1.0 / 360.0 - r / 1260.0) * r) / k1;
    }
    let ln_fact: f64 = (2..=k as u64).map(|i| (i as f64).ln()).sum();
    ln_fact - (k + 0.5) * k1.ln() + k1 - 0.5 * (2.0 * std::f64::consts::PI).ln()
}
