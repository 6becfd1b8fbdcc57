//! The arguments of each command (clap), and their conversion into the library's specs.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};

use dyad::app::run::Format;
use dyad::app::run::ScenarioOverrides;
use dyad::app::run::{Phase, RunSpec, ServeSpec};
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::names::parse_name;
use dyad::sim::serving::RouterPolicy;
use dyad::work::Dtype;

/// A parser for a closed set of names: the possible values and their help come from the
/// library's table (`Phase::TABLE`), so the flag lists exactly what the library accepts.
pub(super) fn named<T: Copy + Send + Sync + 'static>(
    table: &'static [(T, &'static str, &'static str)],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        table
            .iter()
            .map(|(_, n, h)| PossibleValue::new(*n).help(*h)),
    )
    .try_map(move |s| parse_name("value", table, &s))
}

/// A limit (`--trace-limit`, `--work-limit`): a count, or `None` for no limit.
#[derive(Clone, Copy)]
pub(super) struct CountLimit(Option<u64>);

/// A limit that is neither a count nor `all`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is neither a count nor `all`")]
pub(super) struct NotALimit(String);

/// A limit: a count, or `all` for none.
fn parse_limit(s: &str) -> Result<CountLimit, NotALimit> {
    match s {
        "all" => Ok(CountLimit(None)),
        n => n
            .parse()
            .map(|n| CountLimit(Some(n)))
            .map_err(|_| NotALimit(n.to_string())),
    }
}

#[derive(Args, Clone)]
pub(super) struct ModelArgs {
    /// Arch TOML file, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "arch/h100.toml")]
    pub(super) arch: PathBuf,
    /// HuggingFace config.json, a dyad model TOML, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "workloads/models/mixtral-8x7b.json")]
    pub(super) model: PathBuf,
    /// Sequences in the batch (at most 1048576, and at most 4294967296 tokens of prompts or
    /// KV caches in all).
    #[arg(long, default_value_t = 64)]
    pub(super) batch: u64,
    /// Prompt length of each sequence (prefill; at most 16777216).
    #[arg(long, default_value_t = 1024)]
    pub(super) prompt_len: u64,
    /// Tokens in each sequence's KV cache (decode; at most 16777216).
    #[arg(long, default_value_t = 1024)]
    pub(super) kv_len: u64,
    /// Prefill (whole prompts) or decode (one token per sequence against a KV cache).
    #[arg(long, default_value = "decode", value_parser = named(&Phase::TABLE))]
    pub(super) phase: Phase,
    /// Tensor-parallel degree; by default the smallest power of two whose share fits in memory.
    #[arg(long)]
    pub(super) tp: Option<u64>,
    /// Sequence-parallel (DeepSpeed-Ulysses) degree of a single iteration: each device holds
    /// 1/P of the tokens and all the weights, with an all-to-all of Q, K, V before attention and
    /// of its output after (P divides the KV heads; needs --tp 1).
    #[arg(long, default_value_t = 1)]
    pub(super) sp: u64,
    /// Mapping policy: all-xpu, dispatch (each op on the faster unit) or duplex (dispatch plus
    /// expert co-processing); the last two need an arch with PIM units.
    #[arg(long, default_value = "all-xpu", value_parser = named(&Policy::TABLE))]
    pub(super) policy: Policy,
    /// Element type of the weights (default: the model's; `int4` packs two per byte).
    #[arg(long, value_parser = dtype())]
    pub(super) weights: Option<Dtype>,
    /// Element type of the activations (default: the model's).
    #[arg(long, value_parser = dtype())]
    pub(super) activations: Option<Dtype>,
    /// Element type of the KV cache (default: the model's).
    #[arg(long, value_parser = dtype())]
    pub(super) kv: Option<Dtype>,
}

/// A parser for an element type: every name the library knows (`Dtype::ALL`).
fn dtype() -> impl TypedValueParser<Value = Dtype> {
    PossibleValuesParser::new(Dtype::ALL.map(Dtype::name)).try_map(|s| s.parse::<Dtype>())
}

impl ModelArgs {
    fn spec(&self, timing: Timing) -> RunSpec {
        RunSpec {
            arch: self.arch.clone(),
            model: self.model.clone(),
            phase: self.phase,
            batch: self.batch,
            prompt_len: self.prompt_len,
            kv_len: self.kv_len,
            tp: self.tp,
            sp: self.sp,
            timing,
            policy: self.policy,
            weights: self.weights,
            activations: self.activations,
            kv: self.kv,
            allow_oversize: false,
        }
    }
}

#[derive(Args, Clone)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// Simulate a serving scenario (workloads/serving/*.toml) instead of one iteration.
    /// `--arch`, `--model`, `--tp`, `--ep`, `--policy`, `--seed`, `--timing`, `--weights`,
    /// `--activations`, `--kv`, `--pp` and `--micro-batches`, when given, replace the
    /// scenario's values (the report lists them under `overridden`); `--batch`, `--prompt-len`, `--kv-len`, `--phase` and
    /// `--allow-oversize` have no meaning here and are errors.
    #[arg(long)]
    pub(super) serving: Option<PathBuf>,
    /// Expert-parallel degree of a serving run (overrides the scenario's; MoE models, with
    /// `--tp 1`). A single iteration is tensor-parallel only: `--ep` needs `--serving`.
    #[arg(long)]
    pub(super) ep: Option<u64>,
    /// Two-batch overlap of an expert-parallel serving run (sets the scenario's
    /// `expert_parallel.two_batch_overlap`): each MoE layer's all-to-all of one half of the
    /// batch beside the other half's compute; needs `--serving`.
    #[arg(long)]
    pub(super) two_batch_overlap: bool,
    /// EPLB over an expert-parallel serving run with N redundant copies of the hottest
    /// experts (sets `expert_parallel.redundant_experts`; DeepSeek-V3 deploys 32); needs
    /// `--serving`.
    #[arg(long, value_name = "N")]
    pub(super) redundant_experts: Option<u64>,
    /// Seed of the serving run (overrides the scenario's); needs `--serving`.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Cost a model whose weights and KV cache exceed one device's memory instead of failing
    /// with status 2 (the header still says DOES NOT FIT).
    #[arg(long)]
    pub(super) allow_oversize: bool,
    /// Write a Chrome/Perfetto trace of the serving run (Trace Event Format JSON), as the run
    /// goes: iterations, counters, requests, and one slice per op with its arguments (under
    /// `[disaggregation]`, each pool's, and the KV transfers on a link process).
    #[arg(long, requires = "serving")]
    pub(super) trace: Option<PathBuf>,
    /// Most op slices in the trace (a number, or `all`); later iterations keep their iteration
    /// slice and counters but not their ops, and a warning says where the ops stop (per pool
    /// under `[disaggregation]`).
    #[arg(long, requires = "trace", value_name = "N|all", default_value = "1000000", value_parser = parse_limit)]
    pub(super) trace_limit: CountLimit,
    /// Refuse a serving run predicted to take more than this many iterations (a number, or
    /// `all` for no limit); the prediction is a lower bound from the requests' token counts,
    /// the batch and the token budget.
    #[arg(long, requires = "serving", value_name = "N|all", default_value = "10000000", value_parser = parse_limit)]
    pub(super) work_limit: CountLimit,
    /// A software-stack profile (e.g. `arch/software/splitwise-dgx-h100.toml`) whose framework
    /// time per iteration (scheduling, sampling, launches, TP synchronization) adds to the
    /// kernels; overrides the scenario's `software`. Without one a run is kernel time only.
    #[arg(long, requires = "serving", value_name = "FILE")]
    pub(super) software: Option<PathBuf>,
    /// Serve with this many copies of the scenario's replica (each its tp × ep devices) behind
    /// a router; replaces the scenario's `[replicas] count`. Open-loop arrivals only past one;
    /// not with a disaggregated scenario or `--trace`. The report's figures are all replicas
    /// merged, with a table of each replica's share.
    #[arg(long, requires = "serving", value_name = "R")]
    pub(super) replicas: Option<u64>,
    /// How the router sends each arriving request to a replica (replaces `[replicas] router`;
    /// round_robin when neither gives one); needs --replicas or a `[replicas]` table.
    #[arg(long, requires = "serving", value_parser = named(&RouterPolicy::TABLE))]
    pub(super) router: Option<RouterPolicy>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = named(&Format::TABLE))]
    pub(super) format: Format,
    /// Which clock op times are read from (with `--serving`, overrides the scenario's).
    #[arg(long, default_value = "kernel", value_parser = named(&Timing::TABLE))]
    pub(super) timing: Timing,
    /// Write the report here instead of standard output.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// The flags given on the command line (their ids), as opposed to left at their defaults.
    #[arg(skip)]
    pub(super) given: Vec<String>,
    /// Pipeline stages: price the iteration's batch as --micro-batches micro-batches through
    /// this many stages of consecutive layers, each on its own TP group, and print the schedule
    /// (makespan, bubble, utilization per stage) instead of the op table. With `--serving` it
    /// replaces the scenario's `pipeline.stages` (a `[pipeline]` table; M = 1 unless
    /// `--micro-batches` or the table gives it).
    #[arg(long, conflicts_with_all = ["plot", "sp"])]
    pub(super) pp: Option<u64>,
    /// Micro-batches of a pipelined run (`--pp`); they divide the batch. With `--serving` it
    /// replaces the scenario's `pipeline.micro_batches`.
    #[arg(long, requires = "pp", default_value_t = 1)]
    pub(super) micro_batches: u64,
    /// Write the pipeline schedule as a Chrome/Perfetto trace, one track per stage (`--pp`).
    #[arg(long, requires = "pp")]
    pub(super) pipeline_trace: Option<PathBuf>,
    /// Also write SVG plots of the iteration into this folder: roofline.svg, ops.svg, layers.svg.
    #[arg(long, value_name = "DIR", conflicts_with = "serving")]
    pub(super) plot: Option<PathBuf>,
}

/// Flags that mean nothing to a serving run, with the error each gives there.
const NOT_FOR_SERVING: [(&str, &str); 7] = [
    (
        "pipeline_trace",
        "--pipeline-trace has no meaning with --serving: --trace FILE draws one track per pipeline stage",
    ),
    (
        "sp",
        "--sp has no meaning with --serving: sequence parallelism is costed for a single iteration (dyad run --phase prefill --sp P)",
    ),
    (
        "batch",
        "--batch has no meaning with --serving: the scenario's [batching] and arrivals set the batch",
    ),
    (
        "prompt_len",
        "--prompt-len has no meaning with --serving: the scenario's [requests] set the prompt lengths",
    ),
    (
        "kv_len",
        "--kv-len has no meaning with --serving: KV lengths grow as the scenario's requests decode",
    ),
    (
        "phase",
        "--phase has no meaning with --serving: a serving run mixes prefill and decode",
    ),
    (
        "allow_oversize",
        "--allow-oversize has no meaning with --serving: a run with no room for a KV cache cannot be simulated",
    ),
];

/// Flags that need `--serving`, with the error each gives without it.
const ONLY_FOR_SERVING: [(&str, &str); 4] = [
    (
        "two_batch_overlap",
        "--two-batch-overlap needs --serving: it splits an expert-parallel serving run's MoE layers into two halves",
    ),
    (
        "redundant_experts",
        "--redundant-experts needs --serving: EPLB places the experts of an expert-parallel serving run",
    ),
    (
        "ep",
        "--ep needs --serving: a single iteration is costed op by op on one device and is tensor-parallel only (use --tp, or a serving scenario with --ep)",
    ),
    (
        "seed",
        "--seed needs --serving: a single iteration draws nothing at random",
    ),
];

#[derive(Args)]
pub(super) struct GraphArgs {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// Write the DOT here instead of standard output.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
}

#[derive(Args)]
pub(super) struct CostArgs {
    /// CSV of ops (columns: see `dyad cost --help` or the README); `-` or nothing reads standard input.
    pub(super) input: Option<PathBuf>,
    /// Arch TOML file, or a built-in name.
    #[arg(long, default_value = "arch/h100.toml")]
    pub(super) arch: PathBuf,
    /// Which clock op times are read from.
    #[arg(long, default_value = "kernel", value_parser = named(&Timing::TABLE))]
    pub(super) timing: Timing,
    /// Write the CSV here instead of standard output.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Study {
    /// Duplex (MICRO 2024): xPU + Logic-PIM against GPU, 2xGPU and Bank-PIM systems.
    Duplex,
}

#[derive(Args)]
pub(super) struct ReproduceArgs {
    #[arg(value_enum)]
    pub(super) study: Study,
    /// Folder for the report (README.md) and the points (points.csv).
    #[arg(long, default_value = "results/duplex")]
    pub(super) out: PathBuf,
}

#[derive(Args)]
pub(super) struct AccuracyArgs {
    /// Folder of calibration CSVs.
    #[arg(long, default_value = "data/validation")]
    pub(super) data: PathBuf,
    /// Folder that the arch paths (`arch/a100.toml`, ...) are relative to.
    #[arg(long, default_value = ".")]
    pub(super) root: PathBuf,
    /// Worst rows listed per file.
    #[arg(long, default_value_t = 5)]
    pub(super) worst: usize,
}

#[derive(Args)]
pub(super) struct ValidateArgs {
    /// HuggingFace config.json, a dyad model TOML, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "workloads/models/mixtral-8x7b.json")]
    pub(super) model: PathBuf,
    /// Mapping policies to check (comma-separated); all of them by default.
    #[arg(long, value_delimiter = ',', value_parser = named(&Policy::TABLE))]
    pub(super) policy: Vec<Policy>,
    /// Arch file or built-in name whose costs the policies place ops by (its PIM gets the ops
    /// they pick).
    #[arg(long, default_value = "arch/duplex.toml")]
    pub(super) arch: PathBuf,
    /// Tensor-parallel degrees to check (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub(super) tp: Vec<u64>,
    /// Expert-parallel degrees to check (comma-separated; MoE models only, each with TP 1;
    /// `1` checks none).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub(super) ep: Vec<u64>,
    /// Divide hidden size, head size, FFN inner size and vocabulary by this; heads, KV heads,
    /// experts and top-k stay as the model has them (default: 16, or the largest scale below
    /// it that the model's head sizes take).
    #[arg(long)]
    pub(super) scale: Option<u64>,
    /// Decoder layers of the scaled model (at most 1024).
    #[arg(long, default_value_t = 1)]
    pub(super) layers: u32,
    /// Element type of weights, activations and KV cache (default: the model's).
    #[arg(long, value_parser = PossibleValuesParser::new(["bf16", "fp16", "fp32"]).try_map(|s| s.parse::<Dtype>()))]
    pub(super) dtype: Option<Dtype>,
    /// Decode sequences (KV lengths kv-len, kv-len+3, ...; at most 1024); two prefill chunks
    /// are added.
    #[arg(long, default_value_t = 4)]
    pub(super) batch: u64,
    /// KV length of the first decode sequence (at most 65536).
    #[arg(long, default_value_t = 24)]
    pub(super) kv_len: u64,
    /// Prompt length of the whole-prompt prefill chunk (at most 16384; the other chunk is half a
    /// prompt after a cached half).
    #[arg(long, default_value_t = 12)]
    pub(super) prompt_len: u64,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Refuse checks predicted to take more than this many FLOP-equivalents (each op run counts
    /// its FLOPs plus 1e6 for its set-up; the default is one to two minutes): a number, or `all`
    /// for no limit.
    #[arg(long, value_name = "N|all", default_value = "2e11", value_parser = parse_work)]
    pub(super) work_limit: WorkLimit,
}

/// `--work-limit` of `dyad validate`: FLOP-equivalents, or `None` for no limit.
#[derive(Clone, Copy)]
pub(super) struct WorkLimit(Option<f64>);

/// A work limit: a positive number, or `all`.
fn parse_work(s: &str) -> Result<WorkLimit, NotALimit> {
    match s {
        "all" => Ok(WorkLimit(None)),
        n => match n.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(WorkLimit(Some(x))),
            _ => Err(NotALimit(n.to_string())),
        },
    }
}

#[derive(Args)]
pub(super) struct PpaArgs {
    /// Arch files (or built-in names) whose `[xpu.tech]` names a die file; several are shown
    /// side by side.
    pub(super) archs: Vec<PathBuf>,
    /// Print the Flip FET calibration table (paper against model) as Markdown.
    #[arg(long)]
    pub(super) ffet_study: bool,
    /// Print the Logic-PIM study: how many GEMM modules fit on this HBM logic die under each
    /// technology, within its area and the Duplex design's power, and Mixtral-8x7B serving on
    /// 4 Duplex devices with each technology's modules, clock and PIM energy per FLOP.
    #[arg(long, value_name = "DIE")]
    pub(super) pim_study: Option<PathBuf>,
    /// A die file to evaluate in the technology it names (repeatable).
    #[arg(long)]
    pub(super) die: Vec<PathBuf>,
    /// Folder of the technology library (nodes.toml, devices.toml, model.toml).
    #[arg(long, default_value = "arch/tech")]
    pub(super) tech: PathBuf,
}

impl RunArgs {
    /// Whether the flag with this id was given on the command line.
    fn given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }

    /// The error of the first given flag that means nothing to this run (with or without
    /// `--serving`).
    pub(super) fn misplaced(&self) -> Option<&'static str> {
        let table: &[(&str, &'static str)] = match self.serving {
            Some(_) => &NOT_FOR_SERVING,
            None => &ONLY_FOR_SERVING,
        };
        if self.serving.is_none() && self.pp.is_some() && self.given("format") {
            return Some(
                "--format has no meaning with --pp without --serving: the schedule is printed as text",
            );
        }
        table.iter().find(|(id, _)| self.given(id)).map(|(_, e)| *e)
    }

    /// The iteration this runs (without `--serving`).
    pub(super) fn spec(&self) -> RunSpec {
        RunSpec {
            allow_oversize: self.allow_oversize,
            ..self.model.spec(self.timing)
        }
    }

    /// The serving run this runs, with `--serving`: each flag given replaces the scenario's value.
    pub(super) fn serve_spec(&self, scenario: PathBuf) -> ServeSpec {
        let m = &self.model;
        let pick = |id: &str| self.given(id);
        ServeSpec {
            scenario,
            overrides: ScenarioOverrides {
                arch: pick("arch").then(|| m.arch.clone()),
                model: pick("model").then(|| m.model.clone()),
                tp: m.tp,
                ep: self.ep,
                policy: pick("policy").then_some(m.policy),
                seed: self.seed,
                timing: pick("timing").then_some(self.timing),
                weights: m.weights,
                activations: m.activations,
                kv: m.kv,
                software: self.software.clone(),
                two_batch_overlap: self.two_batch_overlap,
                redundant_experts: self.redundant_experts,
                replicas: self.replicas,
                router: self.router,
                pp: self.pp,
                micro_batches: pick("micro_batches").then_some(self.micro_batches),
            },
            trace: self.trace.clone(),
            trace_limit: self.trace_limit.0,
            work_limit: self.work_limit.0,
            format: self.format,
        }
    }
}

impl GraphArgs {
    /// The iteration to draw.
    pub(super) fn spec(&self) -> RunSpec {
        self.model.spec(Timing::Kernel)
    }
}

impl CostArgs {
    /// The ops to cost.
    pub(super) fn spec(&self) -> dyad::app::cost::CostSpec {
        dyad::app::cost::CostSpec {
            input: self.input.clone(),
            arch: self.arch.clone(),
            timing: self.timing,
        }
    }
}

impl ValidateArgs {
    /// The checks to run (every policy when none is named).
    pub(super) fn spec(&self) -> dyad::app::validate::ValidateSpec {
        dyad::app::validate::ValidateSpec {
            model: self.model.clone(),
            arch: self.arch.clone(),
            policies: if self.policy.is_empty() {
                Policy::ALL.to_vec()
            } else {
                self.policy.clone()
            },
            tp: self.tp.clone(),
            ep: self.ep.clone(),
            scale: self.scale,
            layers: self.layers,
            dtype: self.dtype,
            batch: self.batch,
            kv_len: self.kv_len,
            prompt_len: self.prompt_len,
            seed: self.seed,
            work_limit: self.work_limit.0,
        }
    }
}

impl PpaArgs {
    /// What to show.
    pub(super) fn spec(&self) -> dyad::app::ppa::PpaSpec {
        dyad::app::ppa::PpaSpec {
            archs: self.archs.clone(),
            ffet_study: self.ffet_study,
            pim_study: self.pim_study.clone(),
            dies: self.die.clone(),
            tech: self.tech.clone(),
        }
    }
}

impl RunArgs {
    /// `dyad run` with every default: what `dyad` with no command runs first.
    pub(super) fn default_run() -> RunArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            a: RunArgs,
        }
        <Wrap as clap::Parser>::parse_from(["run"]).a
    }
}
