//! Closed-form work of ops.

use super::*;

fn bf16() -> Precision {
    Precision::uniform(Dtype::Bf16)
}

#[test]
fn gemm_work_is_2mnk() {
    let op = Op::new(
        "x",
        None,
        OpKind::Gemm {
            m: 64,
            n: 6144,
            k: 4096,
            batch: 1,
        },
        bf16(),
    );
    let w = op.work();
    assert_eq!(w.flops.value(), 2.0 * 64.0 * 6144.0 * 4096.0);
    assert_eq!(w.bytes.weights.value(), 6144.0 * 4096.0 * 2.0);
    assert_eq!(w.bytes.act_in.value(), 64.0 * 4096.0 * 2.0);
    assert_eq!(w.bytes.act_out.value(), 64.0 * 6144.0 * 2.0);
}

#[test]
fn weight_only_int4_computes_in_bf16() {
    let p = Precision {
        weights: Dtype::Int4,
        activations: Dtype::Bf16,
        kv: Dtype::Bf16,
        scales: None,
    };
    let op = Op::new(
        "x",
        None,
        OpKind::Gemm {
            m: 1,
            n: 8,
            k: 8,
            batch: 1,
        },
        p,
    );
    assert_eq!(op.work().compute, Dtype::Bf16);
    assert_eq!(op.work().bytes.weights.value(), 32.0);
}
