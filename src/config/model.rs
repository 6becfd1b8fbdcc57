//! Model configs: a HuggingFace `config.json`, or a TOML file with the same field names.

mod doc;
mod knobs;
mod layers;
mod overlay;
mod variants;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::presets;
use super::source::Source;
use crate::model::{Activation, ModelSpec};
use crate::work::Dtype;
use doc::Doc;

/// `model_type` values whose layers dyad builds.
const SUPPORTED_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "opt",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "olmoe",
    "deepseek_v2",
    "deepseek_v3",
    "gemma2",
    "phimoe",
    "gpt_oss",
    "llama4",
    "llama4_text",
];

/// Fields that change cost in a way dyad does not model, checked before anything else and
/// named all at once.
const UNMODELED_FIELDS: &[(&str, &str)] = &[
    (
        "linear_num_value_heads",
        "linear (gated DeltaNet) attention layers",
    ),
    (
        "full_attention_interval",
        "hybrid linear/full attention layers",
    ),
    (
        "hybrid_override_pattern",
        "Mamba layers among attention layers",
    ),
    ("attn_type_list", "lightning attention layers"),
    ("kv_sharing_layer_map", "KV caches shared across layers"),
];

/// The fields a dyad model TOML may set: the HuggingFace names dyad reads, plus `name` and
/// `source`.
const TOML_FIELDS: &[&str] = &[
    "name",
    "source",
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "num_local_experts",
    "num_experts_per_tok",
    "torch_dtype",
    "dtype",
    "tie_word_embeddings",
    "ffn_dim",
    "activation_function",
    "ffn_gated",
    "moe_layer_period",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "num_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "decoder_sparse_step",
    "mlp_only_layers",
    "n_routed_experts",
    "n_shared_experts",
    "first_k_dense_replace",
    "moe_layer_freq",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "layer_types",
    "sliding_window_pattern",
    "num_nextn_predict_layers",
    "final_logit_softcapping",
    "attn_logit_softcapping",
    "norm_topk_prob",
    "n_group",
    "topk_group",
    "attention_chunk_size",
    "no_rope_layers",
    "no_rope_layer_interval",
    "interleave_moe_layer_step",
    "intermediate_size_mlp",
    "use_qk_norm",
    "experts_per_token",
];

/// Most layers a model may have: 8× Llama-3.1-405B's 126.
const MAX_LAYERS: u64 = 1024;

/// `num_hidden_layers`, bounded before a plan is built for each layer.
fn layer_count(doc: &Doc) -> Result<u32, ConfigError> {
    match doc.uint("num_hidden_layers")? {
        n @ 1..=MAX_LAYERS => Ok(n as u32),
        n => {
            let msg = format!("`num_hidden_layers` = {n} is more than {MAX_LAYERS}");
            Err(doc.err("num_hidden_layers", msg))
        }
    }
}

/// The FFN's activation (the first of `keys` set; absent, [`Activation::default_for`]).
fn activation(doc: &Doc, is_opt: bool) -> Result<Activation, ConfigError> {
    let keys = ["hidden_activation", "hidden_act", "activation_function"];
    let Some(key) = keys.into_iter().find(|k| doc.obj.contains_key(*k)) else {
        return Ok(Activation::default_for(is_opt));
    };
    let name = doc.str_field(key)?.unwrap_or_default();
    let msg = format!("not yet supported: `{key}` = \"{name}\" (dyad models silu, gelu and relu)");
    Activation::from_name(name).ok_or_else(|| doc.err(key, msg))
}

/// Loads a model from a HuggingFace `config.json`, a dyad model TOML, or a built-in name
/// (`mixtral-8x7b`).
pub fn load_model(path: &Path) -> Result<ModelSpec, ConfigError> {
    let path = presets::resolve_model(path);
    model_from(&path, Source::read(&path)?)
}

/// Loads a model from `text`, an edited copy of the file at `path` (as a sweep point over
/// `model.KEY` makes); `path`'s extension says whether it is JSON or TOML.
pub fn load_model_text(path: &Path, text: Arc<str>) -> Result<ModelSpec, ConfigError> {
    let path = presets::resolve_model(path);
    model_from(&path, Source::new(&path, text))
}

/// The fields of the model file at `path` (a built-in name too) as a JSON object, a TOML model
/// converted: what a sweep's `model.KEY` axis edits.
pub fn model_fields(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let path = presets::resolve_model(path);
    fields_of(&path, &*Source::read(&path)?)
}

/// Whether the model file at `path` is a dyad TOML model (else a config.json).
pub(crate) fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

/// The fields of `src`, the model file at `path`, as a JSON object.
fn fields_of(path: &Path, src: &Source) -> Result<Map<String, Value>, ConfigError> {
    let text = src.text();
    if is_toml(path) {
        let table: toml::Table = src.parse()?;
        match serde_json::to_value(table) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(ConfigError::file(path, "expected a table of model fields")),
        }
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ConfigError::file(path, "expected a JSON object")),
            Err(e) => {
                let at = offset_of(text, e.line(), e.column());
                Err(src.at(at..at, format!("invalid JSON: {e}")))
            }
        }
    }
}

/// The model at `path` (its text `src`): its fields over those of the files it `extends`.
fn model_from(path: &Path, src: Arc<Source>) -> Result<ModelSpec, ConfigError> {
    let (files, obj) = overlay::chain(path, src)?;
    let doc = Doc {
        files: &files,
        path,
        obj,
    };
    resolve(&doc)
}

fn resolve(top: &Doc) -> Result<ModelSpec, ConfigError> {
    unmodeled(top)?;
    let nested = top.text_model()?;
    let doc = nested.as_ref().unwrap_or(top);
    let model_type = model_type(doc)?;
    let hidden = doc.uint("hidden_size")?;
    let heads = doc.uint("num_attention_heads")?;
    // HuggingFace's own defaults: MHA when `num_key_value_heads` is absent, head_dim = hidden / heads.
    let kv_heads = doc.opt_uint("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = doc.opt_uint("head_dim")?.unwrap_or(hidden / heads);
    // OPT names its FFN size `ffn_dim`, uses a two-matrix ReLU FFN and ties the LM head to the
    // embedding (HuggingFace's OPTConfig defaults). Llama-4's dense layers are
    // `intermediate_size_mlp` wide, its experts `intermediate_size`.
    let is_opt = model_type == "opt";
    if is_opt
        && doc
            .opt_uint("word_embed_proj_dim")?
            .is_some_and(|p| p != hidden)
    {
        return Err(doc.err(
            "word_embed_proj_dim",
            "not yet supported: word_embed_proj_dim (an embedding projection)",
        ));
    }
    let intermediate = doc.uint(if is_opt {
        "ffn_dim"
    } else {
        "intermediate_size"
    })?;
    let dense = match model_type {
        "llama4_text" => doc.uint("intermediate_size_mlp")?,
        _ => intermediate,
    };
    let gated = doc.flag("ffn_gated", !is_opt)?;
    let act = activation(doc, is_opt)?;
    let moe = layers::moe(doc, model_type, intermediate)?;
    let layer_count = layer_count(doc)?;
    let quant = quantization(doc)?;
    let shape = layers::Shape {
        model_type,
        layers: layer_count,
        intermediate: dense,
        has_moe: moe.is_some(),
        expert_weights: quant.experts,
    };
    let mut plans = layers::plans(doc, &shape)?;
    variants::apply(doc, &mut plans, (heads, head_dim))?;
    knobs::apply(doc, &mut plans, moe)?;
    let dtype = dtype(doc, model_type)?;
    // OPT and Gemma tie the LM head to the embedding unless told otherwise (HuggingFace's
    // defaults).
    let tie = doc.flag("tie_word_embeddings", is_opt || model_type == "gemma2")?;
    // Gemma-2 caps attention scores and logits with c · tanh(x / c). The score cap runs inside
    // the attention kernel, on the scores whose softmax dyad does not charge either; the logit
    // cap is an op of its own.
    let softcap = doc.opt_real("final_logit_softcapping")?.is_some();
    doc.opt_real("attn_logit_softcapping")?;
    let spec = ModelSpec {
        name: name(top)?,
        hidden,
        plans,
        heads,
        kv_heads,
        head_dim,
        vocab: doc.uint("vocab_size")?,
        moe,
        ffn_gated: gated,
        act,
        dtype,
        tie_embeddings: tie,
        quantized: quant.all,
        notes: notes(doc, model_type)?,
        logit_softcap: softcap,
    };
    spec.validate().map_err(|e| shape_error(doc, &e))?;
    Ok(spec)
}

/// A shape error at the line of the first key it names that the file writes: OPT writes its FFN
/// size as `ffn_dim`, Llama-4 its dense layers' as `intermediate_size_mlp`.
fn shape_error(doc: &Doc, e: &crate::model::ModelError) -> ConfigError {
    let aliases = |k: &'static str| match k {
        "intermediate_size" => vec![k, "ffn_dim", "intermediate_size_mlp"],
        _ => vec![k],
    };
    let keys = e.keys().into_iter().flat_map(aliases);
    doc.err(
        keys.into_iter().find(|k| doc.writes(k)).unwrap_or(""),
        e.to_string(),
    )
}

/// The model's name: a TOML's `name`, else the file's stem.
fn name(doc: &Doc) -> Result<String, ConfigError> {
    Ok(match doc.str_field("name")? {
        Some(n) => n.to_string(),
        None => doc
            .path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
    })
}

/// Every field of `doc` (or of its nested text model) that changes cost in a way dyad does not
/// model, and a `quantization_config` whose method it does not model, named in one error at
/// the first one's place.
fn unmodeled(doc: &Doc) -> Result<(), ConfigError> {
    let nested = doc.obj.get("text_config").and_then(Value::as_object);
    let set = |field: &str| {
        let set = |o: &serde_json::Map<String, Value>| o.get(field).is_some_and(|v| !v.is_null());
        set(&doc.obj) || nested.is_some_and(set)
    };
    let mut found: Vec<(&str, String)> = UNMODELED_FIELDS
        .iter()
        .filter(|(field, _)| set(field))
        .map(|(field, what)| (*field, format!("{field} ({what})")))
        .collect();
    if let Some(m) = quant_method(doc).filter(|m| !matches!(m.as_deref(), Some("fp8" | "mxfp4"))) {
        let shown = m.map_or_else(|| "missing".to_string(), |m| format!("\"{m}\""));
        found.push((
            "quantization_config",
            format!("quantization_config with quant_method {shown} (fp8 and mxfp4 are modeled)"),
        ));
    }
    match found.first() {
        None => Ok(()),
        Some((first, _)) => {
            let all: Vec<&str> = found.iter().map(|(_, w)| w.as_str()).collect();
            Err(doc.err(first, format!("not yet supported: {}", all.join("; "))))
        }
    }
}

/// The `model_type`, when dyad builds it.
fn model_type<'a>(doc: &'a Doc) -> Result<&'a str, ConfigError> {
    let model_type = doc.str_field("model_type")?.ok_or_else(|| {
        ConfigError::file(doc.path, "missing field `model_type`")
            .with_help(format!("supported: {}", SUPPORTED_TYPES.join(", ")))
    })?;
    if !SUPPORTED_TYPES.contains(&model_type) {
        return Err(doc
            .err(
                "model_type",
                format!("not yet supported: model_type \"{model_type}\""),
            )
            .with_help(format!("supported: {}", SUPPORTED_TYPES.join(", "))));
    }
    // Llama-4's text model, when its `text_config` names no type of its own.
    Ok(if model_type == "llama4" {
        "llama4_text"
    } else {
        model_type
    })
}

/// What a `quantization_config` changes: the element type of every weight, or of the routed
/// experts' only.
struct Quantization {
    /// Every weight's type, and the GEMMs' (fp8, e4m3, as DeepSeek-V3 ships).
    all: Option<Dtype>,
    /// The routed experts' weights' type (gpt-oss's `mxfp4`, whose `modules_to_not_convert`
    /// keep attention, router, embedding and LM head in bf16).
    experts: Option<Dtype>,
}

/// The `quant_method` of a `quantization_config`, when there is one (`Some(None)`: it names
/// no method).
fn quant_method(doc: &Doc) -> Option<Option<String>> {
    let q = doc
        .obj
        .get("quantization_config")
        .filter(|v| !v.is_null())?;
    Some(
        q.get("quant_method")
            .and_then(Value::as_str)
            .map(str::to_string),
    )
}

/// The element types a `quantization_config` sets (methods other than fp8 and mxfp4 were
/// refused by [`unmodeled`]).
fn quantization(doc: &Doc) -> Result<Quantization, ConfigError> {
    let method = quant_method(doc);
    Ok(match method.as_ref().and_then(|m| m.as_deref()) {
        Some("fp8") => Quantization {
            all: Some(Dtype::Fp8),
            experts: None,
        },
        Some("mxfp4") => Quantization {
            all: None,
            experts: Some(Dtype::Mxfp4),
        },
        _ => Quantization {
            all: None,
            experts: None,
        },
    })
}

/// What the import leaves out, for the report: DeepSeek-V3's multi-token-prediction layers
/// (`num_nextn_predict_layers`, not decoder layers of plain decoding), and the costs it does
/// not charge: gpt-oss's attention sinks (inside the attention kernel) and biases, Llama-4's
/// vision encoder and query temperature scaling, and the
/// restriction of group-limited routing to the top groups (uniform routing spreads tokens over
/// all experts alike).
fn notes(doc: &Doc, model_type: &str) -> Result<Vec<String>, ConfigError> {
    let mut notes = Vec::new();
    if let Some(n) = doc.opt_uint("num_nextn_predict_layers")? {
        notes.push(format!("{n} multi-token-prediction layer(s) (num_nextn_predict_layers) left out: plain decoding runs without them"));
    }
    if model_type == "gpt_oss" {
        notes.push("attention sinks: one learned logit per head in each softmax, counted as parameters; their exp and add per (query, head) row run inside the attention kernel and are not charged, as the softmax is not; the projections' and experts' biases are not counted".to_string());
    }
    if model_type == "llama4_text" {
        notes.push("the vision encoder (vision_config) is not built: text decoding only; the query temperature scaling of the full-attention layers (attn_temperature_tuning, one multiply per query element) is not charged".to_string());
    }
    if let Some(g) = doc.opt_uint("n_group")?.filter(|&g| g > 1) {
        notes.push(format!("group-limited routing ({g} groups): the gate's group scoring is charged; the restriction to the top groups changes which experts a token reaches, not how many, and is not in the routing"));
    }
    Ok(notes)
}

/// The weights' element type, from `dtype` or (older configs) `torch_dtype`.
/// gpt-oss's config.json names none: its tensors outside the MXFP4 experts are bf16
/// (`original/dtypes.json` of the release), and that is its type.
fn dtype(doc: &Doc, model_type: &str) -> Result<Dtype, ConfigError> {
    let key = if doc.obj.contains_key("dtype") {
        "dtype"
    } else {
        "torch_dtype"
    };
    match doc.str_field(key)? {
        Some(s) => s.parse::<Dtype>().map_err(|e| doc.err(key, e.to_string())),
        None if model_type == "gpt_oss" => Ok(Dtype::Bf16),
        None => Err(ConfigError::file(doc.path, "missing field `torch_dtype`")
            .with_help("the weights' element type, e.g. \"bfloat16\"")),
    }
}

/// Byte offset of a 1-based (line, column) position.
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(text.len())
}
