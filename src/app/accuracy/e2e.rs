//! End to end (splitwise): Llama-2-70B served on a DGX node, the prefill of a batch and the
//! time per decode step, priced as dyad's iteration (kernel time) plus a software-stack profile
//! ([`crate::hw::Software`]), and set beside the framework's measured wall time.

use std::collections::HashMap;
use std::path::Path;

use super::files::{FileError, Sample};
use crate::config::{ConfigError, load_arch, load_model, load_software};
use crate::hw::{IterShape, Software, System, Timing};
use crate::map::Policy;
use crate::model::{Batch, ModelSpec, Parallelism, Precision};
use crate::sim::iteration::Coster;
use crate::work::Dtype;

/// The served model, as the file's header names it.
pub const E2E_MODEL: &str = "workloads/models/llama-2-70b.json";

/// Each device of the file: its `hardware` name, the arch it is costed on, and the software
/// profile fitted on its rows (the hosts differ: DGX-A100 and DGX-H100 have other CPUs).
pub const E2E_DEVICES: [(&str, &str, &str, &str); 2] = [
    (
        "a100-80gb",
        "a100",
        "arch/a100.toml",
        "arch/software/splitwise-dgx-a100.toml",
    ),
    (
        "h100-80gb",
        "h100",
        "arch/h100.toml",
        "arch/software/splitwise-dgx-h100.toml",
    ),
];

/// One configuration of the file (prompt, batch, output lengths, TP) on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct E2eConfig {
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Prompt tokens per request.
    pub prompt: u64,
    /// Requests in the batch.
    pub batch: u64,
    /// Tokens generated per request.
    pub output: u64,
}

/// An iteration's kernel time and what the software profile counts of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priced {
    /// dyad's iteration time with kernel timing, s.
    pub kernel: f64,
    /// Ops, collectives, sequences, prompt tokens.
    pub shape: IterShape,
}

/// The prefill of the batch and its mean decode step, kernel time only.
#[derive(Debug, Clone, PartialEq)]
pub struct E2ePoint {
    /// The prefill of the batch: iterations of at most the profile's `max_prefills` prompts,
    /// each with how many times it runs.
    pub prefill: Vec<(Priced, u64)>,
    /// A decode step of the batch at the mean KV length over the output (prompt + output/2:
    /// attention's cost is linear in it).
    pub decode: Priced,
    /// The prefill's FLOPs at the dense fp16 peak: no run of the batch is faster.
    pub prefill_floor: f64,
}

/// Prices the configurations of one device.
pub struct E2eCoster {
    sys: System,
    model: ModelSpec,
    cache: HashMap<(E2eConfig, u64), E2ePoint>,
}

fn priced(c: &mut Coster, batch: &Batch, tp: u64) -> Result<Priced, FileError> {
    let it = c
        .iteration(batch, &[], false)
        .map_err(|e| FileError::Unreadable(e.to_string()))?;
    Ok(Priced {
        kernel: it.time,
        shape: IterShape {
            ops: it.ops,
            collectives: it.collectives,
            seqs: (batch.decode_kv.len() + batch.prefill.len()) as u64,
            prompt_tokens: batch.prefill.iter().map(|c| c.q_len).sum(),
            decode_only: batch.prefill.is_empty(),
            tp,
        },
    })
}

impl E2eCoster {
    /// The coster of the device whose arch is `arch` (under `root`).
    pub fn new(root: &Path, arch: &str) -> Result<Self, ConfigError> {
        Ok(E2eCoster {
            sys: load_arch(&root.join(arch))?,
            model: load_model(&root.join(E2E_MODEL))?,
            cache: HashMap::new(),
        })
    }

    /// The kernel-time prefill and decode step of `k`, its prompts prefilled at most
    /// `per_iteration` at a time.
    pub fn point(&mut self, k: E2eConfig, per_iteration: u64) -> Result<E2ePoint, FileError> {
        if let Some(p) = self.cache.get(&(k, per_iteration)) {
            return Ok(p.clone());
        }
        let par = Parallelism { tp: k.tp, ep: 1 };
        let prec = Precision::uniform(Dtype::Fp16);
        let mut c = Coster::new(
            &self.sys,
            &self.model,
            par,
            prec,
            Timing::Kernel,
            Policy::AllXpu,
        );
        let n = per_iteration.clamp(1, k.batch.max(1));
        let mut prefill = vec![(
            priced(&mut c, &Batch::prefill(n, k.prompt), k.tp)?,
            k.batch / n,
        )];
        if k.batch % n > 0 {
            let rest = Batch::prefill(k.batch % n, k.prompt);
            prefill.push((priced(&mut c, &rest, k.tp)?, 1));
        }
        let decode = priced(
            &mut c,
            &Batch::decode(k.batch, k.prompt + k.output / 2),
            k.tp,
        )?;
        let peak = self.sys.xpu.peak(Dtype::Fp16)?.value();
        let flops = 2.0 * self.model.active_params() as f64 * (k.batch * k.prompt) as f64;
        let p = E2ePoint {
            prefill,
            decode,
            prefill_floor: flops / k.tp as f64 / peak,
        };
        self.cache.insert((k, per_iteration), p.clone());
        Ok(p)
    }
}

/// The samples of the splitwise file: per device and TP degree, the prefill of the batch and
/// the decode step, each the kernel time plus the device's software profile; and the
/// cross-check, each device's rows priced with the other device's profile. A row whose prefill
/// was measured faster than its FLOPs at the dense peak did not run the batch its row names (a
/// batch whose KV cache did not fit ran in parts); it is not scored, and is counted in the
/// group `<device> e2e rows below the FLOP floor (not scored)`.
pub fn e2e_samples(file: &str, path: &Path, root: &Path) -> Result<Vec<Sample>, super::DataError> {
    let fail = |source: FileError| super::DataError::File {
        file: file.to_string(),
        source,
    };
    let rows = super::files::rows(path).map_err(fail)?;
    let mut profiles = Vec::new();
    for (_, _, _, sw) in E2E_DEVICES {
        profiles.push(load_software(&root.join(sw))?);
    }
    let mut out = Vec::new();
    for (d, (hw, dev, arch, _)) in E2E_DEVICES.iter().enumerate() {
        let mut coster = E2eCoster::new(root, arch)?;
        for row in rows
            .iter()
            .filter(|r| r.get("hardware").map(String::as_str) == Some(*hw))
        {
            let cfg = |c: &str| super::files::num(row, c).map(|v| v as u64);
            let k = E2eConfig {
                tp: cfg("tensor_parallel").map_err(fail)?,
                prompt: cfg("prompt_size").map_err(fail)?,
                batch: cfg("batch_size").map_err(fail)?,
                output: cfg("token_size").map_err(fail)?,
            };
            let p = coster.point(k, profiles[d].max_prefills).map_err(fail)?;
            let prefill_s = super::files::num(row, "prompt_time_ms").map_err(fail)? * 1e-3;
            let decode_s = super::files::num(row, "token_time_ms").map_err(fail)? * 1e-3;
            let label = format!(
                "tp={} prompt={} batch={} output={}",
                k.tp, k.prompt, k.batch, k.output
            );
            let sample = |group: String, what: &str, measured_s: f64, predicted_s: f64| Sample {
                file: file.to_string(),
                group,
                label: format!("{what} {label}"),
                measured_s,
                predicted_s,
                aside: false,
            };
            if prefill_s < p.prefill_floor {
                let g = format!("{dev} e2e rows below the FLOP floor (not scored)");
                out.push(Sample {
                    aside: true,
                    ..sample(g, "prefill", prefill_s, p.prefill_floor)
                });
                continue;
            }
            for (s, other) in [(&profiles[d], false), (&profiles[1 - d], true)] {
                let p = coster.point(k, s.max_prefills).map_err(fail)?;
                let tag = if other {
                    format!(" ({} software)", E2E_DEVICES[1 - d].1)
                } else {
                    String::new()
                };
                let prefill: f64 = p
                    .prefill
                    .iter()
                    .map(|(x, n)| with_software(x, s) * *n as f64)
                    .sum();
                let g = |phase: &str| format!("{dev} e2e {phase} tp{}{tag}", k.tp);
                let decode = with_software(&p.decode, s);
                for (phase, m, x) in [
                    ("prefill", prefill_s, prefill),
                    ("decode step", decode_s, decode),
                ] {
                    out.push(Sample {
                        aside: other,
                        ..sample(g(phase), phase, m, x)
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The time of iteration `x` under software profile `s`: its kernel time plus the host's.
fn with_software(x: &Priced, s: &Software) -> f64 {
    x.kernel + s.host(&x.shape).value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_batch_prefilled_one_prompt_at_a_time_is_that_many_single_prefills() {
        let mut c = E2eCoster::new(root(), "arch/h100.toml").unwrap();
        let k = E2eConfig {
            tp: 8,
            prompt: 512,
            batch: 5,
            output: 128,
        };
        let one = c.point(k, 1).unwrap();
        assert_eq!(one.prefill.len(), 1);
        assert_eq!(one.prefill[0].1, 5);
        assert_eq!(one.prefill[0].0.shape.prompt_tokens, 512);
        // Two at a time: two iterations of two prompts and one of the fifth.
        let two = c.point(k, 2).unwrap();
        let runs: Vec<(u64, u64)> = two
            .prefill
            .iter()
            .map(|(x, n)| (x.shape.prompt_tokens, *n))
            .collect();
        assert_eq!(runs, vec![(1024, 2), (512, 1)]);
        // Llama-2-70B: two all-reduces per layer over 80 layers under TP.
        assert_eq!(one.decode.shape.collectives, 160);
        assert!(one.prefill_floor > 0.0 && one.prefill[0].0.kernel > one.prefill_floor / 5.0);
    }

    #[test]
    fn every_shipped_profile_loads_and_adds_time() {
        for (_, _, _, sw) in E2E_DEVICES {
            let s = load_software(&root().join(sw)).unwrap();
            let it = IterShape {
                ops: 883,
                collectives: 160,
                seqs: 1,
                decode_only: true,
                tp: 8,
                ..IterShape::default()
            };
            assert!(s.host(&it).value() > 0.0, "{sw}");
        }
    }
}
