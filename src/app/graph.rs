//! `dyad graph`: the op graph of one iteration as Graphviz DOT, each op labelled with its cost.

use crate::map;
use crate::report::render::si;
use crate::report::{dot, placement_words, precision_words};

use super::fit;
use super::run::{Phase, RunError, RunSpec, iteration};

/// The DOT text of the iteration `spec` describes, built, placed and costed exactly as `dyad
/// run` costs it: the same batch checks (a zero batch or length is an error, not clamped), the
/// same tensor-parallel degree (the spec's, or the smallest power of two whose share fits
/// memory), and each op on the unit `spec.policy` places it on (a PIM policy on an arch without
/// PIM is the same error). Each node shows its time, what bounds it and its unit; the graph's
/// label says what was run and each unit's op time. A model that does not fit is drawn, and
/// its label says so.
pub fn graph(spec: &RunSpec) -> Result<String, RunError> {
    let (r, g) = iteration(spec)?;
    let placed = map::cost_iteration(&g, &r.sys, spec.policy, spec.timing)?;
    let shape = match spec.phase {
        Phase::Prefill => format!("prompt {}", spec.prompt_len),
        Phase::Decode => format!("KV {}", spec.kv_len),
    };
    let mut title = vec![
        format!(
            "{}: {} batch {}, {shape}, policy {}",
            placement_words(&r.model.name, &r.sys.name, r.tp, r.tp, 1, 1),
            spec.phase.name(),
            spec.batch,
            spec.policy.name()
        ),
        format!("precision {}", precision_words(&r.precision)),
    ];
    if let Some(why) = &r.tp_reason {
        title.push(format!("parallelism chosen by dyad: {why}"));
    }
    let cap = r.sys.xpu.memory.capacity.value();
    let m = fit::memory_use(&r.model, &r.batch, r.tp, r.precision, cap);
    title.push(format!(
        "memory per device: weights {} + KV cache {} of {}{}",
        si(m.weights_bytes, "B"),
        si(m.kv_bytes, "B"),
        si(cap, "B"),
        if m.fits {
            ""
        } else {
            " (DOES NOT FIT: dyad run fails without --allow-oversize; raise --tp)"
        }
    ));
    Ok(dot::dot(&g, &placed, &title))
}
