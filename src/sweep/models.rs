//! Axes over the model: `model` (model files, relative to the sweep file, or built-in names
//! such as `mixtral-8x7b`) and `model.KEY` (a key of the model file, JSON or TOML:
//! `model.num_hidden_layers`, `model.num_local_experts`).
//!
//! A point's model is read by the normal loader (`config::load_model_text`) from the model
//! file's text with the point's `model.` keys set, so every check of the loader applies. A
//! `model.` key must be set in the model file (in each of the `model` axis's files, where there
//! is one), so a typo is caught when the sweep file is read, with the keys nearby. A point
//! that sets no `model.` key runs its model as loaded when the sweep file was read: the model
//! files (and those they extend) are a snapshot of that moment, like the sweep file itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::file::{Base, RawAxis, SweepText, axis_values};
use crate::config::{self, ConfigError};
use crate::model::ModelSpec;

/// Whether `key` is a model axis: `model` itself or `model.KEY`.
pub(crate) fn is_model_key(key: &str) -> bool {
    key == "model" || key.starts_with("model.")
}

/// The models a sweep runs: the scenario's, and each value of its `model` axis as a path.
#[derive(Debug, Clone, Default)]
pub(crate) struct Models {
    /// The model file the base scenario names.
    pub(crate) base: PathBuf,
    /// Each value of the `model` axis, as written, and the file it names.
    pub(crate) axis: BTreeMap<String, PathBuf>,
    /// What each of those files loads as, read once when the sweep file is read (each must
    /// load then): a point that edits no model key runs it without reading the file again.
    pub(crate) loaded: BTreeMap<PathBuf, ModelSpec>,
}

/// The file a `model` axis value names: a file relative to the sweep file's folder, or a
/// built-in model.
pub(crate) fn resolve(sweep_dir: &Path, value: &str) -> Option<PathBuf> {
    let p = sweep_dir.join(value);
    p.is_file()
        .then_some(p)
        .or_else(|| config::presets::named(value, "workloads/models").map(PathBuf::from))
}

/// The value at dotted `parts` of a JSON object.
pub(crate) fn lookup<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    parts: &[&str],
) -> Option<&'a serde_json::Value> {
    let (first, rest) = parts.split_first()?;
    let v = m.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        lookup(v.as_object()?, rest)
    }
}

/// Leaf keys of a JSON object, dotted, each under `model.`.
pub(crate) fn leaves(m: &serde_json::Map<String, serde_json::Value>, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in m {
        let p = format!("{prefix}.{k}");
        match v {
            serde_json::Value::Object(sub) => out.extend(leaves(sub, &p)),
            _ => out.push(p),
        }
    }
    out
}

/// The `n` keys of `valid` that share the longest start with `key`, longest first (a model
/// file has too many keys to list them all).
pub(crate) fn closest(key: &str, valid: &[String], n: usize) -> Vec<String> {
    let common = |k: &str| {
        k.bytes()
            .zip(key.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut v: Vec<&String> = valid.iter().collect();
    v.sort_by_key(|k| (std::cmp::Reverse(common(k)), k.len()));
    v.into_iter().take(n).cloned().collect()
}

fn set(m: &mut serde_json::Map<String, serde_json::Value>, parts: &[&str], v: serde_json::Value) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        m.insert((*first).to_string(), v);
    } else if let Some(serde_json::Value::Object(sub)) = m.get_mut(*first) {
        set(sub, rest, v);
    }
}

impl Models {
    /// The model of a point with these values: the `model` axis's file (or the scenario's),
    /// with the `model.` keys set; without `model.` keys, the model as the sweep file's
    /// reading loaded it.
    pub(crate) fn model_of(
        &self,
        values: &[(String, toml::Value)],
    ) -> Result<ModelSpec, ConfigError> {
        let chosen = values
            .iter()
            .find(|(k, _)| k == "model")
            .and_then(|(_, v)| v.as_str())
            .and_then(|v| self.axis.get(v));
        let edits: Vec<(&str, &toml::Value)> = values
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("model.")?, v)))
            .collect();
        let path = chosen.unwrap_or(&self.base);
        if edits.is_empty() {
            return match self.loaded.get(path) {
                Some(m) => Ok(m.clone()),
                None => config::load_model(path),
            };
        }
        edited(path, &edits)
    }
}

/// The model at `path` with each `(key, value)` of `edits` set, read by the loader.
fn edited(path: &Path, edits: &[(&str, &toml::Value)]) -> Result<ModelSpec, ConfigError> {
    let mut m = config::model_fields(path)?;
    for (k, v) in edits {
        let parts: Vec<&str> = k.split('.').collect();
        let v = serde_json::to_value(v).map_err(|e| ConfigError::file(path, e.to_string()))?;
        set(&mut m, &parts, v);
    }
    let text: String = if config::is_toml(path) {
        let t: toml::Table = serde_json::from_value(serde_json::Value::Object(m))
            .map_err(|e| ConfigError::file(path, e.to_string()))?;
        toml::to_string(&t).map_err(|e| ConfigError::file(path, e.to_string()))?
    } else {
        serde_json::to_string_pretty(&serde_json::Value::Object(m))
            .map_err(|e| ConfigError::file(path, e.to_string()))?
    };
    config::load_model_text(path, Arc::from(text))
}

/// The scenario's model file and the files the `model` axis names (each a file relative to the
/// sweep file, or a built-in model, and each loading on its own).
pub(super) fn read_models(
    src: &SweepText,
    raw: &[RawAxis],
    base: &Base,
) -> Result<Models, ConfigError> {
    let base_model = config::load_model(&base.model_path)?;
    let mut m = Models {
        base: base.model_path.clone(),
        axis: BTreeMap::new(),
        loaded: BTreeMap::from([(base.model_path.clone(), base_model)]),
    };
    let Some(a) = raw.iter().find(|a| a.key.get_ref().trim() == "model") else {
        return Ok(m);
    };
    let dir = src.path.parent().unwrap_or(Path::new(""));
    for v in axis_values(src, &a.values, "model")? {
        let Some(name) = v.as_str() else {
            return Err(src.at(
                a.values.span(),
                format!("`model`: {v} is not a model file or a built-in model name (a string)"),
            ));
        };
        let Some(path) = resolve(dir, name) else {
            return Err(src
                .at(
                    a.values.span(),
                    format!(
                        "`model`: \"{name}\" is neither a file (relative to the sweep file) nor a \
                         built-in model"
                    ),
                )
                .with_help(format!(
                    "built-in models: {}",
                    config::presets::names("workloads/models").join(", ")
                )));
        };
        let model = config::load_model(&path).map_err(|e| {
            src.at(
                a.values.span(),
                format!("`model`: \"{name}\" does not load: {e}"),
            )
        })?;
        m.loaded.insert(path.clone(), model);
        m.axis.insert(name.to_string(), path);
    }
    Ok(m)
}

/// A `model.KEY` must name a value set in the scenario's model file, or in every file of the
/// `model` axis where there is one.
pub(super) fn check_model_key(
    src: &SweepText,
    spanned: &Spanned<String>,
    key: &str,
    models: &Models,
) -> Result<(), ConfigError> {
    if key == "model" {
        return Ok(());
    }
    let parts: Vec<&str> = key.split('.').skip(1).collect();
    let files: Vec<&PathBuf> = if models.axis.is_empty() {
        vec![&models.base]
    } else {
        models.axis.values().collect()
    };
    for f in files {
        let fields = config::model_fields(f).map_err(|e| {
            let why = format!("`{key}`: {}: {}", f.display(), e.message());
            src.at(spanned.span(), why)
        })?;
        let keys = || {
            let valid = leaves(&fields, "model");
            format!(
                "keys of {} nearby: {}",
                f.display(),
                closest(key, &valid, 8).join(", ")
            )
        };
        match lookup(&fields, &parts) {
            None => {
                return Err(src
                    .at(
                        spanned.span(),
                        format!("unknown key `{key}`: {} does not set it", f.display()),
                    )
                    .with_help(keys()));
            }
            Some(serde_json::Value::Object(_)) => {
                return Err(src
                    .at(spanned.span(), format!("`{key}` is a table, not a value"))
                    .with_help(keys()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
