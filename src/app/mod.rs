//! The library side of each command: one file per command, each with its spec, one entry
//! function returning a result struct, and its rendering. `cli` parses arguments, calls one
//! function here, writes what it returns and maps the error to an exit status.

pub mod accuracy;
pub mod cost;
pub mod ppa;
pub mod reproduce;
pub mod run;
pub mod validate;
