//! Running a sweep: points in parallel (rayon), each finished point appended at once to a JSONL
//! file and flushed, so an interrupted sweep resumes without recomputing or losing a point;
//! deterministic shards and their merge; the Slurm array script.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::file::{Point, Sweep};
use super::{SweepError, flatten};
use crate::report::serving::ServingReport;
use crate::sim::serving::simulate;

/// One finished point, as one line of the JSONL file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub index: usize,
    /// Axis values by key.
    pub values: BTreeMap<String, serde_json::Value>,
    pub seed: u64,
    /// The serving metrics, flattened (`ttft_s.p90`); absent when the point failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The JSONL file of finished points.
    pub jsonl: PathBuf,
    /// Keep the points already in `jsonl` and run only the rest.
    pub resume: bool,
    /// Run slice `k` of `n` (1-based): the points whose index is `k - 1` modulo `n`.
    pub shard: Option<(usize, usize)>,
    /// Draw a progress bar on standard error (only when it is a terminal).
    pub progress: bool,
    /// Stop after this many new points (as a kill would; for tests).
    pub stop_after: Option<usize>,
    /// Worker threads (rayon's default, one per core, when `None`).
    pub jobs: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Points of this run (or shard), after constraints.
    pub total: usize,
    /// Found done in the JSONL and kept.
    pub kept: usize,
    /// Run now.
    pub ran: usize,
    /// Of those run now, how many failed.
    pub failed: usize,
}

fn json_value(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The record a point would have (values and seed), before it runs.
fn blank(sweep: &Sweep, p: &Point) -> Record {
    Record {
        index: p.index,
        values: p
            .values
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
        seed: sweep.seed(p),
        metrics: None,
        error: None,
    }
}

/// Runs one point: its scenario, simulated, summarised.
pub fn run_point(sweep: &Sweep, p: &Point) -> Record {
    let mut r = blank(sweep, p);
    let out = sweep.scenario(p).and_then(|sc| {
        let res = simulate(&sc, false).map_err(|e| format!("point {}: {e}", p.index))?;
        let rep = ServingReport::new(&sc, &res);
        serde_json::to_value(&rep.serving)
            .map(|v| flatten(&v))
            .map_err(|e| e.to_string())
    });
    match out {
        Ok(m) => r.metrics = Some(m),
        Err(e) => r.error = Some(e),
    }
    r
}

/// Reads a JSONL file of records. A last line cut short (a kill during the write) is dropped;
/// any other unreadable line is an error naming it.
pub fn read_records(path: &Path) -> Result<Vec<Record>, SweepError> {
    let f = File::open(path)
        .map_err(|e| SweepError::Input(format!("{}: cannot read: {e}", path.display())))?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| SweepError::Input(format!("{}: cannot read: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(SweepError::Input(format!(
                    "{}:{}: not a sweep point: {e}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

fn write_records(path: &Path, records: &[Record]) -> Result<(), SweepError> {
    let tmp = path.with_extension("jsonl.tmp");
    let io =
        |e: std::io::Error| SweepError::Input(format!("{}: cannot write: {e}", path.display()));
    {
        let mut f = std::io::BufWriter::new(File::create(&tmp).map_err(io)?);
        for r in records {
            let line = serde_json::to_string(r).map_err(|e| SweepError::Input(e.to_string()))?;
            writeln!(f, "{line}").map_err(io)?;
        }
        f.flush().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The points of a shard (1-based `k` of `n`), or all of them.
pub fn shard_points(points: Vec<Point>, shard: Option<(usize, usize)>) -> Vec<Point> {
    match shard {
        None => points,
        Some((k, n)) => points
            .into_iter()
            .filter(|p| p.index % n == k - 1)
            .collect(),
    }
}

/// Runs the sweep's points (or one shard of them), appending each finished one to the JSONL.
pub fn run(sweep: &Sweep, opt: &RunOptions) -> Result<RunSummary, SweepError> {
    if let Some((k, n)) = opt.shard {
        if n == 0 || k == 0 || k > n {
            return Err(SweepError::Input(format!(
                "--shard {k}/{n}: need 1 <= K <= N"
            )));
        }
    }
    let points = shard_points(sweep.points(), opt.shard);
    let by_index: BTreeMap<usize, &Point> = points.iter().map(|p| (p.index, p)).collect();
    let mut done: Vec<Record> = Vec::new();
    if opt.resume && opt.jsonl.exists() {
        for r in read_records(&opt.jsonl)? {
            let Some(p) = by_index.get(&r.index) else {
                return Err(SweepError::Input(format!(
                    "{}: point {} is not a point of this sweep{}; was it written by another sweep file or shard?",
                    opt.jsonl.display(),
                    r.index,
                    if opt.shard.is_some() { " shard" } else { "" }
                )));
            };
            let b = blank(sweep, p);
            if b.values != r.values || b.seed != r.seed {
                return Err(SweepError::Input(format!(
                    "{}: point {} has other values than this sweep file gives it; was the sweep file edited?",
                    opt.jsonl.display(),
                    r.index
                )));
            }
            if !done.iter().any(|d| d.index == r.index) {
                done.push(r);
            }
        }
        // Rewrite without a half-written last line, so appends start on a fresh line.
        write_records(&opt.jsonl, &done)?;
    } else {
        write_records(&opt.jsonl, &[])?;
    }
    let todo: Vec<&Point> = points
        .iter()
        .filter(|p| !done.iter().any(|d| d.index == p.index))
        .collect();
    let file = OpenOptions::new()
        .append(true)
        .open(&opt.jsonl)
        .map_err(|e| SweepError::Input(format!("{}: cannot write: {e}", opt.jsonl.display())))?;
    let out = Mutex::new(file);
    let bar = if opt.progress && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} points  {per_sec}  elapsed {elapsed}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let ran = AtomicUsize::new(0);
    let write_err: Mutex<Option<String>> = Mutex::new(None);
    let work = || {
        todo.par_iter().for_each(|p| {
            if opt
                .stop_after
                .is_some_and(|n| started.fetch_add(1, Ordering::SeqCst) >= n)
            {
                return;
            }
            let r = run_point(sweep, p);
            if r.error.is_some() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            let line = serde_json::to_string(&r).unwrap_or_default();
            let mut f = out.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = writeln!(f, "{line}").and_then(|()| f.flush()) {
                *write_err.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{}: cannot write: {e}", opt.jsonl.display()));
            }
            ran.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
        })
    };
    match opt.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| SweepError::Input(format!("cannot start {n} threads: {e}")))?
            .install(work),
        None => work(),
    }
    bar.finish_and_clear();
    if let Some(e) = write_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(SweepError::Input(e));
    }
    Ok(RunSummary {
        total: points.len(),
        kept: done.len(),
        ran: ran.into_inner(),
        failed: failed.into_inner(),
    })
}

/// Joins the JSONL files of shards into one list sorted by point, checking that a point found
/// twice is the same both times. Returns the records and the indices of the sweep's points
/// that no file holds.
pub fn merge(sweep: &Sweep, files: &[PathBuf]) -> Result<(Vec<Record>, Vec<usize>), SweepError> {
    let mut all: BTreeMap<usize, Record> = BTreeMap::new();
    let points = sweep.points();
    for f in files {
        for r in read_records(f)? {
            let Some(p) = points.iter().find(|p| p.index == r.index) else {
                return Err(SweepError::Input(format!(
                    "{}: point {} is not a point of {}",
                    f.display(),
                    r.index,
                    sweep.path.display()
                )));
            };
            let b = blank(sweep, p);
            if b.values != r.values || b.seed != r.seed {
                return Err(SweepError::Input(format!(
                    "{}: point {} has other values than {} gives it",
                    f.display(),
                    r.index,
                    sweep.path.display()
                )));
            }
            if let Some(prev) = all.get(&r.index) {
                if *prev != r {
                    return Err(SweepError::Input(format!(
                        "{}: point {} differs from the same point in an earlier file",
                        f.display(),
                        r.index
                    )));
                }
            } else {
                all.insert(r.index, r);
            }
        }
    }
    let missing = points
        .iter()
        .map(|p| p.index)
        .filter(|i| !all.contains_key(i))
        .collect();
    Ok((all.into_values().collect(), missing))
}

/// Writes records sorted by point to `path` (the merged or final JSONL).
pub fn write_sorted(path: &Path, records: &[Record]) -> Result<(), SweepError> {
    let mut r = records.to_vec();
    r.sort_by_key(|r| r.index);
    write_records(path, &r)
}

/// A Slurm array job that runs each shard of the sweep, then the merge to run after it.
pub fn slurm_script(sweep_file: &Path, out: &Path, shards: usize) -> String {
    let s = sweep_file.display();
    let o = out.display();
    format!(
        "#!/bin/bash\n\
         # Runs {s} as {shards} shards; each writes {o}/shard-K-of-{shards}.jsonl and resumes it\n\
         # if the job is requeued. When every task has finished:\n\
         #   dyad merge {s} --out {o} {o}/shard-*-of-{shards}.jsonl\n\
         #SBATCH --job-name=dyad-sweep\n\
         #SBATCH --array=1-{shards}\n\
         #SBATCH --cpus-per-task=4\n\
         #SBATCH --output={o}/slurm-%A_%a.log\n\
         set -euo pipefail\n\
         mkdir -p {o}\n\
         dyad sweep {s} --out {o} --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\" --resume --quiet\n"
    )
}
