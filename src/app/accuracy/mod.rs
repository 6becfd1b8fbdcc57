//! Accuracy against measured GPU data (`dyad accuracy`): every row of the calibration files in
//! `data/validation/` is mapped to the op it timed, costed, and compared.
//!
//! The mapping of each file's rows to ops follows the file's own header (model shape, what was
//! timed, kernel or host time); nothing here is fitted per row.

mod e2e;
mod files;
mod stats;

pub use e2e::{E2E_DEVICES, E2E_MODEL, E2eConfig, E2eCoster, E2ePoint, Priced, e2e_samples};

pub use files::{DATA_FILES, DataError, DataFile, Sample, load_samples};
pub use stats::{Stats, accuracy_markdown, group_stats};

/// `dyad accuracy`: every calibration file in `data` (arch paths relative to `root`) costed and
/// compared, as Markdown listing the `worst` rows of each file.
pub fn accuracy(
    data: &std::path::Path,
    root: &std::path::Path,
    worst: usize,
) -> Result<String, DataError> {
    Ok(accuracy_markdown(&load_samples(data, root)?, worst))
}
