//! `dyad sweep`, `dyad merge`, `dyad compare`.

use std::path::PathBuf;

use clap::Args;
use clap::builder::RangedU64ValueParser;

use dyad::app::sweep::MAX_JOBS;
use dyad::app::{self, AppError};

use super::{stdout, write_out};

#[derive(Args)]
pub(super) struct SweepArgs {
    /// The sweep file (TOML: scenario, axes, constraints, objectives).
    #[arg(required_unless_present = "status")]
    file: Option<PathBuf>,
    /// Folder for points.jsonl, points.csv, pareto.md and pareto.svg.
    #[arg(long, default_value = "sweep-out")]
    out: PathBuf,
    /// Keep the points already in the JSONL and run only the rest.
    #[arg(long)]
    resume: bool,
    /// Run slice K of N (1-based) into shard-K-of-N.jsonl; join slices with `dyad merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Worker threads (default: one per core), 1 to 1024; no more start than there are points
    /// to run.
    #[arg(long, short, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_JOBS as u64))]
    jobs: Option<usize>,
    /// Write a Slurm array job of N shards (OUT/sweep.slurm), a merge job (OUT/merge.slurm)
    /// and OUT/submit.sh, which submits both; run nothing.
    #[arg(long, value_name = "N")]
    emit_slurm: Option<usize>,
    #[command(flatten)]
    slurm: SlurmArgs,
    /// Print the points done per shard and in all from the JSONL files in DIR (a run in
    /// progress, or finished); with the sweep file, the points each shard has to run too.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["emit_slurm", "shard", "resume"])]
    status: Option<PathBuf>,
}

/// The options of the `--emit-slurm` scripts.
#[derive(Args)]
struct SlurmArgs {
    /// The dyad binary the Slurm tasks run (default: this one).
    #[arg(long, value_name = "PATH", requires = "emit_slurm")]
    slurm_dyad: Option<PathBuf>,
    /// CPUs per Slurm task, each running that many worker threads.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "emit_slurm")]
    slurm_cpus: usize,
    /// One more #SBATCH option for the scripts, as written (repeatable):
    /// --sbatch=--partition=batch --sbatch=--time=02:00:00.
    #[arg(
        long,
        value_name = "OPTION",
        allow_hyphen_values = true,
        requires = "emit_slurm"
    )]
    sbatch: Vec<String>,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("\"{s}\": expected K/N with 1 <= K <= N, e.g. 2/8");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[derive(Args)]
pub(super) struct MergeArgs {
    /// The sweep file the shards ran.
    file: PathBuf,
    /// The shards' JSONL files.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Folder for points.jsonl, points.csv, pareto.md and pareto.svg.
    #[arg(long, default_value = "sweep-out")]
    out: PathBuf,
}

#[derive(Args)]
pub(super) struct CompareArgs {
    /// Two or more reports: FILE.json (dyad run / dyad run --serving --format json) or
    /// FILE.jsonl#N (point N of a sweep).
    #[arg(required = true, num_args = 2..)]
    reports: Vec<String>,
    /// Show at most this many rows in each section (changed, from zero, new, missing, not
    /// finite, per-layer).
    #[arg(long, default_value_t = 40)]
    top: usize,
    /// Show every row of every section.
    #[arg(long)]
    all: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl SweepArgs {
    fn spec(&self, file: PathBuf) -> app::sweep::SweepSpec {
        app::sweep::SweepSpec {
            file,
            out: self.out.clone(),
            resume: self.resume,
            shard: self.shard,
            progress: !self.quiet,
            jobs: self.jobs,
            emit_slurm: self.emit_slurm,
            slurm: app::sweep::SlurmSpec {
                dyad: self.slurm.slurm_dyad.clone(),
                cpus_per_task: self.slurm.slurm_cpus,
                sbatch: self.slurm.sbatch.clone(),
            },
        }
    }
}

/// Prints the outcome (table on standard output, summary on standard error), then its status.
fn report(o: &app::sweep::SweepOutcome) -> Result<(), AppError> {
    if !o.summary.is_empty() {
        eprintln!("{}", o.summary);
    }
    stdout(&o.text)?;
    o.check()
}

pub(super) fn sweep(a: &SweepArgs) -> Result<(), AppError> {
    match (&a.status, &a.file) {
        (Some(dir), file) => stdout(&app::sweep::status(dir, file.as_deref())?),
        (None, Some(file)) => report(&app::sweep::sweep(&a.spec(file.clone()))?),
        (None, None) => Err(AppError::Usage("dyad sweep needs a sweep file")),
    }
}

pub(super) fn merge(a: &MergeArgs) -> Result<(), AppError> {
    report(&app::sweep::merge(&a.file, &a.shards, &a.out)?)
}

pub(super) fn compare(a: &CompareArgs) -> Result<(), AppError> {
    let top = if a.all { None } else { Some(a.top) };
    write_out(a.out.as_deref(), &app::sweep::compare(&a.reports, top)?)
}
