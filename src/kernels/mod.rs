//! Reference kernels that execute partition plans, and count the work they do.
//!
//! A cost model can charge for work a mapping never does, or miss work it must do. These kernels
//! prove a mapping by running it: each op runs whole (the reference) and as the plan splits it
//! ([`crate::map::plan::PartitionPlan`]), the parts are combined (concatenated, summed as an
//! all-reduce would, or merged with log-sum-exp), and the two answers must agree within a
//! tolerance set by the element type. Each part also counts the FLOPs it performs and the bytes it
//! reads and writes, stream by stream, and the count must equal what the cost model charges for
//! that part ([`crate::model::Op::work`]).
//!
//! **Kernels do no file I/O, and know the model's ops but no hardware costs.**
//!
//! What is counted, so that "exactly equal" has a meaning:
//! - Bytes: every element of a named stream (weights, KV cache read and written, activations in
//!   and out) is loaded or stored once, at the storage type's size. Routing metadata (each token's
//!   expert ids and gate weights, `tokens × top_k` pairs) and per-channel constants that every
//!   token reuses (norm gains, RoPE angles) are not DRAM streams in the model and are not counted.
//! - FLOPs: additions, multiplications, divisions, exponentials on tensor elements; comparisons
//!   (max, top-k) are not FLOPs, nor is per-row scalar work (one `1/rms` or `1/sum` per row).
//!   Attention counts its two matrix products, `QKᵀ` and `PV` (2·d FLOPs each per head and
//!   attended key), as the model and FlashAttention's FLOP counts do; its softmax work is counted
//!   apart in [`Count::aux_flops`].

pub mod attention;
pub mod elementwise;
pub mod exec;
pub mod gemm;
pub mod mla;
pub mod moe;
pub mod moe_plus;
mod rng;
pub mod score;

pub use exec::{OpCheck, PartCheck, check_op};
pub use rng::Rng;

use half::{bf16, f16};

use crate::units::Bytes;
use crate::work::{Dtype, Streams, Work};

/// The elements of a buffer of `dims` (their product), checked: a size that overflows `usize`
/// stops here instead of wrapping into a short buffer that a kernel would then index past, or
/// hand to `matrixmultiply`'s `unsafe` loop. Every buffer a kernel allocates is sized by this,
/// so an index below a buffer's length cannot overflow either. The commands bound the sizes
/// they pass (`dyad validate`'s flags, [`crate::app::validate`]), so this panic marks a bug,
/// never bad input.
pub fn elems<T: TryInto<usize> + Copy + std::fmt::Debug>(dims: &[T]) -> usize {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d.try_into().ok()?))
        .unwrap_or_else(|| panic!("a kernel buffer of {dims:?} elements overflows usize"))
}

/// A storage element type: values are loaded as f32, computed in f32, and rounded on store.
pub trait Elem: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// The element type this storage type is in the model.
    const DTYPE: Dtype;
    /// Rounds an f32 to this type (on store).
    fn from_f32(x: f32) -> Self;
    /// Widens to f32 (on load).
    fn to_f32(self) -> f32;
    /// Bytes of one element in storage.
    const BYTES: u64 = std::mem::size_of::<Self>() as u64;
}

impl Elem for f32 {
    const DTYPE: Dtype = Dtype::Fp32;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

impl Elem for f16 {
    const DTYPE: Dtype = Dtype::Fp16;
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// Largest normalised error (max |x − ref| ÷ max |ref|) accepted between a split result and the
/// unsplit reference: 16 units in the last place of the storage type (outputs and partial results
/// are rounded to it once or twice per part), and never below 1e-4 (f32 sums in another order).
pub fn tolerance(d: Dtype) -> f64 {
    let unit_roundoff = match d {
        Dtype::Bf16 => 2f64.powi(-8),
        Dtype::Fp16 => 2f64.powi(-11),
        _ => 2f64.powi(-24),
    };
    (16.0 * unit_roundoff).max(1e-4)
}

/// Work a kernel performed: FLOPs and DRAM bytes by stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// FLOPs at the level the model charges (see the module notes).
    pub flops: u64,
    /// Softmax and scaling FLOPs of attention, which the model does not charge.
    pub aux_flops: u64,
    /// Weight bytes read.
    pub weights: u64,
    /// KV cache bytes read.
    pub kv_read: u64,
    /// KV cache bytes written.
    pub kv_write: u64,
    /// Activation bytes read.
    pub act_in: u64,
    /// Activation bytes written.
    pub act_out: u64,
    /// Bytes each participant contributes to a collective (its message).
    pub message: u64,
}

impl Count {
    /// The byte streams, in the model's type.
    pub fn streams(&self) -> Streams {
        let b = |x: u64| Bytes(x as f64);
        Streams {
            weights: b(self.weights),
            kv_read: b(self.kv_read),
            kv_write: b(self.kv_write),
            act_in: b(self.act_in),
            act_out: b(self.act_out),
        }
    }

    /// Every difference between this count and the work the model charges, one line each
    /// (empty when they agree exactly).
    pub fn mismatches(&self, w: &Work) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |what: &str, counted: f64, charged: f64| {
            if counted != charged {
                out.push(format!("{what}: counted {counted}, charged {charged}"));
            }
        };
        cmp("flops", self.flops as f64, w.flops.value());
        let (c, m) = (self.streams(), w.bytes);
        cmp("weights", c.weights.value(), m.weights.value());
        cmp("kv_read", c.kv_read.value(), m.kv_read.value());
        cmp("kv_write", c.kv_write.value(), m.kv_write.value());
        cmp("act_in", c.act_in.value(), m.act_in.value());
        cmp("act_out", c.act_out.value(), m.act_out.value());
        let msg = w.collective.map_or(0.0, |c| c.message.value());
        cmp("message", self.message as f64, msg);
        out
    }
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.flops += o.flops;
        self.aux_flops += o.aux_flops;
        self.weights += o.weights;
        self.kv_read += o.kv_read;
        self.kv_write += o.kv_write;
        self.act_in += o.act_in;
        self.act_out += o.act_out;
        self.message += o.message;
    }
}

/// Loads a stored tensor into f32, adding its bytes to `stream`.
pub fn load<E: Elem>(x: &[E], stream: &mut u64) -> Vec<f32> {
    *stream += x.len() as u64 * E::BYTES;
    x.iter().map(|v| v.to_f32()).collect()
}

/// Loads a weight tensor held in storage type `stored` (MXFP4 experts, say) and dequantized to
/// f32 on load, adding its bytes at `stored`'s size to `stream`, in whole bytes (an MXFP4 block
/// of 32 elements is 17 bytes: 32 four-bit values and an 8-bit scale). The reference keeps the
/// values as `E` holds them: the check is of the split and the bytes counted, not of MXFP4's
/// rounding.
pub fn load_stored<E: Elem>(x: &[E], stored: Dtype, stream: &mut u64) -> Vec<f32> {
    *stream += (x.len() as f64 * stored.bytes()).ceil() as u64;
    x.iter().map(|v| v.to_f32()).collect()
}

/// Stores an f32 result, rounding to `E`, adding its bytes to `stream`.
pub fn store<E: Elem>(x: &[f32], stream: &mut u64) -> Vec<E> {
    *stream += x.len() as u64 * E::BYTES;
    x.iter().map(|&v| E::from_f32(v)).collect()
}

/// Converts without counting (inputs made by a test, results read by a check).
pub fn to_elems<E: Elem>(x: &[f32]) -> Vec<E> {
    x.iter().map(|&v| E::from_f32(v)).collect()
}

/// Converts without counting.
pub fn to_f32s<E: Elem>(x: &[E]) -> Vec<f32> {
    x.iter().map(|v| v.to_f32()).collect()
}

/// max |x − r| ÷ max |r| (the plain max |x − r| when `r` is all zero); lengths must agree.
pub fn normalized_error(x: &[f32], r: &[f32]) -> f64 {
    if x.len() != r.len() {
        return f64::INFINITY;
    }
    let scale = r.iter().fold(0f64, |a, v| a.max(f64::from(v.abs())));
    let mut diff = 0f64;
    for (x, r) in x.iter().zip(r) {
        let d = f64::from((x - r).abs());
        if d.is_nan() {
            return f64::INFINITY;
        }
        diff = diff.max(d);
    }
    if scale > 0.0 { diff / scale } else { diff }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_sizes_are_the_model_s_element_sizes() {
        assert_eq!(f32::BYTES as f64, Dtype::Fp32.bytes());
        assert_eq!(bf16::BYTES as f64, Dtype::Bf16.bytes());
        assert_eq!(f16::BYTES as f64, Dtype::Fp16.bytes());
    }

    #[test]
    fn bf16_keeps_eight_significant_bits() {
        // 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
        assert_eq!(bf16::from_f32(1.0 + 1.0 / 256.0).to_f32(), 1.0);
        assert_eq!(
            bf16::from_f32(1.0 + 3.0 / 256.0).to_f32(),
            1.0 + 4.0 / 256.0
        );
    }

    #[test]
    fn tolerance_widens_with_fewer_mantissa_bits() {
        assert_eq!(tolerance(Dtype::Bf16), 1.0 / 16.0);
        assert_eq!(tolerance(Dtype::Fp16), 1.0 / 128.0);
        assert_eq!(tolerance(Dtype::Fp32), 1e-4);
    }

    #[test]
    fn normalized_error_scales_by_the_reference() {
        assert_eq!(normalized_error(&[1.0, 2.5], &[1.0, 2.0]), 0.25);
        assert_eq!(normalized_error(&[0.5], &[0.0]), 0.5);
        assert_eq!(normalized_error(&[f32::NAN], &[1.0]), f64::INFINITY);
        assert_eq!(normalized_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
