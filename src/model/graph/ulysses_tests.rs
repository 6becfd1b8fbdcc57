use super::*;
use crate::model::spec::tests::mixtral;
use crate::model::{Ffn, LayerPlan};
use crate::work::Dtype;

/// A multi-head (KV heads = heads) dense model of Llama-2-7B's shape (Meta's config.json:
/// hidden 4096, 32 heads of 128, FFN 11008, vocabulary 32000), 4 layers to keep tests quick.
fn mha() -> ModelSpec {
    ModelSpec {
        name: "mha".into(),
        kv_heads: 32,
        plans: LayerPlan::periodic(4, 11008, None),
        moe: None,
        ..mixtral()
    }
}

fn bf16() -> Precision {
    Precision::uniform(Dtype::Bf16)
}

/// All-to-all bytes each device contributes in layer `l`.
fn a2a_bytes(g: &IterationGraph, l: u32) -> u64 {
    g.ops()
        .filter(|o| o.layer == Some(l))
        .filter_map(|o| match o.kind {
            OpKind::AllToAll { bytes, .. } => Some(bytes),
            _ => None,
        })
        .sum()
}

#[test]
fn all_to_all_bytes_per_layer_are_four_n_h_over_p() {
    let m = mha();
    for (n, sp) in [(32768, 2), (65536, 4), (131072, 8), (4096, 4)] {
        let g =
            build_iteration_sp(&m, &Batch::prefill(1, n), sp, bf16(), &Routing::Uniform).unwrap();
        // 4·N·h/P elements of 2 bytes (bf16), per layer.
        let want = 4 * n * m.hidden / sp * 2;
        for l in 0..4 {
            assert_eq!(a2a_bytes(&g, l), want, "N {n} P {sp} layer {l}");
        }
    }
}

#[test]
fn all_to_all_bytes_stay_constant_when_tokens_per_device_are_fixed() {
    let m = mha();
    let at = |n, sp| {
        let g =
            build_iteration_sp(&m, &Batch::prefill(1, n), sp, bf16(), &Routing::Uniform).unwrap();
        a2a_bytes(&g, 0)
    };
    assert_eq!(at(16384, 2), at(32768, 4));
    assert_eq!(at(32768, 4), at(65536, 8));
    assert_ne!(at(32768, 2), at(32768, 4));
}

#[test]
fn flops_over_the_devices_equal_the_unsplit_prefill() {
    // GQA (Mixtral's 8 KV heads) and MoE too: every op but the LM head runs on each of the P
    // devices; the LM head (the prompts' last tokens) on one.
    for m in [mha(), mixtral()] {
        let batch = Batch::prefill(2, 8192);
        let flops = |g: &IterationGraph, head: bool| -> f64 {
            g.ops()
                .filter(|o| (o.layer.is_none() && o.name != "embedding") == head)
                .map(|o| o.work().flops.value())
                .sum()
        };
        let one = build_iteration(&m, &batch, 1, bf16(), &Routing::Uniform).unwrap();
        let whole = flops(&one, false) + flops(&one, true);
        for sp in [2, 4, 8] {
            let g = build_iteration_sp(&m, &batch, sp, bf16(), &Routing::Uniform).unwrap();
            let total = sp as f64 * flops(&g, false) + flops(&g, true);
            assert!((total / whole - 1.0).abs() < 1e-12, "{} sp {sp}", m.name);
        }
    }
}

#[test]
fn one_device_is_the_plain_iteration() {
    let m = mixtral();
    let batch = Batch {
        decode_kv: vec![100, 2000, 37],
        prefill: Batch::prefill(2, 513).prefill,
    };
    let a = build_iteration(&m, &batch, 1, bf16(), &Routing::Uniform).unwrap();
    let b = build_iteration_sp(&m, &batch, 1, bf16(), &Routing::Uniform).unwrap();
    let ops = |g: &IterationGraph| g.ops().cloned().collect::<Vec<_>>();
    assert_eq!(ops(&a), ops(&b));
    assert_eq!((a.tokens, a.produced), (b.tokens, b.produced));
}

#[test]
fn a_degree_the_kv_heads_do_not_take_is_an_error() {
    // Mixtral has 8 KV heads: 16 devices would need replicated KV heads, which Ulysses here does
    // not model; 0 is no degree.
    let m = mixtral();
    for sp in [0, 3, 16] {
        let r = build_iteration_sp(&m, &Batch::prefill(1, 4096), sp, bf16(), &Routing::Uniform);
        assert!(matches!(r, Err(ModelError::Sp(..))), "sp {sp}");
    }
    let dense = ModelSpec {
        plans: vec![
            LayerPlan {
                ffn: Ffn::Dense {
                    intermediate: 14336
                },
                ..m.plans[0]
            };
            2
        ],
        ..m
    };
    assert!(
        build_iteration_sp(
            &dense,
            &Batch::prefill(1, 4096),
            8,
            bf16(),
            &Routing::Uniform
        )
        .is_ok()
    );
}
