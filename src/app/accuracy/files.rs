//! The calibration files and how each row maps to an op.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{ConfigError, load_arch};
use crate::hw::{System, Timing};
use crate::model::{Op, OpKind, Precision};
use crate::work::{Access, Dtype};

/// How a file's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// LLMCompass `M,N,K,latency_ms`.
    LlmcompassMatmul,
    /// LLMCompass GPT-3 layer: `op,prefill_s,decode_s`.
    LlmcompassGpt3Layer,
    /// vidur per-op times of one Llama-2-7B block: `num_tokens,tp,<op>_ms...`.
    VidurMlp,
    /// vidur NCCL all-reduce: `num_workers,size_bytes,median_ms,...`.
    VidurAllReduce,
    /// InferSim FlashInfer decode attention: `...,batch_size,kv_len,latency_us,...`.
    InfsimDecodeAttention,
    /// splitwise end to end: `hardware,tensor_parallel,prompt_size,batch_size,token_size,
    /// prompt_time_ms,token_time_ms,...` (both devices in one file; see [`super::e2e`]).
    SplitwiseE2e,
}

/// One calibration file: which device measured it, and with which clock.
#[derive(Debug, Clone, Copy)]
pub struct DataFile {
    /// The file name in `data/validation/`.
    pub name: &'static str,
    /// The device measured (`a100`, `h100`), the first word of each group.
    pub device: &'static str,
    /// The arch file it is costed on, relative to the root.
    pub arch: &'static str,
    /// How its rows map to ops.
    pub layout: Layout,
    /// The clock its times were read from.
    pub timing: Timing,
}

/// The files in `data/validation/`, with what their headers say.
pub const DATA_FILES: &[DataFile] = &[
    DataFile {
        name: "llmcompass_a100_matmul.csv",
        device: "a100",
        arch: "arch/a100.toml",
        layout: Layout::LlmcompassMatmul,
        timing: Timing::Host,
    },
    DataFile {
        name: "llmcompass_a100_gpt3_layer.csv",
        device: "a100",
        arch: "arch/a100.toml",
        layout: Layout::LlmcompassGpt3Layer,
        timing: Timing::Host,
    },
    DataFile {
        name: "vidur_a100_Llama-2-7b-hf_mlp.csv",
        device: "a100",
        arch: "arch/a100.toml",
        layout: Layout::VidurMlp,
        timing: Timing::Kernel,
    },
    DataFile {
        name: "vidur_h100_Llama-2-7b-hf_mlp.csv",
        device: "h100",
        arch: "arch/h100.toml",
        layout: Layout::VidurMlp,
        timing: Timing::Kernel,
    },
    DataFile {
        name: "vidur_h100_dgx_all_reduce.csv",
        device: "h100",
        arch: "arch/h100.toml",
        layout: Layout::VidurAllReduce,
        timing: Timing::Kernel,
    },
    DataFile {
        name: "infsim_h100_decode_attn_bf16_calib.csv",
        device: "h100",
        arch: "arch/h100.toml",
        layout: Layout::InfsimDecodeAttention,
        timing: Timing::Host,
    },
    DataFile {
        name: "splitwise_llama2-70b_e2e.csv",
        device: "dgx",
        arch: "arch/h100.toml",
        layout: Layout::SplitwiseE2e,
        timing: Timing::Kernel,
    },
];

/// One measured row beside its prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The calibration file.
    pub file: String,
    /// Statistics group, e.g. `a100 gemm`.
    pub group: String,
    /// The row, in words.
    pub label: String,
    /// Measured time, s.
    pub measured_s: f64,
    /// dyad's time, s.
    pub predicted_s: f64,
    /// A cross-check (priced with parameters fitted elsewhere) or a row not scored: counted in
    /// its group only, not in its file's figures or worst rows.
    pub aside: bool,
}

impl Sample {
    /// |predicted − measured| / measured.
    pub fn error(&self) -> f64 {
        (self.predicted_s - self.measured_s).abs() / self.measured_s
    }
}

/// A failure to read or cost a calibration file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DataError {
    /// An arch file the data names.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// A calibration file.
    #[error("{file}: {source}")]
    File {
        /// The file's name.
        file: String,
        /// What is wrong in it.
        source: FileError,
    },
}

/// What is wrong in a calibration file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be read as CSV (the reader's message).
    #[error("{0}")]
    Unreadable(String),
    /// A column the file's layout needs.
    #[error("no column `{0}`")]
    NoColumn(String),
    /// A value that is not a number.
    #[error("column `{column}`: not a number: \"{value}\"")]
    NotNumber {
        /// The column.
        column: String,
        /// What it holds.
        value: String,
    },
    /// A GPT-3 layer op with no row.
    #[error("no row for op {0}")]
    NoOpRow(&'static str),
    /// The arch cannot price a row's op.
    #[error("{0}")]
    Cost(#[from] crate::hw::CostError),
}

/// Elementwise rows of at least this time (10 µs) are the ones the target reads: the
/// data's resolution is 0.5–1 µs, so shorter rows measure the clock.
const ELEMENTWISE_RESOLVED: f64 = 10e-6;

fn gemm(m: u64, n: u64, k: u64, batch: u64) -> OpKind {
    OpKind::Gemm { m, n, k, batch }
}

fn elementwise(elements: u64, reads: u64, writes: u64, access: Access) -> OpKind {
    OpKind::Elementwise {
        elements,
        reads,
        writes,
        flops_per_element: 1,
        access: Some(access),
    }
}

/// Rows of a calibration file, as maps from column name to value.
pub(super) fn rows(path: &Path) -> Result<Vec<Row>, FileError> {
    crate::config::csv_rows(path).map_err(|e| FileError::Unreadable(e.message().to_string()))
}

/// One row of a calibration file: column name to value.
type Row = HashMap<String, String>;

pub(super) fn num(row: &Row, col: &str) -> Result<f64, FileError> {
    let v = row
        .get(col)
        .ok_or_else(|| FileError::NoColumn(col.to_string()))?;
    v.parse().map_err(|_| FileError::NotNumber {
        column: col.to_string(),
        value: v.clone(),
    })
}

struct Ctx<'a> {
    f: &'a DataFile,
    sys: System,
    /// For the cross-check of elementwise rows: this device with the other device's streaming
    /// rates (see [`cross_system`]) and the other device's name.
    cross: Option<(System, &'static str)>,
    out: Vec<Sample>,
}

/// The vidur device whose elementwise rates price `device`'s rows in the cross-check.
fn other_device(device: &str) -> Option<(&'static str, &'static str)> {
    match device {
        "a100" => Some(("h100", "arch/h100.toml")),
        "h100" => Some(("a100", "arch/a100.toml")),
        _ => None,
    }
}

/// `sys` with the streaming rates of `other` (fitted on the other device's rows), its rates
/// scaled by the ratio of the two DRAM bandwidths and its DRAM fraction and row length as they
/// are; the kernel floor stays `sys`'s own. `None` when either has no streaming table.
fn cross_system(sys: &System, other: &System) -> Option<System> {
    sys.xpu.streaming?;
    let theirs = other.xpu.streaming?;
    let k = sys.xpu.memory.bandwidth.value() / other.xpu.memory.bandwidth.value();
    let mut x = sys.clone();
    x.xpu.streaming = Some(crate::hw::Streaming {
        l2_stream: theirs.l2_stream * k,
        row_rate: theirs.row_rate * k,
        gather: theirs.gather * k,
        ..theirs
    });
    Some(x)
}

impl Ctx<'_> {
    fn predict(&self, kind: OpKind, dtype: Dtype) -> Result<f64, FileError> {
        let op = Op::new("row", None, kind, Precision::uniform(dtype));
        Ok(self.sys.cost(&op.work(), self.f.timing)?.time.value())
    }

    /// The time of `kind` with the other device's streaming rates, and that device's name.
    fn cross_price(
        &self,
        kind: OpKind,
        dtype: Dtype,
    ) -> Result<Option<(f64, &'static str)>, FileError> {
        let Some((sys, other)) = &self.cross else {
            return Ok(None);
        };
        let op = Op::new("row", None, kind, Precision::uniform(dtype));
        Ok(Some((
            sys.cost(&op.work(), self.f.timing)?.time.value(),
            other,
        )))
    }

    /// Marks the last sample as counted in its group only.
    fn set_aside(&mut self) {
        if let Some(x) = self.out.last_mut() {
            x.aside = true;
        }
    }

    fn push(&mut self, group: &str, label: String, measured_s: f64, predicted_s: f64) {
        self.out.push(Sample {
            file: self.f.name.to_string(),
            group: format!("{} {group}", self.f.device),
            label,
            measured_s,
            predicted_s,
            aside: false,
        });
    }

    fn sample(
        &mut self,
        group: &str,
        label: String,
        measured_s: f64,
        kind: OpKind,
        dtype: Dtype,
    ) -> Result<(), FileError> {
        if measured_s > 0.0 {
            let p = self.predict(kind.clone(), dtype)?;
            if group == "elementwise" && measured_s >= ELEMENTWISE_RESOLVED {
                self.push("elementwise (10 us or more)", label.clone(), measured_s, p);
                self.set_aside();
                if let Some((q, other)) = self.cross_price(kind, dtype)? {
                    let g = format!("elementwise (10 us or more, {other} fit)");
                    self.push(&g, label.clone(), measured_s, q);
                    self.set_aside();
                }
            }
            self.push(group, label, measured_s, p);
        }
        Ok(())
    }
}

/// vidur's Llama-2-7B block (file header): hidden 4096, 32 heads of 128 (MHA), FFN 11008, fp16.
/// The kernels (header: sarathi-serve's layers): the embedding is a gather; RMSNorm, SiLU-and-mul
/// and RoPE are vLLM's custom kernels, one thread block per token's row; the residual add is
/// PyTorch's vectorized elementwise stream.
fn vidur_ops(t: u64, tp: u64) -> Vec<(&'static str, &'static str, OpKind)> {
    let (h, i, qkv) = (4096, 11008 / tp, (32 + 2 * 32) * 128 / tp);
    let rope = (32 + 32) * 128 / tp;
    let norm = elementwise(t * h, 1, 1, Access::Rows(h));
    vec![
        ("attn_pre_proj", "gemm", gemm(t, qkv, h, 1)),
        ("attn_post_proj", "gemm", gemm(t, h, 4096 / tp, 1)),
        ("mlp_up_proj", "gemm", gemm(t, 2 * i, h, 1)),
        ("mlp_down_proj", "gemm", gemm(t, h, i, 1)),
        ("input_layernorm", "elementwise", norm.clone()),
        ("post_attention_layernorm", "elementwise", norm),
        (
            "attn_rope",
            "elementwise",
            elementwise(t * rope, 1, 1, Access::Rows(rope)),
        ),
        (
            "mlp_act",
            "elementwise",
            elementwise(t * i, 2, 1, Access::Rows(i)),
        ),
        (
            "add",
            "elementwise",
            elementwise(t * h, 2, 1, Access::Stream),
        ),
        (
            "emb",
            "elementwise",
            elementwise(t * h, 1, 1, Access::Gather),
        ),
    ]
}

/// GPT-3 175B layer on 4×A100 (file header): d_model 12288, 96 heads of 128, FFN 49152, TP 4,
/// fp16; prefill batch 8 × 2048, decode batch 8 against KV 3072. Attention is unfused there
/// (two batched GEMMs and a softmax), so it is costed as such. PyTorch's softmax and layer norm
/// run a block per row; its GeLU is a vectorized stream.
fn gpt3_ops(decode: bool) -> Vec<(&'static str, OpKind)> {
    let (d, heads, tp, b) = (12288, 96 / 4, 4, 8);
    let (q, kv) = if decode { (1, 3072) } else { (2048, 2048) };
    let t = b * q;
    let bh = b * heads;
    vec![
        ("Q_K_V", gemm(t, 3 * d / tp, d, 1)),
        ("Q_mul_K", gemm(q, kv, 128, bh)),
        ("A_mul_V", gemm(q, 128, kv, bh)),
        ("Wo_proj", gemm(t, d, d / tp, 1)),
        ("W1_proj", gemm(t, 4 * d / tp, d, 1)),
        ("W2_proj", gemm(t, d, 4 * d / tp, 1)),
        ("Softmax", elementwise(bh * q * kv, 1, 1, Access::Rows(kv))),
        ("LayerNorm_MHA", elementwise(t * d, 1, 1, Access::Rows(d))),
        ("LayerNorm_FFN", elementwise(t * d, 1, 1, Access::Rows(d))),
        ("GeLU", elementwise(t * 4 * d / tp, 1, 1, Access::Stream)),
        (
            "AllReduce_MHA",
            OpKind::AllReduce {
                bytes: t * d * 2,
                devices: tp,
            },
        ),
        (
            "AllReduce_FFN",
            OpKind::AllReduce {
                bytes: t * d * 2,
                devices: tp,
            },
        ),
    ]
}

fn load_file(f: &DataFile, dir: &Path, root: &Path) -> Result<Vec<Sample>, DataError> {
    if f.layout == Layout::SplitwiseE2e {
        return super::e2e::e2e_samples(f.name, &dir.join(f.name), root);
    }
    let sys = load_arch(&root.join(f.arch))?;
    let cross = match (f.layout, other_device(f.device)) {
        (Layout::VidurMlp, Some((name, arch))) => {
            cross_system(&sys, &load_arch(&root.join(arch))?).map(|x| (x, name))
        }
        _ => None,
    };
    let mut cx = Ctx {
        f,
        sys,
        cross,
        out: Vec::new(),
    };
    let fail = |source: FileError| DataError::File {
        file: f.name.to_string(),
        source,
    };
    let rows = rows(&dir.join(f.name)).map_err(fail)?;
    if f.layout == Layout::LlmcompassGpt3Layer {
        gpt3_layer(&mut cx, &rows).map_err(fail)?;
    } else {
        for row in &rows {
            cx.row(row).map_err(fail)?;
        }
    }
    Ok(cx.out)
}

impl Ctx<'_> {
    /// The samples of one row of a per-op file (every layout but the GPT-3 layer's).
    fn row(&mut self, row: &Row) -> Result<(), FileError> {
        match self.f.layout {
            Layout::LlmcompassMatmul => {
                let (m, n, k) = (
                    num(row, "M")? as u64,
                    num(row, "N")? as u64,
                    num(row, "K")? as u64,
                );
                let label = format!("M={m} N={n} K={k}");
                let s = num(row, "latency_ms")? * 1e-3;
                self.sample("gemm", label, s, gemm(m, n, k, 1), Dtype::Fp16)
            }
            Layout::VidurMlp => {
                let (t, tp) = (num(row, "num_tokens")? as u64, num(row, "tp")? as u64);
                for (col, group, kind) in vidur_ops(t, tp) {
                    let s = num(row, &format!("{col}_ms"))? * 1e-3;
                    let label = format!("{col} tokens={t} tp={tp}");
                    self.sample(group, label, s, kind, Dtype::Fp16)?;
                }
                Ok(())
            }
            Layout::VidurAllReduce => {
                let (p, bytes) = (
                    num(row, "num_workers")? as u64,
                    num(row, "size_bytes")? as u64,
                );
                let kind = OpKind::AllReduce { bytes, devices: p };
                let s = num(row, "median_ms")? * 1e-3;
                self.sample(
                    "all-reduce",
                    format!("{bytes} B over {p}"),
                    s,
                    kind,
                    Dtype::Fp16,
                )
            }
            Layout::InfsimDecodeAttention => self.decode_attention_row(row),
            Layout::LlmcompassGpt3Layer | Layout::SplitwiseE2e => Ok(()),
        }
    }

    /// InferSim's decode attention: heads and KV heads per device after TP.
    fn decode_attention_row(&mut self, row: &Row) -> Result<(), FileError> {
        let tp = num(row, "tp")? as u64;
        let (h, g, d) = (
            num(row, "nh")? as u64 / tp,
            num(row, "nkv")? as u64 / tp,
            num(row, "dh")? as u64,
        );
        let (b, kv) = (num(row, "batch_size")? as u64, num(row, "kv_len")? as u64);
        let kind = OpKind::AttnDecode {
            seqs: b,
            kv_tokens: b * kv,
            heads: h,
            kv_heads: g,
            head_dim: d,
        };
        let label = format!("{}/{}/{d} tp={tp} batch={b} kv={kv}", h * tp, g * tp);
        let s = num(row, "latency_us")? * 1e-6;
        self.sample("decode attention", label, s, kind, Dtype::Bf16)
    }
}

/// The GPT-3 layer file: each op of a prefill and a decode layer, and the layer totals.
fn gpt3_layer(cx: &mut Ctx, rows: &[Row]) -> Result<(), FileError> {
    for (phase, col, decode) in [
        ("prefill", "prefill_s", false),
        ("decode", "decode_s", true),
    ] {
        let (mut meas, mut pred) = (0.0, 0.0);
        for (name, kind) in gpt3_ops(decode) {
            let row = rows
                .iter()
                .find(|r| r.get("op").map(String::as_str) == Some(name))
                .ok_or(FileError::NoOpRow(name))?;
            let m = num(row, col)?;
            let p = cx.predict(kind, Dtype::Fp16)?;
            cx.push(&format!("gpt3 {phase} op"), format!("{name} {phase}"), m, p);
            meas += m;
            pred += p;
        }
        cx.push(
            &format!("gpt3 {phase} layer total"),
            format!("layer {phase}"),
            meas,
            pred,
        );
    }
    Ok(())
}

/// Loads every calibration file in `dir` and costs each row on the arch files under `root`.
pub fn load_samples(dir: &Path, root: &Path) -> Result<Vec<Sample>, DataError> {
    let mut all = Vec::new();
    for f in DATA_FILES {
        all.extend(load_file(f, dir, root)?);
    }
    Ok(all)
}
