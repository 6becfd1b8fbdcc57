//! Streaming kernels: embedding gather, residual add + RMSNorm, RoPE, the FFN activations
//! (SwiGLU, GeGLU, and the ungated GELU and ReLU) and a numerically stable softmax.

use std::ops::Range;

use super::{Count, Elem, elems, load, store};
use crate::model::Activation;

/// RMSNorm's ε (Llama and Mixtral configs: `rms_norm_eps` = 1e-5).
pub const RMS_EPS: f32 = 1e-5;

/// Gathers rows `ids` of an embedding table [vocab, h]. The model charges a gather as a streaming
/// op (rows in as activations in, rows out), so that is how it is counted.
pub fn embedding<E: Elem>(table: &[E], h: usize, ids: &[usize], c: &mut Count) -> Vec<E> {
    let mut out = Vec::with_capacity(elems(&[ids.len(), h]));
    for &i in ids {
        out.extend(load(&table[i * h..(i + 1) * h], &mut c.act_in));
    }
    store(&out, &mut c.act_out)
}

/// Residual add and RMSNorm over rows of width `h`: r' = x + r, y = r' / rms(r') · gain.
/// Returns y and, when `keep_residual`, r' (the next layer's residual). 5 FLOPs per element:
/// the add, the square, its accumulation, the scale by 1/rms and the gain.
pub fn add_rmsnorm<E: Elem>(
    h: usize,
    x: &[E],
    residual: &[E],
    gain: &[f32],
    keep_residual: bool,
    c: &mut Count,
) -> (Vec<E>, Option<Vec<E>>) {
    let x = load(x, &mut c.act_in);
    let r = load(residual, &mut c.act_in);
    let sum: Vec<f32> = x.iter().zip(&r).map(|(a, b)| a + b).collect();
    let mut y = vec![0f32; sum.len()];
    for (row, out) in sum.chunks(h).zip(y.chunks_mut(h)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
        let inv = 1.0 / (ms + RMS_EPS).sqrt();
        for ((o, v), g) in out.iter_mut().zip(row).zip(gain) {
            *o = v * inv * g;
        }
    }
    c.flops += 5 * sum.len() as u64;
    let y = store(&y, &mut c.act_out);
    let r = keep_residual.then(|| store(&sum, &mut c.act_out));
    (y, r)
}

/// Rotary position embedding (the rotate-half layout of HuggingFace Llama) of the heads `heads`
/// of x [tokens, n_heads, d], token i at position `pos[i]`: each pair (xⱼ, xⱼ₊d/2) turns by
/// pos·base^(−2j/d). 3 FLOPs per element (two products and a sum). Returns [tokens, |heads|, d].
pub fn rope<E: Elem>(
    x: &[E],
    (n_heads, d): (usize, usize),
    heads: Range<usize>,
    pos: &[usize],
    base: f32,
    c: &mut Count,
) -> Vec<E> {
    let half = d / 2;
    let mut out = Vec::with_capacity(elems(&[pos.len(), heads.len(), d]));
    for (t, &p) in pos.iter().enumerate() {
        for h in heads.clone() {
            let at = (t * n_heads + h) * d;
            let v = load(&x[at..at + d], &mut c.act_in);
            let mut r = vec![0f32; d];
            for j in 0..half {
                let theta = p as f32 * base.powf(-2.0 * j as f32 / d as f32);
                let (s, co) = theta.sin_cos();
                r[j] = v[j] * co - v[j + half] * s;
                r[j + half] = v[j] * s + v[j + half] * co;
            }
            out.extend(r);
        }
    }
    c.flops += 3 * out.len() as u64;
    store(&out, &mut c.act_out)
}

/// RMSNorm of each head of x [tokens, n_heads, d] in `heads` over its `d` elements, scaled by
/// `gain` [d] (Qwen3's and OLMoE's QK-norm). 4 FLOPs per element: the square, its sum, the
/// scale by 1/rms and the gain. Returns [tokens, |heads|, d].
pub fn head_rmsnorm<E: Elem>(
    x: &[E],
    (n_heads, d): (usize, usize),
    heads: Range<usize>,
    gain: &[f32],
    c: &mut Count,
) -> Vec<E> {
    let tokens = x.len() / elems(&[n_heads, d]).max(1);
    let mut out = Vec::with_capacity(elems(&[tokens, heads.len(), d]));
    for t in 0..tokens {
        for h in heads.clone() {
            let at = (t * n_heads + h) * d;
            let v = load(&x[at..at + d], &mut c.act_in);
            let ms = v.iter().map(|a| a * a).sum::<f32>() / d as f32;
            let inv = 1.0 / (ms + RMS_EPS).sqrt();
            out.extend(v.iter().zip(gain).map(|(a, g)| a * inv * g));
        }
    }
    c.flops += 4 * out.len() as u64;
    store(&out, &mut c.act_out)
}

/// Soft-capping `cap · tanh(x / cap)` of every element (Gemma-2's logits). 3 FLOPs per element:
/// the divide, the tanh and the multiply.
pub fn softcap<E: Elem>(x: &[E], cap: f32, c: &mut Count) -> Vec<E> {
    let v = load(x, &mut c.act_in);
    let out: Vec<f32> = v.iter().map(|a| cap * (a / cap).tanh()).collect();
    c.flops += 3 * out.len() as u64;
    store(&out, &mut c.act_out)
}

/// The SwiGLU activation silu(gate) · up on columns `cols` of [tokens, inner] gate and up
/// tensors. 5 FLOPs per element: negate, exp, add one, divide, multiply.
pub fn swiglu<E: Elem>(
    gate: &[E],
    up: &[E],
    inner: usize,
    cols: &[usize],
    c: &mut Count,
) -> Vec<E> {
    ffn_act(Activation::Silu, gate, Some(up), inner, cols, c)
}

/// An FFN's activation on columns `cols` of [tokens, inner] tensors: act(gate) · up in a gated
/// FFN (`up` given: SwiGLU, GeGLU), act(x) in a two-matrix one. FLOPs per element:
/// [`Activation::ffn_flops`].
pub fn ffn_act<E: Elem>(
    a: Activation,
    gate: &[E],
    up: Option<&[E]>,
    inner: usize,
    cols: &[usize],
    c: &mut Count,
) -> Vec<E> {
    let rows = gate.len() / inner.max(1);
    let pick = |x: &[E]| -> Vec<E> {
        (0..rows)
            .flat_map(|r| cols.iter().map(move |&j| x[r * inner + j]))
            .collect()
    };
    let g = load(&pick(gate), &mut c.act_in);
    let u = up.map(|u| load(&pick(u), &mut c.act_in));
    let y = act_mul(a, &g, u.as_deref(), &mut c.flops);
    store(&y, &mut c.act_out)
}

/// a + b element by element (the routed and shared experts' outputs): 1 FLOP each.
pub fn add<E: Elem>(a: &[E], b: &[E], c: &mut Count) -> Vec<E> {
    let (a, b) = (load(a, &mut c.act_in), load(b, &mut c.act_in));
    c.flops += a.len() as u64;
    let y: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    store(&y, &mut c.act_out)
}

/// Each row of width `h` of x scaled by the sigmoid of its token's gate logit (Qwen2-MoE's
/// shared-expert gate): 1 FLOP per element; the sigmoid is per-row scalar work and the logits
/// (one per token) are routing-sized metadata, neither counted (see the module notes).
pub fn sigmoid_scale<E: Elem>(x: &[E], gate: &[f32], h: usize, c: &mut Count) -> Vec<E> {
    let x = load(x, &mut c.act_in);
    c.flops += x.len() as u64;
    let y: Vec<f32> = x
        .chunks(h.max(1))
        .zip(gate)
        .flat_map(|(row, &g)| {
            let s = 1.0 / (1.0 + (-g).exp());
            row.iter().map(move |v| v * s)
        })
        .collect();
    store(&y, &mut c.act_out)
}

/// The activation of one element (see [`Activation`] for each formula).
pub fn activation(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::GeluTanh => {
            let k = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Relu => x.max(0.0),
    }
}

/// act(g) · u element by element, or act(g) without `u`: [`Activation::ffn_flops`] each.
pub fn act_mul(a: Activation, g: &[f32], u: Option<&[f32]>, flops: &mut u64) -> Vec<f32> {
    *flops += a.ffn_flops(u.is_some()) * g.len() as u64;
    match u {
        Some(u) => g
            .iter()
            .zip(u)
            .map(|(&g, u)| activation(a, g) * u)
            .collect(),
        None => g.iter().map(|&g| activation(a, g)).collect(),
    }
}

/// silu(g)·u element by element: 5 FLOPs each (negate, exp, add one, divide, multiply).
pub fn silu_mul(g: &[f32], u: &[f32], flops: &mut u64) -> Vec<f32> {
    act_mul(Activation::Silu, g, Some(u), flops)
}

/// Softmax of each row of width `n`, stable (the row's max is subtracted first). 4 FLOPs per
/// element: subtract, exp, accumulate, scale by 1/sum.
pub fn softmax_rows(x: &[f32], n: usize, flops: &mut u64) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let inv = 1.0 / e.iter().sum::<f32>();
        out.extend(e.iter().map(|v| v * inv));
    }
    *flops += 4 * x.len() as u64;
    out
}

/// Weight-only dequantization of quantized values `q` with one scale and zero point per
/// `group`: `(q − z)·s`, 2 FLOPs per weight. Fused into a GEMM's weight loads, it moves no bytes
/// of its own (the GEMM counts the stored weights).
pub fn dequantize(
    q: &[f32],
    scale: &[f32],
    zero: &[f32],
    group: usize,
    flops: &mut u64,
) -> Vec<f32> {
    *flops += 2 * q.len() as u64;
    q.iter()
        .enumerate()
        .map(|(i, &x)| (x - zero[i / group.max(1)]) * scale[i / group.max(1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_zero_and_ln3_is_a_quarter_and_three_quarters() {
        let mut f = 0;
        let p = softmax_rows(&[0.0, 3f32.ln(), 1000.0, 1000.0], 2, &mut f);
        assert!((p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.75).abs() < 1e-6);
        assert_eq!(&p[2..], &[0.5, 0.5]);
        assert_eq!(f, 16);
    }

    #[test]
    fn rmsnorm_of_three_four_is_scaled_to_unit_rms() {
        // rms([3, 4]) = sqrt(12.5); the residual adds zero.
        let mut c = Count::default();
        let (y, r) = add_rmsnorm::<f32>(2, &[3.0, 4.0], &[0.0, 0.0], &[1.0, 2.0], true, &mut c);
        let rms = 12.5f32.sqrt();
        assert!((y[0] - 3.0 / rms).abs() < 1e-5 && (y[1] - 8.0 / rms).abs() < 1e-5);
        assert_eq!(r.unwrap(), vec![3.0, 4.0]);
        assert_eq!((c.flops, c.act_in, c.act_out), (10, 16, 16));
    }

    #[test]
    fn rope_turns_a_pair_by_the_position_angle_and_keeps_its_norm() {
        // d = 2: one pair, angle = pos · base^0 = pos radians.
        let mut c = Count::default();
        let y = rope::<f32>(&[1.0, 0.0], (1, 2), 0..1, &[1], 10000.0, &mut c);
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        let y0 = rope::<f32>(&[0.3, -0.4], (1, 2), 0..1, &[0], 10000.0, &mut c);
        assert_eq!(y0, vec![0.3, -0.4]);
        assert_eq!(c.flops, 12);
    }

    #[test]
    fn gelu_and_relu_by_hand_and_their_flops() {
        // GELU(0) = 0; GELU(1) (tanh form) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.841192;
        // GELU(−1) = 1 − 0.841192 − 1 = −0.158808 (x·Φ(x) is odd-symmetric around x).
        let mut f = 0;
        let y = act_mul(Activation::GeluTanh, &[0.0, 1.0, -1.0], None, &mut f);
        assert_eq!(y[0], 0.0);
        assert!(
            (y[1] - 0.841_192).abs() < 1e-5 && (y[2] + 0.158_808).abs() < 1e-5,
            "{y:?}"
        );
        assert_eq!(f, 27);
        let y = act_mul(Activation::Relu, &[-2.0, 3.0], Some(&[5.0, 2.0]), &mut f);
        assert_eq!(y, vec![0.0, 6.0]);
        assert_eq!(f, 27 + 4);
    }

    #[test]
    fn silu_of_zero_is_zero_and_of_large_gate_is_the_gate() {
        let mut c = Count::default();
        let y = swiglu::<f32>(&[0.0, 20.0], &[5.0, 2.0], 2, &[0, 1], &mut c);
        assert_eq!(y[0], 0.0);
        assert!((y[1] - 40.0).abs() < 1e-4);
        assert_eq!(c.flops, 10);
    }
}
