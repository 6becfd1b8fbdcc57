//! `dyad capacity`: the highest arrival rate at which a serving scenario meets latency limits
//! (`sweep::capacity` has the rule and the search), per device and per dollar, with the curve
//! of rate against the percentiles as CSV and SVG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::AppError;
use crate::config::{self, ConfigError, ScenarioOverrides};
use crate::hw::PimKind;
use crate::report::plot::{RateCurves, RatePanel, rate_curves};
use crate::sim::serving::Scenario;
use crate::sweep::capacity::{self as cap, Capacity, SearchOptions, Slo};

/// The logic die each stack of a Logic-PIM arch without a `[pim.tech]` die is priced as: the
/// Duplex HBM3 logic die (built in, so it resolves from any folder).
pub const LOGIC_DIE: &str = "arch/tech/dies/hbm3-logic-die.toml";

/// What `dyad capacity` runs.
#[derive(Debug, Clone)]
pub struct CapacitySpec {
    /// The serving scenario.
    pub scenario: PathBuf,
    /// Flags that replace the scenario's values (`--arch`, `--policy`, `--tp`, …).
    pub overrides: ScenarioOverrides,
    /// The latency limits.
    pub slo: Slo,
    /// Seeds per rate, tolerance, bracketing steps; `start` is replaced by [`Self::start`] or
    /// the scenario's own rate.
    pub search: SearchOptions,
    /// The first rate tried; default: the scenario's Poisson rate, a trace's own rate, else 1.
    pub start: Option<f64>,
    /// Folder for `capacity.csv` and `curve.svg`; none: only the summary is printed.
    pub out: Option<PathBuf>,
    /// A device's price, USD, in place of the die model's cost.
    pub price: Option<f64>,
}

/// What one device costs, and where the figure came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCost {
    /// USD per device.
    pub usd: f64,
    /// Where it came from, in words.
    pub source: String,
}

/// What `dyad capacity` found.
#[derive(Debug, Clone)]
pub struct CapacityOutcome {
    /// The search's result.
    pub capacity: Capacity,
    /// Devices of the replica (tp × ep).
    pub devices: u64,
    /// One device's cost; `None` with the reason when neither a price nor a die model is known.
    pub cost: Result<DeviceCost, NoCost>,
    /// The summary, for standard output.
    pub text: String,
}

/// Runs the search on the scenario and writes its CSV and SVG into `out`.
pub fn capacity(spec: &CapacitySpec) -> Result<CapacityOutcome, AppError> {
    let base = config::load_scenario_overridden(&spec.scenario, &spec.overrides)?;
    if config::load_replicas(&spec.scenario, &spec.overrides)?.is_some() {
        return Err(AppError::Usage(
            "dyad capacity searches the rate of one replica: remove the scenario's [replicas] table",
        ));
    }
    let opt = SearchOptions {
        start: spec.start.unwrap_or_else(|| cap::scenario_rate(&base)),
        ..spec.search
    };
    let found = cap::search(&base, &spec.slo, &opt).map_err(|source| AppError::Capacity {
        path: spec.scenario.clone(),
        source,
    })?;
    let devices = base.devices();
    let cost = device_cost(spec, &base);
    let title = title(&base, devices);
    let (table, text) = (
        csv(&found),
        summary(&title, &found, devices, &cost, &spec.slo, &opt),
    );
    crate::report::guard::check_text("capacity", &table)?;
    crate::report::guard::check_text("capacity", &text)?;
    if let Some(dir) = &spec.out {
        std::fs::create_dir_all(dir).map_err(|e| AppError::io(dir, e))?;
        let p = dir.join("capacity.csv");
        std::fs::write(&p, &table).map_err(|e| AppError::cannot_write(&p, e))?;
        plot(&dir.join("curve.svg"), &title, &found, &spec.slo, opt.seeds)?;
    }
    Ok(CapacityOutcome {
        capacity: found,
        devices,
        cost,
        text,
    })
}

/// Why a device has no cost: no `--price`, and the die model cannot price its arch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoCost {
    /// The scenario (for its arch path) or the technology library could not be read.
    #[error("{0}")]
    Input(#[from] ConfigError),
    /// The arch names no die the die model can price.
    #[error("no die model for {arch}: {why}")]
    NoDie {
        /// The arch file.
        arch: PathBuf,
        /// What the die model said.
        why: ConfigError,
    },
    /// The Logic-PIM logic die could not be priced.
    #[error("{LOGIC_DIE}: {0}")]
    LogicDie(ConfigError),
}

/// The price given, or the die model's cost of the xPU die plus, for Logic-PIM, one logic die
/// per stack; `Err` with the reason when neither is known.
fn device_cost(spec: &CapacitySpec, base: &Scenario) -> Result<DeviceCost, NoCost> {
    if let Some(usd) = spec.price {
        return Ok(DeviceCost {
            usd,
            source: "given (--price)".into(),
        });
    }
    let arch = match &spec.overrides.arch {
        Some(a) => a.clone(),
        None => {
            let text = config::source_text(&spec.scenario)?;
            config::scenario_arch_path(&spec.scenario, &text)?
        }
    };
    let lib = super::ppa::library(None)?;
    let xpu = super::ppa::arch_ppa(&arch, &lib).map_err(|why| NoCost::NoDie {
        arch: arch.clone(),
        why,
    })?;
    let mut usd = xpu.die.cost_per_good_die_usd;
    let mut source = format!("die model: xPU die ${usd:.0}");
    if let Some(p) = base.sys.pim.as_ref().filter(|p| p.kind == PimKind::Logic) {
        let (_, die) = super::ppa::die_ppa(Path::new(LOGIC_DIE), &lib).map_err(NoCost::LogicDie)?;
        let each = die.cost_per_good_die_usd;
        usd += each * f64::from(p.stacks);
        let _ = write!(
            source,
            " + {} Logic-PIM logic dies × ${each:.0} ({LOGIC_DIE})",
            p.stacks
        );
    }
    source += "; silicon only: no HBM, package or margin";
    Ok(DeviceCost { usd, source })
}

/// "Mixtral-8x7B on 4 × H100 SXM5 80GB (TP 4, EP 1), all-xpu".
fn title(s: &Scenario, devices: u64) -> String {
    format!(
        "{} on {} × {} (TP {}, EP {}), policy {}",
        s.model.name,
        devices,
        s.sys.name,
        s.tp,
        s.ep,
        s.policy.name()
    )
}

/// One row per rate and seed, then the capacity, as CSV.
pub fn csv(c: &Capacity) -> String {
    let mut out = String::from(
        "rate_rps,seed,ttft_p50_s,ttft_p90_s,ttft_p99_s,tpot_p50_s,tpot_p90_s,tpot_p99_s,output_tokens_per_s,requests_per_s,pass,rate_pass\n",
    );
    for p in &c.points {
        for r in &p.runs {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                p.rate,
                r.seed,
                r.ttft.p50,
                r.ttft.p90,
                r.ttft.p99,
                r.tpot.p50,
                r.tpot.p90,
                r.tpot.p99,
                r.output_tokens_per_s,
                r.requests_per_s,
                r.pass,
                p.pass()
            );
        }
    }
    out
}

fn plot(path: &Path, title: &str, c: &Capacity, slo: &Slo, seeds: u64) -> Result<(), AppError> {
    let series = |f: fn(&cap::SeedRun) -> f64| {
        let worst: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (p.rate, p.runs.iter().map(f).fold(0.0, f64::max)))
            .collect();
        let each: Vec<(f64, f64)> = c
            .points
            .iter()
            .flat_map(|p| p.runs.iter().map(move |r| (p.rate, f(r))))
            .collect();
        (worst, each)
    };
    let (tw, te) = series(|r| r.ttft.p99);
    let (pw, pe) = series(|r| r.tpot.p99);
    let panels = [
        RatePanel {
            y_desc: "time to first token, p99",
            worst: &tw,
            each: &te,
            limit: slo.ttft_p99,
        },
        RatePanel {
            y_desc: "time per output token, p99",
            worst: &pw,
            each: &pe,
            limit: slo.tpot_p99,
        },
    ];
    rate_curves(
        path,
        &RateCurves {
            title: &format!("capacity search: {title}"),
            x_desc: "offered rate (requests/s)",
            panels: &panels,
            capacity: c.rate,
            seeds,
        },
    )?;
    Ok(())
}

fn limit(l: Option<f64>) -> String {
    l.map_or("none".into(), |v| format!("{v} s"))
}

fn summary(
    title: &str,
    c: &Capacity,
    devices: u64,
    cost: &Result<DeviceCost, NoCost>,
    slo: &Slo,
    opt: &SearchOptions,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{title}");
    let _ = writeln!(
        o,
        "limits: TTFT p99 <= {}, TPOT p99 <= {}; a rate passes when all {} seeds do; bisection to {}%",
        limit(slo.ttft_p99),
        limit(slo.tpot_p99),
        opt.seeds,
        opt.rel_tol * 100.0
    );
    let _ = writeln!(o, "rate (req/s)  TTFT p99 (s)  TPOT p99 (s)  pass");
    for p in &c.points {
        let _ = writeln!(
            o,
            "{:>12.4}  {:>12.4}  {:>12.5}  {}",
            p.rate,
            p.ttft_p99(),
            p.tpot_p99(),
            if p.pass() { "yes" } else { "no" }
        );
    }
    match (c.rate, c.failed_at) {
        (Some(r), Some(f)) => {
            let _ = writeln!(
                o,
                "capacity: {r:.4} requests/s ({:.4} per device; {f:.4} fails)",
                r / devices as f64
            );
        }
        (Some(r), None) => {
            let _ = writeln!(
                o,
                "capacity: at least {r:.4} requests/s ({:.4} per device): no rate tried failed",
                r / devices as f64
            );
        }
        (None, _) => {
            let _ = writeln!(o, "capacity: none: the lowest rate tried failed");
        }
    }
    match (cost, c.rate) {
        (Ok(d), Some(r)) => {
            let _ = writeln!(
                o,
                "device cost: ${:.0} ({}); {:.3} requests/s per $1000 of devices",
                d.usd,
                d.source,
                r / (d.usd * devices as f64) * 1000.0
            );
        }
        (Ok(d), None) => {
            let _ = writeln!(o, "device cost: ${:.0} ({})", d.usd, d.source);
        }
        (Err(why), _) => {
            let _ = writeln!(o, "device cost: unknown ({why}); give --price USD");
        }
    }
    o
}
