//! Partitioned execution over random shapes and random splits: the split answer equals the
//! unsplit one within the element type's tolerance, FLOPs are conserved, and every op of random
//! models' iterations counts exactly the work the cost model charges.

use std::ops::Range;

use dyad::kernels::exec::{Context, ring_allreduce};
use dyad::kernels::moe::{Expert, MoeLayer, moe_layer};
use dyad::kernels::{Rng, check_op, normalized_error, to_elems, to_f32s, tolerance};
use dyad::map::plan::{Axis, OpPlan, Part, PartitionPlan, Unit, plan_iteration};
use dyad::model::{
    Activation, Batch, LayerPlan, ModelSpec, Moe, Op, OpKind, Parallelism, Precision, PrefillChunk,
    Routing, causal_pairs,
};
use dyad::work::Dtype;
use half::bf16;
use proptest::prelude::*;

fn activation() -> impl Strategy<Value = Activation> {
    prop::sample::select(vec![
        Activation::Silu,
        Activation::GeluTanh,
        Activation::Relu,
    ])
}

fn dtype() -> impl Strategy<Value = Dtype> {
    prop::sample::select(vec![Dtype::Fp32, Dtype::Bf16, Dtype::Fp16])
}

/// Cuts [0, n) at up to `parts − 1` random points into non-empty contiguous ranges.
fn cuts(n: u64, mut points: Vec<u64>) -> Vec<Range<u64>> {
    points.retain(|&p| p > 0 && p < n);
    points.sort_unstable();
    points.dedup();
    let mut edges = vec![0];
    edges.extend(points);
    edges.push(n);
    edges.windows(2).map(|w| w[0]..w[1]).collect()
}

fn split_plan(op: &Op, axis: Axis, ranges: Vec<Range<u64>>) -> OpPlan {
    let parts = ranges
        .into_iter()
        .enumerate()
        .map(|(i, r)| Part {
            unit: Unit::Xpu(i as u32),
            share: vec![r],
            op: op.clone(),
        })
        .collect();
    OpPlan {
        op: op.clone(),
        plan: PartitionPlan { axis, parts },
    }
}

fn tiny_model() -> ModelSpec {
    ModelSpec {
        name: "t".into(),
        hidden: 16,
        plans: LayerPlan::periodic(1, 32, None),
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
        vocab: 64,
        moe: None,
        ffn_gated: true,
        act: Activation::Silu,
        dtype: Dtype::Bf16,
        tie_embeddings: false,
        logit_softcap: false,
        quantized: None,
        notes: Vec::new(),
    }
}

/// Checks a random split: error within tolerance and the parts' FLOPs summing to the whole's.
fn check_split(p: &OpPlan, batch: &Batch) -> Result<(), TestCaseError> {
    let m = tiny_model();
    let c = check_op(p, Context { model: &m, batch }, 7);
    prop_assert!(c.unsupported.is_none(), "{:?}", c.unsupported);
    prop_assert!(
        c.error <= c.tolerance,
        "error {} > {}",
        c.error,
        c.tolerance
    );
    prop_assert_eq!(c.counted_flops() as f64, c.whole_flops);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gemm_column_and_inner_splits_equal_the_whole(
        m in 1u64..24, k in 1u64..48, n in 1u64..24, d in dtype(),
        points in prop::collection::vec(0u64..48, 0..5), inner in any::<bool>(),
    ) {
        let op = Op::new("g", None, OpKind::Gemm { m, n, k, batch: 1 }, Precision::uniform(d));
        let (axis, extent) = if inner { (Axis::Inner, k) } else { (Axis::Columns, n) };
        check_split(&split_plan(&op, axis, cuts(extent, points)), &Batch::default())?;
    }

    #[test]
    fn expert_inner_split_equals_the_whole(
        tokens in 1u64..12, inner in 1u64..40, d in dtype(), gated in any::<bool>(),
        act in activation(), points in prop::collection::vec(0u64..40, 0..4),
    ) {
        let kind = OpKind::ExpertFfn { expert: 0, tokens, hidden: 16, inner, gated, act };
        let op = Op::new("expert_0", Some(0), kind, Precision::uniform(d));
        check_split(&split_plan(&op, Axis::Inner, cuts(inner, points)), &Batch::default())?;
    }

    #[test]
    fn attention_head_and_key_range_splits_equal_the_whole(
        groups in 1u64..4, per_group in 1u64..4, half_d in 1u64..5, d in dtype(),
        chunks in prop::collection::vec((0u64..12, 1u64..6), 1..4),
        points in prop::collection::vec(0u64..18, 0..4), by_keys in any::<bool>(),
        decode in any::<bool>(),
    ) {
        // MQA (one group), GQA and MHA (one head per group) all arise.
        let (heads, head_dim) = (groups * per_group, 2 * half_d);
        let (batch, kind) = if decode {
            let kv: Vec<u64> = chunks.iter().map(|c| c.0 + 1).collect();
            let kind = OpKind::AttnDecode {
                seqs: kv.len() as u64, kv_tokens: kv.iter().sum(), heads,
                kv_heads: groups, head_dim,
            };
            (Batch { decode_kv: kv, prefill: Vec::new() }, kind)
        } else {
            let pre: Vec<PrefillChunk> = chunks.iter()
                .map(|&(ctx, q_len)| PrefillChunk { q_len, ctx, last: true }).collect();
            let kind = OpKind::AttnPrefill {
                seqs: pre.len() as u64,
                q_tokens: pre.iter().map(|c| c.q_len).sum(),
                kv_tokens: pre.iter().map(|c| c.ctx + c.q_len).sum(),
                attended: pre.iter().map(|c| causal_pairs(c.q_len, c.ctx)).sum(),
                heads, kv_heads: groups, head_dim,
            };
            (Batch { decode_kv: Vec::new(), prefill: pre }, kind)
        };
        let op = Op::new("attn", Some(0), kind, Precision::uniform(d));
        let (axis, extent) = if by_keys { (Axis::KvRange, 18) } else { (Axis::Heads, heads) };
        let plan = split_plan(&op, axis, cuts(extent, points));
        check_split(&plan, &batch)?;
        if by_keys {
            // Disjoint key ranges read every cached key and write every new one exactly once.
            let m = tiny_model();
            let c = check_op(&plan, Context { model: &m, batch: &batch }, 5);
            let sum = |f: fn(&dyad::kernels::Count) -> u64| -> f64 {
                c.parts.iter().map(|p| f(&p.counted) as f64).sum()
            };
            let w = op.work().bytes;
            prop_assert_eq!(sum(|c| c.kv_read), w.kv_read.value());
            prop_assert_eq!(sum(|c| c.kv_write), w.kv_write.value());
        }
        // Unsplit, the kernel's count is exactly the model's work for the op.
        let whole = OpPlan { op: op.clone(), plan: PartitionPlan::whole(&op, Unit::Xpu(0)) };
        let m = tiny_model();
        let c = check_op(&whole, Context { model: &m, batch: &batch }, 3);
        prop_assert!(c.parts[0].mismatches.is_empty(), "{:?}", c.parts[0].mismatches);
    }

    #[test]
    fn experts_split_between_units_equal_one_unit(
        experts in 2usize..7, k_seed in any::<u64>(), tokens in 1usize..10,
        owner in prop::collection::vec(0usize..3, 7),
    ) {
        let (h, inner) = (8, 12);
        let top_k = 1 + (k_seed as usize) % experts;
        let mut rng = Rng::new(k_seed);
        let mut w = |n: usize, s: f32| to_elems::<bf16>(&rng.vec(n, s));
        let layer = MoeLayer {
            hidden: h, inner, top_k,
            router: w(h * experts, 0.5),
            experts: (0..experts).map(|_| Expert {
                gate: w(h * inner, 0.4), up: w(h * inner, 0.4), down: w(inner * h, 0.3),
            }).collect(),
        };
        let x = w(tokens * h, 1.0);
        let one = moe_layer(&layer, &x, &[(0..experts).collect()]);
        let mut units = vec![Vec::new(); 3];
        for e in 0..experts { units[owner[e]].push(e); }
        let split = moe_layer(&layer, &x, &units);
        let err = normalized_error(&to_f32s(&split.out), &to_f32s(&one.out));
        prop_assert!(err <= tolerance(Dtype::Bf16), "{err}");
        let flops = |r: &dyad::kernels::moe::MoeRun<bf16>| r.per_unit.iter().map(|c| c.flops).sum::<u64>();
        prop_assert_eq!(flops(&split), flops(&one));
        // Every assignment reaches an expert: tokens × top-k in all.
        prop_assert_eq!(one.routing.counts().iter().sum::<u64>(), (tokens * top_k) as u64);
    }

    #[test]
    fn ring_allreduce_sums_and_each_device_adds_its_share(
        devices in 1usize..9, len in 1usize..64, seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let inputs: Vec<Vec<f32>> = (0..devices).map(|_| rng.vec(len, 1.0)).collect();
        let sum: Vec<f32> = (0..len).map(|i| inputs.iter().map(|v| v[i]).sum()).collect();
        let (outs, counts) = ring_allreduce(&inputs);
        for o in &outs {
            prop_assert!(normalized_error(o, &sum) < 1e-5);
        }
        // Reduce-scatter: each device adds every chunk but its own.
        let total: u64 = counts.iter().map(|c| c.flops).sum();
        prop_assert_eq!(total, ((devices - 1) * len) as u64);
    }

    #[test]
    fn every_op_of_random_models_counts_what_the_model_charges(
        kv_heads in prop::sample::select(vec![1u64, 2, 4]), group in 1u64..4,
        moe in any::<bool>(), experts in 2u64..6, tp in prop::sample::select(vec![1u64, 2, 4]),
        decode in prop::collection::vec(1u64..20, 0..3), q in 1u64..6, ctx in 0u64..6,
        d in dtype(), gated in any::<bool>(), act in activation(),
    ) {
        let heads = kv_heads * group * 4;
        let m = ModelSpec {
            name: "r".into(), hidden: 64, heads, kv_heads, head_dim: 4,
            plans: LayerPlan::periodic(1, 64, moe.then_some(1)), vocab: 64,
            moe: moe.then_some(Moe { experts, top_k: 2, intermediate: 64, shared: None }),
            ffn_gated: gated, act, dtype: d, tie_embeddings: false, logit_softcap: false,
            quantized: None, notes: Vec::new(),
        };
        let batch = Batch {
            decode_kv: decode,
            prefill: vec![PrefillChunk { q_len: q, ctx, last: true }],
        };
        let par = Parallelism { tp, ep: 1 };
        let plans = plan_iteration(&m, &batch, par, Precision::uniform(d), &Routing::Uniform,
                                   &[]).unwrap();
        for (i, p) in plans.iter().enumerate() {
            let c = check_op(p, Context { model: &m, batch: &batch }, i as u64);
            prop_assert!(c.passed(), "{} {}: err {} {:?} {:?}", p.op.name, p.plan.describe(),
                         c.error, c.unsupported,
                         c.parts.iter().map(|x| &x.mismatches).collect::<Vec<_>>());
        }
    }
}

/// A 2x8x4 GEMM split by output columns into `cols`, each part charged the whole GEMM, checked.
fn column_split_gemm(d: Dtype, cols: Vec<Range<u64>>) -> dyad::kernels::OpCheck {
    let kind = OpKind::Gemm {
        m: 2,
        n: 8,
        k: 4,
        batch: 1,
    };
    let op = Op::new("g", None, kind, Precision::uniform(d));
    let (m, batch) = (tiny_model(), Batch::default());
    let cx = Context {
        model: &m,
        batch: &batch,
    };
    check_op(&split_plan(&op, Axis::Columns, cols), cx, 1)
}

#[test]
fn a_plan_that_drops_columns_fails() {
    let c = column_split_gemm(Dtype::Fp32, vec![0..3, 4..8]);
    assert!(!c.passed());
    assert!(c.unsupported.unwrap().contains("uncomputed"));
}

#[test]
fn a_part_charged_the_wrong_op_is_reported() {
    // Charging each half of a column split the whole GEMM: FLOPs and weights disagree.
    let c = column_split_gemm(Dtype::Bf16, vec![0..4, 4..8]);
    assert!(c.error <= c.tolerance);
    let mis = &c.parts[0].mismatches;
    assert!(
        mis.iter()
            .any(|s| s.starts_with("flops: counted 64, charged 128")),
        "{mis:?}"
    );
    assert!(
        mis.iter()
            .any(|s| s.starts_with("weights: counted 32, charged 64")),
        "{mis:?}"
    );
}
