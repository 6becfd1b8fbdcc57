//! Plots of one design point's decode iteration: a roofline with each op placed by its Op/B on
//! the unit that runs it (xPU or PIM), and the time of each layer stacked by op class.

use std::collections::BTreeMap;
use std::path::Path;

use super::SweepError;
use super::file::{Point, Sweep};
use crate::hw::CostError;
use crate::map::cost_iteration;
use crate::model::{Batch, Routing, build_iteration};
use crate::report::plot::{Roof, RoofPoints, Series, roofline, stacked_bars};
use crate::report::{OpResult, op_rows};
use crate::sim::serving::Scenario;
use crate::sim::workload::{LengthDist, Lengths};

fn mean(d: &LengthDist) -> f64 {
    match *d {
        LengthDist::Fixed(n) => n as f64,
        LengthDist::Uniform { min, max } => (min + max) as f64 / 2.0,
        LengthDist::Normal { mean, .. } => mean,
    }
}

/// The KV length of a typical decode step: the mean prompt plus half the mean output.
fn typical_kv(l: &Lengths) -> u64 {
    let (p, o) = match l {
        Lengths::Drawn { prompt, output } => (mean(prompt), mean(output)),
        Lengths::Trace(rows) => {
            let n = rows.len().max(1) as f64;
            (
                rows.iter().map(|r| r.0 as f64).sum::<f64>() / n,
                rows.iter().map(|r| r.1 as f64).sum::<f64>() / n,
            )
        }
    };
    (p + o / 2.0).round().max(1.0) as u64
}

/// Writes `roofline.svg` and `layers.svg` in `dir` for `point`'s typical decode iteration: its
/// full batch (`batching.max_batch` sequences), each with the mean prompt plus half the mean
/// output of KV cache.
pub fn iteration_plots(sweep: &Sweep, point: &Point, dir: &Path) -> Result<(), SweepError> {
    let sc = sweep.scenario(point)?;
    let kv_len = typical_kv(&sc.lengths);
    let batch = Batch::decode(sc.max_batch, kv_len);
    let index = point.index;
    let g = build_iteration(&sc.model, &batch, sc.tp, sc.precision, &Routing::Uniform)
        .map_err(|error| SweepError::PlotModel { index, error })?;
    let cost = |error| SweepError::PlotCost { index, error };
    let ops = op_rows(&cost_iteration(&g, &sc.sys, sc.policy, sc.timing).map_err(cost)?);
    let label: String = point
        .values
        .iter()
        .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
        .collect::<Vec<_>>()
        .join(" ");
    roofline(
        &dir.join("roofline.svg"),
        &format!("Roofline, one decode iteration per device: point {index} ({label})"),
        &roofs(&sc).map_err(cost)?,
        &roof_points(&ops),
    )
    .map_err(SweepError::Plot)?;
    let (layers, series) = layer_series(&ops);
    stacked_bars(
        &dir.join("layers.svg"),
        &format!("Time per layer by op class (sum of op times): point {index} ({label})"),
        &layers,
        "ms",
        &series,
    )
    .map_err(SweepError::Plot)
}

/// The roofs: the xPU at the activations' precision, and the PIM units if there are any.
fn roofs(sc: &Scenario) -> Result<Vec<Roof>, CostError> {
    let external = sc.sys.xpu.memory.bandwidth;
    let mut roofs = vec![Roof {
        name: "xPU".into(),
        peak: sc.sys.xpu.peak(sc.precision.activations)?.value(),
        bandwidth: external.value(),
    }];
    if let Some(p) = &sc.sys.pim {
        roofs.push(Roof {
            name: "PIM".into(),
            peak: p.peak().value(),
            bandwidth: p.bandwidth(external).value(),
        });
    }
    Ok(roofs)
}

/// Each op that does work, at its Op/B and achieved FLOP/s, grouped by the unit that runs it.
fn roof_points(ops: &[OpResult]) -> Vec<RoofPoints> {
    let mut by_unit: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for o in ops {
        if o.flops > 0.0 && o.time_s > 0.0 && o.op_b > 0.0 {
            by_unit
                .entry(o.unit)
                .or_default()
                .push((o.op_b, o.flops / o.time_s));
        }
    }
    by_unit
        .into_iter()
        .map(|(unit, pts)| RoofPoints {
            name: unit.to_string(),
            points: pts,
        })
        .collect()
}

/// The layers in order of first appearance, and per op class the sum of its op times in each
/// layer, in ms (xPU and PIM ops may overlap in time).
fn layer_series(ops: &[OpResult]) -> (Vec<String>, Vec<Series>) {
    let mut layers: Vec<String> = Vec::new();
    let mut classes: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for o in ops {
        let l = o
            .layer
            .map_or_else(|| "other".to_string(), |l| l.to_string());
        if !layers.contains(&l) {
            layers.push(l.clone());
        }
        *classes.entry(o.class).or_default().entry(l).or_default() += o.time_s * 1e3;
    }
    let series = classes
        .into_iter()
        .map(|(c, m)| Series {
            name: c.to_string(),
            values: layers
                .iter()
                .map(|l| m.get(l).copied().unwrap_or(0.0))
                .collect(),
        })
        .collect();
    (layers, series)
}
