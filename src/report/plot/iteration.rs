//! Plots of one iteration's ops, as [`OpResult`] rows: the roofline (identical ops merged into
//! one labelled marker with their count), the time by op (bars by op and unit, coloured by op
//! class), and the time per layer by op class (identical layers shown once, with their count).
//! `dyad run --plot` and a sweep's front point draw through these.

use std::collections::BTreeMap;
use std::path::Path;

use super::palette::unit_name;
use super::{Bar, Bars, Categorical, Mark, PlotError, Roof, Roofline, Series};
use crate::hw::{CostError, System};
use crate::report::OpResult;
use crate::work::Dtype;

/// The roofs of one device of `sys`: its xPU at `activations` precision, and its PIM units if it
/// has them.
pub fn roofs(sys: &System, activations: Dtype) -> Result<Vec<Roof>, CostError> {
    let external = sys.xpu.memory.bandwidth;
    let mut roofs = vec![Roof {
        unit: "xpu".into(),
        peak: sys.xpu.peak(activations)?.value(),
        bandwidth: external.value(),
    }];
    if let Some(p) = &sys.pim {
        roofs.push(Roof {
            unit: "pim".into(),
            peak: p.peak().value(),
            bandwidth: p.bandwidth(external).value(),
        });
    }
    Ok(roofs)
}

/// An op's name without its instance number: `expert_3` → `expert`.
pub fn base_name(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// Whether two values agree within a part in 10^9.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `name` with its count when there is more than one: `expert ×256`.
fn counted(name: &str, n: usize) -> String {
    if n > 1 {
        format!("{name} ×{n}")
    } else {
        name.to_string()
    }
}

/// One marker per group of identical ops (same name without its instance number, same unit,
/// same Op/B and achieved FLOP/s), labelled with the count; and the names of ops left out for
/// doing no arithmetic or moving no DRAM bytes (no place on log axes).
pub fn roof_marks(ops: &[OpResult]) -> (Vec<Mark>, Vec<String>) {
    let mut groups: Vec<(Mark, usize)> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for o in ops {
        let name = base_name(&o.name);
        if o.flops <= 0.0 || o.bytes <= 0.0 || o.time_s <= 0.0 {
            if !left_out.iter().any(|n| n == name) {
                left_out.push(name.to_string());
            }
            continue;
        }
        let rate = o.flops / o.time_s;
        let same = |m: &Mark| {
            m.label == name
                && m.unit == o.unit
                && close(m.op_b, o.op_b)
                && close(m.flops_per_s, rate)
        };
        match groups.iter_mut().find(|(m, _)| same(m)) {
            Some((_, n)) => *n += 1,
            None => groups.push((
                Mark {
                    unit: o.unit.to_string(),
                    class: o.class.to_string(),
                    op_b: o.op_b,
                    flops_per_s: rate,
                    label: name.to_string(),
                },
                1,
            )),
        }
    }
    let marks = groups
        .into_iter()
        .map(|(mut m, n)| {
            m.label = counted(&m.label, n);
            m
        })
        .collect();
    (marks, left_out)
}

/// One bar per op name (without instance number) and unit: the sum of its op times in ms, its
/// count, coloured by op class; largest first.
pub fn op_bars(ops: &[OpResult]) -> Vec<Bar> {
    let mut rows: Vec<(String, &str, &str, f64, usize)> = Vec::new();
    for o in ops {
        let name = base_name(&o.name);
        match rows.iter_mut().find(|r| r.0 == name && r.1 == o.unit) {
            Some(r) => {
                r.3 += o.time_s * 1e3;
                r.4 += 1;
            }
            None => rows.push((name.to_string(), o.unit, o.class, o.time_s * 1e3, 1)),
        }
    }
    rows.sort_by(|a, b| b.3.total_cmp(&a.3));
    rows.into_iter()
        .map(|(name, unit, class, ms, n)| Bar {
            label: format!("{} on {}", counted(&name, n), unit_name(unit)),
            value: ms,
            key: class.to_string(),
        })
        .collect()
}

/// The ops of one layer (or of the ops outside every layer).
type LayerOps<'a> = Vec<&'a OpResult>;

/// Whether two layers run the same ops on the same units in the same times.
fn same_layer(a: &LayerOps<'_>, b: &LayerOps<'_>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.unit == y.unit && close(x.time_s, y.time_s))
}

/// Layer numbers as ranges: `0–3, 8, 10–11`, at most four runs then `…`.
fn ranges(layers: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &l in layers {
        match runs.last_mut() {
            Some(r) if r.1 + 1 == l => r.1 = l,
            _ => runs.push((l, l)),
        }
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(4)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect();
    if runs.len() > 4 {
        parts.push("…".into());
    }
    parts.join(", ")
}

/// The distinct layers: each group of identical layers once (one layer's time per op class, in
/// ms), labelled with its layer numbers and count; the ops outside the layers last. Also the
/// number of decoder layers.
pub fn layer_groups(ops: &[OpResult]) -> (Vec<String>, Vec<Series>, usize) {
    let mut layers: BTreeMap<u32, LayerOps<'_>> = BTreeMap::new();
    let mut outside: LayerOps<'_> = Vec::new();
    for o in ops {
        match o.layer {
            Some(l) => layers.entry(l).or_default().push(o),
            None => outside.push(o),
        }
    }
    let mut groups: Vec<(Vec<u32>, &LayerOps<'_>)> = Vec::new();
    for (l, ops) in &layers {
        match groups.iter_mut().find(|g| same_layer(g.1, ops)) {
            Some(g) => g.0.push(*l),
            None => groups.push((vec![*l], ops)),
        }
    }
    let mut cats: Vec<String> = groups
        .iter()
        .map(|(ls, _)| match ls.len() {
            1 => format!("layer {}", ls[0]),
            n => format!("layers {} (×{n} identical)", ranges(ls)),
        })
        .collect();
    let mut members: Vec<&LayerOps<'_>> = groups.iter().map(|g| g.1).collect();
    if !outside.is_empty() {
        let mut names: Vec<&str> = outside.iter().map(|o| base_name(&o.name)).collect();
        names.dedup();
        cats.push(format!("outside the layers ({})", names.join(", ")));
        members.push(&outside);
    }
    let mut classes: Vec<&str> = ops.iter().map(|o| o.class).collect();
    classes.sort_unstable();
    classes.dedup();
    let series = classes
        .iter()
        .map(|c| Series {
            name: (*c).to_string(),
            key: (*c).to_string(),
            values: members
                .iter()
                .map(|m| {
                    let t: f64 = m.iter().filter(|o| o.class == *c).map(|o| o.time_s).sum();
                    (t > 0.0).then_some(t * 1e3)
                })
                .collect(),
            absent_because: Some("no op of this class".into()),
        })
        .collect();
    (cats, series, layers.len())
}

/// Writes the roofline of `ops` on `roofs` to `path`; `context` names the run in the title.
pub fn write_roofline(
    path: &Path,
    context: &str,
    roofs: &[Roof],
    ops: &[OpResult],
) -> Result<(), PlotError> {
    let (marks, left_out) = roof_marks(ops);
    let notes: Vec<String> = if left_out.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "not drawn (no FLOPs or no DRAM\nbytes, so no place on log axes):\n{}",
            left_out.join(", ")
        )]
    };
    super::roofline(
        path,
        &Roofline {
            title: &format!("Roofline of one iteration, per device\n{context}"),
            roofs,
            marks: &marks,
            notes: &notes,
        },
    )
}

/// Writes the time by op of `ops` to `path`; `context` names the run in the title.
pub fn write_ops(path: &Path, context: &str, ops: &[OpResult]) -> Result<(), PlotError> {
    super::horizontal_bars(
        path,
        &Bars {
            title: &format!("Time by op, one iteration, per device\n{context}"),
            x_desc: "sum of the op's times over the iteration (ms; xPU and PIM ops may overlap)",
            rows: &op_bars(ops),
            legend: "op class",
        },
    )
}

/// Writes the time per distinct layer of `ops` to `path`; `context` names the run in the title.
pub fn write_layers(path: &Path, context: &str, ops: &[OpResult]) -> Result<(), PlotError> {
    let (cats, series, n) = layer_groups(ops);
    let distinct = cats.iter().filter(|c| c.starts_with("layer")).count();
    let what = if distinct == 1 && n > 1 {
        format!("all {n} layers identical, one shown")
    } else {
        format!("{distinct} distinct of {n} layers")
    };
    super::stacked_bars(
        path,
        &Categorical {
            title: &format!("Time of one layer by op class ({what})\n{context}"),
            x_desc: "decoder layers with identical ops, one layer each (× how many)",
            y_desc: "sum of op times in one layer (ms)",
            categories: &cats,
            series: &series,
            legend: "op class",
        },
    )
}
