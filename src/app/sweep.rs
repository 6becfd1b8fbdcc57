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
    /// Write the Slurm scripts of an array of this many shards, and run nothing.
    pub emit_slurm: Option<usize>,
    /// How the Slurm scripts run.
    pub slurm: SlurmSpec,
}

/// What the `--emit-slurm` scripts run.
#[derive(Debug, Clone, Default)]
pub struct SlurmSpec {
    /// The binary the tasks run; the running one when `None`.
    pub dyad: Option<PathBuf>,
    /// CPUs per task (and worker threads).
    pub cpus_per_task: usize,
    /// More `#SBATCH` options.
    pub sbatch: Vec<String>,
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
        return emit_slurm(a, n);
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

/// The absolute form of `p` (canonical when it exists), or an error naming it.
fn absolute(p: &Path) -> Result<PathBuf, AppError> {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .map_err(|e| AppError::io(p, e))
}

/// Writes `text` to `p`, executable when `exec`.
fn write_script(p: &Path, text: &str, exec: bool) -> Result<(), AppError> {
    write(p, text)?;
    #[cfg(unix)]
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| AppError::cannot_write(p, e))?;
    }
    Ok(())
}

/// `--emit-slurm N`: `sweep.slurm`, `merge.slurm` and `submit.sh` in the output folder, every
/// path in them absolute, and `logs/` for the tasks' logs.
fn emit_slurm(a: &SweepSpec, n: usize) -> Result<SweepOutcome, AppError> {
    if n == 0 {
        return Err(AppError::Usage("--emit-slurm needs at least 1 shard"));
    }
    if a.slurm.cpus_per_task == 0 {
        return Err(AppError::Usage("--slurm-cpus needs at least 1 CPU"));
    }
    let dyad = match &a.slurm.dyad {
        Some(p) => absolute(p)?,
        None => std::env::current_exe().map_err(|e| AppError::io(Path::new("dyad"), e))?,
    };
    let out = absolute(&a.out)?;
    mkdir(&out.join("logs"))?;
    let job = sw::slurm::SlurmJob {
        dyad,
        sweep_file: absolute(&a.file)?,
        out: out.clone(),
        shards: n,
        cpus_per_task: a.slurm.cpus_per_task,
        sbatch: a.slurm.sbatch.clone(),
    };
    let s = job.scripts()?;
    write_script(&out.join("sweep.slurm"), &s.array, false)?;
    write_script(&out.join("merge.slurm"), &s.merge, false)?;
    write_script(&out.join("submit.sh"), &s.submit, true)?;
    Ok(SweepOutcome {
        text: String::new(),
        summary: format!(
            "wrote {0}/sweep.slurm ({n} tasks), {0}/merge.slurm and {0}/submit.sh; \
             submit both with {0}/submit.sh",
            out.display()
        ),
        failed: 0,
        missing: Vec::new(),
    })
}

/// `dyad sweep --status DIR`: the points done per shard and in all; with the sweep file, out
/// of how many.
pub fn status(dir: &Path, file: Option<&Path>) -> Result<String, AppError> {
    let sweep = file.map(Sweep::load).transpose()?;
    Ok(sw::status::status(dir, sweep.as_ref())?.render())
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
