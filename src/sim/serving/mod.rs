//! Continuous batching: requests arrive, are admitted into a paged KV cache, and advance through
//! iterations that mix decode tokens with chunks of prefill, as vLLM and Sarathi-Serve schedule.

//!
//! [`simulate`] is the algorithm; its pieces are `setup` (the scenario checked, the memory
//! budget and KV pool, the requests, router and coster), `schedule` (the batching policy as a
//! pure function of the queues and limits), `step` (cost the planned batch on the engine, then
//! emit, retire, record) and `stats` (what the run measured and what limited it).

pub mod pipeline;
mod pools;
mod replicas;
mod round;
mod samples;
mod schedule;
mod setup;
pub mod speculative;
mod stats;
mod step;

pub use pools::{
    Disagg, DisaggResult, KvLink, KvTransfer, simulate_disagg, simulate_disagg_observed,
};
pub use replicas::{Replicas, RouterPolicy, merge_replicas, simulate_replicas};
pub use samples::{ACCURACY, EXACT, Samples, TIMELINE, Thinned};
pub use stats::{
    COMPUTE_SHARE, FULL_BATCH, RequestLife, ServingLimit, ServingResult, TimelinePoint, WAIT_SHARE,
};

use super::iteration::{IterCost, IterError};
use super::routing::RoutingSpec;
use super::workload::{Arrivals, Lengths};
use crate::hw::{System, Timing};
use crate::map::Policy;
use crate::model::{ModelError, ModelSpec, Precision};
use setup::Bench;

/// A serving run, resolved.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name (its file stem).
    pub name: String,
    /// The system one device of the replica is.
    pub sys: System,
    /// The model served.
    pub model: ModelSpec,
    /// Precision of weights, activations and KV cache.
    pub precision: Precision,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Expert-parallel degree (1 = off; needs tp = 1): experts spread whole over `ep` devices,
    /// attention data-parallel, all-to-all dispatch and combine.
    pub ep: u64,
    /// Requests in the run.
    pub count: u64,
    /// Prompt and output lengths.
    pub lengths: Lengths,
    /// When requests arrive.
    pub arrivals: Arrivals,
    /// Most sequences in one iteration.
    pub max_batch: u64,
    /// Most tokens (decode tokens plus prefill chunk tokens) in one iteration.
    pub max_tokens: u64,
    /// Tokens per KV-cache block.
    pub kv_block: u64,
    /// Share of device memory the run may fill (weights, activations, KV cache).
    pub memory_utilization: f64,
    /// How tokens are routed to experts (MoE models).
    pub routing: RoutingSpec,
    /// Which unit runs which op.
    pub policy: Policy,
    /// Seed of every random stream (lengths, arrivals, routing).
    pub seed: u64,
    /// What op times measure (kernel time or host wall time).
    pub timing: Timing,
    /// The serving framework's time per iteration beyond its kernels; `None` prices kernels
    /// alone (the default for hardware studies).
    pub software: Option<crate::hw::Software>,
    /// Speculative decoding (`None`: one token per sequence per iteration).
    pub speculative: Option<speculative::Speculative>,
    /// Expert parallelism's two-batch overlap and EPLB (the default: neither).
    pub expert_parallel: crate::sim::expert_parallel::EpOptions,
    /// Pipeline stages and micro-batches (`None`: the whole model on one `tp` group).
    pub pipeline: Option<pipeline::Pipelining>,
}

/// Why a serving run cannot start or go on. Every variant is a bad scenario except
/// [`Iteration`](Self::Iteration), which may be a cost-model or engine bug.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// Costing an iteration failed.
    #[error("iteration: {0}")]
    Iteration(#[from] IterError),
    /// The model does not split over the tensor-parallel degree.
    #[error("{0}")]
    Tp(#[from] ModelError),
    /// A limit or the request count is zero.
    #[error("max_batch, max_tokens, kv_block and count must be positive")]
    NotPositive,
    /// Expert parallelism without tp = 1 or over a number of devices that does not divide the
    /// experts (or a dense model).
    #[error("expert parallelism over {ep} devices needs tp = 1 and a number of experts it divides")]
    EpLayout {
        /// The expert-parallel degree.
        ep: u64,
    },
    /// A policy that places ops on PIM, on an arch without PIM units.
    #[error("policy {policy} needs an arch with PIM units ({arch} has none)")]
    PolicyNeedsPim {
        /// The policy's name.
        policy: &'static str,
        /// The arch's name.
        arch: String,
    },
    /// Weights and activations fill the usable memory.
    #[error(
        "the weights ({weights:.1} GB per device) and activations ({act:.2} GB) leave no room for a KV cache in {usable:.1} GB: raise tp or memory_utilization"
    )]
    NoKvRoom {
        /// Weights per device, GB.
        weights: f64,
        /// Activations per device, GB.
        act: f64,
        /// Usable memory per device, GB.
        usable: f64,
    },
    /// A prompt needs more KV blocks than the whole cache.
    #[error(
        "request {id} needs {need} KV blocks for its prompt, more than the {total} the cache holds"
    )]
    TooLong {
        /// The request's index in the run.
        id: usize,
        /// Blocks its prompt needs.
        need: u64,
        /// Blocks in the cache.
        total: u64,
    },
    /// A closed loop under disaggregation (its concurrency would span both pools).
    #[error("disaggregated pools need open-loop arrivals (poisson or a trace), not a closed loop")]
    ClosedPools,
    /// A closed loop over more than one replica (its concurrency would span them).
    #[error(
        "replicas behind a router need open-loop arrivals (poisson or a trace), not a closed loop"
    )]
    ClosedReplicas,
    /// No request could be scheduled (the cache holds too few blocks for any step).
    #[error("no request can make progress at t = {t} s (KV cache of {blocks} blocks)")]
    NoProgress {
        /// When, s.
        t: f64,
        /// Blocks in the cache.
        blocks: u64,
    },
    /// Expert-parallel options under a policy, MoE variant or trace they are not priced for.
    #[error(
        "two_batch_overlap and redundant_experts are priced in closed form: they need a policy that does not overlap units (all-xpu or dispatch), no MoE routing variant, and no trace"
    )]
    EpOptionsUnpriced,
    /// A pipeline whose stages do not divide the layers, with no micro-batch, or beside expert
    /// parallelism or speculative decoding (`config` refuses these at their key).
    #[error(
        "a pipeline of {stages} stages and {micro_batches} micro-batches needs stages dividing the model's layers, at least one micro-batch, ep = 1 and no speculative decoding"
    )]
    PipelineLayout {
        /// Stages asked for.
        stages: u64,
        /// Micro-batches asked for.
        micro_batches: u64,
    },
}

/// What a serving run shows as it goes, to a trace writer: each iteration once it has run, each
/// request once it has finished. The run keeps none of it, so an observer that writes it out
/// holds memory bounded by one iteration.
pub trait Observer {
    /// An iteration has run.
    fn iteration(&mut self, it: &IterationRecord<'_>);
    /// A request has produced its last token.
    fn request(&mut self, life: &RequestLife);
    /// A request's KV has gone on the link between disaggregated pools (shown to the prefill
    /// pool's observer; ignored unless an observer traces the link).
    fn kv_transfer(&mut self, _kv: &KvTransfer) {}
}

/// One iteration of a serving run, as an [`Observer`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct IterationRecord<'a> {
    /// Its index in the run, from 0.
    pub index: u64,
    /// When it started on the run's clock, s.
    pub start: f64,
    /// What it cost; its op spans are from `start`.
    pub cost: &'a IterCost,
    /// Sequences decoding one token.
    pub decode: u64,
    /// Sequences with a prefill chunk.
    pub prefill: u64,
    /// Tokens of the iteration (decode tokens plus prefill chunk tokens).
    pub tokens: u64,
    /// Requests waiting for admission when it started.
    pub waiting: u64,
    /// Requests that had arrived and not finished when it started.
    pub in_system: u64,
    /// Share of KV blocks in use after it.
    pub kv_used: f64,
    /// Mean power of the replica's devices over it, dynamic and static, W.
    pub power: f64,
    /// Tokens drafted in it, over sequences (0 without speculative decoding).
    pub drafted: u64,
    /// Drafted tokens accepted.
    pub accepted: u64,
    /// Time of its draft passes, s (the verify pass is the rest).
    pub draft_time: f64,
    /// Its micro-batches on each pipeline stage (empty without a pipeline).
    pub stages: &'a [crate::sim::pipeline::StageSpan],
}

/// The fewest iterations `s` can take: an iteration emits at most `r` tokens for each
/// sequence of its batch (at most `max_batch`, or the closed loop's concurrency if smaller;
/// r = 1, or d + 1 under speculative decoding), so the longest request alone takes its output
/// ÷ r, and an iteration takes at most `max_tokens` tokens, prompt and output together. A lower
/// bound, so a run refused on it would have run at least that long.
pub fn least_iterations(s: &Scenario) -> f64 {
    let (prompt, output) = s.lengths.least_tokens(s.count);
    let batch = match s.arrivals {
        Arrivals::Closed { concurrency } => concurrency.min(s.max_batch),
        _ => s.max_batch,
    };
    let per_round = 1 + s.speculative.as_ref().map_or(0, |x| x.tokens);
    let decode = (output / batch.max(1) as f64).max(s.lengths.least_longest_output(s.count));
    (decode / per_round as f64).max((prompt + output) / s.max_tokens.max(1) as f64)
}

/// Runs `s` to completion, showing each iteration and finished request to `observer` (op
/// spans are recorded only with one).
pub fn simulate<'a>(
    s: &'a Scenario,
    observer: Option<&'a mut dyn Observer>,
) -> Result<ServingResult, ServingError> {
    let mut bench = Bench::new(s, observer)?;
    while let Some(plan) = bench.plan()? {
        let cost = bench.cost(&plan)?;
        bench.advance(&plan, &cost);
    }
    Ok(bench.finish())
}
