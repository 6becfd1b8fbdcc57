//! Results as plain structs, and their renderings (terminal table, JSON, CSV, Markdown).
//!
//! **`report` only reads result structs**; it computes nothing but sums and shares. It takes
//! what the simulator and the mapping return by reference and builds its own rows from them.

pub mod dot;
pub mod expert_parallel;
pub mod guard;
pub mod pipeline;
pub mod plot;
pub mod pool_trace;
pub mod render;
pub mod replicas;
pub mod serving;
pub mod speculative;
pub mod trace;

pub use render::{Format, render};

use serde::Serialize;

use crate::hw::{Bound, EnergyParts};
use crate::map::PlacedOp;
use crate::work::Streams;

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One costed op.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpResult {
    /// The op's name (`qkv_proj`, `expert_3`, …).
    pub name: String,
    /// Its decoder layer; `None` outside the layers (embedding, LM head).
    pub layer: Option<u32>,
    /// Its shape, as [`crate::model::Op::shape`] writes it.
    pub shape: String,
    /// Its op class (`gemm`, `attention`, …).
    pub class: &'static str,
    /// The unit it ran on (`xpu`, `pim`).
    pub unit: &'static str,
    /// FLOPs.
    pub flops: f64,
    /// DRAM bytes, all streams.
    pub bytes: f64,
    /// DRAM bytes by stream.
    pub streams: Streams,
    /// FLOPs per DRAM byte.
    pub op_b: f64,
    /// What limits it.
    pub bound: Bound,
    /// Its time (s).
    pub time_s: f64,
    /// Its compute time (s).
    pub compute_s: f64,
    /// Its memory (or link) time (s).
    pub memory_s: f64,
    /// Its fixed overheads (s).
    pub overhead_s: f64,
    /// Dynamic energy on one device, by component (J).
    pub energy_j: EnergyParts,
}

impl OpResult {
    /// The row of one placed and costed op.
    pub fn new(p: &PlacedOp<'_>) -> Self {
        let (op, w, c) = (p.op, &p.work, &p.cost);
        OpResult {
            name: op.name.to_string(),
            layer: op.layer,
            shape: op.shape(),
            class: w.class.name(),
            unit: p.unit.name(),
            flops: w.flops.value(),
            bytes: w.bytes.total().value(),
            streams: w.bytes,
            op_b: w.op_b(),
            bound: c.bound,
            time_s: c.time.value(),
            compute_s: c.compute.value(),
            memory_s: c.memory.value(),
            overhead_s: c.overhead.value(),
            energy_j: p.energy,
        }
    }
}

/// The rows of an iteration's placed ops, in their order.
pub fn op_rows(placed: &[PlacedOp<'_>]) -> Vec<OpResult> {
    placed.iter().map(OpResult::new).collect()
}

/// "weights bf16, activations bf16, KV fp8": a precision in words, as both headers write it.
pub fn precision_words(p: &crate::model::Precision) -> String {
    format!(
        "weights {}, activations {}, KV {}",
        p.weights, p.activations, p.kv
    )
}

/// The run's placement in both headers: "MODEL on ARCH xDEVICES (TP t, EP e, attention
/// data-parallel d)".
pub fn placement_words(model: &str, arch: &str, devices: u64, tp: u64, ep: u64, dp: u64) -> String {
    format!("{model} on {arch} x{devices} (TP {tp}, EP {ep}, attention data-parallel {dp})")
}

/// Whether a degree is 1 (left out of a report).
fn is_one(n: &u64) -> bool {
    *n == 1
}

/// What was run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInputs {
    /// The arch's name.
    pub arch: String,
    /// The model's name.
    pub model: String,
    /// `prefill` or `decode`.
    pub phase: String,
    /// Sequences in the batch.
    pub batch: u64,
    /// Prompt length of each sequence (prefill).
    pub prompt_len: u64,
    /// KV cache length of each sequence (decode).
    pub kv_len: u64,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Expert-parallel degree (always 1: a single iteration is tensor-parallel only).
    pub ep: u64,
    /// Devices the model replica runs on (`tp` × `ep`).
    pub devices: u64,
    /// Attention data parallelism: groups of sequences whose attention runs apart (`ep`).
    pub attention_dp: u64,
    /// Why dyad chose `tp` when `--tp` was not given, in words; absent when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp_reason: Option<String>,
    /// Sequence-parallel (Ulysses) degree (`--sp`); absent when 1.
    #[serde(skip_serializing_if = "is_one")]
    pub sp: u64,
    /// Element types of weights, activations and KV cache.
    pub precision: crate::model::Precision,
    /// The mapping policy's name.
    pub policy: String,
    /// What the model's import left out or assumed (absent when nothing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_notes: Vec<String>,
}

/// Whether the model and its KV cache fit in one device's memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryUse {
    /// Weights held by one device.
    pub weights_bytes: f64,
    /// Average bits per weight over every parameter (per-layer precision, group scales and
    /// the experts' storage type included).
    pub bits_per_weight: f64,
    /// KV cache held by one device.
    pub kv_bytes: f64,
    /// One device's memory capacity.
    pub capacity_bytes: f64,
    /// Whether weights and KV cache fit in the capacity.
    pub fits: bool,
}

/// Sums over the iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Time of one iteration on each device of the tensor-parallel group.
    pub iteration_s: f64,
    /// Tokens through the model this iteration.
    pub tokens: u64,
    /// Tokens produced this iteration (one per sequence that finishes a step).
    pub output_tokens: u64,
    /// `tokens` over the iteration time.
    pub tokens_per_s: f64,
    /// `output_tokens` over the iteration time.
    pub output_tokens_per_s: f64,
    /// FLOPs of the iteration on one device.
    pub flops: f64,
    /// DRAM bytes of the iteration on one device.
    pub bytes: f64,
    /// Dynamic energy of the iteration on all devices of the group, by component (J).
    pub energy_j: EnergyParts,
    /// Static power of one device, as the arch states it (`xpu.energy.static_power`, W).
    pub static_power_w: f64,
    /// Dynamic energy of the iteration on all devices: the sum of `energy_j` (J).
    pub energy_dynamic_j: f64,
    /// Static energy of the iteration: `static_power_w` × devices × `iteration_s` (J).
    pub energy_static_j: f64,
    /// Energy of the iteration, dynamic plus static (J).
    pub energy_total_j: f64,
    /// `energy_dynamic_j` over the tokens processed (J).
    pub energy_per_token_dynamic_j: f64,
    /// `energy_static_j` over the tokens processed (J).
    pub energy_per_token_static_j: f64,
    /// `energy_total_j` over the tokens processed (J): dynamic plus static per token.
    pub energy_per_token_j: f64,
}

impl Totals {
    /// The sums of `ops` (one device each), whose iteration moves `tokens` and produces
    /// `output_tokens` on `devices` devices that each draw `static_power_w` whatever they do.
    fn of(
        ops: &[OpResult],
        devices: u64,
        static_power_w: f64,
        tokens: u64,
        output_tokens: u64,
    ) -> Self {
        let time: f64 = ops.iter().map(|o| o.time_s).sum();
        let mut energy = EnergyParts::default();
        for o in ops {
            energy.add(o.energy_j);
        }
        let energy = energy.scaled(devices as f64);
        let dynamic = energy.total();
        let static_ = static_power_w * devices as f64 * time;
        let per = |e: f64| e / tokens.max(1) as f64;
        Totals {
            iteration_s: time,
            tokens,
            output_tokens,
            tokens_per_s: tokens as f64 / time,
            output_tokens_per_s: output_tokens as f64 / time,
            flops: ops.iter().map(|o| o.flops).sum(),
            bytes: ops.iter().map(|o| o.bytes).sum(),
            energy_j: energy,
            static_power_w,
            energy_dynamic_j: dynamic,
            energy_static_j: static_,
            energy_total_j: dynamic + static_,
            energy_per_token_dynamic_j: per(dynamic),
            energy_per_token_static_j: per(static_),
            energy_per_token_j: per(dynamic + static_),
        }
    }
}

/// Time and energy (one device) of each decoder layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTime {
    /// The layer's index.
    pub layer: u32,
    /// The sum of its op times (s).
    pub time_s: f64,
    /// The sum of its ops' dynamic energy on one device (J).
    pub energy_j: f64,
}

/// The report of one `dyad run` iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What was run.
    pub inputs: RunInputs,
    /// Memory per device.
    pub memory: MemoryUse,
    /// Every op, in execution order.
    pub ops: Vec<OpResult>,
    /// Every decoder layer, in order.
    pub layers: Vec<LayerTime>,
    /// Sums over the iteration.
    pub totals: Totals,
}

impl RunReport {
    /// The report of one iteration whose ops `map` placed and costed (`placed`, in execution
    /// order), which moves `tokens` through the model and produces `output_tokens`, on devices
    /// that each draw `static_power_w` whatever they do.
    pub fn new(
        inputs: RunInputs,
        memory: MemoryUse,
        placed: &[PlacedOp<'_>],
        static_power_w: f64,
        tokens: u64,
        output_tokens: u64,
    ) -> Self {
        let ops = op_rows(placed);
        let totals = Totals::of(&ops, inputs.tp, static_power_w, tokens, output_tokens);
        let mut layers: Vec<LayerTime> = Vec::new();
        for o in &ops {
            if let Some(l) = o.layer {
                match layers.last_mut() {
                    Some(lt) if lt.layer == l => {
                        lt.time_s += o.time_s;
                        lt.energy_j += o.energy_j.total();
                    }
                    _ => layers.push(LayerTime {
                        layer: l,
                        time_s: o.time_s,
                        energy_j: o.energy_j.total(),
                    }),
                }
            }
        }
        RunReport {
            schema_version: SCHEMA_VERSION,
            inputs,
            memory,
            ops,
            layers,
            totals,
        }
    }
}
