//! The sweep file: a base serving scenario, axes over its config keys, constraints, objectives.
//!
//! ```toml
//! scenario = "../../workloads/serving/closed-b32-256-256.toml"   # relative to this file
//! combine = "product"                                            # or "zip"
//! objectives = ["max output_tokens_per_s", "min energy_per_output_token_j"]
//! constraints = ["batching.max_batch <= 64", "ttft_s.p90 < 5"]
//!
//! [[axis]]
//! key = "arch.pim.modules"        # `arch.` keys edit the arch file; others the scenario file
//! values = "8..=32 x2"            # the range grammar of `range.rs`, or a TOML array
//! ```
//!
//! **How an axis value reaches the model.** The base scenario and the top file of its arch are
//! read once as plain TOML tables. For each point the key is set in a copy of the right table,
//! the copy is written back to TOML text, and the normal loaders (`config::load_scenario_with`)
//! read that text as if it were the file at the original path: relative paths and `extends`
//! resolve as before, and every check the loaders make applies to every point. A key must
//! already be set in the scenario file or somewhere in the arch's `extends` chain, so a typo is
//! caught when the sweep file is read, with the valid keys nearby.
//!
//! `model` and `model.KEY` axes vary the model instead (the files it names, or keys of the
//! model file): see `models.rs`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::constraint::Constraint;
use super::models::{Models, check_model_key, is_model_key, read_models};
use super::range::parse_values;
use crate::config::{self, ConfigError};

mod read;
use read::{read_combine, read_constraints, read_objectives};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    scenario: Spanned<String>,
    combine: Option<Spanned<String>>,
    #[serde(default)]
    objectives: Vec<Spanned<String>>,
    #[serde(default)]
    constraints: Vec<Spanned<String>>,
    axis: Vec<RawAxis>,
    capacity: Option<RawCapacity>,
}

/// `[capacity]`: the highest rate each point sustains under these limits (`sweep::capacity`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    ttft_p99: Option<f64>,
    tpot_p99: Option<f64>,
    seeds: Option<u64>,
    start: Option<f64>,
    tolerance: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAxis {
    pub(super) key: Spanned<String>,
    pub(super) values: Spanned<toml::Value>,
}

/// Whether an objective is maximised or minimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    /// Larger is better (`max METRIC`).
    Max,
    /// Smaller is better (`min METRIC`).
    Min,
}

/// One objective: a metric and its sense.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// A metric's flattened name, or an axis key.
    pub metric: String,
    /// Whether it is maximised or minimised.
    pub sense: Sense,
}

/// One axis: a key path and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The dotted key (`arch.pim.modules`, `batching.max_batch`).
    pub key: String,
    /// Its values in order, as TOML values set into the files.
    pub values: Vec<toml::Value>,
}

/// A design point: its id among the points that run, its index in the full grid, and the value
/// of each axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its id: its position among the points left after the axis-only constraints (0..n-1, no
    /// holes), which names it in every output (`points.jsonl#N`).
    pub index: usize,
    /// Its index in the full grid, before constraints (the grid's own order).
    pub grid: usize,
    /// Each axis's key and value, in file order.
    pub values: Vec<(String, toml::Value)>,
}

/// A sweep file, read and checked.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file.
    pub path: PathBuf,
    /// The base scenario it names.
    pub scenario_path: PathBuf,
    scenario: toml::Table,
    arch: toml::Table,
    /// The axes, in file order (the last varies fastest).
    pub axes: Vec<Axis>,
    /// Whether the axes are zipped (`combine = "zip"`) rather than crossed.
    pub zip: bool,
    /// The objectives of the Pareto front.
    pub objectives: Vec<Objective>,
    /// The constraints, over axis keys and metrics.
    pub constraints: Vec<Constraint>,
    /// The scenario's own seed (0 when unset), from which each point's seed is drawn.
    pub base_seed: u64,
    /// The model files the `model` and `model.KEY` axes edit.
    models: Models,
    /// The capacity search each point runs (`[capacity]`), adding its metrics.
    pub capacity: Option<super::capacity::PointCapacity>,
}

/// Every metric a point reports, by its flattened name (`ttft_s.p90`).
pub fn metric_names() -> Vec<String> {
    let m = crate::report::serving::ServingMetrics::default();
    let v = serde_json::to_value(m).expect("metrics serialize");
    super::flatten(&v).into_keys().collect()
}

/// Leaf key paths of a table, dotted, under `prefix`.
fn leaves(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let p = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => leaves(sub, &p, out),
            _ => out.push(p),
        }
    }
}

fn lookup<'a>(t: &'a toml::Table, parts: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = parts.split_first()?;
    let v = t.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        lookup(v.as_table()?, rest)
    }
}

/// Sets `parts` in `t`, creating tables on the way.
fn set(t: &mut toml::Table, parts: &[&str], value: toml::Value) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        t.insert((*first).to_string(), value);
        return;
    }
    let e = t
        .entry((*first).to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !e.is_table() {
        *e = toml::Value::Table(toml::Table::new());
    }
    if let toml::Value::Table(sub) = e {
        set(sub, rest, value);
    }
}

/// The keys an axis may name: `arch.`-prefixed leaves of the arch chain and leaves of the
/// scenario, sorted and without duplicates.
fn valid_keys(scenario: &toml::Table, chain: &[(PathBuf, toml::Table)]) -> Vec<String> {
    let mut keys = Vec::new();
    leaves(scenario, "", &mut keys);
    for (_, t) in chain {
        let mut a = Vec::new();
        leaves(t, "arch", &mut a);
        keys.extend(a.into_iter().filter(|k| k != "arch.extends"));
    }
    keys.retain(|k| k != "arch");
    keys.sort();
    keys.dedup();
    keys
}

/// The valid keys nearest `key`: those under its longest existing prefix (at most 12).
fn nearby(key: &str, valid: &[String]) -> Vec<String> {
    let parts: Vec<&str> = key.split('.').collect();
    for n in (0..parts.len()).rev() {
        let prefix = parts[..n].join(".");
        let under: Vec<String> = valid
            .iter()
            .filter(|k| n == 0 || k.starts_with(&format!("{prefix}.")))
            .take(12)
            .cloned()
            .collect();
        if !under.is_empty() {
            return under;
        }
    }
    Vec::new()
}

/// The sweep file's text, kept so that an error can point into it.
pub(super) struct SweepText<'a> {
    pub(super) path: &'a Path,
    text: Arc<str>,
}

impl<'a> SweepText<'a> {
    /// Reads and parses the sweep file.
    fn read(path: &'a Path) -> Result<(SweepText<'a>, RawSweep), ConfigError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        let text: Arc<str> = crate::config::text(path, bytes)?.into();
        let raw: RawSweep = toml::from_str(&text).map_err(|e| match e.span() {
            Some(s) => ConfigError::at(path, &text, s, e.message().trim()),
            None => ConfigError::file(path, e.message().trim()),
        })?;
        Ok((SweepText { path, text }, raw))
    }

    /// An error at `span` of the sweep file.
    pub(super) fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, &self.text, span, message)
    }
}

/// The files a sweep edits: the base scenario's table and its arch's `extends` chain.
pub(super) struct Base {
    scenario_path: PathBuf,
    scenario: toml::Table,
    chain: Vec<(PathBuf, toml::Table)>,
    pub(super) model_path: PathBuf,
}

impl Base {
    /// Loads the scenario the sweep file names (relative to the sweep file) and its arch chain.
    /// The base must load on its own: its mistakes are its own file's, not the sweep's.
    fn load(src: &SweepText, scenario: &Spanned<String>) -> Result<Base, ConfigError> {
        let scenario_path = src
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .join(scenario.get_ref());
        let stext = config::source_text(&scenario_path)
            .map_err(|e| src.at(scenario.span(), format!("scenario: {e}")))?;
        config::load_scenario_with(&scenario_path, stext.clone(), None)?;
        let table: toml::Table = toml::from_str(&stext)
            .map_err(|e| ConfigError::file(&scenario_path, e.message().trim()))?;
        let arch_path = config::scenario_arch_path(&scenario_path, &stext)?;
        let chain = config::arch_tables(&arch_path)?;
        let model_path = config::scenario_model_path(&scenario_path, &stext)?;
        Ok(Base {
            scenario_path,
            scenario: table,
            chain,
            model_path,
        })
    }

    /// The value `key` has in the base files: `arch.` keys anywhere in the arch chain (the
    /// first file that sets it), other keys in the scenario.
    fn value_of(&self, key: &str) -> Option<&toml::Value> {
        let parts: Vec<&str> = key.split('.').collect();
        match parts.split_first() {
            Some((&"arch", rest)) if !rest.is_empty() => {
                self.chain.iter().find_map(|(_, t)| lookup(t, rest))
            }
            _ => lookup(&self.scenario, &parts),
        }
    }
}

/// The axes in file order, each key checked against the base files (the model files for
/// `model.` keys) and its values expanded; and the model files they edit.
fn read_axes(
    src: &SweepText,
    raw: &[RawAxis],
    base: &Base,
) -> Result<(Vec<Axis>, Models), ConfigError> {
    let valid = valid_keys(&base.scenario, &base.chain);
    let models = read_models(src, raw, base)?;
    let mut axes: Vec<Axis> = Vec::new();
    for a in raw {
        let key = a.key.get_ref().trim().to_string();
        if is_model_key(&key) {
            check_model_key(src, &a.key, &key, &models)?;
        } else {
            check_key(src, &a.key, &key, base, &valid)?;
        }
        if axes.iter().any(|x| x.key == key) {
            return Err(src.at(a.key.span(), format!("`{key}` is swept twice")));
        }
        let values = axis_values(src, &a.values, &key)?;
        axes.push(Axis { key, values });
    }
    Ok((axes, models))
}

/// A key must name a value already set in the base files, and not a file.
fn check_key(
    src: &SweepText,
    spanned: &Spanned<String>,
    key: &str,
    base: &Base,
    valid: &[String],
) -> Result<(), ConfigError> {
    let nearby = || format!("valid keys nearby: {}", nearby(key, valid).join(", "));
    match base.value_of(key) {
        None => Err(src
            .at(spanned.span(), format!("unknown key `{key}`"))
            .with_help(nearby())),
        Some(toml::Value::Table(_)) => Err(src
            .at(spanned.span(), format!("`{key}` is a table, not a value"))
            .with_help(nearby())),
        Some(_) if key == "arch" || key == "arch.extends" => Err(src.at(
            spanned.span(),
            format!("`{key}` names a file; sweep the keys inside it instead"),
        )),
        Some(_) => Ok(()),
    }
}

/// An axis's values: a string in the range grammar, a non-empty array, or a single value.
pub(super) fn axis_values(
    src: &SweepText,
    values: &Spanned<toml::Value>,
    key: &str,
) -> Result<Vec<toml::Value>, ConfigError> {
    match values.get_ref() {
        toml::Value::String(s) => {
            parse_values(s).map_err(|m| src.at(values.span(), format!("`{key}`: {m}")))
        }
        toml::Value::Array(v) if !v.is_empty() => Ok(v.clone()),
        toml::Value::Array(_) => Err(src.at(values.span(), format!("`{key}`: no values"))),
        v => Ok(vec![v.clone()]),
    }
}

/// The `[capacity]` table, checked: limits, seeds and start positive, tolerance in (0, 1).
fn read_capacity(
    path: &Path,
    raw: Option<&RawCapacity>,
) -> Result<Option<super::capacity::PointCapacity>, ConfigError> {
    let Some(r) = raw else { return Ok(None) };
    let pos = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
    let tol = r.tolerance.unwrap_or(0.02);
    let seeds = r.seeds.unwrap_or(3);
    if !(pos(r.ttft_p99) && pos(r.tpot_p99) && pos(r.start) && seeds >= 1 && tol > 0.0 && tol < 1.0)
    {
        return Err(ConfigError::file(
            path,
            "[capacity]: ttft_p99, tpot_p99 and start must be positive, seeds at least 1, tolerance in (0, 1)",
        ));
    }
    Ok(Some(super::capacity::PointCapacity {
        slo: super::capacity::Slo {
            ttft_p99: r.ttft_p99,
            tpot_p99: r.tpot_p99,
        },
        search: super::capacity::SearchOptions {
            seeds,
            rel_tol: tol,
            ..super::capacity::SearchOptions::default()
        },
        start: r.start,
    }))
}

/// The most points of a crossed grid (`combine = "product"`), each a serving run.
pub const MAX_POINTS: usize = 1_000_000;

impl Sweep {
    /// Reads a sweep file, its base scenario and arch, and checks every key, range, constraint
    /// and objective, pointing at the sweep file's line for each mistake.
    pub fn load(path: &Path) -> Result<Sweep, ConfigError> {
        let (src, raw) = SweepText::read(path)?;
        let base = Base::load(&src, &raw.scenario)?;
        if raw.axis.is_empty() {
            return Err(ConfigError::file(
                path,
                "a sweep needs at least one [[axis]]",
            ));
        }
        let (axes, models) = read_axes(&src, &raw.axis, &base)?;
        let zip = read_combine(&src, raw.combine.as_ref(), (&axes, &raw.axis))?;
        let capacity = read_capacity(path, raw.capacity.as_ref())?;
        let mut metrics = metric_names();
        if capacity.is_some() {
            metrics.extend(super::capacity::METRICS.map(String::from));
        }
        let objectives = read_objectives(&src, &raw.objectives, &axes, &metrics)?;
        let constraints = read_constraints(&src, &raw.constraints, &axes, &metrics)?;
        let base_seed = base
            .scenario
            .get("seed")
            .and_then(toml::Value::as_integer)
            .map_or(0, |s| s as u64);
        Ok(Sweep {
            path: path.to_path_buf(),
            scenario_path: base.scenario_path,
            arch: base
                .chain
                .first()
                .map(|(_, t)| t.clone())
                .unwrap_or_default(),
            scenario: base.scenario,
            axes,
            zip,
            objectives,
            constraints,
            base_seed,
            models,
            capacity,
        })
    }

    /// Every metric its points report: the serving metrics, and with `[capacity]` its two.
    pub fn metric_names(&self) -> Vec<String> {
        let mut m = metric_names();
        if self.capacity.is_some() {
            m.extend(super::capacity::METRICS.map(String::from));
        }
        m
    }

    /// Every point of the grid, in order, before constraints (each id is its grid index).
    pub fn grid(&self) -> Vec<Point> {
        let n = if self.zip {
            self.axes[0].values.len()
        } else {
            self.axes.iter().map(|a| a.values.len()).product()
        };
        (0..n)
            .map(|index| {
                let mut rem = index;
                let mut values = vec![(String::new(), toml::Value::Integer(0)); self.axes.len()];
                // The last axis varies fastest.
                for (i, a) in self.axes.iter().enumerate().rev() {
                    let k = if self.zip {
                        index
                    } else {
                        let k = rem % a.values.len();
                        rem /= a.values.len();
                        k
                    };
                    values[i] = (a.key.clone(), a.values[k].clone());
                }
                Point {
                    index,
                    grid: index,
                    values,
                }
            })
            .collect()
    }

    /// The points to run: the grid less those an axis-only constraint drops, numbered 0..n-1
    /// in grid order (each keeps its grid index in `grid`).
    pub fn points(&self) -> Vec<Point> {
        self.grid()
            .into_iter()
            .filter(|p| {
                let vals = axis_numbers(p);
                self.constraints
                    .iter()
                    .all(|c| c.check(&|k| vals.get(k).copied()) != Some(false))
            })
            .enumerate()
            .map(|(index, p)| Point { index, ..p })
            .collect()
    }

    /// The seed of a point: the base seed mixed with the point's values (FNV-1a), so it depends
    /// on what the point is, not on where or in which order it runs.
    pub fn seed(&self, p: &Point) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.base_seed;
        for (k, v) in &p.values {
            for b in format!("{k}={v};").bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The scenario of a point: the base files with the point's values set, read by the normal
    /// loaders. An error names the point, not a line of the edited text.
    pub fn scenario(&self, p: &Point) -> Result<crate::sim::serving::Scenario, PointError> {
        let mut s = self.scenario.clone();
        let mut a = self.arch.clone();
        let mut arch_edited = false;
        for (k, v) in &p.values {
            let parts: Vec<&str> = k.split('.').collect();
            if is_model_key(k) {
                continue;
            } else if parts[0] == "arch" && parts.len() > 1 {
                set(&mut a, &parts[1..], v.clone());
                arch_edited = true;
            } else {
                set(&mut s, &parts, v.clone());
            }
        }
        let arch_text: Option<Arc<str>> = if arch_edited {
            Some(toml::to_string(&a)?.into())
        } else {
            None
        };
        let text = toml::to_string(&s)?.into();
        let load = |error| PointError::Load {
            index: p.index,
            values: p.values.clone(),
            error,
        };
        let model = Some(self.models.model_of(&p.values).map_err(load)?);
        let mut sc = config::load_scenario_with_model(&self.scenario_path, text, arch_text, model)
            .map_err(load)?;
        sc.seed = self.seed(p);
        Ok(sc)
    }
}

/// Why a point's scenario cannot be built. The point is recorded as failed; the rest run.
#[derive(Debug, thiserror::Error)]
pub enum PointError {
    /// An edited table does not write back as TOML text.
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
    /// The loaders reject the point's files (a value out of range, a check between keys).
    #[error("point {index} ({}): {}", show_values(values), error.message())]
    Load {
        /// The point's index in the grid.
        index: usize,
        /// The point's axis values.
        values: Vec<(String, toml::Value)>,
        /// What the loader found (its message is part of this one's).
        error: ConfigError,
    },
}

/// `key = value, key = value`.
fn show_values(values: &[(String, toml::Value)]) -> String {
    let vals: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    vals.join(", ")
}

/// A point's numeric axis values by key (for constraints).
pub fn axis_numbers(p: &Point) -> BTreeMap<String, f64> {
    p.values
        .iter()
        .filter_map(|(k, v)| {
            let x = match v {
                toml::Value::Integer(n) => *n as f64,
                toml::Value::Float(x) => *x,
                _ => return None,
            };
            Some((k.clone(), x))
        })
        .collect()
}
