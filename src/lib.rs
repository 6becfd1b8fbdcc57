//! dyad: a simulator and cost model for LLM inference hardware.
//!
//! Files become domain values in [`config`]; [`model`] turns a model and a batch into ops with
//! closed-form work; [`hw`] prices that work on a modeled device; [`map`] decides which unit runs
//! what; [`sim`] runs iterations and serving on the event engine; [`report`] renders results;
//! [`app`] holds one entry function per command. See `ARCHITECTURE.md` for the map, the allowed
//! module edges and the invariants (each checked by a test).

#![warn(missing_docs, unreachable_pub)]

/// mimalloc as the global allocator of everything that links dyad: a serving iteration makes a
/// few dozen short-lived allocations (its graph, prices and placements), and glibc's malloc
/// and free were about 12% of a balanced run's instructions.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod config;
pub mod hw;
pub mod kernels;
pub mod map;
pub mod model;
pub mod names;
pub mod report;
pub mod sim;
pub mod sweep;
pub mod tech;
pub mod units;
pub mod work;
