//! Modeled hardware: compute units, memory, links, and what an op costs on them.
//!
//! **`hw` knows no model and no serving**: it prices [`crate::work::Work`]. Every compute unit
//! is priced by one formula, the [`Roofline`]; collectives by the [`Link`]s of the node.

mod curve;
mod link;
mod memory;
mod pim;
mod roofline;
mod software;
mod streaming;
mod system;
mod tiles;
mod xpu;

pub use curve::{Curve, CurveError};
pub use link::{Cluster, Link, Node};
pub use memory::Memory;
pub use pim::{Origin, Pim, PimKind, PimOrigin};
pub use roofline::{Bound, OpCost, Roofline};
pub use software::{Graphs, IterShape, Software};
pub use streaming::Streaming;
pub use system::{CostError, EnergyParts, System, Timing, Unit};
pub use tiles::{Tiling, Waves};
pub use xpu::{ClassEfficiency, Energy, Xpu};
