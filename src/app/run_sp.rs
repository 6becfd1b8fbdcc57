//! `dyad run --sp P`: a single iteration under Ulysses sequence parallelism
//! ([`crate::model::build_iteration_sp`]): its degree checked against the run, and one device's
//! memory (the whole model's weights, 1/P of the KV heads).

use super::fit;
use super::run::{RunError, RunSpec};
use crate::model::{Batch, ModelError, ModelSpec, Precision};
use crate::report::MemoryUse;

/// The run's sequence-parallel degree: 1, or a degree above 1 with `--tp` absent or 1 and at
/// most the arch's devices.
pub fn degree(spec: &RunSpec, devices: u32) -> Result<u64, RunError> {
    let sp = spec.sp;
    let err = |why: String| Err(RunError::Sp { sp, why });
    if sp == 0 {
        return err("the degree must be at least 1".into());
    }
    if sp > 1 && spec.tp.is_some_and(|tp| tp > 1) {
        return err(
            "sequence parallelism with tensor parallelism is not modelled; use --tp 1".into(),
        );
    }
    if sp > u64::from(devices) {
        return err(format!("exceeds the {devices} devices of the arch"));
    }
    Ok(sp)
}

/// A model error of the Ulysses graph as the run's: a degree the model cannot take is a `--sp`
/// error.
pub fn error(e: ModelError) -> RunError {
    match e {
        ModelError::Sp(sp, why) => RunError::Sp { sp, why },
        e => e.into(),
    }
}

/// One device's memory at `tp` (when `sp` = 1) or under `sp`-way Ulysses (tp = 1): every
/// weight on every device, the KV cache split by heads as at tp = `sp`.
pub fn memory_use(
    m: &ModelSpec,
    batch: &Batch,
    tp: u64,
    sp: u64,
    p: Precision,
    cap: f64,
) -> MemoryUse {
    if sp <= 1 {
        return fit::memory_use(m, batch, tp, p, cap);
    }
    let weights = fit::memory_use(m, batch, 1, p, cap);
    let kv = fit::memory_use(m, batch, sp, p, cap);
    MemoryUse {
        kv_bytes: kv.kv_bytes,
        fits: weights.weights_bytes + kv.kv_bytes <= cap,
        ..weights
    }
}
