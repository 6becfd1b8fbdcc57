//! Design-space sweeps: a grid of serving scenarios from one file, run in parallel, resumable and
//! shardable, with Pareto fronts, CSV and plots; and `compare`, which sets reports side by side.
//!
//! One idea per file: `range` (the value grammar), `constraint`, `file` (the sweep file and how a
//! value reaches the loaders), `error` (what stops a sweep), `runner` (parallel runs, JSONL,
//! resume, shards, merge), `output` (CSV, Pareto front, plots), `iteration` (one point's
//! roofline and layers), `compare`.
//!
//! *Reads the sweep file and the JSON files it compares, and writes its outputs; every model
//! input still goes through `config`.*

pub mod compare;
pub mod constraint;
mod error;
pub mod file;
pub mod iteration;
pub mod output;
pub mod range;
pub mod runner;

use std::collections::BTreeMap;

pub use error::SweepError;
pub use file::{Axis, Objective, Point, PointError, Sense, Sweep};
pub use runner::{Record, RunOptions, RunSummary, merge, read_records, run};

/// Numeric leaves of a JSON value by dotted path (`serving.ttft_s.p90`, `layers[3].time_s`).
/// Array items that carry a `name` (ops) or a `layer` number are keyed by it rather than by
/// position, so two reports line up even when their lists differ in length.
pub fn flatten(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

fn walk(v: &serde_json::Value, path: String, out: &mut BTreeMap<String, f64>) {
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
                walk(x, join(k), out);
            }
        }
        J::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let id = match (x.get("name"), x.get("layer"), x.get("unit")) {
                    (Some(J::String(n)), l, u) => {
                        let mut s = n.clone();
                        if let Some(J::Number(l)) = l {
                            s = format!("{s}@{l}");
                        }
                        if let Some(J::String(u)) = u {
                            s = format!("{s}/{u}");
                        }
                        s
                    }
                    (None, Some(J::Number(l)), _) => l.to_string(),
                    _ => i.to_string(),
                };
                walk(x, format!("{path}[{id}]"), out);
            }
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
            r#"{"a": {"b": 2, "s": "x"}, "ops": [{"name": "qkv", "layer": 0, "t": 1.5}],
                "layers": [{"layer": 3, "time_s": 4}], "xs": [7, null], "ok": true}"#,
        )
        .unwrap();
        let f = flatten(&v);
        let want: BTreeMap<String, f64> = [
            ("a.b", 2.0),
            ("ops[qkv@0].layer", 0.0),
            ("ops[qkv@0].t", 1.5),
            ("layers[3].layer", 3.0),
            ("layers[3].time_s", 4.0),
            ("xs[0]", 7.0),
            ("ok", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(f, want);
    }
}
