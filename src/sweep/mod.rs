//! Design-space sweeps: a grid of serving scenarios from one file, run in parallel, resumable and
//! shardable, with Pareto fronts, CSV and plots; and `compare`, which sets reports side by side.
//!
//! One idea per file: `range` (the value grammar), `constraint`, `file` (the sweep file and how a
//! value reaches the loaders), `models` (axes over the model and its keys), `error` (what stops
//! a sweep), `runner` (parallel runs, JSONL, resume, shards, merge), `slurm` (the array job
//! scripts), `status` (points done in a run in progress), `output` (CSV, Pareto front, plots),
//! `iteration` (one point's roofline and layers), `capacity` (the highest rate under latency
//! limits, per scenario or per point), `compare`.
//!
//! *Reads the sweep file and the JSON files it compares, and writes its outputs; every model
//! input still goes through `config`.*

pub mod capacity;
pub mod compare;
pub mod constraint;
mod error;
pub mod file;
pub mod iteration;
mod models;
pub mod output;
pub mod range;
pub mod runner;
pub mod slurm;
pub mod status;

use std::collections::BTreeMap;

pub use error::SweepError;
pub use file::{Axis, Objective, Point, PointError, Sense, Sweep};
pub use runner::{MAX_JOBS, Record, RunOptions, RunSummary, merge, read_records, run};

/// Numeric leaves of a JSON value by dotted path (`serving.ttft_s.p90`, `layers[3].time_s`).
/// Array items that carry a `name` (ops) or a `layer` number are keyed by it rather than by
/// position (`ops[L3 expert_2].time_s`, `ops[lm_head].flops`, `layers[3].time_s`), so two
/// reports line up even when their lists differ in length or order; the `layer` that keys an
/// item is not a leaf of its own. A key met twice in one list gets ` #2`, ` #3`, ….
pub fn flatten(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    walk(v, String::new(), false, &mut out);
    out
}

/// [`flatten`], keeping `null` leaves as NaN: serde_json writes an infinite or NaN number as
/// `null`, and a comparison must show it rather than lose it.
pub fn flatten_with_nulls(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    walk(v, String::new(), true, &mut out);
    out
}

/// The key of an array item: `L3 name` for a named op in a layer, `name` outside the layers,
/// the layer number for a layer entry, else the position. The second is whether `layer` keys it.
fn item_key(x: &serde_json::Value, i: usize) -> (String, bool) {
    use serde_json::Value as J;
    match (x.get("name"), x.get("layer")) {
        (Some(J::String(n)), Some(J::Number(l))) => (format!("L{l} {n}"), true),
        (Some(J::String(n)), _) => (n.clone(), true),
        (None, Some(J::Number(l))) => (l.to_string(), true),
        _ => (i.to_string(), false),
    }
}

fn walk(v: &serde_json::Value, path: String, nulls: bool, out: &mut BTreeMap<String, f64>) {
    use serde_json::Value as J;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        J::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                out.insert(path, x);
            }
        }
        J::Bool(b) => {
            out.insert(path, f64::from(u8::from(*b)));
        }
        J::Object(m) => {
            for (k, x) in m {
                walk(x, join(k), nulls, out);
            }
        }
        J::Array(items) => {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (i, x) in items.iter().enumerate() {
                let (id, keyed) = item_key(x, i);
                let n = seen.entry(id.clone()).or_insert(0);
                *n += 1;
                let id = if *n > 1 { format!("{id} #{n}") } else { id };
                match (keyed, x) {
                    (true, J::Object(m)) => {
                        for (k, y) in m.iter().filter(|(k, _)| *k != "layer") {
                            walk(y, format!("{path}[{id}].{k}"), nulls, out);
                        }
                    }
                    _ => walk(x, format!("{path}[{id}]"), nulls, out),
                }
            }
        }
        J::Null if nulls => {
            out.insert(path, f64::NAN);
        }
        J::Null | J::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_keys_lists_by_name_and_layer() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"a": {"b": 2, "s": "x"},
                "ops": [{"name": "qkv", "layer": 0, "unit": "xpu", "t": 1.5},
                        {"name": "qkv", "layer": 0, "t": 2.5},
                        {"name": "head", "layer": null, "t": 3}],
                "layers": [{"layer": 3, "time_s": 4}], "xs": [7, null], "ok": true}"#,
        )
        .unwrap();
        let f = flatten(&v);
        let want: BTreeMap<String, f64> = [
            ("a.b", 2.0),
            ("ops[L0 qkv].t", 1.5),
            ("ops[L0 qkv #2].t", 2.5),
            ("ops[head].t", 3.0),
            ("layers[3].time_s", 4.0),
            ("xs[0]", 7.0),
            ("ok", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(f, want);
        let n = flatten_with_nulls(&v);
        assert!(n["xs[1]"].is_nan());
        assert_eq!(n.len(), want.len() + 1, "only the null leaf is added");
    }
}
