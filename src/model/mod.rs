//! Transformer models as ops with closed-form work.
//!
//! **`model` knows no hardware**: it turns a model's shape and a batch into ops
//! carrying FLOPs and DRAM bytes per stream ([`crate::work::Work`]); what those
//! cost is `hw`'s business.

mod activation;
mod footprint;
mod gemm_shape;
mod graph;
mod op;
mod plan;
mod precision;
mod spec;
mod variant_ops;
mod variants;

pub use activation::Activation;
pub use footprint::Footprint;
pub use graph::{
    Batch, IterationGraph, Parallelism, PrefillChunk, Routing, build_iteration,
    build_iteration_with, check_layout,
};
pub use op::{Op, OpKind, Precision};
pub use plan::{Attention, Ffn, GroupLimit, LayerPlan, Mla, Router, causal_pairs};
pub use spec::{ModelError, ModelSpec, Moe, SharedExpert};
pub use variants::{
    ExpertKind, GroupScale, ImageKeep, KPmf, LayerQuant, MAX_K, PPM, Variants, ZeroExperts, ppm,
};
