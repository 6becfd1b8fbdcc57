//! The continuous-batching policy: which tokens run in the next iteration.
//!
//! [`next_batch`] is a function of the queues and the limits alone (no engine, no costs, no
//! RNG): it takes KV blocks for what it plans, preempts when decode runs out of them, and admits
//! from the waiting queue, changing nothing but the [`Queues`] it is given. The rules, in order:
//!
//! 1. **Decode first.** Each running sequence past its prompt takes one token (and a new KV
//!    block when its last one is full), in admission order, while the token budget lasts.
//! 2. **Preemption when KV runs out.** If a decoding sequence's block cannot be had, the most
//!    recently admitted running sequence (the back of the running list) is preempted: its blocks
//!    are freed, it goes to the front of the waiting queue, and it will recompute its prompt and
//!    the tokens it has generated. This repeats until the block fits; when the sequence itself is
//!    the most recent, it preempts itself and decode stops for this iteration.
//! 3. **Running prefills continue**, in admission order, each with a chunk of what is left of
//!    its prompt, cut at the remaining token budget; one whose blocks cannot be had waits.
//! 4. **Admissions**, from the front of the waiting queue, while the token budget lasts, the
//!    running list is below `max_batch` and the first chunk's blocks are free; none after a
//!    preemption in the same iteration.

use std::collections::VecDeque;

use super::ServingError;
use crate::sim::kv::PagedKv;

/// A request as the scheduler sees it: its lengths and its place in the KV cache.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seq {
    /// Prompt tokens.
    pub(super) prompt: u64,
    /// Output tokens it will generate.
    pub(super) output: u64,
    /// Tokens whose keys and values are in the cache.
    pub(super) in_kv: u64,
    /// Tokens that must be in the cache before decoding (the prompt; after a preemption, the
    /// prompt and the tokens generated so far, recomputed).
    pub(super) target: u64,
    /// Output tokens generated so far.
    pub(super) generated: u64,
    /// KV blocks it holds.
    pub(super) blocks: u64,
}

impl Seq {
    /// A request that has arrived and holds nothing yet.
    pub(super) fn new(prompt: u64, output: u64) -> Self {
        Seq {
            prompt,
            output,
            in_kv: 0,
            target: prompt,
            generated: 0,
            blocks: 0,
        }
    }

    /// Past its prompt (or its recomputation): it takes one token per iteration.
    pub(super) fn decoding(&self) -> bool {
        self.in_kv >= self.target
    }

    /// Has generated all its output.
    pub(super) fn done(&self) -> bool {
        self.generated >= self.output
    }

    /// Frees its cache; it will recompute its prompt and the tokens it has generated.
    fn preempt(&mut self, kv: &mut PagedKv) {
        kv.release(self.blocks);
        self.blocks = 0;
        self.in_kv = 0;
        self.target = self.prompt + self.generated;
    }
}

/// Every request that has arrived, the order they wait and run in, and the KV cache they share.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Queues {
    /// Requests by id (the order they arrived in).
    pub(super) seqs: Vec<Seq>,
    /// Ids waiting for admission, front first.
    pub(super) waiting: VecDeque<usize>,
    /// Ids admitted, in admission order.
    pub(super) running: Vec<usize>,
    /// The paged KV cache.
    pub(super) kv: PagedKv,
}

impl Queues {
    /// Empty queues over the cache `kv`.
    pub(super) fn new(kv: PagedKv) -> Self {
        Queues {
            seqs: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv,
        }
    }

    /// Adds an arrived request at the back of the waiting queue; returns its id.
    pub(super) fn arrive(&mut self, seq: Seq) -> usize {
        let id = self.seqs.len();
        self.seqs.push(seq);
        self.waiting.push_back(id);
        id
    }

    /// Requests that have arrived and not finished.
    pub(super) fn in_system(&self) -> usize {
        self.running.len() + self.waiting.len()
    }

    /// Removes the finished running requests and frees their blocks; returns their ids in
    /// admission order.
    pub(super) fn retire(&mut self) -> Vec<usize> {
        let mut done = Vec::new();
        let (seqs, kv) = (&self.seqs, &mut self.kv);
        self.running.retain(|&r| {
            if seqs[r].done() {
                kv.release(seqs[r].blocks);
                done.push(r);
                false
            } else {
                true
            }
        });
        done
    }
}

/// The scenario's limits on one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Limits {
    /// Most sequences running at once.
    pub(super) max_batch: u64,
    /// Most tokens (decode tokens plus prefill chunk tokens) in one iteration.
    pub(super) max_tokens: u64,
}

/// What admission waited on in one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Waits {
    /// KV space: a preemption, a prefill chunk or an admission whose blocks were not free.
    pub(super) kv: bool,
    /// The batch limit: a request waited while `max_batch` sequences ran.
    pub(super) batch: bool,
    /// The token budget: it was spent with requests still waiting.
    pub(super) budget: bool,
}

/// The next iteration: which sequences run and how many tokens each.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Plan {
    /// Ids that decode one token, in admission order.
    pub(super) decode: Vec<usize>,
    /// (id, tokens) of prefill chunks: running prefills first, then admissions.
    pub(super) chunks: Vec<(usize, u64)>,
    /// Sequences preempted to make room.
    pub(super) preempted: u64,
    /// What admission waited on.
    pub(super) waits: Waits,
}

impl Plan {
    /// Sequences in the iteration.
    pub(super) fn sequences(&self) -> usize {
        self.decode.len() + self.chunks.len()
    }
}

/// Plans the next iteration under `lim` (the rules in the module comment), taking its KV
/// blocks, preempting and admitting in `q`. A request whose prompt alone needs more blocks than
/// the cache holds is [`ServingError::TooLong`].
pub(super) fn next_batch(q: &mut Queues, lim: &Limits) -> Result<Plan, ServingError> {
    let mut plan = Plan::default();
    let mut budget = lim.max_tokens;
    decode(q, &mut budget, &mut plan);
    plan.waits.kv = plan.preempted > 0;
    continue_prefills(q, &mut budget, &mut plan);
    if plan.preempted == 0 {
        admit(q, lim.max_batch, &mut budget, &mut plan)?;
    }
    plan.waits.budget = budget == 0 && !q.waiting.is_empty();
    Ok(plan)
}

/// Rules 1 and 2: one token per decoding sequence, preempting from the back when KV runs out.
fn decode(q: &mut Queues, budget: &mut u64, plan: &mut Plan) {
    let mut i = 0;
    while i < q.running.len() && *budget > 0 {
        let r = q.running[i];
        if !q.seqs[r].decoding() {
            i += 1;
            continue;
        }
        let need =
            q.kv.blocks_for(q.seqs[r].in_kv + 1)
                .saturating_sub(q.seqs[r].blocks);
        while !q.kv.try_take(need) {
            // Preempt the latest admitted other sequence (recomputed later), else this one.
            let Some(&victim) = q.running.last() else {
                break;
            };
            q.seqs[victim].preempt(&mut q.kv);
            q.running.pop();
            q.waiting.push_front(victim);
            plan.preempted += 1;
            if victim == r {
                break;
            }
        }
        if q.running.get(i) != Some(&r) {
            break; // r itself was preempted: it was the last one.
        }
        q.seqs[r].blocks += need;
        plan.decode.push(r);
        *budget -= 1;
        i += 1;
    }
}

/// Rule 3: running sequences part-way through their prompt take a chunk each.
fn continue_prefills(q: &mut Queues, budget: &mut u64, plan: &mut Plan) {
    for &r in &q.running {
        if *budget == 0 {
            break;
        }
        let s = &mut q.seqs[r];
        if s.decoding() {
            continue;
        }
        let c = (s.target - s.in_kv).min(*budget);
        let need = q.kv.blocks_for(s.in_kv + c).saturating_sub(s.blocks);
        if q.kv.try_take(need) {
            s.blocks += need;
            plan.chunks.push((r, c));
            *budget -= c;
        } else {
            plan.waits.kv = true;
        }
    }
}

/// Rule 4: admissions from the front of the waiting queue, each with its first chunk.
fn admit(
    q: &mut Queues,
    max_batch: u64,
    budget: &mut u64,
    plan: &mut Plan,
) -> Result<(), ServingError> {
    while *budget > 0 {
        let Some(&r) = q.waiting.front() else { break };
        if q.running.len() as u64 >= max_batch {
            plan.waits.batch = true;
            break;
        }
        let s = &q.seqs[r];
        let c = s.target.min(*budget);
        let need = q.kv.blocks_for(c);
        if q.kv.blocks_for(s.target) > q.kv.total_blocks {
            return Err(ServingError::TooLong {
                id: r,
                need: q.kv.blocks_for(s.target),
                total: q.kv.total_blocks,
            });
        }
        if !q.kv.try_take(need) {
            plan.waits.kv = true;
            break;
        }
        q.waiting.pop_front();
        q.seqs[r].blocks = need;
        q.running.push(r);
        plan.chunks.push((r, c));
        *budget -= c;
    }
    Ok(())
}
