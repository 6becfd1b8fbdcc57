//! Skewed routing priced at the speed of counts: each layer of an iteration is its routing-free
//! part, priced and run on the engine once per layer kind and iteration, plus its routed
//! experts, priced in closed form from a cache of expert prices by (layer kind, tokens).
//!
//! **Where it applies, it is what the engine computes.** Under a policy that does not overlap
//! units, every task of a device runs on one in-order stream, and every op but the routed
//! experts is on device 0. So no two tasks of a device ever run at once: each takes its launch
//! delay plus its longest demand at full rate, and a device's experts run one after another.
//! The experts of a layer come after its top-k (and dispatch) and before its combine, so a
//! layer's time is its routing-free part plus, over the devices, the longest sum of expert
//! times (`iteration::tests::counts_priced_in_closed_form_match_the_engine` checks it against
//! the engine layer by layer). A layer's cost then depends on its kind and on its experts'
//! token counts only, and an expert's price on its kind and its tokens: the signature that
//! is priced once and reused across layers and iterations.

use super::{Coster, IterCost, IterError};
use crate::hw::{CostError, EnergyParts, OpCost, Unit};
use crate::map::{Choices, Policy, place};
use crate::model::{Batch, IterationGraph, Op, OpKind};

/// What a routed expert of one kind and one number of tokens adds to an iteration, on the
/// unit the policy places it on: `[0]` as the first expert of its unit on its device (it pays
/// the fused kernel's launch), `[1]` as any later one (`OpCost::without_overhead`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ExpertPrice {
    /// 0 on the xPU, 1 on the PIM.
    unit: usize,
    /// Seconds it holds its device's in-order stream: its launch and its longer side.
    stream: [f64; 2],
    /// What it adds on any device: energy (every copy), then time by bound.
    any: [[f64; ANY]; 2],
    /// What it adds on device 0 only: busy seconds per resource, then time per unit.
    first: [[f64; FIRST]; 2],
}

/// Energy parts (4) and time by bound (4).
const ANY: usize = 8;
/// Busy seconds per resource (5) and op time per unit (2).
const FIRST: usize = 7;

/// What [`Coster`] keeps for skewed routing: the price of each (kind, tokens) met so far,
/// `prices[kind][tokens]` (tokens per expert are at most an iteration's tokens).
#[derive(Debug, Default)]
pub(super) struct RoutedCache {
    prices: Vec<Vec<Option<ExpertPrice>>>,
    /// Each device's expert time and whether each of its units has launched, per layer: kept
    /// between layers so a layer allocates nothing.
    time: Vec<f64>,
    launched: Vec<[bool; 2]>,
}

/// One layer's routed experts' sums, added into an [`IterCost`] once.
#[derive(Default)]
struct Sums {
    any: [f64; ANY],
    first: [f64; FIRST],
    ops: u64,
}

impl Sums {
    /// Adds `p` on a device whose units have `launched` (fused launches: the first expert on
    /// each unit of a device pays the launch) and that is device 0 where `first`; returns the
    /// seconds it holds the device's stream.
    fn add(&mut self, p: &ExpertPrice, launched: &mut [bool; 2], first: bool) -> f64 {
        let f = usize::from(launched[p.unit]);
        launched[p.unit] = true;
        add(&mut self.any, &p.any[f]);
        if first {
            add(&mut self.first, &p.first[f]);
        }
        self.ops += 1;
        p.stream[f]
    }

    fn into(self, out: &mut IterCost) {
        let any = self.any;
        out.energy_parts.add(EnergyParts {
            mac: any[0],
            dram_xpu: any[1],
            dram_pim: any[2],
            link: any[3],
        });
        add(&mut out.by_bound, &any[4..]);
        add(&mut out.busy, &self.first[..5]);
        add(&mut out.unit_time, &self.first[5..]);
        out.ops += self.ops;
    }
}

/// Whether `op` is one of a layer's routed experts (not the shared expert).
pub(super) fn routed(op: &Op) -> bool {
    matches!(op.kind, OpKind::ExpertFfn { .. }) && op.name != "shared_expert"
}

impl Coster<'_> {
    /// Whether skewed layers may be priced in closed form: no unit overlap, no spans asked,
    /// and no layer that routes under a variant (MoE++'s zero-computation experts and top-p
    /// routing make the all-to-all and the constant experts depend on each layer's counts).
    pub(super) fn closed_form(&self, spans: bool) -> bool {
        let variant =
            |m: &crate::model::ModelSpec| m.plans.iter().any(|p| p.knobs.routes_variant());
        !spans && !self.policy.overlaps() && !self.templates.iter().any(variant)
    }

    /// The layers of one iteration from layer `from` on, `counts[i]` the tokens per expert of
    /// layer `from + i`, priced in closed form (`first` the graph of layer `from`'s kind with
    /// `counts[0]`); adds into `out` and returns the layers' time.
    pub(super) fn routed_layers(
        &mut self,
        batch: &Batch,
        from: usize,
        counts: &[Vec<u64>],
        first: &IterationGraph,
        out: &mut IterCost,
    ) -> Result<f64, IterError> {
        // Per kind, once per iteration: its routing-free part and its routed-expert op.
        let mut fixed: Vec<Option<(IterCost, f64, Option<Op>)>> = vec![None; self.templates.len()];
        let mut t = 0.0;
        let mut ep = super::ep_layer::Parts::default();
        for (i, c) in counts.iter().enumerate() {
            let l = from + i;
            let kind = self.kind_of[l];
            if let Some(lt) = self.ep_layer(batch, l, c, &mut ep, out)? {
                t += lt;
                continue;
            }
            if fixed[kind].is_none() {
                let built;
                let g = if i == 0 {
                    first
                } else {
                    built = self.build(batch, kind, Some(c))?;
                    &built
                };
                let keep = |op: &Op| op.layer == Some(0) && !routed(op);
                let mut one = IterCost::default();
                let lt = self.run_part(g, keep, Some(0), 0.0, &mut one, false)?;
                let expert = g
                    .ops()
                    .find(|op| op.layer == Some(0) && routed(op))
                    .cloned();
                fixed[kind] = Some((one, lt, expert));
            }
            let Some((one, lt, expert)) = &fixed[kind] else {
                unreachable!("priced above")
            };
            super::add_layers(out, one, 1);
            t += lt;
            if let Some(op) = expert {
                t += self.experts(kind, op, c, out)?;
            }
        }
        Ok(t)
    }

    /// The routed experts of one layer of kind `kind` (`op` one of them, any tokens), expert
    /// `e` with `counts[e]` tokens on device `e mod ep`: adds their energy, bounds, busy
    /// seconds and ops into `out` and returns the longest device's time.
    fn experts(
        &mut self,
        kind: usize,
        op: &Op,
        counts: &[u64],
        out: &mut IterCost,
    ) -> Result<f64, IterError> {
        // The devices in turn, not `e % ep`: a division per expert.
        let (ep, mut d) = (self.par.ep as u32, 0);
        let on = counts.iter().map(move |&n| {
            let at = d;
            d = if d + 1 == ep { 0 } else { d + 1 };
            (at, n)
        });
        self.experts_on(kind, op, on.filter(|&(_, n)| n > 0), out)
    }

    /// [`experts`](Self::experts) with the tokens of each expert copy given as (device,
    /// tokens), in the order the devices run them (EPLB's placement gives several copies).
    pub(super) fn experts_on(
        &mut self,
        kind: usize,
        op: &Op,
        shares: impl Iterator<Item = (u32, u64)> + Clone,
        out: &mut IterCost,
    ) -> Result<f64, IterError> {
        for (_, n) in shares.clone() {
            match self.routed.prices.get(kind).and_then(|v| v.get(n as usize)) {
                Some(Some(_)) => self.hits += 1,
                _ => self.expert_price(kind, op, n)?,
            }
        }
        let ep = self.par.ep as usize;
        let RoutedCache {
            prices,
            time,
            launched,
        } = &mut self.routed;
        let prices = &prices[kind];
        let price = |n: u64| match &prices[n as usize] {
            Some(p) => p,
            None => unreachable!("priced above"),
        };
        let mut sums = Sums::default();
        if ep == 1 {
            // One device: one stream, no per-device state.
            let (mut t, mut launched) = (0.0, [false; 2]);
            for (_, n) in shares {
                t += sums.add(price(n), &mut launched, true);
            }
            sums.into(out);
            return Ok(t);
        }
        time.clear();
        time.resize(ep, 0.0);
        launched.clear();
        launched.resize(ep, [false; 2]);
        for (d, n) in shares {
            let d = d as usize;
            time[d] += sums.add(price(n), &mut launched[d], d == 0);
        }
        sums.into(out);
        Ok(time.iter().copied().fold(0.0, f64::max))
    }

    /// Prices `op` (a routed expert of kind `kind`) with `tokens` tokens and places it, into
    /// the cache.
    fn expert_price(&mut self, kind: usize, op: &Op, tokens: u64) -> Result<(), IterError> {
        let (k, n) = (kind, tokens as usize);
        let mut op = op.clone();
        if let OpKind::ExpertFfn { tokens: t, .. } = &mut op.kind {
            *t = tokens;
        }
        let (xpu, pim) = self.price_all(&[&op])?[0];
        let choice = Choices {
            xpu: xpu.cost,
            pim: pim.map(|p| p.cost),
        };
        let unit = match self.policy {
            Policy::AllXpu => Unit::Xpu,
            _ => place(self.policy, &[&op], &[choice])[0],
        };
        let x = match unit {
            Unit::Xpu => xpu,
            Unit::Pim => pim.ok_or(CostError::NoPim)?,
        };
        let banks = op.work().bytes.total().value() / self.sys.bank_bandwidth().value();
        // Under expert parallelism each expert runs once, on its own device.
        let copies = if self.par.ep > 1 {
            1.0
        } else {
            self.par.tp as f64
        };
        let e = x.energy.scaled(copies);
        let term = |c: OpCost| {
            let (compute, memory) = (c.compute.value(), c.memory.value());
            let mut any = [e.mac, e.dram_xpu, e.dram_pim, e.link, 0.0, 0.0, 0.0, 0.0];
            any[4 + super::bound_index(c.bound)] = c.time.value();
            let mut first = [0.0; FIRST];
            if unit == Unit::Pim {
                first[3] = compute;
                first[4] = memory;
            } else {
                first[0] = compute;
                first[1] = memory;
                first[4] = banks.min(memory);
            }
            first[5 + usize::from(unit == Unit::Pim)] = c.time.value();
            (c.overhead.value() + compute.max(memory), any, first)
        };
        let (t0, a0, f0) = term(x.cost);
        let (t1, a1, f1) = term(x.cost.without_overhead());
        let p = ExpertPrice {
            unit: usize::from(unit == Unit::Pim),
            stream: [t0, t1],
            any: [a0, a1],
            first: [f0, f1],
        };
        let prices = &mut self.routed.prices;
        if prices.len() <= k {
            prices.resize(k + 1, Vec::new());
        }
        if prices[k].len() <= n {
            prices[k].resize(n + 1, None);
        }
        prices[k][n] = Some(p);
        Ok(())
    }
}

/// Adds `x` into `to`, element by element.
fn add(to: &mut [f64], x: &[f64]) {
    to.iter_mut().zip(x).for_each(|(a, x)| *a += x);
}
