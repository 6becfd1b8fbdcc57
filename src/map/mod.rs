//! Mapping: which unit runs which op, and what the iteration then costs.
//!
//! Only the all-xPU policy exists so far (the GPU baseline); PIM dispatch and co-processing
//! policies join it as the devices that need them land.

pub mod plan;

use crate::hw::{CostError, System, Timing};
use crate::model::IterationGraph;
use crate::report::OpResult;

/// A mapping policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Every op on the xPU.
    #[default]
    AllXpu,
}

impl Policy {
    /// Every policy, in the order they are listed to users.
    pub const ALL: [Policy; 1] = [Policy::AllXpu];

    pub fn name(self) -> &'static str {
        match self {
            Policy::AllXpu => "all-xpu",
        }
    }
}

/// Costs every op of `g` under `policy`, in execution order.
pub fn cost_iteration(
    g: &IterationGraph,
    sys: &System,
    policy: Policy,
    timing: Timing,
) -> Result<Vec<OpResult>, CostError> {
    let Policy::AllXpu = policy;
    g.ops()
        .map(|op| {
            let work = op.work();
            let cost = sys.cost(&work, timing)?;
            Ok(OpResult::new(op, &work, "xpu", &cost))
        })
        .collect()
}
