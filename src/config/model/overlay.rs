//! Model overlays: a dyad model TOML that says `extends = "llama-3-8b"` (a built-in model, or a
//! config.json or another TOML relative to it) and sets or overrides top-level keys on top of
//! it. The fields are merged key by key, the overlay's winning; each file keeps its source, so
//! an error still points at the file and line where the offending key is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::doc::{DocFile, span_in};
use super::{TOML_FIELDS, fields_of, is_toml, knobs, variants};
use crate::config::error::ConfigError;
use crate::config::presets;
use crate::config::source::Source;

/// Most files one `extends` chain may hold (a loop is caught by this bound).
const MAX_CHAIN: usize = 8;

/// The files of the model at `path` (its text `src`) and what it extends, the model's own
/// first, and their fields merged (a file's keys over those of the files it extends; the
/// extended files' `name` and `source` are the overlay's own to say).
pub(super) fn chain(
    path: &Path,
    src: Arc<Source>,
) -> Result<(Vec<DocFile>, Map<String, Value>), ConfigError> {
    let (mut path, mut src) = (path.to_path_buf(), src);
    let mut files: Vec<DocFile> = Vec::new();
    let mut obj = Map::new();
    loop {
        let json = !is_toml(&path);
        let mut fields = fields_of(&path, &src)?;
        if !json {
            check_keys(&src, &fields)?;
        }
        let next = fields.remove("extends");
        if !files.is_empty() {
            fields.remove("name");
            fields.remove("source");
        }
        for (k, v) in fields {
            obj.entry(k).or_insert(v);
        }
        let at = |msg: String| src.at(span_in(&src, json, "extends"), msg);
        let Some(next) = next else {
            files.push(DocFile { src, json });
            return Ok((files, obj));
        };
        let Some(name) = next.as_str() else {
            return Err(at(format!(
                "`extends` must name a model (a string), found {next}"
            )));
        };
        if files.len() + 1 >= MAX_CHAIN {
            return Err(at(format!(
                "`extends` chains more than {MAX_CHAIN} files (a loop?)"
            )));
        }
        let base = target(&src, name).ok_or_else(|| {
            at(format!(
                "`extends`: \"{name}\" is neither a file (relative to this one) nor a built-in model"
            ))
            .with_help(format!(
                "built-in models: {}",
                presets::names("workloads/models").join(", ")
            ))
        })?;
        files.push(DocFile { src, json });
        src = Source::read(&base)?;
        path = base;
    }
}

/// The file `extends = "name"` in `src` names: a file relative to `src`, or a built-in model.
fn target(src: &Source, name: &str) -> Option<PathBuf> {
    let p = src.relative(name);
    p.is_file()
        .then_some(p)
        .or_else(|| presets::named(name, "workloads/models").map(PathBuf::from))
}

/// Every key of a dyad model TOML is one dyad reads: [`TOML_FIELDS`], a variant key, or
/// `extends`.
fn check_keys(src: &Source, fields: &Map<String, Value>) -> Result<(), ConfigError> {
    let known = |k: &str| {
        TOML_FIELDS.contains(&k)
            || variants::KEYS.contains(&k)
            || knobs::KEYS.contains(&k)
            || k == "extends"
    };
    let Some(k) = fields.keys().find(|k| !known(k)) else {
        return Ok(());
    };
    let mut valid: Vec<&str> = TOML_FIELDS.to_vec();
    valid.extend(variants::KEYS);
    valid.extend(knobs::KEYS);
    valid.push("extends");
    Err(src
        .at(span_in(src, false, k), format!("unknown key `{k}`"))
        .with_help(format!("valid keys: {}", valid.join(", "))))
}
