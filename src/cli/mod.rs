//! Command-line interface: argument definitions and glue. **Only this module knows clap.**
//!
//! Each command parses its arguments into a spec, calls one function of `dyad::app`, writes what
//! it returns, and turns the error into an exit status (`dyad::app::Status`: 0 ok, 1 a check
//! failed, 2 bad input, 3 internal error). A broken pipe on standard output (`dyad run | head`)
//! ends quietly with 0.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use dyad::app::{self, AppError, Status};

mod args;
mod capacity;
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
    Run(args::RunArgs),
    /// Print the op graph of one iteration as Graphviz DOT, as `dyad run` costs it: the same
    /// TP, and each op labelled with its time, what bounds it and the unit `--policy` places it on.
    Graph(args::GraphArgs),
    /// Cost single ops listed in a CSV file (or standard input) and write CSV.
    Cost(args::CostArgs),
    /// Compare the cost model with every row of the measured calibration data.
    Accuracy(args::AccuracyArgs),
    /// Run every op of a scaled-down model's iteration as the mapping splits it, on reference
    /// kernels: the split answer must equal the unsplit one and the work counted must equal
    /// the work the cost model charges. Exits with status 1 if any op fails.
    Validate(args::ValidateArgs),
    /// Area, power, frequency and cost of an arch's die, per block and per die.
    Ppa(args::PpaArgs),
    /// List the built-in arch and model presets.
    List,
    /// Rerun a paper's evaluation and write our figures beside its own.
    Reproduce(args::ReproduceArgs),
    /// Run a design-space sweep from a sweep file: points in parallel, resumable, shardable;
    /// writes points.jsonl, points.csv, pareto.md and pareto.svg. Exits with status 1 if a
    /// point failed (the others still run and are written).
    Sweep(sweep::SweepArgs),
    /// The highest arrival rate at which a serving scenario meets latency limits (p99 TTFT and
    /// TPOT), by bisection over seeded runs; per device and per dollar; with --out, the curve of
    /// rate against the percentiles as capacity.csv and curve.svg.
    Capacity(capacity::CapacityArgs),
    /// Join the JSONL files of a sharded sweep and write its outputs.
    Merge(sweep::MergeArgs),
    /// Set reports side by side: run or serving reports (JSON) and sweep points (FILE.jsonl#N),
    /// with ratios to the first, largest movers first, and per-layer deltas.
    Compare(sweep::CompareArgs),
    /// Fail as a bug in dyad would (exit status 3): for testing the exit statuses.
    #[command(hide = true)]
    InternalError,
}

pub(crate) fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Some(Cmd::Run(a)), Some(m)) = (&mut cli.cmd, matches.subcommand_matches("run")) {
        a.given = given(m);
    }
    let result = std::panic::catch_unwind(|| dispatch(cli)).unwrap_or_else(|_| {
        Err(AppError::Internal(
            "a panic (the message above says where); please report it",
        ))
    });
    for note in dyad::config::presets::take_notes() {
        eprintln!("{note}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = e.status();
            if status != Status::Ok {
                eprintln!("{:?}", miette::Report::new(e));
            }
            ExitCode::from(status as u8)
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), AppError> {
    match cli.cmd {
        None => {
            run(&args::RunArgs::default_run())?;
            stdout(&app::run::comparison_table(&app::run::duplex_comparison()?))
        }
        Some(Cmd::Run(a)) => run(&a),
        Some(Cmd::Graph(a)) => write_out(a.out.as_deref(), &app::graph::graph(&a.spec())?),
        Some(Cmd::Cost(a)) => write_out(a.out.as_deref(), &app::cost::cost(&a.spec())?),
        Some(Cmd::Accuracy(a)) => stdout(&app::accuracy::accuracy(&a.data, &a.root, a.worst)?),
        Some(Cmd::Validate(a)) => validate(&a),
        Some(Cmd::Ppa(a)) => stdout(&app::ppa::ppa(&a.spec())?),
        Some(Cmd::List) => stdout(&app::list::list()?),
        Some(Cmd::Reproduce(a)) => {
            let args::Study::Duplex = a.study;
            stdout(&app::reproduce::duplex(&a.out)?.markdown)
        }
        Some(Cmd::Sweep(a)) => sweep::sweep(&a),
        Some(Cmd::Merge(a)) => sweep::merge(&a),
        Some(Cmd::Capacity(a)) => capacity::capacity(&a),
        Some(Cmd::Compare(a)) => sweep::compare(&a),
        Some(Cmd::InternalError) => stdout(&app::internal_error()?),
    }
}

/// The ids of the arguments given on the command line (not left at their defaults).
fn given(m: &ArgMatches) -> Vec<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

fn run(a: &args::RunArgs) -> Result<(), AppError> {
    if let Some(e) = a.misplaced() {
        return Err(AppError::Usage(e));
    }
    let text = match &a.serving {
        Some(p) => {
            let served = app::run::serve(&a.serve_spec(p.clone()))?;
            for w in &served.warnings {
                eprintln!("warning: {w}");
            }
            served.text
        }
        None if a.pp.is_some() => pipelined(a)?,
        None => {
            let report = app::run::run(&a.spec())?;
            if let Some(dir) = &a.plot {
                app::run_plot::plot(&a.spec(), &report, dir)?;
            }
            app::run::render(&report, a.format)
        }
    };
    write_out(a.out.as_deref(), &text)
}

/// `dyad run --pp S`: the schedule as text, and its trace when asked.
fn pipelined(a: &args::RunArgs) -> Result<String, AppError> {
    let stages = a.pp.unwrap_or(1);
    let p = app::run_pp::pipeline(&a.spec(), stages, a.micro_batches)?;
    if let Some(path) = &a.pipeline_trace {
        write_out(Some(path), &app::run_pp::trace(&p))?;
    }
    Ok(app::run_pp::render(&p))
}

fn validate(a: &args::ValidateArgs) -> Result<(), AppError> {
    let v = app::validate::validate(&a.spec())?;
    stdout(&app::validate::render(&v))?;
    match v.failures() {
        0 => Ok(()),
        n => Err(AppError::ChecksFailed {
            failed: n,
            what: format!("of {} checks failed", v.rows.len()),
        }),
    }
}

/// Writes `text` to `out`, or to standard output.
fn write_out(out: Option<&Path>, text: &str) -> Result<(), AppError> {
    match out {
        Some(p) => std::fs::write(p, text).map_err(|e| AppError::cannot_write(p, e)),
        None => stdout(text),
    }
}

/// Writes `text` to standard output.
fn stdout(text: &str) -> Result<(), AppError> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(|e| AppError::Io {
            what: "cannot write to standard output".into(),
            source: e,
        })
}
