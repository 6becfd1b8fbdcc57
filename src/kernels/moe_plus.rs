//! MoE++'s zero-computation experts (arXiv 2410.07348 §3, REFERENCE.md §MoE++): a zero expert
//! outputs 0, a copy expert outputs its input, a constant expert outputs `α1·x + α2·v` with
//! `[α1, α2] = softmax(x·W_c)`. Their outputs join the FFN experts' in the weighted combine
//! ([`super::moe::combine`]), so a token routed to two of them runs no FFN.

use super::elementwise::softmax_rows;
use super::gemm::sgemm;
use super::{Count, Elem, elems, load, store};
use crate::model::ExpertKind;

/// A constant expert's tensors.
#[derive(Debug, Clone)]
pub struct ConstExpert<E> {
    /// Gate `W_c` [hidden, 2].
    pub w_c: Vec<E>,
    /// The trained vector `v` [hidden].
    pub v: Vec<E>,
}

/// A constant expert on the rows `rows` of x [tokens, h], counted as the graph charges it
/// (`const_gate_E`, `const_expert_E`): the gate GEMM, 4·h FLOPs per token, with `W_c` its
/// weights, and the mix, 3 FLOPs per element; the softmax of the two scores (4 per score) is
/// counted apart, in `aux_flops`, and `v` (h elements) with the weights.
pub fn constant_expert<E: Elem>(
    x: &[E],
    rows: &[usize],
    w: &ConstExpert<E>,
    h: usize,
    c: &mut Count,
) -> Vec<E> {
    let xs: Vec<E> = rows
        .iter()
        .flat_map(|&r| x[r * h..(r + 1) * h].iter().copied())
        .collect();
    let xs = load(&xs, &mut c.act_in);
    let wc = load(&w.w_c, &mut c.weights);
    let v = load(&w.v, &mut c.weights);
    let logits = sgemm(rows.len(), h, 2, &xs, &wc, &mut c.flops);
    let a = softmax_rows(&logits, 2, &mut c.aux_flops);
    mix(&xs, &a, &v, h, c)
}

/// The constant expert's mix of loaded rows `xs` [n, h]: `α1·x + α2·v` per row with `alpha`
/// [n, 2], 3 FLOPs per element, the output stored.
fn mix<E: Elem>(xs: &[f32], alpha: &[f32], v: &[f32], h: usize, c: &mut Count) -> Vec<E> {
    let mut y = vec![0f32; xs.len()];
    for (i, row) in y.chunks_mut(h).enumerate() {
        let (a1, a2) = (alpha[2 * i], alpha[2 * i + 1]);
        for (j, o) in row.iter_mut().enumerate() {
            *o = a1 * xs[i * h + j] + a2 * v[j];
        }
    }
    c.flops += 3 * y.len() as u64;
    store(&y, &mut c.act_out)
}

/// The `const_expert_E` op alone: the mix of rows `x` [n, h] read once, given each row's two
/// weights `alpha` (from its gate, `const_gate_E`) and `v`; neither the two weights per row nor
/// `v` (h elements) is charged, beside the row.
pub fn constant_mix<E: Elem>(x: &[E], alpha: &[f32], v: &[f32], h: usize, c: &mut Count) -> Vec<E> {
    let xs = load(x, &mut c.act_in);
    mix(&xs, alpha, v, h, c)
}

/// The output rows of a zero-computation expert of `kind` (with its tensors, for a constant
/// one) on the rows `rows` of x: zeros, the rows themselves, or [`constant_expert`]'s. Zero and
/// copy experts do no arithmetic and move nothing the combine does not read.
pub fn zero_computation<E: Elem>(
    kind: ExpertKind,
    x: &[E],
    rows: &[usize],
    constant: Option<&ConstExpert<E>>,
    h: usize,
    c: &mut Count,
) -> Vec<E> {
    match (kind, constant) {
        (ExpertKind::Constant, Some(w)) => constant_expert(x, rows, w, h, c),
        (ExpertKind::Copy, _) => rows
            .iter()
            .flat_map(|&r| x[r * h..(r + 1) * h].iter().copied())
            .collect(),
        _ => vec![E::default(); elems(&[rows.len(), h])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::moe::{Routing, combine};
    use crate::model::{Op, OpKind, Precision};
    use crate::work::Dtype;

    #[test]
    fn zero_copy_and_constant_experts_by_hand() {
        // h = 2; token 0 = [1, 2] goes to the zero (0.25) and copy (0.75) experts, token 1 =
        // [3, -1] to the constant expert (1.0). W_c = [[1, 0], [0, 1]]: logits = x, so token 1's
        // α = softmax(3, -1); v = [10, 20].
        let h = 2;
        let x = vec![1f32, 2., 3., -1.];
        let w = ConstExpert {
            w_c: vec![1f32, 0., 0., 1.],
            v: vec![10f32, 20.],
        };
        let r = Routing {
            experts: 3,
            top_k: 1,
            choice: vec![(0, 0.25), (1, 0.75), (2, 1.0)],
        };
        // Expert ids 0 zero, 1 copy, 2 constant; each token's rows in dispatch order.
        let kinds = [ExpertKind::Zero, ExpertKind::Copy, ExpertKind::Constant];
        let rows = [vec![0], vec![0], vec![1]];
        let mut c = Count::default();
        let outs: Vec<Vec<f32>> = (0..3)
            .map(|e| zero_computation(kinds[e], &x, &rows[e], Some(&w), h, &mut c))
            .collect();
        assert_eq!(outs[0], vec![0.0, 0.0]);
        assert_eq!(outs[1], vec![1.0, 2.0]);
        let a1 = 1.0 / (1.0 + (-4f32).exp());
        let a2 = 1.0 - a1;
        let want = [a1 * 3.0 + a2 * 10.0, -a1 + a2 * 20.0];
        assert!(outs[2].iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5));
        // Only the constant expert computes: 4·h for its gate, 3·h for the mix, on one token.
        assert_eq!((c.flops, c.aux_flops), (4 * 2 + 3 * 2, 4 * 2));
        // The combine of token 0 (two choices of top-1 rows laid out as one each) is 0.75·x.
        let two = Routing {
            experts: 3,
            top_k: 2,
            choice: vec![(0, 0.25), (1, 0.75)],
        };
        let y = combine(&two, &outs, h, &mut Count::default());
        assert_eq!(y, vec![0.75, 1.5]);
        assert_eq!(r.counts(), vec![1, 1, 1]);
    }

    #[test]
    fn a_constant_expert_counts_what_the_graph_charges() {
        // 5 tokens of h = 64 in bf16: the gate GEMM [5, 64]·[64, 2] and the mix over 5·64.
        let (n, h) = (5usize, 64usize);
        let x: Vec<half::bf16> = (0..n * h)
            .map(|i| half::bf16::from_f32(i as f32 / 100.0))
            .collect();
        let w = ConstExpert {
            w_c: vec![half::bf16::from_f32(0.01); h * 2],
            v: vec![half::bf16::from_f32(1.0); h],
        };
        let mut c = Count::default();
        constant_expert(&x, &(0..n).collect::<Vec<_>>(), &w, h, &mut c);
        let p = Precision::uniform(Dtype::Bf16);
        let (n, h) = (n as u64, h as u64);
        let gate = Op::new(
            "g",
            None,
            OpKind::Gemm {
                m: n,
                n: 2,
                k: h,
                batch: 1,
            },
            p,
        )
        .work();
        let mix = OpKind::Elementwise {
            elements: n * h,
            reads: 1,
            writes: 1,
            flops_per_element: 3,
            access: None,
        };
        let mix = Op::new("m", None, mix, p).work();
        assert_eq!(c.flops as f64, gate.flops.value() + mix.flops.value());
        // W_c as the gate's weights, and v's h elements beside it.
        assert_eq!(
            c.weights as f64,
            gate.bytes.weights.value() + 2.0 * h as f64
        );
        assert_eq!(c.act_in as f64, mix.bytes.act_in.value());
    }
}
