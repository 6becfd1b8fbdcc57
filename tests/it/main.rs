//! dyad's integration tests, in one binary (one crate, one link). `util` is the only harness
//! that runs the `dyad` binary. Most modules were once files of their own under `tests/`;
//! `layers` checks the module layering of `src/`, and `duplex` checks the Duplex reproduction
//! against the paper's figures.

mod util;

mod accuracy;
mod capacity;
mod cli;
mod compare;
mod config;
mod duplex;
mod energy;
mod expert_parallel;
mod golden;
mod graph;
mod hw_presets;
mod invariants;
mod kernels;
mod knobs;
mod layers;
mod pim;
mod pipeline;
mod pipeline_serving;
mod plans;
mod plots;
mod pool_trace;
mod pools;
mod ppa_cli;
mod references;
mod replicas;
mod reproducers;
mod robust;
mod serving;
mod sizes;
mod sp;
mod speculative;
mod speculative_del;
mod speculative_verify;
mod sweep;
mod tech;
mod trace;
mod variants;
mod work;
