//! Simulation: the fluid discrete-event engine, and continuous-batching serving on top of it.
//!
//! **`sim` does no file I/O**: scenarios arrive resolved from `config`, results leave as plain
//! structs for `report`.

pub mod counts;
pub mod engine;
pub mod expert_parallel;
pub mod iteration;
pub mod kv;
pub mod overlap;
pub mod pipeline;
pub mod routing;
pub mod serving;
pub mod variant_routing;
pub mod workload;
