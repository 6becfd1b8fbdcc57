//! What a serving run measured: sums over iterations, per-request latencies, the timeline, and
//! the limit that held throughput back.

use super::samples::{Samples, Thinned};
use crate::hw::EnergyParts;
use crate::sim::iteration::IterCost;

/// One point of the batch and KV occupancy timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelinePoint {
    /// When the iteration started, s.
    pub t: f64,
    /// How long the iteration took, s.
    pub duration: f64,
    /// Sequences in the iteration.
    pub batch: u64,
    /// Requests that had arrived and not finished when the iteration started.
    pub in_system: u64,
    /// Share of KV blocks in use after the iteration.
    pub kv_used: f64,
}

/// A request's life, for traces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLife {
    /// The request's index in the run (the order it was drawn in).
    pub id: usize,
    /// Its prompt tokens.
    pub prompt: u64,
    /// Its output tokens.
    pub output: u64,
    /// When it arrived, s.
    pub arrival: f64,
    /// When its first output token was produced, s.
    pub first_token: f64,
    /// When its last output token was produced, s.
    pub finish: f64,
}

/// Share of iterations in which admission must wait on one thing (KV space, the batch limit,
/// the token budget) for that thing to count as the limit: one iteration in twenty. Below it the
/// waits are transients (the first admissions, the last requests draining), not a steady state.
pub const WAIT_SHARE: f64 = 0.05;

/// Share of op time that must be compute-bound for the run to count as compute-limited: a
/// majority, so that compute outweighs every other bound (memory, overhead, link) together.
pub const COMPUTE_SHARE: f64 = 0.5;

/// Mean sequences per iteration, as a share of `max_batch`, at which the batch counts as full
/// even though no request waited on the limit (a closed loop with as many requests as the batch
/// holds): within 5% of the limit, the shortfall being the first admissions and the drain at the
/// end.
pub const FULL_BATCH: f64 = 0.95;

/// What held a serving run's throughput back. The first rule that holds decides:
///
/// 1. [`KvCapacity`](Self::KvCapacity): admissions waited on KV space, or requests were
///    preempted, in at least [`WAIT_SHARE`] of iterations.
/// 2. [`Compute`](Self::Compute): at least [`COMPUTE_SHARE`] of op time was compute-bound.
/// 3. The batch was full (a request waited on `max_batch` in at least [`WAIT_SHARE`] of
///    iterations, or the mean batch was at least [`FULL_BATCH`] of `max_batch`): the
///    iterations ran as large as allowed, so what bounds them is the limit —
///    [`Compute`](Self::Compute) when compute-bound op time is at least memory-bound op time,
///    else [`MemoryBandwidth`](Self::MemoryBandwidth). (A larger `max_batch` would raise
///    throughput only while the iterations stay memory-bound.)
/// 4. [`TokenBudget`](Self::TokenBudget): requests waited on the token budget in at least
///    [`WAIT_SHARE`] of iterations.
/// 5. [`Load`](Self::Load): nothing else binds: too few requests to fill the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServingLimit {
    /// The KV cache is full: admissions wait or sequences are preempted.
    KvCapacity,
    /// Op time is compute-bound.
    Compute,
    /// The batch is full and its iterations are bound by memory bandwidth.
    MemoryBandwidth,
    /// The token budget of an iteration is spent while requests wait.
    TokenBudget,
    /// Too few requests to fill the batch.
    #[default]
    Load,
}

impl ServingLimit {
    /// The name in reports: `kv_capacity`, `compute`, `memory_bandwidth`, `token_budget`,
    /// `load`.
    pub fn name(self) -> &'static str {
        match self {
            ServingLimit::KvCapacity => "kv_capacity",
            ServingLimit::Compute => "compute",
            ServingLimit::MemoryBandwidth => "memory_bandwidth",
            ServingLimit::TokenBudget => "token_budget",
            ServingLimit::Load => "load",
        }
    }

    /// Decides the limit of `r`, a run under `max_batch`, by the rules on the type.
    pub fn of(r: &ServingResult, max_batch: u64) -> Self {
        let share = r.bound_shares();
        let frac = |n: u64| n as f64 / r.iterations.max(1) as f64;
        if frac(r.waited_kv) >= WAIT_SHARE {
            ServingLimit::KvCapacity
        } else if share[0] >= COMPUTE_SHARE {
            ServingLimit::Compute
        } else if frac(r.waited_batch) >= WAIT_SHARE
            || r.mean_batch >= FULL_BATCH * max_batch as f64
        {
            if share[0] >= share[1] {
                ServingLimit::Compute
            } else {
                ServingLimit::MemoryBandwidth
            }
        } else if frac(r.waited_budget) >= WAIT_SHARE {
            ServingLimit::TokenBudget
        } else {
            ServingLimit::Load
        }
    }
}

/// What a serving run measured.
#[derive(Debug, Clone, Default)]
pub struct ServingResult {
    /// Requests that produced all their output.
    pub requests_completed: u64,
    /// Prompt tokens of the completed requests.
    pub prompt_tokens: u64,
    /// Output tokens produced.
    pub output_tokens: u64,
    /// Time from the start to the last completion, s.
    pub duration: f64,
    /// Time to first token of each request, s, in the order the first tokens came.
    pub ttft: Samples,
    /// Time between tokens, s, every gap of every request in the order they came.
    pub tbt: Samples,
    /// End-to-end latency of each completed request, s, in completion order.
    pub e2e: Samples,
    /// Time per output token of each completed request with more than one output token, s, in
    /// completion order: (last token − first token) ÷ (output tokens − 1), MLPerf's TPOT.
    pub tpot: Samples,
    /// Energy of all devices of the replica (dynamic plus static), J.
    pub energy: f64,
    /// Dynamic energy by component, J.
    pub energy_parts: EnergyParts,
    /// Static energy, J.
    pub energy_static: f64,
    /// Op time on each unit (xPU, PIM) of device 0.
    pub unit_time: [f64; 2],
    /// Iterations run.
    pub iterations: u64,
    /// Sequences preempted (and recomputed later).
    pub preemptions: u64,
    /// Tokens the KV cache holds.
    pub kv_capacity_tokens: u64,
    /// One point per iteration (every `stride`-th past [`TIMELINE`](super::samples::TIMELINE)).
    pub timeline: Thinned<TimelinePoint>,
    /// Busy seconds per resource of one device (see `iteration::RESOURCES`).
    pub busy: [f64; 5],
    /// Op time by what bounds each op: compute, memory, overhead, link.
    pub by_bound: [f64; 4],
    /// Iterations in which admission waited on KV space.
    pub waited_kv: u64,
    /// Iterations in which admission waited on the batch limit.
    pub waited_batch: u64,
    /// Iterations in which admission waited on the token budget.
    pub waited_budget: u64,
    /// Op instances simulated.
    pub ops_simulated: u64,
    /// Ops priced from the cost cache.
    pub cache_hits: u64,
    /// Ops priced afresh.
    pub cache_misses: u64,
    /// Mean sequences per iteration.
    pub mean_batch: f64,
    /// What held throughput back (decided once the run ends).
    pub limit: ServingLimit,
    /// What the speculative rounds measured (`None` without speculative decoding).
    pub speculative: Option<super::speculative::RoundStats>,
    /// What the expert-parallel options did (`None` with them off).
    pub expert_parallel: Option<crate::sim::expert_parallel::EpStats>,
    /// What the pipeline stages measured (`None` without a pipeline).
    pub pipeline: Option<super::pipeline::PipelineStats>,
}

impl ServingResult {
    /// Shares of op time by bound (compute, memory, overhead, link); zeros without op time.
    pub fn bound_shares(&self) -> [f64; 4] {
        let total: f64 = self.by_bound.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        self.by_bound.map(|b| b / total)
    }

    /// Adds one iteration's cost.
    pub(super) fn add_iteration(&mut self, c: &IterCost) {
        self.iterations += 1;
        self.energy += c.energy;
        self.energy_parts.add(c.energy_parts);
        add(&mut self.unit_time, &c.unit_time);
        self.ops_simulated += c.ops;
        add(&mut self.busy, &c.busy);
        add(&mut self.by_bound, &c.by_bound);
    }
}

/// `a[i] += b[i]`.
pub(super) fn add<const N: usize>(a: &mut [f64; N], b: &[f64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// When a request arrived and produced its tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Clock {
    /// Arrival, s.
    pub(super) arrival: f64,
    /// First output token, s.
    pub(super) first_token: Option<f64>,
    /// Latest output token (the arrival before the first), s.
    pub(super) last_token: f64,
}

impl Clock {
    /// A request arriving at `at`.
    pub(super) fn new(at: f64) -> Self {
        Clock {
            arrival: at,
            first_token: None,
            last_token: at,
        }
    }

    /// A token is produced at `t`: a time to first token or a time between tokens.
    pub(super) fn emit(&mut self, t: f64, out: &mut ServingResult) {
        out.output_tokens += 1;
        match self.first_token {
            None => {
                self.first_token = Some(t);
                out.ttft.push(t - self.arrival);
            }
            Some(_) => out.tbt.push(t - self.last_token),
        }
        self.last_token = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 iterations of mean batch 10 of 16 with these waits and op time by bound (compute,
    /// memory, overhead, link).
    fn run(kv: u64, batch: u64, budget: u64, by_bound: [f64; 4]) -> ServingLimit {
        let r = ServingResult {
            iterations: 100,
            waited_kv: kv,
            waited_batch: batch,
            waited_budget: budget,
            by_bound,
            mean_batch: 10.0,
            ..ServingResult::default()
        };
        ServingLimit::of(&r, 16)
    }

    #[test]
    fn kv_waits_decide_first_then_compute() {
        assert_eq!(
            run(5, 50, 50, [9.0, 1.0, 0.0, 0.0]),
            ServingLimit::KvCapacity
        );
        assert_eq!(run(4, 50, 50, [5.0, 5.0, 0.0, 0.0]), ServingLimit::Compute);
    }

    #[test]
    fn a_full_batch_names_the_bound_of_its_iterations() {
        let memory = [1.0, 3.0, 1.0, 0.0];
        assert_eq!(run(0, 5, 50, memory), ServingLimit::MemoryBandwidth);
        // Compute under half of op time but ahead of memory.
        assert_eq!(run(0, 5, 0, [4.0, 3.0, 3.0, 0.0]), ServingLimit::Compute);
        // Full without anyone waiting on the limit: a closed loop of as many as the batch holds.
        let full = ServingResult {
            iterations: 100,
            mean_batch: 15.5,
            by_bound: memory,
            ..ServingResult::default()
        };
        assert_eq!(ServingLimit::of(&full, 16), ServingLimit::MemoryBandwidth);
        assert_eq!(ServingLimit::of(&full, 17), ServingLimit::Load);
    }

    #[test]
    fn then_the_token_budget_then_load() {
        let memory = [1.0, 3.0, 1.0, 0.0];
        assert_eq!(run(0, 4, 5, memory), ServingLimit::TokenBudget);
        assert_eq!(run(4, 4, 4, memory), ServingLimit::Load);
        assert_eq!(run(0, 0, 0, [0.0; 4]), ServingLimit::Load);
        assert_eq!(ServingLimit::MemoryBandwidth.name(), "memory_bandwidth");
    }
}
