//! `dyad sweep --status DIR`: how far a sweep has got, from the JSONL files in its output
//! folder (`points.jsonl` and `shard-K-of-N.jsonl`), while it runs or after. A line that a task
//! is writing at that moment is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::runner::{read_records, shard_points};
use super::{Sweep, SweepError};

/// One JSONL file's points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The file.
    pub file: PathBuf,
    /// Its shard (K of N, 1-based), or `None` for `points.jsonl`.
    pub shard: Option<(usize, usize)>,
    /// Points it holds (each counted once).
    pub done: usize,
    /// Of those, how many failed.
    pub failed: usize,
    /// Points it is to hold, when the sweep file is known.
    pub total: Option<usize>,
}

/// A sweep's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The folder read.
    pub dir: PathBuf,
    /// Each JSONL file, `points.jsonl` first, then shards by N and K.
    pub files: Vec<FileStatus>,
    /// Shards `K of N` with no file yet, for each N that has a file.
    pub not_started: Vec<(usize, usize)>,
    /// Points in any file, each counted once.
    pub done: usize,
    /// Of those, how many failed.
    pub failed: usize,
    /// The sweep's points, when the sweep file is known.
    pub total: Option<usize>,
}

/// `shard-K-of-N.jsonl` → (K, N).
fn shard_of(name: &str) -> Option<(usize, usize)> {
    let (k, n) = name
        .strip_prefix("shard-")?
        .strip_suffix(".jsonl")?
        .split_once("-of-")?;
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some((k, n))
}

/// Reads the JSONL files of `dir`; with the sweep file, each file's count of points to run too.
pub fn status(dir: &Path, sweep: Option<&Sweep>) -> Result<Status, SweepError> {
    let read = |error| SweepError::Read {
        path: dir.to_path_buf(),
        error,
    };
    let mut found: Vec<(Option<(usize, usize)>, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(read)? {
        let path = e.map_err(read)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name.as_deref() {
            Some("points.jsonl") => found.push((None, path)),
            Some(n) => {
                if let Some(s) = shard_of(n) {
                    found.push((Some(s), path));
                }
            }
            None => {}
        }
    }
    found.sort_by_key(|(s, _)| s.map(|(k, n)| (n, k)));
    let points = sweep.map(Sweep::points);
    let mut all: BTreeMap<usize, bool> = BTreeMap::new();
    let mut files = Vec::new();
    for (shard, file) in found {
        let mut seen: BTreeMap<usize, bool> = BTreeMap::new();
        for r in read_records(&file)? {
            seen.insert(r.index, r.error.is_some());
        }
        all.extend(seen.iter().map(|(i, f)| (*i, *f)));
        files.push(FileStatus {
            total: points
                .as_ref()
                .map(|p| shard_points(p.clone(), shard).len()),
            done: seen.len(),
            failed: seen.values().filter(|f| **f).count(),
            file,
            shard,
        });
    }
    let have: BTreeSet<(usize, usize)> = files.iter().filter_map(|f| f.shard).collect();
    let ns: BTreeSet<usize> = have.iter().map(|(_, n)| *n).collect();
    let not_started = ns
        .iter()
        .flat_map(|&n| (1..=n).map(move |k| (k, n)))
        .filter(|s| !have.contains(s))
        .collect();
    Ok(Status {
        dir: dir.to_path_buf(),
        files,
        not_started,
        done: all.len(),
        failed: all.values().filter(|f| **f).count(),
        total: points.map(|p| p.len()),
    })
}

/// `done` or `done of total`, with the failed among them.
fn count(done: usize, total: Option<usize>, failed: usize) -> String {
    let mut s = match total {
        Some(t) => format!("{done} of {t} points done"),
        None => format!("{done} points done"),
    };
    if failed > 0 {
        let _ = write!(s, " ({failed} failed)");
    }
    s
}

impl Status {
    /// One line per file and per shard not started, then the total.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.files.is_empty() {
            let _ = writeln!(
                s,
                "{}: no points.jsonl or shard-K-of-N.jsonl yet",
                self.dir.display()
            );
            return s;
        }
        for f in &self.files {
            let what = match f.shard {
                Some((k, n)) => format!("shard {k}/{n}"),
                None => "points.jsonl".to_string(),
            };
            let _ = writeln!(s, "{what}: {}", count(f.done, f.total, f.failed));
        }
        for (k, n) in &self.not_started {
            let _ = writeln!(s, "shard {k}/{n}: not started (no shard-{k}-of-{n}.jsonl)");
        }
        let _ = writeln!(s, "all: {}", count(self.done, self.total, self.failed));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn shard_names_are_read_and_others_ignored() {
        assert_eq!(shard_of("shard-3-of-8.jsonl"), Some((3, 8)));
        assert_eq!(shard_of("shard-9-of-8.jsonl"), None);
        assert_eq!(shard_of("shard-0-of-8.jsonl"), None);
        assert_eq!(shard_of("shard-1-of-2.jsonl.tmp"), None);
        assert_eq!(shard_of("points.jsonl"), None);
    }
}
