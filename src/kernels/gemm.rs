//! GEMM: `C[m,n] = A[m,k] · B[k,n]`, row-major, f32 accumulation (`matrixmultiply` does the inner
//! loop). A is the activation stream, B the weight stream, C the activation output.
//!
//! Tensor-parallel parts: a column-parallel part computes a subset of C's columns from the same
//! columns of B; a row-parallel part multiplies a subset of the reduction index (A's columns, B's
//! rows) and writes a partial C that an all-reduce sums.

use std::ops::Range;

use super::{Count, Elem, elems, load, store};

/// Every index in `ranges`, in order.
pub fn expand(ranges: &[Range<u64>]) -> Vec<usize> {
    ranges
        .iter()
        .flat_map(|r| r.start as usize..r.end as usize)
        .collect()
}

/// C = A·B on f32 row-major matrices, adding 2·m·n·k to `flops` (one multiply and one add per
/// term of each of the m·n dot products of length k).
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], flops: &mut u64) -> Vec<f32> {
    // Checked sizes: a product that wrapped could match a short slice and send the `unsafe`
    // call below past its end.
    assert!(
        a.len() == elems(&[m, k]) && b.len() == elems(&[k, n]),
        "gemm operand sizes"
    );
    let mut c = vec![0f32; elems(&[m, n])];
    if m > 0 && n > 0 && k > 0 {
        // SAFETY: the slices hold m·k, k·n and m·n elements (products checked above, without
        // wrapping), laid out row-major with the strides given, so every access is in bounds;
        // each stride is at most a slice's length, so it fits an isize.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
    *flops += 2 * elems(&[m, n, k]) as u64;
    c
}

/// The reference GEMM on stored operands: loads A (activations) and B (weights) once, multiplies
/// in f32, stores C rounded to `E`.
pub fn gemm<E: Elem>(m: usize, k: usize, n: usize, a: &[E], b: &[E], c: &mut Count) -> Vec<E> {
    let a = load(a, &mut c.act_in);
    let b = load(b, &mut c.weights);
    let out = sgemm(m, k, n, &a, &b, &mut c.flops);
    store(&out, &mut c.act_out)
}

/// Gathers columns `cols` of a row-major [rows, n] matrix.
fn gather_cols<E: Elem>(x: &[E], rows: usize, n: usize, cols: &[usize]) -> Vec<E> {
    let mut out = Vec::with_capacity(elems(&[rows, cols.len()]));
    for r in 0..rows {
        out.extend(cols.iter().map(|&j| x[r * n + j]));
    }
    out
}

/// A column-parallel part: the columns `cols` of C (an [m, |cols|] matrix), reading only those
/// columns of B.
pub fn gemm_columns<E: Elem>(
    (m, k, n): (usize, usize, usize),
    a: &[E],
    b: &[E],
    cols: &[Range<u64>],
    c: &mut Count,
) -> Vec<E> {
    let idx = expand(cols);
    let b_part = gather_cols(b, k, n, &idx);
    gemm(m, k, idx.len(), a, &b_part, c)
}

/// A row-parallel part: A[:, ks] · B[ks, :], a partial [m, n] C.
pub fn gemm_inner<E: Elem>(
    (m, k, n): (usize, usize, usize),
    a: &[E],
    b: &[E],
    ks: &[Range<u64>],
    c: &mut Count,
) -> Vec<E> {
    let idx = expand(ks);
    let a_part = gather_cols(a, m, k, &idx);
    let b_part: Vec<E> = idx
        .iter()
        .flat_map(|&r| b[r * n..(r + 1) * n].iter().copied())
        .collect();
    gemm(m, idx.len(), n, &a_part, &b_part, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn two_by_two_product_by_hand() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let mut c = Count::default();
        let out = gemm::<f32>(2, 2, 2, &[1., 2., 3., 4.], &[5., 6., 7., 8.], &mut c);
        assert_eq!(out, vec![19., 22., 43., 50.]);
        assert_eq!(c.flops, 16);
        assert_eq!((c.act_in, c.weights, c.act_out), (16, 16, 16));
    }

    #[test]
    fn bf16_operands_count_two_bytes_and_round_the_output() {
        let mut c = Count::default();
        let a: Vec<bf16> = [1.0f32, 1.0].iter().map(|&x| bf16::from_f32(x)).collect();
        let b: Vec<bf16> = [1.0f32, 1.0 / 256.0]
            .iter()
            .map(|&x| bf16::from_f32(x))
            .collect();
        // 1 + 2^-8 is exact in f32 and rounds to 1 in bf16 (ties to even).
        let out = gemm(1, 2, 1, &a, &b, &mut c);
        assert_eq!(out[0].to_f32(), 1.0);
        assert_eq!((c.act_in, c.weights, c.act_out, c.flops), (4, 4, 2, 4));
    }

    #[test]
    fn column_and_inner_parts_rebuild_the_product() {
        let r = |a: u64, b: u64| Range { start: a, end: b };
        let a = [1., 2., 3., 4., 5., 6.]; // 2x3
        let b = [1., 0., 2., 0., 1., 3., 1., 1., 0.]; // 3x3
        let mut c = Count::default();
        let full = gemm::<f32>(2, 3, 3, &a, &b, &mut c);
        let mut cc = Count::default();
        let right = gemm_columns((2, 3, 3), &a, &b, &[r(1, 3)], &mut cc);
        assert_eq!(right, vec![full[1], full[2], full[4], full[5]]);
        assert_eq!(cc.weights, 3 * 2 * 4);
        let (mut c1, mut c2) = (Count::default(), Count::default());
        let p1 = gemm_inner((2, 3, 3), &a, &b, &[r(0, 1)], &mut c1);
        let p2 = gemm_inner((2, 3, 3), &a, &b, &[r(1, 3)], &mut c2);
        let sum: Vec<f32> = p1.iter().zip(&p2).map(|(x, y)| x + y).collect();
        assert_eq!(sum, full);
        assert_eq!(c1.flops + c2.flops, c.flops);
    }
}
