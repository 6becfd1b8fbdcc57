//! One iteration of a serving run: plan it, cost it on the engine, and advance the requests
//! (emit tokens, retire the finished, record the timeline).

use super::round::{device_share, route_into};
use super::schedule::{Plan, next_batch};
use super::setup::Bench;
use super::stats::{RequestLife, ServingLimit, ServingResult, TimelinePoint};
use super::{IterationRecord, ServingError};
use crate::hw::IterShape;
use crate::sim::iteration::IterCost;

impl Bench<'_> {
    /// Releases the requests that have arrived and plans the next iteration; `None` when every
    /// request has finished. An idle system skips ahead to the next arrival.
    pub(super) fn plan(&mut self) -> Result<Option<Plan>, ServingError> {
        loop {
            if !self.closed() {
                while self.released < self.specs.len()
                    && self.specs[self.released].arrival.unwrap_or(0.0) <= self.t
                {
                    self.release(self.specs[self.released].arrival.unwrap_or(0.0));
                }
            }
            if self.queues.in_system() > 0 {
                break;
            }
            if self.released >= self.specs.len() {
                return Ok(None);
            }
            self.t = self
                .t
                .max(self.specs[self.released].arrival.unwrap_or(self.t));
        }
        let plan = next_batch(&mut self.queues, &self.limits)?;
        let out = &mut self.out;
        out.preemptions += plan.preempted;
        out.waited_batch += u64::from(plan.waits.batch);
        out.waited_budget += u64::from(plan.waits.budget);
        out.waited_kv += u64::from(plan.waits.kv);
        if plan.sequences() == 0 {
            return Err(ServingError::NoProgress {
                t: self.t,
                blocks: self.queues.kv.total_blocks,
            });
        }
        Ok(Some(plan))
    }

    /// Costs `plan` on the engine: device 0's share of the batch, its tokens routed to experts.
    pub(super) fn cost(&mut self, plan: &Plan) -> Result<IterCost, ServingError> {
        if let Some(mut pipe) = self.pipe.take() {
            let c = self.cost_pipelined(&mut pipe, plan);
            self.pipe = Some(pipe);
            return c;
        }
        let draft = self.draft_passes(plan)?;
        let batch = self.target_batch(plan);
        let tokens = batch.tokens();
        // Under expert parallelism device 0 runs every ep-th sequence (the largest share).
        let batch = device_share(batch, self.s.ep);
        self.draw_counts(tokens);
        let spans = self.observer.is_some();
        let counts = std::mem::take(&mut self.counts);
        let c = self.target_pass(plan, &batch, &counts, spans);
        self.counts = counts;
        let mut c = c?;
        if let Some(sw) = &self.s.software {
            c.time += sw
                .host(&IterShape {
                    ops: c.ops,
                    collectives: c.collectives,
                    seqs: (plan.decode.len() + plan.chunks.len()) as u64,
                    prompt_tokens: plan.chunks.iter().map(|&(_, n)| n).sum(),
                    decode_only: plan.chunks.is_empty(),
                    tp: self.s.tp,
                })
                .value();
        }
        Ok(self.join_round(draft, c))
    }

    /// Tokens per expert of each layer for an iteration of `tokens` tokens
    /// (`round::route`), into `self.counts`, its vectors reused.
    fn draw_counts(&mut self, tokens: u64) {
        let (router, m) = (self.router.as_ref(), &self.s.model);
        route_into(router, &mut self.route_rng, m, tokens, &mut self.counts);
    }

    /// Runs `plan` for `c.time`: every sequence in it advances, tokens are emitted, finished
    /// requests retire (a closed loop replaces each), and the iteration is recorded.
    pub(super) fn advance(&mut self, plan: &Plan, c: &IterCost) {
        let (start, in_system) = (self.t, self.queues.in_system() as u64);
        let waiting = self.queues.waiting.len() as u64;
        self.out.add_iteration(c);
        self.t += c.time;
        let t = self.t;
        self.batch_sum += plan.sequences() as f64;
        let before = self.spec.as_ref().map(|x| x.stats).unwrap_or_default();
        for &r in &plan.decode {
            let n = self.round_tokens(r);
            self.queues.seqs[r].in_kv += n;
            for _ in 0..n {
                self.emit(r);
            }
            self.roll_back(r);
        }
        for &(r, c) in &plan.chunks {
            let q = &mut self.queues.seqs[r];
            q.in_kv += c;
            if q.in_kv == q.target {
                self.emit(r);
            }
        }
        for r in self.queues.retire() {
            self.complete(r);
            if self.closed() && self.released < self.specs.len() {
                self.release(t);
            }
        }
        let after = self.spec.as_ref().map(|x| x.stats).unwrap_or_default();
        let kv = &self.queues.kv;
        let kv_used = kv.used() as f64 / kv.total_blocks as f64;
        self.out.timeline.push(TimelinePoint {
            t: start,
            duration: t - start,
            in_system,
            batch: plan.sequences() as u64,
            kv_used,
        });
        if let Some(o) = self.observer.as_deref_mut() {
            let devices = self.s.devices() as f64;
            let static_w = self.s.sys.xpu.energy.static_power.value() * devices;
            o.iteration(&IterationRecord {
                index: self.out.iterations - 1,
                start,
                cost: c,
                decode: plan.decode.len() as u64,
                prefill: plan.chunks.len() as u64,
                tokens: plan.decode.len() as u64 * self.limits.decode_tokens
                    + plan.chunks.iter().map(|&(_, n)| n).sum::<u64>(),
                waiting,
                in_system,
                kv_used,
                power: c.energy / c.time.max(f64::MIN_POSITIVE) + static_w,
                drafted: after.drafted - before.drafted,
                accepted: after.accepted - before.accepted,
                draft_time: after.draft_time - before.draft_time,
                stages: self.pipe.as_ref().map_or(&[], |p| &p.last.spans),
            });
        }
    }

    /// Request `r` produces a token now.
    fn emit(&mut self, r: usize) {
        self.queues.seqs[r].generated += 1;
        self.clocks[r].emit(self.t, &mut self.out);
    }

    /// Request `r` has finished now.
    fn complete(&mut self, r: usize) {
        let (t, q, clock) = (self.t, &self.queues.seqs[r], &self.clocks[r]);
        let out = &mut self.out;
        out.requests_completed += 1;
        out.prompt_tokens += q.prompt;
        out.e2e.push(t - clock.arrival);
        if let (Some(first), true) = (clock.first_token, q.output > 1) {
            out.tpot.push((t - first) / (q.output - 1) as f64);
        }
        if let Some(o) = self.observer.as_deref_mut() {
            o.request(&RequestLife {
                id: r,
                prompt: q.prompt,
                output: q.output,
                arrival: clock.arrival,
                first_token: clock.first_token.unwrap_or(t),
                finish: t,
            });
        }
    }

    /// The run's totals once the last request has finished: duration, mean batch, static
    /// energy, cache counts and the limit.
    pub(super) fn finish(self) -> ServingResult {
        let s = self.s;
        let mut out = self.out;
        let devices = s.devices() as f64;
        out.duration = self.t;
        out.mean_batch = self.batch_sum / out.iterations.max(1) as f64;
        out.energy_static = s.sys.xpu.energy.static_power.value() * self.t * devices;
        out.energy += out.energy_static;
        out.cache_hits = self.coster.hits;
        out.cache_misses = self.coster.misses;
        if let Some(p) = self.pipe {
            p.finish(&mut out);
        }
        out.limit = ServingLimit::of(&out, s.max_batch);
        out.speculative = self.spec.map(|x| x.stats);
        out.expert_parallel = self.coster.ep_stats();
        out
    }
}
