//! `dyad graph`: the op graph of one iteration as Graphviz DOT.

use crate::model::{Routing, build_iteration};

use super::run::{Resolved, RunError, RunSpec, resolve};

/// The DOT text of the iteration `spec` describes, built exactly as `dyad run` builds it: the
/// same batch checks (a zero batch or length is an error, not clamped) and the same
/// tensor-parallel degree (the spec's, or the smallest power of two whose share fits memory).
pub fn graph(spec: &RunSpec) -> Result<String, RunError> {
    let Resolved {
        model,
        batch,
        tp,
        precision,
        ..
    } = resolve(spec)?;
    let g = build_iteration(&model, &batch, tp, precision, &Routing::Uniform)?;
    Ok(g.to_dot())
}
