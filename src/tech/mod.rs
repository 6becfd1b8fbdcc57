//! Process technology and PPA: nodes, transistor architectures (FinFET, GAA nanosheet, CFET,
//! Flip FET), single- and dual-sided layouts, and what they make of a block and of a die: area,
//! frequency, power, cost.
//!
//! **`tech` knows nothing of models or serving**, and reads no files: the technology library and
//! die descriptions come from [`crate::config`].

mod block;
mod die;
pub mod ffet;
mod params;
pub mod pim;
mod report;

pub use block::{BlockPpa, BlockSpec, Placement, block};
pub use die::{
    BlockKind, BlockReport, ClockSource, DieBlock, DieReport, DieSpec, Role, die, die_yield,
    dies_per_wafer, sram_area,
};
pub use params::{
    Device, Layout, LayoutError, Library, ModelParams, Node, SignalSides, Technology,
    TechnologyError,
};
pub use report::{ffet_markdown, pim_markdown, ppa_table};
