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
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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

    fn num(&self, name: &str, kind: &str) -> Result<u64, String> {
        let v = self.str(name).ok_or_else(|| {
            format!("column `{name}` is needed for kind {kind} but is missing or empty")
        })?;
        v.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("column `{name}`: expected a positive integer, found \"{v}\""))
    }

    fn num_or(&self, name: &str, kind: &str, default: u64) -> Result<u64, String> {
        match self.str(name) {
            Some(_) => self.num(name, kind),
            None => Ok(default),
        }
    }
}

/// Builds the op a row describes and returns its work.
fn row_work(r: &Row) -> Result<Work, String> {
    let kind = r.str("kind").ok_or("column `kind` is missing or empty")?;
    let dtype: Dtype = r
        .str("dtype")
        .ok_or("column `dtype` is missing or empty")?
        .parse()?;
    let p = Precision::uniform(dtype);
    let op_kind = match kind {
        "gemm" => OpKind::Gemm {
            m: r.num("m", kind)?,
            n: r.num("n", kind)?,
            k: r.num("k", kind)?,
            batch: r.num_or("batch", kind, 1)?,
        },
        "attn_decode" | "attn_prefill" => {
            let (heads, kv_heads) = (r.num("heads", kind)?, r.num("kv_heads", kind)?);
            if heads % kv_heads != 0 {
                return Err(format!(
                    "heads ({heads}) must be a multiple of kv_heads ({kv_heads})"
                ));
            }
            let (batch, kv_len, head_dim) = (
                r.num("batch", kind)?,
                r.num("kv_len", kind)?,
                r.num("head_dim", kind)?,
            );
            if kind == "attn_decode" {
                if r.num_or("q_len", kind, 1)? != 1 {
                    return Err(
                        "attn_decode has one query token per sequence: q_len must be 1".into(),
                    );
                }
                OpKind::AttnDecode {
                    seqs: batch,
                    kv_tokens: batch * kv_len,
                    heads,
                    kv_heads,
                    head_dim,
                }
            } else {
                let q = r.num("q_len", kind)?;
                if kv_len < q {
                    return Err(format!(
                        "kv_len ({kv_len}) must include the q_len ({q}) new tokens"
                    ));
                }
                OpKind::AttnPrefill {
                    seqs: batch,
                    q_tokens: batch * q,
                    kv_tokens: batch * kv_len,
                    attended: batch * crate::model::causal_pairs(q, kv_len - q),
                    heads,
                    kv_heads,
                    head_dim,
                }
            }
        }
        "allreduce" => OpKind::AllReduce {
            bytes: r.num("bytes", kind)?,
            devices: r.num("tp", kind)?,
        },
        "elementwise" => OpKind::Elementwise {
            elements: r.num("elements", kind)?,
            reads: r.num_or("reads", kind, 1)?,
            writes: r.num_or("writes", kind, 1)?,
            flops_per_element: 1,
        },
        other => {
            return Err(format!(
                "unknown kind \"{other}\" (valid: gemm, attn_decode, attn_prefill, allreduce, elementwise)"
            ));
        }
    };
    let mut w = Op::new(kind, None, op_kind.clone(), p).work();
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
            .ok_or_else(|| {
                format!("column `bytes_per_element`: expected a positive number, found \"{bpe}\"")
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
        let fail = |message: String| OpCsvError::Row { line, message };
        let w = row_work(&row).map_err(fail)?;
        let c = sys.cost(&w, timing).map_err(|e| fail(e.to_string()))?;
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
