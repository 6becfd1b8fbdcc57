//! Issue 13's attention and layer variants, each as an overlay on a shipped model, against
//! closed forms: MatryoshkaKV ranks, FinerCut sublayer pruning, MASFormer's mixed spans, DELTA
//! and DeepSeek-V3.2's token selection, layer skipping; with every knob neutral the iteration
//! is the plain model's; overlay errors name the file and line of the key.

use std::path::PathBuf;

use dyad::config::{load_arch, load_model};
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::model::{
    Batch, Footprint, IterationGraph, ModelSpec, Op, OpKind, Parallelism, Precision, Routing,
    build_iteration,
};
use dyad::sim::iteration::Coster;
use dyad::work::Dtype;

/// The overlay `text` written as `variant.toml` in a fresh folder, and the folder.
fn overlay(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("variant.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

/// The model the overlay `text` makes.
fn variant(text: &str) -> ModelSpec {
    let (_dir, p) = overlay(text);
    load_model(&p).unwrap()
}

fn model(name: &str) -> ModelSpec {
    load_model(name.as_ref()).unwrap()
}

fn graph(m: &ModelSpec, b: &Batch, p: Precision) -> IterationGraph {
    build_iteration(m, b, 1, p, &Routing::Uniform).unwrap()
}

fn ops<'a>(g: &'a IterationGraph, name: &'a str) -> impl Iterator<Item = &'a Op> + 'a {
    g.ops().filter(move |o| o.name == name)
}

fn kv_per_token(m: &ModelSpec, kv: Dtype) -> f64 {
    Footprint::new(m, Parallelism { tp: 1, ep: 1 }, Precision::uniform(kv))
        .kv(1)
        .value()
}

#[test]
fn llama_2_7b_caches_512_kib_per_token_and_192_kib_at_a_37_5_percent_matryoshka_budget() {
    // Llama-2-7B: 32 layers × K and V × 32 heads × 128 × 2 bytes (fp16) = 512 KiB; at a 37.5%
    // budget each key and value keeps 48 of 128 elements (REFERENCE.md §MatryoshkaKV).
    let plain = model("llama-2-7b");
    let m = variant("extends = \"llama-2-7b\"\nkv_budget = 0.375\n");
    assert_eq!(kv_per_token(&plain, Dtype::Fp16), 512.0 * 1024.0);
    assert_eq!(kv_per_token(&m, Dtype::Fp16), 192.0 * 1024.0);
    // Decode of 2 sequences at 1,000 tokens: each layer's attention reads 2,000 keys of 32
    // heads × (48 + 48) elements and does 2·(48 + 48) FLOPs per (head, key).
    let p = Precision::uniform(Dtype::Fp16);
    let g = graph(&m, &Batch::decode(2, 1000), p);
    let attn: Vec<&Op> = ops(&g, "attn_decode").collect();
    assert_eq!(attn.len(), 32);
    let w = attn[0].work();
    assert_eq!(w.bytes.kv_read.value(), 2000.0 * 32.0 * 96.0 * 2.0);
    assert_eq!(w.flops.value(), 2.0 * 32.0 * 2000.0 * 96.0);
    // RoPE keeps the key projection out of W_k: each new key and query (2 rows per KV head for
    // MHA) is projected 128 → 48 by its KV head's matrix.
    let proj = ops(&g, "qk_rank_proj").next().unwrap().work();
    assert_eq!(proj.flops.value(), 2.0 * (2.0 * 2.0) * 48.0 * 128.0 * 32.0);
    assert_eq!(proj.bytes.weights.value(), 32.0 * 128.0 * 48.0 * 2.0);
    // W_v and W_o fold the value projection: (128 − 48) columns of each of 32 heads fewer in
    // both, per layer; the key projections add 32 × 128 × 48.
    let cut = 32 * ((128 - 48) * 2 * 4096 * 32 - 32 * 128 * 48);
    assert_eq!(plain.params() - m.params(), cut);
    let decode = |m: &ModelSpec| graph(m, &Batch::decode(2, 1000), p);
    let o_proj = |g: &IterationGraph| ops(g, "o_proj").next().unwrap().work().flops.value();
    assert_eq!(o_proj(&decode(&m)) / o_proj(&decode(&plain)), 48.0 / 128.0);
}

#[test]
fn finercut_pruning_34_of_llama_3_70b_s_80_attention_sublayers_cuts_kv_42_5_and_weights_7() {
    // REFERENCE.md §FinerCut: 34 of 80 attention sublayers removed (here 46..80).
    let plain = model("llama-3-70b");
    let layers: Vec<String> = (46..80).map(|l| l.to_string()).collect();
    let m = variant(&format!(
        "extends = \"llama-3-70b\"\npruned_attention_layers = [{}]\n",
        layers.join(", ")
    ));
    let (kv0, kv1) = (
        kv_per_token(&plain, Dtype::Bf16),
        kv_per_token(&m, Dtype::Bf16),
    );
    // 46 of 80 layers keep their KV: 42.5% less.
    assert_eq!(kv1 * 80.0, kv0 * 46.0);
    // Each pruned sublayer: Q, K, V and O (8192 × (8192 + 2·1024) + 8192²) and its norm.
    let attn = 8192 * (8192 + 2 * 1024) + 8192 * 8192 + 8192;
    assert_eq!(plain.params() - m.params(), 34 * attn);
    let cut = (34 * attn) as f64 / plain.params() as f64;
    assert!((0.07..0.075).contains(&cut), "{cut}");
    // The pruned layers run their FFN only.
    let g = graph(&m, &Batch::decode(1, 100), Precision::uniform(Dtype::Bf16));
    assert_eq!(ops(&g, "attn_decode").count(), 46);
    assert_eq!(ops(&g, "down_proj").count(), 80);
}

#[test]
fn mixed_spans_prefill_attention_flops_are_full_layers_s_squared_and_window_layers_s_w() {
    // MASFormer: full attention in l = 4 of Llama-3-8B's L = 32 layers, a sliding window of
    // w = 512 in the rest. Prefill of S = 4,096: a full layer attends S(S + 1)/2 pairs, a
    // window layer w(w + 1)/2 + (S − w)·w, each at 4·h·d FLOPs (h = 32, d = 128).
    let m = variant(
        "extends = \"llama-3-8b\"\nlocal_attention_window = 512\n\
         full_attention_layers = [0, 8, 16, 24]\n",
    );
    let (s, w, l, big_l) = (4096.0, 512.0, 4.0, 32.0);
    let g = graph(
        &m,
        &Batch::prefill(1, 4096),
        Precision::uniform(Dtype::Bf16),
    );
    let flops: f64 = ops(&g, "attn_prefill")
        .map(|o| o.work().flops.value())
        .sum();
    let pairs = l * s * (s + 1.0) / 2.0 + (big_l - l) * (w * (w + 1.0) / 2.0 + (s - w) * w);
    assert_eq!(flops, 4.0 * 32.0 * 128.0 * pairs);
    // The window layers hold w tokens of KV: l·S + (L − l)·w tokens of 8 heads × 256 × 2 B.
    let held = m.kv_bytes_held(4096, Dtype::Bf16, 1);
    assert_eq!(held, (l * s + (big_l - l) * w) * 8.0 * 256.0 * 2.0);
}

#[test]
fn delta_sparse_layers_read_the_kept_pages_and_selection_layers_score_every_key() {
    // Layers 0, 1 full; 2 and 16 select (full attention and scoring); the others read the
    // 1,000 kept tokens in pages of 16, i.e. 1,008 keys.
    let sparse: Vec<String> = (3..32)
        .filter(|&l| l != 16)
        .map(|l| l.to_string())
        .collect();
    let m = variant(&format!(
        "extends = \"llama-3-8b\"\nsparse_topk = 1000\nsparse_page = 16\n\
         sparse_select_layers = [2, 16]\nsparse_layers = [{}]\n",
        sparse.join(", ")
    ));
    let plain = model("llama-3-8b");
    // The cache still holds every token.
    assert_eq!(
        kv_per_token(&m, Dtype::Bf16),
        kv_per_token(&plain, Dtype::Bf16)
    );
    let p = Precision::uniform(Dtype::Bf16);
    let g = graph(&m, &Batch::decode(4, 8192), p);
    let keys: Vec<u64> = ops(&g, "attn_decode")
        .map(|o| match o.kind {
            OpKind::AttnDecode { kv_tokens, .. } => kv_tokens,
            _ => 0,
        })
        .collect();
    assert_eq!(keys.iter().filter(|&&k| k == 4 * 8192).count(), 4);
    assert_eq!(keys.iter().filter(|&&k| k == 4 * 1008).count(), 28);
    // Scoring: 4 queries × 8,192 keys × 32 heads × (2·128 + 2) FLOPs, the layer's keys read
    // (8 KV heads × 128, bf16), 1,000 indices of 4 bytes out per query.
    let score: Vec<_> = ops(&g, "token_score").map(|o| o.work()).collect();
    assert_eq!(score.len(), 2);
    assert_eq!(score[0].flops.value(), 4.0 * 8192.0 * 32.0 * 258.0);
    assert_eq!(
        score[0].bytes.kv_read.value(),
        4.0 * 8192.0 * 8.0 * 128.0 * 2.0
    );
    assert_eq!(score[0].bytes.act_out.value(), 4.0 * 1000.0 * 4.0);
}

#[test]
fn deepseek_v3_2_sparse_attention_is_the_same_knob_with_an_indexer_of_its_own_keys() {
    // DeepSeek-V3.2's config (REFERENCE.md §DeepSeek-V3.2 sparse attention): an indexer of 64
    // heads of 128 picks 2,048 tokens per query in every layer.
    let m = variant(
        "extends = \"deepseek-v3\"\nindex_topk = 2048\nindex_n_heads = 64\n\
         index_head_dim = 128\n",
    );
    let plain = model("deepseek-v3");
    let p = Precision::uniform(Dtype::Bf16);
    let g = graph(&m, &Batch::decode(1, 32768), p);
    for o in ops(&g, "attn_decode") {
        assert!(
            matches!(
                o.kind,
                OpKind::AttnMla {
                    kv_tokens: 2048,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    let score = ops(&g, "token_score").next().unwrap().work();
    assert_eq!(score.flops.value(), 32768.0 * 64.0 * 258.0);
    assert_eq!(score.bytes.kv_read.value(), 32768.0 * 128.0 * 2.0);
    // The cache holds each layer's 128-element indexer key beside its 576-element latent.
    let (a, b) = (
        kv_per_token(&plain, Dtype::Bf16),
        kv_per_token(&m, Dtype::Bf16),
    );
    assert_eq!(b - a, 61.0 * 128.0 * 2.0);
    assert_eq!(a, 61.0 * 576.0 * 2.0);
    // The indexer's weights: query from the 1,536-rank latent, key and head weights from x.
    let per_layer = 1536 * 64 * 128 + 7168 * (128 + 64);
    assert_eq!(m.params() - plain.params(), 61 * per_layer);
}

/// Kernel time of a decode iteration of `m` on an H100, every op on the xPU.
fn decode_time(m: &ModelSpec, batch: &Batch) -> f64 {
    let sys = load_arch("h100".as_ref()).unwrap();
    let par = Parallelism { tp: 1, ep: 1 };
    let p = Precision::uniform(Dtype::Bf16);
    let mut c = Coster::new(&sys, m, par, p, Timing::Kernel, Policy::AllXpu);
    c.iteration(batch, &[], false).unwrap().time
}

#[test]
fn skipping_n_of_l_layers_speeds_memory_bound_decode_by_l_over_l_minus_n() {
    // Llama-2-7B, one sequence at 512 tokens (memory-bound): 8 of 32 layers skipped. Every
    // layer costs alike, so the iteration loses exactly 8/32 of its layers' time; what is
    // outside the layers (the embedding gather, the final norm and the LM head's 32,000 × 4,096
    // weights, ≈ 2% of the bytes) is not skipped, so the speed-up is just under 32/24.
    let batch = Batch::decode(1, 512);
    let skip = |n: u32| {
        let every = 32 / n;
        let l: Vec<String> = (0..32)
            .filter(|l| l % every == every - 1)
            .map(|l: u32| l.to_string())
            .collect();
        variant(&format!(
            "extends = \"llama-2-7b\"\nskip_layers = [{}]\n",
            l.join(", ")
        ))
    };
    let plain = decode_time(&model("llama-2-7b"), &batch);
    let (skipped, outside) = (
        decode_time(&skip(8), &batch),
        decode_time(&skip(32), &batch),
    );
    let layers = plain - outside;
    assert!((plain - skipped - layers * 8.0 / 32.0).abs() < 1e-9 * plain);
    let speedup = plain / skipped;
    assert!(
        speedup < 32.0 / 24.0 && speedup > 32.0 / 24.0 * 0.98,
        "{speedup}"
    );
    assert!(outside / plain < 0.03, "{}", outside / plain);
}

#[test]
fn every_knob_at_its_neutral_value_builds_and_costs_the_plain_model() {
    let layers: Vec<String> = (0..32).map(|l| l.to_string()).collect();
    for base in ["llama-3-8b", "mixtral-8x7b"] {
        let m = variant(&format!(
            "extends = \"{base}\"\nname = \"{base}\"\nkv_budget = 1.0\nkey_ranks = []\n\
             pruned_attention_layers = []\npruned_ffn_layers = []\nskip_layers = []\n\
             local_attention_window = 4096\nfull_attention_layers = [{}]\n\
             sparse_topk = 2048\nsparse_select_layers = []\nsparse_layers = []\n",
            layers.join(", ")
        ));
        let plain = model(base);
        assert_eq!(m.plans, plain.plans, "{base}");
        assert_eq!(m.params(), plain.params());
        let p = Precision::uniform(Dtype::Bf16);
        let mut batch = Batch::decode(3, 700);
        batch.prefill = Batch::prefill(2, 300).prefill;
        let (a, b) = (graph(&m, &batch, p), graph(&plain, &batch, p));
        let a: Vec<&Op> = a.ops().collect();
        assert_eq!(a, b.ops().collect::<Vec<_>>());
        assert_eq!(decode_time(&m, &batch), decode_time(&plain, &batch));
    }
}

#[test]
fn an_overlay_error_names_the_file_and_line_of_the_key_in_the_overlay_or_its_base() {
    let (dir, p) = overlay("extends = \"base.toml\"\nname = \"v\"\nkv_budget = 1.5\n");
    let base = dir.path().join("base.toml");
    let glam = std::fs::read_to_string(crate::util::root("workloads/models/glam.toml")).unwrap();
    std::fs::write(&base, &glam).unwrap();
    let e = load_model(&p).unwrap_err();
    assert!(
        e.path().ends_with("variant.toml") && e.line_col().unwrap().0 == 3,
        "{e:?}"
    );
    assert!(e.message().contains("kv_budget"), "{e:?}");
    // A bad value in the base is found in the base, at its line.
    let bad = glam.replace("num_experts_per_tok = 2", "num_experts_per_tok = 99");
    std::fs::write(&base, &bad).unwrap();
    std::fs::write(&p, "extends = \"base.toml\"\n").unwrap();
    let e = load_model(&p).unwrap_err();
    let line = bad.lines().position(|l| l.contains("= 99")).unwrap() + 1;
    assert!(e.path().ends_with("base.toml"), "{e:?}");
    assert_eq!(e.line_col().unwrap().0, line, "{e:?}");
    // The overlay's own value wins over the base's, and names its own line.
    std::fs::write(&p, "extends = \"base.toml\"\n\nnum_experts_per_tok = 100\n").unwrap();
    let e = load_model(&p).unwrap_err();
    assert!(
        e.path().ends_with("variant.toml") && e.line_col().unwrap().0 == 3,
        "{e:?}"
    );
    // A name that is neither a file nor a built-in model: the `extends` line.
    std::fs::write(&p, "name = \"v\"\nextends = \"nowhere\"\n").unwrap();
    let e = load_model(&p).unwrap_err();
    assert_eq!(e.line_col().unwrap().0, 2, "{e:?}");
}

#[test]
fn every_shipped_variant_loads_and_the_finercut_one_prunes_34_attention_sublayers() {
    let dir = crate::util::root("workloads/models/variants");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let m = load_model(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let changed = |q: &dyad::model::LayerPlan| {
            q.variant != Default::default()
                || !q.knobs.is_neutral()
                || q.attention != dyad::model::Attention::Full
        };
        assert!(m.plans.iter().any(changed), "{p:?}");
        n += 1;
    }
    assert!(n >= 6, "{n}");
    let m = load_model(&dir.join("llama-3-70b-finercut.toml")).unwrap();
    let pruned = m
        .plans
        .iter()
        .filter(|p| p.variant.attention_pruned)
        .count();
    assert_eq!(pruned, 34);
}

#[test]
fn a_sweep_axis_over_an_overlay_key_varies_the_variant() {
    // An overlay beside the sweep file, and a `model.kv_budget` axis over it.
    let d = tempfile::tempdir().unwrap();
    let scenario = crate::util::small_scenario("h100", "", "mode = \"uniform\"")
        .replace("tp = 4", "tp = 1")
        .replace(
            &format!("{}/workloads/models/mixtral-8x7b.json", crate::util::ROOT),
            "variant.toml",
        );
    std::fs::write(d.path().join("base.toml"), scenario).unwrap();
    std::fs::write(
        d.path().join("variant.toml"),
        "extends = \"llama-2-7b\"\nkv_budget = 1.0\n",
    )
    .unwrap();
    let p = d.path().join("sweep.toml");
    let body = "scenario = \"base.toml\"\n[[axis]]\nkey = \"model.kv_budget\"\nvalues = [0.25, 0.375, 1.0]\n";
    std::fs::write(&p, body).unwrap();
    let s = dyad::sweep::Sweep::load(&p).unwrap();
    let kv: Vec<f64> = s
        .points()
        .iter()
        .map(|pt| kv_per_token(&s.scenario(pt).unwrap().model, Dtype::Fp16) / 1024.0)
        .collect();
    assert_eq!(kv, [128.0, 192.0, 512.0]);
}

#[test]
fn validate_runs_matryoshka_attention_and_its_projection_on_the_reference_kernels() {
    let m = crate::util::root("workloads/models/variants/llama-2-7b-matryoshka.toml");
    let m = m.display().to_string();
    let args = [
        "validate", "--model", &m, "--tp", "1", "--policy", "all-xpu",
    ];
    let r = crate::util::dyad(&args);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("qk_rank_proj") && !r.stdout.contains("FAIL"),
        "{}",
        r.stdout
    );
}

#[test]
fn validate_passes_every_shipped_variant_with_token_scoring_and_sparse_reads_on_the_kernels() {
    let dir = crate::util::root("workloads/models/variants");
    // The per-layer precision overlays are left out: the reference GEMM counts its weights at
    // the activations' type, not at int4 with group scales, and no kernel computes in int8.
    let quantized = ["llama-3-8b-w4a16.toml", "llama-3-8b-w8a8-kv8.toml"];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !quantized.iter().any(|q| p.ends_with(q)))
        .collect();
    files.sort();
    for f in &files {
        let m = f.display().to_string();
        let r = crate::util::dyad(&["validate", "--model", &m, "--tp", "1,4", "--ep", "4"]);
        assert_eq!(r.status, 0, "{m}: {}{}", r.stdout, r.stderr);
    }
    // DELTA on Llama-3-8B at validate's scale (hidden 256, 32 heads of 8, 8 KV heads), the kept
    // tokens narrowed to 6 in pages of 6: the 4 decode sequences (24, 27, 30, 33 keys) of a
    // sparse layer attend 6 keys each, 4·6·32·2·(8 + 8) FLOPs, and read 6 keys of 8 KV heads of
    // 8 + 8 bf16 elements each; the selection layer's scorer scores every key, 2·8 + 2 FLOPs per
    // (query, key, head).
    let spec = dyad::app::validate::ValidateSpec {
        model: dir.join("llama-3-8b-delta.toml"),
        tp: vec![1],
        layers: 4,
        policies: vec![Policy::AllXpu],
        ..Default::default()
    };
    let v = dyad::app::validate::validate(&spec).unwrap();
    assert_eq!(v.failures(), 0);
    let row = |l: u32, op: &str| {
        let r = v.rows.iter().find(|r| r.layer == Some(l) && r.op == op);
        r.unwrap().check.parts[0].counted
    };
    let sparse = row(3, "attn_decode");
    assert_eq!(sparse.flops, 4 * 6 * 32 * 2 * 16);
    assert_eq!(sparse.kv_read, 4 * 6 * 8 * 16 * 2);
    let keys = (24 + 27 + 30 + 33) + (12 * 13 / 2 + (6 * 7 / 2 + 6 * 6));
    assert_eq!(row(2, "token_score").flops, keys * 32 * 18);
}
