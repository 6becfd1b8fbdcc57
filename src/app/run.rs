//! One iteration from files to report: the library side of `dyad run`.

use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

use crate::config::{self, ConfigError};
use crate::hw::System;
use crate::hw::{CostError, Timing};
use crate::map::{self, Policy};
use crate::model::{
    Batch, Footprint, ModelError, ModelSpec, Parallelism, Precision, Routing, build_iteration,
};
/// A run report's renderings: table, JSON, CSV, Markdown.
pub use crate::report::{Format, render};
use crate::report::{MemoryUse, RunInputs, RunReport};
use crate::sim::serving::ServingError;

use super::Status;
use crate::names::{UnknownName, parse_name};

/// Prefill (whole prompts) or decode (one token per sequence against a KV cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Whole prompts, from an empty KV cache.
    Prefill,
    /// One new token per sequence against its KV cache.
    Decode,
}

impl Phase {
    /// (phase, name in flags and reports, help): the only list, in declaration order, so that a
    /// phase's row is `TABLE[phase as usize]`.
    pub const TABLE: [(Phase, &'static str, &'static str); 2] = [
        (
            Phase::Prefill,
            "prefill",
            "whole prompts, from an empty KV cache",
        ),
        (
            Phase::Decode,
            "decode",
            "one token per sequence against its KV cache",
        ),
    ];

    /// The phase's name in flags and reports.
    pub fn name(self) -> &'static str {
        Self::TABLE[self as usize].1
    }
}

impl FromStr for Phase {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name("phase", &Self::TABLE, s)
    }
}

/// What `dyad run` runs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Arch file or preset.
    pub arch: PathBuf,
    /// Model config.json, TOML or preset.
    pub model: PathBuf,
    /// Prefill or decode.
    pub phase: Phase,
    /// Sequences in the batch.
    pub batch: u64,
    /// Prompt length of each sequence (prefill).
    pub prompt_len: u64,
    /// Tokens in each sequence's KV cache (decode).
    pub kv_len: u64,
    /// Tensor-parallel degree; `None` picks the smallest power of two whose share fits memory.
    pub tp: Option<u64>,
    /// Kernel or host time.
    pub timing: Timing,
    /// Mapping policy (`dispatch` and `duplex` need an arch with PIM units).
    pub policy: Policy,
}

impl Default for RunSpec {
    /// The built-in default: Mixtral-8x7B decode, batch 64, KV length 1024, on H100.
    fn default() -> Self {
        RunSpec {
            arch: "arch/h100.toml".into(),
            model: "workloads/models/mixtral-8x7b.json".into(),
            phase: Phase::Decode,
            batch: 64,
            prompt_len: 1024,
            kv_len: 1024,
            tp: None,
            timing: Timing::Kernel,
            policy: Policy::AllXpu,
        }
    }
}

/// Any failure of a run, by the stage that failed.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum RunError {
    /// An input file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// The model cannot be built at this batch and parallelism.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// The arch cannot price an op of the model.
    #[error("cost: {0}")]
    Cost(#[from] CostError),
    /// A batch, length or other size given as zero.
    #[error("--{flag} must be at least 1")]
    Zero {
        /// The flag, without its dashes.
        flag: &'static str,
    },
    /// More tensor-parallel devices than the arch has.
    #[error("--tp {tp} exceeds the {devices} devices of {arch}")]
    TpExceedsDevices {
        /// The degree asked for.
        tp: u64,
        /// The devices of the system.
        devices: u32,
        /// The arch's name.
        arch: String,
    },
    /// A PIM policy on an arch without PIM units.
    #[error("--policy {policy} needs an arch with PIM units (try --arch duplex)")]
    PolicyNeedsPim {
        /// The policy's name.
        policy: &'static str,
    },
    /// A serving run of a built-in scenario.
    #[error("{scenario}: {source}")]
    Serving {
        /// The scenario's name.
        scenario: String,
        /// Why it could not run.
        source: ServingError,
    },
}

impl RunError {
    /// Bad input, unless the cost model or engine broke.
    pub fn status(&self) -> Status {
        match self {
            RunError::Cost(c) => super::cost_status(c),
            RunError::Serving { source, .. } => super::serving_status(source),
            _ => Status::BadInput,
        }
    }
}

/// Bytes of one device's share of weights and KV cache (sized by [`Footprint`]).
fn memory_use(m: &ModelSpec, batch: &Batch, tp: u64, p: Precision, capacity: f64) -> MemoryUse {
    let foot = Footprint::new(m, Parallelism { tp, ep: 1 }, p);
    let weights = foot.weights.value();
    let kv_tokens: u64 = batch.decode_kv.iter().sum::<u64>()
        + batch.prefill.iter().map(|c| c.ctx + c.q_len).sum::<u64>();
    let kv = foot.kv(kv_tokens).value();
    MemoryUse {
        weights_bytes: weights,
        kv_bytes: kv,
        capacity_bytes: capacity,
        fits: weights + kv <= capacity,
    }
}

/// A run's inputs, loaded and checked: what `dyad run` costs and `dyad graph` draws.
pub struct Resolved {
    /// The system.
    pub sys: System,
    /// The model.
    pub model: ModelSpec,
    /// The batch.
    pub batch: Batch,
    /// The tensor-parallel degree (the spec's, or the smallest power of two that fits).
    pub tp: u64,
    /// Precision of weights, activations and KV cache (the model's element type throughout).
    pub precision: Precision,
}

/// Loads the arch and model of `spec`, builds its batch and picks its tensor-parallel degree.
pub fn resolve(spec: &RunSpec) -> Result<Resolved, RunError> {
    let sys = config::load_arch(&spec.arch)?;
    let model = config::load_model(&spec.model)?;
    let batch = batch(spec)?;
    let p = Precision::uniform(model.dtype);
    let cap = sys.xpu.memory.capacity.value();
    let tp = match spec.tp {
        Some(tp) => tp,
        None => {
            let mut tp = 1;
            while tp < u64::from(sys.devices())
                && (model.check_tp(tp * 2).is_ok())
                && !memory_use(&model, &batch, tp, p, cap).fits
            {
                tp *= 2;
            }
            tp
        }
    };
    if tp > u64::from(sys.devices()) {
        return Err(RunError::TpExceedsDevices {
            tp,
            devices: sys.devices(),
            arch: sys.name.clone(),
        });
    }
    Ok(Resolved {
        sys,
        model,
        batch,
        tp,
        precision: p,
    })
}

/// The batch of `spec`; zero sizes are errors, never clamped.
fn batch(spec: &RunSpec) -> Result<Batch, RunError> {
    let zero = |flag| Err(RunError::Zero { flag });
    match spec.phase {
        _ if spec.batch == 0 => zero("batch"),
        Phase::Decode if spec.kv_len == 0 => zero("kv-len"),
        Phase::Prefill if spec.prompt_len == 0 => zero("prompt-len"),
        Phase::Decode => Ok(Batch::decode(spec.batch, spec.kv_len)),
        Phase::Prefill => Ok(Batch::prefill(spec.batch, spec.prompt_len)),
    }
}

/// Runs one iteration and costs every op.
pub fn run(spec: &RunSpec) -> Result<RunReport, RunError> {
    let Resolved {
        sys,
        model,
        batch,
        tp,
        precision: p,
    } = resolve(spec)?;
    let g = build_iteration(&model, &batch, tp, p, &Routing::Uniform)?;
    if spec.policy != Policy::AllXpu && sys.pim.is_none() {
        return Err(RunError::PolicyNeedsPim {
            policy: spec.policy.name(),
        });
    }
    let placed = map::cost_iteration(&g, &sys, spec.policy, spec.timing)?;
    let inputs = RunInputs {
        arch: sys.name.clone(),
        model: model.name.clone(),
        phase: spec.phase.name().into(),
        batch: spec.batch,
        prompt_len: spec.prompt_len,
        kv_len: spec.kv_len,
        tp,
        policy: spec.policy.name().into(),
    };
    let cap = sys.xpu.memory.capacity.value();
    let mem = memory_use(&model, &batch, tp, p, cap);
    let static_w = sys.xpu.energy.static_power.value();
    Ok(RunReport::new(
        inputs, mem, &placed, static_w, g.tokens, g.produced,
    ))
}

/// One system of the built-in comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemResult {
    /// The arch preset.
    pub system: String,
    /// The policy's name.
    pub policy: String,
    /// Its serving metrics.
    pub serving: crate::report::serving::ServingMetrics,
}

/// The comparison a newcomer wants first: Mixtral-8x7B serving on 4 × H100 against 4 × Duplex
/// (the built-in `closed-b64-1024-1024` scenario), with and without co-processing.
pub fn duplex_comparison() -> Result<Vec<SystemResult>, RunError> {
    use crate::map::Policy;
    use crate::report::serving::ServingReport;
    let base = config::load_scenario("workloads/serving/closed-b64-1024-1024.toml".as_ref())?;
    let mut out = Vec::new();
    for (arch, policy) in [
        ("h100", Policy::AllXpu),
        ("duplex", Policy::Dispatch),
        ("duplex", Policy::Duplex),
    ] {
        let mut s = base.clone();
        s.sys = config::load_arch(arch.as_ref())?;
        s.policy = policy;
        let r = crate::sim::serving::simulate(&s, false).map_err(|source| RunError::Serving {
            scenario: s.name.clone(),
            source,
        })?;
        out.push(SystemResult {
            system: arch.into(),
            policy: policy.name().into(),
            serving: ServingReport::new(&s, &r).serving,
        });
    }
    Ok(out)
}

/// The comparison as a terminal table, ratios against the first system.
pub fn comparison_table(rows: &[SystemResult]) -> String {
    use crate::report::render::si;
    let mut s = String::from(
        "\nMixtral-8x7B serving, 4 devices (TP 4), 512 requests of (1024, 1024), 64 in flight\n\n",
    );
    s += &format!(
        "{:<20} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "system (policy)",
        "tokens/s",
        "speedup",
        "energy",
        "TTFT p50",
        "TBT p50",
        "E2E p50",
        "J/token"
    );
    let first = rows.first().map_or(1.0, |r| r.serving.output_tokens_per_s);
    let e0 = rows
        .first()
        .map_or(1.0, |r| r.serving.energy_per_output_token_j);
    for r in rows {
        let m = &r.serving;
        s += &format!(
            "{:<20} {:>9.0} {:>7.2}x {:>+6.0}% {:>9} {:>9} {:>9} {:>9}\n",
            format!("{} ({})", r.system, r.policy),
            m.output_tokens_per_s,
            m.output_tokens_per_s / first,
            100.0 * (m.energy_per_output_token_j / e0 - 1.0),
            si(m.ttft_s.p50, "s"),
            si(m.tbt_s.p50, "s"),
            si(m.e2e_s.p50, "s"),
            si(m.energy_per_output_token_j, "J"),
        );
    }
    s
}

/// What `dyad run --serving` runs.
pub struct ServeSpec {
    /// The scenario file (workloads/serving/*.toml).
    pub scenario: PathBuf,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Where to write a Chrome/Perfetto trace of the run.
    pub trace: Option<PathBuf>,
    /// JSON, or a table (`table` and `md`); CSV is for single iterations.
    pub format: crate::report::Format,
}

/// `dyad run --serving`: the serving report as text, and the trace written if asked for.
pub fn serve(spec: &ServeSpec) -> Result<String, super::AppError> {
    use super::AppError;
    use crate::report::{self, Format};
    let mut sc = config::load_scenario(&spec.scenario)?;
    if let Some(seed) = spec.seed {
        sc.seed = seed;
    }
    let r = crate::sim::serving::simulate(&sc, spec.trace.is_some()).map_err(|source| {
        AppError::Serving {
            path: spec.scenario.clone(),
            source,
        }
    })?;
    if let Some(t) = &spec.trace {
        let cannot = |e| AppError::cannot_write(t, e);
        let f = std::fs::File::create(t).map_err(cannot)?;
        report::trace::write_trace(std::io::BufWriter::new(f), &r.spans, &r.lives)
            .map_err(cannot)?;
    }
    let rep = report::serving::ServingReport::new(&sc, &r);
    match spec.format {
        Format::Json => Ok(serde_json::to_string_pretty(&rep)? + "\n"),
        Format::Table | Format::Md => Ok(rep.table()),
        Format::Csv => Err(AppError::Usage(
            "--format csv is for single iterations; use json for serving",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_sits_at_its_own_row_and_its_name_parses_back() {
        for (i, (p, n, _)) in Phase::TABLE.iter().enumerate() {
            assert_eq!(*p as usize, i, "{n} is out of declaration order");
            assert_eq!(p.name(), *n);
            assert_eq!(n.parse::<Phase>(), Ok(*p));
        }
        assert!("prefil".parse::<Phase>().is_err());
    }
}
