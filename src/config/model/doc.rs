//! A model file's fields, read with the spans that errors point at.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::error::ConfigError;
use crate::config::source::Source;

/// One file of a model: its source and whether it is a config.json (else a dyad TOML).
pub(super) struct DocFile {
    pub(super) src: Arc<Source>,
    pub(super) json: bool,
}

/// A model's fields (an overlay's over those of the files it extends), with the files to find
/// where a key is written: the overlay first, then each file it extends.
pub(super) struct Doc<'a> {
    pub(super) files: &'a [DocFile],
    pub(super) path: &'a Path,
    pub(super) obj: Map<String, Value>,
}

/// Byte range of `key` where it is written in `src` (first occurrence; empty when it is not).
pub(super) fn span_in(src: &Source, json: bool, key: &str) -> Range<usize> {
    let needle = if json {
        format!("\"{key}\"")
    } else {
        key.to_string()
    };
    let t = &**src.text();
    let mut from = 0;
    while let Some(i) = t[from..].find(&needle) {
        let at = from + i;
        let rest = t[at + needle.len()..].trim_start();
        let before_ok = at == 0 || !t[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if before_ok && (rest.starts_with(':') || rest.starts_with('=')) {
            return at..at + needle.len();
        }
        from = at + needle.len();
    }
    0..0
}

impl<'a> Doc<'a> {
    /// The nested text model of a multimodal config (Llama-4's `text_config`): its fields, and
    /// the top level's where it has none (`torch_dtype`, `tie_word_embeddings`,
    /// `quantization_config`); `None` without one.
    pub(super) fn text_model(&self) -> Result<Option<Doc<'a>>, ConfigError> {
        match self.obj.get("text_config") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(t)) => {
                let mut obj = t.clone();
                for (k, v) in &self.obj {
                    if !matches!(
                        k.as_str(),
                        "text_config" | "vision_config" | "architectures"
                    ) {
                        obj.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                Ok(Some(Doc {
                    files: self.files,
                    path: self.path,
                    obj,
                }))
            }
            Some(v) => Err(self.err(
                "text_config",
                format!("`text_config` must be a table of fields, found {v}"),
            )),
        }
    }

    /// The file `key` is written in (the overlay's own value first, then the files it extends)
    /// and its byte range there; `None` when no file writes it.
    fn find(&self, key: &str) -> Option<(&Source, Range<usize>)> {
        self.files.iter().find_map(|f| {
            let span = span_in(&f.src, f.json, key);
            (!span.is_empty()).then_some((&*f.src, span))
        })
    }

    /// Whether some file of the model writes `key`.
    pub(super) fn writes(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// An error at the place `key` is written, or about the whole (top) file.
    pub(super) fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        match self.find(key) {
            Some((src, span)) => src.at(span, msg),
            None => ConfigError::file(self.path, msg),
        }
    }

    pub(super) fn opt_uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
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

    pub(super) fn uint(&self, key: &str) -> Result<u64, ConfigError> {
        self.opt_uint(key)?.ok_or_else(|| {
            ConfigError::file(self.path, format!("missing field `{key}`")).with_help(
                "dense Llama-style and Mixtral-style configs set it; see workloads/models/",
            )
        })
    }

    /// A boolean field, `default` when absent.
    pub(super) fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(key, format!("`{key}` must be true or false, found {v}"))),
        }
    }

    /// A non-negative integer (zero allowed), when present.
    pub(super) fn opt_count(&self, key: &str) -> Result<Option<u64>, ConfigError> {
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
    pub(super) fn opt_real(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(self.err(key, format!("`{key}` must be a positive number, found {v}"))),
            },
        }
    }

    /// A list of non-negative integers, empty when absent.
    pub(super) fn uint_list(&self, key: &str) -> Result<Vec<u64>, ConfigError> {
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

    pub(super) fn str_field(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(key, format!("`{key}` must be a string, found {v}"))),
        }
    }
}
