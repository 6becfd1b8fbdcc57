//! Requests: their lengths and arrival times, drawn from a seed.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthDist {
    /// Always this many.
    Fixed(u64),
    /// Uniform on `[min, max]`.
    Uniform {
        /// Fewest tokens.
        min: u64,
        /// Most tokens.
        max: u64,
    },
    /// Normal, rounded and clipped to `[min, max]`.
    Normal {
        /// Mean, tokens.
        mean: f64,
        /// Standard deviation, tokens.
        std: f64,
        /// Fewest tokens.
        min: u64,
        /// Most tokens.
        max: u64,
    },
}

impl LengthDist {
    /// The least a draw can be: a lower bound on the mean that needs no integration.
    pub fn least(&self) -> u64 {
        match *self {
            LengthDist::Fixed(n) => n,
            LengthDist::Uniform { min, .. } | LengthDist::Normal { min, .. } => min,
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match *self {
            LengthDist::Fixed(n) => n,
            LengthDist::Uniform { min, max } => rng.random_range(min..=max),
            LengthDist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                let x = Normal::new(mean, std).map_or(mean, |d| d.sample(rng));
                (x.round().max(0.0) as u64).clamp(min, max)
            }
        }
    }
}

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// `concurrency` requests in the system at all times: each one that ends is replaced.
    Closed {
        /// Requests in the system.
        concurrency: u64,
    },
    /// Poisson arrivals at `rate` requests per second.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Arrival times from a trace (seconds, one per request).
    Trace,
}

/// Where request lengths come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Lengths {
    /// Drawn independently per request.
    Drawn {
        /// Prompt tokens.
        prompt: LengthDist,
        /// Output tokens.
        output: LengthDist,
    },
    /// (prompt, output, arrival time if the trace has one) per request.
    Trace(Vec<(u64, u64, Option<f64>)>),
}

/// One request as generated: lengths and, for open loops, its arrival time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSpec {
    /// Prompt tokens.
    pub prompt: u64,
    /// Output tokens.
    pub output: u64,
    /// `None` in a closed loop: it arrives when a slot frees.
    pub arrival: Option<f64>,
}

/// Independent random streams derived from one seed, so that changing one knob (say, the
/// routing) does not shift the draws of another (the lengths).
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

impl Lengths {
    /// The fewest prompt and output tokens `count` requests can have in all (a trace's rows are
    /// reused in order when `count` exceeds them).
    pub fn least_tokens(&self, count: u64) -> (f64, f64) {
        match self {
            Lengths::Drawn { prompt, output } => (
                count as f64 * prompt.least() as f64,
                count as f64 * output.least() as f64,
            ),
            Lengths::Trace(rows) => {
                let n = rows.len().max(1) as u64;
                let sum = |rows: &[(u64, u64, Option<f64>)]| {
                    rows.iter()
                        .fold((0.0, 0.0), |(p, o), r| (p + r.0 as f64, o + r.1 as f64))
                };
                let (all, part) = (sum(rows), sum(&rows[..(count % n) as usize]));
                let cycles = (count / n) as f64;
                (cycles * all.0 + part.0, cycles * all.1 + part.1)
            }
        }
    }

    /// The fewest output tokens the longest of `count` requests can have: a drawn length's
    /// least, or the longest output among the trace rows the requests take.
    pub fn least_longest_output(&self, count: u64) -> f64 {
        match self {
            Lengths::Drawn { output, .. } => output.least() as f64,
            Lengths::Trace(rows) => {
                let used = rows.len().min(usize::try_from(count).unwrap_or(usize::MAX));
                rows[..used].iter().map(|r| r.1).max().unwrap_or(0) as f64
            }
        }
    }
}

/// Generates `count` requests.
pub fn generate(count: u64, lengths: &Lengths, arrivals: &Arrivals, seed: u64) -> Vec<RequestSpec> {
    let mut len_rng = rng(seed, 1);
    let mut arr_rng = rng(seed, 2);
    let mut t = 0.0;
    let exp = match arrivals {
        Arrivals::Poisson { rate } => Exp::new(*rate).ok(),
        _ => None,
    };
    (0..count)
        .map(|i| {
            let (prompt, output, trace_t) = match lengths {
                Lengths::Drawn { prompt, output } => (
                    prompt.sample(&mut len_rng),
                    output.sample(&mut len_rng),
                    None,
                ),
                Lengths::Trace(rows) => rows[i as usize % rows.len()],
            };
            let arrival = match arrivals {
                Arrivals::Closed { .. } => None,
                Arrivals::Poisson { .. } => {
                    t += exp.as_ref().map_or(0.0, |e| e.sample(&mut arr_rng));
                    Some(t)
                }
                Arrivals::Trace => Some(trace_t.unwrap_or(0.0)),
            };
            RequestSpec {
                prompt: prompt.max(1),
                output: output.max(1),
                arrival,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_have_the_right_mean_and_the_seed_fixes_them() {
        let l = Lengths::Drawn {
            prompt: LengthDist::Fixed(8),
            output: LengthDist::Uniform { min: 1, max: 9 },
        };
        let a = Arrivals::Poisson { rate: 4.0 };
        let r = generate(20_000, &l, &a, 7);
        let last = r.last().unwrap().arrival.unwrap();
        assert!((last / 20_000.0 - 0.25).abs() < 0.01, "{last}");
        assert_eq!(r, generate(20_000, &l, &a, 7));
        assert_ne!(r, generate(20_000, &l, &a, 8));
        assert!(r.iter().all(|x| (1..=9).contains(&x.output)));
    }

    #[test]
    fn clipped_normal_stays_in_range() {
        let d = LengthDist::Normal {
            mean: 100.0,
            std: 80.0,
            min: 10,
            max: 150,
        };
        let mut g = rng(1, 0);
        for _ in 0..1000 {
            assert!((10..=150).contains(&d.sample(&mut g)));
        }
    }
}
