//! Partitioned execution over random shapes and random splits: the split answer equals the
//! unsplit one within the element type's tolerance, FLOPs are conserved, and every op of random
//! models' iterations counts exactly the work the cost model charges.

use std::ops::Range;

use dyad::hw::Unit as HwUnit;
use dyad::kernels::attention::{
    AttnInput, AttnPart, Heads, Seq, attend, attend_under, attend_window,
};
use dyad::kernels::exec::{Context, ring_allreduce};
use dyad::kernels::gemm::sgemm;
use dyad::kernels::mla::{
    MlaAbsorbed, MlaExpanded, MlaShape, key_span, mla_absorbed, mla_expanded,
};
use dyad::kernels::moe::{Expert, MoeLayer, expert_ffn, grouped_experts, moe_layer, route};
use dyad::kernels::{Count, Rng, check_op, normalized_error, to_elems, to_f32s, tolerance};
use dyad::map::fuse_expert_launches;
use dyad::map::plan::{Axis, OpPlan, Part, PartitionPlan, Unit, plan_iteration};
use dyad::model::{
    Activation, Attention, Batch, LayerPlan, Mla, ModelSpec, Moe, Op, OpKind, Parallelism,
    Precision, PrefillChunk, Routing, SharedExpert, build_iteration, causal_pairs,
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
        window in prop::option::of(1u64..8), mla in prop::option::of(any::<bool>()),
        shared in prop::option::of(any::<bool>()),
    ) {
        let heads = kv_heads * group * 4;
        let mut plans = LayerPlan::periodic(1, 64, moe.then_some(1));
        if let Some(w) = window {
            plans[0].attention = Attention::Window { tokens: w };
        }
        // Latent attention, with or without the query's low-rank projection.
        plans[0].mla = mla.map(|q_lora| Mla {
            q_lora: q_lora.then_some(12), latent: 8, nope: 4, rope: 2, v: 6,
        });
        let shared = shared.map(|sigmoid_gate| SharedExpert { intermediate: 128, sigmoid_gate });
        let m = ModelSpec {
            name: "r".into(), hidden: 64, heads, kv_heads, head_dim: 4, plans, vocab: 64,
            moe: moe.then_some(Moe { experts, top_k: 2, intermediate: 64, shared }),
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

/// Random f32 values (a test's inputs, not counted).
fn randv(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.vec(n, 1.0)
}

#[test]
fn mla_expanded_and_absorbed_give_the_same_output() {
    // Three heads; latent 8, nope 4, rope 2, v 5: one latent (plus the shared RoPE key) per
    // token, up-projected per head by W_UK [latent, heads·nope] and W_UV [latent, heads·v].
    let sh = MlaShape {
        heads: 3,
        latent: 8,
        nope: 4,
        rope: 2,
        v: 5,
    };
    let (h, l, n, r, v) = (sh.heads, sh.latent, sh.nope, sh.rope, sh.v);
    let seqs = vec![
        Seq { ctx: 5, q_len: 3 },
        Seq { ctx: 0, q_len: 4 },
        Seq { ctx: 6, q_len: 1 },
    ];
    for window in [None, Some(3)] {
        let mut rng = Rng::new(11);
        let latents: Vec<Vec<f32>> = seqs
            .iter()
            .map(|s| randv(&mut rng, (s.ctx + s.q_len) * (l + r)))
            .collect();
        let (w_uk, w_uv) = (randv(&mut rng, l * h * n), randv(&mut rng, l * h * v));
        let tq: usize = seqs.iter().map(|s| s.q_len).sum();
        let (q_nope, q_rope) = (randv(&mut rng, tq * h * n), randv(&mut rng, tq * h * r));
        let new: Vec<f32> = seqs
            .iter()
            .zip(&latents)
            .flat_map(|(s, c)| c[s.ctx * (l + r)..].to_vec())
            .collect();
        // Expanded: every key read up-projected to per-head keys and values.
        let (mut k_nope, mut vals, mut k_rope) = (Vec::new(), Vec::new(), Vec::new());
        for (s, c) in seqs.iter().zip(&latents) {
            for p in key_span(*s, window) {
                let row = &c[p * (l + r)..(p + 1) * (l + r)];
                k_nope.extend(sgemm(1, l, h * n, &row[..l], &w_uk, &mut 0));
                vals.extend(sgemm(1, l, h * v, &row[..l], &w_uv, &mut 0));
                k_rope.extend_from_slice(&row[l..]);
            }
        }
        let q: Vec<f32> = (0..tq * h)
            .flat_map(|i| [&q_nope[i * n..(i + 1) * n], &q_rope[i * r..(i + 1) * r]].concat())
            .collect();
        let x = MlaExpanded {
            shape: sh,
            seqs: seqs.clone(),
            window,
            q,
            k_nope,
            v: vals,
            k_rope,
            new: new.clone(),
        };
        let mut ce = Count::default();
        let expanded = mla_expanded(&x, 0..h, &mut ce);
        // Absorbed: W_UK folded into each head's query, the weighted latents through W_UV.
        let mut q_lat = vec![0f32; tq * h * l];
        for i in 0..tq * h {
            let hh = i % h;
            for a in 0..l {
                q_lat[i * l + a] = (0..n)
                    .map(|j| w_uk[a * h * n + hh * n + j] * q_nope[i * n + j])
                    .sum();
            }
        }
        let cache = seqs
            .iter()
            .zip(&latents)
            .map(|(s, c)| c[..s.ctx * (l + r)].to_vec())
            .collect();
        let y = MlaAbsorbed {
            shape: sh,
            seqs: seqs.clone(),
            window,
            q_lat,
            q_rope,
            cache,
            new,
        };
        let mut ca = Count::default();
        let o_lat = mla_absorbed(&y, 0..h, &mut ca);
        let mut absorbed = Vec::new();
        for i in 0..tq * h {
            let hh = i % h;
            for j in 0..v {
                absorbed.push(
                    (0..l)
                        .map(|a| o_lat[i * l + a] * w_uv[a * h * v + hh * v + j])
                        .sum(),
                );
            }
        }
        let err = normalized_error(&absorbed, &expanded);
        assert!(err < 1e-5, "window {window:?}: {err}");
        // Pairs: the causal triangle (5+1..5+3, 1..4, 7), or in a 3-token window min(·, 3).
        let pairs: u64 = match window {
            None => (6 + 7 + 8) + (1 + 2 + 3 + 4) + 7,
            Some(_) => 3 * 3 + (1 + 2 + 3 + 3) + 3,
        };
        let hh = h as u64;
        assert_eq!(ce.flops, 2 * hh * pairs * (n + r + v) as u64);
        assert_eq!(ca.flops, 2 * hh * pairs * (l + r + l) as u64);
        // Absorbed reads the cache once for every head: (latent + rope) per key read.
        let keys: usize = seqs.iter().map(|&s| key_span(s, window).len()).sum();
        assert_eq!(ca.kv_read, (keys * (l + r) * 4) as u64);
    }
}

#[test]
fn sliding_window_attention_equals_full_attention_under_a_band_mask() {
    let shape = Heads {
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
    };
    let seqs = vec![
        Seq { ctx: 7, q_len: 4 },
        Seq { ctx: 0, q_len: 6 },
        Seq { ctx: 9, q_len: 1 },
    ];
    let mut rng = Rng::new(5);
    let tq: usize = seqs.iter().map(|s| s.q_len).sum();
    let (g, d) = (2, 4);
    let x = AttnInput::<f32> {
        q: randv(&mut rng, tq * 4 * d),
        k_new: randv(&mut rng, tq * g * d),
        v_new: randv(&mut rng, tq * g * d),
        k_cache: seqs
            .iter()
            .map(|s| randv(&mut rng, g * s.ctx * d))
            .collect(),
        v_cache: seqs
            .iter()
            .map(|s| randv(&mut rng, g * s.ctx * d))
            .collect(),
        shape,
        seqs,
    };
    let part = AttnPart {
        heads: 0..4,
        keys: None,
    };
    let w = 3;
    let (mut cw, mut cb) = (Count::default(), Count::default());
    let windowed = attend_window(&x, &part, Some(w), &mut cw);
    let band = attend_under(&x, &part, &|q, k| k <= q && q - k < w, &mut cb);
    assert!(normalized_error(&windowed.out, &band.out) < 1e-6);
    // The window drops keys: plain causal attention differs.
    let full = attend(&x, &part, &mut Count::default());
    assert!(normalized_error(&windowed.out, &full.out) > 1e-2);
    // Keys read: min(ctx + q, q + w − 1) per sequence (6, 6 and 3) against every key (11, 6, 10),
    // K and V of 2 KV heads of 4 f32 each; the same FLOPs (the pairs in the band).
    let per_key = (2 * g * d * 4) as u64;
    assert_eq!(cw.kv_read, 15 * per_key);
    assert_eq!(cb.kv_read, 27 * per_key);
    let pairs = (3 * 4) + (1 + 2 + 3 * 4) + 3;
    assert_eq!(cw.flops, (4 * 4 * d * pairs) as u64);
    assert_eq!(cw.flops, cb.flops);
}

#[test]
fn a_fused_moe_launch_computes_and_counts_what_its_experts_do_one_by_one() {
    let (h, inner, experts, top_k, tokens) = (16, 24, 6, 2, 9);
    let mut rng = Rng::new(3);
    let logits = randv(&mut rng, tokens * experts);
    let routing = route(&logits, experts, top_k, &mut Count::default());
    let m = ModelSpec {
        plans: LayerPlan::periodic(1, inner as u64, Some(1)),
        moe: Some(Moe {
            experts: experts as u64,
            top_k: 2,
            intermediate: inner as u64,
            shared: None,
        }),
        ffn_gated: true,
        dtype: Dtype::Fp32,
        ..tiny_model()
    };
    let counts: Vec<u64> = routing.counts();
    let g = build_iteration(
        &m,
        &Batch::decode(tokens as u64, 8),
        1,
        Precision::uniform(Dtype::Fp32),
        &Routing::PerLayer(vec![counts.clone()]),
    )
    .unwrap();
    let ops: Vec<&Op> = g.ops().collect();
    // Experts 0 and 3 on the xPU, the others on PIM: two launches, one per unit.
    let units: Vec<HwUnit> = ops
        .iter()
        .map(|o| match o.kind {
            OpKind::ExpertFfn { expert, .. } if expert % 3 != 0 => HwUnit::Pim,
            _ => HwUnit::Xpu,
        })
        .collect();
    let mut inside = Vec::new();
    fuse_expert_launches(&ops, &units, |i| inside.push(i));
    let expert_ops: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].kind, OpKind::ExpertFfn { .. }))
        .collect();
    let launches = expert_ops.iter().filter(|i| !inside.contains(i)).count();
    let on_xpu = counts
        .iter()
        .enumerate()
        .filter(|&(e, &n)| n > 0 && e % 3 == 0)
        .count();
    assert_eq!(launches, usize::from(on_xpu > 0) + 1);
    let x = randv(&mut rng, tokens * h);
    let w: Vec<Expert<f32>> = (0..experts)
        .map(|_| Expert {
            gate: rng.vec(h * inner, 0.3),
            up: rng.vec(h * inner, 0.3),
            down: rng.vec(inner * h, 0.3),
        })
        .collect();
    for unit in [HwUnit::Xpu, HwUnit::Pim] {
        let group_ops: Vec<usize> = expert_ops
            .iter()
            .copied()
            .filter(|&i| units[i] == unit)
            .collect();
        let group: Vec<usize> = group_ops
            .iter()
            .map(|&i| match ops[i].kind {
                OpKind::ExpertFfn { expert, .. } => expert as usize,
                _ => 0,
            })
            .collect();
        let mut fused = Count::default();
        let outs = grouped_experts(
            &x,
            &routing,
            &w,
            &group,
            (h, inner, Activation::Silu),
            &mut fused,
        );
        let all: Vec<usize> = (0..inner).collect();
        let mut one_by_one = Count::default();
        for (&e, out) in group.iter().zip(&outs) {
            let want = expert_ffn(
                &x,
                &routing.tokens_of(e),
                &w[e],
                (h, inner),
                &all,
                &mut one_by_one,
            );
            assert!(normalized_error(out, &want) < 1e-6, "expert {e}");
        }
        assert_eq!(fused, one_by_one);
        // And what the model charges the group's expert ops, summed.
        let charged = |f: fn(&dyad::work::Work) -> f64| -> f64 {
            group_ops.iter().map(|&i| f(&ops[i].work())).sum()
        };
        assert_eq!(fused.flops as f64, charged(|w| w.flops.value()));
        assert_eq!(fused.weights as f64, charged(|w| w.bytes.weights.value()));
        assert_eq!(fused.act_in as f64, charged(|w| w.bytes.act_in.value()));
        assert_eq!(fused.act_out as f64, charged(|w| w.bytes.act_out.value()));
    }
}
