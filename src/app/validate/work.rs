//! How much work `dyad validate`'s checks take, predicted before they run.

use super::{ValidateError, routing};
use crate::model::{Batch, ModelSpec, Precision};

/// Default of [`ValidateSpec::work_limit`]: one to two minutes of reference kernels on one
/// core (measured on this project's 2-core machine: the kernels run 2–10 GFLOP/s, attention at
/// the low end and GEMMs at the high; Llama-3-8B at scale 2, 9e10, takes 51 s).
pub const DEFAULT_WORK_LIMIT: f64 = 2e11;

/// FLOP-equivalents of one op run beyond its FLOPs: its inputs drawn, its parts split, merged
/// and compared (measured: Llama-3-8B at scale 16 and 64 layers runs about 2,000 op runs a
/// second, at about 2 GFLOP/s).
const OP_RUN_FLOPS: f64 = 1e6;

/// The work the checks take, predicted from the unsplit iteration: over `runs` policy and layout
/// pairs, each op run twice (the reference and its parts), its FLOPs plus [`OP_RUN_FLOPS`].
/// Returns the prediction, the op runs and the FLOPs.
pub(super) fn predicted_work(
    m: &ModelSpec,
    b: &Batch,
    p: Precision,
    runs: u64,
    seed: u64,
) -> Result<(f64, u64, f64), ValidateError> {
    let route = routing(m, b.tokens(), seed);
    let g =
        crate::model::build_iteration(m, b, 1, p, &route).map_err(|e| ValidateError::Layout {
            flag: "--tp",
            degree: 1,
            source: e.into(),
        })?;
    let (ops, flops) = g.ops().fold((0u64, 0.0), |(n, f), op| {
        (n + 1, f + op.work().flops.value())
    });
    let (ops, flops) = (2 * runs * ops, 2.0 * runs as f64 * flops);
    Ok((flops + ops as f64 * OP_RUN_FLOPS, ops, flops))
}
