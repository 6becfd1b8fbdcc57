//! `dyad sweep`, `dyad merge`, `dyad compare`.

use std::path::PathBuf;

use clap::Args;

use dyad::sweep::{self as sw, RunOptions, Sweep};

use super::{Failure, input_error, write_out};

#[derive(Args)]
pub(super) struct SweepArgs {
    /// The sweep file (TOML: scenario, axes, constraints, objectives).
    file: PathBuf,
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
    /// Worker threads (default: one per core).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Write a Slurm array job script running N shards (OUT/sweep.slurm) and run nothing.
    #[arg(long, value_name = "N")]
    emit_slurm: Option<usize>,
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
    /// Show at most this many metrics (and layers).
    #[arg(long, default_value_t = 40)]
    top: usize,
    /// Show every value that differs.
    #[arg(long)]
    all: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn mkdir(p: &std::path::Path) -> Result<(), Failure> {
    std::fs::create_dir_all(p).map_err(|e| input_error(format!("{}: {e}", p.display())))
}

pub(super) fn sweep(a: SweepArgs) -> Result<(), Failure> {
    let s = Sweep::load(&a.file)?;
    mkdir(&a.out)?;
    if let Some(n) = a.emit_slurm {
        if n == 0 {
            return Err(input_error("--emit-slurm needs at least 1 shard".into()));
        }
        let p = a.out.join("sweep.slurm");
        write_out(Some(&p), &sw::runner::slurm_script(&a.file, &a.out, n))?;
        eprintln!("wrote {}", p.display());
        return Ok(());
    }
    let jsonl = match a.shard {
        Some((k, n)) => a.out.join(format!("shard-{k}-of-{n}.jsonl")),
        None => a.out.join("points.jsonl"),
    };
    let opt = RunOptions {
        jsonl: jsonl.clone(),
        resume: a.resume,
        shard: a.shard,
        progress: !a.quiet,
        stop_after: None,
        jobs: a.jobs,
    };
    let sum = sw::run(&s, &opt)?;
    eprintln!(
        "{}: {} points: {} kept from an earlier run, {} run now, {} failed",
        jsonl.display(),
        sum.total,
        sum.kept,
        sum.ran,
        sum.failed
    );
    if a.shard.is_none() {
        let mut recs = sw::read_records(&jsonl)?;
        recs.sort_by_key(|r| r.index);
        sw::runner::write_sorted(&jsonl, &recs)?;
        sw::output::write_all(&s, &recs, &a.out)?;
        write_out(None, &sw::output::pareto_table(&s, &recs))?;
    }
    failed_status(sum.failed)
}

fn failed_status(failed: usize) -> Result<(), Failure> {
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure {
            report: miette::miette!(
                "{failed} points failed (their errors are in the JSONL and CSV)"
            ),
            status: 1,
        })
    }
}

pub(super) fn merge(a: MergeArgs) -> Result<(), Failure> {
    let s = Sweep::load(&a.file)?;
    let (recs, missing) = sw::merge(&s, &a.shards)?;
    mkdir(&a.out)?;
    sw::runner::write_sorted(&a.out.join("points.jsonl"), &recs)?;
    sw::output::write_all(&s, &recs, &a.out)?;
    write_out(None, &sw::output::pareto_table(&s, &recs))?;
    if !missing.is_empty() {
        return Err(input_error(format!(
            "{} points are in no shard (first: {:?}); run the missing shards and merge again",
            missing.len(),
            &missing[..missing.len().min(8)]
        )));
    }
    failed_status(recs.iter().filter(|r| r.error.is_some()).count())
}

pub(super) fn compare(a: CompareArgs) -> Result<(), Failure> {
    let flats = a
        .reports
        .iter()
        .map(|r| sw::compare::load(r))
        .collect::<Result<Vec<_>, _>>()?;
    let top = if a.all { None } else { Some(a.top) };
    write_out(a.out.as_deref(), &sw::compare::render(&flats, top))
}
