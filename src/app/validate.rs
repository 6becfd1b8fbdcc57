//! `dyad validate`: run every op of a scaled-down model's iteration as the mapping splits it, and
//! check the answer and the work counted against the unsplit reference and the cost model.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::app::run::RunError;
use crate::config;
use crate::hw::{PimKind, System, Timing, Unit as HwUnit};
use crate::kernels::moe::route_with;
use crate::kernels::{Count, OpCheck, Rng, check_op, elems, exec::Context};
use crate::map::plan::{Unit, plan_iteration};
use crate::map::{Policy, place_by_layer};
use crate::model::{
    Attention, Batch, Ffn, KvRanks, LayerPlan, Mla, ModelError, ModelSpec, Moe, Parallelism,
    Precision, PrefillChunk, Routing, Scorer, SharedExpert, Sparse, Variant, build_iteration_with,
    check_layout,
};
use crate::work::Dtype;

mod render;
mod work;
pub use render::render;
pub use work::DEFAULT_WORK_LIMIT;
use work::predicted_work;

/// What `dyad validate` checks.
#[derive(Debug, Clone)]
pub struct ValidateSpec {
    /// Model config.json, TOML or preset.
    pub model: PathBuf,
    /// The arch whose costs the policies place ops by (its PIM, if any, gets the ops they pick).
    pub arch: PathBuf,
    /// Mapping policies to check.
    pub policies: Vec<Policy>,
    /// Tensor-parallel degrees to check; those the model's heads or widths do not split over
    /// are skipped and named ([`Validation::skipped`]).
    pub tp: Vec<u64>,
    /// Expert-parallel degrees (MoE models only; each with tp = 1); those that do not divide
    /// the experts are skipped and named.
    pub ep: Vec<u64>,
    /// Hidden size, head size, FFN inner size and vocabulary are divided by this; `None`:
    /// [`DEFAULT_SCALE`], or the largest scale below it that the model's shapes take
    /// ([`default_scale`]).
    pub scale: Option<u64>,
    /// Decoder layers of the scaled model, at least (more when the model's first layers of each
    /// distinct plan reach further: see [`first_layers`]).
    pub layers: u32,
    /// Element type of every stream; `None` takes the model's.
    pub dtype: Option<Dtype>,
    /// Decode sequences (KV lengths kv_len, kv_len + 3, …) besides two prefill chunks.
    pub batch: u64,
    /// KV length of the first decode sequence.
    pub kv_len: u64,
    /// Prompt length of the whole-prompt prefill chunk.
    pub prompt_len: u64,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Most predicted work (see [`predicted_work`]); `None`: no limit.
    pub work_limit: Option<f64>,
}

impl Default for ValidateSpec {
    fn default() -> Self {
        ValidateSpec {
            model: "workloads/models/mixtral-8x7b.json".into(),
            arch: "arch/duplex.toml".into(),
            policies: Policy::ALL.to_vec(),
            tp: vec![1, 2, 4, 8],
            ep: vec![2, 4, 8],
            scale: None,
            layers: 1,
            dtype: None,
            batch: 4,
            kv_len: 24,
            prompt_len: 12,
            seed: 1,
            work_limit: Some(DEFAULT_WORK_LIMIT),
        }
    }
}

/// One op of one iteration under one policy and device layout.
#[derive(Debug, Clone)]
pub struct Row {
    /// The policy's name.
    pub policy: &'static str,
    /// The device layout: `tp4` (tensor parallel) or `ep2` (expert parallel).
    pub par: String,
    /// The decoder layer (`None` outside the layers).
    pub layer: Option<u32>,
    /// The op's name.
    pub op: String,
    /// The partition plan, in words.
    pub plan: String,
    /// What the check found.
    pub check: OpCheck,
}

/// Everything `dyad validate` found.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The scaled model checked.
    pub model: ModelSpec,
    /// Element type of every stream.
    pub dtype: Dtype,
    /// One row per op, policy and layout.
    pub rows: Vec<Row>,
    /// The layouts asked for that the model cannot be split by, each skipped.
    pub skipped: Vec<Skipped>,
}

/// A layout `dyad validate` was asked for and skipped: the model's heads, widths or experts do
/// not split that many ways (Qwen2-7B's 28 heads over 8 devices, Qwen1.5-MoE's 60 experts over
/// 8).
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The layout: `tp8` or `ep8`.
    pub par: String,
    /// Why the model cannot be laid out so.
    pub why: ModelError,
}

impl Validation {
    /// Rows whose check failed.
    pub fn failures(&self) -> usize {
        self.rows.iter().filter(|r| !r.check.passed()).count()
    }
}

/// The scale `dyad validate` divides a model's sizes by unless told otherwise.
pub const DEFAULT_SCALE: u64 = 16;

/// Whether `scale` divides every head size of `m` leaving an even RoPE size (RoPE turns pairs):
/// `head_dim` of a model with query and KV heads; each latent-attention size (`q_lora_rank`,
/// `kv_lora_rank`, `qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`) of an MLA layer.
fn scale_fits(m: &ModelSpec, scale: u64) -> bool {
    let even = |d: u64| scale > 0 && d % scale == 0 && (d / scale) % 2 == 0;
    let divides = |d: u64| scale > 0 && d % scale == 0;
    m.plans.iter().all(|p| match p.mla {
        None => even(m.head_dim),
        Some(a) => {
            even(a.rope)
                && [a.latent, a.nope, a.v, a.q_lora.unwrap_or(0)]
                    .into_iter()
                    .all(divides)
        }
    })
}

/// [`DEFAULT_SCALE`], or the largest scale below it that `m`'s head sizes take (DeepSeek-V3's
/// 56-wide heads take 4 but not 16); 1 when none does.
pub fn default_scale(m: &ModelSpec) -> u64 {
    (1..=DEFAULT_SCALE)
        .rev()
        .find(|&s| scale_fits(m, s))
        .unwrap_or(1)
}

/// The model with the same head grouping, expert count and top-k, and hidden size, head sizes,
/// FFN inner sizes and vocabulary divided by `scale` (inner sizes and vocabulary rounded up to
/// a multiple of 64, as serving engines pad a vocabulary, so that any TP degree up to 64 splits
/// them); its layers are [`first_layers`]`(m, layers)`.
pub fn scaled(m: &ModelSpec, scale: u64, layers: u32) -> Result<ModelSpec, ValidateError> {
    if !scale_fits(m, scale) {
        return Err(ValidateError::Scale {
            scale,
            head_dim: m.head_dim,
        });
    }
    if layers == 0 {
        return Err(ValidateError::ZeroLayers);
    }
    let up64 = |x: u64| x.div_ceil(scale).div_ceil(64) * 64;
    let plans = first_layers(m, layers)
        .into_iter()
        .map(|p| LayerPlan {
            ffn: match p.ffn {
                Ffn::Dense { intermediate } => Ffn::Dense {
                    intermediate: up64(intermediate),
                },
                Ffn::Moe => Ffn::Moe,
            },
            mla: p.mla.map(|a| Mla {
                q_lora: a.q_lora.map(|r| r / scale),
                latent: a.latent / scale,
                nope: a.nope / scale,
                rope: a.rope / scale,
                v: a.v / scale,
            }),
            variant: Variant {
                ranks: p.variant.ranks.map(|r| KvRanks {
                    key: (r.key / scale).max(1),
                    value: (r.value / scale).max(1),
                }),
                select: p.variant.select.map(|s| Scorer {
                    dim: (s.dim / scale).max(1),
                    ..s
                }),
                ..p.variant
            },
            ..p
        })
        .collect();
    Ok(ModelSpec {
        name: format!("{} /{scale}", m.name),
        hidden: m.hidden / scale,
        plans,
        head_dim: (m.head_dim / scale).max(1),
        vocab: up64(m.vocab),
        moe: m.moe.map(|x| Moe {
            intermediate: up64(x.intermediate),
            shared: x.shared.map(|s| SharedExpert {
                intermediate: up64(s.intermediate),
                ..s
            }),
            ..x
        }),
        ..m.clone()
    })
}

/// Sliding windows of `m` narrowed to at most `tokens`, sparse reads to at most `tokens` kept,
/// and Llama-4's attention chunks to at most `tokens + 1` (a window or chunk wider than the checked sequences would never drop a
/// key): the spans the scaled model is checked with. With `tokens` half the prompt, the whole
/// prompt spans two chunks, and the second prefill chunk (half a prompt after a cached half)
/// starts one position before a chunk boundary: it reads the cache from its chunk's start and
/// its queries straddle two chunks.
fn narrow_spans(m: &mut ModelSpec, tokens: u64) {
    let tokens = tokens.max(1);
    for p in &mut m.plans {
        p.attention = match p.attention {
            Attention::Window { tokens: w } => Attention::Window {
                tokens: w.min(tokens),
            },
            Attention::Chunk { tokens: c } => Attention::Chunk {
                tokens: c.min(tokens + 1),
            },
            Attention::Full => Attention::Full,
        };
        // A sparse read keeps at most `tokens` in pages of at most as many, so that every
        // decode sequence and the whole prompt reach past it and the kernels read only the kept
        // tokens, as the model charges. Latent-attention layers keep theirs: the latent kernels
        // read every key, and the default batch stays under DeepSeek-V3.2's 2,048.
        if p.mla.is_none() {
            let kept = |k: u64| k.min(tokens);
            p.variant.sparse = p.variant.sparse.map(|s| Sparse {
                kept: kept(s.kept),
                page: s.page.min(kept(s.kept)).max(1),
            });
            p.variant.select = p.variant.select.map(|s| Scorer {
                kept: kept(s.kept),
                ..s
            });
        }
    }
}

/// The plans of `m`'s first `layers` layers (repeating its pattern past its last layer), and
/// further up to the first layer of each distinct plan, so that every kind of layer the model
/// has is checked (DeepSeek's first MoE layer after its dense ones, Gemma-2's global layer
/// after a local one, GLaM's MoE layer after a dense one).
pub fn first_layers(m: &ModelSpec, layers: u32) -> Vec<LayerPlan> {
    let mut seen: Vec<&LayerPlan> = Vec::new();
    let mut reach = 0;
    for (i, p) in m.plans.iter().enumerate() {
        if !seen.contains(&p) {
            seen.push(p);
            reach = i + 1;
        }
    }
    m.plans
        .iter()
        .copied()
        .cycle()
        .take((layers as usize).max(reach))
        .collect()
}

/// The mixed batch: `batch` decode sequences of KV lengths kv_len, kv_len + 3, …, a whole prompt
/// of `prompt_len` tokens, and a chunk of half a prompt after a cached half.
pub fn batch(spec: &ValidateSpec) -> Batch {
    let half = spec.prompt_len.div_ceil(2);
    Batch {
        decode_kv: (0..spec.batch).map(|i| spec.kv_len + 3 * i).collect(),
        prefill: vec![
            PrefillChunk {
                q_len: spec.prompt_len,
                ctx: 0,
                last: true,
            },
            PrefillChunk {
                q_len: half,
                ctx: half,
                last: false,
            },
        ],
    }
}

/// Routes the batch's tokens with the router kernel (each layer's router: renormalised or not,
/// group-limited or not) on random activations, router weights and balancing bias, layer by
/// layer, so that expert ops carry the token counts a real router produced.
fn routing(m: &ModelSpec, tokens: u64, seed: u64) -> Routing {
    // Under expert parallelism the counts cover every device's tokens.
    let Some(moe) = m.moe else {
        return Routing::Uniform;
    };
    let mut rng = Rng::new(seed ^ 0x5EED);
    let h = m.hidden as usize;
    let per_layer = m
        .plans
        .iter()
        .map(|p| {
            // MoE++'s zero-computation experts are routed beside the FFN experts.
            let e = (moe.experts + p.knobs.zc.map_or(0, |z| z.count())) as usize;
            let x = rng.vec(elems(&[tokens as usize, h]), 1.0);
            let w = rng.vec(elems(&[h, e]), 1.0 / (h as f32).sqrt());
            let bias = rng.vec(e, 0.1);
            let mut c = Count::default();
            let logits = crate::kernels::gemm::sgemm(tokens as usize, h, e, &x, &w, &mut c.flops);
            let k = moe.top_k as usize;
            route_with(&logits, (e, k), p.router, &bias, &mut c).counts()
        })
        .collect();
    Routing::PerLayer(per_layer)
}

/// The unit kind `policy` picks for each op of the per-device graph. Placement is decided on the
/// real model's sizes (`full`, with the scaled model's layer count) and the same batch and
/// routing, so the scaled kernels run the plan the real model would get.
#[allow(clippy::too_many_arguments)]
fn placements(
    full: &ModelSpec,
    m: &ModelSpec,
    b: &Batch,
    par: Parallelism,
    p: Precision,
    route: &Routing,
    sys: &System,
    policy: Policy,
) -> Result<Vec<Unit>, RunError> {
    if policy == Policy::AllXpu {
        return Ok(Vec::new());
    }
    let g = build_iteration_with(&real_model(full, m), b, par, p, route)?;
    let pim = match sys.pim.as_ref().map(|x| x.kind) {
        Some(PimKind::Logic) | None => Unit::LogicPim(0),
        Some(PimKind::BankGroup) => Unit::BankGroupPim(0),
        Some(PimKind::Bank) => Unit::BankPim(0),
    };
    let units = place_by_layer(&g, sys, policy, Timing::Kernel)?;
    Ok(units
        .into_iter()
        .map(|u| match u {
            HwUnit::Xpu => Unit::Xpu(0),
            HwUnit::Pim => pim,
        })
        .collect())
}

/// The real model placement is decided on: `full`'s sizes with the scaled model's layers, and
/// the vocabulary padded to a multiple of 64, as vLLM pads it, so that every TP degree splits
/// the LM head.
fn real_model(full: &ModelSpec, m: &ModelSpec) -> ModelSpec {
    ModelSpec {
        plans: first_layers(full, m.layers()),
        vocab: full.vocab.div_ceil(64) * 64,
        ..full.clone()
    }
}

/// The layouts of `spec` (`tp` degrees, then `ep` degrees above 1 for an MoE model) that both
/// the scaled model `m` and the real one ([`real_model`]) split over, and those skipped.
fn layouts(
    spec: &ValidateSpec,
    full: &ModelSpec,
    m: &ModelSpec,
) -> (Vec<(String, Parallelism)>, Vec<Skipped>) {
    let tp = spec
        .tp
        .iter()
        .map(|&tp| (format!("tp{tp}"), Parallelism { tp, ep: 1 }));
    let ep = spec.ep.iter().filter(|&&ep| ep > 1 && m.moe.is_some());
    let ep = ep.map(|&ep| (format!("ep{ep}"), Parallelism { tp: 1, ep }));
    let real = real_model(full, m);
    let (mut run, mut skipped) = (Vec::new(), Vec::new());
    for (par, layout) in tp.chain(ep) {
        match check_layout(m, layout).and_then(|()| check_layout(&real, layout)) {
            Ok(()) => run.push((par, layout)),
            Err(why) => skipped.push(Skipped { par, why }),
        }
    }
    (run, skipped)
}

/// Why `dyad validate` could not run its checks (a failed check is a row, not an error).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ValidateError {
    /// An input file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A scale the head size cannot take.
    #[error(
        "--scale {scale} must divide head_dim ({head_dim}) leaving an even head size (RoPE turns pairs); in latent-attention (MLA) layers, every rank and head size instead"
    )]
    Scale {
        /// The scale asked for.
        scale: u64,
        /// The model's head size.
        head_dim: u64,
    },
    /// No layers.
    #[error("--layers must be at least 1")]
    ZeroLayers,
    /// A batch too small to hold the checks' sequences.
    #[error("--batch and --kv-len must be at least 1, --prompt-len at least 2")]
    SmallBatch,
    /// A flag over the limit the reference kernels run to ([`MAX_BATCH`], [`MAX_KV_LEN`],
    /// [`MAX_PROMPT_LEN`], [`MAX_LAYERS`]).
    #[error(
        "{flag} {value} is more than `dyad validate` runs on its reference kernels (at most {max})"
    )]
    TooLarge {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The checks would take more work than the limit.
    #[error(
        "the checks would take about {predicted:.2e} FLOP-equivalents ({runs} op runs of the \
         scaled model, {flops:.2e} FLOPs), more than the limit of {limit:.2e}; a larger --scale, \
         fewer --layers, or --work-limit N (or all) lifts it"
    )]
    WorkLimit {
        /// The prediction.
        predicted: f64,
        /// Op runs over every policy and layout.
        runs: u64,
        /// Reference-kernel FLOPs over every policy and layout.
        flops: f64,
        /// The limit.
        limit: f64,
    },
    /// No layout asked for splits the model.
    #[error("the model cannot be split by any layout --tp and --ep ask for: {}", skipped_list(.0))]
    NoLayout(Vec<Skipped>),
    /// A parallel layout the model cannot be split or placed by.
    #[error("{flag} {degree}: {source}")]
    Layout {
        /// `--tp` or `--ep`.
        flag: &'static str,
        /// The degree.
        degree: u64,
        /// Why the model cannot be laid out so.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The skipped layouts in words: `tp8 (why); ep8 (why)`.
fn skipped_list(skipped: &[Skipped]) -> String {
    let each: Vec<String> = skipped
        .iter()
        .map(|x| format!("{} ({})", x.par, x.why))
        .collect();
    each.join("; ")
}

/// The most decode sequences `dyad validate` checks (`--batch`).
pub const MAX_BATCH: u64 = 1024;
/// The longest first KV cache it checks (`--kv-len`), in tokens.
pub const MAX_KV_LEN: u64 = 65_536;
/// The longest prompt it checks (`--prompt-len`), in tokens: causal attention over a prompt
/// takes time as its square (4,096 tokens: about 12 s at the default scale).
pub const MAX_PROMPT_LEN: u64 = 16_384;
/// The most decoder layers it checks (`--layers`).
pub const MAX_LAYERS: u32 = 1024;

/// The first of `spec`'s sizes over its limit, checked before any size is computed from them.
fn check_limits(spec: &ValidateSpec) -> Result<(), ValidateError> {
    let limits = [
        ("--batch", spec.batch, MAX_BATCH),
        ("--kv-len", spec.kv_len, MAX_KV_LEN),
        ("--prompt-len", spec.prompt_len, MAX_PROMPT_LEN),
        ("--layers", u64::from(spec.layers), u64::from(MAX_LAYERS)),
    ];
    match limits.into_iter().find(|&(_, value, max)| value > max) {
        Some((flag, value, max)) => Err(ValidateError::TooLarge { flag, value, max }),
        None => Ok(()),
    }
}

/// Runs the checks.
pub fn validate(spec: &ValidateSpec) -> Result<Validation, ValidateError> {
    check_limits(spec)?;
    let full = config::load_model(&spec.model)?;
    let sys = config::load_arch(&spec.arch)?;
    let scale = spec.scale.unwrap_or_else(|| default_scale(&full));
    let mut m = scaled(&full, scale, spec.layers)?;
    if spec.batch == 0 || spec.kv_len == 0 || spec.prompt_len < 2 {
        return Err(ValidateError::SmallBatch);
    }
    // Half the prompt: both prefill chunks and every decode sequence reach past the window
    // or the chunk.
    narrow_spans(&mut m, spec.prompt_len / 2);
    let dtype = spec.dtype.unwrap_or(m.dtype);
    let p = Precision::uniform(dtype);
    let b = batch(spec);
    let (layouts, skipped) = layouts(spec, &full, &m);
    if layouts.is_empty() {
        return Err(ValidateError::NoLayout(skipped));
    }
    let runs = (spec.policies.len() * layouts.len()) as u64;
    let (predicted, ops, flops) = predicted_work(&m, &b, p, runs, spec.seed)?;
    if let Some(limit) = spec.work_limit
        && predicted > limit
    {
        return Err(ValidateError::WorkLimit {
            predicted,
            runs: ops,
            flops,
            limit,
        });
    }
    let mut rows = Vec::new();
    for &policy in &spec.policies {
        for (name, par) in &layouts {
            let route = routing(&m, b.tokens() * par.ep, spec.seed);
            let flag = if par.ep > 1 { "--ep" } else { "--tp" };
            let what = |source: Box<dyn std::error::Error + Send + Sync>| ValidateError::Layout {
                flag,
                degree: par.tp.max(par.ep),
                source,
            };
            let placed = placements(&full, &m, &b, *par, p, &route, &sys, policy)
                .map_err(|e| what(e.into()))?;
            let plans =
                plan_iteration(&m, &b, *par, p, &route, &placed).map_err(|e| what(e.into()))?;
            let cx = Context {
                model: &m,
                batch: &b,
            };
            for (i, op) in plans.iter().enumerate() {
                let seed = spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                rows.push(Row {
                    policy: policy.name(),
                    par: name.clone(),
                    layer: op.op.layer,
                    op: op.op.name.to_string(),
                    plan: op.plan.describe(),
                    check: check_op(op, cx, seed),
                });
            }
        }
    }
    Ok(Validation {
        model: m,
        dtype,
        rows,
        skipped,
    })
}

#[cfg(test)]
mod tests;
