//! Command-line interface. **Only this module knows clap.**
//!
//! Exit status: 0 on success, 2 on bad input (files, keys, units, arguments), 1 when a check
//! fails (e.g. an accuracy target).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use dyad::config::{self, presets};
use std::str::FromStr;

use dyad::app::accuracy as validation;
use dyad::app::run::{Phase, RunSpec};
use dyad::hw::Timing;
use dyad::map::Policy;
use dyad::model::{Batch, Precision, Routing, build_iteration};
use dyad::report::{self, Format};

mod sweep;

/// A simulator and cost model for LLM inference hardware.
///
/// With no command, `dyad` runs `dyad run` on its built-in default (Mixtral-8x7B decode, batch 64,
/// KV length 1024, on an H100), then compares Mixtral serving on 4 x H100 with 4 x Duplex
/// (xPU + Logic-PIM): throughput, latency and energy per token side by side.
#[derive(Parser)]
#[command(name = "dyad", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Cost one iteration of a model on an arch and print the per-layer table.
    Run(RunArgs),
    /// Print the op graph of one iteration as Graphviz DOT.
    Graph(GraphArgs),
    /// Cost single ops listed in a CSV file (or standard input) and write CSV.
    Cost(CostArgs),
    /// Compare the cost model with every row of the measured calibration data.
    Accuracy(AccuracyArgs),
    /// Run every op of a scaled-down model's iteration as the mapping splits it, on reference
    /// kernels: the split answer must equal the unsplit one and the work counted must equal
    /// the work the cost model charges. Exits with status 1 if any op fails.
    Validate(ValidateArgs),
    /// Area, power, frequency and cost of an arch's die, per block and per die.
    Ppa(PpaArgs),
    /// List the built-in arch and model presets.
    List,
    /// Rerun a paper's evaluation and write our figures beside its own.
    Reproduce(ReproduceArgs),
    /// Run a design-space sweep from a sweep file: points in parallel, resumable, shardable;
    /// writes points.jsonl, points.csv, pareto.md and pareto.svg. Exits with status 1 if a
    /// point failed (the others still run and are written).
    Sweep(sweep::SweepArgs),
    /// Join the JSONL files of a sharded sweep and write its outputs.
    Merge(sweep::MergeArgs),
    /// Set reports side by side: run or serving reports (JSON) and sweep points (FILE.jsonl#N),
    /// with ratios to the first, largest movers first, and per-layer deltas.
    Compare(sweep::CompareArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum PhaseArg {
    Prefill,
    Decode,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Csv,
    Md,
}

#[derive(Clone, Copy, ValueEnum)]
enum TimingArg {
    /// Device kernel time (CUDA graphs; profiler kernel durations).
    Kernel,
    /// Host wall time per call: kernel time plus host dispatch overhead.
    Host,
}

impl From<TimingArg> for Timing {
    fn from(t: TimingArg) -> Self {
        match t {
            TimingArg::Kernel => Timing::Kernel,
            TimingArg::Host => Timing::Host,
        }
    }
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Arch TOML file, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "arch/h100.toml")]
    arch: PathBuf,
    /// HuggingFace config.json, a dyad model TOML, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "workloads/models/mixtral-8x7b.json")]
    model: PathBuf,
    /// Sequences in the batch.
    #[arg(long, default_value_t = 64)]
    batch: u64,
    /// Prompt length of each sequence (prefill).
    #[arg(long, default_value_t = 1024)]
    prompt_len: u64,
    /// Tokens in each sequence's KV cache (decode).
    #[arg(long, default_value_t = 1024)]
    kv_len: u64,
    #[arg(long, value_enum, default_value = "decode")]
    phase: PhaseArg,
    /// Tensor-parallel degree; by default the smallest power of two whose share fits in memory.
    #[arg(long)]
    tp: Option<u64>,
    /// Mapping policy: all-xpu, dispatch (each op on the faster unit) or duplex (dispatch plus
    /// expert co-processing); the last two need an arch with PIM units.
    #[arg(long, default_value = "all-xpu", value_parser = Policy::from_str)]
    policy: Policy,
}

impl ModelArgs {
    fn spec(&self, timing: Timing) -> RunSpec {
        RunSpec {
            arch: self.arch.clone(),
            model: self.model.clone(),
            phase: match self.phase {
                PhaseArg::Prefill => Phase::Prefill,
                PhaseArg::Decode => Phase::Decode,
            },
            batch: self.batch,
            prompt_len: self.prompt_len,
            kv_len: self.kv_len,
            tp: self.tp,
            timing,
            policy: self.policy,
        }
    }
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Simulate a serving scenario (workloads/serving/*.toml) instead of one iteration.
    #[arg(long)]
    serving: Option<PathBuf>,
    /// Seed of the serving run (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write a Chrome/Perfetto trace of the serving run (Trace Event Format JSON).
    #[arg(long, requires = "serving")]
    trace: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Which clock op times are read from.
    #[arg(long, value_enum, default_value = "kernel")]
    timing: TimingArg,
    /// Write the report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct GraphArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Write the DOT here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CostArgs {
    /// CSV of ops (columns: see `dyad cost --help` or the README); `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// Arch TOML file, or a built-in name.
    #[arg(long, default_value = "arch/h100.toml")]
    arch: PathBuf,
    #[arg(long, value_enum, default_value = "kernel")]
    timing: TimingArg,
    /// Write the CSV here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Study {
    /// Duplex (MICRO 2024): xPU + Logic-PIM against GPU, 2xGPU and Bank-PIM systems.
    Duplex,
}

#[derive(Args)]
struct ReproduceArgs {
    #[arg(value_enum)]
    study: Study,
    /// Folder for the report (README.md) and the points (points.csv).
    #[arg(long, default_value = "results/duplex")]
    out: PathBuf,
}

#[derive(Args)]
struct AccuracyArgs {
    /// Folder of calibration CSVs.
    #[arg(long, default_value = "data/validation")]
    data: PathBuf,
    /// Folder that the arch paths (`arch/a100.toml`, ...) are relative to.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Worst rows listed per file.
    #[arg(long, default_value_t = 5)]
    worst: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum ValidatePolicyArg {
    /// Every op on the xPU, tensor-parallel splits across the group.
    AllXpu,
    /// Each op on the unit that runs it faster (low Op/B to PIM).
    Dispatch,
    /// Dispatch plus expert co-processing between the xPU and PIM (Duplex).
    Duplex,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    Bf16,
    Fp16,
    Fp32,
}

#[derive(Args)]
struct ValidateArgs {
    /// HuggingFace config.json, a dyad model TOML, or a built-in name (see `dyad list`).
    #[arg(long, default_value = "workloads/models/mixtral-8x7b.json")]
    model: PathBuf,
    /// Mapping policies to check (comma-separated); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    policy: Vec<ValidatePolicyArg>,
    /// Arch file or built-in name whose costs the policies place ops by (its PIM gets the ops
    /// they pick).
    #[arg(long, default_value = "arch/duplex.toml")]
    arch: PathBuf,
    /// Tensor-parallel degrees to check (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    tp: Vec<u64>,
    /// Expert-parallel degrees to check (comma-separated; MoE models only, each with TP 1;
    /// `1` checks none).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    ep: Vec<u64>,
    /// Divide hidden size, head size, FFN inner size and vocabulary by this; heads, KV heads,
    /// experts and top-k stay as the model has them.
    #[arg(long, default_value_t = 16)]
    scale: u64,
    /// Decoder layers of the scaled model.
    #[arg(long, default_value_t = 1)]
    layers: u32,
    /// Element type of weights, activations and KV cache (default: the model's).
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// Decode sequences (KV lengths kv-len, kv-len+3, ...); two prefill chunks are added.
    #[arg(long, default_value_t = 4)]
    batch: u64,
    /// KV length of the first decode sequence.
    #[arg(long, default_value_t = 24)]
    kv_len: u64,
    /// Prompt length of the whole-prompt prefill chunk (the other chunk is half a prompt after a
    /// cached half).
    #[arg(long, default_value_t = 12)]
    prompt_len: u64,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct PpaArgs {
    /// Arch files (or built-in names) whose `[xpu.tech]` names a die file; several are shown
    /// side by side.
    archs: Vec<PathBuf>,
    /// Print the Flip FET calibration table (paper against model) as Markdown.
    #[arg(long)]
    ffet_study: bool,
    /// Print the Logic-PIM study: how many GEMM modules fit on this HBM logic die under each
    /// technology, within its area and the Duplex design's power, and Mixtral-8x7B serving on
    /// 4 Duplex devices with each technology's modules, clock and PIM energy per FLOP.
    #[arg(long, value_name = "DIE")]
    pim_study: Option<PathBuf>,
    /// A die file to evaluate in the technology it names (repeatable).
    #[arg(long)]
    die: Vec<PathBuf>,
    /// Folder of the technology library (nodes.toml, devices.toml, model.toml).
    #[arg(long, default_value = "arch/tech")]
    tech: PathBuf,
}

/// A failed command: the message to print and the exit status.
struct Failure {
    report: miette::Report,
    status: u8,
}

impl<E: miette::Diagnostic + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            report: miette::Report::new(e),
            status: 2,
        }
    }
}

fn input_error(msg: String) -> Failure {
    Failure {
        report: miette::miette!("{msg}"),
        status: 2,
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => run(RunArgs::parse_from(["run"])).and_then(|()| {
            let rows = dyad::app::run::duplex_comparison()?;
            write_out(None, &dyad::app::run::comparison_table(&rows))
        }),
        Some(Cmd::Run(a)) => run(a),
        Some(Cmd::Graph(a)) => graph(a),
        Some(Cmd::Cost(a)) => cost(a),
        Some(Cmd::Accuracy(a)) => accuracy(a),
        Some(Cmd::Validate(a)) => validate(a),
        Some(Cmd::Ppa(a)) => ppa(a),
        Some(Cmd::List) => list(),
        Some(Cmd::Reproduce(a)) => reproduce(a),
        Some(Cmd::Sweep(a)) => sweep::sweep(a),
        Some(Cmd::Merge(a)) => sweep::merge(a),
        Some(Cmd::Compare(a)) => sweep::compare(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{:?}", f.report);
            ExitCode::from(f.status)
        }
    }
}

impl RunArgs {
    fn parse_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            a: RunArgs,
        }
        Wrap::parse_from(args).a
    }
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), Failure> {
    let r = match out {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| format!("{}: cannot write: {e}", p.display()))
        }
        None => io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to standard output: {e}")),
    };
    r.map_err(input_error)
}

fn serve(a: &RunArgs, path: &Path) -> Result<(), Failure> {
    let mut sc = config::load_scenario(path)?;
    if let Some(seed) = a.seed {
        sc.seed = seed;
    }
    let mut r = dyad::sim::serving::simulate(&sc, a.trace.is_some())
        .map_err(|e| input_error(format!("{}: {e}", path.display())))?;
    if let Some(t) = &a.trace {
        let f = File::create(t)
            .map_err(|e| input_error(format!("{}: cannot write: {e}", t.display())))?;
        report::trace::write_trace(io::BufWriter::new(f), &r.spans, &r.lives)
            .map_err(|e| input_error(format!("{}: cannot write: {e}", t.display())))?;
    }
    let rep = report::serving::ServingReport::new(&sc, &mut r);
    let text = match a.format {
        FormatArg::Json => {
            serde_json::to_string_pretty(&rep).map_err(|e| input_error(e.to_string()))? + "\n"
        }
        FormatArg::Table | FormatArg::Md => rep.table(),
        FormatArg::Csv => {
            return Err(input_error(
                "--format csv is for single iterations; use json for serving".into(),
            ));
        }
    };
    write_out(a.out.as_deref(), &text)
}

fn run(a: RunArgs) -> Result<(), Failure> {
    if let Some(p) = a.serving.clone() {
        return serve(&a, &p);
    }
    let report = dyad::app::run::run(&a.model.spec(a.timing.into()))?;
    let format = match a.format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
        FormatArg::Md => Format::Md,
    };
    write_out(a.out.as_deref(), &report::render(&report, format))
}

fn graph(a: GraphArgs) -> Result<(), Failure> {
    let m = &a.model;
    let model = config::load_model(&m.model)?;
    let batch = match m.phase {
        PhaseArg::Decode => Batch::decode(m.batch.max(1), m.kv_len.max(1)),
        PhaseArg::Prefill => Batch::prefill(m.batch.max(1), m.prompt_len.max(1)),
    };
    let g = build_iteration(
        &model,
        &batch,
        m.tp.unwrap_or(1),
        Precision::uniform(model.dtype),
        &Routing::Uniform,
    )
    .map_err(|e| input_error(format!("model: {e}")))?;
    write_out(a.out.as_deref(), &g.to_dot())
}

fn cost(a: CostArgs) -> Result<(), Failure> {
    let sys = config::load_arch(&a.arch)?;
    let input: Box<dyn Read> = match a.input.as_deref() {
        None => Box::new(io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(io::stdin().lock()),
        Some(p) => Box::new(
            File::open(p).map_err(|e| input_error(format!("{}: cannot read: {e}", p.display())))?,
        ),
    };
    let name = a
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let mut buf = Vec::new();
    dyad::app::cost::cost_ops(input, &mut buf, &sys, a.timing.into())
        .map_err(|e| input_error(format!("{name}: {e}")))?;
    write_out(a.out.as_deref(), &String::from_utf8_lossy(&buf))
}

fn accuracy(a: AccuracyArgs) -> Result<(), Failure> {
    let samples = validation::load_samples(&a.data, &a.root)?;
    write_out(None, &validation::accuracy_markdown(&samples, a.worst))
}

fn validate(a: ValidateArgs) -> Result<(), Failure> {
    use dyad::map::Policy;
    use dyad::work::Dtype;
    let policies = if a.policy.is_empty() {
        Policy::ALL.to_vec()
    } else {
        a.policy
            .iter()
            .map(|p| match p {
                ValidatePolicyArg::AllXpu => Policy::AllXpu,
                ValidatePolicyArg::Dispatch => Policy::Dispatch,
                ValidatePolicyArg::Duplex => Policy::Duplex,
            })
            .collect()
    };
    let spec = dyad::app::validate::ValidateSpec {
        model: a.model,
        arch: a.arch,
        policies,
        tp: a.tp,
        ep: a.ep,
        scale: a.scale,
        layers: a.layers,
        dtype: a.dtype.map(|d| match d {
            DtypeArg::Bf16 => Dtype::Bf16,
            DtypeArg::Fp16 => Dtype::Fp16,
            DtypeArg::Fp32 => Dtype::Fp32,
        }),
        batch: a.batch,
        kv_len: a.kv_len,
        prompt_len: a.prompt_len,
        seed: a.seed,
    };
    let v = dyad::app::validate::validate(&spec)?;
    write_out(None, &dyad::app::validate::render(&v))?;
    match v.failures() {
        0 => Ok(()),
        n => Err(Failure {
            report: miette::miette!("{n} of {} checks failed", v.rows.len()),
            status: 1,
        }),
    }
}

fn ppa(a: PpaArgs) -> Result<(), Failure> {
    use dyad::app::ppa;
    if a.archs.is_empty() && a.die.is_empty() && !a.ffet_study && a.pim_study.is_none() {
        return Err(input_error(
            "dyad ppa needs an arch file, --die, --ffet-study or --pim-study (see --help)".into(),
        ));
    }
    let lib = ppa::library(Some(&a.tech))?;
    let mut out = String::new();
    if a.ffet_study {
        out += &ppa::ffet_study(&lib)?;
    }
    if let Some(d) = &a.pim_study {
        out += &ppa::pim_study(d, &lib)?;
    }
    let mut dies = Vec::new();
    for d in &a.die {
        let (_, r) = ppa::die_ppa(d, &lib)?;
        dies.push((d.display().to_string(), r));
    }
    out += &dyad::tech::ppa_table(&dies);
    let archs = a
        .archs
        .iter()
        .map(|p| ppa::arch_ppa(p, &lib))
        .collect::<Result<Vec<_>, _>>()?;
    if !archs.is_empty() {
        out += &ppa::render(&archs);
    }
    write_out(None, &out)
}

fn reproduce(a: ReproduceArgs) -> Result<(), Failure> {
    let Study::Duplex = a.study;
    use dyad::app::reproduce as study;
    // Duplex Table I setups (REFERENCE.md): 1 node x 4 for Mixtral, OPT and Llama3; 1 x 8 for
    // GLaM; 2 x 8 for Grok-1.
    let models = [
        ("mixtral-8x7b", 4),
        ("glam", 8),
        ("grok-1", 16),
        ("opt-66b", 4),
        ("llama-3-70b", 4),
    ];
    let points = study::duplex_grid(&models, &[32, 64, 128], &[256, 1024, 4096])?;
    let mut sat = Vec::new();
    for sys in [&study::DUPLEX_SYSTEMS[0], &study::DUPLEX_SYSTEMS[5]] {
        sat.push((
            sys.label.to_string(),
            study::saturation_rate("mixtral-8x7b", 4, sys)?,
        ));
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| input_error(format!("{}: {e}", a.out.display())))?;
    let mut w =
        csv::Writer::from_path(a.out.join("points.csv")).map_err(|e| input_error(e.to_string()))?;
    for p in &points {
        w.serialize(p).map_err(|e| input_error(e.to_string()))?;
    }
    w.flush().map_err(|e| input_error(e.to_string()))?;
    study::duplex_plots(&points, &a.out).map_err(input_error)?;
    let md = study::duplex_markdown(&points, &sat);
    write_out(Some(&a.out.join("README.md")), &md)?;
    write_out(None, &md)
}

fn list() -> Result<(), Failure> {
    let mut s = String::from("arch presets (--arch):\n");
    for n in presets::names("arch") {
        s += &format!("  {n}\n");
    }
    s += "model presets (--model):\n";
    for n in presets::names("workloads/models") {
        s += &format!("  {n}\n");
    }
    let lib = dyad::app::ppa::library(None)?;
    s += &format!(
        "technology nodes (node =): {}\ntransistor architectures (device =): {}\n",
        lib.node_names().join(", "),
        lib.device_names().join(", ")
    );
    write_out(None, &s)
}
