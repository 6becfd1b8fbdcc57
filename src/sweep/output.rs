//! A sweep's outputs: the points as CSV, the Pareto front as a Markdown table, and the Pareto
//! scatter as SVG.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::SweepError;
use super::file::{Sense, Sweep};
use super::runner::Record;

/// Whether a finished point passes every constraint that names a metric.
pub fn feasible(sweep: &Sweep, r: &Record) -> bool {
    let Some(m) = &r.metrics else {
        return false;
    };
    let get = |k: &str| {
        m.get(k)
            .copied()
            .or_else(|| r.values.get(k).and_then(serde_json::Value::as_f64))
    };
    sweep
        .constraints
        .iter()
        .all(|c| c.check(&get) != Some(false))
}

/// A metric of a finished point, or a numeric axis value of it, by name.
pub fn value_of(r: &Record, name: &str) -> Option<f64> {
    r.metrics
        .as_ref()?
        .get(name)
        .copied()
        .or_else(|| r.values.get(name).and_then(serde_json::Value::as_f64))
}

fn objective_values(sweep: &Sweep, r: &Record) -> Option<Vec<f64>> {
    sweep
        .objectives
        .iter()
        .map(|o| {
            let v = value_of(r, &o.metric)?;
            Some(match o.sense {
                Sense::Max => -v,
                Sense::Min => v,
            })
        })
        .collect()
}

/// Indices (into `records`) of the Pareto front: feasible points that no other feasible point
/// matches or beats on every objective while beating on one. Sorted by the first objective, best
/// first. With no objectives the front is empty.
pub fn pareto_front(sweep: &Sweep, records: &[Record]) -> Vec<usize> {
    if sweep.objectives.is_empty() {
        return Vec::new();
    }
    let cands: Vec<(usize, Vec<f64>)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| feasible(sweep, r))
        .filter_map(|(i, r)| Some((i, objective_values(sweep, r)?)))
        .collect();
    non_dominated(&cands)
}

/// The keys of the points that no other point dominates (all values minimised: no worse in
/// every value and better in one), sorted by their values.
pub fn non_dominated(cands: &[(usize, Vec<f64>)]) -> Vec<usize> {
    let dominates = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
    };
    let mut front: Vec<&(usize, Vec<f64>)> = cands
        .iter()
        .filter(|(_, v)| !cands.iter().any(|(_, w)| dominates(w, v)))
        .collect();
    front.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    front.into_iter().map(|(i, _)| *i).collect()
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// All points as CSV: index (the point's id), grid (its index in the full grid), seed, the axes in file order, feasible, pareto, every metric, error.
pub fn csv(sweep: &Sweep, records: &[Record]) -> Result<String, SweepError> {
    let front: BTreeSet<usize> = pareto_front(sweep, records)
        .into_iter()
        .map(|i| records[i].index)
        .collect();
    let metrics = sweep.metric_names();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["index".to_string(), "grid".to_string(), "seed".to_string()];
    head.extend(sweep.axes.iter().map(|a| a.key.clone()));
    head.extend(["feasible".into(), "pareto".into()]);
    head.extend(metrics.iter().cloned());
    head.push("error".into());
    w.write_record(&head)?;
    for r in records {
        let mut row = vec![r.index.to_string(), r.grid.to_string(), r.seed.to_string()];
        row.extend(
            sweep
                .axes
                .iter()
                .map(|a| r.values.get(&a.key).map_or_else(String::new, cell)),
        );
        row.push(feasible(sweep, r).to_string());
        row.push(front.contains(&r.index).to_string());
        row.extend(metrics.iter().map(|m| {
            r.metrics
                .as_ref()
                .and_then(|x| x.get(m))
                .map_or_else(String::new, |v| format!("{v}"))
        }));
        row.push(r.error.clone().unwrap_or_default());
        w.write_record(&row)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8(bytes)?)
}

/// Columns shown beside the objectives in the Pareto table.
const CONTEXT: [&str; 4] = [
    "output_tokens_per_s",
    "energy_per_output_token_j",
    "tbt_s.p50",
    "pim_time_share",
];

/// The Pareto front as a Markdown table, with a line on what was run.
pub fn pareto_table(sweep: &Sweep, records: &[Record]) -> String {
    let front = pareto_front(sweep, records);
    let mut cols: Vec<String> = sweep
        .objectives
        .iter()
        .map(|o| o.metric.clone())
        .filter(|m| !sweep.axes.iter().any(|a| &a.key == m))
        .collect();
    for c in CONTEXT {
        if !cols.iter().any(|x| x == c) {
            cols.push(c.to_string());
        }
    }
    let failed = records.iter().filter(|r| r.error.is_some()).count();
    let infeasible = records
        .iter()
        .filter(|r| r.error.is_none() && !feasible(sweep, r))
        .count();
    let mut s = String::new();
    let objs: Vec<String> = sweep
        .objectives
        .iter()
        .map(|o| {
            let sense = if o.sense == Sense::Max { "max" } else { "min" };
            format!("{sense} {}", o.metric)
        })
        .collect();
    let _ = writeln!(
        s,
        "Pareto front ({}): {} of {} points ({} failed, {} excluded by constraints).\n",
        objs.join(", "),
        front.len(),
        records.len(),
        failed,
        infeasible
    );
    let mut head = vec!["point".to_string()];
    head.extend(sweep.axes.iter().map(|a| a.key.clone()));
    head.extend(cols.iter().cloned());
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for &i in &front {
        let r = &records[i];
        let mut row = vec![r.index.to_string()];
        row.extend(
            sweep
                .axes
                .iter()
                .map(|a| r.values.get(&a.key).map_or_else(String::new, cell)),
        );
        row.extend(
            cols.iter()
                .map(|c| value_of(r, c).map_or_else(String::new, |v| format!("{v:.4}"))),
        );
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}

/// The Pareto scatter of the first two objectives: every feasible point, the front drawn over
/// them. Nothing is drawn with fewer than two objectives.
pub fn pareto_plot(sweep: &Sweep, records: &[Record], path: &Path) -> Result<bool, SweepError> {
    let [x, y, ..] = sweep.objectives.as_slice() else {
        return Ok(false);
    };
    let pt = |r: &Record| -> Option<(f64, f64)> {
        Some((value_of(r, &x.metric)?, value_of(r, &y.metric)?))
    };
    let all: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| feasible(sweep, r))
        .filter_map(pt)
        .collect();
    let mut front: Vec<(f64, f64)> = pareto_front(sweep, records)
        .into_iter()
        .filter_map(|i| pt(&records[i]))
        .collect();
    front.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let (xd, xs) = axis_label(&x.metric);
    let (yd, ys) = axis_label(&y.metric);
    let scale = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        v.into_iter().map(|(a, b)| (a * xs, b * ys)).collect()
    };
    let (all, front) = (scale(all), scale(front));
    let more = sweep.objectives.len() > 2;
    let objs: Vec<String> = sweep.objectives.iter().map(|o| o.metric.clone()).collect();
    let head = if more {
        format!(
            "Pareto front over {} objectives ({}), seen in two",
            objs.len(),
            objs.join(", ")
        )
    } else {
        format!("Pareto front: {} against {}", y.metric, x.metric)
    };
    let title = format!("{head}\n{}", what_ran(sweep));
    // A front over more objectives is not a curve in two of them: markers only.
    let s = crate::report::plot::Scatter {
        title: &title,
        x_desc: &xd,
        y_desc: &yd,
        points: &all,
        front: &front,
        connect: !more,
    };
    crate::report::plot::scatter(path, &s).map_err(SweepError::Plot)?;
    Ok(true)
}

/// The model, devices, arch and policy the sweep's points run, when every point runs the same
/// ones; else that they vary.
fn what_ran(sweep: &Sweep) -> String {
    let mut seen: Vec<String> = sweep
        .points()
        .iter()
        .filter_map(|p| sweep.scenario(p).ok())
        .map(|sc| {
            format!(
                "{} on {} × {} (TP {}, EP {}), {}",
                sc.model.name,
                sc.devices(),
                sc.sys.name,
                sc.tp,
                sc.ep,
                sc.policy.name()
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    match seen.as_slice() {
        [one] => format!("every point: {one}"),
        _ => format!(
            "{} set-ups of model, devices and arch across the points",
            seen.len()
        ),
    }
}

/// (quantity, unit, scale from the stored SI value) of each metric family, by key prefix.
const METRIC_AXES: [(&str, &str, &str, f64); 24] = [
    ("output_tokens_per_s", "output throughput", "tokens/s", 1.0),
    (
        "total_tokens_per_s",
        "prompt + output throughput",
        "tokens/s",
        1.0,
    ),
    ("ttft_s", "time to first token", "ms", 1e3),
    ("tbt_s", "time between tokens", "ms", 1e3),
    ("e2e_s", "end-to-end latency", "s", 1.0),
    (
        "energy_per_output_token_j",
        "energy per output token",
        "mJ",
        1e3,
    ),
    (
        "energy_per_output_token_by_component_j",
        "energy per output token",
        "mJ",
        1e3,
    ),
    ("energy_j", "energy of the run", "J", 1.0),
    ("pim_time_share", "share of op time on PIM", "%", 100.0),
    ("requests_completed", "requests completed", "requests", 1.0),
    ("prompt_tokens", "prompt tokens", "tokens", 1.0),
    ("output_tokens", "output tokens", "tokens", 1.0),
    ("duration_s", "duration of the run", "s", 1.0),
    ("iterations", "iterations", "iterations", 1.0),
    ("preemptions", "preemptions", "sequences", 1.0),
    ("mean_batch", "mean batch", "sequences", 1.0),
    ("kv_capacity_tokens", "KV cache capacity", "tokens", 1.0),
    ("time_by_bound", "share of op time bound by", "%", 100.0),
    ("utilization", "busy share of", "%", 100.0),
    ("ops_simulated", "ops simulated", "ops", 1.0),
    (
        "cost_cache_hits",
        "ops priced from the cost cache",
        "ops",
        1.0,
    ),
    ("cost_cache_misses", "ops priced afresh", "ops", 1.0),
    (
        "capacity_rps",
        "capacity under the [capacity] limits",
        "requests/s",
        1.0,
    ),
    (
        "capacity_rps_per_device",
        "capacity per device",
        "requests/s",
        1.0,
    ),
];
/// An axis label with its quantity and unit for a metric or axis key, and the factor its stored
/// values are multiplied by for that unit (`tbt_s.p50` → "time between tokens, p50 (ms)", 1000).
/// A key of the sweep's files (`arch.pim.modules`) is a count as written there.
pub fn axis_label(key: &str) -> (String, f64) {
    let (head, tail) = key.split_once('.').unwrap_or((key, ""));
    match METRIC_AXES.iter().find(|r| r.0 == head) {
        Some((_, what, unit, scale)) if tail.is_empty() => {
            (format!("{what} ({unit}) [{key}]"), *scale)
        }
        Some((_, what, unit, scale)) => (format!("{what}, {tail} ({unit}) [{key}]"), *scale),
        None if head.ends_with("_s") => (format!("{key} (s)"), 1.0),
        None if head.ends_with("_j") => (format!("{key} (J)"), 1.0),
        None if head.ends_with("_w") => (format!("{key} (W)"), 1.0),
        None if head == "limit" => (format!("{key} (a name)"), 1.0),
        None => (format!("{key} (number, as set in the files)"), 1.0),
    }
}

/// Writes `points.csv`, `pareto.md`, `pareto.svg` (with two objectives or more) and, for the
/// front's best point on the first objective, `roofline.svg` and `layers.svg` in `dir`.
pub fn write_all(sweep: &Sweep, records: &[Record], dir: &Path) -> Result<(), SweepError> {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|error| SweepError::Write { path: p, error })
    };
    w("points.csv", &csv(sweep, records)?)?;
    w("pareto.md", &pareto_table(sweep, records))?;
    pareto_plot(sweep, records, &dir.join("pareto.svg"))?;
    if let Some(&best) = pareto_front(sweep, records).first() {
        let index = records[best].index;
        if let Some(p) = sweep.points().into_iter().find(|p| p.index == index) {
            super::iteration::iteration_plots(sweep, &p, dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{axis_label, non_dominated};

    #[test]
    fn every_axis_names_its_quantity_and_unit() {
        let (l, k) = axis_label("tbt_s.p50");
        assert_eq!(
            (l.as_str(), k),
            ("time between tokens, p50 (ms) [tbt_s.p50]", 1e3)
        );
        let (l, k) = axis_label("energy_per_output_token_j");
        assert!(l.contains("(mJ)") && k == 1e3, "{l}");
        assert!(axis_label("output_tokens_per_s").0.contains("(tokens/s)"));
        // Every metric a sweep can name gets a unit: a known family or a suffix read.
        for m in super::super::file::metric_names() {
            let l = axis_label(&m).0;
            assert!(
                l.contains('(') && !l.contains("as set in the files"),
                "{m}: {l}"
            );
        }
    }

    #[test]
    fn front_keeps_only_undominated_points() {
        let c = |v: &[(usize, [f64; 2])]| -> Vec<(usize, Vec<f64>)> {
            v.iter().map(|(i, x)| (*i, x.to_vec())).collect()
        };
        // 1 dominates 2; 0, 1 and 3 trade off; 4 ties 3 exactly, so both stay.
        let pts = c(&[
            (0, [1.0, 5.0]),
            (1, [2.0, 2.0]),
            (2, [3.0, 3.0]),
            (3, [4.0, 1.0]),
            (4, [4.0, 1.0]),
        ]);
        assert_eq!(non_dominated(&pts), [0, 1, 3, 4]);
        // 5 is no better anywhere and worse in one: dominated.
        let pts = c(&[(0, [1.0, 1.0]), (5, [1.0, 2.0])]);
        assert_eq!(non_dominated(&pts), [0]);
        assert!(non_dominated(&[]).is_empty());
    }
}
