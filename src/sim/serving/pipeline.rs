//! Pipeline parallelism in the serving engine (a scenario's `[pipeline]`, as Vidur simulates
//! it): the model's layers in S stages of `layers ÷ S` consecutive layers, stage s on its own
//! `tp` devices (S × tp in all), the embedding on the first stage and the final norm and LM head
//! on the last.
//!
//! - **Memory.** A stage's devices hold only its layers' weights (and the embedding, or the
//!   head; a tied embedding is held by both ends) and its layers' KV cache, beside the
//!   activations the plain engine reserves for a whole iteration. A sequence's KV is spread over
//!   every stage, so the cache holds as many blocks as the fullest stage leaves room for.
//! - **Micro-batches.** Each iteration's batch is split into M micro-batches of equal tokens
//!   (within one): its tokens in order, decode sequences first and then each prefill chunk's,
//!   cut into M consecutive runs, so a prefill chunk may be cut into parts in consecutive
//!   micro-batches, each part attending the parts before it (chunked prefill makes
//!   micro-batches uniform and so shrinks pipeline bubbles: Sarathi-Serve, arXiv 2403.02310,
//!   §4). An iteration of fewer than M tokens runs that many micro-batches.
//! - **Cost.** A micro-batch on a stage is priced as the plain engine prices an iteration of
//!   that micro-batch over the stage's layers (`Coster::stage`); its tokens' activations
//!   (tokens × hidden × activation size, on each of the stage's `tp` devices) cross each stage
//!   boundary in `bytes ÷ bandwidth + latency` over the node's link (the cluster's when the
//!   stages span nodes), one transfer on a boundary's link at a time (the latency overlaps the
//!   next), charged at the link's energy per bit. MoE tokens are routed per
//!   micro-batch.
//! - **Iterations are barriers.** Each iteration fills and drains the pipe: its time is the
//!   makespan of `sim::pipeline`'s forward schedule of its micro-batches, and the next iteration
//!   (whose batch depends on this one's tokens) starts after it. The bubble is the stage-time
//!   idle within those makespans.

use super::ServingError;
use super::schedule::Plan;
use super::setup::Bench;
use super::stats::ServingResult;
use crate::model::{Batch, Footprint, ModelSpec, Parallelism, PrefillChunk};
use crate::sim::iteration::{Coster, IterCost, RESOURCES};
use crate::sim::pipeline::{Pipeline, Send, schedule_sends};
use crate::units::Bytes;

/// A scenario's pipeline: stages of consecutive layers and micro-batches per iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipelining {
    /// Stages (S); they divide the model's layers.
    pub stages: u64,
    /// Micro-batches each iteration's batch is split into (M).
    pub micro_batches: u64,
}

impl Pipelining {
    /// First and one-past-last layer of each stage of a model of `layers` layers.
    pub fn bounds(&self, layers: u32) -> Vec<(u32, u32)> {
        let per = layers / self.stages.max(1) as u32;
        (0..self.stages as u32)
            .map(|s| (s * per, (s + 1) * per))
            .collect()
    }
}

impl super::Scenario {
    /// Pipeline stages (1 without a pipeline).
    pub fn stages(&self) -> u64 {
        self.pipeline.map_or(1, |p| p.stages)
    }

    /// Devices of the replica: `tp × ep × stages`.
    pub fn devices(&self) -> u64 {
        self.tp * self.ep * self.stages()
    }
}

/// Refuses a pipeline the engine cannot run (stages not dividing the layers, no micro-batch,
/// expert parallelism, speculative decoding).
pub(super) fn check(s: &super::Scenario) -> Result<(), ServingError> {
    let Some(p) = s.pipeline else { return Ok(()) };
    let layers = u64::from(s.model.layers());
    let divides = p.stages >= 1 && p.stages <= layers && layers % p.stages == 0;
    if !divides || p.micro_batches == 0 || s.ep > 1 || s.speculative.is_some() {
        return Err(ServingError::PipelineLayout {
            stages: p.stages,
            micro_batches: p.micro_batches,
        });
    }
    Ok(())
}

/// What a pipelined run measured, summed over its iterations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineStats {
    /// Stages.
    pub stages: u64,
    /// Micro-batches asked for per iteration.
    pub micro_batches: u64,
    /// First and one-past-last layer of each stage.
    pub layers: Vec<(u32, u32)>,
    /// Time each stage computed, s.
    pub busy: Vec<f64>,
    /// The iterations' makespans summed, s.
    pub span: f64,
    /// Iterations run.
    pub iterations: u64,
    /// Micro-batches run (at most `micro_batches` per iteration).
    pub micro_batches_run: u64,
    /// Activation bytes sent over the stage boundaries, per device of a stage.
    pub activation_bytes: f64,
    /// Time of those sends, s (each boundary counted).
    pub send_time: f64,
}

impl PipelineStats {
    /// Share of stage-time idle within the iterations' makespans: 1 − Σ busy ÷ (S × Σ makespan).
    pub fn bubble(&self) -> f64 {
        let total = self.stages as f64 * self.span;
        if total <= 0.0 {
            return 0.0;
        }
        // At least 0: a stage's busy time never passes the makespan, but its sum may round past.
        (1.0 - self.busy.iter().sum::<f64>() / total).max(0.0)
    }

    /// Each stage's busy time over the iterations' makespans.
    pub fn utilization(&self) -> Vec<f64> {
        let span = self.span.max(f64::MIN_POSITIVE);
        self.busy.iter().map(|b| (b / span).min(1.0)).collect()
    }
}

/// A pipelined run's state: a coster per stage, the boundary link, and what it measured.
pub(super) struct PipeRun<'a> {
    costers: Vec<Coster<'a>>,
    micro: u64,
    /// Bandwidth (B/s), latency (s) and energy (J/bit) of a stage boundary.
    link: [f64; 3],
    /// Bytes of one token's activations (hidden × the activation type's size).
    token_bytes: f64,
    /// Devices of a stage, each sending its copy of the activations.
    tp: u64,
    /// The latest iteration's schedule (for the trace).
    pub(super) last: Pipeline,
    stats: PipelineStats,
}

/// `m` cut to layers `a..b` (its stage's).
fn stage_model(m: &ModelSpec, a: u32, b: u32) -> ModelSpec {
    ModelSpec {
        plans: m.plans[a as usize..b as usize].to_vec(),
        ..m.clone()
    }
}

impl<'a> PipeRun<'a> {
    /// The pipeline of `s` split as `par` (`None` without `[pipeline]`).
    pub(super) fn new(s: &'a super::Scenario, par: Parallelism) -> Option<Self> {
        let p = s.pipeline?;
        let layers = p.bounds(s.model.layers());
        let n = layers.len();
        let costers = layers
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| {
                let m = stage_model(&s.model, a, b);
                Coster::new(&s.sys, &m, par, s.precision, s.timing, s.policy)
                    .stage(i == 0, i + 1 == n)
            })
            .collect();
        let link = match &s.sys.cluster {
            Some(c) if p.stages * s.tp > u64::from(s.sys.node.devices) => &c.link,
            _ => &s.sys.node.link,
        };
        Some(PipeRun {
            costers,
            micro: p.micro_batches,
            link: [
                link.bandwidth.value(),
                link.latency.value(),
                link.energy.value(),
            ],
            token_bytes: s.model.hidden as f64 * s.precision.activations.bytes(),
            tp: s.tp,
            last: Pipeline {
                spans: Vec::new(),
                makespan: 0.0,
                busy: Vec::new(),
            },
            stats: PipelineStats {
                stages: p.stages,
                micro_batches: p.micro_batches,
                busy: vec![0.0; n],
                layers,
                ..PipelineStats::default()
            },
        })
    }

    /// Adds the stages' cost-cache counts and the pipeline's figures to `out`.
    pub(super) fn finish(self, out: &mut ServingResult) {
        out.cache_hits += self.costers.iter().map(|c| c.hits).sum::<u64>();
        out.cache_misses += self.costers.iter().map(|c| c.misses).sum::<u64>();
        out.pipeline = Some(self.stats);
    }

    /// Micro-batch `b`'s activations over one stage boundary (nothing with one stage).
    fn send(&self, b: &Batch) -> Send {
        if self.costers.len() < 2 {
            return Send::default();
        }
        Send {
            transfer: b.tokens() as f64 * self.token_bytes / self.link[0],
            latency: self.link[1],
        }
    }

    /// Prices micro-batches `micro` (tokens per expert `counts[j]` for micro-batch j) on every
    /// stage and schedules them: the iteration's cost, its time the makespan.
    fn run(
        &mut self,
        micro: &[Batch],
        counts: &[Vec<Vec<u64>>],
        spans: bool,
    ) -> Result<IterCost, ServingError> {
        let stages = self.costers.len();
        let mut times = vec![vec![0.0; micro.len()]; stages];
        let mut parts: Vec<Vec<IterCost>> = Vec::with_capacity(stages);
        let mut total = IterCost::default();
        for (s, coster) in self.costers.iter_mut().enumerate() {
            let (a, b) = self.stats.layers[s];
            let mut row = Vec::with_capacity(micro.len());
            for (j, mb) in micro.iter().enumerate() {
                let c = &counts[j];
                let c = if c.len() > 1 {
                    &c[a as usize..b as usize]
                } else {
                    c
                };
                let cost = coster.iteration(mb, c, spans)?;
                times[s][j] = cost.time;
                add(&mut total, &cost, stages as f64);
                row.push(cost);
            }
            parts.push(row);
        }
        let sends: Vec<Send> = micro.iter().map(|b| self.send(b)).collect();
        let pipe = schedule_sends(&times, &sends);
        let boundaries = (stages - 1) as f64;
        let bytes = micro.iter().map(|b| b.tokens() as f64).sum::<f64>() * self.token_bytes;
        total.energy_parts.link += bytes * boundaries * 8.0 * self.link[2] * self.tp as f64;
        total.energy = total.energy_parts.total();
        total.time = pipe.makespan;
        if spans {
            self.place_spans(&pipe, parts, &mut total);
        }
        let st = &mut self.stats;
        for (b, x) in st.busy.iter_mut().zip(&pipe.busy) {
            *b += x;
        }
        st.span += pipe.makespan;
        st.iterations += 1;
        st.micro_batches_run += micro.len() as u64;
        st.activation_bytes += bytes * boundaries;
        st.send_time += sends.iter().map(Send::time).sum::<f64>() * boundaries;
        self.last = pipe;
        Ok(total)
    }

    /// Each (stage, micro-batch)'s op spans at its start in `pipe`, on the stage's device 0
    /// (one trace process per stage), labelled with the model's layer numbers.
    fn place_spans(&self, pipe: &Pipeline, parts: Vec<Vec<IterCost>>, total: &mut IterCost) {
        let m = parts.first().map_or(0, Vec::len);
        for (s, row) in parts.into_iter().enumerate() {
            let first = self.stats.layers[s].0;
            for (j, cost) in row.into_iter().enumerate() {
                let at = pipe.spans[s * m + j].start;
                total.spans.extend(cost.spans.into_iter().map(|mut x| {
                    x.start += at;
                    x.end += at;
                    x.resource += RESOURCES.len() * s;
                    x.layer = x.layer.map(|l| l + first);
                    x
                }));
            }
        }
    }
}

/// Adds `c` (one stage's micro-batch) into `total`: its energy, op times and counts summed,
/// its busy seconds as a share of the `stages` stages' mean device.
fn add(total: &mut IterCost, c: &IterCost, stages: f64) {
    total.energy_parts.add(c.energy_parts);
    for (a, b) in total.busy.iter_mut().zip(c.busy) {
        *a += b / stages;
    }
    super::stats::add(&mut total.unit_time, &c.unit_time);
    super::stats::add(&mut total.by_bound, &c.by_bound);
    total.ops += c.ops;
    total.collectives += c.collectives;
}

/// `batch` split into at most `m` micro-batches of as equal tokens as can be (within one), as
/// the module says: its tokens laid out in order (decode sequences, then each prefill chunk's
/// prompt tokens) and cut into consecutive runs. A chunk cut at a boundary continues in the next
/// micro-batch after the part before it (`ctx` advanced; only its last part ends the prompt),
/// which that stage has run first. Fewer tokens than `m` make that many micro-batches.
pub fn split(batch: &Batch, m: u64) -> Vec<Batch> {
    let total = batch.tokens();
    let n = total.min(m).max(1);
    let cap = |j: u64| total / n + u64::from(j < total % n);
    let mut out = vec![Batch::default(); n as usize];
    let (mut j, mut room) = (0, cap(0));
    let next = |j: &mut u64, room: &mut u64| {
        if *room == 0 {
            *j += 1;
            *room = cap(*j);
        }
    };
    for &kv in &batch.decode_kv {
        next(&mut j, &mut room);
        out[j as usize].decode_kv.push(kv);
        room -= 1;
    }
    for c in &batch.prefill {
        let (mut left, mut ctx) = (c.q_len, c.ctx);
        while left > 0 {
            next(&mut j, &mut room);
            let q = left.min(room);
            out[j as usize].prefill.push(PrefillChunk {
                q_len: q,
                ctx,
                last: c.last && q == left,
            });
            (ctx, left, room) = (ctx + q, left - q, room - q);
        }
    }
    out
}

/// The KV blocks of a pipeline of more than one stage: the fewest any stage's devices hold
/// beside its weights and the iteration's activations.
pub(super) fn kv_blocks(
    s: &super::Scenario,
    p: Pipelining,
    par: Parallelism,
) -> Result<u64, ServingError> {
    let usable = Bytes(s.sys.xpu.memory.capacity.value() * s.memory_utilization);
    let m = &s.model;
    let act =
        Footprint::new(m, par, s.precision).activations(m, s.precision, s.max_tokens, s.max_batch);
    // The embedding, final norm and LM head, which every stage model counts.
    let ends = Footprint::new(&stage_model(m, 0, 0), par, s.precision)
        .weights
        .value();
    let embedding = (m.vocab * m.hidden) as f64 * s.precision.weights.bytes() / par.tp as f64;
    let tied = if m.tie_embeddings { embedding } else { 0.0 };
    let bounds = p.bounds(m.layers());
    let mut fewest = u64::MAX;
    for (i, &(a, b)) in bounds.iter().enumerate() {
        let mut f = Footprint::new(&stage_model(m, a, b), par, s.precision);
        let mut w = f.weights.value() - ends;
        if i == 0 {
            w += embedding;
        }
        if i + 1 == bounds.len() {
            w += ends - embedding + tied;
        }
        f.weights = Bytes(w);
        let blocks = f
            .kv_blocks(usable, act, s.kv_block)
            .ok_or(ServingError::NoKvRoom {
                weights: w / 1e9,
                act: act.value() / 1e9,
                usable: usable.value() / 1e9,
            })?;
        fewest = fewest.min(blocks);
    }
    Ok(fewest)
}

impl Bench<'_> {
    /// Costs `plan` through `pipe`: the target batch split into micro-batches, each routed to
    /// experts on its own, priced on every stage and scheduled.
    pub(super) fn cost_pipelined(
        &mut self,
        pipe: &mut PipeRun<'_>,
        plan: &Plan,
    ) -> Result<IterCost, ServingError> {
        let micro = split(&self.target_batch(plan), pipe.micro);
        let (router, m) = (self.router.as_ref(), &self.s.model);
        let rng = &mut self.route_rng;
        let counts: Vec<Vec<Vec<u64>>> = (micro.iter())
            .map(|b| super::round::route(router, rng, m, b.tokens()))
            .collect();
        pipe.run(&micro, &counts, self.observer.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(q_len: u64) -> PrefillChunk {
        PrefillChunk {
            q_len,
            ctx: 0,
            last: true,
        }
    }

    #[test]
    fn a_split_balances_tokens_and_cuts_chunks_into_ordered_parts() {
        let batch = Batch {
            decode_kv: (1..=10).collect(),
            prefill: vec![chunk(300), chunk(7), chunk(50)],
        };
        let parts = split(&batch, 4);
        // 367 tokens: 92, 92, 92, 91.
        let tokens: Vec<u64> = parts.iter().map(Batch::tokens).collect();
        assert_eq!(tokens, vec![92, 92, 92, 91]);
        let kv: Vec<u64> = parts.iter().flat_map(|b| b.decode_kv.clone()).collect();
        assert_eq!(kv, batch.decode_kv);
        // The 300-token prompt: 82 in the first, 92 in the second and third, 34 in the last,
        // each part after the ones before it, and only its last part ends the prompt.
        let first: Vec<(u64, u64, bool)> = parts
            .iter()
            .flat_map(|b| b.prefill.iter())
            .take(4)
            .map(|c| (c.q_len, c.ctx, c.last))
            .collect();
        let want = [
            (82, 0, false),
            (92, 82, false),
            (92, 174, false),
            (34, 266, true),
        ];
        assert_eq!(first, want);
        let rest: Vec<(u64, u64)> = parts[3].prefill[1..]
            .iter()
            .map(|c| (c.q_len, c.ctx))
            .collect();
        assert_eq!(rest, vec![(7, 0), (50, 0)]);
    }

    #[test]
    fn fewer_tokens_than_micro_batches_run_one_each_and_one_is_the_batch() {
        let batch = Batch {
            decode_kv: vec![5, 6],
            prefill: vec![chunk(1)],
        };
        assert_eq!(split(&batch, 8).len(), 3);
        let big = Batch {
            prefill: vec![chunk(9)],
            ..batch.clone()
        };
        assert_eq!(split(&big, 1), vec![big.clone()]);
    }

    #[test]
    fn stages_take_equal_runs_of_layers() {
        let p = Pipelining {
            stages: 4,
            micro_batches: 2,
        };
        assert_eq!(p.bounds(80), vec![(0, 20), (20, 40), (40, 60), (60, 80)]);
    }
}
