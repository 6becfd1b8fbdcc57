//! The work of one op, as the hardware sees it: element types, op classes,
//! FLOPs and DRAM bytes by stream.
//!
//! This is the seam between `model` (which computes work from shapes) and
//! `hw` (which turns work into time). It knows neither of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::units::{Bytes, Flops};

/// Element type of a tensor stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit IEEE float.
    Fp32,
    /// bfloat16: 8 exponent bits, 7 mantissa bits.
    Bf16,
    /// IEEE half precision.
    Fp16,
    /// 8-bit float (E4M3).
    Fp8,
    /// 8-bit integer.
    Int8,
    /// 4-bit integer, two per byte.
    Int4,
    /// MXFP4 (OCP microscaling): 4-bit e2m1 elements in blocks of 32 sharing one 8-bit e8m0
    /// scale, (32 · 4 + 8) / 32 = 4.25 bits per element (gpt-oss's experts). A storage type:
    /// GEMMs on it compute in the activations' type.
    Mxfp4,
}

impl Dtype {
    /// Every element type, in the order they are listed to users.
    pub const ALL: [Dtype; 7] = [
        Dtype::Fp32,
        Dtype::Bf16,
        Dtype::Fp16,
        Dtype::Fp8,
        Dtype::Int8,
        Dtype::Int4,
        Dtype::Mxfp4,
    ];

    /// Storage size of one element in bytes (int4 packs two per byte).
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Fp32 => 4.0,
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 | Dtype::Int8 => 1.0,
            Dtype::Int4 => 0.5,
            Dtype::Mxfp4 => 4.25 / 8.0,
        }
    }

    /// The name in files and reports: "bf16".
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
            Dtype::Int8 => "int8",
            Dtype::Int4 => "int4",
            Dtype::Mxfp4 => "mxfp4",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An element type name dyad does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown element type \"{0}\" (valid: fp32, bf16, fp16, fp8, int8, int4, mxfp4)")]
pub struct UnknownDtype(pub String);

impl FromStr for Dtype {
    type Err = UnknownDtype;

    /// Accepts dyad's names (`bf16`) and HuggingFace's `torch_dtype` names (`bfloat16`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "fp32" | "float32" | "f32" => Dtype::Fp32,
            "bf16" | "bfloat16" => Dtype::Bf16,
            "fp16" | "float16" | "f16" | "half" => Dtype::Fp16,
            "fp8" | "float8_e4m3fn" | "e4m3" => Dtype::Fp8,
            "int8" => Dtype::Int8,
            "int4" => Dtype::Int4,
            "mxfp4" => Dtype::Mxfp4,
            _ => return Err(UnknownDtype(s.to_string())),
        })
    }
}

/// How a unit executes an op: each class has its own efficiency curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpClass {
    /// Dense matrix products: projections, expert FFNs, router, LM head.
    Gemm,
    /// Fused attention (QK^T, softmax, PV) over a KV cache.
    Attention,
    /// Streaming ops: norms, activations, RoPE, residual adds, top-k, embedding.
    Elementwise,
    /// Collectives over device links (all-reduce).
    Collective,
}

impl OpClass {
    /// The name in files and reports: "gemm".
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Gemm => "gemm",
            OpClass::Attention => "attention",
            OpClass::Elementwise => "elementwise",
            OpClass::Collective => "collective",
        }
    }
}

/// DRAM bytes of one op, split by stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Streams {
    /// Weights read (for attention: nothing; KV is its own stream).
    pub weights: Bytes,
    /// KV cache read.
    pub kv_read: Bytes,
    /// KV cache written (the new tokens' keys and values).
    pub kv_write: Bytes,
    /// Activations read.
    pub act_in: Bytes,
    /// Activations written.
    pub act_out: Bytes,
}

impl Streams {
    /// All bytes of the op, every stream together.
    pub fn total(&self) -> Bytes {
        self.weights + self.kv_read + self.kv_write + self.act_in + self.act_out
    }
}

/// What an op asks of a compute unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Work {
    /// The class the op runs as (selects the unit's efficiency curves).
    pub class: OpClass,
    /// Element type the arithmetic runs in (selects the unit's peak).
    pub compute: Dtype,
    /// FLOPs of the op.
    pub flops: Flops,
    /// DRAM bytes by stream.
    pub bytes: Streams,
    /// For collectives: the message size and the number of participants.
    pub collective: Option<CollectiveWork>,
    /// For GEMMs: the shape of the products, which sets how output tiles fill the device.
    pub gemm: Option<GemmShape>,
    /// For elementwise ops: how the kernel reaches its bytes, which sets the rate it streams
    /// at; `None` prices the op by its class's size curves alone.
    pub elementwise: Option<ElementwiseShape>,
}

/// How an elementwise kernel reaches its bytes (issue 17): the rate it streams at depends on
/// where the bytes come from (L2 or DRAM) and how many of them a kernel keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// A vectorized grid-stride stream over whole tensors (a residual add, a scale): as many
    /// bytes in flight as the memory takes.
    Stream,
    /// One thread block per row of `n` elements (norms, activations, RoPE, softmax, top-k):
    /// each row pays a fixed latency (its loads' round trip, the block's reduction), so short
    /// rows stream slower.
    Rows(u64),
    /// Rows fetched at indices read first (an embedding lookup): two dependent round trips.
    Gather,
}

/// An elementwise op's access pattern and the elements of each of its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ElementwiseShape {
    /// How the kernel reaches its bytes.
    pub access: Access,
    /// Elements of each tensor (for [`Access::Rows`], a multiple of the row).
    pub elements: u64,
}

impl ElementwiseShape {
    /// Bytes one row moves (for [`Access::Rows`]): the op's bytes times the row's share of its
    /// elements. `None` for other patterns or an empty op.
    pub fn row_bytes(&self, total: Bytes) -> Option<Bytes> {
        match self.access {
            Access::Rows(n) if self.elements > 0 => {
                Some(total * (n.min(self.elements) as f64 / self.elements as f64))
            }
            _ => None,
        }
    }
}

/// The shape of `batch` independent products `C[m,n] = A[m,k] · B[k,n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GemmShape {
    /// Rows of A and C (tokens).
    pub m: u64,
    /// Columns of B and C (output features).
    pub n: u64,
    /// The reduction length.
    pub k: u64,
    /// Independent products.
    pub batch: u64,
}

/// A collective's message: `message` bytes per participant, over `participants` devices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CollectiveWork {
    /// Which collective.
    pub kind: CollectiveKind,
    /// Bytes each participant contributes.
    pub message: Bytes,
    /// Devices taking part.
    pub participants: u32,
}

/// Which collective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveKind {
    /// Ring all-reduce: every device ends with the sum (2(p−1)/p of the message crosses each link).
    AllReduce,
    /// All-to-all: every device sends (p−1)/p of its message to the others (expert dispatch and
    /// combine).
    AllToAll,
}

impl CollectiveWork {
    /// Bytes each device sends.
    pub fn sent(&self) -> Bytes {
        let p = f64::from(self.participants);
        if self.participants <= 1 {
            return Bytes(0.0);
        }
        match self.kind {
            CollectiveKind::AllReduce => self.message * (2.0 * (p - 1.0) / p),
            CollectiveKind::AllToAll => self.message * ((p - 1.0) / p),
        }
    }

    /// Sequential link steps (each paying the link latency).
    pub fn steps(&self) -> f64 {
        let p = f64::from(self.participants);
        match self.kind {
            CollectiveKind::AllReduce => 2.0 * (p - 1.0),
            CollectiveKind::AllToAll => p - 1.0,
        }
    }
}

impl Work {
    /// Arithmetic intensity: FLOPs per DRAM byte (0 when the op moves no bytes).
    pub fn op_b(&self) -> f64 {
        let b = self.bytes.total().value();
        if b > 0.0 { self.flops.value() / b } else { 0.0 }
    }
}
