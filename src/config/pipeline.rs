//! A serving scenario's `[pipeline]` table: the model's layers in S stages of consecutive
//! layers, each on its own `tp` devices, and each iteration's batch in M micro-batches through
//! them (`sim::serving::pipeline`), with `--pp` / `--micro-batches` in place of its keys.
//!
//! ```toml
//! [pipeline]
//! stages = 4          # S: layers ÷ S consecutive layers per stage, S × tp devices in all
//! micro_batches = 4   # M: each iteration's sequences as M micro-batches
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::ScenarioOverrides;
use super::error::ConfigError;
use super::source::Source;
use crate::sim::serving::Scenario;
use crate::sim::serving::pipeline::Pipelining;

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    stages: Spanned<u64>,
    micro_batches: Spanned<u64>,
}

/// Tables of the scenario file that a pipeline is not simulated with.
pub(super) struct Beside {
    /// `[replicas]`.
    pub(super) replicas: bool,
    /// `[disaggregation]`.
    pub(super) disaggregation: bool,
}

/// Where a value came from: a flag (its name and value) or the file's key.
enum Given<'a> {
    Flag(&'static str, u64),
    Key(&'static str, &'a Spanned<u64>),
}

impl Given<'_> {
    fn value(&self) -> u64 {
        match self {
            Given::Flag(_, v) => *v,
            Given::Key(_, v) => *v.get_ref(),
        }
    }

    /// An error about this value, at its flag or its key.
    fn err(&self, src: &Source, msg: &str) -> ConfigError {
        match self {
            Given::Flag(f, v) => src.whole(format!("--{f} {v}: {msg}")),
            Given::Key(k, v) => src.err(v, format!("`{k}` = {}: {msg}", v.get_ref())),
        }
    }
}

/// The pipeline of `raw` (the file's table, `None` without one), with `--pp` and
/// `--micro-batches` (in `o`) over its keys, checked against scenario `t` and the file's
/// other tables; `None` when neither the file nor `--pp` asks for one. M is 1 when only
/// `--pp` gives the pipeline and `--micro-batches` is not given (the flag's default).
pub(super) fn pipeline(
    src: &Source,
    raw: Option<&RawPipeline>,
    o: &ScenarioOverrides,
    t: &Scenario,
    beside: Beside,
) -> Result<Option<Pipelining>, ConfigError> {
    let stages = match (o.pp, raw) {
        (Some(n), _) => Given::Flag("pp", n),
        (None, Some(r)) => Given::Key("pipeline.stages", &r.stages),
        (None, None) => {
            return match o.micro_batches {
                Some(m) => Err(Given::Flag("micro-batches", m)
                    .err(src, "needs --pp or a [pipeline] table in the scenario")),
                None => Ok(None),
            };
        }
    };
    let micro = match (o.micro_batches, raw) {
        (Some(m), _) => Given::Flag("micro-batches", m),
        (None, Some(r)) => Given::Key("pipeline.micro_batches", &r.micro_batches),
        (None, None) => Given::Flag("micro-batches", 1),
    };
    let (s, m) = (stages.value(), micro.value());
    let layers = t.model.layers();
    let devices = u64::from(t.sys.devices());
    let refuse = |msg: String| Err(stages.err(src, &msg));
    if s == 0 {
        return refuse("must be at least 1".into());
    }
    if s > u64::from(layers) || u64::from(layers) % s != 0 {
        return refuse(format!(
            "must divide the model's {layers} layers (each stage holds layers ÷ stages consecutive layers)"
        ));
    }
    if s * t.tp > devices {
        return refuse(format!(
            "{s} stages × tp {} = {} devices, more than the arch's {devices}",
            t.tp,
            s * t.tp
        ));
    }
    if m == 0 {
        return Err(micro.err(src, "must be at least 1"));
    }
    if m > t.max_batch {
        return Err(micro.err(
            src,
            &format!(
                "more micro-batches than the {} sequences an iteration holds (`batching.max_batch`)",
                t.max_batch
            ),
        ));
    }
    let not_with = |what: &str| {
        refuse(format!(
            "pipeline stages are not simulated with {what} (the serving engine pipelines one replica of tensor-parallel stages)"
        ))
    };
    if t.ep > 1 {
        return not_with(&format!("expert parallelism (ep = {})", t.ep));
    }
    if t.speculative.is_some() {
        return not_with("speculative decoding ([speculative])");
    }
    if beside.replicas || o.replicas.is_some() {
        return not_with("replicas behind a router ([replicas] or --replicas)");
    }
    if beside.disaggregation {
        return not_with("prefill/decode disaggregation ([disaggregation])");
    }
    Ok(Some(Pipelining {
        stages: s,
        micro_batches: m,
    }))
}
