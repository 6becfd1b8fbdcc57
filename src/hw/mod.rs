//! Modeled hardware: compute units, memory, links, and what an op costs on them.
//!
//! **`hw` knows no model and no serving**: it prices [`crate::work::Work`].

mod curve;
mod pim;
mod xpu;

pub use curve::{Curve, CurveError};
pub use pim::{Origin, Pim, PimKind, PimOrigin};
pub use xpu::{
    Bound, ClassEfficiency, Cluster, CostError, Energy, EnergyParts, Link, Memory, Node, OpCost,
    System, Timing, Unit, Xpu,
};
