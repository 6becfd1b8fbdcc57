//! The bench of a serving run: the scenario checked, the memory budget sized into a KV pool,
//! the requests drawn, and the router and coster built, before the first iteration.

use super::round::SpecRun;
use super::schedule::{Limits, Queues, Seq};
use super::stats::{Clock, ServingResult};
use super::{Observer, Scenario, ServingError};
use crate::map::Policy;
use crate::model::{Footprint, Parallelism};
use crate::sim::iteration::Coster;
use crate::sim::kv::PagedKv;
use crate::sim::routing::{RouteRng, Router};
use crate::sim::variant_routing;
use crate::sim::workload::{Arrivals, RequestSpec, generate, rng};
use crate::units::Bytes;

/// Everything a serving run steps: the queues and the clock, and what it needs to cost an
/// iteration.
pub(super) struct Bench<'a> {
    /// The scenario.
    pub(super) s: &'a Scenario,
    /// Every request of the run, as drawn.
    pub(super) specs: Vec<RequestSpec>,
    /// Requests released into the queues so far.
    pub(super) released: usize,
    /// The scheduler's state.
    pub(super) queues: Queues,
    /// Arrival and token times of each released request, by id.
    pub(super) clocks: Vec<Clock>,
    /// The scheduler's limits.
    pub(super) limits: Limits,
    /// Tokens per expert (MoE models only).
    pub(super) router: Option<Router>,
    /// The router's random stream.
    pub(super) route_rng: RouteRng,
    /// Each layer's tokens per expert in the latest iteration (kept to spare allocations).
    pub(super) counts: Vec<Vec<u64>>,
    /// Prices and runs iterations.
    pub(super) coster: Coster<'a>,
    /// The run's clock, s.
    pub(super) t: f64,
    /// Sum of sequences over iterations (for the mean batch).
    pub(super) batch_sum: f64,
    /// Who sees each iteration and finished request (op spans are recorded only for one).
    pub(super) observer: Option<&'a mut dyn Observer>,
    /// What the run has measured so far.
    pub(super) out: ServingResult,
    /// Speculative decoding's state (`None` without it, or with d = 0).
    pub(super) spec: Option<SpecRun<'a>>,
    /// The pipeline's stages and what they measured (`None` without `[pipeline]`).
    pub(super) pipe: Option<super::pipeline::PipeRun<'a>>,
}

impl<'a> Bench<'a> {
    /// Checks `s`, sizes its KV pool and draws its requests; in a closed loop the first
    /// `concurrency` requests are released at once.
    pub(super) fn new(
        s: &'a Scenario,
        observer: Option<&'a mut dyn Observer>,
    ) -> Result<Self, ServingError> {
        let par = check(s)?;
        let blocks = match s.pipeline {
            Some(p) if p.stages > 1 => super::pipeline::kv_blocks(s, p, par)?,
            _ => kv_blocks(s, par)?,
        };
        let mut kv = PagedKv::new(s.kv_block, blocks);
        if let Some(w) = s.model.uniform_window() {
            kv = kv.windowed(w);
        }
        let specs = generate(s.count, &s.lengths, &s.arrivals, s.seed);
        let mut route_rng = rng(s.seed, 3);
        let m = &s.model;
        let router = m.moe.map(|x| {
            Router::new(
                s.routing.clone(),
                m.layers(),
                x.experts,
                x.top_k,
                &mut route_rng,
            )
        });
        let router = router.map(|rt| variant_routing::with_zero_experts(rt, m));
        if s.policy != Policy::AllXpu && s.sys.pim.is_none() {
            return Err(ServingError::PolicyNeedsPim {
                policy: s.policy.name(),
                arch: s.sys.name.clone(),
            });
        }
        let spec = (s.speculative.as_ref()).and_then(|sp| SpecRun::new(s, m, sp, par));
        let out = ServingResult {
            kv_capacity_tokens: kv.total_blocks * s.kv_block,
            ..ServingResult::default()
        };
        let coster = Coster::new(&s.sys, m, par, s.precision, s.timing, s.policy);
        let coster = expert_parallel(s, par, coster, router.as_ref(), observer.is_some())?;
        let mut bench = Bench {
            s,
            specs,
            released: 0,
            queues: Queues::new(kv),
            clocks: Vec::new(),
            limits: Limits {
                max_batch: s.max_batch,
                max_tokens: s.max_tokens,
                max_prefills: s.software.as_ref().map_or(u64::MAX, |w| w.max_prefills),
                decode_tokens: spec.as_ref().map_or(1, SpecRun::step_tokens),
            },
            router,
            route_rng: rand::SeedableRng::from_rng(&mut route_rng),
            counts: Vec::new(),
            coster,
            t: 0.0,
            batch_sum: 0.0,
            observer,
            out,
            spec,
            pipe: super::pipeline::PipeRun::new(s, par),
        };
        if let Arrivals::Closed { concurrency } = s.arrivals {
            while (bench.released as u64) < concurrency.min(s.count) {
                bench.release(0.0);
            }
        }
        Ok(bench)
    }

    /// Whether the run is a closed loop (a finished request is replaced by a new one).
    pub(super) fn closed(&self) -> bool {
        matches!(self.s.arrivals, Arrivals::Closed { .. })
    }

    /// Releases the next request into the waiting queue, arriving at `at`.
    pub(super) fn release(&mut self, at: f64) {
        let spec = self.specs[self.released];
        self.queues.arrive(Seq::new(spec.prompt, spec.output));
        self.clocks.push(Clock::new(at));
        self.released += 1;
    }
}

/// The scenario's own checks: the model splits over `tp`, the limits are positive, and expert
/// parallelism has a layout. Returns the parallel layout.
fn check(s: &Scenario) -> Result<Parallelism, ServingError> {
    let m = &s.model;
    m.check_tp(s.tp)?;
    if s.max_batch == 0 || s.max_tokens == 0 || s.kv_block == 0 || s.count == 0 {
        return Err(ServingError::NotPositive);
    }
    if s.ep > 1 && (s.tp != 1 || m.moe.is_none_or(|x| x.experts % s.ep != 0)) {
        return Err(ServingError::EpLayout { ep: s.ep });
    }
    super::pipeline::check(s)?;
    Ok(Parallelism { tp: s.tp, ep: s.ep })
}

/// `coster` with the scenario's expert-parallel options, EPLB placing experts by `router`'s
/// expected loads; an error where the options cannot be priced (`spans`: a trace is written).
fn expert_parallel<'a>(
    s: &Scenario,
    par: Parallelism,
    coster: Coster<'a>,
    router: Option<&Router>,
    spans: bool,
) -> Result<Coster<'a>, ServingError> {
    let o = s.expert_parallel;
    if !o.any() {
        return Ok(coster);
    }
    if !coster.prices_ep_options(spans) || variant_routing::routes_variants(&s.model) {
        return Err(ServingError::EpOptionsUnpriced);
    }
    let layers = s.model.layers() as usize;
    let load: Vec<Vec<f64>> = match (router, o.redundant_experts) {
        (Some(r), Some(_)) => (0..layers).map(|l| r.expected_load(l)).collect(),
        _ => Vec::new(),
    };
    let bytes = o.replica_bytes(&s.model, par, s.precision).value();
    Ok(coster.with_expert_parallel(o, &load, bytes))
}

/// The memory budget: KV blocks left in the usable share of device memory beside the weights
/// and the activations of the largest iteration.
fn kv_blocks(s: &Scenario, par: Parallelism) -> Result<u64, ServingError> {
    let usable = Bytes(s.sys.xpu.memory.capacity.value() * s.memory_utilization);
    let mut foot = Footprint::new(&s.model, par, s.precision);
    foot.weights += s.expert_parallel.replica_bytes(&s.model, par, s.precision);
    let act = foot.activations(&s.model, s.precision, s.max_tokens, s.max_batch);
    // A draft model on the same devices: its weights and KV cache take room beside the target's.
    let draft = s.speculative.as_ref().and_then(|x| x.draft_model());
    if let Some(d) = draft.map(|d| Footprint::new(d, par, s.precision)) {
        foot = foot.with(&d);
    }
    foot.kv_blocks(usable, act, s.kv_block)
        .ok_or(ServingError::NoKvRoom {
            weights: foot.weights.value() / 1e9,
            act: act.value() / 1e9,
            usable: usable.value() / 1e9,
        })
}
