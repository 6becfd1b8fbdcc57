//! `dyad run --plot DIR`: the plots of the iteration a run costed, as SVG in `DIR`:
//! `roofline.svg` (each op by its Op/B and achieved FLOP/s under its device's roofs, identical
//! ops merged into one marker with their count), `ops.svg` (the time of each op, summed over its
//! instances, by unit, coloured by op class) and `layers.svg` (the time of each distinct layer by
//! op class; identical layers shown once with their count).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Status;
use super::run::{RunError, RunSpec, resolve};
use crate::report::RunReport;
use crate::report::plot::PlotError;
use crate::report::plot::iteration::{roofs, write_layers, write_ops, write_roofline};

/// Why the plots of a run were not written.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum RunPlotError {
    /// The run's inputs (loaded again for the roofs).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] RunError),
    /// The folder could not be made.
    #[error("--plot {}: cannot create the folder: {source}", path.display())]
    Dir {
        /// The folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A plot (the error names its file).
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl RunPlotError {
    /// A folder or file that cannot be written is the user's; a plot that cannot be laid out is
    /// a bug.
    pub fn status(&self) -> Status {
        match self {
            RunPlotError::Run(e) => e.status(),
            RunPlotError::Dir { .. } | RunPlotError::Plot(PlotError::Write { .. }) => {
                Status::BadInput
            }
            RunPlotError::Plot(PlotError::Draw { .. }) => Status::Internal,
        }
    }
}

/// The run in a title: model, phase, batch, lengths, devices, arch and policy.
fn context(report: &RunReport, devices: u32) -> String {
    let i = &report.inputs;
    let len = match i.phase.as_str() {
        "prefill" => format!("prompt {}", i.prompt_len),
        _ => format!("KV {}", i.kv_len),
    };
    format!(
        "{} {} b{} {len}, TP {} on {} of {devices} × {}, {}",
        i.model, i.phase, i.batch, i.tp, i.tp, i.arch, i.policy
    )
}

/// Writes the plots of `report` (the run of `spec`) into `dir`, made if missing; returns the
/// files written.
pub fn plot(spec: &RunSpec, report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, RunPlotError> {
    let r = resolve(spec)?;
    let roofs = roofs(&r.sys, r.precision.activations).map_err(RunError::Cost)?;
    std::fs::create_dir_all(dir).map_err(|source| RunPlotError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let ctx = context(report, r.sys.devices());
    let files = [
        dir.join("roofline.svg"),
        dir.join("ops.svg"),
        dir.join("layers.svg"),
    ];
    write_roofline(&files[0], &ctx, &roofs, &report.ops)?;
    write_ops(&files[1], &ctx, &report.ops)?;
    write_layers(&files[2], &ctx, &report.ops)?;
    Ok(files.to_vec())
}
