//! Per-layer plans: a sliding window bounds what a layer attends and holds (Mistral-7B-v0.1),
//! counted by hand; a window off is full attention; identical layers cost alike.

use proptest::prelude::*;

use dyad::config::{load_arch, load_model};
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::model::{
    Attention, Batch, Footprint, LayerPlan, ModelSpec, OpKind, Parallelism, Precision,
    PrefillChunk, Routing, build_iteration, causal_pairs,
};
use dyad::sim::iteration::Coster;
use dyad::work::Dtype;

use crate::util::dyad_with;

fn mistral() -> ModelSpec {
    load_model("mistral-7b-v0.1".as_ref()).unwrap()
}

/// Mistral with its window taken out: every layer full attention.
fn unwindowed() -> ModelSpec {
    let m = mistral();
    ModelSpec {
        plans: m
            .plans
            .iter()
            .map(|p| LayerPlan {
                attention: Attention::Full,
                ..*p
            })
            .collect(),
        ..m
    }
}

#[test]
fn mistral_7b_v0_1_attends_4096_tokens_in_every_layer() {
    // HuggingFace mistralai/Mistral-7B-v0.1 config.json: sliding_window = 4096 (REFERENCE.md
    // §Model configs).
    let m = mistral();
    assert_eq!(m.layers(), 32);
    assert!(
        m.plans
            .iter()
            .all(|p| p.attention == Attention::Window { tokens: 4096 })
    );
    assert_eq!(m.uniform_window(), Some(4096));
    // Decode at context 16,384: each of 3 sequences reads 4,096 tokens of KV per layer.
    let g = build_iteration(&m, &Batch::decode(3, 16384), 1, bf16(), &Routing::Uniform).unwrap();
    let attn: Vec<u64> = g
        .ops()
        .filter_map(|o| match o.kind {
            OpKind::AttnDecode { kv_tokens, .. } => Some(kv_tokens),
            _ => None,
        })
        .collect();
    assert_eq!(attn, vec![3 * 4096; 32]);
}

fn bf16() -> Precision {
    Precision::uniform(Dtype::Bf16)
}

#[test]
fn a_window_holds_a_quarter_of_the_kv_at_four_times_its_length() {
    let (m, full) = (mistral(), unwindowed());
    let par = Parallelism { tp: 1, ep: 1 };
    let f = Footprint::new(&m, par, bf16());
    // K and V × 32 layers × 8 KV heads × 128 × 2 bytes, per token held.
    let per_token = 2.0 * 32.0 * 8.0 * 128.0 * 2.0;
    assert_eq!(f.kv_held(&m, [16384]).value(), 4096.0 * per_token);
    assert_eq!(f.kv_held(&full, [16384]).value(), 16384.0 * per_token);
    // Within the window the two are the same.
    assert_eq!(f.kv_held(&m, [1000, 4096]).value(), 5096.0 * per_token);
}

#[test]
fn a_window_speeds_long_decode_and_changes_nothing_within_it() {
    let sys = load_arch("h100".as_ref()).unwrap();
    let time = |m: &ModelSpec, kv| {
        let mut c = Coster::new(
            &sys,
            m,
            Parallelism { tp: 1, ep: 1 },
            bf16(),
            Timing::Kernel,
            Policy::AllXpu,
        );
        c.iteration(&Batch::decode(16, kv), &[], false)
            .unwrap()
            .time
    };
    let (m, full) = (mistral(), unwindowed());
    assert_eq!(time(&m, 4000), time(&full, 4000));
    let (w, f) = (time(&m, 16384), time(&full, 16384));
    assert!(w < f, "window {w} s, full {f} s");
    // Beyond the window the windowed decode does not depend on the context.
    assert_eq!(time(&m, 16384), time(&m, 30000));
}

fn brute_pairs(a: Attention, q: u64, ctx: u64) -> u64 {
    (1..=q).map(|i| a.keys(ctx + i)).sum()
}

proptest! {
    #[test]
    fn windowed_pairs_and_keys_read_match_a_count_by_query(
        q in 0u64..300, ctx in 0u64..300, w in 1u64..200,
    ) {
        let a = Attention::Window { tokens: w };
        prop_assert_eq!(a.pairs(q, ctx), brute_pairs(a, q, ctx));
        prop_assert_eq!(Attention::Full.pairs(q, ctx), causal_pairs(q, ctx));
        // The keys read: positions from the first query's window start to the last new token.
        if q > 0 {
            let first = (ctx + 1).saturating_sub(w);
            prop_assert_eq!(a.keys_read(q, ctx), ctx + q - first);
        }
    }
}

#[test]
fn prefill_in_a_window_attends_the_band() {
    let m = mistral();
    let b = Batch {
        decode_kv: Vec::new(),
        prefill: vec![PrefillChunk {
            q_len: 2048,
            ctx: 6000,
            last: true,
        }],
    };
    let g = build_iteration(&m, &b, 1, bf16(), &Routing::Uniform).unwrap();
    let (attended, kv) = g
        .ops()
        .find_map(|o| match o.kind {
            OpKind::AttnPrefill {
                attended,
                kv_tokens,
                ..
            } => Some((attended, kv_tokens)),
            _ => None,
        })
        .unwrap();
    // Every query is past the window: 2048 queries × 4096 keys; keys read 4095 + 2048.
    assert_eq!(attended, 2048 * 4096);
    assert_eq!(kv, 4095 + 2048);
}

#[test]
fn a_window_turned_off_or_null_is_full_attention() {
    let base = std::fs::read_to_string(crate::util::root("workloads/models/mistral-7b-v0.1.json"))
        .unwrap();
    for (from, to) in [
        ("\"sliding_window\": 4096", "\"sliding_window\": null"),
        (
            "\"sliding_window\": 4096",
            "\"sliding_window\": 4096, \"use_sliding_window\": false",
        ),
    ] {
        let text = base.replace(from, to);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, &text).unwrap();
        let m = load_model(&p).unwrap();
        assert!(
            m.plans.iter().all(|p| p.attention == Attention::Full),
            "{to}"
        );
    }
    let r = dyad_with(
        &[(
            "m.json",
            &base.replace("\"sliding_window\": 4096", "\"sliding_window\": 0"),
        )],
        &["run", "--model", "m.json"],
    );
    crate::util::expect_input_error(&r, &["m.json", "sliding_window"]);
}

fn qwen3_moe() -> ModelSpec {
    load_model("qwen3-30b-a3b".as_ref()).unwrap()
}

/// The Qwen3-30B-A3B config with `edit` applied to its text, loaded.
fn qwen3_edited(edit: impl Fn(String) -> String) -> Result<ModelSpec, String> {
    let text =
        std::fs::read_to_string(crate::util::root("workloads/models/qwen3-30b-a3b.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.json");
    std::fs::write(&p, edit(text)).unwrap();
    load_model(&p).map_err(|e| format!("{:?}", miette::Report::new(e)))
}

#[test]
fn qwen3_30b_a3b_has_fine_grained_experts_and_qk_norm_in_every_layer() {
    let m = qwen3_moe();
    let moe = m.moe.unwrap();
    assert_eq!((moe.experts, moe.top_k, moe.intermediate), (128, 8, 768));
    assert!((0..48).all(|l| m.is_moe_layer(l)) && m.plans.iter().all(|p| p.qk_norm));
    // Qwen/Qwen3-30B-A3B model card: 30.5B parameters, 3.3B activated. Counting the embedding
    // and the LM head, the active count is 3.35B: the card's figure is it cut to one decimal.
    let (all, active) = (m.params() as f64, m.active_params() as f64);
    assert!((all / 30.5e9 - 1.0).abs() < 0.01, "{all}");
    assert!((3.3e9..3.4e9).contains(&active), "{active}");
    // A decode step of 4 tokens over TP 4: 4 × 8 assignments over experts of 768 / 4, and a
    // QK-norm over 4 tokens × (32 + 4) / 4 heads × 128 per layer.
    let g = build_iteration(&m, &Batch::decode(4, 100), 4, bf16(), &Routing::Uniform).unwrap();
    let layer0: Vec<_> = g.ops().filter(|o| o.layer == Some(0)).collect();
    let assigned: u64 = layer0
        .iter()
        .filter_map(|o| match o.kind {
            OpKind::ExpertFfn { tokens, inner, .. } => {
                assert_eq!(inner, 192);
                Some(tokens)
            }
            _ => None,
        })
        .sum();
    assert_eq!(assigned, 4 * 8);
    let norm = layer0.iter().find(|o| o.name == "qk_norm").unwrap();
    assert!(
        matches!(norm.kind, OpKind::Elementwise { elements, .. } if elements == 4 * 9 * 128),
        "{:?}",
        norm.kind
    );
}

#[test]
fn a_shared_expert_runs_on_every_token_and_adds_its_weights() {
    let with = qwen3_edited(|t| {
        t.replace("\"qwen3_moe\"", "\"qwen2_moe\"").replace(
            "\"head_dim\": 128,",
            "\"head_dim\": 128, \"shared_expert_intermediate_size\": 5632,",
        )
    })
    .unwrap();
    let without = qwen3_moe();
    let shared = with.moe.unwrap().shared.unwrap();
    assert_eq!((shared.intermediate, shared.gated), (5632, true));
    // Gate, up and down of 2048 × 5632 and the 2048 → 1 gate, in each of 48 layers; Qwen2-MoE
    // has no QK-norm (2 × 128 per layer fewer).
    let per_layer = 3 * 2048 * 5632 + 2048 - 2 * 128;
    assert_eq!(with.params() - without.params(), 48 * per_layer);
    let g = build_iteration(&with, &Batch::decode(6, 100), 1, bf16(), &Routing::Uniform).unwrap();
    let s: Vec<_> = g
        .ops()
        .filter(|o| o.layer == Some(3) && o.name.starts_with("shared_"))
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(
        s,
        ["shared_expert", "shared_gate", "shared_scale", "shared_add"]
    );
    let tokens = g
        .ops()
        .find_map(|o| match o.kind {
            OpKind::ExpertFfn { tokens, .. } if o.name == "shared_expert" => Some(tokens),
            _ => None,
        })
        .unwrap();
    assert_eq!(tokens, 6);
}

#[test]
fn qwen_layer_patterns_place_dense_and_moe_layers() {
    let m = qwen3_edited(|t| {
        t.replace("\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2")
            .replace("\"mlp_only_layers\": []", "\"mlp_only_layers\": [1, 4]")
    })
    .unwrap();
    // MoE where (l + 1) is even and l is not listed: 3, 5, 7, ...; dense layers of 6144.
    let moe: Vec<u32> = (0..8).filter(|&l| m.is_moe_layer(l)).collect();
    assert_eq!(moe, [3, 5, 7]);
    assert_eq!(m.ffn_inner(0), 6144);
    assert_eq!(m.ffn_inner(3), 768);
}

#[test]
fn every_unmodeled_field_is_named_at_once() {
    let e = qwen3_edited(|t| {
        t.replace(
            "\"head_dim\": 128,",
            "\"head_dim\": 128, \"kv_lora_rank\": 512, \"first_k_dense_replace\": 3,",
        )
    })
    .unwrap_err();
    assert!(
        e.contains("kv_lora_rank") && e.contains("first_k_dense_replace"),
        "{e}"
    );
}
