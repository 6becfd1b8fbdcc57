//! Arch and model files: `extends`, presets, and the shipped files' datasheet values.

use dyad::config::{load_arch, load_model};
use dyad::work::Dtype;

use crate::util::root;

#[test]
fn shipped_archs_carry_datasheet_peaks() {
    let h100 = load_arch(&root("arch/h100.toml")).unwrap();
    assert_eq!(h100.xpu.peak[&Dtype::Bf16].value(), 989.4e12);
    assert_eq!(h100.xpu.memory.bandwidth.value(), 3.35e12);
    let a100 = load_arch(&root("arch/a100.toml")).unwrap();
    assert_eq!(a100.xpu.peak[&Dtype::Fp16].value(), 312e12);
    assert_eq!(a100.xpu.memory.bandwidth.value(), 2.039e12);
}

#[test]
fn h200_extends_h100_and_overrides_memory() {
    let h100 = load_arch(&root("arch/h100.toml")).unwrap();
    let h200 = load_arch(&root("arch/h200.toml")).unwrap();
    assert_eq!(h200.xpu.memory.bandwidth.value(), 4.8e12);
    assert_eq!(h200.xpu.memory.capacity.value(), 141e9);
    assert_eq!(h200.xpu.peak, h100.xpu.peak);
    assert_eq!(h200.xpu.gemm, h100.xpu.gemm);
    assert_eq!(h200.node, h100.node);
}

#[test]
fn presets_load_from_any_directory() {
    let a = load_arch("h200".as_ref()).unwrap();
    assert_eq!(a.xpu.memory.bandwidth.value(), 4.8e12);
    let m = load_model("mixtral-8x7b".as_ref()).unwrap();
    assert_eq!(m.moe.unwrap().experts, 8);
}

#[test]
fn shipped_models_match_their_config_json() {
    // Values: REFERENCE.md "Model configs" (HuggingFace config.json).
    let cases = [
        ("llama-2-7b", 4096, 32, 32, 32, 11008, 32000),
        ("llama-3-8b", 4096, 32, 32, 8, 14336, 128256),
        ("llama-2-70b", 8192, 80, 64, 8, 28672, 32000),
        ("llama-3-70b", 8192, 80, 64, 8, 28672, 128256),
        ("mixtral-8x7b", 4096, 32, 32, 8, 14336, 32000),
    ];
    for (name, hidden, layers, heads, kv, ffn, vocab) in cases {
        let m = load_model(&root(&format!("workloads/models/{name}.json"))).unwrap();
        assert_eq!(
            (
                m.hidden,
                m.layers(),
                m.heads,
                m.kv_heads,
                m.ffn_inner(0),
                m.vocab
            ),
            (hidden, layers, heads, kv, ffn, vocab),
            "{name}"
        );
        assert_eq!(m.head_dim, 128, "{name}");
    }
}

#[test]
fn llama3_70b_has_70_6_billion_parameters() {
    let m = load_model(&root("workloads/models/llama-3-70b.json")).unwrap();
    // Meta's model card: 70.6B parameters.
    assert!(
        (m.params() as f64 / 70.55e9 - 1.0).abs() < 0.005,
        "{}",
        m.params()
    );
}

#[test]
fn duplex_table_models_have_their_published_sizes() {
    // Duplex Table I (REFERENCE.md): GLaM 143B, Grok-1 314B, OPT 66B.
    for (name, billions) in [("glam", 143.0), ("grok-1", 314.0), ("opt-66b", 66.0)] {
        let m = load_model(name.as_ref()).unwrap();
        let p = m.params() as f64 / 1e9;
        assert!((p / billions - 1.0).abs() < 0.02, "{name}: {p:.1}B");
    }
    let glam = load_model("glam".as_ref()).unwrap();
    assert!(!glam.ffn_gated);
    assert_eq!(
        (0..4).map(|l| glam.is_moe_layer(l)).collect::<Vec<_>>(),
        [false, true, false, true]
    );
    let opt = load_model("opt-66b".as_ref()).unwrap();
    assert_eq!(
        (opt.kv_heads, opt.ffn_inner(0), opt.tie_embeddings),
        (72, 36864, true)
    );
}

/// `line` under `[xpu.tiling]` of an arch extending the H100's is refused, naming `key` and the file.
fn refused_under_tiling(line: &str, key: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    let base = root("arch/h100.toml");
    let text = format!(
        "extends = {:?}\nname = \"bad\"\n\n[xpu.tiling]\n{line}\n",
        base.to_str().unwrap()
    );
    std::fs::write(&path, text).unwrap();
    let e = load_arch(&path).unwrap_err().to_string();
    assert!(e.contains(key), "{e}");
    assert!(e.contains("bad.toml"), "{e}");
}

#[test]
fn a_negative_overlap_exponent_is_refused_naming_its_key_and_file() {
    let h100 = load_arch(&root("arch/h100.toml")).unwrap();
    assert_eq!(h100.xpu.tiling.as_ref().map(|t| t.overlap), Some(3.0));
    refused_under_tiling("overlap = -1.0", "xpu.tiling.overlap");
}

#[test]
fn a_negative_operand_reuse_at_half_rate_is_refused_naming_its_key_and_file() {
    let h100 = load_arch(&root("arch/h100.toml")).unwrap();
    assert_eq!(h100.xpu.tiling.as_ref().map(|t| t.reuse_half), Some(8.0));
    refused_under_tiling("reuse_half = -1.0", "xpu.tiling.reuse_half");
}

#[test]
fn a_stream_k_efficiency_outside_zero_to_one_is_refused_naming_its_key_and_file() {
    let h100 = load_arch(&root("arch/h100.toml")).unwrap();
    let t = h100.xpu.tiling.as_ref().unwrap();
    assert_eq!((t.stream_k_from, t.stream_k_efficiency), (1, 0.9));
    refused_under_tiling(
        "stream_k_efficiency = 1.5",
        "xpu.tiling.stream_k_efficiency",
    );
    refused_under_tiling(
        "stream_k_efficiency = 0.0",
        "xpu.tiling.stream_k_efficiency",
    );
    refused_under_tiling("stream_k_from = 0", "xpu.tiling.stream_k_from");
}
