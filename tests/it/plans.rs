//! Per-layer plans: a sliding window bounds what a layer attends and holds (Mistral-7B-v0.1),
//! counted by hand; a window off is full attention; identical layers cost alike. `families`:
//! the shipped configs of today's families.

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

mod families;

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

/// (query, key) pairs attended and keys read by layer 0's prefill attention of one chunk of
/// `q_len` new tokens after `ctx` cached ones.
fn prefill_attention(m: &ModelSpec, q_len: u64, ctx: u64) -> (u64, u64) {
    let b = Batch {
        decode_kv: Vec::new(),
        prefill: vec![PrefillChunk {
            q_len,
            ctx,
            last: true,
        }],
    };
    let g = build_iteration(m, &b, 1, bf16(), &Routing::Uniform).unwrap();
    g.ops()
        .find_map(|o| match o.kind {
            OpKind::AttnPrefill {
                attended,
                kv_tokens,
                ..
            } if o.layer == Some(0) => Some((attended, kv_tokens)),
            _ => None,
        })
        .unwrap()
}

#[test]
fn prefill_in_a_window_attends_the_band() {
    let m = mistral();
    let (attended, kv) = prefill_attention(&m, 2048, 6000);
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
    assert_eq!((shared.intermediate, shared.sigmoid_gate), (5632, true));
    // Gate, up and down of 2048 × 5632 and the 2048 → 1 gate, in each of 48 layers; Qwen2-MoE
    // has no QK-norm (2 × 128 per layer fewer).
    let per_layer = 3 * 2048 * 5632 + 2048 - 2 * 128;
    assert_eq!(with.params() - without.params(), 48 * per_layer);
    let g = build_iteration(&with, &Batch::decode(6, 100), 1, bf16(), &Routing::Uniform).unwrap();
    let s: Vec<_> = g
        .ops()
        .filter(|o| o.layer == Some(3) && o.name.starts_with("shared_"))
        .map(|o| o.name.as_ref())
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

fn deepseek_lite() -> ModelSpec {
    load_model("deepseek-v2-lite".as_ref()).unwrap()
}

#[test]
fn deepseek_v2_lite_caches_a_latent_of_576_elements_that_tp_does_not_split() {
    let m = deepseek_lite();
    let a = m.plans[0].mla.unwrap();
    // kv_lora_rank 512 + qk_rope_head_dim 64 (REFERENCE.md §Model configs).
    assert_eq!(a.cache_elems(), 512 + 64);
    for tp in [1, 2, 4, 8] {
        assert_eq!(m.kv_bytes_layer(5, Dtype::Bf16, tp), 576.0 * 2.0, "tp {tp}");
    }
    // Layer 0 dense (10944); layers 1-26 MoE: 64 routed experts of 1408, 6 per token, and two
    // shared experts acting as one FFN of 2 × 1408.
    assert_eq!(m.ffn_inner(0), 10944);
    assert!(!m.is_moe_layer(0) && (1..27).all(|l| m.is_moe_layer(l)));
    let moe = m.moe.unwrap();
    assert_eq!((moe.experts, moe.top_k, moe.intermediate), (64, 6, 1408));
    assert_eq!(moe.shared.unwrap().intermediate, 2816);
    // deepseek-ai/DeepSeek-V2-Lite model card: 15.7B parameters, 2.4B activated. Counting the
    // LM head and not the input embedding (a lookup, not a product): 2.45B, 2.1% above the
    // card's figure, within a 3% band that DeepSeek-V3 (36.6B against 37B) also meets.
    let (all, embedding) = (m.params() as f64, (m.vocab * m.hidden) as f64);
    let active = m.active_params() as f64 - embedding;
    assert!((all / 15.7e9 - 1.0).abs() < 0.01, "{all}");
    assert!((active / 2.4e9 - 1.0).abs() < 0.03, "{active}");
}

#[test]
fn absorbed_decode_attention_costs_its_closed_form_and_has_a_high_op_per_byte() {
    let m = deepseek_lite();
    let (seqs, ctx) = (1, 5000);
    let g = build_iteration(&m, &Batch::decode(seqs, ctx), 1, bf16(), &Routing::Uniform).unwrap();
    let attn = g
        .ops()
        .find(|o| o.layer == Some(2) && o.name == "attn_decode")
        .unwrap();
    let w = attn.work();
    // 16 heads, each query against 5000 cached latents: a dot over 512 + 64, a weighted sum
    // over 512, 2 FLOPs per multiply-add.
    assert_eq!(w.flops.value(), 2.0 * 16.0 * 5000.0 * (576.0 + 512.0));
    assert_eq!(w.bytes.kv_read.value(), 5000.0 * 576.0 * 2.0);
    // GQA decode attention of Llama-3-8B (4 query heads per KV head) sits near 4 FLOPs per
    // byte; the absorbed form, its 16 heads sharing one latent, far above.
    let llama = load_model("llama-3-8b".as_ref()).unwrap();
    let gl = build_iteration(
        &llama,
        &Batch::decode(seqs, ctx),
        1,
        bf16(),
        &Routing::Uniform,
    )
    .unwrap();
    let op_b = |w: dyad::work::Work| w.flops.value() / w.bytes.total().value();
    let gqa = op_b(gl.ops().find(|o| o.name == "attn_decode").unwrap().work());
    assert!(
        op_b(w) > 7.0 * gqa,
        "MLA {} vs GQA {gqa}",
        op_b(attn.work())
    );
}

#[test]
fn prefill_up_projects_every_key_it_attends() {
    let m = deepseek_lite();
    let b = Batch {
        decode_kv: vec![300],
        prefill: vec![PrefillChunk {
            q_len: 100,
            ctx: 50,
            last: true,
        }],
    };
    let g = build_iteration(&m, &b, 2, bf16(), &Routing::Uniform).unwrap();
    let layer: Vec<_> = g.ops().filter(|o| o.layer == Some(1)).collect();
    let up = layer.iter().find(|o| o.name == "kv_b_proj").unwrap();
    // 150 keys (50 cached + 100 new) to 8 heads' keys (128) and values (128) from the latent.
    assert_eq!(
        up.kind,
        OpKind::Gemm {
            m: 150,
            n: 8 * 256,
            k: 512,
            batch: 1
        }
    );
    let names: Vec<&str> = layer.iter().map(|o| o.name.as_ref()).collect();
    for n in [
        "q_proj",
        "kv_a_proj",
        "attn_prefill",
        "q_absorb",
        "attn_decode",
        "v_up",
        "o_proj",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

#[test]
fn gemma_2_9b_alternates_local_and_global_layers() {
    let m = load_model("gemma-2-9b".as_ref()).unwrap();
    // Even layers slide over 4096 tokens, odd ones attend the whole context (google/gemma-2-9b).
    for (l, p) in m.plans.iter().enumerate() {
        let want = if l % 2 == 0 {
            Attention::Window { tokens: 4096 }
        } else {
            Attention::Full
        };
        assert_eq!(p.attention, want, "layer {l}");
        assert!(p.post_norms);
    }
    assert_eq!(m.uniform_window(), None);
    // Gemma 2 report: 9.24B parameters, the embedding tied to the LM head.
    assert!(m.tie_embeddings && m.logit_softcap);
    assert!(
        (m.params() as f64 / 9.24e9 - 1.0).abs() < 0.01,
        "{}",
        m.params()
    );
    // At context 16,384 a local layer holds 4,096 tokens and a global one 16,384: 21 of each,
    // 8 KV heads × 256 × 2 (K and V) × 2 bytes per token and layer.
    let f = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, bf16());
    let per = 8.0 * 256.0 * 2.0 * 2.0;
    assert_eq!(
        f.kv_held(&m, [16384]).value(),
        21.0 * (4096.0 + 16384.0) * per
    );
    // Decode reads 4096 keys in local layers, the whole context in global ones, and the
    // logits are soft-capped once per vocabulary entry of each row.
    let g = build_iteration(&m, &Batch::decode(2, 10000), 1, bf16(), &Routing::Uniform).unwrap();
    for o in g.ops() {
        if let OpKind::AttnDecode { kv_tokens, .. } = o.kind {
            let l = o.layer.unwrap();
            assert_eq!(kv_tokens, if l % 2 == 0 { 2 * 4096 } else { 2 * 10000 });
        }
    }
    let cap = g.ops().find(|o| o.name == "logit_softcap").unwrap();
    assert!(matches!(cap.kind, OpKind::Elementwise { elements, .. } if elements == 2 * 256000));
}

#[test]
fn layer_types_set_each_layer_and_must_list_every_layer() {
    let m = qwen3_edited(|t| {
        let types = ["\"sliding_attention\""; 47].join(", ");
        t.replace(
            "\"use_sliding_window\": false",
            "\"use_sliding_window\": true",
        )
        .replace("\"sliding_window\": null", "\"sliding_window\": 128")
        .replace(
            "\"head_dim\": 128,",
            &format!("\"head_dim\": 128, \"layer_types\": [{types}, \"full_attention\"],"),
        )
    })
    .unwrap();
    assert!((0..47).all(|l| m.plans[l].attention == Attention::Window { tokens: 128 }));
    assert_eq!(m.plans[47].attention, Attention::Full);
    let short = qwen3_edited(|t| {
        t.replace(
            "\"head_dim\": 128,",
            "\"head_dim\": 128, \"layer_types\": [],",
        )
    });
    let e = short.unwrap_err();
    assert!(e.contains("lists 0 layers") && e.contains("48"), "{e}");
}

#[test]
fn the_experts_of_a_layer_on_one_unit_share_one_launch() {
    use dyad::map::cost_iteration;
    let m = qwen3_moe();
    // 16 tokens × 8 = 128 assignments: every one of the 128 experts gets a token.
    let g = build_iteration(&m, &Batch::decode(16, 512), 1, bf16(), &Routing::Uniform).unwrap();
    for (arch, policy) in [("h100", Policy::AllXpu), ("duplex", Policy::Duplex)] {
        let sys = load_arch(arch.as_ref()).unwrap();
        let placed = cost_iteration(&g, &sys, policy, Timing::Kernel).unwrap();
        for l in [0, 20, 47] {
            let experts: Vec<_> = placed
                .iter()
                .filter(|p| p.op.layer == Some(l) && p.op.name.starts_with("expert_"))
                .collect();
            assert_eq!(experts.len(), 128);
            let units: std::collections::BTreeSet<_> = experts.iter().map(|p| p.unit).collect();
            let launched = experts
                .iter()
                .filter(|p| p.cost.overhead.value() > 0.0)
                .count();
            // One launch per unit the layer's experts run on; each expert's time is still its
            // own longer side.
            assert_eq!(launched, units.len(), "{arch} layer {l}");
            for p in experts {
                let side = p.cost.compute.value().max(p.cost.memory.value());
                assert_eq!(p.cost.time.value(), side + p.cost.overhead.value());
            }
        }
    }
}

#[test]
fn deepseek_v3_has_three_dense_layers_fp8_weights_and_no_mtp_layer() {
    let m = load_model("deepseek-v3".as_ref()).unwrap();
    // deepseek-ai/DeepSeek-V3 config.json: 61 layers, the first 3 dense (first_k_dense_replace),
    // the rest MoE with 1 shared and 8 of 256 routed experts of 2048.
    assert_eq!(m.layers(), 61);
    assert!((0..3).all(|l| !m.is_moe_layer(l)) && (3..61).all(|l| m.is_moe_layer(l)));
    let moe = m.moe.unwrap();
    assert_eq!((moe.experts, moe.top_k, moe.intermediate), (256, 8, 2048));
    assert_eq!(moe.shared.unwrap().intermediate, 2048);
    assert_eq!(m.plans[10].mla.unwrap().q_lora, Some(1536));
    assert_eq!(m.quantized, Some(Dtype::Fp8));
    assert!(m.notes.iter().any(|n| n.contains("multi-token-prediction")));
    // DeepSeek-V3 report: 671B parameters without the MTP module, 37B activated per token.
    // Counting the LM head and not the input embedding (as for DeepSeek-V2-Lite): 36.6B, 1%
    // below the published figure; the band is the 3% that also holds DeepSeek-V2-Lite.
    let all = m.params() as f64;
    let active = m.active_params() as f64 - (m.vocab * m.hidden) as f64;
    assert!((all / 671e9 - 1.0).abs() < 0.01, "{all}");
    assert!((active / 37e9 - 1.0).abs() < 0.03, "{active}");
    // Another quantization method is named, not guessed.
    let text = std::fs::read_to_string(crate::util::root("workloads/models/deepseek-v3.json"))
        .unwrap()
        .replace("\"quant_method\": \"fp8\"", "\"quant_method\": \"awq\"");
    let r = dyad_with(&[("m.json", &text)], &["run", "--model", "m.json"]);
    crate::util::expect_input_error(&r, &["m.json", "quantization_config", "awq"]);
}
