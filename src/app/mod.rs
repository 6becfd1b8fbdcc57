//! The library side of each command: one file per command, each with its spec, one entry
//! function returning what the command prints, and its rendering. `cli` parses arguments, calls
//! one function here, writes what it returns and turns [`AppError::status`] into the exit
//! status; nothing else.

pub mod accuracy;
pub mod capacity;
pub mod cost;
pub mod fit;
pub mod graph;
pub mod list;
mod pools;
pub mod ppa;
pub mod reproduce;
pub mod run;
pub mod run_plot;
pub mod run_pp;
mod run_replicas;
pub mod run_sp;
pub mod sweep;
pub mod validate;

use std::io;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::hw::CostError;
use crate::sim::iteration::IterError;
use crate::sim::serving::ServingError;
use crate::sweep::SweepError;

/// How a command ended, as the process reports it. The numbers are the exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The command ran, and a check it makes failed (an op `validate` finds wrong, a failed
    /// sweep point).
    CheckFailed = 1,
    /// The input is wrong: a file, key, value, unit or argument the user can fix.
    BadInput = 2,
    /// A bug in dyad: an invariant of the model or engine did not hold.
    Internal = 3,
}

/// Any failure of a command. [`AppError::status`] says which exit status it is.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AppError {
    /// An input file or value.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// One iteration (`dyad run`, `dyad graph`, `dyad validate`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] run::RunError),
    /// `dyad run --plot`.
    #[error(transparent)]
    #[diagnostic(transparent)]
    RunPlot(#[from] run_plot::RunPlotError),
    /// A serving run of the scenario at `path`.
    #[error("{}: {source}", path.display())]
    Serving {
        /// The scenario file.
        path: PathBuf,
        /// Why it could not run.
        source: ServingError,
    },
    /// `dyad capacity`: the search on the scenario at `path`.
    #[error("{}: {source}", path.display())]
    Capacity {
        /// The scenario file.
        path: PathBuf,
        /// Why the search could not run.
        source: crate::sweep::capacity::CapacityError,
    },
    /// A plot (the error names its file).
    #[error(transparent)]
    Plot(#[from] crate::report::plot::PlotError),
    /// `dyad cost`: a row of the input or the CSV itself.
    #[error("{input}: {source}")]
    Cost {
        /// The input's name (`<stdin>` for standard input).
        input: String,
        /// What was wrong.
        source: cost::OpCsvError,
    },
    /// `dyad validate` could not run its checks.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Validate(#[from] validate::ValidateError),
    /// `dyad accuracy`: a calibration file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Accuracy(#[from] accuracy::DataError),
    /// `dyad reproduce`.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Reproduce(#[from] reproduce::ReproduceError),
    /// `dyad sweep`, `merge` and `compare`.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sweep(#[from] SweepError),
    /// `dyad merge` found points in no shard.
    #[error(
        "{missing} points are in no shard (first: {first:?}); run the missing shards and merge again"
    )]
    MissingShards {
        /// How many points are missing.
        missing: usize,
        /// The first few missing point indices.
        first: Vec<usize>,
    },
    /// A command-line combination that no file can express (`dyad ppa` with nothing to show).
    #[error("{0}")]
    Usage(&'static str),
    /// A file or standard stream could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file, or `standard output`.
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The command ran and `failed` of its checks failed (its output says which).
    #[error("{failed} {what}")]
    ChecksFailed {
        /// How many failed.
        failed: usize,
        /// What failed, in words (`of 477 checks failed`).
        what: String,
    },
    /// Predicted work past its limit: refused before it runs.
    #[error("{what}, more than the limit of {limit}; {flag} N (or all) lifts it")]
    WorkLimit {
        /// What the run would do, with the prediction.
        what: String,
        /// The limit.
        limit: u64,
        /// The flag that sets it.
        flag: &'static str,
    },
    /// A report figure outside its domain (a bug): nothing was written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Guard(#[from] crate::report::guard::Violation),
    /// A report that does not serialize (a bug: reports are plain data).
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A deliberate internal error (the hidden `dyad internal-error`), so that the exit status
    /// of a bug is tested.
    #[error("internal error (a bug in dyad): {0}")]
    Internal(&'static str),
}

impl AppError {
    /// The exit status this error ends the process with.
    pub fn status(&self) -> Status {
        match self {
            AppError::Config(_)
            | AppError::Cost { .. }
            | AppError::Accuracy(_)
            | AppError::Validate(_)
            | AppError::MissingShards { .. }
            | AppError::WorkLimit { .. }
            | AppError::Usage(_) => Status::BadInput,
            AppError::Run(e) => e.status(),
            AppError::RunPlot(e) => e.status(),
            AppError::Sweep(SweepError::Json(_) | SweepError::CsvText(_)) => Status::Internal,
            AppError::Sweep(_) => Status::BadInput,
            AppError::Serving { source, .. } => serving_status(source),
            AppError::Capacity { source, .. } => match source {
                crate::sweep::capacity::CapacityError::Serving { source, .. } => {
                    serving_status(source)
                }
                _ => Status::BadInput,
            },
            AppError::Plot(crate::report::plot::PlotError::Write { .. }) => Status::BadInput,
            AppError::Plot(crate::report::plot::PlotError::Draw { .. }) => Status::Internal,
            AppError::Reproduce(e) => e.status(),
            AppError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => Status::Ok,
            AppError::Io { .. } => Status::BadInput,
            AppError::ChecksFailed { .. } => Status::CheckFailed,
            AppError::Internal(_) | AppError::Json(_) | AppError::Guard(_) => Status::Internal,
        }
    }

    /// An error writing the file `path` ("PATH: cannot write: …").
    pub fn cannot_write(path: &Path, source: io::Error) -> AppError {
        AppError::Io {
            what: format!("{}: cannot write", path.display()),
            source,
        }
    }

    /// An error reading or writing `path`.
    pub fn io(path: &Path, source: io::Error) -> AppError {
        AppError::Io {
            what: path.display().to_string(),
            source,
        }
    }
}

/// Whether a cost error is the user's (an arch that lacks what the run asks of it) or a bug.
pub(crate) fn cost_status(e: &CostError) -> Status {
    match e {
        CostError::NoPeak { .. } | CostError::TooManyDevices { .. } | CostError::NoPim => {
            Status::BadInput
        }
        CostError::NoMessage | CostError::CollectiveOnPim => Status::Internal,
    }
}

/// A serving run fails on its scenario (bad input) unless the engine or cost model broke.
pub(crate) fn serving_status(e: &ServingError) -> Status {
    match e {
        ServingError::Iteration(IterError::Cost(c)) => cost_status(c),
        ServingError::Iteration(IterError::Engine(_)) => Status::Internal,
        _ => Status::BadInput,
    }
}

/// The hidden `dyad internal-error` command: fails as a bug would.
pub fn internal_error() -> Result<String, AppError> {
    Err(AppError::Internal(
        "this command exists to test the exit status of internal errors",
    ))
}
