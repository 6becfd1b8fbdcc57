//! `dyad compare`: reports side by side (run reports, serving reports, sweep points). Every
//! numeric value is compared, per-op values included (ops line up by name and layer); each is
//! equal, changed (ranked by relative change), changed from zero, new, missing or not finite,
//! and each kind is counted and listed apart. Numbers keep 4 significant digits.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::{SweepError, flatten_with_nulls};
use crate::units;

/// One report, flattened to numeric leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Flat {
    /// The argument it was read from (`FILE.json`, `FILE.jsonl#N`).
    pub label: String,
    /// Numeric leaves by dotted path; NaN where the JSON holds `null` (an infinite or NaN
    /// number when it was written).
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
    let bytes = std::fs::read(path).map_err(|error| SweepError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let not_a_report = |why: String| SweepError::NotAReport {
        file: file.to_string(),
        why,
    };
    let text = crate::config::text(path, bytes).map_err(|e| not_a_report(e.message().into()))?;
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
    if point.is_none() && !file.ends_with(".jsonl") {
        let version = v.get("schema_version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(crate::report::SCHEMA_VERSION)) {
            return Err(not_a_report(format!(
                "`schema_version` is {}, not {} (run and serving reports from this dyad have it)",
                v.get("schema_version")
                    .map_or("missing".into(), |x| x.to_string()),
                crate::report::SCHEMA_VERSION
            )));
        }
        crate::report::guard::check("compared", &v)
            .map_err(|e| not_a_report(format!("`{}` = {} {}", e.figure, e.value, e.rule)))?;
    }
    // A serving report's metrics and a sweep point's line up under the same names.
    let mut values = flatten_with_nulls(&v);
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
                points,
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

/// What a value does across the reports, against the first: the section it is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The same in every report.
    Equal,
    /// Finite everywhere and nonzero in the first, different in a later one.
    Changed,
    /// Zero in the first report and nonzero in a later one: no relative change exists.
    FromZero,
    /// Absent from the first report.
    New,
    /// In the first report, absent from a later one.
    Missing,
    /// Infinite or NaN (`null` in the JSON) in some report.
    NotFinite,
}

/// The sections of the comparison, in order: (kind, heading, what it holds).
const SECTIONS: [(Kind, &str, &str); 5] = [
    (Kind::Changed, "Changed", "largest relative change first"),
    (
        Kind::FromZero,
        "Changed from zero",
        "zero in the first report; no relative change",
    ),
    (Kind::New, "New", "absent from the first report"),
    (
        Kind::Missing,
        "Missing",
        "in the first report, absent from a later one",
    ),
    (
        Kind::NotFinite,
        "Not finite",
        "infinite or NaN (null in the JSON) in some report",
    ),
];

/// `(b − a) / |a|`; `None` when `a` is zero and `b` is not.
fn relative(a: f64, b: f64) -> Option<f64> {
    if a == b {
        Some(0.0)
    } else if a == 0.0 {
        None
    } else {
        Some((b - a) / a.abs())
    }
}

/// What the value `a` of the first report does in the later reports' `rest`, and for a
/// change, its size: the largest |relative change| (0 for the other kinds).
fn classify(a: Option<f64>, rest: &[Option<f64>]) -> (Kind, f64) {
    let mut every = std::iter::once(a).chain(rest.iter().copied()).flatten();
    if every.any(|x| !x.is_finite()) {
        return (Kind::NotFinite, 0.0);
    }
    let Some(a) = a else {
        return (Kind::New, 0.0);
    };
    if rest.iter().any(Option::is_none) {
        return (Kind::Missing, 0.0);
    }
    let mut largest = 0.0f64;
    for b in rest.iter().flatten() {
        match relative(a, *b) {
            Some(r) => largest = largest.max(r.abs()),
            None => return (Kind::FromZero, 0.0),
        }
    }
    if largest == 0.0 {
        (Kind::Equal, 0.0)
    } else {
        (Kind::Changed, largest)
    }
}

/// `x` with 4 significant digits: decimals between 1e-3 and 1e6, else scientific ("5.2e-13");
/// trailing zeros trimmed. A nonzero value never prints as zero.
pub fn significant(x: f64) -> String {
    let m = x.abs();
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let trim = |t: &str| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t.to_string()
        }
    };
    if (1e-3..1e6).contains(&m) {
        let decimals = (4 - (m.log10().floor() as i32 + 1)).max(0) as usize;
        trim(&format!("{x:.decimals$}"))
    } else {
        let t = format!("{x:.3e}");
        match t.split_once('e') {
            Some((d, e)) => format!("{}e{e}", trim(d)),
            None => t,
        }
    }
}

/// The unit a value's path names by its suffix (`time_s`, `energy_j`, `capacity_bytes`,
/// `frequency_hz`, `flops`), read from the last path segment that has one; rates (`_per_s`)
/// and other values have none.
fn unit_of(key: &str) -> Option<fn(f64) -> String> {
    let mut plain = String::new();
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    for seg in plain.rsplit('.') {
        let unit: Option<fn(f64) -> String> = if seg.ends_with("_per_s") {
            return None;
        } else if seg.ends_with("_s") {
            Some(|x| units::Seconds(x).to_string())
        } else if seg.ends_with("_j") {
            Some(|x| units::Joules(x).to_string())
        } else if seg.ends_with("bytes") {
            Some(|x| units::Bytes(x).to_string())
        } else if seg.ends_with("_hz") {
            Some(|x| units::Hertz(x).to_string())
        } else if seg == "flops" {
            Some(|x| units::Flops(x).to_string())
        } else {
            None
        };
        if unit.is_some() {
            return unit;
        }
    }
    None
}

/// A value of `key` as shown: SI-prefixed where its path names a unit, else [`significant`];
/// "—" when absent, "null" for NaN.
fn show(key: &str, x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(x) if x.is_nan() => "null".into(),
        Some(x) if x.is_infinite() => format!("{x}"),
        Some(x) => unit_of(key).map_or_else(|| significant(x), |u| u(x)),
    }
}

/// The change of `b` against `a` as shown: a signed percentage with 4 significant digits.
fn change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() => match relative(a, b) {
            Some(0.0) => "0%".into(),
            Some(r) => format!(
                "{}{}%",
                if r > 0.0 { "+" } else { "" },
                significant(100.0 * r)
            ),
            None => "from 0".into(),
        },
        _ => "—".into(),
    }
}

/// Whether `key` is a layer's time, listed in the per-layer table rather than the sections.
fn is_layer_time(key: &str) -> bool {
    key.starts_with("layers[") && key.ends_with("].time_s")
}

/// The comparison as Markdown: one line counting every value by what it does, then a section
/// each (at most `top` rows each, all with `None`) for the values that changed (largest
/// relative change first), changed from zero, are new, are missing or are not finite, then
/// each layer's time.
pub fn render(reports: &[Flat], top: Option<usize>) -> String {
    let mut s = String::new();
    let Some((first, rest)) = reports.split_first() else {
        return s;
    };
    let keys: BTreeSet<&String> = reports.iter().flat_map(|r| r.values.keys()).collect();
    let mut rows: Vec<(&String, Kind, f64)> = keys
        .iter()
        .map(|k| {
            let later: Vec<Option<f64>> = rest.iter().map(|r| r.values.get(*k).copied()).collect();
            let (kind, size) = classify(first.values.get(*k).copied(), &later);
            (*k, kind, size)
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
    summary(&mut s, reports, &rows);
    for (kind, title, note) in SECTIONS {
        let of_kind: Vec<&String> = rows
            .iter()
            .filter(|(k, c, _)| *c == kind && !is_layer_time(k))
            .map(|r| r.0)
            .collect();
        if !of_kind.is_empty() {
            section(&mut s, reports, &format!("{title}: {note}"), &of_kind, top);
        }
    }
    let layers: Vec<&String> = rows
        .iter()
        .map(|r| r.0)
        .filter(|k| is_layer_time(k))
        .collect();
    if !layers.is_empty() && !rest.is_empty() {
        let title = "Per-layer time: largest relative change first";
        section(&mut s, reports, title, &layers, top);
    }
    s
}

/// The counting line: how many values were compared, and what each did.
fn summary(s: &mut String, reports: &[Flat], rows: &[(&String, Kind, f64)]) {
    let n = |k: Kind| rows.iter().filter(|r| r.1 == k).count();
    let labels: Vec<&str> = reports.iter().map(|r| r.label.as_str()).collect();
    let _ = writeln!(
        s,
        "{} values compared across {} reports ({}): {} equal, {} changed, {} changed from zero, \
         {} new, {} missing, {} not finite. Changes are relative to the first report. Ops line \
         up by name and layer (`ops[L3 expert_2].time_s`), layers by number; layer times are in \
         the per-layer table.\n",
        rows.len(),
        reports.len(),
        labels.join(", "),
        n(Kind::Equal),
        n(Kind::Changed),
        n(Kind::FromZero),
        n(Kind::New),
        n(Kind::Missing),
        n(Kind::NotFinite),
    );
}

/// One section: its heading with its count, then each report's value and each later one's
/// change against the first, at most `top` rows.
fn section(s: &mut String, reports: &[Flat], title: &str, rows: &[&String], top: Option<usize>) {
    let shown = top.unwrap_or(usize::MAX).min(rows.len());
    let count = if shown < rows.len() {
        format!(
            "{} values, the first {shown} shown; --all shows every one",
            rows.len()
        )
    } else {
        format!("{} values", rows.len())
    };
    let _ = writeln!(s, "## {title} ({count})\n");
    let mut head = vec!["value".to_string()];
    for (i, r) in reports.iter().enumerate() {
        head.push(r.label.clone());
        if i > 0 {
            head.push(format!("change {}", i + 1));
        }
    }
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for k in &rows[..shown] {
        let a = reports[0].values.get(*k).copied();
        let mut row = vec![(*k).clone(), show(k, a)];
        for r in &reports[1..] {
            let b = r.values.get(*k).copied();
            row.push(show(k, b));
            row.push(change(a, b));
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s.push('\n');
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
    fn changes_rank_by_relative_change_and_every_value_is_counted() {
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
        // x moves by +50%, y by -75%: y first.
        let y = t.find("| y |").unwrap();
        let x = t.find("| x |").unwrap();
        assert!(y < x, "{t}");
        assert!(t.contains("| y | 10 | 2.5 | -75% |"), "{t}");
        assert!(t.contains("| x | 1 | 1.5 | +50% |"), "{t}");
        assert!(!t.contains("| same |"));
        assert!(
            t.starts_with("5 values compared across 2 reports (a, b): 1 equal, 4 changed, 0 changed from zero, 0 new, 0 missing, 0 not finite."),
            "{t}"
        );
        // Layer 1 halves (-50%), layer 0 grows by a quarter: layer 1 first.
        let l1 = t
            .find("| layers[1].time_s | 1 s | 500 ms | -50% |")
            .unwrap();
        let l0 = t.find("| layers[0].time_s | 2 s | 2.5 s | +25% |").unwrap();
        assert!(l1 < l0, "{t}");
    }

    #[test]
    fn infinite_missing_new_and_from_zero_values_are_listed_apart_not_ranked() {
        let a = flat(
            "a",
            &[
                ("t", 2.0),
                ("inf", 1.0),
                ("gone", 1.0),
                ("zero", 0.0),
                ("n", 4.0),
            ],
        );
        let b = flat(
            "b",
            &[
                ("t", 3.0),
                ("inf", f64::INFINITY),
                ("new", 1.0),
                ("zero", 5.0),
                ("n", f64::NAN),
            ],
        );
        let t = render(&[a, b], None);
        let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{t}"));
        // The one ranked change, +50%, is the first row of the first section.
        let changed = at("## Changed: largest relative change first (1 values)");
        assert!(at("| t | 2 | 3 | +50% |") > changed);
        for (heading, row) in [
            ("## Changed from zero", "| zero | 0 | 5 | from 0 |"),
            ("## New", "| new | — | 1 | — |"),
            ("## Missing", "| gone | 1 | — | — |"),
            ("## Not finite", "| inf | 1 | inf | — |"),
            ("## Not finite", "| n | 4 | null | — |"),
        ] {
            let (h, r) = (at(heading), at(row));
            assert!(changed < h && h < r, "{row} under {heading}:\n{t}");
        }
        assert!(t.contains("1 changed, 1 changed from zero, 1 new, 1 missing, 2 not finite"));
    }

    #[test]
    fn small_values_keep_significant_digits_and_their_unit() {
        // 3.2 pJ, never 0.000000.
        assert_eq!(show("ops[L0 qkv].energy_j.mac", Some(3.2e-12)), "3.2 pJ");
        assert_eq!(show("ops[L0 qkv].time_s", Some(1.234_56e-5)), "12.35 us");
        assert_eq!(show("ops[L0 qkv].op_b", Some(3.2e-12)), "3.2e-12");
        assert_eq!(show("totals.tokens_per_s", Some(2896.6144)), "2897");
        assert_eq!(show("memory.capacity_bytes", Some(80e9)), "80 GB");
        assert_eq!(significant(0.045_177_58), "0.04518");
        assert_eq!(significant(-1_470_272.0), "-1.47e6");
        assert_eq!(change(Some(3.0e-13), Some(3.3e-13)), "+10%");
        assert_eq!(change(Some(1.0), Some(1.000_01)), "+0.001%");
    }
}
