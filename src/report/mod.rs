//! Results as plain structs, and their renderings (terminal table, JSON, CSV, Markdown).
//!
//! **`report` only reads result structs**; it computes nothing but sums and shares.

pub mod plot;
pub mod render;
pub mod serving;
pub mod trace;

pub use render::{Format, render};

use serde::Serialize;

use crate::hw::{Bound, EnergyParts, OpCost};
use crate::model::Op;
use crate::work::{Streams, Work};

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One costed op.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpResult {
    pub name: String,
    pub layer: Option<u32>,
    pub shape: String,
    pub class: &'static str,
    pub unit: &'static str,
    pub flops: f64,
    pub bytes: f64,
    pub streams: Streams,
    pub op_b: f64,
    pub bound: Bound,
    pub time_s: f64,
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    /// Dynamic energy on one device, by component (J).
    pub energy_j: EnergyParts,
}

impl OpResult {
    pub fn new(op: &Op, w: &Work, unit: &'static str, c: &OpCost, e: EnergyParts) -> Self {
        OpResult {
            name: op.name.clone(),
            layer: op.layer,
            shape: op.shape(),
            class: w.class.name(),
            unit,
            flops: w.flops.value(),
            bytes: w.bytes.total().value(),
            streams: w.bytes,
            op_b: w.op_b(),
            bound: c.bound,
            time_s: c.time.value(),
            compute_s: c.compute.value(),
            memory_s: c.memory.value(),
            overhead_s: c.overhead.value(),
            energy_j: e,
        }
    }
}

/// What was run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInputs {
    pub arch: String,
    pub model: String,
    pub phase: String,
    pub batch: u64,
    pub prompt_len: u64,
    pub kv_len: u64,
    pub tp: u64,
    pub policy: String,
}

/// Whether the model and its KV cache fit in one device's memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryUse {
    pub weights_bytes: f64,
    pub kv_bytes: f64,
    pub capacity_bytes: f64,
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
    pub tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub flops: f64,
    pub bytes: f64,
    /// Dynamic energy of the iteration on all devices of the group, by component (J).
    pub energy_j: EnergyParts,
    /// `energy_j` in total over the tokens processed.
    pub energy_per_token_j: f64,
}

/// Time and energy (one device) of each decoder layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTime {
    pub layer: u32,
    pub time_s: f64,
    pub energy_j: f64,
}

/// The report of one `dyad run` iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub inputs: RunInputs,
    pub memory: MemoryUse,
    pub ops: Vec<OpResult>,
    pub layers: Vec<LayerTime>,
    pub totals: Totals,
}

impl RunReport {
    pub fn new(
        inputs: RunInputs,
        memory: MemoryUse,
        ops: Vec<OpResult>,
        tokens: u64,
        output_tokens: u64,
    ) -> Self {
        let time: f64 = ops.iter().map(|o| o.time_s).sum();
        let mut energy = EnergyParts::default();
        for o in &ops {
            energy.add(o.energy_j);
        }
        let energy = energy.scaled(inputs.tp as f64);
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
        let totals = Totals {
            iteration_s: time,
            tokens,
            output_tokens,
            tokens_per_s: tokens as f64 / time,
            output_tokens_per_s: output_tokens as f64 / time,
            flops: ops.iter().map(|o| o.flops).sum(),
            bytes: ops.iter().map(|o| o.bytes).sum(),
            energy_j: energy,
            energy_per_token_j: energy.total() / tokens.max(1) as f64,
        };
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
