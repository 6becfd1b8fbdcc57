//! One iteration from files to report: the library side of `dyad run`.

use std::path::PathBuf;

use thiserror::Error;

use crate::config::{self, ConfigError};
use crate::hw::{CostError, Timing};
use crate::map::{self, Policy};
use crate::model::{Batch, ModelError, ModelSpec, Precision, Routing, build_iteration};
use crate::report::{MemoryUse, RunInputs, RunReport};

/// Prefill (whole prompts) or decode (one token per sequence against a KV cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prefill,
    Decode,
}

/// What `dyad run` runs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub arch: PathBuf,
    pub model: PathBuf,
    pub phase: Phase,
    pub batch: u64,
    pub prompt_len: u64,
    pub kv_len: u64,
    /// Tensor-parallel degree; `None` picks the smallest power of two whose share fits memory.
    pub tp: Option<u64>,
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
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("cost: {0}")]
    Cost(#[from] CostError),
    #[error("{0}")]
    Input(String),
}

/// Bytes of one device's share of weights and KV cache.
fn memory_use(m: &ModelSpec, batch: &Batch, tp: u64, p: Precision, capacity: f64) -> MemoryUse {
    let weights = m.params() as f64 * p.weights.bytes() / tp as f64;
    let kv_tokens: u64 = batch.decode_kv.iter().sum::<u64>()
        + batch.prefill.iter().map(|c| c.ctx + c.q_len).sum::<u64>();
    let kv = m.kv_bytes_per_token(p.kv) * kv_tokens as f64 * m.kv_heads_per_device(tp) as f64
        / m.kv_heads as f64;
    MemoryUse {
        weights_bytes: weights,
        kv_bytes: kv,
        capacity_bytes: capacity,
        fits: weights + kv <= capacity,
    }
}

/// Runs one iteration and costs every op.
pub fn run(spec: &RunSpec) -> Result<RunReport, RunError> {
    let sys = config::load_arch(&spec.arch)?;
    let model = config::load_model(&spec.model)?;
    if spec.batch == 0 {
        return Err(RunError::Input("--batch must be at least 1".into()));
    }
    let batch = match spec.phase {
        Phase::Decode if spec.kv_len == 0 => {
            return Err(RunError::Input("--kv-len must be at least 1".into()));
        }
        Phase::Prefill if spec.prompt_len == 0 => {
            return Err(RunError::Input("--prompt-len must be at least 1".into()));
        }
        Phase::Decode => Batch::decode(spec.batch, spec.kv_len),
        Phase::Prefill => Batch::prefill(spec.batch, spec.prompt_len),
    };
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
        return Err(RunError::Input(format!(
            "--tp {tp} exceeds the {} devices of {}",
            sys.devices(),
            sys.name
        )));
    }
    let g = build_iteration(&model, &batch, tp, p, &Routing::Uniform)?;
    if spec.policy != Policy::AllXpu && sys.pim.is_none() {
        return Err(RunError::Input(format!(
            "--policy {} needs an arch with PIM units (try --arch duplex)",
            spec.policy.name()
        )));
    }
    let placed = map::cost_iteration(&g, &sys, spec.policy, spec.timing)?;
    let inputs = RunInputs {
        arch: sys.name.clone(),
        model: model.name.clone(),
        phase: match spec.phase {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
        .into(),
        batch: spec.batch,
        prompt_len: spec.prompt_len,
        kv_len: spec.kv_len,
        tp,
        policy: spec.policy.name().into(),
    };
    let mem = memory_use(&model, &batch, tp, p, cap);
    Ok(RunReport::new(inputs, mem, &placed, g.tokens, g.produced))
}

/// One system of the built-in comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemResult {
    pub system: String,
    pub policy: String,
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
        let mut r =
            crate::sim::serving::simulate(&s, false).map_err(|e| RunError::Input(e.to_string()))?;
        out.push(SystemResult {
            system: arch.into(),
            policy: policy.name().into(),
            serving: ServingReport::new(&s, &mut r).serving,
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
