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
    /// Its prompt's KV arrives computed (a disaggregated decode pool): admitted, it takes the
    /// prompt's blocks and decodes at once, with no prefill chunk.
    pub(super) kv_ready: bool,
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
            kv_ready: false,
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
        self.kv_ready = false;
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
    /// Most prefill chunks in one iteration (the software profile's `max_prefills`).
    pub(super) max_prefills: u64,
    /// Tokens (and KV positions) each decoding sequence takes: 1, or d + 1 in a speculative
    /// round (its draft and the verify pass's own token).
    pub(super) decode_tokens: u64,
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
    admit_ready(q, lim, &mut plan)?;
    decode(q, lim.decode_tokens, &mut budget, &mut plan);
    plan.waits.kv |= plan.preempted > 0;
    continue_prefills(q, lim.max_prefills, &mut budget, &mut plan);
    if plan.preempted == 0 {
        admit(q, lim, &mut budget, &mut plan)?;
    }
    plan.waits.budget = budget == 0 && !q.waiting.is_empty();
    Ok(plan)
}

/// Rules 1 and 2: `step` tokens per decoding sequence (1, or d + 1 in a speculative round),
/// preempting from the back when KV runs out.
fn decode(q: &mut Queues, step: u64, budget: &mut u64, plan: &mut Plan) {
    plan.decode.reserve(q.running.len());
    let mut i = 0;
    while i < q.running.len() && *budget >= step {
        let r = q.running[i];
        if !q.seqs[r].decoding() {
            i += 1;
            continue;
        }
        let need = q.kv.more_blocks(q.seqs[r].in_kv + step, q.seqs[r].blocks);
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
        *budget -= step;
        i += 1;
    }
}

/// Before rule 1: requests at the front of the waiting queue whose prompt KV arrived computed
/// (only a disaggregated decode pool has them) are admitted while the batch and the blocks
/// allow, and decode in this iteration.
fn admit_ready(q: &mut Queues, lim: &Limits, plan: &mut Plan) -> Result<(), ServingError> {
    while let Some(&r) = q.waiting.front() {
        if !q.seqs[r].kv_ready {
            break;
        }
        if q.running.len() as u64 >= lim.max_batch {
            plan.waits.batch = true;
            break;
        }
        let need = q.kv.blocks_for(q.seqs[r].target);
        if need > q.kv.total_blocks {
            return Err(ServingError::TooLong {
                id: r,
                need,
                total: q.kv.total_blocks,
            });
        }
        if !q.kv.try_take(need) {
            plan.waits.kv = true;
            break;
        }
        q.waiting.pop_front();
        let s = &mut q.seqs[r];
        (s.blocks, s.in_kv) = (need, s.target);
        q.running.push(r);
    }
    Ok(())
}

/// Rule 3: running sequences part-way through their prompt take a chunk each.
fn continue_prefills(q: &mut Queues, max_prefills: u64, budget: &mut u64, plan: &mut Plan) {
    for &r in &q.running {
        if *budget == 0 || plan.chunks.len() as u64 >= max_prefills {
            break;
        }
        let s = &mut q.seqs[r];
        if s.decoding() {
            continue;
        }
        let c = (s.target - s.in_kv).min(*budget);
        let need = q.kv.more_blocks(s.in_kv + c, s.blocks);
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
    lim: &Limits,
    budget: &mut u64,
    plan: &mut Plan,
) -> Result<(), ServingError> {
    while *budget > 0 && (plan.chunks.len() as u64) < lim.max_prefills {
        let Some(&r) = q.waiting.front() else { break };
        if q.running.len() as u64 >= lim.max_batch {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A running sequence with a prompt of `prompt` tokens, `in_kv` of them (or of its output)
    /// cached, and the blocks of 4 tokens that holds.
    fn seq(prompt: u64, in_kv: u64, generated: u64) -> Seq {
        Seq {
            in_kv,
            generated,
            blocks: in_kv.div_ceil(4),
            ..Seq::new(prompt, 100)
        }
    }

    /// Queues over `blocks` blocks of 4 tokens, with `running` admitted in order (their blocks
    /// taken) and `waiting` behind them.
    fn queues(blocks: u64, running: &[Seq], waiting: &[Seq]) -> Queues {
        let mut q = Queues::new(PagedKv::new(4, blocks));
        for s in running {
            let id = q.arrive(s.clone());
            q.waiting.pop_back();
            assert!(q.kv.try_take(s.blocks));
            q.running.push(id);
        }
        for s in waiting {
            q.arrive(s.clone());
        }
        q
    }

    fn lim(max_batch: u64, max_tokens: u64) -> Limits {
        Limits {
            max_batch,
            max_tokens,
            max_prefills: u64::MAX,
            decode_tokens: 1,
        }
    }

    /// What the step does to the queues after an iteration: the planned tokens are cached.
    fn run(q: &mut Queues, p: &Plan) {
        for &r in &p.decode {
            q.seqs[r].in_kv += 1;
        }
        for &(r, c) in &p.chunks {
            q.seqs[r].in_kv += c;
        }
    }

    #[test]
    fn decode_comes_first_one_token_per_sequence_past_its_prompt() {
        let mut q = queues(
            100,
            &[seq(8, 8, 1), seq(16, 4, 0), seq(8, 9, 2)],
            &[Seq::new(4, 10)],
        );
        let p = next_batch(&mut q, &lim(8, 3)).unwrap();
        assert_eq!(p.decode, [0, 2]);
        // The prefill gets what the decode tokens leave; the request waiting gets nothing.
        assert_eq!(p.chunks, [(1, 1)]);
        assert!(p.waits.budget && !p.waits.kv && !p.waits.batch);
        // A decode token that starts a block takes one; one that does not, none.
        assert_eq!((q.seqs[0].blocks, q.seqs[2].blocks), (3, 3));
        assert_eq!(q.kv.used(), 3 + 2 + 3);
    }

    #[test]
    fn a_long_prompt_is_chunked_at_the_token_budget_and_decode_is_never_starved() {
        let mut q = queues(100, &[seq(8, 8, 1)], &[Seq::new(100, 10)]);
        let p = next_batch(&mut q, &lim(8, 32)).unwrap();
        assert_eq!(
            (p.decode.as_slice(), p.chunks.as_slice()),
            (&[0][..], &[(1, 31)][..])
        );
        assert_eq!(q.running, [0, 1]);
        assert_eq!(q.seqs[1].blocks, 8);
        run(&mut q, &p);
        let p = next_batch(&mut q, &lim(8, 32)).unwrap();
        assert_eq!(
            (p.decode.as_slice(), p.chunks.as_slice()),
            (&[0][..], &[(1, 31)][..])
        );
        assert_eq!(q.seqs[1].blocks, 16);
    }

    #[test]
    fn running_prefills_continue_before_admissions() {
        let mut q = queues(100, &[seq(20, 8, 0)], &[Seq::new(10, 10), Seq::new(10, 10)]);
        let p = next_batch(&mut q, &lim(8, 16)).unwrap();
        assert!(p.decode.is_empty());
        assert_eq!(p.chunks, [(0, 12), (1, 4)]);
        assert_eq!(q.running, [0, 1]);
        assert_eq!(q.waiting, [2]);
        assert!(p.waits.budget);
    }

    #[test]
    fn admission_stops_at_the_batch_limit() {
        let mut q = queues(100, &[seq(8, 8, 1), seq(8, 8, 1)], &[Seq::new(4, 10)]);
        let p = next_batch(&mut q, &lim(2, 64)).unwrap();
        assert_eq!(p.decode, [0, 1]);
        assert!(p.chunks.is_empty());
        assert!(p.waits.batch && !p.waits.kv && !p.waits.budget);
        assert_eq!(q.waiting, [2]);
    }

    #[test]
    fn admission_stops_when_the_first_chunk_does_not_fit_in_the_free_blocks() {
        // 4 blocks: the running sequence holds 2 and takes a third for its decode token.
        let mut q = queues(4, &[seq(8, 8, 1)], &[Seq::new(12, 10)]);
        let p = next_batch(&mut q, &lim(8, 64)).unwrap();
        assert_eq!(p.decode, [0]);
        assert!(p.chunks.is_empty());
        assert!(p.waits.kv);
        assert_eq!((q.waiting.len(), q.kv.free()), (1, 1));
    }

    #[test]
    fn out_of_blocks_decode_preempts_the_latest_admitted_and_admits_no_one() {
        // 4 blocks, all held: 0 needs a second block for its decode token; 1 needs a third.
        let mut q = queues(
            4,
            &[seq(4, 4, 1), seq(8, 8, 1), seq(4, 4, 1)],
            &[Seq::new(4, 10)],
        );
        let p = next_batch(&mut q, &lim(8, 64)).unwrap();
        // 2 (the latest) is preempted for 0's block; then 1 is the latest and preempts itself.
        assert_eq!(p.decode, [0]);
        assert!(p.chunks.is_empty());
        assert_eq!(p.preempted, 2);
        assert!(p.waits.kv);
        assert_eq!(q.running, [0]);
        // Preempted sequences go to the front, in admission order; the new request stays behind.
        assert_eq!(q.waiting, [1, 2, 3]);
        // They will recompute the prompt and the tokens generated so far.
        assert_eq!(
            (q.seqs[1].in_kv, q.seqs[1].blocks, q.seqs[1].target),
            (0, 0, 9)
        );
        assert_eq!(q.kv.free(), 2);
    }

    #[test]
    fn a_prompt_longer_than_the_cache_is_an_error() {
        let mut q = queues(4, &[], &[Seq::new(100, 10)]);
        let e = next_batch(&mut q, &lim(8, 64)).unwrap_err();
        assert!(matches!(
            e,
            ServingError::TooLong {
                id: 0,
                need: 25,
                total: 4
            }
        ));
    }

    #[test]
    fn retire_frees_the_finished_in_admission_order() {
        let mut q = queues(100, &[seq(4, 4, 1), seq(4, 4, 1), seq(4, 4, 1)], &[]);
        q.seqs[0].generated = 100;
        q.seqs[2].generated = 100;
        assert_eq!(q.retire(), [0, 2]);
        assert_eq!(q.running, [1]);
        assert_eq!(q.kv.used(), 1);
    }
}
