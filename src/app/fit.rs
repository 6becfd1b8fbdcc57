//! Whether a run fits one device's memory, the tensor-parallel degree `dyad run` picks and why,
//! and the smallest parallelism that fits when the one asked for does not: the memory side of
//! `dyad run` and `dyad run --serving`. Every budget is [`Footprint`]'s.

use super::AppError;
use super::run::{RunError, ServeSpec};
use crate::config::{self, ScenarioOverrides};
use crate::model::{Batch, Footprint, ModelSpec, Parallelism, Precision};
use crate::report::MemoryUse;
use crate::report::render::si;
use crate::sim::serving::{Scenario, ServingError};
use crate::units::Bytes;

/// The largest degree searched for a parallelism that fits (a power of two; beyond any node).
const MAX_DEGREE: u64 = 1024;

/// One device's share of weights and of this batch's KV cache, against its capacity.
pub fn memory_use(m: &ModelSpec, batch: &Batch, tp: u64, p: Precision, capacity: f64) -> MemoryUse {
    let foot = Footprint::new(m, Parallelism { tp, ep: 1 }, p);
    let weights = foot.weights.value();
    let lens = batch
        .decode_kv
        .iter()
        .copied()
        .chain(batch.prefill.iter().map(|c| c.ctx + c.q_len));
    let kv = foot.kv_held(m, lens).value();
    MemoryUse {
        weights_bytes: weights,
        bits_per_weight: m.bits_per_weight(p.weights),
        kv_bytes: kv,
        capacity_bytes: capacity,
        fits: weights + kv <= capacity,
    }
}

/// "weights 46.7 GB + KV 8.6 GB" of one device's share.
fn share(u: &MemoryUse) -> String {
    format!(
        "weights {} + KV {}",
        si(u.weights_bytes, "B"),
        si(u.kv_bytes, "B")
    )
}

/// The tensor-parallel degree dyad picks for a single iteration on a node of `devices`: the
/// smallest power of two whose share fits, stopping at the node's devices and at the largest
/// degree the model splits over; with the reason in words.
pub fn pick_tp(
    m: &ModelSpec,
    batch: &Batch,
    p: Precision,
    capacity: f64,
    devices: u32,
) -> (u64, String) {
    let at = |tp| memory_use(m, batch, tp, p, capacity);
    let mut tp = 1;
    while tp < u64::from(devices) && m.check_tp(tp * 2).is_ok() && !at(tp).fits {
        tp *= 2;
    }
    let u = at(tp);
    let cap = si(capacity, "B");
    let why = if u.fits && tp == 1 {
        format!(
            "TP 1: one device's memory holds the model ({}) in {cap}",
            share(&u)
        )
    } else if u.fits {
        format!(
            "TP {tp}: smallest power of two whose share ({}) fits {cap}",
            share(&u)
        )
    } else if tp == u64::from(devices) {
        format!(
            "TP {tp}: every device of the node, and the share ({}) still exceeds {cap}",
            share(&u)
        )
    } else {
        format!(
            "TP {tp}: the largest power of two the model splits over, and the share ({}) still exceeds {cap}",
            share(&u)
        )
    };
    (tp, why)
}

/// The smallest power-of-two tensor-parallel degree whose share of a single iteration fits,
/// whatever the node's size; `None` when no degree the model splits over does.
pub fn smallest_tp(m: &ModelSpec, batch: &Batch, p: Precision, capacity: f64) -> Option<u64> {
    std::iter::successors(Some(1u64), |t| (*t < MAX_DEGREE).then_some(t * 2))
        .take_while(|&t| m.check_tp(t).is_ok())
        .find(|&t| memory_use(m, batch, t, p, capacity).fits)
}

/// "the smallest TP that fits is 2 (--tp 2)", with a note when the node has fewer devices.
pub fn advice(smallest: Option<u64>, flag: &str, devices: u32) -> String {
    let name = flag.to_uppercase();
    match smallest {
        Some(n) if n <= u64::from(devices) => {
            let tp1 = if flag == "ep" { "--tp 1 " } else { "" };
            format!("the smallest {name} that fits is {n} ({tp1}--{flag} {n})")
        }
        Some(n) => format!(
            "the smallest {name} that fits is {n}, more than the node's {devices} devices (an arch with more devices per node, or a smaller precision)"
        ),
        None => format!("no {name} up to {MAX_DEGREE} that the model splits over fits"),
    }
}

/// One device's budget in a serving run split as `par`: weights, activation reserve and usable
/// memory, and whether a KV cache of more than one block fits beside them.
pub struct ServingBudget {
    /// Weights per device.
    pub weights: Bytes,
    /// Activations reserved for the largest iteration.
    pub activations: Bytes,
    /// Usable memory: capacity × `memory_utilization`.
    pub usable: Bytes,
    /// Whether a KV cache fits in what is left.
    pub fits: bool,
}

impl ServingBudget {
    /// The budget of `s` split as `par` (the rule of the serving bench: [`Footprint::kv_blocks`]).
    pub fn of(s: &Scenario, par: Parallelism) -> Self {
        let usable = Bytes(s.sys.xpu.memory.capacity.value() * s.memory_utilization);
        let mut foot = Footprint::new(&s.model, par, s.precision);
        foot.weights += s.expert_parallel.replica_bytes(&s.model, par, s.precision);
        let act = foot.activations(&s.model, s.precision, s.max_tokens, s.max_batch);
        ServingBudget {
            weights: foot.weights,
            activations: act,
            usable,
            fits: foot.kv_blocks(usable, act, s.kv_block).is_some(),
        }
    }
}

/// The smallest tensor-parallel degree (EP 1) and, for an MoE model, the smallest
/// expert-parallel degree (TP 1) at which `s` leaves room for a KV cache, in words.
pub fn serving_advice(s: &Scenario) -> String {
    let m = &s.model;
    let devices = s.sys.devices();
    let degrees = || std::iter::successors(Some(1u64), |t| (*t < MAX_DEGREE).then_some(t * 2));
    let tp = degrees()
        .take_while(|&tp| m.check_tp(tp).is_ok())
        .find(|&tp| ServingBudget::of(s, Parallelism { tp, ep: 1 }).fits);
    let mut out = advice(tp, "tp", devices);
    if let Some(x) = m.moe {
        let ep = (1..=x.experts.min(MAX_DEGREE))
            .filter(|e| x.experts % e == 0)
            .find(|&ep| ServingBudget::of(s, Parallelism { tp: 1, ep }).fits);
        out += &format!("; {}", advice(ep, "ep", devices));
    }
    out
}

/// A serving run's error as the app reports it: no room for a KV cache is the budget and the
/// advice; a request of a trace that no cache could hold is bad input at the trace's row.
pub(super) fn serving_error(sc: &Scenario, spec: &ServeSpec, source: ServingError) -> AppError {
    let row = match source {
        ServingError::TooLong { id, .. } => config::request_trace_line(&spec.scenario, id),
        _ => None,
    };
    match (source, row) {
        // A pipeline's own message names its fullest stage's weights.
        (ServingError::NoKvRoom { .. }, _) if sc.pipeline.is_none() => {
            AppError::Run(no_kv_room(sc, &spec.overrides))
        }
        (source, Some((trace, line))) => AppError::Config(config::ConfigError::file(
            &trace,
            format!("line {line}: {source}"),
        )),
        (source, None) => AppError::Serving {
            path: spec.scenario.clone(),
            source,
        },
    }
}

/// The error of a serving run whose weights and activations leave no room for a KV cache: the
/// budget, the flags that changed the scenario, and the smallest parallelism that fits.
fn no_kv_room(s: &Scenario, o: &ScenarioOverrides) -> RunError {
    let b = ServingBudget::of(s, crate::model::Parallelism { tp: s.tp, ep: s.ep });
    let keys = o.keys();
    let flags = match keys.is_empty() {
        true => String::new(),
        false => format!(" (the scenario with {} from flags)", keys.join(", ")),
    };
    RunError::ServingDoesNotFit {
        scenario: s.name.clone(),
        breakdown: format!(
            "{} does not fit one {} device at TP {}, EP {}: weights {} + activation reserve {} leave no room for a KV cache in the usable {} (`batching.memory_utilization` = {} of {}){flags}",
            s.model.name,
            s.sys.name,
            s.tp,
            s.ep,
            si(b.weights.value(), "B"),
            si(b.activations.value(), "B"),
            si(b.usable.value(), "B"),
            s.memory_utilization,
            si(s.sys.xpu.memory.capacity.value(), "B"),
        ),
        advice: serving_advice(s),
    }
}
