//! Executes an op under its partition plan: random inputs of the op's shape, the unsplit
//! reference, every part as its unit would run it, the combine, and the comparison of both the
//! answer and each part's counted work against what the model charges that part.

use std::ops::Range;

use half::{bf16, f16};

use super::gemm::{expand, gemm, gemm_columns, gemm_inner};
use super::mla::MlaShape;
use super::moe::{Expert, expert_ffn_act};
use super::{Count, Elem, Rng, elems, normalized_error, to_elems, to_f32s, tolerance};
use crate::map::plan::{Axis, OpPlan, PartitionPlan};
use crate::model::{Activation, Batch, ModelSpec, OpKind};
use crate::work::Dtype;

mod attn;
mod collective;
mod elementwise;
mod mla;
mod score;

pub use attn::{Reads, run_attention};
use attn::{attn_input, decode_seqs, heads_of, prefill_seqs, sparse_of, window_of};

pub use collective::{all_to_all, ring_allreduce};

/// One part's counted work against what the model charges it.
#[derive(Debug, Clone)]
pub struct PartCheck {
    /// The unit the part runs on (`xpu0`, `logic-pim1`, …).
    pub unit: String,
    /// The work the kernel counted.
    pub counted: Count,
    /// FLOPs the model charges the part.
    pub charged_flops: f64,
    /// Differences between counted and charged work (empty when they agree exactly).
    pub mismatches: Vec<String>,
}

/// The outcome of executing one op under its plan.
#[derive(Debug, Clone)]
pub struct OpCheck {
    /// Normalised max error of the combined parts against the unsplit reference.
    pub error: f64,
    /// The largest error accepted for the op's element type ([`super::tolerance`]).
    pub tolerance: f64,
    /// FLOPs the model charges the unsplit op.
    pub whole_flops: f64,
    /// Each part's counted work against its charge.
    pub parts: Vec<PartCheck>,
    /// Why the op could not be executed, if it could not.
    pub unsupported: Option<String>,
}

impl OpCheck {
    /// Whether the op ran, agreed within tolerance, and every part's count matched its charge.
    pub fn passed(&self) -> bool {
        self.unsupported.is_none()
            && self.error <= self.tolerance
            && self.parts.iter().all(|p| p.mismatches.is_empty())
    }

    /// FLOPs the model charges all parts together.
    pub fn charged_flops(&self) -> f64 {
        self.parts.iter().map(|p| p.charged_flops).sum()
    }

    /// FLOPs the parts performed together.
    pub fn counted_flops(&self) -> u64 {
        self.parts.iter().map(|p| p.counted.flops).sum()
    }
}

/// What the op needs beyond its shape: the model (hidden size) and the batch (each sequence's
/// lengths, which the op only holds as totals).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The model the op belongs to.
    pub model: &'a ModelSpec,
    /// The batch of the iteration, with each sequence's lengths.
    pub batch: &'a Batch,
}

/// Executes `p` in the element type of its activations, from `seed`.
pub fn check_op(p: &OpPlan, cx: Context, seed: u64) -> OpCheck {
    // A layer that drops image tokens sees its own batch (`model::ImageKeep::batch`).
    let layer = p.op.layer.and_then(|l| cx.model.plans.get(l as usize));
    let own = layer.and_then(|l| l.knobs.image).map(|k| k.batch(cx.batch));
    let cx = Context {
        batch: own.as_ref().unwrap_or(cx.batch),
        ..cx
    };
    match p.op.precision.activations {
        Dtype::Bf16 => check::<bf16>(p, cx, seed),
        Dtype::Fp16 => check::<f16>(p, cx, seed),
        Dtype::Fp32 => check::<f32>(p, cx, seed),
        d => OpCheck {
            error: f64::INFINITY,
            tolerance: 0.0,
            whole_flops: p.op.work().flops.value(),
            parts: Vec::new(),
            unsupported: Some(Unsupported::Dtype(d).to_string()),
        },
    }
}

fn check<E: Elem>(p: &OpPlan, cx: Context, seed: u64) -> OpCheck {
    let mut rng = Rng::new(seed);
    let (error, counts, unsupported) = match run::<E>(p, cx, &mut rng) {
        Ok((e, c)) => (e, c, None),
        Err(e) => (f64::INFINITY, Vec::new(), Some(e.to_string())),
    };
    let parts = p
        .plan
        .parts
        .iter()
        .zip(counts)
        .map(|(part, counted)| {
            let w = part.op.work();
            PartCheck {
                unit: part.unit.to_string(),
                counted,
                charged_flops: w.flops.value(),
                mismatches: counted.mismatches(&w),
            }
        })
        .collect();
    OpCheck {
        error,
        tolerance: tolerance(E::DTYPE),
        whole_flops: p.op.work().flops.value(),
        parts,
        unsupported,
    }
}

/// Why an op could not be executed: it has no reference kernel, or its plan cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// The activations are in a type no reference kernel computes in.
    #[error("no reference kernel computes in {0}")]
    Dtype(Dtype),
    /// A collective whose plan has not one part per device.
    #[error("{devices} devices but {parts} parts")]
    DevicesParts {
        /// Devices the op names.
        devices: u64,
        /// Parts of its plan.
        parts: usize,
    },
    /// Column parts that together leave some output column uncomputed.
    #[error("the parts leave some output columns uncomputed")]
    UncoveredColumns,
    /// A heads or key-range attention part with other than one range.
    #[error("attention parts take one range each")]
    AttentionRanges,
    /// An elementwise check asked of an op of another kind.
    #[error("not an elementwise op")]
    NotElementwise,
    /// An MoE op (named) in a model without experts.
    #[error("{0} in a dense model")]
    DenseModel(&'static str),
    /// An elementwise op whose name no reference kernel knows.
    #[error("no reference kernel for elementwise op `{0}`")]
    ElementwiseName(String),
    /// An op kind that `check_op` does not execute under a plan (its kernel is checked on its
    /// own: `attention::attend_subset`, `attention::attend_ranked`).
    #[error("no plan execution for {0} ops")]
    NoPlanKernel(&'static str),
}

type Outcome = Result<(f64, Vec<Count>), Unsupported>;

/// Random stored values of a buffer of `dims` (sized by [`elems`]), uniform in [-scale, scale).
fn rand<E: Elem>(rng: &mut Rng, dims: &[u64], scale: f32) -> Vec<E> {
    to_elems(&rng.vec(elems(dims), scale))
}

/// A size of the model or batch as a `usize`, checked (as [`elems`] checks products).
fn usize_of(x: u64) -> usize {
    elems(&[x])
}

/// Executes the op of `p` whole and by its plan; one kernel (or family of kernels) per op kind.
fn run<E: Elem>(p: &OpPlan, cx: Context, rng: &mut Rng) -> Outcome {
    let plan = &p.plan;
    match p.op.kind {
        OpKind::Gemm { m, n, k, batch: 1 } => run_gemm::<E>(plan, (m, n, k), rng),
        OpKind::ExpertFfn {
            tokens,
            hidden,
            inner,
            gated,
            act,
            ..
        } => {
            let stored = p.op.precision.weights;
            run_expert::<E>(plan, tokens, (hidden, inner, gated, act), stored, rng)
        }
        OpKind::AttnDecode {
            heads,
            kv_heads,
            head_dim,
            ..
        }
        | OpKind::AttnPrefill {
            heads,
            kv_heads,
            head_dim,
            ..
        } => {
            let decode = matches!(p.op.kind, OpKind::AttnDecode { .. });
            let seqs = match decode {
                true => decode_seqs(cx.batch),
                false => prefill_seqs(cx.batch),
            };
            let x = attn_input(heads_of(heads, kv_heads, head_dim), seqs, rng);
            run_attention::<E>(plan, x, Reads::of(p, cx, decode))
        }
        OpKind::AttnMla {
            absorbed,
            heads,
            latent,
            nope,
            rope,
            v,
            ..
        } => {
            let shape = MlaShape {
                heads: usize_of(heads),
                latent: usize_of(latent),
                nope: usize_of(nope),
                rope: usize_of(rope),
                v: usize_of(v),
            };
            mla::run_mla::<E>(p, cx, absorbed, shape, rng)
        }
        // MatryoshkaKV at equal ranks: attention over rank-wide heads (the scale aside, the
        // same kernel and counts).
        OpKind::AttnLowRank(r) if r.key_dim == r.value_dim => {
            let decode = p.op.name == "attn_decode";
            let seqs = match decode {
                true => decode_seqs(cx.batch),
                false => prefill_seqs(cx.batch),
            };
            let x = attn_input(heads_of(r.heads, r.kv_heads, r.key_dim), seqs, rng);
            run_attention::<E>(plan, x, Reads::of(p, cx, decode))
        }
        OpKind::AttnLowRank(_) => Err(Unsupported::NoPlanKernel("unequal-rank attention")),
        OpKind::TokenScore(s) => score::run_score::<E>(p, cx, s, rng),
        OpKind::Elementwise { elements, .. } => elementwise::run::<E>(p, cx, elements, rng),
        OpKind::AllReduce { bytes, devices } => run_all_reduce::<E>(plan, bytes, devices, rng),
        OpKind::AllToAll { bytes, devices } => run_all_to_all::<E>(plan, bytes, devices, rng),
        OpKind::Gemm { m, n, k, batch } => mla::run_batched_gemm::<E>(p, (m, n, k, batch), rng),
    }
}

/// One GEMM `[m,k]·[k,n]`, whole or split by columns or by the inner index.
fn run_gemm<E: Elem>(plan: &PartitionPlan, (m, n, k): (u64, u64, u64), rng: &mut Rng) -> Outcome {
    let (a, b) = (
        rand::<E>(rng, &[m, k], 1.0),
        rand::<E>(rng, &[k, n], 1.0 / (k as f32).sqrt()),
    );
    let mnk = (usize_of(m), usize_of(k), usize_of(n));
    let reference = to_f32s(&gemm(mnk.0, mnk.1, mnk.2, &a, &b, &mut Count::default()));
    let part = |share: &[Range<u64>], c: &mut Count| -> Vec<E> {
        match plan.axis {
            Axis::Columns => gemm_columns(mnk, &a, &b, share, c),
            Axis::Inner => gemm_inner(mnk, &a, &b, share, c),
            _ => gemm(mnk.0, mnk.1, mnk.2, &a, &b, c),
        }
    };
    combine_parts(plan, usize_of(n), &reference, part)
}

/// One expert on `tokens` tokens, `(hidden, inner)` wide, gated or not, with activation `act`,
/// whole or split by its inner columns, its weights counted at their storage type `stored`
/// (the op's weight type: MXFP4 for gpt-oss's routed experts) and computed on as `E` values,
/// i.e. dequantized.
fn run_expert<E: Elem>(
    plan: &PartitionPlan,
    tokens: u64,
    (hidden, inner, gated, act): (u64, u64, bool, Activation),
    stored: Dtype,
    rng: &mut Rng,
) -> Outcome {
    let (h, i) = (usize_of(hidden), usize_of(inner));
    let x = rand::<E>(rng, &[tokens, hidden], 1.0);
    let w = Expert {
        gate: match gated {
            true => rand::<E>(rng, &[hidden, inner], 1.0 / (h as f32).sqrt()),
            false => Vec::new(),
        },
        up: rand::<E>(rng, &[hidden, inner], 1.0 / (h as f32).sqrt()),
        down: rand::<E>(rng, &[inner, hidden], 1.0 / (i as f32).sqrt()),
    };
    let rows: Vec<usize> = (0..usize_of(tokens)).collect();
    let all: Vec<usize> = (0..i).collect();
    let run =
        |cols: &[usize], c: &mut Count| expert_ffn_act(&x, &rows, &w, (h, i, act), cols, stored, c);
    let reference = to_f32s(&run(&all, &mut Count::default()));
    combine_parts(plan, h, &reference, |share, c| match plan.axis {
        Axis::Inner => run(&expand(share), c),
        _ => run(&all, c),
    })
}

/// A ring all-reduce of one random message per device, against the plain sum.
fn run_all_reduce<E: Elem>(
    plan: &PartitionPlan,
    bytes: u64,
    devices: u64,
    rng: &mut Rng,
) -> Outcome {
    let inputs = messages::<E>(plan, bytes, devices, rng)?;
    let n = inputs[0].len();
    let mut sum = vec![0f32; n];
    for v in &inputs {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x.to_f32();
        }
    }
    let (outs, counts) = ring_allreduce(&inputs);
    let err = outs
        .iter()
        .map(|o| normalized_error(&to_f32s(o), &sum))
        .fold(0.0, f64::max);
    Ok((err, counts))
}

/// An all-to-all of one random message per device; the error is the largest difference between
/// an element and what arrived where it belongs.
fn run_all_to_all<E: Elem>(
    plan: &PartitionPlan,
    bytes: u64,
    devices: u64,
    rng: &mut Rng,
) -> Outcome {
    let inputs = messages::<E>(plan, bytes, devices, rng)?;
    let (n, parts) = (inputs[0].len(), inputs.len());
    let (outs, counts) = all_to_all(&inputs);
    // Element x of device i's message belongs to device ⌊x·p/n⌋, which keeps the senders'
    // order: find every element where it should have landed.
    let mut err: f64 = 0.0;
    let mut at = vec![0usize; parts];
    for v in &inputs {
        for (x, val) in v.iter().enumerate() {
            let to = x * parts / n.max(1);
            let got = outs[to].get(at[to]).map(|g| g.to_f32());
            at[to] += 1;
            let d = got.map_or(f64::INFINITY, |g| f64::from((g - val.to_f32()).abs()));
            err = err.max(d);
        }
    }
    Ok((err, counts))
}

/// One random message of `bytes` per device of a collective, one device per part.
fn messages<E: Elem>(
    plan: &PartitionPlan,
    bytes: u64,
    devices: u64,
    rng: &mut Rng,
) -> Result<Vec<Vec<E>>, Unsupported> {
    if devices == 0 || plan.parts.len() as u64 != devices {
        return Err(Unsupported::DevicesParts {
            devices,
            parts: plan.parts.len(),
        });
    }
    Ok((0..devices)
        .map(|_| rand::<E>(rng, &[bytes / E::BYTES], 1.0))
        .collect())
}

/// Runs each part and combines as the axis says: concatenation for columns (a column several
/// parts compute must agree), a sum for inner parts, and one whole answer per part otherwise.
fn combine_parts<E: Elem>(
    plan: &PartitionPlan,
    width: usize,
    reference: &[f32],
    mut part: impl FnMut(&[Range<u64>], &mut Count) -> Vec<E>,
) -> Outcome {
    let rows = reference.len() / width.max(1);
    let mut counts = Vec::new();
    let mut err: f64 = 0.0;
    let mut sum = vec![0f32; reference.len()];
    let mut covered = vec![false; width];
    for pt in &plan.parts {
        let mut c = Count::default();
        let out = to_f32s(&part(&pt.share, &mut c));
        counts.push(c);
        match plan.axis {
            Axis::Columns => {
                let cols = expand(&pt.share);
                let want: Vec<f32> = (0..rows)
                    .flat_map(|r| cols.iter().map(move |&j| reference[r * width + j]))
                    .collect();
                err = err.max(normalized_error(&out, &want));
                cols.iter().for_each(|&j| covered[j] = true);
            }
            Axis::Inner => sum.iter_mut().zip(&out).for_each(|(s, x)| *s += x),
            _ => err = err.max(normalized_error(&out, reference)),
        }
    }
    match plan.axis {
        Axis::Columns if covered.iter().any(|c| !c) => {
            return Err(Unsupported::UncoveredColumns);
        }
        Axis::Inner => err = normalized_error(&sum, reference),
        _ => {}
    }
    Ok((err, counts))
}
