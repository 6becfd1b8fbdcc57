//! PIM devices and mapping policies: dispatch by Op/B, expert co-processing, energy by path.

use dyad::config::load_arch;
use dyad::hw::{Timing, Unit};
use dyad::map::{Choices, Policy, place, split_experts};
use dyad::model::{Op, OpKind, Precision};
use dyad::work::Dtype;
use proptest::prelude::*;

fn bf16(kind: OpKind) -> Op {
    Op::new("x", None, kind, Precision::uniform(Dtype::Bf16))
}

fn choices(op: &Op) -> Choices {
    let sys = load_arch("duplex".as_ref()).unwrap();
    let w = op.work();
    Choices {
        xpu: sys.cost(&w, Timing::Kernel).unwrap(),
        pim: Some(sys.cost_on(Unit::Pim, &w, Timing::Kernel).unwrap()),
    }
}

#[test]
fn duplex_logic_pim_matches_the_paper() {
    let sys = load_arch("duplex".as_ref()).unwrap();
    let pim = sys.pim.as_ref().unwrap();
    // 5 stacks x 32 modules x 512 MACs x 2 x 650 MHz = 106.5 TFLOPS; 4 x 3.35 TB/s internal.
    assert!((pim.peak().value() / 106.5e12 - 1.0).abs() < 0.001);
    assert!((sys.bank_bandwidth().value() / 13.4e12 - 1.0).abs() < 1e-9);
    // Compute to bandwidth: 8 Op/B (Duplex).
    assert!((pim.peak().value() / sys.bank_bandwidth().value() / 8.0 - 1.0).abs() < 0.01);
    let bank = load_arch("bank-pim".as_ref()).unwrap();
    let b = bank.pim.as_ref().unwrap();
    // Bank-PIM: 16x bandwidth at about 1 Op/B.
    assert!((b.peak().value() / bank.bank_bandwidth().value() - 1.0).abs() < 0.01);
}

#[test]
fn dispatch_sends_low_op_b_to_pim_and_high_op_b_to_the_xpu() {
    // A GEMM of m tokens against a 4096 x 14336 weight has Op/B = m / (1 + m (1/4096 + 1/14336)).
    let low = bf16(OpKind::Gemm {
        m: 2,
        n: 14336,
        k: 4096,
        batch: 1,
    });
    let high = bf16(OpKind::Gemm {
        m: 330,
        n: 14336,
        k: 4096,
        batch: 1,
    });
    assert!((low.work().op_b() - 2.0).abs() < 0.01);
    assert!((high.work().op_b() / 300.0 - 1.0).abs() < 0.05);
    let ops = [&low, &high];
    let units = place(Policy::Dispatch, &ops, &[choices(&low), choices(&high)]);
    assert_eq!(units, vec![Unit::Pim, Unit::Xpu]);
    assert_eq!(
        place(Policy::AllXpu, &ops, &[choices(&low), choices(&high)]),
        vec![Unit::Xpu; 2]
    );
}

#[test]
fn pim_energy_per_bit_follows_the_path() {
    let sys = load_arch("duplex".as_ref()).unwrap();
    let w = bf16(OpKind::Gemm {
        m: 1,
        n: 4096,
        k: 4096,
        batch: 1,
    })
    .work();
    let bits = w.bytes.total().value() * 8.0;
    let x = sys.energy_on(Unit::Xpu, &w).unwrap();
    let p = sys.energy_on(Unit::Pim, &w).unwrap();
    // FGDRAM: 3.48 (xPU path) and 1.81 (Logic-PIM path) pJ/bit, each + 0.11 activation.
    assert!((x.dram_xpu / bits / 3.59e-12 - 1.0).abs() < 1e-9);
    assert!((p.dram_pim / bits / 1.92e-12 - 1.0).abs() < 1e-9);
    assert_eq!(x.mac, p.mac);
}

proptest! {
    #[test]
    fn expert_split_is_never_slower_than_either_unit_alone(
        experts in prop::collection::vec((1u64..500, 1e-6f64..1e-3, 1e-6f64..1e-3), 1..64)
    ) {
        let units = split_experts(&experts);
        let side = |u: Unit| -> f64 {
            experts.iter().zip(&units).filter(|(_, x)| **x == u).map(|(e, _)| if u == Unit::Pim { e.2 } else { e.1 }).sum()
        };
        let split = side(Unit::Xpu).max(side(Unit::Pim));
        let all_xpu: f64 = experts.iter().map(|e| e.1).sum();
        let all_pim: f64 = experts.iter().map(|e| e.2).sum();
        prop_assert!(split <= all_xpu * (1.0 + 1e-12));
        prop_assert!(split <= all_pim * (1.0 + 1e-12));
        // Every expert is placed exactly once: the split conserves the experts' FLOPs.
        prop_assert_eq!(units.len(), experts.len());
    }
}
