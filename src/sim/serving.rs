//! Continuous batching: requests arrive, are admitted into a paged KV cache, and advance through
//! iterations that mix decode tokens with chunks of prefill, as vLLM and Sarathi-Serve schedule.

use std::collections::VecDeque;

use super::iteration::{Coster, IterCost, IterError, OpSpan};
use super::kv::PagedKv;
use super::routing::{Router, RoutingSpec};
use super::workload::{Arrivals, Lengths, RequestSpec, generate, rng};
use crate::hw::{EnergyParts, System, Timing};
use crate::map::Policy;
use crate::model::{Batch, ModelSpec, Parallelism, Precision, PrefillChunk};

/// A serving run, resolved.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub sys: System,
    pub model: ModelSpec,
    pub precision: Precision,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Expert-parallel degree (1 = off; needs tp = 1): experts spread whole over `ep` devices,
    /// attention data-parallel, all-to-all dispatch and combine.
    pub ep: u64,
    /// Requests in the run.
    pub count: u64,
    pub lengths: Lengths,
    pub arrivals: Arrivals,
    /// Most sequences in one iteration.
    pub max_batch: u64,
    /// Most tokens (decode tokens plus prefill chunk tokens) in one iteration.
    pub max_tokens: u64,
    /// Tokens per KV-cache block.
    pub kv_block: u64,
    /// Share of device memory the run may fill (weights, activations, KV cache).
    pub memory_utilization: f64,
    pub routing: RoutingSpec,
    /// Which unit runs which op.
    pub policy: Policy,
    pub seed: u64,
    pub timing: Timing,
}

/// Why a run cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("iteration: {0}")]
    Iteration(#[from] IterError),
    #[error(
        "the weights ({weights:.1} GB per device) and activations ({act:.2} GB) leave no room for a KV cache in {usable:.1} GB: raise tp or memory_utilization"
    )]
    NoKvRoom { weights: f64, act: f64, usable: f64 },
    #[error(
        "request {id} needs {need} KV blocks for its prompt, more than the {total} the cache holds"
    )]
    TooLong { id: usize, need: u64, total: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// One point of the batch and KV occupancy timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelinePoint {
    /// When the iteration started.
    pub t: f64,
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
    pub arrival: f64,
    pub first_token: f64,
    pub finish: f64,
}

/// What a serving run measured.
#[derive(Debug, Clone, Default)]
pub struct ServingResult {
    pub requests_completed: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// Time from the start to the last completion.
    pub duration: f64,
    pub ttft: Vec<f64>,
    pub tbt: Vec<f64>,
    pub e2e: Vec<f64>,
    /// Energy of all devices of the replica (dynamic plus static), J.
    pub energy: f64,
    /// Dynamic energy by component, J.
    pub energy_parts: EnergyParts,
    /// Static energy, J.
    pub energy_static: f64,
    /// Op time on each unit (xPU, PIM) of device 0.
    pub unit_time: [f64; 2],
    pub iterations: u64,
    pub preemptions: u64,
    pub kv_capacity_tokens: u64,
    pub timeline: Vec<TimelinePoint>,
    /// Busy seconds per resource of one device (see `iteration::RESOURCES`).
    pub busy: [f64; 5],
    pub by_bound: [f64; 4],
    /// Iterations in which admission waited on: KV space, the batch limit, the token budget.
    pub waited_kv: u64,
    pub waited_batch: u64,
    pub waited_budget: u64,
    pub ops_simulated: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub mean_batch: f64,
    pub spans: Vec<OpSpan>,
    pub lives: Vec<RequestLife>,
}

struct Req {
    spec: RequestSpec,
    arrival: f64,
    /// Tokens whose keys and values are in the cache.
    in_kv: u64,
    /// Tokens that must be in the cache before decoding (the prompt; after a preemption, the
    /// prompt and the tokens generated so far, recomputed).
    target: u64,
    generated: u64,
    blocks: u64,
    first_token: Option<f64>,
    last_token: f64,
}

impl Req {
    fn decoding(&self) -> bool {
        self.in_kv >= self.target
    }
}

/// Activation memory reserved per device for an iteration of `max_tokens` tokens.
fn activation_bytes(m: &ModelSpec, tp: u64, p: Precision, max_tokens: u64, max_batch: u64) -> f64 {
    let inner = m.moe.map_or(m.intermediate, |x| x.intermediate) / tp;
    let qkv = (m.heads_per_device(tp) + 2 * m.kv_heads_per_device(tp)) * m.head_dim;
    let per_token = (4 * m.hidden + qkv + 3 * inner) as f64 * p.activations.bytes();
    // Logits of the sequences that produce a token, in fp32.
    max_tokens as f64 * per_token + (max_batch * m.vocab / tp) as f64 * 4.0
}

/// Runs `s` to completion.
pub fn simulate(s: &Scenario, trace: bool) -> Result<ServingResult, ServingError> {
    let m = &s.model;
    m.check_tp(s.tp)
        .map_err(|e| ServingError::Invalid(e.to_string()))?;
    if s.max_batch == 0 || s.max_tokens == 0 || s.kv_block == 0 || s.count == 0 {
        return Err(ServingError::Invalid(
            "max_batch, max_tokens, kv_block and count must be positive".into(),
        ));
    }
    let par = Parallelism { tp: s.tp, ep: s.ep };
    let devices = (s.tp * s.ep) as f64;
    if s.ep > 1 && (s.tp != 1 || m.moe.is_none_or(|x| x.experts % s.ep != 0)) {
        return Err(ServingError::Invalid(format!(
            "expert parallelism over {} devices needs tp = 1 and a number of experts it divides",
            s.ep
        )));
    }
    let p = s.precision;
    let usable = s.sys.xpu.memory.capacity.value() * s.memory_utilization;
    // Per device: under TP a 1/tp slice of every weight; under EP the attention and dense
    // weights whole and 1/ep of the experts. The KV cache of the group is pooled.
    let expert_params = m.expert_params();
    let weights = if s.ep > 1 {
        let dense = (m.params() - expert_params) as f64;
        (dense + expert_params as f64 / s.ep as f64) * p.weights.bytes()
    } else {
        m.params() as f64 * p.weights.bytes() / s.tp as f64
    };
    let act = activation_bytes(m, s.tp, p, s.max_tokens, s.max_batch);
    let kv_per_token = m.kv_bytes_per_token(p.kv) * m.kv_heads_per_device(s.tp) as f64
        / m.kv_heads as f64
        / s.ep as f64;
    let room = usable - weights - act;
    if room <= kv_per_token * s.kv_block as f64 {
        return Err(ServingError::NoKvRoom {
            weights: weights / 1e9,
            act: act / 1e9,
            usable: usable / 1e9,
        });
    }
    let mut kv = PagedKv::new(
        s.kv_block,
        (room / (kv_per_token * s.kv_block as f64)) as u64,
    );

    let specs = generate(s.count, &s.lengths, &s.arrivals, s.seed);
    let mut route_rng = rng(s.seed, 3);
    let router = m.moe.map(|x| {
        Router::new(
            s.routing.clone(),
            m.layers,
            x.experts,
            x.top_k,
            &mut route_rng,
        )
    });
    if s.policy != Policy::AllXpu && s.sys.pim.is_none() {
        return Err(ServingError::Invalid(format!(
            "policy {} needs an arch with PIM units ({} has none)",
            s.policy.name(),
            s.sys.name
        )));
    }
    let mut coster = Coster::new(&s.sys, m, par, p, s.timing, s.policy);

    let mut reqs: Vec<Req> = Vec::with_capacity(specs.len());
    let mut waiting: VecDeque<usize> = VecDeque::new();
    let mut running: Vec<usize> = Vec::new();
    let mut released = 0usize;
    let mut out = ServingResult {
        kv_capacity_tokens: kv.total_blocks * s.kv_block,
        ..ServingResult::default()
    };
    let release = |i: usize, at: f64, reqs: &mut Vec<Req>, waiting: &mut VecDeque<usize>| {
        let spec = specs[i];
        reqs.push(Req {
            spec,
            arrival: at,
            in_kv: 0,
            target: spec.prompt,
            generated: 0,
            blocks: 0,
            first_token: None,
            last_token: at,
        });
        waiting.push_back(i);
    };
    if let Arrivals::Closed { concurrency } = s.arrivals {
        while (released as u64) < concurrency.min(s.count) {
            release(released, 0.0, &mut reqs, &mut waiting);
            released += 1;
        }
    }
    let mut t = 0.0;
    let mut batch_sum = 0.0;
    loop {
        if !matches!(s.arrivals, Arrivals::Closed { .. }) {
            while released < specs.len() && specs[released].arrival.unwrap_or(0.0) <= t {
                release(
                    released,
                    specs[released].arrival.unwrap_or(0.0),
                    &mut reqs,
                    &mut waiting,
                );
                released += 1;
            }
        }
        if running.is_empty() && waiting.is_empty() {
            if released < specs.len() {
                t = t.max(specs[released].arrival.unwrap_or(t));
                continue;
            }
            break;
        }
        // Decode tokens first: each running sequence past its prefill takes one.
        let mut budget = s.max_tokens;
        let mut decode: Vec<usize> = Vec::new();
        let mut preempted_now = false;
        let mut i = 0;
        while i < running.len() && budget > 0 {
            let r = running[i];
            if !reqs[r].decoding() {
                i += 1;
                continue;
            }
            let need = kv
                .blocks_for(reqs[r].in_kv + 1)
                .saturating_sub(reqs[r].blocks);
            while !kv.try_take(need) {
                // Preempt the latest admitted other sequence (recomputed later), else this one.
                let Some(&victim) = running.last() else {
                    break;
                };
                preempt(&mut reqs[victim], &mut kv);
                running.pop();
                waiting.push_front(victim);
                out.preemptions += 1;
                preempted_now = true;
                if victim == r {
                    break;
                }
            }
            if running.get(i) != Some(&r) {
                break; // r itself was preempted: it was the last one.
            }
            reqs[r].blocks += need;
            decode.push(r);
            budget -= 1;
            i += 1;
        }
        // Then prefill chunks: running sequences part-way through their prompt, then admissions.
        let mut chunks: Vec<(usize, u64)> = Vec::new();
        let mut waited_kv = preempted_now;
        for &r in &running {
            if budget == 0 {
                break;
            }
            let q = &reqs[r];
            if q.decoding() {
                continue;
            }
            let c = (q.target - q.in_kv).min(budget);
            let need = kv.blocks_for(q.in_kv + c).saturating_sub(q.blocks);
            if kv.try_take(need) {
                reqs[r].blocks += need;
                chunks.push((r, c));
                budget -= c;
            } else {
                waited_kv = true;
            }
        }
        while budget > 0 && !preempted_now {
            let Some(&r) = waiting.front() else { break };
            if running.len() as u64 >= s.max_batch {
                out.waited_batch += 1;
                break;
            }
            let q = &reqs[r];
            let c = q.target.min(budget);
            let need = kv.blocks_for(c);
            if kv.blocks_for(q.target) > kv.total_blocks {
                return Err(ServingError::TooLong {
                    id: r,
                    need: kv.blocks_for(q.target),
                    total: kv.total_blocks,
                });
            }
            if !kv.try_take(need) {
                waited_kv = true;
                break;
            }
            waiting.pop_front();
            reqs[r].blocks = need;
            running.push(r);
            chunks.push((r, c));
            budget -= c;
        }
        if budget == 0 && !waiting.is_empty() {
            out.waited_budget += 1;
        }
        out.waited_kv += u64::from(waited_kv);
        if decode.is_empty() && chunks.is_empty() {
            return Err(ServingError::Invalid(format!(
                "no request can make progress at t = {t} s (KV cache of {} blocks)",
                kv.total_blocks
            )));
        }
        let batch = Batch {
            decode_kv: decode.iter().map(|&r| reqs[r].in_kv + 1).collect(),
            prefill: chunks
                .iter()
                .map(|&(r, c)| PrefillChunk {
                    q_len: c,
                    ctx: reqs[r].in_kv,
                    last: reqs[r].in_kv + c == reqs[r].target,
                })
                .collect(),
        };
        let tokens = batch.tokens();
        // Under expert parallelism device 0 runs every ep-th sequence (the largest share).
        let batch = if s.ep > 1 {
            let n = s.ep as usize;
            Batch {
                decode_kv: batch.decode_kv.iter().step_by(n).copied().collect(),
                prefill: batch.prefill.iter().step_by(n).copied().collect(),
            }
        } else {
            batch
        };
        let counts: Vec<Vec<u64>> = match &router {
            None => Vec::new(),
            Some(rt) if rt.is_uniform() => vec![rt.counts(0, tokens, &mut route_rng)],
            Some(rt) => (0..m.layers as usize)
                .map(|l| rt.counts(l, tokens, &mut route_rng))
                .collect(),
        };
        let c: IterCost = coster.iteration(&batch, &counts, trace)?;
        let (start, in_system) = (t, (running.len() + waiting.len()) as u64);
        if trace {
            out.spans.extend(c.spans.iter().map(|x| OpSpan {
                start: x.start + t,
                end: x.end + t,
                ..x.clone()
            }));
        }
        t += c.time;
        out.iterations += 1;
        out.energy += c.energy;
        out.energy_parts.add(c.energy_parts);
        for (a, b) in out.unit_time.iter_mut().zip(c.unit_time) {
            *a += b;
        }
        out.ops_simulated += c.ops;
        for (a, b) in out.busy.iter_mut().zip(c.busy) {
            *a += b;
        }
        for (a, b) in out.by_bound.iter_mut().zip(c.by_bound) {
            *a += b;
        }
        batch_sum += (decode.len() + chunks.len()) as f64;
        // Advance every sequence in the batch.
        for &r in &decode {
            let q = &mut reqs[r];
            q.in_kv += 1;
            emit(q, t, &mut out);
        }
        for &(r, c) in &chunks {
            let q = &mut reqs[r];
            q.in_kv += c;
            if q.in_kv == q.target {
                emit(q, t, &mut out);
            }
        }
        // Retire finished sequences; a closed loop replaces each with a new request.
        let mut k = 0;
        while k < running.len() {
            let r = running[k];
            if reqs[r].generated >= reqs[r].spec.output {
                let q = &reqs[r];
                kv.release(q.blocks);
                out.requests_completed += 1;
                out.prompt_tokens += q.spec.prompt;
                out.e2e.push(t - q.arrival);
                if trace {
                    out.lives.push(RequestLife {
                        arrival: q.arrival,
                        first_token: q.first_token.unwrap_or(t),
                        finish: t,
                    });
                }
                running.remove(k);
                if matches!(s.arrivals, Arrivals::Closed { .. }) && released < specs.len() {
                    release(released, t, &mut reqs, &mut waiting);
                    released += 1;
                }
            } else {
                k += 1;
            }
        }
        out.timeline.push(TimelinePoint {
            t: start,
            duration: t - start,
            in_system,
            batch: (decode.len() + chunks.len()) as u64,
            kv_used: kv.used() as f64 / kv.total_blocks as f64,
        });
    }
    out.duration = t;
    out.mean_batch = batch_sum / out.iterations.max(1) as f64;
    out.energy_static = s.sys.xpu.energy.static_power.value() * t * devices;
    out.energy += out.energy_static;
    out.cache_hits = coster.hits;
    out.cache_misses = coster.misses;
    Ok(out)
}

/// A token is produced for `q` at time `t`.
fn emit(q: &mut Req, t: f64, out: &mut ServingResult) {
    q.generated += 1;
    out.output_tokens += 1;
    match q.first_token {
        None => {
            q.first_token = Some(t);
            out.ttft.push(t - q.arrival);
        }
        Some(_) => out.tbt.push(t - q.last_token),
    }
    q.last_token = t;
}

/// Frees `q`'s cache; it will recompute its prompt and the tokens it has generated.
fn preempt(q: &mut Req, kv: &mut PagedKv) {
    kv.release(q.blocks);
    q.blocks = 0;
    q.in_kv = 0;
    q.target = q.spec.prompt + q.generated;
}
