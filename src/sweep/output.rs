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
    let metrics = super::file::metric_names();
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
    let more = sweep.objectives.len() > 2;
    let title = if more {
        format!(
            "Pareto front over {} objectives, seen in {} vs {}",
            sweep.objectives.len(),
            y.metric,
            x.metric
        )
    } else {
        format!("Pareto front: {} vs {}", y.metric, x.metric)
    };
    // A front over more objectives is not a curve in two of them: markers only.
    crate::report::plot::scatter(path, &title, &x.metric, &y.metric, &all, &front, !more)
        .map_err(SweepError::Plot)?;
    Ok(true)
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
    use super::non_dominated;

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
