//! dyad: a simulator and cost model for LLM inference hardware.
//!
//! Files become domain values in [`config`]; [`model`] turns a model and a batch into ops with
//! closed-form work; [`hw`] prices that work on a modeled device; [`map`] decides which unit runs
//! what; [`report`] renders results. See `ARCHITECTURE.md` for the map and its invariants.

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
