//! One iteration from files to report: the library side of `dyad run`.

use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

/// What flags replace in a serving scenario.
pub use crate::config::ScenarioOverrides;
use crate::config::{self, ConfigError};
use crate::hw::System;
use crate::hw::{CostError, Timing};
use crate::map::{self, Policy};
use crate::model::{
    Batch, IterationGraph, ModelError, ModelSpec, Precision, Routing, build_iteration,
    build_iteration_sp,
};
/// A run report's renderings: table, JSON, CSV, Markdown.
pub use crate::report::{Format, render};
use crate::report::{RunInputs, RunReport};
use crate::sim::serving::ServingError;
use crate::work::Dtype;

use super::{Status, fit};
use crate::names::{UnknownName, parse_name};
use crate::report::render::si;

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
    /// Sequence-parallel (Ulysses) degree (1 = off; above 1 needs tp 1).
    pub sp: u64,
    /// Kernel or host time.
    pub timing: Timing,
    /// Mapping policy (`dispatch` and `duplex` need an arch with PIM units).
    pub policy: Policy,
    /// Element type of the weights; `None` is the model's.
    pub weights: Option<Dtype>,
    /// Element type of the activations; `None` is the model's.
    pub activations: Option<Dtype>,
    /// Element type of the KV cache; `None` is the model's.
    pub kv: Option<Dtype>,
    /// Cost a model whose weights and KV cache exceed one device's memory instead of failing
    /// ([`RunError::DoesNotFit`]); the report still says it does not fit.
    pub allow_oversize: bool,
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
            sp: 1,
            timing: Timing::Kernel,
            policy: Policy::AllXpu,
            weights: None,
            activations: None,
            kv: None,
            allow_oversize: false,
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
    /// `--tp` does not split the model.
    #[error("--tp {tp}: {why} of {model}")]
    Tp {
        /// The degree asked for.
        tp: u64,
        /// The model file or preset.
        model: String,
        /// What does not split.
        why: ModelError,
    },
    /// The arch cannot price an op of the model.
    #[error("cost: {0}")]
    Cost(#[from] CostError),
    /// A batch, length or other size given as zero.
    #[error("--{flag} must be at least 1")]
    Zero {
        /// The flag, without its dashes.
        flag: &'static str,
    },
    /// A batch or length over its limit ([`MAX_BATCH`], [`MAX_LEN`]).
    #[error("--{flag} {value} is more than dyad runs (at most {max})")]
    TooLarge {
        /// The flag, without its dashes.
        flag: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// More tokens in the batch's prompts or KV caches than [`MAX_TOKENS`].
    #[error("--batch × --{len_flag} is {tokens} tokens, more than dyad runs (at most {max})")]
    TooManyTokens {
        /// `prompt-len` or `kv-len`.
        len_flag: &'static str,
        /// The product.
        tokens: u64,
        /// The limit.
        max: u64,
    },
    /// A pipeline the run cannot take.
    #[error("--pp {pp}: {why}")]
    Pp {
        /// The stages asked for.
        pp: u64,
        /// Why not, in words.
        why: String,
    },
    /// A sequence-parallel degree the run cannot take.
    #[error("--sp {sp}: {why}")]
    Sp {
        /// The degree asked for.
        sp: u64,
        /// Why not, in words.
        why: String,
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
    /// The model's weights and this batch's KV cache exceed one device's memory.
    #[error("{breakdown}; {advice}, or --allow-oversize to cost it anyway")]
    DoesNotFit {
        /// What does not fit where: model, arch, TP, weights and KV per device, capacity.
        breakdown: String,
        /// The smallest parallelism that fits, in words.
        advice: String,
    },
    /// The weights and activations of a serving run leave no room for its KV cache.
    #[error("{scenario}: {breakdown}; {advice}")]
    ServingDoesNotFit {
        /// The scenario's name.
        scenario: String,
        /// Model, arch, TP and EP, weights, activation reserve, usable memory and capacity per
        /// device, and the flags that changed the scenario.
        breakdown: String,
        /// The smallest parallelism that fits, in words.
        advice: String,
    },
    /// A report figure outside its domain (a bug): nothing was written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Guard(#[from] crate::report::guard::Violation),
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
            RunError::Guard(_) => Status::Internal,
            _ => Status::BadInput,
        }
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
    /// Why dyad chose `tp`, in words; `None` when the spec gave it.
    pub tp_reason: Option<String>,
    /// The sequence-parallel degree (1 = off).
    pub sp: u64,
    /// Precision of weights, activations and KV cache (the spec's, else the model's type).
    pub precision: Precision,
}

/// Loads the arch and model of `spec`, builds its batch and picks its tensor-parallel degree.
pub fn resolve(spec: &RunSpec) -> Result<Resolved, RunError> {
    let sys = config::load_arch(&spec.arch)?;
    let model = config::load_model(&spec.model)?;
    let batch = batch(spec)?;
    let p = Precision {
        weights: spec
            .weights
            .unwrap_or(model.quantized.unwrap_or(model.dtype)),
        activations: spec
            .activations
            .unwrap_or(model.quantized.unwrap_or(model.dtype)),
        kv: spec.kv.unwrap_or(model.dtype),
        scales: None,
    };
    let cap = sys.xpu.memory.capacity.value();
    let sp = super::run_sp::degree(spec, sys.devices())?;
    let (tp, tp_reason) = match spec.tp {
        Some(tp) => (tp, None),
        None if sp > 1 => (1, None),
        None => {
            let (tp, why) = fit::pick_tp(&model, &batch, p, cap, sys.devices());
            (tp, Some(why))
        }
    };
    if tp > u64::from(sys.devices()) {
        return Err(RunError::TpExceedsDevices {
            tp,
            devices: sys.devices(),
            arch: sys.name.clone(),
        });
    }
    model.check_tp(tp).map_err(|why| RunError::Tp {
        tp,
        model: spec.model.display().to_string(),
        why,
    })?;
    Ok(Resolved {
        sys,
        model,
        batch,
        tp,
        tp_reason,
        sp,
        precision: p,
    })
}

/// The most sequences in a batch (`--batch`): one iteration holds a KV length per sequence.
pub const MAX_BATCH: u64 = 1 << 20;
/// The longest prompt or KV cache of one sequence (`--prompt-len`, `--kv-len`), in tokens.
pub const MAX_LEN: u64 = 1 << 24;
/// The most tokens of a batch's prompts or KV caches together (`--batch` × the length), so
/// that byte counts (tokens × bytes per token) stay far inside a `u64`.
pub const MAX_TOKENS: u64 = 1 << 32;

/// The batch of `spec`; zero sizes are errors, never clamped, and so are sizes over their
/// limits (checked before anything is allocated or multiplied).
fn batch(spec: &RunSpec) -> Result<Batch, RunError> {
    let zero = |flag| Err(RunError::Zero { flag });
    let over = |flag, value, max| Err(RunError::TooLarge { flag, value, max });
    let (len_flag, len) = match spec.phase {
        Phase::Decode => ("kv-len", spec.kv_len),
        Phase::Prefill => ("prompt-len", spec.prompt_len),
    };
    if spec.batch > MAX_BATCH {
        return over("batch", spec.batch, MAX_BATCH);
    } else if len > MAX_LEN {
        return over(len_flag, len, MAX_LEN);
    } else if spec.batch * len > MAX_TOKENS {
        return Err(RunError::TooManyTokens {
            len_flag,
            tokens: spec.batch * len,
            max: MAX_TOKENS,
        });
    }
    match spec.phase {
        _ if spec.batch == 0 => zero("batch"),
        Phase::Decode if spec.kv_len == 0 => zero("kv-len"),
        Phase::Prefill if spec.prompt_len == 0 => zero("prompt-len"),
        Phase::Decode => Ok(Batch::decode(spec.batch, spec.kv_len)),
        Phase::Prefill => Ok(Batch::prefill(spec.batch, spec.prompt_len)),
    }
}

/// The iteration of `spec` as `dyad run` costs it and `dyad graph` draws it: its inputs resolved
/// ([`resolve`]), its op graph built, and its policy checked against the arch (a PIM policy on
/// an arch without PIM units is [`RunError::PolicyNeedsPim`]). Both commands then place and cost
/// its ops with [`map::cost_iteration`].
pub(crate) fn iteration(spec: &RunSpec) -> Result<(Resolved, IterationGraph), RunError> {
    let r = resolve(spec)?;
    let g = match r.sp {
        1 => build_iteration(&r.model, &r.batch, r.tp, r.precision, &Routing::Uniform)?,
        sp => build_iteration_sp(&r.model, &r.batch, sp, r.precision, &Routing::Uniform)
            .map_err(super::run_sp::error)?,
    };
    if spec.policy != Policy::AllXpu && r.sys.pim.is_none() {
        return Err(RunError::PolicyNeedsPim {
            policy: spec.policy.name(),
        });
    }
    Ok((r, g))
}

/// Runs one iteration and costs every op. A model whose share does not fit one device is an
/// error ([`RunError::DoesNotFit`]) unless `spec.allow_oversize`.
pub fn run(spec: &RunSpec) -> Result<RunReport, RunError> {
    let (r, g) = iteration(spec)?;
    let (sys, model, batch, tp, p) = (&r.sys, &r.model, &r.batch, r.tp, r.precision);
    let cap = sys.xpu.memory.capacity.value();
    let mem = super::run_sp::memory_use(model, batch, tp, r.sp, p, cap);
    if !mem.fits && !spec.allow_oversize {
        let smallest = fit::smallest_tp(model, batch, p, cap);
        return Err(RunError::DoesNotFit {
            breakdown: format!(
                "{} does not fit one {} device at TP {tp}: weights {} + KV cache {} exceed its {}",
                model.name,
                sys.name,
                si(mem.weights_bytes, "B"),
                si(mem.kv_bytes, "B"),
                si(cap, "B")
            ),
            advice: fit::advice(smallest, "tp", sys.devices()),
        });
    }
    let placed = map::cost_iteration(&g, sys, spec.policy, spec.timing)?;
    let inputs = RunInputs {
        arch: sys.name.clone(),
        model: model.name.clone(),
        phase: spec.phase.name().into(),
        batch: spec.batch,
        prompt_len: spec.prompt_len,
        kv_len: spec.kv_len,
        tp,
        ep: 1,
        devices: tp * r.sp,
        attention_dp: 1,
        tp_reason: r.tp_reason.clone(),
        sp: r.sp,
        precision: p,
        policy: spec.policy.name().into(),
        model_notes: model.notes.clone(),
    };
    let static_w = sys.xpu.energy.static_power.value();
    let report = RunReport::new(inputs, mem, &placed, static_w, g.tokens, g.produced);
    crate::report::guard::check("run", &report)?;
    Ok(report)
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
        let r = crate::sim::serving::simulate(&s, None).map_err(|source| RunError::Serving {
            scenario: s.name.clone(),
            source,
        })?;
        let rep = ServingReport::new(&s, &r);
        crate::report::guard::check("serving", &rep)?;
        out.push(SystemResult {
            system: arch.into(),
            policy: policy.name().into(),
            serving: rep.serving,
        });
    }
    Ok(out)
}

/// The comparison as a terminal table, ratios against the first system.
pub fn comparison_table(rows: &[SystemResult]) -> String {
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
    /// Values that replace the scenario's (arch, model, tp, ep, policy, seed, timing,
    /// precision); the report lists the keys they replace.
    pub overrides: ScenarioOverrides,
    /// Where to write a Chrome/Perfetto trace of the run.
    pub trace: Option<PathBuf>,
    /// Most op slices in the trace (`None`: all).
    pub trace_limit: Option<u64>,
    /// Most iterations the run may be predicted to take (`None`: no limit); see
    /// [`crate::sim::serving::least_iterations`].
    pub work_limit: Option<u64>,
    /// JSON or a table; CSV and Markdown are for single iterations (an error here).
    pub format: crate::report::Format,
}

/// What `dyad run --serving` produced: the report, and warnings for standard error.
pub struct Served {
    /// The report, as text or JSON.
    pub text: String,
    /// What the user should know that the report does not say (a trace cut at its limit).
    pub warnings: Vec<String>,
}

/// `dyad run --serving`: the serving report, with the trace written as the run goes if asked
/// for.
pub fn serve(spec: &ServeSpec) -> Result<Served, super::AppError> {
    use super::AppError;
    use crate::report::{self, Format};
    match spec.format {
        Format::Json | Format::Table => {}
        Format::Csv => {
            return Err(AppError::Usage(
                "--format csv is for single iterations; use table or json with --serving",
            ));
        }
        Format::Md => {
            return Err(AppError::Usage(
                "--format md is for single iterations; use table or json with --serving",
            ));
        }
    }
    if let Some(served) = super::run_replicas::serve_modes(spec)? {
        return Ok(served);
    }
    let sc = config::load_scenario_overridden(&spec.scenario, &spec.overrides)?;
    super::run_replicas::work_limit(spec, &sc)?;
    let mut writer = match &spec.trace {
        Some(t) => {
            let cannot = |e| AppError::cannot_write(t, e);
            let f = std::io::BufWriter::new(std::fs::File::create(t).map_err(cannot)?);
            Some(report::trace::TraceWriter::new(f, &sc, spec.trace_limit).map_err(cannot)?)
        }
        None => None,
    };
    let observer = writer
        .as_mut()
        .map(|w| w as &mut dyn crate::sim::serving::Observer);
    let r = crate::sim::serving::simulate(&sc, observer)
        .map_err(|source| fit::serving_error(&sc, spec, source))?;
    let mut warnings = Vec::new();
    if let (Some(w), Some(t)) = (writer, &spec.trace) {
        let summary = w.finish().map_err(|e| AppError::cannot_write(t, e))?;
        warnings.extend(summary.warning());
    }
    let rep = report::serving::ServingReport::new(&sc, &r);
    super::run_replicas::written(spec, rep, warnings)
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
