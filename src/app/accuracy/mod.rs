//! Accuracy against measured GPU data (`dyad accuracy`): every row of the calibration files in
//! `data/validation/` is mapped to the op it timed, costed, and compared.
//!
//! The mapping of each file's rows to ops follows the file's own header (model shape, what was
//! timed, kernel or host time); nothing here is fitted per row.

mod files;
mod stats;

pub use files::{DATA_FILES, DataFile, Sample, load_samples};
pub use stats::{Stats, accuracy_markdown, group_stats};
