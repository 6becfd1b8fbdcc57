//! Partition plans: which unit computes which part of an op.
//!
//! A plan splits one op along one axis (output columns, the reduction index, query heads, key
//! positions, experts) into parts, each on a unit, and says what the cost model charges each
//! part (the part's own [`Op`], so a simulator costs a plan by costing its parts). The reference
//! kernels execute plans and check both the answer and the work (`crate::kernels`).
//!
//! Today's policy is all-xPU with Megatron-style tensor parallelism (Shoeybi et al., 2019):
//! QKV and gate/up projections split by columns, O and down projections (and every expert's
//! inner dimension) by rows with an all-reduce, attention and RoPE by heads, the LM head by
//! vocabulary columns, everything else replicated; or expert parallelism, each expert op whole on
//! its device. PIM co-processing policies produce the same type: experts to units (each expert op
//! whole on its unit, as under expert parallelism), heads to units, key ranges to units.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::model::{
    Batch, IterationGraph, ModelError, ModelSpec, Op, OpKind, Parallelism, Precision, Routing,
    build_iteration_with,
};

/// A compute unit that runs a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// The i-th xPU of a tensor-parallel group.
    Xpu(u32),
    /// Logic-PIM in the memory of the i-th xPU.
    LogicPim(u32),
    /// Bank-group PIM in the memory of the i-th xPU.
    BankGroupPim(u32),
    /// Bank-PIM in the memory of the i-th xPU.
    BankPim(u32),
}

impl Unit {
    /// The same kind of unit on device `i`.
    pub fn on_device(self, i: u32) -> Unit {
        match self {
            Unit::Xpu(_) => Unit::Xpu(i),
            Unit::LogicPim(_) => Unit::LogicPim(i),
            Unit::BankGroupPim(_) => Unit::BankGroupPim(i),
            Unit::BankPim(_) => Unit::BankPim(i),
        }
    }

    /// The kind's name: `xpu`, `logic-pim`, `bankgroup-pim`, `bank-pim`.
    pub fn kind(self) -> &'static str {
        match self {
            Unit::Xpu(_) => "xpu",
            Unit::LogicPim(_) => "logic-pim",
            Unit::BankGroupPim(_) => "bankgroup-pim",
            Unit::BankPim(_) => "bank-pim",
        }
    }

    fn index(self) -> u32 {
        match self {
            Unit::Xpu(i) | Unit::LogicPim(i) | Unit::BankGroupPim(i) | Unit::BankPim(i) => i,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind(), self.index())
    }
}

/// The axis an op is split along, which fixes how parts combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// One unit runs the whole op.
    Whole,
    /// Every unit runs the whole op on the same inputs (results agree).
    Replicated,
    /// Output columns (column-parallel GEMM, activation); parts concatenate.
    Columns,
    /// The reduction index (row-parallel GEMM, an expert's inner dimension); parts are partial
    /// sums that an all-reduce adds.
    Inner,
    /// Query heads (each part reads the KV heads its heads share); parts concatenate.
    Heads,
    /// Key positions of every sequence; parts merge by log-sum-exp.
    KvRange,
    /// A collective (all-reduce: every unit contributes a vector and receives the sum;
    /// all-to-all: every unit scatters its message among all).
    Collective,
}

impl Axis {
    /// The name in plan descriptions: `whole`, `columns`, `kv-range`, …
    pub fn name(self) -> &'static str {
        match self {
            Axis::Whole => "whole",
            Axis::Replicated => "replicated",
            Axis::Columns => "columns",
            Axis::Inner => "inner",
            Axis::Heads => "heads",
            Axis::KvRange => "kv-range",
            Axis::Collective => "collective",
        }
    }
}

/// One unit's part of an op.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The unit that computes it.
    pub unit: Unit,
    /// Indices along the plan's axis (empty for whole, replicated and collective parts).
    pub share: Vec<Range<u64>>,
    /// What the cost model charges this part.
    pub op: Op,
}

/// How one op is split between units.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionPlan {
    /// The axis the op is split along.
    pub axis: Axis,
    /// One part per unit, by device index.
    pub parts: Vec<Part>,
}

impl PartitionPlan {
    /// One unit runs `op` whole.
    pub fn whole(op: &Op, unit: Unit) -> Self {
        PartitionPlan {
            axis: Axis::Whole,
            parts: vec![Part {
                unit,
                share: Vec::new(),
                op: op.clone(),
            }],
        }
    }

    /// A short description: `heads x4`, `whole on xpu0`, `inner x2 on logic-pim`.
    pub fn describe(&self) -> String {
        match (self.axis, self.parts.as_slice()) {
            (Axis::Whole, [p]) => format!("whole on {}", p.unit),
            (a, parts) => {
                let mut s = format!("{} x{}", a.name(), parts.len());
                if let Some(p) = parts.iter().find(|p| p.unit.kind() != "xpu") {
                    s += &format!(" on {}", p.unit.kind());
                }
                s
            }
        }
    }
}

/// An op (unsplit) and the plan that splits it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpPlan {
    /// The op unsplit (as the `tp` = 1 graph holds it).
    pub op: Op,
    /// How it is split.
    pub plan: PartitionPlan,
}

/// Each device's share along the plan's axis, by device index.
type ShareOf<'a> = Box<dyn Fn(u64) -> Vec<Range<u64>> + 'a>;

/// `[width·i, width·(i+1))` offset by `base`.
fn slot(base: u64, width: u64, i: u64) -> Range<u64> {
    base + width * i..base + width * (i + 1)
}

/// The plans for one iteration on a group of devices laid out as `par`: each op of the unsplit
/// iteration with its parts, each part charged the op the per-device graph holds. `placed` gives
/// the unit kind a policy chose for each op of the per-device graph, in execution order (see
/// `map::place_by_layer`); every device runs its part on that kind of unit. Empty: every op on
/// the xPU. Under expert parallelism every expert runs whole on its device and the dispatch and
/// combine are all-to-all collectives; the other ops run on device 0's own sequences (`batch`),
/// as every device runs them on its own.
pub fn plan_iteration(
    m: &ModelSpec,
    batch: &Batch,
    par: Parallelism,
    p: Precision,
    routing: &Routing,
    placed: &[Unit],
) -> Result<Vec<OpPlan>, ModelError> {
    let full = build_iteration_with(m, batch, Parallelism { tp: 1, ..par }, p, routing)?;
    let dev = build_iteration_with(m, batch, par, p, routing)?;
    let mut plans = tensor_parallel(m, &full, &dev);
    if placed.len() == plans.len() {
        for (plan, &u) in plans.iter_mut().zip(placed) {
            for part in &mut plan.plan.parts {
                if plan.plan.axis != Axis::Collective {
                    part.unit = u.on_device(part.unit.index());
                }
            }
        }
    }
    Ok(plans)
}

/// A collective over `devices` devices, every one charged `op`.
fn collective(op: &Op, devices: u64) -> PartitionPlan {
    let parts = (0..devices)
        .map(|i| Part {
            unit: Unit::Xpu(i as u32),
            share: Vec::new(),
            op: op.clone(),
        })
        .collect();
    PartitionPlan {
        axis: Axis::Collective,
        parts,
    }
}

fn tensor_parallel(m: &ModelSpec, full: &IterationGraph, dev: &IterationGraph) -> Vec<OpPlan> {
    let tp = dev.tp;
    let whole: HashMap<(Option<u32>, &str), &Op> = full
        .ops()
        .map(|o| ((o.layer, o.name.as_ref()), o))
        .collect();
    dev.ops()
        .map(|o| {
            let op = whole
                .get(&(o.layer, o.name.as_ref()))
                .map_or_else(|| o.clone(), |w| (*w).clone());
            if tp == 1 {
                let plan = match o.kind {
                    OpKind::AllToAll { devices, .. } | OpKind::AllReduce { devices, .. }
                        if devices > 1 =>
                    {
                        collective(o, devices)
                    }
                    _ => PartitionPlan::whole(o, Unit::Xpu(o.device)),
                };
                return OpPlan { plan, op };
            }
            let (axis, share) = split_of(m, o, tp);
            let parts = (0..tp)
                .map(|i| Part {
                    unit: Unit::Xpu(i as u32),
                    share: share(i),
                    op: o.clone(),
                })
                .collect();
            OpPlan {
                op,
                plan: PartitionPlan { axis, parts },
            }
        })
        .collect()
}

/// The axis a `tp`-way group splits `o` along (Megatron-style), and each device's share.
fn split_of<'a>(m: &'a ModelSpec, o: &Op, tp: u64) -> (Axis, ShareOf<'a>) {
    let (d, big_h, big_g) = (m.head_dim, m.heads, m.kv_heads);
    let hq = m.heads_per_device(tp);
    let group = big_h / big_g;
    let kv = move |i: u64| (i * hq) / group..((i + 1) * hq - 1) / group + 1;
    // The FFN inner size of the op's layer (the head has none), and its latent attention.
    let ffn = o.layer.map_or(0, |l| m.ffn_inner(l));
    let fi = ffn / tp;
    let mla = o.layer.and_then(|l| m.plans[l as usize].mla);
    // Value columns per KV head: MatryoshkaKV's value rank (folded into W_v), else head_dim.
    let dv = o.layer.map_or(d, |l| m.plans[l as usize].kv_dims(d).1);
    // Query and output columns per head: MLA's nope + rope and v, else head_dim (the output's
    // at the value rank).
    let (q_cols, o_cols) = mla.map_or((d, dv), |a| (a.nope + a.rope, a.v));
    let kv_b = mla.map_or(0, |a| a.nope + a.v);
    let shared = m.moe.and_then(|x| x.shared).map_or(0, |s| s.intermediate);
    match o.name.as_ref() {
        "qkv_proj" => (
            Axis::Columns,
            Box::new(move |i| {
                let g = kv(i);
                vec![
                    slot(0, hq * d, i),
                    big_h * d + g.start * d..big_h * d + g.end * d,
                    (big_h + big_g) * d + g.start * dv..(big_h + big_g) * d + g.end * dv,
                ]
            }),
        ),
        "rope" | "qk_norm" | "attn_prefill" | "attn_decode" | "q_absorb" | "v_up" => {
            (Axis::Heads, Box::new(move |i| vec![slot(0, hq, i)]))
        }
        // MatryoshkaKV's projection: one product per KV head, each device its own heads'.
        "qk_rank_proj" => (Axis::Heads, Box::new(move |i| vec![kv(i)])),
        "o_proj" => (
            Axis::Inner,
            Box::new(move |i| vec![slot(0, hq * o_cols, i)]),
        ),
        "q_proj" | "q_b_proj" => (
            Axis::Columns,
            Box::new(move |i| vec![slot(0, hq * q_cols, i)]),
        ),
        "kv_b_proj" => (
            Axis::Columns,
            Box::new(move |i| vec![slot(0, hq * kv_b, i)]),
        ),
        "gate_up_proj" => (
            Axis::Columns,
            Box::new(move |i| vec![slot(0, fi, i), slot(ffn, fi, i)]),
        ),
        "act" | "up_proj" => (Axis::Columns, Box::new(move |i| vec![slot(0, fi, i)])),
        "lm_head" | "logit_softcap" => (
            Axis::Columns,
            Box::new(move |i| vec![slot(0, m.vocab / tp, i)]),
        ),
        n if n == "down_proj" || n.starts_with("expert_") => {
            (Axis::Inner, Box::new(move |i| vec![slot(0, fi, i)]))
        }
        "shared_expert" => (
            Axis::Inner,
            Box::new(move |i| vec![slot(0, shared / tp, i)]),
        ),
        _ if matches!(o.kind, OpKind::AllReduce { .. }) => {
            (Axis::Collective, Box::new(|_| Vec::new()))
        }
        _ => (Axis::Replicated, Box::new(|_| Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LayerPlan, Moe};
    use crate::work::Dtype;

    fn tiny() -> ModelSpec {
        ModelSpec {
            name: "tiny".into(),
            hidden: 64,
            plans: LayerPlan::periodic(1, 96, Some(1)),
            heads: 8,
            kv_heads: 2,
            head_dim: 8,
            vocab: 128,
            moe: Some(Moe {
                experts: 4,
                top_k: 2,
                intermediate: 96,
                shared: None,
            }),
            ffn_gated: true,
            act: crate::model::Activation::Silu,
            dtype: Dtype::Bf16,
            tie_embeddings: false,
            logit_softcap: false,
            quantized: None,
            notes: Vec::new(),
        }
    }

    fn plans_with(tp: u64, ep: u64) -> Vec<OpPlan> {
        let p = Precision::uniform(Dtype::Bf16);
        let par = Parallelism { tp, ep };
        plan_iteration(
            &tiny(),
            &Batch::decode(4, 16),
            par,
            p,
            &Routing::Uniform,
            &[],
        )
        .unwrap()
    }

    fn plans(tp: u64) -> Vec<OpPlan> {
        plans_with(tp, 1)
    }

    #[test]
    fn ep2_puts_whole_experts_on_alternate_devices_between_all_to_alls() {
        let ps = plans_with(1, 2);
        for p in ps.iter().filter(|p| p.op.name.starts_with("expert_")) {
            let OpKind::ExpertFfn { expert, .. } = p.op.kind else {
                panic!("{:?}", p.op.kind)
            };
            assert_eq!(p.plan.describe(), format!("whole on xpu{}", expert % 2));
        }
        let a2a: Vec<_> = ps
            .iter()
            .filter(|p| p.plan.axis == Axis::Collective)
            .collect();
        assert_eq!(a2a.len(), 2);
        assert!(a2a.iter().all(|p| p.plan.parts.len() == 2));
    }

    #[test]
    fn placements_move_parts_to_pim_on_every_device() {
        let p = Precision::uniform(Dtype::Bf16);
        let par = Parallelism { tp: 2, ep: 1 };
        let b = Batch::decode(4, 16);
        let n = plans(2).len();
        let decode = plans(2)
            .iter()
            .position(|p| p.op.name == "attn_decode")
            .unwrap();
        let mut placed = vec![Unit::Xpu(0); n];
        placed[decode] = Unit::LogicPim(0);
        let ps = plan_iteration(&tiny(), &b, par, p, &Routing::Uniform, &placed).unwrap();
        let units: Vec<String> = ps[decode]
            .plan
            .parts
            .iter()
            .map(|x| x.unit.to_string())
            .collect();
        assert_eq!(units, ["logic-pim0", "logic-pim1"]);
        assert_eq!(ps[decode].plan.describe(), "heads x2 on logic-pim");
        assert_eq!(ps[decode - 1].plan.parts[1].unit, Unit::Xpu(1));
    }

    #[test]
    fn tp1_runs_every_op_whole_on_one_xpu() {
        for p in plans(1) {
            assert_eq!(p.plan.describe(), "whole on xpu0");
            assert_eq!(p.plan.parts[0].op, p.op);
        }
    }

    #[test]
    fn tp4_splits_qkv_columns_by_head_groups_with_replicated_kv() {
        let ps = plans(4);
        let qkv = ps.iter().find(|p| p.op.name == "qkv_proj").unwrap();
        assert_eq!(qkv.plan.axis, Axis::Columns);
        // 8 heads of dim 8 over 4 devices: 2 query heads each; 2 KV heads, so devices 0 and 1
        // share KV head 0 (columns 64..72 of K, 80..88 of V).
        assert_eq!(qkv.plan.parts[1].share, vec![16..32, 64..72, 80..88]);
        assert_eq!(qkv.plan.parts[3].share, vec![48..64, 72..80, 88..96]);
        let cols: u64 = qkv.plan.parts[1]
            .share
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        assert!(matches!(qkv.plan.parts[1].op.kind, OpKind::Gemm { n, .. } if n == cols));
        let ar = ps
            .iter()
            .filter(|p| p.plan.axis == Axis::Collective)
            .count();
        assert_eq!(ar, 2);
    }

    #[test]
    fn tp4_splits_values_and_the_output_at_matryoshka_value_rank() {
        // Values cached at 3 of 8 elements per head: V is 2 KV heads × 3 columns after Q (64)
        // and K (16), and o_proj's inner index is 8 heads × 3; device 1 shares KV head 0.
        let mut m = tiny();
        m.plans[0].variant.ranks = Some(crate::model::KvRanks { key: 4, value: 3 });
        let p = Precision::uniform(Dtype::Bf16);
        let par = Parallelism { tp: 4, ep: 1 };
        let b = Batch::decode(4, 16);
        let ps = plan_iteration(&m, &b, par, p, &Routing::Uniform, &[]).unwrap();
        let find = |n: &str| ps.iter().find(|p| p.op.name == n).unwrap();
        assert_eq!(
            find("qkv_proj").plan.parts[1].share,
            vec![16..32, 64..72, 80..83]
        );
        assert_eq!(find("qkv_proj").plan.parts[3].share[2], 83..86);
        assert_eq!(find("o_proj").plan.parts[3].share, vec![18..24]);
        // The key projection, one product per KV head: devices 2 and 3 take KV head 1's.
        assert_eq!(find("qk_rank_proj").plan.parts[2].share, vec![1..2]);
    }
}
