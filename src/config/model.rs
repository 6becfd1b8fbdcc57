//! Model configs: a HuggingFace `config.json`, or a TOML file with the same field names.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::presets;
use super::source::Source;
use crate::model::{Activation, Attention, Ffn, LayerPlan, Mla, ModelSpec, Moe, SharedExpert};
use crate::work::Dtype;

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
];

/// Families whose attention normalizes each query and key head (RMSNorm) before RoPE.
const QK_NORM_TYPES: &[&str] = &["qwen3", "qwen3_moe", "olmoe"];

/// Families whose `sliding_window` is off unless `use_sliding_window` is true, and then applies
/// from layer `max_window_layers` on (HuggingFace's Qwen2 config).
const QWEN_TYPES: &[&str] = &["qwen2", "qwen3", "qwen2_moe", "qwen3_moe"];

/// Fields that mark a family dyad does not build yet, checked before `model_type`.
const UNSUPPORTED_FIELDS: &[(&str, &str)] = &[
    ("attention_chunk_size", "chunked local attention (Llama-4)"),
    ("text_config", "a nested text model (Llama-4)"),
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
];

/// A model file's fields, with its source to find where a key is written.
struct Doc<'a> {
    src: &'a Source,
    path: &'a Path,
    obj: Map<String, Value>,
    json: bool,
}

impl Doc<'_> {
    /// Byte range of `key` where it is written in the file (first occurrence).
    fn span_of(&self, key: &str) -> Range<usize> {
        let needle = if self.json {
            format!("\"{key}\"")
        } else {
            key.to_string()
        };
        let t = &**self.src.text();
        let mut from = 0;
        while let Some(i) = t[from..].find(&needle) {
            let at = from + i;
            let rest = t[at + needle.len()..].trim_start();
            let before_ok =
                at == 0 || !t[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            if before_ok && (rest.starts_with(':') || rest.starts_with('=')) {
                return at..at + needle.len();
            }
            from = at + needle.len();
        }
        0..0
    }

    fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let span = self.span_of(key);
        if span.is_empty() {
            self.src.whole(msg)
        } else {
            self.src.at(span, msg)
        }
    }

    fn opt_uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(self.err(
                    key,
                    format!("`{key}` must be a positive integer, found {v}"),
                )),
            },
        }
    }

    fn uint(&self, key: &str) -> Result<u64, ConfigError> {
        self.opt_uint(key)?.ok_or_else(|| {
            ConfigError::file(self.path, format!("missing field `{key}`")).with_help(
                "dense Llama-style and Mixtral-style configs set it; see workloads/models/",
            )
        })
    }

    /// A boolean field, `default` when absent.
    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(key, format!("`{key}` must be true or false, found {v}"))),
        }
    }

    /// A non-negative integer (zero allowed), when present.
    fn opt_count(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                self.err(
                    key,
                    format!("`{key}` must be a non-negative integer, found {v}"),
                )
            }),
        }
    }

    /// A real number, when present.
    fn opt_real(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(self.err(key, format!("`{key}` must be a positive number, found {v}"))),
            },
        }
    }

    /// A list of non-negative integers, empty when absent.
    fn uint_list(&self, key: &str) -> Result<Vec<u64>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64().ok_or_else(|| {
                        self.err(key, format!("`{key}` must list layer indices, found {v}"))
                    })
                })
                .collect(),
            Some(v) => Err(self.err(key, format!("`{key}` must be a list, found {v}"))),
        }
    }

    fn str_field(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(key, format!("`{key}` must be a string, found {v}"))),
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
    model_from(&path, &*Source::read(&path)?)
}

/// Loads a model from `text`, an edited copy of the file at `path` (as a sweep point over
/// `model.KEY` makes); `path`'s extension says whether it is JSON or TOML.
pub fn load_model_text(path: &Path, text: Arc<str>) -> Result<ModelSpec, ConfigError> {
    let path = presets::resolve_model(path);
    model_from(&path, &Source::new(&path, text))
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

fn model_from(path: &Path, src: &Source) -> Result<ModelSpec, ConfigError> {
    let is_toml = is_toml(path);
    let doc = Doc {
        src,
        path,
        obj: fields_of(path, src)?,
        json: !is_toml,
    };
    if is_toml {
        if let Some(k) = doc.obj.keys().find(|k| !TOML_FIELDS.contains(&k.as_str())) {
            return Err(doc
                .err(k, format!("unknown key `{k}`"))
                .with_help(format!("valid keys: {}", TOML_FIELDS.join(", "))));
        }
    }
    resolve(&doc)
}

fn resolve(doc: &Doc) -> Result<ModelSpec, ConfigError> {
    let model_type = model_type(doc)?;
    let hidden = doc.uint("hidden_size")?;
    let heads = doc.uint("num_attention_heads")?;
    // HuggingFace's own defaults: MHA when `num_key_value_heads` is absent, head_dim = hidden / heads.
    let kv_heads = doc.opt_uint("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = doc.opt_uint("head_dim")?.unwrap_or(hidden / heads);
    // OPT names its FFN size `ffn_dim`, uses a two-matrix ReLU FFN and ties the LM head to the
    // embedding (HuggingFace's OPTConfig defaults); a projection between them is not built yet.
    let is_opt = model_type == "opt";
    if is_opt {
        if let Some(p) = doc.opt_uint("word_embed_proj_dim")? {
            if p != hidden {
                return Err(doc.err(
                    "word_embed_proj_dim",
                    "not yet supported: word_embed_proj_dim (an embedding projection)",
                ));
            }
        }
    }
    let intermediate = doc.uint(if is_opt {
        "ffn_dim"
    } else {
        "intermediate_size"
    })?;
    let gated = doc.flag("ffn_gated", !is_opt)?;
    let act = activation(doc, is_opt)?;
    let moe = moe(doc, model_type, intermediate)?;
    let layers = u32::try_from(doc.uint("num_hidden_layers")?)
        .map_err(|_| doc.err("num_hidden_layers", "`num_hidden_layers` is too large"))?;
    let plans = plans(doc, model_type, layers, intermediate, moe.is_some())?;
    let dtype = dtype(doc)?;
    // OPT and Gemma tie the LM head to the embedding unless told otherwise (HuggingFace's
    // defaults).
    let tie = doc.flag("tie_word_embeddings", is_opt || model_type == "gemma2")?;
    // Gemma-2 caps attention scores and logits with c · tanh(x / c). The score cap runs inside
    // the attention kernel, on the scores whose softmax dyad does not charge either; the logit
    // cap is an op of its own.
    let softcap = doc.opt_real("final_logit_softcapping")?.is_some();
    doc.opt_real("attn_logit_softcapping")?;
    let name = match doc.str_field("name")? {
        Some(n) => n.to_string(),
        None => doc
            .path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
    };
    let spec = ModelSpec {
        name,
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
        quantized: quantized(doc)?,
        notes: mtp_note(doc)?.into_iter().collect(),
        logit_softcap: softcap,
    };
    spec.validate()
        .map_err(|e| ConfigError::file(doc.path, e.to_string()))?;
    Ok(spec)
}

/// The `model_type`, when dyad builds it and no field marks a family it does not build yet.
fn model_type<'a>(doc: &'a Doc) -> Result<&'a str, ConfigError> {
    let present: Vec<&(&str, &str)> = UNSUPPORTED_FIELDS
        .iter()
        .filter(|(field, _)| doc.obj.get(*field).is_some_and(|v| !v.is_null()))
        .collect();
    if let Some((first, _)) = present.first() {
        let all: Vec<String> = present
            .iter()
            .map(|(field, what)| format!("{field} ({what})"))
            .collect();
        return Err(doc.err(first, format!("not yet supported: {}", all.join("; "))));
    }
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
    Ok(model_type)
}

/// The experts, when the model has them (a Mixtral, Qwen-MoE or OLMoE config must): Mixtral's
/// `num_local_experts` or Qwen's and OLMoE's `num_experts`, each of `moe_intermediate_size`
/// where given (fine-grained experts) or `intermediate_size`, and Qwen2-MoE's gated shared
/// expert of `shared_expert_intermediate_size`.
fn moe(doc: &Doc, model_type: &str, intermediate: u64) -> Result<Option<Moe>, ConfigError> {
    let mut experts = None;
    for key in ["num_local_experts", "num_experts", "n_routed_experts"] {
        experts = experts.or(doc.opt_uint(key)?);
    }
    let must = matches!(
        model_type,
        "mixtral" | "qwen2_moe" | "qwen3_moe" | "olmoe" | "deepseek_v2" | "deepseek_v3"
    );
    Ok(match experts {
        None if must => {
            let key = match model_type {
                "mixtral" => "num_local_experts",
                "deepseek_v2" | "deepseek_v3" => "n_routed_experts",
                _ => "num_experts",
            };
            return Err(ConfigError::file(
                doc.path,
                format!("missing field `{key}`"),
            ));
        }
        Some(experts) => {
            let inner = doc
                .opt_uint("moe_intermediate_size")?
                .unwrap_or(intermediate);
            // DeepSeek's `n_shared_experts` act as one FFN of their summed width.
            let shared = match doc.opt_uint("shared_expert_intermediate_size")? {
                Some(intermediate) => Some(SharedExpert {
                    intermediate,
                    sigmoid_gate: true,
                }),
                None => doc.opt_uint("n_shared_experts")?.map(|n| SharedExpert {
                    intermediate: n * inner,
                    sigmoid_gate: false,
                }),
            };
            Some(Moe {
                experts,
                top_k: doc.uint("num_experts_per_tok")?,
                intermediate: inner,
                shared,
            })
        }
        None => None,
    })
}

/// Each layer's plan. Attention: `sliding_window` in every layer (Mistral, Mixtral; null when
/// off), or for Qwen from layer `max_window_layers` on when `use_sliding_window` is true
/// (REFERENCE.md §Model configs); QK-norm for Qwen3 and OLMoE; latent attention where
/// `kv_lora_rank` is set (DeepSeek). FFN: with experts, layer `l` is MoE unless it is in Qwen's
/// `mlp_only_layers`, and when `(l + 1)` is a multiple of Qwen's `decoder_sparse_step` or of
/// dyad's `moe_layer_period` (GLaM: 2); for DeepSeek, when `l` is at least
/// `first_k_dense_replace` and a multiple of `moe_layer_freq`. Other layers are dense of
/// `intermediate_size`.
fn plans(
    doc: &Doc,
    model_type: &str,
    layers: u32,
    intermediate: u64,
    has_moe: bool,
) -> Result<Vec<LayerPlan>, ConfigError> {
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
    let step = match doc.opt_uint("decoder_sparse_step")? {
        Some(n) => n,
        None => doc.opt_uint("moe_layer_period")?.unwrap_or(1),
    };
    let dense_only = doc.uint_list("mlp_only_layers")?;
    let qk_norm = QK_NORM_TYPES.contains(&model_type);
    let mla = mla(doc)?;
    let first_dense = doc.opt_count("first_k_dense_replace")?;
    let freq = doc.opt_uint("moe_layer_freq")?.unwrap_or(1);
    Ok((0..layers)
        .map(|l| {
            let l64 = u64::from(l);
            let moe = has_moe
                && match first_dense {
                    Some(k) => l64 >= k && l64 % freq == 0,
                    None => (l64 + 1) % step == 0 && !dense_only.contains(&l64),
                };
            LayerPlan {
                mla,
                attention: match (window, &types) {
                    (Some(tokens), Some(t)) if t[l as usize] => Attention::Window { tokens },
                    (Some(tokens), None) if l64 >= from => Attention::Window { tokens },
                    _ => Attention::Full,
                },
                qk_norm,
                post_norms: model_type == "gemma2",
                ffn: if moe {
                    Ffn::Moe
                } else {
                    Ffn::Dense { intermediate }
                },
            }
        })
        .collect())
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
        if a.len() != layers as usize {
            return Err(doc.err(
                "layer_types",
                format!(
                    "`layer_types` lists {} layers; the model has {layers}",
                    a.len()
                ),
            ));
        }
        return a
            .iter()
            .map(|v| match v.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(doc.err(
                    "layer_types",
                    format!(
                        "`layer_types` entries must be \"sliding_attention\" or \"full_attention\", found {v}"
                    ),
                )),
            })
            .collect::<Result<Vec<bool>, _>>()
            .map(Some);
    }
    if let Some(n) = doc.opt_uint("sliding_window_pattern")? {
        return Ok(Some(
            (0..u64::from(layers)).map(|l| (l + 1) % n != 0).collect(),
        ));
    }
    Ok((model_type == "gemma2").then(|| (0..layers).map(|l| l % 2 == 0).collect()))
}

/// The weights' element type under a `quantization_config`: fp8 (`quant_method = "fp8"`,
/// e4m3, as DeepSeek-V3 ships); any other method is not modeled yet.
fn quantized(doc: &Doc) -> Result<Option<Dtype>, ConfigError> {
    let Some(q) = doc.obj.get("quantization_config").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let method = q.get("quant_method").and_then(Value::as_str);
    match method {
        Some("fp8") => Ok(Some(Dtype::Fp8)),
        _ => Err(doc.err(
            "quantization_config",
            format!(
                "not yet supported: quantization_config with quant_method {} (fp8 is modeled)",
                method.map_or_else(|| "missing".to_string(), |m| format!("\"{m}\""))
            ),
        )),
    }
}

/// DeepSeek-V3's multi-token-prediction layers (`num_nextn_predict_layers`) are not decoder
/// layers of plain decoding: they are left out, and the report says so.
fn mtp_note(doc: &Doc) -> Result<Option<String>, ConfigError> {
    Ok(doc.opt_uint("num_nextn_predict_layers")?.map(|n| {
        format!("{n} multi-token-prediction layer(s) (num_nextn_predict_layers) left out: plain decoding runs without them")
    }))
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

/// The weights' element type, from `dtype` or (older configs) `torch_dtype`.
fn dtype(doc: &Doc) -> Result<Dtype, ConfigError> {
    let key = if doc.obj.contains_key("dtype") {
        "dtype"
    } else {
        "torch_dtype"
    };
    match doc.str_field(key)? {
        Some(s) => s.parse::<Dtype>().map_err(|e| doc.err(key, e.to_string())),
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
