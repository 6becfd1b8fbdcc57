//! The per-layer variants of a model file's top-level keys (dyad's own names, sweepable as
//! `model.KEY`): MoE++'s zero-computation experts, dynamic top-p routing's k, per-layer
//! precision, and kept image tokens. Each neutral value (no zero-computation experts, k always
//! `num_experts_per_tok`, 16 bits, every image token kept) leaves the plain layer.

use serde_json::Value;

use super::doc::Doc;
use crate::config::error::ConfigError;
use crate::model::{
    Ffn, GroupScale, ImageKeep, KPmf, LayerPlan, LayerQuant, MAX_K, Moe, ZeroExperts, ppm,
};
use crate::work::Dtype;

/// The keys read here, for the TOML loader's list of valid fields.
pub(super) const KEYS: &[&str] = &[
    "moe_zero_experts",
    "moe_copy_experts",
    "moe_constant_experts",
    "moe_tau",
    "moe_k_pmf",
    "moe_k_mean",
    "weight_bits",
    "act_bits",
    "kv_bits",
    "quant_float",
    "quant_group_size",
    "quant_scale_bits",
    "image_tokens",
    "image_keep",
    "image_drop_layers",
    "image_drop_ratio",
];

/// Sets each layer's variants from `doc`'s keys.
pub(super) fn apply(
    doc: &Doc,
    plans: &mut [LayerPlan],
    moe: Option<Moe>,
) -> Result<(), ConfigError> {
    let n = plans.len();
    let zc = zero_experts(doc, moe)?;
    let k = k_pmfs(doc, n, moe)?;
    if zc.is_some() && k.is_some() {
        return Err(doc.err("moe_k_pmf", "top-p routing (`moe_k_pmf`, `moe_k_mean`) and MoE++ zero-computation experts cannot be combined"));
    }
    let quant = quants(doc, n)?;
    let image = images(doc, n)?;
    for (l, p) in plans.iter_mut().enumerate() {
        let v = &mut p.knobs;
        if p.ffn == Ffn::Moe {
            v.zc = zc;
            v.k_pmf = k.as_ref().and_then(|k| k[l]);
        }
        v.quant = quant[l];
        v.image = image[l];
    }
    Ok(())
}

/// A key set to a number, or to a list of one number per layer; `None` when absent.
fn per_layer(doc: &Doc, key: &str, layers: usize) -> Result<Option<Vec<f64>>, ConfigError> {
    let num = |v: &Value| {
        v.as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| doc.err(key, format!("`{key}` must be a non-negative number or a list of one per layer, found {v}")))
    };
    match doc.obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() == layers => {
            a.iter().map(num).collect::<Result<_, _>>().map(Some)
        }
        Some(Value::Array(a)) => Err(doc.err(
            key,
            format!(
                "`{key}` lists {} values; the model has {layers} layers",
                a.len()
            ),
        )),
        Some(v) => Ok(Some(vec![num(v)?; layers])),
    }
}

/// MoE++'s zero, copy and constant experts and τ (required with any of them); `None` with none.
fn zero_experts(doc: &Doc, moe: Option<Moe>) -> Result<Option<ZeroExperts>, ConfigError> {
    let count = |k| Ok::<_, ConfigError>(doc.opt_count(k)?.unwrap_or(0));
    let (zero, copy, constant) = (
        count("moe_zero_experts")?,
        count("moe_copy_experts")?,
        count("moe_constant_experts")?,
    );
    let tau = doc.opt_real("moe_tau")?;
    if zero + copy + constant == 0 {
        return Ok(None);
    }
    let key = [
        "moe_zero_experts",
        "moe_copy_experts",
        "moe_constant_experts",
    ]
    .into_iter()
    .find(|k| {
        doc.obj
            .get(*k)
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 0)
    })
    .unwrap_or("moe_zero_experts");
    if moe.is_none() {
        return Err(doc.err(
            key,
            format!("`{key}`: zero-computation experts need an MoE model"),
        ));
    }
    let Some(tau) = tau else {
        return Err(doc.err(key, "zero-computation experts need `moe_tau`, the weight of the FFN experts in routing (MoE++ §3: FFN share r = τ·N_FFN / (τ·N_FFN + N_ZC))"));
    };
    let small = |x: u64| u32::try_from(x).ok().filter(|&x| x <= 1 << 12);
    match (small(zero), small(copy), small(constant)) {
        (Some(zero), Some(copy), Some(constant)) if tau <= 1e3 => Ok(Some(ZeroExperts {
            zero,
            copy,
            constant,
            tau_ppm: ppm(tau),
        })),
        _ => Err(doc.err(
            key,
            "zero-computation experts: at most 4096 of each kind, and `moe_tau` at most 1000",
        )),
    }
}

/// Top-p routing's distribution of k per layer, from `moe_k_pmf` (probabilities of k = 1, 2,
/// …; one list for all layers or a list per layer) or `moe_k_mean` (a two-point distribution on
/// the integers around it); a point mass at `num_experts_per_tok` is the plain layer.
fn k_pmfs(
    doc: &Doc,
    layers: usize,
    moe: Option<Moe>,
) -> Result<Option<Vec<Option<KPmf>>>, ConfigError> {
    let pmf = doc.obj.get("moe_k_pmf").filter(|v| !v.is_null());
    let mean = per_layer(doc, "moe_k_mean", layers)?;
    let key = if pmf.is_some() {
        "moe_k_pmf"
    } else {
        "moe_k_mean"
    };
    if pmf.is_none() && mean.is_none() {
        return Ok(None);
    }
    if pmf.is_some() && mean.is_some() {
        return Err(doc.err("moe_k_pmf", "set `moe_k_pmf` or `moe_k_mean`, not both"));
    }
    let Some(m) = moe else {
        return Err(doc.err(key, format!("`{key}`: top-p routing needs an MoE model")));
    };
    let bad = || {
        doc.err(key, format!("`{key}` must give a distribution of k over 1..={} (at most the experts, {}): probabilities that are non-negative and not all zero, or a mean from 1", MAX_K, m.experts))
    };
    let list = |v: &Value| -> Result<KPmf, ConfigError> {
        let p: Option<Vec<f64>> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        let ok = p.filter(|p| Some(p.len()) == v.as_array().map(Vec::len));
        ok.and_then(|p| KPmf::from_probs(&p)).ok_or_else(bad)
    };
    let pmfs: Vec<KPmf> = match (pmf, mean) {
        (Some(Value::Array(a)), _) if a.iter().all(Value::is_array) => {
            if a.len() != layers {
                return Err(doc.err(
                    key,
                    format!(
                        "`{key}` lists {} distributions; the model has {layers} layers",
                        a.len()
                    ),
                ));
            }
            a.iter().map(list).collect::<Result<_, _>>()?
        }
        (Some(v), _) => vec![list(v)?; layers],
        (None, Some(means)) => means
            .iter()
            .map(|&x| KPmf::from_mean(x).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        (None, None) => return Ok(None),
    };
    if pmfs.iter().any(|p| p.max_k() > m.experts) {
        return Err(bad());
    }
    Ok(Some(
        pmfs.into_iter()
            .map(|p| (!p.is_point(m.top_k)).then_some(p))
            .collect(),
    ))
}

/// The element type of `bits` for a stream (`allowed` lists its widths): 16 is the run's type,
/// 8 int8 (fp8 with `quant_float`), 4 int4.
fn bits_type(
    doc: &Doc,
    key: &str,
    bits: f64,
    allowed: &[u64],
    float: bool,
) -> Result<Option<Dtype>, ConfigError> {
    let b = bits as u64;
    if b as f64 != bits || !allowed.contains(&b) {
        let list: Vec<String> = allowed.iter().map(u64::to_string).collect();
        return Err(doc.err(
            key,
            format!(
                "`{key}` = {bits}: the widths modeled are {}",
                list.join(", ")
            ),
        ));
    }
    Ok(match b {
        16 => None,
        8 if float => Some(Dtype::Fp8),
        8 => Some(Dtype::Int8),
        _ => Some(Dtype::Int4),
    })
}

/// Each layer's own precision: `weight_bits`, `act_bits`, `kv_bits` (a width or a list per
/// layer), `quant_float` (8 bits as fp8), and `quant_group_size` with `quant_scale_bits` (one
/// scale per group of quantized weights).
fn quants(doc: &Doc, layers: usize) -> Result<Vec<Option<LayerQuant>>, ConfigError> {
    let float = doc.flag("quant_float", false)?;
    let read = |key: &str, allowed: &[u64]| -> Result<Vec<Option<Dtype>>, ConfigError> {
        match per_layer(doc, key, layers)? {
            None => Ok(vec![None; layers]),
            Some(v) => v
                .iter()
                .map(|&b| bits_type(doc, key, b, allowed, float))
                .collect(),
        }
    };
    let w = read("weight_bits", &[16, 8, 4])?;
    let a = read("act_bits", &[16, 8])?;
    let kv = read("kv_bits", &[16, 8, 4])?;
    let group = doc.opt_uint("quant_group_size")?;
    let bits = doc.opt_uint("quant_scale_bits")?;
    let scales = match (group, bits) {
        (Some(g), Some(b)) if g <= 1 << 20 && b <= 64 => Some(GroupScale {
            group: g as u32,
            bits: b as u32,
        }),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(doc.err(
                "quant_group_size",
                "`quant_group_size` at most 2^20 and `quant_scale_bits` at most 64",
            ));
        }
        (Some(_), None) => return Err(doc.err(
            "quant_group_size",
            "`quant_group_size` needs `quant_scale_bits` (the bits of each group's scale, e.g. 16)",
        )),
        (None, Some(_)) => {
            return Err(doc.err(
                "quant_scale_bits",
                "`quant_scale_bits` needs `quant_group_size`",
            ));
        }
    };
    Ok((0..layers)
        .map(|l| {
            let q = LayerQuant {
                weights: w[l],
                activations: a[l],
                kv: kv[l],
                scales: scales.filter(|_| w[l].is_some()),
            };
            (q.weights.is_some() || q.activations.is_some() || q.kv.is_some()).then_some(q)
        })
        .collect())
}

/// Each layer's kept image tokens: `image_tokens` per prompt with `image_keep` (a fraction per
/// layer) or PyramidDrop's `image_drop_layers` and `image_drop_ratio` λ (from each listed layer
/// on, λ times the tokens kept before it).
fn images(doc: &Doc, layers: usize) -> Result<Vec<Option<ImageKeep>>, ConfigError> {
    let tokens = doc.opt_count("image_tokens")?;
    let keep = per_layer(doc, "image_keep", layers)?;
    let drops = doc.uint_list("image_drop_layers")?;
    let ratio = doc.opt_real("image_drop_ratio")?;
    let set = keep.is_some() || !drops.is_empty() || ratio.is_some();
    let Some(tokens) = tokens else {
        return match set {
            true => Err(doc.err(
                "image_keep",
                "kept image tokens need `image_tokens`, the image tokens per prompt",
            )),
            false => Ok(vec![None; layers]),
        };
    };
    let keep: Vec<f64> = match (keep, ratio) {
        (Some(_), Some(_)) => return Err(doc.err("image_keep", "set `image_keep` or `image_drop_layers` with `image_drop_ratio`, not both")),
        (Some(k), None) if drops.is_empty() => k,
        (None, Some(r)) if r <= 1.0 && drops.iter().all(|&d| d < layers as u64) => {
            (0..layers as u64).map(|l| r.powi(drops.iter().filter(|&&d| d <= l).count() as i32)).collect()
        }
        (None, None) if drops.is_empty() => vec![1.0; layers],
        _ => return Err(doc.err(if ratio.is_some() { "image_drop_ratio" } else { "image_drop_layers" }, "`image_drop_layers` (layer indices below the layer count) and `image_drop_ratio` (in (0, 1]) go together")),
    };
    if keep.iter().any(|&k| k <= 0.0 || k > 1.0) {
        return Err(doc.err("image_keep", "`image_keep` fractions must be in (0, 1]"));
    }
    Ok(keep
        .into_iter()
        .map(|k| {
            let keep_ppm = ppm(k);
            (tokens > 0 && u64::from(keep_ppm) < crate::model::PPM)
                .then_some(ImageKeep { tokens, keep_ppm })
        })
        .collect())
}
