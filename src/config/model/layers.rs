//! Each layer's plan from a config's fields, family by family: the experts, which layers are
//! MoE, each layer's attention kind, latent attention, the router and the experts' weight type.

use serde_json::Value;

use super::doc::Doc;
use crate::config::error::ConfigError;
use crate::model::{
    Attention, Ffn, GroupLimit, LayerPlan, Mla, Moe, Router, SharedExpert, Variant,
};
use crate::work::Dtype;

/// Families whose attention normalizes each query and key head (RMSNorm) before RoPE.
const QK_NORM_TYPES: &[&str] = &["qwen3", "qwen3_moe", "olmoe"];

/// Families whose `sliding_window` is off unless `use_sliding_window` is true, and then applies
/// from layer `max_window_layers` on (HuggingFace's Qwen2 config).
const QWEN_TYPES: &[&str] = &["qwen2", "qwen3", "qwen2_moe", "qwen3_moe"];

/// Families whose router leaves the chosen experts' weights as scored unless the config sets
/// `norm_topk_prob` (HuggingFace's defaults; Llama-4 scales its one expert by a sigmoid).
const NO_RENORM_TYPES: &[&str] = &[
    "qwen2_moe",
    "qwen3_moe",
    "olmoe",
    "deepseek_v2",
    "llama4_text",
];

/// The experts, when the model has them (a Mixtral, Qwen-MoE, OLMoE, DeepSeek, Phi-MoE,
/// gpt-oss or Llama-4 config must): Mixtral's `num_local_experts` or Qwen's and OLMoE's
/// `num_experts`, each of `moe_intermediate_size` where given (fine-grained experts) or
/// `intermediate_size`, Qwen2-MoE's gated shared expert of `shared_expert_intermediate_size`,
/// DeepSeek's `n_shared_experts`, and Llama-4's one shared expert of `intermediate_size`.
pub(super) fn moe(
    doc: &Doc,
    model_type: &str,
    intermediate: u64,
) -> Result<Option<Moe>, ConfigError> {
    let mut experts = None;
    for key in ["num_local_experts", "num_experts", "n_routed_experts"] {
        experts = experts.or(doc.opt_uint(key)?);
    }
    let must = matches!(
        model_type,
        "mixtral"
            | "qwen2_moe"
            | "qwen3_moe"
            | "olmoe"
            | "deepseek_v2"
            | "deepseek_v3"
            | "phimoe"
            | "gpt_oss"
            | "llama4_text"
    );
    let Some(experts) = experts else {
        if !must {
            return Ok(None);
        }
        let key = match model_type {
            "mixtral" | "phimoe" | "gpt_oss" | "llama4_text" => "num_local_experts",
            "deepseek_v2" | "deepseek_v3" => "n_routed_experts",
            _ => "num_experts",
        };
        return Err(ConfigError::file(
            doc.path,
            format!("missing field `{key}`"),
        ));
    };
    let inner = doc
        .opt_uint("moe_intermediate_size")?
        .unwrap_or(intermediate);
    // DeepSeek's `n_shared_experts` act as one FFN of their summed width.
    let shared = match doc.opt_uint("shared_expert_intermediate_size")? {
        Some(intermediate) => Some(SharedExpert {
            intermediate,
            sigmoid_gate: true,
        }),
        None if model_type == "llama4_text" => Some(SharedExpert {
            intermediate,
            sigmoid_gate: false,
        }),
        None => doc.opt_uint("n_shared_experts")?.map(|n| SharedExpert {
            intermediate: n * inner,
            sigmoid_gate: false,
        }),
    };
    // gpt-oss's original field name for top-k is `experts_per_token`.
    let top_k = match doc.opt_uint("num_experts_per_tok")? {
        Some(k) => k,
        None => doc.uint(if model_type == "gpt_oss" {
            "experts_per_token"
        } else {
            "num_experts_per_tok"
        })?,
    };
    Ok(Some(Moe {
        experts,
        top_k,
        intermediate: inner,
        shared,
    }))
}

/// What every layer's plan is built from: the family, the layer count, the dense FFN's inner
/// size, whether the model has experts, and the routed experts' weight type.
pub(super) struct Shape<'a> {
    /// The `model_type` (a nested text model's, for Llama-4).
    pub(super) model_type: &'a str,
    /// Decoder layers.
    pub(super) layers: u32,
    /// Inner size of the dense layers' FFN.
    pub(super) intermediate: u64,
    /// Whether the model has experts.
    pub(super) has_moe: bool,
    /// The routed experts' weight type under a `quantization_config`, when it differs.
    pub(super) expert_weights: Option<Dtype>,
}

/// Each layer's plan. Attention: `sliding_window` in every layer (Mistral, Mixtral; null when
/// off), or for Qwen from layer `max_window_layers` on when `use_sliding_window` is true
/// (REFERENCE.md §Model configs), or layer by layer (`layer_types`, Gemma-2's alternation,
/// Llama-4's chunks); QK-norm for Qwen3, OLMoE and Llama-4's RoPE layers (`use_qk_norm`);
/// latent attention where `kv_lora_rank` is set (DeepSeek); sinks for gpt-oss. FFN: with
/// experts, layer `l` is MoE unless it is in Qwen's `mlp_only_layers`, and when `(l + 1)` is
/// a multiple of Qwen's `decoder_sparse_step`, Llama-4's `interleave_moe_layer_step` or dyad's
/// `moe_layer_period` (GLaM: 2); for DeepSeek, when `l` is at least `first_k_dense_replace`
/// and a multiple of `moe_layer_freq`. Other layers are dense of `intermediate`.
pub(super) fn plans(doc: &Doc, s: &Shape) -> Result<Vec<LayerPlan>, ConfigError> {
    let (model_type, layers) = (s.model_type, s.layers);
    let kinds = attention_kinds(doc, model_type, layers)?;
    let mut step = 1;
    for key in [
        "decoder_sparse_step",
        "interleave_moe_layer_step",
        "moe_layer_period",
    ] {
        if let Some(n) = doc.opt_uint(key)? {
            step = n;
            break;
        }
    }
    let dense_only = doc.uint_list("mlp_only_layers")?;
    let qk_norm = QK_NORM_TYPES.contains(&model_type)
        || (model_type == "llama4_text" && doc.flag("use_qk_norm", true)?);
    let mla = mla(doc)?;
    let first_dense = doc.opt_count("first_k_dense_replace")?;
    let freq = doc.opt_uint("moe_layer_freq")?.unwrap_or(1);
    let router = router(doc, model_type)?;
    Ok((0..layers)
        .map(|l| {
            let l64 = u64::from(l);
            let moe = s.has_moe
                && match first_dense {
                    Some(k) => l64 >= k && l64 % freq == 0,
                    None => (l64 + 1) % step == 0 && !dense_only.contains(&l64),
                };
            let attention = kinds[l as usize];
            LayerPlan {
                mla,
                attention,
                // Llama-4 normalizes queries and keys in its RoPE (chunked) layers only.
                qk_norm: qk_norm
                    && (model_type != "llama4_text"
                        || matches!(attention, Attention::Chunk { .. })),
                post_norms: model_type == "gemma2",
                sinks: model_type == "gpt_oss",
                ffn: if moe {
                    Ffn::Moe
                } else {
                    Ffn::Dense {
                        intermediate: s.intermediate,
                    }
                },
                expert_weights: if moe { s.expert_weights } else { None },
                router,
                variant: Variant::default(),
                knobs: Default::default(),
            }
        })
        .collect())
}

/// The router: `norm_topk_prob` (a family default where absent) and DeepSeek-V3's group-limited
/// routing, `n_group` groups of which `topk_group` are kept, when `n_group` is above 1.
fn router(doc: &Doc, model_type: &str) -> Result<Router, ConfigError> {
    let norm_topk = doc.flag("norm_topk_prob", !NO_RENORM_TYPES.contains(&model_type))?;
    let groups = match (doc.opt_uint("n_group")?, doc.opt_uint("topk_group")?) {
        (Some(groups), Some(top_groups)) if groups > 1 => Some(GroupLimit { groups, top_groups }),
        (Some(g), None) if g > 1 => {
            return Err(doc.err("n_group", "`n_group` is set and `topk_group` is not"));
        }
        _ => None,
    };
    Ok(Router { norm_topk, groups })
}

/// Each layer's attention kind.
fn attention_kinds(
    doc: &Doc,
    model_type: &str,
    layers: u32,
) -> Result<Vec<Attention>, ConfigError> {
    if let Some(chunk) = doc.opt_uint("attention_chunk_size")? {
        return chunked(doc, chunk, layers);
    }
    let qwen = QWEN_TYPES.contains(&model_type);
    let types = attention_types(doc, model_type, layers)?;
    let (window, from) = match doc.flag("use_sliding_window", !qwen)? {
        true if qwen => (
            doc.opt_uint("sliding_window")?,
            doc.opt_uint("max_window_layers")?.unwrap_or(0),
        ),
        true => (doc.opt_uint("sliding_window")?, 0),
        false => (None, 0),
    };
    Ok((0..layers)
        .map(|l| match (window, &types) {
            (Some(tokens), Some(t)) if t[l as usize] => Attention::Window { tokens },
            (Some(tokens), None) if u64::from(l) >= from => Attention::Window { tokens },
            _ => Attention::Full,
        })
        .collect())
}

/// Llama-4's layers: chunked local attention over `chunk` positions in its RoPE layers, full
/// attention without RoPE in the others. `no_rope_layers` lists 1 (RoPE, chunked) or 0 per
/// layer; empty or absent, every `no_rope_layer_interval`-th layer (default 4, as
/// HuggingFace's Llama4TextConfig) is the full one. `layer_types` (`"chunked_attention"` or
/// `"full_attention"`), when given, says it directly.
fn chunked(doc: &Doc, chunk: u64, layers: u32) -> Result<Vec<Attention>, ConfigError> {
    let n = layers as usize;
    let rope: Vec<bool> = if let Some(Value::Array(a)) = doc.obj.get("layer_types") {
        let kinds = layer_list(doc, "layer_types", a, n, |v| match v.as_str() {
            Some("chunked_attention") => Some(true),
            Some("full_attention") => Some(false),
            _ => None,
        })?;
        kinds.into_iter().collect()
    } else {
        match doc.obj.get("no_rope_layers") {
            Some(Value::Array(a)) if !a.is_empty() => {
                layer_list(doc, "no_rope_layers", a, n, |v| match v.as_u64() {
                    Some(1) => Some(true),
                    Some(0) => Some(false),
                    _ => None,
                })?
            }
            _ => {
                let every = doc.opt_uint("no_rope_layer_interval")?.unwrap_or(4);
                (0..n as u64).map(|l| (l + 1) % every != 0).collect()
            }
        }
    };
    Ok(rope
        .into_iter()
        .map(|r| {
            if r {
                Attention::Chunk { tokens: chunk }
            } else {
                Attention::Full
            }
        })
        .collect())
}

/// A per-layer list `a` of `key`, `layers` long, each entry read by `read`.
fn layer_list(
    doc: &Doc,
    key: &str,
    a: &[Value],
    layers: usize,
    read: impl Fn(&Value) -> Option<bool>,
) -> Result<Vec<bool>, ConfigError> {
    if a.len() != layers {
        return Err(doc.err(
            key,
            format!("`{key}` lists {} layers; the model has {layers}", a.len()),
        ));
    }
    a.iter()
        .map(|v| {
            read(v).ok_or_else(|| doc.err(key, format!("`{key}` has an entry it cannot read: {v}")))
        })
        .collect()
}

/// Which layers slide, when the config says layer by layer: `layer_types` (`"sliding_attention"`
/// or `"full_attention"` per layer: gpt-oss, newer transformers), `sliding_window_pattern` N
/// (every N-th layer full, the others sliding: Gemma-3), or Gemma-2's alternation (even layers
/// sliding). `None`: the window, if any, applies to every layer.
fn attention_types(
    doc: &Doc,
    model_type: &str,
    layers: u32,
) -> Result<Option<Vec<bool>>, ConfigError> {
    if let Some(Value::Array(a)) = doc.obj.get("layer_types") {
        return layer_list(doc, "layer_types", a, layers as usize, |v| {
            match v.as_str() {
                Some("sliding_attention") => Some(true),
                Some("full_attention") => Some(false),
                _ => None,
            }
        })
        .map(Some);
    }
    if let Some(n) = doc.opt_uint("sliding_window_pattern")? {
        return Ok(Some(
            (0..u64::from(layers)).map(|l| (l + 1) % n != 0).collect(),
        ));
    }
    Ok((model_type == "gemma2").then(|| (0..layers).map(|l| l % 2 == 0).collect()))
}

/// Latent attention, where `kv_lora_rank` is set: its four sizes are then required, and
/// `q_lora_rank` is optional (null in DeepSeek-V2-Lite: a full query projection).
fn mla(doc: &Doc) -> Result<Option<Mla>, ConfigError> {
    let Some(latent) = doc.opt_uint("kv_lora_rank")? else {
        return Ok(None);
    };
    Ok(Some(Mla {
        q_lora: doc.opt_uint("q_lora_rank")?,
        latent,
        nope: doc.uint("qk_nope_head_dim")?,
        rope: doc.uint("qk_rope_head_dim")?,
        v: doc.uint("v_head_dim")?,
    }))
}
