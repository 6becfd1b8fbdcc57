//! The shipped HuggingFace configs of today's families: every one loads; parameter totals and
//! active parameters against the published figures; gpt-oss's MXFP4 experts, alternating
//! windows and sinks; Llama-4's chunked local attention; DeepSeek-V3's group-limited gate; the
//! latent attention's activation reserve; each counted by hand.

use proptest::prelude::*;

use dyad::config::{load_model, presets};
use dyad::model::{
    Attention, Batch, Footprint, ModelSpec, OpKind, Parallelism, Precision, Routing,
    build_iteration,
};
use dyad::work::Dtype;

fn bf16() -> Precision {
    Precision::uniform(Dtype::Bf16)
}

fn model(name: &str) -> ModelSpec {
    load_model(name.as_ref()).unwrap()
}

/// Parameters one token passes through, counting the LM head and not the input embedding (a
/// lookup, not a product), as the DeepSeek tests count them.
fn active_without_embedding(m: &ModelSpec) -> f64 {
    (m.active_params() - m.vocab * m.hidden) as f64
}

#[test]
fn every_shipped_config_loads_and_is_a_preset() {
    let dir = crate::util::root("workloads/models");
    let mut shipped: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let ext = p.extension()?.to_str()?;
            matches!(ext, "json" | "toml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    shipped.sort();
    let mut names: Vec<String> = presets::names("workloads/models")
        .into_iter()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(shipped, names, "every file in workloads/models is a preset");
    for n in &names {
        let ext = if n == "glam" || n == "grok-1" {
            "toml"
        } else {
            "json"
        };
        let m = load_model(&dir.join(format!("{n}.{ext}"))).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(m.layers() > 0 && m.params() > 0, "{n}");
    }
}

#[test]
fn gpt_oss_120b_has_116_8b_parameters_and_5_1b_active() {
    let m = model("gpt-oss-120b");
    // OpenAI's gpt-oss model card (Table 1): 116.83B parameters in all; 5.13B active per token,
    // which counts the unembedding and not the embedding (the convention here: 5.13B).
    let all = m.params() as f64;
    assert!((all / 116.83e9 - 1.0).abs() < 0.01, "{all}");
    let active = active_without_embedding(&m);
    assert!((5.05e9..5.15e9).contains(&active), "{active}");
    // 36 layers alternating a 128-token window (even) and full attention (odd), sinks in each.
    for (l, p) in m.plans.iter().enumerate() {
        let want = if l % 2 == 0 {
            Attention::Window { tokens: 128 }
        } else {
            Attention::Full
        };
        assert_eq!(p.attention, want, "layer {l}");
        assert!(p.sinks && p.expert_weights == Some(Dtype::Mxfp4));
    }
    // One sink logit per query head: 64 parameters per layer beside the projections.
    let q = 64 * 64;
    let attention = 2880 * (q + 2 * 8 * 64) + q * 2880;
    let experts = 128 * 3 * 2880 * 2880 + 2880 * 128;
    assert_eq!(m.layer_params(0), attention + experts + 2 * 2880 + 64);
}

#[test]
fn gpt_oss_experts_read_4_25_bits_per_weight_and_attention_stays_bf16() {
    let m = model("gpt-oss-120b");
    let g = build_iteration(&m, &Batch::decode(4, 1000), 1, bf16(), &Routing::Uniform).unwrap();
    let layer: Vec<_> = g.ops().filter(|o| o.layer == Some(3)).collect();
    // An MXFP4 block: 32 four-bit elements and one 8-bit scale, 136 bits for 32 weights.
    let bits = (32.0 * 4.0 + 8.0) / 32.0;
    let expert = layer.iter().find(|o| o.name == "expert_0").unwrap();
    let w = expert.work();
    assert_eq!(w.bytes.weights.value(), 3.0 * 2880.0 * 2880.0 * bits / 8.0);
    // Weight-only: the GEMMs compute in bf16.
    assert_eq!(w.compute, Dtype::Bf16);
    let qkv = layer.iter().find(|o| o.name == "qkv_proj").unwrap();
    assert_eq!(
        qkv.work().bytes.weights.value(),
        2880.0 * (4096.0 + 1024.0) * 2.0
    );
    // The whole model: 36 × 128 experts at 4.25 bits, the rest at 2 bytes (65.2 GB, the
    // release's checkpoint size).
    let f = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, bf16());
    let experts = m.expert_params() as f64;
    let rest = (m.params() - m.expert_params()) as f64;
    assert_eq!(f.weights.value(), rest * 2.0 + experts * bits / 8.0);
    assert!((f.weights.value() / 65.2e9 - 1.0).abs() < 0.01);
}

#[test]
fn mixtral_8x22b_has_141b_parameters_and_39b_active() {
    let m = model("mixtral-8x22b");
    // Mistral AI's Mixtral 8x22B announcement: 141B parameters, 39B active.
    let all = m.params() as f64;
    assert!((all / 141e9 - 1.0).abs() < 0.01, "{all}");
    let active = active_without_embedding(&m);
    assert!((38.5e9..39.5e9).contains(&active), "{active}");
}

#[test]
fn llama_4_scout_chunks_three_layers_in_four() {
    let m = model("llama-4-scout-17b-16e");
    for (l, p) in m.plans.iter().enumerate() {
        let chunked = (l + 1) % 4 != 0;
        let want = if chunked {
            Attention::Chunk { tokens: 8192 }
        } else {
            Attention::Full
        };
        assert_eq!(p.attention, want, "layer {l}");
        assert_eq!(p.qk_norm, chunked, "layer {l}");
    }
    assert!((0..48).all(|l| m.is_moe_layer(l)));
    let moe = m.moe.unwrap();
    assert_eq!((moe.experts, moe.top_k, moe.intermediate), (16, 1, 8192));
    let shared = moe.shared.unwrap();
    assert_eq!((shared.intermediate, shared.sigmoid_gate), (8192, false));
    // Meta: 17B active parameters, here with both embedding and LM head counted (17.2B).
    let active = m.active_params() as f64;
    assert!((16.5e9..17.5e9).contains(&active), "{active}");
}

#[test]
fn a_chunked_layer_reads_and_holds_only_the_current_chunk() {
    let m = model("llama-4-scout-17b-16e");
    // At context 10,000 the query sits in the second chunk of 8,192: it attends 10,000 - 8,192
    // = 1,808 keys; a full layer attends 10,000. K and V × 8 KV heads × 128 × 2 bytes each.
    let per_token = 2.0 * 8.0 * 128.0 * 2.0;
    let g = build_iteration(&m, &Batch::decode(3, 10000), 1, bf16(), &Routing::Uniform).unwrap();
    for o in g.ops() {
        if let OpKind::AttnDecode { kv_tokens, .. } = o.kind {
            let l = o.layer.unwrap();
            let keys = if (l + 1) % 4 != 0 { 1808 } else { 10000 };
            assert_eq!(kv_tokens, 3 * keys, "layer {l}");
            assert_eq!(
                o.work().bytes.kv_read.value(),
                3.0 * keys as f64 * per_token
            );
        }
    }
    // 36 chunked layers hold 1,808 tokens, 12 full ones 10,000.
    let f = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, bf16());
    let held = (36.0 * 1808.0 + 12.0 * 10000.0) * per_token;
    assert_eq!(f.kv_held(&m, [10000]).value(), held);
    // A 10,000-token prompt pairs within chunks: 8,192 · 8,193 / 2 + 1,808 · 1,809 / 2, and
    // reads its own 10,000 keys.
    let (attended, kv) = super::prefill_attention(&m, 10000, 0);
    assert_eq!(attended, 8192 * 8193 / 2 + 1808 * 1809 / 2);
    assert_eq!(kv, 10000);
}

proptest! {
    #[test]
    fn chunked_pairs_and_keys_read_match_a_count_by_query(
        q in 0u64..300, ctx in 0u64..300, c in 1u64..100,
    ) {
        let a = Attention::Chunk { tokens: c };
        // Query j (1-based position) sees the keys of its chunk up to itself.
        let keys = |j: u64| j - (j - 1) / c * c;
        let brute: u64 = (ctx + 1..=ctx + q).map(keys).sum();
        prop_assert_eq!(a.pairs(q, ctx), brute);
        for j in ctx + 1..=ctx + q {
            prop_assert_eq!(a.keys(j), keys(j));
        }
        // The keys read: from the first query's chunk start to the last new token.
        if q > 0 {
            prop_assert_eq!(a.keys_read(q, ctx), ctx + q - ctx / c * c);
        }
    }
}

#[test]
fn deepseek_v3_gate_scores_groups_and_v2_lite_does_not_renormalise() {
    let topk_flops = |name: &str, layer: u32| {
        let m = model(name);
        let g = build_iteration(&m, &Batch::decode(5, 100), 1, bf16(), &Routing::Uniform).unwrap();
        let o = g
            .ops()
            .find(|o| o.layer == Some(layer) && o.name == "topk")
            .unwrap();
        o.work().flops.value() / 5.0
    };
    // DeepSeek-V3: 256 sigmoid scores (4 each), the 8 chosen renormalised (2 each), and
    // group-limited routing over 8 groups of 32 keeping 4: the balancing bias added to each
    // score (1 each) and each group's two best biased scores summed (1 per group); finding the
    // best, ranking the groups and masking the rest are comparisons, not FLOPs.
    assert_eq!(
        topk_flops("deepseek-v3", 3),
        (4 * 256 + 2 * 8 + 256 + 8) as f64
    );
    // DeepSeek-V2-Lite: norm_topk_prob false and one group: the 64 scores only.
    assert_eq!(topk_flops("deepseek-v2-lite", 1), (4 * 64) as f64);
}

#[test]
fn latent_attention_reserves_its_projections_not_head_dim_wide_qkv() {
    let m = model("deepseek-v3");
    let p = bf16();
    let f = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, p);
    // Per token: 4 × 7168 (residual and norms), the query 128 × (128 + 64), the latent and
    // RoPE key 512 + 64, the absorbed query 128 × 512 (wider than 128 × (128 + 128)), and
    // 3 × 18432 of the dense FFN; 2 bytes each; fp32 logits of the one sequence.
    let per_token = 4 * 7168 + 128 * 192 + 576 + 128 * 512 + 3 * 18432;
    let want = 100.0 * per_token as f64 * 2.0 + 129280.0 * 4.0;
    assert_eq!(f.activations(&m, p, 100, 1).value(), want);
}

#[test]
fn a_config_with_two_unmodeled_fields_names_both() {
    let text =
        std::fs::read_to_string(crate::util::root("workloads/models/qwen3-30b-a3b.json")).unwrap();
    let text = text
        .replace(
            "\"head_dim\": 128,",
            "\"head_dim\": 128,\n  \"linear_num_value_heads\": 32,",
        )
        .replace(
            "\"vocab_size\": 151936",
            "\"vocab_size\": 151936,\n  \"quantization_config\": {\"quant_method\": \"awq\"}",
        );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.json");
    std::fs::write(&p, text).unwrap();
    // The message itself, not the quoted source around it, names both.
    let e = load_model(&p).unwrap_err().to_string();
    assert!(
        e.contains("linear_num_value_heads")
            && e.contains("quantization_config")
            && e.contains("awq"),
        "{e}"
    );
}

#[test]
fn chunk_prefill_after_context_starts_at_the_chunk() {
    let m = model("llama-4-scout-17b-16e");
    // 100 new tokens after 8,150 cached: 42 queries end the first chunk (8,151..8,192 keys),
    // 58 start the second (1..58 keys); the keys read run from position 0 of the first chunk.
    let (attended, kv) = super::prefill_attention(&m, 100, 8150);
    let first: u64 = (8151..=8192).sum();
    let second: u64 = (1..=58).sum();
    assert_eq!(attended, first + second);
    assert_eq!(kv, 8150 + 100);
}
