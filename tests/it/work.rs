//! Closed-form FLOP and byte counts of the model graph against hand counts.

use dyad::config::load_model;
use dyad::model::{Batch, IterationGraph, ModelSpec, OpKind, Precision, Routing, build_iteration};
use dyad::work::Dtype;

fn model(name: &str) -> ModelSpec {
    let path = format!(
        "{}/workloads/models/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    load_model(path.as_ref()).expect("shipped model loads")
}

fn graph(m: &ModelSpec, batch: &Batch, tp: u64) -> IterationGraph {
    build_iteration(
        m,
        batch,
        tp,
        Precision::uniform(Dtype::Bf16),
        &Routing::Uniform,
    )
    .unwrap()
}

fn sum(g: &IterationGraph, name: &str, f: impl Fn(&dyad::work::Work) -> f64) -> f64 {
    g.ops()
        .filter(|o| o.name == name)
        .map(|o| f(&o.work()))
        .sum()
}

#[test]
fn llama3_70b_decode_projection_flops_are_2mnk() {
    let m = model("llama-3-70b");
    let g = graph(&m, &Batch::decode(8, 1024), 1);
    let qkv = g.ops().find(|o| o.name == "qkv_proj").unwrap().work();
    // q: 64 heads × 128, k and v: 8 heads × 128 each → n = 10240; k = hidden 8192; m = 8 tokens.
    assert_eq!(qkv.flops.value(), 2.0 * 8.0 * 10240.0 * 8192.0);
    assert_eq!(qkv.bytes.weights.value(), 10240.0 * 8192.0 * 2.0);
    let down = g.ops().find(|o| o.name == "down_proj").unwrap().work();
    assert_eq!(down.flops.value(), 2.0 * 8.0 * 8192.0 * 28672.0);
}

#[test]
fn llama3_70b_kv_bytes_per_decode_step() {
    let m = model("llama-3-70b");
    let (b, kv) = (16.0, 2048.0);
    let g = graph(&m, &Batch::decode(16, 2048), 1);
    // layers × KV heads × head dim × KV length × element size × 2 (K and V), per sequence.
    let want = 80.0 * 8.0 * 128.0 * kv * 2.0 * 2.0 * b;
    assert_eq!(sum(&g, "attn_decode", |w| w.bytes.kv_read.value()), want);
    // One new token's K and V per sequence and layer.
    assert_eq!(
        sum(&g, "attn_decode", |w| w.bytes.kv_write.value()),
        want / kv
    );
}

#[test]
fn decode_attention_op_b_is_the_group_size() {
    // 4·h·d·L FLOPs over 2·g·d·L·2 bytes = h/g for bf16, up to the query and output traffic.
    let m = model("mixtral-8x7b");
    let g = graph(&m, &Batch::decode(64, 4096), 1);
    let w = g.ops().find(|o| o.name == "attn_decode").unwrap().work();
    let group = (m.heads / m.kv_heads) as f64;
    assert!((w.op_b() / group - 1.0).abs() < 0.01, "{}", w.op_b());
}

#[test]
fn dense_gemm_flops_are_twice_tokens_times_parameters() {
    let m = model("llama-3-8b");
    let t = 32;
    let g = graph(&m, &Batch::decode(t, 512), 1);
    let gemm: f64 = g
        .ops()
        .filter(|o| matches!(o.kind, OpKind::Gemm { .. }))
        .map(|o| o.work().flops.value())
        .sum();
    // Every weight except the norms and the embedding table does one multiply-add per token.
    let weights = m.params() - m.vocab * m.hidden - u64::from(m.layers()) * 2 * m.hidden - m.hidden;
    assert_eq!(gemm, 2.0 * t as f64 * weights as f64);
}

#[test]
fn mixtral_routes_tokens_times_top_k_in_every_layer() {
    let m = model("mixtral-8x7b");
    for t in [1, 3, 64, 1000] {
        let g = graph(&m, &Batch::decode(t, 128), 1);
        for l in 0..m.layers() {
            let routed: u64 = g
                .ops()
                .filter(|o| o.layer == Some(l))
                .filter_map(|o| match o.kind {
                    OpKind::ExpertFfn { tokens, .. } => Some(tokens),
                    _ => None,
                })
                .sum();
            assert_eq!(routed, t * 2, "layer {l}, {t} tokens");
        }
    }
}

#[test]
fn mixtral_expert_work_follows_its_token_count() {
    let m = model("mixtral-8x7b");
    let g = graph(&m, &Batch::decode(64, 1024), 1);
    for o in g.ops().filter(|o| o.layer == Some(0)) {
        if let OpKind::ExpertFfn { tokens, .. } = o.kind {
            let w = o.work();
            // Gate, up and down: 3 GEMMs of 2·t·4096·14336 FLOPs over 3·4096·14336 bf16 weights,
            // plus silu(gate)·up: 5 FLOPs on each of t·14336 intermediate elements.
            let t = tokens as f64;
            assert_eq!(
                w.flops.value(),
                6.0 * t * 4096.0 * 14336.0 + 5.0 * t * 14336.0
            );
            assert_eq!(w.bytes.weights.value(), 3.0 * 4096.0 * 14336.0 * 2.0);
            // Op/B tracks the token count (≈ t when weights dominate the traffic).
            assert!((w.op_b() / tokens as f64 - 1.0).abs() < 0.01);
        }
    }
}

#[test]
fn causal_prefill_attention_flops() {
    let m = model("llama-3-8b");
    let (b, l) = (2u64, 512u64);
    let g = graph(&m, &Batch::prefill(b, l), 1);
    let w = g.ops().find(|o| o.name == "attn_prefill").unwrap().work();
    // 4·d FLOPs per (query head, key) pair; the causal mask keeps L(L+1)/2 pairs per sequence.
    let want = 4.0 * 32.0 * 128.0 * (b * l * (l + 1) / 2) as f64;
    assert_eq!(w.flops.value(), want);
}

#[test]
fn tensor_parallel_split_conserves_flops() {
    let m = model("mixtral-8x7b");
    let batch = Batch::decode(32, 1024);
    let split = |tp: u64| -> f64 {
        graph(&m, &batch, tp)
            .ops()
            .filter(|o| {
                matches!(o.kind, OpKind::ExpertFfn { .. } | OpKind::AttnDecode { .. })
                    || ["qkv_proj", "o_proj", "lm_head"].contains(&o.name.as_ref())
            })
            .map(|o| o.work().flops.value())
            .sum::<f64>()
            * tp as f64
    };
    let one = split(1);
    for tp in [2, 4, 8] {
        assert!((split(tp) / one - 1.0).abs() < 1e-12, "tp {tp}");
    }
}

#[test]
fn allreduces_appear_only_under_tensor_parallelism() {
    let m = model("llama-3-8b");
    let batch = Batch::decode(4, 64);
    let count = |tp| {
        graph(&m, &batch, tp)
            .ops()
            .filter(|o| matches!(o.kind, OpKind::AllReduce { .. }))
            .count()
    };
    assert_eq!(count(1), 0);
    assert_eq!(count(2), 2 * 32);
}

#[test]
fn expert_parallelism_places_whole_experts_and_sends_tokens_both_ways() {
    use dyad::model::{Parallelism, build_iteration_with};
    let m = model("mixtral-8x7b");
    let par = Parallelism { tp: 1, ep: 4 };
    // Device 0's share: 16 sequences; the group routes 4 × 16 tokens.
    let g = build_iteration_with(
        &m,
        &Batch::decode(16, 256),
        par,
        Precision::uniform(Dtype::Bf16),
        &Routing::Uniform,
    )
    .unwrap();
    let layer0: Vec<_> = g.ops().filter(|o| o.layer == Some(0)).collect();
    let mut routed = 0;
    for o in &layer0 {
        if let OpKind::ExpertFfn {
            expert,
            tokens,
            inner,
            ..
        } = o.kind
        {
            assert_eq!(u64::from(o.device), expert % 4);
            assert_eq!(inner, 14336, "whole experts, not slices");
            routed += tokens;
        }
    }
    assert_eq!(routed, 4 * 16 * 2);
    let a2a: Vec<_> = layer0
        .iter()
        .filter(|o| matches!(o.kind, OpKind::AllToAll { .. }))
        .collect();
    assert_eq!(a2a.len(), 2, "dispatch and combine");
    // Each of device 0's 16 tokens goes to top-2 experts: 16 × 2 × 4096 bf16 values.
    assert_eq!(
        a2a[0].kind,
        OpKind::AllToAll {
            bytes: 16 * 2 * 4096 * 2,
            devices: 4
        }
    );
    assert!(
        !layer0
            .iter()
            .any(|o| matches!(o.kind, OpKind::AllReduce { .. }))
    );
}

#[test]
fn two_matrix_ffns_and_alternating_moe_layers_count_their_weights() {
    // OPT-66B: every weight but the norms and the (tied) embedding does one multiply-add per
    // token, with two FFN matrices per layer.
    let opt = load_model("opt-66b".as_ref()).unwrap();
    let t = 8;
    let g = graph(&opt, &Batch::decode(t, 128), 1);
    let gemm: f64 = g
        .ops()
        .filter(|o| matches!(o.kind, OpKind::Gemm { .. }))
        .map(|o| o.work().flops.value())
        .sum();
    let norms = u64::from(opt.layers()) * 2 * opt.hidden + opt.hidden;
    // The tied LM head still multiplies by the embedding matrix.
    let weights = opt.params() - norms;
    assert_eq!(gemm, 2.0 * t as f64 * weights as f64);
    // GLaM: experts only in every other layer, two matrices each.
    let glam = load_model("glam".as_ref()).unwrap();
    let g = graph(&glam, &Batch::decode(16, 128), 1);
    for l in 0..4 {
        let experts: Vec<_> = g
            .ops()
            .filter(|o| o.layer == Some(l) && matches!(o.kind, OpKind::ExpertFfn { .. }))
            .collect();
        assert_eq!(!experts.is_empty(), l % 2 == 1, "layer {l}");
        for e in experts {
            if let OpKind::ExpertFfn { tokens, .. } = e.kind {
                assert_eq!(e.work().bytes.weights.value(), 2.0 * 4096.0 * 16384.0 * 2.0);
                // Two GEMMs and GELU (tanh form, 9 FLOPs) per inner element.
                assert_eq!(
                    e.work().flops.value(),
                    tokens as f64 * (4.0 * 4096.0 * 16384.0 + 9.0 * 16384.0)
                );
            }
        }
    }
}
