//! The reference kernels against golden vectors from an independent implementation (numpy,
//! `tests/golden/gen.py`), and proof that the comparison catches a wrong kernel.

use dyad::kernels::attention::{AttnInput, AttnPart, Heads, Mask, Seq, attend_masked, causal};
use dyad::kernels::elementwise::{add_rmsnorm, rope, softmax_rows, swiglu};
use dyad::kernels::gemm::gemm;
use dyad::kernels::moe::{Expert, combine, expert_ffn, route};
use dyad::kernels::{Count, Elem, normalized_error, to_elems, to_f32s};
use half::{bf16, f16};
use serde_json::Value;

struct Case(Value);

impl Case {
    fn load(name: &str) -> Case {
        let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Case(serde_json::from_str(&text).unwrap())
    }

    fn list(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn input(&self, k: &str) -> Vec<f32> {
        Self::list(&self.0["inputs"][k])
    }

    fn output(&self, k: &str) -> Vec<f32> {
        Self::list(&self.0["outputs"][k])
    }

    fn dim(&self, k: &str) -> usize {
        self.0["dims"][k].as_u64().unwrap() as usize
    }

    fn dims(&self, k: &str) -> Vec<usize> {
        let v = self.0["dims"][k].as_array().unwrap();
        v.iter().map(|x| x.as_u64().unwrap() as usize).collect()
    }
}

fn gemm_error<E: Elem>(name: &str) -> f64 {
    let c = Case::load(name);
    let (m, k, n) = (c.dim("m"), c.dim("k"), c.dim("n"));
    let (a, b) = (to_elems::<E>(&c.input("a")), to_elems::<E>(&c.input("b")));
    // The stored inputs are exactly representable: conversion must not change them.
    assert_eq!(
        to_f32s(&a),
        c.input("a"),
        "{name}: inputs not in {:?}",
        E::DTYPE
    );
    let out = gemm(m, k, n, &a, &b, &mut Count::default());
    normalized_error(&to_f32s(&out), &c.output("c"))
}

#[test]
fn gemm_matches_numpy_in_each_element_type() {
    assert!(gemm_error::<f32>("gemm_f32") < 1e-6);
    // Products summed in f32 then rounded once: within half an ulp of the stored type, relative
    // to the largest output.
    assert!(gemm_error::<f16>("gemm_f16") < 2f64.powi(-10));
    assert!(gemm_error::<bf16>("gemm_bf16") < 2f64.powi(-7));
}

/// The attention case `name` run with `mask`: its normalised error against numpy's causal answer.
fn attention_error(name: &str, mask: Mask) -> f64 {
    let c = Case::load(name);
    let shape = Heads {
        heads: c.dim("heads"),
        kv_heads: c.dim("kv_heads"),
        head_dim: c.dim("head_dim"),
    };
    let seqs: Vec<Seq> = c
        .dims("ctx")
        .into_iter()
        .zip(c.dims("q_len"))
        .map(|(ctx, q_len)| Seq { ctx, q_len })
        .collect();
    let x = AttnInput::<f32> {
        q: c.input("q"),
        k_new: c.input("k_new"),
        v_new: c.input("v_new"),
        k_cache: (0..seqs.len())
            .map(|s| c.input(&format!("k_cache{s}")))
            .collect(),
        v_cache: (0..seqs.len())
            .map(|s| c.input(&format!("v_cache{s}")))
            .collect(),
        shape,
        seqs,
    };
    let part = AttnPart {
        heads: 0..shape.heads,
        keys: None,
    };
    let out = attend_masked(&x, &part, mask, &mut Count::default());
    normalized_error(&out.out, &c.output("out"))
}

#[test]
fn attention_matches_numpy_for_gqa_decode_and_mqa_and_mha_prefill() {
    for name in ["attn_decode_gqa", "attn_prefill_mqa", "attn_prefill_mha"] {
        let e = attention_error(name, causal);
        assert!(e < 1e-5, "{name}: {e}");
    }
}

#[test]
fn an_off_by_one_causal_mask_is_caught() {
    // Letting each query see one key past its own position (or hiding its own key) changes
    // every prefill row but the last of each chunk: the golden check must fail on it.
    fn peeks_ahead(q: usize, k: usize) -> bool {
        k <= q + 1
    }
    fn skips_itself(q: usize, k: usize) -> bool {
        k < q
    }
    for name in ["attn_prefill_mqa", "attn_prefill_mha"] {
        assert!(attention_error(name, peeks_ahead) > 1e-2, "{name}");
        assert!(attention_error(name, skips_itself) > 1e-2, "{name}");
    }
}

#[test]
fn rmsnorm_rope_swiglu_and_softmax_match_numpy() {
    let c = Case::load("rmsnorm_f32");
    let mut n = Count::default();
    let (y, r) = add_rmsnorm::<f32>(
        c.dim("h"),
        &c.input("x"),
        &c.input("residual"),
        &c.input("gain"),
        true,
        &mut n,
    );
    assert!(normalized_error(&y, &c.output("y")) < 1e-5);
    assert!(normalized_error(&r.unwrap(), &c.output("residual_out")) < 1e-6);

    let c = Case::load("rope_f32");
    let (h, d) = (c.dim("heads"), c.dim("head_dim"));
    let base = c.0["dims"]["base"].as_f64().unwrap() as f32;
    let y = rope::<f32>(&c.input("x"), (h, d), 0..h, &c.dims("pos"), base, &mut n);
    assert!(normalized_error(&y, &c.output("y")) < 1e-5);

    let c = Case::load("swiglu_f32");
    let inner = c.dim("inner");
    let cols: Vec<usize> = (0..inner).collect();
    let y = swiglu::<f32>(&c.input("gate"), &c.input("up"), inner, &cols, &mut n);
    assert!(normalized_error(&y, &c.output("y")) < 1e-5);

    let c = Case::load("softmax_f32");
    let mut f = 0;
    let y = softmax_rows(&c.input("x"), c.dim("n"), &mut f);
    assert!(normalized_error(&y, &c.output("y")) < 1e-5);
}

#[test]
fn moe_routing_experts_and_combine_match_numpy() {
    let c = Case::load("moe_f32");
    let (h, inner, ne, k) = (c.dim("h"), c.dim("inner"), c.dim("experts"), c.dim("top_k"));
    let x = c.input("x");
    let mut n = Count::default();
    let logits = gemm::<f32>(x.len() / h, h, ne, &x, &c.input("router"), &mut n);
    let r = route(&logits, ne, k, &mut n);
    let ids: Vec<usize> = r.choice.iter().map(|(e, _)| *e).collect();
    let want: Vec<usize> = c.output("ids").iter().map(|&v| v as usize).collect();
    assert_eq!(ids, want);
    let w: Vec<f32> = r.choice.iter().map(|(_, w)| *w).collect();
    assert!(normalized_error(&w, &c.output("weights")) < 1e-5);
    let (g, u, d) = (c.input("gate"), c.input("up"), c.input("down"));
    let all: Vec<usize> = (0..inner).collect();
    let outs: Vec<Vec<f32>> = (0..ne)
        .map(|e| {
            let w = Expert {
                gate: g[e * h * inner..(e + 1) * h * inner].to_vec(),
                up: u[e * h * inner..(e + 1) * h * inner].to_vec(),
                down: d[e * inner * h..(e + 1) * inner * h].to_vec(),
            };
            expert_ffn(&x, &r.tokens_of(e), &w, (h, inner), &all, &mut n)
        })
        .collect();
    let y = combine(&r, &outs, h, &mut n);
    assert!(normalized_error(&y, &c.output("y")) < 1e-5);
}
