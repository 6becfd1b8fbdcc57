//! A speculative round in place of an iteration: `d` draft passes over the decoding sequences,
//! then one verify pass of the target over their `d + 1` positions (a prefill-like chunk of
//! `q_len = d + 1` after `ctx = in_kv`, so attention and the experts see `d + 1` tokens per
//! sequence) beside the iteration's prefill chunks; then each sequence keeps its accepted drafts
//! and the target's token, and the KV blocks of the rejected ones are released.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ServingError;
use super::schedule::Plan;
use super::setup::Bench;
use super::speculative::{ACCEPT_STREAM, RoundShape, RoundStats, Speculative, accepted};
use crate::model::{Batch, ModelSpec, Parallelism, PrefillChunk};
use crate::sim::iteration::{Coster, IterCost, VerifyPass};
use crate::sim::routing::Router;
use crate::sim::variant_routing;
use crate::sim::workload::rng;

/// A run's speculative state: the round it uses, the draft's coster, the acceptance stream and
/// what the rounds measured.
pub(super) struct SpecRun<'a> {
    shape: RoundShape,
    /// Whether a second model drafts (it also prefills the prompts, in the first draft pass).
    own_model: bool,
    draft: Coster<'a>,
    /// The early-exit draft: the target cut after layer ℓ (`None` for a draft model, whose
    /// passes route balanced: an MoE draft needs uniform routing, `config::speculative`).
    cut: Option<ModelSpec>,
    rng: ChaCha8Rng,
    pub(super) stats: RoundStats,
    /// The draft time of the round being costed, s.
    draft_time: f64,
    /// Whether the round being costed has decoding sequences (else it is no round).
    decoding: bool,
}

impl<'a> SpecRun<'a> {
    /// The speculative state of a run of `target` with `sp`, or `None` when it drafts nothing
    /// (d = 0, configured or chosen).
    pub(super) fn new(
        s: &'a super::Scenario,
        target: &ModelSpec,
        sp: &Speculative,
        par: Parallelism,
    ) -> Option<Self> {
        let shape = sp.shape(target.layers());
        if shape.tokens == 0 {
            return None;
        }
        let model = match (sp.draft_model(), shape.exit_layer) {
            (Some(m), _) => m.clone(),
            (None, Some(l)) => ModelSpec {
                plans: target.plans[..l as usize].to_vec(),
                ..target.clone()
            },
            (None, None) => return None,
        };
        let draft = Coster::new(&s.sys, &model, par, s.precision, s.timing, s.policy);
        let own_model = sp.draft_model().is_some();
        Some(SpecRun {
            shape,
            own_model,
            draft,
            cut: (!own_model).then_some(model),
            rng: rng(s.seed, ACCEPT_STREAM),
            stats: RoundStats {
                tokens: shape.tokens,
                exit_layer: shape.exit_layer,
                alpha: shape.alpha,
                ..RoundStats::default()
            },
            draft_time: 0.0,
            decoding: false,
        })
    }

    /// Tokens each decoding sequence takes in a round (1 without speculation).
    pub(super) fn step_tokens(&self) -> u64 {
        self.shape.tokens + 1
    }
}

/// Device 0's share of `batch` under expert parallelism over `ep` devices: every ep-th
/// sequence (the largest share).
pub(super) fn device_share(batch: Batch, ep: u64) -> Batch {
    if ep <= 1 {
        return batch;
    }
    let n = ep as usize;
    Batch {
        decode_kv: batch.decode_kv.iter().step_by(n).copied().collect(),
        prefill: batch.prefill.iter().step_by(n).copied().collect(),
    }
}

impl Bench<'_> {
    /// The batch the target runs for `plan`: its decode tokens, or under speculation one chunk
    /// of `d + 1` positions per decoding sequence; then the prefill chunks.
    pub(super) fn target_batch(&self, plan: &Plan) -> Batch {
        let seqs = &self.queues.seqs;
        let chunks = plan.chunks.iter().map(|&(r, c)| PrefillChunk {
            q_len: c,
            ctx: seqs[r].in_kv,
            last: seqs[r].in_kv + c == seqs[r].target,
        });
        match &self.spec {
            None => Batch {
                decode_kv: plan.decode.iter().map(|&r| seqs[r].in_kv + 1).collect(),
                prefill: chunks.collect(),
            },
            Some(sp) => Batch {
                decode_kv: Vec::new(),
                prefill: plan
                    .decode
                    .iter()
                    .map(|&r| PrefillChunk {
                        q_len: sp.step_tokens(),
                        ctx: seqs[r].in_kv,
                        last: true,
                    })
                    .chain(chunks)
                    .collect(),
            },
        }
    }

    /// The draft passes of `plan`'s round, one after another (`None` without speculation): pass
    /// `i` decodes each sequence's `i`-th draft token against `in_kv + 1 + i` cached tokens; a
    /// draft model's first pass also prefills the iteration's prompt chunks.
    pub(super) fn draft_passes(&mut self, plan: &Plan) -> Result<Option<IterCost>, ServingError> {
        let spans = self.observer.is_some();
        let (ep, seqs) = (self.s.ep, &self.queues.seqs);
        let Some(sp) = self.spec.as_mut() else {
            return Ok(None);
        };
        // The draft passes route their tokens as the target's (an early exit's are its layers).
        let mut total = IterCost::default();
        for i in 0..sp.shape.tokens {
            let mut batch = Batch {
                decode_kv: plan.decode.iter().map(|&r| seqs[r].in_kv + 1 + i).collect(),
                prefill: Vec::new(),
            };
            if sp.own_model && i == 0 {
                batch.prefill = plan
                    .chunks
                    .iter()
                    .map(|&(r, c)| PrefillChunk {
                        q_len: c,
                        ctx: seqs[r].in_kv,
                        last: false,
                    })
                    .collect();
            }
            let tokens = batch.tokens();
            let batch = device_share(batch, ep);
            if batch.is_empty() {
                continue;
            }
            let counts = match &sp.cut {
                Some(m) => route(self.router.as_ref(), &mut self.route_rng, m, tokens),
                None => Vec::new(),
            };
            let c = sp.draft.iteration(&batch, &counts, spans)?;
            append(&mut total, c, "draft ");
        }
        sp.draft_time = total.time;
        sp.decoding = !plan.decode.is_empty();
        Ok(Some(total))
    }

    /// The target's pass of `plan` over `batch` (device 0's share of [`target_batch`]) with
    /// `counts`: the plain iteration, or under speculation the verify pass, whose LM head has
    /// a row per verified position and whose first ℓ layers (early exit) run only the last
    /// draft's position of each decoding sequence ([`VerifyPass`]).
    ///
    /// [`target_batch`]: Self::target_batch
    pub(super) fn target_pass(
        &mut self,
        plan: &Plan,
        batch: &Batch,
        counts: &[Vec<u64>],
        spans: bool,
    ) -> Result<IterCost, ServingError> {
        let Some(sp) = self.spec.as_ref() else {
            return Ok(self.coster.iteration(batch, counts, spans)?);
        };
        let (seqs, d) = (&self.queues.seqs, sp.shape.tokens);
        // Device 0's sequences, as `device_share` takes them from the verify batch: every
        // ep-th of its chunks, the decoding sequences' then the prompts'.
        let ep = self.s.ep.max(1) as usize;
        let n = plan.decode.len();
        let decode: Vec<usize> = plan.decode.iter().step_by(ep).copied().collect();
        let prefill: Vec<PrefillChunk> = (plan.chunks.iter().enumerate())
            .filter(|(i, _)| (n + i) % ep == 0)
            .map(|(_, &(r, c))| PrefillChunk {
                q_len: c,
                ctx: seqs[r].in_kv,
                last: seqs[r].in_kv + c == seqs[r].target,
            })
            .collect();
        let rows = decode
            .iter()
            .flat_map(|&r| (0..=d).map(move |i| seqs[r].in_kv + 1 + i));
        let head = Batch {
            decode_kv: rows.collect(),
            prefill: prefill.clone(),
        };
        let early = Batch {
            decode_kv: decode.iter().map(|&r| seqs[r].in_kv + d + 1).collect(),
            prefill,
        };
        // Routing counts are over every device's tokens.
        let early_tokens = n as u64 + plan.chunks.iter().map(|&(_, c)| c).sum::<u64>();
        let (mut early_counts, mut late) = (Vec::new(), counts);
        let exit = sp.cut.as_ref().map(|m| (m.plans.len(), m));
        if let Some((l, m)) = exit {
            early_counts = route(self.router.as_ref(), &mut self.route_rng, m, early_tokens);
            if counts.len() > 1 {
                late = &counts[l..];
            }
        }
        let v = VerifyPass {
            batch,
            early: exit.map(|(l, _)| (l, &early)),
            head: &head,
        };
        Ok(self.coster.verify(&v, late, &early_counts, spans)?)
    }

    /// The round's cost: `draft` then `verify`, with the draft and verify times recorded.
    pub(super) fn join_round(&mut self, draft: Option<IterCost>, verify: IterCost) -> IterCost {
        let (Some(mut total), Some(sp)) = (draft, self.spec.as_mut()) else {
            return verify;
        };
        let st = &mut sp.stats;
        st.rounds += u64::from(sp.decoding);
        st.draft_time += sp.draft_time;
        st.verify_time += verify.time;
        for (a, b) in st.verify_unit_time.iter_mut().zip(verify.unit_time) {
            *a += b;
        }
        append(&mut total, verify, "");
        total
    }

    /// Tokens decoding sequence `r` emits this round: 1 without speculation, else its accepted
    /// drafts and the target's token, at most its output left.
    pub(super) fn round_tokens(&mut self, r: usize) -> u64 {
        let q = &self.queues.seqs[r];
        let left = q.output.saturating_sub(q.generated).max(1);
        let Some(sp) = self.spec.as_mut() else {
            return 1;
        };
        let d = sp.shape.tokens;
        let k = accepted(&mut sp.rng, sp.shape.alpha, d);
        let n = (k + 1).min(left);
        let st = &mut sp.stats;
        st.drafted += d;
        st.accepted += k;
        st.emitted += n;
        st.sequence_rounds += 1;
        n
    }

    /// Releases the KV blocks sequence `r` reserved past its cached tokens (the rejected
    /// drafts' positions).
    #[inline]
    pub(super) fn roll_back(&mut self, r: usize) {
        let q = &mut self.queues.seqs[r];
        let surplus = self.queues.kv.surplus(q.in_kv, q.blocks);
        if surplus > 0 {
            self.queues.kv.release(surplus);
            q.blocks -= surplus;
        }
    }
}

/// Tokens per expert of each layer for `tokens` tokens under `router` (one entry when every
/// layer routes alike; empty for dense models).
pub(super) fn route(
    router: Option<&Router>,
    rng: &mut impl Rng,
    m: &ModelSpec,
    tokens: u64,
) -> Vec<Vec<u64>> {
    let mut counts = Vec::new();
    route_into(router, rng, m, tokens, &mut counts);
    counts
}

/// [`route`] into `counts`, its vectors reused.
pub(super) fn route_into(
    router: Option<&Router>,
    rng: &mut impl Rng,
    m: &ModelSpec,
    tokens: u64,
    counts: &mut Vec<Vec<u64>>,
) {
    match router {
        None => counts.clear(),
        Some(rt) if variant_routing::routes_variants(m) => {
            *counts = variant_routing::layer_counts(rt, m, tokens, rng);
        }
        Some(rt) => {
            let layers = if rt.is_uniform() {
                1
            } else {
                m.layers() as usize
            };
            counts.resize_with(layers, Vec::new);
            for (l, c) in counts.iter_mut().enumerate() {
                rt.counts_into(l, tokens, rt.top_k(), rng, c);
            }
        }
    }
}

/// Appends `c` after `total` in time: sums its figures and shifts its spans (names prefixed
/// with `prefix`) by `total`'s time.
fn append(total: &mut IterCost, c: IterCost, prefix: &str) {
    let at = total.time;
    total.spans.extend(c.spans.into_iter().map(|mut s| {
        s.start += at;
        s.end += at;
        if !prefix.is_empty() {
            s.name = format!("{prefix}{}", s.name);
        }
        s
    }));
    total.time += c.time;
    total.energy += c.energy;
    total.energy_parts.add(c.energy_parts);
    for (a, b) in total.busy.iter_mut().zip(c.busy) {
        *a += b;
    }
    for (a, b) in total.unit_time.iter_mut().zip(c.unit_time) {
        *a += b;
    }
    for (a, b) in total.by_bound.iter_mut().zip(c.by_bound) {
        *a += b;
    }
    total.ops += c.ops;
    total.collectives += c.collectives;
}
