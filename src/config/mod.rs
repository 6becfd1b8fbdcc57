//! Reading input files: arch TOML (with `extends`), model `config.json` or TOML, serving
//! scenarios, and the technology library and die files.
//!
//! Two stages, as ripgrep configures itself: raw values exactly as written, each with the file
//! and span it came from; then resolved domain values (units parsed, `extends` applied, ranges
//! checked). Every error names the file, line and column and the key path.
//!
//! Each loader (`arch`, `model`, `serving`, `tech`) knows only [`source`](Source) (reading,
//! parsing, locations) and `error`, never another loader (`routing` is part of `serving`: its
//! `[routing]` table and routing traces). The entry points below wire them:
//! a scenario's arch and model are loaded here and passed in, and an arch's `[pim.tech]` choice
//! is read by `arch`, its logic die by `tech`, and resolved by the tech model
//! ([`crate::tech::pim::resolve`]) against a library the caller gives, or the shipped one.

mod arch;
mod choice;
mod csv;
mod error;
mod expert_parallel;
mod lengths;
mod model;
mod pipeline;
mod pools;
pub mod presets;
mod replicas;
mod routing;
mod serving;
mod software;
mod source;
mod speculative;
mod tech;

#[cfg(test)]
mod pim_tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use arch::{ArchChain, ArchTech, PimTechSpec};
pub use choice::{TechChoice, TechOverride, check_choice};
pub(crate) use csv::rows as csv_rows;
pub use error::ConfigError;
pub(crate) use model::is_toml;
pub use model::{load_model, load_model_text, model_fields};
pub use pools::load_disagg;
pub use replicas::{MAX_REPLICAS, load_replicas};
pub use serving::{ScenarioFile, ScenarioOverrides, request_trace_line};
pub use software::load_software;
pub(crate) use source::text;
pub use source::{Located, Source};
pub use tech::{DieFile, TECH_DIR, load_die, load_tech_library};

use crate::hw::System;
use crate::model::ModelSpec;
use crate::sim::serving::Scenario;
use crate::tech::Library;
use crate::tech::pim::{PimTechChoice, PimTechError, PimTechValues};

/// Loads an arch file (or a built-in preset path such as `arch/h100.toml`), following `extends`;
/// a `[pim.tech]` is resolved against the shipped library ([`TECH_DIR`]).
pub fn load_arch(path: &Path) -> Result<System, ConfigError> {
    load_arch_with(path, None)
}

/// Loads an arch whose top file reads `text` (an edited copy, as a sweep point makes) instead of
/// the file at `path`; `extends` still resolves relative to `path`.
pub fn load_arch_with(path: &Path, text: Option<Arc<str>>) -> Result<System, ConfigError> {
    load_arch_in(path, text, None)
}

/// Loads an arch, resolving its `[pim.tech]` against `lib` (`dyad ppa --tech DIR`), or, when
/// `None`, against the library in [`TECH_DIR`] (read only if the arch has a `[pim.tech]`).
pub fn load_arch_in(
    path: &Path,
    text: Option<Arc<str>>,
    lib: Option<&Library>,
) -> Result<System, ConfigError> {
    let chain = ArchChain::read(path, text)?;
    let values = match chain.pim_tech()? {
        None => None,
        Some(spec) => Some(match lib {
            Some(lib) => pim_tech(&spec, lib)?,
            None => pim_tech(&spec, &load_tech_library(Path::new(TECH_DIR))?)?,
        }),
    };
    chain.system(values.as_ref())
}

/// Reads `[xpu.tech]` of an arch file; `None` when the arch names no technology.
pub fn load_arch_tech(path: &Path) -> Result<Option<ArchTech>, ConfigError> {
    ArchChain::read(path, None)?.xpu_tech()
}

/// The plain TOML tables of an arch's `extends` chain, top file first, each with its path.
pub fn arch_tables(path: &Path) -> Result<Vec<(PathBuf, toml::Table)>, ConfigError> {
    ArchChain::read(path, None)?.tables()
}

/// The text of an input file (from disk, or the built-in presets), for callers that edit it.
pub fn source_text(path: &Path) -> Result<Arc<str>, ConfigError> {
    Ok(Source::read(path)?.text().clone())
}

/// What `[pim.tech]` gives: its logic die read against `lib`, the arch's node, device and
/// layout checked there, and the fit of the die in that technology.
fn pim_tech(spec: &PimTechSpec, lib: &Library) -> Result<PimTechValues, ConfigError> {
    let die = load_die(&spec.die, lib)?;
    let mut chosen = die.tech.clone();
    chosen.apply(&spec.tech, Some("pim.tech"), lib)?;
    check_choice(lib, &chosen)?;
    let choice = PimTechChoice {
        die: die.spec,
        reference: die.tech.name(),
        technology: chosen.name(),
        die_area: spec.die_area,
        power_budget: spec.power_budget,
        explicit: spec.explicit,
    };
    crate::tech::pim::resolve(lib, &choice).map_err(|e| match &e {
        PimTechError::Reference { .. } => die.tech.node.err(e.to_string()),
        PimTechError::Technology { .. } => chosen.node.err(e.to_string()),
    })
}

/// Loads a serving scenario; `arch` and `model` paths are relative to the scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, ConfigError> {
    load_scenario_with(path, source_text(path)?, None)
}

/// Loads a scenario with the values of `o` in place of the file's (`dyad run --serving S --arch
/// duplex`): an arch or model `o` names is read instead of the file's, relative to the working
/// folder, and every check of the loader applies to the result.
pub fn load_scenario_overridden(
    path: &Path,
    o: &ScenarioOverrides,
) -> Result<Scenario, ConfigError> {
    let file = ScenarioFile::parse(Source::new(path, source_text(path)?))?;
    let sys = match &o.arch {
        Some(a) => load_arch(a)?,
        None => load_arch(&file.arch_path()).map_err(|e| file.named_file_error("arch", e))?,
    };
    let model = match &o.model {
        Some(m) => load_model(m)?,
        None => load_model(&file.model_path()).map_err(|e| file.named_file_error("model", e))?,
    };
    let software = o.software.clone().or_else(|| file.software_path());
    let file = with_draft(file)?;
    with_software(file.resolve_with(sys, model, o)?, software.as_deref(), path)
}

/// `s` with the software profile at `software` (when given) loaded into it; a profile and
/// `timing = "host"` both charge each op's dispatch, so they are refused together.
fn with_software(
    mut s: Scenario,
    software: Option<&Path>,
    scenario: &Path,
) -> Result<Scenario, ConfigError> {
    let Some(p) = software else { return Ok(s) };
    if let Some(pp) = s.pipeline {
        return Err(ConfigError::file(
            scenario,
            format!(
                "software profile {} (`software` or --software) with {} pipeline stages: a profile's framework time per iteration is not split over stages",
                p.display(),
                pp.stages
            ),
        )
        .with_help("run a pipeline on kernel time alone: leave out `software` and --software"));
    }
    if s.timing == crate::hw::Timing::Host {
        return Err(ConfigError::file(
            scenario,
            format!(
                "software profile {} with timing \"host\": both charge each op's dispatch",
                p.display()
            ),
        )
        .with_help("use timing = \"kernel\" with a software profile"));
    }
    s.software = Some(load_software(p)?);
    Ok(s)
}

/// The arch file a scenario names, resolved against the scenario's folder.
pub fn scenario_arch_path(path: &Path, text: &Arc<str>) -> Result<PathBuf, ConfigError> {
    Ok(ScenarioFile::parse(Source::new(path, text.clone()))?.arch_path())
}

/// Loads a scenario from `text` (an edited copy of the file at `path`; relative paths still
/// resolve from `path`), with the arch's top file read from `arch_text` when given.
pub fn load_scenario_with(
    path: &Path,
    text: Arc<str>,
    arch_text: Option<Arc<str>>,
) -> Result<Scenario, ConfigError> {
    load_scenario_with_model(path, text, arch_text, None)
}

/// [`load_scenario_with`], with `model` (a sweep point's) in place of the model file the
/// scenario names when given.
pub fn load_scenario_with_model(
    path: &Path,
    text: Arc<str>,
    arch_text: Option<Arc<str>>,
    model: Option<ModelSpec>,
) -> Result<Scenario, ConfigError> {
    let file = ScenarioFile::parse(Source::new(path, text))?;
    let software = file.software_path();
    let sys = load_arch_with(&file.arch_path(), arch_text)
        .map_err(|e| file.named_file_error("arch", e))?;
    let model = match model {
        Some(m) => m,
        None => load_model(&file.model_path()).map_err(|e| file.named_file_error("model", e))?,
    };
    let file = with_draft(file)?;
    with_software(file.resolve(sys, model)?, software.as_deref(), path)
}

/// `file` with the speculative draft model it names (if any) loaded.
fn with_draft(mut file: ScenarioFile) -> Result<ScenarioFile, ConfigError> {
    let Some(p) = file.draft_model_path() else {
        return Ok(file);
    };
    let m = load_model(&p).map_err(|e| file.named_file_error("speculative.draft_model", e))?;
    file.draft = Some(m);
    Ok(file)
}

/// The model file a scenario names, resolved against the scenario's folder.
pub fn scenario_model_path(path: &Path, text: &Arc<str>) -> Result<PathBuf, ConfigError> {
    Ok(ScenarioFile::parse(Source::new(path, text.clone()))?.model_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    /// A copy of the shipped library in a temporary folder, with `edit` applied to `nodes.toml`.
    fn library_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["nodes.toml", "devices.toml", "model.toml"] {
            let text = std::fs::read_to_string(root("arch/tech").join(f)).unwrap();
            let text = if f == "nodes.toml" { edit(&text) } else { text };
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        dir
    }

    /// `nodes.toml` with n2's supply voltage set to `vdd`.
    fn n2_vdd(text: &str, vdd: &str) -> String {
        let at = text.find("name = \"n2\"").unwrap();
        let (head, tail) = text.split_at(at);
        format!(
            "{head}{}",
            tail.replacen("vdd_v = 0.7", &format!("vdd_v = {vdd}"), 1)
        )
    }

    #[test]
    fn a_given_library_reaches_the_arch_pim_tech() {
        let arch = root("arch/duplex-n2-ffet.toml");
        let shipped = load_arch(&arch).unwrap().pim.unwrap();
        let same = library_copy(|t| t.to_string());
        let lib = load_tech_library(same.path()).unwrap();
        let copy = load_arch_in(&arch, None, Some(&lib)).unwrap().pim.unwrap();
        assert_eq!(copy, shipped, "an unchanged copy gives the shipped values");

        // A lower n2 supply: less switching energy per FLOP, so more modules under the budget.
        let cooler = library_copy(|t| n2_vdd(t, "0.5"));
        let lib = load_tech_library(cooler.path()).unwrap();
        let p = load_arch_in(&arch, None, Some(&lib)).unwrap().pim.unwrap();
        assert!(p.flop_energy < shipped.flop_energy, "{p:?}");
        assert!(p.modules >= shipped.modules, "{p:?}");
        assert_eq!(p.origin, shipped.origin);
    }

    #[test]
    fn a_broken_library_is_an_error_at_its_file() {
        let broken = library_copy(|t| n2_vdd(t, "-1"));
        let e = load_tech_library(broken.path()).unwrap_err();
        assert!(e.path().starts_with(broken.path()), "{e}");
        assert!(e.message().contains("vdd_v"), "{e}");
    }

    #[test]
    fn a_library_without_the_pim_tech_node_is_an_error_at_the_arch_key() {
        let renamed = library_copy(|t| t.replace("name = \"n2\"", "name = \"n2x\""));
        let lib = load_tech_library(renamed.path()).unwrap();
        let arch = root("arch/duplex-n2-ffet.toml");
        let e = load_arch_in(&arch, None, Some(&lib)).unwrap_err();
        assert_eq!(e.path(), arch, "{e}");
        assert!(
            e.message().contains("`pim.tech.node`: unknown node `n2`"),
            "{e}"
        );
        assert!(e.message().contains("n2x"), "{e}");
    }

    /// Invariant: a loader depends on `source`, `error`, `choice` and `presets`, never on
    /// another loader; `mod.rs` wires them.
    #[test]
    fn no_loader_imports_another() {
        const LOADERS: [&str; 5] = ["arch", "model", "serving", "software", "tech"];
        for file in LOADERS {
            let text = std::fs::read_to_string(root(&format!("src/config/{file}.rs"))).unwrap();
            for other in LOADERS.iter().filter(|o| **o != file) {
                for path in [format!("super::{other}"), format!("config::{other}")] {
                    assert!(!text.contains(&path), "src/config/{file}.rs uses `{path}`");
                }
            }
        }
    }
}
