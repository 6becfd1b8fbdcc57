//! Reading input files: arch TOML (with `extends`), model `config.json` or TOML.
//!
//! Two stages, as ripgrep configures itself: raw values exactly as written, each with the file
//! and span it came from; then resolved domain values (units parsed, `extends` applied, ranges
//! checked). Every error names the file, line and column and the key path.

mod arch;
mod error;
mod model;
pub mod presets;
mod serving;
mod tech;

pub use arch::{ArchTech, arch_tables, load_arch, load_arch_tech, load_arch_with, source_text};
pub use error::ConfigError;
pub use model::load_model;
pub(crate) use serving::csv_rows;
pub use serving::{load_scenario, load_scenario_with, scenario_arch_path};
pub use tech::{DieFile, Located, TECH_DIR, TechChoice, check_choice, load_die, load_tech_library};
