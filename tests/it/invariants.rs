//! Physical invariants of the cost model, over random ops.

use dyad::config::load_arch;
use dyad::hw::{System, Timing};
use dyad::model::{Op, OpKind, Precision};
use dyad::units::BytesPerSecond;
use dyad::work::Dtype;
use proptest::prelude::*;

fn h100() -> System {
    load_arch(concat!(env!("CARGO_MANIFEST_DIR"), "/arch/h100.toml").as_ref()).unwrap()
}

fn op_kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        (1u64..8192, 1u64..16384, 1u64..16384, 1u64..4).prop_map(|(m, n, k, batch)| OpKind::Gemm {
            m,
            n,
            k,
            batch
        }),
        (1u64..256, 1u64..32768, 1u64..8, 1u64..5).prop_map(|(seqs, kv, g, r)| {
            OpKind::AttnDecode {
                seqs,
                kv_tokens: seqs * kv,
                heads: g * r,
                kv_heads: g,
                head_dim: 128,
            }
        }),
        (1u64..1 << 28, 1u64..4, 0u64..3).prop_map(|(elements, reads, writes)| {
            OpKind::Elementwise {
                elements,
                reads,
                writes,
                flops_per_element: 1,
                access: None,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn more_bandwidth_is_never_slower(kind in op_kind(), factor in 1.0f64..8.0) {
        let base = h100();
        let mut fast = base.clone();
        fast.xpu.memory.bandwidth = BytesPerSecond(base.xpu.memory.bandwidth.value() * factor);
        let w = Op::new("x", None, kind, Precision::uniform(Dtype::Bf16)).work();
        let (t0, t1) = (base.cost(&w, Timing::Kernel).unwrap(), fast.cost(&w, Timing::Kernel).unwrap());
        prop_assert!(t1.time <= t0.time);
    }

    #[test]
    fn time_is_positive_and_at_least_each_bound(kind in op_kind()) {
        let w = Op::new("x", None, kind, Precision::uniform(Dtype::Bf16)).work();
        let c = h100().cost(&w, Timing::Kernel).unwrap();
        prop_assert!(c.time.value() > 0.0);
        prop_assert!(c.time >= c.compute && c.time >= c.memory && c.time >= c.overhead);
        let host = h100().cost(&w, Timing::Host).unwrap();
        prop_assert!(host.time > c.time);
    }

    #[test]
    fn fp8_is_never_slower_than_bf16(kind in op_kind()) {
        let sys = h100();
        let t = |d| sys.cost(&Op::new("x", None, kind.clone(), Precision::uniform(d)).work(), Timing::Kernel).unwrap().time;
        prop_assert!(t(Dtype::Fp8) <= t(Dtype::Bf16));
    }
}

#[test]
fn an_all_reduce_across_nodes_costs_more_than_within_one() {
    use dyad::work::{CollectiveKind, CollectiveWork, OpClass, Streams, Work};
    let sys = load_arch("h100-2node".as_ref()).unwrap();
    let ar = |p: u32| Work {
        class: OpClass::Collective,
        compute: Dtype::Bf16,
        flops: dyad::units::Flops(0.0),
        bytes: Streams::default(),
        collective: Some(CollectiveWork {
            kind: CollectiveKind::AllReduce,
            message: dyad::units::Bytes(64e6),
            participants: p,
        }),
        gemm: None,
        elementwise: None,
    };
    let t8 = sys.cost(&ar(8), Timing::Kernel).unwrap().time.value();
    let t16 = sys.cost(&ar(16), Timing::Kernel).unwrap().time.value();
    // 16 devices: the in-node ring plus 1/8 of the message over the 50 GB/s network:
    // at least 64 MB / 8 / 50 GB/s more than 8 devices in one node.
    assert!(t16 - t8 >= 64e6 / 8.0 / 50e9, "{t8} {t16}");
    assert!(
        sys.cost(&ar(32), Timing::Kernel).is_err(),
        "only 16 devices"
    );
    assert_eq!(sys.devices(), 16);
}
