//! Software-stack profiles (`arch/software/*.toml`): a serving framework's time per iteration
//! beyond its kernels ([`crate::hw::Software`]).

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::source::Source;
use crate::hw::{Graphs, Software};
use crate::units::Seconds;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftware {
    #[allow(dead_code)]
    name: Option<String>,
    #[allow(dead_code)]
    source: Option<String>,
    step: Spanned<Seconds>,
    per_sequence: Spanned<Seconds>,
    per_prompt_token: Spanned<Seconds>,
    launch: Spanned<Seconds>,
    graph_launch: Spanned<Seconds>,
    graphs: Spanned<String>,
    max_prefills: Spanned<u64>,
    sync: Spanned<Seconds>,
}

/// Loads the software profile at `path`; every time must be zero or positive and finite, and
/// `graphs` one of `none`, `decode`, `all`.
pub fn load_software(path: &Path) -> Result<Software, ConfigError> {
    let src = Source::read(path)?;
    let raw: RawSoftware = src.parse()?;
    let time = |key: &str, v: &Spanned<Seconds>| {
        let s = *v.get_ref();
        if s.value().is_finite() && s.value() >= 0.0 {
            Ok(s)
        } else {
            Err(src.err(
                v,
                format!("`{key}` must be a finite time, zero or more, found {s}"),
            ))
        }
    };
    let graphs = match raw.graphs.get_ref().as_str() {
        "none" => Graphs::None,
        "decode" => Graphs::Decode,
        "all" => Graphs::All,
        other => {
            return Err(src.err(
                &raw.graphs,
                format!(
                    "unknown `graphs` \"{other}\" (valid: {})",
                    Graphs::NAMES.join(", ")
                ),
            ));
        }
    };
    Ok(Software {
        name: path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        step: time("step", &raw.step)?,
        per_sequence: time("per_sequence", &raw.per_sequence)?,
        per_prompt_token: time("per_prompt_token", &raw.per_prompt_token)?,
        launch: time("launch", &raw.launch)?,
        graph_launch: time("graph_launch", &raw.graph_launch)?,
        graphs,
        max_prefills: match *raw.max_prefills.get_ref() {
            0 => return Err(src.err(&raw.max_prefills, "`max_prefills` must be 1 or more")),
            n => n,
        },
        sync: time("sync", &raw.sync)?,
    })
}
