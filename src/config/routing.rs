//! A scenario's `[routing]` table: uniform, Zipf with a skew `s`, or a trace CSV of per-layer
//! expert probabilities; checked so that every layer can give each token `top_k` distinct
//! experts (the sampler, `sim::routing`, draws them from the mass left, so every expert it may
//! pick needs a positive, finite weight).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use crate::sim::routing::RoutingSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    mode: Spanned<String>,
    s: Option<Spanned<f64>>,
    /// CSV with columns layer, expert, probability.
    file: Option<Spanned<String>>,
}

/// What a routing is checked against: the model's routed experts, top-k and decoder layers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Experts {
    /// Routed experts per MoE layer.
    pub(super) experts: u64,
    /// Experts per token.
    pub(super) top_k: u64,
    /// Decoder layers (a trace's `layer` indexes them).
    pub(super) layers: u32,
}

/// The routing of `rt`, checked against the model's experts `m`.
pub(super) fn routing(
    src: &Source,
    rt: &RawRouting,
    m: Experts,
) -> Result<RoutingSpec, ConfigError> {
    Ok(match rt.mode.get_ref().as_str() {
        "uniform" => RoutingSpec::Uniform,
        "zipf" => {
            let s = rt
                .s
                .as_ref()
                .ok_or_else(|| src.err(&rt.mode, "zipf routing needs `s` (the skew exponent)"))?;
            let v = *s.get_ref();
            if !(v >= 0.0 && v.is_finite()) {
                return Err(src.err(s, "`routing.s` must be zero or positive"));
            }
            // Rank k's weight k^-s must stay a normal f64, or the top k cannot all be drawn.
            let k = m.top_k as f64;
            if k.powf(-v) < f64::MIN_POSITIVE {
                let most = -f64::MIN_POSITIVE.ln() / k.ln();
                return Err(src.err(
                    s,
                    format!(
                        "`routing.s` = {v} leaves rank {k} a weight of {k}^-{v}, below the \
                         smallest normal f64: top-{k} routing needs s <= {most:.1}"
                    ),
                ));
            }
            RoutingSpec::Zipf { s: v }
        }
        "trace" => {
            let f = rt
                .file
                .as_ref()
                .ok_or_else(|| src.err(&rt.mode, "trace routing needs `file`"))?;
            RoutingSpec::Trace {
                probs: trace(&src.named_file(f, "routing.file")?, m)?,
            }
        }
        other => {
            return Err(src.err(
                &rt.mode,
                format!("unknown routing mode \"{other}\" (valid: uniform, zipf, trace)"),
            ));
        }
    })
}

/// Reads a routing trace into `probs[layer][expert]`. Each row is checked at its line (a layer
/// or expert the model does not have, a probability that is negative or not finite, a pair
/// given twice), then each layer up to the last: it needs `top_k` experts of positive
/// probability and a finite sum.
fn trace(path: &Path, m: Experts) -> Result<Vec<Vec<f64>>, ConfigError> {
    let fail = |e: csv::Error| ConfigError::file(path, format!("cannot read: {e}"));
    let mut rd = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(fail)?;
    let headers = rd.headers().map_err(fail)?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            ConfigError::file(
                path,
                format!("no column `{name}` (a routing trace has layer, expert, probability)"),
            )
        })
    };
    let cols = [column("layer")?, column("expert")?, column("probability")?];
    let mut probs: Vec<Vec<f64>> = Vec::new();
    // The line of each (layer, expert) pair, and of each layer's last row.
    let mut lines: HashMap<(usize, usize), u64> = HashMap::new();
    let mut last: Vec<u64> = Vec::new();
    for r in rd.records() {
        let r = r.map_err(fail)?;
        let line = r.position().map_or(0, |p| p.line());
        let at = |msg: String| ConfigError::file(path, format!("line {line}: {msg}"));
        let text = |i: usize| r.get(cols[i]).unwrap_or("");
        let whole = |i: usize, name: &str, n: u64| {
            let v = text(i);
            v.parse::<u64>().ok().filter(|&x| x < n).ok_or_else(|| {
                at(format!(
                    "{name} \"{v}\" out of range: the model has {n} {name}s, 0 to {}",
                    n.saturating_sub(1)
                ))
            })
        };
        let layer = whole(0, "layer", u64::from(m.layers))? as usize;
        let expert = whole(1, "expert", m.experts)? as usize;
        let w: f64 = text(2)
            .parse()
            .map_err(|_| at(format!("probability \"{}\" is not a number", text(2))))?;
        if !(w >= 0.0 && w.is_finite()) {
            return Err(at(format!(
                "probability {w} must be finite and not negative"
            )));
        }
        if let Some(first) = lines.insert((layer, expert), line) {
            return Err(at(format!(
                "layer {layer}, expert {expert} again (first at line {first})"
            )));
        }
        if probs.len() <= layer {
            probs.resize(layer + 1, vec![0.0; m.experts as usize]);
            last.resize(layer + 1, 0);
        }
        probs[layer][expert] = w;
        last[layer] = line;
    }
    check_layers(path, &probs, &last, m)?;
    Ok(probs)
}

/// Every layer of a trace up to its last (`last[l]`: the line of layer l's last row, 0 for none)
/// needs `top_k` experts of positive probability and a finite sum; a trace needs a row.
fn check_layers(
    path: &Path,
    probs: &[Vec<f64>],
    last: &[u64],
    m: Experts,
) -> Result<(), ConfigError> {
    if probs.is_empty() {
        return Err(ConfigError::file(path, "the routing trace has no rows"));
    }
    for (l, p) in probs.iter().enumerate() {
        let positive = p.iter().filter(|&&w| w > 0.0).count() as u64;
        let place = match last[l] {
            0 => {
                // The next layer the trace has rows for (the trace's last layer has a row).
                let (next, line) = (l..probs.len())
                    .find_map(|n| (last[n] > 0).then(|| (n, last[n])))
                    .unwrap_or((probs.len() - 1, 0));
                format!(
                    "layer {l} has no rows (the trace goes on to layer {next}, its last row at line {line})"
                )
            }
            line => format!("layer {l} (last row at line {line})"),
        };
        if positive < m.top_k {
            return Err(ConfigError::file(
                path,
                format!(
                    "{place}: {positive} of {} experts have a positive probability; top-{} \
                     routing draws {} distinct ones per token",
                    m.experts, m.top_k, m.top_k
                ),
            ));
        }
        if !p.iter().sum::<f64>().is_finite() {
            return Err(ConfigError::file(
                path,
                format!("{place}: the probabilities sum past the largest f64"),
            ));
        }
    }
    Ok(())
}
