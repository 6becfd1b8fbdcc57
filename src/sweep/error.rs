//! Why a sweep, merge or compare cannot go on: a file, a JSONL line or an argument, named by
//! the case. A single point's failure is not one of these: it is recorded and counted.

use std::path::PathBuf;

use super::file::PointError;
use crate::config::ConfigError;
use crate::hw::CostError;
use crate::model::ModelError;

/// A sweep failure that is not a single point's: bad files, unwritable outputs.
///
/// An underlying error is part of the message (`{path}: cannot read: {error}`), as the user has
/// always seen it, so it is kept in a field named `error` rather than given as a `source` that
/// the renderer would print a second time.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SweepError {
    /// The sweep file, or the scenario and arch it names (with file:line:col).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// A file that cannot be read (a JSONL file, a report to compare).
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A file that cannot be written (the JSONL file, an output).
    #[error("{}: cannot write: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A line of a JSONL file, other than a last line cut short, that is no sweep point.
    #[error("{}:{line}: not a sweep point: {error}", path.display())]
    NotARecord {
        /// The JSONL file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What the JSON reader found.
        error: serde_json::Error,
    },
    /// `--shard K/N` outside `1 <= K <= N`.
    #[error("--shard {k}/{n}: need 1 <= K <= N")]
    BadShard {
        /// The slice asked for.
        k: usize,
        /// The number of slices.
        n: usize,
    },
    /// `--resume` found a point that this sweep (or shard) does not have.
    #[error(
        "{}: point {index} is not a point of this sweep{}; was it written by another sweep file or shard?",
        jsonl.display(),
        if *shard { " shard" } else { "" }
    )]
    ResumeForeignPoint {
        /// The JSONL file resumed.
        jsonl: PathBuf,
        /// The point's index.
        index: usize,
        /// Whether the run is one shard.
        shard: bool,
    },
    /// `--resume` found a point whose values or seed differ from the sweep file's.
    #[error(
        "{}: point {index} has other values than this sweep file gives it; was the sweep file edited?",
        jsonl.display()
    )]
    ResumeEditedPoint {
        /// The JSONL file resumed.
        jsonl: PathBuf,
        /// The point's index.
        index: usize,
    },
    /// A shard to merge holds a point that the sweep does not have.
    #[error("{}: point {index} is not a point of {}", file.display(), sweep.display())]
    MergeForeignPoint {
        /// The shard's JSONL file.
        file: PathBuf,
        /// The point's index.
        index: usize,
        /// The sweep file.
        sweep: PathBuf,
    },
    /// A shard to merge holds a point whose values or seed differ from the sweep file's.
    #[error("{}: point {index} has other values than {} gives it", file.display(), sweep.display())]
    MergeEditedPoint {
        /// The shard's JSONL file.
        file: PathBuf,
        /// The point's index.
        index: usize,
        /// The sweep file.
        sweep: PathBuf,
    },
    /// Two shards hold the same point with different results.
    #[error("{}: point {index} differs from the same point in an earlier file", file.display())]
    MergeConflict {
        /// The later shard's JSONL file.
        file: PathBuf,
        /// The point's index.
        index: usize,
    },
    /// The worker pool of `--jobs N` cannot start.
    #[error("cannot start {n} threads: {error}")]
    Threads {
        /// The threads asked for.
        n: usize,
        /// Rayon's error.
        error: rayon::ThreadPoolBuildError,
    },
    /// A path the Slurm scripts cannot hold.
    #[error("--emit-slurm: {}: {why}", path.display())]
    SlurmPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A record that does not serialize (a bug: records are plain data).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The points CSV cannot be written.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// The points CSV is not UTF-8 (a bug: every cell is a Rust string).
    #[error(transparent)]
    CsvText(#[from] std::string::FromUtf8Error),
    /// A plot could not be drawn or written (its message names the SVG file).
    #[error("{0}")]
    Plot(crate::report::plot::PlotError),
    /// The point chosen for the iteration plots has no scenario.
    #[error(transparent)]
    Point(#[from] PointError),
    /// The plotted point's iteration cannot be built.
    #[error("point {index}: {error}")]
    PlotModel {
        /// The point's index.
        index: usize,
        /// What the model found.
        error: ModelError,
    },
    /// The plotted point's iteration cannot be costed.
    #[error("point {index}: {error}")]
    PlotCost {
        /// The point's index.
        index: usize,
        /// What the cost model found.
        error: CostError,
    },
    /// `dyad compare FILE#N` with an `N` that is not a number.
    #[error("{arg}: `#{n}` is not a point number")]
    BadPointNumber {
        /// The argument as given.
        arg: String,
        /// What follows the `#`.
        n: String,
    },
    /// A report to compare that is not JSON.
    #[error("{file}: not JSON: {error}")]
    NotJson {
        /// The file.
        file: String,
        /// What the JSON reader found.
        error: serde_json::Error,
    },
    /// A `dyad compare` input that is not a report dyad writes.
    #[error("{file}: not a dyad report: {why}")]
    NotAReport {
        /// The file.
        file: String,
        /// What is wrong with it.
        why: String,
    },
    /// A report to compare whose JSON is not an object.
    #[error("{file}: expected a JSON object")]
    NotAnObject {
        /// The file.
        file: String,
    },
    /// `FILE.jsonl#N` with no point `N` in the file.
    #[error("{file}: no point {index}; it holds {points} points, ids 0 to {}", points.saturating_sub(1))]
    NoSuchPoint {
        /// The JSONL file.
        file: String,
        /// The point asked for.
        index: usize,
        /// How many points it holds.
        points: usize,
    },
    /// `FILE.jsonl` without `#N`, holding other than one point.
    #[error("{file}: holds {points} points; name one as {file}#N")]
    WhichPoint {
        /// The JSONL file.
        file: String,
        /// How many points it holds.
        points: usize,
    },
    /// A point to compare that failed, so has no metrics.
    #[error("{arg}: the point failed: {error}")]
    FailedPoint {
        /// The argument as given.
        arg: String,
        /// The point's recorded error.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_before() {
        let e = SweepError::BadShard { k: 3, n: 2 };
        assert_eq!(e.to_string(), "--shard 3/2: need 1 <= K <= N");
        let e = SweepError::ResumeForeignPoint {
            jsonl: "o/shard-1-of-2.jsonl".into(),
            index: 7,
            shard: true,
        };
        assert_eq!(
            e.to_string(),
            "o/shard-1-of-2.jsonl: point 7 is not a point of this sweep shard; was it written by \
             another sweep file or shard?"
        );
        let e = SweepError::MergeEditedPoint {
            file: "a.jsonl".into(),
            index: 2,
            sweep: "s.toml".into(),
        };
        assert_eq!(
            e.to_string(),
            "a.jsonl: point 2 has other values than s.toml gives it"
        );
        let e = SweepError::WhichPoint {
            file: "p.jsonl".into(),
            points: 48,
        };
        assert_eq!(
            e.to_string(),
            "p.jsonl: holds 48 points; name one as p.jsonl#N"
        );
    }

    #[test]
    fn the_cause_is_in_the_message_not_repeated_as_a_source() {
        let e = SweepError::Read {
            path: "x.jsonl".into(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(e.to_string(), "x.jsonl: cannot read: gone");
        assert!(std::error::Error::source(&e).is_none());
    }
}
