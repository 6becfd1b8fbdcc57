//! Capacity under latency limits: the highest arrival rate at which a serving scenario meets its
//! service-level objectives (SLOs), found by bracketing and bisection over seeded runs.
//!
//! The rule, as MLPerf's Server scenario states it
//! (`REFERENCE.md §MLPerf Server latency limits`): a run meets the SLO when the 99th percentile (nearest rank) of its requests' time to
//! first token is at most the TTFT limit and that of their time per output token is at most the
//! TPOT limit. A rate *passes* when every seed's run meets it. The search starts at one rate,
//! doubles it until a rate fails (or halves it until one passes), then bisects the bracket
//! geometrically until its two ends are within a relative tolerance. Every rate it visits lies on
//! the grid `start · 2^(k / 2^j)`, the same for every system given the same start; so when one
//! system passes at every rate another passes at, and each passes below its own threshold only,
//! its capacity is never lower.
//!
//! Arrivals at a rate: Poisson at that rate (a closed-loop scenario becomes open), or, for a
//! request trace with arrival times, the trace's times scaled by (its own rate ÷ the rate), so
//! the trace's burstiness is kept. Seeds `seed, seed + 1, …` vary every random stream the
//! scenario has (Poisson gaps, drawn lengths, routing); a trace's own lengths and times stay.

use rayon::prelude::*;

use crate::report::serving::Percentiles;
use crate::sim::serving::{Scenario, ServingError, ServingResult, simulate};
use crate::sim::workload::{Arrivals, Lengths};

/// Latency limits on the 99th percentiles, s; `None` leaves a metric unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Slo {
    /// Time to first token, p99.
    pub ttft_p99: Option<f64>,
    /// Time per output token (per request: (last − first token) ÷ (output − 1)), p99.
    pub tpot_p99: Option<f64>,
}

/// How the search runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// Seeds per rate (`seed`, `seed + 1`, …); a rate passes when all of them do.
    pub seeds: u64,
    /// The first rate tried, requests/s.
    pub start: f64,
    /// The bracket's ends are within this share of each other at the end (0.02: 2%).
    pub rel_tol: f64,
    /// Doublings (or halvings) tried before the search gives up bracketing.
    pub max_steps: u32,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            seeds: 3,
            start: 1.0,
            rel_tol: 0.02,
            max_steps: 20,
        }
    }
}

/// One seed's run at one rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// Time to first token over the requests, s.
    pub ttft: Percentiles,
    /// Time per output token over the requests with more than one output token, s.
    pub tpot: Percentiles,
    /// Output tokens per second over the run.
    pub output_tokens_per_s: f64,
    /// Requests completed per second over the run.
    pub requests_per_s: f64,
    /// Whether this run meets the SLO.
    pub pass: bool,
}

/// Every seed's run at one rate.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePoint {
    /// Offered arrival rate, requests/s.
    pub rate: f64,
    /// The runs, by seed.
    pub runs: Vec<SeedRun>,
}

impl RatePoint {
    /// Whether every seed's run meets the SLO.
    pub fn pass(&self) -> bool {
        self.runs.iter().all(|r| r.pass)
    }

    /// The worst (largest) TTFT p99 over the seeds, s.
    pub fn ttft_p99(&self) -> f64 {
        self.runs.iter().map(|r| r.ttft.p99).fold(0.0, f64::max)
    }

    /// The worst (largest) TPOT p99 over the seeds, s.
    pub fn tpot_p99(&self) -> f64 {
        self.runs.iter().map(|r| r.tpot.p99).fold(0.0, f64::max)
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// The highest rate that passed, requests/s; `None` when even the lowest tried failed.
    pub rate: Option<f64>,
    /// The lowest rate that failed; `None` when every rate up to the last doubling passed.
    pub failed_at: Option<f64>,
    /// Every rate visited, in increasing order.
    pub points: Vec<RatePoint>,
}

/// Why a capacity search cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// A serving run failed.
    #[error("at {rate} requests/s, seed {seed}: {source}")]
    Serving {
        /// The rate.
        rate: f64,
        /// The seed.
        seed: u64,
        /// The run's error.
        source: ServingError,
    },
    /// The options cannot run a search.
    #[error(
        "the search needs seeds >= 1, a positive finite start rate and a tolerance in (0, 1) (got seeds {seeds}, start {start}, tolerance {rel_tol})"
    )]
    Options {
        /// Seeds.
        seeds: u64,
        /// Start rate.
        start: f64,
        /// Tolerance.
        rel_tol: f64,
    },
    /// A request trace's arrival times span no time, so it has no rate to scale.
    #[error("the request trace's arrival times span no time: it has no rate to scale")]
    FlatTrace,
}

/// The scenario `base` with arrivals at `rate` requests/s and seed `seed` (see the module doc).
pub fn at_rate(base: &Scenario, rate: f64, seed: u64) -> Result<Scenario, CapacityError> {
    let mut s = base.clone();
    s.seed = seed;
    match (&base.arrivals, &base.lengths) {
        (Arrivals::Trace, Lengths::Trace(rows)) => {
            let used = &rows[..rows.len().min(base.count as usize)];
            let native = trace_rate(used).ok_or(CapacityError::FlatTrace)?;
            let k = native / rate;
            s.lengths = Lengths::Trace(
                rows.iter()
                    .map(|&(p, o, t)| (p, o, t.map(|t| t * k)))
                    .collect(),
            );
        }
        _ => s.arrivals = Arrivals::Poisson { rate },
    }
    Ok(s)
}

/// The rate a scenario states: its Poisson rate, a trace's own rate, else 1 request/s.
pub fn scenario_rate(s: &Scenario) -> f64 {
    match (&s.arrivals, &s.lengths) {
        (Arrivals::Poisson { rate }, _) => *rate,
        (Arrivals::Trace, Lengths::Trace(rows)) => {
            trace_rate(&rows[..rows.len().min(s.count as usize)]).unwrap_or(1.0)
        }
        _ => 1.0,
    }
}

/// The metrics a sweep point gains from a `[capacity]` table: the capacity (0 when no rate
/// passed) and the capacity per device.
pub const METRICS: [&str; 2] = ["capacity_rps", "capacity_rps_per_device"];

/// A sweep's `[capacity]` table: the limits and the search, run on every point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointCapacity {
    /// The limits.
    pub slo: Slo,
    /// Seeds and tolerance; the start is [`Self::start`] or the point's own rate.
    pub search: SearchOptions,
    /// The first rate tried, when given.
    pub start: Option<f64>,
}

impl PointCapacity {
    /// The point's capacity and capacity per device, by the names of [`METRICS`].
    pub fn metrics(&self, s: &Scenario) -> Result<[(String, f64); 2], CapacityError> {
        let opt = SearchOptions {
            start: self.start.unwrap_or_else(|| scenario_rate(s)),
            ..self.search
        };
        let rate = search(s, &self.slo, &opt)?.rate.unwrap_or(0.0);
        Ok([
            (METRICS[0].into(), rate),
            (METRICS[1].into(), rate / s.devices() as f64),
        ])
    }
}

/// A trace's own rate: (arrivals − 1) ÷ (last − first arrival), requests/s.
pub fn trace_rate(rows: &[(u64, u64, Option<f64>)]) -> Option<f64> {
    let ts: Vec<f64> = rows.iter().filter_map(|r| r.2).collect();
    let (lo, hi) = ts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| {
            (a.min(t), b.max(t))
        });
    (ts.len() > 1 && hi > lo).then(|| (ts.len() - 1) as f64 / (hi - lo))
}

/// Whether the run `r` meets `slo`, and its summary.
pub fn judge(r: &ServingResult, seed: u64, slo: &Slo) -> SeedRun {
    let ttft = Percentiles::of_samples(&r.ttft);
    let tpot = Percentiles::of_samples(&r.tpot);
    let within = |limit: Option<f64>, v: f64| limit.is_none_or(|l| v <= l);
    let per_s = |n: u64| n as f64 / r.duration.max(f64::MIN_POSITIVE);
    SeedRun {
        seed,
        pass: within(slo.ttft_p99, ttft.p99) && within(slo.tpot_p99, tpot.p99),
        ttft,
        tpot,
        output_tokens_per_s: per_s(r.output_tokens),
        requests_per_s: per_s(r.requests_completed),
    }
}

/// Runs every seed at `rate` (in parallel).
pub fn run_rate(
    base: &Scenario,
    rate: f64,
    slo: &Slo,
    seeds: u64,
) -> Result<RatePoint, CapacityError> {
    let runs = (0..seeds)
        .into_par_iter()
        .map(|k| {
            let seed = base.seed.wrapping_add(k);
            let s = at_rate(base, rate, seed)?;
            let r = simulate(&s, None).map_err(|source| CapacityError::Serving {
                rate,
                seed,
                source,
            })?;
            Ok(judge(&r, seed, slo))
        })
        .collect::<Result<Vec<_>, CapacityError>>()?;
    Ok(RatePoint { rate, runs })
}

/// The highest rate at which `base` meets `slo` (see the module doc for the rule and search).
pub fn search(base: &Scenario, slo: &Slo, opt: &SearchOptions) -> Result<Capacity, CapacityError> {
    let ok = opt.seeds >= 1
        && opt.start.is_finite()
        && opt.start > 0.0
        && opt.rel_tol > 0.0
        && opt.rel_tol < 1.0;
    if !ok {
        return Err(CapacityError::Options {
            seeds: opt.seeds,
            start: opt.start,
            rel_tol: opt.rel_tol,
        });
    }
    let mut points = Vec::new();
    let mut visit = |rate: f64| -> Result<bool, CapacityError> {
        let p = run_rate(base, rate, slo, opt.seeds)?;
        let pass = p.pass();
        points.push(p);
        Ok(pass)
    };
    let (mut lo, mut hi) = (None, None);
    let mut rate = opt.start;
    let mut steps = 0;
    loop {
        if visit(rate)? {
            lo = Some(rate);
        } else {
            hi = Some(rate);
        }
        if (lo.is_some() && hi.is_some()) || steps == opt.max_steps {
            break;
        }
        steps += 1;
        rate = if lo.is_some() { rate * 2.0 } else { rate / 2.0 };
    }
    if let (Some(mut l), Some(mut h)) = (lo, hi) {
        while h / l - 1.0 > opt.rel_tol {
            let mid = (l * h).sqrt();
            if visit(mid)? {
                l = mid;
            } else {
                h = mid;
            }
        }
        (lo, hi) = (Some(l), Some(h));
    }
    points.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    Ok(Capacity {
        rate: lo,
        failed_at: hi,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_rate_is_its_arrivals_over_its_span() {
        let rows = [(1, 1, Some(2.0)), (1, 1, Some(3.0)), (1, 1, Some(6.0))];
        assert_eq!(trace_rate(&rows), Some(0.5));
        assert_eq!(trace_rate(&rows[..1]), None);
        assert_eq!(trace_rate(&[(1, 1, None), (1, 1, None)]), None);
    }

    #[test]
    fn a_run_passes_only_within_both_limits() {
        let r = ServingResult {
            ttft: vec![1.0; 100].into(),
            tpot: vec![0.1; 100].into(),
            duration: 10.0,
            output_tokens: 50,
            ..ServingResult::default()
        };
        let slo = |t, p| Slo {
            ttft_p99: t,
            tpot_p99: p,
        };
        assert!(judge(&r, 0, &slo(Some(1.0), Some(0.1))).pass);
        assert!(!judge(&r, 0, &slo(Some(0.99), Some(0.1))).pass);
        assert!(!judge(&r, 0, &slo(None, Some(0.09))).pass);
        assert!(judge(&r, 0, &slo(None, None)).pass);
        assert_eq!(judge(&r, 0, &slo(None, None)).output_tokens_per_s, 5.0);
    }
}
