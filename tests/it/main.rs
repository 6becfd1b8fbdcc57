//! dyad's integration tests, in one binary (one crate, one link): each module below was once a
//! file of its own under `tests/`. `util` is the only harness that runs the `dyad` binary.

mod util;

mod accuracy;
mod cli;
mod config;
mod golden;
mod invariants;
mod kernels;
mod layers;
mod pim;
mod ppa_cli;
mod serving;
mod sweep;
mod tech;
mod work;
