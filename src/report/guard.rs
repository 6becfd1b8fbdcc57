//! The guard every report passes before it is written: each figure a number, and within its
//! domain. A violation is a bug in dyad (exit status 3) that names the figure; it is never
//! written as a result.
//!
//! The rules read the report as serde writes it, by field name:
//! - every real is finite (NaN and ±∞ are refused);
//! - every number is non-negative: times, energies, bytes, FLOPs, counts, rates, powers, areas
//!   and costs are; the signed figures are named in [`SIGNED`];
//! - shares and utilizations lie in [0, 1];
//! - percentiles are ordered: min ≤ p50 ≤ p90 ≤ p99 ≤ max, and min ≤ mean ≤ max.

use serde::Serialize;
use serde_value::Value;

/// Field-name parts of figures that may be negative (differences and signed errors).
const SIGNED: [&str; 5] = ["delta", "change", "signed", "residual", "log"];

/// Field-name parts of figures that are shares of a whole.
const SHARES: [&str; 3] = ["share", "utilization", "hit_rate"];

/// Percentile fields in the order their values must not decrease.
const ORDER: [&str; 7] = ["min", "p50", "p90", "p95", "p99", "p999", "max"];

/// A figure outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
#[error(
    "internal error (a bug in dyad): the {report} report's figure `{figure}` = {value} {rule}; \
     nothing was written"
)]
pub struct Violation {
    /// The report (`run`, `serving`, `ppa`, …).
    pub report: &'static str,
    /// The figure's path (`ttft_s.p99`, `layers[3].time_s`).
    pub figure: String,
    /// Its value, as printed.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// Checks every figure of `report` (named `name` in the message).
pub fn check<T: Serialize>(name: &'static str, report: &T) -> Result<(), Violation> {
    // Serializing plain data to a value tree cannot fail; an error here is itself a bug.
    let v = serde_value::to_value(report).map_err(|e| Violation {
        report: name,
        figure: String::new(),
        value: e.to_string(),
        rule: "does not serialize",
    })?;
    walk(&v, &mut String::new(), false).map_err(|(figure, value, rule)| Violation {
        report: name,
        figure,
        value,
        rule,
    })
}

/// The first word of `text` that is a printed non-number (`NaN`, `inf`, `-inf`, `Infinity`).
pub fn non_number(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .find(|w| {
            let w = w.trim_start_matches(['-', '+']);
            matches!(w, "NaN" | "nan" | "inf" | "Inf" | "infinity" | "Infinity")
        })
}

/// Checks a report that exists only as text (`dyad ppa`): no word of it is a printed non-number.
pub fn check_text(name: &'static str, text: &str) -> Result<(), Violation> {
    match non_number(text) {
        None => Ok(()),
        Some(w) => {
            let line = text.lines().find(|l| l.contains(w)).unwrap_or("").trim();
            Err(Violation {
                report: name,
                figure: line.chars().take(80).collect(),
                value: w.to_string(),
                rule: "is not a finite number",
            })
        }
    }
}

type Found = (String, String, &'static str);

/// Whether `word` occurs in the short name `leaf`: `str::contains` without its searcher's
/// set-up, which cost more than the walk itself on every figure of a sweep point.
fn has(leaf: &str, word: &str) -> bool {
    leaf.as_bytes()
        .windows(word.len())
        .any(|w| w == word.as_bytes())
}

fn walk(v: &Value, path: &mut String, signed: bool) -> Result<(), Found> {
    let leaf = path.rsplit(['.', '[']).next().unwrap_or("");
    let signed = signed || SIGNED.iter().any(|s| has(leaf, s));
    let share = SHARES.iter().any(|s| has(leaf, s));
    let bad = |value: String, rule| Err((path.clone(), value, rule));
    match v {
        Value::F64(x) => real(*x, signed, share).map_or(Ok(()), |rule| bad(x.to_string(), rule)),
        Value::F32(x) => {
            real(f64::from(*x), signed, share).map_or(Ok(()), |rule| bad(x.to_string(), rule))
        }
        Value::I8(_) | Value::I16(_) | Value::I32(_) | Value::I64(_) if !signed => {
            match number(v) {
                Some(x) if x < 0.0 => bad(x.to_string(), "is negative"),
                _ => Ok(()),
            }
        }
        Value::Option(Some(inner)) | Value::Newtype(inner) => walk(inner, path, signed),
        Value::Seq(items) => {
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                walk(item, path, signed)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Map(map) => {
            ordered(map).map_err(|(k, x)| {
                let at = if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                };
                (at, x.to_string(), "is out of order with its percentiles")
            })?;
            let len = path.len();
            for (k, item) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                match k {
                    Value::String(s) => path.push_str(s),
                    other => path.push_str(&format!("{other:?}")),
                }
                walk(item, path, signed)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The rule a real breaks, if any.
fn real(x: f64, signed: bool, share: bool) -> Option<&'static str> {
    if !x.is_finite() {
        Some("is not a finite number")
    } else if x < 0.0 && !signed {
        Some("is negative")
    } else if share && !(0.0..=1.0 + 1e-9).contains(&x) {
        Some("is a share outside [0, 1]")
    } else {
        None
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::F64(x) => Some(*x),
        Value::F32(x) => Some(f64::from(*x)),
        Value::U64(x) => Some(*x as f64),
        Value::U32(x) => Some(f64::from(*x)),
        Value::I8(x) => Some(f64::from(*x)),
        Value::I16(x) => Some(f64::from(*x)),
        Value::I32(x) => Some(f64::from(*x)),
        Value::I64(x) => Some(*x as f64),
        Value::Option(Some(inner)) | Value::Newtype(inner) => number(inner),
        _ => None,
    }
}

/// The first percentile field that is below the one before it (or a mean outside [min, max]).
fn ordered(map: &std::collections::BTreeMap<Value, Value>) -> Result<(), (String, f64)> {
    // Keys are looked up only in maps that hold a percentile or a mean.
    let named = |k: &Value| matches!(k, Value::String(s) if ORDER.contains(&&**s) || s == "mean");
    if !map.keys().any(named) {
        return Ok(());
    }
    let get = |k: &str| number(map.get(&Value::String(k.into()))?);
    let tol = |a: f64| 1e-9 * a.abs().max(1e-300);
    let mut last: Option<f64> = None;
    for k in ORDER {
        if let Some(x) = get(k) {
            if last.is_some_and(|l| x < l - tol(l)) {
                return Err((k.into(), x));
            }
            last = Some(x);
        }
    }
    if let (Some(lo), Some(mean), Some(hi)) = (get("min"), get("mean"), get("max"))
        && (mean < lo - tol(lo) || mean > hi + tol(hi))
    {
        return Err(("mean".into(), mean));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Pct {
        min: f64,
        p50: f64,
        p99: f64,
        max: f64,
        mean: f64,
    }

    #[derive(Serialize)]
    struct Report {
        time_s: f64,
        layers: Vec<f64>,
        dram_share: f64,
        ttft_s: Pct,
        delta_s: f64,
    }

    fn report() -> Report {
        Report {
            time_s: 1.0,
            layers: vec![0.5, 0.5],
            dram_share: 0.7,
            ttft_s: Pct {
                min: 0.1,
                p50: 0.2,
                p99: 0.4,
                max: 0.5,
                mean: 0.25,
            },
            delta_s: -0.3,
        }
    }

    fn figure(r: &Report) -> Option<(String, &'static str)> {
        check("test", r).err().map(|v| (v.figure, v.rule))
    }

    #[test]
    fn a_report_in_its_domains_passes_and_signed_figures_may_be_negative() {
        assert_eq!(figure(&report()), None);
    }

    #[test]
    fn non_numbers_are_found_as_words_only() {
        assert_eq!(non_number("time 1.5 s, energy NaN J"), Some("NaN"));
        assert_eq!(non_number("x = -inf"), Some("-inf"));
        assert_eq!(non_number("information, infer"), None);
    }

    #[test]
    fn a_text_report_with_a_non_number_is_refused() {
        assert!(check_text("ppa", "cost $12.5 per die\ninformation").is_ok());
        let v = check_text("ppa", "area 1.0 mm2\ncost $inf per good die").unwrap_err();
        assert_eq!(
            (v.figure.as_str(), v.value.as_str()),
            ("cost $inf per good die", "inf")
        );
    }

    #[test]
    fn each_rule_names_the_figure_it_refuses() {
        let mut r = report();
        r.layers[1] = f64::NAN;
        assert_eq!(
            figure(&r),
            Some(("layers[1]".into(), "is not a finite number"))
        );
        let mut r = report();
        r.time_s = -1e-12;
        assert_eq!(figure(&r), Some(("time_s".into(), "is negative")));
        let mut r = report();
        r.dram_share = 1.5;
        assert_eq!(
            figure(&r),
            Some(("dram_share".into(), "is a share outside [0, 1]"))
        );
        let mut r = report();
        r.ttft_s.p99 = 0.15;
        assert_eq!(
            figure(&r),
            Some(("ttft_s.p99".into(), "is out of order with its percentiles"))
        );
        let mut r = report();
        r.ttft_s.mean = 0.6;
        assert_eq!(
            figure(&r),
            Some(("ttft_s.mean".into(), "is out of order with its percentiles"))
        );
    }
}
