//! An MoE layer under the expert-parallel options (`sim::expert_parallel`), priced in closed
//! form beside `routed.rs`: the routed experts run as the placement puts their copies (EPLB's,
//! or expert e on device e mod ep), and under the two-batch overlap the layer is two halves,
//! each half's ops priced at its own tokens (attention, the GEMMs and the all-to-alls built for
//! the half batch, the experts at half their counts) and scheduled by `sim::overlap`.
//!
//! A half's routing-free ops run on the engine in four groups (the ancestors of the dispatch,
//! the two all-to-alls, the descendants of the combine, and the rest: the shared expert), each
//! alone: on one in-order stream of device 0 the groups' times add up to the layer's
//! routing-free time, so with the overlap off this prices what `routed.rs` does.

use std::borrow::Cow;
use std::collections::HashSet;

use petgraph::visit::{Dfs, Reversed};

use super::routed::routed;
use super::{Coster, IterCost, IterError};
use crate::model::{Batch, IterationGraph, Op};
use crate::sim::expert_parallel::{EpOptions, EpStats, LoadStats, OverlapStats, Placement};
use crate::sim::overlap::{self, Half};

/// The dispatch and combine all-to-alls' names in the graph.
const DISPATCH: &str = "moe_dispatch";
const COMBINE: &str = "moe_combine_a2a";

/// The coster's expert-parallel state: the options, each layer's placement, and what they did.
#[derive(Debug, Default)]
pub(super) struct EpState {
    opts: EpOptions,
    /// EPLB's placement of each layer (empty without it).
    placed: Vec<Placement>,
    /// The plain layout.
    plain: Option<Placement>,
    loads: LoadStats,
    overlap: OverlapStats,
    replica_bytes: f64,
}

/// One half of a layer kind, priced: its routing-free cost, its segments (the routed experts
/// left out of `mid`) and its routed-expert op (`None` for a layer without an all-to-all).
type Part = (IterCost, Half, Option<Op>);

/// One iteration's priced parts per layer kind: one per half (one without the overlap).
#[derive(Default)]
pub(super) struct Parts {
    kinds: Vec<Option<Vec<Part>>>,
}

impl Coster<'_> {
    /// This coster with the expert-parallel options `opts`, EPLB's placements made from
    /// `load[l]`, each layer's expected tokens per expert, and `replica_bytes` (per device)
    /// recorded for the report.
    pub fn with_expert_parallel(
        mut self,
        opts: EpOptions,
        load: &[Vec<f64>],
        replica_bytes: f64,
    ) -> Self {
        let ep = self.par.ep as usize;
        let experts = self.templates[0].moe.map_or(0, |m| m.experts as usize);
        self.ep = EpState {
            opts,
            placed: opts.redundant_experts.map_or_else(Vec::new, |n| {
                let place = |l: &Vec<f64>| Placement::eplb(l, ep, n as usize);
                load.iter().map(place).collect()
            }),
            plain: Some(Placement::plain(experts, ep)),
            replica_bytes,
            ..EpState::default()
        };
        self
    }

    /// Whether the options can be priced: they are priced in closed form only (no unit
    /// overlap, no MoE variant, no op spans asked).
    pub fn prices_ep_options(&self, spans: bool) -> bool {
        self.closed_form(spans)
    }

    /// What the options did so far (`None` with every option off).
    pub fn ep_stats(&self) -> Option<EpStats> {
        let e = &self.ep;
        e.opts.any().then_some(EpStats {
            options: e.opts,
            loads: e.loads,
            overlap: e.overlap,
            replica_bytes: e.replica_bytes,
        })
    }

    /// Whether an option is on (every layer is then priced by counts, balanced ones included).
    pub(super) fn ep_on(&self) -> bool {
        self.ep.opts.any()
    }

    /// `counts` with one entry per layer (`n` of them) when an option is on and one entry
    /// stands for all.
    pub(super) fn ep_counts<'c>(&self, counts: &'c [Vec<u64>], n: usize) -> Cow<'c, [Vec<u64>]> {
        match counts {
            [one] if self.ep_on() => Cow::Owned(vec![one.clone(); n]),
            _ => Cow::Borrowed(counts),
        }
    }

    /// Layer `l` of `batch` with `counts` tokens per expert under the options, its parts kept
    /// in `parts` for the iteration: adds into `out` and returns its time; `None` when no option
    /// is on or the layer has no all-to-all (a dense layer), for `routed.rs` to price.
    pub(super) fn ep_layer(
        &mut self,
        batch: &Batch,
        l: usize,
        counts: &[u64],
        parts: &mut Parts,
        out: &mut IterCost,
    ) -> Result<Option<f64>, IterError> {
        if !self.ep_on() {
            return Ok(None);
        }
        let kind = self.kind_of[l];
        if parts.kinds.len() <= kind {
            parts.kinds.resize(kind + 1, None);
        }
        if parts.kinds[kind].is_none() {
            parts.kinds[kind] = Some(self.halves_of(batch, kind, counts)?);
        }
        let Some(halves) = parts.kinds[kind].take() else {
            unreachable!("priced above")
        };
        if halves[0].2.is_none() {
            parts.kinds[kind] = Some(halves);
            return Ok(None);
        }
        let split = match halves.len() {
            2 => overlap::split_counts(counts),
            _ => (counts.to_vec(), Vec::new()),
        };
        let EpState {
            placed,
            plain: Some(plain),
            loads,
            ..
        } = &mut self.ep
        else {
            unreachable!("set with the options")
        };
        let placed = placed.get(l).unwrap_or(plain);
        loads.add(counts, plain, placed);
        let shares = [&split.0, &split.1].map(|c| placed.shares(c).collect::<Vec<_>>());
        let mut segs = Vec::with_capacity(2);
        for ((one, half, expert), sh) in halves.iter().zip(shares) {
            super::add_layers(out, one, 1);
            let mut h = *half;
            if let Some(op) = expert {
                h.mid += self.experts_on(kind, op, sh.iter().copied(), out)?;
            }
            segs.push(h);
        }
        parts.kinds[kind] = Some(halves);
        Ok(Some(match segs.as_slice() {
            [a, b] => {
                let t = overlap::two_batch(a, b);
                let o = &mut self.ep.overlap;
                o.layers += 1;
                o.comm += a.comm() + b.comm();
                o.serial += a.comm() + b.comm() + a.compute() + b.compute();
                o.overlapped += t;
                t
            }
            [a] => a.comm() + a.compute(),
            _ => unreachable!("one or two halves"),
        }))
    }

    /// The routing-free parts of kind `kind` for `batch`: two halves under the overlap (when
    /// the batch splits), else the whole batch; each with its routed-expert op (`None` for a
    /// layer without an all-to-all).
    fn halves_of(
        &mut self,
        batch: &Batch,
        kind: usize,
        counts: &[u64],
    ) -> Result<Vec<Part>, IterError> {
        let split = self.ep.opts.two_batch_overlap;
        let batches = match overlap::halves(batch).filter(|_| split) {
            Some((a, b)) => vec![a, b],
            None => vec![batch.clone()],
        };
        let mut out = Vec::with_capacity(2);
        for b in &batches {
            let g = self.build(b, kind, Some(&counts.to_vec()))?;
            out.push(self.segments(&g)?);
        }
        Ok(out)
    }

    /// One half's routing-free cost and segments from its one-layer graph `g`, and its
    /// routed-expert op (`None`, and nothing run, without a dispatch all-to-all).
    fn segments(&mut self, g: &IterationGraph) -> Result<Part, IterError> {
        let mut one = IterCost::default();
        let layer = |op: &Op| op.layer == Some(0);
        let find = |name: &str| {
            g.graph
                .node_indices()
                .find(|&i| layer(&g.graph[i]) && g.graph[i].name == name)
        };
        let (Some(dispatch), Some(combine)) = (find(DISPATCH), find(COMBINE)) else {
            return Ok((one, Half::default(), None));
        };
        let names = |mut dfs: Dfs<_, _>, reversed: bool| {
            let mut set = HashSet::new();
            loop {
                let next = if reversed {
                    dfs.next(Reversed(&g.graph))
                } else {
                    dfs.next(&g.graph)
                };
                let Some(i) = next else { break set };
                set.insert(g.graph[i].name.clone());
            }
        };
        let pre = names(Dfs::new(Reversed(&g.graph), dispatch), true);
        let post = names(Dfs::new(&g.graph, combine), false);
        let own = |op: &Op| layer(op) && !routed(op);
        let rest = |op: &Op| !pre.contains(&op.name) && !post.contains(&op.name);
        let mut run = |c: &mut Coster, keep: &dyn Fn(&Op) -> bool| {
            c.run_part(g, |op| own(op) && keep(op), Some(0), 0.0, &mut one, false)
        };
        let half = Half {
            pre: run(self, &|op| op.name != DISPATCH && pre.contains(&op.name))?,
            dispatch: run(self, &|op| op.name == DISPATCH)?,
            mid: run(self, &|op| rest(op))?,
            combine: run(self, &|op| op.name == COMBINE)?,
            post: run(self, &|op| op.name != COMBINE && post.contains(&op.name))?,
        };
        let expert = g.ops().find(|op| layer(op) && routed(op)).cloned();
        Ok((one, half, expert))
    }
}
