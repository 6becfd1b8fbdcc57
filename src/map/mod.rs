//! Mapping: which unit runs which op, and what the iteration then costs.
//!
//! A policy turns each op's cost on each unit into a placement. The placements of a layer are its
//! *partition plan*: which unit computes which experts, which attention (prefill or decode).

pub mod plan;

use std::str::FromStr;

use crate::hw::{CostError, OpCost, System, Timing, Unit};
use crate::model::{IterationGraph, Op, OpKind};
use crate::report::OpResult;

/// A mapping policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Every op on the xPU (the GPU baseline).
    #[default]
    AllXpu,
    /// Each op instance, every iteration, on the unit that runs it faster (low Op/B to PIM, high
    /// Op/B to the xPU); one op at a time.
    Dispatch,
    /// Dispatch plus co-processing, as Duplex: the experts of a layer split between the units
    /// (fewest-token experts to PIM, the split that minimises the slower side), and the xPU and
    /// PIM run at once on separate streams (prefill attention on the xPU while decode attention
    /// runs on PIM), sharing the DRAM banks.
    Duplex,
}

impl Policy {
    pub const NAMES: [&'static str; 3] = ["all-xpu", "dispatch", "duplex"];
    /// Every policy, in the order of `NAMES`.
    pub const ALL: [Policy; 3] = [Policy::AllXpu, Policy::Dispatch, Policy::Duplex];

    pub fn name(self) -> &'static str {
        match self {
            Policy::AllXpu => "all-xpu",
            Policy::Dispatch => "dispatch",
            Policy::Duplex => "duplex",
        }
    }

    /// Whether the xPU and PIM run concurrently (one stream per unit) rather than in turn.
    pub fn overlaps(self) -> bool {
        self == Policy::Duplex
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all-xpu" => Ok(Policy::AllXpu),
            "dispatch" => Ok(Policy::Dispatch),
            "duplex" => Ok(Policy::Duplex),
            _ => Err(format!(
                "unknown policy \"{s}\" (valid: {})",
                Policy::NAMES.join(", ")
            )),
        }
    }
}

/// An op's time on each unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choices {
    pub xpu: OpCost,
    /// `None` where there is no PIM or the op cannot run there (collectives).
    pub pim: Option<OpCost>,
}

impl Choices {
    fn faster(&self) -> Unit {
        match self.pim {
            Some(p) if p.time < self.xpu.time => Unit::Pim,
            _ => Unit::Xpu,
        }
    }

    fn time(&self, u: Unit) -> f64 {
        match (u, self.pim) {
            (Unit::Pim, Some(p)) => p.time.value(),
            _ => self.xpu.time.value(),
        }
    }
}

/// Splits experts between the units: the `j` experts with the fewest tokens on PIM, the rest on
/// the xPU, with `j` chosen to minimise the slower side (each side runs its experts in turn).
/// `experts` holds (tokens, time on xPU, time on PIM); the result is in the same order.
pub fn split_experts(experts: &[(u64, f64, f64)]) -> Vec<Unit> {
    let mut order: Vec<usize> = (0..experts.len()).collect();
    order.sort_by_key(|&i| (experts[i].0, i));
    let total_xpu: f64 = experts.iter().map(|e| e.1).sum();
    let (mut pim, mut xpu) = (0.0, total_xpu);
    let (mut best, mut best_j) = (xpu, 0);
    for (j, &i) in order.iter().enumerate() {
        pim += experts[i].2;
        xpu -= experts[i].1;
        if pim.max(xpu) < best {
            best = pim.max(xpu);
            best_j = j + 1;
        }
    }
    let mut units = vec![Unit::Xpu; experts.len()];
    for &i in &order[..best_j] {
        units[i] = Unit::Pim;
    }
    units
}

/// Places the ops of one part of an iteration (a layer, or the ops outside the layers).
pub fn place(policy: Policy, ops: &[&Op], choices: &[Choices]) -> Vec<Unit> {
    match policy {
        Policy::AllXpu => vec![Unit::Xpu; ops.len()],
        Policy::Dispatch => choices.iter().map(Choices::faster).collect(),
        Policy::Duplex => {
            let mut units: Vec<Unit> = choices.iter().map(Choices::faster).collect();
            // Each device splits the experts of each layer between its xPU and its PIM.
            let mut groups: Vec<(Option<u32>, u32)> =
                ops.iter().map(|o| (o.layer, o.device)).collect();
            groups.sort_unstable();
            groups.dedup();
            for g in groups {
                let experts: Vec<usize> = (0..ops.len())
                    .filter(|&i| (ops[i].layer, ops[i].device) == g && choices[i].pim.is_some())
                    .filter(|&i| matches!(ops[i].kind, OpKind::ExpertFfn { .. }))
                    .collect();
                let input: Vec<(u64, f64, f64)> = experts
                    .iter()
                    .map(|&i| {
                        let tokens = match ops[i].kind {
                            OpKind::ExpertFfn { tokens, .. } => tokens,
                            _ => 0,
                        };
                        (
                            tokens,
                            choices[i].time(Unit::Xpu),
                            choices[i].time(Unit::Pim),
                        )
                    })
                    .collect();
                for (k, u) in split_experts(&input).into_iter().enumerate() {
                    units[experts[k]] = u;
                }
            }
            units
        }
    }
}

/// Each op's time on each unit (no PIM time for collectives, or where there is no PIM).
pub fn choices_of(ops: &[&Op], sys: &System, timing: Timing) -> Result<Vec<Choices>, CostError> {
    ops.iter()
        .map(|op| {
            let w = op.work();
            let pim = match (&sys.pim, op.kind.is_collective()) {
                (Some(_), false) => Some(sys.cost_on(Unit::Pim, &w, timing)?),
                _ => None,
            };
            Ok(Choices {
                xpu: sys.cost(&w, timing)?,
                pim,
            })
        })
        .collect()
}

/// Where `policy` puts each op of `g`, in execution order, placing each layer (and the ops
/// outside the layers) on its own, as the simulator does.
pub fn place_by_layer(
    g: &IterationGraph,
    sys: &System,
    policy: Policy,
    timing: Timing,
) -> Result<Vec<Unit>, CostError> {
    let ops: Vec<&Op> = g.ops().collect();
    let mut units = vec![Unit::Xpu; ops.len()];
    let mut layers: Vec<Option<u32>> = ops.iter().map(|o| o.layer).collect();
    layers.sort();
    layers.dedup();
    for layer in layers {
        let idx: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].layer == layer).collect();
        let part: Vec<&Op> = idx.iter().map(|&i| ops[i]).collect();
        let placed = place(policy, &part, &choices_of(&part, sys, timing)?);
        for (&i, u) in idx.iter().zip(placed) {
            units[i] = u;
        }
    }
    Ok(units)
}

/// Costs every op of `g` on the xPU, in execution order (the single-iteration report).
pub fn cost_iteration(
    g: &IterationGraph,
    sys: &System,
    policy: Policy,
    timing: Timing,
) -> Result<Vec<OpResult>, CostError> {
    let ops: Vec<&Op> = g.ops().collect();
    let choices = choices_of(&ops, sys, timing)?;
    let units = place(policy, &ops, &choices);
    ops.iter()
        .zip(&choices)
        .zip(units)
        .map(|((op, c), u)| {
            let cost = match u {
                Unit::Pim => c.pim.ok_or(CostError::NoPim)?,
                Unit::Xpu => c.xpu,
            };
            let w = op.work();
            Ok(OpResult::new(
                op,
                &w,
                u.name(),
                &cost,
                sys.energy_on(u, &w)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expert_split_balances_the_sides() {
        // Four experts; PIM is 4x faster per expert but the xPU runs in parallel.
        let e = [(1, 4.0, 1.0), (2, 4.0, 1.0), (9, 4.0, 1.0), (3, 4.0, 1.0)];
        let u = split_experts(&e);
        // All on PIM: 4; j = 3 on PIM: max(3, 4) = 4; j = 2: max(2, 8): the best is all on PIM
        // or three on PIM (equal); the strict improvement rule keeps the first minimum found.
        let pim = u.iter().filter(|&&x| x == Unit::Pim).count();
        assert!(pim >= 3);
        // The expert with most tokens is the last to go to PIM.
        if pim == 3 {
            assert_eq!(u[2], Unit::Xpu);
        }
    }
}
