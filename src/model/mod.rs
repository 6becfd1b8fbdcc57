//! Transformer models as ops with closed-form work.
//!
//! **`model` knows no hardware**: it turns a model's shape and a batch into ops
//! carrying FLOPs and DRAM bytes per stream ([`crate::work::Work`]); what those
//! cost is `hw`'s business.

mod activation;
mod footprint;
mod gemm_shape;
mod graph;
mod knob_ops;
mod knobs;
mod op;
mod plan;
mod precision;
mod spec;
mod variants;

pub use activation::Activation;
pub use footprint::Footprint;
pub use graph::{
    Batch, IterationGraph, Parallelism, PrefillChunk, Routing, build_iteration,
    build_iteration_with, check_layout,
};
pub use graph::{build_iteration_sp, ulysses_bytes};
pub use knobs::{
    ExpertKind, GroupScale, ImageKeep, KPmf, Knobs, LayerQuant, MAX_K, PPM, ZeroExperts, ppm,
};
pub use op::{LowRankShape, Op, OpKind, Precision, ScoreShape};
pub use plan::{Attention, Ffn, GroupLimit, LayerPlan, Mla, Router, causal_pairs};
pub use spec::{ModelError, ModelSpec, Moe, SharedExpert};
pub use variants::{KvRanks, Scorer, Sparse, Variant};
