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
//! times (`tests/it/serving.rs`, `counts_priced_in_closed_form_match_the_engine`, checks it against
//! the engine layer by layer). A layer's cost then depends on its kind and on its experts'
//! token counts only, and an expert's price on its kind and its tokens: the signature that
//! is priced once and reused across layers and iterations. With many experts a layer (256
//! in DeepSeek-V3), the experts after the first on each unit of each device are counted by
//! (kind, tokens) and their terms added once an iteration, price × count; each device's
//! stream time is still summed expert by expert, in order.

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

/// What [`Coster`] keeps for skewed routing: per layer kind, the price of each number of
/// tokens met so far.
#[derive(Debug, Default)]
pub(super) struct RoutedCache {
    kinds: Vec<KindPrices>,
    /// Each device's expert time and whether each of its units has launched, per layer: kept
    /// between layers so a layer allocates nothing.
    time: Vec<f64>,
    launched: Vec<[bool; 2]>,
}

/// One layer kind's expert prices, and the iteration's experts of that kind that are not the
/// first of their unit on their device (all but a few per layer under expert parallelism),
/// counted by tokens: their terms are added once per iteration, price × count.
#[derive(Debug, Default, Clone)]
struct KindPrices {
    /// `prices[tokens]`, tokens per expert being at most an iteration's tokens.
    prices: Vec<Option<ExpertPrice>>,
    /// `(stream[1], unit)` of `prices[tokens]` where it is priced, what a later expert reads;
    /// `(0, NONE)` at no tokens.
    hot: Vec<(f64, usize)>,
    /// Every price up to these tokens is in `prices`: a layer whose experts have no more
    /// tokens needs no look-up before it is summed.
    dense: usize,
    /// `later[tokens]`: the later experts counted, on any device and on device 0.
    later: Vec<[u32; 2]>,
    /// The most tokens among them.
    top: usize,
}

/// Tally later experts, rather than add each one's terms, where a layer has at least this
/// many experts: with fewer (Mixtral's 8), few counts of tokens repeat in an iteration and the
/// tally only adds work (the 1,000-request Mixtral trace-routing run: 1.051 G instructions
/// adding each expert, 1.072 G tallying; DeepSeek-V3's 256 experts: 10.2 G to 8.3 G).
const TALLY_FROM: usize = 32;

/// [`KindPrices::hot`]'s unit of an expert without tokens (0 is the xPU, 1 the PIM).
const NONE: usize = 2;

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
    fn add(&mut self, p: &ExpertPrice, launched: &mut [bool], first: bool) -> f64 {
        let f = usize::from(launched[p.unit]);
        launched[p.unit] = true;
        add(&mut self.any, &p.any[f]);
        if first {
            add(&mut self.first, &p.first[f]);
        }
        self.ops += 1;
        p.stream[f]
    }

    /// Adds `n` copies of `p`'s terms once its unit has launched (`[1]`), `first` of them on
    /// device 0.
    fn add_n(&mut self, p: &ExpertPrice, n: u32, first: u32) {
        let (k, k0) = (f64::from(n), f64::from(first));
        self.any
            .iter_mut()
            .zip(&p.any[1])
            .for_each(|(a, x)| *a += k * x);
        if first > 0 {
            self.first
                .iter_mut()
                .zip(&p.first[1])
                .for_each(|(a, x)| *a += k0 * x);
        }
        self.ops += u64::from(n);
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

/// One layer kind's routing-free part, priced once per iteration, and how many of the
/// iteration's layers are of the kind: the part is added once, times that count.
#[derive(Clone)]
struct Fixed {
    /// What the part adds for one layer.
    one: IterCost,
    /// The part's time.
    time: f64,
    /// The kind's routed-expert op (any tokens).
    expert: Option<Op>,
    /// The iteration's layers of the kind so far.
    layers: u64,
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
        // What an earlier call left counted if it failed part way.
        self.add_later(None);
        let mut fixed: Vec<Option<Fixed>> = vec![None; self.templates.len()];
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
                fixed[kind] = Some(Fixed {
                    one,
                    time: lt,
                    expert,
                    layers: 0,
                });
            }
            let Some(f) = &mut fixed[kind] else {
                unreachable!("priced above")
            };
            f.layers += 1;
            t += f.time;
            if let Some(op) = &f.expert {
                t += self.experts(kind, op, c, out)?;
            }
        }
        for f in fixed.iter().flatten() {
            super::add_layers(out, &f.one, f.layers);
        }
        self.add_later(Some(out));
        Ok(t)
    }

    /// The routed experts of one layer of kind `kind` (`op` one of them, any tokens), expert
    /// `e` with `counts[e]` tokens on device `e mod ep`: adds their terms into `out` (or, for
    /// many experts, counts all but the first on each unit of each device, to be added by
    /// [`add_later`](Self::add_later)) and returns the longest device's time.
    fn experts(
        &mut self,
        kind: usize,
        op: &Op,
        counts: &[u64],
        out: &mut IterCost,
    ) -> Result<f64, IterError> {
        let top = self.price_missing(kind, op, counts)?;
        let ep = self.par.ep as usize;
        let tally = counts.len() >= TALLY_FROM;
        let k = &mut self.routed.kinds[kind];
        if tally {
            k.top = k.top.max(top as usize);
        }
        let KindPrices {
            prices, hot, later, ..
        } = k;
        let price = |n: usize| match &prices[n] {
            Some(p) => p,
            None => unreachable!("priced above"),
        };
        let mut sums = Sums::default();
        let mut longest = 0.0f64;
        // Device by device (expert e on device e mod ep): each one's stream time in order.
        for d in 0..ep {
            let (mut t, mut launched) = (0.0, [false, false, true]);
            let mut e = d;
            while e < counts.len() {
                let n = counts[e] as usize;
                e += ep;
                if !tally {
                    if n > 0 {
                        t += sums.add(price(n), &mut launched, d == 0);
                    }
                    continue;
                }
                // An expert without tokens reads `hot[0]` (no time, on the unit `NONE`, which
                // counts as launched), so it takes the later experts' way without a branch.
                let (stream, unit) = hot[n];
                if launched[unit] {
                    t += stream;
                    let c = &mut later[n];
                    c[0] += 1;
                    c[1] += u32::from(d == 0);
                } else {
                    t += sums.add(price(n), &mut launched, d == 0);
                }
            }
            longest = longest.max(t);
        }
        sums.into(out);
        Ok(longest)
    }

    /// Prices the tokens of `counts` not yet priced for kind `kind`, counts the look-ups that
    /// found their price as hits, and returns the most tokens.
    fn price_missing(&mut self, kind: usize, op: &Op, counts: &[u64]) -> Result<u64, IterError> {
        let (top, experts) = counts
            .iter()
            .fold((0, 0), |(m, k), &n| (m.max(n), k + u64::from(n > 0)));
        let mut missed = 0;
        if top as usize > self.kind(kind).dense {
            for &n in counts {
                let known = self.routed.kinds[kind].prices.get(n as usize);
                if n > 0 && !matches!(known, Some(Some(_))) {
                    self.expert_price(kind, op, n)?;
                    missed += 1;
                }
            }
            let k = &mut self.routed.kinds[kind];
            while k.prices.get(k.dense + 1).is_some_and(Option::is_some) {
                k.dense += 1;
            }
        }
        self.hits += experts - missed;
        Ok(top)
    }

    /// Kind `kind`'s prices, made empty if there are none yet.
    fn kind(&mut self, kind: usize) -> &mut KindPrices {
        let kinds = &mut self.routed.kinds;
        if kinds.len() <= kind {
            // No tokens: no price, nothing to run.
            let none = KindPrices {
                prices: vec![None],
                hot: vec![(0.0, NONE)],
                later: vec![[0; 2]],
                ..KindPrices::default()
            };
            kinds.resize(kind + 1, none);
        }
        &mut kinds[kind]
    }

    /// Adds the experts counted by [`experts`](Self::experts) since the last call into `out`
    /// (`out` `None`: drops them).
    fn add_later(&mut self, out: Option<&mut IterCost>) {
        let mut sums = Sums::default();
        for k in &mut self.routed.kinds {
            let top = std::mem::take(&mut k.top);
            // Experts without tokens are counted at 0 and add nothing.
            if let Some(c) = k.later.first_mut() {
                *c = [0; 2];
            }
            for (c, p) in k.later.iter_mut().take(top + 1).zip(&k.prices).skip(1) {
                if c[0] > 0 {
                    let [n, n0] = std::mem::take(c);
                    let Some(p) = p else {
                        unreachable!("counted experts are priced")
                    };
                    sums.add_n(p, n, n0);
                }
            }
        }
        if let Some(out) = out {
            sums.into(out);
        }
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
            match self
                .routed
                .kinds
                .get(kind)
                .and_then(|k| k.prices.get(n as usize))
            {
                Some(Some(_)) => self.hits += 1,
                _ => self.expert_price(kind, op, n)?,
            }
        }
        let ep = self.par.ep as usize;
        let RoutedCache {
            kinds,
            time,
            launched,
        } = &mut self.routed;
        let prices = &kinds[kind].prices;
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
        // Kept in `prices`, not in the op cache: each (kind, tokens) is priced once.
        let xpu = self.price_fresh(Unit::Xpu, &op)?;
        let pim = if self.prices_pim() {
            Some(self.price_fresh(Unit::Pim, &op)?)
        } else {
            None
        };
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
        let k = self.kind(k);
        if k.prices.len() <= n {
            k.prices.resize(n + 1, None);
            k.hot.resize(n + 1, (0.0, NONE));
            k.later.resize(n + 1, [0; 2]);
        }
        k.hot[n] = (p.stream[1], p.unit);
        k.prices[n] = Some(p);
        Ok(())
    }
}

/// Adds `x` into `to`, element by element.
fn add(to: &mut [f64], x: &[f64]) {
    to.iter_mut().zip(x).for_each(|(a, x)| *a += x);
}
