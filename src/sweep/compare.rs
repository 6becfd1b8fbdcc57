//! `dyad compare`: reports side by side (run reports, serving reports, sweep points), with the
//! ratio of each to the first, per-layer deltas, and the largest movers first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::{SweepError, flatten};

/// One report, flattened to numeric leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Flat {
    /// The argument it was read from (`FILE.json`, `FILE.jsonl#N`).
    pub label: String,
    /// Numeric leaves by dotted path.
    pub values: BTreeMap<String, f64>,
}

/// Reads `FILE.json` (a run or serving report, or any JSON object) or `FILE.jsonl#N` (point `N`
/// of a sweep's JSONL; `FILE.jsonl` alone when it holds one point).
pub fn load(arg: &str) -> Result<Flat, SweepError> {
    let (file, point) = match arg.rsplit_once('#') {
        Some((f, n)) => {
            let n: usize = n.parse().map_err(|_| SweepError::BadPointNumber {
                arg: arg.to_string(),
                n: n.to_string(),
            })?;
            (f, Some(n))
        }
        None => (arg, None),
    };
    let path = Path::new(file);
    let text = std::fs::read_to_string(path).map_err(|error| SweepError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let v: serde_json::Value = if file.ends_with(".jsonl") || point.is_some() {
        sweep_point(arg, file, point)?
    } else {
        serde_json::from_str(&text).map_err(|error| SweepError::NotJson {
            file: file.to_string(),
            error,
        })?
    };
    if !v.is_object() {
        return Err(SweepError::NotAnObject {
            file: file.to_string(),
        });
    }
    // A serving report's metrics and a sweep point's line up under the same names.
    let mut values = flatten(&v);
    values.retain(|k, _| !k.starts_with("timeline") && k != "schema_version");
    Ok(Flat {
        label: arg.to_string(),
        values,
    })
}

/// Point `point` of the JSONL `file` (its only point when `None`) as `{values, serving}`.
fn sweep_point(
    arg: &str,
    file: &str,
    point: Option<usize>,
) -> Result<serde_json::Value, SweepError> {
    let recs = super::runner::read_records(Path::new(file))?;
    let points = recs.len();
    let mut recs = recs.into_iter();
    let r = match point {
        Some(n) => recs
            .find(|r| r.index == n)
            .ok_or_else(|| SweepError::NoSuchPoint {
                file: file.to_string(),
                index: n,
            })?,
        None => match (recs.next(), recs.next()) {
            (Some(only), None) => only,
            _ => {
                return Err(SweepError::WhichPoint {
                    file: file.to_string(),
                    points,
                });
            }
        },
    };
    if let Some(e) = &r.error {
        return Err(SweepError::FailedPoint {
            arg: arg.to_string(),
            error: e.clone(),
        });
    }
    Ok(serde_json::json!({ "values": r.values, "serving": r.metrics }))
}

fn ratio(a: f64, b: f64) -> f64 {
    if a == b {
        1.0
    } else if a == 0.0 {
        f64::INFINITY
    } else {
        b / a
    }
}

/// How far a row moves from the first report: the largest |ln ratio| over the others.
fn movement(a: Option<f64>, rest: &[Option<f64>]) -> f64 {
    rest.iter()
        .map(|b| match (a, b) {
            (Some(a), Some(b)) => {
                let r = ratio(a, *b);
                if r > 0.0 { r.ln().abs() } else { f64::INFINITY }
            }
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |x| format!("{x:.6}"))
}

/// The comparison as Markdown: the metrics that differ, largest movers first (at most `top`
/// rows, all with `None`), then per-layer time deltas.
pub fn render(reports: &[Flat], top: Option<usize>) -> String {
    let mut s = String::new();
    let Some((first, rest)) = reports.split_first() else {
        return s;
    };
    let keys: BTreeSet<&String> = reports.iter().flat_map(|r| r.values.keys()).collect();
    let rows = movers(first, rest, &keys);
    let unchanged = keys.len() - rows.len();
    let shown = top.unwrap_or(usize::MAX).min(rows.len());
    let _ = writeln!(
        s,
        "{} metrics differ ({} shown, largest movers first; ratios are to the first report); {} other values are equal.\n",
        rows.len(),
        shown,
        unchanged
    );
    metric_table(&mut s, reports, &rows[..shown]);
    // Per-layer deltas: layer times of run reports.
    let layer_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("layers[") && k.ends_with("].time_s"))
        .copied()
        .collect();
    if !layer_keys.is_empty() && !rest.is_empty() {
        layer_table(&mut s, first, rest, layer_keys, top);
    }
    s
}

/// Largest first, then by name.
fn by_size_then_name(a: &(f64, &String), b: &(f64, &String)) -> std::cmp::Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.1.cmp(b.1))
}

/// The metrics (not layer or op entries) that move, each with its movement, largest first.
fn movers<'a>(first: &Flat, rest: &[Flat], keys: &BTreeSet<&'a String>) -> Vec<(f64, &'a String)> {
    let mut rows: Vec<(f64, &String)> = keys
        .iter()
        .filter(|k| !k.starts_with("layers[") && !k.starts_with("ops["))
        .map(|k| {
            let others: Vec<Option<f64>> = rest.iter().map(|r| r.values.get(*k).copied()).collect();
            (movement(first.values.get(*k).copied(), &others), *k)
        })
        .filter(|(m, _)| *m > 0.0)
        .collect();
    rows.sort_by(by_size_then_name);
    rows
}

/// A Markdown table's header and rule.
fn header(s: &mut String, head: &[String]) {
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", head.iter().map(|_| "---|").collect::<String>());
}

/// The metric table: each report's value, and each later one's ratio to the first.
fn metric_table(s: &mut String, reports: &[Flat], rows: &[(f64, &String)]) {
    let (first, rest) = (&reports[0], &reports[1..]);
    let mut head = vec!["metric".to_string()];
    for (i, r) in reports.iter().enumerate() {
        head.push(r.label.clone());
        if i > 0 {
            head.push(format!("ratio {}", i + 1));
        }
    }
    header(s, &head);
    for (_, k) in rows {
        let a = first.values.get(*k).copied();
        let mut row = vec![(*k).clone(), num(a)];
        for r in rest {
            let b = r.values.get(*k).copied();
            row.push(num(b));
            row.push(match (a, b) {
                (Some(a), Some(b)) => format!("{:.4}", ratio(a, b)),
                _ => "—".into(),
            });
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
}

/// The per-layer table: layer times, largest change first (at most `top` rows), with each
/// later report's delta to the first.
fn layer_table(
    s: &mut String,
    first: &Flat,
    rest: &[Flat],
    layer_keys: Vec<&String>,
    top: Option<usize>,
) {
    let mut layers: Vec<(f64, &String)> = layer_keys
        .into_iter()
        .map(|k| {
            let a = first.values.get(k).copied().unwrap_or(0.0);
            let d = rest
                .iter()
                .map(|r| (r.values.get(k).copied().unwrap_or(0.0) - a).abs())
                .fold(0.0, f64::max);
            (d, k)
        })
        .collect();
    layers.sort_by(by_size_then_name);
    let _ = writeln!(
        s,
        "\nPer-layer time, largest change first (delta = report − first, in s):\n"
    );
    let mut head = vec!["layer".to_string(), format!("{} (s)", first.label)];
    for (i, r) in rest.iter().enumerate() {
        head.push(format!("{} (s)", r.label));
        head.push(format!("delta {}", i + 2));
    }
    header(s, &head);
    for (_, k) in layers.iter().take(top.unwrap_or(usize::MAX)) {
        let a = first.values.get(*k).copied();
        let name = k.trim_start_matches("layers[").trim_end_matches("].time_s");
        let mut row = vec![name.to_string(), num(a)];
        for r in rest {
            let b = r.values.get(*k).copied();
            row.push(num(b));
            row.push(match (a, b) {
                (Some(a), Some(b)) => format!("{:+.6}", b - a),
                _ => "—".into(),
            });
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(label: &str, kv: &[(&str, f64)]) -> Flat {
        Flat {
            label: label.into(),
            values: kv.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn largest_movers_first_with_ratios_and_layer_deltas() {
        let a = flat(
            "a",
            &[
                ("x", 1.0),
                ("y", 10.0),
                ("same", 3.0),
                ("layers[0].time_s", 2.0),
                ("layers[1].time_s", 1.0),
            ],
        );
        let b = flat(
            "b",
            &[
                ("x", 1.5),
                ("y", 2.5),
                ("same", 3.0),
                ("layers[0].time_s", 2.5),
                ("layers[1].time_s", 0.5),
            ],
        );
        let t = render(&[a, b], None);
        let y = t.find("| y |").unwrap();
        let x = t.find("| x |").unwrap();
        assert!(y < x, "y moved by 4x, x by 1.5x:\n{t}");
        assert!(t.contains("| y | 10.000000 | 2.500000 | 0.2500 |"), "{t}");
        assert!(t.contains("| x | 1.000000 | 1.500000 | 1.5000 |"), "{t}");
        assert!(!t.contains("| same |"));
        assert!(t.starts_with("2 metrics differ"), "{t}");
        assert!(t.contains("| 0 | 2.000000 | 2.500000 | +0.500000 |"), "{t}");
        assert!(t.contains("| 1 | 1.000000 | 0.500000 | -0.500000 |"), "{t}");
    }

    #[test]
    fn a_value_missing_from_one_report_is_a_mover() {
        let t = render(&[flat("a", &[("x", 1.0)]), flat("b", &[])], None);
        assert!(t.contains("| x | 1.000000 | — | — |"), "{t}");
    }
}
