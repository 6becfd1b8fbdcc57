//! `dyad cost`: cost single ops listed in a CSV file, so that measured kernel tables and traces
//! can be set beside dyad's figures.
//!
//! Input columns: `kind` (gemm, attn_decode, attn_prefill, allreduce, elementwise), `dtype`
//! (fp16, bf16, fp8, int8), and as the kind needs: `m, n, k` (optional `batch` for a batched
//! GEMM); `batch, q_len, kv_len, heads, kv_heads, head_dim` (attention); `bytes, tp` (all-reduce);
//! `elements, bytes_per_element, reads, writes` (elementwise). Other columns pass through.

use std::collections::HashMap;
use std::io::{Read, Write};

use thiserror::Error;

use crate::hw::{System, Timing};
use crate::model::{Op, OpKind, Precision};
use crate::units::Bytes;
use crate::work::{Dtype, Work};

/// A row that cannot be costed, or a file that cannot be read or written.
#[derive(Debug, Error)]
pub enum OpCsvError {
    /// A row, at its line of the input.
    #[error("line {line}: {source}")]
    Row {
        /// The row's line in the input.
        line: u64,
        /// What is wrong with it.
        source: RowError,
    },
    /// The CSV itself.
    #[error("{0}")]
    Csv(#[from] csv::Error),
    /// Reading or writing.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What is wrong with one row.
#[derive(Debug, Error)]
pub enum RowError {
    /// A column this row needs is absent or empty.
    #[error("column `{column}` is missing or empty")]
    Missing {
        /// The column.
        column: &'static str,
    },
    /// A column the row's kind needs is absent or empty.
    #[error("column `{column}` is needed for kind {kind} but is missing or empty")]
    MissingFor {
        /// The column.
        column: String,
        /// The row's kind.
        kind: String,
    },
    /// A count that is not a positive integer.
    #[error("column `{column}`: expected a positive integer, found \"{found}\"")]
    NotCount {
        /// The column.
        column: String,
        /// What it holds.
        found: String,
    },
    /// A size that is not a positive number.
    #[error("column `{column}`: expected a positive number, found \"{found}\"")]
    NotPositive {
        /// The column.
        column: &'static str,
        /// What it holds.
        found: String,
    },
    /// An element type dyad does not know.
    #[error(transparent)]
    Dtype(#[from] crate::work::UnknownDtype),
    /// Query heads that KV heads do not divide.
    #[error("heads ({heads}) must be a multiple of kv_heads ({kv_heads})")]
    Heads {
        /// Query heads.
        heads: u64,
        /// KV heads.
        kv_heads: u64,
    },
    /// A decode row with more than one query token.
    #[error("attn_decode has one query token per sequence: q_len must be 1")]
    DecodeQLen,
    /// A prefill whose KV length leaves out its own new tokens.
    #[error("kv_len ({kv_len}) must include the q_len ({q_len}) new tokens")]
    KvShort {
        /// KV length.
        kv_len: u64,
        /// New tokens.
        q_len: u64,
    },
    /// A kind that is not one of the five.
    #[error(
        "unknown kind \"{0}\" (valid: gemm, attn_decode, attn_prefill, allreduce, elementwise)"
    )]
    Kind(String),
    /// The arch cannot price the op.
    #[error("{0}")]
    Cost(#[from] crate::hw::CostError),
}

/// Columns appended to every row.
pub const OUTPUT_COLUMNS: [&str; 5] = ["time_s", "flops", "dram_bytes", "op_b", "bound"];

struct Row<'a> {
    cols: &'a HashMap<String, usize>,
    rec: &'a csv::StringRecord,
}

impl Row<'_> {
    fn str(&self, name: &str) -> Option<&str> {
        let v = self.rec.get(*self.cols.get(name)?)?.trim();
        (!v.is_empty()).then_some(v)
    }

    fn num(&self, name: &str, kind: &str) -> Result<u64, RowError> {
        let v = self.str(name).ok_or_else(|| RowError::MissingFor {
            column: name.into(),
            kind: kind.into(),
        })?;
        v.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| RowError::NotCount {
                column: name.into(),
                found: v.into(),
            })
    }

    fn num_or(&self, name: &str, kind: &str, default: u64) -> Result<u64, RowError> {
        match self.str(name) {
            Some(_) => self.num(name, kind),
            None => Ok(default),
        }
    }
}

/// The attention op of an `attn_decode` or `attn_prefill` row.
fn attention(r: &Row, kind: &str) -> Result<OpKind, RowError> {
    let (heads, kv_heads) = (r.num("heads", kind)?, r.num("kv_heads", kind)?);
    if heads % kv_heads != 0 {
        return Err(RowError::Heads { heads, kv_heads });
    }
    let (batch, kv_len, head_dim) = (
        r.num("batch", kind)?,
        r.num("kv_len", kind)?,
        r.num("head_dim", kind)?,
    );
    if kind == "attn_decode" {
        if r.num_or("q_len", kind, 1)? != 1 {
            return Err(RowError::DecodeQLen);
        }
        Ok(OpKind::AttnDecode {
            seqs: batch,
            kv_tokens: batch * kv_len,
            heads,
            kv_heads,
            head_dim,
        })
    } else {
        let q = r.num("q_len", kind)?;
        if kv_len < q {
            return Err(RowError::KvShort { kv_len, q_len: q });
        }
        Ok(OpKind::AttnPrefill {
            seqs: batch,
            q_tokens: batch * q,
            kv_tokens: batch * kv_len,
            attended: batch * crate::model::causal_pairs(q, kv_len - q),
            heads,
            kv_heads,
            head_dim,
        })
    }
}

/// Builds the op a row describes and returns its work.
fn row_work(r: &Row) -> Result<Work, RowError> {
    let kind = r.str("kind").ok_or(RowError::Missing { column: "kind" })?;
    let dtype: Dtype = r
        .str("dtype")
        .ok_or(RowError::Missing { column: "dtype" })?
        .parse()
        .map_err(RowError::Dtype)?;
    let p = Precision::uniform(dtype);
    let op_kind = match kind {
        "gemm" => OpKind::Gemm {
            m: r.num("m", kind)?,
            n: r.num("n", kind)?,
            k: r.num("k", kind)?,
            batch: r.num_or("batch", kind, 1)?,
        },
        "attn_decode" | "attn_prefill" => attention(r, kind)?,
        "allreduce" => OpKind::AllReduce {
            bytes: r.num("bytes", kind)?,
            devices: r.num("tp", kind)?,
        },
        "elementwise" => OpKind::Elementwise {
            elements: r.num("elements", kind)?,
            reads: r.num_or("reads", kind, 1)?,
            writes: r.num_or("writes", kind, 1)?,
            flops_per_element: 1,
            access: None,
        },
        other => {
            return Err(RowError::Kind(other.into()));
        }
    };
    let mut w = Op::new(kind.to_string(), None, op_kind.clone(), p).work();
    if let (
        OpKind::Elementwise {
            elements,
            reads,
            writes,
            ..
        },
        Some(bpe),
    ) = (&op_kind, r.str("bytes_per_element"))
    {
        let bpe: f64 = bpe
            .parse()
            .ok()
            .filter(|b: &f64| *b > 0.0 && b.is_finite())
            .ok_or_else(|| RowError::NotPositive {
                column: "bytes_per_element",
                found: bpe.into(),
            })?;
        w.bytes.act_in = Bytes(*elements as f64 * *reads as f64 * bpe);
        w.bytes.act_out = Bytes(*elements as f64 * *writes as f64 * bpe);
    }
    Ok(w)
}

/// Reads op rows from `input`, writes them to `output` with the cost columns appended.
/// Returns the number of rows costed.
pub fn cost_ops(
    input: impl Read,
    output: impl Write,
    sys: &System,
    timing: Timing,
) -> Result<usize, OpCsvError> {
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(input);
    let headers = rd.headers()?.clone();
    let cols: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_string(), i))
        .collect();
    let mut wr = csv::Writer::from_writer(output);
    let mut out_headers = headers.clone();
    for c in OUTPUT_COLUMNS {
        out_headers.push_field(c);
    }
    wr.write_record(&out_headers)?;
    let mut n = 0;
    for rec in rd.records() {
        let rec = rec?;
        let line = rec.position().map_or(0, |p| p.line());
        let row = Row {
            cols: &cols,
            rec: &rec,
        };
        let fail = |source: RowError| OpCsvError::Row { line, source };
        let w = row_work(&row).map_err(fail)?;
        let c = sys.cost(&w, timing).map_err(|e| fail(e.into()))?;
        let mut out = rec.clone();
        out.push_field(&c.time.value().to_string());
        out.push_field(&w.flops.value().to_string());
        out.push_field(&w.bytes.total().value().to_string());
        out.push_field(&w.op_b().to_string());
        out.push_field(c.bound.name());
        wr.write_record(&out)?;
        n += 1;
    }
    wr.flush()?;
    Ok(n)
}

/// What `dyad cost` reads and how it prices it.
pub struct CostSpec {
    /// The CSV of ops; `None` or `-` reads standard input.
    pub input: Option<std::path::PathBuf>,
    /// The arch file or preset.
    pub arch: std::path::PathBuf,
    /// Kernel or host time.
    pub timing: Timing,
}

/// `dyad cost`: the input's rows with their cost columns, as CSV text.
pub fn cost(spec: &CostSpec) -> Result<String, super::AppError> {
    use super::AppError;
    let sys = crate::config::load_arch(&spec.arch)?;
    let path = spec
        .input
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-"));
    let input: Box<dyn Read> = match path {
        None => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::fs::File::open(p).map_err(|e| AppError::Io {
            what: format!("{}: cannot read", p.display()),
            source: e,
        })?),
    };
    let name = spec
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let mut buf = Vec::new();
    cost_ops(input, &mut buf, &sys, spec.timing).map_err(|source| AppError::Cost {
        input: name,
        source,
    })?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
