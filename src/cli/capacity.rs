//! `dyad capacity`.

use std::path::PathBuf;

use clap::Args;

use dyad::app::capacity::CapacitySpec;
use dyad::app::{self, AppError};
use dyad::config::ScenarioOverrides;
use dyad::map::Policy;
use dyad::sweep::capacity::{SearchOptions, Slo};

use super::args::named;
use super::stdout;

/// The highest arrival rate at which a serving scenario meets latency limits.
#[derive(Args)]
pub(super) struct CapacityArgs {
    /// The serving scenario (its arrivals become Poisson at each rate tried; a request trace
    /// with `arrivals.trace = true` keeps its arrival pattern, its times scaled to the rate).
    scenario: PathBuf,
    /// Limit on the 99th percentile of time to first token, s (MLPerf Server: 2).
    #[arg(long, value_name = "S", value_parser = positive)]
    ttft_p99: Option<f64>,
    /// Limit on the 99th percentile of time per output token, s (MLPerf Server: 0.2).
    #[arg(long, value_name = "S", value_parser = positive)]
    tpot_p99: Option<f64>,
    /// Seeds per rate (the scenario's seed and the next ones); a rate passes when all pass.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    seeds: u64,
    /// First rate tried, requests/s (default: the scenario's Poisson rate, a trace's own rate,
    /// else 1).
    #[arg(long, value_name = "RPS", value_parser = positive)]
    start: Option<f64>,
    /// Bisection stops when the passing and failing rates are within this share (0.02: 2%).
    #[arg(long, default_value_t = 0.02, value_parser = share)]
    tolerance: f64,
    /// Folder for capacity.csv (every rate and seed) and curve.svg.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A device's price, USD, for capacity per dollar (default: the die model's silicon cost).
    #[arg(long, value_name = "USD", value_parser = positive)]
    price: Option<f64>,
    /// Arch file or preset, in place of the scenario's.
    #[arg(long)]
    arch: Option<PathBuf>,
    /// Model file or preset, in place of the scenario's.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tensor-parallel degree, in place of the scenario's.
    #[arg(long)]
    tp: Option<u64>,
    /// Expert-parallel degree, in place of the scenario's.
    #[arg(long)]
    ep: Option<u64>,
    /// Mapping policy, in place of the scenario's.
    #[arg(long, value_parser = named(&Policy::TABLE))]
    policy: Option<Policy>,
    /// The first seed, in place of the scenario's.
    #[arg(long)]
    seed: Option<u64>,
}

/// A flag value outside the numbers it takes.
#[derive(Debug, thiserror::Error)]
enum NotANumber {
    #[error("\"{0}\": expected a positive number")]
    Positive(String),
    #[error("\"{0}\": expected a share between 0 and 1, e.g. 0.02")]
    Share(String),
}

fn positive(s: &str) -> Result<f64, NotANumber> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(NotANumber::Positive(s.to_string())),
    }
}

fn share(s: &str) -> Result<f64, NotANumber> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(NotANumber::Share(s.to_string())),
    }
}

impl CapacityArgs {
    fn spec(&self) -> CapacitySpec {
        CapacitySpec {
            scenario: self.scenario.clone(),
            overrides: ScenarioOverrides {
                arch: self.arch.clone(),
                model: self.model.clone(),
                tp: self.tp,
                ep: self.ep,
                policy: self.policy,
                seed: self.seed,
                ..ScenarioOverrides::default()
            },
            slo: Slo {
                ttft_p99: self.ttft_p99,
                tpot_p99: self.tpot_p99,
            },
            search: SearchOptions {
                seeds: self.seeds,
                rel_tol: self.tolerance,
                ..SearchOptions::default()
            },
            start: self.start,
            out: self.out.clone(),
            price: self.price,
        }
    }
}

/// Runs the search and prints its summary.
pub(super) fn capacity(a: &CapacityArgs) -> Result<(), AppError> {
    stdout(&app::capacity::capacity(&a.spec())?.text)
}
