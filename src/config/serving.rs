//! Serving scenario TOML: model, arch, parallelism, request mix, arrivals, batching, routing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::arch::load_arch_with;
use super::arch::{parse_toml, read_source};
use super::error::ConfigError;
use super::load_model;
use crate::hw::Timing;
use crate::map::{Policy, UnknownPolicy};
use crate::model::Precision;
use crate::sim::routing::RoutingSpec;
use crate::sim::serving::Scenario;
use crate::sim::workload::{Arrivals, LengthDist, Lengths};
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
    /// Mapping policy: all-xpu (default), dispatch, duplex.
    policy: Option<Spanned<String>>,
    precision: RawPrecision,
    requests: RawRequests,
    arrivals: RawArrivals,
    batching: RawBatching,
    routing: Option<RawRouting>,
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
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawDist {
    Fixed(u64),
    Uniform([u64; 2]),
    Normal {
        mean: f64,
        std: f64,
        min: u64,
        max: u64,
    },
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    mode: Spanned<String>,
    s: Option<Spanned<f64>>,
    /// CSV with columns layer, expert, probability.
    file: Option<Spanned<String>>,
}

struct Ctx<'a> {
    path: &'a Path,
    text: Arc<str>,
}

impl Ctx<'_> {
    fn err<T>(&self, at: &Spanned<T>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, &self.text, at.span(), msg)
    }

    fn positive(&self, v: &Spanned<u64>, key: &str) -> Result<u64, ConfigError> {
        match *v.get_ref() {
            0 => Err(self.err(v, format!("`{key}` must be at least 1"))),
            n => Ok(n),
        }
    }

    fn dtype(&self, v: &Spanned<String>) -> Result<Dtype, ConfigError> {
        v.get_ref().parse().map_err(|e: String| self.err(v, e))
    }

    fn relative(&self, v: &Spanned<String>) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new(""))
            .join(v.get_ref())
    }

    fn dist(&self, d: &Spanned<RawDist>, key: &str) -> Result<LengthDist, ConfigError> {
        Ok(match *d.get_ref() {
            RawDist::Fixed(0) => {
                return Err(self.err(d, format!("`{key}`: a length must be at least 1")));
            }
            RawDist::Fixed(n) => LengthDist::Fixed(n),
            RawDist::Uniform([min, max]) if min == 0 || min > max => {
                return Err(self.err(d, format!("`{key}`: uniform needs 1 <= min <= max")));
            }
            RawDist::Uniform([min, max]) => LengthDist::Uniform { min, max },
            RawDist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                if !(std >= 0.0 && mean.is_finite() && min >= 1 && min <= max) {
                    return Err(self.err(
                        d,
                        format!("`{key}`: normal needs std >= 0 and 1 <= min <= max"),
                    ));
                }
                LengthDist::Normal {
                    mean,
                    std,
                    min,
                    max,
                }
            }
        })
    }
}

/// Rows of a headed CSV file (lines starting with `#` are comments), as maps from column name
/// to value; errors name the file.
pub(crate) fn csv_rows(
    path: &Path,
) -> Result<Vec<std::collections::HashMap<String, String>>, ConfigError> {
    let fail = |e: csv::Error| ConfigError::file(path, format!("cannot read: {e}"));
    let mut rd = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(fail)?;
    let headers = rd.headers().map_err(fail)?.clone();
    rd.records()
        .map(|r| {
            let r = r.map_err(fail)?;
            Ok(headers
                .iter()
                .map(String::from)
                .zip(r.iter().map(String::from))
                .collect())
        })
        .collect()
}

fn field<T: std::str::FromStr>(
    path: &Path,
    line: usize,
    row: &std::collections::HashMap<String, String>,
    col: &str,
) -> Result<T, ConfigError> {
    let v = row
        .get(col)
        .ok_or_else(|| ConfigError::file(path, format!("no column `{col}`")))?;
    v.trim().parse().map_err(|_| {
        ConfigError::file(
            path,
            format!("line {line}: column `{col}`: cannot read \"{v}\""),
        )
    })
}

/// Loads a serving scenario; `arch` and `model` paths are relative to the scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, ConfigError> {
    load_scenario_with(path, read_source(path)?, None)
}

/// The arch file a scenario names, resolved against the scenario's folder.
pub fn scenario_arch_path(path: &Path, text: &Arc<str>) -> Result<PathBuf, ConfigError> {
    let raw: RawScenario = parse_toml(path, text)?;
    Ok(Ctx {
        path,
        text: text.clone(),
    }
    .relative(&raw.arch))
}

/// Loads a scenario from `text` (an edited copy of the file at `path`; relative paths still
/// resolve from `path`), with the arch's top file read from `arch_text` when given.
pub fn load_scenario_with(
    path: &Path,
    text: Arc<str>,
    arch_text: Option<Arc<str>>,
) -> Result<Scenario, ConfigError> {
    let raw: RawScenario = parse_toml(path, &text)?;
    let cx = Ctx { path, text };
    let sys = load_arch_with(&cx.relative(&raw.arch), arch_text)?;
    let model = load_model(&cx.relative(&raw.model))?;
    let tp = cx.positive(&raw.tp, "tp")?;
    model
        .check_tp(tp)
        .map_err(|e| cx.err(&raw.tp, e.to_string()))?;
    if tp > u64::from(sys.devices()) {
        return Err(cx.err(
            &raw.tp,
            format!("`tp` {tp} exceeds the {} devices of a node", sys.devices()),
        ));
    }
    let ep = match &raw.ep {
        None => 1,
        Some(e) => {
            let n = cx.positive(e, "ep")?;
            let experts = model.moe.map_or(0, |x| x.experts);
            if n > 1
                && (tp != 1 || experts == 0 || experts % n != 0 || n > u64::from(sys.devices()))
            {
                return Err(cx.err(
                    e,
                    format!("`ep` {n} needs tp = 1, an MoE model whose {experts} experts it divides, and at most {} devices", sys.devices()),
                ));
            }
            n
        }
    };
    let precision = Precision {
        weights: cx.dtype(&raw.precision.weights)?,
        activations: cx.dtype(&raw.precision.activations)?,
        kv: cx.dtype(&raw.precision.kv)?,
    };
    let r = &raw.requests;
    let count = cx.positive(&r.count, "requests.count")?;
    let lengths = match (&r.trace, &r.prompt, &r.output) {
        (Some(file), None, None) => {
            let p = cx.relative(file);
            let rows = csv_rows(&p)?;
            if rows.is_empty() {
                return Err(cx.err(file, "the request trace has no rows"));
            }
            let parsed: Result<Vec<_>, ConfigError> = rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let arrival = match row.get("arrival_s") {
                        Some(_) => Some(field::<f64>(&p, i + 2, row, "arrival_s")?),
                        None => None,
                    };
                    Ok((
                        field(&p, i + 2, row, "prompt_len")?,
                        field(&p, i + 2, row, "output_len")?,
                        arrival,
                    ))
                })
                .collect();
            Lengths::Trace(parsed?)
        }
        (None, Some(pd), Some(od)) => Lengths::Drawn {
            prompt: cx.dist(pd, "requests.prompt")?,
            output: cx.dist(od, "requests.output")?,
        },
        _ => {
            return Err(cx.err(
                &r.count,
                "give either `prompt` and `output` distributions or a `trace` file",
            ));
        }
    };
    let a = &raw.arrivals;
    let arrivals = match (&a.closed, &a.poisson, &a.trace) {
        (Some(c), None, None) => Arrivals::Closed {
            concurrency: cx.positive(c, "arrivals.closed")?,
        },
        (None, Some(rate), None) if *rate.get_ref() > 0.0 && rate.get_ref().is_finite() => {
            Arrivals::Poisson {
                rate: *rate.get_ref(),
            }
        }
        (None, Some(rate), None) => {
            return Err(cx.err(
                rate,
                "`arrivals.poisson` must be a positive rate (requests/s)",
            ));
        }
        (None, None, Some(t)) if matches!(lengths, Lengths::Trace(_)) && *t.get_ref() => {
            Arrivals::Trace
        }
        _ => {
            return Err(ConfigError::file(
                path,
                "[arrivals] needs exactly one of `closed = N`, `poisson = RATE`, or `trace = true` (with a request trace)",
            ));
        }
    };
    let b = &raw.batching;
    let util = *b.memory_utilization.get_ref();
    if !(util > 0.0 && util <= 1.0) {
        return Err(cx.err(
            &b.memory_utilization,
            "`batching.memory_utilization` must be in (0, 1]",
        ));
    }
    let routing = match &raw.routing {
        None | Some(RawRouting { .. }) if model.moe.is_none() => RoutingSpec::Uniform,
        None => {
            return Err(ConfigError::file(
                path,
                "a mixture-of-experts model needs a [routing] table",
            )
            .with_help(
                "mode = \"uniform\" (balanced), \"zipf\" (with s), or \"trace\" (with file)",
            ));
        }
        Some(rt) => routing(
            &cx,
            rt,
            model.moe.map_or(0, |m| m.experts),
            model.moe.map_or(0, |m| m.top_k),
        )?,
    };
    let timing = match &raw.timing {
        None => Timing::Kernel,
        Some(t) => match t.get_ref().as_str() {
            "kernel" => Timing::Kernel,
            "host" => Timing::Host,
            other => {
                return Err(cx.err(
                    t,
                    format!("unknown timing \"{other}\" (valid: kernel, host)"),
                ));
            }
        },
    };
    let policy = match &raw.policy {
        None => Policy::AllXpu,
        Some(p) => {
            let policy: Policy = p
                .get_ref()
                .parse()
                .map_err(|e: UnknownPolicy| cx.err(p, e.to_string()))?;
            if policy != Policy::AllXpu && sys.pim.is_none() {
                return Err(cx.err(
                    p,
                    format!("policy {} needs an arch with a [pim] table", policy.name()),
                ));
            }
            policy
        }
    };
    Ok(Scenario {
        policy,
        name: raw.name.unwrap_or_else(|| {
            path.file_stem()
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
        max_batch: cx.positive(&b.max_batch, "batching.max_batch")?,
        max_tokens: cx.positive(&b.max_tokens, "batching.max_tokens")?,
        kv_block: cx.positive(&b.kv_block, "batching.kv_block")?,
        memory_utilization: util,
        routing,
        seed: raw.seed.unwrap_or(0),
        timing,
    })
}

fn routing(
    cx: &Ctx,
    rt: &RawRouting,
    experts: u64,
    top_k: u64,
) -> Result<RoutingSpec, ConfigError> {
    Ok(match rt.mode.get_ref().as_str() {
        "uniform" => RoutingSpec::Uniform,
        "zipf" => {
            let s = rt
                .s
                .as_ref()
                .ok_or_else(|| cx.err(&rt.mode, "zipf routing needs `s` (the skew exponent)"))?;
            if !(*s.get_ref() >= 0.0 && s.get_ref().is_finite()) {
                return Err(cx.err(s, "`routing.s` must be zero or positive"));
            }
            RoutingSpec::Zipf { s: *s.get_ref() }
        }
        "trace" => {
            let f = rt
                .file
                .as_ref()
                .ok_or_else(|| cx.err(&rt.mode, "trace routing needs `file`"))?;
            let p = cx.relative(f);
            let mut probs: Vec<Vec<f64>> = Vec::new();
            for (i, row) in csv_rows(&p)?.iter().enumerate() {
                let (l, e, w): (usize, usize, f64) = (
                    field(&p, i + 2, row, "layer")?,
                    field(&p, i + 2, row, "expert")?,
                    field(&p, i + 2, row, "probability")?,
                );
                if e as u64 >= experts || !(w >= 0.0 && w.is_finite()) {
                    return Err(ConfigError::file(
                        &p,
                        format!("line {}: expert {e} or probability {w} out of range", i + 2),
                    ));
                }
                if probs.len() <= l {
                    probs.resize(l + 1, vec![0.0; experts as usize]);
                }
                probs[l][e] = w;
            }
            // Each token picks top-k distinct experts: every layer needs that many possible ones.
            let possible = |p: &Vec<f64>| p.iter().filter(|&&w| w > 0.0).count() as u64;
            if probs.is_empty() || probs.iter().any(|p| possible(p) < top_k) {
                return Err(cx.err(
                    f,
                    format!("every layer of the routing trace needs at least {top_k} experts (top-k) with a positive probability"),
                ));
            }
            RoutingSpec::Trace { probs }
        }
        other => {
            return Err(cx.err(
                &rt.mode,
                format!("unknown routing mode \"{other}\" (valid: uniform, zipf, trace)"),
            ));
        }
    })
}
