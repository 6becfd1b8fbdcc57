//! Model configs: a HuggingFace `config.json`, or a TOML file with the same field names.

use std::ops::Range;
use std::path::Path;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::presets;
use super::source::Source;
use crate::model::{LayerPlan, ModelSpec, Moe};
use crate::work::Dtype;

/// `model_type` values whose layers dyad builds.
const SUPPORTED_TYPES: &[&str] = &["llama", "mistral", "mixtral", "opt"];

/// Fields that mark a family dyad does not build yet, checked before `model_type`.
const UNSUPPORTED_FIELDS: &[(&str, &str)] = &[
    (
        "kv_lora_rank",
        "multi-head latent attention (DeepSeek-V2/V3)",
    ),
    ("n_routed_experts", "DeepSeek-style MoE"),
    ("n_shared_experts", "shared experts (DeepSeek-style MoE)"),
    (
        "shared_expert_intermediate_size",
        "shared experts (Qwen2-MoE-style MoE)",
    ),
    ("num_experts", "Qwen2-MoE/OLMoE-style MoE"),
    ("moe_intermediate_size", "a separate expert FFN size"),
    ("first_k_dense_replace", "mixed dense and MoE layers"),
    (
        "sliding_window_pattern",
        "interleaved sliding-window attention",
    ),
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

    fn str_field(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(key, format!("`{key}` must be a string, found {v}"))),
        }
    }
}

/// Loads a model from a HuggingFace `config.json`, a dyad model TOML, or a built-in name
/// (`mixtral-8x7b`).
pub fn load_model(path: &Path) -> Result<ModelSpec, ConfigError> {
    let path = presets::resolve_model(path);
    let src = Source::read(&path)?;
    let text = src.text();
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let obj = if is_toml {
        let table: toml::Table = src.parse()?;
        match serde_json::to_value(table) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ConfigError::file(&path, "expected a table of model fields")),
        }
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ConfigError::file(&path, "expected a JSON object")),
            Err(e) => {
                let at = offset_of(text, e.line(), e.column());
                return Err(src.at(at..at, format!("invalid JSON: {e}")));
            }
        }
    };
    let doc = Doc {
        src: &src,
        path: &path,
        obj,
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
    let period = doc.opt_uint("moe_layer_period")?.unwrap_or(1);
    let period = u32::try_from(period)
        .map_err(|_| doc.err("moe_layer_period", "`moe_layer_period` is too large"))?;
    let moe = moe(doc, model_type, intermediate)?;
    // Mistral-7B-v0.1 and Mixtral write `sliding_window` (null when off): every layer attends
    // the last that many tokens. Qwen2 writes one and turns it off with `use_sliding_window`
    // (REFERENCE.md §Model configs).
    let window = match doc.flag("use_sliding_window", true)? {
        true => doc.opt_uint("sliding_window")?,
        false => None,
    };
    let layers = u32::try_from(doc.uint("num_hidden_layers")?)
        .map_err(|_| doc.err("num_hidden_layers", "`num_hidden_layers` is too large"))?;
    let dtype = dtype(doc)?;
    let tie = doc.flag("tie_word_embeddings", is_opt)?;
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
        plans: LayerPlan::periodic(layers, intermediate, moe.map(|_| period), window),
        heads,
        kv_heads,
        head_dim,
        vocab: doc.uint("vocab_size")?,
        moe,
        ffn_gated: gated,
        dtype,
        tie_embeddings: tie,
    };
    spec.validate()
        .map_err(|e| ConfigError::file(doc.path, e.to_string()))?;
    Ok(spec)
}

/// The `model_type`, when dyad builds it and no field marks a family it does not build yet.
fn model_type<'a>(doc: &'a Doc) -> Result<&'a str, ConfigError> {
    for (field, what) in UNSUPPORTED_FIELDS {
        if doc.obj.get(*field).is_some_and(|v| !v.is_null()) {
            return Err(doc.err(field, format!("not yet supported: {field} ({what})")));
        }
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

/// The experts, when the model has them (a Mixtral config must).
fn moe(doc: &Doc, model_type: &str, intermediate: u64) -> Result<Option<Moe>, ConfigError> {
    let experts = doc.opt_uint("num_local_experts")?;
    Ok(match (model_type, experts) {
        ("mixtral", None) => {
            return Err(ConfigError::file(
                doc.path,
                "missing field `num_local_experts`",
            ));
        }
        (_, Some(experts)) => Some(Moe {
            experts,
            top_k: doc.uint("num_experts_per_tok")?,
            intermediate,
        }),
        (_, None) => None,
    })
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
