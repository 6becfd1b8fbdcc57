//! Serving scenario TOML: model, arch, parallelism, request mix, arrivals, batching, routing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::lengths::{RawDist, dist};
use super::replicas::ONE_REPLICA;
use super::routing::{Experts, RawRouting, routing};
use super::source::Source;
use super::speculative::{RawSpeculative, speculative};
use crate::hw::{System, Timing};
use crate::map::Policy;
use crate::model::{ModelSpec, Precision};
use crate::sim::routing::RoutingSpec;
use crate::sim::serving::Scenario;
use crate::sim::workload::{Arrivals, Lengths};
use crate::work::Dtype;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    arch: Spanned<String>,
    model: Spanned<String>,
    tp: Spanned<u64>,
    /// Expert-parallel degree (1, the default, is off).
    ep: Option<Spanned<u64>>,
    seed: Option<u64>,
    timing: Option<Spanned<String>>,
    /// A software-stack profile (`arch/software/*.toml`), relative to the scenario.
    software: Option<Spanned<String>>,
    /// Mapping policy: all-xpu (default), dispatch, duplex.
    policy: Option<Spanned<String>>,
    precision: RawPrecision,
    requests: RawRequests,
    arrivals: RawArrivals,
    batching: RawBatching,
    routing: Option<RawRouting>,
    /// Speculative decoding (`[speculative]`).
    speculative: Option<RawSpeculative>,
    /// Expert parallelism's options (`[expert_parallel]`).
    expert_parallel: Option<super::expert_parallel::RawExpertParallel>,
    /// Pipeline stages and micro-batches (`[pipeline]`).
    pipeline: Option<super::pipeline::RawPipeline>,
    /// Prefill/decode pools, read by `config::pools` (and `replicas` by `config::replicas`).
    #[allow(dead_code)]
    disaggregation: Option<toml::Table>,
    replicas: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecision {
    weights: Spanned<String>,
    activations: Spanned<String>,
    kv: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequests {
    count: Spanned<u64>,
    prompt: Option<Spanned<RawDist>>,
    output: Option<Spanned<RawDist>>,
    /// CSV with columns prompt_len, output_len and optionally arrival_s.
    trace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrivals {
    /// Closed loop: requests in the system at all times.
    closed: Option<Spanned<u64>>,
    /// Open loop: Poisson arrivals, requests per second.
    poisson: Option<Spanned<f64>>,
    /// Open loop: arrival times from the request trace.
    trace: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatching {
    max_batch: Spanned<u64>,
    max_tokens: Spanned<u64>,
    kv_block: Spanned<u64>,
    memory_utilization: Spanned<f64>,
}

/// Values given on the command line that replace the scenario's (`dyad run --serving S --tp 2`).
/// Each is checked as the file's own value would be, and an error about it names its flag.
#[derive(Debug, Clone, Default)]
pub struct ScenarioOverrides {
    /// `--arch`: an arch file or preset, relative to the working folder (not the scenario's).
    pub arch: Option<PathBuf>,
    /// `--model`: a model file or preset, relative to the working folder.
    pub model: Option<PathBuf>,
    /// `--tp`.
    pub tp: Option<u64>,
    /// `--ep`.
    pub ep: Option<u64>,
    /// `--policy`.
    pub policy: Option<Policy>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--timing`.
    pub timing: Option<Timing>,
    /// `--weights`.
    pub weights: Option<Dtype>,
    /// `--activations`.
    pub activations: Option<Dtype>,
    /// `--kv`.
    pub kv: Option<Dtype>,
    /// `--software`: a software-stack profile, relative to the working folder.
    pub software: Option<PathBuf>,
    /// `--two-batch-overlap` (on when set; off leaves the file's value).
    pub two_batch_overlap: bool,
    /// `--redundant-experts`.
    pub redundant_experts: Option<u64>,
    /// `--replicas`: copies of the replica behind a router (`config::load_replicas`).
    pub replicas: Option<u64>,
    /// `--router`.
    pub router: Option<crate::sim::serving::RouterPolicy>,
    /// `--pp`: pipeline stages (`config::pipeline`).
    pub pp: Option<u64>,
    /// `--micro-batches`.
    pub micro_batches: Option<u64>,
}

impl ScenarioOverrides {
    /// The scenario keys these values replace, in the order of the file (`arch`, `model`, `tp`,
    /// `ep`, `seed`, `timing`, `policy`, `precision.weights`, `precision.activations`,
    /// `precision.kv`).
    pub fn keys(&self) -> Vec<&'static str> {
        let given = [
            ("arch", self.arch.is_some()),
            ("model", self.model.is_some()),
            ("tp", self.tp.is_some()),
            ("ep", self.ep.is_some()),
            ("seed", self.seed.is_some()),
            ("timing", self.timing.is_some()),
            ("policy", self.policy.is_some()),
            ("precision.weights", self.weights.is_some()),
            ("precision.activations", self.activations.is_some()),
            ("precision.kv", self.kv.is_some()),
            ("software", self.software.is_some()),
            ("expert_parallel.two_batch_overlap", self.two_batch_overlap),
            (
                "expert_parallel.redundant_experts",
                self.redundant_experts.is_some(),
            ),
            ("replicas.count", self.replicas.is_some()),
            ("replicas.router", self.router.is_some()),
            ("pipeline.stages", self.pp.is_some()),
            ("pipeline.micro_batches", self.micro_batches.is_some()),
        ];
        given.iter().filter(|(_, g)| *g).map(|(k, _)| *k).collect()
    }

    /// " (the arch given by --arch)" when the arch is overridden, for errors about a file value
    /// that the new arch refuses.
    fn arch_note(&self) -> &'static str {
        if self.arch.is_some() {
            " (the arch given by --arch)"
        } else {
            ""
        }
    }
}

/// An error about a value a flag gave: "--tp 8: …", about the scenario file.
fn flag_err(src: &Source, flag: &str, value: impl std::fmt::Display, msg: &str) -> ConfigError {
    src.whole(format!("--{flag} {value}: {msg}"))
}

/// A scenario file, read and parsed: the paths of its arch and model, and the rest to check once
/// they are loaded.
pub struct ScenarioFile {
    src: Arc<Source>,
    raw: RawScenario,
    /// The speculative draft model `speculative.draft_model` names, once loaded.
    pub draft: Option<ModelSpec>,
}

impl ScenarioFile {
    /// Parses `src` (a scenario file, or an edited copy of one).
    pub fn parse(src: Arc<Source>) -> Result<ScenarioFile, ConfigError> {
        let raw = src.parse()?;
        Ok(ScenarioFile {
            src,
            raw,
            draft: None,
        })
    }

    /// The draft model file `speculative.draft_model` names, relative to the scenario's folder.
    pub fn draft_model_path(&self) -> Option<PathBuf> {
        let sp = self.raw.speculative.as_ref()?;
        let key = sp.draft_model.as_ref()?;
        Some(
            self.src
                .relative_or_preset(key.get_ref(), "workloads/models"),
        )
    }

    /// The arch file it names, relative to the scenario's folder, or a built-in name (`h100`).
    pub fn arch_path(&self) -> PathBuf {
        self.src.relative_or_preset(self.raw.arch.get_ref(), "arch")
    }

    /// The model file it names, relative to the scenario's folder, or a built-in name
    /// (`mixtral-8x7b`).
    pub fn model_path(&self) -> PathBuf {
        self.src
            .relative_or_preset(self.raw.model.get_ref(), "workloads/models")
    }

    /// The software profile it names (`software`), relative to the scenario's folder.
    pub fn software_path(&self) -> Option<PathBuf> {
        self.raw
            .software
            .as_ref()
            .map(|s| self.src.relative(s.get_ref()))
    }

    /// `e`, an error loading the file the scenario's `key` (`arch`, `model` or
    /// `speculative.draft_model`) names, placed at
    /// that line of the scenario when the file itself could not be read (a wrong path), as is.
    pub fn named_file_error(&self, key: &str, e: ConfigError) -> ConfigError {
        let sp = self.raw.speculative.as_ref();
        let v = match (key, sp.and_then(|s| s.draft_model.as_ref())) {
            ("arch", _) => &self.raw.arch,
            ("speculative.draft_model", Some(d)) => d,
            _ => &self.raw.model,
        };
        if e.line_col().is_some() || e.path() != self.src.relative(v.get_ref()) {
            return e;
        }
        self.src.err(
            v,
            format!("`{key}`: {}: {}", e.path().display(), e.message()),
        )
    }

    /// The checked scenario, with `sys` and `model` loaded from [`Self::arch_path`] and
    /// [`Self::model_path`].
    pub fn resolve(self, sys: System, model: ModelSpec) -> Result<Scenario, ConfigError> {
        (self.raw.replicas.as_ref()).map_or(Ok(()), |t| Err(self.src.err(t, ONE_REPLICA)))?;
        self.resolve_with(sys, model, &ScenarioOverrides::default())
    }

    /// The checked scenario with the values of `o` in place of the file's; `sys` and `model`
    /// are the ones `o` names, where it names them.
    pub fn resolve_with(
        self,
        sys: System,
        model: ModelSpec,
        o: &ScenarioOverrides,
    ) -> Result<Scenario, ConfigError> {
        let ScenarioFile {
            src,
            mut raw,
            draft,
        } = self;
        let table = raw.speculative.take();
        let ept = raw.expert_parallel.take();
        let ppt = raw.pipeline.take();
        let beside = super::pipeline::Beside {
            replicas: raw.replicas.is_some(),
            disaggregation: raw.disaggregation.is_some(),
        };
        let mut s = resolve(&src, raw, sys, model, o)?;
        s.speculative = speculative(&src, table.as_ref(), &s, draft)?;
        let flags = (o.two_batch_overlap, o.redundant_experts);
        s.expert_parallel = super::expert_parallel::expert_parallel(&src, ept.as_ref(), flags, &s)?;
        s.pipeline = super::pipeline::pipeline(&src, ppt.as_ref(), o, &s, beside)?;
        Ok(s)
    }
}

/// Most requests a scenario may have: their records take ~100 B each, so 10^7 stay within
/// about a gigabyte.
const MAX_REQUESTS: u64 = 10_000_000;
/// Longest prompt or output, tokens (as `dyad run`'s `--prompt-len` and `--kv-len`).
pub(super) const MAX_LEN: u64 = 1 << 24;
/// Largest batch, token budget and KV block.
const MAX_BATCHING: u64 = 1 << 32;

fn positive(src: &Source, v: &Spanned<u64>, key: &str) -> Result<u64, ConfigError> {
    bounded(src, v, key, MAX_BATCHING)
}

/// A count in `1..=max`.
fn bounded(src: &Source, v: &Spanned<u64>, key: &str, max: u64) -> Result<u64, ConfigError> {
    match *v.get_ref() {
        0 => Err(src.err(v, format!("`{key}` must be at least 1"))),
        n if n > max => Err(src.err(v, format!("`{key}` = {n} is more than {max}"))),
        n => Ok(n),
    }
}

fn dtype(src: &Source, v: &Spanned<String>) -> Result<Dtype, ConfigError> {
    v.get_ref()
        .parse::<Dtype>()
        .map_err(|e| src.err(v, e.to_string()))
}

fn resolve(
    src: &Source,
    raw: RawScenario,
    sys: System,
    model: ModelSpec,
    o: &ScenarioOverrides,
) -> Result<Scenario, ConfigError> {
    let (tp, ep) = parallelism(src, &raw, &sys, &model, o)?;
    let rp = &raw.precision;
    let precision = Precision {
        weights: o.weights.map_or_else(|| dtype(src, &rp.weights), Ok)?,
        activations: o
            .activations
            .map_or_else(|| dtype(src, &rp.activations), Ok)?,
        kv: o.kv.map_or_else(|| dtype(src, &rp.kv), Ok)?,
        scales: None,
    };
    let (count, lengths, arrivals) = requests(src, &raw.requests, &raw.arrivals)?;
    let b = &raw.batching;
    let util = *b.memory_utilization.get_ref();
    if !(util > 0.0 && util <= 1.0) {
        return Err(src.err(
            &b.memory_utilization,
            "`batching.memory_utilization` must be in (0, 1]",
        ));
    }
    let routing = scenario_routing(src, raw.routing.as_ref(), &model, o)?;
    let timing = match o.timing {
        Some(t) => t,
        None => timing(src, raw.timing.as_ref())?,
    };
    let policy = policy(src, raw.policy.as_ref(), &sys, o)?;
    Ok(Scenario {
        policy,
        name: raw.name.unwrap_or_else(|| {
            src.path()
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
        }),
        sys,
        model,
        precision,
        tp,
        ep,
        count,
        lengths,
        arrivals,
        max_batch: positive(src, &b.max_batch, "batching.max_batch")?,
        max_tokens: positive(src, &b.max_tokens, "batching.max_tokens")?,
        kv_block: positive(src, &b.kv_block, "batching.kv_block")?,
        memory_utilization: util,
        routing,
        seed: o.seed.or(raw.seed).unwrap_or(0),
        timing,
        software: None,
        speculative: None,
        expert_parallel: Default::default(),
        pipeline: None,
    })
}

/// The routing of a scenario's `[routing]` table `raw` (balanced for a dense model; an MoE model
/// needs the table), checked against `model`.
fn scenario_routing(
    src: &Source,
    raw: Option<&RawRouting>,
    model: &ModelSpec,
    o: &ScenarioOverrides,
) -> Result<RoutingSpec, ConfigError> {
    match raw {
        None | Some(RawRouting { .. }) if model.moe.is_none() => Ok(RoutingSpec::Uniform),
        None => {
            let what = match &o.model {
                Some(p) => format!("--model {}: a mixture-of-experts model", p.display()),
                None => "a mixture-of-experts model".into(),
            };
            Err(src
                .whole(format!("{what} needs a `[routing]` table in the scenario"))
                .with_help(
                    "mode = \"uniform\" (balanced), \"zipf\" (with s), or \"trace\" (with file)",
                ))
        }
        Some(rt) => routing(
            src,
            rt,
            Experts {
                experts: model.moe.map_or(0, |m| m.experts),
                top_k: model.moe.map_or(0, |m| m.top_k),
                layers: model.layers(),
            },
        ),
    }
}

/// Tensor- and expert-parallel degrees (the file's or the flags'), checked against the model and
/// the node; an error names the flag that gave the value, or the flag whose arch or model
/// refuses the file's value.
fn parallelism(
    src: &Source,
    raw: &RawScenario,
    sys: &System,
    model: &ModelSpec,
    o: &ScenarioOverrides,
) -> Result<(u64, u64), ConfigError> {
    let note = match (&o.arch, &o.model) {
        (None, None) => "",
        (Some(_), None) => o.arch_note(),
        (None, Some(_)) => " (the model given by --model)",
        (Some(_), Some(_)) => " (the arch and model given by --arch and --model)",
    };
    let tp_err = |msg: String| match o.tp {
        Some(tp) => flag_err(src, "tp", tp, &msg),
        None => src.err(&raw.tp, format!("{msg}{note}")),
    };
    let tp = match o.tp {
        Some(0) => return Err(tp_err("must be at least 1".into())),
        Some(n) => n,
        None => positive(src, &raw.tp, "tp")?,
    };
    model.check_tp(tp).map_err(|e| tp_err(e.to_string()))?;
    let devices = sys.devices();
    if tp > u64::from(devices) {
        return Err(tp_err(format!(
            "`tp` {tp} exceeds the {devices} devices of a node"
        )));
    }
    let ep_err = |n: u64, msg: String| match (o.ep, &raw.ep) {
        (Some(_), _) | (None, None) => flag_err(src, "ep", n, &msg),
        (None, Some(e)) => src.err(e, format!("{msg}{note}")),
    };
    let n = match (o.ep, &raw.ep) {
        (Some(0), _) => return Err(ep_err(0, "must be at least 1".into())),
        (Some(n), _) => n,
        (None, Some(e)) => positive(src, e, "ep")?,
        (None, None) => 1,
    };
    let experts = model.moe.map_or(0, |x| x.experts);
    if n > 1 && (tp != 1 || experts == 0 || experts % n != 0 || n > u64::from(devices)) {
        return Err(ep_err(
            n,
            format!(
                "`ep` {n} needs tp = 1, an MoE model whose {experts} experts it divides, and at most {devices} devices (tp is {tp})"
            ),
        ));
    }
    Ok((tp, n))
}

/// Prompt and output lengths: drawn from two distributions, or read from a request trace.
/// The requests: how many, their lengths and their arrivals. Arrival times from a trace allow no
/// more requests than it has rows.
fn requests(
    src: &Source,
    r: &RawRequests,
    a: &RawArrivals,
) -> Result<(u64, Lengths, Arrivals), ConfigError> {
    let count = bounded(src, &r.count, "requests.count", MAX_REQUESTS)?;
    let lengths = lengths(src, r)?;
    let arrivals = arrivals(src, a, &lengths)?;
    if let (Arrivals::Trace, Lengths::Trace(rows)) = (&arrivals, &lengths)
        && count > rows.len() as u64
    {
        return Err(src.err(
            &r.count,
            format!(
                "`requests.count` = {count} is more than the trace's {} rows, whose arrival \
                 times the run takes",
                rows.len()
            ),
        ));
    }
    Ok((count, lengths, arrivals))
}

/// Where request `index` of a run comes from when the scenario at `scenario` reads a request
/// trace (requests cycle through its rows): the trace's path and that row's line, for an error
/// found after loading (a prompt longer than the whole KV cache). `None` without a trace.
pub fn request_trace_line(scenario: &Path, index: usize) -> Option<(PathBuf, usize)> {
    let src = Source::read(scenario).ok()?;
    let table: toml::Table = src.parse().ok()?;
    let file = table.get("requests")?.get("trace")?.as_str()?;
    let p = src.relative(file);
    let rows = super::csv::lines(&p).ok()?;
    let line = rows.get(index % rows.len().max(1))?.0;
    Some((p, line))
}

fn lengths(src: &Source, r: &RawRequests) -> Result<Lengths, ConfigError> {
    Ok(match (&r.trace, &r.prompt, &r.output) {
        (Some(file), None, None) => {
            let p = src.named_file(file, "requests.trace")?;
            let rows = super::csv::lines(&p)?;
            if rows.is_empty() {
                return Err(src.err(file, "the request trace has no rows"));
            }
            let parsed: Result<Vec<_>, ConfigError> = rows
                .iter()
                .map(|(line, row)| super::csv::trace_row(&p, *line, row))
                .collect();
            Lengths::Trace(parsed?)
        }
        (None, Some(pd), Some(od)) => Lengths::Drawn {
            prompt: dist(src, pd, "requests.prompt")?,
            output: dist(src, od, "requests.output")?,
        },
        _ => {
            return Err(src.err(
                &r.count,
                "give either `prompt` and `output` distributions or a `trace` file",
            ));
        }
    })
}

/// Exactly one of closed loop, Poisson arrivals, or the trace's own arrival times.
fn arrivals(src: &Source, a: &RawArrivals, lengths: &Lengths) -> Result<Arrivals, ConfigError> {
    Ok(match (&a.closed, &a.poisson, &a.trace) {
        (Some(c), None, None) => Arrivals::Closed {
            concurrency: bounded(src, c, "arrivals.closed", MAX_REQUESTS)?,
        },
        (None, Some(rate), None) if *rate.get_ref() > 0.0 && rate.get_ref().is_finite() => {
            Arrivals::Poisson {
                rate: *rate.get_ref(),
            }
        }
        (None, Some(rate), None) => {
            return Err(src.err(
                rate,
                "`arrivals.poisson` must be a positive rate (requests/s)",
            ));
        }
        (None, None, Some(t)) if matches!(lengths, Lengths::Trace(_)) && *t.get_ref() => {
            Arrivals::Trace
        }
        _ => {
            return Err(src.whole(
                "[arrivals] needs exactly one of `closed = N`, `poisson = RATE`, or `trace = true` (with a request trace)",
            ));
        }
    })
}

fn timing(src: &Source, t: Option<&Spanned<String>>) -> Result<Timing, ConfigError> {
    t.map_or(Ok(Timing::Kernel), |t| {
        crate::names::parse_name("timing", &Timing::TABLE, t.get_ref())
            .map_err(|e| src.err(t, e.to_string()))
    })
}

/// The mapping policy (the file's or `--policy`); any but all-xPU needs PIM units.
fn policy(
    src: &Source,
    p: Option<&Spanned<String>>,
    sys: &System,
    o: &ScenarioOverrides,
) -> Result<Policy, ConfigError> {
    let needs = |policy: Policy| {
        format!(
            "policy {} needs an arch with a [pim] table ({}{} has none)",
            policy.name(),
            sys.name,
            o.arch_note()
        )
    };
    if let Some(policy) = o.policy {
        if policy != Policy::AllXpu && sys.pim.is_none() {
            return Err(flag_err(src, "policy", policy.name(), &needs(policy)));
        }
        return Ok(policy);
    }
    let Some(p) = p else {
        return Ok(Policy::AllXpu);
    };
    let policy = p
        .get_ref()
        .parse::<Policy>()
        .map_err(|e| src.err(p, e.to_string()))?;
    if policy != Policy::AllXpu && sys.pim.is_none() {
        return Err(src.err(p, needs(policy)));
    }
    Ok(policy)
}
