//! The seed papers' per-layer variants (issue 13, items 1, 2, 7, 8), set as top-level keys of a
//! model TOML: MoE++'s zero-computation experts, dynamic top-p routing, per-layer precision and
//! kept image tokens. Closed forms by hand, the papers' figures (REFERENCE.md §MoE++, §Dynamic
//! top-p routing, §Per-layer precision, §PyramidDrop), and every knob at its neutral value
//! pricing the plain iteration.

use std::path::Path;

use dyad::config::{load_arch, load_model_text};
use dyad::hw::{Timing, Unit};
use dyad::map::Policy;
use dyad::model::{
    Batch, Footprint, ModelSpec, Op, OpKind, Parallelism, Precision, PrefillChunk, Routing,
    build_iteration, build_iteration_with,
};
use dyad::sim::iteration::Coster;
use dyad::work::Dtype;

use dyad::sweep::{self, RunOptions, Sweep};

use crate::util::{ROOT, dyad, dyad_in, expect_input_error, small_scenario};

/// Mixtral-8x7B's shape (REFERENCE.md §Model configs) with `experts` experts, and `extra` keys.
fn mixtral(experts: u64, extra: &str) -> ModelSpec {
    let text = format!(
        "name = \"m\"\nmodel_type = \"mixtral\"\nhidden_size = 4096\nnum_hidden_layers = 32\n\
         num_attention_heads = 32\nnum_key_value_heads = 8\nintermediate_size = 14336\n\
         vocab_size = 32000\nnum_local_experts = {experts}\nnum_experts_per_tok = 2\n\
         torch_dtype = \"bfloat16\"\n{extra}"
    );
    load_model_text(Path::new("m.toml"), text.into()).unwrap()
}

/// Llama-3-8B's shape (REFERENCE.md §Model configs), and `extra` keys.
fn llama(extra: &str) -> ModelSpec {
    let text = format!(
        "name = \"l\"\nmodel_type = \"llama\"\nhidden_size = 4096\nnum_hidden_layers = 32\n\
         num_attention_heads = 32\nnum_key_value_heads = 8\nintermediate_size = 14336\n\
         vocab_size = 128256\ntorch_dtype = \"bfloat16\"\n{extra}"
    );
    load_model_text(Path::new("l.toml"), text.into()).unwrap()
}

fn bf16() -> Precision {
    Precision::uniform(Dtype::Bf16)
}

/// A batch of decode and prefill: 8 sequences at 1,000 tokens of KV, a 700-token prompt and a
/// chunk of 300 after 400 cached.
fn mixed() -> Batch {
    let c = |q_len, ctx| PrefillChunk {
        q_len,
        ctx,
        last: true,
    };
    Batch {
        decode_kv: vec![1000; 8],
        prefill: vec![c(700, 0), c(300, 400)],
    }
}

/// FLOPs of the ops `keep` selects.
fn flops(m: &ModelSpec, b: &Batch, keep: impl Fn(&Op) -> bool) -> f64 {
    let g = build_iteration(m, b, 1, bf16(), &Routing::Uniform).unwrap();
    g.ops()
        .filter(|o| keep(o))
        .map(|o| o.work().flops.value())
        .sum()
}

fn is_expert(o: &Op) -> bool {
    o.name.starts_with("expert_")
}

#[test]
fn every_variant_at_its_neutral_value_prices_the_plain_iteration() {
    // No zero-computation experts, k always 2, 16 bits everywhere, every image token kept.
    let neutral = "moe_zero_experts = 0\nmoe_copy_experts = 0\nmoe_constant_experts = 0\n\
                   moe_tau = 0.75\nmoe_k_mean = 2.0\nweight_bits = 16\nact_bits = 16\n\
                   kv_bits = 16\nimage_tokens = 576\nimage_drop_layers = [8, 16, 24]\n\
                   image_drop_ratio = 1.0\n";
    let (plain, set) = (mixtral(8, ""), mixtral(8, neutral));
    assert_eq!(plain.plans, set.plans);
    let sys = load_arch("h100".as_ref()).unwrap();
    let par = Parallelism { tp: 1, ep: 1 };
    let cost = |m: &ModelSpec| {
        let mut c = Coster::new(&sys, m, par, bf16(), Timing::Kernel, Policy::AllXpu);
        c.iteration(&mixed(), &[], false).unwrap()
    };
    assert_eq!(cost(&plain), cost(&set));
    let g = |m: &ModelSpec| build_iteration(m, &mixed(), 1, bf16(), &Routing::Uniform).unwrap();
    let ops = |m: &ModelSpec| g(m).ops().cloned().collect::<Vec<Op>>();
    assert_eq!(ops(&plain), ops(&set));
}

/// MoE++'s layer shape (REFERENCE.md §MoE++): 16 FFN experts and 4 zero-computation ones (one
/// zero, one copy, two constant), top-2, at τ.
fn moepp(tau: f64) -> ModelSpec {
    mixtral(
        16,
        &format!(
            "moe_zero_experts = 1\nmoe_copy_experts = 1\nmoe_constant_experts = 2\nmoe_tau = {tau}\n"
        ),
    )
}

#[test]
fn moepp_expert_time_is_affine_in_the_ffn_share_as_table_3() {
    // A compute-bound prefill (8 prompts of 4,096 tokens): each op's time is its FLOPs at the
    // H100's dense peak (REFERENCE.md §GPUs) or its bytes at 3.35 TB/s, the larger. MoE++'s
    // Table 3 (expert forward time against τ) is then a fixed part plus a part proportional to
    // the FFN slots r·t·k (REFERENCE.md §MoE++).
    let b = Batch::prefill(8, 4096);
    let (t, k) = (32768.0_f64, 2.0_f64);
    let roof = |o: &Op| {
        let w = o.work();
        (w.flops.value() / 989.4e12).max(w.bytes.total().value() / 3.35e12)
    };
    let time = |m: &ModelSpec, keep: &dyn Fn(&Op) -> bool| -> f64 {
        let g = build_iteration(m, &b, 1, bf16(), &Routing::Uniform).unwrap();
        g.ops()
            .filter(|o| o.layer == Some(0) && keep(o))
            .map(roof)
            .sum()
    };
    let side = |o: &Op| is_expert(o) || o.name.starts_with("const_");
    // One FFN slot of a token: 3 matrices, 2·h·i FLOPs each, and 5 per inner element.
    let slot = (6.0 * 4096.0 * 14336.0 + 5.0 * 14336.0) / 989.4e12;
    let share = |tau: f64| tau * 16.0 / (tau * 16.0 + 4.0);
    let mut points = Vec::new();
    for tau in [0.1, 0.25, 0.5, 0.75, 1.0] {
        let ffn_slots = (share(tau) * t * k).round();
        let got = time(&moepp(tau), &is_expert);
        let want = ffn_slots * slot;
        assert!(
            (got / want - 1.0).abs() < 1e-9,
            "τ = {tau}: {got} s against {want} s"
        );
        points.push((share(tau), time(&moepp(tau), &side)));
    }
    // The whole expert side (FFN and constant experts) on the line through τ = 0.1 and 1.0.
    let ((r0, t0), (r1, t1)) = (points[0], points[4]);
    for &(r, got) in &points[1..4] {
        let line = t0 + (t1 - t0) * (r - r0) / (r1 - r0);
        assert!(
            (got / line - 1.0).abs() < 1e-4,
            "r = {r}: {got} against {line}"
        );
    }
    // Vanilla top-2 over the 16 FFN experts: every slot an FFN slot.
    let vanilla = time(&mixtral(16, ""), &side);
    assert!((vanilla / (t * k * slot) - 1.0).abs() < 1e-9);
    // At τ = 1 (r = 0.8) the experts take 80% of vanilla's time plus the constant experts'.
    assert!(
        t1 > 0.8 * vanilla && t1 < 0.81 * vanilla,
        "{t1} vs {vanilla}"
    );
}

#[test]
fn under_expert_parallelism_only_ffn_routed_tokens_cross_the_all_to_all() {
    // 4 devices, each 64 decode tokens, τ = 0.25: r = 4 / 8 = 0.5 of the 2 · 256 slots.
    let m = moepp(0.25);
    let par = Parallelism { tp: 1, ep: 4 };
    let g =
        build_iteration_with(&m, &Batch::decode(64, 512), par, bf16(), &Routing::Uniform).unwrap();
    let a2a: Vec<u64> = g
        .ops()
        .filter_map(|o| match o.kind {
            OpKind::AllToAll { bytes, .. } if o.layer == Some(0) => Some(bytes),
            _ => None,
        })
        .collect();
    // 256 FFN slots over 4 devices, rows of 4096 bf16.
    assert_eq!(a2a, vec![64 * 4096 * 2; 2]);
    let plain = build_iteration_with(
        &mixtral(16, ""),
        &Batch::decode(64, 512),
        par,
        bf16(),
        &Routing::Uniform,
    )
    .unwrap();
    let bytes = plain.ops().find_map(|o| match o.kind {
        OpKind::AllToAll { bytes, .. } => Some(bytes),
        _ => None,
    });
    assert_eq!(bytes, Some(128 * 4096 * 2));
}

#[test]
fn top_p_at_1_76_experts_per_token_runs_0_88_of_top_2s_expert_flops() {
    // ZhenweiAn/Dynamic_MoE's README: 1.76 experts per token on average at p = 0.4
    // (REFERENCE.md §Dynamic top-p routing). 100 decode tokens: 176 slots against 200.
    let b = Batch::decode(100, 1000);
    let (plain, mean) = (mixtral(8, ""), mixtral(8, "moe_k_mean = 1.76\n"));
    let pmf = mixtral(8, "moe_k_pmf = [0.24, 0.76]\n");
    let ratio = flops(&mean, &b, is_expert) / flops(&plain, &b, is_expert);
    assert!((ratio - 0.88).abs() < 1e-12, "{ratio}");
    assert_eq!(mean.plans, pmf.plans);
    // The rest of the layer is unchanged.
    let rest = |m: &ModelSpec| flops(m, &b, |o| !is_expert(o));
    assert_eq!(rest(&plain), rest(&mean));
}

#[test]
fn per_layer_precision_charges_its_bytes_in_closed_form() {
    // W4 with one 16-bit scale per 128 weights: 4 + 16/128 = 4.125 bits per layer weight.
    let m = llama("weight_bits = 4\nquant_group_size = 128\nquant_scale_bits = 16\n");
    let g = build_iteration(&m, &Batch::decode(1, 100), 1, bf16(), &Routing::Uniform).unwrap();
    let qkv = g.ops().find(|o| o.name == "qkv_proj").unwrap().work();
    assert_eq!(qkv.bytes.weights.value(), 4096.0 * 6144.0 * 4.125 / 8.0);
    assert_eq!(qkv.compute, Dtype::Bf16);
    // Weight-only: one dequantization op per layer, 2 FLOPs per layer weight.
    let layer = (4096 * 6144 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096) as f64;
    let deq: Vec<f64> = g
        .ops()
        .filter(|o| o.name == "dequant")
        .map(|o| o.work().flops.value())
        .collect();
    assert_eq!(deq, vec![2.0 * layer; 32]);
    // Bits per weight: the layers at 4.125, embedding, final norm and LM head at 16.
    let edge = (2 * 128256 * 4096 + 4096) as f64;
    let want = (32.0 * layer * 4.125 + edge * 16.0) / (32.0 * layer + edge);
    assert!((m.bits_per_weight(Dtype::Bf16) - want).abs() < 1e-9);
    let par = Parallelism { tp: 1, ep: 1 };
    let f = Footprint::new(&m, par, bf16());
    assert_eq!(
        f.weights.value(),
        (32.0 * layer * 4.125 + edge * 16.0) / 8.0
    );
    assert_eq!(llama("").bits_per_weight(Dtype::Bf16), 16.0);
}

#[test]
fn w8a8_runs_at_the_int8_peak_and_kv_bits_halve_the_cache() {
    // HAWQ-style mixed layers: the first 16 at W8A8 int8, the rest left; KV at 8 bits.
    let list = |v: &str, w: &str| format!("[{}]", [[v; 16], [w; 16]].concat().join(", "));
    let keys = format!(
        "weight_bits = {}\nact_bits = {}\nkv_bits = 8\n",
        list("8", "16"),
        list("8", "16")
    );
    let m = llama(&keys);
    let g = build_iteration(&m, &Batch::decode(4, 100), 1, bf16(), &Routing::Uniform).unwrap();
    let of = |l: u32| {
        g.ops()
            .find(|o| o.layer == Some(l) && o.name == "o_proj")
            .unwrap()
    };
    assert_eq!(of(0).work().compute, Dtype::Int8);
    assert_eq!(of(31).work().compute, Dtype::Bf16);
    assert!(g.ops().all(|o| o.name != "dequant"));
    let sys = load_arch("h100".as_ref()).unwrap();
    let peak = |d: Dtype| sys.xpu.peak[&d].value();
    // H100: int8 at twice the bf16 peak (REFERENCE.md §GPUs).
    assert!((peak(Dtype::Int8) / peak(Dtype::Bf16) - 2.0).abs() < 1e-3);
    let big = build_iteration(&m, &Batch::prefill(1, 8192), 1, bf16(), &Routing::Uniform).unwrap();
    let t = |l: u32| {
        let o = big
            .ops()
            .find(|o| o.layer == Some(l) && o.name == "down_proj")
            .unwrap();
        sys.cost_on(Unit::Xpu, &o.work(), Timing::Kernel)
            .unwrap()
            .compute
            .value()
    };
    assert!(t(0) < 0.6 * t(31), "{} vs {}", t(0), t(31));
    // KV: 32 layers × K and V × 8 heads × 128 at 1 byte.
    assert_eq!(m.kv_bytes_per_token(Dtype::Bf16), 32.0 * 2.0 * 8.0 * 128.0);
}

/// LLaVA-1.5-7B (Vicuna-7B's Llama-2 shape, REFERENCE.md §PyramidDrop) with `extra` keys.
fn llava(extra: &str) -> ModelSpec {
    let text = format!(
        "name = \"v\"\nmodel_type = \"llama\"\nhidden_size = 4096\nnum_hidden_layers = 32\n\
         num_attention_heads = 32\nintermediate_size = 11008\nvocab_size = 32000\n\
         torch_dtype = \"float16\"\nimage_tokens = 576\n{extra}"
    );
    load_model_text(Path::new("v.toml"), text.into()).unwrap()
}

#[test]
fn pyramid_drop_defaults_cut_linear_flops_on_image_tokens_by_53_percent() {
    // PyramidDrop: after layers 8, 16 and 24 keep λ = 0.5 of the image tokens kept before.
    let m = llava("image_drop_layers = [8, 16, 24]\nimage_drop_ratio = 0.5\n");
    let linear = |o: &Op| matches!(o.kind, OpKind::Gemm { .. }) && o.layer.is_some();
    // A prompt of its 576 image tokens only.
    let b = Batch::prefill(1, 576);
    let cut = 1.0 - flops(&m, &b, linear) / flops(&llava(""), &b, linear);
    // 8 layers each at 1, 1/2, 1/4, 1/8: 1 − 1.875/4 = 0.53125.
    assert!((cut - 0.53125).abs() < 1e-12, "{cut}");
    assert!((cut - 0.53).abs() < 0.005);
    // KV: a 576 + 64-token prompt holds 640, 352, 208 and 136 tokens in each group of 8 layers.
    let f = Footprint::new(&m, Parallelism { tp: 1, ep: 1 }, bf16());
    let per_layer = 2.0 * 32.0 * 128.0 * 2.0;
    let held = 8.0 * (640.0 + 352.0 + 208.0 + 136.0) * per_layer;
    assert_eq!(f.kv_held(&m, [640]).value(), held);
    // Decode reads the kept keys only.
    let g = build_iteration(&m, &Batch::decode(1, 641), 1, bf16(), &Routing::Uniform).unwrap();
    let keys: Vec<u64> = g
        .ops()
        .filter_map(|o| match o.kind {
            OpKind::AttnDecode { kv_tokens, .. } => Some(kv_tokens),
            _ => None,
        })
        .collect();
    assert_eq!((keys[0], keys[8], keys[16], keys[31]), (641, 353, 209, 137));
}

#[test]
fn a_bad_variant_key_is_an_input_error_at_its_line() {
    let base = "name = \"m\"\nmodel_type = \"mixtral\"\nhidden_size = 4096\n\
                num_hidden_layers = 32\nnum_attention_heads = 32\nnum_key_value_heads = 8\n\
                intermediate_size = 14336\nvocab_size = 32000\nnum_local_experts = 8\n\
                num_experts_per_tok = 2\ntorch_dtype = \"bfloat16\"\n";
    let cases = [
        ("moe_zero_experts = 2\n", "m.toml:12", "moe_tau"),
        ("weight_bits = 5\n", "m.toml:12", "weight_bits"),
        (
            "moe_k_mean = 1.5\nmoe_k_pmf = [0.5, 0.5]\n",
            "m.toml:13",
            "moe_k_pmf",
        ),
        ("image_keep = 0.5\n", "m.toml:12", "image_tokens"),
        ("quant_group_size = 128\n", "m.toml:12", "quant_scale_bits"),
    ];
    for (extra, line, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.toml"), format!("{base}{extra}")).unwrap();
        let r = dyad_in(
            dir.path(),
            &["run", "--model", "m.toml", "--batch", "1"],
            None,
        );
        expect_input_error(&r, &[line, needle]);
    }
}

#[test]
fn a_sweep_axis_over_moe_tau_sets_it_in_the_variant_file() {
    // The MoE++ overlay of Mixtral on Duplex, decode of 4 sequences under balanced routing: at
    // τ = 0.25 the FFN share is 2/6 of the slots, at τ = 1 it is 8/12, so fewer experts read
    // their weights and the step is shorter.
    let d = tempfile::tempdir().unwrap();
    let file = format!("{ROOT}/workloads/models/variants/mixtral-8x7b-moepp.toml");
    let scenario = small_scenario(
        "duplex",
        "seed = 3\npolicy = \"duplex\"",
        "mode = \"uniform\"",
    )
    .replace(&format!("{ROOT}/workloads/models/mixtral-8x7b.json"), &file);
    std::fs::write(d.path().join("base.toml"), scenario).unwrap();
    let p = d.path().join("sweep.toml");
    let body =
        "scenario = \"base.toml\"\n[[axis]]\nkey = \"model.moe_tau\"\nvalues = [0.25, 1.0]\n";
    std::fs::write(&p, body).unwrap();
    let s = Sweep::load(&p).unwrap();
    let share: Vec<f64> = s
        .points()
        .iter()
        .map(|pt| {
            let m = s.scenario(pt).unwrap().model;
            m.plans[0].knobs.zc.unwrap().ffn_share(8)
        })
        .collect();
    assert!((share[0] - 1.0 / 3.0).abs() < 1e-9 && (share[1] - 2.0 / 3.0).abs() < 1e-9);
    let out = d.path().join("p.jsonl");
    let opts = RunOptions {
        jsonl: out.clone(),
        jobs: Some(2),
        ..RunOptions::default()
    };
    sweep::run(&s, &opts).unwrap();
    let mut r = sweep::read_records(&out).unwrap();
    r.sort_by_key(|r| r.index);
    let tbt: Vec<f64> = r
        .iter()
        .map(|r| r.metrics.as_ref().unwrap()["tbt_s.p50"])
        .collect();
    assert!(tbt[0] < tbt[1], "{tbt:?}");
}

#[test]
fn validate_runs_moepp_top_p_and_dropped_image_tokens_on_reference_kernels() {
    // Every op of each variant's scaled-down iteration, whole and split, against the kernels:
    // the constant experts' gate and mix, the router over 12 scored experts, and the layers
    // that see fewer image tokens. (Quantized layers are not: no reference GEMM reads int4.)
    for f in [
        "mixtral-8x7b-moepp",
        "mixtral-8x7b-top-p",
        "llava-1.5-7b-pyramiddrop",
    ] {
        let path = format!("workloads/models/variants/{f}.toml");
        let r = dyad(&["validate", "--model", &path, "--tp", "1,2"]);
        assert_eq!(r.status, 0, "{f}: {}{}", r.stdout, r.stderr);
        if f.ends_with("moepp") {
            assert!(r.stdout.contains("const_expert_10"), "{}", r.stdout);
        }
    }
}
