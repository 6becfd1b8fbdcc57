//! `dyad sweep`, `dyad merge` and `dyad compare`: design-space sweeps from a sweep file, the
//! join of their shards, and reports set side by side.

use std::path::{Path, PathBuf};

use crate::sweep::{self as sw, RunOptions, Sweep};

use super::AppError;

pub use crate::sweep::MAX_JOBS;

/// What `dyad sweep` runs.
pub struct SweepSpec {
    /// The sweep file.
    pub file: PathBuf,
    /// Folder for points.jsonl, points.csv, pareto.md and pareto.svg.
    pub out: PathBuf,
    /// Keep the points already in the JSONL and run only the rest.
    pub resume: bool,
    /// Run slice K of N (1-based) into shard-K-of-N.jsonl.
    pub shard: Option<(usize, usize)>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Worker threads (default: one per core; at most [`MAX_JOBS`]).
    pub jobs: Option<usize>,
    /// Write a Slurm array job script running this many shards, and run nothing.
    pub emit_slurm: Option<usize>,
}

/// What a sweep or merge printed, and how many of its points failed.
pub struct SweepOutcome {
    /// The Pareto table (or the Slurm script's path), for standard output.
    pub text: String,
    /// One line for standard error: what ran.
    pub summary: String,
    /// Points whose run failed (their errors are in the JSONL and CSV).
    pub failed: usize,
    /// Points in no shard (merge only).
    pub missing: Vec<usize>,
}

impl SweepOutcome {
    /// `Ok` if every point is there and ran; else the failure to report once the outputs are
    /// written: points in no shard (status 2), or failed points (status 1).
    pub fn check(&self) -> Result<(), AppError> {
        if !self.missing.is_empty() {
            return Err(AppError::MissingShards {
                missing: self.missing.len(),
                first: self.missing[..self.missing.len().min(8)].to_vec(),
            });
        }
        match self.failed {
            0 => Ok(()),
            n => Err(AppError::ChecksFailed {
                failed: n,
                what: "points failed (their errors are in the JSONL and CSV)".into(),
            }),
        }
    }
}

fn mkdir(p: &Path) -> Result<(), AppError> {
    std::fs::create_dir_all(p).map_err(|e| AppError::io(p, e))
}

fn write(p: &Path, text: &str) -> Result<(), AppError> {
    std::fs::write(p, text).map_err(|e| AppError::cannot_write(p, e))
}

/// `dyad sweep`: runs the points (or writes the Slurm script) and writes the outputs.
pub fn sweep(a: &SweepSpec) -> Result<SweepOutcome, AppError> {
    let s = Sweep::load(&a.file)?;
    mkdir(&a.out)?;
    if let Some(n) = a.emit_slurm {
        if n == 0 {
            return Err(AppError::Usage("--emit-slurm needs at least 1 shard"));
        }
        let p = a.out.join("sweep.slurm");
        write(&p, &sw::runner::slurm_script(&a.file, &a.out, n))?;
        return Ok(SweepOutcome {
            text: String::new(),
            summary: format!("wrote {}", p.display()),
            failed: 0,
            missing: Vec::new(),
        });
    }
    let jsonl = match a.shard {
        Some((k, n)) => a.out.join(format!("shard-{k}-of-{n}.jsonl")),
        None => a.out.join("points.jsonl"),
    };
    let opt = RunOptions {
        jsonl: jsonl.clone(),
        resume: a.resume,
        shard: a.shard,
        progress: a.progress,
        stop_after: None,
        jobs: a.jobs,
    };
    let sum = sw::run(&s, &opt)?;
    let summary = format!(
        "{}: {} points: {} kept from an earlier run, {} run now, {} failed",
        jsonl.display(),
        sum.total,
        sum.kept,
        sum.ran,
        sum.failed
    );
    let mut text = String::new();
    if a.shard.is_none() {
        let mut recs = sw::read_records(&jsonl)?;
        recs.sort_by_key(|r| r.index);
        sw::runner::write_sorted(&jsonl, &recs)?;
        sw::output::write_all(&s, &recs, &a.out)?;
        text = sw::output::pareto_table(&s, &recs);
    }
    Ok(SweepOutcome {
        text,
        summary,
        failed: sum.failed,
        missing: Vec::new(),
    })
}

/// `dyad merge`: joins the shards' JSONL files of `file`'s sweep and writes its outputs in `out`.
pub fn merge(file: &Path, shards: &[PathBuf], out: &Path) -> Result<SweepOutcome, AppError> {
    let s = Sweep::load(file)?;
    let (recs, missing) = sw::merge(&s, shards)?;
    mkdir(out)?;
    sw::runner::write_sorted(&out.join("points.jsonl"), &recs)?;
    sw::output::write_all(&s, &recs, out)?;
    Ok(SweepOutcome {
        text: sw::output::pareto_table(&s, &recs),
        summary: String::new(),
        failed: recs.iter().filter(|r| r.error.is_some()).count(),
        missing,
    })
}

/// `dyad compare`: the reports (FILE.json or FILE.jsonl#N) side by side, at most `top` metrics
/// (all with `None`).
pub fn compare(reports: &[String], top: Option<usize>) -> Result<String, AppError> {
    let flats = reports
        .iter()
        .map(|r| sw::compare::load(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sw::compare::render(&flats, top))
}
