//! Mapping: which unit runs which op, and what the iteration then costs.
//!
//! A policy turns each op's cost on each unit into a placement. The placements of a layer are its
//! *partition plan*: which unit computes which experts, which attention (prefill or decode).
//!
//! **`map` returns costs, never report rows**: it uses only `units`, `work`, `model` and `hw`.

pub mod plan;

use std::str::FromStr;

use crate::hw::{CostError, EnergyParts, OpCost, System, Timing, Unit};
use crate::model::{IterationGraph, Op, OpKind};
use crate::names::{UnknownName, parse_name};
use crate::work::Work;

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
    /// Every policy with its name in files and flags and a line of help: the only list, in
    /// declaration order, so that a policy's row is `TABLE[policy as usize]`.
    pub const TABLE: [(Policy, &'static str, &'static str); 3] = [
        (Policy::AllXpu, "all-xpu", "every op on the xPU"),
        (
            Policy::Dispatch,
            "dispatch",
            "each op on the unit that runs it faster (low Op/B to PIM)",
        ),
        (
            Policy::Duplex,
            "duplex",
            "dispatch plus expert co-processing between the xPU and PIM",
        ),
    ];
    /// The names of [`Policy::TABLE`], in its order.
    pub const NAMES: [&'static str; 3] = [Self::TABLE[0].1, Self::TABLE[1].1, Self::TABLE[2].1];
    /// Every policy, in the order of [`Policy::TABLE`].
    pub const ALL: [Policy; 3] = [Self::TABLE[0].0, Self::TABLE[1].0, Self::TABLE[2].0];

    /// The name in files and flags (`all-xpu`, `dispatch`, `duplex`).
    pub fn name(self) -> &'static str {
        Self::TABLE[self as usize].1
    }

    /// Whether the xPU and PIM run concurrently (one stream per unit) rather than in turn.
    pub fn overlaps(self) -> bool {
        self == Policy::Duplex
    }
}

impl FromStr for Policy {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name("policy", &Self::TABLE, s)
    }
}

/// An op's time on each unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choices {
    /// On the xPU.
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

/// One op of an iteration, placed and costed: the unit a policy chose, the op's cost and
/// dynamic energy there (what `report` turns into a row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedOp<'g> {
    /// The op, as the iteration graph holds it.
    pub op: &'g Op,
    /// Its work (`op.work()`).
    pub work: Work,
    /// The unit it runs on.
    pub unit: Unit,
    /// Its cost on `unit`.
    pub cost: OpCost,
    /// Its dynamic energy on `unit`, on one device.
    pub energy: EnergyParts,
}

/// Fused-MoE launches: the experts of one layer that run on the same unit of the same device run
/// as one grouped kernel (as vLLM's fused MoE and DeepGEMM's grouped GEMM do), so the first pays
/// the launch overhead and the others none. Each expert keeps the efficiency of its own size,
/// and placement is decided before (on each expert's own time, its launch included).
/// `inside(i)` is called for each op `i` that runs inside an earlier op's launch.
pub fn fuse_expert_launches(ops: &[&Op], units: &[Unit], mut inside: impl FnMut(usize)) {
    // A layer's experts run on at most both units of each device: a few groups, searched.
    let mut launched: Vec<(Option<u32>, u32, Unit)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if !matches!(op.kind, OpKind::ExpertFfn { .. }) || op.name == "shared_expert" {
            continue;
        }
        let group = (op.layer, op.device, units[i]);
        if launched.contains(&group) {
            inside(i);
        } else {
            launched.push(group);
        }
    }
}

/// Places and costs every op of `g` under `policy`, in execution order (the single-iteration
/// report), the whole iteration placed at once.
/// Expert launches are fused ([`fuse_expert_launches`]).
pub fn cost_iteration<'g>(
    g: &'g IterationGraph,
    sys: &System,
    policy: Policy,
    timing: Timing,
) -> Result<Vec<PlacedOp<'g>>, CostError> {
    let ops: Vec<&Op> = g.ops().collect();
    let choices = choices_of(&ops, sys, timing)?;
    let units = place(policy, &ops, &choices);
    let mut costs = ops
        .iter()
        .zip(&choices)
        .zip(&units)
        .map(|((_, c), unit)| match unit {
            Unit::Pim => c.pim.ok_or(CostError::NoPim),
            Unit::Xpu => Ok(c.xpu),
        })
        .collect::<Result<Vec<OpCost>, _>>()?;
    fuse_expert_launches(&ops, &units, |i| costs[i] = costs[i].without_overhead());
    ops.iter()
        .zip(costs)
        .zip(units)
        .map(|((&op, cost), unit)| {
            let work = op.work();
            Ok(PlacedOp {
                op,
                work,
                unit,
                cost,
                energy: sys.energy_on(unit, &work)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for (i, (p, n, _)) in Policy::TABLE.iter().enumerate() {
            assert_eq!(*p as usize, i, "{n} is out of declaration order");
            assert_eq!(p.name(), *n);
            assert_eq!(n.parse::<Policy>(), Ok(*p));
        }
        let e = "fastest".parse::<Policy>().unwrap_err();
        assert_eq!(e.name, "fastest");
        assert_eq!(
            e.to_string(),
            "unknown policy \"fastest\" (valid: all-xpu, dispatch, duplex)"
        );
    }

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
