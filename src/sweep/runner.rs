//! Running a sweep: points in parallel (rayon), each finished point appended at once to a JSONL
//! file and flushed, so an interrupted sweep resumes without recomputing or losing a point;
//! deterministic shards and their merge.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::file::{Point, PointError, Sweep};
use super::{SweepError, flatten};
use crate::report::serving::ServingReport;
use crate::sim::serving::{ServingError, simulate};

/// One finished point, as one line of the JSONL file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The point's id: its position among the sweep's points after the axis-only constraints
    /// (0..n-1), as `FILE.jsonl#N` names it.
    pub index: usize,
    /// The point's index in the full grid, before constraints.
    pub grid: usize,
    /// Axis values by key.
    pub values: BTreeMap<String, serde_json::Value>,
    /// The point's seed ([`Sweep::seed`]).
    pub seed: u64,
    /// The serving metrics, flattened (`ttft_s.p90`); absent when the point failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    /// Why the point failed; absent when it ran.
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
    /// Worker threads (rayon's default, one per core, when `None`); at most [`MAX_JOBS`] and
    /// no more than the points to run are started.
    pub jobs: Option<usize>,
}

/// The most worker threads a sweep starts (`dyad sweep --jobs` refuses more).
pub const MAX_JOBS: usize = 1024;

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
        grid: p.grid,
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

/// Whether a record read back is the point `blank` describes: same grid index, values and seed.
fn same_point(blank: &Record, r: &Record) -> bool {
    blank.grid == r.grid && blank.values == r.values && blank.seed == r.seed
}

/// Why one point failed: recorded in its [`Record`] as text, counted, and the rest run.
#[derive(Debug, thiserror::Error)]
enum PointFailure {
    #[error(transparent)]
    Scenario(#[from] PointError),
    #[error("point {index}: {error}")]
    Serving { index: usize, error: ServingError },
    #[error("point {index}: capacity: {error}")]
    Capacity {
        index: usize,
        error: super::capacity::CapacityError,
    },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Guard(#[from] crate::report::guard::Violation),
}

/// Runs one point: its scenario, simulated, summarised.
pub fn run_point(sweep: &Sweep, p: &Point) -> Record {
    let mut r = blank(sweep, p);
    match point_metrics(sweep, p) {
        Ok(m) => r.metrics = Some(m),
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

/// A point's serving metrics, flattened.
fn point_metrics(sweep: &Sweep, p: &Point) -> Result<BTreeMap<String, f64>, PointFailure> {
    let sc = sweep.scenario(p)?;
    let res = simulate(&sc, None).map_err(|error| PointFailure::Serving {
        index: p.index,
        error,
    })?;
    let rep = ServingReport::new(&sc, &res);
    // The point records only the serving figures, so only they are checked (the timeline,
    // up to 200 samples, was most of the guard's time).
    crate::report::guard::check("serving", &rep.serving)?;
    let mut m = flatten(&serde_json::to_value(&rep.serving)?);
    if let Some(c) = &sweep.capacity {
        let found = c.metrics(&sc).map_err(|error| PointFailure::Capacity {
            index: p.index,
            error,
        })?;
        m.extend(found);
    }
    Ok(m)
}

/// Reads a JSONL file of records. A last line cut short (a kill during the write) is dropped;
/// any other unreadable line is an error naming it.
pub fn read_records(path: &Path) -> Result<Vec<Record>, SweepError> {
    let read = |error| SweepError::Read {
        path: path.to_path_buf(),
        error,
    };
    let f = File::open(path).map_err(read)?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(read)?;
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(error) => {
                return Err(SweepError::NotARecord {
                    path: path.to_path_buf(),
                    line: i + 1,
                    error,
                });
            }
        }
    }
    Ok(out)
}

fn write_records(path: &Path, records: &[Record]) -> Result<(), SweepError> {
    let tmp = path.with_extension("jsonl.tmp");
    let io = |error| SweepError::Write {
        path: path.to_path_buf(),
        error,
    };
    {
        let mut f = std::io::BufWriter::new(File::create(&tmp).map_err(io)?);
        for r in records {
            let line = serde_json::to_string(r)?;
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
            return Err(SweepError::BadShard { k, n });
        }
    }
    let points = shard_points(sweep.points(), opt.shard);
    let done = if opt.resume && opt.jsonl.exists() {
        let done = resumed(sweep, opt, &points)?;
        // Rewrite without a half-written last line, so appends start on a fresh line.
        write_records(&opt.jsonl, &done)?;
        done
    } else {
        write_records(&opt.jsonl, &[])?;
        Vec::new()
    };
    let todo: Vec<&Point> = points
        .iter()
        .filter(|p| !done.iter().any(|d| d.index == p.index))
        .collect();
    let (ran, failed) = run_todo(sweep, opt, &todo)?;
    Ok(RunSummary {
        total: points.len(),
        kept: done.len(),
        ran,
        failed,
    })
}

/// The records already in the JSONL, each checked to be a point of `points` with the values
/// and seed the sweep file gives it; a point found twice is kept once.
fn resumed(sweep: &Sweep, opt: &RunOptions, points: &[Point]) -> Result<Vec<Record>, SweepError> {
    let by_index: BTreeMap<usize, &Point> = points.iter().map(|p| (p.index, p)).collect();
    let mut done: Vec<Record> = Vec::new();
    for r in read_records(&opt.jsonl)? {
        let Some(p) = by_index.get(&r.index) else {
            return Err(SweepError::ResumeForeignPoint {
                jsonl: opt.jsonl.clone(),
                index: r.index,
                shard: opt.shard.is_some(),
            });
        };
        let b = blank(sweep, p);
        if !same_point(&b, &r) {
            return Err(SweepError::ResumeEditedPoint {
                jsonl: opt.jsonl.clone(),
                index: r.index,
            });
        }
        if !done.iter().any(|d| d.index == r.index) {
            done.push(r);
        }
    }
    Ok(done)
}

/// Runs `todo` in parallel (on `opt.jobs` threads), appending and flushing each record as it
/// finishes. Returns how many ran and how many of those failed.
fn run_todo(
    sweep: &Sweep,
    opt: &RunOptions,
    todo: &[&Point],
) -> Result<(usize, usize), SweepError> {
    let write = |error| SweepError::Write {
        path: opt.jsonl.clone(),
        error,
    };
    let file = OpenOptions::new()
        .append(true)
        .open(&opt.jsonl)
        .map_err(write)?;
    let out = Mutex::new(file);
    let bar = progress_bar(opt.progress, todo.len());
    let started = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let ran = AtomicUsize::new(0);
    let write_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
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
                *write_err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
            ran.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
        })
    };
    match opt.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.clamp(1, MAX_JOBS).min(todo.len().max(1)))
            .build()
            .map_err(|error| SweepError::Threads { n, error })?
            .install(work),
        None => work(),
    }
    bar.finish_and_clear();
    if let Some(e) = write_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(write(e));
    }
    Ok((ran.into_inner(), failed.into_inner()))
}

/// A bar of `len` points on standard error when asked for and it is a terminal; else hidden.
fn progress_bar(progress: bool, len: usize) -> ProgressBar {
    let bar = if progress && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} points  {per_sec}  elapsed {elapsed}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
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
                return Err(SweepError::MergeForeignPoint {
                    file: f.clone(),
                    index: r.index,
                    sweep: sweep.path.clone(),
                });
            };
            let b = blank(sweep, p);
            if !same_point(&b, &r) {
                return Err(SweepError::MergeEditedPoint {
                    file: f.clone(),
                    index: r.index,
                    sweep: sweep.path.clone(),
                });
            }
            if let Some(prev) = all.get(&r.index) {
                if *prev != r {
                    return Err(SweepError::MergeConflict {
                        file: f.clone(),
                        index: r.index,
                    });
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
