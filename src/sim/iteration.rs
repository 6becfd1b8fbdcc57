//! The cost of one serving iteration: its ops, priced through a cache, run on the engine.
//!
//! A decoder layer's output feeds the next layer, so layers are barriers: an iteration's time is
//! the embedding, then each layer's engine run, then the head. Under balanced routing layers with
//! equal plans are alike, and one run of each distinct plan stands for all its layers.

use super::engine::{self, ResourceId, Task, TaskId};
use crate::hw::{Bound, CostError, EnergyParts, OpCost, System, Timing, Unit};
use crate::map::{Choices, Policy, fuse_expert_launches, place};
use crate::model::{
    Batch, IterationGraph, LayerPlan, ModelSpec, Op, OpKind, Parallelism, Precision, Routing,
    build_iteration_with,
};

/// Resources of each simulated device (device d's are at 5d .. 5d + 4): the xPU's compute, its
/// external memory path, its links, the PIM units' compute, and the DRAM banks every path reads.
pub const RESOURCES: [&str; 5] = ["xpu", "dram", "link", "pim", "banks"];

fn resource(device: u32, which: usize) -> ResourceId {
    ResourceId(RESOURCES.len() * device as usize + which)
}

/// Why an iteration cannot be priced.
#[derive(Debug, thiserror::Error)]
pub enum IterError {
    /// An op cannot be priced on its unit.
    #[error(transparent)]
    Cost(#[from] CostError),
    /// The iteration's graph cannot be built.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// The engine refused the tasks (a bug).
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
}

/// One op's run, for traces.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpan {
    /// The op's name.
    pub name: String,
    /// Its layer (`None` for the embedding and the head).
    pub layer: Option<u32>,
    /// The resource it ran on (an index into [`RESOURCES`], offset by 5 per device).
    pub resource: usize,
    /// The unit it was placed on.
    pub unit: Unit,
    /// What bounds its time.
    pub bound: Bound,
    /// Its FLOPs on this device.
    pub flops: f64,
    /// Its DRAM bytes (for collectives, link bytes) on this device.
    pub bytes: f64,
    /// Tokens it processes, where its shape states them (GEMM rows, an expert's tokens,
    /// attention queries).
    pub tokens: Option<u64>,
    /// Start, s.
    pub start: f64,
    /// End, s.
    pub end: f64,
}

/// What one iteration cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IterCost {
    /// Time of the iteration, s.
    pub time: f64,
    /// Dynamic energy of every device of the group (J).
    pub energy: f64,
    /// Dynamic energy by component, all devices.
    pub energy_parts: EnergyParts,
    /// Full-rate busy seconds of each resource in [`RESOURCES`], on device 0.
    pub busy: [f64; 5],
    /// Op time placed on each unit (xPU, PIM), device 0.
    pub unit_time: [f64; 2],
    /// Time of ops by what bounds them: compute, memory, overhead, link.
    pub by_bound: [f64; 4],
    /// Op instances simulated.
    pub ops: u64,
    /// Collectives among them.
    pub collectives: u64,
    /// Op spans from the iteration's start (when asked for).
    pub spans: Vec<OpSpan>,
}

#[path = "routed.rs"]
mod routed;

#[path = "fxhash.rs"]
mod fxhash;

#[path = "ep_layer.rs"]
mod ep_layer;

#[path = "verify.rs"]
mod verify;
pub use verify::VerifyPass;

#[derive(Debug, Clone, Copy)]
struct Priced {
    cost: OpCost,
    energy: EnergyParts,
    /// Seconds its DRAM bytes hold the banks at their full bandwidth.
    banks: f64,
}

/// Prices iterations of one model on one system, caching op costs by shape.
pub struct Coster<'a> {
    sys: &'a System,
    /// One-layer models, one per distinct layer plan (layers with equal plans cost alike).
    templates: Vec<ModelSpec>,
    /// Each layer's template.
    kind_of: Vec<usize>,
    par: Parallelism,
    precision: Precision,
    timing: Timing,
    policy: Policy,
    cache: fxhash::FxHashMap<(Unit, OpKind, Precision), Priced>,
    /// Routed experts' prices by (kind, tokens), for skewed routing.
    routed: routed::RoutedCache,
    /// The expert-parallel options and what they did.
    ep: ep_layer::EpState,
    /// Ops priced from the cache.
    pub hits: u64,
    /// Ops priced afresh.
    pub misses: u64,
    /// Whether it runs the embedding and the final norm and LM head (a pipeline stage's
    /// coster runs them only on the first and the last stage).
    ends: [bool; 2],
}

fn bound_index(b: Bound) -> usize {
    match b {
        Bound::Compute => 0,
        Bound::Memory => 1,
        Bound::Overhead => 2,
        Bound::Link => 3,
    }
}

impl<'a> Coster<'a> {
    /// A coster of `model` split as `par` on `sys`, its ops placed by `policy`.
    pub fn new(
        sys: &'a System,
        model: &ModelSpec,
        par: Parallelism,
        precision: Precision,
        timing: Timing,
        policy: Policy,
    ) -> Self {
        let mut kinds: Vec<LayerPlan> = Vec::new();
        let kind_of = model
            .plans
            .iter()
            .map(|p| {
                kinds.iter().position(|k| k == p).unwrap_or_else(|| {
                    kinds.push(*p);
                    kinds.len() - 1
                })
            })
            .collect();
        let templates = kinds
            .into_iter()
            .map(|p| ModelSpec {
                plans: vec![p],
                ..model.clone()
            })
            .collect();
        Coster {
            sys,
            templates,
            kind_of,
            par,
            precision,
            timing,
            policy,
            cache: fxhash::FxHashMap::default(),
            routed: routed::RoutedCache::default(),
            ep: ep_layer::EpState::default(),
            hits: 0,
            misses: 0,
            ends: [true, true],
        }
    }

    /// This coster as a pipeline stage's: the embedding only when `first`, the final norm and
    /// LM head only when `last`.
    pub fn stage(self, first: bool, last: bool) -> Self {
        Coster {
            ends: [first, last],
            ..self
        }
    }

    fn price(&mut self, unit: Unit, op: &Op) -> Result<Priced, CostError> {
        let key = (unit, op.kind.clone(), op.precision);
        if let Some(x) = self.cache.get(&key) {
            self.hits += 1;
            return Ok(*x);
        }
        let x = self.price_fresh(unit, op)?;
        self.cache.insert(key, x);
        Ok(x)
    }

    /// `op`'s price on `unit`, computed (a miss) and not kept in the cache: for prices kept by
    /// their caller.
    fn price_fresh(&mut self, unit: Unit, op: &Op) -> Result<Priced, CostError> {
        self.misses += 1;
        let w = op.work();
        Ok(Priced {
            cost: self.sys.cost_on(unit, &w, self.timing)?,
            energy: self.sys.energy_on(unit, &w)?,
            banks: w.bytes.total().value() / self.sys.bank_bandwidth().value(),
        })
    }

    /// Runs the ops of `g` that `keep` selects on the engine, adding into `out`; spans are
    /// offset by `at` and labelled with `layer`.
    fn run_part(
        &mut self,
        g: &IterationGraph,
        keep: impl Fn(&Op) -> bool,
        layer: Option<u32>,
        at: f64,
        out: &mut IterCost,
        spans: bool,
    ) -> Result<f64, IterError> {
        let nodes: Vec<_> = g
            .graph
            .node_indices()
            .filter(|&i| keep(&g.graph[i]))
            .collect();
        let ops: Vec<&Op> = nodes.iter().map(|&i| &g.graph[i]).collect();
        let priced = self.price_all(&ops)?;
        let choices: Vec<Choices> = priced
            .iter()
            .map(|(x, p)| Choices {
                xpu: x.cost,
                pim: p.map(|p| p.cost),
            })
            .collect();
        let units = place(self.policy, &ops, &choices);
        let mut chosen = (0..ops.len())
            .map(|t| match units[t] {
                Unit::Xpu => Ok(priced[t].0),
                Unit::Pim => priced[t].1.ok_or(CostError::NoPim),
            })
            .collect::<Result<Vec<Priced>, _>>()?;
        fuse_expert_launches(&ops, &units, |t| {
            chosen[t].cost = chosen[t].cost.without_overhead();
        });
        for t in 0..ops.len() {
            self.account(ops[t], units[t], &chosen[t], out);
        }
        let o = match self.serial(&ops, &units, &chosen, spans) {
            Some(o) => o,
            None => self.run_engine(g, &nodes, &units, &chosen)?,
        };
        out.ops += ops.len() as u64;
        out.collectives += ops.iter().filter(|o| o.kind.is_collective()).count() as u64;
        for (b, x) in out.busy.iter_mut().zip(&o.busy) {
            *b += x;
        }
        if spans {
            let bounds: Vec<Bound> = chosen.iter().map(|x| x.cost.bound).collect();
            record_spans(&ops, &units, &bounds, &o, layer, at, out);
        }
        Ok(o.makespan)
    }

    /// Runs the ops of `g` at `nodes` on `units` at costs `chosen` on the engine, each after
    /// the ones its graph edges name.
    fn run_engine(
        &self,
        g: &IterationGraph,
        nodes: &[petgraph::graph::NodeIndex],
        units: &[Unit],
        chosen: &[Priced],
    ) -> Result<engine::Outcome, engine::EngineError> {
        let mut index = vec![usize::MAX; g.graph.node_count()];
        let mut tasks = Vec::with_capacity(nodes.len());
        for (t, &i) in nodes.iter().enumerate() {
            index[i.index()] = t;
            let deps = g
                .graph
                .neighbors_directed(i, petgraph::Direction::Incoming)
                .map(|d| index[d.index()])
                .filter(|&t| t != usize::MAX)
                .map(TaskId)
                .collect();
            tasks.push(self.task(&g.graph[i], units[t], &chosen[t], deps));
        }
        engine::run(&tasks, RESOURCES.len() * self.par.ep as usize)
    }

    /// Whether ops are priced on the PIM as well: there is one and the policy may use it.
    fn prices_pim(&self) -> bool {
        self.sys.pim.is_some() && self.policy != Policy::AllXpu
    }

    /// Each op's price on the xPU and, when the policy may place it there, on PIM.
    fn price_all(&mut self, ops: &[&Op]) -> Result<Vec<(Priced, Option<Priced>)>, CostError> {
        let has_pim = self.prices_pim();
        let mut priced = Vec::with_capacity(ops.len());
        for op in ops {
            let xpu = self.price(Unit::Xpu, op)?;
            let pim = if has_pim && !op.kind.is_collective() {
                Some(self.price(Unit::Pim, op)?)
            } else {
                None
            };
            priced.push((xpu, pim));
        }
        Ok(priced)
    }

    /// Adds `op`'s energy (all devices), its time by bound, and device 0's time on `unit`.
    fn account(&self, op: &Op, unit: Unit, x: &Priced, out: &mut IterCost) {
        // Every device of the group runs each op on its share, except that under expert
        // parallelism each expert runs once, on its own device.
        let copies = if self.par.ep > 1 && matches!(op.kind, OpKind::ExpertFfn { .. }) {
            1
        } else {
            self.par.tp * self.par.ep
        };
        out.energy_parts.add(x.energy.scaled(copies as f64));
        out.by_bound[bound_index(x.cost.bound)] += x.cost.time.value();
        if op.device == 0 {
            out.unit_time[usize::from(unit == Unit::Pim)] += x.cost.time.value();
        }
    }

    /// What `op` on `unit` at cost `x` draws on which resource of its device (the first
    /// `n` of the array, `n` returned beside it).
    fn demands(op: &Op, unit: Unit, x: &Priced) -> ([(ResourceId, f64); 3], usize) {
        let (d, c, banks) = (op.device, x.cost, x.banks);
        let (compute, memory) = (c.compute.value(), c.memory.value());
        if op.kind.is_collective() {
            ([(resource(d, 2), memory); 3], 1)
        } else if unit == Unit::Pim {
            let m = (resource(d, 4), memory);
            ([(resource(d, 3), compute), m, m], 2)
        } else {
            let b = (resource(d, 4), banks.min(memory));
            ([(resource(d, 0), compute), (resource(d, 1), memory), b], 3)
        }
    }

    /// The in-order stream `op` on `unit` runs on: one per device, or per unit of a device
    /// when the policy overlaps them.
    fn stream(&self, op: &Op, unit: Unit) -> usize {
        let lane = usize::from(self.policy.overlaps() && unit == Unit::Pim);
        2 * op.device as usize + lane
    }

    /// The engine task of `op` on `unit` at cost `x`: its delay, its demands, and its stream.
    fn task(&self, op: &Op, unit: Unit, x: &Priced, deps: Vec<TaskId>) -> Task {
        let (demands, n) = Self::demands(op, unit, x);
        Task {
            stream: Some(self.stream(op, unit)),
            delay: x.cost.overhead.value(),
            demands: demands[..n].to_vec(),
            deps,
        }
    }

    /// What the engine gives for `ops` on `units` at costs `chosen` when they all run on one
    /// in-order stream, each with some valid work (its one-pass path, see
    /// [`engine::serial_step`]), computed without building the tasks (and without the spans
    /// unless `keep_spans`); `None` otherwise.
    fn serial(
        &self,
        ops: &[&Op],
        units: &[Unit],
        chosen: &[Priced],
        keep_spans: bool,
    ) -> Option<engine::Outcome> {
        let first = self.stream(ops.first()?, units[0]);
        let mut busy = vec![0.0; RESOURCES.len() * self.par.ep as usize];
        let mut spans = Vec::with_capacity(if keep_spans { ops.len() } else { 0 });
        let mut now = 0.0;
        for ((op, &unit), x) in ops.iter().zip(units).zip(chosen) {
            let (demands, n) = Self::demands(op, unit, x);
            let (delay, demands) = (x.cost.overhead.value(), &demands[..n]);
            let valid = |w: f64| w.is_finite() && w >= 0.0;
            let solo = demands.iter().map(|d| d.1).fold(0.0, f64::max);
            if self.stream(op, unit) != first
                || !valid(delay)
                || !demands.iter().all(|d| valid(d.1))
                || (delay <= 0.0 && solo <= 0.0)
            {
                return None;
            }
            let span = engine::serial_step(&mut now, &mut busy, delay, demands);
            if keep_spans {
                spans.push(span);
            }
        }
        Some(engine::Outcome {
            spans,
            makespan: now,
            busy,
        })
    }

    /// The one-layer graph of `batch` through template `kind` (an MoE layer routes `counts`
    /// tokens per expert).
    fn build(
        &self,
        batch: &Batch,
        kind: usize,
        counts: Option<&Vec<u64>>,
    ) -> Result<IterationGraph, IterError> {
        let routing = counts.map_or(Routing::Uniform, |c| Routing::PerLayer(vec![c.clone()]));
        Ok(build_iteration_with(
            &self.templates[kind],
            batch,
            self.par,
            self.precision,
            &routing,
        )?)
    }

    /// Prices one iteration. `counts[l]` are the tokens per expert of layer `l` (one entry when
    /// every layer is alike; empty for dense models).
    pub fn iteration(
        &mut self,
        batch: &Batch,
        counts: &[Vec<u64>],
        spans: bool,
    ) -> Result<IterCost, IterError> {
        let mut out = IterCost::default();
        let first = self.build(batch, self.kind_of[0], counts.first())?;
        // Embedding, then the layers, then the final norm and LM head (a pipeline stage runs
        // only the ends it holds).
        if self.ends[0] {
            out.time = self.run_part(&first, embedding, None, 0.0, &mut out, spans)?;
        }
        let all = 0..self.kind_of.len();
        self.layers_of(batch, all, counts, &first, &mut out, spans)?;
        if self.ends[1] {
            let t = out.time;
            out.time = t + self.run_part(&first, tail, None, t, &mut out, spans)?;
        }
        out.energy = out.energy_parts.total();
        Ok(out)
    }

    /// Runs `layers` of `batch` after `out.time`, advancing it; `counts` are theirs (one entry
    /// when every layer is alike), and `first` is the graph of `batch` through the first
    /// layer's kind with `counts.first()`.
    fn layers_of(
        &mut self,
        batch: &Batch,
        layers: std::ops::Range<usize>,
        counts: &[Vec<u64>],
        first: &IterationGraph,
        out: &mut IterCost,
        spans: bool,
    ) -> Result<(), IterError> {
        let layer_ops = |op: &Op| op.layer == Some(0);
        if counts.len() <= 1 && !self.ep_on() {
            // Every layer of a kind is alike: run one of each kind and count it for the rest.
            let mut kinds: Vec<Option<(IterCost, f64)>> = vec![None; self.templates.len()];
            for (kind, slot) in kinds.iter_mut().enumerate() {
                let of_kind = self.kind_of[layers.clone()].iter();
                let n = of_kind.filter(|&&k| k == kind).count();
                if n == 0 {
                    continue;
                }
                let built;
                let g = if kind == self.kind_of[layers.start] {
                    first
                } else {
                    built = self.build(batch, kind, counts.first())?;
                    &built
                };
                let mut one = IterCost::default();
                let lt = self.run_part(g, layer_ops, Some(0), 0.0, &mut one, spans)?;
                add_layers(out, &one, n as u64);
                *slot = Some((one, lt));
            }
            for l in layers {
                let Some((one, lt)) = &kinds[self.kind_of[l]] else {
                    unreachable!("every kind in the range was run")
                };
                if spans {
                    let t = out.time;
                    out.spans.extend(one.spans.iter().map(|s| OpSpan {
                        layer: Some(l as u32),
                        start: s.start + t,
                        end: s.end + t,
                        ..s.clone()
                    }));
                }
                out.time += lt;
            }
        } else if self.closed_form(spans) {
            let counts = self.ep_counts(counts, layers.len());
            let lt = self.routed_layers(batch, layers.start, &counts, first, out)?;
            out.time += lt;
        } else {
            for (i, c) in counts.iter().enumerate() {
                let l = layers.start + i;
                let g = self.build(batch, self.kind_of[l], Some(c))?;
                let t = out.time;
                out.time = t + self.run_part(&g, layer_ops, Some(l as u32), t, out, spans)?;
            }
        }
        Ok(())
    }
}

/// The embedding's ops.
fn embedding(op: &Op) -> bool {
    op.layer.is_none() && op.name == "embedding"
}

/// The head's ops: the final norm, the LM head and what follows it.
fn tail(op: &Op) -> bool {
    op.layer.is_none() && op.name != "embedding"
}

/// Adds `n` layers like `one` into `out` (all but their time and spans).
fn add_layers(out: &mut IterCost, one: &IterCost, n: u64) {
    let k = n as f64;
    out.energy_parts.add(one.energy_parts.scaled(k));
    out.ops += one.ops * n;
    out.collectives += one.collectives * n;
    for (b, x) in out.busy.iter_mut().zip(one.busy) {
        *b += x * k;
    }
    for (b, x) in out.by_bound.iter_mut().zip(one.by_bound) {
        *b += x * k;
    }
    for (b, x) in out.unit_time.iter_mut().zip(one.unit_time) {
        *b += x * k;
    }
}

/// Adds the span of each of `ops`, run as `o`, on the resource its unit names; spans start at
/// `at` and are labelled with `layer` (or the op's own).
fn record_spans(
    ops: &[&Op],
    units: &[Unit],
    bounds: &[Bound],
    o: &engine::Outcome,
    layer: Option<u32>,
    at: f64,
    out: &mut IterCost,
) {
    for (t, op) in ops.iter().enumerate() {
        let which = if op.kind.is_collective() {
            2
        } else if units[t] == Unit::Pim {
            3
        } else {
            0
        };
        let w = op.work();
        out.spans.push(OpSpan {
            name: op.name.to_string(),
            layer: layer.or(op.layer),
            resource: RESOURCES.len() * op.device as usize + which,
            unit: units[t],
            bound: bounds[t],
            flops: w.flops.value(),
            bytes: w.collective.map_or(w.bytes.total(), |c| c.message).value(),
            tokens: op.kind.tokens(),
            start: at + o.spans[t].start,
            end: at + o.spans[t].end,
        });
    }
}
