//! Plots of one design point's decode iteration: a roofline with each op placed by its Op/B on
//! the unit that runs it (xPU or PIM), and the time of each layer stacked by op class.

use std::path::Path;

use super::SweepError;
use super::file::{Point, Sweep};
use crate::map::cost_iteration;
use crate::model::{Batch, Routing, build_iteration};
use crate::report::op_rows;
use crate::report::plot::iteration::{roofs, write_layers, write_roofline};
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
    let values: String = point
        .values
        .iter()
        .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
        .collect::<Vec<_>>()
        .join(" ");
    let devices = sc.tp * sc.ep;
    let context = format!(
        "point {index} ({values}), {} decode b{} KV {kv_len}, {devices} × {} (TP {}, EP {}), {}",
        sc.model.name,
        sc.max_batch,
        sc.sys.name,
        sc.tp,
        sc.ep,
        sc.policy.name()
    );
    let roofs = roofs(&sc.sys, sc.precision.activations).map_err(cost)?;
    write_roofline(&dir.join("roofline.svg"), &context, &roofs, &ops).map_err(SweepError::Plot)?;
    write_layers(&dir.join("layers.svg"), &context, &ops).map_err(SweepError::Plot)
}
