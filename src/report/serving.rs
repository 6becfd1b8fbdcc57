//! The serving report: a stable, versioned schema (see README "Serving report schema").

use std::fmt::Write as _;

use serde::Serialize;

use super::render::si;
use crate::sim::serving::{Samples, Scenario, ServingResult};
use crate::sim::workload::{Arrivals, LengthDist, Lengths};

/// Mean and nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

impl Percentiles {
    /// Summarises `v` (left as it is: the percentiles are picked from a copy); all zeros when
    /// empty.
    pub fn of(v: &[f64]) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let mut v = v.to_vec();
        // Ranks in increasing order: each selection leaves the larger samples above its rank,
        // so the next one searches only those.
        let mut from = 0;
        let mut at = |q: f64| {
            let k = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            let x = *v[from..].select_nth_unstable_by(k - from, f64::total_cmp).1;
            from = k;
            x
        };
        Percentiles {
            mean,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
        }
    }
}

impl Percentiles {
    /// Summarises a run's samples: [`of`](Self::of) them while they are kept exactly, else
    /// from their histogram (each percentile within `sim::serving::ACCURACY` of the exact).
    pub fn of_samples(s: &Samples) -> Self {
        match s.exact() {
            Some(v) => Percentiles::of(v),
            None => Percentiles {
                mean: s.mean(),
                p50: s.quantile(0.5),
                p90: s.quantile(0.9),
                p99: s.quantile(0.99),
            },
        }
    }
}

/// Shares of op time by what bounds each op.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct BoundShares {
    /// Compute-bound ops.
    pub compute: f64,
    /// Memory-bound ops.
    pub memory: f64,
    /// Ops bound by their fixed overhead.
    pub overhead: f64,
    /// Collectives over the links.
    pub link: f64,
}

/// Busy fraction of each resource of one device over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Utilization {
    /// The xPU's compute.
    pub xpu: f64,
    /// The xPU's external memory path.
    pub dram: f64,
    /// The node's links.
    pub link: f64,
    /// The PIM units' compute.
    pub pim: f64,
    /// The DRAM banks, which the xPU and PIM paths share.
    pub banks: f64,
}

/// Energy per output token by component, J.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct EnergyBreakdown {
    /// Multiply-accumulates (xPU and PIM).
    pub mac: f64,
    /// DRAM traffic through the xPU's external path.
    pub dram_xpu: f64,
    /// DRAM traffic through the PIM units' internal path.
    pub dram_pim: f64,
    /// Link traffic.
    pub link: f64,
    /// Static power over the run.
    #[serde(rename = "static")]
    pub static_: f64,
}

/// The metrics scripts rely on (names are part of the schema).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ServingMetrics {
    /// Output tokens per second over the run.
    pub output_tokens_per_s: f64,
    /// Prompt and output tokens per second over the run.
    pub total_tokens_per_s: f64,
    /// Time to first token, s.
    pub ttft_s: Percentiles,
    /// Time between tokens, s.
    pub tbt_s: Percentiles,
    /// End-to-end latency, s.
    pub e2e_s: Percentiles,
    /// Energy per output token, all devices of the replica, J: dynamic plus static (their sum,
    /// [`Self::energy_per_output_token_dynamic_j`] + [`Self::energy_per_output_token_static_j`]).
    pub energy_per_output_token_j: f64,
    /// Dynamic energy per output token (MACs, DRAM bits, link bits), J.
    pub energy_per_output_token_dynamic_j: f64,
    /// Static energy per output token: static power × devices × duration ÷ output tokens, J.
    pub energy_per_output_token_static_j: f64,
    /// Static power of one device, as the arch states it (`xpu.energy.static_power`), W.
    pub static_power_w: f64,
    /// Energy of the run, all devices of the replica, J (dynamic plus static).
    pub energy_j: f64,
    /// Energy per output token by component, J.
    pub energy_per_output_token_by_component_j: EnergyBreakdown,
    /// Share of op time placed on PIM (device 0).
    pub pim_time_share: f64,
    /// Requests that produced all their output.
    pub requests_completed: u64,
    /// Prompt tokens of the completed requests.
    pub prompt_tokens: u64,
    /// Output tokens produced.
    pub output_tokens: u64,
    /// From the start to the last completion, s.
    pub duration_s: f64,
    /// Iterations run.
    pub iterations: u64,
    /// Sequences preempted and recomputed.
    pub preemptions: u64,
    /// Mean sequences per iteration.
    pub mean_batch: f64,
    /// Tokens the KV cache holds.
    pub kv_capacity_tokens: u64,
    /// What held throughput back, as the simulator decided it ([`crate::sim::serving::ServingLimit`]):
    /// `kv_capacity`, `compute`, `memory_bandwidth` (the batch is full and its iterations are
    /// memory-bound), `token_budget` or `load` (too few requests to fill the batch).
    pub limit: String,
    /// Shares of op time by bound.
    pub time_by_bound: BoundShares,
    /// Busy share of one device's resources.
    pub utilization: Utilization,
    /// Op instances simulated.
    pub ops_simulated: u64,
    /// Ops priced from the cost cache.
    pub cost_cache_hits: u64,
    /// Ops priced afresh.
    pub cost_cache_misses: u64,
}

/// What was run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingInputs {
    /// The scenario's name.
    pub scenario: String,
    /// The arch's name.
    pub arch: String,
    /// The model's name.
    pub model: String,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Expert-parallel degree (1 = off).
    pub ep: u64,
    /// Devices the model replica runs on (`tp` × `ep` × pipeline stages).
    pub devices: u64,
    /// Attention data parallelism: under expert parallelism attention is data-parallel over the
    /// `ep` devices (each its own sequences); 1 otherwise.
    pub attention_dp: u64,
    /// Precision of weights, activations and KV cache.
    pub precision: crate::model::Precision,
    /// Which clock op times are read from (`kernel` or `host`), with ` + software NAME` when a
    /// software-stack profile adds the framework's time per iteration.
    pub timing: String,
    /// The scenario keys that command-line flags replaced (`arch`, `policy`, `precision.kv`,
    /// …), in the order of the file; empty when the scenario ran as written.
    pub overridden: Vec<String>,
    /// Requests in the run.
    pub requests: u64,
    /// Prompt lengths, in words.
    pub prompt: String,
    /// Output lengths, in words.
    pub output: String,
    /// Arrivals, in words.
    pub arrivals: String,
    /// Most sequences in one iteration.
    pub max_batch: u64,
    /// Most tokens in one iteration.
    pub max_tokens: u64,
    /// Tokens per KV-cache block.
    pub kv_block: u64,
    /// Share of device memory the run may fill.
    pub memory_utilization: f64,
    /// Expert routing, in words.
    pub routing: String,
    /// The mapping policy's name.
    pub policy: String,
    /// The seed.
    pub seed: u64,
    /// The PIM device as run, with where its module count, clock and energy per FLOP came from
    /// (absent without PIM units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pim: Option<PimInputs>,
}

/// The PIM units of one device as the run used them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PimInputs {
    /// Logic-, BankGroup- or Bank-PIM.
    pub kind: crate::hw::PimKind,
    /// Memory stacks with PIM units.
    pub stacks: u32,
    /// PIM modules per stack.
    pub modules: u32,
    /// MACs per module.
    pub macs: u32,
    /// PIM clock, Hz.
    pub frequency_hz: f64,
    /// Energy per FLOP on PIM, J.
    pub flop_energy_j: f64,
    /// Present when the arch names a logic-die technology (`[pim.tech]`): model or arch per value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::hw::PimOrigin>,
}

/// One point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelineSample {
    /// When the iteration started, s.
    pub t_s: f64,
    /// Sequences in the iteration.
    pub batch: u64,
    /// Requests arrived and not finished.
    pub in_system: u64,
    /// Share of KV blocks in use after the iteration.
    pub kv_used: f64,
}

/// The report of a serving run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingReport {
    /// Version of this schema.
    pub schema_version: u32,
    /// Always `serving`.
    pub kind: &'static str,
    /// What was run.
    pub inputs: ServingInputs,
    /// What it measured.
    pub serving: ServingMetrics,
    /// At most 200 evenly spaced iterations.
    pub timeline: Vec<TimelineSample>,
    /// Speculative decoding's rounds (absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speculative: Option<super::speculative::SpeculativeMetrics>,
    /// Expert parallelism's options and their effect (absent with them off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expert_parallel: Option<super::expert_parallel::EpMetrics>,
    /// Replicas behind a router, each one's share (absent for one replica without a router).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<super::replicas::ReplicasMetrics>,
    /// Pipeline stages and their bubble (absent without a pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<super::pipeline::PipelineMetrics>,
}

fn dist(d: &LengthDist) -> String {
    match d {
        LengthDist::Fixed(n) => format!("fixed {n}"),
        LengthDist::Uniform { min, max } => format!("uniform {min}..={max}"),
        LengthDist::Normal {
            mean,
            std,
            min,
            max,
        } => format!("normal {mean}±{std} in {min}..={max}"),
    }
}

impl ServingInputs {
    /// The inputs of `s` in words and numbers.
    pub fn of(s: &Scenario) -> Self {
        let (prompt, output) = match &s.lengths {
            Lengths::Drawn { prompt, output } => (dist(prompt), dist(output)),
            Lengths::Trace(rows) => (format!("trace of {} rows", rows.len()), "trace".into()),
        };
        let arrivals = match s.arrivals {
            Arrivals::Closed { concurrency } => format!("closed loop, {concurrency} concurrent"),
            Arrivals::Poisson { rate } => format!("Poisson, {rate} requests/s"),
            Arrivals::Trace => "trace".into(),
        };
        ServingInputs {
            scenario: s.name.clone(),
            arch: s.sys.name.clone(),
            model: s.model.name.clone(),
            tp: s.tp,
            ep: s.ep,
            devices: s.devices(),
            attention_dp: s.ep,
            precision: s.precision,
            timing: match &s.software {
                None => crate::hw::Timing::TABLE[s.timing as usize].1.into(),
                Some(w) => format!(
                    "{} + software {}",
                    crate::hw::Timing::TABLE[s.timing as usize].1,
                    w.name
                ),
            },
            overridden: Vec::new(),
            requests: s.count,
            prompt,
            output,
            arrivals,
            max_batch: s.max_batch,
            max_tokens: s.max_tokens,
            kv_block: s.kv_block,
            memory_utilization: s.memory_utilization,
            routing: s.routing.describe(),
            policy: s.policy.name().into(),
            seed: s.seed,
            pim: s.sys.pim.as_ref().map(|p| PimInputs {
                kind: p.kind,
                stacks: p.stacks,
                modules: p.modules,
                macs: p.macs,
                frequency_hz: p.frequency.value(),
                flop_energy_j: p.flop_energy.value(),
                origin: p.origin.clone(),
            }),
        }
    }
}

impl ServingMetrics {
    /// Rates, percentiles and shares of `r`, a run of `s`; the limit as the simulator decided it.
    pub fn of(s: &Scenario, r: &ServingResult) -> Self {
        let share = r.bound_shares();
        let d = r.duration.max(f64::MIN_POSITIVE);
        let n = r.output_tokens.max(1) as f64;
        let e = &r.energy_parts;
        ServingMetrics {
            output_tokens_per_s: r.output_tokens as f64 / d,
            total_tokens_per_s: (r.output_tokens + r.prompt_tokens) as f64 / d,
            ttft_s: Percentiles::of_samples(&r.ttft),
            tbt_s: Percentiles::of_samples(&r.tbt),
            e2e_s: Percentiles::of_samples(&r.e2e),
            energy_per_output_token_j: r.energy / n,
            energy_per_output_token_dynamic_j: (r.energy - r.energy_static) / n,
            energy_per_output_token_static_j: r.energy_static / n,
            static_power_w: s.sys.xpu.energy.static_power.value(),
            energy_j: r.energy,
            energy_per_output_token_by_component_j: EnergyBreakdown {
                mac: e.mac / n,
                dram_xpu: e.dram_xpu / n,
                dram_pim: e.dram_pim / n,
                link: e.link / n,
                static_: r.energy_static / n,
            },
            pim_time_share: r.unit_time[1]
                / (r.unit_time[0] + r.unit_time[1]).max(f64::MIN_POSITIVE),
            requests_completed: r.requests_completed,
            prompt_tokens: r.prompt_tokens,
            output_tokens: r.output_tokens,
            duration_s: r.duration,
            iterations: r.iterations,
            preemptions: r.preemptions,
            mean_batch: r.mean_batch,
            kv_capacity_tokens: r.kv_capacity_tokens,
            limit: r.limit.name().into(),
            time_by_bound: BoundShares {
                compute: share[0],
                memory: share[1],
                overhead: share[2],
                link: share[3],
            },
            utilization: Utilization {
                xpu: r.busy[0] / d,
                dram: r.busy[1] / d,
                link: r.busy[2] / d,
                pim: r.busy[3] / d,
                banks: r.busy[4] / d,
            },
            ops_simulated: r.ops_simulated,
            cost_cache_hits: r.cache_hits,
            cost_cache_misses: r.cache_misses,
        }
    }
}

impl ServingReport {
    /// The report of `r`, a run of `s`: sums, shares and percentiles of what it measured, and
    /// at most 200 evenly spaced points of its timeline.
    pub fn new(s: &Scenario, r: &ServingResult) -> Self {
        let step = r.timeline.len().div_ceil(200).max(1);
        ServingReport {
            schema_version: super::SCHEMA_VERSION,
            kind: "serving",
            inputs: ServingInputs::of(s),
            serving: ServingMetrics::of(s, r),
            timeline: r
                .timeline
                .iter()
                .step_by(step)
                .map(|p| TimelineSample {
                    t_s: p.t,
                    batch: p.batch,
                    in_system: p.in_system,
                    kv_used: p.kv_used,
                })
                .collect(),
            speculative: r
                .speculative
                .as_ref()
                .map(super::speculative::SpeculativeMetrics::of),
            expert_parallel: r
                .expert_parallel
                .as_ref()
                .map(super::expert_parallel::EpMetrics::of),
            replicas: None,
            pipeline: r
                .pipeline
                .as_ref()
                .map(super::pipeline::PipelineMetrics::of),
        }
    }

    /// A terminal summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        self.write_inputs(&mut s);
        self.write_metrics(&mut s);
        if let Some(x) = &self.speculative {
            x.write(&mut s);
        }
        if let Some(x) = &self.expert_parallel {
            x.write(&mut s);
        }
        if let Some(x) = &self.replicas {
            x.write(&mut s);
        }
        if let Some(x) = &self.pipeline {
            x.write(&mut s);
        }
        s
    }

    /// The table's head: what was run, and the PIM units with their origin.
    fn write_inputs(&self, s: &mut String) {
        let i = &self.inputs;
        let _ = writeln!(
            s,
            "serving {}: {}, {} requests, {}\nprecision {}; policy {}, timing {}\nprompt {}, output {}; max batch {}, {} tokens per iteration, seed {}",
            i.scenario,
            super::placement_words(&i.model, &i.arch, i.devices, i.tp, i.ep, i.attention_dp),
            i.requests,
            i.arrivals,
            super::precision_words(&i.precision),
            i.policy,
            i.timing,
            i.prompt,
            i.output,
            i.max_batch,
            i.max_tokens,
            i.seed
        );
        if !i.overridden.is_empty() {
            let _ = writeln!(s, "overridden by flags: {}", i.overridden.join(", "));
        }
        s.push('\n');
        if let Some(p) = &i.pim {
            let tag = |o: Option<crate::hw::Origin>| {
                o.map_or(String::new(), |o| format!(" ({})", o.name()))
            };
            let o = p.origin.as_ref();
            let _ = writeln!(
                s,
                "pim         {} stacks × {} {}-PIM modules{} at {}{}, {:.3} pJ/FLOP{}{}\n",
                p.stacks,
                p.modules,
                p.kind.name(),
                tag(o.map(|o| o.modules)),
                si(p.frequency_hz, "Hz"),
                tag(o.map(|o| o.frequency)),
                p.flop_energy_j * 1e12,
                tag(o.map(|o| o.flop_energy)),
                o.map_or(String::new(), |o| format!("; logic die {}", o.technology)),
            );
        }
    }

    /// The table's body: throughput, latencies, energy, batch, limit and utilization.
    fn write_metrics(&self, s: &mut String) {
        let (i, m) = (&self.inputs, &self.serving);
        let _ = writeln!(
            s,
            "throughput  {:.0} output tokens/s, {:.0} total tokens/s ({} requests in {})",
            m.output_tokens_per_s,
            m.total_tokens_per_s,
            m.requests_completed,
            si(m.duration_s, "s")
        );
        let _ = writeln!(
            s,
            "\n{:<6} {:>10} {:>10} {:>10} {:>10}",
            "", "mean", "p50", "p90", "p99"
        );
        for (n, p) in [("TTFT", m.ttft_s), ("TBT", m.tbt_s), ("E2E", m.e2e_s)] {
            let _ = writeln!(
                s,
                "{n:<6} {:>10} {:>10} {:>10} {:>10}",
                si(p.mean, "s"),
                si(p.p50, "s"),
                si(p.p90, "s"),
                si(p.p99, "s")
            );
        }
        let b = m.time_by_bound;
        let u = m.utilization;
        let _ = writeln!(
            s,
            "\nenergy      {} per output token = {} dynamic + {} static ({} per device; {} in all)\nbatch       mean {:.1} of {}; KV cache {} tokens; {} preemptions\nlimited by  {}; op time: compute {:.0}%, memory {:.0}%, overhead {:.0}%, link {:.0}%\nutilization xpu {:.0}%, dram {:.0}%, link {:.0}%, pim {:.0}%, banks {:.0}% (one device); {:.0}% of op time on PIM\nsimulated   {} iterations, {} ops ({:.1}% cost-cache hits)",
            si(m.energy_per_output_token_j, "J"),
            si(m.energy_per_output_token_dynamic_j, "J"),
            si(m.energy_per_output_token_static_j, "J"),
            si(m.static_power_w, "W"),
            si(m.energy_j, "J"),
            m.mean_batch,
            i.max_batch,
            m.kv_capacity_tokens,
            m.preemptions,
            m.limit,
            100.0 * b.compute,
            100.0 * b.memory,
            100.0 * b.overhead,
            100.0 * b.link,
            100.0 * u.xpu,
            100.0 * u.dram,
            100.0 * u.link,
            100.0 * u.pim,
            100.0 * u.banks,
            100.0 * m.pim_time_share,
            m.iterations,
            m.ops_simulated,
            100.0 * m.cost_cache_hits as f64
                / (m.cost_cache_hits + m.cost_cache_misses).max(1) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!(v[0], 100.0, "the sample is left in its order");
        assert_eq!((p.mean, p.p50, p.p90, p.p99), (50.5, 50.0, 90.0, 99.0));
    }
}
